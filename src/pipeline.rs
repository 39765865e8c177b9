//! The steps of a job on one bundle, as library functions: the command line calls them one by one, the daemon
//! (later) in sequence. Each step takes what the previous ones produced; none prints anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::bundle::{self, Bundle, BundleError};
use crate::calib::run::{CalibError, calibrate};
use crate::calib::{Method, ScalesError, ScalesFile};
use crate::error::{Diagnose, Fault};
use crate::exec::InputDecl;
use crate::inspect::Inspection;
use crate::model::{Model, ModelError};
use crate::precision::plan::PlanSummary;
use crate::precision::{Plan, PlanError};
use crate::progress::Progress;
use crate::search::{Constraints, LatencyModel};
use crate::simulate::{Aggregate, Bounds, SimulateError, Simulator};
use crate::spec::{self, Spec, SpecError};
use crate::tensor::Tensor;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Calib(#[from] CalibError),
    #[error(transparent)]
    Scales(#[from] ScalesError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Simulate(#[from] SimulateError),
    #[error("{}: {source}", bundle.display())]
    Samples { bundle: PathBuf, source: bundle::SampleError },
    #[error("{}: eval/ holds no sample", bundle.display())]
    NoEvalSamples { bundle: PathBuf },
    #[error("the profiles name none of the model's quantizable layers ({found_fp16} found in {fp16}, {found_int8} in {int8})")]
    ProfilesUnmatched { fp16: String, int8: String, found_fp16: usize, found_int8: usize },
}

impl Diagnose for PipelineError {
    fn fault(&self) -> Fault {
        match self {
            PipelineError::Bundle(e) => e.fault(),
            PipelineError::Model(e) => e.fault(),
            PipelineError::Spec(e) => e.fault(),
            PipelineError::Calib(e) => e.fault(),
            PipelineError::Scales(e) => e.fault(),
            PipelineError::Plan(e) => e.fault(),
            PipelineError::Simulate(e) => e.fault(),
            PipelineError::Samples { source, .. } => source.fault(),
            PipelineError::NoEvalSamples { .. } | PipelineError::ProfilesUnmatched { .. } => Fault::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            PipelineError::Bundle(e) => e.hint(),
            PipelineError::Model(e) => e.hint(),
            PipelineError::Spec(e) => e.hint(),
            PipelineError::Calib(e) => e.hint(),
            PipelineError::Plan(e) => e.hint(),
            PipelineError::Simulate(e) => e.hint(),
            PipelineError::Samples { source, .. } => source.hint(),
            PipelineError::ProfilesUnmatched { .. } => Some(
                "profile engines built from this model's export (`precisiond export`), whose nodes carry the names \
                 `inspect` lists"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// An opened, verified bundle with its model loaded and input shapes resolved.
pub struct Job {
    pub bundle: Bundle,
    pub model: Model,
    pub inputs: Vec<(InputDecl, Vec<usize>)>,
}

impl Job {
    pub fn open(dir: &Path) -> Result<Job, PipelineError> {
        let bundle = bundle::open(dir)?;
        let model = Model::load(&bundle.model_path())?;
        let declared = crate::exec::declared_inputs(&model);
        let inputs = bundle.spec().input_shapes(&declared)?;
        Ok(Job { bundle, model, inputs })
    }

    pub fn spec(&self) -> &Spec {
        self.bundle.spec()
    }

    /// Input shapes as the executor takes them.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.inputs.iter().map(|(d, s)| (d.name.clone(), s.clone())).collect()
    }

    /// The scales: from `scales` if given, else from the spec's `calibration.scales`, else by calibrating.
    pub fn scales(&self, scales: Option<&Path>, progress: &dyn Progress) -> Result<ScalesFile, PipelineError> {
        let given = scales.map(Path::to_owned).or_else(|| self.spec().calibration.scales.as_ref().map(|p| self.spec().resolve(p)));
        if let Some(path) = given {
            return Ok(ScalesFile::read(&path)?);
        }
        self.calibrate(progress)
    }

    pub fn calibrate(&self, progress: &dyn Progress) -> Result<ScalesFile, PipelineError> {
        let samples = self.bundle.calib_samples(&self.inputs);
        let total = samples.total().map_err(|source| self.samples_error(source))?;
        let stream = samples.map(|s| s.map_err(|e| Box::new(e) as crate::calib::run::SampleError));
        Ok(calibrate(&self.model, &self.shapes(), stream, Some(total as u64), self.method(), progress)?)
    }

    fn samples_error(&self, source: bundle::SampleError) -> PipelineError {
        PipelineError::Samples { bundle: self.bundle.dir().to_owned(), source }
    }

    pub fn method(&self) -> Method {
        let c = &self.spec().calibration;
        match c.method {
            spec::Method::Entropy => Method::Entropy,
            spec::Method::Minmax => Method::MinMax,
            spec::Method::Mse => Method::Mse,
            spec::Method::Percentile => Method::Percentile(c.percentile()),
        }
    }

    /// The plan: `--plan` if given, else the spec's `precision.plan`, else resolved from `[precision]`.
    pub fn plan(&self, plan: Option<&Path>) -> Result<Plan, PipelineError> {
        let graph = self.model.graph();
        let given = plan.map(Path::to_owned).or_else(|| self.spec().precision.plan.as_ref().map(|p| self.spec().resolve(p)));
        if let Some(path) = given {
            return Ok(Plan::load(&path, &graph)?);
        }
        Ok(self.resolved_plan()?)
    }

    /// `[precision]` resolved: default, keep, exact layers.
    pub fn resolved_plan(&self) -> Result<Plan, PlanError> {
        let p = &self.spec().precision;
        let layers = p.layers.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Plan::resolve(&self.model.graph(), p.default, &p.keep, &layers)
    }

    pub fn bounds(&self) -> Bounds {
        let b = &self.spec().budget;
        Bounds {
            cosine: b.cosine,
            sqnr_db: b.sqnr_db,
            argmax_agreement: b.argmax_agreement,
            mask_iou: b.mask_iou.map(|m| (m.min, m.threshold as f32)),
            max_abs: b.max_abs,
            aggregate: match b.aggregate {
                spec::Aggregate::Mean => Aggregate::Mean,
                spec::Aggregate::Min => Aggregate::Min,
            },
        }
    }

    /// All evaluation samples in memory (they are few; the simulator runs them for every plan).
    pub fn eval_samples(&self) -> Result<Vec<Vec<Tensor>>, PipelineError> {
        let samples: Vec<Vec<Tensor>> = self
            .bundle
            .eval_samples(&self.inputs)
            .collect::<Result<_, _>>()
            .map_err(|e| self.samples_error(bundle::SampleError::from(e)))?;
        if samples.is_empty() {
            return Err(PipelineError::NoEvalSamples { bundle: self.bundle.dir().to_owned() });
        }
        Ok(samples)
    }

    pub fn simulator(&self, scales: ScalesFile) -> Result<Simulator, PipelineError> {
        Ok(Simulator::new(self.model.clone(), self.shapes(), self.eval_samples()?, scales, self.bounds())?)
    }

    /// Layers, shapes and MACs at the spec's input shapes.
    pub fn inspection(&self) -> Option<Inspection> {
        crate::inspect::inspect(&self.model, &self.shapes()).ok()
    }

    pub fn plan_summary(&self, plan: &Plan, inspection: Option<&Inspection>) -> PlanSummary {
        plan.summary(|name| inspection.and_then(|i| i.layers.iter().find(|l| l.name == name)).and_then(|l| l.macs))
    }

    /// The search's constraints: the spec's exact layers and keep rules.
    pub fn constraints(&self) -> Constraints {
        let p = &self.spec().precision;
        Constraints { fixed: p.layers.clone().into_iter().collect(), keep: p.keep.clone() }
    }

    /// What a search of this job needs besides the strategy; probes use 4 eval samples.
    pub fn search_input<'a>(
        &self,
        simulator: &'a Simulator,
        latency: LatencyModel,
        macs: HashMap<String, u64>,
    ) -> crate::search::SearchInput<'a> {
        crate::search::SearchInput {
            simulator,
            constraints: self.constraints(),
            latency,
            macs,
            probe_samples: 4,
            bundle: self.bundle.dir().display().to_string(),
        }
    }

    /// The nominal latency model at the spec's input shapes, and each quantizable layer's MACs.
    pub fn latency_model(&self, inspection: Option<&Inspection>) -> (LatencyModel, HashMap<String, u64>) {
        let graph = self.model.graph();
        let layers = inspection.map(|i| i.layers.as_slice()).unwrap_or_default();
        let macs: HashMap<String, u64> = layers.iter().filter_map(|l| l.macs.map(|m| (l.name.clone(), m))).collect();
        let output_shape: HashMap<&str, &Vec<usize>> =
            layers.iter().filter_map(|l| l.output_shape.as_ref().map(|s| (l.name.as_str(), s))).collect();
        // Each layer's first input, for the reformat cost at precision boundaries.
        let input_elems: HashMap<String, u64> = graph
            .quantizable()
            .filter_map(|index| {
                let input = graph.node(index).inputs.first()?;
                let shape = match graph.producer(input) {
                    Some(p) => output_shape.get(graph.node(p).name.as_str()).map(|s| s.to_vec()),
                    None => self.inputs.iter().find(|(d, _)| &d.name == input).map(|(_, s)| s.clone()),
                }?;
                Some((graph.node(index).name.clone(), shape.iter().product::<usize>() as u64))
            })
            .collect();
        (LatencyModel::from_macs(&graph, &macs, &input_elems), macs)
    }
}

/// `latency` with measured per-layer times from trtexec profiles of the all-FP16 and all-INT8 engines; refused when
/// the profiles name none of the model's layers (they belong to another model).
pub fn with_profiles(
    latency: LatencyModel,
    fp16: (&str, &crate::trt::parse::ProfileExport),
    int8: (&str, &crate::trt::parse::ProfileExport),
    macs: &HashMap<String, u64>,
) -> Result<LatencyModel, PipelineError> {
    let (model, found_fp16, found_int8) = latency.with_profiles(fp16.1, int8.1, macs);
    if found_fp16 == 0 || found_int8 == 0 {
        return Err(PipelineError::ProfilesUnmatched {
            fp16: fp16.0.to_owned(),
            int8: int8.0.to_owned(),
            found_fp16,
            found_int8,
        });
    }
    Ok(model)
}
