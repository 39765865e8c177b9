//! The precision plan: the precision of every quantizable layer, by its stable node name.
//!
//! Plans are small TOML files that every command accepts with `--plan`:
//! ```toml
//! format = "precisiond-plan/1"
//! [layers]
//! "conv1" = "int8"
//! "head.conv" = "fp16"
//! ```
//! Layers that are not quantizable (Add, Sigmoid, …) are not in a plan: the export leaves them in FP32.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Diagnose, Fault};
use crate::model::Graph;

pub const PLAN_FORMAT: &str = "precisiond-plan/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Int8,
    Fp16,
    Fp32,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Fp16 => "fp16",
            Precision::Fp32 => "fp32",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("`{name}` is not a quantizable layer of the model{}", suggestion(.closest))]
    UnknownLayer { name: String, closest: Option<String> },
    #[error("`{name}` must stay at fp16 or above (it matches keep pattern `{pattern}`), but [precision.layers] sets it to int8")]
    Conflict { name: String, pattern: String },
    #[error("keep pattern `{pattern}` matches no layer of the model")]
    KeepMatchesNothing { pattern: String },
    #[error("the plan does not give a precision for layer `{name}`")]
    MissingLayer { name: String },
    #[error("cannot read plan {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("cannot write plan {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("layer `{name}` cannot be named in trtexec's --layerPrecisions ({why})")]
    UnexpressibleName { name: String, why: &'static str },
}

fn suggestion(closest: &Option<String>) -> String {
    closest.as_ref().map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

impl Diagnose for PlanError {
    fn fault(&self) -> Fault {
        match self {
            PlanError::Write { .. } => Fault::Environment,
            _ => Fault::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            PlanError::UnknownLayer { .. } | PlanError::KeepMatchesNothing { .. } => {
                Some("`precisiond inspect MODEL` lists the layer names".into())
            }
            _ => None,
        }
    }
}

/// Every quantizable layer's precision, in the model's topological order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    layers: Vec<(String, Precision)>,
}

/// The values of trtexec's `--layerPrecisions=` and `--layerOutputTypes=` for a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFlags {
    pub layer_precisions: String,
    pub layer_output_types: String,
}

/// Layer counts of a plan and the share of multiply-accumulates in INT8 layers (the `plan {…}` of the JSON outputs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub int8: usize,
    pub fp16: usize,
    pub fp32: usize,
    /// Share of the quantizable layers' MACs that run in INT8; null when MACs are unknown.
    pub int8_mac_fraction: Option<f64>,
}

impl Plan {
    /// A plan of exactly these layers, for tests of code that only reads plans.
    #[cfg(test)]
    pub(crate) fn from_layers(layers: Vec<(String, Precision)>) -> Plan {
        Plan { layers }
    }

    /// The same precision for every quantizable layer of `graph`.
    pub fn uniform(graph: &Graph, precision: Precision) -> Plan {
        Plan { layers: graph.quantizable().map(|i| (graph.node(i).name.clone(), precision)).collect() }
    }

    /// Resolves the spec's choices: `default` for every quantizable layer, then `keep` (glob on node names, or
    /// `op:TYPE`) lifts matching layers to at least fp16, then `layers` sets exact precisions. An exact choice below
    /// fp16 for a kept layer is a conflict.
    pub fn resolve(
        graph: &Graph,
        default: Precision,
        keep: &[String],
        layers: &BTreeMap<String, Precision>,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan::uniform(graph, default);
        let names: Vec<String> = plan.layers.iter().map(|(n, _)| n.clone()).collect();
        for name in layers.keys() {
            if !names.contains(name) {
                return Err(PlanError::UnknownLayer { name: name.clone(), closest: closest(name, &names) });
            }
        }
        for pattern in keep {
            let mut matched = false;
            for (name, precision) in plan.layers.iter_mut() {
                let index = graph.index_of(name).expect("plan names come from the graph");
                if keep_matches(pattern, name, &graph.node(index).op_type) {
                    matched = true;
                    if layers.get(name) == Some(&Precision::Int8) {
                        return Err(PlanError::Conflict { name: name.clone(), pattern: pattern.clone() });
                    }
                    if *precision == Precision::Int8 {
                        *precision = Precision::Fp16;
                    }
                }
            }
            // `op:Softmax` may name ops that are not quantizable: they are never below fp16 anyway.
            let names_an_op = pattern.starts_with("op:");
            if !matched && !names_an_op && !pattern.contains(['*', '?', '[']) {
                return Err(PlanError::KeepMatchesNothing { pattern: pattern.clone() });
            }
        }
        for (name, precision) in plan.layers.iter_mut() {
            if let Some(&exact) = layers.get(name) {
                *precision = exact;
            }
        }
        Ok(plan)
    }

    pub fn layers(&self) -> &[(String, Precision)] {
        &self.layers
    }

    pub fn get(&self, name: &str) -> Option<Precision> {
        self.layers.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }

