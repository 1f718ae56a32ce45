//! Flags of `clb-controller run`. Every flag has an environment variable; where bcs-ingress-controller has one
//! for the same thing, its name is used (TENCENTCLOUD_*, INGRESS_POD_NAME).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use clb_controller::cloud::{ClientConfig, Credentials, DEFAULT_ENDPOINT, RateLimit};
use clb_controller::manager::{LeaderElectionConfig, RuntimeConfig};
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

    /// Ports the pod webhook allocated that no stored pod or PortBinding records after this long are released
    /// by the leader's leak checker (checked every quarter of it). A bare number is seconds.
    #[arg(long, env = "PORT_LEAK_THRESHOLD_SECONDS", default_value = "300", value_parser = parse_seconds, value_name = "DURATION")]
    pub port_leak_threshold: Duration,

    /// Ports the pod webhook reserved for a pod that was then refused are released this long after admission
    /// (refused before the pod validating webhook) or after validation (refused later, e.g. by a quota), instead
    /// of after the leak threshold. Needs the pod validating webhook (`/portpool/v1/validate-pod`, registered
    /// with the mutating one). 0 turns it off.
    #[arg(long, env = "CLB_PORT_RESERVATION_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub port_reservation_timeout: Duration,

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

    #[command(flatten)]
    pub webhook: WebhookFlags,
}

impl RunFlags {
    /// Logs go to stderr.
    pub fn init_logging(&self) -> anyhow::Result<()> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .with_context(|| format!("--log-level {:?}", self.log_level))?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
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
        let randhostport = self
            .webhook
            .randhostport
            .then_some(self.webhook.randhostport_range);
        let webhook = self.webhook.into_config(&self.region)?;
        anyhow::ensure!(
            randhostport.is_none() || webhook.is_some(),
            "--randhostport needs the webhook server (--webhook-addr)"
        );
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
            webhook,
            port_leak_threshold: self.port_leak_threshold,
            port_reservation_timeout: self.port_reservation_timeout,
            randhostport,
        })
    }
}

/// A duration given as whole seconds (`300`, as bcs' PORT_LEAK_THRESHOLD_SECONDS) or humantime (`5m`); not 0.
fn parse_seconds(value: &str) -> Result<Duration, String> {
    let parsed = match value.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(value.trim()).map_err(|e| e.to_string())?,
    };
    if parsed.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(parsed)
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

