//! Per-pod latency between `measure: {start}` and `measure: {stop}`: pod first seen → its
//! PortBinding first seen Ready → its targets first present in fake-clb, on the monotonic clock.
//!
//! Pods and PortBindings are watched (kube-runtime watcher: list, then watch from its
//! resourceVersion, re-list when the watch expires); each event is stamped when it arrives.
//! fake-clb cannot be watched: its request log is polled every 20 ms and the state dump fetched
//! after a registration succeeded, at most every 250 ms (see [`crate::measure::cloud`]).
//!
//! Costs over the same window (see [`crate::measure::perf`]): every request-log entry counts as
//! a cloud call; kube-apiserver's `/metrics` is scraped at start and stop; the controller the
//! harness started is read from `/proc/<pid>` at start, every 250 ms (RSS) and at stop.

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
use crate::env::Environment;
use crate::measure::cloud::{self, CloudTimeline, Expectation};
use crate::measure::machine::load_now;
use crate::measure::perf::{self, ApiScrape, CloudCall, PerfFigures, ProcessFigures};
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

/// Controller RSS sampling period.
const RSS_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
struct PodSeen {
    created: Duration,
    /// First time the pod was seen with condition `Ready=True`.
    ready: Option<Duration>,
    expectation: Option<Expectation>,
}

/// CPU time and RSS of a process at one instant.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    cpu_ticks: u64,
    rss_kb: u64,
}

/// Costs read when the measurement starts.
struct CostStart {
    api: Option<ApiScrape>,
    /// The controller's own write counters.
    controller_writes: Option<BTreeMap<String, f64>>,
    pid: Option<i32>,
    controller: Option<ProcSample>,
    load: Option<f64>,
}

/// Costs read when it stops.
struct CostEnd {
    api: Option<ApiScrape>,
    controller_writes: Option<BTreeMap<String, f64>>,
    controller: Option<ProcSample>,
    peak_rss_kb: u64,
    load: Option<f64>,
}

struct Running {
    stop: watch::Sender<bool>,
    pods: JoinHandle<BTreeMap<String, PodSeen>>,
    bindings: JoinHandle<BTreeMap<String, Duration>>,
    cloud: JoinHandle<(Option<CloudTimeline>, Vec<CloudCall>)>,
    costs: JoinHandle<CostEnd>,
    cost_start: CostStart,
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
    /// Starts the watchers, the fake-clb poller and the cost readers; reads the costs at start
    /// before returning, so the workload applied next is inside the window.
    pub async fn start(&mut self, env: &Environment, def: &Measurement, namespace: &str) {
        let client = &env.client;
        let state_url = env.admin_url(AdminPath::State);
        let namespace = def
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_string());
        let pid = env.controller_pid();
        let controller_metrics = env.controller_metrics_url();
        let cost_start = CostStart {
            api: scrape_apiserver(client).await,
            controller_writes: scrape_controller(controller_metrics.as_deref()).await,
            pid,
            controller: pid.and_then(read_proc),
            load: load_now(),
        };
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
                stopped.clone(),
            )),
            costs: tokio::spawn(watch_costs(
                client.clone(),
                pid,
                controller_metrics,
                stopped,
            )),
            cost_start,
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

    /// Stops anything still running and summarizes every declared measurement; measurements
    /// with `compareTo` are then set against their baseline.
    pub async fn finish(&mut self, defs: &[Measurement], scenario: &str) -> Vec<MeasurementReport> {
        let mut reports = Vec::new();
        for def in defs {
            let Some(running) = self.running.remove(&def.name) else {
                reports.push(MeasurementReport {
                    name: def.name.clone(),
                    summary: summarize(&[], 0),
                    breaches: vec!["never started".to_string()],
                    samples: Vec::new(),
                    perf: None,
                    calls: Vec::new(),
                });
                continue;
            };
            reports.push(summarize_run(def, scenario, running).await);
        }
        compare_with_baselines(defs, &mut reports);
        reports
    }
}

