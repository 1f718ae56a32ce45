//! The response envelope: `{"Response": {..., "RequestId"}}` on success,
//! `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}` on failure.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorCode};

/// Wraps action output fields (a JSON object, or null for none) with the request id.
pub fn success(output: Value, request_id: &str) -> Value {
    let mut map = match output {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.insert("RequestId".into(), Value::String(request_id.to_string()));
    json!({ "Response": Value::Object(map) })
}

pub fn error(code: &ErrorCode, message: &str, request_id: &str) -> Value {
    json!({"Response": {"Error": {"Code": code.as_str(), "Message": message}, "RequestId": request_id}})
}

pub fn api_error(err: &ApiError, request_id: &str) -> Value {
    error(&err.code, &err.message, request_id)
}

/// Client side: parses a response body into `T` (the `Response` object, RequestId included),
/// or the carried `ApiError`. A body that is no envelope yields `InternalError` with the parse failure.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalError,
            format!("response is not JSON: {e}"),
        )
    })?;
    let resp = v.get("Response").ok_or_else(|| {
        ApiError::new(
            ErrorCode::InternalError,
            "response has no `Response` object",
        )
    })?;
    let request_id = resp
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(err) = resp.get("Error")
        && let Some(code) = err.get("Code").and_then(Value::as_str)
        && !code.is_empty()
    {
        let message = err
            .get("Message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(ApiError {
            code: code.parse().unwrap_or(ErrorCode::Other(code.to_string())),
            message: message.to_string(),
            request_id,
        });
    }
    serde_json::from_value(resp.clone()).map_err(|e| ApiError {
        code: ErrorCode::InternalError,
        message: format!("unexpected response shape: {e}"),
        request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DescribeQuotaResponse;

    #[test]
    fn error_round_trip() {
        let body = error(
            &ErrorCode::FailedOperationResourceInOperating,
            "busy",
            "rid-1",
        )
        .to_string();
        let err = parse::<DescribeQuotaResponse>(body.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::FailedOperationResourceInOperating);
        assert_eq!(err.request_id, "rid-1");
        assert_eq!(err.message, "busy");
    }

    #[test]
    fn success_round_trip() {
        let body = success(json!({"QuotaSet": [{"QuotaId": "TOTAL_LISTENER_QUOTA", "QuotaCurrent": null, "QuotaLimit": 50}]}), "rid-2").to_string();
        let ok: DescribeQuotaResponse = parse(body.as_bytes()).unwrap();
        assert_eq!(ok.request_id, "rid-2");
        assert_eq!(ok.quota_set[0].quota_limit, 50);
        assert_eq!(ok.quota_set[0].quota_current, None);
    }
}
