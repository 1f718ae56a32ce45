//! One pool item: its port geometry and a free set per protocol.

use std::fmt;
use std::sync::Arc;

use super::bitset::FreeSet;
use super::{AllocError, ItemSpec, ItemStatus, PoolKey, Protocol, RequestProtocol};

/// Port layout of an item.
///
/// Convention, the same everywhere (bcs counted segments differently in different places): the item covers the ports
/// `[start_port, end_port)` (end exclusive, as in bcs), cut into slots of `segment_length` ports
/// (0 and 1 both mean single ports). Slot `k` is the ports `start_port + k*L ..= start_port + k*L + L-1`.
/// Only whole slots exist: `slot_count = ⌊(end_port − start_port) / L⌋`; a trailing partial
/// segment is never handed out, and listener generation should skip it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// First port of the item.
    pub start_port: u16,
    /// One past the last port of the item.
    pub end_port: u16,
    /// Ports per slot (always ≥ 1 here).
    pub segment_length: u16,
}

impl Geometry {
    /// Geometry from the spec values; `segment_length` 0 is normalised to 1.
    pub fn new(start_port: u16, end_port: u16, segment_length: u16) -> Self {
        Geometry {
            start_port,
            end_port,
            segment_length: segment_length.max(1),
        }
    }

    /// Number of whole slots in `[start_port, end_port)`.
    pub fn slot_count(&self) -> u32 {
        u32::from(self.end_port.saturating_sub(self.start_port)) / u32::from(self.segment_length)
    }

    /// First port of slot `slot`.
    pub fn slot_start(&self, slot: u32) -> u16 {
        // Slots are < slot_count, so the result stays below end_port and fits in u16.
        (u32::from(self.start_port) + slot * u32::from(self.segment_length)) as u16
    }

    /// Last port (inclusive) of slot `slot`.
    pub fn slot_last(&self, slot: u32) -> u16 {
        self.slot_start(slot) + (self.segment_length - 1)
    }

    /// The slot that starts at `port`, if `port` is the first port of an existing slot.
    pub fn slot_of(&self, port: u16) -> Option<u32> {
        let offset = u32::from(port.checked_sub(self.start_port)?);
        let len = u32::from(self.segment_length);
        (offset % len == 0 && offset / len < self.slot_count()).then_some(offset / len)
    }
}

/// Free sets of one item. `both` exists when the item serves TCP and UDP and tracks the slots
/// free in both, so a TCP_UDP allocation is as cheap as a single-protocol one.
#[derive(Debug, Clone)]
pub struct ItemState {
    pub(super) name: Arc<str>,
    pub(super) status: ItemStatus,
    pub(super) geometry: Geometry,
    tcp: Option<FreeSet>,
    udp: Option<FreeSet>,
    both: Option<FreeSet>,
}

impl ItemState {
    /// A fresh item with every slot free.
    pub(super) fn new(pool: &PoolKey, spec: &ItemSpec) -> Result<Self, AllocError> {
        let geometry = validate_geometry(pool, spec)?;
        let mut item = ItemState {
            name: Arc::from(spec.name.as_str()),
            status: spec.status,
            geometry,
            tcp: None,
            udp: None,
            both: None,
        };
        item.set_protocols(pool, spec.tcp, spec.udp)?;
        Ok(item)
    }

