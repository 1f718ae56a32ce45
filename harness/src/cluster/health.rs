//! Health checks with deadlines. Every wait also watches the child process, so a component
//! that crashes is reported at once (with its log) instead of after the deadline.

use std::future::Future;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::config::Component;
use super::pki::CertifiedKey;
use super::process::log_tail;
use crate::error::{Error, Result};

const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Log lines quoted in a start-up error.
const LOG_TAIL_LINES: usize = 15;

/// HTTP client trusting only the cluster CA, presenting the admin certificate.
pub struct Prober {
    http: reqwest::Client,
}

impl Prober {
    pub fn new(ca_pem: &str, admin: &CertifiedKey) -> Result<Self> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", admin.cert_pem, admin.key_pem).as_bytes())?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .identity(identity)
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Prober { http })
    }

    /// True if `url` answers 2xx.
    pub async fn is_healthy(&self, url: &str) -> bool {
        match self.http.get(url).send().await {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        }
    }
}

/// Polls `check` until it returns true. Fails early if `child` exits, and at the deadline.
pub async fn wait_for<F, Fut>(
    component: Component,
    what: &str,
    child: &mut Child,
    log: &Path,
    within: Duration,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(component_failed(
                component,
                format!("exited ({status})"),
                log,
            ));
        }
        if check().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(component_failed(
                component,
                format!("{what} not reached within {}s", within.as_secs()),
                log,
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls a cluster-level condition (no single child to watch) until true or the deadline.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: within.as_secs(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The error for a component that did not come up, quoting the end of its log.
pub fn component_failed(component: Component, reason: String, log: &Path) -> Error {
    let tail = log_tail(log, LOG_TAIL_LINES);
    let log_tail = if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- last {LOG_TAIL_LINES} lines of the log ---\n{tail}\n---")
    };
    Error::ComponentFailed {
        component: component.to_string(),
        reason,
        log: log.to_path_buf(),
        log_tail,
    }
}
