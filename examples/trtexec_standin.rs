//! trtexec stand-in. TEST SUPPORT ONLY: never installed or shipped, and nothing but the tests may start it.
//!
//! TensorRT exists on no machine precisiond is developed or tested on, so the integration tests run this program
//! where trtexec would be, through the whole tensorrt path: build, profile, verify, fall back. It follows
//! ../shared/reference/tensorrt.md (the sections are cited where a behaviour comes from it):
//! - the `&&&& RUNNING/PASSED/FAILED` lines, log tags and streams (§2.4), the performance summary (§2.5), the
//!   `--export*` files (§2.6), implicit INT8 calibration (§2.7), the plan header and the deserialization errors
//!   (§4.1, §4.4);
//! - each version's flag vocabulary (§2.1, §2.2). The table below is written from the fact sheet on its own, not
//!   taken from src/trt/args.rs, so that the stand-in checks precisiond's argument vectors instead of echoing them.
//!
//! What an engine computes is precisiond's own CPU arithmetic (tract, through `precisiond::exec`). An explicit engine
//! (the ONNX carries Q/DQ or float16) runs the model as given, with float16 emulated by rounding f32 because tract
//! mis-runs real float16 at its optimized level (crates.md: "FP16 is fragile"); an implicit one (FP32 ONNX with
//! `--int8 --calib --layerPrecisions`) runs the plan its flags and calibration cache describe, baked by
//! `precision::export(.., Flavor::Simulate)`. Times are not measured: each engine layer costs its MACs at a
//! nominal per-precision rate plus its elements and a launch, so INT8 is faster than FP16 is faster than FP32, and the
//! same engine always reports the same times.
//!
//! Environment:
//! - `TRTEXEC_STANDIN_VERSION`: the TensorRT to play, `major.minor.patch[.build]` (8.5.x, 8.6.x, 10.x, 11.x);
//!   10.3.0 when unset.
//! - `TRTEXEC_STANDIN_FRAGILE=<layer>`: when that layer runs INT8 in a built engine, its output is quantized to a
//!   few levels, and the engine's float outputs are pulled halfway through their mean: a verification must fail
//!   whichever layer it is (one layer's damage alone can vanish downstream: PP-OCR cls's squeeze-excitation convs
//!   feed a bias-dominated HardSigmoid, and a saturated softmax hides even a sign error), and pass again once the
//!   layer falls back to FP16.
//! - `TRTEXEC_STANDIN_HANG_S=<s>`: the build starts a `sleep` child in its process group, prints both pids, and
//!   sleeps that long before going on.
//! - `TRTEXEC_STANDIN_CRASH=1`: the build dies by SIGKILL halfway, with no trailer, as under the Jetson OOM killer.
//! - `TRTEXEC_STANDIN_LOG=<file>`: one line is appended per invocation: `build|profile|run|help` and the arguments.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use precisiond::calib::cache::CalibrationCache;
use precisiond::calib::run::{calibrate, observed_tensors};
use precisiond::calib::{ActivationScale, Method, ScalesFile};
use precisiond::exec::{self, Executor, InputDecl};
use precisiond::model::graph::layer_macs;
use precisiond::model::proto::attribute_proto::AttributeType;
use precisiond::model::proto::tensor_proto::DataType;
use precisiond::model::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use precisiond::model::{Graph, Model, weights};
use precisiond::precision::export::{Flavor, export};
use precisiond::precision::{Plan, Precision};
use precisiond::progress::Silent;
use precisiond::tensor::{DType, Tensor, TensorData};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let version = match Version::from_env() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("trtexec_standin: TRTEXEC_STANDIN_VERSION: {e}");
            return ExitCode::from(2);
        }
    };
    let run = Run { v: version, command: argv.join(" "), opts: Opts::default() };
    out(&format!("&&&& RUNNING TensorRT.trtexec {} # {}", version.tag(), run.command));
    record_invocation(&argv);
    let args = &argv[1..];
    let opts = match parse_args(args, version.family()) {
        Parsed::Help => {
            print_help(version.family());
            return ExitCode::SUCCESS;
        }
        Parsed::Unknown(unknown) => {
            // §2.4: the help on stdout, one error per unknown option, FAILED, exit 1.
            print_help(version.family());
            for u in unknown {
                error(&format!("Unknown option: {u}"));
            }
            return run.finish(false);
        }
        Parsed::Opts(opts) => opts,
    };
    let run = Run { opts, ..run };
    VERBOSE.store(run.opts.has("--verbose"), Ordering::Relaxed);
    let ok = run.execute().is_ok();
    run.finish(ok)
}

// ---------------------------------------------------------------------------------------------------------------
// Versions

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    major: u8,
    minor: u8,
    patch: u8,
    build: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    T85,
    T86,
    T10,
    T11,
}

impl Family {
    fn bit(self) -> u8 {
        match self {
            Family::T85 => V85,
            Family::T86 => V86,
            Family::T10 => V10,
            Family::T11 => V11,
        }
    }
}

impl Version {
    fn from_env() -> Result<Version, String> {
        let text = std::env::var("TRTEXEC_STANDIN_VERSION").unwrap_or_else(|_| "10.3.0".into());
        let parts: Vec<&str> = text.trim().split('.').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(format!("{text:?} is not major.minor.patch[.build]"));
        }
        let n: Vec<u8> =
            parts.iter().map(|p| p.parse::<u8>()).collect::<Result<_, _>>().map_err(|e| format!("{text:?}: {e}"))?;
        // The fourth component only has to be stable: it is in the plan header and in 10.4+ banners. Where the
        // JetPack package's is known it is used.
        let build = n.get(3).copied().unwrap_or(match (n[0], n[1], n[2]) {
            (8, 5, 2) => 2,
            (8, 6, 2) => 3,
            (10, 3, 0) => 30,
            (10, 13, 3) => 9,
            _ => 1,
        });
        let v = Version { major: n[0], minor: n[1], patch: n[2], build };
        match (v.major, v.minor) {
            (8, 5) | (8, 6) | (10, _) | (11, _) => Ok(v),
            _ => Err(format!("{text}: the stand-in plays TensorRT 8.5, 8.6, 10.x and 11.x")),
        }
    }

    fn family(&self) -> Family {
        match (self.major, self.minor) {
            (8, 5) => Family::T85,
            (8, _) => Family::T86,
            (10, _) => Family::T10,
            _ => Family::T11,
        }
    }

    /// `NV_TENSORRT_VERSION` (§2.4): major·1000+minor·100+patch up to 9.x, major·10000+minor·100+patch from 10.0.
    fn encoded(&self) -> u32 {
        let (a, b, c) = (u32::from(self.major), u32::from(self.minor), u32::from(self.patch));
        if self.major >= 10 { a * 10_000 + b * 100 + c } else { a * 1000 + b * 100 + c }
    }

    /// `[TensorRT v100300]`, with the `[bN]` build tag from 10.4 on (§2.4).
    fn tag(&self) -> String {
        let mut tag = format!("[TensorRT v{}]", self.encoded());
        if (self.major, self.minor) >= (10, 4) {
            let _ = write!(tag, " [b{}]", self.build);
        }
        tag
    }

    fn dotted(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }

    fn full(&self) -> String {
        format!("{}.{}.{}.{}", self.major, self.minor, self.patch, self.build)
    }

    fn at_least(&self, major: u8, minor: u8) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The flag table (§2.1, §2.2), per version family

const V85: u8 = 1;
const V86: u8 = 2;
const V10: u8 = 4;
const V11: u8 = 8;
const ALL: u8 = V85 | V86 | V10 | V11;
const V8: u8 = V85 | V86;
const UPTO10: u8 = V85 | V86 | V10;
const FROM86: u8 = V86 | V10 | V11;
const FROM10: u8 = V10 | V11;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Model,
    Build,
    Inference,
    Reporting,
    System,
}

struct Flag {
    /// `--name` for a switch, `--name=<arg>` for a flag with a value.
    usage: &'static str,
    versions: u8,
    section: Section,
    help: &'static str,
}

impl Flag {
    fn name(&self) -> &'static str {
        self.usage.split('=').next().unwrap_or(self.usage)
    }

    fn takes_value(&self) -> bool {
        self.usage.contains('=')
    }
}

macro_rules! flag {
    ($usage:literal, $versions:expr, $section:ident, $help:literal) => {
        Flag { usage: $usage, versions: $versions, section: Section::$section, help: $help }
    };
}

#[rustfmt::skip]
const FLAGS: &[Flag] = &[
    flag!("--onnx=<file>", ALL, Model, "ONNX model"),
    flag!("--minShapes=spec", ALL, Build, "Build with dynamic shapes using a profile with the min shapes provided"),
    flag!("--optShapes=spec", ALL, Build, "Build with dynamic shapes using a profile with the opt shapes provided"),
    flag!("--maxShapes=spec", ALL, Build, "Build with dynamic shapes using a profile with the max shapes provided"),
    flag!("--minShapesCalib=spec", UPTO10, Build, "Calibrate with dynamic shapes using a profile with the min shapes provided"),
    flag!("--optShapesCalib=spec", UPTO10, Build, "Calibrate with dynamic shapes using a profile with the opt shapes provided"),
    flag!("--maxShapesCalib=spec", UPTO10, Build, "Calibrate with dynamic shapes using a profile with the max shapes provided"),
    flag!("--inputIOFormats=spec", ALL, Build, "Type and format of each of the input tensors (default = all inputs in fp32:chw)"),
    flag!("--outputIOFormats=spec", ALL, Build, "Type and format of each of the output tensors (default = all outputs in fp32:chw)"),
    flag!("--workspace=N", V8, Build, "Set workspace size in MiB."),
    flag!("--memPoolSize=poolspec", ALL, Build, "Specify the size constraints of the designated memory pool(s)"),
    flag!("--profilingVerbosity=mode", ALL, Build, "Specify profiling verbosity. mode ::= layer_names_only|detailed|none (default = layer_names_only)"),
    flag!("--minTiming=M", V8, Build, "Set the minimum number of iterations used in kernel selection (default = 1)"),
    flag!("--avgTiming=M", ALL, Build, "Set the number of times averaged in each iteration for kernel selection (default = 8)"),
    flag!("--refit", ALL, Build, "Mark the engine as refittable."),
    flag!("--versionCompatible", FROM86, Build, "Mark the engine as version compatible (alias --vc)."),
    flag!("--excludeLeanRuntime", FROM86, Build, "When --versionCompatible is enabled, this flag indicates that the generated engine should not include an embedded lean runtime."),
    flag!("--useRuntime=runtime", FROM86, Build, "TensorRT runtime to execute engine. \"lean\" and \"dispatch\" require loading VC engine and do not support building an engine."),
    flag!("--leanDLLPath=<file>", FROM86, Build, "External lean runtime DLL to use in version compatible mode."),
    flag!("--sparsity=spec", ALL, Build, "Control sparsity (default = disabled)."),
    flag!("--noTF32", ALL, Build, "Disable tf32 precision (default is to enable tf32, in addition to fp32)"),
    flag!("--fp16", UPTO10, Build, "Enable fp16 precision, in addition to fp32 (default = disabled)"),
    flag!("--bf16", V10, Build, "Enable bf16 precision, in addition to fp32 (default = disabled)"),
    flag!("--int8", UPTO10, Build, "Enable int8 precision, in addition to fp32 (default = disabled)"),
    flag!("--fp8", V10, Build, "Enable fp8 precision, in addition to fp32 (default = disabled)"),
    flag!("--int4", V10, Build, "Enable int4 precision, in addition to fp32 (default = disabled)"),
    flag!("--best", UPTO10, Build, "Enable all precisions to achieve the best performance (default = disabled)"),
    flag!("--stronglyTyped", FROM10, Build, "Create a strongly typed network. (default = disabled)"),
    flag!("--precisionConstraints=spec", UPTO10, Build, "Control precision constraint setting. (default = none) spec ::= \"none\" | \"prefer\" | \"obey\""),
    flag!("--layerPrecisions=spec", UPTO10, Build, "Control per-layer precision constraints. spec ::= layerPrecision[\",\"spec]"),
    flag!("--layerOutputTypes=spec", UPTO10, Build, "Control per-layer output type constraints. spec ::= layerOutputTypes[\",\"spec]"),
    flag!("--layerDeviceTypes=spec", FROM86, Build, "Specify layer-specific device type. spec ::= layerDeviceTypePair[\",\"spec]"),
    flag!("--calib=<file>", UPTO10, Build, "Read INT8 calibration cache file"),
    flag!("--calibProfile=N", V10, Build, "Select the optimization profile to calibrate by index. (default = 0)"),
    flag!("--directIO", ALL, Build, "Avoid reformatting at network boundaries. (default = disabled)"),
    flag!("--safe", ALL, Build, "Enable build safety certified engine"),
    flag!("--buildOnly", V8, Build, "Exit after the engine has been built and skip inference perf measurement (default = disabled)"),
    flag!("--saveEngine=<file>", ALL, Build, "Save the serialized engine"),
    flag!("--loadEngine=<file>", ALL, Build, "Load a serialized engine"),
    flag!("--getPlanVersionOnly", FROM10, Build, "Print TensorRT version when loaded plan was created. Works without deserialization of the plan."),
    flag!("--tacticSources=tactics", ALL, Build, "Specify the tactics to be used by adding (+) or removing (-) tactics from the default tactic sources"),
    flag!("--noBuilderCache", ALL, Build, "Disable timing cache in builder (default is to enable timing cache)"),
    flag!("--timingCacheFile=<file>", ALL, Build, "Save/load the serialized global timing cache"),
    flag!("--errorOnTimingCacheMiss", FROM10, Build, "Emit error when a tactic being timed is not present in the timing cache (default = false)"),
    flag!("--builderOptimizationLevel=N", FROM86, Build, "Set the builder optimization level. (default is 3)"),
    flag!("--hardwareCompatibilityLevel=mode", FROM86, Build, "Make the engine file compatible with other GPU architectures. (default = none)"),
    flag!("--maxAuxStreams=N", FROM86, Build, "Set maximum number of auxiliary streams per inference stream that TRT is allowed to use."),
    flag!("--allowGPUFallback", ALL, Build, "When DLA is enabled, allow GPU fallback for unsupported layers (default = disabled)"),
    flag!("--tuneBuildRoutes", V11, Build, "Tune the build routes."),
    flag!("--setBuildRoute=spec", V11, Build, "Set the build route."),
    flag!("--shapes=spec", ALL, Inference, "Set input shapes for dynamic shapes inference inputs."),
    flag!("--loadInputs=spec", ALL, Inference, "Load input values from files (default = generate random inputs)."),
    flag!("--iterations=N", ALL, Inference, "Run at least N inference iterations (default = 10)"),
    flag!("--warmUp=N", ALL, Inference, "Run for N milliseconds to warmup before measuring performance (default = 200)"),
    flag!("--duration=N", ALL, Inference, "Run performance measurements for at least N seconds wallclock time (default = 3)"),
    flag!("--sleepTime=N", ALL, Inference, "Delay inference start with a gap of N milliseconds between launch and compute (default = 0)"),
    flag!("--idleTime=N", ALL, Inference, "Sleep N milliseconds between two continuous iterations(default = 0)"),
    flag!("--streams=N", V8, Inference, "Instantiate N engines to run inference concurrently (default = 1)"),
    flag!("--infStreams=N", FROM10, Inference, "Instantiate N execution contexts to run inference concurrently (default = 1)"),
    flag!("--exposeDMA", ALL, Inference, "Serialize DMA transfers to and from device (default = disabled)."),
    flag!("--noDataTransfers", ALL, Inference, "Disable DMA transfers to and from device (default = enabled)."),
    flag!("--includeDataTransfers", V11, Inference, "Include DMA transfers to and from device (default = disabled)."),
    flag!("--useManagedMemory", FROM86, Inference, "Use managed memory instead of separate host and device allocations (default = disabled)."),
    flag!("--useSpinWait", ALL, Inference, "Actively synchronize on GPU events. (default = disabled)"),
    flag!("--noSpinWait", V11, Inference, "Do not actively synchronize on GPU events."),
    flag!("--threads", ALL, Inference, "Enable multithreading to drive engines with independent threads (default = disabled)"),
    flag!("--useCudaGraph", ALL, Inference, "Use CUDA graph to capture engine execution and then launch inference (default = disabled)."),
    flag!("--noCudaGraph", V11, Inference, "Do not use CUDA graph to capture engine execution."),
    flag!("--timeDeserialize", ALL, Inference, "Time the amount of time it takes to deserialize the network and exit."),
    flag!("--timeRefit", ALL, Inference, "Time the amount of time it takes to refit the engine before inference."),
    flag!("--separateProfileRun", ALL, Inference, "Do not attach the profiler in the benchmark run; if profiling is enabled, a second profile run will be executed (default = disabled)"),
    flag!("--skipInference", FROM86, Inference, "Exit after the engine has been built and skip inference perf measurement (default = disabled)"),
    flag!("--persistentCacheRatio=N", FROM86, Inference, "Set the persistentCacheLimit in ratio, 0.5 represent half of max persistent L2 size (default = 0)"),
    flag!("--useProfile=N", FROM10, Inference, "Set the optimization profile for the inference context (default = 0 )."),
    flag!("--loadRefOutputs=spec", V11, Inference, "Load reference output values from files."),
    flag!("--accuracyThreshold=N", V11, Inference, "Accuracy threshold for the reference output comparison."),
    flag!("--accuracyAlgorithm=alg", V11, Inference, "Accuracy algorithm: l0|l1|l2|lInf|cos"),
    flag!("--atol=N", V11, Inference, "Absolute tolerance (default = 1e-05)"),
    flag!("--rtol=N", V11, Inference, "Relative tolerance (default = 1e-05)"),
    flag!("--verbose", ALL, Reporting, "Use verbose logging (default = false)"),
    flag!("--avgRuns=N", ALL, Reporting, "Report performance measurements averaged over N consecutive iterations (default = 10)"),
    flag!("--percentile=P1,P2,P3,...", ALL, Reporting, "Report performance for the P1,P2,P3,... percentages (0<=P_i<=100) (default = 90,95,99%)"),
    flag!("--dumpRefit", ALL, Reporting, "Print the refittable layers and weights from a refittable engine"),
    flag!("--dumpOutput", ALL, Reporting, "Print the output tensor(s) of the last inference iteration (default = disabled)"),
    flag!("--dumpProfile", ALL, Reporting, "Print profile information per layer (default = disabled)"),
    flag!("--dumpLayerInfo", ALL, Reporting, "Print layer information of the engine to console (default = disabled)"),
    flag!("--exportTimes=<file>", ALL, Reporting, "Write the timing results in a json file (default = disabled)"),
    flag!("--exportOutput=<file>", ALL, Reporting, "Write the output tensors to a json file (default = disabled)"),
    flag!("--exportProfile=<file>", ALL, Reporting, "Write the profile information per layer in a json file (default = disabled)"),
    flag!("--exportLayerInfo=<file>", ALL, Reporting, "Write the layer information of the engine in a json file (default = disabled)"),
    flag!("--device=N", ALL, System, "Select cuda device N (default = 0)"),
    flag!("--useDLACore=N", ALL, System, "Select DLA core N for layers that support DLA (default = none)"),
    flag!("--plugins=<file>", V8, System, "Plugin library (.so) to load (can be specified multiple times)"),
    flag!("--staticPlugins=<file>", FROM86, System, "Plugin library (.so) to load statically (can be specified multiple times)"),
    flag!("--dynamicPlugins=<file>", FROM86, System, "Plugin library (.so) to load dynamically (can be specified multiple times)"),
    flag!("--setPluginsToSerialize=<file>", FROM86, System, "Plugin library (.so) to be serialized with the engine (can be specified multiple times)"),
    flag!("--ignoreParsedPluginLibs", FROM86, System, "Ignore the plugin libraries specified by the ONNX parser."),
];

