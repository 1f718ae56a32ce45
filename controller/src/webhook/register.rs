//! `--webhook-register`: server-side apply of one ValidatingWebhookConfiguration pointing at this
//! controller, with the current `caBundle` (a generated CA changes on every start, so it is re-applied).
//!
//! Four webhooks: Ingress CREATE/UPDATE → `/ingress/v1/validate`, PortPool CREATE/UPDATE →
//! `/portpool/v1/validate`, PortPool DELETE → `/portpool/v1/delete` (bcs' split), all `sideEffects: None`; and
//! Pod CREATE → `/portpool/v1/validate-pod` in opted-in namespaces, `sideEffects: NoneOnDryRun` (ours: ties a
//! pod to its port reservation). All `failurePolicy: Fail`, `timeoutSeconds: 10`, `admissionReviewVersions: [v1]`.
//!
//! A MutatingWebhookConfiguration of the same name: Pod CREATE → `/portpool/v1/mutate`, only in namespaces
//! labelled `bcs-ingress-controller-inject=true`, `failurePolicy: Fail`, `timeoutSeconds: 10`,
//! `reinvocationPolicy: Never`, `sideEffects: NoneOnDryRun` (a dry run allocates nothing).

use std::net::SocketAddr;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, Patch, PatchParams};

use super::WebhookError;
use super::server::{
    PATH_INGRESS, PATH_POD_MUTATE, PATH_POD_VALIDATE, PATH_PORTPOOL, PATH_PORTPOOL_DELETE,
    PATH_RANDHOSTPORT_MUTATE,
};
use crate::CONTROLLER_NAME;
use crate::api::GROUP;
use crate::api::keys::LABEL_NAMESPACE_INJECT;

/// How the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookTarget {
    /// `https://host:port` (no path): local clusters, or a fixed address.
    Url(String),
    /// A Service in front of the controller (what a real cluster uses).
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
}

/// What to register.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Name of the ValidatingWebhookConfiguration.
    pub config_name: String,
    /// `None`: `https://<bound address>` (handy with port 0 on loopback).
    pub target: Option<WebhookTarget>,
    /// Also register the random-hostPort webhook in the mutating configuration.
    pub randhostport: bool,
}

impl Registration {
    /// The configuration for a server bound on `bound`, trusting `ca_pem`.
    pub fn configuration(&self, bound: SocketAddr, ca_pem: &str) -> ValidatingWebhookConfiguration {
        let target = self
            .target
            .clone()
            .unwrap_or_else(|| WebhookTarget::Url(format!("https://{bound}")));
        webhook_configuration(&self.config_name, &target, ca_pem)
    }

    /// The pod MutatingWebhookConfiguration for a server bound on `bound`, trusting `ca_pem`.
    pub fn mutating_configuration(
        &self,
        bound: SocketAddr,
        ca_pem: &str,
    ) -> MutatingWebhookConfiguration {
        let target = self
            .target
            .clone()
            .unwrap_or_else(|| WebhookTarget::Url(format!("https://{bound}")));
        let mut configuration = mutating_webhook_configuration(&self.config_name, &target, ca_pem);
        if self.randhostport
            && let Some(hooks) = configuration.webhooks.as_mut()
        {
            hooks.push(randhostport_webhook(&target, ca_pem));
        }
        configuration
    }
}

/// Pod CREATE in opted-in namespaces → `/randhostport/v1/mutate`. Object selectors select labels, and the
/// guide's opt-in is an annotation, so the handler itself lets pods without it pass untouched.
pub fn randhostport_webhook(target: &WebhookTarget, ca_pem: &str) -> MutatingWebhook {
    pod_mutating_webhook("randhostport", PATH_RANDHOSTPORT_MUTATE, target, ca_pem)
}

/// A mutating webhook `<hook>.clb-controller.…` for Pod CREATE in opted-in namespaces, failing closed; a dry run
/// changes nothing.
fn pod_mutating_webhook(
    hook: &str,
    path: &str,
    target: &WebhookTarget,
    ca_pem: &str,
) -> MutatingWebhook {
    MutatingWebhook {
        name: format!("{hook}.clb-controller.{GROUP}"),
        client_config: client_config(target, path, ca_pem),
        rules: Some(vec![pod_create_rule()]),
        namespace_selector: Some(inject_selector()),
        failure_policy: Some("Fail".to_owned()),
        side_effects: "NoneOnDryRun".to_owned(),
        timeout_seconds: Some(10),
        reinvocation_policy: Some("Never".to_owned()),
        admission_review_versions: vec!["v1".to_owned()],
        ..MutatingWebhook::default()
    }
}

