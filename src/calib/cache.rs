//! The TensorRT INT8 calibration cache: a text file TensorRT (≤ 10.x, implicit quantization) reads through
//! `IInt8Calibrator::readCalibrationCache` or `trtexec --calib=FILE`.
//!
//! ```text
//! TRT-8502-EntropyCalibration2
//! input: 3c010a16
//! (Unnamed Layer* 371) [Shuffle]_output: 3c010a14
//! onnx::MatMul_398_output: 3b1df5a4
//! ```
//!
//! - Line 1: `TRT-<version>-<algorithm>`; the version is `NV_TENSORRT_VERSION` (8.x: `major*1000 + minor*100 +
//!   patch`, 10.x on: `major*10000 + minor*100 + patch`), see [`TrtVersion`].
//! - Then one `<tensor name>: <hex>` line per tensor. The hex is the IEEE-754 bit pattern of the f32 *scale*
//!   (`amax / 127`) as a big-endian integer, lower-case, without zero padding (`0` for a zero scale, `800000` for
//!   2^-126), so 1 to 8 digits.
//! - Names are kept byte for byte. Real names contain spaces, `*`, brackets and `::` (`onnx::MatMul_398_output`),
//!   so the name is everything before the *last* `": "`; the hex never contains `:` or a space.
//!
//! The reader also accepts `\r\n` line ends and blank lines (a cache that went through an editor), upper-case hex,
//! and the four algorithm names; it rejects anything it cannot map to exactly one scale per name: bad hex, more
//! than 8 digits, negative, infinite or NaN scales, duplicate names. The writer emits exactly the format above,
//! one `\n` after every line, in the order the tensors were pushed.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Diagnose, Fault};

/// A TensorRT version as the cache header encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrtVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl TrtVersion {
    pub fn new(major: u32, minor: u32, patch: u32) -> TrtVersion {
        TrtVersion { major, minor, patch }
    }

    /// Decodes `NV_TENSORRT_VERSION`: numbers from 100000 on use the 10.x scheme, smaller ones the 7.x/8.x scheme.
    pub fn from_number(number: u32) -> TrtVersion {
        if number >= 100_000 {
            TrtVersion::new(number / 10_000, number / 100 % 100, number % 100)
        } else {
            TrtVersion::new(number / 1000, number / 100 % 10, number % 100)
        }
    }

    /// `NV_TENSORRT_VERSION`: 8.5.2 → 8502, 10.3.0 → 100300.
    pub fn number(&self) -> u32 {
        if self.major >= 10 {
            self.major * 10_000 + self.minor * 100 + self.patch
        } else {
            self.major * 1000 + self.minor * 100 + self.patch
        }
    }
}

impl fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The calibrator named in the header (`CalibrationAlgoType` in TensorRT's `NvInfer.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EntropyCalibration2,
    EntropyCalibration,
    MinMaxCalibration,
    /// The percentile-style legacy calibrator; its exact header string is unconfirmed from real files.
    LegacyCalibration,
}

impl Algorithm {
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::EntropyCalibration2 => "EntropyCalibration2",
            Algorithm::EntropyCalibration => "EntropyCalibration",
            Algorithm::MinMaxCalibration => "MinMaxCalibration",
            Algorithm::LegacyCalibration => "LegacyCalibration",
        }
    }
}

impl FromStr for Algorithm {
    type Err = ();

