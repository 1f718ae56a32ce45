//! The Ingress reconciler: turns each `networkextension.bkbcs.tencent.com/v1` Ingress into the Listener CRs it
//! generates. The Listener reconciler ([`super::listener`]) then syncs those to CLB.
//!
//! Reflector stores hold Ingresses, the Listener CRs they own, Services, EndpointSlices, Pods, Nodes,
//! StatefulSets and (when the CRD exists) GameStatefulSets. A change of any of them is mapped through an
//! [`IngressIndex`] to the Ingresses that read it and queued; a periodic resync queues every Ingress. One
//! Ingress is reconciled at a time: finalizer, CLB resolution (cached), `ingress::generate`, Listener CRs made
//! to match (server-side apply / delete), `status.loadbalancers`, and a Warning event per generation problem.
//! Failures are retried with exponential backoff. Runs only while this replica leads.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub mod index;

use super::Context;
use super::lb_cache::{LbCache, ResolveError};
use super::owned_listeners;
use crate::api::{Ingress, Listener, keys};
use crate::ingress::{
    GameStatefulSet, OWNER_KIND_INGRESS, ResolvedLb, World, generate, parse_lb_annotations,
};
use crate::runtime::watch::{forward, spawn_reflector};
use crate::runtime::{
    Action, DriverConfig, Reconcile, ReconcileError, api_call, drive, events, finalizer, wait_true,
};
use index::{IngressIndex, IngressKey, diff_listeners, is_owned_by, owner_ingress, refs_of};

/// Requeue delay while Listener CRs of a deleting Ingress (or replaced CRs) are still going away.
const WAIT_FOR_LISTENERS: Duration = Duration::from_secs(2);
/// How often the GameStatefulSet CRD is looked for while absent.
const GSS_DISCOVERY_PERIOD: Duration = Duration::from_secs(15);
/// Field manager of the Listener CRs this reconciler applies.
const FIELD_MANAGER: &str = "clb-controller-ingress";
/// bcs' event reason for a rule that could not be bound.
const REASON_BIND_FAILED: &str = "IngressBindFailed";

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

impl Stores {
    /// Starts a reflector per kind; every change is mapped through the index to the Ingresses that read it.
    fn watch(
        ctx: &Context,
        index: &Arc<Mutex<IngressIndex>>,
        tx: &mpsc::UnboundedSender<IngressKey>,
        tasks: &mut JoinSet<()>,
    ) -> Stores {
        let (ingresses, listeners) = watch_owned(ctx, tx, tasks);
        let referenced = Referenced {
            client: ctx.client.clone(),
            index: index.clone(),
            tx: tx.clone(),
        };
        let services = referenced.watch(tasks, |index, s: &Service| {
            index.for_service(namespace_of(s), &s.name_any())
        });
        let endpoint_slices = referenced.watch(tasks, |index, e: &EndpointSlice| {
            index.for_endpoint_slice(e)
        });
        let pods = {
            let services = services.clone();
            referenced.watch(tasks, move |index, p: &Pod| {
                let all = services.state();
                index.for_pod(p, all.iter().map(|s| s.as_ref()))
            })
        };
        // Node status is rewritten often; only an address change matters to backends.
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        let nodes = referenced.watch(tasks, move |index, n: &Node| {
            let addresses = node_addresses(n);
            if seen.insert(n.name_any(), addresses.clone()) == Some(addresses) {
                return Vec::new();
            }
            index.using_nodes()
        });
        let stateful_sets = referenced.watch(tasks, |index, s: &StatefulSet| {
            index.for_workload("statefulset", namespace_of(s), &s.name_any())
        });
        let game_stateful_sets = Arc::new(Mutex::new(None));
        tasks.spawn(watch_game_stateful_sets(
            ctx.client.clone(),
            game_stateful_sets.clone(),
            index.clone(),
            tx.clone(),
        ));
        Stores {
            ingresses,
            listeners,
            services,
            endpoint_slices,
            pods,
            nodes,
            stateful_sets,
            game_stateful_sets,
        }
    }

    /// Resolves once every store has listed its kind. Generating from half-filled caches would delete
    /// listeners of pods not yet seen.
    async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.ingresses.wait_until_ready(),
            self.listeners.wait_until_ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.stateful_sets.wait_until_ready(),
        );
    }
}

