//! The daemon's configuration file (PRODUCT.md "Daemon configuration and on-disk layout"), checked by
//! `precisiond check-config FILE` (the systemd unit's ExecStartPre) and read by `precisiond run --config FILE`.
//!
//! ```toml
//! inbox = "/var/lib/precisiond/inbox"   # default: STATE_DIR/inbox; one sub-folder per model (a bundle)
//! state_dir = "/var/lib/precisiond"     # default; engines/, live/, journal, outbox, timing caches
//! backend = "tensorrt"                  # default; tensorrt | cpu
//! trtexec = "/usr/src/tensorrt/bin/trtexec"  # default; a bare name is looked up on PATH
//! keep_versions = 3                     # default; published versions kept per model, the live one included (>= 1)
//! build_timeout = "30m"                 # default; one engine build at most this long, then it is killed
//! debounce = "500ms"                    # default; quiet time after the last change in the inbox before a bundle is
//!                                       # looked at (a copy in progress keeps changing it)
//! [publish]
//! hook = "systemctl reload my-app"      # optional; `sh -c` after a switch; non-zero exit or timeout: rollback
//! hook_timeout = "30s"                  # default
//! triton_repository = "/models"         # optional: also publish into this Triton model repository
//! triton_url = "http://127.0.0.1:8000"  # optional, needs triton_repository: then POST .../models/{name}/load
//! [upstream]
//! url = "https://fleet.example.com/v1/events"  # optional: JSON events, durable outbox, retries
//! token_file = "/etc/precisiond/token"  # optional: bearer token for url, read at each send
//! otlp_url = "http://127.0.0.1:4318/v1/metrics"  # optional: OTLP/HTTP JSON metrics
//! outbox_max_mib = 64                   # default; the oldest events are dropped beyond this (>= 1)
//! [status]
//! listen = "127.0.0.1:9464"             # default; IP:port of /status, /metrics, /healthz; "off": none
//! [security]
//! require_signature = false             # default; true: a bundle without a good signature by a trusted key is refused
//! trusted_keys = []                     # default; .pub files (`precisiond keygen`); signatures of signed bundles are
//!                                       # checked against them even when not required
//! max_file_mib = 2048                   # default; a bundle holding a larger file is refused (>= 1); an ONNX model
//!                                       # cannot exceed 2 GiB, and nothing else in a bundle needs to
//! ```
//!
//! Every key is optional. Relative paths are relative to the folder of the configuration file. Without a file
//! ([`Config::local`]) everything lives under `./precisiond/` and the backend is `cpu`: a try-out that needs no root,
//! no TensorRT and no setup.
//!
//! Reading reports every problem of the file at once, each with its line: syntax errors (all that the parser finds),
//! unknown keys (with the closest known key, or the table the key belongs to), values of the wrong type or out of
//! range, and combinations that cannot work (`triton_url` without `triton_repository`, `require_signature` without
//! `trusted_keys`, a trusted key file that is missing or not a key, a state_dir inside the inbox).
//!
//! Errors and warnings are split by one rule: an error is something wrong in the file, or something without which
//! the daemon would make wrong security decisions (a trusted key it cannot read); a warning is a fact of the machine
//! that can change while the daemon runs and that it reports per job anyway (trtexec missing, say until JetPack is
//! installed; a token file not yet provisioned). A warning does not fail `check-config`: refusing to start would also
//! silence the status endpoint and the upstream reports that tell the fleet what is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::bundle::sign::PublicKey;
use crate::error::{Diagnose, Fault};

/// Where the packaged systemd unit reads the configuration from.
pub const DEFAULT_PATH: &str = "/etc/precisiond/config.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/precisiond";
pub const DEFAULT_TRTEXEC: &str = "/usr/src/tensorrt/bin/trtexec";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Engines built by trtexec.
    Tensorrt,
    /// The CPU reference backend: the exported ONNX model is the engine.
    Cpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Tensorrt => "tensorrt",
            Backend::Cpu => "cpu",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A checked configuration; see the module documentation for what each key means and its default.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from; `None` for [`Config::local`].
    pub source: Option<PathBuf>,
    pub inbox: PathBuf,
    pub state_dir: PathBuf,
    pub backend: Backend,
    /// As configured (resolved against the file's folder when it holds a `/`); a bare name is found on PATH.
    pub trtexec: PathBuf,
    /// At least 1.
    pub keep_versions: u32,
    /// Not zero.
    pub build_timeout: Duration,
    pub debounce: Duration,
    pub publish: Publish,
    pub upstream: Upstream,
    pub status: Status,
    pub security: Security,
    /// What the daemon should log at start (and `check-config` prints); see the module documentation.
    pub warnings: Vec<Problem>,
}

