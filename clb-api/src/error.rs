//! Error codes of Tencent Cloud API 3.0 (common codes and the CLB-specific ones) and the typed API error.

use std::fmt;
use std::str::FromStr;

macro_rules! error_codes {
    ($($variant:ident => $s:literal,)*) => {
        /// Every error code the CLB surface can return (the common API 3.0 codes and the CLB ones); unknown codes
        /// keep their text in `Other`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
            /// A code this crate does not know; the text is kept verbatim.
            Other(String),
        }

        impl ErrorCode {
            /// Every known code, for tests and tooling.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The exact wire string of the code.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $s,)*
                    ErrorCode::Other(s) => s.as_str(),
                }
            }
        }

        impl FromStr for ErrorCode {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($s => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                })
            }
        }
    };
}

error_codes! {
    AuthFailureSignatureFailure => "AuthFailure.SignatureFailure",
    AuthFailureSignatureExpire => "AuthFailure.SignatureExpire",
    AuthFailureSecretIdNotFound => "AuthFailure.SecretIdNotFound",
    AuthFailureInvalidSecretId => "AuthFailure.InvalidSecretId",
    AuthFailureInvalidAuthorization => "AuthFailure.InvalidAuthorization",
    AuthFailureTokenFailure => "AuthFailure.TokenFailure",
    AuthFailureUnauthorizedOperation => "AuthFailure.UnauthorizedOperation",
    AuthFailureMfaFailure => "AuthFailure.MFAFailure",
    RequestLimitExceeded => "RequestLimitExceeded",
    RequestLimitExceededUinLimitExceeded => "RequestLimitExceeded.UinLimitExceeded",
    RequestLimitExceededIpLimitExceeded => "RequestLimitExceeded.IPLimitExceeded",
    RequestSizeLimitExceeded => "RequestSizeLimitExceeded",
    ResponseSizeLimitExceeded => "ResponseSizeLimitExceeded",
    InvalidAction => "InvalidAction",
    NoSuchVersion => "NoSuchVersion",
    NoSuchProduct => "NoSuchProduct",
    UnsupportedProtocol => "UnsupportedProtocol",
    UnsupportedRegion => "UnsupportedRegion",
    MissingParameter => "MissingParameter",
    UnknownParameter => "UnknownParameter",
    InvalidParameter => "InvalidParameter",
    InvalidParameterValue => "InvalidParameterValue",
    InternalError => "InternalError",
    FailedOperation => "FailedOperation",
    LimitExceeded => "LimitExceeded",
    ResourceInUse => "ResourceInUse",
    ResourceInsufficient => "ResourceInsufficient",
    ResourceNotFound => "ResourceNotFound",
    ResourceUnavailable => "ResourceUnavailable",
    ResourcesSoldOut => "ResourcesSoldOut",
    UnauthorizedOperation => "UnauthorizedOperation",
    UnsupportedOperation => "UnsupportedOperation",
    DryRunOperation => "DryRunOperation",
    ServiceUnavailable => "ServiceUnavailable",
    ActionOffline => "ActionOffline",
    InvalidRequest => "InvalidRequest",
    IpInBlacklist => "IpInBlacklist",
    IpNotInWhitelist => "IpNotInWhitelist",
    OperationDenied => "OperationDenied",
    FailedOperationResourceInOperating => "FailedOperation.ResourceInOperating",
    FailedOperationInvalidLbStatus => "FailedOperation.InvalidLBStatus",
    FailedOperationNoListenerInLb => "FailedOperation.NoListenerInLB",
    FailedOperationTargetNumCheckRisk => "FailedOperation.TargetNumCheckRisk",
    FailedOperationTrafficCheckRisk => "FailedOperation.TrafficCheckRisk",
    FailedOperationFrequencyCheckRisk => "FailedOperation.FrequencyCheckRisk",
    FailedOperationEipTrafficCheckRisk => "FailedOperation.EipTrafficCheckRisk",
    FailedOperationResourceInCloning => "FailedOperation.ResourceInCloning",
    InvalidParameterLbIdNotFound => "InvalidParameter.LBIdNotFound",
    InvalidParameterListenerIdNotFound => "InvalidParameter.ListenerIdNotFound",
    InvalidParameterLocationNotFound => "InvalidParameter.LocationNotFound",
    InvalidParameterPortCheckFailed => "InvalidParameter.PortCheckFailed",
    InvalidParameterProtocolCheckFailed => "InvalidParameter.ProtocolCheckFailed",
    InvalidParameterFormatError => "InvalidParameter.FormatError",
    InvalidParameterRegionNotFound => "InvalidParameter.RegionNotFound",
    InvalidParameterInvalidFilter => "InvalidParameter.InvalidFilter",
    InvalidParameterClientTokenLimitExceeded => "InvalidParameter.ClientTokenLimitExceeded",
    InvalidParameterRewriteAlreadyExist => "InvalidParameter.RewriteAlreadyExist",
    InvalidParameterSomeRewriteNotFound => "InvalidParameter.SomeRewriteNotFound",
    InvalidParameterInvalidFieldValue => "InvalidParameter.InvalidFieldValue",
    InvalidParameterValueInvalidFilter => "InvalidParameterValue.InvalidFilter",
    InvalidParameterValueDuplicate => "InvalidParameterValue.Duplicate",
    InvalidParameterValueLength => "InvalidParameterValue.Length",
    InvalidParameterValueRange => "InvalidParameterValue.Range",
    InvalidParameterValueInvalidFieldValue => "InvalidParameterValue.InvalidFieldValue",
    InvalidParameterCombination => "InvalidParameterCombination",
}

