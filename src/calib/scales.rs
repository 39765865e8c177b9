//! `scales.json`: precisiond's own record of the calibration result, the file a fleet ships instead of calibrating on
//! every device (PRODUCT.md, "decide once, roll out everywhere").
//!
//! ```json
//! {
//!   "format": "precisiond-scales/1",
//!   "method": "entropy",
//!   "activations": { "input": { "amax": 1.0, "scale": 0.007874016 } },
//!   "weights": { "conv1.weight": { "axis": 0, "scales": [0.0123, 0.0456] } }
//! }
//! ```
//!
//! Tensors are written in the order they were added (the model's order, which makes diffs readable) and read back
//! in file order; JSON object order is otherwise insignificant, so the maps are hand-serialised from ordered lists
//! rather than `BTreeMap`s (sorted) or `HashMap`s (random). f32 values are written in the shortest form that reads
//! back to the same bits. Duplicate names, unknown fields, and scales that are not finite and positive are errors
//! that name the line.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::calib::cache::{CacheError, CacheHeader, CalibrationCache};
use crate::calib::methods::{Method, MethodError};
use crate::error::{Diagnose, Fault};

/// The value of the `format` key; a reader refuses any other.
pub const SCALES_FORMAT: &str = "precisiond-scales/1";

/// The range of one activation tensor: its clipping threshold and the INT8 scale (normally `amax / 127`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationScale {
    pub amax: f32,
    pub scale: f32,
}

/// Per-channel scales of one weight tensor, along `axis` (0 for Conv/Gemm output channels, 1 for ConvTranspose).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightScales {
    pub axis: usize,
    pub scales: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScalesError {
    #[error("cannot read scales file {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write scales file {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: format is `{found}`, but precisiond reads `{SCALES_FORMAT}`", path.display())]
    Format { path: PathBuf, found: String },
    #[error("{}: {source}", path.display())]
    Method { path: PathBuf, source: MethodError },
    #[error("activation `{name}`: {problem}")]
    InvalidActivation { name: String, problem: String },
    #[error("weight `{name}`: {problem}")]
    InvalidWeight { name: String, problem: String },
    #[error("{kind} `{name}` is already in the scales file")]
    DuplicateName { kind: &'static str, name: String },
    #[error("cannot encode the scales as json")]
    Encode { source: serde_json::Error },
}

impl Diagnose for ScalesError {
    fn fault(&self) -> Fault {
        match self {
            ScalesError::Write { .. } | ScalesError::Encode { .. } => Fault::Environment,
            _ => Fault::Input,
        }
    }
}

/// Checks one value of the file; the message names the problem, the caller names the tensor.
trait Check {
    fn check(&self) -> Result<(), String>;
}

fn positive(what: &str, value: f32) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("{what} {value} is not a positive finite number"))
    }
}

impl Check for ActivationScale {
    fn check(&self) -> Result<(), String> {
        if !(self.amax.is_finite() && self.amax.is_sign_positive()) {
            return Err(format!("amax {} is not a finite number >= 0", self.amax));
        }
        positive("scale", self.scale)
    }
}

impl Check for WeightScales {
    fn check(&self) -> Result<(), String> {
        for (channel, &scale) in self.scales.iter().enumerate() {
            positive(&format!("scale of channel {channel}"), scale)?;
        }
        Ok(())
    }
}

/// A JSON object kept in insertion order, with unique, checked values.
#[derive(Clone, Debug, PartialEq)]
struct Ordered<V> {
    entries: Vec<(String, V)>,
    index: HashMap<String, usize>,
}

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered { entries: Vec::new(), index: HashMap::new() }
    }
}

impl<V: Check> Ordered<V> {
    /// Err(None) for a duplicate, Err(Some(problem)) for a bad value.
    fn insert(&mut self, name: String, value: V) -> Result<(), Option<String>> {
        if self.index.contains_key(&name) {
            return Err(None);
        }
        value.check().map_err(Some)?;
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push((name, value));
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&V> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }
}

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (name, value) in &self.entries {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de> + Check> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de> + Check> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of tensor names")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Ordered<V>, A::Error> {
                let mut ordered = Ordered::default();
                while let Some((name, value)) = access.next_entry::<String, V>()? {
                    // Raised here, inside the parser, so that serde_json adds the line and column.
                    ordered.insert(name.clone(), value).map_err(|problem| match problem {
                        None => de::Error::custom(format_args!("tensor `{name}` appears twice")),
                        Some(problem) => de::Error::custom(format_args!("tensor `{name}`: {problem}")),
                    })?;
                }
                Ok(ordered)
            }
        }

        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

/// The file as serde sees it when reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// Already checked through [`FormatOnly`]; listed so that it is not an unknown field.
    #[allow(dead_code)]
    format: String,
    method: String,
    activations: Ordered<ActivationScale>,
    weights: Ordered<WeightScales>,
}

/// Read first, alone, so that a file of another format version is named as such instead of failing on a field.
#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

