//! The Ingress reconciler: turns each `networkextension.bkbcs.tencent.com/v1` Ingress into the Listener CRs it
//! generates (reference §3.1, §3.2, §3.7). The Listener reconciler ([`super::listener`]) then syncs those to CLB.
//!
//! Reflector stores hold Ingresses, the Listener CRs they own, Services, EndpointSlices, Pods, Nodes,
//! StatefulSets and (when the CRD exists) GameStatefulSets. A change of any of them is mapped through an
//! [`IngressIndex`] to the Ingresses that read it and queued; a periodic resync queues every Ingress. One
//! Ingress is reconciled at a time: finalizer, CLB resolution (cached), `ingress::generate`, Listener CRs made
//! to match (server-side apply / delete), `status.loadbalancers`, and a Warning event per generation problem.
//! Failures are retried with exponential backoff. Runs only while this replica leads.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::queue::WorkQueue;
use super::watchers::{forward, sleep_until, spawn_reflector};

use super::RuntimeError;
use super::ingress_index::{
    IngressIndex, IngressKey, diff_listeners, is_owned_by, owner_ingress, refs_of,
};
use super::listener::wait_true;
use super::metrics_server::RuntimeMetrics;
use crate::api::{Ingress, Listener, keys};
use crate::cloud::{ClbClient, CloudError};
use crate::ingress::{
    GameStatefulSet, LbKey, LbSelection, OWNER_KIND_INGRESS, ResolvedLb, Settings, World, generate,
    parse_lb_annotations,
};

/// Limit of every Kubernetes API call the reconciler makes.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a resolved load balancer is trusted before DescribeLoadBalancers is asked again.
const LB_CACHE_TTL: Duration = Duration::from_secs(60);
/// Requeue delay while Listener CRs of a deleting Ingress (or replaced CRs) are still going away.
const WAIT_FOR_LISTENERS: Duration = Duration::from_secs(2);
/// How often the GameStatefulSet CRD is looked for while absent.
const GSS_DISCOVERY_PERIOD: Duration = Duration::from_secs(60);
/// Field manager of the Listener CRs this reconciler applies.
const FIELD_MANAGER: &str = "clb-controller-ingress";
/// bcs' event reason for a rule that could not be bound (reference §3.7).
const REASON_BIND_FAILED: &str = "IngressBindFailed";

/// What the Ingress reconciler needs from the runtime.
#[derive(Clone)]
pub struct IngressContext {
    pub client: kube::Client,
    pub cloud: ClbClient,
    pub settings: Settings,
    /// Watch Ingresses (and their Listener CRs) in this namespace only; referenced objects are watched everywhere.
    pub watch_namespace: Option<String>,
    pub reporter: Reporter,
    pub metrics: RuntimeMetrics,
    /// Every Ingress is reconciled this often even without a change (0 = never).
    pub resync_interval: Duration,
}

impl IngressContext {
    /// Shares the Listener reconciler's client, CLB client, namespace scope, reporter and metrics; the resync
    /// interval is the sync workers' one. `TCP_UDP_PORT_REUSE=true` in the environment (bcs' variable) names L4
    /// listeners with their protocol.
    pub fn from_listener_context(ctx: &super::listener::ReconcilerContext) -> Self {
        IngressContext {
            client: ctx.client.clone(),
            cloud: ctx.cloud.clone(),
            settings: Settings {
                default_region: ctx.cloud.config().default_region.clone(),
                tcp_udp_port_reuse: std::env::var("TCP_UDP_PORT_REUSE")
                    .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")),
            },
            watch_namespace: ctx.watch_namespace.clone(),
            reporter: ctx.reporter.clone(),
            metrics: ctx.metrics.clone(),
            resync_interval: ctx.worker.resync_interval,
        }
    }
}

/// The reflector stores the World is built from.
#[derive(Clone)]
struct Stores {
    ingresses: Store<Ingress>,
    listeners: Store<Listener>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    stateful_sets: Store<StatefulSet>,
    game_stateful_sets: Arc<Mutex<Option<Store<DynamicObject>>>>,
}

