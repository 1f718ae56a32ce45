//! State-core tests: time is passed explicitly, so task and busy behaviour is exact.

use std::time::Duration;

use clb_api::ErrorCode;
use serde_json::{Value, json};

use super::*;
use crate::config::{AccountConfig, Config, LoadBalancerConfig};

const A: &str = "AKIDa";
const B: &str = "AKIDb";
const R: &str = "ap-guangzhou";
const LB: &str = "lb-00000001";

fn config() -> Config {
    Config {
        accounts: vec![
            AccountConfig {
                secret_id: A.into(),
                secret_key: "ka".into(),
                app_id: 1,
            },
            AccountConfig {
                secret_id: B.into(),
                secret_key: "kb".into(),
                app_id: 2,
            },
        ],
        load_balancers: vec![LoadBalancerConfig {
            id: LB.into(),
            secret_id: A.into(),
            region: R.into(),
            name: Some("test".into()),
            lb_type: "OPEN".into(),
            vips: vec!["1.1.1.1".into()],
        }],
        ..Config::default()
    }
}

struct World {
    state: State,
    limits: Limits,
    seq: u64,
}

impl World {
    fn new() -> World {
        let limits = Limits {
            task_duration: Duration::from_millis(200),
            ..Limits::default()
        };
        World {
            state: State::from_config(&config(), 42, 0),
            limits,
            seq: 0,
        }
    }

    fn call_as(
        &mut self,
        who: &str,
        now: u64,
        mode: TaskMode,
        action: &str,
        params: Value,
    ) -> (String, Result<Value, ApiError>) {
        self.seq += 1;
        let rid = format!("req-{}", self.seq);
        self.state.settle(now);
        let ctx = Ctx {
            secret_id: who,
            region: R,
            now_ms: now,
            request_id: &rid,
            limits: &self.limits,
            task_mode: mode,
        };
        let r = self.state.execute(&ctx, action, params);
        (rid, r)
    }

    fn call(&mut self, now: u64, action: &str, params: Value) -> Result<Value, ApiError> {
        self.call_as(A, now, TaskMode::Normal, action, params).1
    }

    fn listener(
        &mut self,
        now: u64,
        protocol: &str,
        ports: &[i64],
    ) -> Result<Vec<String>, ApiError> {
        let v = self.call(
            now,
            "CreateListener",
            json!({"LoadBalancerId": LB, "Protocol": protocol, "Ports": ports}),
        )?;
        Ok(serde_json::from_value(v["ListenerIds"].clone()).unwrap())
    }

    fn task_status(&mut self, now: u64, task: &str) -> Value {
        self.call(now, "DescribeTaskStatus", json!({"TaskId": task}))
            .unwrap()
    }
}

#[test]
fn port_conflicts_follow_protocol_classes_and_ranges() {
    let mut w = World::new();
    let mut t = 0;
    let mut next = || {
        t += 1000;
        t
    };
    w.listener(next(), "TCP", &[80]).unwrap();
    assert_eq!(
        w.listener(next(), "TCP", &[80]).unwrap_err().code,
        ErrorCode::InvalidParameterPortCheckFailed
    );
    assert_eq!(
        w.listener(next(), "HTTP", &[80]).unwrap_err().code,
        ErrorCode::InvalidParameterPortCheckFailed
    );
    w.listener(next(), "UDP", &[80]).unwrap();
    assert_eq!(
        w.listener(next(), "QUIC", &[80]).unwrap_err().code,
        ErrorCode::InvalidParameterPortCheckFailed
    );
    // Same port twice in one request.
    assert_eq!(
        w.listener(next(), "TCP", &[81, 81]).unwrap_err().code,
        ErrorCode::InvalidParameterPortCheckFailed
    );
    // A range occupies [Port, EndPort].
    let now = next();
    w.call(
        now,
        "CreateListener",
        json!({"LoadBalancerId": LB, "Protocol": "TCP", "Ports": [100], "EndPort": 200}),
    )
    .unwrap();
    assert_eq!(
        w.listener(next(), "TCP", &[150]).unwrap_err().code,
        ErrorCode::InvalidParameterPortCheckFailed
    );
    assert_eq!(
        w.listener(next(), "tcp_ssl", &[200]).unwrap_err().code,
        ErrorCode::MissingParameter
    );
    w.listener(next(), "UDP", &[150]).unwrap();
    w.listener(next(), "TCP", &[201]).unwrap();
    // Nothing of the failed calls was created.
    let v = w
        .call(next(), "DescribeListeners", json!({"LoadBalancerId": LB}))
        .unwrap();
    assert_eq!(v["TotalCount"], 5);
}

