//! The test environment around scenarios: a Kubernetes API (the local control plane or a given
//! kubeconfig), fake-clb as a process, the CRDs, and the controller as a process when its
//! binary has a `run` subcommand. `env.json` in the state dir tells other tools where
//! everything is; `down` reads it back to stop what `up` started.

pub mod identity;
mod process;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

pub use self::identity::ControllerIdentity;
pub use self::process::{Managed, ProcessInfo};
use crate::cluster;
use crate::error::{Error, Result};
use crate::kubeops::FIELD_MANAGER;
use crate::scenario::CloudSetup;
use fake_clb::admin_api::{AdminPath, LoadBalancerConfig};
use fake_clb::admin_client::AdminClient;

pub const DEFAULT_STATE_DIR: &str = ".work/harness";
const FAKE_CLB_START: Duration = Duration::from_secs(20);
const CONTROLLER_START: Duration = Duration::from_secs(60);
const CRD_ESTABLISHED: Duration = Duration::from_secs(60);

/// How to build the environment.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    pub state_dir: PathBuf,
    /// Use this cluster instead of starting the local control plane.
    pub kubeconfig: Option<PathBuf>,
    /// Local control plane settings, used when `kubeconfig` is None.
    pub cluster: cluster::UpOptions,
    pub fake_clb_bin: PathBuf,
    pub controller_bin: PathBuf,
    /// A fake-clb config file to use verbatim (its listen addresses are overridden).
    pub fake_clb_config: Option<PathBuf>,
    /// Never start the controller, even when the binary supports `run`.
    pub no_controller: bool,
    /// Run the controller as this ServiceAccount (a TokenRequest token in its own kubeconfig) after
    /// applying its RBAC manifests, with leader election in its namespace, as the chart runs it.
    pub controller_identity: Option<ControllerIdentity>,
    /// A fake-clb that is already running (API, control API), e.g. the fake-clb chart in kind reached
    /// through node ports, instead of a process of ours. Needs `fake_clb_config` (its cloud).
    pub external_fake_clb: Option<(SocketAddr, SocketAddr)>,
}

/// `env.json`: where everything is. Read by people, scripts and `clb-harness down`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFile {
    pub kubeconfig: PathBuf,
    pub fake_clb_endpoint: String,
    pub fake_clb_admin: String,
    /// Test credentials of the fake cloud's first account (never real secrets).
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
    pub load_balancers: Vec<LoadBalancerInfo>,
    pub controller_log: Option<PathBuf>,
    /// None when fake-clb is external (not ours).
    pub fake_clb_log: Option<PathBuf>,
    /// Why the controller is not running, when it is not.
    pub controller_note: Option<String>,
    /// Processes this environment started (stopped by `down`).
    pub processes: Vec<ProcessInfo>,
    /// Set when the harness started the local control plane (stopped by `down`).
    pub cluster_state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerInfo {
    pub id: String,
    pub region: String,
    pub vips: Vec<String>,
}

/// fake-clb's config for a cloud setup (listen addresses are passed as flags). Load balancers
/// without an owner belong to the first account; without a region they are in `cloud.region`.
pub fn fake_clb_config(cloud: &CloudSetup) -> Value {
    let first_account = cloud
        .accounts
        .first()
        .map(|a| a.secret_id.clone())
        .unwrap_or_default();
    let load_balancers: Vec<LoadBalancerConfig> = cloud
        .load_balancers
        .iter()
        .map(|lb| LoadBalancerConfig {
            id: lb.id.clone(),
            secret_id: lb
                .secret_id
                .clone()
                .unwrap_or_else(|| first_account.clone()),
            region: lb.region.clone().unwrap_or_else(|| cloud.region.clone()),
            name: Some(lb.name.clone()),
            lb_type: lb.lb_type.clone(),
            vips: lb.vips.clone(),
        })
        .collect();
    let mut config = json!({
        "accounts": cloud.accounts,
        "loadBalancers": load_balancers,
        "limits": cloud.limits,
    });
    if let Some(seed) = cloud.seed {
        config["seed"] = json!(seed);
    }
    config
}

