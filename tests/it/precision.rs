//! Calibration, export and simulation on the real models, judged by the Python `onnx` checker and ONNX Runtime.

use std::path::Path;

use precisiond::calib::{Method, ScalesFile};
use precisiond::calib::run::calibrate;
use precisiond::exec::resolve_input_shapes;
use precisiond::inputs::{self, load_input_file};
use precisiond::model::Model;
use precisiond::precision::export::{Flavor, export};
use precisiond::precision::{Plan, Precision};
use precisiond::progress::Silent;
use precisiond::simulate::{Aggregate, Bounds, Metrics, Simulator};
use precisiond::tensor::{Tensor, TensorData};

use crate::support::{self, judge};

/// Splits a `[K, …]` array into K samples of `[1, …]`.
pub fn split_samples(tensor: &Tensor) -> Vec<Vec<Tensor>> {
    let per: usize = tensor.shape()[1..].iter().product();
    let mut shape = tensor.shape().to_vec();
    shape[0] = 1;
    tensor.as_f32().unwrap().chunks_exact(per).map(|c| vec![Tensor::from_f32(shape.clone(), c.to_vec()).unwrap()]).collect()
}

/// Concatenates single-sample inputs along the batch axis (for one ONNX Runtime call).
fn batch(samples: &[Vec<Tensor>]) -> Tensor {
    let mut shape = samples[0][0].shape().to_vec();
    shape[0] = samples.len();
    Tensor::from_f32(shape, samples.iter().flat_map(|s| s[0].as_f32().unwrap().to_vec()).collect()).unwrap()
}

fn unbatch(tensor: &Tensor, n: usize) -> Vec<Tensor> {
    let per = tensor.len() / n;
    let mut shape = tensor.shape().to_vec();
    shape[0] = 1;
    tensor.as_f32().unwrap().chunks_exact(per).map(|c| Tensor::from_f32(shape.clone(), c.to_vec()).unwrap()).collect()
}

pub struct Case {
    pub model: Model,
    pub shapes: Vec<(String, Vec<usize>)>,
    pub calib: Vec<Vec<Tensor>>,
    pub eval: Vec<Vec<Tensor>>,
}

pub fn digits_case() -> Case {
    let model = Model::load(&support::model("digits_cnn")).unwrap();
    let train = inputs::npy::read_npy(&support::asset("data/digits_train_x.npy")).unwrap();
    let test = inputs::npy::read_npy(&support::asset("data/digits_test_x.npy")).unwrap();
    Case { model, shapes: vec![("x".into(), vec![1, 1, 8, 8])], calib: split_samples(&train), eval: split_samples(&test) }
}

pub fn cls_case() -> Case {
    let recipe = support::recipe("shape = [1, 3, 48, 192]\nmean = [0.5]\nstd = [0.5]");
    let load = |name: &str| vec![load_input_file(&support::asset(&format!("images/{name}")), Some(&recipe), "x").unwrap()];
    let calib = ["page.png", "astronaut.png", "coffee.png", "chelsea.png", "camera.png", "horse.png", "moon.png", "cell.png",
        "color.png", "grass.png", "gravel.png", "ihc.png"]
        .map(load)
        .to_vec();
    let eval = ["text.png", "rocket.jpg", "coins.png", "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg",
        "china.jpg", "flower.jpg", "brick.png", "clock_motion.png", "logo.png", "retina.jpg"]
        .map(load)
        .to_vec();
    Case { model: Model::load(&support::model("cls")).unwrap(), shapes: vec![("x".into(), vec![1, 3, 48, 192])], calib, eval }
}

pub fn scales_for(case: &Case) -> ScalesFile {
    let samples = case.calib.clone().into_iter().map(Ok);
    calibrate(&case.model, &case.shapes, samples, None, Method::Entropy, &Silent).unwrap()
}

/// Every third quantizable layer in FP16, every seventh in FP32, the rest INT8.
fn mixed_plan(model: &Model) -> Plan {
    let graph = model.graph();
    let mut plan = Plan::uniform(&graph, Precision::Int8);
    for (i, index) in graph.quantizable().enumerate() {
        let name = &graph.node(index).name;
        if i % 3 == 1 {
            plan = plan.with(name, Precision::Fp16);
        } else if i % 7 == 5 {
            plan = plan.with(name, Precision::Fp32);
        }
    }
    plan
}

