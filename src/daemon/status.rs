//! The local status endpoint (`[status] listen`, default 127.0.0.1:9464), for `precisiond status`, curl and a
//! Prometheus scraper on the box or the LAN:
//!
//! - `/healthz`: `200 ok` while the daemon is `ready` or `reloading`, `503` with the state otherwise (`stopping`);
//! - `/status`: the [`DaemonStatus`] as JSON;
//! - `/metrics`: the Prometheus text exposition format 0.0.4 (`# HELP`, `# TYPE`, one line per sample).
//!
//! Every answer comes from one [`Shared::snapshot`], so a scrape never mixes two states. The daemon binds first
//! ([`bind`]: a busy or foreign address is a clear error at startup, not a log line later) and then runs
//! [`serve`] as a task until its shutdown future resolves:
//!
//! ```text
//! let listener = status::bind(addr).await?;
//! let server = tokio::spawn(status::serve(listener, shared.clone(), async move { let _ = stop.changed().await; }));
//! ```
//!
//! The metrics are written by hand rather than through a client library: they are all derived from one snapshot
//! per scrape (a library's registry would be rebuilt per request anyway), and the format is a few rules
//! (names, `_total` on counters, label escaping) that the unit tests and Python's own parser check.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio::net::TcpListener;

use super::state::{DaemonStatus, Shared};
use crate::error::{Diagnose, Fault};

/// What `/metrics` answers with (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Job outcomes always exported, at 0 until one happens: `rate()` and alerts need a series before its first
/// increment.
const JOB_OUTCOMES: [&str; 5] = ["live", "failed", "rolled_back", "superseded", "cancelled"];

/// The status endpoint could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the status endpoint ([status] listen)")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

impl Diagnose for BindError {
    fn fault(&self) -> Fault {
        match self.source.kind() {
            std::io::ErrorKind::AddrNotAvailable => Fault::Input,
            _ => Fault::Environment,
        }
    }

    fn hint(&self) -> Option<String> {
        let addr = self.addr;
        match self.source.kind() {
            std::io::ErrorKind::AddrInUse => Some(format!(
                "another program (another precisiond?) listens on {addr}: `ss -ltnp 'sport = :{}'` names it; \
                 choose another [status] listen, or \"off\"",
                addr.port()
            )),
            std::io::ErrorKind::AddrNotAvailable => {
                Some(format!("{} is not an address of this machine; use 127.0.0.1 or one of `ip -brief address`", addr.ip()))
            }
            std::io::ErrorKind::PermissionDenied => {
                Some("ports below 1024 need privileges the service does not have; use a port above 1023".into())
            }
            _ => None,
        }
    }
}

/// Binds the status endpoint's address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })
}

/// Serves `/healthz`, `/status` and `/metrics` on `listener` until `shutdown` resolves, then lets the requests
/// in flight finish. Errors on single connections are the client's and do not end it.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared)).with_graceful_shutdown(shutdown).await
}

/// The endpoint's routes, for [`serve`] or a caller with its own server.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(shared)
}

async fn healthz(State(shared): State<Shared>) -> Response {
    let state = shared.snapshot().state;
    match state.as_str() {
        "ready" | "reloading" => (StatusCode::OK, "ok\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, format!("{state}\n")).into_response(),
    }
}

async fn status(State(shared): State<Shared>) -> Response {
    match serde_json::to_string_pretty(&shared.snapshot()) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text + "\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the status as JSON: {e}\n")).into_response(),
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], render_metrics(&shared.snapshot())).into_response()
}

async fn not_found(uri: Uri) -> Response {
    (StatusCode::NOT_FOUND, format!("no {}: precisiond serves /status, /metrics and /healthz\n", uri.path()))
        .into_response()
}

