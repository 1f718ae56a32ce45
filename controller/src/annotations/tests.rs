use super::*;
use crate::allocator::{Protocol, RequestProtocol};
use proptest::prelude::*;

fn port(name: Option<&str>, number: u16, protocol: Option<&str>) -> ContainerPort {
    ContainerPort {
        name: name.map(str::to_string),
        container_port: number,
        protocol: protocol.map(str::to_string),
    }
}

/// Ports covering every example of the user guide.
fn guide_ports() -> Vec<ContainerPort> {
    vec![
        port(None, 80, None),
        port(None, 8000, Some("TCP")),
        port(Some("httpport"), 8080, Some("TCP")),
        port(Some("game"), 7000, Some("UDP")),
        port(Some("sctp"), 9000, Some("SCTP")),
    ]
}

/// (namespace, pool, item, protocol, source, container port, hostport) of each request.
type Summary = (
    String,
    String,
    Option<String>,
    RequestProtocol,
    ProtocolSource,
    u16,
    bool,
);

fn summary(value: &str) -> Vec<Summary> {
    parse_port_requests(value, "test", &guide_ports())
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.pool.namespace,
                r.pool.name,
                r.pool.item,
                r.protocol,
                r.protocol_source,
                r.container_port,
                r.hostport,
            )
        })
        .collect()
}

fn s(
    ns: &str,
    pool: &str,
    item: Option<&str>,
    protocol: RequestProtocol,
    source: ProtocolSource,
    port: u16,
    hostport: bool,
) -> Summary {
    (
        ns.to_string(),
        pool.to_string(),
        item.map(str::to_string),
        protocol,
        source,
        port,
        hostport,
    )
}

use ProtocolSource::{ContainerPort as Inherited, Explicit};
use RequestProtocol::{Tcp, TcpUdp, Udp};

#[test]
fn guide_quick_start_and_section_10_forms() {
    assert_eq!(
        summary("pool1 TCP 80"),
        [s("test", "pool1", None, Tcp, Explicit, 80, false)]
    );
    assert_eq!(
        summary("test-pool1 TCP 80"),
        [s("test", "test-pool1", None, Tcp, Explicit, 80, false)]
    );
}

#[test]
fn guide_more_annotation_forms() {
    // Each value below is copied from "更多Pod注解形式" of the user guide.
    assert_eq!(
        summary("portpool-sample TCP 8000"),
        [s(
            "test",
            "portpool-sample",
            None,
            Tcp,
            Explicit,
            8000,
            false
        )]
    );
    assert_eq!(
        summary("portpool-sample TCP_UDP 8000"),
        [s(
            "test",
            "portpool-sample",
            None,
            TcpUdp,
            Explicit,
            8000,
            false
        )]
    );
    assert_eq!(
        summary("portpool1.ns1 TCP 8000"),
        [s("ns1", "portpool1", None, Tcp, Explicit, 8000, false)]
    );
    assert_eq!(
        summary("portpool1.ns1 TCP 8000/hostport"),
        [s("ns1", "portpool1", None, Tcp, Explicit, 8000, true)]
    );
    assert_eq!(
        summary("portpool1.ns1 TCP httpport"),
        [s("ns1", "portpool1", None, Tcp, Explicit, 8080, false)]
    );
    // Two-field form (bcs rejects it): protocol from the container port.
    assert_eq!(
        summary("portpool1.ns1 httpport"),
        [s("ns1", "portpool1", None, Tcp, Inherited, 8080, false)]
    );
    let expected = [
        s("ns1", "portpool1", None, Tcp, Explicit, 8000, false),
        s("ns1", "portpool1", None, Udp, Explicit, 8000, false),
        s("ns1", "portpool2", None, Tcp, Explicit, 8080, false),
    ];
    // YAML `|-` block: one entry per line.
    assert_eq!(
        summary("portpool1.ns1 TCP 8000\nportpool1.ns1 UDP 8000\nportpool2.ns1 TCP 8080"),
        expected
    );
    assert_eq!(
        summary("portpool1.ns1 TCP 8000;portpool1.ns1 UDP 8000;portpool2.ns1 TCP 8080"),
        expected
    );
}

#[test]
fn item_pinning_forms_and_inherited_udp() {
    assert_eq!(
        summary("pool1/item1 TCP 80"),
        [s("test", "pool1", Some("item1"), Tcp, Explicit, 80, false)]
    );
    assert_eq!(
        summary("pool1/item1.ns1 UDP game"),
        [s("ns1", "pool1", Some("item1"), Udp, Explicit, 7000, false)]
    );
    assert_eq!(
        summary("pool1.ns1/item1 game/hostport"),
        [s("ns1", "pool1", Some("item1"), Udp, Inherited, 7000, true)]
    );
    // Whitespace, CRLF, lower-case protocol and blank lines are tolerated.
    assert_eq!(
        summary("\r\n  pool1\ttcp   80 \r\n\n ; pool1 udp 80;\n"),
        [
            s("test", "pool1", None, Tcp, Explicit, 80, false),
            s("test", "pool1", None, Udp, Explicit, 80, false),
        ]
    );
}

