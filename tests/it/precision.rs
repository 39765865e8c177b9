//! Calibration, export and simulation on the real models (as bundles made from the real assets), judged by the
//! Python `onnx` checker and ONNX Runtime.

use std::path::Path;

use precisiond::calib::{CalibrationCache, ScalesFile};
use precisiond::model::Model;
use precisiond::pipeline::Job;
use precisiond::precision::export::{Flavor, export};
use precisiond::precision::{Plan, Precision};
use precisiond::progress::Silent;
use precisiond::simulate::{Aggregate, Metrics};
use precisiond::tensor::Tensor;

use crate::support::{self, judge, run};

/// The shape of plan a search ends with: the input half of the quantizable layers in INT8, the output half in
/// FP16, every seventh layer there in FP32. (A plan that alternates precision layer by layer puts rec's output at a
/// cosine of 0.72, where single rounding flips, which tract and ONNX Runtime place differently, move the mean
/// cosine by up to 0.0022; such a plan is no candidate of any search.)
fn mixed_plan(model: &Model) -> Plan {
    let graph = model.graph();
    let mut plan = Plan::uniform(&graph, Precision::Int8);
    let n = graph.quantizable().count();
    for (i, index) in graph.quantizable().enumerate().skip(n / 2) {
        let precision = if i % 7 == 5 { Precision::Fp32 } else { Precision::Fp16 };
        plan = plan.with(&graph.node(index).name, precision);
    }
    plan
}

fn concat(tensors: &[&Tensor]) -> Tensor {
    let mut shape = tensors[0].shape().to_vec();
    shape[0] = tensors.len();
    Tensor::from_f32(shape, tensors.iter().flat_map(|t| t.as_f32().unwrap().to_vec()).collect()).unwrap()
}

fn split(tensor: &Tensor, n: usize) -> Vec<Tensor> {
    let mut shape = tensor.shape().to_vec();
    shape[0] = 1;
    tensor.as_f32().unwrap().chunks_exact(tensor.len() / n).map(|c| Tensor::from_f32(shape.clone(), c.to_vec()).unwrap()).collect()
}

/// Writes the deployed export of `plan`, checks it with `onnx.checker` (full) and returns what ONNX Runtime
/// computes on every eval sample (output 0).
fn onnx_runtime_on_export(dir: &Path, job: &Job, plan: &Plan, scales: &ScalesFile, eval: &[Vec<Tensor>]) -> Vec<Tensor> {
    let path = dir.join("export.onnx");
    Model::from_proto(export(&job.model, plan, scales, Flavor::Deploy).unwrap(), &path).unwrap().save(&path).unwrap();
    let check = judge(&[&"check", &path]);
    assert_eq!(check["ok"], true, "onnx checker on the export: {check}");
    let input = &job.inputs[0].0.name;
    // Models with a fixed batch of 1 get one call per sample; the others one call for all.
    let per_call = if job.inputs[0].0.dims.first() == Some(&Some(1)) { 1 } else { eval.len() };
    let mut outputs = Vec::new();
    for chunk in eval.chunks(per_call) {
        let batch = concat(&chunk.iter().map(|s| &s[0]).collect::<Vec<_>>());
        support::write_npz(&dir.join("in.npz"), &[(input.as_str(), &batch)]);
        judge(&[&"run", &path, &dir.join("in.npz"), &dir.join("out.npz")]);
        let out = precisiond::inputs::npy::load_npz(&dir.join("out.npz")).unwrap();
        outputs.extend(split(&out[0].1, chunk.len()));
    }
    outputs
}

