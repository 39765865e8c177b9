//! live_consumer: an EXAMPLE application that serves what precisiond publishes. It is not part of the daemon, is
//! never installed, and exists to show (and, in tests/it/consumer.rs, to prove) the consumer side of the contract in
//! PRODUCT.md: "an application reads live/<model>/model.onnx and reloads when the link changes".
//!
//! ```text
//! live_consumer --live STATE_DIR/live/MODEL --listen 127.0.0.1:PORT [--input NAME=D1,D2,...]...
//!   POST /infer   body: every input's f32 elements, little-endian, inputs in the model's order
//!                 → {"version": "N", "outputs": {"<name>": {"shape": [...], "data": [...]}}}
//!   GET /version  → {"version": "N", "folder": "..."}
//! ```
//! It prints `listening on ADDR` on stdout once it serves (so `--listen 127.0.0.1:0` works), and logs to stderr.
//!
//! What it demonstrates:
//! - Resolve the link once per load, then read only inside the version folder it named. Version folders are
//!   immutable, so a model read this way is whole and of one version; reading `live/<model>/...` twice could see two.
//! - Load and compile the new version beside the old one, and swap an `Arc` under a lock only when it is ready: a
//!   request holds the `Arc` it started with, so requests in flight finish on the old model, new ones get the new
//!   one, and none fails or waits for a compile.
//! - A version that does not load leaves the old one serving; the reason is logged.
//!
//! Watching: inotify on the link's folder `live/` through the `notify` crate (already a dependency, for the daemon's
//! inbox), so a switch is seen at once. Each event only prompts a `readlink` of `live/<model>`: the store replaces
//! the link by rename, so a readlink sees the old target or the new one, and a burst of events (temporary link,
//! rename) costs a few syscalls and at most one load. Switches faster than a load are coalesced: only the target
//! found is loaded. A readlink every second as well covers what inotify can lose (a queue overflow); where no watch
//! can be set up (inotify instances exhausted), that readlink runs every 100 ms instead.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use clap::Parser;
use notify::{RecursiveMode, Watcher};
use serde_json::{Value, json};

use precisiond::exec::Executor;
use precisiond::model::Model;
use precisiond::tensor::{DType, Tensor, TensorData};

/// A readlink when no event came for this long.
const RECHECK: Duration = Duration::from_secs(1);
/// The same, when there is no watch.
const POLL: Duration = Duration::from_millis(100);
/// Far above any input this example serves; a bound so that a bad Content-Length cannot exhaust memory.
const MAX_BODY: usize = 256 << 20;

#[derive(Parser)]
#[command(about = "Example consumer of precisiond's live/<model> link (cpu backend)")]
struct Args {
    /// The live link, STATE_DIR/live/MODEL.
    #[arg(long)]
    live: PathBuf,
    /// Address to serve HTTP on; port 0 picks a free one (printed on stdout).
    #[arg(long)]
    listen: String,
    /// Shape of an input whose declared shape is not concrete, NAME=D1,D2,...
    #[arg(long = "input", value_parser = parse_input)]
    inputs: Vec<(String, Vec<usize>)>,
}

fn parse_input(text: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = text.split_once('=').ok_or("expected NAME=D1,D2,...")?;
    let dims = dims.split(',').map(|d| d.trim().parse::<usize>().map_err(|e| format!("`{d}`: {e}")));
    Ok((name.to_owned(), dims.collect::<Result<_, _>>()?))
}

/// One version, compiled and ready.
struct Loaded {
    version: String,
    folder: PathBuf,
    executor: Executor,
}

impl Loaded {
    /// Input elements per request, in the executor's input order.
    fn input_sizes(&self) -> Vec<usize> {
        self.executor.inputs().iter().map(|(_, shape)| shape.iter().product()).collect()
    }
}

struct Serving {
    current: Mutex<Arc<Loaded>>,
}

