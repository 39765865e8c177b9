//! The outbox and the upstream sender against a real HTTP server on loopback (axum): upstream away and back,
//! `Retry-After`, refused events, 10,000 events, the bearer token, drops and torn lines. The daemon does not exist
//! yet; these drive the library as it will.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use precisiond::report::outbox::OutboxConfig;
use precisiond::report::{Event, EventKind, Outbox, Sender, SenderConfig, SenderStatus};

use crate::support::{ReservedPort, tempdir};

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    auth: Option<String>,
    key: Option<String>,
    ids: Vec<String>,
    body: Value,
    status: u16,
}

/// Decides the answer to the n-th request: a status and extra headers.
type Respond = Arc<dyn Fn(usize, &Received) -> (u16, Vec<(&'static str, String)>) + Send + Sync>;

#[derive(Clone)]
struct Upstream {
    log: Arc<Mutex<Vec<Received>>>,
    respond: Respond,
}

impl Upstream {
    fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// How many times each event id was accepted (answered 2xx).
    fn accepted(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.log.lock().unwrap().iter().filter(|r| (200..300).contains(&r.status)) {
            for id in &r.ids {
                *counts.entry(id.clone()).or_insert(0) += 1;
            }
        }
        counts
    }
}

async fn receive(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap) {
    let body: Value = serde_json::from_slice(&body).expect("the sender posts JSON");
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    let mut received = Received {
        at: Instant::now(),
        auth: header("authorization"),
        key: header("idempotency-key"),
        ids: body["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect(),
        body,
        status: 0,
    };
    let n = up.log.lock().unwrap().len();
    let (status, extra) = (up.respond)(n, &received);
    received.status = status;
    up.log.lock().unwrap().push(received);
    let mut out = HeaderMap::new();
    for (name, value) in extra {
        out.insert(HeaderName::from_static(name), HeaderValue::from_str(&value).unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), out)
}

/// Serves on a port the sender may have found closed until now.
async fn serve(port: ReservedPort, respond: Respond) -> (Upstream, JoinHandle<()>) {
    let listener = port.listen();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let up = Upstream { log: Arc::default(), respond };
    let app = Router::new().route("/v1/events", post(receive)).with_state(up.clone());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (up, task)
}

fn always(status: u16) -> Respond {
    Arc::new(move |_, _| (status, vec![]))
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/v1/events")
}

fn event(i: usize) -> Event {
    Event::new(EventKind::stage(format!("stage-{i}")), "jetson-test").model("det").version("1")
}

/// A running sender and the means to stop it.
struct Running {
    status: watch::Receiver<SenderStatus>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    fn status(&self) -> SenderStatus {
        self.status.borrow().clone()
    }

    /// Stops it and checks that it stops promptly.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(2), self.task).await.expect("the sender stops at once").unwrap();
    }
}

fn start(outbox: &Arc<Outbox>, config: SenderConfig) -> Running {
    let sender = Sender::new(outbox.clone(), config).unwrap();
    let status = sender.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sender.run(async move {
        let _ = stopped.await;
    }));
    Running { status, stop, task }
}

/// Fast retries for tests: 20 ms doubling to 200 ms.
fn fast(url: String) -> SenderConfig {
    SenderConfig::new(url).backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn open(dir: &Path) -> Arc<Outbox> {
    Arc::new(Outbox::open(dir.join("outbox"), 64 << 20).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_while_upstream_is_down_and_all_arrive_once_it_is_up() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let port = ReservedPort::new();
    let addr = port.addr;
    let sender = start(&outbox, fast(url(addr)));
    let events: Vec<Event> = (0..50).map(event).collect();
    for e in &events {
        outbox.append(e).unwrap();
    }
    wait_for("failed attempts", Duration::from_secs(5), || sender.status().failures >= 3).await;
    assert_eq!(outbox.depth(), 50, "nothing leaves the outbox while upstream is down");

    let (up, _server) = serve(port, always(200)).await;
    wait_for("the outbox to drain", Duration::from_secs(10), || outbox.depth() == 0).await;
    let accepted = up.accepted();
    assert_eq!(accepted.len(), 50);
    assert!(accepted.values().all(|&n| n == 1), "each event once: {accepted:?}");
    let received: Vec<Event> = up
        .requests()
        .iter()
        .flat_map(|r| r.body["events"].as_array().unwrap().clone())
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(received, events, "in order, as appended");
    assert_eq!(sender.status().sent, 50);

    // Drained, it sleeps: no request until the next append, which wakes it.
    let before = up.requests().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(up.requests().len(), before, "no polling while the outbox is empty");
    let late = event(50);
    outbox.append(&late).unwrap();
    wait_for("the late event", Duration::from_secs(5), || up.accepted().contains_key(&late.id)).await;
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_honoured() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let port = ReservedPort::new();
    let addr = port.addr;
    let respond: Respond =
        Arc::new(|n, _| if n == 0 { (503, vec![("retry-after", "1".into())]) } else { (200, vec![]) });
    let (up, _server) = serve(port, respond).await;
    let sender = start(&outbox, fast(url(addr)));
    outbox.append(&event(0)).unwrap();
    wait_for("delivery", Duration::from_secs(5), || outbox.depth() == 0).await;
    let requests = up.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, before Retry-After's 1 s");
    assert!(gap < Duration::from_millis(1500), "retried after {gap:?}");
    assert_eq!(requests[0].key, requests[1].key, "a retried batch keeps its Idempotency-Key");
    assert_eq!(requests[0].ids, requests[1].ids);
    assert_eq!(sender.status().failures, 1);
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_set_aside_and_counted_not_retried_forever() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let port = ReservedPort::new();
    let addr = port.addr;
    let respond: Respond = Arc::new(|_, r| {
        let poisoned = r.body["events"].as_array().unwrap().iter().any(|e| e["model"] == "poison");
        (if poisoned { 400 } else { 200 }, vec![])
    });
    let (up, _server) = serve(port, respond).await;
    let mut events: Vec<Event> = (0..8).map(event).collect();
    events[5] = Event::new(EventKind::Accepted {}, "jetson-test").model("poison");
    outbox.append_all(&events).unwrap();
    let sender = start(&outbox, fast(url(addr)));

    wait_for("the outbox to drain", Duration::from_secs(5), || outbox.depth() == 0).await;
    let accepted = up.accepted();
    assert_eq!(accepted.len(), 7, "every other event arrives");
    assert!(accepted.values().all(|&n| n == 1));
    assert!(!accepted.contains_key(&events[5].id));
    assert_eq!(outbox.dead_lettered(), 1);
    assert_eq!(sender.status().dead_lettered, 1);
    let dead = fs::read_to_string(outbox.dead_letter_path()).unwrap();
    assert!(dead.contains(&events[5].id) && dead.contains("\"status\":400"), "{dead}");
    // Halving finds the one refused event: 1 + 2 + 2 + 2 requests for 8 events.
    let requests = up.requests().len();
    assert!(requests <= 8, "{requests} requests");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(up.requests().len(), requests, "the refused event is not sent again");

    // The count reaches upstream with the next batch.
    outbox.append(&event(9)).unwrap();
    wait_for("the next batch", Duration::from_secs(5), || outbox.depth() == 0).await;
    assert_eq!(up.requests().last().unwrap().body["outbox"]["dead_lettered"], 1);
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_appended_while_down_all_arrive() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let port = ReservedPort::new();
    let addr = port.addr;
    let sender = start(&outbox, fast(url(addr)));
    let events: Vec<Event> = (0..10_000).map(event).collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let outbox_for_append = outbox.clone();
    // The first 1,000 one fsync each, as the daemon appends; the rest 100 per fsync (`append_all`), so that the
    // test stays short on a busy disk.
    let (single, grouped) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        for e in &events[..1000] {
            outbox_for_append.append(e).unwrap();
        }
        let single = start.elapsed();
        let start = Instant::now();
        for chunk in events[1000..].chunks(100) {
            outbox_for_append.append_all(chunk).unwrap();
        }
        (single, start.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(outbox.depth(), 10_000);
    assert!(sender.status().failures >= 1, "upstream was down");

    let start = Instant::now();
    let (up, _server) = serve(port, always(200)).await;
    wait_for("the outbox to drain", Duration::from_secs(30), || outbox.depth() == 0).await;
    let drain_time = start.elapsed();
    let accepted = up.accepted();
    assert_eq!(accepted.len(), 10_000, "none lost");
    assert!(ids.iter().all(|id| accepted.get(id) == Some(&1)), "each once");
    println!(
        "upstream: append {:.0} events/s (fsync each), {:.0} events/s (100 per fsync); 10000 drained in {:.2} s \
         ({} requests)",
        1000.0 / single.as_secs_f64(),
        9000.0 / grouped.as_secs_f64(),
        drain_time.as_secs_f64(),
        up.requests().len()
    );
    sender.stop().await;
    let left: Vec<_> = fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".events"))
        .collect();
    assert!(left.len() <= 1, "acknowledged segments are deleted: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_is_read_from_its_file_on_every_attempt() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let token_file = dir.path().join("token");
    fs::write(&token_file, "  secret-1 \n").unwrap();
    let port = ReservedPort::new();
    let addr = port.addr;
    let respond: Respond =
        Arc::new(|_, r| (if r.auth.as_deref() == Some("Bearer secret-2") { 200 } else { 401 }, vec![]));
    let (up, _server) = serve(port, respond).await;
    let sender = start(&outbox, fast(url(addr)).token_file(&token_file));
    let e = event(0);
    outbox.append(&e).unwrap();
    wait_for("refused attempts", Duration::from_secs(5), || up.requests().len() >= 2).await;
    assert_eq!(up.requests()[0].auth.as_deref(), Some("Bearer secret-1"), "trimmed");
    assert_eq!(outbox.depth(), 1, "a 401 is the device's configuration, not the event's fault: kept");
    assert!(sender.status().last_error.unwrap().contains("401"));

    fs::write(&token_file, "secret-2\n").unwrap();
    wait_for("delivery with the rotated token", Duration::from_secs(5), || outbox.depth() == 0).await;
    assert_eq!(up.accepted().get(&e.id), Some(&1));
    assert_eq!(outbox.dead_lettered(), 0);
    assert!(up.requests().iter().all(|r| r.key == up.requests()[0].key));
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_over_max_bytes_are_counted_and_reported_upstream() {
    let dir = tempdir();
    let line = event(10).to_json().len() as u64 + 1; // events 10 to 99 have lines of one length
    let config = OutboxConfig { max_bytes: line * 10, segment_bytes: line * 4, dead_letter_max_bytes: 1 << 20 };
    let outbox = Arc::new(Outbox::open_with(dir.path().join("outbox"), config).unwrap());
    let events: Vec<Event> = (0..30).map(event).collect();
    for e in &events {
        outbox.append(e).unwrap();
    }
    assert_eq!((outbox.depth(), outbox.dropped()), (10, 20));

    let port = ReservedPort::new();
    let addr = port.addr;
    let (up, _server) = serve(port, always(200)).await;
    let sender = start(&outbox, fast(url(addr)));
    wait_for("the outbox to drain", Duration::from_secs(5), || outbox.depth() == 0).await;
    let accepted = up.accepted();
    assert!(events[20..].iter().all(|e| accepted.contains_key(&e.id)), "the newest are kept");
    assert_eq!(accepted.len(), 10);
    assert_eq!(up.requests()[0].body["outbox"]["dropped"], 20);
    sender.stop().await;
    drop(outbox);
    let outbox = Outbox::open_with(dir.path().join("outbox"), config).unwrap();
    assert_eq!(outbox.dropped(), 20, "the count survives a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_torn_last_line_is_skipped_and_the_rest_is_sent() {
    let dir = tempdir();
    let events: Vec<Event> = (0..5).map(event).collect();
    {
        // Killed after the appends, before any acknowledgement; the last write torn half-way.
        let outbox = open(dir.path());
        outbox.append_all(&events).unwrap();
    }
    let segment = fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "events"))
        .unwrap();
    let torn = event(5).to_json();
    let mut bytes = fs::read(&segment).unwrap();
    bytes.extend_from_slice(&torn.as_bytes()[..torn.len() - 7]);
    fs::write(&segment, bytes).unwrap();

    let outbox = open(dir.path());
    assert_eq!(outbox.depth(), 5);
    let port = ReservedPort::new();
    let addr = port.addr;
    let (up, _server) = serve(port, always(200)).await;
    let sender = start(&outbox, fast(url(addr)));
    outbox.append(&event(6)).unwrap();
    wait_for("the outbox to drain", Duration::from_secs(5), || outbox.depth() == 0).await;
    assert_eq!(up.accepted().len(), 6);
    assert!(events.iter().all(|e| up.accepted().get(&e.id) == Some(&1)));
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_long_backoff_at_once() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let nobody = ReservedPort::new();
    let config = SenderConfig::new(url(nobody.addr)).backoff(Duration::from_secs(300), Duration::from_secs(300));
    let sender = start(&outbox, config);
    outbox.append(&event(0)).unwrap();
    wait_for("a failed attempt", Duration::from_secs(5), || sender.status().failures >= 1).await;
    assert!(sender.status().retry_at.is_some());
    sender.stop().await;
    assert_eq!(outbox.depth(), 1, "kept for the next run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_refusing_everything_does_not_empty_the_outbox_at_full_speed() {
    let dir = tempdir();
    let outbox = open(dir.path());
    let port = ReservedPort::new();
    let addr = port.addr;
    let (up, _server) = serve(port, always(422)).await;
    outbox.append_all(&(0..64).map(event).collect::<Vec<_>>()).unwrap();
    let sender = start(&outbox, fast(url(addr)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = sender.status();
    assert!(status.last_error.as_deref().is_some_and(|e| e.contains("slowing down")), "{status:?}");
    // Halving alone would have set all 64 aside in 127 quick requests.
    assert!(outbox.dead_lettered() < 32, "{} set aside, {} requests", outbox.dead_lettered(), up.requests().len());
    assert_eq!(outbox.depth() + outbox.dead_lettered(), 64);
    sender.stop().await;
}
