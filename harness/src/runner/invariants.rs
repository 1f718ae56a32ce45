//! Invariants over cluster objects and fake-clb state, as pure functions of JSON snapshots.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub(crate) use crate::snapshot::{item_lbs, str_at, targets};

pub const POOL_BINDINGS_ANNOTATION: &str =
    "poolbindings.portpool.networkextension.bkbcs.tencent.com";

fn object_key(v: &Value) -> String {
    format!(
        "{}/{}",
        str_at(v, "/metadata/namespace").unwrap_or(""),
        str_at(v, "/metadata/name").unwrap_or("")
    )
}

/// No `(load balancer, protocol, port)` is held by two pods, per their pool-binding annotation.
pub fn duplicate_ports(pods: &[Value]) -> Vec<String> {
    let mut holders: BTreeMap<(String, String, i64), String> = BTreeMap::new();
    let mut problems = Vec::new();
    for pod in pods {
        let Some(text) = pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(POOL_BINDINGS_ANNOTATION))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let pod_key = object_key(pod);
        let items: Vec<Value> = match serde_json::from_str(text) {
            Ok(items) => items,
            Err(e) => {
                problems.push(format!(
                    "pod {pod_key}: unreadable {POOL_BINDINGS_ANNOTATION}: {e}"
                ));
                continue;
            }
        };
        for item in &items {
            let protocol = str_at(item, "/protocol").unwrap_or("").to_string();
            let start = item.get("startPort").and_then(Value::as_i64).unwrap_or(0);
            let end = item
                .get("endPort")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .max(start);
            for lb in item_lbs(item) {
                for port in start..=end {
                    let key = (lb.clone(), protocol.clone(), port);
                    if let Some(other) = holders.get(&key) {
                        if other != &pod_key {
                            problems.push(format!(
                                "port {lb} {protocol} {port} held by pods {other} and {pod_key}"
                            ));
                        }
                    } else {
                        holders.insert(key, pod_key.clone());
                    }
                }
            }
        }
    }
    problems
}

/// Every load balancer in a `/_fake/state` dump, keyed by id.
pub fn cloud_load_balancers(state: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for account in state
        .get("accounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for region in account
            .get("regions")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|r| r.values())
        {
            for lb in region
                .get("loadBalancers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = str_at(lb, "/loadBalancerId") {
                    out.insert(id.to_string(), lb.clone());
                }
            }
        }
    }
    out
}

fn listeners(lb: &Value) -> impl Iterator<Item = &Value> {
    lb.get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The `hostPort` of the pod's container port `container_port` (any container), if declared.
fn host_port_of(pod: &Value, container_port: i64) -> Option<i64> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| p.get("containerPort").and_then(Value::as_i64) == Some(container_port))
        .and_then(|p| p.get("hostPort").and_then(Value::as_i64))
}

/// Every Ready PortBinding has, on each of its load balancers, a listener on its port whose
/// targets include the pod's IP and container port (for a `hostPort` item: the node's IP and the
/// container's hostPort).
pub fn ready_bindings_missing_in_cloud(
    bindings: &[Value],
    pods: &[Value],
    state: &Value,
) -> Vec<String> {
    let pods_by_key: BTreeMap<String, &Value> = pods.iter().map(|p| (object_key(p), p)).collect();
    let lbs = cloud_load_balancers(state);
    let mut problems = Vec::new();
    for binding in bindings {
        if str_at(binding, "/status/status") != Some("Ready") {
            continue;
        }
        let key = object_key(binding);
        let Some(pod) = pods_by_key.get(&key) else {
            continue;
        };
        for item in binding
            .pointer("/spec/portBindingList")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port = item.get("startPort").and_then(Value::as_i64).unwrap_or(0);
            let container_port = item.get("rsStartPort").and_then(Value::as_i64).unwrap_or(0);
            let host_port = item.get("hostPort").and_then(Value::as_bool) == Some(true);
            let (ip, rs_port) = if host_port {
                (
                    str_at(pod, "/status/hostIP"),
                    host_port_of(pod, container_port).unwrap_or(container_port),
                )
            } else {
                (str_at(pod, "/status/podIP"), container_port)
            };
            let Some(ip) = ip else {
                continue;
            };
            let protocol = str_at(item, "/protocol").unwrap_or("");
            for lb_id in item_lbs(item) {
                let present = lbs.get(&lb_id).is_some_and(|lb| {
                    listeners(lb).any(|l| {
                        l.get("port").and_then(Value::as_i64) == Some(port)
                            && str_at(l, "/protocol") == Some(protocol)
                            && targets(l).iter().any(|t| {
                                str_at(t, "/ip") == Some(ip)
                                    && t.get("port").and_then(Value::as_i64) == Some(rs_port)
                            })
                    })
                });
                if !present {
                    problems.push(format!(
                        "PortBinding {key} is Ready but {lb_id} {protocol} {port} has no target {ip}:{rs_port}"
                    ));
                }
            }
        }
    }
    problems
}

