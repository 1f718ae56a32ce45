//! Requests per second of fake-clb through the full HTTP stack on loopback (TC3-signed JSON POSTs),
//! for a read (DescribeListeners) and a write (CreateListener), sequentially and with 16 in flight.
//! Throttling is off (actionQps 0) and tasks finish at once (taskDuration 0).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clb_api::sign::{Tc3Request, Tc3Signer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fake_clb::Config;
use fake_clb::admin_client::AdminClient;
use fake_clb::config::{AccountConfig, LoadBalancerConfig};
use serde_json::{Value, json};

const SECRET_ID: &str = "AKIDbench";
const SECRET_KEY: &str = "benchsecret";
const LBS: u64 = 50;

struct BenchClient {
    http: reqwest::Client,
    api: String,
    admin: AdminClient,
    host: String,
    signer: Tc3Signer,
    port_seq: AtomicU64,
}

impl BenchClient {
    async fn call(&self, action: &str, params: &Value) -> Value {
        let body = serde_json::to_vec(params).expect("serialisable");
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let auth = self.signer.authorization(&Tc3Request {
            method: "POST",
            host: &self.host,
            query: "",
            content_type: "application/json",
            body: &body,
            timestamp: ts,
        });
        let resp = self
            .http
            .post(&self.api)
            .header("Content-Type", "application/json")
            .header("Authorization", auth)
            .header("X-TC-Action", action)
            .header("X-TC-Version", "2018-03-17")
            .header("X-TC-Region", "ap-guangzhou")
            .header("X-TC-Timestamp", ts.to_string())
            .body(body)
            .send()
            .await
            .expect("request");
        let v: Value = resp.json().await.expect("json");
        assert!(v["Response"]["Error"].is_null(), "{action} failed: {v}");
        v
    }

    /// A listener on a fresh (LB, port) pair so calls never conflict.
    async fn create_listener(&self) {
        let n = self.port_seq.fetch_add(1, Ordering::Relaxed);
        let lb = format!("lb-{:08}", n % LBS);
        let port = (n / LBS) % 65535 + 1;
        self.call(
            "CreateListener",
            &json!({"LoadBalancerId": lb, "Ports": [port], "Protocol": "TCP"}),
        )
        .await;
    }

    async fn reset(&self) {
        self.admin.reset().await.expect("reset");
        self.port_seq.store(0, Ordering::Relaxed);
    }
}

fn config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        seed: Some(1),
        accounts: vec![AccountConfig {
            secret_id: SECRET_ID.into(),
            secret_key: SECRET_KEY.into(),
            app_id: 1,
        }],
        load_balancers: (0..LBS)
            .map(|i| LoadBalancerConfig {
                id: format!("lb-{i:08}"),
                secret_id: SECRET_ID.into(),
                region: "ap-guangzhou".into(),
                name: None,
                lb_type: "OPEN".into(),
                vips: vec![format!("1.1.1.{}", i + 1)],
            })
            .collect(),
        ..Config::default()
    };
    c.limits.action_qps = 0;
    c.limits.task_duration = Duration::ZERO;
    c.limits.listeners_per_load_balancer = 100_000;
    c
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let handle = rt
        .block_on(fake_clb::serve(config()))
        .expect("fake-clb starts");
    let client = Arc::new(BenchClient {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        api: format!("http://{}/", handle.api_addr),
        admin: AdminClient::for_addr(handle.admin_addr).expect("admin client"),
        host: handle.api_addr.to_string(),
        signer: Tc3Signer::new(SECRET_ID, SECRET_KEY),
        port_seq: AtomicU64::new(0),
    });
    // Ten listeners to describe.
    rt.block_on(client.call("CreateListener", &json!({"LoadBalancerId": "lb-00000000", "Ports": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "Protocol": "TCP"})));
    let describe = json!({"LoadBalancerId": "lb-00000000"});

    let mut g = c.benchmark_group("fake_clb_http");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    const IN_FLIGHT: u64 = 16;
    // Reads first: the create benches reset fake-clb, which would change what Describe returns.
    g.throughput(Throughput::Elements(1));
    g.bench_function("DescribeListeners/sequential", |b| {
        b.to_async(&rt)
            .iter(|| client.call("DescribeListeners", &describe))
    });
    g.throughput(Throughput::Elements(IN_FLIGHT));
    g.bench_function("DescribeListeners/16-in-flight", |b| {
        b.to_async(&rt).iter(|| {
            futures::future::join_all(
                (0..IN_FLIGHT).map(|_| client.call("DescribeListeners", &describe)),
            )
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("CreateListener/sequential", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let client = client.clone();
            async move {
                // Each sample starts from the config state so listener lists stay short.
                client.reset().await;
                let start = Instant::now();
                for _ in 0..iters {
                    client.create_listener().await;
                }
                start.elapsed()
            }
        })
    });

    g.throughput(Throughput::Elements(IN_FLIGHT));
    g.bench_function("CreateListener/16-in-flight", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let client = client.clone();
            async move {
                client.reset().await;
                let start = Instant::now();
                for _ in 0..iters {
                    futures::future::join_all((0..IN_FLIGHT).map(|_| client.create_listener()))
                        .await;
                }
                start.elapsed()
            }
        })
    });
    g.finish();
    rt.block_on(handle.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
