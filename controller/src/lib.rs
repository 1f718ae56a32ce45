//! clb-controller: gives Kubernetes pods their own `VIP:port` on Tencent Cloud CLB.
//!
//! Layout (pure core, I/O at the edges):
//! - [`api`]: the `networkextension.bkbcs.tencent.com/v1` custom resources (Ingress, Listener, PortPool, PortBinding).
//! - [`annotations`]: the pod annotation grammar and the values the webhook writes back.
//! - [`allocator`]: per pool item, per protocol port allocation (no I/O).
//! - [`sync`]: desired listeners vs cloud listeners, as a plan of batched CLB calls (no I/O).
//! - [`cloud`]: the CLB API client at the edge (signing, rate limits, retries, task polling).
//! - [`runtime`]: `clb-controller run`: Listener watch, per-LB sync workers, status, leader election, metrics.
//! - [`ingress`]: Ingress → desired Listener CRs, admission validation and port conflicts (no I/O).
//! - [`webhook`]: the TLS admission server validating Ingresses and PortPools, its certificates and registration.

pub mod allocator;
pub mod annotations;
pub mod api;
pub mod cloud;
pub mod ingress;
pub mod runtime;
pub mod sync;
pub mod webhook;
