//! clb-harness: scenario runner for the CLB controller and fake-clb, and owner of the local
//! Kubernetes control plane the scenarios run against.

pub mod cluster;
pub mod env;
pub mod error;
pub mod kubeops;
pub mod matcher;
pub mod measure;
pub mod report;
pub mod runner;
pub mod scenario;
mod snapshot;

pub use error::{Error, Result};

/// Selects ring as the process-wide rustls provider. The dependency graph enables both ring
/// and aws-lc-rs, and rustls refuses to guess; call once before making TLS connections.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
