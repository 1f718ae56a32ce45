//! Which failures are worth another attempt, and how long to wait before it.

use std::time::Duration;

use clb_api::error::ErrorCode;
use rand::Rng;

use super::error::CloudError;

/// Jittered exponential backoff between attempts of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first backoff.
    pub initial_backoff: Duration,
    /// The ceiling never grows beyond this.
    pub max_backoff: Duration,
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait before retry number `retry` (0 = the wait after the first failure).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// "Equal jitter": a uniform draw from `[ceiling / 2, ceiling]`, so retries never bunch up at zero and
    /// concurrent callers spread out.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_nanos() as u64;
        half + Duration::from_nanos(rng.random_range(0..=spread))
    }
}

/// Whether `action` has no side effects, so that a transport failure (maybe after the server acted) may be retried.
pub fn is_idempotent(action: &str) -> bool {
    action.starts_with("Describe")
}

/// Whether `err` from one attempt of `action` may be retried.
///
/// API errors: only `RequestLimitExceeded`, `InternalError` and `FailedOperation.ResourceInOperating`, the three
/// codes that mean "not now". Transport errors and per-request timeouts: only for idempotent (`Describe*`) actions,
/// since a mutation may have been applied before the connection broke.
pub fn is_retryable(err: &CloudError, action: &str) -> bool {
    match err {
        CloudError::Api { error, .. } => matches!(
            error.code,
            ErrorCode::RequestLimitExceeded
                | ErrorCode::InternalError
                | ErrorCode::FailedOperationResourceInOperating
        ),
        CloudError::Transport { .. } => is_idempotent(action),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clb_api::error::ApiError;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_within_bounds_and_caps() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_attempts: 10,
        };
        let ceilings: Vec<u64> = (0..8)
            .map(|r| policy.ceiling(r).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(2));

        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for retry in 0..12 {
            let ceiling = policy.ceiling(retry);
            for _ in 0..200 {
                let d = policy.backoff(retry, &mut rng);
                assert!(d >= ceiling / 2 && d <= ceiling, "retry {retry}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let draws: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy.backoff(3, &mut rng)).collect();
        assert!(
            draws.len() > 40,
            "jitter produced only {} distinct delays",
            draws.len()
        );
    }

    fn api(code: ErrorCode) -> CloudError {
        CloudError::Api {
            action: "X".into(),
            error: ApiError::new(code, "m"),
        }
    }

    #[test]
    fn only_the_three_not_now_codes_are_retried() {
        for code in ErrorCode::ALL {
            let expected = matches!(
                code,
                ErrorCode::RequestLimitExceeded
                    | ErrorCode::InternalError
                    | ErrorCode::FailedOperationResourceInOperating
            );
            assert_eq!(
                is_retryable(&api(code.clone()), "CreateListener"),
                expected,
                "{code}"
            );
        }
        assert!(!is_retryable(
            &api(ErrorCode::Other("Foo".into())),
            "DescribeListeners"
        ));
    }

    #[test]
    fn transport_errors_are_retried_only_for_describe_calls() {
        let transport = |action: &str| CloudError::Transport {
            action: action.into(),
            message: "connection reset".into(),
            timeout: false,
        };
        assert!(is_retryable(
            &transport("DescribeTargets"),
            "DescribeTargets"
        ));
        assert!(is_retryable(
            &transport("DescribeTaskStatus"),
            "DescribeTaskStatus"
        ));
        assert!(!is_retryable(
            &transport("CreateListener"),
            "CreateListener"
        ));
        assert!(!is_retryable(
            &transport("BatchRegisterTargets"),
            "BatchRegisterTargets"
        ));
        let failed = CloudError::TaskFailed {
            action: "CreateListener".into(),
            task_id: "t".into(),
            message: "m".into(),
        };
        assert!(!is_retryable(&failed, "CreateListener"));
    }
}
