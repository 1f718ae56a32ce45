//! Writes sync outcomes back to Listener CRs: `status` through the status subresource (only when it changes),
//! the finalizer once a deleting CR's cloud listener is gone, and a Warning event per failure.
//!
//! Workers hand outcomes to [`StatusQueue`] without waiting (the sync loop never blocks on the API server).
//! The writer applies them on [`SHARDS`] lanes at once; a CR always goes to the same lane, which applies in
//! arrival order, so two outcomes for one CR cannot be reordered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::Recorder;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::store::ListenerStore;
use crate::api::{Listener, ListenerStatus, keys};
use crate::runtime::{ReconcileError, RuntimeMetrics, api_call, events, finalizer};
use crate::sync::OwnerRef;
use crate::sync::executor::Outcome;

/// `status.msg` of a Synced listener (bcs writes the same text).
pub const MSG_SYNCED: &str = "ensure success";
/// Reason of the Warning event on a failed sync.
pub const EVENT_REASON_FAILED: &str = "EnsureFailed";

/// The sending side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct StatusQueue {
    lanes: Vec<mpsc::UnboundedSender<Queued>>,
}

/// Status writes in flight at once (one lane each).
pub const SHARDS: usize = 8;

/// One outcome and the `metadata.generation` of the spec it was computed from, when known.
type Queued = (OwnerRef, Outcome, Option<i64>);

impl StatusQueue {
    /// Queues one outcome that is not tied to a synced spec (e.g. an invalid CR).
    pub fn push(&self, owner: OwnerRef, outcome: Outcome) {
        self.push_observed(owner, outcome, None);
    }

    /// Queues the outcome of a sync pass planned from generation `generation` of the CR's spec; it becomes
    /// `status.observedGeneration`. After shutdown (writer gone) outcomes are dropped: the next leader
    /// recomputes them.
    pub fn push_observed(&self, owner: OwnerRef, outcome: Outcome, generation: Option<i64>) {
        let lane = lane_of(&owner, self.lanes.len());
        if self.lanes[lane].send((owner, outcome, generation)).is_err() {
            tracing::debug!("status writer stopped; dropping an outcome");
        }
    }
}

/// The lane of a CR: a stable hash of its name.
fn lane_of(owner: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    owner.hash(&mut hasher);
    (hasher.finish() % lanes.max(1) as u64) as usize
}

/// Applies outcomes to the API server.
pub struct StatusWriter {
    writer: Arc<Writer>,
    lanes: Vec<mpsc::UnboundedReceiver<Queued>>,
}

struct Writer {
    client: Client,
    store: Arc<ListenerStore>,
    recorder: Recorder,
    metrics: RuntimeMetrics,
}

impl StatusWriter {
    pub fn new(
        client: Client,
        store: Arc<ListenerStore>,
        recorder: Recorder,
        metrics: RuntimeMetrics,
    ) -> (StatusQueue, StatusWriter) {
        let (senders, receivers) = (0..SHARDS).map(|_| mpsc::unbounded_channel()).unzip();
        (
            StatusQueue { lanes: senders },
            StatusWriter {
                writer: Arc::new(Writer {
                    client,
                    store,
                    recorder,
                    metrics,
                }),
                lanes: receivers,
            },
        )
    }

    /// Runs until every [`StatusQueue`] is dropped.
    pub async fn run(self) {
        let lanes = self.lanes.into_iter().map(|mut lane| {
            let writer = self.writer.clone();
            async move {
                while let Some((owner, outcome, generation)) = lane.recv().await {
                    writer
                        .apply_until_written(&owner, &outcome, generation)
                        .await;
                }
            }
        });
        futures::future::join_all(lanes).await;
    }
}

