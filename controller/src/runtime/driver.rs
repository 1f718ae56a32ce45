//! One reconcile shape for every keyed controller: keys arrive from triggers (watch events mapped to keys, or
//! anything else a controller sends), from the start-up pass and from the periodic resync; the driver runs at
//! most `concurrency` passes at once, never two of one key, each in a tracing span carrying the key, and
//! retries failed keys with exponential backoff ([`WorkQueue`]).

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval};
use tracing::Instrument;

use super::error::ReconcileError;
use super::metrics_server::ReconcileErrorLabels;
use super::queue::WorkQueue;
use super::wait_true;
use super::watch::sleep_until;

/// What a pass asks of the driver once it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action(Option<Duration>);

impl Action {
    /// Look at the key again after `after` (a cloud task or a dependent object is still settling).
    pub fn requeue(after: Duration) -> Self {
        Action(Some(after))
    }

    /// Nothing to do until a trigger or the resync queues the key again.
    pub fn await_change() -> Self {
        Action(None)
    }

    /// The requeue delay, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.0
    }
}

/// A controller the driver can run: a key type, every key it knows, and one pass for one key.
pub trait Reconcile: Send + Sync + 'static {
    /// Identifies one object to reconcile (usually its namespace and name).
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;

    /// Every key, queued at start and at each resync.
    fn all_keys(&self) -> Vec<Self::Key>;

    /// One pass for `key`; reads caches, writes the API server or the cloud, returns what to do next.
    fn reconcile(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Action, ReconcileError>> + Send;
}

/// How the driver runs one controller.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Controller name: span field, log field and metric label.
    pub name: &'static str,
    /// Passes running at once (1 = one key at a time).
    pub concurrency: usize,
    /// Every key is queued this often even without a trigger; `None` = never.
    pub resync: Option<Duration>,
    /// `clb_controller_reconcile_errors_total{controller, reason}`.
    pub errors: Family<ReconcileErrorLabels, Counter>,
}

/// Runs `reconciler` until `stop` turns true; in-flight passes are cancelled then.
pub async fn drive<R: Reconcile>(
    reconciler: Arc<R>,
    config: DriverConfig,
    mut triggers: mpsc::UnboundedReceiver<R::Key>,
    mut stop: watch::Receiver<bool>,
) {
    let mut queue = WorkQueue::default();
    let started = Instant::now();
    for key in reconciler.all_keys() {
        queue.schedule(key, started);
    }
    let mut resync = config
        .resync
        .filter(|every| !every.is_zero())
        .map(|every| tokio::time::interval_at(started + every, every));
    let mut running: JoinSet<(R::Key, Result<Action, ReconcileError>)> = JoinSet::new();
    let mut triggers_open = true;
    loop {
        let next = (queue.running() < config.concurrency.max(1))
            .then(|| queue.next_due())
            .flatten();
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok((key, outcome)) = done {
                    finish(&config, &mut queue, key, outcome);
                }
            }
            key = triggers.recv(), if triggers_open => match key {
                Some(key) => queue.schedule(key, Instant::now()),
                None => triggers_open = false,
            },
            _ = tick(&mut resync) => {
                let now = Instant::now();
                for key in reconciler.all_keys() {
                    queue.schedule(key, now);
                }
            }
            _ = sleep_until(next) => start_due(&reconciler, &config, &mut queue, &mut running),
        }
    }
    running.shutdown().await;
    tracing::info!(controller = config.name, "controller stopped");
}

/// Starts every due key while slots are free.
fn start_due<R: Reconcile>(
    reconciler: &Arc<R>,
    config: &DriverConfig,
    queue: &mut WorkQueue<R::Key>,
    running: &mut JoinSet<(R::Key, Result<Action, ReconcileError>)>,
) {
    let now = Instant::now();
    while queue.running() < config.concurrency.max(1) {
        let Some(key) = queue.start_due(now) else {
            return;
        };
        let span = tracing::info_span!("reconcile", controller = config.name, key = %key);
        let reconciler = reconciler.clone();
        running.spawn(
            async move {
                let outcome = reconciler.reconcile(&key).await;
                (key, outcome)
            }
            .instrument(span),
        );
    }
}

/// Records a finished pass: requeue as asked, or count, log and back off.
fn finish<K: Clone + Eq + Hash + Display>(
    config: &DriverConfig,
    queue: &mut WorkQueue<K>,
    key: K,
    outcome: Result<Action, ReconcileError>,
) {
    let now = Instant::now();
    match outcome {
        Ok(action) => queue.succeeded(key, action.requeue_after(), now),
        Err(error) => {
            config
                .errors
                .get_or_create(&ReconcileErrorLabels {
                    controller: config.name.to_owned(),
                    reason: error.label().to_owned(),
                })
                .inc();
            let shown = key.to_string();
            let retry_in = queue.failed(key, now);
            if error.is_namespace_terminating() {
                tracing::debug!(controller = config.name, key = %shown, ?retry_in, "namespace terminating; not recreating objects");
            } else {
                tracing::warn!(controller = config.name, key = %shown, %error, ?retry_in, "reconcile failed");
            }
        }
    }
}

/// Waits for the next resync tick; never resolves without a resync.
async fn tick(resync: &mut Option<Interval>) {
    match resync {
        Some(interval) => {
            interval.tick().await;
        }
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// Counts passes per key; `fail_first` keys fail their first pass.
    #[derive(Default)]
    struct Counting {
        passes: Mutex<HashMap<String, u32>>,
        fail_first: Vec<String>,
        done: Option<mpsc::UnboundedSender<String>>,
    }

    impl Reconcile for Counting {
        type Key = String;

        fn all_keys(&self) -> Vec<String> {
            vec!["a".into(), "b".into()]
        }

        async fn reconcile(&self, key: &String) -> Result<Action, ReconcileError> {
            let n = {
                let mut passes = self.passes.lock().expect("lock");
                let n = passes.entry(key.clone()).or_default();
                *n += 1;
                *n
            };
            if n == 1 && self.fail_first.contains(key) {
                return Err(ReconcileError::Invalid("first pass fails".into()));
            }
            if let Some(done) = &self.done {
                let _ = done.send(key.clone());
            }
            Ok(Action::await_change())
        }
    }

    fn config() -> DriverConfig {
        DriverConfig {
            name: "test",
            concurrency: 2,
            resync: None,
            errors: Family::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn start_keys_and_triggers_are_reconciled_and_failures_retried() {
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let reconciler = Arc::new(Counting {
            fail_first: vec!["b".into()],
            done: Some(done_tx),
            ..Counting::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(false);
        let config = config();
        let errors = config.errors.clone();
        let task = tokio::spawn(drive(reconciler.clone(), config, rx, stop));
        tx.send("c".to_string()).expect("send");
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(done.recv().await.expect("a pass"));
        }
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
        stop_tx.send_replace(true);
        task.await.expect("driver");
        let passes = reconciler.passes.lock().expect("lock").clone();
        assert_eq!(passes.get("b"), Some(&2), "b failed once, then was retried");
        assert_eq!(passes.get("a"), Some(&1));
        let failed = errors
            .get_or_create(&ReconcileErrorLabels {
                controller: "test".into(),
                reason: "invalid".into(),
            })
            .get();
        assert_eq!(failed, 1);
    }
}
