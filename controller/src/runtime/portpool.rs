//! The PortPool reconciler (reference §5.1–5.4): pre-creates one Listener CR per port (or segment), protocol and
//! load balancer of every pool item, reports item and pool readiness in `status`, and keeps the shared
//! [`PoolState`] (allocator + observed items) that the pod webhook allocates from.
//!
//! Runs only while this replica leads. On start it rebuilds the allocator from the API server — every pool, every
//! port held by a PortBinding or recorded in a pod's `poolbindings` annotation — before marking the state ready,
//! so the webhook never hands out a port from a half-known state. The desired listeners and statuses come from the
//! pure [`super::portpool_plan`]; the Listener reconciler then syncs the CRs to CLB.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::queue::WorkQueue;
use super::watchers::{sleep_until, spawn_reflector};

use super::RuntimeError;
use super::ingress::LbCache;
use super::listener::wait_true;
use super::metrics_server::{PoolItemLabels, RuntimeMetrics};
use super::pools::PoolState;
use super::portleak::{Duplicate, claims_of, duplicate_holdings};
use super::portpool_plan::{
    HeldPort, LABEL_PORTPOOL_ITEM, OWNER_KIND_PORTPOOL, allocator_item, allocator_items_of,
    deleting_items, diff_listeners, item_label_value, item_listeners, item_readiness, item_status,
    pool_status,
};
use crate::allocator::{AllocatePolicy, Allocator, ItemStatus, PoolKey};
use crate::api::{Listener, PortBinding, PortPool, PortPoolStatus, keys};
use crate::cloud::{ClbClient, LbRef};
use crate::ingress::{LbKey, LbSelection};

/// Limit of every Kubernetes API call the reconciler makes.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Requeue delay while listeners are being created or deleted (bcs: 5 s).
const WAIT_FOR_LISTENERS: Duration = Duration::from_secs(2);
/// Delay between rebuild attempts when the API server cannot be listed.
const REBUILD_RETRY: Duration = Duration::from_secs(2);
/// How often the capacity/usage gauges are refreshed (the webhook allocates between reconciles).
const METRICS_REFRESH: Duration = Duration::from_secs(10);
/// Field manager of the pool's Listener CRs. It never sets `spec.targetGroup`, so the PortBinding controller
/// (another field manager) can own the targets without a conflict.
pub const FIELD_MANAGER: &str = "clb-controller-portpool";
/// Event reason on a pod whose recorded port another pod or PortBinding already holds.
pub const REASON_DUPLICATE_HOLDING: &str = "DuplicatePortHolding";

/// What the PortPool reconciler needs from the runtime.
#[derive(Clone)]
pub struct PortPoolContext {
    pub client: kube::Client,
    pub cloud: ClbClient,
    /// Region of item `loadBalancerIDs` given without `region:`.
    pub default_region: String,
    /// Watch PortPools (and their Listener CRs) in this namespace only.
    pub watch_namespace: Option<String>,
    pub metrics: RuntimeMetrics,
    pub pool_state: Arc<PoolState>,
    /// Every pool is reconciled this often even without a change (0 = never).
    pub resync_interval: Duration,
    /// Events (duplicate port holdings found by the rebuild).
    pub reporter: Reporter,
}

impl PortPoolContext {
    /// Shares the Listener reconciler's clients, scope, metrics and resync interval.
    pub fn from_listener_context(
        ctx: &super::listener::ReconcilerContext,
        pool_state: Arc<PoolState>,
    ) -> Self {
        PortPoolContext {
            client: ctx.client.clone(),
            cloud: ctx.cloud.clone(),
            default_region: ctx.cloud.config().default_region.clone(),
            watch_namespace: ctx.watch_namespace.clone(),
            metrics: ctx.metrics.clone(),
            pool_state,
            resync_interval: ctx.worker.resync_interval,
            reporter: ctx.reporter.clone(),
        }
    }
}

