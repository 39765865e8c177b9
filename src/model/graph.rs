//! A read-only view of an ONNX graph: stable unique node names, producers and consumers, topological order,
//! quantizable layers and their MACs.
//!
//! Precision specs, trtexec's `--layerPrecisions` and every report address layers by node name, so every node
//! needs one that is unique and the same on every load of the same file. A named node keeps its name; an unnamed
//! node is called `<OpType>_<index>` (its position in the file); a name seen again gets `__<k>`. Assigned names never
//! collide with names present in the file. They live in this view only: a plain load and save keeps the file as it
//! was, and exports write the assigned names into the new model, so that TensorRT sees the same names.

use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use super::proto::{GraphProto, NodeProto};

/// Op types whose weights and input activations can run in INT8 (issue 2: all of them are listed; later stages
/// decide which are worth it).
pub const QUANTIZABLE_OPS: [&str; 4] = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("the graph has a cycle through node `{node}`")]
    Cycle { node: String },
    #[error("node `{node}` reads `{tensor}`, which no node, graph input or initializer produces")]
    DanglingInput { node: String, tensor: String },
    #[error("tensor `{tensor}` is produced twice: by node `{first}` and by node `{second}`")]
    ProducedTwice { tensor: String, first: String, second: String },
}

/// One node of the view.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Unique, stable name (see the module comment).
    pub name: String,
    /// The name in the file, if it had one.
    pub original_name: Option<String>,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Tensors of the enclosing graph that the node's subgraphs (If, Loop, Scan bodies) read.
    pub outer_inputs: Vec<String>,
}

impl NodeInfo {
    pub fn is_quantizable(&self) -> bool {
        matches!(self.domain.as_str(), "" | "ai.onnx") && QUANTIZABLE_OPS.contains(&self.op_type.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct Graph {
    nodes: Vec<NodeInfo>,
    order: Vec<usize>,
    by_name: HashMap<String, usize>,
    producer: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    initializers: HashSet<String>,
    duplicate_names: Vec<String>,
}

impl Graph {
    pub fn new(graph: &GraphProto) -> Result<Graph, GraphError> {
        let (names, duplicate_names) = assign_names(&graph.node);
        let nodes: Vec<NodeInfo> = graph
            .node
            .iter()
            .zip(names)
            .map(|(node, name)| NodeInfo {
                name,
                original_name: node.name.clone().filter(|n| !n.is_empty()),
                op_type: node.op_type().to_owned(),
                domain: node.domain().to_owned(),
                inputs: node.input.clone(),
                outputs: node.output.clone(),
                outer_inputs: outer_inputs_of(node),
            })
            .collect();

        let mut initializers: HashSet<String> = graph.initializer.iter().map(|t| t.name().to_owned()).collect();
        initializers.extend(graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.name().to_owned()));
        let inputs: Vec<String> =
            graph.input.iter().map(|v| v.name().to_owned()).filter(|n| !initializers.contains(n)).collect();
        let outputs = graph.output.iter().map(|v| v.name().to_owned()).collect();

        let mut producer: HashMap<String, usize> = HashMap::new();
        for (index, node) in nodes.iter().enumerate() {
            for out in node.outputs.iter().filter(|o| !o.is_empty()) {
                if let Some(&first) = producer.get(out) {
                    return Err(GraphError::ProducedTwice {
                        tensor: out.clone(),
                        first: nodes[first].name.clone(),
                        second: node.name.clone(),
                    });
                }
                producer.insert(out.clone(), index);
            }
        }

        let available: HashSet<&str> = graph
            .input
            .iter()
            .map(|v| v.name())
            .chain(initializers.iter().map(String::as_str))
            .collect();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, node) in nodes.iter().enumerate() {
            for tensor in node.inputs.iter().chain(&node.outer_inputs).filter(|t| !t.is_empty()) {
                if !producer.contains_key(tensor) && !available.contains(tensor.as_str()) {
                    return Err(GraphError::DanglingInput { node: node.name.clone(), tensor: tensor.clone() });
                }
                let list = consumers.entry(tensor.clone()).or_default();
                if list.last() != Some(&index) {
                    list.push(index);
                }
            }
        }

        let order = topological_order(&nodes, &producer)?;
        let by_name = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        Ok(Graph { nodes, order, by_name, producer, consumers, inputs, outputs, initializers, duplicate_names })
    }

    /// Nodes in file order (the index is the node's position in `graph.node`).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, index: usize) -> &NodeInfo {
        &self.nodes[index]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node indices in a topological order; among ready nodes the one earlier in the file comes first, so a file
    /// that is already sorted keeps its order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The node that produces `tensor` (None for graph inputs and initializers).
    pub fn producer(&self, tensor: &str) -> Option<usize> {
        self.producer.get(tensor).copied()
    }

    pub fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Graph inputs that are fed at run time (initializers listed as inputs by old exporters are left out).
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    pub fn is_initializer(&self, tensor: &str) -> bool {
        self.initializers.contains(tensor)
    }

    /// Names that appear on more than one node in the file (each reported once).
    pub fn duplicate_names(&self) -> &[String] {
        &self.duplicate_names
    }

    /// Quantizable layers in topological order.
    pub fn quantizable(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().copied().filter(|&i| self.nodes[i].is_quantizable())
    }
}

fn assign_names(nodes: &[NodeProto]) -> (Vec<String>, Vec<String>) {
    let present: HashSet<&str> = nodes.iter().map(|n| n.name()).filter(|n| !n.is_empty()).collect();
    let mut taken: HashSet<String> = HashSet::new();
    let mut duplicates = BTreeSet::new();
    let mut names = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        let base = match node.name() {
            "" => format!("{}_{index}", node.op_type()),
            name => name.to_owned(),
        };
        let mut name = base.clone();
        if !node.name().is_empty() && taken.contains(&name) {
            duplicates.insert(base.clone());
        }
        // An assigned name must not take a name that a later node carries in the file.
        let clashes = |candidate: &str| taken.contains(candidate) || (node.name() != candidate && present.contains(candidate));
        let mut k = 2;
        while clashes(&name) {
            name = format!("{base}__{k}");
            k += 1;
        }
        taken.insert(name.clone());
        names.push(name);
    }
    (names, duplicates.into_iter().collect())
}

