//! Pod annotation grammar and the values the webhook writes back (pure functions).
//!
//! Request side: [`parse_port_requests`] reads `ports.portpools.networkextension.bkbcs.tencent.com`
//! (the pod opts in with the presence of [`PORT_POOLS`]). Write side: the
//! [`POOL_BINDINGS`] JSON ([`PoolBindingItem`]), the `BCS_PORTPOOL_PORT_VIPLIST_*` env vars and
//! the readiness gate condition type.

use crate::api::keys;

mod binding;
mod grammar;
pub mod weight;

pub use binding::{
    BindingProtocol, ItemLoadBalancer, PoolBindingItem, env_var_name, env_var_value,
    parse_pool_bindings, render_pool_bindings,
};
pub use grammar::{
    ContainerPort, Location, PoolRef, PortRequest, ProtocolSource, parse_port_requests,
};

// The keys are defined once, in `api::keys`; these short names are what the pool code reads.

/// Presence (any value) opts a pod into port-pool injection.
pub const PORT_POOLS: &str = keys::ANNOTATION_PORTPOOLS;
/// The port request grammar (see [`parse_port_requests`]).
pub const PORTS: &str = keys::ANNOTATION_PORTPOOL_PORTS;
/// JSON list of [`PoolBindingItem`] written by the webhook.
pub const POOL_BINDINGS: &str = keys::ANNOTATION_POOL_BINDINGS;
/// `NotReady` at admission, `Ready` once the PortBinding is Ready.
pub const STATUS: &str = keys::ANNOTATION_PORTPOOL_STATUS;
/// Id of the reservation the webhook made for the pod's ports (ours, not bcs'): the pod validating webhook
/// matches it, so ports of a pod that is never stored are released within seconds.
pub const RESERVATION: &str = keys::ANNOTATION_PORTPOOL_RESERVATION;
/// Go duration ("5m", "2h45m") to keep the ports of a fixed-name pod after deletion.
pub const KEEP_DURATION: &str = keys::ANNOTATION_KEEP_DURATION;
/// Presence adds [`READINESS_GATE_CONDITION`] to the pod's readiness gates.
pub const READINESS_GATE: &str = keys::ANNOTATION_READINESS_GATE;
/// Pod condition type of the readiness gate.
pub const READINESS_GATE_CONDITION: &str = keys::READINESS_GATE_PORTBINDING_READY;
/// Prefix of the env vars injected into every container.
pub const ENV_PREFIX: &str = keys::ENV_VIPLIST_PREFIX;

/// Why an annotation could not be read; messages say what and where, for admission denials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// The request annotation has no entry.
    #[error(
        "annotation {PORTS} is empty: expected entries like \"<pool>[/<item>][.<namespace>] [<protocol>] <port>[/hostport]\""
    )]
    Empty,
    /// One entry is malformed or cannot be resolved.
    #[error("{location}: {message}")]
    Entry {
        /// Where in the annotation.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The bindings JSON cannot be read or written.
    #[error("annotation {POOL_BINDINGS} is not valid JSON of port bindings: {0}")]
    Bindings(String),
}

#[cfg(test)]
mod tests;
