//! The two names the store puts into paths: a model's (from its bundle folder) and a version's (a number).
//!
//! Both are checked once, here, so that nothing built from them can leave its folder or collide with the store's
//! own entries: every name the store writes for itself starts with a dot, which neither can.

use std::fmt;
use std::path::Path;

use super::StoreError;

/// Longest model name accepted; far beyond any real one, and short enough that `live/.<model>.tmp-<unique>` and
/// Triton's `.precisiond-staging-<N>-<unique>` stay below NAME_MAX (255 bytes) on every file system.
pub const MODEL_NAME_MAX: usize = 128;

/// A model's name: its bundle folder's name, usable as a folder name under `engines/`, `live/` and a Triton
/// repository. ASCII letters, digits, `_`, `-` and `.`, starting with a letter or digit, without `..`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelName(String);

impl ModelName {
    pub fn new(name: &str) -> Result<ModelName, StoreError> {
        let refuse = |reason: &'static str| Err(StoreError::ModelName { name: name.to_owned(), reason });
        let Some(first) = name.chars().next() else {
            return refuse("it is empty");
        };
        if name.len() > MODEL_NAME_MAX {
            return refuse("it is longer than 128 characters");
        }
        if name.contains('/') || name.contains('\\') {
            return refuse("it contains a path separator");
        }
        if name.contains("..") {
            return refuse("it contains `..`");
        }
        // A leading dot would hide the folder and could collide with the store's own `.staging-*`, `.trash-*` and
        // `.<model>.tmp-*` names; a leading dash reads as an option to every tool an operator might point at it.
        if !first.is_ascii_alphanumeric() {
            return refuse("it must start with an ASCII letter or digit");
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return refuse("only ASCII letters, digits, `_`, `-` and `.` are allowed");
        }
        Ok(ModelName(name.to_owned()))
    }

    /// The name of a bundle folder (its last path component).
    pub fn from_bundle_dir(dir: &Path) -> Result<ModelName, StoreError> {
        match dir.file_name().and_then(|n| n.to_str()) {
            Some(name) => ModelName::new(name),
            None => Err(StoreError::ModelName {
                name: dir.display().to_string(),
                reason: "the folder has no name, or one that is not UTF-8",
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<Path> for ModelName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

/// A version of a model: `engines/<model>/<N>`, N ≥ 1. Numbers only grow and are never given twice, pruned or
/// not. They start at 1 because Triton ignores version folders whose names start with `0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

impl Version {
    pub const FIRST: Version = Version(1);

    pub fn new(n: u64) -> Option<Version> {
        (n > 0).then_some(Version(n))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn next(self) -> Version {
        Version(self.0 + 1)
    }

    /// A version folder's name: the canonical decimal form only, so that `007` or `+7` is never taken for 7 (two
    /// names for one number would let a number be given twice).
    pub fn from_dir_name(name: &str) -> Option<Version> {
        if name.is_empty() || name.starts_with('0') || !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        name.parse().ok().and_then(Version::new)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
