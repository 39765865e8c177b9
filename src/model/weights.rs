//! Constant tensors: where a layer's weights live (initializers, or `Constant` nodes as in Paddle exports) and
//! their values as f32.

use super::graph::Graph;
use super::proto::{GraphProto, NodeProto, TensorProto, tensor_proto::DataType};

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("tensor `{tensor}` has data type {data_type}, which precisiond cannot read as float")]
    UnsupportedType { tensor: String, data_type: i32 },
    #[error("tensor `{tensor}` holds {actual} values, but its dims {dims:?} need {expected}")]
    WrongSize { tensor: String, dims: Vec<i64>, expected: usize, actual: usize },
}

/// A constant tensor found in the graph, and where.
#[derive(Clone, Copy, Debug)]
pub enum WeightSource<'g> {
    Initializer(&'g TensorProto),
    /// A `Constant` node (by index) whose `value` attribute holds the tensor.
    ConstantNode(usize, &'g TensorProto),
}

impl<'g> WeightSource<'g> {
    pub fn tensor(&self) -> &'g TensorProto {
        match self {
            WeightSource::Initializer(t) | WeightSource::ConstantNode(_, t) => t,
        }
    }
}

/// The constant behind `tensor`, if it is one.
pub fn find<'g>(graph: &'g GraphProto, view: &Graph, tensor: &str) -> Option<WeightSource<'g>> {
    if let Some(t) = graph.initializer.iter().find(|t| t.name() == tensor) {
        return Some(WeightSource::Initializer(t));
    }
    let index = view.producer(tensor)?;
    constant_value(&graph.node[index]).map(|t| WeightSource::ConstantNode(index, t))
}

/// The tensor of a `Constant` node that stores it in its `value` attribute.
pub fn constant_value(node: &NodeProto) -> Option<&TensorProto> {
    if node.op_type() != "Constant" || !matches!(node.domain(), "" | "ai.onnx") {
        return None;
    }
    node.attribute.iter().find(|a| a.name() == "value").and_then(|a| a.t.as_ref())
}

pub fn dims(tensor: &TensorProto) -> Vec<usize> {
    tensor.dims.iter().map(|&d| d.max(0) as usize).collect()
}

/// The values of a float tensor (float32, float16, bfloat16 or double), as f32.
pub fn to_f32(tensor: &TensorProto) -> Result<Vec<f32>, WeightError> {
    let expected: usize = dims(tensor).iter().product();
    let raw = tensor.raw_data();
    let data_type = tensor.data_type.unwrap_or_default();
    let values: Vec<f32> = match DataType::try_from(data_type) {
        Ok(DataType::Float) if !raw.is_empty() => {
            raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        Ok(DataType::Float) => tensor.float_data.clone(),
        Ok(DataType::Float16) if !raw.is_empty() => {
            raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        }
        Ok(DataType::Float16) => tensor.int32_data.iter().map(|&v| half::f16::from_bits(v as u16).to_f32()).collect(),
        Ok(DataType::Bfloat16) if !raw.is_empty() => {
            raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        }
        Ok(DataType::Bfloat16) => tensor.int32_data.iter().map(|&v| half::bf16::from_bits(v as u16).to_f32()).collect(),
        Ok(DataType::Double) if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
            .collect(),
        Ok(DataType::Double) => tensor.double_data.iter().map(|&v| v as f32).collect(),
        _ => return Err(WeightError::UnsupportedType { tensor: tensor.name().to_owned(), data_type }),
    };
    if values.len() != expected {
        return Err(WeightError::WrongSize {
            tensor: tensor.name().to_owned(),
            dims: tensor.dims.clone(),
            expected,
            actual: values.len(),
        });
    }
    Ok(values)
}

/// The first tensor whose data lives in an external file, with the file it names.
pub fn first_external_tensor(graph: &GraphProto) -> Option<(String, String)> {
    let external = |t: &TensorProto| {
        (t.data_location.unwrap_or_default() == 1).then(|| {
            let location = t.external_data.iter().find(|e| e.key() == "location").map(|e| e.value().to_owned());
            (t.name().to_owned(), location.unwrap_or_else(|| "no location given".into()))
        })
    };
    graph
        .initializer
        .iter()
        .find_map(external)
        .or_else(|| graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).find_map(external))
        .or_else(|| {
            graph.node.iter().flat_map(|n| &n.attribute).find_map(|a| {
                a.t.as_ref()
                    .and_then(external)
                    .or_else(|| a.tensors.iter().find_map(external))
                    .or_else(|| a.g.iter().chain(&a.graphs).find_map(first_external_tensor))
            })
        })
}

/// What a quantizable layer reads: activations (quantized per tensor) and its constant weight (quantized per output
/// channel along `axis`). Biases are not listed: they stay float.
#[derive(Clone, Debug, PartialEq)]
pub struct Operands {
    pub activations: Vec<String>,
    pub weight: Option<WeightOperand>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WeightOperand {
    pub tensor: String,
    /// Input slot of the layer.
    pub slot: usize,
    /// The output-channel axis of the weight tensor.
    pub axis: usize,
}

/// True when `tensor` is a constant: an initializer, or the output of a `Constant` node.
pub fn is_constant(graph: &GraphProto, view: &Graph, tensor: &str) -> bool {
    view.is_initializer(tensor) || view.producer(tensor).is_some_and(|i| constant_value(&graph.node[i]).is_some())
}

/// The operands of quantizable layer `index` (see [`Operands`]).
pub fn operands(graph: &GraphProto, view: &Graph, index: usize) -> Operands {
    let node = view.node(index);
    let attr_int = |name: &str| graph.node[index].attribute.iter().find(|a| a.name() == name).and_then(|a| a.i);
    let input = |slot: usize| node.inputs.get(slot).filter(|t| !t.is_empty());
    let mut activations = Vec::new();
    let mut weight = None;
    let data_slots: &[usize] = match node.op_type.as_str() {
        "Conv" | "ConvTranspose" => &[0, 1],
        "Gemm" | "MatMul" => &[0, 1],
        _ => &[],
    };
    for &slot in data_slots {
        let Some(tensor) = input(slot) else { continue };
        if slot == 1 && is_constant(graph, view, tensor) {
            let rank = find(graph, view, tensor).map(|w| w.tensor().dims.len()).unwrap_or(0);
            let axis = match node.op_type.as_str() {
                "Conv" => 0,
                "ConvTranspose" => 1,
                "Gemm" if attr_int("transB").unwrap_or(0) != 0 => 0,
                "Gemm" => 1,
                _ => rank.saturating_sub(1),
            };
            weight = Some(WeightOperand { tensor: tensor.clone(), slot, axis });
        } else if !is_constant(graph, view, tensor) {
            activations.push(tensor.clone());
        }
    }
    Operands { activations, weight }
}