#[derive(Clone, Debug, Default)]
pub struct Publish {
    /// A shell command line, not empty.
    pub hook: Option<String>,
    /// Not zero.
    pub hook_timeout: Duration,
    pub triton_repository: Option<PathBuf>,
    /// `http://` or `https://`; only with `triton_repository`.
    pub triton_url: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Upstream {
    /// `http://` or `https://`.
    pub url: Option<String>,
    pub token_file: Option<PathBuf>,
    /// `http://` or `https://`.
    pub otlp_url: Option<String>,
    /// At least 1.
    pub outbox_max_mib: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Status {
    /// `None`: `listen = "off"`, no status endpoint.
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, Default)]
pub struct Security {
    pub require_signature: bool,
    /// The files as configured, in order.
    pub trusted_keys: Vec<PathBuf>,
    /// The keys those files hold, loaded and checked (same order).
    pub trusted: Vec<PublicKey>,
    /// At least 1.
    pub max_file_mib: u64,
}

const DEFAULT_KEEP_VERSIONS: u32 = 3;
const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_OUTBOX_MAX_MIB: u64 = 64;
const DEFAULT_MAX_FILE_MIB: u64 = 2048;

fn default_listen() -> Option<SocketAddr> {
    DEFAULT_LISTEN.parse().ok()
}

impl Config {
    /// The configuration without a file: a local try-out under `./precisiond/` (inbox `precisiond/inbox`, state
    /// `precisiond/state`), the cpu backend, status on 127.0.0.1:9464, signatures not required.
    pub fn local() -> Config {
        Config {
            source: None,
            inbox: PathBuf::from("precisiond/inbox"),
            state_dir: PathBuf::from("precisiond/state"),
            backend: Backend::Cpu,
            trtexec: PathBuf::from(DEFAULT_TRTEXEC),
            keep_versions: DEFAULT_KEEP_VERSIONS,
            build_timeout: DEFAULT_BUILD_TIMEOUT,
            debounce: DEFAULT_DEBOUNCE,
            publish: Publish { hook_timeout: DEFAULT_HOOK_TIMEOUT, ..Publish::default() },
            upstream: Upstream { outbox_max_mib: DEFAULT_OUTBOX_MAX_MIB, ..Upstream::default() },
            status: Status { listen: default_listen() },
            security: Security { max_file_mib: DEFAULT_MAX_FILE_MIB, ..Security::default() },
            warnings: Vec::new(),
        }
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    /// Checks configuration text; `path` names it in messages and anchors relative paths. Looks at the files the
    /// configuration names (trusted keys are loaded, trtexec and the token file looked for).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // The parser's recovery guesses; keys read from a guessed tree would add errors that are not there.
            let mut errors: Vec<Problem> = syntax
                .iter()
                .map(|e| Problem {
                    line: e.span().map(|s| line_at(text, s.start)),
                    key: None,
                    message: e.message().trim().replace('\n', "; "),
                    hint: None,
                })
                .collect();
            sort(&mut errors);
            return Err(ConfigError::Invalid { path: path.to_owned(), errors, warnings: Vec::new() });
        }
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut r = Reader { text, base, errors: Vec::new(), warnings: Vec::new(), tables: Vec::new() };
        let config = read(&mut r, root.get_ref(), path);
        r.report_unknown_keys();
        let Reader { mut errors, mut warnings, .. } = r;
        sort(&mut errors);
        sort(&mut warnings);
        if errors.is_empty() {
            Ok(Config { warnings, ..config })
        } else {
            Err(ConfigError::Invalid { path: path.to_owned(), errors, warnings })
        }
    }
}

fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
}

/// One thing wrong (or worth a warning) in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: Option<usize>,
    /// The key it is about, dotted (`security.trusted_keys`); `None` for syntax errors and unknown keys, whose
    /// message names the key.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    /// `FILE:LINE: key: message`.
    pub fn render(&self, file: &Path) -> String {
        let line = self.line.map_or(String::new(), |l| format!(":{l}"));
        let key = self.key.as_ref().map_or(String::new(), |k| format!("{k}: "));
        format!("{}{line}: {key}{}", file.display(), self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", render_errors(path, errors))]
    Invalid { path: PathBuf, errors: Vec<Problem>, warnings: Vec<Problem> },
}

fn render_errors(path: &Path, errors: &[Problem]) -> String {
    if let [one] = errors {
        return one.render(path);
    }
    let mut out = format!("{}: {} errors", path.display(), errors.len());
    for problem in errors {
        out.push_str("\n  ");
        out.push_str(&problem.render(path));
        if let Some(hint) = &problem.hint {
            out.push_str("\n      hint: ");
            out.push_str(hint);
        }
    }
    out
}

impl ConfigError {
    /// Every error, in line order (one for a file that cannot be read).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { source, .. } => {
                vec![Problem { line: None, key: None, message: format!("cannot read: {source}"), hint: None }]
            }
            ConfigError::Invalid { errors, .. } => errors.clone(),
        }
    }

    pub fn warnings(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { warnings, .. } => warnings,
        }
    }
}

impl Diagnose for ConfigError {
    fn fault(&self) -> Fault {
        match self {
            ConfigError::Read { source, .. }
                if !matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidData) =>
            {
                Fault::Environment
            }
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            // With several errors each hint is printed under its own error.
            ConfigError::Invalid { errors, .. } if errors.len() == 1 => errors[0].hint.clone(),
            ConfigError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "the packaged configuration is {DEFAULT_PATH}; `precisiond run` without --config runs a local try-out"
            )),
            _ => None,
        }
    }
}

/// A value as read: absent (the default applies), present but wrong (already reported: checks that depend on it
/// are skipped, so one mistake gives one error), or present with the line of its key.
enum Got<T> {
    Absent,
    Bad,
    Ok(T, usize),
}

impl<T> Got<T> {
    fn or(self, default: T) -> T {
        match self {
            Got::Ok(value, _) => value,
            _ => default,
        }
    }

    fn value(&self) -> Option<&T> {
        match self {
            Got::Ok(value, _) => Some(value),
            _ => None,
        }
    }

    fn line(&self) -> Option<usize> {
        match self {
            Got::Ok(_, line) => Some(*line),
            _ => None,
        }
    }
}

/// Why a value does not fit its key; the reader adds the key and line.
struct Bad {
    message: String,
    hint: Option<String>,
}

fn bad(message: impl Into<String>) -> Bad {
    Bad { message: message.into(), hint: None }
}

impl Bad {
    fn hint(mut self, hint: impl Into<String>) -> Bad {
        self.hint = Some(hint.into());
        self
    }
}

/// One table of the file being read: the keys asked for are its known keys, so that what is left over is unknown
/// and the known keys are the suggestions.
struct Table<'a, 'i> {
    path: Vec<&'static str>,
    entries: Option<&'a DeTable<'i>>,
    known: Vec<&'static str>,
}

struct Reader<'t> {
    text: &'t str,
    base: PathBuf,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Tables read so far, with their known keys and the keys they hold, for the unknown-key report.
    tables: Vec<(Vec<&'static str>, Vec<&'static str>, Vec<(String, usize)>)>,
}

impl<'t> Reader<'t> {
    fn line(&self, offset: usize) -> usize {
        line_at(self.text, offset)
    }

    fn error(&mut self, line: Option<usize>, key: Option<String>, bad: Bad) {
        self.errors.push(Problem { line, key, message: bad.message, hint: bad.hint });
    }

    fn warn(&mut self, line: Option<usize>, key: Option<String>, bad: Bad) {
        self.warnings.push(Problem { line, key, message: bad.message, hint: bad.hint });
    }

