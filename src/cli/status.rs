use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::daemon::config::{self, Config};
use crate::error::{Failure, Fault};

/// Show what the running daemon is doing: each model's live version, verdict, cosine and latency, the job running
/// and its stage, the outbox.
///
/// Asks the daemon's status endpoint for `/status`: the address is `[status] listen` of the configuration
/// (/etc/precisiond/config.toml when it exists, else the default 127.0.0.1:9464), or `--url`. Exit status 2 when
/// no daemon answers there.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the daemon's `/status` document as JSON, as it serves it.
    #[arg(long)]
    json: bool,
    /// The configuration file whose `[status] listen` to ask.
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    config: Option<PathBuf>,
    /// The status endpoint's base URL, e.g. http://127.0.0.1:9464.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

/// How long a daemon on this machine may take to answer; it answers from memory, so a slow one is stuck.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where to ask, and how to say where that came from when nobody answers there.
struct Endpoint {
    url: reqwest::Url,
    /// `127.0.0.1:9464`
    addr: String,
    source: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let endpoint = endpoint(&args)?;
    let document = fetch(&endpoint)?;
    if args.json {
        let text = serde_json::to_string_pretty(&document)
            .map_err(|e| Failure::new(format!("cannot render the status as JSON: {e}"), Fault::Environment))?;
        super::print(&(text + "\n"))
    } else {
        super::print(&summary(&endpoint.addr, &document))
    }
}

fn endpoint(args: &Args) -> Result<Endpoint, Failure> {
    if let Some(text) = &args.url {
        let url = reqwest::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| Failure::new(format!("--url `{text}` is not an http:// URL"), Fault::Input))?;
        let addr = format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(80));
        return Ok(Endpoint { url: status_under(url), addr, source: "--url".into() });
    }
    let (listen, source) = match &args.config {
        Some(path) => (listen_of(path)?, format!("[status] listen of {}", path.display())),
        None if Path::new(config::DEFAULT_PATH).exists() => {
            let path = Path::new(config::DEFAULT_PATH);
            (listen_of(path)?, format!("[status] listen of {}", path.display()))
        }
        None => (Config::local().status.listen, format!("the default address (there is no {})", config::DEFAULT_PATH)),
    };
    let Some(listen) = listen else {
        return Err(Failure::new(format!("the status endpoint is off ({source} is \"off\")"), Fault::Input)
            .with_hint("set [status] listen = \"127.0.0.1:9464\" and restart precisiond, or name another with --url"));
    };
    let addr = connect_addr(listen);
    let url = reqwest::Url::parse(&format!("http://{addr}/status")).expect("an IP address and port make a URL");
    Ok(Endpoint { url, addr: addr.to_string(), source })
}

/// `--url http://host:9464` and `--url http://host:9464/prefix/` ask `…/status` under it; `--url …/status` as given.
fn status_under(mut url: reqwest::Url) -> reqwest::Url {
    let path = url.path().trim_end_matches('/').to_owned();
    if !path.ends_with("/status") {
        url.set_path(&format!("{path}/status"));
    }
    url
}

/// A daemon listening on every address (`0.0.0.0`, `[::]`) is asked on loopback.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// The configuration's `[status] listen`. A configuration the full check refuses still names its address when
/// the key itself is readable: an operator without read access to the trusted keys (root:precisiond, 0640) must
/// still be able to ask the daemon, which read them as its own user.
fn listen_of(path: &Path) -> Result<Option<SocketAddr>, Failure> {
    let error = match Config::load(path) {
        Ok(config) => return Ok(config.status.listen),
        Err(e) => e,
    };
    let listen = std::fs::read_to_string(path).ok().and_then(|text| text.parse::<toml::Table>().ok()).and_then(|t| {
        match t.get("status").and_then(|s| s.get("listen")) {
            None => Some(Config::local().status.listen),
            Some(v) if v.as_str() == Some("off") => Some(None),
            Some(v) => v.as_str()?.parse::<SocketAddr>().ok().map(Some),
        }
    });
    listen.ok_or_else(|| Failure::from(error).context(format!("cannot find the status endpoint in {}", path.display())))
}

