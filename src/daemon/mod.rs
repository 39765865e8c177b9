//! The daemon (`precisiond run`): watches the inbox, runs one job at a time, publishes and reports.
//!
//! One event loop (a single-threaded tokio runtime) owns the queue and reacts to: inotify events on the inbox
//! (debounced by its own timer, so an idle daemon never wakes up), a job ending (from the worker thread), signals
//! (SIGHUP reload, SIGTERM/SIGINT stop) and, only when systemd asks for it, the watchdog tick. Jobs run on a plain
//! thread (`worker`): builds are CPU- and GPU-bound and must not stall the loop. The status endpoint and the
//! upstream sender are tasks on the same runtime.
//!
//! - `config`: the configuration file; `journal`: job records that survive a crash; `intake`: which inbox folders
//!   are complete bundles; `worker`: one job from build to publish; `state`: what `/status` shows; `status`: the
//!   HTTP endpoint.

pub mod config;
pub mod intake;
pub mod journal;
pub mod state;
pub mod status;
pub mod worker;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::daemon::config::Config;
use crate::daemon::intake::Intake;
use crate::daemon::journal::{JobReason, JobRecord, JobState, Journal};
use crate::daemon::state::{DaemonStatus, Shared};
use crate::daemon::worker::{CANCEL_SHUTDOWN, CANCEL_SUPERSEDED, Cancel, Ended, WorkerContext, emit, log};
use crate::device::Fingerprint;
use crate::error::{Diagnose, Fault};
use crate::report::event::{Event, EventKind, new_id, rfc3339};
use crate::report::outbox::Outbox;
use crate::store::{ModelName, Store};

/// How long a running job gets to stop after SIGTERM before the daemon exits anyway (systemd's stop timeout is
/// longer; a build's processes are killed as a group by then).
const STOP_GRACE: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Outbox(#[from] crate::report::outbox::OutboxError),
    #[error("cannot watch the inbox {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot listen on {addr} for the status endpoint")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the upstream sender")]
    Sender(#[source] crate::report::sender::SenderError),
}

impl Diagnose for DaemonError {
    fn fault(&self) -> Fault {
        match self {
            DaemonError::Store(e) => e.fault(),
            _ => Fault::Environment,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            DaemonError::Store(e) => e.hint(),
            DaemonError::Listen { .. } => Some("another process uses the address: change [status] listen, or set it to \"off\"".into()),
            DaemonError::Watch { .. } => Some("check that the inbox exists and that fs.inotify.max_user_watches is not exhausted".into()),
            _ => None,
        }
    }
}

enum Message {
    Fs(notify::Result<notify::Event>),
    JobDone { record: Box<JobRecord>, ended: Ended },
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|source| DaemonError::Io {
        path: PathBuf::from("."),
        what: "cannot start the async runtime",
        source,
    })?;
    runtime.block_on(Daemon::start(config)?.serve())
}

struct Running {
    id: String,
    model: String,
    cancel: Arc<Cancel>,
    thread: std::thread::JoinHandle<()>,
}

struct Daemon {
    config: Config,
    store: Arc<Store>,
    journal: Arc<Journal>,
    outbox: Option<Arc<Outbox>>,
    shared: Shared,
    fingerprint: Fingerprint,
    device_id: String,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    watcher: Option<notify::RecommendedWatcher>,
    queue: VecDeque<JobRecord>,
    running: Option<Running>,
    /// The newest job per model, from the journal and since.
    latest: BTreeMap<String, JobRecord>,
    /// Refusals already reported: model folder → manifest checksum.
    refused: BTreeMap<String, Option<String>>,
    /// Inbox folders changed since the last look, and whether to look at all of them.
    dirty: HashSet<String>,
    rescan: bool,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// When the counters started.
    started: SystemTime,
}

