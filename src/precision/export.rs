//! Baking a plan into the model: the strongly typed ONNX that TensorRT ≥ 10 (`--stronglyTyped`), TensorRT 8.5/8.6
//! (`--int8 --fp16`) and the CPU backend build from, and its twin that the simulator runs.
//!
//! - INT8 layer: each activation input goes through `QuantizeLinear → DequantizeLinear` (per tensor, symmetric,
//!   zero point 0; one pair per tensor, shared by every INT8 layer that reads it); the weight becomes an INT8
//!   initializer followed by `DequantizeLinear` with per-output-channel scales; the bias stays float.
//! - FP16 layer: each activation input is `Cast` to float16, its constant inputs (weight, bias) become float16
//!   initializers, and its output is `Cast` back to float32 under the original name, so nothing downstream changes.
//! - FP32 layer and every other node: untouched.
//!
//! The [`Flavor::Simulate`] twin is the same rewrite with two substitutions that keep the numbers and suit tract
//! (whose float16 support is fragile, crates.md): weights are stored already dequantized (`q · s` in f32, exactly
//! what `DequantizeLinear` computes), and float16 is emulated by `Cast(f16) → Cast(f32)` pairs with weights rounded
//! to float16 but stored as f32. Sharing one rewrite is what makes the simulation predict the deployed model.
//!
//! Every node of the output carries its stable name from the graph view, so TensorRT, the plan and the reports
//! agree on names. Q/DQ with `axis` needs opset 13: older models are upgraded first (`model::opset`).

use std::collections::{HashMap, HashSet};

use half::f16;

use crate::calib::ScalesFile;
use crate::calib::methods::per_channel_scales;
use crate::error::{Diagnose, Fault};
use crate::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};
use crate::model::{Graph, Model, weights};
use crate::precision::{Plan, Precision};

/// The opset that per-channel Q/DQ needs.
pub const QDQ_OPSET: i64 = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// What TensorRT and ONNX Runtime get: INT8 weights with DequantizeLinear, real float16.
    Deploy,
    /// What the simulator runs in tract: the same numbers in an f32 graph (see the module comment).
    Simulate,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no INT8 scale for activation `{tensor}` (read by layer `{layer}`) in the scales")]
    MissingScale { tensor: String, layer: String },
    #[error("the plan names layer `{layer}`, which is not a quantizable layer of the model")]
    UnknownLayer { layer: String },
    #[error("layer `{layer}`: weight `{tensor}`: {detail}")]
    Weight { layer: String, tensor: String, detail: String },
    #[error("cannot raise the model's opset to {QDQ_OPSET} for per-channel Q/DQ: {detail}")]
    Opset { detail: String },
}

impl Diagnose for ExportError {
    fn fault(&self) -> Fault {
        Fault::Input
    }
    fn hint(&self) -> Option<String> {
        match self {
            ExportError::MissingScale { .. } => {
                Some("the scales do not belong to this model: run `precisiond calibrate` on the bundle again".into())
            }
            _ => None,
        }
    }
}

