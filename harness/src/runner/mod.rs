//! Runs scenarios against an `Environment`: per scenario a fresh namespace and a reset cloud,
//! steps with try/catch/finally, invariants after each step and at the end, measurements.

pub mod invariants;
mod measure;
mod ops;
mod uids;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use tracing::info;

use crate::env::{EnvOptions, Environment};
use crate::error::Result;
use crate::report::{self, Failure, RunReport, ScenarioReport, StepReport};
use crate::scenario::{self, LoadedScenario, Operation, Step, TimeoutKind};
use fake_clb::admin_api::StateQuery;
use fake_clb::admin_client::AdminClient;

pub use self::ops::OpFailure;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub env: EnvOptions,
    pub report_dir: PathBuf,
    /// Leave the environment and the scenario namespaces in place.
    pub keep: bool,
    /// Also write the measurements as dated benchmark results here (`benches/results`).
    pub results_dir: Option<PathBuf>,
}

/// Progress output: an indicatif bar on a terminal, plain lines otherwise (or with CI=true).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let bar = (!ci && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Progress { bar }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn step(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }

    fn advance(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Loads every scenario, runs the valid ones in one environment and writes the reports.
pub async fn run(paths: &[PathBuf], options: &RunOptions) -> Result<RunReport> {
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut loaded: Vec<std::result::Result<LoadedScenario, ScenarioReport>> = Vec::new();
    for file in scenario::discover(paths)? {
        loaded.push(scenario::load(&file).map_err(|e| invalid_file_report(&file, &e)));
    }
    let total_steps: usize = loaded
        .iter()
        .filter_map(|l| l.as_ref().ok())
        .map(|l| l.scenario.steps.len())
        .sum();
    let progress = Progress::new(total_steps as u64);
    let mut reports = Vec::new();
    let first_cloud = loaded
        .iter()
        .find_map(|l| l.as_ref().ok())
        .map(|l| l.scenario.cloud.clone());
    let mut env = match first_cloud {
        Some(cloud) => match Environment::start(options.env.clone(), cloud).await {
            Ok(env) => Some(env),
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        },
        None => None,
    };
    for item in loaded {
        match item {
            Err(report) => {
                progress.line(&format!(
                    "FAIL {}: {}",
                    report.file.display(),
                    report.error.as_deref().unwrap_or("")
                ));
                reports.push(report);
            }
            Ok(loaded) => {
                let Some(env) = env.as_mut() else { continue };
                let report = run_scenario(env, &loaded, options, &progress).await;
                progress.line(&format!(
                    "{} {} ({:.1}s)",
                    if report.passed() { "PASS" } else { "FAIL" },
                    report.name,
                    report.seconds
                ));
                reports.push(report);
            }
        }
    }
    progress.finish();
    if let Some(env) = env {
        if options.keep {
            let path = env.detach();
            info!("--keep: environment left running; see {}", path.display());
        } else {
            env.stop(true).await;
        }
    }
    let run = RunReport {
        started,
        scenarios: reports,
    };
    report::write_all(&options.report_dir, &run)?;
    if let Some(dir) = &options.results_dir
        && let Some(path) = report::write_results_dir(dir, &run)?
    {
        progress.line(&format!("benchmark results: {}", path.display()));
    }
    Ok(run)
}

/// The report of a scenario file that did not load (it fails the run without running).
fn invalid_file_report(file: &Path, error: &crate::Error) -> ScenarioReport {
    ScenarioReport {
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file: file.to_path_buf(),
        namespace: String::new(),
        seconds: 0.0,
        steps: Vec::new(),
        invariant_failures: Vec::new(),
        measurements: Vec::new(),
        error: Some(error.to_string()),
    }
}

/// State of one scenario while it runs.
pub(crate) struct Ctx<'a> {
    pub env: &'a mut Environment,
    pub scenario: &'a LoadedScenario,
    pub namespace: String,
    pub measurements: measure::Measurements,
    /// Output of collector operations (`events`, `dump`, `controllerLog`) for the step log.
    pub notes: Vec<String>,
}

