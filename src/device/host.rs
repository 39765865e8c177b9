//! Facts read from files, never by running anything: the NVIDIA kernel driver version, the Jetson Linux (L4T)
//! release, the installed TensorRT (from libnvinfer's file names), MemAvailable.
//!
//! Every reader takes what it can and gives `None` for anything else: absent files, garbage, binary content.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::trt::parse::TrtVersion;

/// More than any of these files holds; a bigger one is not what we think it is.
const SMALL_FILE_LIMIT: u64 = 1 << 20;

fn read_small(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(SMALL_FILE_LIMIT).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The kernel module's version (`580.95.05`) from `/proc/driver/nvidia/version`.
pub(super) fn nvidia_driver_version() -> Option<String> {
    parse_nvidia_driver_version(&read_small(Path::new("/proc/driver/nvidia/version"))?)
}

/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Thu Sep 25 …` (open and proprietary modules alike;
/// the word before the version varies, and `x86_64`/`aarch64` must not be taken for it).
pub(super) fn parse_nvidia_driver_version(text: &str) -> Option<String> {
    let line = text.lines().find_map(|l| l.trim_start().strip_prefix("NVRM version:"))?;
    line.split_whitespace().find(|w| is_dotted_number(w, 2)).map(str::to_owned)
}

/// Digits separated by single dots, with at least `min_parts` parts.
fn is_dotted_number(word: &str, min_parts: usize) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() >= min_parts
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The L4T release (`36.4.3`): `/etc/nv_tegra_release`, else the `nvidia-l4t-core` package version, the fallback
/// NVIDIA's own Jetson scripts use when the release file is missing or empty.
pub(super) fn l4t() -> Option<String> {
    if let Some(version) = read_small(Path::new("/etc/nv_tegra_release")).and_then(|t| parse_nv_tegra_release(&t)) {
        return Some(version);
    }
    // Every Jetson is aarch64: elsewhere there is no L4T package to find in a status file of megabytes.
    if !cfg!(target_arch = "aarch64") {
        return None;
    }
    let file = std::fs::File::open("/var/lib/dpkg/status").ok()?;
    l4t_from_dpkg_status(BufReader::new(file))
}

/// `# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: …` → `36.4.3`.
pub(super) fn parse_nv_tegra_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with("# R"))?;
    let after_r = line.trim_start().strip_prefix("# R")?;
    let release: String = after_r.chars().take_while(char::is_ascii_digit).collect();
    if release.is_empty() || release.len() > 4 {
        return None;
    }
    let revision = line.split(',').find_map(|field| field.trim().strip_prefix("REVISION:"))?.trim();
    if !is_dotted_number(revision, 1) {
        return None;
    }
    Some(format!("{release}.{revision}"))
}

/// `Package: nvidia-l4t-core` … `Version: 36.4.3-20250107174145` → `36.4.3`.
pub(super) fn l4t_from_dpkg_status(reader: impl BufRead) -> Option<String> {
    let mut in_l4t_core = false;
    for line in reader.split(b'\n').take(2_000_000) {
        let line = line.ok()?;
        let line = String::from_utf8_lossy(&line);
        if let Some(package) = line.strip_prefix("Package:") {
            in_l4t_core = package.trim() == "nvidia-l4t-core";
        } else if line.trim().is_empty() {
            in_l4t_core = false;
        } else if in_l4t_core && let Some(version) = line.strip_prefix("Version:") {
            let version = version.trim();
            let upstream = version.split(['-', '+', '~']).next().unwrap_or("");
            // An epoch (`1:36.4.3`) is packaging, not the release.
            let upstream = upstream.rsplit(':').next().unwrap_or("");
            return is_dotted_number(upstream, 2).then(|| upstream.to_owned());
        }
    }
    None
}

/// Where TensorRT's library was found and what its file names say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FoundTensorRt {
    /// `10.3.0`; just the major (`10`) when only `libnvinfer.so.10` is there (pip wheels).
    pub version: String,
    pub path: PathBuf,
}

/// The TensorRT a `trtexec` or an application would load: libnvinfer in the loader's order (LD_LIBRARY_PATH, the
/// ld cache, then the usual folders), its version from the file name the soname link resolves to.
pub(super) fn tensorrt() -> Option<FoundTensorRt> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        candidates.extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Ok(mut file) = std::fs::File::open("/etc/ld.so.cache") {
        let mut bytes = Vec::new();
        if file.by_ref().take(16 << 20).read_to_end(&mut bytes).is_ok() {
            candidates
                .extend(nvinfer_paths_in_ld_cache(&bytes).into_iter().filter_map(|p| p.parent().map(Path::to_owned)));
        }
    }
    for dir in ["/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu"] {
        candidates.push(PathBuf::from(dir));
    }
    if let Ok(targets) = std::fs::read_dir("/usr/local/cuda/targets") {
        let mut dirs: Vec<PathBuf> = targets.filter_map(|e| e.ok()).map(|e| e.path().join("lib")).collect();
        dirs.sort();
        candidates.extend(dirs);
    }
    let mut seen = std::collections::HashSet::new();
    candidates.into_iter().filter(|d| seen.insert(d.clone())).find_map(|dir| tensorrt_in(&dir))
}

