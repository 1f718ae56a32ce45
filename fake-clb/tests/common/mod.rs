//! Shared helpers of the integration tests: start fake-clb in-process and sign requests with clb-api.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clb_api::sign::{Tc3Request, Tc3Signer, V1Method, V1Signer};
use fake_clb::admin_client::AdminClient;
use fake_clb::config::{AccountConfig, LoadBalancerConfig};
use fake_clb::{Config, ServerHandle};
use serde_json::Value;

pub const SECRET_ID: &str = "AKIDfakeexample";
pub const SECRET_KEY: &str = "fakesecret";
pub const OTHER_ID: &str = "AKIDother";
pub const OTHER_KEY: &str = "othersecret";
pub const LB: &str = "lb-00000001";
pub const REGION: &str = "ap-guangzhou";

pub fn config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        seed: Some(42),
        accounts: vec![
            AccountConfig {
                secret_id: SECRET_ID.into(),
                secret_key: SECRET_KEY.into(),
                app_id: 1250000001,
            },
            AccountConfig {
                secret_id: OTHER_ID.into(),
                secret_key: OTHER_KEY.into(),
                app_id: 1250000002,
            },
        ],
        load_balancers: vec![LoadBalancerConfig {
            id: LB.into(),
            secret_id: SECRET_ID.into(),
            region: REGION.into(),
            name: Some("test-lb".into()),
            lb_type: "OPEN".into(),
            vips: vec!["1.1.1.1".into()],
        }],
        ..Config::default()
    };
    c.limits.action_qps = 0;
    c.limits.task_duration = Duration::from_millis(50);
    c
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub struct Client {
    pub http: reqwest::Client,
    pub api: String,
    /// The typed control-API client of this server.
    pub admin: AdminClient,
    pub host: String,
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
}

impl Client {
    pub fn new(h: &ServerHandle) -> Client {
        Client {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            api: format!("http://{}/", h.api_addr),
            admin: AdminClient::for_addr(h.admin_addr).unwrap(),
            host: h.api_addr.to_string(),
            secret_id: SECRET_ID.into(),
            secret_key: SECRET_KEY.into(),
            region: REGION.into(),
        }
    }

    pub fn for_other_account(mut self) -> Client {
        self.secret_id = OTHER_ID.into();
        self.secret_key = OTHER_KEY.into();
        self
    }

    /// TC3 POST with a JSON body; returns the HTTP response.
    pub async fn post_raw(
        &self,
        action: &str,
        body: &[u8],
        timestamp: i64,
        version: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let signer = Tc3Signer::new(&self.secret_id, &self.secret_key);
        let auth = signer.authorization(&Tc3Request {
            method: "POST",
            host: &self.host,
            query: "",
            content_type: "application/json",
            body,
            timestamp,
        });
        let mut req = self
            .http
            .post(&self.api)
            .header("Content-Type", "application/json")
            .header("Authorization", auth)
            .header("X-TC-Action", action)
            .header("X-TC-Version", version)
            .header("X-TC-Timestamp", timestamp.to_string());
        if !self.region.is_empty() {
            req = req.header("X-TC-Region", &self.region);
        }
        req.body(body.to_vec()).send().await
    }

    /// TC3 POST JSON; returns the `Response` object.
    pub async fn call(&self, action: &str, params: Value) -> Value {
        let body = serde_json::to_vec(&params).unwrap();
        let resp = self
            .post_raw(action, &body, now(), "2018-03-17")
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: Value = resp.json().await.unwrap();
        v["Response"].clone()
    }

    /// The error code of a response, or "OK".
    pub async fn code(&self, action: &str, params: Value) -> String {
        code_of(&self.call(action, params).await)
    }

    /// TC3 GET with the parameters flattened into the query.
    pub async fn get(&self, action: &str, params: &Value) -> Value {
        let pairs = clb_api::flatten::flatten(params);
        let query = serde_urlencoded::to_string(&pairs).unwrap();
        let ts = now();
        let signer = Tc3Signer::new(&self.secret_id, &self.secret_key);
        let ct = "application/x-www-form-urlencoded";
        let auth = signer.authorization(&Tc3Request {
            method: "GET",
            host: &self.host,
            query: &query,
            content_type: ct,
            body: b"",
            timestamp: ts,
        });
        let resp = self
            .http
            .get(format!("{}?{}", self.api, query))
            .header("Content-Type", ct)
            .header("Authorization", auth)
            .header("X-TC-Action", action)
            .header("X-TC-Version", "2018-03-17")
            .header("X-TC-Region", &self.region)
            .header("X-TC-Timestamp", ts.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "application/json");
        resp.json::<Value>().await.unwrap()["Response"].clone()
    }

    /// v1-signed request (form POST or GET).
    pub async fn v1(&self, method: &str, sig: V1Method, action: &str, params: &Value) -> Value {
        let mut pairs = clb_api::flatten::flatten(params);
        pairs.push(("Action".into(), action.into()));
        pairs.push(("Version".into(), "2018-03-17".into()));
        pairs.push(("Region".into(), self.region.clone()));
        V1Signer {
            secret_id: &self.secret_id,
            secret_key: &self.secret_key,
            method: sig,
        }
        .sign_params(&mut pairs, method, &self.host, now(), 12345);
        let encoded = serde_urlencoded::to_string(&pairs).unwrap();
        let resp = if method == "GET" {
            self.http
                .get(format!("{}?{}", self.api, encoded))
                .send()
                .await
                .unwrap()
        } else {
            self.http
                .post(&self.api)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encoded)
                .send()
                .await
                .unwrap()
        };
        assert_eq!(resp.headers()["content-type"], "application/json");
        resp.json::<Value>().await.unwrap()["Response"].clone()
    }

    /// Polls DescribeTaskStatus until the task leaves Status 2 (bounded by a deadline).
    pub async fn wait_task(&self, task_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .call("DescribeTaskStatus", serde_json::json!({"TaskId": task_id}))
                .await;
            if r["Status"] != 2 || Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn code_of(resp: &Value) -> String {
    resp["Error"]["Code"].as_str().unwrap_or("OK").to_string()
}

pub async fn start(config: Config) -> (ServerHandle, Client) {
    let h = fake_clb::serve(config).await.expect("fake-clb starts");
    let c = Client::new(&h);
    (h, c)
}
