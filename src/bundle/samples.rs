//! Sample files (calib/, eval/) turned into model inputs, one sample at a time.
//!
//! Rules, per file:
//! - **image** (`.png`, `.jpg`, `.jpeg`): one sample through the `[inputs.NAME]` recipe; single-input models only.
//! - **`.npz`**: one sample; one array per model input, named after it (other arrays are ignored: a file may carry
//!   labels). Each array has exactly the input's shape.
//! - **`.npy`**: single-input models only. The input's shape is one sample; `[K, rest…]` for an input of
//!   `[1, rest…]` is K samples, one per leading index (a whole data set in one file, as numpy users keep them).
//!
//! The array's dtype must be the input's (float32 where the model does not say). `crate::inputs::npy` reads
//! float64 and float16 arrays as float32 (narrowed, or widened exactly) for every input path; this follows it, so a
//! float64 array feeds a float32 input. Every element must be finite.
//!
//! Files are read when their turn comes: an image or `.npz` file per sample, an `.npy` file of K samples once for
//! its K samples (so it is held in memory while they are served). [`Samples::total`] reads only `.npy` headers.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Diagnose, Fault};
use crate::exec::InputDecl;
use crate::inputs::{self, ImageRecipe, InputError};
use crate::tensor::{DType, Tensor, TensorData, shape_string};

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{}: unsupported sample file; expected .npy, .npz, .png, .jpg or .jpeg", path.display())]
    Extension { path: PathBuf },
    #[error(
        "{}: an image feeds a single-input model, and this model has {} inputs ({})",
        path.display(), inputs.len(), inputs.join(", ")
    )]
    ImageNeedsSingleInput { path: PathBuf, inputs: Vec<String> },
    #[error(
        "{}: an .npy file feeds a single-input model, and this model has {} inputs ({})",
        path.display(), inputs.len(), inputs.join(", ")
    )]
    NpyNeedsSingleInput { path: PathBuf, inputs: Vec<String> },
    #[error("{}: shape {} does not fit input `{input}`: expected {}", source_name(path, member), shape_string(found), expected_shapes(expected, *batch_ok))]
    Shape {
        path: PathBuf,
        member: Option<String>,
        input: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        batch_ok: bool,
    },
    #[error("{}: dtype {found} does not fit input `{input}`, which is {expected}", source_name(path, member))]
    DType { path: PathBuf, member: Option<String>, input: String, found: DType, expected: DType },
    #[error("{}: shape {} holds no samples", path.display(), shape_string(shape))]
    NoSamples { path: PathBuf, shape: Vec<usize> },
    #[error("{}: element {index:?} is {value}; samples must be finite", source_name(path, member))]
    NonFinite { path: PathBuf, member: Option<String>, index: Vec<usize>, value: f32 },
}

fn source_name(path: &Path, member: &Option<String>) -> String {
    match member {
        Some(m) => format!("{} (array {m})", path.display()),
        None => path.display().to_string(),
    }
}

fn expected_shapes(expected: &[usize], batch_ok: bool) -> String {
    let one = shape_string(expected);
    if batch_ok { format!("{one}, or Kx{} for K samples", shape_string(&expected[1..])) } else { one }
}

impl Diagnose for SampleError {
    fn fault(&self) -> Fault {
        match self {
            SampleError::Input(e) => e.fault(),
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SampleError::Input(e) => e.hint(),
            SampleError::ImageNeedsSingleInput { .. } | SampleError::NpyNeedsSingleInput { .. } => {
                Some("give a multi-input model .npz samples: np.savez(path, NAME=array, ...) per model input".into())
            }
            SampleError::Extension { .. } => {
                Some("calib/ and eval/ hold .npy, .npz, PNG or JPEG samples; move other files elsewhere".into())
            }
            SampleError::DType { expected, .. } => Some(format!("save the array as {expected}, e.g. arr.astype(...)")),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    Npy,
    Npz,
    Image,
}

/// The kind of a sample file by its extension (case-insensitive), `None` for anything else.
pub fn sample_kind(path: &Path) -> Option<SampleKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Some(SampleKind::Npy),
        "npz" => Some(SampleKind::Npz),
        "png" | "jpg" | "jpeg" => Some(SampleKind::Image),
        _ => None,
    }
}

