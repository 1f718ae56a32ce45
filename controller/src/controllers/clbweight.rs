//! The `clb-weight` handshake of the GameWorkload in-place update hooks (see [`crate::annotations::weight`]): a
//! pod whose `clb-weight-ready` says `"false"` waits until every Listener CR with a backend on the pod's IP
//! (Ingress direct and mapping backends, pool bindings) carries the pod's weight and is Synced for that spec, i.e.
//! the cloud has it; then the ready key (each spelling the pod uses) is set to `"true"`. The weights themselves
//! are applied by the Ingress and PortBinding controllers.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::Context;
use crate::annotations::weight::{
    self, CLB_WEIGHT_MISSPELLED, CLB_WEIGHT_READY_MISSPELLED, parse_weight, waiting_ready_keys,
};
use crate::api::keys::{ANNOTATION_CLB_WEIGHT, ANNOTATION_CLB_WEIGHT_READY};
use crate::api::{Listener, ObjectKey};
use crate::runtime::watch::spawn_reflector;
use crate::runtime::{
    Action, DriverConfig, Reconcile, ReconcileError, api_call, drive, events, wait_true,
};

/// Reason of the Warning event on a pod that uses the manual's spelling of the keys.
pub const REASON_MISSPELLED_KEY: &str = "MisspelledAnnotation";

type Waiting = Arc<Mutex<BTreeSet<ObjectKey>>>;

