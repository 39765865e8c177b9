//! What the device tells upstream: one [`Event`] per thing that happened, as one stable JSON object.
//!
//! # Wire format (stable; keys may be added, never renamed)
//!
//! ```json
//! {
//!   "id": "3f0c9a52-7d1e-4b8a-9c4e-0a1b2c3d4e5f",
//!   "device_id": "jetson-17",
//!   "time": "2026-11-30T12:00:00.123Z",
//!   "kind": "verified",
//!   "model": "det",
//!   "version": "3",
//!   "detail": { "verdict": "pass", "metrics": { "cosine": 0.998 }, "latency_ms": { "median": 3.1, "p99": 3.9 } }
//! }
//! ```
//!
//! - `id`: a random UUID (version 4), made once when the event is made and kept through every retry: the receiver
//!   deduplicates by it (delivery is at least once).
//! - `time`: RFC 3339, UTC, milliseconds; when it happened by the device's clock (which may be wrong before NTP).
//! - `model`, `version`: present only for events about a model (job lifecycle, `bundle_refused`); absent otherwise.
//! - `kind` and `detail` (always an object, `{}` when the kind carries nothing):
//!
//! | kind | detail |
//! |---|---|
//! | `accepted` | `{}`: a complete bundle was taken as a job |
//! | `started` | `{}`: the job began working |
//! | `stage` | `{name}`: the job entered a pipeline stage (`calibrate`, `plan`, `build`, `verify`, …) |
//! | `verified` | `{verdict: "pass"\|"fail", metrics: {name: number\|null}, latency_ms: {median, p99} \| null}` |
//! | `published` | `{}`: the version is live |
//! | `rolled_back` | `{reason}`: the live link went back to the previous version |
//! | `failed` | `{stage, reason, class}`: `class` is the failure's kind (e.g. a trtexec failure class, `input`, `environment`) |
//! | `firmware_changed` | `{from, to}`: device fingerprint keys before and after |
//! | `daemon_started` | `{daemon_version}` |
//! | `daemon_stopping` | `{}` |
//! | `bundle_refused` | `{reason}`: a bundle that will not become a job (bad signature, damaged manifest, …) |
//!
//! Non-finite metric values are written as `null` (JSON has no NaN).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One thing that happened on the device; see the module documentation for its JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub device_id: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, with what the kind carries; serialized as `"kind": "…", "detail": {…}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum EventKind {
    Accepted {},
    Started {},
    Stage { name: String },
    Verified { verdict: Verdict, metrics: BTreeMap<String, Option<f64>>, latency_ms: Option<LatencyMs> },
    Published {},
    RolledBack { reason: String },
    Failed { stage: String, reason: String, class: String },
    FirmwareChanged { from: String, to: String },
    DaemonStarted { daemon_version: String },
    DaemonStopping {},
    BundleRefused { reason: String },
}

/// An event's verdict and latency are verify.json's own, so the two cannot drift apart.
pub use crate::build::verify::{LatencyMs, Verdict};

impl EventKind {
    /// The `kind` string on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Accepted {} => "accepted",
            EventKind::Started {} => "started",
            EventKind::Stage { .. } => "stage",
            EventKind::Verified { .. } => "verified",
            EventKind::Published {} => "published",
            EventKind::RolledBack { .. } => "rolled_back",
            EventKind::Failed { .. } => "failed",
            EventKind::FirmwareChanged { .. } => "firmware_changed",
            EventKind::DaemonStarted { .. } => "daemon_started",
            EventKind::DaemonStopping {} => "daemon_stopping",
            EventKind::BundleRefused { .. } => "bundle_refused",
        }
    }

    pub fn stage(name: impl Into<String>) -> EventKind {
        EventKind::Stage { name: name.into() }
    }

    /// `metrics` as simulate reports them; a NaN or infinity becomes `null` so that the event reads back.
    pub fn verified<'a>(
        verdict: Verdict,
        metrics: impl IntoIterator<Item = (&'a str, f64)>,
        latency_ms: Option<LatencyMs>,
    ) -> EventKind {
        let metrics = metrics.into_iter().map(|(k, v)| (k.to_string(), v.is_finite().then_some(v))).collect();
        EventKind::Verified { verdict, metrics, latency_ms }
    }

    pub fn rolled_back(reason: impl Into<String>) -> EventKind {
        EventKind::RolledBack { reason: reason.into() }
    }

    pub fn failed(stage: impl Into<String>, reason: impl Into<String>, class: impl Into<String>) -> EventKind {
        EventKind::Failed { stage: stage.into(), reason: reason.into(), class: class.into() }
    }

    pub fn firmware_changed(from: impl Into<String>, to: impl Into<String>) -> EventKind {
        EventKind::FirmwareChanged { from: from.into(), to: to.into() }
    }

    /// Carries this build's version.
    pub fn daemon_started() -> EventKind {
        EventKind::DaemonStarted { daemon_version: env!("CARGO_PKG_VERSION").to_string() }
    }

    pub fn bundle_refused(reason: impl Into<String>) -> EventKind {
        EventKind::BundleRefused { reason: reason.into() }
    }
}

