//! The daemon, driven as a user would: the real binary, a temporary state folder, bundles copied into the inbox,
//! signals, and what ends up in `live/`, the journal and the outbox.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

/// Tests run side by side: no status endpoint on a fixed port.
const BASE_CONFIG: &str = "inbox = \"inbox\"\nstate_dir = \"state\"\nbackend = \"cpu\"\ndebounce = \"200ms\"\n[status]\nlisten = \"off\"\n";

struct Daemon {
    child: Child,
    dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `precisiond run` on a config under `dir` (inbox, state) with `extra` TOML appended.
    fn start(dir: &Path, extra: &str, env: &[(&str, &Path)]) -> Daemon {
        let config = dir.join("config.toml");
        if !config.exists() {
            std::fs::write(&config, format!("{BASE_CONFIG}{extra}")).unwrap();
        }
        let mut cmd = support::precisiond();
        cmd.args(["run", "--config"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("daemon starts");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let daemon = Daemon { child, dir: dir.to_owned(), log };
        daemon.wait_for("ready", Duration::from_secs(30), |d| d.log().contains("ready:"));
        daemon
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Daemon) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}; daemon log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The version `live/<model>` points at, if any.
    fn live(&self, model: &str) -> Option<u64> {
        let target = std::fs::read_link(self.state().join("live").join(model)).ok()?;
        target.file_name()?.to_str()?.parse().ok()
    }

    fn wait_live(&self, model: &str, version: u64, timeout: Duration) {
        self.wait_for(&format!("{model} v{version} live"), timeout, |d| d.live(model) == Some(version));
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM, and the time it took to exit.
    fn stop(mut self) -> Duration {
        let start = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success() || status.code().is_some(), "{status:?}");
        start.elapsed()
    }

    fn events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for entry in std::fs::read_dir(self.state().join("outbox")).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                events.extend(text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()));
            }
        }
        events
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Moves a complete copy of test bundle `name` into the inbox as `model` (copied beside it, then renamed in, as
/// a careful operator does; the daemon must also cope with slow copies, see the edit test).
fn drop_bundle(daemon: &Daemon, name: &str, model: &str, edit: Option<&dyn Fn(&str) -> String>) {
    let staging = daemon.dir.join(format!(".{model}.incoming"));
    let _ = std::fs::remove_dir_all(&staging);
    copy_dir(&support::bundle(name), &staging);
    if let Some(edit) = edit {
        let spec = std::fs::read_to_string(staging.join("precision.toml")).unwrap();
        std::fs::write(staging.join("precision.toml"), edit(&spec)).unwrap();
        std::fs::remove_file(staging.join("bundle.toml")).unwrap();
        let (code, _, err) = support::run(&[&"bundle", &"seal", &staging]);
        assert_eq!(code, 0, "{err}");
    }
    let target = daemon.inbox().join(model);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).unwrap();
}

