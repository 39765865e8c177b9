//! The task that drains the [`Outbox`] to `[upstream] url`.
//!
//! # Request
//! `POST url` with `Content-Type: application/json`, `Authorization: Bearer <token>` (the token file, trimmed, read
//! on every attempt), `Idempotency-Key` (the batch's ids hashed: the same batch retried has the same key) and
//!
//! ```json
//! {"events": [Event, …], "outbox": {"dropped": 0, "dead_lettered": 0, "depth": 12}}
//! ```
//! `outbox` holds the device's lifetime counts of events dropped (outbox full) and refused, so that a gap is visible
//! upstream, and how many were waiting when the batch was taken. Delivery is at least once: receivers deduplicate
//! by event id.
//!
//! # Responses
//! - 2xx: every event in the batch is acknowledged (removed from the outbox).
//! - No answer (connect error, timeout), 408, 429, 5xx: the same batch again after a backoff: exponential from
//!   `backoff_initial`, doubled per failure up to `backoff_max`, with jitter (half fixed, half random). A
//!   `Retry-After` (seconds or HTTP-date, up to `retry_after_max`) is the least wait: the retry comes after it,
//!   or after the backoff if that is longer (a server answering `Retry-After: 0` is not hammered).
//! - 401, 403, 404, 407 and 3xx (redirects are not followed): retried the same way. These say the device's token or
//!   URL is wrong, not that the events are: dead-lettering would empty the outbox because of a configuration
//!   mistake. [`SenderStatus::last_error`] names the status.
//! - Any other 4xx (400, 413, 422, …): the upstream refuses the content. A batch of one event is dead-lettered
//!   (kept aside in the outbox's `dead-letter.jsonl`, counted, never sent again); a larger batch is split in halves
//!   and each half is sent on its own, so that only the refused events are set aside (a 413 finds a batch size that
//!   fits the same way). More than [`REFUSALS_BEFORE_SLOWING`] refusals in a row (no delivery between) look like
//!   upstream refusing everything (a schema change, a broken receiver) rather than bad events: each further refusal
//!   then waits a backoff step, so that the outbox is not emptied into the dead letters at full speed before
//!   anyone notices (`last_error`, the dead-letter count).
//!
//! The task sleeps on the outbox's notification when there is nothing to send (no polling), never holds the
//! outbox while waiting for the network, and stops at once when `shutdown` completes; a batch in flight is then
//! simply sent again by the next run.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::outbox::{Outbox, OutboxError, OutboxStats, Pending};
use super::{body_excerpt, describe, http_client, read_token, retry_after};
use crate::error::{Diagnose, Fault};

#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub url: String,
    pub token_file: Option<PathBuf>,
    /// Events per request.
    pub batch_events: usize,
    /// Bytes of events per request (a single larger event still goes, alone).
    pub batch_bytes: u64,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The longest `Retry-After` obeyed; a longer one is cut to this.
    pub retry_after_max: Duration,
}

impl SenderConfig {
    /// 256 events or 512 KiB per request, 10 s to connect, 30 s per request, backoff 1 s doubling to 5 min,
    /// `Retry-After` obeyed up to 1 h.
    pub fn new(url: impl Into<String>) -> SenderConfig {
        SenderConfig {
            url: url.into(),
            token_file: None,
            batch_events: 256,
            batch_bytes: 512 << 10,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            retry_after_max: Duration::from_secs(3600),
        }
    }

    pub fn token_file(mut self, path: impl Into<PathBuf>) -> SenderConfig {
        self.token_file = Some(path.into());
        self
    }

