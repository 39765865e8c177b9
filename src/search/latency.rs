//! Predicted latency of a plan, to rank plans that meet the budget and to weigh a layer's sensitivity against what
//! its INT8 saves.
//!
//! Without measurements the model is nominal: a layer costs its MACs at a per-precision throughput, and every
//! precision boundary between quantizable layers costs a reformat of the tensor that crosses it (a Q/DQ or Cast
//! pair that does not fuse). The throughputs are those of an Orin-class GPU in round numbers (FP32 0.5, FP16 2,
//! INT8 4 TMAC/s effective; reformats mostly fused): absolute milliseconds are indicative, ratios are what the
//! search uses. Measured per-layer times from trtexec profiles replace them when given.

use std::collections::HashMap;

use crate::model::Graph;
use crate::precision::{Plan, Precision};

/// Milliseconds per million MACs, per precision.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub fp32_ms_per_mmac: f64,
    pub fp16_ms_per_mmac: f64,
    pub int8_ms_per_mmac: f64,
    /// Milliseconds per million elements crossing a precision boundary.
    pub reformat_ms_per_melem: f64,
}

impl Default for Throughput {
    fn default() -> Throughput {
        Throughput {
            fp32_ms_per_mmac: 1.0 / 500.0,
            fp16_ms_per_mmac: 1.0 / 2000.0,
            int8_ms_per_mmac: 1.0 / 4000.0,
            // Most boundaries fuse into the neighbouring kernel (a DequantizeLinear into the consumer, a
            // QuantizeLinear into the producer's epilogue): count a third of a 6-byte round trip at ~200 GB/s.
            reformat_ms_per_melem: 2.0e6 / 200.0e9 * 1000.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LatencyModel {
    /// Per quantizable layer: ms in each precision.
    layer_ms: HashMap<String, [f64; 3]>,
    /// (consumer layer, upstream quantizable layer, elements of the tensor between them)
    edges: Vec<(String, String, f64)>,
    throughput: Throughput,
    pub source: &'static str,
}

fn slot(p: Precision) -> usize {
    match p {
        Precision::Int8 => 0,
        Precision::Fp16 => 1,
        Precision::Fp32 => 2,
    }
}

impl LatencyModel {
    /// From MACs per layer and the element count of each layer's first input (both from `inspect` at the spec's
    /// shapes). Layers whose MACs are unknown cost nothing.
    pub fn from_macs(graph: &Graph, macs: &HashMap<String, u64>, input_elems: &HashMap<String, u64>) -> LatencyModel {
        let t = Throughput::default();
        let mut layer_ms = HashMap::new();
        for index in graph.quantizable() {
            let name = &graph.node(index).name;
            let m = macs.get(name).copied().unwrap_or(0) as f64 / 1e6;
            layer_ms.insert(name.clone(), [m * t.int8_ms_per_mmac, m * t.fp16_ms_per_mmac, m * t.fp32_ms_per_mmac]);
        }
        let mut edges = Vec::new();
        for index in graph.quantizable() {
            let node = graph.node(index);
            let elems = input_elems.get(&node.name).copied().unwrap_or(0) as f64;
            for upstream in upstream_layers(graph, index) {
                edges.push((node.name.clone(), graph.node(upstream).name.clone(), elems));
            }
        }
        LatencyModel { layer_ms, edges, throughput: t, source: "macs" }
    }

    /// Replaces the nominal per-layer times with those measured in trtexec `--exportProfile` files of an all-FP16
    /// and an all-INT8 engine. TensorRT names a fused layer by joining its nodes with ` + ` (`Conv_3 + Relu_4`,
    /// `w + QuantizeLinear_7 + Conv_9`): an entry's time goes to the quantizable layers it names, split by MACs
    /// when it names several. FP32 is taken as twice FP16 (no FP32 engine is profiled). Layers no entry names keep
    /// their nominal time, scaled by how measured and nominal times compare on the layers that were found.
    /// Returns how many layers were found in each profile.
    pub fn with_profiles(
        mut self,
        fp16: &crate::trt::parse::ProfileExport,
        int8: &crate::trt::parse::ProfileExport,
        macs: &HashMap<String, u64>,
    ) -> (LatencyModel, usize, usize) {
        let mut found = [0usize; 2];
        for (which, profile, precision) in [(0, fp16, Precision::Fp16), (1, int8, Precision::Int8)] {
            let measured = measured_times(profile, &self.layer_ms, macs);
            let (mut nominal_sum, mut measured_sum) = (0.0, 0.0);
            for (layer, ms) in &measured {
                nominal_sum += self.layer_ms(layer, precision);
                measured_sum += ms;
            }
            let scale = if nominal_sum > 0.0 { measured_sum / nominal_sum } else { 1.0 };
            for (layer, times) in self.layer_ms.iter_mut() {
                let value = measured.get(layer).copied().unwrap_or(times[slot(precision)] * scale);
                times[slot(precision)] = value;
                if precision == Precision::Fp16 {
                    times[slot(Precision::Fp32)] = 2.0 * value;
                }
            }
            found[which] = measured.len();
        }
        self.source = "profile";
        (self, found[0], found[1])
    }

    pub fn layer_ms(&self, layer: &str, precision: Precision) -> f64 {
        self.layer_ms.get(layer).map_or(0.0, |ms| ms[slot(precision)])
    }

    /// Milliseconds saved by running `layer` in INT8 instead of FP16 (never negative).
    pub fn int8_gain_ms(&self, layer: &str) -> f64 {
        (self.layer_ms(layer, Precision::Fp16) - self.layer_ms(layer, Precision::Int8)).max(0.0)
    }

    pub fn predict_ms(&self, plan: &Plan) -> f64 {
        let precision: HashMap<&str, Precision> = plan.layers().iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let layers: f64 = plan.layers().iter().map(|(n, p)| self.layer_ms(n, *p)).sum();
        let boundaries: f64 = self
            .edges
            .iter()
            .filter(|(a, b, _)| precision.get(a.as_str()) != precision.get(b.as_str()))
            .map(|(_, _, elems)| elems / 1e6 * self.throughput.reformat_ms_per_melem)
            .sum();
        layers + boundaries
    }
}

/// Milliseconds per quantizable layer named in a profile (fused entries split by MACs).
fn measured_times(
    profile: &crate::trt::parse::ProfileExport,
    layers: &HashMap<String, [f64; 3]>,
    macs: &HashMap<String, u64>,
) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    for entry in &profile.layers {
        // Reformat copies are boundary costs, not a layer's own time.
        if entry.name.starts_with("Reformatting CopyNode") {
            continue;
        }
        let Some(ms) = entry.average_ms.or(entry.time_ms) else { continue };
        let named: Vec<&str> = entry.name.split(" + ").map(str::trim).filter(|t| layers.contains_key(*t)).collect();
        let total: u64 = named.iter().map(|n| macs.get(*n).copied().unwrap_or(0)).sum();
        for name in &named {
            let share = if total > 0 { macs.get(*name).copied().unwrap_or(0) as f64 / total as f64 } else { 1.0 / named.len() as f64 };
            *out.entry((*name).to_owned()).or_insert(0.0) += ms * share;
        }
    }
    out
}

/// The nearest quantizable layers upstream of layer `index`, looking through the other ops (activations, adds,
/// resizes…) that sit between them.
fn upstream_layers(graph: &Graph, index: usize) -> Vec<usize> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut frontier: Vec<usize> =
        graph.node(index).inputs.iter().filter_map(|t| graph.producer(t)).collect();
    let mut steps = 0;
    while let Some(node) = frontier.pop() {
        steps += 1;
        if !seen.insert(node) || steps > 64 {
            continue;
        }
        if graph.node(node).is_quantizable() {
            found.push(node);
        } else if graph.node(node).op_type != "Constant" {
            frontier.extend(graph.node(node).inputs.iter().filter_map(|t| graph.producer(t)));
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}
