//! The local status endpoint (`/healthz`, `/status`, `/metrics`) served on loopback from a realistic daemon state,
//! `/metrics` read by the Prometheus project's own Python parser, and `precisiond status` against it.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use precisiond::daemon::state::{DaemonStatus, JobStatus, ModelStatus, Shared};
use precisiond::daemon::status;

use crate::support::{ReservedPort, judge, run, tempdir};

/// Two models: `det` live (v3, verified, measured), `rec` with nothing live yet and its first job building.
fn realistic() -> DaemonStatus {
    let device = json!({
        "gpus": [{"name": "Orin", "compute_capability": "8.7", "driver_version": null,
                  "memory_total_bytes": 16_u64 << 30, "uuid": null, "integrated": true}],
        "cuda_driver": "12.6", "tensorrt": "10.3.0", "l4t": "36.4.3", "notes": []
    });
    let mut s = DaemonStatus {
        version: "0.1.0".into(),
        started_at: "2026-11-26T09:00:00Z".into(),
        backend: "tensorrt".into(),
        device: Some(serde_json::from_value(device).unwrap()),
        state: "ready".into(),
        ..DaemonStatus::default()
    };
    // Field by field, so that a field added to the state later needs no edit here.
    s.outbox.depth = 2;
    s.outbox.dropped = 1;
    let c = &mut s.counters;
    c.jobs = [("live".to_string(), 3), ("failed".to_string(), 1)].into();
    c.builds = 7;
    c.build_seconds = 412.5;
    c.verifications = 4;
    c.verify_seconds = 18.25;
    c.firmware_rebuilds = 1;
    c.bundles_refused = 2;
    let mut job = JobStatus::default();
    job.id = "20261126T100000-rec".into();
    job.state = "building".into();
    job.detail = "final".into();
    job.started_at = "2026-11-26T10:00:00Z".into();
    s.models.insert(
        "det".into(),
        ModelStatus {
            live_version: Some(3),
            live_path: Some("/var/lib/precisiond/live/det".into()),
            verdict: Some("pass".into()),
            metrics: Some(json!({"cosine": 0.99912, "sqnr_db": 31.25, "max_abs": 0.04, "argmax_agreement": 1.0})),
            latency_ms: Some(json!({"median": 4.21, "p99": 5.03})),
            ..ModelStatus::default()
        },
    );
    s.models.insert(
        "rec".into(),
        ModelStatus { job: Some(job), ..ModelStatus::default() },
    );
    s
}

/// The endpoint on an ephemeral loopback port; dropping the sender stops it.
struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(shared: Shared) -> Served {
        let listener = status::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(status::serve(listener, shared, async move {
            let _ = stopped.await;
        }));
        Served { addr, stop: Some(stop), task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let response = precisiond::report::client_builder().no_proxy().build().unwrap().get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    async fn stop(mut self) {
        drop(self.stop.take());
        tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("serve ends on shutdown").unwrap().unwrap();
    }
}

/// `/metrics` as prometheus_client's parser reads it: sample name → [(labels, value)].
fn parsed(text: &str) -> (Vec<Value>, Vec<(String, Value, f64)>) {
    let dir = tempdir();
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let answer = judge(&[&"prometheus", &path]);
    let families = answer["families"].as_array().unwrap().clone();
    let samples = families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap().iter())
        .map(|s| {
            let value = s["value"].as_f64().unwrap_or_else(|| panic!("numeric value in {s}"));
            (s["name"].as_str().unwrap().to_owned(), s["labels"].clone(), value)
        })
        .collect();
    (families, samples)
}

