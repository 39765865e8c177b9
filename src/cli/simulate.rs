use serde::Serialize;

use crate::error::Failure;
use crate::pipeline::Job;
use crate::precision::plan::PlanSummary;
use crate::simulate::Metrics;

/// Predict a plan's accuracy against FP32 on the bundle's evaluation samples, on the CPU.
///
/// The plan is baked into the model exactly as `export` bakes it (Q/DQ for INT8 layers, float16 rounding for FP16
/// layers) and run over `eval/`; each output is compared with the FP32 model's output under the spec's budget
/// metrics, aggregated over the samples as `[budget] aggregate` says, the worst output counting.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: super::PlanSource,
    /// Print JSON: `metrics {cosine, sqnr_db, max_abs, argmax_agreement, mask_iou}`, `plan {int8, fp16, fp32,
    /// int8_mac_fraction}`, `budget_met`, `misses`, `samples`, `wall_s`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    metrics: Metrics,
    plan: PlanSummary,
    budget_met: bool,
    misses: Vec<String>,
    outputs: Vec<(String, Metrics)>,
    samples: usize,
    wall_s: f64,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let job = Job::open(&args.source.bundle)?;
    let progress = super::progress::Reporter::for_stderr();
    let plan = job.plan(args.source.plan.as_deref())?;
    let scales = job.scales(args.source.scales.as_deref(), &progress)?;
    let simulator = job.simulator(scales).map_err(Failure::from)?;
    progress.start_phase("simulating", simulator.sample_count() as u64);
    let evaluation = simulator.evaluate(&plan, &progress).map_err(Failure::from)?;
    crate::progress::Progress::finish(&progress);
    let misses = simulator.bounds().misses(&evaluation.metrics);
    let report = Report {
        plan: job.plan_summary(&plan, job.inspection().as_ref()),
        budget_met: misses.is_empty(),
        metrics: evaluation.metrics,
        misses,
        outputs: evaluation.outputs,
        samples: simulator.sample_count(),
        wall_s: started.elapsed().as_secs_f64(),
    };
    if args.json {
        return super::print(&(serde_json::to_string_pretty(&report).expect("plain data serializes") + "\n"));
    }
    super::print(&render(&report))
}

fn render(r: &Report) -> String {
    let m = &r.metrics;
    let optional = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    let fraction = r.plan.int8_mac_fraction.map_or("?".to_owned(), |f| format!("{:.0} %", f * 100.0));
    let mut out = format!(
        "plan:     {} int8, {} fp16, {} fp32 ({fraction} of MACs in INT8)\n\
         samples:  {}\n\
         cosine:   {:.5}\nsqnr:     {:.2} dB\nmax_abs:  {:.5}\nargmax:   {}\n",
        r.plan.int8, r.plan.fp16, r.plan.fp32, r.samples, m.cosine, m.sqnr_db, m.max_abs, optional(m.argmax_agreement)
    );
    if m.mask_iou.is_some() {
        out.push_str(&format!("mask_iou: {}\n", optional(m.mask_iou)));
    }
    if r.misses.is_empty() {
        out.push_str("budget:   met\n");
    } else {
        out.push_str(&format!("budget:   missed ({})\n", r.misses.join(", ")));
    }
    out
}
