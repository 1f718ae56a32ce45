//! `fake-clb --config FILE [--listen ADDR] [--admin-listen ADDR] [--log-level LEVEL]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "fake-clb",
    about = "A fake Tencent Cloud CLB API server for tests"
)]
struct Args {
    /// YAML config file (camelCase keys).
    #[arg(long)]
    config: Option<PathBuf>,
    /// API listen address (overrides `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Control API and /metrics listen address (overrides `adminListen`).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// tracing filter, e.g. `info` or `fake_clb=debug` (RUST_LOG also works).
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = match &args.config {
        Some(path) => match fake_clb::Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fake-clb: {e}");
                return ExitCode::from(2);
            }
        },
        None => fake_clb::Config::default(),
    };
    if let Some(a) = args.listen {
        config.listen = a;
    }
    if let Some(a) = args.admin_listen {
        config.admin_listen = a;
    }
    let handle = match fake_clb::serve(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fake-clb: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "fake-clb listening api={} admin={}",
        handle.api_addr, handle.admin_addr
    );
    tracing::info!(api = %handle.api_addr, admin = %handle.admin_addr, "fake-clb started");
    wait_for_signal().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM; state is already persisted after every change, so stopping needs no flush.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