/// How long a status write that failed for a transient reason (API server restarting, throttling) is tried
/// again. The sync worker does not report an unchanged outcome twice, so a write given up here is written
/// only when the outcome changes or the CR is notified again.
const RETRY_FOR: Duration = Duration::from_secs(120);
/// First and longest wait between tries.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Writer {
    /// Applies one outcome, trying transient failures again with backoff for up to [`RETRY_FOR`]. The lane
    /// waits meanwhile: its other writes would fail alike.
    async fn apply_until_written(&self, owner: &str, outcome: &Outcome, generation: Option<i64>) {
        let deadline = Instant::now() + RETRY_FOR;
        let mut wait = RETRY_FIRST;
        let mut first = true;
        loop {
            let Err(e) = self.apply(owner, outcome, generation, first).await else {
                return;
            };
            self.metrics.kube_errors.inc();
            if !e.is_transient() || Instant::now() + wait > deadline {
                tracing::warn!(listener = owner, error = %e, "writing listener outcome failed");
                return;
            }
            tracing::debug!(listener = owner, error = %e, retry_in = ?wait, "writing listener outcome failed; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
            first = false;
        }
    }

    /// One try; the outcome is counted and a failure's Warning event published on the first try only.
    async fn apply(
        &self,
        owner: &str,
        outcome: &Outcome,
        generation: Option<i64>,
        first: bool,
    ) -> Result<(), ReconcileError> {
        // The cache is the newest state we know; an owner it no longer holds is gone.
        let Some(listener) = self.store.get(owner) else {
            return Ok(());
        };
        let Some((namespace, _)) = owner.split_once('/') else {
            return Ok(());
        };
        let api: Api<Listener> = Api::namespaced(self.client.clone(), namespace);
        let count = |what| {
            if first {
                self.metrics.count(what);
            }
        };
        match outcome {
            Outcome::Deleted => {
                count("deleted");
                self.remove_finalizer(&api, &listener).await
            }
            Outcome::Synced { listener_id } => {
                count("synced");
                self.patch_status(
                    &api,
                    owner,
                    &listener,
                    Some(listener_id.clone()),
                    (keys::LISTENER_STATUS_SYNCED, MSG_SYNCED),
                    generation,
                )
                .await
            }
            Outcome::NotSynced { code, message } => {
                count("not_synced");
                if first {
                    tracing::warn!(listener = owner, code = code.as_deref(), %message, "listener not synced");
                    self.warn(&listener, message).await;
                    self.warn_owner(&listener, code.as_deref()).await;
                }
                // A failed pass keeps the id we already know (the listener may well still exist).
                let known = listener.status.as_ref().and_then(|s| s.listener_id.clone());
                self.patch_status(
                    &api,
                    owner,
                    &listener,
                    known,
                    (keys::LISTENER_STATUS_NOT_SYNCED, message),
                    generation,
                )
                .await
            }
        }
    }

    async fn patch_status(
        &self,
        api: &Api<Listener>,
        owner: &str,
        listener: &Listener,
        listener_id: Option<String>,
        (status, msg): (&str, &str),
        generation: Option<i64>,
    ) -> Result<(), ReconcileError> {
        let current = listener.status.clone().unwrap_or_default();
        let mut next = current.clone();
        next.listener_id = listener_id.filter(|id| !id.is_empty());
        next.status = Some(status.to_string());
        next.msg = Some(msg.to_string());
        if generation.is_some() {
            next.observed_generation = generation;
        }
        if status_is_same(&current, &next) {
            return Ok(());
        }
        let name = listener.metadata.name.as_deref().unwrap_or_default();
        // A merge patch of only our three fields leaves `portpool`, `ingress` and uptime status alone.
        let patch = json!({
            "status": {
                "listenerID": next.listener_id,
                "status": next.status,
                "msg": next.msg,
                "observedGeneration": next.observed_generation,
            }
        });
        api_call(
            "writing a listener status",
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        self.store.set_status(owner, next);
        Ok(())
    }

    /// Removes our finalizer once the cloud listener is gone (see [`finalizer::remove`] for the guard).
    async fn remove_finalizer(
        &self,
        api: &Api<Listener>,
        listener: &Listener,
    ) -> Result<(), ReconcileError> {
        finalizer::remove(api, listener, keys::FINALIZER_CONTROLLER).await?;
        tracing::info!(listener = %listener.name_any(), "cloud listener gone; finalizer removed");
        Ok(())
    }

    async fn warn(&self, listener: &Listener, message: &str) {
        let object = listener.object_ref(&());
        let failures = &self.metrics.kube_errors;
        events::warn(
            &self.recorder,
            &object,
            EVENT_REASON_FAILED,
            "Sync",
            message,
            failures,
        )
        .await;
    }
}

impl Writer {
    /// The same failure, summarised on the Ingress or PortPool the listener was generated from: that is the
    /// object a user applied and describes. The note names the LB and error code but no port, so failures of
    /// many listeners of one owner fold into one event series.
    async fn warn_owner(&self, listener: &Listener, code: Option<&str>) {
        let Some(owner) = owner_object(listener) else {
            return;
        };
        let note = owner_note(listener, code);
        events::warn(
            &self.recorder,
            &owner,
            EVENT_REASON_FAILED,
            "Sync",
            &note,
            &self.metrics.kube_errors,
        )
        .await;
    }
}

/// The Ingress or PortPool owning a generated listener (its controller owner reference).
fn owner_object(listener: &Listener) -> Option<ObjectReference> {
    let owner = listener
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.api_version.starts_with(crate::api::GROUP)
                && matches!(o.kind.as_str(), "Ingress" | "PortPool")
        })?;
    Some(ObjectReference {
        api_version: Some(owner.api_version.clone()),
        kind: Some(owner.kind.clone()),
        name: Some(owner.name.clone()),
        namespace: listener.metadata.namespace.clone(),
        uid: Some(owner.uid.clone()),
        ..ObjectReference::default()
    })
}

