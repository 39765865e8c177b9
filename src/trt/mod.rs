//! Everything about trtexec, and the only module that starts a process: the argument sets per TensorRT version
//! (`args`), running it (`run`), parsers for what it prints and exports (`parse`), and the plan file's header
//! (`plan_header`).

pub mod args;
pub mod parse;
pub mod plan_header;
pub mod run;
