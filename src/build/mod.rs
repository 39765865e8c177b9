//! A whole build job on one bundle: scales, plan (fixed, or searched on CPU with the device's measured per-layer
//! profiles), the engine (from the engine store when an identical one exists), verification against FP32 on the
//! evaluation samples, and fallback when the real engine misses a budget the simulation met. The command line
//! (`build`, `verify`) and the daemon both call [`build_bundle`] and [`verify_dir`].
//!
//! Builds per job: with the tensorrt backend and `mode = "search"`, two profiling builds (all-FP16, all-INT8) and
//! the final one, so 3 when the final engine passes; each fallback adds one, at most [`MAX_FALLBACKS`]. A profile
//! build whose plan is the final plan is the final build (the engine store hands it back).

pub mod backend;
pub mod engines;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::calib::ScalesFile;
use crate::device::Fingerprint;
use crate::error::{Diagnose, Fault};
use crate::model::ModelError;
use crate::pipeline::{Job, PipelineError};
use crate::precision::plan::PlanSummary;
use crate::precision::{Plan, PlanError, Precision};
use crate::progress::Progress;
use crate::search::report::SearchReport;
use crate::search::Strategy;
use crate::simulate::{Metrics, SimulateError, Simulator};
use crate::spec::Mode as SpecMode;

pub use backend::Backend;
use backend::{BuildInputs, Built};
use engines::{EngineKey, EngineStore, KeyParts, Miss, sha256_hex};
use verify::{Judged, Verification};

/// A profiling build's per-layer profile, in its work folder and in the engine store.
pub const PROFILE_FILE: &str = "profile.json";

/// Fallback rebuilds after the first final engine misses a budget the simulation met.
pub const MAX_FALLBACKS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Simulate(#[from] SimulateError),
    #[error(transparent)]
    Export(#[from] crate::precision::export::ExportError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Args(#[from] crate::trt::args::ArgsError),
    #[error(transparent)]
    Run(#[from] crate::trt::run::RunError),
    #[error(transparent)]
    Memory(#[from] crate::device::memory::NotEnoughMemory),
    #[error("trtexec passed but wrote no engine (log: {})", log.display())]
    NoEngine { log: PathBuf },
    #[error("cannot read trtexec's export")]
    Output {
        #[source]
        source: crate::trt::parse::ParseError,
    },
    #[error("{}: no output `{output}` (the engine gave: {})", file.display(), found.join(", "))]
    MissingOutput { file: PathBuf, output: String, found: Vec<String> },
    #[error("{}: {detail}", path.display())]
    Cache { path: PathBuf, detail: String },
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no plan meets the accuracy budget in simulation ({misses}); nothing was built")]
    NoPlan { misses: String },
    #[error("{}: {detail}", path.display())]
    BuildRecord { path: PathBuf, detail: String },
    #[error("cancelled")]
    Cancelled,
}

impl Diagnose for BuildError {
    fn fault(&self) -> Fault {
        match self {
            BuildError::Pipeline(e) => e.fault(),
            BuildError::Simulate(e) => e.fault(),
            BuildError::Export(e) => e.fault(),
            BuildError::Model(e) => e.fault(),
            BuildError::Plan(e) => e.fault(),
            BuildError::Exec(e) => e.fault(),
            BuildError::Args(e) => e.fault(),
            BuildError::Run(e) => e.fault(),
            BuildError::Memory(e) => e.fault(),
            BuildError::NoPlan { .. } | BuildError::BuildRecord { .. } => Fault::Input,
            _ => Fault::Environment,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Pipeline(e) => e.hint(),
            BuildError::Simulate(e) => e.hint(),
            BuildError::Export(e) => e.hint(),
            BuildError::Model(e) => e.hint(),
            BuildError::Plan(e) => e.hint(),
            BuildError::Exec(e) => e.hint(),
            BuildError::Args(e) => e.hint(),
            BuildError::Run(e) => e.hint(),
            BuildError::Memory(e) => e.hint(),
            BuildError::NoPlan { .. } => {
                Some("loosen the budget, add calibration data, or keep more layers in FP16 (`keep`)".into())
            }
            BuildError::MissingOutput { .. } => Some("the engine was not built from this bundle's model".into()),
            _ => None,
        }
    }
}

/// How to build.
pub struct BuildOptions {
    pub backend: Backend,
    /// The engine store's root; `None` builds every engine afresh.
    pub engine_store: Option<PathBuf>,
    /// The search strategy when the spec says `mode = "search"`.
    pub strategy: Strategy,
    /// The device, as the engine key and the memory guard see it.
    pub fingerprint: Fingerprint,
    /// A plan chosen elsewhere (a live version's, after a firmware update): no search.
    pub plan: Option<PathBuf>,
    /// Scales computed elsewhere: no calibration.
    pub scales: Option<PathBuf>,
}

/// The job's stages, for whoever shows or journals them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Calibrating,
    Searching,
    Building,
    Verifying,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Calibrating => "calibrating",
            Stage::Searching => "searching",
            Stage::Building => "building",
            Stage::Verifying => "verifying",
        }
    }
}