/// Watches and reconciles PortPools until `stop` turns true. The pool state is ready only in between.
pub async fn run_while_leader(ctx: PortPoolContext, mut stop: watch::Receiver<bool>) {
    ctx.pool_state.set_ready(false);
    let (tx, mut rx) = mpsc::unbounded_channel::<PoolKey>();
    let mut tasks = JoinSet::new();
    let (pool_api, listener_api): (Api<PortPool>, Api<Listener>) = match &ctx.watch_namespace {
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    let pools = spawn_reflector(&mut tasks, pool_api, watcher::Config::default(), &tx, |p| {
        vec![key_of(p)]
    });
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        keys::LABEL_OWNER_KIND,
        OWNER_KIND_PORTPOOL
    ));
    let listeners = spawn_reflector(&mut tasks, listener_api, owned, &tx, |l: &Listener| {
        owner_pool(l).into_iter().collect()
    });

    tokio::select! {
        _ = wait_true(&mut stop) => { tasks.shutdown().await; return; }
        _ = async { let _ = futures::join!(pools.wait_until_ready(), listeners.wait_until_ready()); } => {
            tracing::info!("portpool caches synced")
        }
    }
    loop {
        match rebuild(&ctx, &pools).await {
            Ok(held) => {
                tracing::info!(pools = pools.state().len(), held, "port allocator rebuilt");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?REBUILD_RETRY, "port allocator rebuild failed");
                tokio::select! {
                    _ = wait_true(&mut stop) => { tasks.shutdown().await; return; }
                    _ = tokio::time::sleep(REBUILD_RETRY) => {}
                }
            }
        }
    }
    ctx.pool_state.set_ready(true);

    let mut reconciler = PoolReconciler {
        ctx,
        pools,
        listeners,
        lb_cache: LbCache::default(),
        series: HashMap::new(),
    };
    let mut queue = WorkQueue::default();
    for pool in reconciler.pools.state() {
        queue.schedule(key_of(&pool), Instant::now());
    }
    let resync_every = if reconciler.ctx.resync_interval.is_zero() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        reconciler.ctx.resync_interval
    };
    let mut resync = tokio::time::interval_at(Instant::now() + resync_every, resync_every);
    let mut refresh = tokio::time::interval_at(Instant::now() + METRICS_REFRESH, METRICS_REFRESH);
    loop {
        let next = queue.next_due();
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            Some(key) = rx.recv() => queue.schedule(key, Instant::now()),
            _ = resync.tick() => {
                for pool in reconciler.pools.state() {
                    queue.schedule(key_of(&pool), Instant::now());
                }
            }
            _ = refresh.tick() => reconciler.refresh_all_metrics(),
            _ = sleep_until(next) => {
                let Some(key) = queue.pop_due(Instant::now()) else { continue };
                let outcome = tokio::select! {
                    _ = wait_true(&mut stop) => break,
                    r = reconciler.reconcile(&key) => r,
                };
                match outcome {
                    Ok(requeue) => {
                        queue.succeeded(&key);
                        if let Some(after) = requeue {
                            queue.schedule(key, Instant::now() + after);
                        }
                    }
                    Err(e) => {
                        if matches!(e, RuntimeError::Kube(_)) {
                            reconciler.ctx.metrics.kube_errors.inc();
                        }
                        let after = queue.failed(&key);
                        if namespace_terminating(&e) {
                            // Its namespace is going away: the pool follows, nothing to warn about.
                            tracing::debug!(pool = %key, retry_in = ?after, "namespace terminating; not recreating listeners");
                        } else {
                            tracing::warn!(pool = %key, error = %e, retry_in = ?after, "portpool reconcile failed");
                        }
                        queue.schedule(key, Instant::now() + after);
                    }
                }
            }
        }
    }
    // Another replica takes over and rebuilds; nothing may be allocated from this copy meanwhile.
    reconciler.ctx.pool_state.set_ready(false);
    tasks.shutdown().await;
}