/// The Prometheus text exposition (format 0.0.4) of one state.
pub fn render_metrics(s: &DaemonStatus) -> String {
    let mut out = Exposition::default();
    let c = &s.counters;

    let build_info = vec![(labels([("version", s.version.as_str()), ("backend", s.backend.as_str())]), Sample::Int(1))];
    out.family("build_info", Kind::Gauge, "precisiond's version and the backend jobs build with; always 1", build_info);
    let started = humantime::parse_rfc3339(&s.started_at).ok();
    let start_time = started.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    out.family(
        "start_time_seconds",
        Kind::Gauge,
        "When the daemon started, in seconds since the Unix epoch",
        start_time.map(|t| (Vec::new(), Sample::Float(t.as_secs_f64()))),
    );

    let mut outcomes: Vec<(&str, u64)> =
        JOB_OUTCOMES.iter().filter(|o| !c.jobs.contains_key(**o)).map(|o| (*o, 0)).collect();
    outcomes.extend(c.jobs.iter().map(|(o, n)| (o.as_str(), *n)));
    outcomes.sort();
    out.family(
        "jobs_total",
        Kind::Counter,
        "Jobs finished, by outcome",
        outcomes.into_iter().map(|(o, n)| (labels([("outcome", o)]), Sample::Int(n))),
    );
    out.counter("engine_builds_total", "Engine builds run, profiles included", Sample::Int(c.builds));
    out.counter("engine_build_seconds_total", "Seconds spent building engines", Sample::Float(c.build_seconds));
    out.counter("verifications_total", "Engine verifications run", Sample::Int(c.verifications));
    out.counter("verify_seconds_total", "Seconds spent verifying engines", Sample::Float(c.verify_seconds));
    out.counter(
        "firmware_rebuilds_total",
        "Rebuilds started because the device fingerprint changed (JetPack, TensorRT or driver update)",
        Sample::Int(c.firmware_rebuilds),
    );
    out.counter(
        "bundles_refused_total",
        "Bundles refused at intake (bad signature, path escape, link, oversized file)",
        Sample::Int(c.bundles_refused),
    );

    out.family(
        "outbox_depth",
        Kind::Gauge,
        "Events in the outbox waiting to be sent upstream",
        [(Vec::new(), Sample::Int(s.outbox.depth))],
    );
    out.counter(
        "outbox_dropped_total",
        "Events dropped from the outbox, oldest first, to stay under its size cap",
        Sample::Int(s.outbox.dropped),
    );
    out.counter(
        "outbox_dead_letter_total",
        "Events upstream refused for good, kept aside in the outbox's dead-letter.jsonl",
        Sample::Int(s.outbox.dead_letter),
    );

    let per_model = |value: &dyn Fn(&super::state::ModelStatus) -> Option<Sample>| {
        s.models.iter().filter_map(|(name, m)| Some((labels([("model", name.as_str())]), value(m)?))).collect::<Vec<_>>()
    };
    out.family(
        "live_version",
        Kind::Gauge,
        "The version each model serves (state_dir/live/<model>)",
        per_model(&|m| m.live_version.map(Sample::Int)),
    );
    out.family(
        "live_cosine",
        Kind::Gauge,
        "Cosine similarity of the live engine's outputs to FP32, as verified",
        per_model(&|m| number(m.metrics.as_ref(), "cosine")),
    );
    out.family(
        "live_sqnr_db",
        Kind::Gauge,
        "SQNR of the live engine's outputs against FP32, in dB, as verified",
        per_model(&|m| number(m.metrics.as_ref(), "sqnr_db")),
    );
    let mut latency = Vec::new();
    for (name, m) in &s.models {
        for (quantile, key) in [("0.5", "median"), ("0.99", "p99")] {
            if let Some(v) = number(m.latency_ms.as_ref(), key) {
                latency.push((labels([("model", name.as_str()), ("quantile", quantile)]), v));
            }
        }
    }
    out.family("live_latency_ms", Kind::Gauge, "The live engine's GPU compute time per inference, in ms, as measured", latency);

    let jobs = s.models.iter().filter_map(|(name, m)| Some((name, m.job.as_ref()?)));
    let (queued, running): (Vec<_>, Vec<_>) = jobs.partition(|(_, job)| job.state == "queued");
    out.family(
        "job_running",
        Kind::Gauge,
        "1 while a job runs for the model, labelled with its stage",
        running.into_iter().map(|(name, job)| (labels([("model", name.as_str()), ("stage", job.state.as_str())]), Sample::Int(1))),
    );
    out.family(
        "jobs_queued",
        Kind::Gauge,
        "Models with a job waiting for its turn",
        [(Vec::new(), Sample::Int(queued.len() as u64))],
    );
    out.text
}

