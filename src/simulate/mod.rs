//! Predicting, on the CPU, how accurate a precision plan will be.
//!
//! A [`Simulator`] is made once per bundle: it runs the FP32 model over the evaluation inputs once and keeps the
//! outputs as references. Each [`Simulator::evaluate`] then bakes the plan into the model with the export's
//! `Simulate` flavor (the same rewrite as the deployed model, float16 emulated; see `precision::export`), compiles
//! it once and runs it over the evaluation inputs on two worker threads. The baked graph compiles in a fraction of
//! a second and then runs at the speed of the FP32 graph, which measured better than one switchable graph for the
//! few dozen plans a search evaluates (`../shared/reference/simulation-facts.md` §3).

pub mod metrics;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::calib::ScalesFile;
use crate::error::{Diagnose, Fault};
use crate::exec::{ExecError, Executor};
use crate::model::{Model, ModelError};
use crate::precision::export::{self, ExportError, Flavor};
use crate::precision::{Plan, Precision};
use crate::progress::Progress;
use crate::tensor::Tensor;

/// Identical outputs have an infinite SQNR; reports carry this instead (JSON has no infinity).
pub const SQNR_CEILING_DB: f64 = 200.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The mean over the evaluation samples.
    #[default]
    Mean,
    /// The worst sample (the minimum of similarities, the maximum of `max_abs`).
    Min,
}

/// The accuracy bounds of the spec's `[budget]`; each one given must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bounds {
    pub cosine: Option<f64>,
    pub sqnr_db: Option<f64>,
    pub argmax_agreement: Option<f64>,
    /// (minimum IoU, threshold on the output values)
    pub mask_iou: Option<(f64, f32)>,
    pub max_abs: Option<f64>,
    pub aggregate: Aggregate,
}

impl Bounds {
    /// The bounds that `metrics` misses, each said in words.
    pub fn misses(&self, metrics: &Metrics) -> Vec<String> {
        let mut misses = Vec::new();
        let mut low = |name: &str, value: Option<f64>, bound: Option<f64>| {
            if let (Some(bound), Some(value)) = (bound, value)
                && value < bound
            {
                misses.push(format!("{name} {value:.4} < {bound}"));
            }
        };
        low("cosine", Some(metrics.cosine), self.cosine);
        low("sqnr_db", Some(metrics.sqnr_db), self.sqnr_db);
        low("argmax_agreement", metrics.argmax_agreement, self.argmax_agreement);
        low("mask_iou", metrics.mask_iou, self.mask_iou.map(|(min, _)| min));
        if let Some(bound) = self.max_abs
            && metrics.max_abs > bound
        {
            misses.push(format!("max_abs {:.4} > {bound}", metrics.max_abs));
        }
        misses
    }

    pub fn is_met(&self, metrics: &Metrics) -> bool {
        self.misses(metrics).is_empty()
    }

    /// The bounds in words, e.g. `cosine >= 0.99`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v) = self.cosine {
            out.push(format!("cosine >= {v}"));
        }
        if let Some(v) = self.sqnr_db {
            out.push(format!("sqnr_db >= {v}"));
        }
        if let Some(v) = self.argmax_agreement {
            out.push(format!("argmax_agreement >= {v}"));
        }
        if let Some((min, t)) = self.mask_iou {
            out.push(format!("mask_iou >= {min} (threshold {t})"));
        }
        if let Some(v) = self.max_abs {
            out.push(format!("max_abs <= {v}"));
        }
        out
    }
}

/// Accuracy against FP32 (the `metrics {…}` of the JSON outputs): aggregated over the evaluation samples, and the
/// worst over the model's outputs.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Metrics {
    pub cosine: f64,
    pub sqnr_db: f64,
    pub max_abs: f64,
    /// Over the last axis; null when it has a single element.
    pub argmax_agreement: Option<f64>,
    /// Only when the budget names `mask_iou`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_iou: Option<f64>,
}

impl Metrics {
    pub fn perfect(with_argmax: bool, with_iou: bool) -> Metrics {
        Metrics {
            cosine: 1.0,
            sqnr_db: SQNR_CEILING_DB,
            max_abs: 0.0,
            argmax_agreement: with_argmax.then_some(1.0),
            mask_iou: with_iou.then_some(1.0),
        }
    }

