//! The trtexec parsers against every real sample in tests/fixtures/trtexec/ (sources in SOURCES.md there).
//! Expected numbers are typed exactly as the files print them; f64 parsing of the same decimal text is
//! exact, so the comparisons are `==`.

use precisiond::trt::parse::*;
use serde_json::json;
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trtexec/");

fn path(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn fixture(name: &str) -> String {
    read_text(&path(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// min, max, mean, median, p90, p95, p99.
type S = [Option<f64>; 7];

const fn st(min: f64, max: f64, mean: f64, median: f64, p90: f64, p95: f64, p99: f64) -> S {
    [Some(min), Some(max), Some(mean), Some(median), Some(p90), Some(p95), Some(p99)]
}

const ZERO: S = st(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);

struct Perf {
    throughput_qps: f64,
    latency: S,
    enqueue: S,
    h2d: Option<S>,
    gpu_compute: S,
    d2h: Option<S>,
    end_to_end: Option<S>,
    walltime_s: f64,
    gpu_total_s: f64,
    format: SummaryFormat,
}

struct Dev {
    name: &'static str,
    cc: &'static str,
    sms: u32,
    memory_mib: u64,
}

struct Case {
    file: &'static str,
    version: Option<&'static str>,
    build: Option<u32>,
    status: Status,
    failure: Option<FailureClass>,
    perf: Option<Perf>,
    device: Option<Dev>,
}

const H100: Dev = Dev { name: "NVIDIA H100 PCIe", cc: "9.0", sms: 114, memory_mib: 81081 };

/// The passed 10.16.1 runs on the H100 differ only in their file and in the summary some of them print.
const fn h100_10_16_1(file: &'static str, perf: Option<Perf>) -> Case {
    Case {
        file,
        version: Some("10.16.1"),
        build: Some(11),
        status: Status::Passed,
        failure: None,
        perf,
        device: Some(H100),
    }
}

const LOGS: &[Case] = &[
    Case {
        file: "trt10.16.0_rtx6000ada_loadEngine_fp16_precisionConstraints_layerPrecisions_python_captured.log",
        version: Some("10.16.0"),
        build: Some(72),
        status: Status::Passed,
        failure: None,
        perf: Some(Perf {
            throughput_qps: 22645.4,
            latency: st(0.0366211, 1.49951, 0.0428066, 0.0379028, 0.0388184, 0.0389404, 0.246826),
            enqueue: st(0.0291443, 0.0792236, 0.0312944, 0.0308228, 0.0319214, 0.0332031, 0.0394897),
            h2d: Some(ZERO),
            gpu_compute: st(0.0366211, 1.49951, 0.0428066, 0.0379028, 0.0388184, 0.0389404, 0.246826),
            d2h: Some(ZERO),
            end_to_end: None,
            walltime_s: 3.00007,
            gpu_total_s: 2.9082,
            format: SummaryFormat::Modern,
        }),
        device: Some(Dev { name: "NVIDIA RTX 6000 Ada Generation", cc: "8.9", sms: 142, memory_mib: 48501 }),
    },
    h100_10_16_1("trt10.16.1_h100_dumpLayerInfo_exportLayerInfo_skipInference.log", None),
    h100_10_16_1("trt10.16.1_h100_loadEngine_dumpProfile_exportTimes_exportProfile.log", None),
    h100_10_16_1(
        "trt10.16.1_h100_onnx_default_build_and_run.log",
        Some(Perf {
            throughput_qps: 15374.3,
            latency: st(0.0410156, 0.14917, 0.0441053, 0.0440674, 0.0450439, 0.0458984, 0.0512695),
            enqueue: st(0.0247803, 0.137939, 0.0271685, 0.0267334, 0.0283203, 0.0299072, 0.0357666),
            h2d: Some(st(0.00341797, 0.108398, 0.00395853, 0.00378418, 0.00439453, 0.00488281, 0.00537109)),
            gpu_compute: st(0.0331421, 0.140381, 0.0359588, 0.0361328, 0.0368652, 0.0371094, 0.041748),
            d2h: Some(st(0.00390625, 0.0341797, 0.00418773, 0.00415039, 0.00421143, 0.00427246, 0.00512695)),
            end_to_end: None,
            walltime_s: 3.00013,
            gpu_total_s: 1.6586,
            format: SummaryFormat::Modern,
        }),
    ),
    Case {
        file: "trt10.16.1_help_output.txt",
        version: Some("10.16.1"),
        build: Some(11),
        status: Status::Failed,
        failure: Some(FailureClass::Other),
        perf: None,
        device: None,
    },
    Case {
        file: "trt11.1.0_h100_stronglyTyped_saveEngine_and_unknown_option_fp16_int8_best.log",
        version: Some("11.1.0"),
        build: Some(106),
        status: Status::Passed,
        failure: None,
        perf: None,
        device: Some(Dev { memory_mib: 81071, ..H100 }),
    },
    Case {
        file: "trt7.x_jetson_caffe_int8_legacy_summary_format.log",
        version: None,
        build: None,
        status: Status::Passed,
        failure: None,
        perf: Some(Perf {
            throughput_qps: 318.785,
            latency: [Some(3.05505), Some(5.60945), Some(3.1141), Some(3.09796), None, None, Some(3.4563)],
            enqueue: [Some(3.02222), Some(5.35538), None, Some(3.05493), None, None, None],
            h2d: None,
            gpu_compute: [Some(3.00146), Some(5.56586), Some(3.05402), Some(3.03919), None, None, Some(3.41711)],
            d2h: None,
            end_to_end: Some([Some(3.06653), Some(5.61841), Some(3.12513), Some(3.10852), None, None, Some(3.47168)]),
            walltime_s: 3.00516,
            gpu_total_s: 2.92575,
            format: SummaryFormat::Legacy,
        }),
        device: None,
    },
    Case {
        file: "trt8.2.3_gtx1070_fp16_saveEngine_FAILED.log",
        version: Some("8.2.3"),
        build: None,
        status: Status::Failed,
        failure: Some(FailureClass::Other),
        perf: None,
        device: Some(Dev { name: "NVIDIA GeForce GTX 1070", cc: "6.1", sms: 16, memory_mib: 8111 }),
    },
    Case {
        file: "trt8.2.4_onnx_parse_failure_Pad_reflect_FAILED.txt",
        version: Some("8.2.4"),
        build: None,
        status: Status::Failed,
        failure: Some(FailureClass::OnnxParse),
        perf: None,
        device: None,
    },
    Case {
        file: "trt8.5.2_jetson_orin_nano_fp16_perf_summary_only.md",
        version: Some("8.5.2"),
        build: None,
        status: Status::Passed,
        failure: None,
        perf: Some(Perf {
            throughput_qps: 97.8649,
            latency: st(10.642, 10.9861, 10.7971, 10.7972, 10.9329, 10.949, 10.9744),
            enqueue: st(1.1098, 2.30975, 1.36227, 1.19873, 1.9928, 2.07275, 2.15002),
            h2d: Some(st(0.299072, 0.373962, 0.316446, 0.310486, 0.332031, 0.345398, 0.354126)),
            gpu_compute: st(10.0343, 10.3575, 10.1824, 10.1851, 10.3206, 10.338, 10.356),
            d2h: Some(st(0.17041, 0.312134, 0.29821, 0.298584, 0.302856, 0.304077, 0.310608)),
            end_to_end: None,
            walltime_s: 3.0348,
            gpu_total_s: 3.02418,
            format: SummaryFormat::Modern,
        }),
        device: None,
    },
    Case {
        file: "trt8.5.2_rtx3090_fp16_saveEngine_plugin.log",
        version: Some("8.5.2"),
        build: None,
        status: Status::Passed,
        failure: None,
        perf: Some(Perf {
            throughput_qps: 196.933,
            latency: st(9.57434, 9.91241, 9.77405, 9.76929, 9.82129, 9.8645, 9.89069),
            enqueue: st(1.18994, 2.75586, 1.45974, 1.43552, 1.61072, 1.69458, 1.9259),
            h2d: Some(st(1.60645, 1.68036, 1.63357, 1.63263, 1.646, 1.65137, 1.66034)),
            gpu_compute: st(4.76367, 5.03192, 4.9113, 4.9054, 4.94385, 5.00531, 5.02271),
            d2h: Some(st(3.11963, 3.28564, 3.22918, 3.22974, 3.25317, 3.25665, 3.27173)),
            end_to_end: None,
            walltime_s: 3.01626,
            gpu_total_s: 2.91731,
            format: SummaryFormat::Modern,
        }),
        device: Some(Dev { name: "NVIDIA GeForce RTX 3090", cc: "8.6", sms: 82, memory_mib: 24268 }),
    },
    Case {
        file: "trt8.6.1_h100_fp16_saveEngine.log",
        version: Some("8.6.1"),
        build: None,
        status: Status::Passed,
        failure: None,
        perf: Some(Perf {
            throughput_qps: 484.641,
            latency: st(2.74048, 6.60767, 3.18949, 3.09521, 4.38843, 4.60181, 4.83325),
            enqueue: st(0.893311, 6.70361, 0.933041, 0.922607, 0.934326, 0.953857, 1.1228),
            h2d: Some(st(0.764893, 1.104, 0.779499, 0.772949, 0.784912, 0.79126, 0.972656)),
            gpu_compute: st(1.58716, 5.46997, 2.05867, 1.97192, 3.27051, 3.48145, 3.66565),
            d2h: Some(st(0.332214, 0.592529, 0.351326, 0.347412, 0.354736, 0.364822, 0.540222)),
            end_to_end: None,
            walltime_s: 3.00635,
            gpu_total_s: 2.99948,
            format: SummaryFormat::Modern,
        }),
        device: Some(H100),
    },
];

/// The JSON exports, by the parser that reads them.
const PROFILE_EXPORTS: &[&str] = &["trt8.x_a100_fp16_resnet_exportProfile.json.txt"];
const LAYER_INFO_EXPORTS: &[&str] = &[
    "trt10.16.1_h100_exportLayerInfo_detailed.json.txt",
    "trt8.x_a100_fp16_resnet_exportLayerInfo_detailed.json.txt",
    "trtUNK_detr_int8_layerPrecisions_exportLayerInfo_namesonly.json.txt",
];
const OUTPUT_EXPORTS: &[&str] = &["trt7.x_jetson_resnet50_int8_exportOutput.json.txt"];

fn all_samples() -> Vec<&'static str> {
    let mut v: Vec<&str> = LOGS.iter().map(|c| c.file).collect();
    v.extend(PROFILE_EXPORTS.iter().chain(LAYER_INFO_EXPORTS).chain(OUTPUT_EXPORTS));
    v
}

fn stats_array(s: &Stats) -> S {
    [s.min, s.max, s.mean, s.median, s.percentile(90.0), s.percentile(95.0), s.percentile(99.0)]
}

/// A profile row's time, average, median (ms) and share (%).
fn times(layer: &LayerTime) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    (layer.time_ms, layer.average_ms, layer.median_ms, layer.percentage)
}

fn check_stats(file: &str, what: &str, actual: Option<&Stats>, expected: Option<S>) {
    match (actual, expected) {
        (None, None) => {}
        (Some(a), Some(e)) => assert_eq!(stats_array(a), e, "{file}: {what}"),
        (a, e) => panic!("{file}: {what}: got {a:?}, want {e:?}"),
    }
}

#[test]
fn every_trtexec_sample_has_a_row() {
    let mut on_disk: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("trt"))
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = all_samples().iter().map(|s| s.to_string()).collect();
    covered.sort();
    assert_eq!(on_disk, covered);
}

#[test]
fn every_log_sample_matches_its_row() {
    for case in LOGS {
        let f = case.file;
        let log = parse_log_file(&path(f)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.version.map(|v| v.to_string()).as_deref(), case.version, "{f}: version");
        assert_eq!(log.version.and_then(|v| v.build), case.build, "{f}: build");
        assert_eq!(log.status, case.status, "{f}: status");
        assert_eq!(log.failure.as_ref().map(|x| x.class), case.failure, "{f}: failure");
        match (&log.perf, &case.perf) {
            (None, None) => {}
            (Some(p), Some(e)) => {
                assert_eq!(p.format, e.format, "{f}: summary format");
                assert_eq!(p.throughput_qps, Some(e.throughput_qps), "{f}: throughput");
                check_stats(f, "latency", p.latency.as_ref(), Some(e.latency));
                check_stats(f, "enqueue", p.enqueue.as_ref(), Some(e.enqueue));
                check_stats(f, "h2d", p.h2d.as_ref(), e.h2d);
                check_stats(f, "gpu compute", p.gpu_compute.as_ref(), Some(e.gpu_compute));
                check_stats(f, "d2h", p.d2h.as_ref(), e.d2h);
                check_stats(f, "end to end", p.end_to_end.as_ref(), e.end_to_end);
                assert_eq!(p.total_host_walltime_s, Some(e.walltime_s), "{f}: walltime");
                assert_eq!(p.total_gpu_compute_s, Some(e.gpu_total_s), "{f}: total gpu compute");
                assert!(p.other.is_empty(), "{f}: unexpected metrics {:?}", p.other);
            }
            (p, _) => panic!("{f}: perf: got {p:?}, want {}", if case.perf.is_some() { "a summary" } else { "none" }),
        }
        match (&log.device, &case.device) {
            (None, None) => {}
            (Some(d), Some(e)) => {
                assert_eq!(d.name.as_deref(), Some(e.name), "{f}: device name");
                assert_eq!(d.compute_capability.as_deref(), Some(e.cc), "{f}: compute capability");
                assert_eq!(d.sm_count, Some(e.sms), "{f}: sms");
                assert_eq!(d.global_memory_mib, Some(e.memory_mib), "{f}: memory");
            }
            (d, _) => panic!("{f}: device: got {d:?}"),
        }
        // The contract mirrors the summary exactly.
        let c = serde_json::to_value(log.to_contract_json()).unwrap();
        assert_eq!(c["tensorrt_version"], json!(case.version), "{f}");
        assert_eq!(c["status"], json!(case.status), "{f}");
        assert_eq!(c["failure"], json!(case.failure), "{f}");
        let Some(want) = case.perf.as_ref() else {
            assert_eq!(c["perf"], json!(null), "{f}: no summary, so perf is null");
            continue;
        };
        for (i, k) in ["min", "max", "mean", "median", "p90", "p95", "p99"].iter().enumerate() {
            assert_eq!(c["perf"]["latency_ms"][k], json!(want.latency[i]), "{f}: latency_ms.{k}");
            assert_eq!(c["perf"]["gpu_compute_ms"][k], json!(want.gpu_compute[i]), "{f}: gpu_compute_ms.{k}");
        }
        assert_eq!(c["perf"]["throughput_qps"], json!(want.throughput_qps), "{f}");
    }
}

/// Keys in contract order, found by position in the serialized text (serde_json maps may sort).
fn assert_key_order(text: &str, keys: &[&str]) {
    let mut last = 0;
    for k in keys {
        let needle = format!("\"{k}\":");
        let at = text
            .get(last..)
            .and_then(|t| t.find(&needle))
            .unwrap_or_else(|| panic!("{k} missing or out of order in {text}"));
        last += at + needle.len();
    }
}

#[test]
fn contract_json_has_exactly_the_contract_keys_in_order() {
    let top = ["tensorrt_version", "status", "failure", "perf", "failure_hint", "device", "trtexec_args"];
    for case in LOGS {
        let log = TrtexecLog::parse(&fixture(case.file));
        let text = serde_json::to_string(&log.to_contract_json()).unwrap();
        let stats = ["min", "max", "mean", "median", "p90", "p95", "p99"];
        let mut keys = vec!["tensorrt_version", "status", "failure", "perf"];
        if case.perf.is_some() {
            keys.extend(["throughput_qps", "latency_ms"]);
            keys.extend(stats);
            keys.push("gpu_compute_ms");
            keys.extend(stats);
        }
        keys.extend(["failure_hint", "device", "trtexec_args"]);
        assert_key_order(&text, &keys);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = top.to_vec();
        want.sort();
        assert_eq!(keys, want, "{}", case.file);
        if let Some(perf) = v["perf"].as_object() {
            assert_eq!(perf.len(), 3);
            assert_eq!(v["perf"]["latency_ms"].as_object().unwrap().len(), 7);
            assert_eq!(v["perf"]["gpu_compute_ms"].as_object().unwrap().len(), 7);
        }
        // Round trip through the typed form.
        let back: ContractJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back, log.to_contract_json());
    }
}

