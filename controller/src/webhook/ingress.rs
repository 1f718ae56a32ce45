//! Ingress admission, pure: [`crate::ingress::validate`] first, then cluster-wide port
//! conflicts against every other Ingress and PortPool ([`crate::ingress::find_conflicts`]).
//!
//! Unlike bcs, CLBs are not resolved through the cloud at admission: claims are keyed by what the
//! annotation says (`region:lb-id`, or `region:name` for `lbnames`), so an Ingress that names its CLB
//! by name is only compared with others that use the same name.

use crate::api::Ingress;
use crate::ingress::{Settings, find_conflicts, ingress_claims, parse_lb_annotations, validate};

use super::ClusterView;

/// CREATE or UPDATE of an Ingress: every problem found; empty = allowed.
pub fn review_ingress(ingress: &Ingress, view: &ClusterView, settings: &Settings) -> Vec<String> {
    let errors = validate(ingress, settings);
    if !errors.is_empty() {
        return errors;
    }
    let Ok(selection) = parse_lb_annotations(
        ingress.metadata.annotations.as_ref(),
        &settings.default_region,
    ) else {
        // validate() reports an unusable annotation; nothing to compare without CLBs.
        return errors;
    };
    let candidate = ingress_claims(ingress, selection.keys());
    let existing = view.claims(settings);
    find_conflicts(&candidate, &existing, settings.tcp_udp_port_reuse)
        .into_iter()
        .map(|c| format!("{}: {}", c.claim.source, c.message))
        .collect()
}
