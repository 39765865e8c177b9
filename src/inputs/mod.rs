//! Model inputs from bundle files: `.npy`, `.npz` (one array per model input name) and PNG/JPEG images turned into
//! tensors by the spec's `[inputs.NAME]` table (PRODUCT.md, "Precision spec").
//!
//! Images are preprocessed by one documented algorithm (see [`self::image`]); `scripts/preprocess_ref.py` is an
//! independent numpy implementation of the same algorithm, and `tests/it/inputs.rs` holds the two together.

pub mod image;
pub mod npy;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Diagnose, Fault};
use crate::tensor::Tensor;

pub use self::npy::{load_npz, read_npy, write_npy, write_npy_file};

/// The `[inputs.NAME]` table of the precision spec: the shape to build the engine for, and how an image becomes a
/// tensor of that shape.
///
/// Only [`ImageRecipe::validate`] checks the image-specific constraints (rank 4, batch 1, channel count): a table
/// for an input that is fed `.npy` files may legitimately describe any shape.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecipe {
    pub shape: Vec<usize>,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub channels: Channels,
    /// Multiplies the 0–255 pixel value before `mean` and `std` apply.
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// One value for all channels, or one per channel in the tensor's channel order (`channels`).
    #[serde(default = "default_mean")]
    pub mean: Vec<f32>,
    /// One value for all channels, or one per channel in the tensor's channel order (`channels`).
    #[serde(default = "default_std")]
    pub std: Vec<f32>,
    #[serde(default)]
    pub resize: Resize,
}

fn default_scale() -> f32 {
    1.0 / 255.0
}

fn default_mean() -> Vec<f32> {
    vec![0.0]
}