/// Rewrites `model` for `plan`; returns the new message tree (the caller decides where it goes).
pub fn export(model: &Model, plan: &Plan, scales: &ScalesFile, flavor: Flavor) -> Result<ModelProto, ExportError> {
    let view = model.graph();
    for (layer, _) in plan.layers() {
        if view.index_of(layer).is_none_or(|i| !view.node(i).is_quantizable()) {
            return Err(ExportError::UnknownLayer { layer: layer.clone() });
        }
    }
    let mut proto = model.proto().clone();
    let graph = proto.graph.as_mut().expect("a loaded model has a graph");
    for (node, info) in graph.node.iter_mut().zip(view.nodes()) {
        node.name = Some(info.name.clone());
    }
    let needs_qdq = plan.layers().iter().any(|(_, p)| *p == Precision::Int8);
    if needs_qdq && model.opset().unwrap_or(1) < QDQ_OPSET {
        proto = crate::model::opset::upgrade(&proto, QDQ_OPSET).map_err(|e| ExportError::Opset { detail: e.to_string() })?;
    }
    // The upgrade may add nodes (all named): work on a fresh view of the upgraded graph.
    let upgraded = Model::from_proto(proto, model.path()).map_err(|e| ExportError::Opset { detail: e.to_string() })?;
    let view = upgraded.graph();
    let mut proto = upgraded.into_proto();
    let graph = proto.graph.as_mut().expect("a loaded model has a graph");

    let mut rewriter = Rewriter::new(graph, &view, scales, flavor);
    let mut nodes = Vec::with_capacity(graph.node.len());
    for &index in view.order() {
        let node = graph.node[index].clone();
        match plan.get(&view.node(index).name) {
            Some(Precision::Int8) => rewriter.int8_layer(graph, index, node, &mut nodes)?,
            Some(Precision::Fp16) => rewriter.fp16_layer(graph, index, node, &mut nodes)?,
            Some(Precision::Fp32) | None => nodes.push(node),
        }
    }
    graph.node = nodes;
    graph.initializer.extend(rewriter.initializers);
    remove_orphans(graph, &rewriter.disconnected);
    Ok(proto)
}

/// Hands out tensor and node names that the graph does not use yet.
struct Namer {
    used: HashSet<String>,
}

impl Namer {
    fn new(graph: &GraphProto) -> Namer {
        let mut used = HashSet::new();
        for node in &graph.node {
            used.insert(node.name().to_owned());
            used.extend(node.output.iter().cloned());
            used.extend(node.input.iter().cloned());
        }
        used.extend(graph.initializer.iter().map(|t| t.name().to_owned()));
        used.extend(graph.input.iter().map(|v| v.name().to_owned()));
        used.extend(graph.output.iter().map(|v| v.name().to_owned()));
        Namer { used }
    }

    fn fresh(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut k = 2;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

struct Rewriter<'a> {
    view: &'a Graph,
    scales: &'a ScalesFile,
    flavor: Flavor,
    namer: Namer,
    initializers: Vec<TensorProto>,
    /// activation tensor → its dequantized (INT8) or float16-cast (FP16) replacement, once made.
    int8_inputs: HashMap<String, String>,
    fp16_inputs: HashMap<String, String>,
    /// constant tensor → its replacement, per precision.
    int8_weights: HashMap<String, String>,
    fp16_constants: HashMap<String, String>,
    /// Constants some layer no longer reads: removed at the end if nothing else does.
    disconnected: HashSet<String>,
}

impl<'a> Rewriter<'a> {
    fn new(graph: &GraphProto, view: &'a Graph, scales: &'a ScalesFile, flavor: Flavor) -> Rewriter<'a> {
        Rewriter {
            view,
            scales,
            flavor,
            namer: Namer::new(graph),
            initializers: Vec::new(),
            int8_inputs: HashMap::new(),
            fp16_inputs: HashMap::new(),
            int8_weights: HashMap::new(),
            fp16_constants: HashMap::new(),
            disconnected: HashSet::new(),
        }
    }

    fn int8_layer(
        &mut self,
        graph: &GraphProto,
        index: usize,
        mut node: NodeProto,
        out: &mut Vec<NodeProto>,
    ) -> Result<(), ExportError> {
        let layer = self.view.node(index).name.clone();
        let operands = weights::operands(graph, self.view, index);
        for tensor in &operands.activations {
            let replacement = match self.int8_inputs.get(tensor) {
                Some(r) => r.clone(),
                None => {
                    let scale = self
                        .scales
                        .activation(tensor)
                        .ok_or_else(|| ExportError::MissingScale { tensor: tensor.clone(), layer: layer.clone() })?
                        .scale;
                    let r = self.quantize_dequantize(tensor, scale, out);
                    self.int8_inputs.insert(tensor.clone(), r.clone());
                    r
                }
            };
            replace_input(&mut node, tensor, &replacement);
        }
        if let Some(weight) = operands.weight {
            let replacement = match self.int8_weights.get(&weight.tensor) {
                Some(r) => r.clone(),
                None => {
                    let r = self.int8_weight(graph, &layer, &weight, out)?;
                    self.int8_weights.insert(weight.tensor.clone(), r.clone());
                    r
                }
            };
            node.input[weight.slot] = replacement;
            self.disconnected.insert(weight.tensor);
        }
        out.push(node);
        Ok(())
    }