/// Ingresses and the Listener CRs they own, in the watched namespace.
fn watch_owned(
    ctx: &Context,
    tx: &mpsc::UnboundedSender<IngressKey>,
    tasks: &mut JoinSet<()>,
) -> (Store<Ingress>, Store<Listener>) {
    let ingresses = spawn_reflector(
        tasks,
        ctx.scoped_api(),
        watcher::Config::default(),
        tx,
        |i: &Ingress| vec![IngressKey::of(i)],
    );
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        keys::LABEL_OWNER_KIND,
        OWNER_KIND_INGRESS
    ));
    let listeners = spawn_reflector(tasks, ctx.scoped_api(), owned, tx, |l: &Listener| {
        owner_ingress(l).into_iter().collect()
    });
    (ingresses, listeners)
}

/// Kinds an Ingress reads (in every namespace), each change mapped to Ingress keys through the index.
struct Referenced {
    client: kube::Client,
    index: Arc<Mutex<IngressIndex>>,
    tx: mpsc::UnboundedSender<IngressKey>,
}

impl Referenced {
    fn watch<K>(
        &self,
        tasks: &mut JoinSet<()>,
        mut map: impl FnMut(&IngressIndex, &K) -> Vec<IngressKey> + Send + 'static,
    ) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K: Send + Sync + 'static,
    {
        let index = self.index.clone();
        let api = Api::all(self.client.clone());
        spawn_reflector(
            tasks,
            api,
            watcher::Config::default(),
            &self.tx,
            move |obj: &K| map(&lock(&index), obj),
        )
    }
}

fn namespace_of<K: Resource>(obj: &K) -> &str {
    obj.meta().namespace.as_deref().unwrap_or("default")
}

/// Watches and reconciles Ingresses, one at a time, until `stop` turns true.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    let (tx, rx) = mpsc::unbounded_channel::<IngressKey>();
    let index = Arc::new(Mutex::new(IngressIndex::default()));
    let mut watches = JoinSet::new();
    let stores = Stores::watch(&ctx, &index, &tx, &mut watches);
    tokio::select! {
        _ = wait_true(&mut stop) => { watches.shutdown().await; return; }
        _ = stores.wait_until_ready() => tracing::info!("ingress caches synced"),
    }
    let config = DriverConfig {
        name: "ingress",
        concurrency: 1,
        resync: ctx.resync(),
        errors: ctx.metrics.reconcile_errors.clone(),
    };
    let reconciler = Arc::new(IngressReconciler {
        recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
        ctx,
        stores,
        index,
        lb_cache: tokio::sync::Mutex::default(),
        reported_problems: Mutex::default(),
    });
    drive(reconciler, config, rx, stop).await;
    watches.shutdown().await;
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

/// Reconciles one Ingress at a time (the driver's concurrency is 1); the locks only give the shared
/// reconciler its mutable caches.
struct IngressReconciler {
    ctx: Context,
    recorder: Recorder,
    stores: Stores,
    index: Arc<Mutex<IngressIndex>>,
    lb_cache: tokio::sync::Mutex<LbCache>,
    /// Problems last published as events per Ingress, so a resync does not repeat them.
    reported_problems: Mutex<HashMap<IngressKey, Vec<String>>>,
}

impl Reconcile for IngressReconciler {
    type Key = IngressKey;

    fn all_keys(&self) -> Vec<IngressKey> {
        self.stores
            .ingresses
            .state()
            .iter()
            .map(|i| IngressKey::of(&**i))
            .collect()
    }

