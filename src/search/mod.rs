//! Finding the plan: the fewest layers out of INT8 that keep every budget bound, decided on simulated accuracy.
//!
//! Three strategies, each counting its full simulated evaluations (a plan baked, compiled and run on every eval
//! sample; a plan evaluated twice counts once):
//! - `sequential`: the hand recipe, kept as the baseline: all INT8, then one layer at a time back to FP16 from the
//!   output end, evaluating after each, until the budget holds.
//! - `bisect`: Polygraphy-style: the smallest number of layers, counted from the output end, that must leave INT8,
//!   found by bisection (1 + log2 N evaluations when the answer is monotonic).
//! - `sensitivity` (default): layers ranked by local sensitivity (see `sensitivity`: single-layer probes, no full
//!   evaluation) per millisecond that INT8 saves them; the smallest prefix of that ranking to leave INT8 found by
//!   exponential then binary search; then a pruning pass that tries groups of the fallen-back layers in INT8 again
//!   (halving the groups that break the budget), ending on a plan whose evaluation confirmed it.
//! Every strategy respects the spec: `[precision.layers]` are fixed, `keep` layers never go below FP16. Layers
//! leave INT8 for FP16, or for FP32 when even all-FP16 misses the budget.

pub mod latency;
pub mod report;
pub mod sensitivity;
pub mod svg;

use std::collections::HashMap;
use std::time::Instant;

use crate::precision::plan::keep_matches;
use crate::precision::{Plan, Precision};
use crate::progress::Progress;
use crate::simulate::{Metrics, SimulateError, Simulator};
pub use latency::LatencyModel;
use report::{EvaluatedPlan, LayerReport, ReferenceLatency, SearchReport};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    Sensitivity,
    Sequential,
    Bisect,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Sensitivity => "sensitivity",
            Strategy::Sequential => "sequential",
            Strategy::Bisect => "bisect",
        }
    }
}

/// What the spec allows the search to change.
#[derive(Clone, Debug, Default)]
pub struct Constraints {
    /// `[precision.layers]`: these keep their precision.
    pub fixed: HashMap<String, Precision>,
    /// `keep` patterns: matching layers never go below FP16.
    pub keep: Vec<String>,
}

/// Everything a search needs besides the simulator.
pub struct SearchInput<'a> {
    pub simulator: &'a Simulator,
    pub constraints: Constraints,
    pub latency: LatencyModel,
    pub macs: HashMap<String, u64>,
    /// Samples for the sensitivity probes (a few eval samples).
    pub probe_samples: usize,
    pub bundle: String,
}

pub struct SearchOutcome {
    pub plan: Plan,
    pub report: SearchReport,
}

/// Plans evaluated so far, so that none is evaluated twice.
struct Evaluator<'a> {
    simulator: &'a Simulator,
    latency: &'a LatencyModel,
    macs: &'a HashMap<String, u64>,
    seen: HashMap<Vec<(String, Precision)>, usize>,
    evaluated: Vec<(Plan, EvaluatedPlan)>,
    progress: &'a dyn Progress,
}

impl Evaluator<'_> {
    fn eval(&mut self, plan: &Plan, label: impl Into<String>) -> Result<bool, SimulateError> {
        if let Some(&i) = self.seen.get(plan.layers()) {
            return Ok(self.evaluated[i].1.budget_met);
        }
        let metrics = self.simulator.evaluate(plan, &crate::progress::Silent)?.metrics;
        let budget_met = self.simulator.bounds().is_met(&metrics);
        let summary = plan.summary(|n| self.macs.get(n).copied());
        let record = EvaluatedPlan {
            label: label.into(),
            int8: summary.int8,
            fp16: summary.fp16,
            fp32: summary.fp32,
            int8_mac_fraction: summary.int8_mac_fraction,
            predicted_latency_ms: self.latency.predict_ms(plan),
            metrics,
            budget_met,
        };
        self.seen.insert(plan.layers().to_vec(), self.evaluated.len());
        self.evaluated.push((plan.clone(), record));
        self.progress.advance(self.evaluated.len() as u64);
        Ok(budget_met)
    }

    fn count(&self) -> usize {
        self.evaluated.len()
    }

    fn metrics_of(&self, plan: &Plan) -> Option<&EvaluatedPlan> {
        self.seen.get(plan.layers()).map(|&i| &self.evaluated[i].1)
    }
}

