//! The local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok, run directly as host processes on 127.0.0.1, plus fake nodes.
//!
//! `up` builds (or reuses) the binaries, generates PKI and configs into the state directory,
//! starts the components in dependency order with a health deadline each, creates the fake
//! nodes and waits until they are Ready. `down` stops everything recorded in the state file.
//! See harness/README.md, section "Local control plane", for why the harness drives the
//! processes itself rather than through kwokctl.

pub mod build;
pub mod config;
pub mod health;
pub mod nodes;
pub mod pki;
pub mod process;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use self::build::Binaries;
use self::config::{Component, Layout, Ports};
use self::health::Prober;
use self::pki::{CertificateAuthority, CertifiedKey, LeafSpec};
use self::process::{ProcessRecord, StopOutcome};
use crate::error::{Error, Result};

/// Default state directory, relative to the working directory (the repository root under make).
pub const DEFAULT_STATE_DIR: &str = ".work/cluster";
pub const DEFAULT_NODES: u32 = 3;

const ETCD_START: Duration = Duration::from_secs(30);
const APISERVER_START: Duration = Duration::from_secs(90);
const CONTROLLER_START: Duration = Duration::from_secs(60);
const NODES_READY: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
const REAP_WAIT: Duration = Duration::from_secs(5);

/// What `cluster up` needs to know.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub controlplane_dir: PathBuf,
    pub nodes: u32,
}

/// Recorded in `<state-dir>/cluster.json`; `down` and `status` read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    pub ports: Ports,
    pub nodes: u32,
    pub kubernetes_version: String,
    pub kubeconfig: PathBuf,
    pub processes: Vec<ProcessRecord>,
}

/// The outcome of `up`.
#[derive(Debug, Clone)]
pub struct UpReport {
    pub already_running: bool,
    pub api_server: String,
    pub kubeconfig: PathBuf,
    pub kubernetes_version: String,
    pub ready_nodes: usize,
    pub elapsed: Duration,
}

impl fmt::Display for UpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.already_running {
            "already running"
        } else {
            "started"
        };
        writeln!(
            f,
            "cluster {how} in {:.1}s: Kubernetes {} at {}, {} fake node(s) Ready",
            self.elapsed.as_secs_f64(),
            self.kubernetes_version,
            self.api_server,
            self.ready_nodes
        )?;
        writeln!(f, "kubeconfig: {}", self.kubeconfig.display())?;
        write!(f, "  export KUBECONFIG={}", self.kubeconfig.display())
    }
}

/// Starts the cluster, or confirms the one recorded in the state dir is healthy.
pub async fn up(opts: &UpOptions) -> Result<UpReport> {
    let started = Instant::now();
    nodes::validate_count(opts.nodes)?;
    let layout = Layout::new(absolute(&opts.state_dir)?);
    create_dir(layout.root())?;

    if let Some(state) = read_state_or_warn(&layout)? {
        if let Some(report) = reuse_running(&layout, &state, opts.nodes, started).await {
            return Ok(report);
        }
        info!(
            "cluster in {} is not healthy: stopping what is left and starting afresh",
            layout.root().display()
        );
        stop_all(&layout, &state).await?;
    }
    // Processes recorded nowhere (e.g. an `up` killed mid-way) would hold ports and data.
    stop_strays(&layout).await?;
    reset_state_dir(&layout)?;

    let binaries = build::ensure_binaries(&opts.controlplane_dir, &opts.cache_dir).await?;
    let ports = allocate_ports()?;
    let pki = write_pki_and_configs(&layout, &ports)?;
    let mut state = ClusterState {
        ports,
        nodes: opts.nodes,
        kubernetes_version: binaries.kubernetes_version.clone(),
        kubeconfig: layout.kubeconfig(),
        processes: Vec::new(),
    };
    match start(&layout, &binaries, &pki, &mut state).await {
        Ok(ready_nodes) => Ok(UpReport {
            already_running: false,
            api_server: ports.apiserver_url(),
            kubeconfig: layout.kubeconfig(),
            kubernetes_version: state.kubernetes_version,
            ready_nodes,
            elapsed: started.elapsed(),
        }),
        Err(e) => {
            warn!("start-up failed; stopping the components already started");
            if let Err(stop_err) = stop_all(&layout, &state).await {
                warn!("cleanup after failed start: {stop_err}");
            }
            Err(e)
        }
    }
}

