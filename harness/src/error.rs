//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the harness. Variants name the component and, where one
/// exists, the log file to read, so a failed `cluster up` says where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("control-plane build script {script} failed ({status}); its output is above")]
    BuildFailed { script: PathBuf, status: String },

    #[error("control-plane build script did not report {0}")]
    BuildOutputMissing(&'static str),

    #[error("{component} did not start: {reason} (log: {log}){log_tail}", log = .log.display())]
    ComponentFailed {
        component: String,
        reason: String,
        log: PathBuf,
        /// The end of the log, formatted for appending to the message (may be empty).
        log_tail: String,
    },

    #[error("could not stop {component} (pid {pid}): {reason}")]
    StopFailed {
        component: String,
        pid: i32,
        reason: String,
    },

    #[error("no free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),

    #[error("certificate generation failed: {0}")]
    Pki(#[from] rcgen::Error),

    #[error("state file {path} is unreadable: {reason}")]
    BadState { path: PathBuf, reason: String },

    #[error("invalid option: {0}")]
    InvalidOption(String),

    #[error("kubeconfig: {0}")]
    Kubeconfig(String),

    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),

    #[error("serialising {what}: {reason}")]
    Serialize { what: &'static str, reason: String },

    /// A scenario file that does not parse or validate; the message names the file (and line).
    #[error("{0}")]
    Scenario(String),

    #[error("fake-clb control API: {0}")]
    Admin(#[from] fake_clb::admin_client::AdminClientError),

    #[error("environment: {0}")]
    Environment(String),

    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
}

impl Error {
    /// Shorthand for an I/O error on a path.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
