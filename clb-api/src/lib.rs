//! Tencent Cloud API 3.0 wire model for CLB (version 2018-03-17), shared by the fake server and the controller:
//! error codes, response envelope, TC3 and v1 signing, parameter schemas and flattening, request/response structs.

pub mod actions;
pub mod envelope;
pub mod error;
pub mod flatten;
pub mod limits;
pub mod model;
pub mod protocol;
pub mod schema;
pub mod sign;

pub use error::{ApiError, ErrorCode};