/// Credentials kept in memory during `up` for health checks.
struct Pki {
    ca_pem: String,
    admin: CertifiedKey,
}

async fn start(
    layout: &Layout,
    binaries: &Binaries,
    pki: &Pki,
    state: &mut ClusterState,
) -> Result<usize> {
    let prober = Prober::new(&pki.ca_pem, &pki.admin)?;
    let ports = state.ports;

    let mut etcd = start_component(Component::Etcd, layout, binaries, state)?;
    wait_healthy(
        Component::Etcd,
        &ports,
        &prober,
        &mut etcd,
        layout,
        ETCD_START,
    )
    .await?;

    let mut apiserver = start_component(Component::KubeApiserver, layout, binaries, state)?;
    wait_healthy(
        Component::KubeApiserver,
        &ports,
        &prober,
        &mut apiserver,
        layout,
        APISERVER_START,
    )
    .await?;

    // These three only need the API server; start them together, then check each.
    let mut controller_manager =
        start_component(Component::KubeControllerManager, layout, binaries, state)?;
    let mut scheduler = start_component(Component::KubeScheduler, layout, binaries, state)?;
    let mut kwok = start_component(Component::Kwok, layout, binaries, state)?;
    for (component, child) in [
        (Component::KubeControllerManager, &mut controller_manager),
        (Component::KubeScheduler, &mut scheduler),
        (Component::Kwok, &mut kwok),
    ] {
        wait_healthy(component, &ports, &prober, child, layout, CONTROLLER_START).await?;
    }

    let client = client_from_kubeconfig(&layout.kubeconfig()).await?;
    nodes::ensure_nodes(&client, state.nodes, &binaries.kubernetes_version).await?;
    let want = state.nodes as usize;
    health::wait_for(
        Component::Kwok,
        &format!("{want} Ready fake node(s)"),
        &mut kwok,
        &layout.log(Component::Kwok),
        NODES_READY,
        || async {
            nodes::ready_fake_nodes(&client)
                .await
                .is_ok_and(|n| n >= want)
        },
    )
    .await?;
    info!("{want} fake node(s) Ready");

    // The service-account controller must have run, or pod creation fails for lack of it.
    let service_accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    health::wait_for(
        Component::KubeControllerManager,
        "the default ServiceAccount",
        &mut controller_manager,
        &layout.log(Component::KubeControllerManager),
        CONTROLLER_START,
        || async {
            service_accounts
                .get_opt("default")
                .await
                .is_ok_and(|sa| sa.is_some())
        },
    )
    .await?;
    Ok(want)
}

fn start_component(
    component: Component,
    layout: &Layout,
    binaries: &Binaries,
    state: &mut ClusterState,
) -> Result<Child> {
    let spec = config::command(component, layout, &state.ports, binaries);
    let log = layout.log(component);
    info!("starting {component} (log: {})", log.display());
    let (child, record) = process::spawn(&spec, &log)?;
    state.processes.push(record);
    // Record before waiting, so `down` can stop it even if this process dies now.
    write_state(layout, state)?;
    Ok(child)
}

async fn wait_healthy(
    component: Component,
    ports: &Ports,
    prober: &Prober,
    child: &mut Child,
    layout: &Layout,
    within: Duration,
) -> Result<()> {
    let started = Instant::now();
    let url = ports.health_url(component);
    health::wait_for(
        component,
        &format!("healthy {url}"),
        child,
        &layout.log(component),
        within,
        || prober.is_healthy(&url),
    )
    .await?;
    info!(
        "{component} healthy after {:.1}s (127.0.0.1:{})",
        started.elapsed().as_secs_f64(),
        ports.listen_port(component)
    );
    Ok(())
}