/// Tensors that a node's subgraphs read from the enclosing scope: read inside, defined nowhere inside.
fn outer_inputs_of(node: &NodeProto) -> Vec<String> {
    let mut outer = BTreeSet::new();
    for attr in &node.attribute {
        for graph in attr.g.iter().chain(&attr.graphs) {
            collect_outer(graph, &mut HashSet::new(), &mut outer);
        }
    }
    outer.into_iter().collect()
}

fn collect_outer(graph: &GraphProto, enclosing_defined: &mut HashSet<String>, outer: &mut BTreeSet<String>) {
    let mut defined: HashSet<String> = enclosing_defined.clone();
    defined.extend(graph.input.iter().map(|v| v.name().to_owned()));
    defined.extend(graph.initializer.iter().map(|t| t.name().to_owned()));
    defined.extend(graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.name().to_owned()));
    for node in &graph.node {
        defined.extend(node.output.iter().cloned());
    }
    for node in &graph.node {
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            if !defined.contains(input) {
                outer.insert(input.clone());
            }
        }
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                collect_outer(sub, &mut defined, outer);
            }
        }
    }
}

fn topological_order(nodes: &[NodeInfo], producer: &HashMap<String, usize>) -> Result<Vec<usize>, GraphError> {
    let mut pending = vec![0usize; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (index, node) in nodes.iter().enumerate() {
        let deps: BTreeSet<usize> =
            node.inputs.iter().chain(&node.outer_inputs).filter_map(|t| producer.get(t).copied()).collect();
        pending[index] = deps.len();
        for dep in deps {
            dependents[dep].push(index);
        }
    }
    // Min-heap on the file index: deterministic, and the identity for already sorted files.
    let mut ready: BinaryHeap<std::cmp::Reverse<usize>> =
        (0..nodes.len()).filter(|&i| pending[i] == 0).map(std::cmp::Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(std::cmp::Reverse(index)) = ready.pop() {
        order.push(index);
        for &next in &dependents[index] {
            pending[next] -= 1;
            if pending[next] == 0 {
                ready.push(std::cmp::Reverse(next));
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len()).find(|&i| pending[i] > 0).expect("some node is left");
        return Err(GraphError::Cycle { node: nodes[stuck].name.clone() });
    }
    Ok(order)
}

/// Multiply-accumulate count of a quantizable layer, given the shapes of its tensors (from the executor's shape
/// inference, for concrete input shapes). None when a shape it needs is unknown.
pub fn layer_macs(node: &NodeInfo, shape_of: impl Fn(&str) -> Option<Vec<usize>>, attr_int: impl Fn(&str) -> Option<i64>) -> Option<u64> {
    let input = |i: usize| node.inputs.get(i).and_then(|t| shape_of(t));
    let output = node.outputs.first().and_then(|t| shape_of(t))?;
    let prod = |dims: &[usize]| dims.iter().map(|&d| d as u64).product::<u64>();
    match node.op_type.as_str() {
        "Conv" => {
            // weight: [C_out, C_in / group, k...]; every output element takes C_in/group * prod(k) MACs.
            let weight = input(1)?;
            Some(prod(&output) * prod(weight.get(1..)?))
        }
        "ConvTranspose" => {
            // weight: [C_in, C_out / group, k...]; every input element scatters into C_out/group * prod(k) outputs.
            let x = input(0)?;
            let weight = input(1)?;
            Some(prod(&x) * prod(weight.get(1..)?))
        }
        "Gemm" => {
            let a = input(0)?;
            if a.len() != 2 {
                return None;
            }
            let k = if attr_int("transA").unwrap_or(0) != 0 { a[0] } else { a[1] };
            Some(prod(&output) * k as u64)
        }
        "MatMul" => {
            let a = input(0)?;
            let k = *a.last()?;
            Some(prod(&output) * k as u64)
        }
        _ => None,
    }
}
