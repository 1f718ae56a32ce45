//! Pod mutating webhook (`/portpool/v1/mutate`): allocates pool ports for a pod
//! that asks for them and patches the pod with the bindings annotation, the `NotReady` status
//! annotation, the `BCS_PORTPOOL_PORT_VIPLIST_*` env vars and (on request) the readiness gate.
//!
//! [`mutate_pod`] is the pure core: it works on the pod, the allocator (locked by the caller), a
//! lookup of observed item status and the PortBinding of the same name (keep-duration reuse). The
//! HTTP handler in [`super::server`] reads that PortBinding and holds the [`PoolState`] lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::allocator::{AllocError, Allocation, Allocator, PoolKey, Protocol};
use crate::annotations::{
    self, BindingProtocol, ContainerPort, ItemLoadBalancer, PoolBindingItem, PortRequest,
};
use crate::api::{PortBinding, PortBindingItem, PortPoolItemStatus};
use crate::pools::PoolState;
use crate::pools::held::held_ports;
use crate::pools::reservation::ReservationCheck;

/// Denial while the allocator is being rebuilt; the API server retries (failurePolicy Fail).
pub const NOT_READY_MESSAGE: &str = "port allocator is not ready yet (rebuilding); retry";
/// Value of the status annotation at admission; the PortBinding controller sets `Ready`.
pub const STATUS_NOT_READY: &str = "NotReady";

/// Why a pod was denied (the `reason` label of the outcome metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialReason {
    /// The allocator is not rebuilt yet.
    NotReady,
    /// The request annotation does not parse or names an unknown container port.
    BadAnnotation,
    /// No such PortPool.
    UnknownPool,
    /// No such item in the pool.
    UnknownItem,
    /// The item cannot serve the request (NotReady, Deleting, wrong protocol).
    ItemUnusable,
    /// No free port (or segment) left.
    Exhausted,
    /// The item has no observed status (LBs/VIPs) yet.
    NoItemStatus,
    /// A PortBinding of the same name blocks the pod (being deleted, not kept, different ports).
    PreviousBinding,
    /// The request cannot be read or the cluster cannot be asked.
    Internal,
}

impl DenialReason {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::NotReady => "not_ready",
            DenialReason::BadAnnotation => "bad_annotation",
            DenialReason::UnknownPool => "unknown_pool",
            DenialReason::UnknownItem => "unknown_item",
            DenialReason::ItemUnusable => "item_unusable",
            DenialReason::Exhausted => "exhausted",
            DenialReason::NoItemStatus => "no_item_status",
            DenialReason::PreviousBinding => "previous_binding",
            DenialReason::Internal => "internal",
        }
    }
}

/// A refused pod: the message goes back to the user through the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenialReason,
    pub message: String,
}

impl Denial {
    fn new(reason: DenialReason, message: impl Into<String>) -> Self {
        Denial {
            reason,
            message: message.into(),
        }
    }

    /// The request could not be decided (unreadable object, cluster read failed).
    pub fn internal(message: impl Into<String>) -> Self {
        Denial::new(DenialReason::Internal, message)
    }

    /// The allocator is still rebuilding.
    pub fn not_ready() -> Self {
        Denial::new(DenialReason::NotReady, NOT_READY_MESSAGE)
    }
}

impl From<AllocError> for Denial {
    fn from(e: AllocError) -> Self {
        let reason = match &e {
            AllocError::PoolNotFound { .. } => DenialReason::UnknownPool,
            AllocError::ItemNotFound { .. } => DenialReason::UnknownItem,
            AllocError::ItemExhausted { .. } | AllocError::PoolExhausted { .. } => {
                DenialReason::Exhausted
            }
            AllocError::ItemNotReady { .. } | AllocError::ProtocolNotServed { .. } => {
                DenialReason::ItemUnusable
            }
            _ => DenialReason::Internal,
        };
        Denial::new(reason, e.to_string())
    }
}

/// One port (or segment) held for the pod: what to release if the pod never gets created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPort {
    pub pool: PoolKey,
    pub allocation: Allocation,
}

