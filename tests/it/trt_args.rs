//! trtexec argument vectors per TensorRT version, against the facts of ../shared/reference/tensorrt.md (the section
//! is cited per row). Whole vectors are compared: a flag too many is as fatal as one missing (`Unknown option` →
//! FAILED, §2.4).

use std::path::PathBuf;

use precisiond::error::Failure;
use precisiond::precision::plan::LayerFlags;
use precisiond::trt::args::*;
use precisiond::trt::parse::TrtVersion;

fn v(s: &str) -> TrtVersion {
    s.parse().unwrap()
}

fn implicit() -> Mode {
    Mode::Implicit {
        calib_cache: PathBuf::from("/job/calib.cache"),
        layer_flags: LayerFlags {
            layer_precisions: "conv1:int8,/head/Conv:fp16,fc:fp32".into(),
            layer_output_types: "/head/Conv:fp16,fc:fp32".into(),
        },
    }
}

fn request(mode: Mode) -> BuildRequest {
    BuildRequest {
        onnx: "/job/model.onnx".into(),
        engine_out: "/job/model.engine".into(),
        mode,
        workspace_mib: 1024,
        optimization_level: Some(4),
        timing_cache: None,
        dla_core: None,
        profile: None,
        layer_info: None,
        shapes: Vec::new(),
    }
}

#[derive(Debug)]
enum M {
    Explicit,
    Implicit,
}

struct Row {
    /// Versions that take the same vector.
    versions: &'static [&'static str],
    mode: M,
    /// The vector, in pieces to be joined; `None`: refused.
    expect: Option<&'static [&'static [&'static str]]>,
}

const ONNX: &str = "--onnx=/job/model.onnx";
const SAVE: &str = "--saveEngine=/job/model.engine";
const CALIB: &str = "--calib=/job/calib.cache";
const OBEY: &str = "--precisionConstraints=obey";
const LP: &str = "--layerPrecisions=conv1:int8,/head/Conv:fp16,fc:fp32";
const LOT: &str = "--layerOutputTypes=/head/Conv:fp16,fc:fp32";

// The rows' vectors are joined from these pieces, so that what versions and modes share is written once.
/// §1.4: weak typing needs the precision flags.
const WEAK: &[&str] = &[ONNX, SAVE, "--int8", "--fp16"];
/// §1.4: strongly typed Q/DQ + Cast ONNX with --stronglyTyped.
const STRONG: &[&str] = &[ONNX, SAVE, "--stronglyTyped"];
/// §1.4 implicit recipe; §2.2: the layer flags only act with --precisionConstraints=obey.
const CALIBRATED: &[&str] = &[CALIB, OBEY, LP, LOT];
/// §2.1: 8.x pool sizes are plain MiB, no --builderOptimizationLevel before 8.6, --buildOnly instead of
/// --skipInference.
const BUILD_8_5: &[&str] = &["--memPoolSize=workspace:1024", "--buildOnly"];
const BUILD_8_6: &[&str] = &["--memPoolSize=workspace:1024", "--builderOptimizationLevel=4", "--skipInference"];
/// §2.1: 10.x sizes take a unit suffix.
const BUILD_10: &[&str] = &["--memPoolSize=workspace:1024M", "--builderOptimizationLevel=4", "--skipInference"];

const ROWS: &[Row] = &[
    // §1.4: Q/DQ ONNX + --int8 --fp16 (weak typing needs the flags).
    Row { versions: &["8.5.2"], mode: M::Explicit, expect: Some(&[WEAK, BUILD_8_5]) },
    Row { versions: &["8.5.2"], mode: M::Implicit, expect: Some(&[WEAK, CALIBRATED, BUILD_8_5]) },
    // PRODUCT.md: "as 8.5, --skipInference exists"; §2.1: --builderOptimizationLevel from 8.6.
    Row { versions: &["8.6.2"], mode: M::Explicit, expect: Some(&[WEAK, BUILD_8_6]) },
    Row { versions: &["8.6.2"], mode: M::Implicit, expect: Some(&[WEAK, CALIBRATED, BUILD_8_6]) },
    // §1.4: strongly typed ONNX; PRODUCT.md: 10.13 "as 10.3".
    Row { versions: &["10.3.0", "10.13.0"], mode: M::Explicit, expect: Some(&[STRONG, BUILD_10]) },
    // §1.2/§2.1: the implicit flags are still accepted in 10.x (deprecated from 10.12).
    Row { versions: &["10.3.0", "10.13.0"], mode: M::Implicit, expect: Some(&[WEAK, CALIBRATED, BUILD_10]) },
    // §1.3/§1.4: 11.x is strongly typed only; no precision flag, --stronglyTyped a no-op left out.
    Row { versions: &["11.1.0"], mode: M::Explicit, expect: Some(&[&[ONNX, SAVE], BUILD_10]) },
    // §0.1/§1.2: --int8/--calib/--layerPrecisions/--precisionConstraints were removed in 11.0.
    Row { versions: &["11.1.0"], mode: M::Implicit, expect: None },
];