fn fetch(endpoint: &Endpoint) -> Result<Value, Failure> {
    let addr = &endpoint.addr;
    let environment = |message: String| Failure::new(message, Fault::Environment);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| environment(format!("cannot start the HTTP client: {e}")))?;
    runtime.block_on(async {
        // The daemon is local: an HTTP(S)_PROXY from the environment must not carry the question elsewhere.
        let client = crate::report::client_builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(3))
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| environment(format!("cannot start the HTTP client: {e}")))?;
        let response = client.get(endpoint.url.clone()).send().await.map_err(|e| {
            if e.is_connect() {
                environment(format!("no precisiond answering on {addr}")).with_hint(format!(
                    "is the daemon running? `systemctl status precisiond` says, `journalctl -u precisiond` says why \
                     not; {addr} is {}",
                    endpoint.source
                ))
            } else if e.is_timeout() {
                environment(format!("precisiond on {addr} did not answer within {} s", TIMEOUT.as_secs()))
                    .with_hint("`journalctl -u precisiond` shows what it is doing")
            } else {
                environment(format!("cannot ask {}: {}", endpoint.url, chain(&e)))
            }
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| environment(format!("cannot read the answer of {addr}: {e}")))?;
        if !status.is_success() {
            let excerpt: String = body.chars().take(200).collect();
            return Err(environment(format!("{} answered {status}: {}", endpoint.url, excerpt.trim())));
        }
        serde_json::from_str::<Value>(&body)
            .ok()
            .filter(|v| v.get("models").is_some_and(Value::is_object))
            .ok_or_else(|| environment(format!("{} did not answer with precisiond's status", endpoint.url)))
    })
}

/// reqwest's message with its causes (`error sending request` alone says nothing).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The human view of `/status`, read as JSON so that a daemon of another version still shows what both know.
fn summary(addr: &str, s: &Value) -> String {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let count = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "precisiond {} on {addr}: {}, backend {}, started {}",
        text(s, "version").unwrap_or_else(|| "?".into()),
        text(s, "state").unwrap_or_else(|| "?".into()),
        text(s, "backend").unwrap_or_else(|| "?".into()),
        text(s, "started_at").unwrap_or_else(|| "?".into()),
    );
    let _ = writeln!(out, "device   {}", device(s.get("device").unwrap_or(&Value::Null)));
    let outbox = s.get("outbox").unwrap_or(&Value::Null);
    let _ = writeln!(
        out,
        "outbox   {} event(s) to send ({} dropped, {} dead letter(s))",
        count(outbox, "depth"),
        count(outbox, "dropped"),
        count(outbox, "dead_letter")
    );

    let models = s.get("models").and_then(Value::as_object);
    let Some(models) = models.filter(|m| !m.is_empty()) else {
        out.push_str("\nno model yet: put a bundle folder into the inbox\n");
        return out;
    };
    let mut rows = vec![["MODEL", "LIVE", "VERDICT", "COSINE", "LATENCY p50/p99", "JOB"].map(String::from).to_vec()];
    let mut failures = Vec::new();
    for (name, m) in models {
        let dash = || "-".to_string();
        let live = m.get("live_version").and_then(Value::as_u64).map_or_else(dash, |v| format!("v{v}"));
        let cosine = m.pointer("/metrics/cosine").and_then(Value::as_f64).map_or_else(dash, |c| format!("{c:.5}"));
        let latency = match (m.pointer("/latency_ms/median"), m.pointer("/latency_ms/p99")) {
            (Some(p50), Some(p99)) => match (p50.as_f64(), p99.as_f64()) {
                (Some(p50), Some(p99)) => format!("{p50:.2}/{p99:.2} ms"),
                _ => dash(),
            },
            _ => dash(),
        };
        let job = m.get("job").filter(|j| !j.is_null()).map_or_else(dash, |j| {
            let mut line = text(j, "state").unwrap_or_else(|| "?".into());
            if let Some(detail) = text(j, "detail").filter(|d| !d.is_empty()) {
                let _ = write!(line, " ({detail})");
            }
            if let Some(since) = text(j, "started_at").filter(|d| !d.is_empty()) {
                let _ = write!(line, " since {since}");
            }
            line
        });
        rows.push(vec![name.clone(), live, text(m, "verdict").unwrap_or_else(dash), cosine, latency, job]);
        if let Some(failure) = text(m, "last_failure") {
            failures.push(format!("{name}: last job failed: {failure}"));
        }
    }
    out.push('\n');
    out.push_str(&table(&rows));
    for line in failures {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn device(d: &Value) -> String {
    if d.is_null() {
        return "unknown".into();
    }
    let mut parts: Vec<String> = d
        .get("gpus")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| {
            let name = g.get("name").and_then(Value::as_str).unwrap_or("GPU");
            match g.get("compute_capability").and_then(Value::as_str) {
                Some(cc) => format!("{name} (sm {cc})"),
                None => name.to_owned(),
            }
        })
        .collect();
    if parts.is_empty() {
        parts.push("no GPU".into());
    }
    for (key, label) in [("cuda_driver", "CUDA"), ("tensorrt", "TensorRT"), ("l4t", "L4T")] {
        if let Some(v) = d.get(key).and_then(Value::as_str) {
            parts.push(format!("{label} {v}"));
        }
    }
    parts.join(", ")
}

