//! The trtexec stand-in (examples/trtexec_standin.rs) driven through precisiond's own argument vectors
//! (`trt::args`), runner (`trt::run`) and parsers (`trt::parse`), for every TensorRT version precisiond supports, on
//! the real PP-OCR cls bundle. The stand-in computes what precisiond's CPU simulation of the same plan computes, so a
//! verification run is held to it within 1e-3 cosine; its fault injection stands in for a fragile INT8 layer, a hung
//! build and the OOM killer.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use precisiond::calib::{Algorithm, CacheHeader, ScalesFile};
use precisiond::exec::Executor;
use precisiond::model::Model;
use precisiond::pipeline::Job;
use precisiond::precision::export::{Flavor, export};
use precisiond::precision::{Plan, Precision};
use precisiond::progress::Silent;
use precisiond::search::latency::LatencyModel;
use precisiond::simulate::metrics::cosine;
use precisiond::tensor::Tensor;
use precisiond::trt::args::{self, ArgsError, BuildRequest, FlagSet, Mode, ProfileRequest, VerifyRequest};
use precisiond::trt::parse::{
    DataType, FailureClass, LayerEntry, ProfileExport, Stats, TrtVersion, parse_export_layer_info, parse_export_output,
    parse_export_profile, read_text,
};
use precisiond::trt::plan_header::read_plan_header;
use precisiond::trt::run::{RunEnd, RunOutcome, detect_trtexec_version, run_trtexec};

use crate::support::{self, live_members, retry_busy};

/// PRODUCT.md's TensorRT versions: JetPack 5.1 (8.5), 6.0 (8.6), 6.1/6.2 (10.3), 7.x (10.13), 7.2.2+ (11.4).
const VERSIONS: [&str; 5] = ["8.5.2", "8.6.2", "10.3.0", "10.13.3", "11.4.1"];

/// Far above what any run here takes (well under a second), far below a hung test.
const TIMEOUT: Duration = Duration::from_secs(120);

fn version(text: &str) -> TrtVersion {
    text.parse().unwrap()
}

/// The cls bundle, calibrated once for all the tests of this file.
struct Cls {
    job: Job,
    scales: ScalesFile,
    eval: Vec<Vec<Tensor>>,
}

fn cls() -> &'static Cls {
    static CLS: OnceLock<Cls> = OnceLock::new();
    CLS.get_or_init(|| {
        let job = Job::open(&support::bundle("cls")).unwrap();
        let scales = job.calibrate(&Silent).unwrap();
        let eval = job.eval_samples().unwrap();
        Cls { job, scales, eval }
    })
}

impl Cls {
    fn uniform(&self, precision: Precision) -> Plan {
        Plan::uniform(&self.job.model.graph(), precision)
    }

    /// The shape a search ends with (as in tests/it/precision.rs): the input half INT8, the rest FP16, every seventh
    /// layer there FP32.
    fn mixed(&self) -> Plan {
        let graph = self.job.model.graph();
        let n = graph.quantizable().count();
        let mut plan = self.uniform(Precision::Int8);
        for (i, index) in graph.quantizable().enumerate().skip(n / 2) {
            plan = plan.with(&graph.node(index).name, if i % 7 == 5 { Precision::Fp32 } else { Precision::Fp16 });
        }
        plan
    }

    fn layer(&self, k: usize) -> String {
        let graph = self.job.model.graph();
        graph.node(graph.quantizable().nth(k).unwrap()).name.clone()
    }

    /// The deployed (strongly typed) export of `plan`, what precisiond hands trtexec in explicit mode.
    fn export(&self, dir: &Path, name: &str, plan: &Plan) -> PathBuf {
        let path = dir.join(format!("{name}.onnx"));
        let proto = export(&self.job.model, plan, &self.scales, Flavor::Deploy).unwrap();
        Model::from_proto(proto, &path).unwrap().save(&path).unwrap();
        path
    }

    /// precisiond's prediction of `plan` on the first `samples` eval samples: output 0 of the Simulate flavor in
    /// tract.
    fn simulate(&self, plan: &Plan, samples: usize) -> Vec<Vec<f32>> {
        let proto = export(&self.job.model, plan, &self.scales, Flavor::Simulate).unwrap();
        let model = Model::from_proto(proto, Path::new("simulated")).unwrap();
        let executor = Executor::new(&model, &self.job.shapes()).unwrap();
        self.eval[..samples].iter().map(|s| executor.run(s).unwrap()[0].as_f32().unwrap().to_vec()).collect()
    }

