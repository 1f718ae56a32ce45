//! Fault rules over HTTP: order, count, seeded probability, and every effect type.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_clb::admin_api::{AdminPath, FaultRule};
use serde_json::{Value, json};

fn rules(v: Value) -> Vec<FaultRule> {
    serde_json::from_value(v).expect("fault rules")
}

async fn set_faults(c: &Client, v: Value) {
    c.admin
        .put_faults(&rules(v))
        .await
        .expect("faults installed");
}

fn create_listener(port: i64) -> Value {
    json!({"LoadBalancerId": LB, "Ports": [port], "Protocol": "TCP"})
}

async fn listener_count(c: &Client) -> u64 {
    c.call("DescribeListeners", json!({"LoadBalancerId": LB}))
        .await["TotalCount"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn rules_apply_in_order_and_count_down() {
    let (h, c) = start(config()).await;
    set_faults(&c, json!([
        {"id": "first", "action": "DescribeQuota", "count": 2, "effect": {"type": "error", "code": "InternalError", "message": "boom"}},
        {"id": "other-lb", "loadBalancerId": "lb-zzzzzzzz", "effect": {"type": "error", "code": "ResourceUnavailable"}},
        {"id": "other-account", "secretId": OTHER_ID, "effect": {"type": "error", "code": "UnauthorizedOperation"}},
        {"id": "second", "action": "DescribeQuota", "effect": {"type": "error", "code": "FailedOperation"}}
    ])).await;
    let r = c.call("DescribeQuota", json!({})).await;
    assert_eq!(code_of(&r), "InternalError");
    assert_eq!(r["Error"]["Message"], "boom");
    assert_eq!(c.code("DescribeQuota", json!({})).await, "InternalError");
    assert_eq!(c.code("DescribeQuota", json!({})).await, "FailedOperation");
    // Rules restricted to another LB / account do not match.
    assert_eq!(
        c.code("DescribeListeners", json!({"LoadBalancerId": LB}))
            .await,
        "OK"
    );
    assert_eq!(
        Client::new(&h)
            .for_other_account()
            .code("DescribeLoadBalancers", json!({}))
            .await,
        "UnauthorizedOperation"
    );
    let list = c.admin.faults().await.unwrap();
    assert_eq!(list[0].fired, 2);
    assert_eq!(list[0].remaining, Some(0));
    assert_eq!(list[3].fired, 1);
    assert_eq!(list[3].remaining, None);
    let after = c
        .admin
        .append_faults(&rules(json!([{"effect": {"type": "throttle"}}])))
        .await
        .unwrap();
    assert_eq!(after.len(), 5);
    assert_eq!(c.admin.faults().await.unwrap().len(), 5);
    // An effect the typed rules cannot express, sent by hand, is refused.
    let r = c
        .http
        .put(c.admin.url(AdminPath::Faults))
        .json(&json!([{"effect": {"type": "nonsense"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    c.admin.clear_faults().await.unwrap();
    assert_eq!(c.code("DescribeQuota", json!({})).await, "OK");
    h.shutdown().await;
}

#[tokio::test]
async fn probability_is_reproducible_with_the_seed() {
    let (h, c) = start(config()).await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        c.admin.reset().await.unwrap();
        set_faults(&c, json!([{"action": "DescribeQuota", "probability": 0.5, "effect": {"type": "error", "code": "InternalError"}}])).await;
        let mut pattern = Vec::new();
        for _ in 0..24 {
            pattern.push(c.code("DescribeQuota", json!({})).await == "InternalError");
        }
        runs.push(pattern);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].iter().any(|b| *b) && runs[0].iter().any(|b| !*b),
        "{:?}",
        runs[0]
    );
    h.shutdown().await;
}

#[tokio::test]
async fn latency_throttle_and_drop_effects() {
    let (h, c) = start(config()).await;
    set_faults(
        &c,
        json!([
            {"action": "DescribeQuota", "count": 1, "effect": {"type": "latency", "ms": 300}},
            {"action": "DescribeLoadBalancers", "count": 1, "effect": {"type": "throttle"}},
            {"action": "DescribeListeners", "count": 1, "effect": {"type": "drop"}}
        ]),
    )
    .await;
    let t = Instant::now();
    assert_eq!(c.code("DescribeQuota", json!({})).await, "OK");
    assert!(t.elapsed() >= Duration::from_millis(300));
    let r = c.call("DescribeLoadBalancers", json!({})).await;
    assert_eq!(code_of(&r), "RequestLimitExceeded");
    assert!(
        r["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("which exceeds the frequency limit")
    );
    let body = serde_json::to_vec(&json!({"LoadBalancerId": LB})).unwrap();
    let dropped = c
        .post_raw("DescribeListeners", &body, now(), "2018-03-17")
        .await;
    assert!(
        dropped.is_err(),
        "the connection must close without a response"
    );
    // The rule is exhausted: the next call is answered.
    assert_eq!(
        c.code("DescribeListeners", json!({"LoadBalancerId": LB}))
            .await,
        "OK"
    );
    let log = c.admin.requests(None).await.unwrap();
    assert!(log.iter().any(|e| e.result == "Dropped"));
    h.shutdown().await;
}

#[tokio::test]
async fn commit_then_fail_applies_the_change() {
    let (h, c) = start(config()).await;
    set_faults(&c, json!([{"action": "CreateListener", "count": 1, "effect": {"type": "commitThenFail", "code": "InternalError", "message": "lost reply"}}])).await;
    let r = c.call("CreateListener", create_listener(80)).await;
    assert_eq!(code_of(&r), "InternalError");
    assert_eq!(listener_count(&c).await, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn fail_task_rolls_back() {
    let (h, c) = start(config()).await;
    set_faults(&c, json!([{"action": "CreateListener", "count": 1, "effect": {"type": "failTask", "message": "backend exploded"}}])).await;
    let r = c.call("CreateListener", create_listener(80)).await;
    assert_eq!(code_of(&r), "OK");
    let st = c.wait_task(r["RequestId"].as_str().unwrap()).await;
    assert_eq!(st["Status"], 1);
    assert_eq!(st["Message"], "backend exploded");
    assert_eq!(listener_count(&c).await, 0);
    h.shutdown().await;
}

#[tokio::test]
async fn hang_task_stays_in_progress_until_the_faults_are_cleared() {
    let mut cfg = config();
    cfg.limits.task_duration = Duration::ZERO;
    let (h, c) = start(cfg).await;
    set_faults(
        &c,
        json!([{"action": "CreateListener", "count": 1, "effect": {"type": "hangTask"}}]),
    )
    .await;
    let hung = c.call("CreateListener", create_listener(80)).await;
    let hung_id = hung["RequestId"].as_str().unwrap().to_string();
    // Normal tasks finish at once (taskDuration 0); the hung one does not, and it keeps the LB busy.
    assert_eq!(
        c.call("DescribeTaskStatus", json!({"TaskId": hung_id}))
            .await["Status"],
        2
    );
    assert_eq!(
        c.code("CreateListener", create_listener(81)).await,
        "FailedOperation.ResourceInOperating"
    );
    assert_eq!(
        c.call("DescribeTaskStatus", json!({"TaskId": hung_id}))
            .await["Status"],
        2
    );
    c.admin.clear_faults().await.unwrap();
    assert_eq!(c.wait_task(&hung_id).await["Status"], 0);
    let ok = c.call("CreateListener", create_listener(81)).await;
    assert_eq!(code_of(&ok), "OK");
    assert_eq!(
        c.call("DescribeTaskStatus", json!({"TaskId": ok["RequestId"]}))
            .await["Status"],
        0
    );
    h.shutdown().await;
}
