//! Request signing: TC3-HMAC-SHA256 (API 3.0 default) and the legacy v1 HmacSHA1 / HmacSHA256.
//!
//! Both sides live here so that the fake server and the controller's client can never disagree:
//! the signer builds the `Authorization` header, the verifier recomputes it from the raw request.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorCode};

pub const TC3_ALGORITHM: &str = "TC3-HMAC-SHA256";
/// Sent in `X-TC-Content-SHA256` when the client chooses not to hash the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Allowed clock skew between `X-TC-Timestamp` and the server clock.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha1::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// UTC date (`YYYY-MM-DD`) of a Unix timestamp, as used in the credential scope.
pub fn utc_date(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".to_string())
}

/// The TC3 canonical request. `signed` holds (lower-case name, value) in SignedHeaders order.
pub fn canonical_request(
    method: &str,
    raw_query: &str,
    signed: &[(String, String)],
    hashed_payload: &str,
) -> String {
    let mut headers = String::new();
    for (name, value) in signed {
        headers.push_str(&name.to_ascii_lowercase());
        headers.push(':');
        headers.push_str(&value.trim().to_ascii_lowercase());
        headers.push('\n');
    }
    let names: Vec<String> = signed.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        raw_query,
        headers,
        names.join(";"),
        hashed_payload
    )
}

pub fn string_to_sign(
    timestamp: i64,
    date: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{TC3_ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Lower-case hex TC3 signature of `string_to_sign` with the derived key chain.
pub fn tc3_signature(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

/// What a client needs to sign one TC3 request.
#[derive(Debug, Clone)]
pub struct Tc3Request<'a> {
    pub method: &'a str,
    /// Host header value exactly as sent (with `:port`).
    pub host: &'a str,
    /// Raw query string without `?` (empty for POST).
    pub query: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub timestamp: i64,
}

/// Client-side TC3 signer.
#[derive(Clone)]
pub struct Tc3Signer {
    pub secret_id: String,
    secret_key: String,
    pub service: String,
}

impl std::fmt::Debug for Tc3Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tc3Signer")
            .field("secret_id", &self.secret_id)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Tc3Signer {
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Tc3Signer {
            secret_id: secret_id.into(),
            secret_key: secret_key.into(),
            service: "clb".to_string(),
        }
    }

    /// The `Authorization` header value, signing `content-type;host` like every official SDK.
    pub fn authorization(&self, req: &Tc3Request<'_>) -> String {
        let signed = vec![
            ("content-type".to_string(), req.content_type.to_string()),
            ("host".to_string(), req.host.to_string()),
        ];
        let date = utc_date(req.timestamp);
        let creq = canonical_request(req.method, req.query, &signed, &sha256_hex(req.body));
        let sts = string_to_sign(req.timestamp, &date, &self.service, &creq);
        let sig = tc3_signature(&self.secret_key, &date, &self.service, &sts);
        format!(
            "{TC3_ALGORITHM} Credential={}/{date}/{}/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
            self.secret_id, self.service
        )
    }
}

/// A parsed TC3 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tc3Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

fn invalid_authorization() -> ApiError {
    ApiError::new(
        ErrorCode::AuthFailureInvalidAuthorization,
        "The `Authorization` in the request headers doesn't meet Tencent Cloud standards.",
    )
}

impl Tc3Authorization {
    pub fn parse(header: &str) -> Result<Self, ApiError> {
        let header = header.trim();
        let rest = header
            .strip_prefix(TC3_ALGORITHM)
            .ok_or_else(invalid_authorization)?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').ok_or_else(invalid_authorization)?;
            match k.trim() {
                "Credential" => credential = Some(v.trim()),
                "SignedHeaders" => signed = Some(v.trim()),
                "Signature" => signature = Some(v.trim()),
                _ => return Err(invalid_authorization()),
            }
        }
        let (credential, signed, signature) = match (credential, signed, signature) {
            (Some(c), Some(s), Some(g)) => (c, s, g),
            _ => return Err(invalid_authorization()),
        };
        let scope: Vec<&str> = credential.split('/').collect();
        if scope.len() != 4 || scope[3] != "tc3_request" || scope[0].is_empty() {
            return Err(invalid_authorization());
        }
        let signed_headers: Vec<String> = signed
            .split(';')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if !signed_headers.iter().any(|h| h == "content-type")
            || !signed_headers.iter().any(|h| h == "host")
        {
            return Err(invalid_authorization());
        }
        Ok(Tc3Authorization {
            secret_id: scope[0].to_string(),
            date: scope[1].to_string(),
            service: scope[2].to_string(),
            signed_headers,
            signature: signature.to_string(),
        })
    }
}

