//! Pure core of the PortBinding controller: which pool Listener CR gets which backend, whether a
//! binding is Ready, and the NotReady → Ready → Cleaning → Cleaned → deleted state machine with keep duration.
//! No I/O; the reconciler in [`super`] does the watching and writing.

use std::time::{Duration, SystemTime};

use crate::allocator::PoolKey;
use crate::annotations::PoolBindingItem;
use crate::api::naming::pool_listener_name;
use crate::api::{ListenerBackend, PortBindingItem, Protocol, keys};

/// One backend a binding puts on one pool Listener CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTarget {
    /// Namespace of the pool (and of its Listener CRs).
    pub namespace: String,
    /// Pool listener name, `<lbID>-<proto>-<start>[-<end>]`.
    pub listener: String,
    /// Pool the listener must belong to (its `owner-name` label).
    pub pool: String,
    /// `TCP` or `UDP`: the target group protocol.
    pub protocol: String,
    pub backend: ListenerBackend,
}

/// What one pool Listener CR looks like now, as far as readiness is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    /// `status.status == Synced`.
    pub synced: bool,
    /// `spec.targetGroup.backends`.
    pub backends: Vec<ListenerBackend>,
}

/// The protocol of a binding item (`TCP`/`UDP`), `None` for anything else.
pub fn item_protocol(item: &PortBindingItem) -> Option<Protocol> {
    match item.protocol.as_str() {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

/// The LB id of a `loadBalancerIDs` entry (`lb-x` or `region:lb-x`).
pub fn lb_id_of(entry: &str) -> &str {
    entry.rsplit_once(':').map_or(entry, |(_, id)| id)
}

/// Every backend the binding needs: one per item × LB, pointing at `endpoint(item)` (pod IP and container
/// port, or host IP and host port) with `weight` (the pod's `clb-weight`, else the default). Items whose
/// endpoint is unknown or protocol is invalid are skipped.
pub fn desired_targets(
    items: &[PortBindingItem],
    weight: i32,
    endpoint: impl Fn(&PortBindingItem) -> Option<(String, i32)>,
) -> Vec<DesiredTarget> {
    let mut out = Vec::new();
    for item in items {
        let (Some(protocol), Some((ip, port))) = (item_protocol(item), endpoint(item)) else {
            continue;
        };
        for lb in &item.load_balancer_ids {
            out.push(DesiredTarget {
                namespace: item.pool_namespace.clone(),
                listener: pool_listener_name(
                    lb_id_of(lb),
                    protocol,
                    item.start_port,
                    item.end_port,
                ),
                pool: item.pool_name.clone(),
                protocol: item.protocol.clone(),
                backend: ListenerBackend {
                    ip: ip.clone(),
                    port,
                    weight,
                },
            });
        }
    }
    out
}

/// Every pool Listener CR a binding's items map to (for cleaning, where no endpoint is needed).
pub fn bound_listeners(items: &[PortBindingItem]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in items {
        let Some(protocol) = item_protocol(item) else {
            continue;
        };
        for lb in &item.load_balancer_ids {
            out.push((
                item.pool_namespace.clone(),
                pool_listener_name(lb_id_of(lb), protocol, item.start_port, item.end_port),
            ));
        }
    }
    out
}

/// Ready when there is at least one target and every target's listener is Synced and carries its backend (IP
/// and port: a weight change alone, e.g. a hook draining the pod, does not make the binding NotReady).
pub fn targets_ready(
    targets: &[DesiredTarget],
    lookup: impl Fn(&str, &str) -> Option<ListenerView>,
) -> bool {
    !targets.is_empty()
        && targets.iter().all(|t| {
            lookup(&t.namespace, &t.listener).is_some_and(|l| {
                l.synced
                    && l.backends
                        .iter()
                        .any(|b| b.ip == t.backend.ip && b.port == t.backend.port)
            })
        })
}

/// Cleaned when every listener is gone, or has no backends left and is Synced (the cloud deregistered them).
pub fn listeners_cleaned(
    listeners: &[(String, String)],
    lookup: impl Fn(&str, &str) -> Option<ListenerView>,
) -> bool {
    listeners
        .iter()
        .all(|(ns, name)| lookup(ns, name).is_none_or(|l| l.synced && l.backends.is_empty()))
}

/// `status.status` of a PortBinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    NotReady,
    Ready,
    Cleaning,
    Cleaned,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::NotReady => keys::PORTBINDING_STATUS_NOT_READY,
            Phase::Ready => keys::PORTBINDING_STATUS_READY,
            Phase::Cleaning => keys::PORTBINDING_STATUS_CLEANING,
            Phase::Cleaned => keys::PORTBINDING_STATUS_CLEANED,
        }
    }

    /// Unknown or empty (a binding just created) reads as NotReady.
    pub fn parse(value: &str) -> Phase {
        match value {
            keys::PORTBINDING_STATUS_READY => Phase::Ready,
            keys::PORTBINDING_STATUS_CLEANING => Phase::Cleaning,
            keys::PORTBINDING_STATUS_CLEANED => Phase::Cleaned,
            _ => Phase::NotReady,
        }
    }
}

