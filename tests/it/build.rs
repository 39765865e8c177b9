//! `build` and `verify`: the cpu backend end to end on real models, and the tensorrt backend end to end through the
//! trtexec stand-in (examples/trtexec_standin.rs, which follows tensorrt.md for each version).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;

/// A copy of a sealed test bundle with its precision.toml edited, sealed again.
fn edited_bundle(name: &str, dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
    let target = dir.join(name);
    copy_dir(&support::bundle(name), &target);
    let spec = std::fs::read_to_string(target.join("precision.toml")).unwrap();
    std::fs::write(target.join("precision.toml"), edit(&spec)).unwrap();
    std::fs::remove_file(target.join("bundle.toml")).unwrap();
    let (code, _, err) = support::run(&[&"bundle", &"seal", &target]);
    assert_eq!(code, 0, "{err}");
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// `precisiond build` through the stand-in of `version`, with its invocations logged to `log`.
fn standin_build(bundle: &Path, out: &Path, store: Option<&Path>, version: &str, log: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = support::precisiond();
    cmd.args(["build", "--backend", "tensorrt", "--timeout", "2m"]).arg(bundle).arg("--out").arg(out);
    cmd.arg("--trtexec").arg(support::trtexec_standin());
    match store {
        Some(store) => cmd.arg("--engine-store").arg(store),
        None => cmd.arg("--no-engine-store"),
    };
    cmd.env("TRTEXEC_STANDIN_VERSION", version).env("TRTEXEC_STANDIN_LOG", log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Engine builds in the stand-in's invocation log (each `--saveEngine` run).
fn builds_logged(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains("--saveEngine")).count()
}

#[test]
fn cpu_build_then_verify_passes_on_det_and_digits() {
    let tmp = support::tempdir();
    for name in ["digits", "det"] {
        let out = tmp.path().join(name);
        let (code, stdout, err) = support::run(&[&"build", &support::bundle(name), &"--backend", &"cpu", &"--out", &out, &"--no-engine-store"]);
        assert_eq!(code, 0, "{name}: {stdout}{err}");
        assert!(stdout.contains("verdict:     PASS"), "{stdout}");
        for file in ["model.onnx", "plan.toml", "scales.json", "calib.cache", "verify.json", "build.log", "fingerprint.json", "build.json", "report.json", "report.svg"] {
            assert!(out.join(file).is_file(), "{name}: {file} missing");
        }
        let verify = json(&out.join("verify.json"));
        assert_eq!(verify["verdict"], "pass", "{verify}");
        assert_eq!(verify["backend"], "cpu");
        assert!(verify["latency_ms"].is_null());
        assert!(verify["tensorrt_version"].is_null());
        assert!(verify["metrics"]["cosine"].as_f64().unwrap() > 0.99);
        let record = json(&out.join("build.json"));
        assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
        // The published engine is a valid ONNX model for an outside judge, and runs in ONNX Runtime.
        let checked = support::judge(&[&"check", &out.join("model.onnx")]);
        assert_eq!(checked["ok"], true, "{checked}");

        let (code, stdout, err) = support::run(&[&"verify", &out, &"--json"]);
        assert_eq!(code, 0, "{name}: {stdout}{err}");
        let again: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(again["verdict"], "pass");
        assert_eq!(again["metrics"], verify["metrics"], "verification is deterministic");
    }
}

#[test]
fn tensorrt_build_through_the_standin_for_every_version() {
    let tmp = support::tempdir();
    let bundle = support::bundle("cls");
    let store = tmp.path().join("store");
    for version in ["8.5.2", "8.6.2", "10.3.0", "10.13.3", "11.4.1"] {
        let out = tmp.path().join(version);
        let log = tmp.path().join(format!("{version}.log"));
        let (code, stdout, err) = standin_build(&bundle, &out, Some(&store), version, &log, &[]);
        assert_eq!(code, 0, "{version}: {stdout}{err}");
        let record = json(&out.join("build.json"));
        let builds = record["builds"].as_u64().unwrap();
        assert!(builds <= 3, "{version}: {builds} builds");
        assert_eq!(builds as usize, builds_logged(&log), "{version}: build.json counts what ran");
        assert_eq!(record["profile_builds"], 2, "{version}: the search used measured profiles");
        assert_eq!(record["search"]["latency_source"], "profile");
        assert_eq!(record["tensorrt_version"].as_str().unwrap(), version);
        let verify = json(&out.join("verify.json"));
        assert_eq!(verify["verdict"], "pass", "{version}: {verify}");
        assert_eq!(verify["tensorrt_version"].as_str().unwrap(), version);
        assert!(verify["latency_ms"]["median"].as_f64().unwrap() > 0.0, "{verify}");
        let plan = std::fs::read(out.join("engine.plan")).unwrap();
        let header = precisiond::trt::plan_header::read_plan_header(&plan).unwrap();
        let parts: Vec<u8> = version.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!((header.major, header.minor, header.patch), (parts[0], parts[1], parts[2]), "{version}");
    }
    // The same job again: every engine (profiles included) comes from the store; nothing is built.
    let out = tmp.path().join("again");
    let log = tmp.path().join("again.log");
    let (code, stdout, err) = standin_build(&bundle, &out, Some(&store), "10.3.0", &log, &[]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert_eq!(builds_logged(&log), 0, "{stdout}");
    assert_eq!(json(&out.join("build.json"))["builds"], 0);
    // Another TensorRT on the device: the stored plans do not fit it, and it builds its own.
    let log = tmp.path().join("other.log");
    let (code, stdout, err) = standin_build(&bundle, &tmp.path().join("other"), Some(&store), "10.7.0", &log, &[]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(builds_logged(&log) >= 1);
}

#[test]
fn verification_failure_falls_back_then_passes_or_fails_with_the_report() {
    let tmp = support::tempdir();
    let bundle = support::bundle("cls");
    let first = tmp.path().join("first");
    let (code, stdout, err) = standin_build(&bundle, &first, None, "10.3.0", &tmp.path().join("first.log"), &[]);
    assert_eq!(code, 0, "{stdout}{err}");
    // The INT8 layers of the chosen plan, most sensitive first, as the search measured them.
    let plan = std::fs::read_to_string(first.join("plan.toml")).unwrap();
    let report = json(&first.join("report.json"));
    let mut int8: Vec<(String, f64)> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["precision"] == "int8")
        .map(|l| (l["name"].as_str().unwrap().to_owned(), l["sensitivity"].as_f64().unwrap()))
        .collect();
    int8.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert!(int8.len() >= 12, "{plan}");
    let most = int8[0].0.clone();

    // The engine is worse than simulated at the most sensitive INT8 layer: one fallback moves it to FP16.
    let out = tmp.path().join("fragile");
    let log = tmp.path().join("fragile.log");
    let (code, stdout, err) = standin_build(&bundle, &out, None, "10.3.0", &log, &[("TRTEXEC_STANDIN_FRAGILE", &most)]);
    assert_eq!(code, 0, "{stdout}{err}");
    let record = json(&out.join("build.json"));
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record}");
    assert_eq!(attempts[0]["verdict"], "fail");
    assert_eq!(attempts[1]["verdict"], "pass");
    assert!(attempts[1]["fell_back"].as_array().unwrap().iter().any(|l| l == most.as_str()), "{record}");
    assert_eq!(record["builds"], 4, "2 profiles, the final engine and one fallback");
    assert!(std::fs::read_to_string(out.join("plan.toml")).unwrap().contains(&format!("\"{most}\" = \"fp16\"")) ||
        std::fs::read_to_string(out.join("plan.toml")).unwrap().contains(&format!("{most} = \"fp16\"")));

    // The same layer fixed to INT8 by the spec: no fallback may move it, two fallbacks of other layers do not
    // help, and the job fails with the report.
    let pinned = edited_bundle("cls", tmp.path(), |spec| format!("{spec}\n[precision.layers]\n\"{most}\" = \"int8\"\n"));
    let out = tmp.path().join("hopeless");
    let (code, stdout, err) =
        standin_build(&pinned, &out, None, "10.3.0", &tmp.path().join("hopeless.log"), &[("TRTEXEC_STANDIN_FRAGILE", &most)]);
    assert_eq!(code, 1, "{stdout}{err}");
    assert!(err.contains("failed verification"), "{err}");
    let record = json(&out.join("build.json"));
    assert_eq!(record["attempts"].as_array().unwrap().len(), 3, "at most 2 fallbacks");
    assert_eq!(json(&out.join("verify.json"))["verdict"], "fail");
}

#[test]
fn implicit_mode_builds_before_tensorrt_11_and_is_refused_on_it() {
    let tmp = support::tempdir();
    let bundle = edited_bundle("cls", tmp.path(), |spec| {
        spec.replace("mode = \"search\"", "mode = \"fixed\"\nkeep = [\"op:MatMul\", \"op:Gemm\"]") + "\n[build]\nquantization = \"implicit\"\n"
    });
    let log = tmp.path().join("11.log");
    let (code, stdout, err) = standin_build(&bundle, &tmp.path().join("11"), None, "11.4.1", &log, &[]);
    assert_eq!(code, 1, "{stdout}{err}");
    assert!(err.contains("implicit quantization") && err.contains("11.0 removed"), "{err}");
    assert!(err.contains("hint: build in explicit mode"), "{err}");
    assert_eq!(builds_logged(&log), 0, "refused before any build");
    assert!(!tmp.path().join("11").exists(), "nothing written");

    let log = tmp.path().join("8.6.log");
    let out = tmp.path().join("8.6");
    let (code, stdout, err) = standin_build(&bundle, &out, None, "8.6.2", &log, &[]);
    assert!(code == 0 || code == 1, "{stdout}{err}");
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.contains("--calib=") && args.contains("--layerPrecisions=") && args.contains("--precisionConstraints=obey"), "{args}");
    assert!(out.join("engine.plan").is_file(), "{stdout}{err}");
}


#[test]
fn a_build_that_times_out_or_is_killed_leaves_no_process_and_a_classified_failure() {
    let tmp = support::tempdir();
    let bundle = edited_bundle("cls", tmp.path(), |spec| spec.replace("mode = \"search\"", "mode = \"fixed\""));
    let previous = tmp.path().join("out");
    std::fs::create_dir_all(&previous).unwrap();
    std::fs::write(previous.join("build.json"), "{}").unwrap();

    let mut cmd = support::precisiond();
    cmd.args(["build", "--backend", "tensorrt", "--timeout", "3s", "--no-engine-store"]).arg(&bundle).arg("--out").arg(&previous);
    cmd.arg("--trtexec").arg(support::trtexec_standin());
    cmd.env("TRTEXEC_STANDIN_VERSION", "10.3.0").env("TRTEXEC_STANDIN_HANG_S", "120");
    let started = std::time::Instant::now();
    let output = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("timed out") || err.contains("timeout"), "{err}");
    assert!(started.elapsed().as_secs() < 60, "the timeout ended it");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let bundle_text = bundle.to_string_lossy().into_owned();
    let staging = tmp.path().to_string_lossy().into_owned();
    assert!(support::processes_mentioning(&staging).is_empty(), "a process of the build is still alive ({bundle_text})");
    assert_eq!(std::fs::read_to_string(previous.join("build.json")).unwrap(), "{}", "the previous folder is untouched");

    let mut cmd = support::precisiond();
    cmd.args(["build", "--backend", "tensorrt", "--no-engine-store"]).arg(&bundle).arg("--out").arg(&previous);
    cmd.arg("--trtexec").arg(support::trtexec_standin());
    cmd.env("TRTEXEC_STANDIN_VERSION", "8.5.2").env("TRTEXEC_STANDIN_CRASH", "1");
    let output = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("signal 9") || err.contains("SIGKILL"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(std::fs::read_to_string(previous.join("build.json")).unwrap(), "{}");
    assert!(support::processes_mentioning(&staging).is_empty());
}
