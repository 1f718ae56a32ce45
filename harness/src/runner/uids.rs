//! `${uid:API_VERSION/KIND/NAME}` in an operation: the uid of that object (in the scenario namespace when the
//! kind is namespaced), read when the operation runs. Owner references need their owner's real uid, and the
//! owner is usually created by an earlier operation of the same scenario (e.g. the pods a GameStatefulSet
//! operator would make: `ownerReferences: [{…, kind: GameStatefulSet, name: gs, uid: "${uid:tkex.tencent.com/v1alpha1/GameStatefulSet/gs}"}]`).

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::Value;

use super::ops::OpFailure;
use crate::kubeops;
use crate::scenario::Operation;

const OPEN: &str = "${uid:";

/// The operation with every `${uid:…}` replaced, or why one could not be resolved.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    op: &Operation,
) -> Result<Operation, OpFailure> {
    let Ok(mut value) = serde_json::to_value(op) else {
        return Ok(op.clone());
    };
    let mut refs = Vec::new();
    collect(&value, &mut refs);
    if refs.is_empty() {
        return Ok(op.clone());
    }
    let mut uids = BTreeMap::new();
    for reference in refs {
        let uid = lookup(client, namespace, &reference).await?;
        uids.insert(reference, uid);
    }
    replace(&mut value, &uids);
    serde_json::from_value(value).map_err(|e| failure(format!("after ${{uid:…}}: {e}")))
}

fn failure(message: String) -> OpFailure {
    OpFailure {
        message,
        detail: String::new(),
    }
}

/// Every `API_VERSION/KIND/NAME` named in a string of the value.
fn collect(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find(OPEN) {
                let after = &rest[start + OPEN.len()..];
                let Some(end) = after.find('}') else { break };
                out.push(after[..end].to_owned());
                rest = &after[end..];
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn replace(value: &mut Value, uids: &BTreeMap<String, String>) {
    match value {
        Value::String(s) if s.contains(OPEN) => {
            for (reference, uid) in uids {
                *s = s.replace(&format!("{OPEN}{reference}}}"), uid);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace(v, uids)),
        Value::Object(map) => map.values_mut().for_each(|v| replace(v, uids)),
        _ => {}
    }
}

/// `apiVersion/kind/name` (the apiVersion may hold a slash) → the object's uid.
async fn lookup(
    client: &kube::Client,
    namespace: &str,
    reference: &str,
) -> Result<String, OpFailure> {
    let bad = || {
        failure(format!(
            "${{uid:{reference}}}: write ${{uid:API_VERSION/KIND/NAME}}"
        ))
    };
    let (rest, name) = reference.rsplit_once('/').ok_or_else(bad)?;
    let (api_version, kind) = rest.rsplit_once('/').ok_or_else(bad)?;
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(bad());
    }
    let api = kubeops::api_for(client, api_version, kind, None, namespace).await?;
    let object = api
        .get(name)
        .await
        .map_err(|e| failure(format!("${{uid:{reference}}}: {e}")))?;
    object
        .uid()
        .ok_or_else(|| failure(format!("${{uid:{reference}}}: the object has no uid")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_found_and_replaced_in_place() {
        let mut value = json!({"a": ["x ${uid:tkex.tencent.com/v1alpha1/GameStatefulSet/gs} y"],
            "b": {"c": "${uid:v1/ConfigMap/cm}"}, "d": 1});
        let mut refs = Vec::new();
        collect(&value, &mut refs);
        assert_eq!(
            refs,
            vec![
                "tkex.tencent.com/v1alpha1/GameStatefulSet/gs",
                "v1/ConfigMap/cm"
            ]
        );
        let uids = BTreeMap::from([
            (refs[0].clone(), "u-1".to_string()),
            (refs[1].clone(), "u-2".to_string()),
        ]);
        replace(&mut value, &uids);
        assert_eq!(value, json!({"a": ["x u-1 y"], "b": {"c": "u-2"}, "d": 1}));
    }
}
