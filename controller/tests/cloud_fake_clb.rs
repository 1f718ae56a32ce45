//! The CLB client against a real, in-process fake-clb: signing, batching, retries, task polling and deadlines as
//! seen in fake-clb's request log.

use std::time::Duration;

use clb_api::model::BatchTarget;
use clb_controller::cloud::{
    ClbClient, ClientConfig, CloudError, CloudMetrics, Credentials, LbRef, ListenerAttributes,
    NewListener,
};
use fake_clb::admin_api::LimitsPatch;
use serde_json::json;

mod fake_clb_fixture;

/// Named `cloud` so that `cargo test -p clb-controller cloud` selects these tests.
mod cloud {
    use super::*;

    const SECRET_ID: &str = "AKIDcloudtest0001";
    use crate::fake_clb_fixture::{Fake as Fixture, LB, REGION};

    struct Fake(Fixture);

    impl std::ops::Deref for Fake {
        type Target = Fixture;
        fn deref(&self) -> &Fixture {
            &self.0
        }
    }

    impl Fake {
        async fn start(task_duration: &str) -> Fake {
            Fake(Fixture::start(SECRET_ID, 7, task_duration).await)
        }

        fn client(&self) -> ClbClient {
            self.client_with(|_| {})
        }

        fn client_with(&self, tweak: impl FnOnce(&mut ClientConfig)) -> ClbClient {
            self.0.client_with(20, tweak)
        }

        async fn results(&self, action: &str) -> Vec<String> {
            self.requests(action)
                .await
                .iter()
                .map(|r| r["result"].as_str().unwrap_or("").to_string())
                .collect()
        }
    }

    fn lb() -> LbRef {
        LbRef::new(REGION, LB)
    }

    fn tcp(port: u16) -> NewListener {
        NewListener {
            protocol: "TCP".into(),
            port,
            end_port: None,
            name: Some(format!("cloud-test-{port}")),
            attributes: ListenerAttributes::default(),
        }
    }

