//! GET / form flattening (`Ports.0=8000`, `HealthCheck.HealthSwitch=0`, `Targets.0.Port=80`) and its reverse,
//! which needs the action schema to turn strings back into integers and booleans.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::schema::{Field, Ty, length_error};

/// Flattens a JSON object into `key=value` pairs in field order; nulls are skipped.
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (k, v) in map {
            flatten_into(k, v, &mut out);
        }
    }
    out
}

fn flatten_into(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_into(&format!("{prefix}.{i}"), item, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                flatten_into(&format!("{prefix}.{k}"), item, out);
            }
        }
    }
}

/// Most dot-separated segments in one flattened key. The deepest real CLB parameter
/// (`ModifyList.0.Targets.0.Port`, `MultiCertInfo.CertList.0.CertId`) has 5; anything much deeper is an attack
/// on the parser, refused before any tree is built so that neither building, walking nor dropping it recurses
/// deeply.
pub const MAX_KEY_DEPTH: usize = 16;
/// Longest flattened key in bytes; real keys are under 60.
pub const MAX_KEY_BYTES: usize = 256;
/// Most parameters in one request: a full BatchModifyTargetWeight (500 targets of 6 fields in 100 rules) has
/// about 3,600.
pub const MAX_PARAMS: usize = 10_000;

#[derive(Debug)]
enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

fn conflict(key: &str) -> ApiError {
    ApiError::invalid_parameter(format!(
        "The parameter `{key}` is given more than once or with conflicting forms."
    ))
}

/// Rebuilds a JSON object from flattened pairs, coercing leaves with `fields`.
/// Booleans accept `true`/`false` in any case (Python sends `True`).
/// Keys deeper than [`MAX_KEY_DEPTH`], longer than [`MAX_KEY_BYTES`], or more than [`MAX_PARAMS`] pairs are
/// `InvalidParameter`, checked before anything is built.
pub fn unflatten(pairs: &[(String, String)], fields: &[Field]) -> Result<Value, ApiError> {
    check_bounds(pairs)?;
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    for (key, value) in pairs {
        let parts: Vec<&str> = key.split('.').collect();
        let mut map = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if last {
                if map
                    .insert(part.to_string(), Node::Leaf(value.clone()))
                    .is_some()
                {
                    return Err(conflict(key));
                }
            } else {
                let entry = map
                    .entry(part.to_string())
                    .or_insert_with(|| Node::Branch(BTreeMap::new()));
                map = match entry {
                    Node::Branch(m) => m,
                    Node::Leaf(_) => return Err(conflict(key)),
                };
            }
        }
    }
    convert_object(fields, root, "")
}

/// The size bounds of a flattened request (see [`unflatten`]).
pub fn check_bounds(pairs: &[(String, String)]) -> Result<(), ApiError> {
    if pairs.len() > MAX_PARAMS {
        return Err(ApiError::invalid_parameter(format!(
            "The request has {} parameters; at most {MAX_PARAMS} are accepted.",
            pairs.len()
        )));
    }
    for (key, _) in pairs {
        let shown: String = key.chars().take(64).collect();
        if key.len() > MAX_KEY_BYTES {
            return Err(ApiError::invalid_parameter(format!(
                "The parameter name `{shown}…` is longer than {MAX_KEY_BYTES} bytes."
            )));
        }
        if key.split('.').count() > MAX_KEY_DEPTH {
            return Err(ApiError::invalid_parameter(format!(
                "The parameter name `{shown}` nests deeper than {MAX_KEY_DEPTH} levels."
            )));
        }
    }
    Ok(())
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn convert_object(
    fields: &[Field],
    map: BTreeMap<String, Node>,
    path: &str,
) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (k, node) in map {
        let p = join(path, &k);
        let field = fields
            .iter()
            .find(|f| f.name == k)
            .ok_or_else(|| ApiError::unknown_parameter(&p))?;
        out.insert(k, convert(&field.ty, node, &p)?);
    }
    for f in fields {
        if f.required && !out.contains_key(f.name) {
            return Err(ApiError::missing_parameter(&join(path, f.name)));
        }
    }
    Ok(Value::Object(out))
}

fn type_error(path: &str, expected: &str) -> ApiError {
    ApiError::invalid_parameter(format!(
        "The value type of parameter `{path}` is not valid, expected {expected}."
    ))
}

