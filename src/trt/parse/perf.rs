//! The performance summary, in both layouts trtexec has used.
//!
//! 8.x–11.x (`printEpilog`, tensorrt.md §2.5), one line per metric:
//! `Latency: min = 0.0410156 ms, max = …, mean = …, median = …, percentile(90%) = …, …` — one
//! `percentile(P%)` per `--percentile` entry, numbers in C++ default float format (so `1.2e-05` happens).
//! 7.x (legacy), a header line per metric and one line per statistic:
//! `Host Latency` / `min: 3.05505 ms (end to end 3.06653 ms)` / … / `percentile: 3.4563 ms at 99% (…)`.

use serde::Serialize;
use std::collections::BTreeMap;

use super::json::parse_float_token;

/// One percentile: `p` in percent (90, 99.9) and its value in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentile {
    pub p: f64,
    pub value: f64,
}

/// Statistics of one metric, in ms. Each field is `None` when the log does not print it (7.x prints no
/// mean for Enqueue Time, and only the one percentile it was asked for).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    /// In printed order.
    pub percentiles: Vec<Percentile>,
}

impl Stats {
    pub fn percentile(&self, p: f64) -> Option<f64> {
        self.percentiles.iter().find(|x| (x.p - p).abs() < 1e-9).map(|x| x.value)
    }

    fn is_empty(&self) -> bool {
        self.min.is_none()
            && self.max.is_none()
            && self.mean.is_none()
            && self.median.is_none()
            && self.percentiles.is_empty()
    }

