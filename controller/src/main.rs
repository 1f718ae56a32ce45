//! `clb-controller` command line. Each subcommand is a thin edge over the library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output } => write_crds(output),
    }
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
