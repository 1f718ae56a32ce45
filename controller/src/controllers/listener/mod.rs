//! The Listener reconciler: watches Listener CRs into a [`ListenerStore`], adds the finalizer on first sight,
//! and wakes the load balancer's sync worker on every change. The workers read the store through
//! [`StoreSource`] and report through [`QueueSink`] (→ [`StatusWriter`]).
//!
//! Runs only while this replica leads; [`run_while_leader`] returns (and stops every worker) when told to stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::Recorder;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

pub mod desired;
pub mod status;
pub mod store;

use super::Context;
use crate::api::{Listener, keys};
use crate::cloud::LbRef;
use crate::runtime::metrics_server::StatusLabels;
use crate::runtime::{finalizer, wait_true};
use crate::sync::{DesiredSource, Outcome, OwnerRef, Snapshot, StatusSink, WorkerPool};
use desired::owner_of;
use status::{StatusQueue, StatusWriter};
use store::{ListenerStore, Role, role_of};

/// How often missing finalizers are retried and the gauges refreshed.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(5);
/// How long a stopping reconciler waits for queued status writes.
const STATUS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// [`DesiredSource`] over the store. CRs the sync engine cannot take (invalid spec) are reported NotSynced
/// here, once per distinct message.
pub struct StoreSource {
    store: Arc<ListenerStore>,
    queue: StatusQueue,
    reported_invalid: Mutex<HashMap<OwnerRef, String>>,
    /// Generation of each CR's spec in the latest snapshot of its LB. A worker reports a pass's outcomes
    /// before it takes the next snapshot of that LB, so [`QueueSink`] reads the generation the pass planned.
    planned: Arc<Mutex<HashMap<OwnerRef, i64>>>,
}

impl DesiredSource for StoreSource {
    async fn snapshot(&self, lb: &LbRef) -> Snapshot {
        let snap = self.store.snapshot(lb);
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(snap.generations);
        if !snap.invalid.is_empty() {
            let mut reported = self
                .reported_invalid
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (owner, error) in snap.invalid {
                let message = error.to_string();
                if reported.get(&owner) != Some(&message) {
                    reported.insert(owner.clone(), message.clone());
                    self.queue.push(
                        owner,
                        Outcome::NotSynced {
                            code: None,
                            message,
                        },
                    );
                }
            }
        }
        Snapshot {
            desired: snap.desired,
            deleting: snap.deleting,
        }
    }
}

/// [`StatusSink`] that queues outcomes for the [`StatusWriter`] (never blocks a worker on the API server).
pub struct QueueSink {
    queue: StatusQueue,
    planned: Arc<Mutex<HashMap<OwnerRef, i64>>>,
}

impl StatusSink for QueueSink {
    async fn report(&self, _lb: &LbRef, owner: &OwnerRef, outcome: &Outcome) {
        let mut planned = self.planned.lock().unwrap_or_else(|p| p.into_inner());
        let generation = match outcome {
            // A deleted CR is gone for good: forget it.
            Outcome::Deleted => planned.remove(owner),
            _ => planned.get(owner).copied(),
        };
        drop(planned);
        self.queue
            .push_observed(owner.clone(), outcome.clone(), generation);
    }
}

/// Watches Listener CRs and drives the sync workers until `stop` turns true.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    let store = Arc::new(ListenerStore::new(
        ctx.cloud.config().default_region.clone(),
    ));
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let (queue, writer) = StatusWriter::new(
        ctx.client.clone(),
        store.clone(),
        recorder,
        ctx.metrics.clone(),
    );
    let mut writer_task = tokio::spawn(writer.run());
    let planned = Arc::new(Mutex::new(HashMap::new()));
    let pool = WorkerPool::new(
        ctx.cloud.clone(),
        Arc::new(StoreSource {
            store: store.clone(),
            queue: queue.clone(),
            reported_invalid: Mutex::default(),
            planned: planned.clone(),
        }),
        Arc::new(QueueSink {
            queue: queue.clone(),
            planned,
        }),
        ctx.worker,
    );

    let api: Api<Listener> = ctx.scoped_api();
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut reconciler = Reconciler {
        ctx: &ctx,
        store: &store,
        queue: &queue,
        pool: &pool,
        initial: Vec::new(),
    };
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_PERIOD);
    loop {
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            event = events.next() => match event {
                Some(Ok(event)) => reconciler.handle(event).await,
                Some(Err(e)) => tracing::warn!(error = %e, "listener watch failed; retrying with backoff"),
                None => break,
            },
            _ = housekeeping.tick() => reconciler.housekeeping().await,
        }
    }

    ctx.health
        .synced
        .store(false, std::sync::atomic::Ordering::Release);
    drop(reconciler);
    pool.shutdown().await;
    drop(pool);
    drop(queue);
    // Every queue sender is gone now, so the writer ends after the outcomes already queued.
    if tokio::time::timeout(STATUS_DRAIN_TIMEOUT, &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    tracing::info!("listener reconciler stopped");
}

struct Reconciler<'a> {
    ctx: &'a Context,
    store: &'a Arc<ListenerStore>,
    queue: &'a StatusQueue,
    pool: &'a WorkerPool<StoreSource, QueueSink>,
    /// Objects of a (re)list, applied at once on `InitDone`.
    initial: Vec<Listener>,
}

