//! Pools of items and the allocator over all pools.

use std::collections::{BTreeMap, HashMap};

use super::item::ItemState;
use super::{
    AllocError, AllocatePolicy, Allocation, ItemSpec, ItemStatus, PoolKey, Protocol,
    RequestProtocol,
};

/// One port pool: policy and items in spec order.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    policy: AllocatePolicy,
    items: Vec<ItemState>,
    index: HashMap<String, usize>,
}

/// Capacity and use of one item and protocol, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUsage {
    /// Item name.
    pub item: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Item status.
    pub status: ItemStatus,
    /// Number of ports (or segments).
    pub capacity: u32,
    /// Number held.
    pub used: u32,
}

impl Pool {
    /// Allocation policy.
    pub fn policy(&self) -> AllocatePolicy {
        self.policy
    }

    /// Items in spec order.
    pub fn items(&self) -> &[ItemState] {
        &self.items
    }

    /// Item by name.
    pub fn item(&self, name: &str) -> Option<&ItemState> {
        self.index.get(name).map(|&i| &self.items[i])
    }

    fn eligible(item: &ItemState, protocol: RequestProtocol) -> bool {
        item.status == ItemStatus::Ready && item.serves(protocol)
    }

    /// Index of the item to allocate from under the pool policy.
    fn pick(&self, protocol: RequestProtocol) -> Option<usize> {
        let candidates =
            self.items.iter().enumerate().filter(|(_, item)| {
                Self::eligible(item, protocol) && item.free_count(protocol) > 0
            });
        match self.policy {
            AllocatePolicy::Default => candidates.map(|(i, _)| i).next(),
            // max_by_key keeps the last maximum; reversing keeps the first one in spec order.
            AllocatePolicy::Average => candidates
                .rev()
                .max_by_key(|(_, item)| item.free_count(protocol))
                .map(|(i, _)| i),
        }
    }
}

/// Every port pool the controller knows, keyed by (namespace, name).
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: BTreeMap<PoolKey, Pool>,
}

impl Allocator {
    /// An empty allocator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool with this key.
    pub fn pool(&self, key: &PoolKey) -> Option<&Pool> {
        self.pools.get(key)
    }

    /// Keys of all pools, sorted.
    pub fn pool_keys(&self) -> impl Iterator<Item = &PoolKey> {
        self.pools.keys()
    }

    /// Creates or updates a pool from its current items (PortPool status order, Deleting items
    /// included). Existing items keep their holdings; endPort may grow; items missing from
    /// `items` are dropped with their holdings (the caller drops an item only once no binding
    /// uses it). On error nothing changes.
    pub fn sync_pool(
        &mut self,
        key: &PoolKey,
        policy: AllocatePolicy,
        items: &[ItemSpec],
    ) -> Result<(), AllocError> {
        let mut old = self.pools.get(key).cloned().unwrap_or_default();
        let mut next = Pool {
            policy,
            items: Vec::with_capacity(items.len()),
            index: HashMap::with_capacity(items.len()),
        };
        for spec in items {
            if next.index.contains_key(&spec.name) {
                return Err(AllocError::InvalidItem {
                    pool: key.clone(),
                    item: spec.name.clone(),
                    reason: "item name appears twice".to_string(),
                });
            }
            let state = match old.index.remove(&spec.name) {
                Some(i) => {
                    let mut state = old.items[i].clone();
                    state.update(key, spec)?;
                    state
                }
                None => ItemState::new(key, spec)?,
            };
            next.index.insert(spec.name.clone(), next.items.len());
            next.items.push(state);
        }
        self.pools.insert(key.clone(), next);
        Ok(())
    }

    /// Sets the status of one item (e.g. Ready after its listeners exist).
    pub fn set_item_status(
        &mut self,
        key: &PoolKey,
        item: &str,
        status: ItemStatus,
    ) -> Result<(), AllocError> {
        self.item_mut(key, item)?.status = status;
        Ok(())
    }

    /// Forgets a pool and all its holdings.
    pub fn remove_pool(&mut self, key: &PoolKey) -> bool {
        self.pools.remove(key).is_some()
    }

    /// Allocates the lowest free port (or segment) for `protocol`, from `item` if pinned, else
    /// from the item the pool policy picks. Only Ready items are used.
    pub fn allocate(
        &mut self,
        key: &PoolKey,
        protocol: RequestProtocol,
        item: Option<&str>,
    ) -> Result<Allocation, AllocError> {
        let pool = self
            .pools
            .get_mut(key)
            .ok_or_else(|| AllocError::PoolNotFound { pool: key.clone() })?;
        let index = match item {
            Some(name) => {
                let i = *pool
                    .index
                    .get(name)
                    .ok_or_else(|| AllocError::ItemNotFound {
                        pool: key.clone(),
                        item: name.to_string(),
                    })?;
                let state = &pool.items[i];
                if state.status != ItemStatus::Ready {
                    return Err(AllocError::ItemNotReady {
                        pool: key.clone(),
                        item: name.to_string(),
                        status: state.status,
                    });
                }
                if !state.serves(protocol) {
                    return Err(AllocError::ProtocolNotServed {
                        pool: key.clone(),
                        item: name.to_string(),
                        protocol,
                        serves: state.protocols_label().to_string(),
                    });
                }
                i
            }
            None => pool
                .pick(protocol)
                .ok_or_else(|| AllocError::PoolExhausted {
                    pool: key.clone(),
                    protocol,
                    eligible: pool
                        .items
                        .iter()
                        .filter(|s| Pool::eligible(s, protocol))
                        .count(),
                    items: pool.items.len(),
                })?,
        };
        let state = &mut pool.items[index];
        let slot = state
            .lowest_free(protocol)
            .ok_or_else(|| AllocError::ItemExhausted {
                pool: key.clone(),
                item: state.name.to_string(),
                protocol,
            })?;
        state.take(protocol, slot);
        Ok(allocation(state, protocol, slot))
    }

