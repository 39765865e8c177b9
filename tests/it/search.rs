//! The search strategies on real bundles and on a model with a layer made sensitive on purpose.

use precisiond::model::Model;
use precisiond::model::proto::tensor_proto::DataType;

use crate::support::{self, judge, run};

/// Runs `precisiond search --json` and returns its summary.
fn search(bundle: &std::path::Path, strategy: &str, out: &std::path::Path) -> serde_json::Value {
    let (code, stdout, err) = run(&[&"search", &bundle, &"--strategy", &strategy, &"--out", &out, &"--json"]);
    assert!(code == 0 || code == 1, "search {strategy} crashed: {err}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{err}"));
    for file in ["plan.toml", "report.json", "report.svg"] {
        assert!(out.join(file).exists(), "{strategy}: {file} written");
    }
    json
}

fn f32_values(t: &precisiond::model::proto::TensorProto) -> Vec<f32> {
    precisiond::model::weights::to_f32(t).unwrap()
}

fn set_f32(t: &mut precisiond::model::proto::TensorProto, values: &[f32]) {
    t.data_type = Some(DataType::Float as i32);
    t.float_data.clear();
    t.raw_data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into());
}

/// The digits bundle with its second convolution made sensitive without changing what the model computes: the first
/// convolution's channel 0 gets a bias of +1000 (a huge constant activation after ReLU and MaxPool) and the second
/// convolution ignores that channel (zero weights). With min-max calibration the second convolution's input scale
/// is then set by the outlier channel, and INT8 wipes out its real signal.
fn sensitive_digits_bundle(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let source = support::bundle("digits");
    let bundle = dir.join("digits-sensitive");
    std::fs::create_dir_all(bundle.join("calib")).unwrap();
    std::fs::create_dir_all(bundle.join("eval")).unwrap();
    for sub in ["calib", "eval"] {
        for entry in std::fs::read_dir(source.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), bundle.join(sub).join(entry.file_name())).unwrap();
        }
    }
    let spec = std::fs::read_to_string(source.join("precision.toml")).unwrap();
    let spec = spec.replace("method = \"entropy\"", "method = \"minmax\"");
    assert!(spec.contains("minmax"), "the digits spec names its method: {spec}");
    std::fs::write(bundle.join("precision.toml"), spec).unwrap();

    let model = Model::load(&source.join("model.onnx")).unwrap();
    let graph = model.graph();
    let convs: Vec<usize> = graph.quantizable().filter(|&i| graph.node(i).op_type == "Conv").collect();
    let (first, second) = (graph.node(convs[0]).clone(), graph.node(convs[1]).clone());
    let mut proto = model.into_proto();
    let g = proto.graph.as_mut().unwrap();
    let bias = g.initializer.iter_mut().find(|t| t.name() == first.inputs[2]).unwrap();
    let mut b = f32_values(bias);
    b[0] += 1000.0;
    set_f32(bias, &b);
    let weight = g.initializer.iter_mut().find(|t| t.name() == second.inputs[1]).unwrap();
    let dims: Vec<usize> = weight.dims.iter().map(|&d| d as usize).collect();
    let mut w = f32_values(weight);
    let per_in: usize = dims[2..].iter().product();
    for out_ch in 0..dims[0] {
        let start = (out_ch * dims[1]) * per_in; // input channel 0 of this output channel
        w[start..start + per_in].iter_mut().for_each(|v| *v = 0.0);
    }
    set_f32(weight, &w);
    let path = bundle.join("model.onnx");
    Model::from_proto(proto, &path).unwrap().save(&path).unwrap();
    let (code, _, err) = run(&[&"bundle", &"seal", &bundle]);
    assert_eq!(code, 0, "{err}");
    (bundle, second.name)
}

