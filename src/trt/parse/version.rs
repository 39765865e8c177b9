//! TensorRT version numbers as trtexec and calibration caches print them.
//!
//! `NV_TENSORRT_VERSION` is encoded as major·1000+minor·100+patch up to 9.x (8.5.2 → 8502) and as
//! major·10000+minor·100+patch from 10.0 (10.3.0 → 100300); tensorrt.md §2.4.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A TensorRT version. `build` is the fourth component (`[b11]` in 10.4+ banners, `.26` in `10.3.0.26`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TrtVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub build: Option<u32>,
}

/// Why a version could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("no trtexec banner (`&&&& RUNNING TensorRT.trtexec …`) in the output")]
    NoBanner,
    #[error(
        "line {line}: the trtexec banner carries no `[TensorRT vNNNN]` tag; this trtexec predates 8.0 and is not supported"
    )]
    NoVersionTag { line: usize },
    #[error("invalid tensorrt version {text:?}: {problem}")]
    Invalid { text: String, problem: &'static str },
}

impl TrtVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        TrtVersion { major, minor, patch, build: None }
    }

    /// Decodes `NV_TENSORRT_VERSION` (`8502`, `8601`, `100300`, `101601`).
    pub fn from_encoded(n: u64) -> Result<Self, VersionError> {
        let invalid = |problem| VersionError::Invalid { text: n.to_string(), problem };
        // Four digits: the ≤ 9.x scheme, whose minor has a single digit.
        if (1000..10_000).contains(&n) {
            return Ok(TrtVersion::new((n / 1000) as u32, ((n / 100) % 10) as u32, (n % 100) as u32));
        }
        // Six or more digits: the ≥ 10.0 scheme; a 10.x encoding is never below 100000.
        if (100_000..100_000_000).contains(&n) {
            return Ok(TrtVersion::new((n / 10_000) as u32, ((n / 100) % 100) as u32, (n % 100) as u32));
        }
        Err(invalid("expected 4 digits (8.x: 8502) or 6 digits (10.x+: 100300)"))
    }

    /// Parses the digits of an encoded version, with or without the `v` of the banner tag.
    pub fn from_encoded_str(s: &str) -> Result<Self, VersionError> {
        let t = s.trim();
        let digits = t.strip_prefix('v').or_else(|| t.strip_prefix('V')).unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VersionError::Invalid { text: s.to_string(), problem: "expected digits" });
        }
        let n: u64 =
            digits.parse().map_err(|_| VersionError::Invalid { text: s.to_string(), problem: "number too large" })?;
        Self::from_encoded(n).map_err(|_| VersionError::Invalid {
            text: s.to_string(),
            problem: "expected 4 digits (8.x: 8502) or 6 digits (10.x+: 100300)",
        })
    }

    /// Parses a dotted version: `10.3.0`, `10.3.0.26`, `8.6.1`; a missing patch reads as 0.
    pub fn from_dotted(s: &str) -> Result<Self, VersionError> {
        let invalid = |problem| VersionError::Invalid { text: s.to_string(), problem };
        let parts: Vec<&str> = s.trim().split('.').collect();
        if parts.len() < 2 || parts.len() > 4 {
            return Err(invalid("expected major.minor[.patch[.build]]"));
        }
        let mut nums = [0u32; 4];
        for (slot, p) in nums.iter_mut().zip(&parts) {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("every component must be a number"));
            }
            *slot = p.parse().map_err(|_| invalid("component too large"))?;
        }
        Ok(TrtVersion { major: nums[0], minor: nums[1], patch: nums[2], build: (parts.len() == 4).then_some(nums[3]) })
    }

    pub fn with_build(mut self, build: Option<u32>) -> Self {
        self.build = build;
        self
    }

    /// `NV_TENSORRT_VERSION` for this version, as used in calibration-cache headers (`TRT-100300-…`).
    /// `None` where the scheme cannot represent it (a minor ≥ 10 before 10.0, or components ≥ 100).
    pub fn encoded(&self) -> Option<u64> {
        let (ma, mi, pa) = (u64::from(self.major), u64::from(self.minor), u64::from(self.patch));
        if self.major >= 10 {
            (mi < 100 && pa < 100 && ma < 10_000).then(|| ma * 10_000 + mi * 100 + pa)
        } else {
            (ma >= 1 && mi < 10 && pa < 100).then(|| ma * 1000 + mi * 100 + pa)
        }
    }

    /// True when this version is `major.minor` or newer.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `10.16.1.11` when the build is known, else the same as Display.
    pub fn full_string(&self) -> String {
        match self.build {
            Some(b) => format!("{self}.{b}"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for TrtVersion {
    type Err = VersionError;

    /// Accepts both spellings: dotted (`10.3.0`) and encoded (`v100300`, `8502`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('.') { Self::from_dotted(s) } else { Self::from_encoded_str(s) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_encodings() {
        assert_eq!(TrtVersion::from_encoded(8502).unwrap(), TrtVersion::new(8, 5, 2));
        assert_eq!(TrtVersion::from_encoded(8601).unwrap(), TrtVersion::new(8, 6, 1));
        assert_eq!(TrtVersion::from_encoded(8203).unwrap(), TrtVersion::new(8, 2, 3));
        assert_eq!(TrtVersion::from_encoded(100300).unwrap(), TrtVersion::new(10, 3, 0));
        assert_eq!(TrtVersion::from_encoded(101601).unwrap(), TrtVersion::new(10, 16, 1));
        assert_eq!(TrtVersion::from_encoded(110100).unwrap(), TrtVersion::new(11, 1, 0));
        assert_eq!(TrtVersion::from_encoded(101000).unwrap().to_string(), "10.10.0");
        assert!(TrtVersion::from_encoded(85020).is_err());
        assert!(TrtVersion::from_encoded(999).is_err());
        assert!(TrtVersion::from_encoded_str("v").is_err());
        assert!(TrtVersion::from_encoded_str("v99999999999999999999999").is_err());
    }

    #[test]
    fn encoding_round_trips() {
        for n in [7103u64, 8502, 8601, 9300, 100300, 101401, 101601, 110100] {
            assert_eq!(TrtVersion::from_encoded(n).unwrap().encoded(), Some(n));
        }
        assert_eq!(TrtVersion::new(8, 10, 0).encoded(), None);
    }

    #[test]
    fn dotted_and_display() {
        let v: TrtVersion = "10.3.0.26".parse().unwrap();
        assert_eq!(v.to_string(), "10.3.0");
        assert_eq!(v.full_string(), "10.3.0.26");
        assert_eq!("v8502".parse::<TrtVersion>().unwrap().to_string(), "8.5.2");
        assert_eq!("8.6".parse::<TrtVersion>().unwrap(), TrtVersion::new(8, 6, 0));
        assert!("10..3".parse::<TrtVersion>().is_err());
        assert!("1.2.3.4.5".parse::<TrtVersion>().is_err());
        assert!(TrtVersion::new(10, 3, 0).at_least(10, 0));
        assert!(!TrtVersion::new(8, 6, 2).at_least(10, 0));
        assert!(TrtVersion::new(8, 6, 1) < TrtVersion::new(10, 3, 0));
    }
}