#[test]
fn contract_json_documents() {
    let c = |f: &str| serde_json::to_value(TrtexecLog::parse(&fixture(f)).to_contract_json()).unwrap();
    assert_eq!(
        c("trt10.16.1_h100_onnx_default_build_and_run.log"),
        json!({
            "tensorrt_version": "10.16.1", "status": "passed", "failure": null,
            "perf": {
                "throughput_qps": 15374.3,
                "latency_ms": {"min": 0.0410156, "max": 0.14917, "mean": 0.0441053, "median": 0.0440674,
                               "p90": 0.0450439, "p95": 0.0458984, "p99": 0.0512695},
                "gpu_compute_ms": {"min": 0.0331421, "max": 0.140381, "mean": 0.0359588, "median": 0.0361328,
                                   "p90": 0.0368652, "p95": 0.0371094, "p99": 0.041748}
            },
            "failure_hint": null,
            "device": {"name": "NVIDIA H100 PCIe", "compute_capability": "9.0", "sm_count": 114, "memory_mib": 81081},
            "trtexec_args": ["--onnx=/data/trt-samples-for-hackathon-cn/cookbook/00-Data/model/model-trained.onnx"]
        })
    );
    let legacy = c("trt7.x_jetson_caffe_int8_legacy_summary_format.log");
    assert_eq!(legacy["tensorrt_version"], json!(null));
    assert_eq!(
        legacy["perf"],
        json!({
            "throughput_qps": 318.785,
            "latency_ms": {"min": 3.05505, "max": 5.60945, "mean": 3.1141, "median": 3.09796, "p90": null, "p95": null, "p99": 3.4563},
            "gpu_compute_ms": {"min": 3.00146, "max": 5.56586, "mean": 3.05402, "median": 3.03919, "p90": null, "p95": null, "p99": 3.41711}
        })
    );
    let failed = c("trt8.2.4_onnx_parse_failure_Pad_reflect_FAILED.txt");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure"], "onnx_parse");
    assert_eq!(failed["perf"], json!(null));
    assert!(failed["failure_hint"].as_str().unwrap().starts_with("the onnx parser"));
    assert_eq!(failed["trtexec_args"], json!(["--onnx=unit.onnx", "--shapes=input:1x3x64x64", "--buildOnly"]));
}