/// The contents of a `scales.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalesFile {
    method: Method,
    activations: Ordered<ActivationScale>,
    weights: Ordered<WeightScales>,
}

impl ScalesFile {
    pub fn new(method: Method) -> ScalesFile {
        ScalesFile { method, activations: Ordered::default(), weights: Ordered::default() }
    }

    /// The method that produced the activation ranges.
    pub fn method(&self) -> Method {
        self.method
    }

    pub fn add_activation(&mut self, name: impl Into<String>, scale: ActivationScale) -> Result<(), ScalesError> {
        let name = name.into();
        self.activations.insert(name.clone(), scale).map_err(|problem| match problem {
            None => ScalesError::DuplicateName { kind: "activation", name },
            Some(problem) => ScalesError::InvalidActivation { name, problem },
        })
    }

    pub fn add_weight(&mut self, name: impl Into<String>, scales: WeightScales) -> Result<(), ScalesError> {
        let name = name.into();
        self.weights.insert(name.clone(), scales).map_err(|problem| match problem {
            None => ScalesError::DuplicateName { kind: "weight", name },
            Some(problem) => ScalesError::InvalidWeight { name, problem },
        })
    }

    /// Activation ranges in file (or insertion) order.
    pub fn activations(&self) -> &[(String, ActivationScale)] {
        &self.activations.entries
    }

    /// Weight scales in file (or insertion) order.
    pub fn weights(&self) -> &[(String, WeightScales)] {
        &self.weights.entries
    }

    pub fn activation(&self, name: &str) -> Option<&ActivationScale> {
        self.activations.get(name)
    }

    pub fn weight(&self, name: &str) -> Option<&WeightScales> {
        self.weights.get(name)
    }

    /// Pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> Result<String, ScalesError> {
        let raw = RawRef {
            format: SCALES_FORMAT,
            method: self.method.to_string(),
            activations: &self.activations,
            weights: &self.weights,
        };
        let mut text = serde_json::to_string_pretty(&raw).map_err(|source| ScalesError::Encode { source })?;
        text.push('\n');
        Ok(text)
    }

    /// Parses a `scales.json`; `path` only names the file in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<ScalesFile, ScalesError> {
        let json = |source| ScalesError::Json { path: path.to_owned(), source };
        let FormatOnly { format } = serde_json::from_str(text).map_err(json)?;
        if format != SCALES_FORMAT {
            return Err(ScalesError::Format { path: path.to_owned(), found: format });
        }
        let raw: Raw = serde_json::from_str(text).map_err(json)?;
        let method = raw.method.parse().map_err(|source| ScalesError::Method { path: path.to_owned(), source })?;
        Ok(ScalesFile { method, activations: raw.activations, weights: raw.weights })
    }

    pub fn read(path: &Path) -> Result<ScalesFile, ScalesError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScalesError::Read { path: path.to_owned(), source })?;
        ScalesFile::from_json(&text, path)
    }

    /// Writes the file atomically (a reader never sees half of it).
    pub fn write(&self, path: &Path) -> Result<(), ScalesError> {
        crate::model::write_atomically(path, self.to_json()?.as_bytes())
            .map_err(|source| ScalesError::Write { path: path.to_owned(), source })
    }

    /// The activation scales as a TensorRT calibration cache, in the same order.
    pub fn to_calibration_cache(&self, header: CacheHeader) -> Result<CalibrationCache, CacheError> {
        let mut cache = CalibrationCache::new(header);
        for (name, scale) in self.activations() {
            cache.push(name.clone(), scale.scale)?;
        }
        Ok(cache)
    }
}

