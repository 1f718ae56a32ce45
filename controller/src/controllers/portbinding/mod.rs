//! The PortBinding controller: turns a pod's `poolbindings` annotation into a PortBinding, puts
//! the pod on the pool Listener CRs it was given (server-side apply owning only `spec.targetGroup`), reports
//! Ready/NotReady on the binding, the pod annotation and the pod readiness condition (both directions, unlike
//! bcs, which only ever set it true), and once the pod is gone empties the listeners, keeps the binding for `keepduration` and finally
//! deletes it and releases its ports. Decisions come from the pure [`plan`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub mod plan;

use super::Context;
use super::portpool::plan::OWNER_KIND_PORTPOOL;
use crate::allocator::{PoolKey, RequestProtocol};
use crate::annotations::{self, parse_pool_bindings};
use crate::api::{
    Listener, ObjectKey, PortBinding, PortBindingItem, PortBindingSpec, PortBindingStatus,
    PortBindingStatusItem, keys,
};
use crate::ingress::pod_clb_weight;
use crate::pools::held::HeldPort;
use crate::pools::leak::claims_of;
use crate::pools::reservation::LatePod;
use crate::runtime::events;
use crate::runtime::watch::spawn_reflector;
use crate::runtime::{Action, DriverConfig, Reconcile, ReconcileError, api_call, drive, wait_true};
use plan::{
    DesiredTarget, ListenerView, Observed, Phase, Step, bound_listeners, desired_targets,
    format_time, listeners_cleaned, next_step, parse_keep_duration, parse_time, targets_ready,
    with_current_external,
};

/// Field manager owning `spec.targetGroup` (and the source labels) of pool Listener CRs.
pub const FIELD_MANAGER: &str = "clb-controller-portbinding";
/// Recheck delay while a binding is not Ready or is cleaning (bcs: 3 s).
const RECHECK: Duration = Duration::from_secs(2);
/// How long after creating a binding this leader waits for the watch to deliver it before creating it again.
const CREATE_SETTLE: Duration = Duration::from_secs(10);
/// Reason of the Warning event on a pod deleted because its reserved ports went to another pod.
pub const REASON_RESERVATION_LOST: &str = "PortReservationLost";
/// How long a new binding waits for its target before it is reported NotReady (binding status, pod condition).
const NOT_READY_GRACE: Duration = Duration::from_secs(2);
/// Every binding is looked at this often even without an event.
const RESYNC: Duration = Duration::from_secs(60);
/// Pods/bindings reconciled at the same time. Each key touches only its own PortBinding, pod and pool
/// listeners, so keys are independent; the driver never runs one key twice at once.
const CONCURRENCY: usize = 16;

/// A pod and its PortBinding share a namespace and name.
type Key = ObjectKey;

struct Reconciler {
    ctx: Context,
    pods: Store<Pod>,
    bindings: Store<PortBinding>,
    listeners: Store<Listener>,
    /// When this leader created a binding, for the bind latency.
    created: std::sync::Mutex<HashMap<Key, Instant>>,
}

/// Watches pods, PortBindings and pool Listener CRs and reconciles bindings until `stop` turns true.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    let (tx, rx) = mpsc::unbounded_channel::<Key>();
    // Subscribed before the first (full) pass, so no change of an item's `external` is missed.
    let pool_changes = ctx.pools.subscribe_external_changes();
    let mut watches = JoinSet::new();
    let (pods, bindings, listeners) = watch(&ctx, &tx, &mut watches);
    tokio::select! {
        _ = wait_true(&mut stop) => { watches.shutdown().await; return; }
        _ = async { let _ = futures::join!(pods.wait_until_ready(), bindings.wait_until_ready(), listeners.wait_until_ready()); } => {
            tracing::info!("portbinding caches synced")
        }
    }
    let config = DriverConfig {
        name: "portbinding",
        concurrency: CONCURRENCY,
        resync: Some(RESYNC),
        errors: ctx.metrics.reconcile_errors.clone(),
    };
    let reconciler = Arc::new(Reconciler {
        ctx,
        pods,
        bindings,
        listeners,
        created: std::sync::Mutex::default(),
    });
    watches.spawn(forward_pool_changes(reconciler.clone(), pool_changes, tx));
    drive(reconciler, config, rx, stop).await;
    watches.shutdown().await;
}

