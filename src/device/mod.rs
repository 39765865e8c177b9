//! The device precisiond runs on: its GPUs, the driver, TensorRT and Jetson Linux (L4T) versions, and the
//! fingerprint that says whether an engine built earlier still fits it.
//!
//! - `cuda.rs` is the only code in precisiond that loads or calls the CUDA driver.
//! - `host.rs` reads the rest from files, never by running a program (starting processes is `src/trt/`'s job):
//!   `/proc/driver/nvidia/version`, `/etc/nv_tegra_release`, libnvinfer's file names, `/proc/meminfo`.
//!
//! Nothing here fails or panics: what cannot be found is `null` (or an empty `gpus`), and `notes` says why.
//!
//! `PRECISIOND_FAKE_FINGERPRINT=FILE.json` replaces the whole probe by FILE, written as `precisiond device --json`
//! prints it (its `key` and `mem_available_bytes` may stay and are ignored; its `notes` are kept). It is read on
//! every call, so that a test of the daemon can edit it to simulate a firmware update (a new TensorRT, driver or L4T)
//! on a machine without GPU. `free_memory_bytes` then answers each fake GPU's `memory_free_bytes`.

mod cuda;
mod host;
pub mod memory;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Diagnose, Fault};
use crate::trt::parse::TrtVersion;

pub use cuda::CudaError;

/// The environment variable naming a fake fingerprint (see the module documentation).
pub const FAKE_FINGERPRINT_ENV: &str = "PRECISIOND_FAKE_FINGERPRINT";

