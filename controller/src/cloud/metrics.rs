//! Prometheus metrics of the CLB client. The client records; the caller registers them into its Registry.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub action: String,
    /// `OK`, the API error code, or `Transport` / `Timeout`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub action: String,
    /// The error that caused the retry.
    pub reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 5 ms .. ~41 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Counters and histograms of CLB calls. Cloning shares the underlying metrics.
#[derive(Clone, Debug)]
pub struct CloudMetrics {
    /// One count per HTTP attempt.
    pub requests: Family<CallLabels, Counter>,
    /// Latency of one HTTP attempt.
    pub request_duration: HistogramFamily<ActionLabels>,
    /// Retries, by the error that caused them.
    pub retries: Family<RetryLabels, Counter>,
    /// Time spent waiting for the client-side rate limiter.
    pub rate_limit_wait: HistogramFamily<ActionLabels>,
    /// Time from an async call's acceptance to the end of its task, by outcome.
    pub task_duration: HistogramFamily<CallLabels>,
}

impl Default for CloudMetrics {
    fn default() -> Self {
        CloudMetrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            rate_limit_wait: Family::new_with_constructor(latency_histogram),
            task_duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl CloudMetrics {
    /// Registers every metric under the `clb_client_` prefix (the registry may add its own prefix).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("clb_client");
        r.register(
            "requests",
            "CLB API requests by action and result (OK or the error code)",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Latency of one CLB API request",
            self.request_duration.clone(),
        );
        r.register(
            "retries",
            "CLB API retries by action and the error that caused them",
            self.retries.clone(),
        );
        r.register(
            "rate_limit_wait_seconds",
            "Time spent waiting for the client-side per-action rate limiter",
            self.rate_limit_wait.clone(),
        );
        r.register(
            "task_duration_seconds",
            "Time from an async CLB call to the end of its task, by outcome",
            self.task_duration.clone(),
        );
    }

    pub(crate) fn observe_call(&self, action: &str, result: &str, latency: Duration) {
        self.requests
            .get_or_create(&CallLabels {
                action: action.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.request_duration
            .get_or_create(&ActionLabels {
                action: action.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    pub(crate) fn observe_retry(&self, action: &str, reason: &str) {
        self.retries
            .get_or_create(&RetryLabels {
                action: action.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub(crate) fn observe_rate_limit_wait(&self, action: &str, wait: Duration) {
        self.rate_limit_wait
            .get_or_create(&ActionLabels {
                action: action.to_string(),
            })
            .observe(wait.as_secs_f64());
    }

    pub(crate) fn observe_task(&self, action: &str, result: &str, took: Duration) {
        self.task_duration
            .get_or_create(&CallLabels {
                action: action.to_string(),
                result: result.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// How many requests of `action` ended with `result` (for tests and status pages).
    pub fn request_count(&self, action: &str, result: &str) -> u64 {
        self.requests
            .get_or_create(&CallLabels {
                action: action.to_string(),
                result: result.to_string(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_encoded() {
        let metrics = CloudMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.observe_call("CreateListener", "OK", Duration::from_millis(12));
        metrics.observe_call(
            "CreateListener",
            "RequestLimitExceeded",
            Duration::from_millis(3),
        );
        metrics.observe_retry("CreateListener", "RequestLimitExceeded");
        assert_eq!(metrics.request_count("CreateListener", "OK"), 1);

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"clb_client_requests_total{action="CreateListener",result="RequestLimitExceeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("clb_client_request_duration_seconds_count{action=\"CreateListener\"} 2"),
            "{text}"
        );
        assert!(text.contains("clb_client_retries_total{action=\"CreateListener\",reason=\"RequestLimitExceeded\"} 1"), "{text}");
    }
}
