//! Run results and their renderings: JUnit XML (one testcase per step, the diff inside
//! `<failure>`), `summary.json`, per-sample `samples.jsonl`, a Markdown summary and, for runs
//! with measurements, `perf.json`/`perf.md` ([`results`]) and `report.html` ([`html`]).
//! Rendering is pure; the `write_*` functions are the only I/O.

pub mod html;
pub mod results;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::measure::Summary;
use crate::measure::perf::{CloudCall, PerfFigures};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// RFC 3339 start time.
    pub started: String,
    pub scenarios: Vec<ScenarioReport>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::passed)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub file: PathBuf,
    pub namespace: String,
    pub seconds: f64,
    pub steps: Vec<StepReport>,
    /// Violations of continuous or final invariants.
    pub invariant_failures: Vec<String>,
    pub measurements: Vec<MeasurementReport>,
    /// Set when the scenario could not run at all (bad file, environment failure).
    pub error: Option<String>,
}

impl ScenarioReport {
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.invariant_failures.is_empty()
            && self.steps.iter().all(|s| s.failure.is_none())
            && self.measurements.iter().all(|m| m.breaches.is_empty())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    pub seconds: f64,
    pub failure: Option<Failure>,
    /// One line per operation run, e.g. `try[0] apply: ok (0.1s)`.
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// One line: which operation failed and why.
    pub message: String,
    /// The last diff of a poll and/or the last API error; multi-line.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementReport {
    pub name: String,
    pub summary: Summary,
    pub breaches: Vec<String>,
    /// Wall time, throughput, created → Ready, cloud calls, API writes and controller costs.
    pub perf: Option<PerfFigures>,
    #[serde(skip)]
    pub samples: Vec<Sample>,
    /// Every cloud call of the window, for the plots.
    #[serde(skip)]
    pub calls: Vec<CloudCall>,
}

/// One pod's way through a measurement, milliseconds since the measurement started
/// (monotonic clock, watch receipt).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub scenario: String,
    pub measurement: String,
    pub namespace: String,
    pub pod: String,
    pub created_ms: f64,
    /// First seen with condition `Ready=True`.
    pub ready_ms: Option<f64>,
    pub binding_ready_ms: Option<f64>,
    pub target_in_cloud_ms: Option<f64>,
    /// created → target in cloud, the measured latency.
    pub latency_ms: Option<f64>,
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a testsuite per scenario, a testcase per step, plus `invariants` and one case
/// per measurement when there is something to report.
pub fn junit_xml(run: &RunReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total_tests: usize = run.scenarios.iter().map(|s| cases(s).len()).sum();
    let total_failures: usize = run
        .scenarios
        .iter()
        .map(|s| cases(s).iter().filter(|c| c.2.is_some()).count())
        .sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"clb-harness\" tests=\"{total_tests}\" failures=\"{total_failures}\">"
    );
    for scenario in &run.scenarios {
        let cases = cases(scenario);
        let failures = cases.iter().filter(|c| c.2.is_some()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\" timestamp=\"{}\" file=\"{}\">",
            xml_escape(&scenario.name),
            cases.len(),
            scenario.seconds,
            xml_escape(&run.started),
            xml_escape(&scenario.file.display().to_string()),
        );
        for (name, seconds, failure, log) in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{seconds:.3}\"",
                xml_escape(&scenario.name),
                xml_escape(&name)
            );
            if failure.is_none() && log.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            if let Some(f) = failure {
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"AssertionFailed\">{}</failure>",
                    xml_escape(&f.message),
                    xml_escape(&format!("{}\n{}", f.message, f.detail))
                );
            }
            if !log.is_empty() {
                let _ = writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    xml_escape(&log.join("\n"))
                );
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

type Case = (String, f64, Option<Failure>, Vec<String>);

