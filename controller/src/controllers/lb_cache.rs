//! Load balancers resolved through the cloud (by id or by name), trusted for [`LB_CACHE_TTL`] so a resync of
//! many Ingresses or pools does not ask DescribeLoadBalancers again and again.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::cloud::{ClbClient, CloudError};
use crate::ingress::{LbKey, LbSelection, ResolvedLb};

/// How long a resolved load balancer is trusted before DescribeLoadBalancers is asked again.
const LB_CACHE_TTL: Duration = Duration::from_secs(60);

/// Resolved load balancers by id and by name, trusted for [`LB_CACHE_TTL`].
#[derive(Default)]
pub struct LbCache {
    by_id: HashMap<LbKey, (Instant, ResolvedLb)>,
    by_name: HashMap<LbKey, (Instant, ResolvedLb)>,
}

impl LbCache {
    pub async fn resolve(
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
pub enum ResolveError {
    #[error("load balancer {0} not found")]
    NotFound(String),
    #[error("load balancer name {0} matches {1} load balancers")]
    Ambiguous(String, usize),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}
