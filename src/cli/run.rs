use std::path::PathBuf;

use crate::daemon::config::{self, Config};
use crate::error::Failure;

/// Run the daemon: watch the inbox for bundles, build and verify their engines one job at a time, publish each
/// passing engine to `live/<model>` atomically (rolling back if the hook or Triton objects), rebuild live engines
/// after a firmware update, and report upstream.
///
/// Without `--config`, reads /etc/precisiond/config.toml when it exists, else runs a local try-out under
/// ./precisiond/ (inbox ./precisiond/inbox, state ./precisiond/state, cpu backend, status on 127.0.0.1:9464).
/// SIGHUP reloads the configuration; SIGTERM or SIGINT stops it (a running job resumes at the next start).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (see `precisiond check-config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let default = PathBuf::from(config::DEFAULT_PATH);
    let config = match args.config {
        Some(path) => Config::load(&path)?,
        None if default.exists() => Config::load(&default)?,
        None => Config::local(),
    };
    crate::daemon::run(config).map_err(|e| Failure::from(e).context("the daemon stopped"))
}
