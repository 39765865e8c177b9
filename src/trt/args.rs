//! trtexec's argument vectors, per TensorRT version, as pure data: no I/O, nothing started.
//!
//! Every choice here follows `../shared/reference/tensorrt.md` (cited by section next to each rule), because
//! trtexec answers a flag its version does not know with `Unknown option` and FAILED (§2.4), and TensorRT is not
//! available where this is written. The supported versions are the ones PRODUCT.md's table names: 8.5 (JetPack
//! 5), 8.6 (JetPack 6.0), 10.x (JetPack 6.1+ and 7) and 11.x. Paths are passed as separate argv words, never
//! through a shell, so nothing is quoted.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Diagnose, Fault};
use crate::precision::plan::LayerFlags;
use crate::trt::parse::TrtVersion;

/// The flag vocabularies that differ between the supported versions (tensorrt.md §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagSet {
    /// 8.5.x (JetPack 5): `--buildOnly`, no `--skipInference`, no `--builderOptimizationLevel`, no
    /// `--stronglyTyped`, memory pool sizes as plain MiB numbers.
    Trt8_5,
    /// 8.6.x (JetPack 6.0): `--skipInference` and `--builderOptimizationLevel` arrive; still no strong typing.
    Trt8_6,
    /// 10.x (JetPack 6.1+, 7): `--stronglyTyped`; weak-typing flags still accepted (deprecated from 10.12).
    Trt10,
    /// 11.x: strongly typed only; every precision flag is gone.
    Trt11,
}

impl FlagSet {
    /// The flag set of `version`, or a refusal for versions whose flags the fact sheet does not cover.
    pub fn of(version: TrtVersion) -> Result<FlagSet, ArgsError> {
        match (version.major, version.minor) {
            (8, 5) => Ok(FlagSet::Trt8_5),
            (8, 6) => Ok(FlagSet::Trt8_6),
            (10, _) => Ok(FlagSet::Trt10),
            (11, _) => Ok(FlagSet::Trt11),
            _ => Err(ArgsError::UnsupportedVersion { version }),
        }
    }

    /// Whether implicit quantization (`--int8 --calib --layerPrecisions`) exists (removed in 11.0, §1.2).
    pub fn has_implicit_quantization(self) -> bool {
        self != FlagSet::Trt11
    }
}

/// How the engine gets its per-layer precisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The strongly typed ONNX (Q/DQ for INT8, Cast + float16 weights for FP16) carries every precision.
    Explicit,
    /// The FP32 ONNX plus a calibration cache, with the plan's precisions forced per layer. The cache must exist:
    /// given a missing `--calib` file, trtexec silently calibrates on one batch of random data (tensorrt.md §2.7).
    Implicit { calib_cache: PathBuf, layer_flags: LayerFlags },
}

/// One engine build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRequest {
    pub onnx: PathBuf,
    pub engine_out: PathBuf,
    pub mode: Mode,
    /// The builder's workspace pool limit; it defaults to all device memory, which on a Jetson (memory shared
    /// with the CPU) invites the OOM killer (tensorrt.md §5.4).
    pub workspace_mib: u64,
    /// 0..=5 (TensorRT's default is 3). Ignored on 8.5, which has no such flag.
    pub optimization_level: Option<u8>,
    pub timing_cache: Option<PathBuf>,
    pub dla_core: Option<u32>,
    /// Where to write the per-layer profile (`--exportProfile`). With it the build also runs inference, which
    /// the profile is measured on; without it inference is skipped.
    pub profile: Option<PathBuf>,
    /// Where to write the engine's layer information (`--exportLayerInfo`), with per-layer precisions.
    pub layer_info: Option<PathBuf>,
    /// Shapes of the inputs with dynamic dimensions, passed as given. Leave it empty for a fully static model:
    /// trtexec then fails with "Static model does not take explicit shapes" (sampleEngines.cpp
    /// `setupNetworkAndConfig`; not in tensorrt.md).
    pub shapes: Vec<(String, Vec<usize>)>,
}

/// One run of a built engine on given inputs, its outputs exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyRequest {
    pub engine: PathBuf,
    /// Every engine input with its raw little-endian file (no header; exactly the binding's size, §2.3). An
    /// input without a file gets random data, so the caller must name all of them.
    pub inputs: Vec<(String, PathBuf)>,
    pub output_json: PathBuf,
    /// The DLA core the engine was built for, if any: the runtime must be pointed at it to load the engine.
    pub dla_core: Option<u32>,
    pub shapes: Vec<(String, Vec<usize>)>,
}

