//! The verdict on a built engine: its outputs on the evaluation samples against the FP32 references, under every
//! bound of the budget, and its latency against the latency budget. Pure data in, `verify.json` out.

use serde::{Deserialize, Serialize};

use crate::simulate::{Bounds, Metrics};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub median: f64,
    pub p99: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputMetrics {
    pub name: String,
    pub metrics: Metrics,
}

/// `verify.json` (PRODUCT.md: verdict, metrics, latency_ms {median, p99}, backend, tensorrt_version, reasons).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verification {
    pub verdict: Verdict,
    /// The worst output's metrics, aggregated over the samples as the budget says.
    pub metrics: Metrics,
    pub outputs: Vec<OutputMetrics>,
    /// Median and 99th percentile GPU compute time; null where nothing measured it (the cpu backend).
    pub latency_ms: Option<LatencyMs>,
    pub backend: String,
    pub tensorrt_version: Option<String>,
    /// Why the verdict is `fail`, one line per missed bound; empty on a pass.
    pub reasons: Vec<String>,
    /// Facts a reader needs that are not failures (e.g. a latency budget the backend cannot check).
    pub notes: Vec<String>,
    /// The budget's bounds, as text.
    pub budget: Vec<String>,
    pub samples: usize,
    /// What the CPU simulation predicted for the same plan, to compare.
    pub simulated: Option<Metrics>,
}

/// What the engine gave and what it is judged against.
pub struct Judged<'a> {
    pub references: &'a [Vec<Tensor>],
    pub candidates: &'a [Vec<Tensor>],
    pub output_names: &'a [String],
    pub bounds: &'a Bounds,
    pub latency_budget_ms: Option<f64>,
    pub latency_ms: Option<LatencyMs>,
    pub backend: String,
    pub tensorrt_version: Option<String>,
    pub simulated: Option<Metrics>,
}

/// The metrics of every output over the samples, then the verdict: every bound and the latency budget must hold.
pub fn judge(j: Judged) -> Verification {
    let mask = j.bounds.mask_iou.map(|(_, t)| t);
    let outputs: Vec<OutputMetrics> = j
        .output_names
        .iter()
        .enumerate()
        .map(|(o, name)| {
            let per_sample: Vec<Metrics> =
                j.references.iter().zip(j.candidates).map(|(r, c)| Metrics::of(&r[o], &c[o], mask)).collect();
            OutputMetrics { name: name.clone(), metrics: Metrics::aggregate(&per_sample, j.bounds.aggregate) }
        })
        .collect();
    let metrics = Metrics::worst(&outputs.iter().map(|o| o.metrics.clone()).collect::<Vec<_>>());
    let mut reasons = j.bounds.misses(&metrics);
    let mut notes = Vec::new();
    match (j.latency_budget_ms, j.latency_ms) {
        (Some(budget), Some(measured)) if measured.median > budget => {
            reasons.push(format!("latency median {:.3} ms > {budget} ms", measured.median))
        }
        (Some(budget), None) => notes.push(format!(
            "latency budget {budget} ms not checked: the {} backend measures no GPU compute time",
            j.backend
        )),
        _ => {}
    }
    let mut budget = j.bounds.describe();
    if let Some(ms) = j.latency_budget_ms {
        budget.push(format!("latency_ms <= {ms}"));
    }
    Verification {
        verdict: if reasons.is_empty() { Verdict::Pass } else { Verdict::Fail },
        metrics,
        outputs,
        latency_ms: j.latency_ms,
        backend: j.backend,
        tensorrt_version: j.tensorrt_version,
        reasons,
        notes,
        budget,
        samples: j.candidates.len(),
        simulated: j.simulated,
    }
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Whether only the latency budget was missed (falling back more layers to FP16 cannot help then).
    pub fn missed_only_latency(&self) -> bool {
        !self.reasons.is_empty() && self.reasons.iter().all(|r| r.starts_with("latency"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32]) -> Tensor {
        Tensor::from_f32(vec![values.len()], values.to_vec()).unwrap()
    }

    #[test]
    fn every_bound_and_the_latency_budget_decide() {
        let references = vec![vec![t(&[1.0, 2.0, 3.0, 4.0])]];
        let close = vec![vec![t(&[1.0, 2.0, 3.0, 4.01])]];
        let far = vec![vec![t(&[4.0, 3.0, 2.0, 1.0])]];
        let names = vec!["y".to_string()];
        let bounds = Bounds { cosine: Some(0.99), ..Default::default() };
        let judged = |candidates: &[Vec<Tensor>], latency: Option<LatencyMs>| {
            judge(Judged {
                references: &references,
                candidates,
                output_names: &names,
                bounds: &bounds,
                latency_budget_ms: Some(4.0),
                latency_ms: latency,
                backend: "tensorrt".into(),
                tensorrt_version: Some("10.3.0".into()),
                simulated: None,
            })
        };
        let fast = Some(LatencyMs { median: 3.0, p99: 5.0 });
        assert_eq!(judged(&close, fast).verdict, Verdict::Pass);
        let v = judged(&far, fast);
        assert_eq!(v.verdict, Verdict::Fail);
        assert!(v.reasons[0].contains("cosine"), "{:?}", v.reasons);
        assert!(!v.missed_only_latency());
        let slow = judged(&close, Some(LatencyMs { median: 4.5, p99: 5.0 }));
        assert!(slow.missed_only_latency(), "{:?}", slow.reasons);
        // No measurement: a note, not a failure.
        let unmeasured = judged(&close, None);
        assert_eq!(unmeasured.verdict, Verdict::Pass);
        assert!(unmeasured.notes[0].contains("not checked"));
        let json: serde_json::Value = serde_json::from_str(&unmeasured.to_json()).unwrap();
        assert_eq!(json["verdict"], "pass");
        assert!(json["latency_ms"].is_null());
    }
}
