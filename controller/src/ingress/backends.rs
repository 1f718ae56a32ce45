//! Backends of one ServiceRoute: NodePort, direct-to-pod, hostPort, label subsets.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ContainerPort, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::world::World;
use crate::annotations::weight;
use crate::api::ListenerBackend;
use crate::api::ServiceRoute;
use crate::api::keys::ANNOTATION_CLB_WEIGHT;

/// Backends of a route, plus human-readable problems (the listener is still generated).
#[derive(Debug, Default)]
pub(crate) struct RouteBackends {
    pub backends: Vec<ListenerBackend>,
    pub problems: Vec<String>,
}

/// Computes the backends of `route`; `ingress_namespace` is the default for `serviceNamespace`.
pub(crate) fn route_backends(
    route: &ServiceRoute,
    ingress_namespace: &str,
    world: &World,
) -> RouteBackends {
    let mut out = RouteBackends::default();
    let namespace = route
        .service_namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(ingress_namespace);
    let name = &route.service_name;
    if route
        .service_kind
        .as_deref()
        .is_some_and(|k| !k.is_empty() && !k.eq_ignore_ascii_case("service"))
    {
        out.problems.push(format!(
            "serviceKind {:?} is not supported (only \"service\")",
            route.service_kind.as_deref().unwrap_or_default()
        ));
        return out;
    }
    let Some(service) = world.service(namespace, name) else {
        out.problems
            .push(format!("service {namespace}/{name} not found"));
        return out;
    };
    let Some(svc_port) = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == route.service_port))
    else {
        out.problems.push(format!(
            "service {namespace}/{name} has no port {}",
            route.service_port
        ));
        return out;
    };
    let direct = route.is_direct_connect.unwrap_or(false);
    let host_port = route.host_port.unwrap_or(false);
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();

    if selector.is_empty() {
        // A Service without selector has hand-written endpoints; only direct mode can use them.
        if direct && !host_port && route.subsets.is_empty() {
            endpoint_slice_backends(service, svc_port, route.weight(), world, &mut out);
        } else {
            out.problems.push(format!(
                "service {namespace}/{name} has no selector; only isDirectConnect without hostPort or subsets can use its endpoints"
            ));
        }
        return out;
    }

    if !direct {
        node_port_backends(
            namespace,
            name,
            &selector,
            svc_port,
            route.weight(),
            world,
            &mut out,
        );
        return out;
    }

    let mut seen = BTreeSet::new();
    if route.subsets.is_empty() {
        direct_backends(
            namespace,
            &selector,
            svc_port,
            host_port,
            route.weight(),
            world,
            &mut seen,
            &mut out,
        );
    } else {
        for subset in &route.subsets {
            let mut sel = selector.clone();
            sel.extend(subset.label_selector.clone());
            direct_backends(
                namespace,
                &sel,
                svc_port,
                host_port,
                subset.weight(),
                world,
                &mut seen,
                &mut out,
            );
        }
    }
    out
}

/// NodePort mode: one backend per distinct (node IP, nodePort) hosting a pod of the Service.
fn node_port_backends(
    namespace: &str,
    name: &str,
    selector: &BTreeMap<String, String>,
    svc_port: &ServicePort,
    weight: i32,
    world: &World,
    out: &mut RouteBackends,
) {
    let Some(node_port) = svc_port.node_port.filter(|p| *p > 0) else {
        out.problems.push(format!(
            "service {namespace}/{name} port {} has no nodePort (use a NodePort Service or isDirectConnect)",
            svc_port.port
        ));
        return;
    };
    let mut ips = BTreeSet::new();
    for pod in selected_pods(world, namespace, selector) {
        // Pods on their way out do not make a node a useful target; readiness is kube-proxy's business.
        if is_terminating(pod) || is_finished(pod) {
            continue;
        }
        if let Some(ip) = host_ip(pod, world) {
            ips.insert(ip.to_owned());
        }
    }
    out.backends
        .extend(ips.into_iter().map(|ip| ListenerBackend {
            ip,
            port: node_port,
            weight,
        }));
}

/// Direct mode: pod IP (or hostIP + hostPort) of every running pod; unready or terminating pods get weight 0.
#[allow(clippy::too_many_arguments)]
fn direct_backends(
    namespace: &str,
    selector: &BTreeMap<String, String>,
    svc_port: &ServicePort,
    use_host_port: bool,
    weight: i32,
    world: &World,
    seen: &mut BTreeSet<(String, i32)>,
    out: &mut RouteBackends,
) {
    let protocol = svc_port.protocol.as_deref().unwrap_or("TCP");
    for pod in selected_pods(world, namespace, selector) {
        if !is_running(pod) || all_containers_terminated(pod) {
            continue;
        }
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let container_port =
            find_container_port(pod, svc_port.target_port.as_ref(), svc_port.port, protocol);
        let (ip, port) = if use_host_port {
            let Some(host_port) = container_port.and_then(|c| c.host_port).filter(|p| *p > 0)
            else {
                out.problems.push(format!(
                    "pod {namespace}/{pod_name} declares no hostPort for target port {}",
                    target_port_text(svc_port)
                ));
                continue;
            };
            let Some(ip) = host_ip(pod, world) else {
                continue;
            };
            (ip.to_owned(), host_port)
        } else {
            let port = match &svc_port.target_port {
                Some(IntOrString::Int(p)) if *p > 0 => *p,
                None => svc_port.port,
                _ => match container_port {
                    Some(c) => c.container_port,
                    None => {
                        out.problems.push(format!(
                            "pod {namespace}/{pod_name} has no {protocol} container port named {}",
                            target_port_text(svc_port)
                        ));
                        continue;
                    }
                },
            };
            let Some(ip) = pod_ip(pod) else { continue };
            (ip.to_owned(), port)
        };
        if !seen.insert((ip.clone(), port)) {
            continue;
        }
        let weight = pod_weight(pod, weight, &mut out.problems);
        out.backends.push(ListenerBackend { ip, port, weight });
    }
}