/// A stream of samples: each item holds one tensor per model input, in the model's input order.
pub struct Samples {
    files: Vec<PathBuf>,
    inputs: Vec<(InputDecl, Vec<usize>)>,
    recipes: BTreeMap<String, ImageRecipe>,
    limit: Option<usize>,
    next_file: usize,
    /// An `.npy` file of K samples being served.
    batch: Option<Batch>,
    produced: usize,
    /// After an error the stream ends: the caller reports the error, not what follows.
    done: bool,
}

struct Batch {
    path: PathBuf,
    tensor: Tensor,
    next: usize,
}

impl Samples {
    /// `inputs`: the model's inputs with the concrete shapes to feed (see `Spec::input_shapes`); `recipes`: the
    /// spec's `[inputs.NAME]` tables, for images.
    pub fn new(
        files: Vec<PathBuf>,
        inputs: &[(InputDecl, Vec<usize>)],
        recipes: &BTreeMap<String, ImageRecipe>,
    ) -> Samples {
        Samples {
            files,
            inputs: inputs.to_vec(),
            recipes: recipes.clone(),
            limit: None,
            next_file: 0,
            batch: None,
            produced: 0,
            done: false,
        }
    }

    /// Produce at most `limit` samples (the spec's `calibration.samples`).
    pub fn with_limit(mut self, limit: usize) -> Samples {
        self.limit = Some(limit);
        self
    }

    /// How many samples the stream gives (limit included), reading `.npy` headers only. Also checks what can be
    /// checked without the data: extensions, input counts, recipes, `.npy` shapes and dtypes. (Not named `count`:
    /// on an owned stream that name resolves to `Iterator::count`, which decodes every sample.)
    pub fn total(&self) -> Result<usize, SampleError> {
        let limit = self.limit.unwrap_or(usize::MAX);
        let mut total = 0usize;
        for path in &self.files {
            if total >= limit {
                break;
            }
            let n = match self.kind(path)? {
                SampleKind::Image => {
                    let (decl, _) = self.single_input(path, SampleKind::Image)?;
                    let recipe = self
                        .recipes
                        .get(&decl.name)
                        .ok_or_else(|| InputError::NeedsRecipe { path: path.clone(), input: decl.name.clone() })?;
                    recipe.validate().map_err(|source| InputError::RecipeInvalid {
                        path: path.clone(),
                        input: decl.name.clone(),
                        source,
                    })?;
                    image_header(path)?;
                    1
                }
                SampleKind::Npz => {
                    self.npz_members(path)?;
                    1
                }
                SampleKind::Npy => {
                    let (shape, dtype) = match npy_header(path) {
                        Some(header) => header,
                        // Whatever the quick look could not make out, the full reader explains.
                        None => {
                            let t = inputs::read_npy(path)?;
                            (t.shape().to_vec(), Some(t.dtype()))
                        }
                    };
                    let (decl, expected) = self.single_input(path, SampleKind::Npy)?;
                    if let Some(found) = dtype {
                        check_dtype(path, None, decl, found)?;
                    }
                    samples_in(path, &shape, decl, expected)?
                }
            };
            total = total.saturating_add(n);
        }
        Ok(total.min(limit))
    }

