//! The precision spec (`precision.toml`, PRODUCT.md "Precision spec"): what precision each layer may take, how to
//! calibrate, the accuracy and latency budget, build settings, and how sample files become model inputs.
//!
//! Parsing happens twice over the same text, on purpose. A first pass walks the spanned TOML tree: it knows the line
//! of every key, so an unknown key is reported with its line and the closest valid key, and a placeholder left in a
//! starter spec is named precisely. Then serde builds the typed [`Spec`] (`deny_unknown_fields` everywhere, as a
//! backstop), and its errors are mapped back to the key whose value they point into. Value checks that serde cannot
//! express (ranges, combinations) run last, with the same key → line map.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Diagnose, Fault};
use crate::exec::InputDecl;
use crate::inputs::ImageRecipe;
pub use crate::precision::Precision;

/// A parsed and checked `precision.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub precision: PrecisionTable,
    #[serde(default)]
    pub calibration: CalibrationTable,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub build: BuildTable,
    /// One recipe per model input, by input name.
    #[serde(default)]
    pub inputs: BTreeMap<String, ImageRecipe>,
    /// The file the spec came from: names it in messages.
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    lines: KeyLines,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Resolve `default`, `keep`, `layers` (or `plan`) as written; no search.
    Fixed,
    /// Measure sensitivity on eval/ and keep the cheapest plan that meets the budget.
    #[default]
    Search,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrecisionTable {
    #[serde(default = "default_precision")]
    pub default: Precision,
    #[serde(default)]
    pub mode: Mode,
    /// Layers never taken below fp16: `op:TYPE`, or a glob on node names (see
    /// [`crate::precision::plan::keep_matches`]). Checked here only for being well-formed.
    #[serde(default, deserialize_with = "keep_patterns")]
    pub keep: Vec<String>,
    /// Exact choices by node name; they win over everything else.
    #[serde(default)]
    pub layers: BTreeMap<String, Precision>,
    /// A plan chosen elsewhere (mode = "fixed"), relative to the spec's folder.
    #[serde(default)]
    pub plan: Option<PathBuf>,
}

fn default_precision() -> Precision {
    Precision::Int8
}

impl Default for PrecisionTable {
    fn default() -> Self {
        PrecisionTable {
            default: default_precision(),
            mode: Mode::default(),
            keep: Vec::new(),
            layers: BTreeMap::new(),
            plan: None,
        }
    }
}

/// `keep` entries that can match something: not empty, and `op:` followed by an op type.
fn keep_patterns<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let patterns = Vec::<String>::deserialize(deserializer)?;
    for pattern in &patterns {
        if pattern.is_empty() {
            return Err(serde::de::Error::custom("an empty pattern matches no node; remove it"));
        }
        if pattern.strip_prefix("op:").is_some_and(|op| op.trim().is_empty()) {
            return Err(serde::de::Error::custom(format!("\"{pattern}\" names no op type; write e.g. \"op:Softmax\"")));
        }
    }
    Ok(patterns)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    #[default]
    Entropy,
    Minmax,
    Percentile,
    Mse,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationTable {
    #[serde(default)]
    pub method: Method,
    /// At most this many calibration samples are used.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Scales computed elsewhere, relative to the spec's folder: the device skips calibration.
    #[serde(default)]
    pub scales: Option<PathBuf>,
    /// As written; [`CalibrationTable::percentile`] gives the value in effect.
    #[serde(default)]
    pub percentile: Option<f64>,
}

pub const DEFAULT_PERCENTILE: f64 = 99.99;

fn default_samples() -> usize {
    128
}

impl Default for CalibrationTable {
    fn default() -> Self {
        CalibrationTable { method: Method::default(), samples: default_samples(), scales: None, percentile: None }
    }
}

impl CalibrationTable {
    /// The percentile in effect for `method = "percentile"`.
    pub fn percentile(&self) -> f64 {
        self.percentile.unwrap_or(DEFAULT_PERCENTILE)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    #[default]
    Mean,
    Min,
}

/// Every bound listed must hold; an absent bound is not checked.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub cosine: Option<f64>,
    pub sqnr_db: Option<f64>,
    pub argmax_agreement: Option<f64>,
    pub mask_iou: Option<MaskIou>,
    pub max_abs: Option<f64>,
    #[serde(default)]
    pub aggregate: Aggregate,
    pub latency_ms: Option<f64>,
}