fn value(samples: &[(String, Value, f64)], name: &str, labels: Value) -> f64 {
    let found: Vec<f64> = samples.iter().filter(|(n, l, _)| n == name && *l == labels).map(|(_, _, v)| *v).collect();
    assert_eq!(found.len(), 1, "one sample {name} {labels}, found {found:?} in {samples:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_the_prometheus_parser_and_carry_the_state() {
    let served = Served::start(Shared::new(realistic())).await;
    let (code, content_type, text) = served.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");

    let (families, samples) = parsed(&text);
    // Every line is precisiond's: the parser made no untyped family out of a stray sample.
    for family in &families {
        let name = family["name"].as_str().unwrap();
        assert!(name.starts_with("precisiond_"), "{family}");
        assert!(["counter", "gauge"].contains(&family["type"].as_str().unwrap()), "{family}");
        assert!(!family["help"].as_str().unwrap().is_empty(), "{family}");
    }
    let kind = |name: &str| {
        families.iter().find(|f| f["name"] == name).map(|f| f["type"].as_str().unwrap().to_owned()).unwrap_or_default()
    };
    // The parser names a counter family without `_total` and keeps it on the samples.
    for counter in [
        "jobs",
        "engine_builds",
        "engine_build_seconds",
        "verifications",
        "verify_seconds",
        "firmware_rebuilds",
        "bundles_refused",
        "outbox_dropped",
        "outbox_dead_letter",
    ] {
        assert_eq!(kind(&format!("precisiond_{counter}")), "counter", "{counter}");
    }
    for gauge in ["outbox_depth", "live_version", "live_cosine", "live_sqnr_db", "live_latency_ms", "job_running"] {
        assert_eq!(kind(&format!("precisiond_{gauge}")), "gauge", "{gauge}");
    }

    let none = json!({});
    let expected = [
        ("precisiond_build_info", json!({"version": "0.1.0", "backend": "tensorrt"}), 1.0),
        ("precisiond_start_time_seconds", none.clone(), 1_795_683_600.0),
        ("precisiond_jobs_total", json!({"outcome": "live"}), 3.0),
        ("precisiond_jobs_total", json!({"outcome": "failed"}), 1.0),
        ("precisiond_jobs_total", json!({"outcome": "rolled_back"}), 0.0),
        ("precisiond_engine_builds_total", none.clone(), 7.0),
        ("precisiond_engine_build_seconds_total", none.clone(), 412.5),
        ("precisiond_verifications_total", none.clone(), 4.0),
        ("precisiond_verify_seconds_total", none.clone(), 18.25),
        ("precisiond_firmware_rebuilds_total", none.clone(), 1.0),
        ("precisiond_bundles_refused_total", none.clone(), 2.0),
        ("precisiond_outbox_depth", none.clone(), 2.0),
        ("precisiond_outbox_dropped_total", none.clone(), 1.0),
        ("precisiond_outbox_dead_letter_total", none.clone(), 0.0),
        ("precisiond_live_version", json!({"model": "det"}), 3.0),
        ("precisiond_live_cosine", json!({"model": "det"}), 0.99912),
        ("precisiond_live_sqnr_db", json!({"model": "det"}), 31.25),
        ("precisiond_live_latency_ms", json!({"model": "det", "quantile": "0.5"}), 4.21),
        ("precisiond_live_latency_ms", json!({"model": "det", "quantile": "0.99"}), 5.03),
        ("precisiond_job_running", json!({"model": "rec", "stage": "building"}), 1.0),
    ];
    for (name, labels, want) in expected {
        assert_eq!(value(&samples, name, labels.clone()), want, "{name} {labels}");
    }
    // Only where known: nothing live for rec, no job for det.
    for (name, labels, _) in &samples {
        if labels["model"] == "rec" {
            assert_eq!(name, "precisiond_job_running", "{name} {labels}");
        }
        if labels["model"] == "det" {
            assert_ne!(name, "precisiond_job_running", "{labels}");
        }
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_with_quotes_backslashes_and_newlines_survive_the_parser() {
    let weird = "cam \"front\"\\left\nv2";
    let mut s = realistic();
    let det = s.models.remove("det").unwrap();
    s.models.insert(weird.into(), det);
    s.version = "0.1.0-\"dev\"".into();
    let served = Served::start(Shared::new(s)).await;
    let (_, _, text) = served.get("/metrics").await;
    let (_, samples) = parsed(&text);
    assert_eq!(value(&samples, "precisiond_live_version", json!({"model": weird})), 3.0);
    assert_eq!(value(&samples, "precisiond_live_latency_ms", json!({"model": weird, "quantile": "0.99"})), 5.03);
    assert_eq!(value(&samples, "precisiond_build_info", json!({"version": "0.1.0-\"dev\"", "backend": "tensorrt"})), 1.0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_serves_the_daemon_state_as_json() {
    let served = Served::start(Shared::new(realistic())).await;
    let (code, content_type, text) = served.get("/status").await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/json");
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["state"], "ready");
    assert_eq!(s["models"]["det"]["live_version"], 3);
    assert_eq!(s["models"]["det"]["verdict"], "pass");
    assert_eq!(s["models"]["det"]["live_path"], "/var/lib/precisiond/live/det");
    assert_eq!(s["models"]["rec"]["job"]["state"], "building");
    assert_eq!(s["device"]["gpus"][0]["name"], "Orin");
    assert_eq!(s["counters"]["jobs"]["live"], 3);

    let (code, _, text) = served.get("/nothing").await;
    assert_eq!(code, 404);
    assert!(text.contains("/status, /metrics and /healthz"), "{text}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_ok_while_ready_or_reloading_and_503_once_stopping() {
    let shared = Shared::new(realistic());
    let served = Served::start(shared.clone()).await;
    assert_eq!(served.get("/healthz").await, (200, "text/plain; charset=utf-8".into(), "ok\n".into()));
    shared.update(|s| s.state = "reloading".into());
    assert_eq!(served.get("/healthz").await.0, 200);
    shared.update(|s| s.state = "stopping".into());
    let (code, _, text) = served.get("/healthz").await;
    assert_eq!((code, text.as_str()), (503, "stopping\n"));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_address_is_refused_at_bind_with_a_hint() {
    let served = Served::start(Shared::default()).await;
    let e = status::bind(served.addr).await.unwrap_err();
    let failure = precisiond::error::Failure::from(e);
    let text = failure.to_string();
    assert!(text.starts_with(&format!("error: cannot listen on {} for the status endpoint", served.addr)), "{text}");
    assert!(text.contains("hint: another program (another precisiond?)"), "{text}");
    assert_eq!(failure.exit_code(), 2);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_command_shows_each_model_from_the_served_endpoint() {
    let served = Served::start(Shared::new(realistic())).await;
    let url = served.url("");
    let (code, out, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run(&[&"status", &"--url", &url])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("precisiond 0.1.0 on {}: ready, backend tensorrt", served.addr)), "{out}");
    assert!(out.contains("Orin (sm 8.7), CUDA 12.6, TensorRT 10.3.0, L4T 36.4.3"), "{out}");
    assert!(out.contains("outbox   2 event(s) to send (1 dropped, 0 dead letter(s))"), "{out}");
    let det: Vec<&str> = out.lines().find(|l| l.starts_with("det ")).unwrap().split_whitespace().collect();
    assert_eq!(det, ["det", "v3", "pass", "0.99912", "4.21/5.03", "ms", "-"], "{out}");
    let rec = out.lines().find(|l| l.starts_with("rec ")).unwrap();
    assert!(rec.ends_with("building (final) since 2026-11-26T10:00:00Z"), "{out}");

    let (code, out, err) = tokio::task::spawn_blocking(move || run(&[&"status", &"--json", &"--url", &url]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["models"]["det"]["live_version"], 3);
    assert_eq!(s["outbox"]["depth"], 2);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_command_asks_the_address_of_the_configuration() {
    let served = Served::start(Shared::new(realistic())).await;
    let dir = tempdir();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[status]\nlisten = \"{}\"\n", served.addr)).unwrap();
    let (code, out, err) = tokio::task::spawn_blocking(move || run(&[&"status", &"--config", &config])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("det ")), "{out}");
    served.stop().await;
}

#[test]
fn the_status_command_without_a_daemon_exits_2_with_a_hint() {
    let reserved = ReservedPort::new();
    let port = reserved.addr.port();
    let dir = tempdir();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[status]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let (code, out, err) = run(&[&"status", &"--config", &config]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with(&format!("error: no precisiond answering on 127.0.0.1:{port}\n")), "{err}");
    assert!(err.contains("hint: is the daemon running? `systemctl status precisiond`"), "{err}");
    assert!(err.contains(&format!("[status] listen of {}", config.display())), "{err}");

    let (code, _, err) = run(&[&"status", &"--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with(&format!("error: no precisiond answering on 127.0.0.1:{port}\n")), "{err}");
}

#[test]
fn the_status_command_with_the_endpoint_off_says_so() {
    let dir = tempdir();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[status]\nlisten = \"off\"\n").unwrap();
    let (code, _, err) = run(&[&"status", &"--config", &config]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: the status endpoint is off"), "{err}");
}