#[test]
fn versions_from_banners() {
    let expect = [
        ("trt10.16.1_help_output.txt", Ok("10.16.1.11")),
        ("trt11.1.0_h100_stronglyTyped_saveEngine_and_unknown_option_fp16_int8_best.log", Ok("11.1.0.106")),
        ("trt8.6.1_h100_fp16_saveEngine.log", Ok("8.6.1")),
        ("trt8.5.2_rtx3090_fp16_saveEngine_plugin.log", Ok("8.5.2")),
        ("trt8.2.3_gtx1070_fp16_saveEngine_FAILED.log", Ok("8.2.3")),
        // No RUNNING banner (the notes keep only the tail); the FAILED trailer carries v8204.
        ("trt8.2.4_onnx_parse_failure_Pad_reflect_FAILED.txt", Ok("8.2.4")),
        ("trt8.5.2_jetson_orin_nano_fp16_perf_summary_only.md", Ok("8.5.2")),
        // 7.x: the banner (line 1) has no tag.
        ("trt7.x_jetson_caffe_int8_legacy_summary_format.log", Err(VersionError::NoVersionTag { line: 1 })),
    ];
    for (f, want) in expect {
        let got = detect_version(&fixture(f)).map(|v| v.full_string());
        assert_eq!(got.as_deref().map_err(Clone::clone), want, "{f}");
    }
    assert_eq!(detect_version(&fixture("trt8.x_a100_fp16_resnet_exportProfile.json.txt")), Err(VersionError::NoBanner));
    let e = VersionError::NoVersionTag { line: 1 }.to_string();
    assert!(e.starts_with("line 1: the trtexec banner carries no"), "{e}");
}

