use std::path::PathBuf;

use crate::error::Failure;
use crate::model::Model;
use crate::pipeline::Job;
use crate::precision::export::{Flavor, export};

/// Write the strongly typed ONNX for a plan: what TensorRT builds (`--stronglyTyped` on 10.x and 11.x,
/// `--int8 --fp16` on 8.5/8.6) and what the cpu backend runs.
///
/// INT8 layers get QuantizeLinear/DequantizeLinear on their activation inputs (per tensor) and INT8 weights with
/// per-channel DequantizeLinear; FP16 layers get Cast to float16 around them and float16 weights; FP32 layers are
/// untouched. The opset is raised to 13 when INT8 needs it. Every node carries its stable name.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: super::PlanSource,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let job = Job::open(&args.source.bundle)?;
    let progress = super::progress::Reporter::for_stderr();
    let plan = job.plan(args.source.plan.as_deref())?;
    let scales = job.scales(args.source.scales.as_deref(), &progress)?;
    let proto = export(&job.model, &plan, &scales, Flavor::Deploy)?;
    let model = Model::from_proto(proto, &args.out)?;
    model.save(&args.out)?;
    let summary = job.plan_summary(&plan, job.inspection().as_ref());
    super::print(&format!(
        "wrote {} ({} int8, {} fp16, {} fp32 layers; opset {})\n",
        args.out.display(),
        summary.int8,
        summary.fp16,
        summary.fp32,
        model.opset().map_or("?".into(), |o| o.to_string())
    ))
}
