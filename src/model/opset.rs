//! Raising a model's default-domain (ai.onnx) opset without changing what it computes.
//!
//! Per-channel Q/DQ (`QuantizeLinear`/`DequantizeLinear` with `axis`) exists from opset 13 on, and the models
//! precisiond gets are often older (the PP-OCR exports are opset 11 and 12). The opset import says which version of
//! every operator the nodes mean, so raising the number alone silently changes the meaning of each operator whose
//! definition changed in between. [`upgrade`] therefore walks every default-domain node, in subgraphs too, and
//! rewrites those whose meaning or signature changed between the model's opset and the target, or refuses, naming
//! the node and the reason, where no faithful rewrite exists.
//!
//! The changes that matter, from the ONNX operator changelog. Everything else between opset 7 and 21 only adds types,
//! or adds attributes and optional inputs whose defaults keep the old behaviour (ArgMax's `select_last_index`,
//! Reshape's `allowzero`, the recurrent ops' `layout`, ...), and needs nothing.
//!
//! | operator | opset | what changed | what [`upgrade`] does |
//! |---|---|---|---|
//! | BatchNormalization | 9 | `spatial` removed | `spatial = 1` dropped, `0` refused |
//! | Scan | 9 | batch axis and `sequence_lens` removed | refused |
//! | Upsample | 9, 10 | `scales` became an input; then deprecated for Resize | moved; refused from 10 on |
//! | Slice, TopK | 10 | `starts`/`ends`/`axes`, `k` became inputs | moved |
//! | Dropout | 10, 12 | mask became bool (was the input's type); `ratio` became an input | unused mask dropped, a read one refused; moved |
//! | Resize | 11 | opset 10 meant `asymmetric`; nearest rounding was left to the runtime | made explicit; nearest only for constant scales ≥ 1 |
//! | Clip, Pad | 11 | `min`/`max`, `pads`/`value` became inputs of the data's type | moved, the type taken from the graph |
//! | Scatter | 11 | deprecated for ScatterElements, same meaning | renamed |
//! | OneHot | 11 | negative indices count from the back (they gave all `off_value`) | refused |
//! | Softmax, LogSoftmax, Hardmax | 13 | act on one axis instead of the input coerced to 2-D at `axis` | kept where `axis` is the last axis, else Flatten → op → Reshape |
//! | Split | 13, 18 | `split` became an input; without it 18 needs `num_outputs` | moved; set |
//! | Squeeze, Unsqueeze, ReduceSum | 13 | `axes` became an input | moved |
//! | Resize | 13 | `tf_half_pixel_for_nn` removed | nearest rewritten to `half_pixel` with the equivalent rounding |
//! | BatchNormalization | 14 | training-mode outputs changed meaning | refused where they are present |
//! | RoiAlign | 16 | new `coordinate_transformation_mode` defaults to `half_pixel` (old: `output_half_pixel`) | old mode made explicit |
//! | other Reduce* | 18 | `axes` became an input | moved |
//! | GridSample | 20 | modes renamed (`bilinear` → `linear`, `bicubic` → `cubic`) | renamed |
//! | DFT | 20 | `axis` became an input, its default 1 → -2 | moved, always explicit |
//! | GroupNormalization | 21 | `scale`/`bias` per channel instead of per group | refused |
//!
//! Operators of other domains are left alone: their opset imports are their own.

use std::collections::{HashMap, HashSet};

use super::graph::{Graph, GraphError};
use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, tensor_shape_proto,
};
use super::weights;
use crate::error::Diagnose;

/// The oldest opset [`upgrade`] starts from: before 7, the arithmetic operators broadcast through attributes and
/// several operators took `consumed_inputs`; models that old are better re-exported.
pub const MIN_SOURCE_OPSET: i64 = 7;

/// The newest opset whose operator changes [`upgrade`] knows.
pub const MAX_TARGET_OPSET: i64 = 21;

/// The opset from which per-channel Q/DQ exists: what exports need.
pub const PER_CHANNEL_QDQ_OPSET: i64 = 13;

#[derive(Debug, thiserror::Error)]
pub enum OpsetError {
    #[error("cannot upgrade to opset {target}: precisiond knows the operator changes up to opset {MAX_TARGET_OPSET}")]
    TargetTooNew { target: i64 },
    #[error("the model uses ai.onnx opset {opset}; upgrading starts from opset {MIN_SOURCE_OPSET}")]
    SourceTooOld { opset: i64 },
    #[error("the model has no graph")]
    NoGraph,
    #[error("node `{node}` is in the default domain, but the model imports no ai.onnx opset")]
    NoDefaultOpset { node: String },
    #[error("the model's graph is not valid")]
    Graph(#[source] GraphError),
    #[error(
        "local function `{function}` uses ai.onnx opset {version}; precisiond does not upgrade function bodies, and \
         a function's opset must match the model's"
    )]
    LocalFunction { function: String, version: i64 },
    #[error("the model carries training graphs (training_info); precisiond does not upgrade them")]
    TrainingInfo,
    #[error("node `{node}` ({op}) cannot be upgraded from opset {from} to {to}: {why}")]
    Refused { node: String, op: String, from: i64, to: i64, why: String },
    #[error(
        "node `{node}` ({op}): moving to opset {to} needs the element type of `{tensor}`, which the graph does not \
         declare and precisiond cannot infer"
    )]
    UnknownType { node: String, op: String, tensor: String, to: i64 },
    #[error("node `{node}` ({op}): {problem}")]
    Malformed { node: String, op: String, problem: String },
}

impl Diagnose for OpsetError {
    fn hint(&self) -> Option<String> {
        match self {
            OpsetError::TargetTooNew { .. } => {
                Some(format!("use a target between {PER_CHANNEL_QDQ_OPSET} and {MAX_TARGET_OPSET}"))
            }
            OpsetError::SourceTooOld { .. } | OpsetError::Refused { .. } | OpsetError::LocalFunction { .. } => {
                Some("re-export the model from its framework at the target opset or newer".into())
            }
            OpsetError::UnknownType { .. } => Some(
                "run ONNX shape inference on the model first (in Python: \
                 `onnx.save(onnx.shape_inference.infer_shapes(onnx.load(path)), out)`), which declares the types"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// One node that [`upgrade_with_report`] changed beyond its opset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The node's name as the graph view gives it (`parent/attribute/node` inside subgraphs).
    pub node: String,
    pub op: String,
    /// What was done, in words.
    pub change: String,
}

/// The upgraded model and what changed in it.
#[derive(Clone, Debug)]
pub struct Upgraded {
    pub model: ModelProto,
    pub from: Option<i64>,
    pub rewrites: Vec<Rewrite>,
}

/// A new tree with the default-domain opset raised to `target` and every node whose operator changed meaning in
/// between rewritten so that the model computes the same thing. A model already at `target` or above comes back
/// unchanged.
pub fn upgrade(model: &ModelProto, target: i64) -> Result<ModelProto, OpsetError> {
    upgrade_with_report(model, target).map(|u| u.model)
}

/// [`upgrade`], also saying which nodes were rewritten.
pub fn upgrade_with_report(model: &ModelProto, target: i64) -> Result<Upgraded, OpsetError> {
    if target > MAX_TARGET_OPSET {
        return Err(OpsetError::TargetTooNew { target });
    }
    let graph = model.graph.as_ref().ok_or(OpsetError::NoGraph)?;
    let from = default_opset(model);
    let unchanged = |model: &ModelProto| Upgraded { model: model.clone(), from, rewrites: Vec::new() };
    let Some(from) = from else {
        if let Some(node) = first_default_domain_node(graph) {
            return Err(OpsetError::NoDefaultOpset { node });
        }
        // Nothing in the graph depends on the ai.onnx version; the import is what later Q/DQ nodes need.
        let mut out = model.clone();
        out.opset_import.push(super::proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(target) });
        raise_ir_version(&mut out, target, false);
        return Ok(Upgraded { model: out, from: None, rewrites: Vec::new() });
    };
    if from >= target {
        return Ok(unchanged(model));
    }
    if from < MIN_SOURCE_OPSET {
        return Err(OpsetError::SourceTooOld { opset: from });
    }
    for function in &model.functions {
        let version = function.opset_import.iter().find(|o| is_default_domain(o.domain())).map(|o| o.version());
        let uses_default = function.node.iter().any(|n| is_default_domain(n.domain()));
        if let Some(version) = version.filter(|&v| v != target && uses_default) {
            return Err(OpsetError::LocalFunction { function: function.name().to_owned(), version });
        }
    }
    if !model.training_info.is_empty() {
        return Err(OpsetError::TrainingInfo);
    }

    let view = Graph::new(graph).map_err(OpsetError::Graph)?;
    let labels: Vec<String> = view.nodes().iter().map(|n| n.name.clone()).collect();
    let mut taken = HashSet::new();
    collect_names(graph, &mut taken);
    taken.extend(labels.iter().cloned());

    let mut out = model.clone();
    let mut upgrader = Upgrader { from, to: target, taken, added_initializer: false, rewrites: Vec::new() };
    let out_graph = out.graph.as_mut().ok_or(OpsetError::NoGraph)?;
    upgrader.graph(out_graph, &labels, true, &Facts::new(), &Consts::new())?;

    for import in out.opset_import.iter_mut().filter(|o| is_default_domain(o.domain())) {
        import.version = Some(target);
    }
    raise_ir_version(&mut out, target, upgrader.added_initializer);
    Ok(Upgraded { model: out, from: Some(from), rewrites: upgrader.rewrites })
}

/// The lowest IR version that can declare `opset` (the ONNX release table).
pub fn min_ir_version(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

fn raise_ir_version(model: &mut ModelProto, target: i64, added_initializer: bool) {
    // Below IR 4 every initializer must also be a graph input; new ones are not, so they need IR 4.
    let needed = min_ir_version(target).max(if added_initializer { 4 } else { 0 });
    if model.ir_version.is_none_or(|v| v < needed) {
        model.ir_version = Some(needed);
    }
}

fn default_opset(model: &ModelProto) -> Option<i64> {
    model.opset_import.iter().find(|o| is_default_domain(o.domain())).map(|o| o.version())
}

fn is_default_domain(domain: &str) -> bool {
    matches!(domain, "" | "ai.onnx")
}

fn first_default_domain_node(graph: &GraphProto) -> Option<String> {
    graph.node.iter().enumerate().find_map(|(i, node)| {
        if is_default_domain(node.domain()) {
            return Some(node_label(node, i));
        }
        node.attribute.iter().flat_map(|a| a.g.iter().chain(&a.graphs)).find_map(first_default_domain_node)
    })
}

fn node_label(node: &NodeProto, index: usize) -> String {
    match node.name() {
        "" => format!("{}_{index}", node.op_type()),
        name => name.to_owned(),
    }
}

/// Every name in the model, at every depth: new names must not take one, since a subgraph sees its enclosing
/// scopes and ONNX forbids shadowing.
fn collect_names(graph: &GraphProto, taken: &mut HashSet<String>) {
    let values = graph.input.iter().chain(&graph.output).chain(&graph.value_info);
    taken.extend(values.map(|v| v.name().to_owned()));
    taken.extend(graph.initializer.iter().map(|t| t.name().to_owned()));
    taken.extend(graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.name().to_owned()));
    for node in &graph.node {
        taken.insert(node.name().to_owned());
        taken.extend(node.input.iter().chain(&node.output).cloned());
        for sub in node.attribute.iter().flat_map(|a| a.g.iter().chain(&a.graphs)) {
            collect_names(sub, taken);
        }
    }
}

// ---- what is known about tensors -------------------------------------------------------------------------------

/// What the rewrites need to know about a tensor: its rank (Softmax and friends) and element type (the typed
/// constants of Clip and Pad). `len` is the length of a 1-D tensor: exporters compute shapes at run time
/// (Shape → Slice → Concat → Reshape), and the length of such a shape is the rank of what it reshapes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Fact {
    rank: Option<usize>,
    elem: Option<i32>,
    len: Option<usize>,
}

type Facts = HashMap<String, Fact>;

/// Small constant tensors by name (axes, shapes, scales), from initializers and Constant nodes.
type Consts = HashMap<String, TensorProto>;

/// Constants bigger than this are weights, never axes or shapes; not copying them keeps the walk cheap.
const SMALL_CONST: usize = 64;

fn declared(value: &ValueInfoProto) -> Fact {
    let Some(tensor) = value.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else { return Fact::default() };
    let dims = tensor.shape.as_ref().map(|s| &s.dim[..]);
    let len = match dims {
        Some([d]) => match d.value {
            Some(tensor_shape_proto::dimension::Value::DimValue(n)) => usize::try_from(n).ok(),
            _ => None,
        },
        _ => None,
    };
    Fact { rank: dims.map(<[_]>::len), elem: tensor.elem_type.filter(|&e| e != 0), len }
}

fn collect_consts(graph: &GraphProto, outer: &Consts) -> Consts {
    let mut consts = outer.clone();
    let small = |t: &TensorProto| {
        t.dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .is_some_and(|n| n <= SMALL_CONST)
    };
    for tensor in graph.initializer.iter().filter(|t| small(t)) {
        consts.insert(tensor.name().to_owned(), tensor.clone());
    }
    for node in graph.node.iter().filter(|n| n.op_type() == "Constant" && is_default_domain(n.domain())) {
        let (Some(out), Some(tensor)) = (node.output.first(), constant_tensor(node)) else { continue };
        if small(&tensor) {
            consts.insert(out.clone(), tensor);
        }
    }
    consts
}

/// The tensor a Constant node produces, whichever attribute holds it.
fn constant_tensor(node: &NodeProto) -> Option<TensorProto> {
    let attr = node.attribute.first()?;
    match attr.name() {
        "value" => attr.t.clone(),
        "value_int" => Some(int64_tensor("", vec![], &[attr.i?])),
        "value_ints" => Some(int64_tensor("", vec![attr.ints.len() as i64], &attr.ints)),
        "value_float" => Some(float_tensor("", vec![], &[attr.f?])),
        "value_floats" => Some(float_tensor("", vec![attr.floats.len() as i64], &attr.floats)),
        _ => None,
    }
}

fn tensor_fact(tensor: &TensorProto) -> Fact {
    let len = match tensor.dims[..] {
        [n] => usize::try_from(n).ok(),
        _ => None,
    };
    Fact { rank: Some(tensor.dims.len()), elem: tensor.data_type.filter(|&e| e != 0), len }
}

/// Ranks and element types of the graph's tensors: what the file declares, and what follows from simple,
/// certain rules for the common operators. A tensor missing here costs the general Softmax rewrite or a refusal,
/// never a wrong model, so the rules only cover operators whose output rank and type are beyond doubt.
fn infer_facts(graph: &GraphProto, outer: &Facts, consts: &Consts) -> Facts {
    let mut facts = outer.clone();
    for tensor in &graph.initializer {
        facts.insert(tensor.name().to_owned(), tensor_fact(tensor));
    }
    for value in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
        let known = declared(value);
        let entry = facts.entry(value.name().to_owned()).or_default();
        entry.rank = known.rank.or(entry.rank);
        entry.elem = known.elem.or(entry.elem);
        entry.len = known.len.or(entry.len);
    }
    for node in &graph.node {
        let inferred = node_facts(node, &facts, consts);
        for (out, fact) in node.output.iter().zip(inferred) {
            if out.is_empty() {
                continue;
            }
            let entry = facts.entry(out.clone()).or_default();
            entry.rank = entry.rank.or(fact.rank);
            entry.elem = entry.elem.or(fact.elem);
            entry.len = entry.len.or(fact.len);
        }
    }
    facts
}