    /// Holds the port (or segment) starting at `start_port` of `item`, whatever the item
    /// status: used to rebuild from existing bindings and to reuse a kept binding. Fails if
    /// the port is not a slot start of the item or is already held (nothing changes then).
    pub fn allocate_specific(
        &mut self,
        key: &PoolKey,
        item: &str,
        protocol: RequestProtocol,
        start_port: u16,
    ) -> Result<Allocation, AllocError> {
        let state = self.item_mut(key, item)?;
        let slot = slot_of(key, state, start_port)?;
        if !state.serves(protocol) {
            return Err(AllocError::ProtocolNotServed {
                pool: key.clone(),
                item: item.to_string(),
                protocol,
                serves: state.protocols_label().to_string(),
            });
        }
        if !state.is_free(protocol, slot) {
            return Err(AllocError::PortInUse {
                pool: key.clone(),
                item: item.to_string(),
                protocol: state.held_protocol(protocol, slot),
                port: start_port,
            });
        }
        state.take(protocol, slot);
        Ok(allocation(state, protocol, slot))
    }

    /// Frees the port (or segment) starting at `start_port`. Returns whether anything was held.
    pub fn release(
        &mut self,
        key: &PoolKey,
        item: &str,
        protocol: RequestProtocol,
        start_port: u16,
    ) -> Result<bool, AllocError> {
        let state = self.item_mut(key, item)?;
        let slot = slot_of(key, state, start_port)?;
        Ok(state.release(protocol, slot))
    }

    /// True when the port (or segment) starting at `start_port` is free for `protocol`.
    pub fn is_free(
        &self,
        key: &PoolKey,
        item: &str,
        protocol: RequestProtocol,
        start_port: u16,
    ) -> Result<bool, AllocError> {
        let state = self.item(key, item)?;
        let slot = slot_of(key, state, start_port)?;
        Ok(state.is_free(protocol, slot))
    }

    /// Capacity and use per item and protocol of one pool, for metrics.
    pub fn usage(&self, key: &PoolKey) -> Result<Vec<ItemUsage>, AllocError> {
        let pool = self
            .pools
            .get(key)
            .ok_or_else(|| AllocError::PoolNotFound { pool: key.clone() })?;
        Ok(pool
            .items
            .iter()
            .flat_map(|item| {
                [Protocol::Tcp, Protocol::Udp]
                    .into_iter()
                    .filter_map(move |protocol| {
                        let (capacity, used) = item.usage(protocol)?;
                        Some(ItemUsage {
                            item: item.name.to_string(),
                            protocol,
                            status: item.status,
                            capacity,
                            used,
                        })
                    })
            })
            .collect())
    }

    fn item(&self, key: &PoolKey, item: &str) -> Result<&ItemState, AllocError> {
        let pool = self
            .pools
            .get(key)
            .ok_or_else(|| AllocError::PoolNotFound { pool: key.clone() })?;
        pool.item(item).ok_or_else(|| AllocError::ItemNotFound {
            pool: key.clone(),
            item: item.to_string(),
        })
    }

    fn item_mut(&mut self, key: &PoolKey, item: &str) -> Result<&mut ItemState, AllocError> {
        let pool = self
            .pools
            .get_mut(key)
            .ok_or_else(|| AllocError::PoolNotFound { pool: key.clone() })?;
        match pool.index.get(item) {
            Some(&i) => Ok(&mut pool.items[i]),
            None => Err(AllocError::ItemNotFound {
                pool: key.clone(),
                item: item.to_string(),
            }),
        }
    }
}

fn allocation(state: &ItemState, protocol: RequestProtocol, slot: u32) -> Allocation {
    let g = state.geometry;
    Allocation {
        item: state.name.clone(),
        protocol,
        start_port: g.slot_start(slot),
        last_port: g.slot_last(slot),
    }
}

fn slot_of(key: &PoolKey, state: &ItemState, port: u16) -> Result<u32, AllocError> {
    let g = state.geometry;
    g.slot_of(port).ok_or_else(|| AllocError::PortNotInItem {
        pool: key.clone(),
        item: state.name.to_string(),
        port,
        what: if g.segment_length > 1 {
            "segment start"
        } else {
            "port"
        },
        range: if g.segment_length > 1 {
            format!(
                "ports [{}, {}), segments of {}",
                g.start_port, g.end_port, g.segment_length
            )
        } else {
            format!("ports [{}, {})", g.start_port, g.end_port)
        },
    })
}
