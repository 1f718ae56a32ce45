//! fake-clb: a Tencent Cloud CLB API (2018-03-17) server for tests. TC3 and v1 signatures, async tasks with
//! the one-task-per-LB lock, quotas, rate limits, scripted faults, a control API and a persistent state file.

pub mod admin;
pub mod admin_api;
pub mod admin_client;
pub mod app;
pub mod config;
pub mod error;
pub mod faults;
pub mod http;
pub mod latency;
pub mod metrics;
pub mod model;
pub mod request_log;
pub mod state;

pub use config::{Config, Limits};
pub use error::FakeError;
pub use http::{ServerHandle, serve};
