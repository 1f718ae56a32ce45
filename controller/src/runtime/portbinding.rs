//! The PortBinding controller (reference §6.4): turns a pod's `poolbindings` annotation into a PortBinding, puts
//! the pod on the pool Listener CRs it was given (server-side apply owning only `spec.targetGroup`), reports
//! Ready/NotReady on the binding, the pod annotation and the pod readiness condition (both directions, unlike
//! bcs' Q7), and once the pod is gone empties the listeners, keeps the binding for `keepduration` and finally
//! deletes it and releases its ports. Decisions come from the pure [`super::portbinding_plan`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::RuntimeError;
use super::listener::wait_true;
use super::pools::PoolState;
use super::portbinding_plan::{
    DesiredTarget, ListenerView, Observed, Phase, Step, bound_listeners, desired_targets,
    format_time, listeners_cleaned, next_step, parse_keep_duration, parse_time, targets_ready,
    with_current_external,
};
use super::portleak::claims_of;
use super::portpool_plan::{HeldPort, OWNER_KIND_PORTPOOL};
use super::watchers::{sleep_until, spawn_reflector};
use crate::allocator::{PoolKey, RequestProtocol};
use crate::annotations::{self, parse_pool_bindings};
use crate::api::{
    Listener, PortBinding, PortBindingItem, PortBindingSpec, PortBindingStatus,
    PortBindingStatusItem, keys,
};

/// Field manager owning `spec.targetGroup` (and the source labels) of pool Listener CRs.
pub const FIELD_MANAGER: &str = "clb-controller-portbinding";
/// Recheck delay while a binding is not Ready or is cleaning (bcs: 3 s).
const RECHECK: Duration = Duration::from_secs(2);
/// Every binding is looked at this often even without an event.
const RESYNC: Duration = Duration::from_secs(60);
const BACKOFF: Duration = Duration::from_secs(5);

/// Metrics of the PortBinding controller.
#[derive(Clone)]
pub struct PortBindingMetrics {
    /// Seconds from creating a PortBinding to its first Ready.
    pub bind_latency: Histogram,
}

impl Default for PortBindingMetrics {
    fn default() -> Self {
        PortBindingMetrics {
            bind_latency: Histogram::new(exponential_buckets(0.1, 2.0, 12)),
        }
    }
}

impl PortBindingMetrics {
    /// Registers under the `clb_controller_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry
            .sub_registry_with_prefix("clb_controller")
            .register(
                "portpool_bind_latency_seconds",
                "Seconds from PortBinding creation to Ready",
                self.bind_latency.clone(),
            );
    }
}

/// What the PortBinding controller needs from the runtime.
#[derive(Clone)]
pub struct PortBindingContext {
    pub client: kube::Client,
    pub pool_state: Arc<PoolState>,
    pub metrics: PortBindingMetrics,
}

type Key = (String, String);

struct Reconciler {
    ctx: PortBindingContext,
    pods: Store<Pod>,
    bindings: Store<PortBinding>,
    listeners: Store<Listener>,
    /// When this leader created a binding, for the bind latency.
    created: std::sync::Mutex<HashMap<Key, Instant>>,
}

/// Pods/bindings reconciled at the same time. Each key touches only its own PortBinding, pod and pool
/// listeners, so keys are independent; one key is never reconciled twice at once.
const CONCURRENCY: usize = 16;

