//! `trt::run` against tiny `#!/bin/sh` doubles written here: they stand in for process behaviour only (exit,
//! signals, hangs, children, floods of output), not for trtexec's work.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use precisiond::error::Failure;
use precisiond::trt::parse::{FailureClass, Status, TrtVersion, VersionError};
use precisiond::trt::run::*;

use crate::support::{live_members, retry_busy, tempdir};

const BANNER: &str = "echo \"&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec $*\"";

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run(exe: &Path, args: &[&str], log: &Path, timeout: Duration, cancel: &AtomicBool) -> RunOutcome {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    retry_busy(|| run_trtexec(exe, &args, log, timeout, cancel)).unwrap_or_else(|e| panic!("{e}"))
}

fn pid_after(log: &str, key: &str) -> i32 {
    let line = log.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("no {key:?} in {log}"));
    line.trim().parse().unwrap()
}

/// Signals are delivered asynchronously: give the kernel a moment before calling anything a survivor.
fn assert_group_gone(pgid: i32, also: &[i32]) {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let members = live_members(pgid);
        let others: Vec<i32> = also
            .iter()
            .copied()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
            })
            .collect();
        if members.is_empty() && others.is_empty() {
            return;
        }
        assert!(Instant::now() < end, "still alive: group {pgid} members {members:?}, processes {others:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn passing_run_keeps_both_streams_and_passes_argv_verbatim() {
    let dir = tempdir();
    let exe = script(
        dir.path(),
        "trtexec",
        &format!(
            "{BANNER}\necho \"[07/07/2026-02:10:45] [I] TensorRT version: 10.3.0\"\n\
             echo \"[07/07/2026-02:10:46] [W] [TRT] a warning\" >&2\n\
             printf 'arg=%s\\n' \"$@\"\n\
             echo \"&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec $*\""
        ),
    );
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let out = run(&exe, &["--onnx=/my models/a b.onnx", "--skipInference"], &log, Duration::from_secs(30), &never);
    assert!(out.passed(), "{:?}", out.failure);
    assert_eq!(out.end, RunEnd::Exited(0));
    assert_eq!(out.log.status, Status::Passed);
    assert_eq!(out.log.version, Some(TrtVersion::new(10, 3, 0)));
    assert_eq!(out.log.warning_count, 1, "stderr is in the log");
    assert_eq!(out.log_path, log);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("arg=--onnx=/my models/a b.onnx\narg=--skipInference\n"), "{text}");
    assert!(!text.contains("precisiond:"), "no note after a normal exit: {text}");
    assert!(out.into_result().is_ok());
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = tempdir();
    let exe = script(
        dir.path(),
        "trtexec",
        &format!("{BANNER}\necho \"leader $$\"\nsleep 1000 &\necho \"child $!\"\nsleep 1000"),
    );
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let out = run(&exe, &[], &log, Duration::from_secs(1), &never);
    let took = started.elapsed();
    assert_eq!(out.end, RunEnd::TimedOut(Duration::from_secs(1)));
    // sh and sleep die of SIGTERM at once; the SIGKILL grace is not needed.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let failure = out.failure.as_ref().unwrap();
    assert_eq!(failure.class, FailureClass::Timeout);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.ends_with("precisiond: trtexec timed out after 1 s; its process group was killed\n"), "{text}");
    assert_group_gone(pid_after(&text, "leader "), &[pid_after(&text, "child ")]);
    let e = out.into_result().unwrap_err();
    let rendered = Failure::from(e);
    assert_eq!(rendered.exit_code(), 2);
    assert!(rendered.to_string().contains("hint: the run exceeded its time limit"), "{rendered}");
}

#[test]
fn a_group_that_ignores_sigterm_gets_sigkill() {
    let dir = tempdir();
    let exe =
        script(dir.path(), "trtexec", "trap '' TERM\necho \"leader $$\"\nsleep 1000 &\necho \"child $!\"\nsleep 1000");
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let out = run(&exe, &[], &log, Duration::from_millis(500), &never);
    let took = started.elapsed();
    assert!(matches!(out.end, RunEnd::TimedOut(_)), "{:?}", out.end);
    assert!(took >= Duration::from_millis(2400), "SIGKILL came before the grace ended: {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let text = fs::read_to_string(&log).unwrap();
    assert_group_gone(pid_after(&text, "leader "), &[pid_after(&text, "child ")]);
}

#[test]
fn death_by_signal_is_killed() {
    let dir = tempdir();
    let exe = script(dir.path(), "trtexec", &format!("{BANNER}\nkill -9 $$"));
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let out = run(&exe, &[], &log, Duration::from_secs(30), &never);
    assert_eq!(out.end, RunEnd::Signaled(9));
    let failure = out.failure.as_ref().unwrap();
    assert_eq!(failure.class, FailureClass::Killed);
    assert_eq!(failure.message.as_deref(), Some("trtexec was killed by signal 9 (SIGKILL)"));
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.ends_with("precisiond: trtexec was killed by signal 9 (SIGKILL)\n"), "{text}");
    let rendered = Failure::from(out.into_result().unwrap_err()).to_string();
    assert!(rendered.contains("oom killer"), "{rendered}");
}

