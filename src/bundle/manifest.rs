//! `bundle.toml`, the manifest: which files make up the bundle, with their size and sha256.
//!
//! The format, version 1:
//!
//! ```toml
//! # bundle.toml: the manifest of a precisiond bundle, written by `precisiond bundle seal`.
//! # Every other file of the bundle with its size in bytes and sha256, sorted by path; do not edit.
//! format = 1
//!
//! [[file]]
//! path = "calib/0001.png"           # relative to the bundle folder, `/`-separated
//! size = 20371
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! Listed: every regular file of the folder, recursively, except `bundle.toml`, `bundle.toml.sig` and hidden
//! entries (a name starting with `.`, at any depth: temporary files of atomic writes, `.git`, editor droppings).
//! Sorted by the path's bytes, one `[[file]]` per file, keys in this order: the same content always gives the same
//! manifest bytes, so the manifest's own sha256 identifies the bundle's content (and is what a signature signs).
//! A reader refuses an unknown `format`, unknown keys, duplicate paths, and paths that are absolute, use `\`,
//! contain `.`, `..`, empty or hidden components, or name the manifest or its signature.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "bundle.toml";
pub const SIGNATURE: &str = "bundle.toml.sig";

/// One listed file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Relative to the bundle folder, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    format: u32,
    #[serde(default)]
    file: Vec<Entry>,
}

/// Why a manifest's text is not a manifest; the caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestProblem {
    Syntax { line: Option<usize>, message: String },
    Format { found: u32 },
    Path { path: String, problem: &'static str },
    Checksum { path: String },
    Duplicate { path: String },
}

/// Renders the manifest of `entries` (sorted here, whatever order they come in).
pub fn render(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut out = String::from(
        "# bundle.toml: the manifest of a precisiond bundle, written by `precisiond bundle seal`.\n\
         # Every other file of the bundle with its size in bytes and sha256, sorted by path; do not edit.\n",
    );
    let _ = writeln!(out, "format = {FORMAT}");
    for e in sorted {
        let _ = write!(out, "\n[[file]]\npath = {}\nsize = {}\nsha256 = \"{}\"\n", crate::spec::toml_string(&e.path), e.size, e.sha256);
    }
    out
}

/// Parses and checks a manifest's text.
pub fn parse(text: &str) -> Result<Vec<Entry>, ManifestProblem> {
    let file: ManifestFile = toml::from_str(text).map_err(|e| ManifestProblem::Syntax {
        line: e.span().map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1),
        message: e.message().trim().replace('\n', "; "),
    })?;
    if file.format != FORMAT {
        return Err(ManifestProblem::Format { found: file.format });
    }
    let mut seen = std::collections::HashSet::new();
    for entry in &file.file {
        if let Some(problem) = path_problem(&entry.path) {
            return Err(ManifestProblem::Path { path: entry.path.clone(), problem });
        }
        if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ManifestProblem::Checksum { path: entry.path.clone() });
        }
        if !seen.insert(entry.path.as_str()) {
            return Err(ManifestProblem::Duplicate { path: entry.path.clone() });
        }
    }
    Ok(file.file)
}

/// Why a listed path cannot be a file of the bundle, if it cannot.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') {
        return Some("is absolute; manifest paths are relative to the bundle folder");
    }
    if path.contains('\\') {
        return Some("contains `\\`; manifest paths are `/`-separated");
    }
    if path.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    for component in path.split('/') {
        match component {
            "" | "." => return Some("has an empty or `.` component"),
            ".." => return Some("contains `..`, which would leave the bundle folder"),
            c if c.starts_with('.') => return Some("has a hidden component, which a bundle never holds"),
            _ => {}
        }
    }
    if path == MANIFEST || path == SIGNATURE {
        return Some("names the manifest or its signature, which are not listed");
    }
    None
}

/// sha256 (lower-case hex) and length of a file, read in chunks: bundles hold large files.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&hasher.finalize()), len))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry { path: path.into(), size: 3, sha256: sha256_bytes(b"abc") }
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(sha256_bytes(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        // Longer than one read buffer, so that the chunked path is what is checked.
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), (sha256_bytes(&bytes), 700_000));
        assert_eq!(sha256_bytes(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn render_sorts_and_parse_reads_it_back() {
        let entries = vec![entry("model.onnx"), entry("calib/b.npy"), entry("calib/a \"q\".npy"), entry("eval/x.png")];
        let text = render(&entries);
        let parsed = parse(&text).unwrap();
        let paths: Vec<&str> = parsed.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["calib/a \"q\".npy", "calib/b.npy", "eval/x.png", "model.onnx"]);
        assert_eq!(parsed[0], entry("calib/a \"q\".npy"));
        let mut reversed = entries.clone();
        reversed.reverse();
        assert_eq!(render(&reversed), text, "the same files give the same bytes");
        assert!(text.starts_with("# bundle.toml: the manifest"), "{text}");
        assert!(
            text.contains("format = 1\n\n[[file]]\npath = \"calib/a \\\"q\\\".npy\"\nsize = 3\nsha256 = \"ba78"),
            "{text}"
        );
        assert_eq!(parse(&render(&[])).unwrap(), vec![]);
    }

    #[test]
    fn parse_refuses_what_seal_never_writes() {
        let one = |path: &str| {
            format!("format = 1\n[[file]]\npath = {}\nsize = 3\nsha256 = \"{}\"\n", crate::spec::toml_string(path), sha256_bytes(b"abc"))
        };
        for (path, needle) in [
            ("/etc/passwd", "absolute"),
            ("../outside.onnx", "`..`"),
            ("calib/../../x", "`..`"),
            ("calib//x.npy", "empty"),
            ("./model.onnx", "`.`"),
            ("calib\\x.npy", "`\\`"),
            ("calib/.hidden", "hidden"),
            ("bundle.toml", "manifest"),
            ("bundle.toml.sig", "manifest"),
            ("", "empty"),
        ] {
            match parse(&one(path)) {
                Err(ManifestProblem::Path { path: p, problem }) => {
                    assert_eq!(p, path);
                    assert!(problem.contains(needle), "{path}: {problem}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        assert_eq!(parse("format = 2\n"), Err(ManifestProblem::Format { found: 2 }));
        let dup = format!("{}{}", one("a.npy"), one("a.npy").replace("format = 1\n", ""));
        assert_eq!(parse(&dup), Err(ManifestProblem::Duplicate { path: "a.npy".into() }));
        let bad_sum = one("a.npy").replace("ba7816bf", "BA7816BF");
        assert_eq!(parse(&bad_sum), Err(ManifestProblem::Checksum { path: "a.npy".into() }));
        match parse("format = 1\n[[file]]\npath = \"a\"\nsize = 3\nsha = \"x\"\n") {
            Err(ManifestProblem::Syntax { line: Some(5), message }) => {
                assert!(message.contains("unknown field `sha`"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("format = 1\n[[file]]\npath = \"a\"\nsize = -1\nsha256 = \"\"\n"),
            Err(ManifestProblem::Syntax { .. })
        ));
    }
}
