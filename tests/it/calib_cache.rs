//! Every real TensorRT calibration cache in `tests/fixtures/trtexec/` parses, with the header and tensor count its
//! source shows, and is written back byte for byte. The fixtures are copies of
//! `../shared/reference/trtexec-samples/` without the added `# source:` line (see `SOURCES.md` there); when that
//! folder is present (a development checkout) the copies are checked against it, so CI does not need it.

use std::fs;
use std::path::{Path, PathBuf};

use precisiond::calib::{Algorithm, CalibrationCache, TrtVersion};

struct Expected {
    file: &'static str,
    version: TrtVersion,
    algorithm: Algorithm,
    tensors: usize,
    /// A few (name, hex) pairs from the file, chosen for awkward names.
    samples: &'static [(&'static str, u32)],
}

const EXPECTED: &[Expected] = &[
    Expected {
        file: "calib_TRT-8502-EntropyCalibration2_deepstream-yolo.table",
        version: TrtVersion { major: 8, minor: 5, patch: 2 },
        algorithm: Algorithm::EntropyCalibration2,
        tensors: 459,
        samples: &[
            ("input", 0x3c01_0a16),
            ("/0/model.0/conv/Conv_output_0", 0x3e6e_18b7),
            ("(Unnamed Layer* 371) [Shuffle]_output", 0x3c01_0a14),
            ("(Unnamed Layer* 902) [TopK]_output_1", 0x3c00_f1b8),
            ("classes", 0x3e85_1265),
        ],
    },
    Expected {
        file: "calib_TRT-101000-EntropyCalibration2_radioml-transformer.cache",
        version: TrtVersion { major: 10, minor: 10, patch: 0 },
        algorithm: Algorithm::EntropyCalibration2,
        tensors: 140,
        samples: &[
            ("input", 0x3e30_f86c),
            ("onnx::MatMul_398_output", 0x3b1d_f5a4),
            ("ONNXTRT_Broadcast_191_output", 0x3b04_7011),
            ("/encoder/layers.0/self_attn/Unsqueeze_1_output_0", 0x3ed8_613b),
        ],
    },
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trtexec")
}

fn samples_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/trtexec-samples")
}

/// Calibration caches in the fixtures folder; the trtexec logs that share it are not.
fn cache_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures())
        .expect("tests/fixtures/trtexec exists")
        .map(|entry| entry.expect("readable folder entry").path())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("calib_")))
        .collect();
    files.sort();
    files
}

#[test]
fn real_caches_parse_with_their_header_and_count() {
    for expected in EXPECTED {
        let path = fixtures().join(expected.file);
        let cache = CalibrationCache::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let header = cache.header();
        assert_eq!(header.trt_version(), expected.version, "{}", expected.file);
        assert_eq!(header.algorithm, expected.algorithm, "{}", expected.file);
        assert_eq!(cache.len(), expected.tensors, "{}", expected.file);
        for &(name, bits) in expected.samples {
            assert_eq!(cache.scale(name).map(f32::to_bits), Some(bits), "{}: {name}", expected.file);
        }
        // The file name carries the header, as the collector named it.
        assert!(expected.file.contains(&format!("{header}_")), "{}", expected.file);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(cache.to_text().as_bytes(), bytes.as_slice(), "{} is not re-written byte for byte", expected.file);
    }
}

#[test]
fn every_cache_fixture_is_listed_and_sourced() {
    let sources = fs::read_to_string(fixtures().join("SOURCES.md")).expect("tests/fixtures/trtexec/SOURCES.md");
    let files = cache_fixtures();
    assert_eq!(files.len(), EXPECTED.len(), "cache fixtures: {files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(EXPECTED.iter().any(|e| e.file == name), "{name} has no expectations in this test");
        assert!(sources.contains(name), "SOURCES.md does not name {name}");
        CalibrationCache::read(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// In a development checkout: the fixtures are the shared samples minus their first line, and every cache the
/// sample INDEX lists has a fixture.
#[test]
fn fixtures_match_the_shared_samples_when_present() {
    let samples = samples_folder();
    let Ok(index) = fs::read_to_string(samples.join("INDEX.md")) else {
        // CI lays shared/ beside the clone; a bare checkout elsewhere has only the fixtures, which the other tests read.
        eprintln!("skipped: no shared samples at {} to compare the fixtures with", samples.display());
        return;
    };
    let listed: Vec<&str> = index
        .lines()
        .filter(|line| line.contains("INT8 cache"))
        .filter_map(|line| line.split('|').nth(1).map(str::trim))
        .collect();
    assert_eq!(listed.len(), EXPECTED.len(), "caches in INDEX.md: {listed:?}");
    for sample in listed {
        let fixture = sample.strip_suffix(".txt").unwrap_or(sample);
        let original = fs::read_to_string(samples.join(sample)).unwrap();
        let (source_line, body) = original.split_once('\n').unwrap();
        assert!(source_line.starts_with("# source: "), "{sample}");
        let copy = fs::read_to_string(fixtures().join(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(copy, body, "{fixture} differs from {sample} after its first line");
    }
}
