use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = "\
apiVersion: clb-harness/v1alpha1
kind: Scenario
metadata:
  name: demo
timeouts:
  assert: 5s
steps:
  - name: one
    timeouts:
      assert: 2s
    try:
      - assert:
          resource: {apiVersion: v1, kind: Pod, selector: app=web}
          object: {status: {phase: Running}}
      - assert:
          resource: {apiVersion: v1, kind: Pod}
          match: 2
          object: {}
          timeout: 1s
";

fn parse_str(text: &str) -> Result<Scenario> {
    parse(Path::new("scenarios/demo.yaml"), text)
}

#[test]
fn a_minimal_scenario_parses_with_defaults() {
    let s = parse_str(MINIMAL).unwrap();
    assert_eq!(s.cloud, CloudSetup::default());
    assert_eq!(s.cloud.load_balancers.len(), 2);
    assert!(s.invariants.unique_ports);
    let Operation::Assert(second) = &s.steps[0].try_ops[1] else {
        panic!("not an assert")
    };
    assert_eq!(second.match_mode, MatchMode::Count(2));
    let Operation::Assert(first) = &s.steps[0].try_ops[0] else {
        panic!("not an assert")
    };
    assert_eq!(first.match_mode, MatchMode::Word(MatchWord::All));
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = MINIMAL.replace("          object: {}\n", "          objekt: {}\n");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(e.starts_with("scenarios/demo.yaml:"), "{e}");
    assert!(e.contains("unknown field `objekt`"), "{e}");
    // serde_yaml points into the mapping that holds the typo (lines 18-21 of MINIMAL).
    let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
    assert!((18..=21).contains(&line), "line {line} in {e}");
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let text = format!("{MINIMAL}extra: 1\n");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(e.contains("unknown field `extra`"), "{e}");
}

#[test]
fn bad_duration_names_file_line_and_value() {
    let text = MINIMAL.replace("assert: 5s", "assert: 5 parsecs");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(e.starts_with("scenarios/demo.yaml:6:"), "{e}");
    assert!(e.contains("invalid duration \"5 parsecs\""), "{e}");
}

#[test]
fn semantic_errors_name_the_step_and_operation() {
    let text = MINIMAL.replace(
        "      - assert:\n          resource: {apiVersion: v1, kind: Pod}\n",
        "      - wait:\n          resource: {apiVersion: v1, kind: Pod}\n      - assert:\n          resource: {apiVersion: v1, kind: Pod}\n",
    );
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(
        e.contains("step \"one\" try[1] (wait): give either condition or deleted: true"),
        "{e}"
    );
}

#[test]
fn timeouts_inherit_from_operation_step_scenario_builtin() {
    let s = parse_str(MINIMAL).unwrap();
    let step = s.steps[0].timeouts.as_ref();
    let secs = |d: u64| Duration::from_secs(d);
    let op = Some(HumanDuration(secs(1)));
    assert_eq!(
        effective_timeout(op, step, &s.timeouts, TimeoutKind::Assert),
        secs(1)
    );
    assert_eq!(
        effective_timeout(None, step, &s.timeouts, TimeoutKind::Assert),
        secs(2)
    );
    assert_eq!(
        effective_timeout(None, None, &s.timeouts, TimeoutKind::Assert),
        secs(5)
    );
    assert_eq!(
        effective_timeout(None, step, &s.timeouts, TimeoutKind::Wait),
        Timeouts::builtin(TimeoutKind::Wait)
    );
}

#[test]
fn committed_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/scenario.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == json_schema(),
        "{} is out of date: run `cargo run -p clb-harness -- schema -o scenarios/scenario.schema.json`",
        path.display()
    );
}

#[test]
fn shipped_scenarios_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/conformance");
    for file in discover(&[dir]).unwrap() {
        load(&file).unwrap();
    }
}

#[test]
fn nesting_check_counts_brackets_outside_strings_and_comments_only() {
    let deep = "[".repeat(200);
    for text in [
        format!("a: '{deep}'\n"),
        format!("a: \"{deep}\\\"{deep}\"\n"),
        format!("a: 1 # {deep}\n"),
        format!("a: 'it''s {deep}'\n"),
        format!("a: it's{deep}\n").replace("it's[", "its '"),
    ] {
        assert_eq!(check_size_and_nesting(&text), Ok(()), "{text}");
    }
    let nested = format!("a: {}{}", "[".repeat(128), "]".repeat(128));
    assert_eq!(check_size_and_nesting(&nested), Ok(()));
    let e = check_size_and_nesting(&format!("a: 1\nb: x'{deep}")).unwrap_err();
    assert_eq!(e, ":2:134: collections nested deeper than 128 levels");
}