/// Watches and reconciles Ingresses until `stop` turns true.
pub async fn run_while_leader(ctx: IngressContext, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<IngressKey>();
    let index = Arc::new(Mutex::new(IngressIndex::default()));
    let mut tasks = JoinSet::new();
    let client = ctx.client.clone();
    let scoped = |c: &kube::Client| -> (Api<Ingress>, Api<Listener>) {
        match &ctx.watch_namespace {
            Some(ns) => (
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
            ),
            None => (Api::all(c.clone()), Api::all(c.clone())),
        }
    };
    let (ingress_api, listener_api) = scoped(&client);

    let ingresses = spawn_reflector(&mut tasks, ingress_api, watcher::Config::default(), &tx, {
        move |i: &Ingress| vec![IngressKey::of(i)]
    });
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        keys::LABEL_OWNER_KIND,
        OWNER_KIND_INGRESS
    ));
    let listeners = spawn_reflector(&mut tasks, listener_api, owned, &tx, |l: &Listener| {
        owner_ingress(l).into_iter().collect()
    });
    let services = spawn_reflector(
        &mut tasks,
        Api::all(client.clone()),
        watcher::Config::default(),
        &tx,
        {
            let index = index.clone();
            move |s: &Service| {
                lock(&index).for_service(
                    s.metadata.namespace.as_deref().unwrap_or("default"),
                    &s.name_any(),
                )
            }
        },
    );
    let endpoint_slices = spawn_reflector(
        &mut tasks,
        Api::all(client.clone()),
        watcher::Config::default(),
        &tx,
        {
            let index = index.clone();
            move |e: &EndpointSlice| lock(&index).for_endpoint_slice(e)
        },
    );
    let pods = spawn_reflector(
        &mut tasks,
        Api::all(client.clone()),
        watcher::Config::default(),
        &tx,
        {
            let index = index.clone();
            let services = services.clone();
            move |p: &Pod| {
                let all = services.state();
                lock(&index).for_pod(p, all.iter().map(|s| s.as_ref()))
            }
        },
    );
    let nodes = spawn_reflector(
        &mut tasks,
        Api::all(client.clone()),
        watcher::Config::default(),
        &tx,
        {
            let index = index.clone();
            // Node status is rewritten often; only an address change matters to backends.
            let mut seen: HashMap<String, Vec<String>> = HashMap::new();
            move |n: &Node| {
                let addresses = node_addresses(n);
                if seen.insert(n.name_any(), addresses.clone()) == Some(addresses) {
                    return Vec::new();
                }
                lock(&index).using_nodes()
            }
        },
    );
    let stateful_sets = spawn_reflector(
        &mut tasks,
        Api::all(client.clone()),
        watcher::Config::default(),
        &tx,
        {
            let index = index.clone();
            move |s: &StatefulSet| {
                lock(&index).for_workload(
                    "statefulset",
                    s.metadata.namespace.as_deref().unwrap_or("default"),
                    &s.name_any(),
                )
            }
        },
    );
    let game_stateful_sets = Arc::new(Mutex::new(None));
    tasks.spawn(watch_game_stateful_sets(
        client.clone(),
        game_stateful_sets.clone(),
        index.clone(),
        tx.clone(),
    ));
    let stores = Stores {
        ingresses,
        listeners,
        services,
        endpoint_slices,
        pods,
        nodes,
        stateful_sets,
        game_stateful_sets,
    };

    // Generating from half-filled caches would delete listeners of pods not yet seen.
    let ready = async {
        let s = &stores;
        let _ = futures::join!(
            s.ingresses.wait_until_ready(),
            s.listeners.wait_until_ready(),
            s.services.wait_until_ready(),
            s.endpoint_slices.wait_until_ready(),
            s.pods.wait_until_ready(),
            s.nodes.wait_until_ready(),
            s.stateful_sets.wait_until_ready(),
        );
    };
    tokio::select! {
        _ = wait_true(&mut stop) => { tasks.shutdown().await; return; }
        _ = ready => tracing::info!("ingress caches synced"),
    }

    let mut reconciler = IngressReconciler {
        recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
        ctx,
        stores,
        index,
        lb_cache: LbCache::default(),
        reported_problems: HashMap::new(),
    };
    let mut queue = WorkQueue::default();
    for ingress in reconciler.stores.ingresses.state() {
        queue.schedule(IngressKey::of(&ingress), Instant::now());
    }
    let resync_every = if reconciler.ctx.resync_interval.is_zero() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        reconciler.ctx.resync_interval
    };
    let mut resync = tokio::time::interval_at(Instant::now() + resync_every, resync_every);
    loop {
        let next = queue.next_due();
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            Some(key) = rx.recv() => queue.schedule(key, Instant::now()),
            _ = resync.tick() => {
                for ingress in reconciler.stores.ingresses.state() {
                    queue.schedule(IngressKey::of(&ingress), Instant::now());
                }
            }
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
                        tracing::warn!(ingress = %key, error = %e, retry_in = ?after, "ingress reconcile failed");
                        queue.schedule(key, Instant::now() + after);
                    }
                }
            }
        }
    }
    tasks.shutdown().await;
    tracing::info!("ingress reconciler stopped");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn node_addresses(n: &Node) -> Vec<String> {
    n.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|a| {
            a.iter()
                .map(|a| format!("{}={}", a.type_, a.address))
                .collect()
        })
        .unwrap_or_default()
}

