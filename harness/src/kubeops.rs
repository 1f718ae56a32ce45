//! Dynamic Kubernetes access for scenario operations: any apiVersion/kind through discovery.

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::scenario::ResourceRef;

pub const FIELD_MANAGER: &str = "clb-harness";

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((group, version)) => GroupVersionKind::gvk(group, version, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

/// Looks up the resource (plural, scope) of an apiVersion/kind on the server.
pub async fn resolve(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<(ApiResource, ApiCapabilities)> {
    pinned_kind(client, &gvk(api_version, kind))
        .await
        .map_err(|e| Error::Scenario(format!("unknown kind {api_version}/{kind}: {e}")))
}

/// An `Api` for the reference; namespaced kinds default to `default_ns`.
pub async fn api_for(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    default_ns: &str,
) -> Result<Api<DynamicObject>> {
    let (resource, caps) = resolve(client, api_version, kind).await?;
    Ok(match caps.scope {
        Scope::Namespaced => {
            Api::namespaced_with(client.clone(), namespace.unwrap_or(default_ns), &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    })
}

/// Server-side apply of one object (forced, so the harness owns what it wrote).
pub async fn apply(client: &Client, object: &Value, default_ns: &str) -> Result<DynamicObject> {
    let field = |name: &str| {
        object
            .pointer(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Scenario(format!("object without {name}: {object}")))
    };
    let api_version = field("/apiVersion")?;
    let kind = field("/kind")?;
    let name = field("/metadata/name")?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let api = api_for(client, api_version, kind, namespace, default_ns).await?;
    Ok(api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

/// The objects a reference selects, sorted by name, as JSON with `namespace/name` labels.
pub async fn list(
    client: &Client,
    r: &ResourceRef,
    default_ns: &str,
) -> Result<Vec<(String, Value)>> {
    let api = api_for(
        client,
        &r.api_version,
        &r.kind,
        r.namespace.as_deref(),
        default_ns,
    )
    .await?;
    let objects = match &r.name {
        Some(name) => api.get_opt(name).await?.into_iter().collect::<Vec<_>>(),
        None => {
            let mut params = ListParams::default();
            if let Some(selector) = &r.selector {
                params = params.labels(selector);
            }
            api.list(&params).await?.items
        }
    };
    let mut named = Vec::with_capacity(objects.len());
    for object in objects {
        let label = match object.namespace() {
            Some(ns) => format!("{ns}/{}", object.name_any()),
            None => object.name_any(),
        };
        let value = serde_json::to_value(&object).map_err(|e| Error::Serialize {
            what: "object",
            reason: e.to_string(),
        })?;
        named.push((label, value));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

/// Errors worth retrying in a poll: throttling, server errors, timeouts, connection trouble.
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::Kube(kube::Error::Api(status)) => status.code == 429 || status.code >= 500,
        Error::Kube(_) | Error::Http(_) => true,
        _ => false,
    }
}
