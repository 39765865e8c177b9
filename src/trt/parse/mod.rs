//! Parsers for everything `trtexec` prints or exports, 7.x to 11.x.
//!
//! TensorRT is not available where this is developed or tested: every format here follows the
//! documented writers (`../shared/reference/tensorrt.md` §2.4–2.6) and is tested against real outputs
//! collected from public repositories (`tests/fixtures/trtexec/`). All parsers accept arbitrary text
//! without panicking: logs are read line by line and whatever is not understood is skipped; JSON exports
//! are parsed strictly first and, failing that, after repairing what trtexec's hand-written JSON gets
//! wrong (`nan`/`inf`, unescaped names).
//!
//! - [`TrtexecLog::parse`] / [`parse_log`]: a whole log → version, status, failure, device, perf summary,
//!   profile table, layer dump; [`TrtexecLog::to_contract_json`] is the `parse-trtexec --json` contract and
//!   [`TrtexecLog::to_report_json`] the whole document (the contract and the failure's evidence).
//! - [`detect_version`]: the version from the banner, with an error a caller can refuse on.
//! - [`parse_export_profile`], [`parse_export_layer_info`], [`parse_export_times`],
//!   [`parse_export_output`]: the `--export*` JSON files. [`parse_any`] picks the right one.

mod banner;
mod device;
mod failure;
mod json;
mod layer_info;
mod line;
mod log;
mod output;
mod perf;
mod profile;
mod times;
mod version;

pub use banner::{Banner, BannerKind, detect_version};
pub use device::{AvailableDevice, DeviceInfo};
pub use failure::{Failure, FailureClass, classify_failure};
pub use layer_info::{
    DataType, DetailedLayer, LayerEntry, LayerInfo, TensorInfo, data_type_from_text, parse_export_layer_info,
    parse_layer_dump,
};
pub use line::{LogLine, Severity};
pub use log::{ContractDevice, ContractJson, ContractPerf, ContractStats, LogMessage, ReportJson, Status, TrtexecLog};
pub use output::{OutputTensor, parse_export_output, parse_export_output_stream};
pub use perf::{Percentile, PerfSummary, Stats, SummaryFormat, parse_stat_line};
pub use profile::{LayerTime, ProfileExport, ProfileTable, parse_export_profile};
pub use times::{TimingRecord, parse_export_times, stats_of};
pub use version::{TrtVersion, VersionError};

use std::fmt;
use std::path::{Path, PathBuf};

/// Which `--export*` file a JSON error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportKind {
    Profile,
    LayerInfo,
    Times,
    Output,
}

impl fmt::Display for ExportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportKind::Profile => "profile export (--exportProfile)",
            ExportKind::LayerInfo => "layer-info export (--exportLayerInfo)",
            ExportKind::Times => "times export (--exportTimes)",
            ExportKind::Output => "output export (--exportOutput)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: invalid json in the {kind}: {message}")]
    Json { origin: String, kind: ExportKind, line: usize, column: usize, message: String },
    #[error("{origin}: element {element} of the {kind}: {problem}")]
    Schema { origin: String, kind: ExportKind, element: usize, problem: String },
    #[error("{origin}: not trtexec output: no `&&&&` banner, no `[I]`/`[W]`/`[E]` log line and no performance summary")]
    NotTrtexecOutput { origin: String },
    #[error(
        "{origin}: json that is no trtexec export (expected --exportProfile, --exportLayerInfo, --exportTimes or --exportOutput)"
    )]
    UnknownJson { origin: String },
}

/// Any trtexec output, as recognised by [`parse_any`].
#[derive(Debug, Clone, PartialEq)]
pub enum TrtexecOutput {
    Log(Box<TrtexecLog>),
    Profile(ProfileExport),
    LayerInfo(LayerInfo),
    Times(Vec<TimingRecord>),
    /// One inner list per document (scripts append one document per run).
    Output(Vec<Vec<OutputTensor>>),
}

/// Parses a log, failing only when the text is not trtexec output at all. `origin` names it in errors.
pub fn parse_log(text: &str, origin: &str) -> Result<TrtexecLog, ParseError> {
    let log = TrtexecLog::parse(text);
    if log.is_trtexec_output() { Ok(log) } else { Err(ParseError::NotTrtexecOutput { origin: origin.to_string() }) }
}