/// A per-layer profile of an engine built earlier (the profile of a fresh build comes from
/// [`BuildRequest::profile`] in the same run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRequest {
    pub engine: PathBuf,
    pub profile_out: PathBuf,
    pub dla_core: Option<u32>,
    pub shapes: Vec<(String, Vec<usize>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(
        "tensorrt {version} is not supported: precisiond drives trtexec 8.5, 8.6, 10.x and 11.x, whose flags it knows"
    )]
    UnsupportedVersion { version: TrtVersion },
    #[error(
        "implicit quantization (--int8 --calib --layerPrecisions) does not exist in tensorrt {version}: 11.0 removed \
         every precision flag"
    )]
    ImplicitRemoved { version: TrtVersion },
    #[error("a workspace of 0 MiB leaves the builder no scratch memory for any tactic")]
    ZeroWorkspace,
    #[error("builder optimization level {level} is out of range: trtexec accepts 0 to 5")]
    OptimizationLevel { level: u8 },
    #[error("{flag}: the path {} is not valid UTF-8, and trtexec's arguments are text", path.display())]
    NonUtf8Path { flag: &'static str, path: PathBuf },
    #[error("{flag}: empty path")]
    EmptyPath { flag: &'static str },
    #[error("{flag}: {text:?} cannot be written in this flag: {why}")]
    Unexpressible { flag: &'static str, text: String, why: &'static str },
}

impl Diagnose for ArgsError {
    fn fault(&self) -> Fault {
        match self {
            // The device's TensorRT, not anything the user gave.
            ArgsError::UnsupportedVersion { .. } => Fault::Environment,
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ArgsError::UnsupportedVersion { .. } => Some(
                "install the TensorRT of a supported JetPack (5.1: 8.5, 6.0: 8.6, 6.1/6.2: 10.3, 7.x: 10.13) or point \
                 precisiond at that trtexec"
                    .into(),
            ),
            ArgsError::ImplicitRemoved { .. } => Some(
                "build in explicit mode: the strongly typed export (Q/DQ + Cast) carries the plan's precisions".into(),
            ),
            ArgsError::ZeroWorkspace => Some("give the workspace in MiB, e.g. 1024".into()),
            ArgsError::NonUtf8Path { .. } | ArgsError::Unexpressible { .. } => {
                Some("rename the file or tensor so that it is plain text without ',' ':' or quotes".into())
            }
            _ => None,
        }
    }
}

/// The arguments of one engine build on `version`.
///
/// Order: model and engine, precision, builder limits, caches, DLA, shapes, exports, then the inference phase.
pub fn build_args(version: TrtVersion, req: &BuildRequest) -> Result<Vec<String>, ArgsError> {
    let set = FlagSet::of(version)?;
    let mut args = vec![path_flag("--onnx", &req.onnx)?, path_flag("--saveEngine", &req.engine_out)?];

    match &req.mode {
        Mode::Explicit => match set {
            // Weak typing builds Q/DQ in INT8 and the Cast-to-float16 layers in FP16 only where these flags
            // allow those kernels (§1.4).
            FlagSet::Trt8_5 | FlagSet::Trt8_6 => args.extend(["--int8".into(), "--fp16".into()]),
            // With --stronglyTyped the tensor types alone decide; trtexec would drop --int8/--fp16 anyway (§1.4).
            FlagSet::Trt10 => args.push("--stronglyTyped".into()),
            // Strong typing is always on, and --stronglyTyped is a deprecated no-op (§1.3).
            FlagSet::Trt11 => {}
        },
        Mode::Implicit { calib_cache, layer_flags } => {
            if !set.has_implicit_quantization() {
                return Err(ArgsError::ImplicitRemoved { version });
            }
            args.extend(["--int8".into(), "--fp16".into(), path_flag("--calib", calib_cache)?]);
            // Without obey, --layerPrecisions/--layerOutputTypes are hints trtexec ignores (§2.2).
            args.push("--precisionConstraints=obey".into());
            // An empty spec is no layer at all; trtexec has nothing to parse, so the flag is left out.
            if !layer_flags.layer_precisions.is_empty() {
                args.push(format!("--layerPrecisions={}", layer_flags.layer_precisions));
            }
            if !layer_flags.layer_output_types.is_empty() {
                args.push(format!("--layerOutputTypes={}", layer_flags.layer_output_types));
            }
        }
    }

    if req.workspace_mib == 0 {
        return Err(ArgsError::ZeroWorkspace);
    }
    args.push(match set {
        // 8.x reads plain MiB numbers and knows no unit suffix (§2.1).
        FlagSet::Trt8_5 | FlagSet::Trt8_6 => format!("--memPoolSize=workspace:{}", req.workspace_mib),
        // 10.x+ also reads a bare number as MiB; the suffix keeps the unit visible in the logged command.
        FlagSet::Trt10 | FlagSet::Trt11 => format!("--memPoolSize=workspace:{}M", req.workspace_mib),
    });

    if let Some(level) = req.optimization_level {
        if level > 5 {
            return Err(ArgsError::OptimizationLevel { level });
        }
        // The flag arrived in 8.6 (§2.1); 8.5 builds at its fixed default rather than failing on an unknown flag
        // for what is only a build-time/speed trade-off.
        if set != FlagSet::Trt8_5 {
            args.push(format!("--builderOptimizationLevel={level}"));
        }
    }

    if let Some(cache) = &req.timing_cache {
        // Loaded if present, merged and saved back after the build, on every supported version (§2.1, §4.5).
        args.push(path_flag("--timingCacheFile", cache)?);
    }

    if let Some(core) = req.dla_core {
        // Layers DLA cannot run would otherwise fail the build instead of running on the GPU (§5.3).
        args.extend([format!("--useDLACore={core}"), "--allowGPUFallback".into()]);
    }

    if let Some(shapes) = shapes_flag(set, &req.shapes)? {
        args.push(shapes);
    }

    if let Some(info) = &req.layer_info {
        // The default layer_names_only verbosity exports names only; the per-layer types need detailed (§2.6).
        args.push("--profilingVerbosity=detailed".into());
        args.push(path_flag("--exportLayerInfo", info)?);
    }

    match &req.profile {
        Some(profile) => {
            args.push(path_flag("--exportProfile", profile)?);
            args.extend(separate_profile_run(set));
        }
        None => args.push(
            match set {
                // 8.5 has no --skipInference; --buildOnly is its name there (§2.1).
                FlagSet::Trt8_5 => "--buildOnly",
                // --buildOnly is a deprecated alias in 8.6 and gone in 10.x (§2.1).
                FlagSet::Trt8_6 | FlagSet::Trt10 | FlagSet::Trt11 => "--skipInference",
            }
            .into(),
        ),
    }
    Ok(args)
}

/// Loading a built engine: the file, the DLA core it was built for, and the shapes of dynamic inputs.
fn load_engine_args(
    set: FlagSet,
    engine: &Path,
    dla_core: Option<u32>,
    shapes: &[(String, Vec<usize>)],
) -> Result<Vec<String>, ArgsError> {
    let mut args = vec![path_flag("--loadEngine", engine)?];
    if let Some(core) = dla_core {
        args.push(format!("--useDLACore={core}"));
    }
    if let Some(shapes) = shapes_flag(set, shapes)? {
        args.push(shapes);
    }
    Ok(args)
}

/// The arguments that run a built engine once on the given inputs and export its outputs.
pub fn verify_args(version: TrtVersion, req: &VerifyRequest) -> Result<Vec<String>, ArgsError> {
    let set = FlagSet::of(version)?;
    let mut args = load_engine_args(set, &req.engine, req.dla_core, &req.shapes)?;
    if !req.inputs.is_empty() {
        let mut items = Vec::with_capacity(req.inputs.len());
        for (name, file) in &req.inputs {
            check_tensor_name("--loadInputs", name, set)?;
            let file_text = utf8("--loadInputs", file)?;
            // The list splits on ',' first and name from file on the last ':' (§2.2, §2.3), so neither may
            // appear in the file's path.
            if file_text.contains([',', ':']) {
                return Err(ArgsError::Unexpressible {
                    flag: "--loadInputs",
                    text: file_text.to_string(),
                    why: "the path contains ',' or ':', which separate the list's items",
                });
            }
            items.push(format!("{name}:{file_text}"));
        }
        args.push(format!("--loadInputs={}", items.join(",")));
    }
    args.push(path_flag("--exportOutput", &req.output_json)?);
    // The inputs are fixed, so one iteration gives the outputs; the defaults (10 iterations, at least 3 s, 200 ms
    // warm-up, §2.1) would only cost time.
    args.extend(["--iterations=1".into(), "--duration=0".into(), "--warmUp=0".into()]);
    if set == FlagSet::Trt11 {
        // 11.x no longer copies inputs and outputs each iteration by default (§2.1); the exported outputs must be
        // the ones this iteration computed.
        args.push("--includeDataTransfers".into());
    }
    Ok(args)
}

/// The arguments that measure a per-layer profile of an engine built earlier.
pub fn profile_args(version: TrtVersion, req: &ProfileRequest) -> Result<Vec<String>, ArgsError> {
    let set = FlagSet::of(version)?;
    let mut args = load_engine_args(set, &req.engine, req.dla_core, &req.shapes)?;
    args.push(path_flag("--exportProfile", &req.profile_out)?);
    args.extend(separate_profile_run(set));
    Ok(args)
}

/// Up to 10.x, profiling in the timed run withholds the performance summary (§2.5); 11.x always profiles in a
/// run of its own, and the flag is a no-op there.
/// A timing run of a built engine: trtexec's default warm-up and duration on random inputs (timing does not depend
/// on the values), whose performance summary gives the latency that the budget is checked against.
pub fn timing_args(
    version: TrtVersion,
    engine: &Path,
    dla_core: Option<u32>,
    shapes: &[(String, Vec<usize>)],
) -> Result<Vec<String>, ArgsError> {
    load_engine_args(FlagSet::of(version)?, engine, dla_core, shapes)
}

fn separate_profile_run(set: FlagSet) -> Option<String> {
    (set != FlagSet::Trt11).then(|| "--separateProfileRun".to_string())
}

/// `--shapes=name:1x3x320x320,…`, or nothing when there are no shapes.
fn shapes_flag(set: FlagSet, shapes: &[(String, Vec<usize>)]) -> Result<Option<String>, ArgsError> {
    if shapes.is_empty() {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(shapes.len());
    for (name, dims) in shapes {
        check_tensor_name("--shapes", name, set)?;
        if dims.is_empty() {
            return Err(ArgsError::Unexpressible {
                flag: "--shapes",
                text: name.clone(),
                why: "a scalar has no dimensions to give",
            });
        }
        let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
        items.push(format!("{name}:{}", dims.join("x")));
    }
    Ok(Some(format!("--shapes={}", items.join(","))))
}

/// Tensor names in `name:value` lists: the list splits on ',' before anything else, a quote must come in pairs
/// around the name, and from 10.x a `*` in a name is a wildcard matching other tensors (§2.1, §2.2). A ':' is
/// fine: name and value split on the last one.
fn check_tensor_name(flag: &'static str, name: &str, set: FlagSet) -> Result<(), ArgsError> {
    let why = if name.is_empty() {
        Some("the name is empty")
    } else if name.contains(',') {
        Some("the name contains ',', which separates the list's items")
    } else if name.contains('\'') {
        Some("the name contains a quote, which trtexec strips")
    } else if name.contains('*') && matches!(set, FlagSet::Trt10 | FlagSet::Trt11) {
        Some("the name contains '*', which this trtexec reads as a wildcard")
    } else {
        None
    };
    match why {
        Some(why) => Err(ArgsError::Unexpressible { flag, text: name.to_string(), why }),
        None => Ok(()),
    }
}

fn path_flag(flag: &'static str, path: &Path) -> Result<String, ArgsError> {
    Ok(format!("{flag}={}", utf8(flag, path)?))
}

fn utf8<'p>(flag: &'static str, path: &'p Path) -> Result<&'p str, ArgsError> {
    match path.to_str() {
        Some("") => Err(ArgsError::EmptyPath { flag }),
        Some(text) => Ok(text),
        None => Err(ArgsError::NonUtf8Path { flag, path: path.to_path_buf() }),
    }
}

impl fmt::Display for FlagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlagSet::Trt8_5 => "8.5",
            FlagSet::Trt8_6 => "8.6",
            FlagSet::Trt10 => "10.x",
            FlagSet::Trt11 => "11.x",
        })
    }
}
