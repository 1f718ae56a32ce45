//! Typed operations for the sync engine. Each one batches within the API's limits, shares one deadline across all
//! of its calls and, for async actions, returns only after the task has ended.

use clb_api::model::{
    BatchModifyTargetWeightRequest, BatchRegisterTargetsRequest, BatchRegisterTargetsResponse,
    BatchTarget, CreateListenerRequest, CreateListenerResponse, CreateRuleRequest,
    CreateRuleResponse, DeleteListenerRequest, DeleteLoadBalancerListenersRequest,
    DeleteRuleRequest, DescribeListenersRequest, DescribeListenersResponse,
    DescribeLoadBalancersRequest, DescribeLoadBalancersResponse, DescribeTargetsRequest,
    DescribeTargetsResponse, Listener, ListenerBackend, LoadBalancer,
    ModifyDomainAttributesRequest, ModifyListenerRequest, ModifyRuleRequest,
    RegisterTargetsRequest, RsWeightRule, RuleInput, Target,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::batch::{
    ListenerIdBatch, MAX_BATCH_TARGETS, MAX_DESCRIBE_LB_IDS, MAX_DESCRIBE_LISTENER_IDS,
    MAX_DESCRIBE_TARGETS_LISTENER_IDS, MAX_TARGETS_PER_CALL, NewListener, plan_create_listeners,
    plan_weight_modifications,
};
use super::client::{ClbClient, LbRef, is_async_action};
use super::error::CloudError;

fn to_params(action: &str, request: &impl Serialize) -> Result<Value, CloudError> {
    serde_json::to_value(request).map_err(|e| CloudError::Decode {
        action: action.to_string(),
        request_id: String::new(),
        message: format!("serialising the request: {e}"),
    })
}

fn from_response<T: DeserializeOwned>(action: &str, response: Value) -> Result<T, CloudError> {
    let request_id = response
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    serde_json::from_value(response).map_err(|e| CloudError::Decode {
        action: action.to_string(),
        request_id,
        message: e.to_string(),
    })
}

/// Register or deregister (the two share request shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    Register,
    Deregister,
}

