//! Per-pod latency between `measure: {start}` and `measure: {stop}`: pod first seen → its
//! PortBinding first seen Ready → its IP first seen as a target in fake-clb, on the monotonic
//! clock. Observation is by polling every 100 ms (a watch would be finer; noted in the README).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::Value;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::invariants::cloud_load_balancers;
use crate::measure::{breaches, summarize};
use crate::report::{MeasurementReport, Sample};
use crate::scenario::Measurement;

const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Clone)]
struct PodTimes {
    created: Duration,
    binding_ready: Option<Duration>,
    in_cloud: Option<Duration>,
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    times: Arc<Mutex<BTreeMap<String, PodTimes>>>,
    namespace: String,
}

#[derive(Default)]
pub(crate) struct Measurements {
    running: BTreeMap<String, Running>,
}

impl Measurements {
    pub fn start(
        &mut self,
        client: &Client,
        def: &Measurement,
        namespace: &str,
        state_url: String,
    ) {
        let namespace = def
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_string());
        let times = Arc::new(Mutex::new(BTreeMap::new()));
        let (stop, mut stopped) = watch::channel(false);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let resource = ApiResource {
            group: "networkextension.bkbcs.tencent.com".into(),
            version: "v1".into(),
            api_version: "networkextension.bkbcs.tencent.com/v1".into(),
            kind: "PortBinding".into(),
            plural: "portbindings".into(),
        };
        let bindings: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &resource);
        let selector = def.selector.clone();
        let shared = times.clone();
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                observe(
                    &pods, &bindings, &http, &state_url, &selector, started, &shared,
                )
                .await;
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stopped.changed() => {
                        observe(&pods, &bindings, &http, &state_url, &selector, started, &shared).await;
                        return;
                    }
                }
            }
        });
        self.running.insert(
            def.name.clone(),
            Running {
                stop,
                task,
                times,
                namespace,
            },
        );
    }

    pub fn stop(&mut self, name: &str) {
        if let Some(running) = self.running.get(name) {
            let _ = running.stop.send(true);
        }
    }

    /// Stops anything still running and summarizes every declared measurement.
    pub async fn finish(&mut self, defs: &[Measurement], scenario: &str) -> Vec<MeasurementReport> {
        let mut reports = Vec::new();
        for def in defs {
            let Some(running) = self.running.remove(&def.name) else {
                reports.push(MeasurementReport {
                    name: def.name.clone(),
                    summary: summarize(&[], 0),
                    breaches: vec!["never started".to_string()],
                    samples: Vec::new(),
                });
                continue;
            };
            let _ = running.stop.send(true);
            let _ = running.task.await;
            let times = running.times.lock().map(|t| t.clone()).unwrap_or_default();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let mut latencies = Vec::new();
            let mut missing = 0;
            let mut samples = Vec::new();
            for (pod, t) in times {
                let latency = t.in_cloud.map(|c| c.saturating_sub(t.created));
                match latency {
                    Some(l) => latencies.push(l),
                    None => missing += 1,
                }
                samples.push(Sample {
                    scenario: scenario.to_string(),
                    measurement: def.name.clone(),
                    namespace: running.namespace.clone(),
                    pod,
                    created_ms: ms(t.created),
                    binding_ready_ms: t.binding_ready.map(ms),
                    target_in_cloud_ms: t.in_cloud.map(ms),
                    latency_ms: latency.map(ms),
                });
            }
            let summary = summarize(&latencies, missing);
            let breaches = breaches(&summary, &def.thresholds);
            reports.push(MeasurementReport {
                name: def.name.clone(),
                summary,
                breaches,
                samples,
            });
        }
        reports
    }
}

async fn observe(
    pods: &Api<Pod>,
    bindings: &Api<DynamicObject>,
    http: &reqwest::Client,
    state_url: &str,
    selector: &str,
    started: Instant,
    times: &Mutex<BTreeMap<String, PodTimes>>,
) {
    let Ok(pod_list) = pods.list(&ListParams::default().labels(selector)).await else {
        return;
    };
    let now = started.elapsed();
    let ready: Vec<String> = bindings
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|b| {
                    b.data.pointer("/status/status").and_then(Value::as_str) == Some("Ready")
                })
                .map(|b| b.name_any())
                .collect()
        })
        .unwrap_or_default();
    let cloud_ips: Vec<String> = match http.get(state_url).send().await {
        Ok(r) => match r.json::<Value>().await {
            Ok(state) => cloud_load_balancers(&state)
                .values()
                .flat_map(|lb| {
                    lb.get("listeners")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .flat_map(|l| {
                    l.get("targets")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|t| t.get("ip").and_then(Value::as_str).map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    let Ok(mut times) = times.lock() else { return };
    for pod in pod_list.items {
        let name = pod.name_any();
        let entry = times.entry(name.clone()).or_insert_with(|| PodTimes {
            created: now,
            ..Default::default()
        });
        if entry.binding_ready.is_none() && ready.contains(&name) {
            entry.binding_ready = Some(now);
        }
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        if entry.in_cloud.is_none() && ip.is_some_and(|ip| cloud_ips.contains(&ip)) {
            entry.in_cloud = Some(now);
        }
    }
}