#[test]
fn build_vectors_per_version_and_mode() {
    for row in ROWS {
        for &version in row.versions {
            let mode = match row.mode {
                M::Explicit => Mode::Explicit,
                M::Implicit => implicit(),
            };
            let got = build_args(v(version), &request(mode));
            match (row.expect, got) {
                (Some(expect), Ok(got)) => assert_eq!(got, expect.concat(), "{version} {:?}", row.mode),
                (None, Err(e @ ArgsError::ImplicitRemoved { .. })) => {
                    let failure = Failure::from(e);
                    assert_eq!(failure.exit_code(), 1);
                    let text = failure.to_string();
                    assert!(text.contains(version) && text.contains("removed"), "{text}");
                    assert!(text.contains("hint: build in explicit mode"), "{text}");
                }
                (expect, got) => panic!("{version} {:?}: expected {expect:?}, got {got:?}", row.mode),
            }
        }
    }
}

/// Flags trtexec knows, per version (§2.1), restricted to those precisiond may emit.
fn known_flags(version: &str) -> Vec<&'static str> {
    const COMMON: &[&str] = &[
        "--onnx",
        "--saveEngine",
        "--loadEngine",
        "--memPoolSize",
        "--timingCacheFile",
        "--useDLACore",
        "--allowGPUFallback",
        "--shapes",
        "--profilingVerbosity",
        "--exportLayerInfo",
        "--exportProfile",
        "--exportOutput",
        "--loadInputs",
        "--iterations",
        "--duration",
        "--warmUp",
    ];
    /// The implicit recipe's flags (§1.2), removed in 11.0.
    const IMPLICIT: &[&str] =
        &["--int8", "--fp16", "--calib", "--precisionConstraints", "--layerPrecisions", "--layerOutputTypes"];
    let specific: &[&[&str]] = match version {
        "8.5.2" => &[IMPLICIT, &["--buildOnly", "--separateProfileRun"]],
        "8.6.2" => &[IMPLICIT, &["--skipInference", "--builderOptimizationLevel", "--separateProfileRun"]],
        "10.3.0" | "10.13.0" => {
            &[IMPLICIT, &["--stronglyTyped", "--skipInference", "--builderOptimizationLevel", "--separateProfileRun"]]
        }
        "11.1.0" => &[&["--skipInference", "--builderOptimizationLevel", "--includeDataTransfers"]],
        _ => &[],
    };
    specific.concat().into_iter().chain(COMMON.iter().copied()).collect()
}

