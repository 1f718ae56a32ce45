//! Pure description of the control plane: state-dir layout, ports, command lines, config files.
//!
//! Nothing here touches the disk or the network, so the flags every component gets can be
//! unit-tested; `mod.rs` writes the files and `process.rs` starts the commands.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::build::Binaries;
use crate::error::{Error, Result};

/// Loopback only: no component may listen on another address.
pub const BIND_ADDRESS: &str = "127.0.0.1";
/// Services get ClusterIPs from here; 10.96.0.1 is the `kubernetes` Service.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// Fallback pod range for kwok; every fake node has its own podCIDR inside 10.244.0.0/16.
pub const KWOK_FALLBACK_POD_CIDR: &str = "10.245.0.0/16";
/// kwok manages only nodes carrying this annotation (the harness creates them).
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// Client rate limits for KCM and the scheduler: high enough to never throttle a test.
pub const CLIENT_QPS: u32 = 5000;
pub const CLIENT_BURST: u32 = 10000;

/// Paths inside the state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// `root` should be absolute: the paths end up in other processes' command lines.
    pub fn new(root: PathBuf) -> Self {
        Layout { root }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    /// The admin kubeconfig: what tests, the controller and kubectl use.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn pki(&self, file: &str) -> PathBuf {
        self.pki_dir().join(file)
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn config(&self, file: &str) -> PathBuf {
        self.config_dir().join(file)
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, component: Component) -> PathBuf {
        self.logs_dir().join(format!("{}.log", component.name()))
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd-data")
    }
    /// kwok reads `$HOME/.kwok/kwok.yaml` if present; a private HOME keeps a user's file out.
    pub fn kwok_home(&self) -> PathBuf {
        self.root.join("kwok-home")
    }
}

/// The processes of the control plane, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kwok,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Kwok,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Kwok => "kwok",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Loopback ports, picked free at `up` and recorded in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
    pub kwok: u16,
}

impl Ports {
    pub fn all(&self) -> [u16; 6] {
        [
            self.etcd_client,
            self.etcd_peer,
            self.apiserver,
            self.controller_manager,
            self.scheduler,
            self.kwok,
        ]
    }

    pub fn apiserver_url(&self) -> String {
        format!("https://{BIND_ADDRESS}:{}", self.apiserver)
    }

    /// The URL that answers 200 once the component is healthy.
    pub fn health_url(&self, component: Component) -> String {
        match component {
            Component::Etcd => format!("http://{BIND_ADDRESS}:{}/health", self.etcd_client),
            Component::KubeApiserver => format!("{}/readyz", self.apiserver_url()),
            Component::KubeControllerManager => {
                format!("https://{BIND_ADDRESS}:{}/healthz", self.controller_manager)
            }
            Component::KubeScheduler => {
                format!("https://{BIND_ADDRESS}:{}/healthz", self.scheduler)
            }
            Component::Kwok => format!("http://{BIND_ADDRESS}:{}/healthz", self.kwok),
        }
    }

    /// The address the component serves on, for `status`.
    pub fn listen_port(&self, component: Component) -> u16 {
        match component {
            Component::Etcd => self.etcd_client,
            Component::KubeApiserver => self.apiserver,
            Component::KubeControllerManager => self.controller_manager,
            Component::KubeScheduler => self.scheduler,
            Component::Kwok => self.kwok,
        }
    }
}

/// A command to start.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub component: Component,
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

