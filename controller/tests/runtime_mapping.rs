//! Listener CR → sync model conversion (`controllers::listener::desired`), pure.

use clb_controller::api::{Listener, keys};
use clb_controller::cloud::LbRef;
use clb_controller::controllers::listener::desired::{
    deleting_listener, desired_listener, has_finalizer, key_of, lb_of, owner_of,
};
use clb_controller::sync::{
    Certificate, Endpoint, HealthCheck, ListenerKey, Protocol, RuleKey, Scheduler,
};
use serde_json::json;

/// Named `runtime` so that `cargo test -p clb-controller runtime` selects these tests.
mod runtime {
    use super::*;

    fn listener(value: serde_json::Value) -> Listener {
        serde_json::from_value(value).expect("valid Listener")
    }

    #[test]
    fn l4_listener_with_targets_and_attributes() {
        let cr = listener(json!({
            "apiVersion": "networkextension.bkbcs.tencent.com/v1",
            "kind": "Listener",
            "metadata": {"name": "lb-1-8080", "namespace": "game",
                         "finalizers": [keys::FINALIZER_CONTROLLER]},
            "spec": {
                "loadbalancerID": "lb-1", "port": 8080, "protocol": "TCP",
                "listenerAttribute": {
                    "sessionTime": 90, "lbPolicy": "LEAST_CONN",
                    "healthCheck": {"enabled": true, "timeout": 3, "intervalTime": 10}
                },
                "targetGroup": {"backends": [
                    {"IP": "10.0.0.2", "port": 80, "weight": 10},
                    {"IP": "10.0.0.1", "port": 80, "weight": 50}
                ]}
            },
            "status": {"listenerID": "lbl-abc", "status": "Synced"}
        }));
        let d = desired_listener(&cr).unwrap();
        assert_eq!(d.owner, "game/lb-1-8080");
        assert_eq!(d.name, "lb-1-8080");
        assert_eq!(d.key, ListenerKey::single(Protocol::Tcp, 8080));
        assert_eq!(d.known_listener_id.as_deref(), Some("lbl-abc"));
        let attrs = d.attributes.expect("L4 attributes");
        assert_eq!(attrs.session_expire_time, 90);
        assert_eq!(attrs.scheduler, Some(Scheduler::LeastConn));
        assert_eq!(
            attrs.health_check,
            Some(HealthCheck {
                enabled: true,
                timeout: Some(3),
                interval: Some(10),
                ..HealthCheck::default()
            })
        );
        assert_eq!(d.targets.len(), 2);
        let weight = |ip: &str| {
            d.targets.weight(&Endpoint {
                ip: ip.into(),
                port: 80,
            })
        };
        assert_eq!(weight("10.0.0.1"), Some(50));
        assert_eq!(weight("10.0.0.2"), Some(10));
        assert!(d.rules.is_empty());
        assert!(has_finalizer(&cr));
    }

    #[test]
    fn l7_listener_with_rules_certificate_and_sni() {
        let cr = listener(json!({
            "metadata": {"name": "lb-1-https-443", "namespace": "web"},
            "spec": {
                "loadbalancerID": "lb-1", "port": 443, "protocol": "HTTPS",
                "listenerAttribute": {"sniSwitch": 1, "keepAliveEnable": 1, "sessionTime": 30},
                "certificate": {"mode": "MUTUAL", "certID": "cert-1", "certCaID": "ca-1"},
                "rules": [
                    {"domain": "a.example.com", "path": "/api",
                     "certificate": {"certID": "cert-a"},
                     "listenerAttribute": {"lbPolicy": "IP_HASH"},
                     "targetGroup": {"backends": [{"IP": "10.0.0.3", "port": 8080, "weight": 100}]}},
                    {"domain": "b.example.com"}
                ]
            }
        }));
        let d = desired_listener(&cr).unwrap();
        assert_eq!(d.key, ListenerKey::single(Protocol::Https, 443));
        assert!(d.sni_switch);
        assert!(d.keepalive);
        // L7 listeners carry attributes on rules only.
        assert_eq!(d.attributes, None);
        assert_eq!(
            d.certificate,
            Some(Certificate {
                mode: "MUTUAL".into(),
                cert_id: "cert-1".into(),
                ca_cert_id: Some("ca-1".into()),
            })
        );
        assert_eq!(d.known_listener_id, None);
        assert!(d.targets.is_empty());
        assert_eq!(d.rules.len(), 2);
        let first = &d.rules[0];
        assert_eq!(first.key, RuleKey::new("a.example.com", "/api"));
        assert_eq!(
            first.certificate.as_ref().map(|c| c.mode.as_str()),
            Some("UNIDIRECTIONAL")
        );
        assert_eq!(
            first.attributes.as_ref().and_then(|a| a.scheduler),
            Some(Scheduler::IpHash)
        );
        assert_eq!(first.targets.len(), 1);
        // A rule without a path serves "/".
        assert_eq!(d.rules[1].key, RuleKey::new("b.example.com", "/"));
        assert!(d.rules[1].targets.is_empty());
    }