impl Daemon {
    fn start(mut config: Config) -> Result<Daemon, DaemonError> {
        // Absolute paths: inotify reports them so, and build records name the bundle copies by them.
        for (dir, what) in [(&mut config.inbox, "cannot create the inbox"), (&mut config.state_dir, "cannot create the state folder")] {
            std::fs::create_dir_all(&*dir).map_err(|source| DaemonError::Io { path: dir.clone(), what, source })?;
            *dir = std::fs::canonicalize(&*dir).map_err(|source| DaemonError::Io { path: dir.clone(), what, source })?;
        }
        let (store, recovery) = Store::open(&config.state_dir)?;
        for item in &recovery.items {
            log(&format!("recovery: {item}"));
        }
        let journal = Journal::open(&config.state_dir).map_err(|source| DaemonError::Io {
            path: config.state_dir.join("journal"),
            what: "cannot open the journal",
            source,
        })?;
        let outbox = Outbox::open(config.state_dir.join("outbox"), config.upstream.outbox_max_mib * 1024 * 1024)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let fingerprint = device_fingerprint(&config);
        let shared = Shared::new(DaemonStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: rfc3339(SystemTime::now()),
            backend: config.backend.name().into(),
            device: Some(fingerprint.clone()),
            state: "starting".into(),
            ..DaemonStatus::default()
        });
        Ok(Daemon {
            device_id: device_id(),
            store: Arc::new(store),
            journal: Arc::new(journal),
            outbox: Some(Arc::new(outbox)),
            shared,
            fingerprint,
            tx,
            rx,
            watcher: None,
            queue: VecDeque::new(),
            running: None,
            latest: BTreeMap::new(),
            refused: BTreeMap::new(),
            dirty: HashSet::new(),
            rescan: true,
            shutdown,
            started: SystemTime::now(),
            config,
        })
    }

    async fn serve(mut self) -> Result<(), DaemonError> {
        for warning in &self.config.warnings {
            log(&format!("config: {}", warning.render(self.config.source.as_deref().unwrap_or(Path::new("(defaults)")))));
        }
        self.start_status_endpoint().await?;
        self.start_sender()?;
        self.watch_inbox()?;
        let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;

        self.event(EventKind::daemon_started(), None);
        self.refresh_live_models();
        self.resume_from_journal();
        self.check_firmware();
        self.scan_inbox();
        self.start_next_job();
        self.shared.update(|s| s.state = "ready".into());
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        self.tell_systemd_status();
        log(&format!(
            "ready: inbox {}, state {}, backend {}, device {}",
            self.config.inbox.display(),
            self.config.state_dir.display(),
            self.config.backend,
            self.fingerprint.key()
        ));

        // Only when systemd asked for a watchdog: half its interval, as sd_watchdog_enabled(3) advises.
        let mut watchdog = sd_notify::watchdog_enabled().map(|usec| tokio::time::interval(usec / 2));
        let mut debounce: Option<tokio::time::Instant> = None;
        loop {
            let deadline = debounce;
            tokio::select! {
                message = self.rx.recv() => match message {
                    Some(Message::Fs(event)) => {
                        self.note_fs_event(event);
                        debounce = Some(tokio::time::Instant::now() + self.config.debounce);
                    }
                    Some(Message::JobDone { record, ended }) => self.job_done(*record, ended),
                    None => break,
                },
                _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                    debounce = None;
                    self.scan_inbox();
                }
                _ = hup.recv() => self.reload(),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = async { watchdog.as_mut().expect("guarded").tick().await }, if watchdog.is_some() => {
                    notify_systemd(&[sd_notify::NotifyState::Watchdog]);
                }
            }
            self.start_next_job();
            self.tell_systemd_status();
        }
        self.stop().await;
        Ok(())
    }

    async fn start_status_endpoint(&mut self) -> Result<(), DaemonError> {
        let Some(addr) = self.config.status.listen else { return Ok(()) };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?;
        let mut stop = self.shutdown.subscribe();
        let shared = self.shared.clone();
        tokio::spawn(status::serve(listener, shared, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        Ok(())
    }

    fn start_sender(&mut self) -> Result<(), DaemonError> {
        let (Some(url), Some(outbox)) = (&self.config.upstream.url, &self.outbox) else { return Ok(()) };
        let mut sender_config = crate::report::sender::SenderConfig::new(url.clone());
        if let Some(token) = &self.config.upstream.token_file {
            sender_config = sender_config.token_file(token.clone());
        }
        let sender = crate::report::sender::Sender::new(outbox.clone(), sender_config).map_err(DaemonError::Sender)?;
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(sender.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        Ok(())
    }

    fn watch_inbox(&mut self) -> Result<(), DaemonError> {
        use notify::Watcher;
        let tx = self.tx.clone();
        let path = self.config.inbox.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(Message::Fs(event));
        })
        .map_err(|source| DaemonError::Watch { path: path.clone(), source })?;
        // The folder, recursively: bundles are sub-folders whose files are copied in after the folder appears.
        watcher.watch(&path, notify::RecursiveMode::Recursive).map_err(|source| DaemonError::Watch { path, source })?;
        self.watcher = Some(watcher);
        Ok(())
    }

    fn note_fs_event(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                log(&format!("inbox watch: {e}; rescanning"));
                self.rescan = true;
                return;
            }
        };
        if event.need_rescan() {
            self.rescan = true;
        }
        for path in &event.paths {
            if let Ok(relative) = path.strip_prefix(&self.config.inbox)
                && let Some(first) = relative.components().next()
            {
                self.dirty.insert(first.as_os_str().to_string_lossy().into_owned());
            }
        }
    }

    /// Looks at the inbox folders that changed (all of them after start, reload or an overflow).
    fn scan_inbox(&mut self) {
        let names: Vec<String> = if std::mem::take(&mut self.rescan) {
            self.dirty.clear();
            match std::fs::read_dir(&self.config.inbox) {
                Ok(entries) => entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
                Err(e) => {
                    log(&format!("cannot read the inbox {}: {e}", self.config.inbox.display()));
                    return;
                }
            }
        } else {
            self.dirty.drain().collect()
        };
        let mut names = names;
        names.sort();
        for name in names {
            if name.starts_with('.') {
                continue;
            }
            let dir = self.config.inbox.join(&name);
            if dir.is_dir() {
                self.consider(&name, &dir);
            }
        }
    }

    fn consider(&mut self, name: &str, dir: &Path) {
        match intake::examine(dir, &self.config) {
            Intake::NotReady(_) => {}
            Intake::Refused { model, sha256, reason } => {
                if self.refused.get(name) == Some(&sha256) {
                    return;
                }
                self.refused.insert(name.to_owned(), sha256);
                log(&format!("{name}: bundle refused: {reason}"));
                let mut event = Event::new(EventKind::bundle_refused(reason), &self.device_id);
                event = event.model(model.map_or(name.to_owned(), |m| m.to_string()));
                emit(self.outbox.as_deref(), event);
                self.shared.update(|s| s.counters.bundles_refused += 1);
            }
            Intake::Ready { model, sha256 } => {
                self.refused.remove(name);
                if self.latest.get(model.as_str()).is_some_and(|r| r.bundle_sha256 == sha256) {
                    return;
                }
                let snapshot = match intake::snapshot(dir, &self.config.state_dir, &model, &sha256) {
                    Ok(snapshot) => snapshot,
                    Err(e) => {
                        log(&format!("{model}: cannot take the bundle in: {e}"));
                        return;
                    }
                };
                let record = self.new_record(&model, JobReason::Bundle, &sha256, snapshot, None, None);
                self.event(EventKind::Accepted {}, Some(&record));
                log(&format!("{model}: bundle {} accepted as job {}", &sha256[..12], record.id));
                self.enqueue(record);
            }
        }
    }

    fn new_record(
        &self,
        model: &ModelName,
        reason: JobReason,
        sha256: &str,
        bundle: PathBuf,
        plan: Option<PathBuf>,
        scales: Option<PathBuf>,
    ) -> JobRecord {
        let now = rfc3339(SystemTime::now());
        JobRecord {
            id: new_id(),
            model: model.to_string(),
            reason,
            bundle_sha256: sha256.to_owned(),
            bundle,
            plan,
            scales,
            state: JobState::Queued,
            detail: String::new(),
            version: None,
            failure: None,
            attempts: 0,
            accepted_at: now.clone(),
            updated_at: now,
        }
    }

    /// Queues `record`, superseding whatever is queued or running for the same model.
    fn enqueue(&mut self, record: JobRecord) {
        let model = record.model.clone();
        let superseded: Vec<JobRecord> = self.queue.iter().filter(|j| j.model == model).cloned().collect();
        self.queue.retain(|j| j.model != model);
        for mut old in superseded {
            old.state = JobState::Superseded;
            old.failure = Some(format!("superseded by job {}", record.id));
            let _ = self.journal.write(&old);
        }
        if let Some(running) = &self.running
            && running.model == model
        {
            log(&format!("{model}: cancelling job {} for the newer job {}", running.id, record.id));
            running.cancel.raise(CANCEL_SUPERSEDED);
        }
        if let Err(e) = self.journal.write(&record) {
            log(&format!("{model}: cannot write the journal: {e}"));
        }
        self.shared.update(|s| {
            s.models.entry(model.clone()).or_default().job = Some(state::JobStatus {
                id: record.id.clone(),
                state: "queued".into(),
                detail: String::new(),
                started_at: record.accepted_at.clone(),
            });
        });
        self.latest.insert(model, record.clone());
        self.queue.push_back(record);
    }

    fn start_next_job(&mut self) {
        if self.running.is_some() || *self.shutdown.borrow() {
            return;
        }
        let Some(record) = self.queue.pop_front() else { return };
        let cancel = Arc::new(Cancel::default());
        let ctx = WorkerContext {
            config: self.config.clone(),
            store: self.store.clone(),
            journal: self.journal.clone(),
            outbox: self.outbox.clone(),
            shared: self.shared.clone(),
            fingerprint: self.fingerprint.clone(),
            device_id: self.device_id.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let tx = self.tx.clone();
        let (id, model) = (record.id.clone(), record.model.clone());
        let job_cancel = cancel.clone();
        let thread = std::thread::Builder::new().name(format!("job-{model}")).spawn(move || {
            let (ended, record) = worker::run_job(record, &ctx, &job_cancel);
            let _ = tx.send(Message::JobDone { record: Box::new(record), ended });
        });
        match thread {
            Ok(thread) => self.running = Some(Running { id, model, cancel, thread }),
            Err(e) => log(&format!("{model}: cannot start the job thread: {e}")),
        }
    }

    fn job_done(&mut self, record: JobRecord, ended: Ended) {
        if let Some(running) = self.running.take_if(|r| r.id == record.id) {
            let _ = running.thread.join();
        }
        let model = record.model.clone();
        if let Some(latest) = self.latest.get_mut(&model)
            && latest.id == record.id
        {
            *latest = record;
        }
        if matches!(ended, Ended::Live | Ended::RolledBack) {
            let keep: Vec<PathBuf> = self.live_bundles(&model);
            intake::prune_snapshots(&self.config.state_dir, &model, &keep);
        }
        let _ = self.journal.prune(8);
        self.export_metrics();
        // A job's buffers (models, samples, tract plans) are freed but glibc keeps the pages; an idle daemon on an
        // 8 GB Jetson shares memory with the application, so give them back.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// `[upstream] otlp_url`: the counters and live accuracy as OTLP/HTTP JSON, once per finished job (nothing is
    /// sent while nothing happens). A failed export is logged; the next job's export carries the totals again.
    fn export_metrics(&self) {
        let Some(url) = self.config.upstream.otlp_url.clone() else { return };
        use crate::report::otlp::{MetricPoint, encode_with_resource, send};
        let snapshot = self.shared.snapshot();
        let started = self.started;
        let mut points = vec![
            MetricPoint::counter("precisiond.engine_builds", snapshot.counters.builds, started),
            MetricPoint::counter("precisiond.firmware_rebuilds", snapshot.counters.firmware_rebuilds, started),
            MetricPoint::int_gauge("precisiond.outbox_depth", snapshot.outbox.depth as i64),
        ];
        for (outcome, n) in &snapshot.counters.jobs {
            points.push(MetricPoint::counter("precisiond.jobs", *n, started).attr("outcome", outcome.clone()));
        }
        for (model, m) in &snapshot.models {
            if let Some(cosine) = m.metrics.as_ref().and_then(|v| v["cosine"].as_f64()) {
                points.push(MetricPoint::gauge("precisiond.live_cosine", cosine).attr("model", model.clone()));
            }
            if let Some(version) = m.live_version {
                points.push(MetricPoint::int_gauge("precisiond.live_version", version as i64).attr("model", model.clone()));
            }
        }
        let body = encode_with_resource(&[("service.name", "precisiond"), ("host.id", &self.device_id)], &points);
        let token = self.config.upstream.token_file.as_deref().and_then(|p| crate::report::read_token(p).ok());
        tokio::spawn(async move {
            let client = match crate::report::http_client(Duration::from_secs(5), Duration::from_secs(30)) {
                Ok(client) => client,
                Err(e) => return log(&format!("OTLP export: {e}")),
            };
            if let Err(e) = send(&client, &url, token.as_deref(), &body).await {
                log(&format!("OTLP export to {url}: {e}"));
            }
        });
    }

    /// The bundle copies still needed for `model`: the live and previous versions', and queued jobs'.
    fn live_bundles(&self, model: &str) -> Vec<PathBuf> {
        let mut keep: Vec<PathBuf> = self.queue.iter().filter(|j| j.model == model).map(|j| j.bundle.clone()).collect();
        if let Ok(name) = ModelName::new(model) {
            for version in [self.store.live(&name).ok().flatten(), self.store.previous(&name).ok().flatten()].into_iter().flatten() {
                if let Some(bundle) = worker::bundle_of_version(&self.store.version_path(&name, version)) {
                    keep.push(bundle);
                }
            }
        }
        keep
    }

    /// Jobs the journal says were not finished (the daemon was stopped or killed): queued again, oldest first.
    fn resume_from_journal(&mut self) {
        let (records, problems) = match self.journal.load() {
            Ok(loaded) => loaded,
            Err(e) => {
                log(&format!("cannot read the journal: {e}"));
                return;
            }
        };
        for p in problems {
            log(&format!("journal: ignoring {p}"));
        }
        for (model, record) in journal::latest_per_model(&records) {
            if !record.state.is_terminal() {
                log(&format!("{model}: resuming job {} (stopped at {})", record.id, record.state.as_str()));
                let mut resumed = record.clone();
                resumed.state = JobState::Queued;
                resumed.detail = String::new();
                self.queue.push_back(resumed.clone());
                let _ = self.journal.write(&resumed);
                self.latest.insert(model, resumed);
            } else {
                self.latest.insert(model, record);
            }
        }
    }

    /// Live engines built for another device fingerprint (a JetPack, TensorRT or driver update): rebuilt with their
    /// stored plan and scales, then verified and published like any job.
    fn check_firmware(&mut self) {
        let current = self.fingerprint.key();
        let Ok(models) = self.store.models() else { return };
        for model in models {
            let Ok(Some(version)) = self.store.live(&model) else { continue };
            let built_for: Option<Fingerprint> =
                self.store.fingerprint_json(&model, version).ok().flatten().and_then(|v| serde_json::from_value(v).ok());
            let Some(built_for) = built_for else { continue };
            if built_for.key() == current {
                continue;
            }
            if self.queue.iter().any(|j| j.model == model.as_str()) {
                continue;
            }
            let dir = self.store.version_path(&model, version);
            let Some(bundle) = worker::bundle_of_version(&dir).filter(|b| b.join("bundle.toml").exists()) else {
                log(&format!("{model}: built for {} but the device is now {current}; its bundle is gone, so it cannot be rebuilt", built_for.key()));
                continue;
            };
            let changes = self.fingerprint.changes_from(&built_for);
            log(&format!("{model}: version {version} was built for another device ({}); rebuilding", changes.join(", ")));
            let sha = std::fs::read(bundle.join("bundle.toml")).map(|b| crate::build::engines::sha256_hex(&b)).unwrap_or_default();
            let record = self.new_record(&model, JobReason::Firmware, &sha, bundle, Some(dir.join("plan.toml")), Some(dir.join("scales.json")));
            self.event(EventKind::firmware_changed(built_for.key(), current.clone()), Some(&record));
            self.shared.update(|s| s.counters.firmware_rebuilds += 1);
            self.enqueue(record);
        }
    }

    /// The live version of every model, for `/status`.
    fn refresh_live_models(&mut self) {
        let Ok(models) = self.store.models() else { return };
        let mut entries = Vec::new();
        for model in models {
            let Ok(Some(version)) = self.store.live(&model) else { continue };
            let verify = self.store.verify_json(&model, version).ok().flatten();
            entries.push((model.to_string(), version.get(), self.store.live_path(&model), verify));
        }
        self.shared.update(|s| {
            for (name, version, path, verify) in entries {
                s.models.entry(name).or_default().set_live(version, path, verify.as_ref());
            }
        });
    }

    /// SIGHUP: read the configuration again (a bad one is refused and the old one kept), then look at the device
    /// and the inbox again.
    fn reload(&mut self) {
        notify_systemd(&[sd_notify::NotifyState::Reloading]);
        self.shared.update(|s| s.state = "reloading".into());
        if let Some(path) = self.config.source.clone() {
            match Config::load(&path) {
                Ok(config) => {
                    let inbox_moved = config.inbox != self.config.inbox;
                    self.config = config;
                    if inbox_moved && let Err(e) = std::fs::create_dir_all(&self.config.inbox).map_err(|e| e.to_string()).and_then(|_| self.watch_inbox().map_err(|e| e.to_string())) {
                        log(&format!("reload: cannot watch the new inbox: {e}"));
                    }
                    log(&format!("reloaded {}", path.display()));
                }
                Err(e) => {
                    log(&format!("reload: {} is not valid; keeping the running configuration: {}", path.display(), intake::error_chain(&e)));
                    for p in e.problems() {
                        log(&format!("reload: {}", p.render(&path)));
                    }
                }
            }
        }
        self.fingerprint = device_fingerprint(&self.config);
        self.shared.update(|s| {
            s.device = Some(self.fingerprint.clone());
            s.state = "ready".into();
        });
        self.check_firmware();
        self.rescan = true;
        self.scan_inbox();
        notify_systemd(&[sd_notify::NotifyState::Ready]);
    }

    async fn stop(mut self) {
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        self.shared.update(|s| s.state = "stopping".into());
        log("stopping");
        if let Some(running) = self.running.take() {
            running.cancel.raise(CANCEL_SHUTDOWN);
            let deadline = tokio::time::Instant::now() + STOP_GRACE;
            while !running.thread.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if running.thread.is_finished() {
                let _ = running.thread.join();
            } else {
                log(&format!("{}: job {} did not stop within {} s; its journal entry resumes it at the next start", running.model, running.id, STOP_GRACE.as_secs()));
            }
        }
        self.event(EventKind::DaemonStopping {}, None);
        let _ = self.shutdown.send(true);
        // A moment for the sender to hand over what it holds and for the status endpoint to close.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn event(&self, kind: EventKind, record: Option<&JobRecord>) {
        let mut event = Event::new(kind, &self.device_id);
        if let Some(r) = record {
            event = event.model(&r.model);
        }
        emit(self.outbox.as_deref(), event);
    }

    fn tell_systemd_status(&self) {
        let status = match &self.running {
            Some(r) => {
                let snapshot = self.shared.snapshot();
                let job = snapshot.models.get(&r.model).and_then(|m| m.job.clone());
                match job {
                    Some(j) if !j.detail.is_empty() => format!("{} {} ({}); {} queued", j.state, r.model, j.detail, self.queue.len()),
                    Some(j) => format!("{} {}; {} queued", j.state, r.model, self.queue.len()),
                    None => format!("working on {}", r.model),
                }
            }
            None => format!("idle; {} live models", self.shared.snapshot().models.values().filter(|m| m.live_version.is_some()).count()),
        };
        notify_systemd(&[sd_notify::NotifyState::Status(&status)]);
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, DaemonError> {
    tokio::signal::unix::signal(kind).map_err(|source| DaemonError::Io { path: PathBuf::from("(signals)"), what: "cannot install a signal handler", source })
}

fn notify_systemd(states: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(states);
}

/// The device as the engine store and the firmware check see it: with the TensorRT version from trtexec's banner
/// for the tensorrt backend.
fn device_fingerprint(config: &Config) -> Fingerprint {
    match config.backend {
        config::Backend::Cpu => crate::device::fingerprint(),
        config::Backend::Tensorrt => match crate::trt::run::detect_trtexec_version(&config.trtexec, Duration::from_secs(60)) {
            Ok(version) => crate::device::fingerprint_with(Some(&version)),
            Err(e) => {
                log(&format!("cannot read the TensorRT version from {}: {e}", config.trtexec.display()));
                crate::device::fingerprint()
            }
        },
    }
}

/// A stable id for this device: systemd's machine id, else the host name.
fn device_id() -> String {
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(id) = std::fs::read_to_string(path) {
            let id = id.trim();
            if !id.is_empty() {
                return id.to_owned();
            }
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "unknown".into())
}