/// Who watches the job: progress bars, stage changes (`building (2/3)`), and a flag that cancels it.
pub struct Watch<'a> {
    pub progress: &'a dyn Progress,
    pub on_stage: &'a (dyn Fn(Stage, &str) + Sync),
    pub cancel: &'a AtomicBool,
}

/// One final engine tried: its plan and what verification said.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    pub plan: PlanSummary,
    /// Layers moved from INT8 to FP16 before this attempt.
    pub fell_back: Vec<String>,
    pub verdict: verify::Verdict,
    pub reasons: Vec<String>,
    /// Whether the engine came from the engine store.
    pub reused: bool,
}

/// `build.json`: what a build folder holds and how it came to be; `verify DIR` starts from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BuildRecord {
    pub bundle: PathBuf,
    pub bundle_manifest_sha256: String,
    pub backend: String,
    pub trtexec: Option<PathBuf>,
    pub tensorrt_version: Option<String>,
    pub engine: String,
    pub engine_key: String,
    pub device_key: String,
    /// Engine builds this job ran (profiles included); engines taken from the store are not builds.
    pub builds: usize,
    pub profile_builds: usize,
    pub reused_engines: usize,
    pub attempts: Vec<Attempt>,
    pub search: Option<SearchSummary>,
    pub workspace_mib: Option<u64>,
    pub dla_core: Option<u32>,
    pub wall_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchSummary {
    pub strategy: String,
    pub evaluations: usize,
    pub probes: usize,
    pub budget_met: bool,
    pub predicted_latency_ms: f64,
    pub latency_source: String,
}

pub struct BuildOutcome {
    pub record: BuildRecord,
    pub verification: Verification,
    pub plan: Plan,
}

