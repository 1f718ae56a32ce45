//! Load balancers: DescribeLoadBalancers, CreateLoadBalancer, DeleteLoadBalancer, DescribeQuota, the
//! console operations and the state dump.

use super::*;

impl State {
    pub(super) fn describe_load_balancers(
        &self,
        ctx: &Ctx,
        r: model::DescribeLoadBalancersRequest,
    ) -> Result<Value, ApiError> {
        let mut lbs: Vec<&LoadBalancer> = self
            .region(ctx)
            .map(|g| g.load_balancers.values().collect())
            .unwrap_or_default();
        if let Some(ids) = &r.load_balancer_ids {
            lbs.retain(|lb| ids.contains(&lb.load_balancer_id));
        }
        if let Some(t) = &r.load_balancer_type {
            lbs.retain(|lb| lb.lb_type.eq_ignore_ascii_case(t));
        }
        if let Some(f) = r.forward
            && f != 1
        {
            lbs.clear();
        }
        if let Some(n) = &r.load_balancer_name {
            lbs.retain(|lb| lb.name.contains(n.as_str()));
        }
        if let Some(vips) = &r.load_balancer_vips {
            lbs.retain(|lb| lb.vips.iter().any(|v| vips.contains(v)));
        }
        if let Some(k) = &r.search_key {
            lbs.retain(|lb| {
                lb.name.contains(k.as_str())
                    || lb.load_balancer_id.contains(k.as_str())
                    || lb.vips.iter().any(|v| v.contains(k.as_str()))
            });
        }
        for f in r.filters.iter().flatten() {
            if let Some(key) = f.name.strip_prefix("tag:") {
                lbs.retain(|lb| {
                    lb.tags
                        .iter()
                        .any(|t| t.tag_key == key && f.values.contains(&t.tag_value))
                });
            } else if f.name == "tag-key" {
                lbs.retain(|lb| lb.tags.iter().any(|t| f.values.contains(&t.tag_key)));
            } else if !matches!(
                f.name.as_str(),
                "charge-type"
                    | "internet-charge-type"
                    | "master-zone-id"
                    | "function-name"
                    | "vip-isp"
                    | "sla-type"
                    | "exclusive"
            ) {
                return Err(err(
                    ErrorCode::InvalidParameterValueInvalidFilter,
                    format!("Filter name `{}` is not supported.", f.name),
                ));
            }
        }
        let order_by = r.order_by.as_deref().unwrap_or("CreateTime");
        match order_by {
            "LoadBalancerName" => lbs.sort_by(|a, b| a.name.cmp(&b.name)),
            "LoadBalancerType" => lbs.sort_by(|a, b| a.lb_type.cmp(&b.lb_type)),
            _ => lbs.sort_by(|a, b| {
                (a.created_ms, &a.load_balancer_id).cmp(&(b.created_ms, &b.load_balancer_id))
            }),
        }
        if r.order_type.unwrap_or(1) == 1 {
            lbs.reverse();
        }
        let total = lbs.len();
        let offset = r.offset.unwrap_or(0).max(0) as usize;
        let limit = r.limit.unwrap_or(20).clamp(0, 100) as usize;
        let want_count = r
            .additional_fields
            .iter()
            .flatten()
            .any(|f| f == "TargetCount");
        let set: Vec<model::LoadBalancer> = lbs
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|lb| lb_output(lb, ctx.region, want_count))
            .collect();
        Ok(to_value(&model::DescribeLoadBalancersResponse {
            total_count: total as i64,
            load_balancer_set: set,
            request_id: String::new(),
        }))
    }

    pub(super) fn count_lbs(&self, ctx: &Ctx, lb_type: &str) -> usize {
        self.region(ctx).map_or(0, |g| {
            g.load_balancers
                .values()
                .filter(|lb| lb.lb_type == lb_type)
                .count()
        })
    }

    pub(super) fn create_load_balancer(
        &mut self,
        ctx: &Ctx,
        r: model::CreateLoadBalancerRequest,
    ) -> Result<Value, ApiError> {
        let lb_type = r.load_balancer_type.to_ascii_uppercase();
        if lb_type != "OPEN" && lb_type != "INTERNAL" {
            return Err(invalid_value("LoadBalancerType should be OPEN or INTERNAL"));
        }
        if r.forward.is_some_and(|f| f != 1) {
            return Err(err(
                ErrorCode::UnsupportedOperation,
                "Only Forward=1 (CLB) can be created.",
            ));
        }
        if lb_type == "INTERNAL" && r.vpc_id.is_none() {
            return Err(ApiError::missing_parameter("VpcId"));
        }
        if let Some(name) = &r.load_balancer_name {
            check_name(name, "LoadBalancerName")?;
        }
        if let Some(token) = &r.client_token {
            if token.len() > 64 {
                return Err(err(
                    ErrorCode::InvalidParameterValueLength,
                    "ClientToken is longer than 64.",
                ));
            }
            if let Some(prev) = self
                .accounts
                .get(ctx.secret_id)
                .and_then(|a| a.client_tokens.get(token))
            {
                return Ok(to_value(&model::CreateLoadBalancerResponse {
                    load_balancer_ids: prev.load_balancer_ids.clone(),
                    deal_name: Some(prev.deal_name.clone()),
                    request_id: String::new(),
                }));
            }
        }
        let number = r.number.unwrap_or(1).max(1) as usize;
        if self.count_lbs(ctx, &lb_type) + number > ctx.limits.load_balancers_per_region {
            return Err(err(
                ErrorCode::LimitExceeded,
                format!(
                    "The number of {lb_type} load balancers exceeds the quota {}.",
                    ctx.limits.load_balancers_per_region
                ),
            ));
        }
        let mut ids = Vec::new();
        for _ in 0..number {
            let id = self.next_id("lb");
            let n = self.next_number();
            let vip = if lb_type == "OPEN" {
                format!("203.0.{}.{}", (n / 256) % 256, n % 254 + 1)
            } else {
                format!(
                    "10.{}.{}.{}",
                    (n / 65536) % 256,
                    (n / 256) % 256,
                    n % 254 + 1
                )
            };
            let lb = LoadBalancer {
                load_balancer_id: id.clone(),
                name: r.load_balancer_name.clone().unwrap_or_else(|| id.clone()),
                lb_type: lb_type.clone(),
                vips: vec![r.vip.clone().unwrap_or(vip)],
                status: 0,
                vpc_id: r.vpc_id.clone().unwrap_or_else(|| "vpc-00000000".into()),
                tags: r
                    .tags
                    .iter()
                    .flatten()
                    .map(|t| Tag {
                        tag_key: t.tag_key.clone(),
                        tag_value: t.tag_value.clone(),
                    })
                    .collect(),
                created_ms: ctx.now_ms,
                listeners: Vec::new(),
                current_task: Some(ctx.request_id.to_string()),
                busy_until_ms: 0,
            };
            self.region_mut(ctx).load_balancers.insert(id.clone(), lb);
            ids.push(id);
        }
        let deal_name = format!("2026{:019}", self.next_number());
        let mut task = self.new_task(
            ctx,
            "CreateLoadBalancer",
            None,
            ctx.limits.load_balancer_create_duration.as_millis() as u64,
            Some(Rollback::Remove(ids.clone())),
        );
        task.load_balancer_ids = ids.clone();
        task.deal_name = Some(deal_name.clone());
        self.insert_task(ctx, task);
        if let Some(token) = &r.client_token {
            self.accounts
                .entry(ctx.secret_id.to_string())
                .or_default()
                .client_tokens
                .insert(
                    token.clone(),
                    ClientTokenResult {
                        load_balancer_ids: ids.clone(),
                        deal_name: deal_name.clone(),
                    },
                );
        }
        Ok(to_value(&model::CreateLoadBalancerResponse {
            load_balancer_ids: ids,
            deal_name: Some(deal_name),
            request_id: String::new(),
        }))
    }

    pub(super) fn delete_load_balancer(
        &mut self,
        ctx: &Ctx,
        r: model::DeleteLoadBalancerRequest,
    ) -> Result<Value, ApiError> {
        if r.load_balancer_ids.is_empty() {
            return Err(ApiError::missing_parameter("LoadBalancerIds"));
        }
        let missing: Vec<&str> = r
            .load_balancer_ids
            .iter()
            .filter(|id| self.lb(ctx, id).is_err())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::lb_not_found(&missing));
        }
        for id in &r.load_balancer_ids {
            let lb = self.lb(ctx, id)?;
            if self.is_busy(ctx, lb) {
                return Err(ApiError::resource_in_operating(id));
            }
        }
        let mut removed = Vec::new();
        let region = self.region_mut(ctx);
        for id in &r.load_balancer_ids {
            if let Some(lb) = region.load_balancers.remove(id) {
                removed.push(lb);
            }
        }
        let task = self.new_task(
            ctx,
            "DeleteLoadBalancer",
            r.load_balancer_ids.first().map(String::as_str),
            ctx.limits.task_duration.as_millis() as u64,
            Some(Rollback::Restore(removed)),
        );
        self.insert_task(ctx, task);
        Ok(json!({}))
    }

    pub(super) fn describe_quota(&self, ctx: &Ctx) -> Value {
        let l = ctx.limits;
        let q = |id: &str, current: Option<usize>, limit: usize| model::Quota {
            quota_id: id.to_string(),
            quota_current: current.map(|c| c as i64),
            quota_limit: limit as i64,
        };
        to_value(&model::DescribeQuotaResponse {
            quota_set: vec![
                q(
                    "TOTAL_OPEN_CLB_QUOTA",
                    Some(self.count_lbs(ctx, "OPEN")),
                    l.load_balancers_per_region,
                ),
                q(
                    "TOTAL_INTERNAL_CLB_QUOTA",
                    Some(self.count_lbs(ctx, "INTERNAL")),
                    l.load_balancers_per_region,
                ),
                q("TOTAL_LISTENER_QUOTA", None, l.listeners_per_load_balancer),
                q("TOTAL_LISTENER_RULE_QUOTA", None, l.rules_per_listener),
                q("TOTAL_TARGET_BIND_QUOTA", None, l.targets_per_listener),
            ],
            request_id: String::new(),
        })
    }

    /// Finds which account/region holds an LB (console operations without a secretId).
    pub fn locate_lb(
        &self,
        secret_id: Option<&str>,
        region: Option<&str>,
        lb_id: &str,
    ) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (sid, account) in &self.accounts {
            if secret_id.is_some_and(|s| s != sid) {
                continue;
            }
            for (rname, reg) in &account.regions {
                if region.is_some_and(|r| r != rname) {
                    continue;
                }
                if reg.load_balancers.contains_key(lb_id) {
                    found.push((sid.clone(), rname.clone()));
                }
            }
        }
        found
    }

    /// Mutable access to an LB for out-of-band (console) changes.
    pub fn lb_mut(
        &mut self,
        secret_id: &str,
        region: &str,
        lb_id: &str,
    ) -> Option<&mut LoadBalancer> {
        self.accounts
            .get_mut(secret_id)?
            .regions
            .get_mut(region)?
            .load_balancers
            .get_mut(lb_id)
    }

    pub fn remove_lb(
        &mut self,
        secret_id: &str,
        region: &str,
        lb_id: &str,
    ) -> Option<LoadBalancer> {
        self.accounts
            .get_mut(secret_id)?
            .regions
            .get_mut(region)?
            .load_balancers
            .remove(lb_id)
    }

    /// Adds a running LB instantly (console creation).
    pub fn insert_lb(&mut self, secret_id: &str, region: &str, lb: LoadBalancer) {
        self.accounts
            .entry(secret_id.to_string())
            .or_default()
            .regions
            .entry(region.to_string())
            .or_default()
            .load_balancers
            .insert(lb.load_balancer_id.clone(), lb);
    }

    /// The `/_fake/state` view: no secrets, no rollback snapshots.
    pub fn dump(&self, secret_id: Option<&str>, region: Option<&str>) -> StateDump {
        let accounts = self
            .accounts
            .iter()
            .filter(|(sid, _)| secret_id.is_none_or(|s| s == sid.as_str()))
            .map(|(sid, a)| AccountDump {
                secret_id: sid.clone(),
                app_id: a.app_id,
                regions: a
                    .regions
                    .iter()
                    .filter(|(r, _)| region.is_none_or(|x| x == r.as_str()))
                    .map(|(r, g)| (r.clone(), region_dump(g)))
                    .collect(),
            })
            .collect();
        StateDump { accounts }
    }
}