#[test]
fn every_emitted_flag_exists_in_its_version() {
    let versions = ["8.5.2", "8.6.2", "10.3.0", "10.13.0", "11.1.0"];
    for version in versions {
        let known = known_flags(version);
        let mut vectors = Vec::new();
        for implicit_mode in [false, true] {
            for dla in [None, Some(0)] {
                for profile in [None, Some(PathBuf::from("/job/profile.json"))] {
                    for layer_info in [None, Some(PathBuf::from("/job/layers.json"))] {
                        for level in [None, Some(0), Some(5)] {
                            let mut r = request(if implicit_mode { implicit() } else { Mode::Explicit });
                            r.dla_core = dla;
                            r.profile = profile.clone();
                            r.layer_info = layer_info.clone();
                            r.optimization_level = level;
                            r.timing_cache = Some("/job/timing.cache".into());
                            r.shapes = vec![("images".into(), vec![1, 3, 320, 320])];
                            if let Ok(args) = build_args(v(version), &r) {
                                vectors.push(args);
                            }
                        }
                    }
                }
            }
        }
        let verify = VerifyRequest {
            engine: "/job/model.engine".into(),
            inputs: vec![("images".into(), "/job/in.bin".into())],
            output_json: "/job/out.json".into(),
            dla_core: Some(1),
            shapes: vec![("images".into(), vec![1, 3, 320, 320])],
        };
        vectors.push(verify_args(v(version), &verify).unwrap());
        let profile = ProfileRequest {
            engine: "/job/model.engine".into(),
            profile_out: "/job/profile.json".into(),
            dla_core: Some(1),
            shapes: Vec::new(),
        };
        vectors.push(profile_args(v(version), &profile).unwrap());
        assert!(vectors.len() > 2, "{version}");
        for args in vectors {
            for arg in &args {
                let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
                assert!(known.contains(&flag), "{version}: {flag} is not a {version} flag (in {args:?})");
            }
            let mut flags: Vec<&str> = args.iter().map(|a| a.split_once('=').map_or(a.as_str(), |(f, _)| f)).collect();
            flags.sort();
            let n = flags.len();
            flags.dedup();
            assert_eq!(flags.len(), n, "{version}: a flag given twice in {args:?}");
        }
    }
}

#[test]
fn dla_timing_cache_and_shapes() {
    // §5.3: --useDLACore with --allowGPUFallback, else layers DLA cannot run fail the build; §4.5 timing cache;
    // §2.1 --shapes=name:AxBxC, joined by ','.
    let mut r = request(implicit());
    r.dla_core = Some(1);
    r.timing_cache = Some("/var/lib/precisiond/timing/10.3.0-orin.cache".into());
    r.shapes = vec![("images".into(), vec![1, 3, 320, 320]), ("im_info".into(), vec![1, 2])];
    r.optimization_level = None;
    let placed: &[&str] = &[
        "--timingCacheFile=/var/lib/precisiond/timing/10.3.0-orin.cache",
        "--useDLACore=1",
        "--allowGPUFallback",
        "--shapes=images:1x3x320x320,im_info:1x2",
    ];
    assert_eq!(
        build_args(v("8.5.2"), &r).unwrap(),
        [WEAK, CALIBRATED, &["--memPoolSize=workspace:1024"], placed, &["--buildOnly"]].concat()
    );
    r.mode = Mode::Explicit;
    assert_eq!(
        build_args(v("10.3.0"), &r).unwrap(),
        [STRONG, &["--memPoolSize=workspace:1024M"], placed, &["--skipInference"]].concat()
    );
    for version in ["8.6.2", "10.13.0", "11.1.0"] {
        let args = build_args(v(version), &r).unwrap();
        for flag in ["--useDLACore=1", "--allowGPUFallback", "--shapes=images:1x3x320x320,im_info:1x2"] {
            assert!(args.iter().any(|a| a == flag), "{version}: {flag} missing from {args:?}");
        }
        assert!(args.iter().any(|a| a.starts_with("--timingCacheFile=")), "{version}");
    }
}

