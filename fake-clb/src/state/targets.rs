//! Targets: (De)RegisterTargets, ModifyTargetWeight, the batch variants, DescribeTargets and
//! DescribeTargetHealth.

use super::*;

impl State {
    pub(super) fn targets_op(
        &mut self,
        ctx: &Ctx,
        action: &str,
        r: model::ModifyTargetWeightRequest,
    ) -> Result<Value, ApiError> {
        if r.targets.is_empty() {
            return Err(ApiError::missing_parameter("Targets"));
        }
        let keys = target_keys(&r.targets)?;
        let limits = ctx.limits;
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, action, &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            let list = target_list(
                l,
                r.location_id.as_deref(),
                r.domain.as_deref(),
                r.url.as_deref(),
            )?;
            for (key, t) in keys.iter().zip(&r.targets) {
                let weight = t.weight.or(r.weight);
                apply_target(list, action, key, weight, ctx.now_ms)?;
            }
            if list.len() > limits.targets_per_listener {
                return Err(err(
                    ErrorCode::LimitExceeded,
                    format!(
                        "The number of targets exceeds the quota {} (TOTAL_TARGET_BIND_QUOTA).",
                        limits.targets_per_listener
                    ),
                ));
            }
            Ok(json!({}))
        })
    }

    pub(super) fn batch_targets(
        &mut self,
        ctx: &Ctx,
        action: &str,
        r: model::BatchRegisterTargetsRequest,
    ) -> Result<Value, ApiError> {
        if r.targets.is_empty() {
            return Err(ApiError::missing_parameter("Targets"));
        }
        let mut seen = BTreeSet::new();
        for t in &r.targets {
            let key = target_key(t.instance_id.as_deref(), t.eni_ip.as_deref(), t.port)?;
            if !seen.insert((t.listener_id.clone(), t.location_id.clone(), key.clone())) {
                return Err(err(
                    ErrorCode::InvalidParameterValueDuplicate,
                    format!("Duplicate target {} in Targets.", key.describe()),
                ));
            }
        }
        let limits = ctx.limits;
        let lb_id = r.load_balancer_id.clone();
        let single = if action == "BatchRegisterTargets" {
            "RegisterTargets"
        } else {
            "DeregisterTargets"
        };
        let fail = self.mutate_lb(ctx, action, &lb_id, false, |_, lb| {
            // Whole-call checks first: every listener and rule must exist.
            for t in &r.targets {
                let l = find_listener(lb, &t.listener_id)?;
                target_list(l, t.location_id.as_deref(), None, None)?;
            }
            let mut failed: BTreeSet<String> = BTreeSet::new();
            let mut by_listener: BTreeMap<String, Vec<&model::BatchTarget>> = BTreeMap::new();
            for t in &r.targets {
                by_listener
                    .entry(t.listener_id.clone())
                    .or_default()
                    .push(t);
            }
            for (lid, targets) in by_listener {
                let l = find_listener(lb, &lid)?;
                let mut copy = l.clone();
                let mut ok = true;
                for t in &targets {
                    let key = target_key(t.instance_id.as_deref(), t.eni_ip.as_deref(), t.port)?;
                    let list = target_list(&mut copy, t.location_id.as_deref(), None, None)?;
                    if apply_target(list, single, &key, t.weight, ctx.now_ms).is_err()
                        || list.len() > limits.targets_per_listener
                    {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    *l = copy;
                } else {
                    failed.insert(lid);
                }
            }
            Ok(failed.into_iter().collect::<Vec<_>>())
        })?;
        let message = if fail.is_empty() {
            String::new()
        } else {
            "Some listeners failed; see FailListenerIdSet.".into()
        };
        Ok(to_value(&model::BatchRegisterTargetsResponse {
            fail_listener_id_set: fail,
            message: Some(message),
            request_id: String::new(),
        }))
    }

    pub(super) fn batch_modify_weight(
        &mut self,
        ctx: &Ctx,
        r: model::BatchModifyTargetWeightRequest,
    ) -> Result<Value, ApiError> {
        let total: usize = r.modify_list.iter().map(|m| m.targets.len()).sum();
        if total > limits::WEIGHT_TARGETS_TOTAL {
            return Err(clb_api::schema::length_error(
                "ModifyList.Targets",
                limits::WEIGHT_TARGETS_TOTAL,
            ));
        }
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "BatchModifyTargetWeight", &lb_id, true, |_, lb| {
            for m in &r.modify_list {
                let keys = target_keys(&m.targets)?;
                let l = find_listener(lb, &m.listener_id)?;
                let list = target_list(
                    l,
                    m.location_id.as_deref(),
                    m.domain.as_deref(),
                    m.url.as_deref(),
                )?;
                for (key, t) in keys.iter().zip(&m.targets) {
                    apply_target(
                        list,
                        "ModifyTargetWeight",
                        key,
                        t.weight.or(m.weight),
                        ctx.now_ms,
                    )?;
                }
            }
            Ok(json!({}))
        })
    }

    pub(super) fn describe_targets(
        &self,
        ctx: &Ctx,
        r: model::DescribeTargetsRequest,
    ) -> Result<Value, ApiError> {
        let lb = self.lb(ctx, &r.load_balancer_id)?;
        let protocol = r.protocol.as_ref().map(|p| p.to_ascii_uppercase());
        let mut location_filter: Option<&Vec<String>> = None;
        let mut ip_filter: Option<&Vec<String>> = None;
        for f in r.filters.iter().flatten() {
            match f.name.as_str() {
                "location-id" => location_filter = Some(&f.values),
                "private-ip-address" => ip_filter = Some(&f.values),
                "tag" => {}
                other => {
                    return Err(err(
                        ErrorCode::InvalidParameterValueInvalidFilter,
                        format!("Filter name `{other}` is not supported."),
                    ));
                }
            }
        }
        let keep = |b: &&Backend| {
            ip_filter.is_none_or(|ips| b.ip.as_ref().is_some_and(|ip| ips.contains(ip)))
        };
        let listeners: Vec<model::ListenerBackend> = lb
            .listeners
            .iter()
            .filter(|l| {
                r.listener_ids
                    .as_ref()
                    .is_none_or(|ids| ids.is_empty() || ids.contains(&l.listener_id))
            })
            .filter(|l| protocol.as_ref().is_none_or(|p| &l.protocol == p))
            .filter(|l| r.port.is_none_or(|p| l.port == p))
            .map(|l| model::ListenerBackend {
                listener_id: l.listener_id.clone(),
                protocol: l.protocol.clone(),
                port: l.port,
                end_port: Some(l.end_port),
                rules: l.is_l7().then(|| {
                    l.rules
                        .iter()
                        .filter(|x| location_filter.is_none_or(|ids| ids.contains(&x.location_id)))
                        .map(|x| model::RuleTargets {
                            location_id: x.location_id.clone(),
                            domain: Some(x.domain.clone()),
                            url: Some(x.url.clone()),
                            targets: Some(
                                x.targets.iter().filter(keep).map(backend_output).collect(),
                            ),
                        })
                        .collect()
                }),
                targets: (!l.is_l7())
                    .then(|| l.targets.iter().filter(keep).map(backend_output).collect()),
            })
            .collect();
        Ok(to_value(&model::DescribeTargetsResponse {
            listeners,
            request_id: String::new(),
        }))
    }

    pub(super) fn describe_target_health(
        &self,
        ctx: &Ctx,
        r: model::DescribeTargetHealthRequest,
    ) -> Result<Value, ApiError> {
        let mut out = Vec::new();
        for id in &r.load_balancer_ids {
            let lb = self.lb(ctx, id)?;
            let health = |hc: &Option<HealthCheck>, b: &Backend| {
                let on = hc.as_ref().and_then(|h| h.health_switch).unwrap_or(1) == 1;
                let detail = if on { "Alive" } else { "Close" };
                model::TargetHealth {
                    ip: b
                        .ip
                        .clone()
                        .or_else(|| b.instance_id.clone())
                        .unwrap_or_default(),
                    port: b.port,
                    health_status: on,
                    target_id: b.instance_id.clone().or_else(|| b.ip.clone()),
                    health_status_detail: Some(detail.into()),
                    health_status_detial: Some(detail.into()),
                    target_group_id: None,
                    weight: Some(b.weight),
                }
            };
            let listeners = lb
                .listeners
                .iter()
                .filter(|l| {
                    r.listener_ids
                        .as_ref()
                        .is_none_or(|ids| ids.is_empty() || ids.contains(&l.listener_id))
                })
                .map(|l| {
                    let rules = if l.is_l7() {
                        l.rules
                            .iter()
                            .filter(|x| {
                                r.location_ids.as_ref().is_none_or(|ids| {
                                    ids.is_empty() || ids.contains(&x.location_id)
                                })
                            })
                            .map(|x| model::RuleHealth {
                                location_id: x.location_id.clone(),
                                domain: Some(x.domain.clone()),
                                url: Some(x.url.clone()),
                                rule_id: Some(x.location_id.clone()),
                                targets: Some(
                                    x.targets
                                        .iter()
                                        .map(|b| health(&x.health_check, b))
                                        .collect(),
                                ),
                            })
                            .collect()
                    } else {
                        vec![model::RuleHealth {
                            location_id: l.listener_id.replacen("lbl-", "loc-", 1),
                            domain: None,
                            url: None,
                            rule_id: None,
                            targets: Some(
                                l.targets
                                    .iter()
                                    .map(|b| health(&l.health_check, b))
                                    .collect(),
                            ),
                        }]
                    };
                    model::ListenerHealth {
                        listener_id: l.listener_id.clone(),
                        listener_name: Some(l.name.clone()),
                        protocol: l.protocol.clone(),
                        port: l.port,
                        rules: Some(rules),
                    }
                })
                .collect();
            out.push(model::LoadBalancerHealth {
                load_balancer_id: lb.load_balancer_id.clone(),
                load_balancer_name: Some(lb.name.clone()),
                listeners: Some(listeners),
            });
        }
        Ok(to_value(&model::DescribeTargetHealthResponse {
            load_balancers: out,
            request_id: String::new(),
        }))
    }
}