/// Pods with pool bindings, PortBindings, and pool Listener CRs (mapped to the pod they carry), as keys.
fn watch(
    ctx: &Context,
    tx: &mpsc::UnboundedSender<Key>,
    tasks: &mut JoinSet<()>,
) -> (Store<Pod>, Store<PortBinding>, Store<Listener>) {
    let all = watcher::Config::default;
    let pools = ctx.pools.clone();
    let pods = spawn_reflector(
        tasks,
        Api::all(ctx.client.clone()),
        all(),
        tx,
        move |p: &Pod| {
            // The first sight of a stored pod confirms its reservation, before its reconcile (which may lag in a
            // burst) and before the reservation timeout looks the pod up.
            if p.annotations().contains_key(annotations::RESERVATION)
                && let Some(uid) = p.uid()
            {
                pools.confirm_stored(&uid);
            }
            p.annotations()
                .contains_key(annotations::POOL_BINDINGS)
                .then(|| ObjectKey::of(p))
                .into_iter()
                .collect()
        },
    );
    let bindings = spawn_reflector(
        tasks,
        Api::all(ctx.client.clone()),
        all(),
        tx,
        |b: &PortBinding| vec![ObjectKey::of(b)],
    );
    let owned = all().labels(&format!(
        "{}={}",
        keys::LABEL_OWNER_KIND,
        OWNER_KIND_PORTPOOL
    ));
    let listeners = spawn_reflector(
        tasks,
        Api::all(ctx.client.clone()),
        owned,
        tx,
        |l: &Listener| {
            let labels = l.labels();
            match (
                labels.get(keys::LABEL_SOURCE_NAMESPACE),
                labels.get(keys::LABEL_SOURCE_NAME),
            ) {
                (Some(ns), Some(name)) => vec![ObjectKey::new(ns, name)],
                _ => Vec::new(),
            }
        },
    );
    (pods, bindings, listeners)
}

/// Queues the pods whose bindings annotation names a pool item whose `external` changed (every pod when
/// changes were missed).
async fn forward_pool_changes(
    reconciler: Arc<Reconciler>,
    mut changes: broadcast::Receiver<PoolKey>,
    tx: mpsc::UnboundedSender<Key>,
) {
    loop {
        let keys = match changes.recv().await {
            Ok(pool) => reconciler.keys_using_pool(&pool),
            Err(broadcast::error::RecvError::Lagged(_)) => reconciler.all_keys(),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for key in keys {
            if tx.send(key).is_err() {
                return;
            }
        }
    }
}

impl Reconcile for Reconciler {
    type Key = Key;

    fn all_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .bindings
            .state()
            .iter()
            .map(|b| ObjectKey::of(&**b))
            .collect();
        keys.extend(
            self.pods
                .state()
                .iter()
                .filter(|p| p.annotations().contains_key(annotations::POOL_BINDINGS))
                .map(|p| ObjectKey::of(&**p)),
        );
        keys
    }

    /// One pass for one pod/binding name: create the binding, or take the plan's next step.
    async fn reconcile(&self, key: &Key) -> Result<Action, ReconcileError> {
        let pod = self
            .pods
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        let binding = self
            .bindings
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        if let Some(pod) = pod.as_deref()
            && self.refuse_late_pod(pod).await?
        {
            return Ok(Action::await_change());
        }
        self.confirm_pending(pod.as_deref(), binding.as_deref());
        let pod_items = pod.as_deref().and_then(pod_binding_items);
        let alive = pod.as_deref().is_some_and(is_alive) && pod_items.is_some();
        let Some(binding) = binding else {
            if let (true, Some(pod), Some(items)) = (alive, pod.as_deref(), pod_items)
                && !self.created_here(key)
            {
                // The binding's watch event queues this key again once the store holds it.
                self.create_binding(key, pod, items).await?;
            }
            return Ok(Action::await_change());
        };
        let items = binding.spec.port_binding_list.clone();
        let status = binding.status.clone().unwrap_or_default();
        let targets = match pod.as_deref() {
            Some(pod) if alive => {
                let weight = pod_clb_weight(pod, &mut Vec::new()).unwrap_or(keys::DEFAULT_WEIGHT);
                desired_targets(&items, weight, |i| endpoint(pod, i))
            }
            _ => Vec::new(),
        };
        let observed = Observed {
            phase: Phase::parse(&status.status),
            pod_alive: alive,
            targets_ready: targets_ready(&targets, |ns, n| self.listener_view(ns, n)),
            listeners_cleaned: listeners_cleaned(&bound_listeners(&items), |ns, n| {
                self.listener_view(ns, n)
            }),
            keep: binding
                .annotations()
                .get(annotations::KEEP_DURATION)
                .and_then(|v| parse_keep_duration(v)),
            cleaned_at: parse_time(&status.update_time),
            now: SystemTime::now(),
        };
        let step = next_step(&observed);
        tracing::debug!(?step, "portbinding step");
        let pass = Pass {
            key,
            pod: pod.as_deref(),
            items: &items,
            status: &status,
            targets: &targets,
        };
        self.take(step, &pass).await
    }
}

