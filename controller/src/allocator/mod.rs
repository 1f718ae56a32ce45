//! Port allocation for pool items (pure, deterministic, no I/O).
//!
//! The [`Allocator`] holds every port pool keyed by [`PoolKey`] (namespace, name); each pool keeps
//! its items in spec order, and each item keeps one [`bitset::FreeSet`] per protocol, so finding
//! the lowest free port (or segment) costs a few word operations instead of the linear scan of
//! bcs-ingress-controller. The caller wraps the allocator in a lock and feeds it from PortPool
//! status (items, status, endPort growth) and from existing bindings (`allocate_specific`).
//!
//! Differences from bcs, on purpose: only `Ready` items hand out new ports, and
//! segments are counted the same way everywhere (see [`item::Geometry`]).

pub mod bitset;
pub mod item;
mod pool;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use item::{Geometry, ItemState};
pub use pool::{Allocator, ItemUsage, Pool};

/// A port pool's identity: its namespace and name.
pub type PoolKey = crate::api::ObjectKey;

/// A transport protocol a pool item listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Upper-case name as written in CRs and env var names.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one allocation asks for: one protocol, or the same port in both (`TCP_UDP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestProtocol {
    /// A TCP port.
    Tcp,
    /// A UDP port.
    Udp,
    /// The same port number in TCP and UDP.
    TcpUdp,
}

impl RequestProtocol {
    /// The single protocols this request holds, in TCP, UDP order.
    pub fn protocols(self) -> &'static [Protocol] {
        match self {
            RequestProtocol::Tcp => &[Protocol::Tcp],
            RequestProtocol::Udp => &[Protocol::Udp],
            RequestProtocol::TcpUdp => &[Protocol::Tcp, Protocol::Udp],
        }
    }

    /// Name as written in the pod annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Tcp => "TCP",
            RequestProtocol::Udp => "UDP",
            RequestProtocol::TcpUdp => "TCP_UDP",
        }
    }
}

impl From<Protocol> for RequestProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => RequestProtocol::Tcp,
            Protocol::Udp => RequestProtocol::Udp,
        }
    }
}

