//! Property tests of the scenario loader (`scenario::parse`): arbitrary text, YAML token soup and
//! structured mutations of the shipped scenarios never panic, and every refusal names the file
//! and the problem.
//!
//! Cases per property: `PROPTEST_CASES` when set, else 64 (a few seconds in `cargo test`). Inputs
//! that once failed are replayed first from `scenario_fuzz.proptest-regressions` and kept as
//! named tests at the end of this file.

use std::path::{Path, PathBuf};

use clb_harness::scenario;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_yaml::Value;

const DEFAULT_CASES: u32 = 64;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every shipped scenario: its path and text.
fn shipped() -> &'static [(PathBuf, String)] {
    static SHIPPED: std::sync::OnceLock<Vec<(PathBuf, String)>> = std::sync::OnceLock::new();
    SHIPPED.get_or_init(|| {
        let dirs = ["conformance", "faults", "perf"].map(|d| scenarios_dir().join(d));
        let files = scenario::discover(&dirs).expect("shipped scenarios");
        files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f).expect("readable scenario");
                (f, text)
            })
            .collect()
    })
}

/// Parses `text` as if it were the file at `path`. A refusal must start with the file name and
/// say something after it.
fn parse_checked(path: &Path, text: &str) -> Result<scenario::Scenario, String> {
    match scenario::parse(path, text) {
        Ok(s) => Ok(s),
        Err(e) => {
            let message = e.to_string();
            let file = path.display().to_string();
            assert!(
                message.starts_with(&file),
                "error does not name the file {file}: {message}"
            );
            let rest = message[file.len()..]
                .trim_start_matches(|c: char| c == ':' || c == ' ' || c.is_ascii_digit());
            assert!(!rest.trim().is_empty(), "error names no problem: {message}");
            Err(message)
        }
    }
}

fn fuzz_path() -> PathBuf {
    scenarios_dir().join("fuzz/input.yaml")
}

/// Pieces of YAML syntax and scenario vocabulary, glued at random.
fn yaml_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just(", ".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("\t".to_string()),
        Just("&a ".to_string()),
        Just("*a ".to_string()),
        Just("!!binary ".to_string()),
        Just("!tag ".to_string()),
        Just("? ".to_string()),
        Just("|\n".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("# c\n".to_string()),
        Just("---\n".to_string()),
        Just("<<: ".to_string()),
        Just("apiVersion: clb-harness/v1alpha1\n".to_string()),
        Just("kind: Scenario\n".to_string()),
        Just("metadata: {name: x}\n".to_string()),
        Just("steps".to_string()),
        Just("try".to_string()),
        Just("apply".to_string()),
        Just("timeout: ".to_string()),
        Just("99999999999999999999h".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        "[a-zA-Z]{1,8}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(token, 0..120).prop_map(|parts| parts.concat())
}

/// One step of a path into a YAML value.
#[derive(Debug, Clone)]
enum Seg {
    Key(Value),
    Item(usize),
}

fn paths(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                prefix.push(Seg::Key(k.clone()));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Seg::Item(i));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Tagged(tagged) => paths(&tagged.value, prefix, out),
        _ => {}
    }
}

fn at_mut<'a>(value: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let next = match (first, value) {
        (Seg::Key(k), Value::Mapping(map)) => map.get_mut(k)?,
        (Seg::Item(i), Value::Sequence(items)) => items.get_mut(*i)?,
        _ => return None,
    };
    at_mut(next, rest)
}

/// A random replacement value: scalars of every type, and small collections.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|n| Value::Number(n.into())),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("0s".to_string())),
        Just(Value::String("1000000000000d".to_string())),
        Just(Value::Sequence(vec![])),
        Just(Value::Mapping(Default::default())),
        Just(Value::Sequence(vec![Value::Null, Value::Bool(true)])),
    ]
}

