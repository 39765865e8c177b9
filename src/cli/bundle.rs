use std::fmt::Write as _;
use std::path::PathBuf;

use crate::bundle::{self, SealReport};
use crate::error::{Failure, ResultExt};

/// Make and check bundles: the folder (model.onnx, precision.toml, calib/, eval/) a device builds an engine from.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Seal(SealArgs),
}

/// Check a bundle folder and write its manifest, bundle.toml (every file with its size and sha256).
///
/// Writes a starter precision.toml first if the folder has none. Refuses a bundle that a device would refuse: a
/// model that does not load, a spec that does not parse or does not fit the model's inputs, sample files of unknown
/// kinds or wrong .npy shapes, calib/ and eval/ sharing a file, symbolic links.
#[derive(Debug, clap::Args)]
struct SealArgs {
    /// The bundle folder.
    dir: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Command::Seal(args) => {
            let report = bundle::seal(&args.dir).context(|| format!("cannot seal {}", args.dir.display()))?;
            super::print(&render_seal(&report))
        }
    }
}

fn render_seal(r: &SealReport) -> String {
    let mut out = String::new();
    if r.starter_written {
        let _ =
            writeln!(out, "wrote a starter precision.toml from the model's inputs: review it before the bundle ships");
    }
    let verb = if r.unchanged { "unchanged" } else { "wrote" };
    let _ = writeln!(out, "{verb} {}: {} files, {}", r.manifest.display(), r.files, human_bytes(r.total_bytes));
    let used = if r.calib_used < r.calib_samples {
        format!(" ({} used: calibration.samples)", r.calib_used)
    } else {
        String::new()
    };
    let _ = writeln!(out, "samples: {} calibration{used}, {} evaluation", r.calib_samples, r.eval_samples);
    let _ = writeln!(out, "sha256: {}", r.manifest_sha256);
    if r.stale_signature {
        let _ = writeln!(out, "note: bundle.toml.sig signs the previous manifest; sign the bundle again");
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({n} bytes)", UNITS[unit])
}