/// A number in a JSON object (verify.json's `metrics` or `latency_ms`); absent or null (a non-finite value, as
/// serde_json writes it) is no sample.
fn number(object: Option<&Value>, key: &str) -> Option<Sample> {
    object?.get(key)?.as_f64().map(Sample::Float)
}

fn labels<'a, const N: usize>(pairs: [(&'static str, &'a str); N]) -> Vec<(&'static str, &'a str)> {
    pairs.to_vec()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Sample {
    Int(u64),
    Float(f64),
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Sample::Int(n) => write!(f, "{n}"),
            Sample::Float(v) if v.is_nan() => f.write_str("NaN"),
            Sample::Float(v) if v.is_infinite() => f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
            // Debug keeps a float a float (`3.0`) and uses exponents for the very small and large (`1e-7`), both
            // of which Go's ParseFloat, and so Prometheus, reads.
            Sample::Float(v) => write!(f, "{v:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// One family: `# HELP`, `# TYPE`, then its samples; a family without samples is left out.
    fn family<'a>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'static str, &'a str)>, Sample)>,
    ) {
        debug_assert!(valid_name(name), "{name}");
        // The exposition format's rule; OpenMetrics readers even refuse a counter without it.
        debug_assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        let out = &mut self.text;
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP precisiond_{name} {}", escape(help, false));
        let _ = writeln!(out, "# TYPE precisiond_{name} {kind}");
        for (labels, value) in samples {
            let _ = write!(out, "precisiond_{name}");
            if !labels.is_empty() {
                let pairs: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v, true))).collect();
                let _ = write!(out, "{{{}}}", pairs.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }

    fn counter(&mut self, name: &str, help: &str, value: Sample) {
        self.family(name, Kind::Counter, help, [(Vec::new(), value)]);
    }
}

