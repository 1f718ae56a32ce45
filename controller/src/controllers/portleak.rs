//! The port-pool leak checker (leader only): every `threshold / 4` it lists every PortBinding and every pod's
//! metadata and releases what the pure judgements of [`crate::pools::leak`] pick: pending webhook allocations
//! that nothing records after the threshold, and confirmed ports two sweeps found unrecorded. A faster round
//! settles port reservations of refused pods within seconds (see [`crate::pools::reservation`]).

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::{ObjectList, PartialObjectMeta};
use tokio::sync::watch;

use super::Context;
use crate::api::PortBinding;
use crate::pools::SweepOutcome;
use crate::pools::held::HeldPort;
use crate::pools::leak::claims_of;
use crate::runtime::{ReconcileError, api_call, wait_true};

/// Default of `--port-leak-threshold` (bcs: PORT_LEAK_THRESHOLD_SECONDS=300).
pub const DEFAULT_LEAK_THRESHOLD: Duration = Duration::from_secs(300);
/// Objects per list page: a check reads every pod's metadata and every PortBinding without holding them all.
const PAGE: u32 = 500;

/// Checks for leaked ports every `threshold / 4` (at least 1 s), and for lapsed reservations every fifth of the
/// reservation timeout (when on), until `stop` turns true.
pub async fn run_while_leader(ctx: Context, mut stop: watch::Receiver<bool>) {
    let every = (ctx.leak_threshold / 4).max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let reservations_on = !ctx.reservation_timeout.is_zero();
    let often = (ctx.reservation_timeout / 5).max(Duration::from_millis(200));
    let mut fast = tokio::time::interval(often);
    fast.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = wait_true(&mut stop) => return,
            _ = tick.tick() => {
                if let Err(e) = check_once(&ctx).await {
                    tracing::warn!(error = %e, "port leak check failed; retrying next round");
                }
            }
            _ = fast.tick(), if reservations_on => settle_reservations(&ctx).await,
        }
    }
}

/// Lookups of validated reservations per round: a burst the pod watch lags behind is settled over rounds.
const SETTLE_PER_ROUND: usize = 32;

/// One round of the reservation timeout (see [`crate::pools::reservation`]): releases reservations never
/// validated, and looks up the pods of validated ones that no stored pod confirmed in time.
async fn settle_reservations(ctx: &Context) {
    if !ctx.pools.is_ready() {
        return;
    }
    let now = Instant::now();
    let timeout = ctx.reservation_timeout;
    for ((pool, item, protocol, start), pending) in ctx.pools.release_unvalidated(now, timeout) {
        ctx.metrics.pool_reservations_released.inc();
        tracing::info!(pool = %pool, %item, %protocol, port = start, namespace = %pending.namespace, pod = %pending.pod,
            "reserved port released: the pod never reached the pod validating webhook (refused earlier)");
    }
    for due in ctx
        .pools
        .validated_due(now, timeout)
        .into_iter()
        .take(SETTLE_PER_ROUND)
    {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &due.namespace);
        let stored = match api_call("reading a reserved pod", pods.get_opt(&due.pod)).await {
            Ok(found) => found.is_some_and(|p| p.uid().as_deref() == Some(due.uid.as_str())),
            Err(e) => {
                tracing::warn!(namespace = %due.namespace, pod = %due.pod, error = %e, "cannot read a reserved pod; retrying next round");
                return;
            }
        };
        for (pool, item, protocol, start) in ctx.pools.settle(&due, stored, Instant::now()) {
            ctx.metrics.pool_reservations_released.inc();
            tracing::info!(pool = %pool, %item, %protocol, port = start, namespace = %due.namespace, pod = %due.pod,
                "reserved port released: the pod was validated but not stored (refused later, e.g. by a quota)");
        }
    }
    ctx.pools.expire_tombstones(now);
}

