//! The `=== Device Information ===` block.
//!
//! Labels differ by version: 8.2/8.5 print `Compute Clock Rate`/`Memory Clock Rate`, 8.6+ prefix them with
//! `Application`, 10.x adds `Available Devices:` with UUIDs and `Selected Device ID/UUID`. 7.x prints no
//! block at all. Labels this parser does not know are kept in `other` (trtexec prints no CUDA driver or
//! runtime version in any sample; should a build print one, it lands there).

use serde::Serialize;
use std::collections::BTreeMap;

use super::json::parse_float_token;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// `Selected Device: NVIDIA H100 PCIe` (`Orin` on Jetson).
    pub name: Option<String>,
    pub device_id: Option<u32>,
    pub uuid: Option<String>,
    /// As printed: `9.0`, `8.7`.
    pub compute_capability: Option<String>,
    pub sm_count: Option<u32>,
    pub global_memory_mib: Option<u64>,
    pub shared_memory_per_sm_kib: Option<u64>,
    pub memory_bus_width_bits: Option<u32>,
    pub ecc_enabled: Option<bool>,
    /// Application (or, before 8.6, nominal) clock rates; not the live clocks, as trtexec's own note says.
    pub compute_clock_ghz: Option<f64>,
    pub memory_clock_ghz: Option<f64>,
    /// `Available Devices:` entries (10.x).
    pub available: Vec<AvailableDevice>,
    /// Any other `key: value` line of the block.
    pub other: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvailableDevice {
    pub index: u32,
    pub name: String,
    pub uuid: Option<String>,
}

impl DeviceInfo {
    /// `(major, minor)` of the compute capability.
    pub fn compute_capability_pair(&self) -> Option<(u32, u32)> {
        let cc = self.compute_capability.as_deref()?;
        let (a, b) = cc.trim().split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// Feeds one message of the block. Returns false when the message cannot belong to the block, which
    /// ends it.
    pub(crate) fn take_line(&mut self, message: &str) -> bool {
        let m = message.trim();
        if m.is_empty() {
            return true;
        }
        if m.starts_with("===") || m.starts_with("TensorRT version") {
            return false;
        }
        if let Some(dev) = parse_available(m) {
            self.available.push(dev);
            return true;
        }
        let Some((key, value)) = m.split_once(':') else { return false };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Available Devices" => {}
            "Selected Device" => self.name = non_empty(value),
            "Selected Device ID" => self.device_id = value.parse().ok(),
            "Selected Device UUID" => self.uuid = non_empty(value),
            "Compute Capability" => self.compute_capability = non_empty(value),
            "SMs" => self.sm_count = value.parse().ok(),
            "Device Global Memory" => self.global_memory_mib = size_in(value, Unit::Mib),
            "Shared Memory per SM" => self.shared_memory_per_sm_kib = size_in(value, Unit::Kib),
            "Memory Bus Width" => {
                self.memory_bus_width_bits = leading_number(value).and_then(|n| n.parse().ok());
                if value.contains("ECC enabled") {
                    self.ecc_enabled = Some(true);
                } else if value.contains("ECC disabled") {
                    self.ecc_enabled = Some(false);
                }
            }
            "Application Compute Clock Rate" | "Compute Clock Rate" => self.compute_clock_ghz = ghz(value),
            "Application Memory Clock Rate" | "Memory Clock Rate" => self.memory_clock_ghz = ghz(value),
            // trtexec's reminder that application clocks are not live clocks; not device data.
            "Note" => {}
            _ => {
                self.other.insert(key.to_string(), value.to_string());
            }
        }
        true
    }
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// `Device 0: "NVIDIA H100 PCIe" UUID: GPU-31e9…`
fn parse_available(m: &str) -> Option<AvailableDevice> {
    let rest = m.strip_prefix("Device ")?;
    let (idx, rest) = rest.split_once(':')?;
    let index = idx.trim().parse().ok()?;
    let rest = rest.trim();
    let (name, after) = match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
        Some((n, a)) => (n.to_string(), a),
        None => match rest.split_once(" UUID:") {
            Some((n, _)) => (n.trim().to_string(), rest.get(n.len()..).unwrap_or("")),
            None => (rest.to_string(), ""),
        },
    };
    let uuid = after.split_once("UUID:").and_then(|(_, u)| non_empty(u.trim()));
    Some(AvailableDevice { index, name, uuid })
}

fn leading_number(v: &str) -> Option<&str> {
    v.split_whitespace().next()
}

enum Unit {
    Mib,
    Kib,
}

fn size_in(value: &str, want: Unit) -> Option<u64> {
    let mut words = value.split_whitespace();
    let n = parse_float_token(words.next()?)?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let unit = words.next().unwrap_or("");
    let kib = match unit {
        "B" | "bytes" => n / 1024.0,
        "KiB" | "KB" => n,
        "MiB" | "MB" | "" => n * 1024.0,
        "GiB" | "GB" => n * 1024.0 * 1024.0,
        _ => return None,
    };
    let out = match want {
        Unit::Kib => kib,
        Unit::Mib => kib / 1024.0,
    };
    (out < u64::MAX as f64).then(|| out.round() as u64)
}

fn ghz(value: &str) -> Option<f64> {
    let mut words = value.split_whitespace();
    let n = parse_float_token(words.next()?)?;
    match words.next().unwrap_or("GHz") {
        "GHz" => Some(n),
        "MHz" => Some(n / 1000.0),
        "kHz" | "KHz" => Some(n / 1_000_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_x_block() {
        let mut d = DeviceInfo::default();
        for l in [
            "Available Devices:",
            "  Device 0: \"NVIDIA H100 PCIe\" UUID: GPU-31e9692b-62b7-2d62-f0b1-f4195b568ac7",
            "Selected Device: NVIDIA H100 PCIe",
            "Selected Device ID: 0",
            "Compute Capability: 9.0",
            "SMs: 114",
            "Device Global Memory: 81081 MiB",
            "Shared Memory per SM: 228 KiB",
            "Memory Bus Width: 5120 bits (ECC enabled)",
            "Application Compute Clock Rate: 1.755 GHz",
            "Application Memory Clock Rate: 1.593 GHz",
            "",
            "Note: The application clock rates do not reflect the actual clock rates that the GPU is currently running at.",
            "CUDA Driver Version: 12.6",
        ] {
            assert!(d.take_line(l), "{l}");
        }
        assert!(!d.take_line("TensorRT version: 10.16.1"));
        assert_eq!(d.available[0].name, "NVIDIA H100 PCIe");
        assert_eq!(d.available[0].uuid.as_deref(), Some("GPU-31e9692b-62b7-2d62-f0b1-f4195b568ac7"));
        assert_eq!(d.compute_capability_pair(), Some((9, 0)));
        assert_eq!(d.global_memory_mib, Some(81081));
        assert_eq!(d.shared_memory_per_sm_kib, Some(228));
        assert_eq!(d.ecc_enabled, Some(true));
        assert_eq!(d.memory_clock_ghz, Some(1.593));
        assert_eq!(d.other.get("CUDA Driver Version").map(String::as_str), Some("12.6"));
    }

    #[test]
    fn odd_values_do_not_panic() {
        let mut d = DeviceInfo::default();
        for l in [
            "Device : x",
            "Device 1:",
            "Device Global Memory: -5 MiB",
            "Memory Bus Width:",
            "SMs: lots",
            "Compute Clock Rate: 918 MHz",
        ] {
            d.take_line(l);
        }
        assert_eq!(d.global_memory_mib, None);
        assert_eq!(d.compute_clock_ghz, Some(0.918));
        assert_eq!(d.available.len(), 1);
    }
}
