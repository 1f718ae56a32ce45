//! The scenario file format (`scenarios/**/*.yaml`): types, loading and validation.
//!
//! Loading is strict (unknown keys are errors) and every error names the file and, where serde
//! knows it, the line and column, so a typo fails before anything touches the cluster.
//! `scenarios/README.md` documents the format; `scenarios/scenario.schema.json` is generated
//! from these types (`clb-harness schema`) and a test fails if it drifts.

pub mod duration;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use fake_clb::admin_api::{AccountConfig, Effect, FaultRule, LimitsPatch};

pub use self::duration::HumanDuration;
use crate::error::{Error, Result};

/// One scenario file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub api_version: ApiVersion,
    pub kind: ScenarioKind,
    pub metadata: Metadata,
    /// The fake cloud: accounts, load balancers, limits and faults present from the start.
    #[serde(default)]
    pub cloud: CloudSetup,
    /// Defaults per operation kind; a step's `timeouts` and an operation's `timeout` override them.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Checks run continuously during the scenario (all on by default).
    #[serde(default)]
    pub invariants: Invariants,
    /// Latency measurements, started and stopped by `measure` operations.
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "clb-harness/v1alpha1")]
    V1Alpha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScenarioKind {
    Scenario,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Lower-case letters, digits and `-`; used in namespace names and report file names.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Rendered into a fake-clb config (`crate::env::fake_clb_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudSetup {
    /// Region the controller treats as its default.
    #[serde(default = "default_region")]
    pub region: String,
    /// Seeds fault probabilities and generated ids.
    #[serde(default)]
    pub seed: Option<u64>,
    /// fake-clb's accounts; default one test account (`appId` 1250000001).
    #[serde(default = "default_accounts")]
    pub accounts: Vec<AccountConfig>,
    #[serde(default = "default_load_balancers")]
    pub load_balancers: Vec<LoadBalancer>,
    /// fake-clb's `limits`; unset keys keep fake-clb's defaults.
    #[serde(default)]
    pub limits: LimitsPatch,
    /// fake-clb fault rules installed at start (and again after each reset); the first
    /// matching rule fires.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// fake-clb keeps its state in a file (`<state-dir>/fake-clb-state.json`, new for the
    /// scenario), so a `fakeClb` start after a stop or kill resumes the cloud as it was.
    #[serde(default, skip_serializing_if = "is_false")]
    pub persist_state: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Default for CloudSetup {
    fn default() -> Self {
        CloudSetup {
            region: default_region(),
            seed: None,
            accounts: default_accounts(),
            load_balancers: default_load_balancers(),
            limits: LimitsPatch::default(),
            faults: Vec::new(),
            persist_state: false,
        }
    }
}

pub const DEFAULT_REGION: &str = "ap-guangzhou";
pub const DEFAULT_SECRET_ID: &str = "AKIDharnessexample0000";
/// A test credential for the fake cloud only.
pub const DEFAULT_SECRET_KEY: &str = "harness-fake-secret-key";

fn default_region() -> String {
    DEFAULT_REGION.to_string()
}

fn default_accounts() -> Vec<AccountConfig> {
    vec![AccountConfig {
        secret_id: DEFAULT_SECRET_ID.to_string(),
        secret_key: DEFAULT_SECRET_KEY.to_string(),
        app_id: 1_250_000_001,
    }]
}

fn default_load_balancers() -> Vec<LoadBalancer> {
    (1..=2)
        .map(|i| LoadBalancer {
            id: format!("lb-harness{i}"),
            secret_id: None,
            region: None,
            name: format!("harness-lb-{i}"),
            lb_type: "OPEN".to_string(),
            vips: vec![format!("10.200.0.{i}")],
        })
        .collect()
}

/// A load balancer that exists (running, no listeners) when the scenario starts. Rendered into
/// fake-clb's `LoadBalancerConfig`; owner and region default to the scenario's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    pub id: String,
    /// Owner account; default the first account.
    #[serde(default)]
    pub secret_id: Option<String>,
    /// Default `cloud.region`.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub name: String,
    /// `OPEN` or `INTERNAL`.
    #[serde(default = "default_lb_type", rename = "type")]
    pub lb_type: String,
    pub vips: Vec<String>,
}

fn default_lb_type() -> String {
    "OPEN".to_string()
}

/// Timeouts per operation kind. Unset keys inherit (operation → step → scenario → built-in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// apply, patch, scale (built-in 15s).
    #[serde(default)]
    pub apply: Option<HumanDuration>,
    /// delete, including waiting until the objects are gone (built-in 60s).
    #[serde(default)]
    pub delete: Option<HumanDuration>,
    /// wait (built-in 60s).
    #[serde(default)]
    pub wait: Option<HumanDuration>,
    /// assert and assertCloud (built-in 30s).
    #[serde(default)]
    pub assert: Option<HumanDuration>,
    /// error without `window`: how long the object may take to stop matching (built-in 10s).
    #[serde(default)]
    pub error: Option<HumanDuration>,
    /// injectFaults, clearFaults, setLimits and controller actions (built-in 30s).
    #[serde(default)]
    pub control: Option<HumanDuration>,
    /// The teardown: from deleting the namespace until it and every cloud listener are gone (built-in 120s;
    /// only the scenario-level value counts).
    #[serde(default)]
    pub teardown: Option<HumanDuration>,
}

/// Which `Timeouts` entry an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Apply,
    Delete,
    Wait,
    Assert,
    Error,
    Control,
    Teardown,
}

impl Timeouts {
    fn get(&self, kind: TimeoutKind) -> Option<HumanDuration> {
        match kind {
            TimeoutKind::Apply => self.apply,
            TimeoutKind::Delete => self.delete,
            TimeoutKind::Wait => self.wait,
            TimeoutKind::Assert => self.assert,
            TimeoutKind::Error => self.error,
            TimeoutKind::Control => self.control,
            TimeoutKind::Teardown => self.teardown,
        }
    }

    pub fn builtin(kind: TimeoutKind) -> Duration {
        Duration::from_secs(match kind {
            TimeoutKind::Apply => 15,
            TimeoutKind::Delete => 60,
            TimeoutKind::Wait => 60,
            TimeoutKind::Assert => 30,
            TimeoutKind::Error => 10,
            TimeoutKind::Control => 30,
            TimeoutKind::Teardown => 120,
        })
    }
}

/// The timeout an operation runs with: its own, else the step's, else the scenario's, else built-in.
pub fn effective_timeout(
    op: Option<HumanDuration>,
    step: Option<&Timeouts>,
    scenario: &Timeouts,
    kind: TimeoutKind,
) -> Duration {
    op.or_else(|| step.and_then(|t| t.get(kind)))
        .or_else(|| scenario.get(kind))
        .map(HumanDuration::get)
        .unwrap_or_else(|| Timeouts::builtin(kind))
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Invariants {
    /// No `(load balancer, protocol, port)` held by two pods (pod annotation
    /// `poolbindings.portpool.networkextension.bkbcs.tencent.com`).
    #[serde(default = "yes")]
    pub unique_ports: bool,
    /// Every Ready PortBinding has its targets in fake-clb.
    #[serde(default = "yes")]
    pub ready_bindings_in_cloud: bool,
    /// At the end: no listener or target in fake-clb that no object accounts for.
    #[serde(default = "yes")]
    pub no_orphans: bool,
    /// After the scenario's namespace is deleted (faults cleared, controller running): the
    /// namespace goes within 2 minutes and fake-clb is left with no listener.
    #[serde(default = "yes")]
    pub clean_teardown: bool,
    /// Period of the background checks of `uniquePorts` and `readyBindingsInCloud` while the
    /// steps run (default 2s; `0s` turns them off).
    #[serde(default)]
    pub interval: Option<HumanDuration>,
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants {
            unique_ports: true,
            ready_bindings_in_cloud: true,
            no_orphans: true,
            clean_teardown: true,
            interval: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// Pod created → PortBinding Ready → pod IP present as a target in fake-clb, per pod.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Measurement {
    pub name: String,
    /// Label selector of the pods measured.
    pub selector: String,
    /// Default: the scenario namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Pods without ports, measured created → Ready only (no cloud end point): the bare control
    /// plane that `compareTo` measurements are set against.
    #[serde(default)]
    pub baseline: bool,
    /// A `baseline: true` measurement of the same scenario: the report gives this run's wall
    /// time as a ratio to it and the API-server writes beyond it as the controller's.
    #[serde(default)]
    pub compare_to: Option<String>,
}

/// Upper bounds on the pod-created → target-in-cloud latency; a breach fails the scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default)]
    pub p50: Option<HumanDuration>,
    #[serde(default)]
    pub p90: Option<HumanDuration>,
    #[serde(default)]
    pub p99: Option<HumanDuration>,
    #[serde(default)]
    pub max: Option<HumanDuration>,
    /// Share of pods (0..1) allowed to miss an end point; default 0.
    #[serde(default)]
    pub max_missing_ratio: Option<f64>,
}

/// A step: `try` in order; on the first failure `catch` runs; `finally` always runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    #[serde(rename = "try", with = "serde_yaml::with::singleton_map_recursive")]
    #[schemars(with = "Vec<Operation>")]
    pub try_ops: Vec<Operation>,
    #[serde(
        default,
        rename = "catch",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    #[schemars(with = "Vec<Operation>")]
    pub catch_ops: Vec<Operation>,
    #[serde(
        default,
        rename = "finally",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    #[schemars(with = "Vec<Operation>")]
    pub finally_ops: Vec<Operation>,
}

/// One operation; each is a single-key map such as `apply: {...}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Server-side apply of inline object(s) or a YAML file (multi-document allowed).
    Apply(ApplyOp),
    /// Delete objects and wait until they are gone.
    Delete(DeleteOp),
    /// Merge, strategic-merge or JSON patch of one object (or its status).
    Patch(PatchOp),
    /// Set `spec.replicas` of a Deployment, StatefulSet or ReplicaSet.
    Scale(ScaleOp),
    /// Wait until objects have a condition (or are gone).
    Wait(WaitOp),
    /// Poll until objects partially match `object`.
    Assert(AssertOp),
    /// Fails if objects match `object` (after `timeout`, or at any time during `window`).
    Error(ErrorOp),
    /// Poll until a fake-clb query partially matches `object`.
    AssertCloud(AssertCloudOp),
    /// Append fault rules in fake-clb.
    InjectFaults(InjectFaultsOp),
    /// Remove every fault rule in fake-clb.
    ClearFaults(ClearFaultsOp),
    /// Change fake-clb limits at run time.
    SetLimits(LimitsPatch),
    /// Start, stop, restart (SIGTERM) or kill (SIGKILL) the controller process.
    Controller(ControllerOp),
    /// Start, stop, restart (SIGTERM) or kill (SIGKILL) fake-clb, on the same ports; needs
    /// `cloud.persistState`, so a started fake-clb resumes its state file.
    FakeClb(FakeClbOp),
    /// Restart a process of the local control plane (SIGTERM, then the same command line) and
    /// wait until it is healthy.
    RestartControlPlane(RestartControlPlaneOp),
    /// Start or stop a measurement.
    Measure(MeasureOp),
    /// Wait a fixed time. Prefer `wait`/`assert`, which poll a condition.
    Sleep(SleepOp),
    /// Change fake-clb behind the controller's back, as a person in the cloud console would.
    Console(ConsoleOp),
    /// Collector: write the namespace's events into the step log (for `catch`).
    Events(EventsOp),
    /// Collector: write the selected objects as YAML into the step log (for `catch`).
    Dump(DumpOp),
    /// Collector: write the last lines of the controller's log into the step log (for `catch`).
    ControllerLog(ControllerLogOp),
}

impl Operation {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Operation::Apply(_) => "apply",
            Operation::Delete(_) => "delete",
            Operation::Patch(_) => "patch",
            Operation::Scale(_) => "scale",
            Operation::Wait(_) => "wait",
            Operation::Assert(_) => "assert",
            Operation::Error(_) => "error",
            Operation::AssertCloud(_) => "assertCloud",
            Operation::InjectFaults(_) => "injectFaults",
            Operation::ClearFaults(_) => "clearFaults",
            Operation::SetLimits(_) => "setLimits",
            Operation::Controller(_) => "controller",
            Operation::FakeClb(_) => "fakeClb",
            Operation::RestartControlPlane(_) => "restartControlPlane",
            Operation::Measure(_) => "measure",
            Operation::Sleep(_) => "sleep",
            Operation::Console(_) => "console",
            Operation::Events(_) => "events",
            Operation::Dump(_) => "dump",
            Operation::ControllerLog(_) => "controllerLog",
        }
    }
}