#[test]
fn banner_arguments_and_options() {
    let log = TrtexecLog::parse(&fixture(
        "trt10.16.0_rtx6000ada_loadEngine_fp16_precisionConstraints_layerPrecisions_python_captured.log",
    ));
    let b = log.banner.as_ref().unwrap();
    assert_eq!(b.program.as_deref(), Some("trtexec"));
    assert_eq!(b.args.last().map(String::as_str), Some("--layerPrecisions=node_conv2d:fp32"));
    assert_eq!(log.trailer.as_ref().unwrap().kind, BannerKind::Passed);
    // Every line is followed by a blank line (captured through Python); the two foreign [TRT] [W] lines
    // inside the trace are the only warnings.
    assert_eq!(log.warning_count, 2);
    assert_eq!(log.options["Inference Options"]["Data transfers"], "Disabled");
    assert_eq!(log.options["Reporting Options"]["Percentiles"], "90,95,99");
    assert!(!log.options.contains_key("Build Options"), "a --loadEngine run prints no build options");
    let perf = log.perf.as_ref().unwrap();
    assert_eq!((perf.warmup_queries, perf.queries), (Some(4177), Some(67938)));

    let precision = |f: &str| TrtexecLog::parse(&fixture(f)).options["Build Options"]["Precision"].clone();
    assert_eq!(precision("trt10.16.1_h100_onnx_default_build_and_run.log"), "FP32");
    assert_eq!(
        precision("trt11.1.0_h100_stronglyTyped_saveEngine_and_unknown_option_fp16_int8_best.log"),
        "Strongly Typed"
    );
    assert_eq!(precision("trt8.6.1_h100_fp16_saveEngine.log"), "FP32+FP16");
    assert_eq!(precision("trt8.5.2_rtx3090_fp16_saveEngine_plugin.log"), "FP32+FP16");
    assert_eq!(precision("trt8.2.3_gtx1070_fp16_saveEngine_FAILED.log"), "FP32+FP16");
    assert_eq!(precision("trt7.x_jetson_caffe_int8_legacy_summary_format.log"), "FP32+INT8");

    let old = TrtexecLog::parse(&fixture("trt7.x_jetson_caffe_int8_legacy_summary_format.log"));
    assert_eq!(old.options["Reporting Options"]["Percentile"], "99");
    assert!(old.banner.as_ref().unwrap().version_tag.is_none());
}