fn arg(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

fn path_arg(name: &str, path: &Path) -> String {
    arg(name, path.display())
}

/// The command line of one component.
pub fn command(
    component: Component,
    layout: &Layout,
    ports: &Ports,
    binaries: &Binaries,
) -> CommandSpec {
    let (binary, args, env) = match component {
        Component::Etcd => (binaries.etcd.clone(), etcd_args(layout, ports), vec![]),
        Component::KubeApiserver => (
            binaries.kube_apiserver.clone(),
            apiserver_args(layout, ports),
            vec![],
        ),
        Component::KubeControllerManager => (
            binaries.kube_controller_manager.clone(),
            controller_manager_args(layout, ports),
            vec![],
        ),
        Component::KubeScheduler => (
            binaries.kube_scheduler.clone(),
            scheduler_args(layout, ports),
            vec![],
        ),
        Component::Kwok => {
            let env = vec![("HOME".to_owned(), layout.kwok_home().display().to_string())];
            (binaries.kwok.clone(), kwok_args(layout, ports), env)
        }
    };
    CommandSpec {
        component,
        binary,
        args,
        env,
    }
}

fn etcd_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    let ip = BIND_ADDRESS;
    let peer = format!("http://{ip}:{}", ports.etcd_peer);
    let client = format!("http://{ip}:{}", ports.etcd_client);
    vec![
        arg("name", "clb"),
        path_arg("data-dir", &layout.etcd_data()),
        arg("listen-client-urls", &client),
        arg("advertise-client-urls", &client),
        arg("listen-peer-urls", &peer),
        arg("initial-advertise-peer-urls", &peer),
        arg("initial-cluster", format!("clb={peer}")),
        arg("initial-cluster-state", "new"),
        // Throw-away test data: durability buys nothing and fsync costs seconds.
        arg("unsafe-no-fsync", true),
        arg("auto-compaction-mode", "periodic"),
        arg("auto-compaction-retention", "5m"),
        arg("log-level", "warn"),
    ]
}

fn apiserver_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    let ip = BIND_ADDRESS;
    let mut args = vec![
        arg("etcd-servers", format!("http://{ip}:{}", ports.etcd_client)),
        arg("bind-address", ip),
        arg("advertise-address", ip),
        arg("secure-port", ports.apiserver),
        path_arg("tls-cert-file", &layout.pki("apiserver.crt")),
        path_arg("tls-private-key-file", &layout.pki("apiserver.key")),
        path_arg("client-ca-file", &layout.pki("ca.crt")),
        path_arg("service-account-key-file", &layout.pki("sa.pub")),
        path_arg("service-account-signing-key-file", &layout.pki("sa.key")),
        arg(
            "service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
        ),
        arg("service-cluster-ip-range", SERVICE_CIDR),
    ];
    args.extend(front_proxy_args(layout));
    args.extend([
        arg("authorization-mode", "Node,RBAC"),
        arg("allow-privileged", true),
        // Endpoints may not hold loopback addresses, so the `kubernetes` Service
        // cannot point at 127.0.0.1; nothing in a kwok cluster dials it anyway.
        arg("endpoint-reconciler-type", "none"),
        // No server-side throttling: tests create objects in bursts.
        arg("max-requests-inflight", 0),
        arg("max-mutating-requests-inflight", 0),
        arg("enable-priority-and-fairness", false),
    ]);
    args
}

/// Front-proxy (aggregation) trust: without it KCM and the scheduler log errors about a
/// missing requestheader CA on every start.
fn front_proxy_args(layout: &Layout) -> Vec<String> {
    vec![
        path_arg(
            "requestheader-client-ca-file",
            &layout.pki("front-proxy-ca.crt"),
        ),
        arg("requestheader-allowed-names", "front-proxy-client"),
        arg("requestheader-username-headers", "X-Remote-User"),
        arg("requestheader-group-headers", "X-Remote-Group"),
        arg("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        path_arg(
            "proxy-client-cert-file",
            &layout.pki("front-proxy-client.crt"),
        ),
        path_arg(
            "proxy-client-key-file",
            &layout.pki("front-proxy-client.key"),
        ),
    ]
}