/// Recognises and parses any trtexec log or export.
pub fn parse_any(text: &str, origin: &str) -> Result<TrtexecOutput, ParseError> {
    let body = json::strip_preamble(text);
    let after_bracket = body.strip_prefix('[').map(str::trim_start);
    let looks_json =
        body.starts_with('{') || after_bracket.is_some_and(|r| r.is_empty() || r.starts_with(['{', '"', ']']));
    if !looks_json {
        return parse_log(text, origin).map(|l| TrtexecOutput::Log(Box::new(l)));
    }
    if body.starts_with('{') {
        return parse_export_layer_info(text, origin).map(TrtexecOutput::LayerInfo);
    }
    if after_bracket.is_some_and(|r| r.starts_with('"')) {
        return parse_export_layer_info(text, origin).map(TrtexecOutput::LayerInfo);
    }
    // The first object's keys tell the exports apart; reading them needs the whole first document.
    let first_doc = |t: &str| serde_json::Deserializer::from_str(t).into_iter::<serde_json::Value>().next();
    let first = match first_doc(body) {
        Some(Ok(v)) => v,
        Some(Err(e)) if json::worth_repairing(&e, body) => match first_doc(&json::repair(body)) {
            Some(Ok(v)) => v,
            _ => return parse_export_profile(text, origin).map(TrtexecOutput::Profile),
        },
        // Unreadable even as JSON: the profile parser (the most common export) reports where.
        _ => return parse_export_profile(text, origin).map(TrtexecOutput::Profile),
    };
    let keys = first.as_array().and_then(|a| a.first()).and_then(|o| o.as_object());
    let has = |k: &str| keys.is_some_and(|o| o.contains_key(k));
    if has("count") || has("timeMs") || has("averageMs") {
        parse_export_profile(text, origin).map(TrtexecOutput::Profile)
    } else if has("latencyMs") || has("startEnqMs") || has("computeMs") {
        parse_export_times(text, origin).map(TrtexecOutput::Times)
    } else if has("values") || has("dimensions") {
        parse_export_output_stream(text, origin).map(TrtexecOutput::Output)
    } else if has("Name") || has("LayerType") {
        parse_export_layer_info(text, origin).map(TrtexecOutput::LayerInfo)
    } else if keys.is_none() && first.as_array().is_some_and(|a| a.is_empty()) {
        // An empty array is a valid times export of a run with no timed iterations.
        Ok(TrtexecOutput::Times(Vec::new()))
    } else {
        Err(ParseError::UnknownJson { origin: origin.to_string() })
    }
}

/// Reads a file as text; bytes that are not UTF-8 (garbled captures) become U+FFFD instead of an error.
pub fn read_text(path: &Path) -> Result<String, ParseError> {
    let bytes = std::fs::read(path).map_err(|source| ParseError::Io { path: path.to_path_buf(), source })?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// [`parse_log`] on a file.
pub fn parse_log_file(path: &Path) -> Result<TrtexecLog, ParseError> {
    parse_log(&read_text(path)?, &path.display().to_string())
}

/// [`parse_any`] on a file.
pub fn parse_any_file(path: &Path) -> Result<TrtexecOutput, ParseError> {
    parse_any(&read_text(path)?, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_any_tells_exports_apart() {
        let times = "[\n  { \"startEnqMs\" : 1, \"endEnqMs\" : 2, \"computeMs\" : nan, \"latencyMs\" : 1 }\n]\n";
        assert!(matches!(parse_any(times, "t"), Ok(TrtexecOutput::Times(t)) if t.len() == 1));
        assert!(matches!(parse_any("[]", "t"), Ok(TrtexecOutput::Times(t)) if t.is_empty()));
        assert!(matches!(parse_any("[\"a\", \"b\"]", "l"), Ok(TrtexecOutput::LayerInfo(i)) if i.layers.len() == 2));
        let out = "[ { \"name\" : \"y\", \"dimensions\" : \"2\", \"values\" : [ inf, 1 ] } ]";
        assert!(matches!(parse_any(out, "o"), Ok(TrtexecOutput::Output(d)) if d[0][0].values[0].is_infinite()));
        let log = "[07/07/2026-02:10:45] [I] TensorRT version: 10.3.0\n";
        assert!(
            matches!(parse_any(log, "x"), Ok(TrtexecOutput::Log(l)) if l.version == Some(TrtVersion::new(10, 3, 0)))
        );
        let e = parse_any("[ { \"count\" : 1 }, ", "p.json").map(|_| ()).unwrap_err();
        assert!(e.to_string().starts_with("p.json:1:"), "{e}");
    }
}

impl crate::error::Diagnose for ParseError {
    fn hint(&self) -> Option<String> {
        match self {
            ParseError::NotTrtexecOutput { .. } => {
                Some("give a file that trtexec wrote: its console output (stdout and stderr) or an --export* JSON".into())
            }
            _ => None,
        }
    }
}
