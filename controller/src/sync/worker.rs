//! One task per load balancer: takes change notifications, runs full sync passes (read the cloud,
//! plan, execute) and reports per-CR outcomes.
//!
//! Batching is adaptive ([`Batcher`]): a lone change starts a pass at once; changes that arrive
//! while a pass is in flight are coalesced into the next one. There is no batching timer. Failed
//! CRs are re-notified after a jittered exponential backoff; a periodic resync repairs drift made
//! in the console. Kubernetes stays out of this module: the reconciler implements
//! [`DesiredSource`] (the LB's Listener CRs) and [`StatusSink`] (status, finalizers, events).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use super::batcher::Batcher;
use super::executor::{ExecutionReport, Outcome, TargetCache, execute, read_cloud_cached};
use super::model::{DeletingListener, DesiredListener, OwnerRef};
use super::plan::{Limits, plan_with};
use crate::cloud::{ClbClient, LbRef, RetryPolicy};

/// The Listener CRs of one load balancer, as the reconciler sees them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// CRs that want a listener.
    pub desired: Vec<DesiredListener>,
    /// CRs being deleted (finalizer still on).
    pub deleting: Vec<DeletingListener>,
}

/// Where a worker gets the desired state of its load balancer at the start of every pass.
pub trait DesiredSource: Send + Sync + 'static {
    /// Every Listener CR of `lb` (a pass always plans the whole load balancer).
    fn snapshot(&self, lb: &LbRef) -> impl Future<Output = Snapshot> + Send;
}

/// Where a worker reports outcomes: the reconciler patches `status`, removes finalizers on
/// [`Outcome::Deleted`] and emits a Warning event on [`Outcome::NotSynced`].
///
/// A CR is reported when it was part of the pass's batch (notified or retried) or when its
/// outcome differs from the last one reported, so an unchanged CR is not patched on every pass.
pub trait StatusSink: Send + Sync + 'static {
    /// The outcome of `owner` on `lb`.
    fn report(
        &self,
        lb: &LbRef,
        owner: &OwnerRef,
        outcome: &Outcome,
    ) -> impl Future<Output = ()> + Send;
}

/// Knobs of a worker (each becomes a controller flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Deadline of one pass (read, plan, every call, reporting excluded).
    pub pass_timeout: Duration,
    /// A full pass this long after the last one, to repair drift; zero turns it off.
    pub resync_interval: Duration,
    /// First retry delay of a failed CR (ceiling; equal jitter).
    pub retry_initial: Duration,
    /// Largest retry delay of a failed CR.
    pub retry_max: Duration,
    /// Batch limits for the planner (CreateListener ports are also capped by the client's).
    pub limits: Limits,
    /// Passes within this long of the last full read re-read only the targets of listeners the previous
    /// pass changed (or that are new) and take the others from memory; after a pass that only changed targets
    /// they also reuse its listener list (no `DescribeListeners`). Zero reads everything every pass. A resync,
    /// a failed call or a failed read always leads to a full read.
    pub target_cache_ttl: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            pass_timeout: Duration::from_secs(300),
            resync_interval: Duration::from_secs(600),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            limits: Limits::default(),
            target_cache_ttl: Duration::from_secs(30),
        }
    }
}

impl WorkerConfig {
    fn backoff(&self, failures: u32) -> Duration {
        let policy = RetryPolicy {
            initial_backoff: self.retry_initial,
            max_backoff: self.retry_max,
            max_attempts: u32::MAX,
        };
        policy.backoff(failures.saturating_sub(1), &mut rand::rng())
    }
}

/// A reason to run a pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Change {
    /// A Listener CR changed (or is retried).
    Owner(OwnerRef),
    /// Periodic or requested full resync.
    Resync,
}

enum Message {
    Notify(OwnerRef),
    Resync,
}

/// Handle of one load balancer's worker task. Dropping it stops the worker (the channel closes).
#[derive(Debug)]
pub struct LbWorker {
    lb: LbRef,
    tx: mpsc::UnboundedSender<Message>,
    stop: watch::Sender<bool>,
    passes: Arc<AtomicU64>,
    join: JoinHandle<()>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Notify(o) => write!(f, "Notify({o})"),
            Message::Resync => f.write_str("Resync"),
        }
    }
}