    fn from_str(text: &str) -> Result<Algorithm, ()> {
        [
            Algorithm::EntropyCalibration2,
            Algorithm::EntropyCalibration,
            Algorithm::MinMaxCalibration,
            Algorithm::LegacyCalibration,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
        .ok_or(())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Line 1 of a cache: `TRT-<version number>-<algorithm>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheHeader {
    /// `NV_TENSORRT_VERSION` as written, e.g. 8502 or 101000.
    pub version: u32,
    pub algorithm: Algorithm,
}

impl CacheHeader {
    pub fn new(version: TrtVersion, algorithm: Algorithm) -> CacheHeader {
        CacheHeader { version: version.number(), algorithm }
    }

    pub fn trt_version(&self) -> TrtVersion {
        TrtVersion::from_number(self.version)
    }
}

impl fmt::Display for CacheHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TRT-{}-{}", self.version, self.algorithm)
    }
}

/// One tensor's scale (`amax / 127`), in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntry {
    pub name: String,
    pub scale: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read calibration cache {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write calibration cache {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: line {line} is not valid utf-8", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{}: the file is empty; a calibration cache starts with a `TRT-<version>-<algorithm>` line", path.display())]
    Empty { path: PathBuf },
    #[error("{}: line 1 is `{found}`, not a `TRT-<version>-<algorithm>` header", path.display())]
    BadHeader { path: PathBuf, found: String },
    #[error("{}: line 1 names calibration algorithm `{name}`, which is not one TensorRT writes", path.display())]
    UnknownAlgorithm { path: PathBuf, name: String },
    #[error("{}: line {line} is `{found}`, not `<tensor name>: <hex scale>`", path.display())]
    BadEntry { path: PathBuf, line: usize, found: String },
    #[error("{}: line {line}: `{hex}` is not a scale of 1 to 8 hex digits", path.display())]
    BadHex { path: PathBuf, line: usize, hex: String },
    #[error("{}: line {line}: tensor `{name}` has scale {scale}; scales must be finite and not negative", path.display())]
    BadScale { path: PathBuf, line: usize, name: String, scale: f32 },
    #[error("{}: line {line}: tensor `{name}` already has a scale on line {first}", path.display())]
    Duplicate { path: PathBuf, line: usize, first: usize, name: String },
    #[error("tensor name `{name}` cannot be written to a calibration cache: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(
        "tensor `{name}` has scale {scale}, which a calibration cache cannot carry (must be finite and not negative)"
    )]
    InvalidScale { name: String, scale: f32 },
    #[error("tensor `{name}` is already in the calibration cache")]
    DuplicateName { name: String },
}

impl Diagnose for CacheError {
    fn fault(&self) -> Fault {
        match self {
            CacheError::Write { .. } => Fault::Environment,
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CacheError::BadHeader { .. } | CacheError::Empty { .. } => Some(
                "a TensorRT calibration cache starts with a line like `TRT-8502-EntropyCalibration2`; \
                 is this the right file?"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// A calibration cache: header and per-tensor scales in a fixed order.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationCache {
    header: CacheHeader,
    entries: Vec<CacheEntry>,
    /// name → index into `entries`, for lookups and the duplicate check.
    index: HashMap<String, usize>,
}

impl CalibrationCache {
    pub fn new(header: CacheHeader) -> CalibrationCache {
        CalibrationCache { header, entries: Vec::new(), index: HashMap::new() }
    }

    /// Appends a tensor; the file lists tensors in the order they were pushed.
    pub fn push(&mut self, name: impl Into<String>, scale: f32) -> Result<(), CacheError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.contains(['\n', '\r']) {
            Some("it contains a line break")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CacheError::InvalidName { name, reason });
        }
        if !valid_scale(scale) {
            return Err(CacheError::InvalidScale { name, scale });
        }
        if self.index.contains_key(&name) {
            return Err(CacheError::DuplicateName { name });
        }
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push(CacheEntry { name, scale });
        Ok(())
    }

    pub fn header(&self) -> CacheHeader {
        self.header
    }

    pub fn entries(&self) -> &[CacheEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scale of tensor `name`, if the cache has one.
    pub fn scale(&self, name: &str) -> Option<f32> {
        self.index.get(name).map(|&i| self.entries[i].scale)
    }

    /// The file's text: header, then one line per tensor, each ending in `\n`.
    pub fn to_text(&self) -> String {
        use fmt::Write;
        let mut text = format!("{}\n", self.header);
        for entry in &self.entries {
            let _ = writeln!(text, "{}: {}", entry.name, scale_hex(entry.scale));
        }
        text
    }

    /// Writes the cache atomically (a reader never sees half a cache).
    pub fn write(&self, path: &Path) -> Result<(), CacheError> {
        crate::model::write_atomically(path, self.to_text().as_bytes())
            .map_err(|source| CacheError::Write { path: path.to_owned(), source })
    }

    pub fn read(path: &Path) -> Result<CalibrationCache, CacheError> {
        let bytes = std::fs::read(path).map_err(|source| CacheError::Read { path: path.to_owned(), source })?;
        CalibrationCache::parse_bytes(&bytes, path)
    }

    /// Parses a cache's bytes; `path` only names the file in errors.
    pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<CalibrationCache, CacheError> {
        let text = std::str::from_utf8(bytes).map_err(|e| CacheError::NotUtf8 {
            path: path.to_owned(),
            line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
        })?;
        CalibrationCache::parse(text, path)
    }

    /// Parses a cache's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<CalibrationCache, CacheError> {
        let path_buf = || path.to_owned();
        if text.is_empty() {
            return Err(CacheError::Empty { path: path_buf() });
        }
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or_default();
        let header = parse_header(first, path)?;
        let mut cache = CalibrationCache::new(header);
        let mut lines_of: Vec<usize> = Vec::new();
        for (offset, line) in lines.enumerate() {
            let number = offset + 2;
            if line.is_empty() {
                continue;
            }
            let bad_entry = || CacheError::BadEntry { path: path_buf(), line: number, found: excerpt(line) };
            let (name, hex) = line.rsplit_once(": ").ok_or_else(bad_entry)?;
            if name.is_empty() {
                return Err(bad_entry());
            }
            let bits = parse_hex(hex).ok_or_else(|| CacheError::BadHex {
                path: path_buf(),
                line: number,
                hex: excerpt(hex),
            })?;
            let scale = f32::from_bits(bits);
            if !valid_scale(scale) {
                return Err(CacheError::BadScale { path: path_buf(), line: number, name: name.to_owned(), scale });
            }
            if let Some(&earlier) = cache.index.get(name) {
                return Err(CacheError::Duplicate {
                    path: path_buf(),
                    line: number,
                    first: lines_of[earlier],
                    name: name.to_owned(),
                });
            }
            cache.index.insert(name.to_owned(), cache.entries.len());
            cache.entries.push(CacheEntry { name: name.to_owned(), scale });
            lines_of.push(number);
        }
        Ok(cache)
    }
}

/// The cache's spelling of a scale: its f32 bits as lower-case hex without leading zeros.
pub fn scale_hex(scale: f32) -> String {
    format!("{:x}", scale.to_bits())
}

fn valid_scale(scale: f32) -> bool {
    // Zero is allowed: real caches carry `0` for tensors TensorRT saw no range for.
    scale.is_finite() && scale.is_sign_positive()
}

fn parse_hex(hex: &str) -> Option<u32> {
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn parse_header(line: &str, path: &Path) -> Result<CacheHeader, CacheError> {
    let bad = || CacheError::BadHeader { path: path.to_owned(), found: excerpt(line) };
    let rest = line.strip_prefix("TRT-").ok_or_else(bad)?;
    let (digits, name) = rest.split_once('-').ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let version: u32 = digits.parse().map_err(|_| bad())?;
    let algorithm =
        name.parse().map_err(|()| CacheError::UnknownAlgorithm { path: path.to_owned(), name: excerpt(name) })?;
    Ok(CacheHeader { version, algorithm })
}

/// A line quoted in an error, cut so that a binary file does not flood the terminal.
fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YOLO: &str =
        include_str!("../../tests/fixtures/trtexec/calib_TRT-8502-EntropyCalibration2_deepstream-yolo.table");
    const RADIOML: &str =
        include_str!("../../tests/fixtures/trtexec/calib_TRT-101000-EntropyCalibration2_radioml-transformer.cache");

    fn parse(text: &str) -> Result<CalibrationCache, CacheError> {
        CalibrationCache::parse(text, Path::new("test.cache"))
    }

    #[test]
    fn hex_is_lower_case_big_endian_bits_without_padding() {
        assert_eq!(scale_hex(1.0), "3f800000");
        assert_eq!(scale_hex(1.0 / 127.0), "3c010204");
        assert_eq!(scale_hex(0.0), "0");
        assert_eq!(scale_hex(f32::MIN_POSITIVE), "800000");
        assert_eq!(scale_hex(f32::from_bits(0x0abc_def0)), "abcdef0");
        assert_eq!(scale_hex(f32::from_bits(1)), "1");
        assert_eq!(scale_hex(crate::calib::MIN_SCALE), "33800000");
    }

    #[test]
    fn write_then_read_is_bit_exact() {
        let mut cache =
            CalibrationCache::new(CacheHeader::new(TrtVersion::new(10, 3, 0), Algorithm::EntropyCalibration2));
        let entries = [
            ("input", 1.0 / 127.0),
            ("(Unnamed Layer* 64) [Shuffle]_output", 0.0),
            ("onnx::MatMul_398_output", 0.002_369_2),
            ("name: with colon-space", f32::from_bits(0x0abc_def0)),
            ("trailing:", f32::MIN_POSITIVE),
            ("tiny", f32::from_bits(1)),
            ("big", f32::MAX),
            ("ünïcode name", 0.5),
        ];
        for (name, scale) in entries {
            cache.push(name, scale).unwrap();
        }
        let text = cache.to_text();
        assert!(text.starts_with("TRT-100300-EntropyCalibration2\ninput: 3c010204\n"));
        assert!(text.contains("\nname: with colon-space: abcdef0\n"));
        assert!(text.contains("\ntrailing:: 800000\n"));
        let back = parse(&text).unwrap();
        assert_eq!(back.header(), cache.header());
        assert_eq!(back.len(), entries.len());
        for (entry, (name, scale)) in back.entries().iter().zip(entries) {
            assert_eq!(entry.name, name);
            assert_eq!(entry.scale.to_bits(), scale.to_bits(), "{name}");
        }
        assert_eq!(back.to_text(), text);
    }

    #[test]
    fn write_goes_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calib.cache");
        let mut cache = CalibrationCache::new(CacheHeader::new(TrtVersion::new(8, 5, 2), Algorithm::MinMaxCalibration));
        cache.push("x", 0.25).unwrap();
        cache.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "TRT-8502-MinMaxCalibration\nx: 3e800000\n");
        assert_eq!(CalibrationCache::read(&path).unwrap(), cache);
    }

    #[test]
    fn reads_the_deepstream_yolo_cache() {
        let cache = parse(YOLO).unwrap();
        assert_eq!(cache.header().to_string(), "TRT-8502-EntropyCalibration2");
        assert_eq!(cache.header().trt_version(), TrtVersion::new(8, 5, 2));
        assert_eq!(YOLO.lines().count(), 460);
        assert_eq!(cache.len(), 459);
        assert_eq!(cache.entries()[0], CacheEntry { name: "input".into(), scale: f32::from_bits(0x3c01_0a16) });
        assert_eq!(cache.scale("input"), Some(0.007_875_94));
        assert_eq!(cache.scale("(Unnamed Layer* 371) [Shuffle]_output"), Some(f32::from_bits(0x3c01_0a14)));
        assert_eq!(cache.entries().last().unwrap().name, "classes");
        assert_eq!(cache.scale("classes"), Some(f32::from_bits(0x3e85_1265)));
        // Re-written, the file comes out byte for byte the same: same hex style, same order, same line ends.
        assert_eq!(cache.to_text(), YOLO);
    }

    #[test]
    fn reads_the_radioml_transformer_cache() {
        let cache = parse(RADIOML).unwrap();
        assert_eq!(cache.header().to_string(), "TRT-101000-EntropyCalibration2");
        assert_eq!(cache.header().trt_version(), TrtVersion::new(10, 10, 0));
        assert_eq!(RADIOML.lines().count(), 141);
        assert_eq!(cache.len(), 140);
        assert_eq!(cache.scale("input"), Some(f32::from_bits(0x3e30_f86c)));
        assert_eq!(cache.scale("onnx::MatMul_398_output"), Some(f32::from_bits(0x3b1d_f5a4)));
        assert_eq!(cache.scale("pos_embed_output"), Some(f32::from_bits(0x3a0b_46fe)));
        assert_eq!(cache.to_text(), RADIOML);
    }

    #[test]
    fn versions_encode_both_schemes() {
        for (number, version) in [
            (8502, TrtVersion::new(8, 5, 2)),
            (8601, TrtVersion::new(8, 6, 1)),
            (7103, TrtVersion::new(7, 1, 3)),
            (100300, TrtVersion::new(10, 3, 0)),
            (101401, TrtVersion::new(10, 14, 1)),
            (101000, TrtVersion::new(10, 10, 0)),
        ] {
            assert_eq!(TrtVersion::from_number(number), version);
            assert_eq!(version.number(), number);
        }
    }

    #[test]
    fn other_algorithms_and_line_ends_are_accepted() {
        let cache = parse("TRT-100300-MinMaxCalibration\r\na: 3f800000\r\n\r\nb: 0\r\n").unwrap();
        assert_eq!(cache.header().algorithm, Algorithm::MinMaxCalibration);
        assert_eq!(cache.entries().len(), 2);
        assert_eq!(cache.scale("b"), Some(0.0));
        assert_eq!(parse("TRT-8203-EntropyCalibration\nX: 3F800000").unwrap().scale("X"), Some(1.0));
        assert_eq!(parse("TRT-8203-LegacyCalibration\n").unwrap().len(), 0);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases: [(&str, &str); 11] = [
            ("", "test.cache: the file is empty"),
            ("\ninput: 3f800000\n", "test.cache: line 1 is ``, not"),
            ("input: 3f800000\n", "test.cache: line 1 is `input: 3f800000`"),
            ("TRT-x-EntropyCalibration2\n", "test.cache: line 1 is `TRT-x-EntropyCalibration2`"),
            ("TRT-8502-Magic\n", "test.cache: line 1 names calibration algorithm `Magic`"),
            ("TRT-8502-EntropyCalibration2\na: 3f800000\nb 3f800000\n", "test.cache: line 3 is `b 3f800000`"),
            ("TRT-8502-EntropyCalibration2\n: 3f800000\n", "test.cache: line 2 is `: 3f800000`"),
            ("TRT-8502-EntropyCalibration2\na: 3f8000000\n", "test.cache: line 2: `3f8000000` is not a scale"),
            ("TRT-8502-EntropyCalibration2\na: 0x3f80\n", "test.cache: line 2: `0x3f80` is not a scale"),
            ("TRT-8502-EntropyCalibration2\na: bf800000\n", "test.cache: line 2: tensor `a` has scale -1"),
            (
                "TRT-8502-EntropyCalibration2\na: 1\n\nb: 2\na: 3\n",
                "test.cache: line 5: tensor `a` already has a scale on line 2",
            ),
        ];
        for (text, expected) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
        let message = parse("TRT-8502-EntropyCalibration2\na: 7fc00000\n").unwrap_err().to_string();
        assert!(message.contains("scale NaN"), "{message}");
        let message = CalibrationCache::parse_bytes(b"TRT-8502-EntropyCalibration2\na: 1\n\xff: 2\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert_eq!(message, "x: line 3 is not valid utf-8");
        let long = format!("TRT-8502-EntropyCalibration2\n{}\n", "z".repeat(10_000));
        assert!(parse(&long).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn push_rejects_what_the_format_cannot_hold() {
        let mut cache =
            CalibrationCache::new(CacheHeader::new(TrtVersion::new(8, 6, 1), Algorithm::EntropyCalibration2));
        assert!(matches!(cache.push("", 1.0), Err(CacheError::InvalidName { .. })));
        assert!(matches!(cache.push("a\nb", 1.0), Err(CacheError::InvalidName { .. })));
        assert!(matches!(cache.push("a", f32::INFINITY), Err(CacheError::InvalidScale { .. })));
        assert!(matches!(cache.push("a", -0.5), Err(CacheError::InvalidScale { .. })));
        assert!(matches!(cache.push("a", f32::NAN), Err(CacheError::InvalidScale { .. })));
        cache.push("a", 1.0).unwrap();
        assert!(matches!(cache.push("a", 2.0), Err(CacheError::DuplicateName { .. })));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn missing_files_are_read_errors() {
        let err = CalibrationCache::read(Path::new("/nonexistent/calib.cache")).unwrap_err();
        assert_eq!(err.to_string(), "cannot read calibration cache /nonexistent/calib.cache");
        assert!(matches!(err, CacheError::Read { .. }));
    }
}