/// [`Raw`] by reference, so that writing does not clone every scale.
#[derive(Serialize)]
struct RawRef<'a> {
    format: &'a str,
    method: String,
    activations: &'a Ordered<ActivationScale>,
    weights: &'a Ordered<WeightScales>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::cache::{Algorithm, TrtVersion};
    use crate::calib::methods::int8_scale;
    use crate::calib::test_support::Rng;

    fn sample() -> ScalesFile {
        let mut file = ScalesFile::new(Method::Percentile(99.9));
        file.add_activation("input", ActivationScale { amax: 1.0, scale: int8_scale(1.0) }).unwrap();
        file.add_activation("onnx::MatMul_398_output", ActivationScale { amax: 0.0, scale: int8_scale(0.0) }).unwrap();
        file.add_activation("/0/model.0/conv/Conv_output_0", ActivationScale { amax: 29.5, scale: 29.5 / 127.0 })
            .unwrap();
        file.add_weight("conv1.weight", WeightScales { axis: 0, scales: vec![0.01, 3.0e-7, 1.5] }).unwrap();
        file.add_weight("deconv.weight", WeightScales { axis: 1, scales: vec![] }).unwrap();
        file
    }

    #[test]
    fn json_round_trip_is_bit_exact_and_ordered() {
        let file = sample();
        let text = file.to_json().unwrap();
        assert!(text.starts_with("{\n  \"format\": \"precisiond-scales/1\",\n  \"method\": \"percentile:99.9\",\n"));
        // Insertion order, not alphabetical.
        assert!(text.find("\"input\"").unwrap() < text.find("\"onnx::MatMul_398_output\"").unwrap());
        assert!(text.find("\"onnx::MatMul_398_output\"").unwrap() < text.find("\"/0/model.0").unwrap());
        let back = ScalesFile::from_json(&text, Path::new("scales.json")).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.to_json().unwrap(), text);
        assert_eq!(back.activation("input").unwrap().scale.to_bits(), (1.0f32 / 127.0).to_bits());
        assert_eq!(back.weight("conv1.weight").unwrap().axis, 0);
    }

    #[test]
    fn arbitrary_f32_values_survive_json() {
        let mut rng = Rng::new(17);
        let mut file = ScalesFile::new(Method::Entropy);
        let mut scales = Vec::new();
        while scales.len() < 20_000 {
            let value = f32::from_bits(rng.next_u64() as u32 & 0x7fff_ffff);
            if value.is_finite() && value > 0.0 {
                scales.push(value);
            }
        }
        file.add_weight("w", WeightScales { axis: 0, scales: scales.clone() }).unwrap();
        let back = ScalesFile::from_json(&file.to_json().unwrap(), Path::new("s.json")).unwrap();
        let read = &back.weight("w").unwrap().scales;
        assert!(read.iter().zip(&scales).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn file_round_trip_and_cache_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scales.json");
        let file = sample();
        file.write(&path).unwrap();
        assert_eq!(ScalesFile::read(&path).unwrap(), file);
        let cache = file
            .to_calibration_cache(CacheHeader::new(TrtVersion::new(10, 3, 0), Algorithm::EntropyCalibration2))
            .unwrap();
        assert_eq!(
            cache.to_text(),
            format!(
                "TRT-100300-EntropyCalibration2\ninput: 3c010204\nonnx::MatMul_398_output: 33800000\n\
                 /0/model.0/conv/Conv_output_0: {:x}\n",
                (29.5f32 / 127.0).to_bits()
            )
        );
    }

    #[test]
    fn bad_files_are_errors_that_name_the_file_and_line() {
        let path = Path::new("scales.json");
        let cases: [(&str, &str); 8] = [
            ("{", "scales.json: EOF while parsing"),
            (r#"{"format": "precisiond-scales/2"}"#, "scales.json: format is `precisiond-scales/2`"),
            (
                r#"{"format": "precisiond-scales/1", "method": "kl", "activations": {}, "weights": {}}"#,
                "scales.json: unknown calibration method `kl`",
            ),
            (
                "{\"format\": \"precisiond-scales/1\", \"method\": \"mse\",\n\"activations\": {\"a\": {\"amax\": 1, \"scale\": 0.1},\n\"a\": {\"amax\": 1, \"scale\": 0.1}}, \"weights\": {}}",
                "scales.json: tensor `a` appears twice at line 3",
            ),
            (
                r#"{"format": "precisiond-scales/1", "method": "mse", "activations": {"a": {"amax": 1, "scale": -0.1}}, "weights": {}}"#,
                "scales.json: tensor `a`: scale -0.1 is not a positive finite number at line 1",
            ),
            (
                r#"{"format": "precisiond-scales/1", "method": "mse", "activations": {"a": {"amax": 1, "scale": null}}, "weights": {}}"#,
                "scales.json: invalid type: null",
            ),
            (
                r#"{"format": "precisiond-scales/1", "method": "mse", "activations": {}, "weights": {"w": {"axis": 0, "scales": [1, 0]}}}"#,
                "scales.json: tensor `w`: scale of channel 1 0 is not a positive finite number",
            ),
            (
                r#"{"format": "precisiond-scales/1", "method": "mse", "activations": {}, "weights": {}, "extra": 1}"#,
                "scales.json: unknown field `extra`",
            ),
        ];
        for (text, expected) in cases {
            let message = ScalesFile::from_json(text, path).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{text}: {message}");
        }
    }

    #[test]
    fn adding_bad_values_is_an_error() {
        let mut file = ScalesFile::new(Method::MinMax);
        let nan = ActivationScale { amax: f32::NAN, scale: 1.0 };
        assert!(matches!(file.add_activation("a", nan), Err(ScalesError::InvalidActivation { .. })));
        let zero = ActivationScale { amax: 0.0, scale: 0.0 };
        assert!(matches!(file.add_activation("a", zero), Err(ScalesError::InvalidActivation { .. })));
        file.add_activation("a", ActivationScale { amax: 0.0, scale: 1.0 }).unwrap();
        let again = ActivationScale { amax: 0.0, scale: 1.0 };
        assert!(matches!(file.add_activation("a", again), Err(ScalesError::DuplicateName { .. })));
        let inf = WeightScales { axis: 0, scales: vec![f32::INFINITY] };
        assert!(matches!(file.add_weight("w", inf), Err(ScalesError::InvalidWeight { .. })));
        assert_eq!((file.activations().len(), file.weights().len()), (1, 0));
    }
}
