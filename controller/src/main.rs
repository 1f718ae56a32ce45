//! `clb-controller` command line. Each subcommand is a thin edge over the library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod flags;

#[derive(Debug, Parser)]
#[command(
    name = "clb-controller",
    version,
    about = "Gives pods their own VIP:port on Tencent Cloud CLB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Ingress, Listener, PortPool and PortBinding CRDs as one multi-document YAML.
    Crds {
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run the controller: watch Listener CRs and sync them to CLB (leader only), serve metrics and health.
    Run(Box<flags::RunFlags>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output } => write_crds(output),
        Command::Run(flags) => run(*flags),
    }
}

fn run(flags: flags::RunFlags) -> anyhow::Result<()> {
    flags.init_logging()?;
    let config = flags.into_config()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let mut handle = clb_controller::manager::run(config)
            .await
            .context("starting the controller")?;
        let runtime_ended = tokio::select! {
            signal = flags::shutdown_signal() => { signal?; false }
            stopped = handle.stopped() => { stopped.context("controller runtime")?; true }
        };
        if runtime_ended {
            anyhow::bail!("controller runtime stopped unexpectedly");
        }
        tracing::info!("shutting down");
        handle.shutdown().await.context("shutting down")
    })
}

fn write_crds(output: Option<PathBuf>) -> anyhow::Result<()> {
    let yaml = clb_controller::api::crds_yaml().context("serialising CRDs")?;
    match output {
        Some(path) => {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(yaml.as_bytes())
                .context("writing to stdout")?;
            stdout.flush().context("writing to stdout")
        }
    }
}
