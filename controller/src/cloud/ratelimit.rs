//! Client-side token bucket per action. Tencent Cloud limits every CLB action to 20 requests per second per account;
//! staying under that locally is cheaper than being told `RequestLimitExceeded`. Callers wait, they never fail here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Rate and burst of one bucket. A rate of 0 disables limiting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second.
    pub per_second: f64,
    /// Requests that may go out back to back after an idle period (at least 1).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 1,
        }
    }
}

/// Token bucket state that lets the balance go negative: a negative balance is a queue of reservations, so
/// concurrent callers are served in order, each one `1 / rate` after the previous.
#[derive(Debug, Clone)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Bucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            last: now,
        }
    }

    /// Takes one token and returns how long the caller must wait before sending.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if self.limit.per_second <= 0.0 {
            return Duration::ZERO;
        }
        let burst = f64::from(self.limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(burst);
        self.last = now.max(self.last);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limit.per_second)
        }
    }
}

/// One bucket per action, created on first use.
#[derive(Debug)]
pub struct RateLimiter {
    default: RateLimit,
    per_action: HashMap<String, RateLimit>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(default: RateLimit, per_action: HashMap<String, RateLimit>) -> Self {
        RateLimiter {
            default,
            per_action,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limit that applies to `action`.
    pub fn limit_for(&self, action: &str) -> RateLimit {
        self.per_action.get(action).copied().unwrap_or(self.default)
    }

    /// Reserves a slot for `action` and returns the wait before it may be used.
    pub fn reserve(&self, action: &str) -> Duration {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .entry(action.to_string())
            .or_insert_with(|| Bucket::new(self.limit_for(action), now))
            .reserve(now)
    }

    /// Waits until `action` may be sent; returns how long it waited.
    pub async fn acquire(&self, action: &str) -> Duration {
        let wait = self.reserve(action);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(10)
    }

    #[test]
    fn burst_then_one_token_per_interval() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            RateLimit {
                per_second: 20.0,
                burst: 3,
            },
            t0,
        );
        for _ in 0..3 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
        assert!(close(b.reserve(t0), ms(50)));
        assert!(close(b.reserve(t0), ms(100)));
        // After a long idle period the bucket is full again, but never beyond the burst.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(b.reserve(later), Duration::ZERO);
        }
        assert!(close(b.reserve(later), ms(50)));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            RateLimit {
                per_second: 0.0,
                burst: 1,
            },
            t0,
        );
        for _ in 0..1000 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_wait_instead_of_failing_and_actions_are_independent() {
        let limiter = RateLimiter::new(
            RateLimit::default(),
            [(
                "DescribeTaskStatus".to_string(),
                RateLimit {
                    per_second: 100.0,
                    burst: 1,
                },
            )]
            .into(),
        );
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire("CreateListener").await;
        }
        // Burst 1 at 20/s: the 5th call goes out 4 intervals after the first.
        assert!(close(start.elapsed(), ms(200)), "{:?}", start.elapsed());

        // Another action has its own, full bucket and its own rate.
        let start = Instant::now();
        assert_eq!(limiter.acquire("DescribeListeners").await, Duration::ZERO);
        limiter.acquire("DescribeTaskStatus").await;
        limiter.acquire("DescribeTaskStatus").await;
        assert!(close(start.elapsed(), ms(10)), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_spaced_out() {
        let limiter = std::sync::Arc::new(RateLimiter::new(
            RateLimit {
                per_second: 10.0,
                burst: 2,
            },
            HashMap::new(),
        ));
        let start = Instant::now();
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    l.acquire("BatchRegisterTargets").await;
                    Instant::now()
                })
            })
            .collect();
        let mut sent = Vec::new();
        for h in handles {
            sent.push(h.await.unwrap() - start);
        }
        sent.sort();
        let expected = [0, 0, 100, 200, 300, 400].map(ms);
        for (got, want) in sent.iter().zip(expected) {
            assert!(close(*got, want), "{sent:?}");
        }
    }
}