/// Builds, verifies and (within [`MAX_FALLBACKS`]) repairs the engine for `job`, writing the build folder `out`
/// (created; it should be empty): the engine, `plan.toml`, `scales.json`, `calib.cache`, `verify.json`,
/// `build.log`, `fingerprint.json`, `build.json`, and `report.json`/`report.svg` after a search. A verification
/// that fails is an outcome (see `verification.verdict`), not an error: the folder is written either way.
pub fn build_bundle(job: &Job, options: &BuildOptions, out: &Path, watch: &Watch) -> Result<BuildOutcome, BuildError> {
    let started = Instant::now();
    let spec = job.spec();
    options.backend.check(spec.build.quantization)?;
    create_dir(out)?;
    let work = out.join(".work");
    create_dir(&work)?;
    let mut log = BuildLog::default();

    (watch.on_stage)(Stage::Calibrating, "");
    let scales = job.scales(options.scales.as_deref(), watch.progress)?;
    check_cancel(watch)?;
    let simulator = job.simulator(scales.clone())?;
    let model_sha = sha256_hex(&std::fs::read(job.model.path()).map_err(|source| BuildError::Io {
        path: job.model.path().to_owned(),
        what: "cannot read the model",
        source,
    })?);
    let scales_json = scales.to_json().map_err(|e| BuildError::Cache { path: out.join("scales.json"), detail: e.to_string() })?;
    let inputs = build_inputs(job, &scales, &options.fingerprint);
    let ctx = Context { job, options, inputs: &inputs, model_sha: &model_sha, scales_json: &scales_json, work: &work, watch };
    let mut counts = Counts::default();
    let inspection = job.inspection();

    // The plan: fixed, or searched (with the device's measured profiles when the backend can give them).
    let mut search_report = None;
    let fixed = options.plan.is_some() || spec.precision.mode == SpecMode::Fixed || spec.precision.plan.is_some();
    let mut plan = if fixed {
        job.plan(options.plan.as_deref())?
    } else {
        let (mut latency, macs) = job.latency_model(inspection.as_ref());
        if matches!(options.backend, Backend::TensorRt(_)) {
            let graph = job.model.graph();
            let mut profiles = Vec::new();
            for (label, precision) in [("all-FP16", Precision::Fp16), ("all-INT8", Precision::Int8)] {
                (watch.on_stage)(Stage::Building, &format!("profile {label}"));
                let (built, _) = ctx.engine(&Plan::uniform(&graph, precision), true, &mut counts, &mut log, label)?;
                let profile = built.and_then(|b| b.profile).ok_or_else(|| BuildError::Output {
                    source: crate::trt::parse::ParseError::Io {
                        path: work.join(label),
                        source: std::io::Error::other("the profiling build exported no profile"),
                    },
                })?;
                profiles.push(profile);
            }
            latency = crate::pipeline::with_profiles(latency, ("all-FP16 profile", &profiles[0]), ("all-INT8 profile", &profiles[1]), &macs)?;
        }
        (watch.on_stage)(Stage::Searching, options.strategy.as_str());
        let input = job.search_input(&simulator, latency, macs);
        let outcome = crate::search::search(&input, options.strategy, watch.progress)?;
        check_cancel(watch)?;
        if !outcome.report.budget_met {
            write_search_report(out, &outcome.report)?;
            return Err(BuildError::NoPlan { misses: outcome.report.misses.join(", ") });
        }
        search_report = Some(outcome.report);
        outcome.plan
    };

    // Build, verify, fall back.
    let simulated = simulator.evaluate(&plan, &crate::progress::Silent)?.metrics;
    let simulation_met = simulator.bounds().is_met(&simulated);
    let mut ranking: Option<Vec<String>> = None;
    let mut attempts = Vec::new();
    let mut fell_back = Vec::new();
    let (verification, engine, key) = loop {
        let attempt = attempts.len();
        let label = if attempt == 0 { "final".to_owned() } else { format!("fallback {attempt}") };
        (watch.on_stage)(Stage::Building, &label);
        let (built, key) = ctx.engine(&plan, false, &mut counts, &mut log, &label)?;
        let engine = built.map(|b| b.engine).expect("a non-profile build returns its engine");
        (watch.on_stage)(Stage::Verifying, &label);
        let simulated = if attempt == 0 { simulated.clone() } else { simulator.evaluate(&plan, &crate::progress::Silent)?.metrics };
        let verification = ctx.verify(&simulator, &engine, Some(simulated), &work.join(format!("verify-{attempt}")))?;
        attempts.push(Attempt {
            plan: job.plan_summary(&plan, inspection.as_ref()),
            fell_back: std::mem::take(&mut fell_back),
            verdict: verification.verdict,
            reasons: verification.reasons.clone(),
            reused: counts.last_reused,
        });
        if verification.passed() || !simulation_met || verification.missed_only_latency() || attempt == MAX_FALLBACKS {
            break (verification, engine, key);
        }
        let order = match &ranking {
            Some(order) => order,
            None => ranking.insert(sensitivity_ranking(&simulator, &plan, search_report.as_ref(), watch.progress)?),
        };
        let moved = next_fallback(&plan, order, &job.constraints().fixed);
        if moved.is_empty() {
            break (verification, engine, key);
        }
        for layer in &moved {
            plan = plan.with(layer, Precision::Fp16);
        }
        log.note(&format!("fallback: {} missed ({}); moving {} to FP16", label, verification.reasons.join(", "), moved.join(", ")));
        fell_back = moved;
    };

    // The build folder.
    let engine_name = options.backend.engine_file();
    engines::copy_synced(&engine, &out.join(engine_name)).map_err(|source| BuildError::Io {
        path: out.join(engine_name),
        what: "cannot write the engine",
        source,
    })?;
    plan.save(&out.join("plan.toml"))?;
    write_file(&out.join("scales.json"), scales_json.as_bytes())?;
    let cache_version = options.backend.tensorrt_version().unwrap_or(crate::trt::parse::TrtVersion { major: 10, minor: 3, patch: 0, build: None });
    backend::write_calibration_cache(&scales, cache_version, &out.join("calib.cache"))?;
    write_file(&out.join("verify.json"), verification.to_json().as_bytes())?;
    write_file(&out.join("fingerprint.json"), (serde_json::to_string_pretty(&options.fingerprint).expect("plain data") + "\n").as_bytes())?;
    write_file(&out.join("build.log"), log.text.as_bytes())?;
    if let Some(report) = &search_report {
        write_search_report(out, report)?;
    }
    let record = BuildRecord {
        bundle: std::path::absolute(job.bundle.dir()).unwrap_or_else(|_| job.bundle.dir().to_owned()),
        bundle_manifest_sha256: job.bundle.manifest_sha256().to_owned(),
        backend: options.backend.name().into(),
        trtexec: match &options.backend {
            Backend::TensorRt(t) => Some(t.trtexec.clone()),
            Backend::Cpu => None,
        },
        tensorrt_version: options.backend.tensorrt_version().map(|v| v.to_string()),
        engine: engine_name.into(),
        engine_key: key.digest(),
        device_key: options.fingerprint.key(),
        builds: counts.builds,
        profile_builds: counts.profile_builds,
        reused_engines: counts.reused,
        attempts,
        search: search_report.as_ref().map(|r| SearchSummary {
            strategy: r.strategy.clone(),
            evaluations: r.evaluations,
            probes: r.probes,
            budget_met: r.budget_met,
            predicted_latency_ms: r.predicted_latency_ms,
            latency_source: r.latency_source.clone(),
        }),
        workspace_mib: counts.workspace_mib,
        dla_core: spec.build.dla_core,
        wall_s: started.elapsed().as_secs_f64(),
    };
    write_file(&out.join("build.json"), (serde_json::to_string_pretty(&record).expect("plain data") + "\n").as_bytes())?;
    let _ = std::fs::remove_dir_all(&work);
    engines::sync_dir(out).map_err(|source| BuildError::Io { path: out.to_owned(), what: "cannot sync", source })?;
    Ok(BuildOutcome { record, verification, plan })
}