    /// Every input has its array in the archive, from the zip directory alone (nothing is decompressed).
    fn npz_members(&self, path: &Path) -> Result<(), SampleError> {
        inputs::check_readable(path)?;
        let file = File::open(path).map_err(|source| InputError::Io { path: path.to_owned(), source })?;
        let archive = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|source| InputError::NpzArchive { path: path.to_owned(), source })?;
        let available: Vec<String> =
            archive.file_names().filter_map(|n| n.ok()?.strip_suffix(".npy").map(str::to_owned)).collect();
        for (decl, _) in &self.inputs {
            if !available.contains(&decl.name) {
                let (path, name, available) = (path.to_owned(), decl.name.clone(), available.clone());
                return Err(InputError::NpzMissingArray { path, name, available }.into());
            }
        }
        Ok(())
    }

    fn kind(&self, path: &Path) -> Result<SampleKind, SampleError> {
        sample_kind(path).ok_or_else(|| SampleError::Extension { path: path.to_owned() })
    }

    fn single_input(&self, path: &Path, kind: SampleKind) -> Result<(&InputDecl, &[usize]), SampleError> {
        match self.inputs.as_slice() {
            [(decl, shape)] => Ok((decl, shape)),
            many => {
                let path = path.to_owned();
                let inputs = many.iter().map(|(d, _)| d.name.clone()).collect();
                Err(match kind {
                    SampleKind::Image => SampleError::ImageNeedsSingleInput { path, inputs },
                    _ => SampleError::NpyNeedsSingleInput { path, inputs },
                })
            }
        }
    }

    fn next_sample(&mut self) -> Option<Result<Vec<Tensor>, SampleError>> {
        if let Some(batch) = &mut self.batch {
            let k = batch.tensor.shape()[0];
            if batch.next < k {
                let index = batch.next;
                batch.next += 1;
                let sample = take_leading(&batch.tensor, index);
                let path = batch.path.clone();
                return Some(finite(&path, None, sample, &[index]).map(|t| vec![t]));
            }
            self.batch = None;
        }
        let path = self.files.get(self.next_file)?.clone();
        self.next_file += 1;
        Some(self.load(&path))
    }

    fn load(&mut self, path: &Path) -> Result<Vec<Tensor>, SampleError> {
        match self.kind(path)? {
            SampleKind::Image => {
                let (decl, expected) = self.single_input(path, SampleKind::Image)?;
                let tensor = inputs::load_input_file(path, self.recipes.get(&decl.name), &decl.name)?;
                check_dtype(path, None, decl, tensor.dtype())?;
                check_shape(path, None, decl, expected, tensor.shape(), false)?;
                Ok(vec![finite(path, None, tensor, &[])?])
            }
            SampleKind::Npz => {
                let mut arrays = inputs::load_npz(path)?;
                let available: Vec<String> = arrays.iter().map(|(n, _)| n.clone()).collect();
                let mut out = Vec::with_capacity(self.inputs.len());
                for (decl, expected) in &self.inputs {
                    let at = arrays.iter().position(|(n, _)| *n == decl.name).ok_or_else(|| {
                        InputError::NpzMissingArray {
                            path: path.to_owned(),
                            name: decl.name.clone(),
                            available: available.clone(),
                        }
                    })?;
                    let (member, tensor) = arrays.swap_remove(at);
                    let member = Some(member);
                    check_dtype(path, member.clone(), decl, tensor.dtype())?;
                    check_shape(path, member.clone(), decl, expected, tensor.shape(), false)?;
                    out.push(finite(path, member, tensor, &[])?);
                }
                Ok(out)
            }
            SampleKind::Npy => {
                let (decl, expected) = self.single_input(path, SampleKind::Npy)?;
                let (decl, expected) = (decl.clone(), expected.to_vec());
                let tensor = inputs::read_npy(path)?;
                check_dtype(path, None, &decl, tensor.dtype())?;
                samples_in(path, tensor.shape(), &decl, &expected)?;
                if tensor.shape() == expected.as_slice() {
                    return Ok(vec![finite(path, None, tensor, &[])?]);
                }
                let sample = take_leading(&tensor, 0);
                let sample = finite(path, None, sample, &[0])?;
                self.batch = Some(Batch { path: path.to_owned(), tensor, next: 1 });
                Ok(vec![sample])
            }
        }
    }
}

impl Iterator for Samples {
    type Item = Result<Vec<Tensor>, SampleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.limit.is_some_and(|l| self.produced >= l) {
            return None;
        }
        let item = self.next_sample()?;
        match &item {
            Ok(_) => self.produced += 1,
            Err(_) => self.done = true,
        }
        Some(item)
    }
}

/// How many samples an `.npy` array of `shape` holds for an input of `expected`.
fn samples_in(path: &Path, shape: &[usize], decl: &InputDecl, expected: &[usize]) -> Result<usize, SampleError> {
    if shape == expected {
        return Ok(1);
    }
    let batch_ok = expected.first() == Some(&1);
    if batch_ok && shape.len() == expected.len() && shape[1..] == expected[1..] {
        if shape[0] == 0 {
            return Err(SampleError::NoSamples { path: path.to_owned(), shape: shape.to_vec() });
        }
        return Ok(shape[0]);
    }
    Err(SampleError::Shape {
        path: path.to_owned(),
        member: None,
        input: decl.name.clone(),
        found: shape.to_vec(),
        expected: expected.to_vec(),
        batch_ok,
    })
}

