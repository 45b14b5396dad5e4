//! classify — the held-back digits through a Kiln-compiled library, from Rust.
//!
//! Std only: the model's C functions are declared in an `extern "C"` block (the C ABI of
//! digits.h), the library is linked by build.rs, and a small `Model` type owns a handle (Drop
//! destroys it) and turns status codes into errors with the handle's last-error text. The
//! input and output sizes come from the library's introspection.
//!
//!     kiln compile samples/models/digits.onnx -o out --name digits --input-shape image=1x1x8x8 --library static
//!     KILN_MODEL_DIR=$PWD/out cargo run --release -- samples/models/digits_test_images.npy samples/models/digits_test_labels.npy
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::time::Instant;

#[allow(non_camel_case_types)]
type digits_model = c_void;

extern "C" {
    fn digits_create(model: *mut *mut digits_model) -> c_int;
    fn digits_destroy(model: *mut digits_model);
    fn digits_last_error(model: *const digits_model) -> *const c_char;
    fn digits_status_string(status: c_int) -> *const c_char;
    fn digits_set_num_threads(model: *mut digits_model, threads: c_int) -> c_int;
    fn digits_version() -> *const c_char;
    fn digits_run(
        model: *mut digits_model,
        num_inputs: usize,
        inputs: *const *const c_void,
        input_bytes: *const usize,
        num_outputs: usize,
        outputs: *const *mut c_void,
        output_bytes: *const usize,
    ) -> c_int;
    fn digits_num_inputs() -> usize;
    fn digits_num_outputs() -> usize;
    fn digits_input_type(index: usize) -> c_int;
    fn digits_output_type(index: usize) -> c_int;
    fn digits_input_bytes(index: usize) -> usize;
    fn digits_output_bytes(index: usize) -> usize;
}

const F32: c_int = 1; // digits_element_type's DIGITS_F32
const SIZE_MISMATCH: c_int = 3; // DIGITS_ERROR_SIZE_MISMATCH

fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

#[derive(Debug)]
struct KilnError {
    status: c_int,
    message: String,
}

/// One handle of the model.
struct Model(*mut digits_model);

impl Model {
    fn new() -> Result<Model, KilnError> {
        let mut m: *mut digits_model = std::ptr::null_mut();
        let s = unsafe { digits_create(&mut m) };
        if s != 0 {
            return Err(KilnError { status: s, message: format!("digits_create: {}", text(unsafe { digits_status_string(s) })) });
        }
        Ok(Model(m))
    }

    fn check(&self, call: &str, s: c_int) -> Result<(), KilnError> {
        if s == 0 {
            return Ok(());
        }
        let message = format!("digits_{}: {}: {}", call, text(unsafe { digits_status_string(s) }), text(unsafe { digits_last_error(self.0) }));
        Err(KilnError { status: s, message })
    }

    fn set_threads(&mut self, n: i32) -> Result<(), KilnError> {
        let s = unsafe { digits_set_num_threads(self.0, n) };
        self.check("set_num_threads", s)
    }

    /// One inference on one f32 input into one f32 output (sizes checked by digits_run).
    fn run(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), KilnError> {
        let inputs = [input.as_ptr() as *const c_void];
        let input_bytes = [std::mem::size_of_val(input)];
        let outputs = [output.as_mut_ptr() as *mut c_void];
        let output_bytes = [std::mem::size_of_val(output)];
        let s = unsafe { digits_run(self.0, 1, inputs.as_ptr(), input_bytes.as_ptr(), 1, outputs.as_ptr(), output_bytes.as_ptr()) };
        self.check("run", s)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { digits_destroy(self.0) }
    }
}

/// A .npy array (format 1.0-3.0, little-endian, C order) of dtype `descr`: its shape and bytes.
fn read_npy(path: &str, descr: &str) -> Result<(Vec<usize>, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path, e))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{}: not a .npy file", path));
    }
    let (len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(bytes.get(start..start + len).ok_or(format!("{}: truncated", path))?).map_err(|_| format!("{}: bad header", path))?;
    if !header.contains(&format!("'descr': '{}'", descr)) || !header.contains("'fortran_order': False") {
        return Err(format!("{}: expected a C-order array of dtype {}: {}", path, descr, header.trim()));
    }
    let shape_text = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or(format!("{}: no shape", path))?;
    let shape: Vec<usize> = shape_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| format!("{}: bad shape", path))).collect::<Result<_, _>>()?;
    Ok((shape, bytes[start + len..].to_vec()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} IMAGES.npy LABELS.npy", args[0]);
        std::process::exit(2);
    }
    if let Err(e) = classify(&args[1], &args[2]) {
        eprintln!("error: {}", e);
        std::process::exit(1);
    }
}

fn classify(images_path: &str, labels_path: &str) -> Result<(), String> {
    unsafe {
        if digits_num_inputs() != 1 || digits_num_outputs() != 1 || digits_input_type(0) != F32 || digits_output_type(0) != F32 {
            return Err("the model should take one f32 tensor and return one f32 tensor".into());
        }
    }
    let pixels = unsafe { digits_input_bytes(0) } / 4;
    let classes = unsafe { digits_output_bytes(0) } / 4;
    let (shape, raw) = read_npy(images_path, "<f4")?;
    let images: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let n = *shape.first().ok_or("no images")?;
    if images.len() != n * pixels {
        return Err(format!("{}: not {} images of {} pixels", images_path, n, pixels));
    }
    let (label_shape, raw) = read_npy(labels_path, "<i8")?;
    let labels: Vec<i64> = raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    if label_shape != vec![n] || labels.len() != n {
        return Err(format!("{}: expected {} labels", labels_path, n));
    }

    let mut model = Model::new().map_err(|e| e.message)?;
    model.set_threads(1).map_err(|e| e.message)?;
    let mut logits = vec![0f32; classes];
    let mut micros = Vec::with_capacity(n);
    let mut correct = 0;
    for (i, label) in labels.iter().enumerate() {
        let t = Instant::now();
        model.run(&images[i * pixels..(i + 1) * pixels], &mut logits).map_err(|e| e.message)?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        let best = logits.iter().enumerate().fold(0, |b, (k, v)| if *v > logits[b] { k } else { b });
        if best as i64 == *label {
            correct += 1;
        }
    }
    micros.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("accuracy: {}/{} = {:.2}%", correct, n, 100.0 * correct as f64 / n as f64);
    println!("median latency: {:.1} us/image ({} runs, Kiln {}, from Rust)", micros[n / 2], n, text(unsafe { digits_version() }));

    // A wrong-size buffer comes back as an error carrying the status code.
    match model.run(&images[..pixels - 1], &mut logits) {
        Err(e) if e.status == SIZE_MISMATCH => println!("wrong size refused: {}", e.message),
        other => return Err(format!("a buffer of the wrong size gave {:?}", other.err())),
    }
    Ok(())
}