/// Columns padded to their widest cell; the last one is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_daemon_on_every_address_is_asked_on_loopback() {
        let cases = [("0.0.0.0:9464", "127.0.0.1:9464"), ("[::]:9000", "[::1]:9000"), ("10.0.0.5:80", "10.0.0.5:80")];
        for (listen, asked) in cases {
            assert_eq!(connect_addr(listen.parse().unwrap()).to_string(), asked);
        }
    }

    #[test]
    fn urls_ask_status_under_their_path() {
        let args = |url: &str| Args { json: false, config: None, url: Some(url.into()) };
        for (given, asked, addr) in [
            ("http://127.0.0.1:9464", "http://127.0.0.1:9464/status", "127.0.0.1:9464"),
            ("http://127.0.0.1:9464/", "http://127.0.0.1:9464/status", "127.0.0.1:9464"),
            ("http://127.0.0.1:9464/status", "http://127.0.0.1:9464/status", "127.0.0.1:9464"),
            ("http://jetson.lan/precisiond/", "http://jetson.lan/precisiond/status", "jetson.lan:80"),
        ] {
            let e = endpoint(&args(given)).unwrap();
            assert_eq!((e.url.as_str(), e.addr.as_str()), (asked, addr), "{given}");
        }
        assert_eq!(endpoint(&args("127.0.0.1:9464")).err().unwrap().exit_code(), 1);
    }

    #[test]
    fn the_summary_shows_each_model_and_the_outbox() {
        let s = json!({
            "version": "0.1.0", "state": "ready", "backend": "tensorrt", "started_at": "2026-11-26T09:00:00Z",
            "device": {"gpus": [{"name": "Orin", "compute_capability": "8.7"}], "tensorrt": "10.3.0", "l4t": "36.4.3"},
            "outbox": {"depth": 2, "dropped": 1, "dead_letter": 0},
            "models": {
                "det": {"live_version": 3, "verdict": "pass", "metrics": {"cosine": 0.99912},
                        "latency_ms": {"median": 4.21, "p99": 5.03}, "job": null},
                "rec": {"live_version": null, "job": {"state": "building", "detail": "final",
                        "started_at": "2026-11-26T10:00:00Z"}, "last_failure": "verification failed"}
            }
        });
        let text = summary("127.0.0.1:9464", &s);
        assert!(text.starts_with("precisiond 0.1.0 on 127.0.0.1:9464: ready, backend tensorrt"), "{text}");
        assert!(text.contains("device   Orin (sm 8.7), TensorRT 10.3.0, L4T 36.4.3\n"), "{text}");
        assert!(text.contains("outbox   2 event(s) to send (1 dropped, 0 dead letter(s))"), "{text}");
        let det = text.lines().find(|l| l.starts_with("det ")).unwrap();
        let cells: Vec<&str> = det.split_whitespace().collect();
        assert_eq!(cells, ["det", "v3", "pass", "0.99912", "4.21/5.03", "ms", "-"], "{text}");
        let rec = text.lines().find(|l| l.starts_with("rec ")).unwrap();
        assert!(rec.ends_with("building (final) since 2026-11-26T10:00:00Z"), "{text}");
        assert!(text.contains("rec: last job failed: verification failed"), "{text}");
        // The header's columns line up with the rows'.
        let header = text.lines().find(|l| l.starts_with("MODEL")).unwrap();
        assert_eq!(header.find("JOB"), rec.find("building"), "{text}");
    }

    #[test]
    fn no_model_says_what_to_do() {
        let text = summary("127.0.0.1:9464", &json!({"models": {}, "device": null}));
        assert!(text.contains("device   unknown") && text.contains("no model yet"), "{text}");
    }
}
