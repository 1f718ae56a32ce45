//! Partial matching of JSON values, the semantics of `assert`, `error` and `assertCloud`.
//!
//! * A map matches when every expected key matches the actual value under that key; extra
//!   actual keys are ignored. An expected `null` matches a missing key or a null.
//! * A non-empty list matches when each expected element matches a *distinct* actual element,
//!   in any order (set/subset semantics). An empty expected list matches only an empty or
//!   missing list, which is how "no listeners" is written.
//! * Scalars match by equality; numbers compare by value (`1` equals `1.0`).
//! * Operators, written as a one-key map in place of a value, cover what a partial match cannot say:
//!   `{$exactly: [..]}` a list with exactly these elements (any order, nothing extra);
//!   `{$json: X}` a string holding JSON that matches X (annotations such as `poolbindings`);
//!   `{$contains: "text"}` a string containing the text (event and condition messages).
//!
//! A mismatch comes back as readable lines, one per differing path, for the reports.

use serde_json::Value;

use crate::scenario::{MatchMode, MatchWord};

/// Lines describing why `actual` does not match `expected`; empty when it matches.
pub fn diff(expected: &Value, actual: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    diff_at("", expected, Some(actual), &mut lines);
    lines
}

pub fn matches(expected: &Value, actual: &Value) -> bool {
    diff(expected, actual).is_empty()
}

/// A `{$op: argument}` operator in an expectation.
enum Operator<'a> {
    Exactly(&'a [Value]),
    Json(&'a Value),
    Contains(&'a str),
}

fn operator(expected: &Value) -> Option<Operator<'_>> {
    let map = expected.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (key, argument) = map.iter().next()?;
    match (key.as_str(), argument) {
        ("$exactly", Value::Array(items)) => Some(Operator::Exactly(items)),
        ("$json", argument) => Some(Operator::Json(argument)),
        ("$contains", Value::String(text)) => Some(Operator::Contains(text)),
        _ => None,
    }
}

/// Checks an operator; returns false when `expected` is not one.
fn diff_operator(
    path: &str,
    expected: &Value,
    actual: Option<&Value>,
    out: &mut Vec<String>,
) -> bool {
    let Some(op) = operator(expected) else {
        return false;
    };
    let shown_path = if path.is_empty() { "(root)" } else { path };
    match (op, actual) {
        (Operator::Exactly(want), actual) => diff_exactly(path, want, actual, out),
        (Operator::Json(want), Some(Value::String(text))) => {
            match serde_json::from_str::<Value>(text) {
                Ok(parsed) => diff_at(&format!("{path}($json)"), want, Some(&parsed), out),
                Err(e) => out.push(format!(
                    "{shown_path}: expected a JSON string, got {} ({e})",
                    brief(&Value::String(text.clone()))
                )),
            }
        }
        (Operator::Contains(want), Some(Value::String(text))) => {
            if !text.contains(want) {
                out.push(format!(
                    "{shown_path}: expected a string containing {want:?}, got {}",
                    brief(&Value::String(text.clone()))
                ));
            }
        }
        (Operator::Json(_) | Operator::Contains(_), Some(other)) => {
            out.push(format!(
                "{shown_path}: expected a string, got {}",
                brief(other)
            ));
        }
        (Operator::Json(want), None) => {
            out.push(format!(
                "{shown_path}: missing, expected JSON matching {}",
                brief(want)
            ));
        }
        (Operator::Contains(want), None) => {
            out.push(format!(
                "{shown_path}: missing, expected a string containing {want:?}"
            ));
        }
    }
    true
}

/// `$exactly`: the list matches as a set and has exactly as many elements; absent or null is
/// the empty list.
fn diff_exactly(path: &str, want: &[Value], actual: Option<&Value>, out: &mut Vec<String>) {
    let shown_path = if path.is_empty() { "(root)" } else { path };
    match actual {
        Some(Value::Array(have)) => {
            diff_at(
                path,
                &Value::Array(want.to_vec()),
                Some(&Value::Array(have.clone())),
                out,
            );
            if want.len() != have.len() {
                out.push(format!(
                    "{shown_path}: expected exactly {} element(s), got {}: {}",
                    want.len(),
                    have.len(),
                    brief(&Value::Array(have.clone()))
                ));
            }
        }
        None | Some(Value::Null) => {
            if !want.is_empty() {
                diff_at(
                    path,
                    &Value::Array(want.to_vec()),
                    Some(&Value::Array(Vec::new())),
                    out,
                );
            }
        }
        Some(other) => {
            out.push(format!(
                "{shown_path}: expected a list, got {}",
                brief(other)
            ));
        }
    }
}

fn diff_at(path: &str, expected: &Value, actual: Option<&Value>, out: &mut Vec<String>) {
    if diff_operator(path, expected, actual, out) {
        return;
    }
    let shown_path = if path.is_empty() { "(root)" } else { path };
    match (expected, actual) {
        (Value::Null, None | Some(Value::Null)) => {}
        (Value::Array(want), None) if want.is_empty() => {}
        (Value::Null, Some(other)) => {
            out.push(format!(
                "{shown_path}: expected absent or null, got {}",
                brief(other)
            ));
        }
        (_, None) => out.push(format!(
            "{shown_path}: missing, expected {}",
            brief(expected)
        )),
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, want_value) in want {
                let child = format!("{path}.{key}");
                diff_at(&child, want_value, have.get(key), out);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) => {
            if want.is_empty() {
                if !have.is_empty() {
                    out.push(format!(
                        "{shown_path}: expected an empty list, got {} element(s): {}",
                        have.len(),
                        brief(&Value::Array(have.clone()))
                    ));
                }
                return;
            }
            if let Some(unmatched) = unmatched_elements(want, have) {
                for index in unmatched {
                    out.push(format!(
                        "{shown_path}: no distinct element matches {} (list has {} element(s): {})",
                        brief(&want[index]),
                        have.len(),
                        brief(&Value::Array(have.clone()))
                    ));
                }
            }
        }
        (Value::Array(want), Some(Value::Null)) if want.is_empty() => {}
        (Value::Number(want), Some(Value::Number(have))) => {
            if want.as_f64() != have.as_f64() {
                out.push(format!("{shown_path}: expected {want}, got {have}"));
            }
        }
        (want, Some(have)) => {
            if want != have {
                out.push(format!(
                    "{shown_path}: expected {}, got {}",
                    brief(want),
                    brief(have)
                ));
            }
        }
    }
}