fn controller_manager_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    let kubeconfig = layout.config("controller-manager.kubeconfig");
    vec![
        path_arg("kubeconfig", &kubeconfig),
        path_arg("authentication-kubeconfig", &kubeconfig),
        path_arg("authorization-kubeconfig", &kubeconfig),
        arg("bind-address", BIND_ADDRESS),
        arg("secure-port", ports.controller_manager),
        path_arg("tls-cert-file", &layout.pki("controller-manager.crt")),
        path_arg(
            "tls-private-key-file",
            &layout.pki("controller-manager.key"),
        ),
        arg("leader-elect", false),
        arg("use-service-account-credentials", true),
        path_arg("service-account-private-key-file", &layout.pki("sa.key")),
        path_arg("root-ca-file", &layout.pki("ca.crt")),
        path_arg("cluster-signing-cert-file", &layout.pki("ca.crt")),
        path_arg("cluster-signing-key-file", &layout.pki("ca.key")),
        // Fake nodes get their podCIDRs from the harness.
        arg("allocate-node-cidrs", false),
        // The default (20 qps) throttles Deployment/ReplicaSet/Pod creation.
        arg("kube-api-qps", CLIENT_QPS),
        arg("kube-api-burst", CLIENT_BURST),
    ]
}

fn scheduler_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    let kubeconfig = layout.config("scheduler.kubeconfig");
    vec![
        path_arg("config", &layout.config("scheduler.yaml")),
        path_arg("authentication-kubeconfig", &kubeconfig),
        path_arg("authorization-kubeconfig", &kubeconfig),
        arg("bind-address", BIND_ADDRESS),
        arg("secure-port", ports.scheduler),
        path_arg("tls-cert-file", &layout.pki("scheduler.crt")),
        path_arg("tls-private-key-file", &layout.pki("scheduler.key")),
    ]
}

fn kwok_args(layout: &Layout, ports: &Ports) -> Vec<String> {
    vec![
        path_arg("kubeconfig", &layout.config("kwok.kubeconfig")),
        path_arg("config", &layout.config("kwok.yaml")),
        arg("manage-all-nodes", false),
        arg(
            "manage-nodes-with-annotation-selector",
            format!("{}={}", KWOK_NODE_ANNOTATION.0, KWOK_NODE_ANNOTATION.1),
        ),
        arg("server-address", format!("{}:{}", BIND_ADDRESS, ports.kwok)),
        arg("cidr", KWOK_FALLBACK_POD_CIDR),
        // Leases keep the node lifecycle controller from marking nodes NotReady.
        arg("node-lease-duration-seconds", 40),
    ]
}

/// Identity (user, groups) each client connects as. KCM and the scheduler use their
/// bootstrap RBAC identities; kwok writes pod and node status for every node, so it is admin.
pub fn client_identity(name: &str) -> (&'static str, &'static [&'static str]) {
    match name {
        "controller-manager" => ("system:kube-controller-manager", &[]),
        "scheduler" => ("system:kube-scheduler", &[]),
        _ => ("clb-admin", &["system:masters"]),
    }
}

/// A kubeconfig with embedded credentials, as YAML.
pub fn kubeconfig_yaml(
    server: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<String> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "clb-testbed",
            "cluster": { "server": server, "certificate-authority-data": b64(ca_pem) },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": b64(cert_pem),
                "client-key-data": b64(key_pem),
            },
        }],
        "contexts": [{
            "name": "clb-testbed",
            "context": { "cluster": "clb-testbed", "user": user },
        }],
        "current-context": "clb-testbed",
    });
    serde_yaml::to_string(&doc).map_err(|e| Error::Serialize {
        what: "kubeconfig",
        reason: e.to_string(),
    })
}

/// KubeSchedulerConfiguration: the scheduler's rate limits are only settable here.
pub fn scheduler_config_yaml(kubeconfig: &Path) -> Result<String> {
    let doc = json!({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {
            "kubeconfig": kubeconfig.display().to_string(),
            "qps": CLIENT_QPS,
            "burst": CLIENT_BURST,
        },
        "leaderElection": { "leaderElect": false },
    });
    serde_yaml::to_string(&doc).map_err(|e| Error::Serialize {
        what: "scheduler config",
        reason: e.to_string(),
    })
}