/// Watches pods and Listener CRs and settles waiting pods until `stop` turns true.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    let (tx, rx) = mpsc::unbounded_channel::<ObjectKey>();
    let waiting: Waiting = Arc::default();
    let mut tasks = JoinSet::new();
    let marked = waiting.clone();
    // Metadata only: the annotations say which pods wait; the few that do are read whole when reconciled.
    let pods = spawn_reflector(
        &mut tasks,
        Api::<PartialObjectMeta<Pod>>::all(ctx.client.clone()),
        watcher::Config::default(),
        &tx,
        move |p: &PartialObjectMeta<Pod>| {
            let key = ObjectKey::of(p);
            let mut waiting = lock(&marked);
            if waiting_ready_keys(p.annotations()).is_empty() {
                waiting.remove(&key);
                return Vec::new();
            }
            waiting.insert(key.clone());
            vec![key]
        },
    );
    // Few pods wait at once (only during a hook): any listener change looks at all of them again.
    let woken = waiting.clone();
    let listeners = spawn_reflector(
        &mut tasks,
        ctx.scoped_api::<Listener>(),
        watcher::Config::default(),
        &tx,
        move |_: &Listener| lock(&woken).iter().cloned().collect(),
    );
    tokio::select! {
        _ = wait_true(&mut stop) => { tasks.shutdown().await; return; }
        _ = async { let _ = futures::join!(pods.wait_until_ready(), listeners.wait_until_ready()); } => {}
    }
    let config = DriverConfig {
        name: "clbweight",
        concurrency: 4,
        resync: None,
        errors: ctx.metrics.reconcile_errors.clone(),
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let reconciler = Arc::new(Reconciler {
        ctx,
        pods,
        listeners,
        waiting,
        recorder,
        warned: Mutex::default(),
    });
    drive(reconciler, config, rx, stop).await;
    tasks.shutdown().await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Reconciler {
    ctx: Context,
    pods: Store<PartialObjectMeta<Pod>>,
    listeners: Store<Listener>,
    waiting: Waiting,
    recorder: Recorder,
    /// Pods (uid) already told about the manual's spelling.
    warned: Mutex<HashSet<String>>,
}

impl Reconcile for Reconciler {
    type Key = ObjectKey;

    fn all_keys(&self) -> Vec<ObjectKey> {
        lock(&self.waiting).iter().cloned().collect()
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let waits = self
            .pods
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .is_some_and(|meta| !waiting_ready_keys(meta.annotations()).is_empty());
        if !waits {
            return Ok(Action::await_change());
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let Some(pod) = api_call(
            "reading a pod that waits for its clb weight",
            api.get_opt(&key.name),
        )
        .await?
        else {
            return Ok(Action::await_change());
        };
        let waiting = waiting_ready_keys(pod.annotations());
        if waiting.is_empty() {
            return Ok(Action::await_change());
        }
        self.warn_misspelled(&pod).await;
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            return Ok(Action::await_change());
        };
        let wanted = weight::weight_value(pod.annotations()).and_then(|(v, _)| parse_weight(v));
        if !applied(&self.listeners.state(), &ip, wanted) {
            tracing::debug!(%ip, ?wanted, "clb weight not in the cloud yet");
            return Ok(Action::await_change());
        }
        let patch = json!({"metadata": {"annotations":
            waiting.iter().map(|k| (k.to_string(), json!("true"))).collect::<serde_json::Map<_, _>>()}});
        api_call(
            "setting clb-weight-ready",
            api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        tracing::info!(%ip, ?wanted, "clb weight applied in the cloud; clb-weight-ready set");
        Ok(Action::await_change())
    }
}

impl Reconciler {
    /// A Warning event (once per pod) naming the documented keys when the pod uses the manual's spelling.
    async fn warn_misspelled(&self, pod: &Pod) {
        if !weight::uses_misspelled_keys(pod.annotations()) {
            return;
        }
        let Some(uid) = pod.uid() else { return };
        if !lock(&self.warned).insert(uid) {
            return;
        }
        let note = format!(
            "annotations {CLB_WEIGHT_MISSPELLED} / {CLB_WEIGHT_READY_MISSPELLED} are honoured, but the documented \
             keys are {ANNOTATION_CLB_WEIGHT} / {ANNOTATION_CLB_WEIGHT_READY}"
        );
        events::warn(
            &self.recorder,
            &pod.object_ref(&()),
            REASON_MISSPELLED_KEY,
            "Weight",
            &note,
            &self.ctx.metrics.kube_errors,
        )
        .await;
    }
}

/// True when every listener with a backend on `ip` is Synced for its spec and (when a weight is asked for)
/// gives that backend the weight.
fn applied(listeners: &[Arc<Listener>], ip: &str, wanted: Option<i32>) -> bool {
    listeners.iter().all(|l| {
        let backends = l
            .spec
            .target_group
            .as_ref()
            .map(|tg| tg.backends.as_slice())
            .unwrap_or_default();
        let mine: Vec<_> = backends.iter().filter(|b| b.ip == ip).collect();
        if mine.is_empty() {
            return true;
        }
        let synced = l
            .status
            .as_ref()
            .is_some_and(|s| s.synced_for(l.metadata.generation));
        synced && wanted.is_none_or(|w| mine.iter().all(|b| b.weight == w))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(
        generation: i64,
        observed: i64,
        status: &str,
        backends: serde_json::Value,
    ) -> Arc<Listener> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "Listener",
                "metadata": {"name": "l", "namespace": "ns", "generation": generation},
                "spec": {"loadbalancerID": "lb-1", "port": 30000, "protocol": "TCP",
                    "targetGroup": {"protocol": "TCP", "backends": backends}},
                "status": {"status": status, "observedGeneration": observed},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_weight_counts_once_every_listener_of_the_pod_is_synced_with_it() {
        let pod = json!([{"IP": "10.0.0.5", "port": 80, "weight": 0}]);
        let other = json!([{"IP": "10.0.0.6", "port": 80, "weight": 10}]);
        let synced = listener(2, 2, "Synced", pod.clone());
        let stale = listener(3, 2, "Synced", pod.clone());
        let failed = listener(2, 2, "NotSynced", pod.clone());
        let unrelated = listener(5, 1, "NotSynced", other);
        assert!(applied(
            &[synced.clone(), unrelated.clone()],
            "10.0.0.5",
            Some(0)
        ));
        assert!(
            !applied(std::slice::from_ref(&synced), "10.0.0.5", Some(1)),
            "another weight"
        );
        assert!(
            !applied(&[synced.clone(), stale], "10.0.0.5", Some(0)),
            "spec not synced yet"
        );
        assert!(!applied(&[failed], "10.0.0.5", Some(0)));
        assert!(
            applied(&[synced], "10.0.0.5", None),
            "no weight asked: synced is enough"
        );
        assert!(
            applied(&[unrelated], "10.0.0.5", Some(0)),
            "no listener of the pod: nothing to wait for"
        );
    }
}
