//! The CPU reference executor against ONNX Runtime, on the real models with real inputs.

use precisiond::exec::Executor;
use precisiond::inputs::{self, load_input_file};
use precisiond::model::Model;
use precisiond::tensor::Tensor;

use crate::support::{self, judge};

const DET: &str = "shape = [1, 3, 320, 480]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]";
const REC: &str = "shape = [1, 3, 48, 320]\nmean = [0.5]\nstd = [0.5]";
const CLS: &str = "shape = [1, 3, 48, 192]\nmean = [0.5]\nstd = [0.5]";

fn image_input(image: &str, recipe: &str) -> Tensor {
    load_input_file(&support::asset(&format!("images/{image}")), Some(&support::recipe(recipe)), "x").unwrap()
}

/// The first `n` samples of a batch-major tensor.
fn first_samples(tensor: &Tensor, n: usize) -> Tensor {
    let per_sample: usize = tensor.shape()[1..].iter().product();
    let mut shape = tensor.shape().to_vec();
    shape[0] = n;
    Tensor::from_f32(shape, tensor.as_f32().unwrap()[..n * per_sample].to_vec()).unwrap()
}

/// Runs `model` on `input` in tract and in ONNX Runtime; returns the largest absolute difference over all outputs
/// and the largest absolute output value (to show the outputs are of order 1).
fn tract_vs_ort(name: &str, input: &Tensor) -> (f32, f32) {
    let path = support::model(name);
    let model = Model::load(&path).unwrap();
    let executor = Executor::new(&model, &[("x".into(), input.shape().to_vec())]).unwrap();
    let ours = executor.run(std::slice::from_ref(input)).unwrap();

    let dir = support::tempdir();
    let (feed, fetched) = (dir.path().join("in.npz"), dir.path().join("out.npz"));
    support::write_npz(&feed, &[("x", input)]);
    judge(&[&"run", &path, &feed, &fetched]);
    let theirs = inputs::npy::load_npz(&fetched).unwrap();

    let (mut max_diff, mut max_value) = (0.0f32, 0.0f32);
    for (output_name, ours) in executor.output_names().iter().zip(&ours) {
        let (_, reference) = theirs.iter().find(|(n, _)| n == output_name).expect("ORT output by name");
        assert_eq!(ours.shape(), reference.shape(), "{name}: {output_name} shape");
        for (a, b) in ours.as_f32().unwrap().iter().zip(reference.as_f32().unwrap()) {
            max_diff = max_diff.max((a - b).abs());
            max_value = max_value.max(b.abs());
        }
    }
    (max_diff, max_value)
}

#[test]
fn det_matches_onnx_runtime_on_a_page_of_text() {
    let (diff, scale) = tract_vs_ort("det", &image_input("page.png", DET));
    assert!(diff <= 1e-4 && scale > 0.5, "max |tract - ORT| = {diff} (outputs up to {scale})");
}

#[test]
fn rec_matches_onnx_runtime_on_text() {
    for image in ["page.png", "text.png"] {
        let (diff, scale) = tract_vs_ort("rec", &image_input(image, REC));
        assert!(diff <= 1e-4 && scale > 0.5, "{image}: max |tract - ORT| = {diff} (outputs up to {scale})");
    }
}

#[test]
fn cls_matches_onnx_runtime_on_several_images() {
    for image in ["page.png", "text.png", "astronaut.png", "rocket.jpg"] {
        let (diff, scale) = tract_vs_ort("cls", &image_input(image, CLS));
        assert!(diff <= 1e-4 && scale > 0.5, "{image}: max |tract - ORT| = {diff} (outputs up to {scale})");
    }
}

#[test]
fn digits_cnn_matches_onnx_runtime_on_held_out_digits() {
    let x = inputs::npy::read_npy(&support::asset("data/digits_test_x.npy")).unwrap();
    let (diff, scale) = tract_vs_ort("digits_cnn", &first_samples(&x, 32));
    // Logits, not probabilities: allow for their larger magnitude relative to 1e-4.
    assert!(diff <= 1e-4 * scale.max(1.0), "max |tract - ORT| = {diff} (logits up to {scale})");
}

#[test]
fn digits_cnn_top1_in_tract_equals_the_recorded_held_out_accuracy() {
    let x = inputs::npy::read_npy(&support::asset("data/digits_test_x.npy")).unwrap();
    let y = inputs::npy::read_npy(&support::asset("data/digits_test_y.npy")).unwrap();
    let labels = match y.data() {
        precisiond::tensor::TensorData::I64(v) => v.clone(),
        other => panic!("labels are int64, got {:?}", other.dtype()),
    };
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(support::asset("models/digits_cnn.json")).unwrap()).unwrap();
    let model = Model::load(&support::model("digits_cnn")).unwrap();
    let n = labels.len();
    let executor = Executor::new(&model, &[("x".into(), x.shape().to_vec())]).unwrap();
    let logits = executor.run(&[x]).unwrap().remove(0);
    let correct = logits
        .as_f32()
        .unwrap()
        .chunks_exact(10)
        .zip(&labels)
        .filter(|(row, label)| {
            let best = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            best as i64 == **label
        })
        .count();
    let accuracy = correct as f64 / n as f64;
    let expected = recorded["heldout_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "a trained digits CNN gets most digits right: {accuracy}");
    assert!((accuracy - expected).abs() <= 1.0 / n as f64, "tract {accuracy} vs recorded {expected}");
}

#[test]
fn wrong_input_shape_and_type_are_errors_not_panics() {
    let model = Model::load(&support::model("cls")).unwrap();
    let executor = Executor::new(&model, &[("x".into(), vec![1, 3, 48, 192])]).unwrap();
    let wrong = Tensor::from_f32(vec![1, 3, 48, 96], vec![0.0; 3 * 48 * 96]).unwrap();
    let err = executor.run(&[wrong]).unwrap_err().to_string();
    assert!(err.contains("1x3x48x96") && err.contains("1x3x48x192"), "{err}");
    let ints = Tensor::new(vec![1, 3, 48, 192], precisiond::tensor::TensorData::I64(vec![0; 3 * 48 * 192])).unwrap();
    let err = executor.run(&[ints]).unwrap_err().to_string();
    assert!(err.contains("int64") && err.contains("float32"), "{err}");
}
