//! The memory guard before an engine build: the builder's workspace must fit in what the device has free, and on
//! a Jetson that memory is shared with the application that is serving (an 8 GB Orin Nano), so a build that
//! cannot fit is shrunk or refused before it starts, never left to the OOM killer.

use crate::error::{Diagnose, Fault};

/// What a build leaves to everything else: the engine being built and the application serving, in MiB.
pub const HEADROOM_MIB: u64 = 512;
/// Below this the builder has too little room to pick good tactics; refuse instead.
pub const MIN_WORKSPACE_MIB: u64 = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "not enough free memory for the engine build: {free_mib} MiB free, the build needs at least {needed_mib} MiB \
     ({MIN_WORKSPACE_MIB} MiB workspace + {HEADROOM_MIB} MiB headroom; {requested_mib} MiB workspace asked)"
)]
pub struct NotEnoughMemory {
    pub free_mib: u64,
    pub needed_mib: u64,
    pub requested_mib: u64,
}

impl Diagnose for NotEnoughMemory {
    fn fault(&self) -> Fault {
        Fault::Environment
    }
    fn hint(&self) -> Option<String> {
        Some("free memory on the device (stop other GPU work), or lower [build] workspace_mib".into())
    }
}

/// The workspace to build with: the requested one when it fits in `free_bytes` minus the headroom, else shrunk
/// to what fits, else refused when even the minimum does not fit.
pub fn workspace_mib(requested_mib: u64, free_bytes: u64) -> Result<u64, NotEnoughMemory> {
    let free_mib = free_bytes / (1024 * 1024);
    let room = free_mib.saturating_sub(HEADROOM_MIB);
    if room >= requested_mib {
        return Ok(requested_mib);
    }
    if room >= MIN_WORKSPACE_MIB.min(requested_mib) {
        return Ok(room);
    }
    Err(NotEnoughMemory { free_mib, needed_mib: MIN_WORKSPACE_MIB.min(requested_mib) + HEADROOM_MIB, requested_mib })
}

/// Free memory for a build on GPU `index`: on an integrated GPU (Jetson) the host's MemAvailable, since GPU and
/// CPU share it and the driver's figure ignores what the kernel can reclaim; elsewhere the driver's free memory.
pub fn free_for_build(fingerprint: &super::Fingerprint, index: usize) -> Option<u64> {
    let gpu = fingerprint.gpus.get(index)?;
    if gpu.integrated { super::mem_available_bytes() } else { super::free_memory_bytes(index) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn fits_shrinks_or_refuses() {
        assert_eq!(workspace_mib(1024, 8192 * MIB), Ok(1024));
        // 1500 MiB free: 988 MiB of room after the headroom
        assert_eq!(workspace_mib(1024, 1500 * MIB), Ok(988));
        let err = workspace_mib(1024, 600 * MIB).unwrap_err();
        assert_eq!(err, NotEnoughMemory { free_mib: 600, needed_mib: 768, requested_mib: 1024 });
        assert!(err.to_string().contains("768 MiB"), "{err}");
        // A small request is honoured as long as it fits.
        assert_eq!(workspace_mib(128, 700 * MIB), Ok(128));
    }
}