    /// A copy with one layer changed.
    pub fn with(&self, name: &str, precision: Precision) -> Plan {
        let mut plan = self.clone();
        if let Some(entry) = plan.layers.iter_mut().find(|(n, _)| n == name) {
            entry.1 = precision;
        }
        plan
    }

    pub fn count(&self, precision: Precision) -> usize {
        self.layers.iter().filter(|(_, p)| *p == precision).count()
    }

    /// `macs` gives each layer's MACs (None when unknown).
    pub fn summary(&self, macs: impl Fn(&str) -> Option<u64>) -> PlanSummary {
        let all: Option<Vec<(u64, Precision)>> = self.layers.iter().map(|(n, p)| macs(n).map(|m| (m, *p))).collect();
        let int8_mac_fraction = all.and_then(|all| {
            let total: u64 = all.iter().map(|(m, _)| m).sum();
            let int8: u64 = all.iter().filter(|(_, p)| *p == Precision::Int8).map(|(m, _)| m).sum();
            (total > 0).then(|| int8 as f64 / total as f64)
        });
        PlanSummary {
            int8: self.count(Precision::Int8),
            fp16: self.count(Precision::Fp16),
            fp32: self.count(Precision::Fp32),
            int8_mac_fraction,
        }
    }

    pub fn to_toml(&self) -> String {
        let mut out = format!("format = \"{PLAN_FORMAT}\"\n\n[layers]\n");
        for (name, precision) in &self.layers {
            out.push_str(&format!("{} = \"{precision}\"\n", crate::spec::toml_key(name)));
        }
        out
    }

    /// Reads a plan file and checks it against the model: every quantizable layer present, no other name.
    pub fn load(path: &Path, graph: &Graph) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read { path: path.to_owned(), source })?;
        Plan::parse(&text, path, graph)
    }

    pub fn parse(text: &str, path: &Path, graph: &Graph) -> Result<Plan, PlanError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            format: String,
            layers: BTreeMap<String, Precision>,
        }
        let parse_err = |message: String| PlanError::Parse { path: path.to_owned(), message };
        let file: File = toml::from_str(text).map_err(|e| parse_err(e.to_string().trim_end().to_owned()))?;
        if file.format != PLAN_FORMAT {
            return Err(parse_err(format!("format is `{}`, but precisiond reads `{PLAN_FORMAT}`", file.format)));
        }
        let names: Vec<String> = graph.quantizable().map(|i| graph.node(i).name.clone()).collect();
        for name in file.layers.keys() {
            if !names.contains(name) {
                return Err(PlanError::UnknownLayer { name: name.clone(), closest: closest(name, &names) });
            }
        }
        let layers = names
            .into_iter()
            .map(|name| match file.layers.get(&name) {
                Some(&p) => Ok((name, p)),
                None => Err(PlanError::MissingLayer { name }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Plan { layers })
    }

    /// The plan as trtexec's implicit-quantization flags (TensorRT ≤ 10, with `--int8 --fp16 --calib=…
    /// --precisionConstraints=obey`): `--layerPrecisions` names every quantizable layer with its precision;
    /// `--layerOutputTypes` fixes the output type of the FP16 and FP32 layers (an INT8 layer's output type is left
    /// to TensorRT, which keeps it INT8 where the next layer reads INT8). Exact names only, no `*`: on 10.x several
    /// wildcard patterns matching one layer resolve in an unspecified order (tensorrt.md §2.2).
    pub fn trtexec_layer_flags(&self) -> Result<LayerFlags, PlanError> {
        let mut precisions = Vec::new();
        let mut output_types = Vec::new();
        for (name, precision) in &self.layers {
            // trtexec splits the list on ',' before anything else, and a quote must come in pairs around the name.
            if name.contains(',') {
                return Err(PlanError::UnexpressibleName { name: name.clone(), why: "it contains ','" });
            }
            if name.contains('\'') {
                return Err(PlanError::UnexpressibleName { name: name.clone(), why: "it contains a quote" });
            }
            precisions.push(format!("{name}:{precision}"));
            if *precision != Precision::Int8 {
                output_types.push(format!("{name}:{precision}"));
            }
        }
        Ok(LayerFlags { layer_precisions: precisions.join(","), layer_output_types: output_types.join(",") })
    }

    pub fn save(&self, path: &Path) -> Result<(), PlanError> {
        crate::model::write_atomically(path, self.to_toml().as_bytes())
            .map_err(|source| PlanError::Write { path: path.to_owned(), source })
    }
}

