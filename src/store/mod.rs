//! The engine store: the only code that writes `engines/` and `live/` under `state_dir` (PRODUCT.md "Daemon
//! configuration and on-disk layout").
//!
//! ```text
//! state_dir/
//!   store.lock                  flock(2)ed by the one process that owns the store; holds its pid
//!   engines/<model>/<N>/        a version: immutable once committed; any files and folders (no links)
//!   engines/<model>/next        the next version number to give (written atomically)
//!   engines/<model>/history     the versions published, oldest first, the last one live (written atomically)
//!   engines/<model>/.staging-*  a version being written (removed when dropped, or at the next open)
//!   engines/<model>/.trash-*    a version being pruned (removed at once, or at the next open)
//!   live/<model>                symbolic link `../engines/<model>/<N>`: what the application reads
//!   live/.<model>.tmp-*         a link about to replace live/<model> (removed at the next open)
//! ```
//!
//! The life of a version: [`Store::stage`] gives a fresh folder to write into; [`Store::commit`] fsyncs everything
//! in it and renames it to the next number (complete, not live); [`Store::switch`] points `live/<model>` at it by
//! renaming a new link over the old one; [`Store::rollback`] points it back at the version live before;
//! [`Store::prune`] removes old versions but never the live one or the rollback target. [`triton`] mirrors
//! versions into a Triton model repository.
//!
//! Every change is a rename within one folder followed by an fsync of that folder, so a reader (or a reboot)
//! sees the state before or the state after, never a part: `live/<model>` is never missing once it has existed
//! and always names a folder whose files are all complete. Whatever was interrupted leaves only dot-names, which
//! [`Store::open`] removes and reports ([`Recovery`]). Names the store writes for itself start with a dot;
//! [`ModelName`]s and [`Version`]s cannot, so the two never collide.
//!
//! Rollback needs to know what was live before, across restarts: `history` records it. A switch writes the
//! history before moving the link and a rollback moves the link before writing the history; with the rule that
//! the history is read as ending at the live version (cut after its last occurrence, or with it appended, see
//! [`history::reconcile`]), a crash between the two steps of either reads as if the operation had not happened
//! (switch) or had completed (rollback). The link is the truth; the history only remembers.
//!
//! One process owns a `state_dir` at a time (the lock), because recovery removes whatever another process would
//! be writing. Within the process, a [`Store`] is shared by reference between threads: changes are serialized;
//! staging folders are written concurrently.

mod fsx;
pub mod history;
mod names;
pub mod triton;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Diagnose, Fault};
use fsx::{ensure_dir, io_err, remove_entry, rename, sync_dir, sync_tree, unique};
pub use names::{MODEL_NAME_MAX, ModelName, Version};

pub const ENGINES: &str = "engines";
pub const LIVE: &str = "live";
pub const LOCK: &str = "store.lock";
/// In a model's folder: the next version number to give.
pub const NEXT: &str = "next";
/// In a model's folder: the publish history.
pub const HISTORY: &str = "history";
/// In a version folder: the verification result (PRODUCT.md: verdict, metrics, latency_ms, backend, ...).
pub const VERIFY_JSON: &str = "verify.json";
/// In a version folder: the device the engine was built for (`device::Fingerprint`).
pub const FINGERPRINT_JSON: &str = "fingerprint.json";