#[test]
fn every_strategy_keeps_a_deliberately_sensitive_layer_out_of_int8() {
    let dir = support::tempdir();
    let (bundle, sensitive) = sensitive_digits_bundle(dir.path());
    for strategy in ["sensitivity", "sequential", "bisect"] {
        let json = search(&bundle, strategy, &dir.path().join(strategy));
        assert_eq!(json["budget_met"], true, "{strategy}: {json}");
        let kept: Vec<&str> = json["kept_out_of_int8"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(kept.contains(&sensitive.as_str()), "{strategy} keeps {sensitive} out of INT8: {kept:?}");
        assert!(json["evaluations"].as_u64().unwrap() >= 2, "{strategy}: all-INT8 misses, so more than one evaluation");
    }
    // The sensitivity strategy finds it with its probes: it is the most sensitive layer of the report.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sensitivity/report.json")).unwrap()).unwrap();
    let most = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| a["sensitivity"].as_f64().unwrap().total_cmp(&b["sensitivity"].as_f64().unwrap()))
        .unwrap();
    assert_eq!(most["name"], sensitive.as_str());
}

#[test]
fn det_sensitivity_needs_at_most_half_the_evaluations_of_sequential_and_keeps_most_macs_in_int8() {
    let dir = support::tempdir();
    let bundle = support::bundle("det");
    let sensitivity = search(&bundle, "sensitivity", &dir.path().join("s"));
    let sequential = search(&bundle, "sequential", &dir.path().join("q"));
    assert_eq!(sensitivity["budget_met"], true, "{sensitivity}");
    assert_eq!(sequential["budget_met"], true, "{sequential}");
    let (s, q) = (sensitivity["evaluations"].as_u64().unwrap(), sequential["evaluations"].as_u64().unwrap());
    assert!(2 * s <= q, "sensitivity {s} evaluations, sequential {q}");
    let fraction = sensitivity["plan"]["int8_mac_fraction"].as_f64().unwrap();
    assert!(fraction >= 0.5, "INT8 share of MACs {fraction}");
    assert!(sensitivity["metrics"]["mask_iou"].as_f64().unwrap() >= 0.95 && sensitivity["metrics"]["cosine"].as_f64().unwrap() >= 0.99);
}

#[test]
fn rec_meets_its_per_step_argmax_budget_and_names_the_layers_kept_in_fp16() {
    let dir = support::tempdir();
    let json = search(&support::bundle("rec"), "sensitivity", dir.path());
    assert_eq!(json["budget_met"], true, "{json}");
    assert!(json["metrics"]["argmax_agreement"].as_f64().unwrap() >= 0.995, "{json}");
    let kept = json["kept_out_of_int8"].as_array().unwrap();
    assert!(!kept.is_empty(), "all-INT8 misses on rec, so some layers stay FP16: {json}");
    assert_eq!(json["plan"]["fp16"].as_u64().unwrap() + json["plan"]["fp32"].as_u64().unwrap(), kept.len() as u64);
}

#[test]
fn digits_chosen_plan_keeps_real_top1_within_half_a_percent_of_fp32() {
    let dir = support::tempdir();
    let bundle = support::bundle("digits");
    let json = search(&bundle, "sensitivity", dir.path());
    assert_eq!(json["budget_met"], true, "{json}");
    let exported = dir.path().join("chosen.onnx");
    let (code, _, err) = run(&[&"export", &bundle, &"--plan", &dir.path().join("plan.toml"), &"--out", &exported]);
    assert_eq!(code, 0, "{err}");
    let (x, y) = (support::asset("data/digits_test_x.npy"), support::asset("data/digits_test_y.npy"));
    let fp32 = judge(&[&"accuracy", &support::model("digits_cnn"), &x, &y])["top1"].as_f64().unwrap();
    let chosen = judge(&[&"accuracy", &exported, &x, &y])["top1"].as_f64().unwrap();
    assert!((fp32 - chosen).abs() <= 0.005, "FP32 top-1 {fp32}, chosen plan {chosen}");
}