/// What an admitted pod gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// RFC 6902 operations against the pod as submitted.
    pub patch: json_patch::Patch,
    /// The bindings written into the pod annotation (one per protocol).
    pub bindings: Vec<PoolBindingItem>,
    /// Ports newly taken from the allocator (empty when a kept PortBinding was reused).
    pub allocated: Vec<HeldPort>,
    /// True when the ports come from a kept PortBinding of the same name.
    pub reused: bool,
}

/// True when the pod opts into port-pool injection.
pub fn wants_ports(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(annotations::PORT_POOLS))
}

/// Allocates (or reuses) the pod's ports and builds the patch. `Ok(None)`: the pod does not ask
/// for ports. On any failure everything allocated for this pod is released before the denial.
///
/// `pod.metadata.namespace` must be set (the handler fills it from the request). `previous` is the
/// PortBinding named like the pod, if any. `reservation` is stamped on the pod when ports are newly taken
/// (none for a dry run).
pub fn mutate_pod(
    pod: &Pod,
    allocator: &mut Allocator,
    item_status: impl Fn(&PoolKey, &str) -> Option<PortPoolItemStatus>,
    previous: Option<&PortBinding>,
    reservation: Option<&str>,
) -> Result<Option<Mutation>, Denial> {
    if !wants_ports(pod) {
        return Ok(None);
    }
    let pod_annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let value = pod_annotations
        .get(annotations::PORTS)
        .map(String::as_str)
        .unwrap_or("");
    let requests = annotations::parse_port_requests(value, namespace, &container_ports(pod))
        .map_err(|e| Denial::new(DenialReason::BadAnnotation, e.to_string()))?;

    let (bindings, allocated, reused) = match previous {
        Some(binding) => (
            reuse(&pod_annotations, &requests, binding)?,
            Vec::new(),
            true,
        ),
        None => {
            let (bindings, held) = allocate_all(&requests, allocator, &item_status)?;
            (bindings, held, false)
        }
    };
    let reservation = reservation.filter(|_| !allocated.is_empty());
    match build_patch(pod, &bindings, reservation) {
        Ok(patch) => Ok(Some(Mutation {
            patch,
            bindings,
            allocated,
            reused,
        })),
        Err(denial) => {
            release_all(allocator, &allocated);
            Err(denial)
        }
    }
}

/// Gives back ports taken by [`mutate_pod`] (partial failure, dry run, a failed response).
pub fn release_all(allocator: &mut Allocator, held: &[HeldPort]) {
    for port in held {
        if let Err(e) = allocator.release(
            &port.pool,
            &port.allocation.item,
            port.allocation.protocol,
            port.allocation.start_port,
        ) {
            tracing::warn!(pool = %port.pool, item = %port.allocation.item, port = port.allocation.start_port, error = %e, "cannot release a port");
        }
    }
}

/// The pod's declared container ports (regular containers, as bcs resolves them).
fn container_ports(pod: &Pod) -> Vec<ContainerPort> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(ContainerPort {
                name: p.name.clone(),
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.clone(),
            })
        })
        .collect()
}

fn allocate_all(
    requests: &[PortRequest],
    allocator: &mut Allocator,
    item_status: &impl Fn(&PoolKey, &str) -> Option<PortPoolItemStatus>,
) -> Result<(Vec<PoolBindingItem>, Vec<HeldPort>), Denial> {
    let mut held: Vec<HeldPort> = Vec::new();
    let mut bindings = Vec::new();
    for request in requests {
        match allocate_one(request, allocator, item_status, &mut held) {
            Ok(items) => bindings.extend(items),
            Err(mut denial) => {
                release_all(allocator, &held);
                denial.message = format!("{}: {}", request.location, denial.message);
                return Err(denial);
            }
        }
    }
    Ok((bindings, held))
}

