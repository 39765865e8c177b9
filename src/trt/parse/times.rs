//! `--exportTimes` JSON: one object per timed iteration, warm-ups excluded, times in ms from trtexec's
//! start.
//!
//! 8.x–11.x keys: `startEnqMs endEnqMs startH2dMs endH2dMs startComputeMs endComputeMs startD2hMs endD2hMs
//! h2dMs computeMs d2hMs latencyMs` (tensorrt.md §2.6; the writer's comment shows stale names). 7.x named the
//! transfers `In`/`Out` (`startInMs`, `inMs`, `outMs`) and added `endToEndMs`; those are read as aliases.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::json::{de_opt_f64, from_str_lenient};
use super::perf::{Percentile, Stats};
use super::{ExportKind, ParseError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingRecord {
    #[serde(rename = "startEnqMs", default, deserialize_with = "de_opt_f64")]
    pub start_enq_ms: Option<f64>,
    #[serde(rename = "endEnqMs", default, deserialize_with = "de_opt_f64")]
    pub end_enq_ms: Option<f64>,
    #[serde(rename = "startH2dMs", alias = "startInMs", default, deserialize_with = "de_opt_f64")]
    pub start_h2d_ms: Option<f64>,
    #[serde(rename = "endH2dMs", alias = "endInMs", default, deserialize_with = "de_opt_f64")]
    pub end_h2d_ms: Option<f64>,
    #[serde(rename = "startComputeMs", default, deserialize_with = "de_opt_f64")]
    pub start_compute_ms: Option<f64>,
    #[serde(rename = "endComputeMs", default, deserialize_with = "de_opt_f64")]
    pub end_compute_ms: Option<f64>,
    #[serde(rename = "startD2hMs", alias = "startOutMs", default, deserialize_with = "de_opt_f64")]
    pub start_d2h_ms: Option<f64>,
    #[serde(rename = "endD2hMs", alias = "endOutMs", default, deserialize_with = "de_opt_f64")]
    pub end_d2h_ms: Option<f64>,
    #[serde(rename = "h2dMs", alias = "inMs", default, deserialize_with = "de_opt_f64")]
    pub h2d_ms: Option<f64>,
    #[serde(rename = "computeMs", default, deserialize_with = "de_opt_f64")]
    pub compute_ms: Option<f64>,
    #[serde(rename = "d2hMs", alias = "outMs", default, deserialize_with = "de_opt_f64")]
    pub d2h_ms: Option<f64>,
    #[serde(rename = "latencyMs", default, deserialize_with = "de_opt_f64")]
    pub latency_ms: Option<f64>,
    #[serde(rename = "endToEndMs", default, deserialize_with = "de_opt_f64", skip_serializing_if = "Option::is_none")]
    pub end_to_end_ms: Option<f64>,
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl TimingRecord {
    /// Host time spent in enqueue, ms.
    pub fn enqueue_ms(&self) -> Option<f64> {
        Some(self.end_enq_ms? - self.start_enq_ms?)
    }
}

/// Parses the text of an `--exportTimes` file.
pub fn parse_export_times(text: &str, origin: &str) -> Result<Vec<TimingRecord>, ParseError> {
    from_str_lenient(text, ExportKind::Times, origin)
}

/// Statistics over the finite values of `values` in the way trtexec reports them: median and percentiles
/// by rank on the ascending values, index N−1−⌊N·(100−P)/100⌋ (trtexec's `findPercentile`, in f64). Lets a
/// caller recompute GPU compute percentiles from `--exportTimes` when the log summary is missing (the
/// `--exportProfile` without `--separateProfileRun` case).
pub fn stats_of(values: impl IntoIterator<Item = f64>, percentiles: &[f64]) -> Option<Stats> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    let ps = percentiles
        .iter()
        .filter(|p| (0.0..=100.0).contains(*p))
        .map(|&p| {
            let from_top = ((n as f64) * (100.0 - p) / 100.0).floor() as usize;
            let idx = n.saturating_sub(1).saturating_sub(from_top.min(n - 1));
            Percentile { p, value: v[idx] }
        })
        .collect();
    Some(Stats {
        min: v.first().copied(),
        max: v.last().copied(),
        mean: Some(mean),
        median: Some(median),
        percentiles: ps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The record shape from tensorrt.md §2.6 (documented example, not a captured file).
    const DOC_EXAMPLE: &str = r#"[
  { "startEnqMs" : 4.11322, "endEnqMs" : 4.15291, "startH2dMs" : 4.02022, "endH2dMs" : 4.02022, "startComputeMs" : 4.02022, "endComputeMs" : 4.92954, "startD2hMs" : 4.92954, "endD2hMs" : 4.92954, "h2dMs" : 0, "computeMs" : 0.909312, "d2hMs" : 0, "latencyMs" : 0.909312 }
, { "startEnqMs" : 5.0, "endEnqMs" : 5.5, "startH2dMs" : 5.0, "endH2dMs" : 5.1, "startComputeMs" : 5.1, "endComputeMs" : 6.1, "startD2hMs" : 6.1, "endD2hMs" : 6.2, "h2dMs" : 0.1, "computeMs" : 1, "d2hMs" : nan, "latencyMs" : 1.2 }
]
"#;

    #[test]
    fn documented_record_shape() {
        let t = parse_export_times(DOC_EXAMPLE, "t.json").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].compute_ms, Some(0.909312));
        assert_eq!(t[0].h2d_ms, Some(0.0));
        assert!(t[1].d2h_ms.unwrap().is_nan());
        assert!((t[0].enqueue_ms().unwrap() - 0.03969).abs() < 1e-9);
    }

    #[test]
    fn seven_x_aliases() {
        let t = parse_export_times(
            r#"[{ "startEnqMs" : 1, "endEnqMs" : 2, "startInMs" : 3, "endInMs" : 4, "startComputeMs" : 4, "endComputeMs" : 5, "startOutMs" : 5, "endOutMs" : 6, "inMs" : 1, "computeMs" : 1, "outMs" : 1, "latencyMs" : 3, "endToEndMs" : 3.5 }]"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(t[0].start_h2d_ms, Some(3.0));
        assert_eq!(t[0].d2h_ms, Some(1.0));
        assert_eq!(t[0].end_to_end_ms, Some(3.5));
    }

    #[test]
    fn stats_nearest_rank() {
        let s = stats_of((1..=100).map(f64::from), &[90.0, 99.0, 100.0, 0.0]).unwrap();
        assert_eq!(s.min, Some(1.0));
        assert_eq!(s.median, Some(50.5));
        assert_eq!(s.percentile(90.0), Some(90.0));
        assert_eq!(s.percentile(99.0), Some(99.0));
        // trtexec's convention: 100 is the slowest query, 0 the fastest.
        assert_eq!(s.percentile(100.0), Some(100.0));
        assert_eq!(s.percentile(0.0), Some(1.0));
        assert!(stats_of([f64::NAN], &[99.0]).is_none());
        assert_eq!(stats_of([2.0], &[99.0]).unwrap().percentile(99.0), Some(2.0));
    }
}
