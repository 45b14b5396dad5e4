import FuzzDriver
import KilnDriver

runFuzzer { _ = FuzzEntry.calibrationSample($0) }
