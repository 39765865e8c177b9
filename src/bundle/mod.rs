//! Bundles (PRODUCT.md "Bundle"): the folder that arrives on a device — `model.onnx`, `precision.toml`, `calib/`,
//! `eval/`, any file the spec names (`plan`, `scales`), the manifest `bundle.toml` and optionally its signature
//! `bundle.toml.sig`.
//!
//! [`seal`] runs where the bundle is made: it checks everything that can be checked without running the model
//! (the model loads, the spec parses and fits the model's inputs, samples have known kinds and fitting `.npy`
//! shapes, calib/ and eval/ are disjoint) and only then writes the manifest, so that a mistake shows up at the
//! workstation and not on a device. [`open`] runs where it is used: it trusts nothing until every listed file is
//! there with its size and sha256 and nothing else is, then parses the spec and lists the samples. A bundle that is
//! still being copied fails [`open`] the same way a damaged one does; [`BundleError::is_incomplete`] tells the
//! daemon to wait rather than report.
//!
//! The manifest format is documented in [`manifest`]. Hidden entries (`.*`) are never part of a bundle; symbolic
//! links and other non-regular files are refused, by name, so that a bundle cannot point outside itself.

pub mod manifest;
pub mod samples;
pub mod sign;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Diagnose, Fault};
use crate::exec::{InputDecl, declared_inputs};
use crate::model::{Model, ModelError, write_atomically};
use crate::spec::{Spec, SpecError};
pub use manifest::{Entry, MANIFEST, SIGNATURE};
pub use samples::{SampleError, Samples};

pub const MODEL: &str = "model.onnx";
pub const SPEC: &str = "precision.toml";
pub const CALIB: &str = "calib";
pub const EVAL: &str = "eval";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: no such bundle folder", dir.display())]
    NoDir { dir: PathBuf },
    #[error("{}: not a folder; a bundle is a folder", dir.display())]
    NotADir { dir: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: no bundle.toml; the bundle is not sealed (or not completely copied yet)", dir.display())]
    NoManifest { dir: PathBuf },
    #[error("{}: {}", path.display(), describe_problem(problem))]
    BadManifest { path: PathBuf, problem: manifest::ManifestProblem },
    #[error("{}: no model.onnx; every bundle holds its model as model.onnx", dir.display())]
    NoModel { dir: PathBuf },
    #[error("{}: no precision.toml", dir.display())]
    NoSpec { dir: PathBuf },
    #[error("{}: a symbolic link; a bundle holds only regular files and folders", path.display())]
    Symlink { path: PathBuf },
    #[error("{}: a {kind}; a bundle holds only regular files and folders", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: the name is not valid UTF-8, which a manifest cannot list", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("{}: listed in bundle.toml but missing", path.display())]
    Missing { path: PathBuf },
    #[error("{}: {found} bytes, but bundle.toml lists {listed}", path.display())]
    SizeDiffers { path: PathBuf, listed: u64, found: u64 },
    #[error("{}: sha256 {found} differs from the {listed} bundle.toml lists", path.display())]
    ChecksumDiffers { path: PathBuf, listed: String, found: String },
    #[error("{}: not listed in bundle.toml (added after the bundle was sealed)", path.display())]
    Unlisted { path: PathBuf },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("wrote a starter {} from the model's inputs; it needs editing before the bundle can be sealed", path.display())]
    StarterNeedsEdits { path: PathBuf, source: SpecError },
    #[error("{}: {key} names {named}, {problem}", spec.display())]
    SpecReference { spec: PathBuf, key: &'static str, named: String, problem: &'static str },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("{}: no calibration samples (.npy, .npz, .png, .jpg, .jpeg files under calib/)", dir.display())]
    NoCalibSamples { dir: PathBuf },
    #[error("{}: no evaluation samples (.npy, .npz, .png, .jpg, .jpeg files under eval/)", dir.display())]
    NoEvalSamples { dir: PathBuf },
    #[error("{} and {} have the same content; calib/ and eval/ must be disjoint", calib.display(), eval.display())]
    Overlap { calib: PathBuf, eval: PathBuf },
}