/// A received TC3 request, as the server sees it before any parsing.
pub struct Tc3Received<'a> {
    pub method: &'a str,
    pub raw_query: &'a str,
    pub body: &'a [u8],
    /// Header lookup by lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

/// Options of the verifier.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub now: i64,
    pub max_skew_secs: i64,
    /// When set, the credential-scope service must equal this (the Node SDK signs with "127").
    pub required_service: Option<String>,
}

fn signature_failure() -> ApiError {
    ApiError::new(
        ErrorCode::AuthFailureSignatureFailure,
        "The provided credentials could not be validated. Please check your signature is correct.",
    )
}

pub fn secret_id_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::AuthFailureSecretIdNotFound,
        "The SecretId is not found, please ensure that your SecretId is correct.",
    )
}

/// Refuses a timestamp further than `max_skew_secs` from the server clock. The distance is computed in i128 so
/// that any i64 a client sends (even -2^63) is an expired signature, never an overflow.
fn check_skew(timestamp: i64, opts: &VerifyOptions) -> Result<(), ApiError> {
    let distance = (i128::from(opts.now) - i128::from(timestamp)).abs();
    if distance > i128::from(opts.max_skew_secs) {
        return Err(ApiError::new(
            ErrorCode::AuthFailureSignatureExpire,
            format!(
                "Signature expired. Timestamp {timestamp} differs from the server time {} by more than {} seconds.",
                opts.now, opts.max_skew_secs
            ),
        ));
    }
    Ok(())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Verifies a TC3 request; returns the SecretId on success. `secret_key` maps a SecretId to its key.
pub fn verify_tc3(
    req: &Tc3Received<'_>,
    secret_key: &dyn Fn(&str) -> Option<String>,
    opts: &VerifyOptions,
) -> Result<String, ApiError> {
    let auth_header = (req.header)("authorization").ok_or_else(invalid_authorization)?;
    let auth = Tc3Authorization::parse(&auth_header)?;
    let key = secret_key(&auth.secret_id).ok_or_else(secret_id_not_found)?;
    let timestamp: i64 = (req.header)("x-tc-timestamp")
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| ApiError::missing_parameter("Timestamp"))?;
    check_skew(timestamp, opts)?;
    if let Some(required) = &opts.required_service
        && &auth.service != required
    {
        return Err(signature_failure());
    }
    let hashed_payload = match (req.header)("x-tc-content-sha256") {
        Some(v) if v.trim() == UNSIGNED_PAYLOAD => sha256_hex(UNSIGNED_PAYLOAD.as_bytes()),
        _ => sha256_hex(req.body),
    };
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = (req.header)(name).ok_or_else(signature_failure)?;
        signed.push((name.clone(), value));
    }
    let compute = |signed: &[(String, String)]| {
        let creq = canonical_request(req.method, req.raw_query, signed, &hashed_payload);
        let sts = string_to_sign(timestamp, &auth.date, &auth.service, &creq);
        tc3_signature(&key, &auth.date, &auth.service, &sts)
    };
    if ct_eq(&compute(&signed), &auth.signature) {
        return Ok(auth.secret_id);
    }
    // The Node SDK signs the host without its port while sending it with the port.
    let mut stripped = false;
    for (name, value) in signed.iter_mut() {
        if name == "host"
            && let Some((h, _port)) = value.rsplit_once(':')
            && !h.is_empty()
        {
            *value = h.to_string();
            stripped = true;
        }
    }
    if stripped && ct_eq(&compute(&signed), &auth.signature) {
        return Ok(auth.secret_id);
    }
    Err(signature_failure())
}

/// The hash algorithm of a v1 signature (`SignatureMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Method {
    HmacSha1,
    HmacSha256,
}

impl V1Method {
    pub fn as_str(self) -> &'static str {
        match self {
            V1Method::HmacSha1 => "HmacSHA1",
            V1Method::HmacSha256 => "HmacSHA256",
        }
    }

    /// `None` for an unknown method; an absent one means HmacSHA1.
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s {
            None | Some("HmacSHA1") => Some(V1Method::HmacSha1),
            Some("HmacSHA256") => Some(V1Method::HmacSha256),
            _ => None,
        }
    }
}