/// Endpoints of a selector-less Service: ready endpoints at full weight, serving-but-terminating at 0.
fn endpoint_slice_backends(
    service: &Service,
    svc_port: &ServicePort,
    weight: i32,
    world: &World,
    out: &mut RouteBackends,
) {
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for slice in world.endpoint_slices.iter().filter(|s| {
        s.metadata.namespace.as_deref().unwrap_or("default") == namespace
            && s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|n| n == name)
    }) {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| {
                p.name.as_deref().unwrap_or_default()
                    == svc_port.name.as_deref().unwrap_or_default()
            })
            .and_then(|p| p.port)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let w = if ready && !terminating { weight } else { 0 };
            for ip in &endpoint.addresses {
                if seen.insert((ip.clone(), port)) {
                    out.backends.push(ListenerBackend {
                        ip: ip.clone(),
                        port,
                        weight: w,
                    });
                }
            }
        }
    }
}

/// Pods of `namespace` whose labels include every pair of `selector` (non-empty), in name order.
pub(crate) fn selected_pods<'w>(
    world: &'w World,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> Vec<&'w Pod> {
    let mut pods: Vec<&Pod> = world
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref().unwrap_or("default") == namespace)
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// The container port a Service target port refers to: by number or by name, with the Service port's protocol.
pub(crate) fn find_container_port<'p>(
    pod: &'p Pod,
    target: Option<&IntOrString>,
    service_port: i32,
    protocol: &str,
) -> Option<&'p ContainerPort> {
    let matches = |c: &ContainerPort| match target {
        Some(IntOrString::Int(n)) => c.container_port == *n,
        Some(IntOrString::String(s)) => s.parse::<i32>().map_or_else(
            |_| c.name.as_deref() == Some(s.as_str()),
            |n| c.container_port == n,
        ),
        None => c.container_port == service_port,
    };
    container_ports(pod).find(|c| {
        matches(c)
            && c.protocol
                .as_deref()
                .unwrap_or("TCP")
                .eq_ignore_ascii_case(protocol)
    })
}

/// Every port declared by the pod's containers.
pub(crate) fn container_ports(pod: &Pod) -> impl Iterator<Item = &ContainerPort> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
}

fn target_port_text(p: &ServicePort) -> String {
    match &p.target_port {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => format!("{s:?}"),
        None => p.port.to_string(),
    }
}

/// Weight of a direct backend: 0 while terminating or not ready (so CLB drains it), else the pod's
/// `clb-weight` annotation (or the manual's spelling of it), else `default`.
pub(crate) fn pod_weight(pod: &Pod, default: i32, problems: &mut Vec<String>) -> i32 {
    if is_terminating(pod) || !is_ready(pod) {
        return 0;
    }
    pod_clb_weight(pod, problems).unwrap_or(default)
}

/// The pod's `clb-weight` annotation when it holds a weight; a bad value is a problem.
pub(crate) fn pod_clb_weight(pod: &Pod, problems: &mut Vec<String>) -> Option<i32> {
    let (value, _) = weight::weight_value(pod.metadata.annotations.as_ref()?)?;
    let parsed = weight::parse_weight(value);
    if parsed.is_none() {
        problems.push(format!(
            "pod {}/{}: annotation {ANNOTATION_CLB_WEIGHT}={value:?} is not a weight 0-100; using the default",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
        ));
    }
    parsed
}

pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

pub(crate) fn is_running(pod: &Pod) -> bool {
    phase(pod) == Some("Running")
}

fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// `ContainersReady` is True (the pod's own readiness, independent of readiness gates such as port binding).
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "ContainersReady" && c.status == "True")
        })
}

fn all_containers_terminated(pod: &Pod) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    !statuses.is_empty()
        && statuses
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

pub(crate) fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

/// `status.hostIP`, else the InternalIP of `spec.nodeName`.
pub(crate) fn host_ip<'w>(pod: &'w Pod, world: &'w World) -> Option<&'w str> {
    pod.status
        .as_ref()
        .and_then(|s| s.host_ip.as_deref())
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| world.node_internal_ip(n))
        })
}