#[test]
fn ten_x_device_block() {
    let d = TrtexecLog::parse(&fixture("trt10.16.1_h100_onnx_default_build_and_run.log")).device.unwrap();
    assert_eq!(d.device_id, Some(0));
    assert_eq!(d.uuid.as_deref(), Some("GPU-31e9692b-62b7-2d62-f0b1-f4195b568ac7"));
    assert_eq!(d.compute_capability_pair(), Some((9, 0)));
    assert_eq!(d.shared_memory_per_sm_kib, Some(228));
    assert_eq!((d.memory_bus_width_bits, d.ecc_enabled), (Some(5120), Some(true)));
    assert_eq!((d.compute_clock_ghz, d.memory_clock_ghz), (Some(1.755), Some(1.593)));
    assert_eq!(d.available.len(), 1);
    assert_eq!(d.available[0].name, "NVIDIA H100 PCIe");
    assert!(d.other.is_empty(), "{:?}", d.other);
    // 8.5 labels: no "Application" prefix, no UUID.
    let d = TrtexecLog::parse(&fixture("trt8.5.2_rtx3090_fp16_saveEngine_plugin.log")).device.unwrap();
    assert_eq!((d.compute_clock_ghz, d.memory_clock_ghz), (Some(1.695), Some(9.751)));
    assert_eq!((d.uuid, d.ecc_enabled), (None, Some(false)));
}

#[test]
fn ten_x_summary_extras() {
    let log = TrtexecLog::parse(&fixture("trt10.16.1_h100_onnx_default_build_and_run.log"));
    let p = log.perf.as_ref().unwrap();
    assert_eq!(p.gpu_compute_cov_percent, Some(6.58751));
    assert_eq!((p.warmup_queries, p.warmup_ms), (Some(3057), Some(200.0)));
    assert_eq!((p.queries, p.trace_duration_s), (Some(46125), Some(3.00013)));
    assert_eq!(p.warnings, vec!["* GPU compute time is unstable, with coefficient of variance = 6.58751%."]);
    assert_eq!((log.engine_build_s, log.engine_size_mib), (Some(8.09138), Some(12.5744)));
    let p = TrtexecLog::parse(&fixture("trt8.6.1_h100_fp16_saveEngine.log")).perf.unwrap();
    assert_eq!(p.gpu_compute_cov_percent, Some(25.6499));
}

#[test]
fn dump_profile_table_instead_of_summary() {
    let log = TrtexecLog::parse(&fixture("trt10.16.1_h100_loadEngine_dumpProfile_exportTimes_exportProfile.log"));
    assert!(log.e2e_timing_not_reported);
    assert!(log.perf.is_none());
    let t = log.profile.as_ref().unwrap();
    assert_eq!(t.iterations, Some(18362));
    assert_eq!(t.layers.len(), 15);
    let first = &t.layers[0];
    assert_eq!(first.name, "__mye59_0_myl0_0");
    assert_eq!(times(first), (Some(31.40), Some(0.0017), Some(0.0018), Some(2.1)));
    let reformat = &t.layers[3];
    assert_eq!(reformat.name, "Reformatting CopyNode for Input Tensor 0 to {ForeignNode[node_conv2d_1...node_relu_1]}");
    assert_eq!(reformat.time_ms, Some(101.96));
    assert_eq!(t.layers[14].name, "__myl_Cast_myl5_7");
    let total = t.total.as_ref().unwrap();
    assert_eq!(times(total), (Some(1529.13), Some(0.0833), Some(0.0804), Some(100.0)));
    assert_eq!(log.trtexec_args().unwrap()[2], "--exportTimes=./model-trained-exportTimes.json");
}

#[test]
fn dump_layer_info_in_log() {
    let log = TrtexecLog::parse(&fixture("trt10.16.1_h100_dumpLayerInfo_exportLayerInfo_skipInference.log"));
    assert!(log.skipped_inference);
    let info = log.layer_info.as_ref().unwrap();
    assert_eq!(info.layers.len(), 9);
    assert_eq!(info.layer_names()[0], "node_conv2d + node_relu");
    assert_eq!(info.layers[4].detailed().unwrap().layer_type.as_deref(), Some("gemm"));
    assert_eq!(info.layer_names()[8], "__myl_CastReshCast_myl4_4");
    assert_eq!(info.binding_names(), vec!["x", "y", "z"]);
    // Same engine as the exported detailed JSON: same layer names.
    let export = parse_export_layer_info(&fixture("trt10.16.1_h100_exportLayerInfo_detailed.json.txt"), "x").unwrap();
    assert_eq!(info.layer_names(), export.layer_names());
}

