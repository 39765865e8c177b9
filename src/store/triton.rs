//! Publishing versions into a Triton model repository (`[publish] triton_repository`): `<repo>/<model>/<N>/model.plan`
//! (or `model.onnx`) and `<repo>/<model>/config.pbtxt`. The load request (HTTP) is the daemon's.
//!
//! The repository's version numbers are the store's. A version is copied into `<repo>/<model>/.precisiond-staging-*`
//! (Triton ignores folders whose names are not numbers), fsynced, then renamed to `<N>`: a poll or a load never sees
//! a partial plan. Triton's default version policy (`latest`, 1) serves the highest number present, so a rollback
//! here is: [`TritonRepository::publish`] the version rolled back to (a no-op when it is there), then
//! [`TritonRepository::remove`] the one rolled back from, then the load request. Removal renames to a
//! `.precisiond-trash-*` name first, so an interrupted one never leaves a partial folder under a number. Triton
//! asks that nothing in a model's folder changes while it loads or unloads that model: the daemon calls these
//! between load requests, never during one.
//!
//! Only entries whose names start with `.precisiond-` are ever removed by recovery; the rest of the repository
//! belongs to the operator.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::fsx::{ensure_dir, io_err, remove_entry, rename, sync_dir, unique};
use super::{Leftover, ModelName, Recovered, Recovery, StoreError, Version, list, version_dirs};

pub const CONFIG: &str = "config.pbtxt";
const STAGING_PREFIX: &str = ".precisiond-staging-";
const TRASH_PREFIX: &str = ".precisiond-trash-";
/// The first line of a config.pbtxt precisiond wrote (and may therefore rewrite).
const MARKER: &str = "# Written by precisiond";

/// What Triton runs a version with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// The tensorrt backend: the version's `engine.plan` as `model.plan`.
    TensorRtPlan,
    /// The cpu backend: the version's `model.onnx` as `model.onnx`, run by ONNX Runtime.
    OnnxRuntimeOnnx,
}

impl Platform {
    /// The `platform` value of config.pbtxt.
    pub fn name(self) -> &'static str {
        match self {
            Platform::TensorRtPlan => "tensorrt_plan",
            Platform::OnnxRuntimeOnnx => "onnxruntime_onnx",
        }
    }

    /// The file in a store version.
    pub fn source_file(self) -> &'static str {
        match self {
            Platform::TensorRtPlan => "engine.plan",
            Platform::OnnxRuntimeOnnx => "model.onnx",
        }
    }

    /// The file Triton looks for by default in a version folder.
    pub fn repository_file(self) -> &'static str {
        match self {
            Platform::TensorRtPlan => "model.plan",
            Platform::OnnxRuntimeOnnx => "model.onnx",
        }
    }
}

/// What [`TritonRepository::publish`] did with config.pbtxt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigAction {
    Written,
    Unchanged,
    /// One without precisiond's first line: the operator's (instance groups, batching, warmup...), kept as it is.
    KeptOperators,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `<repo>/<model>/<N>`.
    pub path: PathBuf,
    /// The version was already there with the same contents; nothing was copied.
    pub already_there: bool,
    pub config: ConfigAction,
}

/// A Triton model repository precisiond publishes into.
#[derive(Debug)]
pub struct TritonRepository {
    root: PathBuf,
}