/// Everything the state machine looks at for one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub phase: Phase,
    /// The pod exists, is not being deleted, not Failed/Succeeded and still has its bindings annotation.
    pub pod_alive: bool,
    /// Every target's listener is Synced with the backend (meaningful only while the pod is alive).
    pub targets_ready: bool,
    /// Every listener is emptied and Synced (meaningful only once the pod is gone).
    pub listeners_cleaned: bool,
    /// `keepduration` copied from the pod, if any and valid.
    pub keep: Option<Duration>,
    /// When the binding became Cleaned (`status.updateTime`).
    pub cleaned_at: Option<SystemTime>,
    pub now: SystemTime,
}

/// What to do with a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Put the backends on the listeners; write this phase (Ready or NotReady).
    Bind(Phase),
    /// Remove the backends; write this phase (Cleaning, or Cleaned once emptied).
    Clean(Phase),
    /// Cleaned and kept: check again at this time.
    Keep { until: SystemTime },
    /// Cleaned and not (or no longer) kept: delete the binding and release its ports.
    Delete,
}

/// The state machine: an alive pod binds (also after a kept binding was reused); a gone pod cleans, then the
/// binding is kept until `cleaned_at + keep` and deleted after.
pub fn next_step(o: &Observed) -> Step {
    if o.pod_alive {
        return Step::Bind(if o.targets_ready {
            Phase::Ready
        } else {
            Phase::NotReady
        });
    }
    if o.phase != Phase::Cleaned {
        return Step::Clean(if o.listeners_cleaned {
            Phase::Cleaned
        } else {
            Phase::Cleaning
        });
    }
    match (o.keep, o.cleaned_at) {
        (Some(keep), Some(at)) => {
            let until = keep_expiry(at, keep);
            if o.now < until {
                Step::Keep { until }
            } else {
                Step::Delete
            }
        }
        _ => Step::Delete,
    }
}

/// When a binding cleaned at `cleaned_at` with keep duration `keep` may be deleted.
pub fn keep_expiry(cleaned_at: SystemTime, keep: Duration) -> SystemTime {
    cleaned_at.checked_add(keep).unwrap_or(cleaned_at)
}

/// Parses a Go duration (`5m`, `2h45m`, `90s`); `None` when invalid or zero.
pub fn parse_keep_duration(value: &str) -> Option<Duration> {
    humantime::parse_duration(value.trim())
        .ok()
        .filter(|d| !d.is_zero())
}

/// `status.updateTime` format.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Reads `status.updateTime`.
pub fn parse_time(value: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(value).ok()
}

/// The pod's bindings with each `external` set to its pool item's current value (`external_of(pool, item)`:
/// `None` = item unknown, left as is). `None` when nothing changed, so the pod is not patched.
pub fn with_current_external(
    items: &[PoolBindingItem],
    external_of: impl Fn(&PoolKey, &str) -> Option<Option<String>>,
) -> Option<Vec<PoolBindingItem>> {
    let mut changed = false;
    let updated = items
        .iter()
        .map(|item| {
            let mut item = item.clone();
            let pool = PoolKey::new(&item.pool_namespace, &item.pool_name);
            if let Some(current) = external_of(&pool, &item.pool_item_name) {
                let current = current.unwrap_or_default();
                if item.external != current {
                    item.external = current;
                    changed = true;
                }
            }
            item
        })
        .collect();
    changed.then_some(updated)
}

#[cfg(test)]
mod external_tests {
    use super::*;
    use crate::annotations::parse_pool_bindings;