#[test]
fn failures_and_their_evidence() {
    let log = TrtexecLog::parse(&fixture("trt8.2.4_onnx_parse_failure_Pad_reflect_FAILED.txt"));
    let f = log.failure.as_ref().unwrap();
    assert_eq!((f.node.as_deref(), f.op.as_deref()), (Some("Pad_13"), Some("Pad")));
    // trtexec's own [E] line is preferred over the Python script's echo earlier in the notes.
    assert_eq!(f.line, Some(14));
    assert!(f.message.as_deref().unwrap().contains("While parsing node number 13 [Pad -> \"output\"]"));
    assert_eq!(log.errors.last().unwrap().text, "Engine set up failed");
    assert!(log.banner.is_none());
    assert_eq!(log.trailer.as_ref().unwrap().kind, BannerKind::Failed);

    // Captured without stderr: FAILED right after parsing and no [E] line.
    let log = TrtexecLog::parse(&fixture("trt8.2.3_gtx1070_fp16_saveEngine_FAILED.log"));
    assert!(log.errors.is_empty());
    let f = log.failure.as_ref().unwrap();
    assert_eq!(f.line, Some(113));
    assert!(f.message.as_deref().unwrap().contains("stderr"), "{f:?}");

    // 11.1: the saveEngine run passed; the appended lines of separate runs show the removed flags.
    let text = fixture("trt11.1.0_h100_stronglyTyped_saveEngine_and_unknown_option_fp16_int8_best.log");
    let log = TrtexecLog::parse(&text);
    assert!(log.failure.is_none());
    assert!(log.skipped_inference);
    let errs: Vec<&str> = log.errors.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        errs,
        vec![
            "Unknown option: --fp16",
            "Unknown option: --int8",
            "Unknown option: --best",
            "Unknown option: --precisionConstraints obey"
        ]
    );
    let f = classify_failure(&text).unwrap();
    assert_eq!((f.class, f.option.as_deref(), f.line), (FailureClass::UnknownOption, Some("--fp16"), Some(150)));

    // Help output: a banner without a trailer, flagged as such rather than as a crash.
    let help = TrtexecLog::parse(&fixture("trt10.16.1_help_output.txt"));
    assert!(help.help_output);
    assert_eq!(help.runs, 1);
    assert!(help.options.is_empty(), "help text has no log lines: {:?}", help.options);

    // No sample failed for these reasons; the documented texts, wrapped in a real log's head and tail.
    let head = "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --onnx=m.onnx\n";
    for (body, class) in [
        ("[09/01/2026-10:00:00] [I] [TRT] Local timing cache in use.\nKilled\n", FailureClass::Killed),
        (
            "[09/01/2026-10:00:00] [E] Error[2]: [virtualMemoryBuffer.cpp::resizePhysical::145] Error Code 2: OutOfMemory (no further information)\n&&&& FAILED TensorRT.trtexec [TensorRT v100300] # x\n",
            FailureClass::OutOfMemory,
        ),
        (
            "[09/01/2026-10:00:00] [E] Unknown option: --buildOnly\n&&&& FAILED TensorRT.trtexec [TensorRT v100300] # x\n",
            FailureClass::UnknownOption,
        ),
        (
            "[09/01/2026-10:00:00] [I] Engine deserialized\nprecisiond: trtexec timed out after 1800 s\n",
            FailureClass::Timeout,
        ),
        (
            "[09/01/2026-10:00:00] [E] [TRT] The engine plan file is not compatible with this version of TensorRT, expecting library version 10.3.0.26 got 10.3.0.30, please rebuild.\n&&&& FAILED TensorRT.trtexec [TensorRT v100300] # x\n",
            FailureClass::IncompatibleEngine,
        ),
        ("[09/01/2026-10:00:00] [I] Starting inference\n", FailureClass::Incomplete),
        (
            "[09/01/2026-10:00:00] [E] Something new went wrong\n&&&& FAILED TensorRT.trtexec [TensorRT v100300] # x\n",
            FailureClass::Other,
        ),
    ] {
        let log = TrtexecLog::parse(&format!("{head}{body}"));
        assert_eq!(log.status, Status::Failed, "{body}");
        assert_eq!(log.failure.as_ref().map(|f| f.class), Some(class), "{body}");
    }
}

#[test]
fn profile_export() {
    let p = parse_export_profile(&fixture(PROFILE_EXPORTS[0]), PROFILE_EXPORTS[0]).unwrap();
    assert_eq!(p.count, Some(1));
    assert_eq!(p.layers.len(), 36);
    let first = &p.layers[0];
    assert_eq!(first.name, "Reformatting CopyNode for Input Tensor 0 to Conv_0 + Relu_1");
    assert_eq!(times(first), (Some(0.080896), Some(0.080896), Some(0.080896), Some(7.95569)));
    let conv = p.layer("Conv_0 + Relu_1").unwrap();
    assert_eq!((conv.time_ms, conv.percentage), (Some(0.111616), Some(10.9768)));
    assert_eq!(p.layers.iter().filter(|l| l.time_ms == Some(0.0)).count(), 11);
    let last = p.layers.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.time_ms),
        ("Reformatting CopyNode for Output Tensor 0 to reshape_after_Gemm_48", Some(0.007168))
    );
    let pct: f64 = p.layers.iter().filter_map(|l| l.percentage).sum();
    assert!((pct - 100.0).abs() < 1e-3, "{pct}");
    assert!((p.total_time_ms() - 1.016832).abs() < 1e-9, "{}", p.total_time_ms());
    assert!(p.layers.iter().all(|l| l.extra.is_empty()));
}

#[test]
fn layer_info_exports() {
    // 10.16.1, detailed.
    let i = parse_export_layer_info(&fixture(LAYER_INFO_EXPORTS[0]), LAYER_INFO_EXPORTS[0]).unwrap();
    assert!(i.is_detailed());
    assert_eq!(i.layers.len(), 9);
    assert_eq!(i.binding_names(), vec!["x", "y", "z"]);
    let conv = i.layers[0].detailed().unwrap();
    assert_eq!(conv.name, "node_conv2d + node_relu");
    assert_eq!(conv.layer_type.as_deref(), Some("CaskConvolution"));
    assert_eq!(conv.inputs[0].dimensions, vec![1, 1, 28, 28]);
    assert_eq!(conv.inputs[0].data_type(), Some(DataType::Fp32));
    assert_eq!(conv.tactic_value.as_deref(), Some("0x5b8bf1b8028629d9"));
    assert_eq!(conv.stream_id, Some(0));
    assert_eq!(conv.onnx_layers(), vec!["node_conv2d", "node_relu"]);
    assert_eq!(conv.extra["Kernel"], json!([5, 5]));
    assert_eq!(conv.extra["Weights"], json!({"Type": "Float", "Count": 800}));
    let argmax = i.layers[7].detailed().unwrap();
    assert_eq!(argmax.name, "__myl_DivMulMaxr_myl4_3");
    // This file separates metadata entries with \u001f where the others use \u001e.
    assert_eq!(argmax.onnx_layers(), vec!["node_softmax", "node_argmax"]);
    assert_eq!(argmax.outputs[1].data_type(), Some(DataType::Int32));
    let last = i.layers[8].detailed().unwrap();
    assert!(last.onnx_layers().is_empty());
    assert_eq!(last.outputs[0].location, None);
    assert_eq!(last.output_precision(), Some(DataType::Int64));

    // 8.x era, detailed, FP16 engine.
    let i = parse_export_layer_info(&fixture(LAYER_INFO_EXPORTS[1]), LAYER_INFO_EXPORTS[1]).unwrap();
    assert_eq!(i.layers.len(), 36);
    assert_eq!(i.binding_names(), vec!["input.1", "191"]);
    let count = |t: &str| i.layers.iter().filter(|l| l.detailed().unwrap().layer_type.as_deref() == Some(t)).count();
    assert_eq!(
        (count("CaskConvolution"), count("NoOp"), count("Reformat"), count("CaskPooling"), count("CudaPooling")),
        (21, 11, 2, 1, 1)
    );
    let first = i.layers[0].detailed().unwrap();
    assert_eq!(first.origin.as_deref(), Some("REFORMAT"));
    assert_eq!(first.inputs[0].dimensions, vec![32, 3, 224, 224]);
    assert_eq!(first.output_precision(), Some(DataType::Fp16));
    let conv = i.layers[1].detailed().unwrap();
    assert_eq!(conv.name, "Conv_0 + Relu_1");
    assert_eq!(conv.extra["Weights"], json!({"Type": "Half", "Count": 9408}));
    assert_eq!(
        conv.tactic_name.as_deref(),
        Some("trt_turing_cutlass_image_network_first_layer_hmma_fprop_f16f16f32_nhwc_nhwc_k64r7s7c4_stride2x2")
    );
    assert_eq!(conv.metadata, None);
    let last = i.layers[35].detailed().unwrap();
    assert_eq!(last.outputs[0].format_datatype.as_deref(), Some("Row major linear FP32"));
    assert_eq!(last.output_precision(), Some(DataType::Fp32));

    // layer_names_only verbosity.
    let i = parse_export_layer_info(&fixture(LAYER_INFO_EXPORTS[2]), LAYER_INFO_EXPORTS[2]).unwrap();
    assert!(!i.is_detailed());
    assert_eq!(i.layers.len(), 840);
    assert_eq!(i.layer_names()[0], "/model/model/Transpose_1_output_0");
    assert_eq!(i.layer_names()[9], "Reformatting CopyNode for Input Tensor 0 to PWN(PWN(/Sub), PWN(/Div))");
    assert_eq!(i.layer_names()[839], "PWN(/Mul_2)");
    assert_eq!(i.binding_names(), vec!["image", "boxes", "logits", "classes"]);
}