impl ClbClient {
    /// One call of `action` with a typed request and response; async actions wait for their task.
    async fn typed<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        region: &str,
        action: &str,
        request: &Req,
        deadline: Instant,
    ) -> Result<Resp, CloudError> {
        let params = to_params(action, request)?;
        let response = self
            .call_json_until(region, action, &params, deadline)
            .await?;
        if is_async_action(action) {
            let task_id = response
                .get("RequestId")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| CloudError::Decode {
                    action: action.to_string(),
                    request_id: String::new(),
                    message: "async call answered without a RequestId to poll".into(),
                })?
                .to_string();
            self.wait_task(region, action, &task_id, deadline).await?;
        }
        from_response(action, response)
    }

    /// One call of `action` per `max` ids (one deadline for all of them), the answers' items concatenated.
    /// No ids, no call: an id-less Describe would answer with everything.
    async fn describe_chunked<Req, Resp, T>(
        &self,
        region: &str,
        action: &str,
        ids: &[String],
        max: usize,
        request: impl Fn(Vec<String>) -> Req,
        items: impl Fn(Resp) -> Vec<T>,
    ) -> Result<Vec<T>, CloudError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let deadline = self.deadline();
        let mut out = Vec::new();
        for chunk in ids.chunks(max) {
            let response: Resp = self
                .typed(region, action, &request(chunk.to_vec()), deadline)
                .await?;
            out.extend(items(response));
        }
        Ok(out)
    }

    /// The load balancers among `ids` that exist (absent ids are simply not returned), ≤ 20 ids per call.
    pub async fn describe_load_balancers(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<LoadBalancer>, CloudError> {
        let request = |ids| DescribeLoadBalancersRequest {
            load_balancer_ids: Some(ids),
            limit: Some(100),
            ..Default::default()
        };
        let items = |r: DescribeLoadBalancersResponse| r.load_balancer_set;
        self.describe_chunked(
            region,
            "DescribeLoadBalancers",
            ids,
            MAX_DESCRIBE_LB_IDS,
            request,
            items,
        )
        .await
    }

    /// The load balancers named exactly `name` (the `lbnames` Ingress annotation; names need not be unique).
    pub async fn describe_load_balancers_by_name(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Vec<LoadBalancer>, CloudError> {
        let request = DescribeLoadBalancersRequest {
            load_balancer_name: Some(name.to_string()),
            limit: Some(100),
            ..Default::default()
        };
        let response: DescribeLoadBalancersResponse = self
            .typed(region, "DescribeLoadBalancers", &request, self.deadline())
            .await?;
        // The API matches names loosely; keep exact matches only.
        Ok(response
            .load_balancer_set
            .into_iter()
            .filter(|lb| lb.load_balancer_name == name)
            .collect())
    }

    /// The listeners among `ids` that exist, ≤ 100 ids per call. No ids, no call (an id-less DescribeListeners
    /// would return every listener).
    pub async fn describe_listeners(
        &self,
        lb: &LbRef,
        ids: &[String],
    ) -> Result<Vec<Listener>, CloudError> {
        let request = |ids| DescribeListenersRequest {
            load_balancer_id: lb.lb_id.clone(),
            listener_ids: Some(ids),
            ..Default::default()
        };
        let items = |r: DescribeListenersResponse| r.listeners;
        let max = MAX_DESCRIBE_LISTENER_IDS;
        self.describe_chunked(&lb.region, "DescribeListeners", ids, max, request, items)
            .await
    }

    /// Every listener of the load balancer (the API does not paginate DescribeListeners).
    pub async fn describe_all_listeners(&self, lb: &LbRef) -> Result<Vec<Listener>, CloudError> {
        let request = DescribeListenersRequest {
            load_balancer_id: lb.lb_id.clone(),
            ..Default::default()
        };
        let response: DescribeListenersResponse = self
            .typed(&lb.region, "DescribeListeners", &request, self.deadline())
            .await?;
        Ok(response.listeners)
    }

    /// The listener on `protocol`/`port`, if any (to adopt a listener after `InvalidParameter.PortCheckFailed`).
    pub async fn describe_listener_at(
        &self,
        lb: &LbRef,
        protocol: &str,
        port: u16,
    ) -> Result<Option<Listener>, CloudError> {
        let request = DescribeListenersRequest {
            load_balancer_id: lb.lb_id.clone(),
            protocol: Some(protocol.to_string()),
            port: Some(i64::from(port)),
            ..Default::default()
        };
        let response: DescribeListenersResponse = self
            .typed(&lb.region, "DescribeListeners", &request, self.deadline())
            .await?;
        Ok(response.listeners.into_iter().next())
    }

    /// Bound targets of the listeners `ids`, ≤ 20 ids per call. No ids, no call.
    pub async fn describe_targets(
        &self,
        lb: &LbRef,
        ids: &[String],
    ) -> Result<Vec<ListenerBackend>, CloudError> {
        let request = |ids| DescribeTargetsRequest {
            load_balancer_id: lb.lb_id.clone(),
            listener_ids: Some(ids),
            ..Default::default()
        };
        let items = |r: DescribeTargetsResponse| r.listeners;
        let max = MAX_DESCRIBE_TARGETS_LISTENER_IDS;
        self.describe_chunked(&lb.region, "DescribeTargets", ids, max, request, items)
            .await
    }

    /// Bound targets of every listener of the load balancer.
    pub async fn describe_all_targets(
        &self,
        lb: &LbRef,
    ) -> Result<Vec<ListenerBackend>, CloudError> {
        let request = DescribeTargetsRequest {
            load_balancer_id: lb.lb_id.clone(),
            ..Default::default()
        };
        let response: DescribeTargetsResponse = self
            .typed(&lb.region, "DescribeTargets", &request, self.deadline())
            .await?;
        Ok(response.listeners)
    }

    /// Creates `listeners` with as few CreateListener calls as the limits allow (see
    /// [`plan_create_listeners`]), one task at a time, and returns their ids in input order.
    ///
    /// On error, listeners of calls that already succeeded exist; the caller finds them by describing the LB.
    pub async fn create_listeners(
        &self,
        lb: &LbRef,
        listeners: &[NewListener],
    ) -> Result<Vec<String>, CloudError> {
        let deadline = self.deadline();
        let mut ids: Vec<Option<String>> = vec![None; listeners.len()];
        for group in plan_create_listeners(listeners, self.config().create_listener_max_ports) {
            let first = &listeners[group[0]];
            let attrs = first.attributes.clone();
            let request = CreateListenerRequest {
                load_balancer_id: lb.lb_id.clone(),
                ports: group
                    .iter()
                    .map(|&i| i64::from(listeners[i].port))
                    .collect(),
                protocol: first.protocol.clone(),
                listener_names: first.name.as_ref().map(|_| {
                    group
                        .iter()
                        .map(|&i| listeners[i].name.clone().unwrap_or_default())
                        .collect()
                }),
                end_port: first.end_port.map(i64::from),
                health_check: attrs.health_check,
                certificate: attrs.certificate,
                session_expire_time: attrs.session_expire_time,
                scheduler: attrs.scheduler,
                sni_switch: attrs.sni_switch,
                target_type: attrs.target_type,
                session_type: attrs.session_type,
                keepalive_enable: attrs.keepalive_enable,
                deregister_target_rst: attrs.deregister_target_rst,
                ..Default::default()
            };
            let response: CreateListenerResponse = self
                .typed(&lb.region, "CreateListener", &request, deadline)
                .await?;
            if response.listener_ids.len() != group.len() {
                return Err(CloudError::Decode {
                    action: "CreateListener".into(),
                    request_id: response.request_id,
                    message: format!(
                        "asked for {} listeners, got {} ids",
                        group.len(),
                        response.listener_ids.len()
                    ),
                });
            }
            for (&i, id) in group.iter().zip(response.listener_ids) {
                ids[i] = Some(id);
            }
        }
        Ok(ids.into_iter().flatten().collect())
    }

    /// DeleteListener for one listener.
    pub async fn delete_listener(&self, lb: &LbRef, listener_id: &str) -> Result<(), CloudError> {
        let request = DeleteListenerRequest {
            load_balancer_id: lb.lb_id.clone(),
            listener_id: listener_id.to_string(),
        };
        self.typed::<_, Value>(&lb.region, "DeleteListener", &request, self.deadline())
            .await?;
        Ok(())
    }

    /// Deletes the listeners `ids` with DeleteLoadBalancerListeners, ≤ 20 per call. An empty `ids` sends nothing:
    /// the API would read an empty list as "delete every listener".
    pub async fn delete_listeners(&self, lb: &LbRef, ids: &[String]) -> Result<(), CloudError> {
        let deadline = self.deadline();
        for batch in ListenerIdBatch::split(ids) {
            self.delete_listener_batch(lb, &batch, deadline).await?;
        }
        Ok(())
    }

    /// One DeleteLoadBalancerListeners call; only a non-empty [`ListenerIdBatch`] can reach the wire.
    async fn delete_listener_batch(
        &self,
        lb: &LbRef,
        batch: &ListenerIdBatch,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let request = DeleteLoadBalancerListenersRequest {
            load_balancer_id: lb.lb_id.clone(),
            listener_ids: Some(batch.ids().to_vec()),
        };
        self.typed::<_, Value>(
            &lb.region,
            "DeleteLoadBalancerListeners",
            &request,
            deadline,
        )
        .await?;
        Ok(())
    }

    /// ModifyListener; `request.load_balancer_id` is taken from `lb`.
    pub async fn modify_listener(
        &self,
        lb: &LbRef,
        mut request: ModifyListenerRequest,
    ) -> Result<(), CloudError> {
        request.load_balancer_id = lb.lb_id.clone();
        self.typed::<_, Value>(&lb.region, "ModifyListener", &request, self.deadline())
            .await?;
        Ok(())
    }

    /// CreateRule on an HTTP/HTTPS listener; returns the new LocationIds in input order.
    pub async fn create_rules(
        &self,
        lb: &LbRef,
        listener_id: &str,
        rules: Vec<RuleInput>,
    ) -> Result<Vec<String>, CloudError> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let request = CreateRuleRequest {
            load_balancer_id: lb.lb_id.clone(),
            listener_id: listener_id.to_string(),
            rules,
        };
        let response: CreateRuleResponse = self
            .typed(&lb.region, "CreateRule", &request, self.deadline())
            .await?;
        Ok(response.location_ids)
    }

    /// DeleteRule by LocationIds. No ids, no call.
    pub async fn delete_rules(
        &self,
        lb: &LbRef,
        listener_id: &str,
        location_ids: &[String],
    ) -> Result<(), CloudError> {
        if location_ids.is_empty() {
            return Ok(());
        }
        let request = DeleteRuleRequest {
            load_balancer_id: lb.lb_id.clone(),
            listener_id: listener_id.to_string(),
            location_ids: Some(location_ids.to_vec()),
            ..Default::default()
        };
        self.typed::<_, Value>(&lb.region, "DeleteRule", &request, self.deadline())
            .await?;
        Ok(())
    }

    /// ModifyRule; `request.load_balancer_id` is taken from `lb`.
    pub async fn modify_rule(
        &self,
        lb: &LbRef,
        mut request: ModifyRuleRequest,
    ) -> Result<(), CloudError> {
        request.load_balancer_id = lb.lb_id.clone();
        self.typed::<_, Value>(&lb.region, "ModifyRule", &request, self.deadline())
            .await?;
        Ok(())
    }

    /// ModifyDomainAttributes (certificate, HTTP/2, default server of an L7 domain).
    pub async fn modify_domain_attributes(
        &self,
        lb: &LbRef,
        mut request: ModifyDomainAttributesRequest,
    ) -> Result<(), CloudError> {
        request.load_balancer_id = lb.lb_id.clone();
        self.typed::<_, Value>(
            &lb.region,
            "ModifyDomainAttributes",
            &request,
            self.deadline(),
        )
        .await?;
        Ok(())
    }

    /// BatchRegisterTargets (synchronous), ≤ 500 targets per call. Returns the listeners whose binding failed.
    pub async fn batch_register_targets(
        &self,
        lb: &LbRef,
        targets: &[BatchTarget],
    ) -> Result<Vec<String>, CloudError> {
        self.batch_targets(lb, "BatchRegisterTargets", targets)
            .await
    }

    /// BatchDeregisterTargets (synchronous), ≤ 500 targets per call. Returns the listeners whose unbinding failed.
    pub async fn batch_deregister_targets(
        &self,
        lb: &LbRef,
        targets: &[BatchTarget],
    ) -> Result<Vec<String>, CloudError> {
        self.batch_targets(lb, "BatchDeregisterTargets", targets)
            .await
    }

    async fn batch_targets(
        &self,
        lb: &LbRef,
        action: &str,
        targets: &[BatchTarget],
    ) -> Result<Vec<String>, CloudError> {
        let deadline = self.deadline();
        let mut failed: Vec<String> = Vec::new();
        for chunk in targets.chunks(MAX_BATCH_TARGETS) {
            // Both actions share the request and response shapes.
            let request = BatchRegisterTargetsRequest {
                load_balancer_id: lb.lb_id.clone(),
                targets: chunk.to_vec(),
            };
            let response: BatchRegisterTargetsResponse =
                self.typed(&lb.region, action, &request, deadline).await?;
            for id in response.fail_listener_id_set {
                if !failed.contains(&id) {
                    failed.push(id);
                }
            }
        }
        Ok(failed)
    }

    /// BatchModifyTargetWeight, packed by [`plan_weight_modifications`]; waits for each task.
    pub async fn batch_modify_target_weight(
        &self,
        lb: &LbRef,
        rules: &[RsWeightRule],
    ) -> Result<(), CloudError> {
        let deadline = self.deadline();
        for modify_list in plan_weight_modifications(rules) {
            let request = BatchModifyTargetWeightRequest {
                load_balancer_id: lb.lb_id.clone(),
                modify_list,
            };
            self.typed::<_, Value>(&lb.region, "BatchModifyTargetWeight", &request, deadline)
                .await?;
        }
        Ok(())
    }

    /// RegisterTargets on one listener (or one L7 rule via `location_id`), ≤ 20 targets per call.
    pub async fn register_targets(
        &self,
        lb: &LbRef,
        listener_id: &str,
        location_id: Option<&str>,
        targets: &[Target],
    ) -> Result<(), CloudError> {
        self.bind_targets(lb, Binding::Register, listener_id, location_id, targets)
            .await
    }

    /// DeregisterTargets on one listener (or one L7 rule via `location_id`), ≤ 20 targets per call.
    pub async fn deregister_targets(
        &self,
        lb: &LbRef,
        listener_id: &str,
        location_id: Option<&str>,
        targets: &[Target],
    ) -> Result<(), CloudError> {
        self.bind_targets(lb, Binding::Deregister, listener_id, location_id, targets)
            .await
    }

    async fn bind_targets(
        &self,
        lb: &LbRef,
        binding: Binding,
        listener_id: &str,
        location_id: Option<&str>,
        targets: &[Target],
    ) -> Result<(), CloudError> {
        let action = match binding {
            Binding::Register => "RegisterTargets",
            Binding::Deregister => "DeregisterTargets",
        };
        let deadline = self.deadline();
        for chunk in targets.chunks(MAX_TARGETS_PER_CALL) {
            // DeregisterTargetsRequest has the same fields.
            let request = RegisterTargetsRequest {
                load_balancer_id: lb.lb_id.clone(),
                listener_id: listener_id.to_string(),
                targets: chunk.to_vec(),
                location_id: location_id.map(str::to_string),
                ..Default::default()
            };
            self.typed::<_, Value>(&lb.region, action, &request, deadline)
                .await?;
        }
        Ok(())
    }
}