    #[test]
    fn external_follows_the_item_and_unknown_items_are_left_alone() {
        let items = parse_pool_bindings(
            r#"[{"poolName":"p","poolNamespace":"ns","poolItemName":"a","protocol":"TCP","startPort":100,"rsStartPort":80,"external":"old"},
                {"poolName":"p","poolNamespace":"ns","poolItemName":"b","protocol":"UDP","startPort":200,"rsStartPort":81,"external":"keep"}]"#,
        )
        .unwrap();
        let lookup = |pool: &PoolKey, item: &str| {
            assert_eq!(pool, &PoolKey::new("ns", "p"));
            (item == "a").then(|| Some("new".to_string()))
        };
        let updated = with_current_external(&items, lookup).unwrap();
        assert_eq!(updated[0].external, "new");
        assert_eq!(updated[1].external, "keep");
        assert_eq!(updated[0].start_port, 100);
        assert_eq!(with_current_external(&updated, lookup), None);
        let cleared = with_current_external(&updated, |_, _| Some(None)).unwrap();
        assert!(cleared.iter().all(|i| i.external.is_empty()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(lbs: &[&str], protocol: &str, port: i32) -> PortBindingItem {
        PortBindingItem {
            pool_name: "pool1".into(),
            pool_namespace: "ns1".into(),
            load_balancer_ids: lbs.iter().map(|s| s.to_string()).collect(),
            pool_item_name: "item1".into(),
            protocol: protocol.into(),
            start_port: port,
            rs_start_port: 80,
            ..PortBindingItem::default()
        }
    }

    fn observed(phase: Phase) -> Observed {
        Observed {
            phase,
            pod_alive: true,
            targets_ready: false,
            listeners_cleaned: false,
            keep: None,
            cleaned_at: None,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        }
    }

    #[test]
    fn targets_cover_every_item_and_lb() {
        let items = [
            item(&["lb-a", "ap-x:lb-b"], "TCP", 31000),
            item(&["lb-a"], "UDP", 31000),
        ];
        let targets = desired_targets(&items, keys::DEFAULT_WEIGHT, |i| {
            Some(("10.0.0.5".into(), i.rs_start_port))
        });
        let names: Vec<_> = targets.iter().map(|t| t.listener.as_str()).collect();
        assert_eq!(
            names,
            ["lb-a-tcp-31000", "lb-b-tcp-31000", "lb-a-udp-31000"]
        );
        assert!(targets.iter().all(|t| t.backend
            == ListenerBackend {
                ip: "10.0.0.5".into(),
                port: 80,
                weight: 10
            }));
        assert!(desired_targets(&items, keys::DEFAULT_WEIGHT, |_| None).is_empty());
    }

    #[test]
    fn ready_needs_every_listener_synced_with_the_backend() {
        let targets = desired_targets(
            &[item(&["lb-a", "lb-b"], "TCP", 31000)],
            keys::DEFAULT_WEIGHT,
            |_| Some(("10.0.0.5".into(), 80)),
        );
        let backend = targets[0].backend.clone();
        let good = ListenerView {
            synced: true,
            backends: vec![backend.clone()],
        };
        assert!(targets_ready(&targets, |_, _| Some(good.clone())));
        assert!(!targets_ready(&targets, |_, name| {
            (name == "lb-a-tcp-31000").then(|| good.clone())
        }));
        assert!(!targets_ready(&targets, |_, _| Some(ListenerView {
            synced: false,
            ..good.clone()
        })));
        assert!(!targets_ready(&targets, |_, _| Some(ListenerView {
            synced: true,
            backends: vec![]
        })));
        assert!(!targets_ready(&[], |_, _| Some(good.clone())));
    }

    #[test]
    fn alive_pod_goes_ready_and_back_to_not_ready() {
        let mut o = observed(Phase::NotReady);
        assert_eq!(next_step(&o), Step::Bind(Phase::NotReady));
        o.targets_ready = true;
        assert_eq!(next_step(&o), Step::Bind(Phase::Ready));
        o.phase = Phase::Ready;
        o.targets_ready = false;
        assert_eq!(next_step(&o), Step::Bind(Phase::NotReady));
    }

    #[test]
    fn gone_pod_cleans_then_deletes_without_keep() {
        let mut o = observed(Phase::Ready);
        o.pod_alive = false;
        assert_eq!(next_step(&o), Step::Clean(Phase::Cleaning));
        o.listeners_cleaned = true;
        assert_eq!(next_step(&o), Step::Clean(Phase::Cleaned));
        o.phase = Phase::Cleaned;
        o.cleaned_at = Some(o.now);
        assert_eq!(next_step(&o), Step::Delete);
    }

    #[test]
    fn kept_binding_waits_for_expiry_then_deletes() {
        let mut o = observed(Phase::Cleaned);
        o.pod_alive = false;
        o.listeners_cleaned = true;
        o.keep = parse_keep_duration("2m");
        let cleaned = o.now;
        o.cleaned_at = Some(cleaned);
        let until = cleaned + Duration::from_secs(120);
        assert_eq!(next_step(&o), Step::Keep { until });
        o.now = until;
        assert_eq!(next_step(&o), Step::Delete);
        // A same-name pod recreated while kept binds again.
        o.now = cleaned;
        o.pod_alive = true;
        assert_eq!(next_step(&o), Step::Bind(Phase::NotReady));
    }

    #[test]
    fn keep_duration_and_times_parse() {
        assert_eq!(
            parse_keep_duration("2h45m"),
            Some(Duration::from_secs(2 * 3600 + 45 * 60))
        );
        assert_eq!(parse_keep_duration("0s"), None);
        assert_eq!(parse_keep_duration("soon"), None);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_time(&format_time(t)), Some(t));
        assert_eq!(
            keep_expiry(t, Duration::from_secs(60)),
            t + Duration::from_secs(60)
        );
    }

    #[test]
    fn cleaned_when_listeners_empty_and_synced_or_gone() {
        let listeners = bound_listeners(&[item(&["lb-a"], "TCP", 31000)]);
        assert_eq!(listeners, [("ns1".into(), "lb-a-tcp-31000".into())]);
        assert!(listeners_cleaned(&listeners, |_, _| None));
        assert!(listeners_cleaned(&listeners, |_, _| Some(ListenerView {
            synced: true,
            backends: vec![]
        })));
        assert!(!listeners_cleaned(&listeners, |_, _| Some(ListenerView {
            synced: false,
            backends: vec![]
        })));
    }
}