fn find_flag(name: &str, family: Family) -> Option<&'static Flag> {
    let name = if name == "--vc" { "--versionCompatible" } else { name };
    FLAGS.iter().find(|f| f.name() == name && f.versions & family.bit() != 0)
}

fn print_help(family: Family) {
    let sections = [
        (Section::Model, "Model Options"),
        (Section::Build, "Build Options"),
        (Section::Inference, "Inference Options"),
        (Section::Reporting, "Reporting Options"),
        (Section::System, "System Options"),
    ];
    let mut text = String::new();
    for (section, title) in sections {
        let _ = writeln!(text, "=== {title} ===");
        for f in FLAGS.iter().filter(|f| f.section == section && f.versions & family.bit() != 0) {
            let usage = if f.name() == "--versionCompatible" { "--versionCompatible, --vc" } else { f.usage };
            let _ = writeln!(text, "  {usage:<35}{}", f.help);
        }
        text.push('\n');
    }
    text.push_str("=== Help ===\n  --help, -h                         Print this message\n");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The options as given, by canonical name; a later occurrence wins.
#[derive(Default)]
struct Opts {
    values: HashMap<&'static str, String>,
    switches: HashSet<&'static str>,
}

impl Opts {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn has(&self, name: &str) -> bool {
        self.switches.contains(name) || self.values.contains_key(name)
    }
}

enum Parsed {
    Help,
    Unknown(Vec<String>),
    Opts(Opts),
}

/// trtexec splits each argument at its first `=` and takes no separate value words, so `--flag value` makes
/// `value` an unknown option too.
fn parse_args(args: &[String], family: Family) -> Parsed {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Parsed::Help;
    }
    let mut opts = Opts::default();
    let mut unknown = Vec::new();
    for arg in args {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg.as_str(), None),
        };
        match find_flag(key, family) {
            // The message joins key and value with a space (§2.4: `Unknown option: --precisionConstraints obey`).
            None => unknown.push(format!("{key} {}", value.unwrap_or(""))),
            Some(f) if f.takes_value() => {
                opts.values.insert(f.name(), value.unwrap_or("").to_string());
            }
            Some(f) => {
                opts.switches.insert(f.name());
            }
        }
    }
    if unknown.is_empty() { Parsed::Opts(opts) } else { Parsed::Unknown(unknown) }
}

// ---------------------------------------------------------------------------------------------------------------
// Logging (§2.4): `[MM/DD/YYYY-HH:MM:SS] [X] message`, I and V on stdout, W, E and F on stderr.

static VERBOSE: AtomicBool = AtomicBool::new(false);

fn stamp() -> String {
    // SAFETY: time(NULL) reads the clock; localtime_r writes only into the zeroed struct it is given.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:02}/{:02}/{:04}-{:02}:{:02}:{:02}",
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A closed pipe must not panic the stand-in: it goes on as trtexec would and exits with its status.
fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn err_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn info(m: &str) {
    out(&format!("[{}] [I] {m}", stamp()));
}

fn trt(m: &str) {
    out(&format!("[{}] [I] [TRT] {m}", stamp()));
}

fn verbose(m: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        out(&format!("[{}] [V] {m}", stamp()));
    }
}

fn warn(m: &str) {
    err_line(&format!("[{}] [W] {m}", stamp()));
}

fn trt_warn(m: &str) {
    err_line(&format!("[{}] [W] [TRT] {m}", stamp()));
}

fn error(m: &str) {
    err_line(&format!("[{}] [E] {m}", stamp()));
}

fn trt_error(m: &str) {
    err_line(&format!("[{}] [E] [TRT] {m}", stamp()));
}

/// C++ `ostream << double` at its default precision (6 significant digits, `%g`), which every number trtexec prints
/// and exports uses (§2.5): `0.0512695`, `15374.3`, `1.2e-05`, `nan`, `inf`.
fn g6(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if !(-4..6).contains(&exp) {
        format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        trim(&format!("{:.*}", (5 - exp) as usize, x))
    }
}