/// Watches `tkex.tencent.com/v1alpha1` GameStatefulSets once their CRD is served; looks again periodically while
/// it is absent (the controller works without it).
async fn watch_game_stateful_sets(
    client: kube::Client,
    slot: Arc<Mutex<Option<Store<DynamicObject>>>>,
    index: Arc<Mutex<IngressIndex>>,
    tx: mpsc::UnboundedSender<IngressKey>,
) {
    let gvk = GroupVersionKind::gvk("tkex.tencent.com", "v1alpha1", "GameStatefulSet");
    let resource = loop {
        match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((resource, _)) => break resource,
            Err(e) => {
                tracing::debug!(error = %e, "GameStatefulSet CRD not served; port mappings of GameStatefulSets stay empty");
                tokio::time::sleep(GSS_DISCOVERY_PERIOD).await;
            }
        }
    };
    tracing::info!("watching GameStatefulSets");
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let writer = reflector::store::Writer::new(resource.clone());
    *lock(&slot) = Some(writer.as_reader());
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default()).default_backoff(),
    )
    .touched_objects();
    forward(stream, tx, move |g: &DynamicObject| {
        lock(&index).for_workload(
            "gamestatefulset",
            g.metadata.namespace.as_deref().unwrap_or("default"),
            &g.name_any(),
        )
    })
    .await;
}

fn game_stateful_set_of(obj: &DynamicObject) -> GameStatefulSet {
    GameStatefulSet {
        namespace: obj
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: obj.name_any(),
        replicas: obj
            .data
            .pointer("/spec/replicas")
            .and_then(serde_json::Value::as_i64)
            .and_then(|r| i32::try_from(r).ok())
            .unwrap_or(1),
    }
}

/// Resolved load balancers by id and by name, trusted for [`LB_CACHE_TTL`].
#[derive(Default)]
pub(super) struct LbCache {
    by_id: HashMap<LbKey, (Instant, ResolvedLb)>,
    by_name: HashMap<LbKey, (Instant, ResolvedLb)>,
}