/// If every recorded process runs and the API server answers, tops up nodes and reports.
async fn reuse_running(
    layout: &Layout,
    state: &ClusterState,
    nodes: u32,
    started: Instant,
) -> Option<UpReport> {
    let all_running = state.processes.len() == Component::ALL.len()
        && state.processes.iter().all(process::is_running);
    if !all_running {
        return None;
    }
    let client = client_from_kubeconfig(&layout.kubeconfig()).await.ok()?;
    client.apiserver_version().await.ok()?;
    let want = nodes.max(state.nodes);
    nodes::ensure_nodes(&client, want, &state.kubernetes_version)
        .await
        .ok()?;
    health::wait_until("fake nodes Ready", NODES_READY, || async {
        nodes::ready_fake_nodes(&client)
            .await
            .is_ok_and(|n| n >= want as usize)
    })
    .await
    .ok()?;
    if want != state.nodes {
        let mut updated = state.clone();
        updated.nodes = want;
        write_state(layout, &updated).ok()?;
    }
    Some(UpReport {
        already_running: true,
        api_server: state.ports.apiserver_url(),
        kubeconfig: layout.kubeconfig(),
        kubernetes_version: state.kubernetes_version.clone(),
        ready_nodes: want as usize,
        elapsed: started.elapsed(),
    })
}

/// Restarts one component of the running cluster in `state_dir`: SIGTERM (SIGKILL after the
/// grace period), then the same command line on the same ports, recorded in the state file,
/// and waits until it is healthy again. Returns how long the component was away.
pub async fn restart_component(state_dir: &Path, component: Component) -> Result<Duration> {
    let started = Instant::now();
    let layout = Layout::new(absolute(state_dir)?);
    let mut state = read_state(&layout)?.ok_or_else(|| {
        Error::Environment(format!(
            "no cluster recorded in {}",
            layout.root().display()
        ))
    })?;
    let index = state
        .processes
        .iter()
        .position(|r| r.component == component)
        .ok_or_else(|| Error::Environment(format!("{component} is not recorded")))?;
    let record = state.processes[index].clone();
    process::stop(&record, STOP_GRACE).await?;
    // Not wait_for_reap: when this process started the cluster, the component stays a zombie
    // child of ours, which holds no port but keeps its /proc entry.
    health::wait_until(&format!("{component} stopped"), REAP_WAIT, || async {
        !process::is_running(&record)
    })
    .await?;
    let binaries = recorded_binaries(&state)?;
    let spec = config::command(component, &layout, &state.ports, &binaries);
    let log = layout.log(component);
    info!("restarting {component} (log: {})", log.display());
    let (mut child, new_record) = process::spawn(&spec, &log)?;
    state.processes[index] = new_record;
    write_state(&layout, &state)?;
    let prober = prober_from_kubeconfig(&layout.kubeconfig())?;
    let within = match component {
        Component::Etcd => ETCD_START,
        Component::KubeApiserver => APISERVER_START,
        _ => CONTROLLER_START,
    };
    let ports = state.ports;
    wait_healthy(component, &ports, &prober, &mut child, &layout, within).await?;
    Ok(started.elapsed())
}

/// The binaries of the running cluster, as its state file records them.
fn recorded_binaries(state: &ClusterState) -> Result<Binaries> {
    let binary = |component: Component| {
        state
            .processes
            .iter()
            .find(|r| r.component == component)
            .map(|r| r.binary.clone())
            .ok_or_else(|| Error::Environment(format!("{component} is not recorded")))
    };
    Ok(Binaries {
        etcd: binary(Component::Etcd)?,
        kube_apiserver: binary(Component::KubeApiserver)?,
        kube_controller_manager: binary(Component::KubeControllerManager)?,
        kube_scheduler: binary(Component::KubeScheduler)?,
        kwok: binary(Component::Kwok)?,
        kubernetes_version: state.kubernetes_version.clone(),
    })
}

