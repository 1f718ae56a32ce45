//! When did a pod's target reach fake-clb? Pure parts of the answer.
//!
//! fake-clb has no watch. The runner polls its request log (`GET /_fake/requests?since=SEQ`,
//! cheap: only new entries) and fetches the state dump (hundreds of kB at 1,000 listeners)
//! only after a target registration succeeded, at most a few times a second, plus a slow
//! fallback. A target first present in a dump is stamped with the log time of the successful
//! registration that named it (fake-clb's wall clock, taken right after the change was
//! committed), clamped into the interval in which the commit must lie: after the previous dump
//! was requested, before this one answered. Without such a log entry it gets the time the dump
//! answered. Wall-clock times are mapped onto the measurement's monotonic timeline through one
//! (Instant, wall clock) anchor; the clamp bounds the error of that mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::snapshot::{item_lbs, str_at, targets};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Pod annotation written by the pod webhook: the pool ports bound to the pod.
pub const POOL_BINDINGS_ANNOTATION: &str =
    "poolbindings.portpool.networkextension.bkbcs.tencent.com";

/// A target on a listener, as the cloud holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    pub lb: String,
    pub protocol: String,
    pub port: i64,
    pub ip: String,
    pub target_port: i64,
}

/// How a registration call names a target: by listener id, not port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RegistrationKey {
    pub lb: String,
    pub listener_id: String,
    pub ip: String,
    pub target_port: i64,
}

/// Targets of one state dump, each with the id of the listener that holds it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CloudSnapshot {
    pub targets: BTreeMap<TargetKey, String>,
}

/// Numbers may come as JSON numbers or, from flattened GET requests, as strings.
fn int_at(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Targets of the given load balancers (`/_fake/state` LB objects), L4 listeners and L7 rules.
pub fn snapshot<'a>(load_balancers: impl IntoIterator<Item = &'a Value>) -> CloudSnapshot {
    let mut out = CloudSnapshot::default();
    for lb in load_balancers {
        let Some(lb_id) = str_at(lb, "/loadBalancerId") else {
            continue;
        };
        for listener in lb
            .get("listeners")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let listener_id = str_at(listener, "/listenerId").unwrap_or("");
            let protocol = str_at(listener, "/protocol").unwrap_or("");
            let port = int_at(listener, "port").unwrap_or(0);
            for target in targets(listener) {
                let Some(ip) = str_at(target, "/ip") else {
                    continue;
                };
                let key = TargetKey {
                    lb: lb_id.to_string(),
                    protocol: protocol.to_string(),
                    port,
                    ip: ip.to_string(),
                    target_port: int_at(target, "port").unwrap_or(0),
                };
                out.targets.insert(key, listener_id.to_string());
            }
        }
    }
    out
}

/// A successful target registration from the request log, with fake-clb's wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub key: RegistrationKey,
    pub time: DateTime<Utc>,
}

/// Entries of `GET /_fake/requests`: the highest `seq` seen and every target that a
/// successful `RegisterTargets` / `BatchRegisterTargets` named (`EniIp`; instance ids are not
/// pod IPs and are skipped).
pub fn registrations(entries: &[Value]) -> (Option<u64>, Vec<Registration>) {
    let mut max_seq = None;
    let mut out = Vec::new();
    for entry in entries {
        if let Some(seq) = entry.get("seq").and_then(Value::as_u64) {
            max_seq = max_seq.max(Some(seq));
        }
        let action = str_at(entry, "/action").unwrap_or("");
        if str_at(entry, "/result") != Some("OK")
            || !matches!(action, "RegisterTargets" | "BatchRegisterTargets")
        {
            continue;
        }
        let Some(time) = str_at(entry, "/time")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        let params = entry.get("params").unwrap_or(&Value::Null);
        let Some(lb) = str_at(params, "/LoadBalancerId")
            .or_else(|| str_at(entry, "/loadBalancerId"))
            .map(str::to_string)
        else {
            continue;
        };
        // RegisterTargets names the listener once; BatchRegisterTargets per target.
        let call_listener = str_at(params, "/ListenerId");
        for target in params
            .get("Targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(listener_id), Some(ip)) = (
                str_at(target, "/ListenerId").or(call_listener),
                str_at(target, "/EniIp"),
            ) else {
                continue;
            };
            out.push(Registration {
                key: RegistrationKey {
                    lb: lb.clone(),
                    listener_id: listener_id.to_string(),
                    ip: ip.to_string(),
                    target_port: int_at(target, "Port").unwrap_or(0),
                },
                time,
            });
        }
    }
    (max_seq, out)
}