/// What makes an engine fit this device, and what `precisiond device --json` prints. The first four keys are
/// PRODUCT.md's contract, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub gpus: Vec<Gpu>,
    /// The CUDA version the driver supports (`cuDriverGetVersion`): `13.0`.
    pub cuda_driver: Option<String>,
    /// `10.3.0`; a bare major (`10`) when the library's file names say no more.
    pub tensorrt: Option<String>,
    /// Jetson Linux release: `36.4.3`.
    pub l4t: Option<String>,
    /// Where facts came from and why absent ones are absent. Not part of [`Fingerprint::key`].
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One CUDA device, in the driver's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub name: String,
    /// `9.0`, `8.7`.
    pub compute_capability: String,
    /// The NVIDIA kernel driver (`580.95.05`), from `/proc/driver/nvidia/version`; null where that file is absent
    /// (Jetson's nvgpu driver has none).
    pub driver_version: Option<String>,
    pub memory_total_bytes: u64,
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` as nvidia-smi prints it.
    pub uuid: Option<String>,
    /// Shares the host's memory (every Jetson): its free memory is the host's `MemAvailable`, not `cuMemGetInfo`.
    #[serde(default)]
    pub integrated: bool,
    /// Filled by [`Fingerprint::measure_free_memory`] only: measuring creates a CUDA context.
    #[serde(default)]
    pub memory_free_bytes: Option<u64>,
}

/// Why a fake fingerprint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot read {} (named by {FAKE_FINGERPRINT_ENV})", path.display())]
    FakeUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} (named by {FAKE_FINGERPRINT_ENV}) is not a device fingerprint", path.display())]
    FakeInvalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Diagnose for DeviceError {
    fn fault(&self) -> Fault {
        Fault::Input
    }

    fn hint(&self) -> Option<String> {
        Some(format!(
            "write it as `precisiond device --json` prints it (`gpus`, `cuda_driver`, `tensorrt`, `l4t`), or unset \
             {FAKE_FINGERPRINT_ENV}"
        ))
    }
}

/// The fingerprint of this device. Never fails: absent facts are `None` or an empty `gpus`; an unusable fake
/// fingerprint gives an empty one whose `notes` say why.
pub fn fingerprint() -> Fingerprint {
    fingerprint_with(None)
}

/// As [`fingerprint`], with the TensorRT version taken from `tensorrt` when the caller knows it better (trtexec's
/// banner) than the library file names do.
pub fn fingerprint_with(tensorrt: Option<&TrtVersion>) -> Fingerprint {
    try_fingerprint_with(tensorrt).unwrap_or_else(|e| {
        let mut note = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let _ = write!(note, ": {cause}");
            source = cause.source();
        }
        Fingerprint { gpus: Vec::new(), cuda_driver: None, tensorrt: None, l4t: None, notes: vec![note] }
    })
}

/// As [`fingerprint_with`], but a fake fingerprint that cannot be used is an error (what `precisiond device` shows).
pub fn try_fingerprint_with(tensorrt: Option<&TrtVersion>) -> Result<Fingerprint, DeviceError> {
    match fake()? {
        Some(fake) => Ok(fake),
        None => Ok(probe(tensorrt)),
    }
}

/// The real device, whatever the environment says.
pub fn probe(tensorrt: Option<&TrtVersion>) -> Fingerprint {
    let mut notes = Vec::new();
    let cuda = cuda::probe();
    notes.extend(cuda.problems.iter().map(|p| match p.hint() {
        Some(hint) => format!("CUDA: {p}; {hint}"),
        None => format!("CUDA: {p}"),
    }));
    let driver_version = host::nvidia_driver_version();
    if driver_version.is_none() && !cuda.devices.is_empty() {
        notes.push("NVIDIA driver version: no /proc/driver/nvidia/version".into());
    }
    let gpus = cuda
        .devices
        .iter()
        .map(|d| Gpu {
            name: d.name.clone(),
            compute_capability: format!("{}.{}", d.compute_capability.0, d.compute_capability.1),
            driver_version: driver_version.clone(),
            memory_total_bytes: d.memory_total_bytes,
            uuid: d.uuid.as_ref().map(cuda::format_uuid),
            integrated: d.integrated,
            memory_free_bytes: None,
        })
        .collect();
    let tensorrt = match tensorrt {
        Some(version) => {
            notes.push(format!("TensorRT {version}: given by the caller"));
            Some(version.to_string())
        }
        None => match host::tensorrt() {
            Some(found) => {
                notes.push(format!("TensorRT {}: {}", found.version, found.path.display()));
                Some(found.version)
            }
            None => {
                notes.push(
                    "TensorRT: no libnvinfer.so.* in LD_LIBRARY_PATH, the ld cache, /usr/lib/{aarch64,x86_64}-linux-gnu \
                     or /usr/local/cuda/targets/*/lib"
                        .into(),
                );
                None
            }
        },
    };
    Fingerprint {
        gpus,
        cuda_driver: cuda.driver_version.map(cuda::format_driver_version),
        tensorrt,
        l4t: host::l4t(),
        notes,
    }
}

/// Free memory on GPU `gpu` (its index in `gpus`), or `None` when it cannot be measured. Creates the device's
/// primary CUDA context if this process has none (hundreds of MB and a pause on a discrete GPU): ask just before a
/// build. On an integrated GPU (Jetson) prefer [`mem_available_bytes`]: CUDA's figure ignores reclaimable page cache.
pub fn free_memory_bytes(gpu: usize) -> Option<u64> {
    match fake() {
        Ok(Some(fake)) => fake.gpus.get(gpu).and_then(|g| g.memory_free_bytes),
        Ok(None) => cuda::free_memory(gpu).ok(),
        Err(_) => None,
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes: what a build may use on a Jetson, whose GPU shares host memory.
pub fn mem_available_bytes() -> Option<u64> {
    host::mem_available_bytes()
}

impl Fingerprint {
    /// A short stable name for what makes an engine fit this device: each GPU's name and compute capability, the
    /// TensorRT version, the CUDA driver, the NVIDIA driver and L4T releases. Engines are specific to the GPU and
    /// the TensorRT version (tensorrt.md §4.1); driver and L4T are in too, so that any firmware update rebuilds
    /// rather than risk a stale engine. Memory sizes, UUIDs and notes are not: an identical replacement board
    /// keeps its engines. `fp1-` names this recipe; changing what goes in means `fp2-`.
    pub fn key(&self) -> String {
        let mut text = String::from("precisiond device fingerprint 1\n");
        for gpu in &self.gpus {
            let _ = writeln!(text, "gpu\t{}\t{}\t{}", gpu.name, gpu.compute_capability, or_none(&gpu.driver_version));
        }
        let _ = writeln!(text, "tensorrt\t{}", or_none(&self.tensorrt));
        let _ = writeln!(text, "cuda_driver\t{}", or_none(&self.cuda_driver));
        let _ = writeln!(text, "l4t\t{}", or_none(&self.l4t));
        let digest = Sha256::digest(text.as_bytes());
        digest[..8].iter().fold(String::from("fp1-"), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// What differs from `earlier` among the parts of [`Fingerprint::key`], one line each
    /// (`TensorRT 10.3.0 → 10.7.0`): why engines built under `earlier` must be rebuilt.
    pub fn changes_from(&self, earlier: &Fingerprint) -> Vec<String> {
        let mut changes = Vec::new();
        let mut compare = |what: &str, before: String, now: String| {
            if before != now {
                changes.push(format!("{what} {before} → {now}"));
            }
        };
        let gpus = |f: &Fingerprint| {
            let list: Vec<String> = f.gpus.iter().map(|g| format!("{} ({})", g.name, g.compute_capability)).collect();
            if list.is_empty() { "none".to_owned() } else { list.join(", ") }
        };
        compare("GPUs", gpus(earlier), gpus(self));
        let drivers = |f: &Fingerprint| {
            let mut list: Vec<&str> = f.gpus.iter().map(|g| or_none(&g.driver_version)).collect();
            list.dedup();
            if list.is_empty() { "none".to_owned() } else { list.join(", ") }
        };
        compare("NVIDIA driver", drivers(earlier), drivers(self));
        compare("TensorRT", or_none(&earlier.tensorrt).to_owned(), or_none(&self.tensorrt).to_owned());
        compare("CUDA driver", or_none(&earlier.cuda_driver).to_owned(), or_none(&self.cuda_driver).to_owned());
        compare("L4T", or_none(&earlier.l4t).to_owned(), or_none(&self.l4t).to_owned());
        changes
    }

    /// Fills each GPU's `memory_free_bytes` (see [`free_memory_bytes`] for the cost).
    pub fn measure_free_memory(&mut self) {
        for (i, gpu) in self.gpus.iter_mut().enumerate() {
            if gpu.memory_free_bytes.is_none() {
                gpu.memory_free_bytes = free_memory_bytes(i);
            }
        }
    }
}

fn or_none(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("none")
}

/// A fake fingerprint file: strict about keys (a misspelt `tensorrt` would otherwise silently read as null), but
/// accepting everything `precisiond device --json` prints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FakeFile {
    gpus: Vec<Gpu>,
    cuda_driver: Option<String>,
    tensorrt: Option<String>,
    l4t: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default, rename = "key")]
    _key: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "mem_available_bytes")]
    _mem_available_bytes: Option<serde::de::IgnoredAny>,
}

fn fake() -> Result<Option<Fingerprint>, DeviceError> {
    let Some(path) = std::env::var_os(FAKE_FINGERPRINT_ENV).filter(|p| !p.is_empty()).map(PathBuf::from) else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path).map_err(|source| DeviceError::FakeUnreadable { path: path.clone(), source })?;
    let file: FakeFile =
        serde_json::from_slice(&bytes).map_err(|source| DeviceError::FakeInvalid { path: path.clone(), source })?;
    let mut notes = vec![format!("fake: read from {} ({FAKE_FINGERPRINT_ENV})", path.display())];
    notes.extend(file.notes.into_iter().filter(|n| !n.starts_with("fake: ")));
    Ok(Some(Fingerprint {
        gpus: file.gpus,
        cuda_driver: file.cuda_driver,
        tensorrt: file.tensorrt,
        l4t: file.l4t,
        notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orin() -> Fingerprint {
        Fingerprint {
            gpus: vec![Gpu {
                name: "Orin".into(),
                compute_capability: "8.7".into(),
                driver_version: None,
                memory_total_bytes: 7_990_464 * 1024,
                uuid: Some("GPU-00000000-0000-0000-0000-000000000000".into()),
                integrated: true,
                memory_free_bytes: None,
            }],
            cuda_driver: Some("12.6".into()),
            tensorrt: Some("10.3.0".into()),
            l4t: Some("36.4.3".into()),
            notes: vec![],
        }
    }

    #[test]
    fn key_is_stable_and_covers_what_makes_an_engine_incompatible() {
        let a = orin();
        assert_eq!(a.key(), orin().key());
        assert!(a.key().starts_with("fp1-") && a.key().len() == 20, "{}", a.key());

        let mut same = orin();
        same.notes.push("anything".into());
        same.gpus[0].memory_free_bytes = Some(1);
        same.gpus[0].memory_total_bytes += 4096;
        same.gpus[0].uuid = Some("GPU-11111111-0000-0000-0000-000000000000".into());
        assert_eq!(same.key(), a.key());
        assert!(same.changes_from(&a).is_empty());

        let edits: [fn(&mut Fingerprint); 6] = [
            |f| f.tensorrt = Some("10.7.0".into()),
            |f| f.cuda_driver = Some("13.0".into()),
            |f| f.l4t = Some("36.4.4".into()),
            |f| f.gpus[0].compute_capability = "8.6".into(),
            |f| f.gpus[0].driver_version = Some("540.4.0".into()),
            |f| f.gpus.clear(),
        ];
        for edit in edits {
            let mut changed = orin();
            edit(&mut changed);
            assert_ne!(changed.key(), a.key(), "{changed:?}");
            assert_eq!(changed.changes_from(&a).len(), 1, "{:?}", changed.changes_from(&a));
        }
        let mut upgraded = orin();
        upgraded.tensorrt = Some("10.7.0".into());
        assert_eq!(upgraded.changes_from(&a), vec!["TensorRT 10.3.0 → 10.7.0".to_owned()]);
    }

    #[test]
    fn key_recipe_is_pinned() {
        // The engine store names folders by these keys: a change here must be deliberate (and become fp2-).
        let empty = Fingerprint { gpus: vec![], cuda_driver: None, tensorrt: None, l4t: None, notes: vec![] };
        assert_eq!(empty.key(), "fp1-b9a7ba125082fe9f");
        // What an H100 machine (driver 580.159.04, no TensorRT) printed.
        let h100 = Fingerprint {
            gpus: vec![Gpu {
                name: "NVIDIA H100 80GB HBM3".into(),
                compute_capability: "9.0".into(),
                driver_version: Some("580.159.04".into()),
                memory_total_bytes: 85_017_493_504,
                uuid: Some("GPU-14e770ac-177a-961e-08e3-6d30f0ac2522".into()),
                integrated: false,
                memory_free_bytes: Some(84_465_090_560),
            }],
            cuda_driver: Some("13.0".into()),
            tensorrt: None,
            l4t: None,
            notes: vec![],
        };
        assert_eq!(h100.key(), "fp1-1183342d4af3a608");
    }

    #[test]
    fn fake_file_round_trips_the_device_json() {
        let mut printed = serde_json::to_value(orin()).unwrap();
        printed["key"] = serde_json::json!("fp1-0000000000000000");
        printed["mem_available_bytes"] = serde_json::json!(123);
        printed["notes"] = serde_json::json!(["fake: read from x (PRECISIOND_FAKE_FINGERPRINT)", "kept"]);
        let file: FakeFile = serde_json::from_value(printed).unwrap();
        assert_eq!(file.gpus, orin().gpus);
        assert_eq!(file.tensorrt.as_deref(), Some("10.3.0"));

        let misspelt = serde_json::json!({"gpus": [], "cuda_driver": null, "tensorrt_version": "10.3.0", "l4t": null});
        assert!(serde_json::from_value::<FakeFile>(misspelt).is_err());
    }
}