/// v1 string to sign: `METHOD host /? sorted k=v` over decoded params, `Signature` excluded.
pub fn v1_string_to_sign(method: &str, host: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> =
        params.iter().filter(|(k, _)| k != "Signature").collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}{}/?{}",
        method.to_ascii_uppercase(),
        host,
        joined.join("&")
    )
}

/// Base64 v1 signature.
pub fn v1_signature(method: V1Method, secret_key: &str, string_to_sign: &str) -> String {
    let raw = match method {
        V1Method::HmacSha1 => hmac_sha1(secret_key.as_bytes(), string_to_sign.as_bytes()),
        V1Method::HmacSha256 => hmac_sha256(secret_key.as_bytes(), string_to_sign.as_bytes()),
    };
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Client-side v1 signer.
pub struct V1Signer<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub method: V1Method,
}

impl V1Signer<'_> {
    /// Adds `SecretId`, `SignatureMethod`, `Timestamp`, `Nonce` and `Signature` to `params`.
    pub fn sign_params(
        &self,
        params: &mut Vec<(String, String)>,
        http_method: &str,
        host: &str,
        timestamp: i64,
        nonce: u32,
    ) {
        params.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "SecretId" | "SignatureMethod" | "Timestamp" | "Nonce" | "Signature"
            )
        });
        params.push(("SecretId".into(), self.secret_id.into()));
        params.push(("SignatureMethod".into(), self.method.as_str().into()));
        params.push(("Timestamp".into(), timestamp.to_string()));
        params.push(("Nonce".into(), nonce.to_string()));
        let sts = v1_string_to_sign(http_method, host, params);
        params.push((
            "Signature".into(),
            v1_signature(self.method, self.secret_key, &sts),
        ));
    }
}