/// One round: when any pending allocation is old enough or any confirmed port is held, lists every PortBinding
/// and every pod's metadata (all namespaces, paged), then releases what [`reclaimable`] and
/// [`judge_unrecorded`] pick.
async fn check_once(ctx: &Context) -> Result<(), ReconcileError> {
    if !ctx.pools.is_ready() {
        return Ok(());
    }
    // Taken before the lists: only ports confirmed by then are judged against them.
    let snapshot = ctx.pools.begin_sweep();
    let stale_pending = !ctx
        .pools
        .stale_pending_namespaces(Instant::now(), ctx.leak_threshold)
        .is_empty();
    if snapshot.is_empty() && !stale_pending {
        return Ok(());
    }
    let recorded = list_recorded(&ctx.client).await?;
    // Decided under the allocator lock, so an allocation made after the lists is either fresh or confirmed.
    let released = ctx.pools.reclaim(
        Instant::now(),
        ctx.leak_threshold,
        &recorded.pods,
        &recorded.claimed,
    );
    for (port, pending) in &released {
        let (pool, item, protocol, start) = port;
        ctx.metrics.pool_leaked_reclaimed.inc();
        tracing::warn!(pool = %pool, %item, %protocol, port = start, namespace = %pending.namespace, pod = %pending.pod,
            "leaked port reclaimed: allocated at admission but no pod or PortBinding records it");
    }
    let SweepOutcome {
        released,
        newly_suspected,
    } = ctx.pools.reclaim_unrecorded(
        &snapshot,
        Instant::now(),
        ctx.leak_threshold,
        &recorded.claimed,
    );
    for (pool, item, protocol, start) in &newly_suspected {
        tracing::info!(pool = %pool, %item, %protocol, port = start, release_after = ?ctx.leak_threshold,
            "held port recorded by no pod or PortBinding; released unless recorded again");
    }
    for ((pool, item, protocol, start), since) in &released {
        ctx.metrics.pool_leaked_reclaimed.inc();
        tracing::warn!(pool = %pool, %item, %protocol, port = start, unrecorded_for = ?since.elapsed(),
            "leaked port reclaimed: held but no pod or PortBinding records it (PortBinding deleted by hand?)");
    }
    Ok(())
}

/// What the API server records at one moment: ports of PortBindings and pod annotations, and existing pods.
#[derive(Debug, Default)]
struct Recorded {
    claimed: BTreeSet<HeldPort>,
    pods: HashSet<(String, String)>,
}

/// Lists every PortBinding and the metadata of every pod (the annotation is all a pod contributes).
async fn list_recorded(client: &kube::Client) -> Result<Recorded, ReconcileError> {
    let mut recorded = Recorded::default();
    let bindings: Api<PortBinding> = Api::all(client.clone());
    list_paged(
        |params| {
            let api = bindings.clone();
            async move { api.list(&params).await }
        },
        |page: Vec<PortBinding>| {
            let claims = claims_of(&page, std::iter::empty::<&Pod>());
            recorded.claimed.extend(claims.into_iter().map(|c| c.port));
        },
    )
    .await?;
    let pods: Api<Pod> = Api::all(client.clone());
    list_paged(
        |params| {
            let api = pods.clone();
            async move { api.list_metadata(&params).await }
        },
        |page: Vec<PartialObjectMeta<Pod>>| {
            let page: Vec<Pod> = page
                .into_iter()
                .map(|meta| Pod {
                    metadata: meta.metadata,
                    ..Pod::default()
                })
                .collect();
            let claims = claims_of(std::iter::empty::<&PortBinding>(), &page);
            recorded.claimed.extend(claims.into_iter().map(|c| c.port));
            recorded.pods.extend(
                page.iter()
                    .map(|p| (p.namespace().unwrap_or_default(), p.name_any())),
            );
        },
    )
    .await?;
    Ok(recorded)
}

/// Feeds every page of a list to `each`. The pages of one list are one consistent snapshot (continue tokens).
async fn list_paged<T, F, Fut>(
    mut fetch: F,
    mut each: impl FnMut(Vec<T>),
) -> Result<(), ReconcileError>
where
    T: Clone,
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = Result<ObjectList<T>, kube::Error>>,
{
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api_call("listing for the port leak check", fetch(params.clone())).await?;
        each(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}
