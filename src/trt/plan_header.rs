//! The first 28 bytes of a serialized engine (a "plan"): enough to tell which TensorRT wrote it without
//! deserializing it, which standard TensorRT offers no API for (tensorrt.md §0.4, §4.4).
//!
//! Layout, as `trtexec --getPlanVersionOnly` reads it (TRT 10.16 and 11.1 `sampleEngines.cpp::printPlanVersion`):
//! `u32le[0]` is the magic `"ftrt"` (0x74727466), `u32le[1]` the serialization layout (0; anything else is
//! refused), and bytes 24..28 are the major, minor, patch and build of the TensorRT that built it. TensorRT
//! documents the reader for engines "created with 8.6 and forward"; older plans are refused by whatever reads them.

use std::fmt;

use crate::error::{Diagnose, Fault};
use crate::trt::parse::TrtVersion;

/// Bytes the header occupies.
pub const PLAN_HEADER_LEN: usize = 28;
/// `"ftrt"` read as a little-endian u32.
pub const PLAN_MAGIC: u32 = 0x7472_7466;
/// The only serialization layout a reader accepts.
pub const PLAN_LAYOUT: u32 = 0;

/// What the header says about the TensorRT that built the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlanHeader {
    pub major: u8,
    pub minor: u8,
    pub patch: u8,
    pub build: u8,
}

impl PlanHeader {
    /// The version with its build, comparable with a version read from a banner or `NvInferVersion.h`.
    pub fn version(&self) -> TrtVersion {
        TrtVersion::new(self.major.into(), self.minor.into(), self.patch.into()).with_build(Some(self.build.into()))
    }

    /// Whether this plan can load in `runtime`: the standard runtime wants major, minor and patch to match
    /// (tensorrt.md §4.1), and the build too when the caller knows it.
    pub fn matches(&self, runtime: TrtVersion) -> bool {
        let v = self.version();
        (v.major, v.minor, v.patch) == (runtime.major, runtime.minor, runtime.patch)
            && runtime.build.is_none_or(|b| v.build == Some(b))
    }
}

impl fmt::Display for PlanHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}.{}", self.major, self.minor, self.patch, self.build)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanHeaderError {
    #[error("{len} bytes are too few for an engine: its header alone is {PLAN_HEADER_LEN} bytes")]
    TooShort { len: usize },
    #[error("not a TensorRT engine: the file starts with {found:02x?}, not the magic \"ftrt\"")]
    BadMagic { found: [u8; 4] },
    #[error("engine serialization layout {found} is not supported (only {PLAN_LAYOUT} is)")]
    UnsupportedLayout { found: u32 },
}

impl Diagnose for PlanHeaderError {
    fn fault(&self) -> Fault {
        Fault::Input
    }

    fn hint(&self) -> Option<String> {
        Some("give an engine file that trtexec wrote with --saveEngine (a .engine/.plan), complete".into())
    }
}

/// Reads the header of a plan; only the first [`PLAN_HEADER_LEN`] bytes are looked at.
pub fn read_plan_header(bytes: &[u8]) -> Result<PlanHeader, PlanHeaderError> {
    let head: &[u8; PLAN_HEADER_LEN] = bytes
        .get(..PLAN_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(PlanHeaderError::TooShort { len: bytes.len() })?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if word(0) != PLAN_MAGIC {
        return Err(PlanHeaderError::BadMagic { found: [head[0], head[1], head[2], head[3]] });
    }
    if word(4) != PLAN_LAYOUT {
        return Err(PlanHeaderError::UnsupportedLayout { found: word(4) });
    }
    Ok(PlanHeader { major: head[24], minor: head[25], patch: head[26], build: head[27] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(version: [u8; 4]) -> Vec<u8> {
        let mut bytes = b"ftrt".to_vec();
        bytes.extend([0u8; 20]);
        bytes.extend(version);
        bytes.extend(b"payload");
        bytes
    }

    #[test]
    fn reads_the_version_bytes() {
        let h = read_plan_header(&plan([10, 3, 0, 30])).unwrap();
        assert_eq!(h, PlanHeader { major: 10, minor: 3, patch: 0, build: 30 });
        assert_eq!(h.to_string(), "10.3.0.30");
        assert_eq!(h.version().full_string(), "10.3.0.30");
        assert!(h.matches(TrtVersion::new(10, 3, 0)));
        assert!(h.matches(TrtVersion::new(10, 3, 0).with_build(Some(30))));
        assert!(!h.matches(TrtVersion::new(10, 3, 0).with_build(Some(26))));
        assert!(!h.matches(TrtVersion::new(10, 13, 3)));
    }

    #[test]
    fn refuses_what_is_no_plan() {
        assert_eq!(read_plan_header(b"ftrt"), Err(PlanHeaderError::TooShort { len: 4 }));
        let mut onnx = plan([8, 6, 2, 3]);
        onnx[..4].copy_from_slice(b"\x08\x07\x12\x07");
        assert_eq!(read_plan_header(&onnx), Err(PlanHeaderError::BadMagic { found: [8, 7, 0x12, 7] }));
        let mut layout = plan([8, 6, 2, 3]);
        layout[4] = 1;
        assert_eq!(read_plan_header(&layout), Err(PlanHeaderError::UnsupportedLayout { found: 1 }));
        let e = read_plan_header(&onnx).unwrap_err().to_string();
        assert!(e.contains("\"ftrt\""), "{e}");
    }
}
