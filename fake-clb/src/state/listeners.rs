//! Listeners: CreateListener, DescribeListeners, DeleteListener(s), ModifyListener, and their output form.

use super::*;

impl State {
    pub(super) fn create_listener(
        &mut self,
        ctx: &Ctx,
        r: model::CreateListenerRequest,
    ) -> Result<Value, ApiError> {
        let Some(proto) = Protocol::parse(&r.protocol) else {
            let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            return Err(invalid_value(format!(
                "Protocol should be one of {}",
                names.join(", ")
            )));
        };
        let protocol = proto.as_str().to_string();
        if r.ports.is_empty() {
            return Err(ApiError::missing_parameter("Ports"));
        }
        if r.ports.len() > ctx.limits.create_listener_max_ports {
            return Err(clb_api::schema::length_error(
                "Ports",
                ctx.limits.create_listener_max_ports,
            ));
        }
        let end_port = r.end_port.unwrap_or(0);
        if end_port > 0 && (r.ports.len() != 1 || end_port <= r.ports[0]) {
            return Err(invalid_value(
                "EndPort needs exactly one Ports element smaller than EndPort.",
            ));
        }
        if let Some(names) = &r.listener_names {
            if names.len() != r.ports.len() {
                return Err(err(
                    ErrorCode::InvalidParameterValueLength,
                    "Length of ListenerNames should equal to the length of Ports.",
                ));
            }
            for n in names {
                check_name(n, "ListenerName")?;
            }
        }
        let scheduler = r
            .scheduler
            .as_deref()
            .map(check_scheduler)
            .transpose()?
            .unwrap_or_else(|| "WRR".into());
        if r.health_check.is_some() && proto.is_l7() {
            return Err(invalid_value(
                "HealthCheck is only for TCP/UDP/TCP_SSL/QUIC listeners.",
            ));
        }
        if proto == Protocol::TcpSsl && r.certificate.is_none() && r.multi_cert_info.is_none() {
            return Err(ApiError::missing_parameter("Certificate"));
        }
        validate::listener_values(
            &validate::ListenerValues {
                session_expire_time: r.session_expire_time,
                idle_connect_timeout: r.idle_connect_timeout,
                target_type: r.target_type.as_deref(),
                session_type: r.session_type.as_deref(),
                data_compress_mode: r.data_compress_mode.as_deref(),
            },
            ctx.limits,
        )?;
        if let Some(h) = &r.health_check {
            validate::health_check(&merge_health(default_health_check(proto), h))?;
        }
        let lb_id = r.load_balancer_id.clone();
        let limits = ctx.limits;
        let ids = self.mutate_lb(ctx, "CreateListener", &lb_id, true, |state, lb| {
            if lb.listeners.len() + r.ports.len() > limits.listeners_per_load_balancer {
                return Err(err(
                    ErrorCode::LimitExceeded,
                    format!(
                        "The number of listeners of {} exceeds the quota {} (TOTAL_LISTENER_QUOTA).",
                        lb.load_balancer_id, limits.listeners_per_load_balancer
                    ),
                ));
            }
            let class = Some(proto.port_class());
            let mut taken: Vec<(i64, i64)> = lb
                .listeners
                .iter()
                .filter(|l| port_class(&l.protocol) == class)
                .map(|l| (l.port, l.last_port()))
                .collect();
            let mut ids = Vec::new();
            for (i, port) in r.ports.iter().enumerate() {
                let last = if end_port > 0 { end_port } else { *port };
                if taken.iter().any(|(a, b)| *port <= *b && *a <= last) {
                    return Err(err(
                        ErrorCode::InvalidParameterPortCheckFailed,
                        format!("Port {port} of protocol {protocol} conflicts with an existing listener port of {}.", lb.load_balancer_id),
                    ));
                }
                taken.push((*port, last));
                let id = state.next_id("lbl");
                let health = match &r.health_check {
                    Some(h) => Some(merge_health(default_health_check(proto), h)),
                    None => default_health_check(proto),
                };
                lb.listeners.push(Listener {
                    listener_id: id.clone(),
                    protocol: protocol.clone(),
                    port: *port,
                    end_port,
                    name: r.listener_names.as_ref().and_then(|n| n.get(i).cloned()).unwrap_or_default(),
                    health_check: health,
                    certificate: r.certificate.clone(),
                    scheduler: scheduler.clone(),
                    session_expire_time: r.session_expire_time.unwrap_or(0),
                    sni_switch: r.sni_switch.unwrap_or(0),
                    target_type: r.target_type.clone().unwrap_or_else(|| "NODE".into()),
                    session_type: r.session_type.clone().unwrap_or_else(|| "NORMAL".into()),
                    keepalive_enable: r.keepalive_enable.unwrap_or(0),
                    deregister_target_rst: r.deregister_target_rst.unwrap_or(false),
                    idle_connect_timeout: r.idle_connect_timeout,
                    created_ms: ctx.now_ms,
                    targets: Vec::new(),
                    rules: Vec::new(),
                });
                ids.push(id);
            }
            Ok(ids)
        })?;
        Ok(to_value(&model::CreateListenerResponse {
            listener_ids: ids,
            request_id: String::new(),
        }))
    }

