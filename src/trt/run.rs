//! Running trtexec: the one place in precisiond that starts a process.
//!
//! trtexec runs in a process group of its own, with no stdin; stdout and stderr are each drained by a thread into
//! one log, line by line (W/E lines go to stderr, the rest to stdout, tensorrt.md §2.4), so neither pipe can fill
//! up and block it. The caller's thread polls for the exit, the time limit and the cancel flag. Whatever ends the
//! run, the whole group is killed before the leader is reaped: a wrapper script's children must not outlive it
//! and hold the GPU, and a leader kept as a zombie until then keeps its pid (the group's id) from being reused.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Diagnose, Fault};
use crate::trt::parse::{
    Failure, FailureClass, Status, TrtVersion, TrtexecLog, VersionError, detect_version, read_text,
};

/// Where JetPack installs trtexec (package `libnvinfer-bin`); it is not on PATH (tensorrt.md §5.2).
pub const JETPACK_TRTEXEC: &str = "/usr/src/tensorrt/bin/trtexec";

/// trtexec installs no signal handler, so SIGTERM ends it at once; the grace is for wrappers that clean up.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the pipes may stay open after the group was killed: only a process that left the group (setsid) can
/// still hold them, and its output is not worth hanging for.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Polling starts fast (a `--help` run takes milliseconds) and settles where a minutes-long build costs nothing.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(50);
/// Longest piece written at once: a line without newline (a binary dump) must not grow a buffer without bound.
const CHUNK: usize = 64 * 1024;
/// `--help` prints about 40 KB; anything far beyond that is not trtexec.
const HELP_CAPTURE_LIMIT: usize = 1 << 20;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// trtexec exited with this status.
    Exited(i32),
    /// trtexec died from this signal, sent by someone other than precisiond (on Jetson mostly the OOM killer).
    Signaled(i32),
    /// precisiond killed the group at the time limit.
    TimedOut(Duration),
    /// precisiond killed the group because the cancel flag was raised.
    Cancelled,
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEnd::Exited(code) => write!(f, "exit status {code}"),
            RunEnd::Signaled(sig) => match signal_name(*sig) {
                Some(name) => write!(f, "killed by signal {sig} ({name})"),
                None => write!(f, "killed by signal {sig}"),
            },
            RunEnd::TimedOut(limit) => write!(f, "timed out after {} s", limit.as_secs_f64()),
            RunEnd::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What one trtexec run left.
