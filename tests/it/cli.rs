//! The binary as a user meets it: output, exit codes, error messages.

use precisiond::model::Model;

use crate::support::{self, run};

#[test]
fn inspect_json_on_det_reports_the_contract_fields() {
    let (code, out, err) = run(&[&"inspect", &support::model("det"), &"--shape", &"x=1,3,320,320", &"--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["nodes"], 672);
    assert_eq!(json["summary"]["quantizable"], 64);
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 672);
    let quantizable: Vec<&serde_json::Value> = layers.iter().filter(|l| l["quantizable"] == true).collect();
    assert_eq!(quantizable.len(), 64);
    for layer in &quantizable {
        assert!(layer["name"].is_string() && layer["op"].is_string());
        assert!(layer["macs"].as_u64().unwrap() > 0, "{layer}");
    }
    let total: u64 = quantizable.iter().map(|l| l["macs"].as_u64().unwrap()).sum();
    assert_eq!(json["summary"]["macs"].as_u64(), Some(total));
}

#[test]
fn inspect_without_concrete_shapes_still_lists_layers_and_says_why_macs_are_missing() {
    let (code, out, err) = run(&[&"inspect", &support::model("det")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nodes:        672"), "{out}");
    assert!(out.contains("quantizable:  64 (62 Conv + 2 ConvTranspose)"), "{out}");
    assert!(out.contains("--shape"), "the note should say how to get MACs:\n{out}");
}

#[test]
fn inspect_table_of_a_small_model() {
    let dir = support::tempdir();
    let path = dir.path().join("small.onnx");
    Model::from_proto(crate::model::small_model(), &path).unwrap().save(&path).unwrap();
    let (code, out, err) = run(&[&"inspect", &path]);
    assert_eq!(code, 0, "{err}");
    let conv = out.lines().find(|l| l.starts_with("Conv_0")).unwrap_or_else(|| panic!("{out}"));
    assert!(conv.contains("1x4x8x8") && conv.contains("6_912") && conv.ends_with("yes"), "{conv}");
    assert!(out.contains("warning: node names used more than once"), "{out}");
}

fn assert_input_error(args: &[&dyn AsRef<std::ffi::OsStr>], names: &str, says: &str) {
    let (code, out, err) = run(args);
    assert_eq!(code, 1, "exit code; stderr:\n{err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(names), "stderr should name {names}:\n{err}");
    assert!(err.contains(says), "stderr should say {says}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_models_exit_1_naming_the_file() {
    let dir = support::tempdir();
    let missing = dir.path().join("missing.onnx");
    assert_input_error(&[&"inspect", &missing], "missing.onnx", "cannot read");

    let text = dir.path().join("notes.onnx");
    support::write(&text, b"this is not a protobuf message, just text\n");
    assert_input_error(&[&"inspect", &text], "notes.onnx", "not a valid ONNX model");

    let truncated = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(support::model("cls")).unwrap();
    support::write(&truncated, &bytes[..bytes.len() / 2]);
    assert_input_error(&[&"inspect", &truncated], "truncated.onnx", "not a valid ONNX model");

    let empty = dir.path().join("empty.onnx");
    support::write(&empty, b"");
    assert_input_error(&[&"inspect", &empty], "empty.onnx", "without a graph");

    let mut proto = crate::model::small_model();
    proto.graph.as_mut().unwrap().node[1].input = vec!["f".into()];
    let cyclic = dir.path().join("cyclic.onnx");
    support::write(&cyclic, &prost::Message::encode_to_vec(&proto));
    assert_input_error(&[&"inspect", &cyclic], "cyclic.onnx", "cycle");

    let mut proto = crate::model::small_model();
    proto.graph.as_mut().unwrap().node[3].input[0] = "ghost".into();
    let dangling = dir.path().join("dangling.onnx");
    support::write(&dangling, &prost::Message::encode_to_vec(&proto));
    assert_input_error(&[&"inspect", &dangling], "dangling.onnx", "`ghost`");
}

#[test]
fn a_bad_shape_argument_is_a_usage_error() {
    let (code, _, err) = run(&[&"inspect", &support::model("cls"), &"--shape", &"x=1,three"]);
    assert_eq!(code, 1, "a wrong argument is the user's input at fault: {err}");
    assert!(err.contains("three"), "{err}");
    let (code, _, err) = run(&[&"inspect", &support::model("cls"), &"--shape", &"nope=1,3,48,192"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`nope`") && err.contains("`x`"), "{err}");
}

#[test]
fn help_explains_the_commands() {
    let (code, out, _) = run(&[&"--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("inspect"), "{out}");
    let (code, out, _) = run(&[&"inspect", &"--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--shape") && out.contains("--json"), "{out}");
}

#[test]
fn parse_trtexec_prints_the_contract_json_and_a_readable_summary() {
    let fixtures = support::repo().join("tests/fixtures/trtexec");
    let log = fixtures.join("trt8.6.1_h100_fp16_saveEngine.log");
    let (code, out, err) = run(&[&"parse-trtexec", &log, &"--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["tensorrt_version"], "8.6.1");
    assert_eq!(json["status"], "passed");
    assert_eq!(json["failure"], serde_json::Value::Null);
    assert_eq!(json["perf"]["gpu_compute_ms"]["median"], 1.97192);
    let (code, out, _) = run(&[&"parse-trtexec", &log]);
    assert_eq!(code, 0);
    assert!(out.contains("tensorrt:   8.6.1") && out.contains("484.641 qps"), "{out}");

    let dir = support::tempdir();
    let not_a_log = dir.path().join("notes.txt");
    support::write(&not_a_log, b"hello\n");
    assert_input_error(&[&"parse-trtexec", &not_a_log], "notes.txt", "not trtexec output");
}
