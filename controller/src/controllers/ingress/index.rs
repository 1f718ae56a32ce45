//! Pure helpers of the Ingress reconciler: which Ingresses a changed Service / EndpointSlice / Pod / workload /
//! Node concerns (an index like bcs's `ingresscache`), and which Listener CRs to create, update or delete.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::api::{Ingress, Listener, keys};
use crate::ingress::OWNER_KIND_INGRESS;

/// `namespace/name` of an Ingress.
pub type IngressKey = crate::api::ObjectKey;

/// What one Ingress reads besides itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngressRefs {
    /// `(namespace, name)` of every Service of a rule or route.
    pub services: BTreeSet<(String, String)>,
    /// `(namespace, lower-case kind, name)` of every port-mapped workload.
    pub workloads: BTreeSet<(String, String, String)>,
    /// Backends depend on node addresses (NodePort or hostPort mode).
    pub uses_nodes: bool,
}

/// The objects `ingress` reads; namespaces left empty default to the Ingress's own.
pub fn refs_of(ingress: &Ingress) -> IngressRefs {
    let own_ns = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let mut refs = IngressRefs::default();
    for rule in &ingress.spec.rules {
        let routes = rule
            .services
            .iter()
            .chain(rule.layer7_routes.iter().flat_map(|r| r.services.iter()));
        for route in routes {
            let ns = route
                .service_namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(own_ns);
            refs.services
                .insert((ns.to_owned(), route.service_name.clone()));
            if !route.is_direct_connect.unwrap_or(false) || route.host_port.unwrap_or(false) {
                refs.uses_nodes = true;
            }
        }
    }
    for mapping in &ingress.spec.port_mappings {
        let ns = Some(mapping.workload_namespace.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(own_ns);
        refs.workloads.insert((
            ns.to_owned(),
            mapping.workload_kind.to_ascii_lowercase(),
            mapping.workload_name.clone(),
        ));
        if mapping.host_port.unwrap_or(false) {
            refs.uses_nodes = true;
        }
    }
    refs
}

/// Reverse index: referenced object → Ingresses. Updated on every reconcile of an Ingress.
#[derive(Debug, Default)]
pub struct IngressIndex {
    refs: HashMap<IngressKey, IngressRefs>,
    by_service: HashMap<(String, String), BTreeSet<IngressKey>>,
    by_workload: HashMap<(String, String, String), BTreeSet<IngressKey>>,
}

impl IngressIndex {
    /// Records what `key` reads now, replacing what it read before.
    pub fn upsert(&mut self, key: IngressKey, refs: IngressRefs) {
        if self.refs.get(&key) == Some(&refs) {
            return;
        }
        self.remove(&key);
        for s in &refs.services {
            self.by_service
                .entry(s.clone())
                .or_default()
                .insert(key.clone());
        }
        for w in &refs.workloads {
            self.by_workload
                .entry(w.clone())
                .or_default()
                .insert(key.clone());
        }
        self.refs.insert(key, refs);
    }

    /// Forgets an Ingress.
    pub fn remove(&mut self, key: &IngressKey) {
        let Some(old) = self.refs.remove(key) else {
            return;
        };
        for s in &old.services {
            remove_from(&mut self.by_service, s, key);
        }
        for w in &old.workloads {
            remove_from(&mut self.by_workload, w, key);
        }
    }

    /// Ingresses with a route to the Service.
    pub fn for_service(&self, namespace: &str, name: &str) -> Vec<IngressKey> {
        self.by_service
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Ingresses with a port mapping of the workload (`kind` case-insensitive).
    pub fn for_workload(&self, kind: &str, namespace: &str, name: &str) -> Vec<IngressKey> {
        self.by_workload
            .get(&(
                namespace.to_owned(),
                kind.to_ascii_lowercase(),
                name.to_owned(),
            ))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Ingresses of the EndpointSlice's Service (label `kubernetes.io/service-name`).
    pub fn for_endpoint_slice(&self, slice: &EndpointSlice) -> Vec<IngressKey> {
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map(|svc| self.for_service(ns, svc))
            .unwrap_or_default()
    }

    /// Ingresses a pod change concerns: those routing to a Service of its namespace whose selector matches the
    /// pod's labels, and those mapping the StatefulSet / GameStatefulSet that owns it.
    pub fn for_pod<'a>(
        &self,
        pod: &Pod,
        services: impl IntoIterator<Item = &'a Service>,
    ) -> Vec<IngressKey> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut out = BTreeSet::new();
        for svc in services {
            if svc.metadata.namespace.as_deref().unwrap_or("default") != ns {
                continue;
            }
            let Some(name) = svc.metadata.name.as_deref() else {
                continue;
            };
            let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
            let matches = selector.is_some_and(|sel| {
                !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
            });
            if matches {
                out.extend(self.for_service(ns, name));
            }
        }
        for owner in pod.metadata.owner_references.iter().flatten() {
            out.extend(self.for_workload(&owner.kind, ns, &owner.name));
        }
        out.into_iter().collect()
    }

    /// Ingresses whose backends depend on node addresses.
    pub fn using_nodes(&self) -> Vec<IngressKey> {
        let mut out: Vec<_> = self
            .refs
            .iter()
            .filter(|(_, r)| r.uses_nodes)
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }
}

fn remove_from<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, BTreeSet<IngressKey>>,
    at: &K,
    key: &IngressKey,
) {
    if let Some(set) = map.get_mut(at) {
        set.remove(key);
        if set.is_empty() {
            map.remove(at);
        }
    }
}