#[derive(Debug)]
pub struct RunOutcome {
    pub end: RunEnd,
    /// The leader's raw status; after a timeout or cancel, the signal precisiond sent.
    pub status: ExitStatus,
    pub elapsed: Duration,
    /// The whole output, stdout and stderr interleaved as they came, plus a `precisiond:` line where precisiond
    /// ended the run or trtexec died from a signal.
    pub log_path: PathBuf,
    pub log: TrtexecLog,
    /// `None` exactly when trtexec exited 0 after `&&&& PASSED`.
    pub failure: Option<Failure>,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The outcome when the run passed, else its failure as an error with the class's hint.
    pub fn into_result(self) -> Result<RunOutcome, RunError> {
        match &self.failure {
            None => Ok(self),
            Some(f) => Err(RunError::Failed {
                class: f.class,
                end: self.end,
                detail: f.message.clone().unwrap_or_else(|| f.class.as_str().to_string()),
                hint: f.hint,
                log: self.log_path,
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}: no such file: trtexec is not there", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot run it: {why}", path.display())]
    NotExecutable { path: PathBuf, why: String },
    #[error("{}: cannot start it", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a thread to read trtexec's output")]
    Thread(#[source] io::Error),
    #[error("lost track of trtexec (pid {pid})")]
    Wait {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot write trtexec's log", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} --help did not finish within {} s", path.display(), limit.as_secs_f64())]
    VersionTimeout { path: PathBuf, limit: Duration },
    #[error("{} --help printed no `&&&& RUNNING TensorRT.trtexec` banner ({end}); first output: {head:?}", path.display())]
    NoBanner { path: PathBuf, end: RunEnd, head: String },
    #[error("{}: cannot tell its tensorrt version", path.display())]
    Version {
        path: PathBuf,
        #[source]
        source: VersionError,
    },
    #[error("trtexec failed ({class}, {end}): {detail}; its output is in {}", log.display())]
    Failed { class: FailureClass, end: RunEnd, detail: String, hint: &'static str, log: PathBuf },
}

impl Diagnose for RunError {
    fn fault(&self) -> Fault {
        match self {
            // The model is what the parser refused.
            RunError::Failed { class: FailureClass::OnnxParse, .. } => Fault::Input,
            _ => Fault::Environment,
        }
    }

    fn hint(&self) -> Option<String> {
        let jetpack = || {
            format!(
                "on JetPack, trtexec is {JETPACK_TRTEXEC} (package libnvinfer-bin), which is not on PATH: give that \
                 path"
            )
        };
        match self {
            RunError::NotFound { .. } => Some(jetpack()),
            RunError::NotExecutable { .. } => {
                Some(format!("give the trtexec built for this machine, executable by this user; {}", jetpack()))
            }
            RunError::Log { .. } => Some("check that the state directory exists, is writable and not full".into()),
            RunError::VersionTimeout { .. } => {
                Some("`trtexec --help` should take milliseconds: check that the file is trtexec".into())
            }
            RunError::NoBanner { .. } => Some(format!("the file does not behave like trtexec; {}", jetpack())),
            RunError::Version { source: VersionError::NoVersionTag { .. }, .. } => Some(
                "this trtexec is older than TensorRT 8.0; install a supported JetPack (5.1 or newer) and its trtexec"
                    .into(),
            ),
            RunError::Failed { hint, .. } => Some((*hint).to_string()),
            _ => None,
        }
    }
}

/// Runs `trtexec args…`, its whole output kept in `log_path`, killed as a group at `timeout` or as soon as
/// `cancel` is raised.
///
/// A run that ends badly is an outcome, not an error: the error cases are those where nothing could be run or
/// its log could not be kept.
pub fn run_trtexec(
    trtexec: &Path,
    args: &[String],
    log_path: &Path,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    let log_error = |source| RunError::Log { path: log_path.to_path_buf(), source };
    // Before the log is created, so that a missing trtexec leaves no empty build.log behind.
    check_runnable(trtexec)?;
    let file = File::create(log_path).map_err(log_error)?;
    let sink = Arc::new(Mutex::new(Sink::new(Out::File(BufWriter::new(file)))));
    let finished = supervise(trtexec, args, &sink, timeout, cancel)?;

    let note = match finished.end {
        RunEnd::Exited(_) => None,
        RunEnd::TimedOut(limit) => {
            Some(format!("precisiond: trtexec timed out after {} s; its process group was killed", limit.as_secs_f64()))
        }
        RunEnd::Cancelled => Some("precisiond: cancelled; trtexec's process group was killed".to_string()),
        end @ RunEnd::Signaled(_) => Some(format!("precisiond: trtexec was {end}")),
    };
    {
        let mut s = lock(&sink);
        if finished.output_left_open {
            s.append(
                Stream::Note,
                b"precisiond: a process that left trtexec's group still held its output; later output is not kept\n",
            );
        }
        if let Some(note) = note {
            s.append(Stream::Note, format!("{note}\n").as_bytes());
        }
        s.close().map_err(log_error)?;
    }

    let text = read_text(log_path).map_err(|e| match e {
        crate::trt::parse::ParseError::Io { source, .. } => log_error(source),
        other => log_error(io::Error::other(other.to_string())),
    })?;
    let log = TrtexecLog::parse(&text);
    let failure = judge(finished.end, &log);
    Ok(RunOutcome {
        end: finished.end,
        status: finished.status,
        elapsed: finished.elapsed,
        log_path: log_path.to_path_buf(),
        log,
        failure,
    })
}

/// How the publish hook ended.
#[derive(Debug)]
pub struct HookOutcome {
    pub end: RunEnd,
    pub elapsed: Duration,
}

impl HookOutcome {
    pub fn succeeded(&self) -> bool {
        self.end == RunEnd::Exited(0)
    }
}

/// Runs the daemon's publish hook, `/bin/sh -c COMMAND_LINE` with `envs`, under the same supervision as trtexec:
/// its own process group, killed as a group at `timeout` or on `cancel`, its output appended to `log_path`.
pub fn run_hook(
    command_line: &str,
    envs: &[(&str, String)],
    log_path: &Path,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<HookOutcome, RunError> {
    let log_error = |source| RunError::Log { path: log_path.to_path_buf(), source };
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log_path).map_err(log_error)?;
    let sink = Arc::new(Mutex::new(Sink::new(Out::File(BufWriter::new(file)))));
    let shell = Path::new("/bin/sh");
    let finished = supervise_with_env(shell, &["-c".to_string(), command_line.to_string()], envs, &sink, timeout, cancel)?;
    let note = format!("precisiond: hook `{command_line}` {}\n", finished.end);
    let mut s = lock(&sink);
    s.append(Stream::Note, note.as_bytes());
    s.close().map_err(log_error)?;
    Ok(HookOutcome { end: finished.end, elapsed: finished.elapsed })
}

/// The version of the TensorRT behind `trtexec`, from the banner `trtexec --help` prints first
/// (`&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --help`). trtexec has no `--version`, and `--help`
/// returns before any CUDA or TensorRT initialisation, so it is the cheapest run that prints the banner.
pub fn detect_trtexec_version(trtexec: &Path, timeout: Duration) -> Result<TrtVersion, RunError> {
    let sink = Arc::new(Mutex::new(Sink::new(Out::Memory(Vec::new()))));
    let never = AtomicBool::new(false);
    check_runnable(trtexec)?;
    let finished = supervise(trtexec, &["--help".to_string()], &sink, timeout, &never)?;
    let text = {
        let mut s = lock(&sink);
        s.closed = true;
        match &s.out {
            Out::Memory(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Out::File(_) => String::new(),
        }
    };
    let path = trtexec.to_path_buf();
    match detect_version(&text) {
        Ok(version) => Ok(version),
        Err(VersionError::NoBanner) => match finished.end {
            RunEnd::TimedOut(limit) => Err(RunError::VersionTimeout { path, limit }),
            end => Err(RunError::NoBanner { path, end, head: head(&text, 3, 300) }),
        },
        Err(source) => Err(RunError::Version { path, source }),
    }
}

/// The failure of a finished run, if it failed. precisiond's own reasons to end a run come first; otherwise the
/// log explains (its trailer decides whether trtexec passed).
fn judge(end: RunEnd, log: &TrtexecLog) -> Option<Failure> {
    let with = |class, message: String| Some(Failure { message: Some(message), ..Failure::new(class) });
    match end {
        RunEnd::TimedOut(limit) => with(
            FailureClass::Timeout,
            format!("no exit within {} s; the process group was killed", limit.as_secs_f64()),
        ),
        RunEnd::Cancelled => {
            let mut f = Failure::new(FailureClass::Killed);
            f.message = Some("cancelled: precisiond stopped the run (job cancelled or daemon stopping)".into());
            f.hint = "the run was cancelled on purpose; run the job again to finish it";
            Some(f)
        }
        RunEnd::Signaled(_) => with(FailureClass::Killed, format!("trtexec was {end}")),
        RunEnd::Exited(code) => match (&log.failure, log.status) {
            (Some(f), _) => Some(f.clone()),
            (None, Status::Passed) if code == 0 => None,
            (None, _) => with(FailureClass::Other, format!("exit status {code} after `&&&& PASSED`")),
        },
    }
}

struct Finished {
    end: RunEnd,
    status: ExitStatus,
    elapsed: Duration,
    output_left_open: bool,
}

/// Starts the process, drains its output into `sink`, and returns once it has ended and its group is gone.
/// [`check_runnable`] comes first.
fn supervise(
    trtexec: &Path,
    args: &[String],
    sink: &Arc<Mutex<Sink>>,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Finished, RunError> {
    supervise_with_env(trtexec, args, &[], sink, timeout, cancel)
}

fn supervise_with_env(
    trtexec: &Path,
    args: &[String],
    envs: &[(&str, String)],
    sink: &Arc<Mutex<Sink>>,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Finished, RunError> {
    let mut command = Command::new(trtexec);
    command.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let start = Instant::now();
    let child = command.spawn().map_err(|e| spawn_error(trtexec, e))?;
    let mut group = Group::new(child);

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let stdout = group.child.stdout.take();
    let stderr = group.child.stderr.take();
    let pipes = [
        ("trtexec-stdout", Stream::Stdout, stdout.map(Pipe::Out)),
        ("trtexec-stderr", Stream::Stderr, stderr.map(Pipe::Err)),
    ];
    for (name, stream, pipe) in pipes {
        let Some(pipe) = pipe else { continue };
        let sink = Arc::clone(sink);
        let done = done_tx.clone();
        // A failed thread start drops `group`, which kills and reaps the child.
        thread::Builder::new()
            .name(name.into())
            .spawn(move || pump(stream, pipe, &sink, done))
            .map_err(RunError::Thread)?;
    }
    drop(done_tx);

    let deadline = start.checked_add(timeout);
    let mut poll = POLL_MIN;
    let stop = loop {
        if group.leader_exited()? {
            break None;
        }
        if cancel.load(Ordering::Relaxed) {
            break Some(RunEnd::Cancelled);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Some(RunEnd::TimedOut(timeout));
        }
        thread::sleep(poll);
        poll = (poll * 2).min(POLL_MAX);
    };
    if stop.is_some() {
        group.signal(libc::SIGTERM);
        let grace_end = Instant::now() + TERM_GRACE;
        while Instant::now() < grace_end && !group.leader_exited()? {
            thread::sleep(POLL_MAX);
        }
    }
    // Also after a normal exit: whatever the leader left behind in its group goes with it.
    group.signal(libc::SIGKILL);
    let status = group.reap()?;
    let elapsed = start.elapsed();

    // The pipes close when the last process holding them is gone, which the group kill has just ensured.
    let drain_end = Instant::now() + DRAIN_GRACE;
    let output_left_open = loop {
        match done_rx.recv_timeout(drain_end.saturating_duration_since(Instant::now())) {
            Ok(()) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => break true,
        }
    };
    let end = stop.unwrap_or_else(|| match (status.code(), status.signal()) {
        (Some(code), _) => RunEnd::Exited(code),
        (None, Some(sig)) => RunEnd::Signaled(sig),
        // Stopped/continued statuses are not reported by wait(); a status is either of the above.
        (None, None) => RunEnd::Exited(-1),
    });
    Ok(Finished { end, status, elapsed, output_left_open })
}

/// Refuses what cannot be run before spawning, to name the problem: spawn's own errors are ambiguous (ENOENT is
/// also a missing script interpreter or ELF loader).
fn check_runnable(trtexec: &Path) -> Result<(), RunError> {
    // Like execvp: a name without '/' is looked up on PATH, not in the current directory.
    if !has_slash(trtexec) {
        return Ok(());
    }
    let meta = match std::fs::metadata(trtexec) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RunError::NotFound { path: trtexec.to_path_buf() });
        }
        Err(source) => return Err(RunError::Spawn { path: trtexec.to_path_buf(), source }),
    };
    let why = if meta.is_dir() {
        Some("it is a directory")
    } else if meta.permissions().mode() & 0o111 == 0 {
        Some("it has no execute permission")
    } else {
        None
    };
    match why {
        Some(why) => Err(RunError::NotExecutable { path: trtexec.to_path_buf(), why: why.into() }),
        None => Ok(()),
    }
}

fn spawn_error(trtexec: &Path, source: io::Error) -> RunError {
    let path = trtexec.to_path_buf();
    let why = match (source.kind(), source.raw_os_error()) {
        // The file was there a moment ago (check_runnable), so what is missing is what it needs to start.
        (io::ErrorKind::NotFound, _) if has_slash(trtexec) && trtexec.exists() => {
            "its interpreter or dynamic loader is missing (a script's #! line, or a binary for another system)"
        }
        (io::ErrorKind::NotFound, _) => return RunError::NotFound { path },
        (io::ErrorKind::PermissionDenied, _) => "permission denied",
        (_, Some(libc::ENOEXEC)) => "exec format error: not a program for this machine (another architecture?)",
        _ => return RunError::Spawn { path, source },
    };
    RunError::NotExecutable { path, why: why.into() }
}

fn has_slash(path: &Path) -> bool {
    path.as_os_str().as_bytes().contains(&b'/')
}

/// The started child and its process group, killed and reaped on drop unless reaped already: every early return
/// (thread start, wait error) leaves nothing running.
struct Group {
    child: Child,
    /// The group's id: the leader's pid, as `process_group(0)` made it.
    pgid: libc::pid_t,
    reaped: bool,
}

impl Group {
    fn new(child: Child) -> Group {
        // Linux pids are below 2^22; the fallback only keeps this total.
        let pgid = libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX);
        Group { child, pgid, reaped: false }
    }

    /// Sends `sig` to every process of the group. The leader is not reaped yet, so the id is still this group's.
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) takes plain integers and touches no memory of this process. A negative pid addresses the
        // group. ESRCH (nothing left) is the expected answer once the group is gone, so the result is not checked.
        unsafe {
            libc::kill(-self.pgid, sig);
        }
    }

    /// Whether the leader has ended, without reaping it (WNOWAIT), so that its group id stays reserved.
    fn leader_exited(&self) -> Result<bool, RunError> {
        let Ok(id) = libc::id_t::try_from(self.pgid) else { return Ok(true) };
        loop {
            // SAFETY: zeroed is a valid siginfo_t (plain integers and unions of them), and waitid writes only into
            // the struct it is given.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
            if r == 0 {
                // SAFETY: with WNOHANG, si_pid is 0 while the child runs and its pid once it has ended.
                return Ok(unsafe { info.si_pid() } != 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(RunError::Wait { pid: self.child.id(), source: e });
            }
        }
    }

    fn reap(&mut self) -> Result<ExitStatus, RunError> {
        let status = self.child.wait().map_err(|source| RunError::Wait { pid: self.child.id(), source })?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
    /// precisiond's own `precisiond:` lines.
    Note,
}

enum Pipe {
    Out(std::process::ChildStdout),
    Err(std::process::ChildStderr),
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Pipe::Out(p) => p.read(buf),
            Pipe::Err(p) => p.read(buf),
        }
    }
}

enum Out {
    File(BufWriter<File>),
    /// For `--help`: bounded, as the program may not be trtexec at all.
    Memory(Vec<u8>),
}

/// Where both readers write, whole lines at a time so that stdout and stderr interleave only between lines.
struct Sink {
    out: Out,
    /// The stream whose last piece did not end its line (one longer than [`CHUNK`]); another stream's line
    /// starts on a new line rather than glued to it.
    open_line: Option<Stream>,
    /// The first write error. The readers keep draining after it, or the child would block on a full pipe.
    error: Option<io::Error>,
    /// Set once the run is over: output from a process that escaped the group goes nowhere.
    closed: bool,
}

impl Sink {
    fn new(out: Out) -> Sink {
        Sink { out, open_line: None, error: None, closed: false }
    }

