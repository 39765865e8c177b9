//! Intake: when a folder of the inbox is a complete bundle, and the daemon's own copy of it.
//!
//! A bundle is ready only when `bundle.toml` matches every file (a half-copied bundle simply is not ready yet, and
//! says nothing). What no amount of waiting fixes — a path that escapes the bundle, a link, a file over the size
//! limit, a missing or wrong signature when signatures are required — is refused, once per manifest. An accepted
//! bundle is copied into `state_dir/bundles/<model>/<manifest sha>/` and checked again there, so that what the job
//! builds from cannot change under it, and a later firmware rebuild still has its data.

use std::path::{Path, PathBuf};

use crate::bundle;
use crate::daemon::config::Config;
use crate::store::ModelName;

pub enum Intake {
    /// Not a bundle yet (no manifest, files missing or still being written).
    NotReady(String),
    /// A bundle the daemon will not build; the reason is reported.
    Refused { model: Option<ModelName>, sha256: Option<String>, reason: String },
    Ready { model: ModelName, sha256: String },
}

/// What `dir` (a folder of the inbox) is right now.
pub fn examine(dir: &Path, config: &Config) -> Intake {
    let model = match ModelName::from_bundle_dir(dir) {
        Ok(model) => model,
        Err(e) => return Intake::Refused { model: None, sha256: None, reason: e.to_string() },
    };
    let opened = match bundle::open(dir) {
        Ok(opened) => opened,
        Err(e) if e.is_incomplete() => return Intake::NotReady(e.to_string()),
        Err(e) => return Intake::Refused { model: Some(model), sha256: manifest_sha(dir), reason: error_chain(&e) },
    };
    let sha256 = opened.manifest_sha256().to_owned();
    let refuse = |reason: String| Intake::Refused { model: Some(model.clone()), sha256: Some(sha256.clone()), reason };
    let limit = config.security.max_file_mib * 1024 * 1024;
    if let Some(big) = opened.files().iter().find(|f| f.size > limit) {
        return refuse(format!("{}: {} bytes is over the {} MiB limit ([security] max_file_mib)", big.path, big.size, config.security.max_file_mib));
    }
    if config.security.require_signature
        && let Err(e) = bundle::sign::verify_signature(dir, &config.security.trusted)
    {
        return refuse(format!("signature required: {}", error_chain(&e)));
    }
    Intake::Ready { model, sha256 }
}

/// Copies the bundle at `dir` into `state_dir/bundles/<model>/<sha>/` (unless there already) and opens the copy;
/// the copy must have the same manifest, or the bundle changed while it was copied.
pub fn snapshot(dir: &Path, state_dir: &Path, model: &ModelName, sha256: &str) -> Result<PathBuf, String> {
    let parent = state_dir.join("bundles").join(model.as_str());
    let target = parent.join(&sha256[..16.min(sha256.len())]);
    if target.join("bundle.toml").exists() && bundle::open(&target).is_ok_and(|b| b.manifest_sha256() == sha256) {
        return Ok(target);
    }
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let staging = parent.join(format!(".copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(dir, &staging).map_err(|e| format!("copying {} into {}: {e}", dir.display(), staging.display()))?;
    match bundle::open(&staging) {
        Ok(b) if b.manifest_sha256() == sha256 => {}
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!("{}: changed while it was copied", dir.display()));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!("{}: the copy does not verify: {}", dir.display(), error_chain(&e)));
        }
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(target)
}

/// Removes copies of `model`'s bundles other than those in `keep`.
pub fn prune_snapshots(state_dir: &Path, model: &str, keep: &[PathBuf]) {
    let parent = state_dir.join("bundles").join(model);
    let Ok(entries) = std::fs::read_dir(&parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !keep.iter().any(|k| k == &path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
        // Links are refused by bundle::open before anything is copied.
    }
    Ok(())
}

fn manifest_sha(dir: &Path) -> Option<String> {
    std::fs::read(dir.join("bundle.toml")).ok().map(|b| crate::build::engines::sha256_hex(&b))
}

/// An error and its causes on one line, for logs and events.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let t = cause.to_string();
        if !text.ends_with(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = cause.source();
    }
    text
}
