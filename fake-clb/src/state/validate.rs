//! Value checks the real API applies beyond the schema's types and ranges: enumerations, the health-check
//! relation, listener timers and target addresses. Each refusal uses the code the real API answers.

use std::net::Ipv4Addr;

use clb_api::limits;
use clb_api::model::HealthCheck;
use clb_api::{ApiError, ErrorCode};

use crate::config::Limits;

/// Listener `TargetType`: real servers bound directly, or a target group.
pub const TARGET_TYPES: &[&str] = &["NODE", "TARGETGROUP"];
/// Listener `SessionType`: plain, or QUIC connection-id persistence (UDP).
pub const SESSION_TYPES: &[&str] = &["NORMAL", "QUIC_CID"];
/// Health check `CheckType`.
pub const CHECK_TYPES: &[&str] = &["TCP", "HTTP", "HTTPS", "GRPC", "PING", "CUSTOM"];
/// Listener `DataCompressMode`.
pub const DATA_COMPRESS_MODES: &[&str] = &["transparent", "compatibility"];

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameterValue, message)
}

fn out_of_range(name: &str, value: i64, lo: i64, hi: i64) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterValueRange,
        format!("The value of `{name}` ({value}) is out of range [{lo}, {hi}]."),
    )
}

fn one_of(name: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(invalid(format!(
            "{name} `{v}` is not one of {}.",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The listener settings CreateListener and ModifyListener share.
pub struct ListenerValues<'a> {
    pub session_expire_time: Option<i64>,
    pub idle_connect_timeout: Option<i64>,
    pub target_type: Option<&'a str>,
    pub session_type: Option<&'a str>,
    pub data_compress_mode: Option<&'a str>,
}

/// `SessionExpireTime` is 0 (off) or 30-3600 s; `IdleConnectTimeout` 10 s to `limits.idleConnectTimeoutMax`
/// (900 on standard load balancers); the enumerations as listed above.
pub fn listener_values(v: &ListenerValues<'_>, cfg: &Limits) -> Result<(), ApiError> {
    if let Some(t) = v.session_expire_time {
        let (lo, hi) = limits::SESSION_EXPIRE_TIME;
        if t != 0 && !(lo..=hi).contains(&t) {
            return Err(out_of_range("SessionExpireTime", t, lo, hi));
        }
    }
    if let Some(t) = v.idle_connect_timeout {
        let lo = limits::IDLE_CONNECT_TIMEOUT.0;
        let hi = cfg.idle_connect_timeout_max;
        if !(lo..=hi).contains(&t) {
            return Err(out_of_range("IdleConnectTimeout", t, lo, hi));
        }
    }
    one_of("TargetType", v.target_type, TARGET_TYPES)?;
    one_of("SessionType", v.session_type, SESSION_TYPES)?;
    one_of(
        "DataCompressMode",
        v.data_compress_mode,
        DATA_COMPRESS_MODES,
    )
}

/// A health check as it will be stored (defaults merged): `CheckType` known and `TimeOut` below
/// `IntervalTime`, since a probe must time out before the next one starts.
pub fn health_check(h: &HealthCheck) -> Result<(), ApiError> {
    one_of(
        "HealthCheck.CheckType",
        h.check_type.as_deref(),
        CHECK_TYPES,
    )?;
    if let (Some(timeout), Some(interval)) = (h.time_out, h.interval_time)
        && timeout >= interval
    {
        return Err(invalid(format!(
            "HealthCheck.TimeOut ({timeout}) should be less than HealthCheck.IntervalTime ({interval})."
        )));
    }
    Ok(())
}

/// `EniIp` must be an IPv4 address in dotted-quad form.
pub fn eni_ip(ip: &str) -> Result<(), ApiError> {
    ip.parse::<Ipv4Addr>()
        .map(drop)
        .map_err(|_| invalid(format!("EniIp `{ip}` is not a valid IPv4 address.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_values_follow_the_real_ranges() {
        let cfg = Limits::default();
        let base = || ListenerValues {
            session_expire_time: None,
            idle_connect_timeout: None,
            target_type: None,
            session_type: None,
            data_compress_mode: None,
        };
        for t in [0, 30, 3600] {
            let v = ListenerValues {
                session_expire_time: Some(t),
                ..base()
            };
            assert!(listener_values(&v, &cfg).is_ok(), "{t}");
        }
        for t in [5, 29, 3601, 99_999, -1] {
            let v = ListenerValues {
                session_expire_time: Some(t),
                ..base()
            };
            let e = listener_values(&v, &cfg).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValueRange, "{t}");
        }
        let v = ListenerValues {
            idle_connect_timeout: Some(1),
            ..base()
        };
        assert!(listener_values(&v, &cfg).is_err());
        let v = ListenerValues {
            target_type: Some("FOO"),
            ..base()
        };
        assert_eq!(
            listener_values(&v, &cfg).unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
        assert!(eni_ip("10.0.0.1").is_ok());
        assert!(eni_ip("10.0.0.256").is_err() && eni_ip("::1").is_err() && eni_ip("x").is_err());
    }
}
