//! Pure core of the PortPool reconciler: the Listener CRs a pool item needs, which of them
//! to apply or delete, the item and pool status, the allocator's view of a pool and the ports to hold when the
//! allocator is rebuilt. No I/O; the reconciler in [`super`] does the watching and writing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::allocator::{Geometry, ItemSpec, ItemStatus};
use crate::api::naming::pool_listener_name;
use crate::api::{
    API_VERSION, Listener, ListenerSpec, PortPool, PortPoolItem, PortPoolItemStatus, Protocol, keys,
};
use crate::ingress::ResolvedLb;

/// `owner-kind` label value of pool listeners.
pub const OWNER_KIND_PORTPOOL: &str = "PortPool";
/// Label naming the pool item a listener belongs to (value: [`item_label_value`]). bcs used
/// `<poolName>/<md5(itemName)>` as a label *key*; one fixed key is listable with a selector.
pub const LABEL_PORTPOOL_ITEM: &str = "portpool.bkbcs.tencent.com/item";
/// Item message of a Ready item (bcs writes the same).
pub const MESSAGE_READY: &str = "Ready";

/// The item name as a label value: itself when it is a valid label value, else `h-` + a 64-bit FNV-1a hash
/// (item names may be 128 characters and contain characters labels refuse).
pub fn item_label_value(item: &str) -> String {
    let valid = !item.is_empty()
        && item.len() <= 63
        && item
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && item.starts_with(|c: char| c.is_ascii_alphanumeric())
        && item.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return item.to_owned();
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in item.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("h-{hash:016x}")
}

/// The first port and the inclusive last port (`None` for single ports) of every listener of an item: whole
/// segments only, so a trailing partial segment gets no listener (as [`Geometry`] counts segments).
pub fn item_slots(start_port: i32, end_port: i32, segment_length: i32) -> Vec<(i32, Option<i32>)> {
    let (Ok(start), Ok(end)) = (u16::try_from(start_port), u16::try_from(end_port)) else {
        return Vec::new();
    };
    let length = u16::try_from(segment_length.max(1)).unwrap_or(u16::MAX);
    let geometry = Geometry::new(start, end, length);
    (0..geometry.slot_count())
        .map(|slot| {
            let first = i32::from(geometry.slot_start(slot));
            let last = i32::from(geometry.slot_last(slot));
            (first, (geometry.segment_length > 1).then_some(last))
        })
        .collect()
}

/// Protocols of an item (`""`/unset = TCP and UDP); `None` when the value is not one the CRD allows.
pub fn item_protocols(item: &PortPoolItem) -> Option<Vec<Protocol>> {
    item.protocols()
}

/// Every Listener CR one item needs: one per slot per protocol per load balancer, named
/// `<lbID>-<proto>-<start>[-<end>]`, labelled with the pool and item, owned by the pool, with the pool's
/// `listenerAttribute`, the item's certificate and no targets (the PortBinding controller owns `targetGroup`).
pub fn item_listeners(pool: &PortPool, item: &PortPoolItem, lbs: &[ResolvedLb]) -> Vec<Listener> {
    let protocols = item_protocols(item).unwrap_or_default();
    let slots = item_slots(
        item.start_port,
        item.end_port,
        item.effective_segment_length(),
    );
    let mut out = Vec::with_capacity(slots.len() * protocols.len() * lbs.len());
    for lb in lbs {
        for &protocol in &protocols {
            for &(port, last) in &slots {
                out.push(pool_listener(pool, item, lb, protocol, port, last));
            }
        }
    }
    out
}

