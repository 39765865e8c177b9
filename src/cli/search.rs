use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Failure, Fault};
use crate::pipeline::Job;
use crate::precision::plan::PlanSummary;
use crate::search::report::SearchReport;
use crate::search::{Strategy, search};
use crate::simulate::Metrics;

/// Find the layers that must leave INT8 to meet the spec's accuracy budget, on CPU-simulated accuracy.
///
/// `sensitivity` (default) ranks layers by the noise each adds alone in INT8 per millisecond INT8 saves it, then
/// finds the fewest to move to FP16 (FP32 when FP16 does not suffice) and prunes; `sequential` is the hand recipe
/// (all INT8, then one layer at a time from the output end); `bisect` is Polygraphy-style bisection. Writes
/// `plan.toml` (use it with `--plan`), `report.json` and `report.svg` (open it in a browser). Exit 1 when no plan
/// meets the budget; the best one found is written and shown.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle folder.
    bundle: PathBuf,
    #[arg(long, value_enum, default_value = "sensitivity")]
    strategy: Strategy,
    /// Where to write plan.toml, report.json and report.svg.
    #[arg(long, default_value = "precisiond-out")]
    out: PathBuf,
    /// A `scales.json` from `calibrate`; default: the spec's `calibration.scales`, else calibrate now.
    #[arg(long)]
    scales: Option<PathBuf>,
    /// A trtexec `--exportProfile` JSON of the all-FP16 engine: measured per-layer times replace the nominal
    /// latency model (give `--profile-int8` too).
    #[arg(long, requires = "profile_int8", value_name = "FILE")]
    profile_fp16: Option<PathBuf>,
    /// A trtexec `--exportProfile` JSON of the all-INT8 engine.
    #[arg(long, requires = "profile_fp16", value_name = "FILE")]
    profile_int8: Option<PathBuf>,
    /// Print the summary as JSON: strategy, evaluations, wall_s, budget_met, predicted_latency_ms, plan {int8,
    /// fp16, fp32, int8_mac_fraction}, metrics {…}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary<'a> {
    strategy: &'a str,
    evaluations: usize,
    probes: usize,
    wall_s: f64,
    budget_met: bool,
    predicted_latency_ms: f64,
    plan: &'a PlanSummary,
    metrics: &'a Metrics,
    misses: &'a [String],
    kept_out_of_int8: Vec<&'a str>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let job = Job::open(&args.bundle)?;
    let progress = super::progress::Reporter::for_stderr();
    let scales = job.scales(args.scales.as_deref(), &progress)?;
    let simulator = job.simulator(scales)?;
    let inspection = job.inspection();
    let (mut latency, macs) = job.latency_model(inspection.as_ref());
    // Constraints are checked against the model the same way as for a resolved plan.
    job.resolved_plan()?;
    if let (Some(fp16), Some(int8)) = (&args.profile_fp16, &args.profile_int8) {
        let read = |path: &PathBuf| -> Result<(String, crate::trt::parse::ProfileExport), Failure> {
            let text = crate::trt::parse::read_text(path)?;
            let origin = path.display().to_string();
            Ok((origin.clone(), crate::trt::parse::parse_export_profile(&text, &origin)?))
        };
        let (fp16, int8) = (read(fp16)?, read(int8)?);
        latency = crate::pipeline::with_profiles(latency, (&fp16.0, &fp16.1), (&int8.0, &int8.1), &macs)?;
    }
    let input = job.search_input(&simulator, latency, macs);
    let mut outcome = search(&input, args.strategy, &progress)?;
    outcome.report.wall_s = started.elapsed().as_secs_f64();
    write_outputs(&args.out, &outcome.plan, &outcome.report)?;

    let report = &outcome.report;
    let kept: Vec<&str> = report.layers.iter().filter(|l| l.precision != crate::precision::Precision::Int8).map(|l| l.name.as_str()).collect();
    if args.json {
        let summary = Summary {
            strategy: &report.strategy,
            evaluations: report.evaluations,
            probes: report.probes,
            wall_s: report.wall_s,
            budget_met: report.budget_met,
            predicted_latency_ms: report.predicted_latency_ms,
            plan: &report.plan,
            metrics: &report.metrics,
            misses: &report.misses,
            kept_out_of_int8: kept,
        };
        super::print(&(serde_json::to_string_pretty(&summary).expect("plain data serializes") + "\n"))?;
    } else {
        super::print(&render(report, &kept, &args.out))?;
    }
    if report.budget_met {
        Ok(())
    } else {
        Err(Failure::new(
            format!("no plan meets the budget ({}); the best one found is in {}", report.misses.join(", "), args.out.join("plan.toml").display()),
            Fault::Input,
        )
        .with_hint("loosen the budget, add calibration data, or use a different calibration method"))
    }
}

fn write_outputs(out: &std::path::Path, plan: &crate::precision::Plan, report: &SearchReport) -> Result<(), Failure> {
    std::fs::create_dir_all(out).map_err(|e| Failure::new(format!("cannot create {}: {e}", out.display()), Fault::Environment))?;
    let write = |name: &str, bytes: &[u8]| {
        crate::model::write_atomically(&out.join(name), bytes)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", out.join(name).display()), Fault::Environment))
    };
    plan.save(&out.join("plan.toml"))?;
    write("report.json", (serde_json::to_string_pretty(report).expect("plain data serializes") + "\n").as_bytes())?;
    write("report.svg", crate::search::svg::render_svg(report).as_bytes())?;
    write("report.html", crate::search::svg::render_html(report).as_bytes())?;
    Ok(())
}

fn render(r: &SearchReport, kept: &[&str], out: &std::path::Path) -> String {
    let fraction = r.plan.int8_mac_fraction.map_or("?".to_owned(), |f| format!("{:.1} %", f * 100.0));
    let mut s = format!(
        "strategy:     {} ({} evaluations{}, {:.1} s)\n\
         budget:       {} ({})\n\
         plan:         {} int8, {} fp16, {} fp32; {fraction} of MACs in INT8\n\
         accuracy:     {}\n\
         latency:      {:.3} ms predicted ({}; all-FP16 {:.3} ms, all-INT8 {:.3} ms)\n",
        r.strategy,
        r.evaluations,
        if r.probes > 0 { format!(" + {} layer probes", r.probes) } else { String::new() },
        r.wall_s,
        if r.budget_met { "met" } else { "MISSED" },
        r.budget.join(", "),
        r.plan.int8,
        r.plan.fp16,
        r.plan.fp32,
        crate::search::metrics_line(&r.metrics),
        r.predicted_latency_ms,
        r.latency_source,
        r.reference_latency_ms.all_fp16_ms,
        r.reference_latency_ms.all_int8_ms,
    );
    if !kept.is_empty() {
        s.push_str(&format!("out of INT8:  {}\n", kept.join(", ")));
    }
    s.push_str(&format!("wrote:        {}/{{plan.toml, report.json, report.svg, report.html}}\n", out.display()));
    s
}
