//! Opset upgrade (src/model/opset.rs) against the judges: the real models, and one small old-opset model per
//! operator whose meaning changed (scripts/make_opset_cases.py), each upgraded, checked by `onnx` and run by ONNX
//! Runtime against the original on the same inputs.

use std::path::Path;
use std::process::Command;

use precisiond::exec::Executor;
use precisiond::inputs::{self, load_input_file};
use precisiond::model::Model;
use precisiond::model::opset::{Rewrite, upgrade, upgrade_with_report};
use precisiond::tensor::Tensor;

use crate::support::{self, judge};

const DET: &str = "shape = [1, 3, 320, 320]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]";
const REC: &str = "shape = [1, 3, 48, 320]\nmean = [0.5]\nstd = [0.5]";
const CLS: &str = "shape = [1, 3, 48, 192]\nmean = [0.5]\nstd = [0.5]";

/// Same operators, same kernels: the upgraded model may differ from the original only by float noise.
const SAME_MODEL: f32 = 1e-5;
/// tract against ONNX Runtime, as in tests/it/exec.rs.
const TRACT_VS_ORT: f32 = 1e-4;

fn real_input(name: &str) -> Tensor {
    let image = |file: &str, recipe: &str| {
        load_input_file(&support::asset(&format!("images/{file}")), Some(&support::recipe(recipe)), "x").unwrap()
    };
    match name {
        "det" => image("page.png", DET),
        "rec" => image("text.png", REC),
        "cls" => image("text.png", CLS),
        _ => {
            let x = inputs::npy::read_npy(&support::asset("data/digits_test_x.npy")).unwrap();
            let n = 8;
            let per_sample: usize = x.shape()[1..].iter().product();
            let mut shape = x.shape().to_vec();
            shape[0] = n;
            Tensor::from_f32(shape, x.as_f32().unwrap()[..n * per_sample].to_vec()).unwrap()
        }
    }
}

/// Largest |a - b| over outputs matched by name; also the largest |b| (to show the outputs are not all zero).
fn max_diff(ours: &[(String, Tensor)], reference: &[(String, Tensor)], what: &str) -> (f32, f32) {
    assert_eq!(ours.len(), reference.len(), "{what}: output count");
    let (mut diff, mut scale) = (0.0f32, 0.0f32);
    for (name, a) in ours {
        let (_, b) = reference.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{what}: no output {name}"));
        assert_eq!(a.shape(), b.shape(), "{what}: shape of {name}");
        for (x, y) in a.as_f32().unwrap().iter().zip(b.as_f32().unwrap()) {
            diff = diff.max((x - y).abs());
            scale = scale.max(y.abs());
        }
    }
    (diff, scale)
}

fn ort(model: &Path, feed: &Path, out: &Path) -> Vec<(String, Tensor)> {
    judge(&[&"run", &model, &feed, &out]);
    inputs::npy::load_npz(out).unwrap()
}

fn tract(model: &Model, input: &Tensor) -> Vec<(String, Tensor)> {
    let executor = Executor::new(model, &[("x".into(), input.shape().to_vec())]).unwrap();
    let outputs = executor.run(std::slice::from_ref(input)).unwrap();
    executor.output_names().iter().cloned().zip(outputs).collect()
}

/// Upgrades real model `name` to 13 and to 21 and holds each against the original: the onnx checker accepts it,
/// ONNX Runtime gives the same outputs on a real input, and (at 13, where the exports run) tract runs it to the same
/// result. Returns the rewrites at each target.
fn upgrade_real_model(name: &str) -> Vec<(i64, Vec<Rewrite>)> {
    let original_path = support::model(name);
    let original = Model::load(&original_path).unwrap();
    let input = real_input(name);
    let dir = support::tempdir();
    let feed = dir.path().join("in.npz");
    support::write_npz(&feed, &[("x", &input)]);
    let reference = ort(&original_path, &feed, &dir.path().join("before.npz"));
    let tract_before = tract(&original, &input);

    let mut reports = Vec::new();
    for target in [13, 21] {
        let upgraded = upgrade_with_report(original.proto(), target).unwrap();
        let path = dir.path().join(format!("{name}@{target}.onnx"));
        let model = Model::from_proto(upgraded.model, &path).unwrap();
        model.save(&path).unwrap();

        let check = judge(&[&"check", &path]);
        assert_eq!(check["ok"], true, "{name}@{target}: {check}");
        let count = judge(&[&"count", &path]);
        assert_eq!(count["opset"], target, "{name}@{target}");
        assert!(count["ir_version"].as_i64().unwrap() >= if target == 13 { 7 } else { 10 }, "{name}@{target}");

        let after = ort(&path, &feed, &dir.path().join(format!("after{target}.npz")));
        let (diff, scale) = max_diff(&after, &reference, &format!("{name}@{target} ORT"));
        assert!(
            diff <= SAME_MODEL * scale.max(1.0) && scale > 0.5,
            "{name}@{target}: ORT moved by {diff} (outputs up to {scale})"
        );

        if target == 13 {
            let ours = tract(&model, &input);
            let (diff, _) = max_diff(&ours, &tract_before, &format!("{name}@13 tract"));
            assert!(diff <= SAME_MODEL * scale.max(1.0), "{name}@13: tract moved by {diff}");
            let (diff, _) = max_diff(&ours, &reference, &format!("{name}@13 tract vs ORT"));
            assert!(diff <= TRACT_VS_ORT * scale.max(1.0), "{name}@13: tract vs ORT {diff}");
        }
        reports.push((target, upgraded.rewrites));
    }
    reports
}

fn rewritten_ops(rewrites: &[Rewrite]) -> Vec<&str> {
    rewrites.iter().map(|r| r.op.as_str()).collect()
}