fn pool_listener(
    pool: &PortPool,
    item: &PortPoolItem,
    lb: &ResolvedLb,
    protocol: Protocol,
    port: i32,
    last: Option<i32>,
) -> Listener {
    let pool_name = pool.name_any();
    let bool_label = |b: bool| {
        if b {
            keys::LABEL_VALUE_TRUE
        } else {
            keys::LABEL_VALUE_FALSE
        }
        .to_owned()
    };
    let labels = BTreeMap::from([
        (
            keys::LABEL_PORTPOOL_LISTENER.to_owned(),
            keys::LABEL_VALUE_TRUE.to_owned(),
        ),
        (
            LABEL_PORTPOOL_ITEM.to_owned(),
            item_label_value(&item.item_name),
        ),
        (
            keys::LABEL_SEGMENT_LISTENER.to_owned(),
            bool_label(last.is_some()),
        ),
        (keys::LABEL_LB_ID.to_owned(), lb.id.clone()),
        (keys::LABEL_LB_REGION.to_owned(), lb.region.clone()),
        (
            keys::LABEL_OWNER_KIND.to_owned(),
            OWNER_KIND_PORTPOOL.to_owned(),
        ),
        (keys::LABEL_OWNER_NAME.to_owned(), pool_name.clone()),
        (
            keys::LABEL_UPTIME_CHECK.to_owned(),
            keys::LABEL_VALUE_TRUE.to_owned(),
        ),
    ]);
    // Without a uid (an object never stored) there is nothing valid to point at.
    let owner_references = pool.metadata.uid.as_ref().map(|uid| {
        vec![OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: OWNER_KIND_PORTPOOL.to_owned(),
            name: pool_name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }]
    });
    Listener {
        metadata: ObjectMeta {
            name: Some(pool_listener_name(
                &lb.id,
                protocol,
                port,
                last.unwrap_or(0),
            )),
            namespace: pool.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: ListenerSpec {
            loadbalancer_id: lb.id.clone(),
            port,
            end_port: last,
            protocol,
            listener_attribute: pool.spec.listener_attribute.clone(),
            certificate: item.certificate.clone(),
            target_group: None,
            rules: Vec::new(),
        },
        status: None,
    }
}

/// True when `existing` already carries everything `desired` sets (spec fields the pool owns, its labels and
/// owner reference); `targetGroup`, status, finalizers and foreign labels are not compared.
pub fn listener_matches(desired: &Listener, existing: &Listener) -> bool {
    let (d, e) = (&desired.spec, &existing.spec);
    let labels_ok = desired
        .labels()
        .iter()
        .all(|(k, v)| existing.labels().get(k) == Some(v));
    d.loadbalancer_id == e.loadbalancer_id
        && d.port == e.port
        && d.end_port.unwrap_or(0) == e.end_port.unwrap_or(0)
        && d.protocol == e.protocol
        && d.listener_attribute == e.listener_attribute
        && d.certificate == e.certificate
        && labels_ok
        && desired.metadata.owner_references == existing.metadata.owner_references
}

/// What to do with a pool's Listener CRs.
#[derive(Debug, Default)]
pub struct ListenerDiff {
    /// Missing or changed: server-side apply.
    pub apply: Vec<Listener>,
    /// Owned by the pool but no longer desired (item removed, LB removed from an item): delete.
    pub delete: Vec<String>,
    /// Desired but the old CR of that name is still being deleted: apply once it is gone.
    pub blocked: Vec<String>,
}

/// Compares the desired CRs of a pool with the CRs it owns now.
pub fn diff_listeners(desired: &[Listener], existing: &[Listener]) -> ListenerDiff {
    let by_name: HashMap<String, &Listener> = existing.iter().map(|l| (l.name_any(), l)).collect();
    let wanted: BTreeSet<String> = desired.iter().map(|l| l.name_any()).collect();
    let mut diff = ListenerDiff::default();
    for d in desired {
        match by_name.get(&d.name_any()) {
            Some(e) if e.metadata.deletion_timestamp.is_some() => diff.blocked.push(d.name_any()),
            Some(e) if listener_matches(d, e) => {}
            _ => diff.apply.push(d.clone()),
        }
    }
    let mut delete: Vec<String> = existing
        .iter()
        .filter(|e| e.metadata.deletion_timestamp.is_none() && !wanted.contains(&e.name_any()))
        .map(|e| e.name_any())
        .collect();
    delete.sort();
    diff.delete = delete;
    diff
}

/// Ready when every desired listener exists, is `Synced` and has a cloud id; else NotReady with a message per
/// load balancer naming how many of its listeners are not ready (bcs: "lb X: some listener of X was not ready").
pub fn item_readiness(desired: &[Listener], existing: &[Listener]) -> (ItemStatus, String) {
    let by_name: HashMap<String, &Listener> = existing.iter().map(|l| (l.name_any(), l)).collect();
    let mut pending: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for d in desired {
        let entry = pending.entry(d.spec.loadbalancer_id.as_str()).or_default();
        entry.1 += 1;
        let ready = by_name.get(&d.name_any()).is_some_and(|e| {
            e.metadata.deletion_timestamp.is_none()
                && e.status.as_ref().is_some_and(|s| {
                    s.status.as_deref() == Some(keys::LISTENER_STATUS_SYNCED)
                        && s.listener_id.as_deref().is_some_and(|id| !id.is_empty())
                })
        });
        if !ready {
            entry.0 += 1;
        }
    }
    let problems: Vec<String> = pending
        .iter()
        .filter(|(_, (not_ready, _))| *not_ready > 0)
        .map(|(lb, (not_ready, total))| {
            format!("lb {lb}: {not_ready} of {total} listeners are not ready")
        })
        .collect();
    if problems.is_empty() {
        (ItemStatus::Ready, MESSAGE_READY.to_owned())
    } else {
        (ItemStatus::NotReady, problems.join("; "))
    }
}

