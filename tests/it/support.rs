//! Shared test support: where the fetched assets and the judge venv are, running the binary, asking the judges, and
//! the helpers more than one test file needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use precisiond::trt::run::RunError;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fetched real assets (`make assets`); a missing one fails the test, it is never skipped.
pub fn assets() -> PathBuf {
    std::env::var_os("PRECISIOND_ASSETS").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/assets"))
}

pub fn asset(relative: &str) -> PathBuf {
    let path = assets().join(relative);
    assert!(path.exists(), "missing test asset {}: run `make assets` (scripts/fetch-assets.sh) first", path.display());
    path
}

/// The real models the tests use, by short name.
pub fn model(name: &str) -> PathBuf {
    asset(&format!("models/{name}.onnx"))
}

pub const REAL_MODELS: [&str; 4] = ["det", "rec", "cls", "digits_cnn"];

pub fn python() -> PathBuf {
    let venv = std::env::var_os("PRECISIOND_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "missing the judge venv {}: run `make assets` first", python.display());
    python
}

/// Runs `scripts/judge.py ARGS` and returns its JSON answer; a judge failure fails the test.
pub fn judge(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("scripts/judge.py"));
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "judge {:?} failed:\n{}",
        args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("judge prints JSON")
}

pub fn precisiond() -> Command {
    Command::new(env!("CARGO_BIN_EXE_precisiond"))
}

/// Runs the binary; returns (exit code, stdout, stderr).
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (i32, String, String) {
    let mut cmd = precisiond();
    for a in args {
        cmd.arg(a);
    }
    let Output { status, stdout, stderr } = cmd.output().expect("binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

/// Writes arrays as an uncompressed `.npz` (what numpy's `savez` writes) for the Python judges.
pub fn write_npz(path: &Path, arrays: &[(&str, &precisiond::tensor::Tensor)]) {
    let file = std::fs::File::create(path).expect("create npz");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, tensor) in arrays {
        zip.start_file(format!("{name}.npy"), options).expect("zip member");
        precisiond::inputs::npy::write_npy(&mut zip, tensor).expect("npy member");
    }
    zip.finish().expect("finish npz");
}

/// An image recipe from TOML text (the `[inputs.NAME]` table of a precision spec).
pub fn recipe(toml_text: &str) -> precisiond::inputs::ImageRecipe {
    toml::from_str(toml_text).expect("recipe parses")
}

/// A sealed bundle made by `scripts/make_bundles.py` from the real assets (det, det32, rec, cls, digits), built once
/// per test run into `.cache/test-bundles/` (the script is deterministic, so a complete earlier build is reused).
pub fn bundle(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo().join(".cache/test-bundles");
    let dir = root.join(name);
    // Rebuilt whenever the script changes: a bundle from an older script would test stale data.
    let script = std::fs::read(repo().join("scripts/make_bundles.py")).expect("make_bundles.py");
    let stamp_path = root.join(format!("{name}.stamp"));
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&script));
    let stamp: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if !dir.join("bundle.toml").exists() || std::fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp.as_str()) {
        let out = Command::new(python())
            .arg(repo().join("scripts/make_bundles.py"))
            .arg(&root)
            .args(["--only", name])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "make_bundles.py {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let (code, _, err) = run(&[&"bundle", &"seal", &dir]);
        assert_eq!(code, 0, "sealing {name}: {err}");
        std::fs::write(&stamp_path, &stamp).expect("stamp");
    }
    dir
}

/// An example program next to this test binary: `target/<profile>/deps/it-<hash>` → `target/<profile>/examples/NAME`.
/// `cargo test` builds examples, but `cargo test --test it` does not.
fn example(name: &str, what: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "missing {what} {}: build it with `cargo build --release --examples` (`cargo test --test it` \
         builds no examples)",
        path.display()
    );
    path
}

/// The trtexec stand-in (`examples/trtexec_standin.rs`).
pub fn trtexec_standin() -> PathBuf {
    example("trtexec_standin", "the trtexec stand-in")
}

/// The example application `examples/live_consumer.rs`.
pub fn live_consumer() -> PathBuf {
    example("live_consumer", "the example consumer")
}

/// Processes whose command line mentions `needle` (a temporary folder of the test): what a killed build left.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            found.push(pid);
        }
    }
    found
}

/// Another test's fork can hold a just-written script open for writing until that child's exec, and exec then
/// fails with ETXTBSY; it passes in a moment.
pub fn retry_busy<T>(mut f: impl FnMut() -> Result<T, RunError>) -> Result<T, RunError> {
    for _ in 0..100 {
        match f() {
            Err(RunError::Spawn { source, .. }) if source.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
    f()
}

/// Processes of group `pgid` that are not zombies, from /proc.
pub fn live_members(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

/// A refusal through the binary: exit 1, nothing on stdout, `error:` first, every needle in stderr; returns stderr.
pub fn refused(args: &[&dyn AsRef<std::ffi::OsStr>], says: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 1, "exit code; stdout:\n{out}\nstderr:\n{err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.starts_with("error: "), "{err}");
    for needle in says {
        assert!(err.contains(needle), "stderr should say {needle:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A loopback port bound but not yet listening: a client finds nobody there (connection refused), and no other
/// test can take the port meanwhile, as it could if the port were picked and closed (a neighbour's client would
/// then reach this test's server, or this test's client the neighbour's).
pub struct ReservedPort {
    socket: socket2::Socket,
    pub addr: std::net::SocketAddr,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        ReservedPort { socket, addr }
    }

    /// Starts listening (blocking mode; tokio callers set it non-blocking).
    pub fn listen(self) -> std::net::TcpListener {
        self.socket.listen(128).unwrap();
        self.socket.into()
    }
}