fn allocate_one(
    request: &PortRequest,
    allocator: &mut Allocator,
    item_status: &impl Fn(&PoolKey, &str) -> Option<PortPoolItemStatus>,
    held: &mut Vec<HeldPort>,
) -> Result<Vec<PoolBindingItem>, Denial> {
    let key = PoolKey::new(&request.pool.namespace, &request.pool.name);
    let allocation = allocator.allocate(&key, request.protocol, request.pool.item.as_deref())?;
    held.push(HeldPort {
        pool: key.clone(),
        allocation: allocation.clone(),
    });
    let status = item_status(&key, &allocation.item).ok_or_else(|| {
        Denial::new(
            DenialReason::NoItemStatus,
            format!(
                "item \"{}\" of port pool {key} has no observed status (load balancers) yet; retry",
                allocation.item
            ),
        )
    })?;
    let load_balancers = status
        .pool_item_load_balancers
        .iter()
        .map(|lb| {
            serde_json::to_value(lb)
                .and_then(serde_json::from_value::<ItemLoadBalancer>)
                .map_err(|e| {
                    Denial::new(
                        DenialReason::Internal,
                        format!(
                            "load balancer of item \"{}\" of port pool {key}: {e}",
                            allocation.item
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(request
        .protocol
        .protocols()
        .iter()
        .map(|protocol| PoolBindingItem {
            pool_name: key.name.clone(),
            pool_namespace: key.namespace.clone(),
            load_balancer_ids: status.load_balancer_ids.clone(),
            listener_attribute: None,
            uptime_check: None,
            pool_item_load_balancers: load_balancers.clone(),
            pool_item_name: allocation.item.to_string(),
            protocol: (*protocol).into(),
            start_port: allocation.start_port,
            end_port: allocation.binding_end_port(),
            rs_start_port: request.container_port,
            host_port: request.hostport,
            external: status.external.clone().unwrap_or_default(),
        })
        .collect())
}

/// Keep-duration reuse: the kept PortBinding's ports, when it may be reused as is.
/// Differences from bcs: nothing is deleted at admission; a binding that cannot be reused denies
/// the pod until the PortBinding controller has removed it (the workload controller retries).
fn reuse(
    pod_annotations: &BTreeMap<String, String>,
    requests: &[PortRequest],
    binding: &PortBinding,
) -> Result<Vec<PoolBindingItem>, Denial> {
    let name = format!(
        "{}/{}",
        binding.metadata.namespace.as_deref().unwrap_or(""),
        binding.metadata.name.as_deref().unwrap_or("")
    );
    let blocked = |why: &str| {
        Denial::new(
            DenialReason::PreviousBinding,
            format!(
                "found previous PortBinding {name} of this pod: {why}; retry once it is cleaned"
            ),
        )
    };
    if binding.metadata.deletion_timestamp.is_some() {
        return Err(blocked("it is being deleted"));
    }
    let kept = binding
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(annotations::KEEP_DURATION));
    if !kept {
        return Err(blocked("it has no keep duration and is not cleaned yet"));
    }
    if !pod_annotations.contains_key(annotations::KEEP_DURATION) {
        return Err(blocked(&format!(
            "the new pod has no {} annotation, so the kept ports are not reused",
            annotations::KEEP_DURATION
        )));
    }
    let items = &binding.spec.port_binding_list;
    let wanted: usize = requests.iter().map(|r| r.protocol.protocols().len()).sum();
    let mut out = Vec::new();
    for request in requests {
        for protocol in request.protocol.protocols() {
            let found = items.iter().find(|i| {
                i.pool_namespace == request.pool.namespace
                    && i.pool_name == request.pool.name
                    && i.protocol == protocol.as_str()
                    && i.rs_start_port == i32::from(request.container_port)
                    && request
                        .pool
                        .item
                        .as_ref()
                        .is_none_or(|item| *item == i.pool_item_name)
            });
            let Some(item) = found else {
                return Err(blocked(&format!(
                    "it holds no {protocol} port of pool {}/{} for container port {}",
                    request.pool.namespace, request.pool.name, request.container_port
                )));
            };
            out.push(binding_item(item, *protocol).map_err(|e| {
                Denial::new(DenialReason::Internal, format!("PortBinding {name}: {e}"))
            })?);
        }
    }
    if items.len() != wanted {
        return Err(blocked(&format!(
            "it holds {} ports, the pod asks for {wanted}",
            items.len()
        )));
    }
    Ok(out)
}

/// A PortBinding item as a pod annotation item.
fn binding_item(item: &PortBindingItem, protocol: Protocol) -> Result<PoolBindingItem, String> {
    let port =
        |v: i32, what: &str| u16::try_from(v).map_err(|_| format!("{what} {v} is out of range"));
    let load_balancers = item
        .pool_item_load_balancers
        .iter()
        .map(|lb| serde_json::to_value(lb).and_then(serde_json::from_value::<ItemLoadBalancer>))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(PoolBindingItem {
        pool_name: item.pool_name.clone(),
        pool_namespace: item.pool_namespace.clone(),
        load_balancer_ids: item.load_balancer_ids.clone(),
        listener_attribute: item
            .listener_attribute
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
        uptime_check: item
            .uptime_check
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
        pool_item_load_balancers: load_balancers,
        pool_item_name: item.pool_item_name.clone(),
        protocol: BindingProtocol::from(protocol),
        start_port: port(item.start_port, "startPort")?,
        end_port: port(item.end_port, "endPort")?,
        rs_start_port: port(item.rs_start_port, "rsStartPort")?,
        host_port: item.host_port.unwrap_or(false),
        external: item.external.clone().unwrap_or_default(),
    })
}

/// `/` and `~` escaped for a JSON pointer segment (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The JSON patch: annotations, env of every (init) container, readiness gate.
fn build_patch(
    pod: &Pod,
    bindings: &[PoolBindingItem],
    reservation: Option<&str>,
) -> Result<json_patch::Patch, Denial> {
    let rendered = annotations::render_pool_bindings(bindings)
        .map_err(|e| Denial::new(DenialReason::Internal, e.to_string()))?;
    let mut ops: Vec<Value> = Vec::new();
    let mut new_annotations = vec![
        (annotations::POOL_BINDINGS, rendered),
        (annotations::STATUS, STATUS_NOT_READY.to_owned()),
    ];
    if let Some(id) = reservation {
        new_annotations.push((annotations::RESERVATION, id.to_owned()));
    }
    if pod.metadata.annotations.is_some() {
        for (key, value) in new_annotations {
            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", escape(key)), "value": value}));
        }
    } else {
        let map: BTreeMap<&str, String> = new_annotations.into_iter().collect();
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": map}));
    }

    let env: Vec<(String, String)> = bindings
        .iter()
        .map(|b| {
            (
                annotations::env_var_name(Protocol::from(b.protocol), b.rs_start_port),
                annotations::env_var_value(b),
            )
        })
        .collect();
    if let Some(spec) = &pod.spec {
        let lists: [(&str, &[Container]); 2] = [
            (
                "initContainers",
                spec.init_containers.as_deref().unwrap_or(&[]),
            ),
            ("containers", &spec.containers),
        ];
        for (field, containers) in lists {
            for (index, container) in containers.iter().enumerate() {
                env_ops(
                    &mut ops,
                    &format!("/spec/{field}/{index}/env"),
                    container,
                    &env,
                );
            }
        }
        let wants_gate = pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(annotations::READINESS_GATE));
        if wants_gate {
            let gate = json!({"conditionType": annotations::READINESS_GATE_CONDITION});
            match &spec.readiness_gates {
                None => {
                    ops.push(json!({"op": "add", "path": "/spec/readinessGates", "value": [gate]}))
                }
                Some(gates)
                    if !gates
                        .iter()
                        .any(|g| g.condition_type == annotations::READINESS_GATE_CONDITION) =>
                {
                    ops.push(json!({"op": "add", "path": "/spec/readinessGates/-", "value": gate}))
                }
                Some(_) => {}
            }
        }
    }
    serde_json::from_value(Value::Array(ops)).map_err(|e| {
        Denial::new(
            DenialReason::Internal,
            format!("building the pod patch: {e}"),
        )
    })
}

/// Adds the env vars to one container; a variable of the same name is replaced, not duplicated.
fn env_ops(ops: &mut Vec<Value>, path: &str, container: &Container, env: &[(String, String)]) {
    match &container.env {
        None => {
            let list: Vec<Value> = env
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            ops.push(json!({"op": "add", "path": path, "value": list}));
        }
        Some(existing) => {
            for (name, value) in env {
                let var = json!({"name": name, "value": value});
                match existing.iter().position(|e| &e.name == name) {
                    Some(i) => ops.push(
                        json!({"op": "replace", "path": format!("{path}/{i}"), "value": var}),
                    ),
                    None => {
                        ops.push(json!({"op": "add", "path": format!("{path}/-"), "value": var}))
                    }
                }
            }
        }
    }
}

/// Labels of the admission outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `allowed` or `denied`.
    pub result: String,
    /// `allocated`, `reused`, `skipped` (no annotation), `dry_run`, or a [`DenialReason`].
    pub reason: String,
}

/// Metrics of the pod webhook. Cloning shares them.
#[derive(Clone, Debug)]
pub struct PodWebhookMetrics {
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Reviews of the pod validating webhook by result and reason.
    pub validations: Family<OutcomeLabels, Counter>,
    /// Time spent holding the allocator lock (allocation and patch building), seconds.
    pub allocate_duration: Histogram,
}

impl Default for PodWebhookMetrics {
    fn default() -> Self {
        PodWebhookMetrics {
            outcomes: Family::default(),
            validations: Family::default(),
            // 10 µs … ~160 ms.
            allocate_duration: Histogram::new(exponential_buckets(0.00001, 4.0, 8)),
        }
    }
}

impl PodWebhookMetrics {
    /// Registers under the `clb_controller_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("clb_controller");
        r.register(
            "webhook_pod_admissions",
            "Pod admissions of the port-pool mutating webhook by result and reason",
            self.outcomes.clone(),
        );
        r.register(
            "webhook_pod_validations",
            "Reviews of the pod validating webhook (reservation checks) by result and reason",
            self.validations.clone(),
        );
        r.register(
            "webhook_pod_allocate_duration_seconds",
            "Time to allocate a pod's ports and build its patch (allocator lock held)",
            self.allocate_duration.clone(),
        );
    }

    /// Counts one admission outcome.
    pub fn count(&self, allowed: bool, reason: &str) {
        self.outcomes.get_or_create(&outcome(allowed, reason)).inc();
    }

    /// Counts one review of the pod validating webhook.
    pub fn count_validation(&self, allowed: bool, reason: &str) {
        self.validations
            .get_or_create(&outcome(allowed, reason))
            .inc();
    }
}

fn outcome(allowed: bool, reason: &str) -> OutcomeLabels {
    OutcomeLabels {
        result: if allowed { "allowed" } else { "denied" }.to_owned(),
        reason: reason.to_owned(),
    }
}

/// What the pod handlers need: the shared pool state (fed by the PortPool reconciler) and metrics.
#[derive(Clone, Debug, Default)]
pub struct PodWebhook {
    pub pools: Arc<PoolState>,
    pub metrics: PodWebhookMetrics,
    /// `--port-reservation-timeout`, named in the denial of a pod whose reservation lapsed.
    pub reservation_timeout: std::time::Duration,
    /// Random host ports (`--randhostport`); `None` when off.
    pub randhostport: Option<Arc<crate::randhostport::state::RandHostPortState>>,
}

/// The pod validating webhook's question, read from a pod about to be stored: `Ok(None)` when it carries
/// no reservation (no ports, reused ports, a dry run, a namespace the mutating webhook skipped).
pub fn reservation_check(pod: &Pod, namespace: &str) -> Result<Option<ReservationCheck>, Denial> {
    let Some(reservation) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::RESERVATION))
    else {
        return Ok(None);
    };
    let items = match pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::POOL_BINDINGS))
    {
        Some(raw) => annotations::parse_pool_bindings(raw).map_err(|e| {
            Denial::new(
                DenialReason::BadAnnotation,
                format!("{}: {e}", annotations::POOL_BINDINGS),
            )
        })?,
        None => Vec::new(),
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if uid.is_empty() || name.is_empty() {
        return Err(Denial::internal(
            "the pod has no name or uid at validation; the pod validating webhook must be a validating webhook",
        ));
    }
    Ok(Some(ReservationCheck {
        reservation: reservation.clone(),
        namespace: namespace.to_owned(),
        pod: name,
        uid,
        ports: held_ports(&[], [items.as_slice()]),
    }))
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
