//! Listener protocols and the port-space rules the CLB API applies to them.

use std::fmt;

/// A CLB listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Layer-4 TCP.
    Tcp,
    /// Layer-4 TCP with TLS offload (needs a certificate).
    TcpSsl,
    /// Layer-7 HTTP: targets and health checks live on the listener's rules.
    Http,
    /// Layer-7 HTTPS: targets and health checks live on the listener's rules.
    Https,
    /// Layer-4 UDP.
    Udp,
    /// Layer-4 QUIC (UDP port space).
    Quic,
}

/// Protocols of one class share a port space on a load balancer: TCP:80 and HTTP:80 collide, TCP:80 and UDP:80
/// do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortClass {
    /// TCP, TCP_SSL, HTTP, HTTPS.
    Tcp,
    /// UDP, QUIC.
    Udp,
}

impl Protocol {
    /// Every protocol the API accepts for CreateListener.
    pub const ALL: [Protocol; 6] = [
        Protocol::Tcp,
        Protocol::TcpSsl,
        Protocol::Http,
        Protocol::Https,
        Protocol::Udp,
        Protocol::Quic,
    ];

    /// The upper-case name the API uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::TcpSsl => "TCP_SSL",
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Udp => "UDP",
            Protocol::Quic => "QUIC",
        }
    }

    /// Parses a protocol name case-insensitively, as the API accepts it.
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }

    /// The port space this protocol lives in.
    pub fn port_class(self) -> PortClass {
        match self {
            Protocol::Udp | Protocol::Quic => PortClass::Udp,
            _ => PortClass::Tcp,
        }
    }

    /// HTTP and HTTPS are layer 7: targets bind to rules and health checks are set per rule.
    pub fn is_l7(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }

    /// Layer 4: targets and the health check are set on the listener itself.
    pub fn is_l4(self) -> bool {
        !self.is_l7()
    }

    /// Protocols whose listener carries a certificate (HTTPS only when SNI is off).
    pub fn takes_certificate(self) -> bool {
        matches!(self, Protocol::Https | Protocol::TcpSsl | Protocol::Quic)
    }

    /// The health-check `CheckType` a new layer-4 listener gets: UDP-class listeners are probed with PING,
    /// TCP-class ones with a TCP handshake.
    pub fn default_check_type(self) -> &'static str {
        match self.port_class() {
            PortClass::Udp => "PING",
            PortClass::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            format!("protocol `{s}` is not one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_classes() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::parse(&p.as_str().to_lowercase()), Some(p));
        }
        assert_eq!(Protocol::parse("SCTP"), None);
        assert_eq!(Protocol::Quic.port_class(), PortClass::Udp);
        assert_eq!(Protocol::Https.port_class(), PortClass::Tcp);
        assert!(Protocol::Http.is_l7() && Protocol::TcpSsl.is_l4());
        assert_eq!(Protocol::Udp.default_check_type(), "PING");
    }
}
