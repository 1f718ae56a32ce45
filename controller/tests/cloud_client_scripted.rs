//! The CLB client against a scripted HTTP server on 127.0.0.1: what goes on the wire (headers, TC3 signature) and
//! how the client reacts to exact answer sequences (transport failures, slow answers, task states, busy errors).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clb_api::sign::{Tc3Received, VerifyOptions, verify_tc3};
use clb_controller::cloud::{
    ClbClient, ClientConfig, CloudError, CloudMetrics, Credentials, LbRef, ListenerAttributes,
    NewListener, RateLimit, RetryPolicy,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Named `cloud` so that `cargo test -p clb-controller cloud` selects these tests.
mod cloud {
    use super::*;

    const SECRET_ID: &str = "AKIDscripted00001";
    const SECRET_KEY: &str = "scripted-secret-key-value";

    #[derive(Clone)]
    enum Reply {
        /// `Response` fields; RequestId is added.
        Ok(Value),
        Error(&'static str, &'static str),
        /// Close the connection without answering.
        Drop,
        /// Answer after a delay.
        Slow(Duration, Value),
    }

    #[derive(Debug, Clone)]
    struct Recorded {
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    impl Recorded {
        fn action(&self) -> &str {
            self.headers
                .get("x-tc-action")
                .map(String::as_str)
                .unwrap_or("")
        }
    }

    type Script = Box<dyn Fn(&str, usize) -> Reply + Send + Sync>;

    struct Server {
        addr: std::net::SocketAddr,
        log: Arc<Mutex<Vec<Recorded>>>,
    }

    impl Server {
        /// `script(action, n)` answers the n-th (0-based) request of `action`.
        async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let script: Arc<Script> = Arc::new(Box::new(script));
            let log2 = log.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_connection(stream, script.clone(), log2.clone()));
                }
            });
            Server { addr, log }
        }

        fn client(&self, tweak: impl FnOnce(&mut ClientConfig)) -> ClbClient {
            let mut config = ClientConfig {
                endpoint: format!("http://{}", self.addr),
                default_region: "ap-guangzhou".into(),
                request_timeout: Duration::from_secs(2),
                operation_timeout: Duration::from_secs(5),
                rate_limit: RateLimit {
                    per_second: 0.0,
                    burst: 1,
                },
                retry: RetryPolicy {
                    initial_backoff: Duration::from_millis(5),
                    max_backoff: Duration::from_millis(20),
                    max_attempts: 4,
                },
                ..ClientConfig::default()
            };
            tweak(&mut config);
            let creds = Credentials::new(SECRET_ID, SECRET_KEY).unwrap();
            ClbClient::new(config, &creds, CloudMetrics::default()).unwrap()
        }

        fn requests(&self) -> Vec<Recorded> {
            self.log.lock().unwrap().clone()
        }

        fn actions(&self) -> Vec<String> {
            self.requests()
                .iter()
                .map(|r| r.action().to_string())
                .collect()
        }
    }

    async fn serve_connection(
        mut stream: TcpStream,
        script: Arc<Script>,
        log: Arc<Mutex<Vec<Recorded>>>,
    ) {
        let mut buf = Vec::new();
        loop {
            // Read one request: headers, then Content-Length bytes of body.
            let header_end = loop {
                if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break pos;
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
            let headers: HashMap<String, String> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let body_start = header_end + 4;
            while buf.len() < body_start + len {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = buf[body_start..body_start + len].to_vec();
            buf.drain(..body_start + len);
            let recorded = Recorded { headers, body };
            let action = recorded.action().to_string();
            let n = {
                let mut log = log.lock().unwrap();
                let n = log.iter().filter(|r| r.action() == action).count();
                log.push(recorded);
                n
            };
            let request_id = format!("req-{action}-{n}");
            let response = match script(&action, n) {
                Reply::Drop => return,
                Reply::Ok(mut v) => {
                    v["RequestId"] = json!(request_id);
                    json!({ "Response": v })
                }
                Reply::Error(code, message) => json!({
                    "Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}
                }),
                Reply::Slow(delay, mut v) => {
                    tokio::time::sleep(delay).await;
                    v["RequestId"] = json!(request_id);
                    json!({ "Response": v })
                }
            };
            let body = response.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }

    fn lb() -> LbRef {
        LbRef::new("ap-shanghai", "lb-12345678")
    }

    fn tcp(port: u16) -> NewListener {
        NewListener {
            protocol: "TCP".into(),
            port,
            end_port: None,
            name: None,
            attributes: ListenerAttributes::default(),
        }
    }

    fn no_listeners() -> Reply {
        Reply::Ok(json!({"Listeners": [], "TotalCount": 0}))
    }

    #[tokio::test]
    async fn requests_carry_the_documented_headers_and_a_valid_signature() {
        let server = Server::start(|_, _| no_listeners()).await;
        let client = server.client(|_| {});
        client.describe_all_listeners(&lb()).await.unwrap();

        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        let h = |name: &str| r.headers.get(name).cloned();
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        assert_eq!(h("host"), Some(server.addr.to_string()));
        assert_eq!(h("x-tc-action").as_deref(), Some("DescribeListeners"));
        assert_eq!(h("x-tc-version").as_deref(), Some("2018-03-17"));
        assert_eq!(h("x-tc-region").as_deref(), Some("ap-shanghai"));
        let timestamp: i64 = h("x-tc-timestamp").unwrap().parse().unwrap();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({"LoadBalancerId": "lb-12345678"}));

        let lookup = |name: &str| r.headers.get(name).cloned();
        let verified = verify_tc3(
            &Tc3Received {
                method: "POST",
                raw_query: "",
                body: &r.body,
                header: &lookup,
            },
            &|id| (id == SECRET_ID).then(|| SECRET_KEY.to_string()),
            &VerifyOptions {
                now: timestamp,
                max_skew_secs: 300,
                required_service: Some("clb".into()),
            },
        );
        assert_eq!(verified.unwrap(), SECRET_ID);
        for (name, value) in &r.headers {
            assert!(!value.contains(SECRET_KEY), "secret key in header {name}");
        }
    }

    #[tokio::test]
    async fn dropped_connections_are_retried_for_describe_calls_only() {
        let server = Server::start(|action, n| match (action, n) {
            ("DescribeListeners", 0) => Reply::Drop,
            ("DescribeListeners", _) => no_listeners(),
            _ => Reply::Drop,
        })
        .await;
        let client = server.client(|_| {});
        client.describe_all_listeners(&lb()).await.unwrap();
        assert_eq!(server.actions(), ["DescribeListeners", "DescribeListeners"]);

        let err = client
            .create_listeners(&lb(), &[tcp(80)])
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::Transport { .. }), "{err:?}");
        assert_eq!(
            server
                .actions()
                .iter()
                .filter(|a| *a == "CreateListener")
                .count(),
            1,
            "a mutation that may have been applied is not resent"
        );
    }

    #[tokio::test]
    async fn slow_answers_hit_the_per_request_timeout() {
        let server = Server::start(|action, n| match (action, n) {
            ("DescribeListeners", 0) => {
                Reply::Slow(Duration::from_secs(3), json!({"Listeners": []}))
            }
            ("DescribeListeners", _) => no_listeners(),
            _ => Reply::Slow(Duration::from_secs(3), json!({})),
        })
        .await;
        let client = server.client(|c| c.request_timeout = Duration::from_millis(200));
        client.describe_all_listeners(&lb()).await.unwrap();
        assert_eq!(server.actions().len(), 2);

        let err = client
            .delete_listener(&lb(), "lbl-00000001")
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(
            client.metrics().request_count("DeleteListener", "Timeout"),
            1
        );
    }

    #[tokio::test]
    async fn async_calls_wait_for_their_task() {
        let server = Server::start(|action, n| match action {
            "CreateListener" => Reply::Ok(json!({"ListenerIds": ["lbl-aaaa0001", "lbl-aaaa0002"]})),
            "DescribeTaskStatus" if n < 3 => Reply::Ok(json!({"Status": 2, "Message": null})),
            "DescribeTaskStatus" => Reply::Ok(json!({"Status": 0})),
            _ => Reply::Error("InvalidAction", "?"),
        })
        .await;
        let client = server.client(|_| {});
        let ids = client
            .create_listeners(&lb(), &[tcp(80), tcp(81)])
            .await
            .unwrap();
        assert_eq!(ids, ["lbl-aaaa0001", "lbl-aaaa0002"]);
        assert_eq!(
            server.actions(),
            [
                "CreateListener",
                "DescribeTaskStatus",
                "DescribeTaskStatus",
                "DescribeTaskStatus",
                "DescribeTaskStatus"
            ]
        );
        // Every poll names the RequestId of the CreateListener call.
        for r in server.requests().iter().skip(1) {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body, json!({"TaskId": "req-CreateListener-0"}));
        }
    }

    #[tokio::test]
    async fn failed_and_unknown_task_states_are_typed_errors() {
        let server = Server::start(|action, n| match (action, n) {
            ("DescribeTaskStatus", 0) => Reply::Ok(json!({"Status": 1, "Message": "quota gone"})),
            ("DescribeTaskStatus", _) => Reply::Ok(json!({"Status": 9})),
            _ => Reply::Ok(json!({})),
        })
        .await;
        let client = server.client(|_| {});
        let err = client.delete_listener(&lb(), "lbl-1").await.unwrap_err();
        match &err {
            CloudError::TaskFailed {
                task_id, message, ..
            } => {
                assert_eq!(task_id, "req-DeleteListener-0");
                assert_eq!(message, "quota gone");
            }
            other => panic!("{other:?}"),
        }
        let err = client.delete_listener(&lb(), "lbl-1").await.unwrap_err();
        assert!(
            matches!(err, CloudError::TaskStatusUnknown { status: 9, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn retries_stop_at_the_attempt_limit() {
        let server = Server::start(|_, _| Reply::Error("InternalError", "try later")).await;
        let client = server.client(|_| {});
        let err = client
            .create_listeners(&lb(), &[tcp(80)])
            .await
            .unwrap_err();
        match &err {
            CloudError::RetriesExhausted { attempts, .. } => assert_eq!(*attempts, 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(err.code().map(|c| c.as_str()), Some("InternalError"));
        assert_eq!(err.request_id(), Some("req-CreateListener-3"));
        assert_eq!(server.actions().len(), 4);
        assert_eq!(
            client
                .metrics()
                .request_count("CreateListener", "InternalError"),
            4
        );
    }

    #[tokio::test]
    async fn the_deadline_bounds_retries_of_a_busy_load_balancer() {
        let server = Server::start(|_, _| {
        Reply::Error(
            "FailedOperation.ResourceInOperating",
            "Loadbalancer(lb-12345678) is not in normal desState, maybe some tasks are being processed, please try later.",
        )
    })
    .await;
        let client = server.client(|c| {
            c.retry = RetryPolicy {
                initial_backoff: Duration::from_millis(40),
                max_backoff: Duration::from_millis(80),
                max_attempts: 1000,
            };
            c.operation_timeout = Duration::from_millis(400);
        });
        let err = client
            .delete_listeners(&lb(), &["lbl-00000001".to_string()])
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            matches!(err, CloudError::DeadlineExceeded { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.code().map(|c| c.as_str()),
            Some("FailedOperation.ResourceInOperating")
        );
        let attempts = server.actions().len();
        assert!((2..1000).contains(&attempts), "{attempts}");
    }

    #[tokio::test]
    async fn empty_id_lists_send_nothing() {
        let server = Server::start(|_, _| Reply::Error("InvalidAction", "unexpected")).await;
        let client = server.client(|_| {});
        client.delete_listeners(&lb(), &[]).await.unwrap();
        assert!(
            client
                .describe_listeners(&lb(), &[])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            client
                .describe_targets(&lb(), &[])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            client
                .create_listeners(&lb(), &[])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            client
                .batch_register_targets(&lb(), &[])
                .await
                .unwrap()
                .is_empty()
        );
        client.batch_modify_target_weight(&lb(), &[]).await.unwrap();
        assert!(server.requests().is_empty());
    }
}