pub(super) fn region_dump(g: &Region) -> RegionDump {
    RegionDump {
        load_balancers: g.load_balancers.values().cloned().collect(),
        tasks: g
            .tasks
            .values()
            .map(|t| TaskDump {
                task_id: t.task_id.clone(),
                action: t.action.clone(),
                load_balancer_id: t.load_balancer_id.clone(),
                load_balancer_ids: t.load_balancer_ids.clone(),
                status: t.status(),
                message: t.fail_message.clone(),
                created_ms: t.created_ms,
                done_ms: t.done_ms,
            })
            .collect(),
    }
}

pub(super) fn lb_output(lb: &LoadBalancer, region: &str, want_count: bool) -> model::LoadBalancer {
    let targets: usize = lb
        .listeners
        .iter()
        .map(|l| l.targets.len() + l.rules.iter().map(|r| r.targets.len()).sum::<usize>())
        .sum();
    model::LoadBalancer {
        load_balancer_id: lb.load_balancer_id.clone(),
        load_balancer_name: lb.name.clone(),
        load_balancer_type: lb.lb_type.clone(),
        forward: 1,
        domain: Some(String::new()),
        load_balancer_domain: Some(format!(
            "{}.clb.{region}.tencentclb.com",
            lb.load_balancer_id
        )),
        load_balancer_vips: lb.vips.clone(),
        address_ipv6: None,
        address_ip_version: Some("ipv4".into()),
        status: lb.status,
        create_time: Some(fmt_time(lb.created_ms)),
        status_time: Some(fmt_time(lb.created_ms)),
        project_id: Some(0),
        open_bgp: Some(0),
        snat: Some(false),
        isolation: Some(0),
        vpc_id: Some(lb.vpc_id.clone()),
        numerical_vpc_id: Some(0),
        target_region_info: Some(model::TargetRegionInfo {
            region: Some(region.into()),
            vpc_id: Some(lb.vpc_id.clone()),
            numerical_vpc_id: Some(0),
        }),
        subnet_id: Some(String::new()),
        secure_groups: Some(Vec::new()),
        tags: Some(
            lb.tags
                .iter()
                .map(|t| model::TagInfo {
                    tag_key: t.tag_key.clone(),
                    tag_value: t.tag_value.clone(),
                })
                .collect(),
        ),
        master_zone: Some(model::ZoneInfo {
            zone_id: Some(100003),
            zone: Some(format!("{region}-3")),
            zone_name: Some(String::new()),
            zone_region: Some(region.into()),
            local_zone: Some(false),
            edge_zone: Some(false),
        }),
        charge_type: Some("POSTPAID_BY_HOUR".into()),
        network_attributes: Some(model::NetworkAttributes {
            internet_charge_type: Some("TRAFFIC_POSTPAID_BY_HOUR".into()),
            internet_max_bandwidth_out: Some(10),
            bandwidthpkg_sub_type: None,
        }),
        load_balancer_pass_to_target: Some(false),
        is_d_dos: Some(false),
        snat_pro: Some(false),
        snat_ips: Some(Vec::new()),
        is_block: Some(false),
        sla_type: Some(String::new()),
        local_bgp: Some(false),
        mix_ip_target: Some(false),
        attribute_flags: Some(Vec::new()),
        vip_isp: Some("BGP".into()),
        egress: None,
        target_count: want_count.then_some(targets as i64),
    }
}