#[test]
fn det_upgrades_with_no_rewrite() {
    // Opset 12: its Clip already takes inputs, its Resize already names its coordinate mode.
    for (target, rewrites) in upgrade_real_model("det") {
        assert!(rewrites.is_empty(), "det@{target}: {rewrites:?}");
    }
}

#[test]
fn rec_upgrades_its_squeeze_axes_and_keeps_its_softmaxes() {
    let reports = upgrade_real_model("rec");
    // Its three Softmax nodes act on the last axis (ranks 4, 4 and 3, inferred through Transpose, Squeeze and
    // MatMul), so they keep their node; the seven Squeeze nodes move `axes` to an input.
    let (_, at13) = &reports[0];
    assert_eq!(rewritten_ops(at13), ["Squeeze"; 7], "{at13:?}");
    let (_, at21) = &reports[1];
    let mut ops = rewritten_ops(at21);
    ops.sort();
    let mut expected = vec!["ReduceMean"; 10];
    expected.extend(["Squeeze"; 7]);
    assert_eq!(ops, expected, "{at21:?}");
}

#[test]
fn cls_upgrades_with_no_rewrite() {
    // Its Softmax (axis 1) takes the rank-2 output of MatMul + Add: the last axis, so the meaning is unchanged.
    for (target, rewrites) in upgrade_real_model("cls") {
        assert!(rewrites.is_empty(), "cls@{target}: {rewrites:?}");
    }
}

#[test]
fn digits_cnn_is_already_at_13() {
    let model = Model::load(&support::model("digits_cnn")).unwrap();
    assert_eq!(&upgrade(model.proto(), 13).unwrap(), model.proto());
    for (target, rewrites) in upgrade_real_model("digits_cnn") {
        assert!(rewrites.is_empty(), "digits_cnn@{target}: {rewrites:?}");
    }
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    targets: Vec<i64>,
}

fn cases_script(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    let mut cmd = Command::new(support::python());
    cmd.arg(support::repo().join("scripts/make_opset_cases.py"));
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().expect("python runs");
    assert!(out.status.success(), "make_opset_cases.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("make_opset_cases.py prints JSON")
}

#[test]
fn every_changed_operator_computes_the_same_after_the_upgrade() {
    let dir = support::tempdir();
    cases_script(&[&"write", &dir.path()]);
    let manifest: Vec<Case> =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.len() >= 25, "{} cases", manifest.len());

    let mut upgrades = 0;
    for case in &manifest {
        let original = Model::load(&dir.path().join(format!("{}.onnx", case.name))).unwrap();
        for &target in &case.targets {
            let upgraded = upgrade_with_report(original.proto(), target)
                .unwrap_or_else(|e| panic!("{}@{target}: {}", case.name, precisiond::error::Failure::from(e)));
            if Some(&target) == case.targets.last() {
                assert!(!upgraded.rewrites.is_empty(), "{}@{target}: nothing was rewritten", case.name);
            }
            let path = dir.path().join(format!("{}@{target}.onnx", case.name));
            Model::from_proto(upgraded.model, &path).unwrap().save(&path).unwrap();
            upgrades += 1;
        }
    }

    let verdict = cases_script(&[&"compare", &dir.path()]);
    let results = verdict["results"].as_array().unwrap();
    assert_eq!(results.len(), upgrades);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != true || r["max_diff"].as_f64().unwrap() > SAME_MODEL as f64)
        .map(|r| r.to_string())
        .collect();
    assert!(failures.is_empty(), "{} of {upgrades} upgrades differ:\n{}", failures.len(), failures.join("\n"));
}

/// The general Softmax rewrite (Flatten → Softmax → Reshape, for an input whose rank is unknown) against the
/// opset-11 meaning computed by hand: softmax over everything after axis 1, per batch row.
#[test]
fn the_flatten_reshape_form_runs_in_tract_with_the_old_meaning() {
    use precisiond::model::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TypeProto, ValueInfoProto,
        attribute_proto::AttributeType, tensor_shape_proto, type_proto,
    };
    let value = |name: &str, dims: &[i64]| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(precisiond::model::proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                            denotation: None,
                        })
                        .collect(),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>| NodeProto {
        op_type: Some(op.into()),
        name: Some(output.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    };
    let axis = AttributeProto {
        name: Some("axis".into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(1),
        ..Default::default()
    };
    // Reshape to the input's own shape, read at run time: the rank is hidden from the upgrade.
    let original = ModelProto {
        ir_version: Some(6),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(11) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![
                node("Shape", &["x"], "shape", vec![]),
                node("Reshape", &["x", "shape"], "hidden", vec![]),
                node("Softmax", &["hidden"], "y", vec![axis]),
            ],
            input: vec![value("x", &[2, 3, 4])],
            output: vec![value("y", &[2, 3, 4])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let upgraded = upgrade_with_report(&original, 13).unwrap();
    assert_eq!(upgraded.rewrites.len(), 1, "{:?}", upgraded.rewrites);
    let ops: Vec<&str> = upgraded.model.graph.as_ref().unwrap().node.iter().map(|n| n.op_type()).collect();
    assert_eq!(ops, ["Shape", "Reshape", "Flatten", "Shape", "Softmax", "Reshape"]);

    let values: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 * 0.5 - 2.0).collect();
    let input = Tensor::from_f32(vec![2, 3, 4], values.clone()).unwrap();
    let model = Model::from_proto(upgraded.model, Path::new("softmax@13.onnx")).unwrap();
    let ours = tract(&model, &input);
    let expected: Vec<f32> = values
        .chunks(12)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            row.iter().map(move |v| (v - max).exp() / sum).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ours[0].1.shape(), [2, 3, 4]);
    for (a, b) in ours[0].1.as_f32().unwrap().iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
}