/// The `status.poolItems` entry of a spec item.
pub fn item_status(
    item: &PortPoolItem,
    lbs: &[ResolvedLb],
    status: ItemStatus,
    message: String,
) -> PortPoolItemStatus {
    PortPoolItemStatus {
        item_name: item.item_name.clone(),
        load_balancer_ids: item.load_balancer_ids.clone(),
        start_port: item.start_port,
        end_port: item.end_port,
        segment_length: item.segment_length.unwrap_or(0),
        pool_item_load_balancers: lbs.iter().map(ResolvedLb::to_status).collect(),
        status: status.to_string(),
        message,
        protocol: item_protocols(item)
            .unwrap_or_default()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        external: item.external.clone(),
    }
}

/// `status.status` of a pool: Ready iff every item is Ready.
pub fn pool_status(items: &[PortPoolItemStatus]) -> &'static str {
    if items
        .iter()
        .all(|i| i.status == ItemStatus::Ready.to_string())
    {
        keys::POOL_STATUS_READY
    } else {
        keys::POOL_STATUS_NOT_READY
    }
}

/// Status entries of items gone from the spec, marked Deleting (kept until their listeners are gone).
pub fn deleting_items(pool: &PortPool) -> Vec<PortPoolItemStatus> {
    let in_spec: BTreeSet<&str> = pool
        .spec
        .pool_items
        .iter()
        .map(|i| i.item_name.as_str())
        .collect();
    pool.status
        .iter()
        .flat_map(|s| &s.pool_items)
        .filter(|s| !in_spec.contains(s.item_name.as_str()))
        .map(|s| PortPoolItemStatus {
            status: ItemStatus::Deleting.to_string(),
            message: "item removed from spec; deleting its listeners".to_owned(),
            ..s.clone()
        })
        .collect()
}

/// The allocator's view of one status entry; `None` when its ports are out of range.
pub fn allocator_item(status: &PortPoolItemStatus) -> Option<ItemSpec> {
    let protocols: Vec<String> = if status.protocol.is_empty() {
        vec!["TCP".into(), "UDP".into()]
    } else {
        status.protocol.clone()
    };
    Some(ItemSpec {
        name: status.item_name.clone(),
        start_port: u16::try_from(status.start_port).ok()?,
        end_port: u16::try_from(status.end_port).ok()?,
        segment_length: u16::try_from(status.segment_length.max(0)).ok()?,
        tcp: protocols.iter().any(|p| p.eq_ignore_ascii_case("TCP")),
        udp: protocols.iter().any(|p| p.eq_ignore_ascii_case("UDP")),
        status: ItemStatus::from_status(&status.status),
    })
}

/// The allocator's items of a pool before its first reconcile: its recorded status entries (spec order first,
/// then removed items), and spec items not yet in status as NotReady.
pub fn allocator_items_of(pool: &PortPool) -> Vec<ItemSpec> {
    let recorded: HashMap<&str, &PortPoolItemStatus> = pool
        .status
        .iter()
        .flat_map(|s| &s.pool_items)
        .map(|s| (s.item_name.as_str(), s))
        .collect();
    let mut items: Vec<PortPoolItemStatus> = pool
        .spec
        .pool_items
        .iter()
        .map(|item| match recorded.get(item.item_name.as_str()) {
            // endPort may have grown in the spec before the status caught up: the status geometry is what
            // has listeners, so keep it.
            Some(s) => (*s).clone(),
            None => item_status(item, &[], ItemStatus::NotReady, String::new()),
        })
        .collect();
    items.extend(deleting_items(pool));
    items.iter().filter_map(allocator_item).collect()
}

#[cfg(test)]
mod tests;