impl Reconciler<'_> {
    async fn handle(&mut self, event: Event<Listener>) {
        match event {
            Event::Init => self.initial.clear(),
            Event::InitApply(listener) => self.initial.push(listener),
            Event::InitDone => {
                let listeners = std::mem::take(&mut self.initial);
                tracing::info!(count = listeners.len(), "listener cache synced");
                for listener in &listeners {
                    if role_of(listener) == Role::AwaitingFinalizer {
                        self.add_finalizer(listener).await;
                    }
                }
                let lbs = self.store.replace_all(listeners);
                // A (re)list may hide changes and deletions: every LB gets a full pass.
                for lb in &lbs {
                    self.pool.resync(lb);
                }
                for (owner, error) in self.store.without_lb() {
                    self.queue.push(
                        owner,
                        Outcome::NotSynced {
                            code: None,
                            message: error.to_string(),
                        },
                    );
                }
                self.ctx
                    .health
                    .synced
                    .store(true, std::sync::atomic::Ordering::Release);
                self.housekeeping().await;
            }
            Event::Apply(listener) => {
                let owner = owner_of(&listener);
                if role_of(&listener) == Role::AwaitingFinalizer {
                    self.add_finalizer(&listener).await;
                }
                let role = role_of(&listener);
                // Our own status writes come back as events too; they change nothing to sync.
                let sync_relevant = self
                    .store
                    .get(&owner)
                    .is_none_or(|previous| needs_sync(&previous, &listener));
                let touched = self.store.apply(listener);
                // An unusable LB reference never reaches a worker: report it here.
                let bad_lb = (role != Role::Ignored)
                    .then(|| {
                        self.store
                            .without_lb()
                            .into_iter()
                            .find(|(o, _)| *o == owner)
                    })
                    .flatten();
                if let Some((_, error)) = bad_lb {
                    self.queue.push(
                        owner.clone(),
                        Outcome::NotSynced {
                            code: None,
                            message: error.to_string(),
                        },
                    );
                }
                if sync_relevant {
                    for lb in &touched {
                        self.pool.notify(lb, owner.clone());
                    }
                }
                self.stop_idle_workers(&touched).await;
            }
            Event::Delete(listener) => {
                // Our finalizer kept it until its cloud listener was gone: nothing for the cloud to do.
                let touched = self.store.delete(&owner_of(&listener));
                self.stop_idle_workers(&touched).await;
            }
        }
    }

    /// Stops the workers of LBs no CR refers to any more.
    async fn stop_idle_workers(&self, lbs: &[LbRef]) {
        let live = self.store.lbs();
        for lb in lbs {
            if !live.contains(lb) {
                self.pool.stop(lb).await;
            }
        }
    }

    /// Adds our finalizer; a conflicting concurrent change fails the patch and is retried on the next event or
    /// housekeeping tick.
    async fn add_finalizer(&self, listener: &Listener) {
        let Some(ns) = listener.metadata.namespace.as_deref() else {
            return;
        };
        let api: Api<Listener> = Api::namespaced(self.ctx.client.clone(), ns);
        match finalizer::add(&api, listener, keys::FINALIZER_CONTROLLER).await {
            Ok(()) => tracing::debug!(listener = %owner_of(listener), "finalizer added"),
            Err(e) => {
                self.ctx.metrics.kube_errors.inc();
                tracing::warn!(listener = %owner_of(listener), error = %e, "adding the finalizer failed");
            }
        }
    }

    /// Retries missing finalizers and refreshes the gauges.
    async fn housekeeping(&self) {
        for listener in self.store.awaiting_finalizer() {
            self.add_finalizer(&listener).await;
        }
        for (status, count) in self.store.count_by_status() {
            self.ctx
                .metrics
                .listeners
                .get_or_create(&StatusLabels {
                    status: status.to_string(),
                })
                .set(count);
        }
        self.ctx
            .metrics
            .load_balancers
            .set(i64::try_from(self.store.lbs().len()).unwrap_or(i64::MAX));
    }
}

/// Whether an update can change what the sync engine does: the spec (its generation), deletion, finalizers or
/// labels (which carry the region). Status-only updates, such as our own status writes, cannot.
fn needs_sync(previous: &Listener, next: &Listener) -> bool {
    let (a, b) = (&previous.metadata, &next.metadata);
    a.generation != b.generation
        || a.generation.is_none()
        || a.deletion_timestamp != b.deletion_timestamp
        || a.finalizers != b.finalizers
        || a.labels != b.labels
}

#[cfg(test)]
mod tests {
    use super::needs_sync;
    use crate::api::Listener;
    use serde_json::json;

    fn listener(generation: i64, status: &str, labels: serde_json::Value) -> Listener {
        serde_json::from_value(json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1",
            "kind": "Listener",
            "metadata": {"name": "l", "namespace": "ns", "generation": generation, "labels": labels},
            "spec": {"loadbalancerID": "lb-1", "port": 80, "protocol": "TCP"},
            "status": {"status": status},
        }))
        .expect("listener")
    }

    #[test]
    fn status_only_updates_do_not_wake_the_sync_worker() {
        let before = listener(2, "NotSynced", json!({}));
        assert!(!needs_sync(&before, &listener(2, "Synced", json!({}))));
        assert!(needs_sync(&before, &listener(3, "NotSynced", json!({}))));
        assert!(needs_sync(
            &before,
            &listener(2, "NotSynced", json!({"region": "ap-shanghai"}))
        ));
        let mut deleting = listener(2, "NotSynced", json!({}));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(needs_sync(&before, &deleting));
    }
}
