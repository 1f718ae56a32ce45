//! Per-pod latency between `measure: {start}` and `measure: {stop}`: pod first seen → its
//! PortBinding first seen Ready → its targets first present in fake-clb, on the monotonic clock.
//!
//! Pods and PortBindings are watched (kube-runtime watcher: list, then watch from its
//! resourceVersion, re-list when the watch expires); each event is stamped when it arrives.
//! fake-clb cannot be watched: its request log is polled every 20 ms and the state dump fetched
//! after a registration succeeded, at most every 250 ms (see [`crate::measure::cloud`]).

use fake_clb::admin_api::AdminPath;
use std::collections::BTreeMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

use super::invariants::cloud_load_balancers;
use crate::measure::cloud::{self, CloudTimeline, Expectation};
use crate::measure::{breaches, pods_per_second, summarize};
use crate::report::{MeasurementReport, Sample};
use crate::scenario::Measurement;

/// Request-log poll interval.
const LOG_POLL: Duration = Duration::from_millis(20);
/// State dumps at most this often: at 1,000 listeners a dump is ~450 kB and takes fake-clb
/// 0.1–0.2 s on a loaded 2-core machine. Logged registrations keep their own times, so this
/// costs no resolution; it only delays the confirmation.
const DUMP_GAP: Duration = Duration::from_millis(250);
/// A state dump at least this often even without a logged registration (changes the log does
/// not explain, e.g. a fake-clb restart that reset the sequence numbers).
const STATE_FALLBACK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct PodSeen {
    created: Duration,
    expectation: Option<Expectation>,
}

struct Running {
    stop: watch::Sender<bool>,
    pods: JoinHandle<BTreeMap<String, PodSeen>>,
    bindings: JoinHandle<BTreeMap<String, Duration>>,
    cloud: JoinHandle<Option<CloudTimeline>>,
    namespace: String,
}

#[derive(Default)]
pub(crate) struct Measurements {
    running: BTreeMap<String, Running>,
}

fn portbinding_resource() -> ApiResource {
    ApiResource {
        group: "networkextension.bkbcs.tencent.com".into(),
        version: "v1".into(),
        api_version: "networkextension.bkbcs.tencent.com/v1".into(),
        kind: "PortBinding".into(),
        plural: "portbindings".into(),
    }
}

impl Measurements {
    /// Starts the watchers and the fake-clb poller. `state_url` is fake-clb's
    /// `AdminPath::State`; the request log (`AdminPath::Requests`) is read next to it.
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
        let (stop, stopped) = watch::channel(false);
        let started = Instant::now();
        let anchor = Utc::now();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let bindings: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &portbinding_resource());
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let requests_url = state_url
            .strip_suffix(AdminPath::State.as_str())
            .map(|base| format!("{base}{}", AdminPath::Requests.as_str()))
            .unwrap_or_default();
        let running = Running {
            pods: tokio::spawn(watch_pods(
                pods,
                def.selector.clone(),
                started,
                stopped.clone(),
            )),
            bindings: tokio::spawn(watch_bindings(bindings, started, stopped.clone())),
            cloud: tokio::spawn(poll_cloud(
                http,
                state_url,
                requests_url,
                started,
                anchor,
                stopped,
            )),
            stop,
            namespace,
        };
        // A second start of the same name replaces the first; stop the old tasks.
        if let Some(old) = self.running.insert(def.name.clone(), running) {
            let _ = old.stop.send(true);
        }
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
            let pods = running.pods.await.unwrap_or_default();
            let ready = running.bindings.await.unwrap_or_default();
            let timeline = running.cloud.await.ok().flatten();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let mut latencies = Vec::new();
            let mut created = Vec::new();
            let mut arrived = Vec::new();
            let mut missing = 0;
            let mut samples = Vec::new();
            for (pod, seen) in pods {
                let in_cloud = match (&seen.expectation, &timeline) {
                    (Some(e), Some(t)) => e.met_at(t),
                    _ => None,
                };
                let latency = in_cloud.map(|c| c.saturating_sub(seen.created));
                created.push(seen.created);
                match (latency, in_cloud) {
                    (Some(l), Some(c)) => {
                        latencies.push(l);
                        arrived.push(c);
                    }
                    _ => missing += 1,
                }
                samples.push(Sample {
                    scenario: scenario.to_string(),
                    measurement: def.name.clone(),
                    namespace: running.namespace.clone(),
                    binding_ready_ms: ready.get(&pod).copied().map(ms),
                    pod,
                    created_ms: ms(seen.created),
                    target_in_cloud_ms: in_cloud.map(ms),
                    latency_ms: latency.map(ms),
                });
            }
            let mut summary = summarize(&latencies, missing);
            summary.pods_per_second = pods_per_second(&created, &arrived);
            let mut breaches = breaches(&summary, &def.thresholds);
            if timeline.is_none() {
                breaches.push("fake-clb was never read".to_string());
            }
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