/// Watches pods, PortBindings and pool Listener CRs and reconciles bindings until `stop` turns true.
pub async fn run_while_leader(ctx: PortBindingContext, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Key>();
    // Subscribed before the first (full) pass, so no change of an item's `external` is missed.
    let mut pool_changes = ctx.pool_state.subscribe_external_changes();
    let mut pool_changes_open = true;
    let mut tasks = JoinSet::new();
    let pods = spawn_reflector(
        &mut tasks,
        Api::all(ctx.client.clone()),
        watcher::Config::default(),
        &tx,
        |p: &Pod| {
            p.annotations()
                .contains_key(annotations::POOL_BINDINGS)
                .then(|| key_of(p))
                .into_iter()
                .collect()
        },
    );
    let bindings = spawn_reflector(
        &mut tasks,
        Api::all(ctx.client.clone()),
        watcher::Config::default(),
        &tx,
        |b: &PortBinding| vec![key_of(b)],
    );
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        keys::LABEL_OWNER_KIND,
        OWNER_KIND_PORTPOOL
    ));
    let listeners = spawn_reflector(
        &mut tasks,
        Api::all(ctx.client.clone()),
        owned,
        &tx,
        |l: &Listener| {
            let labels = l.labels();
            match (
                labels.get(keys::LABEL_SOURCE_NAMESPACE),
                labels.get(keys::LABEL_SOURCE_NAME),
            ) {
                (Some(ns), Some(name)) => vec![(ns.clone(), name.clone())],
                _ => Vec::new(),
            }
        },
    );
    tokio::select! {
        _ = wait_true(&mut stop) => { tasks.shutdown().await; return; }
        _ = async { let _ = futures::join!(pods.wait_until_ready(), bindings.wait_until_ready(), listeners.wait_until_ready()); } => {
            tracing::info!("portbinding caches synced")
        }
    }
    let reconciler = Arc::new(Reconciler {
        ctx,
        pods,
        bindings,
        listeners,
        created: std::sync::Mutex::default(),
    });
    let mut due: HashMap<Key, Instant> = HashMap::new();
    let mut running: JoinSet<(Key, Result<Option<Duration>, RuntimeError>)> = JoinSet::new();
    let mut in_flight: std::collections::HashSet<Key> = std::collections::HashSet::new();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        // Keys already running wait for their run to end; with every slot busy nothing new starts.
        let next = if running.len() >= CONCURRENCY {
            None
        } else {
            due.iter()
                .filter(|(k, _)| !in_flight.contains(*k))
                .map(|(_, at)| *at)
                .min()
        };
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((key, outcome)) = done else { continue };
                in_flight.remove(&key);
                match outcome {
                    Ok(Some(after)) => {
                        let at = Instant::now() + after;
                        let slot = due.entry(key).or_insert(at);
                        *slot = (*slot).min(at);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(namespace = %key.0, name = %key.1, error = %e, retry_in = ?BACKOFF, "portbinding reconcile failed");
                        due.insert(key, Instant::now() + BACKOFF);
                    }
                }
            }
            Some(key) = rx.recv() => { due.insert(key, Instant::now()); }
            change = pool_changes.recv(), if pool_changes_open => {
                let keys = match change {
                    Ok(pool) => reconciler.keys_using_pool(&pool),
                    Err(broadcast::error::RecvError::Lagged(_)) => reconciler.all_keys(),
                    Err(broadcast::error::RecvError::Closed) => {
                        pool_changes_open = false;
                        Vec::new()
                    }
                };
                for key in keys {
                    due.entry(key).or_insert_with(Instant::now);
                }
            }
            _ = resync.tick() => {
                for key in reconciler.all_keys() {
                    due.entry(key).or_insert_with(Instant::now);
                }
            }
            _ = sleep_until(next) => {
                let now = Instant::now();
                let ready: Vec<Key> = due
                    .iter()
                    .filter(|(k, at)| **at <= now && !in_flight.contains(*k))
                    .map(|(k, _)| k.clone())
                    .take(CONCURRENCY.saturating_sub(running.len()))
                    .collect();
                for key in ready {
                    due.remove(&key);
                    in_flight.insert(key.clone());
                    let reconciler = reconciler.clone();
                    running.spawn(async move {
                        let outcome = reconciler.reconcile(&key).await;
                        (key, outcome)
                    });
                }
            }
        }
    }
    running.shutdown().await;
    tasks.shutdown().await;
}