    fn input(&self) -> String {
        self.job.inputs[0].0.name.clone()
    }

    fn cache(&self, dir: &Path, v: TrtVersion) -> PathBuf {
        let path = dir.join(format!("calib-{v}.cache"));
        let header = CacheHeader::new(
            precisiond::calib::TrtVersion::new(v.major, v.minor, v.patch),
            Algorithm::EntropyCalibration2,
        );
        self.scales.to_calibration_cache(header).unwrap().write(&path).unwrap();
        path
    }

    fn macs(&self) -> HashMap<String, u64> {
        let inspection = precisiond::inspect::inspect(&self.job.model, &self.job.shapes()).unwrap();
        inspection.layers.iter().filter_map(|l| l.macs.map(|m| (l.name.clone(), m))).collect()
    }
}

/// A `trtexec` for `version`: a script that sets the stand-in's environment and execs it. precisiond's runner passes
/// its own environment on, and tests run in parallel threads of one process, so the environment cannot be set
/// there; after the exec the stand-in itself leads the process group, as trtexec would.
fn trtexec(dir: &Path, name: &str, version: &str, env: &[(&str, &str)]) -> PathBuf {
    let mut script = String::from(
        "#!/bin/sh\nunset TRTEXEC_STANDIN_FRAGILE TRTEXEC_STANDIN_HANG_S TRTEXEC_STANDIN_CRASH TRTEXEC_STANDIN_LOG\n",
    );
    script.push_str(&format!("export TRTEXEC_STANDIN_VERSION='{version}'\n"));
    for (key, value) in env {
        script.push_str(&format!("export {key}='{value}'\n"));
    }
    script.push_str(&format!("exec '{}' \"$@\"\n", support::trtexec_standin().display()));
    let path = dir.join(name);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run_for(exe: &Path, args: &[String], log: &Path, timeout: Duration) -> RunOutcome {
    let never = AtomicBool::new(false);
    retry_busy(|| run_trtexec(exe, args, log, timeout, &never)).unwrap_or_else(|e| panic!("{e}"))
}

fn run(exe: &Path, args: &[String], log: &Path) -> RunOutcome {
    run_for(exe, args, log, TIMEOUT)
}

#[track_caller]
fn assert_passed(outcome: &RunOutcome, what: &str) {
    assert!(
        outcome.passed(),
        "{what}: {:?} {:?}\n{}",
        outcome.end,
        outcome.failure,
        fs::read_to_string(&outcome.log_path).unwrap_or_default()
    );
}

fn build_request(onnx: &Path, engine: &Path, mode: Mode) -> BuildRequest {
    BuildRequest {
        onnx: onnx.to_path_buf(),
        engine_out: engine.to_path_buf(),
        mode,
        workspace_mib: 1024,
        optimization_level: Some(3),
        timing_cache: None,
        dla_core: None,
        profile: None,
        layer_info: None,
        shapes: cls().job.shapes(),
    }
}

/// Builds `onnx` in explicit mode; returns the engine.
fn build_explicit(exe: &Path, v: TrtVersion, dir: &Path, name: &str, onnx: &Path) -> PathBuf {
    let engine = dir.join(format!("{name}.engine"));
    let args = args::build_args(v, &build_request(onnx, &engine, Mode::Explicit)).unwrap();
    let outcome = run(exe, &args, &dir.join(format!("{name}.build.log")));
    assert_passed(&outcome, &format!("{v}: building {name}"));
    engine
}

/// A verification run of `engine` on eval sample `i` (`--loadInputs` + `--exportOutput`); returns output 0.
fn verify(exe: &Path, v: TrtVersion, dir: &Path, engine: &Path, i: usize) -> Vec<f32> {
    let bin = dir.join(format!("x{i}.bin"));
    let values = cls().eval[i][0].as_f32().unwrap();
    fs::write(&bin, values.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let output_json = dir.join(format!("out{i}.json"));
    let request = VerifyRequest {
        engine: engine.to_path_buf(),
        inputs: vec![(cls().input(), bin)],
        output_json: output_json.clone(),
        dla_core: None,
        shapes: cls().job.shapes(),
    };
    let outcome = run(exe, &args::verify_args(v, &request).unwrap(), &dir.join(format!("verify{i}.log")));
    assert_passed(&outcome, &format!("{v}: verifying {}", engine.display()));
    let outputs = parse_export_output(&read_text(&output_json).unwrap(), "out.json").unwrap();
    assert_eq!(outputs[0].dims(), Some(vec![1, 2]), "{v}: the classifier's output shape");
    outputs[0].values.iter().map(|&x| x as f32).collect()
}

#[test]
fn detect_trtexec_version_reads_every_version_from_the_help_banner() {
    let dir = support::tempdir();
    for text in VERSIONS {
        let exe = trtexec(dir.path(), text, text, &[]);
        let v = retry_busy(|| detect_trtexec_version(&exe, Duration::from_secs(30))).unwrap();
        assert_eq!(v.to_string(), text);
        // §2.4: the `[bN]` build tag exists from 10.4 on.
        assert_eq!(v.build.is_some(), v.at_least(10, 4), "{text}: {v:?}");
    }
}

#[test]
fn explicit_builds_pass_on_every_version_and_the_plan_header_names_that_version() {
    let dir = support::tempdir();
    let plan = cls().mixed();
    let onnx = cls().export(dir.path(), "mixed", &plan);
    for text in VERSIONS {
        let v = version(text);
        let exe = trtexec(dir.path(), text, text, &[]);
        let banner = retry_busy(|| detect_trtexec_version(&exe, Duration::from_secs(30))).unwrap();
        let engine = dir.path().join(format!("{text}.engine"));
        let mut request = build_request(&onnx, &engine, Mode::Explicit);
        request.timing_cache = Some(dir.path().join(format!("{text}.timing")));
        request.layer_info = Some(dir.path().join(format!("{text}.layers.json")));
        let args = args::build_args(v, &request).unwrap();
        let outcome = run(&exe, &args, &dir.path().join(format!("{text}.build.log")));
        assert_passed(&outcome, text);
        assert_eq!(outcome.log.version.map(|v| v.to_string()).as_deref(), Some(text));
        assert!(outcome.log.perf.is_none(), "{text}: a build without a profile skips inference");

        let header = read_plan_header(&fs::read(&engine).unwrap()).unwrap();
        assert_eq!(header.version().to_string(), text);
        // The banner carries the build from 10.4 on, and then the header must carry the same.
        assert!(header.matches(banner), "{text}: header {header}, banner {banner:?}");

        // The timing cache was written, and the next build reads it back (§4.5).
        let again = run(&exe, &args, &dir.path().join(format!("{text}.again.log")));
        assert_passed(&again, text);
        let log = fs::read_to_string(&again.log_path).unwrap();
        assert!(log.contains("bytes of timing cache from"), "{text}: {log}");

        // The layer information names every layer of the plan, reading the precision the plan gave it.
        let info_path = request.layer_info.as_ref().unwrap();
        let info = parse_export_layer_info(&read_text(info_path).unwrap(), "layers.json").unwrap();
        assert_eq!(info.binding_names(), vec![cls().input().as_str(), "save_infer_model/scale_0.tmp_1"]);
        for (layer, precision) in plan.layers() {
            let entry = info
                .layers
                .iter()
                .filter_map(LayerEntry::detailed)
                .find(|l| l.name.split(" + ").any(|n| n == layer))
                .unwrap_or_else(|| panic!("{text}: no engine layer for {layer}"));
            let read = entry.inputs.first().and_then(|t| t.data_type());
            let expected = match precision {
                Precision::Int8 => DataType::Int8,
                Precision::Fp16 => DataType::Fp16,
                Precision::Fp32 => DataType::Fp32,
            };
            assert_eq!(read, Some(expected), "{text}: {}", entry.name);
        }
    }
}

#[test]
fn implicit_builds_pass_up_to_ten_and_eleven_fails_on_an_unknown_option() {
    let dir = support::tempdir();
    let plan = cls().mixed();
    let layer_flags = plan.trtexec_layer_flags().unwrap();
    for text in VERSIONS {
        let v = version(text);
        let exe = trtexec(dir.path(), text, text, &[]);
        let engine = dir.path().join(format!("{text}.engine"));
        let mode = Mode::Implicit { calib_cache: cls().cache(dir.path(), v), layer_flags: layer_flags.clone() };
        let request = build_request(cls().job.model.path(), &engine, mode);
        if FlagSet::of(v).unwrap().has_implicit_quantization() {
            let outcome = run(&exe, &args::build_args(v, &request).unwrap(), &dir.path().join(format!("{text}.log")));
            assert_passed(&outcome, text);
            assert_eq!(read_plan_header(&fs::read(&engine).unwrap()).unwrap().version().to_string(), text);
            // The engine runs the plan its flags and cache describe: what precisiond simulates for it.
            let (engine_out, simulated) = (verify(&exe, v, dir.path(), &engine, 0), cls().simulate(&plan, 1).remove(0));
            let c = cosine(&simulated, &engine_out);
            assert!(1.0 - c <= 1e-3, "{text}: cosine {c} between {simulated:?} and {engine_out:?}");
        } else {
            // precisiond refuses on its own; the flags 10.x would get meet trtexec's unknown-option error (§2.1).
            assert!(matches!(args::build_args(v, &request), Err(ArgsError::ImplicitRemoved { .. })));
            let ten = args::build_args(version("10.3.0"), &request).unwrap();
            let outcome = run(&exe, &ten, &dir.path().join(format!("{text}.log")));
            let failure = outcome.failure.as_ref().unwrap_or_else(|| panic!("{text}: the implicit flags passed"));
            assert_eq!(failure.class, FailureClass::UnknownOption, "{failure:?}");
            assert_eq!(failure.option.as_deref(), Some("--int8"));
            assert_eq!(outcome.end, RunEnd::Exited(1));
            assert!(!engine.exists());
        }
    }
}

#[test]
fn verification_outputs_match_the_cpu_simulation_of_the_same_plan_on_every_version() {
    let dir = support::tempdir();
    let plan = cls().mixed();
    let onnx = cls().export(dir.path(), "mixed", &plan);
    let simulated = cls().simulate(&plan, 2);
    for text in VERSIONS {
        let v = version(text);
        let exe = trtexec(dir.path(), text, text, &[]);
        let engine = build_explicit(&exe, v, dir.path(), text, &onnx);
        for (i, expected) in simulated.iter().enumerate() {
            let got = verify(&exe, v, dir.path(), &engine, i);
            let c = cosine(expected, &got);
            assert!(1.0 - c <= 1e-3, "{text}, sample {i}: cosine {c} between {expected:?} and {got:?}");
        }
    }
}

fn assert_full_stats(stats: Option<&Stats>, what: &str) {
    let s = stats.unwrap_or_else(|| panic!("{what}: missing"));
    let all = [s.min, s.max, s.mean, s.median, s.percentile(90.0), s.percentile(95.0), s.percentile(99.0)];
    assert!(all.iter().all(|x| x.is_some_and(f64::is_finite)), "{what}: {s:?}");
    assert!(s.min <= s.median && s.median <= s.max, "{what}: {s:?}");
}

#[test]
fn the_performance_summary_has_every_number_and_int8_beats_fp16_beats_fp32() {
    let dir = support::tempdir();
    let onnx = [
        ("fp32", cls().export(dir.path(), "fp32", &cls().uniform(Precision::Fp32))),
        ("fp16", cls().export(dir.path(), "fp16", &cls().uniform(Precision::Fp16))),
        ("int8", cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8))),
    ];
    for text in VERSIONS {
        let v = version(text);
        let exe = trtexec(dir.path(), text, text, &[]);
        let mut gpu_means = Vec::new();
        for (kind, onnx) in &onnx {
            let engine = dir.path().join(format!("{text}-{kind}.engine"));
            let mut args = args::build_args(v, &build_request(onnx, &engine, Mode::Explicit)).unwrap();
            // 8.x would let an FP32 ONNX run in any precision its --int8 --fp16 allow (weak typing).
            if *kind == "fp32" {
                args.retain(|a| a != "--int8" && a != "--fp16");
            }
            assert_passed(&run(&exe, &args, &dir.path().join(format!("{text}-{kind}.build.log"))), text);
            // A timing run with trtexec's defaults: 200 ms warm-up, at least 10 iterations and 3 s.
            let timing = vec![format!("--loadEngine={}", engine.display()), "--shapes=x:1x3x48x192".to_string()];
            let outcome = run(&exe, &timing, &dir.path().join(format!("{text}-{kind}.run.log")));
            assert_passed(&outcome, text);
            let perf = outcome.log.perf.as_ref().unwrap_or_else(|| panic!("{text} {kind}: no performance summary"));
            let what = |metric: &str| format!("{text} {kind} {metric}");
            assert!(perf.throughput_qps.is_some_and(|q| q > 0.0), "{}", what("throughput"));
            assert_full_stats(perf.latency.as_ref(), &what("latency"));
            assert_full_stats(perf.enqueue.as_ref(), &what("enqueue"));
            assert_full_stats(perf.h2d.as_ref(), &what("h2d"));
            assert_full_stats(perf.gpu_compute.as_ref(), &what("gpu compute"));
            assert_full_stats(perf.d2h.as_ref(), &what("d2h"));
            assert!(perf.total_host_walltime_s.is_some_and(|s| s >= 3.0), "{}", what("walltime"));
            assert!(perf.total_gpu_compute_s.is_some(), "{}", what("total gpu"));
            assert!(perf.queries.is_some_and(|q| q >= 10), "{}", what("queries"));
            let contract = serde_json::to_value(outcome.log.to_contract_json()).unwrap();
            for key in ["min", "max", "mean", "median", "p90", "p95", "p99"] {
                assert!(contract["perf"]["gpu_compute_ms"][key].is_number(), "{}: {contract}", what(key));
            }
            gpu_means.push(perf.gpu_compute.as_ref().unwrap().mean.unwrap());
        }
        assert!(gpu_means[2] < gpu_means[1] && gpu_means[1] < gpu_means[0], "{text}: fp32, fp16, int8 {gpu_means:?}");
    }
}

