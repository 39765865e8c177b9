//! The two backends: what "build an engine for this plan" and "run the engine on these inputs" mean for each.
//!
//! - `cpu`: the engine is the plan baked into the model (`precision::export`), run by the CPU executor. This is the
//!   real end-to-end path on machines without TensorRT.
//! - `tensorrt`: trtexec builds the engine (explicit: the strongly typed export; implicit: the FP32 model, a
//!   calibration cache and per-layer flags), runs it on raw binary inputs with `--exportOutput`, times it, and
//!   profiles it. Every process goes through `trt::run`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::calib::ScalesFile;
use crate::calib::cache::{Algorithm, CacheHeader, TrtVersion as CacheVersion};
use crate::device::{self, Fingerprint};
use crate::exec::Executor;
use crate::model::Model;
use crate::precision::export::{Flavor, export};
use crate::precision::Plan;
use crate::spec::Quantization;
use crate::tensor::{Tensor, TensorData};
use crate::trt::args::{self, BuildRequest, Mode, VerifyRequest};
use crate::trt::parse::{self, ProfileExport, TrtVersion};
use crate::trt::run::{RunOutcome, detect_trtexec_version, run_trtexec};

use super::BuildError;
use super::verify::LatencyMs;

/// How long `trtexec --help` may take to print its banner.
const VERSION_TIMEOUT: Duration = Duration::from_secs(60);

/// The cpu backend's engine: the exported model, run by the executor.
pub const CPU_ENGINE: &str = "model.onnx";
/// The tensorrt backend's engine.
pub const TRT_ENGINE: &str = "engine.plan";

pub enum Backend {
    Cpu,
    TensorRt(TensorRt),
}

pub struct TensorRt {
    pub trtexec: PathBuf,
    pub version: TrtVersion,
    pub timeout: Duration,
    pub timing_cache: Option<PathBuf>,
}

/// What the builder needs besides the plan: the model, its scales, the spec's builder settings.
pub struct BuildInputs<'a> {
    pub model: &'a Model,
    pub scales: &'a ScalesFile,
    pub quantization: Quantization,
    pub workspace_mib: u64,
    pub optimization_level: u8,
    pub dla_core: Option<u32>,
    /// Inputs with a dynamic dimension and the shape to build for (trtexec refuses shapes for static models).
    pub dynamic_shapes: Vec<(String, Vec<usize>)>,
    /// Every input's shape, for the executor.
    pub shapes: Vec<(String, Vec<usize>)>,
    pub fingerprint: &'a Fingerprint,
}

/// One engine built into a work folder.
pub struct Built {
    pub engine: PathBuf,
    pub log: PathBuf,
    /// The per-layer profile, when one was asked for.
    pub profile: Option<ProfileExport>,
    /// The workspace the build ran with (the memory guard may shrink it).
    pub workspace_mib: u64,
    /// The free memory the memory guard measured before the build, in MiB (None: nothing to measure).
    pub free_mib: Option<u64>,
}

impl Backend {
    /// The tensorrt backend behind `trtexec`, its version read from the banner.
    pub fn tensorrt(trtexec: &Path, timeout: Duration, timing_cache: Option<PathBuf>) -> Result<Backend, BuildError> {
        let version = detect_trtexec_version(trtexec, VERSION_TIMEOUT)?;
        args::FlagSet::of(version)?;
        Ok(Backend::TensorRt(TensorRt { trtexec: trtexec.to_owned(), version, timeout, timing_cache }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::TensorRt(_) => "tensorrt",
        }
    }

    pub fn engine_file(&self) -> &'static str {
        match self {
            Backend::Cpu => CPU_ENGINE,
            Backend::TensorRt(_) => TRT_ENGINE,
        }
    }

    pub fn tensorrt_version(&self) -> Option<TrtVersion> {
        match self {
            Backend::Cpu => None,
            Backend::TensorRt(t) => Some(t.version),
        }
    }

    /// Refuses what this backend cannot build before anything runs (implicit mode on TensorRT 11).
    pub fn check(&self, quantization: Quantization) -> Result<(), BuildError> {
        if let (Backend::TensorRt(t), Quantization::Implicit) = (self, quantization)
            && !args::FlagSet::of(t.version)?.has_implicit_quantization()
        {
            return Err(args::ArgsError::ImplicitRemoved { version: t.version }.into());
        }
        Ok(())
    }