    /// `QuantizeLinear → DequantizeLinear` on an activation; returns the dequantized tensor's name.
    fn quantize_dequantize(&mut self, tensor: &str, scale: f32, out: &mut Vec<NodeProto>) -> String {
        let scale_name = self.namer.fresh(format!("{tensor}_scale"));
        let zero_name = self.namer.fresh(format!("{tensor}_zero_point"));
        self.initializers.push(f32_tensor(&scale_name, &[], &[scale]));
        self.initializers.push(i8_tensor(&zero_name, &[], &[0]));
        let quantized = self.namer.fresh(format!("{tensor}_quantized"));
        let dequantized = self.namer.fresh(format!("{tensor}_dequantized"));
        let q = self.namer.fresh(format!("{tensor}_QuantizeLinear"));
        let dq = self.namer.fresh(format!("{tensor}_DequantizeLinear"));
        out.push(new_node(&q, "QuantizeLinear", &[tensor, &scale_name, &zero_name], &quantized, vec![]));
        out.push(new_node(&dq, "DequantizeLinear", &[&quantized, &scale_name, &zero_name], &dequantized, vec![]));
        dequantized
    }

    fn int8_weight(
        &mut self,
        graph: &GraphProto,
        layer: &str,
        weight: &weights::WeightOperand,
        out: &mut Vec<NodeProto>,
    ) -> Result<String, ExportError> {
        let werr = |detail: String| ExportError::Weight { layer: layer.to_owned(), tensor: weight.tensor.clone(), detail };
        let source = weights::find(graph, self.view, &weight.tensor).ok_or_else(|| werr("not a constant".into()))?;
        let tensor = source.tensor();
        let dims = weights::dims(tensor);
        let values = weights::to_f32(tensor).map_err(|e| werr(e.to_string()))?;
        let channel_scales = match self.scales.weight(&weight.tensor) {
            Some(w) if w.axis == weight.axis && dims.get(w.axis) == Some(&w.scales.len()) => w.scales.clone(),
            // Scales made elsewhere may lack weights: they follow from the weights alone.
            _ => per_channel_scales(&values, &dims, weight.axis).map_err(|e| werr(e.to_string()))?,
        };
        let quantized = quantize_per_channel(&values, &dims, weight.axis, &channel_scales);
        let base = &weight.tensor;
        match self.flavor {
            Flavor::Deploy => {
                let q_name = self.namer.fresh(format!("{base}_quantized"));
                let scale_name = self.namer.fresh(format!("{base}_scale"));
                let zero_name = self.namer.fresh(format!("{base}_zero_point"));
                let dq_out = self.namer.fresh(format!("{base}_dequantized"));
                let dq = self.namer.fresh(format!("{base}_DequantizeLinear"));
                self.initializers.push(i8_tensor(&q_name, &tensor.dims, &quantized));
                self.initializers.push(f32_tensor(&scale_name, &[channel_scales.len() as i64], &channel_scales));
                self.initializers.push(i8_tensor(&zero_name, &[channel_scales.len() as i64], &vec![0; channel_scales.len()]));
                let axis = int_attr("axis", weight.axis as i64);
                out.push(new_node(&dq, "DequantizeLinear", &[&q_name, &scale_name, &zero_name], &dq_out, vec![axis]));
                Ok(dq_out)
            }
            Flavor::Simulate => {
                let name = self.namer.fresh(format!("{base}_fakequant"));
                let dequantized = dequantize_per_channel(&quantized, &dims, weight.axis, &channel_scales);
                self.initializers.push(f32_tensor(&name, &tensor.dims, &dequantized));
                Ok(name)
            }
        }
    }