    /// The raw value of `key`, marking it known.
    fn raw<'a, 'i>(&self, table: &mut Table<'a, 'i>, key: &'static str) -> Option<(&'a Spanned<DeValue<'i>>, usize)> {
        table.known.push(key);
        let (k, v) = table.entries?.iter().find(|(k, _)| k.get_ref() == key)?;
        Some((v, self.line(k.span().start)))
    }

    /// `key` converted by `convert`, its problem reported with the key and line.
    fn get<T>(
        &mut self,
        table: &mut Table<'_, '_>,
        key: &'static str,
        convert: impl FnOnce(&mut Self, &Spanned<DeValue<'_>>) -> Result<T, Bad>,
    ) -> Got<T> {
        let Some((value, line)) = self.raw(table, key) else { return Got::Absent };
        match convert(self, value) {
            Ok(v) => Got::Ok(v, line),
            Err(bad) => {
                self.error(Some(line), Some(dotted(&table.path, key)), bad);
                Got::Bad
            }
        }
    }

    /// The sub-table `key`; absent or not a table reads as empty (the latter reported).
    fn table<'a, 'i>(&mut self, parent: &mut Table<'a, 'i>, key: &'static str) -> Table<'a, 'i> {
        let mut path = parent.path.clone();
        path.push(key);
        let entries = match self.raw(parent, key) {
            Some((value, line)) => match value.get_ref() {
                DeValue::Table(t) => Some(t),
                other => {
                    let message = format!("expected a table ([{}]), found {}", path.join("."), describe(other));
                    self.error(Some(line), Some(path.join(".")), bad(message));
                    None
                }
            },
            None => None,
        };
        Table { path, entries, known: Vec::new() }
    }

    fn done(&mut self, table: Table<'_, '_>) {
        let present = table
            .entries
            .map(|t| t.iter().map(|(k, _)| (k.get_ref().to_string(), self.line(k.span().start))).collect())
            .unwrap_or_default();
        self.tables.push((table.path, table.known, present));
    }

    /// Every key no table asked for: with the closest known key of its table, or the table it belongs to.
    fn report_unknown_keys(&mut self) {
        let mut problems = Vec::new();
        for (path, known, present) in &self.tables {
            for (key, line) in present {
                if known.iter().any(|k| k == key) {
                    continue;
                }
                let place = if path.is_empty() { "the top level".to_string() } else { format!("[{}]", path.join(".")) };
                let mut message = format!("unknown key `{}` in {place}", crate::spec::toml_key(key));
                let mut hint = None;
                let elsewhere = self.tables.iter().find(|(p, k, _)| p != path && k.iter().any(|k| k == key));
                if let Some((home, _, _)) = elsewhere {
                    let home = if home.is_empty() { "the top level".into() } else { format!("[{}]", home.join(".")) };
                    message.push_str(&format!("; it is a key of {home}"));
                    hint = Some(if path.is_empty() {
                        format!("put it below a {home} header")
                    } else {
                        format!(
                            "move it to {home}{}: in TOML every key after a [table] header belongs to that table",
                            if home == "the top level" { ", above the first [table] header" } else { "" }
                        )
                    });
                } else if let Some(near) = closest(key, known) {
                    message.push_str(&format!("; did you mean `{near}`?"));
                } else {
                    message.push_str(&format!(" (known keys: {})", known.join(", ")));
                }
                problems.push(Problem { line: Some(*line), key: None, message, hint });
            }
        }
        self.errors.extend(problems);
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }
}

/// Reads every key, falling back to its default where absent or wrong, then checks the combinations.
fn read(r: &mut Reader<'_>, root: &DeTable<'_>, source: &Path) -> Config {
    let mut top = Table { path: Vec::new(), entries: Some(root), known: Vec::new() };
    let state_dir = r.get(&mut top, "state_dir", |r, v| path(r, v));
    let inbox = r.get(&mut top, "inbox", |r, v| path(r, v));
    let backend = r.get(&mut top, "backend", |_, v| backend(v));
    let trtexec = r.get(&mut top, "trtexec", |r, v| {
        let text = string(v)?;
        nonempty(&text)?;
        // A bare name is looked up on PATH when run; anything with a `/` is a path like the others.
        Ok(if text.contains('/') { r.resolve(&text) } else { PathBuf::from(text) })
    });
    let keep_versions = r.get(&mut top, "keep_versions", |_, v| {
        let n = integer(v, 1)?;
        u32::try_from(n).map_err(|_| bad(format!("{n} is far more versions than a device can keep")))
    });
    let build_timeout = r.get(&mut top, "build_timeout", |_, v| duration(v, false));
    let debounce = r.get(&mut top, "debounce", |_, v| duration(v, true));

    let mut publish = r.table(&mut top, "publish");
    let hook = r.get(&mut publish, "hook", |_, v| {
        let text = string(v)?;
        if text.trim().is_empty() {
            return Err(bad("empty; remove the key to publish without a hook"));
        }
        Ok(text)
    });
    let hook_timeout = r.get(&mut publish, "hook_timeout", |_, v| duration(v, false));
    let triton_repository = r.get(&mut publish, "triton_repository", |r, v| path(r, v));
    let triton_url = r.get(&mut publish, "triton_url", |_, v| url(v));
    if let (Got::Ok(_, line), Got::Absent) = (&triton_url, &triton_repository) {
        r.error(
            Some(*line),
            Some("publish.triton_url".into()),
            bad("set without publish.triton_repository: Triton's load API loads what is in its repository, and \
                 nothing is published there")
            .hint("add triton_repository = \"/path/of/the/model/repository\" under [publish]"),
        );
    }
    r.done(publish);

    let mut upstream = r.table(&mut top, "upstream");
    let events_url = r.get(&mut upstream, "url", |_, v| url(v));
    let token_file = r.get(&mut upstream, "token_file", |r, v| path(r, v));
    let otlp_url = r.get(&mut upstream, "otlp_url", |_, v| url(v));
    let outbox_max_mib = r.get(&mut upstream, "outbox_max_mib", |_, v| integer(v, 1));
    if let Got::Ok(file, line) = &token_file {
        if matches!(events_url, Got::Absent) {
            let message = "set without upstream.url: there is nothing to send the token to";
            r.warn(Some(*line), Some("upstream.token_file".into()), bad(message));
        } else if !file.is_file() {
            let message = format!("{} does not exist (yet): every send will fail until it does", file.display());
            r.warn(Some(*line), Some("upstream.token_file".into()), bad(message));
        }
    }
    r.done(upstream);

    let mut status = r.table(&mut top, "status");
    let listen = r.get(&mut status, "listen", |_, v| listen(v));
    r.done(status);

    let mut security = r.table(&mut top, "security");
    let require_signature = r.get(&mut security, "require_signature", |_, v| boolean(v));
    let trusted_keys = trusted_keys(r, &mut security);
    let max_file_mib = r.get(&mut security, "max_file_mib", |_, v| integer(v, 1));
    let no_keys = match &trusted_keys {
        Got::Absent => true,
        Got::Ok(keys, _) => keys.is_empty(),
        Got::Bad => false,
    };
    if let (Got::Ok(true, line), true) = (&require_signature, no_keys) {
        r.error(
            Some(*line),
            Some("security.require_signature".into()),
            bad("true, but security.trusted_keys lists no key: every bundle would be refused")
                .hint("list the .pub files of the keys bundles are signed with (`precisiond keygen` makes a pair)"),
        );
    }
    r.done(security);
    r.done(top);

    let state_dir_line = state_dir.line();
    let state_dir = state_dir.or(PathBuf::from(DEFAULT_STATE_DIR));
    let inbox_line = inbox.line();
    let inbox = match inbox {
        Got::Ok(inbox, _) => inbox,
        _ => state_dir.join("inbox"),
    };
    if lexical(&state_dir).starts_with(lexical(&inbox)) {
        let problem = if lexical(&state_dir) == lexical(&inbox) { "is the inbox" } else { "is inside the inbox" };
        r.error(
            state_dir_line.or(inbox_line),
            Some("state_dir".into()),
            bad(format!("{} {problem}, where its folders would be taken for bundles", state_dir.display()))
                .hint("keep the inbox a folder of its own, e.g. inbox = \"STATE_DIR/inbox\" (the default)"),
        );
    }

    let backend_line = backend.line();
    let backend = backend.or(Backend::Tensorrt);
    let trtexec_line = trtexec.line();
    let trtexec = trtexec.or(PathBuf::from(DEFAULT_TRTEXEC));
    if backend == Backend::Tensorrt
        && let Some(problem) = executable_problem(&trtexec)
    {
        r.warn(
            trtexec_line.or(backend_line),
            Some("trtexec".into()),
            bad(format!("{} {problem}: every tensorrt build will fail until it is there", trtexec.display())).hint(
                "install TensorRT (JetPack) or set trtexec to its path; backend = \"cpu\" builds without TensorRT",
            ),
        );
    }

    let (trusted_keys, trusted): (Vec<PathBuf>, Vec<PublicKey>) = trusted_keys.or(Vec::new()).into_iter().unzip();
    Config {
        source: Some(source.to_owned()),
        inbox,
        state_dir,
        backend,
        trtexec,
        keep_versions: keep_versions.or(DEFAULT_KEEP_VERSIONS),
        build_timeout: build_timeout.or(DEFAULT_BUILD_TIMEOUT),
        debounce: debounce.or(DEFAULT_DEBOUNCE),
        publish: Publish {
            hook: hook.value().cloned(),
            hook_timeout: hook_timeout.or(DEFAULT_HOOK_TIMEOUT),
            triton_repository: triton_repository.value().cloned(),
            triton_url: triton_url.value().cloned(),
        },
        upstream: Upstream {
            url: events_url.value().cloned(),
            token_file: token_file.value().cloned(),
            otlp_url: otlp_url.value().cloned(),
            outbox_max_mib: outbox_max_mib.or(DEFAULT_OUTBOX_MAX_MIB),
        },
        status: Status { listen: listen.or(default_listen()) },
        security: Security {
            require_signature: require_signature.or(false),
            trusted_keys,
            trusted,
            max_file_mib: max_file_mib.or(DEFAULT_MAX_FILE_MIB),
        },
        warnings: Vec::new(),
    }
}

/// `trusted_keys`: every file loaded, each problem reported on the line of its own entry.
fn trusted_keys(r: &mut Reader<'_>, security: &mut Table<'_, '_>) -> Got<Vec<(PathBuf, PublicKey)>> {
    const KEY: &str = "security.trusted_keys";
    let Some((value, line)) = r.raw(security, "trusted_keys") else { return Got::Absent };
    let DeValue::Array(items) = value.get_ref() else {
        let message = format!("expected an array of .pub file paths, found {}", describe(value.get_ref()));
        r.error(
            Some(line),
            Some(KEY.into()),
            bad(message).hint("write trusted_keys = [\"/etc/precisiond/keys/fleet.pub\"]"),
        );
        return Got::Bad;
    };
    let mut keys: Vec<(PathBuf, PublicKey)> = Vec::new();
    let mut any_bad = false;
    for item in items.iter() {
        let at = Some(r.line(item.span().start));
        let file = match string(item).and_then(|text| nonempty(&text).map(|_| r.resolve(&text))) {
            Ok(file) => file,
            Err(problem) => {
                r.error(at, Some(KEY.into()), problem);
                any_bad = true;
                continue;
            }
        };
        match PublicKey::load(&file) {
            Ok(key) => {
                if let Some((first, _)) = keys.iter().find(|(_, k)| k.id() == key.id()) {
                    let message =
                        format!("{} holds key {}, as {} does: listed twice", file.display(), key.id(), first.display());
                    r.warn(at, Some(KEY.into()), bad(message));
                }
                keys.push((file, key));
            }
            Err(e) => {
                let hint = e.hint();
                r.error(at, Some(KEY.into()), Bad { message: e.to_string(), hint });
                any_bad = true;
            }
        }
    }
    if any_bad { Got::Bad } else { Got::Ok(keys, line) }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn dotted(path: &[&str], key: &str) -> String {
    path.iter().chain([&key]).copied().collect::<Vec<_>>().join(".")
}

/// The known key a mistyped one most likely meant: the closest by edit distance, else one being a prefix of the
/// other (`keep` → `keep_versions`), as the precision spec suggests keys.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    let owned: Vec<String> = known.iter().map(|k| k.to_string()).collect();
    if let Some(best) = crate::precision::plan::closest(&lower, &owned) {
        return known.iter().copied().find(|k| *k == best);
    }
    known.iter().copied().find(|k| lower.len() >= 3 && (k.starts_with(&lower) || lower.starts_with(k)))
}

fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn string(value: &Spanned<DeValue<'_>>) -> Result<String, Bad> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(bad(format!("expected a string, found {}", describe(other)))),
    }
}

