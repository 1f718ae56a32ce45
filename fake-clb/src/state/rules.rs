//! Layer-7 rules: CreateRule, DeleteRule, ModifyRule, ModifyDomainAttributes.

use super::*;

impl State {
    pub(super) fn create_rule(
        &mut self,
        ctx: &Ctx,
        r: model::CreateRuleRequest,
    ) -> Result<Value, ApiError> {
        if r.rules.is_empty() {
            return Err(ApiError::missing_parameter("Rules"));
        }
        let limits = ctx.limits;
        let lb_id = r.load_balancer_id.clone();
        let ids = self.mutate_lb(ctx, "CreateRule", &lb_id, true, |state, lb| {
            let default_domain = lb.vips.first().cloned().unwrap_or_default();
            let l = find_listener(lb, &r.listener_id)?;
            if !l.is_l7() {
                return Err(invalid_value("This interface only support HTTP/HTTPS listener."));
            }
            if l.rules.len() + r.rules.len() > limits.rules_per_listener {
                return Err(err(
                    ErrorCode::LimitExceeded,
                    format!("The number of rules of {} exceeds the quota {} (TOTAL_LISTENER_RULE_QUOTA).", l.listener_id, limits.rules_per_listener),
                ));
            }
            let mut ids = Vec::new();
            for input in &r.rules {
                let url = input.url.clone();
                if url.is_empty() || url.chars().count() > 200 {
                    return Err(err(ErrorCode::InvalidParameterValueLength, "The length of Url should be between 1 and 200."));
                }
                let domain = input
                    .domain
                    .clone()
                    .or_else(|| input.domains.as_ref().and_then(|d| d.first().cloned()))
                    .unwrap_or_else(|| default_domain.clone());
                if l.rules.iter().any(|x| x.domain == domain && x.url == url) {
                    return Err(err(ErrorCode::InvalidParameterValueDuplicate, format!("The rule {domain}{url} already exists in {}.", l.listener_id)));
                }
                let scheduler = input.scheduler.as_deref().map(check_scheduler).transpose()?.unwrap_or_else(|| "WRR".into());
                let id = state.next_id("loc");
                let health = merge_health(Some(default_rule_health_check()), &input.health_check.clone().unwrap_or_default());
                validate::health_check(&health)?;
                let first_for_domain = !l.rules.iter().any(|x| x.domain == domain);
                l.rules.push(Rule {
                    location_id: id.clone(),
                    domain,
                    url,
                    scheduler,
                    session_expire_time: input.session_expire_time.unwrap_or(0),
                    forward_type: input.forward_type.clone().unwrap_or_else(|| "HTTP".into()),
                    default_server: input.default_server.unwrap_or(first_for_domain && l.rules.is_empty()),
                    http2: input.http2.unwrap_or(false),
                    health_check: Some(health),
                    certificate: input.certificate.clone(),
                    created_ms: ctx.now_ms,
                    targets: Vec::new(),
                });
                ids.push(id);
            }
            Ok(ids)
        })?;
        Ok(to_value(&model::CreateRuleResponse {
            location_ids: ids,
            request_id: String::new(),
        }))
    }

    pub(super) fn delete_rule(
        &mut self,
        ctx: &Ctx,
        r: model::DeleteRuleRequest,
    ) -> Result<Value, ApiError> {
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "DeleteRule", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            let before = l.rules.len();
            match (&r.location_ids, &r.domain, &r.url) {
                (Some(ids), _, _) if !ids.is_empty() => {
                    if let Some(missing) = ids
                        .iter()
                        .find(|id| !l.rules.iter().any(|x| &&x.location_id == id))
                    {
                        return Err(err(
                            ErrorCode::InvalidParameterLocationNotFound,
                            format!("Location not exist: {missing}"),
                        ));
                    }
                    l.rules.retain(|x| !ids.contains(&x.location_id));
                }
                (_, Some(d), Some(u)) => l.rules.retain(|x| !(&x.domain == d && &x.url == u)),
                _ => return Err(ApiError::missing_parameter("LocationIds")),
            }
            if l.rules.len() == before {
                return Err(err(
                    ErrorCode::InvalidParameterLocationNotFound,
                    "No rule matches the given Domain and Url.",
                ));
            }
            Ok(json!({}))
        })
    }

    pub(super) fn modify_rule(
        &mut self,
        ctx: &Ctx,
        r: model::ModifyRuleRequest,
    ) -> Result<Value, ApiError> {
        let scheduler = r.scheduler.as_deref().map(check_scheduler).transpose()?;
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "ModifyRule", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            let rule = find_rule(l, &r.location_id)?;
            if let Some(u) = &r.url {
                rule.url = u.clone();
            }
            if let Some(h) = &r.health_check {
                let merged = merge_health(rule.health_check.clone(), h);
                validate::health_check(&merged)?;
                rule.health_check = Some(merged);
            }
            if let Some(s) = scheduler {
                rule.scheduler = s;
            }
            if let Some(v) = r.session_expire_time {
                rule.session_expire_time = v;
            }
            if let Some(v) = &r.forward_type {
                rule.forward_type = v.clone();
            }
            Ok(json!({}))
        })
    }

    pub(super) fn modify_domain_attributes(
        &mut self,
        ctx: &Ctx,
        r: model::ModifyDomainAttributesRequest,
    ) -> Result<Value, ApiError> {
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "ModifyDomainAttributes", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            if !l.rules.iter().any(|x| x.domain == r.domain) {
                return Err(err(
                    ErrorCode::InvalidParameterLocationNotFound,
                    format!("Domain not exist: {}", r.domain),
                ));
            }
            for rule in l.rules.iter_mut().filter(|x| x.domain == r.domain) {
                if let Some(v) = r.http2 {
                    rule.http2 = v;
                }
                if let Some(v) = r.default_server {
                    rule.default_server = v;
                }
                if let Some(c) = &r.certificate {
                    rule.certificate = Some(c.clone());
                }
                if let Some(nd) = r
                    .new_domain
                    .as_ref()
                    .or(r.new_domains.as_ref().and_then(|d| d.first()))
                {
                    rule.domain = nd.clone();
                }
            }
            Ok(json!({}))
        })
    }
}

pub(super) fn default_rule_health_check() -> HealthCheck {
    HealthCheck {
        health_switch: Some(1),
        time_out: Some(2),
        interval_time: Some(5),
        health_num: Some(3),
        un_health_num: Some(3),
        http_code: Some(31),
        http_check_path: Some("/".into()),
        http_check_method: Some("HEAD".into()),
        check_type: Some("HTTP".into()),
        source_ip_type: Some(0),
        ..HealthCheck::default()
    }
}

pub(super) fn find_rule<'a>(l: &'a mut Listener, id: &str) -> Result<&'a mut Rule, ApiError> {
    l.rules
        .iter_mut()
        .find(|x| x.location_id == id)
        .ok_or_else(|| {
            err(
                ErrorCode::InvalidParameterLocationNotFound,
                format!("Location not exist: {id}"),
            )
        })
}