/// Finds an assignment of expected elements to distinct actual ones (augmenting paths, so
/// order never matters). Returns the expected indexes left unmatched, or None if all match.
fn unmatched_elements(want: &[Value], have: &[Value]) -> Option<Vec<usize>> {
    let fits: Vec<Vec<usize>> = want
        .iter()
        .map(|w| (0..have.len()).filter(|&j| matches(w, &have[j])).collect())
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; have.len()];
    let mut unmatched = Vec::new();
    for i in 0..want.len() {
        let mut seen = vec![false; have.len()];
        if !augment(i, &fits, &mut owner, &mut seen) {
            unmatched.push(i);
        }
    }
    (!unmatched.is_empty()).then_some(unmatched)
}

fn augment(i: usize, fits: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &j in &fits[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        let free = match owner[j] {
            None => true,
            Some(other) => augment(other, fits, owner, seen),
        };
        if free {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

/// Compact JSON, cut at 300 characters, for diff lines.
pub fn brief(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The result of matching several objects against one expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    pub ok: bool,
    /// Empty when `ok`; otherwise a readable explanation with per-object differences.
    pub diff: String,
}

/// Applies `match: all | any | N` to named objects.
pub fn match_objects(mode: MatchMode, expected: &Value, objects: &[(String, Value)]) -> SetOutcome {
    let diffs: Vec<(&str, Vec<String>)> = objects
        .iter()
        .map(|(name, object)| (name.as_str(), diff(expected, object)))
        .collect();
    let matching = diffs.iter().filter(|(_, d)| d.is_empty()).count();
    let (ok, summary) = match mode {
        MatchMode::Word(MatchWord::All) => (
            !objects.is_empty() && matching == objects.len(),
            format!(
                "match all: {matching} of {} object(s) match{}",
                objects.len(),
                if objects.is_empty() {
                    " (none found)"
                } else {
                    ""
                }
            ),
        ),
        MatchMode::Word(MatchWord::Any) => (
            matching >= 1,
            format!("match any: none of {} object(s) match", objects.len()),
        ),
        MatchMode::Count(n) => (
            matching == n as usize,
            format!(
                "match {n}: {matching} of {} object(s) match, expected exactly {n}",
                objects.len()
            ),
        ),
    };
    if ok {
        return SetOutcome {
            ok,
            diff: String::new(),
        };
    }
    let mut text = summary;
    for (name, lines) in diffs.iter().filter(|(_, d)| !d.is_empty()) {
        text.push_str(&format!("\n  {name}:"));
        for line in lines {
            text.push_str(&format!("\n    {line}"));
        }
    }
    SetOutcome { ok, diff: text }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exactly_rejects_extra_and_missing_elements_in_any_order() {
        let actual = json!({"l": [{"port": 1, "p": "TCP"}, {"port": 2, "p": "UDP"}]});
        assert!(matches(
            &json!({"l": {"$exactly": [{"port": 2}, {"port": 1}]}}),
            &actual
        ));
        let extra = diff(&json!({"l": {"$exactly": [{"port": 1}]}}), &actual);
        assert_eq!(extra.len(), 1, "{extra:?}");
        assert!(
            extra[0].starts_with(".l: expected exactly 1 element(s), got 2"),
            "{extra:?}"
        );
        let missing = diff(
            &json!({"l": {"$exactly": [{"port": 1}, {"port": 3}]}}),
            &actual,
        );
        assert!(
            missing[0].contains("no distinct element matches {\"port\":3}"),
            "{missing:?}"
        );
        assert!(matches(&json!({"none": {"$exactly": []}}), &json!({})));
        assert!(!matches(&json!({"l": {"$exactly": []}}), &actual));
        assert!(!matches(
            &json!({"l": {"$exactly": [1]}}),
            &json!({"l": "x"})
        ));
    }

    #[test]
    fn json_parses_a_string_and_matches_inside_it() {
        let actual = json!({"a": "[{\"poolName\":\"p\",\"port\":30000}]"});
        assert!(matches(
            &json!({"a": {"$json": [{"port": 30000}]}}),
            &actual
        ));
        let wrong = diff(&json!({"a": {"$json": [{"port": 30001}]}}), &actual);
        assert!(
            wrong[0].starts_with(".a($json): no distinct element"),
            "{wrong:?}"
        );
        let not_json = diff(&json!({"a": {"$json": {}}}), &json!({"a": "{oops"}));
        assert!(
            not_json[0].starts_with(".a: expected a JSON string"),
            "{not_json:?}"
        );
        assert!(!matches(&json!({"a": {"$json": {}}}), &json!({})));
    }

    #[test]
    fn contains_matches_substrings_of_strings_only() {
        let actual = json!({"m": "admission webhook denied: port pool missing not found"});
        assert!(matches(
            &json!({"m": {"$contains": "pool missing not found"}}),
            &actual
        ));
        let wrong = diff(&json!({"m": {"$contains": "quota"}}), &actual);
        assert!(
            wrong[0].starts_with(".m: expected a string containing \"quota\""),
            "{wrong:?}"
        );
        assert!(!matches(
            &json!({"m": {"$contains": "1"}}),
            &json!({"m": 1})
        ));
    }

    #[test]
    fn maps_match_partially_and_report_each_differing_path() {
        let actual = json!({"a": 1, "b": {"c": "x", "d": true}, "extra": 5});
        assert!(matches(&json!({"b": {"c": "x"}}), &actual));
        let lines = diff(&json!({"a": 2, "b": {"c": "y", "e": 1}}), &actual);
        assert_eq!(
            lines,
            vec![
                ".a: expected 2, got 1",
                ".b.c: expected \"y\", got \"x\"",
                ".b.e: missing, expected 1",
            ]
        );
    }

    #[test]
    fn lists_match_as_sets_with_distinct_elements() {
        let actual = json!([{"port": 80, "p": "TCP"}, {"port": 81, "p": "UDP"}]);
        assert!(matches(&json!([{"port": 81}, {"port": 80}]), &actual));
        // Two expectations cannot both take the one element with port 80.
        assert!(!matches(&json!([{"port": 80}, {"port": 80}]), &actual));
        // A greedy assignment would give {} the first element and then fail on port 80.
        assert!(matches(&json!([{}, {"port": 80}]), &actual));
        let lines = diff(&json!([{"port": 82}]), &actual);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("(root): no distinct element matches {\"port\":82}"));
    }

    #[test]
    fn empty_list_means_empty_and_null_means_absent() {
        assert!(matches(&json!({"l": []}), &json!({"l": []})));
        assert!(matches(&json!({"l": []}), &json!({})));
        assert!(!matches(&json!({"l": []}), &json!({"l": [1]})));
        assert!(matches(&json!({"gone": null}), &json!({"other": 1})));
        assert!(!matches(&json!({"gone": null}), &json!({"gone": 1})));
    }

    #[test]
    fn numbers_compare_by_value_and_types_must_agree() {
        assert!(matches(&json!(1), &json!(1.0)));
        assert!(!matches(&json!("1"), &json!(1)));
    }

    fn objects() -> Vec<(String, Value)> {
        vec![
            ("a".to_string(), json!({"ready": true})),
            ("b".to_string(), json!({"ready": false})),
            ("c".to_string(), json!({"ready": true})),
        ]
    }

    #[test]
    fn all_any_and_count() {
        let want = json!({"ready": true});
        let all = match_objects(MatchMode::Word(MatchWord::All), &want, &objects());
        assert!(!all.ok);
        assert!(all.diff.contains("2 of 3 object(s) match"), "{}", all.diff);
        assert!(
            all.diff
                .contains("b:\n    .ready: expected true, got false")
        );
        assert!(match_objects(MatchMode::Word(MatchWord::Any), &want, &objects()).ok);
        assert!(match_objects(MatchMode::Count(2), &want, &objects()).ok);
        assert!(!match_objects(MatchMode::Count(3), &want, &objects()).ok);
        assert!(match_objects(MatchMode::Count(0), &json!({"ready": 1}), &objects()).ok);
        // `all` over nothing is a failure: an assertion must see something.
        let none = match_objects(MatchMode::Word(MatchWord::All), &want, &[]);
        assert!(!none.ok);
        assert!(none.diff.contains("none found"));
    }
}
