use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use crate::build::verify::Verification;
use crate::build::{Backend, BuildOptions, BuildRecord, Watch, build_bundle};
use crate::error::{Failure, Fault};
use crate::pipeline::Job;
use crate::search::Strategy;

/// Where JetPack's `libnvinfer-bin` puts trtexec (not on PATH by default).
pub const DEFAULT_TRTEXEC: &str = "/usr/src/tensorrt/bin/trtexec";

/// Build the engine for a bundle on this device, verify it against FP32 on the bundle's evaluation samples, and
/// write a build folder.
///
/// Calibrates (or reads the spec's scales), takes the spec's plan (`mode = "fixed"`) or searches one on CPU
/// (`mode = "search"`; with the tensorrt backend the search's latency model uses the measured per-layer profiles of
/// an all-FP16 and an all-INT8 build), builds the engine, runs it on eval/ and checks every budget bound. When the
/// engine misses a budget the simulation met, the most sensitive INT8 layers fall back to FP16 and it is rebuilt,
/// at most twice. Identical jobs reuse their engine from the engine store.
///
/// The folder holds the engine (`engine.plan`, or `model.onnx` for the cpu backend), `plan.toml`, `scales.json`,
/// `calib.cache`, `verify.json`, `build.log`, `fingerprint.json` and `build.json`. Exit 0 when the engine passes,
/// 1 when it fails verification (the folder is still written, for inspection).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle folder.
    bundle: PathBuf,
    /// `tensorrt` drives trtexec; `cpu` bakes the plan into the ONNX model and runs it with the CPU executor.
    /// Default: tensorrt when trtexec is found, else cpu.
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// The trtexec to drive.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_TRTEXEC)]
    trtexec: PathBuf,
    /// The build folder to write (replaced if it holds an earlier build).
    #[arg(long, default_value = "precisiond-build")]
    out: PathBuf,
    /// Where built engines are kept for reuse by identical jobs [default: $XDG_CACHE_HOME/precisiond/engines].
    #[arg(long, value_name = "DIR", conflicts_with = "no_engine_store")]
    engine_store: Option<PathBuf>,
    /// Build every engine afresh, keeping none.
    #[arg(long)]
    no_engine_store: bool,
    /// A plan file (`plan.toml` from `search` or an earlier build): build it as is, no search.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// A `scales.json` from `calibrate` or an earlier build: no calibration.
    #[arg(long)]
    scales: Option<PathBuf>,
    /// The search strategy when the spec says `mode = "search"`.
    #[arg(long, value_enum, default_value = "sensitivity")]
    strategy: Strategy,
    /// Time limit of each trtexec run, e.g. `30m`, `90s`.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    timeout: Duration,
    /// Print `build.json` and `verify.json` as one JSON document: `{build, verify}`.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Tensorrt,
    Cpu,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let job = Job::open(&args.bundle)?;
    let progress = super::progress::Reporter::for_stderr();
    let backend = match args.backend {
        Some(BackendArg::Cpu) => Backend::Cpu,
        Some(BackendArg::Tensorrt) => Backend::tensorrt(&args.trtexec, args.timeout, None)?,
        None if args.trtexec.exists() => Backend::tensorrt(&args.trtexec, args.timeout, None)?,
        None => {
            eprintln!("note: no trtexec at {}: using the cpu backend (--backend cpu to say so)", args.trtexec.display());
            Backend::Cpu
        }
    };
    let engine_store = if args.no_engine_store { None } else { Some(args.engine_store.clone().unwrap_or_else(default_engine_store)) };
    let backend = match backend {
        Backend::TensorRt(mut t) => {
            t.timing_cache = engine_store.as_ref().map(|s| s.join("timing.cache"));
            Backend::TensorRt(t)
        }
        cpu => cpu,
    };
    let fingerprint = crate::device::fingerprint_with(backend.tensorrt_version().as_ref());
    let options =
        BuildOptions { backend, engine_store, strategy: args.strategy, fingerprint, plan: args.plan, scales: args.scales };

    let staging = staging_for(&args.out)?;
    let cancel = cancel_on_signals();
    let on_stage = |stage: crate::build::Stage, detail: &str| {
        if !detail.is_empty() {
            eprintln!("{}: {detail}", stage.as_str());
        } else {
            eprintln!("{}", stage.as_str());
        }
    };
    let watch = Watch { progress: &progress, on_stage: &on_stage, cancel };
    let outcome = match build_bundle(&job, &options, &staging, &watch) {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(Failure::from(e).context(format!("cannot build {}", args.bundle.display())));
        }
    };
    replace_dir(&staging, &args.out)?;

    if args.json {
        #[derive(Serialize)]
        struct Both<'a> {
            build: &'a BuildRecord,
            verify: &'a Verification,
        }
        let both = Both { build: &outcome.record, verify: &outcome.verification };
        super::print(&(serde_json::to_string_pretty(&both).expect("plain data serializes") + "\n"))?;
    } else {
        super::print(&render(&outcome.record, &outcome.verification, &args.out))?;
    }
    verdict_result(&outcome.verification, &args.out)
}