fn dims_text(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

// ---------------------------------------------------------------------------------------------------------------
// Fault injection and the invocation log

fn record_invocation(argv: &[String]) {
    let Some(path) = std::env::var_os("TRTEXEC_STANDIN_LOG") else { return };
    let args = &argv[1..];
    let has = |name: &str| args.iter().any(|a| a == name || a.starts_with(&format!("{name}=")));
    let kind = if has("--help") || has("-h") {
        "help"
    } else if has("--loadEngine") && (has("--exportProfile") || has("--dumpProfile")) {
        "profile"
    } else if has("--loadEngine") || !has("--onnx") {
        "run"
    } else {
        "build"
    };
    let line = format!("{kind} {}\n", args.join(" "));
    // One write on an O_APPEND file: lines of concurrent invocations never interleave.
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

fn hang_if_asked() {
    let Some(secs) = std::env::var("TRTEXEC_STANDIN_HANG_S").ok().and_then(|s| s.trim().parse::<f64>().ok()) else {
        return;
    };
    // A child in the same process group: a timeout must kill the group, not only the leader.
    let child = std::process::Command::new("sleep").arg(format!("{secs}")).stdin(std::process::Stdio::null()).spawn();
    let pid = std::process::id();
    // SAFETY: getpgrp takes nothing and cannot fail.
    let group = unsafe { libc::getpgrp() };
    let child_pid = child.as_ref().map(|c| c.id().to_string()).unwrap_or_else(|e| format!("none ({e})"));
    info(&format!("TRTEXEC_STANDIN_HANG_S={secs}: pid {pid} in process group {group} sleeps; child pid {child_pid}"));
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    if let Ok(mut child) = child {
        let _ = child.wait();
    }
}

fn crash_if_asked() {
    if std::env::var("TRTEXEC_STANDIN_CRASH").is_ok_and(|v| v == "1") {
        let _ = std::io::stdout().flush();
        // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, exactly as the OOM killer's.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

fn fragile_layer() -> Option<String> {
    std::env::var("TRTEXEC_STANDIN_FRAGILE").ok().filter(|s| !s.is_empty())
}

/// How many levels either side of zero a fragile layer's output keeps (INT8 keeps 127).
const FRAGILE_LEVELS: f32 = 3.0;

// ---------------------------------------------------------------------------------------------------------------
// The engine: the plan header (§4.4) followed by the stand-in's own payload

const PAYLOAD_TAG: &[u8; 8] = b"standin\0";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    inputs: Vec<Binding>,
    outputs: Vec<Binding>,
    layers: Vec<EngineLayer>,
    /// 0 layer_names_only, 1 none, 2 detailed (`ProfilingVerbosity`).
    verbosity: u8,
    /// `TRTEXEC_STANDIN_FRAGILE`'s layer, when it runs INT8 in this engine.
    fragile: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Binding {
    name: String,
    dtype: String,
    dims: Vec<usize>,
    /// The ONNX declared a dynamic dimension: the engine's profile fixes it to `dims`.
    dynamic: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct EngineLayer {
    name: String,
    layer_type: String,
    precision: String,
    /// The quantizable ONNX node the layer is built around, if any.
    anchor: Option<String>,
    macs: u64,
    elems: u64,
    nodes: Vec<String>,
    inputs: Vec<TensorMeta>,
    outputs: Vec<TensorMeta>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TensorMeta {
    name: String,
    dims: Vec<usize>,
    precision: String,
}

struct Engine {
    meta: Meta,
    /// The ONNX that computes the engine's outputs in tract (f32 only).
    onnx: Vec<u8>,
}

impl Engine {
    fn to_bytes(&self, v: Version) -> Vec<u8> {
        let meta = serde_json::to_vec(&self.meta).expect("meta serializes");
        let mut bytes = Vec::with_capacity(28 + 12 + meta.len() + self.onnx.len());
        bytes.extend(0x7472_7466u32.to_le_bytes());
        bytes.extend(0u32.to_le_bytes());
        bytes.extend(((meta.len() + self.onnx.len()) as u64).to_le_bytes());
        bytes.extend(PAYLOAD_TAG);
        bytes.extend([v.major, v.minor, v.patch, v.build]);
        bytes.extend((meta.len() as u32).to_le_bytes());
        bytes.extend(&meta);
        bytes.extend(&self.onnx);
        bytes
    }

    fn payload(bytes: &[u8]) -> Option<Engine> {
        if bytes.get(16..24)? != PAYLOAD_TAG {
            return None;
        }
        let len = u32::from_le_bytes(bytes.get(28..32)?.try_into().ok()?) as usize;
        let meta: Meta = serde_json::from_slice(bytes.get(32..32 + len)?).ok()?;
        Some(Engine { meta, onnx: bytes.get(32 + len..)?.to_vec() })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One invocation

struct Run {
    v: Version,
    command: String,
    opts: Opts,
}

/// The error has been logged already; the run ends with FAILED.
struct Failed;

type Step<T> = Result<T, Failed>;

impl Run {
    fn family(&self) -> Family {
        self.v.family()
    }

    fn finish(&self, ok: bool) -> ExitCode {
        let word = if ok { "PASSED" } else { "FAILED" };
        out(&format!("&&&& {word} TensorRT.trtexec {} # {}", self.v.tag(), self.command));
        if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }

    fn execute(&self) -> Step<()> {
        self.check_values()?;
        self.deprecations();
        self.print_options();
        self.print_device();
        info(&format!("TensorRT version: {}", self.v.dotted()));
        info("Loading standard plugins");
        trt("[MemUsageChange] Init CUDA: CPU +2, GPU +0, now: CPU 34, GPU 5021 (MiB)");
        if self.opts.has("--getPlanVersionOnly") {
            return self.plan_version();
        }
        let engine = match (self.opts.get("--loadEngine"), self.opts.get("--onnx")) {
            (Some(path), _) => self.load(path)?,
            (None, Some(onnx)) => self.build(onnx)?,
            (None, None) => {
                error("Model missing or format not supported");
                error("Engine set up failed");
                return Err(Failed);
            }
        };
        if let Some(path) = self.opts.get("--exportLayerInfo") {
            self.write_file(path, &self.layer_info_json(&engine))?;
        }
        if self.opts.has("--dumpLayerInfo") {
            self.dump_layer_info(&engine);
        }
        if self.opts.has("--skipInference") || self.opts.has("--buildOnly") {
            if self.family() != Family::T85 {
                info("Skipped inference phase since --skipInference is added.");
            }
            return Ok(());
        }
        self.infer(&engine)
    }

    /// Values trtexec refuses while parsing, before anything is built.
    fn check_values(&self) -> Step<()> {
        let fail = |m: String| {
            error(&m);
            Err(Failed)
        };
        if let Some(c) = self.opts.get("--precisionConstraints")
            && !matches!(c, "none" | "obey" | "prefer")
        {
            return fail(format!("Invalid precision constraints: {c}"));
        }
        if let Some(l) = self.opts.get("--builderOptimizationLevel")
            && !l.parse::<i32>().is_ok_and(|l| (0..=5).contains(&l))
        {
            return fail(format!("Invalid builder optimization level: {l}"));
        }
        if let Some(h) = self.opts.get("--hardwareCompatibilityLevel") {
            let known = match h {
                "none" | "ampere+" => true,
                "sameComputeCapability" => self.v.at_least(10, 9),
                _ => false,
            };
            if !known {
                return fail(format!("Invalid hardwareCompatibilityLevel argument: {h}"));
            }
        }
        if let Some(p) = self.opts.get("--profilingVerbosity")
            && !matches!(p, "layer_names_only" | "detailed" | "none" | "default" | "verbose")
        {
            return fail(format!("Unknown profilingVerbosity: {p}"));
        }
        for spec in ["--layerPrecisions", "--layerOutputTypes"] {
            if let Some(s) = self.opts.get(spec)
                && let Err(e) = self.layer_spec(s, spec == "--layerOutputTypes")
            {
                return fail(e);
            }
        }
        for name in ["--iterations", "--avgRuns", "--useDLACore", "--device"] {
            if let Some(n) = self.opts.get(name)
                && n.parse::<i64>().is_err()
            {
                return fail(format!("Invalid value for {name}: {n}"));
            }
        }
        for name in ["--duration", "--warmUp"] {
            if let Some(n) = self.opts.get(name)
                && n.parse::<f64>().is_err()
            {
                return fail(format!("Invalid value for {name}: {n}"));
            }
        }
        if let Err(e) = self.mem_pools() {
            return fail(e);
        }
        if let Err(e) = self.percentiles() {
            return fail(e);
        }
        for name in ["--shapes", "--optShapes", "--minShapes", "--maxShapes"] {
            if let Some(s) = self.opts.get(name)
                && let Err(e) = shape_spec(s)
            {
                return fail(e);
            }
        }
        if self.opts.has("--best") && self.opts.has("--stronglyTyped") {
            // §1.4: "--best together with --stronglyTyped is a hard error".
            return fail("Invalid usage, setting best mode is not allowed if graph is strongly typed.".into());
        }
        Ok(())
    }

    fn deprecations(&self) {
        if self.opts.has("--workspace") {
            warn("--workspace flag has been deprecated by --memPoolSize flag.");
        }
        if self.family() == Family::T86 && self.opts.has("--buildOnly") {
            warn("--buildOnly flag has been deprecated by --skipInference flag.");
        }
        if self.opts.has("--stronglyTyped") {
            // §1.4: with --stronglyTyped, trtexec drops the precision flags with a warning.
            for (flag, mode, builder) in
                [("--fp16", "fp16", "kFP16"), ("--int8", "int8", "kINT8"), ("--bf16", "bf16", "kBF16")]
            {
                if self.opts.has(flag) {
                    warn(&format!(
                        "Invalid usage, setting {mode} mode is not allowed if graph is strongly typed. Disabling BuilderFlag::{builder}."
                    ));
                }
            }
        }
        let constrained = matches!(self.opts.get("--precisionConstraints"), Some("obey" | "prefer"));
        if !constrained && (self.opts.has("--layerPrecisions") || self.opts.has("--layerOutputTypes")) {
            // §2.2: without obey/prefer the per-layer flags do nothing.
            warn(
                "--layerPrecisions/--layerOutputTypes flags have no effect when --precisionConstraints flag is set to \"none\".",
            );
        }
    }

    /// Precision flags in force: strong typing (always on in 11.x) disables them (§1.4).
    fn precision_flags(&self) -> (bool, bool) {
        if self.strongly_typed() {
            return (false, false);
        }
        let best = self.opts.has("--best");
        (self.opts.has("--fp16") || best, self.opts.has("--int8") || best)
    }

    fn strongly_typed(&self) -> bool {
        self.family() == Family::T11 || self.opts.has("--stronglyTyped")
    }

    fn workspace_mib(&self) -> Option<f64> {
        let pools = self.mem_pools().ok()?;
        pools
            .iter()
            .find(|(p, _)| p == "workspace")
            .map(|(_, mib)| *mib)
            .or_else(|| self.opts.get("--workspace").and_then(|w| w.parse().ok()))
    }

    /// `--memPoolSize=pool:size,…` in MiB: 8.x reads plain MiB numbers, 10.x+ also B/K/M/G suffixes (§2.1).
    fn mem_pools(&self) -> Result<Vec<(String, f64)>, String> {
        let Some(spec) = self.opts.get("--memPoolSize") else { return Ok(Vec::new()) };
        let mut pools = Vec::new();
        for item in spec.split(',') {
            let (pool, size) = item.rsplit_once(':').ok_or_else(|| format!("Invalid memPoolSize: {item}"))?;
            let known = ["workspace", "dlaSRAM", "dlaLocalDRAM", "dlaGlobalDRAM"].contains(&pool)
                || (pool == "tacticSharedMem" && self.family() >= Family::T10);
            if !known {
                return Err(format!("Invalid pool name: {pool}"));
            }
            let (number, unit) = match size.char_indices().last() {
                Some((i, c @ ('B' | 'K' | 'M' | 'G'))) if self.family() >= Family::T10 => (&size[..i], c),
                _ => (size, 'M'),
            };
            let n: f64 = number.parse().map_err(|_| format!("Invalid memPoolSize: {item}"))?;
            let mib = match unit {
                'B' => n / (1024.0 * 1024.0),
                'K' => n / 1024.0,
                'G' => n * 1024.0,
                _ => n,
            };
            pools.push((pool.to_string(), mib));
        }
        Ok(pools)
    }

    fn percentiles(&self) -> Result<Vec<f64>, String> {
        let Some(spec) = self.opts.get("--percentile") else { return Ok(vec![90.0, 95.0, 99.0]) };
        spec.split(',')
            .map(|p| match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
                _ => Err(format!("Invalid percentile: {p}")),
            })
            .collect()
    }

    /// `--layerPrecisions` / `--layerOutputTypes` (§2.2): split on ',' first, name and value on the last ':', a name
    /// may be single-quoted; precision names are lowercase, bf16 only from 10.x.
    fn layer_spec(&self, spec: &str, output_types: bool) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (name, value) in name_values(spec)? {
            let types: Vec<&str> = if output_types { value.split('+').collect() } else { vec![value.as_str()] };
            for t in types {
                let known =
                    matches!(t, "fp32" | "fp16" | "int32" | "int8") || (t == "bf16" && self.family() >= Family::T10);
                if !known {
                    return Err(format!("Invalid DataType {t}"));
                }
            }
            out.push((name, value));
        }
        Ok(out)
    }

    /// Exact names, else (10.x) a pattern with one `*`; 8.x knows only the literal `*` as "every other layer" (§2.2).
    fn match_spec<'a>(&self, spec: &'a [(String, String)], layer: &str) -> Option<&'a str> {
        if let Some((_, v)) = spec.iter().find(|(n, _)| n == layer) {
            return Some(v);
        }
        spec.iter()
            .find(|(n, _)| match self.family() {
                Family::T85 | Family::T86 => n == "*",
                _ => one_wildcard(n, layer),
            })
            .map(|(_, v)| v.as_str())
    }

    fn profiling_verbosity(&self) -> u8 {
        match self.opts.get("--profilingVerbosity") {
            Some("detailed" | "verbose") => 2,
            Some("none") => 1,
            _ => 0,
        }
    }

    fn write_file(&self, path: &str, text: &str) -> Step<()> {
        fs::write(path, text).map_err(|e| {
            error(&format!("Cannot open file {path}: {e}"));
            Failed
        })
    }

    // -----------------------------------------------------------------------------------------------------------
    // The option blocks and the device block, in each version's layout (samples of 8.5.2, 8.6.1, 10.16.1, 11.1.0)

    fn print_options(&self) {
        let o = &self.opts;
        let f = self.family();
        let onoff = |b: bool| if b { "Enabled" } else { "Disabled" };
        let get = |n: &str| o.get(n).unwrap_or("").to_string();
        info("=== Model Options ===");
        info(if o.has("--onnx") { "Format: ONNX" } else { "Format: *" });
        info(&format!("Model: {}", get("--onnx")));
        info("Output:");
        info("=== Build Options ===");
        if f <= Family::T86 {
            info("Max batch: explicit batch");
        }
        let workspace = self.workspace_mib().map_or("default".to_string(), |m| format!("{} MiB", g6(m)));
        let mut pools = format!(
            "Memory Pools: workspace: {workspace}, dlaSRAM: default, dlaLocalDRAM: default, dlaGlobalDRAM: default"
        );
        if f >= Family::T10 {
            pools.push_str(", tacticSharedMem: default");
        }
        info(&pools);
        if f <= Family::T86 {
            info("minTiming: 1");
        }
        info("avgTiming: 8");
        let precision = if self.strongly_typed() {
            "Strongly Typed".to_string()
        } else {
            let (fp16, int8) = self.precision_flags();
            format!("FP32{}{}", if fp16 { "+FP16" } else { "" }, if int8 { "+INT8" } else { "" })
        };
        info(&format!("Precision: {precision}"));
        if f <= Family::T10 {
            info(&format!("LayerPrecisions: {}", get("--layerPrecisions")));
        }
        if f >= Family::T86 {
            info(&format!("Layer Device Types: {}", get("--layerDeviceTypes")));
        }
        if f <= Family::T10 {
            info(&format!("Calibration: {}", get("--calib")));
        }
        info("Refit: Disabled");
        if f >= Family::T86 {
            info(&format!("Version Compatible: {}", onoff(o.has("--versionCompatible"))));
            info("TensorRT runtime: full");
            info(&format!("Lean DLL Path: {}", get("--leanDLLPath")));
            info("Tempfile Controls: { in_memory: allow, temporary: allow }");
            info(&format!("Exclude Lean Runtime: {}", onoff(o.has("--excludeLeanRuntime"))));
        }
        info("Sparsity: Disabled");
        info("Safe mode: Disabled");
        if f >= Family::T86 {
            info("Build DLA standalone loadable: Disabled");
            info(&format!("Allow GPU fallback for DLA: {}", onoff(o.has("--allowGPUFallback"))));
        }
        info("DirectIO mode: Disabled");
        if f <= Family::T10 {
            info("Restricted mode: Disabled");
        }
        if f == Family::T85 {
            info(&format!("Build only: {}", onoff(o.has("--buildOnly"))));
        } else {
            info(&format!("Skip inference: {}", onoff(o.has("--skipInference") || o.has("--buildOnly"))));
        }
        info(&format!("Save engine: {}", get("--saveEngine")));
        info(&format!("Load engine: {}", get("--loadEngine")));
        info(&format!("Profiling verbosity: {}", self.profiling_verbosity()));
        info("Tactic sources: Using default tactic sources");
        info(&format!("timingCacheMode: {}", if o.has("--timingCacheFile") { "global" } else { "local" }));
        info(&format!("timingCacheFile: {}", get("--timingCacheFile")));
        if f >= Family::T86 {
            info("Preview Features: Use default preview flags.");
            info("MaxAuxStreams: -1");
            info(&format!("BuilderOptimizationLevel: {}", o.get("--builderOptimizationLevel").unwrap_or("-1")));
        }
        let io = if f == Family::T11 { "CHW" } else { "fp32:CHW" };
        info(&format!("Input(s)s format: {io}"));
        info(&format!("Output(s)s format: {io}"));
        info(&format!("Input build shapes: {}", o.get("--shapes").or(o.get("--optShapes")).unwrap_or("model")));
        if f <= Family::T10 {
            info("Input calibration shapes: model");
        }
        info("=== System Options ===");
        info(&format!("Device: {}", o.get("--device").unwrap_or("0")));
        info(&format!("DLACore: {}", get("--useDLACore")));
        info("Plugins:");
        info("");
        info("=== Inference Options ===");
        info("Batch: Explicit");
        info(&format!("Input inference shapes: {}", o.get("--shapes").unwrap_or("model")));
        info(&format!("Iterations: {}", o.get("--iterations").unwrap_or("10")));
        info(&format!(
            "Duration: {}s (+ {}ms warm up)",
            o.get("--duration").unwrap_or("3"),
            o.get("--warmUp").unwrap_or("200")
        ));
        info("Sleep time: 0ms");
        info("Idle time: 0ms");
        info("Inference Streams: 1");
        info(&format!("ExposeDMA: {}", onoff(o.has("--exposeDMA"))));
        info(&format!("Data transfers: {}", onoff(self.data_transfers())));
        info(&format!("Spin-wait: {}", onoff(o.has("--useSpinWait") || (f == Family::T11 && !o.has("--noSpinWait")))));
        info("Multithreading: Disabled");
        info(&format!("CUDA Graph: {}", onoff(self.cuda_graph())));
        if f <= Family::T10 {
            info(&format!("Separate profiling: {}", onoff(o.has("--separateProfileRun"))));
        }
        info("Time Deserialize: Disabled");
        info("Time Refit: Disabled");
        info("NVTX verbosity: 0");
        info("Persistent Cache Ratio: 0");
        info(&format!("Inputs: {}", get("--loadInputs")));
        info("=== Reporting Options ===");
        info(&format!("Verbose: {}", onoff(o.has("--verbose"))));
        info(&format!("Averages: {} inferences", o.get("--avgRuns").unwrap_or("10")));
        info(&format!(
            "Percentiles: {}",
            self.percentiles().unwrap_or_default().iter().map(|p| g6(*p)).collect::<Vec<_>>().join(",")
        ));
        info("Dump refittable layers:Disabled");
        info(&format!("Dump output: {}", onoff(o.has("--dumpOutput"))));
        info(&format!("Profile: {}", onoff(o.has("--dumpProfile") || o.has("--exportProfile"))));
        info(&format!("Export timing to JSON file: {}", get("--exportTimes")));
        info(&format!("Export output to JSON file: {}", get("--exportOutput")));
        info(&format!("Export profile to JSON file: {}", get("--exportProfile")));
        info("");
    }

    /// A Jetson AGX Orin (two DLA cores), in the device block each version prints.
    fn print_device(&self) {
        info("=== Device Information ===");
        if self.v.at_least(10, 4) {
            info("Available Devices:");
            info("  Device 0: \"Orin\" UUID: GPU-7a1d1a4e-5c1f-5d55-9a0e-0c5a1e5e7a11");
        }
        info("Selected Device: Orin");
        if self.v.at_least(10, 4) {
            info("Selected Device ID: 0");
            info("Selected Device UUID: GPU-7a1d1a4e-5c1f-5d55-9a0e-0c5a1e5e7a11");
        }
        info("Compute Capability: 8.7");
        info("SMs: 16");
        if self.family() == Family::T85 {
            info("Compute Clock Rate: 1.3 GHz");
        }
        info("Device Global Memory: 62780 MiB");
        info("Shared Memory per SM: 164 KiB");
        info("Memory Bus Width: 256 bits (ECC disabled)");
        if self.family() == Family::T85 {
            info("Memory Clock Rate: 0.612 GHz");
        } else {
            info("Application Compute Clock Rate: 1.3 GHz");
            info("Application Memory Clock Rate: 0.612 GHz");
            info("");
            info(
                "Note: The application clock rates do not reflect the actual clock rates that the GPU is currently running at.",
            );
        }
        info("");
    }

    fn data_transfers(&self) -> bool {
        // 11.x copies inputs and outputs only when asked (§2.1).
        if self.family() == Family::T11 {
            self.opts.has("--includeDataTransfers")
        } else {
            !self.opts.has("--noDataTransfers")
        }
    }

    fn cuda_graph(&self) -> bool {
        if self.family() == Family::T11 { !self.opts.has("--noCudaGraph") } else { self.opts.has("--useCudaGraph") }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Build

    fn build(&self, onnx: &str) -> Step<Engine> {
        let started = Instant::now();
        info(if self.family() == Family::T85 { "Start parsing network model" } else { "Start parsing network model." });
        let model = match Model::load(Path::new(onnx)) {
            Ok(m) => m,
            Err(e) => {
                self.parse_failure(onnx, &e.to_string());
                return Err(Failed);
            }
        };
        self.onnx_banner(onnx, &model);
        if self.family() == Family::T85 {
            info("Finish parsing network model");
        } else {
            info(&format!("Finished parsing network model. Parse time: {}", g6(started.elapsed().as_secs_f64())));
        }
        let inputs = self.build_shapes(&model)?;
        hang_if_asked();
        if let Some(core) = self.opts.get("--useDLACore").and_then(|c| c.parse::<i64>().ok())
            && !(0..2).contains(&core)
        {
            error(&format!("Cannot create DLA engine, {core} not available"));
            return self.setup_failed();
        }

        let explicit = is_explicit(&model);
        let (payload, precisions, fp16_elsewhere): (ModelProto, HashMap<usize, Precision>, bool) = if explicit {
            let f16 = float16_tensors(model.graph_proto(), &model.graph());
            let precisions = explicit_precisions(&model, &f16);
            (emulate_float16(model.proto(), &f16), precisions, false)
        } else {
            let (plan, scales, fp16) = self.implicit_plan(&model, &inputs)?;
            let proto = match export(&model, &plan, &scales, Flavor::Simulate) {
                Ok(p) => p,
                Err(e) => {
                    error(&format!(
                        "Error[2]: [builder.cpp::buildSerializedNetwork] Error Code 2: Internal Error ({e})"
                    ));
                    return self.setup_failed();
                }
            };
            let graph = model.graph();
            let by_name: HashMap<&str, Precision> = plan.layers().iter().map(|(n, p)| (n.as_str(), *p)).collect();
            let precisions =
                graph.quantizable().filter_map(|i| Some((i, *by_name.get(graph.node(i).name.as_str())?))).collect();
            (proto, precisions, fp16)
        };

        trt("[MemUsageChange] Init builder kernel library: CPU +1152, GPU +1203, now: CPU 1335, GPU 6361 (MiB)");
        crash_if_asked();
        let payload_model = match Model::from_proto(payload, Path::new(onnx)) {
            Ok(m) => m,
            Err(e) => {
                error(&format!("Error[2]: [builder.cpp::buildSerializedNetwork] Error Code 2: Internal Error ({e})"));
                return self.setup_failed();
            }
        };
        let shapes = match exec::infer_shapes(&payload_model, &inputs) {
            Ok(s) => s,
            Err(e) => {
                // The stand-in's own limit (tract cannot type the network), reported as a build failure.
                error(&format!("Error[10]: Could not find any implementation for the network (trtexec stand-in: {e})"));
                return self.setup_failed();
            }
        };
        let mut layers = engine_layers(&model, &precisions, &shapes, fp16_elsewhere);
        if !explicit {
            layers = with_reformats(layers);
        }

        let mut payload = payload_model.into_proto();
        let fragile = fragile_layer().filter(|f| {
            layers.iter().any(|l| l.anchor.as_deref() == Some(f.as_str()) && l.precision == "int8")
                && make_fragile(&mut payload, f)
        });
        if let Some(f) = &fragile {
            verbose(&format!("TRTEXEC_STANDIN_FRAGILE: layer {f} runs INT8 with {FRAGILE_LEVELS} levels"));
        }

        let hits = self.load_timing_cache(&layers);
        if hits.is_none() {
            trt("Local timing cache in use. Profiling results in this builder pass will not be stored.");
        }
        if self.family() >= Family::T86 {
            trt(&format!("Graph optimization time: {} seconds.", g6(0.004 * layers.len() as f64)));
        }
        trt(&format!("Detected {} inputs and {} output network tensors.", inputs.len(), model.graph().outputs().len()));
        let activation_bytes: u64 = layers.iter().map(|l| l.elems * 4).sum();
        let weight_bytes: u64 =
            payload.graph.as_ref().map_or(0, |g| g.initializer.iter().map(|t| t.raw_data().len() as u64).sum());
        let bytes_unit = if self.family() >= Family::T10 { " bytes" } else { "" };
        trt(&format!("Total Host Persistent Memory: {}{bytes_unit}", 1024 * layers.len()));
        trt(&format!("Total Device Persistent Memory: 0{bytes_unit}"));
        trt(&format!("Total Scratch Memory: 0{bytes_unit}"));
        trt(&format!(
            "[BlockAssignment] Started assigning block shifts. This will take {} steps to complete.",
            layers.len()
        ));
        trt(&format!(
            "[BlockAssignment] Algorithm ShiftNTopDown took {}ms to assign {} blocks to {} nodes requiring {} bytes.",
            g6(0.01 * layers.len() as f64),
            layers.len().min(8),
            layers.len(),
            activation_bytes
        ));
        trt(&format!("Total Activation Memory: {activation_bytes}{bytes_unit}"));
        if self.family() >= Family::T10 {
            trt(&format!("Total Weights Memory: {weight_bytes} bytes"));
        }
        let build_s = self.nominal_build_seconds(&layers, hits.as_ref());
        if self.family() >= Family::T10 {
            trt(&format!("Engine generation completed in {} seconds.", g6(build_s * 0.9)));
        }
        let peak_mib = (weight_bytes + activation_bytes) / (1 << 20) + 1;
        trt(&format!(
            "[MemUsageStats] Peak memory usage of TRT CPU/GPU memory allocators: CPU 0 MiB, GPU {peak_mib} MiB"
        ));

        let meta = Meta {
            inputs: inputs
                .iter()
                .map(|(d, s)| Binding {
                    name: d.name.clone(),
                    dtype: dtype_name(d.dtype.unwrap_or(DType::F32)).into(),
                    dims: s.clone(),
                    dynamic: d.concrete_shape().is_none(),
                })
                .collect(),
            outputs: output_bindings(&model, &shapes),
            layers,
            verbosity: self.profiling_verbosity(),
            fragile,
        };
        let engine = Engine { meta, onnx: prost::Message::encode_to_vec(&payload) };
        let bytes = engine.to_bytes(self.v);
        if self.family() >= Family::T10 {
            info(&format!("Created engine with size: {} MiB", g6(bytes.len() as f64 / (1 << 20) as f64)));
        } else {
            trt(&format!(
                "[MemUsageChange] TensorRT-managed allocation in building engine: CPU +0, GPU +{peak_mib}, now: CPU 0, GPU {peak_mib} (MiB)"
            ));
        }
        info(&format!("Engine built in {} sec.", g6(build_s)));
        if let Some(path) = self.opts.get("--saveEngine")
            && let Err(e) = fs::write(path, &bytes)
        {
            error(&format!("Cannot open engine file: {path} ({e})"));
            return self.setup_failed();
        }
        if let Some(path) = self.opts.get("--timingCacheFile") {
            self.save_timing_cache(path, &engine.meta.layers);
        }
        trt(&format!("Loaded engine size: {} MiB", bytes.len() / (1 << 20)));
        info(&format!("Engine deserialized in {} sec.", g6(0.002 + bytes.len() as f64 * 1e-9)));
        Ok(engine)
    }

    fn setup_failed<T>(&self) -> Step<T> {
        error("Failed to create engine from model or file.");
        error("Engine set up failed");
        Err(Failed)
    }

    /// The ONNX parser's failure (sample trt8.2.4_onnx_parse_failure; §2.4): its own error lines, then trtexec's.
    fn parse_failure(&self, onnx: &str, detail: &str) {
        trt_error(&format!("ModelImporter.cpp:688: Failed to parse ONNX model from file: {onnx}"));
        trt_error(&format!("ModelImporter.cpp:689: ERROR: {detail}"));
        error("Failed to parse onnx file");
        if self.family() == Family::T85 {
            info("Finish parsing network model");
        }
        error("Parsing model failed");
        error("Failed to create engine from model or file.");
        error("Engine set up failed");
    }

    fn onnx_banner(&self, onnx: &str, model: &Model) {
        let p = model.proto();
        trt("----------------------------------------------------------------");
        trt(&format!("Input filename:   {onnx}"));
        trt(&format!("ONNX IR version:  0.0.{}", p.ir_version.unwrap_or(0)));
        trt(&format!("Opset version:    {}", model.opset().unwrap_or(0)));
        trt(&format!("Producer name:    {}", p.producer_name.as_deref().unwrap_or("")));
        trt(&format!("Producer version: {}", p.producer_version.as_deref().unwrap_or("")));
        trt(&format!("Domain:           {}", p.domain.as_deref().unwrap_or("")));
        trt(&format!("Model version:    {}", p.model_version.unwrap_or(0)));
        trt(&format!("Doc string:       {}", p.doc_string.as_deref().unwrap_or("")));
        trt("----------------------------------------------------------------");
    }

    /// The optimization profile: one shape per input (min = opt = max), from `--shapes`/`--optShapes` for dynamic
    /// inputs, else every unknown dimension set to 1 as trtexec does.
    fn build_shapes(&self, model: &Model) -> Step<Vec<(InputDecl, Vec<usize>)>> {
        let declared = exec::declared_inputs(model);
        let spec = self.opts.get("--shapes").or(self.opts.get("--optShapes")).unwrap_or("");
        let given = shape_spec(spec).unwrap_or_default();
        let dynamic = declared.iter().any(|d| d.concrete_shape().is_none());
        if !dynamic && !given.is_empty() {
            error(
                "Static model does not take explicit shapes since the shape of inference tensors will be determined by the model itself",
            );
            error("Network And Config setup failed");
            return self.setup_failed();
        }
        for (name, _) in &given {
            if !declared.iter().any(|d| self.name_matches(name, &d.name)) {
                error(&format!(
                    "Cannot find input tensor with name \"{name}\" in the network inputs! Please make sure the input tensor names are correct."
                ));
                error("Network And Config setup failed");
                return self.setup_failed();
            }
        }
        let mut out = Vec::new();
        for d in declared {
            let shape = match (given.iter().find(|(n, _)| self.name_matches(n, &d.name)), d.concrete_shape()) {
                (Some((_, dims)), _) => {
                    let fits =
                        dims.len() == d.dims.len() && d.dims.iter().zip(dims).all(|(a, b)| a.is_none_or(|a| a == *b));
                    if !fits {
                        error(&format!(
                            "Error[4]: [network.cpp::validate::3100] Error Code 4: Internal Error ({}: for dimension number 0 in profile 0 does not match network definition (got min={t}, opt={t}, max={t}), expected {}.)",
                            d.name,
                            d.describe(),
                            t = dims_text(dims)
                        ));
                        return self.setup_failed();
                    }
                    dims.clone()
                }
                (None, Some(shape)) => shape,
                (None, None) => {
                    let shape: Vec<usize> = d.dims.iter().map(|x| x.unwrap_or(1)).collect();
                    warn(&format!(
                        "Dynamic dimensions required for input: {}, but no shapes were provided. Automatically overriding shape to: {}",
                        d.name,
                        dims_text(&shape)
                    ));
                    shape
                }
            };
            if d.concrete_shape().is_none() {
                let s = dims_text(&shape);
                info(&format!(
                    "Set shape of input tensor {} for optimization profile 0 to: MIN={s} OPT={s} MAX={s}",
                    d.name
                ));
            }
            out.push((d, shape));
        }
        Ok(out)
    }

    fn name_matches(&self, pattern: &str, name: &str) -> bool {
        pattern == name || (self.family() >= Family::T10 && one_wildcard(pattern, name))
    }

    /// Implicit quantization (§1.1, §2.2, §2.7): each quantizable layer's precision from `--layerPrecisions` under
    /// obey/prefer, else the fastest precision the builder flags allow; INT8 needs a scale for every activation the
    /// layer reads. Returns the plan, the scales and whether the other layers may run FP16.
    fn implicit_plan(&self, model: &Model, inputs: &[(InputDecl, Vec<usize>)]) -> Step<(Plan, ScalesFile, bool)> {
        let (fp16, int8) = self.precision_flags();
        let graph = model.graph();
        let proto = model.graph_proto();
        let constrained =
            !self.strongly_typed() && matches!(self.opts.get("--precisionConstraints"), Some("obey" | "prefer"));
        let spec = match (constrained, self.opts.get("--layerPrecisions")) {
            (true, Some(s)) => self.layer_spec(s, false).unwrap_or_default(),
            _ => Vec::new(),
        };
        let wanted: Vec<(usize, Option<&str>)> =
            graph.quantizable().map(|i| (i, self.match_spec(&spec, &trt_name(proto, i)))).collect();
        let uses_int8 = int8 && wanted.iter().any(|(_, w)| w.is_none_or(|w| w == "int8"));
        let scales = if uses_int8 { self.activation_scales(model, inputs)? } else { ScalesFile::new(Method::Entropy) };

        let mut plan = Plan::uniform(&graph, Precision::Fp32);
        let mut warned = HashSet::new();
        for (i, want) in wanted {
            let name = &graph.node(i).name;
            let reads: Vec<String> = weights::operands(proto, &graph, i).activations;
            let missing: Vec<&String> = reads.iter().filter(|t| scales.activation(t).is_none()).collect();
            let int8_ok = int8 && missing.is_empty();
            if int8 && want.is_none_or(|w| w == "int8") {
                for t in &missing {
                    if warned.insert((*t).clone()) {
                        trt_warn(&format!(
                            "Missing scale and zero-point for tensor {t}, expect fall back to non-int8 implementation for any layer consuming or producing given tensor"
                        ));
                    }
                }
            }
            let fallback = if fp16 { Precision::Fp16 } else { Precision::Fp32 };
            let precision = match want {
                Some("int8") if int8_ok => Precision::Int8,
                Some("int8") => fallback,
                Some("fp16") => Precision::Fp16,
                Some(_) => Precision::Fp32,
                None if int8_ok => Precision::Int8,
                None => fallback,
            };
            plan = plan.with(name, precision);
        }
        Ok((plan, scales, fp16))
    }

    /// Scales from `--calib` (§3.1); a missing file is calibrated on one batch of uniform random [-1, 1] data and
    /// no `--calib` gives trtexec's placeholder ranges, ±2 for network inputs and ±4 elsewhere (§2.7).
    fn activation_scales(&self, model: &Model, inputs: &[(InputDecl, Vec<usize>)]) -> Step<ScalesFile> {
        let mut scales = ScalesFile::new(Method::Entropy);
        let input_names: Vec<&str> = inputs.iter().map(|(d, _)| d.name.as_str()).collect();
        let Some(calib) = self.opts.get("--calib") else {
            for t in observed_tensors(model) {
                let amax = if input_names.contains(&t.as_str()) { 2.0 } else { 4.0 };
                let _ = scales.add_activation(t, ActivationScale { amax, scale: amax / 127.0 });
            }
            return Ok(scales);
        };
        if Path::new(calib).exists() {
            match CalibrationCache::read(Path::new(calib)) {
                Ok(cache) => {
                    for e in cache.entries() {
                        // A zero scale cannot quantize anything; the tensor is left without one, as if absent.
                        let _ = scales
                            .add_activation(e.name.clone(), ActivationScale { amax: e.scale * 127.0, scale: e.scale });
                    }
                }
                Err(e) => {
                    error(&format!(
                        "Error[1]: [calibrator.cpp::readCalibrationCache] Error Code 1: Cuda Runtime (Calibration failure occurred with no scaling factors detected: {e})"
                    ));
                    return self.setup_failed();
                }
            }
            return Ok(scales);
        }
        let started = Instant::now();
        trt("Starting Calibration.");
        let mut rng = SplitMix(0x5eed_ca11_b4a7_0001);
        let sample: Vec<Tensor> = inputs
            .iter()
            .map(|(_, shape)| {
                let n: usize = shape.iter().product();
                let values = (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect();
                Tensor::new(shape.clone(), TensorData::F32(values)).expect("sized to the shape")
            })
            .collect();
        let given: Vec<(String, Vec<usize>)> = inputs.iter().map(|(d, s)| (d.name.clone(), s.clone())).collect();
        let batch = std::iter::once(Ok::<_, precisiond::calib::run::SampleError>(sample));
        match calibrate(model, &given, batch, Some(1), Method::Entropy, &Silent) {
            Ok(s) => scales = s,
            Err(e) => {
                error(&format!(
                    "Error[1]: [calibrator.cpp::calibrateEngine] Error Code 1: Cuda Runtime (Calibration failure occurred with no scaling factors detected: {e})"
                ));
                return self.setup_failed();
            }
        }
        trt(&format!("  Calibrated batch 0 in {} seconds.", g6(started.elapsed().as_secs_f64())));
        trt(&format!("  Post Processing Calibration data in {} seconds.", g6(started.elapsed().as_secs_f64() * 0.5)));
        trt(&format!("Calibration completed in {} seconds.", g6(started.elapsed().as_secs_f64())));
        // trtexec's calibrator does not write the cache (§2.7), whatever TensorRT says here.
        trt(&format!("Writing Calibration Cache for calibrator: TRT-{}-EntropyCalibration2", self.v.encoded()));
        Ok(scales)
    }

    fn nominal_build_seconds(&self, layers: &[EngineLayer], hits: Option<&(usize, HashSet<String>)>) -> f64 {
        let level: f64 = self.opts.get("--builderOptimizationLevel").and_then(|l| l.parse().ok()).unwrap_or(3.0);
        let cached = hits.map_or(0, |(n, _)| *n);
        let timed = layers.len().saturating_sub(cached);
        0.4 + (0.05 + 0.02 * level) * timed as f64 + 0.002 * cached as f64
    }

    // Timing cache (§4.5): loaded if present, merged and written back after the build under a file lock.

    fn cache_header(&self) -> String {
        format!("trtexec-standin timing cache {}\n", self.v.full())
    }

    /// The number of layers found in the cache, and the keys it held; None without `--timingCacheFile`.
    fn load_timing_cache(&self, layers: &[EngineLayer]) -> Option<(usize, HashSet<String>)> {
        let path = self.opts.get("--timingCacheFile")?;
        let Ok(text) = fs::read_to_string(path) else {
            if Path::new(path).exists() {
                warn(&format!(
                    "Could not read timing cache from: {path}. A new timing cache will be generated and written."
                ));
            }
            return Some((0, HashSet::new()));
        };
        let Some(body) = text.strip_prefix(&self.cache_header()) else {
            warn(&format!(
                "Could not read timing cache from: {path}. A new timing cache will be generated and written."
            ));
            return Some((0, HashSet::new()));
        };
        info(&format!("Loaded {} bytes of timing cache from {path}", text.len()));
        let keys: HashSet<String> = body.lines().map(str::to_string).collect();
        let hits = layers.iter().filter(|l| keys.contains(&timing_key(l))).count();
        Some((hits, keys))
    }

    fn save_timing_cache(&self, path: &str, layers: &[EngineLayer]) {
        let file = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path);
        let Ok(mut file) = file else {
            warn(&format!("Could not write timing cache to: {path}"));
            return;
        };
        // SAFETY: flock on a descriptor this function owns; the lock goes with the descriptor when `file` drops.
        unsafe {
            libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX);
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        // A cache of another TensorRT is not combined with (§4.5); it is replaced.
        let mut keys: Vec<String> = text
            .strip_prefix(&self.cache_header())
            .map(|b| b.lines().map(str::to_string).collect())
            .unwrap_or_default();
        for l in layers {
            let k = timing_key(l);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let mut new = self.cache_header();
        for k in &keys {
            new.push_str(k);
            new.push('\n');
        }
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(new.as_bytes()));
        match written {
            Ok(()) => info(&format!("Saved {} bytes of timing cache to {path}", new.len())),
            Err(e) => warn(&format!("Could not write timing cache to: {path} ({e})")),
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Loading an engine (§4.1, §4.4)

    fn plan_version(&self) -> Step<()> {
        let Some(path) = self.opts.get("--loadEngine") else {
            error("--getPlanVersionOnly requires --loadEngine");
            return Err(Failed);
        };
        let bytes = fs::read(path).unwrap_or_default();
        if bytes.len() < 28 || bytes[..4] != *b"ftrt" {
            error("Failed to read plan version: Magic tag does not match");
            return Err(Failed);
        }
        if bytes[4..8] != [0, 0, 0, 0] {
            error("Serialization version is not supported");
            return Err(Failed);
        }
        info(&format!(
            "Plan was created with TensorRT version {}.{}.{}.{}",
            bytes[24], bytes[25], bytes[26], bytes[27]
        ));
        Ok(())
    }

    fn load(&self, path: &str) -> Step<Engine> {
        let started = Instant::now();
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(_) => {
                error(&format!("Error opening engine file: {path}"));
                return self.setup_failed();
            }
        };
        trt(&format!("Loaded engine size: {} MiB", bytes.len() / (1 << 20)));
        let fail = |message: String| {
            error(&message);
            error("Engine deserialization failed");
        };
        if bytes.len() < 28 || bytes[..4] != *b"ftrt" {
            fail("Error[1]: [stdArchiveReader.cpp::StdArchiveReader::42] Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)".into());
            return self.setup_failed();
        }
        let layout = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if layout != 0 {
            fail(format!(
                "Error[1]: [stdArchiveReader.cpp::StdArchiveReader::54] Error Code 1: Serialization (Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match. Note: Current Version: 0, Serialized Engine Version: {layout})"
            ));
            return self.setup_failed();
        }
        let plan = Version { major: bytes[24], minor: bytes[25], patch: bytes[26], build: bytes[27] };
        if plan != self.v {
            fail(format!(
                "Error[6]: [runtime.cpp::deserializeCudaEngine::66] Error Code 6: API Usage Error (The engine plan file is not compatible with this version of TensorRT, expecting library version {} got {}, please rebuild.)",
                self.v.full(),
                plan.full()
            ));
            return self.setup_failed();
        }
        let Some(engine) = Engine::payload(&bytes) else {
            fail("Error[1]: [stdArchiveReader.cpp::StdArchiveReader::42] Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)".into());
            return self.setup_failed();
        };
        info(&format!("Engine deserialized in {} sec.", g6(started.elapsed().as_secs_f64())));
        Ok(engine)
    }

    // -----------------------------------------------------------------------------------------------------------
    // Inference

    fn infer(&self, engine: &Engine) -> Step<()> {
        let meta = &engine.meta;
        trt(
            "[MemUsageChange] TensorRT-managed allocation in IExecutionContext creation: CPU +0, GPU +4, now: CPU 0, GPU 12 (MiB)",
        );
        info("Setting persistentCacheLimit to 0 bytes.");
        let given = shape_spec(self.opts.get("--shapes").unwrap_or("")).unwrap_or_default();
        for b in &meta.inputs {
            match given.iter().find(|(n, _)| self.name_matches(n, &b.name)) {
                Some((_, dims)) if *dims != b.dims => {
                    error(&format!(
                        "Error[3]: [executionContext.cpp::setInputShape::2068] Error Code 3: API Usage Error (Parameter check failed at: runtime/api/executionContext.cpp::setInputShape::2068, condition: satisfyProfile Runtime dimension does not satisfy any optimization profile.) {}: {} is outside the profile {}",
                        b.name,
                        dims_text(dims),
                        dims_text(&b.dims)
                    ));
                    error("Inference set up failed");
                    return Err(Failed);
                }
                Some(_) => {}
                None if b.dynamic => {
                    // The run-together message is trtexec's own (sample trt10.16.1 loadEngine log).
                    warn(&format!(
                        "Shape missing for input with dynamic shape: {}Automatically setting shape to: {}",
                        b.name,
                        dims_text(&b.dims)
                    ));
                }
                None => {}
            }
            if b.dynamic {
                info(&format!("Set shape of input tensor {} to: {}", b.name, dims_text(&b.dims)));
            }
        }
        if self.family() >= Family::T10 {
            info("Created execution context with device memory size: 0.125 MiB");
        }
        let inputs = self.input_values(meta)?;
        for (kind, bindings) in [("Input", &meta.inputs), ("Output", &meta.outputs)] {
            for b in bindings {
                let dims = dims_text(&b.dims);
                info(&match self.family() {
                    Family::T85 => {
                        format!("Created {} binding for {} with dimensions {dims}", kind.to_lowercase(), b.name)
                    }
                    Family::T86 => format!("{kind} binding for {} with dimensions {dims} is created.", b.name),
                    _ => {
                        format!("{kind} binding for {} with dimensions {dims} and type {} is created.", b.name, b.dtype)
                    }
                });
            }
        }
        let outputs = if self.opts.has("--exportOutput") || self.opts.has("--dumpOutput") {
            Some(self.compute(engine, inputs)?)
        } else {
            None
        };

        info("Starting inference");
        let timing = self.timing(meta);
        let profiling = self.opts.has("--exportProfile") || self.opts.has("--dumpProfile");
        let separate = self.opts.has("--separateProfileRun") || self.family() == Family::T11;
        info(&format!("Warmup completed {} queries over {} ms", timing.warmup_queries, g6(timing.warmup_ms)));
        info(&format!("Timing trace has {} queries over {} s", timing.queries.len(), g6(timing.walltime_s())));
        if profiling && !separate {
            // §2.5: the profiler in the timed run withholds the summary.
            info(
                "The e2e network timing is not reported since it is inaccurate due to the extra synchronizations when the profiler is enabled.",
            );
            info(
                "To show e2e network timing report, add --separateProfileRun to profile layer timing in a separate run or remove --dumpProfile to disable the profiler.",
            );
        } else {
            self.print_summary(&timing);
        }
        if let Some(path) = self.opts.get("--exportTimes") {
            self.write_file(path, &timing.export_json())?;
        }
        if let Some(outputs) = &outputs {
            if let Some(path) = self.opts.get("--exportOutput") {
                self.write_file(path, &export_output_json(&meta.outputs, outputs))?;
            }
            if self.opts.has("--dumpOutput") {
                info("Output Tensors:");
                for (b, t) in meta.outputs.iter().zip(outputs) {
                    info(&format!("{}: ({})", b.name, dims_text(&b.dims)));
                    out(&values_of(t).iter().map(|v| g6(*v)).collect::<Vec<_>>().join(" "));
                }
            }
        }
        if profiling {
            let profile = profile_of(meta, timing.queries.len() as u64);
            if self.opts.has("--dumpProfile") {
                self.dump_profile(&profile);
            }
            if let Some(path) = self.opts.get("--exportProfile") {
                self.write_file(path, &profile.export_json())?;
            }
        }
        Ok(())
    }

    /// Input values from `--loadInputs` (raw little-endian bytes of exactly the binding's size, §2.3), else random.
    fn input_values(&self, meta: &Meta) -> Step<Vec<Tensor>> {
        let files = match self.opts.get("--loadInputs") {
            Some(spec) => match name_values(spec) {
                Ok(f) => f,
                Err(e) => {
                    error(&e);
                    return Err(Failed);
                }
            },
            None => Vec::new(),
        };
        let mut rng = SplitMix(0x1b4d_5eed);
        let mut tensors = Vec::new();
        for b in &meta.inputs {
            let volume: usize = b.dims.iter().product();
            let dtype = dtype_of(&b.dtype);
            let tensor = match files.iter().find(|(n, _)| self.name_matches(n, &b.name)) {
                Some((_, file)) => {
                    let bytes = match fs::read(file) {
                        Ok(bytes) => bytes,
                        Err(_) => {
                            error(&format!("Cannot open file {file}!"));
                            error("Inference set up failed");
                            return Err(Failed);
                        }
                    };
                    let size = volume * element_size(dtype);
                    if bytes.len() != size {
                        error(&format!(
                            "Unexpected file size for input file: {file}. Note: Input binding size is: {size} bytes but the file size is {} bytes. Double check the size and datatype of the provided data.",
                            bytes.len()
                        ));
                        error("Inference set up failed");
                        return Err(Failed);
                    }
                    info(&format!("Using values loaded from {file} for input {}", b.name));
                    tensor_from_le(b.dims.clone(), dtype, &bytes)
                }
                None => {
                    info(&format!("Using random values for input {}", b.name));
                    random_tensor(b.dims.clone(), dtype, &mut rng)
                }
            };
            tensors.push(tensor);
        }
        Ok(tensors)
    }

    fn compute(&self, engine: &Engine, inputs: Vec<Tensor>) -> Step<Vec<Tensor>> {
        let fail = |e: String| {
            error(&format!("Error[2]: [executionContext.cpp::enqueueV3] Error Code 2: Internal Error ({e})"));
            error("Error occurred during inference");
            Failed
        };
        let model =
            Model::from_bytes(engine.onnx.clone().into(), Path::new("engine")).map_err(|e| fail(e.to_string()))?;
        let shapes: Vec<(String, Vec<usize>)> =
            engine.meta.inputs.iter().map(|b| (b.name.clone(), b.dims.clone())).collect();
        let executor = Executor::new(&model, &shapes).map_err(|e| fail(e.to_string()))?;
        // The executor takes its inputs in the model's order, which is the binding order.
        let ordered: Vec<Tensor> = executor
            .inputs()
            .iter()
            .map(|(d, _)| {
                let i =
                    engine.meta.inputs.iter().position(|b| b.name == d.name).expect("bindings are the model's inputs");
                inputs[i].clone()
            })
            .collect();
        let outputs = executor.run(&ordered).map_err(|e| fail(e.to_string()))?;
        let names = executor.output_names().to_vec();
        let outputs = engine
            .meta
            .outputs
            .iter()
            .filter_map(|b| names.iter().position(|n| *n == b.name).map(|i| outputs[i].clone()));
        Ok(if engine.meta.fragile.is_some() { outputs.map(pulled_through_mean).collect() } else { outputs.collect() })
    }

    // Times (§2.5, §2.6): nominal per layer, the same jitter sequence for every engine so that comparisons between
    // engines keep the order of their nominal times.

    fn timing(&self, meta: &Meta) -> Timing {
        let gpu_ms: f64 = meta.layers.iter().map(layer_ms).sum();
        let enqueue_ms = if self.cuda_graph() { 0.009 } else { 0.012 + 0.0004 * meta.layers.len() as f64 };
        let (h2d_ms, d2h_ms) = if self.data_transfers() {
            let bytes = |b: &[Binding]| {
                b.iter().map(|b| b.dims.iter().product::<usize>() * element_size(dtype_of(&b.dtype))).sum::<usize>()
            };
            (0.004 + bytes(&meta.inputs) as f64 / 25e6, 0.004 + bytes(&meta.outputs) as f64 / 25e6)
        } else {
            (0.0, 0.0)
        };
        let iterations: usize = self.opts.get("--iterations").and_then(|n| n.parse().ok()).unwrap_or(10).max(1);
        let duration_s: f64 = self.opts.get("--duration").and_then(|n| n.parse().ok()).unwrap_or(3.0);
        let warmup_ms: f64 = self.opts.get("--warmUp").and_then(|n| n.parse::<f64>().ok()).unwrap_or(200.0).max(0.0);
        let latency = h2d_ms + gpu_ms + d2h_ms;
        let by_duration = if duration_s > 0.0 { (duration_s * 1000.0 / latency).ceil() as usize } else { 0 };
        // Enough queries for the statistics; a real minute of GPU time is not worth a minute of the tests'.
        let n = iterations.max(by_duration).min(20_000);
        let mut t = warmup_ms;
        let mut queries = Vec::with_capacity(n);
        for i in 0..n {
            let mut rng = SplitMix(0x7157_a11e ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let jitter = 1.0 + 0.006 * (rng.uniform() - 0.5) + if i % 53 == 17 { 0.02 } else { 0.0 };
            let gpu = gpu_ms * jitter;
            let enq = enqueue_ms * (1.0 + 0.05 * (rng.uniform() - 0.5));
            let h2d = h2d_ms * jitter;
            let d2h = d2h_ms * jitter;
            let q = Query { start_enq: t, end_enq: t + enq, start_h2d: t, h2d, compute: gpu, d2h };
            t = q.end_d2h().max(q.end_enq) + 0.001;
            queries.push(q);
        }
        Timing {
            queries,
            warmup_queries: (warmup_ms / latency).floor() as usize,
            warmup_ms,
            avg_runs: self.opts.get("--avgRuns").and_then(|n| n.parse().ok()).unwrap_or(10).max(1),
            percentiles: self.percentiles().unwrap_or_else(|_| vec![90.0, 95.0, 99.0]),
        }
    }

    fn print_summary(&self, timing: &Timing) {
        info("");
        info("=== Trace details ===");
        info(&format!("Trace averages of {} runs:", timing.avg_runs));
        for chunk in timing.queries.chunks(timing.avg_runs).filter(|c| c.len() == timing.avg_runs) {
            let n = chunk.len() as f64;
            let gpu = chunk.iter().map(|q| q.compute).sum::<f64>() / n;
            let host = chunk.iter().map(Query::latency).sum::<f64>() / n;
            let enq = chunk.iter().map(|q| q.end_enq - q.start_enq).sum::<f64>() / n;
            info(&format!(
                "Average on {} runs - GPU latency: {} ms - Host latency: {} ms (enqueue {} ms)",
                timing.avg_runs,
                g6(gpu),
                g6(host),
                g6(enq)
            ));
        }
        info("");
        info("=== Performance summary ===");
        info(&format!("Throughput: {} qps", g6(timing.queries.len() as f64 / timing.walltime_s())));
        let stat =
            |label: &str, values: Vec<f64>| info(&format!("{label}: {}", stats_text(values, &timing.percentiles)));
        stat("Latency", timing.queries.iter().map(Query::latency).collect());
        stat("Enqueue Time", timing.queries.iter().map(|q| q.end_enq - q.start_enq).collect());
        stat("H2D Latency", timing.queries.iter().map(|q| q.h2d).collect());
        stat("GPU Compute Time", timing.queries.iter().map(|q| q.compute).collect());
        stat("D2H Latency", timing.queries.iter().map(|q| q.d2h).collect());
        info(&format!("Total Host Walltime: {} s", g6(timing.walltime_s())));
        info(&format!(
            "Total GPU Compute Time: {} s",
            g6(timing.queries.iter().map(|q| q.compute).sum::<f64>() / 1000.0)
        ));
        info("Explanations of the performance metrics are printed in the verbose logs.");
        info("");
    }

    /// The `=== Profile (N iterations ) ===` table: name last from 10.x, first before (sample trt10.16.1).
    fn dump_profile(&self, profile: &Profile) {
        info("");
        info(&format!("=== Profile ({} iterations ) ===", profile.count));
        let total_time: f64 = profile.layers.iter().map(|l| l.time_ms).sum();
        let total_avg: f64 = profile.layers.iter().map(|l| l.average_ms).sum();
        let rows = profile.layers.iter().map(|l| (l.name.as_str(), l.time_ms, l.average_ms, l.median_ms, l.percentage));
        let total = std::iter::once(("Total", total_time, total_avg, total_avg, 100.0));
        if self.family() >= Family::T10 {
            info("   Time(ms)     Avg.(ms)   Median(ms)   Time(%)   Layer");
            for (name, t, a, m, p) in rows.chain(total) {
                info(&format!("{t:>11.2}{a:>13.4}{m:>13.4}{p:>10.1}   {name}"));
            }
        } else {
            let width = profile.layers.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
            info(&format!("{:>width$}   Time (ms)   Avg. Time (ms)   Median Time (ms)   Time %", "Layer"));
            for (name, t, a, m, p) in rows.chain(total) {
                info(&format!("{name:>width$}{t:>12.2}{a:>17.4}{m:>19.4}{p:>9.1}"));
            }
        }
        info("");
    }

    // -----------------------------------------------------------------------------------------------------------
    // Layer information (§2.6): names only by default, per-layer tensors with `--profilingVerbosity=detailed`

    fn layer_info_json(&self, engine: &Engine) -> String {
        let meta = &engine.meta;
        let q = |s: &str| serde_json::to_string(s).expect("string");
        let mut text = String::from("{\"Layers\": [");
        if meta.verbosity != 2 {
            let names: Vec<String> = meta.layers.iter().map(|l| q(&l.name)).collect();
            text.push_str(&names.join("\n,"));
            text.push_str("],\n");
        } else {
            let eleven = self.family() == Family::T11;
            let tensor = |t: &TensorMeta| {
                let dims = t.dims.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
                let ty = if eleven {
                    format!(
                        "\"Format\": \"{}\",\n    \"DataType\": \"{}\"",
                        format_of(&t.precision, &t.dims),
                        type_word(&t.precision)
                    )
                } else {
                    format!("\"Format/Datatype\": \"{}\"", format_datatype(&t.precision, &t.dims))
                };
                format!(
                    "\n  {{\n    \"Name\": {},\n    \"Location\": \"Device\",\n    \"Dimensions\": [{dims}],\n    {ty}\n  }}",
                    q(&t.name)
                )
            };
            let layers: Vec<String> = meta
                .layers
                .iter()
                .map(|l| {
                    let ins: Vec<String> = l.inputs.iter().map(tensor).collect();
                    let outs: Vec<String> = l.outputs.iter().map(tensor).collect();
                    let mut s = format!(
                        "{{\n  \"Name\": {},\n  \"LayerType\": {},\n  \"Inputs\": [{}],\n  \"Outputs\": [{}],\n",
                        q(&l.name),
                        q(&l.layer_type),
                        ins.join(","),
                        outs.join(",")
                    );
                    if l.layer_type == "Scale" || l.layer_type == "Reformat" {
                        let _ = writeln!(
                            s,
                            "  \"Origin\": \"{}\",",
                            if l.layer_type == "Scale" { "QDQ" } else { "REFORMAT" }
                        );
                    }
                    let _ = write!(
                        s,
                        "  \"TacticName\": {},\n  \"TacticValue\": \"0x{:016x}\"",
                        q(&tactic_name(l)),
                        fnv(&l.name)
                    );
                    if self.family() >= Family::T10 {
                        let metadata: Vec<String> = l.nodes.iter().map(|n| format!("[ONNX Layer: {n}]")).collect();
                        let _ = write!(s, ",\n  \"StreamId\": 0,\n  \"Metadata\": {}", q(&metadata.join("\u{1e}")));
                    }
                    s.push_str("\n}");
                    s
                })
                .collect();
            text.push_str(&layers.join(","));
            text.push_str("],\n");
        }
        if self.family() == Family::T11 {
            let io: Vec<String> = meta
                .inputs
                .iter()
                .map(|b| (b, "Input"))
                .chain(meta.outputs.iter().map(|b| (b, "Output")))
                .map(|(b, mode)| {
                    let dims = b.dims.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
                    format!(
                        "{{\"Name\": {}, \"IOMode\": \"{mode}\", \"DataType\": \"{}\", \"Dimensions\": [{dims}], \"Location\": \"Device\", \"IsShapeInferenceIO\": false, \"ProfileInfo\": [{{\"MinShape\": [{dims}], \"OptShape\": [{dims}], \"MaxShape\": [{dims}], \"Format\": \"Row major linear\"}}]}}",
                        q(&b.name),
                        type_word(&b.dtype)
                    )
                })
                .collect();
            let _ = write!(text, "\"I/O Tensors\": [{}]}}", io.join(",\n"));
        } else {
            let names: Vec<String> = meta.inputs.iter().chain(&meta.outputs).map(|b| q(&b.name)).collect();
            let _ = write!(text, "\"Bindings\": [{}\n]}}", names.join("\n,"));
        }
        text
    }

    /// `--dumpLayerInfo`: one line per layer, then the bindings (sample trt10.16.1 dumpLayerInfo).
    fn dump_layer_info(&self, engine: &Engine) {
        info("Layer Information:");
        info("Layers:");
        let tensor = |t: &TensorMeta| {
            let dims = t.dims.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
            format!(
                "{{ Name: {}, Location: Device, Dimensions: [{dims}], Format/Datatype: {} }}",
                t.name,
                format_datatype(&t.precision, &t.dims)
            )
        };
        for l in &engine.meta.layers {
            if engine.meta.verbosity == 2 {
                let ins: Vec<String> = l.inputs.iter().map(tensor).collect();
                let outs: Vec<String> = l.outputs.iter().map(tensor).collect();
                let metadata: String = l.nodes.iter().map(|n| format!("[ONNX Layer: {n}]")).collect();
                out(&format!(
                    "Name: {}, LayerType: {}, Inputs: [ {}], Outputs: [ {}], TacticName: {}, StreamId: 0, Metadata: {metadata}",
                    l.name,
                    l.layer_type,
                    ins.join(", "),
                    outs.join(", "),
                    tactic_name(l)
                ));
            } else {
                out(&l.name);
            }
        }
        out("");
        out("Bindings:");
        for b in engine.meta.inputs.iter().chain(&engine.meta.outputs) {
            out(&b.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Specs

/// `name:value,…`: split on ',' first, then on the last ':', names optionally in single quotes (§2.2, §2.3).
fn name_values(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').filter(|i| !i.is_empty()) {
        if item.contains('\'') && item.matches('\'').count() != 2 {
            return Err(format!("Found invalid number of 's in {item}"));
        }
        let (name, value) =
            item.rsplit_once(':').ok_or_else(|| format!("Invalid spec (expected name:value): {item}"))?;
        out.push((name.replace('\'', ""), value.to_string()));
    }
    Ok(out)
}

/// `--shapes=name:1x3x224x224,…`; `name:scalar` or `name:` is a scalar.
fn shape_spec(spec: &str) -> Result<Vec<(String, Vec<usize>)>, String> {
    name_values(spec)?
        .into_iter()
        .map(|(name, dims)| {
            if dims.is_empty() || dims == "scalar" {
                return Ok((name, Vec::new()));
            }
            let parsed: Result<Vec<usize>, _> = dims.split('x').map(str::parse::<usize>).collect();
            parsed.map(|d| (name.clone(), d)).map_err(|_| format!("Invalid shape for input {name}: {dims}"))
        })
        .collect()
}

/// `prefix*suffix` with one `*` (10.x, §2.2).
fn one_wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        Some((pre, post)) if !post.contains('*') => {
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The network: modes, float16, precisions and the engine's layers

/// TensorRT's name for an ONNX node: the node's name, else one made from its first output (onnx-tensorrt
/// `getNodeName`; not in tensorrt.md).
fn trt_name(graph: &GraphProto, index: usize) -> String {
    let node = &graph.node[index];
    match node.name() {
        "" => format!("node_of_{}", node.output.first().map(String::as_str).unwrap_or("")),
        name => name.to_string(),
    }
}

/// Q/DQ or float16 anywhere: the ONNX carries its precisions (explicit quantization, §1.1).
fn is_explicit(model: &Model) -> bool {
    let g = model.graph_proto();
    g.node.iter().any(|n| matches!(n.op_type(), "QuantizeLinear" | "DequantizeLinear"))
        || !float16_tensors(g, &model.graph()).is_empty()
}

fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name() == name).and_then(|a| a.i)
}

const F16: i32 = DataType::Float16 as i32;
const F32: i32 = DataType::Float as i32;

/// Tensors of type float16: f16 constants and inputs, `Cast(to=float16)` outputs, and the outputs of every other
/// node that reads one (ONNX ops compute in their inputs' type).
fn float16_tensors(graph: &GraphProto, view: &Graph) -> HashSet<String> {
    let mut f16: HashSet<String> =
        graph.initializer.iter().filter(|t| t.data_type == Some(F16)).map(|t| t.name().to_string()).collect();
    for v in &graph.input {
        if v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.elem_type) == Some(F16) {
            f16.insert(v.name().to_string());
        }
    }
    for &i in view.order() {
        let node = &graph.node[i];
        let is_f16 = match node.op_type() {
            "Cast" => attr_i(node, "to") == Some(i64::from(F16)),
            "Constant" => weights::constant_value(node).is_some_and(|t| t.data_type == Some(F16)),
            "QuantizeLinear" => false,
            "DequantizeLinear" => node.input.get(1).is_some_and(|s| f16.contains(s)),
            "Shape" | "Size" => false,
            _ => node.input.iter().any(|t| f16.contains(t)),
        };
        if is_f16 {
            f16.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    f16
}

/// The model with float16 emulated in f32: f16 constants widened (exactly), and every f16 result rounded through
/// `Cast(float16) → Cast(float)`, the arithmetic of export's Simulate flavor (which tract runs correctly).
fn emulate_float16(model: &ModelProto, f16: &HashSet<String>) -> ModelProto {
    let mut proto = model.clone();
    let Some(graph) = proto.graph.as_mut() else { return proto };
    let widen = |t: &mut TensorProto| {
        if t.data_type == Some(F16)
            && let Ok(values) = weights::to_f32(t)
        {
            t.data_type = Some(F32);
            t.int32_data.clear();
            t.raw_data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into());
        }
    };
    for t in graph.initializer.iter_mut() {
        widen(t);
    }
    let mut used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.iter().chain(&n.output).cloned()).collect();
    let mut fresh = |base: &str| {
        let mut name = base.to_string();
        let mut k = 2;
        while used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        used.insert(name.clone());
        name
    };
    let mut nodes = Vec::with_capacity(graph.node.len());
    for mut node in std::mem::take(&mut graph.node) {
        if node.op_type() == "Constant" {
            for t in node.attribute.iter_mut().filter_map(|a| a.t.as_mut()) {
                widen(t);
            }
            nodes.push(node);
            continue;
        }
        let outputs_f16: Vec<usize> = (0..node.output.len()).filter(|&o| f16.contains(&node.output[o])).collect();
        if outputs_f16.is_empty() {
            nodes.push(node);
            continue;
        }
        let mut after = Vec::new();
        for o in outputs_f16 {
            let target = node.output[o].clone();
            let raw = fresh(&format!("{target}__standin_f32"));
            let half = fresh(&format!("{target}__standin_f16"));
            node.output[o] = raw.clone();
            // A Cast(to=float16) keeps its cast; anything else computed in f32 gets one.
            if node.op_type() == "Cast" {
                node.output[o] = half.clone();
            } else {
                after.push(cast(&fresh(&format!("{target}__standin_round")), &raw, &half, F16));
            }
            after.push(cast(&fresh(&format!("{target}__standin_widen")), &half, &target, F32));
        }
        nodes.push(node);
        nodes.extend(after);
    }
    graph.node = nodes;
    for v in graph.input.iter_mut().chain(graph.output.iter_mut()) {
        if let Some(t) = v.r#type.as_mut().and_then(|t| t.tensor_type.as_mut())
            && t.elem_type == Some(F16)
        {
            t.elem_type = Some(F32);
        }
    }
    graph.value_info.clear();
    proto
}

fn cast(name: &str, input: &str, output: &str, to: i32) -> NodeProto {
    node(name, "Cast", &[input], output, vec![int_attr("to", i64::from(to))])
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(name.to_string()),
        op_type: Some(op.to_string()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn scalar(name: &str, value: f32) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(F32),
        raw_data: Some(value.to_le_bytes().to_vec().into()),
        ..Default::default()
    }
}

/// In an explicit network a layer is INT8 when it reads a DequantizeLinear, FP16 when it reads float16.
fn explicit_precisions(model: &Model, f16: &HashSet<String>) -> HashMap<usize, Precision> {
    let graph = model.graph();
    graph
        .quantizable()
        .map(|i| {
            let node = graph.node(i);
            let reads_dq = node
                .inputs
                .iter()
                .any(|t| graph.producer(t).is_some_and(|p| graph.node(p).op_type == "DequantizeLinear"));
            let p = if reads_dq {
                Precision::Int8
            } else if node.inputs.iter().any(|t| f16.contains(t)) {
                Precision::Fp16
            } else {
                Precision::Fp32
            };
            (i, p)
        })
        .collect()
}

/// A float tensor reflected halfway through its mean, `m − (v − m)/2`: the order of its values reverses (a
/// classifier's top class changes) while they stay in range.
fn pulled_through_mean(t: Tensor) -> Tensor {
    let Some(values) = t.as_f32() else { return t };
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64;
    let pulled = values.iter().map(|&v| (mean - (f64::from(v) - mean) / 2.0) as f32).collect();
    Tensor::new(t.shape().to_vec(), TensorData::F32(pulled)).expect("same shape")
}

/// The fragile layer's output quantized per sample to ±`FRAGILE_LEVELS` steps of its own range.
fn make_fragile(proto: &mut ModelProto, layer: &str) -> bool {
    let Some(graph) = proto.graph.as_mut() else { return false };
    let Some(pos) = graph.node.iter().position(|n| n.name() == layer) else { return false };
    let Some(output) = graph.node[pos].output.first().cloned() else { return false };
    let p = "__standin_fragile";
    let t = |s: &str| format!("{p}_{s}");
    graph.node[pos].output[0] = t("raw");
    graph.initializer.push(scalar(&t("levels"), FRAGILE_LEVELS));
    graph.initializer.push(scalar(&t("tiny"), 1e-30));
    let ops = [
        node(&t("abs"), "Abs", &[&t("raw")], &t("a"), vec![]),
        node(&t("max"), "ReduceMax", &[&t("a")], &t("m"), vec![int_attr("keepdims", 1)]),
        node(&t("step"), "Div", &[&t("m"), &t("levels")], &t("s0"), vec![]),
        node(&t("floor"), "Max", &[&t("s0"), &t("tiny")], &t("s"), vec![]),
        node(&t("scale"), "Div", &[&t("raw"), &t("s")], &t("q0"), vec![]),
        node(&t("round"), "Round", &[&t("q0")], &t("q"), vec![]),
        node(&t("back"), "Mul", &[&t("q"), &t("s")], &output, vec![]),
    ];
    graph.node.splice(pos + 1..pos + 1, ops);
    true
}

const EPILOGUE_OPS: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Softplus",
    "PRelu",
    "Cast",
    "QuantizeLinear",
];

/// The engine's layers, as TensorRT would fuse the network: a quantizable node with the DequantizeLinear nodes
/// feeding it and the chain of one-consumer epilogue ops after it (batch norm, activation, bias or residual add,
/// casts, a QuantizeLinear) is one layer named by its nodes joined with " + " (`Conv_0 + Relu_1`, tensorrt.md §2.2,
/// §2.6); constants and shape arithmetic fold away; every other node is a layer of its own.
fn engine_layers(
    model: &Model,
    precisions: &HashMap<usize, Precision>,
    shapes: &HashMap<String, Vec<usize>>,
    fp16_elsewhere: bool,
) -> Vec<EngineLayer> {
    let graph = model.graph();
    let proto = model.graph_proto();
    let n = graph.len();
    let mut folded_t: HashSet<String> = proto.initializer.iter().map(|t| t.name().to_string()).collect();
    let mut folded = vec![false; n];
    for &i in graph.order() {
        let node = graph.node(i);
        let fold = matches!(node.op_type.as_str(), "Constant" | "Shape" | "Size")
            || node.inputs.iter().filter(|t| !t.is_empty()).all(|t| folded_t.contains(t));
        if fold {
            folded[i] = true;
            folded_t.extend(node.outputs.iter().cloned());
        }
    }
    let f16 = float16_tensors(proto, &graph);
    let anchor = |i: usize| !folded[i] && graph.node(i).is_quantizable();
    let live = |t: &str| -> Vec<usize> { graph.consumers(t).iter().copied().filter(|&c| !folded[c]).collect() };
    let mut owner: Vec<Option<usize>> = vec![None; n];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut weights_of: Vec<Vec<String>> = Vec::new();
    for &i in graph.order() {
        if !anchor(i) {
            continue;
        }
        let g = groups.len();
        let mut members = Vec::new();
        let mut weight_tokens = Vec::new();
        for t in &graph.node(i).inputs {
            let Some(p) = graph.producer(t) else { continue };
            if graph.node(p).op_type != "DequantizeLinear" {
                continue;
            }
            if folded[p] {
                weight_tokens.push(trt_name(proto, p));
            } else if owner[p].is_none() && live(t).iter().all(|&c| anchor(c)) {
                owner[p] = Some(g);
                members.push(p);
            }
        }
        owner[i] = Some(g);
        members.push(i);
        let mut current = graph.node(i).outputs.first().cloned().unwrap_or_default();
        loop {
            let consumers = live(&current);
            if graph.outputs().contains(&current) || consumers.len() != 1 {
                break;
            }
            let c = consumers[0];
            let cn = graph.node(c);
            let others_ok = cn.inputs.iter().filter(|t| !t.is_empty() && **t != current).all(|t| {
                folded_t.contains(t) || (cn.op_type == "Add" && graph.producer(t).is_none_or(|p| owner[p].is_some()))
            });
            let fusable = EPILOGUE_OPS.contains(&cn.op_type.as_str())
                || matches!(cn.op_type.as_str(), "Add" | "Sub" | "Mul" | "Div");
            if owner[c].is_some() || anchor(c) || !fusable || !others_ok {
                break;
            }
            owner[c] = Some(g);
            members.push(c);
            current = cn.outputs.first().cloned().unwrap_or_default();
            if cn.op_type == "QuantizeLinear" {
                break;
            }
        }
        groups.push(members);
        weights_of.push(weight_tokens);
    }
    // Pointwise nodes left over join the pointwise layer that produces one of their inputs when everything else
    // they read is already read or made there (TensorRT's PWN fusion: hardswish's Add, Clip, Mul, Div are one layer).
    let mut pointwise_group: Vec<bool> = vec![false; groups.len()];
    let mut order = Vec::new();
    let mut seen = vec![false; groups.len() + n];
    for &i in graph.order() {
        if folded[i] {
            continue;
        }
        let g = match owner[i] {
            Some(g) => g,
            None => {
                let node = graph.node(i);
                let reads: Vec<&String> =
                    node.inputs.iter().filter(|t| !t.is_empty() && !folded_t.contains(*t)).collect();
                let joinable = POINTWISE_OPS.contains(&node.op_type.as_str()).then(|| {
                    let candidates: HashSet<usize> = reads
                        .iter()
                        .filter_map(|t| graph.producer(t).and_then(|p| owner[p]))
                        .filter(|&g| pointwise_group[g])
                        .collect();
                    let g = (candidates.len() == 1).then(|| *candidates.iter().next().expect("one"))?;
                    let group_reads: HashSet<&String> =
                        groups[g].iter().flat_map(|&m| graph.node(m).inputs.iter()).collect();
                    reads
                        .iter()
                        .all(|t| graph.producer(t).and_then(|p| owner[p]) == Some(g) || group_reads.contains(*t))
                        .then_some(g)
                });
                match joinable.flatten() {
                    Some(g) => {
                        groups[g].push(i);
                        owner[i] = Some(g);
                        g
                    }
                    None => {
                        groups.push(vec![i]);
                        weights_of.push(Vec::new());
                        pointwise_group.push(POINTWISE_OPS.contains(&node.op_type.as_str()));
                        owner[i] = Some(groups.len() - 1);
                        groups.len() - 1
                    }
                }
            }
        };
        if !seen[g] {
            seen[g] = true;
            order.push(g);
        }
    }

    let shape_of = |t: &str| -> Option<Vec<usize>> {
        if let Some(s) = shapes.get(t) {
            return Some(s.clone());
        }
        let mut t = t.to_string();
        for _ in 0..4 {
            if let Some(w) = weights::find(proto, &graph, &t) {
                return Some(weights::dims(w.tensor()));
            }
            let p = graph.producer(&t)?;
            if !matches!(graph.node(p).op_type.as_str(), "DequantizeLinear" | "Cast" | "Identity") {
                return None;
            }
            t = graph.node(p).inputs.first()?.clone();
        }
        None
    };
    let tensor_precision = |t: &str, int8_anchor: bool| -> String {
        let producer = graph.producer(t).map(|p| graph.node(p).op_type.as_str());
        if producer == Some("QuantizeLinear") || int8_anchor {
            "int8".into()
        } else if f16.contains(t) || fp16_elsewhere {
            "fp16".into()
        } else {
            "fp32".into()
        }
    };
    order
        .into_iter()
        .map(|g| {
            let members = &groups[g];
            let inside: HashSet<&str> =
                members.iter().flat_map(|&m| graph.node(m).outputs.iter().map(String::as_str)).collect();
            let anchor_node = members.iter().copied().find(|&m| anchor(m));
            let precision = match anchor_node {
                Some(a) => precisions.get(&a).copied().unwrap_or(Precision::Fp32).as_str().to_string(),
                None => {
                    let last = graph.node(*members.last().expect("groups are not empty"));
                    tensor_precision(last.outputs.first().map(String::as_str).unwrap_or(""), false)
                }
            };
            let mut tokens: Vec<String> = weights_of[g].clone();
            tokens.extend(members.iter().map(|&m| trt_name(proto, m)));
            let name = if anchor_node.is_none() && members.len() > 1 {
                let mut names = members.iter().map(|&m| trt_name(proto, m));
                let first = names.next().expect("several members");
                names.fold(first, |acc, next| format!("PWN({acc}, {next})"))
            } else {
                tokens.join(" + ")
            };
            let macs = anchor_node
                .and_then(|a| layer_macs(graph.node(a), shape_of, |name| attr_i(&proto.node[a], name)))
                .unwrap_or(0);
            let int8_anchor = anchor_node.is_some() && precision == "int8";
            let mut inputs: Vec<TensorMeta> = Vec::new();
            for &m in members {
                for t in graph
                    .node(m)
                    .inputs
                    .iter()
                    .filter(|t| !t.is_empty() && !folded_t.contains(*t) && !inside.contains(t.as_str()))
                {
                    if !inputs.iter().any(|x| x.name == *t) {
                        inputs.push(TensorMeta {
                            name: t.clone(),
                            dims: shape_of(t).unwrap_or_default(),
                            precision: tensor_precision(t, int8_anchor),
                        });
                    }
                }
            }
            let outputs: Vec<TensorMeta> = members
                .iter()
                .flat_map(|&m| graph.node(m).outputs.iter())
                .filter(|t| graph.outputs().contains(t) || live(t).iter().any(|c| owner[*c] != Some(g)))
                .map(|t| {
                    let graph_output = graph.outputs().contains(t);
                    TensorMeta {
                        name: t.clone(),
                        dims: shape_of(t).unwrap_or_default(),
                        precision: if graph_output { "fp32".into() } else { tensor_precision(t, int8_anchor) },
                    }
                })
                .collect();
            let elems = outputs.iter().map(|o| o.dims.iter().product::<usize>() as u64).max().unwrap_or(0);
            let first = graph.node(anchor_node.unwrap_or(members[0]));
            EngineLayer {
                name,
                layer_type: layer_type(&first.op_type).into(),
                precision,
                anchor: anchor_node.map(|a| trt_name(proto, a)),
                macs,
                elems,
                nodes: members.iter().map(|&m| trt_name(proto, m)).collect(),
                inputs,
                outputs,
            }
        })
        .collect()
}

/// Implicit engines reformat a tensor where a layer reads another precision than its producer wrote, and at the
/// network input when the first layer does not run FP32 (sample trt8.x_a100 exportProfile).
fn with_reformats(layers: Vec<EngineLayer>) -> Vec<EngineLayer> {
    let mut precision_of: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(layers.len());
    for l in layers {
        if l.anchor.is_some() {
            let read = l.inputs.first().map(|t| precision_of.get(&t.name).cloned().unwrap_or_else(|| "fp32".into()));
            if let (Some(read), Some(input)) = (read, l.inputs.first())
                && read != l.precision
            {
                let tensor = TensorMeta { precision: l.precision.clone(), ..input.clone() };
                out.push(EngineLayer {
                    name: format!("Reformatting CopyNode for Input Tensor 0 to {}", l.name),
                    layer_type: "Reformat".into(),
                    precision: l.precision.clone(),
                    anchor: None,
                    macs: 0,
                    elems: input.dims.iter().product::<usize>() as u64,
                    nodes: Vec::new(),
                    inputs: vec![TensorMeta { precision: read, ..input.clone() }],
                    outputs: vec![tensor],
                });
            }
        }
        for o in &l.outputs {
            precision_of.insert(o.name.clone(), l.precision.clone());
        }
        out.push(l);
    }
    out
}

const POINTWISE_OPS: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Exp",
    "Log",
    "Abs",
    "Neg",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Softplus",
    "Erf",
    "Max",
    "Min",
];

fn layer_type(op: &str) -> &'static str {
    match op {
        "Conv" => "CaskConvolution",
        "ConvTranspose" => "CaskDeconvolution",
        "MatMul" | "Gemm" => "CaskGemmMatrixMultiply",
        "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" => "CaskPooling",
        "Softmax" => "CaskSoftMaxV2",
        "QuantizeLinear" | "DequantizeLinear" => "Scale",
        "Cast" => "Cast",
        "Reshape" | "Flatten" | "Transpose" | "Squeeze" | "Unsqueeze" => "Shuffle",
        "Concat" => "Concatenation",
        "Slice" | "Split" | "Gather" => "Slice",
        "Resize" | "Upsample" => "Resize",
        "ReduceMean" | "ReduceMax" | "ReduceSum" => "Reduce",
        _ => "PointWiseV2",
    }
}

fn tactic_name(l: &EngineLayer) -> String {
    let kind = match l.layer_type.as_str() {
        "CaskConvolution" | "CaskDeconvolution" => "fprop_implicit_gemm",
        "CaskGemmMatrixMultiply" => "gemm",
        _ => "generic",
    };
    let ty = match l.precision.as_str() {
        "int8" => "i8i8_i8i32_f32",
        "fp16" => "f16f16_f16f16_f16",
        _ => "f32f32_f32f32_f32",
    };
    format!("sm87_xmma_{kind}_{ty}_tilesize64x64x32_stage4")
}

fn format_datatype(precision: &str, dims: &[usize]) -> String {
    match (precision, dims.len() >= 4) {
        ("int8", true) => "Four wide channel vectorized row major Int8 format".into(),
        ("int8", false) => "Row major linear Int8 format".into(),
        ("fp16", true) => "Channel major FP16 format where channel % 8 == 0".into(),
        ("fp16", false) => "Row major linear FP16 format".into(),
        _ => "Row major linear FP32".into(),
    }
}

fn format_of(precision: &str, dims: &[usize]) -> &'static str {
    match (precision, dims.len() >= 4) {
        ("int8", true) => "Four wide channel vectorized row major",
        ("fp16", true) => "Channel major where channel % 8 == 0",
        _ => "Row major linear",
    }
}

fn type_word(precision: &str) -> &'static str {
    match precision {
        "int8" => "Int8",
        "fp16" => "Half",
        "int32" => "Int32",
        "int64" => "Int64",
        _ => "Float",
    }
}

fn output_bindings(model: &Model, shapes: &HashMap<String, Vec<usize>>) -> Vec<Binding> {
    let graph = model.graph_proto();
    graph
        .output
        .iter()
        .map(|v| {
            let elem = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.elem_type);
            let dtype = match elem.and_then(DType::from_onnx_code) {
                Some(d) => dtype_name(d),
                None if elem == Some(F16) => "fp16",
                None => "fp32",
            };
            Binding {
                name: v.name().to_string(),
                dtype: dtype.into(),
                dims: shapes.get(v.name()).cloned().unwrap_or_default(),
                dynamic: false,
            }
        })
        .collect()
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "fp32",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::U8 => "uint8",
    }
}

fn dtype_of(name: &str) -> DType {
    match name {
        "int64" => DType::I64,
        "int32" => DType::I32,
        "uint8" => DType::U8,
        _ => DType::F32,
    }
}

fn element_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 => 4,
        DType::I64 => 8,
        DType::U8 => 1,
    }
}