fn nonempty(text: &str) -> Result<(), Bad> {
    if text.is_empty() { Err(bad("empty; remove the key for the default")) } else { Ok(()) }
}

fn path(r: &mut Reader<'_>, value: &Spanned<DeValue<'_>>) -> Result<PathBuf, Bad> {
    let text = string(value)?;
    nonempty(&text)?;
    Ok(r.resolve(&text))
}

fn boolean(value: &Spanned<DeValue<'_>>) -> Result<bool, Bad> {
    match value.get_ref() {
        DeValue::Boolean(b) => Ok(*b),
        DeValue::String(s) if matches!(&**s, "true" | "false") => {
            Err(bad(format!("expected a boolean, found the string \"{s}\""))
                .hint(format!("write it without quotes: {s}")))
        }
        other => Err(bad(format!("expected true or false, found {}", describe(other)))),
    }
}

/// A whole number of at least `min`.
fn integer(value: &Spanned<DeValue<'_>>, min: u64) -> Result<u64, Bad> {
    match value.get_ref() {
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= 0 && n as u64 >= min => Ok(n as u64),
            Ok(n) => Err(bad(format!("{n} is less than {min}; it must be at least {min}"))),
            Err(_) => Err(bad(format!("{i} is too large"))),
        },
        DeValue::String(s) if s.trim().parse::<u64>().is_ok() => {
            Err(bad(format!("expected an integer, found the string \"{s}\"")).hint("write the number without quotes"))
        }
        other => Err(bad(format!("expected an integer, found {}", describe(other)))),
    }
}

