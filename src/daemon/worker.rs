//! One job, start to end, on the worker thread: build and verify into a staging folder of the store, commit,
//! switch `live/<model>`, tell the consumer (hook, Triton), roll back if it objects, prune old versions. Every state
//! change goes to the journal, the shared status and the outbox. Nothing here touches the live area except through
//! `store::Store`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Instant;

use crate::build::{self, Backend, BuildOptions, Stage, Watch};
use crate::daemon::config::{self, Config};
use crate::daemon::journal::{JobRecord, JobState, Journal};
use crate::daemon::state::{JobStatus, Shared};
use crate::device::Fingerprint;
use crate::pipeline::Job;
use crate::report::event::{Event, EventKind};
use crate::report::outbox::Outbox;
use crate::search::Strategy;
use crate::store::{ModelName, Store, Version};

/// Why a running job was asked to stop.
pub const CANCEL_NONE: u8 = 0;
pub const CANCEL_SUPERSEDED: u8 = 1;
pub const CANCEL_SHUTDOWN: u8 = 2;

/// Everything a job needs from the daemon.
pub struct WorkerContext {
    pub config: Config,
    pub store: Arc<Store>,
    pub journal: Arc<Journal>,
    pub outbox: Option<Arc<Outbox>>,
    pub shared: Shared,
    pub fingerprint: Fingerprint,
    pub device_id: String,
    pub runtime: tokio::runtime::Handle,
}

/// How a job ended, for the main loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Live,
    Failed,
    RolledBack,
    Superseded,
    /// Stopped by a shutdown: the journal keeps its stage, and the next start resumes it.
    Interrupted,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Live => "live",
            Ended::Failed => "failed",
            Ended::RolledBack => "rolled_back",
            Ended::Superseded => "superseded",
            Ended::Interrupted => "interrupted",
        }
    }
}

/// A cancel flag with its reason: the build sees the flag, the worker the reason.
#[derive(Default)]
pub struct Cancel {
    pub flag: AtomicBool,
    pub reason: AtomicU8,
}

impl Cancel {
    pub fn raise(&self, reason: u8) {
        self.reason.store(reason, Ordering::SeqCst);
        self.flag.store(true, Ordering::SeqCst);
    }
}

/// Runs one job to its end; the record comes back as the journal last saw it, for the main loop's view.
pub fn run_job(mut record: JobRecord, ctx: &WorkerContext, cancel: &Cancel) -> (Ended, JobRecord) {
    let ended = run_job_in(&mut record, ctx, cancel);
    (ended, record)
}

fn run_job_in(record: &mut JobRecord, ctx: &WorkerContext, cancel: &Cancel) -> Ended {
    let model = match ModelName::new(&record.model) {
        Ok(m) => m,
        Err(e) => return fail(record, ctx, "intake", &e.to_string(), "input"),
    };
    record.attempts += 1;
    ctx.event(EventKind::Started {}, record, None);
    let started = Instant::now();
    let result = build_and_publish(record, &model, ctx, cancel);
    let ended = match result {
        Ok(ended) => ended,
        Err(JobFailure { stage, reason, class }) => {
            if cancel.flag.load(Ordering::SeqCst) {
                match cancel.reason.load(Ordering::SeqCst) {
                    CANCEL_SHUTDOWN => {
                        log(&format!("{}: job {} interrupted by shutdown at {}; it resumes at the next start", record.model, record.id, record.state.as_str()));
                        return Ended::Interrupted;
                    }
                    _ => {
                        record.state = JobState::Superseded;
                        record.failure = Some("a newer bundle arrived".into());
                        ctx.save(record);
                        ctx.event(EventKind::failed(stage, "superseded by a newer bundle", "superseded"), record, None);
                        ctx.finish_status(record, None);
                        return Ended::Superseded;
                    }
                }
            }
            return fail(record, ctx, &stage, &reason, &class);
        }
    };
    log(&format!("{}: job {} {} in {:.1} s", record.model, record.id, ended.as_str(), started.elapsed().as_secs_f64()));
    ended
}