/// A health prober with the CA and admin credentials of the cluster's admin kubeconfig.
fn prober_from_kubeconfig(path: &Path) -> Result<Prober> {
    use base64::Engine as _;
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading kubeconfig", path, e))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let field = |pointer: [&str; 3]| -> Result<String> {
        let encoded = doc
            .get(pointer[0])
            .and_then(|v| v.get(0))
            .and_then(|v| v.get(pointer[1]))
            .and_then(|v| v.get(pointer[2]))
            .and_then(serde_yaml::Value::as_str)
            .ok_or_else(|| Error::Kubeconfig(format!("{}: no {}", path.display(), pointer[2])))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| Error::Kubeconfig(format!("{}: {}: {e}", path.display(), pointer[2])))?;
        String::from_utf8(bytes)
            .map_err(|e| Error::Kubeconfig(format!("{}: {}: {e}", path.display(), pointer[2])))
    };
    let ca_pem = field(["clusters", "cluster", "certificate-authority-data"])?;
    let admin = CertifiedKey {
        cert_pem: field(["users", "user", "client-certificate-data"])?,
        key_pem: field(["users", "user", "client-key-data"])?,
    };
    Prober::new(&ca_pem, &admin)
}

/// The outcome of `down`.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    pub stopped: Vec<(Component, i32, StopOutcome)>,
}

impl fmt::Display for DownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stopped.is_empty() {
            return write!(f, "no control-plane process was running");
        }
        let mut first = true;
        for (component, pid, outcome) in &self.stopped {
            if !first {
                writeln!(f)?;
            }
            first = false;
            let what = match outcome {
                StopOutcome::NotRunning => "was not running",
                StopOutcome::Terminated => "stopped",
                StopOutcome::Killed => "killed after ignoring SIGTERM",
            };
            write!(f, "{component:<24} pid {pid:<8} {what}")?;
        }
        Ok(())
    }
}

/// Stops every process of the cluster in `state_dir`. Logs and data stay for inspection.
pub async fn down(state_dir: &Path) -> Result<DownReport> {
    let layout = Layout::new(absolute(state_dir)?);
    let mut report = DownReport::default();
    if let Some(state) = read_state_or_warn(&layout)? {
        report.stopped = stop_all(&layout, &state).await?;
    }
    for record in process::find_strays(layout.root()) {
        let outcome = process::stop(&record, STOP_GRACE).await?;
        report.stopped.push((record.component, record.pid, outcome));
    }
    remove_if_exists(&layout.state_file())?;
    let pids: Vec<i32> = report.stopped.iter().map(|(_, pid, _)| *pid).collect();
    process::wait_for_reap(&pids, REAP_WAIT).await;
    Ok(report)
}

/// Stops recorded processes, last started first.
async fn stop_all(
    layout: &Layout,
    state: &ClusterState,
) -> Result<Vec<(Component, i32, StopOutcome)>> {
    let mut stopped = Vec::new();
    for record in state.processes.iter().rev() {
        let outcome = process::stop(record, STOP_GRACE).await?;
        stopped.push((record.component, record.pid, outcome));
    }
    remove_if_exists(&layout.state_file())?;
    let pids: Vec<i32> = stopped.iter().map(|(_, pid, _)| *pid).collect();
    process::wait_for_reap(&pids, REAP_WAIT).await;
    Ok(stopped)
}

async fn stop_strays(layout: &Layout) -> Result<()> {
    for record in process::find_strays(layout.root()) {
        warn!(
            "stopping unrecorded {} (pid {}) using {}",
            record.component,
            record.pid,
            layout.root().display()
        );
        process::stop(&record, STOP_GRACE).await?;
    }
    Ok(())
}

/// The outcome of `status`.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub state_dir: PathBuf,
    pub state: Option<ClusterState>,
    pub running: Vec<(ProcessRecord, bool)>,
    pub api_version: Option<String>,
    pub ready_nodes: Option<usize>,
}

