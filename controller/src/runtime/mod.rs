//! Machinery the controllers share, with no knowledge of any resource: the keyed reconcile [`driver`] and its
//! [`queue`], [`watch`] helpers (reflectors whose events become keys), [`finalizer`] helpers, [`leader`]
//! election, the [`metrics_server`] and the per-pass [`error`] type.

pub mod driver;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod kube_requests;
pub mod leader;
pub mod metrics_server;
pub mod queue;
pub mod watch;

pub use driver::{Action, DriverConfig, Reconcile, drive};
pub use error::{API_TIMEOUT, ReconcileError, api_call};
pub use leader::LeaderElectionConfig;
pub use metrics_server::{Health, RuntimeMetrics};

/// Resolves when the flag turns true (or its sender is gone); returns nothing so no watch guard lives on.
pub async fn wait_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}