struct JobFailure {
    stage: String,
    reason: String,
    class: String,
}

fn failure(stage: &str, e: &dyn crate::error::Diagnose) -> JobFailure {
    let class = match e.fault() {
        crate::error::Fault::Input => "input",
        crate::error::Fault::Environment => "environment",
    };
    let mut reason = super::intake::error_chain(e);
    if let Some(hint) = e.hint() {
        reason.push_str(&format!(" (hint: {hint})"));
    }
    JobFailure { stage: stage.into(), reason, class: class.into() }
}

fn build_and_publish(record: &mut JobRecord, model: &ModelName, ctx: &WorkerContext, cancel: &Cancel) -> Result<Ended, JobFailure> {
    let job = Job::open(&record.bundle).map_err(|e| failure("intake", &e))?;
    let backend = match ctx.config.backend {
        config::Backend::Cpu => Backend::Cpu,
        config::Backend::Tensorrt => Backend::tensorrt(&ctx.config.trtexec, ctx.config.build_timeout, Some(ctx.timing_cache()))
            .map_err(|e| failure("building", &e))?,
    };
    let options = BuildOptions {
        backend,
        engine_store: Some(ctx.config.state_dir.join("cache/engines")),
        strategy: Strategy::Sensitivity,
        fingerprint: ctx.fingerprint.clone(),
        plan: record.plan.clone(),
        scales: record.scales.clone(),
    };
    let staging = ctx.store.stage(model).map_err(|e| failure("building", &e))?;
    let progress = crate::progress::Silent;
    let record_cell = std::sync::Mutex::new(record.clone());
    let on_stage = |stage: Stage, detail: &str| {
        let mut r = record_cell.lock().unwrap_or_else(|e| e.into_inner());
        let state = match stage {
            Stage::Calibrating => JobState::Calibrating,
            Stage::Searching => JobState::Searching,
            Stage::Building => JobState::Building,
            Stage::Verifying => JobState::Verifying,
        };
        let changed = r.state != state;
        r.state = state;
        r.detail = detail.to_owned();
        ctx.save(&r);
        ctx.running_status(&r);
        if changed {
            ctx.event(EventKind::stage(state.as_str()), &r, None);
        }
        match detail {
            "" => log(&format!("{}: {}", r.model, state.as_str())),
            _ => log(&format!("{}: {} {detail}", r.model, state.as_str())),
        }
    };
    let watch = Watch { progress: &progress, on_stage: &on_stage, cancel: &cancel.flag };
    let build_started = Instant::now();
    let outcome = build::build_bundle(&job, &options, staging.path(), &watch);
    *record = record_cell.into_inner().unwrap_or_else(|e| e.into_inner());
    let outcome = outcome.map_err(|e| failure(record.state.as_str(), &e))?;
    ctx.shared.update(|s| {
        s.counters.builds += outcome.record.builds as u64;
        s.counters.build_seconds += build_started.elapsed().as_secs_f64();
        s.counters.verifications += outcome.record.attempts.len() as u64;
    });
    let v = &outcome.verification;
    let metrics = metric_pairs(&v.metrics);
    ctx.event(EventKind::verified(v.verdict, metrics.iter().map(|(k, v)| (*k, *v)), v.latency_ms), record, None);
    if !v.passed() {
        return Err(JobFailure { stage: "verifying".into(), reason: format!("verification failed: {}", v.reasons.join("; ")), class: "verification".into() });
    }
    if cancel.flag.load(Ordering::SeqCst) {
        return Err(JobFailure { stage: "publishing".into(), reason: "cancelled".into(), class: "cancelled".into() });
    }

    record.state = JobState::Publishing;
    record.detail.clear();
    ctx.save(record);
    ctx.running_status(record);
    let version = ctx.store.commit(staging).map_err(|e| failure("publishing", &e))?;
    record.version = Some(version.get());
    ctx.save(record);
    let switch = ctx.store.switch(model, version).map_err(|e| failure("publishing", &e))?;
    log(&format!("{}: version {} is live (was {})", record.model, version, switch.previous.map_or("none".into(), |p| p.to_string())));
    ctx.event(EventKind::Published {}, record, Some(version));

    if let Err(why) = ctx.notify_consumer(model, version, &cancel.flag) {
        let rolled = match switch.previous {
            Some(_) => ctx.store.rollback(model).map(|s| s.live.to_string()).map_err(|e| e.to_string()),
            None => Err("there is no previous version to roll back to".into()),
        };
        let reason = match &rolled {
            Ok(back) => format!("{why}; rolled back to version {back}"),
            Err(e) => format!("{why}; not rolled back: {e}"),
        };
        log(&format!("{}: {reason}", record.model));
        if let (Some(repo), Ok(_)) = (&ctx.config.publish.triton_repository, &rolled)
            && let Ok((triton, _)) = crate::store::triton::TritonRepository::open(repo)
        {
            let _ = triton.remove(model, version);
        }
        record.state = JobState::RolledBack;
        record.failure = Some(reason.clone());
        ctx.save(record);
        ctx.event(EventKind::rolled_back(reason.clone()), record, Some(version));
        ctx.finish_status(record, Some(reason));
        return Ok(Ended::RolledBack);
    }
    if let Err(e) = ctx.store.prune(model, ctx.config.keep_versions as usize) {
        log(&format!("{}: pruning old versions: {e}", record.model));
    }
    record.state = JobState::Live;
    record.failure = None;
    ctx.save(record);
    ctx.finish_status(record, None);
    Ok(Ended::Live)
}