/// The format's escapes: `\` and newline everywhere, `"` too in label values.
fn escape(text: &str, label_value: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the metric name rule.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::{JobStatus, ModelStatus};
    use serde_json::json;

    fn state() -> DaemonStatus {
        let mut s = DaemonStatus {
            version: "0.1.0".into(),
            started_at: "2026-11-26T09:00:00Z".into(),
            backend: "tensorrt".into(),
            state: "ready".into(),
            ..DaemonStatus::default()
        };
        s.models.insert(
            "det".into(),
            ModelStatus {
                live_version: Some(3),
                verdict: Some("pass".into()),
                metrics: Some(json!({"cosine": 0.99912, "sqnr_db": 31.25, "max_abs": 0.04})),
                latency_ms: Some(json!({"median": 4.21, "p99": 5.03})),
                ..ModelStatus::default()
            },
        );
        s.models.insert(
            "rec".into(),
            ModelStatus {
                job: Some(JobStatus { id: "j1".into(), state: "building".into(), detail: "final".into(), ..Default::default() }),
                ..ModelStatus::default()
            },
        );
        s.counters.jobs.insert("live".into(), 3);
        s.counters.builds = 7;
        s.counters.build_seconds = 412.5;
        s
    }

    /// The sample lines (`name{labels} value`) of a rendering.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape("a\\b\"c\nd", true), "a\\\\b\\\"c\\nd");
        // HELP text keeps its quotes: only label values are quoted.
        assert_eq!(escape("say \"hi\"\\\n", false), "say \"hi\"\\\\\\n");

        let mut s = DaemonStatus::default();
        s.models.insert("we\"ird\\name\n".into(), ModelStatus { live_version: Some(2), ..Default::default() });
        let text = render_metrics(&s);
        assert!(text.contains("precisiond_live_version{model=\"we\\\"ird\\\\name\\n\"} 2\n"), "{text}");
    }

    #[test]
    fn every_family_has_help_and_type_once_before_its_samples_and_counters_end_in_total() {
        let text = render_metrics(&state());
        let mut declared: Vec<(String, String)> = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!declared.iter().any(|(n, _)| *n == name), "{name} declared twice");
                current = Some(name);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(Some(name), current.as_deref(), "TYPE right after its HELP");
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                declared.push((name.to_owned(), kind.to_owned()));
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(Some(name), current.as_deref(), "sample {line} under its own family");
                assert!(name.starts_with("precisiond_") && valid_name(name), "{name}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        let kinds: Vec<&str> = declared.iter().map(|(_, k)| k.as_str()).collect();
        assert!(kinds.contains(&"counter") && kinds.contains(&"gauge"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn values_are_the_states() {
        let text = render_metrics(&state());
        let lines = samples(&text);
        for expected in [
            "precisiond_build_info{version=\"0.1.0\",backend=\"tensorrt\"} 1",
            "precisiond_start_time_seconds 1795683600.0",
            "precisiond_jobs_total{outcome=\"live\"} 3",
            "precisiond_jobs_total{outcome=\"failed\"} 0",
            "precisiond_engine_builds_total 7",
            "precisiond_engine_build_seconds_total 412.5",
            "precisiond_outbox_depth 0",
            "precisiond_live_version{model=\"det\"} 3",
            "precisiond_live_cosine{model=\"det\"} 0.99912",
            "precisiond_live_sqnr_db{model=\"det\"} 31.25",
            "precisiond_live_latency_ms{model=\"det\",quantile=\"0.5\"} 4.21",
            "precisiond_live_latency_ms{model=\"det\",quantile=\"0.99\"} 5.03",
            "precisiond_job_running{model=\"rec\",stage=\"building\"} 1",
            "precisiond_jobs_queued 0",
        ] {
            assert!(lines.contains(&expected), "missing `{expected}` in\n{text}");
        }
        // Only where known: rec has nothing live, det no job.
        assert!(!lines.iter().any(|l| l.contains("model=\"rec\"") && !l.starts_with("precisiond_job_running")), "{text}");
        assert!(!lines.iter().any(|l| l.starts_with("precisiond_job_running{model=\"det\"")));
    }

    #[test]
    fn queued_jobs_are_not_running_and_empty_families_are_left_out() {
        let mut s = DaemonStatus::default();
        s.models.insert(
            "a".into(),
            ModelStatus { job: Some(JobStatus { state: "queued".into(), ..Default::default() }), ..Default::default() },
        );
        let text = render_metrics(&s);
        assert!(!text.contains("precisiond_job_running"), "{text}");
        assert!(!text.contains("live_cosine"), "{text}");
        assert!(!text.contains("start_time_seconds"), "no parsable start time, no sample: {text}");
        assert!(samples(&text).contains(&"precisiond_jobs_queued 1"), "{text}");
    }

    #[test]
    fn floats_print_as_prometheus_reads_them() {
        let cases = [
            (Sample::Float(3.0), "3.0"),
            (Sample::Float(0.1), "0.1"),
            (Sample::Float(1e-7), "1e-7"),
            (Sample::Float(f64::INFINITY), "+Inf"),
            (Sample::Float(f64::NEG_INFINITY), "-Inf"),
            (Sample::Float(f64::NAN), "NaN"),
            (Sample::Int(u64::MAX), "18446744073709551615"),
        ];
        for (sample, text) in cases {
            assert_eq!(sample.to_string(), text);
        }
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(valid_name("precisiond_jobs_total") && valid_name("a:b") && valid_name("_x1"));
        assert!(!valid_name("") && !valid_name("1a") && !valid_name("a-b") && !valid_name("a b"));
    }

    #[test]
    fn a_busy_address_is_named_with_a_hint() {
        let e = BindError {
            addr: "127.0.0.1:9464".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(e.to_string(), "cannot listen on 127.0.0.1:9464 for the status endpoint ([status] listen)");
        assert!(e.hint().unwrap().contains("sport = :9464"));
        assert_eq!(e.fault(), Fault::Environment);
    }
}