/// What one pass read, for the step it takes.
struct Pass<'a> {
    key: &'a Key,
    pod: Option<&'a Pod>,
    items: &'a [PortBindingItem],
    status: &'a PortBindingStatus,
    targets: &'a [DesiredTarget],
}

/// A pod still running (not deleting, not finished).
fn is_alive(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Failed" | "Succeeded")
        )
}

impl Reconciler {
    /// Pods whose bindings annotation holds a port of `pool`: their annotation may need an item's new `external`.
    fn keys_using_pool(&self, pool: &PoolKey) -> Vec<Key> {
        self.pods
            .state()
            .iter()
            .filter(|p| pod_uses_pool(p, pool))
            .map(|p| ObjectKey::of(&**p))
            .collect()
    }

    fn listener_view(&self, namespace: &str, name: &str) -> Option<ListenerView> {
        let listener = self
            .listeners
            .get(&ObjectRef::new(name).within(namespace))?;
        Some(ListenerView {
            synced: listener
                .status
                .as_ref()
                .is_some_and(|s| s.synced_for(listener.metadata.generation)),
            backends: listener
                .spec
                .target_group
                .as_ref()
                .map(|tg| tg.backends.clone())
                .unwrap_or_default(),
        })
    }

    /// Carries out one step of the plan; returns when to look again.
    async fn take(&self, step: Step, pass: &Pass<'_>) -> Result<Action, ReconcileError> {
        let Pass {
            key,
            pod,
            items,
            status,
            targets,
        } = *pass;
        match step {
            Step::Bind(phase) => {
                for target in targets {
                    self.ensure_target(target, key).await?;
                }
                if let Some(wait) = self.not_ready_grace_left(key, status, phase) {
                    return Ok(Action::requeue(wait));
                }
                self.write_status(key, items, status, phase, String::new())
                    .await?;
                if let Some(pod) = pod {
                    self.update_pod(pod, phase == Phase::Ready).await?;
                }
                if phase != Phase::Ready {
                    return Ok(Action::requeue(RECHECK));
                }
                if let Some(at) = self.take_created(key) {
                    self.ctx
                        .metrics
                        .bind_latency
                        .observe(at.elapsed().as_secs_f64());
                }
                Ok(Action::await_change())
            }
            Step::Clean(phase) => {
                for (ns, name) in &bound_listeners(items) {
                    self.clear_targets(ns, name).await?;
                }
                let cleaned = phase == Phase::Cleaned;
                let update_time = if cleaned {
                    format_time(SystemTime::now())
                } else {
                    status.update_time.clone()
                };
                self.write_status(key, items, status, phase, update_time)
                    .await?;
                Ok(Action::requeue(if cleaned {
                    Duration::ZERO
                } else {
                    RECHECK
                }))
            }
            Step::Keep { until } => Ok(Action::requeue(
                until
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            )),
            Step::Delete => {
                let api: Api<PortBinding> =
                    Api::namespaced(self.ctx.client.clone(), &key.namespace);
                match api_call(
                    "deleting a portbinding",
                    api.delete(&key.name, &DeleteParams::default()),
                )
                .await
                {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
                self.release(items);
                self.take_created(key);
                tracing::info!("portbinding deleted and ports released");
                Ok(Action::await_change())
            }
        }
    }

    /// How long a binding this leader just created may still go straight to Ready: within
    /// [`NOT_READY_GRACE`] of its creation a NotReady phase is not written (neither the binding's status nor
    /// the pod's condition), which saves two API writes for every binding whose target is in the cloud by then.
    /// The Listener's status change queues the binding again as soon as the target is synced.
    fn not_ready_grace_left(
        &self,
        key: &Key,
        status: &PortBindingStatus,
        phase: Phase,
    ) -> Option<Duration> {
        if phase != Phase::NotReady || !status.status.is_empty() {
            return None;
        }
        let created = *self
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)?;
        NOT_READY_GRACE
            .checked_sub(created.elapsed())
            .filter(|left| !left.is_zero())
    }