/// True when a Listener CR was generated from the Ingress `ingress_name` (labels set by `ingress::generate`).
pub fn is_owned_by(listener: &Listener, ingress_name: &str) -> bool {
    let Some(labels) = listener.metadata.labels.as_ref() else {
        return false;
    };
    labels.get(keys::LABEL_OWNER_KIND).map(String::as_str) == Some(OWNER_KIND_INGRESS)
        && labels.get(keys::LABEL_OWNER_NAME).map(String::as_str) == Some(ingress_name)
}

/// The Ingress a Listener CR belongs to, from its owner labels.
pub fn owner_ingress(listener: &Listener) -> Option<IngressKey> {
    let labels = listener.metadata.labels.as_ref()?;
    if labels.get(keys::LABEL_OWNER_KIND).map(String::as_str) != Some(OWNER_KIND_INGRESS) {
        return None;
    }
    let name = labels.get(keys::LABEL_OWNER_NAME)?;
    Some(IngressKey::new(
        listener.metadata.namespace.as_deref().unwrap_or("default"),
        name,
    ))
}

/// What to do to the Listener CRs of one Ingress.
#[derive(Debug, Default)]
pub struct ListenerDiff {
    /// Desired CRs that do not exist.
    pub create: Vec<Listener>,
    /// Desired CRs whose spec, labels or owner reference differ from the existing one.
    pub update: Vec<Listener>,
    /// Names of existing CRs no longer desired (and not already being deleted).
    pub delete: Vec<String>,
    /// Desired names whose old CR is still being deleted; created once it is gone.
    pub blocked: Vec<String>,
}

impl ListenerDiff {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.update.is_empty()
            && self.delete.is_empty()
            && self.blocked.is_empty()
    }
}

/// Compares desired Listener CRs with the existing ones of the same Ingress, by name. Status and labels or
/// annotations added by others are ignored; only what `generate` sets is compared.
pub fn diff_listeners(desired: &[Listener], existing: &[Listener]) -> ListenerDiff {
    let existing: BTreeMap<&str, &Listener> = existing
        .iter()
        .filter_map(|l| l.metadata.name.as_deref().map(|n| (n, l)))
        .collect();
    let mut diff = ListenerDiff::default();
    let mut wanted = BTreeSet::new();
    for want in desired {
        let Some(name) = want.metadata.name.as_deref() else {
            continue;
        };
        wanted.insert(name);
        match existing.get(name) {
            None => diff.create.push(want.clone()),
            Some(have) if have.metadata.deletion_timestamp.is_some() => {
                diff.blocked.push(name.to_owned())
            }
            Some(have) if needs_update(want, have) => diff.update.push(want.clone()),
            Some(_) => {}
        }
    }
    for (name, have) in existing {
        if !wanted.contains(name) && have.metadata.deletion_timestamp.is_none() {
            diff.delete.push(name.to_owned());
        }
    }
    diff
}