    /// Applies a changed spec while keeping holdings: status, endPort growth, added protocols.
    pub(super) fn update(&mut self, pool: &PoolKey, spec: &ItemSpec) -> Result<(), AllocError> {
        let geometry = validate_geometry(pool, spec)?;
        let old = self.geometry;
        let immutable = if geometry.start_port != old.start_port {
            Some("startPort")
        } else if geometry.segment_length != old.segment_length {
            Some("segmentLength")
        } else {
            None
        };
        if let Some(field) = immutable {
            return Err(AllocError::InvalidItem {
                pool: pool.clone(),
                item: spec.name.clone(),
                reason: format!("{field} cannot change on an existing item"),
            });
        }
        if geometry.end_port < old.end_port {
            return Err(AllocError::InvalidItem {
                pool: pool.clone(),
                item: spec.name.clone(),
                reason: format!(
                    "endPort may only grow (from {} to {} requested)",
                    old.end_port, geometry.end_port
                ),
            });
        }
        self.set_protocols(pool, spec.tcp, spec.udp)?;
        self.geometry = geometry;
        let slots = geometry.slot_count();
        for set in [&mut self.tcp, &mut self.udp, &mut self.both]
            .into_iter()
            .flatten()
        {
            set.grow(slots);
        }
        self.status = spec.status;
        Ok(())
    }

    fn set_protocols(&mut self, pool: &PoolKey, tcp: bool, udp: bool) -> Result<(), AllocError> {
        if !tcp && !udp {
            return Err(AllocError::InvalidItem {
                pool: pool.clone(),
                item: self.name.to_string(),
                reason: "the item serves no protocol".to_string(),
            });
        }
        let slots = self.geometry.slot_count();
        for (wanted, set, proto) in [
            (tcp, &mut self.tcp, Protocol::Tcp),
            (udp, &mut self.udp, Protocol::Udp),
        ] {
            match (wanted, set.as_ref()) {
                (true, None) => *set = Some(FreeSet::new(slots)),
                (false, Some(s)) if s.held_count() > 0 => {
                    return Err(AllocError::InvalidItem {
                        pool: pool.clone(),
                        item: self.name.to_string(),
                        reason: format!(
                            "protocol {proto} cannot be removed while {} of its ports are held",
                            s.held_count()
                        ),
                    });
                }
                (false, Some(_)) => *set = None,
                _ => {}
            }
        }
        self.both = match (&self.tcp, &self.udp) {
            (Some(t), Some(u)) => {
                let mut both = FreeSet::new(slots);
                for slot in 0..slots {
                    if !(t.is_free(slot) && u.is_free(slot)) {
                        both.take(slot);
                    }
                }
                Some(both)
            }
            _ => None,
        };
        Ok(())
    }

    /// Item name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Item status.
    pub fn status(&self) -> ItemStatus {
        self.status
    }

    /// Port layout.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// True when the item serves every protocol of `request`.
    pub fn serves(&self, request: RequestProtocol) -> bool {
        match request {
            RequestProtocol::Tcp => self.tcp.is_some(),
            RequestProtocol::Udp => self.udp.is_some(),
            RequestProtocol::TcpUdp => self.both.is_some(),
        }
    }

    /// Protocols the item serves, for messages.
    pub(super) fn protocols_label(&self) -> ProtocolsLabel {
        ProtocolsLabel(self.tcp.is_some(), self.udp.is_some())
    }

    fn set(&self, request: RequestProtocol) -> Option<&FreeSet> {
        match request {
            RequestProtocol::Tcp => self.tcp.as_ref(),
            RequestProtocol::Udp => self.udp.as_ref(),
            RequestProtocol::TcpUdp => self.both.as_ref(),
        }
    }

    /// Free slots for `request` (for TCP_UDP: slots free in both protocols); 0 if not served.
    pub fn free_count(&self, request: RequestProtocol) -> u32 {
        self.set(request).map_or(0, FreeSet::free_count)
    }

    /// Capacity and held slots of one protocol, `None` if the item does not serve it.
    pub fn usage(&self, protocol: Protocol) -> Option<(u32, u32)> {
        let set = match protocol {
            Protocol::Tcp => self.tcp.as_ref(),
            Protocol::Udp => self.udp.as_ref(),
        }?;
        Some((set.len(), set.held_count()))
    }

    /// Lowest slot free for `request`.
    pub(super) fn lowest_free(&self, request: RequestProtocol) -> Option<u32> {
        self.set(request)?.first_free()
    }

    /// True when `slot` is free for `request`.
    pub(super) fn is_free(&self, request: RequestProtocol, slot: u32) -> bool {
        self.set(request).is_some_and(|s| s.is_free(slot))
    }