impl LbWorker {
    /// Starts the worker of `lb`. Must be called inside a tokio runtime.
    pub fn spawn<S: DesiredSource, K: StatusSink>(
        lb: LbRef,
        client: ClbClient,
        source: Arc<S>,
        sink: Arc<K>,
        config: WorkerConfig,
    ) -> LbWorker {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let passes = Arc::new(AtomicU64::new(0));
        let mut limits = config.limits;
        limits.create_ports = limits
            .create_ports
            .min(client.config().create_listener_max_ports)
            .max(1);
        let ctx = Arc::new(Ctx {
            lb: lb.clone(),
            client,
            source,
            sink,
            config: WorkerConfig { limits, ..config },
            passes: passes.clone(),
        });
        let span = info_span!("lb_worker", lb = %lb);
        let join = tokio::spawn(run(ctx, rx, stop_rx).instrument(span));
        LbWorker {
            lb,
            tx,
            stop,
            passes,
            join,
        }
    }

    /// The load balancer this worker syncs.
    pub fn lb(&self) -> &LbRef {
        &self.lb
    }

    /// A Listener CR of this LB changed (created, updated, deleting): sync it soon.
    pub fn notify(&self, owner: impl Into<OwnerRef>) {
        // A closed channel means the worker stopped; nothing to do then.
        let _ = self.tx.send(Message::Notify(owner.into()));
    }

    /// Run a full pass now (as the periodic resync does).
    pub fn resync(&self) {
        let _ = self.tx.send(Message::Resync);
    }

    /// Passes completed so far (for metrics and tests).
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Acquire)
    }

    /// Whether the worker task is still running.
    pub fn is_running(&self) -> bool {
        !self.join.is_finished()
    }

    /// Stops the worker: an in-flight pass is cancelled (the next leader re-reads the cloud).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.join.await
            && e.is_panic()
        {
            warn!(lb = %self.lb, "sync worker panicked");
        }
    }
}

struct Ctx<S, K> {
    lb: LbRef,
    client: ClbClient,
    source: Arc<S>,
    sink: Arc<K>,
    config: WorkerConfig,
    passes: Arc<AtomicU64>,
}

/// Per-CR memory of the worker, between passes.
#[derive(Default)]
struct Memory {
    /// Last outcome reported per CR.
    reported: HashMap<OwnerRef, Outcome>,
    /// Targets of listeners the last pass left alone, and when the cache was last emptied (a full read).
    targets: TargetCache,
    full_read_at: Option<Instant>,
}

/// What a pass hands back to the loop.
struct PassDone {
    memory: Memory,
    report: ExecutionReport,
    /// Owners notified or retried in this pass's batch.
    batch: BTreeSet<OwnerRef>,
}

type PassFuture = Pin<Box<dyn Future<Output = PassDone> + Send>>;

/// Retry bookkeeping of failed CRs.
#[derive(Default)]
struct Retries {
    failures: HashMap<OwnerRef, u32>,
    due: HashMap<OwnerRef, Instant>,
}

impl Retries {
    fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    fn take_due(&mut self, now: Instant) -> Vec<OwnerRef> {
        let due: Vec<OwnerRef> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(o, _)| o.clone())
            .collect();
        for o in &due {
            self.due.remove(o);
        }
        due
    }
}

async fn run<S: DesiredSource, K: StatusSink>(
    ctx: Arc<Ctx<S, K>>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batcher: Batcher<Change> = Batcher::new();
    let mut in_flight: Option<PassFuture> = None;
    let mut memory = Some(Memory::default());
    let mut retries = Retries::default();
    let resync = ctx.config.resync_interval;
    let mut next_resync = (!resync.is_zero()).then(|| Instant::now() + resync);
    debug!("sync worker started");

    let start = |batch: Vec<Change>, memory: &mut Option<Memory>| -> Option<PassFuture> {
        let mem = memory.take().unwrap_or_default();
        Some(Box::pin(pass(ctx.clone(), batch, mem)))
    };

    loop {
        let retry_at = retries.next_due();
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            done = poll_pass(&mut in_flight), if in_flight.is_some() => {
                in_flight = None;
                let PassDone { memory: mem, report, batch } = done;
                memory = Some(mem);
                for owner in schedule_retries(&ctx.config, &report, &batch, &mut retries) {
                    // The batcher is still busy with the finished pass: this queues for the next.
                    if let Some(batch) = batcher.push(Change::Owner(owner)) {
                        in_flight = start(batch.0, &mut memory);
                    }
                }
                next_resync = (!resync.is_zero()).then(|| Instant::now() + resync);
                if in_flight.is_none()
                    && let Some(next) = batcher.finish()
                {
                    in_flight = start(next.0, &mut memory);
                }
            }
            message = rx.recv() => {
                let change = match message {
                    None => break,
                    Some(Message::Notify(owner)) => Change::Owner(owner),
                    Some(Message::Resync) => Change::Resync,
                };
                if let Some(batch) = batcher.push(change) {
                    in_flight = start(batch.0, &mut memory);
                }
            }
            _ = sleep_until_opt(retry_at), if retry_at.is_some() => {
                for owner in retries.take_due(Instant::now()) {
                    if let Some(batch) = batcher.push(Change::Owner(owner)) {
                        in_flight = start(batch.0, &mut memory);
                    }
                }
            }
            _ = sleep_until_opt(next_resync), if next_resync.is_some() => {
                // Re-armed when the pass ends; until then, do not fire again.
                next_resync = Some(Instant::now() + resync);
                if let Some(batch) = batcher.push(Change::Resync) {
                    in_flight = start(batch.0, &mut memory);
                }
            }
        }
    }
    debug!(cancelled_pass = in_flight.is_some(), "sync worker stopped");
}