    pub(super) fn describe_listeners(
        &self,
        ctx: &Ctx,
        r: model::DescribeListenersRequest,
    ) -> Result<Value, ApiError> {
        let lb = self.lb(ctx, &r.load_balancer_id)?;
        let protocol = r.protocol.as_ref().map(|p| p.to_ascii_uppercase());
        let listeners: Vec<model::Listener> = lb
            .listeners
            .iter()
            .filter(|l| {
                r.listener_ids
                    .as_ref()
                    .is_none_or(|ids| ids.is_empty() || ids.contains(&l.listener_id))
            })
            .filter(|l| protocol.as_ref().is_none_or(|p| &l.protocol == p))
            .filter(|l| r.port.is_none_or(|p| l.port == p))
            .map(listener_output)
            .collect();
        Ok(to_value(&model::DescribeListenersResponse {
            total_count: listeners.len() as i64,
            listeners,
            request_id: String::new(),
        }))
    }

    pub(super) fn delete_listeners(
        &mut self,
        ctx: &Ctx,
        action: &str,
        lb_id: &str,
        ids: Option<Vec<String>>,
        single: bool,
    ) -> Result<Value, ApiError> {
        self.mutate_lb(ctx, action, lb_id, true, |_, lb| {
            match ids.filter(|v| !v.is_empty()) {
                None => lb.listeners.clear(),
                Some(ids) => {
                    let missing: Vec<&str> = ids
                        .iter()
                        .filter(|id| !lb.listeners.iter().any(|l| &&l.listener_id == id))
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        return Err(if single {
                            ApiError::listener_not_found(missing[0])
                        } else {
                            ApiError::invalid_parameter(format!(
                                "some ListenerId {missing:?} not found in {}",
                                lb.load_balancer_id
                            ))
                        });
                    }
                    lb.listeners.retain(|l| !ids.contains(&l.listener_id));
                }
            }
            Ok(json!({}))
        })
    }

    pub(super) fn modify_listener(
        &mut self,
        ctx: &Ctx,
        r: model::ModifyListenerRequest,
    ) -> Result<Value, ApiError> {
        if let Some(n) = &r.listener_name {
            check_name(n, "ListenerName")?;
        }
        let scheduler = r.scheduler.as_deref().map(check_scheduler).transpose()?;
        validate::listener_values(
            &validate::ListenerValues {
                session_expire_time: r.session_expire_time,
                idle_connect_timeout: r.idle_connect_timeout,
                target_type: r.target_type.as_deref(),
                session_type: r.session_type.as_deref(),
                data_compress_mode: r.data_compress_mode.as_deref(),
            },
            ctx.limits,
        )?;
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "ModifyListener", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            if let Some(n) = &r.listener_name {
                l.name = n.clone();
            }
            if let Some(h) = &r.health_check {
                if l.is_l7() {
                    return Err(invalid_value(
                        "HealthCheck of HTTP/HTTPS listeners is set on rules.",
                    ));
                }
                let merged = merge_health(l.health_check.clone(), h);
                validate::health_check(&merged)?;
                l.health_check = Some(merged);
            }
            if let Some(s) = scheduler {
                l.scheduler = s;
            }
            if let Some(v) = r.session_expire_time {
                l.session_expire_time = v;
            }
            if let Some(v) = r.sni_switch {
                l.sni_switch = v;
            }
            if let Some(v) = &r.target_type {
                l.target_type = v.clone();
            }
            if let Some(v) = &r.session_type {
                l.session_type = v.clone();
            }
            if let Some(v) = r.keepalive_enable {
                l.keepalive_enable = v;
            }
            if let Some(v) = r.deregister_target_rst {
                l.deregister_target_rst = v;
            }
            if let Some(v) = r.idle_connect_timeout {
                l.idle_connect_timeout = Some(v);
            }
            if let Some(c) = &r.certificate {
                l.certificate = Some(c.clone());
            }
            Ok(json!({}))
        })
    }
}