    /// Holds `slot` for every protocol of `request`; the caller checked it is free.
    pub(super) fn take(&mut self, request: RequestProtocol, slot: u32) {
        let (tcp, udp) = request_flags(request);
        if tcp && let Some(set) = self.tcp.as_mut() {
            set.take(slot);
        }
        if udp && let Some(set) = self.udp.as_mut() {
            set.take(slot);
        }
        if let Some(both) = self.both.as_mut() {
            both.take(slot);
        }
    }

    /// Frees `slot` for every protocol of `request`. Returns true if anything was held.
    pub(super) fn release(&mut self, request: RequestProtocol, slot: u32) -> bool {
        let (tcp, udp) = request_flags(request);
        let mut released = false;
        if tcp && let Some(set) = self.tcp.as_mut() {
            released |= set.release(slot);
        }
        if udp && let Some(set) = self.udp.as_mut() {
            released |= set.release(slot);
        }
        if let (Some(both), Some(t), Some(u)) = (self.both.as_mut(), &self.tcp, &self.udp)
            && t.is_free(slot)
            && u.is_free(slot)
        {
            both.release(slot);
        }
        released
    }

    /// Which single protocol of `request` holds `slot`, for conflict messages.
    pub(super) fn held_protocol(&self, request: RequestProtocol, slot: u32) -> Protocol {
        match request {
            RequestProtocol::Tcp => Protocol::Tcp,
            RequestProtocol::Udp => Protocol::Udp,
            RequestProtocol::TcpUdp => {
                if self.tcp.as_ref().is_some_and(|s| !s.is_free(slot)) {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                }
            }
        }
    }
}

fn request_flags(request: RequestProtocol) -> (bool, bool) {
    match request {
        RequestProtocol::Tcp => (true, false),
        RequestProtocol::Udp => (false, true),
        RequestProtocol::TcpUdp => (true, true),
    }
}

fn validate_geometry(pool: &PoolKey, spec: &ItemSpec) -> Result<Geometry, AllocError> {
    if spec.start_port == 0 || spec.end_port <= spec.start_port {
        return Err(AllocError::InvalidItem {
            pool: pool.clone(),
            item: spec.name.clone(),
            reason: format!(
                "port range [{}, {}) is empty or starts at 0",
                spec.start_port, spec.end_port
            ),
        });
    }
    Ok(Geometry::new(
        spec.start_port,
        spec.end_port,
        spec.segment_length,
    ))
}

/// Display helper: "TCP", "UDP" or "TCP,UDP".
pub(super) struct ProtocolsLabel(bool, bool);

impl fmt::Display for ProtocolsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (true, true) => f.write_str("TCP,UDP"),
            (true, false) => f.write_str("TCP"),
            (false, true) => f.write_str("UDP"),
            (false, false) => f.write_str("no protocol"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_counts_only_whole_segments() {
        let g = Geometry::new(31000, 31100, 5);
        assert_eq!(g.slot_count(), 20);
        assert_eq!(g.slot_start(1), 31005);
        assert_eq!(g.slot_last(1), 31009);
        assert_eq!(g.slot_of(31005), Some(1));
        assert_eq!(g.slot_of(31006), None);
        assert_eq!(g.slot_of(31100), None);
        assert_eq!(g.slot_of(30999), None);
        // 31000..31012 with L=5: two whole segments, the partial one (31010, 31011) is not a slot.
        let g = Geometry::new(31000, 31012, 5);
        assert_eq!(g.slot_count(), 2);
        assert_eq!(g.slot_of(31010), None);
        // Single ports: end is exclusive.
        let g = Geometry::new(31000, 31010, 0);
        assert_eq!(g.slot_count(), 10);
        assert_eq!(g.slot_of(31009), Some(9));
        assert_eq!(g.slot_of(31010), None);
        assert_eq!(g.slot_last(9), 31009);
    }
}