/// True once `stop` says so (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if *stop.borrow_and_update() {
        return;
    }
    while stop.changed().await.is_ok() {
        if *stop.borrow_and_update() {
            return;
        }
    }
}

/// Pods matching the selector: first sighting, and what "in cloud" means for each (from the
/// latest version that has an IP). Pods of the first listing count as seen at the start: they
/// were created before the listing came back, and the earlier time errs on the long side.
async fn watch_pods(
    api: Api<Pod>,
    selector: String,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> BTreeMap<String, PodSeen> {
    let mut seen: BTreeMap<String, PodSeen> = BTreeMap::new();
    let mut first_listing = true;
    let mut events =
        pin!(watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff());
    loop {
        let event = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            event = events.next() => event,
        };
        let now = started.elapsed();
        let pod = match event {
            Some(Ok(Event::Apply(pod))) => pod,
            Some(Ok(Event::InitApply(pod))) => pod,
            Some(Ok(Event::InitDone)) => {
                first_listing = false;
                continue;
            }
            Some(Ok(Event::Init | Event::Delete(_))) => continue,
            Some(Err(e)) => {
                debug!("measurement pod watch: {e}");
                continue;
            }
            None => break,
        };
        let created = if first_listing { Duration::ZERO } else { now };
        let expectation = serde_json::to_value(&pod)
            .ok()
            .and_then(|v| cloud::expectation(&v));
        let entry = seen.entry(pod.name_any()).or_insert(PodSeen {
            created,
            expectation: None,
        });
        if expectation.is_some() {
            entry.expectation = expectation;
        }
    }
    seen
}

/// PortBindings of the namespace: first time each was seen with `status.status: Ready`.
async fn watch_bindings(
    api: Api<DynamicObject>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> BTreeMap<String, Duration> {
    let mut ready = BTreeMap::new();
    let mut events = pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    loop {
        let event = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            event = events.next() => event,
        };
        let now = started.elapsed();
        match event {
            Some(Ok(Event::Apply(b) | Event::InitApply(b))) => {
                if b.data.pointer("/status/status").and_then(Value::as_str) == Some("Ready") {
                    ready.entry(b.name_any()).or_insert(now);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => debug!("measurement PortBinding watch: {e}"),
            None => break,
        }
    }
    ready
}

/// Reads a JSON answer of fake-clb's control API; the instant is taken when the body arrived.
async fn get_json(
    http: &reqwest::Client,
    url: &str,
    started: Instant,
) -> Option<(Value, Duration)> {
    let response = http.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().await.ok()?;
    let at = started.elapsed();
    serde_json::from_slice(&body).ok().map(|v| (v, at))
}

/// Polls the request log every [`LOG_POLL`]; fetches the state dump after a logged
/// registration (no more often than [`DUMP_GAP`]), every [`STATE_FALLBACK`] otherwise, and
/// once more on stop. `None` if no dump could ever be read.
async fn poll_cloud(
    http: reqwest::Client,
    state_url: String,
    requests_url: String,
    started: Instant,
    anchor: chrono::DateTime<Utc>,
    mut stop: watch::Receiver<bool>,
) -> Option<CloudTimeline> {
    let mut timeline = CloudTimeline::new(anchor);
    let mut read_any = false;
    let mut since = 0u64;
    let mut last_dump: Option<Instant> = None;
    let mut due = false;
    let mut tick = tokio::time::interval(LOG_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            biased;
            _ = stopped(&mut stop) => true,
            _ = tick.tick() => false,
        };
        if !requests_url.is_empty() {
            let url = format!("{requests_url}?since={since}");
            if let Some((Value::Array(entries), _)) = get_json(&http, &url, started).await {
                let (seq, registrations) = cloud::registrations(&entries);
                if let Some(seq) = seq {
                    since = since.max(seq);
                }
                if !registrations.is_empty() {
                    timeline.note(&registrations);
                    due = true;
                }
            }
        }
        let since_dump = last_dump.map(|t| t.elapsed());
        let dump =
            stopping || since_dump.is_none_or(|d| d >= STATE_FALLBACK || (due && d >= DUMP_GAP));
        if dump {
            let sent = started.elapsed();
            if let Some((state, at)) = get_json(&http, &state_url, started).await {
                let lbs = cloud_load_balancers(&state);
                timeline.observe(&cloud::snapshot(lbs.values()), sent, at);
                read_any = true;
                due = false;
                last_dump = Some(Instant::now());
            }
        }
        if stopping {
            break;
        }
    }
    read_any.then_some(timeline)
}
