//! precisiond: calibrate, choose per-layer precision under an accuracy budget, build, verify and publish
//! TensorRT engines on the device. See ARCHITECTURE.md for what lives where.

pub mod build;
pub mod bundle;
pub mod calib;
pub mod cli;
pub mod daemon;
pub mod device;
pub mod error;
pub mod exec;
pub mod inputs;
pub mod inspect;
pub mod model;
pub mod pipeline;
pub mod precision;
pub mod progress;
pub mod report;
pub mod search;
pub mod simulate;
pub mod spec;
pub mod store;
pub mod tensor;
pub mod trt;