#[test]
fn listener_quota_and_port_count_limits() {
    let mut w = World::new();
    w.limits.listeners_per_load_balancer = 3;
    w.listener(0, "TCP", &[1, 2]).unwrap();
    let e = w.listener(1000, "TCP", &[3, 4]).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    w.listener(2000, "TCP", &[3]).unwrap();
    w.limits.listeners_per_load_balancer = 100;
    let ports: Vec<i64> = (1000..1050).collect();
    let e = w.listener(3000, "TCP", &ports).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueLength);
    assert_eq!(e.message, "Length of .Ports should be less than 50");
    w.listener(4000, "TCP", &ports[..49]).unwrap();
    let v = w.call(5000, "DescribeQuota", json!({})).unwrap();
    let q = v["QuotaSet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["QuotaId"] == "TOTAL_OPEN_CLB_QUOTA")
        .unwrap()
        .clone();
    assert_eq!(q["QuotaCurrent"], 1);
}

#[test]
fn busy_lb_rejects_writes_until_the_task_ends_but_not_reads() {
    let mut w = World::new();
    let (task, r) = w.call_as(
        A,
        0,
        TaskMode::Normal,
        "CreateListener",
        json!({"LoadBalancerId": LB, "Protocol": "TCP", "Ports": [80]}),
    );
    r.unwrap();
    assert_eq!(w.task_status(100, &task)["Status"], 2);
    let e = w.listener(100, "TCP", &[81]).unwrap_err();
    assert_eq!(e.code, ErrorCode::FailedOperationResourceInOperating);
    assert_eq!(
        e.message,
        format!(
            "Loadbalancer({LB}) is not in normal desState, maybe some tasks are being processed, please try later."
        )
    );
    // Visible at once while the task runs.
    let v = w
        .call(100, "DescribeListeners", json!({"LoadBalancerId": LB}))
        .unwrap();
    assert_eq!(v["Listeners"][0]["Port"], 80);
    assert_eq!(w.task_status(200, &task)["Status"], 0);
    w.listener(200, "TCP", &[81]).unwrap();
}