#[test]
fn unknown_option_is_classified() {
    // tensorrt.md §2.4: the help on stdout, `[E] Unknown option: --int8 ` on stderr, FAILED, exit 1.
    let dir = tempdir();
    let exe = script(
        dir.path(),
        "trtexec",
        "echo \"&&&& RUNNING TensorRT.trtexec [TensorRT v110100] # trtexec $*\"\n\
         echo \"=== Build Options ===\"\necho \"  --skipInference  Exit after the engine has been built\"\n\
         echo \"[07/07/2026-02:10:45] [E] Unknown option: --int8 \" >&2\n\
         echo \"&&&& FAILED TensorRT.trtexec [TensorRT v110100] # trtexec $*\"\nexit 1",
    );
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let out = run(&exe, &["--int8"], &log, Duration::from_secs(30), &never);
    assert_eq!(out.end, RunEnd::Exited(1));
    let failure = out.failure.as_ref().unwrap();
    assert_eq!(failure.class, FailureClass::UnknownOption);
    assert_eq!(failure.option.as_deref(), Some("--int8"));
    let rendered = Failure::from(out.into_result().unwrap_err());
    assert_eq!(rendered.exit_code(), 2, "a flag set that does not match the version is precisiond's fault");
    assert!(rendered.to_string().contains("unknown_option, exit status 1"), "{rendered}");
}

#[test]
fn cancel_kills_promptly() {
    let dir = tempdir();
    let exe = script(dir.path(), "trtexec", "echo \"leader $$\"\nsleep 1000 &\necho \"child $!\"\nsleep 1000");
    let log = dir.path().join("build.log");
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::Relaxed);
        });
        run(&exe, &[], &log, Duration::from_secs(600), &cancel)
    });
    let took = started.elapsed();
    assert_eq!(out.end, RunEnd::Cancelled);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let failure = out.failure.as_ref().unwrap();
    assert_eq!(failure.class, FailureClass::Killed);
    assert!(failure.hint.contains("cancelled on purpose"), "{}", failure.hint);
    let text = fs::read_to_string(&log).unwrap();
    assert_group_gone(pid_after(&text, "leader "), &[pid_after(&text, "child ")]);
}

#[test]
fn huge_output_on_both_streams_does_not_deadlock() {
    // 78,125 stderr lines of 64 bytes (5,000,000 bytes) while stdout prints 2,000 lines, then 1 MB without a
    // newline on stderr: neither pipe may stall the other, and no line may be lost or glued to another.
    let dir = tempdir();
    let warning = "[07/07/2026-02:10:45] [W] flood of warnings, padded to 64 bytes";
    assert_eq!(warning.len() + 1, 64);
    let exe = script(
        dir.path(),
        "trtexec",
        &format!(
            "{BANNER}\n\
             (i=0; while [ $i -lt 2000 ]; do echo \"[07/07/2026-02:10:45] [I] stdout line $i\"; i=$((i+1)); done) &\n\
             yes '{warning}' | head -n 78125 >&2\n\
             wait\n\
             head -c 1000000 /dev/zero | tr '\\0' 'x' >&2\n\
             echo \"&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec\""
        ),
    );
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let out = run(&exe, &[], &log, Duration::from_secs(120), &never);
    assert!(out.passed(), "{:?}", out.failure);
    assert_eq!(out.log.warning_count, 78_125);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.len() >= 6_000_000, "{}", text.len());
    for i in 0..2000 {
        assert!(text.contains(&format!("[I] stdout line {i}\n")), "stdout line {i} lost");
    }
    assert_eq!(text.lines().filter(|l| *l == warning).count(), 78_125);
    let blob: usize = text.lines().filter(|l| l.bytes().all(|b| b == b'x')).map(str::len).sum();
    assert_eq!(blob, 1_000_000, "the newline-less megabyte is kept whole, in pieces on lines of their own");
}

