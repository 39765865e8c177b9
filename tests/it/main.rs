//! The one integration-test binary (see ARCHITECTURE.md, "Tests").
mod support;

mod bundle;
mod calib_cache;
mod cli;
mod device;
mod exec;
mod inputs;
mod model;
mod onnx_roundtrip;
mod opset;
mod precision;
mod search;
mod trt_args;
mod trt_run;
mod trtexec_parse;
