//! The one integration-test binary (see ARCHITECTURE.md, "Tests").
mod support;

mod build;
mod bundle;
mod calib_cache;
mod cli;
mod config;
mod daemon;
mod consumer;
mod device;
mod exec;
mod inputs;
mod model;
mod onnx_roundtrip;
mod opset;
mod precision;
mod search;
mod sign;
mod standin;
mod status;
mod trt_args;
mod trt_run;
mod trtexec_parse;
mod upstream;