/// Listeners no Listener CR accounts for (load balancer, port, protocol) and targets whose IP
/// is neither a pod's IP nor the host IP of a node running a pod (NodePort and hostPort
/// backends are node addresses).
pub fn orphans(listener_crs: &[Value], pods: &[Value], state: &Value) -> Vec<String> {
    let wanted: BTreeSet<(String, i64, String)> = listener_crs
        .iter()
        .filter_map(|l| {
            Some((
                str_at(l, "/spec/loadbalancerID")?
                    .rsplit(':')
                    .next()?
                    .to_string(),
                l.pointer("/spec/port")?.as_i64()?,
                str_at(l, "/spec/protocol")?.to_string(),
            ))
        })
        .collect();
    let pod_ips: BTreeSet<&str> = pods
        .iter()
        .flat_map(|p| [str_at(p, "/status/podIP"), str_at(p, "/status/hostIP")])
        .flatten()
        .collect();
    let mut problems = Vec::new();
    for (lb_id, lb) in cloud_load_balancers(state) {
        for listener in listeners(&lb) {
            let port = listener.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = str_at(listener, "/protocol").unwrap_or("").to_string();
            if !wanted.contains(&(lb_id.clone(), port, protocol.clone())) {
                problems.push(format!(
                    "orphan listener {lb_id} {protocol} {port} ({})",
                    str_at(listener, "/listenerId").unwrap_or("?")
                ));
            }
            for target in targets(listener) {
                let ip = str_at(target, "/ip").unwrap_or("");
                if !pod_ips.contains(ip) {
                    problems.push(format!("orphan target {ip} on {lb_id} {protocol} {port}"));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, ip: &str, items: Value) -> Value {
        json!({
            "metadata": {"namespace": "ns", "name": name,
                "annotations": {POOL_BINDINGS_ANNOTATION: items.to_string()}},
            "status": {"podIP": ip}
        })
    }

    fn item(lb: &str, port: i64) -> Value {
        json!({"poolItemLoadBalancers": [{"loadbalancerID": lb}], "protocol": "TCP",
               "startPort": port, "endPort": 0, "rsStartPort": 8080})
    }

    #[test]
    fn two_pods_on_one_port_are_reported() {
        let pods = vec![
            pod("a", "10.0.0.1", json!([item("lb-1", 30000)])),
            pod("b", "10.0.0.2", json!([item("lb-1", 30000)])),
            pod("c", "10.0.0.3", json!([item("lb-2", 30000)])),
        ];
        let problems = duplicate_ports(&pods);
        assert_eq!(
            problems,
            vec!["port lb-1 TCP 30000 held by pods ns/a and ns/b"]
        );
    }

    fn state(targets: Value) -> Value {
        json!({"accounts": [{"regions": {"ap-guangzhou": {"loadBalancers": [
            {"loadBalancerId": "lb-1", "listeners": [
                {"listenerId": "lbl-1", "port": 30000, "protocol": "TCP", "targets": targets}
            ]}
        ]}}}]})
    }

    #[test]
    fn ready_binding_needs_its_target_in_the_cloud() {
        let pods = vec![pod("a", "10.0.0.1", json!([]))];
        let binding = json!({"metadata": {"namespace": "ns", "name": "a"},
            "spec": {"portBindingList": [item("lb-1", 30000)]}, "status": {"status": "Ready"}});
        let with = state(json!([{"ip": "10.0.0.1", "port": 8080}]));
        assert!(
            ready_bindings_missing_in_cloud(std::slice::from_ref(&binding), &pods, &with)
                .is_empty()
        );
        let without = state(json!([]));
        let problems = ready_bindings_missing_in_cloud(&[binding], &pods, &without);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn listeners_and_targets_nobody_owns_are_orphans() {
        let s = state(json!([{"ip": "10.9.9.9", "port": 8080}]));
        let problems = orphans(&[], &[], &s);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let cr = json!({"spec": {"loadbalancerID": "lb-1", "port": 30000, "protocol": "TCP"}});
        let pods = vec![pod("a", "10.9.9.9", json!([]))];
        assert!(orphans(&[cr], &pods, &s).is_empty());
    }

    #[test]
    fn ready_hostport_binding_needs_the_node_ip_and_host_port() {
        let mut on_node = pod("a", "10.244.0.2", json!([]));
        on_node["status"]["hostIP"] = json!("172.20.0.10");
        on_node["spec"] =
            json!({"containers": [{"ports": [{"containerPort": 8080, "hostPort": 18080}]}]});
        let mut hostport_item = item("lb-1", 30000);
        hostport_item["hostPort"] = json!(true);
        let binding = json!({"metadata": {"namespace": "ns", "name": "a"},
            "spec": {"portBindingList": [hostport_item]}, "status": {"status": "Ready"}});
        let node_target = state(json!([{"ip": "172.20.0.10", "port": 18080}]));
        assert!(
            ready_bindings_missing_in_cloud(
                std::slice::from_ref(&binding),
                std::slice::from_ref(&on_node),
                &node_target
            )
            .is_empty()
        );
        let pod_target = state(json!([{"ip": "10.244.0.2", "port": 8080}]));
        let problems = ready_bindings_missing_in_cloud(&[binding], &[on_node], &pod_target);
        assert_eq!(
            problems,
            vec!["PortBinding ns/a is Ready but lb-1 TCP 30000 has no target 172.20.0.10:18080"]
        );
    }

    #[test]
    fn node_targets_of_nodes_running_pods_are_not_orphans() {
        let s = state(json!([{"ip": "172.20.0.11", "port": 31080}]));
        let cr = json!({"spec": {"loadbalancerID": "lb-1", "port": 30000, "protocol": "TCP"}});
        let mut on_node = pod("a", "10.244.4.2", json!([]));
        on_node["status"]["hostIP"] = json!("172.20.0.11");
        assert!(orphans(std::slice::from_ref(&cr), &[on_node], &s).is_empty());
        let mut elsewhere = pod("b", "10.244.8.2", json!([]));
        elsewhere["status"]["hostIP"] = json!("172.20.0.12");
        let problems = orphans(&[cr], &[elsewhere], &s);
        assert_eq!(
            problems,
            vec!["orphan target 172.20.0.11 on lb-1 TCP 30000"]
        );
    }
}
