//! Per-layer sensitivity: the effect on the budget metrics of running one layer alone in INT8, everything else
//! at the fallback precision (FP16).
//!
//! "This layer alone in INT8" rather than "this layer alone restored from all-INT8": with 63 other quantizers
//! active, one layer's restoration moves the metrics by less than the noise between tract and ONNX Runtime, and
//! the ranking of gains came out unstable (rank correlation 0.43), whereas single-layer INT8 effects ranked
//! identically in both (Spearman 1.0 on PP-OCRv4 det, `../shared/reference/simulation-facts.md` §5). It is also
//! what the search needs: which layers can join INT8 with little harm.
//!
//! Measuring the noise a layer adds locally, at its own output, was tried first and dropped: on PP-OCRv4 det the
//! input convolution adds almost nothing locally (SQNR 44 dB) yet alone in INT8 takes the output's cosine to 0.957,
//! because the detector's threshold turns small shifts of its first features into lost text regions. Only the
//! end-to-end effect ranks it right.
//!
//! A probe is a plan run on a few evaluation samples (`probe_samples`), not on all of them: it ranks, it does not
//! decide. The reports count probes apart from the full evaluations that decide.

use crate::precision::{Plan, Precision};
use crate::progress::Progress;
use crate::simulate::{Bounds, Metrics, SimulateError, Simulator};

/// How far `metrics` is from perfect, relative to what the budget allows: 0 is no effect, 1 uses the whole budget
/// of the tightest bound. The largest over the bounds given (cosine when none is).
pub fn budget_share(metrics: &Metrics, bounds: &Bounds) -> f64 {
    let similarity = |value: f64, bound: f64| (1.0 - value).max(0.0) / (1.0 - bound).max(1e-9);
    let mut shares = Vec::new();
    if let Some(b) = bounds.cosine {
        shares.push(similarity(metrics.cosine, b));
    }
    if let (Some(b), Some(v)) = (bounds.argmax_agreement, metrics.argmax_agreement) {
        shares.push(similarity(v, b));
    }
    if let (Some((b, _)), Some(v)) = (bounds.mask_iou, metrics.mask_iou) {
        shares.push(similarity(v, b));
    }
    if let Some(b) = bounds.sqnr_db {
        // noise power relative to the allowed noise power
        shares.push(10f64.powf((b - metrics.sqnr_db) / 10.0));
    }
    if let Some(b) = bounds.max_abs {
        shares.push(metrics.max_abs / b.max(1e-12));
    }
    if shares.is_empty() {
        shares.push(similarity(metrics.cosine, 0.99));
    }
    shares.into_iter().fold(0.0, f64::max)
}

/// Sensitivity of each layer in `layers`: the budget share used when it alone runs in INT8 on top of `base`.
pub fn probe_layers(
    simulator: &Simulator,
    base: &Plan,
    layers: &[String],
    probe_samples: usize,
    progress: &dyn Progress,
) -> Result<Vec<(String, f64)>, SimulateError> {
    progress.start("probing layers", Some(layers.len() as u64));
    let mut out = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let plan = base.with(layer, Precision::Int8);
        let metrics = simulator.evaluate_on(&plan, probe_samples)?.metrics;
        out.push((layer.clone(), budget_share(&metrics, simulator.bounds())));
        progress.advance(i as u64 + 1);
    }
    progress.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_share_is_relative_to_the_tightest_bound() {
        let m = Metrics { cosine: 0.995, sqnr_db: 30.0, max_abs: 0.1, argmax_agreement: Some(1.0), mask_iou: Some(0.9) };
        let b = Bounds { cosine: Some(0.99), mask_iou: Some((0.95, 0.3)), ..Default::default() };
        // cosine uses half its budget, mask IoU twice its budget
        assert!((budget_share(&m, &b) - 2.0).abs() < 1e-9);
        let b = Bounds { sqnr_db: Some(30.0), ..Default::default() };
        assert!((budget_share(&m, &b) - 1.0).abs() < 1e-9);
    }
}