/// `op:TYPE` matches the op type; anything else is a glob on the node name (`*`, `?`, `[…]`).
pub fn keep_matches(pattern: &str, name: &str, op_type: &str) -> bool {
    match pattern.strip_prefix("op:") {
        Some(op) => op == op_type,
        None => glob_match(pattern.as_bytes(), name.as_bytes()),
    }
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&pattern[1..], text) || (!text.is_empty() && glob_match(pattern, &text[1..])),
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &text[1..]),
        (Some(b'['), Some(&c)) => match pattern.iter().position(|&b| b == b']') {
            Some(end) if end > 1 => {
                let set = &pattern[1..end];
                let (negate, set) = match set.first() {
                    Some(b'!') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && glob_match(&pattern[end + 1..], &text[1..])
            }
            _ => c == b'[' && glob_match(&pattern[1..], &text[1..]),
        },
        (Some(&p), Some(&c)) => p == c && glob_match(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// The closest candidate by edit distance, if it is close enough to be a likely typo.
pub fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + (ca != b[j]) as usize).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"head*", b"head.conv1"));
        assert!(glob_match(b"*conv?", b"backbone.conv3"));
        assert!(!glob_match(b"*conv?", b"backbone.conv12"));
        assert!(glob_match(b"conv[0-2]", b"conv1"));
        assert!(!glob_match(b"conv[!0-2]", b"conv1"));
        assert!(keep_matches("op:Softmax", "anything", "Softmax"));
        assert!(!keep_matches("op:Softmax", "Softmax", "Conv"));
    }

    fn two_layer_graph() -> Graph {
        use crate::model::proto::{GraphProto, NodeProto};
        let node = |name: &str, op: &str, input: &str, output: &str| NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: vec![input.into()],
            output: vec![output.into()],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node("conv_first", "Conv", "x", "a"), node("soft", "Softmax", "a", "b"), node("conv_last", "Conv", "b", "y")],
            input: vec![crate::model::proto::ValueInfoProto { name: Some("x".into()), ..Default::default() }],
            ..Default::default()
        };
        Graph::new(&graph).unwrap()
    }

    #[test]
    fn resolution_default_keep_and_exact_layers() {
        let graph = two_layer_graph();
        let layers: BTreeMap<String, Precision> = [("conv_last".to_owned(), Precision::Fp32)].into();
        let plan = Plan::resolve(&graph, Precision::Int8, &["*first".into(), "op:Softmax".into()], &layers).unwrap();
        assert_eq!(plan.layers(), [("conv_first".into(), Precision::Fp16), ("conv_last".into(), Precision::Fp32)]);

        let conflict: BTreeMap<String, Precision> = [("conv_first".to_owned(), Precision::Int8)].into();
        let err = Plan::resolve(&graph, Precision::Int8, &["conv_*".into()], &conflict).unwrap_err();
        assert!(matches!(err, PlanError::Conflict { ref name, .. } if name == "conv_first"), "{err}");

        let unknown: BTreeMap<String, Precision> = [("conv_lst".to_owned(), Precision::Fp16)].into();
        let err = Plan::resolve(&graph, Precision::Int8, &[], &unknown).unwrap_err().to_string();
        assert!(err.contains("`conv_lst`") && err.contains("did you mean `conv_last`"), "{err}");

        let err = Plan::resolve(&graph, Precision::Int8, &["conv_middle".into()], &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, PlanError::KeepMatchesNothing { .. }), "{err}");
    }

    #[test]
    fn plan_files_round_trip_and_must_cover_every_layer() {
        let graph = two_layer_graph();
        let plan = Plan::uniform(&graph, Precision::Int8).with("conv_last", Precision::Fp16);
        assert_eq!(Plan::parse(&plan.to_toml(), Path::new("p.toml"), &graph).unwrap(), plan);
        let partial = "format = \"precisiond-plan/1\"\n[layers]\nconv_first = \"int8\"\n";
        let err = Plan::parse(partial, Path::new("p.toml"), &graph).unwrap_err();
        assert!(matches!(err, PlanError::MissingLayer { ref name } if name == "conv_last"), "{err}");
        let typo = plan.to_toml().replace("\"int8\"", "\"int4\"");
        assert!(Plan::parse(&typo, Path::new("p.toml"), &graph).unwrap_err().to_string().contains("p.toml"));
    }

    #[test]
    fn trtexec_flags_name_every_layer_exactly() {
        let graph = two_layer_graph();
        let plan = Plan::uniform(&graph, Precision::Int8).with("conv_last", Precision::Fp16);
        let flags = plan.trtexec_layer_flags().unwrap();
        assert_eq!(flags.layer_precisions, "conv_first:int8,conv_last:fp16");
        assert_eq!(flags.layer_output_types, "conv_last:fp16");
        let odd = Plan { layers: vec![("a,b".into(), Precision::Int8)] };
        assert!(matches!(odd.trtexec_layer_flags(), Err(PlanError::UnexpressibleName { .. })));
    }

    #[test]
    fn closest_names() {
        let names = vec!["conv_last".to_owned(), "conv_first".to_owned()];
        assert_eq!(closest("conv_lst", &names).as_deref(), Some("conv_last"));
        assert_eq!(closest("something_else", &names), None);
    }
}
