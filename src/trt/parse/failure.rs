//! Why a trtexec run failed, from the text it left.
//!
//! Sources of the patterns: tensorrt.md §2.4 (unknown option → `[E] Unknown option: --fp16` then FAILED;
//! a crash or OOM kill leaves no trailer), §4.1 (engine/version mismatch messages), §5.4 (Jetson OOM:
//! the shell's `Killed`), and the samples (ONNX parser `[E] [TRT] ModelImporter.cpp` node dumps). trtexec
//! writes W/E/F lines to stderr, so a capture of stdout alone may show `&&&& FAILED` with no reason at
//! all; that case is reported as `other` with a note saying so.

use serde::{Deserialize, Serialize};

use super::line::{LogLine, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The ONNX parser rejected the model (unsupported operator or attribute, invalid node, missing plugin).
    OnnxParse,
    /// CUDA or host allocation failed.
    OutOfMemory,
    /// The process died from a signal (OOM killer, segfault, abort).
    Killed,
    /// trtexec did not know a flag: the flag set does not match its version.
    UnknownOption,
    /// The run exceeded a time limit.
    Timeout,
    /// A loaded engine was built by another TensorRT version or for another GPU.
    IncompatibleEngine,
    /// The output ends without a PASSED/FAILED line and shows no cause.
    Incomplete,
    /// Failed for a reason not classified above.
    Other,
}