fn fail(record: &mut JobRecord, ctx: &WorkerContext, stage: &str, reason: &str, class: &str) -> Ended {
    log(&format!("{}: job {} failed at {stage}: {reason}", record.model, record.id));
    record.state = JobState::Failed;
    record.failure = Some(reason.to_owned());
    ctx.save(record);
    ctx.event(EventKind::failed(stage, reason, class), record, None);
    ctx.finish_status(record, Some(reason.to_owned()));
    Ended::Failed
}

fn metric_pairs(m: &crate::simulate::Metrics) -> Vec<(&'static str, f64)> {
    let mut pairs = vec![("cosine", m.cosine), ("sqnr_db", m.sqnr_db), ("max_abs", m.max_abs)];
    if let Some(a) = m.argmax_agreement {
        pairs.push(("argmax_agreement", a));
    }
    if let Some(i) = m.mask_iou {
        pairs.push(("mask_iou", i));
    }
    pairs
}

impl WorkerContext {
    fn timing_cache(&self) -> PathBuf {
        self.config.state_dir.join("cache").join(format!("timing-{}.cache", self.fingerprint.key()))
    }

    fn save(&self, record: &JobRecord) {
        let mut r = record.clone();
        r.updated_at = crate::report::event::rfc3339(std::time::SystemTime::now());
        if let Err(e) = self.journal.write(&r) {
            log(&format!("{}: cannot write the journal: {e}", record.model));
        }
    }

    pub fn event(&self, kind: EventKind, record: &JobRecord, version: Option<Version>) {
        let mut event = Event::new(kind, &self.device_id).model(&record.model);
        if let Some(v) = version.map(|v| v.get()).or(record.version) {
            event = event.version(v.to_string());
        }
        emit(self.outbox.as_deref(), event);
    }

    fn running_status(&self, record: &JobRecord) {
        self.shared.update(|s| {
            let m = s.models.entry(record.model.clone()).or_default();
            m.job = Some(JobStatus {
                id: record.id.clone(),
                state: record.state.as_str().into(),
                detail: record.detail.clone(),
                started_at: record.accepted_at.clone(),
            });
        });
    }

