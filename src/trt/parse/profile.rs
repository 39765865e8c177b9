//! Per-layer timing: the `--exportProfile` JSON and the `--dumpProfile` table of the log.
//!
//! JSON (`Profiler::exportJSONProfile`, unchanged 8.x–11.x): `[ { "count" : N }, { "name" : …, "timeMs" : …,
//! "averageMs" : …, "medianMs" : …, "percentage" : … }, … ]`. `count` is the number of profiled iterations.
//! 7.x wrote no `medianMs`, so every figure is optional.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::json::{de_opt_f64, from_str_lenient, parse_float_token};
use super::{ExportKind, ParseError};

/// One layer's timing, in ms (percentage of the total in percent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerTime {
    pub name: String,
    #[serde(rename = "timeMs", default, deserialize_with = "de_opt_f64")]
    pub time_ms: Option<f64>,
    #[serde(rename = "averageMs", default, deserialize_with = "de_opt_f64")]
    pub average_ms: Option<f64>,
    #[serde(rename = "medianMs", default, deserialize_with = "de_opt_f64")]
    pub median_ms: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub percentage: Option<f64>,
    /// Fields a newer trtexec may add.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A parsed `--exportProfile` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProfileExport {
    /// Profiled iterations (the leading `{ "count" : N }`); `None` if the file has no count element.
    pub count: Option<u64>,
    pub layers: Vec<LayerTime>,
}

impl ProfileExport {
    /// Sum of the layers' total times, ms.
    pub fn total_time_ms(&self) -> f64 {
        self.layers.iter().filter_map(|l| l.time_ms).filter(|t| t.is_finite()).sum()
    }

