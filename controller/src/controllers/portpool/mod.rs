//! The PortPool reconciler: pre-creates one Listener CR per port (or segment), protocol and
//! load balancer of every pool item, reports item and pool readiness in `status`, and keeps the shared
//! [`PoolState`] (allocator + observed items) that the pod webhook allocates from.
//!
//! Runs only while this replica leads. On start it rebuilds the allocator from the API server — every pool, every
//! port held by a PortBinding or recorded in a pod's `poolbindings` annotation — before marking the state ready,
//! so the webhook never hands out a port from a half-known state. The desired listeners and statuses come from the
//! pure [`super::portpool_plan`]; the Listener reconciler then syncs the CRs to CLB.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub mod plan;

use super::Context;
use super::lb_cache::LbCache;
use super::owned_listeners;
use crate::allocator::{AllocatePolicy, Allocator, ItemStatus, PoolKey};
use crate::api::{Listener, ObjectKey, PortBinding, PortPool, PortPoolStatus, keys};
use crate::cloud::LbRef;
use crate::ingress::{LbKey, LbSelection};
use crate::pools::held::HeldPort;
use crate::pools::leak::{Duplicate, claims_of, duplicate_holdings};
use crate::runtime::metrics_server::PoolItemLabels;
use crate::runtime::watch::{spawn_reflector, spawn_reflector_where};
use crate::runtime::{
    Action, DriverConfig, Reconcile, ReconcileError, api_call, drive, events, finalizer, wait_true,
};
use plan::{
    LABEL_PORTPOOL_ITEM, OWNER_KIND_PORTPOOL, allocator_item, allocator_items_of, deleting_items,
    diff_listeners, item_label_value, item_listeners, item_readiness, item_status, pool_status,
};

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

/// Watches and reconciles PortPools until `stop` turns true. The pool state is ready only in between: from
/// the end of the allocator rebuild until this replica stops leading.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    ctx.pools.set_ready(false);
    let (tx, rx) = mpsc::unbounded_channel::<PoolKey>();
    let mut watches = JoinSet::new();
    let pools = spawn_reflector(
        &mut watches,
        ctx.scoped_api(),
        watcher::Config::default(),
        &tx,
        |p: &PortPool| vec![ObjectKey::of(p)],
    );
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        keys::LABEL_OWNER_KIND,
        OWNER_KIND_PORTPOOL
    ));
    let listeners = spawn_reflector_where(
        &mut watches,
        ctx.scoped_api(),
        owned,
        &tx,
        |l: &Listener| owner_pool(l).into_iter().collect(),
        pool_fingerprint,
    );
    let caches = async {
        let _ = futures::join!(pools.wait_until_ready(), listeners.wait_until_ready());
        tracing::info!("portpool caches synced");
        rebuild_until_done(&ctx, &pools).await
    };
    tokio::select! {
        _ = wait_true(&mut stop) => { watches.shutdown().await; return; }
        () = caches => {}
    }
    ctx.pools.set_ready(true);
    let config = DriverConfig {
        name: "portpool",
        concurrency: 1,
        resync: ctx.resync(),
        errors: ctx.metrics.reconcile_errors.clone(),
    };
    let reconciler = Arc::new(PoolReconciler {
        ctx,
        pools,
        listeners,
        lb_cache: tokio::sync::Mutex::default(),
        series: Mutex::default(),
    });
    let refresh = refresh_metrics_periodically(reconciler.clone());
    tokio::select! {
        () = drive(reconciler.clone(), config, rx, stop) => {}
        () = refresh => {}
    }
    // Another replica takes over and rebuilds; nothing may be allocated from this copy meanwhile.
    reconciler.ctx.pools.set_ready(false);
    watches.shutdown().await;
}

/// What the pool reconciler reads of one of its Listener CRs: labels except the binding's source labels, whether
/// it is deleting, its finalizers, its spec without the targets, and its sync status and listener id. Targets and
/// source labels change with every pod bound (and `observedGeneration` with them); they are the PortBinding
/// controller's business, so those updates do not wake the pool reconciler.
fn pool_fingerprint(listener: &Listener) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for (key, value) in listener.labels() {
        if key != keys::LABEL_SOURCE_NAME && key != keys::LABEL_SOURCE_NAMESPACE {
            (key, value).hash(&mut hasher);
        }
    }
    listener
        .metadata
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    listener.metadata.finalizers.hash(&mut hasher);
    let mut spec = listener.spec.clone();
    spec.target_group = None;
    serde_json::to_string(&spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    if let Some(status) = &listener.status {
        (&status.status, &status.listener_id).hash(&mut hasher);
    }
    hasher.finish()
}