/// The simulated metrics of an all-INT8 and a mixed plan agree with what ONNX Runtime measures on the exports.
fn simulation_agrees_with_onnx_runtime(bundle: &str) {
    let dir = support::tempdir();
    let job = Job::open(&support::bundle(bundle)).unwrap();
    let scales = job.calibrate(&Silent).unwrap();
    let simulator = job.simulator(scales.clone()).unwrap();
    let eval = job.eval_samples().unwrap();
    let graph = job.model.graph();
    let threshold = job.bounds().mask_iou.map(|(_, t)| t);
    for (label, plan) in [("all-fp16", Plan::uniform(&graph, Precision::Fp16)), ("all-int8", Plan::uniform(&graph, Precision::Int8)), ("mixed", mixed_plan(&job.model))] {
        let predicted = simulator.evaluate(&plan, &Silent).unwrap().metrics;
        let measured_outputs = onnx_runtime_on_export(dir.path(), &job, &plan, &scales, &eval);
        let per_sample: Vec<Metrics> =
            simulator.references().iter().zip(&measured_outputs).map(|(r, m)| Metrics::of(&r[0], m, threshold)).collect();
        let measured = Metrics::aggregate(&per_sample, Aggregate::Mean);
        eprintln!("{bundle} {label}: simulated {predicted:?}\n{bundle} {label}: ONNX Runtime {measured:?}");
        assert!(predicted.cosine < 1.0, "{bundle} {label}: a quantized plan changes the outputs");
        assert!(
            (predicted.cosine - measured.cosine).abs() <= 0.002,
            "{bundle} {label}: simulated cosine {} vs ONNX Runtime {}",
            predicted.cosine,
            measured.cosine
        );
        // The task metrics that the bundle's budget names (argmax over a detector's width axis means nothing).
        let bounds = job.bounds();
        if bounds.argmax_agreement.is_some() {
            let (p, m) = (predicted.argmax_agreement.unwrap(), measured.argmax_agreement.unwrap());
            assert!((p - m).abs() <= 0.01, "{bundle} {label}: argmax agreement simulated {p} vs ONNX Runtime {m}");
        }
        if bounds.mask_iou.is_some() {
            let (p, m) = (predicted.mask_iou.unwrap(), measured.mask_iou.unwrap());
            assert!((p - m).abs() <= 0.01, "{bundle} {label}: mask IoU simulated {p} vs ONNX Runtime {m}");
        }
    }
}

#[test]
fn det_simulation_agrees_with_onnx_runtime() {
    simulation_agrees_with_onnx_runtime("det");
}

#[test]
fn rec_simulation_agrees_with_onnx_runtime() {
    simulation_agrees_with_onnx_runtime("rec");
}

#[test]
fn cls_simulation_agrees_with_onnx_runtime() {
    simulation_agrees_with_onnx_runtime("cls");
}

#[test]
fn digits_simulation_agrees_with_onnx_runtime() {
    simulation_agrees_with_onnx_runtime("digits");
}

#[test]
fn digits_all_int8_keeps_top1_within_one_percent_of_fp32() {
    let dir = support::tempdir();
    let job = Job::open(&support::bundle("digits")).unwrap();
    let scales = job.calibrate(&Silent).unwrap();
    let path = dir.path().join("int8.onnx");
    let plan = Plan::uniform(&job.model.graph(), Precision::Int8);
    Model::from_proto(export(&job.model, &plan, &scales, Flavor::Deploy).unwrap(), &path).unwrap().save(&path).unwrap();
    let (x, y) = (support::asset("data/digits_test_x.npy"), support::asset("data/digits_test_y.npy"));
    let fp32 = judge(&[&"accuracy", &support::model("digits_cnn"), &x, &y])["top1"].as_f64().unwrap();
    let int8 = judge(&[&"accuracy", &path, &x, &y])["top1"].as_f64().unwrap();
    assert!(fp32 > 0.9, "{fp32}");
    assert!((fp32 - int8).abs() <= 0.01, "FP32 top-1 {fp32}, all-INT8 top-1 {int8}");
}