#[test]
fn output_export() {
    let text = fixture(OUTPUT_EXPORTS[0]);
    let outs = parse_export_output(&text, OUTPUT_EXPORTS[0]).unwrap();
    assert_eq!(outs.len(), 1);
    let prob = &outs[0];
    assert_eq!(prob.name, "prob");
    assert_eq!(prob.dimensions, "1000x1x1");
    assert_eq!(prob.dims(), Some(vec![1000, 1, 1]));
    assert_eq!(prob.values.len(), 1000);
    assert_eq!(prob.volume(), Some(prob.values.len()));
    assert_eq!(&prob.values[..2], &[0.000991912, 0.00100368]);
    assert_eq!(prob.values[999], 0.000995931);
    // The source file appended one document per run; two copies read as two documents.
    let docs = parse_export_output_stream(&format!("{text}{text}"), "x").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1][0].values, prob.values);
}

#[test]
fn parse_any_recognises_every_sample() {
    for case in LOGS {
        assert!(matches!(parse_any_file(&path(case.file)), Ok(TrtexecOutput::Log(_))), "{}", case.file);
    }
    for f in PROFILE_EXPORTS {
        assert!(matches!(parse_any_file(&path(f)), Ok(TrtexecOutput::Profile(_))), "{f}");
    }
    for f in LAYER_INFO_EXPORTS {
        assert!(matches!(parse_any_file(&path(f)), Ok(TrtexecOutput::LayerInfo(_))), "{f}");
    }
    for f in OUTPUT_EXPORTS {
        assert!(matches!(parse_any_file(&path(f)), Ok(TrtexecOutput::Output(d)) if d.len() == 1), "{f}");
    }
    // Not trtexec output at all, and a missing file: typed errors naming the file.
    let e = parse_log("just some text\n", "notes.txt").unwrap_err();
    assert!(e.to_string().starts_with("notes.txt: not trtexec output"), "{e}");
    let e = parse_any("{\"a\": [1]}", "x.json").map(|_| ()).unwrap_err();
    assert!(matches!(e, ParseError::Json { .. }) && e.to_string().contains("missing field `Layers`"), "{e}");
    let e = parse_any("[{\"zzz\": 1}]", "y.json").unwrap_err();
    assert!(e.to_string().starts_with("y.json: json that is no trtexec export"), "{e}");
    let e = parse_any_file(&path("does-not-exist.log")).unwrap_err();
    assert!(e.to_string().contains("does-not-exist.log: cannot read the file"), "{e}");
}

#[test]
fn json_errors_name_file_and_line() {
    // Cut the detailed layer info in the middle: the error points at the file's last line.
    let text = fixture(LAYER_INFO_EXPORTS[0]);
    let cut: String = text.lines().take(30).collect::<Vec<_>>().join("\n");
    let e = parse_export_layer_info(&cut, "layers.json").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("layers.json:30:"), "{msg}");
    assert!(msg.contains("invalid json in the layer-info export"), "{msg}");
    let e = parse_export_profile("[{\"count\": 1}, {\"name\": \"a\", \"timeMs\": \"fast\"}]", "p.json").unwrap_err();
    assert!(e.to_string().starts_with("p.json: element 1 of the profile export"), "{e}");
}

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Every parser, on one text; none may panic, whatever they return.
fn run_all_parsers(text: &str) {
    let log = match parse_any(text, "fuzz") {
        Ok(TrtexecOutput::Log(log)) => *log,
        _ => TrtexecLog::parse(text),
    };
    let _ = serde_json::to_string(&log.to_contract_json()).unwrap();
    let _ = serde_json::to_string(&log).unwrap();
    let _ = classify_failure(text);
    let _ = detect_version(text);
    let _ = parse_export_profile(text, "fuzz");
    let _ = parse_export_layer_info(text, "fuzz");
    let _ = parse_export_times(text, "fuzz");
    let _ = parse_export_output_stream(text, "fuzz");
    let lines: Vec<&str> = text.lines().collect();
    let _ = parse_layer_dump(&lines);
    for l in lines.iter().take(400) {
        let _ = parse_stat_line(l);
        let _ = Banner::parse(1, l);
        let _ = l.parse::<TrtVersion>();
    }
}