impl Budget {
    /// Whether any accuracy bound is set (latency is not one).
    pub fn has_accuracy_bound(&self) -> bool {
        self.cosine.is_some()
            || self.sqnr_db.is_some()
            || self.argmax_agreement.is_some()
            || self.mask_iou.is_some()
            || self.max_abs.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskIou {
    pub min: f64,
    pub threshold: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuildTable {
    #[serde(default = "default_workspace_mib")]
    pub workspace_mib: u64,
    #[serde(default = "default_optimization_level")]
    pub optimization_level: u8,
    /// How the tensorrt backend gets the plan's precisions into the engine (PRODUCT.md's version table).
    #[serde(default)]
    pub quantization: Quantization,
    /// Build for this DLA core, with GPU fallback for the layers it cannot run (Jetson AGX Orin, Orin NX).
    #[serde(default)]
    pub dla_core: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// The strongly typed export (Q/DQ + Cast) carries every precision: every TensorRT version.
    #[default]
    Explicit,
    /// FP32 ONNX + calibration cache + `--layerPrecisions`: TensorRT 8.5 to 10.x only.
    Implicit,
}

fn default_workspace_mib() -> u64 {
    1024
}

fn default_optimization_level() -> u8 {
    3
}

impl Default for BuildTable {
    fn default() -> Self {
        BuildTable {
            workspace_mib: default_workspace_mib(),
            optimization_level: default_optimization_level(),
            quantization: Quantization::Explicit,
            dla_core: None,
        }
    }
}

/// What the starter writes for a dimension the model leaves open; [`Spec::parse`] names it if it is left in.
pub const PLACEHOLDER: &str = "?";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("{}:{line}: unknown key `{key}` in {table}{}", path.display(), unknown_tail(suggestion, valid))]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        table: String,
        suggestion: Option<String>,
        valid: Vec<String>,
    },
    #[error("{}{}: {key}: {problem}", path.display(), at_line(*line))]
    Invalid { path: PathBuf, line: Option<usize>, key: String, problem: String, hint: Option<String> },
    #[error(
        "{}{}: {key}: dimension {index} is still the placeholder \"{PLACEHOLDER}\" (the model leaves it open)",
        path.display(), at_line(Some(*line))
    )]
    Placeholder { path: PathBuf, line: usize, key: String, index: usize },
    #[error(
        "{}{}: mode = \"search\" needs at least one accuracy bound in [budget] \
         (cosine, sqnr_db, argmax_agreement, mask_iou or max_abs)",
        path.display(), at_line(*line)
    )]
    NoAccuracyBound { path: PathBuf, line: Option<usize> },
    #[error("{}{}: [inputs.{input}] names no input of the model (its inputs: {known})", path.display(), at_line(*line))]
    UnknownInput { path: PathBuf, line: Option<usize>, input: String, known: String },
    #[error(
        "{}{}: inputs.{input}.shape {shape:?} does not fit the model's input `{input}` {declared}: {problem}",
        path.display(), at_line(*line)
    )]
    ShapeMismatch {
        path: PathBuf,
        line: Option<usize>,
        input: String,
        shape: Vec<usize>,
        declared: String,
        problem: String,
    },
    #[error("{}: the model declares input `{input}` as {declared}, with open dimensions, and the spec has no [inputs.{input}] table", path.display())]
    MissingShape { path: PathBuf, input: String, declared: String },
}

impl SpecError {
    fn with_hint(mut self, text: &str) -> SpecError {
        if let SpecError::Invalid { hint, .. } = &mut self {
            *hint = Some(text.to_owned());
        }
        self
    }
}

fn at_line(line: Option<usize>) -> String {
    line.map_or(String::new(), |l| format!(":{l}"))
}

fn unknown_tail(suggestion: &Option<String>, valid: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if valid.is_empty() => String::new(),
        None => format!(" (valid keys: {})", valid.join(", ")),
    }
}

impl Diagnose for SpecError {
    fn fault(&self) -> Fault {
        match self {
            SpecError::Read { source, .. } if source.kind() != std::io::ErrorKind::NotFound => Fault::Environment,
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SpecError::Invalid { hint, .. } => hint.clone(),
            SpecError::Placeholder { .. } => Some(format!(
                "replace each \"{PLACEHOLDER}\" with the size the engine is built for (the batch is usually 1)"
            )),
            SpecError::NoAccuracyBound { .. } => {
                Some("add e.g. `cosine = 0.99` under [budget], or set mode = \"fixed\"".into())
            }
            SpecError::MissingShape { input, .. } => {
                Some(format!("add [inputs.{input}] with `shape = [...]`, the shape to build the engine for"))
            }
            SpecError::UnknownKey { table, .. } if table.starts_with("[inputs.") => {
                Some("the keys of an [inputs.NAME] table: shape, layout, channels, scale, mean, std, resize".into())
            }
            _ => None,
        }
    }
}