/// The best libnvinfer in one folder: the newest major there, spelled as precisely as its names allow.
pub(super) fn tensorrt_in(dir: &Path) -> Option<FoundTensorRt> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).take(100_000) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name == "libnvinfer.so" || name.starts_with("libnvinfer.so.")) {
            continue;
        }
        let path = entry.path();
        // `libnvinfer.so` and `libnvinfer.so.10` are links; the file they end at carries the full version.
        let resolved = std::fs::canonicalize(&path).ok();
        let names = [Some(name.to_owned()), resolved.as_ref().and_then(|r| r.file_name()?.to_str().map(str::to_owned))];
        for parts in names.iter().flatten().filter_map(|n| nvinfer_version_parts(n)) {
            let better = match &best {
                None => true,
                Some((b, _)) => (parts[0], parts.len(), &parts) > (b[0], b.len(), b),
            };
            if better {
                best = Some((parts, resolved.clone().unwrap_or_else(|| path.clone())));
            }
        }
    }
    best.map(|(parts, path)| FoundTensorRt { version: spell_version(&parts), path })
}

/// `libnvinfer.so.10.3.0` → [10, 3, 0]; `libnvinfer.so` (no version) and other libraries → None.
pub(super) fn nvinfer_version_parts(file_name: &str) -> Option<Vec<u32>> {
    let rest = file_name.strip_prefix("libnvinfer.so.")?;
    if !is_dotted_number(rest, 1) {
        return None;
    }
    let parts: Vec<u32> = rest.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    (parts.len() <= 4).then_some(parts)
}

/// `major.minor.patch` as `TrtVersion` prints it (a fourth, build component is dropped, so that the caller's
/// banner version and this one compare equal); a lone major stays as it is.
pub(super) fn spell_version(parts: &[u32]) -> String {
    match parts {
        [major] => major.to_string(),
        [major, minor] => TrtVersion::new(*major, *minor, 0).to_string(),
        [major, minor, patch, ..] => TrtVersion::new(*major, *minor, *patch).to_string(),
        [] => String::new(),
    }
}

/// The libnvinfer paths the ld cache lists. Rather than decode glibc's two cache layouts, take the NUL-separated
/// strings that are absolute paths to libnvinfer: both layouts store every library's full path that way.
pub(super) fn nvinfer_paths_in_ld_cache(bytes: &[u8]) -> Vec<PathBuf> {
    bytes
        .split(|&b| b == 0)
        .filter(|s| s.first() == Some(&b'/'))
        .filter_map(|s| std::str::from_utf8(s).ok())
        .map(PathBuf::from)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "libnvinfer.so" || n.starts_with("libnvinfer.so."))
        })
        .collect()
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub(super) fn mem_available_bytes() -> Option<u64> {
    parse_mem_available(&read_small(Path::new("/proc/meminfo"))?)
}