    /// Whether this leader created the binding of `key` within [`CREATE_SETTLE`]: a pod event that arrives
    /// before the binding's own watch event must not create it a second time (a wasted write answered 409).
    /// Later a create is tried again, so a binding deleted by hand meanwhile is made anew.
    fn created_here(&self, key: &Key) -> bool {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|at| at.elapsed() < CREATE_SETTLE)
    }

    /// When this leader created the binding of `key`, forgotten once read.
    fn take_created(&self, key: &Key) -> Option<Instant> {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }

    /// Creates the PortBinding of a pod from its bindings annotation (already there: nothing to do).
    async fn create_binding(
        &self,
        key: &Key,
        pod: &Pod,
        items: Vec<PortBindingItem>,
    ) -> Result<(), ReconcileError> {
        let mut annotations_out = std::collections::BTreeMap::new();
        if let Some(keep) = pod.annotations().get(annotations::KEEP_DURATION) {
            annotations_out.insert(annotations::KEEP_DURATION.to_owned(), keep.clone());
        }
        let mut binding = PortBinding::new(
            &key.name,
            PortBindingSpec {
                port_binding_list: items,
            },
        );
        binding.metadata.namespace = Some(key.namespace.clone());
        binding.metadata.annotations = Some(annotations_out);
        binding.metadata.labels = Some(
            [(
                keys::LABEL_PORTBINDING_TYPE.to_owned(),
                keys::PORTBINDING_TYPE_POD.to_owned(),
            )]
            .into(),
        );
        let api: Api<PortBinding> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let created = api_call(
            "creating a portbinding",
            api.create(&PostParams::default(), &binding),
        )
        .await;
        match created {
            Ok(_) => {}
            Err(ReconcileError::Kube(kube::Error::Api(e))) if e.code == 409 => return Ok(()),
            Err(e) => return Err(e),
        }
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), Instant::now());
        tracing::info!("portbinding created");
        Ok(())
    }

    /// Makes `target.backend` the only backend of its listener. The spec change bumps the Listener's generation,
    /// so its `Synced` status counts again only once a pass has synced the new spec (`status.observedGeneration`);
    /// bcs had to mark the listener NotSynced first, one more write per pod.
    async fn ensure_target(&self, target: &DesiredTarget, key: &Key) -> Result<(), ReconcileError> {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let Some(listener) = self
            .listeners
            .get(&ObjectRef::new(&target.listener).within(&target.namespace))
        else {
            return Ok(());
        };
        if listener.labels().get(keys::LABEL_OWNER_NAME) != Some(&target.pool) {
            return Ok(());
        }
        let backends = listener
            .spec
            .target_group
            .as_ref()
            .map(|tg| tg.backends.as_slice())
            .unwrap_or_default();
        let labelled = listener
            .labels()
            .get(keys::LABEL_SOURCE_NAME)
            .map(String::as_str)
            == Some(name)
            && listener
                .labels()
                .get(keys::LABEL_SOURCE_NAMESPACE)
                .map(String::as_str)
                == Some(ns);
        if backends == std::slice::from_ref(&target.backend) && labelled {
            return Ok(());
        }
        let api: Api<Listener> = Api::namespaced(self.ctx.client.clone(), &target.namespace);
        let apply = json!({
            "apiVersion": Listener::api_version(&()),
            "kind": Listener::kind(&()),
            "metadata": {
                "name": target.listener,
                "labels": {
                    keys::LABEL_SOURCE_NAMESPACE: ns,
                    keys::LABEL_SOURCE_NAME: name,
                },
            },
            "spec": {"targetGroup": {
                "protocol": target.protocol,
                "backends": [target.backend],
            }},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api_call(
            "setting a pool listener target",
            api.patch(&target.listener, &params, &Patch::Apply(&apply)),
        )
        .await?;
        tracing::info!(listener = %target.listener, ip = %target.backend.ip, port = target.backend.port, "pool listener target set");
        Ok(())
    }

    /// Drops everything this manager owns on the listener (targets and source labels).
    async fn clear_targets(&self, ns: &str, listener_name: &str) -> Result<(), ReconcileError> {
        let Some(listener) = self
            .listeners
            .get(&ObjectRef::new(listener_name).within(ns))
        else {
            return Ok(());
        };
        let has_targets = listener
            .spec
            .target_group
            .as_ref()
            .is_some_and(|tg| !tg.backends.is_empty());
        let labelled = listener.labels().contains_key(keys::LABEL_SOURCE_NAME);
        if !has_targets && !labelled {
            return Ok(());
        }
        let api: Api<Listener> = Api::namespaced(self.ctx.client.clone(), ns);
        let apply = json!({
            "apiVersion": Listener::api_version(&()),
            "kind": Listener::kind(&()),
            "metadata": {"name": listener_name},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api_call(
            "clearing a pool listener's targets",
            api.patch(listener_name, &params, &Patch::Apply(&apply)),
        )
        .await?;
        tracing::info!(listener = %listener_name, "pool listener targets removed");
        Ok(())
    }

    /// The binding's status for `phase` (every item with the matching item status), written when it changed.
    async fn write_status(
        &self,
        key: &Key,
        items: &[PortBindingItem],
        current: &PortBindingStatus,
        phase: Phase,
        update_time: String,
    ) -> Result<(), ReconcileError> {
        let item_status = match phase {
            Phase::Ready => keys::PORTBINDING_ITEM_STATUS_READY,
            Phase::NotReady => keys::PORTBINDING_ITEM_STATUS_NOT_READY,
            Phase::Cleaning => keys::PORTBINDING_ITEM_STATUS_DELETING,
            Phase::Cleaned => keys::PORTBINDING_ITEM_STATUS_CLEANED,
        };
        let next = PortBindingStatus {
            status: phase.as_str().to_owned(),
            update_time,
            port_binding_type: Some(keys::PORTBINDING_TYPE_POD.to_owned()),
            port_pool_bind_status_list: items
                .iter()
                .map(|i| PortBindingStatusItem {
                    pool_name: i.pool_name.clone(),
                    pool_namespace: i.pool_namespace.clone(),
                    pool_item_name: i.pool_item_name.clone(),
                    start_port: i.start_port,
                    end_port: i.end_port,
                    status: item_status.to_owned(),
                    uptime_check_status: None,
                })
                .collect(),
        };
        if *current == next {
            return Ok(());
        }
        let api: Api<PortBinding> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let patch = json!({ "status": next });
        api_call(
            "writing a portbinding status",
            api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        if current.status != next.status {
            tracing::info!(status = %next.status, "portbinding status");
        }
        Ok(())
    }

    /// The status annotation and, when the pod has the readiness gate, the pod condition.
    async fn update_pod(&self, pod: &Pod, ready: bool) -> Result<(), ReconcileError> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let wanted = if ready {
            keys::PORTPOOL_STATUS_READY
        } else {
            keys::PORTPOOL_STATUS_NOT_READY
        };
        let mut changes = serde_json::Map::new();
        if pod
            .annotations()
            .get(annotations::STATUS)
            .map(String::as_str)
            != Some(wanted)
        {
            changes.insert(annotations::STATUS.to_string(), json!(wanted));
        }
        if let Some(bindings) = self.current_bindings(pod) {
            changes.insert(annotations::POOL_BINDINGS.to_string(), json!(bindings));
            tracing::info!(namespace = %ns, pod = %name, "pool item external changed; pod bindings annotation updated");
        }
        if !changes.is_empty() {
            let patch = json!({"metadata": {"annotations": changes}});
            api_call(
                "annotating a pod",
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await?;
        }
        let gated = pod.spec.as_ref().is_some_and(|s| {
            s.readiness_gates
                .iter()
                .flatten()
                .any(|g| g.condition_type == annotations::READINESS_GATE_CONDITION)
        });
        if !gated {
            return Ok(());
        }
        let status = if ready { "True" } else { "False" };
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == annotations::READINESS_GATE_CONDITION)
            })
            .map(|c| c.status.as_str());
        if current == Some(status) {
            return Ok(());
        }
        let patch =
            json!({"status": {"conditions": [readiness_condition(ready, SystemTime::now())]}});
        api_call(
            "writing a pod readiness condition",
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)),
        )
        .await?;
        Ok(())
    }

    /// The pod's bindings annotation re-rendered when a pool item's `external` changed since admission.
    fn current_bindings(&self, pod: &Pod) -> Option<String> {
        let items = parse_pool_bindings(pod.annotations().get(annotations::POOL_BINDINGS)?).ok()?;
        let updated = with_current_external(&items, |pool, item| {
            self.ctx.pools.item(pool, item).map(|s| s.external)
        })?;
        match annotations::render_pool_bindings(&updated) {
            Ok(rendered) => Some(rendered),
            Err(e) => {
                tracing::warn!(pod = %pod.name_any(), error = %e, "cannot render the bindings annotation");
                None
            }
        }
    }

    /// A pod stored after its reservation was released (see [`crate::pools::reservation`]) gets its ports back
    /// when they are free; when one went to another pod it is deleted, with a Warning event, so that no port is
    /// shared (its workload makes a new pod). True when the pod was deleted.
    async fn refuse_late_pod(&self, pod: &Pod) -> Result<bool, ReconcileError> {
        let Some(uid) = pod.uid() else {
            return Ok(false);
        };
        let lost = match self.ctx.pools.late_pod(&uid) {
            None => return Ok(false),
            Some(LatePod::Retaken) => {
                tracing::info!(pod = %pod.name_any(), "pod stored after its reservation lapsed; its ports were free and are held again");
                return Ok(false);
            }
            Some(LatePod::Conflict(lost)) => lost,
        };
        let (pool, item, protocol, start) = &lost;
        let message = format!(
            "pod deleted: it was stored after its port reservation lapsed, and port {start} ({protocol}) of item \
             \"{item}\" of port pool {pool} went to another pod meanwhile"
        );
        tracing::warn!(pod = %pod.name_any(), %message, "late pod deleted");
        let recorder = kube::runtime::events::Recorder::new(
            self.ctx.client.clone(),
            self.ctx.reporter.clone(),
        );
        events::warn(
            &recorder,
            &pod.object_ref(&()),
            REASON_RESERVATION_LOST,
            "Delete",
            &message,
            &self.ctx.metrics.kube_errors,
        )
        .await;
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &pod.namespace().unwrap_or_default(),
        );
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api_call(
            "deleting a pod whose ports went to another pod",
            api.delete(&pod.name_any(), &params),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The ports a stored pod or PortBinding records are no longer pending (see [`crate::pools::leak`]).
    fn confirm_pending(&self, pod: Option<&Pod>, binding: Option<&PortBinding>) {
        let held: BTreeSet<HeldPort> = claims_of(binding, pod)
            .into_iter()
            .map(|c| c.port)
            .collect();
        self.ctx.pools.confirm_pending(&held);
    }

    fn release(&self, items: &[PortBindingItem]) {
        self.ctx.pools.with_allocator(|allocator| {
            for item in items {
                let protocol = match item.protocol.as_str() {
                    "TCP" => RequestProtocol::Tcp,
                    "UDP" => RequestProtocol::Udp,
                    _ => continue,
                };
                let Ok(port) = u16::try_from(item.start_port) else {
                    continue;
                };
                let pool = PoolKey::new(item.pool_namespace.clone(), item.pool_name.clone());
                if let Err(e) = allocator.release(&pool, &item.pool_item_name, protocol, port) {
                    tracing::warn!(pool = %pool, item = %item.pool_item_name, port, error = %e, "releasing port failed");
                }
            }
        });
    }
}