impl Spec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.to_owned(), source })?;
        Spec::parse(&text, path)
    }

    /// Parses and checks spec text; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
        let lines = check_keys(text, path)?;
        let mut spec: Spec = toml::from_str(text).map_err(|e| serde_error(&e, text, path, &lines))?;
        spec.path = path.to_owned();
        spec.lines = lines;
        spec.check()?;
        Ok(spec)
    }

    /// The line a key is written on, e.g. `&["budget", "cosine"]`; for messages about it by later stages.
    pub fn line_of(&self, key: &[&str]) -> Option<usize> {
        self.lines.line_of(key)
    }

    /// A path the spec names (`plan`, `scales`), relative to the spec's folder.
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new("")).join(relative)
    }

    fn invalid(&self, key: &[&str], problem: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            path: self.path.clone(),
            line: self.line_of(key),
            key: dotted(key),
            problem: problem.into(),
            hint: None,
        }
    }

    fn check(&self) -> Result<(), SpecError> {
        let p = &self.precision;
        if p.plan.is_some() && p.mode == Mode::Search {
            return Err(self
                .invalid(&["precision", "plan"], "a plan chosen elsewhere needs mode = \"fixed\"")
                .with_hint("set mode = \"fixed\" to build the given plan, or remove `plan` to search"));
        }
        let c = &self.calibration;
        if c.samples == 0 {
            return Err(self.invalid(&["calibration", "samples"], "must be at least 1"));
        }
        if let Some(pct) = c.percentile {
            if !(pct.is_finite() && pct > 0.0 && pct <= 100.0) {
                return Err(self.invalid(&["calibration", "percentile"], format!("{pct} is not in (0, 100]")));
            }
            if c.method != Method::Percentile {
                return Err(self
                    .invalid(
                        &["calibration", "percentile"],
                        "only applies to method = \"percentile\", and the method is another",
                    )
                    .with_hint("set method = \"percentile\", or remove `percentile`"));
            }
        }
        let b = &self.budget;
        let unit = |key: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && (0.0..=1.0).contains(&v)) => {
                Err(self.invalid(&["budget", key], format!("{v} is not between 0 and 1")))
            }
            _ => Ok(()),
        };
        unit("cosine", b.cosine)?;
        unit("argmax_agreement", b.argmax_agreement)?;
        if let Some(v) = b.sqnr_db
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(self.invalid(&["budget", "sqnr_db"], format!("{v} is not a non-negative number of dB")));
        }
        for (key, value) in [("max_abs", b.max_abs), ("latency_ms", b.latency_ms)] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return Err(self.invalid(&["budget", key], format!("{v} is not a positive number")));
            }
        }
        if let Some(m) = b.mask_iou {
            if !(m.min.is_finite() && (0.0..=1.0).contains(&m.min)) {
                return Err(self.invalid(&["budget", "mask_iou", "min"], format!("{} is not between 0 and 1", m.min)));
            }
            if !(m.threshold.is_finite() && m.threshold > 0.0 && m.threshold < 1.0) {
                return Err(self.invalid(
                    &["budget", "mask_iou", "threshold"],
                    format!("{} is not strictly between 0 and 1 (a probability threshold)", m.threshold),
                ));
            }
        }
        if p.mode == Mode::Search && !b.has_accuracy_bound() {
            return Err(SpecError::NoAccuracyBound { path: self.path.clone(), line: self.line_of(&["budget"]) });
        }
        if self.build.workspace_mib == 0 {
            return Err(self.invalid(&["build", "workspace_mib"], "must be at least 1"));
        }
        if self.build.optimization_level > 5 {
            let level = self.build.optimization_level;
            return Err(self.invalid(&["build", "optimization_level"], format!("{level} is not in 0..=5")));
        }
        for (name, recipe) in &self.inputs {
            if let Some(index) = recipe.shape.iter().position(|&d| d == 0) {
                return Err(self.invalid(
                    &["inputs", name, "shape"],
                    format!("dimension {index} of {:?} is 0; an engine needs positive sizes", recipe.shape),
                ));
            }
        }
        Ok(())
    }

    /// The concrete shape of every model input: the `[inputs.NAME]` shape where given (it must have the declared
    /// rank and agree with every fixed dimension), else the declared shape when it has no open dimension. A table
    /// for an input the model does not have is an error: it is a misspelt name more often than not.
    pub fn input_shapes(&self, declared: &[InputDecl]) -> Result<Vec<(InputDecl, Vec<usize>)>, SpecError> {
        for name in self.inputs.keys() {
            if !declared.iter().any(|d| &d.name == name) {
                let known = declared.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ");
                return Err(SpecError::UnknownInput {
                    path: self.path.clone(),
                    line: self.line_of(&["inputs", name]),
                    input: name.clone(),
                    known,
                });
            }
        }
        declared
            .iter()
            .map(|decl| {
                let Some(recipe) = self.inputs.get(&decl.name) else {
                    return decl.concrete_shape().map(|s| (decl.clone(), s)).ok_or_else(|| SpecError::MissingShape {
                        path: self.path.clone(),
                        input: decl.name.clone(),
                        declared: decl.describe(),
                    });
                };
                let mismatch = |problem: String| SpecError::ShapeMismatch {
                    path: self.path.clone(),
                    line: self.line_of(&["inputs", &decl.name, "shape"]),
                    input: decl.name.clone(),
                    shape: recipe.shape.clone(),
                    declared: decl.describe(),
                    problem,
                };
                // A model without any shape information declares no dims: then any rank is accepted.
                if !decl.dims.is_empty() {
                    if decl.dims.len() != recipe.shape.len() {
                        return Err(mismatch(format!(
                            "{} dimensions where the model has {}",
                            recipe.shape.len(),
                            decl.dims.len()
                        )));
                    }
                    for (index, (d, &s)) in decl.dims.iter().zip(&recipe.shape).enumerate() {
                        if let Some(d) = *d
                            && d != s
                        {
                            return Err(mismatch(format!("dimension {index} is {d} in the model")));
                        }
                    }
                }
                Ok((decl.clone(), recipe.shape.clone()))
            })
            .collect()
    }

    /// A commented starter `precision.toml` for a model with these inputs: int8 by default, search against
    /// cosine 0.99, entropy calibration over 128 samples, and one `[inputs.NAME]` table per input. Dimensions the
    /// model leaves open are written as the placeholder `"?"`, which [`Spec::parse`] refuses until replaced.
    pub fn starter(inputs: &[InputDecl]) -> String {
        let mut out = String::from(STARTER_HEAD);
        for input in inputs {
            let _ = writeln!(out);
            let dtype = input.dtype.map_or("of an unknown type".to_string(), |d| d.name().to_string());
            let _ = writeln!(out, "# The model declares `{}`: {dtype} {}.", input.name, input.describe());
            let _ = writeln!(out, "[inputs.{}]", toml_key(&input.name));
            let open = input.dims.is_empty() || input.dims.iter().any(Option::is_none);
            if input.dims.is_empty() {
                let _ = writeln!(out, "# TODO: the model declares no shape here; write the whole shape to build for.");
            } else if open {
                let _ = writeln!(
                    out,
                    "# TODO: \"{PLACEHOLDER}\" marks a dimension the model leaves open: replace each with the size to \
                     build for (batch 1 for images)."
                );
            }
            let dims: Vec<String> = if input.dims.is_empty() {
                vec![format!("\"{PLACEHOLDER}\"")]
            } else {
                input.dims.iter().map(|d| d.map_or(format!("\"{PLACEHOLDER}\""), |d| d.to_string())).collect()
            };
            let _ = writeln!(out, "shape = [{}]", dims.join(", "));
            match image_like(input) {
                Some((layout, channels)) => {
                    let _ =
                        writeln!(out, "# How PNG/JPEG samples become this tensor; .npy/.npz samples use only `shape`.");
                    let lines = [
                        (format!("layout = \"{layout}\""), "NCHW | NHWC"),
                        (format!("channels = \"{channels}\""), "RGB | BGR | GRAY"),
                        ("scale = 0.00392156862745098".into(), "pixel value (0-255) x scale, then (v - mean) / std"),
                        ("mean = [0.0]".into(), "one value, or one per channel"),
                        ("std = [1.0]".into(), "one value, or one per channel"),
                        ("resize = \"stretch\"".into(), "stretch | letterbox"),
                    ];
                    for (assignment, comment) in lines {
                        // Comments line up with the ones of the fixed part above (column 35).
                        let _ = writeln!(out, "{assignment:<34}# {comment}");
                    }
                }
                None => {
                    let _ = writeln!(out, "# Samples for this input are .npy/.npz arrays of exactly this shape.");
                }
            }
        }
        out
    }
}

