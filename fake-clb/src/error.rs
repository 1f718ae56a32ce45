//! The one error type of fake-clb (startup and persistence failures; API errors are `clb_api::ApiError`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ConfigInvalid { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Config(String),
    #[error(
        "refusing corrupt state file {path}: {message} (fix or remove it; it was left untouched)"
    )]
    StateFileCorrupt { path: PathBuf, message: String },
    #[error("cannot read state file {path}: {source}")]
    StateFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write state file {path}: {source}")]
    StateFileWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}