async fn run_scenario(
    env: &mut Environment,
    loaded: &LoadedScenario,
    options: &RunOptions,
    progress: &Progress,
) -> ScenarioReport {
    let started = Instant::now();
    let scenario = &loaded.scenario;
    let suffix: String = uuid_suffix();
    let namespace = format!("{}-{suffix}", scenario.metadata.name);
    let mut report = ScenarioReport {
        name: scenario.metadata.name.clone(),
        file: loaded.path.clone(),
        namespace: namespace.clone(),
        seconds: 0.0,
        steps: Vec::new(),
        invariant_failures: Vec::new(),
        measurements: Vec::new(),
        error: None,
    };
    progress.line(&format!(
        "RUN  {} ({}) in namespace {namespace}",
        scenario.metadata.name,
        loaded.path.display()
    ));
    if let Err(e) = prepare(env, &scenario.cloud, &namespace).await {
        report.error = Some(e.to_string());
        report.seconds = started.elapsed().as_secs_f64();
        return report;
    }
    let mut ctx = Ctx {
        env,
        scenario: loaded,
        namespace: namespace.clone(),
        measurements: measure::Measurements::default(),
        notes: Vec::new(),
    };
    let monitor = InvariantMonitor::start(ctx.env, &scenario.invariants);
    for step in &scenario.steps {
        progress.step(&format!("{} / {}", scenario.metadata.name, step.name));
        let step_report = run_checked_step(&mut ctx, step, &mut report).await;
        progress.line(&step_line(step, &step_report));
        progress.advance();
        report.steps.push(step_report);
    }
    if let Some(monitor) = monitor {
        report.invariant_failures.extend(
            monitor
                .finish()
                .await
                .into_iter()
                .map(|v| format!("during the steps: {v}")),
        );
    }
    finish_scenario(&mut ctx, &mut report, options.keep).await;
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Runs a step, then the invariants; a violation fails a step that passed.
async fn run_checked_step(
    ctx: &mut Ctx<'_>,
    step: &Step,
    report: &mut ScenarioReport,
) -> StepReport {
    let mut step_report = run_step(ctx, step).await;
    let violations = check_invariants(ctx, false).await;
    if !violations.is_empty() {
        report.invariant_failures.extend(
            violations
                .iter()
                .map(|v| format!("after step {:?}: {v}", step.name)),
        );
        if step_report.failure.is_none() {
            step_report.failure = Some(Failure {
                message: "invariant violated after the step".to_string(),
                detail: violations.join("\n"),
            });
        }
    }
    step_report
}

/// The progress line of a finished step, with the failure and its detail.
fn step_line(step: &Step, step_report: &StepReport) -> String {
    format!(
        "  {} {} ({:.1}s){}",
        if step_report.failure.is_none() {
            "ok  "
        } else {
            "FAIL"
        },
        step.name,
        step_report.seconds,
        step_report
            .failure
            .as_ref()
            .map(|f| format!("\n{}\n{}", f.message, indent(&f.detail)))
            .unwrap_or_default()
    )
}

/// After the steps: the end-of-scenario invariants, the measurements and (unless `keep`) the
/// teardown with its clean-up check.
async fn finish_scenario(ctx: &mut Ctx<'_>, report: &mut ScenarioReport, keep: bool) {
    let loaded: &LoadedScenario = ctx.scenario;
    let scenario = &loaded.scenario;
    report.invariant_failures.extend(
        check_invariants(ctx, true)
            .await
            .into_iter()
            .map(|v| format!("at the end: {v}")),
    );
    report.measurements = ctx
        .measurements
        .finish(&scenario.measurements, &scenario.metadata.name)
        .await;
    if !keep {
        let check = scenario.invariants.clean_teardown;
        let limit =
            scenario::effective_timeout(None, None, &scenario.timeouts, TimeoutKind::Teardown);
        report.invariant_failures.extend(
            teardown(ctx.env, &ctx.namespace, check, limit)
                .await
                .into_iter()
                .map(|v| format!("teardown: {v}")),
        );
    }
}

/// Deletes the scenario's namespace in a healthy environment (fake-clb running, faults cleared,
/// controller running, since its webhooks fail closed) and, with `check`, waits until the namespace is gone
/// and fake-clb holds no listener, for at most `limit`: the controller must clean up after every object it
/// created. Returns the problems found.
async fn teardown(
    env: &mut Environment,
    namespace: &str,
    check: bool,
    limit: std::time::Duration,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = env.start_fake_clb().await {
        problems.push(format!("starting fake-clb for teardown: {e}"));
    }
    if let Err(e) = env.admin.clear_faults().await {
        problems.push(format!("clearing faults: {e}"));
    }
    if env.controller_available()
        && !env.controller_running()
        && let Err(e) = env.start_controller().await
    {
        problems.push(format!("restarting the controller for teardown: {e}"));
    }
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    if let Err(e) = namespaces
        .delete(namespace, &DeleteParams::background())
        .await
    {
        problems.push(format!("deleting namespace {namespace}: {e}"));
        return problems;
    }
    if !check {
        return problems;
    }
    let deadline = Instant::now() + limit;
    let mut left: Vec<String> = vec![format!("namespace {namespace}")];
    while Instant::now() < deadline {
        left = match namespaces.get_opt(namespace).await {
            Ok(Some(_)) => vec![format!("namespace {namespace}")],
            Ok(None) => match env.admin.state_json(&StateQuery::default()).await {
                Ok(state) => invariants::cloud_load_balancers(&state)
                    .iter()
                    .flat_map(|(id, lb)| {
                        lb.get("listeners")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(move |l| {
                                format!(
                                    "listener {id} {} {}",
                                    l.get("protocol").and_then(Value::as_str).unwrap_or("?"),
                                    l.get("port").map(Value::to_string).unwrap_or_default()
                                )
                            })
                    })
                    .collect(),
                Err(e) => vec![format!("reading fake-clb: {e}")],
            },
            Err(e) => vec![format!("reading namespace {namespace}: {e}")],
        };
        if left.is_empty() {
            return problems;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    problems.push(format!(
        "still present {}s after deleting the namespace: {}",
        limit.as_secs(),
        left.join(", ")
    ));
    problems
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("{:05x}", (nanos ^ std::process::id()) & 0xfffff)
}

async fn prepare(
    env: &mut Environment,
    cloud: &scenario::CloudSetup,
    namespace: &str,
) -> Result<()> {
    env.prepare_cloud(cloud).await?;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": namespace, "labels": { "clb-harness/scenario": "true" } }
    }))
    .map_err(|e| crate::Error::Serialize {
        what: "namespace",
        reason: e.to_string(),
    })?;
    namespaces.create(&PostParams::default(), &ns).await?;
    // Pods need the default ServiceAccount, which the controller manager adds shortly after.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(env.client.clone(), namespace);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while accounts.get_opt("default").await?.is_none() {
        if Instant::now() >= deadline {
            return Err(crate::Error::Timeout {
                what: format!("ServiceAccount default in {namespace}"),
                seconds: 30,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn run_step(ctx: &mut Ctx<'_>, step: &Step) -> StepReport {
    let started = Instant::now();
    let mut log = Vec::new();
    let mut failure: Option<Failure> = None;
    for (i, op) in step.try_ops.iter().enumerate() {
        if let Err(f) = run_logged(ctx, step, op, &format!("try[{i}]"), &mut log).await {
            failure = Some(f);
            break;
        }
    }
    if failure.is_some() {
        for (i, op) in step.catch_ops.iter().enumerate() {
            let _ = run_logged(ctx, step, op, &format!("catch[{i}]"), &mut log).await;
        }
    }
    for (i, op) in step.finally_ops.iter().enumerate() {
        if let Err(f) = run_logged(ctx, step, op, &format!("finally[{i}]"), &mut log).await
            && failure.is_none()
        {
            failure = Some(f);
        }
    }
    StepReport {
        name: step.name.clone(),
        seconds: started.elapsed().as_secs_f64(),
        failure,
        log,
    }
}

async fn run_logged(
    ctx: &mut Ctx<'_>,
    step: &Step,
    op: &Operation,
    label: &str,
    log: &mut Vec<String>,
) -> std::result::Result<(), Failure> {
    let started = Instant::now();
    let op = expand(op, &ctx.namespace);
    let result = match uids::resolve(&ctx.env.client, &ctx.namespace, &op).await {
        Ok(op) => ops::run(ctx, step, &op).await,
        Err(f) => Err(f),
    };
    let seconds = started.elapsed().as_secs_f64();
    log.append(&mut ctx.notes);
    match result {
        Ok(()) => {
            log.push(format!("{label} {}: ok ({seconds:.2}s)", op.kind_name()));
            Ok(())
        }
        Err(f) => {
            log.push(format!(
                "{label} {}: FAILED ({seconds:.2}s)",
                op.kind_name()
            ));
            Err(Failure {
                message: format!("{label} {}: {}", op.kind_name(), f.message),
                detail: f.detail,
            })
        }
    }
}

/// Replaces `${namespace}` in every string of the operation.
fn expand(op: &Operation, namespace: &str) -> Operation {
    fn walk(value: &mut Value, namespace: &str) {
        match value {
            Value::String(s) if s.contains("${namespace}") => {
                *s = s.replace("${namespace}", namespace);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, namespace)),
            Value::Object(map) => map.values_mut().for_each(|v| walk(v, namespace)),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(op) else {
        return op.clone();
    };
    walk(&mut value, namespace);
    serde_json::from_value(value).unwrap_or_else(|_| op.clone())
}

/// Runs the enabled invariants once; `end` adds the orphan check.
async fn check_invariants(ctx: &mut Ctx<'_>, end: bool) -> Vec<String> {
    let inv = &ctx.scenario.scenario.invariants;
    if !(inv.unique_ports || inv.ready_bindings_in_cloud || (end && inv.no_orphans)) {
        return Vec::new();
    }
    match invariant_snapshot(&ctx.env.client, &ctx.env.admin).await {
        Ok((pods, bindings, listeners, state)) => {
            let mut out = Vec::new();
            if inv.unique_ports {
                out.extend(invariants::duplicate_ports(&pods));
            }
            if inv.ready_bindings_in_cloud {
                out.extend(invariants::ready_bindings_missing_in_cloud(
                    &bindings, &pods, &state,
                ));
            }
            if end && inv.no_orphans {
                out.extend(invariants::orphans(&listeners, &pods, &state));
            }
            out
        }
        Err(e) => vec![format!("could not read the state for invariants: {e}")],
    }
}

type Snapshot = (Vec<Value>, Vec<Value>, Vec<Value>, Value);

async fn invariant_snapshot(client: &kube::Client, admin: &AdminClient) -> Result<Snapshot> {
    let all = |api_version: &str, kind: &str| scenario::ResourceRef {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: None,
        namespace: None,
        selector: None,
    };
    let list_all = |r: scenario::ResourceRef| async move {
        let (resource, _) = crate::kubeops::resolve(client, &r.api_version, &r.kind).await?;
        let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
        let items = api.list(&Default::default()).await?.items;
        Ok::<Vec<Value>, crate::Error>(
            items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect(),
        )
    };
    let pods = list_all(all("v1", "Pod")).await?;
    let group = "networkextension.bkbcs.tencent.com/v1";
    let bindings = list_all(all(group, "PortBinding")).await?;
    let listeners = list_all(all(group, "Listener")).await?;
    let state = admin.state_json(&StateQuery::default()).await?;
    Ok((pods, bindings, listeners, state))
}

/// Default period of the continuous invariant checks.
const INVARIANT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks `uniquePorts` and `readyBindingsInCloud` in the background while the steps run. The
/// pods, PortBindings and fake-clb are read one after another, so a violation counts only when
/// two consecutive checks both see it (a binding read just before its pod was deleted is not
/// one). `interval: 0s` turns it off.
struct InvariantMonitor {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::collections::BTreeSet<String>>,
}

impl InvariantMonitor {
    fn start(env: &Environment, inv: &scenario::Invariants) -> Option<InvariantMonitor> {
        let interval = inv.interval.map(|i| i.get()).unwrap_or(INVARIANT_INTERVAL);
        if interval.is_zero() || !(inv.unique_ports || inv.ready_bindings_in_cloud) {
            return None;
        }
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (client, admin) = (env.client.clone(), env.admin.clone());
        let (unique, ready) = (inv.unique_ports, inv.ready_bindings_in_cloud);
        let task = tokio::spawn(async move {
            let mut previous = std::collections::BTreeSet::new();
            let mut persistent = std::collections::BTreeSet::new();
            loop {
                tokio::select! {
                    _ = stopped.changed() => return persistent,
                    _ = tokio::time::sleep(interval) => {}
                }
                let Ok((pods, bindings, _, state)) = invariant_snapshot(&client, &admin).await
                else {
                    continue;
                };
                let mut current = std::collections::BTreeSet::new();
                if unique {
                    current.extend(invariants::duplicate_ports(&pods));
                }
                if ready {
                    current.extend(invariants::ready_bindings_missing_in_cloud(
                        &bindings, &pods, &state,
                    ));
                }
                persistent.extend(current.intersection(&previous).cloned());
                previous = current;
            }
        });
        Some(InvariantMonitor { stop, task })
    }

    /// Stops the checks; returns the violations seen by two consecutive checks.
    async fn finish(self) -> Vec<String> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(found) => found.into_iter().collect(),
            Err(e) => vec![format!("invariant monitor failed: {e}")],
        }
    }
}

/// Where `run` writes reports by default: `reports/<UTC timestamp>`.
pub fn default_report_dir() -> PathBuf {
    Path::new("reports").join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
}