/// Sets each `compareTo` measurement against its baseline's figures.
fn compare_with_baselines(defs: &[Measurement], reports: &mut [MeasurementReport]) {
    for def in defs {
        let Some(target) = &def.compare_to else {
            continue;
        };
        let base = reports
            .iter()
            .find(|r| &r.name == target)
            .and_then(|r| r.perf.clone());
        let me = reports.iter_mut().find(|r| r.name == def.name);
        if let (Some(base), Some(me)) = (base, me)
            && let Some(figures) = me.perf.as_mut()
        {
            perf::compare(figures, &base);
        }
    }
}

/// Stops one measurement's tasks and turns what they saw into its report.
async fn summarize_run(def: &Measurement, scenario: &str, running: Running) -> MeasurementReport {
    let _ = running.stop.send(true);
    let pods = running.pods.await.unwrap_or_default();
    let ready = running.bindings.await.unwrap_or_default();
    let (timeline, calls) = running.cloud.await.unwrap_or_default();
    let cost_end = running.costs.await.ok();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut latencies = Vec::new();
    let mut created = Vec::new();
    let mut arrived = Vec::new();
    let mut missing = 0;
    let mut samples = Vec::new();
    for (pod, seen) in &pods {
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
            binding_ready_ms: ready.get(pod).copied().map(ms),
            pod: pod.clone(),
            created_ms: ms(seen.created),
            ready_ms: seen.ready.map(ms),
            target_in_cloud_ms: in_cloud.map(ms),
            latency_ms: latency.map(ms),
        });
    }
    let mut figures = cost_figures(def, &pods, &calls, &running.cost_start, cost_end.as_ref());
    let mut summary = summarize(&latencies, missing);
    summary.pods_per_second = pods_per_second(&created, &arrived);
    if def.baseline {
        // No cloud end point: the summary is created → Ready.
        summary = figures.ready.clone().unwrap_or(summary);
        summary.pods_per_second = figures.pods_per_second;
    }
    let mut breaches = breaches(&summary, &def.thresholds);
    if timeline.is_none() && !def.baseline {
        breaches.push("fake-clb was never read".to_string());
    }
    figures.baseline = def.baseline;
    figures.compared_to = def.compare_to.clone();
    MeasurementReport {
        name: def.name.clone(),
        summary,
        breaches,
        samples,
        perf: Some(figures),
        calls,
    }
}

/// Created → Ready figures, cloud calls and resource costs of one run.
fn cost_figures(
    def: &Measurement,
    pods: &BTreeMap<String, PodSeen>,
    calls: &[CloudCall],
    start: &CostStart,
    end: Option<&CostEnd>,
) -> PerfFigures {
    let ready: Vec<Duration> = pods
        .values()
        .filter_map(|p| p.ready.map(|r| r.saturating_sub(p.created)))
        .collect();
    let missing = pods.len() - ready.len();
    let last_ready = pods.values().filter_map(|p| p.ready).max();
    let wall = last_ready.filter(|_| missing == 0).map(|d| d.as_secs_f64());
    let mut figures = PerfFigures {
        pods: pods.len(),
        wall_seconds: wall,
        pods_per_second: wall.filter(|w| *w > 0.0).map(|w| pods.len() as f64 / w),
        ready: Some(summarize(&ready, missing)),
        compared_to: def.compare_to.clone(),
        load_start: start.load,
        load_end: end.and_then(|e| e.load),
        ..PerfFigures::default()
    };
    perf::add_cloud_calls(&mut figures, calls);
    if let (Some(before), Some(after)) = (&start.api, end.and_then(|e| e.api.as_ref())) {
        figures.api_writes = perf::counter_delta(&before.writes, &after.writes);
        figures.api_writes_per_pod =
            figures.api_writes.values().sum::<u64>() as f64 / pods.len().max(1) as f64;
        figures.api_reads = (after.reads - before.reads).max(0.0).round() as u64;
        figures.apiserver_cpu_seconds = before
            .cpu_seconds
            .zip(after.cpu_seconds)
            .map(|(b, a)| a - b);
    }
    if let (Some(before), Some(after)) = (
        &start.controller_writes,
        end.and_then(|e| e.controller_writes.as_ref()),
    ) {
        perf::add_controller_writes(&mut figures, perf::counter_delta(before, after));
    }
    figures.controller = process_figures(start, end, pods.len());
    figures
}