/// The target list of an L4 listener, or of the rule named by LocationId (or Domain + Url) on L7.
pub(super) fn target_list<'a>(
    l: &'a mut Listener,
    location_id: Option<&str>,
    domain: Option<&str>,
    url: Option<&str>,
) -> Result<&'a mut Vec<Backend>, ApiError> {
    if !l.is_l7() {
        return Ok(&mut l.targets);
    }
    let idx = match (location_id, domain, url) {
        (Some(id), _, _) => l.rules.iter().position(|x| x.location_id == id),
        (None, Some(d), Some(u)) => l.rules.iter().position(|x| x.domain == d && x.url == u),
        _ => return Err(ApiError::missing_parameter("LocationId")),
    };
    let idx = idx.ok_or_else(|| {
        err(
            ErrorCode::InvalidParameterLocationNotFound,
            format!("Location not exist: {}", location_id.unwrap_or_default()),
        )
    })?;
    Ok(&mut l.rules[idx].targets)
}

pub(super) fn target_key(
    instance_id: Option<&str>,
    eni_ip: Option<&str>,
    port: i64,
) -> Result<TargetKey, ApiError> {
    match (instance_id, eni_ip) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid_parameter(
            "Exactly one of InstanceId and EniIp must be given for each target.",
        )),
        (i, e) => {
            if let Some(ip) = e {
                validate::eni_ip(ip)?;
            }
            Ok(TargetKey {
                ip: e.map(str::to_string),
                instance_id: i.map(str::to_string),
                port,
            })
        }
    }
}