/// Flags of the admission webhooks (`src/webhook/`).
#[derive(Debug, Args)]
pub struct WebhookFlags {
    /// Serve the Ingress/PortPool validating webhooks over HTTPS on this address. Given without a value:
    /// 127.0.0.1:9443. Absent: no webhook. In a cluster use 0.0.0.0:9443 (the API server calls the pod IP).
    #[arg(long, env = "CLB_WEBHOOK_ADDR", value_name = "ADDR", num_args = 0..=1,
        default_missing_value = clb_controller::webhook::DEFAULT_ADDR)]
    pub webhook_addr: Option<SocketAddr>,

    /// Serving certificate (PEM chain). With --webhook-key-file; without both, a self-signed CA and
    /// certificate are generated at start (bcs: --server_cert_file).
    #[arg(
        long,
        env = "CLB_WEBHOOK_CERT_FILE",
        value_name = "FILE",
        requires = "webhook_key_file"
    )]
    pub webhook_cert_file: Option<PathBuf>,

    /// Private key of the serving certificate (PEM; bcs: --server_key_file).
    #[arg(
        long,
        env = "CLB_WEBHOOK_KEY_FILE",
        value_name = "FILE",
        requires = "webhook_cert_file"
    )]
    pub webhook_key_file: Option<PathBuf>,

    /// CA bundle written into the webhook configuration with --webhook-register (default: the
    /// certificate file, right for a self-signed certificate).
    #[arg(long, env = "CLB_WEBHOOK_CA_FILE", value_name = "FILE")]
    pub webhook_ca_file: Option<PathBuf>,

    /// SANs of a generated certificate: IP addresses or DNS names (repeat or comma-separate), e.g.
    /// clb-webhook.bcs-system.svc.
    #[arg(long, env = "CLB_WEBHOOK_HOSTS", value_name = "HOST", value_delimiter = ',',
        default_values_t = clb_controller::webhook::certs::DEFAULT_HOSTS.map(String::from))]
    pub webhook_host: Vec<String>,

    /// Serve the random-hostPort webhook (`/randhostport/v1/mutate`, bcs-webhook-server's plugin): annotated pods
    /// get host ports from `--randhostport-range`, least-held first. Registered with `--webhook-register`.
    #[arg(long, env = "CLB_RANDHOSTPORT")]
    pub randhostport: bool,

    /// Host ports the random-hostPort webhook hands out, `START-END` inclusive.
    #[arg(
        long,
        env = "CLB_RANDHOSTPORT_RANGE",
        default_value = "29000-29999",
        value_name = "START-END"
    )]
    pub randhostport_range: clb_controller::randhostport::PortRange,

    /// Server-side apply the ValidatingWebhookConfiguration (with the caBundle) once the server listens.
    #[arg(long, env = "CLB_WEBHOOK_REGISTER")]
    pub webhook_register: bool,

    /// Name of the registered ValidatingWebhookConfiguration.
    #[arg(
        long,
        env = "CLB_WEBHOOK_CONFIG_NAME",
        default_value = "clb-controller",
        value_name = "NAME"
    )]
    pub webhook_config_name: String,

    /// Base URL the API server calls (https://host:port). Default: the Service given by
    /// --webhook-service-name, else https://<webhook address>.
    #[arg(
        long,
        env = "CLB_WEBHOOK_URL_BASE",
        value_name = "URL",
        conflicts_with = "webhook_service_name"
    )]
    pub webhook_url_base: Option<String>,

    /// Service in front of the controller's webhook port (registration through a Service).
    #[arg(long, env = "CLB_WEBHOOK_SERVICE_NAME", value_name = "NAME")]
    pub webhook_service_name: Option<String>,

    /// Namespace of --webhook-service-name.
    #[arg(
        long,
        env = "CLB_WEBHOOK_SERVICE_NAMESPACE",
        default_value = "bcs-system",
        value_name = "NAMESPACE"
    )]
    pub webhook_service_namespace: String,

    /// Port of --webhook-service-name.
    #[arg(
        long,
        env = "CLB_WEBHOOK_SERVICE_PORT",
        default_value_t = 443,
        value_name = "PORT"
    )]
    pub webhook_service_port: i32,

    /// Limit of one admission decision, reading the cluster included; running out denies.
    #[arg(long, env = "CLB_WEBHOOK_TIMEOUT", default_value = "8s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub webhook_timeout: Duration,

    /// Let TCP and UDP rules of two Ingresses in one namespace share a port (bcs' TCP_UDP_PORT_REUSE;
    /// their Listener CRs then carry the protocol in the name).
    #[arg(long = "webhook-tcp-udp-port-reuse", env = "TCP_UDP_PORT_REUSE", default_value_t = false,
        action = clap::ArgAction::Set, value_name = "BOOL")]
    pub tcp_udp_port_reuse: bool,
}

impl WebhookFlags {
    fn into_config(
        self,
        default_region: &str,
    ) -> anyhow::Result<Option<clb_controller::webhook::WebhookConfig>> {
        use clb_controller::webhook::{CertSource, Registration, WebhookConfig, WebhookTarget};
        let Some(addr) = self.webhook_addr else {
            return Ok(None);
        };
        let certs = match (self.webhook_cert_file, self.webhook_key_file) {
            (Some(cert_file), Some(key_file)) => CertSource::Files {
                cert_file,
                key_file,
                ca_file: self.webhook_ca_file,
            },
            _ => CertSource::SelfSigned {
                hosts: self
                    .webhook_host
                    .into_iter()
                    .filter(|h| !h.trim().is_empty())
                    .collect(),
            },
        };
        let target = match (self.webhook_url_base, self.webhook_service_name) {
            (Some(url), _) => {
                anyhow::ensure!(
                    url.starts_with("https://"),
                    "--webhook-url-base {url:?} must start with https://"
                );
                Some(WebhookTarget::Url(url))
            }
            (None, Some(name)) => Some(WebhookTarget::Service {
                namespace: self.webhook_service_namespace,
                name,
                port: self.webhook_service_port,
            }),
            (None, None) => None,
        };
        Ok(Some(WebhookConfig {
            addr,
            certs,
            registration: self.webhook_register.then_some(Registration {
                config_name: self.webhook_config_name,
                randhostport: self.randhostport,
                target,
            }),
            settings: clb_controller::ingress::Settings {
                default_region: default_region.to_owned(),
                tcp_udp_port_reuse: self.tcp_udp_port_reuse,
            },
            request_timeout: self.webhook_timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_threshold_takes_bare_seconds_or_a_duration_but_not_zero() {
        assert_eq!(parse_seconds("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_seconds("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
