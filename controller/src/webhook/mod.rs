//! Validating admission webhooks for Ingress and PortPool, served over TLS.
//!
//! - [`certs`]: the serving certificate, from files or a self-signed CA generated at start.
//! - [`server`]: axum + rustls; `/ingress/v1/validate` (alias `/ingress/v1/mutate`, bcs' path),
//!   `/portpool/v1/validate`, `/portpool/v1/delete`, `/healthz`.
//! - [`register`]: optional server-side apply of the Validating- and MutatingWebhookConfiguration with the
//!   `caBundle`.
//! - [`pod`]: the pod mutating webhook (`/portpool/v1/mutate`): port-pool allocation and the pod patch.
//! - [`ingress`], [`portpool`]: the admission rules, pure functions of the object and a [`ClusterView`].
//!
//! Every request reads the other Ingresses, PortPools and PortBindings from the API server, so any replica
//! answers correctly; the server therefore runs on every replica (the chart's Service still selects ready
//! pods, which is the leader only, as in bcs). Two conflicting objects admitted at the same instant can both
//! pass (as in bcs): admission is not a lock.

pub mod certs;
pub mod ingress;
pub mod pod;
pub mod portpool;
pub mod randhostport;
pub mod register;
pub mod server;

use std::net::SocketAddr;
use std::time::Duration;

use kube::api::{Api, ListParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Ingress, PortBinding, PortPool};
use crate::ingress::{PortClaim, Settings, ingress_claims, parse_lb_annotations, portpool_claims};

pub use certs::{CertSource, ServingCert};
pub use ingress::review_ingress;
pub use portpool::{review_portpool, review_portpool_delete};
pub use register::{Registration, WebhookTarget};

/// Default `--webhook-addr` when the flag is given without a value. A real cluster needs `0.0.0.0:9443`
/// (the chart sets it): the API server calls the pod IP.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9443";
/// Default limit of one admission decision (reading the cluster included); the API server waits 10 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// Errors of the webhook's start (certificates, binding, registration).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("reading {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("webhook certificate: {0}")]
    Certificate(String),
    #[error("binding the webhook server on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("registering the webhook configuration: {0}")]
    Register(#[source] kube::Error),
}

/// What `clb-controller run` needs to serve (and optionally register) the webhooks.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// HTTPS address; port 0 picks a free port ([`WebhookServer::addr`]).
    pub addr: SocketAddr,
    pub certs: CertSource,
    /// `None`: the ValidatingWebhookConfiguration is managed elsewhere (the chart).
    pub registration: Option<Registration>,
    /// Default region of bare CLB ids, and whether TCP and UDP may share a port across Ingresses.
    pub settings: Settings,
    /// Limit of one admission decision; a decision that runs out is a denial.
    pub request_timeout: Duration,
}

/// A started webhook server.
pub struct WebhookServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// PEM of the CA that signed the serving certificate (the `caBundle`).
    pub ca_pem: String,
    /// Ends after `shutdown` turned true and open requests finished.
    pub task: JoinHandle<()>,
}

/// Obtains the certificate, binds, serves until `shutdown` turns true, and registers the webhook
/// configuration if asked (after binding, so the API server can reach us at once).
///
/// The pod webhook gets a [`pod::PodWebhook`] of its own that never becomes ready (annotated pods are
/// denied); use [`start_with_pod`] to share the runtime's pool state.
pub async fn start(
    config: WebhookConfig,
    client: kube::Client,
    shutdown: watch::Receiver<bool>,
) -> Result<WebhookServer, WebhookError> {
    start_with_pod(config, client, pod::PodWebhook::default(), shutdown).await
}

/// [`start`] with the pool state the PortPool reconciler feeds and the pod webhook metrics.
pub async fn start_with_pod(
    config: WebhookConfig,
    client: kube::Client,
    pod: pod::PodWebhook,
    shutdown: watch::Receiver<bool>,
) -> Result<WebhookServer, WebhookError> {
    let cert = ServingCert::obtain(&config.certs)?;
    let state = std::sync::Arc::new(server::WebhookState {
        client: client.clone(),
        settings: config.settings.clone(),
        request_timeout: config.request_timeout,
        pod,
    });
    let (addr, task) = server::serve(config.addr, &cert, state, shutdown).await?;
    if let Some(registration) = &config.registration {
        let configuration = registration.configuration(addr, &cert.ca_pem);
        if let Err(e) = register::apply(&client, &configuration).await {
            task.abort();
            return Err(e);
        }
        let mutating = registration.mutating_configuration(addr, &cert.ca_pem);
        if let Err(e) = register::apply_mutating(&client, &mutating).await {
            task.abort();
            return Err(e);
        }
        tracing::info!(name = %registration.config_name, "Validating- and MutatingWebhookConfiguration applied");
    }
    Ok(WebhookServer {
        addr,
        ca_pem: cert.ca_pem,
        task,
    })
}

/// The other objects an admission decision looks at.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub ingresses: Vec<Ingress>,
    pub pools: Vec<PortPool>,
    pub bindings: Vec<PortBinding>,
}

impl ClusterView {
    /// Lists what is asked for, in all namespaces (pools are referenced across namespaces).
    pub async fn read(
        client: &kube::Client,
        claims: bool,
        bindings: bool,
    ) -> Result<Self, kube::Error> {
        let params = ListParams::default();
        let mut view = ClusterView::default();
        if claims {
            let ingresses: Api<Ingress> = Api::all(client.clone());
            let pools: Api<PortPool> = Api::all(client.clone());
            let (i, p) = tokio::try_join!(ingresses.list(&params), pools.list(&params))?;
            view.ingresses = i.items;
            view.pools = p.items;
        }
        if bindings {
            let api: Api<PortBinding> = Api::all(client.clone());
            view.bindings = api.list(&params).await?.items;
        }
        Ok(view)
    }

    /// Port claims of every Ingress (with a usable CLB annotation) and every PortPool.
    pub fn claims(&self, settings: &Settings) -> Vec<PortClaim> {
        let mut claims = Vec::new();
        for ingress in &self.ingresses {
            if let Ok(selection) = parse_lb_annotations(
                ingress.metadata.annotations.as_ref(),
                &settings.default_region,
            ) {
                claims.extend(ingress_claims(ingress, selection.keys()));
            }
        }
        for pool in &self.pools {
            claims.extend(portpool_claims(pool, &settings.default_region));
        }
        claims
    }
}

#[cfg(test)]
mod tests;