impl ErrorCode {
    /// Whether a client may retry the same call later and expect it to succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorCode::RequestLimitExceeded
                | ErrorCode::InternalError
                | ErrorCode::FailedOperationResourceInOperating
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or(ErrorCode::Other(s)))
    }
}

/// An API-level error as carried in `Response.Error`, with the request id of the failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message} (RequestId {request_id})")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Empty until the error is placed into a response envelope.
    pub request_id: String,
}

impl ApiError {
    /// An error without a request id yet (the server fills it in when it answers).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            request_id: String::new(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("The request is missing a required parameter `{name}`."),
        )
    }

    pub fn unknown_parameter(name: &str) -> Self {
        Self::new(
            ErrorCode::UnknownParameter,
            format!("The parameter `{name}` is not recognized."),
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message)
    }

    /// The real wording of the per-action rate limit error.
    pub fn request_limit_exceeded(count: u64, limit: u64) -> Self {
        Self::new(
            ErrorCode::RequestLimitExceeded,
            format!(
                "Your current request times equals to `{count}` in a second, which exceeds the frequency limit `{limit}` for a second. Please reduce the frequency of calls."
            ),
        )
    }

    /// The real wording of the one-task-per-LB error.
    pub fn resource_in_operating(lb_id: &str) -> Self {
        Self::new(
            ErrorCode::FailedOperationResourceInOperating,
            format!(
                "Loadbalancer({lb_id}) is not in normal desState, maybe some tasks are being processed, please try later."
            ),
        )
    }

    /// LB not found; the message carries the substring real clients match (`LoadBalancer not exist`).
    pub fn lb_not_found(ids: &[&str]) -> Self {
        Self::new(
            ErrorCode::InvalidParameterLbIdNotFound,
            format!("LoadBalancer not exist: {}", ids.join(",")),
        )
    }

    pub fn listener_not_found(id: &str) -> Self {
        Self::new(
            ErrorCode::InvalidParameterListenerIdNotFound,
            format!("Listener not exist: {id}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for code in ErrorCode::ALL {
            let parsed: ErrorCode = code.as_str().parse().unwrap();
            assert_eq!(&parsed, code);
        }
        let other: ErrorCode = "Foo.Bar".parse().unwrap();
        assert_eq!(other, ErrorCode::Other("Foo.Bar".into()));
        assert_eq!(other.as_str(), "Foo.Bar");
    }

    #[test]
    fn retryable_codes() {
        assert!(ErrorCode::RequestLimitExceeded.is_retryable());
        assert!(ErrorCode::InternalError.is_retryable());
        assert!(ErrorCode::FailedOperationResourceInOperating.is_retryable());
        assert!(!ErrorCode::InvalidParameterPortCheckFailed.is_retryable());
        assert_eq!(
            ErrorCode::FailedOperationResourceInOperating.as_str(),
            "FailedOperation.ResourceInOperating"
        );
    }
}