fn check_shape(
    path: &Path,
    member: Option<String>,
    decl: &InputDecl,
    expected: &[usize],
    found: &[usize],
    batch_ok: bool,
) -> Result<(), SampleError> {
    if found == expected {
        return Ok(());
    }
    Err(SampleError::Shape {
        path: path.to_owned(),
        member,
        input: decl.name.clone(),
        found: found.to_vec(),
        expected: expected.to_vec(),
        batch_ok,
    })
}

fn check_dtype(path: &Path, member: Option<String>, decl: &InputDecl, found: DType) -> Result<(), SampleError> {
    // The executor feeds float32 where the model does not declare a type it knows; so does this.
    let expected = decl.dtype.unwrap_or(DType::F32);
    if found == expected {
        return Ok(());
    }
    Err(SampleError::DType { path: path.to_owned(), member, input: decl.name.clone(), found, expected })
}

/// `tensor` unchanged if finite; else the first bad element, indexed in the file's array (`lead` is the sample's
/// position in a K-sample file).
fn finite(path: &Path, member: Option<String>, tensor: Tensor, lead: &[usize]) -> Result<Tensor, SampleError> {
    let Some(flat) = tensor.first_non_finite() else {
        return Ok(tensor);
    };
    let value = tensor.as_f32().map_or(f32::NAN, |v| v[flat]);
    // The sample of a K-sample file has the file's shape with a leading 1: drop it to index the file.
    let shape = if lead.is_empty() { tensor.shape() } else { &tensor.shape()[1..] };
    let mut index = vec![0; shape.len()];
    let mut rest = flat;
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            index[i] = rest % d;
            rest /= d;
        }
    }
    let index = lead.iter().copied().chain(index).collect();
    Err(SampleError::NonFinite { path: path.to_owned(), member, index, value })
}

/// Sample `k` of a `[K, rest…]` array, as `[1, rest…]`.
fn take_leading(tensor: &Tensor, k: usize) -> Tensor {
    let mut shape = tensor.shape().to_vec();
    let per: usize = shape[1..].iter().product();
    shape[0] = 1;
    let range = k * per..(k + 1) * per;
    let data = match tensor.data() {
        TensorData::F32(v) => TensorData::F32(v[range].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[range].to_vec()),
        TensorData::I32(v) => TensorData::I32(v[range].to_vec()),
        TensorData::U8(v) => TensorData::U8(v[range].to_vec()),
    };
    Tensor::new(shape, data).expect("a slice of whole samples")
}

/// Reads an image's header (format and size), not its pixels: a file that is no image is found out early.
fn image_header(path: &Path) -> Result<(), SampleError> {
    let reader = ::image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| InputError::Io { path: path.to_owned(), source })?;
    let (width, height) =
        reader.into_dimensions().map_err(|source| InputError::ImageDecode { path: path.to_owned(), source })?;
    if width == 0 || height == 0 {
        return Err(InputError::EmptyImage { path: path.to_owned(), width, height }.into());
    }
    Ok(())
}