fn process_figures(
    start: &CostStart,
    end: Option<&CostEnd>,
    pods: usize,
) -> Option<ProcessFigures> {
    let (pid, first, end) = (start.pid?, start.controller?, end?);
    let last = end.controller?;
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let cpu_seconds = last.cpu_ticks.saturating_sub(first.cpu_ticks) as f64 / ticks;
    let pods = pods.max(1) as f64;
    let mb = |kb: u64| kb as f64 / 1024.0;
    let peak = end.peak_rss_kb.max(last.rss_kb);
    Some(ProcessFigures {
        pid,
        cpu_seconds,
        cpu_ms_per_pod: cpu_seconds * 1000.0 / pods,
        cpu_seconds_per_1000_pods: cpu_seconds * 1000.0 / pods,
        rss_start_mb: mb(first.rss_kb),
        peak_rss_mb: mb(peak),
        rss_growth_mb_per_1000_pods: (mb(peak) - mb(first.rss_kb)) * 1000.0 / pods,
    })
}

/// kube-apiserver's own request counters and CPU time (`GET /metrics` with the harness's
/// credentials); `None` when it cannot be read.
async fn scrape_apiserver(client: &Client) -> Option<ApiScrape> {
    let request = http::Request::get("/metrics").body(Vec::new()).ok()?;
    match client.request_text(request).await {
        Ok(text) => Some(perf::parse_apiserver_metrics(&text)),
        Err(e) => {
            debug!("kube-apiserver /metrics: {e}");
            None
        }
    }
}

/// The controller's own write counters (`None` without a metrics endpoint or when it cannot be read).
async fn scrape_controller(url: Option<&str>) -> Option<BTreeMap<String, f64>> {
    let http = reqwest::Client::builder().no_proxy().build().ok()?;
    let response = http.get(url?).send().await.ok()?.error_for_status().ok()?;
    let text = response.text().await.ok()?;
    Some(perf::parse_controller_writes(&text))
}

/// CPU ticks and RSS of a process, from `/proc`.
fn read_proc(pid: i32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_ticks: perf::parse_stat_cpu_ticks(&stat)?,
        rss_kb: perf::parse_status_kb(&status, "VmRSS")?,
    })
}

/// Samples the controller's RSS every [`RSS_POLL`]; on stop reads its CPU time and scrapes
/// kube-apiserver again.
async fn watch_costs(
    client: Client,
    pid: Option<i32>,
    controller_metrics: Option<String>,
    mut stop: watch::Receiver<bool>,
) -> CostEnd {
    let mut peak_rss_kb = 0;
    let mut tick = tokio::time::interval(RSS_POLL);
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            _ = tick.tick() => {}
        }
        if let Some(sample) = pid.and_then(read_proc) {
            peak_rss_kb = peak_rss_kb.max(sample.rss_kb);
        }
    }
    let controller = pid.and_then(read_proc);
    CostEnd {
        api: scrape_apiserver(&client).await,
        controller_writes: scrape_controller(controller_metrics.as_deref()).await,
        controller,
        peak_rss_kb,
        load: load_now(),
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
        let is_ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let entry = seen.entry(pod.name_any()).or_insert(PodSeen {
            created,
            ready: None,
            expectation: None,
        });
        if expectation.is_some() {
            entry.expectation = expectation;
        }
        if is_ready && entry.ready.is_none() {
            entry.ready = Some(now);
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

/// Polls the request log every [`LOG_POLL`] (keeping every call made since `anchor`); fetches
/// the state dump after a logged registration (no more often than [`DUMP_GAP`]), every
/// [`STATE_FALLBACK`] otherwise, and once more on stop. No timeline if no dump could ever be
/// read.
async fn poll_cloud(
    http: reqwest::Client,
    state_url: String,
    requests_url: String,
    started: Instant,
    anchor: chrono::DateTime<Utc>,
    mut stop: watch::Receiver<bool>,
) -> (Option<CloudTimeline>, Vec<CloudCall>) {
    let mut timeline = CloudTimeline::new(anchor);
    let mut calls = Vec::new();
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
                calls.extend(perf::cloud_calls(&entries, anchor));
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
    (read_any.then_some(timeline), calls)
}