impl Reconciler {
    fn all_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.bindings.state().iter().map(|b| key_of(&**b)).collect();
        keys.extend(
            self.pods
                .state()
                .iter()
                .filter(|p| p.annotations().contains_key(annotations::POOL_BINDINGS))
                .map(|p| key_of(&**p)),
        );
        keys
    }

    /// Pods whose bindings annotation holds a port of `pool`: their annotation may need an item's new `external`.
    fn keys_using_pool(&self, pool: &PoolKey) -> Vec<Key> {
        self.pods
            .state()
            .iter()
            .filter(|p| pod_uses_pool(p, pool))
            .map(|p| key_of(&**p))
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

    /// One pass for one pod/binding name; returns when to look again.
    async fn reconcile(&self, key: &Key) -> Result<Option<Duration>, RuntimeError> {
        let (ns, name) = key;
        let pod = self.pods.get(&ObjectRef::new(name).within(ns));
        let pod_items = pod.as_deref().and_then(pod_binding_items);
        let alive = pod.as_deref().is_some_and(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed" | "Succeeded")
                )
        }) && pod_items.is_some();
        let binding = self.bindings.get(&ObjectRef::new(name).within(ns));
        self.confirm_pending(pod.as_deref(), binding.as_deref());
        let Some(binding) = binding else {
            if let (true, Some(pod), Some(items)) = (alive, pod.as_deref(), pod_items) {
                self.create_binding(ns, name, pod, items).await?;
                return Ok(Some(Duration::ZERO));
            }
            return Ok(None);
        };
        let items = binding.spec.port_binding_list.clone();
        let status = binding.status.clone().unwrap_or_default();
        let targets = match pod.as_deref() {
            Some(pod) if alive => desired_targets(&items, |i| endpoint(pod, i)),
            _ => Vec::new(),
        };
        let listeners = bound_listeners(&items);
        let observed = Observed {
            phase: Phase::parse(&status.status),
            pod_alive: alive,
            targets_ready: targets_ready(&targets, |ns, n| self.listener_view(ns, n)),
            listeners_cleaned: listeners_cleaned(&listeners, |ns, n| self.listener_view(ns, n)),
            keep: binding
                .annotations()
                .get(annotations::KEEP_DURATION)
                .and_then(|v| parse_keep_duration(v)),
            cleaned_at: parse_time(&status.update_time),
            now: SystemTime::now(),
        };
        let step = next_step(&observed);
        tracing::debug!(namespace = %ns, name = %name, ?step, "portbinding step");
        match step {
            Step::Bind(phase) => {
                for target in &targets {
                    self.ensure_target(target, ns, name).await?;
                }
                self.write_status(ns, name, &items, &status, phase, String::new())
                    .await?;
                if let Some(pod) = pod.as_deref() {
                    self.update_pod(pod, phase == Phase::Ready).await?;
                }
                if phase == Phase::Ready {
                    let created = self
                        .created
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(key);
                    if let Some(at) = created {
                        self.ctx
                            .metrics
                            .bind_latency
                            .observe(at.elapsed().as_secs_f64());
                    }
                    Ok(None)
                } else {
                    Ok(Some(RECHECK))
                }
            }
            Step::Clean(phase) => {
                for (lns, lname) in &listeners {
                    self.clear_targets(lns, lname).await?;
                }
                let update_time = if phase == Phase::Cleaned {
                    format_time(SystemTime::now())
                } else {
                    status.update_time.clone()
                };
                self.write_status(ns, name, &items, &status, phase, update_time)
                    .await?;
                Ok(Some(if phase == Phase::Cleaned {
                    Duration::ZERO
                } else {
                    RECHECK
                }))
            }
            Step::Keep { until } => Ok(Some(
                until
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            )),
            Step::Delete => {
                let api: Api<PortBinding> = Api::namespaced(self.ctx.client.clone(), ns);
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                self.release(&items);
                self.created
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(key);
                tracing::info!(namespace = %ns, name = %name, "portbinding deleted and ports released");
                Ok(None)
            }
        }
    }

    async fn create_binding(
        &self,
        ns: &str,
        name: &str,
        pod: &Pod,
        items: Vec<PortBindingItem>,
    ) -> Result<(), RuntimeError> {
        let mut annotations_out = std::collections::BTreeMap::new();
        if let Some(keep) = pod.annotations().get(annotations::KEEP_DURATION) {
            annotations_out.insert(annotations::KEEP_DURATION.to_owned(), keep.clone());
        }
        let mut binding = PortBinding::new(
            name,
            PortBindingSpec {
                port_binding_list: items,
            },
        );
        binding.metadata.namespace = Some(ns.to_owned());
        binding.metadata.annotations = Some(annotations_out);
        binding.metadata.labels = Some(
            [(
                keys::LABEL_PORTBINDING_TYPE.to_owned(),
                keys::PORTBINDING_TYPE_POD.to_owned(),
            )]
            .into(),
        );
        let api: Api<PortBinding> = Api::namespaced(self.ctx.client.clone(), ns);
        match api.create(&PostParams::default(), &binding).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((ns.to_owned(), name.to_owned()), Instant::now());
        tracing::info!(namespace = %ns, name = %name, "portbinding created");
        Ok(())
    }

    /// Makes `target.backend` the only backend of its listener. The spec change bumps the Listener's generation,
    /// so its `Synced` status counts again only once a pass has synced the new spec (`status.observedGeneration`);
    /// bcs had to mark the listener NotSynced first, one more write per pod.
    async fn ensure_target(
        &self,
        target: &DesiredTarget,
        ns: &str,
        name: &str,
    ) -> Result<(), RuntimeError> {
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
        api.patch(
            &target.listener,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply),
        )
        .await?;
        tracing::info!(listener = %target.listener, ip = %target.backend.ip, port = target.backend.port, "pool listener target set");
        Ok(())
    }

    /// Drops everything this manager owns on the listener (targets and source labels).
    async fn clear_targets(&self, ns: &str, listener_name: &str) -> Result<(), RuntimeError> {
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
        api.patch(
            listener_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply),
        )
        .await?;
        tracing::info!(listener = %listener_name, "pool listener targets removed");
        Ok(())
    }

    async fn write_status(
        &self,
        ns: &str,
        name: &str,
        items: &[PortBindingItem],
        current: &PortBindingStatus,
        phase: Phase,
        update_time: String,
    ) -> Result<(), RuntimeError> {
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
        let api: Api<PortBinding> = Api::namespaced(self.ctx.client.clone(), ns);
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": next })),
        )
        .await?;
        if current.status != next.status {
            tracing::info!(namespace = %ns, name = %name, status = %next.status, "portbinding status");
        }
        Ok(())
    }

    /// The status annotation and, when the pod has the readiness gate, the pod condition.
    async fn update_pod(&self, pod: &Pod, ready: bool) -> Result<(), RuntimeError> {
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
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
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
        api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
        Ok(())
    }

    /// The pod's bindings annotation re-rendered when a pool item's `external` changed since admission.
    fn current_bindings(&self, pod: &Pod) -> Option<String> {
        let items = parse_pool_bindings(pod.annotations().get(annotations::POOL_BINDINGS)?).ok()?;
        let updated = with_current_external(&items, |pool, item| {
            self.ctx.pool_state.item(pool, item).map(|s| s.external)
        })?;
        match annotations::render_pool_bindings(&updated) {
            Ok(rendered) => Some(rendered),
            Err(e) => {
                tracing::warn!(pod = %pod.name_any(), error = %e, "cannot render the bindings annotation");
                None
            }
        }
    }

    /// The ports a stored pod or PortBinding records are no longer pending (leak checker, [`super::portleak`]).
    fn confirm_pending(&self, pod: Option<&Pod>, binding: Option<&PortBinding>) {
        let held: BTreeSet<HeldPort> = claims_of(binding, pod)
            .into_iter()
            .map(|c| c.port)
            .collect();
        self.ctx.pool_state.confirm_pending(&held);
    }

    fn release(&self, items: &[PortBindingItem]) {
        self.ctx.pool_state.with_allocator(|allocator| {
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

fn key_of<K: Resource>(obj: &K) -> Key {
    (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    )
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