/// The pod's bindings annotation as PortBinding items (same JSON shape); `None` when absent or unreadable.
fn pod_binding_items(pod: &Pod) -> Option<Vec<PortBindingItem>> {
    let raw = pod.annotations().get(annotations::POOL_BINDINGS)?;
    let parsed = match parse_pool_bindings(raw) {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(pod = %pod.name_any(), error = %e, "unreadable bindings annotation");
            return None;
        }
    };
    let value = serde_json::to_value(parsed).ok()?;
    match serde_json::from_value(value) {
        Ok(items) => Some(items),
        Err(e) => {
            tracing::warn!(pod = %pod.name_any(), error = %e, "bindings annotation does not map to PortBinding items");
            None
        }
    }
}

/// The pod condition of the readiness gate; reason and message as bcs writes them (`Ready` / `NotReady`).
fn readiness_condition(ready: bool, now: SystemTime) -> serde_json::Value {
    let (status, reason, message) = if ready {
        ("True", "Ready", keys::CONDITION_MESSAGE_BOUND)
    } else {
        ("False", "NotReady", keys::CONDITION_MESSAGE_NOT_BOUND)
    };
    json!({
        "type": annotations::READINESS_GATE_CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now),
    })
}

/// True when the pod's bindings annotation (readable) has an entry of `pool`.
fn pod_uses_pool(pod: &Pod, pool: &PoolKey) -> bool {
    pod.annotations()
        .get(annotations::POOL_BINDINGS)
        .and_then(|raw| parse_pool_bindings(raw).ok())
        .is_some_and(|items| {
            items
                .iter()
                .any(|i| i.pool_name == pool.name && i.pool_namespace == pool.namespace)
        })
}