    fn set_percentile(&mut self, p: f64, value: f64) {
        match self.percentiles.iter_mut().find(|x| (x.p - p).abs() < 1e-9) {
            Some(x) => x.value = value,
            None => self.percentiles.push(Percentile { p, value }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryFormat {
    /// `=== Performance summary ===` with `Label: min = …` lines (8.x and later).
    Modern,
    /// 7.x: `Host Latency` / `min: …` blocks.
    Legacy,
}

/// The performance summary of a run. Times in ms unless the name says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfSummary {
    pub format: SummaryFormat,
    pub throughput_qps: Option<f64>,
    /// Host latency (H2D + compute + D2H); 7.x calls it `Host Latency`.
    pub latency: Option<Stats>,
    /// `End-to-End Host Latency` (8.0–8.2) or 7.x's `(end to end …)` figures.
    pub end_to_end: Option<Stats>,
    pub enqueue: Option<Stats>,
    pub h2d: Option<Stats>,
    pub gpu_compute: Option<Stats>,
    pub d2h: Option<Stats>,
    /// Metrics with labels this parser does not know, by label.
    pub other: BTreeMap<String, Stats>,
    pub total_host_walltime_s: Option<f64>,
    pub total_gpu_compute_s: Option<f64>,
    /// From `* GPU compute time is unstable, with coefficient of variance = X%.`
    pub gpu_compute_cov_percent: Option<f64>,
    /// `Warmup completed N queries over M ms`.
    pub warmup_queries: Option<u64>,
    pub warmup_ms: Option<f64>,
    /// `Timing trace has N queries over S s`.
    pub queries: Option<u64>,
    pub trace_duration_s: Option<f64>,
    /// trtexec's `* …` advice lines (enqueue-bound, transfer-bound, unstable).
    pub warnings: Vec<String>,
}

impl PerfSummary {
    fn new(format: SummaryFormat) -> Self {
        PerfSummary {
            format,
            throughput_qps: None,
            latency: None,
            end_to_end: None,
            enqueue: None,
            h2d: None,
            gpu_compute: None,
            d2h: None,
            other: BTreeMap::new(),
            total_host_walltime_s: None,
            total_gpu_compute_s: None,
            gpu_compute_cov_percent: None,
            warmup_queries: None,
            warmup_ms: None,
            queries: None,
            trace_duration_s: None,
            warnings: Vec::new(),
        }
    }

    /// True when the summary holds measured figures (not only the trace counts).
    pub fn has_measurements(&self) -> bool {
        self.throughput_qps.is_some()
            || [&self.latency, &self.enqueue, &self.h2d, &self.gpu_compute, &self.d2h, &self.end_to_end]
                .iter()
                .any(|s| s.as_ref().is_some_and(|s| !s.is_empty()))
            || !self.other.is_empty()
    }

    fn slot(&mut self, label: &str) -> &mut Stats {
        let slot = match label {
            "Latency" | "Host Latency" => &mut self.latency,
            "End-to-End Host Latency" | "End to End Host Latency" => &mut self.end_to_end,
            "Enqueue Time" => &mut self.enqueue,
            "H2D Latency" => &mut self.h2d,
            "GPU Compute Time" | "GPU Compute" => &mut self.gpu_compute,
            "D2H Latency" => &mut self.d2h,
            _ => return self.other.entry(label.to_string()).or_default(),
        };
        slot.get_or_insert_with(Stats::default)
    }

    fn end_to_end_slot(&mut self) -> &mut Stats {
        self.end_to_end.get_or_insert_with(Stats::default)
    }
}

/// Which 7.x block the following `min:`/`max:` lines belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegacyBlock {
    HostLatency,
    Enqueue,
    GpuCompute,
}

/// Accumulates the summary while the log is read line by line.
#[derive(Debug, Default)]
pub(crate) struct PerfParser {
    current: Option<PerfSummary>,
    legacy: Option<LegacyBlock>,
    /// Summaries with measurements that a later run's summary replaced.
    replaced: usize,
}

impl PerfParser {
    fn summary(&mut self, format: SummaryFormat) -> &mut PerfSummary {
        self.current.get_or_insert_with(|| PerfSummary::new(format))
    }

    /// A second summary means a second run in the same text: the later one wins.
    fn start_next_run(&mut self) {
        if self.current.as_ref().is_some_and(PerfSummary::has_measurements) {
            self.replaced += 1;
            self.current = Some(PerfSummary::new(SummaryFormat::Modern));
        }
    }

    /// Feeds one log message (tags already removed).
    pub(crate) fn feed(&mut self, message: &str) {
        let m = message.trim();
        if let Some(block) = self.legacy {
            if self.feed_legacy(block, m) {
                return;
            }
            self.legacy = None;
        }
        if m == "=== Performance summary ===" {
            self.start_next_run();
            self.summary(SummaryFormat::Modern).format = SummaryFormat::Modern;
            return;
        }
        match m {
            "Host Latency" => return self.start_legacy(LegacyBlock::HostLatency),
            "Enqueue Time" => return self.start_legacy(LegacyBlock::Enqueue),
            "GPU Compute" => return self.start_legacy(LegacyBlock::GpuCompute),
            _ => {}
        }
        if let Some(rest) = m.strip_prefix("Throughput:") {
            if let Some(v) = first_number(rest) {
                // Logs reduced by grep keep each run's summary lines but not their headers.
                if self.current.as_ref().is_some_and(|s| s.throughput_qps.is_some()) {
                    self.start_next_run();
                }
                self.summary(SummaryFormat::Modern).throughput_qps = Some(v);
            }
            return;
        }
        if let Some(rest) = m.strip_prefix("Total Host Walltime:") {
            if let Some(v) = first_number(rest) {
                self.summary(SummaryFormat::Modern).total_host_walltime_s = Some(v);
            }
            return;
        }
        if let Some(rest) = m.strip_prefix("Total GPU Compute Time:") {
            if let Some(v) = first_number(rest) {
                self.summary(SummaryFormat::Modern).total_gpu_compute_s = Some(v);
            }
            return;
        }
        if let Some(rest) = m.strip_prefix("Warmup completed ") {
            let (n, over) = counted_over(rest);
            if n.is_some() || over.is_some() {
                let s = self.summary(SummaryFormat::Modern);
                s.warmup_queries = n;
                s.warmup_ms = over;
            }
            return;
        }
        if let Some(rest) = m.strip_prefix("Timing trace has ") {
            let (n, over) = counted_over(rest);
            if n.is_some() || over.is_some() {
                let s = self.summary(SummaryFormat::Modern);
                s.queries = n;
                s.trace_duration_s = over;
            }
            return;
        }
        if let Some(rest) = m.strip_prefix("* ") {
            if let Some((_, cov)) = rest.split_once("coefficient of variance = ") {
                let s = self.summary(SummaryFormat::Modern);
                s.gpu_compute_cov_percent = first_number(cov.trim_end_matches(['.', '%']));
            }
            if self.current.is_some() || rest.contains("Throughput") || rest.contains("GPU compute") {
                self.summary(SummaryFormat::Modern).warnings.push(m.to_string());
            }
            return;
        }
        if let Some((label, stats)) = parse_stat_line(m) {
            let slot = self.summary(SummaryFormat::Modern).slot(label);
            *slot = stats;
        }
    }

    fn start_legacy(&mut self, block: LegacyBlock) {
        self.legacy = Some(block);
        let s = self.summary(SummaryFormat::Legacy);
        if !s.has_measurements() {
            s.format = SummaryFormat::Legacy;
        }
    }

    /// One line inside a 7.x block; false when the line does not belong to it.
    fn feed_legacy(&mut self, block: LegacyBlock, m: &str) -> bool {
        let Some((key, rest)) = m.split_once(':') else { return false };
        let key = key.trim();
        let rest = rest.trim();
        let s = self.summary(SummaryFormat::Legacy);
        match key {
            "throughput" => {
                s.throughput_qps = first_number(rest);
                return true;
            }
            "walltime" => {
                s.total_host_walltime_s = first_number(rest);
                return true;
            }
            "total compute time" => {
                s.total_gpu_compute_s = first_number(rest);
                return true;
            }
            "min" | "max" | "mean" | "median" | "percentile" => {}
            _ => return false,
        }
        let Some(value) = first_number(rest) else { return false };
        let percent = (key == "percentile").then(|| at_percent(rest)).flatten();
        let e2e = rest.split_once("(end to end ").and_then(|(_, e)| first_number(e));
        let label = match block {
            LegacyBlock::HostLatency => "Latency",
            LegacyBlock::Enqueue => "Enqueue Time",
            LegacyBlock::GpuCompute => "GPU Compute Time",
        };
        set_stat(s.slot(label), key, percent, value);
        if let Some(e) = e2e {
            set_stat(s.end_to_end_slot(), key, percent, e);
        }
        true
    }

    /// How many runs' summaries the text held so far; [`Self::finish`] gives the last one.
    pub(crate) fn runs(&self) -> usize {
        self.replaced + usize::from(self.current.as_ref().is_some_and(PerfSummary::has_measurements))
    }

    pub(crate) fn finish(self) -> Option<PerfSummary> {
        self.current
    }
}

fn set_stat(stats: &mut Stats, key: &str, percent: Option<f64>, value: f64) {
    match key {
        "min" => stats.min = Some(value),
        "max" => stats.max = Some(value),
        "mean" => stats.mean = Some(value),
        "median" => stats.median = Some(value),
        _ => {
            // 7.x prints "at 99%"; a missing percentage can only be its single default, 99.
            stats.set_percentile(percent.unwrap_or(99.0), value);
        }
    }
}

/// `3.4563 ms at 99% (end to end …)` → 99.
fn at_percent(rest: &str) -> Option<f64> {
    let (_, after) = rest.split_once(" at ")?;
    let p = after.split('%').next()?;
    parse_float_token(p)
}

fn first_number(s: &str) -> Option<f64> {
    parse_float_token(s.split_whitespace().next()?)
}

/// `3057 queries over 200 ms` → (3057, 200).
fn counted_over(rest: &str) -> (Option<u64>, Option<f64>) {
    let n = rest.split_whitespace().next().and_then(|w| w.parse().ok());
    let over = rest.split_once(" over ").and_then(|(_, o)| first_number(o));
    (n, over)
}

/// Parses `Label: min = X ms, max = …, percentile(90%) = … ms`. Only lines of that shape qualify, so other
/// `key: value` lines of the log never become metrics. An item that lost its ` = ` (pastes rendered as
/// markdown do that: `max 6.19507 ms`) is skipped and the rest of the line kept.
pub fn parse_stat_line(message: &str) -> Option<(&str, Stats)> {
    let (label, rest) = message.trim().split_once(": ")?;
    let rest = rest.trim();
    if !rest.starts_with("min = ") || label.is_empty() {
        return None;
    }
    let mut stats = Stats::default();
    for item in rest.split(", ") {
        let Some((key, value)) = item.split_once(" = ") else { continue };
        let v = first_number(value)?;
        match key.trim() {
            "min" => stats.min = Some(v),
            "max" => stats.max = Some(v),
            "mean" => stats.mean = Some(v),
            "median" => stats.median = Some(v),
            k => {
                let p = k.strip_prefix("percentile(")?.strip_suffix(')')?;
                let p = parse_float_token(p.trim_end_matches('%'))?;
                stats.set_percentile(p, v);
            }
        }
    }
    Some((label.trim(), stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_scientific_and_custom_percentiles() {
        let (label, s) = parse_stat_line(
            "H2D Latency: min = 1.2e-05 ms, max = 0.108398 ms, mean = 0.00395853 ms, median = 0.00378418 ms, percentile(50%) = 3e-3 ms, percentile(99.9%) = 0.00537109 ms",
        )
        .unwrap();
        assert_eq!(label, "H2D Latency");
        assert_eq!(s.min, Some(1.2e-05));
        assert_eq!(s.percentile(50.0), Some(0.003));
        assert_eq!(s.percentile(99.9), Some(0.00537109));
        assert_eq!(s.percentile(99.0), None);
    }

    #[test]
    fn stat_line_rejects_other_shapes() {
        assert!(parse_stat_line("Memory Pools: workspace: default").is_none());
        assert!(parse_stat_line("Latency: min = x ms").is_none());
        assert!(parse_stat_line("Latency: min = ").is_none());
        assert!(parse_stat_line(": min = 1 ms").is_none());
        assert!(parse_stat_line("Latency: min = 1 ms, percentile(%) = 2 ms").is_none());
    }

    #[test]
    fn stat_line_missing_equals_signs() {
        // Pasted without tags, some `=` lost to markdown:
        // https://github.com/beyondli/Yolo_on_Jetson/issues/4
        let read = |line| parse_stat_line(line).map(|(_, s)| (s.min, s.max, s.mean, s.median, s.percentiles.len()));
        assert_eq!(
            read("Latency: min = 5.38959 ms, max 6.19507 ms, mean 5.93288 ms, median 6.02185 ms, percentile(99%) 6.17407 ms "),
            Some((Some(5.38959), None, None, None, 0))
        );
        assert_eq!(
            read(
                "GPU Compute Time: min = 3.17834 ms, max = 3.88306 ms, mean = 3.63242 ms, median = 3.71753 ms, percentile(99%) 3.87793 ms "
            ),
            Some((Some(3.17834), Some(3.88306), Some(3.63242), Some(3.71753), 0))
        );
    }

    #[test]
    fn grep_reduced_runs_are_counted_and_the_last_one_wins() {
        // Three --infStreams runs reduced by grep to their summary lines, headers gone:
        // wili-65535/trt-samples-for-hackathon-cn@9bbf1807dc47a995d5d55233a9b24815b0ee81a7:cookbook/07-Tool/trtexec/result-16.log
        let mut p = PerfParser::default();
        for l in [
            "Throughput: 15588.9 qps",
            "GPU Compute Time: min = 0.0625 ms, max = 0.135742 ms, mean = 0.0627878 ms, median = 0.0627441 ms, percentile(90%) = 0.0629272 ms, percentile(95%) = 0.0629883 ms, percentile(99%) = 0.0629883 ms",
            "Total GPU Compute Time: 2.93652 s",
            "Throughput: 26358.6 qps",
            "GPU Compute Time: min = 0.0631104 ms, max = 0.180908 ms, mean = 0.0741643 ms, median = 0.0737305 ms, percentile(90%) = 0.0753174 ms, percentile(95%) = 0.0761719 ms, percentile(99%) = 0.0792236 ms",
            "Total GPU Compute Time: 5.86491 s",
            "Throughput: 42919.2 qps",
        ] {
            p.feed(l);
        }
        assert_eq!(p.runs(), 3);
        let s = p.finish().unwrap();
        assert_eq!(s.throughput_qps, Some(42919.2));
        assert_eq!(s.gpu_compute, None, "the third run's figures only");
        assert_eq!(s.total_gpu_compute_s, None);
    }

    #[test]
    fn single_percentile_and_inf_nan() {
        let (_, s) = parse_stat_line(
            "Latency: min = 0 ms, max = inf ms, mean = nan ms, median = 0 ms, percentile(99%) = -nan ms",
        )
        .unwrap();
        assert_eq!(s.max, Some(f64::INFINITY));
        assert!(s.mean.unwrap().is_nan());
        assert!(s.percentile(99.0).unwrap().is_nan());
    }

    #[test]
    fn legacy_block() {
        let mut p = PerfParser::default();
        for l in [
            "Host Latency",
            "min: 3.05505 ms (end to end 3.06653 ms)",
            "percentile: 3.4563 ms at 99% (end to end 3.47168 ms at 99%)",
            "throughput: 318.785 qps",
            "Enqueue Time",
            "median: 3.05493 ms",
            "GPU Compute",
            "percentile: 3.41711 ms at 99%",
            "total compute time: 2.92575 s",
        ] {
            p.feed(l);
        }
        let s = p.finish().unwrap();
        assert_eq!(s.format, SummaryFormat::Legacy);
        assert_eq!(s.latency.as_ref().unwrap().percentile(99.0), Some(3.4563));
        assert_eq!(s.end_to_end.as_ref().unwrap().min, Some(3.06653));
        assert_eq!(s.end_to_end.as_ref().unwrap().percentile(99.0), Some(3.47168));
        assert_eq!(s.enqueue.as_ref().unwrap().median, Some(3.05493));
        assert_eq!(s.enqueue.as_ref().unwrap().mean, None);
        assert_eq!(s.gpu_compute.as_ref().unwrap().percentile(99.0), Some(3.41711));
        assert_eq!(s.throughput_qps, Some(318.785));
        assert_eq!(s.total_gpu_compute_s, Some(2.92575));
    }
}
