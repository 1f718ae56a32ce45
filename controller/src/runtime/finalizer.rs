//! Adding and removing the controller's finalizer with JSON patches that fail rather than clobber: the add is
//! guarded by the object's resourceVersion (a stale copy cannot add it twice), the removal by a `test` of the
//! exact list entry (a concurrent change to the list fails the patch, and the pass is retried).

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{ReconcileError, api_call};

/// True when `obj` carries `finalizer`.
pub fn has<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.meta()
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == finalizer)
}

/// The JSON patch operations that append `finalizer`, guarded by the object's resourceVersion.
pub fn add_ops<K: Resource>(obj: &K, finalizer: &str) -> Vec<Value> {
    let meta = obj.meta();
    let mut ops = Vec::new();
    if let Some(rv) = &meta.resource_version {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
    }
    ops.push(match &meta.finalizers {
        Some(list) if !list.is_empty() => {
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer})
        }
        _ => json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}),
    });
    ops
}

/// The JSON patch operations that remove exactly our entry; `None` when it is not there.
pub fn remove_ops<K: Resource>(obj: &K, finalizer: &str) -> Option<Vec<Value>> {
    let position = obj
        .meta()
        .finalizers
        .iter()
        .flatten()
        .position(|f| f == finalizer)?;
    let path = format!("/metadata/finalizers/{position}");
    Some(vec![
        json!({"op": "test", "path": path, "value": finalizer}),
        json!({"op": "remove", "path": path}),
    ])
}

/// Adds `finalizer` to `obj` unless it is there.
pub async fn add<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if has(obj, finalizer) {
        return Ok(());
    }
    json_patch(api, &obj.name_any(), add_ops(obj, finalizer)).await
}

/// Removes `finalizer` from `obj`; an object already gone counts as done.
pub async fn remove<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(ops) = remove_ops(obj, finalizer) else {
        return Ok(());
    };
    match json_patch(api, &obj.name_any(), ops).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

async fn json_patch<K>(api: &Api<K>, name: &str, ops: Vec<Value>) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
        .map_err(|e| ReconcileError::Invalid(format!("building a finalizer patch: {e}")))?;
    api_call(
        "patching finalizers",
        api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn object(finalizers: Option<Vec<&str>>, rv: Option<&str>) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.finalizers = finalizers.map(|f| f.into_iter().map(String::from).collect());
        cm.metadata.resource_version = rv.map(String::from);
        cm
    }

    #[test]
    fn add_creates_the_list_or_appends_under_a_resource_version_test() {
        let ops = add_ops(&object(None, Some("7")), "f");
        assert_eq!(
            ops,
            vec![
                json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"}),
                json!({"op": "add", "path": "/metadata/finalizers", "value": ["f"]}),
            ]
        );
        let ops = add_ops(&object(Some(vec!["other"]), None), "f");
        assert_eq!(
            ops,
            vec![json!({"op": "add", "path": "/metadata/finalizers/-", "value": "f"})]
        );
    }

    #[test]
    fn remove_tests_and_removes_exactly_our_entry() {
        let obj = object(Some(vec!["other", "f"]), Some("1"));
        assert!(has(&obj, "f"));
        assert_eq!(
            remove_ops(&obj, "f"),
            Some(vec![
                json!({"op": "test", "path": "/metadata/finalizers/1", "value": "f"}),
                json!({"op": "remove", "path": "/metadata/finalizers/1"}),
            ])
        );
        assert_eq!(remove_ops(&object(Some(vec!["other"]), None), "f"), None);
        assert!(!has(&object(None, None), "f"));
    }
}
