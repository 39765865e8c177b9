//! `--exportLayerInfo` JSON (`IEngineInspector::getEngineInformation(kJSON)`) and the `--dumpLayerInfo`
//! text in the log.
//!
//! With the default `layer_names_only` verbosity `Layers` is a list of strings; with `detailed` it is a
//! list of objects (`Name`, `LayerType`, `Inputs`/`Outputs` with `Format/Datatype`, tactic, 10.x `StreamId`
//! and `Metadata`). 11.x replaces `Bindings` with `I/O Tensors` objects and splits `Format/Datatype`
//! (tensorrt.md §1.3, exact 11.x names unconfirmed), so both spellings are read and unknown fields kept.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::json::{from_str_lenient, strip_preamble};
use super::{ExportKind, ParseError};

/// A parsed layer-information document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Required: an object without it is not a layer-information document.
    #[serde(rename = "Layers")]
    pub layers: Vec<LayerEntry>,
    #[serde(rename = "Bindings", default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<String>,
    /// 11.x replacement of `Bindings`.
    #[serde(rename = "I/O Tensors", default, skip_serializing_if = "Vec::is_empty")]
    pub io_tensors: Vec<serde_json::Value>,
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One entry of `Layers`: a bare name (`layer_names_only`) or a detailed object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerEntry {
    Name(String),
    Detailed(Box<DetailedLayer>),
}

impl LayerEntry {
    pub fn name(&self) -> &str {
        match self {
            LayerEntry::Name(n) => n,
            LayerEntry::Detailed(d) => &d.name,
        }
    }

    pub fn detailed(&self) -> Option<&DetailedLayer> {
        match self {
            LayerEntry::Name(_) => None,
            LayerEntry::Detailed(d) => Some(d),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetailedLayer {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "LayerType", default, skip_serializing_if = "Option::is_none")]
    pub layer_type: Option<String>,
    #[serde(rename = "Inputs", default)]
    pub inputs: Vec<TensorInfo>,
    #[serde(rename = "Outputs", default)]
    pub outputs: Vec<TensorInfo>,
    #[serde(rename = "ParameterType", default, skip_serializing_if = "Option::is_none")]
    pub parameter_type: Option<String>,
    /// `QDQ` for Q/DQ-derived layers, `REFORMAT` for inserted reformats.
    #[serde(rename = "Origin", default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(rename = "TacticName", default, skip_serializing_if = "Option::is_none")]
    pub tactic_name: Option<String>,
    #[serde(rename = "TacticValue", default, skip_serializing_if = "Option::is_none")]
    pub tactic_value: Option<String>,
    #[serde(rename = "StreamId", default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<i64>,
    /// 10.x: `[ONNX Layer: a]<sep>[ONNX Layer: b]`, separators \u001e or \u001f.
    #[serde(rename = "Metadata", default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Kernel, Stride, Weights, HasBias, … — everything else, as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl DetailedLayer {
    /// The ONNX nodes fused into this engine layer, from `Metadata`.
    pub fn onnx_layers(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = self.metadata.as_deref().unwrap_or("");
        while let Some(start) = rest.find("[ONNX Layer: ") {
            let after = rest.get(start + "[ONNX Layer: ".len()..).unwrap_or("");
            let Some(end) = after.find(']') else { break };
            out.push(after.get(..end).unwrap_or(""));
            rest = after.get(end + 1..).unwrap_or("");
        }
        out
    }

    /// The widest numeric type among the outputs; how trtexec users read a layer's precision.
    pub fn output_precision(&self) -> Option<DataType> {
        self.outputs.iter().filter_map(TensorInfo::data_type).max()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Location", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(rename = "Dimensions", default)]
    pub dimensions: Vec<i64>,
    /// ≤ 10.x: one string, e.g. `Channel major FP16 format where channel % 8 == 0`, `Float`, `Int8`.
    #[serde(rename = "Format/Datatype", default, skip_serializing_if = "Option::is_none")]
    pub format_datatype: Option<String>,
    /// 11.x split fields (names unconfirmed; both common spellings read).
    #[serde(rename = "DataType", alias = "Datatype", default, skip_serializing_if = "Option::is_none")]
    pub data_type_field: Option<String>,
    #[serde(rename = "Format", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Element type of a tensor, ordered narrow to wide for "widest output" questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Bool,
    Int4,
    Fp4,
    Int8,
    Uint8,
    Fp8,
    Fp16,
    Bf16,
    Int32,
    Fp32,
    Int64,
}

impl TensorInfo {
    /// The element type, read from the split field or from the words of `Format/Datatype`.
    pub fn data_type(&self) -> Option<DataType> {
        self.data_type_field
            .as_deref()
            .and_then(data_type_from_text)
            .or_else(|| self.format_datatype.as_deref().and_then(data_type_from_text))
    }
}

/// Maps TensorRT's type words (`Float`, `Half`, `FP16`, `Int8`, `Row major linear FP32`, …) to a type.
pub fn data_type_from_text(text: &str) -> Option<DataType> {
    // Word-wise so that "channel % 8" or "Int8" inside other words are not misread.
    for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let t = match w.to_ascii_lowercase().as_str() {
            "float" | "fp32" | "float32" => DataType::Fp32,
            "half" | "fp16" | "float16" => DataType::Fp16,
            "bf16" | "bfloat16" => DataType::Bf16,
            "int8" => DataType::Int8,
            "uint8" => DataType::Uint8,
            "fp8" | "e4m3" => DataType::Fp8,
            "int4" => DataType::Int4,
            "fp4" | "e2m1" => DataType::Fp4,
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "bool" => DataType::Bool,
            _ => continue,
        };
        return Some(t);
    }
    None
}

impl LayerInfo {
    /// Binding (I/O tensor) names from `Bindings` or, on 11.x, `I/O Tensors[].Name`.
    pub fn binding_names(&self) -> Vec<&str> {
        if !self.bindings.is_empty() {
            return self.bindings.iter().map(String::as_str).collect();
        }
        self.io_tensors.iter().filter_map(|t| t.get("Name").and_then(|n| n.as_str())).collect()
    }

    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(LayerEntry::name).collect()
    }

