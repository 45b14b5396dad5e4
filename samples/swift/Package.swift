// swift-tools-version:5.9
// classify — the held-back digits through a Kiln-compiled library, from Swift.
// CDigits is a system-library target: a module map over the model's C header, found (with the
// link line) through the model's pkg-config file digits.pc.
//
//   kiln compile samples/models/digits.onnx -o out --name digits --input-shape image=1x1x8x8 --library shared
//   PKG_CONFIG_PATH=$PWD/out swift run -c release -Xlinker -rpath -Xlinker $PWD/out classify \
//       ../models/digits_test_images.npy ../models/digits_test_labels.npy
import PackageDescription

let package = Package(
    name: "classify",
    targets: [
        .systemLibrary(name: "CDigits", pkgConfig: "digits"),
        .executableTarget(name: "classify", dependencies: ["CDigits"]),
    ]
)