fn describe_problem(problem: &manifest::ManifestProblem) -> String {
    use manifest::ManifestProblem as P;
    match problem {
        P::Syntax { line: Some(line), message } => format!("line {line}: {message}"),
        P::Syntax { line: None, message } => message.clone(),
        P::Format { found } => {
            format!("manifest format {found}; this precisiond reads format {}", manifest::FORMAT)
        }
        P::Path { path, problem } => format!("listed path \"{path}\" {problem}"),
        P::Checksum { path } => format!("the sha256 of \"{path}\" is not 64 lower-case hex digits"),
        P::Duplicate { path } => format!("\"{path}\" is listed twice"),
    }
}

impl BundleError {
    /// True for what a bundle still being copied looks like (no manifest yet, files missing, short or not yet
    /// final): the daemon waits for these and reports the rest.
    pub fn is_incomplete(&self) -> bool {
        matches!(
            self,
            BundleError::NoManifest { .. }
                | BundleError::Missing { .. }
                | BundleError::SizeDiffers { .. }
                | BundleError::ChecksumDiffers { .. }
        )
    }
}

impl Diagnose for BundleError {
    fn fault(&self) -> Fault {
        match self {
            BundleError::Io { .. } | BundleError::Write { .. } => Fault::Environment,
            BundleError::Spec(e) | BundleError::StarterNeedsEdits { source: e, .. } => e.fault(),
            BundleError::Model(e) => e.fault(),
            BundleError::Sample(e) => e.fault(),
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BundleError::Spec(e) => e.hint(),
            BundleError::Model(e) => e.hint(),
            BundleError::Sample(e) => e.hint(),
            BundleError::StarterNeedsEdits { source, .. } => Some(
                source.hint().map_or(String::new(), |h| format!("{h}; ")) + "then run `precisiond bundle seal` again",
            ),
            BundleError::NoManifest { .. } => Some("seal it: `precisiond bundle seal DIR` writes bundle.toml".into()),
            BundleError::Missing { .. } | BundleError::SizeDiffers { .. } | BundleError::ChecksumDiffers { .. } => {
                Some(
                    "a bundle still being copied is not ready yet; if the files were changed on purpose, seal it \
                     again with `precisiond bundle seal DIR`"
                        .into(),
                )
            }
            BundleError::Unlisted { .. } => {
                Some("seal the bundle again (`precisiond bundle seal DIR`) to include the file, or remove it".into())
            }
            BundleError::BadManifest { .. } => {
                Some("bundle.toml is written by `precisiond bundle seal DIR`; seal again instead of editing it".into())
            }
            BundleError::Symlink { .. } | BundleError::NotRegular { .. } => {
                Some("copy the file's content into the bundle instead of linking it".into())
            }
            BundleError::SpecReference { .. } => {
                Some("put the file into the bundle folder and name it by its path relative to the folder".into())
            }
            BundleError::NoCalibSamples { .. } => Some(
                "put calibration inputs under calib/ (or set calibration.scales to scales computed elsewhere)".into(),
            ),
            BundleError::Overlap { .. } => {
                Some("evaluation samples must not be calibration samples: remove one of the two copies".into())
            }
            _ => None,
        }
    }
}

/// A bundle whose files all match its manifest.
#[derive(Clone, Debug)]
pub struct Bundle {
    dir: PathBuf,
    spec: Spec,
    files: Vec<Entry>,
    calib: Vec<PathBuf>,
    eval: Vec<PathBuf>,
    manifest_sha256: String,
}