/// A humantime duration ("30m", "1h 30m", "500ms"); zero only where `zero_ok`.
fn duration(value: &Spanned<DeValue<'_>>, zero_ok: bool) -> Result<Duration, Bad> {
    let example = "write e.g. \"30m\", \"90s\", \"1h 30m\" or \"500ms\"";
    match value.get_ref() {
        DeValue::String(s) => match humantime::parse_duration(s.trim()) {
            Ok(d) if d.is_zero() && !zero_ok => Err(bad("zero; it must be longer than that").hint(example)),
            Ok(d) => Ok(d),
            Err(e) => Err(bad(format!("\"{s}\" is not a duration ({e})")).hint(example)),
        },
        DeValue::Integer(i) => {
            Err(bad(format!("expected a duration such as \"30m\", found the integer {i}, which has no unit"))
                .hint(format!("write \"{i}s\" for {i} seconds")))
        }
        other => Err(bad(format!("expected a duration such as \"30m\", found {}", describe(other))).hint(example)),
    }
}

fn url(value: &Spanned<DeValue<'_>>) -> Result<String, Bad> {
    let text = string(value)?;
    let rest = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        _ if text.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(bad(format!("\"{text}\" contains white space; a URL cannot")))
        }
        None => Err(bad(format!("\"{text}\" is not an http:// or https:// URL"))
            .hint("write the whole URL, e.g. \"http://127.0.0.1:8000\"")),
        Some("") => Err(bad(format!("\"{text}\" names no host"))),
        Some(_) => Ok(text),
    }
}

fn backend(value: &Spanned<DeValue<'_>>) -> Result<Backend, Bad> {
    let text = string(value)?;
    match text.as_str() {
        "tensorrt" => Ok(Backend::Tensorrt),
        "cpu" => Ok(Backend::Cpu),
        other => {
            let near =
                closest(other, &["tensorrt", "cpu"]).map_or(String::new(), |k| format!("; did you mean \"{k}\"?"));
            Err(bad(format!("unknown backend \"{other}\" (tensorrt | cpu){near}")))
        }
    }
}

/// `IP:PORT`, or "off".
fn listen(value: &Spanned<DeValue<'_>>) -> Result<Option<SocketAddr>, Bad> {
    let text = string(value)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse::<SocketAddr>().map(Some).map_err(|_| {
        bad(format!("\"{text}\" is not an IP address and port")).hint(
            "write e.g. \"127.0.0.1:9464\", \"0.0.0.0:9464\" or \"[::1]:9464\" (host names are not resolved), \
             or \"off\"",
        )
    })
}

/// Why `path` cannot be run, if it cannot: a bare name is looked for on PATH.
fn executable_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if path.components().count() == 1 && !path.has_root() {
        let found =
            std::env::var_os("PATH").is_some_and(|dirs| std::env::split_paths(&dirs).any(|d| runnable(&d.join(path))));
        return (!found).then(|| "is not on PATH".to_string());
    }
    match std::fs::metadata(path) {
        Err(_) => Some("does not exist".into()),
        Ok(m) if !m.is_file() => Some("is not a file".into()),
        Ok(_) if !runnable(path) => Some("is not executable".into()),
        Ok(_) => None,
    }
}