fn verify_json(daemon: &Daemon, model: &str, version: u64) -> Value {
    let path = daemon.state().join("engines").join(model).join(version.to_string()).join("verify.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn a_sealed_bundle_goes_live_and_an_unsealed_edit_is_ignored_until_resealed() {
    let tmp = support::tempdir();
    let daemon = Daemon::start(tmp.path(), "", &[]);
    drop_bundle(&daemon, "digits", "digits", None);
    daemon.wait_live("digits", 1, Duration::from_secs(120));
    assert_eq!(verify_json(&daemon, "digits", 1)["verdict"], "pass");
    for file in ["model.onnx", "plan.toml", "calib.cache", "verify.json", "build.log", "fingerprint.json"] {
        assert!(daemon.state().join("live/digits").join(file).is_file(), "{file}");
    }

    // Edited without re-sealing: the manifest no longer matches, the bundle is not ready, nothing happens.
    let spec = daemon.inbox().join("digits/precision.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("cosine = 0.99", "cosine = 0.98")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.live("digits"), Some(1));
    assert!(!daemon.state().join("engines/digits/2").exists(), "{}", daemon.log());

    // Re-sealed: a new version; the previous one stays for rollback.
    let (code, _, err) = support::run(&[&"bundle", &"seal", &daemon.inbox().join("digits")]);
    assert_eq!(code, 0, "{err}");
    daemon.wait_live("digits", 2, Duration::from_secs(120));
    assert!(daemon.state().join("engines/digits/1/verify.json").is_file());

    // The status endpoint is off in this config; the events tell the story in order.
    let kinds: Vec<String> = daemon.events().iter().map(|e| e["kind"].as_str().unwrap_or("").to_owned()).collect();
    for kind in ["daemon_started", "accepted", "started", "verified", "published"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing from {kinds:?}");
    }
    let elapsed = daemon.stop();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn a_failing_hook_rolls_back_and_a_changed_fingerprint_rebuilds() {
    let tmp = support::tempdir();
    let fake = tmp.path().join("device.json");
    let device = |tensorrt: &str| {
        format!(r#"{{"gpus": [{{"name": "Orin (nvgpu)", "compute_capability": "8.7", "driver_version": "540.4.0", "memory_total_bytes": 7990000000, "uuid": null, "integrated": true, "memory_free_bytes": null}}], "cuda_driver": "12.6", "tensorrt": "{tensorrt}", "l4t": "36.4.3", "notes": []}}"#)
    };
    std::fs::write(&fake, device("10.3.0")).unwrap();
    // The hook accepts version 1 only: version 2 is rolled back.
    let hook = "[publish]\nhook = \"test \\\"$PRECISIOND_VERSION\\\" = 1\"\n";
    let daemon = Daemon::start(tmp.path(), hook, &[("PRECISIOND_FAKE_FINGERPRINT", &fake)]);
    drop_bundle(&daemon, "digits", "digits", None);
    daemon.wait_live("digits", 1, Duration::from_secs(120));
    drop_bundle(&daemon, "digits", "digits", Some(&|s: &str| s.replace("cosine = 0.99", "cosine = 0.985")));
    daemon.wait_for("the rollback", Duration::from_secs(120), |d| d.log().contains("rolled back to version 1"));
    assert_eq!(daemon.live("digits"), Some(1));
    assert!(daemon.state().join("engines/digits/2").is_dir(), "the refused version is kept for inspection");
    assert!(daemon.events().iter().any(|e| e["kind"] == "rolled_back"));
    daemon.stop();

    // A JetPack update under a live engine: restarted, the daemon rebuilds it with its stored plan.
    std::fs::write(&tmp.path().join("config.toml"), BASE_CONFIG).unwrap();
    std::fs::write(&fake, device("10.7.0")).unwrap();
    let daemon = Daemon::start(tmp.path(), "", &[("PRECISIOND_FAKE_FINGERPRINT", &fake)]);
    daemon.wait_live("digits", 3, Duration::from_secs(120));
    let built_for: Value = serde_json::from_str(&std::fs::read_to_string(daemon.state().join("live/digits/fingerprint.json")).unwrap()).unwrap();
    assert_eq!(built_for["tensorrt"], "10.7.0");
    assert!(daemon.log().contains("TensorRT 10.3.0 → 10.7.0"), "{}", daemon.log());
    assert!(daemon.events().iter().any(|e| e["kind"] == "firmware_changed"));
    // Same plan as the version it replaces.
    let plan = |v: u64| std::fs::read_to_string(daemon.state().join(format!("engines/digits/{v}/plan.toml"))).unwrap();
    assert_eq!(plan(3), plan(1));
    daemon.stop();
}

#[test]
fn sigkill_during_a_job_then_restart_completes_it_and_live_is_always_whole() {
    let tmp = support::tempdir();
    let daemon = Daemon::start(tmp.path(), "", &[]);
    let fixed_fp16 = |s: &str| s.replace("default = \"int8\"", "default = \"fp16\"").replace("mode = \"search\"", "mode = \"fixed\"");
    drop_bundle(&daemon, "cls", "cls", Some(&fixed_fp16));
    daemon.wait_live("cls", 1, Duration::from_secs(300));

    // A reader that checks, all along, that live/cls is a complete version.
    let live = daemon.state().join("live/cls");
    let stop = Arc::new(AtomicBool::new(false));
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (stop, broken, live) = (stop.clone(), broken.clone(), live.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match std::fs::canonicalize(&live) {
                    Ok(dir) if dir.join("model.onnx").is_file() && dir.join("verify.json").is_file() => {}
                    other => broken.lock().unwrap().push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // A second version, killed in the middle of its job.
    drop_bundle(&daemon, "cls", "cls", Some(&|s: &str| fixed_fp16(s).replace("cosine = 0.995", "cosine = 0.99")));
    daemon.wait_for("the second job to start", Duration::from_secs(60), |d| d.log().matches("cls: calibrating").count() >= 2);
    let mut daemon = daemon;
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert_eq!(Daemon::live_of(&live), Some(1));
    drop(daemon);

    let daemon = Daemon::start(tmp.path(), "", &[]);
    assert!(daemon.log().contains("resuming job"), "{}", daemon.log());
    daemon.wait_live("cls", 2, Duration::from_secs(300));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(broken.lock().unwrap().is_empty(), "live/cls was not a complete version: {:?}", broken.lock().unwrap().first());
    let leftovers: Vec<_> = std::fs::read_dir(daemon.state().join("engines/cls")).unwrap().flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary files left in the live area: {leftovers:?}");
    daemon.stop();
}

impl Daemon {
    fn live_of(link: &Path) -> Option<u64> {
        std::fs::read_link(link).ok()?.file_name()?.to_str()?.parse().ok()
    }
}


#[test]
fn sigterm_during_a_tensorrt_build_stops_within_seconds_with_no_child_left() {
    let tmp = support::tempdir();
    let standin = support::trtexec_standin();
    let config = format!("backend = \"tensorrt\"\ntrtexec = \"{}\"\n", standin.display());
    std::fs::write(tmp.path().join("config.toml"), format!("{config}{}", BASE_CONFIG.replace("backend = \"cpu\"\n", ""))).unwrap();
    let hang = tmp.path().join("hang");
    std::fs::write(&hang, "").unwrap();
    // The stand-in hangs in every build (with a child of its own), as a stuck builder would.
    let env: [(&str, &Path); 2] = [("TRTEXEC_STANDIN_LOG", &hang), ("TRTEXEC_STANDIN_HANG_S", Path::new("300"))];
    let daemon = Daemon::start(tmp.path(), "", &env);
    drop_bundle(&daemon, "cls", "cls", Some(&|s: &str| s.replace("mode = \"search\"", "mode = \"fixed\"")));
    daemon.wait_for("a build to start", Duration::from_secs(120), |_| std::fs::read_to_string(&hang).unwrap_or_default().contains("--saveEngine"));
    std::thread::sleep(Duration::from_millis(500));
    let state = daemon.state().to_string_lossy().into_owned();
    assert!(!support::processes_mentioning(&state).is_empty(), "the build runs");
    let elapsed = daemon.stop();
    assert!(elapsed < Duration::from_secs(10), "stopped in {elapsed:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(support::processes_mentioning(&state).is_empty(), "a process of the build outlived the daemon");
}

/// A tiny upstream on loopback: records every POSTed body, answers 200.
fn upstream(listener: std::net::TcpListener, bodies: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    bodies.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                    let mut out = &stream;
                    let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}");
                }
            });
        }
    });
}