    /// Builds `plan` into `work` (a folder of its own per build); `profile` asks for a per-layer profile too.
    pub fn build(
        &self,
        plan: &Plan,
        inputs: &BuildInputs,
        work: &Path,
        profile: bool,
        cancel: &AtomicBool,
    ) -> Result<Built, BuildError> {
        create_dir(work)?;
        match self {
            Backend::Cpu => {
                let proto = export(inputs.model, plan, inputs.scales, Flavor::Deploy)?;
                let engine = work.join(CPU_ENGINE);
                let model = Model::from_proto(proto, &engine)?;
                // Compiling it is the cpu backend's build: a model the executor cannot run fails here.
                Executor::new(&model, &inputs.shapes)?;
                model.save(&engine)?;
                let log = work.join("build.log");
                write(&log, format!("cpu backend: exported {} ({} int8, {} fp16, {} fp32 layers) and compiled it\n",
                    engine.display(),
                    plan.count(crate::precision::Precision::Int8),
                    plan.count(crate::precision::Precision::Fp16),
                    plan.count(crate::precision::Precision::Fp32)).as_bytes())?;
                Ok(Built { engine, log, profile: None, workspace_mib: 0, free_mib: None })
            }
            Backend::TensorRt(t) => t.build(plan, inputs, work, profile, cancel),
        }
    }

    /// The engine's outputs on every sample, in the order of `output_names`, and its latency when measured.
    pub fn run(
        &self,
        engine: &Path,
        samples: &[Vec<Tensor>],
        output_names: &[String],
        inputs: &BuildInputs,
        work: &Path,
        cancel: &AtomicBool,
    ) -> Result<(Vec<Vec<Tensor>>, Option<LatencyMs>), BuildError> {
        match self {
            Backend::Cpu => {
                let model = Model::load(engine)?;
                let executor = Executor::new(&model, &inputs.shapes)?;
                let outputs = crate::simulate::run_all(&executor, samples, &crate::progress::Silent)?;
                Ok((outputs, None))
            }
            Backend::TensorRt(t) => t.run(engine, samples, output_names, inputs, work, cancel),
        }
    }
}

impl TensorRt {
    fn build(
        &self,
        plan: &Plan,
        inputs: &BuildInputs,
        work: &Path,
        profile: bool,
        cancel: &AtomicBool,
    ) -> Result<Built, BuildError> {
        let mode = match inputs.quantization {
            Quantization::Explicit => {
                let onnx = work.join("model.onnx");
                let proto = export(inputs.model, plan, inputs.scales, Flavor::Deploy)?;
                Model::from_proto(proto, &onnx)?.save(&onnx)?;
                (onnx, Mode::Explicit)
            }
            Quantization::Implicit => {
                let cache = work.join("calib.cache");
                write_calibration_cache(inputs.scales, self.version, &cache)?;
                let layer_flags = plan.trtexec_layer_flags()?;
                // The FP32 model with every node carrying the name the flags use: TensorRT names an unnamed node
                // itself, and --layerPrecisions would silently miss it.
                let onnx = work.join("model.onnx");
                let fp32 = Plan::uniform(&inputs.model.graph(), crate::precision::Precision::Fp32);
                Model::from_proto(export(inputs.model, &fp32, inputs.scales, Flavor::Deploy)?, &onnx)?.save(&onnx)?;
                (onnx, Mode::Implicit { calib_cache: cache, layer_flags })
            }
        };
        let (workspace_mib, free_mib) = guard_memory(inputs.fingerprint, inputs.workspace_mib)?;
        let engine = work.join(TRT_ENGINE);
        let profile_path = profile.then(|| work.join(super::PROFILE_FILE));
        let request = BuildRequest {
            onnx: mode.0,
            engine_out: engine.clone(),
            mode: mode.1,
            workspace_mib,
            optimization_level: Some(inputs.optimization_level),
            timing_cache: self.timing_cache.clone(),
            dla_core: inputs.dla_core,
            profile: profile_path.clone(),
            layer_info: None,
            shapes: inputs.dynamic_shapes.clone(),
        };
        let argv = args::build_args(self.version, &request)?;
        let log = work.join("build.log");
        let outcome = self.run_trtexec(&argv, &log, cancel)?;
        if !engine.is_file() {
            return Err(BuildError::NoEngine { log: outcome.log_path });
        }
        let profile = profile_path.map(|path| super::read_profile(&path)).transpose()?;
        Ok(Built { engine, log, profile, workspace_mib, free_mib })
    }