    /// Metrics of one output of one sample.
    pub fn of(reference: &Tensor, candidate: &Tensor, mask_threshold: Option<f32>) -> Metrics {
        let (r, c) = (reference.as_f32().unwrap_or(&[]), candidate.as_f32().unwrap_or(&[]));
        let classes = reference.shape().last().copied().unwrap_or(1);
        Metrics {
            cosine: metrics::cosine(r, c),
            sqnr_db: metrics::sqnr_db(r, c).min(SQNR_CEILING_DB),
            max_abs: metrics::max_abs(r, c),
            argmax_agreement: (classes > 1).then(|| metrics::argmax_agreement(r, c, classes)),
            mask_iou: mask_threshold.map(|t| metrics::mask_iou(r, c, t)),
        }
    }

    /// Mean or worst over samples.
    pub fn aggregate(samples: &[Metrics], how: Aggregate) -> Metrics {
        let n = samples.len().max(1) as f64;
        let pick = |values: Vec<f64>, worst_is_low: bool| -> f64 {
            match how {
                Aggregate::Mean => values.iter().sum::<f64>() / n,
                Aggregate::Min if worst_is_low => values.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregate::Min => values.iter().copied().fold(0.0, f64::max),
            }
        };
        let optional = |get: &dyn Fn(&Metrics) -> Option<f64>| -> Option<f64> {
            let values: Option<Vec<f64>> = samples.iter().map(get).collect();
            values.map(|v| pick(v, true))
        };
        Metrics {
            cosine: pick(samples.iter().map(|m| m.cosine).collect(), true),
            sqnr_db: pick(samples.iter().map(|m| m.sqnr_db).collect(), true),
            max_abs: pick(samples.iter().map(|m| m.max_abs).collect(), false),
            argmax_agreement: optional(&|m| m.argmax_agreement),
            mask_iou: optional(&|m| m.mask_iou),
        }
    }

    /// The worst of several outputs' metrics.
    pub fn worst(outputs: &[Metrics]) -> Metrics {
        let low = |get: &dyn Fn(&Metrics) -> f64| outputs.iter().map(get).fold(f64::INFINITY, f64::min);
        let low_opt = |get: &dyn Fn(&Metrics) -> Option<f64>| {
            outputs.iter().filter_map(get).reduce(f64::min)
        };
        Metrics {
            cosine: low(&|m| m.cosine),
            sqnr_db: low(&|m| m.sqnr_db),
            max_abs: outputs.iter().map(|m| m.max_abs).fold(0.0, f64::max),
            argmax_agreement: low_opt(&|m| m.argmax_agreement),
            mask_iou: low_opt(&|m| m.mask_iou),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("no evaluation sample")]
    NoSamples,
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("output `{output}` is not float32: precisiond compares float outputs only")]
    NonFloatOutput { output: String },
}

impl Diagnose for SimulateError {
    fn fault(&self) -> Fault {
        match self {
            SimulateError::Exec(e) => e.fault(),
            SimulateError::Export(e) => e.fault(),
            SimulateError::Model(e) => e.fault(),
            _ => Fault::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SimulateError::Export(e) => e.hint(),
            _ => None,
        }
    }
}

/// One plan's predicted accuracy.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub metrics: Metrics,
    /// Per model output, in output order.
    pub outputs: Vec<(String, Metrics)>,
}

pub struct Simulator {
    model: Model,
    shapes: Vec<(String, Vec<usize>)>,
    samples: Vec<Vec<Tensor>>,
    references: Vec<Vec<Tensor>>,
    output_names: Vec<String>,
    scales: ScalesFile,
    bounds: Bounds,
}

