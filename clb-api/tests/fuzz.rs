//! Property tests that feed hostile input to the parsers: the flattened-parameter parser, the TC3
//! Authorization parser and both signature verifiers. None may panic; every refusal carries a known code.
//! Cases per property: `PROPTEST_CASES` (default 64, so `cargo test` stays quick; `make fuzz` raises it).

use clb_api::actions::ACTIONS;
use clb_api::sign::{Tc3Authorization, Tc3Received, VerifyOptions, verify_tc3, verify_v1};
use clb_api::{ApiError, ErrorCode, flatten};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn known(e: &ApiError) -> bool {
    !matches!(e.code, ErrorCode::Other(_))
}

/// Key segments: real field names, indices, and junk (empty, dots, long, unicode).
fn segment() -> impl Strategy<Value = String> {
    let names: Vec<String> = ACTIONS
        .iter()
        .flat_map(|a| a.fields.iter().map(|f| f.name.to_string()))
        .chain(["Port", "EniIp", "Targets", "HealthSwitch", "TimeOut", "a"].map(String::from))
        .collect();
    prop_oneof![
        4 => proptest::sample::select(names),
        2 => (0u32..60).prop_map(|i| i.to_string()),
        1 => "[a-zA-Z0-9_.\\-]{0,12}",
        1 => "\\PC{0,8}",
        1 => Just(String::new()),
        1 => (1usize..40).prop_map(|n| ".".repeat(n)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::collection::vec(segment(), 1..8).prop_map(|s| s.join(".")),
        1 => (1usize..2000).prop_map(|n| format!("MultiCertInfo{}", ".a".repeat(n))),
        1 => (1usize..40_000).prop_map(|n| ".".repeat(n)),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,20}",
        "(?i)true|false",
        "\\PC{0,16}",
        Just(String::new())
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn unflatten_never_panics(action in 0..ACTIONS.len(),
                              pairs in proptest::collection::vec((key(), value()), 0..40)) {
        match flatten::unflatten(&pairs, ACTIONS[action].fields) {
            Ok(v) => prop_assert!(v.is_object()),
            Err(e) => prop_assert!(known(&e), "{e}"),
        }
    }

    #[test]
    fn tc3_authorization_parser_never_panics(header in "\\PC{0,200}",
                                             structured in "TC3-HMAC-SHA256 ?Credential=[A-Za-z0-9/_\\-]{0,40}, ?SignedHeaders=[a-z;\\-]{0,30}, ?Signature=[0-9a-f]{0,64}") {
        for h in [header, structured] {
            if let Err(e) = Tc3Authorization::parse(&h) {
                prop_assert!(known(&e), "{e}");
            }
        }
    }

    #[test]
    fn tc3_verifier_never_panics(auth in "TC3-HMAC-SHA256 Credential=AKIDfuzz/[0-9\\-]{0,12}/[a-z]{0,5}/tc3_request, SignedHeaders=[a-z\\-;]{0,40}, Signature=[0-9a-f]{0,64}",
                                 ts in prop_oneof![any::<i64>().prop_map(|t| t.to_string()), "\\PC{0,24}"],
                                 now in any::<i64>(),
                                 skew in any::<i64>(),
                                 body in proptest::collection::vec(any::<u8>(), 0..64),
                                 query in "\\PC{0,40}") {
        let headers = [("authorization", auth), ("x-tc-timestamp", ts),
                       ("content-type", "application/json".to_string()), ("host", "h".to_string())];
        let lookup = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        let req = Tc3Received { method: "POST", raw_query: &query, body: &body, header: &lookup };
        let keys = |id: &str| (id == "AKIDfuzz").then(|| "key".to_string());
        let opts = VerifyOptions { now, max_skew_secs: skew, required_service: None };
        if let Err(e) = verify_tc3(&req, &keys, &opts) {
            prop_assert!(known(&e), "{e}");
        }
    }

    #[test]
    fn v1_verifier_never_panics(params in proptest::collection::vec(
                                    (prop_oneof![Just("Timestamp".to_string()), Just("SecretId".to_string()),
                                                 Just("Signature".to_string()), Just("SignatureMethod".to_string()),
                                                 Just("Nonce".to_string()), "\\PC{0,10}"],
                                     prop_oneof![Just("AKIDfuzz".to_string()), any::<i64>().prop_map(|t| t.to_string()),
                                                 Just("HmacSHA256".to_string()), "\\PC{0,20}"]), 0..12),
                                now in any::<i64>(), skew in any::<i64>()) {
        let keys = |id: &str| (id == "AKIDfuzz").then(|| "key".to_string());
        let opts = VerifyOptions { now, max_skew_secs: skew, required_service: None };
        if let Err(e) = verify_v1("POST", "h", &params, &keys, &opts) {
            prop_assert!(known(&e), "{e}");
        }
    }
}
