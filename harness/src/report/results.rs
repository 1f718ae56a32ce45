//! Benchmark results: `perf.json` and `perf.md` of a run's measurements with the machine
//! description, written into the report directory and, with `--results-dir`, as a dated pair
//! into a directory that is committed (`benches/results/`), compared with the newest earlier
//! results file there so a change can be judged against the last one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunReport;
use crate::error::{Error, Result};
use crate::measure::Summary;
use crate::measure::machine::Machine;
use crate::measure::perf::PerfFigures;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub version: u32,
    pub started: String,
    pub passed: bool,
    pub machine: Machine,
    pub runs: Vec<RunFigures>,
}

/// One measurement of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFigures {
    pub scenario: String,
    pub measurement: String,
    pub passed: bool,
    /// Created → target in the cloud (ms); absent for a baseline.
    pub in_cloud: Option<Summary>,
    pub figures: PerfFigures,
}

impl RunFigures {
    fn key(&self) -> (String, String) {
        (self.scenario.clone(), self.measurement.clone())
    }
}

/// The measured runs of a report; `None` when nothing was measured.
pub fn collect(run: &RunReport, machine: &Machine) -> Option<Results> {
    let runs: Vec<RunFigures> = run
        .scenarios
        .iter()
        .flat_map(|s| {
            s.measurements.iter().filter_map(move |m| {
                let figures = m.perf.clone()?;
                Some(RunFigures {
                    scenario: s.name.clone(),
                    measurement: m.name.clone(),
                    passed: s.passed(),
                    in_cloud: (!figures.baseline).then(|| m.summary.clone()),
                    figures,
                })
            })
        })
        .collect();
    (!runs.is_empty()).then(|| Results {
        version: 1,
        started: run.started.clone(),
        passed: run.passed(),
        machine: machine.clone(),
        runs,
    })
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn seconds_quad(s: Option<&Summary>) -> String {
    s.map(|s| {
        [s.p50, s.p90, s.p99, s.max]
            .map(|v| cell(v.map(|ms| ms / 1000.0), 1))
            .join(" / ")
    })
    .unwrap_or_else(|| "–".into())
}

/// Headline figures, one row per run.
fn headline(out: &mut String, results: &Results) {
    out.push_str(
        "| Scenario | Measurement | pods | wall s | × baseline | pods/s | created → Ready p50/p90/p99/max s \
         | created → in cloud p50/p90/p99/max s | targets per BatchRegisterTargets \
         | DescribeTargets per pod | API writes per pod (all / controller) | controller CPU ms per pod \
         | controller peak RSS MB | kube-apiserver CPU s | load start→end |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &results.runs {
        let f = &r.figures;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {}→{} |",
            r.scenario,
            r.measurement,
            f.pods,
            cell(f.wall_seconds, 1),
            cell(f.ratio_to_baseline, 2),
            cell(f.pods_per_second, 1),
            seconds_quad(f.ready.as_ref()),
            seconds_quad(r.in_cloud.as_ref()),
            cell(f.targets_per_batch_register, 1),
            cell(f.cloud_calls_per_pod.get("DescribeTargets").copied(), 2),
            cell(Some(f.api_writes_per_pod), 1),
            cell(f.controller_api_writes_per_pod_total, 1),
            cell(f.controller.as_ref().map(|c| c.cpu_ms_per_pod), 2),
            cell(f.controller.as_ref().map(|c| c.peak_rss_mb), 0),
            cell(f.apiserver_cpu_seconds, 1),
            cell(f.load_start, 2),
            cell(f.load_end, 2),
        );
    }
}

