//! Predicting the accuracy of a precision plan on the CPU.

pub mod metrics;
