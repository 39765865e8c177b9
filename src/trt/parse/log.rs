//! A whole trtexec log (stdout, stderr or both, any version 7.x–11.x) read into one summary, and the
//! stable `parse-trtexec --json` contract built from it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::banner::{Banner, BannerKind};
use super::device::DeviceInfo;
use super::failure::{Failure, FailureClass, classify_failure};
use super::layer_info::{LayerInfo, parse_layer_dump};
use super::line::{LogLine, Severity};
use super::perf::{PerfParser, PerfSummary, Stats};
use super::profile::{ProfileTable, TableLayout, table_title};
use super::version::TrtVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
}

/// A logged line kept for reporting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogMessage {
    /// 1-based.
    pub line: usize,
    pub text: String,
}

/// Everything the parser understood in one log. When the text holds several runs (scripts that append),
/// the last run's banner, trailer, device block and summary win.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrtexecLog {
    /// From the RUNNING banner, else the PASSED/FAILED trailer, else the `TensorRT version: x.y.z` line.
    /// `None` for 7.x, whose banner has no version tag.
    pub version: Option<TrtVersion>,
    /// `Passed` only with a `&&&& PASSED` trailer; a missing trailer means the run did not finish.
    pub status: Status,
    /// Why the run failed; `None` when it passed.
    pub failure: Option<Failure>,
    pub banner: Option<Banner>,
    pub trailer: Option<Banner>,
    /// Number of `&&&& RUNNING` banners seen.
    pub runs: usize,
    pub device: Option<DeviceInfo>,
    /// The `=== … Options ===` blocks: section name (`Build Options`) → key → value as printed.
    pub options: BTreeMap<String, BTreeMap<String, String>>,
    pub perf: Option<PerfSummary>,
    /// The `--dumpProfile` table.
    pub profile: Option<ProfileTable>,
    /// The `--dumpLayerInfo` text.
    pub layer_info: Option<LayerInfo>,
    /// `[E]`/`[F]` lines, in order.
    pub errors: Vec<LogMessage>,
    pub warning_count: usize,
    /// `Skipped inference phase since --skipInference is added.`
    pub skipped_inference: bool,
    /// The profiler was on without `--separateProfileRun`, so trtexec withheld the summary on purpose.
    pub e2e_timing_not_reported: bool,
    /// `Engine built in X sec.`
    pub engine_build_s: Option<f64>,
    /// `Created engine with size: X MiB` (10.x).
    pub engine_size_mib: Option<f64>,
    /// The text is `trtexec --help` output, not a run.
    pub help_output: bool,
}

enum Section<'a> {
    None,
    Options(String),
    Device,
    ProfileHeader,
    ProfileRows(TableLayout),
    LayerDump(Vec<&'a str>),
}