/// A change to a shipped scenario.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(Index),
    Replace(Index, Value),
    InsertKey(Index, String, Value),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), replacement()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        (any::<Index>(), "[a-zA-Z$]{1,12}", replacement())
            .prop_map(|(i, k, v)| Mutation::InsertKey(i, k, v)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutation` to `text`; the result is YAML text again.
fn mutate(text: &str, mutation: &Mutation) -> String {
    if let Mutation::Truncate(at) = mutation {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        return match boundaries.len() {
            0 => String::new(),
            n => text[..boundaries[at.index(n)]].to_string(),
        };
    }
    let mut value: Value = serde_yaml::from_str(text).expect("shipped scenario is YAML");
    let mut all = Vec::new();
    paths(&value, &mut Vec::new(), &mut all);
    match mutation {
        Mutation::Remove(at) => {
            let path = &all[at.index(all.len())];
            if let Some((Seg::Key(key), parent)) = path.split_last()
                && let Some(Value::Mapping(map)) = at_mut(&mut value, parent)
            {
                map.remove(key);
            } else if let Some((Seg::Item(i), parent)) = path.split_last()
                && let Some(Value::Sequence(items)) = at_mut(&mut value, parent)
            {
                items.remove(*i);
            }
        }
        Mutation::Replace(at, new) => {
            if let Some(slot) = at_mut(&mut value, &all[at.index(all.len())]) {
                *slot = new.clone();
            }
        }
        Mutation::InsertKey(at, key, new) => {
            if let Some(Value::Mapping(map)) = at_mut(&mut value, &all[at.index(all.len())]) {
                map.insert(Value::String(key.clone()), new.clone());
            }
        }
        Mutation::Truncate(_) => {}
    }
    serde_yaml::to_string(&value).expect("YAML value serialises")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_checked(&fuzz_path(), &text);
    }

    #[test]
    fn yaml_soup_never_panics(text in yaml_soup()) {
        let _ = parse_checked(&fuzz_path(), &text);
    }

    #[test]
    fn mutated_shipped_scenarios_never_panic(file in any::<Index>(), change in mutation()) {
        let (path, text) = &shipped()[file.index(shipped().len())];
        let mutated = mutate(text, &change);
        let _ = parse_checked(path, &mutated);
    }

    /// An unknown key in a typed mapping (the top level, metadata, a step) is refused with its
    /// name and a line number.
    #[test]
    fn unknown_keys_are_named(
        file in any::<Index>(),
        place in 0..3usize,
        key in "zz[a-zA-Z]{1,10}",
    ) {
        let (path, text) = &shipped()[file.index(shipped().len())];
        let mut value: Value = serde_yaml::from_str(text).expect("shipped scenario is YAML");
        let target = match place {
            0 => Some(&mut value),
            1 => value.get_mut("metadata"),
            _ => value.get_mut("steps").and_then(|s| s.get_mut(0)),
        };
        let Some(Value::Mapping(map)) = target else {
            panic!("{}: no mapping at place {place}", path.display());
        };
        map.insert(Value::String(key.clone()), Value::Bool(true));
        let mutated = serde_yaml::to_string(&value).expect("YAML value serialises");
        let error = parse_checked(path, &mutated).expect_err("an unknown key is refused");
        prop_assert!(error.contains(&format!("unknown field `{key}`")), "{error}");
        let line = error[path.display().to_string().len()..].split(':').nth(1);
        prop_assert!(line.is_some_and(|l| l.parse::<usize>().is_ok()), "no line in {error}");
    }

    /// A bad scenario name is refused naming `metadata.name` and the value.
    #[test]
    fn bad_names_are_named(file in any::<Index>(), name in ".{0,60}") {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        prop_assume!(!valid);
        let (path, text) = &shipped()[file.index(shipped().len())];
        let mut value: Value = serde_yaml::from_str(text).expect("shipped scenario is YAML");
        value["metadata"]["name"] = Value::String(name.clone());
        let mutated = serde_yaml::to_string(&value).expect("YAML value serialises");
        let error = parse_checked(path, &mutated).expect_err("a bad name is refused");
        prop_assert!(error.contains("metadata.name"), "{error}");
        prop_assert!(error.contains(&format!("{name:?}")), "{error}");
    }
}

#[test]
fn every_shipped_scenario_loads() {
    for (path, text) in shipped() {
        if let Err(e) = parse_checked(path, text) {
            panic!("{e}");
        }
    }
}

// Hostile inputs kept as regression tests.

/// Found by `yaml_soup_never_panics` scaled up: the YAML parser takes time quadratic in the
/// nesting depth before it refuses (100,000 `[` took a minute), so the loader refuses deep
/// nesting first, at once.
#[test]
fn deep_nesting_is_refused_at_once() {
    for (open, close) in [("[", "]"), ("{a: ", "}"), ("[{a: ", "}]")] {
        let text = format!("steps: {}{}", open.repeat(100_000), close.repeat(100_000));
        let started = std::time::Instant::now();
        let error = parse_checked(&fuzz_path(), &text).expect_err("refused");
        assert!(error.contains(":1:"), "no place in {error}");
        assert!(error.contains("nested deeper than 128 levels"), "{error}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{error}"
        );
    }
}

#[test]
fn oversized_files_are_refused() {
    let text = format!("# {}\n", "x".repeat(scenario::MAX_SCENARIO_BYTES));
    let error = parse_checked(&fuzz_path(), &text).expect_err("refused");
    assert!(error.contains("more than the 1048576"), "{error}");
}

/// Aliases that would expand to 10^12 nodes inside a free-form object are refused, not expanded.
#[test]
fn alias_bombs_are_refused() {
    let mut object = String::from("{l0: &a0 [x, x, x, x, x, x, x, x, x, x]");
    for i in 1..12 {
        let p = i - 1;
        let items = vec![format!("*a{p}"); 10].join(", ");
        object.push_str(&format!(", l{i}: &a{i} [{items}]"));
    }
    object.push('}');
    let text = format!(
        "apiVersion: clb-harness/v1alpha1\nkind: Scenario\nmetadata: {{name: bomb}}\n\
         steps:\n  - name: s\n    try:\n      - apply:\n          object: {object}\n"
    );
    let started = std::time::Instant::now();
    let error = parse_checked(&fuzz_path(), &text).expect_err("refused");
    assert!(error.contains("repetition limit"), "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{error}"
    );
}

#[test]
fn durations_beyond_a_day_are_refused_by_name() {
    let (path, text) = shipped()
        .iter()
        .find(|(_, t)| t.contains("timeouts:"))
        .expect("a shipped scenario with timeouts");
    let mut value: Value = serde_yaml::from_str(text).expect("YAML");
    for huge in ["99999999999999999999h", "1000000000000d", "25h"] {
        value["timeouts"]["assert"] = Value::String(huge.to_string());
        let mutated = serde_yaml::to_string(&value).expect("YAML");
        let error = parse_checked(path, &mutated).expect_err("refused");
        assert!(error.contains(&format!("{huge:?}")), "{error}");
    }
}

#[test]
fn a_byte_order_mark_nul_bytes_and_an_empty_file_are_refused() {
    for text in [
        "",
        "\u{feff}",
        "\0",
        "apiVersion: \0",
        "\u{feff}kind: Scenario\n",
    ] {
        parse_checked(&fuzz_path(), text).expect_err("refused");
    }
}
