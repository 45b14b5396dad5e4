// swift-tools-version: 6.0
// libFuzzer targets for Kiln's readers of untrusted files, built by scripts/fuzz with
// -sanitize=fuzzer,address (a package of its own: the main package's builds never see them).
// Each target feeds libFuzzer's bytes to one of KilnDriver's FuzzEntry functions.
import PackageDescription

let package = Package(
    name: "KilnFuzz",
    dependencies: [.package(name: "Kiln", path: "..")],
    targets: [
        .executableTarget(name: "fuzz-onnx", dependencies: [.product(name: "KilnDriver", package: "Kiln")]),
        .executableTarget(name: "fuzz-npy", dependencies: [.product(name: "KilnDriver", package: "Kiln")]),
        .executableTarget(name: "fuzz-calibration", dependencies: [.product(name: "KilnDriver", package: "Kiln")]),
    ],
    swiftLanguageModes: [.v5]
)