/// The owner's event note: LB, error code, and where the details are.
fn owner_note(listener: &Listener, code: Option<&str>) -> String {
    let lb = listener
        .labels()
        .get(keys::LABEL_LB_ID)
        .map(String::as_str)
        .unwrap_or("its load balancer");
    let owner = listener
        .labels()
        .get(keys::LABEL_OWNER_NAME)
        .map(String::as_str)
        .unwrap_or_default();
    format!(
        "listeners on {lb} failed to sync ({}); the failing Listener CRs have the details: \
         kubectl get listeners -l {}={owner}",
        code.unwrap_or("no error code"),
        keys::LABEL_OWNER_NAME
    )
}

fn status_is_same(a: &ListenerStatus, b: &ListenerStatus) -> bool {
    a.listener_id == b.listener_id
        && a.status == b.status
        && a.msg == b.msg
        && a.observed_generation == b.observed_generation
}

#[cfg(test)]
mod tests {
    use super::{SHARDS, lane_of};

    #[test]
    fn a_generated_listeners_failure_is_summarised_on_its_owner_without_the_port() {
        let listener: crate::api::Listener = serde_json::from_value(serde_json::json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "Listener",
            "metadata": {"name": "lb-1-30000-tcp", "namespace": "game",
                "labels": {"ingress.bkbcs.tencent.com/lbid": "lb-1", "owner-name": "pool1", "owner-kind": "PortPool"},
                "ownerReferences": [{"apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortPool",
                    "name": "pool1", "uid": "u-1", "controller": true}]},
            "spec": {"loadbalancerID": "lb-1", "port": 30000, "protocol": "TCP"},
        }))
        .unwrap();
        let owner = super::owner_object(&listener).unwrap();
        assert_eq!(owner.kind.as_deref(), Some("PortPool"));
        assert_eq!(
            (
                owner.name.as_deref(),
                owner.namespace.as_deref(),
                owner.uid.as_deref()
            ),
            (Some("pool1"), Some("game"), Some("u-1"))
        );
        let note = super::owner_note(&listener, Some("LimitExceeded"));
        assert_eq!(
            note,
            "listeners on lb-1 failed to sync (LimitExceeded); the failing Listener CRs have the details: \
             kubectl get listeners -l owner-name=pool1"
        );
        assert!(!note.contains("30000"), "one series per owner, LB and code");
        let mut orphan = listener.clone();
        orphan.metadata.owner_references = None;
        assert!(super::owner_object(&orphan).is_none());
    }

    #[test]
    fn a_listener_always_gets_the_same_lane_and_lanes_are_used() {
        let owners: Vec<String> = (0..200).map(|i| format!("ns/listener-{i}")).collect();
        let mut used = std::collections::BTreeSet::new();
        for owner in &owners {
            let lane = lane_of(owner, SHARDS);
            assert!(lane < SHARDS);
            assert_eq!(lane, lane_of(owner, SHARDS), "{owner} changed lanes");
            used.insert(lane);
        }
        assert_eq!(
            used.len(),
            SHARDS,
            "200 listeners should spread over every lane"
        );
        assert_eq!(lane_of("ns/x", 0), 0);
    }
}