/// Verifies a v1 request given its decoded params; returns the SecretId on success.
pub fn verify_v1(
    method: &str,
    host: &str,
    params: &[(String, String)],
    secret_key: &dyn Fn(&str) -> Option<String>,
    opts: &VerifyOptions,
) -> Result<String, ApiError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let signature = get("Signature").ok_or_else(|| ApiError::missing_parameter("Signature"))?;
    let secret_id = get("SecretId").ok_or_else(|| ApiError::missing_parameter("SecretId"))?;
    let sig_method = V1Method::parse(get("SignatureMethod")).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameterValue,
            "SignatureMethod should be HmacSHA1 or HmacSHA256.",
        )
    })?;
    let key = secret_key(secret_id).ok_or_else(secret_id_not_found)?;
    let timestamp: i64 = get("Timestamp")
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| ApiError::missing_parameter("Timestamp"))?;
    check_skew(timestamp, opts)?;
    let sts = v1_string_to_sign(method, host, params);
    if ct_eq(&v1_signature(sig_method, &key, &sts), signature) {
        Ok(secret_id.to_string())
    } else {
        Err(signature_failure())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY_A: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    const KEY_A: &str = "Gu5t9xGARNpq86cd98joQYCN3*******";

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn example_a_three_signed_headers() {
        let hashed = sha256_hex(BODY_A.as_bytes());
        assert_eq!(
            hashed,
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let signed = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "cvm.tencentcloudapi.com"),
            ("x-tc-action", "DescribeInstances"),
        ]);
        let creq = canonical_request("POST", "", &signed, &hashed);
        assert!(creq.contains("x-tc-action:describeinstances\n"));
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
        assert_eq!(utc_date(1551113065), "2019-02-25");
        let sts = string_to_sign(1551113065, "2019-02-25", "cvm", &creq);
        assert_eq!(
            tc3_signature(KEY_A, "2019-02-25", "cvm", &sts),
            "be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
        );
    }

    #[test]
    fn example_b_two_signed_headers() {
        let hashed = sha256_hex(BODY_A.as_bytes());
        let signed = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "cvm.tencentcloudapi.com"),
        ]);
        let creq = canonical_request("POST", "", &signed, &hashed);
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let sts = string_to_sign(1551113065, "2019-02-25", "cvm", &creq);
        assert_eq!(
            tc3_signature(KEY_A, "2019-02-25", "cvm", &sts),
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
        // The client signer produces the same for the same inputs.
        let mut signer = Tc3Signer::new("AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", KEY_A);
        signer.service = "cvm".into();
        let auth = signer.authorization(&Tc3Request {
            method: "POST",
            host: "cvm.tencentcloudapi.com",
            query: "",
            content_type: "application/json; charset=utf-8",
            body: BODY_A.as_bytes(),
            timestamp: 1551113065,
        });
        assert!(auth.ends_with(
            "Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        ));
    }

    #[test]
    fn example_c_get() {
        let hashed = sha256_hex(b"");
        assert_eq!(
            hashed,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let signed = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "cvm.tencentcloudapi.com"),
        ]);
        let creq = canonical_request("GET", "Limit=10&Offset=0", &signed, &hashed);
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "91c9c192c14460df6c1ffc69e34e6c5e90708de2a6d282cccf957dbf1aa7f3a7"
        );
        let sts = string_to_sign(1539084154, &utc_date(1539084154), "cvm", &creq);
        assert_eq!(
            tc3_signature(
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                "2018-10-09",
                "cvm",
                &sts
            ),
            "5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"
        );
    }

    #[test]
    fn example_a_verifies_through_the_verifier() {
        let auth = "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature=be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3";
        let hdrs = headers(&[
            ("authorization", auth),
            ("content-type", "application/json; charset=utf-8"),
            ("host", "cvm.tencentcloudapi.com"),
            ("x-tc-action", "DescribeInstances"),
            ("x-tc-timestamp", "1551113065"),
        ]);
        let lookup = |n: &str| hdrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let req = Tc3Received {
            method: "POST",
            raw_query: "",
            body: BODY_A.as_bytes(),
            header: &lookup,
        };
        let opts = VerifyOptions {
            now: 1551113065 + 10,
            max_skew_secs: 300,
            required_service: None,
        };
        let keys =
            |id: &str| (id == "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******").then(|| KEY_A.to_string());
        assert_eq!(
            verify_tc3(&req, &keys, &opts).unwrap(),
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
        );
        let late = VerifyOptions {
            now: 1551113065 + 301,
            ..opts.clone()
        };
        assert_eq!(
            verify_tc3(&req, &keys, &late).unwrap_err().code,
            ErrorCode::AuthFailureSignatureExpire
        );
        let tampered = Tc3Received { body: b"{}", ..req };
        assert_eq!(
            verify_tc3(&tampered, &keys, &opts).unwrap_err().code,
            ErrorCode::AuthFailureSignatureFailure
        );
        let nokeys = |_: &str| None;
        assert_eq!(
            verify_tc3(&tampered, &nokeys, &opts).unwrap_err().code,
            ErrorCode::AuthFailureSecretIdNotFound
        );
    }

    #[test]
    fn v1_hmac_sha1_doc_vector() {
        let sts = "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20&Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE&Timestamp=1465185768&Version=2017-03-12";
        assert_eq!(
            v1_signature(V1Method::HmacSha1, "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", sts),
            "EliP9YW3pW28FpsEdkXt/+WcGeI="
        );
        // Same string rebuilt from unsorted params.
        let params: Vec<(String, String)> = [
            ("Version", "2017-03-12"),
            ("Timestamp", "1465185768"),
            ("SecretId", "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"),
            ("Region", "ap-guangzhou"),
            ("Offset", "0"),
            ("Nonce", "11886"),
            ("Limit", "20"),
            ("InstanceIds.0", "ins-09dx96dg"),
            ("Action", "DescribeInstances"),
            ("Signature", "ignored"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(
            v1_string_to_sign("GET", "cvm.tencentcloudapi.com", &params),
            sts
        );
    }

    #[test]
    fn parse_authorization_rejects_garbage() {
        assert!(Tc3Authorization::parse("SKIP").is_err());
        assert!(Tc3Authorization::parse("TC3-HMAC-SHA256 Credential=a/b/c/tc3_request").is_err());
        let ok = Tc3Authorization::parse(
            "TC3-HMAC-SHA256  Credential=AKID/2020-01-01/clb/tc3_request,SignedHeaders=content-type;host,  Signature=ab",
        )
        .unwrap();
        assert_eq!(ok.service, "clb");
        assert_eq!(ok.signed_headers, vec!["content-type", "host"]);
    }

    #[test]
    fn extreme_timestamps_are_expired_not_a_panic() {
        let opts = VerifyOptions {
            now: 1_700_000_000,
            max_skew_secs: 300,
            required_service: None,
        };
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, -1_700_000_000] {
            let e = check_skew(ts, &opts).unwrap_err();
            assert_eq!(e.code, ErrorCode::AuthFailureSignatureExpire, "{ts}");
        }
        let extreme = VerifyOptions {
            now: i64::MIN,
            ..opts
        };
        assert!(check_skew(i64::MAX, &extreme).is_err());
        // Through both verifiers, with a known SecretId.
        let hdrs = [
            (
                "authorization",
                "TC3-HMAC-SHA256 Credential=AKIDx/2020-01-01/clb/tc3_request, SignedHeaders=content-type;host, Signature=ab",
            ),
            ("x-tc-timestamp", "-9223372036854775808"),
        ];
        let lookup = |n: &str| {
            hdrs.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        };
        let req = Tc3Received {
            method: "POST",
            raw_query: "",
            body: b"{}",
            header: &lookup,
        };
        let keys = |id: &str| (id == "AKIDx").then(|| "k".to_string());
        let opts = VerifyOptions {
            now: 1_700_000_000,
            max_skew_secs: 300,
            required_service: None,
        };
        let e = verify_tc3(&req, &keys, &opts).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailureSignatureExpire);
        let params: Vec<(String, String)> = [
            ("Action", "DescribeQuota"),
            ("SecretId", "AKIDx"),
            ("Timestamp", "-9223372036854775807"),
            ("Nonce", "1"),
            ("Signature", "x"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let e = verify_v1("POST", "h", &params, &keys, &opts).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailureSignatureExpire);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn verify(
            auth: &str,
            host: &str,
            query: &str,
            body: &[u8],
            ts: i64,
            key: &str,
        ) -> Result<String, ApiError> {
            let hdrs: Vec<(String, String)> = vec![
                ("authorization".into(), auth.into()),
                ("content-type".into(), "application/json".into()),
                ("host".into(), host.into()),
                ("x-tc-timestamp".into(), ts.to_string()),
            ];
            let lookup = |n: &str| hdrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let req = Tc3Received {
                method: "POST",
                raw_query: query,
                body,
                header: &lookup,
            };
            let key = key.to_string();
            let keys = move |id: &str| (id == "AKIDprop").then(|| key.clone());
            verify_tc3(
                &req,
                &keys,
                &VerifyOptions {
                    now: ts,
                    max_skew_secs: 300,
                    required_service: Some("clb".into()),
                },
            )
        }

        proptest! {
            #[test]
            fn tc3_round_trip_and_tamper(body in proptest::collection::vec(any::<u8>(), 0..200),
                                         key in "[a-zA-Z0-9]{8,40}",
                                         ts in 1_500_000_000i64..2_000_000_000,
                                         flip in 0usize..200) {
                let signer = Tc3Signer::new("AKIDprop", key.clone());
                let auth = signer.authorization(&Tc3Request { method: "POST", host: "127.0.0.1:9000", query: "", content_type: "application/json", body: &body, timestamp: ts });
                prop_assert_eq!(verify(&auth, "127.0.0.1:9000", "", &body, ts, &key).unwrap(), "AKIDprop");
                if !body.is_empty() {
                    let mut t = body.clone();
                    let i = flip % t.len();
                    t[i] ^= 0x01;
                    prop_assert_eq!(verify(&auth, "127.0.0.1:9000", "", &t, ts, &key).unwrap_err().code, ErrorCode::AuthFailureSignatureFailure);
                }
                prop_assert!(verify(&auth, "127.0.0.2:9000", "", &body, ts, &key).is_err());
                let wrong = format!("{key}x");
                prop_assert!(verify(&auth, "127.0.0.1:9000", "", &body, ts, &wrong).is_err());
            }

            #[test]
            fn v1_round_trip_and_tamper(v in "[a-zA-Z0-9 .:-]{0,30}", key in "[a-zA-Z0-9]{8,40}", sha256 in any::<bool>()) {
                let m = if sha256 { V1Method::HmacSha256 } else { V1Method::HmacSha1 };
                let mut params = vec![("Action".to_string(), "DescribeQuota".to_string()), ("Name".to_string(), v.clone())];
                V1Signer { secret_id: "AKIDprop", secret_key: &key, method: m }.sign_params(&mut params, "POST", "127.0.0.1:1", 1_700_000_000, 7);
                let keyc = key.clone();
                let keys = move |id: &str| (id == "AKIDprop").then(|| keyc.clone());
                let opts = VerifyOptions { now: 1_700_000_000, max_skew_secs: 300, required_service: None };
                prop_assert!(verify_v1("POST", "127.0.0.1:1", &params, &keys, &opts).is_ok());
                params[1].1.push('!');
                prop_assert_eq!(verify_v1("POST", "127.0.0.1:1", &params, &keys, &opts).unwrap_err().code, ErrorCode::AuthFailureSignatureFailure);
            }
        }
    }
}
