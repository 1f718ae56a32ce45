//! Hostile requests found by attacking the server: each is answered with the JSON envelope and a documented
//! code, the server stays up, and the request log stays bounded.

mod common;

use clb_api::sign::V1Method;
use common::*;
use fake_clb::admin_api::LimitsPatch;
use serde_json::{Value, json};

fn listener_params(extra_key: &str) -> Value {
    let mut v = json!({"LoadBalancerId": LB, "Ports": [80], "Protocol": "TCP"});
    v[extra_key] = json!("x");
    v
}

#[tokio::test]
async fn deeply_nested_and_long_keys_are_invalid_parameter_not_a_crash() {
    let (h, c) = start(config()).await;
    let deep = format!("MultiCertInfo{}", ".a".repeat(1000));
    let r = c.get("CreateListener", &listener_params(&deep)).await;
    assert_eq!(code_of(&r), "InvalidParameter", "{r}");
    let dots = ".".repeat(30_000);
    let r = c.get("CreateListener", &listener_params(&dots)).await;
    assert_eq!(code_of(&r), "InvalidParameter", "{r}");
    let r = c
        .v1(
            "POST",
            V1Method::HmacSha256,
            "CreateListener",
            &listener_params(&deep),
        )
        .await;
    assert_eq!(code_of(&r), "InvalidParameter", "{r}");
    let r = c
        .v1(
            "POST",
            V1Method::HmacSha1,
            "CreateListener",
            &listener_params(&dots),
        )
        .await;
    assert_eq!(code_of(&r), "InvalidParameter", "{r}");
    // Still serving.
    assert_eq!(c.code("DescribeQuota", json!({})).await, "OK");
    h.shutdown().await;
}

#[tokio::test]
async fn extreme_timestamps_are_signature_expire() {
    let (h, c) = start(config()).await;
    for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let resp = c
            .post_raw("DescribeQuota", b"{}", ts, "2018-03-17")
            .await
            .expect("an answer");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            code_of(&v["Response"]),
            "AuthFailure.SignatureExpire",
            "{ts}"
        );
    }
    h.shutdown().await;
}

async fn post_body(c: &Client, content_type: &str, body: Vec<u8>) -> Value {
    let resp = c
        .http
        .post(&c.api)
        .header("Content-Type", content_type)
        .header("Authorization", "TC3-HMAC-SHA256 x")
        .body(body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json::<Value>().await.unwrap()["Response"].clone()
}

#[tokio::test]
async fn bodies_over_every_limit_get_the_size_envelope() {
    let (h, c) = start(config()).await;
    // Over the old 64 MiB read cap, which answered a plain-text 413.
    let huge = vec![b' '; 65 * 1024 * 1024];
    let r = post_body(&c, "application/json", huge).await;
    assert_eq!(code_of(&r), "RequestSizeLimitExceeded", "{r}");
    let two_mib = vec![b'a'; 2 * 1024 * 1024];
    let r = post_body(&c, "application/x-www-form-urlencoded", two_mib.clone()).await;
    assert_eq!(code_of(&r), "RequestSizeLimitExceeded", "{r}");
    let resp = c
        .http
        .get(format!("{}?Action={}", c.api, "a".repeat(40 * 1024)))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code_of(&v["Response"]), "RequestSizeLimitExceeded");
    // A small TC3 limit is answered by the same envelope.
    c.admin
        .patch_limits(&LimitsPatch {
            max_body_bytes: Some(64),
            ..LimitsPatch::default()
        })
        .await
        .unwrap();
    let r = post_body(&c, "application/json", vec![b' '; 1000]).await;
    assert_eq!(code_of(&r), "RequestSizeLimitExceeded", "{r}");
    assert_eq!(c.code("DescribeQuota", json!({})).await, "OK");
    h.shutdown().await;
}

#[tokio::test]
async fn refused_requests_do_not_grow_the_request_log() {
    let mut cfg = config();
    cfg.limits.request_log_max_bytes = 256 * 1024;
    cfg.limits.request_log_max_entries = 10_000;
    let (h, c) = start(cfg).await;
    let filler = "x".repeat(64 * 1024);
    for _ in 0..40 {
        let r = c
            .call(
                "DescribeListeners",
                json!({"LoadBalancerId": LB, "Bogus": filler}),
            )
            .await;
        assert_eq!(code_of(&r), "UnknownParameter");
    }
    let log = c.admin.requests(None).await.unwrap();
    assert_eq!(log.len(), 40, "small entries all fit");
    assert!(log.iter().all(|e| e.params.is_null()));
    assert!(log.iter().all(|e| e.params_omitted_bytes > Some(64 * 1024)));
    let (entries, bytes) = {
        let inner = h.app.inner.lock();
        (inner.log.len(), inner.log.bytes())
    };
    assert_eq!(entries, 40);
    assert!(bytes <= 256 * 1024, "{bytes} bytes");
    // Accepted requests keep their parameters, and the byte bound drops the oldest entries.
    let names: Vec<String> = (0..90).map(|i| format!("lbl-{i:060}")).collect();
    for i in 0..200 {
        let r = c
            .call(
                "DescribeListeners",
                json!({"LoadBalancerId": LB, "Protocol": "TCP", "Port": 1 + i, "ListenerIds": names}),
            )
            .await;
        assert_eq!(code_of(&r), "OK");
    }
    let (entries, bytes) = {
        let inner = h.app.inner.lock();
        (inner.log.len(), inner.log.bytes())
    };
    assert!(bytes <= 256 * 1024, "{bytes} bytes");
    assert!(entries < 240, "oldest entries dropped: {entries}");
    h.shutdown().await;
}