pub fn search(input: &SearchInput, strategy: Strategy, progress: &dyn Progress) -> Result<SearchOutcome, SimulateError> {
    let started = Instant::now();
    let model = input.simulator.model();
    let graph = model.graph();
    let bounds = input.simulator.bounds();

    // Which layers the search may move, and the plan it starts from.
    let mut start = Plan::uniform(&graph, Precision::Int8);
    let mut reasons: HashMap<String, &'static str> = HashMap::new();
    let mut free: Vec<String> = Vec::new();
    for index in graph.quantizable() {
        let node = graph.node(index);
        if let Some(&p) = input.constraints.fixed.get(&node.name) {
            start = start.with(&node.name, p);
            reasons.insert(node.name.clone(), "fixed");
        } else if input.constraints.keep.iter().any(|k| keep_matches(k, &node.name, &node.op_type)) {
            start = start.with(&node.name, Precision::Fp16);
            reasons.insert(node.name.clone(), "keep");
        } else {
            free.push(node.name.clone());
        }
    }

    let mut evaluator = Evaluator {
        simulator: input.simulator,
        latency: &input.latency,
        macs: &input.macs,
        seen: HashMap::new(),
        evaluated: Vec::new(),
        progress,
    };

    // Sensitivity, for the sensitivity strategy's ranking (and its report).
    let mut probes = 0;
    let mut sensitivity: HashMap<String, f64> = HashMap::new();
    if strategy == Strategy::Sensitivity {
        let base = free.iter().fold(start.clone(), |acc, l| acc.with(l, Precision::Fp16));
        let found = sensitivity::probe_layers(input.simulator, &base, &free, input.probe_samples, progress)?;
        probes = found.len();
        sensitivity = found.into_iter().collect();
    }

    progress.start("searching", None);
    let fallback_to = |plan: &Plan, layers: &[String], p: Precision| -> Plan {
        layers.iter().fold(plan.clone(), |acc, l| acc.with(l, p))
    };
    // Output end first: the order of the hand recipe and of Polygraphy's bisection.
    let reverse_topological: Vec<String> = free.iter().rev().cloned().collect();
    let order: Vec<String> = match strategy {
        Strategy::Sequential | Strategy::Bisect => reverse_topological,
        Strategy::Sensitivity => {
            let mut ranked = free.clone();
            let score = |l: &String| {
                sensitivity.get(l).copied().unwrap_or(0.0) / input.latency.int8_gain_ms(l).max(1e-9)
            };
            ranked.sort_by(|a, b| score(b).total_cmp(&score(a)));
            ranked
        }
    };

    let mut fallback = Precision::Fp16;
    let mut chosen: Option<Plan> = None;
    let all_int8_met = evaluator.eval(&start, "all free layers int8")?;
    if all_int8_met {
        chosen = Some(start.clone());
    }
    if chosen.is_none() {
        let k = match strategy {
            Strategy::Sequential => {
                let mut found = None;
                for k in 1..=order.len() {
                    let plan = fallback_to(&start, &order[..k], fallback);
                    if evaluator.eval(&plan, format!("restore {} to fp16", order[k - 1]))? {
                        found = Some(k);
                        break;
                    }
                }
                found
            }
            Strategy::Bisect => smallest_prefix(&mut evaluator, &start, &order, fallback, None)?,
            Strategy::Sensitivity => smallest_prefix(&mut evaluator, &start, &order, fallback, Some(&sensitivity))?,
        };
        let k = match k {
            Some(k) => Some(k),
            None => {
                // Even every free layer in FP16 misses: FP32 is the last resort.
                fallback = Precision::Fp32;
                let all = fallback_to(&start, &order, fallback);
                if evaluator.eval(&all, "all free layers fp32")? {
                    smallest_prefix(&mut evaluator, &start, &order, fallback, None)?
                } else {
                    None
                }
            }
        };
        if let Some(k) = k {
            let mut plan = fallback_to(&start, &order[..k], fallback);
            if strategy == Strategy::Sensitivity {
                plan = prune(&mut evaluator, plan, &order[..k])?;
            }
            chosen = Some(plan);
        }
    }
    progress.finish();

    let budget_met = chosen.is_some();
    // With no plan meeting the budget, report the most accurate one evaluated.
    let plan = chosen.unwrap_or_else(|| {
        evaluator
            .evaluated
            .iter()
            .max_by(|a, b| a.1.metrics.cosine.total_cmp(&b.1.metrics.cosine))
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| start.clone())
    });
    let record = evaluator.metrics_of(&plan).cloned().expect("the chosen plan was evaluated");
    let chosen_index = evaluator.seen.get(plan.layers()).copied();
    let layers = graph
        .quantizable()
        .map(|i| {
            let name = graph.node(i).name.clone();
            LayerReport {
                op: graph.node(i).op_type.clone(),
                macs: input.macs.get(&name).copied(),
                precision: plan.get(&name).unwrap_or(Precision::Fp32),
                reason: reasons.get(&name).copied().unwrap_or("search").to_owned(),
                sensitivity: sensitivity.get(&name).copied(),
                int8_gain_ms: input.latency.int8_gain_ms(&name),
                name,
            }
        })
        .collect();
    let report = SearchReport {
        bundle: input.bundle.clone(),
        model: model.path().display().to_string(),
        strategy: strategy.as_str().to_owned(),
        evaluations: evaluator.count(),
        probes,
        wall_s: started.elapsed().as_secs_f64(),
        budget_met,
        budget: bounds.describe(),
        misses: bounds.misses(&record.metrics),
        plan: plan.summary(|n| input.macs.get(n).copied()),
        metrics: record.metrics.clone(),
        predicted_latency_ms: record.predicted_latency_ms,
        reference_latency_ms: ReferenceLatency {
            all_fp16_ms: input.latency.predict_ms(&Plan::uniform(&graph, Precision::Fp16)),
            all_int8_ms: input.latency.predict_ms(&Plan::uniform(&graph, Precision::Int8)),
        },
        latency_source: input.latency.source.to_owned(),
        layers,
        evaluated: evaluator.evaluated.into_iter().map(|(_, e)| e).collect(),
        chosen: chosen_index,
    };
    Ok(SearchOutcome { plan, report })
}