#[test]
fn environment_faults_name_the_problem() {
    let dir = tempdir();
    let log = dir.path().join("build.log");
    let never = AtomicBool::new(false);
    let go = |exe: &Path| retry_busy(|| run_trtexec(exe, &[], &log, Duration::from_secs(10), &never)).map(|_| ());

    let missing = dir.path().join("bin/trtexec");
    let e = go(&missing).unwrap_err();
    assert!(matches!(e, RunError::NotFound { .. }), "{e}");
    assert!(!log.exists(), "no empty log for a run that never started");
    let rendered = Failure::from(e);
    assert_eq!(rendered.exit_code(), 2);
    assert!(rendered.to_string().contains("/usr/src/tensorrt/bin/trtexec"), "{rendered}");

    let not_exec = dir.path().join("plain");
    fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    let e = go(&not_exec).unwrap_err();
    assert!(matches!(&e, RunError::NotExecutable { why, .. } if why.contains("execute permission")), "{e}");

    let e = go(dir.path()).unwrap_err();
    assert!(matches!(&e, RunError::NotExecutable { why, .. } if why.contains("directory")), "{e}");

    let no_interpreter = dir.path().join("orphan");
    fs::write(&no_interpreter, "#!/nonexistent/interpreter\n").unwrap();
    fs::set_permissions(&no_interpreter, fs::Permissions::from_mode(0o755)).unwrap();
    let e = go(&no_interpreter).unwrap_err();
    assert!(matches!(&e, RunError::NotExecutable { why, .. } if why.contains("interpreter")), "{e}");

    let garbage = dir.path().join("garbage");
    fs::write(&garbage, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    fs::set_permissions(&garbage, fs::Permissions::from_mode(0o755)).unwrap();
    let e = go(&garbage).unwrap_err();
    assert!(matches!(&e, RunError::NotExecutable { why, .. } if why.contains("exec format")), "{e}");

    let ok = script(dir.path(), "ok", "exit 0");
    let e = retry_busy(|| {
        run_trtexec(&ok, &[], &dir.path().join("no/such/dir/build.log"), Duration::from_secs(10), &never)
    })
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(e, RunError::Log { .. }), "{e}");
}

#[test]
fn exit_zero_without_trailer_is_not_a_pass() {
    // tensorrt.md §2.4: a missing `&&&& PASSED` is a failure, whatever the exit status.
    let dir = tempdir();
    let exe = script(dir.path(), "trtexec", BANNER);
    let never = AtomicBool::new(false);
    let out = run(&exe, &[], &dir.path().join("build.log"), Duration::from_secs(30), &never);
    assert_eq!(out.end, RunEnd::Exited(0));
    assert_eq!(out.failure.as_ref().map(|f| f.class), Some(FailureClass::Incomplete));
}

fn detect(exe: &Path, timeout: Duration) -> Result<TrtVersion, RunError> {
    retry_busy(|| detect_trtexec_version(exe, timeout))
}

#[test]
fn version_from_the_help_banner() {
    let dir = tempdir();
    // Exits 3 on anything but `--help`, so a passing test also shows what was asked.
    let only_help = "[ \"$1\" = \"--help\" ] && [ $# -eq 1 ] || exit 3\n";
    let cases: &[(&str, TrtVersion)] = &[
        ("v100300", TrtVersion::new(10, 3, 0)),
        ("v8502", TrtVersion::new(8, 5, 2)),
        ("v8602", TrtVersion::new(8, 6, 2)),
        ("v101300] [b26", TrtVersion::new(10, 13, 0).with_build(Some(26))),
        ("v110100] [b7", TrtVersion::new(11, 1, 0).with_build(Some(7))),
    ];
    for (i, (tag, expect)) in cases.iter().enumerate() {
        let exe = script(
            dir.path(),
            &format!("trtexec{i}"),
            &format!(
                "{only_help}echo \"&&&& RUNNING TensorRT.trtexec [TensorRT {tag}] # trtexec $*\"\necho \"=== Model Options ===\""
            ),
        );
        assert_eq!(detect(&exe, Duration::from_secs(30)).unwrap(), *expect, "{tag}");
    }

    // The real 10.16.1 `--help` output, replayed.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trtexec/trt10.16.1_help_output.txt");
    let exe = script(dir.path(), "real", &format!("{only_help}cat '{fixture}'"));
    assert_eq!(detect(&exe, Duration::from_secs(30)).unwrap(), TrtVersion::new(10, 16, 1).with_build(Some(11)));
}

#[test]
fn version_refusals() {
    let dir = tempdir();
    // 7.x banners carry no version tag (tensorrt.md §2.4).
    let old = script(dir.path(), "old", "echo \"&&&& RUNNING TensorRT.trtexec # trtexec $*\"");
    let e = detect(&old, Duration::from_secs(30)).unwrap_err();
    assert!(matches!(e, RunError::Version { source: VersionError::NoVersionTag { .. }, .. }), "{e}");
    let rendered = Failure::from(e);
    assert_eq!(rendered.exit_code(), 2);
    assert!(rendered.to_string().contains("older than TensorRT 8.0"), "{rendered}");

    let other = script(dir.path(), "other", "echo 'usage: other [options]'\nexit 1");
    let e = detect(&other, Duration::from_secs(30)).unwrap_err();
    assert!(
        matches!(&e, RunError::NoBanner { end: RunEnd::Exited(1), head, .. } if head == "usage: other [options]"),
        "{e}"
    );

    let hangs = script(dir.path(), "hangs", "sleep 1000");
    let started = Instant::now();
    let e = detect(&hangs, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e, RunError::VersionTimeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let e = detect(&dir.path().join("missing"), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(e, RunError::NotFound { .. }), "{e}");
}