pub(super) fn target_keys(targets: &[model::Target]) -> Result<Vec<TargetKey>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut keys = Vec::new();
    for t in targets {
        let key = target_key(t.instance_id.as_deref(), t.eni_ip.as_deref(), t.port)?;
        if !seen.insert(key.clone()) {
            return Err(err(
                ErrorCode::InvalidParameterValueDuplicate,
                format!("Duplicate target {} in Targets.", key.describe()),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Register (idempotent; re-registering updates the weight), deregister (must be bound) or reweight one target.
pub(super) fn apply_target(
    list: &mut Vec<Backend>,
    action: &str,
    key: &TargetKey,
    weight: Option<i64>,
    now_ms: u64,
) -> Result<(), ApiError> {
    let pos = list.iter().position(|b| b.same(key));
    match action {
        "RegisterTargets" => match pos {
            Some(i) => {
                if let Some(w) = weight {
                    list[i].weight = w;
                }
            }
            None => list.push(Backend {
                ip: key.ip.clone(),
                instance_id: key.instance_id.clone(),
                port: key.port,
                weight: weight.unwrap_or(10),
                registered_ms: now_ms,
            }),
        },
        "DeregisterTargets" => match pos {
            Some(i) => {
                list.remove(i);
            }
            None => {
                return Err(ApiError::invalid_parameter(format!(
                    "Target {} is not bound.",
                    key.describe()
                )));
            }
        },
        _ => {
            let w = weight.ok_or_else(|| ApiError::missing_parameter("Weight"))?;
            match pos {
                Some(i) => list[i].weight = w,
                None => {
                    return Err(ApiError::invalid_parameter(format!(
                        "Target {} is not bound.",
                        key.describe()
                    )));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn backend_output(b: &Backend) -> model::Backend {
    model::Backend {
        r#type: Some(
            if b.instance_id.is_some() {
                "CVM"
            } else {
                "ENI"
            }
            .into(),
        ),
        instance_id: Some(b.instance_id.clone().unwrap_or_default()),
        port: b.port,
        weight: b.weight,
        public_ip_addresses: None,
        private_ip_addresses: Some(b.ip.iter().cloned().collect()),
        instance_name: Some(String::new()),
        registered_time: Some(fmt_time(b.registered_ms)),
        eni_id: Some(String::new()),
        tag: None,
        zone: None,
    }
}