/// Verifies the engine of a build folder again, against the bundle it records (or `bundle`); writes nothing.
pub fn verify_dir(dir: &Path, bundle: Option<&Path>, trtexec: Option<&Path>, timeout: Duration, watch: &Watch) -> Result<(BuildRecord, Verification), BuildError> {
    let record_path = dir.join("build.json");
    let text = std::fs::read_to_string(&record_path).map_err(|source| BuildError::Io {
        path: record_path.clone(),
        what: "cannot read the build record (is this a folder written by `precisiond build`?)",
        source,
    })?;
    let record: BuildRecord = serde_json::from_str(&text).map_err(|e| BuildError::BuildRecord { path: record_path.clone(), detail: e.to_string() })?;
    let job = Job::open(bundle.unwrap_or(&record.bundle))?;
    let scales = ScalesFile::read(&dir.join("scales.json")).map_err(PipelineError::from)?;
    let plan = Plan::load(&dir.join("plan.toml"), &job.model.graph())?;
    let backend = match record.backend.as_str() {
        "cpu" => Backend::Cpu,
        _ => {
            let path = trtexec.map(Path::to_owned).or_else(|| record.trtexec.clone()).ok_or_else(|| BuildError::BuildRecord {
                path: record_path.clone(),
                detail: "a tensorrt build without a trtexec path".into(),
            })?;
            Backend::tensorrt(&path, timeout, None)?
        }
    };
    let fingerprint = crate::device::fingerprint_with(backend.tensorrt_version().as_ref());
    let simulator = job.simulator(scales.clone())?;
    let options = BuildOptions { backend, engine_store: None, strategy: Strategy::Sensitivity, fingerprint, plan: None, scales: None };
    let inputs = build_inputs(&job, &scales, &options.fingerprint);
    let work = tempfile_dir(dir)?;
    let ctx = Context { job: &job, options: &options, inputs: &inputs, model_sha: "", scales_json: "", work: &work, watch };
    (watch.on_stage)(Stage::Verifying, "");
    let simulated = simulator.evaluate(&plan, &crate::progress::Silent)?.metrics;
    let result = ctx.verify(&simulator, &dir.join(&record.engine), Some(simulated), &work);
    let _ = std::fs::remove_dir_all(&work);
    Ok((record, result?))
}