    /// Finalizer, CLB resolution, generation, Listener CRs made to match, status and problem events.
    async fn reconcile(&self, key: &IngressKey) -> Result<Action, ReconcileError> {
        let Some(ingress) = self
            .stores
            .ingresses
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            lock(&self.index).remove(key);
            lock(&self.reported_problems).remove(key);
            return Ok(Action::await_change());
        };
        lock(&self.index).upsert(key.clone(), refs_of(&ingress));
        let listeners: Api<Listener> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let ingresses: Api<Ingress> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        if ingress.metadata.deletion_timestamp.is_some() {
            return self.finalize(key, &ingress, &listeners, &ingresses).await;
        }
        finalizer::add(&ingresses, &*ingress, keys::FINALIZER_CONTROLLER).await?;
        let Some(load_balancers) = self.load_balancers(key, &ingress).await? else {
            return Ok(Action::await_change());
        };
        let generated = generate(&ingress, &self.world(&ingress, load_balancers));
        let existing = self.owned_listeners(key);
        let diff = diff_listeners(&generated.listeners, &existing);
        let apply: Vec<&Listener> = diff.create.iter().chain(&diff.update).collect();
        owned_listeners::write(&listeners, FIELD_MANAGER, &apply, &diff.delete).await?;
        let current = ingress
            .status
            .as_ref()
            .map(|s| s.loadbalancers.clone())
            .unwrap_or_default();
        if current != generated.load_balancers {
            let patch = json!({"status": {"loadbalancers": generated.load_balancers}});
            api_call(
                "writing the ingress status",
                ingresses.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await?;
        }
        let problems = generated.problems.iter().map(ToString::to_string).collect();
        self.report(key, &ingress, problems).await;
        Ok(if diff.blocked.is_empty() {
            Action::await_change()
        } else {
            Action::requeue(WAIT_FOR_LISTENERS)
        })
    }
}

impl IngressReconciler {
    /// The Ingress's load balancers; `None` when its annotations are unusable (only an edit fixes that, so no
    /// retry). Both failures are reported as events; a cloud failure is retried.
    async fn load_balancers(
        &self,
        key: &IngressKey,
        ingress: &Ingress,
    ) -> Result<Option<Vec<ResolvedLb>>, ReconcileError> {
        let selection = match parse_lb_annotations(
            ingress.metadata.annotations.as_ref(),
            &self.ctx.settings.default_region,
        ) {
            Ok(selection) => selection,
            Err(e) => {
                self.report(key, ingress, vec![e.to_string()]).await;
                return Ok(None);
            }
        };
        let resolved = self
            .lb_cache
            .lock()
            .await
            .resolve(&self.ctx.cloud, &selection)
            .await;
        match resolved {
            Ok(lbs) => Ok(Some(lbs)),
            Err(e) => {
                self.report(key, ingress, vec![e.to_string()]).await;
                Err(match e {
                    ResolveError::Cloud(e) => ReconcileError::Cloud(e),
                    other => ReconcileError::Invalid(other.to_string()),
                })
            }
        }
    }

    /// The Listener CRs in the cache that this Ingress owns.
    fn owned_listeners(&self, key: &IngressKey) -> Vec<Listener> {
        self.stores
            .listeners
            .state()
            .iter()
            .filter(|l| l.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .filter(|l| is_owned_by(l, &key.name))
            .map(|l| (**l).clone())
            .collect()
    }

    /// Deletion: delete the Ingress's Listener CRs, and remove the finalizer once they are all gone (each
    /// Listener's own finalizer holds it until its cloud listener is deleted).
    async fn finalize(
        &self,
        key: &IngressKey,
        ingress: &Ingress,
        listeners: &Api<Listener>,
        ingresses: &Api<Ingress>,
    ) -> Result<Action, ReconcileError> {
        if !finalizer::has(ingress, keys::FINALIZER_CONTROLLER) {
            return Ok(Action::await_change());
        }
        if !owned_listeners::delete_all(listeners, OWNER_KIND_INGRESS, &key.name).await? {
            return Ok(Action::requeue(WAIT_FOR_LISTENERS));
        }
        finalizer::remove(ingresses, ingress, keys::FINALIZER_CONTROLLER).await?;
        lock(&self.reported_problems).remove(key);
        tracing::info!("ingress listeners gone; finalizer removed");
        Ok(Action::await_change())
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
    async fn report(&self, key: &IngressKey, ingress: &Ingress, problems: Vec<String>) {
        if lock(&self.reported_problems).get(key) == Some(&problems) {
            return;
        }
        let object = ingress.object_ref(&());
        for message in &problems {
            tracing::info!(problem = %message, "ingress bind problem");
            let failures = &self.ctx.metrics.kube_errors;
            events::warn(
                &self.recorder,
                &object,
                REASON_BIND_FAILED,
                "Reconcile",
                message,
                failures,
            )
            .await;
        }
        lock(&self.reported_problems).insert(key.clone(), problems);
    }
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