/// Exit 1 with the reasons when the engine failed verification.
pub(crate) fn verdict_result(v: &Verification, dir: &Path) -> Result<(), Failure> {
    if v.passed() {
        return Ok(());
    }
    Err(Failure::new(format!("the engine failed verification: {}", v.reasons.join("; ")), Fault::Input)
        .with_hint(format!("see {} and build.log there; loosen the budget or keep more layers in FP16", dir.join("verify.json").display())))
}

pub(crate) fn render_verification(v: &Verification) -> String {
    let latency = match v.latency_ms {
        Some(l) => format!("median {:.3} ms, p99 {:.3} ms", l.median, l.p99),
        None => "not measured (cpu backend)".into(),
    };
    let mut s = format!(
        "verdict:     {} on {} eval samples ({})\n\
         accuracy:    {}\n\
         latency:     {latency}\n",
        match v.verdict {
            crate::build::verify::Verdict::Pass => "PASS",
            crate::build::verify::Verdict::Fail => "FAIL",
        },
        v.samples,
        v.budget.join(", "),
        crate::search::metrics_line(&v.metrics),
    );
    if let Some(sim) = &v.simulated {
        s.push_str(&format!("simulated:   {}\n", crate::search::metrics_line(sim)));
    }
    for reason in &v.reasons {
        s.push_str(&format!("missed:      {reason}\n"));
    }
    for note in &v.notes {
        s.push_str(&format!("note:        {note}\n"));
    }
    s
}

fn render(r: &BuildRecord, v: &Verification, out: &Path) -> String {
    let backend = match (&r.tensorrt_version, &r.trtexec) {
        (Some(version), Some(path)) => format!("tensorrt {version} ({})", path.display()),
        _ => r.backend.clone(),
    };
    let last = r.attempts.last();
    let plan = last.map_or(String::new(), |a| {
        let fraction = a.plan.int8_mac_fraction.map_or(String::new(), |f| format!("; {:.1} % of MACs in INT8", f * 100.0));
        format!("{} int8, {} fp16, {} fp32{fraction}", a.plan.int8, a.plan.fp16, a.plan.fp32)
    });
    let how = match &r.search {
        Some(s) => format!(" (searched: {}, {} evaluations, latency model: {})", s.strategy, s.evaluations, s.latency_source),
        None => " (fixed)".into(),
    };
    let mut s = format!(
        "backend:     {backend}\nplan:        {plan}{how}\nbuilds:      {} ({} profile, {} final); {} engine(s) reused from the store\n",
        r.builds,
        r.profile_builds,
        r.builds - r.profile_builds,
        r.reused_engines,
    );
    for (i, a) in r.attempts.iter().enumerate().skip(1) {
        s.push_str(&format!("fallback {i}:  {} to FP16\n", a.fell_back.join(", ")));
    }
    s.push_str(&render_verification(v));
    s.push_str(&format!("wrote:       {}/{{{}, plan.toml, verify.json, build.log, build.json, …}}\n", out.display(), r.engine));
    s
}

fn default_engine_store() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("precisiond/engines")
}

/// A fresh folder next to `out` to build into; `out` is replaced only once the build folder is complete, and only
/// if it is an earlier build folder (or absent, or empty): nothing else is ever overwritten.
fn staging_for(out: &Path) -> Result<PathBuf, Failure> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty && !out.join("build.json").exists() {
            return Err(Failure::new(format!("{}: exists and is not a build folder; not overwriting it", out.display()), Fault::Input)
                .with_hint("choose another --out"));
        }
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display()), Fault::Environment))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("build");
    let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    Ok(staging)
}

fn replace_dir(staging: &Path, out: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::new(format!("cannot move the build folder into {}: {e}", out.display()), Fault::Environment);
    if out.exists() {
        let old = staging.with_extension("old");
        std::fs::rename(out, &old).map_err(fail)?;
        std::fs::rename(staging, out).map_err(fail)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(staging, out).map_err(fail)?;
    }
    Ok(())
}

static CANCEL: AtomicBool = AtomicBool::new(false);

/// A flag raised by SIGINT or SIGTERM. trtexec runs in its own process group, so a Ctrl-C in the terminal does not
/// reach it: precisiond must kill the group itself, which `trt::run` does when this flag is raised.
pub(crate) fn cancel_on_signals() -> &'static AtomicBool {
    extern "C" fn raise(_: libc::c_int) {
        CANCEL.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let handler = raise as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    &CANCEL
}

/// `30m`, `90s`, `2h`, `500ms`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30m, 90s or 2h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if seconds <= 0.0 || !seconds.is_finite() {
        return Err(format!("`{text}` must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }
}
