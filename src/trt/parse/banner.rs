//! The `&&&&` lines: `&&&& RUNNING TensorRT.trtexec [TensorRT v101601] [b11] # trtexec --onnx=…` first,
//! `&&&& PASSED …` or `&&&& FAILED …` last (tensorrt.md §2.4).

use serde::Serialize;

use super::version::{TrtVersion, VersionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BannerKind {
    Running,
    Passed,
    Failed,
    /// `reportWaive`: exit status 0, but nothing was tested.
    Waived,
}

/// One `&&&&` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Banner {
    pub kind: BannerKind,
    /// 1-based line number.
    pub line: usize,
    /// `TensorRT.trtexec`.
    pub test_name: String,
    /// From `[TensorRT vNNNN]`; `None` for 7.x banners, which have no tag.
    pub version: Option<TrtVersion>,
    /// The raw version tag (`v101601`) when present, even if it did not decode.
    pub version_tag: Option<String>,
    /// The command after `# `, as trtexec re-joined its argv (arguments are not re-quoted).
    pub command: Option<String>,
    /// First word of the command.
    pub program: Option<String>,
    /// The remaining words of the command.
    pub args: Vec<String>,
}

impl Banner {
    /// Parses a `&&&&` line. The marker may sit after other text: interleaved stdout/stderr captures put
    /// bare timestamps or half lines in front of it.
    pub fn parse(line_number: usize, line: &str) -> Option<Banner> {
        let at = line.find("&&&& ")?;
        // Accept only a line start or a tag (`[ts] `) before the marker, so that prose quoting a banner
        // (a README, a comment) is not taken for one.
        let before = line.get(..at).unwrap_or("").trim_end();
        if !(before.is_empty() || before.ends_with(']')) {
            return None;
        }
        let after = line.get(at + 5..)?.trim_start();
        let (word, rest) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        let kind = match word {
            "RUNNING" => BannerKind::Running,
            "PASSED" => BannerKind::Passed,
            "FAILED" => BannerKind::Failed,
            "WAIVED" => BannerKind::Waived,
            // 11.1 tuning loops print TASK_BEGIN/TASK_END/TASK_ABORT, which are not run boundaries.
            _ => return None,
        };
        let (head, command) = split_command(rest);
        let mut head_rest = head.trim();
        let (test_name, after_name) = head_rest.split_once(char::is_whitespace).unwrap_or((head_rest, ""));
        head_rest = after_name;
        let mut banner = Banner {
            kind,
            line: line_number,
            test_name: test_name.to_string(),
            version: None,
            version_tag: None,
            command: None,
            program: None,
            args: Vec::new(),
        };
        let mut build = None;
        loop {
            let t = head_rest.trim_start();
            let Some(inner_after) = t.strip_prefix('[') else { break };
            let Some((inner, after)) = inner_after.split_once(']') else { break };
            if let Some(tag) = inner.strip_prefix("TensorRT ") {
                let tag = tag.trim();
                banner.version_tag = Some(tag.to_string());
                banner.version = TrtVersion::from_encoded_str(tag).ok();
            } else if let Some(b) = inner.strip_prefix('b') {
                build = b.parse::<u32>().ok();
            }
            head_rest = after;
        }
        if let Some(v) = banner.version.as_mut() {
            v.build = build;
        }
        if let Some(cmd) = command {
            let cmd = cmd.trim();
            let mut words = cmd.split_whitespace();
            banner.program = words.next().map(str::to_string);
            banner.args = words.map(str::to_string).collect();
            banner.command = Some(cmd.to_string());
        }
        Some(banner)
    }

    /// The version from this banner, or why there is none.
    pub fn require_version(&self) -> Result<TrtVersion, VersionError> {
        match (&self.version, &self.version_tag) {
            (Some(v), _) => Ok(*v),
            (None, Some(tag)) => TrtVersion::from_encoded_str(tag),
            (None, None) => Err(VersionError::NoVersionTag { line: self.line }),
        }
    }
}

fn split_command(rest: &str) -> (&str, Option<&str>) {
    if let Some((head, cmd)) = rest.split_once(" # ") {
        return (head, Some(cmd));
    }
    if let Some(cmd) = rest.strip_prefix("# ") {
        return ("", Some(cmd));
    }
    match rest.strip_suffix(" #") {
        Some(head) => (head, Some("")),
        None => (rest, None),
    }
}

