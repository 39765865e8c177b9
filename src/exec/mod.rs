//! The CPU reference executor: the only module that uses tract.
//!
//! Models reach tract as bytes of the project's own message tree, with `graph.value_info` removed first: exporters
//! leave stale or symbolic shapes there that break tract's shape inference once concrete input shapes are set
//! (crates.md, caveat 3). FP32 graphs run at tract's optimized level, which matches ONNX Runtime to ~3e-5.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoTValue, OutletId, IntoRunnable, TValue, TVec, Tensor as TractTensor,
    TypedRunnableModel,
};

use crate::error::{Diagnose, Fault};
use crate::model::Model;
use crate::model::proto::ModelProto;
use crate::tensor::{DType, Tensor, TensorData, shape_string};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{model}: the CPU executor cannot load the model: {detail}")]
    Load { model: String, detail: String },
    #[error("{model}: input `{input}` is not a model input (the inputs are: {known})")]
    UnknownInput { model: String, input: String, known: String },
    #[error("{model}: no shape given for input `{input}`, and the model declares {declared}")]
    MissingShape { model: String, input: String, declared: String },
    #[error("{model}: input `{input}` has shape {given}, but the executor was prepared for {expected}")]
    WrongShape { model: String, input: String, given: String, expected: String },
    #[error("{model}: input `{input}` has type {given}, but the model wants {expected}")]
    WrongType { model: String, input: String, given: DType, expected: DType },
    #[error("{model}: {expected} inputs expected, {given} given")]
    InputCount { model: String, expected: usize, given: usize },
    #[error("{model}: running the model failed: {detail}")]
    Run { model: String, detail: String },
}

impl Diagnose for ExecError {
    fn fault(&self) -> Fault {
        Fault::Input
    }
    fn hint(&self) -> Option<String> {
        match self {
            ExecError::MissingShape { input, .. } => {
                Some(format!("give the shape, e.g. `--shape {input}=1,3,640,640` or `[inputs.{input}] shape = [...]`"))
            }
            _ => None,
        }
    }
}

/// One declared model input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: String,
    pub dtype: Option<DType>,
    /// `None` for a symbolic or unknown dimension.
    pub dims: Vec<Option<usize>>,
}

impl InputDecl {
    /// The declared shape when every dimension is known.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.dims.iter().copied().collect()
    }

    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
        format!("[{}]", dims.join(","))
    }
}

