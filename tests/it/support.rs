//! Shared test support: where the fetched assets and the judge venv are, running the binary, asking the judges.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// The trtexec stand-in (`examples/trtexec_standin.rs`), next to this test binary: `target/<profile>/deps/it-<hash>`
/// → `target/<profile>/examples/trtexec_standin`. `cargo test` builds examples, but `cargo test --test it` does not.
pub fn trtexec_standin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps");
    let path = profile.join("examples").join("trtexec_standin");
    assert!(
        path.exists(),
        "missing the trtexec stand-in {}: build it with `cargo build --release --examples` (`cargo test --test it` \
         builds no examples)",
        path.display()
    );
    path
}

/// The example application `examples/live_consumer.rs`, found like [`trtexec_standin`].
pub fn live_consumer() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps");
    let path = profile.join("examples").join("live_consumer");
    assert!(
        path.exists(),
        "missing the example consumer {}: build it with `cargo build --release --examples` (`cargo test --test it` \
         builds no examples)",
        path.display()
    );
    path
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