/// Pod CREATE (core group, namespaced).
fn pod_create_rule() -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![String::new()]),
        api_versions: Some(vec!["v1".to_owned()]),
        resources: Some(vec!["pods".to_owned()]),
        operations: Some(vec!["CREATE".to_owned()]),
        scope: Some("Namespaced".to_owned()),
    }
}

fn client_config(target: &WebhookTarget, path: &str, ca_pem: &str) -> WebhookClientConfig {
    let ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    match target {
        WebhookTarget::Url(base) => WebhookClientConfig {
            url: Some(format!("{}{path}", base.trim_end_matches('/'))),
            ca_bundle,
            service: None,
        },
        WebhookTarget::Service {
            namespace,
            name,
            port,
        } => WebhookClientConfig {
            url: None,
            ca_bundle,
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(path.to_owned()),
                port: Some(*port),
            }),
        },
    }
}

/// Pure: the MutatingWebhookConfiguration of the pod webhook for `target`.
pub fn mutating_webhook_configuration(
    name: &str,
    target: &WebhookTarget,
    ca_pem: &str,
) -> MutatingWebhookConfiguration {
    let webhook = pod_mutating_webhook("pods", PATH_POD_MUTATE, target, ca_pem);
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![webhook]),
    }
}

/// Pure: the ValidatingWebhookConfiguration for `target`.
pub fn webhook_configuration(
    name: &str,
    target: &WebhookTarget,
    ca_pem: &str,
) -> ValidatingWebhookConfiguration {
    let webhook = |hook: &str, path: &str, resource: &str, operations: &[&str]| {
        let client_config = match target {
            WebhookTarget::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: None,
            },
            WebhookTarget::Service {
                namespace,
                name,
                port,
            } => WebhookClientConfig {
                url: None,
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_owned()),
                    port: Some(*port),
                }),
            },
        };
        ValidatingWebhook {
            name: format!("{hook}.clb-controller.{GROUP}"),
            client_config,
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![GROUP.to_owned()]),
                api_versions: Some(vec!["v1".to_owned()]),
                resources: Some(vec![resource.to_owned()]),
                operations: Some(operations.iter().map(|o| (*o).to_owned()).collect()),
                scope: Some("Namespaced".to_owned()),
            }]),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(10),
            admission_review_versions: vec!["v1".to_owned()],
            ..ValidatingWebhook::default()
        }
    };
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![
            webhook(
                "ingresses",
                PATH_INGRESS,
                "ingresses",
                &["CREATE", "UPDATE"],
            ),
            webhook(
                "portpools",
                PATH_PORTPOOL,
                "portpools",
                &["CREATE", "UPDATE"],
            ),
            webhook(
                "portpool-deletes",
                PATH_PORTPOOL_DELETE,
                "portpools",
                &["DELETE"],
            ),
            pod_validating_webhook(target, ca_pem),
        ]),
    }
}

/// Namespaces opted into port-pool injection (bcs' label).
fn inject_selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            [(LABEL_NAMESPACE_INJECT.to_owned(), "true".to_owned())]
                .into_iter()
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

/// Pod CREATE in opted-in namespaces, after every mutation: ties the pod about to be stored to its port
/// reservation. Always `Fail`: a pod that skipped it could be stored with ports already released.
fn pod_validating_webhook(target: &WebhookTarget, ca_pem: &str) -> ValidatingWebhook {
    ValidatingWebhook {
        name: format!("pod-reservations.clb-controller.{GROUP}"),
        client_config: client_config(target, PATH_POD_VALIDATE, ca_pem),
        rules: Some(vec![pod_create_rule()]),
        namespace_selector: Some(inject_selector()),
        failure_policy: Some("Fail".to_owned()),
        side_effects: "NoneOnDryRun".to_owned(),
        timeout_seconds: Some(10),
        admission_review_versions: vec!["v1".to_owned()],
        ..ValidatingWebhook::default()
    }
}

/// Server-side apply (field manager `clb-controller`, forced: we own this object).
pub async fn apply(
    client: &kube::Client,
    configuration: &ValidatingWebhookConfiguration,
) -> Result<(), WebhookError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let name = configuration.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(CONTROLLER_NAME).force(),
        &Patch::Apply(configuration),
    )
    .await
    .map_err(WebhookError::Register)?;
    Ok(())
}

/// Server-side apply of the pod MutatingWebhookConfiguration (field manager `clb-controller`, forced).
pub async fn apply_mutating(
    client: &kube::Client,
    configuration: &MutatingWebhookConfiguration,
) -> Result<(), WebhookError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = configuration.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(CONTROLLER_NAME).force(),
        &Patch::Apply(configuration),
    )
    .await
    .map_err(WebhookError::Register)?;
    Ok(())
}
