//! One line of trtexec output, split into its tags and message.
//!
//! trtexec prints `[MM/DD/YYYY-HH:MM:SS] [X] message`, and the library adds `[TRT] ` (tensorrt.md §2.4).
//! Real captures also hold untagged lines (ONNX node dumps, layer dumps, shell messages), lines whose
//! tags come in another order (a Python parent's `[ts] [TRT] [W]`), and interleaved garbage, so the
//! split never fails: whatever is not a recognised tag is message.

use serde::Serialize;

/// Log severity, from the one-letter tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Verbose,
    Info,
    Warning,
    Error,
    Fatal,
}

impl Severity {
    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "V" => Some(Severity::Verbose),
            "I" => Some(Severity::Info),
            "W" => Some(Severity::Warning),
            "E" => Some(Severity::Error),
            "F" => Some(Severity::Fatal),
            _ => None,
        }
    }

    pub fn is_error(self) -> bool {
        self >= Severity::Error
    }
}

/// A line split into tags and message; borrowed from the log text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// 1-based line number in the text given to the parser.
    pub number: usize,
    pub raw: &'a str,
    pub timestamp: Option<&'a str>,
    pub severity: Option<Severity>,
    /// The message came from the TensorRT library (`[TRT]`), not from trtexec itself.
    pub from_trt: bool,
    /// Text after the tags, with the one separating space removed; inner alignment is kept because the
    /// profile table is column-aligned.
    pub message: &'a str,
}

impl<'a> LogLine<'a> {
    pub fn parse(number: usize, raw: &'a str) -> LogLine<'a> {
        let raw = raw.trim_end_matches(['\r', '\n']);
        let mut line = LogLine { number, raw, timestamp: None, severity: None, from_trt: false, message: raw };
        let mut rest = raw;
        let mut tagged = false;
        loop {
            let trimmed = rest.trim_start();
            let Some(inner_and_after) = trimmed.strip_prefix('[') else { break };
            let Some((tag, after)) = inner_and_after.split_once(']') else { break };
            if line.severity.is_none() && !line.from_trt && line.timestamp.is_none() && is_timestamp(tag) {
                line.timestamp = Some(tag);
            } else if line.severity.is_none() && Severity::from_tag(tag).is_some() {
                line.severity = Severity::from_tag(tag);
            } else if !line.from_trt && tag == "TRT" {
                line.from_trt = true;
            } else {
                break;
            }
            tagged = true;
            rest = after;
        }
        if tagged {
            line.message = rest.strip_prefix(' ').unwrap_or(rest);
        }
        line
    }

    /// The message without surrounding whitespace.
    pub fn text(&self) -> &'a str {
        self.message.trim()
    }

    /// A line trtexec's logger wrote (it carries a severity tag).
    pub fn is_log(&self) -> bool {
        self.severity.is_some()
    }
}

fn is_timestamp(tag: &str) -> bool {
    tag.len() >= 8
        && tag.bytes().any(|b| b.is_ascii_digit())
        && tag.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'/' | b'-' | b':' | b'.' | b' ' | b'T'))
}

/// Splits `text` into lines with 1-based numbers.
pub fn lines(text: &str) -> impl Iterator<Item = LogLine<'_>> {
    text.lines().enumerate().map(|(i, l)| LogLine::parse(i + 1, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_line() {
        let l = LogLine::parse(3, "[07/07/2026-02:10:45] [I] [TRT] [MemUsageChange] Init CUDA: CPU +1\r");
        assert_eq!(l.timestamp, Some("07/07/2026-02:10:45"));
        assert_eq!(l.severity, Some(Severity::Info));
        assert!(l.from_trt);
        assert_eq!(l.message, "[MemUsageChange] Init CUDA: CPU +1");
    }

    #[test]
    fn python_parent_order_and_alignment() {
        let l = LogLine::parse(1, "[04/25/2026-04:20:52] [TRT] [W] Using default stream");
        assert_eq!(l.severity, Some(Severity::Warning));
        assert!(l.from_trt);
        assert_eq!(l.message, "Using default stream");
        let t = LogLine::parse(1, "[07/07/2026-02:11:43] [I]    Time(ms)     Avg.(ms)");
        assert_eq!(t.message, "   Time(ms)     Avg.(ms)");
    }

    #[test]
    fn untagged_and_odd_lines() {
        let l = LogLine::parse(1, "[6] Invalid Node - Pad_13");
        assert_eq!(l.severity, None);
        assert_eq!(l.message, "[6] Invalid Node - Pad_13");
        let g = LogLine::parse(1, "[");
        assert_eq!(g.message, "[");
        let e = LogLine::parse(1, "[07/07/2026-02:10:45] [I]");
        assert_eq!(e.message, "");
        assert_eq!(e.severity, Some(Severity::Info));
        let s = LogLine::parse(1, "[ünï] [I] x");
        assert_eq!(s.severity, None);
    }
}