impl Event {
    /// A new event with a fresh id, stamped now.
    pub fn new(kind: EventKind, device_id: impl Into<String>) -> Event {
        Event {
            id: new_id(),
            device_id: device_id.into(),
            time: rfc3339(SystemTime::now()),
            kind,
            model: None,
            version: None,
        }
    }

    pub fn model(mut self, model: impl Into<String>) -> Event {
        self.model = Some(model.into());
        self
    }

    pub fn version(mut self, version: impl Into<String>) -> Event {
        self.version = Some(version.into());
        self
    }

    /// Stamps another time than now (an event recorded after the fact).
    pub fn at(mut self, time: SystemTime) -> Event {
        self.time = rfc3339(time);
        self
    }

    /// The one JSON line the outbox stores and the sender sends (no newline inside: serde_json escapes them).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serializes: string keys, no non-finite floats")
    }
}

/// A random (version 4) UUID in its usual text form.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // The kernel's generator failing is next to impossible; an id must still be unique, so fall back to the
        // clock and a process-wide counter rather than to a fixed value.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        b[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        b[12..].copy_from_slice(&(COUNTER.fetch_add(1, Ordering::Relaxed) as u32).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-30T12:00:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_the_documented_one() {
        let event = Event {
            id: "3f0c9a52-7d1e-4b8a-9c4e-0a1b2c3d4e5f".into(),
            device_id: "jetson-17".into(),
            time: "2026-11-30T12:00:00.123Z".into(),
            kind: EventKind::verified(
                Verdict::Pass,
                [("cosine", 0.998), ("sqnr_db", f64::NAN)],
                Some(LatencyMs { median: 3.1, p99: 3.9 }),
            ),
            model: Some("det".into()),
            version: Some("3".into()),
        };
        assert_eq!(
            event.to_json(),
            r#"{"id":"3f0c9a52-7d1e-4b8a-9c4e-0a1b2c3d4e5f","device_id":"jetson-17","time":"2026-11-30T12:00:00.123Z","model":"det","version":"3","kind":"verified","detail":{"verdict":"pass","metrics":{"cosine":0.998,"sqnr_db":null},"latency_ms":{"median":3.1,"p99":3.9}}}"#
        );
        let back: Event = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn every_kind_has_an_object_detail_and_reads_back() {
        let kinds = [
            EventKind::Accepted {},
            EventKind::Started {},
            EventKind::stage("calibrate"),
            EventKind::verified(Verdict::Fail, [], None),
            EventKind::Published {},
            EventKind::rolled_back("hook exited 3"),
            EventKind::failed("build", "trtexec ran out of memory", "out_of_memory"),
            EventKind::firmware_changed("trt-8.6", "trt-10.3"),
            EventKind::daemon_started(),
            EventKind::DaemonStopping {},
            EventKind::bundle_refused("bad signature"),
        ];
        for kind in kinds {
            let event = Event::new(kind.clone(), "dev");
            let value: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(value["kind"], kind.name());
            assert!(value["detail"].is_object(), "{value}");
            assert!(value.get("model").is_none());
            let back: Event = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(back.kind, kind);
        }
    }

    #[test]
    fn ids_are_uuid_v4_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn time_is_rfc3339_utc_millis() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        let e = Event::new(EventKind::Accepted {}, "d").model("m").version("2");
        assert!(e.time.ends_with('Z') && e.time.len() == 24, "{}", e.time);
        assert_eq!((e.model.as_deref(), e.version.as_deref()), (Some("m"), Some("2")));
    }
}