    pub fn backoff(mut self, initial: Duration, max: Duration) -> SenderConfig {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("[upstream] url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl Diagnose for SenderError {
    fn fault(&self) -> Fault {
        match self {
            SenderError::BadUrl { .. } => Fault::Input,
            SenderError::Client(_) => Fault::Environment,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SenderError::BadUrl { .. } => Some("write a full URL, e.g. https://fleet.example.com/v1/events".into()),
            SenderError::Client(_) => None,
        }
    }
}

/// What the sender has done, for `/status` and `/metrics`; watch it through [`Sender::status`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SenderStatus {
    /// Events acknowledged by upstream in this run.
    pub sent: u64,
    /// Events dead-lettered in this run.
    pub dead_lettered: u64,
    /// Requests made in this run.
    pub requests: u64,
    /// Attempts that failed (no answer, or a status retried) in this run.
    pub failures: u64,
    /// Failures since the last success; 0 when upstream is reachable.
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_success: Option<SystemTime>,
    /// Set while waiting to retry.
    pub retry_at: Option<SystemTime>,
}

pub struct Sender {
    outbox: Arc<Outbox>,
    client: reqwest::Client,
    config: SenderConfig,
    status: watch::Sender<SenderStatus>,
}

/// One request's worth of events, with the outbox counts taken when it was read.
struct Batch {
    events: Vec<Pending>,
    stats: OutboxStats,
}

enum Outcome {
    Delivered,
    Retry { after: Option<Duration>, error: String },
    Refused { status: u16, message: String },
}

/// Enough for one bad event in a full batch (halving 256 events refuses at most 9 requests in a row), few enough
/// that a receiver refusing everything costs a handful of events before the sender slows down.
pub const REFUSALS_BEFORE_SLOWING: u32 = 16;

/// What a response status means for the batch (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Delivered,
    Retry,
    Refused,
}

pub(crate) fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Delivered,
        401 | 403 | 404 | 407 | 408 | 429 => Class::Retry,
        400..=499 => Class::Refused,
        _ => Class::Retry,
    }
}

