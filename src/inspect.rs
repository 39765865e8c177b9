//! What `precisiond inspect` reports: every node with its op, output shape and MACs, and a summary.

use serde::Serialize;

use crate::exec::{self, InputDecl};
use crate::model::graph::layer_macs;
use crate::model::{Model, weights};

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub model: String,
    pub ir_version: Option<i64>,
    pub opset: Option<i64>,
    pub producer: Option<String>,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<String>,
    /// Every node, in topological order.
    pub layers: Vec<Layer>,
    pub summary: Summary,
    /// Names that more than one node carries in the file; the view renames later ones (`name__2`, …).
    pub duplicate_names: Vec<String>,
    /// Why shapes or MACs are missing, when they are.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct IoInfo {
    pub name: String,
    pub dtype: Option<String>,
    /// As declared: `null` for symbolic dimensions.
    pub declared: Vec<Option<usize>>,
    /// The concrete shape used for shapes and MACs, if any.
    pub shape: Option<Vec<usize>>,
}

#[derive(Debug, Serialize)]
pub struct Layer {
    pub name: String,
    pub op: String,
    pub quantizable: bool,
    /// Multiply-accumulates of a quantizable layer; null for other ops and when shapes are unknown.
    pub macs: Option<u64>,
    pub output_shape: Option<Vec<usize>>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub quantizable: usize,
    /// Total MACs of the quantizable layers; null when any of them is unknown.
    pub macs: Option<u64>,
    /// Quantizable layers per op type.
    pub quantizable_by_op: std::collections::BTreeMap<String, usize>,
}

/// Inspects a loaded model; `given_shapes` fixes symbolic input dimensions.
pub fn inspect(model: &Model, given_shapes: &[(String, Vec<usize>)]) -> Result<Inspection, exec::ExecError> {
    let graph = model.graph();
    let proto = model.graph_proto();
    let mut notes = Vec::new();

    let declared = exec::declared_inputs(model);
    let (shapes, resolved): (_, Vec<(InputDecl, Vec<usize>)>) = match exec::resolve_input_shapes(model, given_shapes) {
        Ok(resolved) => match exec::infer_shapes(model, &resolved) {
            Ok(shapes) => (shapes, resolved),
            Err(e) => {
                notes.push(format!("shapes and MACs are unknown: {e}"));
                (Default::default(), resolved)
            }
        },
        Err(e @ exec::ExecError::MissingShape { .. }) => {
            notes.push(format!("shapes and MACs are unknown: {e}; pass --shape NAME=D1,D2,…"));
            (Default::default(), Vec::new())
        }
        Err(e) => return Err(e),
    };

    let shape_of = |tensor: &str| {
        shapes.get(tensor).cloned().or_else(|| weights::find(proto, &graph, tensor).map(|w| weights::dims(w.tensor())))
    };
    let layers: Vec<Layer> = graph
        .order()
        .iter()
        .map(|&index| {
            let node = graph.node(index);
            let quantizable = node.is_quantizable();
            let attr_int = |name: &str| proto.node[index].attribute.iter().find(|a| a.name() == name).and_then(|a| a.i);
            let macs = if quantizable && !shapes.is_empty() { layer_macs(node, shape_of, attr_int) } else { None };
            Layer {
                name: node.name.clone(),
                op: node.op_type.clone(),
                quantizable,
                macs,
                output_shape: node.outputs.first().and_then(|o| shapes.get(o).cloned()),
            }
        })
        .collect();

    let quantizable: Vec<&Layer> = layers.iter().filter(|l| l.quantizable).collect();
    let mut quantizable_by_op = std::collections::BTreeMap::new();
    for layer in &quantizable {
        *quantizable_by_op.entry(layer.op.clone()).or_insert(0) += 1;
    }
    let macs = quantizable.iter().map(|l| l.macs).sum::<Option<u64>>().filter(|_| !quantizable.is_empty() || !shapes.is_empty());
    let summary = Summary { nodes: layers.len(), quantizable: quantizable.len(), macs, quantizable_by_op };

    let inputs = declared
        .iter()
        .map(|d| IoInfo {
            name: d.name.clone(),
            dtype: d.dtype.map(|t| t.name().to_owned()),
            declared: d.dims.clone(),
            shape: resolved.iter().find(|(r, _)| r.name == d.name).map(|(_, s)| s.clone()),
        })
        .collect();

    Ok(Inspection {
        model: model.path().display().to_string(),
        ir_version: model.proto().ir_version,
        opset: model.opset(),
        producer: model.proto().producer_name.clone(),
        inputs,
        outputs: graph.outputs().to_vec(),
        layers,
        summary,
        duplicate_names: graph.duplicate_names().to_vec(),
        notes,
    })
}