/// Rebuilds the allocator, retrying until the API server answers.
async fn rebuild_until_done(ctx: &Context, pools: &Store<PortPool>) {
    loop {
        match rebuild(ctx, pools).await {
            Ok(held) => {
                tracing::info!(pools = pools.state().len(), held, "port allocator rebuilt");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?REBUILD_RETRY, "port allocator rebuild failed");
                tokio::time::sleep(REBUILD_RETRY).await;
            }
        }
    }
}

/// Refreshes the capacity/usage gauges every [`METRICS_REFRESH`]; never returns.
async fn refresh_metrics_periodically(reconciler: Arc<PoolReconciler>) {
    let start = tokio::time::Instant::now() + METRICS_REFRESH;
    let mut refresh = tokio::time::interval_at(start, METRICS_REFRESH);
    loop {
        refresh.tick().await;
        reconciler.refresh_all_metrics();
    }
}

/// Fills the allocator from scratch: every pool from its recorded status, then every port a PortBinding or a
/// pod's `poolbindings` annotation records. Returns how many ports are held.
async fn rebuild(ctx: &Context, pools: &Store<PortPool>) -> Result<usize, ReconcileError> {
    let bindings: Api<PortBinding> = Api::all(ctx.client.clone());
    let bindings = api_call(
        "listing portbindings",
        bindings.list(&ListParams::default()),
    )
    .await?
    .items;
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let pods = api_call("listing pods", pods.list(&ListParams::default()))
        .await?
        .items;
    let claims = claims_of(&bindings, &pods);
    let held: BTreeSet<HeldPort> = claims.iter().map(|c| c.port.clone()).collect();
    let duplicates = duplicate_holdings(&claims);
    let pools = pools.state();
    ctx.pools.with_allocator(|allocator| {
        *allocator = Allocator::new();
        for pool in &pools {
            let key = ObjectKey::of(&**pool);
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
        ctx.pools.set_items(ObjectKey::of(&**pool), items);
    }
    // Allocations made before this rebuild are either recorded (and now held) or lost with the old leader.
    ctx.pools.clear_pending();
    report_duplicates(ctx, &pods, &duplicates).await;
    Ok(held.len())
}

/// Counts and reports ports two holders claim: a Warning event on the second pod, a log otherwise. The first
/// claim keeps the port in the allocator; an operator must resolve the conflict.
async fn report_duplicates(ctx: &Context, pods: &[Pod], duplicates: &[Duplicate]) {
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    for dup in duplicates {
        let (pool, item, protocol, port) = &dup.port;
        let labels = PoolItemLabels {
            namespace: pool.namespace.clone(),
            pool: pool.name.clone(),
            item: item.clone(),
            protocol: protocol.as_str().to_owned(),
        };
        ctx.metrics
            .pool_duplicate_holdings
            .get_or_create(&labels)
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
        if let Some(pod) = second_pod {
            let failures = &ctx.metrics.kube_errors;
            let object = pod.object_ref(&());
            events::warn(
                &recorder,
                &object,
                REASON_DUPLICATE_HOLDING,
                "Rebuild",
                &message,
                failures,
            )
            .await;
        }
    }
}

/// Reconciles one pool at a time (the driver's concurrency is 1); the locks only give the shared reconciler
/// its mutable caches.
struct PoolReconciler {
    ctx: Context,
    pools: Store<PortPool>,
    listeners: Store<Listener>,
    lb_cache: tokio::sync::Mutex<LbCache>,
    /// Gauge series written per pool, so series of removed items or pools can be dropped.
    series: Mutex<HashMap<PoolKey, Vec<PoolItemLabels>>>,
}

impl Reconcile for PoolReconciler {
    type Key = PoolKey;

    fn all_keys(&self) -> Vec<PoolKey> {
        self.pools
            .state()
            .iter()
            .map(|p| ObjectKey::of(&**p))
            .collect()
    }

    /// Finalizer, the items' Listener CRs made to match, item and pool status, the allocator fed.
    async fn reconcile(&self, key: &PoolKey) -> Result<Action, ReconcileError> {
        let Some(pool) = self
            .pools
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            self.forget(key);
            return Ok(Action::await_change());
        };
        let listener_api: Api<Listener> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let pool_api: Api<PortPool> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        if pool.metadata.deletion_timestamp.is_some() {
            return self.finalize(key, &pool, &listener_api, &pool_api).await;
        }
        finalizer::add(&pool_api, &*pool, keys::FINALIZER_CONTROLLER).await?;
        let existing = self.owned_listeners(key);
        let (desired, mut statuses, unresolved) = self.desired(&pool, &existing).await;
        let mut diff = diff_listeners(&desired, &existing);
        // Items whose LBs could not be resolved keep their listeners: a cloud hiccup must not delete them.
        diff.delete.retain(|name| {
            !existing.iter().any(|l| {
                l.name_any() == *name
                    && l.labels()
                        .get(LABEL_PORTPOOL_ITEM)
                        .is_some_and(|i| unresolved.contains(i))
            })
        });
        let apply: Vec<&Listener> = diff.apply.iter().collect();
        owned_listeners::write(&listener_api, FIELD_MANAGER, &apply, &diff.delete).await?;
        statuses.extend(still_deleting_items(&pool, &existing));
        let status = PortPoolStatus {
            status: Some(pool_status(&statuses).to_owned()),
            pool_items: statuses,
        };
        if pool.status.as_ref() != Some(&status) {
            let patch = json!({"status": status});
            api_call(
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
        Ok(if settled && diff.blocked.is_empty() {
            Action::await_change()
        } else {
            Action::requeue(WAIT_FOR_LISTENERS)
        })
    }
}

/// Items removed from the spec that still have listeners: they stay (Deleting) until none is left.
fn still_deleting_items(
    pool: &PortPool,
    existing: &[Listener],
) -> Vec<crate::api::PortPoolItemStatus> {
    let mut out = Vec::new();
    for gone in deleting_items(pool) {
        let label = item_label_value(&gone.item_name);
        let left = existing
            .iter()
            .any(|l| l.labels().get(LABEL_PORTPOOL_ITEM) == Some(&label));
        if left {
            out.push(gone);
        } else {
            tracing::info!(item = %gone.item_name, "removed item's listeners gone; item dropped");
        }
    }
    out
}

impl PoolReconciler {
    /// The pool's Listener CRs in the cache.
    fn owned_listeners(&self, key: &PoolKey) -> Vec<Listener> {
        self.listeners
            .state()
            .iter()
            .filter(|l| l.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .filter(|l| owner_pool(l).as_ref() == Some(key))
            .map(|l| (**l).clone())
            .collect()
    }

    /// The Listener CRs every item needs, each item's status, and the items whose LBs could not be resolved.
    async fn desired(
        &self,
        pool: &PortPool,
        existing: &[Listener],
    ) -> (
        Vec<Listener>,
        Vec<crate::api::PortPoolItemStatus>,
        BTreeSet<String>,
    ) {
        let mut desired = Vec::new();
        let mut statuses = Vec::new();
        let mut unresolved = BTreeSet::new();
        for item in &pool.spec.pool_items {
            let lbs = match self.resolve(&item.load_balancer_ids).await {
                Ok(lbs) => lbs,
                Err(message) => {
                    unresolved.insert(item_label_value(&item.item_name));
                    statuses.push(item_status(item, &[], ItemStatus::NotReady, message));
                    continue;
                }
            };
            let wanted = item_listeners(pool, item, &lbs);
            let (status, message) = item_readiness(&wanted, existing);
            statuses.push(item_status(item, &lbs, status, message));
            desired.extend(wanted);
        }
        (desired, statuses, unresolved)
    }
    /// Resolves item `loadBalancerIDs` (`lb-x` or `region:lb-x`); the error is the item's status message.
    async fn resolve(&self, ids: &[String]) -> Result<Vec<crate::ingress::ResolvedLb>, String> {
        let mut lb_keys: Vec<LbKey> = Vec::new();
        for entry in ids {
            let lb = LbRef::parse(entry.trim(), &self.ctx.settings.default_region)
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
            .lock()
            .await
            .resolve(&self.ctx.cloud, &LbSelection::Ids(lb_keys))
            .await
            .map_err(|e| format!("get loadbalancer info failed: {e}"))
    }

    /// Hands the new status to the allocator (geometry growth, item status, removed items) and the webhook.
    fn feed_state(&self, key: &PoolKey, pool: &PortPool, status: &PortPoolStatus) {
        let items: Vec<_> = status
            .pool_items
            .iter()
            .filter_map(allocator_item)
            .collect();
        let policy = policy_of(pool);
        if let Err(e) = self
            .ctx
            .pools
            .with_allocator(|a| a.sync_pool(key, policy, &items))
        {
            tracing::warn!(pool = %key, error = %e, "allocator not updated");
        }
        self.ctx
            .pools
            .set_items(key.clone(), status.pool_items.clone());
        self.refresh_metrics(key);
    }

    /// Deletion: no new ports, delete the pool's Listener CRs, and remove the finalizer once they are all gone.
    async fn finalize(
        &self,
        key: &PoolKey,
        pool: &PortPool,
        listener_api: &Api<Listener>,
        pool_api: &Api<PortPool>,
    ) -> Result<Action, ReconcileError> {
        self.ctx.pools.with_allocator(|a| {
            let names: Vec<String> = a
                .pool(key)
                .map(|p| p.items().iter().map(|i| i.name().to_owned()).collect())
                .unwrap_or_default();
            for name in names {
                let _ = a.set_item_status(key, &name, ItemStatus::Deleting);
            }
        });
        if !finalizer::has(pool, keys::FINALIZER_CONTROLLER) {
            return Ok(Action::await_change());
        }
        if !owned_listeners::delete_all(listener_api, OWNER_KIND_PORTPOOL, &key.name).await? {
            return Ok(Action::requeue(WAIT_FOR_LISTENERS));
        }
        finalizer::remove(pool_api, pool, keys::FINALIZER_CONTROLLER).await?;
        self.forget(key);
        tracing::info!("pool listeners gone; finalizer removed");
        Ok(Action::await_change())
    }

    /// Drops a pool from the allocator, the observed items and the gauges.
    fn forget(&self, key: &PoolKey) {
        self.ctx.pools.with_allocator(|a| a.remove_pool(key));
        self.ctx.pools.remove_items(key);
        let removed = lock(&self.series).remove(key).unwrap_or_default();
        for labels in removed {
            self.ctx.metrics.pool_capacity.remove(&labels);
            self.ctx.metrics.pool_used.remove(&labels);
        }
    }

    fn refresh_all_metrics(&self) {
        let keys: Vec<PoolKey> = self
            .ctx
            .pools
            .with_allocator(|a| a.pool_keys().cloned().collect());
        for key in keys {
            self.refresh_metrics(&key);
        }
    }

    /// Sets the capacity/usage gauges of one pool from the allocator and drops series of removed items.
    fn refresh_metrics(&self, key: &PoolKey) {
        let usage = self
            .ctx
            .pools
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
        let mut series = lock(&self.series);
        for old in series.remove(key).unwrap_or_default() {
            if !written.contains(&old) {
                self.ctx.metrics.pool_capacity.remove(&old);
                self.ctx.metrics.pool_used.remove(&old);
            }
        }
        series.insert(key.clone(), written);
    }
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

    #[test]
    fn a_bound_target_does_not_change_what_the_pool_reads_but_a_sync_status_does() {
        let listener: Listener = serde_json::from_value(json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "Listener",
            "metadata": {"name": "lb-1-tcp-100", "namespace": "game", "generation": 1,
                "labels": {"owner-kind": "PortPool", "owner-name": "pool1"}},
            "spec": {"loadbalancerID": "lb-1", "port": 100, "protocol": "TCP"},
            "status": {"listenerID": "lbl-1", "status": "Synced", "observedGeneration": 1},
        }))
        .unwrap();
        let before = pool_fingerprint(&listener);

        let mut bound = listener.clone();
        bound.metadata.generation = Some(2);
        bound
            .labels_mut()
            .insert(keys::LABEL_SOURCE_NAME.into(), "pod-1".into());
        bound
            .labels_mut()
            .insert(keys::LABEL_SOURCE_NAMESPACE.into(), "game".into());
        bound.spec.target_group = serde_json::from_value(json!(
            {"protocol": "TCP", "backends": [{"IP": "10.0.0.1", "port": 80, "weight": 10}]}
        ))
        .unwrap();
        if let Some(status) = bound.status.as_mut() {
            status.observed_generation = Some(2);
        }
        assert_eq!(pool_fingerprint(&bound), before);

        let mut failed = bound.clone();
        if let Some(status) = failed.status.as_mut() {
            status.status = Some("NotSynced".into());
        }
        assert_ne!(pool_fingerprint(&failed), before);
        let mut deleting = listener.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert_ne!(pool_fingerprint(&deleting), before);
    }
}