struct Context<'a> {
    job: &'a Job,
    options: &'a BuildOptions,
    inputs: &'a BuildInputs<'a>,
    model_sha: &'a str,
    scales_json: &'a str,
    work: &'a Path,
    watch: &'a Watch<'a>,
}

#[derive(Default)]
struct Counts {
    builds: usize,
    profile_builds: usize,
    reused: usize,
    last_reused: bool,
    workspace_mib: Option<u64>,
}

impl Context<'_> {
    fn key(&self, plan: &Plan) -> EngineKey {
        let spec = self.job.spec();
        let (backend, device) = match &self.options.backend {
            Backend::Cpu => ("cpu".to_owned(), "any".to_owned()),
            Backend::TensorRt(t) => (format!("tensorrt {}", t.version), self.options.fingerprint.key()),
        };
        let mut options = vec![("quantization".to_owned(), format!("{:?}", spec.build.quantization).to_lowercase())];
        if matches!(self.options.backend, Backend::TensorRt(_)) {
            options.push(("workspace_mib".into(), spec.build.workspace_mib.to_string()));
            options.push(("optimization_level".into(), spec.build.optimization_level.to_string()));
            options.push(("dla_core".into(), spec.build.dla_core.map_or("none".into(), |c| c.to_string())));
        }
        for (name, dims) in &self.inputs.shapes {
            options.push((format!("shape {name}"), crate::tensor::shape_string(dims)));
        }
        EngineKey::new(&KeyParts {
            backend,
            model_sha256: self.model_sha,
            plan_toml: &plan.to_toml(),
            scales_json: self.scales_json,
            options,
            device,
        })
    }

    /// The engine for `plan`: from the store when it holds one (unless a profile is needed), else built. Returns
    /// the build (None when a stored engine serves a profile-less request… never for profiles) and the key.
    fn engine(
        &self,
        plan: &Plan,
        profile: bool,
        counts: &mut Counts,
        log: &mut BuildLog,
        label: &str,
    ) -> Result<(Option<Built>, EngineKey), BuildError> {
        check_cancel(self.watch)?;
        let key = self.key(plan);
        let store = self.options.engine_store.as_ref().map(EngineStore::new);
        let tensorrt = self.options.backend.tensorrt_version();
        let file_name = self.options.backend.engine_file();
        if let Some(store) = &store {
            let extras: &[&str] = if profile { &[PROFILE_FILE] } else { &[] };
            match store.lookup_with(&key, file_name, extras, tensorrt.as_ref()) {
                Ok(engine) => {
                    let profile = match profile {
                        true => Some(read_profile(&engine.with_file_name(PROFILE_FILE))?),
                        false => None,
                    };
                    log.note(&format!("{label}: engine {} reused from the engine store", key.digest()));
                    counts.reused += 1;
                    counts.last_reused = true;
                    return Ok((Some(Built { engine, log: PathBuf::new(), profile, workspace_mib: 0, free_mib: None }), key));
                }
                Err(Miss::Stale(why)) => log.note(&format!("{label}: stored engine {} not reused: {why}", key.digest())),
                Err(Miss::Absent) => {}
            }
        }
        let work = self.work.join(format!("build-{}", counts.builds + counts.reused));
        let built = self.options.backend.build(plan, self.inputs, &work, profile, self.watch.cancel);
        counts.builds += 1;
        counts.profile_builds += usize::from(profile);
        counts.last_reused = false;
        let built = match built {
            Ok(built) => built,
            Err(e) => {
                log.append_file(label, &work.join("build.log"));
                return Err(e);
            }
        };
        log.append_file(label, &built.log);
        match built.free_mib {
            Some(free) => log.note(&format!("{label}: memory guard: {free} MiB free, workspace {} MiB", built.workspace_mib)),
            None if built.workspace_mib > 0 => log.note(&format!("{label}: memory guard: free memory not measurable (no GPU facts); workspace {} MiB as asked", built.workspace_mib)),
            None => {}
        }
        if built.workspace_mib > 0 {
            counts.workspace_mib = Some(built.workspace_mib);
        }
        let profile_file = work.join(PROFILE_FILE);
        let mut extras = vec![("build.log", built.log.as_path())];
        if built.profile.is_some() {
            extras.push((PROFILE_FILE, profile_file.as_path()));
        }
        if let Some(store) = &store
            && let Err(e) = store.insert(&key, &built.engine, file_name, &extras)
        {
            log.note(&format!("{label}: could not keep the engine in the store {}: {e}", store.root().display()));
        }
        Ok((Some(built), key))
    }

    fn verify(&self, simulator: &Simulator, engine: &Path, simulated: Option<Metrics>, work: &Path) -> Result<Verification, BuildError> {
        check_cancel(self.watch)?;
        let (candidates, latency) = self.options.backend.run(
            engine,
            simulator.eval_samples(),
            simulator.output_names(),
            self.inputs,
            work,
            self.watch.cancel,
        )?;
        Ok(verify::judge(Judged {
            references: simulator.references(),
            candidates: &candidates,
            output_names: simulator.output_names(),
            bounds: simulator.bounds(),
            latency_budget_ms: self.job.spec().budget.latency_ms,
            latency_ms: latency,
            backend: self.options.backend.name().into(),
            tensorrt_version: self.options.backend.tensorrt_version().map(|v| v.to_string()),
            simulated,
        }))
    }
}