fn convert(ty: &Ty, node: Node, path: &str) -> Result<Value, ApiError> {
    match (ty, node) {
        (Ty::Str, Node::Leaf(s)) => Ok(Value::String(s)),
        (Ty::Int | Ty::IntIn(..), Node::Leaf(s)) => {
            let n: i64 = s
                .trim()
                .parse()
                .map_err(|_| type_error(path, "an integer"))?;
            // Range checks happen in schema::validate, run on the result.
            Ok(Value::from(n))
        }
        (Ty::Bool, Node::Leaf(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(type_error(path, "a boolean")),
        },
        (Ty::Array(elem, max), Node::Branch(items)) => {
            let mut indexed = BTreeMap::new();
            for (k, v) in items {
                let i: usize = k.parse().map_err(|_| type_error(path, "an array"))?;
                indexed.insert(i, v);
            }
            if let Some(max) = max
                && indexed.len() > *max
            {
                return Err(length_error(path, *max));
            }
            // Indices must be 0..n without gaps.
            if indexed.keys().enumerate().any(|(pos, i)| pos != *i) {
                return Err(ApiError::invalid_parameter(format!(
                    "The indices of array parameter `{path}` are not contiguous."
                )));
            }
            indexed
                .into_iter()
                .map(|(i, v)| convert(elem, v, &format!("{path}.{i}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        (Ty::Object(fields), Node::Branch(map)) => convert_object(fields, map, path),
        (Ty::Any, node) => Ok(any(node)),
        (Ty::Array(..), Node::Leaf(_)) => Err(type_error(path, "an array")),
        (Ty::Object(_), Node::Leaf(_)) => Err(type_error(path, "an object")),
        (_, Node::Branch(_)) => Err(type_error(path, "a scalar")),
    }
}

fn any(node: Node) -> Value {
    match node {
        Node::Leaf(s) => Value::String(s),
        Node::Branch(map) => {
            if !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok()) {
                let mut items: Vec<(usize, Node)> = map
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|i| (i, v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| any(v)).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, any(v))).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{CREATE_LISTENER, REGISTER_TARGETS, validate};
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn flatten_then_unflatten_is_identity() {
        let v = json!({"LoadBalancerId": "lb-1", "Ports": [8000, 8001], "Protocol": "TCP",
                       "ListenerNames": ["a b", "c"], "HealthCheck": {"HealthSwitch": 0, "CheckType": "TCP"},
                       "DeregisterTargetRst": true});
        let flat = flatten(&v);
        assert!(flat.contains(&("Ports.1".to_string(), "8001".to_string())));
        assert!(flat.contains(&("HealthCheck.HealthSwitch".to_string(), "0".to_string())));
        let back = unflatten(&flat, CREATE_LISTENER).unwrap();
        assert_eq!(back, v);
        assert_eq!(validate(CREATE_LISTENER, &back).unwrap(), v);
    }

    #[test]
    fn unflatten_coerces_python_booleans_and_objects_in_arrays() {
        let v = unflatten(
            &pairs(&[
                ("LoadBalancerId", "lb-1"),
                ("ListenerId", "lbl-1"),
                ("Targets.1.Port", "81"),
                ("Targets.0.Port", "80"),
                ("Targets.0.EniIp", "10.0.0.5"),
            ]),
            REGISTER_TARGETS,
        )
        .unwrap();
        assert_eq!(
            v["Targets"],
            json!([{"Port": 80, "EniIp": "10.0.0.5"}, {"Port": 81}])
        );
        let v = unflatten(
            &pairs(&[
                ("LoadBalancerId", "x"),
                ("Ports.0", "1"),
                ("Protocol", "TCP"),
                ("SnatEnable", "True"),
            ]),
            CREATE_LISTENER,
        )
        .unwrap();
        assert_eq!(v["SnatEnable"], json!(true));
    }

    #[test]
    fn hostile_keys_are_refused_without_deep_recursion() {
        let base = [
            ("LoadBalancerId", "x"),
            ("Ports.0", "1"),
            ("Protocol", "TCP"),
        ];
        let with = |key: String| {
            let mut p = pairs(&base);
            p.push((key, "v".into()));
            p
        };
        // 1,000 nested levels under a field that takes anything.
        let deep = format!("MultiCertInfo{}", ".a".repeat(1000));
        let e = unflatten(&with(deep), CREATE_LISTENER).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        // An unknown key made of 30,000 dots.
        let e = unflatten(&with(".".repeat(30_000)), CREATE_LISTENER).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        // A long key, and too many parameters.
        let e = unflatten(&with("A".repeat(MAX_KEY_BYTES + 1)), CREATE_LISTENER).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        let mut many = pairs(&base);
        many.extend((0..MAX_PARAMS).map(|i| (format!("ListenerNames.{i}"), "n".to_string())));
        let e = unflatten(&many, CREATE_LISTENER).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        assert!(e.message.contains("parameters"), "{}", e.message);
        // The deepest real keys still work.
        let ok = with(format!("MultiCertInfo{}", ".a".repeat(MAX_KEY_DEPTH - 1)));
        assert!(unflatten(&ok, CREATE_LISTENER).is_ok());
    }

    #[test]
    fn unflatten_rejects_unknown_missing_and_bad_types() {
        let e = unflatten(
            &pairs(&[
                ("LoadBalancerId", "x"),
                ("Ports.0", "1"),
                ("Protocol", "TCP"),
                ("Bogus", "1"),
            ]),
            CREATE_LISTENER,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::UnknownParameter);
        let e = unflatten(
            &pairs(&[("LoadBalancerId", "x"), ("Protocol", "TCP")]),
            CREATE_LISTENER,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::MissingParameter);
        assert!(e.message.contains("`Ports`"));
        let e = unflatten(
            &pairs(&[
                ("LoadBalancerId", "x"),
                ("Ports.0", "eighty"),
                ("Protocol", "TCP"),
            ]),
            CREATE_LISTENER,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        let e = unflatten(
            &pairs(&[
                ("LoadBalancerId", "x"),
                ("Ports.1", "80"),
                ("Protocol", "TCP"),
            ]),
            CREATE_LISTENER,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
    }
}
