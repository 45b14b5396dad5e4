import FuzzDriver
import KilnDriver

runFuzzer { _ = FuzzEntry.onnx($0) }
