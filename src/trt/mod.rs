//! Everything about trtexec, and the only module that starts a process: the argument sets per TensorRT version
//! (`args`), running it (`run`), and parsers for what it prints and exports (`parse`).

pub mod args;
pub mod parse;
pub mod run;