    /// True when the engine was built with detailed profiling verbosity.
    pub fn is_detailed(&self) -> bool {
        self.layers.iter().any(|l| matches!(l, LayerEntry::Detailed(_)))
    }
}

/// Parses the text of an `--exportLayerInfo` file. A bare array of layers is accepted as well.
pub fn parse_export_layer_info(text: &str, origin: &str) -> Result<LayerInfo, ParseError> {
    if strip_preamble(text).starts_with('[') {
        let layers: Vec<LayerEntry> = from_str_lenient(text, ExportKind::LayerInfo, origin)?;
        return Ok(LayerInfo { layers, ..LayerInfo::default() });
    }
    from_str_lenient(text, ExportKind::LayerInfo, origin)
}

/// Parses the `--dumpLayerInfo` text that follows `Layer Information:` in a log: either JSON, or (10.x)
/// one `Name: …, LayerType: …, …` line per layer then `Bindings:` and one name per line. Only names,
/// layer types and bindings are read from the line form: its values are not quoted, so commas inside
/// names make anything deeper guesswork.
pub fn parse_layer_dump(lines: &[&str]) -> LayerInfo {
    let joined = lines.join("\n");
    let t = joined.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(info) = parse_export_layer_info(t, "log")
    {
        return info;
    }
    let mut info = LayerInfo::default();
    let mut in_bindings = false;
    for l in lines {
        let l = l.trim();
        if l.is_empty() || l == "Layers:" {
            continue;
        }
        if l == "Bindings:" {
            in_bindings = true;
            continue;
        }
        if in_bindings {
            info.bindings.push(l.to_string());
        } else if let Some(rest) = l.strip_prefix("Name: ") {
            let (name, layer_type) = match rest.split_once(", LayerType: ") {
                Some((n, after)) => (n, after.split(',').next().map(|s| s.trim().to_string())),
                None => (rest.split(", ").next().unwrap_or(rest), None),
            };
            info.layers.push(LayerEntry::Detailed(Box::new(DetailedLayer {
                name: name.to_string(),
                layer_type,
                ..DetailedLayer::default()
            })));
        } else {
            info.layers.push(LayerEntry::Name(l.to_string()));
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_layers_from_metadata_with_both_separators() {
        let l = DetailedLayer {
            metadata: Some("[ONNX Layer: node_softmax]\u{1f}[ONNX Layer: node_argmax]\u{1e}[ONNX Layer: x".into()),
            ..DetailedLayer::default()
        };
        assert_eq!(l.onnx_layers(), vec!["node_softmax", "node_argmax"]);
    }

    #[test]
    fn data_types_from_format_strings() {
        assert_eq!(data_type_from_text("Channel major FP16 format where channel % 8 == 0"), Some(DataType::Fp16));
        assert_eq!(data_type_from_text("Four wide channel vectorized row major Int8 format"), Some(DataType::Int8));
        assert_eq!(data_type_from_text("Row major linear FP32"), Some(DataType::Fp32));
        assert_eq!(data_type_from_text("Float"), Some(DataType::Fp32));
        assert_eq!(data_type_from_text("Half"), Some(DataType::Fp16));
        assert_eq!(data_type_from_text("Int64"), Some(DataType::Int64));
        assert_eq!(data_type_from_text("Row major linear"), None);
    }

    #[test]
    fn dump_lines_and_bindings() {
        let info = parse_layer_dump(&[
            "Name: node_conv2d + node_relu, LayerType: CaskConvolution, Inputs: [ { Name: x }]",
            "Name: odd",
            "",
            "Bindings:",
            "x",
            "y",
        ]);
        assert_eq!(info.layer_names(), vec!["node_conv2d + node_relu", "odd"]);
        assert_eq!(info.layers[0].detailed().unwrap().layer_type.as_deref(), Some("CaskConvolution"));
        assert_eq!(info.binding_names(), vec!["x", "y"]);
    }

    #[test]
    fn eleven_x_io_tensors() {
        let info = parse_export_layer_info(
            r#"{"Layers": [{"Name": "a", "Outputs": [{"Name": "o", "DataType": "Int8", "Format": "kLINEAR"}]}],
               "I/O Tensors": [{"Name": "in", "IOMode": "Input"}, {"Name": "out"}]}"#,
            "x.json",
        )
        .unwrap();
        assert_eq!(info.binding_names(), vec!["in", "out"]);
        assert_eq!(info.layers[0].detailed().unwrap().output_precision(), Some(DataType::Int8));
    }
}
