//! A whole trtexec log (stdout, stderr or both, any version 7.x–11.x) read into one summary, and the
//! stable `parse-trtexec --json` contract built from it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::banner::{Banner, BannerKind};
use super::device::DeviceInfo;
use super::failure::{Failure, FailureClass, classify_failure, is_follow_up_error};
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
    /// Number of runs' performance summaries seen; `perf` is the last one.
    pub perf_runs: usize,
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
    /// `[I]` and `[V]` lines.
    pub info_count: usize,
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
            perf_runs: 0,
            device: None,
            options: BTreeMap::new(),
            perf: None,
            profile: None,
            layer_info: None,
            errors: Vec::new(),
            warning_count: 0,
            info_count: 0,
            skipped_inference: false,
            e2e_timing_not_reported: false,
            engine_build_s: None,
            engine_size_mib: None,
            help_output: false,
        };
        let mut perf = PerfParser::default();
        let mut version_line: Option<TrtVersion> = None;
        let mut section = Section::None;
        let mut untagged_summary = false;
        let lines: Vec<&str> = text.lines().collect();
        let mut continuation_taken = false;
        for (index, &raw) in lines.iter().enumerate() {
            let number = index + 1;
            if std::mem::take(&mut continuation_taken) {
                continue;
            }
            let wrapped = lines.get(index + 1).and_then(|next| joined_command(raw, next));
            if raw.contains("&&&& ")
                && let Some(b) = Banner::parse(number, wrapped.as_deref().unwrap_or(raw))
            {
                continuation_taken = wrapped.is_some();
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
            let Some(sev) = l.severity else {
                // A summary pasted without its `[date] [I] ` prefixes: the header is the evidence that the
                // untagged lines after it are summary lines.
                untagged_summary |= l.text() == "=== Performance summary ===";
                if untagged_summary {
                    perf.feed(l.message);
                }
                continue;
            };
            untagged_summary = false;
            let msg = l.message;
            let t = l.text();
            match sev {
                Severity::Error | Severity::Fatal => {
                    log.errors.push(LogMessage { line: number, text: t.to_string() });
                }
                Severity::Warning => log.warning_count += 1,
                Severity::Info | Severity::Verbose => log.info_count += 1,
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

        log.perf_runs = perf.runs();
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
        // trtexec follows the cause with generic lines (`Building engine failed`, `Engine set up failed`);
        // the cause is the better evidence, and it explains the failure whether or not the trailer was captured.
        let evidence = self.errors.iter().find(|e| !is_follow_up_error(&e.text)).or(self.errors.first());
        match (&self.trailer, evidence) {
            (Some(t), _) if t.kind == BannerKind::Waived => {
                let mut f = Failure::new(FailureClass::Other);
                f.line = Some(t.line);
                f.message = Some("trtexec reported WAIVED: nothing was run".to_string());
                f
            }
            (None, None) => self.incomplete(),
            (_, Some(e)) => {
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

    /// No trailer and no error: say whether the run got as far as its summary, because then the capture,
    /// not trtexec, was cut short.
    fn incomplete(&self) -> Failure {
        let mut f = Failure::new(FailureClass::Incomplete);
        if self.perf.as_ref().is_some_and(PerfSummary::has_measurements) {
            let runs = match self.perf_runs {
                0 | 1 => String::new(),
                n => format!(" ({n} runs' summaries; the last one is reported)"),
            };
            f.message = Some(format!(
                "the capture ends without trtexec's closing `&&&&` line although a performance summary was read: \
                 the run likely finished and the capture is partial{runs}"
            ));
        }
        f
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
            || self.info_count > 0
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

    /// The whole `parse-trtexec --json` document: the contract, then the evidence behind `failure` and the
    /// number of runs.
    pub fn to_report_json(&self) -> ReportJson {
        ReportJson {
            contract: self.to_contract_json(),
            failure_message: self.failure.as_ref().and_then(|f| f.message.clone()),
            failure_line: self.failure.as_ref().and_then(|f| f.line),
            runs: self.runs.max(self.perf_runs),
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

/// A `&&&&` line that a paste wrapped, joined with its continuation: `… --noDataTransfers --du` then
/// `mpProfile --separateProfileRun`. Only a long command line wraps, and only into a line that is no log,
/// banner or shell line of its own.
fn joined_command(banner: &str, next: &str) -> Option<String> {
    const WRAP_WIDTH: usize = 80;
    if banner.len() < WRAP_WIDTH || !banner.contains("&&&& ") || !banner.contains(" # ") {
        return None;
    }
    // A wrapped argument goes on with a letter, a digit or a dash; markdown fences and indented output don't.
    let fragment = next.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
        && !next.contains("&&&&")
        && !next.contains(['[', ']', '\t'])
        && !next.contains(": ")
        && !LogLine::parse(0, next).is_log();
    if !fragment {
        return None;
    }
    // A wrap at a space may have lost the space; a wrap inside a word must not gain one.
    let separator = if next.starts_with('-') && !banner.ends_with(char::is_whitespace) { " " } else { "" };
    Some(format!("{banner}{separator}{next}"))
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

/// [`ContractJson`] with what the contract leaves out: the failure's evidence and the run count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportJson {
    #[serde(flatten)]
    pub contract: ContractJson,
    /// The evidence (the line's message), or a note on why there is none.
    pub failure_message: Option<String>,
    /// 1-based line of the evidence.
    pub failure_line: Option<usize>,
    /// Runs in the text (`&&&& RUNNING` banners or performance summaries, whichever are more); the figures
    /// are the last run's.
    pub runs: usize,
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
    fn errors_explain_a_run_without_trailer() {
        // Build failure pasted without banner or trailer: https://github.com/Tencent-Hunyuan/HunyuanDiT/issues/159
        let log = TrtexecLog::parse(
            "[07/18/2024-07:49:33] [E] Cannot find input tensor with name \"encoder_hidden_states\" in the network inputs! Please make sure the input tensor names are correct.\n\
             [07/18/2024-07:49:33] [E] Network And Config setup failed\n\
             [07/18/2024-07:49:33] [E] Building engine failed\n\
             [07/18/2024-07:49:33] [E] Failed to create engine from model or file.\n\
             [07/18/2024-07:49:33] [E] Engine set up failed\n",
        );
        let f = log.failure.unwrap();
        assert_eq!((f.class, f.line), (FailureClass::Other, Some(1)));
        assert!(f.message.unwrap().starts_with("Cannot find input tensor with name"));

        // Calibration dying on the GPU: https://github.com/NVIDIA/TensorRT/issues/4092
        let log = TrtexecLog::parse(
            "[08/20/2024-16:16:08] [I] [TRT] Starting Calibration.\n\
             [08/20/2024-16:16:08] [E] Error[1]: [executionContext.cpp::executeInternal::966] Error Code 1: Cuda Runtime (an illegal memory access was encountered)\n\
             [08/20/2024-16:16:08] [E] Error[1]: [cudaDriverHelpers.cpp::operator()::30] Error Code 1: Cuda Driver (an illegal memory access was encountered)\n",
        );
        let f = log.failure.unwrap();
        assert_eq!((f.class, f.line), (FailureClass::Other, Some(2)));
        assert!(f.message.unwrap().ends_with("Cuda Runtime (an illegal memory access was encountered)"));

        // Only the generic lines: the first of them is still better evidence than none.
        let log = TrtexecLog::parse("[07/18/2024-07:49:33] [E] Building engine failed\n");
        assert_eq!(log.failure.unwrap().line, Some(1));
    }

    #[test]
    fn summary_without_trailer_says_the_capture_is_partial() {
        // Three --infStreams runs reduced by grep:
        // wili-65535/trt-samples-for-hackathon-cn@9bbf1807dc47a995d5d55233a9b24815b0ee81a7:cookbook/07-Tool/trtexec/result-16.log
        let text = "--- infStreams=1\n\
                    [08/27/2026-12:22:10] [I] Throughput: 15588.9 qps\n\
                    [08/27/2026-12:22:10] [I] Total GPU Compute Time: 2.93652 s\n\
                    --- infStreams=2\n\
                    [08/27/2026-12:22:13] [I] Throughput: 26358.6 qps\n\
                    [08/27/2026-12:22:13] [I] Total GPU Compute Time: 5.86491 s\n\
                    --- infStreams=4\n\
                    [08/27/2026-12:22:17] [I] Throughput: 42919.2 qps\n\
                    [08/27/2026-12:22:17] [I] Total GPU Compute Time: 11.5196 s\n";
        let log = TrtexecLog::parse(text);
        assert_eq!(log.status, Status::Failed);
        assert_eq!(log.perf_runs, 3);
        assert_eq!(log.perf.as_ref().unwrap().throughput_qps, Some(42919.2));
        let f = log.failure.as_ref().unwrap();
        assert_eq!(f.class, FailureClass::Incomplete);
        let message = f.message.as_deref().unwrap();
        assert!(message.contains("performance summary was read") && message.contains("3 runs"), "{message}");
        let report = log.to_report_json();
        assert_eq!(report.runs, 3);
        assert_eq!(report.failure_message.as_deref(), Some(message));

        // One run's summary (7.x layout): the same note without a run count.
        // https://github.com/NVIDIA/TensorRT/issues/2054
        let log = TrtexecLog::parse(
            "[06/12/2022-22:34:00] [I] Host Latency\n\
             [06/12/2022-22:34:00] [I] min: 1.64058 ms (end to end 1.66368 ms)\n",
        );
        let message = log.failure.unwrap().message.unwrap();
        assert!(message.contains("capture is partial") && !message.contains("runs"), "{message}");
    }

    #[test]
    fn report_json_carries_the_evidence() {
        // An accuracy check failing after a complete run:
        // wili-65535/trt-samples-for-hackathon-cn@9bbf1807dc47a995d5d55233a9b24815b0ee81a7:cookbook/07-Tool/trtexec/result-12.log
        let log = TrtexecLog::parse(
            "[08/27/2026-12:20:41] [I]\n\
             [08/27/2026-12:20:41] [E] Accuracy validation FAILED: one or more tensors exceeded the threshold.\n\
             &&&& FAILED TensorRT.trtexec [TensorRT v110100] [b106] # trtexec --loadEngine=./model-trained.trt --loadInputs=x:xa.raw --loadRefOutputs=y:yb.reference.raw --accuracyAlgorithm=cos --accuracyThreshold=1e-3\n",
        );
        let j = serde_json::to_value(log.to_report_json()).unwrap();
        assert_eq!(j["failure"], "other");
        assert_eq!(j["failure_line"], 2);
        assert_eq!(j["failure_message"], "Accuracy validation FAILED: one or more tensors exceeded the threshold.");
        assert_eq!(j["runs"], 0);
        // The contract comes first, unchanged; the additions follow it.
        let contract = serde_json::to_string(&log.to_contract_json()).unwrap();
        let report = serde_json::to_string(&log.to_report_json()).unwrap();
        assert!(report.starts_with(contract.trim_end_matches('}')), "{report}");
    }

    #[test]
    fn untagged_summary_after_its_header() {
        // Pasted without the `[date] [I] ` prefixes: https://github.com/beyondli/Yolo_on_Jetson/issues/4
        let log = TrtexecLog::parse(
            "=== Performance summary ===\n\
             Throughput: 169.352 qps \n\
             Latency: min = 5.38959 ms, max 6.19507 ms, mean 5.93288 ms, median 6.02185 ms, percentile(99%) 6.17407 ms \n\
             GPU Compute Time: min = 3.17834 ms, max = 3.88306 ms, mean = 3.63242 ms, median = 3.71753 ms, percentile(99%) 3.87793 ms \n",
        );
        assert!(log.is_trtexec_output());
        let p = log.perf.unwrap();
        assert_eq!(p.throughput_qps, Some(169.352));
        assert_eq!(p.latency.unwrap().min, Some(5.38959));
        let g = p.gpu_compute.unwrap();
        assert_eq!((g.min, g.max, g.mean, g.median), (Some(3.17834), Some(3.88306), Some(3.63242), Some(3.71753)));
        // Without the header, untagged lines are anybody's text.
        let notes = TrtexecLog::parse("Throughput: 169.352 qps\nLatency: min = 5.38959 ms, max = 6.19507 ms\n");
        assert!(notes.perf.is_none());
        assert!(!notes.is_trtexec_output());
    }

    #[test]
    fn tagged_info_lines_are_trtexec_output() {
        // A --dumpProfile table alone: https://github.com/NVIDIA/TensorRT/issues/3842
        let log = TrtexecLog::parse(
            "[05/08/2024-14:05:14] [I] === Profile (2094 iterations ) ===\n\
             [05/08/2024-14:05:14] [I]    Time(ms)     Avg.(ms)   Median(ms)   Time(%)   Layer\n",
        );
        assert!(log.is_trtexec_output());
        assert_eq!(log.info_count, 2);
    }

    #[test]
    fn wrapped_trailer_command_is_joined() {
        // The command line wrapped in a paste: https://github.com/NVIDIA/TensorRT/issues/1221
        let log = TrtexecLog::parse(
            "[05/21/2021-09:59:36] [I]\n\
             &&&& PASSED TensorRT.trtexec # /usr/src/tensorrt/bin/trtexec --onnx=resnet.onnx --best --workspace=5000 --saveEngine=resnet.trt --inputIOFormats=fp32:chw --outputIOFormats=fp32:chw --noDataTransfers --du\n\
             mpProfile --separateProfileRun\n",
        );
        let args = log.trtexec_args().unwrap();
        assert_eq!(args[args.len() - 2..], ["--dumpProfile", "--separateProfileRun"]);
        // What a plugin prints after the trailer is its own line:
        // lix19937/tensorrt-insight@547966ba14511f82268412b16ad54e4e5bb0648d:trtexec/build_with_plugin.log
        let log = TrtexecLog::parse(
            "&&&& PASSED TensorRT.trtexec [TensorRT v8510] # trtexec --onnx=./identity.onnx --plugins=./libplugin_custom.so --verbose\n\
             2024-06-22 20:52:44.771995: T identity.cpp:80] detachFromContext \n",
        );
        assert_eq!(log.trtexec_args().unwrap().last().map(String::as_str), Some("--verbose"));
        let fenced = TrtexecLog::parse(
            "&&&& FAILED TensorRT.trtexec [TensorRT v8204] # trtexec --onnx=unit.onnx --shapes=input:1x3x64x64 --buildOnly\n```\n",
        );
        assert_eq!(fenced.trtexec_args().unwrap().last().map(String::as_str), Some("--buildOnly"));
    }

    #[test]
    fn version_from_line_when_banner_is_missing() {
        let log = TrtexecLog::parse("[07/07/2026-02:10:45] [I] TensorRT version: 10.3.0\n");
        assert_eq!(log.version, Some(TrtVersion::new(10, 3, 0)));
        assert!(log.is_trtexec_output());
        assert!(!TrtexecLog::parse("hello\nworld").is_trtexec_output());
    }
}
