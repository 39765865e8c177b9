//! Reporting upstream (PRODUCT.md, pipeline step 9, and `[upstream]` of the daemon configuration).
//!
//! - [`event`]: what happened, as stable JSON ([`Event`], [`EventKind`]).
//! - [`outbox`]: where events wait, durably, bounded, until upstream has them ([`Outbox`]).
//! - [`sender`]: the task that drains the outbox to `[upstream] url` ([`Sender`]).
//! - [`otlp`]: metrics as OTLP/HTTP JSON for `[upstream] otlp_url`.
//!
//! How the daemon uses it:
//! ```text
//! let outbox = Arc::new(Outbox::open(state_dir.join("outbox"), outbox::DEFAULT_MAX_BYTES)?);
//! let sender = Sender::new(outbox.clone(), SenderConfig::new(url).token_file(token_file))?;
//! let status = sender.status();                       // for /status and /metrics
//! let task = tokio::spawn(sender.run(shutdown_future));
//! outbox.append(&Event::new(EventKind::daemon_started(), device_id))?;   // fsync: from spawn_blocking in async code
//! ```
//! Only this module knows the upstream wire formats.

pub mod event;
pub mod otlp;
pub mod outbox;
pub mod sender;

use std::path::Path;
use std::time::{Duration, SystemTime};

pub use event::{Event, EventKind, LatencyMs, Verdict};
pub use outbox::{Outbox, OutboxConfig, OutboxError, OutboxStats, Pending};
pub use sender::{Sender, SenderConfig, SenderError, SenderStatus};

/// A reqwest client builder, with ring made the process's rustls crypto provider first: reqwest is built without
/// one (Cargo.toml says why) and its `build()` panics when none is installed. Every client is made from this.
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err only when a provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// The HTTP client both exports use: rustls, no redirects (a redirect would carry the bearer token to an address
/// nobody configured; configure the final URL instead), and the given time limits.
pub fn http_client(connect_timeout: Duration, request_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    client_builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("precisiond/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The delay a `Retry-After` header asks for: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// is no delay; anything else is ignored.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The bearer token: the file's text without surrounding whitespace. Read on every attempt so that a rotated token
/// is used without a restart.
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the token: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{}: the token file is empty", path.display()));
    }
    Ok(token.to_string())
}

/// An error with its causes, on one line (reqwest's own message says little: "error sending request").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// At most `limit` bytes of a response body, as text (for error messages; also lets the connection be reused).
async fn body_excerpt(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(limit - bytes.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&bytes).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    /// reqwest has no crypto provider of its own here: without ring installed, building a client panics.
    #[test]
    fn clients_build_with_ring_as_the_crypto_provider() {
        http_client(Duration::from_secs(1), Duration::from_secs(1)).expect("a client");
        client_builder().no_proxy().build().expect("a second client");
        let provider = rustls::crypto::CryptoProvider::get_default().expect("a provider installed");
        assert!(!provider.cipher_suites.is_empty());
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(retry_after(&headers("1"), now), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(&headers(" 120 "), now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&later), now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn token_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "s3cret");
        std::fs::write(&path, " \n").unwrap();
        assert!(read_token(&path).unwrap_err().contains("empty"));
        assert!(read_token(&dir.path().join("absent")).unwrap_err().contains("cannot read"));
    }
}