impl FailureClass {
    /// The name used in JSON (`onnx_parse`, `out_of_memory`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::OnnxParse => "onnx_parse",
            FailureClass::OutOfMemory => "out_of_memory",
            FailureClass::Killed => "killed",
            FailureClass::UnknownOption => "unknown_option",
            FailureClass::Timeout => "timeout",
            FailureClass::IncompatibleEngine => "incompatible_engine",
            FailureClass::Incomplete => "incomplete",
            FailureClass::Other => "other",
        }
    }

    /// What to do about it, for `hint:` lines.
    pub fn hint(self) -> &'static str {
        match self {
            FailureClass::OnnxParse => {
                "the onnx parser of this tensorrt rejected the model: check the failing node's operator and opset \
                 against this version's supported operators, or rewrite/fold that node before building"
            }
            FailureClass::OutOfMemory => {
                "the gpu ran out of memory: lower --memPoolSize=workspace:<MiB>, try --maxAuxStreams=0 and stop other \
                 gpu users; on jetson (memory shared with the cpu) add swap and stop the desktop"
            }
            FailureClass::Killed => {
                "trtexec was killed by a signal; on jetson this is usually the kernel oom killer (see dmesg): add swap, \
                 lower the workspace, build with fewer other processes running"
            }
            FailureClass::UnknownOption => {
                "this trtexec does not know a flag it was given: the flags do not match its tensorrt version \
                 (--buildOnly before 8.6 vs --skipInference, no precision flags in 11.x)"
            }
            FailureClass::Timeout => {
                "the run exceeded its time limit: raise build_timeout, or shorten the build with a timing cache or a \
                 lower --builderOptimizationLevel"
            }
            FailureClass::IncompatibleEngine => {
                "the engine was built by another tensorrt version or for another gpu: rebuild it on this device"
            }
            FailureClass::Incomplete => {
                "the output ends without a &&&& PASSED or &&&& FAILED line: trtexec crashed or was killed, or the \
                 capture is incomplete"
            }
            FailureClass::Other => "trtexec reported a failure this parser does not classify: see the error lines",
        }
    }

    /// Lower rank wins when several causes show up: the most specific cause first, and the shell's
    /// reports of a death (which follow the cause) last.
    fn rank(self) -> u8 {
        match self {
            FailureClass::UnknownOption => 0,
            FailureClass::OnnxParse => 1,
            FailureClass::IncompatibleEngine => 2,
            FailureClass::OutOfMemory => 3,
            FailureClass::Timeout => 4,
            FailureClass::Killed => 5,
            FailureClass::Incomplete => 6,
            FailureClass::Other => 7,
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub class: FailureClass,
    pub hint: &'static str,
    /// 1-based line of the evidence, when a line was the evidence.
    pub line: Option<usize>,
    /// The evidence (the line's message), or a note on why there is none.
    pub message: Option<String>,
    /// For `unknown_option`: the flag (`--fp16`).
    pub option: Option<String>,
    /// For `onnx_parse`: the failing node and its operator, where the log names them.
    pub node: Option<String>,
    pub op: Option<String>,
}

impl Failure {
    pub fn new(class: FailureClass) -> Self {
        Failure { class, hint: class.hint(), line: None, message: None, option: None, node: None, op: None }
    }

    fn at(class: FailureClass, l: &LogLine<'_>) -> Self {
        Failure { line: Some(l.number), message: Some(l.text().to_string()), ..Failure::new(class) }
    }
}

const ONNX_ANYWHERE: &[&str] = &[
    "failed to parse onnx",
    "failed parsing .onnx",
    "parsing model failed",
    "while parsing node number",
    "invalid_node",
    "unsupported_node",
    "invalid node - ",
    "could not find plugin",
    "plugin not found",
];
const ONNX_IN_ERRORS: &[&str] = &["no importer registered for op", "modelimporter.cpp", "onnx2trt", "unsupported onnx"];
const OOM: &[&str] = &[
    "out of memory",
    "outofmemory",
    "cudaerrormemoryallocation",
    "std::bad_alloc",
    "could not be allocated",
    "insufficient memory",
    "memory allocation failed",
    "failed to allocate",
];
const INCOMPATIBLE: &[&str] = &[
    "please rebuild",
    "version tag does not match",
    "magic tag does not match",
    "incompatible device",
    "not compatible with this version of tensorrt",
    "serialization version is not supported",
];
const TIMEOUT: &[&str] = &["timed out", "timeout expired", "deadline exceeded", "time limit"];
const SIGNAL: &[&str] = &[
    "segmentation fault",
    "core dumped",
    "bus error",
    "illegal instruction",
    "terminate called after throwing",
    "killed by signal",
    "terminated by signal",
    "sigkill",
    "sigsegv",
    "sigabrt",
    "oom-kill",
    "killed process",
];

/// trtexec's generic reports after the cause: a build that failed says so at each level it passes through.
const FOLLOW_UP_ERRORS: &[&str] = &[
    "Network And Config setup failed",
    "Building engine failed",
    "Failed to create engine from model or file.",
    "Engine set up failed",
];

/// True for an `[E]` message that only repeats that an earlier error failed the run.
pub(crate) fn is_follow_up_error(message: &str) -> bool {
    FOLLOW_UP_ERRORS.contains(&message)
}

/// Finds the most specific failure cause in the text, or `None` if the text shows none. This looks at the
/// whole text, whatever its PASSED/FAILED trailer says; [`super::TrtexecLog`] only asks when the run failed.
pub fn classify_failure(text: &str) -> Option<Failure> {
    let mut best: Option<(Failure, bool)> = None;
    let mut node: Option<String> = None;
    let mut op: Option<String> = None;
    for l in super::line::lines(text) {
        // Verbose and info lines narrate successful work ("No importer registered for op: X. Attempting to
        // import as plugin.", "Skipping tactic … due to oom error"); only warnings and worse, and lines
        // outside the logger (shell, node dumps), can carry a failure.
        let chatty = matches!(l.severity, Some(Severity::Verbose | Severity::Info));
        let err = l.severity.is_some_and(Severity::is_error);
        let text_l = l.text();
        if let Some(opt) = unknown_option(text_l) {
            let mut f = Failure::at(FailureClass::UnknownOption, &l);
            f.option = Some(opt);
            // The first unknown option is the one trtexec stopped at.
            if !best.as_ref().is_some_and(|(b, _)| b.class == FailureClass::UnknownOption) {
                best = Some((f, false));
            }
            continue;
        }
        // Long untagged lines are dumps (layer lists, JSON, node doc strings), never the shell's or a
        // wrapper's one-line report; skipping them keeps classification linear in practice.
        if chatty || (l.severity.is_none() && text_l.len() > 512) {
            continue;
        }
        let lower = text_l.to_ascii_lowercase();
        // One word scan decides whether any pattern can match; most lines have no trigger word.
        if !lower.split(|c: char| !c.is_ascii_alphanumeric()).any(is_trigger_word) {
            continue;
        }
        collect_onnx_names(text_l, &mut node, &mut op);
        let found = if contains_any(&lower, ONNX_ANYWHERE) || (err && contains_any(&lower, ONNX_IN_ERRORS)) {
            Some(Failure::at(FailureClass::OnnxParse, &l))
        } else if (err || l.severity.is_none()) && contains_any(&lower, INCOMPATIBLE) {
            Some(Failure::at(FailureClass::IncompatibleEngine, &l))
        } else if (err || l.severity.is_none()) && contains_any(&lower, OOM) {
            Some(Failure::at(FailureClass::OutOfMemory, &l))
        } else if (err || l.severity.is_none()) && contains_any(&lower, TIMEOUT) {
            Some(Failure::at(FailureClass::Timeout, &l))
        } else if l.severity.is_none() && is_signal_death(text_l, &lower) {
            Some(Failure::at(FailureClass::Killed, &l))
        } else {
            None
        };
        if let Some(f) = found {
            // Within a class, trtexec's own error line is better evidence than an untagged line (a
            // wrapper script's echo of the same problem).
            let better = best.as_ref().is_none_or(|(b, b_untagged)| {
                f.class.rank() < b.class.rank() || (f.class == b.class && *b_untagged && err)
            });
            if better {
                best = Some((f, l.severity.is_none()));
            }
        }
    }
    let mut best = best.map(|(f, _)| f);
    if let Some(b) = best.as_mut()
        && b.class == FailureClass::OnnxParse
    {
        b.node = node;
        b.op = op;
    }
    best
}

/// Every pattern above contains one of these words (a test checks it).
fn is_trigger_word(w: &str) -> bool {
    matches!(
        w,
        "onnx"
            | "parsing"
            | "node"
            | "plugin"
            | "importer"
            | "modelimporter"
            | "onnx2trt"
            | "memory"
            | "outofmemory"
            | "cudaerrormemoryallocation"
            | "alloc"
            | "allocated"
            | "allocate"
            | "rebuild"
            | "tag"
            | "incompatible"
            | "compatible"
            | "serialization"
            | "timed"
            | "timeout"
            | "deadline"
            | "limit"
            | "segmentation"
            | "dumped"
            | "bus"
            | "illegal"
            | "terminate"
            | "terminated"
            | "killed"
            | "sigkill"
            | "sigsegv"
            | "sigabrt"
            | "oom"
            | "aborted"
            | "assertion"
            | "op"
    )
}

fn contains_any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// `Unknown option: --precisionConstraints obey` → `--precisionConstraints`.
fn unknown_option(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("Unknown option:")?;
    Some(rest.split_whitespace().next().unwrap_or("").to_string())
}

/// The shell's and kernel's words for a process death: `Killed`, `./x.sh: line 3: 123 Killed  trtexec …`,
/// `Segmentation fault (core dumped)`, `Out of memory: Killed process 123 (trtexec)`.
fn is_signal_death(text: &str, lower: &str) -> bool {
    text == "Killed"
        || text.ends_with(" Killed")
        || text.contains(" Killed ")
        || text == "Aborted"
        || contains_any(lower, SIGNAL)
        || is_failed_assertion(lower)
}

/// glibc's ``prog: file:line: function: Assertion `expr' failed.``, printed just before it raises SIGABRT;
/// the shell's `Aborted` often is not in the capture, so the assertion is the only evidence of the death.
fn is_failed_assertion(lower: &str) -> bool {
    lower.split_once("assertion `").is_some_and(|(_, expr)| expr.contains("' failed"))
}

/// Node and operator names from the parser's messages:
/// 8.x `While parsing node number 13 [Pad -> "output"]:`, `Invalid Node - Pad_13`, the dumped `op_type: "Pad"`;
/// 10.x `In node 0 with name: /Pad and operator: Pad (parseNode): UNSUPPORTED_NODE`;
/// `No importer registered for op: X`.
fn collect_onnx_names(text: &str, node: &mut Option<String>, op: &mut Option<String>) {
    if let Some((_, rest)) = text.split_once("While parsing node number ")
        && let Some((_, inner)) = rest.split_once('[')
        && let Some((o, _)) = inner.split_once(" -> ")
    {
        op.get_or_insert_with(|| o.trim().to_string());
    }
    if let Some((_, rest)) = text.split_once("Invalid Node - ")
        && let Some(n) = rest.split_whitespace().next()
    {
        node.get_or_insert_with(|| n.to_string());
    }
    if let Some((_, rest)) = text.split_once(" with name: ")
        && let Some((n, after)) = rest.split_once(" and operator: ")
    {
        node.get_or_insert_with(|| n.trim().to_string());
        if let Some(o) = after.split_whitespace().next() {
            op.get_or_insert_with(|| o.to_string());
        }
    }
    if let Some(rest) = text.trim().strip_prefix("op_type: \"")
        && let Some((o, _)) = rest.split_once('"')
    {
        op.get_or_insert_with(|| o.to_string());
    }
    if let Some((_, rest)) = text.split_once("No importer registered for op: ")
        && let Some(o) = rest.split_whitespace().next()
    {
        op.get_or_insert_with(|| o.trim_end_matches('.').to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<FailureClass> {
        classify_failure(text).map(|f| f.class)
    }

    #[test]
    fn unknown_option_names_the_flag() {
        let f = classify_failure("[08/27/2026-12:22:06] [E] Unknown option: --precisionConstraints obey\n").unwrap();
        assert_eq!(f.class, FailureClass::UnknownOption);
        assert_eq!(f.option.as_deref(), Some("--precisionConstraints"));
        assert_eq!(f.line, Some(1));
    }

    #[test]
    fn ten_x_unsupported_node() {
        let f = classify_failure(
            "[E] [TRT] ModelImporter.cpp:949: While parsing node number 0 [Pad -> \"y\"]:\n\
             [E] [TRT] ModelImporter.cpp:952: In node 0 with name: /Pad and operator: Pad (parseNode): UNSUPPORTED_NODE: reflect\n\
             [E] Failed to parse onnx file\n",
        )
        .unwrap();
        assert_eq!(f.class, FailureClass::OnnxParse);
        assert_eq!((f.node.as_deref(), f.op.as_deref()), (Some("/Pad"), Some("Pad")));
    }

    #[test]
    fn info_lines_never_classify() {
        assert_eq!(
            class("[I] [TRT] No importer registered for op: EfficientNMSCustom_TRT. Attempting to import as plugin."),
            None
        );
        assert_eq!(
            class("[V] [TRT] Skipping tactic 3 due to oom error on requested size of 2168 detected for tactic"),
            None
        );
        assert_eq!(
            class(
                "[W] [TRT] Tactic Device request: 2168MB Available: 1536MB. Device memory is insufficient to use tactic."
            ),
            None
        );
    }

    #[test]
    fn memory_signal_timeout_incompatible() {
        assert_eq!(
            class(
                "[E] Error[2]: [virtualMemoryBuffer.cpp::resizePhysical::145] Error Code 2: OutOfMemory (no further information)"
            ),
            Some(FailureClass::OutOfMemory)
        );
        assert_eq!(
            class("[E] [TRT] 1: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)"),
            Some(FailureClass::OutOfMemory)
        );
        assert_eq!(class("[I] Starting inference\nKilled\n"), Some(FailureClass::Killed));
        assert_eq!(
            class("./build.sh: line 3:  4242 Killed                  trtexec --onnx=m.onnx"),
            Some(FailureClass::Killed)
        );
        assert_eq!(class("Segmentation fault (core dumped)"), Some(FailureClass::Killed));
        assert_eq!(class("precisiond: trtexec timed out after 1800 s"), Some(FailureClass::Timeout));
        assert_eq!(
            class(
                "[E] [TRT] 1: [stdArchiveReader.cpp::StdArchiveReader::42] Error Code 1: Serialization (Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match. Note: Current Version: 236, Serialized Engine Version: 239)"
            ),
            Some(FailureClass::IncompatibleEngine)
        );
        assert_eq!(
            class(
                "[E] The engine plan file is generated on an incompatible device, expecting compute 8.6 got compute 7.5, please rebuild."
            ),
            Some(FailureClass::IncompatibleEngine)
        );
        assert_eq!(class("[I] the build took a long time"), None);
    }

    #[test]
    fn failed_assertion_is_a_death() {
        // The last line of a --best build on Jetson Orin that died inside Myelin, with no trailer after it:
        // lix19937/tensorrt-insight@fb7f1f07355a52b920f3b617aed5ed11e3ef18fd:trtexec/orin_build_from_shqi.log
        let text = "[01/10/2022-05:13:52] [V] [TRT] --------------- Timing Runner: {ForeignNode[18 + (Unnamed Layer* 1) [Shuffle]...If_6_OutputLayer]} (Myelin)\n\
                    trtexec: /root/gpgpu/MachineLearning/myelin/src/compiler/ir/graph.cpp:1059: myelin::ir::tensor_t* myelin::ir::graph_t::host_tensor_const(myelin::util::value_t, myelin::lib::ptr_set_t<myelin::ir::tensor_t*>&): Assertion `0 && \"Unsupported type\"' failed.\n";
        let f = classify_failure(text).unwrap();
        assert_eq!((f.class, f.line), (FailureClass::Killed, Some(2)));
        assert!(f.message.unwrap().ends_with("Assertion `0 && \"Unsupported type\"' failed."));
        // trtexec's own wording of a failed check is no abort.
        assert_eq!(class("[E] [TRT] Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed."), None);
    }

    #[test]
    fn most_specific_cause_wins() {
        // An OOM in the build, then the shell's death report: memory is the cause worth telling.
        assert_eq!(class("[E] Cuda Runtime (out of memory)\nKilled\n"), Some(FailureClass::OutOfMemory));
        assert_eq!(class("Killed\n[E] Unknown option: --best\n"), Some(FailureClass::UnknownOption));
    }

    #[test]
    fn every_pattern_has_a_trigger_word() {
        let all = [ONNX_ANYWHERE, ONNX_IN_ERRORS, OOM, INCOMPATIBLE, TIMEOUT, SIGNAL, &["killed", "aborted"]];
        for p in all.iter().flat_map(|g| g.iter()) {
            assert!(p.split(|c: char| !c.is_ascii_alphanumeric()).any(is_trigger_word), "{p}");
        }
    }

    #[test]
    fn every_class_has_name_and_hint() {
        for c in [
            FailureClass::OnnxParse,
            FailureClass::OutOfMemory,
            FailureClass::Killed,
            FailureClass::UnknownOption,
            FailureClass::Timeout,
            FailureClass::IncompatibleEngine,
            FailureClass::Incomplete,
            FailureClass::Other,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert!(!c.hint().is_empty());
            assert!(c.hint().starts_with(|ch: char| ch.is_ascii_lowercase()), "{c}");
        }
    }
}
