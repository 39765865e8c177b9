//! Everything about trtexec: the only module that will start a process. For now: parsers for what it prints and
//! exports.

pub mod parse;