/// Output rank equals the first input's.
#[rustfmt::skip]
const SAME_RANK: &[&str] = &[
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization", "Cast", "Ceil",
    "Celu", "Clip", "Conv", "ConvInteger", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace",
    "DequantizeLinear", "Dropout", "Elu", "Erf", "Exp", "Floor", "GatherElements", "Gelu", "GlobalAveragePool",
    "GlobalLpPool", "GlobalMaxPool", "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax", "Identity",
    "InstanceNormalization", "IsInf", "IsNaN", "LRN", "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax",
    "LpNormalization", "LpPool", "MaxPool", "MeanVarianceNormalization", "Mish", "Neg", "Not", "PRelu", "Pad",
    "QuantizeLinear", "Reciprocal", "Relu", "Resize", "ReverseSequence", "Round", "Scatter", "ScatterElements",
    "ScatterND", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Slice", "Softmax", "Softplus", "Softsign",
    "SpaceToDepth", "Split", "Sqrt", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Trilu", "Upsample",
];

/// Multidirectional broadcasting: output rank is the largest input rank.
#[rustfmt::skip]
const BROADCAST: &[&str] = &[
    "Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Div", "Equal", "Greater", "GreaterOrEqual",
    "Less", "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "Sub", "Sum", "Where", "Xor",
];

/// Output element type equals the first input's.
#[rustfmt::skip]
const SAME_TYPE: &[&str] = &[
    "Abs", "Acos", "Acosh", "Add", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization", "Ceil",
    "Celu", "Clip", "Concat", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace", "Div", "Dropout",
    "Elu", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm",
    "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "GroupNormalization", "HardSigmoid", "HardSwish",
    "Hardmax", "Identity", "InstanceNormalization", "LRN", "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax",
    "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "MeanVarianceNormalization", "Min", "Mish",
    "Mod", "Mul", "Neg", "PRelu", "Pad", "Pow", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu",
    "Reshape", "Resize", "ReverseSequence", "Round", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shrink",
    "Sigmoid", "Sign", "Sin", "Sinh", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt",
    "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze",
    "Upsample",
];

#[rustfmt::skip]
const BOOL_OUTPUT: &[&str] = &[
    "And", "Equal", "Greater", "GreaterOrEqual", "IsInf", "IsNaN", "Less", "LessOrEqual", "Not", "Or", "Xor",
];

const INT64_OUTPUT: &[&str] = &["ArgMax", "ArgMin", "NonZero", "Shape", "Size"];

/// Facts for each output of `node`, in order.
fn node_facts(node: &NodeProto, facts: &Facts, consts: &Consts) -> Vec<Fact> {
    if !is_default_domain(node.domain()) {
        return Vec::new();
    }
    let op = node.op_type();
    if op == "Constant" {
        return constant_tensor(node).map(|t| vec![tensor_fact(&t)]).unwrap_or_default();
    }
    let input = |i: usize| -> Fact {
        node.input.get(i).filter(|t| !t.is_empty()).and_then(|t| facts.get(t)).copied().unwrap_or_default()
    };
    let rank = output_rank(node, facts, consts);
    let len = if rank == Some(1) { output_len(node, facts, consts) } else { None };
    let first = Fact { rank, elem: output_elem(node, facts), len };
    match op {
        // Every piece of a Split has the input's rank and type.
        "Split" => vec![Fact { len: None, ..first }; node.output.len()],
        "TopK" => vec![
            Fact { len: None, ..first },
            Fact { rank: input(0).rank, elem: Some(DataType::Int64 as i32), len: None },
        ],
        _ => vec![first],
    }
}

fn output_rank(node: &NodeProto, facts: &Facts, consts: &Consts) -> Option<usize> {
    let op = node.op_type();
    let rank = |i: usize| node.input.get(i).filter(|t| !t.is_empty()).and_then(|t| facts.get(t)).and_then(|f| f.rank);
    let const_ints = |i: usize| node.input.get(i).and_then(|t| consts.get(t)).and_then(ints);
    let present = || node.input.iter().enumerate().filter(|(_, t)| !t.is_empty()).map(|(i, _)| i);
    // The length of a 1-D shape input is the rank it gives.
    let shape_len = |i: usize| {
        let fact = node.input.get(i).and_then(|t| facts.get(t))?;
        if fact.rank == Some(1) { fact.len } else { None }
    };
    if SAME_RANK.contains(&op) {
        return rank(0);
    }
    if BROADCAST.contains(&op) {
        return present().map(rank).try_fold(0, |acc, r| Some(acc.max(r?)));
    }
    match op {
        "MatMul" | "MatMulInteger" => match (rank(0)?, rank(1)?) {
            (1, 1) => Some(0),
            (1, b) => Some(b - 1),
            (a, 1) => Some(a - 1),
            (a, b) => Some(a.max(b)),
        },
        "Gemm" | "Flatten" | "NonZero" => Some(2),
        "Shape" | "Range" => Some(1),
        "Size" => Some(0),
        "Concat" => present().find_map(rank),
        "Transpose" => match attr(node, "perm") {
            Some(perm) => Some(perm.ints.len()),
            None => rank(0),
        },
        "Squeeze" => {
            let r = rank(0)?;
            let axes = attr(node, "axes").map(|a| a.ints.clone()).or_else(|| const_ints(1))?;
            r.checked_sub(distinct_axes(&axes, r)?)
        }
        "Unsqueeze" => {
            let axes = attr(node, "axes").map(|a| a.ints.clone()).or_else(|| const_ints(1))?;
            Some(rank(0)? + axes.len())
        }
        "Reshape" => shape_len(1),
        "ConstantOfShape" => shape_len(0),
        "Expand" => Some(rank(0)?.max(shape_len(1)?)),
        "Gather" => (rank(0)? + rank(1)?).checked_sub(1),
        "OneHot" => Some(rank(0)? + 1),
        "ArgMax" | "ArgMin" => {
            let r = rank(0)?;
            if attr_int(node, "keepdims").unwrap_or(1) != 0 { Some(r) } else { r.checked_sub(1) }
        }
        op if op.starts_with("Reduce") => {
            let r = rank(0)?;
            if attr_int(node, "keepdims").unwrap_or(1) != 0 {
                return Some(r);
            }
            let axes = match attr(node, "axes") {
                Some(a) => a.ints.clone(),
                None if node.input.get(1).is_some_and(|t| !t.is_empty()) => const_ints(1)?,
                None => Vec::new(),
            };
            if axes.is_empty() {
                let noop = attr_int(node, "noop_with_empty_axes").unwrap_or(0) != 0;
                return Some(if noop { r } else { 0 });
            }
            r.checked_sub(distinct_axes(&axes, r)?)
        }
        _ => None,
    }
}

