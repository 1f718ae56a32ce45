//! Feeds the random-hostPort load (see [`crate::randhostport`]) while this replica leads: a metadata watch on
//! every pod (the held host ports are in the labels), rebuilt from each full listing, updated on every add,
//! change and delete; recent admissions stop counting on their own after a few seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::randhostport::held_ports;
use crate::randhostport::state::RandHostPortState;
use crate::runtime::wait_true;

/// How often admissions past their time are dropped from the load.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true; the state is ready only between the first listing and the stop.
pub async fn run_while_leader(
    state: Arc<RandHostPortState>,
    client: kube::Client,
    mut stop: watch::Receiver<bool>,
) {
    let pods: Api<PartialObjectMeta<Pod>> = Api::all(client);
    let mut events = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Option<HashMap<String, Vec<u16>>> = None;
    let mut expire = tokio::time::interval(EXPIRE_EVERY);
    loop {
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            _ = expire.tick() => state.expire_admitted(Instant::now()),
            event = events.next() => match event {
                Some(Ok(event)) => apply(&state, &mut listing, event),
                Some(Err(e)) => tracing::warn!(error = %e, "random host port pod watch failed; retrying"),
                None => break,
            },
        }
    }
    state.set_ready(false);
}

/// One watch event: a listing is collected and swapped in whole at its end (then the state is ready).
fn apply(
    state: &RandHostPortState,
    listing: &mut Option<HashMap<String, Vec<u16>>>,
    event: Event<PartialObjectMeta<Pod>>,
) {
    let range = state.range();
    let ports_of = |pod: &PartialObjectMeta<Pod>| held_ports(pod.labels(), range);
    match event {
        Event::Init => *listing = Some(HashMap::new()),
        Event::InitApply(pod) => {
            let ports = ports_of(&pod);
            if let (Some(all), Some(uid), false) = (listing.as_mut(), pod.uid(), ports.is_empty()) {
                all.insert(uid, ports);
            }
        }
        Event::InitDone => {
            let pods = listing.take().unwrap_or_default();
            tracing::info!(
                pods = pods.len(),
                "random host port load rebuilt from the pods"
            );
            state.rebuild(pods);
            state.set_ready(true);
        }
        Event::Apply(pod) => {
            if let Some(uid) = pod.uid() {
                state.pod_seen(&uid, ports_of(&pod));
            }
        }
        Event::Delete(pod) => {
            if let Some(uid) = pod.uid() {
                state.pod_gone(&uid);
            }
        }
    }
}