/// kwok Stages. Based on kwok's "fast" stages with one change: a pod's Ready condition
/// follows its readiness gates (Ready only when every gate condition is True), as kubelet
/// does, instead of kwok forcing every gate True. A controller that gates readiness on a
/// load-balancer target therefore sees real gate semantics.
pub const KWOK_STAGES: &str = include_str!("kwok-stages.yaml");

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Layout, Ports, Binaries) {
        let layout = Layout::new(PathBuf::from("/state"));
        let ports = Ports {
            etcd_client: 1001,
            etcd_peer: 1002,
            apiserver: 1003,
            controller_manager: 1004,
            scheduler: 1005,
            kwok: 1006,
        };
        let bin = |n: &str| PathBuf::from(format!("/cache/{n}"));
        let binaries = Binaries {
            etcd: bin("etcd"),
            kube_apiserver: bin("kube-apiserver"),
            kube_controller_manager: bin("kube-controller-manager"),
            kube_scheduler: bin("kube-scheduler"),
            kwok: bin("kwok"),
            kubernetes_version: "v1.34.4".to_owned(),
        };
        (layout, ports, binaries)
    }

    /// Every address-like flag of every component names 127.0.0.1 and nothing else.
    #[test]
    fn every_listener_is_loopback() {
        let (layout, ports, binaries) = fixture();
        for component in Component::ALL {
            let spec = command(component, &layout, &ports, &binaries);
            let listeners: Vec<&String> = spec
                .args
                .iter()
                .filter(|a| a.contains("address") || a.contains("listen") || a.contains("-urls"))
                .filter(|a| !a.contains("annotation-selector"))
                .collect();
            assert!(!listeners.is_empty(), "{component} has no listen flag");
            for flag in listeners {
                assert!(flag.contains("127.0.0.1"), "{component}: {flag}");
                assert!(!flag.contains("0.0.0.0"), "{component}: {flag}");
            }
        }
    }

    #[test]
    fn controllers_are_not_rate_limited() {
        let (layout, ports, binaries) = fixture();
        let kcm = command(Component::KubeControllerManager, &layout, &ports, &binaries);
        assert!(kcm.args.contains(&format!("--kube-api-qps={CLIENT_QPS}")));
        assert!(
            kcm.args
                .contains(&format!("--kube-api-burst={CLIENT_BURST}"))
        );
        let sched: serde_yaml::Value =
            serde_yaml::from_str(&scheduler_config_yaml(Path::new("/k")).unwrap()).unwrap();
        assert_eq!(sched["clientConnection"]["qps"], CLIENT_QPS);
        assert_eq!(sched["clientConnection"]["burst"], CLIENT_BURST);
    }

    #[test]
    fn components_use_distinct_ports_and_their_binaries() {
        let (layout, ports, binaries) = fixture();
        let mut seen = std::collections::HashSet::new();
        for component in Component::ALL {
            let spec = command(component, &layout, &ports, &binaries);
            assert!(spec.binary.ends_with(component.name()));
            assert!(seen.insert(ports.listen_port(component)));
        }
        let kwok = command(Component::Kwok, &layout, &ports, &binaries);
        assert!(
            kwok.env
                .iter()
                .any(|(k, v)| k == "HOME" && v == "/state/kwok-home")
        );
    }

    #[test]
    fn kubeconfig_embeds_server_and_credentials() {
        let yaml = kubeconfig_yaml("https://127.0.0.1:1", "CA", "me", "CERT", "KEY").unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:1"
        );
        assert_eq!(doc["users"][0]["user"]["client-key-data"], "S0VZ");
        assert_eq!(doc["current-context"], "clb-testbed");
    }

    #[test]
    fn kwok_stages_parse_and_cover_nodes_and_pods() {
        let names: Vec<(String, String)> = serde_yaml::Deserializer::from_str(KWOK_STAGES)
            .map(|doc| {
                let v = serde_yaml::Value::deserialize(doc).unwrap();
                assert_eq!(v["kind"], "Stage");
                (
                    v["metadata"]["name"].as_str().unwrap().to_owned(),
                    v["spec"]["resourceRef"]["kind"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        for (name, kind) in [
            ("node-initialize", "Node"),
            ("node-heartbeat", "Node"),
            ("pod-ready", "Pod"),
            ("pod-readiness-gates", "Pod"),
            ("pod-complete", "Pod"),
            ("pod-delete", "Pod"),
        ] {
            assert!(
                names.contains(&(name.to_owned(), kind.to_owned())),
                "missing stage {name}"
            );
        }
    }
}