#[test]
fn calibrate_on_cls_writes_one_cache_line_per_tensor_read_by_its_54_layers() {
    let dir = support::tempdir();
    let bundle = support::bundle("cls");
    let (code, out, err) = run(&[&"calibrate", &bundle, &"--out", &dir.path(), &"--tensorrt", &"8.5.2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("calibrated 54 activations and 54 weights"), "{out}");
    let text = std::fs::read_to_string(dir.path().join("calib.cache")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("TRT-8502-EntropyCalibration2"));
    let job = Job::open(&bundle).unwrap();
    let graph = job.model.graph();
    assert_eq!(graph.quantizable().count(), 54);
    let mut read_by_layers: Vec<String> = Vec::new();
    for index in graph.quantizable() {
        for t in precisiond::model::weights::operands(job.model.graph_proto(), &graph, index).activations {
            if !read_by_layers.contains(&t) {
                read_by_layers.push(t);
            }
        }
    }
    let names: Vec<&str> = lines.clone().map(|l| l.rsplit_once(": ").unwrap().0).collect();
    assert_eq!(names, read_by_layers, "one line per activation tensor, in the model's order");
    for line in lines {
        let hex = line.rsplit_once(": ").unwrap().1;
        assert!(!hex.starts_with('0') || hex == "0", "no zero padding: {line}");
        let scale = f32::from_bits(u32::from_str_radix(hex, 16).unwrap());
        assert!(scale.is_finite() && scale > 0.0, "{line}");
    }
    // The reader gives back exactly the scales of scales.json.
    let cache = CalibrationCache::read(&dir.path().join("calib.cache")).unwrap();
    let scales = ScalesFile::read(&dir.path().join("scales.json")).unwrap();
    for (name, scale) in scales.activations() {
        assert_eq!(cache.scale(name).map(f32::to_bits), Some(scale.scale.to_bits()), "{name}");
    }
}

#[test]
fn exports_of_every_real_model_pass_the_checker_and_run_in_onnx_runtime() {
    let dir = support::tempdir();
    for bundle in ["det", "rec", "cls", "digits"] {
        let job = Job::open(&support::bundle(bundle)).unwrap();
        let scales = job.calibrate(&Silent).unwrap();
        let eval = job.eval_samples().unwrap();
        for plan in [Plan::uniform(&job.model.graph(), Precision::Int8), mixed_plan(&job.model), Plan::uniform(&job.model.graph(), Precision::Fp16)] {
            let outputs = onnx_runtime_on_export(dir.path(), &job, &plan, &scales, &eval[..1]);
            assert!(outputs[0].as_f32().unwrap().iter().all(|v| v.is_finite()), "{bundle}: finite outputs");
        }
    }
}

#[test]
fn a_plan_naming_a_missing_layer_is_refused_with_the_closest_name() {
    let dir = support::tempdir();
    let bundle = support::bundle("digits");
    let job = Job::open(&bundle).unwrap();
    let graph = job.model.graph();
    let first = graph.node(graph.quantizable().next().unwrap()).name.clone();
    let plan = Plan::uniform(&graph, Precision::Int8).to_toml().replace(&format!("{first} ="), &format!("{first}x ="));
    let path = dir.path().join("plan.toml");
    support::write(&path, plan.as_bytes());
    let (code, _, err) = run(&[&"simulate", &bundle, &"--plan", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("`{first}x`")) && err.contains(&format!("did you mean `{first}`")), "{err}");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn simulate_json_carries_the_contract_fields() {
    let (code, out, err) = run(&[&"simulate", &support::bundle("digits"), &"--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["cosine", "sqnr_db", "max_abs", "argmax_agreement"] {
        assert!(json["metrics"][key].is_number(), "metrics.{key}: {json}");
    }
    for key in ["int8", "fp16", "fp32"] {
        assert!(json["plan"][key].is_u64(), "plan.{key}: {json}");
    }
    assert_eq!(json["plan"]["int8"], 4);
    assert_eq!(json["plan"]["int8_mac_fraction"], 1.0);
    assert_eq!(json["budget_met"], true);
}

#[test]
fn calibration_is_deterministic_whatever_the_worker_timing() {
    let bundle = support::bundle("rec");
    let dir = support::tempdir();
    let mut outputs = Vec::new();
    for run_index in 0..2 {
        let out = dir.path().join(format!("run{run_index}"));
        let (code, _, err) = run(&[&"calibrate", &bundle, &"--out", &out]);
        assert_eq!(code, 0, "{err}");
        outputs.push(std::fs::read(out.join("scales.json")).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "two calibrations of the same bundle give the same scales.json");
}
