//! The state file: a restarted fake-clb has the same state; a corrupt file is refused and left untouched.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut cfg = config();
    cfg.state_file = Some(path.clone());

    let (h, c) = start(cfg.clone()).await;
    let r = c
        .call(
            "CreateListener",
            json!({"LoadBalancerId": LB, "Ports": [80, 81], "Protocol": "TCP"}),
        )
        .await;
    assert_eq!(code_of(&r), "OK");
    c.wait_task(r["RequestId"].as_str().unwrap()).await;
    let lid = r["ListenerIds"][0].as_str().unwrap().to_string();
    let r = c.call("RegisterTargets", json!({"LoadBalancerId": LB, "ListenerId": lid, "Targets": [{"EniIp": "10.0.0.1", "Port": 8080, "Weight": 7}]})).await;
    c.wait_task(r["RequestId"].as_str().unwrap()).await;
    let other = Client::new(&h).for_other_account();
    let r = other
        .call(
            "CreateLoadBalancer",
            json!({"LoadBalancerType": "OPEN", "LoadBalancerName": "mine"}),
        )
        .await;
    other.wait_task(r["RequestId"].as_str().unwrap()).await;
    let before = c.admin.state(&Default::default()).await.unwrap();
    h.shutdown().await;

    let (h2, c2) = start(cfg.clone()).await;
    let after = c2.admin.state(&Default::default()).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(
        c2.code(
            "CreateListener",
            json!({"LoadBalancerId": LB, "Ports": [80], "Protocol": "TCP"})
        )
        .await,
        "InvalidParameter.PortCheckFailed"
    );
    let t = c2
        .call(
            "DescribeTargets",
            json!({"LoadBalancerId": LB, "ListenerIds": [lid]}),
        )
        .await;
    assert_eq!(t["Listeners"][0]["Targets"][0]["Weight"], 7);
    h2.shutdown().await;
}

#[tokio::test]
async fn corrupt_state_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"{\"accounts\": [oops").unwrap();
    let mut cfg = config();
    cfg.state_file = Some(path.clone());
    let err = match fake_clb::serve(cfg).await {
        Ok(_) => panic!("a corrupt state file must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("line 1"), "names the parse error: {err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"accounts\": [oops");
}