/// First time each target was present in the cloud, on the measurement's timeline.
#[derive(Debug)]
pub struct CloudTimeline {
    /// Wall-clock time of the measurement's start (offset zero).
    anchor: DateTime<Utc>,
    first_seen: BTreeMap<TargetKey, Duration>,
    /// Latest successful registration per target since the last dump.
    pending: BTreeMap<RegistrationKey, Duration>,
    /// Targets new in the last dump that no logged registration explained yet, with the
    /// interval their commit must lie in: the log may report them on the next poll.
    unexplained: BTreeMap<RegistrationKey, (TargetKey, Duration, Duration)>,
    /// When the last dump was requested: targets absent from it were committed later.
    last_sent: Option<Duration>,
}

impl CloudTimeline {
    pub fn new(anchor: DateTime<Utc>) -> Self {
        Self {
            anchor,
            first_seen: BTreeMap::new(),
            pending: BTreeMap::new(),
            unexplained: BTreeMap::new(),
            last_sent: None,
        }
    }

    /// Offset of a wall-clock time from the anchor; times before it count as zero.
    fn offset(&self, time: DateTime<Utc>) -> Duration {
        (time - self.anchor).to_std().unwrap_or(Duration::ZERO)
    }

    /// Takes registrations from the request log. One that explains a target of the last dump
    /// dates it (within the dump's interval); the others wait for the next dump.
    pub fn note(&mut self, registrations: &[Registration]) {
        for r in registrations {
            let at = self.offset(r.time);
            if let Some((key, floor, ceiling)) = self.unexplained.get(&r.key)
                && (*floor..=*ceiling).contains(&at)
            {
                self.first_seen.insert(key.clone(), at);
                self.unexplained.remove(&r.key);
                continue;
            }
            let slot = self.pending.entry(r.key.clone()).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// Records a dump requested at `sent` whose answer arrived at `at`. A new target was
    /// committed after the previous dump was requested and before `at`: its logged time is
    /// clamped into that interval; without one it gets `at` until the log explains it.
    /// Registrations noted before the request and not in the dump did not take (e.g. a listener
    /// in `FailListenerIdSet`) and are dropped.
    pub fn observe(&mut self, snapshot: &CloudSnapshot, sent: Duration, at: Duration) {
        let floor = self.last_sent.unwrap_or(Duration::ZERO).min(at);
        self.unexplained.clear();
        for (key, listener_id) in &snapshot.targets {
            if self.first_seen.contains_key(key) {
                continue;
            }
            let reg = RegistrationKey {
                lb: key.lb.clone(),
                listener_id: listener_id.clone(),
                ip: key.ip.clone(),
                target_port: key.target_port,
            };
            let stamp = match self.pending.get(&reg) {
                Some(t) => (*t).clamp(floor, at),
                None => {
                    self.unexplained.insert(reg, (key.clone(), floor, at));
                    at
                }
            };
            self.first_seen.insert(key.clone(), stamp);
        }
        self.pending.clear();
        self.last_sent = Some(sent.min(at));
    }

    pub fn first_seen(&self, key: &TargetKey) -> Option<Duration> {
        self.first_seen.get(key).copied()
    }

    /// Earliest first sighting of any target with this IP.
    pub fn first_seen_ip(&self, ip: &str) -> Option<Duration> {
        self.first_seen
            .iter()
            .filter(|(k, _)| k.ip == ip)
            .map(|(_, t)| *t)
            .min()
    }
}

/// What has to be in the cloud before a pod counts as "target in cloud".
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// Every listed target (one per pool-binding item × load balancer).
    All(BTreeSet<TargetKey>),
    /// No pool-binding annotation (or a hostPort binding, whose port is the node's): any
    /// target with this IP.
    AnyWithIp(String),
}

impl Expectation {
    /// When the expectation was first met, if it was.
    pub fn met_at(&self, timeline: &CloudTimeline) -> Option<Duration> {
        match self {
            Expectation::All(keys) if keys.is_empty() => None,
            Expectation::All(keys) => keys
                .iter()
                .map(|k| timeline.first_seen(k))
                .try_fold(Duration::ZERO, |acc, t| t.map(|t| acc.max(t))),
            Expectation::AnyWithIp(ip) => timeline.first_seen_ip(ip),
        }
    }
}

/// The expectation for a pod (its JSON), or `None` while it has no IP. Targets follow the
/// `readyBindingsInCloud` invariant: listener (lb, protocol, startPort), target podIP:rsStartPort.
pub fn expectation(pod: &Value) -> Option<Expectation> {
    let ip = str_at(pod, "/status/podIP").filter(|ip| !ip.is_empty())?;
    let any = || Some(Expectation::AnyWithIp(ip.to_string()));
    let Some(text) = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(POOL_BINDINGS_ANNOTATION))
        .and_then(Value::as_str)
    else {
        return any();
    };
    let Ok(items) = serde_json::from_str::<Vec<Value>>(text) else {
        return any();
    };
    let mut keys = BTreeSet::new();
    for item in &items {
        if item.get("hostPort").and_then(Value::as_bool) == Some(true) {
            return any();
        }
        for lb in item_lbs(item) {
            keys.insert(TargetKey {
                lb,
                protocol: str_at(item, "/protocol").unwrap_or("").to_string(),
                port: int_at(item, "startPort").unwrap_or(0),
                ip: ip.to_string(),
                target_port: int_at(item, "rsStartPort").unwrap_or(0),
            });
        }
    }
    if keys.is_empty() {
        return any();
    }
    Some(Expectation::All(keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn anchor() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:00:00.000Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time")
    }

    fn lb(id: &str, listeners: Value) -> Value {
        json!({"loadBalancerId": id, "listeners": listeners})
    }

    fn key(lb: &str, port: i64, ip: &str) -> TargetKey {
        TargetKey {
            lb: lb.into(),
            protocol: "TCP".into(),
            port,
            ip: ip.into(),
            target_port: 80,
        }
    }

    fn one_target_state(ip: &str) -> CloudSnapshot {
        snapshot(&[lb(
            "lb-1",
            json!([{"listenerId": "lbl-1", "protocol": "TCP", "port": 30000,
                    "targets": [{"ip": ip, "port": 80, "weight": 10}]}]),
        )])
    }

    #[test]
    fn snapshot_reads_l4_and_l7_targets_with_their_listener() {
        let s = snapshot(&[lb(
            "lb-1",
            json!([
                {"listenerId": "lbl-1", "protocol": "TCP", "port": 30000,
                 "targets": [{"ip": "10.0.0.1", "port": 80}, {"instanceId": "ins-1", "port": 80}]},
                {"listenerId": "lbl-2", "protocol": "HTTP", "port": 8080, "targets": [],
                 "rules": [{"locationId": "loc-1", "targets": [{"ip": "10.0.0.2", "port": 81}]}]}
            ]),
        )]);
        assert_eq!(s.targets.len(), 2, "{s:?}");
        assert_eq!(
            s.targets
                .get(&key("lb-1", 30000, "10.0.0.1"))
                .map(String::as_str),
            Some("lbl-1")
        );
        let l7 = TargetKey {
            lb: "lb-1".into(),
            protocol: "HTTP".into(),
            port: 8080,
            ip: "10.0.0.2".into(),
            target_port: 81,
        };
        assert_eq!(s.targets.get(&l7).map(String::as_str), Some("lbl-2"));
    }

    #[test]
    fn registrations_keep_successful_target_calls_only() {
        let entries = vec![
            json!({"seq": 7, "time": "2025-01-01T00:00:01.250Z", "action": "BatchRegisterTargets",
                   "result": "OK", "loadBalancerId": "lb-1",
                   "params": {"LoadBalancerId": "lb-1", "Targets": [
                       {"ListenerId": "lbl-1", "EniIp": "10.0.0.1", "Port": 80},
                       {"ListenerId": "lbl-2", "InstanceId": "ins-1", "Port": 80}]}}),
            json!({"seq": 8, "time": "2025-01-01T00:00:01.300Z", "action": "RegisterTargets",
                   "result": "OK",
                   "params": {"LoadBalancerId": "lb-2", "ListenerId": "lbl-9",
                              "Targets": [{"EniIp": "10.0.0.3", "Port": "81"}]}}),
            json!({"seq": 9, "time": "2025-01-01T00:00:01.400Z", "action": "BatchRegisterTargets",
                   "result": "RequestLimitExceeded",
                   "params": {"LoadBalancerId": "lb-1", "Targets": [
                       {"ListenerId": "lbl-1", "EniIp": "10.0.0.4", "Port": 80}]}}),
            json!({"seq": 10, "time": "2025-01-01T00:00:01.500Z", "action": "DescribeTaskStatus",
                   "result": "OK", "params": {}}),
        ];
        let (seq, regs) = registrations(&entries);
        assert_eq!(seq, Some(10));
        let keys: Vec<(&str, &str, &str, i64)> = regs
            .iter()
            .map(|r| {
                (
                    r.key.lb.as_str(),
                    r.key.listener_id.as_str(),
                    r.key.ip.as_str(),
                    r.key.target_port,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("lb-1", "lbl-1", "10.0.0.1", 80),
                ("lb-2", "lbl-9", "10.0.0.3", 81)
            ]
        );
        assert_eq!((regs[0].time - anchor()).num_milliseconds(), 1250);
        assert_eq!(registrations(&[]), (None, Vec::new()));
    }

    fn registration(ip: &str, at_ms: i64) -> Registration {
        Registration {
            key: RegistrationKey {
                lb: "lb-1".into(),
                listener_id: "lbl-1".into(),
                ip: ip.into(),
                target_port: 80,
            },
            time: anchor() + chrono::Duration::milliseconds(at_ms),
        }
    }

    #[test]
    fn a_logged_registration_dates_the_target_within_the_poll_interval() {
        let mut t = CloudTimeline::new(anchor());
        t.observe(&CloudSnapshot::default(), ms(1000), ms(1000));
        t.note(&[registration("10.0.0.1", 1012)]);
        t.observe(&one_target_state("10.0.0.1"), ms(1030), ms(1030));
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1012))
        );
        // A later sighting does not move the first one.
        t.observe(&one_target_state("10.0.0.1"), ms(2000), ms(2000));
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1012))
        );
    }

    #[test]
    fn a_log_time_outside_the_interval_is_clamped_and_no_log_means_the_dump_time() {
        let mut t = CloudTimeline::new(anchor());
        t.observe(&CloudSnapshot::default(), ms(1000), ms(1000));
        // Clock skew: the log claims a time before the previous (empty) dump.
        t.note(&[registration("10.0.0.1", 400)]);
        t.observe(&one_target_state("10.0.0.1"), ms(1030), ms(1030));
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1000))
        );

        let mut t = CloudTimeline::new(anchor());
        t.note(&[registration("10.0.0.1", 5000)]);
        t.observe(&one_target_state("10.0.0.1"), ms(1030), ms(1030));
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1030))
        );

        // Registration of another IP does not date this one.
        let mut t = CloudTimeline::new(anchor());
        t.observe(&CloudSnapshot::default(), ms(10), ms(10));
        t.note(&[registration("10.0.0.9", 20)]);
        t.observe(&one_target_state("10.0.0.1"), ms(50), ms(50));
        assert_eq!(t.first_seen(&key("lb-1", 30000, "10.0.0.1")), Some(ms(50)));
    }

    #[test]
    fn the_interval_starts_when_the_previous_dump_was_requested() {
        // Committed while the previous (empty) dump was in flight: after its request, before
        // its answer. The stamp keeps the logged time rather than the answer's.
        let mut t = CloudTimeline::new(anchor());
        t.observe(&CloudSnapshot::default(), ms(1000), ms(1100));
        t.note(&[registration("10.0.0.1", 1050)]);
        t.observe(&one_target_state("10.0.0.1"), ms(1200), ms(1230));
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1050))
        );
    }

    #[test]
    fn a_registration_logged_after_the_dump_still_dates_its_target() {
        // Committed between the log poll and the dump: the dump sees it first, the next log
        // poll explains it.
        let mut t = CloudTimeline::new(anchor());
        t.observe(&CloudSnapshot::default(), ms(1000), ms(1000));
        t.observe(&one_target_state("10.0.0.1"), ms(1200), ms(1230));
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1230))
        );
        // Outside the interval: ignored.
        t.note(&[registration("10.0.0.1", 1500)]);
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1230))
        );
        t.note(&[registration("10.0.0.1", 1210)]);
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1210))
        );
        // Only until the next dump.
        let mut t = CloudTimeline::new(anchor());
        t.observe(&one_target_state("10.0.0.1"), ms(1200), ms(1230));
        t.observe(&one_target_state("10.0.0.1"), ms(1400), ms(1430));
        t.note(&[registration("10.0.0.1", 1210)]);
        assert_eq!(
            t.first_seen(&key("lb-1", 30000, "10.0.0.1")),
            Some(ms(1230))
        );
    }

    #[test]
    fn registrations_not_confirmed_by_the_next_dump_are_forgotten() {
        // A registration whose listener was skipped (FailListenerIdSet) must not date the
        // later, real registration.
        let mut t = CloudTimeline::new(anchor());
        t.observe(&CloudSnapshot::default(), ms(100), ms(100));
        t.note(&[registration("10.0.0.1", 120)]);
        t.observe(&CloudSnapshot::default(), ms(150), ms(150));
        t.observe(&one_target_state("10.0.0.1"), ms(900), ms(900));
        assert_eq!(t.first_seen(&key("lb-1", 30000, "10.0.0.1")), Some(ms(900)));
    }

    fn pod(ip: Option<&str>, bindings: Option<Value>) -> Value {
        let mut p = json!({"metadata": {"name": "p", "annotations": {}}, "status": {}});
        if let Some(ip) = ip {
            p["status"]["podIP"] = json!(ip);
        }
        if let Some(b) = bindings {
            p["metadata"]["annotations"][POOL_BINDINGS_ANNOTATION] = json!(b.to_string());
        }
        p
    }

    #[test]
    fn expectation_follows_the_pool_binding_annotation() {
        assert_eq!(expectation(&pod(None, None)), None);
        assert_eq!(
            expectation(&pod(Some("10.0.0.1"), None)),
            Some(Expectation::AnyWithIp("10.0.0.1".into()))
        );
        let items = json!([
            {"poolName": "p", "protocol": "TCP", "startPort": 30000, "endPort": 0, "rsStartPort": 80,
             "loadBalancerIDs": ["ap-guangzhou:lb-1", "lb-2"]},
            {"poolName": "p", "protocol": "UDP", "startPort": 30000, "endPort": 0, "rsStartPort": 80,
             "poolItemLoadBalancers": [{"loadbalancerID": "lb-1"}], "loadBalancerIDs": ["lb-x"]}
        ]);
        let Some(Expectation::All(keys)) = expectation(&pod(Some("10.0.0.1"), Some(items))) else {
            panic!("expected All");
        };
        let mut udp = key("lb-1", 30000, "10.0.0.1");
        udp.protocol = "UDP".into();
        let want: BTreeSet<TargetKey> = [
            key("lb-1", 30000, "10.0.0.1"),
            key("lb-2", 30000, "10.0.0.1"),
            udp,
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, want);
        let host_port = json!([{"protocol": "TCP", "startPort": 1, "rsStartPort": 80,
                                "hostPort": true, "loadBalancerIDs": ["lb-1"]}]);
        assert_eq!(
            expectation(&pod(Some("10.0.0.1"), Some(host_port))),
            Some(Expectation::AnyWithIp("10.0.0.1".into()))
        );
    }

    #[test]
    fn an_expectation_is_met_when_its_last_target_arrives() {
        let mut t = CloudTimeline::new(anchor());
        let two_lbs = snapshot(&[
            lb(
                "lb-1",
                json!([{"listenerId": "a", "protocol": "TCP", "port": 30000,
                        "targets": [{"ip": "10.0.0.1", "port": 80}]}]),
            ),
            lb("lb-2", json!([])),
        ]);
        t.observe(&two_lbs, ms(100), ms(100));
        let all = Expectation::All(
            [
                key("lb-1", 30000, "10.0.0.1"),
                key("lb-2", 30000, "10.0.0.1"),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(all.met_at(&t), None);
        assert_eq!(
            Expectation::AnyWithIp("10.0.0.1".into()).met_at(&t),
            Some(ms(100))
        );
        let both = snapshot(&[
            lb(
                "lb-1",
                json!([{"listenerId": "a", "protocol": "TCP", "port": 30000,
                        "targets": [{"ip": "10.0.0.1", "port": 80}]}]),
            ),
            lb(
                "lb-2",
                json!([{"listenerId": "b", "protocol": "TCP", "port": 30000,
                        "targets": [{"ip": "10.0.0.1", "port": 80}]}]),
            ),
        ]);
        t.observe(&both, ms(250), ms(250));
        assert_eq!(all.met_at(&t), Some(ms(250)));
        assert_eq!(Expectation::All(BTreeSet::new()).met_at(&t), None);
    }
}
