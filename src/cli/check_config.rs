use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::daemon::config::{Backend, Config, ConfigError};
use crate::error::{Failure, Fault};

/// Check a daemon configuration file and show the configuration in effect (every default filled in).
///
/// Reports every problem at once, each with its line: syntax, unknown keys (with the key probably meant), wrong
/// values, combinations that cannot work, trusted key files that are missing or not keys. Exit status 0 when the
/// daemon can start with it (warnings, e.g. trtexec not installed, are printed but do not fail), 1 otherwise. The
/// systemd unit runs it as ExecStartPre.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (the packaged one is /etc/precisiond/config.toml).
    file: PathBuf,
    /// Print JSON: `{file, ok, config (the effective configuration, or null), errors[], warnings[]}`, each problem
    /// `{line, key, message, hint}` (null where absent). Errors are also printed to stderr.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let result = Config::load(&args.file);
    let warnings = match &result {
        Ok(config) => config.warnings.as_slice(),
        Err(e) => e.warnings(),
    };
    if args.json {
        let document = json!({
            "file": args.file,
            "ok": result.is_ok(),
            "config": result.as_ref().ok().map(config_json),
            "errors": result.as_ref().err().map(ConfigError::problems).unwrap_or_default(),
            "warnings": warnings,
        });
        let text = serde_json::to_string_pretty(&document)
            .map_err(|e| Failure::new(format!("cannot render the configuration as JSON: {e}"), Fault::Environment))?;
        super::print(&(text + "\n"))?;
    } else {
        let mut err = String::new();
        for warning in warnings {
            let _ = writeln!(err, "warning: {}", warning.render(&args.file));
            if let Some(hint) = &warning.hint {
                let _ = writeln!(err, "    hint: {hint}");
            }
        }
        eprint!("{err}");
        if let Ok(config) = &result {
            super::print(&summary(&args.file, config))?;
        }
    }
    result.map(|_| ()).map_err(Failure::from)
}

fn summary(file: &std::path::Path, c: &Config) -> String {
    let mut out = format!("{}: ok\n", file.display());
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<15}{value}");
    };
    row("inbox", c.inbox.display().to_string());
    row("state_dir", c.state_dir.display().to_string());
    row(
        "backend",
        match c.backend {
            Backend::Tensorrt => format!("tensorrt, trtexec {}", c.trtexec.display()),
            Backend::Cpu => "cpu".into(),
        },
    );
    row("keep_versions", c.keep_versions.to_string());
    row("build_timeout", humantime::format_duration(c.build_timeout).to_string());
    row("debounce", humantime::format_duration(c.debounce).to_string());

    let p = &c.publish;
    let mut publish = vec!["live/<model> link".to_string()];
    if let Some(hook) = &p.hook {
        publish.push(format!("hook `{hook}` (timeout {})", humantime::format_duration(p.hook_timeout)));
    }
    if let Some(repo) = &p.triton_repository {
        let load = p.triton_url.as_ref().map_or(String::new(), |u| format!(", loaded through {u}"));
        publish.push(format!("Triton repository {}{load}", repo.display()));
    }
    row("publish", publish.join("; "));

    let u = &c.upstream;
    let mut upstream = Vec::new();
    if let Some(url) = &u.url {
        let token = u.token_file.as_ref().map_or(String::new(), |t| format!(" (token from {})", t.display()));
        upstream.push(format!("events to {url}{token}, outbox at most {} MiB", u.outbox_max_mib));
    }
    if let Some(otlp) = &u.otlp_url {
        upstream.push(format!("metrics to {otlp}"));
    }
    row("upstream", if upstream.is_empty() { "none".into() } else { upstream.join("; ") });
    row("status", c.status.listen.map_or("off".into(), |a| format!("http://{a}/ (/status, /metrics, /healthz)")));

    let s = &c.security;
    let required = if s.require_signature { "signature required" } else { "signature not required" };
    let keys = match s.trusted.as_slice() {
        [] => "no trusted key".to_string(),
        keys => {
            let list: Vec<String> =
                keys.iter().zip(&s.trusted_keys).map(|(k, f)| format!("{} ({})", k.id(), f.display())).collect();
            format!("trusted: {}", list.join(", "))
        }
    };
    row("security", format!("{required}, {keys}; bundle files at most {} MiB", s.max_file_mib));
    out
}

fn config_json(c: &Config) -> serde_json::Value {
    let duration = |d| humantime::format_duration(d).to_string();
    json!({
        "inbox": c.inbox,
        "state_dir": c.state_dir,
        "backend": c.backend.name(),
        "trtexec": c.trtexec,
        "keep_versions": c.keep_versions,
        "build_timeout": duration(c.build_timeout),
        "debounce": duration(c.debounce),
        "publish": {
            "hook": c.publish.hook,
            "hook_timeout": duration(c.publish.hook_timeout),
            "triton_repository": c.publish.triton_repository,
            "triton_url": c.publish.triton_url,
        },
        "upstream": {
            "url": c.upstream.url,
            "token_file": c.upstream.token_file,
            "otlp_url": c.upstream.otlp_url,
            "outbox_max_mib": c.upstream.outbox_max_mib,
        },
        "status": { "listen": c.status.listen.map_or("off".to_string(), |a| a.to_string()) },
        "security": {
            "require_signature": c.security.require_signature,
            "trusted_keys": c.security.trusted.iter().zip(&c.security.trusted_keys)
                .map(|(k, f)| json!({ "file": f, "key_id": k.id().to_string() }))
                .collect::<Vec<_>>(),
            "max_file_mib": c.security.max_file_mib,
        },
    })
}