impl Serving {
    fn get(&self) -> Arc<Loaded> {
        // Only ever held to clone or replace an Arc: nothing can be left half-done by a panic.
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, loaded: Arc<Loaded>) -> Arc<Loaded> {
        std::mem::replace(&mut *self.current.lock().unwrap_or_else(PoisonError::into_inner), loaded)
    }
}

/// The version folder `target` (what `live` pointed at when read) names, loaded and compiled.
fn load(live: &Path, target: &Path, shapes: &[(String, Vec<usize>)]) -> Result<Loaded, String> {
    // A relative target is relative to the link's folder; the store writes `../engines/<model>/<N>`.
    let folder = fs::canonicalize(live.parent().unwrap_or(Path::new(".")).join(target))
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let version = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let model = Model::load(&folder.join("model.onnx")).map_err(|e| e.to_string())?;
    let executor = Executor::new(&model, shapes).map_err(|e| e.to_string())?;
    if let Some((decl, _)) = executor.inputs().iter().find(|(d, _)| d.dtype.is_some_and(|t| t != DType::F32)) {
        return Err(format!("input `{}` is not float32; this example takes f32 bodies only", decl.name));
    }
    Ok(Loaded { version, folder, executor })
}

fn watch(live: PathBuf, shapes: Vec<(String, Vec<usize>)>, serving: Arc<Serving>, mut seen: PathBuf) {
    let (events, prompted) = mpsc::channel::<notify::Result<notify::Event>>();
    let dir = live.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Kept alive for the loop's lifetime: dropping the watcher ends the watch.
    let watcher = notify::recommended_watcher(events.clone()).and_then(|mut w| {
        w.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    let every = match &watcher {
        Ok(_) => RECHECK,
        Err(e) => {
            eprintln!("live_consumer: cannot watch {}: {e}; checking the link every {POLL:?}", dir.display());
            POLL
        }
    };
    let mut last_error: Option<String> = None;
    loop {
        // First before waiting: the link may have moved between the first load and the watch.
        check(&live, &shapes, &serving, &mut seen, &mut last_error);
        // `events` is held here too, so the channel never disconnects: an Err is only the timeout.
        let _ = prompted.recv_timeout(every);
        while prompted.try_recv().is_ok() {}
    }
}

/// Loads and swaps in the version `live` points at, if it is not the one last seen there.
fn check(
    live: &Path,
    shapes: &[(String, Vec<usize>)],
    serving: &Serving,
    seen: &mut PathBuf,
    last_error: &mut Option<String>,
) {
    let target = match fs::read_link(live) {
        Ok(target) => target,
        Err(e) => {
            let error = format!("cannot read the link {}: {e}", live.display());
            if last_error.as_ref() != Some(&error) {
                eprintln!("live_consumer: {error}; still serving version {}", serving.get().version);
                *last_error = Some(error);
            }
            return;
        }
    };
    *last_error = None;
    if target == *seen {
        return;
    }
    // Remembered before loading: a version that fails is tried once, not at every event. Should the link move again
    // while this one loads, its events are waiting and the next readlink sees a target unlike `seen`.
    *seen = target.clone();
    match load(live, &target, shapes) {
        Ok(loaded) if loaded.folder == serving.get().folder => {}
        Ok(loaded) => {
            let (version, folder) = (loaded.version.clone(), loaded.folder.clone());
            let old = serving.set(Arc::new(loaded));
            eprintln!("live_consumer: serving version {version} ({}), was {}", folder.display(), old.version);
        }
        Err(e) => eprintln!(
            "live_consumer: version at {} failed to load, still serving version {}: {e}",
            target.display(),
            serving.get().version
        ),
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// One HTTP/1.1 request; `None` when the client closed the connection between requests.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("malformed request line"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut close = version == "HTTP/1.0";
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(bad("connection closed inside the headers"));
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { return Err(bad("malformed header")) };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| bad("bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked bodies are not supported; send Content-Length"));
        }
    }
    if length > MAX_BODY {
        return Err(bad("body too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, body, close }))
}

fn tensor_json(tensor: &Tensor) -> Value {
    let data = match tensor.data() {
        TensorData::F32(v) => json!(v),
        TensorData::I64(v) => json!(v),
        TensorData::I32(v) => json!(v),
        TensorData::U8(v) => json!(v),
    };
    json!({ "shape": tensor.shape(), "data": data })
}

fn infer(loaded: &Loaded, body: &[u8]) -> Result<Value, (u16, String)> {
    let sizes = loaded.input_sizes();
    let expected = sizes.iter().sum::<usize>() * 4;
    if body.len() != expected {
        return Err((400, format!("the body has {} bytes; version {} takes {expected}", body.len(), loaded.version)));
    }
    let mut values = body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let inputs: Vec<Tensor> = loaded
        .executor
        .inputs()
        .iter()
        .zip(&sizes)
        .map(|((_, shape), &n)| Tensor::from_f32(shape.clone(), values.by_ref().take(n).collect()).expect("sized"))
        .collect();
    let outputs = loaded.executor.run(&inputs).map_err(|e| (500, e.to_string()))?;
    let outputs: BTreeMap<&str, Value> =
        loaded.executor.output_names().iter().map(String::as_str).zip(outputs.iter().map(tensor_json)).collect();
    Ok(json!({ "version": loaded.version, "outputs": outputs }))
}

fn handle(request: &Request, serving: &Serving) -> (u16, Value) {
    let answer = match (request.method.as_str(), request.path.as_str()) {
        // One snapshot per request: a swap during `run` does not touch the model it runs on.
        ("POST", "/infer") => infer(&serving.get(), &request.body),
        ("GET", "/version") => {
            let loaded = serving.get();
            Ok(json!({ "version": loaded.version, "folder": loaded.folder }))
        }
        (_, "/infer" | "/version") => Err((405, format!("{} is not allowed here", request.method))),
        (_, path) => Err((404, format!("no such endpoint {path}; try POST /infer or GET /version"))),
    };
    match answer {
        Ok(value) => (200, value),
        Err((status, error)) => (status, json!({ "error": error })),
    }
}

fn respond(out: &mut impl Write, status: u16, body: &Value, close: bool) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    let body = body.to_string();
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: \
         {connection}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn serve(stream: TcpStream, serving: &Serving) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = io::BufWriter::new(stream);
    loop {
        match read_request(&mut reader) {
            Ok(None) => return Ok(()),
            Ok(Some(request)) => {
                let (status, body) = handle(&request, serving);
                respond(&mut writer, status, &body, request.close)?;
                if request.close {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return respond(&mut writer, 400, &json!({ "error": e.to_string() }), true);
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Nothing to serve until something is published: start the application after the first publish.
    let first = fs::read_link(&args.live)
        .map_err(|e| format!("cannot read the link {}: {e}", args.live.display()))
        .and_then(|target| Ok((load(&args.live, &target, &args.inputs)?, target)));
    let (loaded, seen) = match first {
        Ok(first) => first,
        Err(e) => {
            eprintln!("live_consumer: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("live_consumer: serving version {} ({})", loaded.version, loaded.folder.display());
    let serving = Arc::new(Serving { current: Mutex::new(Arc::new(loaded)) });
    let listener = match TcpListener::bind(&args.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("live_consumer: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("live_consumer: {e}");
            return ExitCode::FAILURE;
        }
    }
    let _ = io::stdout().flush();

    let watched = serving.clone();
    thread::spawn(move || watch(args.live, args.inputs, watched, seen));
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let serving = serving.clone();
                thread::spawn(move || {
                    if let Err(e) = serve(stream, &serving) {
                        eprintln!("live_consumer: connection: {e}");
                    }
                });
            }
            Err(e) => eprintln!("live_consumer: accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}
