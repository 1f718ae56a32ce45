//! The sync engine (executor + per-LB worker) against a real, in-process fake-clb: what reaches the
//! cloud is asserted from fake-clb's request log and state dump, outcomes from an in-memory sink.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clb_controller::cloud::{ClbClient, LbRef, ListenerAttributes, NewListener};
use clb_controller::sync::{
    Attributes, Certificate, DeletingListener, DesiredListener, DesiredRule, DesiredSource,
    LbWorker, ListenerKey, Outcome, OwnerRef, Protocol, RuleKey, Scheduler, Snapshot, StatusSink,
    Target, TargetSet, WorkerConfig, WorkerPool,
};
use fake_clb::admin_api::{ConsoleTarget, CreateLoadBalancer, StateQuery};
use serde_json::{Value, json};

mod fake_clb_fixture;

/// Named `sync` so that `cargo test -p clb-controller sync` selects these tests too.
mod sync {
    use super::*;

    const SECRET_ID: &str = "AKIDsynctest00001";
    use crate::fake_clb_fixture::{Fake as Fixture, LB, REGION};
    const WAIT: Duration = Duration::from_secs(30);

    struct Fake(Fixture);

    impl std::ops::Deref for Fake {
        type Target = Fixture;
        fn deref(&self) -> &Fixture {
            &self.0
        }
    }

    impl Fake {
        async fn start(task_duration: &str) -> Fake {
            Fake(Fixture::start(SECRET_ID, 11, task_duration).await)
        }

        fn client(&self) -> ClbClient {
            self.client_with(30, |_| {})
        }

        async fn console(&self, what: &str, body: Value) {
            let admin = self.admin();
            if what == "create-load-balancer" {
                let lb: CreateLoadBalancer = serde_json::from_value(body).expect("a new LB");
                admin
                    .console_create_load_balancer(&lb)
                    .await
                    .expect("creating the LB");
                return;
            }
            let target: ConsoleTarget = serde_json::from_value(body).expect("a console target");
            let done = match what {
                "delete-listener" => admin.console_delete_listener(&target).await,
                "delete-target" => admin.console_delete_target(&target).await,
                "delete-load-balancer" => admin.console_delete_load_balancer(&target).await,
                other => panic!("no console action {other}"),
            };
            done.expect("the console action");
        }

        /// The LB's listeners from the state dump, by port.
        async fn listeners(&self) -> BTreeMap<i64, Value> {
            let state = self
                .admin()
                .state_json(&StateQuery::default())
                .await
                .expect("the state dump");
            let lbs = state["accounts"][0]["regions"][REGION]["loadBalancers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            lbs.iter()
                .filter(|lb| lb["loadBalancerId"] == LB)
                .flat_map(|lb| lb["listeners"].as_array().cloned().unwrap_or_default())
                .map(|l| (l["port"].as_i64().unwrap(), l))
                .collect()
        }
    }