fn build_inputs<'a>(job: &'a Job, scales: &'a ScalesFile, fingerprint: &'a Fingerprint) -> BuildInputs<'a> {
    let spec = job.spec();
    BuildInputs {
        model: &job.model,
        scales,
        quantization: spec.build.quantization,
        workspace_mib: spec.build.workspace_mib,
        optimization_level: spec.build.optimization_level,
        dla_core: spec.build.dla_core,
        dynamic_shapes: job
            .inputs
            .iter()
            .filter(|(decl, _)| decl.dims.iter().any(Option::is_none))
            .map(|(decl, shape)| (decl.name.clone(), shape.clone()))
            .collect(),
        shapes: job.shapes(),
        fingerprint,
    }
}

/// INT8 layers of `plan`, most sensitive first: from the search's probes when it made them, else probed now (each
/// layer alone in INT8 over FP16, on a few samples).
fn sensitivity_ranking(
    simulator: &Simulator,
    plan: &Plan,
    report: Option<&SearchReport>,
    progress: &dyn Progress,
) -> Result<Vec<String>, BuildError> {
    let int8: Vec<String> = plan.layers().iter().filter(|(_, p)| *p == Precision::Int8).map(|(n, _)| n.clone()).collect();
    let measured: Vec<(String, f64)> = match report {
        Some(r) if r.layers.iter().any(|l| l.sensitivity.is_some()) => r
            .layers
            .iter()
            .filter(|l| int8.contains(&l.name))
            .map(|l| (l.name.clone(), l.sensitivity.unwrap_or(0.0)))
            .collect(),
        _ => {
            let mut base = plan.clone();
            for layer in &int8 {
                base = base.with(layer, Precision::Fp16);
            }
            crate::search::sensitivity::probe_layers(simulator, &base, &int8, 4, progress)?
        }
    };
    let mut ranked = measured;
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(ranked.into_iter().map(|(n, _)| n).collect())
}

