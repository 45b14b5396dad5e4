// Links the Kiln-compiled model: KILN_MODEL_DIR is kiln compile's output folder (it holds
// libdigits.a), KILN_MODEL_NAME the model's C prefix (default digits). The static archive needs
// oneDNN, GNU OpenMP and libstdc++ after it, as its NAME-static.pc says.
use std::env;

fn main() {
    let dir = env::var("KILN_MODEL_DIR").expect("set KILN_MODEL_DIR to kiln compile's output folder (with libdigits.a)");
    let name = env::var("KILN_MODEL_NAME").unwrap_or_else(|_| "digits".to_string());
    println!("cargo:rerun-if-env-changed=KILN_MODEL_DIR");
    println!("cargo:rerun-if-env-changed=KILN_MODEL_NAME");
    println!("cargo:rerun-if-changed={}/lib{}.a", dir, name);
    println!("cargo:rustc-link-search=native={}", dir);
    println!("cargo:rustc-link-lib=static={}", name);
    for lib in ["dnnl", "gomp", "stdc++", "m", "pthread"] {
        println!("cargo:rustc-link-lib=dylib={}", lib);
    }
}