    fn run(
        &self,
        engine: &Path,
        samples: &[Vec<Tensor>],
        output_names: &[String],
        inputs: &BuildInputs,
        work: &Path,
        cancel: &AtomicBool,
    ) -> Result<(Vec<Vec<Tensor>>, Option<LatencyMs>), BuildError> {
        create_dir(work)?;
        let mut outputs = Vec::with_capacity(samples.len());
        for (index, sample) in samples.iter().enumerate() {
            let mut files = Vec::with_capacity(sample.len());
            for ((name, _), tensor) in inputs.shapes.iter().zip(sample) {
                let file = work.join(format!("sample{index}.{}.bin", sanitize(name)));
                write(&file, &raw_bytes(tensor))?;
                files.push((name.clone(), file));
            }
            let output_json = work.join(format!("sample{index}.outputs.json"));
            let request = VerifyRequest {
                engine: engine.to_owned(),
                inputs: files,
                output_json: output_json.clone(),
                dla_core: inputs.dla_core,
                shapes: inputs.dynamic_shapes.clone(),
            };
            let argv = args::verify_args(self.version, &request)?;
            self.run_trtexec(&argv, &work.join(format!("sample{index}.log")), cancel)?;
            let text = parse::read_text(&output_json).map_err(|source| BuildError::Output { source })?;
            let exported = parse::parse_export_output(&text, &output_json.display().to_string())
                .map_err(|source| BuildError::Output { source })?;
            outputs.push(to_tensors(&exported, output_names, &output_json)?);
        }
        let argv = args::timing_args(self.version, engine, inputs.dla_core, &inputs.dynamic_shapes)?;
        let timing = self.run_trtexec(&argv, &work.join("timing.log"), cancel)?;
        Ok((outputs, latency_of(&timing)))
    }

    fn run_trtexec(&self, argv: &[String], log: &Path, cancel: &AtomicBool) -> Result<RunOutcome, BuildError> {
        Ok(run_trtexec(&self.trtexec, argv, log, self.timeout, cancel)?.into_result()?)
    }
}

/// The GPU compute time's median and 99th percentile from a run's performance summary (the latency budget is on
/// GPU compute time: PRODUCT.md). Older summaries without a 99 % line give their maximum.
pub fn latency_of(outcome: &RunOutcome) -> Option<LatencyMs> {
    let stats = outcome.log.perf.as_ref()?.gpu_compute.as_ref()?;
    let median = stats.median.or(stats.mean)?;
    let p99 = stats.percentile(99.0).or(stats.max).unwrap_or(median);
    Some(LatencyMs { median, p99 })
}

/// The builder's workspace after the memory guard: the spec's when it fits, shrunk when it does not, refused when
/// not even the minimum fits. Without a measurement (no GPU facts) the spec's workspace goes as asked.
fn guard_memory(fingerprint: &Fingerprint, requested_mib: u64) -> Result<(u64, Option<u64>), BuildError> {
    match device::memory::free_for_build(fingerprint, 0) {
        Some(free) => Ok((device::memory::workspace_mib(requested_mib, free)?, Some(free / (1024 * 1024)))),
        None => Ok((requested_mib, None)),
    }
}

pub fn write_calibration_cache(scales: &ScalesFile, version: TrtVersion, path: &Path) -> Result<(), BuildError> {
    let header = CacheHeader::new(CacheVersion::new(version.major, version.minor, version.patch), Algorithm::EntropyCalibration2);
    let cache = scales.to_calibration_cache(header).map_err(|e| BuildError::Cache { path: path.to_owned(), detail: e.to_string() })?;
    cache.write(path).map_err(|e| BuildError::Cache { path: path.to_owned(), detail: e.to_string() })
}

/// A tensor as trtexec's `--loadInputs` reads it: the raw little-endian values, no header (tensorrt.md §2.3).
pub fn raw_bytes(tensor: &Tensor) -> Vec<u8> {
    match tensor.data() {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U8(v) => v.clone(),
    }
}

fn to_tensors(exported: &[parse::OutputTensor], names: &[String], file: &Path) -> Result<Vec<Tensor>, BuildError> {
    names
        .iter()
        .map(|name| {
            let found = exported.iter().find(|t| &t.name == name).ok_or_else(|| BuildError::MissingOutput {
                file: file.to_owned(),
                output: name.clone(),
                found: exported.iter().map(|t| t.name.clone()).collect(),
            })?;
            let dims = found.dims().unwrap_or_else(|| vec![found.values.len()]);
            let values: Vec<f32> = found.values.iter().map(|&v| v as f32).collect();
            Tensor::from_f32(dims, values).map_err(|e| BuildError::MissingOutput {
                file: file.to_owned(),
                output: format!("{name} ({e})"),
                found: Vec::new(),
            })
        })
        .collect()
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn create_dir(dir: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(|source| BuildError::Io { path: dir.to_owned(), what: "cannot create the folder", source })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    std::fs::write(path, bytes).map_err(|source| BuildError::Io { path: path.to_owned(), what: "cannot write", source })
}