const STARTER_HEAD: &str = r#"# precision.toml: the precision spec of this bundle (PRODUCT.md, "Precision spec").
# A starter written by `precisiond bundle seal`: review it, then seal the bundle again.

[precision]
default = "int8"                  # int8 | fp16 | fp32: the precision of every layer not named below
mode = "search"                   # fixed | search: search keeps sensitive layers in fp16 until [budget] holds
keep = []                         # never below fp16: globs on node names, or "op:TYPE", e.g. ["op:Softmax"]
# plan = "plan.toml"              # a plan chosen elsewhere (needs mode = "fixed"): the device skips the search

[precision.layers]                # exact choices by node name (`precisiond inspect model.onnx` lists them)
# "conv_last" = "fp32"

[calibration]
method = "entropy"                # entropy | minmax | percentile | mse
samples = 128                     # at most this many samples of calib/ are used
# scales = "scales.json"          # scales computed elsewhere: the device skips calibration

[budget]                          # against FP32 on eval/; every bound listed must hold
cosine = 0.99                     # minimum cosine similarity of each output to FP32
# sqnr_db = 30.0                  # minimum signal-to-quantization-noise ratio, dB
# argmax_agreement = 0.99         # minimum share of argmax matches
# mask_iou = { min = 0.95, threshold = 0.3 }
# max_abs = 0.05                  # maximum absolute difference
aggregate = "mean"                # mean | min: over the eval samples
# latency_ms = 4.0                # the verified engine's median GPU compute time at most this

[build]
workspace_mib = 1024
optimization_level = 3            # 0..=5
# quantization = "explicit"       # explicit (Q/DQ ONNX, every TensorRT) | implicit (calibration cache; not 11.x)
# dla_core = 0                    # build for a DLA core, GPU fallback for what it cannot run
"#;

/// (layout, channels) when an input looks like a batch of images: rank 4 with 1 or 3 channels in NCHW or NHWC
/// position (NCHW wins when both fit, as it does in ONNX models).
fn image_like(input: &InputDecl) -> Option<(&'static str, &'static str)> {
    if input.dims.len() != 4 || input.dtype.is_some_and(|d| d != crate::tensor::DType::F32) {
        return None;
    }
    let channels = |d: Option<usize>| match d {
        Some(1) => Some("GRAY"),
        Some(3) => Some("RGB"),
        _ => None,
    };
    channels(input.dims[1]).map(|c| ("NCHW", c)).or_else(|| channels(input.dims[3]).map(|c| ("NHWC", c)))
}

/// A TOML key: bare when it can be, else a basic string.
pub(crate) fn toml_key(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return key.to_owned();
    }
    toml_string(key)
}

/// A TOML basic string; file and layer names may hold quotes or control characters.
pub(crate) fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key path as TOML would address it: `budget.cosine`, `precision.layers."head.0.conv"`.
fn dotted(path: &[&str]) -> String {
    path.iter().map(|k| toml_key(k)).collect::<Vec<_>>().join(".")
}

/// Where every key of the file sits: its path, the span of the key and the span of its value.
#[derive(Clone, Debug, Default)]
struct KeyLines {
    entries: Vec<KeyEntry>,
}

#[derive(Clone, Debug)]
struct KeyEntry {
    path: Vec<String>,
    line: usize,
    value: Range<usize>,
}

impl KeyLines {
    fn line_of(&self, key: &[&str]) -> Option<usize> {
        self.entries.iter().find(|e| e.path.iter().map(String::as_str).eq(key.iter().copied())).map(|e| e.line)
    }

