//! The `ports.portpools…` request grammar.
//!
//! ```text
//! annotation := entry (("\n" | ";") entry)*          blank entries are ignored
//! entry      := poolref [protocol] port["/hostport"]  fields separated by whitespace
//! poolref    := pool[/item][.namespace] | pool.namespace/item
//! protocol   := TCP | UDP | TCP_UDP                   (case-insensitive)
//! port       := container port number | container port name
//! ```
//!
//! Unlike bcs, the two-field form (no protocol) is accepted as the user guide shows it:
//! the protocol is the container port's.

use std::collections::HashMap;
use std::fmt;

use super::AnnotationError;
use crate::allocator::{Protocol, RequestProtocol};

const ENTRY_SHAPE: &str = "\"<pool>[/<item>][.<namespace>] [<protocol>] <port>[/hostport]\"";

/// A container port of the pod, as declared in its spec (input to the parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    /// `ports[].name`, if any.
    pub name: Option<String>,
    /// `ports[].containerPort`.
    pub container_port: u16,
    /// `ports[].protocol` as written; `None` means TCP (the Kubernetes default).
    pub protocol: Option<String>,
}

/// Where an entry sits in the annotation (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line number.
    pub line: usize,
    /// Entry number within the line when the line holds several `;`-separated entries.
    pub entry: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some(entry) => write!(f, "line {}, entry {}", self.line, entry),
            None => write!(f, "line {}", self.line),
        }
    }
}

/// The pool an entry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRef {
    /// PortPool name.
    pub name: String,
    /// PortPool namespace (the pod's when not written).
    pub namespace: String,
    /// Pinned item, if written as `pool/item`.
    pub item: Option<String>,
}

/// Where the protocol of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolSource {
    /// Written in the entry.
    Explicit,
    /// Taken from the container port (two-field form).
    ContainerPort,
}

/// One resolved port request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    /// Pool (and optional item).
    pub pool: PoolRef,
    /// Protocol(s) to allocate.
    pub protocol: RequestProtocol,
    /// Whether the protocol was written or inherited.
    pub protocol_source: ProtocolSource,
    /// The container port the CLB port forwards to (`rsStartPort`).
    pub container_port: u16,
    /// Bind the LB to the container port's hostPort instead.
    pub hostport: bool,
    /// Where the entry is, for later error messages.
    pub location: Location,
}

/// Parses the `ports.portpools…` annotation of a pod in `pod_namespace` whose containers
/// declare `ports`. Every entry must resolve to a declared container port; the same
/// (pool, protocol, container port) may not be requested twice.
pub fn parse_port_requests(
    value: &str,
    pod_namespace: &str,
    ports: &[ContainerPort],
) -> Result<Vec<PortRequest>, AnnotationError> {
    let mut requests = Vec::new();
    let mut seen: HashMap<(String, String, Protocol, u16), Location> = HashMap::new();
    for (location, text) in entries(value) {
        let request = parse_entry(text, location, pod_namespace, ports)
            .map_err(|message| AnnotationError::Entry { location, message })?;
        for protocol in request.protocol.protocols() {
            let key = (
                request.pool.namespace.clone(),
                request.pool.name.clone(),
                *protocol,
                request.container_port,
            );
            if let Some(first) = seen.insert(key, location) {
                return Err(AnnotationError::Entry {
                    location,
                    message: format!(
                        "{protocol} port {} of pool {}/{} is already requested on {first}",
                        request.container_port, request.pool.namespace, request.pool.name
                    ),
                });
            }
        }
        requests.push(request);
    }
    if requests.is_empty() {
        return Err(AnnotationError::Empty);
    }
    Ok(requests)
}

/// Splits the annotation into non-blank entries with their location.
fn entries(value: &str) -> Vec<(Location, &str)> {
    let mut out = Vec::new();
    for (line_index, line) in value.lines().enumerate() {
        let parts: Vec<&str> = line
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let several = parts.len() > 1;
        for (entry_index, part) in parts.into_iter().enumerate() {
            let location = Location {
                line: line_index + 1,
                entry: several.then_some(entry_index + 1),
            };
            out.push((location, part));
        }
    }
    out
}

