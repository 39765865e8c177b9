//! Progress of long work, reported by the library and drawn by whoever runs it: a bar in a terminal, log lines
//! otherwise, nothing in tests.

pub trait Progress: Sync {
    /// A new phase with `total` steps (None when unknown).
    fn start(&self, phase: &str, total: Option<u64>);
    /// `done` steps of the current phase are finished.
    fn advance(&self, done: u64);
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