    fn fp16_layer(
        &mut self,
        graph: &GraphProto,
        index: usize,
        mut node: NodeProto,
        out: &mut Vec<NodeProto>,
    ) -> Result<(), ExportError> {
        let layer = self.view.node(index).name.clone();
        let inputs = node.input.clone();
        for (slot, tensor) in inputs.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
            if weights::is_constant(graph, self.view, tensor) {
                let replacement = match self.fp16_constants.get(tensor) {
                    Some(r) => r.clone(),
                    None => {
                        let r = self.fp16_constant(graph, &layer, tensor)?;
                        self.fp16_constants.insert(tensor.clone(), r.clone());
                        r
                    }
                };
                node.input[slot] = replacement;
                self.disconnected.insert(tensor.clone());
            } else {
                let replacement = match self.fp16_inputs.get(tensor) {
                    Some(r) => r.clone(),
                    None => {
                        let r = self.to_fp16(tensor, out);
                        self.fp16_inputs.insert(tensor.clone(), r.clone());
                        r
                    }
                };
                node.input[slot] = replacement;
            }
        }
        // The layer writes a float16 (or, simulated, unrounded) tensor; a Cast restores the original name and type.
        let outputs = node.output.clone();
        let mut after = Vec::new();
        for (slot, tensor) in outputs.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
            let inner = self.namer.fresh(format!("{tensor}_fp16"));
            node.output[slot] = inner.clone();
            match self.flavor {
                Flavor::Deploy => {
                    let cast = self.namer.fresh(format!("{tensor}_to_fp32"));
                    after.push(cast_node(&cast, &inner, tensor, DataType::Float));
                }
                Flavor::Simulate => {
                    let rounded = self.namer.fresh(format!("{tensor}_fp16_rounded"));
                    let (down, up) = (self.namer.fresh(format!("{tensor}_to_fp16")), self.namer.fresh(format!("{tensor}_to_fp32")));
                    after.push(cast_node(&down, &inner, &rounded, DataType::Float16));
                    after.push(cast_node(&up, &rounded, tensor, DataType::Float));
                }
            }
        }
        out.push(node);
        out.extend(after);
        Ok(())
    }

    /// Casts an activation to float16 (simulated: rounds it through float16); returns the new tensor's name.
    fn to_fp16(&mut self, tensor: &str, out: &mut Vec<NodeProto>) -> String {
        let half = self.namer.fresh(format!("{tensor}_fp16"));
        let cast = self.namer.fresh(format!("{tensor}_to_fp16"));
        out.push(cast_node(&cast, tensor, &half, DataType::Float16));
        match self.flavor {
            Flavor::Deploy => half,
            Flavor::Simulate => {
                let back = self.namer.fresh(format!("{tensor}_fp16_as_fp32"));
                let cast = self.namer.fresh(format!("{tensor}_fp16_to_fp32"));
                out.push(cast_node(&cast, &half, &back, DataType::Float));
                back
            }
        }
    }

    fn fp16_constant(&mut self, graph: &GraphProto, layer: &str, tensor: &str) -> Result<String, ExportError> {
        let werr = |detail: String| ExportError::Weight { layer: layer.to_owned(), tensor: tensor.to_owned(), detail };
        let source = weights::find(graph, self.view, tensor).ok_or_else(|| werr("not a constant".into()))?;
        let values = weights::to_f32(source.tensor()).map_err(|e| werr(e.to_string()))?;
        let dims = source.tensor().dims.clone();
        let rounded: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
        let name = self.namer.fresh(format!("{tensor}_fp16"));
        self.initializers.push(match self.flavor {
            Flavor::Deploy => f16_tensor(&name, &dims, &rounded),
            Flavor::Simulate => f32_tensor(&name, &dims, &rounded.iter().map(|v| v.to_f32()).collect::<Vec<_>>()),
        });
        Ok(name)
    }
}

/// `q = saturate(round_half_even(w / s_c))` per output channel, as QuantizeLinear computes it.
pub fn quantize_per_channel(values: &[f32], dims: &[usize], axis: usize, scales: &[f32]) -> Vec<i8> {
    let inner: usize = dims.get(axis + 1..).map_or(1, |d| d.iter().product());
    let channels = dims.get(axis).copied().unwrap_or(1).max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[(i / inner) % channels];
            (v / s).round_ties_even().clamp(-128.0, 127.0) as i8
        })
        .collect()
}

