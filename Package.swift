// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "KilnDriver", targets: ["KilnDriver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Layers, each importing only those below it:
        // IR ← ONNX, Reference, Target ← Passes, Quantization ← Codegen ← Toolchain, Driver ← kiln.
        .target(name: "KilnIR"),
        .target(
            name: "KilnONNX",
            dependencies: ["KilnIR", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["proto"]),
        .target(name: "KilnReference", dependencies: ["KilnIR"]),
        .target(name: "KilnTarget", dependencies: ["KilnIR"]),
        .target(name: "KilnPasses", dependencies: ["KilnIR", "KilnReference", "KilnTarget"]),
        .target(name: "KilnQuantization", dependencies: ["KilnIR"]),
        .target(name: "KilnCodegen", dependencies: ["KilnIR", "KilnTarget"]),
        .target(name: "KilnToolchain", dependencies: ["KilnIR", "KilnTarget"]),
        .target(
            name: "KilnDriver",
            dependencies: ["KilnIR", "KilnONNX", "KilnReference", "KilnTarget", "KilnPasses", "KilnQuantization",
                           "KilnCodegen", "KilnToolchain"]),
        .executableTarget(
            name: "kiln",
            dependencies: ["KilnDriver", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(
            name: "KilnTests",
            dependencies: ["KilnIR", "KilnONNX", "KilnPasses", "KilnReference", "KilnTarget", "KilnQuantization", "KilnCodegen",
                           "KilnToolchain", "KilnDriver",
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Snapshots"]),
    ],
    swiftLanguageModes: [.v5]
)