impl Sender {
    pub fn new(outbox: Arc<Outbox>, config: SenderConfig) -> Result<Sender, SenderError> {
        let bad = |reason: String| SenderError::BadUrl { url: config.url.clone(), reason };
        let url = reqwest::Url::parse(&config.url).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!("the scheme is `{}`; only http and https are sent to", url.scheme())));
        }
        let client = http_client(config.connect_timeout, config.request_timeout)
            .map_err(|e| SenderError::Client(describe(&e)))?;
        let (status, _) = watch::channel(SenderStatus::default());
        Ok(Sender { outbox, client, config, status })
    }

    pub fn status(&self) -> watch::Receiver<SenderStatus> {
        self.status.subscribe()
    }

    /// Drains the outbox until `shutdown` completes (e.g. a cancellation token's `cancelled_owned()`).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let notify = self.outbox.notifier();
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        // Sub-batches still to send, front first; more than one only while a refused batch is being split.
        let mut work: VecDeque<Batch> = VecDeque::new();
        let mut refused_in_a_row = 0u32;
        loop {
            if work.is_empty() {
                match self.take_batch().await {
                    Ok(Some(batch)) => work.push_back(batch),
                    Ok(None) => {
                        tokio::select! {
                            _ = notify.notified() => continue,
                            _ = &mut shutdown => return,
                        }
                    }
                    Err(error) => {
                        let delay = backoff.next();
                        self.failed(error, delay, false);
                        if sleep_or_shutdown(delay, &mut shutdown).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let batch = work.front().expect("filled above");
            let outcome = tokio::select! {
                outcome = self.attempt(batch) => outcome,
                _ = &mut shutdown => return,
            };
            match outcome {
                Outcome::Delivered => {
                    let batch = work.pop_front().expect("front exists");
                    backoff.reset();
                    refused_in_a_row = 0;
                    let ids: Vec<String> = batch.events.iter().map(|p| p.id.clone()).collect();
                    let n = ids.len() as u64;
                    let outbox = self.outbox.clone();
                    let acked = blocking(move || outbox.ack(&ids)).await;
                    self.status.send_modify(|s| {
                        s.sent += n;
                        s.consecutive_failures = 0;
                        s.last_success = Some(SystemTime::now());
                        s.retry_at = None;
                        if let Err(e) = acked {
                            // Delivered; only a restart could send these again, and receivers deduplicate.
                            s.last_error = Some(format!("acknowledging {n} events: {e}"));
                        }
                    });
                }
                Outcome::Retry { after, error } => {
                    let computed = backoff.next();
                    let delay = after.map_or(computed, |a| a.min(self.config.retry_after_max).max(computed));
                    self.failed(error, delay, true);
                    if sleep_or_shutdown(delay, &mut shutdown).await {
                        return;
                    }
                }
                Outcome::Refused { status, message } => {
                    refused_in_a_row = refused_in_a_row.saturating_add(1);
                    if refused_in_a_row > REFUSALS_BEFORE_SLOWING {
                        let delay = backoff.next();
                        self.status.send_modify(|s| {
                            s.last_error = Some(format!(
                                "upstream refused {refused_in_a_row} requests in a row (last: HTTP {status}: \
                                 {message}); slowing down"
                            ));
                            s.retry_at = Some(SystemTime::now() + delay);
                        });
                        if sleep_or_shutdown(delay, &mut shutdown).await {
                            return;
                        }
                    } else {
                        // The upstream answered: it is reachable.
                        backoff.reset();
                    }
                    let batch = work.pop_front().expect("front exists");
                    if batch.events.len() > 1 {
                        let mut first = batch.events;
                        let second = first.split_off(first.len() / 2);
                        work.push_front(Batch { events: second, stats: batch.stats });
                        work.push_front(Batch { events: first, stats: batch.stats });
                        continue;
                    }
                    let reason = format!("HTTP {status}: {message}");
                    let outbox = self.outbox.clone();
                    let events = batch.events;
                    let reason_for_outbox = reason.clone();
                    let moved = blocking(move || outbox.dead_letter(&events, Some(status), &reason_for_outbox)).await;
                    self.status.send_modify(|s| {
                        s.dead_lettered += moved.as_ref().map_or(0, |n| *n as u64);
                        s.last_error = Some(match &moved {
                            Ok(_) => format!("an event was refused and set aside: {reason}"),
                            Err(e) => format!("an event was refused ({reason}) and cannot be set aside: {e}"),
                        });
                    });
                    if moved.is_err() {
                        // Without the dead letter written the event stays pending; do not spin on it.
                        let delay = backoff.next();
                        if sleep_or_shutdown(delay, &mut shutdown).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    async fn take_batch(&self) -> Result<Option<Batch>, String> {
        let outbox = self.outbox.clone();
        let (max, bytes) = (self.config.batch_events.max(1), self.config.batch_bytes);
        let (events, stats) =
            blocking(move || Ok::<_, OutboxError>((outbox.peek_batch_bytes(max, bytes)?, outbox.stats())))
                .await
                .map_err(|e| format!("reading the outbox: {e}"))?;
        Ok((!events.is_empty()).then_some(Batch { events, stats }))
    }

    async fn attempt(&self, batch: &Batch) -> Outcome {
        let token = match &self.config.token_file {
            None => None,
            Some(path) => match read_token(path) {
                Ok(token) => Some(token),
                Err(error) => return Outcome::Retry { after: None, error },
            },
        };
        let mut request = self
            .client
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key(&batch.events))
            .body(body(batch));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.status.send_modify(|s| s.requests += 1);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Outcome::Retry { after: None, error: describe(&e) },
        };
        let status = response.status().as_u16();
        let after = retry_after(response.headers(), SystemTime::now());
        let text = body_excerpt(response, 1024).await;
        match classify(status) {
            Class::Delivered => Outcome::Delivered,
            Class::Retry => Outcome::Retry { after, error: status_error(status, &text) },
            Class::Refused => Outcome::Refused { status, message: text },
        }
    }

    fn failed(&self, error: String, delay: Duration, counted: bool) {
        self.status.send_modify(|s| {
            if counted {
                s.failures += 1;
            }
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(error);
            s.retry_at = Some(SystemTime::now() + delay);
        });
    }
}

fn status_error(status: u16, text: &str) -> String {
    let what = match status {
        401 | 403 => " (check the token file)",
        404 | 300..=399 => " (check [upstream] url)",
        _ => "",
    };
    if text.is_empty() { format!("HTTP {status}{what}") } else { format!("HTTP {status}{what}: {text}") }
}

/// `{"events":[…],"outbox":{…}}`, built from the stored lines as they are (each is one valid JSON object).
fn body(batch: &Batch) -> Bytes {
    let size: usize = batch.events.iter().map(|p| p.json.len() + 1).sum();
    let mut text = String::with_capacity(size + 128);
    text.push_str("{\"events\":[");
    for (i, pending) in batch.events.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&pending.json);
    }
    let _ = write!(
        text,
        "],\"outbox\":{{\"dropped\":{},\"dead_lettered\":{},\"depth\":{}}}}}",
        batch.stats.dropped, batch.stats.dead_lettered, batch.stats.depth
    );
    Bytes::from(text)
}

/// The first 128 bits of SHA-256 over the batch's ids, in hex: the same batch always has the same key.
fn idempotency_key(events: &[Pending]) -> String {
    let mut hasher = Sha256::new();
    for pending in events {
        hasher.update(pending.id.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize()[..16].iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Runs outbox work (fsync) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, OutboxError> + Send + 'static) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the outbox task failed: {e}")),
    }
}

/// True when `shutdown` came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.as_mut() => true,
    }
}

/// Exponential backoff with "equal jitter": half of each step fixed, half random, so that a fleet coming back
/// online does not retry in lockstep, yet no retry comes sooner than half the step.
struct Backoff {
    initial: Duration,
    max: Duration,
    step: Option<Duration>,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max: max.max(initial), step: None }
    }

    fn reset(&mut self) {
        self.step = None;
    }

    fn next(&mut self) -> Duration {
        let step = match self.step {
            None => self.initial,
            Some(step) => step.saturating_mul(2).min(self.max),
        };
        self.step = Some(step);
        let half = step / 2;
        let random = getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64;
        half + half.mul_f64(random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_documented() {
        for s in [200, 201, 202, 204] {
            assert_eq!(classify(s), Class::Delivered, "{s}");
        }
        for s in [301, 307, 401, 403, 404, 407, 408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(s), Class::Retry, "{s}");
        }
        for s in [400, 405, 409, 410, 413, 415, 422, 451] {
            assert_eq!(classify(s), Class::Refused, "{s}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut steps = Vec::new();
        for _ in 0..12 {
            steps.push(b.next());
        }
        let expected = [1u64, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300];
        for (got, step) in steps.iter().zip(expected) {
            let step = Duration::from_secs(step);
            assert!(*got >= step / 2 && *got <= step, "{got:?} for a step of {step:?}");
        }
        b.reset();
        assert!(b.next() <= Duration::from_secs(1));
    }

    #[test]
    fn body_and_key_are_stable() {
        let events = vec![
            Pending { id: "a".into(), json: r#"{"id":"a"}"#.into() },
            Pending { id: "b".into(), json: r#"{"id":"b"}"#.into() },
        ];
        let batch = Batch { events, stats: OutboxStats { depth: 2, pending_bytes: 22, dropped: 3, dead_lettered: 1 } };
        let value: serde_json::Value = serde_json::from_slice(&body(&batch)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"events": [{"id": "a"}, {"id": "b"}], "outbox": {"dropped": 3, "dead_lettered": 1, "depth": 2}})
        );
        let key = idempotency_key(&batch.events);
        assert_eq!(key.len(), 32);
        assert_eq!(key, idempotency_key(&batch.events));
        assert_ne!(key, idempotency_key(&batch.events[..1]));
    }

    #[test]
    fn bad_urls_are_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(dir.path(), 1 << 20).unwrap());
        for url in ["fleet.example.com/v1/events", "ftp://fleet.example.com/", ""] {
            let err = Sender::new(outbox.clone(), SenderConfig::new(url)).err().expect(url);
            assert!(matches!(err, SenderError::BadUrl { .. }), "{url}: {err}");
        }
        assert!(Sender::new(outbox, SenderConfig::new("https://fleet.example.com/v1/events")).is_ok());
    }
}
