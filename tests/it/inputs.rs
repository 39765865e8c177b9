//! Image preprocessing against the independent numpy implementation (`scripts/preprocess_ref.py`) on real
//! images, and npy/npz files written by numpy itself.
//!
//! Needs the test assets and the test venv with numpy and Pillow (`make assets`); either missing is a failure that
//! says so, never a skip.

use std::path::Path;
use std::process::Command;

use precisiond::inputs::{ImageRecipe, InputError, load_input_file, load_npz, read_npy};
use precisiond::tensor::{Tensor, TensorData};

use crate::support::{asset, python, repo, tempdir};

/// Rust computes in f32, numpy in f64: what is left is f32 rounding, far below one 0–255 level.
const TOLERANCE: f32 = 1e-5;

fn run_python(args: &[&std::ffi::OsStr]) {
    let output = Command::new(python()).args(args).output().expect("the test venv python starts");
    assert!(
        output.status.success(),
        "python {:?} failed:\n{}{}",
        args,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn numpy_reference(image: &Path, recipe_json: &str) -> Tensor {
    let dir = tempdir();
    let recipe_path = dir.path().join("recipe.json");
    let out = dir.path().join("out.npy");
    std::fs::write(&recipe_path, recipe_json).unwrap();
    let script = repo().join("scripts/preprocess_ref.py");
    run_python(&[script.as_os_str(), image.as_os_str(), recipe_path.as_os_str(), out.as_os_str()]);
    read_npy(&out).unwrap_or_else(|e| panic!("{e}"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Both implementations on one image and recipe; returns the largest absolute difference.
fn rust_vs_numpy(image: &Path, recipe_json: &str) -> f32 {
    let recipe: ImageRecipe = serde_json::from_str(recipe_json).unwrap();
    let rust = load_input_file(image, Some(&recipe), "x").unwrap_or_else(|e| panic!("{e}"));
    let numpy = numpy_reference(image, recipe_json);
    assert_eq!(rust.shape(), recipe.shape.as_slice());
    assert_eq!(numpy.shape(), rust.shape(), "numpy's shape for {recipe_json}");
    let (r, n) = (rust.as_f32().unwrap(), numpy.as_f32().unwrap());
    // Guards against both sides agreeing on something degenerate, such as an all-padding tensor.
    let mean = r.iter().sum::<f32>() / r.len() as f32;
    let spread = r.iter().map(|v| (v - mean).abs()).fold(0.0, f32::max);
    assert!(spread > 0.05, "{}: the tensor is nearly constant for {recipe_json}", image.display());
    let diff = max_abs_diff(r, n);
    let name = image.file_name().unwrap().to_string_lossy();
    eprintln!("{name} {recipe_json}: max |rust - numpy| = {diff:.3e}");
    diff
}

fn check_image(name: &str, recipes: &[&str]) {
    let image = asset(&format!("images/{name}"));
    for recipe in recipes {
        let diff = rust_vs_numpy(&image, recipe);
        assert!(diff <= TOLERANCE, "{name} {recipe}: rust and numpy differ by {diff}");
    }
}

const PP_OCR_REC: &str =
    r#"{"shape": [1, 3, 48, 192], "scale": 0.00392156862745098, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}"#;
const IMAGENET: &str = r#"{"shape": [1, 3, 224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}"#;

#[test]
fn page_png_grayscale_document() {
    check_image(
        "page.png",
        &[
            PP_OCR_REC,
            r#"{"shape": [1, 3, 48, 192], "resize": "letterbox", "mean": [0.5], "std": [0.5]}"#,
            r#"{"shape": [1, 1, 32, 100], "channels": "GRAY", "resize": "letterbox"}"#,
        ],
    );
}

#[test]
fn astronaut_png_rgb() {
    check_image(
        "astronaut.png",
        &[
            IMAGENET,
            r#"{"shape": [1, 300, 400, 3], "layout": "NHWC", "channels": "BGR", "resize": "letterbox",
                "scale": 1.0, "mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395]}"#,
            r#"{"shape": [1, 1, 64, 64], "channels": "GRAY"}"#,
            r#"{"shape": [1, 3, 640, 640], "resize": "letterbox"}"#,
        ],
    );
}

#[test]
fn camera_png_grayscale_photo() {
    check_image(
        "camera.png",
        &[
            r#"{"shape": [1, 3, 100, 150]}"#,
            r#"{"shape": [1, 97, 131, 1], "layout": "NHWC", "channels": "GRAY", "resize": "letterbox",
                "mean": [0.5], "std": [0.25]}"#,
        ],
    );
}

#[test]
fn coffee_png_rgb_landscape() {
    check_image(
        "coffee.png",
        &[
            r#"{"shape": [1, 3, 640, 640], "resize": "letterbox"}"#,
            r#"{"shape": [1, 3, 48, 192], "channels": "BGR", "mean": [0.5], "std": [0.5]}"#,
            r#"{"shape": [1, 1, 33, 47], "channels": "GRAY", "resize": "letterbox", "layout": "NCHW"}"#,
        ],
    );
}

/// JPEG decoders are allowed to differ (the standard bounds the IDCT's error, not its rounding, and leaves the
/// chroma upsampling open), and Pillow's libjpeg-turbo and the `image` crate's zune-jpeg do: on rocket.jpg 99.3 %
/// of the samples agree, the rest by 1 or 2 levels (measured with Pillow 13.0.0). So the JPEG is checked in two
/// parts: the preprocessing exactly, on the pixels our decoder produced (saved as a lossless PNG for numpy), and
/// the two decoders against each other within a few 0–255 levels.
#[test]
fn rocket_jpg_through_one_decoder_exactly_and_across_decoders_loosely() {
    let jpg = asset("images/rocket.jpg");
    let dir = tempdir();
    let png = dir.path().join("rocket-decoded.png");
    image::open(&jpg).unwrap().to_rgb8().save(&png).unwrap();
    let recipes = [
        // Same size, scale 1: the raw decoded samples.
        r#"{"shape": [1, 3, 427, 640], "scale": 1.0}"#,
        IMAGENET,
        r#"{"shape": [1, 3, 48, 192], "resize": "letterbox", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}"#,
        r#"{"shape": [1, 120, 160, 1], "layout": "NHWC", "channels": "GRAY"}"#,
    ];
    for recipe_json in recipes {
        let recipe: ImageRecipe = serde_json::from_str(recipe_json).unwrap();
        let from_jpg = load_input_file(&jpg, Some(&recipe), "x").unwrap();
        let from_png = load_input_file(&png, Some(&recipe), "x").unwrap();
        assert_eq!(from_jpg, from_png, "the JPEG path is the PNG path once decoded");
        let diff = rust_vs_numpy(&png, recipe_json);
        assert!(diff <= TOLERANCE, "rocket (decoded) {recipe_json}: rust and numpy differ by {diff}");

        // In 0-255 levels: the tensor difference times std / scale.
        let numpy = numpy_reference(&jpg, recipe_json);
        let (ours, theirs) = (from_jpg.as_f32().unwrap(), numpy.as_f32().unwrap());
        let to_levels = recipe.std[0] / recipe.scale;
        let max = max_abs_diff(ours, theirs) * to_levels;
        let mean = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).sum::<f32>() / ours.len() as f32 * to_levels;
        eprintln!("rocket.jpg {recipe_json}: zune-jpeg vs libjpeg: max {max:.2}, mean {mean:.4} levels");
        assert!(max <= 3.0 && mean <= 0.05, "rocket.jpg: decoders differ by {max} levels (mean {mean})");
    }
}

/// Bit depths and alpha channels the test images don't have, made here and checked the same way.
#[test]
fn sixteen_bit_and_alpha_pngs() {
    let dir = tempdir();
    let (w, h) = (53u32, 37u32);
    let rgb16 = image::ImageBuffer::from_fn(w, h, |x, y| {
        image::Rgb([(x * 1237 + y * 17) as u16, (y * 1771) as u16, ((x * y * 97) % 65536) as u16])
    });
    let rgb16_path = dir.path().join("rgb16.png");
    rgb16.save(&rgb16_path).unwrap();
    let la16 = image::ImageBuffer::from_fn(w, h, |x, y| image::LumaA([(x * 900 + y * 400) as u16, (x * 7) as u16]));
    let la16_path = dir.path().join("la16.png");
    la16.save(&la16_path).unwrap();
    let rgba8 = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x * 4) as u8, (y * 6) as u8, 77, (x + y) as u8]));
    let rgba8_path = dir.path().join("rgba8.png");
    rgba8.save(&rgba8_path).unwrap();

    for (path, recipes) in [
        (
            &rgb16_path,
            [r#"{"shape": [1, 3, 24, 80]}"#, r#"{"shape": [1, 1, 40, 40], "channels": "GRAY", "resize": "letterbox"}"#],
        ),
        (
            &la16_path,
            [
                r#"{"shape": [1, 3, 24, 80], "channels": "BGR"}"#,
                r#"{"shape": [1, 70, 90, 1], "layout": "NHWC", "channels": "GRAY"}"#,
            ],
        ),
        (
            &rgba8_path,
            [r#"{"shape": [1, 3, 64, 64], "resize": "letterbox"}"#, r#"{"shape": [1, 1, 10, 10], "channels": "GRAY"}"#],
        ),
    ] {
        for recipe in recipes {
            let diff = rust_vs_numpy(path, recipe);
            assert!(diff <= TOLERANCE, "{} {recipe}: rust and numpy differ by {diff}", path.display());
        }
    }
}

/// The npy reader against numpy's own writer: every header and dtype numpy produces for our types, Fortran
/// order, both npz flavours, and the refusals.
#[test]
fn npy_and_npz_written_by_numpy() {
    let dir = tempdir();
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
a = (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4)
np.save(f"{d}/f4.npy", a)
np.save(f"{d}/fortran.npy", np.asfortranarray(a))
np.save(f"{d}/f8.npy", a.astype(np.float64) / 3)
np.save(f"{d}/f2.npy", a.astype(np.float16))
np.save(f"{d}/i8.npy", np.array([[-(2**62), 5], [7, 2**40]], dtype=np.int64))
np.save(f"{d}/i4.npy", np.array([-3, 2**30], dtype=np.int32))
np.save(f"{d}/u1.npy", np.arange(250, 256, dtype=np.uint8))
np.save(f"{d}/scalar.npy", np.float32(2.5))
np.save(f"{d}/be.npy", a.astype(">f4"))
np.save(f"{d}/bool.npy", a > 0)
np.save(f"{d}/u2.npy", a.astype(np.uint16))
np.savez(f"{d}/stored.npz", x=a, input_ids=np.array([[101, 2023, 102]], dtype=np.int64))
np.savez_compressed(f"{d}/deflated.npz", x=a, input_ids=np.array([[101, 2023, 102]], dtype=np.int64))
"#;
    run_python(&["-c".as_ref(), script.as_ref(), dir.path().as_os_str()]);
    let read = |name: &str| read_npy(&dir.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
    let a: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let expect_a = Tensor::from_f32(vec![2, 3, 4], a.clone()).unwrap();
    assert_eq!(read("f4.npy"), expect_a);
    assert_eq!(read("fortran.npy"), expect_a);
    assert_eq!(read("f2.npy"), expect_a);
    let f8 = read("f8.npy");
    let thirds: Vec<f32> = a.iter().map(|&v| (f64::from(v) / 3.0) as f32).collect();
    assert_eq!(f8.as_f32().unwrap(), thirds.as_slice());
    assert_eq!(read("i8.npy").data(), &TensorData::I64(vec![-(1 << 62), 5, 7, 1 << 40]));
    assert_eq!(read("i4.npy").data(), &TensorData::I32(vec![-3, 1 << 30]));
    assert_eq!(read("u1.npy").data(), &TensorData::U8(vec![250, 251, 252, 253, 254, 255]));
    let scalar = read("scalar.npy");
    assert_eq!((scalar.shape(), scalar.as_f32().unwrap()), (&[][..], &[2.5f32][..]));

    for (name, needle) in [("be.npy", "big-endian"), ("bool.npy", "boolean"), ("u2.npy", "supported: <f4")] {
        let e = read_npy(&dir.path().join(name)).unwrap_err();
        assert!(matches!(e, InputError::UnsupportedDtype { .. }), "{name}: {e}");
        assert!(e.to_string().contains(needle) && e.to_string().contains(name), "{name}: {e}");
    }

    let ids = Tensor::new(vec![1, 3], TensorData::I64(vec![101, 2023, 102])).unwrap();
    for npz in ["stored.npz", "deflated.npz"] {
        let arrays = load_npz(&dir.path().join(npz)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(arrays, vec![("x".to_string(), expect_a.clone()), ("input_ids".to_string(), ids.clone())]);
        assert_eq!(load_input_file(&dir.path().join(npz), None, "input_ids").unwrap(), ids);
    }
}