fn profile(exe: &Path, v: TrtVersion, dir: &Path, engine: &Path) -> ProfileExport {
    let out = engine.with_extension("profile.json");
    let request = ProfileRequest {
        engine: engine.to_path_buf(),
        profile_out: out.clone(),
        dla_core: None,
        shapes: cls().job.shapes(),
    };
    let outcome = run(exe, &args::profile_args(v, &request).unwrap(), &dir.join("profile.log"));
    assert_passed(&outcome, &format!("{v}: profiling"));
    // A profile in a run of its own leaves the timing run its summary (§2.5).
    assert!(outcome.log.perf.is_some() && !outcome.log.e2e_timing_not_reported, "{v}");
    parse_export_profile(&read_text(&out).unwrap(), "profile.json").unwrap()
}

#[test]
fn profiles_name_every_layer_for_the_measured_latency_model() {
    let dir = support::tempdir();
    let fp16_onnx = cls().export(dir.path(), "fp16", &cls().uniform(Precision::Fp16));
    let int8_onnx = cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8));
    let graph = cls().job.model.graph();
    let macs = cls().macs();
    let layers = graph.quantizable().count();
    for text in VERSIONS {
        let v = version(text);
        let exe = trtexec(dir.path(), text, text, &[]);
        let fp16 =
            profile(&exe, v, dir.path(), &build_explicit(&exe, v, dir.path(), &format!("{text}-fp16"), &fp16_onnx));
        let int8 =
            profile(&exe, v, dir.path(), &build_explicit(&exe, v, dir.path(), &format!("{text}-int8"), &int8_onnx));
        for p in [&fp16, &int8] {
            assert!(p.count.is_some_and(|c| c > 0), "{text}: {:?}", p.count);
            let total: f64 = p.layers.iter().filter_map(|l| l.percentage).sum();
            assert!((total - 100.0).abs() < 0.01, "{text}: percentages add up to {total}");
        }
        assert!(int8.total_time_ms() / int8.count.unwrap() as f64 <= fp16.total_time_ms() / fp16.count.unwrap() as f64);
        // precisiond reads the fused layer names (`Conv@3 + BatchNormalization@3 + …`) back to its own layers.
        let nominal = LatencyModel::from_macs(&graph, &macs, &HashMap::new());
        let (measured, found_fp16, found_int8) = nominal.with_profiles(&fp16, &int8, &macs);
        assert_eq!((found_fp16, found_int8), (layers, layers), "{text}");
        let (p16, p8) = (
            measured.predict_ms(&cls().uniform(Precision::Fp16)),
            measured.predict_ms(&cls().uniform(Precision::Int8)),
        );
        assert!(p8 < p16, "{text}: measured all-INT8 {p8} ms, all-FP16 {p16} ms");
    }
}