const NASTY: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "\"",
    ":",
    ",",
    "\\",
    "&&&& ",
    "&&&& FAILED ",
    " # ",
    "[I] ",
    "[E] ",
    "nan",
    "-inf",
    "1e999",
    "=== Device Information ===",
    "=== Profile (",
    "Layer Information:",
    "Host Latency",
    "min = ",
    "percentile(",
    "\n",
    "\r\n",
    "\u{0}",
    "é",
    "😀",
    "[TensorRT v",
    "99999999999999999999",
    "-",
    "x",
    "Unknown option:",
    "Killed",
];

#[test]
fn truncated_and_garbled_samples_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for name in all_samples() {
        let text = fixture(name);
        let bounds: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
        // Fewer variants of the big files keep the debug-build test short; the small ones carry the
        // structure (banners, blocks, tables) that truncation can break.
        let n = if text.len() > 20_000 { 5 } else { 10 };
        // Truncations: the ends of the first and last n lines, and 2n cut points throughout.
        let line_ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let mut cuts: Vec<usize> = line_ends.iter().take(n).chain(line_ends.iter().rev().take(n)).copied().collect();
        cuts.extend((0..2 * n).map(|k| bounds[k * (bounds.len() - 1) / (2 * n - 1)]));
        for c in cuts {
            run_all_parsers(&text[..c]);
            run_all_parsers(&text[c..]);
        }
        // Garbage: splice nasty fragments into random places, drop and duplicate lines.
        for _ in 0..n {
            let mut s = text.clone();
            for _ in 0..(1 + rng.below(8)) {
                let b: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
                let at = b[rng.below(b.len())];
                s.insert_str(at, NASTY[rng.below(NASTY.len())]);
            }
            run_all_parsers(&s);
            let mut lines: Vec<&str> = text.lines().collect();
            for _ in 0..(1 + rng.below(5)) {
                if lines.is_empty() {
                    break;
                }
                let i = rng.below(lines.len());
                if rng.next().is_multiple_of(2) {
                    lines.remove(i);
                } else {
                    let l = lines[i];
                    lines.insert(rng.below(lines.len()), l);
                }
            }
            run_all_parsers(&lines.join("\n"));
        }
        // Raw bytes flipped, then read the way files are read (lossy UTF-8).
        let mut bytes = text.clone().into_bytes();
        for _ in 0..64 {
            let i = rng.below(bytes.len());
            bytes[i] = (rng.next() & 0xff) as u8;
        }
        run_all_parsers(&String::from_utf8_lossy(&bytes));
    }
    // Pure noise built from the fragments.
    for _ in 0..300 {
        let s: String = (0..rng.below(60)).map(|_| NASTY[rng.below(NASTY.len())]).collect();
        run_all_parsers(&s);
    }
}

/// `parse-trtexec` on `text` written to a file: (exit code, stdout, stderr).
fn parse_trtexec_cli(text: &str, json: bool) -> (i32, String, String) {
    let dir = crate::support::tempdir();
    let log = dir.path().join("capture.log");
    crate::support::write(&log, text.as_bytes());
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"parse-trtexec", &log];
    if json {
        args.push(&"--json");
    }
    crate::support::run(&args)
}

#[test]
fn cli_prints_the_failure_evidence() {
    // https://github.com/Tencent-Hunyuan/HunyuanDiT/issues/159: [E] lines, no trailer.
    let text = "[07/18/2024-07:49:33] [E] Cannot find input tensor with name \"encoder_hidden_states\" in the network inputs! Please make sure the input tensor names are correct.\n\
                [07/18/2024-07:49:33] [E] Building engine failed\n";
    let (code, out, err) = parse_trtexec_cli(text, false);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("failure:    other\n"), "{out}");
    assert!(out.contains("evidence:   line 1: Cannot find input tensor with name"), "{out}");
    let (code, out, err) = parse_trtexec_cli(text, true);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&j["status"], &j["failure"], &j["failure_line"]), (&json!("failed"), &json!("other"), &json!(1)));
    assert!(j["failure_message"].as_str().unwrap().starts_with("Cannot find input tensor"));
}

#[test]
fn cli_reads_an_untagged_summary_and_counts_runs() {
    // https://github.com/beyondli/Yolo_on_Jetson/issues/4: a summary pasted without its tags.
    let (code, out, err) = parse_trtexec_cli(
        "=== Performance summary ===\n\
         Throughput: 169.352 qps \n\
         GPU Compute Time: min = 3.17834 ms, max = 3.88306 ms, mean = 3.63242 ms, median = 3.71753 ms, percentile(99%) 3.87793 ms \n",
        true,
    );
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["perf"]["throughput_qps"], 169.352);
    assert_eq!(j["perf"]["gpu_compute_ms"]["median"], 3.71753);
    assert_eq!(j["failure"], "incomplete");
    assert!(j["failure_message"].as_str().unwrap().contains("capture is partial"), "{out}");

    // wili-65535/trt-samples-for-hackathon-cn@9bbf1807dc47a995d5d55233a9b24815b0ee81a7:cookbook/07-Tool/trtexec/result-16.log
    let (code, out, err) = parse_trtexec_cli(
        "[08/27/2026-12:22:10] [I] Throughput: 15588.9 qps\n\
         [08/27/2026-12:22:13] [I] Throughput: 26358.6 qps\n\
         [08/27/2026-12:22:17] [I] Throughput: 42919.2 qps\n",
        false,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs:       3 ") && out.contains("throughput: 42919.2 qps"), "{out}");
}