#[test]
fn profile_and_layer_info_builds() {
    // §2.5: with --exportProfile but without --separateProfileRun, ≤10.x withholds the performance summary; 11.x
    // always profiles separately (the flag is a no-op there). A profile needs the inference phase: no
    // --skipInference / --buildOnly. §2.6: per-layer detail in --exportLayerInfo needs detailed verbosity.
    let mut r = request(Mode::Explicit);
    r.profile = Some("/job/profile.json".into());
    r.layer_info = Some("/job/layers.json".into());
    let table: &[(&str, &[&str])] = &[
        (
            "8.5.2",
            &[
                ONNX,
                SAVE,
                "--int8",
                "--fp16",
                "--memPoolSize=workspace:1024",
                "--profilingVerbosity=detailed",
                "--exportLayerInfo=/job/layers.json",
                "--exportProfile=/job/profile.json",
                "--separateProfileRun",
            ],
        ),
        (
            "10.3.0",
            &[
                ONNX,
                SAVE,
                "--stronglyTyped",
                "--memPoolSize=workspace:1024M",
                "--builderOptimizationLevel=4",
                "--profilingVerbosity=detailed",
                "--exportLayerInfo=/job/layers.json",
                "--exportProfile=/job/profile.json",
                "--separateProfileRun",
            ],
        ),
        (
            "11.1.0",
            &[
                ONNX,
                SAVE,
                "--memPoolSize=workspace:1024M",
                "--builderOptimizationLevel=4",
                "--profilingVerbosity=detailed",
                "--exportLayerInfo=/job/layers.json",
                "--exportProfile=/job/profile.json",
            ],
        ),
    ];
    for (version, expect) in table {
        assert_eq!(build_args(v(version), &r).unwrap(), *expect, "{version}");
    }
    // Layer info alone keeps the build-only run (§2.1; the 10.16 sample exports layer info with --skipInference).
    r.profile = None;
    let args = build_args(v("8.6.2"), &r).unwrap();
    assert_eq!(
        args[args.len() - 3..],
        ["--profilingVerbosity=detailed", "--exportLayerInfo=/job/layers.json", "--skipInference"]
    );

    // Profiling an engine built earlier.
    let p = ProfileRequest {
        engine: "/job/model.engine".into(),
        profile_out: "/job/profile.json".into(),
        dla_core: None,
        shapes: Vec::new(),
    };
    assert_eq!(
        profile_args(v("10.13.0"), &p).unwrap(),
        ["--loadEngine=/job/model.engine", "--exportProfile=/job/profile.json", "--separateProfileRun"]
    );
    assert_eq!(
        profile_args(v("11.1.0"), &p).unwrap(),
        ["--loadEngine=/job/model.engine", "--exportProfile=/job/profile.json"]
    );
}

