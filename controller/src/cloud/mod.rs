//! Tencent Cloud CLB client: signing, rate limits, retries, task polling, batching.
//!
//! - [`client`]: the HTTP edge (TC3-signed POST, per-action token bucket, typed retries, one deadline per operation).
//! - [`ops`]: typed operations for the sync engine, batched within the API's array limits.
//! - [`task`]: DescribeTaskStatus polling with a fast start and a deadline.
//! - [`batch`], [`retry`], [`ratelimit`]: the pure parts (request splitting, backoff, token bucket).

pub mod batch;
pub mod client;
pub mod credentials;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod ratelimit;
pub mod retry;
pub mod task;

pub use batch::{ListenerAttributes, ListenerIdBatch, NewListener};
pub use client::{ClbClient, ClientConfig, DEFAULT_ENDPOINT, LbRef};
pub use credentials::Credentials;
pub use error::CloudError;
pub use metrics::CloudMetrics;
pub use ratelimit::RateLimit;
pub use retry::RetryPolicy;
pub use task::TaskPollPolicy;