impl fmt::Display for RequestProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Item status as reported in `PortPool.status.poolItems[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemStatus {
    /// Every listener of the item exists: ports may be handed out.
    Ready,
    /// Listeners still being created: no new ports (bcs would hand them out).
    NotReady,
    /// Item removed from the spec, waiting for its bindings to go: no new ports.
    Deleting,
}

impl ItemStatus {
    /// Parses the CR value; anything but `Ready`/`Deleting` counts as not ready.
    pub fn from_status(value: &str) -> Self {
        match value {
            "Ready" => ItemStatus::Ready,
            "Deleting" => ItemStatus::Deleting,
            _ => ItemStatus::NotReady,
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemStatus::Ready => "Ready",
            ItemStatus::NotReady => "NotReady",
            ItemStatus::Deleting => "Deleting",
        })
    }
}

/// Which item serves a request when none is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllocatePolicy {
    /// First item in spec order that has a free port.
    #[default]
    Default,
    /// Item with the most free ports for the requested protocol (ties: spec order).
    Average,
}

impl FromStr for AllocatePolicy {
    type Err = AllocError;

    /// `""` and `default` mean [`AllocatePolicy::Default`], `average` means
    /// [`AllocatePolicy::Average`] (the values the PortPool webhook accepts).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "default" => Ok(AllocatePolicy::Default),
            "average" => Ok(AllocatePolicy::Average),
            other => Err(AllocError::UnknownPolicy(other.to_string())),
        }
    }
}

/// The allocator's view of one pool item (from PortPool status + spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSpec {
    /// `itemName`.
    pub name: String,
    /// First port.
    pub start_port: u16,
    /// One past the last port (`endPort`, exclusive).
    pub end_port: u16,
    /// `segmentLength`; 0 or 1 mean single ports.
    pub segment_length: u16,
    /// Serves TCP.
    pub tcp: bool,
    /// Serves UDP.
    pub udp: bool,
    /// Current item status.
    pub status: ItemStatus,
}

/// A port (or segment) handed out by the allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Item the port belongs to.
    pub item: Arc<str>,
    /// Protocol(s) held.
    pub protocol: RequestProtocol,
    /// First port.
    pub start_port: u16,
    /// Last port, inclusive (equal to `start_port` for single ports).
    pub last_port: u16,
}

impl Allocation {
    /// The `endPort` value of a PortBinding item: 0 for a single port, else the last port.
    pub fn binding_end_port(&self) -> u16 {
        if self.last_port == self.start_port {
            0
        } else {
            self.last_port
        }
    }
}

/// Why an allocation or update failed; messages are fit for an admission denial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// No pool with that key.
    #[error("port pool {pool} not found")]
    PoolNotFound {
        /// Requested pool.
        pool: PoolKey,
    },
    /// The pinned item does not exist in the pool.
    #[error("item \"{item}\" not found in port pool {pool}")]
    ItemNotFound {
        /// Pool.
        pool: PoolKey,
        /// Requested item.
        item: String,
    },
    /// The pinned item exists but may not hand out ports.
    #[error(
        "item \"{item}\" of port pool {pool} is {status}; ports are only allocated from Ready items"
    )]
    ItemNotReady {
        /// Pool.
        pool: PoolKey,
        /// Item.
        item: String,
        /// Its status.
        status: ItemStatus,
    },
    /// The pinned item does not listen on the requested protocol.
    #[error("item \"{item}\" of port pool {pool} serves {serves}, not {protocol}")]
    ProtocolNotServed {
        /// Pool.
        pool: PoolKey,
        /// Item.
        item: String,
        /// Requested protocol.
        protocol: RequestProtocol,
        /// What it serves, e.g. "TCP,UDP".
        serves: String,
    },
    /// The pinned item has no free port for the protocol.
    #[error("item \"{item}\" of port pool {pool} has no free {protocol} port left")]
    ItemExhausted {
        /// Pool.
        pool: PoolKey,
        /// Item.
        item: String,
        /// Requested protocol.
        protocol: RequestProtocol,
    },
    /// No eligible item has a free port for the protocol.
    #[error(
        "port pool {pool} has no free {protocol} port ({eligible} of {items} items are Ready and serve {protocol})"
    )]
    PoolExhausted {
        /// Pool.
        pool: PoolKey,
        /// Requested protocol.
        protocol: RequestProtocol,
        /// Items that are Ready and serve the protocol.
        eligible: usize,
        /// All items of the pool.
        items: usize,
    },
    /// A specific port is not the first port of a slot of the item.
    #[error("port {port} is not a {what} of item \"{item}\" of port pool {pool} ({range})")]
    PortNotInItem {
        /// Pool.
        pool: PoolKey,
        /// Item.
        item: String,
        /// Port asked for.
        port: u16,
        /// "port" or "segment start".
        what: &'static str,
        /// The item's layout, e.g. "ports [31000, 31100), segments of 5".
        range: String,
    },
    /// A specific port is already held.
    #[error("{protocol} port {port} of item \"{item}\" of port pool {pool} is already in use")]
    PortInUse {
        /// Pool.
        pool: PoolKey,
        /// Item.
        item: String,
        /// The protocol that holds it.
        protocol: Protocol,
        /// Port.
        port: u16,
    },
    /// An item spec cannot be applied.
    #[error("invalid item \"{item}\" of port pool {pool}: {reason}")]
    InvalidItem {
        /// Pool.
        pool: PoolKey,
        /// Item.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// `allocatePolicy` is not one of "", `default`, `average`.
    #[error("unknown allocatePolicy \"{0}\" (expected \"default\" or \"average\")")]
    UnknownPolicy(String),
}

#[cfg(test)]
mod tests;