#[test]
fn events_wait_in_the_outbox_while_upstream_is_down_then_all_arrive_once() {
    let tmp = support::tempdir();
    let port = support::ReservedPort::new();
    let addr = port.addr;
    let extra = format!("[upstream]\nurl = \"http://{addr}/v1/events\"\n");
    let daemon = Daemon::start(tmp.path(), &extra, &[]);
    drop_bundle(&daemon, "digits", "digits", None);
    daemon.wait_live("digits", 1, Duration::from_secs(120));
    let waiting = daemon.events();
    assert!(waiting.iter().any(|e| e["kind"] == "verified"), "{waiting:?}");

    let bodies = Arc::new(Mutex::new(Vec::new()));
    upstream(port.listen(), bodies.clone());
    let ids = |bodies: &[String]| -> Vec<String> {
        bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .flat_map(|v| v["events"].as_array().cloned().unwrap_or_default())
            .map(|e| e["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    daemon.wait_for("every event upstream", Duration::from_secs(60), |_| {
        let got = ids(&bodies.lock().unwrap());
        waiting.iter().all(|e| got.iter().any(|id| id == e["id"].as_str().unwrap()))
    });
    let got = ids(&bodies.lock().unwrap());
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "each event arrives once");
    let all: Vec<Value> = bodies.lock().unwrap().iter().filter_map(|b| serde_json::from_str::<Value>(b).ok()).flat_map(|v| v["events"].as_array().cloned().unwrap_or_default()).collect();
    let verified = all.iter().find(|e| e["kind"] == "verified").expect("the verification result arrives");
    assert_eq!(verified["detail"]["verdict"], "pass");
    assert_eq!(verified["model"], "digits");
    daemon.stop();
}