impl TrtexecLog {
    /// Reads any text; never fails and never panics. Use [`super::parse_log`] to reject text that is not
    /// trtexec output at all.
    pub fn parse(text: &str) -> TrtexecLog {
        let mut log = TrtexecLog {
            version: None,
            status: Status::Failed,
            failure: None,
            banner: None,
            trailer: None,
            runs: 0,
            device: None,
            options: BTreeMap::new(),
            perf: None,
            profile: None,
            layer_info: None,
            errors: Vec::new(),
            warning_count: 0,
            skipped_inference: false,
            e2e_timing_not_reported: false,
            engine_build_s: None,
            engine_size_mib: None,
            help_output: false,
        };
        let mut perf = PerfParser::default();
        let mut version_line: Option<TrtVersion> = None;
        let mut section = Section::None;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            if raw.contains("&&&& ")
                && let Some(b) = Banner::parse(number, raw)
            {
                finish_dump(&mut section, &mut log);
                match b.kind {
                    BannerKind::Running => {
                        log.runs += 1;
                        log.banner = Some(b);
                    }
                    _ => log.trailer = Some(b),
                }
                section = Section::None;
                continue;
            }
            let l = LogLine::parse(number, raw);
            if let Section::LayerDump(lines) = &mut section {
                if !l.is_log() {
                    lines.push(l.raw);
                    continue;
                }
                if l.text() == "Layers:" {
                    continue;
                }
                finish_dump(&mut section, &mut log);
            }
            let Some(sev) = l.severity else { continue };
            let msg = l.message;
            let t = l.text();
            match sev {
                Severity::Error | Severity::Fatal => {
                    log.errors.push(LogMessage { line: number, text: t.to_string() });
                }
                Severity::Warning => log.warning_count += 1,
                _ => {}
            }
            if matches!(sev, Severity::Info | Severity::Warning) {
                perf.feed(msg);
            }
            if let Some(name) = t.strip_prefix("=== ").and_then(|r| r.strip_suffix(" ===")) {
                section = if name == "Device Information" {
                    log.device = Some(DeviceInfo::default());
                    Section::Device
                } else if name.ends_with("Options") {
                    log.options.entry(name.to_string()).or_default();
                    Section::Options(name.to_string())
                } else if let Some(iterations) = table_title(t) {
                    log.profile = Some(ProfileTable { iterations, ..ProfileTable::default() });
                    Section::ProfileHeader
                } else {
                    Section::None
                };
                continue;
            }
            match &mut section {
                Section::Device => {
                    let taken = sev == Severity::Info
                        && !l.from_trt
                        && log.device.get_or_insert_with(DeviceInfo::default).take_line(msg);
                    if taken {
                        continue;
                    }
                    section = Section::None;
                }
                Section::Options(name) => {
                    if sev != Severity::Info || l.from_trt || t.is_empty() {
                        section = Section::None;
                    } else {
                        if let Some((k, v)) = t.split_once(':') {
                            log.options
                                .entry(name.clone())
                                .or_default()
                                .insert(k.trim().to_string(), v.trim().to_string());
                        }
                        continue;
                    }
                }
                Section::ProfileHeader => {
                    if let Some(layout) = TableLayout::from_header(msg) {
                        section = Section::ProfileRows(layout);
                        continue;
                    }
                    if !t.is_empty() {
                        section = Section::None;
                    }
                }
                Section::ProfileRows(layout) => match (t.is_empty(), layout.row(msg)) {
                    (false, Some(row)) => {
                        let table = log.profile.get_or_insert_with(ProfileTable::default);
                        if row.name == "Total" {
                            table.total = Some(row);
                        } else {
                            table.layers.push(row);
                        }
                        continue;
                    }
                    _ => section = Section::None,
                },
                Section::LayerDump(_) | Section::None => {}
            }
            if sev != Severity::Info {
                continue;
            }
            if t == "Layer Information:" {
                section = Section::LayerDump(Vec::new());
            } else if t.starts_with("Skipped inference phase") {
                log.skipped_inference = true;
            } else if t.starts_with("The e2e network timing is not reported") {
                log.e2e_timing_not_reported = true;
            } else if let Some(rest) = t.strip_prefix("Engine built in ") {
                log.engine_build_s = first_number(rest);
            } else if let Some(rest) = t.strip_prefix("Created engine with size: ") {
                log.engine_size_mib = first_number(rest);
            } else if let Some(rest) = t.strip_prefix("TensorRT version: ") {
                version_line = TrtVersion::from_dotted(rest.trim()).ok();
            }
        }
        finish_dump(&mut section, &mut log);