#[test]
fn empty_layer_specs_are_left_out() {
    // An all-INT8 plan fixes no output type; an empty spec is not passed at all.
    let mode = Mode::Implicit {
        calib_cache: "/job/calib.cache".into(),
        layer_flags: LayerFlags { layer_precisions: "conv1:int8,fc:int8".into(), layer_output_types: String::new() },
    };
    let args = build_args(v("10.3.0"), &request(mode)).unwrap();
    assert!(args.contains(&"--layerPrecisions=conv1:int8,fc:int8".to_string()), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--layerOutputTypes")), "{args:?}");
    let mode = Mode::Implicit {
        calib_cache: "/job/calib.cache".into(),
        layer_flags: LayerFlags { layer_precisions: String::new(), layer_output_types: String::new() },
    };
    let args = build_args(v("8.5.2"), &request(mode)).unwrap();
    assert!(!args.iter().any(|a| a.starts_with("--layer")), "{args:?}");
}

#[test]
fn verify_vectors() {
    // §2.3 --loadInputs=name:file,…; §2.6 --exportOutput; §2.1: one iteration, no minimum duration, no warm-up;
    // 11.x skips host transfers by default and gets them back with --includeDataTransfers.
    let r = VerifyRequest {
        engine: "/job/model.engine".into(),
        inputs: vec![("images".into(), "/job/in/images.bin".into()), ("scale::0".into(), "/job/in/s.bin".into())],
        output_json: "/job/out.json".into(),
        dla_core: None,
        shapes: Vec::new(),
    };
    let base = [
        "--loadEngine=/job/model.engine",
        "--loadInputs=images:/job/in/images.bin,scale::0:/job/in/s.bin",
        "--exportOutput=/job/out.json",
        "--iterations=1",
        "--duration=0",
        "--warmUp=0",
    ];
    for version in ["8.5.2", "8.6.2", "10.3.0", "10.13.0"] {
        assert_eq!(verify_args(v(version), &r).unwrap(), base, "{version}");
    }
    let mut eleven = base.to_vec();
    eleven.push("--includeDataTransfers");
    assert_eq!(verify_args(v("11.1.0"), &r).unwrap(), eleven);

    // A DLA engine runs on the core it was built for; dynamic inputs get their shapes.
    let r = VerifyRequest {
        dla_core: Some(0),
        shapes: vec![("images".into(), vec![1, 3, 64, 64])],
        inputs: vec![("images".into(), "/job/in/images.bin".into())],
        ..r
    };
    assert_eq!(
        verify_args(v("8.5.2"), &r).unwrap(),
        [
            "--loadEngine=/job/model.engine",
            "--useDLACore=0",
            "--shapes=images:1x3x64x64",
            "--loadInputs=images:/job/in/images.bin",
            "--exportOutput=/job/out.json",
            "--iterations=1",
            "--duration=0",
            "--warmUp=0",
        ]
    );
}

#[test]
fn refusals() {
    let explicit = request(Mode::Explicit);
    // PRODUCT.md's table: 8.5, 8.6, 10.x, 11.x; the rest has flags the fact sheet does not cover.
    for version in ["7.1.3", "8.2.3", "8.4.3", "9.3.0", "12.0.0"] {
        let e = build_args(v(version), &explicit).unwrap_err();
        assert!(matches!(e, ArgsError::UnsupportedVersion { .. }), "{version}: {e}");
        assert_eq!(Failure::from(e).exit_code(), 2, "{version}: the device's TensorRT is the environment");
    }
    assert!(FlagSet::of(v("10.16.1")).is_ok());
    assert_eq!(FlagSet::of(v("8.6.1")).unwrap(), FlagSet::Trt8_6);

    let mut r = request(Mode::Explicit);
    r.workspace_mib = 0;
    assert!(matches!(build_args(v("10.3.0"), &r), Err(ArgsError::ZeroWorkspace)));
    let mut r = request(Mode::Explicit);
    r.optimization_level = Some(6);
    assert!(matches!(build_args(v("10.3.0"), &r), Err(ArgsError::OptimizationLevel { level: 6 })));
    // Refused on 8.5 too, although the flag itself is left out there.
    assert!(matches!(build_args(v("8.5.2"), &r), Err(ArgsError::OptimizationLevel { level: 6 })));

    // §2.2: lists split on ',' first; quotes must pair; from 10.x a '*' is a wildcard.
    let shaped = |name: &str, dims: Vec<usize>| {
        let mut r = request(Mode::Explicit);
        r.shapes = vec![(name.to_string(), dims)];
        r
    };
    for version in ["8.5.2", "10.3.0"] {
        for bad in ["a,b", "it's", ""] {
            let e = build_args(v(version), &shaped(bad, vec![1])).unwrap_err();
            assert!(matches!(e, ArgsError::Unexpressible { flag: "--shapes", .. }), "{version} {bad:?}: {e}");
        }
        assert!(build_args(v(version), &shaped("x", Vec::new())).is_err(), "a scalar has no shape to give");
        assert!(
            build_args(v(version), &shaped("onnx::Conv:0", vec![1, 2]))
                .unwrap()
                .contains(&"--shapes=onnx::Conv:0:1x2".into())
        );
    }
    assert!(build_args(v("8.6.2"), &shaped("a*b", vec![1])).is_ok(), "8.x matches names exactly");
    assert!(build_args(v("10.3.0"), &shaped("a*b", vec![1])).is_err(), "10.x reads '*' as a wildcard");

    let verify = |input: &str, file: &str| VerifyRequest {
        engine: "/job/model.engine".into(),
        inputs: vec![(input.into(), file.into())],
        output_json: "/job/out.json".into(),
        dla_core: None,
        shapes: Vec::new(),
    };
    for (input, file) in [("images", "/job/a:b.bin"), ("images", "/job/a,b.bin"), ("a,b", "/job/in.bin")] {
        let e = verify_args(v("10.3.0"), &verify(input, file)).unwrap_err();
        assert!(matches!(e, ArgsError::Unexpressible { flag: "--loadInputs", .. }), "{input} {file}: {e}");
        assert_eq!(Failure::from(e).exit_code(), 1);
    }

    let mut r = request(Mode::Explicit);
    r.onnx = PathBuf::new();
    assert!(matches!(build_args(v("10.3.0"), &r), Err(ArgsError::EmptyPath { flag: "--onnx" })));
    let mut r = request(Mode::Explicit);
    r.engine_out = PathBuf::from(std::ffi::OsStr::new(non_utf8_path()));
    assert!(matches!(build_args(v("10.3.0"), &r), Err(ArgsError::NonUtf8Path { flag: "--saveEngine", .. })));
}

/// A file name that is not UTF-8 (legal on Linux).
fn non_utf8_path() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"/job/engine-\xff.plan")
}

#[test]
fn paths_with_spaces_need_no_quoting() {
    // argv goes to trtexec without a shell (§2.2: "pass argv without a shell and no quoting is needed").
    let mut r = request(Mode::Explicit);
    r.onnx = "/data/my models/det v2.onnx".into();
    assert_eq!(build_args(v("10.3.0"), &r).unwrap()[0], "--onnx=/data/my models/det v2.onnx");
}