    /// The innermost key whose value holds `span`.
    fn owner_of(&self, span: &Range<usize>) -> Option<&KeyEntry> {
        self.entries
            .iter()
            .filter(|e| e.value.start <= span.start && span.end <= e.value.end)
            .max_by_key(|e| e.path.len())
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Which keys a table allows, by its path; `None`: any key (layer names, input names).
fn allowed_keys(path: &[String]) -> Option<&'static [&'static str]> {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    Some(match path.as_slice() {
        [] => fields_of::<Spec>(),
        ["precision"] => fields_of::<PrecisionTable>(),
        ["precision", "layers"] => return None,
        ["calibration"] => fields_of::<CalibrationTable>(),
        ["budget"] => fields_of::<Budget>(),
        ["budget", "mask_iou"] => fields_of::<MaskIou>(),
        ["build"] => fields_of::<BuildTable>(),
        ["inputs"] => return None,
        ["inputs", _] => fields_of::<ImageRecipe>(),
        // Deeper tables are type errors that serde reports with the key.
        _ => return None,
    })
}

fn table_name(path: &[String]) -> String {
    if path.is_empty() {
        "the top level".into()
    } else {
        format!("[{}]", dotted(&path.iter().map(String::as_str).collect::<Vec<_>>()))
    }
}

/// First pass: syntax, unknown keys, placeholders; returns where every key is.
fn check_keys(text: &str, path: &Path) -> Result<KeyLines, SpecError> {
    let root = toml::de::DeTable::parse(text).map_err(|e| SpecError::Syntax {
        path: path.to_owned(),
        line: line_at(text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().replace('\n', "; "),
    })?;
    let mut lines = KeyLines::default();
    walk(root.get_ref(), &mut Vec::new(), text, path, &mut lines)?;
    Ok(lines)
}

fn walk(
    table: &toml::de::DeTable<'_>,
    at: &mut Vec<String>,
    text: &str,
    path: &Path,
    lines: &mut KeyLines,
) -> Result<(), SpecError> {
    let allowed = allowed_keys(at);
    for (key, value) in table {
        let name: &str = key.get_ref();
        let line = line_at(text, key.span().start);
        if let Some(allowed) = allowed
            && !allowed.contains(&name)
        {
            return Err(SpecError::UnknownKey {
                path: path.to_owned(),
                line,
                key: name.to_owned(),
                table: table_name(at),
                suggestion: closest(name, allowed).map(str::to_owned),
                valid: allowed.iter().map(|s| s.to_string()).collect(),
            });
        }
        at.push(name.to_owned());
        lines.entries.push(KeyEntry { path: at.clone(), line, value: value.span() });
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => walk(inner, at, text, path, lines)?,
            toml::de::DeValue::Array(items) if at.len() == 3 && at[0] == "inputs" && at[2] == "shape" => {
                if let Some(index) = items.iter().position(|v| v.get_ref().as_str() == Some(PLACEHOLDER)) {
                    return Err(SpecError::Placeholder {
                        path: path.to_owned(),
                        line: line_at(text, items[index].span().start),
                        key: dotted(&at.iter().map(String::as_str).collect::<Vec<_>>()),
                        index,
                    });
                }
            }
            _ => {}
        }
        at.pop();
    }
    Ok(())
}

/// Second pass: a serde error, placed on the key its span points into.
fn serde_error(error: &toml::de::Error, text: &str, path: &Path, lines: &KeyLines) -> SpecError {
    let message = error.message().trim().replace('\n', "; ");
    let owner = error.span().and_then(|span| lines.owner_of(&span));
    let Some(owner) = owner else {
        return SpecError::Invalid {
            path: path.to_owned(),
            line: error.span().map(|s| line_at(text, s.start)),
            key: "the spec".into(),
            problem: message,
            hint: None,
        };
    };
    let key: Vec<&str> = owner.path.iter().map(String::as_str).collect();
    // TOML puts every key after `[precision.layers]` into that table; a [precision] key written below it lands
    // there and fails as a precision.
    let hint = match key.as_slice() {
        ["precision", "layers", misplaced] if fields_of::<PrecisionTable>().contains(misplaced) => Some(format!(
            "`{misplaced}` is a key of [precision]: move it above the [precision.layers] header \
             (in TOML every key after a table header belongs to that table)"
        )),
        _ => None,
    };
    SpecError::Invalid { path: path.to_owned(), line: Some(owner.line), key: dotted(&key), problem: message, hint }
}

/// The valid key a mistyped one most likely meant: the closest by edit distance (as for layer names), else one key
/// being a prefix of the other (`sqnr` → `sqnr_db`, `argmax` → `argmax_agreement`).
fn closest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    let owned: Vec<String> = valid.iter().map(|v| v.to_string()).collect();
    if let Some(best) = crate::precision::plan::closest(&lower, &owned) {
        return valid.iter().copied().find(|v| *v == best);
    }
    valid.iter().copied().find(|v| lower.len() >= 3 && (v.starts_with(&lower) || lower.starts_with(v)))
}

/// The field names a serde-derived struct accepts, asked from the derive itself so that the key check cannot drift
/// from the types.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    struct Probe;
    impl<'de> serde::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(text, Path::new("precision.toml"))
    }

    /// PRODUCT.md's example, verbatim.
    const PRODUCT_EXAMPLE: &str = r#"[precision]
default = "int8"                  # int8 | fp16 | fp32
mode = "search"                   # fixed | search
keep = ["op:Softmax", "head*"]    # never below fp16: glob on node names, or op:TYPE
[precision.layers]                # exact choices; they win over everything else
"conv_last" = "fp32"
# plan = "plan.toml"              # a plan chosen elsewhere (mode = "fixed"): the device skips the search

[calibration]
method = "entropy"                # entropy | minmax | percentile | mse
samples = 128
# scales = "scales.json"          # scales computed elsewhere: the device skips calibration

[budget]                          # accuracy budget against FP32 on eval/; every bound listed must hold
cosine = 0.995                    # minimum cosine similarity of each output to FP32
sqnr_db = 30.0                    # minimum signal-to-quantization-noise ratio, dB
argmax_agreement = 0.99           # minimum share of argmax matches (classifiers, per-position decoders)
mask_iou = { min = 0.95, threshold = 0.3 }   # probability maps: IoU of the thresholded masks
max_abs = 0.05                    # maximum absolute difference
aggregate = "mean"                # mean | min: over the eval samples
latency_ms = 4.0                  # optional: verified engine at most this (median GPU compute time)

[build]
workspace_mib = 1024
optimization_level = 3