#[test]
fn a_build_with_a_profile_runs_inference_and_writes_it() {
    let dir = support::tempdir();
    let onnx = cls().export(dir.path(), "mixed", &cls().mixed());
    for text in VERSIONS {
        let v = version(text);
        let exe = trtexec(dir.path(), text, text, &[]);
        let engine = dir.path().join(format!("{text}.engine"));
        let mut request = build_request(&onnx, &engine, Mode::Explicit);
        request.profile = Some(dir.path().join(format!("{text}.profile.json")));
        let outcome = run(&exe, &args::build_args(v, &request).unwrap(), &dir.path().join(format!("{text}.log")));
        assert_passed(&outcome, text);
        assert!(outcome.log.perf.as_ref().is_some_and(|p| p.gpu_compute.is_some()), "{text}");
        let profile = parse_export_profile(&read_text(request.profile.as_ref().unwrap()).unwrap(), "p").unwrap();
        assert!(profile.layers.iter().any(|l| l.name.split(" + ").any(|n| n == cls().layer(0))), "{text}");
    }
}

#[test]
fn a_fragile_int8_layer_makes_the_engine_worse_than_the_simulation_predicts() {
    let dir = support::tempdir();
    let int8 = cls().uniform(Precision::Int8);
    let int8_onnx = cls().export(dir.path(), "int8", &int8);
    let v = version("10.3.0");
    let healthy = trtexec(dir.path(), "healthy", "10.3.0", &[]);
    let samples = 4;
    let simulated_int8 = cls().simulate(&int8, samples);
    // Mean cosine to the simulation, and how many samples keep the simulation's top class.
    let compare = |exe: &Path, name: &str, onnx: &Path, simulated: &[Vec<f32>]| {
        let engine = build_explicit(exe, v, dir.path(), name, onnx);
        let got: Vec<Vec<f32>> = (0..samples).map(|i| verify(exe, v, dir.path(), &engine, i)).collect();
        let top = |x: &[f32]| x.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        let mean = simulated.iter().zip(&got).map(|(s, g)| cosine(s, g)).sum::<f64>() / samples as f64;
        (mean, simulated.iter().zip(&got).filter(|(s, g)| top(s) == top(g)).count())
    };
    let (as_simulated, _) = compare(&healthy, "healthy", &int8_onnx, &simulated_int8);
    assert!(1.0 - as_simulated <= 1e-3, "{as_simulated}");
    // An early conv, and a squeeze-excitation conv whose own damage fades in its bias-dominated HardSigmoid.
    for fragile in [cls().layer(10), cls().layer(35)] {
        let broken =
            trtexec(dir.path(), &format!("fragile-{fragile}"), "10.3.0", &[("TRTEXEC_STANDIN_FRAGILE", &fragile)]);
        let (worse, kept) = compare(&broken, &format!("fragile-{fragile}"), &int8_onnx, &simulated_int8);
        // The fallback precisiond builds next: the same layer in FP16 is not fragile.
        let fallback = int8.with(&fragile, Precision::Fp16);
        let fallback_onnx = cls().export(dir.path(), &format!("fallback-{fragile}"), &fallback);
        let (recovered, _) =
            compare(&broken, &format!("fallback-{fragile}"), &fallback_onnx, &cls().simulate(&fallback, samples));
        eprintln!(
            "{fragile}: cosine to the simulation {worse} fragile ({kept}/{samples} top classes kept), {recovered} after the fallback"
        );
        // cls's budget is cosine 0.995 and argmax agreement 0.99: a verification must fail on either.
        assert!(
            worse < 0.995 && kept < samples,
            "FRAGILE={fragile}: cosine {worse}, {kept}/{samples} top classes kept"
        );
        assert!(1.0 - recovered <= 1e-3, "{fragile} in FP16: {recovered}");
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    // A zombie still answers kill(pid, 0); it is dead, only not yet reaped by whoever adopted it.
    exists
        && fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
}

#[test]
fn a_hung_build_times_out_and_its_whole_process_group_is_killed() {
    let dir = support::tempdir();
    let onnx = cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8));
    let exe = trtexec(dir.path(), "hang", "10.3.0", &[("TRTEXEC_STANDIN_HANG_S", "600")]);
    let engine = dir.path().join("hang.engine");
    let args = args::build_args(version("10.3.0"), &build_request(&onnx, &engine, Mode::Explicit)).unwrap();
    let started = Instant::now();
    // Enough for the stand-in to reach its sleep even on a loaded 2-core machine.
    let limit = Duration::from_secs(8);
    let outcome = run_for(&exe, &args, &dir.path().join("hang.log"), limit);
    assert!(started.elapsed() < Duration::from_secs(40), "{:?}", started.elapsed());
    assert_eq!(outcome.end, RunEnd::TimedOut(limit));
    assert_eq!(outcome.failure.as_ref().map(|f| f.class), Some(FailureClass::Timeout));
    let log = fs::read_to_string(&outcome.log_path).unwrap();
    let line = log.lines().find(|l| l.contains("TRTEXEC_STANDIN_HANG_S")).unwrap_or_else(|| panic!("{log}"));
    let number_after = |key: &str| -> i32 {
        line.split(key).nth(1).unwrap().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let (pid, group, child) = (number_after(": pid "), number_after("process group "), number_after("child pid "));
    assert_eq!(pid, group, "the stand-in leads its process group");
    let end = Instant::now() + Duration::from_secs(3);
    // Signals arrive asynchronously: give the kernel a moment before calling anything a survivor.
    while (!live_members(group).is_empty() || alive(child) || alive(pid)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(live_members(group).is_empty(), "group {group} still has {:?}", live_members(group));
    assert!(!alive(child) && !alive(pid), "the sleep child {child} or the leader {pid} survived");
    assert!(!engine.exists());
}

#[test]
fn a_build_killed_like_the_oom_killer_is_classified_as_killed() {
    let dir = support::tempdir();
    let onnx = cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8));
    let exe = trtexec(dir.path(), "crash", "8.5.2", &[("TRTEXEC_STANDIN_CRASH", "1")]);
    let engine = dir.path().join("crash.engine");
    let args = args::build_args(version("8.5.2"), &build_request(&onnx, &engine, Mode::Explicit)).unwrap();
    let outcome = run(&exe, &args, &dir.path().join("crash.log"));
    assert_eq!(outcome.end, RunEnd::Signaled(libc::SIGKILL));
    assert_eq!(outcome.failure.as_ref().map(|f| f.class), Some(FailureClass::Killed));
    assert!(outcome.log.banner.is_some() && outcome.log.trailer.is_none(), "killed before any trailer");
    assert!(!engine.exists());
}