    #[tokio::test]
    async fn forty_listeners_take_one_create_call_and_deletes_are_batched() {
        let fake = Fake::start("50ms").await;
        let client = fake.client();
        let listeners: Vec<_> = (0..40).map(|i| tcp(20000 + i)).collect();

        let ids = client.create_listeners(&lb(), &listeners).await.unwrap();
        assert_eq!(ids.len(), 40);
        let creates = fake.requests("CreateListener").await;
        assert_eq!(creates.len(), 1, "{creates:?}");
        assert_eq!(creates[0]["result"], "OK");
        assert_eq!(creates[0]["params"]["Ports"].as_array().unwrap().len(), 40);
        // The call returned only after its task ended.
        assert_eq!(
            fake.results("DescribeTaskStatus")
                .await
                .last()
                .map(String::as_str),
            Some("OK")
        );

        let described = client.describe_listeners(&lb(), &ids).await.unwrap();
        let mut ports: Vec<i64> = described.iter().map(|l| l.port).collect();
        ports.sort();
        assert_eq!(ports, (20000..20040).collect::<Vec<i64>>());
        for l in &described {
            let i = ids.iter().position(|id| *id == l.listener_id).unwrap();
            assert_eq!(l.port, 20000 + i as i64, "ids are positional");
        }

        // An empty delete sends nothing; 40 ids take two calls of 20.
        client.delete_listeners(&lb(), &[]).await.unwrap();
        assert!(
            fake.requests("DeleteLoadBalancerListeners")
                .await
                .is_empty()
        );
        client.delete_listeners(&lb(), &ids).await.unwrap();
        let deletes = fake.requests("DeleteLoadBalancerListeners").await;
        assert_eq!(deletes.len(), 2);
        for d in &deletes {
            assert_eq!(d["params"]["ListenerIds"].as_array().unwrap().len(), 20);
        }
        assert!(
            client
                .describe_all_listeners(&lb())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_succeeds() {
        let fake = Fake::start("20ms").await;
        fake.faults(
            json!([{"action": "CreateListener", "count": 3, "effect": {"type": "throttle"}}]),
        )
        .await;
        let client = fake.client();

        let ids = client.create_listeners(&lb(), &[tcp(21000)]).await.unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            fake.results("CreateListener").await,
            [
                "RequestLimitExceeded",
                "RequestLimitExceeded",
                "RequestLimitExceeded",
                "OK"
            ]
        );
        assert_eq!(
            client
                .metrics()
                .request_count("CreateListener", "RequestLimitExceeded"),
            3
        );
        assert_eq!(client.metrics().request_count("CreateListener", "OK"), 1);
    }

    #[tokio::test]
    async fn server_side_rate_limit_is_absorbed() {
        let fake = Fake::start("20ms").await;
        let patch: LimitsPatch = serde_json::from_value(json!({"actionQps": 3})).expect("limits");
        fake.admin()
            .patch_limits(&patch)
            .await
            .expect("patching limits");
        // No client-side limit: the server's limit must be absorbed by retries alone.
        let client = fake.client_with(|c| c.retry.max_backoff = Duration::from_millis(400));
        let target = lb();
        let calls = (0..8).map(|_| client.describe_all_listeners(&target));
        for result in futures::future::join_all(calls).await {
            result.unwrap();
        }
        let results = fake.results("DescribeListeners").await;
        assert_eq!(results.iter().filter(|r| *r == "OK").count(), 8);
        assert!(
            results.iter().any(|r| r == "RequestLimitExceeded"),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn busy_load_balancer_is_retried() {
        let fake = Fake::start("300ms").await;
        let client = fake.client();
        let target = lb();
        let (first, second) = ([tcp(22000)], [tcp(22001)]);
        let (a, b) = tokio::join!(
            client.create_listeners(&target, &first),
            client.create_listeners(&target, &second),
        );
        assert_eq!(a.unwrap().len(), 1);
        assert_eq!(b.unwrap().len(), 1);
        let results = fake.results("CreateListener").await;
        assert_eq!(
            results.iter().filter(|r| *r == "OK").count(),
            2,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| r == "FailedOperation.ResourceInOperating"),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn failed_task_is_a_typed_error_with_the_message() {
        let fake = Fake::start("20ms").await;
        fake.faults(json!([{"action": "CreateListener", "effect": {"type": "failTask", "message": "backend exploded"}}]))
        .await;
        let err = fake
            .client()
            .create_listeners(&lb(), &[tcp(23000)])
            .await
            .unwrap_err();
        assert!(err.is_task_failed(), "{err}");
        assert_eq!(err.api_message(), Some("backend exploded"));
        assert!(err.request_id().is_some());
        assert_eq!(fake.requests("CreateListener").await.len(), 1);
        fake.faults(json!([])).await;
        assert!(
            fake.client()
                .describe_all_listeners(&lb())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn non_retryable_errors_return_at_once() {
        let fake = Fake::start("20ms").await;
        fake.faults(json!([{"action": "CreateListener", "effect": {"type": "error", "code": "InvalidParameter", "message": "no such thing"}}]))
        .await;
        let err = fake
            .client()
            .create_listeners(&lb(), &[tcp(24000)])
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.as_str()), Some("InvalidParameter"));
        assert_eq!(err.api_message(), Some("no such thing"));
        let logged = fake.requests("CreateListener").await;
        assert_eq!(logged.len(), 1, "no retry: {logged:?}");
        assert_eq!(err.request_id(), logged[0]["requestId"].as_str());
    }

    #[tokio::test]
    async fn a_hung_task_ends_in_a_timeout_error() {
        let fake = Fake::start("20ms").await;
        fake.faults(json!([{"action": "CreateListener", "effect": {"type": "hangTask"}}]))
            .await;
        let client = fake
            .client()
            .with_operation_timeout(Duration::from_millis(600));
        let started = std::time::Instant::now();
        let err = client
            .create_listeners(&lb(), &[tcp(25000)])
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(matches!(err, CloudError::TaskTimeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // It polled more than once, and stopped.
        let polls = fake.requests("DescribeTaskStatus").await.len();
        assert!(polls >= 2, "{polls}");
    }

    #[tokio::test]
    async fn missing_load_balancer_reads_as_already_gone() {
        let fake = Fake::start("20ms").await;
        let client = fake.client();
        let missing = LbRef::new(REGION, "lb-0000dead");
        let err = client
            .delete_listeners(&missing, &["lbl-00000001".to_string()])
            .await
            .unwrap_err();
        assert!(err.is_lb_not_found(), "{err}");
        let err = client.describe_all_listeners(&missing).await.unwrap_err();
        assert!(err.is_lb_not_found(), "{err}");
        assert!(
            client
                .describe_load_balancers(REGION, &["lb-0000dead".into()])
                .await
                .unwrap()
                .is_empty()
        );
        let found = client
            .describe_load_balancers(REGION, &[LB.into()])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].load_balancer_id, LB);
    }

    #[tokio::test]
    async fn wrong_key_is_an_auth_failure_without_retry() {
        let fake = Fake::start("20ms").await;
        let creds = Credentials::new(SECRET_ID, "wrong-key").unwrap();
        let client = ClbClient::new(
            ClientConfig {
                endpoint: fake.endpoint(),
                default_region: REGION.into(),
                ..ClientConfig::default()
            },
            &creds,
            CloudMetrics::default(),
        )
        .unwrap();
        let err = client.describe_all_listeners(&lb()).await.unwrap_err();
        assert_eq!(
            err.code().map(|c| c.as_str()),
            Some("AuthFailure.SignatureFailure")
        );
        assert_eq!(fake.requests("DescribeListeners").await.len(), 1);
    }

    #[tokio::test]
    async fn targets_are_bound_in_one_batch_call() {
        let fake = Fake::start("20ms").await;
        let client = fake.client();
        let ids = client
            .create_listeners(&lb(), &[tcp(26000), tcp(26001)])
            .await
            .unwrap();
        let targets: Vec<BatchTarget> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| BatchTarget {
                listener_id: id.clone(),
                port: 8080,
                eni_ip: Some(format!("10.0.0.{}", i + 10)),
                weight: Some(10),
                ..BatchTarget::default()
            })
            .collect();
        let failed = client
            .batch_register_targets(&lb(), &targets)
            .await
            .unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(fake.requests("BatchRegisterTargets").await.len(), 1);

        let bound = client.describe_targets(&lb(), &ids).await.unwrap();
        assert_eq!(bound.len(), 2);
        for backend in &bound {
            let targets = backend.targets.clone().unwrap_or_default();
            assert_eq!(targets.len(), 1, "{backend:?}");
            assert_eq!(targets[0].port, 8080);
        }
    }
}