fn cases(scenario: &ScenarioReport) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    if let Some(error) = &scenario.error {
        cases.push((
            "setup".to_string(),
            0.0,
            Some(Failure {
                message: "scenario did not run".to_string(),
                detail: error.clone(),
            }),
            Vec::new(),
        ));
    }
    for step in &scenario.steps {
        cases.push((
            step.name.clone(),
            step.seconds,
            step.failure.clone(),
            step.log.clone(),
        ));
    }
    if scenario.error.is_none() {
        let failure = (!scenario.invariant_failures.is_empty()).then(|| Failure {
            message: format!(
                "{} invariant violation(s)",
                scenario.invariant_failures.len()
            ),
            detail: scenario.invariant_failures.join("\n"),
        });
        cases.push(("invariants".to_string(), 0.0, failure, Vec::new()));
    }
    for m in &scenario.measurements {
        let failure = (!m.breaches.is_empty()).then(|| Failure {
            message: format!("measurement {} breached its thresholds", m.name),
            detail: m.breaches.join("\n"),
        });
        cases.push((format!("measurement {}", m.name), 0.0, failure, Vec::new()));
    }
    cases
}

/// `summary.json`: pass/fail per scenario and step, and a CL2 PerfData-like `dataItems` list.
pub fn summary_json(run: &RunReport) -> serde_json::Value {
    let data_items: Vec<serde_json::Value> = run
        .scenarios
        .iter()
        .flat_map(|s| {
            s.measurements.iter().map(move |m| {
                serde_json::json!({
                    "labels": { "scenario": s.name, "measurement": m.name },
                    "unit": "ms",
                    "data": m.summary,
                    "perf": m.perf,
                    "breaches": m.breaches,
                })
            })
        })
        .collect();
    serde_json::json!({
        "version": "v1",
        "started": run.started,
        "passed": run.passed(),
        "scenarios": run.scenarios.iter().map(|s| serde_json::json!({
            "name": s.name,
            "file": s.file,
            "namespace": s.namespace,
            "passed": s.passed(),
            "seconds": s.seconds,
            "error": s.error,
            "invariantFailures": s.invariant_failures,
            "steps": s.steps,
        })).collect::<Vec<_>>(),
        "dataItems": data_items,
    })
}

