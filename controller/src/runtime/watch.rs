//! The watch plumbing the reconcilers share: a reflector store per kind whose changes are mapped to
//! reconcile keys and sent to the reconciler's queue.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Starts a reflector; every object it sees (applied or deleted) is mapped to keys and queued.
pub(crate) fn spawn_reflector<K, Q, F>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    config: watcher::Config,
    tx: &mpsc::UnboundedSender<Q>,
    map: F,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
    Q: Send + 'static,
    F: FnMut(&K) -> Vec<Q> + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff())
        .touched_objects();
    tasks.spawn(forward(stream, tx.clone(), map));
    reader
}

/// Like [`spawn_reflector`], but an updated object is mapped to keys only when `relevant` (a fingerprint of
/// the fields the reconciler reads) changed since the last time this object was seen; new and deleted objects
/// always are. The store still holds every version. A reconciler that ignores most updates of a kind (the pool
/// reconciler and the targets of its Listener CRs) is then not woken by each of them.
pub(crate) fn spawn_reflector_where<K, Q, F, P>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    config: watcher::Config,
    tx: &mpsc::UnboundedSender<Q>,
    map: F,
    relevant: P,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
    Q: Send + 'static,
    F: FnMut(&K) -> Vec<Q> + Send + 'static,
    P: Fn(&K) -> u64 + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    let changed = stream.filter_map(move |event| {
        let out = match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                let fingerprint = relevant(&obj);
                let previous = seen.insert(ObjectRef::from_obj(&obj), fingerprint);
                (previous != Some(fingerprint)).then_some(Ok(obj))
            }
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&ObjectRef::from_obj(&obj));
                Some(Ok(obj))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    });
    tasks.spawn(forward(changed, tx.clone(), map));
    reader
}

/// Maps each watched object to keys and sends them; ends when the receiver is gone. Watch errors
/// are logged; the watcher's backoff retries them.
pub(crate) async fn forward<K, Q, S, F>(stream: S, tx: mpsc::UnboundedSender<Q>, mut map: F)
where
    S: Stream<Item = Result<K, watcher::Error>> + Send,
    F: FnMut(&K) -> Vec<Q>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(obj) => {
                for key in map(&obj) {
                    if tx.send(key).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, kind = std::any::type_name::<K>(), "watch failed; retrying with backoff")
            }
        }
    }
}

/// Sleeps until `at`, or forever when nothing is queued.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}