/// Per-run breakdown: cloud calls per pod by action and API writes per pod by resource/verb.
fn breakdown(out: &mut String, results: &Results) {
    for r in &results.runs {
        let f = &r.figures;
        let _ = writeln!(out, "\n### {} / {}\n", r.scenario, r.measurement);
        if let Some(c) = &f.controller {
            let _ = writeln!(
                out,
                "Controller (pid {}): {:.2} CPU-s ({:.2} s per 1,000 pods), RSS {:.0} → peak {:.0} MB \
                 ({:+.1} MB per 1,000 pods).\n",
                c.pid,
                c.cpu_seconds,
                c.cpu_seconds_per_1000_pods,
                c.rss_start_mb,
                c.peak_rss_mb,
                c.rss_growth_mb_per_1000_pods
            );
        }
        if !f.cloud_calls.is_empty() {
            out.push_str("| cloud action | calls | failed | per pod |\n|---|---|---|---|\n");
            for (action, n) in &f.cloud_calls {
                let _ = writeln!(
                    out,
                    "| {action} | {n} | {} | {:.2} |",
                    f.cloud_calls_failed.get(action).copied().unwrap_or(0),
                    f.cloud_calls_per_pod.get(action).copied().unwrap_or(0.0)
                );
            }
            out.push('\n');
        }
        let share = f.controller_api_writes_per_pod.clone().unwrap_or_default();
        out.push_str(
            "| API write (resource verb) | requests | per pod | controller per pod |\n|---|---|---|---|\n",
        );
        let pods = f.pods.max(1) as f64;
        for (key, n) in &f.api_writes {
            let _ = writeln!(
                out,
                "| {key} | {n} | {:.2} | {} |",
                *n as f64 / pods,
                cell(share.get(key).copied(), 2)
            );
        }
    }
}

/// Previous results side by side with these, for runs present in both.
fn comparison(out: &mut String, results: &Results, previous: &Results, name: &str) {
    let before: BTreeMap<_, _> = previous.runs.iter().map(|r| (r.key(), r)).collect();
    let _ = writeln!(
        out,
        "\n## Compared with {name} (commit {})\n\n| Scenario | Measurement | wall s | × baseline | pods/s \
         | targets per BatchRegisterTargets | controller writes per pod | CPU ms per pod |\n|---|---|---|---|---|---|---|---|",
        previous
            .machine
            .git_commit
            .as_deref()
            .map_or("?", |c| c.get(..12).unwrap_or(c))
    );
    for r in &results.runs {
        let Some(p) = before.get(&r.key()) else {
            continue;
        };
        let pair = |now: Option<f64>, then: Option<f64>, digits: usize| {
            format!("{} → {}", cell(then, digits), cell(now, digits))
        };
        let (f, g) = (&r.figures, &p.figures);
        let cpu = |x: &PerfFigures| x.controller.as_ref().map(|c| c.cpu_ms_per_pod);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.measurement,
            pair(f.wall_seconds, g.wall_seconds, 1),
            pair(f.ratio_to_baseline, g.ratio_to_baseline, 2),
            pair(f.pods_per_second, g.pods_per_second, 1),
            pair(
                f.targets_per_batch_register,
                g.targets_per_batch_register,
                1
            ),
            pair(
                f.controller_api_writes_per_pod_total,
                g.controller_api_writes_per_pod_total,
                1
            ),
            pair(cpu(f), cpu(g), 2),
        );
    }
}

/// The Markdown rendering; `previous` (with its file name) adds a comparison.
pub fn markdown(results: &Results, previous: Option<(&Results, &str)>) -> String {
    let mut out = format!("# Benchmark results {}\n\n", results.started);
    let _ = writeln!(
        out,
        "Machine: {}.\nResult: **{}**. Latencies are nearest-rank percentiles; API writes are \
         kube-apiserver's `apiserver_request_total` delta over each run (the controller's share is \
         its own `clb_controller_kube_requests_total` delta); load is the 1-minute load average.\n",
        super::html::machine_line(&results.machine),
        if results.passed { "passed" } else { "FAILED" }
    );
    headline(&mut out, results);
    if let Some((previous, name)) = previous {
        comparison(&mut out, results, previous, name);
    }
    out.push_str("\n## Breakdown\n");
    breakdown(&mut out, results);
    out
}

/// The newest `*.json` results file in `dir` (names start with a UTC timestamp, so the
/// greatest name is the newest), other than `except`.
fn newest(dir: &Path, except: &Path) -> Option<(Results, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p != except)
        .collect();
    files.sort();
    let path = files.pop()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let results = serde_json::from_str(&text).ok()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    Some((results, name))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("writing results", path, e))
}

