//! The engine store: built engines kept by what they were built from, so that an identical job (same model, plan,
//! scales, builder options, device) reuses its engine instead of spending minutes in the builder again.
//!
//! An entry is a folder `<root>/<key>/` holding the engine file and `key.txt`, the full text the key digests (a
//! person can read why two entries differ). Entries appear whole: they are assembled under a temporary name and
//! renamed in. A TensorRT plan is reused only after its header (tensorrt.md §4.4: magic `ftrt`, the TensorRT
//! version in bytes 24..28) says it was serialized by the TensorRT the device has now; anything else is removed
//! and rebuilt.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::trt::parse::TrtVersion;
use crate::trt::plan_header::read_plan_header;

/// What an engine was built from, as text; its digest names the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineKey {
    text: String,
}

/// The parts of a key, each one a line of `key.txt`.
pub struct KeyParts<'a> {
    /// `cpu`, or `tensorrt <version>`.
    pub backend: String,
    pub model_sha256: &'a str,
    pub plan_toml: &'a str,
    pub scales_json: &'a str,
    /// Builder options that change the engine (mode, workspace, optimization level, DLA core, shapes).
    pub options: Vec<(String, String)>,
    /// The device fingerprint's key (`Fingerprint::key`), or `any` for engines that do not depend on it.
    pub device: String,
}