/// Pod IP and container port, or host IP and the container port's hostPort when the item says `hostPort`.
fn endpoint(pod: &Pod, item: &PortBindingItem) -> Option<(String, i32)> {
    let status = pod.status.as_ref()?;
    if item.host_port == Some(true) {
        let host_ip = status.host_ip.clone().filter(|ip| !ip.is_empty())?;
        let host_port = pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.container_port == item.rs_start_port)
            .and_then(|p| p.host_port)?;
        return Some((host_ip, host_port));
    }
    let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    Some((ip, item.rs_start_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with_bindings(raw: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(
            [(annotations::POOL_BINDINGS.to_owned(), raw.to_owned())]
                .into_iter()
                .collect(),
        );
        pod
    }

    #[test]
    fn the_readiness_condition_carries_reason_and_message() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ready = readiness_condition(true, now);
        assert_eq!(ready["type"], annotations::READINESS_GATE_CONDITION);
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "Ready");
        assert_eq!(ready["message"], "ports ares binded for the pod");
        assert_eq!(ready["lastTransitionTime"], format_time(now));
        let not_ready = readiness_condition(false, now);
        assert_eq!(not_ready["status"], "False");
        assert_eq!(not_ready["reason"], "NotReady");
        assert_eq!(not_ready["message"], "port are not bound to the pod");
    }

    #[test]
    fn a_pod_uses_the_pools_its_bindings_annotation_names() {
        let raw = r#"[{"poolName":"p1","poolNamespace":"game","loadBalancerIDs":["lb-1"],"poolItemName":"item1","protocol":"TCP","startPort":31000,"endPort":0,"rsStartPort":80},
                      {"poolName":"p2","poolNamespace":"pools","loadBalancerIDs":["lb-2"],"poolItemName":"item1","protocol":"UDP","startPort":32000,"endPort":0,"rsStartPort":80}]"#;
        let pod = pod_with_bindings(raw);
        assert!(pod_uses_pool(&pod, &PoolKey::new("game", "p1")));
        assert!(pod_uses_pool(&pod, &PoolKey::new("pools", "p2")));
        assert!(
            !pod_uses_pool(&pod, &PoolKey::new("pools", "p1")),
            "same name, other namespace"
        );
        assert!(!pod_uses_pool(&pod, &PoolKey::new("game", "p3")));
        assert!(!pod_uses_pool(
            &pod_with_bindings("not json"),
            &PoolKey::new("game", "p1")
        ));
        assert!(!pod_uses_pool(&Pod::default(), &PoolKey::new("game", "p1")));
    }
}
