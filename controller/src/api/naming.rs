//! Listener CR names. The name is also the cloud `ListenerName` (optionally prefixed with the
//! cluster id), and port-pool / port-binding code finds pool listeners by recomputing it, so it must match the
//! original exactly. All forms are `<lbID>[-<proto>]-<port>[-<end>]`:
//!
//! | Source | Condition | Name |
//! |---|---|---|
//! | Ingress rule | L7, or L4 without `TCP_UDP_PORT_REUSE` | `<lbID>-<port>` |
//! | Ingress rule | L4 with `TCP_UDP_PORT_REUSE=true` | `<lbID>-<proto>-<port>` |
//! | portMapping | segment, no reuse | `<lbID>-<start>-<end>` |
//! | portMapping | single port, no reuse | `<lbID>-<port>-0` (a literal `-0`) |
//! | portMapping | reuse | `<lbID>-<proto>-<start>[-<end>]` |
//! | PortPool / PortBinding | always | `<lbID>-<proto>-<start>[-<end>]` |
//!
//! `<proto>` is lower case without `_` (`tcpssl`). `lbID` is the bare id (`lb-xxx`), never `region:lb-xxx`.

use super::common::Protocol;

/// The protocol as it appears inside listener names: lower case with `_` removed (`TCP_SSL` → `tcpssl`).
pub fn protocol_token(p: Protocol) -> String {
    p.as_str().to_ascii_lowercase().replace('_', "")
}

/// The general form `<lbID>[-<proto>]-<port>[-<end>]`; `end_port: Some(0)` yields the literal `-0` of
/// per-port mapping listeners, `None` omits the suffix.
pub fn listener_name(
    lb_id: &str,
    port: i32,
    end_port: Option<i32>,
    protocol: Option<Protocol>,
) -> String {
    let mut name = String::with_capacity(lb_id.len() + 20);
    name.push_str(lb_id);
    if let Some(p) = protocol {
        name.push('-');
        name.push_str(&protocol_token(p));
    }
    name.push('-');
    name.push_str(&port.to_string());
    if let Some(end) = end_port {
        name.push('-');
        name.push_str(&end.to_string());
    }
    name
}

/// Listener of an Ingress rule: `<lbID>-<port>`, or `<lbID>-<proto>-<port>` for L4 rules when TCP and UDP may
/// share a port (`TCP_UDP_PORT_REUSE=true`). L7 rules never carry the protocol.
pub fn rule_listener_name(
    lb_id: &str,
    port: i32,
    protocol: Protocol,
    tcp_udp_port_reuse: bool,
) -> String {
    let proto = (tcp_udp_port_reuse && !protocol.is_l7()).then_some(protocol);
    listener_name(lb_id, port, None, proto)
}

/// Listener of an Ingress portMapping. `segment_end` is the inclusive last port of a segment listener, `None`
/// for per-port listeners.
pub fn mapping_listener_name(
    lb_id: &str,
    start_port: i32,
    segment_end: Option<i32>,
    protocol: Protocol,
    tcp_udp_port_reuse: bool,
) -> String {
    if tcp_udp_port_reuse {
        listener_name(lb_id, start_port, segment_end, Some(protocol))
    } else {
        listener_name(lb_id, start_port, Some(segment_end.unwrap_or(0)), None)
    }
}

/// Listener of a port-pool port (`end_port == 0`) or segment (`end_port` = inclusive last port):
/// `<lbID>-<proto>-<start>[-<end>]`. Also how a PortBinding finds the listener of its item.
pub fn pool_listener_name(
    lb_id: &str,
    protocol: Protocol,
    start_port: i32,
    end_port: i32,
) -> String {
    listener_name(
        lb_id,
        start_port,
        (end_port > 0).then_some(end_port),
        Some(protocol),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_carry_protocol_only_for_l4_with_reuse() {
        assert_eq!(
            rule_listener_name("lb-abc", 8080, Protocol::Tcp, false),
            "lb-abc-8080"
        );
        assert_eq!(
            rule_listener_name("lb-abc", 8080, Protocol::Udp, true),
            "lb-abc-udp-8080"
        );
        assert_eq!(
            rule_listener_name("lb-abc", 443, Protocol::TcpSsl, true),
            "lb-abc-tcpssl-443"
        );
        assert_eq!(
            rule_listener_name("lb-abc", 443, Protocol::Https, true),
            "lb-abc-443"
        );
    }

    #[test]
    fn mapping_names_without_reuse() {
        assert_eq!(
            mapping_listener_name("lb-abc", 30000, Some(30004), Protocol::Udp, false),
            "lb-abc-30000-30004"
        );
        assert_eq!(
            mapping_listener_name("lb-abc", 30001, None, Protocol::Udp, false),
            "lb-abc-30001-0"
        );
    }

    #[test]
    fn mapping_names_with_reuse() {
        assert_eq!(
            mapping_listener_name("lb-abc", 30000, Some(30004), Protocol::Tcp, true),
            "lb-abc-tcp-30000-30004"
        );
        assert_eq!(
            mapping_listener_name("lb-abc", 30001, None, Protocol::Tcp, true),
            "lb-abc-tcp-30001"
        );
    }

    #[test]
    fn pool_names_append_end_only_for_segments() {
        assert_eq!(
            pool_listener_name("lb-00001", Protocol::Tcp, 31000, 0),
            "lb-00001-tcp-31000"
        );
        assert_eq!(
            pool_listener_name("lb-00001", Protocol::Udp, 31000, 31004),
            "lb-00001-udp-31000-31004"
        );
    }
}