impl EngineKey {
    pub fn new(parts: &KeyParts) -> EngineKey {
        let mut text = format!("precisiond engine key 1\nprecisiond\t{}\n", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(text, "backend\t{}", parts.backend);
        let _ = writeln!(text, "model\t{}", parts.model_sha256);
        let _ = writeln!(text, "plan\t{}", sha256_hex(parts.plan_toml.as_bytes()));
        let _ = writeln!(text, "scales\t{}", sha256_hex(parts.scales_json.as_bytes()));
        for (name, value) in &parts.options {
            let _ = writeln!(text, "option\t{name}\t{value}");
        }
        let _ = writeln!(text, "device\t{}", parts.device);
        EngineKey { text }
    }

    /// The entry's folder name: the first 20 bytes of the text's sha256, in hex.
    pub fn digest(&self) -> String {
        sha256_hex(self.text.as_bytes())[..40].to_owned()
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Why a stored engine was not reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    Absent,
    /// The entry is there but unusable (its key text differs, its file is missing or its header is not the
    /// device's TensorRT): removed, to be rebuilt.
    Stale(String),
}

pub struct EngineStore {
    root: PathBuf,
}

impl EngineStore {
    pub fn new(root: impl Into<PathBuf>) -> EngineStore {
        EngineStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stored engine file `file_name` for `key`, if it can be reused by `tensorrt` (None for the cpu backend,
    /// whose engines are ONNX files).
    pub fn lookup(&self, key: &EngineKey, file_name: &str, tensorrt: Option<&TrtVersion>) -> Result<PathBuf, Miss> {
        self.lookup_with(key, file_name, &[], tensorrt)
    }

    /// As [`EngineStore::lookup`], but only an entry that also holds every file of `extras` (a profile) serves.
    pub fn lookup_with(
        &self,
        key: &EngineKey,
        file_name: &str,
        extras: &[&str],
        tensorrt: Option<&TrtVersion>,
    ) -> Result<PathBuf, Miss> {
        let dir = self.root.join(key.digest());
        if !dir.exists() || extras.iter().any(|e| !dir.join(e).is_file()) {
            return Err(Miss::Absent);
        }
        let why = match fs::read_to_string(dir.join("key.txt")) {
            Ok(text) if text == key.text() => match (dir.join(file_name), tensorrt) {
                (file, _) if !file.is_file() => Some(format!("{} is missing", file.display())),
                (file, Some(version)) => plan_mismatch(&file, version),
                (_, None) => None,
            },
            Ok(_) => Some("its key.txt differs from this job's".into()),
            Err(e) => Some(format!("its key.txt cannot be read: {e}")),
        };
        match why {
            None => Ok(dir.join(file_name)),
            Some(why) => {
                let _ = remove_dir(&dir);
                Err(Miss::Stale(why))
            }
        }
    }

    /// Keeps a copy of `engine` and of `extras` (its build log, its profile: name in the entry, file) for `key`;
    /// returns the stored engine's path. A failure to store is not a failure of the build: the caller may log it
    /// and go on.
    pub fn insert(&self, key: &EngineKey, engine: &Path, file_name: &str, extras: &[(&str, &Path)]) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.root)?;
        let dir = self.root.join(key.digest());
        let staging = self.root.join(format!(".tmp-{}-{}", key.digest(), std::process::id()));
        let _ = remove_dir(&staging);
        fs::create_dir(&staging)?;
        let result = (|| {
            copy_synced(engine, &staging.join(file_name))?;
            for (name, file) in extras {
                copy_synced(file, &staging.join(name))?;
            }
            crate::model::write_atomically(&staging.join("key.txt"), key.text().as_bytes())?;
            let _ = remove_dir(&dir);
            fs::rename(&staging, &dir)?;
            sync_dir(&self.root)
        })();
        if result.is_err() {
            let _ = remove_dir(&staging);
        }
        result.map(|()| dir.join(file_name))
    }
}

/// Why the plan file at `path` cannot be loaded by `version`, or None when its header matches.
fn plan_mismatch(path: &Path, version: &TrtVersion) -> Option<String> {
    let bytes = match read_prefix(path, 28) {
        Ok(bytes) => bytes,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    match read_plan_header(&bytes) {
        Ok(header) => {
            let (major, minor, patch) = (header.major as u32, header.minor as u32, header.patch as u32);
            if (major, minor, patch) == (version.major, version.minor, version.patch) {
                None
            } else {
                Some(format!("it was serialized by TensorRT {major}.{minor}.{patch}; the device has {version}"))
            }
        }
        Err(e) => Some(format!("{}: not a TensorRT plan: {e}", path.display())),
    }
}

fn read_prefix(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(n);
    fs::File::open(path)?.take(n as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub(crate) fn copy_synced(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    fs::File::open(to)?.sync_all()
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(plan: &str, device: &str) -> EngineKey {
        EngineKey::new(&KeyParts {
            backend: "tensorrt 10.3.0".into(),
            model_sha256: "ab",
            plan_toml: plan,
            scales_json: "{}",
            options: vec![("workspace_mib".into(), "1024".into())],
            device: device.into(),
        })
    }

    fn plan_bytes(major: u8, minor: u8, patch: u8) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"ftrt");
        bytes[24..28].copy_from_slice(&[major, minor, patch, 0]);
        bytes
    }

    #[test]
    fn keys_differ_by_every_part() {
        assert_eq!(key("a", "d").digest(), key("a", "d").digest());
        assert_ne!(key("a", "d").digest(), key("b", "d").digest());
        assert_ne!(key("a", "d").digest(), key("a", "e").digest());
    }

    #[test]
    fn reuse_only_with_the_same_key_and_tensorrt() {
        let dir = tempfile::tempdir().unwrap();
        let store = EngineStore::new(dir.path().join("engines"));
        let engine = dir.path().join("e.plan");
        fs::write(&engine, plan_bytes(10, 3, 0)).unwrap();
        let k = key("a", "d");
        let v10_3 = TrtVersion { major: 10, minor: 3, patch: 0, build: None };
        let v10_7 = TrtVersion { major: 10, minor: 7, patch: 0, build: None };
        assert_eq!(store.lookup(&k, "engine.plan", Some(&v10_3)), Err(Miss::Absent));
        let stored = store.insert(&k, &engine, "engine.plan", &[]).unwrap();
        assert_eq!(store.lookup(&k, "engine.plan", Some(&v10_3)), Ok(stored));
        // Another TensorRT: the entry is stale, removed, and then absent.
        assert!(matches!(store.lookup(&k, "engine.plan", Some(&v10_7)), Err(Miss::Stale(why)) if why.contains("10.3.0")));
        assert_eq!(store.lookup(&k, "engine.plan", Some(&v10_3)), Err(Miss::Absent));
    }

    #[test]
    fn a_file_that_is_not_a_plan_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = EngineStore::new(dir.path());
        let engine = dir.path().join("junk");
        fs::write(&engine, b"not an engine").unwrap();
        let k = key("a", "d");
        store.insert(&k, &engine, "engine.plan", &[]).unwrap();
        let v = TrtVersion { major: 10, minor: 3, patch: 0, build: None };
        assert!(matches!(store.lookup(&k, "engine.plan", Some(&v)), Err(Miss::Stale(_))));
        // The cpu backend's ONNX files have no header to check.
        store.insert(&k, &engine, "model.onnx", &[]).unwrap();
        assert!(store.lookup(&k, "model.onnx", None).is_ok());
    }
}
