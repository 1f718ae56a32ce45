//! Property tests of the whole HTTP app (the axum router driven with tower `oneshot`): correctly signed
//! requests of every action with hostile JSON bodies or flattened queries, and unsigned junk requests. Every
//! answer must be HTTP 200, `Content-Type: application/json`, the envelope with a RequestId, and on error a
//! documented code. Cases per property: `PROPTEST_CASES` (default 64; `make fuzz` raises it).

mod common;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use clb_api::ErrorCode;
use clb_api::actions::ACTIONS;
use clb_api::sign::{Tc3Request, Tc3Signer};
use common::{SECRET_ID, SECRET_KEY, config, now};
use fake_clb::app::App;
use fake_clb::http::api_router;
use proptest::prelude::*;
use serde_json::{Map, Value};
use tower::ServiceExt;

const HOST: &str = "fuzz.local";

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// One runtime and one app for all cases of a test binary.
fn harness() -> &'static (tokio::runtime::Runtime, Router) {
    static H: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let app = Arc::new(App::new(config()).expect("app"));
        (rt, api_router(app))
    })
}

/// Sends `req` through the router and checks the envelope; returns the error code, if any.
fn answer(req: http::Request<Body>) -> Result<Option<String>, TestCaseError> {
    let (rt, router) = harness();
    let (status, ct, bytes) = rt.block_on(async {
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let ct = resp.headers().get("content-type").cloned();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, ct, bytes)
    });
    prop_assert_eq!(status, 200);
    prop_assert_eq!(
        ct.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(v["Response"]["RequestId"].is_string(), "{}", v);
    match v["Response"]["Error"]["Code"].as_str() {
        None => Ok(None),
        Some(code) => {
            let parsed: ErrorCode = code.parse().expect("infallible");
            prop_assert!(
                !matches!(parsed, ErrorCode::Other(_)),
                "undocumented code {}",
                code
            );
            Ok(Some(code.to_string()))
        }
    }
}

/// A correctly signed request gets past the gateway: its answer is never an authentication failure, so the
/// body reached the schema and the state core.
fn signed_through(code: &Option<String>) -> bool {
    code.as_deref()
        .is_none_or(|c| !c.starts_with("AuthFailure") && c != "RequestSizeLimitExceeded")
}

fn field_names() -> Vec<String> {
    let mut names: Vec<String> = ACTIONS
        .iter()
        .flat_map(|a| a.fields.iter().map(|f| f.name.to_string()))
        .chain(
            [
                "Port",
                "EniIp",
                "Weight",
                "ListenerId",
                "HealthSwitch",
                "TimeOut",
                "IntervalTime",
                "CheckType",
                "Url",
                "Domain",
                "LocationId",
            ]
            .map(String::from),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// JSON built from the schemas' own names, with values of every type and sizes around the limits.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-5i64..70_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("lb-00000001".to_string()),
            Just("TCP".to_string()),
            Just("10.0.0.1".to_string()),
            "\\PC{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(field_names()), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn tc3(method: &str, action: &str, query: &str, body: Vec<u8>) -> http::Request<Body> {
    let ts = now();
    let ct = if method == "GET" {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let auth = Tc3Signer::new(SECRET_ID, SECRET_KEY).authorization(&Tc3Request {
        method,
        host: HOST,
        query,
        content_type: ct,
        body: &body,
        timestamp: ts,
    });
    let uri = if query.is_empty() {
        "/".to_string()
    } else {
        format!("/?{query}")
    };
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST)
        .header("content-type", ct)
        .header("authorization", auth)
        .header("x-tc-action", action)
        .header("x-tc-version", "2018-03-17")
        .header("x-tc-region", "ap-guangzhou")
        .header("x-tc-timestamp", ts.to_string())
        .body(Body::from(body))
        .expect("request")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn every_action_answers_hostile_json_with_the_envelope(action in 0..ACTIONS.len(),
                                                          fields in proptest::collection::vec(
                                                              (proptest::sample::select(field_names()), json()), 0..10)) {
        let body: Map<String, Value> = fields.into_iter().collect();
        let body = serde_json::to_vec(&Value::Object(body)).expect("json");
        let code = answer(tc3("POST", ACTIONS[action].name, "", body))?;
        prop_assert!(signed_through(&code), "{:?}", code);
    }

    #[test]
    fn every_action_answers_hostile_flattened_queries(action in 0..ACTIONS.len(),
                                                     doc in json(),
                                                     extra in proptest::collection::vec(("[A-Za-z0-9.]{0,40}", "\\PC{0,10}"), 0..6)) {
        let mut pairs = clb_api::flatten::flatten(&doc);
        pairs.extend(extra);
        let query = serde_urlencoded::to_string(&pairs).expect("encode");
        let code = answer(tc3("GET", ACTIONS[action].name, &query, Vec::new()))?;
        prop_assert!(signed_through(&code), "{:?}", code);
    }

    #[test]
    fn unsigned_junk_is_answered_with_the_envelope(method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
                                                   ct in prop_oneof![Just("application/json".to_string()), Just("application/x-www-form-urlencoded".to_string()), "\\PC{0,20}"],
                                                   auth in proptest::option::of("\\PC{0,80}"),
                                                   query in "[ -~]{0,80}",
                                                   body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut b = http::Request::builder().method(method).header("host", HOST);
        if let Ok(v) = http::HeaderValue::from_str(&ct) {
            b = b.header("content-type", v);
        }
        if let Some(a) = auth.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
            b = b.header("authorization", a);
        }
        let uri = format!("/?{}", query.replace(['#', ' '], ""));
        let Ok(req) = b.uri(uri.as_str()).body(Body::from(body)) else { return Ok(()) };
        answer(req)?;
    }
}