fn needs_update(want: &Listener, have: &Listener) -> bool {
    if want.spec != have.spec {
        return true;
    }
    let have_labels = have.metadata.labels.clone().unwrap_or_default();
    let labels_missing = want
        .metadata
        .labels
        .iter()
        .flatten()
        .any(|(k, v)| have_labels.get(k) != Some(v));
    let owner_missing = want.metadata.owner_references.iter().flatten().any(|o| {
        !have
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|h| h.uid == o.uid)
    });
    labels_missing || owner_missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(ns: &str, name: &str, spec: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
        }))
        .unwrap()
    }

    fn service(ns: &str, name: &str, selector: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector},
        }))
        .unwrap()
    }

    fn pod(ns: &str, labels: serde_json::Value, owner: Option<(&str, &str)>) -> Pod {
        let owners = owner
            .map(|(kind, name)| {
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u1"}])
            })
            .unwrap_or(json!([]));
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": ns, "labels": labels, "ownerReferences": owners},
        }))
        .unwrap()
    }

    fn index() -> IngressIndex {
        let direct = ingress(
            "app",
            "direct",
            json!({"rules": [{"port": 80, "protocol": "TCP", "services": [
                {"serviceName": "web", "servicePort": 80, "isDirectConnect": true}]}]}),
        );
        let l7_other_ns = ingress(
            "edge",
            "l7",
            json!({"rules": [{"port": 443, "protocol": "HTTP", "layer7Routes": [
                {"domain": "a.com", "services": [{"serviceName": "web", "serviceNamespace": "app", "servicePort": 80}]}]}]}),
        );
        let mapping = ingress(
            "game",
            "gs",
            json!({"portMappings": [{"workloadKind": "StatefulSet", "workloadName": "server",
                "workloadNamespace": "", "startPort": 30000, "startIndex": 0, "endIndex": 3, "protocol": "UDP"}]}),
        );
        let mut index = IngressIndex::default();
        for i in [&direct, &l7_other_ns, &mapping] {
            index.upsert(IngressKey::of(i), refs_of(i));
        }
        index
    }

    #[test]
    fn service_maps_to_every_ingress_routing_to_it_across_namespaces() {
        let index = index();
        assert_eq!(
            index.for_service("app", "web"),
            vec![
                IngressKey::new("app", "direct"),
                IngressKey::new("edge", "l7")
            ]
        );
        assert!(index.for_service("edge", "web").is_empty());
    }

    #[test]
    fn pod_maps_through_matching_service_selectors_and_owner_workloads() {
        let index = index();
        let services = [
            service("app", "web", json!({"app": "web"})),
            service("app", "other", json!({"app": "other"})),
        ];
        let web_pod = pod("app", json!({"app": "web", "v": "1"}), None);
        assert_eq!(
            index.for_pod(&web_pod, &services),
            vec![
                IngressKey::new("app", "direct"),
                IngressKey::new("edge", "l7")
            ]
        );
        let unrelated = pod("app", json!({"app": "db"}), None);
        assert!(index.for_pod(&unrelated, &services).is_empty());
        // Same labels in another namespace: the Service does not select it.
        let elsewhere = pod("edge", json!({"app": "web"}), None);
        assert!(index.for_pod(&elsewhere, &services).is_empty());
        let game_pod = pod("game", json!({}), Some(("StatefulSet", "server")));
        assert_eq!(
            index.for_pod(&game_pod, &services),
            vec![IngressKey::new("game", "gs")]
        );
    }

    #[test]
    fn endpoint_slices_nodes_and_removal() {
        let mut index = index();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "app",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [],
        }))
        .unwrap();
        assert_eq!(index.for_endpoint_slice(&slice).len(), 2);
        // Only the NodePort-mode L7 Ingress depends on node addresses.
        assert_eq!(index.using_nodes(), vec![IngressKey::new("edge", "l7")]);
        assert_eq!(
            index.for_workload("statefulset", "game", "server"),
            vec![IngressKey::new("game", "gs")]
        );
        index.remove(&IngressKey::new("edge", "l7"));
        assert_eq!(
            index.for_service("app", "web"),
            vec![IngressKey::new("app", "direct")]
        );
        assert!(index.using_nodes().is_empty());
    }

    #[test]
    fn upsert_replaces_old_references() {
        let mut index = index();
        let moved = ingress(
            "app",
            "direct",
            json!({"rules": [{"port": 80, "protocol": "TCP", "services": [
                {"serviceName": "api", "servicePort": 80, "isDirectConnect": true}]}]}),
        );
        index.upsert(IngressKey::of(&moved), refs_of(&moved));
        assert_eq!(
            index.for_service("app", "web"),
            vec![IngressKey::new("edge", "l7")]
        );
        assert_eq!(
            index.for_service("app", "api"),
            vec![IngressKey::new("app", "direct")]
        );
    }

    fn listener(name: &str, port: i32, extra_meta: serde_json::Value) -> Listener {
        let mut meta = json!({"name": name, "namespace": "app",
            "labels": {"owner-kind": "Ingress", "owner-name": "direct", "direct": "ingress-name"}});
        if let (Some(m), Some(extra)) = (meta.as_object_mut(), extra_meta.as_object()) {
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "Listener",
            "metadata": meta,
            "spec": {"loadbalancerID": "lb-1", "port": port, "protocol": "TCP"},
        }))
        .unwrap()
    }

    #[test]
    fn diff_creates_updates_deletes_and_waits_for_deleting_crs() {
        let desired = vec![
            listener("lb-1-80", 80, json!({})),
            listener("lb-1-81", 81, json!({})),
            listener("lb-1-82", 82, json!({})),
            listener("lb-1-83", 83, json!({})),
        ];
        let mut changed = listener("lb-1-81", 81, json!({}));
        changed.spec.port = 9081;
        let existing = vec![
            // Same spec, plus status and an extra label written by others: unchanged.
            {
                let mut l = listener("lb-1-80", 80, json!({"finalizers": ["x"]}));
                if let Some(labels) = l.metadata.labels.as_mut() {
                    labels.insert("extra".into(), "1".into());
                }
                l
            },
            changed,
            listener(
                "lb-1-83",
                83,
                json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
            ),
            listener("lb-1-99", 99, json!({})),
            listener(
                "lb-1-98",
                98,
                json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
            ),
        ];
        let diff = diff_listeners(&desired, &existing);
        let names = |v: &[Listener]| -> Vec<String> {
            v.iter().filter_map(|l| l.metadata.name.clone()).collect()
        };
        assert_eq!(names(&diff.create), vec!["lb-1-82"]);
        assert_eq!(names(&diff.update), vec!["lb-1-81"]);
        assert_eq!(diff.delete, vec!["lb-1-99"]);
        assert_eq!(diff.blocked, vec!["lb-1-83"]);
        // A converged set gives nothing to do.
        assert!(diff_listeners(&desired[..2], &desired[..2]).is_empty());
    }

    #[test]
    fn diff_updates_when_a_generated_label_is_missing() {
        let want = listener("lb-1-80", 80, json!({}));
        let mut have = want.clone();
        if let Some(labels) = have.metadata.labels.as_mut() {
            labels.remove("direct");
        }
        assert_eq!(diff_listeners(&[want], &[have]).update.len(), 1);
    }

    #[test]
    fn ownership_is_read_from_labels() {
        let l = listener("lb-1-80", 80, json!({}));
        assert!(is_owned_by(&l, "direct"));
        assert!(!is_owned_by(&l, "other"));
        assert_eq!(owner_ingress(&l), Some(IngressKey::new("app", "direct")));
    }
}
