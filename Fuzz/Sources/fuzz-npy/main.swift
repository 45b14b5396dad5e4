import FuzzDriver
import KilnDriver

runFuzzer { _ = FuzzEntry.npy($0) }