async fn poll_pass(pass: &mut Option<PassFuture>) -> PassDone {
    match pass {
        Some(pass) => pass.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Failed CRs get a retry after a jittered backoff; successful and vanished ones are forgotten.
/// Returns the CRs to run again at once: the first `PortCheckFailed` of a CR, so that the
/// re-read adopts our listener or blocks the CR on a foreign one.
fn schedule_retries(
    config: &WorkerConfig,
    report: &ExecutionReport,
    batch: &BTreeSet<OwnerRef>,
    retries: &mut Retries,
) -> Vec<OwnerRef> {
    let mut now_again = Vec::new();
    retries
        .failures
        .retain(|owner, _| report.outcomes.get(owner).is_some_and(Outcome::is_failure));
    retries
        .due
        .retain(|owner, _| report.outcomes.get(owner).is_some_and(Outcome::is_failure));
    let now = Instant::now();
    for (owner, outcome) in &report.outcomes {
        if !outcome.is_failure() {
            continue;
        }
        // A CR failing again in a pass it was not part of keeps its current schedule.
        if !batch.contains(owner) && retries.due.contains_key(owner) {
            continue;
        }
        let failures = retries.failures.entry(owner.clone()).or_insert(0);
        *failures += 1;
        if *failures == 1 && report.reread.contains(owner) {
            now_again.push(owner.clone());
            continue;
        }
        let delay = config.backoff(*failures);
        debug!(owner = %owner, failures = *failures, ?delay, "retrying failed listener");
        retries.due.insert(owner.clone(), now + delay);
    }
    now_again
}

/// One full pass: snapshot, read, plan, execute (under the pass deadline), then report.
async fn pass<S: DesiredSource, K: StatusSink>(
    ctx: Arc<Ctx<S, K>>,
    batch: Vec<Change>,
    mut memory: Memory,
) -> PassDone {
    let started = Instant::now();
    let resync = batch.contains(&Change::Resync);
    let batch: BTreeSet<OwnerRef> = batch
        .into_iter()
        .filter_map(|c| match c {
            Change::Owner(o) => Some(o),
            Change::Resync => None,
        })
        .collect();
    let snapshot = ctx.source.snapshot(&ctx.lb).await;
    let timeout = ctx.config.pass_timeout;
    let ttl = ctx.config.target_cache_ttl;
    let full_read =
        resync || ttl.is_zero() || memory.full_read_at.is_none_or(|at| at.elapsed() >= ttl);
    if full_read {
        memory.targets.clear();
        memory.full_read_at = Some(Instant::now());
    }
    let cached = memory.targets.len();
    let work = sync_once_cached(
        &ctx.client,
        &ctx.lb,
        &ctx.config.limits,
        &snapshot,
        &mut memory.targets,
    );
    let outcome = tokio::time::timeout(timeout, work).await;
    if outcome
        .as_ref()
        .map_or(true, |r| r.calls_failed > 0 || r.calls_skipped > 0)
    {
        // Whatever failed may have left the cloud in a state we did not plan: read everything next time.
        memory.targets.clear();
        memory.full_read_at = None;
    }
    let report = match outcome {
        Ok(report) => report,
        Err(_) => {
            warn!(?timeout, "sync pass ran out of time");
            ExecutionReport::all_failed(
                &snapshot.desired,
                &snapshot.deleting,
                &format!(
                    "sync of load balancer {} did not finish within {timeout:?}",
                    ctx.lb
                ),
            )
        }
    };

    memory
        .reported
        .retain(|owner, _| report.outcomes.contains_key(owner));
    let mut reported = 0usize;
    for (owner, outcome) in &report.outcomes {
        if batch.contains(owner) || memory.reported.get(owner) != Some(outcome) {
            ctx.sink.report(&ctx.lb, owner, outcome).await;
            memory.reported.insert(owner.clone(), outcome.clone());
            reported += 1;
        }
    }
    let failed = report.outcomes.values().filter(|o| o.is_failure()).count();
    ctx.passes.fetch_add(1, Ordering::AcqRel);
    info!(
        batch = batch.len(),
        resync,
        full_read,
        cached_targets = cached,
        desired = snapshot.desired.len(),
        deleting = snapshot.deleting.len(),
        calls = report.calls_made,
        failed_calls = report.calls_failed,
        failed_listeners = failed,
        reported,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sync pass done"
    );
    PassDone {
        memory,
        report,
        batch,
    }
}

/// Read (everything), plan and execute once for `snapshot`.
pub async fn sync_once(
    client: &ClbClient,
    lb: &LbRef,
    limits: &Limits,
    snapshot: &Snapshot,
) -> ExecutionReport {
    sync_once_cached(client, lb, limits, snapshot, &mut TargetCache::default()).await
}

/// Read (targets of listeners in `cache` from it), plan and execute once for `snapshot`. Afterwards `cache`
/// holds what the calls made of the targets when every call succeeded, and nothing when one failed.
pub async fn sync_once_cached(
    client: &ClbClient,
    lb: &LbRef,
    limits: &Limits,
    snapshot: &Snapshot,
    cache: &mut TargetCache,
) -> ExecutionReport {
    let cloud = match read_cloud_cached(client, lb, cache).await {
        Ok(cloud) => cloud,
        Err(e) => {
            warn!(error = %e, "reading the load balancer failed");
            cache.clear();
            return ExecutionReport::read_failed(lb, &snapshot.desired, &snapshot.deleting, &e);
        }
    };
    let plan = plan_with(limits, &snapshot.desired, &snapshot.deleting, &cloud);
    if !plan.is_empty() {
        debug!(
            steps = plan.steps.len(),
            blocked = plan.blocked.len(),
            "executing plan"
        );
    }
    let mut report = execute(client, lb, &plan).await;
    if report.lb_missing {
        // Planned against a record of a load balancer that is gone: read it again, and report what that says
        // (every desired CR NotSynced with "does not exist", deleting ones done).
        cache.clear();
        if let Err(e) = read_cloud_cached(client, lb, cache).await {
            cache.clear();
            return ExecutionReport::read_failed(lb, &snapshot.desired, &snapshot.deleting, &e);
        }
    }
    if report.calls_failed == 0 && report.calls_skipped == 0 && !report.lb_missing {
        cache.record(&plan);
    } else {
        cache.clear();
    }
    report.complete_deleting(&snapshot.deleting);
    report
}

/// One worker per load balancer, created on first use.
pub struct WorkerPool<S, K> {
    client: ClbClient,
    source: Arc<S>,
    sink: Arc<K>,
    config: WorkerConfig,
    workers: Mutex<HashMap<LbRef, LbWorker>>,
}

impl<S: DesiredSource, K: StatusSink> WorkerPool<S, K> {
    /// A pool whose workers share `client` (rate limits, connections), `source` and `sink`.
    pub fn new(client: ClbClient, source: Arc<S>, sink: Arc<K>, config: WorkerConfig) -> Self {
        WorkerPool {
            client,
            source,
            sink,
            config,
            workers: Mutex::new(HashMap::new()),
        }
    }

    fn with_worker<T>(&self, lb: &LbRef, f: impl FnOnce(&LbWorker) -> T) -> T {
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let worker = workers.entry(lb.clone()).or_insert_with(|| {
            LbWorker::spawn(
                lb.clone(),
                self.client.clone(),
                self.source.clone(),
                self.sink.clone(),
                self.config,
            )
        });
        f(worker)
    }

    /// A Listener CR on `lb` changed; starts the LB's worker if needed.
    pub fn notify(&self, lb: &LbRef, owner: impl Into<OwnerRef>) {
        let owner = owner.into();
        self.with_worker(lb, |w| w.notify(owner));
    }

    /// Full pass on `lb` now.
    pub fn resync(&self, lb: &LbRef) {
        self.with_worker(lb, LbWorker::resync);
    }

    /// The load balancers that have a worker.
    pub fn load_balancers(&self) -> Vec<LbRef> {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.keys().cloned().collect()
    }

    /// Passes completed by `lb`'s worker (0 if it has none).
    pub fn passes(&self, lb: &LbRef) -> u64 {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.get(lb).map_or(0, LbWorker::passes)
    }

    /// Stops the worker of `lb` (no Listener CR refers to it any more).
    pub async fn stop(&self, lb: &LbRef) {
        let worker = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(lb);
        if let Some(worker) = worker {
            worker.shutdown().await;
        }
    }

    /// Stops every worker and waits for them.
    pub async fn shutdown(&self) {
        let workers: Vec<LbWorker> = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        for worker in workers {
            worker.shutdown().await;
        }
    }
}