impl TritonRepository {
    /// Opens an existing repository (Triton's `--model-repository`; it is not created, a wrong path should
    /// not be) and removes precisiond's leftovers of an interrupted publish or removal.
    pub fn open(root: &Path) -> Result<(TritonRepository, Recovery), StoreError> {
        if !fs::metadata(root).is_ok_and(|m| m.is_dir()) {
            return Err(StoreError::NoRepository { path: root.to_owned() });
        }
        let repo = TritonRepository { root: root.to_owned() };
        let mut items = Vec::new();
        for (name, meta) in list(root)? {
            if !meta.is_dir() {
                continue;
            }
            let dir = root.join(&name);
            for (entry, _) in list(&dir)? {
                let what = if entry.starts_with(STAGING_PREFIX) {
                    Leftover::Staging
                } else if entry.starts_with(TRASH_PREFIX) {
                    Leftover::Trash
                } else {
                    continue;
                };
                let path = dir.join(&entry);
                remove_entry(&path)?;
                items.push(Recovered::Removed { path, what });
            }
        }
        Ok((repo, Recovery { items }))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<repo>/<model>/<N>`.
    pub fn version_path(&self, model: &ModelName, version: Version) -> PathBuf {
        self.root.join(model).join(version.to_string())
    }

    /// Publishes store version `version` of `model`, whose folder is `version_dir`, as `<repo>/<model>/<N>`, and
    /// writes config.pbtxt unless the operator has their own. Publishing a version that is already there with the
    /// same file is a no-op; one there with another file is refused.
    pub fn publish(
        &self,
        model: &ModelName,
        version: Version,
        version_dir: &Path,
        platform: Platform,
    ) -> Result<Published, StoreError> {
        let source = version_dir.join(platform.source_file());
        if !fs::metadata(&source).is_ok_and(|m| m.is_file()) {
            return Err(StoreError::MissingModelFile { path: source, platform: platform.name() });
        }
        let model_dir = self.root.join(model);
        ensure_dir(&model_dir)?;
        let config = self.write_config(model, platform)?;
        let path = self.version_path(model, version);
        if fs::symlink_metadata(&path).is_ok() {
            let existing = path.join(platform.repository_file());
            if fs::metadata(&existing).is_ok_and(|m| m.is_file()) && super::fsx::same_contents(&source, &existing)? {
                return Ok(Published { path, already_there: true, config });
            }
            return Err(StoreError::TritonConflict { path, model: model.clone(), version });
        }

        let staging = model_dir.join(format!("{STAGING_PREFIX}{version}-{}", unique()));
        fs::create_dir(&staging).map_err(io_err("create folder", &staging))?;
        let result = (|| {
            let dest = staging.join(platform.repository_file());
            // A copy, not a hard link: the store's version must stay immutable whatever is done to the repository.
            fs::copy(&source, &dest).map_err(io_err(format!("copy {} to", source.display()), &dest))?;
            fs::File::open(&dest).and_then(|f| f.sync_all()).map_err(io_err("sync file", &dest))?;
            sync_dir(&staging)?;
            rename(&staging, &path)?;
            sync_dir(&model_dir)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result.map(|()| Published { path, already_there: false, config })
    }

    /// Removes `<repo>/<model>/<N>`; returns whether it was there.
    pub fn remove(&self, model: &ModelName, version: Version) -> Result<bool, StoreError> {
        let path = self.version_path(model, version);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(false);
        }
        let model_dir = self.root.join(model);
        let trash = model_dir.join(format!("{TRASH_PREFIX}{version}-{}", unique()));
        rename(&path, &trash)?;
        sync_dir(&model_dir)?;
        remove_entry(&trash)?;
        Ok(true)
    }

    /// The version folders of `model` in the repository, oldest first.
    pub fn versions(&self, model: &ModelName) -> Result<Vec<Version>, StoreError> {
        version_dirs(&self.root.join(model))
    }

    /// Removes every version folder of `model` not in `keep` (the store's versions after a prune); returns those
    /// removed.
    pub fn retain(&self, model: &ModelName, keep: &[Version]) -> Result<Vec<Version>, StoreError> {
        let mut removed = Vec::new();
        for version in self.versions(model)? {
            if !keep.contains(&version) && self.remove(model, version)? {
                removed.push(version);
            }
        }
        Ok(removed)
    }

    fn write_config(&self, model: &ModelName, platform: Platform) -> Result<ConfigAction, StoreError> {
        let path = self.root.join(model).join(CONFIG);
        let wanted = config_text(model, platform);
        match fs::read_to_string(&path) {
            Ok(text) if text == wanted => return Ok(ConfigAction::Unchanged),
            Ok(text) if !text.starts_with(MARKER) => return Ok(ConfigAction::KeptOperators),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &path)(e)),
        }
        crate::model::write_atomically(&path, wanted.as_bytes()).map_err(io_err("write", &path))?;
        Ok(ConfigAction::Written)
    }
}

/// The smallest config Triton accepts for the model. Inputs and outputs are left out on purpose: Triton's
/// auto-complete (on unless tritonserver runs with --disable-auto-complete-config) reads them from the plan or
/// the ONNX file, so this config cannot disagree with the engine it describes. `max_batch_size: 0` says the model
/// does no Triton-side batching: our engines are built for the exact input shapes the spec gives, batch dimension
/// included, so Triton must pass shapes through as they are instead of prepending a batch dimension of its own.
/// The version policy is left at its default (latest, 1), which rollback relies on (see the module doc).
pub fn config_text(model: &ModelName, platform: Platform) -> String {
    format!(
        "{MARKER}; remove this line to keep your own edits.\nname: \"{model}\"\nplatform: \"{}\"\nmax_batch_size: 0\n",
        platform.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str) -> ModelName {
        ModelName::new(name).unwrap()
    }

    fn version(n: u64) -> Version {
        Version::new(n).unwrap()
    }

    /// A store-like version folder holding an engine with `contents`.
    fn version_dir(root: &Path, n: u64, contents: &str) -> PathBuf {
        let dir = root.join(format!("v{n}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("engine.plan"), contents).unwrap();
        fs::write(dir.join("model.onnx"), format!("onnx {contents}")).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn publish_writes_plan_and_config_then_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let repo_root = tmp.path().join("models");
        fs::create_dir(&repo_root).unwrap();
        let (repo, recovery) = TritonRepository::open(&repo_root).unwrap();
        assert!(recovery.is_empty());
        let src = version_dir(tmp.path(), 1, "plan one");
        let det = model("det");

        let published = repo.publish(&det, version(1), &src, Platform::TensorRtPlan).unwrap();
        assert_eq!(published.path, repo_root.join("det/1"));
        assert!(!published.already_there);
        assert_eq!(published.config, ConfigAction::Written);
        assert_eq!(fs::read_to_string(repo_root.join("det/1/model.plan")).unwrap(), "plan one");
        let config = fs::read_to_string(repo_root.join("det/config.pbtxt")).unwrap();
        assert!(config.contains("name: \"det\"\n"), "{config}");
        assert!(config.contains("platform: \"tensorrt_plan\"\n"), "{config}");
        assert!(config.contains("max_batch_size: 0\n"), "{config}");
        // Only the numbered folder and the config: no staging name is left for Triton to trip over.
        assert_eq!(entries(&repo_root.join("det")), ["1", "config.pbtxt"]);

        let again = repo.publish(&det, version(1), &src, Platform::TensorRtPlan).unwrap();
        assert!(again.already_there);
        assert_eq!(again.config, ConfigAction::Unchanged);

        let other = version_dir(tmp.path(), 9, "another plan");
        let err = repo.publish(&det, version(1), &other, Platform::TensorRtPlan).unwrap_err();
        assert!(matches!(err, StoreError::TritonConflict { .. }), "{err}");
    }

    #[test]
    fn onnx_platform_publishes_model_onnx() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, _) = TritonRepository::open(tmp.path()).unwrap();
        let src = version_dir(tmp.path(), 3, "x");
        repo.publish(&model("cls"), version(3), &src, Platform::OnnxRuntimeOnnx).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("cls/3/model.onnx")).unwrap(), "onnx x");
        let config = fs::read_to_string(tmp.path().join("cls/config.pbtxt")).unwrap();
        assert!(config.contains("platform: \"onnxruntime_onnx\"\n"), "{config}");
    }

    #[test]
    fn operators_config_is_kept_ours_is_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, _) = TritonRepository::open(tmp.path()).unwrap();
        let det = model("det");
        fs::create_dir(tmp.path().join("det")).unwrap();
        let theirs = "name: \"det\"\nplatform: \"tensorrt_plan\"\ninstance_group [{ count: 2 }]\n";
        fs::write(tmp.path().join("det/config.pbtxt"), theirs).unwrap();
        let src = version_dir(tmp.path(), 1, "p");
        let published = repo.publish(&det, version(1), &src, Platform::TensorRtPlan).unwrap();
        assert_eq!(published.config, ConfigAction::KeptOperators);
        assert_eq!(fs::read_to_string(tmp.path().join("det/config.pbtxt")).unwrap(), theirs);

        // Ours with another platform (the backend changed): rewritten.
        fs::write(tmp.path().join("det/config.pbtxt"), config_text(&det, Platform::OnnxRuntimeOnnx)).unwrap();
        let published = repo.publish(&det, version(2), &version_dir(tmp.path(), 2, "q"), Platform::TensorRtPlan);
        assert_eq!(published.unwrap().config, ConfigAction::Written);
        assert_eq!(
            fs::read_to_string(tmp.path().join("det/config.pbtxt")).unwrap(),
            config_text(&det, Platform::TensorRtPlan)
        );
    }

    #[test]
    fn rollback_removes_the_newer_version_and_retain_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, _) = TritonRepository::open(tmp.path()).unwrap();
        let det = model("det");
        for n in 1..=4 {
            repo.publish(&det, version(n), &version_dir(tmp.path(), n, &format!("p{n}")), Platform::TensorRtPlan)
                .unwrap();
        }
        assert!(repo.remove(&det, version(4)).unwrap());
        assert!(!repo.remove(&det, version(4)).unwrap());
        assert_eq!(repo.versions(&det).unwrap(), [version(1), version(2), version(3)]);
        assert_eq!(repo.retain(&det, &[version(3), version(2)]).unwrap(), [version(1)]);
        assert_eq!(entries(&tmp.path().join("det")), ["2", "3", "config.pbtxt"]);
    }

    #[test]
    fn missing_engine_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, _) = TritonRepository::open(tmp.path()).unwrap();
        let empty = tmp.path().join("v1");
        fs::create_dir(&empty).unwrap();
        let err = repo.publish(&model("det"), version(1), &empty, Platform::TensorRtPlan).unwrap_err();
        assert!(err.to_string().contains("engine.plan"), "{err}");
        assert!(!tmp.path().join("det/1").exists());
    }

    #[test]
    fn open_removes_only_precisiond_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let det = tmp.path().join("det");
        for dir in ["1", ".precisiond-staging-2-x", ".precisiond-trash-1-y", ".operator-notes"] {
            fs::create_dir_all(det.join(dir)).unwrap();
        }
        let (_, recovery) = TritonRepository::open(tmp.path()).unwrap();
        assert_eq!(recovery.items.len(), 2, "{recovery:?}");
        assert_eq!(entries(&det), [".operator-notes", "1"]);
    }

    #[test]
    fn missing_repository_is_an_environment_error() {
        use crate::error::{Diagnose, Fault};
        let tmp = tempfile::tempdir().unwrap();
        let err = TritonRepository::open(&tmp.path().join("nope")).unwrap_err();
        assert_eq!(err.fault(), Fault::Environment);
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