impl LbCache {
    pub(super) async fn resolve(
        &mut self,
        cloud: &ClbClient,
        selection: &LbSelection,
    ) -> Result<Vec<ResolvedLb>, ResolveError> {
        let now = Instant::now();
        let fresh = |e: &(Instant, ResolvedLb)| now.duration_since(e.0) < LB_CACHE_TTL;
        match selection {
            LbSelection::Ids(keys) => {
                let missing: Vec<&LbKey> = keys
                    .iter()
                    .filter(|k| !self.by_id.get(*k).is_some_and(fresh))
                    .collect();
                let regions: BTreeSet<&str> = missing.iter().map(|k| k.region.as_str()).collect();
                for region in regions {
                    let ids: Vec<String> = missing
                        .iter()
                        .filter(|k| k.region == region)
                        .map(|k| k.value.clone())
                        .collect();
                    for lb in cloud.describe_load_balancers(region, &ids).await? {
                        let resolved = resolved_of(region, lb);
                        let key = LbKey {
                            region: region.to_owned(),
                            value: resolved.id.clone(),
                        };
                        self.by_id.insert(key, (now, resolved));
                    }
                }
                keys.iter()
                    .map(|k| {
                        self.by_id
                            .get(k)
                            .filter(|e| fresh(e))
                            .map(|e| e.1.clone())
                            .ok_or_else(|| ResolveError::NotFound(k.to_string()))
                    })
                    .collect()
            }
            LbSelection::Names(keys) => {
                let mut out = Vec::new();
                for k in keys {
                    if let Some(e) = self.by_name.get(k).filter(|e| fresh(e)) {
                        out.push(e.1.clone());
                        continue;
                    }
                    let mut found = cloud
                        .describe_load_balancers_by_name(&k.region, &k.value)
                        .await?;
                    found.sort_by(|a, b| a.load_balancer_id.cmp(&b.load_balancer_id));
                    let lb = match found.len() {
                        0 => return Err(ResolveError::NotFound(k.to_string())),
                        1 => found.remove(0),
                        n => return Err(ResolveError::Ambiguous(k.to_string(), n)),
                    };
                    let resolved = resolved_of(&k.region, lb);
                    self.by_name.insert(k.clone(), (now, resolved.clone()));
                    out.push(resolved);
                }
                Ok(out)
            }
        }
    }
}

fn resolved_of(region: &str, lb: clb_api::model::LoadBalancer) -> ResolvedLb {
    ResolvedLb {
        region: region.to_owned(),
        id: lb.load_balancer_id,
        name: lb.load_balancer_name,
        lb_type: Some(lb.load_balancer_type).filter(|t| !t.is_empty()),
        vips: lb.load_balancer_vips,
        domain: lb
            .load_balancer_domain
            .or(lb.domain)
            .filter(|d| !d.is_empty()),
    }
}

/// Why an Ingress's load balancers could not be resolved.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResolveError {
    #[error("load balancer {0} not found")]
    NotFound(String),
    #[error("load balancer name {0} matches {1} load balancers")]
    Ambiguous(String, usize),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

struct IngressReconciler {
    ctx: IngressContext,
    recorder: Recorder,
    stores: Stores,
    index: Arc<Mutex<IngressIndex>>,
    lb_cache: LbCache,
    /// Problems last published as events per Ingress, so a resync does not repeat them.
    reported_problems: HashMap<IngressKey, Vec<String>>,
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

impl IngressReconciler {
    /// Reconciles one Ingress; `Ok(Some(d))` asks to look again after `d`.
    async fn reconcile(&mut self, key: &IngressKey) -> Result<Option<Duration>, RuntimeError> {
        let Some(ingress) = self
            .stores
            .ingresses
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            lock(&self.index).remove(key);
            self.reported_problems.remove(key);
            return Ok(None);
        };
        lock(&self.index).upsert(key.clone(), refs_of(&ingress));
        let listeners: Api<Listener> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let ingresses: Api<Ingress> = Api::namespaced(self.ctx.client.clone(), &key.namespace);

        if ingress.metadata.deletion_timestamp.is_some() {
            return self.finalize(key, &ingress, &listeners, &ingresses).await;
        }
        if !has_finalizer(&ingress) {
            self.add_finalizer(&ingress, &ingresses).await?;
        }

        let selection = match parse_lb_annotations(
            ingress.metadata.annotations.as_ref(),
            &self.ctx.settings.default_region,
        ) {
            Ok(s) => s,
            Err(e) => {
                // Only an edit of the Ingress can fix this: no retry.
                self.report(key, &ingress, vec![e.to_string()]).await;
                return Ok(None);
            }
        };
        let load_balancers = match self.lb_cache.resolve(&self.ctx.cloud, &selection).await {
            Ok(lbs) => lbs,
            Err(e) => {
                self.report(key, &ingress, vec![e.to_string()]).await;
                return Err(RuntimeError::Task(e.to_string()));
            }
        };