        log.perf = perf.finish();
        log.version = log
            .banner
            .as_ref()
            .and_then(|b| b.version)
            .or_else(|| log.trailer.as_ref().and_then(|b| b.version))
            .or(version_line);
        log.help_output = log
            .banner
            .as_ref()
            .is_some_and(|b| b.args.iter().any(|a| a == "--help" || a == "-h") && log.trailer.is_none());
        log.status = match log.trailer.as_ref().map(|b| b.kind) {
            Some(BannerKind::Passed) => Status::Passed,
            _ => Status::Failed,
        };
        if log.status == Status::Failed {
            log.failure = Some(log.explain_failure(text));
        }
        log
    }

    fn explain_failure(&self, text: &str) -> Failure {
        if let Some(f) = classify_failure(text) {
            return f;
        }
        if self.help_output {
            let mut f = Failure::new(FailureClass::Other);
            f.message = Some("this is `trtexec --help` output, not a run".to_string());
            return f;
        }
        match (&self.trailer, self.errors.first()) {
            (None, _) => Failure::new(FailureClass::Incomplete),
            (Some(t), _) if t.kind == BannerKind::Waived => {
                let mut f = Failure::new(FailureClass::Other);
                f.line = Some(t.line);
                f.message = Some("trtexec reported WAIVED: nothing was run".to_string());
                f
            }
            (Some(_), Some(e)) => {
                let mut f = Failure::new(FailureClass::Other);
                f.line = Some(e.line);
                f.message = Some(e.text.clone());
                f
            }
            (Some(t), None) => {
                let mut f = Failure::new(FailureClass::Other);
                f.line = Some(t.line);
                f.message = Some(
                    "no [E] line in the output: trtexec writes errors to stderr, which was probably not captured"
                        .to_string(),
                );
                f
            }
        }
    }

    /// True when the text looked like trtexec output: a `&&&&` line, a tagged log line or a summary.
    pub fn is_trtexec_output(&self) -> bool {
        self.banner.is_some()
            || self.trailer.is_some()
            || self.perf.is_some()
            || self.device.is_some()
            || !self.options.is_empty()
            || self.version.is_some()
            || !self.errors.is_empty()
            || self.warning_count > 0
    }

    /// The arguments trtexec was run with, from the banner (or the trailer when the head is missing).
    pub fn trtexec_args(&self) -> Option<&[String]> {
        let b = self.banner.as_ref().or(self.trailer.as_ref())?;
        b.command.as_ref().map(|_| b.args.as_slice())
    }

    /// The `parse-trtexec --json` document. The contract keys come first and always all appear (a value
    /// the log lacks is `null`, including every statistic of a run without a performance summary); the
    /// extras `failure_hint`, `device` and `trtexec_args` follow.
    pub fn to_contract_json(&self) -> ContractJson {
        let perf = self.perf.as_ref();
        ContractJson {
            tensorrt_version: self.version.map(|v| v.to_string()),
            status: self.status,
            failure: self.failure.as_ref().map(|f| f.class),
            perf: perf.map(|p| ContractPerf {
                throughput_qps: p.throughput_qps.filter(|v| v.is_finite()),
                latency_ms: ContractStats::from(p.latency.as_ref()),
                gpu_compute_ms: ContractStats::from(p.gpu_compute.as_ref()),
            }),
            failure_hint: self.failure.as_ref().map(|f| f.hint.to_string()),
            device: self.device.as_ref().map(|d| ContractDevice {
                name: d.name.clone(),
                compute_capability: d.compute_capability.clone(),
                sm_count: d.sm_count,
                memory_mib: d.global_memory_mib,
            }),
            trtexec_args: self.trtexec_args().map(<[String]>::to_vec),
        }
    }
}

fn finish_dump(section: &mut Section<'_>, log: &mut TrtexecLog) {
    if let Section::LayerDump(lines) = section {
        if lines.iter().any(|l| !l.trim().is_empty()) {
            log.layer_info = Some(parse_layer_dump(lines));
        }
        *section = Section::None;
    }
}

fn first_number(s: &str) -> Option<f64> {
    super::json::parse_float_token(s.split_whitespace().next()?)
}