pub(super) fn default_health_check(protocol: Protocol) -> Option<HealthCheck> {
    if protocol.is_l7() {
        return None;
    }
    Some(HealthCheck {
        health_switch: Some(1),
        time_out: Some(2),
        interval_time: Some(5),
        health_num: Some(3),
        un_health_num: Some(3),
        check_type: Some(protocol.default_check_type().to_string()),
        source_ip_type: Some(0),
        ..HealthCheck::default()
    })
}

pub(super) fn find_listener<'a>(
    lb: &'a mut LoadBalancer,
    id: &str,
) -> Result<&'a mut Listener, ApiError> {
    lb.listeners
        .iter_mut()
        .find(|l| l.listener_id == id)
        .ok_or_else(|| ApiError::listener_not_found(id))
}

pub(super) fn certificate_output(c: &model::Certificate) -> model::CertificateOutput {
    model::CertificateOutput {
        ssl_mode: c.ssl_mode.clone(),
        ssl_verify_client: c.ssl_verify_client.clone(),
        cert_id: c.cert_id.clone(),
        cert_ca_id: c.cert_ca_id.clone(),
        ext_cert_ids: None,
    }
}

pub(super) fn listener_output(l: &Listener) -> model::Listener {
    model::Listener {
        listener_id: l.listener_id.clone(),
        protocol: l.protocol.clone(),
        port: l.port,
        certificate: l.certificate.as_ref().map(certificate_output),
        health_check: l.health_check.clone(),
        scheduler: Some(l.scheduler.clone()),
        session_expire_time: Some(l.session_expire_time),
        sni_switch: Some(l.sni_switch),
        rules: l.is_l7().then(|| {
            l.rules
                .iter()
                .map(|x| model::RuleOutput {
                    location_id: x.location_id.clone(),
                    domain: Some(x.domain.clone()),
                    url: Some(x.url.clone()),
                    session_expire_time: Some(x.session_expire_time),
                    health_check: x.health_check.clone(),
                    certificate: x.certificate.as_ref().map(certificate_output),
                    scheduler: Some(x.scheduler.clone()),
                    listener_id: Some(l.listener_id.clone()),
                    http2: Some(x.http2),
                    default_server: Some(x.default_server),
                    forward_type: Some(x.forward_type.clone()),
                    create_time: Some(fmt_time(x.created_ms)),
                    target_type: Some("NODE".into()),
                    domains: Some(vec![x.domain.clone()]),
                    ..model::RuleOutput::default()
                })
                .collect()
        }),
        listener_name: Some(l.name.clone()),
        create_time: Some(fmt_time(l.created_ms)),
        end_port: Some(l.end_port),
        target_type: Some(l.target_type.clone()),
        session_type: Some(l.session_type.clone()),
        keepalive_enable: Some(l.keepalive_enable),
        toa: Some(false),
        deregister_target_rst: Some(l.deregister_target_rst),
        attr_flags: Some(Vec::new()),
        idle_connect_timeout: l.idle_connect_timeout,
        ..model::Listener::default()
    }
}
