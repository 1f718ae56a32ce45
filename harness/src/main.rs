//! clb-harness command line. Kept thin: each subcommand parses its flags and calls the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use clb_harness::cluster::{self, build};
use clb_harness::env::{self, EnvOptions, Environment};
use clb_harness::{runner, scenario};

#[derive(Debug, Parser)]
#[command(
    name = "clb-harness",
    version,
    about = "Scenario harness for the CLB controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the local Kubernetes control plane (etcd, apiserver, KCM, scheduler, kwok).
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Start the environment (cluster or --kubeconfig, fake-clb, CRDs, controller) and leave it
    /// running; prints the path of env.json.
    Up {
        #[command(flatten)]
        env: EnvArgs,
        /// Take the cloud setup (accounts, LBs, limits, faults) from this scenario.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Stop everything `up` (or `run --keep`) started.
    Down {
        /// State directory of the environment.
        #[arg(long, default_value = env::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Run scenario files or directories of them; exits 1 if anything failed.
    Run {
        /// Scenario files, or directories whose *.yaml files are scenarios.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        env: EnvArgs,
        /// Where junit.xml, summary.json, samples.jsonl and summary.md go [default: reports/<UTC timestamp>].
        #[arg(long)]
        report_dir: Option<PathBuf>,
        /// Leave the environment and the scenario namespaces running (stop later with `down`).
        #[arg(long)]
        keep: bool,
        /// Also write the measurements as dated benchmark results (JSON and Markdown, with the
        /// machine description, compared with the newest earlier file) into this directory.
        #[arg(long, value_name = "DIR")]
        results_dir: Option<PathBuf>,
    },
    /// Parse and validate scenario files without running them.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the scenario format (or write it with --output).
    Schema {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct EnvArgs {
    /// Environment state: env.json, fake-clb config, logs of fake-clb and the controller.
    #[arg(long, default_value = env::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Use this cluster instead of starting the local control plane.
    #[arg(long, env = "CLB_HARNESS_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// State directory of the local control plane (when no --kubeconfig).
    #[arg(long, default_value = cluster::DEFAULT_STATE_DIR)]
    cluster_state_dir: PathBuf,
    /// Fake nodes of the local control plane.
    #[arg(long, default_value_t = cluster::DEFAULT_NODES)]
    nodes: u32,
    /// Machine-local cache for control-plane binaries [default: $CLB_CACHE_DIR, else ~/.cache/clb-testbed].
    #[arg(long, default_value_os_t = build::default_cache_dir(), hide_default_value = true)]
    cache_dir: PathBuf,
    /// Directory with build.sh.
    #[arg(long, env = "CLB_CONTROLPLANE_DIR", default_value_os_t = build::default_controlplane_dir())]
    controlplane_dir: PathBuf,
    /// fake-clb binary [default: next to clb-harness].
    #[arg(long, env = "FAKE_CLB_BIN")]
    fake_clb_bin: Option<PathBuf>,
    /// clb-controller binary [default: next to clb-harness].
    #[arg(long, env = "CLB_CONTROLLER_BIN")]
    controller_bin: Option<PathBuf>,
    /// Use this fake-clb config instead of one generated from the scenario.
    #[arg(long)]
    fake_clb_config: Option<PathBuf>,
    /// Do not start the controller even if `clb-controller run` exists.
    #[arg(long)]
    no_controller: bool,
    /// Run the controller as this ServiceAccount: a kubeconfig holding only a TokenRequest token for it,
    /// leader election in NAMESPACE. Proves that an RBAC grant (--controller-rbac) is enough.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    controller_service_account: Option<String>,
    /// Manifests (multi-document YAML, e.g. the chart's rendered RBAC) applied before the controller
    /// starts as --controller-service-account. Repeatable.
    #[arg(long, value_name = "FILE", requires = "controller_service_account")]
    controller_rbac: Vec<PathBuf>,
    /// CLB API of a fake-clb that is already running (e.g. the fake-clb chart in kind, via a node port);
    /// the harness then starts none. Needs --fake-clb-admin and --fake-clb-config (its cloud).
    #[arg(long, value_name = "ADDR", requires_all = ["fake_clb_admin", "fake_clb_config"])]
    fake_clb_api: Option<SocketAddr>,
    /// Control API (/_fake/*) of that fake-clb.
    #[arg(long, value_name = "ADDR", requires = "fake_clb_api")]
    fake_clb_admin: Option<SocketAddr>,
}

impl EnvArgs {
    fn options(self) -> clb_harness::Result<EnvOptions> {
        let sibling = |name: &str| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
                .unwrap_or_else(|| PathBuf::from(name))
        };
        let controller_identity = self
            .controller_service_account
            .map(|sa| env::ControllerIdentity::parse(&sa, self.controller_rbac))
            .transpose()?;
        Ok(EnvOptions {
            state_dir: self.state_dir,
            kubeconfig: self.kubeconfig,
            cluster: cluster::UpOptions {
                state_dir: self.cluster_state_dir,
                cache_dir: self.cache_dir,
                controlplane_dir: self.controlplane_dir,
                nodes: self.nodes,
            },
            fake_clb_bin: self.fake_clb_bin.unwrap_or_else(|| sibling("fake-clb")),
            controller_bin: self
                .controller_bin
                .unwrap_or_else(|| sibling("clb-controller")),
            fake_clb_config: self.fake_clb_config,
            no_controller: self.no_controller,
            controller_identity,
            external_fake_clb: self.fake_clb_api.zip(self.fake_clb_admin),
        })
    }
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Build binaries if needed, start the control plane and fake nodes (idempotent).
    Up {
        #[command(flatten)]
        dirs: ClusterDirs,
        /// Machine-local cache for Go builds and control-plane binaries
        /// [default: $CLB_CACHE_DIR, else ~/.cache/clb-testbed].
        #[arg(long, default_value_os_t = build::default_cache_dir(), hide_default_value = true)]
        cache_dir: PathBuf,
        /// Number of fake kwok nodes.
        #[arg(long, default_value_t = cluster::DEFAULT_NODES)]
        nodes: u32,
        /// Directory with build.sh and the Go wrapper modules.
        #[arg(long, env = "CLB_CONTROLPLANE_DIR", default_value_os_t = build::default_controlplane_dir())]
        controlplane_dir: PathBuf,
    },
    /// Stop every process of the control plane (logs stay in the state dir).
    Down {
        #[command(flatten)]
        dirs: ClusterDirs,
    },
    /// Show processes, ports and health; exits 1 unless the cluster is healthy.
    Status {
        #[command(flatten)]
        dirs: ClusterDirs,
    },
    /// Create the harness's fake nodes in another cluster that runs kwok (e.g. kind, for `make kind-test`)
    /// and wait until they are Ready.
    FakeNodes {
        /// That cluster.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Number of fake nodes.
        #[arg(long, default_value_t = cluster::DEFAULT_NODES)]
        nodes: u32,
    },
    /// Print the kwok Stages the fake nodes and pods follow (to apply to a cluster that runs kwok).
    KwokStages,
}

#[derive(Debug, Args)]
struct ClusterDirs {
    /// Where PKI, configs, etcd data, logs, the kubeconfig and cluster.json live.
    #[arg(long, default_value = cluster::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    clb_harness::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> clb_harness::Result<ExitCode> {
    match command {
        Command::Up { env, scenario } => up(env, scenario).await,
        Command::Down { state_dir } => {
            for line in env::down(&state_dir).await? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            paths,
            env,
            report_dir,
            keep,
            results_dir,
        } => run_scenarios(paths, env, report_dir, keep, results_dir).await,
        Command::Validate { paths } => validate(&paths),
        Command::Schema { output } => {
            let schema = scenario::json_schema();
            match output {
                Some(path) => std::fs::write(&path, schema)
                    .map_err(|e| clb_harness::Error::io("writing schema", &path, e))?,
                None => print!("{schema}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster { action } => run_cluster(action).await,
    }
}

fn exit_code(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `up`: starts the environment and leaves it running.
async fn up(env: EnvArgs, scenario: Option<PathBuf>) -> clb_harness::Result<ExitCode> {
    let cloud = match scenario {
        Some(path) => scenario::load(&path)?.scenario.cloud,
        None => scenario::CloudSetup::default(),
    };
    let environment = Environment::start(env.options()?, cloud).await?;
    let path = environment.detach();
    println!("environment up; details in {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `run`: runs the scenarios and writes the reports. SIGINT/SIGTERM stops what the run started
/// (unless `keep`) and exits 130.
async fn run_scenarios(
    paths: Vec<PathBuf>,
    env: EnvArgs,
    report_dir: Option<PathBuf>,
    keep: bool,
    results_dir: Option<PathBuf>,
) -> clb_harness::Result<ExitCode> {
    let report_dir = report_dir.unwrap_or_else(runner::default_report_dir);
    let options = runner::RunOptions {
        env: env.options()?,
        report_dir: report_dir.clone(),
        keep,
        results_dir,
    };
    let state_dir = options.env.state_dir.clone();
    let report = tokio::select! {
        report = runner::run(&paths, &options) => report?,
        signal = interrupted() => {
            // The processes run in their own process groups: stop them from env.json.
            eprintln!("{signal}: stopping what this run started ({})", state_dir.display());
            if !keep {
                match env::down(&state_dir).await {
                    Ok(lines) => lines.iter().for_each(|l| eprintln!("{l}")),
                    Err(e) => eprintln!("stopping the environment: {e}"),
                }
            }
            return Ok(ExitCode::from(130));
        }
    };
    let failed = report.scenarios.iter().filter(|s| !s.passed()).count();
    println!(
        "{} scenario(s), {failed} failed; report: {}",
        report.scenarios.len(),
        report_dir.display()
    );
    Ok(exit_code(report.passed()))
}

/// `validate`: one `ok`/`FAIL` line per scenario file.
fn validate(paths: &[PathBuf]) -> clb_harness::Result<ExitCode> {
    let mut ok = true;
    for file in scenario::discover(paths)? {
        match scenario::load(&file) {
            Ok(_) => println!("ok   {}", file.display()),
            Err(e) => {
                ok = false;
                println!("FAIL {e}");
            }
        }
    }
    Ok(exit_code(ok))
}

async fn run_cluster(action: ClusterAction) -> clb_harness::Result<ExitCode> {
    match action {
        ClusterAction::Up {
            dirs,
            cache_dir,
            nodes,
            controlplane_dir,
        } => {
            let report = cluster::up(&cluster::UpOptions {
                state_dir: dirs.state_dir,
                cache_dir,
                controlplane_dir,
                nodes,
            })
            .await?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        ClusterAction::Down { dirs } => {
            println!("{}", cluster::down(&dirs.state_dir).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClusterAction::FakeNodes { kubeconfig, nodes } => fake_nodes(&kubeconfig, nodes).await,
        ClusterAction::KwokStages => {
            print!("{}", cluster::config::KWOK_STAGES);
            Ok(ExitCode::SUCCESS)
        }
        ClusterAction::Status { dirs } => {
            let report = cluster::status(&dirs.state_dir).await?;
            println!("{report}");
            Ok(exit_code(report.healthy()))
        }
    }
}

/// `cluster fake-nodes`: creates the fake nodes in another cluster and waits up to 60 s until
/// its kwok has made them Ready.
async fn fake_nodes(kubeconfig: &Path, nodes: u32) -> clb_harness::Result<ExitCode> {
    cluster::nodes::validate_count(nodes)?;
    let client = cluster::client_from_kubeconfig(kubeconfig).await?;
    let version = client.apiserver_version().await?.git_version;
    cluster::nodes::ensure_nodes(&client, nodes, &version).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = cluster::nodes::ready_fake_nodes(&client).await?;
        if ready >= nodes as usize {
            println!("{ready} fake node(s) Ready");
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            return Err(clb_harness::Error::Timeout {
                what: format!("{nodes} fake nodes Ready (is kwok running?)"),
                seconds: 60,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (a CI timeout) with the signal's name.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}