/// The shape and dtype an `.npy` file announces, from its header alone; `None` when the header is anything but
/// plain (the full reader then gives the precise reason).
fn npy_header(path: &Path) -> Option<(Vec<usize>, Option<DType>)> {
    crate::inputs::npy::read_npy_header(path).ok().map(|(shape, dtype)| (shape, Some(dtype)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::write_npy_file;

    fn decl(dims: &[usize], dtype: DType) -> (InputDecl, Vec<usize>) {
        (
            InputDecl { name: "x".into(), dtype: Some(dtype), dims: dims.iter().map(|&d| Some(d)).collect() },
            dims.to_vec(),
        )
    }

    fn npy(dir: &Path, name: &str, shape: Vec<usize>, values: Vec<f32>) -> PathBuf {
        let p = dir.join(name);
        write_npy_file(&p, &Tensor::from_f32(shape, values).unwrap()).unwrap();
        p
    }

    #[test]
    fn header_peek_agrees_with_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = npy(dir.path(), "a.npy", vec![5, 1, 2, 2], vec![0.5; 20]);
        assert_eq!(npy_header(&p), Some((vec![5, 1, 2, 2], Some(DType::F32))));
        let q = dir.path().join("b.npy");
        write_npy_file(&q, &Tensor::new(vec![3], TensorData::I64(vec![1, 2, 3])).unwrap()).unwrap();
        assert_eq!(npy_header(&q), Some((vec![3], Some(DType::I64))));
        let s = dir.path().join("s.npy");
        write_npy_file(&s, &Tensor::from_f32(vec![], vec![1.0]).unwrap()).unwrap();
        assert_eq!(npy_header(&s), Some((vec![], Some(DType::F32))));
        std::fs::write(dir.path().join("c.npy"), b"not npy").unwrap();
        assert_eq!(npy_header(&dir.path().join("c.npy")), None);
    }

    #[test]
    fn k_samples_from_one_npy_stream_in_order_and_respect_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let a = npy(dir.path(), "a.npy", vec![3, 1, 2, 2], values);
        let b = npy(dir.path(), "b.npy", vec![1, 1, 2, 2], vec![9.0; 4]);
        let inputs = [decl(&[1, 1, 2, 2], DType::F32)];
        let samples = Samples::new(vec![a.clone(), b.clone()], &inputs, &BTreeMap::new());
        assert_eq!(samples.total().unwrap(), 4);
        let got: Vec<Vec<Tensor>> = samples.collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1][0].shape(), &[1, 1, 2, 2]);
        assert_eq!(got[1][0].as_f32().unwrap(), &[4.0, 5.0, 6.0, 7.0]);
        assert_eq!(got[3][0].as_f32().unwrap(), &[9.0; 4]);
        let limited = Samples::new(vec![a, b], &inputs, &BTreeMap::new()).with_limit(2);
        assert_eq!(limited.total().unwrap(), 2);
        assert_eq!(limited.total().unwrap(), 2);
        assert_eq!(Samples::new(vec![], &inputs, &BTreeMap::new()).with_limit(2).total().unwrap(), 0);
    }

    #[test]
    fn bad_arrays_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = [decl(&[1, 1, 2, 2], DType::F32)];
        let first = |p: PathBuf| Samples::new(vec![p], &inputs, &BTreeMap::new()).next().unwrap().unwrap_err();
        let p = npy(dir.path(), "wrong.npy", vec![2, 2, 2], vec![0.0; 8]);
        let e = first(p.clone());
        assert_eq!(
            e.to_string(),
            format!("{}: shape 2x2x2 does not fit input `x`: expected 1x1x2x2, or Kx1x2x2 for K samples", p.display())
        );
        assert_eq!(Samples::new(vec![p], &inputs, &BTreeMap::new()).total().unwrap_err().to_string(), e.to_string());
        let mut v = vec![0.0; 12];
        v[9] = f32::NAN;
        let p = npy(dir.path(), "nan.npy", vec![3, 1, 2, 2], v);
        let mut s = Samples::new(vec![p.clone()], &inputs, &BTreeMap::new());
        assert!(s.next().unwrap().is_ok() && s.next().unwrap().is_ok());
        let e = s.next().unwrap().unwrap_err();
        assert_eq!(e.to_string(), format!("{}: element [2, 0, 0, 1] is NaN; samples must be finite", p.display()));
        assert!(s.next().is_none(), "the stream ends after an error");
        let p = npy(dir.path(), "inf.npy", vec![1, 1, 2, 2], vec![0.0, 0.0, f32::INFINITY, 0.0]);
        assert!(first(p).to_string().ends_with("element [0, 0, 1, 0] is inf; samples must be finite"));
        let p = dir.path().join("ints.npy");
        write_npy_file(&p, &Tensor::new(vec![1, 1, 2, 2], TensorData::I32(vec![0; 4])).unwrap()).unwrap();
        assert!(first(p).to_string().ends_with("dtype int32 does not fit input `x`, which is float32"));
        let p = npy(dir.path(), "empty.npy", vec![0, 1, 2, 2], vec![]);
        assert!(first(p).to_string().ends_with("shape 0x1x2x2 holds no samples"));
        let p = dir.path().join("notes.txt");
        std::fs::write(&p, "x").unwrap();
        assert!(matches!(first(p), SampleError::Extension { .. }));
        // A model whose input has batch 2 takes exactly that shape: no K-sample reading.
        let two = [decl(&[2, 2], DType::F32)];
        let p = npy(dir.path(), "four.npy", vec![4, 2], vec![0.0; 8]);
        let e = Samples::new(vec![p], &two, &BTreeMap::new()).total().unwrap_err();
        assert!(e.to_string().ends_with("shape 4x2 does not fit input `x`: expected 2x2"), "{e}");
    }
}