/// Fills the allocator from scratch: every pool from its recorded status, then every port a PortBinding or a
/// pod's `poolbindings` annotation records. Returns how many ports are held.
async fn rebuild(ctx: &PortPoolContext, pools: &Store<PortPool>) -> Result<usize, RuntimeError> {
    let bindings: Api<PortBinding> = Api::all(ctx.client.clone());
    let bindings = timed(
        "listing portbindings",
        bindings.list(&ListParams::default()),
    )
    .await?
    .items;
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let pods = timed("listing pods", pods.list(&ListParams::default()))
        .await?
        .items;
    let claims = claims_of(&bindings, &pods);
    let held: BTreeSet<HeldPort> = claims.iter().map(|c| c.port.clone()).collect();
    let duplicates = duplicate_holdings(&claims);
    let pools = pools.state();
    ctx.pool_state.with_allocator(|allocator| {
        *allocator = Allocator::new();
        for pool in &pools {
            let key = key_of(pool);
            if let Err(e) = allocator.sync_pool(&key, policy_of(pool), &allocator_items_of(pool)) {
                tracing::warn!(pool = %key, error = %e, "pool not loaded into the allocator");
            }
        }
        for (key, item, protocol, port) in &held {
            if let Err(e) = allocator.allocate_specific(key, item, (*protocol).into(), *port) {
                tracing::warn!(pool = %key, item = %item, %protocol, port, error = %e, "recorded port not held");
            }
        }
    });
    for pool in &pools {
        let items = pool
            .status
            .as_ref()
            .map(|s| s.pool_items.clone())
            .unwrap_or_default();
        ctx.pool_state.set_items(key_of(pool), items);
    }
    // Allocations made before this rebuild are either recorded (and now held) or lost with the old leader.
    ctx.pool_state.clear_pending();
    report_duplicates(ctx, &pods, &duplicates).await;
    Ok(held.len())
}

/// Counts and reports ports two holders claim: a Warning event on the second pod, a log otherwise. The first
/// claim keeps the port in the allocator; an operator must resolve the conflict.
async fn report_duplicates(ctx: &PortPoolContext, pods: &[Pod], duplicates: &[Duplicate]) {
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    for dup in duplicates {
        let (pool, item, protocol, port) = &dup.port;
        ctx.metrics
            .pool_duplicate_holdings
            .get_or_create(&PoolItemLabels {
                namespace: pool.namespace.clone(),
                pool: pool.name.clone(),
                item: item.clone(),
                protocol: protocol.as_str().to_owned(),
            })
            .inc();
        let message = format!(
            "port {port}/{protocol} of item {item:?} in port pool {pool} is claimed by {} and {}; {} keeps it",
            dup.first, dup.second, dup.first
        );
        tracing::warn!(%pool, %item, %protocol, port, first = %dup.first, second = %dup.second, "duplicate port holding");
        let second_pod = pods.iter().find(|p| {
            dup.second.kind == "Pod"
                && p.namespace().as_deref() == Some(dup.second.namespace.as_str())
                && p.name_any() == dup.second.name
        });
        let Some(second_pod) = second_pod else {
            continue;
        };
        let event = Event {
            type_: EventType::Warning,
            reason: REASON_DUPLICATE_HOLDING.to_string(),
            note: Some(message.chars().take(1000).collect()),
            action: "Rebuild".to_string(),
            secondary: None,
        };
        let reference = second_pod.object_ref(&());
        match tokio::time::timeout(API_TIMEOUT, recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                ctx.metrics.kube_errors.inc();
                tracing::warn!(error = %e, "publishing an event failed");
            }
            Err(_) => {
                ctx.metrics.kube_errors.inc();
                tracing::warn!("publishing an event timed out");
            }
        }
    }
}

struct PoolReconciler {
    ctx: PortPoolContext,
    pools: Store<PortPool>,
    listeners: Store<Listener>,
    lb_cache: LbCache,
    /// Gauge series written per pool, so series of removed items or pools can be dropped.
    series: HashMap<PoolKey, Vec<PoolItemLabels>>,
}

impl PoolReconciler {
    /// Reconciles one pool; `Ok(Some(d))` asks to look again after `d`.
    async fn reconcile(&mut self, key: &PoolKey) -> Result<Option<Duration>, RuntimeError> {
        let Some(pool) = self
            .pools
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            self.forget(key);
            return Ok(None);
        };
        let listener_api: Api<Listener> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let pool_api: Api<PortPool> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        if pool.metadata.deletion_timestamp.is_some() {
            return self.finalize(key, &pool, &listener_api, &pool_api).await;
        }
        if !has_finalizer(&pool) {
            add_finalizer(&pool, &pool_api).await?;
        }

