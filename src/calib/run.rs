//! Calibration: runs the FP32 model over the calibration samples and turns the observed activation ranges into
//! INT8 scales, together with per-channel weight scales.
//!
//! Memory does not grow with the number of samples: each sample's activations are folded into a fixed-size
//! histogram per tensor (see `histogram`) and dropped. Two worker threads run the model (one single-threaded tract
//! plan each, which beats tract's own threading on 2 cores) while the calling thread folds their results.

use std::sync::Mutex;
use std::sync::mpsc;

use crate::calib::histogram::Observer;
use crate::calib::methods::{Method, MethodError, per_channel_scales};
use crate::calib::scales::{ScalesError, ScalesFile, WeightScales};
use crate::error::{Diagnose, Fault};
use crate::exec::{ExecError, Executor};
use crate::model::{Model, weights};
use crate::progress::Progress;
use crate::tensor::Tensor;

pub type SampleError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    #[error("the model has no quantizable layer (Conv, ConvTranspose, Gemm, MatMul) to calibrate")]
    NothingToCalibrate,
    #[error("no calibration sample")]
    NoSamples,
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Sample(SampleError),
    #[error("activation `{tensor}` took a non-finite value ({count} NaN or infinite values) while calibrating")]
    NonFiniteActivation { tensor: String, count: u64 },
    #[error("activation `{tensor}`: {source}")]
    Method { tensor: String, source: MethodError },
    #[error("weight `{tensor}`: {source}")]
    Weight { tensor: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error(transparent)]
    Scales(#[from] ScalesError),
}

impl Diagnose for CalibError {
    fn fault(&self) -> Fault {
        match self {
            CalibError::Scales(e) => e.fault(),
            _ => Fault::Input,
        }
    }
}

/// The tensors calibration observes: every activation a quantizable layer reads, in topological order.
pub fn observed_tensors(model: &Model) -> Vec<String> {
    let graph = model.graph();
    let mut tensors: Vec<String> = Vec::new();
    for index in graph.quantizable() {
        for tensor in weights::operands(model.graph_proto(), &graph, index).activations {
            if !tensors.contains(&tensor) {
                tensors.push(tensor);
            }
        }
    }
    tensors
}

/// Per-channel weight scales of every quantizable layer with a constant weight.
pub fn weight_scales(model: &Model, scales: &mut ScalesFile) -> Result<(), CalibError> {
    let graph = model.graph();
    let proto = model.graph_proto();
    for index in graph.quantizable() {
        let Some(weight) = weights::operands(proto, &graph, index).weight else { continue };
        if scales.weight(&weight.tensor).is_some() {
            continue;
        }
        let source = weights::find(proto, &graph, &weight.tensor).expect("operands only lists found weights");
        let tensor = source.tensor();
        let werr = |e: Box<dyn std::error::Error + Send + Sync>| CalibError::Weight { tensor: weight.tensor.clone(), source: e };
        let values = weights::to_f32(tensor).map_err(|e| werr(Box::new(e)))?;
        let per_channel = per_channel_scales(&values, &weights::dims(tensor), weight.axis).map_err(|e| werr(Box::new(e)))?;
        scales.add_weight(weight.tensor.clone(), WeightScales { axis: weight.axis, scales: per_channel })?;
    }
    Ok(())
}

/// Calibrates `model` (compiled for `shapes`) over `samples`, each one tensor per model input in input order.
pub fn calibrate(
    model: &Model,
    shapes: &[(String, Vec<usize>)],
    samples: impl Iterator<Item = Result<Vec<Tensor>, SampleError>> + Send,
    sample_count: Option<u64>,
    method: Method,
    progress: &dyn Progress,
) -> Result<ScalesFile, CalibError> {
    let tensors = observed_tensors(model);
    if tensors.is_empty() {
        return Err(CalibError::NothingToCalibrate);
    }
    let input_names: Vec<String> = crate::exec::resolve_input_shapes(model, shapes)?.into_iter().map(|(d, _)| d.name).collect();
    // Graph inputs come with the sample; everything else is tapped out of the running model.
    let taps: Vec<String> = tensors.iter().filter(|t| !input_names.contains(t)).cloned().collect();
    let executor = Executor::with_outputs(model, shapes, &taps)?;
    let first_tap = executor.output_names().len() - taps.len();

    let mut observers: Vec<Observer> = tensors.iter().map(|_| Observer::new()).collect();
    let slot_of_input: Vec<Option<usize>> =
        tensors.iter().map(|t| input_names.iter().position(|n| n == t)).collect();
    let slot_of_tap: Vec<Option<usize>> =
        tensors.iter().map(|t| taps.iter().position(|n| n == t).map(|p| first_tap + p)).collect();

    progress.start("calibrating", sample_count);
    // Samples are numbered when handed out and folded strictly in that order: histogram growth depends on the
    // order values arrive in, and the scales must not depend on which worker finished first.
    let source = Mutex::new(samples.enumerate());
    let (sender, receiver) = mpsc::sync_channel::<(usize, Result<(Vec<Tensor>, Vec<Tensor>), CalibError>)>(2);
    let mut seen = 0u64;
    let mut failure = None;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let sender = sender.clone();
            let (executor, source) = (&executor, &source);
            scope.spawn(move || {
                loop {
                    let next = source.lock().expect("sample source lock").next();
                    let (index, result) = match next {
                        None => return,
                        Some((i, Err(e))) => (i, Err(CalibError::Sample(e))),
                        Some((i, Ok(inputs))) => {
                            (i, executor.run(&inputs).map(|outputs| (inputs, outputs)).map_err(CalibError::from))
                        }
                    };
                    let stop = result.is_err();
                    if sender.send((index, result)).is_err() || stop {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut waiting = std::collections::BTreeMap::new();
        for (index, result) in receiver.iter() {
            // After a failure, keep receiving (so no worker blocks on a full channel) but fold nothing more.
            if failure.is_some() {
                continue;
            }
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&(seen as usize)) {
            match result {
                Ok((inputs, outputs)) => {
                    for (i, observer) in observers.iter_mut().enumerate() {
                        let tensor = match (slot_of_input[i], slot_of_tap[i]) {
                            (Some(slot), _) => &inputs[slot],
                            (None, Some(slot)) => &outputs[slot],
                            (None, None) => unreachable!("every observed tensor is an input or a tap"),
                        };
                        if let Some(values) = tensor.as_f32() {
                            observer.observe(values);
                        }
                    }
                    seen += 1;
                    progress.advance(seen);
                }
                Err(e) => {
                    // Stop handing out work; the workers end once the source is drained or they fail.
                    failure.get_or_insert(e);
                    let mut source = source.lock().expect("sample source lock");
                    for _ in source.by_ref() {}
                    break;
                }
            }
            }
        }
    });
    progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    if seen == 0 {
        return Err(CalibError::NoSamples);
    }

    let mut scales = ScalesFile::new(method);
    for (tensor, observer) in tensors.iter().zip(&observers) {
        if observer.non_finite() > 0 {
            return Err(CalibError::NonFiniteActivation { tensor: tensor.clone(), count: observer.non_finite() });
        }
        let scale = method
            .activation_scale(observer)
            .map_err(|source| CalibError::Method { tensor: tensor.clone(), source })?;
        scales.add_activation(tensor.clone(), scale)?;
    }
    weight_scales(model, &mut scales)?;
    Ok(scales)
}