    pub fn layer(&self, name: &str) -> Option<&LayerTime> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// Every element as written; which kind it is is decided afterwards so that one odd element gives a
/// precise error instead of serde's "did not match any variant".
#[derive(Deserialize)]
struct RawElement {
    #[serde(default)]
    count: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

/// Parses the text of an `--exportProfile` file. `origin` names the file in errors.
pub fn parse_export_profile(text: &str, origin: &str) -> Result<ProfileExport, ParseError> {
    let raw: Vec<RawElement> = from_str_lenient(text, ExportKind::Profile, origin)?;
    let mut out = ProfileExport::default();
    for (i, el) in raw.into_iter().enumerate() {
        match (el.name, el.count) {
            (Some(name), _) => {
                let mut obj: serde_json::Map<String, serde_json::Value> = el.rest.into_iter().collect();
                obj.insert("name".into(), serde_json::Value::String(name));
                let layer: LayerTime =
                    serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| ParseError::Schema {
                        origin: origin.to_string(),
                        kind: ExportKind::Profile,
                        element: i,
                        problem: e.to_string(),
                    })?;
                out.layers.push(layer);
            }
            (None, Some(c)) => {
                let n = c.as_u64().or_else(|| c.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64));
                out.count = Some(n.ok_or_else(|| ParseError::Schema {
                    origin: origin.to_string(),
                    kind: ExportKind::Profile,
                    element: i,
                    problem: format!("count is not a non-negative integer: {c}"),
                })?);
            }
            (None, None) => {
                return Err(ParseError::Schema {
                    origin: origin.to_string(),
                    kind: ExportKind::Profile,
                    element: i,
                    problem: "element has neither \"count\" nor \"name\"".to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The `=== Profile (N iterations ) ===` table that `--dumpProfile` prints into the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProfileTable {
    pub iterations: Option<u64>,
    pub layers: Vec<LayerTime>,
    /// The closing `Total` row.
    pub total: Option<LayerTime>,
}

/// Column layout, from the header row: 10.x puts the name last (`Time(ms) Avg.(ms) Median(ms) Time(%) Layer`),
/// 8.x first and right-aligned (`Layer   Time (ms)   Avg. Time (ms)   Median Time (ms)   Time %`), 7.x had no
/// median column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableLayout {
    name_first: bool,
    columns: usize,
}

impl TableLayout {
    pub(crate) fn from_header(header: &str) -> Option<TableLayout> {
        let h = header.trim();
        if !h.contains("Layer") || !h.contains("Time") {
            return None;
        }
        let columns = h.matches("(ms)").count() + h.matches('%').count();
        (3..=4).contains(&columns).then_some(TableLayout { name_first: h.starts_with("Layer"), columns })
    }

    /// Parses one row; `None` for anything that is not a row of this layout.
    pub(crate) fn row(&self, message: &str) -> Option<LayerTime> {
        let m = message.trim();
        let (nums, name) =
            if self.name_first { trailing_numbers(m, self.columns)? } else { leading_numbers(m, self.columns)? };
        if name.is_empty() {
            return None;
        }
        let mut t = LayerTime { name: name.to_string(), ..LayerTime::default() };
        t.time_ms = nums.first().copied();
        t.average_ms = nums.get(1).copied();
        if self.columns == 4 {
            t.median_ms = nums.get(2).copied();
            t.percentage = nums.get(3).copied();
        } else {
            t.percentage = nums.get(2).copied();
        }
        Some(t)
    }
}

fn leading_numbers(m: &str, n: usize) -> Option<(Vec<f64>, &str)> {
    let mut rest = m;
    let mut nums = Vec::with_capacity(n);
    for _ in 0..n {
        let (tok, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        nums.push(parse_float_token(tok)?);
        rest = r.trim_start();
    }
    Some((nums, rest.trim_end()))
}

fn trailing_numbers(m: &str, n: usize) -> Option<(Vec<f64>, &str)> {
    let mut rest = m;
    let mut nums = Vec::with_capacity(n);
    for _ in 0..n {
        let (r, tok) = rest.rsplit_once(char::is_whitespace).unwrap_or(("", rest));
        nums.push(parse_float_token(tok)?);
        rest = r.trim_end();
    }
    nums.reverse();
    Some((nums, rest.trim_start()))
}

/// `=== Profile (18362 iterations ) ===` → Some(Some(18362)); not a profile header → None.
pub(crate) fn table_title(message: &str) -> Option<Option<u64>> {
    let rest = message.trim().strip_prefix("=== Profile (")?;
    Some(rest.split_whitespace().next().and_then(|n| n.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_x_rows_keep_spaces_in_names() {
        let l = TableLayout::from_header("   Time(ms)     Avg.(ms)   Median(ms)   Time(%)   Layer").unwrap();
        let r = l
            .row("     101.96       0.0056       0.0044       6.7   Reformatting CopyNode for Input Tensor 0 to {ForeignNode[a...b]}")
            .unwrap();
        assert_eq!(r.name, "Reformatting CopyNode for Input Tensor 0 to {ForeignNode[a...b]}");
        assert_eq!(
            (r.time_ms, r.average_ms, r.median_ms, r.percentage),
            (Some(101.96), Some(0.0056), Some(0.0044), Some(6.7))
        );
    }

    #[test]
    fn eight_x_and_seven_x_rows() {
        let l = TableLayout::from_header("   Layer   Time (ms)   Avg. Time (ms)   Median Time (ms)   Time %").unwrap();
        let r = l.row("   Conv_0 + Relu_1        1.23       0.0123       0.0120        4.5").unwrap();
        assert_eq!(r.name, "Conv_0 + Relu_1");
        assert_eq!(r.median_ms, Some(0.0120));
        let l7 = TableLayout::from_header("Layer   Time (ms)   Avg. Time (ms)   Time %").unwrap();
        let r = l7.row("conv1 3 0.3 12.5").unwrap();
        assert_eq!((r.median_ms, r.percentage), (None, Some(12.5)));
        assert!(l7.row("1 2 3").is_none());
        assert!(l7.row("").is_none());
    }

    #[test]
    fn json_with_nan_and_unescaped_quote() {
        let text = "[\n  { \"count\" : 2 }\n, { \"name\" : \"a \"q\" b\", \"timeMs\" : nan, \"averageMs\" : 1, \"medianMs\" : -inf, \"percentage\" : 0 }\n]\n";
        let p = parse_export_profile(text, "p.json").unwrap();
        assert_eq!(p.count, Some(2));
        assert_eq!(p.layers[0].name, "a \"q\" b");
        assert!(p.layers[0].time_ms.unwrap().is_nan());
        assert_eq!(p.layers[0].median_ms, Some(f64::NEG_INFINITY));
    }

    #[test]
    fn json_errors_are_located() {
        let e = parse_export_profile("[\n{ \"count\" : 1 }\n, { \"timeMs\" : 1 }\n]", "p.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.json: element 1 of the profile export (--exportProfile): element has neither \"count\" nor \"name\""
        );
        let e = parse_export_profile("[\n{ \"count\" : 1 }\n, { \"name\" \"x\" }\n]", "p.json").unwrap_err();
        assert!(e.to_string().starts_with("p.json:3:"), "{e}");
        let e = parse_export_profile("[{\"count\": -1}]", "p.json").unwrap_err();
        assert!(e.to_string().contains("count is not a non-negative integer"), "{e}");
    }
}