        let world = self.world(&ingress, load_balancers);
        let generated = generate(&ingress, &world);
        let existing: Vec<Listener> = self
            .stores
            .listeners
            .state()
            .iter()
            .filter(|l| l.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .filter(|l| is_owned_by(l, &key.name))
            .map(|l| (**l).clone())
            .collect();
        let diff = diff_listeners(&generated.listeners, &existing);
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        for listener in diff.create.iter().chain(&diff.update) {
            let name = listener.name_any();
            timed(
                "applying a listener",
                listeners.patch(&name, &apply, &Patch::Apply(listener)),
            )
            .await?;
            tracing::debug!(ingress = %key, listener = %name, "listener applied");
        }
        for name in &diff.delete {
            match timed(
                "deleting a listener",
                listeners.delete(name, &DeleteParams::default()),
            )
            .await
            {
                Err(e) if !is_not_found(&e) => return Err(e),
                _ => {}
            }
            tracing::debug!(ingress = %key, listener = %name, "stale listener deleted");
        }

        let current = ingress
            .status
            .as_ref()
            .map(|s| s.loadbalancers.clone())
            .unwrap_or_default();
        if current != generated.load_balancers {
            let patch = json!({"status": {"loadbalancers": generated.load_balancers}});
            timed(
                "writing the ingress status",
                ingresses.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await?;
        }
        let problems = generated.problems.iter().map(ToString::to_string).collect();
        self.report(key, &ingress, problems).await;
        Ok((!diff.blocked.is_empty()).then_some(WAIT_FOR_LISTENERS))
    }

    /// Deletion: delete the Ingress's Listener CRs, and remove the finalizer once they are all gone (each
    /// Listener's own finalizer holds it until its cloud listener is deleted).
    async fn finalize(
        &mut self,
        key: &IngressKey,
        ingress: &Ingress,
        listeners: &Api<Listener>,
        ingresses: &Api<Ingress>,
    ) -> Result<Option<Duration>, RuntimeError> {
        if !has_finalizer(ingress) {
            return Ok(None);
        }
        // Read from the API, not the cache: a CR created just now must not be missed.
        let selector = format!(
            "{}={},{}={}",
            keys::LABEL_OWNER_KIND,
            OWNER_KIND_INGRESS,
            keys::LABEL_OWNER_NAME,
            key.name
        );
        let owned = timed(
            "listing listeners",
            listeners.list(&ListParams::default().labels(&selector)),
        )
        .await?;
        if owned.items.is_empty() {
            self.remove_finalizer(ingress, ingresses).await?;
            self.reported_problems.remove(key);
            tracing::info!(ingress = %key, "ingress listeners gone; finalizer removed");
            return Ok(None);
        }
        for l in owned
            .items
            .iter()
            .filter(|l| l.metadata.deletion_timestamp.is_none())
        {
            match timed(
                "deleting a listener",
                listeners.delete(&l.name_any(), &DeleteParams::default()),
            )
            .await
            {
                Err(e) if !is_not_found(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(Some(WAIT_FOR_LISTENERS))
    }

    /// The World of one Ingress: objects of the namespaces it references (generation filters further).
    fn world(&self, ingress: &Ingress, load_balancers: Vec<ResolvedLb>) -> World {
        let refs = refs_of(ingress);
        let mut namespaces: BTreeSet<String> = refs.services.iter().map(|s| s.0.clone()).collect();
        namespaces.extend(refs.workloads.iter().map(|w| w.0.clone()));
        let wanted = |ns: Option<&str>| namespaces.contains(ns.unwrap_or("default"));
        fn pick<K>(store: &Store<K>, keep: impl Fn(&K) -> bool) -> Vec<K>
        where
            K: kube::Resource + Clone + 'static,
            K::DynamicType: Eq + Hash + Clone,
        {
            store
                .state()
                .iter()
                .filter(|o| keep(o))
                .map(|o| (**o).clone())
                .collect()
        }
        let game_stateful_sets = lock(&self.stores.game_stateful_sets)
            .as_ref()
            .map(|s| {
                s.state()
                    .iter()
                    .filter(|g| wanted(g.metadata.namespace.as_deref()))
                    .map(|g| game_stateful_set_of(g))
                    .collect()
            })
            .unwrap_or_default();
        World {
            settings: self.ctx.settings.clone(),
            load_balancers,
            services: pick(&self.stores.services, |s: &Service| {
                wanted(s.metadata.namespace.as_deref())
            }),
            endpoint_slices: pick(&self.stores.endpoint_slices, |s: &EndpointSlice| {
                wanted(s.metadata.namespace.as_deref())
            }),
            pods: pick(&self.stores.pods, |p: &Pod| {
                wanted(p.metadata.namespace.as_deref())
            }),
            nodes: if refs.uses_nodes {
                pick(&self.stores.nodes, |_: &Node| true)
            } else {
                Vec::new()
            },
            stateful_sets: pick(&self.stores.stateful_sets, |s: &StatefulSet| {
                wanted(s.metadata.namespace.as_deref())
            }),
            game_stateful_sets,
        }
    }

    /// Publishes a Warning event per problem, only when the set changed since the last report.
    async fn report(&mut self, key: &IngressKey, ingress: &Ingress, problems: Vec<String>) {
        if self.reported_problems.get(key) == Some(&problems) {
            return;
        }
        for message in &problems {
            tracing::info!(ingress = %key, problem = %message, "ingress bind problem");
            let event = Event {
                type_: EventType::Warning,
                reason: REASON_BIND_FAILED.to_string(),
                note: Some(message.chars().take(1000).collect()),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            let reference = ingress.object_ref(&());
            let publish = self.recorder.publish(&event, &reference);
            match tokio::time::timeout(API_TIMEOUT, publish).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.ctx.metrics.kube_errors.inc();
                    tracing::warn!(error = %e, "publishing an event failed");
                }
                Err(_) => {
                    self.ctx.metrics.kube_errors.inc();
                    tracing::warn!("publishing an event timed out");
                }
            }
        }
        self.reported_problems.insert(key.clone(), problems);
    }

    async fn add_finalizer(
        &self,
        ingress: &Ingress,
        api: &Api<Ingress>,
    ) -> Result<(), RuntimeError> {
        let mut ops = Vec::new();
        if let Some(rv) = &ingress.metadata.resource_version {
            ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
        }
        ops.push(match &ingress.metadata.finalizers {
            Some(list) if !list.is_empty() => {
                json!({"op": "add", "path": "/metadata/finalizers/-", "value": keys::FINALIZER_CONTROLLER})
            }
            _ => json!({"op": "add", "path": "/metadata/finalizers", "value": [keys::FINALIZER_CONTROLLER]}),
        });
        self.json_patch(api, &ingress.name_any(), ops).await
    }

    async fn remove_finalizer(
        &self,
        ingress: &Ingress,
        api: &Api<Ingress>,
    ) -> Result<(), RuntimeError> {
        let Some(position) = ingress
            .metadata
            .finalizers
            .iter()
            .flatten()
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
        self.json_patch(api, &ingress.name_any(), ops).await
    }

    async fn json_patch(
        &self,
        api: &Api<Ingress>,
        name: &str,
        ops: Vec<serde_json::Value>,
    ) -> Result<(), RuntimeError> {
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
            .map_err(|e| RuntimeError::Task(format!("building a JSON patch: {e}")))?;
        timed(
            "patching ingress finalizers",
            api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)),
        )
        .await
        .map(|_| ())
    }
}

/// 404: already gone.
fn is_not_found(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::Kube(kube::Error::Api(s)) if s.code == 404)
}

fn has_finalizer(ingress: &Ingress) -> bool {
    ingress
        .finalizers()
        .iter()
        .any(|f| f == keys::FINALIZER_CONTROLLER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_stateful_set_reads_replicas_from_the_dynamic_object() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "tkex.tencent.com/v1alpha1", "kind": "GameStatefulSet",
            "metadata": {"name": "gs", "namespace": "game"}, "spec": {"replicas": 4},
        }))
        .unwrap();
        assert_eq!(
            game_stateful_set_of(&obj),
            GameStatefulSet {
                namespace: "game".into(),
                name: "gs".into(),
                replicas: 4
            }
        );
    }
}
