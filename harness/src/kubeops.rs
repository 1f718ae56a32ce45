//! Dynamic Kubernetes access for scenario operations: any apiVersion/kind through discovery.

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use kube::{Client, ResourceExt};
use serde::Deserialize as _;
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

/// The objects of a multi-document YAML text (`helm template` output, `kubectl apply -f` files), in
/// order; empty documents are skipped.
pub fn parse_documents(text: &str, source: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .map_err(|e| Error::Scenario(format!("{source}: document {}: {e}", index + 1)))?;
        if value.is_null() {
            continue;
        }
        if value.pointer("/kind").and_then(Value::as_str).is_none() {
            return Err(Error::Scenario(format!(
                "{source}: document {} has no kind",
                index + 1
            )));
        }
        objects.push(value);
    }
    Ok(objects)
}

/// Server-side applies the objects in the order `kubectl apply` would need: Namespaces and CRDs first
/// (waiting until the CRDs are Established), and creates every namespace an object names but the
/// documents do not. Returns `kind namespace/name` per object, in apply order.
pub async fn apply_all(
    client: &Client,
    objects: &[Value],
    default_ns: &str,
) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Namespace;

    let kind = |o: &Value| {
        o.pointer("/kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let rank = |o: &Value| match kind(o).as_str() {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| rank(o));

    let declared: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter(|o| kind(o) == "Namespace")
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    let namespaces: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str))
        .filter(|ns| !declared.contains(ns))
        .collect();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        if ns_api.get_opt(ns).await?.is_none() {
            let object = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            ns_api
                .patch(
                    ns,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await?;
        }
    }

    let mut applied = Vec::with_capacity(ordered.len());
    let mut crds = Vec::new();
    for object in ordered {
        if rank(object) == 2 && !crds.is_empty() {
            wait_established(client, &std::mem::take(&mut crds)).await?;
        }
        let result = apply(client, object, default_ns).await?;
        let name = result.name_any();
        if rank(object) == 1 {
            crds.push(name.clone());
        }
        applied.push(match result.namespace() {
            Some(ns) => format!("{} {ns}/{name}", kind(object)),
            None => format!("{} {name}", kind(object)),
        });
    }
    wait_established(client, &crds).await?;
    Ok(applied)
}

/// Waits (up to 60 s each) until the named CRDs are Established, so objects of their kinds can follow.
async fn wait_established(client: &Client, names: &[String]) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        tokio::time::timeout(
            LIMIT,
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: format!("CRD {name} Established"),
            seconds: LIMIT.as_secs(),
        })?
        .map_err(|e| Error::Environment(format!("watching CRD {name}: {e}")))?;
    }
    Ok(())
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
        // fake-clb not answering (e.g. being restarted): worth another poll.
        Error::Admin(fake_clb::admin_client::AdminClientError::Transport { .. }) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_helm_output_skipping_empty_documents() {
        let text = "---\n# Source: chart/templates/a.yaml\n---\napiVersion: v1\nkind: ServiceAccount\n\
                    metadata: {name: a, namespace: ns}\n---\n\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n";
        let objects = parse_documents(text, "render.yaml").unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["ServiceAccount", "Secret"]);
    }

    #[test]
    fn a_document_without_kind_is_named_in_the_error() {
        let err = parse_documents("kind: A\n---\nmetadata: {name: x}\n", "bad.yaml").unwrap_err();
        assert_eq!(err.to_string(), "bad.yaml: document 2 has no kind");
        let err = parse_documents("kind: [unclosed\n", "broken.yaml").unwrap_err();
        assert!(
            err.to_string().starts_with("broken.yaml: document 1: "),
            "{err}"
        );
    }
}