/// A running environment. Dropping it does not stop anything; call `stop`.
pub struct Environment {
    pub state_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    pub http: reqwest::Client,
    pub cloud: CloudSetup,
    pub fake_api: SocketAddr,
    pub fake_admin: SocketAddr,
    /// fake-clb's control API.
    pub admin: AdminClient,
    /// None when fake-clb is external.
    fake: Option<Managed>,
    controller: Option<Managed>,
    /// Port of the started controller's metrics server.
    controller_metrics_port: Option<u16>,
    controller_note: Option<String>,
    controller_help: Option<String>,
    options: EnvOptions,
    cluster_state_dir: Option<PathBuf>,
}

impl Environment {
    /// Brings everything up for `cloud` (ignored when a fake-clb config file is given).
    pub async fn start(options: EnvOptions, cloud: CloudSetup) -> Result<Environment> {
        let state_dir = cluster_absolute(&options.state_dir)?;
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| Error::io("creating state dir", &state_dir, e))?;
        let (kubeconfig, cluster_state_dir) = match &options.kubeconfig {
            Some(path) => (cluster_absolute(path)?, None),
            None => {
                let report = cluster::up(&options.cluster).await?;
                info!(
                    "cluster {} ({})",
                    if report.already_running {
                        "reused"
                    } else {
                        "started"
                    },
                    report.kubeconfig.display()
                );
                let owned = (!report.already_running)
                    .then(|| cluster_absolute(&options.cluster.state_dir))
                    .transpose()?;
                (report.kubeconfig, owned)
            }
        };
        let client = cluster::client_from_kubeconfig(&kubeconfig).await?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let cloud = match &options.fake_clb_config {
            Some(file) => cloud_from_config_file(file)?,
            None => cloud,
        };
        let (fake, fake_api, fake_admin) = match options.external_fake_clb {
            Some((api, admin)) => {
                if options.fake_clb_config.is_none() {
                    return Err(Error::InvalidOption(
                        "an external fake-clb needs --fake-clb-config describing its cloud".into(),
                    ));
                }
                info!("external fake-clb api={api} admin={admin}");
                // start_fake_clb makes it otherwise; the controller's log goes there.
                let logs = state_dir.join("logs");
                std::fs::create_dir_all(&logs)
                    .map_err(|e| Error::io("creating log dir", &logs, e))?;
                (None, api, admin)
            }
            None => {
                let (fake, api, admin) = start_fake_clb(&options, &state_dir, &cloud, None).await?;
                (Some(fake), api, admin)
            }
        };
        let mut env = Environment {
            state_dir,
            kubeconfig,
            client,
            http,
            cloud,
            fake_api,
            fake_admin,
            admin: AdminClient::for_addr(fake_admin)?,
            fake,
            controller: None,
            controller_metrics_port: None,
            controller_note: None,
            controller_help: None,
            options,
            cluster_state_dir,
        };
        if let Err(e) = env.finish_start().await {
            env.stop(true).await;
            return Err(e);
        }
        Ok(env)
    }

    async fn finish_start(&mut self) -> Result<()> {
        self.install_faults().await?;
        install_crds(&self.client, &self.options.controller_bin).await?;
        if let Some(identity) = &self.options.controller_identity
            && !self.options.no_controller
        {
            identity::apply_manifests(&self.client, identity).await?;
        }
        self.controller_help = if self.options.no_controller {
            self.controller_note = Some("disabled with --no-controller".to_string());
            None
        } else {
            match controller_run_help(&self.options.controller_bin) {
                Ok(help) => Some(help),
                Err(note) => {
                    warn!("controller not started: {note}");
                    self.controller_note = Some(note);
                    None
                }
            }
        };
        if self.controller_help.is_some() {
            self.start_controller().await?;
        }
        self.write_env_file()
    }

    pub fn admin_url(&self, path: AdminPath) -> String {
        self.admin.url(path)
    }

    pub fn controller_available(&self) -> bool {
        self.controller_help.is_some()
    }

    pub fn controller_log(&self) -> PathBuf {
        self.state_dir.join("logs/clb-controller.log")
    }

    /// Back to the scenario's cloud: restart fake-clb (and the controller, which holds its
    /// endpoint) when the setup differs, else `POST /_fake/reset`; then the initial faults.
    pub async fn prepare_cloud(&mut self, cloud: &CloudSetup) -> Result<()> {
        if self.options.fake_clb_config.is_none() && *cloud != self.cloud {
            info!("cloud setup differs: restarting fake-clb and the controller");
            self.stop_controller(false).await;
            if let Some(fake) = self.fake.as_mut() {
                fake.stop(false).await;
            }
            let (fake, api, admin) =
                start_fake_clb(&self.options, &self.state_dir, cloud, None).await?;
            self.fake = Some(fake);
            self.fake_api = api;
            self.fake_admin = admin;
            self.admin = AdminClient::for_addr(admin)?;
            self.cloud = cloud.clone();
            self.install_faults().await?;
            if self.controller_help.is_some() {
                self.start_controller().await?;
            }
            return self.write_env_file();
        }
        self.start_fake_clb().await?;
        self.admin.reset().await?;
        self.install_faults().await
    }

    /// Starts fake-clb again after `stop_fake_clb`, on the same ports, from its state file (a
    /// no-op while it runs, and for an external fake-clb, which is never stopped). It has the
    /// config's limits and no fault rules.
    pub async fn start_fake_clb(&mut self) -> Result<()> {
        if self.options.external_fake_clb.is_some() || self.fake_clb_running()? {
            return Ok(());
        }
        let resume = Some((self.fake_api, self.fake_admin));
        let (fake, _, _) =
            start_fake_clb(&self.options, &self.state_dir, &self.cloud, resume).await?;
        self.fake = Some(fake);
        self.write_env_file()
    }

    /// SIGTERM (then SIGKILL after a grace period), or SIGKILL at once with `kill`. The
    /// controller keeps running and sees connection errors until `start_fake_clb`.
    pub async fn stop_fake_clb(&mut self, kill: bool) -> Result<()> {
        self.fake_clb_running()?;
        if let Some(mut fake) = self.fake.take() {
            fake.stop(kill).await;
        }
        self.write_env_file()
    }

    /// Whether our fake-clb process runs; an error when fake-clb is not ours to manage.
    fn fake_clb_running(&mut self) -> Result<bool> {
        if self.options.external_fake_clb.is_some() {
            return Err(Error::Environment(
                "fake-clb is external (--fake-clb-api): it cannot be stopped or started".into(),
            ));
        }
        Ok(self.fake.as_mut().is_some_and(Managed::is_running))
    }

    /// Restarts a process of the local control plane. The cluster is the one `--cluster-state-dir`
    /// names, or, with `--kubeconfig`, the local control plane that kubeconfig belongs to.
    pub async fn restart_control_plane(
        &self,
        component: cluster::config::Component,
    ) -> Result<Duration> {
        let state_dir = match &self.options.kubeconfig {
            None => self.options.cluster.state_dir.clone(),
            Some(kubeconfig) => kubeconfig
                .parent()
                .filter(|dir| dir.join("cluster.json").is_file())
                .map(Path::to_path_buf)
                .ok_or_else(|| {
                    Error::Environment(format!(
                        "{} is not the kubeconfig of a local control plane (no cluster.json next to it)",
                        kubeconfig.display()
                    ))
                })?,
        };
        cluster::restart_component(&state_dir, component).await
    }

    async fn install_faults(&self) -> Result<()> {
        self.admin.put_faults(&self.cloud.faults).await?;
        Ok(())
    }

    /// Starts the controller (a no-op while it runs) and waits until it is healthy and its
    /// webhooks point at it.
    pub async fn start_controller(&mut self) -> Result<()> {
        let Some(help) = self.controller_help.clone() else {
            return Err(Error::Environment(format!(
                "the controller cannot be started: {}",
                self.controller_note.clone().unwrap_or_default()
            )));
        };
        if self.controller.as_mut().is_some_and(Managed::is_running) {
            return Ok(());
        }
        let account = self
            .cloud
            .accounts
            .first()
            .ok_or_else(|| Error::Environment("the cloud has no account".to_string()))?;
        let env = vec![
            (
                "TENCENTCLOUD_SECRET_ID".to_string(),
                account.secret_id.clone(),
            ),
            (
                "TENCENTCLOUD_SECRET_KEY".to_string(),
                account.secret_key.clone(),
            ),
        ];
        let kubeconfig = self.controller_kubeconfig().await?;
        let command = self.controller_command(&help, &kubeconfig)?;
        let log = self.controller_log();
        let mut managed = Managed::spawn(
            "clb-controller",
            &self.options.controller_bin,
            &command.args,
            &env,
            &log,
            &log,
        )?;
        self.await_controller(&mut managed, &command, &log).await?;
        info!("clb-controller running (log: {})", log.display());
        self.controller = Some(managed);
        self.controller_metrics_port = command.metrics_port;
        self.write_env_file()
    }

    /// The admin kubeconfig, or one holding only a fresh token of the controller's
    /// ServiceAccount when it runs as one.
    async fn controller_kubeconfig(&self) -> Result<PathBuf> {
        Ok(match &self.options.controller_identity {
            Some(identity) => {
                let path = self.state_dir.join("controller.kubeconfig");
                identity::write_kubeconfig(&self.client, &self.kubeconfig, identity, &path).await?;
                path
            }
            None => self.kubeconfig.clone(),
        })
    }

    /// `clb-controller run` flags, using only the ones `run --help` lists.
    fn controller_command(&self, help: &str, kubeconfig: &Path) -> Result<ControllerCommand> {
        let mut args = vec![
            "run".to_string(),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--clb-endpoint=http://{}", self.fake_api),
            format!("--region={}", self.cloud.region),
        ];
        let metrics_port = if help.contains("--metrics-addr") {
            let port = free_port()?;
            args.push(format!("--metrics-addr=127.0.0.1:{port}"));
            Some(port)
        } else {
            None
        };
        match &self.options.controller_identity {
            // As deployed: the Lease in the ServiceAccount's namespace (the chart's Role covers it).
            Some(identity) if help.contains("--election-namespace") => {
                args.push("--leader-election=true".to_string());
                args.push(format!("--election-namespace={}", identity.namespace));
            }
            _ if help.contains("--leader-election") => {
                args.push("--leader-election=false".to_string());
            }
            _ => {}
        }
        let webhook_port = if help.contains("--webhook-addr") {
            let port = free_port()?;
            args.push(format!("--webhook-addr=127.0.0.1:{port}"));
            args.push("--webhook-register".to_string());
            args.push(format!("--webhook-config-name={WEBHOOK_CONFIG_NAME}"));
            if help.contains("--randhostport") {
                // Two ports, so that three replicas share them and the anti-affinity shows on three nodes.
                args.push("--randhostport".to_string());
                args.push(format!("--randhostport-range={RANDHOSTPORT_RANGE}"));
            }
            Some(port)
        } else {
            None
        };
        Ok(ControllerCommand {
            args,
            metrics_port,
            webhook_port,
        })
    }

    /// Waits until the controller answers its health probe (`/readyz` with leader election:
    /// leader with synced caches; else `/healthz`) and its webhooks are registered. A crash or
    /// a missed deadline is an error with the log tail; the process is then stopped.
    async fn await_controller(
        &self,
        managed: &mut Managed,
        command: &ControllerCommand,
        log: &Path,
    ) -> Result<()> {
        let probe = if self.options.controller_identity.is_some() {
            "readyz"
        } else {
            "healthz"
        };
        let failed = |reason: String| Error::ComponentFailed {
            component: "clb-controller".to_string(),
            reason,
            log: log.to_path_buf(),
            log_tail: format!("\n{}", cluster::process::log_tail(log, 20)),
        };
        let deadline = Instant::now() + CONTROLLER_START;
        loop {
            if let Some(status) = managed.exited() {
                return Err(failed(format!("exited ({status})")));
            }
            let healthy = match command.metrics_port {
                Some(port) => self
                    .http
                    .get(format!("http://127.0.0.1:{port}/{probe}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                // Without a health endpoint: alive after a short grace counts as started.
                None => managed.age() > Duration::from_secs(2),
            };
            let healthy = match (healthy, command.webhook_port) {
                (true, Some(port)) => webhooks_registered(&self.client, port).await,
                (healthy, _) => healthy,
            };
            if healthy {
                return Ok(());
            }
            if Instant::now() >= deadline {
                managed.stop(true).await;
                return Err(failed(format!(
                    "not healthy within {}s",
                    CONTROLLER_START.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (then SIGKILL after a grace period), or SIGKILL at once with `kill`.
    pub async fn stop_controller(&mut self, kill: bool) {
        if let Some(mut managed) = self.controller.take() {
            managed.stop(kill).await;
        }
    }

    /// Process id of the controller the harness started, while it is managed.
    /// The `/metrics` address of the controller this environment started.
    pub fn controller_metrics_url(&self) -> Option<String> {
        self.controller.as_ref()?;
        let port = self.controller_metrics_port?;
        Some(format!("http://127.0.0.1:{port}/metrics"))
    }

    pub fn controller_pid(&self) -> Option<i32> {
        self.controller.as_ref().map(|c| c.info.pid)
    }

    pub fn controller_running(&mut self) -> bool {
        self.controller.as_mut().is_some_and(Managed::is_running)
    }

    fn env_file(&self) -> EnvFile {
        let account = self.cloud.accounts.first();
        EnvFile {
            kubeconfig: self.kubeconfig.clone(),
            fake_clb_endpoint: format!("http://{}", self.fake_api),
            fake_clb_admin: format!("http://{}", self.fake_admin),
            secret_id: account.map(|a| a.secret_id.clone()).unwrap_or_default(),
            secret_key: account.map(|a| a.secret_key.clone()).unwrap_or_default(),
            region: self.cloud.region.clone(),
            load_balancers: self
                .cloud
                .load_balancers
                .iter()
                .map(|lb| LoadBalancerInfo {
                    id: lb.id.clone(),
                    region: lb
                        .region
                        .clone()
                        .unwrap_or_else(|| self.cloud.region.clone()),
                    vips: lb.vips.clone(),
                })
                .collect(),
            controller_log: self.controller.as_ref().map(|c| c.info.log.clone()),
            fake_clb_log: self.fake.as_ref().map(|f| f.info.log.clone()),
            controller_note: self.controller_note.clone(),
            processes: self
                .fake
                .iter()
                .map(|f| f.info.clone())
                .chain(self.controller.iter().map(|c| c.info.clone()))
                .collect(),
            cluster_state_dir: self.cluster_state_dir.clone(),
        }
    }

    pub fn env_file_path(&self) -> PathBuf {
        self.state_dir.join("env.json")
    }

    fn write_env_file(&self) -> Result<()> {
        let path = self.env_file_path();
        let text =
            serde_json::to_string_pretty(&self.env_file()).map_err(|e| Error::Serialize {
                what: "env.json",
                reason: e.to_string(),
            })?;
        write_private(&path, &text)
    }

    /// Stops the controller, fake-clb and (with `stop_cluster`) a cluster this environment
    /// started. Errors are logged: teardown continues past them.
    pub async fn stop(mut self, stop_cluster: bool) {
        self.stop_controller(false).await;
        if self.cluster_state_dir.is_none() || !stop_cluster {
            remove_webhook_configurations(&self.client).await;
        }
        if let Some(fake) = self.fake.as_mut() {
            fake.stop(false).await;
        }
        if stop_cluster && let Some(dir) = &self.cluster_state_dir {
            match cluster::down(dir).await {
                Ok(report) => info!("{report}"),
                Err(e) => warn!("stopping the cluster: {e}"),
            }
        }
        let _ = std::fs::remove_file(self.env_file_path());
    }

    /// Leaves everything running (for `up` and `run --keep`); `down` stops it later.
    pub fn detach(self) -> PathBuf {
        self.env_file_path()
    }
}

/// How the controller was started: its arguments and the ports its probes are on.
struct ControllerCommand {
    args: Vec<String>,
    metrics_port: Option<u16>,
    webhook_port: Option<u16>,
}

/// Stops what `env.json` in `state_dir` records. Returns one line per action.
pub async fn down(state_dir: &Path) -> Result<Vec<String>> {
    let path = state_dir.join("env.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![format!(
                "nothing to stop: {} does not exist",
                path.display()
            )]);
        }
        Err(e) => return Err(Error::io("reading env file", &path, e)),
    };
    let env: EnvFile = serde_json::from_str(&text).map_err(|e| Error::BadState {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut lines = Vec::new();
    // Controller first, so it does not see fake-clb vanish.
    for info in env.processes.iter().rev() {
        let outcome = process::stop_recorded(info, false).await;
        lines.push(format!("{} (pid {}): {outcome}", info.name, info.pid));
    }
    match &env.cluster_state_dir {
        Some(dir) => lines.push(cluster::down(dir).await?.to_string()),
        None => {
            if let Ok(client) = cluster::client_from_kubeconfig(&env.kubeconfig).await {
                remove_webhook_configurations(&client).await;
                lines.push(format!(
                    "webhook configurations {WEBHOOK_CONFIG_NAME}: removed"
                ));
            }
        }
    }
    std::fs::remove_file(&path).map_err(|e| Error::io("removing env file", &path, e))?;
    Ok(lines)
}

/// Name of the webhook configurations the harness's controller registers (never the chart's).
pub const WEBHOOK_CONFIG_NAME: &str = "clb-harness";
/// Host ports of the controller's random-hostPort webhook in scenarios (`kind-config/*-values.yaml` say the same).
pub const RANDHOSTPORT_RANGE: &str = "29000-29001";

/// True once both webhook configurations point at this controller's port, so the first scenario's
/// pods are admitted by it (registration happens after the server listens).
async fn webhooks_registered(client: &kube::Client, port: u16) -> bool {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let needle = format!(":{port}/");
    let mutating: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(client.clone());
    let validating: kube::Api<ValidatingWebhookConfiguration> = kube::Api::all(client.clone());
    let urls_ok = |urls: Vec<Option<String>>| {
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| u.as_deref().is_some_and(|u| u.contains(&needle)))
    };
    let Ok(Some(m)) = mutating.get_opt(WEBHOOK_CONFIG_NAME).await else {
        return false;
    };
    let Ok(Some(v)) = validating.get_opt(WEBHOOK_CONFIG_NAME).await else {
        return false;
    };
    let m_urls = m
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.client_config.url)
        .collect();
    let v_urls = v
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.client_config.url)
        .collect();
    urls_ok(m_urls) && urls_ok(v_urls)
}

/// Deletes the harness's webhook configurations so a cluster that outlives the controller keeps
/// admitting pods and CRs (they fail closed). Errors are logged.
async fn remove_webhook_configurations(client: &kube::Client) {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let params = kube::api::DeleteParams::default();
    let mutating: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(client.clone());
    let validating: kube::Api<ValidatingWebhookConfiguration> = kube::Api::all(client.clone());
    for result in [
        mutating
            .delete(WEBHOOK_CONFIG_NAME, &params)
            .await
            .map(|_| ()),
        validating
            .delete(WEBHOOK_CONFIG_NAME, &params)
            .await
            .map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => warn!("removing webhook configuration {WEBHOOK_CONFIG_NAME}: {e}"),
        }
    }
}

/// Where fake-clb keeps its state when the scenario has `cloud.persistState`.
fn fake_clb_state_file(state_dir: &Path) -> PathBuf {
    state_dir.join("fake-clb-state.json")
}

/// Starts fake-clb. `resume` gives the ports of a fake-clb that was stopped: the new one listens
/// there (the controller keeps its endpoint) and loads the state file; otherwise it gets free
/// ports and a state file (if any) from scratch.
async fn start_fake_clb(
    options: &EnvOptions,
    state_dir: &Path,
    cloud: &CloudSetup,
    resume: Option<(SocketAddr, SocketAddr)>,
) -> Result<(Managed, SocketAddr, SocketAddr)> {
    let config_path = match &options.fake_clb_config {
        Some(path) => path.clone(),
        None => {
            let path = state_dir.join("fake-clb.yaml");
            let mut config = fake_clb_config(cloud);
            if cloud.persist_state {
                let state_file = fake_clb_state_file(state_dir);
                if resume.is_none() {
                    remove_file_if_exists(&state_file)?;
                }
                config["stateFile"] = json!(state_file);
            }
            let text = serde_yaml::to_string(&config).map_err(|e| Error::Serialize {
                what: "fake-clb config",
                reason: e.to_string(),
            })?;
            write_private(&path, &text)?;
            path
        }
    };
    let (api, admin) = match resume {
        Some((api, admin)) => (api.to_string(), admin.to_string()),
        None => ("127.0.0.1:0".to_string(), "127.0.0.1:0".to_string()),
    };
    let logs = state_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io("creating log dir", &logs, e))?;
    let out = logs.join("fake-clb.out");
    let log = logs.join("fake-clb.log");
    // A fresh stdout file, so the address line we parse is this run's.
    let _ = std::fs::remove_file(&out);
    let args = vec![
        format!("--config={}", config_path.display()),
        format!("--listen={api}"),
        format!("--admin-listen={admin}"),
    ];
    let mut managed = Managed::spawn("fake-clb", &options.fake_clb_bin, &args, &[], &out, &log)?;
    let deadline = Instant::now() + FAKE_CLB_START;
    loop {
        if let Some((api, admin)) = std::fs::read_to_string(&out)
            .ok()
            .and_then(|text| parse_listening_line(&text))
        {
            info!("fake-clb api={api} admin={admin}");
            return Ok((managed, api, admin));
        }
        let reason = if let Some(status) = managed.exited() {
            format!("exited ({status})")
        } else if Instant::now() >= deadline {
            managed.stop(true).await;
            format!("no address line within {}s", FAKE_CLB_START.as_secs())
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        return Err(Error::ComponentFailed {
            component: "fake-clb".to_string(),
            reason,
            log: log.clone(),
            log_tail: format!("\n{}", cluster::process::log_tail(&log, 20)),
        });
    }
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// `fake-clb listening api=127.0.0.1:PORT admin=127.0.0.1:PORT`.
fn parse_listening_line(text: &str) -> Option<(SocketAddr, SocketAddr)> {
    let line = text.lines().find(|l| l.starts_with("fake-clb listening"))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    Some((field("api=")?, field("admin=")?))
}

/// Accounts, LBs and region from a user-supplied fake-clb config, for env.json and the
/// controller's credentials.
fn cloud_from_config_file(path: &Path) -> Result<CloudSetup> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading fake-clb config", path, e))?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| Error::BadState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut cloud = CloudSetup {
        faults: Vec::new(),
        ..CloudSetup::default()
    };
    if let Some(accounts) = value.get("accounts") {
        cloud.accounts = serde_json::from_value(accounts.clone()).map_err(|e| Error::BadState {
            path: path.to_path_buf(),
            reason: format!("accounts: {e}"),
        })?;
    }
    cloud.load_balancers = value
        .get("loadBalancers")
        .and_then(Value::as_array)
        .map(|lbs| {
            lbs.iter()
                .filter_map(|lb| {
                    Some(crate::scenario::LoadBalancer {
                        id: lb.get("id")?.as_str()?.to_string(),
                        secret_id: lb
                            .get("secretId")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        region: lb.get("region").and_then(Value::as_str).map(str::to_string),
                        name: String::new(),
                        lb_type: "OPEN".to_string(),
                        vips: serde_json::from_value(lb.get("vips")?.clone()).ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(region) = cloud.load_balancers.iter().find_map(|lb| lb.region.clone()) {
        cloud.region = region;
    }
    Ok(cloud)
}

/// `clb-controller run --help` succeeding means the binary can run the controller.
fn controller_run_help(bin: &Path) -> std::result::Result<String, String> {
    let output = std::process::Command::new(bin)
        .args(["run", "--help"])
        .output()
        .map_err(|e| format!("cannot execute {}: {e}", bin.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{} run --help exited with {} (no `run` subcommand yet)",
            bin.display(),
            output.status
        ))
    }
}

/// The stand-in `tkex.tencent.com/v1alpha1` GameStatefulSet CRD (see the file's comment).
const TKEX_CRDS: &str = include_str!("../../manifests/tkex-crds.yaml");

/// Applies `clb-controller crds` and the stand-in GameStatefulSet CRD with server-side apply and waits until each
/// is Established.
pub async fn install_crds(client: &kube::Client, controller_bin: &Path) -> Result<Vec<String>> {
    let output = std::process::Command::new(controller_bin)
        .arg("crds")
        .output()
        .map_err(|e| {
            Error::Environment(format!(
                "cannot execute {} crds (build it: cargo build -p clb-controller): {e}",
                controller_bin.display()
            ))
        })?;
    if !output.status.success() {
        return Err(Error::Environment(format!(
            "{} crds failed ({}): {}",
            controller_bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // The controller's CRDs, then the stand-in GameStatefulSet CRD scenarios use.
    let text = format!(
        "{}\n---\n{TKEX_CRDS}",
        String::from_utf8_lossy(&output.stdout)
    );
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| {
            Error::Environment(format!("clb-controller crds printed invalid YAML: {e}"))
        })?;
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_json::from_value(value).map_err(|e| {
            Error::Environment(format!(
                "clb-controller crds printed a non-CRD document: {e}"
            ))
        })?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        names.push(name);
    }
    for name in &names {
        tokio::time::timeout(
            CRD_ESTABLISHED,
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: format!("CRD {name} Established"),
            seconds: CRD_ESTABLISHED.as_secs(),
        })?
        .map_err(|e| Error::Environment(format!("watching CRD {name}: {e}")))?;
    }
    info!("{} CRD(s) installed and Established", names.len());
    Ok(names)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::NoFreePort)?;
    Ok(listener.local_addr().map_err(Error::NoFreePort)?.port())
}

fn cluster_absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("reading working directory", ".", e))?;
    Ok(cwd.join(path))
}

/// env.json and the fake-clb config hold (test) credentials: owner-only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("writing", path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::LimitsPatch;

    #[test]
    fn fake_clb_config_fills_owner_and_region_and_renders_durations() {
        let cloud = CloudSetup {
            seed: Some(7),
            limits: LimitsPatch {
                action_qps: Some(5),
                task_duration: Some(Duration::from_millis(250)),
                ..LimitsPatch::default()
            },
            ..CloudSetup::default()
        };
        let config = fake_clb_config(&cloud);
        assert_eq!(config["seed"], 7);
        assert_eq!(
            config["loadBalancers"][0]["secretId"],
            cloud.accounts[0].secret_id
        );
        assert_eq!(config["loadBalancers"][0]["region"], "ap-guangzhou");
        assert_eq!(
            config["limits"],
            json!({"actionQps": 5, "taskDuration": "250ms"})
        );
        assert!(config.get("listen").is_none());
    }

    #[test]
    fn parses_the_fake_clb_address_line() {
        let text = "noise\nfake-clb listening api=127.0.0.1:4100 admin=127.0.0.1:4101\n";
        let (api, admin) = parse_listening_line(text).unwrap();
        assert_eq!(api.port(), 4100);
        assert_eq!(admin.port(), 4101);
        assert!(parse_listening_line("fake-clb listening api=x").is_none());
    }
}
