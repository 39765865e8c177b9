//! Per-layer precision: the plan (every quantizable layer → int8 | fp16 | fp32), its resolution from the spec, and
//! the strongly typed export that bakes it into the model.

pub mod export;
pub mod plan;

pub use plan::{Plan, PlanError, Precision};