#[test]
fn every_invocation_is_logged_with_its_kind() {
    let dir = support::tempdir();
    let onnx = cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8));
    let calls = dir.path().join("calls.log");
    let exe = trtexec(dir.path(), "logged", "8.6.2", &[("TRTEXEC_STANDIN_LOG", calls.to_str().unwrap())]);
    let v = version("8.6.2");
    let engine = build_explicit(&exe, v, dir.path(), "a", &onnx);
    build_explicit(&exe, v, dir.path(), "b", &onnx);
    verify(&exe, v, dir.path(), &engine, 0);
    profile(&exe, v, dir.path(), &engine);
    retry_busy(|| detect_trtexec_version(&exe, Duration::from_secs(30))).unwrap();
    let text = fs::read_to_string(&calls).unwrap();
    let kinds: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(kinds, ["build", "build", "run", "profile", "help"], "{text}");
    assert!(text.lines().next().unwrap().contains(&format!("--onnx={}", onnx.display())), "{text}");
}

#[test]
fn an_engine_from_another_version_is_refused_as_incompatible() {
    let dir = support::tempdir();
    let onnx = cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8));
    let old = trtexec(dir.path(), "old", "10.3.0", &[]);
    let new = trtexec(dir.path(), "new", "10.13.3", &[]);
    let engine = build_explicit(&old, version("10.3.0"), dir.path(), "old", &onnx);
    let out = dir.path().join("out.json");
    let request = VerifyRequest {
        engine,
        inputs: Vec::new(),
        output_json: out.clone(),
        dla_core: None,
        shapes: cls().job.shapes(),
    };
    let outcome = run(&new, &args::verify_args(version("10.13.3"), &request).unwrap(), &dir.path().join("load.log"));
    let failure = outcome.failure.as_ref().expect("a plan of 10.3.0 does not load in 10.13.3");
    assert_eq!(failure.class, FailureClass::IncompatibleEngine, "{failure:?}");
    assert!(failure.message.as_deref().is_some_and(|m| m.contains("expecting library version 10.13.3")), "{failure:?}");
    assert!(!out.exists());
}