const STAGING_PREFIX: &str = ".staging-";
const TRASH_PREFIX: &str = ".trash-";
/// The temporary names `model::write_atomically` gives `next` and `history` while writing them.
const TEMP_FILE_PREFIXES: [&str; 2] = [".next.tmp-", ".history.tmp-"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{name}` cannot be a model name: {reason}")]
    ModelName { name: String, reason: &'static str },
    #[error("{}: cannot {action}", path.display())]
    Io { action: String, path: PathBuf, source: io::Error },
    #[error("{}: in use by another precisiond process{}", path.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("{}: model `{model}` has no version {version}", path.display())]
    NoSuchVersion { model: ModelName, version: Version, path: PathBuf },
    #[error("model `{model}` has no live version to roll back from")]
    NothingLive { model: ModelName },
    #[error("model `{model}` has no earlier version to roll back to: {live} is the only published one still stored")]
    NoPrevious { model: ModelName, live: Version },
    #[error("{}: points at {}, which is not a version of `{model}` (expected ../engines/{model}/<number>)", path.display(), target.display())]
    BadLink { path: PathBuf, target: PathBuf, model: ModelName },
    #[error("{}: {problem}", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error("{}: {kind}, expected {expected}", path.display())]
    NotRegular { path: PathBuf, kind: &'static str, expected: &'static str },
    #[error("{}: {kind}, where precisiond keeps a folder", path.display())]
    NotAFolder { path: PathBuf, kind: &'static str },
    #[error("{}: no files; a version needs at least one", path.display())]
    EmptyStaging { path: PathBuf },
    #[error("{}: not a staging folder of the store at {}", path.display(), store.display())]
    ForeignStaging { path: PathBuf, store: PathBuf },
    #[error("{}: not valid JSON", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: the Triton model repository does not exist (or is not a folder)", path.display())]
    NoRepository { path: PathBuf },
    #[error("{}: missing; the {platform} platform publishes it", path.display())]
    MissingModelFile { path: PathBuf, platform: &'static str },
    #[error("{}: already in the Triton repository with other contents than version {version} of `{model}`", path.display())]
    TritonConflict { path: PathBuf, model: ModelName, version: Version },
}

impl Diagnose for StoreError {
    fn fault(&self) -> Fault {
        match self {
            StoreError::ModelName { .. }
            | StoreError::NoSuchVersion { .. }
            | StoreError::NothingLive { .. }
            | StoreError::NoPrevious { .. } => Fault::Input,
            _ => Fault::Environment,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StoreError::ModelName { .. } => Some(format!(
                "a model is named after its bundle folder: rename the folder to ASCII letters, digits, `_`, `-` and \
                 `.` (not first), at most {MODEL_NAME_MAX} characters"
            )),
            StoreError::Io { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Some(
                    "state_dir (and the Triton repository) must be writable by the user precisiond runs as; on a \
                     read-only root file system, put state_dir on the data partition"
                        .into(),
                ),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    Some("free space on that partition; a lower keep_versions keeps fewer old engines per model".into())
                }
                _ => None,
            },
            StoreError::Locked { .. } => Some(
                "only one precisiond may own a state_dir: stop the other one, or give this one another state_dir"
                    .into(),
            ),
            StoreError::NoPrevious { .. } => {
                Some("older versions may have been pruned; keep_versions sets how many are kept".into())
            }
            StoreError::BadLink { path, model, .. } => Some(format!(
                "only precisiond changes live/: remove {} or point it at ../engines/{model}/<number>",
                path.display()
            )),
            StoreError::Corrupt { path, .. } if path.ends_with(NEXT) || path.ends_with(HISTORY) => Some(format!(
                "only precisiond writes this file; remove it if it was edited by hand ({NEXT} is then derived from \
                 the highest version stored, {HISTORY} restarts from the live version)"
            )),
            StoreError::NotAFolder { .. } => Some("move it away: precisiond creates the folder".into()),
            StoreError::NotRegular { .. } | StoreError::EmptyStaging { .. } | StoreError::ForeignStaging { .. } => {
                Some("this is a bug in precisiond: please report it with the path".into())
            }
            StoreError::Json { .. } => Some(
                "files of a version are written once by precisiond and never changed: this one was damaged; \
                 rebuild the model"
                    .into(),
            ),
            StoreError::NoRepository { .. } => {
                Some("create the folder Triton serves (--model-repository), or fix [publish] triton_repository".into())
            }
            StoreError::TritonConflict { .. } => Some(
                "a version folder precisiond did not write is in the repository under this number: move it away".into(),
            ),
            _ => None,
        }
    }
}

/// One thing [`Store::open`] (or [`triton::TritonRepository::open`]) found after an interruption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// A leftover of an interrupted operation, removed.
    Removed { path: PathBuf, what: Leftover },
    /// Something the store did not write, or cannot use; left as it is, named for the logs.
    Ignored { path: PathBuf, why: String },
    /// The publish history did not end at the live version (a switch interrupted between its steps); rewritten.
    HistoryRepaired { model: ModelName, live: Option<Version> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftover {
    Staging,
    Trash,
    TempLink,
    TempFile,
}

impl fmt::Display for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovered::Removed { path, what } => {
                let what = match what {
                    Leftover::Staging => "a version that was being written",
                    Leftover::Trash => "a version that was being removed",
                    Leftover::TempLink => "a link that was being switched",
                    Leftover::TempFile => "a file that was being written",
                };
                write!(f, "removed {}: {what} when precisiond stopped", path.display())
            }
            Recovered::Ignored { path, why } => write!(f, "left {} as it is: {why}", path.display()),
            Recovered::HistoryRepaired { model, live: Some(v) } => {
                write!(f, "rewrote the publish history of `{model}` to end at the live version {v}")
            }
            Recovered::HistoryRepaired { model, live: None } => {
                write!(f, "cleared the publish history of `{model}`: nothing is live")
            }
        }
    }
}

/// What opening found and did, one line each for the logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub items: Vec<Recovered>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn removed(&self) -> impl Iterator<Item = &Path> {
        self.items.iter().filter_map(|r| match r {
            Recovered::Removed { path, .. } => Some(path.as_path()),
            _ => None,
        })
    }
}

/// What a switch or rollback did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// Live now.
    pub live: Version,
    /// Live before the call (equal to `live` when nothing changed).
    pub previous: Option<Version>,
}

/// A folder to write a new version into: `engines/<model>/.staging-<unique>`. Removed when dropped unless
/// committed.
#[derive(Debug)]
pub struct Staging {
    model: ModelName,
    path: PathBuf,
    armed: bool,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn model(&self) -> &ModelName {
        &self.model
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: whatever stays is removed by the next open.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The engine store under one `state_dir`. Share it by reference between threads.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    engines: PathBuf,
    live: PathBuf,
    /// Held for the store's lifetime; the kernel drops the flock when the process dies, however it dies.
    _lock: fs::File,
    /// Serializes changes to `next`, `history`, `live/` and version names within this process.
    changing: Mutex<()>,
}

impl Store {
    /// Opens (creating the folders) the store under `state_dir`, takes its lock, and cleans up after whatever
    /// was interrupted: staging and trash folders, temporary links and files are removed, a history that does not
    /// end at the live version is rewritten. Versions and live links are never touched.
    pub fn open(state_dir: &Path) -> Result<(Store, Recovery), StoreError> {
        fs::create_dir_all(state_dir).map_err(io_err("create folder", state_dir))?;
        let engines = state_dir.join(ENGINES);
        let live = state_dir.join(LIVE);
        ensure_dir(&engines)?;
        ensure_dir(&live)?;
        let lock = lock(state_dir)?;
        let store = Store { root: state_dir.to_owned(), engines, live, _lock: lock, changing: Mutex::new(()) };
        let recovery = store.recover()?;
        Ok((store, recovery))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `engines/<model>/<N>`, whether or not it exists.
    pub fn version_path(&self, model: &ModelName, version: Version) -> PathBuf {
        self.model_dir(model).join(version.to_string())
    }

    /// `live/<model>`: the path an application reads through.
    pub fn live_path(&self, model: &ModelName) -> PathBuf {
        self.live.join(model)
    }

    /// A fresh staging folder for a new version of `model`.
    pub fn stage(&self, model: &ModelName) -> Result<Staging, StoreError> {
        let dir = self.model_dir(model);
        // Durable now, or a commit (which syncs only the model's folder) could vanish with its parent's entry.
        ensure_dir(&dir)?;
        loop {
            let path = dir.join(format!("{STAGING_PREFIX}{}", unique()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Staging { model: model.clone(), path, armed: true }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create folder", &path)(e)),
            }
        }
    }

    /// Makes a staging folder the next version of its model: every file and folder in it fsynced, renamed to the
    /// next number, the model's folder fsynced. The version is complete but not live.
    pub fn commit(&self, mut staging: Staging) -> Result<Version, StoreError> {
        let dir = self.model_dir(&staging.model);
        if staging.path.parent() != Some(dir.as_path()) {
            return Err(StoreError::ForeignStaging { path: staging.path.clone(), store: self.root.clone() });
        }
        // Outside the lock: fsyncing an engine takes long, and other models' changes need not wait for it.
        if sync_tree(&staging.path)? == 0 {
            return Err(StoreError::EmptyStaging { path: staging.path.clone() });
        }
        let _changing = self.changing();
        let version = self.next_number(&staging.model)?;
        // The counter first: a crash before the rename wastes a number, one after it cannot give it again.
        let next = dir.join(NEXT);
        crate::model::write_atomically(&next, format!("{}\n", version.next()).as_bytes())
            .map_err(io_err("write", &next))?;
        let path = self.version_path(&staging.model, version);
        rename(&staging.path, &path)?;
        staging.armed = false;
        sync_dir(&dir)?;
        Ok(version)
    }

    /// Points `live/<model>` at `version`: a new link renamed over the old one, `live/` fsynced.
    pub fn switch(&self, model: &ModelName, version: Version) -> Result<Switch, StoreError> {
        let _changing = self.changing();
        self.require_version(model, version)?;
        let live = self.live(model)?;
        if live == Some(version) {
            return Ok(Switch { live: version, previous: live });
        }
        let history = history::reconcile(&self.read_history(model)?, live);
        let mut published = history.clone();
        published.push(version);
        // History first (see the module doc): a crash before the link moves leaves a history that reads as before.
        self.write_history(model, &published)?;
        if let Err(e) = self.point_live(model, version) {
            // Not needed for correctness (reads reconcile), but keeps the file honest.
            let _ = self.write_history(model, &history);
            return Err(e);
        }
        Ok(Switch { live: version, previous: live })
    }

    /// Points `live/<model>` back at the version live before the current one (the newest earlier entry of the
    /// history still stored), and forgets the current one in the history.
    pub fn rollback(&self, model: &ModelName) -> Result<Switch, StoreError> {
        let _changing = self.changing();
        let live = self.live(model)?.ok_or_else(|| StoreError::NothingLive { model: model.clone() })?;
        let history = history::reconcile(&self.read_history(model)?, Some(live));
        let (index, target) = self
            .rollback_target(model, &history)
            .ok_or_else(|| StoreError::NoPrevious { model: model.clone(), live })?;
        // Link first (see the module doc): a crash before the history is written reads as a completed rollback.
        self.point_live(model, target)?;
        // The rollback has happened; a failure here is repaired by reading (and at the next open).
        let _ = self.write_history(model, &history[..=index]);
        Ok(Switch { live: target, previous: Some(live) })
    }

    /// The version `live/<model>` points at, if the link exists.
    pub fn live(&self, model: &ModelName) -> Result<Option<Version>, StoreError> {
        let path = self.live_path(model);
        let target = match fs::read_link(&path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return Err(StoreError::Corrupt { path, problem: "not a symbolic link".into() });
            }
            Err(e) => return Err(io_err("read link", &path)(e)),
        };
        match parse_link(&target, model) {
            Some(version) => Ok(Some(version)),
            None => Err(StoreError::BadLink { path, target, model: model.clone() }),
        }
    }

    /// The version a [`Store::rollback`] would make live.
    pub fn previous(&self, model: &ModelName) -> Result<Option<Version>, StoreError> {
        Ok(self.rollback_target(model, &self.history(model)?).map(|(_, v)| v))
    }

    /// The versions published, oldest first, ending at the live one (empty when nothing is live). Entries may
    /// name versions pruned since; at most [`history::MAX_LEN`] are kept.
    pub fn history(&self, model: &ModelName) -> Result<Vec<Version>, StoreError> {
        Ok(history::reconcile(&self.read_history(model)?, self.live(model)?))
    }

    /// The model's complete versions, oldest first.
    pub fn versions(&self, model: &ModelName) -> Result<Vec<Version>, StoreError> {
        version_dirs(&self.model_dir(model))
    }

    /// The models with a folder under `engines/`, by name.
    pub fn models(&self) -> Result<Vec<ModelName>, StoreError> {
        let mut models: Vec<ModelName> = list(&self.engines)?
            .into_iter()
            .filter(|(_, meta)| meta.is_dir())
            .filter_map(|(name, _)| ModelName::new(&name).ok())
            .collect();
        models.sort();
        Ok(models)
    }

    /// Removes old versions: kept are the newest `keep_versions`, and always the live one and the rollback
    /// target. Each is renamed to a `.trash-*` name before its files go, so an interrupted removal never leaves
    /// a partial folder under a version's name. Returns the versions removed.
    pub fn prune(&self, model: &ModelName, keep_versions: usize) -> Result<Vec<Version>, StoreError> {
        let _changing = self.changing();
        let versions = self.versions(model)?;
        let live = self.live(model)?;
        let history = history::reconcile(&self.read_history(model)?, live);
        let mut keep: BTreeSet<Version> = versions.iter().rev().take(keep_versions).copied().collect();
        keep.extend(live);
        keep.extend(self.rollback_target(model, &history).map(|(_, v)| v));
        let doomed: Vec<Version> = versions.into_iter().filter(|v| !keep.contains(v)).collect();
        if doomed.is_empty() {
            return Ok(doomed);
        }
        let dir = self.model_dir(model);
        let mut trash = Vec::new();
        for &version in &doomed {
            let to = dir.join(format!("{TRASH_PREFIX}{version}-{}", unique()));
            rename(&self.version_path(model, version), &to)?;
            trash.push(to);
        }
        sync_dir(&dir)?;
        for path in trash {
            remove_entry(&path)?;
        }
        Ok(doomed)
    }

    /// The version's `verify.json`, if it has one.
    pub fn verify_json(&self, model: &ModelName, version: Version) -> Result<Option<serde_json::Value>, StoreError> {
        self.read_json(model, version, VERIFY_JSON)
    }

    /// The version's `fingerprint.json` (the device it was built for), if it has one.
    pub fn fingerprint_json(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.read_json(model, version, FINGERPRINT_JSON)
    }

    fn read_json(
        &self,
        model: &ModelName,
        version: Version,
        name: &'static str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.require_version(model, version)?;
        let path = self.version_path(model, version).join(name);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_slice(&text).map(Some).map_err(|source| StoreError::Json { path, source })
    }

    fn model_dir(&self, model: &ModelName) -> PathBuf {
        self.engines.join(model)
    }

    fn changing(&self) -> MutexGuard<'_, ()> {
        // A panic elsewhere while holding it leaves nothing half-done in memory: the disk is the state.
        self.changing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_version(&self, model: &ModelName, version: Version) -> bool {
        fs::symlink_metadata(self.version_path(model, version)).is_ok_and(|m| m.is_dir())
    }

    fn require_version(&self, model: &ModelName, version: Version) -> Result<(), StoreError> {
        if self.is_version(model, version) {
            Ok(())
        } else {
            Err(StoreError::NoSuchVersion { model: model.clone(), version, path: self.version_path(model, version) })
        }
    }

    /// The newest entry before the last (the live one) that is still stored, with its index.
    fn rollback_target(&self, model: &ModelName, history: &[Version]) -> Option<(usize, Version)> {
        let (_, earlier) = history.split_last()?;
        earlier.iter().copied().enumerate().rev().find(|&(_, v)| self.is_version(model, v))
    }

    fn next_number(&self, model: &ModelName) -> Result<Version, StoreError> {
        let path = self.model_dir(model).join(NEXT);
        let recorded = match fs::read_to_string(&path) {
            Ok(text) => Some(Version::from_dir_name(text.trim()).ok_or_else(|| StoreError::Corrupt {
                path: path.clone(),
                problem: format!("`{}` is not a version number", text.trim()),
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        // Both, for a counter lost (or removed by hand) after versions were committed.
        let derived = self.versions(model)?.last().map(|v| v.next());
        Ok(recorded.max(derived).unwrap_or(Version::FIRST))
    }

    fn read_history(&self, model: &ModelName) -> Result<Vec<Version>, StoreError> {
        let path = self.model_dir(model).join(HISTORY);
        match fs::read_to_string(&path) {
            Ok(text) => history::parse(&text).map_err(|problem| StoreError::Corrupt { path, problem }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn write_history(&self, model: &ModelName, versions: &[Version]) -> Result<(), StoreError> {
        let path = self.model_dir(model).join(HISTORY);
        crate::model::write_atomically(&path, history::render(model, versions).as_bytes())
            .map_err(io_err("write", &path))
    }

    /// Replaces `live/<model>` by a link to `version` in one rename, then makes it durable.
    fn point_live(&self, model: &ModelName, version: Version) -> Result<(), StoreError> {
        // Relative, so the state_dir can be moved or mounted elsewhere (a container, a rescue system).
        let target = Path::new("..").join(ENGINES).join(model).join(version.to_string());
        let tmp = loop {
            let tmp = self.live.join(format!(".{model}.tmp-{}", unique()));
            match std::os::unix::fs::symlink(&target, &tmp) {
                Ok(()) => break tmp,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create link", &tmp)(e)),
            }
        };
        if let Err(e) = rename(&tmp, &self.live_path(model)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&self.live)
    }

    fn recover(&self) -> Result<Recovery, StoreError> {
        let mut items = Vec::new();
        let foreign = || "not written by precisiond".to_owned();

        for (name, meta) in list(&self.live)? {
            let path = self.live.join(&name);
            if name.starts_with('.') {
                if meta.is_symlink() && name.contains(".tmp-") {
                    remove_entry(&path)?;
                    items.push(Recovered::Removed { path, what: Leftover::TempLink });
                } else {
                    items.push(Recovered::Ignored { path, why: foreign() });
                }
                continue;
            }
            let Ok(model) = ModelName::new(&name) else {
                items.push(Recovered::Ignored { path, why: foreign() });
                continue;
            };
            match self.live(&model) {
                Ok(Some(v)) if !self.is_version(&model, v) => items.push(Recovered::Ignored {
                    path,
                    why: format!("it points at version {v}, which does not exist: the application has no engine"),
                }),
                Ok(_) => {}
                Err(e) => items.push(Recovered::Ignored { path, why: e.to_string() }),
            }
        }

        for (name, meta) in list(&self.engines)? {
            let path = self.engines.join(&name);
            let model = match ModelName::new(&name) {
                Ok(model) if meta.is_dir() => model,
                _ => {
                    items.push(Recovered::Ignored { path, why: foreign() });
                    continue;
                }
            };
            let mut removed = false;
            for (entry, meta) in list(&path)? {
                let entry_path = path.join(&entry);
                let leftover = if entry.starts_with(STAGING_PREFIX) {
                    Some(Leftover::Staging)
                } else if entry.starts_with(TRASH_PREFIX) {
                    Some(Leftover::Trash)
                } else if TEMP_FILE_PREFIXES.iter().any(|p| entry.starts_with(p)) {
                    Some(Leftover::TempFile)
                } else {
                    None
                };
                if let Some(what) = leftover {
                    remove_entry(&entry_path)?;
                    removed = true;
                    items.push(Recovered::Removed { path: entry_path, what });
                } else {
                    let known = if Version::from_dir_name(&entry).is_some() {
                        meta.is_dir()
                    } else {
                        (entry == NEXT || entry == HISTORY) && meta.is_file()
                    };
                    if !known {
                        items.push(Recovered::Ignored { path: entry_path, why: foreign() });
                    }
                }
            }
            if removed {
                // Not for safety (a leftover that comes back is removed next time): so the log says it once.
                sync_dir(&path)?;
            }
            let Ok(live) = self.live(&model) else { continue }; // reported above
            match self.read_history(&model) {
                Ok(recorded) => {
                    let history = history::reconcile(&recorded, live);
                    if history != recorded {
                        self.write_history(&model, &history)?;
                        items.push(Recovered::HistoryRepaired { model, live });
                    }
                }
                Err(e) => items.push(Recovered::Ignored { path: path.join(HISTORY), why: e.to_string() }),
            }
        }
        Ok(Recovery { items })
    }
}

/// Takes the store's lock (flock on `store.lock`), writing this process's pid into it for the message another
/// process gets.
fn lock(state_dir: &Path) -> Result<fs::File, StoreError> {
    let path = state_dir.join(LOCK);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("create", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok());
            return Err(StoreError::Locked { path: state_dir.to_owned(), holder });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
    }
    // Informational only; the flock is what excludes.
    let _ = file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

/// `../engines/<model>/<N>` → N; anything else is not a link the store wrote.
fn parse_link(target: &Path, model: &ModelName) -> Option<Version> {
    let parts: Vec<Component> = target.components().collect();
    match parts.as_slice() {
        [Component::ParentDir, Component::Normal(e), Component::Normal(m), Component::Normal(n)]
            if *e == ENGINES && *m == model.as_str() =>
        {
            Version::from_dir_name(n.to_str()?)
        }
        _ => None,
    }
}

/// A folder's entries with their own metadata (links not followed); a missing folder has none. Names that are not
/// UTF-8 are skipped: the store never writes one.
/// The numbered version folders in `dir`, oldest first (temporary names and files are not versions).
fn version_dirs(dir: &Path) -> Result<Vec<Version>, StoreError> {
    let mut versions: Vec<Version> = list(dir)?
        .into_iter()
        .filter(|(_, meta)| meta.is_dir())
        .filter_map(|(name, _)| Version::from_dir_name(&name))
        .collect();
    versions.sort();
    Ok(versions)
}

fn list(dir: &Path) -> Result<Vec<(String, fs::Metadata)>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read folder", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read folder", dir))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        match fs::symlink_metadata(entry.path()) {
            Ok(meta) => out.push((name, meta)),
            // Removed since the listing (a staging folder dropped by another thread).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &entry.path())(e)),
        }
    }
    Ok(out)
}