/// `MemAvailable:   12345678 kB` → bytes.
pub(super) fn parse_mem_available(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let mut words = rest.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nv_tegra_release_lines() {
        let jp62 = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\nTARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n";
        assert_eq!(parse_nv_tegra_release(jp62).as_deref(), Some("36.4.3"));
        let jp51 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023";
        assert_eq!(parse_nv_tegra_release(jp51).as_deref(), Some("35.4.1"));
        assert_eq!(
            parse_nv_tegra_release("# R38 (release), REVISION: 2.0, GCID: 1, BOARD: generic").as_deref(),
            Some("38.2.0")
        );
        assert_eq!(parse_nv_tegra_release("# R32 (release), REVISION: 7").as_deref(), Some("32.7"));
    }

    #[test]
    fn nv_tegra_release_garbage_gives_nothing() {
        for garbage in [
            "",
            "\0\0\u{fffd}binary",
            "# R (release), REVISION: 4.3",
            "# R36 (release), GCID: 1",
            "# R36 (release), REVISION: four",
            "# R36 (release), REVISION: 4..3",
            "# R36 (release), REVISION: ",
            "R36 REVISION: 4.3",
            "# R99999999999 (release), REVISION: 1.0",
        ] {
            assert_eq!(parse_nv_tegra_release(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn l4t_core_package_version() {
        let status = "Package: nvidia-l4t-kernel\nStatus: install ok installed\nVersion: 5.15.148-tegra-36.4.3-20250107174145\n\n\
                      Package: nvidia-l4t-core\nStatus: install ok installed\nVersion: 36.4.3-20250107174145\n\n";
        assert_eq!(l4t_from_dpkg_status(status.as_bytes()).as_deref(), Some("36.4.3"));
        assert_eq!(l4t_from_dpkg_status("Package: bash\nVersion: 5.2-1\n".as_bytes()), None);
        assert_eq!(l4t_from_dpkg_status("Package: nvidia-l4t-core\nVersion: garbage\n".as_bytes()), None);
    }

    #[test]
    fn nvidia_driver_version_lines() {
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Thu Sep 25 11:17:07 UTC 2025\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
        assert_eq!(parse_nvidia_driver_version(proprietary).as_deref(), Some("580.95.05"));
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22-I3-AE18-23-3)  Mon Oct  6 2025\n";
        assert_eq!(parse_nvidia_driver_version(open).as_deref(), Some("580.159.04"));
        let jetson = "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  540.4.0  Release Build  (buildbrain@mobile-u64-6336-d8000)  Tue Jan  7 17:35:12 PST 2025\n";
        assert_eq!(parse_nvidia_driver_version(jetson).as_deref(), Some("540.4.0"));
        assert_eq!(parse_nvidia_driver_version("GCC version: 12.2.0\n"), None);
        assert_eq!(parse_nvidia_driver_version("NVRM version: NVIDIA UNIX Kernel Module\n"), None);
        assert_eq!(parse_nvidia_driver_version(""), None);
    }

    #[test]
    fn libnvinfer_file_names() {
        assert_eq!(nvinfer_version_parts("libnvinfer.so.10.3.0"), Some(vec![10, 3, 0]));
        assert_eq!(nvinfer_version_parts("libnvinfer.so.8.5.2"), Some(vec![8, 5, 2]));
        assert_eq!(nvinfer_version_parts("libnvinfer.so.10"), Some(vec![10]));
        assert_eq!(nvinfer_version_parts("libnvinfer.so.10.3.0.26"), Some(vec![10, 3, 0, 26]));
        for other in [
            "libnvinfer.so",
            "libnvinfer_plugin.so.10.3.0",
            "libnvinfer.so.10.3.0.bak",
            "libnvinfer.so.x",
            "libnvinfer.so.",
        ] {
            assert_eq!(nvinfer_version_parts(other), None, "{other}");
        }
        assert_eq!(spell_version(&[10, 3, 0]), "10.3.0");
        assert_eq!(spell_version(&[10, 3, 0, 26]), "10.3.0");
        assert_eq!(spell_version(&[10, 16]), "10.16.0");
        assert_eq!(spell_version(&[10]), "10");
    }

    #[test]
    fn libnvinfer_links_resolve_to_the_full_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libnvinfer.so.10.3.0"), b"").unwrap();
        std::os::unix::fs::symlink("libnvinfer.so.10.3.0", dir.path().join("libnvinfer.so.10")).unwrap();
        std::os::unix::fs::symlink("libnvinfer.so.10", dir.path().join("libnvinfer.so")).unwrap();
        std::fs::write(dir.path().join("libnvinfer_plugin.so.10.7.0"), b"").unwrap();
        let found = tensorrt_in(dir.path()).unwrap();
        assert_eq!(found.version, "10.3.0");
        assert!(found.path.ends_with("libnvinfer.so.10.3.0"));

        // A pip wheel's folder holds only the soname.
        let wheel = tempfile::tempdir().unwrap();
        std::fs::write(wheel.path().join("libnvinfer.so.10"), b"").unwrap();
        assert_eq!(tensorrt_in(wheel.path()).unwrap().version, "10");

        // Two majors side by side: the newer one.
        let both = tempfile::tempdir().unwrap();
        std::fs::write(both.path().join("libnvinfer.so.8.6.2"), b"").unwrap();
        std::fs::write(both.path().join("libnvinfer.so.10.3.0"), b"").unwrap();
        assert_eq!(tensorrt_in(both.path()).unwrap().version, "10.3.0");

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(tensorrt_in(empty.path()), None);
        assert_eq!(tensorrt_in(&empty.path().join("missing")), None);
    }

    #[test]
    fn ld_cache_paths() {
        let mut cache = b"glibc-ld.so.cache1.1\0\0\x05\0\0\0".to_vec();
        for s in [
            "libnvinfer.so.10",
            "/usr/lib/aarch64-linux-gnu/libnvinfer.so.10",
            "libnvinfer_plugin.so.10",
            "/usr/lib/aarch64-linux-gnu/libnvinfer_plugin.so.10",
            "/usr/lib/aarch64-linux-gnu/tegra/libcuda.so.1",
        ] {
            cache.extend_from_slice(s.as_bytes());
            cache.push(0);
        }
        cache.extend_from_slice(b"\xff\xfe/\xff");
        assert_eq!(
            nvinfer_paths_in_ld_cache(&cache),
            vec![PathBuf::from("/usr/lib/aarch64-linux-gnu/libnvinfer.so.10")]
        );
        assert!(nvinfer_paths_in_ld_cache(b"").is_empty());
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:        7990464 kB\nMemFree:          283756 kB\nMemAvailable:    5123456 kB\n";
        assert_eq!(parse_mem_available(text), Some(5123456 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: 99999999999999999999 kB\n"), None);
    }
}