fn tensor_from_le(dims: Vec<usize>, dtype: DType, bytes: &[u8]) -> Tensor {
    let data = match dtype {
        DType::F32 => {
            TensorData::F32(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        }
        DType::I32 => {
            TensorData::I32(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        }
        DType::I64 => {
            TensorData::I64(bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect())
        }
        DType::U8 => TensorData::U8(bytes.to_vec()),
    };
    Tensor::new(dims, data).expect("size checked against the binding")
}

/// Random inputs as trtexec fills them: floats in [-1, 1], integers in [-128, 127] (§2.3); seeded, so repeatable.
fn random_tensor(dims: Vec<usize>, dtype: DType, rng: &mut SplitMix) -> Tensor {
    let n: usize = dims.iter().product();
    let int = |rng: &mut SplitMix| (rng.uniform() * 256.0).floor() as i64 - 128;
    let data = match dtype {
        DType::F32 => TensorData::F32((0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()),
        DType::I32 => TensorData::I32((0..n).map(|_| int(rng) as i32).collect()),
        DType::I64 => TensorData::I64((0..n).map(|_| int(rng)).collect()),
        DType::U8 => TensorData::U8((0..n).map(|_| (int(rng) + 128) as u8).collect()),
    };
    Tensor::new(dims, data).expect("sized to the dims")
}

fn values_of(t: &Tensor) -> Vec<f64> {
    match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
    }
}

/// `--exportOutput` (§2.6; layout of sample trt7.x exportOutput): names are written as they are, not escaped.
fn export_output_json(bindings: &[Binding], outputs: &[Tensor]) -> String {
    let mut text = String::from("[\n");
    for (i, (b, t)) in bindings.iter().zip(outputs).enumerate() {
        let values: Vec<String> = values_of(t).iter().map(|v| g6(*v)).collect();
        let _ = write!(
            text,
            "{}{{ \"name\" : \"{}\"\n  , \"dimensions\" : \"{}\"\n  , \"values\" : [ {} ]\n  }}\n",
            if i == 0 { "  " } else { ", " },
            b.name,
            dims_text(t.shape()),
            values.join(", ")
        );
    }
    text.push_str("]\n");
    text
}

// ---------------------------------------------------------------------------------------------------------------
// Nominal times

/// Milliseconds per million MACs and per million elements written, per precision: an Orin-class GPU in round
/// numbers (tensor-core INT8 about twice FP16, FP16 about four times FP32).
fn rates(precision: &str) -> (f64, f64) {
    match precision {
        "int8" => (1.0 / 2800.0, 0.010),
        "fp16" => (1.0 / 1400.0, 0.018),
        _ => (1.0 / 350.0, 0.035),
    }
}

fn layer_ms(l: &EngineLayer) -> f64 {
    let (per_mmac, per_melem) = rates(&l.precision);
    let launch = if l.anchor.is_some() { 0.0015 } else { 0.0008 };
    launch + l.macs as f64 / 1e6 * per_mmac + l.elems as f64 / 1e6 * per_melem
}

fn timing_key(l: &EngineLayer) -> String {
    let dims: Vec<String> = l.inputs.iter().map(|t| dims_text(&t.dims)).collect();
    format!("{:016x}", fnv(&format!("{}|{}|{}|{}", l.layer_type, l.precision, dims.join(","), l.macs)))
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64: a seeded, dependency-free source of repeatable jitter.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Query {
    start_enq: f64,
    end_enq: f64,
    start_h2d: f64,
    h2d: f64,
    compute: f64,
    d2h: f64,
}

impl Query {
    fn end_d2h(&self) -> f64 {
        self.start_h2d + self.h2d + self.compute + self.d2h
    }

    fn latency(&self) -> f64 {
        self.h2d + self.compute + self.d2h
    }
}

struct Timing {
    queries: Vec<Query>,
    warmup_queries: usize,
    warmup_ms: f64,
    avg_runs: usize,
    percentiles: Vec<f64>,
}

impl Timing {
    fn walltime_s(&self) -> f64 {
        let first = self.queries.first().map_or(0.0, |q| q.start_enq);
        let last = self.queries.iter().map(Query::end_d2h).fold(first, f64::max);
        (last - first) / 1000.0
    }

    /// `--exportTimes` (§2.6): one object per timed query, in ms from the start.
    fn export_json(&self) -> String {
        let mut text = String::from("[\n");
        for (i, q) in self.queries.iter().enumerate() {
            let end_h2d = q.start_h2d + q.h2d;
            let end_compute = end_h2d + q.compute;
            let _ = writeln!(
                text,
                "{}{{ \"startEnqMs\" : {}, \"endEnqMs\" : {}, \"startH2dMs\" : {}, \"endH2dMs\" : {}, \"startComputeMs\" : {}, \"endComputeMs\" : {}, \"startD2hMs\" : {}, \"endD2hMs\" : {}, \"h2dMs\" : {}, \"computeMs\" : {}, \"d2hMs\" : {}, \"latencyMs\" : {} }}",
                if i == 0 { "  " } else { ", " },
                g6(q.start_enq),
                g6(q.end_enq),
                g6(q.start_h2d),
                g6(end_h2d),
                g6(end_h2d),
                g6(end_compute),
                g6(end_compute),
                g6(q.end_d2h()),
                g6(q.h2d),
                g6(q.compute),
                g6(q.d2h),
                g6(q.latency())
            );
        }
        text.push_str("]\n");
        text
    }
}

/// `min = … ms, max = …, mean, median, percentile(P%) = …` (§2.5); percentiles by rank on ascending values, index
/// N−1−⌊N·(100−P)/100⌋ as trtexec's `findPercentile`.
fn stats_text(mut v: Vec<f64>, percentiles: &[f64]) -> String {
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1);
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    let mean = v.iter().sum::<f64>() / n as f64;
    let median = if n % 2 == 1 { at(n / 2) } else { (at(n / 2 - 1) + at(n / 2)) / 2.0 };
    let mut text = format!(
        "min = {} ms, max = {} ms, mean = {} ms, median = {} ms",
        g6(at(0)),
        g6(at(n - 1)),
        g6(mean),
        g6(median)
    );
    for &p in percentiles {
        let from_top = ((n as f64) * (100.0 - p) / 100.0).floor() as usize;
        let _ = write!(text, ", percentile({}%) = {} ms", g6(p), g6(at(n - 1 - from_top.min(n - 1))));
    }
    text
}

struct ProfileRow {
    name: String,
    time_ms: f64,
    average_ms: f64,
    median_ms: f64,
    percentage: f64,
}

struct Profile {
    count: u64,
    layers: Vec<ProfileRow>,
}

impl Profile {
    /// `--exportProfile` (§2.6): `{ "count" : N }` first, then one object per engine layer.
    fn export_json(&self) -> String {
        let mut text = format!("[\n  {{ \"count\" : {} }}\n", self.count);
        for l in &self.layers {
            let _ = writeln!(
                text,
                ", {{ \"name\" : \"{}\", \"timeMs\" : {}, \"averageMs\" : {}, \"medianMs\" : {}, \"percentage\" : {} }}",
                l.name,
                g6(l.time_ms),
                g6(l.average_ms),
                g6(l.median_ms),
                g6(l.percentage)
            );
        }
        text.push_str("]\n");
        text
    }
}

/// Per-layer times: each layer's nominal time with a small factor fixed by its name (its anchor's, when it has
/// one), so the same layer in two engines keeps its ratio.
fn profile_of(meta: &Meta, count: u64) -> Profile {
    let count = count.max(1);
    let rows: Vec<(String, f64)> = meta
        .layers
        .iter()
        .map(|l| {
            let key = l.anchor.as_deref().unwrap_or(&l.name);
            let factor = 1.0 + 0.01 * ((fnv(key) % 1000) as f64 / 1000.0 - 0.5);
            (l.name.clone(), layer_ms(l) * factor)
        })
        .collect();
    let total: f64 = rows.iter().map(|(_, ms)| ms).sum();
    Profile {
        count,
        layers: rows
            .into_iter()
            .map(|(name, ms)| ProfileRow {
                name,
                time_ms: ms * count as f64,
                average_ms: ms,
                median_ms: ms * 0.998,
                percentage: if total > 0.0 { ms / total * 100.0 } else { 0.0 },
            })
            .collect(),
    }
}