    fn append(&mut self, stream: Stream, bytes: &[u8]) {
        if self.closed || self.error.is_some() || bytes.is_empty() {
            return;
        }
        if self.open_line.is_some_and(|open| open != stream) {
            self.write(b"\n");
        }
        self.write(bytes);
        self.open_line = (!bytes.ends_with(b"\n")).then_some(stream);
    }

    fn write(&mut self, bytes: &[u8]) {
        match &mut self.out {
            Out::File(w) => {
                if let Err(e) = w.write_all(bytes) {
                    self.error = Some(e);
                }
            }
            Out::Memory(v) => {
                let room = HELP_CAPTURE_LIMIT.saturating_sub(v.len());
                v.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
    }

    fn close(&mut self) -> io::Result<()> {
        self.closed = true;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match &mut self.out {
            Out::File(w) => w.flush(),
            Out::Memory(_) => Ok(()),
        }
    }
}

fn lock(sink: &Mutex<Sink>) -> MutexGuard<'_, Sink> {
    // A reader that panicked mid-append leaves at worst a partial line; the log is still worth keeping.
    sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies one pipe into the sink until EOF, a line (or a [`CHUNK`] of an endless line) at a time.
fn pump(stream: Stream, pipe: Pipe, sink: &Mutex<Sink>, done: mpsc::Sender<()>) {
    let mut reader = BufReader::with_capacity(CHUNK, pipe);
    let mut line = Vec::new();
    loop {
        let (used, complete) = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&buf[..=i]);
                    (i + 1, true)
                }
                None => {
                    line.extend_from_slice(buf);
                    (buf.len(), false)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        reader.consume(used);
        if complete || line.len() >= CHUNK {
            lock(sink).append(stream, &line);
            line.clear();
        }
    }
    if !line.is_empty() {
        // The other stream's next line must not be glued to this unterminated one.
        line.push(b'\n');
        lock(sink).append(stream, &line);
    }
    let _ = done.send(());
}

fn head(text: &str, lines: usize, chars: usize) -> String {
    let joined: Vec<&str> = text.lines().take(lines).collect();
    joined.join(" / ").chars().take(chars).collect()
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}