fn default_std() -> Vec<f32> {
    vec![1.0]
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Layout {
    #[default]
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Channels {
    #[default]
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
    #[serde(rename = "GRAY")]
    Gray,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::Rgb | Channels::Bgr => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Channels::Rgb => "RGB",
            Channels::Bgr => "BGR",
            Channels::Gray => "GRAY",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Bilinear to exactly H×W, ignoring the aspect ratio.
    #[default]
    Stretch,
    /// Aspect kept, image at the top-left, the rest of the tensor 0 (see [`self::image`]).
    Letterbox,
}

/// Why an `[inputs.NAME]` table cannot turn images into tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecipeError {
    #[error("shape {shape:?} has {} dimensions; an image input needs 4 ({layout})", shape.len())]
    Rank { shape: Vec<usize>, layout: &'static str },
    #[error("shape {shape:?} has batch {batch}; an image gives one sample, so the batch must be 1")]
    Batch { shape: Vec<usize>, batch: usize },
    #[error("shape {shape:?} has {found} channels in {layout} order, but channels = \"{channels}\" needs {needed}")]
    ChannelCount { shape: Vec<usize>, layout: &'static str, channels: &'static str, found: usize, needed: usize },
    #[error("shape {shape:?} has a zero height or width")]
    EmptyExtent { shape: Vec<usize> },
    #[error("{key} has {found} values; it needs 1 or {channels} (one per channel)")]
    VectorLength { key: &'static str, found: usize, channels: usize },
    #[error("std[{index}] is 0; the division by std needs non-zero values")]
    ZeroStd { index: usize },
    #[error("{key} holds {value}, which is not a finite number")]
    NotFinite { key: &'static str, value: f32 },
}

impl Diagnose for RecipeError {}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

impl ImageRecipe {
    /// Checks the table as a description of an image tensor. `load_input_file` calls it for every image.
    pub fn validate(&self) -> Result<(), RecipeError> {
        let layout = self.layout.name();
        if self.shape.len() != 4 {
            return Err(RecipeError::Rank { shape: self.shape.clone(), layout });
        }
        if self.shape[0] != 1 {
            return Err(RecipeError::Batch { shape: self.shape.clone(), batch: self.shape[0] });
        }
        let (c, h, w) = self.chw();
        let needed = self.channels.count();
        if c != needed {
            return Err(RecipeError::ChannelCount {
                shape: self.shape.clone(),
                layout,
                channels: self.channels.name(),
                found: c,
                needed,
            });
        }
        if h == 0 || w == 0 {
            return Err(RecipeError::EmptyExtent { shape: self.shape.clone() });
        }
        if !self.scale.is_finite() {
            return Err(RecipeError::NotFinite { key: "scale", value: self.scale });
        }
        for (key, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != 1 && values.len() != c {
                return Err(RecipeError::VectorLength { key, found: values.len(), channels: c });
            }
            if let Some(&value) = values.iter().find(|v| !v.is_finite()) {
                return Err(RecipeError::NotFinite { key, value });
            }
        }
        if let Some(index) = self.std.iter().position(|&s| s == 0.0) {
            return Err(RecipeError::ZeroStd { index });
        }
        Ok(())
    }

    /// (channels, height, width) read from `shape` in the recipe's layout; meaningful once `validate` passed.
    pub fn chw(&self) -> (usize, usize, usize) {
        let dim = |i: usize| self.shape.get(i).copied().unwrap_or(0);
        match self.layout {
            Layout::Nchw => (dim(1), dim(2), dim(3)),
            Layout::Nhwc => (dim(3), dim(1), dim(2)),
        }
    }
}

/// Names one npy stream in messages: a `.npy` file, or one member of an `.npz` archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpySource {
    pub path: PathBuf,
    pub member: Option<String>,
}

impl fmt::Display for NpySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.member {
            None => write!(f, "{}", self.path.display()),
            Some(member) => write!(f, "{} (member {member})", self.path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: unsupported input file extension {ext:?}; expected .npy, .npz, .png, .jpg or .jpeg", path.display())]
    UnsupportedExtension { path: PathBuf, ext: String },
    #[error("{file}: bad npy header: {problem}")]
    BadNpyHeader { file: NpySource, problem: String },
    #[error("{file}: unsupported npy dtype {descr:?}: {problem}")]
    UnsupportedDtype { file: NpySource, descr: String, problem: String },
    #[error("{file}: truncated data: the header announces {expected} bytes of array data, but only {found} follow")]
    Truncated { file: NpySource, expected: u64, found: u64 },
    #[error("{file}: {extra} unexpected bytes after the {expected} bytes of array data the header announces")]
    TrailingData { file: NpySource, expected: u64, extra: u64 },
    #[error("{}: not a readable npz (zip) archive: {source}", path.display())]
    NpzArchive { path: PathBuf, source: zip::result::ZipError },
    #[error("{}: npz member {member:?}: {problem}", path.display())]
    NpzMember { path: PathBuf, member: String, problem: String },
    #[error("{}: npz archive holds no arrays", path.display())]
    NpzEmpty { path: PathBuf },
    #[error("{}: npz archive has no array named {name:?} (it holds {})", path.display(), available.join(", "))]
    NpzMissingArray { path: PathBuf, name: String, available: Vec<String> },
    #[error("{}: cannot decode image: {source}", path.display())]
    ImageDecode { path: PathBuf, source: ::image::ImageError },
    #[error("{}: image has no pixels ({width}x{height})", path.display())]
    EmptyImage { path: PathBuf, width: u32, height: u32 },
    #[error("{}: an image needs an [inputs.{input}] table in the spec to become a tensor", path.display())]
    NeedsRecipe { path: PathBuf, input: String },
    #[error("{}: [inputs.{input}] cannot turn images into tensors: {source}", path.display())]
    RecipeInvalid { path: PathBuf, input: String, source: RecipeError },
}

impl Diagnose for InputError {
    fn fault(&self) -> Fault {
        match self {
            // The file is there but the machine would not give it up (permissions, I/O), or a write failed.
            InputError::Io { .. } | InputError::Write { .. } => Fault::Environment,
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            InputError::UnsupportedExtension { .. } => {
                "save arrays with numpy.save (.npy) or numpy.savez (.npz, one array per model input name), \
                 images as PNG or JPEG"
                    .to_string()
            }
            InputError::BadNpyHeader { .. } | InputError::Truncated { .. } | InputError::TrailingData { .. } => {
                "check that the file was written by numpy.save and copied completely".to_string()
            }
            InputError::UnsupportedDtype { .. } => {
                "convert it in numpy before saving, e.g. np.save(path, arr.astype('<f4'))".to_string()
            }
            InputError::NpzMissingArray { name, .. } => {
                format!("name each array after its model input: np.savez(path, {name}=array, ...)")
            }
            InputError::NeedsRecipe { input, .. } => format!(
                "add an [inputs.{input}] table to precision.toml, at least `shape = [1, 3, H, W]` \
                 (see PRODUCT.md, \"Precision spec\")"
            ),
            InputError::RecipeInvalid { input, .. } => {
                format!("fix [inputs.{input}] in precision.toml (see PRODUCT.md, \"Precision spec\")")
            }
            InputError::ImageDecode { .. } => "check that the file is a complete PNG or JPEG".to_string(),
            _ => return None,
        };
        Some(hint)
    }
}

enum Kind {
    Npy,
    Npz,
    Image,
}

fn kind_of(path: &Path) -> Result<Kind, InputError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "npy" => Ok(Kind::Npy),
        "npz" => Ok(Kind::Npz),
        "png" | "jpg" | "jpeg" => Ok(Kind::Image),
        _ => Err(InputError::UnsupportedExtension { path: path.to_path_buf(), ext }),
    }
}

/// Fails early, with the file named, for what every loader would otherwise report in its own words.
pub(crate) fn check_readable(path: &Path) -> Result<(), InputError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(InputError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(InputError::NotFound { path: path.to_path_buf() }),
        Err(source) => Err(InputError::Io { path: path.to_path_buf(), source }),
    }
}

/// Loads the tensor for model input `input_name` from one file, chosen by its extension (case-insensitive):
/// `.npy` as stored; `.npz` the member named `input_name`; `.png`/`.jpg`/`.jpeg` through `recipe`, which must be
/// given for images. For arrays the recipe is not consulted: their shape is checked against the model elsewhere.
pub fn load_input_file(path: &Path, recipe: Option<&ImageRecipe>, input_name: &str) -> Result<Tensor, InputError> {
    let kind = kind_of(path)?;
    check_readable(path)?;
    match kind {
        Kind::Npy => read_npy(path),
        Kind::Npz => {
            let arrays = load_npz(path)?;
            let available: Vec<String> = arrays.iter().map(|(name, _)| name.clone()).collect();
            arrays.into_iter().find(|(name, _)| name == input_name).map(|(_, t)| t).ok_or_else(|| {
                InputError::NpzMissingArray { path: path.to_path_buf(), name: input_name.to_string(), available }
            })
        }
        Kind::Image => {
            let recipe = recipe
                .ok_or_else(|| InputError::NeedsRecipe { path: path.to_path_buf(), input: input_name.to_string() })?;
            recipe.validate().map_err(|source| InputError::RecipeInvalid {
                path: path.to_path_buf(),
                input: input_name.to_string(),
                source,
            })?;
            self::image::load_image(path, recipe)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    fn recipe(toml_text: &str) -> ImageRecipe {
        toml::from_str(toml_text).expect("recipe parses")
    }

    #[test]
    fn product_example_table_parses_with_exact_key_names() {
        // The `[inputs.x]` table of PRODUCT.md, verbatim.
        let spec = r#"
            [inputs.x]
            shape = [1, 3, 48, 192]
            layout = "NCHW"
            channels = "RGB"
            scale = 0.00392156862745098
            mean = [0.5, 0.5, 0.5]
            std = [0.5, 0.5, 0.5]
            resize = "stretch"
        "#;
        #[derive(Deserialize)]
        struct Spec {
            inputs: std::collections::BTreeMap<String, ImageRecipe>,
        }
        let spec: Spec = toml::from_str(spec).unwrap();
        let r = &spec.inputs["x"];
        assert_eq!(r.shape, vec![1, 3, 48, 192]);
        assert_eq!((r.layout, r.channels, r.resize), (Layout::Nchw, Channels::Rgb, Resize::Stretch));
        assert_eq!(r.mean, vec![0.5; 3]);
        r.validate().unwrap();
        assert_eq!(r.chw(), (3, 48, 192));
    }

    #[test]
    fn defaults_and_enum_spellings() {
        let r = recipe("shape = [1, 224, 224, 1]\nlayout = \"NHWC\"\nchannels = \"GRAY\"\nresize = \"letterbox\"");
        assert_eq!((r.layout, r.channels, r.resize), (Layout::Nhwc, Channels::Gray, Resize::Letterbox));
        assert_eq!(r.scale, 1.0 / 255.0);
        assert_eq!((r.mean.clone(), r.std.clone()), (vec![0.0], vec![1.0]));
        assert_eq!(r.chw(), (1, 224, 224));
        r.validate().unwrap();
        let r = recipe("shape = [1, 3, 8, 8]\nchannels = \"BGR\"");
        assert_eq!((r.layout, r.channels, r.resize), (Layout::Nchw, Channels::Bgr, Resize::Stretch));
    }

    #[test]
    fn unknown_keys_and_misspelled_values_are_refused() {
        assert!(toml::from_str::<ImageRecipe>("shape = [1, 3, 8, 8]\nmeans = [0.5]").is_err());
        assert!(toml::from_str::<ImageRecipe>("shape = [1, 3, 8, 8]\nlayout = \"nchw\"").is_err());
        assert!(toml::from_str::<ImageRecipe>("shape = [1, 3, 8, 8]\nresize = \"Letterbox\"").is_err());
        assert!(toml::from_str::<ImageRecipe>("layout = \"NCHW\"").is_err(), "shape is required");
    }

    #[test]
    fn validation_names_each_problem() {
        let check = |t: &str| recipe(t).validate().unwrap_err();
        assert!(matches!(check("shape = [1, 3, 8]"), RecipeError::Rank { .. }));
        assert!(matches!(check("shape = [2, 3, 8, 8]"), RecipeError::Batch { batch: 2, .. }));
        let e = check("shape = [1, 3, 8, 8]\nchannels = \"GRAY\"");
        assert_eq!(e.to_string(), "shape [1, 3, 8, 8] has 3 channels in NCHW order, but channels = \"GRAY\" needs 1");
        assert!(matches!(check("shape = [1, 8, 8, 3]"), RecipeError::ChannelCount { found: 8, needed: 3, .. }));
        assert!(matches!(check("shape = [1, 3, 0, 8]"), RecipeError::EmptyExtent { .. }));
        let e = check("shape = [1, 3, 8, 8]\nmean = [0.1, 0.2]");
        assert_eq!(e.to_string(), "mean has 2 values; it needs 1 or 3 (one per channel)");
        assert!(matches!(check("shape = [1, 3, 8, 8]\nstd = [1.0, 0.0, 1.0]"), RecipeError::ZeroStd { index: 1 }));
        assert!(matches!(check("shape = [1, 3, 8, 8]\nstd = [0.0]"), RecipeError::ZeroStd { index: 0 }));
        assert!(matches!(check("shape = [1, 3, 8, 8]\nscale = nan"), RecipeError::NotFinite { key: "scale", .. }));
        assert!(matches!(check("shape = [1, 3, 8, 8]\nmean = [inf]"), RecipeError::NotFinite { key: "mean", .. }));
        recipe("shape = [1, 1, 8, 8]\nchannels = \"GRAY\"\nmean = [0.5]\nstd = [0.25]").validate().unwrap();
    }

    #[test]
    fn dispatch_by_extension_and_recipe_requirements() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.NPY");
        let t = Tensor::new(vec![2], TensorData::I64(vec![7, -1])).unwrap();
        write_npy_file(&p, &t).unwrap();
        assert_eq!(load_input_file(&p, None, "x").unwrap(), t);

        let e = load_input_file(&dir.path().join("x.bmp"), None, "x").unwrap_err();
        assert!(matches!(&e, InputError::UnsupportedExtension { ext, .. } if ext == "bmp"), "{e}");
        assert!(e.to_string().contains("x.bmp"), "{e}");
        let e = load_input_file(&dir.path().join("noext"), None, "x").unwrap_err();
        assert!(matches!(e, InputError::UnsupportedExtension { .. }));
        let e = load_input_file(&dir.path().join("missing.npy"), None, "x").unwrap_err();
        assert!(matches!(e, InputError::NotFound { .. }));
        assert!(e.to_string().ends_with("missing.npy: no such file"), "{e}");

        let img = dir.path().join("a.png");
        ::image::RgbImage::from_pixel(4, 2, ::image::Rgb([10, 20, 30])).save(&img).unwrap();
        let e = load_input_file(&img, None, "pixel_values").unwrap_err();
        assert!(matches!(e, InputError::NeedsRecipe { .. }));
        assert!(e.to_string().contains("[inputs.pixel_values]") && e.to_string().contains("a.png"), "{e}");
        assert!(e.hint().unwrap().contains("shape = [1, 3, H, W]"));
        assert_eq!(e.fault(), Fault::Input);
        let bad = recipe("shape = [1, 3, 8, 8]\nchannels = \"GRAY\"");
        let e = load_input_file(&img, Some(&bad), "x").unwrap_err();
        assert!(matches!(e, InputError::RecipeInvalid { .. }), "{e}");
        assert!(e.to_string().contains("[inputs.x] cannot turn images into tensors: shape"), "{e}");
        let ok = recipe("shape = [1, 3, 2, 4]\nscale = 1.0");
        let t = load_input_file(&img, Some(&ok), "x").unwrap();
        assert_eq!(t.shape(), &[1, 3, 2, 4]);
        assert_eq!(&t.as_f32().unwrap()[..9], &[10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 20.0]);

        let bad_png = dir.path().join("bad.png");
        std::fs::write(&bad_png, b"not a png at all").unwrap();
        let e = load_input_file(&bad_png, Some(&ok), "x").unwrap_err();
        assert!(matches!(e, InputError::ImageDecode { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("{}: cannot decode image", bad_png.display())), "{e}");
        let e = load_input_file(dir.path(), None, "x").unwrap_err();
        assert!(matches!(e, InputError::UnsupportedExtension { .. }), "{e}");
        let sub = dir.path().join("d.npy");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(load_input_file(&sub, None, "x").unwrap_err(), InputError::Io { .. }));
    }

    #[test]
    fn npz_input_picks_the_member_named_after_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npz");
        let a = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
        let b = Tensor::new(vec![1], TensorData::U8(vec![9])).unwrap();
        let file = std::fs::File::create(&p).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        for (name, t) in [("a", &a), ("b", &b)] {
            zip.start_file(format!("{name}.npy"), zip::write::SimpleFileOptions::default()).unwrap();
            write_npy(&mut zip, t).unwrap();
        }
        zip.finish().unwrap();
        assert_eq!(load_input_file(&p, None, "b").unwrap(), b);
        let e = load_input_file(&p, None, "c").unwrap_err();
        assert_eq!(e.to_string(), format!("{}: npz archive has no array named \"c\" (it holds a, b)", p.display()));
    }
}