[inputs.x]                        # one table per model input: the shape to build for, and how images become tensors
shape = [1, 3, 48, 192]
layout = "NCHW"                   # NCHW | NHWC
channels = "RGB"                  # RGB | BGR | GRAY
scale = 0.00392156862745098       # pixel value (0–255) × scale, then (v - mean) / std per channel
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
resize = "stretch"                # stretch | letterbox
"#;

    #[test]
    fn product_example_parses_with_every_key() {
        let spec = parse(PRODUCT_EXAMPLE).unwrap();
        let p = &spec.precision;
        assert_eq!((p.default, p.mode), (Precision::Int8, Mode::Search));
        assert_eq!(p.keep, ["op:Softmax", "head*"]);
        assert_eq!(p.layers.get("conv_last"), Some(&Precision::Fp32));
        assert_eq!(p.plan, None);
        assert_eq!((spec.calibration.method, spec.calibration.samples), (Method::Entropy, 128));
        assert_eq!((spec.calibration.scales.clone(), spec.calibration.percentile()), (None, 99.99));
        let b = &spec.budget;
        assert_eq!((b.cosine, b.sqnr_db, b.argmax_agreement), (Some(0.995), Some(30.0), Some(0.99)));
        assert_eq!(b.mask_iou, Some(MaskIou { min: 0.95, threshold: 0.3 }));
        assert_eq!((b.max_abs, b.aggregate, b.latency_ms), (Some(0.05), Aggregate::Mean, Some(4.0)));
        assert_eq!((spec.build.workspace_mib, spec.build.optimization_level), (1024, 3));
        let x = &spec.inputs["x"];
        assert_eq!((x.shape.clone(), x.mean.clone()), (vec![1, 3, 48, 192], vec![0.5; 3]));
        x.validate().unwrap();
        assert_eq!(spec.line_of(&["budget", "cosine"]), Some(15));
        assert_eq!(spec.line_of(&["precision", "layers", "conv_last"]), Some(6));

        // The commented keys, uncommented where TOML puts them in [precision] and [calibration].
        let fixed = PRODUCT_EXAMPLE
            .replace("mode = \"search\"", "mode = \"fixed\"\nplan = \"plan.toml\"")
            .replace("# scales = \"scales.json\"", "scales = \"scales.json\"\npercentile = 99.9")
            .replace("method = \"entropy\"", "method = \"percentile\"");
        let spec = Spec::parse(&fixed, Path::new("/b/precision.toml")).unwrap();
        assert_eq!(spec.precision.plan.as_deref(), Some(Path::new("plan.toml")));
        assert_eq!(spec.resolve(spec.precision.plan.as_ref().unwrap()), Path::new("/b/plan.toml"));
        assert_eq!(spec.calibration.scales.as_deref(), Some(Path::new("scales.json")));
        assert_eq!((spec.calibration.method, spec.calibration.percentile()), (Method::Percentile, 99.9));
    }

    #[test]
    fn defaults_of_an_almost_empty_spec() {
        let spec = parse("[budget]\nsqnr_db = 20.0\n").unwrap();
        assert_eq!((spec.precision.default, spec.precision.mode), (Precision::Int8, Mode::Search));
        assert!(spec.precision.keep.is_empty() && spec.precision.layers.is_empty());
        assert_eq!((spec.calibration.method, spec.calibration.samples), (Method::Entropy, 128));
        assert_eq!(spec.budget.aggregate, Aggregate::Mean);
        assert_eq!((spec.build.workspace_mib, spec.build.optimization_level), (1024, 3));
        assert!(spec.inputs.is_empty());
        // Fixed mode needs no accuracy bound: verification then checks only what is listed.
        parse("[precision]\nmode = \"fixed\"\n").unwrap();
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_keys_name_line_table_and_the_closest_key() {
        let text = "[precision]\ndefault = \"int8\"\n\n[budget]\naggregate = \"min\"\n\ncosin = 0.99\n";
        assert_eq!(error(text), "precision.toml:7: unknown key `cosin` in [budget]; did you mean `cosine`?");
        let cases = [
            ("[budget]\nsqnr = 30.0\n", "precision.toml:2: unknown key `sqnr` in [budget]; did you mean `sqnr_db`?"),
            (
                "[budgets]\ncosine = 0.9\n",
                "precision.toml:1: unknown key `budgets` in the top level; did you mean `budget`?",
            ),
            (
                "[build]\nworkspace = 10\n",
                "precision.toml:2: unknown key `workspace` in [build]; did you mean `workspace_mib`?",
            ),
            ("[calibration]\nMethod = \"mse\"\n", "unknown key `Method` in [calibration]; did you mean `method`?"),
            ("[precision]\nkeeps = []\n", "unknown key `keeps` in [precision]; did you mean `keep`?"),
            (
                "[budget]\ncosine = 0.9\nmask_iou = { min = 0.9, treshold = 0.5 }\n",
                "precision.toml:3: unknown key `treshold` in [budget.mask_iou]; did you mean `threshold`?",
            ),
            (
                "[budget]\ncosine = 0.9\n[inputs.x]\nshape = [1]\nlayuot = \"NHWC\"\n",
                "in [inputs.x]; did you mean `layout`?",
            ),
            (
                "[budget]\ncosine = 0.9\n[inputs.\"in.0\"]\nshape = [1]\nstd_dev = [1.0]\n",
                "unknown key `std_dev` in [inputs.\"in.0\"]; did you mean `std`?",
            ),
            (
                "[build]\nzzzzzzzz = 1\n",
                "unknown key `zzzzzzzz` in [build] (valid keys: workspace_mib, optimization_level, quantization, dla_core)",
            ),
        ];
        for (text, expected) in cases {
            assert!(error(text).contains(expected), "{text:?}\n  gave {}\n  want {expected}", error(text));
        }
        // Layer and input names are the user's: any key goes there.
        parse("[budget]\ncosine = 0.9\n[precision.layers]\n\"anything/at:all\" = \"fp16\"\n").unwrap();
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let ok = "[budget]\ncosine = 0.9\n";
        let cases = [
            (
                "[precision]\ndefault = \"int4\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: precision.default: unknown variant `int4`",
            ),
            (
                "[precision]\nmode = \"auto\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: precision.mode: unknown variant `auto`",
            ),
            (
                "[precision.layers]\nconv1 = \"int16\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: precision.layers.conv1: unknown variant `int16`",
            ),
            (
                "[precision]\nkeep = [\"op:\"]\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: precision.keep: \"op:\" names no op type",
            ),
            (
                "[precision]\nkeep = \"conv*\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: precision.keep: invalid type: string",
            ),
            ("[budget]\ncosine = 1.5\n", "precision.toml:2: budget.cosine: 1.5 is not between 0 and 1"),
            ("[budget]\ncosine = -0.5\n", "budget.cosine: -0.5 is not between 0 and 1"),
            ("[budget]\ncosine = nan\n", "budget.cosine: NaN is not between 0 and 1"),
            ("[budget]\ncosine = \"high\"\n", "precision.toml:2: budget.cosine: invalid type: string"),
            ("[budget]\nsqnr_db = -3.0\n", "budget.sqnr_db: -3 is not a non-negative number of dB"),
            ("[budget]\nmax_abs = -0.1\n", "budget.max_abs: -0.1 is not a positive number"),
            (
                "[budget]\ncosine = 0.9\nlatency_ms = 0\n",
                "precision.toml:3: budget.latency_ms: 0 is not a positive number",
            ),
            ("[budget]\nargmax_agreement = 2.0\n", "budget.argmax_agreement: 2 is not between 0 and 1"),
            ("[budget]\nmask_iou = { min = 0.9 }\n", "precision.toml:2: budget.mask_iou: missing field `threshold`"),
            (
                "[budget]\nmask_iou = { min = 1.2, threshold = 0.5 }\n",
                "budget.mask_iou.min: 1.2 is not between 0 and 1",
            ),
            (
                "[budget]\nmask_iou = { min = 0.9, threshold = 1.0 }\n",
                "budget.mask_iou.threshold: 1 is not strictly between 0 and 1",
            ),
            (
                "[budget]\ncosine = 0.9\naggregate = \"max\"\n",
                "precision.toml:3: budget.aggregate: unknown variant `max`",
            ),
            (
                "[calibration]\nmethod = \"kl\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: calibration.method: unknown variant `kl`",
            ),
            (
                "[calibration]\nsamples = 0\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: calibration.samples: must be at least 1",
            ),
            (
                "[calibration]\nsamples = -5\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: calibration.samples: invalid value: integer `-5`",
            ),
            (
                "[calibration]\nmethod = \"percentile\"\npercentile = 100.5\n[budget]\ncosine = 0.9\n",
                "precision.toml:3: calibration.percentile: 100.5 is not in (0, 100]",
            ),
            (
                "[calibration]\npercentile = 99.9\n[budget]\ncosine = 0.9\n",
                "calibration.percentile: only applies to method = \"percentile\"",
            ),
            (
                "[build]\noptimization_level = 6\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: build.optimization_level: 6 is not in 0..=5",
            ),
            (
                "[build]\noptimization_level = 300\n[budget]\ncosine = 0.9\n",
                "build.optimization_level: invalid value: integer `300`",
            ),
            ("[build]\nworkspace_mib = 0\n[budget]\ncosine = 0.9\n", "build.workspace_mib: must be at least 1"),
            (
                "[precision]\nplan = \"p.toml\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: precision.plan: a plan chosen elsewhere needs mode = \"fixed\"",
            ),
            (
                "[inputs.x]\nshape = [1, 0, 4]\n[budget]\ncosine = 0.9\n",
                "precision.toml:2: inputs.x.shape: dimension 1 of [1, 0, 4] is 0",
            ),
            (
                "[inputs.x]\nshape = [1, 3]\nlayout = \"CHW\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:3: inputs.x.layout: unknown variant `CHW`",
            ),
            (
                "[inputs.x]\nlayout = \"NCHW\"\n[budget]\ncosine = 0.9\n",
                "precision.toml:1: inputs.x: missing field `shape`",
            ),
            ("[budget]\ncosine = 0.9\n[budget]\nmax_abs = 1.0\n", "precision.toml:3: "),
            ("[budget\ncosine = 0.9\n", "precision.toml:1: "),
        ];
        for (text, expected) in cases {
            let e = error(text);
            assert!(e.contains(expected), "{text:?}\n  gave {e}\n  want {expected}");
        }
        parse(ok).unwrap();
        // Integers are read as floats where a float is expected: `cosine = 1` is 1.0.
        assert_eq!(parse("[budget]\ncosine = 1\nlatency_ms = 4\n").unwrap().budget.latency_ms, Some(4.0));
        let e = error("[precision]\nmode = \"search\"\n");
        assert_eq!(
            e,
            "precision.toml: mode = \"search\" needs at least one accuracy bound in [budget] (cosine, sqnr_db, argmax_agreement, mask_iou or max_abs)"
        );
        let e = error("[budget]\nlatency_ms = 3.0\n");
        assert!(e.starts_with("precision.toml:1: mode = \"search\" needs at least one accuracy bound"), "{e}");
    }

    #[test]
    fn a_precision_key_below_the_layers_header_gets_a_hint() {
        let text = "[precision]\nmode = \"fixed\"\n[precision.layers]\nconv = \"fp16\"\nplan = \"plan.toml\"\n";
        let e = parse(text).unwrap_err();
        assert!(
            e.to_string().starts_with("precision.toml:5: precision.layers.plan: unknown variant `plan.toml`"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("move it above the [precision.layers] header"), "{:?}", e.hint());
    }

    #[test]
    fn keep_patterns_are_checked_for_form_and_feed_the_plan_matcher() {
        use crate::precision::plan::keep_matches;
        let spec = parse("[precision]\nkeep = [\"op:Softmax\", \"head*\"]\n[budget]\ncosine = 0.9\n").unwrap();
        let [op, glob] = spec.precision.keep.as_slice() else { panic!("{:?}", spec.precision.keep) };
        assert!(keep_matches(op, "anything", "Softmax") && !keep_matches(op, "Softmax", "Conv"));
        assert!(keep_matches(glob, "head.conv.3", "Conv") && !keep_matches(glob, "the_head", "Conv"));
        let e = error("[precision]\nkeep = [\"conv1\", \"\"]\n[budget]\ncosine = 0.9\n");
        assert_eq!(e, "precision.toml:2: precision.keep: an empty pattern matches no node; remove it");
        let e = error("[precision]\nkeep = [\"op: \"]\n[budget]\ncosine = 0.9\n");
        assert!(e.contains("precision.keep: \"op: \" names no op type"), "{e}");
    }

    #[test]
    fn suggestions_by_edit_distance() {
        let valid = fields_of::<Budget>();
        assert_eq!(valid, &["cosine", "sqnr_db", "argmax_agreement", "mask_iou", "max_abs", "aggregate", "latency_ms"]);
        assert_eq!(closest("cosin", valid), Some("cosine"));
        assert_eq!(closest("maxabs", valid), Some("max_abs"));
        assert_eq!(closest("argmax", valid), Some("argmax_agreement"));
        assert_eq!(closest("latency", valid), Some("latency_ms"));
        assert_eq!(closest("zzzzzzzz", valid), None);
        assert_eq!(closest("Cosine", valid), Some("cosine"));
        assert_eq!(fields_of::<Spec>(), &["precision", "calibration", "budget", "build", "inputs"]);
    }

    fn decl(name: &str, dtype: Option<DType>, dims: &[Option<usize>]) -> InputDecl {
        InputDecl { name: name.into(), dtype, dims: dims.to_vec() }
    }

    #[test]
    fn starter_round_trips_once_placeholders_are_filled() {
        let inputs = [
            decl("x", Some(DType::F32), &[None, Some(3), None, None]),
            decl("mask.in", Some(DType::I64), &[Some(1), Some(16)]),
        ];
        let text = Spec::starter(&inputs);
        assert!(text.contains("[inputs.x]\n") && text.contains("[inputs.\"mask.in\"]\n"), "{text}");
        assert!(text.contains("shape = [\"?\", 3, \"?\", \"?\"]"), "{text}");
        assert!(text.contains("# TODO: \"?\" marks a dimension the model leaves open"), "{text}");
        let e = parse(&text).unwrap_err();
        let line = text.lines().position(|l| l.starts_with("shape = [\"?\"")).unwrap() + 1;
        assert!(matches!(e, SpecError::Placeholder { index: 0, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "precision.toml:{line}: inputs.x.shape: dimension 0 is still the placeholder \"?\" (the model leaves it open)"
            )
        );
        let filled = text.replace("shape = [\"?\", 3, \"?\", \"?\"]", "shape = [1, 3, 48, 192]");
        let spec = parse(&filled).unwrap();
        assert_eq!((spec.precision.default, spec.precision.mode), (Precision::Int8, Mode::Search));
        assert_eq!((spec.calibration.method, spec.calibration.samples), (Method::Entropy, 128));
        assert_eq!(spec.budget.cosine, Some(0.99));
        let x = &spec.inputs["x"];
        assert_eq!(x.shape, vec![1, 3, 48, 192]);
        x.validate().unwrap();
        assert_eq!(spec.inputs["mask.in"].shape, vec![1, 16]);
        let shapes = spec.input_shapes(&inputs).unwrap();
        assert_eq!(shapes[0].1, vec![1, 3, 48, 192]);
        assert_eq!(shapes[1].1, vec![1, 16]);

        // Concrete shapes need no editing; a gray NCHW input gets GRAY, an odd rank no image keys.
        let text = Spec::starter(&[decl("x", Some(DType::F32), &[Some(1), Some(1), Some(8), Some(8)])]);
        assert!(!text.contains("TODO"), "{text}");
        let spec = parse(&text).unwrap();
        assert_eq!(spec.inputs["x"].channels, crate::inputs::Channels::Gray);
        spec.inputs["x"].validate().unwrap();
        let text = Spec::starter(&[decl("tokens", None, &[])]);
        assert!(text.contains("shape = [\"?\"]") && !text.contains("layout"), "{text}");
        assert!(matches!(parse(&text).unwrap_err(), SpecError::Placeholder { .. }));
    }

    #[test]
    fn input_shapes_check_the_tables_against_the_model() {
        let x = decl("x", Some(DType::F32), &[None, Some(3), None, None]);
        let with = |table: &str| parse(&format!("[budget]\ncosine = 0.9\n{table}")).unwrap();
        let e = with("").input_shapes(std::slice::from_ref(&x)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "precision.toml: the model declares input `x` as [?,3,?,?], with open dimensions, and the spec has no [inputs.x] table"
        );
        let e = with("[inputs.y]\nshape = [1]\n").input_shapes(std::slice::from_ref(&x)).unwrap_err();
        assert_eq!(e.to_string(), "precision.toml:3: [inputs.y] names no input of the model (its inputs: `x`)");
        let e = with("[inputs.x]\nshape = [1, 1, 48, 192]\n").input_shapes(std::slice::from_ref(&x)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "precision.toml:4: inputs.x.shape [1, 1, 48, 192] does not fit the model's input `x` [?,3,?,?]: dimension 1 is 3 in the model"
        );
        let e = with("[inputs.x]\nshape = [3, 48, 192]\n").input_shapes(std::slice::from_ref(&x)).unwrap_err();
        assert!(e.to_string().ends_with("3 dimensions where the model has 4"), "{e}");
        let fixed = decl("x", Some(DType::F32), &[Some(1), Some(1), Some(8), Some(8)]);
        assert_eq!(with("").input_shapes(std::slice::from_ref(&fixed)).unwrap()[0].1, vec![1, 1, 8, 8]);
    }

    #[test]
    fn load_names_a_missing_file() {
        let e = Spec::load(Path::new("/nonexistent/precision.toml")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read /nonexistent/precision.toml"), "{e}");
        assert_eq!(e.fault(), Fault::Input);
    }
}