impl Bundle {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL)
    }

    /// Calibration sample files, sorted by path.
    pub fn calib_files(&self) -> &[PathBuf] {
        &self.calib
    }

    /// Evaluation sample files, sorted by path.
    pub fn eval_files(&self) -> &[PathBuf] {
        &self.eval
    }

    /// The manifest's entries, as verified.
    pub fn files(&self) -> &[Entry] {
        &self.files
    }

    /// sha256 of `bundle.toml`: identifies the bundle's whole content (every file's checksum is in it).
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The calibration samples, capped at `calibration.samples`; `inputs` from `Spec::input_shapes`.
    pub fn calib_samples(&self, inputs: &[(InputDecl, Vec<usize>)]) -> Samples {
        Samples::new(self.calib.clone(), inputs, &self.spec.inputs).with_limit(self.spec.calibration.samples)
    }

    /// Every evaluation sample.
    pub fn eval_samples(&self, inputs: &[(InputDecl, Vec<usize>)]) -> Samples {
        Samples::new(self.eval.clone(), inputs, &self.spec.inputs)
    }
}

/// What [`seal`] did.
#[derive(Clone, Debug)]
pub struct SealReport {
    pub manifest: PathBuf,
    pub manifest_sha256: String,
    /// Files listed, and their total size.
    pub files: usize,
    pub total_bytes: u64,
    /// Samples in calib/ and eval/ (every file checked as far as headers go; see `Samples::total`).
    pub calib_samples: usize,
    pub eval_samples: usize,
    /// How many calibration samples are used: `calibration.samples` caps them.
    pub calib_used: usize,
    /// precision.toml was missing and a starter was written (and, since sealing went on, parsed as it is).
    pub starter_written: bool,
    /// bundle.toml already said exactly this.
    pub unchanged: bool,
    /// bundle.toml.sig exists and signs the manifest this seal replaced.
    pub stale_signature: bool,
}

/// Checks the bundle in `dir` and writes its manifest (see the module documentation). Writes a starter
/// `precision.toml` first if there is none; if the starter still has placeholders to fill, sealing stops there.
pub fn seal(dir: &Path) -> Result<SealReport, BundleError> {
    check_dir(dir)?;
    let model_path = dir.join(MODEL);
    match regular_file(&model_path)? {
        true => {}
        false => return Err(BundleError::NoModel { dir: dir.to_owned() }),
    }
    let model = Model::load(&model_path)?;
    let declared = declared_inputs(&model);
    drop(model);

    let spec_path = dir.join(SPEC);
    let starter_written = !regular_file(&spec_path)?;
    if starter_written {
        let text = Spec::starter(&declared);
        write_atomically(&spec_path, text.as_bytes())
            .map_err(|source| BundleError::Write { path: spec_path.clone(), source })?;
    }
    let in_starter = |source: SpecError| -> BundleError {
        if starter_written {
            BundleError::StarterNeedsEdits { path: spec_path.clone(), source }
        } else {
            BundleError::Spec(source)
        }
    };
    let spec = Spec::load(&spec_path).map_err(in_starter)?;
    let shapes = spec.input_shapes(&declared).map_err(in_starter)?;

    let mut entries = Vec::new();
    for found in scan(dir)? {
        let (sha256, size) = manifest::sha256_file(&found.path)
            .map_err(|source| BundleError::Io { path: found.path.clone(), source })?;
        entries.push(Entry { path: found.rel, size, sha256 });
    }
    let (calib, eval) = check_contents(dir, &spec, &entries)?;
    let calib_samples = Samples::new(calib, &shapes, &spec.inputs).total()?;
    let eval_samples = Samples::new(eval, &shapes, &spec.inputs).total()?;

    let text = manifest::render(&entries);
    let manifest_path = dir.join(MANIFEST);
    let previous = match fs::read(&manifest_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(BundleError::Io { path: manifest_path, source }),
    };
    let unchanged = previous.as_deref() == Some(text.as_bytes());
    if !unchanged {
        write_atomically(&manifest_path, text.as_bytes())
            .map_err(|source| BundleError::Write { path: manifest_path.clone(), source })?;
    }
    let stale_signature = !unchanged && fs::symlink_metadata(dir.join(SIGNATURE)).is_ok();
    Ok(SealReport {
        manifest: manifest_path,
        manifest_sha256: manifest::sha256_bytes(text.as_bytes()),
        files: entries.len(),
        total_bytes: entries.iter().map(|e| e.size).sum(),
        calib_samples,
        eval_samples,
        calib_used: calib_samples.min(spec.calibration.samples),
        starter_written,
        unchanged,
        stale_signature,
    })
}

