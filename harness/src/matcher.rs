//! Partial matching of JSON values, the semantics of `assert`, `error` and `assertCloud`.
//!
//! * A map matches when every expected key matches the actual value under that key; extra
//!   actual keys are ignored. An expected `null` matches a missing key or a null.
//! * A non-empty list matches when each expected element matches a *distinct* actual element,
//!   in any order (set/subset semantics). An empty expected list matches only an empty or
//!   missing list, which is how "no listeners" is written.
//! * Scalars match by equality; numbers compare by value (`1` equals `1.0`).
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

fn diff_at(path: &str, expected: &Value, actual: Option<&Value>, out: &mut Vec<String>) {
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