    /// The job is over: no current job, the live version's facts, the failure if any, the outcome counted.
    fn finish_status(&self, record: &JobRecord, failure: Option<String>) {
        let live = ModelName::new(&record.model).ok().and_then(|m| self.store.live(&m).ok().flatten().map(|v| (m, v)));
        let verify = live.as_ref().and_then(|(m, v)| self.store.verify_json(m, *v).ok().flatten());
        self.shared.update(|s| {
            let m = s.models.entry(record.model.clone()).or_default();
            m.job = None;
            m.last_failure = failure;
            if let Some((name, version)) = &live {
                m.set_live(version.get(), self.store.live_path(name), verify.as_ref());
            }
            let outcome = match record.state {
                JobState::Live => "live",
                JobState::RolledBack => "rolled_back",
                JobState::Superseded => "superseded",
                _ => "failed",
            };
            *s.counters.jobs.entry(outcome.into()).or_default() += 1;
        });
    }

    /// Runs the hook and publishes into the Triton repository; the first objection is returned.
    fn notify_consumer(&self, model: &ModelName, version: Version, cancel: &AtomicBool) -> Result<(), String> {
        let version_dir = self.store.version_path(model, version);
        if let Some(repo) = &self.config.publish.triton_repository {
            let (triton, _) = crate::store::triton::TritonRepository::open(repo).map_err(|e| format!("Triton repository: {e}"))?;
            let platform = match self.config.backend {
                config::Backend::Cpu => crate::store::triton::Platform::OnnxRuntimeOnnx,
                config::Backend::Tensorrt => crate::store::triton::Platform::TensorRtPlan,
            };
            triton.publish(model, version, &version_dir, platform).map_err(|e| format!("Triton repository: {e}"))?;
            if let Some(url) = &self.config.publish.triton_url {
                let endpoint = format!("{}/v2/repository/models/{}/load", url.trim_end_matches('/'), model);
                let result = self.runtime.block_on(async {
                    let client = crate::report::http_client(std::time::Duration::from_secs(5), std::time::Duration::from_secs(120))
                        .map_err(|e| e.to_string())?;
                    let response = client.post(&endpoint).send().await.map_err(|e| e.to_string())?;
                    if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status())) }
                });
                result.map_err(|e| format!("Triton load {endpoint}: {e}"))?;
            }
        }
        if let Some(hook) = &self.config.publish.hook {
            let logs = self.config.state_dir.join("logs");
            let _ = std::fs::create_dir_all(&logs);
            let log_path = logs.join(format!("{model}-{version}-hook.log"));
            let live = self.store.live_path(model);
            let envs = [
                ("PRECISIOND_MODEL", model.to_string()),
                ("PRECISIOND_VERSION", version.to_string()),
                ("PRECISIOND_LIVE", live.display().to_string()),
                ("PRECISIOND_VERSION_DIR", version_dir.display().to_string()),
            ];
            let outcome = crate::trt::run::run_hook(hook, &envs, &log_path, self.config.publish.hook_timeout, cancel)
                .map_err(|e| format!("hook `{hook}`: {e}"))?;
            if !outcome.succeeded() {
                return Err(format!("hook `{hook}` {} (log: {})", outcome.end, log_path.display()));
            }
        }
        Ok(())
    }
}

/// Appends to the outbox; a failure to record an event is logged, never fatal to the job.
pub fn emit(outbox: Option<&Outbox>, event: Event) {
    if let Some(outbox) = outbox
        && let Err(e) = outbox.append(&event)
    {
        log(&format!("cannot record event {} ({}): {e}", event.id, event.kind.name()));
    }
}

pub fn log(line: &str) {
    eprintln!("precisiond: {line}");
}

/// The bundle copy a version was built from, as its build.json says.
pub fn bundle_of_version(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join("build.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["bundle"].as_str().map(PathBuf::from)
}