#[test]
fn a_budget_no_plan_can_meet_exits_1_and_still_writes_the_best_plan() {
    let dir = support::tempdir();
    let source = support::bundle("digits");
    let bundle = dir.path().join("digits-impossible");
    for sub in ["calib", "eval"] {
        std::fs::create_dir_all(bundle.join(sub)).unwrap();
        for entry in std::fs::read_dir(source.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), bundle.join(sub).join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(source.join("model.onnx"), bundle.join("model.onnx")).unwrap();
    let spec = std::fs::read_to_string(source.join("precision.toml")).unwrap();
    // Every layer fixed in INT8 by the spec, and a budget INT8 cannot meet: nothing is left to search.
    let graph = Model::load(&source.join("model.onnx")).unwrap().graph();
    let fixed: String = graph.quantizable().map(|i| format!("\"{}\" = \"int8\"\n", graph.node(i).name)).collect();
    let spec = spec.replace("[budget]", "[budget]\nmax_abs = 0.0000001") + "\n[precision.layers]\n" + &fixed;
    std::fs::write(bundle.join("precision.toml"), spec).unwrap();
    let (code, _, err) = run(&[&"bundle", &"seal", &bundle]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&[&"search", &bundle, &"--out", &dir.path().join("out")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no plan meets the budget") && err.contains("max_abs"), "{err}");
    assert!(out.contains("MISSED"), "{out}");
    assert!(dir.path().join("out/plan.toml").exists());
}

fn profile_json(entries: &[(&str, f64)]) -> String {
    let mut out = String::from("[\n  { \"count\" : 100 }\n");
    for (name, ms) in entries {
        out.push_str(&format!(
            ", {{ \"name\" : \"{name}\", \"timeMs\" : {}, \"averageMs\" : {ms}, \"medianMs\" : {ms}, \"percentage\" : 1.0 }}\n",
            ms * 100.0
        ));
    }
    out + "]\n"
}

#[test]
fn measured_profiles_replace_the_nominal_latency_model() {
    let dir = support::tempdir();
    let bundle = support::bundle("digits");
    let graph = Model::load(&bundle.join("model.onnx")).unwrap().graph();
    let names: Vec<String> = graph.quantizable().map(|i| graph.node(i).name.clone()).collect();
    // TensorRT-style fused names; a reformat entry that must not count; INT8 twice as fast as FP16.
    let fused = format!("{} + relu_fused", names[0]);
    let mut fp16: Vec<(&str, f64)> = vec![("Reformatting CopyNode for Input Tensor 0 to x", 0.5), (fused.as_str(), 0.2)];
    fp16.extend(names[1..].iter().map(|n| (n.as_str(), 0.1)));
    let int8: Vec<(&str, f64)> = fp16.iter().map(|(n, ms)| (*n, ms / 2.0)).collect();
    support::write(&dir.path().join("fp16.json"), profile_json(&fp16).as_bytes());
    support::write(&dir.path().join("int8.json"), profile_json(&int8).as_bytes());
    let out = dir.path().join("out");
    let (code, stdout, err) = run(&[
        &"search", &bundle, &"--out", &out, &"--json",
        &"--profile-fp16", &dir.path().join("fp16.json"), &"--profile-int8", &dir.path().join("int8.json"),
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["latency_source"], "profile");
    let all_int8 = 0.1 + 0.05 * (names.len() - 1) as f64;
    assert!((report["reference_latency_ms"]["all_int8_ms"].as_f64().unwrap() - all_int8).abs() < 1e-9, "{report}");
    assert!((report["reference_latency_ms"]["all_fp16_ms"].as_f64().unwrap() - 2.0 * all_int8).abs() < 1e-9);
    assert!(json["predicted_latency_ms"].as_f64().unwrap() >= all_int8 - 1e-9);

    // Profiles of another model name none of these layers: refused, not silently ignored.
    support::write(&dir.path().join("other.json"), profile_json(&[("Conv_0 + Relu_1", 0.3)]).as_bytes());
    let (code, _, err) = run(&[
        &"search", &bundle, &"--out", &out,
        &"--profile-fp16", &dir.path().join("other.json"), &"--profile-int8", &dir.path().join("other.json"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("name none of the model's quantizable layers"), "{err}");
}