fn error(value: &str) -> String {
    parse_port_requests(value, "test", &guide_ports())
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_entries_say_what_and_where() {
    let cases = [
        (
            "pool1 TCP 80\npool1 TPC 8000",
            "line 2: unknown protocol \"TPC\" (expected TCP, UDP or TCP_UDP)",
        ),
        (
            "pool1 TCP game2",
            "line 1: port name \"game2\" not found in the pod's containers",
        ),
        (
            "pool1 TCP 80;pool1 UDP 81",
            "line 1, entry 2: container port 81 not found in the pod's containers",
        ),
        (
            "pool1 TCP",
            "line 1: port name \"TCP\" not found in the pod's containers (the entry has a protocol but no port: \"<pool>[/<item>][.<namespace>] [<protocol>] <port>[/hostport]\")",
        ),
        (
            "pool1",
            "line 1: expected \"<pool>[/<item>][.<namespace>] [<protocol>] <port>[/hostport]\", found only \"pool1\" (missing port)",
        ),
        (
            "pool1 TCP 80 extra",
            "line 1: expected \"<pool>[/<item>][.<namespace>] [<protocol>] <port>[/hostport]\", found 4 fields in \"pool1 TCP 80 extra\"",
        ),
        (
            "pool1 TCP 80/hostPorts",
            "line 1: unknown port suffix \"/hostPorts\" in \"80/hostPorts\" (only \"/hostport\" is allowed)",
        ),
        (
            "pool1 TCP /hostport",
            "line 1: missing port before \"/hostport\" in \"/hostport\"",
        ),
        (
            "pool1 TCP 70000",
            "line 1: port 70000 is out of range 1-65535",
        ),
        ("pool1 TCP 0", "line 1: port 0 is out of range 1-65535"),
        (
            "pool1 TCP_SSL 80",
            "line 1: protocol TCP_SSL is not served by port pools (expected TCP, UDP or TCP_UDP)",
        ),
        (
            "Pool1 TCP 80",
            "line 1: invalid pool reference \"Pool1\": the pool name must be lowercase letters, digits and '-' (expected <pool>[/<item>][.<namespace>])",
        ),
        (
            "pool1.ns1.x TCP 80",
            "line 1: invalid pool reference \"pool1.ns1.x\": the namespace must be lowercase letters, digits and '-' (expected <pool>[/<item>][.<namespace>])",
        ),
        (
            "pool1/ TCP 80",
            "line 1: invalid pool reference \"pool1/\": the item name after '/' is empty (expected <pool>[/<item>][.<namespace>])",
        ),
        (
            "pool1/a/b TCP 80",
            "line 1: invalid pool reference \"pool1/a/b\": more than one '/' (expected <pool>[/<item>][.<namespace>])",
        ),
        (
            "pool1 sctp",
            "line 1: port name \"sctp\" uses protocol SCTP, which port pools do not serve (use TCP or UDP)",
        ),
        (
            "pool1 TCP 8000\npool1.test TCP_UDP 8000",
            "line 2: TCP port 8000 of pool test/pool1 is already requested on line 1",
        ),
        (
            " \n ; \n",
            "annotation ports.portpools.networkextension.bkbcs.tencent.com is empty: expected entries like \"<pool>[/<item>][.<namespace>] [<protocol>] <port>[/hostport]\"",
        ),
    ];
    for (value, message) in cases {
        assert_eq!(error(value), message, "annotation {value:?}");
    }
}

#[test]
fn two_field_form_with_a_port_declared_twice_asks_for_the_protocol() {
    let ports = [port(None, 8000, Some("TCP")), port(None, 8000, Some("UDP"))];
    let err = parse_port_requests("pool1 8000", "test", &ports).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: container port 8000 is declared with protocols TCP and UDP; write the protocol (TCP, UDP or TCP_UDP)"
    );
    let ok = parse_port_requests("pool1 TCP_UDP 8000", "test", &ports).unwrap();
    assert_eq!(ok[0].protocol, TcpUdp);
}

// ---- values written back ----