/// The version of the first `&&&& RUNNING` banner in `text`, as a caller that must refuse unknown
/// versions wants it: no banner and a tag-less (7.x) banner are errors, not defaults. When there is no
/// RUNNING banner, a PASSED/FAILED trailer is used (logs whose head was cut off).
pub fn detect_version(text: &str) -> Result<TrtVersion, VersionError> {
    let mut trailer = None;
    for (i, l) in text.lines().enumerate() {
        if let Some(b) = Banner::parse(i + 1, l) {
            if b.kind == BannerKind::Running {
                return b.require_version();
            }
            if trailer.is_none() {
                trailer = Some(b);
            }
        }
    }
    match trailer {
        Some(b) => b.require_version(),
        None => Err(VersionError::NoBanner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_x_banner_with_build() {
        let b = Banner::parse(
            2,
            "&&&& RUNNING TensorRT.trtexec [TensorRT v101601] [b11] # trtexec --onnx=/data/m.onnx --fp16",
        )
        .unwrap();
        assert_eq!(b.kind, BannerKind::Running);
        assert_eq!(b.test_name, "TensorRT.trtexec");
        let v = b.version.unwrap();
        assert_eq!(v.to_string(), "10.16.1");
        assert_eq!(v.build, Some(11));
        assert_eq!(b.program.as_deref(), Some("trtexec"));
        assert_eq!(b.args, vec!["--onnx=/data/m.onnx", "--fp16"]);
    }

    #[test]
    fn eight_x_and_ten_three_banners() {
        let b = Banner::parse(
            1,
            "&&&& PASSED TensorRT.trtexec [TensorRT v8502] # /usr/src/tensorrt/bin/trtexec --onnx=a.onnx",
        )
        .unwrap();
        assert_eq!(b.kind, BannerKind::Passed);
        assert_eq!(b.version, Some(TrtVersion::new(8, 5, 2)));
        let b = Banner::parse(1, "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec").unwrap();
        assert_eq!(b.version, Some(TrtVersion::new(10, 3, 0)));
        assert!(b.args.is_empty());
    }

    #[test]
    fn old_banner_has_no_version() {
        let text = "&&&& RUNNING TensorRT.trtexec # /usr/src/tensorrt/bin/trtexec --deploy=x.prototxt\n";
        let b = Banner::parse(1, text.trim_end()).unwrap();
        assert_eq!(b.version, None);
        assert_eq!(b.require_version(), Err(VersionError::NoVersionTag { line: 1 }));
        assert_eq!(detect_version(text), Err(VersionError::NoVersionTag { line: 1 }));
        assert_eq!(detect_version("hello"), Err(VersionError::NoBanner));
    }

    #[test]
    fn failed_after_bare_timestamps_and_garbage_tags() {
        let b = Banner::parse(9, "[05/07/2022-06:13:10] [05/07/2022-06:13:10] &&&& FAILED TensorRT.trtexec [TensorRT v8203] # trtexec --onnx=model.onnx").unwrap();
        assert_eq!(b.kind, BannerKind::Failed);
        assert_eq!(b.version.unwrap().to_string(), "8.2.3");
        let b = Banner::parse(1, "&&&& FAILED TensorRT.trtexec [TensorRT vX] # x").unwrap();
        assert_eq!(b.version, None);
        assert!(b.require_version().is_err());
        assert!(Banner::parse(1, "&&&& TASK_BEGIN [iter=0] BuildRoute = 'x'").is_none());
        assert!(Banner::parse(1, "&&&& ").is_none());
        assert!(Banner::parse(1, "&&&& RUNNING").is_some());
        assert!(Banner::parse(1, "&&&& RUNNING [TensorRT v8601").is_some());
        assert!(Banner::parse(1, "# source: x (incl. the '&&&& RUNNING … # trtexec --help' banner)").is_none());
        let g = Banner::parse(
            1,
            "[I] [TRT] Local timing cache in use. pas[08/30/2026-04:08:32] &&&& PASSED TensorRT.trtexec [TensorRT v8601] # t",
        );
        assert_eq!(g.unwrap().kind, BannerKind::Passed);
    }
}