/// ONNX Runtime's outputs of the deployed export, one per eval sample (output 0).
fn ort_outputs(dir: &Path, model: &Model, plan: &Plan, scales: &ScalesFile, eval: &[Vec<Tensor>]) -> Vec<Tensor> {
    let exported = Model::from_proto(export(model, plan, scales, Flavor::Deploy).unwrap(), &dir.join("export.onnx")).unwrap();
    exported.save(&dir.join("export.onnx")).unwrap();
    let check = judge(&[&"check", &dir.join("export.onnx")]);
    assert_eq!(check["ok"], true, "onnx checker: {check}");
    // One sample per call keeps the model's declared batch dimension (cls declares it fixed to 1… or dynamic).
    let mut out = Vec::new();
    for chunk in eval.chunks(if model.graph().len() < 20 { eval.len() } else { 1 }) {
        support::write_npz(&dir.join("in.npz"), &[("x", &batch(chunk))]);
        judge(&[&"run", &dir.join("export.onnx"), &dir.join("in.npz"), &dir.join("out.npz")]);
        let outputs = inputs::npy::load_npz(&dir.join("out.npz")).unwrap();
        out.extend(unbatch(&outputs[0].1, chunk.len()));
    }
    out
}

fn check_agreement(name: &str, case: Case) {
    let dir = support::tempdir();
    let scales = scales_for(&case);
    let bounds = Bounds { aggregate: Aggregate::Mean, ..Default::default() };
    let graph = case.model.graph();
    let plans = [("all-int8", Plan::uniform(&graph, Precision::Int8)), ("mixed", mixed_plan(&case.model))];
    let simulator = Simulator::new(case.model.clone(), case.shapes.clone(), case.eval.clone(), scales.clone(), bounds).unwrap();
    for (label, plan) in plans {
        let predicted = simulator.evaluate(&plan, &Silent).unwrap().metrics;
        let measured_outputs = ort_outputs(dir.path(), &case.model, &plan, &scales, &case.eval);
        let per_sample: Vec<Metrics> = simulator
            .references()
            .iter()
            .zip(&measured_outputs)
            .map(|(r, m)| Metrics::of(&r[0], m, None))
            .collect();
        let measured = Metrics::aggregate(&per_sample, Aggregate::Mean);
        let d_cos = (predicted.cosine - measured.cosine).abs();
        assert!(d_cos <= 0.002, "{name} {label}: simulated cosine {} vs ONNX Runtime {}", predicted.cosine, measured.cosine);
        if let (Some(p), Some(m)) = (predicted.argmax_agreement, measured.argmax_agreement) {
            assert!((p - m).abs() <= 0.01, "{name} {label}: argmax agreement simulated {p} vs ONNX Runtime {m}");
        }
        assert!(predicted.cosine < 1.0, "{name} {label}: a quantized plan changes the outputs");
    }
}

#[test]
fn digits_simulation_agrees_with_onnx_runtime_on_the_export() {
    check_agreement("digits", digits_case());
}

#[test]
fn cls_simulation_agrees_with_onnx_runtime_on_the_export() {
    check_agreement("cls", cls_case());
}

#[test]
fn digits_all_int8_keeps_top1_within_one_percent_of_fp32() {
    let case = digits_case();
    let scales = scales_for(&case);
    let dir = support::tempdir();
    let plan = Plan::uniform(&case.model.graph(), Precision::Int8);
    let exported = Model::from_proto(export(&case.model, &plan, &scales, Flavor::Deploy).unwrap(), &dir.path().join("q.onnx")).unwrap();
    exported.save(&dir.path().join("q.onnx")).unwrap();
    let (x, y) = (support::asset("data/digits_test_x.npy"), support::asset("data/digits_test_y.npy"));
    let fp32 = judge(&[&"accuracy", &support::model("digits_cnn"), &x, &y])["top1"].as_f64().unwrap();
    let int8 = judge(&[&"accuracy", &dir.path().join("q.onnx"), &x, &y])["top1"].as_f64().unwrap();
    assert!(fp32 > 0.9, "{fp32}");
    assert!((fp32 - int8).abs() <= 0.01, "FP32 top-1 {fp32}, all-INT8 top-1 {int8}");
}

#[test]
fn calibration_covers_every_activation_a_quantizable_layer_reads() {
    let case = cls_case();
    let scales = scales_for(&case);
    let graph = case.model.graph();
    let quantizable: Vec<usize> = graph.quantizable().collect();
    assert_eq!(quantizable.len(), 54, "cls has 54 quantizable layers");
    for index in quantizable {
        let operands = precisiond::model::weights::operands(case.model.graph_proto(), &graph, index);
        for tensor in &operands.activations {
            let s = scales.activation(tensor).unwrap_or_else(|| panic!("no scale for {tensor}"));
            assert!(s.scale.is_finite() && s.scale > 0.0 && (s.scale - s.amax / 127.0).abs() <= s.scale * 1e-5);
        }
        let weight = operands.weight.expect("cls layers have constant weights");
        assert!(scales.weight(&weight.tensor).unwrap().scales.iter().all(|s| s.is_finite() && *s > 0.0));
    }
    let _ = resolve_input_shapes(&case.model, &case.shapes).unwrap();
    let _ = TensorData::F32(vec![]);
}