/// `q · s_c` per output channel, as DequantizeLinear computes it (zero point 0).
pub fn dequantize_per_channel(q: &[i8], dims: &[usize], axis: usize, scales: &[f32]) -> Vec<f32> {
    let inner: usize = dims.get(axis + 1..).map_or(1, |d| d.iter().product());
    let channels = dims.get(axis).copied().unwrap_or(1).max(1);
    q.iter().enumerate().map(|(i, &v)| v as f32 * scales[(i / inner) % channels]).collect()
}

fn replace_input(node: &mut NodeProto, from: &str, to: &str) {
    for input in node.input.iter_mut().filter(|i| *i == from) {
        *input = to.to_owned();
    }
}

/// Drops the constants (initializers and Constant nodes) that a rewrite disconnected and nothing reads any more.
fn remove_orphans(graph: &mut GraphProto, disconnected: &HashSet<String>) {
    let mut read: HashSet<&str> = graph.output.iter().map(|v| v.name()).collect();
    for node in &graph.node {
        read.extend(node.input.iter().map(String::as_str));
    }
    let mut outer = Vec::new();
    for node in &graph.node {
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                collect_reads(sub, &mut outer);
            }
        }
    }
    read.extend(outer.iter().map(String::as_str));
    let orphan = |name: &str| disconnected.contains(name) && !read.contains(name);
    let dead: HashSet<String> = graph
        .initializer
        .iter()
        .map(|t| t.name().to_owned())
        .chain(graph.node.iter().filter(|n| weights::constant_value(n).is_some()).flat_map(|n| n.output.clone()))
        .filter(|n| orphan(n))
        .collect();
    graph.initializer.retain(|t| !dead.contains(t.name()));
    graph.node.retain(|n| !(weights::constant_value(n).is_some() && n.output.iter().all(|o| dead.contains(o))));
    graph.value_info.retain(|v| !dead.contains(v.name()));
}

fn collect_reads(graph: &GraphProto, out: &mut Vec<String>) {
    for node in &graph.node {
        out.extend(node.input.iter().cloned());
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                collect_reads(sub, out);
            }
        }
    }
}

fn new_node(name: &str, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(name.to_owned()),
        op_type: Some(op.to_owned()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_owned()],
        attribute,
        ..Default::default()
    }
}

fn cast_node(name: &str, input: &str, output: &str, to: DataType) -> NodeProto {
    new_node(name, "Cast", &[input], output, vec![int_attr("to", to as i64)])
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: Some(name.to_owned()), r#type: Some(AttributeType::Int as i32), i: Some(value), ..Default::default() }
}

fn raw_tensor(name: &str, dims: &[i64], data_type: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_owned()),
        dims: dims.to_vec(),
        data_type: Some(data_type as i32),
        raw_data: Some(raw.into()),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    raw_tensor(name, dims, DataType::Float, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn f16_tensor(name: &str, dims: &[i64], values: &[f16]) -> TensorProto {
    raw_tensor(name, dims, DataType::Float16, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn i8_tensor(name: &str, dims: &[i64], values: &[i8]) -> TensorProto {
    raw_tensor(name, dims, DataType::Int8, values.iter().map(|&v| v as u8).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_quantization_rounds_half_to_even_and_saturates() {
        // dims [2, 3]: channel 0 has scale 0.5, channel 1 scale 1.0
        let values = [0.25, 0.75, -100.0, 2.5, 3.5, 200.0];
        let q = quantize_per_channel(&values, &[2, 3], 0, &[0.5, 1.0]);
        assert_eq!(q, [0, 2, -128, 2, 4, 127]);
        assert_eq!(dequantize_per_channel(&q, &[2, 3], 0, &[0.5, 1.0]), [0.0, 1.0, -64.0, 2.0, 4.0, 127.0]);
        // axis 1 of [3, 2]: scales alternate
        let q = quantize_per_channel(&[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], &[3, 2], 1, &[1.0, 2.0]);
        assert_eq!(q, [1, 0, 2, 1, 3, 2]);
    }
}
