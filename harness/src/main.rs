//! clb-harness command line. Kept thin: each subcommand parses its flags and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use clb_harness::cluster::{self, build};

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
        Command::Cluster { action } => match action {
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
            ClusterAction::Status { dirs } => {
                let report = cluster::status(&dirs.state_dir).await?;
                println!("{report}");
                Ok(if report.healthy() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        },
    }
}