#[test]
fn an_onnx_the_parser_cannot_read_fails_as_a_parse_failure_on_every_version() {
    let dir = support::tempdir();
    let onnx = dir.path().join("broken.onnx");
    fs::write(&onnx, b"\x08\x07\x12\x07not a model").unwrap();
    for text in VERSIONS {
        let exe = trtexec(dir.path(), text, text, &[]);
        let engine = dir.path().join(format!("{text}.engine"));
        let args = args::build_args(version(text), &build_request(&onnx, &engine, Mode::Explicit)).unwrap();
        let outcome = run(&exe, &args, &dir.path().join(format!("{text}.log")));
        assert_eq!(
            outcome.failure.as_ref().map(|f| f.class),
            Some(FailureClass::OnnxParse),
            "{text}: {:?}",
            outcome.failure
        );
        assert!(!engine.exists());
    }
}

#[test]
fn flags_a_version_does_not_know_fail_with_its_unknown_option_error() {
    // tensorrt.md §2.1: 8.5 has --buildOnly, not --skipInference; no strong typing or optimization level before
    // 10.x / 8.6; 10.x dropped --workspace and --buildOnly; 11.x dropped every precision flag.
    let rows = [
        ("8.5.2", "--skipInference"),
        ("8.5.2", "--builderOptimizationLevel=3"),
        ("8.5.2", "--stronglyTyped"),
        ("8.6.2", "--stronglyTyped"),
        ("10.3.0", "--buildOnly"),
        ("10.13.3", "--workspace=1024"),
        ("11.4.1", "--fp16"),
        ("11.4.1", "--best"),
        ("11.4.1", "--calib=calib.cache"),
        ("11.4.1", "--precisionConstraints=obey"),
        ("11.4.1", "--layerOutputTypes=Conv@0:fp16"),
    ];
    let dir = support::tempdir();
    let onnx = cls().export(dir.path(), "int8", &cls().uniform(Precision::Int8));
    for (text, flag) in rows {
        let exe = trtexec(dir.path(), text, text, &[]);
        let args = vec![format!("--onnx={}", onnx.display()), flag.to_string()];
        let outcome = run(&exe, &args, &dir.path().join("unknown.log"));
        let failure = outcome.failure.as_ref().unwrap_or_else(|| panic!("{text} accepted {flag}"));
        assert_eq!(failure.class, FailureClass::UnknownOption, "{text} {flag}: {failure:?}");
        assert_eq!(failure.option.as_deref(), flag.split('=').next(), "{text}");
        assert_eq!(outcome.end, RunEnd::Exited(1), "{text}");
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        let log = fs::read_to_string(&outcome.log_path).unwrap();
        assert!(log.contains(&format!("[E] Unknown option: {name} {value}\n")), "{text}: {log}");
    }
    // The same flags where the version knows them.
    for (text, flag) in [
        ("8.5.2", "--buildOnly"),
        ("8.6.2", "--skipInference"),
        ("10.3.0", "--stronglyTyped"),
        ("11.4.1", "--stronglyTyped"),
    ] {
        let exe = trtexec(dir.path(), text, text, &[]);
        let args = vec![format!("--onnx={}", onnx.display()), "--shapes=x:1x3x48x192".into(), flag.into()];
        let skip =
            if text == "8.5.2" || flag == "--skipInference" { Vec::new() } else { vec!["--skipInference".to_string()] };
        assert_passed(&run(&exe, &[args, skip].concat(), &dir.path().join("known.log")), &format!("{text} {flag}"));
    }
}