/// The next layers to move to FP16: the most sensitive quarter (at least one) of the INT8 layers still in `plan`,
/// never one the spec fixes (`[precision.layers]` wins over everything).
fn next_fallback(plan: &Plan, ranking: &[String], fixed: &std::collections::HashMap<String, Precision>) -> Vec<String> {
    let still_int8: Vec<&String> =
        ranking.iter().filter(|n| plan.get(n) == Some(Precision::Int8) && !fixed.contains_key(*n)).collect();
    let count = still_int8.len().div_ceil(4).max(1).min(still_int8.len());
    still_int8.into_iter().take(count).cloned().collect()
}

fn read_profile(path: &Path) -> Result<crate::trt::parse::ProfileExport, BuildError> {
    let text = crate::trt::parse::read_text(path).map_err(|source| BuildError::Output { source })?;
    crate::trt::parse::parse_export_profile(&text, &path.display().to_string()).map_err(|source| BuildError::Output { source })
}

fn check_cancel(watch: &Watch) -> Result<(), BuildError> {
    if watch.cancel.load(Ordering::Relaxed) { Err(BuildError::Cancelled) } else { Ok(()) }
}

/// The job's `build.log`: every trtexec run's whole output, each under a header, and precisiond's own notes.
#[derive(Default)]
struct BuildLog {
    text: String,
}

impl BuildLog {
    fn note(&mut self, line: &str) {
        self.text.push_str("precisiond: ");
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn append_file(&mut self, label: &str, path: &Path) {
        self.text.push_str(&format!("==== {label}: {} ====\n", path.display()));
        match std::fs::read(path) {
            Ok(bytes) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(e) => self.text.push_str(&format!("(no log: {e})\n")),
        }
        if !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }
}

fn write_search_report(out: &Path, report: &SearchReport) -> Result<(), BuildError> {
    write_file(&out.join("report.json"), (serde_json::to_string_pretty(report).expect("plain data") + "\n").as_bytes())?;
    write_file(&out.join("report.svg"), crate::search::svg::render_svg(report).as_bytes())?;
    write_file(&out.join("report.html"), crate::search::svg::render_html(report).as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    crate::model::write_atomically(path, bytes).map_err(|source| BuildError::Io { path: path.to_owned(), what: "cannot write", source })
}

fn create_dir(dir: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(|source| BuildError::Io { path: dir.to_owned(), what: "cannot create the folder", source })
}

/// A scratch folder for `verify DIR` that leaves DIR itself untouched.
fn tempfile_dir(dir: &Path) -> Result<PathBuf, BuildError> {
    let path = std::env::temp_dir().join(format!("precisiond-verify-{}-{}", std::process::id(), dir.file_name().and_then(|n| n.to_str()).unwrap_or("x")));
    let _ = std::fs::remove_dir_all(&path);
    create_dir(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_takes_the_most_sensitive_quarter_still_in_int8() {
        let plan = Plan::from_layers((0..8).map(|i| (format!("l{i}"), Precision::Int8)).collect());
        let ranking: Vec<String> = (0..8).rev().map(|i| format!("l{i}")).collect();
        let free = std::collections::HashMap::new();
        assert_eq!(next_fallback(&plan, &ranking, &free), vec!["l7", "l6"]);
        let plan = plan.with("l7", Precision::Fp16).with("l6", Precision::Fp16);
        assert_eq!(next_fallback(&plan, &ranking, &free), vec!["l5", "l4"]);
        let fixed = std::collections::HashMap::from([("l5".to_string(), Precision::Int8)]);
        assert_eq!(next_fallback(&plan, &ranking, &fixed), vec!["l4", "l3"]);
        let single = Plan::from_layers(vec![("a".into(), Precision::Int8)]);
        assert_eq!(next_fallback(&single, &["a".to_string()], &free), vec!["a"]);
        let none = single.with("a", Precision::Fp16);
        assert!(next_fallback(&none, &["a".to_string()], &free).is_empty());
    }
}