/// Opens a sealed bundle: every listed file present with its size and sha256, nothing unlisted, then the spec
/// parsed and the samples listed.
pub fn open(dir: &Path) -> Result<Bundle, BundleError> {
    check_dir(dir)?;
    let manifest_path = dir.join(MANIFEST);
    if !regular_file(&manifest_path)? {
        return Err(BundleError::NoManifest { dir: dir.to_owned() });
    }
    let bytes = fs::read(&manifest_path).map_err(|source| BundleError::Io { path: manifest_path.clone(), source })?;
    let manifest_sha256 = manifest::sha256_bytes(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| BundleError::BadManifest {
        path: manifest_path.clone(),
        problem: manifest::ManifestProblem::Syntax { line: None, message: "not UTF-8 text".into() },
    })?;
    let files =
        manifest::parse(&text).map_err(|problem| BundleError::BadManifest { path: manifest_path.clone(), problem })?;

    let present: HashMap<String, Found> = scan(dir)?.into_iter().map(|f| (f.rel.clone(), f)).collect();
    // Cheap checks over every file before any is hashed: a half-copied bundle is found out at once.
    for entry in &files {
        let path = dir.join(&entry.path);
        match present.get(&entry.path) {
            None => return Err(BundleError::Missing { path }),
            Some(found) if found.size != entry.size => {
                return Err(BundleError::SizeDiffers { path, listed: entry.size, found: found.size });
            }
            Some(_) => {}
        }
    }
    let mut unlisted: Vec<&Found> = present.values().filter(|f| !files.iter().any(|e| e.path == f.rel)).collect();
    unlisted.sort_by(|a, b| a.rel.cmp(&b.rel));
    if let Some(found) = unlisted.first() {
        return Err(BundleError::Unlisted { path: found.path.clone() });
    }
    for entry in &files {
        let path = dir.join(&entry.path);
        let (sha256, size) =
            manifest::sha256_file(&path).map_err(|source| BundleError::Io { path: path.clone(), source })?;
        if size != entry.size {
            return Err(BundleError::SizeDiffers { path, listed: entry.size, found: size });
        }
        if sha256 != entry.sha256 {
            return Err(BundleError::ChecksumDiffers { path, listed: entry.sha256.clone(), found: sha256 });
        }
    }

    if !files.iter().any(|e| e.path == SPEC) {
        return Err(BundleError::NoSpec { dir: dir.to_owned() });
    }
    let spec = Spec::load(&dir.join(SPEC))?;
    let (calib, eval) = check_contents(dir, &spec, &files)?;
    Ok(Bundle { dir: dir.to_owned(), spec, files, calib, eval, manifest_sha256 })
}

fn check_dir(dir: &Path) -> Result<(), BundleError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(BundleError::NotADir { dir: dir.to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BundleError::NoDir { dir: dir.to_owned() }),
        Err(source) => Err(BundleError::Io { path: dir.to_owned(), source }),
    }
}

/// Whether `path` is a regular file; absent is `false`; a link or anything else is refused by name.
fn regular_file(path: &Path) -> Result<bool, BundleError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(true),
        Ok(meta) if meta.file_type().is_symlink() => Err(BundleError::Symlink { path: path.to_owned() }),
        Ok(meta) => Err(BundleError::NotRegular { path: path.to_owned(), kind: kind_of(&meta.file_type()) }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(BundleError::Io { path: path.to_owned(), source }),
    }
}

fn kind_of(file_type: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "folder"
    } else if file_type.is_fifo() {
        "named pipe"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device file"
    } else {
        "special file"
    }
}

