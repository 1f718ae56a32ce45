//! Ports as the allocator holds them, read from what the API server records: PortBindings and pods'
//! `poolbindings` annotations.

use std::collections::BTreeSet;

use crate::allocator::{PoolKey, Protocol as PoolProtocol};
use crate::annotations::PoolBindingItem;
use crate::api::PortBinding;

/// A port (or segment) some pod or node already holds: (pool, item, protocol, first port).
pub type HeldPort = (PoolKey, String, PoolProtocol, u16);

/// Every port recorded in PortBindings and in pods' `poolbindings` annotations (parsed), deduplicated.
pub fn held_ports<'a>(
    bindings: &[PortBinding],
    annotations: impl IntoIterator<Item = &'a [PoolBindingItem]>,
) -> BTreeSet<HeldPort> {
    let mut held = BTreeSet::new();
    for binding in bindings {
        for item in &binding.spec.port_binding_list {
            let protocol = match item.protocol.to_ascii_uppercase().as_str() {
                "TCP" => PoolProtocol::Tcp,
                "UDP" => PoolProtocol::Udp,
                _ => continue,
            };
            let Ok(port) = u16::try_from(item.start_port) else {
                continue;
            };
            held.insert((
                PoolKey::new(&item.pool_namespace, &item.pool_name),
                item.pool_item_name.clone(),
                protocol,
                port,
            ));
        }
    }
    for items in annotations {
        for item in items {
            held.insert((
                PoolKey::new(&item.pool_namespace, &item.pool_name),
                item.pool_item_name.clone(),
                item.protocol.into(),
                item.start_port,
            ));
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::BindingProtocol;
    use crate::api::{PortBindingItem, PortBindingSpec};

    #[test]
    fn held_ports_merge_bindings_and_annotations_without_duplicates() {
        let binding = PortBinding::new(
            "pod-1",
            PortBindingSpec {
                port_binding_list: vec![PortBindingItem {
                    pool_name: "pool1".into(),
                    pool_namespace: "game".into(),
                    pool_item_name: "a".into(),
                    protocol: "TCP".into(),
                    start_port: 100,
                    ..PortBindingItem::default()
                }],
            },
        );
        let annotation = |protocol, port| PoolBindingItem {
            pool_name: "pool1".into(),
            pool_namespace: "game".into(),
            load_balancer_ids: vec![],
            listener_attribute: None,
            uptime_check: None,
            pool_item_load_balancers: vec![],
            pool_item_name: "a".into(),
            protocol,
            start_port: port,
            end_port: 0,
            rs_start_port: 8080,
            host_port: false,
            external: String::new(),
        };
        let pod = vec![
            annotation(BindingProtocol::Tcp, 100),
            annotation(BindingProtocol::Udp, 101),
        ];
        let held = held_ports(&[binding], [pod.as_slice()]);
        let key = PoolKey::new("game", "pool1");
        assert_eq!(
            held.into_iter().collect::<Vec<_>>(),
            [
                (key.clone(), "a".to_string(), PoolProtocol::Tcp, 100),
                (key, "a".to_string(), PoolProtocol::Udp, 101),
            ]
        );
    }
}