impl Simulator {
    /// Runs FP32 over `samples` once to keep the references.
    pub fn new(
        model: Model,
        shapes: Vec<(String, Vec<usize>)>,
        samples: Vec<Vec<Tensor>>,
        scales: ScalesFile,
        bounds: Bounds,
    ) -> Result<Simulator, SimulateError> {
        if samples.is_empty() {
            return Err(SimulateError::NoSamples);
        }
        let executor = Executor::new(&model, &shapes)?;
        let references = run_all(&executor, &samples, &crate::progress::Silent)?;
        for (name, tensor) in executor.output_names().iter().zip(&references[0]) {
            if tensor.as_f32().is_none() {
                return Err(SimulateError::NonFloatOutput { output: name.clone() });
            }
        }
        let output_names = executor.output_names().to_vec();
        Ok(Simulator { model, shapes, samples, references, output_names, scales, bounds })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    pub fn scales(&self) -> &ScalesFile {
        &self.scales
    }

    pub fn eval_samples(&self) -> &[Vec<Tensor>] {
        &self.samples
    }

    pub fn shapes(&self) -> &[(String, Vec<usize>)] {
        &self.shapes
    }

    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The model's outputs, in the order of each sample's tensors.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// The FP32 outputs, per sample.
    pub fn references(&self) -> &[Vec<Tensor>] {
        &self.references
    }

    /// The model as the simulator runs it for `plan`.
    pub fn simulated_model(&self, plan: &Plan) -> Result<Model, SimulateError> {
        let proto = export::export(&self.model, plan, &self.scales, Flavor::Simulate)?;
        Ok(Model::from_proto(proto, Path::new(&format!("{} (simulated plan)", self.model.path().display())))?)
    }

    /// Predicted accuracy of `plan` on the evaluation samples.
    pub fn evaluate(&self, plan: &Plan, progress: &dyn Progress) -> Result<Evaluation, SimulateError> {
        self.evaluate_samples(plan, self.samples.len(), progress)
    }

    /// The same on the first `count` evaluation samples only (a cheaper estimate, for ranking).
    pub fn evaluate_on(&self, plan: &Plan, count: usize) -> Result<Evaluation, SimulateError> {
        self.evaluate_samples(plan, count.clamp(1, self.samples.len()), &crate::progress::Silent)
    }

    fn evaluate_samples(&self, plan: &Plan, count: usize, progress: &dyn Progress) -> Result<Evaluation, SimulateError> {
        let mask = self.bounds.mask_iou.map(|(_, t)| t);
        if plan.layers().iter().all(|(_, p)| *p == Precision::Fp32) {
            let outputs: Vec<(String, Metrics)> = self
                .output_names
                .iter()
                .zip(&self.references[0])
                .map(|(n, t)| (n.clone(), Metrics::perfect(t.shape().last().is_some_and(|&c| c > 1), mask.is_some())))
                .collect();
            let metrics = Metrics::worst(&outputs.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>());
            return Ok(Evaluation { metrics, outputs });
        }
        let model = self.simulated_model(plan)?;
        let executor = Executor::new(&model, &self.shapes)?;
        let candidates = run_all(&executor, &self.samples[..count], progress)?;
        let outputs: Vec<(String, Metrics)> = self
            .output_names
            .iter()
            .enumerate()
            .map(|(o, name)| {
                let per_sample: Vec<Metrics> = self.references[..count]
                    .iter()
                    .zip(&candidates)
                    .map(|(r, c)| Metrics::of(&r[o], &c[o], mask))
                    .collect();
                (name.clone(), Metrics::aggregate(&per_sample, self.bounds.aggregate))
            })
            .collect();
        let metrics = Metrics::worst(&outputs.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>());
        Ok(Evaluation { metrics, outputs })
    }
}

/// Runs every sample on two worker threads; outputs in sample order.
pub fn run_all(executor: &Executor, samples: &[Vec<Tensor>], progress: &dyn Progress) -> Result<Vec<Vec<Tensor>>, ExecError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let workers = 2.min(samples.len());
    let results: Vec<Vec<(usize, Result<Vec<Tensor>, ExecError>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= samples.len() {
                            return mine;
                        }
                        let result = executor.run(&samples[i]);
                        let failed = result.is_err();
                        mine.push((i, result));
                        progress.advance(done.fetch_add(1, Ordering::Relaxed) as u64 + 1);
                        if failed {
                            next.store(samples.len(), Ordering::Relaxed);
                            return mine;
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("simulation worker panicked")).collect()
    });
    let mut ordered: Vec<(usize, Result<Vec<Tensor>, ExecError>)> = results.into_iter().flatten().collect();
    ordered.sort_by_key(|(i, _)| *i);
    ordered.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(cosine: f64, max_abs: f64) -> Metrics {
        Metrics { cosine, sqnr_db: 30.0, max_abs, argmax_agreement: Some(cosine), mask_iou: None }
    }

    #[test]
    fn aggregate_mean_and_worst() {
        let samples = [m(0.9, 0.1), m(0.7, 0.3)];
        let mean = Metrics::aggregate(&samples, Aggregate::Mean);
        assert!((mean.cosine - 0.8).abs() < 1e-12 && (mean.max_abs - 0.2).abs() < 1e-12);
        let worst = Metrics::aggregate(&samples, Aggregate::Min);
        assert_eq!((worst.cosine, worst.max_abs, worst.argmax_agreement), (0.7, 0.3, Some(0.7)));
    }

    #[test]
    fn bounds_name_what_they_miss() {
        let bounds = Bounds { cosine: Some(0.99), max_abs: Some(0.2), ..Default::default() };
        let misses = bounds.misses(&m(0.95, 0.3));
        assert_eq!(misses.len(), 2, "{misses:?}");
        assert!(misses[0].starts_with("cosine 0.9500 < 0.99"), "{misses:?}");
        assert!(bounds.is_met(&m(0.995, 0.1)));
    }
}
