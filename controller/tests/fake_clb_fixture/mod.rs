//! An in-process fake-clb with one account and one load balancer, a CLB client for it with fast retries and no
//! client-side rate limit, and its control API, for the tests that drive the cloud layer without Kubernetes.
#![allow(dead_code)]

use std::time::Duration;

use clb_controller::cloud::{
    ClbClient, ClientConfig, CloudMetrics, Credentials, RateLimit, RetryPolicy,
};
use fake_clb::admin_api::FaultRule;
use fake_clb::admin_client::AdminClient;
use serde_json::Value;

pub const REGION: &str = "ap-guangzhou";
pub const LB: &str = "lb-00000001";
const SECRET_KEY: &str = "fixture-secret";

/// A running fake-clb (stopped when dropped).
pub struct Fake {
    pub handle: fake_clb::ServerHandle,
    pub secret_id: &'static str,
}

impl Fake {
    /// fake-clb with `LB` in `REGION` owned by `secret_id`, no server-side rate limit and the given task duration.
    pub async fn start(secret_id: &'static str, seed: u64, task_duration: &str) -> Fake {
        let yaml = format!(
            r#"
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
seed: {seed}
accounts:
  - secretId: {secret_id}
    secretKey: {SECRET_KEY}
    appId: 1250000001
loadBalancers:
  - id: {LB}
    secretId: {secret_id}
    region: {REGION}
    name: fixture
    type: OPEN
    vips: [1.1.1.1]
limits:
  actionQps: 0
  listenersPerLoadBalancer: 200
  taskDuration: {task_duration}
"#
        );
        let config = fake_clb::Config::from_yaml(&yaml, std::path::Path::new("fixture.yaml"))
            .expect("fake-clb config");
        let handle = fake_clb::serve(config).await.expect("fake-clb starts");
        Fake { handle, secret_id }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.handle.api_addr)
    }

    /// A client with fast retries (up to `max_attempts`), changed further by `tweak`.
    pub fn client_with(
        &self,
        max_attempts: u32,
        tweak: impl FnOnce(&mut ClientConfig),
    ) -> ClbClient {
        let mut config = ClientConfig {
            endpoint: self.endpoint(),
            default_region: REGION.into(),
            request_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
            // Fast retries keep the tests short; the limits themselves are exercised in the unit tests.
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                max_attempts,
            },
            rate_limit: RateLimit {
                per_second: 0.0,
                burst: 1,
            },
            ..ClientConfig::default()
        };
        tweak(&mut config);
        let creds = Credentials::new(self.secret_id, SECRET_KEY).expect("credentials");
        ClbClient::new(config, &creds, CloudMetrics::default()).expect("a CLB client")
    }

    pub fn admin(&self) -> AdminClient {
        AdminClient::for_addr(self.handle.admin_addr).expect("the admin address")
    }

    /// Replaces the fault rules (given as the control API's JSON).
    pub async fn faults(&self, faults: Value) {
        let rules: Vec<FaultRule> = serde_json::from_value(faults).expect("fault rules");
        self.admin()
            .put_faults(&rules)
            .await
            .expect("installing faults");
    }

    /// The request log as JSON entries, oldest first.
    pub async fn log(&self) -> Vec<Value> {
        let entries = self.admin().requests(None).await.expect("the request log");
        entries
            .iter()
            .map(|e| serde_json::to_value(e).expect("a log entry as JSON"))
            .collect()
    }

    /// Request log entries of `action`.
    pub async fn requests(&self, action: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|r| r["action"] == action)
            .collect()
    }

    pub async fn clear_log(&self) {
        self.admin()
            .clear_requests()
            .await
            .expect("clearing the log");
    }
}