/// The length of output 0 of `node`, known to be 1-D: the shape arithmetic exporters emit.
fn output_len(node: &NodeProto, facts: &Facts, consts: &Consts) -> Option<usize> {
    let fact = |i: usize| node.input.get(i).filter(|t| !t.is_empty()).and_then(|t| facts.get(t)).copied();
    // As an operand of broadcasting, a scalar counts as length 1.
    let len = |i: usize| {
        let f = fact(i)?;
        match f.rank? {
            0 => Some(1),
            1 => f.len,
            _ => None,
        }
    };
    let const_ints = |i: usize| node.input.get(i).and_then(|t| consts.get(t)).and_then(ints);
    match node.op_type() {
        "Shape" => {
            let rank = fact(0)?.rank? as i64;
            let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank);
            let start = clamp(attr_int(node, "start").unwrap_or(0));
            let end = clamp(attr_int(node, "end").unwrap_or(rank));
            usize::try_from((end - start).max(0)).ok()
        }
        "Cast" | "Identity" | "Abs" | "Neg" | "Ceil" | "Floor" | "Round" | "Sign" | "Relu" => fact(0)?.len,
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Mod" | "Pow" | "Where" => {
            let lens: Vec<usize> = node
                .input
                .iter()
                .enumerate()
                .filter(|(_, t)| !t.is_empty())
                .map(|(i, _)| len(i))
                .collect::<Option<_>>()?;
            let longest = lens.iter().copied().max()?;
            lens.iter().all(|&l| l == longest || l == 1).then_some(longest)
        }
        "Concat" => node.input.iter().enumerate().filter(|(_, t)| !t.is_empty()).try_fold(0, |sum, (i, _)| {
            let f = fact(i)?;
            if f.rank != Some(1) {
                return None;
            }
            Some(sum + f.len?)
        }),
        "Gather" if fact(0)?.rank == Some(1) => fact(1)?.len,
        "Unsqueeze" if fact(0)?.rank == Some(0) => Some(1),
        "Slice" => {
            let n = fact(0)?.len? as i64;
            let (starts, ends, axes, steps) = match attr(node, "starts") {
                Some(starts) => (
                    starts.ints.clone(),
                    attr(node, "ends")?.ints.clone(),
                    attr(node, "axes").map(|a| a.ints.clone()),
                    None,
                ),
                None => (
                    const_ints(1)?,
                    const_ints(2)?,
                    if has_input(node, 3) { Some(const_ints(3)?) } else { None },
                    if has_input(node, 4) { Some(const_ints(4)?) } else { None },
                ),
            };
            if starts.len() != 1 || ends.len() != 1 || axes.is_some_and(|a| a != [0] && a != [-1]) {
                return None;
            }
            slice_len(n, starts[0], ends[0], steps.map_or(Some(1), |s| s.first().copied())?)
        }
        _ => None,
    }
}

/// Elements that Slice keeps of an axis of length `n`, with ONNX's clamping of out-of-range starts and ends.
fn slice_len(n: i64, start: i64, end: i64, step: i64) -> Option<usize> {
    let resolve = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let ceil_div = |a: i64, b: i64| a / b + i64::from(a % b != 0);
    let count = match step {
        0 => return None,
        1.. => {
            let (start, end) = (resolve(start).clamp(0, n), resolve(end).clamp(0, n));
            ceil_div((end - start).max(0), step)
        }
        _ => {
            let (start, end) = (resolve(start).clamp(0, n - 1), resolve(end).clamp(-1, n - 1));
            ceil_div((start - end).max(0), step.checked_neg()?)
        }
    };
    usize::try_from(count).ok()
}

/// How many distinct axes `axes` names in a tensor of rank `rank`; None when one is out of range.
fn distinct_axes(axes: &[i64], rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let normalized: HashSet<i64> = axes
        .iter()
        .map(|&a| if a < 0 { a + rank } else { a })
        .map(|a| (0..rank).contains(&a).then_some(a))
        .collect::<Option<_>>()?;
    Some(normalized.len())
}

fn output_elem(node: &NodeProto, facts: &Facts) -> Option<i32> {
    let op = node.op_type();
    let elem = |i: usize| node.input.get(i).filter(|t| !t.is_empty()).and_then(|t| facts.get(t)).and_then(|f| f.elem);
    if SAME_TYPE.contains(&op) {
        return elem(0);
    }
    if BOOL_OUTPUT.contains(&op) {
        return Some(DataType::Bool as i32);
    }
    if INT64_OUTPUT.contains(&op) {
        return Some(DataType::Int64 as i32);
    }
    match op {
        "Cast" => attr_int(node, "to").and_then(|t| i32::try_from(t).ok()),
        "Where" => elem(1).or_else(|| elem(2)),
        _ => None,
    }
}

/// Integer values of a small int64 or int32 tensor.
fn ints(tensor: &TensorProto) -> Option<Vec<i64>> {
    let raw = tensor.raw_data();
    match DataType::try_from(tensor.data_type.unwrap_or_default()).ok()? {
        DataType::Int64 if !raw.is_empty() => {
            Some(raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8"))).collect())
        }
        DataType::Int64 => Some(tensor.int64_data.clone()),
        DataType::Int32 if !raw.is_empty() => {
            Some(raw.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().expect("chunk of 4")) as i64).collect())
        }
        DataType::Int32 => Some(tensor.int32_data.iter().map(|&v| v as i64).collect()),
        _ => None,
    }
}

// ---- attributes and new tensors --------------------------------------------------------------------------------

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).and_then(|a| a.i)
}

fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
}

fn take_attr(node: &mut NodeProto, name: &str) -> Option<AttributeProto> {
    let index = node.attribute.iter().position(|a| a.name() == name)?;
    Some(node.attribute.remove(index))
}