/// The bindings annotation of the guide (section 10, "为Pod注入自定义字段"), verbatim except the
/// YAML comment after "external" that is not part of the JSON.
const GUIDE_BINDINGS: &str = r#"[
    	{
        	"poolName":"test-pool1",
        	"poolNamespace":"test",
        	"loadBalancerIDs":[
         	   "lb-00001"
        	],
       	 	"poolItemLoadBalancers":[
       	     {
        	        "loadbalancerName":"test-nj-loadtest-public1",
        	        "loadbalancerID":"lb-00001",
       	        	"region":"ap-nanjing",
        	        "type":"OPEN",
                	"ips":[
                  		"1.1.1.1"
                	]
            }
        	],
        	"poolItemName":"item1",
        	"protocol":"TCP",
        	"startPort":31000,
        	"endPort":0,
        	"rsStartPort":80,
			"external":"test"
    	}
    ]"#;

/// The downward-API file content of the guide, unescaped.
const GUIDE_COMPACT: &str = r#"[{"poolName":"test-pool1","poolNamespace":"test","loadBalancerIDs":["lb-00001"],"poolItemLoadBalancers":[{"loadbalancerName":"test-nj-loadtest-public1","loadbalancerID":"lb-00001","region":"ap-nanjing","type":"OPEN","ips":["1.1.1.1"]}],"poolItemName":"item1","protocol":"TCP","startPort":31001,"endPort":0,"rsStartPort":80}]"#;

#[test]
fn bindings_json_matches_the_guide_byte_for_byte() {
    let items = parse_pool_bindings(GUIDE_COMPACT).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].start_port, 31001);
    assert_eq!(render_pool_bindings(&items).unwrap(), GUIDE_COMPACT);

    let items = parse_pool_bindings(GUIDE_BINDINGS).unwrap();
    assert_eq!(items[0].external, "test");
    assert!(!items[0].host_port);
    let rendered = render_pool_bindings(&items).unwrap();
    assert!(
        rendered.ends_with(r#""rsStartPort":80,"external":"test"}]"#),
        "{rendered}"
    );
    assert_eq!(parse_pool_bindings(&rendered).unwrap(), items);
}

#[test]
fn bindings_keep_unknown_load_balancer_fields_and_optional_fields() {
    let value = r#"[{"poolName":"p","poolNamespace":"ns","loadBalancerIDs":["ap-nanjing:lb-1"],"listenerAttribute":{"sessionTime":30},"uptimeCheck":{"enabled":true},"poolItemLoadBalancers":[{"loadbalancerName":"n","loadbalancerID":"lb-1","region":"ap-nanjing","type":"OPEN","ips":["1.1.1.1","2.2.2.2"],"dnsName":"lb-1.example.com","scheme":"internet-facing"}],"poolItemName":"item1","protocol":"UDP","startPort":31000,"endPort":31004,"rsStartPort":7000,"hostPort":true}]"#;
    let items = parse_pool_bindings(value).unwrap();
    assert!(items[0].host_port);
    assert_eq!(items[0].protocol, BindingProtocol::Udp);
    assert_eq!(render_pool_bindings(&items).unwrap(), value);
    assert_eq!(
        env_var_value(&items[0]),
        "1.1.1.1,2.2.2.2,lb-1.example.com:31000-31004"
    );
}

#[test]
fn bindings_errors_are_reported() {
    let err = parse_pool_bindings(r#"[{"poolName":"p"}]"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("annotation poolbindings.portpool.networkextension.bkbcs.tencent.com is not valid JSON of port bindings: missing field `poolNamespace`"),
        "{err}"
    );
}

#[test]
fn env_vars_match_the_guide() {
    let items = parse_pool_bindings(GUIDE_BINDINGS).unwrap();
    let item = &items[0];
    assert_eq!(
        env_var_name(item.protocol.into(), item.rs_start_port),
        "BCS_PORTPOOL_PORT_VIPLIST_TCP_80"
    );
    assert_eq!(env_var_value(item), "1.1.1.1:31000");
    assert_eq!(
        env_var_name(Protocol::Udp, 7000),
        "BCS_PORTPOOL_PORT_VIPLIST_UDP_7000"
    );
    let mut segment = item.clone();
    segment.end_port = 31004;
    assert_eq!(env_var_value(&segment), "1.1.1.1:31000-31004");
}

proptest! {
    #[test]
    fn parser_never_panics(value in "\\PC*", ns in "[a-z]{0,5}") {
        let _ = parse_port_requests(&value, &ns, &guide_ports());
    }

    #[test]
    fn parser_never_panics_on_near_miss_grammar(
        value in "([a-z0-9./_-]{0,12}( |\t)(TCP|UDP|TCP_UDP|tpc|)( )?[a-z0-9/]{0,10}(\n|;| ;)?){0,4}"
    ) {
        match parse_port_requests(&value, "test", &guide_ports()) {
            Ok(requests) => prop_assert!(!requests.is_empty()),
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }
}
