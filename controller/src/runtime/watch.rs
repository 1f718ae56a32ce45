//! The watch plumbing the reconcilers share: a reflector store per kind whose changes are mapped to
//! reconcile keys and sent to the reconciler's queue.

use std::fmt::Debug;
use std::hash::Hash;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
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