fn set_attr(node: &mut NodeProto, new: AttributeProto) {
    match node.attribute.iter_mut().find(|a| a.name == new.name) {
        Some(old) => *old = new,
        None => node.attribute.push(new),
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn str_attr(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(value.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn int64_tensor(name: &str, dims: Vec<i64>, values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims,
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    }
}

fn float_tensor(name: &str, dims: Vec<i64>, values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims,
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    }
}

/// A scalar of a floating-point element type; None for other types.
fn float_scalar(name: &str, elem: i32, value: f32) -> Option<TensorProto> {
    let raw: Vec<u8> = match DataType::try_from(elem).ok()? {
        DataType::Float => value.to_le_bytes().to_vec(),
        DataType::Double => (value as f64).to_le_bytes().to_vec(),
        DataType::Float16 => half::f16::from_f32(value).to_le_bytes().to_vec(),
        DataType::Bfloat16 => half::bf16::from_f32(value).to_le_bytes().to_vec(),
        _ => return None,
    };
    Some(TensorProto {
        name: Some(name.into()),
        data_type: Some(elem),
        raw_data: Some(raw.into()),
        ..Default::default()
    })
}

fn set_input(node: &mut NodeProto, slot: usize, tensor: String) {
    while node.input.len() < slot {
        node.input.push(String::new());
    }
    if node.input.len() == slot {
        node.input.push(tensor);
    } else {
        node.input[slot] = tensor;
    }
}

fn has_input(node: &NodeProto, slot: usize) -> bool {
    node.input.get(slot).is_some_and(|t| !t.is_empty())
}

// ---- the walk --------------------------------------------------------------------------------------------------

struct Upgrader {
    from: i64,
    to: i64,
    taken: HashSet<String>,
    added_initializer: bool,
    rewrites: Vec<Rewrite>,
}

/// A node as rewritten, with the helper nodes that go before and after it.
struct Replacement {
    before: Vec<NodeProto>,
    node: NodeProto,
    after: Vec<NodeProto>,
}

impl Replacement {
    fn same(node: NodeProto) -> Replacement {
        Replacement { before: Vec::new(), node, after: Vec::new() }
    }
}

/// What a node's rewrite may read and add in its graph.
struct Cx<'g> {
    label: String,
    facts: &'g Facts,
    consts: &'g Consts,
    /// Tensors read in this graph (its nodes, their subgraphs, its outputs).
    used: &'g HashSet<String>,
    initializers: Vec<TensorProto>,
    /// Tensors no node produces any more; their value_info goes.
    dropped: Vec<String>,
}

/// Tensors read by `graph`'s nodes at any depth, and its outputs.
fn reads(graph: &GraphProto, used: &mut HashSet<String>) {
    used.extend(graph.output.iter().map(|v| v.name().to_owned()));
    for node in &graph.node {
        used.extend(node.input.iter().filter(|t| !t.is_empty()).cloned());
        for sub in node.attribute.iter().flat_map(|a| a.g.iter().chain(&a.graphs)) {
            reads(sub, used);
        }
    }
}

impl Upgrader {
    /// True when the upgrade passes opset `version`, where an operator changed.
    fn crosses(&self, version: i64) -> bool {
        self.from < version && version <= self.to
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut k = 2;
        while self.taken.contains(&name) {
            name = format!("{base}__{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn refuse(&self, node: &NodeProto, cx: &Cx, why: impl Into<String>) -> OpsetError {
        OpsetError::Refused {
            node: cx.label.clone(),
            op: node.op_type().to_owned(),
            from: self.from,
            to: self.to,
            why: why.into(),
        }
    }

    fn malformed(&self, node: &NodeProto, cx: &Cx, problem: impl Into<String>) -> OpsetError {
        OpsetError::Malformed { node: cx.label.clone(), op: node.op_type().to_owned(), problem: problem.into() }
    }

    fn note(&mut self, node: &NodeProto, cx: &Cx, change: impl Into<String>) {
        self.rewrites.push(Rewrite { node: cx.label.clone(), op: node.op_type().to_owned(), change: change.into() });
    }

    /// Rewrites `graph` in place. `labels` name its nodes in messages; `top` marks the model's main graph, whose
    /// unnamed nodes get their view names written in when nodes are inserted (the view numbers unnamed nodes by
    /// position, which insertion would shift).
    fn graph(
        &mut self,
        graph: &mut GraphProto,
        labels: &[String],
        top: bool,
        outer_facts: &Facts,
        outer_consts: &Consts,
    ) -> Result<(), OpsetError> {
        let consts = collect_consts(graph, outer_consts);
        let facts = infer_facts(graph, outer_facts, &consts);
        let mut used = HashSet::new();
        reads(graph, &mut used);

        let nodes = std::mem::take(&mut graph.node);
        let mut out = Vec::with_capacity(nodes.len());
        let mut originals = Vec::with_capacity(nodes.len());
        let mut initializers = Vec::new();
        let mut dropped = Vec::new();
        let mut inserted = false;
        for (node, label) in nodes.into_iter().zip(labels) {
            let mut cx = Cx {
                label: label.clone(),
                facts: &facts,
                consts: &consts,
                used: &used,
                initializers: Vec::new(),
                dropped: Vec::new(),
            };
            let Replacement { before, mut node, after } =
                if is_default_domain(node.domain()) { self.node(node, &mut cx)? } else { Replacement::same(node) };
            initializers.append(&mut cx.initializers);
            dropped.append(&mut cx.dropped);
            inserted |= !before.is_empty() || !after.is_empty();
            out.extend(before);
            self.subgraphs(&mut node, label, &facts, &consts)?;
            originals.push((out.len(), label.clone()));
            out.push(node);
            out.extend(after);
        }
        if top && inserted {
            for (index, label) in originals {
                if out[index].name.as_deref().is_none_or(str::is_empty) {
                    out[index].name = Some(label);
                }
            }
        }
        graph.node = out;
        if !initializers.is_empty() {
            self.added_initializer = true;
            graph.initializer.extend(initializers);
        }
        graph.value_info.retain(|v| !dropped.iter().any(|d| d == v.name()));
        Ok(())
    }

    fn subgraphs(
        &mut self,
        node: &mut NodeProto,
        label: &str,
        facts: &Facts,
        consts: &Consts,
    ) -> Result<(), OpsetError> {
        for attr in &mut node.attribute {
            let attr_name = attr.name().to_owned();
            for sub in attr.g.iter_mut().chain(attr.graphs.iter_mut()) {
                let labels: Vec<String> = sub
                    .node
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{label}/{attr_name}/{}", node_label(n, i)))
                    .collect();
                self.graph(sub, &labels, false, facts, consts)?;
            }
        }
        Ok(())
    }

    /// What replaces `node`: itself, changed or not, possibly with helpers around it.
    fn node(&mut self, mut node: NodeProto, cx: &mut Cx) -> Result<Replacement, OpsetError> {
        match node.op_type() {
            "Softmax" | "LogSoftmax" | "Hardmax" if self.crosses(13) => return self.one_axis(node, cx),
            "Split" => self.split(&mut node, cx)?,
            "Squeeze" if self.crosses(13) => self.ints_to_input(&mut node, cx, "axes", 1, false)?,
            "Unsqueeze" if self.crosses(13) => self.ints_to_input(&mut node, cx, "axes", 1, true)?,
            "ReduceSum" if self.crosses(13) => self.ints_to_input(&mut node, cx, "axes", 1, false)?,
            "ReduceL1" | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceMax" | "ReduceMean" | "ReduceMin"
            | "ReduceProd" | "ReduceSumSquare"
                if self.crosses(18) =>
            {
                self.ints_to_input(&mut node, cx, "axes", 1, false)?
            }
            "Clip" if self.crosses(11) => self.clip(&mut node, cx)?,
            "Pad" if self.crosses(11) => self.pad(&mut node, cx)?,
            "Slice" if self.crosses(10) => {
                self.ints_to_input(&mut node, cx, "starts", 1, true)?;
                self.ints_to_input(&mut node, cx, "ends", 2, true)?;
                self.ints_to_input(&mut node, cx, "axes", 3, false)?;
            }
            "TopK" if self.crosses(10) => self.topk(&mut node, cx)?,
            "Dropout" => self.dropout(&mut node, cx)?,
            "Resize" => self.resize(&mut node, cx)?,
            "Upsample" => self.upsample(&mut node, cx)?,
            "BatchNormalization" => self.batch_norm(&mut node, cx)?,
            "Scatter" if self.crosses(11) => {
                // Same inputs, attribute and meaning; only the name was deprecated.
                node.op_type = Some("ScatterElements".into());
                self.note(&node, cx, "renamed to ScatterElements");
            }
            "Scan" if self.crosses(9) => {
                return Err(self.refuse(
                    &node,
                    cx,
                    "Scan-8 has a batch axis and a `sequence_lens` input, which Scan-9 removed",
                ));
            }
            "OneHot" if self.crosses(11) => {
                return Err(self.refuse(
                    &node,
                    cx,
                    "from opset 11 a negative index counts from the back, where before it gave a row of `off_value`",
                ));
            }
            "RoiAlign" if self.crosses(16) && attr(&node, "coordinate_transformation_mode").is_none() => {
                // Opset 16's default shifts by half a pixel; the old behaviour has its own name.
                set_attr(&mut node, str_attr("coordinate_transformation_mode", "output_half_pixel"));
                self.note(&node, cx, "coordinate_transformation_mode = output_half_pixel (the old behaviour)");
            }
            "GridSample" if self.crosses(20) => self.grid_sample(&mut node, cx)?,
            "DFT" if self.crosses(20) => self.dft(&mut node, cx)?,
            "GroupNormalization" if self.crosses(21) => {
                return Err(self.refuse(
                    &node,
                    cx,
                    "opset 21 takes `scale` and `bias` per channel instead of per group",
                ));
            }
            op if REMOVED_EXPERIMENTAL.contains(&op) => {
                return Err(self.refuse(&node, cx, "it is an experimental operator that ONNX removed at opset 10"));
            }
            _ => {}
        }
        Ok(Replacement::same(node))
    }

    /// Moves the ints attribute `name` to input `slot` as an int64 initializer. `required`: the old operator needs
    /// the attribute, so its absence is an error.
    fn ints_to_input(
        &mut self,
        node: &mut NodeProto,
        cx: &mut Cx,
        name: &str,
        slot: usize,
        required: bool,
    ) -> Result<(), OpsetError> {
        let Some(attribute) = take_attr(node, name) else {
            return if required {
                Err(self.malformed(node, cx, format!("attribute `{name}` is missing")))
            } else {
                Ok(())
            };
        };
        if attribute.r#type.is_some_and(|t| t != AttributeType::Ints as i32) {
            return Err(self.malformed(node, cx, format!("attribute `{name}` is not a list of integers")));
        }
        // An empty optional list (Squeeze, reductions, Split) means the same as none, which an absent input says.
        if attribute.ints.is_empty() && !required {
            self.note(node, cx, format!("empty attribute `{name}` dropped"));
            return Ok(());
        }
        if has_input(node, slot) {
            return Err(self.malformed(node, cx, format!("has both an attribute `{name}` and input {slot}")));
        }
        let tensor = self.fresh(&format!("{}_{name}", cx.label));
        cx.initializers.push(int64_tensor(&tensor, vec![attribute.ints.len() as i64], &attribute.ints));
        set_input(node, slot, tensor.clone());
        self.note(node, cx, format!("attribute `{name}` moved to input `{tensor}`"));
        Ok(())
    }

    /// Softmax, LogSoftmax and Hardmax before 13 coerce the input to 2-D at `axis` and act on the second dimension;
    /// from 13 they act on the one axis `axis`. The two agree when `axis` is the last axis. Otherwise the old
    /// meaning is spelled out: Flatten at `axis`, the operator on axis 1 of the 2-D tensor, Reshape back to the
    /// input's shape (read at run time, so any shape works).
    fn one_axis(&mut self, mut node: NodeProto, cx: &mut Cx) -> Result<Replacement, OpsetError> {
        // Before 13 the default axis is 1; from 13 it is -1, so the value is always written out.
        let axis = attr_int(&node, "axis").unwrap_or(1);
        let (Some(x), Some(y)) = (node.input.first().cloned(), node.output.first().cloned()) else {
            return Err(self.malformed(&node, cx, "needs one input and one output"));
        };
        let rank = cx.facts.get(&x).and_then(|f| f.rank);
        let last = axis == -1
            || rank.is_some_and(|r| r > 0 && (if axis < 0 { axis + r as i64 } else { axis }) == r as i64 - 1);
        if last {
            if attr(&node, "axis").is_none() {
                set_attr(&mut node, int_attr("axis", axis));
                self.note(&node, cx, "axis = 1 written out (the default became -1 at opset 13)");
            }
            return Ok(Replacement::same(node));
        }

        let label = cx.label.clone();
        let flat_in = self.fresh(&format!("{label}_input_2d"));
        let flat_out = self.fresh(&format!("{label}_output_2d"));
        let shape = self.fresh(&format!("{label}_input_shape"));
        let helper = |upgrader: &mut Upgrader, suffix: &str, op: &str, inputs: Vec<String>, output: String| NodeProto {
            name: Some(upgrader.fresh(&format!("{label}_{suffix}"))),
            op_type: Some(op.into()),
            domain: node.domain.clone(),
            input: inputs,
            output: vec![output],
            ..Default::default()
        };
        let mut flatten = helper(self, "flatten", "Flatten", vec![x.clone()], flat_in.clone());
        flatten.attribute.push(int_attr("axis", axis));
        let shape_of = helper(self, "shape", "Shape", vec![x], shape.clone());
        let mut reshape = helper(self, "reshape", "Reshape", vec![flat_out.clone(), shape], y);
        if self.to >= 14 {
            // A 0 in the original shape is an empty dimension, not "copy this dimension"; from 14 that can be said.
            reshape.attribute.push(int_attr("allowzero", 1));
        }
        node.input[0] = flat_in;
        node.output[0] = flat_out;
        set_attr(&mut node, int_attr("axis", 1));
        let why = match rank {
            Some(r) => format!("axis {axis} is not the last axis of a rank-{r} input"),
            None => format!("axis {axis} on an input of unknown rank"),
        };
        self.note(&node, cx, format!("{why}: wrapped in Flatten(axis={axis}) and Reshape to keep the 2-D meaning"));
        Ok(Replacement { before: vec![flatten, shape_of], node, after: vec![reshape] })
    }

    fn split(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        if self.crosses(13) {
            self.ints_to_input(node, cx, "split", 1, false)?;
        }
        if self.crosses(18) && !has_input(node, 1) && attr(node, "num_outputs").is_none() {
            // From 18, equal parts must be asked for by count.
            let count = node.output.len() as i64;
            set_attr(node, int_attr("num_outputs", count));
            self.note(node, cx, format!("num_outputs = {count}"));
        }
        Ok(())
    }

    fn elem_of(&self, node: &NodeProto, cx: &Cx, slot: usize) -> Result<i32, OpsetError> {
        let tensor = node.input.get(slot).cloned().unwrap_or_default();
        cx.facts.get(&tensor).and_then(|f| f.elem).ok_or_else(|| OpsetError::UnknownType {
            node: cx.label.clone(),
            op: node.op_type().to_owned(),
            tensor,
            to: self.to,
        })
    }

    fn typed_scalar(
        &mut self,
        node: &NodeProto,
        cx: &mut Cx,
        suffix: &str,
        elem: i32,
        value: f32,
    ) -> Result<String, OpsetError> {
        let name = self.fresh(&format!("{}_{suffix}", cx.label));
        let tensor = float_scalar(&name, elem, value).ok_or_else(|| {
            self.refuse(node, cx, format!("its input has element type {elem}, not a floating-point type"))
        })?;
        cx.initializers.push(tensor);
        Ok(name)
    }

    /// Clip-6 bounds are float attributes defaulting to the float range; from 11 they are inputs of the data's
    /// type and an absent one means no bound. Both are written out so that the float-range clamp (which also
    /// clamps infinities) is kept.
    fn clip(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        let min = self.take_float(node, cx, "min")?.unwrap_or(f32::MIN);
        let max = self.take_float(node, cx, "max")?.unwrap_or(f32::MAX);
        if has_input(node, 1) || has_input(node, 2) {
            return Err(self.malformed(node, cx, "Clip before opset 11 takes one input"));
        }
        let elem = self.elem_of(node, cx, 0)?;
        let min_name = self.typed_scalar(node, cx, "min", elem, min)?;
        let max_name = self.typed_scalar(node, cx, "max", elem, max)?;
        set_input(node, 1, min_name);
        set_input(node, 2, max_name);
        self.note(node, cx, format!("min {min} and max {max} moved to inputs"));
        Ok(())
    }

    fn pad(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        let value = self.take_float(node, cx, "value")?.unwrap_or(0.0);
        self.ints_to_input(node, cx, "pads", 1, true)?;
        let constant = attr_str(node, "mode").is_none_or(|m| m == "constant");
        // An absent constant_value pads with 0, like the old default; only another value needs a typed input.
        if constant && value.to_bits() != 0 {
            let elem = self.elem_of(node, cx, 0)?;
            let name = self.typed_scalar(node, cx, "constant_value", elem, value)?;
            set_input(node, 2, name);
            self.note(node, cx, format!("pad value {value} moved to an input"));
        }
        Ok(())
    }

    /// Removes float attribute `name`; one that holds no float is an error.
    fn take_float(&self, node: &mut NodeProto, cx: &Cx, name: &str) -> Result<Option<f32>, OpsetError> {
        match take_attr(node, name) {
            None => Ok(None),
            Some(a) => {
                a.f.map(Some).ok_or_else(|| self.malformed(node, cx, format!("attribute `{name}` is not a float")))
            }
        }
    }

    /// Removes int attribute `name`; one that holds no integer is an error.
    fn take_int(&self, node: &mut NodeProto, cx: &Cx, name: &str) -> Result<Option<i64>, OpsetError> {
        match take_attr(node, name) {
            None => Ok(None),
            Some(a) => {
                a.i.map(Some).ok_or_else(|| self.malformed(node, cx, format!("attribute `{name}` is not an integer")))
            }
        }
    }

    fn topk(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        let Some(k) = self.take_int(node, cx, "k")? else {
            return Err(self.malformed(node, cx, "attribute `k` is missing"));
        };
        let name = self.fresh(&format!("{}_k", cx.label));
        cx.initializers.push(int64_tensor(&name, vec![1], &[k]));
        set_input(node, 1, name.clone());
        self.note(node, cx, format!("k = {k} moved to input `{name}`"));
        Ok(())
    }

    fn dropout(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        if self.crosses(10) && node.output.get(1).is_some_and(|m| !m.is_empty()) {
            let mask = node.output[1].clone();
            if cx.used.contains(&mask) {
                return Err(self.refuse(
                    node,
                    cx,
                    format!("its mask `{mask}` is read, and opset 10 made the mask bool instead of the input's type"),
                ));
            }
            node.output.truncate(1);
            cx.dropped.push(mask.clone());
            self.note(node, cx, format!("unused mask output `{mask}` dropped (its type changed at opset 10)"));
        }
        if self.crosses(12)
            && let Some(value) = self.take_float(node, cx, "ratio")?
        {
            // From 12, ratio's type is its own (not the data's); float suits any data.
            let name = self.fresh(&format!("{}_ratio", cx.label));
            cx.initializers.push(float_tensor(&name, vec![], &[value]));
            set_input(node, 1, name.clone());
            self.note(node, cx, format!("ratio moved to input `{name}`"));
        }
        Ok(())
    }

    fn resize(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        if self.crosses(11) {
            // Resize-10 maps output to input coordinates by x / scale (what 11 calls asymmetric). Its nearest
            // rounding is left to the runtime: ONNX Runtime rounds down when upsampling but up when downsampling,
            // so only upsampling has a single faithful nearest_mode.
            let mode = attr_str(node, "mode").unwrap_or_else(|| "nearest".into());
            if mode == "nearest" {
                let scales = node.input.get(1).and_then(|s| cx.consts.get(s)).and_then(|t| weights::to_f32(t).ok());
                match scales {
                    Some(s) if s.iter().all(|&v| v >= 1.0) => {
                        set_attr(node, str_attr("nearest_mode", "floor"));
                    }
                    _ => {
                        return Err(self.refuse(
                            node,
                            cx,
                            "Resize-10 leaves nearest rounding to the runtime when downsampling; only constant \
                             scales of at least 1 have one meaning",
                        ));
                    }
                }
            }
            set_attr(node, str_attr("coordinate_transformation_mode", "asymmetric"));
            let (Some(x), Some(scales)) = (node.input.first().cloned(), node.input.get(1).cloned()) else {
                return Err(self.malformed(node, cx, "Resize-10 needs inputs X and scales"));
            };
            // roi is required in 11 and 12 (an empty tensor will do); from 13 it may be left out.
            let roi = if self.to >= 13 {
                String::new()
            } else {
                let name = self.fresh(&format!("{}_roi", cx.label));
                cx.initializers.push(float_tensor(&name, vec![0], &[]));
                name
            };
            node.input = vec![x, roi, scales];
            self.note(node, cx, format!("Resize-10 made explicit: asymmetric coordinates, {mode}"));
        }
        if self.crosses(13)
            && attr_str(node, "coordinate_transformation_mode").as_deref() == Some("tf_half_pixel_for_nn")
        {
            // tf_half_pixel_for_nn is x = (y + 0.5) / scale; half_pixel is the same minus 0.5. Rounding x - 0.5
            // half up is floor(x), and rounding it up is rounding x half down: the two common modes map exactly.
            let mode = attr_str(node, "mode").unwrap_or_else(|| "nearest".into());
            let nearest = attr_str(node, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into());
            let equivalent = match (mode.as_str(), nearest.as_str()) {
                ("nearest", "floor") => "round_prefer_ceil",
                ("nearest", "round_prefer_floor") => "ceil",
                _ => {
                    return Err(self.refuse(
                        node,
                        cx,
                        format!(
                            "opset 13 removed coordinate_transformation_mode tf_half_pixel_for_nn, and mode {mode} \
                             with nearest_mode {nearest} has no equivalent"
                        ),
                    ));
                }
            };
            set_attr(node, str_attr("coordinate_transformation_mode", "half_pixel"));
            set_attr(node, str_attr("nearest_mode", equivalent));
            self.note(node, cx, format!("tf_half_pixel_for_nn + {nearest} became half_pixel + {equivalent}"));
        }
        Ok(())
    }

    fn upsample(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        if self.to >= 10 {
            return Err(self.refuse(node, cx, "Upsample is deprecated from opset 10 on; Resize replaces it"));
        }
        if self.crosses(9) {
            let Some(scales) = take_attr(node, "scales") else {
                return Err(self.malformed(node, cx, "attribute `scales` is missing"));
            };
            let name = self.fresh(&format!("{}_scales", cx.label));
            cx.initializers.push(float_tensor(&name, vec![scales.floats.len() as i64], &scales.floats));
            set_input(node, 1, name.clone());
            self.note(node, cx, format!("scales moved to input `{name}`"));
        }
        Ok(())
    }

    fn batch_norm(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        if self.crosses(9)
            && let Some(spatial) = self.take_int(node, cx, "spatial")?
        {
            if spatial != 1 {
                return Err(self.refuse(node, cx, "spatial = 0 (statistics per activation) was removed at opset 9"));
            }
            self.note(node, cx, "spatial = 1 (the only meaning left) dropped");
        }
        if self.crosses(14) && node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(self.refuse(
                node,
                cx,
                "it has training-mode outputs, whose number and meaning changed at opset 14",
            ));
        }
        Ok(())
    }

    fn grid_sample(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        let renamed = match attr_str(node, "mode").as_deref() {
            Some("bilinear") => "linear",
            Some("bicubic") => "cubic",
            _ => return Ok(()),
        };
        set_attr(node, str_attr("mode", renamed));
        self.note(node, cx, format!("mode renamed to {renamed}"));
        Ok(())
    }

    fn dft(&mut self, node: &mut NodeProto, cx: &mut Cx) -> Result<(), OpsetError> {
        // The default moved from 1 to -2, so the axis is always written out.
        let axis = self.take_int(node, cx, "axis")?.unwrap_or(1);
        if has_input(node, 2) {
            return Err(self.malformed(node, cx, "DFT before opset 20 takes at most two inputs"));
        }
        let name = self.fresh(&format!("{}_axis", cx.label));
        cx.initializers.push(int64_tensor(&name, vec![], &[axis]));
        set_input(node, 2, name.clone());
        self.note(node, cx, format!("axis {axis} moved to input `{name}`"));
        Ok(())
    }
}

/// Experimental operators of the first opsets, removed from ONNX at opset 10; no opset defines them now.
#[rustfmt::skip]
const REMOVED_EXPERIMENTAL: &[&str] = &[
    "ATen", "Affine", "ConstantFill", "Crop", "DynamicSlice", "GRUUnit", "GivenTensorFill", "ImageScaler",
    "ParametricSoftplus", "Scale", "ScaledTanh",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{
        FunctionProto, OperatorSetIdProto, TensorShapeProto, TypeProto, tensor_shape_proto, type_proto,
    };

    const F32: i32 = DataType::Float as i32;

    fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            name: (!name.is_empty()).then(|| name.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        }
    }

    fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    fn floats_attr(name: &str, values: &[f32]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Floats as i32),
            floats: values.to_vec(),
            ..Default::default()
        }
    }

    fn float_attr(name: &str, value: f32) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(value),
            ..Default::default()
        }
    }

    /// A tensor value of element type `elem`; `rank` None leaves the shape out (unknown rank).
    fn value(name: &str, elem: i32, rank: Option<usize>) -> ValueInfoProto {
        let shape = rank.map(|r| TensorShapeProto {
            dim: (0..r)
                .map(|i| tensor_shape_proto::Dimension {
                    value: Some(tensor_shape_proto::dimension::Value::DimParam(format!("d{i}"))),
                    denotation: None,
                })
                .collect(),
        });
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                tensor_type: Some(type_proto::Tensor { elem_type: Some(elem), shape }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn model(opset: i64, nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: &[&str]) -> ModelProto {
        ModelProto {
            ir_version: Some(6),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
            graph: Some(GraphProto {
                name: Some("g".into()),
                node: nodes,
                input: inputs,
                output: outputs.iter().map(|o| value(o, F32, None)).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn graph(model: &ModelProto) -> &GraphProto {
        model.graph.as_ref().unwrap()
    }

    fn find<'g>(graph: &'g GraphProto, name: &str) -> &'g NodeProto {
        graph.node.iter().find(|n| n.name() == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    fn init<'g>(graph: &'g GraphProto, name: &str) -> &'g TensorProto {
        graph.initializer.iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("no initializer {name}"))
    }

    fn init_ints(graph: &GraphProto, name: &str) -> Vec<i64> {
        ints(init(graph, name)).unwrap()
    }

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type()).collect()
    }

    fn opset_of(model: &ModelProto) -> i64 {
        default_opset(model).unwrap()
    }

    fn refused(result: Result<ModelProto, OpsetError>) -> String {
        match result {
            Err(e @ OpsetError::Refused { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn squeeze_model(opset: i64) -> ModelProto {
        model(
            opset,
            vec![node("Squeeze", "sq", &["x"], &["y"], vec![ints_attr("axes", &[0])])],
            vec![value("x", F32, Some(3))],
            &["y"],
        )
    }

    #[test]
    fn a_model_at_or_above_the_target_comes_back_unchanged() {
        let m = squeeze_model(13);
        assert_eq!(upgrade(&m, 13).unwrap(), m);
        assert_eq!(upgrade(&m, 12).unwrap(), m);
    }

    #[test]
    fn opset_and_ir_version_are_raised_but_the_ir_version_is_never_lowered() {
        let mut m = squeeze_model(11);
        m.opset_import.push(OperatorSetIdProto { domain: Some("com.example".into()), version: Some(3) });
        let up = upgrade(&m, 13).unwrap();
        assert_eq!(opset_of(&up), 13);
        assert_eq!(up.ir_version, Some(7));
        assert_eq!(up.opset_import[1], m.opset_import[1], "other domains keep their import");
        m.ir_version = Some(9);
        assert_eq!(upgrade(&m, 13).unwrap().ir_version, Some(9));
        assert_eq!(upgrade(&m, 21).unwrap().ir_version, Some(10));
    }

    #[test]
    fn targets_and_sources_out_of_range_are_refused() {
        let m = squeeze_model(11);
        assert!(matches!(upgrade(&m, 22), Err(OpsetError::TargetTooNew { target: 22 })));
        let old = squeeze_model(6);
        let err = upgrade(&old, 13).unwrap_err();
        assert!(matches!(err, OpsetError::SourceTooOld { opset: 6 }));
        assert!(err.hint().is_some());
    }

    #[test]
    fn softmax_on_the_last_axis_keeps_its_node_with_the_axis_written_out() {
        // Before 13 the default axis is 1, which is the last axis of a rank-2 input.
        let m = model(11, vec![node("Softmax", "sm", &["x"], &["y"], vec![])], vec![value("x", F32, Some(2))], &["y"]);
        let up = upgrade_with_report(&m, 13).unwrap();
        let g = graph(&up.model);
        assert_eq!(ops(g), ["Softmax"]);
        assert_eq!(attr_int(&g.node[0], "axis"), Some(1));
        assert_eq!(up.rewrites.len(), 1);

        // axis -1 is the last axis whatever the rank.
        let m = model(
            12,
            vec![node("LogSoftmax", "ls", &["x"], &["y"], vec![int_attr("axis", -1)])],
            vec![value("x", F32, None)],
            &["y"],
        );
        let up = upgrade_with_report(&m, 13).unwrap();
        assert_eq!(graph(&up.model).node, graph(&m).node);
        assert!(up.rewrites.is_empty());
    }

    #[test]
    fn softmax_on_another_axis_is_wrapped_in_flatten_and_reshape() {
        let m = model(
            11,
            vec![node("Softmax", "sm", &["x"], &["y"], vec![int_attr("axis", 1)])],
            vec![value("x", F32, Some(3))],
            &["y"],
        );
        for target in [13, 14] {
            let up = upgrade(&m, target).unwrap();
            let g = graph(&up);
            assert_eq!(ops(g), ["Flatten", "Shape", "Softmax", "Reshape"]);
            let (flatten, shape, softmax, reshape) = (&g.node[0], &g.node[1], &g.node[2], &g.node[3]);
            assert_eq!(flatten.input, ["x"]);
            assert_eq!(attr_int(flatten, "axis"), Some(1));
            assert_eq!(shape.input, ["x"]);
            assert_eq!(softmax.name(), "sm");
            assert_eq!(softmax.input, flatten.output);
            assert_eq!(attr_int(softmax, "axis"), Some(1));
            assert_eq!(reshape.input, [softmax.output[0].clone(), shape.output[0].clone()]);
            assert_eq!(reshape.output, ["y"], "the original output name stays for the consumers");
            assert_eq!(attr_int(reshape, "allowzero"), (target >= 14).then_some(1));
            Graph::new(g).unwrap();
        }
    }

    #[test]
    fn softmax_of_unknown_rank_is_wrapped() {
        let m = model(12, vec![node("Hardmax", "hm", &["x"], &["y"], vec![])], vec![value("x", F32, None)], &["y"]);
        let up = upgrade(&m, 13).unwrap();
        assert_eq!(ops(graph(&up)), ["Flatten", "Shape", "Hardmax", "Reshape"]);
        assert_eq!(attr_int(&graph(&up).node[0], "axis"), Some(1), "the old default axis");
    }

    /// The attention pattern of the PP-OCR rec model: the rank of the Softmax input follows from Reshape with a
    /// constant shape, Transpose, Slice, Squeeze and MatMul, so no wrapping is needed.
    #[test]
    fn the_rank_is_inferred_through_common_operators() {
        let shape = int64_tensor("shape", vec![5], &[1, 4, 3, 2, 8]);
        let starts = int64_tensor("starts", vec![1], &[0]);
        let ends = int64_tensor("ends", vec![1], &[1]);
        let mut m = model(
            12,
            vec![
                node("Reshape", "r", &["x", "shape"], &["r5"], vec![]),
                node("Transpose", "t", &["r5"], &["t5"], vec![ints_attr("perm", &[2, 0, 3, 1, 4])]),
                node("Slice", "s", &["t5", "starts", "ends"], &["s5"], vec![]),
                node("Squeeze", "q", &["s5"], &["q4"], vec![ints_attr("axes", &[0])]),
                node("Transpose", "kt", &["q4"], &["k4"], vec![ints_attr("perm", &[0, 1, 3, 2])]),
                node("MatMul", "mm", &["q4", "k4"], &["scores"], vec![]),
                node("Softmax", "sm", &["scores"], &["y"], vec![int_attr("axis", 3)]),
            ],
            vec![value("x", F32, None)],
            &["y"],
        );
        m.graph.as_mut().unwrap().initializer = vec![shape, starts, ends];
        let up = upgrade_with_report(&m, 13).unwrap();
        let g = graph(&up.model);
        assert_eq!(ops(g), ["Reshape", "Transpose", "Slice", "Squeeze", "Transpose", "MatMul", "Softmax"]);
        assert_eq!(attr_int(find(g, "sm"), "axis"), Some(3));
        assert_eq!(up.rewrites.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(), ["q"]);
    }

    /// The classifier head of the PP-OCR cls model: Reshape to a shape computed at run time (Shape → Slice →
    /// Concat with a constant), so its rank is the length of that shape.
    #[test]
    fn the_rank_follows_shapes_computed_at_run_time() {
        let mut m = model(
            11,
            vec![
                node("Shape", "shape", &["x"], &["s"], vec![]),
                node("Cast", "to32", &["s"], &["s32"], vec![int_attr("to", 6)]),
                node("Slice", "batch", &["s32", "zero", "one", "zero"], &["n32"], vec![]),
                node("Cast", "to64", &["n32"], &["n"], vec![int_attr("to", 7)]),
                node(
                    "Constant",
                    "",
                    &[],
                    &["c"],
                    vec![AttributeProto {
                        name: Some("value".into()),
                        r#type: Some(AttributeType::Tensor as i32),
                        t: Some(int64_tensor("", vec![1], &[8])),
                        ..Default::default()
                    }],
                ),
                node("Concat", "target", &["n", "c"], &["nc"], vec![int_attr("axis", -1)]),
                node("Reshape", "flat", &["x", "nc"], &["f"], vec![]),
                node("MatMul", "fc", &["f", "w"], &["logits"], vec![]),
                node("Softmax", "sm", &["logits"], &["y"], vec![int_attr("axis", 1)]),
            ],
            vec![value("x", F32, Some(4))],
            &["y"],
        );
        let g = m.graph.as_mut().unwrap();
        g.initializer.extend([int64_tensor("zero", vec![1], &[0]), int64_tensor("one", vec![1], &[1])]);
        g.initializer.push(float_tensor("w", vec![8, 2], &[0.0; 16]));
        let up = upgrade_with_report(&m, 13).unwrap();
        assert!(up.rewrites.is_empty(), "{:?}", up.rewrites);

        assert_eq!(slice_len(5, 1, i64::MAX, 1), Some(4));
        assert_eq!(slice_len(5, -2, -1, 1), Some(1));
        assert_eq!(slice_len(5, -1, i64::MIN, -2), Some(3));
        assert_eq!(slice_len(5, 3, 1, 1), Some(0));
        assert_eq!(slice_len(5, 0, 1, 0), None);
    }

    #[test]
    fn split_sizes_become_an_input_and_equal_splits_get_a_count_from_18() {
        let m = model(
            12,
            vec![
                node("Split", "sp", &["x"], &["a", "b"], vec![int_attr("axis", 1), ints_attr("split", &[1, 3])]),
                node("Split", "eq", &["x"], &["c", "d"], vec![int_attr("axis", 1)]),
            ],
            vec![value("x", F32, Some(3))],
            &["a", "b", "c", "d"],
        );
        let up = upgrade(&m, 13).unwrap();
        let g = graph(&up);
        assert_eq!(find(g, "sp").input, ["x", "sp_split"]);
        assert!(attr(find(g, "sp"), "split").is_none());
        assert_eq!(init_ints(g, "sp_split"), [1, 3]);
        assert_eq!(init(g, "sp_split").dims, [2]);
        assert_eq!(find(g, "eq"), &graph(&m).node[1], "an equal split means the same in 13");

        let up = upgrade(&m, 18).unwrap();
        let g = graph(&up);
        assert_eq!(attr_int(find(g, "eq"), "num_outputs"), Some(2));
        assert_eq!(attr_int(find(g, "sp"), "num_outputs"), None, "sizes given: no count");
    }

    #[test]
    fn axes_of_squeeze_unsqueeze_and_reductions_become_inputs() {
        let m = model(
            11,
            vec![
                node("Squeeze", "sq", &["x"], &["a"], vec![ints_attr("axes", &[0])]),
                node("Squeeze", "all", &["x"], &["b"], vec![]),
                node("Unsqueeze", "un", &["x"], &["c"], vec![ints_attr("axes", &[-1, 0])]),
                node("ReduceSum", "rs", &["x"], &["d"], vec![ints_attr("axes", &[1]), int_attr("keepdims", 0)]),
                node("ReduceMean", "rm", &["x"], &["e"], vec![ints_attr("axes", &[2])]),
            ],
            vec![value("x", F32, Some(3))],
            &["a", "b", "c", "d", "e"],
        );
        let up = upgrade(&m, 13).unwrap();
        let g = graph(&up);
        assert_eq!(init_ints(g, "sq_axes"), [0]);
        assert_eq!(find(g, "sq").input, ["x", "sq_axes"]);
        assert_eq!(find(g, "all").input, ["x"], "no axes: squeeze every 1, as before");
        assert_eq!(init_ints(g, "un_axes"), [-1, 0]);
        assert_eq!(find(g, "rs").input, ["x", "rs_axes"]);
        assert_eq!(attr_int(find(g, "rs"), "keepdims"), Some(0));
        assert_eq!(find(g, "rm"), &graph(&m).node[4], "ReduceMean keeps its attribute until 18");

        let up = upgrade(&m, 18).unwrap();
        assert_eq!(find(graph(&up), "rm").input, ["x", "rm_axes"]);
    }

    #[test]
    fn unsqueeze_without_axes_is_malformed() {
        let m =
            model(11, vec![node("Unsqueeze", "un", &["x"], &["y"], vec![])], vec![value("x", F32, Some(1))], &["y"]);
        let err = upgrade(&m, 13).unwrap_err();
        assert!(matches!(err, OpsetError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains("`un`"), "{err}");
    }

    #[test]
    fn clip_bounds_become_inputs_of_the_data_type() {
        let f16 = DataType::Float16 as i32;
        let m = model(
            10,
            vec![
                node("Relu", "relu", &["x"], &["r"], vec![]),
                node("Clip", "clip", &["r"], &["y"], vec![float_attr("min", 0.0), float_attr("max", 6.0)]),
                node("Clip", "open", &["r"], &["z"], vec![]),
            ],
            vec![value("x", f16, Some(2))],
            &["y", "z"],
        );
        let up = upgrade(&m, 13).unwrap();
        let g = graph(&up);
        assert_eq!(find(g, "clip").input, ["r", "clip_min", "clip_max"]);
        assert!(find(g, "clip").attribute.is_empty());
        let max = init(g, "clip_max");
        assert_eq!(max.data_type, Some(f16), "the type follows Relu from the f16 input");
        assert!(max.dims.is_empty());
        assert_eq!(max.raw_data(), half::f16::from_f32(6.0).to_le_bytes());
        // Clip-6 without bounds still clamps to the float range; that stays written out.
        assert_eq!(find(g, "open").input, ["r", "open_min", "open_max"]);
        assert_eq!(weights::to_f32(init(g, "open_min")).unwrap(), [half::f16::from_f32(f32::MIN).to_f32()]);
    }

    #[test]
    fn clip_of_unknown_type_is_refused_with_a_hint() {
        let m = model(
            9,
            vec![node("Clip", "clip", &["x"], &["y"], vec![float_attr("max", 6.0)])],
            vec![ValueInfoProto { name: Some("x".into()), ..Default::default() }],
            &["y"],
        );
        let err = upgrade(&m, 13).unwrap_err();
        assert!(
            matches!(&err, OpsetError::UnknownType { node, tensor, .. } if node == "clip" && tensor == "x"),
            "{err:?}"
        );
        assert!(err.hint().unwrap().contains("shape_inference"));
    }

    #[test]
    fn pad_attributes_become_inputs() {
        let f64 = DataType::Double as i32;
        let m = model(
            10,
            vec![
                node("Pad", "pad", &["x"], &["y"], vec![ints_attr("pads", &[0, 1, 0, 2]), float_attr("value", 1.5)]),
                node("Pad", "zero", &["x"], &["z"], vec![ints_attr("pads", &[1, 1, 1, 1])]),
                node(
                    "Pad",
                    "edge",
                    &["x"],
                    &["w"],
                    vec![ints_attr("pads", &[1, 0, 1, 0]), str_attr("mode", "edge"), float_attr("value", 3.0)],
                ),
            ],
            vec![value("x", f64, Some(2))],
            &["y", "z", "w"],
        );
        let up = upgrade(&m, 13).unwrap();
        let g = graph(&up);
        assert_eq!(find(g, "pad").input, ["x", "pad_pads", "pad_constant_value"]);
        assert_eq!(init_ints(g, "pad_pads"), [0, 1, 0, 2]);
        let value = init(g, "pad_constant_value");
        assert_eq!((value.data_type, value.raw_data()), (Some(f64), &1.5f64.to_le_bytes()[..]));
        assert_eq!(find(g, "zero").input, ["x", "zero_pads"]);
        assert_eq!(find(g, "edge").input, ["x", "edge_pads"], "the value only matters in constant mode");
        assert_eq!(attr_str(find(g, "edge"), "mode").as_deref(), Some("edge"));
    }

    #[test]
    fn slice_and_topk_attributes_become_inputs() {
        let m = model(
            9,
            vec![
                node(
                    "Slice",
                    "sl",
                    &["x"],
                    &["y"],
                    vec![ints_attr("starts", &[1]), ints_attr("ends", &[i64::MAX]), ints_attr("axes", &[1])],
                ),
                node("Slice", "noaxes", &["x"], &["z"], vec![ints_attr("starts", &[0, 0]), ints_attr("ends", &[1, 2])]),
                node("TopK", "top", &["x"], &["v", "i"], vec![int_attr("k", 3)]),
            ],
            vec![value("x", F32, Some(2))],
            &["y", "z", "v", "i"],
        );
        let up = upgrade(&m, 13).unwrap();
        let g = graph(&up);
        assert_eq!(find(g, "sl").input, ["x", "sl_starts", "sl_ends", "sl_axes"]);
        assert_eq!(init_ints(g, "sl_ends"), [i64::MAX]);
        assert_eq!(find(g, "noaxes").input, ["x", "noaxes_starts", "noaxes_ends"]);
        assert_eq!(find(g, "top").input, ["x", "top_k"]);
        assert_eq!((init(g, "top_k").dims.clone(), init_ints(g, "top_k")), (vec![1], vec![3]));
    }

    #[test]
    fn dropout_ratio_moves_and_an_unused_mask_goes() {
        let mut m = model(
            9,
            vec![node("Dropout", "do", &["x"], &["y", "mask"], vec![float_attr("ratio", 0.25)])],
            vec![value("x", F32, Some(2))],
            &["y"],
        );
        m.graph.as_mut().unwrap().value_info.push(value("mask", F32, Some(2)));
        let up = upgrade(&m, 13).unwrap();
        let g = graph(&up);
        assert_eq!(find(g, "do").input, ["x", "do_ratio"]);
        assert_eq!(find(g, "do").output, ["y"]);
        assert!(g.value_info.is_empty(), "the mask's float value_info would contradict the new bool mask");
        assert_eq!(weights::to_f32(init(g, "do_ratio")).unwrap(), [0.25]);

        // A mask that is read changes type under its reader: refused.
        let m = model(
            9,
            vec![
                node("Dropout", "do", &["x"], &["y", "mask"], vec![]),
                node("Mul", "use", &["y", "mask"], &["z"], vec![]),
            ],
            vec![value("x", F32, Some(2))],
            &["z"],
        );
        assert!(refused(upgrade(&m, 13)).contains("`mask`"));
        // From opset 10 on the mask is already bool: nothing to refuse.
        let m10 = model(10, graph(&m).node.clone(), vec![value("x", F32, Some(2))], &["z"]);
        assert!(upgrade(&m10, 13).is_ok());
    }

    fn resize10(mode: &str, scales: &[f32]) -> ModelProto {
        let mut m = model(
            10,
            vec![node("Resize", "rs", &["x", "scales"], &["y"], vec![str_attr("mode", mode)])],
            vec![value("x", F32, Some(4))],
            &["y"],
        );
        m.graph.as_mut().unwrap().initializer.push(float_tensor("scales", vec![4], scales));
        m
    }

    #[test]
    fn resize_10_is_made_explicit() {
        let up = upgrade(&resize10("linear", &[1.0, 1.0, 0.5, 0.5]), 13).unwrap();
        let rs = find(graph(&up), "rs");
        assert_eq!(rs.input, ["x", "", "scales"]);
        assert_eq!(attr_str(rs, "coordinate_transformation_mode").as_deref(), Some("asymmetric"));
        assert_eq!(attr_str(rs, "nearest_mode"), None);

        let up = upgrade(&resize10("nearest", &[1.0, 1.0, 2.0, 3.0]), 11).unwrap();
        let g = graph(&up);
        let rs = find(g, "rs");
        assert_eq!(rs.input, ["x", "rs_roi", "scales"], "roi is required before 13");
        assert_eq!(init(g, "rs_roi").dims, [0]);
        assert_eq!(attr_str(rs, "nearest_mode").as_deref(), Some("floor"));

        let why = refused(upgrade(&resize10("nearest", &[1.0, 1.0, 0.5, 2.0]), 13));
        assert!(why.contains("downsampling"), "{why}");
    }

    #[test]
    fn tf_half_pixel_for_nn_becomes_half_pixel_with_the_equivalent_rounding() {
        let resize = |nearest: Option<&str>| {
            let mut attrs =
                vec![str_attr("mode", "nearest"), str_attr("coordinate_transformation_mode", "tf_half_pixel_for_nn")];
            attrs.extend(nearest.map(|n| str_attr("nearest_mode", n)));
            model(
                12,
                vec![node("Resize", "rs", &["x", "roi", "scales"], &["y"], attrs)],
                vec![value("x", F32, Some(4)), value("roi", F32, Some(1)), value("scales", F32, Some(1))],
                &["y"],
            )
        };
        for (nearest, equivalent) in
            [(Some("floor"), "round_prefer_ceil"), (None, "ceil"), (Some("round_prefer_floor"), "ceil")]
        {
            let up = upgrade(&resize(nearest), 13).unwrap();
            let rs = find(graph(&up), "rs");
            assert_eq!(attr_str(rs, "coordinate_transformation_mode").as_deref(), Some("half_pixel"));
            assert_eq!(attr_str(rs, "nearest_mode").as_deref(), Some(equivalent));
        }
        assert!(refused(upgrade(&resize(Some("ceil")), 13)).contains("tf_half_pixel_for_nn"));
    }

    #[test]
    fn operators_without_a_faithful_rewrite_are_refused_by_name() {
        let one = |opset: i64, n: NodeProto| model(opset, vec![n], vec![value("x", F32, Some(4))], &["y"]);
        let cases = [
            (one(9, node("Upsample", "up", &["x", "s"], &["y"], vec![])), 13, "`up` (Upsample)"),
            (one(9, node("OneHot", "oh", &["x", "d", "v"], &["y"], vec![])), 13, "negative index"),
            (one(8, node("Scan", "scan", &["x"], &["y"], vec![])), 13, "sequence_lens"),
            (
                one(18, node("GroupNormalization", "gn", &["x", "s", "b"], &["y"], vec![int_attr("num_groups", 2)])),
                21,
                "per channel",
            ),
            (
                one(
                    8,
                    node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["y"], vec![int_attr("spatial", 0)]),
                ),
                13,
                "spatial",
            ),
            (
                one(13, node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["y", "rm", "rv"], vec![])),
                14,
                "training-mode",
            ),
            (one(8, node("ImageScaler", "is", &["x"], &["y"], vec![])), 13, "experimental"),
        ];
        for (mut m, target, expected) in cases {
            // Inputs that are not declared would make the graph invalid before any rewrite.
            let g = m.graph.as_mut().unwrap();
            let declared: Vec<String> = g.node[0].input.iter().filter(|i| *i != "x").cloned().collect();
            g.input.extend(declared.iter().map(|i| value(i, F32, Some(1))));
            let why = refused(upgrade(&m, target));
            assert!(why.contains(expected), "{why}");
            assert!(why.contains(&format!("to {target}")), "{why}");
        }
    }

    #[test]
    fn batch_norm_loses_spatial_one() {
        let m = model(
            8,
            vec![node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["y"], vec![int_attr("spatial", 1)])],
            ["x", "s", "b", "m", "v"].iter().map(|n| value(n, F32, Some(1))).collect(),
            &["y"],
        );
        let up = upgrade(&m, 13).unwrap();
        assert!(find(graph(&up), "bn").attribute.is_empty());
    }

    #[test]
    fn renamed_operators_and_changed_defaults() {
        let m = model(
            10,
            vec![
                node("Scatter", "sc", &["x", "i", "u"], &["a"], vec![int_attr("axis", 1)]),
                node("RoiAlign", "roi", &["x", "rois", "bi"], &["b"], vec![]),
            ],
            ["x", "i", "u", "rois", "bi"].iter().map(|n| value(n, F32, Some(2))).collect(),
            &["a", "b"],
        );
        let up = upgrade(&m, 16).unwrap();
        let g = graph(&up);
        assert_eq!(find(g, "sc").op_type(), "ScatterElements");
        assert_eq!(attr_int(find(g, "sc"), "axis"), Some(1));
        assert_eq!(attr_str(find(g, "roi"), "coordinate_transformation_mode").as_deref(), Some("output_half_pixel"));

        let m = model(
            17,
            vec![
                node("GridSample", "gs", &["x", "grid"], &["a"], vec![str_attr("mode", "bicubic")]),
                node("DFT", "dft", &["x"], &["b"], vec![int_attr("onesided", 1)]),
            ],
            vec![value("x", F32, Some(4)), value("grid", F32, Some(4))],
            &["a", "b"],
        );
        let up = upgrade(&m, 20).unwrap();
        let g = graph(&up);
        assert_eq!(attr_str(find(g, "gs"), "mode").as_deref(), Some("cubic"));
        let dft = find(g, "dft");
        assert_eq!(dft.input, ["x", "", "dft_axis"]);
        assert_eq!(init_ints(g, "dft_axis"), [1], "the old default, written out");
        assert!(init(g, "dft_axis").dims.is_empty());
    }

    #[test]
    fn nodes_in_subgraphs_are_rewritten_with_their_constants_beside_them() {
        let branch = |name: &str, op: &str| GraphProto {
            name: Some(name.into()),
            node: vec![node(op, "", &["x"], &[&format!("{name}_out")], vec![ints_attr("axes", &[0])])],
            output: vec![value(&format!("{name}_out"), F32, None)],
            ..Default::default()
        };
        let graph_attr = |name: &str, g: GraphProto| AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Graph as i32),
            g: Some(g),
            ..Default::default()
        };
        let m = model(
            12,
            vec![node(
                "If",
                "cond_if",
                &["c"],
                &["y"],
                vec![
                    graph_attr("then_branch", branch("then", "Squeeze")),
                    graph_attr("else_branch", branch("else", "Unsqueeze")),
                ],
            )],
            vec![value("c", DataType::Bool as i32, Some(0)), value("x", F32, Some(2))],
            &["y"],
        );
        let up = upgrade_with_report(&m, 13).unwrap();
        let if_node = &graph(&up.model).node[0];
        let then = if_node.attribute[0].g.as_ref().unwrap();
        assert_eq!(then.node[0].input, ["x", "cond_if/then_branch/Squeeze_0_axes"]);
        assert_eq!(init_ints(then, "cond_if/then_branch/Squeeze_0_axes"), [0]);
        assert!(graph(&up.model).initializer.is_empty());
        let nodes: Vec<&str> = up.rewrites.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["cond_if/then_branch/Squeeze_0", "cond_if/else_branch/Unsqueeze_0"]);
    }

    #[test]
    fn new_names_never_take_an_existing_one() {
        let m = model(
            11,
            vec![
                node("Identity", "sq_axes", &["x"], &["sq_axes__2"], vec![]),
                node("Squeeze", "sq", &["sq_axes__2"], &["y"], vec![ints_attr("axes", &[0])]),
            ],
            vec![value("x", F32, Some(2))],
            &["y"],
        );
        let up = upgrade(&m, 13).unwrap();
        assert_eq!(find(graph(&up), "sq").input[1], "sq_axes__3");
    }

    #[test]
    fn other_domains_are_left_alone() {
        let mut custom = node("Squeeze", "custom", &["x"], &["y"], vec![ints_attr("axes", &[0])]);
        custom.domain = Some("com.example".into());
        let mut m = model(11, vec![custom.clone()], vec![value("x", F32, Some(2))], &["y"]);
        m.opset_import.push(OperatorSetIdProto { domain: Some("com.example".into()), version: Some(1) });
        let up = upgrade(&m, 13).unwrap();
        assert_eq!(graph(&up).node, [custom]);
    }

    /// The graph view numbers unnamed nodes by position; inserting helpers would shift those names, so the upgrade
    /// writes them in.
    #[test]
    fn unnamed_nodes_keep_their_view_names_when_helpers_are_inserted() {
        let m = model(
            11,
            vec![node("Softmax", "", &["x"], &["s"], vec![]), node("Relu", "", &["s"], &["y"], vec![])],
            vec![value("x", F32, None)],
            &["y"],
        );
        let before: Vec<String> = Graph::new(graph(&m)).unwrap().nodes().iter().map(|n| n.name.clone()).collect();
        assert_eq!(before, ["Softmax_0", "Relu_1"]);
        let up = upgrade(&m, 13).unwrap();
        let after = Graph::new(graph(&up)).unwrap();
        let names: Vec<&str> = after.nodes().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["Softmax_0_flatten", "Softmax_0_shape", "Softmax_0", "Softmax_0_reshape", "Relu_1"]);
    }

    #[test]
    fn local_functions_on_the_default_domain_are_refused() {
        let mut m = squeeze_model(11);
        m.functions.push(FunctionProto {
            name: Some("f".into()),
            domain: Some("local".into()),
            node: vec![node("Relu", "", &["a"], &["b"], vec![])],
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(11) }],
            ..Default::default()
        });
        assert!(matches!(upgrade(&m, 13), Err(OpsetError::LocalFunction { .. })));
    }

    #[test]
    fn a_model_without_a_default_import_gets_one() {
        let mut m = squeeze_model(11);
        m.opset_import.clear();
        assert!(matches!(upgrade(&m, 13), Err(OpsetError::NoDefaultOpset { .. })));
        m.graph.as_mut().unwrap().node[0].domain = Some("com.example".into());
        let up = upgrade(&m, 13).unwrap();
        assert_eq!(opset_of(&up), 13);
    }

    #[test]
    fn errors_render_with_the_node_and_a_hint() {
        let m = model(
            8,
            vec![node("Upsample", "up", &["x"], &["y"], vec![floats_attr("scales", &[1.0, 2.0])])],
            vec![value("x", F32, Some(2))],
            &["y"],
        );
        let failure = crate::error::Failure::from(upgrade(&m, 13).unwrap_err());
        let text = failure.to_string();
        assert!(text.starts_with("error: node `up` (Upsample) cannot be upgraded from opset 8 to 13: "), "{text}");
        assert!(text.contains("hint: "), "{text}");
        assert_eq!(failure.exit_code(), 1);
        // Up to 9 the same node only moves its scales.
        let up = upgrade(&m, 9).unwrap();
        assert_eq!(find(graph(&up), "up").input, ["x", "up_scales"]);
        assert_eq!(up.ir_version, Some(6));
    }
}
