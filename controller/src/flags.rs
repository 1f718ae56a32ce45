//! Flags of `clb-controller run`. Every flag has an environment variable; where bcs-ingress-controller has one
//! for the same thing, its name is used (TENCENTCLOUD_*, INGRESS_POD_NAME).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use clb_controller::cloud::{ClientConfig, Credentials, DEFAULT_ENDPOINT, RateLimit};
use clb_controller::runtime::{LeaderElectionConfig, RuntimeConfig};
use clb_controller::sync::WorkerConfig;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct RunFlags {
    /// Kubeconfig file. Without it: $KUBECONFIG, ~/.kube/config, then the in-cluster service account.
    #[arg(long, env = "CLB_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// CLB API endpoint URL (http://127.0.0.1:PORT for fake-clb). A bare host (bcs' TENCENTCLOUD_CLB_DOMAIN)
    /// gets https://.
    #[arg(long, env = "TENCENTCLOUD_CLB_DOMAIN", default_value = DEFAULT_ENDPOINT, value_name = "URL")]
    pub clb_endpoint: String,

    /// Default region of load balancers referenced without a `region:` prefix or lbregion label
    /// (e.g. ap-guangzhou).
    #[arg(long, env = "TENCENTCLOUD_REGION", value_name = "REGION")]
    pub region: String,

    /// Tencent Cloud SecretId. Also read from TENCENTCLOUD_ACCESS_KEY_ID (bcs); never logged.
    #[arg(
        long,
        env = "TENCENTCLOUD_SECRET_ID",
        hide_env_values = true,
        value_name = "ID"
    )]
    pub secret_id: Option<String>,

    /// Tencent Cloud SecretKey. Also read from TENCENTCLOUD_ACESS_KEY (bcs); never logged. Prefer the environment
    /// or --credentials-dir: command lines are visible to other users.
    #[arg(
        long,
        env = "TENCENTCLOUD_SECRET_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub secret_key: Option<String>,

    /// Directory of a mounted Secret holding TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY files (or the bcs
    /// names, or secretId / secretKey). Used when --secret-id / --secret-key are not given.
    #[arg(long, env = "CLB_CREDENTIALS_DIR", value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,

    /// Client-side CLB request rate per action per second (the API allows 20); 0 disables the limiter.
    #[arg(
        long,
        env = "TENCENTCLOUD_RATELIMIT_QPS",
        default_value_t = 20.0,
        value_name = "QPS"
    )]
    pub clb_qps: f64,

    /// Requests per action that may go out back to back after an idle period.
    #[arg(
        long,
        env = "TENCENTCLOUD_RATELIMIT_BUCKET_SIZE",
        default_value_t = 1,
        value_name = "N"
    )]
    pub clb_burst: u32,

    /// Deadline of one CLB operation: every attempt, retry backoff, rate-limit wait and task poll.
    #[arg(long, env = "CLB_OPERATION_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub operation_timeout: Duration,

    /// Limit of one HTTP request to the CLB API (also the connect timeout).
    #[arg(long, env = "CLB_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,

    /// Deadline of one sync pass of a load balancer (read, plan, all calls).
    #[arg(long, env = "CLB_PASS_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub pass_timeout: Duration,

    /// Full re-sync of every load balancer this long after its last pass, repairing changes made in the console
    /// (bcs: --listener_auto_reconcile_seconds); 0 turns it off.
    #[arg(long, env = "CLB_RESYNC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub resync_interval: Duration,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "CLB_METRICS_ADDR",
        default_value = "127.0.0.1:8081",
        value_name = "ADDR"
    )]
    pub metrics_addr: SocketAddr,

    /// Leader election on a coordination.k8s.io Lease; only the leader reconciles. Turn off only with one
    /// replica.
    #[arg(long, env = "CLB_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub leader_election: bool,

    /// Namespace of the leader-election Lease (bcs: --election_namespace).
    #[arg(
        long,
        env = "CLB_ELECTION_NAMESPACE",
        default_value = "bcs-system",
        value_name = "NAMESPACE"
    )]
    pub election_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "CLB_LEASE_NAME",
        default_value = "clb-controller",
        value_name = "NAME"
    )]
    pub lease_name: String,

    /// This replica's identity in the Lease and in events (set it from the downward API). Default: the host
    /// name.
    #[arg(long, env = "INGRESS_POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,

    /// Watch Listener CRs in this namespace only (default: all namespaces).
    #[arg(long, env = "CLB_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Apply the CRDs with server-side apply at start and wait until they are established (needs
    /// cluster-wide CRD write access; handy for tests and development).
    #[arg(long, env = "CLB_INSTALL_CRDS")]
    pub install_crds: bool,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `info,clb_controller=debug`.
    #[arg(
        long,
        env = "CLB_LOG_LEVEL",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "CLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl RunFlags {
    /// Logs go to stderr.
    pub fn init_logging(&self) -> anyhow::Result<()> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .with_context(|| format!("--log-level {:?}", self.log_level))?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let result = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
        result.map_err(|e| anyhow::anyhow!("initialising logging: {e}"))
    }

    pub fn into_config(self) -> anyhow::Result<RuntimeConfig> {
        let credentials = Credentials::resolve(
            self.secret_id.as_deref(),
            self.secret_key.as_deref(),
            self.credentials_dir.as_deref(),
        )
        .context("CLB credentials")?;
        let endpoint = if self.clb_endpoint.contains("://") {
            self.clb_endpoint
        } else {
            format!("https://{}", self.clb_endpoint)
        };
        let instance = match self.pod_name.filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => hostname(),
        };
        let cloud = ClientConfig {
            endpoint,
            default_region: self.region,
            request_timeout: self.request_timeout,
            operation_timeout: self.operation_timeout,
            rate_limit: RateLimit {
                per_second: self.clb_qps,
                burst: self.clb_burst.max(1),
            },
            ..ClientConfig::default()
        };
        let worker = WorkerConfig {
            pass_timeout: self.pass_timeout,
            resync_interval: self.resync_interval,
            ..WorkerConfig::default()
        };
        Ok(RuntimeConfig {
            kubeconfig: self.kubeconfig,
            cloud,
            credentials,
            worker,
            metrics_addr: self.metrics_addr,
            leader_election: self.leader_election.then(|| {
                LeaderElectionConfig::new(&self.election_namespace, &self.lease_name, &instance)
            }),
            watch_namespace: self.watch_namespace.filter(|n| !n.is_empty()),
            install_crds: self.install_crds,
            instance,
        })
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "clb-controller".to_string())
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}
