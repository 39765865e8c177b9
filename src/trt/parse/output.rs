//! `--exportOutput` JSON: `[ { "name" : "prob", "dimensions" : "1000x1x1", "values" : [ … ] }, … ]`.
//!
//! Dimensions are an `x`-joined string; values are printed with `<<`, so `nan`/`inf` occur. Scripts
//! that loop over runs append documents to one file, so a stream of documents is accepted too.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::json::{de_vec_f64, json_error, repair, strip_preamble};
use super::{ExportKind, ParseError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputTensor {
    pub name: String,
    /// As written: `1000x1x1`, `1x10`, `1`; empty for scalars.
    #[serde(default)]
    pub dimensions: String,
    #[serde(default, deserialize_with = "de_vec_f64")]
    pub values: Vec<f64>,
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl OutputTensor {
    /// The dimensions as numbers; `None` when a component is not a non-negative integer (dynamic `-1`
    /// cannot occur in an export, which is written after inference).
    pub fn dims(&self) -> Option<Vec<usize>> {
        let d = self.dimensions.trim();
        if d.is_empty() || d == "scalar" {
            return Some(Vec::new());
        }
        d.split('x').map(|p| p.trim().parse::<usize>().ok()).collect()
    }

    /// Element count implied by the dimensions.
    pub fn volume(&self) -> Option<usize> {
        self.dims()?.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

/// Parses one `--exportOutput` document. Text after the first document is an error; use
/// [`parse_export_output_stream`] for files several runs appended to.
pub fn parse_export_output(text: &str, origin: &str) -> Result<Vec<OutputTensor>, ParseError> {
    super::json::from_str_lenient(text, ExportKind::Output, origin)
}

/// Parses one or more concatenated `--exportOutput` documents, in order.
pub fn parse_export_output_stream(text: &str, origin: &str) -> Result<Vec<Vec<OutputTensor>>, ParseError> {
    let body = strip_preamble(text);
    let skipped = text.get(..text.len().saturating_sub(body.len())).map_or(0, |p| p.matches('\n').count());
    let strict: Result<Vec<Vec<OutputTensor>>, _> =
        serde_json::Deserializer::from_str(body).into_iter::<Vec<OutputTensor>>().collect();
    match strict {
        Ok(docs) => Ok(docs),
        Err(e) if !super::json::worth_repairing(&e, body) => Err(json_error(&e, ExportKind::Output, origin, skipped)),
        Err(e) => {
            let repaired = repair(body);
            serde_json::Deserializer::from_str(&repaired)
                .into_iter::<Vec<OutputTensor>>()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| json_error(&e, ExportKind::Output, origin, skipped))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_and_volume() {
        let t = OutputTensor { dimensions: "1000x1x1".into(), ..OutputTensor::default() };
        assert_eq!(t.dims(), Some(vec![1000, 1, 1]));
        assert_eq!(t.volume(), Some(1000));
        let bad = OutputTensor { dimensions: "1x-1".into(), ..OutputTensor::default() };
        assert_eq!(bad.dims(), None);
        let huge = OutputTensor { dimensions: "99999999999x99999999999x99999999999".into(), ..OutputTensor::default() };
        assert_eq!(huge.volume(), None);
    }

    #[test]
    fn stream_of_documents_with_nan() {
        let text = "[\n  { \"name\" : \"y\"\n  , \"dimensions\" : \"1x2\"\n  , \"values\" : [ 1, nan ]\n  }\n]\n[\n  { \"name\" : \"y\", \"dimensions\" : \"1x2\", \"values\" : [ 3, -inf ] }\n]\n";
        let docs = parse_export_output_stream(text, "o.json").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[0][0].values[1].is_nan());
        assert_eq!(docs[1][0].values, vec![3.0, f64::NEG_INFINITY]);
        assert!(parse_export_output(text, "o.json").is_err());
    }
}
