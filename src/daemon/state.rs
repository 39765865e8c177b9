//! What the daemon knows about itself, shared between the main loop (the only writer) and the status endpoint
//! (`/status`, `/metrics`): plain data behind one lock, cloned out for each request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::device::Fingerprint;

/// The daemon's state, shared.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<DaemonStatus>>);

impl Shared {
    pub fn new(status: DaemonStatus) -> Shared {
        Shared(Arc::new(RwLock::new(status)))
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> DaemonStatus {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state under the lock (keep `f` short: readers wait).
    pub fn update<R>(&self, f: impl FnOnce(&mut DaemonStatus) -> R) -> R {
        f(&mut self.0.write().unwrap_or_else(|e| e.into_inner()))
    }
}

/// `/status` (JSON) and the source of `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DaemonStatus {
    /// precisiond's version.
    pub version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The backend jobs build with: `cpu` or `tensorrt`.
    pub backend: String,
    pub device: Option<Fingerprint>,
    /// `ready`, `reloading`, `stopping`.
    pub state: String,
    pub models: BTreeMap<String, ModelStatus>,
    pub outbox: OutboxStatus,
    pub counters: Counters,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelStatus {
    pub live_version: Option<u64>,
    /// `state_dir/live/<model>`, when a version is live.
    pub live_path: Option<PathBuf>,
    /// From the live version's verify.json.
    pub verdict: Option<String>,
    pub metrics: Option<serde_json::Value>,
    pub latency_ms: Option<serde_json::Value>,
    /// The job running or queued for this model, if any.
    pub job: Option<JobStatus>,
    /// The last job's failure, until a later job succeeds.
    pub last_failure: Option<String>,
}

impl ModelStatus {
    /// Records `version` as live at `path`, with its verify.json's verdict, metrics and latency (none when that
    /// file could not be read).
    pub fn set_live(&mut self, version: u64, path: PathBuf, verify: Option<&serde_json::Value>) {
        self.live_version = Some(version);
        self.live_path = Some(path);
        self.verdict = verify.and_then(|v| v["verdict"].as_str().map(str::to_owned));
        self.metrics = verify.map(|v| v["metrics"].clone());
        self.latency_ms = verify.map(|v| v["latency_ms"].clone()).filter(|l| !l.is_null());
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct JobStatus {
    pub id: String,
    /// queued, calibrating, searching, building, verifying, publishing.
    pub state: String,
    /// e.g. `profile all-INT8`, `final`, `fallback 1`.
    pub detail: String,
    pub started_at: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct OutboxStatus {
    pub depth: u64,
    pub dropped: u64,
    pub dead_letter: u64,
}

/// Monotonic counters and sums since the daemon started (Prometheus counters).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Finished jobs by outcome: `live`, `failed`, `rolled_back`, `superseded`, `cancelled`.
    pub jobs: BTreeMap<String, u64>,
    /// Engine builds run (profiles included) and their total seconds.
    pub builds: u64,
    pub build_seconds: f64,
    pub verifications: u64,
    pub verify_seconds: f64,
    /// Rebuilds started because the device fingerprint changed (a JetPack/TensorRT/driver update).
    pub firmware_rebuilds: u64,
    /// Bundles refused at intake (bad signature, path escape, link, oversized file).
    pub bundles_refused: u64,
}