fn to_json(results: &Results) -> Result<String> {
    serde_json::to_string_pretty(results).map_err(|e| Error::Serialize {
        what: "perf results",
        reason: e.to_string(),
    })
}

/// `perf.json` and `perf.md` in the report directory.
pub fn write_report_dir(dir: &Path, results: &Results) -> Result<()> {
    write(&dir.join("perf.json"), &to_json(results)?)?;
    write(&dir.join("perf.md"), &markdown(results, None))
}

/// `<dir>/<UTC start>-<commit>.json` and `.md`, compared with the newest earlier file there.
/// Returns the Markdown file's path.
pub fn write_results_dir(dir: &Path, results: &Results) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating results dir", dir, e))?;
    let stamp: String = results
        .started
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let commit = results
        .machine
        .git_commit
        .as_deref()
        .and_then(|c| c.get(..8))
        .unwrap_or("nocommit");
    let json = dir.join(format!("{stamp}-{commit}.json"));
    let previous = newest(dir, &json);
    write(&json, &to_json(results)?)?;
    let md = json.with_extension("md");
    let text = markdown(results, previous.as_ref().map(|(r, n)| (r, n.as_str())));
    write(&md, &text)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::perf::ProcessFigures;

    fn results(wall: f64, commit: &str) -> Results {
        let figures = PerfFigures {
            pods: 100,
            wall_seconds: Some(wall),
            ratio_to_baseline: Some(wall / 2.0),
            targets_per_batch_register: Some(12.5),
            cloud_calls: BTreeMap::from([("DescribeTargets".into(), 50)]),
            cloud_calls_per_pod: BTreeMap::from([("DescribeTargets".into(), 0.5)]),
            api_writes: BTreeMap::from([("portbindings POST".into(), 100)]),
            api_writes_per_pod: 1.0,
            controller_api_writes_per_pod: Some(BTreeMap::from([(
                "portbindings POST".into(),
                1.0,
            )])),
            controller_api_writes_per_pod_total: Some(1.0),
            controller: Some(ProcessFigures {
                cpu_ms_per_pod: 4.25,
                ..ProcessFigures::default()
            }),
            ..PerfFigures::default()
        };
        Results {
            version: 1,
            started: "2026-01-01T00:00:00Z".into(),
            passed: true,
            machine: Machine {
                git_commit: Some(commit.into()),
                ..Machine::default()
            },
            runs: vec![RunFigures {
                scenario: "perf-100-pods".into(),
                measurement: "ports".into(),
                passed: true,
                in_cloud: None,
                figures,
            }],
        }
    }

    #[test]
    fn markdown_has_the_headline_row_and_the_breakdown() {
        let md = markdown(&results(5.0, "abc"), None);
        assert!(
            md.contains("| perf-100-pods | ports | 100 | 5.0 | 2.50 |"),
            "{md}"
        );
        assert!(md.contains("| DescribeTargets | 50 | 0 | 0.50 |"), "{md}");
        assert!(
            md.contains("| portbindings POST | 100 | 1.00 | 1.00 |"),
            "{md}"
        );
        assert!(md.contains("| 12.5 | 0.50 | 1.0 / 1.0 | 4.25 |"), "{md}");
    }

    #[test]
    fn results_dir_files_compare_with_the_newest_earlier_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut older = results(8.0, "1111111111");
        older.started = "2025-06-01T00:00:00Z".into();
        write_results_dir(dir.path(), &older).expect("first");
        let md = write_results_dir(dir.path(), &results(5.0, "2222222222")).expect("second");
        let text = std::fs::read_to_string(&md).expect("md");
        assert!(
            text.contains("Compared with 20250601T000000Z-11111111.json"),
            "{text}"
        );
        assert!(text.contains("| 8.0 → 5.0 | 4.00 → 2.50 |"), "{text}");
        let json = md.with_extension("json");
        let back: Results =
            serde_json::from_str(&std::fs::read_to_string(json).expect("json")).expect("parses");
        assert_eq!(back, results(5.0, "2222222222"));
    }
}
