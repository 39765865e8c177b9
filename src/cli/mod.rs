//! The command line: argument types (clap), one module per subcommand, and the exit code.
//! Every command calls library functions; nothing here computes what the daemon would need too.

mod build;
mod bundle;
mod calibrate;
mod check_config;
mod device;
mod export;
mod inspect;
mod keygen;
mod parse_trtexec;
mod progress;
mod run;
mod search;
mod simulate;
mod status;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Failure;

/// precisiond builds verified mixed FP16/INT8 TensorRT engines on the device that runs them.
///
/// It calibrates INT8 scales from sample data, finds the layers that must stay FP16 under an accuracy budget,
/// builds the engine, verifies it against FP32 and publishes it atomically with rollback.
#[derive(Debug, Parser)]
#[command(name = "precisiond", version, about, long_about, max_term_width = 110)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(build::Args),
    Bundle(bundle::Args),
    Calibrate(calibrate::Args),
    #[command(name = "check-config")]
    CheckConfig(check_config::Args),
    Device(device::Args),
    Export(export::Args),
    Inspect(inspect::Args),
    Keygen(keygen::Args),
    #[command(name = "parse-trtexec")]
    ParseTrtexec(parse_trtexec::Args),
    Run(run::Args),
    Search(search::Args),
    Simulate(simulate::Args),
    Status(status::Args),
    Verify(verify::Args),
}

/// Runs the command line and renders any failure; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A wrong argument is the user's input at fault: exit 1 as the contract says, not clap's 2.
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Bundle(args) => bundle::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Device(args) => device::run(args),
        Command::Export(args) => export::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::ParseTrtexec(args) => parse_trtexec::run(args),
        Command::Run(args) => run::run(args),
        Command::Search(args) => search::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Status(args) => status::run(args),
        Command::Verify(args) => verify::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = std::io::stderr().write_all(failure.to_string().as_bytes());
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Writes to stdout; a closed pipe (`precisiond inspect m.onnx | head`) ends quietly instead of panicking.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Failure::new(format!("cannot write to standard output: {e}"), crate::error::Fault::Environment)),
        Ok(()) => Ok(()),
    }
}

/// The bundle and the plan a command works on (simulate, export).
#[derive(Debug, clap::Args)]
pub(crate) struct PlanSource {
    /// The bundle folder.
    pub bundle: std::path::PathBuf,
    /// A plan file (`plan.toml` from `search`); default: the spec's `[precision]` resolved.
    #[arg(long)]
    pub plan: Option<std::path::PathBuf>,
    /// A `scales.json` from `calibrate`; default: the spec's `calibration.scales`, else calibrate now.
    #[arg(long)]
    pub scales: Option<std::path::PathBuf>,
}

/// `NAME=D1,D2,…` (or `NAME=D1xD2x…`): a concrete input shape.
pub(crate) fn parse_shape_arg(text: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = text.rsplit_once('=').ok_or_else(|| format!("`{text}` is not NAME=D1,D2,…"))?;
    let dims: Result<Vec<usize>, _> =
        dims.split([',', 'x']).map(|d| d.trim().parse::<usize>().map_err(|_| format!("`{d}` is not a dimension"))).collect();
    let dims = dims?;
    if name.is_empty() || dims.is_empty() || dims.contains(&0) {
        return Err(format!("`{text}` is not NAME=D1,D2,… with positive dimensions"));
    }
    Ok((name.to_owned(), dims))
}