#[test]
fn signatures_are_required_when_configured_and_unsafe_bundles_are_refused_always() {
    let tmp = support::tempdir();
    let key = tmp.path().join("fleet");
    let (code, _, err) = support::run(&[&"keygen", &"--out", &key]);
    assert_eq!(code, 0, "{err}");
    let extra = format!("[security]\nrequire_signature = true\ntrusted_keys = [\"{}\"]\n", key.with_extension("pub").display());
    let daemon = Daemon::start(tmp.path(), &extra, &[]);

    drop_bundle(&daemon, "digits", "unsigned", None);
    daemon.wait_for("the refusal", Duration::from_secs(30), |d| d.log().contains("unsigned: bundle refused"));
    // A bundle with a symbolic link is refused in every mode.
    let linked = daemon.dir.join(".linked");
    copy_dir(&support::bundle("digits"), &linked);
    std::os::unix::fs::symlink("/etc/hostname", linked.join("calib/escape.npy")).unwrap();
    std::fs::rename(&linked, daemon.inbox().join("linked")).unwrap();
    daemon.wait_for("the link refusal", Duration::from_secs(30), |d| d.log().contains("linked: bundle refused"));

    let signed = daemon.dir.join(".signed");
    copy_dir(&support::bundle("digits"), &signed);
    let (code, _, err) = support::run(&[&"bundle", &"sign", &signed, &"--key", &key.with_extension("key")]);
    assert_eq!(code, 0, "{err}");
    std::fs::rename(&signed, daemon.inbox().join("signed")).unwrap();
    daemon.wait_live("signed", 1, Duration::from_secs(120));
    assert_eq!(daemon.live("unsigned"), None);
    assert_eq!(daemon.live("linked"), None);
    let refusals = daemon.events().iter().filter(|e| e["kind"] == "bundle_refused").count();
    assert_eq!(refusals, 2, "each refused once");
    daemon.stop();
}

/// `systemd-analyze verify` on the unit, in a root that holds what it names: the host's units, /bin/kill for
/// ExecReload, the binary at /usr/bin/precisiond and the man page for Documentation= (as installed by the package).
#[test]
fn the_systemd_unit_verifies_clean() {
    let analyze = std::process::Command::new("systemd-analyze").arg("--version").output();
    assert!(analyze.is_ok_and(|o| o.status.success()), "systemd-analyze is needed (Debian package systemd) to check the unit");
    let tmp = support::tempdir();
    let root = tmp.path();
    let copy = |from: &Path, to: &str| {
        let target = root.join(to);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from, &target).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    std::fs::create_dir_all(root.join("lib/systemd")).unwrap();
    let status = std::process::Command::new("cp").arg("-a").arg("/lib/systemd/system").arg(root.join("lib/systemd/")).status();
    assert!(status.is_ok_and(|s| s.success()), "copying the host's units");
    copy(Path::new("/bin/kill"), "bin/kill");
    copy(Path::new(env!("CARGO_BIN_EXE_precisiond")), "usr/bin/precisiond");
    copy(&support::repo().join("packaging/precisiond.1"), "usr/share/man/man1/precisiond.1");
    copy(&support::repo().join("packaging/config.toml"), "etc/precisiond/config.toml");
    copy(&support::repo().join("systemd/precisiond.service"), "lib/systemd/system/precisiond.service");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("precisiond.service")
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify:\n{text}");
}