#[test]
fn failed_task_rolls_back_and_hung_task_waits_for_release() {
    let mut w = World::new();
    let (task, r) = w.call_as(
        A,
        0,
        TaskMode::Fail("boom".into()),
        "CreateListener",
        json!({"LoadBalancerId": LB, "Protocol": "TCP", "Ports": [80]}),
    );
    r.unwrap();
    assert_eq!(w.task_status(10, &task)["Status"], 2);
    let st = w.task_status(300, &task);
    assert_eq!(st["Status"], 1);
    assert_eq!(st["Message"], "boom");
    let v = w
        .call(300, "DescribeListeners", json!({"LoadBalancerId": LB}))
        .unwrap();
    assert_eq!(v["TotalCount"], 0);

    let (task, r) = w.call_as(
        A,
        1000,
        TaskMode::Hang,
        "CreateListener",
        json!({"LoadBalancerId": LB, "Protocol": "TCP", "Ports": [80]}),
    );
    r.unwrap();
    assert_eq!(w.task_status(1_000_000, &task)["Status"], 2);
    assert_eq!(
        w.listener(1_000_000, "UDP", &[1]).unwrap_err().code,
        ErrorCode::FailedOperationResourceInOperating
    );
    assert!(w.state.release_hung_tasks(1_000_001));
    assert_eq!(w.task_status(1_000_001, &task)["Status"], 0);
    assert_eq!(
        w.call(1_000_001, "DescribeTaskStatus", json!({"TaskId": "nope"}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidParameter
    );
}

#[test]
fn delete_load_balancer_listeners_empty_list_deletes_all_and_unknown_ids_fail_whole_call() {
    let mut w = World::new();
    let ids = w.listener(0, "TCP", &[1, 2, 3]).unwrap();
    let e = w
        .call(
            1000,
            "DeleteLoadBalancerListeners",
            json!({"LoadBalancerId": LB, "ListenerIds": [ids[0], "lbl-missing1"]}),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameter);
    assert!(
        e.message.contains("some ListenerId")
            && e.message.contains("not found")
            && e.message.contains("lbl-missing1"),
        "{}",
        e.message
    );
    assert_eq!(
        w.call(1000, "DescribeListeners", json!({"LoadBalancerId": LB}))
            .unwrap()["TotalCount"],
        3
    );
    w.call(
        1000,
        "DeleteLoadBalancerListeners",
        json!({"LoadBalancerId": LB, "ListenerIds": []}),
    )
    .unwrap();
    assert_eq!(
        w.call(2000, "DescribeListeners", json!({"LoadBalancerId": LB}))
            .unwrap()["TotalCount"],
        0
    );
    let e = w
        .call(
            2000,
            "DeleteListener",
            json!({"LoadBalancerId": LB, "ListenerId": "lbl-gone0000"}),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterListenerIdNotFound);
    assert!(e.message.contains("lbl-gone0000"));
}

#[test]
fn accounts_are_isolated() {
    let mut w = World::new();
    let (_, r) = w.call_as(
        B,
        0,
        TaskMode::Normal,
        "DescribeListeners",
        json!({"LoadBalancerId": LB}),
    );
    let e = r.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterLbIdNotFound);
    assert!(e.message.contains("LoadBalancer not exist") && e.message.contains(LB));
    let (_, r) = w.call_as(B, 0, TaskMode::Normal, "DescribeLoadBalancers", json!({}));
    assert_eq!(r.unwrap()["TotalCount"], 0);
    assert_eq!(
        w.call(0, "DescribeLoadBalancers", json!({})).unwrap()["TotalCount"],
        1
    );
    let v = w
        .call(
            0,
            "DescribeLoadBalancers",
            json!({"LoadBalancerIds": [LB, "lb-nothere0"]}),
        )
        .unwrap();
    assert_eq!(v["TotalCount"], 1);
    assert_eq!(
        v["LoadBalancerSet"][0]["LoadBalancerVips"],
        json!(["1.1.1.1"])
    );
}

#[test]
fn create_load_balancer_is_creating_until_its_task_ends() {
    let mut w = World::new();
    w.limits.load_balancer_create_duration = Duration::from_secs(1);
    let (task, r) = w.call_as(
        A,
        0,
        TaskMode::Normal,
        "CreateLoadBalancer",
        json!({"LoadBalancerType": "OPEN", "LoadBalancerName": "x", "ClientToken": "tok"}),
    );
    let v = r.unwrap();
    let id = v["LoadBalancerIds"][0].as_str().unwrap().to_string();
    assert!(id.starts_with("lb-") && id.len() == 11);
    let lbs = w
        .call(
            500,
            "DescribeLoadBalancers",
            json!({"LoadBalancerIds": [id]}),
        )
        .unwrap();
    assert_eq!(lbs["LoadBalancerSet"][0]["Status"], 0);
    assert_eq!(
        w.call(
            500,
            "DescribeTaskStatus",
            json!({"DealName": v["DealName"]})
        )
        .unwrap()["Status"],
        2
    );
    // Same ClientToken: same result, nothing new.
    let again = w
        .call(
            600,
            "CreateLoadBalancer",
            json!({"LoadBalancerType": "OPEN", "ClientToken": "tok"}),
        )
        .unwrap();
    assert_eq!(again["LoadBalancerIds"], v["LoadBalancerIds"]);
    let st = w.task_status(1000, &task);
    assert_eq!(st["Status"], 0);
    assert_eq!(st["LoadBalancerIds"][0], id.as_str());
    let lbs = w
        .call(
            1000,
            "DescribeLoadBalancers",
            json!({"LoadBalancerIds": [id]}),
        )
        .unwrap();
    assert_eq!(lbs["LoadBalancerSet"][0]["Status"], 1);
    w.limits.load_balancers_per_region = 2;
    assert_eq!(
        w.call(
            1000,
            "CreateLoadBalancer",
            json!({"LoadBalancerType": "OPEN"})
        )
        .unwrap_err()
        .code,
        ErrorCode::LimitExceeded
    );
    w.call(1000, "DeleteLoadBalancer", json!({"LoadBalancerIds": [id]}))
        .unwrap();
    assert_eq!(
        w.call(1000, "DeleteLoadBalancer", json!({"LoadBalancerIds": [id]}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidParameterLbIdNotFound
    );
}

#[test]
fn targets_on_l4_listeners_and_l7_rules() {
    let mut w = World::new();
    let l4 = w.listener(0, "TCP", &[80]).unwrap()[0].clone();
    let l7 = w.listener(1000, "HTTP", &[8080]).unwrap()[0].clone();
    w.call(2000, "RegisterTargets", json!({"LoadBalancerId": LB, "ListenerId": l4, "Targets": [{"EniIp": "10.0.0.1", "Port": 8000}, {"InstanceId": "ins-1", "Port": 8000, "Weight": 5}]})).unwrap();
    let e = w.call(3000, "RegisterTargets", json!({"LoadBalancerId": LB, "ListenerId": l4, "Targets": [{"EniIp": "10.0.0.2", "Port": 1}, {"EniIp": "10.0.0.2", "Port": 1}]})).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueDuplicate);
    let e = w
        .call(
            3000,
            "CreateRule",
            json!({"LoadBalancerId": LB, "ListenerId": l4, "Rules": [{"Url": "/"}]}),
        )
        .unwrap_err();
    assert_eq!(
        e.message,
        "This interface only support HTTP/HTTPS listener."
    );
    let v = w.call(3000, "CreateRule", json!({"LoadBalancerId": LB, "ListenerId": l7, "Rules": [{"Url": "/a", "Domain": "x.com"}]})).unwrap();
    let loc = v["LocationIds"][0].as_str().unwrap().to_string();
    w.call(4000, "RegisterTargets", json!({"LoadBalancerId": LB, "ListenerId": l7, "LocationId": loc, "Targets": [{"EniIp": "10.0.0.3", "Port": 80}]})).unwrap();
    w.call(5000, "ModifyTargetWeight", json!({"LoadBalancerId": LB, "ListenerId": l4, "Weight": 50, "Targets": [{"EniIp": "10.0.0.1", "Port": 8000}]})).unwrap();
    let t = w
        .call(6000, "DescribeTargets", json!({"LoadBalancerId": LB}))
        .unwrap();
    assert_eq!(t["Listeners"][0]["Targets"][0]["Weight"], 50);
    assert_eq!(
        t["Listeners"][0]["Targets"][0]["PrivateIpAddresses"],
        json!(["10.0.0.1"])
    );
    assert_eq!(t["Listeners"][0]["Targets"][1]["Weight"], 5);
    assert_eq!(t["Listeners"][1]["Rules"][0]["Targets"][0]["Port"], 80);
    let e = w.call(6000, "DeregisterTargets", json!({"LoadBalancerId": LB, "ListenerId": l4, "Targets": [{"EniIp": "10.9.9.9", "Port": 1}]})).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameter);
    // Batch: synchronous, per-listener quota failures go to FailListenerIdSet.
    w.limits.targets_per_listener = 3;
    let v = w.call(7000, "BatchRegisterTargets", json!({"LoadBalancerId": LB, "Targets": [
        {"ListenerId": l4, "EniIp": "10.0.1.1", "Port": 1}, {"ListenerId": l4, "EniIp": "10.0.1.2", "Port": 1},
        {"ListenerId": l7, "LocationId": loc, "EniIp": "10.0.1.3", "Port": 1}]})).unwrap();
    assert_eq!(v["FailListenerIdSet"], json!([l4]));
    w.call(7000, "BatchDeregisterTargets", json!({"LoadBalancerId": LB, "Targets": [{"ListenerId": l7, "LocationId": loc, "EniIp": "10.0.1.3", "Port": 1}]})).unwrap();
    let h = w
        .call(
            7000,
            "DescribeTargetHealth",
            json!({"LoadBalancerIds": [LB]}),
        )
        .unwrap();
    assert_eq!(
        h["LoadBalancers"][0]["Listeners"][0]["Rules"][0]["Targets"][0]["HealthStatusDetail"],
        "Alive"
    );
}

#[test]
fn batch_busy_tail_blocks_the_next_write() {
    let mut w = World::new();
    let l4 = w.listener(0, "TCP", &[80]).unwrap()[0].clone();
    w.limits.batch_busy_tail = Duration::from_millis(500);
    w.call(1000, "BatchRegisterTargets", json!({"LoadBalancerId": LB, "Targets": [{"ListenerId": l4, "EniIp": "10.0.1.1", "Port": 1}]})).unwrap();
    assert_eq!(
        w.listener(1400, "TCP", &[81]).unwrap_err().code,
        ErrorCode::FailedOperationResourceInOperating
    );
    w.listener(1500, "TCP", &[81]).unwrap();
}

#[test]
fn ids_are_reproducible_for_a_seed_and_state_round_trips_through_json() {
    let run = || {
        let mut w = World::new();
        w.listener(0, "TCP", &[1, 2]).unwrap()
    };
    assert_eq!(run(), run());
    let mut w = World::new();
    w.listener(0, "TCP", &[1]).unwrap();
    let text = serde_json::to_string(&w.state).unwrap();
    let back: State = serde_json::from_str(&text).unwrap();
    assert_eq!(back, w.state);
    let dump = serde_json::to_value(w.state.dump(Some(A), None)).unwrap();
    assert!(!dump.to_string().contains("ka"), "no secrets in the dump");
    assert_eq!(
        dump["accounts"][0]["regions"][R]["loadBalancers"][0]["listeners"][0]["port"],
        1
    );
}
