//! What a search produces, as data: `report.json` is this struct serialized; `report.svg` is drawn from it.

use serde::Serialize;

use crate::precision::Precision;
use crate::precision::plan::PlanSummary;
use crate::simulate::Metrics;

#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    /// The bundle folder searched.
    pub bundle: String,
    pub model: String,
    /// `sensitivity`, `sequential` or `bisect`.
    pub strategy: String,
    /// Full-model simulated evaluations of a plan (each one: bake, compile, run every eval sample).
    pub evaluations: usize,
    /// Sensitivity probes: one per free layer, each a plan (that layer alone in INT8) run on a few eval samples to
    /// rank, not to decide; 0 for the other strategies.
    pub probes: usize,
    pub wall_s: f64,
    pub budget_met: bool,
    /// The budget bounds in words, e.g. `cosine >= 0.99`.
    pub budget: Vec<String>,
    /// What the chosen plan misses (empty when the budget is met).
    pub misses: Vec<String>,
    pub plan: PlanSummary,
    pub metrics: Metrics,
    pub predicted_latency_ms: f64,
    /// Predicted latency of all-FP16 and of all-INT8 (where allowed), for scale.
    pub reference_latency_ms: ReferenceLatency,
    /// Where the latency figures come from: `macs` (nominal throughput per precision) or `profile`.
    pub latency_source: String,
    /// Per quantizable layer, in topological order.
    pub layers: Vec<LayerReport>,
    /// Every plan evaluated, in order.
    pub evaluated: Vec<EvaluatedPlan>,
    /// Index into `evaluated` of the chosen plan.
    pub chosen: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReferenceLatency {
    pub all_fp16_ms: f64,
    pub all_int8_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: String,
    pub macs: Option<u64>,
    /// The chosen precision.
    pub precision: Precision,
    /// Why it has it: `search`, `keep` (spec's keep list), `fixed` ([precision.layers]).
    pub reason: String,
    /// Share of the accuracy budget used when only this layer runs in INT8, the others at FP16 (0 = harmless,
    /// 1 = the whole budget of the tightest bound; see `search::sensitivity`); null when the strategy measured none.
    pub sensitivity: Option<f64>,
    /// Predicted milliseconds saved by running this layer in INT8 instead of FP16.
    pub int8_gain_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvaluatedPlan {
    /// What the step was, e.g. `all-int8`, `fall back top 8`, `restore conv_61`, `prune: 3 back to int8`.
    pub label: String,
    pub int8: usize,
    pub fp16: usize,
    pub fp32: usize,
    pub int8_mac_fraction: Option<f64>,
    pub predicted_latency_ms: f64,
    pub metrics: Metrics,
    pub budget_met: bool,
}