/// `.` and `..` resolved without touching the file system (the folders need not exist yet).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::sign;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    /// The errors of `text`, rendered one per line.
    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.problems().iter().map(|p| p.render(Path::new("config.toml"))).collect(),
        }
    }

    fn one_error(text: &str) -> String {
        let all = errors(text);
        assert_eq!(all.len(), 1, "{text:?} gave {all:#?}");
        all.into_iter().next().unwrap()
    }

    fn write_key(dir: &Path, name: &str) -> (PathBuf, sign::KeyId) {
        let key = sign::generate().unwrap();
        let path = dir.join(name);
        std::fs::write(&path, key.public().to_text()).unwrap();
        (path, key.id())
    }

    #[test]
    fn the_contract_example_reads_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let (fleet, id) = write_key(dir.path(), "fleet.pub");
        let text = format!(
            r#"
inbox = "/var/lib/precisiond/inbox"
state_dir = "/var/lib/precisiond"
backend = "tensorrt"
trtexec = "/usr/src/tensorrt/bin/trtexec"
keep_versions = 3
build_timeout = "30m"
[publish]
hook = "systemctl reload my-app"
triton_repository = "/models"
triton_url = "http://127.0.0.1:8000"
[upstream]
url = "https://fleet.example.com/v1/events"
token_file = "/etc/precisiond/token"
otlp_url = "http://127.0.0.1:4318/v1/metrics"
[status]
listen = "127.0.0.1:9464"
[security]
require_signature = true
trusted_keys = ["{}"]
"#,
            fleet.display()
        );
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.source.as_deref(), Some(Path::new("config.toml")));
        assert_eq!(c.inbox, Path::new("/var/lib/precisiond/inbox"));
        assert_eq!(c.state_dir, Path::new("/var/lib/precisiond"));
        assert_eq!((c.backend, c.trtexec.as_path()), (Backend::Tensorrt, Path::new(DEFAULT_TRTEXEC)));
        assert_eq!((c.keep_versions, c.build_timeout), (3, Duration::from_secs(1800)));
        assert_eq!(c.debounce, Duration::from_millis(500));
        assert_eq!(c.publish.hook.as_deref(), Some("systemctl reload my-app"));
        assert_eq!(c.publish.hook_timeout, Duration::from_secs(30));
        assert_eq!(c.publish.triton_repository.as_deref(), Some(Path::new("/models")));
        assert_eq!(c.publish.triton_url.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(c.upstream.url.as_deref(), Some("https://fleet.example.com/v1/events"));
        assert_eq!(c.upstream.token_file.as_deref(), Some(Path::new("/etc/precisiond/token")));
        assert_eq!(c.upstream.otlp_url.as_deref(), Some("http://127.0.0.1:4318/v1/metrics"));
        assert_eq!(c.upstream.outbox_max_mib, 64);
        assert_eq!(c.status.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(c.security.require_signature);
        assert_eq!(c.security.trusted_keys, [fleet]);
        assert_eq!(c.security.trusted.iter().map(|k| k.id()).collect::<Vec<_>>(), [id]);
        assert_eq!(c.security.max_file_mib, 2048);
        // This machine has neither TensorRT nor the token: facts of the machine, not mistakes in the file.
        for w in &c.warnings {
            assert!(matches!(w.key.as_deref(), Some("trtexec" | "upstream.token_file")), "{w:?}");
        }
    }

    #[test]
    fn an_empty_file_takes_the_packaged_defaults_and_no_file_the_local_ones() {
        let c = parse("# nothing set\n").unwrap();
        assert_eq!(c.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert_eq!(c.inbox, Path::new("/var/lib/precisiond/inbox"));
        assert_eq!(c.backend, Backend::Tensorrt);
        assert_eq!(c.keep_versions, 3);
        assert!(!c.security.require_signature && c.security.trusted.is_empty());
        let c = parse("state_dir = \"/data/pd\"\n").unwrap();
        assert_eq!(c.inbox, Path::new("/data/pd/inbox"), "the inbox follows state_dir");

        let l = Config::local();
        assert_eq!(l.source, None);
        assert_eq!(
            (l.inbox.as_path(), l.state_dir.as_path()),
            (Path::new("precisiond/inbox"), Path::new("precisiond/state"))
        );
        assert_eq!(l.backend, Backend::Cpu);
        assert_eq!(l.status.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            (l.build_timeout, l.debounce, l.publish.hook_timeout),
            (DEFAULT_BUILD_TIMEOUT, DEFAULT_DEBOUNCE, DEFAULT_HOOK_TIMEOUT)
        );
        assert_eq!((l.upstream.outbox_max_mib, l.security.max_file_mib), (64, 2048));
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn unknown_keys_name_their_line_and_the_closest_key() {
        let cases = [
            ("inbx = \"/in\"\n", "config.toml:1: unknown key `inbx` in the top level; did you mean `inbox`?"),
            (
                "backend = \"cpu\"\nkeep_version = 2\n",
                "config.toml:2: unknown key `keep_version` in the top level; did you mean `keep_versions`?",
            ),
            (
                "[publish]\nhook_timout = \"5s\"\n",
                "config.toml:2: unknown key `hook_timout` in [publish]; did you mean `hook_timeout`?",
            ),
            ("[secruity]\n", "config.toml:1: unknown key `secruity` in the top level; did you mean `security`?"),
            (
                "[status]\nlisten_on = \"off\"\n",
                "config.toml:2: unknown key `listen_on` in [status]; did you mean `listen`?",
            ),
            (
                "[upstream]\nzzzz = 1\n",
                "config.toml:2: unknown key `zzzz` in [upstream] (known keys: url, token_file, otlp_url, outbox_max_mib)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(one_error(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_key_in_the_wrong_table_is_sent_to_its_own() {
        let e = parse("backend = \"cpu\"\nhook = \"true\"\n").unwrap_err();
        assert_eq!(e.to_string(), "config.toml:2: unknown key `hook` in the top level; it is a key of [publish]");
        assert_eq!(e.hint().as_deref(), Some("put it below a [publish] header"));
        // The classic TOML slip: a top-level key written below a table header.
        let e = parse("backend = \"cpu\"\n[security]\nrequire_signature = false\nkeep_versions = 5\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config.toml:4: unknown key `keep_versions` in [security]; it is a key of the top level"
        );
        assert!(e.hint().unwrap().contains("above the first [table] header"), "{:?}", e.hint());
    }

    #[test]
    fn wrong_values_name_their_key_and_line() {
        let cases = [
            ("backend = \"gpu\"\n", "config.toml:1: backend: unknown backend \"gpu\" (tensorrt | cpu)"),
            (
                "backend = \"tensorrtt\"\n",
                "backend: unknown backend \"tensorrtt\" (tensorrt | cpu); did you mean \"tensorrt\"?",
            ),
            ("backend = 1\n", "config.toml:1: backend: expected a string, found an integer"),
            ("keep_versions = 0\n", "config.toml:1: keep_versions: 0 is less than 1; it must be at least 1"),
            ("keep_versions = -2\n", "keep_versions: -2 is less than 1"),
            ("keep_versions = \"3\"\n", "keep_versions: expected an integer, found the string \"3\""),
            ("keep_versions = 2.5\n", "keep_versions: expected an integer, found a float"),
            ("keep_versions = 99999999999\n", "keep_versions: 99999999999 is far more versions"),
            (
                "build_timeout = 1800\n",
                "config.toml:1: build_timeout: expected a duration such as \"30m\", found the integer 1800, which has no unit",
            ),
            ("build_timeout = \"30 minutes please\"\n", "build_timeout: \"30 minutes please\" is not a duration"),
            ("build_timeout = \"0s\"\n", "build_timeout: zero; it must be longer than that"),
            ("debounce = [1]\n", "debounce: expected a duration such as \"30m\", found an array"),
            ("inbox = \"\"\n", "config.toml:1: inbox: empty; remove the key for the default"),
            ("state_dir = 7\n", "state_dir: expected a string, found an integer"),
            ("publish = 1\n", "config.toml:1: publish: expected a table ([publish]), found an integer"),
            (
                "[publish]\nhook = \"  \"\n",
                "config.toml:2: publish.hook: empty; remove the key to publish without a hook",
            ),
            ("[publish]\nhook_timeout = \"soon\"\n", "publish.hook_timeout: \"soon\" is not a duration"),
            (
                "[upstream]\nurl = \"fleet.example.com/v1\"\n",
                "config.toml:2: upstream.url: \"fleet.example.com/v1\" is not an http:// or https:// URL",
            ),
            (
                "[upstream]\notlp_url = \"http:///v1/metrics\"\n",
                "upstream.otlp_url: \"http:///v1/metrics\" names no host",
            ),
            ("[upstream]\nurl = \"http://a b\"\n", "upstream.url: \"http://a b\" contains white space"),
            ("[upstream]\noutbox_max_mib = 0\n", "upstream.outbox_max_mib: 0 is less than 1"),
            (
                "[status]\nlisten = \"localhost:9464\"\n",
                "config.toml:2: status.listen: \"localhost:9464\" is not an IP address and port",
            ),
            ("[status]\nlisten = \"127.0.0.1\"\n", "status.listen: \"127.0.0.1\" is not an IP address and port"),
            ("[status]\nlisten = 9464\n", "status.listen: expected a string, found an integer"),
            (
                "[security]\nrequire_signature = \"true\"\n",
                "config.toml:2: security.require_signature: expected a boolean, found the string \"true\"",
            ),
            (
                "[security]\nrequire_signature = 1\n",
                "security.require_signature: expected true or false, found an integer",
            ),
            (
                "[security]\ntrusted_keys = \"a.pub\"\n",
                "config.toml:2: security.trusted_keys: expected an array of .pub file paths, found a string",
            ),
            ("[security]\ntrusted_keys = [1]\n", "security.trusted_keys: expected a string, found an integer"),
            ("[security]\nmax_file_mib = 0\n", "security.max_file_mib: 0 is less than 1"),
        ];
        for (text, expected) in cases {
            let got = one_error(text);
            assert!(got.contains(expected), "{text:?}\n  gave {got}\n  want {expected}");
        }
        let e = parse("build_timeout = 1800\n").unwrap_err();
        assert_eq!(e.hint().as_deref(), Some("write \"1800s\" for 1800 seconds"));
        assert_eq!(e.fault(), Fault::Input);
    }

    #[test]
    fn values_that_read_well() {
        let c = parse(
            "backend = \"cpu\"\nkeep_versions = 1_0\nbuild_timeout = \"1h 30m\"\ndebounce = \"0s\"\n\
             [status]\nlisten = \"off\"\n[publish]\nhook_timeout = \"2m\"\n[upstream]\nurl = \"http://[::1]:8080/e\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.keep_versions, c.build_timeout), (10, Duration::from_secs(5400)));
        assert_eq!((c.debounce, c.publish.hook_timeout), (Duration::ZERO, Duration::from_secs(120)));
        assert_eq!(c.status.listen, None);
        assert!(c.warnings.is_empty(), "the cpu backend needs no trtexec: {:?}", c.warnings);
        let c = parse("[status]\nlisten = \"[::1]:9000\"\n").unwrap();
        assert_eq!(c.status.listen, Some("[::1]:9000".parse().unwrap()));
    }

    #[test]
    fn combinations_that_cannot_work() {
        assert_eq!(
            one_error("[publish]\ntriton_url = \"http://127.0.0.1:8000\"\n"),
            "config.toml:2: publish.triton_url: set without publish.triton_repository: Triton's load API loads what is \
             in its repository, and nothing is published there"
        );
        assert_eq!(
            one_error("[security]\nrequire_signature = true\n"),
            "config.toml:2: security.require_signature: true, but security.trusted_keys lists no key: every bundle \
             would be refused"
        );
        assert!(one_error("[security]\nrequire_signature = true\ntrusted_keys = []\n").contains("lists no key"));
        assert_eq!(
            one_error("inbox = \"/srv/pd\"\nstate_dir = \"/srv/pd/state\"\n"),
            "config.toml:2: state_dir: /srv/pd/state is inside the inbox, where its folders would be taken for bundles"
        );
        assert!(one_error("inbox = \"/srv/pd/\"\nstate_dir = \"/srv/./pd\"\n").contains("/srv/./pd is the inbox"));
        // The contract's own layout: the inbox inside state_dir is fine.
        parse("inbox = \"/srv/pd/inbox\"\nstate_dir = \"/srv/pd\"\nbackend = \"cpu\"\n").unwrap();
        // A wrong trusted_keys value is one error, not also "lists no key".
        let all = errors("[security]\nrequire_signature = true\ntrusted_keys = \"k.pub\"\n");
        assert_eq!(all.len(), 1, "{all:?}");
    }

    #[test]
    fn every_error_is_reported_at_once_in_line_order() {
        let text = "\
inbx = \"/in\"
backend = \"gpu\"
keep_versions = 0
build_timeout = 30
[publish]
triton_url = \"http://127.0.0.1:8000\"
[status]
listen = \"localhost:1\"
[security]
require_signature = true
colour = \"blue\"
";
        let e = parse(text).unwrap_err();
        let lines: Vec<Option<usize>> = e.problems().iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(2), Some(3), Some(4), Some(6), Some(8), Some(10), Some(11)]);
        let shown = e.to_string();
        assert!(shown.starts_with("config.toml: 8 errors\n  config.toml:1: unknown key `inbx`"), "{shown}");
        assert!(shown.contains("\n  config.toml:4: build_timeout: expected a duration"), "{shown}");
        assert!(shown.contains("\n      hint: write \"30s\" for 30 seconds"), "{shown}");
        assert!(shown.contains("\n  config.toml:11: unknown key `colour` in [security]"), "{shown}");
        assert_eq!(e.hint(), None, "hints go under their own error");
    }

    #[test]
    fn syntax_errors_are_all_reported_with_lines() {
        let e = parse("backend = \"cpu\"\nkeep_versions = \nbuild_timeout = \"30m\"\nbuild_timeout = \"1m\"\n")
            .unwrap_err();
        let problems = e.problems();
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| p.line.is_some() && p.key.is_none()), "{problems:?}");
        assert_eq!(problems[0].line, Some(2), "{problems:?}");
        assert!(problems.iter().any(|p| p.line == Some(4) && p.message.contains("duplicate")), "{problems:?}");
        // The parser finds the unclosed array first; they are shown in line order.
        let lines: Vec<Option<usize>> =
            parse("a = \nb = [1,\n").unwrap_err().problems().iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(2)]);
        let e = parse("[security\n").unwrap_err();
        assert!(e.to_string().starts_with("config.toml:1: "), "{e}");
    }

    #[test]
    fn trusted_keys_are_loaded_and_each_bad_one_is_named_on_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (good, id) = write_key(d, "good.pub");
        std::fs::write(d.join("junk.pub"), "hello\n").unwrap();
        let secret = sign::generate().unwrap();
        sign::write_keypair(&d.join("signer"), &secret).unwrap();
        std::fs::copy(&good, d.join("again.pub")).unwrap();
        let text = "[security]\nrequire_signature = true\ntrusted_keys = [\n  \"good.pub\",\n  \"missing.pub\",\n  \
                    \"junk.pub\",\n  \"signer.key\",\n  \"\",\n]\n";
        let config = d.join("config.toml");
        let e = Config::parse(text, &config).unwrap_err();
        let problems = e.problems();
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(5), Some(6), Some(7), Some(8)], "{problems:#?}");
        assert!(problems.iter().all(|p| p.key.as_deref() == Some("security.trusted_keys")));
        assert!(problems[0].message.starts_with(&format!("{}: cannot read", d.join("missing.pub").display())));
        assert!(problems[1].message.contains("junk.pub: expected a line starting with `precisiond-ed25519-public`"));
        assert!(problems[2].message.contains("signer.key: a `precisiond-ed25519-secret` file"), "{:?}", problems[2]);
        assert!(problems[2].hint.as_deref().unwrap().contains("devices trust its .pub file"));
        assert!(problems[3].message.contains("empty"));

        // Relative to the configuration's folder; the same key twice is a warning.
        let text = "[security]\nrequire_signature = true\ntrusted_keys = [\"good.pub\", \"signer.pub\", \"again.pub\"]\n\
                    [upstream]\ntoken_file = \"token\"\n";
        let c = Config::parse(text, &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.security.trusted_keys, [good, d.join("signer.pub"), d.join("again.pub")]);
        assert_eq!(c.security.trusted[0].id(), id);
        assert_eq!(c.security.trusted[1].id(), secret.id());
        let warnings: Vec<&str> = c.warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(
            warnings.iter().any(|w| w.contains("again.pub holds key") && w.contains("listed twice")),
            "{warnings:?}"
        );
        assert!(warnings.iter().any(|w| w.contains("nothing to send the token to")), "{warnings:?}");
    }

    #[test]
    fn a_missing_trtexec_is_a_warning_and_paths_are_relative_to_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = d.join("config.toml");
        let c = Config::parse("backend = \"tensorrt\"\ntrtexec = \"bin/trtexec\"\n", &config).unwrap();
        assert_eq!(c.trtexec, d.join("bin/trtexec"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert_eq!(c.warnings[0].line, Some(2));
        assert!(
            c.warnings[0]
                .message
                .ends_with("bin/trtexec does not exist: every tensorrt build will fail until it is there")
        );

        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/trtexec"), "#!/bin/sh\n").unwrap();
        let c = Config::parse("trtexec = \"bin/trtexec\"\n", &config).unwrap();
        assert!(c.warnings[0].message.contains("is not executable"), "{:?}", c.warnings);
        std::fs::set_permissions(d.join("bin/trtexec"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = Config::parse("trtexec = \"bin/trtexec\"\ninbox = \"in\"\nstate_dir = \"./state\"\n", &config).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!((c.inbox, c.state_dir), (d.join("in"), d.join("./state")));

        // A bare name is looked for on PATH (sh is on every PATH; this name is on none).
        assert!(Config::parse("trtexec = \"sh\"\n", &config).unwrap().warnings.is_empty());
        let c = Config::parse("trtexec = \"trtexec-not-installed-anywhere\"\n", &config).unwrap();
        assert!(c.warnings[0].message.contains("is not on PATH"), "{:?}", c.warnings);
        assert_eq!(c.trtexec, Path::new("trtexec-not-installed-anywhere"));
    }

    #[test]
    fn load_names_the_file_it_cannot_read() {
        let e = Config::load(Path::new("/nonexistent/precisiond.toml")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read /nonexistent/precisiond.toml: "), "{e}");
        assert_eq!(e.fault(), Fault::Input);
        assert!(e.hint().unwrap().contains(DEFAULT_PATH));
    }
}
