//! Listener sync: desired Listener state vs the cloud, as a pure plan of batched calls.
//!
//! One worker per load balancer reads the Listener CRs of its LB ([`DesiredListener`],
//! [`DeletingListener`]) and the LB's listeners as DescribeListeners + DescribeTargets return
//! them ([`CloudListener`]), calls [`plan`], and hands the [`Plan`] to a thin executor that maps
//! each [`Step`] to one CLB call. The planner does no I/O; only [`executor`] (reading the LB,
//! running a plan) and [`worker`] (one task per LB, retries, resync) touch the cloud, and neither
//! knows Kubernetes. [`Batcher`] decides when the worker runs: at once when idle, coalesced while
//! a pass is in flight.
//!
//! # Identity
//!
//! A cloud listener is identified by (protocol, port[, endPort]) on its LB ([`ListenerKey`]), as in
//! bcs-ingress-controller; names are written at creation only. TCP, TCP_SSL, HTTP and HTTPS share
//! one port space, UDP and QUIC another; a range listener occupies `[port, endPort]`.
//!
//! # Ownership rule (safety)
//!
//! The plan never deletes or modifies a cloud listener that is not ours. A cloud listener is ours
//! when its id is the `known_listener_id` (CR `status.listenerID`) of a desired or deleting
//! listener, or when its key equals a desired listener's key exactly (adoption after a lost
//! status, as bcs identifies listeners). Concretely:
//! - a cloud listener whose key equals an accepted desired key is kept and updated in place;
//! - any other cloud listener is deleted only if its id is the known id of an accepted desired
//!   listener (it moved: protocol or range changed, same port → delete + recreate) or of a
//!   deleting listener; an id held only by a blocked desired listener is left alone;
//! - everything else is foreign and untouched; a desired listener whose ports overlap a foreign
//!   one is [`Blocked`] with [`BlockReason::PortInUse`] instead of sending a create that fails.
//!
//! Between Listener CRs that want overlapping ports, the one whose key is already in the cloud
//! wins, then key and owner order; the loser is blocked with [`BlockReason::ConflictsWith`] even if
//! the winner is later blocked by a foreign listener (the webhook's conflict check should prevent
//! such CRs in the first place).
//!
//! A deleting listener without a known id deletes nothing (we cannot prove the listener at its
//! key is ours); it is done once no step names it.
//!
//! # Step order
//!
//! Deletes first (`DeleteLoadBalancerListeners`, ≤ 20 ids, never empty: [`NonEmpty`]), then
//! creates (`CreateListener`, same protocol and identical settings, ≤ 49 ports; a range listener
//! alone), `ModifyListener` (only differing fields), L7 rule deletes/creates/modifies and domain
//! certificates, then targets aggregated across listeners: `BatchDeregisterTargets`,
//! `BatchRegisterTargets` (≤ 500 each), `BatchModifyTargetWeight` (≤ 100 rules, ≤ 50 targets each,
//! ≤ 500 in all). Steps about listeners or rules created by the same plan name them by key
//! ([`ListenerRef::Key`], [`RuleRef::Key`]); the executor resolves these from the ids the create
//! calls return (CreateListener's `ListenerIds` are positional, as are CreateRule's `LocationIds`).
//!
//! # Status
//!
//! Every step lists the Listener CRs it serves. A CR is Synced when every step naming it
//! succeeded (trivially so when none does); a failed step marks exactly its owners NotSynced with
//! the cloud error, and steps that refer by key to a listener or rule whose create failed are
//! skipped and count as failed for their owners. [`Plan::listeners`] says where each desired
//! listener lives, for `status.listenerID`; [`Plan::blocked`] gives the message for the rest.
//!
//! # Differences from bcs, on purpose
//!
//! - Health checks: `enabled` is always compared, so turning health checks off converges (bcs only
//!   compared non-zero fields). Other fields are compared only when the CR sets them.
//! - Listener-level certificate, SNI and keep-alive are sent on every create and
//!   compared on update for L4 and L7 alike; SNI 1 → 0 (not allowed by ModifyListener) recreates.
//! - Port-range listeners get weight updates like any other listener.
//! - Conflicting Listener CRs and ports held by foreign listeners are reported per CR instead of
//!   failing the whole batch.

mod batcher;
pub mod executor;
mod model;
mod nonempty;
mod plan;
pub mod worker;

#[cfg(test)]
mod tests;

pub use batcher::{Batch, Batcher};
pub use executor::{ExecutionReport, Outcome, execute, read_cloud};
pub use model::{
    AttributeChanges, Attributes, Certificate, CloudListener, CloudRule, DeletingListener,
    DesiredListener, DesiredRule, Endpoint, HealthCheck, ListenerKey, OwnerRef, PortClass,
    Protocol, RuleKey, Scheduler, Target, TargetSet, attribute_changes,
};
pub use nonempty::NonEmpty;
pub use plan::{
    BlockReason, Blocked, BoundTarget, Call, Limits, ListenerChanges, ListenerRef, ListenerSpec,
    NewListener, NewRule, Plan, RuleRef, Step, WeightChange, plan, plan_with,
};
pub use worker::{DesiredSource, LbWorker, Snapshot, StatusSink, WorkerConfig, WorkerPool};
