use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::Failure;
use crate::trt::parse::{self, ContractStats, TrtexecOutput};

/// Read any trtexec output (7.x to 11.x) as structured data.
///
/// A console log gives the TensorRT version, PASSED/FAILED with the failure's class and a hint, and the
/// performance summary. An `--exportProfile`, `--exportLayerInfo`, `--exportTimes` or `--exportOutput` JSON file is
/// recognised too and printed as JSON.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trtexec console log (stdout and stderr) or one of its JSON exports.
    log: PathBuf,
    /// Print JSON. For a log: `tensorrt_version, status, failure, perf {throughput_qps, latency_ms {min, max, mean,
    /// median, p90, p95, p99}, gpu_compute_ms {…}}` (null where the log has none), then `failure_hint, device,
    /// trtexec_args, failure_message, failure_line, runs`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let parsed = parse::parse_any_file(&args.log)?;
    let json = |value: serde_json::Result<String>| value.expect("plain data serializes") + "\n";
    let text = match parsed {
        TrtexecOutput::Log(log) if args.json => json(serde_json::to_string_pretty(&log.to_report_json())),
        TrtexecOutput::Log(log) => render_log(&log.to_report_json()),
        TrtexecOutput::Profile(p) => json(serde_json::to_string_pretty(&p)),
        TrtexecOutput::LayerInfo(l) => json(serde_json::to_string_pretty(&l)),
        TrtexecOutput::Times(t) => json(serde_json::to_string_pretty(&t)),
        TrtexecOutput::Output(o) => json(serde_json::to_string_pretty(&o)),
    };
    super::print(&text)
}

fn render_log(report: &parse::ReportJson) -> String {
    let c = &report.contract;
    let mut out = String::new();
    let _ = writeln!(out, "tensorrt:   {}", c.tensorrt_version.as_deref().unwrap_or("unknown (no version in the banner)"));
    let status = serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let _ = writeln!(out, "status:     {status}");
    if let Some(failure) = c.failure {
        let _ = writeln!(out, "failure:    {}", failure.as_str());
    }
    match (report.failure_line, &report.failure_message) {
        (Some(line), Some(message)) => {
            let _ = writeln!(out, "evidence:   line {line}: {message}");
        }
        (None, Some(message)) => {
            let _ = writeln!(out, "note:       {message}");
        }
        _ => {}
    }
    if report.runs > 1 {
        let _ = writeln!(out, "runs:       {} (the figures are the last run's)", report.runs);
    }
    if let Some(hint) = &c.failure_hint {
        let _ = writeln!(out, "hint:       {hint}");
    }
    if let Some(device) = &c.device {
        let _ = writeln!(
            out,
            "device:     {} (compute capability {})",
            device.name.as_deref().unwrap_or("?"),
            device.compute_capability.as_deref().unwrap_or("?")
        );
    }
    match &c.perf {
        None => {
            let _ = writeln!(out, "perf:       none in this log");
        }
        Some(perf) => {
            let number = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v}"));
            let _ = writeln!(out, "throughput: {} qps", number(perf.throughput_qps));
            let _ = writeln!(out, "{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}", "ms", "min", "max", "mean", "median", "p90", "p95", "p99");
            let row = |name: &str, s: &ContractStats| {
                format!(
                    "{name:<16}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
                    number(s.min),
                    number(s.max),
                    number(s.mean),
                    number(s.median),
                    number(s.p90),
                    number(s.p95),
                    number(s.p99)
                )
            };
            out.push_str(&row("latency", &perf.latency_ms));
            out.push_str(&row("gpu compute", &perf.gpu_compute_ms));
        }
    }
    out
}
