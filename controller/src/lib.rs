//! clb-controller: gives Kubernetes pods their own `VIP:port` on Tencent Cloud CLB.
//!
//! Layout (pure core, I/O at the edges; a module only imports the ones listed before it):
//! - [`api`]: the `networkextension.bkbcs.tencent.com/v1` custom resources (Ingress, Listener, PortPool, PortBinding).
//! - [`annotations`]: the pod annotation grammar and the values the webhook writes back.
//! - [`allocator`]: per pool item, per protocol port allocation (no I/O).
//! - [`ingress`]: Ingress → desired Listener CRs, admission validation and port conflicts (no I/O).
//! - [`sync`]: desired listeners vs cloud listeners, as a plan of batched CLB calls, and the per-LB workers.
//! - [`cloud`]: the CLB API client at the edge (signing, rate limits, retries, task polling).
//! - [`pools`]: the port-pool state the webhook and the controllers share (allocator, pending allocations,
//!   leak judgements).
//! - [`randhostport`]: random hostPort for annotated pods (allocation order, request and patch; no I/O).
//! - [`runtime`]: controller machinery with no knowledge of any resource (reconcile driver, watches,
//!   finalizers, leader election, metrics server).
//! - [`webhook`]: the TLS admission server: Ingress/PortPool validation and the pod port-allocation webhook.
//! - [`controllers`]: the Listener, Ingress, PortPool and PortBinding reconcilers and the leak checker.
//! - [`manager`]: `clb-controller run`: wires clients, webhooks, metrics and leader election to the
//!   controllers.

pub mod allocator;
pub mod annotations;
pub mod api;
pub mod cloud;
pub mod controllers;
pub mod ingress;
pub mod manager;
pub mod pools;
pub mod randhostport;
pub mod runtime;
pub mod sync;
pub mod webhook;

/// Name under which events are reported, CRDs applied (server-side apply field manager) and the webhooks
/// registered.
pub const CONTROLLER_NAME: &str = "clb-controller";