impl StatusReport {
    /// Every component runs, the API server answers and the requested nodes are Ready.
    pub fn healthy(&self) -> bool {
        let Some(state) = &self.state else {
            return false;
        };
        self.running.len() == Component::ALL.len()
            && self.running.iter().all(|(_, up)| *up)
            && self.api_version.is_some()
            && self.ready_nodes.is_some_and(|n| n >= state.nodes as usize)
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(state) = &self.state else {
            return write!(f, "no cluster in {}", self.state_dir.display());
        };
        writeln!(f, "cluster in {}", self.state_dir.display())?;
        for (record, up) in &self.running {
            writeln!(
                f,
                "  {:<24} {:<8} pid {:<8} 127.0.0.1:{:<6} log {}",
                record.component.name(),
                if *up { "running" } else { "STOPPED" },
                record.pid,
                state.ports.listen_port(record.component),
                record.log.display()
            )?;
        }
        match &self.api_version {
            Some(v) => writeln!(f, "  API server {} ({v})", state.ports.apiserver_url())?,
            None => writeln!(
                f,
                "  API server {} not answering",
                state.ports.apiserver_url()
            )?,
        }
        if let Some(n) = self.ready_nodes {
            writeln!(f, "  fake nodes Ready: {n}/{}", state.nodes)?;
        }
        write!(f, "  kubeconfig {}", state.kubeconfig.display())
    }
}

pub async fn status(state_dir: &Path) -> Result<StatusReport> {
    let layout = Layout::new(absolute(state_dir)?);
    let state = read_state(&layout)?;
    let mut report = StatusReport {
        state_dir: layout.root().to_path_buf(),
        state: state.clone(),
        running: Vec::new(),
        api_version: None,
        ready_nodes: None,
    };
    let Some(state) = state else {
        return Ok(report);
    };
    report.running = state
        .processes
        .iter()
        .map(|r| (r.clone(), process::is_running(r)))
        .collect();
    if let Ok(client) = client_from_kubeconfig(&state.kubeconfig).await
        && let Ok(info) = client.apiserver_version().await
    {
        report.api_version = Some(info.git_version);
        report.ready_nodes = nodes::ready_fake_nodes(&client).await.ok();
    }
    Ok(report)
}

/// A client for the cluster described by a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

fn write_pki_and_configs(layout: &Layout, ports: &Ports) -> Result<Pki> {
    create_dir(&layout.pki_dir())?;
    create_dir(&layout.config_dir())?;
    create_dir(&layout.logs_dir())?;
    create_dir(&layout.kwok_home())?;

    let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let ca = CertificateAuthority::new("clb-testbed-ca")?;
    write_file(&layout.pki("ca.crt"), ca.cert_pem(), false)?;
    write_file(&layout.pki("ca.key"), ca.key_pem(), true)?;

    let apiserver_ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
    ];
    let apiserver = ca.issue(&LeafSpec::server(
        "kube-apiserver",
        &apiserver_ips,
        &[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    ))?;
    write_pair(layout, "apiserver", &apiserver)?;
    for name in ["controller-manager", "scheduler"] {
        let serving = ca.issue(&LeafSpec::server(name, &loopback, &["localhost"]))?;
        write_pair(layout, name, &serving)?;
    }
    let front_proxy_ca = CertificateAuthority::new("clb-testbed-front-proxy-ca")?;
    write_file(
        &layout.pki("front-proxy-ca.crt"),
        front_proxy_ca.cert_pem(),
        false,
    )?;
    let front_proxy_client = front_proxy_ca.issue(&LeafSpec::client("front-proxy-client", &[]))?;
    write_pair(layout, "front-proxy-client", &front_proxy_client)?;
    let (sa_key, sa_pub) = pki::service_account_key()?;
    write_file(&layout.pki("sa.key"), &sa_key, true)?;
    write_file(&layout.pki("sa.pub"), &sa_pub, false)?;

    let server = ports.apiserver_url();
    let mut admin = None;
    for name in ["admin", "controller-manager", "scheduler", "kwok"] {
        let (user, groups) = config::client_identity(name);
        let cert = ca.issue(&LeafSpec::client(user, groups))?;
        let yaml =
            config::kubeconfig_yaml(&server, ca.cert_pem(), user, &cert.cert_pem, &cert.key_pem)?;
        let path = if name == "admin" {
            layout.kubeconfig()
        } else {
            layout.config(&format!("{name}.kubeconfig"))
        };
        write_file(&path, &yaml, true)?;
        if name == "admin" {
            admin = Some(cert);
        }
    }
    let admin = admin.ok_or_else(|| Error::Kubeconfig("admin credentials missing".to_owned()))?;

    let scheduler = config::scheduler_config_yaml(&layout.config("scheduler.kubeconfig"))?;
    write_file(&layout.config("scheduler.yaml"), &scheduler, false)?;
    write_file(&layout.config("kwok.yaml"), config::KWOK_STAGES, false)?;
    Ok(Pki {
        ca_pem: ca.cert_pem().to_owned(),
        admin,
    })
}