    /// `ip:port -> weight` of a listener in the state dump.
    fn targets_of(listener: &Value) -> BTreeMap<String, i64> {
        listener["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    format!("{}:{}", t["ip"].as_str().unwrap(), t["port"]),
                    t["weight"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    fn lb() -> LbRef {
        LbRef::new(REGION, LB)
    }

    fn tcp(owner: &str, port: u16, targets: &[(&str, u16, u16)]) -> DesiredListener {
        let mut d = DesiredListener::new(owner, ListenerKey::single(Protocol::Tcp, port));
        for (ip, p, w) in targets {
            d.targets.insert(Target::new(*ip, *p, *w));
        }
        d
    }

    /// The reconciler's stand-in: Listener CRs in memory; reported ids become `status.listenerID`
    /// and `Deleted` drops the CR (finalizer removed), as the real reconciler will do.
    #[derive(Default)]
    struct Store {
        inner: Mutex<StoreInner>,
    }

    #[derive(Default)]
    struct StoreInner {
        desired: BTreeMap<OwnerRef, DesiredListener>,
        deleting: BTreeMap<OwnerRef, DeletingListener>,
        outcomes: BTreeMap<OwnerRef, Outcome>,
        history: Vec<(OwnerRef, Outcome)>,
    }

    impl Store {
        fn put(&self, d: DesiredListener) {
            let mut s = self.inner.lock().unwrap();
            s.outcomes.remove(&d.owner);
            s.desired.insert(d.owner.clone(), d);
        }

        /// Edits a CR's spec, keeping its status (known listener id).
        fn edit(&self, owner: &str, f: impl FnOnce(&mut DesiredListener)) {
            let mut s = self.inner.lock().unwrap();
            f(s.desired.get_mut(owner).unwrap());
            s.outcomes.remove(owner);
        }

        /// Marks a CR deleting (deletionTimestamp set, finalizer still on).
        fn delete(&self, owner: &str) {
            let mut s = self.inner.lock().unwrap();
            let d = s.desired.remove(owner).unwrap();
            s.outcomes.remove(owner);
            s.deleting.insert(
                d.owner.clone(),
                DeletingListener {
                    owner: d.owner,
                    key: d.key,
                    known_listener_id: d.known_listener_id,
                    cloud_name: None,
                },
            );
        }

        fn outcome(&self, owner: &str) -> Option<Outcome> {
            self.inner.lock().unwrap().outcomes.get(owner).cloned()
        }

        fn listener_id(&self, owner: &str) -> Option<String> {
            match self.outcome(owner) {
                Some(Outcome::Synced { listener_id }) => Some(listener_id),
                _ => None,
            }
        }

        fn history_of(&self, owner: &str) -> Vec<Outcome> {
            let s = self.inner.lock().unwrap();
            s.history
                .iter()
                .filter(|(o, _)| o == owner)
                .map(|(_, x)| x.clone())
                .collect()
        }

        fn all_synced(&self, owners: &[String]) -> bool {
            owners
                .iter()
                .all(|o| matches!(self.outcome(o), Some(Outcome::Synced { .. })))
        }

        fn is_deleted(&self, owner: &str) -> bool {
            self.outcome(owner) == Some(Outcome::Deleted)
        }
    }

    /// The store holds the Listener CRs of [`LB`] only; other load balancers have none.
    impl DesiredSource for Store {
        async fn snapshot(&self, lb: &LbRef) -> Snapshot {
            if lb.lb_id != LB {
                return Snapshot::default();
            }
            let s = self.inner.lock().unwrap();
            Snapshot {
                desired: s.desired.values().cloned().collect(),
                deleting: s.deleting.values().cloned().collect(),
            }
        }
    }

    impl StatusSink for Store {
        async fn report(&self, lb: &LbRef, owner: &OwnerRef, outcome: &Outcome) {
            assert_eq!(lb.lb_id, LB, "only {LB} has Listener CRs");
            let mut s = self.inner.lock().unwrap();
            match outcome {
                Outcome::Synced { listener_id } => {
                    if let Some(d) = s.desired.get_mut(owner) {
                        d.known_listener_id = Some(listener_id.clone());
                    }
                }
                Outcome::Deleted => {
                    s.deleting.remove(owner);
                }
                Outcome::NotSynced { .. } => {}
            }
            s.outcomes.insert(owner.clone(), outcome.clone());
            s.history.push((owner.clone(), outcome.clone()));
        }
    }

    /// Polls `check` every 10 ms until it holds; panics with `what` after [`WAIT`].
    async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`wait_until`] for conditions that need I/O (fake-clb's state or log).
    async fn wait_until_async<F, Fut>(what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn config() -> WorkerConfig {
        WorkerConfig {
            pass_timeout: Duration::from_secs(60),
            resync_interval: Duration::ZERO,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..WorkerConfig::default()
        }
    }

    fn spawn(fake: &Fake, store: &Arc<Store>, config: WorkerConfig) -> LbWorker {
        LbWorker::spawn(lb(), fake.client(), store.clone(), store.clone(), config)
    }

    fn owners(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("default/l-{i}")).collect()
    }

    const MUTATIONS: [&str; 10] = [
        "CreateListener",
        "DeleteLoadBalancerListeners",
        "ModifyListener",
        "BatchRegisterTargets",
        "BatchDeregisterTargets",
        "BatchModifyTargetWeight",
        "CreateRule",
        "DeleteRule",
        "ModifyRule",
        "ModifyDomainAttributes",
    ];

    /// Every delete in the log named at least one listener id.
    async fn assert_deletes_name_ids(fake: &Fake) {
        for d in fake.requests("DeleteLoadBalancerListeners").await {
            let ids = d["params"]["ListenerIds"].as_array().cloned();
            assert!(
                ids.is_some_and(|ids| !ids.is_empty()),
                "delete without ids: {d}"
            );
        }
    }

    #[tokio::test]
    async fn forty_new_ports_take_one_create_and_one_batch_register() {
        let fake = Fake::start("100ms").await;
        let store = Arc::new(Store::default());
        let owners = owners(40);
        for (i, o) in owners.iter().enumerate() {
            let ip = format!("10.0.0.{}", i + 1);
            store.put(tcp(o, 30000 + i as u16, &[(&ip, 8080, 10)]));
        }
        let worker = spawn(&fake, &store, config());
        for o in &owners {
            worker.notify(o.clone());
        }
        wait_until("40 listeners Synced", || store.all_synced(&owners)).await;

        let creates = fake.requests("CreateListener").await;
        assert_eq!(creates.len(), 1, "{creates:#?}");
        assert_eq!(creates[0]["result"], "OK");
        assert_eq!(creates[0]["params"]["Ports"].as_array().unwrap().len(), 40);
        let registers = fake.requests("BatchRegisterTargets").await;
        assert_eq!(registers.len(), 1, "{registers:#?}");
        assert_eq!(
            registers[0]["params"]["Targets"].as_array().unwrap().len(),
            40
        );

        let listeners = fake.listeners().await;
        assert_eq!(listeners.len(), 40);
        for (i, o) in owners.iter().enumerate() {
            let l = &listeners[&(30000 + i as i64)];
            assert_eq!(
                Some(l["listenerId"].as_str().unwrap().to_string()),
                store.listener_id(o),
                "status id of {o}"
            );
            assert_eq!(l["protocol"], "TCP");
            assert_eq!(l["name"], format!("default-l-{i}"));
            let expect: BTreeMap<String, i64> = [(format!("10.0.0.{}:8080", i + 1), 10)]
                .into_iter()
                .collect();
            assert_eq!(targets_of(l), expect);
        }
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn updates_converge_and_deletes_remove_listeners() {
        let fake = Fake::start("50ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp(
            "default/a",
            31000,
            &[("10.1.0.1", 80, 10), ("10.1.0.2", 80, 10)],
        ));
        store.put(tcp("default/b", 31001, &[("10.1.0.3", 80, 10)]));
        store.put(tcp("default/c", 31002, &[("10.1.0.4", 80, 10)]));
        let all = ["default/a", "default/b", "default/c"].map(String::from);
        let worker = spawn(&fake, &store, config());
        worker.notify("default/a");
        wait_until("a, b, c Synced", || store.all_synced(&all)).await;
        let c_id = store.listener_id("default/c").unwrap();

        // a: add 10.1.0.5, remove 10.1.0.1, reweigh 10.1.0.2; b: attributes; c: deleted.
        store.edit("default/a", |d| {
            d.targets = [("10.1.0.2", 80, 55), ("10.1.0.5", 80, 10)]
                .into_iter()
                .map(|(ip, p, w)| Target::new(ip, p, w))
                .collect();
        });
        store.edit("default/b", |d| {
            d.attributes = Some(Attributes {
                session_expire_time: 30,
                scheduler: Some(Scheduler::LeastConn),
                health_check: None,
            });
        });
        store.delete("default/c");
        fake.clear_log().await;
        for o in &all {
            worker.notify(o.clone());
        }
        wait_until("a, b Synced and c Deleted", || {
            store.all_synced(&all[..2]) && store.is_deleted("default/c")
        })
        .await;

        let listeners = fake.listeners().await;
        assert_eq!(
            listeners.keys().copied().collect::<Vec<_>>(),
            vec![31000, 31001]
        );
        let expect: BTreeMap<String, i64> = [
            ("10.1.0.2:80".to_string(), 55),
            ("10.1.0.5:80".to_string(), 10),
        ]
        .into_iter()
        .collect();
        assert_eq!(targets_of(&listeners[&31000]), expect);
        assert_eq!(listeners[&31001]["sessionExpireTime"], 30);
        assert_eq!(listeners[&31001]["scheduler"], "LEAST_CONN");

        let deletes = fake.requests("DeleteLoadBalancerListeners").await;
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0]["params"]["ListenerIds"], json!([c_id]));
        assert_deletes_name_ids(&fake).await;
        for action in [
            "BatchDeregisterTargets",
            "BatchRegisterTargets",
            "BatchModifyTargetWeight",
            "ModifyListener",
        ] {
            let calls = fake.requests(action).await;
            assert_eq!(calls.len(), 1, "{action}: {calls:#?}");
            assert_eq!(calls[0]["result"], "OK", "{action}");
        }

        // Converged: a full pass reads and changes nothing.
        fake.clear_log().await;
        let passes = worker.passes();
        worker.resync();
        wait_until("a resync pass", || worker.passes() > passes).await;
        let log = fake.log().await;
        assert!(log.iter().any(|r| r["action"] == "DescribeListeners"));
        let mutations: Vec<&Value> = log
            .iter()
            .filter(|r| MUTATIONS.contains(&r["action"].as_str().unwrap_or("")))
            .collect();
        assert!(mutations.is_empty(), "{mutations:#?}");
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn resync_repairs_console_drift() {
        let fake = Fake::start("50ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 32000, &[("10.2.0.1", 80, 10)]));
        store.put(tcp(
            "default/b",
            32001,
            &[("10.2.0.2", 80, 10), ("10.2.0.3", 80, 10)],
        ));
        let both = ["default/a", "default/b"].map(String::from);
        let worker = spawn(&fake, &store, config());
        worker.notify("default/a");
        wait_until("a, b Synced", || store.all_synced(&both)).await;
        let a_id = store.listener_id("default/a").unwrap();
        let b_id = store.listener_id("default/b").unwrap();

        fake.console(
            "delete-listener",
            json!({"region": REGION, "loadBalancerId": LB, "listenerId": a_id}),
        )
        .await;
        fake.console(
            "delete-target",
            json!({"region": REGION, "loadBalancerId": LB, "listenerId": b_id, "ip": "10.2.0.3", "port": 80}),
        )
        .await;
        assert_eq!(fake.listeners().await.len(), 1);

        worker.resync();
        wait_until("a recreated with a new id", || {
            store.listener_id("default/a").is_some_and(|id| id != a_id)
        })
        .await;
        wait_until_async("b's target back", || async {
            fake.listeners()
                .await
                .get(&32001)
                .is_some_and(|l| targets_of(l).len() == 2)
        })
        .await;
        let listeners = fake.listeners().await;
        assert_eq!(
            listeners[&32000]["listenerId"].as_str(),
            store.listener_id("default/a").as_deref()
        );
        assert_eq!(targets_of(&listeners[&32000]).len(), 1);
        assert_eq!(store.listener_id("default/b"), Some(b_id));
        assert_deletes_name_ids(&fake).await;
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn periodic_resync_repairs_drift_without_a_notification() {
        let fake = Fake::start("20ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 32100, &[("10.2.1.1", 80, 10)]));
        let worker = spawn(
            &fake,
            &store,
            WorkerConfig {
                resync_interval: Duration::from_millis(200),
                ..config()
            },
        );
        worker.notify("default/a");
        wait_until("a Synced", || store.listener_id("default/a").is_some()).await;
        let a_id = store.listener_id("default/a").unwrap();
        fake.console(
            "delete-listener",
            json!({"region": REGION, "loadBalancerId": LB, "listenerId": a_id}),
        )
        .await;
        wait_until("a recreated by the periodic resync", || {
            store.listener_id("default/a").is_some_and(|id| id != a_id)
        })
        .await;
        assert!(fake.listeners().await.contains_key(&32100));
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn throttle_storm_converges() {
        let fake = Fake::start("20ms").await;
        fake.faults(json!([
            {"action": "DescribeListeners", "count": 3, "effect": {"type": "throttle"}},
            {"action": "CreateListener", "count": 4, "effect": {"type": "throttle"}},
            {"action": "BatchRegisterTargets", "count": 4, "effect": {"type": "throttle"}},
        ]))
        .await;
        let store = Arc::new(Store::default());
        let owners = owners(10);
        for (i, o) in owners.iter().enumerate() {
            store.put(tcp(
                o,
                33000 + i as u16,
                &[("10.3.0.1", 9000 + i as u16, 10)],
            ));
        }
        let worker = spawn(&fake, &store, config());
        for o in &owners {
            worker.notify(o.clone());
        }
        wait_until("all Synced despite throttling", || {
            store.all_synced(&owners)
        })
        .await;
        let throttled = fake
            .log()
            .await
            .iter()
            .filter(|r| r["result"] == "RequestLimitExceeded")
            .count();
        assert_eq!(throttled, 11);
        let creates = fake.requests("CreateListener").await;
        assert_eq!(creates.iter().filter(|r| r["result"] == "OK").count(), 1);
        assert_eq!(fake.listeners().await.len(), 10);
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn busy_load_balancer_is_waited_for() {
        let fake = Fake::start("1500ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 34000, &[("10.4.0.1", 80, 10)]));
        let worker = spawn(&fake, &store, config());

        // Someone else starts a long task on the LB (a listener that is not ours).
        let other = fake.client();
        let foreign = tokio::spawn(async move {
            let l = NewListener {
                protocol: "UDP".into(),
                port: 34999,
                end_port: None,
                name: Some("not-ours".into()),
                attributes: ListenerAttributes::default(),
            };
            other.create_listeners(&lb(), &[l]).await
        });
        wait_until_async("the foreign create accepted", || async {
            fake.requests("CreateListener")
                .await
                .iter()
                .any(|r| r["result"] == "OK")
        })
        .await;
        worker.notify("default/a");
        wait_until("a Synced", || store.listener_id("default/a").is_some()).await;
        assert!(foreign.await.unwrap().is_ok());

        let busy = fake
            .requests("CreateListener")
            .await
            .iter()
            .filter(|r| r["result"] == "FailedOperation.ResourceInOperating")
            .count();
        assert!(busy >= 1, "the worker's create met the busy LB");
        let listeners = fake.listeners().await;
        assert_eq!(
            listeners[&34999]["name"], "not-ours",
            "foreign listener untouched"
        );
        assert_eq!(targets_of(&listeners[&34000]).len(), 1);
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn failed_task_is_reported_then_retried() {
        let fake = Fake::start("20ms").await;
        fake.faults(json!([
            {"action": "CreateListener", "count": 1,
             "effect": {"type": "failTask", "message": "backend cluster unavailable"}},
        ]))
        .await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 35000, &[("10.5.0.1", 80, 10)]));
        let worker = spawn(&fake, &store, config());
        worker.notify("default/a");
        wait_until("a Synced after a retry", || {
            store.listener_id("default/a").is_some()
        })
        .await;
        let history = store.history_of("default/a");
        let Outcome::NotSynced { message, .. } = &history[0] else {
            panic!("first outcome should be the failure: {history:?}");
        };
        assert!(
            message.contains("CreateListener") && message.contains("backend cluster unavailable"),
            "{message}"
        );
        assert!(matches!(history.last(), Some(Outcome::Synced { .. })));
        assert_eq!(fake.requests("CreateListener").await.len(), 2);
        assert_eq!(targets_of(&fake.listeners().await[&35000]).len(), 1);
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn port_check_failure_is_reread_at_once() {
        let fake = Fake::start("20ms").await;
        fake.faults(json!([
            {"action": "CreateListener", "count": 1,
             "effect": {"type": "error", "code": "InvalidParameter.PortCheckFailed",
                        "message": "port 35100 is in use"}},
        ]))
        .await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 35100, &[]));
        // A backoff far beyond the wait: only the immediate re-read can make this converge.
        let worker = spawn(
            &fake,
            &store,
            WorkerConfig {
                retry_initial: Duration::from_secs(600),
                retry_max: Duration::from_secs(600),
                ..config()
            },
        );
        worker.notify("default/a");
        wait_until("a Synced", || store.listener_id("default/a").is_some()).await;
        let history = store.history_of("default/a");
        assert!(
            matches!(&history[0], Outcome::NotSynced { code: Some(c), .. } if c == "InvalidParameter.PortCheckFailed"),
            "{history:?}"
        );
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn load_balancer_deleted_out_of_band() {
        let fake = Fake::start("20ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 36000, &[("10.6.0.1", 80, 10)]));
        let worker = spawn(&fake, &store, config());
        worker.notify("default/a");
        wait_until("a Synced", || store.listener_id("default/a").is_some()).await;

        fake.console(
            "delete-load-balancer",
            json!({"region": REGION, "loadBalancerId": LB}),
        )
        .await;
        store.delete("default/a");
        store.put(tcp("default/b", 36001, &[]));
        worker.notify("default/a");
        worker.notify("default/b");
        wait_until("a deleted, b NotSynced", || {
            store.is_deleted("default/a")
                && store.outcome("default/b").is_some_and(|o| o.is_failure())
        })
        .await;
        let Some(Outcome::NotSynced { code, message }) = store.outcome("default/b") else {
            unreachable!()
        };
        assert_eq!(code.as_deref(), Some("InvalidParameter.LBIdNotFound"));
        assert!(
            message.contains("does not exist") && message.contains(LB),
            "{message}"
        );
        assert!(
            fake.requests("DeleteLoadBalancerListeners")
                .await
                .is_empty()
        );
        worker.shutdown().await;
    }

    /// The worker plans target changes against its own record of the LB, without reading it: a deregister that
    /// finds the LB gone must still make every CR of the LB say so.
    #[tokio::test]
    async fn load_balancer_deleted_behind_the_workers_record() {
        let fake = Fake::start("20ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 36010, &[("10.6.0.1", 80, 10)]));
        store.put(tcp("default/b", 36011, &[("10.6.0.2", 80, 10)]));
        let worker = spawn(&fake, &store, config());
        worker.notify("default/a");
        worker.notify("default/b");
        wait_until("a and b Synced", || {
            store.listener_id("default/a").is_some() && store.listener_id("default/b").is_some()
        })
        .await;
        // One more target change, which the worker plans from its record: no read of the cloud.
        fake.clear_log().await;
        store.put(tcp(
            "default/a",
            36010,
            &[("10.6.0.1", 80, 10), ("10.6.0.3", 80, 10)],
        ));
        worker.notify("default/a");
        wait_until("the new target is in the cloud", || {
            store.history_of("default/a").len() >= 2
        })
        .await;
        let log = fake.log().await;
        assert!(
            log.iter()
                .all(|r| !r["action"].as_str().unwrap_or("").starts_with("Describe")),
            "a target change read the cloud: {log:?}"
        );

        fake.console(
            "delete-load-balancer",
            json!({"region": REGION, "loadBalancerId": LB}),
        )
        .await;
        store.put(tcp("default/a", 36010, &[("10.6.0.1", 80, 10)]));
        worker.notify("default/a");
        wait_until("a and b NotSynced", || {
            ["default/a", "default/b"]
                .iter()
                .all(|o| store.outcome(o).is_some_and(|o| o.is_failure()))
        })
        .await;
        for owner in ["default/a", "default/b"] {
            let Some(Outcome::NotSynced { message, .. }) = store.outcome(owner) else {
                unreachable!()
            };
            assert!(message.contains("does not exist"), "{owner}: {message}");
        }
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn changes_during_a_slow_pass_land_in_one_following_pass() {
        let fake = Fake::start("800ms").await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/first", 37000, &[]));
        let worker = spawn(&fake, &store, config());
        worker.notify("default/first");
        // The first pass is in flight once its create has been accepted (its task runs 800 ms).
        wait_until_async("the first create accepted", || async {
            !fake.requests("CreateListener").await.is_empty()
        })
        .await;
        let later = owners(5);
        for (i, o) in later.iter().enumerate() {
            store.put(tcp(o, 37001 + i as u16, &[]));
            worker.notify(o.clone());
        }
        let mut everyone = later.clone();
        everyone.push("default/first".into());
        wait_until("all Synced", || store.all_synced(&everyone)).await;

        let creates = fake.requests("CreateListener").await;
        let ports: Vec<usize> = creates
            .iter()
            .map(|r| r["params"]["Ports"].as_array().unwrap().len())
            .collect();
        assert_eq!(
            ports,
            vec![1, 5],
            "one lone create, then one coalesced create"
        );
        wait_until("the second pass counted", || worker.passes() >= 2).await;
        assert_eq!(worker.passes(), 2);
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn pool_runs_one_worker_per_load_balancer_and_shuts_down() {
        let fake = Fake::start("20ms").await;
        fake.console(
            "create-load-balancer",
            json!({"secretId": SECRET_ID, "region": REGION, "id": "lb-00000002",
                   "name": "second", "type": "OPEN", "vips": ["2.2.2.2"]}),
        )
        .await;
        let store = Arc::new(Store::default());
        store.put(tcp("default/a", 38000, &[]));
        let pool = WorkerPool::new(fake.client(), store.clone(), store.clone(), config());
        let second = LbRef::new(REGION, "lb-00000002");
        pool.notify(&lb(), "default/a");
        pool.notify(&lb(), "default/a");
        pool.notify(&second, "default/a");
        wait_until("a Synced", || store.listener_id("default/a").is_some()).await;
        wait_until("a pass on the second LB", || pool.passes(&second) >= 1).await;
        let mut lbs = pool.load_balancers();
        lbs.sort_by(|a, b| a.lb_id.cmp(&b.lb_id));
        assert_eq!(lbs, vec![lb(), second]);
        pool.shutdown().await;
        assert!(pool.load_balancers().is_empty());
    }

    // ---------------------------------------------------------------------------------------
    // L7 (HTTP/HTTPS): targets live on rules
    // ---------------------------------------------------------------------------------------

    fn targets(list: &[(&str, u16, u16)]) -> TargetSet {
        list.iter()
            .map(|(ip, p, w)| Target::new(*ip, *p, *w))
            .collect()
    }

    fn rule(domain: &str, url: &str, backends: &[(&str, u16, u16)]) -> DesiredRule {
        DesiredRule {
            key: RuleKey::new(domain, url),
            attributes: None,
            certificate: None,
            targets: targets(backends),
        }
    }

    fn l7(owner: &str, protocol: Protocol, port: u16, rules: Vec<DesiredRule>) -> DesiredListener {
        let mut d = DesiredListener::new(owner, ListenerKey::single(protocol, port));
        d.rules = rules;
        d
    }

    fn cert(cert_id: &str) -> Certificate {
        Certificate {
            mode: "UNIDIRECTIONAL".into(),
            cert_id: cert_id.into(),
            ca_cert_id: None,
        }
    }

    /// `domain+url -> rule` of a listener in the state dump.
    fn rules_of(listener: &Value) -> BTreeMap<String, Value> {
        listener["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    format!(
                        "{}{}",
                        r["domain"].as_str().unwrap(),
                        r["url"].as_str().unwrap()
                    ),
                    r.clone(),
                )
            })
            .collect()
    }

    fn expect_targets(list: &[(&str, i64)]) -> BTreeMap<String, i64> {
        list.iter().map(|(ep, w)| (ep.to_string(), *w)).collect()
    }

    /// The mutating calls in fake-clb's log.
    async fn mutations(fake: &Fake) -> Vec<Value> {
        fake.log()
            .await
            .into_iter()
            .filter(|r| MUTATIONS.contains(&r["action"].as_str().unwrap_or("")))
            .collect()
    }

    /// One full resync pass, asserting it read the LB and changed nothing.
    async fn assert_noop_resync(fake: &Fake, worker: &LbWorker) {
        fake.clear_log().await;
        let passes = worker.passes();
        worker.resync();
        wait_until("a resync pass", || worker.passes() > passes).await;
        let log = fake.log().await;
        assert!(log.iter().any(|r| r["action"] == "DescribeListeners"));
        let changed = mutations(fake).await;
        assert!(changed.is_empty(), "{changed:#?}");
    }

    /// The HTTP listener of the L7 tests: two rules with targets.
    fn web(port: u16) -> DesiredListener {
        l7(
            "default/web",
            Protocol::Http,
            port,
            vec![
                rule(
                    "a.example.com",
                    "/api",
                    &[("10.7.0.1", 80, 10), ("10.7.0.2", 80, 20)],
                ),
                rule("b.example.com", "/", &[("10.7.0.3", 8080, 10)]),
            ],
        )
    }

    /// Starts fake-clb and a worker and syncs [`web`] once.
    async fn web_synced(port: u16) -> (Fake, Arc<Store>, LbWorker) {
        let fake = Fake::start("50ms").await;
        let store = Arc::new(Store::default());
        store.put(web(port));
        let worker = spawn(&fake, &store, config());
        worker.notify("default/web");
        wait_until("web Synced", || store.listener_id("default/web").is_some()).await;
        (fake, store, worker)
    }

    #[tokio::test]
    async fn http_listener_with_rules_is_created_in_one_pass() {
        let (fake, store, worker) = web_synced(40080).await;
        let id = store.listener_id("default/web").unwrap();
        assert_eq!(
            store.history_of("default/web"),
            vec![Outcome::Synced {
                listener_id: id.clone()
            }],
            "synced in the first pass"
        );

        let creates = fake.requests("CreateListener").await;
        assert_eq!(creates.len(), 1, "{creates:#?}");
        assert_eq!(creates[0]["params"]["Protocol"], "HTTP");
        assert_eq!(creates[0]["params"]["Ports"], json!([40080]));
        let create_rules = fake.requests("CreateRule").await;
        assert_eq!(create_rules.len(), 1, "{create_rules:#?}");
        assert_eq!(create_rules[0]["result"], "OK");
        assert_eq!(create_rules[0]["params"]["ListenerId"], id.as_str());
        let mut asked: Vec<String> = create_rules[0]["params"]["Rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}{}",
                    r["Domain"].as_str().unwrap(),
                    r["Url"].as_str().unwrap()
                )
            })
            .collect();
        asked.sort();
        assert_eq!(asked, ["a.example.com/api", "b.example.com/"]);

        let listeners = fake.listeners().await;
        assert_eq!(listeners.len(), 1);
        let l = &listeners[&40080];
        assert_eq!(l["listenerId"], id.as_str());
        assert_eq!(l["protocol"], "HTTP");
        assert!(
            l["targets"].as_array().unwrap().is_empty(),
            "L7 binds on rules"
        );
        let rules = rules_of(l);
        assert_eq!(rules.len(), 2);
        assert_eq!(
            targets_of(&rules["a.example.com/api"]),
            expect_targets(&[("10.7.0.1:80", 10), ("10.7.0.2:80", 20)])
        );
        assert_eq!(
            targets_of(&rules["b.example.com/"]),
            expect_targets(&[("10.7.0.3:8080", 10)])
        );

        // One register call binds all three targets, each on its rule's LocationId.
        let registers = fake.requests("BatchRegisterTargets").await;
        assert_eq!(registers.len(), 1, "{registers:#?}");
        assert_eq!(registers[0]["result"], "OK");
        let sent = registers[0]["params"]["Targets"].as_array().unwrap();
        assert_eq!(sent.len(), 3);
        for t in sent {
            let location = t["LocationId"]
                .as_str()
                .expect("LocationId on an L7 target");
            let on = rules
                .values()
                .find(|r| r["locationId"] == location)
                .expect("LocationId of a created rule");
            let endpoint = format!("{}:{}", t["EniIp"].as_str().unwrap(), t["Port"]);
            assert!(targets_of(on).contains_key(&endpoint), "{endpoint} on {on}");
            assert_eq!(t["ListenerId"], id.as_str());
        }
        assert_noop_resync(&fake, &worker).await;
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn http_rule_changes_converge() {
        let (fake, store, worker) = web_synced(40180).await;
        let id = store.listener_id("default/web").unwrap();
        let before = rules_of(&fake.listeners().await[&40180]);
        let a_location = before["a.example.com/api"]["locationId"].clone();
        let b_location = before["b.example.com/"]["locationId"].clone();

        // a: new scheduler and session expiry; drop 10.7.0.1, reweigh 10.7.0.2, add 10.7.0.4.
        // b: removed. c: added with a target.
        store.edit("default/web", |d| {
            d.rules = vec![
                DesiredRule {
                    attributes: Some(Attributes {
                        session_expire_time: 60,
                        scheduler: Some(Scheduler::LeastConn),
                        health_check: None,
                    }),
                    ..rule(
                        "a.example.com",
                        "/api",
                        &[("10.7.0.2", 80, 50), ("10.7.0.4", 80, 10)],
                    )
                },
                rule("c.example.com", "/v1", &[("10.7.0.5", 9000, 30)]),
            ];
        });
        fake.clear_log().await;
        worker.notify("default/web");
        wait_until("web Synced again", || {
            store.listener_id("default/web").is_some()
        })
        .await;
        assert_eq!(store.listener_id("default/web"), Some(id.clone()));

        let l = &fake.listeners().await[&40180];
        let rules = rules_of(l);
        assert_eq!(
            rules.keys().map(String::as_str).collect::<Vec<_>>(),
            ["a.example.com/api", "c.example.com/v1"]
        );
        let a = &rules["a.example.com/api"];
        assert_eq!(a["locationId"], a_location, "rule a modified in place");
        assert_eq!(a["scheduler"], "LEAST_CONN");
        assert_eq!(a["sessionExpireTime"], 60);
        assert_eq!(
            targets_of(a),
            expect_targets(&[("10.7.0.2:80", 50), ("10.7.0.4:80", 10)])
        );
        assert_eq!(
            targets_of(&rules["c.example.com/v1"]),
            expect_targets(&[("10.7.0.5:9000", 30)])
        );

        let modify = fake.requests("ModifyRule").await;
        assert_eq!(modify.len(), 1, "{modify:#?}");
        assert_eq!(modify[0]["params"]["LocationId"], a_location);
        assert_eq!(modify[0]["params"]["Scheduler"], "LEAST_CONN");
        assert_eq!(modify[0]["params"]["SessionExpireTime"], 60);
        let deletes = fake.requests("DeleteRule").await;
        assert_eq!(deletes.len(), 1, "{deletes:#?}");
        assert_eq!(deletes[0]["params"]["LocationIds"], json!([b_location]));
        let creates = fake.requests("CreateRule").await;
        assert_eq!(creates.len(), 1, "{creates:#?}");
        assert_eq!(creates[0]["params"]["Rules"].as_array().unwrap().len(), 1);
        assert_eq!(creates[0]["params"]["Rules"][0]["Domain"], "c.example.com");
        let deregister = fake.requests("BatchDeregisterTargets").await;
        assert_eq!(deregister.len(), 1, "{deregister:#?}");
        let gone = &deregister[0]["params"]["Targets"];
        assert_eq!(gone.as_array().unwrap().len(), 1, "{gone}");
        assert_eq!(gone[0]["ListenerId"], id.as_str());
        assert_eq!(gone[0]["LocationId"], a_location);
        assert_eq!(gone[0]["EniIp"], "10.7.0.1");
        assert_eq!(gone[0]["Port"], 80);
        let register = fake.requests("BatchRegisterTargets").await;
        assert_eq!(register.len(), 1, "{register:#?}");
        assert_eq!(
            register[0]["params"]["Targets"].as_array().unwrap().len(),
            2
        );
        let weights = fake.requests("BatchModifyTargetWeight").await;
        assert_eq!(weights.len(), 1, "{weights:#?}");
        assert_eq!(
            weights[0]["params"]["ModifyList"][0]["LocationId"],
            a_location
        );
        assert!(fake.requests("ModifyListener").await.is_empty());
        assert!(fake.requests("CreateListener").await.is_empty());
        for call in mutations(&fake).await {
            assert_eq!(call["result"], "OK", "{call}");
        }

        assert_noop_resync(&fake, &worker).await;
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn deleting_an_http_listener_removes_it_with_its_rules() {
        let (fake, store, worker) = web_synced(40280).await;
        let id = store.listener_id("default/web").unwrap();
        fake.clear_log().await;
        store.delete("default/web");
        worker.notify("default/web");
        wait_until("web Deleted", || store.is_deleted("default/web")).await;

        assert!(fake.listeners().await.is_empty());
        let deletes = fake.requests("DeleteLoadBalancerListeners").await;
        assert_eq!(deletes.len(), 1, "{deletes:#?}");
        assert_eq!(deletes[0]["params"]["ListenerIds"], json!([id]));
        assert_eq!(deletes[0]["result"], "OK");
        let changed = mutations(&fake).await;
        assert_eq!(
            changed.len(),
            1,
            "rules and targets go with the listener: {changed:#?}"
        );
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn https_listener_certificate_change_modifies_the_listener() {
        let fake = Fake::start("50ms").await;
        let store = Arc::new(Store::default());
        let mut d = l7(
            "default/tls",
            Protocol::Https,
            40443,
            vec![rule("secure.example.com", "/", &[("10.8.0.1", 443, 10)])],
        );
        d.certificate = Some(cert("cert-aaaa0001"));
        store.put(d);
        let worker = spawn(&fake, &store, config());
        worker.notify("default/tls");
        wait_until("tls Synced", || store.listener_id("default/tls").is_some()).await;
        let id = store.listener_id("default/tls").unwrap();

        let creates = fake.requests("CreateListener").await;
        assert_eq!(creates.len(), 1, "{creates:#?}");
        assert_eq!(creates[0]["params"]["Protocol"], "HTTPS");
        assert_eq!(
            creates[0]["params"]["Certificate"]["CertId"],
            "cert-aaaa0001"
        );
        assert_eq!(creates[0]["params"]["SniSwitch"], 0);
        let l = &fake.listeners().await[&40443];
        assert_eq!(l["protocol"], "HTTPS");
        assert_eq!(l["certificate"]["CertId"], "cert-aaaa0001");
        assert_eq!(l["certificate"]["SSLMode"], "UNIDIRECTIONAL");
        assert_eq!(
            targets_of(&rules_of(l)["secure.example.com/"]),
            expect_targets(&[("10.8.0.1:443", 10)])
        );
        assert_noop_resync(&fake, &worker).await;

        store.edit("default/tls", |d| {
            d.certificate = Some(cert("cert-bbbb0002"))
        });
        fake.clear_log().await;
        worker.notify("default/tls");
        wait_until("tls Synced again", || {
            store.listener_id("default/tls").is_some()
        })
        .await;
        assert_eq!(store.listener_id("default/tls"), Some(id.clone()));
        let changed = mutations(&fake).await;
        assert_eq!(
            changed.len(),
            1,
            "only the certificate changes: {changed:#?}"
        );
        assert_eq!(changed[0]["action"], "ModifyListener");
        assert_eq!(changed[0]["params"]["ListenerId"], id.as_str());
        assert_eq!(
            changed[0]["params"]["Certificate"]["CertId"],
            "cert-bbbb0002"
        );
        let l = &fake.listeners().await[&40443];
        assert_eq!(l["listenerId"], id.as_str());
        assert_eq!(l["certificate"]["CertId"], "cert-bbbb0002");
        assert_noop_resync(&fake, &worker).await;
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn https_sni_domain_certificates_are_set_and_changed_per_domain() {
        let fake = Fake::start("50ms").await;
        let store = Arc::new(Store::default());
        let with_cert = |r: DesiredRule, id: &str| DesiredRule {
            certificate: Some(cert(id)),
            ..r
        };
        let mut d = l7(
            "default/sni",
            Protocol::Https,
            40444,
            vec![
                with_cert(
                    rule("x.example.com", "/", &[("10.9.0.1", 443, 10)]),
                    "cert-x0000001",
                ),
                with_cert(
                    rule("x.example.com", "/admin", &[("10.9.0.2", 443, 10)]),
                    "cert-x0000001",
                ),
                with_cert(
                    rule("y.example.com", "/", &[("10.9.0.3", 443, 10)]),
                    "cert-y0000001",
                ),
            ],
        );
        d.sni_switch = true;
        store.put(d);
        let worker = spawn(&fake, &store, config());
        worker.notify("default/sni");
        wait_until("sni Synced", || store.listener_id("default/sni").is_some()).await;
        let id = store.listener_id("default/sni").unwrap();

        let creates = fake.requests("CreateListener").await;
        assert_eq!(creates.len(), 1, "{creates:#?}");
        assert_eq!(creates[0]["params"]["SniSwitch"], 1);
        assert!(
            creates[0]["params"].get("Certificate").is_none(),
            "SNI: no listener certificate"
        );
        let l = &fake.listeners().await[&40444];
        assert_eq!(l["sniSwitch"], 1);
        let rules = rules_of(l);
        let cert_of = |key: &str| rules[key]["certificate"]["CertId"].clone();
        assert_eq!(cert_of("x.example.com/"), "cert-x0000001");
        assert_eq!(cert_of("x.example.com/admin"), "cert-x0000001");
        assert_eq!(cert_of("y.example.com/"), "cert-y0000001");
        assert_eq!(
            targets_of(&rules["y.example.com/"]),
            expect_targets(&[("10.9.0.3:443", 10)])
        );
        assert_noop_resync(&fake, &worker).await;

        // Domain x gets a new certificate: one call for the domain, not one per rule.
        store.edit("default/sni", |d| {
            for r in d
                .rules
                .iter_mut()
                .filter(|r| r.key.domain == "x.example.com")
            {
                r.certificate = Some(cert("cert-x0000002"));
            }
        });
        fake.clear_log().await;
        worker.notify("default/sni");
        wait_until("sni Synced again", || {
            store.listener_id("default/sni").is_some()
        })
        .await;
        assert_eq!(store.listener_id("default/sni"), Some(id.clone()));
        let changed = mutations(&fake).await;
        assert_eq!(changed.len(), 1, "{changed:#?}");
        assert_eq!(changed[0]["action"], "ModifyDomainAttributes");
        assert_eq!(changed[0]["result"], "OK");
        assert_eq!(changed[0]["params"]["Domain"], "x.example.com");
        assert_eq!(
            changed[0]["params"]["Certificate"]["CertId"],
            "cert-x0000002"
        );
        let rules = rules_of(&fake.listeners().await[&40444]);
        let cert_of = |key: &str| rules[key]["certificate"]["CertId"].clone();
        assert_eq!(cert_of("x.example.com/"), "cert-x0000002");
        assert_eq!(cert_of("x.example.com/admin"), "cert-x0000002");
        assert_eq!(cert_of("y.example.com/"), "cert-y0000001");
        assert_noop_resync(&fake, &worker).await;
        worker.shutdown().await;
    }

    /// Between full reads a pass asks DescribeTargets only about listeners the previous pass changed; a resync
    /// reads them all again and so repairs a target removed in the console.
    #[tokio::test]
    async fn passes_between_full_reads_only_read_targets_they_changed() {
        let fake = Fake::start("20ms").await;
        let store = Arc::new(Store::default());
        let owners = owners(30);
        for (i, o) in owners.iter().enumerate() {
            store.put(tcp(
                o,
                32000 + i as u16,
                &[(&format!("10.2.0.{}", i + 1), 80, 10)],
            ));
        }
        let worker = spawn(
            &fake,
            &store,
            WorkerConfig {
                target_cache_ttl: Duration::from_secs(600),
                ..config()
            },
        );
        for o in &owners {
            worker.notify(o.clone());
        }
        wait_until("30 listeners Synced", || store.all_synced(&owners)).await;
        let passes = worker.passes();

        // One more target on l-3: the next pass reads the targets of l-3 only (the others are unchanged since
        // the pass that created them, which forgot the ones it touched).
        let changed = &owners[3];
        let l3_id = store.listener_id(changed).expect("l-3 has an id");
        let mut more = tcp(
            changed,
            32003,
            &[("10.2.0.4", 80, 10), ("10.2.9.9", 80, 10)],
        );
        more.known_listener_id = Some(l3_id.clone());
        store.put(more);
        worker.notify(changed.clone());
        wait_until_async("l-3 has two targets", || async {
            targets_of(&fake.listeners().await[&32003]).len() == 2
        })
        .await;
        wait_until("the pass is over", || worker.passes() > passes).await;
        // After the change is in place, a pass for l-3 reads only l-3's targets.
        fake.clear_log().await;
        let before = worker.passes();
        worker.notify(changed.clone());
        wait_until("a pass", || worker.passes() > before).await;
        let reads = fake.requests("DescribeTargets").await;
        let asked: Vec<Value> = reads
            .iter()
            .flat_map(|r| {
                r["params"]["ListenerIds"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            asked.len() <= 1,
            "asked for {} listeners' targets: {asked:?}",
            asked.len()
        );
        let listed = fake.requests("DescribeListeners").await;
        assert!(
            listed.is_empty(),
            "a targets-only pass listed the listeners: {listed:#?}"
        );
        assert!(
            asked.iter().all(|id| id == &Value::from(l3_id.clone())),
            "{asked:?}"
        );

        // A target removed in the console is not seen from the cache, but a resync reads everything and
        // puts it back.
        let l5_id = store.listener_id(&owners[5]).expect("l-5 has an id");
        fake.console(
            "delete-target",
            json!({"loadBalancerId": LB, "listenerId": l5_id, "ip": "10.2.0.6", "port": 80}),
        )
        .await;
        worker.resync();
        wait_until_async("the resync restores l-5's target", || async {
            targets_of(&fake.listeners().await[&32005]).len() == 1
        })
        .await;
        worker.shutdown().await;
    }
}
