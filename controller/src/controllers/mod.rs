//! The controllers: each a reconciler next to its pure plan. They share one [`Context`] and run only while this
//! replica leads ([`run_while_leader`]).
//!
//! - [`listener`]: Listener CRs → per-LB sync workers → CLB, outcomes back to the CRs' status.
//! - [`ingress`]: Ingress → the Listener CRs it generates.
//! - [`portpool`]: PortPool → pre-created pool Listener CRs; rebuilds and feeds the shared [`PoolState`].
//! - [`portbinding`]: a pod's allocated pool ports → PortBinding → targets on the pool Listener CRs.
//! - [`portleak`]: releases ports the webhook allocated that nothing records.
//! - [`clbweight`]: the `clb-weight` / `clb-weight-ready` handshake of the in-place update hooks.
//! - [`randhostport`]: feeds the random-hostPort load from the pods.

pub mod clbweight;
pub mod ingress;
pub mod lb_cache;
pub mod listener;
pub mod owned_listeners;
pub mod portbinding;
pub mod portleak;
pub mod portpool;
pub mod randhostport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::Reporter;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cloud::ClbClient;
use crate::ingress::Settings;
use crate::pools::PoolState;
use crate::runtime::{Health, RuntimeMetrics, wait_true};
use crate::sync::WorkerConfig;

/// What every controller reads: clients, scope, settings, metrics and the shared pool state. Cloning shares.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub cloud: ClbClient,
    /// Per-LB sync worker knobs; `resync_interval` is also every controller's resync period.
    pub worker: WorkerConfig,
    /// Watch the controllers' own kinds in this namespace only; `None` = all namespaces.
    pub watch_namespace: Option<String>,
    /// Name under which events are published.
    pub reporter: Reporter,
    pub metrics: RuntimeMetrics,
    pub health: Arc<Health>,
    /// Allocator and observed pool items, shared with the pod webhook.
    pub pools: Arc<PoolState>,
    /// Ingress generation settings (default region, TCP/UDP port reuse).
    pub settings: Settings,
    /// Ports the webhook allocated that nothing records after this long are released.
    pub leak_threshold: Duration,
    /// Reservations of refused pods are released this long after admission or validation; zero = off.
    pub reservation_timeout: Duration,
    /// Random host ports, fed by the pod watch of [`randhostport`]; `None` when off.
    pub randhostport: Option<Arc<crate::randhostport::state::RandHostPortState>>,
}

impl Context {
    /// Every controller's resync period; `None` when resync is off (0).
    pub fn resync(&self) -> Option<Duration> {
        Some(self.worker.resync_interval).filter(|d| !d.is_zero())
    }

    /// The API of a kind the controllers own, in the watched namespace (or all).
    pub fn scoped_api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.watch_namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        }
    }
}

/// Runs every controller until `stop` turns true or one of them ends on its own (then the others are stopped
/// too); returns once all have stopped.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    let (stop_all, all_stop) = watch::channel(false);
    let mut running = JoinSet::new();
    running.spawn(named(
        "listener",
        listener::run_while_leader(ctx.clone(), all_stop.clone()),
    ));
    running.spawn(named(
        "ingress",
        ingress::run_while_leader(ctx.clone(), all_stop.clone()),
    ));
    running.spawn(named(
        "portpool",
        portpool::run_while_leader(ctx.clone(), all_stop.clone()),
    ));
    running.spawn(named(
        "portbinding",
        portbinding::run_while_leader(ctx.clone(), all_stop.clone()),
    ));
    running.spawn(named(
        "clbweight",
        clbweight::run_while_leader(ctx.clone(), all_stop.clone()),
    ));
    if let Some(state) = ctx.randhostport.clone() {
        running.spawn(named(
            "randhostport",
            randhostport::run_while_leader(state, ctx.client.clone(), all_stop.clone()),
        ));
    }
    running.spawn(named("portleak", portleak::run_while_leader(ctx, all_stop)));
    tokio::select! {
        _ = wait_true(&mut stop) => {}
        Some(first) = running.join_next() => {
            report(first);
            tracing::warn!("a controller stopped on its own; stopping the others");
        }
    }
    stop_all.send_replace(true);
    while let Some(done) = running.join_next().await {
        report(done);
    }
}

async fn named(name: &'static str, run: impl Future<Output = ()>) -> &'static str {
    run.await;
    name
}

fn report(done: Result<&'static str, tokio::task::JoinError>) {
    match done {
        Ok(name) => tracing::debug!(controller = name, "controller stopped"),
        Err(e) if e.is_panic() => tracing::error!(error = %e, "a controller panicked"),
        Err(_) => {}
    }
}
