//! The API over HTTP: envelopes, the three signing modes, gateway errors, rate limits, isolation.

mod common;

use clb_api::sign::V1Method;
use common::*;
use fake_clb::admin_api::{AdminPath, ConsoleTarget, CreateLoadBalancer, LimitsPatch, StateQuery};
use fake_clb::admin_client::AdminClientError;
use serde_json::json;

#[tokio::test]
async fn success_and_error_envelopes_are_json_with_request_ids() {
    let (h, c) = start(config()).await;
    let ok = c.call("DescribeQuota", json!({})).await;
    let rid = ok["RequestId"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(rid).unwrap().get_version_num(), 4);
    assert!(
        ok["QuotaSet"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["QuotaId"] == "TOTAL_LISTENER_QUOTA" && q["QuotaLimit"] == 50)
    );
    let err = c
        .call(
            "DescribeListeners",
            json!({"LoadBalancerId": "lb-nothere0"}),
        )
        .await;
    assert_eq!(code_of(&err), "InvalidParameter.LBIdNotFound");
    assert!(
        err["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("LoadBalancer not exist")
    );
    assert!(err["RequestId"].as_str().is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn tc3_get_and_v1_form_and_query_all_work() {
    let (h, c) = start(config()).await;
    let r = c
        .get("CreateListener", &json!({"LoadBalancerId": LB, "Ports": [8000, 8001], "Protocol": "TCP",
                                       "ListenerNames": ["a b", "c"], "HealthCheck": {"HealthSwitch": 0}}))
        .await;
    assert_eq!(code_of(&r), "OK", "{r}");
    assert_eq!(r["ListenerIds"].as_array().unwrap().len(), 2);
    let task = r["RequestId"].as_str().unwrap().to_string();
    assert_eq!(c.wait_task(&task).await["Status"], 0);

    let v = c
        .v1(
            "POST",
            V1Method::HmacSha256,
            "DescribeListeners",
            &json!({"LoadBalancerId": LB, "Port": 8000}),
        )
        .await;
    assert_eq!(code_of(&v), "OK", "{v}");
    assert_eq!(v["TotalCount"], 1);
    assert_eq!(v["Listeners"][0]["ListenerName"], "a b");
    assert_eq!(v["Listeners"][0]["HealthCheck"]["HealthSwitch"], 0);
    let g = c
        .v1(
            "GET",
            V1Method::HmacSha1,
            "DescribeListeners",
            &json!({"LoadBalancerId": LB}),
        )
        .await;
    assert_eq!(g["TotalCount"], 2, "{g}");
    // Python sends booleans as True/False in GET.
    let b = c
        .get("DescribeLoadBalancers", &json!({"LoadBalancerIds": [LB]}))
        .await;
    assert_eq!(b["TotalCount"], 1);
    h.shutdown().await;
}

#[tokio::test]
async fn gateway_errors_use_the_real_codes() {
    let (h, c) = start(config()).await;
    let send = |action: &'static str, body: &'static str, ts: i64, version: &'static str| {
        let c = &c;
        async move {
            let r = c
                .post_raw(action, body.as_bytes(), ts, version)
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/json");
            let v: serde_json::Value = r.json().await.unwrap();
            code_of(&v["Response"])
        }
    };
    assert_eq!(
        send("DescribeQuota", "{}", now() - 1000, "2018-03-17").await,
        "AuthFailure.SignatureExpire"
    );
    assert_eq!(
        send("Nope", "{}", now(), "2018-03-17").await,
        "InvalidAction"
    );
    assert_eq!(
        send("DescribeQuota", "{}", now(), "2017-03-12").await,
        "NoSuchVersion"
    );
    assert_eq!(
        send("DescribeQuota", "{not json", now(), "2018-03-17").await,
        "InvalidParameter.FormatError"
    );
    assert_eq!(
        c.code("DescribeListeners", json!({})).await,
        "MissingParameter"
    );
    assert_eq!(
        c.code(
            "DescribeListeners",
            json!({"LoadBalancerId": LB, "Bogus": 1})
        )
        .await,
        "UnknownParameter"
    );
    assert_eq!(
        c.code(
            "DescribeListeners",
            json!({"LoadBalancerId": LB, "Port": "80"})
        )
        .await,
        "InvalidParameter"
    );
    assert_eq!(
        c.code(
            "DescribeListeners",
            json!({"LoadBalancerId": LB, "Port": 70000})
        )
        .await,
        "InvalidParameterValue.Range"
    );
    let ids: Vec<String> = (0..21).map(|i| format!("lb-{i:08}")).collect();
    assert_eq!(
        c.code("DescribeLoadBalancers", json!({"LoadBalancerIds": ids}))
            .await,
        "InvalidParameterValue.Length"
    );

    // Tampered signature: sign one body, send another.
    let signer = clb_api::sign::Tc3Signer::new(SECRET_ID, SECRET_KEY);
    let ts = now();
    let auth = signer.authorization(&clb_api::sign::Tc3Request {
        method: "POST",
        host: &c.host,
        query: "",
        content_type: "application/json",
        body: b"{}",
        timestamp: ts,
    });
    let r: serde_json::Value = c
        .http
        .post(&c.api)
        .header("Content-Type", "application/json")
        .header("Authorization", auth)
        .header("X-TC-Action", "DescribeQuota")
        .header("X-TC-Version", "2018-03-17")
        .header("X-TC-Region", REGION)
        .header("X-TC-Timestamp", ts.to_string())
        .body("{ }")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code_of(&r["Response"]), "AuthFailure.SignatureFailure");

    let mut stranger = Client::new(&h);
    stranger.secret_id = "AKIDunknown".into();
    assert_eq!(
        stranger.code("DescribeQuota", json!({})).await,
        "AuthFailure.SecretIdNotFound"
    );
    let mut noregion = Client::new(&h);
    noregion.region = String::new();
    let r = noregion.call("DescribeQuota", json!({})).await;
    assert_eq!(code_of(&r), "MissingParameter");
    assert_eq!(
        r["Error"]["Message"],
        "The request is missing a required parameter `Region`."
    );
    let mut badregion = Client::new(&h);
    badregion.region = "mars-north-1".into();
    assert_eq!(
        badregion.code("DescribeQuota", json!({})).await,
        "UnsupportedRegion"
    );

    let r = c.http.put(&c.api).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code_of(&v["Response"]), "UnsupportedProtocol");

    let limits = c
        .admin
        .patch_limits(&LimitsPatch {
            max_body_bytes: Some(64),
            ..LimitsPatch::default()
        })
        .await
        .unwrap();
    assert_eq!(limits.max_body_bytes, 64);
    let big = format!("{{\"LoadBalancerId\": \"{}\"}}", "x".repeat(100));
    let r = c
        .post_raw("DescribeListeners", big.as_bytes(), now(), "2018-03-17")
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code_of(&v["Response"]), "RequestSizeLimitExceeded");
    // The typed patch cannot name an unknown limit; the server refuses one sent by hand.
    let resp = c
        .http
        .patch(c.admin.url(AdminPath::Limits))
        .json(&json!({"noSuchLimit": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    h.shutdown().await;
}

#[tokio::test]
async fn per_action_rate_limit_uses_the_real_message() {
    let mut cfg = config();
    cfg.limits.action_qps = 2;
    let (h, c) = start(cfg).await;
    let mut throttled = Vec::new();
    for _ in 0..10 {
        let r = c.call("DescribeQuota", json!({})).await;
        if code_of(&r) == "RequestLimitExceeded" {
            throttled.push(r["Error"]["Message"].as_str().unwrap().to_string());
        }
    }
    assert!(!throttled.is_empty());
    assert_eq!(
        throttled[0],
        "Your current request times equals to `3` in a second, which exceeds the frequency limit `2` for a second. Please reduce the frequency of calls."
    );
    // Another action has its own bucket.
    assert_ne!(
        c.code("DescribeLoadBalancers", json!({})).await,
        "RequestLimitExceeded"
    );
    let metrics = c.admin.metrics().await.unwrap();
    assert!(
        metrics.contains(
            "fake_clb_requests_total{action=\"DescribeQuota\",result=\"RequestLimitExceeded\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("fake_clb_request_duration_seconds"));
    assert!(metrics.contains("fake_clb_tasks_in_progress"));
    h.shutdown().await;
}

#[tokio::test]
async fn accounts_are_isolated_over_http() {
    let (h, c) = start(config()).await;
    let other = Client::new(&h).for_other_account();
    let r = other
        .call(
            "CreateListener",
            json!({"LoadBalancerId": LB, "Ports": [80], "Protocol": "TCP"}),
        )
        .await;
    assert_eq!(code_of(&r), "InvalidParameter.LBIdNotFound");
    assert_eq!(
        other.call("DescribeLoadBalancers", json!({})).await["TotalCount"],
        0
    );
    assert_eq!(
        c.call("DescribeLoadBalancers", json!({})).await["TotalCount"],
        1
    );
    let query = StateQuery {
        secret_id: Some(OTHER_ID.into()),
        region: None,
    };
    let state = c.admin.state(&query).await.unwrap();
    assert_eq!(state.accounts.len(), 1);
    assert_eq!(state.accounts[0].secret_id, OTHER_ID);
    let text = c.admin.state_json(&query).await.unwrap().to_string();
    assert!(!text.contains(OTHER_KEY) && !text.contains(SECRET_KEY));
    let log = c.admin.requests(None).await.unwrap();
    let last = log.last().unwrap();
    assert_eq!(last.action, "DescribeLoadBalancers");
    assert_eq!(last.secret_id, SECRET_ID);
    assert_eq!(last.result, "OK");
    let first = &log[0];
    assert_eq!(first.result, "InvalidParameter.LBIdNotFound");
    assert_eq!(first.load_balancer_id.as_deref(), Some(LB));
    assert_eq!(first.params["Ports"], json!([80]));
    h.shutdown().await;
}

#[tokio::test]
async fn console_changes_are_seen_by_the_api() {
    let (h, c) = start(config()).await;
    let r = c
        .call(
            "CreateListener",
            json!({"LoadBalancerId": LB, "Ports": [80], "Protocol": "TCP"}),
        )
        .await;
    let lid = r["ListenerIds"][0].as_str().unwrap().to_string();
    c.wait_task(r["RequestId"].as_str().unwrap()).await;
    let target = ConsoleTarget {
        region: Some(REGION.into()),
        load_balancer_id: LB.into(),
        listener_id: Some(lid.clone()),
        ..ConsoleTarget::default()
    };
    c.admin.console_delete_listener(&target).await.unwrap();
    assert_eq!(
        c.call("DescribeListeners", json!({"LoadBalancerId": LB}))
            .await["TotalCount"],
        0
    );
    let err = c.admin.console_delete_listener(&target).await.unwrap_err();
    assert!(
        matches!(err, AdminClientError::Refused { status: 404, .. }),
        "{err}"
    );
    let created = c
        .admin
        .console_create_load_balancer(&CreateLoadBalancer {
            secret_id: OTHER_ID.into(),
            region: REGION.into(),
            id: Some("lb-console1".into()),
            name: Some("c".into()),
            lb_type: Some("INTERNAL".into()),
            vips: vec!["10.0.0.9".into()],
        })
        .await
        .unwrap();
    assert_eq!(created.load_balancer_id, "lb-console1");
    assert_eq!(
        Client::new(&h)
            .for_other_account()
            .call("DescribeLoadBalancers", json!({}))
            .await["LoadBalancerSet"][0]["LoadBalancerId"],
        "lb-console1"
    );
    c.admin
        .console_delete_load_balancer(&ConsoleTarget {
            load_balancer_id: "lb-console1".into(),
            ..ConsoleTarget::default()
        })
        .await
        .unwrap();
    c.admin.reset().await.unwrap();
    assert!(c.admin.requests(None).await.unwrap().is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn every_admin_path_is_routed() {
    let (h, c) = start(config()).await;
    for path in AdminPath::ALL {
        let resp = c.http.get(c.admin.url(path)).send().await.unwrap();
        assert_ne!(resp.status(), 404, "{path} is not routed");
    }
    assert_eq!(c.admin.health().await.unwrap().status, "ok");
    h.shutdown().await;
}
