// swift-tools-version: 6.0
// libFuzzer targets for Kiln's readers of untrusted files, built by scripts/fuzz with
// -sanitize=fuzzer,address (a package of its own: the main package's builds never see them).
// Each target feeds libFuzzer's bytes (FuzzDriver) to one of KilnDriver's FuzzEntry functions.
import PackageDescription

let package = Package(
    name: "KilnFuzz",
    dependencies: [.package(name: "Kiln", path: "..")],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(name: "fuzz-onnx", dependencies: ["FuzzDriver", .product(name: "KilnDriver", package: "Kiln")]),
        .executableTarget(name: "fuzz-npy", dependencies: ["FuzzDriver", .product(name: "KilnDriver", package: "Kiln")]),
        .executableTarget(name: "fuzz-calibration", dependencies: ["FuzzDriver", .product(name: "KilnDriver", package: "Kiln")]),
    ],
    swiftLanguageModes: [.v5]
)
