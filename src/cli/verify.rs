use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::build::verify::Verification;
use crate::build::{Watch, verify_dir};
use crate::error::Failure;

/// Verify a build folder's engine again: run it on its bundle's evaluation samples and compare with FP32 under the
/// spec's budget (and its latency with the latency budget). Writes nothing; exit 0 on a pass, 1 on a fail.
///
/// The bundle is the one `build.json` records (give `--bundle` if it moved); a tensorrt engine is run by the
/// trtexec it was built with unless `--trtexec` says otherwise.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder written by `precisiond build` (or a published version folder).
    dir: PathBuf,
    /// The bundle to verify against, instead of the one recorded in build.json.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The trtexec to run a tensorrt engine with.
    #[arg(long, value_name = "PATH")]
    trtexec: Option<PathBuf>,
    /// Time limit of each trtexec run.
    #[arg(long, default_value = "10m", value_parser = super::build::parse_duration)]
    timeout: Duration,
    /// Print verify.json's document: verdict, metrics, latency_ms {median, p99}, backend, tensorrt_version, reasons.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let progress = super::progress::Reporter::for_stderr();
    let cancel = super::build::cancel_on_signals();
    let on_stage = |_: crate::build::Stage, _: &str| {};
    let watch = Watch { progress: &progress, on_stage: &on_stage, cancel };
    let (_, verification) = verify_dir(&args.dir, args.bundle.as_deref(), args.trtexec.as_deref(), args.timeout, &watch)
        .map_err(|e| Failure::from(e).context(format!("cannot verify {}", args.dir.display())))?;
    if args.json {
        #[derive(Serialize)]
        struct Doc<'a>(&'a Verification);
        super::print(&(serde_json::to_string_pretty(&Doc(&verification)).expect("plain data serializes") + "\n"))?;
    } else {
        super::print(&super::build::render_verification(&verification))?;
    }
    super::build::verdict_result(&verification, &args.dir)
}
