//! Leader election on a `coordination.k8s.io/v1` Lease (kube-rs ships none).
//!
//! The protocol is client-go's: a candidate takes the Lease when it is free or its holder has not renewed it for
//! `lease_duration`, measured on the **local** monotonic clock from the moment this process last saw the record
//! change (so clock skew between nodes does not matter); every write carries the `resourceVersion` it read, so of
//! two candidates only one wins (the other gets 409 Conflict). The leader renews every `retry_period` and steps down
//! when it has not renewed successfully for `renew_deadline` (< `lease_duration`, so it stops working before a
//! follower may take over). On shutdown the leader releases the Lease so a follower takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the Lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease (bcs: `--election_namespace`, default `bcs-system`).
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The leader steps down when it could not renew for this long.
    pub renew_deadline: Duration,
    /// Time between acquire / renew attempts.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// client-go's defaults (15 s / 10 s / 2 s).
    pub fn new(namespace: &str, lease_name: &str, identity: &str) -> Self {
        LeaderElectionConfig {
            namespace: namespace.to_string(),
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The part of the Lease record whose change proves its holder is alive.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    transitions: i32,
}

/// Runs the acquire / renew loop; `is_leader` follows the outcome.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// Last record seen and when (local clock).
    observed: Option<(Record, Instant)>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaderElectionConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Campaigns until `shutdown` turns true; publishes leadership changes on `is_leader`. A leader that loses the
    /// Lease publishes `false` and campaigns again.
    pub async fn run(
        mut self,
        is_leader: watch::Sender<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let retry = self.config.retry_period;
        loop {
            // Candidate.
            loop {
                match self.try_acquire_or_renew().await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: acquiring the lease failed")
                    }
                }
                if wait_or_shutdown(retry, &mut shutdown).await {
                    return;
                }
            }
            tracing::info!(
                lease = %self.config.lease_name,
                identity = %self.config.identity,
                "became leader"
            );
            is_leader.send_replace(true);

            // Leader.
            let mut last_renewed = Instant::now();
            loop {
                if wait_or_shutdown(retry, &mut shutdown).await {
                    is_leader.send_replace(false);
                    self.release().await;
                    return;
                }
                match self.try_acquire_or_renew().await {
                    Ok(true) => last_renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!("leader election: another replica holds the lease");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: renewing the lease failed")
                    }
                }
                if last_renewed.elapsed() > self.config.renew_deadline {
                    tracing::warn!("leader election: renew deadline passed");
                    break;
                }
            }
            tracing::warn!(lease = %self.config.lease_name, "lost leadership; stopping work");
            is_leader.send_replace(false);
        }
    }

    /// One attempt: `Ok(true)` when we hold the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };

        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = Record {
            holder: holder.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        };
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record.clone(), at));
                at
            }
        };
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(other) = holder.as_deref().filter(|_| !ours) {
            let valid_for = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(duration_secs)).unwrap_or(0),
            );
            if observed_at.elapsed() < valid_for {
                tracing::debug!(holder = other, "lease held by another replica");
                return Ok(false);
            }
        }

        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(duration_secs),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || holder.is_none() {
                record.transitions
            } else {
                record.transitions + 1
            }),
            ..spec
        });
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up so a follower does not wait for it to expire. Best effort.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.lease_name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.lease_name, "released the lease"),
            Err(e) => tracing::warn!(error = %e, "releasing the lease failed"),
        }
    }
}

/// 409: AlreadyExists on create, Conflict on a stale resourceVersion.
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Sleeps for `d`; true when shutdown was requested meanwhile (or the sender is gone).
pub(crate) async fn wait_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => true,
    }
}
