use std::path::PathBuf;

use crate::calib::{Algorithm, CacheHeader, TrtVersion};
use crate::error::{Failure, ResultExt};
use crate::pipeline::Job;

/// Compute INT8 scales from a bundle's calibration samples.
///
/// Runs the FP32 model over `calib/` (at most `calibration.samples` samples), folds every activation that a
/// quantizable layer reads into a streaming histogram, and picks each tensor's range with the spec's method
/// (entropy, minmax, percentile or mse). Weights get per-output-channel scales. Writes `scales.json` and
/// `calib.cache` (TensorRT's calibration cache format, for implicit-quantization builds).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle folder (sealed: `precisiond bundle seal DIR`).
    bundle: PathBuf,
    /// Where to write `scales.json` and `calib.cache` (created if missing).
    #[arg(long, default_value = "precisiond-out")]
    out: PathBuf,
    /// The TensorRT version the cache header names, e.g. 8.5.2 (JetPack 5), 10.3.0 (JetPack 6.1/6.2).
    #[arg(long, value_name = "VERSION", default_value = "10.3.0", value_parser = parse_version)]
    tensorrt: TrtVersion,
}

fn parse_version(text: &str) -> Result<TrtVersion, String> {
    let parts: Vec<u32> = text.split('.').map(|p| p.parse::<u32>().map_err(|_| format!("`{text}` is not a version like 10.3.0"))).collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [major, minor] => Ok(TrtVersion::new(*major, *minor, 0)),
        [major, minor, patch, ..] => Ok(TrtVersion::new(*major, *minor, *patch)),
        _ => Err(format!("`{text}` is not a version like 10.3.0")),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let job = Job::open(&args.bundle)?;
    let progress = super::progress::Reporter::for_stderr();
    let started = std::time::Instant::now();
    let scales = job.calibrate(&progress)?;
    // trtexec's own calibrator is EntropyCalibration2 and it reads a cache only under that name, whatever method
    // chose the ranges. Both files are rendered before either is written.
    let cache = scales
        .to_calibration_cache(CacheHeader::new(args.tensorrt, Algorithm::EntropyCalibration2))
        .context(|| "cannot render the calibration cache".into())?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", args.out.display()), crate::error::Fault::Environment))?;
    let scales_path = args.out.join("scales.json");
    let cache_path = args.out.join("calib.cache");
    scales.write(&scales_path)?;
    cache.write(&cache_path)?;
    super::print(&format!(
        "calibrated {} activations and {} weights ({}) in {:.1} s\nwrote {}\nwrote {}\n",
        scales.activations().len(),
        scales.weights().len(),
        scales.method(),
        started.elapsed().as_secs_f64(),
        scales_path.display(),
        cache_path.display()
    ))
}