/// One JSON document per line per sample.
pub fn samples_jsonl(run: &RunReport) -> String {
    let mut out = String::new();
    for sample in run
        .scenarios
        .iter()
        .flat_map(|s| s.measurements.iter())
        .flat_map(|m| m.samples.iter())
    {
        if let Ok(line) = serde_json::to_string(sample) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

pub fn markdown(run: &RunReport) -> String {
    let mut out = String::from("# clb-harness run\n\n");
    let _ = writeln!(
        out,
        "Started {}. Result: **{}**.\n",
        run.started,
        if run.passed() { "passed" } else { "FAILED" }
    );
    out.push_str("| Scenario | Result | Steps passed | Seconds |\n|---|---|---|---|\n");
    for s in &run.scenarios {
        let passed = s.steps.iter().filter(|x| x.failure.is_none()).count();
        let _ = writeln!(
            out,
            "| {} | {} | {passed}/{} | {:.1} |",
            s.name,
            if s.passed() { "passed" } else { "FAILED" },
            s.steps.len(),
            s.seconds
        );
    }
    for s in run.scenarios.iter().filter(|s| !s.passed()) {
        let _ = writeln!(out, "\n## {} ({})\n", s.name, s.file.display());
        if let Some(e) = &s.error {
            let _ = writeln!(out, "Did not run:\n\n```\n{e}\n```");
        }
        for step in &s.steps {
            if let Some(f) = &step.failure {
                let _ = writeln!(
                    out,
                    "Step **{}**: {}\n\n```\n{}\n```\n",
                    step.name, f.message, f.detail
                );
            }
        }
        for v in &s.invariant_failures {
            let _ = writeln!(out, "- invariant: {v}");
        }
    }
    let measurements: Vec<_> = run
        .scenarios
        .iter()
        .flat_map(|s| s.measurements.iter().map(move |m| (s, m)))
        .collect();
    if !measurements.is_empty() {
        out.push_str("\n## Measurements (ms, nearest rank)\n\n| Scenario | Measurement | count | missing | p50 | p90 | p99 | max | pods/s | thresholds |\n|---|---|---|---|---|---|---|---|---|---|\n");
        let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
        for (s, m) in measurements {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                m.name,
                m.summary.count,
                m.summary.missing,
                f(m.summary.p50),
                f(m.summary.p90),
                f(m.summary.p99),
                f(m.summary.max),
                f(m.summary.pods_per_second),
                if m.breaches.is_empty() {
                    "ok".to_string()
                } else {
                    m.breaches.join("; ")
                }
            );
        }
        out.push_str(
            "\nWall time, baseline ratio, cloud calls, API writes and controller costs: `perf.md`; \
             plots: `report.html`.\n",
        );
    }
    out
}

/// Writes junit.xml, summary.json, samples.jsonl and summary.md into `dir`, and with
/// measurements perf.json, perf.md and report.html.
pub fn write_all(dir: &Path, run: &RunReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating report dir", dir, e))?;
    let summary =
        serde_json::to_string_pretty(&summary_json(run)).map_err(|e| Error::Serialize {
            what: "summary.json",
            reason: e.to_string(),
        })?;
    for (name, text) in [
        ("junit.xml", junit_xml(run)),
        ("summary.json", summary),
        ("samples.jsonl", samples_jsonl(run)),
        ("summary.md", markdown(run)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io("writing report", &path, e))?;
    }
    let machine = crate::measure::machine::describe();
    if let Some(figures) = results::collect(run, &machine) {
        results::write_report_dir(dir, &figures)?;
    }
    if let Some(page) = html::render(run, &machine) {
        let path = dir.join("report.html");
        std::fs::write(&path, page).map_err(|e| Error::io("writing report", &path, e))?;
    }
    Ok(())
}

/// Writes the run's benchmark results into a results directory (`benches/results/`), compared
/// with the newest earlier file there; `None` when nothing was measured.
pub fn write_results_dir(dir: &Path, run: &RunReport) -> Result<Option<PathBuf>> {
    match results::collect(run, &crate::measure::machine::describe()) {
        Some(figures) => results::write_results_dir(dir, &figures).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunReport {
        RunReport {
            started: "2025-01-01T00:00:00Z".to_string(),
            scenarios: vec![ScenarioReport {
                name: "demo".to_string(),
                file: PathBuf::from("scenarios/demo.yaml"),
                namespace: "demo-x".to_string(),
                seconds: 1.5,
                steps: vec![
                    StepReport {
                        name: "ok step".to_string(),
                        seconds: 0.5,
                        failure: None,
                        log: Vec::new(),
                    },
                    StepReport {
                        name: "bad <step>".to_string(),
                        seconds: 1.0,
                        failure: Some(Failure {
                            message: "try[0] assert: timed out after 1s".to_string(),
                            detail: "match all: 0 of 1 object(s) match\n  web-1:\n    .status.phase: expected \"Done\", got \"Running\"".to_string(),
                        }),
                        log: vec!["try[0] assert: FAILED".to_string()],
                    },
                ],
                invariant_failures: Vec::new(),
                measurements: Vec::new(),
                error: None,
            }],
        }
    }

    #[test]
    fn junit_has_a_testcase_per_step_with_the_escaped_diff_in_the_failure() {
        let xml = junit_xml(&run());
        assert!(xml.contains("<testsuites name=\"clb-harness\" tests=\"3\" failures=\"1\">"));
        assert!(xml.contains("<testcase classname=\"demo\" name=\"ok step\" time=\"0.500\"/>"));
        assert!(xml.contains("name=\"bad &lt;step&gt;\""));
        assert!(xml.contains(
            ".status.phase: expected &quot;Done&quot;, got &quot;Running&quot;</failure>"
        ));
        assert!(xml.contains("<testcase classname=\"demo\" name=\"invariants\""));
        assert_eq!(xml.matches("<failure").count(), 1);
    }

    #[test]
    fn summary_and_markdown_report_the_failure() {
        let r = run();
        assert!(!r.passed());
        let s = summary_json(&r);
        assert_eq!(s["passed"], false);
        assert_eq!(
            s["scenarios"][0]["steps"][1]["failure"]["message"],
            "try[0] assert: timed out after 1s"
        );
        let md = markdown(&r);
        assert!(md.contains("| demo | FAILED | 1/2 | 1.5 |"), "{md}");
        assert!(md.contains("Step **bad <step>**"));
    }

    #[test]
    fn xml_escape_drops_control_characters() {
        assert_eq!(xml_escape("a\u{1b}[31mb&"), "a?[31mb&amp;");
    }
}