/// The smallest k such that the first k layers of `order` out of INT8 meet the budget, assuming that more layers
/// out of INT8 never hurt. Bisection over 0..=N, except that the sensitivity strategy starts from a guess: the
/// fewest layers whose removal leaves INT8 layers whose budget shares add up to at most one (effects roughly add
/// up), then doubles its step outwards from there until the answer is bracketed. None when even k = N misses.
fn smallest_prefix(
    evaluator: &mut Evaluator,
    start: &Plan,
    order: &[String],
    fallback: Precision,
    shares: Option<&HashMap<String, f64>>,
) -> Result<Option<usize>, SimulateError> {
    let n = order.len();
    if n == 0 {
        return Ok(None);
    }
    let plan_for = |k: usize| order[..k].iter().fold(start.clone(), |acc, l| acc.with(l, fallback));
    let label = |k: usize| format!("{k} of {n} layers to {fallback}");
    let mut lo = 0; // known to miss: all INT8 was evaluated first
    let mut hi = n;
    match shares {
        Some(shares) => {
            let share = |l: &String| shares.get(l).copied().unwrap_or(0.0);
            let guess = (0..=n).find(|&k| order[k..].iter().map(share).sum::<f64>() <= 1.0).unwrap_or(n).max(1);
            if evaluator.eval(&plan_for(guess), label(guess))? {
                hi = guess;
                let mut step = 1;
                while hi > lo + 1 {
                    let k = hi.saturating_sub(step).max(lo + 1);
                    if evaluator.eval(&plan_for(k), label(k))? {
                        hi = k;
                        step *= 2;
                    } else {
                        lo = k;
                        break;
                    }
                }
            } else {
                lo = guess;
                let mut step = 1;
                loop {
                    if lo == n {
                        return Ok(None);
                    }
                    let k = (lo + step).min(n);
                    if evaluator.eval(&plan_for(k), label(k))? {
                        hi = k;
                        break;
                    }
                    lo = k;
                    step *= 2;
                }
            }
        }
        None => {
            if !evaluator.eval(&plan_for(n), label(n))? {
                return Ok(None);
            }
        }
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if evaluator.eval(&plan_for(mid), label(mid))? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

/// Puts fallen-back layers back into INT8 where the budget allows: the least sensitive half first as one group;
/// a group that breaks the budget is split in two and each half tried once (at most 6 evaluations).
fn prune(evaluator: &mut Evaluator, mut plan: Plan, fallen: &[String]) -> Result<Plan, SimulateError> {
    // `fallen` is in falling sensitivity order: the tail is the least sensitive.
    let candidates: Vec<String> = fallen.iter().rev().cloned().collect();
    let mut groups: Vec<(Vec<String>, u32)> = Vec::new();
    if candidates.len() > 1 {
        let half = candidates.len() / 2;
        groups.push((candidates[half..].to_vec(), 0));
        groups.push((candidates[..half].to_vec(), 0));
    } else if !candidates.is_empty() {
        groups.push((candidates, 0));
    }
    while let Some((group, depth)) = groups.pop() {
        let trial = group.iter().fold(plan.clone(), |acc, l| acc.with(l, Precision::Int8));
        let label = if group.len() == 1 { format!("prune: {} back to int8", group[0]) } else { format!("prune: {} back to int8", group.len()) };
        if evaluator.eval(&trial, label)? {
            plan = trial;
        } else if group.len() > 1 && depth < 1 {
            let half = group.len() / 2;
            groups.push((group[half..].to_vec(), depth + 1));
            groups.push((group[..half].to_vec(), depth + 1));
        }
    }
    Ok(plan)
}

/// Metrics as a short line, for logs.
pub fn metrics_line(m: &Metrics) -> String {
    let mut s = format!("cosine {:.4}, sqnr {:.1} dB", m.cosine, m.sqnr_db);
    if let Some(a) = m.argmax_agreement {
        s.push_str(&format!(", argmax {a:.4}"));
    }
    if let Some(i) = m.mask_iou {
        s.push_str(&format!(", mask IoU {i:.4}"));
    }
    s
}