        let existing: Vec<Listener> = self
            .listeners
            .state()
            .iter()
            .filter(|l| l.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .filter(|l| owner_pool(l).as_ref() == Some(key))
            .map(|l| (**l).clone())
            .collect();

        let mut desired = Vec::new();
        let mut statuses = Vec::new();
        // Items whose LBs could not be resolved keep their listeners: a cloud hiccup must not delete them.
        let mut unresolved: BTreeSet<String> = BTreeSet::new();
        for item in &pool.spec.pool_items {
            let lbs = match self.resolve(&item.load_balancer_ids).await {
                Ok(lbs) => lbs,
                Err(message) => {
                    unresolved.insert(item_label_value(&item.item_name));
                    statuses.push(item_status(item, &[], ItemStatus::NotReady, message));
                    continue;
                }
            };
            let wanted = item_listeners(&pool, item, &lbs);
            let (status, message) = item_readiness(&wanted, &existing);
            statuses.push(item_status(item, &lbs, status, message));
            desired.extend(wanted);
        }

        let mut diff = diff_listeners(&desired, &existing);
        diff.delete.retain(|name| {
            !existing.iter().any(|l| {
                l.name_any() == *name
                    && l.labels()
                        .get(LABEL_PORTPOOL_ITEM)
                        .is_some_and(|i| unresolved.contains(i))
            })
        });
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        for listener in &diff.apply {
            let name = listener.name_any();
            timed(
                "applying a listener",
                listener_api.patch(&name, &apply, &Patch::Apply(listener)),
            )
            .await?;
            tracing::debug!(pool = %key, listener = %name, "pool listener applied");
        }
        for name in &diff.delete {
            match timed(
                "deleting a listener",
                listener_api.delete(name, &DeleteParams::default()),
            )
            .await
            {
                Err(e) if !is_not_found(&e) => return Err(e),
                _ => tracing::debug!(pool = %key, listener = %name, "pool listener deleted"),
            }
        }

        // A removed item stays (Deleting) until none of its listeners is left.
        for gone in deleting_items(&pool) {
            let label = item_label_value(&gone.item_name);
            let left = existing
                .iter()
                .any(|l| l.labels().get(LABEL_PORTPOOL_ITEM) == Some(&label));
            if left {
                statuses.push(gone);
            } else {
                tracing::info!(pool = %key, item = %gone.item_name, "removed item's listeners gone; item dropped");
            }
        }

        let status = PortPoolStatus {
            status: Some(pool_status(&statuses).to_owned()),
            pool_items: statuses,
        };
        if pool.status.as_ref() != Some(&status) {
            let patch = json!({"status": status});
            timed(
                "writing the portpool status",
                pool_api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await?;
        }
        self.feed_state(key, &pool, &status);

        let settled = status
            .pool_items
            .iter()
            .all(|i| i.status == ItemStatus::Ready.to_string());
        Ok((!settled || !diff.blocked.is_empty()).then_some(WAIT_FOR_LISTENERS))
    }

    /// Resolves item `loadBalancerIDs` (`lb-x` or `region:lb-x`); the error is the item's status message.
    async fn resolve(&mut self, ids: &[String]) -> Result<Vec<crate::ingress::ResolvedLb>, String> {
        let mut lb_keys: Vec<LbKey> = Vec::new();
        for entry in ids {
            let lb = LbRef::parse(entry.trim(), &self.ctx.default_region)
                .map_err(|e| format!("invalid loadBalancerID {entry:?}: {e}"))?;
            let key = LbKey {
                region: lb.region,
                value: lb.lb_id,
            };
            if !lb_keys.contains(&key) {
                lb_keys.push(key);
            }
        }
        self.lb_cache
            .resolve(&self.ctx.cloud, &LbSelection::Ids(lb_keys))
            .await
            .map_err(|e| format!("get loadbalancer info failed: {e}"))
    }

    /// Hands the new status to the allocator (geometry growth, item status, removed items) and the webhook.
    fn feed_state(&mut self, key: &PoolKey, pool: &PortPool, status: &PortPoolStatus) {
        let items: Vec<_> = status
            .pool_items
            .iter()
            .filter_map(allocator_item)
            .collect();
        let policy = policy_of(pool);
        if let Err(e) = self
            .ctx
            .pool_state
            .with_allocator(|a| a.sync_pool(key, policy, &items))
        {
            tracing::warn!(pool = %key, error = %e, "allocator not updated");
        }
        self.ctx
            .pool_state
            .set_items(key.clone(), status.pool_items.clone());
        self.refresh_metrics(key);
    }

    /// Deletion: no new ports, delete the pool's Listener CRs, and remove the finalizer once they are all gone.
    async fn finalize(
        &mut self,
        key: &PoolKey,
        pool: &PortPool,
        listener_api: &Api<Listener>,
        pool_api: &Api<PortPool>,
    ) -> Result<Option<Duration>, RuntimeError> {
        self.ctx.pool_state.with_allocator(|a| {
            let names: Vec<String> = a
                .pool(key)
                .map(|p| p.items().iter().map(|i| i.name().to_owned()).collect())
                .unwrap_or_default();
            for name in names {
                let _ = a.set_item_status(key, &name, ItemStatus::Deleting);
            }
        });
        if !has_finalizer(pool) {
            return Ok(None);
        }
        // Read from the API, not the cache: a CR created just now must not be missed.
        let selector = format!(
            "{}={},{}={}",
            keys::LABEL_OWNER_KIND,
            OWNER_KIND_PORTPOOL,
            keys::LABEL_OWNER_NAME,
            key.name
        );
        let owned = timed(
            "listing listeners",
            listener_api.list(&ListParams::default().labels(&selector)),
        )
        .await?;
        if owned.items.is_empty() {
            remove_finalizer(pool, pool_api).await?;
            self.forget(key);
            tracing::info!(pool = %key, "pool listeners gone; finalizer removed");
            return Ok(None);
        }
        for l in owned
            .items
            .iter()
            .filter(|l| l.metadata.deletion_timestamp.is_none())
        {
            match timed(
                "deleting a listener",
                listener_api.delete(&l.name_any(), &DeleteParams::default()),
            )
            .await
            {
                Err(e) if !is_not_found(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(Some(WAIT_FOR_LISTENERS))
    }

    /// Drops a pool from the allocator, the observed items and the gauges.
    fn forget(&mut self, key: &PoolKey) {
        self.ctx.pool_state.with_allocator(|a| a.remove_pool(key));
        self.ctx.pool_state.remove_items(key);
        for labels in self.series.remove(key).unwrap_or_default() {
            self.ctx.metrics.pool_capacity.remove(&labels);
            self.ctx.metrics.pool_used.remove(&labels);
        }
    }

    fn refresh_all_metrics(&mut self) {
        let keys: Vec<PoolKey> = self
            .ctx
            .pool_state
            .with_allocator(|a| a.pool_keys().cloned().collect());
        for key in keys {
            self.refresh_metrics(&key);
        }
    }

    /// Sets the capacity/usage gauges of one pool from the allocator and drops series of removed items.
    fn refresh_metrics(&mut self, key: &PoolKey) {
        let usage = self
            .ctx
            .pool_state
            .with_allocator(|a| a.usage(key))
            .unwrap_or_default();
        let mut written = Vec::with_capacity(usage.len());
        for u in usage {
            let labels = PoolItemLabels {
                namespace: key.namespace.clone(),
                pool: key.name.clone(),
                item: u.item,
                protocol: u.protocol.as_str().to_owned(),
            };
            self.ctx
                .metrics
                .pool_capacity
                .get_or_create(&labels)
                .set(i64::from(u.capacity));
            self.ctx
                .metrics
                .pool_used
                .get_or_create(&labels)
                .set(i64::from(u.used));
            written.push(labels);
        }
        for old in self.series.remove(key).unwrap_or_default() {
            if !written.contains(&old) {
                self.ctx.metrics.pool_capacity.remove(&old);
                self.ctx.metrics.pool_used.remove(&old);
            }
        }
        self.series.insert(key.clone(), written);
    }
}

fn key_of(pool: &PortPool) -> PoolKey {
    PoolKey::new(
        pool.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pool.name_any(),
    )
}

/// The pool owning a listener, from its `owner-kind`/`owner-name` labels.
fn owner_pool(listener: &Listener) -> Option<PoolKey> {
    let labels = listener.labels();
    if labels.get(keys::LABEL_OWNER_KIND).map(String::as_str) != Some(OWNER_KIND_PORTPOOL) {
        return None;
    }
    Some(PoolKey::new(
        listener
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        labels.get(keys::LABEL_OWNER_NAME)?.clone(),
    ))
}

/// `allocatePolicy`; an unknown value (the webhook refuses those) falls back to the default.
fn policy_of(pool: &PortPool) -> AllocatePolicy {
    AllocatePolicy::from_str(pool.spec.allocate_policy.as_deref().unwrap_or("")).unwrap_or_default()
}

/// Runs one API call under [`API_TIMEOUT`].
async fn timed<T>(
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, RuntimeError> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(r) => r.map_err(RuntimeError::from),
        Err(_) => Err(RuntimeError::Task(format!(
            "{what} timed out after {API_TIMEOUT:?}"
        ))),
    }
}

/// 404: already gone.
fn is_not_found(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::Kube(kube::Error::Api(s)) if s.code == 404)
}

fn has_finalizer(pool: &PortPool) -> bool {
    pool.finalizers()
        .iter()
        .any(|f| f == keys::FINALIZER_CONTROLLER)
}

async fn add_finalizer(pool: &PortPool, api: &Api<PortPool>) -> Result<(), RuntimeError> {
    let mut ops = Vec::new();
    if let Some(rv) = &pool.metadata.resource_version {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
    }
    ops.push(match &pool.metadata.finalizers {
        Some(list) if !list.is_empty() => {
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": keys::FINALIZER_CONTROLLER})
        }
        _ => json!({"op": "add", "path": "/metadata/finalizers", "value": [keys::FINALIZER_CONTROLLER]}),
    });
    json_patch(api, &pool.name_any(), ops).await
}

async fn remove_finalizer(pool: &PortPool, api: &Api<PortPool>) -> Result<(), RuntimeError> {
    let Some(position) = pool
        .finalizers()
        .iter()
        .position(|f| f == keys::FINALIZER_CONTROLLER)
    else {
        return Ok(());
    };
    // The test makes the removal fail (and retry) if the list moved under us.
    let path = format!("/metadata/finalizers/{position}");
    let ops = vec![
        json!({"op": "test", "path": path, "value": keys::FINALIZER_CONTROLLER}),
        json!({"op": "remove", "path": path}),
    ];
    json_patch(api, &pool.name_any(), ops).await
}

async fn json_patch(
    api: &Api<PortPool>,
    name: &str,
    ops: Vec<serde_json::Value>,
) -> Result<(), RuntimeError> {
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| RuntimeError::Task(format!("building a JSON patch: {e}")))?;
    timed(
        "patching portpool finalizers",
        api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pool_reads_the_owner_labels_of_pool_listeners_only() {
        let mut l: Listener = serde_json::from_value(json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "Listener",
            "metadata": {"name": "lb-1-tcp-100", "namespace": "game",
                "labels": {"owner-kind": "PortPool", "owner-name": "pool1"}},
            "spec": {"loadbalancerID": "lb-1", "port": 100, "protocol": "TCP"},
        }))
        .unwrap();
        assert_eq!(owner_pool(&l), Some(PoolKey::new("game", "pool1")));
        l.labels_mut().insert("owner-kind".into(), "Ingress".into());
        assert_eq!(owner_pool(&l), None);
    }
}

/// The API server refused a create because the namespace is being deleted (status cause `NamespaceTerminating`).
fn namespace_terminating(error: &RuntimeError) -> bool {
    match error {
        RuntimeError::Kube(kube::Error::Api(status)) => status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")),
        _ => false,
    }
}

#[cfg(test)]
mod terminating_tests {
    use super::{RuntimeError, namespace_terminating};

    fn api_error(status: serde_json::Value) -> RuntimeError {
        let status: kube::core::Status = serde_json::from_value(status).expect("status");
        RuntimeError::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn only_the_namespace_terminating_cause_counts() {
        let terminating = api_error(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "listeners \"x\" is forbidden: unable to create new content in namespace ns because it is being terminated",
            "details": {"name": "x", "kind": "listeners", "causes": [
                {"reason": "NamespaceTerminating", "message": "namespace ns is being terminated", "field": "metadata.namespace"}]}
        }));
        assert!(namespace_terminating(&terminating));
        let rbac = api_error(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "listeners is forbidden: User cannot create resource"
        }));
        assert!(!namespace_terminating(&rbac));
    }
}