fn write_pair(layout: &Layout, name: &str, pair: &CertifiedKey) -> Result<()> {
    write_file(&layout.pki(&format!("{name}.crt")), &pair.cert_pem, false)?;
    write_file(&layout.pki(&format!("{name}.key")), &pair.key_pem, true)
}

/// Writes a file; secrets get mode 0600.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| Error::io("writing", path, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Error::io("writing", path, e))
}

/// Picks distinct free loopback ports by holding all listeners until every port is known.
fn allocate_ports() -> Result<Ports> {
    let listeners = (0..6)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::NoFreePort)?;
    let ports = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::NoFreePort)?;
    Ok(Ports {
        etcd_client: ports[0],
        etcd_peer: ports[1],
        apiserver: ports[2],
        controller_manager: ports[3],
        scheduler: ports[4],
        kwok: ports[5],
    })
}

fn read_state(layout: &Layout) -> Result<Option<ClusterState>> {
    let path = layout.state_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading cluster state", path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::BadState {
            path,
            reason: e.to_string(),
        })
}

/// Like `read_state`, but a corrupt file only warns: the stray scan still finds our
/// processes by their arguments, so `up` and `down` need not give up.
fn read_state_or_warn(layout: &Layout) -> Result<Option<ClusterState>> {
    match read_state(layout) {
        Err(e @ Error::BadState { .. }) => {
            warn!("{e}; ignoring it");
            Ok(None)
        }
        other => other,
    }
}

fn write_state(layout: &Layout, state: &ClusterState) -> Result<()> {
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::Serialize {
        what: "cluster state",
        reason: e.to_string(),
    })?;
    // Write then rename, so a reader never sees half a file.
    let tmp = layout.root().join("cluster.json.tmp");
    write_file(&tmp, &json, false)?;
    std::fs::rename(&tmp, layout.state_file())
        .map_err(|e| Error::io("replacing cluster state", layout.state_file(), e))
}

/// Removes what a previous run left (everything `up` creates), keeping unrelated files.
fn reset_state_dir(layout: &Layout) -> Result<()> {
    for dir in [
        layout.pki_dir(),
        layout.config_dir(),
        layout.logs_dir(),
        layout.etcd_data(),
        layout.kwok_home(),
    ] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cleaning state directory", dir, e)),
        }
    }
    remove_if_exists(&layout.kubeconfig())?;
    remove_if_exists(&layout.state_file())
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("creating directory", path, e))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io("resolving path", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_ports_are_distinct() {
        let ports = allocate_ports().unwrap();
        let mut all = ports.all().to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn status_without_state_is_unhealthy() {
        let report = StatusReport {
            state_dir: PathBuf::from("/x"),
            state: None,
            running: vec![],
            api_version: None,
            ready_nodes: None,
        };
        assert!(!report.healthy());
        assert_eq!(report.to_string(), "no cluster in /x");
    }

    #[test]
    fn state_round_trips_and_reset_keeps_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        let state = ClusterState {
            ports: allocate_ports().unwrap(),
            nodes: 3,
            kubernetes_version: "v1.34.4".to_owned(),
            kubeconfig: layout.kubeconfig(),
            processes: vec![],
        };
        write_state(&layout, &state).unwrap();
        let back = read_state(&layout).unwrap().unwrap();
        assert_eq!(back.ports, state.ports);
        std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
        create_dir(&layout.logs_dir()).unwrap();
        reset_state_dir(&layout).unwrap();
        assert!(read_state(&layout).unwrap().is_none());
        assert!(!layout.logs_dir().exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        std::fs::write(layout.state_file(), "{").unwrap();
        assert!(matches!(read_state(&layout), Err(Error::BadState { .. })));
    }
}