/// The `parse-trtexec --json` contract (PRODUCT.md, "Command line"): `tensorrt_version, status, failure, perf {…}`,
/// then extras. Field order is the output order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractJson {
    pub tensorrt_version: Option<String>,
    pub status: Status,
    pub failure: Option<FailureClass>,
    /// Null when the log has no performance summary (a failed build, `--skipInference`); inside it, null for a
    /// number the log does not print (7.x has no p90/p95).
    pub perf: Option<ContractPerf>,
    pub failure_hint: Option<String>,
    pub device: Option<ContractDevice>,
    pub trtexec_args: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractPerf {
    pub throughput_qps: Option<f64>,
    pub latency_ms: ContractStats,
    pub gpu_compute_ms: ContractStats,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContractStats {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl ContractStats {
    fn from(s: Option<&Stats>) -> Self {
        let Some(s) = s else { return ContractStats::default() };
        // JSON has no NaN/inf; a non-finite figure is reported as absent.
        let f = |v: Option<f64>| v.filter(|x| x.is_finite());
        ContractStats {
            min: f(s.min),
            max: f(s.max),
            mean: f(s.mean),
            median: f(s.median),
            p90: f(s.percentile(90.0)),
            p95: f(s.percentile(95.0)),
            p99: f(s.percentile(99.0)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractDevice {
    pub name: Option<String>,
    pub compute_capability: Option<String>,
    pub sm_count: Option<u32>,
    pub memory_mib: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_option_run_on_eleven() {
        // The shape tensorrt.md §2.4 describes: help text on stdout, then the error and the trailer.
        let text = "&&&& RUNNING TensorRT.trtexec [TensorRT v110100] [b106] # trtexec --onnx=m.onnx --fp16\n\
                    === Model Options ===\n  --onnx=<file>   ONNX model\n\
                    [08/27/2026-12:22:06] [E] Unknown option: --fp16\n\
                    &&&& FAILED TensorRT.trtexec [TensorRT v110100] [b106] # trtexec --onnx=m.onnx --fp16\n";
        let log = TrtexecLog::parse(text);
        assert_eq!(log.status, Status::Failed);
        let f = log.failure.as_ref().unwrap();
        assert_eq!(f.class, FailureClass::UnknownOption);
        assert_eq!(f.option.as_deref(), Some("--fp16"));
        assert_eq!(f.line, Some(4));
        let j = serde_json::to_value(log.to_contract_json()).unwrap();
        assert_eq!(j["failure"], "unknown_option");
        assert_eq!(j["tensorrt_version"], "11.1.0");
        assert!(j["perf"]["latency_ms"]["p99"].is_null());
    }

    #[test]
    fn stdout_only_failure_after_bare_timestamps() {
        // stderr discarded: the [E] lines are gone and the trailer follows timestamps of lost lines.
        let text = "&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=m.onnx\n\
                    [02/26/2024-10:43:06] [I] Start parsing network model\n\
                    [02/26/2024-10:43:07] [02/26/2024-10:43:07] &&&& FAILED TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=m.onnx\n";
        let log = TrtexecLog::parse(text);
        assert_eq!(log.status, Status::Failed);
        assert_eq!(log.trailer.as_ref().unwrap().line, 3);
        let f = log.failure.unwrap();
        assert_eq!(f.class, FailureClass::Other);
        assert!(f.message.unwrap().contains("stderr"));
    }

    #[test]
    fn killed_build_has_no_trailer() {
        let log = TrtexecLog::parse(
            "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --onnx=m.onnx\n\
             [09/01/2026-10:00:00] [I] [TRT] Local timing cache in use.\nKilled\n",
        );
        assert_eq!(log.version, Some(TrtVersion::new(10, 3, 0)));
        assert_eq!(log.failure.unwrap().class, FailureClass::Killed);
        let cut = TrtexecLog::parse("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec\n[I] x\n");
        assert_eq!(cut.failure.unwrap().class, FailureClass::Incomplete);
    }

    #[test]
    fn version_from_line_when_banner_is_missing() {
        let log = TrtexecLog::parse("[07/07/2026-02:10:45] [I] TensorRT version: 10.3.0\n");
        assert_eq!(log.version, Some(TrtVersion::new(10, 3, 0)));
        assert!(log.is_trtexec_output());
        assert!(!TrtexecLog::parse("hello\nworld").is_trtexec_output());
    }
}