    #[test]
    fn range_listener_and_bad_ranges() {
        let mut cr = listener(json!({
            "metadata": {"name": "lb-1-udp-30000-30009", "namespace": "game"},
            "spec": {"loadbalancerID": "lb-1", "port": 30000, "endPort": 30009, "protocol": "UDP",
                     "targetGroup": {"backends": [{"IP": "10.0.0.9", "port": 30000, "weight": 10}]}}
        }));
        let d = desired_listener(&cr).unwrap();
        assert_eq!(d.key, ListenerKey::range(Protocol::Udp, 30000, 30009));
        assert_eq!(d.targets.len(), 1);

        // endPort 0 means a single port.
        cr.spec.end_port = Some(0);
        assert_eq!(
            key_of(&cr.spec).unwrap(),
            ListenerKey::single(Protocol::Udp, 30000)
        );

        cr.spec.end_port = Some(29999);
        let err = desired_listener(&cr).unwrap_err();
        assert!(err.to_string().contains("endPort 29999"), "{err}");
        // Deleting never fails: it falls back to the single port.
        assert_eq!(
            deleting_listener(&cr).key,
            ListenerKey::single(Protocol::Udp, 30000)
        );
    }

    #[test]
    fn rejects_what_the_cloud_cannot_hold() {
        let l7_with_backends = listener(json!({
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"loadbalancerID": "lb-1", "port": 80, "protocol": "HTTP",
                     "targetGroup": {"backends": [{"IP": "10.0.0.1", "port": 80, "weight": 10}]}}
        }));
        assert!(desired_listener(&l7_with_backends).is_err());
        let l4_with_rules = listener(json!({
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"loadbalancerID": "lb-1", "port": 80, "protocol": "TCP",
                     "rules": [{"domain": "a.com"}]}
        }));
        assert!(desired_listener(&l4_with_rules).is_err());
        let bad_weight = listener(json!({
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"loadbalancerID": "lb-1", "port": 80, "protocol": "TCP",
                     "targetGroup": {"backends": [{"IP": "10.0.0.1", "port": 80, "weight": 101}]}}
        }));
        let err = desired_listener(&bad_weight).unwrap_err();
        assert!(err.to_string().contains("weight 101"), "{err}");
    }

    #[test]
    fn deleting_listener_carries_status_id() {
        let cr = listener(json!({
            "metadata": {"name": "lb-1-80", "namespace": "n"},
            "spec": {"loadbalancerID": "lb-1", "port": 80, "protocol": "TCP"},
            "status": {"listenerID": "lbl-1"}
        }));
        let d = deleting_listener(&cr);
        assert_eq!(d.owner, owner_of(&cr));
        assert_eq!(d.known_listener_id.as_deref(), Some("lbl-1"));
        assert_eq!(d.key, ListenerKey::single(Protocol::Tcp, 80));
        // An empty id is no id.
        let blank = listener(json!({
            "metadata": {"name": "lb-1-80", "namespace": "n"},
            "spec": {"loadbalancerID": "lb-1", "port": 80, "protocol": "TCP"},
            "status": {"listenerID": " "}
        }));
        assert_eq!(deleting_listener(&blank).known_listener_id, None);
    }

    #[test]
    fn region_from_prefix_then_label_then_default() {
        let mut cr = listener(json!({
            "metadata": {"name": "x", "namespace": "n",
                         "labels": {keys::LABEL_LB_REGION: "ap-shanghai"}},
            "spec": {"loadbalancerID": "ap-beijing:lb-1", "port": 80, "protocol": "TCP"}
        }));
        assert_eq!(
            lb_of(&cr, "ap-guangzhou").unwrap(),
            LbRef::new("ap-beijing", "lb-1")
        );
        cr.spec.loadbalancer_id = "lb-1".into();
        assert_eq!(
            lb_of(&cr, "ap-guangzhou").unwrap(),
            LbRef::new("ap-shanghai", "lb-1")
        );
        cr.metadata.labels = None;
        assert_eq!(
            lb_of(&cr, "ap-guangzhou").unwrap(),
            LbRef::new("ap-guangzhou", "lb-1")
        );
        assert!(lb_of(&cr, "").is_err());
    }
}