/// A regular file of the bundle.
struct Found {
    /// Relative to the bundle folder, `/`-separated.
    rel: String,
    path: PathBuf,
    size: u64,
}

/// Every regular file of the bundle but the manifest and its signature, sorted by relative path; hidden entries
/// skipped; links and special files refused.
fn scan(dir: &Path) -> Result<Vec<Found>, BundleError> {
    let mut out = Vec::new();
    let mut folders = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, rel)) = folders.pop() {
        let io_err = |source| BundleError::Io { path: folder.clone(), source };
        for item in fs::read_dir(&folder).map_err(io_err)? {
            let item = item.map_err(io_err)?;
            let path = item.path();
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                return Err(BundleError::NonUtf8Name { path });
            };
            if name.starts_with('.') || (rel.is_empty() && (name == MANIFEST || name == SIGNATURE)) {
                continue;
            }
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let meta = fs::symlink_metadata(&path).map_err(|source| BundleError::Io { path: path.clone(), source })?;
            let file_type = meta.file_type();
            if file_type.is_symlink() {
                return Err(BundleError::Symlink { path });
            } else if file_type.is_dir() {
                folders.push((path, child));
            } else if file_type.is_file() {
                out.push(Found { rel: child, path, size: meta.len() });
            } else {
                return Err(BundleError::NotRegular { path, kind: kind_of(&file_type) });
            }
        }
    }
    out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

/// What both seal and open require of the listed files: the model, sample files of known kinds in calib/ and
/// eval/ (none in both), and the files the spec names. Returns the calib/ and eval/ samples, sorted.
fn check_contents(dir: &Path, spec: &Spec, files: &[Entry]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), BundleError> {
    if !files.iter().any(|e| e.path == MODEL) {
        return Err(BundleError::NoModel { dir: dir.to_owned() });
    }
    let under = |folder: &str| -> Result<Vec<&Entry>, BundleError> {
        let prefix = format!("{folder}/");
        let mut list: Vec<&Entry> = files.iter().filter(|e| e.path.starts_with(&prefix)).collect();
        list.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        for entry in &list {
            if samples::sample_kind(Path::new(&entry.path)).is_none() {
                return Err(SampleError::Extension { path: dir.join(&entry.path) }.into());
            }
        }
        Ok(list)
    };
    let calib = under(CALIB)?;
    let eval = under(EVAL)?;
    if calib.is_empty() && spec.calibration.scales.is_none() {
        return Err(BundleError::NoCalibSamples { dir: dir.to_owned() });
    }
    if eval.is_empty() {
        return Err(BundleError::NoEvalSamples { dir: dir.to_owned() });
    }
    let by_content: HashMap<&str, &str> = calib.iter().map(|e| (e.sha256.as_str(), e.path.as_str())).collect();
    if let Some((e, c)) = eval.iter().find_map(|e| by_content.get(e.sha256.as_str()).map(|c| (e, c))) {
        return Err(BundleError::Overlap { calib: dir.join(c), eval: dir.join(&e.path) });
    }
    let references =
        [("precision.plan", spec.precision.plan.as_ref()), ("calibration.scales", spec.calibration.scales.as_ref())];
    for (key, named) in references {
        let Some(named) = named else { continue };
        let reference = |problem| BundleError::SpecReference {
            spec: dir.join(SPEC),
            key,
            named: named.display().to_string(),
            problem,
        };
        let mut parts = Vec::new();
        for component in named.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy()),
                Component::CurDir => {}
                _ => return Err(reference("which is not a path inside the bundle folder")),
            }
        }
        let rel = parts.join("/");
        if !files.iter().any(|e| e.path == rel) {
            return Err(reference("which the bundle does not hold"));
        }
    }
    let paths = |list: Vec<&Entry>| list.into_iter().map(|e| dir.join(&e.path)).collect();
    Ok((paths(calib), paths(eval)))
}