#[tokio::test]
async fn values_the_real_api_refuses_are_refused() {
    let (h, c) = start(config()).await;
    let listener = |extra: Value| {
        let mut v = json!({"LoadBalancerId": LB, "Ports": [80], "Protocol": "TCP"});
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        v
    };
    let cases = [
        (
            json!({"SessionExpireTime": 5}),
            "InvalidParameterValue.Range",
        ),
        (
            json!({"SessionExpireTime": 99_999}),
            "InvalidParameterValue.Range",
        ),
        (
            json!({"IdleConnectTimeout": 1}),
            "InvalidParameterValue.Range",
        ),
        (json!({"TargetType": "FOO"}), "InvalidParameterValue"),
        (json!({"SessionType": "FOO"}), "InvalidParameterValue"),
        (json!({"DataCompressMode": "FOO"}), "InvalidParameterValue"),
        (
            json!({"HealthCheck": {"CheckType": "FOO"}}),
            "InvalidParameterValue",
        ),
        (
            json!({"HealthCheck": {"TimeOut": 10, "IntervalTime": 5}}),
            "InvalidParameterValue",
        ),
        (
            json!({"HealthCheck": {"TimeOut": 5}}),
            "InvalidParameterValue",
        ),
    ];
    for (extra, code) in cases {
        let got = c.code("CreateListener", listener(extra.clone())).await;
        assert_eq!(got, code, "{extra}");
    }
    let ok = c
        .call(
            "CreateListener",
            listener(json!({"SessionExpireTime": 30, "IdleConnectTimeout": 900, "TargetType": "NODE",
                            "SessionType": "NORMAL", "HealthCheck": {"TimeOut": 2, "IntervalTime": 5, "CheckType": "TCP"}})),
        )
        .await;
    assert_eq!(code_of(&ok), "OK", "{ok}");
    let lid = ok["ListenerIds"][0].as_str().unwrap().to_string();
    c.wait_task(ok["RequestId"].as_str().unwrap()).await;
    for ip in ["10.0.0.256", "not-an-ip", "::1"] {
        let got = c
            .code(
                "RegisterTargets",
                json!({"LoadBalancerId": LB, "ListenerId": lid, "Targets": [{"EniIp": ip, "Port": 8080}]}),
            )
            .await;
        assert_eq!(got, "InvalidParameterValue", "{ip}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_json_content_type_with_a_suffix_is_refused() {
    use clb_api::sign::{Tc3Request, Tc3Signer};
    let (h, c) = start(config()).await;
    let send = |ct: &'static str| {
        let c = &c;
        async move {
            let ts = now();
            let auth = Tc3Signer::new(SECRET_ID, SECRET_KEY).authorization(&Tc3Request {
                method: "POST",
                host: &c.host,
                query: "",
                content_type: ct,
                body: b"{}",
                timestamp: ts,
            });
            let resp = c
                .http
                .post(&c.api)
                .header("Content-Type", ct)
                .header("Authorization", auth)
                .header("X-TC-Action", "DescribeQuota")
                .header("X-TC-Version", "2018-03-17")
                .header("X-TC-Region", REGION)
                .header("X-TC-Timestamp", ts.to_string())
                .body("{}")
                .send()
                .await
                .unwrap();
            code_of(&resp.json::<Value>().await.unwrap()["Response"])
        }
    };
    assert_eq!(send("application/jsonx").await, "InvalidParameter");
    assert_eq!(send("application/json-patch").await, "InvalidParameter");
    assert_eq!(send("application/json; charset=utf-8").await, "OK");
    assert_eq!(send("Application/JSON").await, "OK");
    // Lenient mode, for clients that need it.
    c.admin
        .patch_limits(&LimitsPatch {
            strict_json_content_type: Some(false),
            ..LimitsPatch::default()
        })
        .await
        .unwrap();
    assert_eq!(send("application/jsonx").await, "OK");
    h.shutdown().await;
}