/// Which objects an operation addresses.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Default: the scenario namespace (for namespaced kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=web`.
    #[serde(default)]
    pub selector: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyOp {
    /// YAML file relative to the scenario file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub objects: Option<Vec<Value>>,
    /// The API server must reject the apply with a message containing this text (e.g. a webhook
    /// denial); an accepted apply fails the operation.
    #[serde(default)]
    pub expect_error: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteOp {
    pub resource: ResourceRef,
    /// Wait until the objects are gone.
    #[serde(default = "yes")]
    pub wait: bool,
    /// The API server must refuse to delete each selected object with a message containing this
    /// text (e.g. a webhook denial); an accepted delete fails the operation. Needs at least one object.
    #[serde(default)]
    pub expect_error: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PatchType {
    #[default]
    Merge,
    Strategic,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchOp {
    /// `name` is required.
    pub resource: ResourceRef,
    #[serde(default, rename = "type")]
    pub patch_type: PatchType,
    /// A merge document, or a JSON-patch list for `type: json`.
    pub patch: Value,
    /// `status` to patch the status subresource.
    #[serde(default)]
    pub subresource: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleOp {
    /// `name` is required.
    pub resource: ResourceRef,
    pub replicas: u32,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitOp {
    pub resource: ResourceRef,
    /// Condition type in `status.conditions`, e.g. `Ready`.
    #[serde(default)]
    pub condition: Option<String>,
    /// Wanted condition status.
    #[serde(default = "true_string")]
    pub status: String,
    /// Wait until no object matches the reference.
    #[serde(default)]
    pub deleted: bool,
    /// At least this many objects must exist (default 1) and all must have the condition.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

fn true_string() -> String {
    "True".to_string()
}

/// How many of the selected objects must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MatchMode {
    /// `all` (at least one object, every one matches) or `any` (at least one matches).
    Word(MatchWord),
    /// Exactly this many objects match.
    Count(u32),
}

impl Default for MatchMode {
    fn default() -> Self {
        MatchMode::Word(MatchWord::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MatchWord {
    All,
    Any,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssertOp {
    pub resource: ResourceRef,
    /// `all` (default), `any`, or a number: exactly that many objects match.
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// Partial object: maps match key by key, lists as sets (see scenarios/README.md).
    pub object: Value,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorOp {
    pub resource: ResourceRef,
    /// Partial object that no selected object may match.
    pub object: Value,
    /// Hold: no object may match at any poll during this window.
    #[serde(default)]
    pub window: Option<HumanDuration>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// What an `assertCloud` reads from fake-clb's control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CloudQuery {
    /// One load balancer of `GET /_fake/state` (needs `id`).
    #[default]
    LoadBalancer,
    /// Every load balancer, as a list (match it as a set).
    LoadBalancers,
    /// `GET /_fake/faults`.
    Faults,
    /// `GET /_fake/limits`.
    Limits,
    /// The whole `GET /_fake/state`.
    State,
    /// fake-clb's request log `GET /_fake/requests` (newest last), as a list.
    Requests,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssertCloudOp {
    #[serde(default)]
    pub query: CloudQuery,
    /// Load-balancer id for `query: loadBalancer`.
    #[serde(default)]
    pub id: Option<String>,
    pub object: Value,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectFaultsOp {
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearFaultsOp {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ControllerAction {
    Start,
    Stop,
    Restart,
    Kill,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerOp {
    pub action: ControllerAction,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// fake-clb as a process: stopped and started on the same API and control ports, so the
/// controller keeps its endpoint. A started fake-clb has the state of its state file, the
/// config's limits and no fault rules (faults and run-time limits are not persisted).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FakeClbOp {
    pub action: ControllerAction,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartControlPlaneOp {
    /// `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler` or `kwok`.
    pub component: crate::cluster::config::Component,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasureOp {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub stop: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SleepOp {
    pub duration: HumanDuration,
}

/// What a `console` operation does in fake-clb (`POST /_fake/console/<action>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConsoleAction {
    /// Delete the listener on `port`/`protocol` (its id is looked up in fake-clb's state).
    DeleteListener,
    /// Remove the target `ip`:`targetPort` from the listener on `port`/`protocol`.
    DeleteTarget,
    /// Delete the load balancer with everything on it.
    DeleteLoadBalancer,
    /// Create a load balancer (`name`, `vips`; `type` OPEN) that is running at once.
    CreateLoadBalancer,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsoleOp {
    pub action: ConsoleAction,
    pub load_balancer_id: String,
    /// Listener port (deleteListener, deleteTarget).
    #[serde(default)]
    pub port: Option<u16>,
    /// Listener protocol (deleteListener, deleteTarget); default TCP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Target IP (deleteTarget).
    #[serde(default)]
    pub ip: Option<String>,
    /// Target port (deleteTarget).
    #[serde(default)]
    pub target_port: Option<u16>,
    /// Name (createLoadBalancer); default the id.
    #[serde(default)]
    pub name: Option<String>,
    /// VIPs (createLoadBalancer).
    #[serde(default)]
    pub vips: Vec<String>,
    /// Region; default the scenario's.
    #[serde(default)]
    pub region: Option<String>,
    /// Owning account; default the first one.
    #[serde(default)]
    pub secret_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsOp {
    /// Namespace; default the scenario's.
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DumpOp {
    pub resource: ResourceRef,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerLogOp {
    /// How many lines from the end (default 50).
    #[serde(default)]
    pub lines: Option<usize>,
}

/// A scenario and the file it came from (relative `apply.file` paths resolve against it).
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub path: PathBuf,
    pub scenario: Scenario,
}

/// Reads, parses and validates one scenario file.
pub fn load(path: &Path) -> Result<LoadedScenario> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading scenario", path, e))?;
    let scenario = parse(path, &text)?;
    Ok(LoadedScenario {
        path: path.to_path_buf(),
        scenario,
    })
}

/// The largest scenario file accepted; shipped ones are a few kB.
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// The deepest `[`/`{` nesting accepted (the YAML parser refuses deeper values anyway, but
/// takes time quadratic in the depth to get there).
const MAX_FLOW_DEPTH: usize = 128;

/// Parses and validates scenario text; errors read `FILE:LINE:COLUMN: message`.
pub fn parse(path: &Path, text: &str) -> Result<Scenario> {
    if let Err(message) = check_size_and_nesting(text) {
        return Err(Error::Scenario(format!("{}{message}", path.display())));
    }
    let scenario: Scenario = serde_yaml::from_str(text).map_err(|e| {
        let location = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        Error::Scenario(format!("{}{location}: {e}", path.display()))
    })?;
    let problems = validate(&scenario, path.parent().unwrap_or(Path::new(".")));
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(Error::Scenario(format!(
            "{}: {}",
            path.display(),
            problems.join("; ")
        )))
    }
}

/// Refuses text over `MAX_SCENARIO_BYTES` or with flow collections nested deeper than
/// `MAX_FLOW_DEPTH` before the YAML parser sees it. Brackets inside comments and inside quoted
/// strings on one line do not count. The message starts with `:LINE:COLUMN: ` where it has a place.
fn check_size_and_nesting(text: &str) -> std::result::Result<(), String> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(format!(
            ": {} bytes, more than the {MAX_SCENARIO_BYTES} a scenario file may have",
            text.len()
        ));
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    let (mut line, mut column) = (1usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        match (quote, c) {
            // Counting a multi-line quoted string's brackets errs on the safe side.
            (_, '\n') => {
                (line, column, comment, quote) = (line + 1, 0, false, None);
            }
            _ if comment => {}
            (Some('"'), '\\') => {
                chars.next();
                column += 1;
            }
            (Some(q), c) if c == q => {
                // '' inside a single-quoted string is an escaped quote.
                if q == '\'' && chars.peek() == Some(&'\'') {
                    chars.next();
                    column += 1;
                } else {
                    quote = None;
                }
            }
            (Some(_), _) => {}
            (None, '"' | '\'') if previous.is_whitespace() || "[{,:".contains(previous) => {
                quote = Some(c);
            }
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(format!(
                        ":{line}:{column}: collections nested deeper than {MAX_FLOW_DEPTH} levels"
                    ));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

/// Checks serde cannot express; returns one message per problem.
pub fn validate(scenario: &Scenario, base_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let name = &scenario.metadata.name;
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problems.push(format!(
            "metadata.name {name:?} must be 1-40 characters of a-z, 0-9 and -"
        ));
    }
    if scenario.steps.is_empty() {
        problems.push("steps: at least one step is required".to_string());
    }
    let cloud = &scenario.cloud;
    if cloud.accounts.is_empty() {
        problems.push("cloud.accounts: at least one account is required".to_string());
    }
    for lb in &cloud.load_balancers {
        if let Some(owner) = &lb.secret_id
            && !cloud.accounts.iter().any(|a| &a.secret_id == owner)
        {
            problems.push(format!(
                "cloud.loadBalancers {}: secretId {owner} is not in cloud.accounts",
                lb.id
            ));
        }
    }
    let measurements: BTreeSet<&str> = scenario
        .measurements
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    if measurements.len() != scenario.measurements.len() {
        problems.push("measurements: names must be unique".to_string());
    }
    problems.extend(comparison_problems(&scenario.measurements));
    let mut step_names = BTreeSet::new();
    for step in &scenario.steps {
        if !step_names.insert(step.name.as_str()) {
            problems.push(format!("step {:?}: duplicate step name", step.name));
        }
        for (block, ops) in [
            ("try", &step.try_ops),
            ("catch", &step.catch_ops),
            ("finally", &step.finally_ops),
        ] {
            for (i, op) in ops.iter().enumerate() {
                if let Err(message) = validate_op(op, scenario, &measurements, base_dir) {
                    problems.push(format!(
                        "step {:?} {block}[{i}] ({}): {message}",
                        step.name,
                        op.kind_name()
                    ));
                }
            }
        }
    }
    problems
}

fn validate_op(
    op: &Operation,
    scenario: &Scenario,
    measurements: &BTreeSet<&str>,
    base_dir: &Path,
) -> std::result::Result<(), String> {
    match op {
        Operation::FakeClb(_) if !scenario.cloud.persist_state => Err(
            "needs cloud.persistState: true (without a state file a started fake-clb begins \
             from its config)"
                .to_string(),
        ),
        Operation::Apply(apply) => validate_apply(apply, base_dir),
        Operation::Patch(patch) => validate_patch(patch),
        Operation::Scale(scale) => need_name(&scale.resource),
        Operation::Console(console) => validate_console(console),
        Operation::Wait(wait) => {
            if wait.condition.is_some() == wait.deleted {
                return Err("give either condition or deleted: true".to_string());
            }
            Ok(())
        }
        Operation::AssertCloud(cloud) => {
            if (cloud.query == CloudQuery::LoadBalancer) != cloud.id.is_some() {
                return Err("id is required for query loadBalancer and only there".to_string());
            }
            Ok(())
        }
        Operation::Measure(measure) => validate_measure(measure, measurements),
        _ => Ok(()),
    }
}

fn validate_apply(apply: &ApplyOp, base_dir: &Path) -> std::result::Result<(), String> {
    let sources = [
        apply.file.is_some(),
        apply.object.is_some(),
        apply.objects.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err("give exactly one of file, object, objects".to_string());
    }
    if let Some(file) = &apply.file
        && !base_dir.join(file).is_file()
    {
        return Err(format!(
            "file {} not found (relative to the scenario)",
            file.display()
        ));
    }
    let objects = apply.object.iter().chain(apply.objects.iter().flatten());
    for object in objects {
        if object.get("apiVersion").and_then(Value::as_str).is_none()
            || object.get("kind").and_then(Value::as_str).is_none()
            || object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none()
        {
            return Err("every object needs apiVersion, kind and metadata.name".into());
        }
    }
    Ok(())
}

fn validate_patch(patch: &PatchOp) -> std::result::Result<(), String> {
    need_name(&patch.resource)?;
    if patch.patch_type == PatchType::Json && !patch.patch.is_array() {
        return Err("a json patch is a list of operations".to_string());
    }
    if patch.patch_type != PatchType::Json && !patch.patch.is_object() {
        return Err("a merge patch is a map".to_string());
    }
    Ok(())
}

fn validate_console(console: &ConsoleOp) -> std::result::Result<(), String> {
    let needs_listener = matches!(
        console.action,
        ConsoleAction::DeleteListener | ConsoleAction::DeleteTarget
    );
    if needs_listener && console.port.is_none() {
        return Err("port (of the listener) is required".to_string());
    }
    if console.action == ConsoleAction::DeleteTarget
        && (console.ip.is_none() || console.target_port.is_none())
    {
        return Err("deleteTarget needs ip and targetPort".to_string());
    }
    if console.action == ConsoleAction::CreateLoadBalancer && console.vips.is_empty() {
        return Err("createLoadBalancer needs vips".to_string());
    }
    Ok(())
}

fn validate_measure(
    measure: &MeasureOp,
    measurements: &BTreeSet<&str>,
) -> std::result::Result<(), String> {
    let names: Vec<&String> = measure.start.iter().chain(measure.stop.iter()).collect();
    if names.len() != 1 {
        return Err("give exactly one of start, stop".to_string());
    }
    match names.first() {
        Some(name) if !measurements.contains(name.as_str()) => Err(format!(
            "measurement {name:?} is not declared in measurements"
        )),
        _ => Ok(()),
    }
}

fn need_name(resource: &ResourceRef) -> std::result::Result<(), String> {
    if resource.name.is_none() {
        return Err("resource.name is required".to_string());
    }
    Ok(())
}

/// JSON Schema of the scenario format, as committed in `scenarios/scenario.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Scenario files under the given paths. A directory contributes its own `*.yaml`/`*.yml`
/// files, sorted; subdirectories are not scanned, so manifests can live in one.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_yaml(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(Error::Scenario(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    if files.is_empty() {
        return Err(Error::Scenario("no scenario files found".to_string()));
    }
    Ok(files)
}

fn collect_yaml(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing scenarios", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing scenarios", dir, e))?;
        let path = entry.path();
        if path.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// Scenario checks of `baseline`/`compareTo`: a comparison names a baseline measurement of
/// the same scenario, and a baseline is not itself compared.
fn comparison_problems(measurements: &[Measurement]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in measurements {
        let Some(target) = &m.compare_to else {
            continue;
        };
        if m.baseline {
            problems.push(format!(
                "measurement {}: a baseline has no compareTo",
                m.name
            ));
        }
        if !measurements.iter().any(|b| &b.name == target && b.baseline) {
            problems.push(format!(
                "measurement {}: compareTo {target:?} is not a baseline: true measurement",
                m.name
            ));
        }
    }
    problems
}