fn parse_entry(
    text: &str,
    location: Location,
    pod_namespace: &str,
    ports: &[ContainerPort],
) -> Result<PortRequest, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (pool_token, protocol_token, port_token) = match fields.as_slice() {
        [pool, protocol, port] => (*pool, Some(*protocol), *port),
        [pool, port] => (*pool, None, *port),
        [only] => {
            return Err(format!(
                "expected {ENTRY_SHAPE}, found only \"{only}\" (missing port)"
            ));
        }
        many => {
            return Err(format!(
                "expected {ENTRY_SHAPE}, found {} fields in \"{text}\"",
                many.len()
            ));
        }
    };
    let pool = parse_pool_ref(pool_token, pod_namespace)?;
    let explicit = protocol_token.map(parse_protocol).transpose()?;
    let (port_text, hostport) = match port_token.split_once('/') {
        None => (port_token, false),
        Some((port, suffix)) if suffix.eq_ignore_ascii_case("hostport") => (port, true),
        Some((_, suffix)) => {
            return Err(format!(
                "unknown port suffix \"/{suffix}\" in \"{port_token}\" (only \"/hostport\" is allowed)"
            ));
        }
    };
    if port_text.is_empty() {
        return Err(format!(
            "missing port before \"/hostport\" in \"{port_token}\""
        ));
    }
    let (matches, what): (Vec<&ContainerPort>, String) =
        if port_text.bytes().all(|b| b.is_ascii_digit()) {
            let number = port_text
                .parse::<u32>()
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
                .ok_or_else(|| format!("port {port_text} is out of range 1-65535"))?;
            (
                ports
                    .iter()
                    .filter(|p| p.container_port == number)
                    .collect(),
                format!("container port {number}"),
            )
        } else {
            (
                ports
                    .iter()
                    .filter(|p| p.name.as_deref() == Some(port_text))
                    .collect(),
                format!("port name \"{port_text}\""),
            )
        };
    let Some(first) = matches.first() else {
        let hint = if protocol_token.is_none() && parse_protocol(port_text).is_ok() {
            format!(" (the entry has a protocol but no port: {ENTRY_SHAPE})")
        } else {
            String::new()
        };
        return Err(format!("{what} not found in the pod's containers{hint}"));
    };
    let (protocol, protocol_source) = match explicit {
        Some(protocol) => (protocol, ProtocolSource::Explicit),
        None => (
            inherit_protocol(&what, &matches)?,
            ProtocolSource::ContainerPort,
        ),
    };
    Ok(PortRequest {
        pool,
        protocol,
        protocol_source,
        container_port: first.container_port,
        hostport,
        location,
    })
}

fn parse_protocol(token: &str) -> Result<RequestProtocol, String> {
    match token.to_ascii_uppercase().as_str() {
        "TCP" => Ok(RequestProtocol::Tcp),
        "UDP" => Ok(RequestProtocol::Udp),
        "TCP_UDP" => Ok(RequestProtocol::TcpUdp),
        "TCP_SSL" => Err(
            "protocol TCP_SSL is not served by port pools (expected TCP, UDP or TCP_UDP)"
                .to_string(),
        ),
        _ => Err(format!(
            "unknown protocol \"{token}\" (expected TCP, UDP or TCP_UDP)"
        )),
    }
}

/// Protocol of the matching container ports for the two-field form.
fn inherit_protocol(what: &str, matches: &[&ContainerPort]) -> Result<RequestProtocol, String> {
    let mut found: Vec<&str> = matches
        .iter()
        .map(|p| p.protocol.as_deref().unwrap_or("TCP"))
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => match one.to_ascii_uppercase().as_str() {
            "TCP" => Ok(RequestProtocol::Tcp),
            "UDP" => Ok(RequestProtocol::Udp),
            _ => Err(format!(
                "{what} uses protocol {one}, which port pools do not serve (use TCP or UDP)"
            )),
        },
        several => Err(format!(
            "{what} is declared with protocols {}; write the protocol (TCP, UDP or TCP_UDP)",
            several.join(" and ")
        )),
    }
}

/// Parses `pool`, `pool.ns`, `pool/item`, `pool/item.ns` or `pool.ns/item`.
fn parse_pool_ref(token: &str, pod_namespace: &str) -> Result<PoolRef, String> {
    let invalid = |why: &str| {
        format!(
            "invalid pool reference \"{token}\": {why} (expected <pool>[/<item>][.<namespace>])"
        )
    };
    let (name, namespace, item) = match token.split_once('/') {
        Some((_, right)) if right.contains('/') => return Err(invalid("more than one '/'")),
        Some((left, right)) => match left.split_once('.') {
            Some((name, ns)) => (name, Some(ns), Some(right)),
            None => match right.rsplit_once('.') {
                Some((item, ns)) => (left, Some(ns), Some(item)),
                None => (left, None, Some(right)),
            },
        },
        None => match token.split_once('.') {
            Some((name, ns)) => (name, Some(ns), None),
            None => (token, None, None),
        },
    };
    if !is_dns_label(name, 253) {
        return Err(invalid(
            "the pool name must be lowercase letters, digits and '-'",
        ));
    }
    if let Some(ns) = namespace
        && !is_dns_label(ns, 63)
    {
        return Err(invalid(
            "the namespace must be lowercase letters, digits and '-'",
        ));
    }
    if item.is_some_and(str::is_empty) {
        return Err(invalid("the item name after '/' is empty"));
    }
    Ok(PoolRef {
        name: name.to_string(),
        namespace: namespace.unwrap_or(pod_namespace).to_string(),
        item: item.map(str::to_string),
    })
}

/// RFC 1123 label (up to `max` bytes): namespaces, and object names without dots since the
/// grammar uses '.' as the namespace separator.
fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