/// The inputs a model is fed at run time, as the graph declares them.
pub fn declared_inputs(model: &Model) -> Vec<InputDecl> {
    let graph = model.graph_proto();
    let view = model.graph();
    graph
        .input
        .iter()
        .filter(|v| view.inputs().iter().any(|n| n == v.name()))
        .map(|v| {
            let tensor = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
            let dtype = tensor.and_then(|t| t.elem_type).and_then(DType::from_onnx_code);
            let dims = tensor
                .and_then(|t| t.shape.as_ref())
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(crate::model::proto::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                                Some(v as usize)
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            InputDecl { name: v.name().to_owned(), dtype, dims }
        })
        .collect()
}

/// Resolves the concrete shape of every input: the given ones win, else the declared shape if fully known.
pub fn resolve_input_shapes(
    model: &Model,
    given: &[(String, Vec<usize>)],
) -> Result<Vec<(InputDecl, Vec<usize>)>, ExecError> {
    let declared = declared_inputs(model);
    let name = model.path().display().to_string();
    for (input, _) in given {
        if !declared.iter().any(|d| &d.name == input) {
            let known = declared.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ");
            return Err(ExecError::UnknownInput { model: name.clone(), input: input.clone(), known });
        }
    }
    declared
        .into_iter()
        .map(|decl| {
            let shape = given.iter().find(|(n, _)| *n == decl.name).map(|(_, s)| s.clone());
            match shape.or_else(|| decl.concrete_shape()) {
                Some(shape) => Ok((decl, shape)),
                None => Err(ExecError::MissingShape { model: name.clone(), input: decl.name.clone(), declared: decl.describe() }),
            }
        })
        .collect()
}

fn tract_datum(dtype: DType) -> DatumType {
    match dtype {
        DType::F32 => DatumType::F32,
        DType::I64 => DatumType::I64,
        DType::I32 => DatumType::I32,
        DType::U8 => DatumType::U8,
    }
}

/// The model as tract should see it: value_info stripped (see the module comment).
fn tract_bytes(proto: &ModelProto) -> Vec<u8> {
    let mut proto = proto.clone();
    if let Some(graph) = proto.graph.as_mut() {
        graph.value_info.clear();
    }
    proto.encode_to_vec()
}

fn load_inference_model(
    model: &Model,
    shapes: &[(InputDecl, Vec<usize>)],
) -> Result<tract_onnx::prelude::InferenceModel, ExecError> {
    let name = model.path().display().to_string();
    let load_err = |e: tract_onnx::prelude::TractError| ExecError::Load { model: name.clone(), detail: format!("{e:#}") };
    let bytes = tract_bytes(model.proto());
    let mut inference = tract_onnx::onnx().model_for_read(&mut bytes.as_slice()).map_err(load_err)?;
    let outlets: Vec<OutletId> = inference.input_outlets().map_err(load_err)?.to_vec();
    for (index, outlet) in outlets.iter().enumerate() {
        let input_name = inference.node(outlet.node).name.clone();
        let (decl, shape) = shapes
            .iter()
            .find(|(d, _)| d.name == input_name)
            .ok_or_else(|| ExecError::Load { model: name.clone(), detail: format!("tract sees an input `{input_name}` that the graph does not declare") })?;
        let fact = InferenceFact::dt_shape(tract_datum(decl.dtype.unwrap_or(DType::F32)), shape.as_slice());
        inference.set_input_fact(index, fact).map_err(load_err)?;
    }
    Ok(inference)
}

/// Shapes of every tensor of the graph for the given input shapes (for MACs and the inspect table). Tensors whose
/// shape tract cannot make concrete are absent.
pub fn infer_shapes(model: &Model, shapes: &[(InputDecl, Vec<usize>)]) -> Result<HashMap<String, Vec<usize>>, ExecError> {
    let name = model.path().display().to_string();
    let typed = load_inference_model(model, shapes)?
        .into_typed()
        .map_err(|e| ExecError::Load { model: name, detail: format!("{e:#}") })?;
    let mut out = HashMap::new();
    for node in typed.nodes() {
        for (slot, output) in node.outputs.iter().enumerate() {
            if let (Some(label), Some(shape)) =
                (typed.outlet_label(OutletId::new(node.id, slot)), output.fact.shape.as_concrete())
            {
                out.insert(label.to_owned(), shape.to_vec());
            }
        }
    }
    Ok(out)
}

/// A model compiled for fixed input shapes, ready to run many times (also from several threads).
#[derive(Clone)]
pub struct Executor {
    plan: Arc<TypedRunnableModel>,
    model_name: String,
    inputs: Vec<(InputDecl, Vec<usize>)>,
    output_names: Vec<String>,
}

impl Executor {
    /// FP32 reference: the graph as it is, at tract's optimized level.
    pub fn new(model: &Model, given_shapes: &[(String, Vec<usize>)]) -> Result<Executor, ExecError> {
        Executor::with_outputs(model, given_shapes, &[])
    }

    /// Also returns the intermediate tensors `taps` (after the graph outputs, in that order): calibration observes
    /// the activations that quantizable layers read. Taps that are graph inputs are not supported (the caller has
    /// them already).
    pub fn with_outputs(
        model: &Model,
        given_shapes: &[(String, Vec<usize>)],
        taps: &[String],
    ) -> Result<Executor, ExecError> {
        let model_name = model.path().display().to_string();
        let inputs = resolve_input_shapes(model, given_shapes)?;
        let load_err = |e: tract_onnx::prelude::TractError| ExecError::Load { model: model_name.clone(), detail: format!("{e:#}") };
        let mut inference = load_inference_model(model, &inputs)?;
        let mut output_names = model.graph().outputs().to_vec();
        if !taps.is_empty() {
            let mut outlets: Vec<OutletId> = inference.output_outlets().map_err(load_err)?.to_vec();
            for tap in taps {
                let outlet = inference.find_outlet_label(tap).ok_or_else(|| ExecError::Load {
                    model: model_name.clone(),
                    detail: format!("tensor `{tap}` cannot be observed (tract has no such intermediate tensor)"),
                })?;
                outlets.push(outlet);
            }
            inference.select_output_outlets(&outlets).map_err(load_err)?;
            output_names.extend(taps.iter().cloned());
        }
        let plan = inference.into_optimized().map_err(load_err)?.into_runnable().map_err(load_err)?;
        Ok(Executor { plan, model_name, inputs, output_names })
    }

    pub fn inputs(&self) -> &[(InputDecl, Vec<usize>)] {
        &self.inputs
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Runs once; `inputs` in the order of [`Executor::inputs`].
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        let name = &self.model_name;
        if inputs.len() != self.inputs.len() {
            return Err(ExecError::InputCount { model: name.clone(), expected: self.inputs.len(), given: inputs.len() });
        }
        let mut feed: TVec<TValue> = TVec::new();
        for (tensor, (decl, shape)) in inputs.iter().zip(&self.inputs) {
            if tensor.shape() != shape.as_slice() {
                return Err(ExecError::WrongShape {
                    model: name.clone(),
                    input: decl.name.clone(),
                    given: shape_string(tensor.shape()),
                    expected: shape_string(shape),
                });
            }
            let expected = decl.dtype.unwrap_or(DType::F32);
            if tensor.dtype() != expected {
                return Err(ExecError::WrongType { model: name.clone(), input: decl.name.clone(), given: tensor.dtype(), expected });
            }
            feed.push(to_tract(tensor).into_tvalue());
        }
        let run_err = |e: tract_onnx::prelude::TractError| ExecError::Run { model: name.clone(), detail: format!("{e:#}") };
        let outputs = self.plan.run(feed).map_err(run_err)?;
        outputs.iter().map(|t| from_tract(t).map_err(run_err)).collect()
    }
}

fn to_tract(tensor: &Tensor) -> TractTensor {
    let shape = tensor.shape();
    let built = match tensor.data() {
        TensorData::F32(v) => TractTensor::from_shape(shape, v),
        TensorData::I64(v) => TractTensor::from_shape(shape, v),
        TensorData::I32(v) => TractTensor::from_shape(shape, v),
        TensorData::U8(v) => TractTensor::from_shape(shape, v),
    };
    built.expect("element count checked by Tensor::new")
}

fn from_tract(tensor: &TractTensor) -> tract_onnx::prelude::TractResult<Tensor> {
    let shape = tensor.shape().to_vec();
    let data = match tensor.datum_type() {
        DatumType::I64 => TensorData::I64(tensor.to_plain_array_view::<i64>()?.iter().copied().collect()),
        DatumType::I32 => TensorData::I32(tensor.to_plain_array_view::<i32>()?.iter().copied().collect()),
        DatumType::U8 => TensorData::U8(tensor.to_plain_array_view::<u8>()?.iter().copied().collect()),
        DatumType::F32 => TensorData::F32(tensor.to_plain_array_view::<f32>()?.iter().copied().collect()),
        _ => {
            let cast = tensor.cast_to::<f32>()?;
            TensorData::F32(cast.to_plain_array_view::<f32>()?.iter().copied().collect())
        }
    };
    Ok(Tensor::new(shape, data).expect("tract tensors are consistent"))
}
