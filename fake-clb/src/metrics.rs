//! Prometheus metrics served at `/metrics` on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub action: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<ActionLabels, Histogram>,
    pub tasks_in_progress: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<ActionLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let tasks_in_progress = Gauge::default();
        registry.register(
            "fake_clb_requests",
            "API requests by action and result code",
            requests.clone(),
        );
        registry.register(
            "fake_clb_request_duration_seconds",
            "API request handling time",
            duration.clone(),
        );
        registry.register(
            "fake_clb_tasks_in_progress",
            "async tasks with Status 2",
            tasks_in_progress.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            tasks_in_progress,
        }
    }
}

impl Metrics {
    pub fn observe(&self, action: &str, result: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                action: action.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&ActionLabels {
                action: action.to_string(),
            })
            .observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
