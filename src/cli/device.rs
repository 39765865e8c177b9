use std::fmt::Write as _;

use serde::Serialize;

use crate::device::{self, Fingerprint};
use crate::error::{Failure, Fault};

/// Show this device: its GPUs, the CUDA driver, TensorRT and Jetson Linux (L4T) versions, and the fingerprint
/// engines are built for.
///
/// Nothing is run: the GPUs come from the CUDA driver, the rest from files (/proc/driver/nvidia/version,
/// /etc/nv_tegra_release, libnvinfer's file names). A machine without GPU or driver is reported as such, with exit
/// status 0. PRECISIOND_FAKE_FINGERPRINT=FILE.json shows FILE instead (tests use it to simulate a firmware update).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (stable: `gpus[] {name, compute_capability, driver_version, memory_total_bytes, uuid}`,
    /// `cuda_driver`, `tensorrt`, `l4t`, null where absent; then `notes`, `key`, `mem_available_bytes`, and per GPU
    /// `integrated`, `memory_free_bytes`).
    #[arg(long)]
    json: bool,
}

/// The contract document: the fingerprint's keys first, then what helps a person or the daemon's memory guard.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    fingerprint: &'a Fingerprint,
    key: String,
    mem_available_bytes: Option<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut fingerprint = device::try_fingerprint_with(None)?;
    fingerprint.measure_free_memory();
    let report = Report {
        key: fingerprint.key(),
        mem_available_bytes: device::mem_available_bytes(),
        fingerprint: &fingerprint,
    };
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::new(format!("cannot render the device as JSON: {e}"), Fault::Environment))?;
        return super::print(&(json + "\n"));
    }
    super::print(&render(&report))
}

fn render(report: &Report) -> String {
    let f = report.fingerprint;
    let mut out = String::new();
    if f.gpus.is_empty() {
        let _ = writeln!(out, "GPUs:           none");
    }
    for (i, gpu) in f.gpus.iter().enumerate() {
        let free = gpu.memory_free_bytes.map_or(String::new(), |b| format!(", {} free", gib(b)));
        let kind = if gpu.integrated { ", integrated" } else { "" };
        let _ = writeln!(
            out,
            "GPU {i}:          {} (compute capability {}, {}{free}{kind})",
            gpu.name,
            gpu.compute_capability,
            gib(gpu.memory_total_bytes)
        );
        let _ = writeln!(out, "                {}", gpu.uuid.as_deref().unwrap_or("uuid unknown"));
    }
    let driver = f.gpus.iter().find_map(|g| g.driver_version.as_deref());
    let _ = writeln!(out, "NVIDIA driver:  {}", driver.unwrap_or("unknown"));
    let _ = writeln!(out, "CUDA driver:    {}", f.cuda_driver.as_deref().unwrap_or("none"));
    let _ = writeln!(out, "TensorRT:       {}", f.tensorrt.as_deref().unwrap_or("not found"));
    let _ = writeln!(out, "L4T:            {}", f.l4t.as_deref().unwrap_or("none (not a Jetson)"));
    if let Some(available) = report.mem_available_bytes {
        let _ = writeln!(out, "host memory:    {} available", gib(available));
    }
    let _ = writeln!(out, "fingerprint:    {}", report.key);
    for note in &f.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}
