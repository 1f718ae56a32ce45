//! Cost figures of a measured run, pure parts: API-server writes from kube-apiserver's own
//! `/metrics` (a delta of `apiserver_request_total`), cloud calls from fake-clb's request log,
//! CPU and memory of the controller from `/proc/<pid>/stat` and `/status`, and the series the
//! HTML report plots.
//!
//! `apiserver_request_total` has no client label, so the controller's share of the writes comes
//! from its own `clb_controller_kube_requests_total`. A controller without that counter gets the
//! difference between a run with ports and the baseline run (same workload, no ports) of the
//! same invocation, which also charges it with what its writes make others do (the fake
//! kubelet re-evaluating readiness gates, Deployment status updates).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Summary;
use crate::snapshot::str_at;

/// Verbs of `apiserver_request_total` that change state (`APPLY` is a server-side apply patch).
const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// What one scrape of kube-apiserver's `/metrics` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiScrape {
    /// Write requests so far by `"<resource>[/<subresource>] <VERB>"` (group omitted), all codes.
    pub writes: BTreeMap<String, f64>,
    /// Read requests so far (GET, LIST, WATCH).
    pub reads: f64,
    /// `process_cpu_seconds_total` of kube-apiserver.
    pub cpu_seconds: Option<f64>,
}

/// Splits `name{a="x",b="y"} value [timestamp]` into name, labels and value.
fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    match line.split_once('{') {
        Some((name, rest)) if !name.contains(' ') => {
            let (labels, rest) = parse_labels(rest)?;
            Some((name, labels, first_number(rest)?))
        }
        _ => {
            let (name, rest) = line.split_once(' ')?;
            Some((name, BTreeMap::new(), first_number(rest)?))
        }
    }
}

/// Labels up to the closing `}` (`text` starts after the `{`), and the text after it.
fn parse_labels(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, quoted) = rest.split_once('=')?;
        let body = quoted.strip_prefix('"')?;
        let mut chars = body.char_indices();
        let mut value = String::new();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(if escaped == 'n' { '\n' } else { escaped });
                }
                '"' => break i,
                other => value.push(other),
            }
        };
        labels.insert(key.trim().to_string(), value);
        rest = &body[close + 1..];
    }
}

fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Reads the request counters and the CPU time out of kube-apiserver's `/metrics` text.
pub fn parse_apiserver_metrics(text: &str) -> ApiScrape {
    let mut scrape = ApiScrape::default();
    for line in text.lines() {
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        match name {
            "process_cpu_seconds_total" => scrape.cpu_seconds = Some(value),
            "apiserver_request_total" => {
                let verb = labels.get("verb").map(String::as_str).unwrap_or("");
                if WRITE_VERBS.contains(&verb) {
                    let resource = labels.get("resource").cloned().unwrap_or_default();
                    let key = match labels.get("subresource").filter(|s| !s.is_empty()) {
                        Some(sub) => format!("{resource}/{sub} {verb}"),
                        None => format!("{resource} {verb}"),
                    };
                    *scrape.writes.entry(key).or_default() += value;
                } else {
                    scrape.reads += value;
                }
            }
            _ => {}
        }
    }
    scrape
}

/// The controller's own write requests so far, by `"<resource>[/<subresource>] <VERB>"`, from its
/// `clb_controller_kube_requests_total` (the same keys as [`ApiScrape::writes`]).
pub fn parse_controller_writes(text: &str) -> BTreeMap<String, f64> {
    let mut writes = BTreeMap::new();
    for line in text.lines() {
        let Some(("clb_controller_kube_requests_total", labels, value)) = parse_sample(line) else {
            continue;
        };
        let verb = labels.get("verb").map(String::as_str).unwrap_or("");
        if WRITE_VERBS.contains(&verb) {
            let resource = labels.get("resource").map(String::as_str).unwrap_or("");
            *writes.entry(format!("{resource} {verb}")).or_default() += value;
        }
    }
    writes
}

/// Counters grown between two scrapes; keys that did not grow are left out. A counter that
/// went down (kube-apiserver restarted) counts from zero.
pub fn counter_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(key, now)| {
            let then = before.get(key).copied().unwrap_or(0.0);
            let grown = if *now >= then { now - then } else { *now };
            (grown >= 0.5).then(|| (key.clone(), grown.round() as u64))
        })
        .collect()
}

/// `utime + stime` in clock ticks from `/proc/<pid>/stat` (fields 14 and 15; the command name
/// in parentheses may contain spaces, so fields are counted after the last `)`).
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/<pid>/status` (e.g. `VmRSS`, `VmHWM`), in kB.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// One call in fake-clb's request log, on the measurement's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudCall {
    pub at_ms: f64,
    pub action: String,
    pub ok: bool,
    /// Targets named by a registration call (`Targets[]`), else 0.
    pub targets: usize,
}

/// Calls of a request-log page made at or after `anchor` (the measurement's start).
pub fn cloud_calls(entries: &[Value], anchor: DateTime<Utc>) -> Vec<CloudCall> {
    entries
        .iter()
        .filter_map(|entry| {
            let time = str_at(entry, "/time")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                .with_timezone(&Utc);
            let offset = (time - anchor).to_std().ok()?;
            let action = str_at(entry, "/action")?.to_string();
            let targets = entry
                .pointer("/params/Targets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            Some(CloudCall {
                at_ms: offset.as_secs_f64() * 1000.0,
                action,
                ok: str_at(entry, "/result") == Some("OK"),
                targets,
            })
        })
        .collect()
}

/// Controller process figures over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessFigures {
    pub pid: i32,
    pub cpu_seconds: f64,
    pub cpu_ms_per_pod: f64,
    pub cpu_seconds_per_1000_pods: f64,
    pub rss_start_mb: f64,
    /// Highest RSS sampled during the run (every 250 ms) or read at its end.
    pub peak_rss_mb: f64,
    pub rss_growth_mb_per_1000_pods: f64,
}

/// Everything a measured run costs, per run and per pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerfFigures {
    /// A baseline measures pods without ports (created → Ready only).
    pub baseline: bool,
    /// The baseline measurement this one is compared with.
    pub compared_to: Option<String>,
    pub pods: usize,
    /// Measurement start → last pod Ready, seconds.
    pub wall_seconds: Option<f64>,
    pub ratio_to_baseline: Option<f64>,
    /// Pods Ready per second of `wallSeconds`.
    pub pods_per_second: Option<f64>,
    /// Pod created → Ready, ms.
    pub ready: Option<Summary>,
    pub cloud_calls: BTreeMap<String, u64>,
    /// Calls that did not succeed (throttled, errors), by action.
    pub cloud_calls_failed: BTreeMap<String, u64>,
    pub cloud_calls_per_pod: BTreeMap<String, f64>,
    /// Targets per successful `BatchRegisterTargets` (one target per pod and port).
    pub targets_per_batch_register: Option<f64>,
    /// All write requests kube-apiserver served during the run, by resource and verb.
    pub api_writes: BTreeMap<String, u64>,
    pub api_writes_per_pod: f64,
    /// The controller's own writes during the run (its request counter), by resource and verb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_api_writes: Option<BTreeMap<String, u64>>,
    /// The controller's writes per pod: its own count when it exposes one, else this run's writes minus
    /// the baseline's.
    pub controller_api_writes_per_pod: Option<BTreeMap<String, f64>>,
    pub controller_api_writes_per_pod_total: Option<f64>,
    pub api_reads: u64,
    pub apiserver_cpu_seconds: Option<f64>,
    pub controller: Option<ProcessFigures>,
    /// 1-minute load average at the start and end of the run (`/proc/loadavg`).
    pub load_start: Option<f64>,
    pub load_end: Option<f64>,
}

/// Cloud-call counts and per-pod rates.
pub fn add_cloud_calls(figures: &mut PerfFigures, calls: &[CloudCall]) {
    let (mut batches, mut batch_targets) = (0u64, 0usize);
    for call in calls {
        *figures.cloud_calls.entry(call.action.clone()).or_default() += 1;
        if !call.ok {
            *figures
                .cloud_calls_failed
                .entry(call.action.clone())
                .or_default() += 1;
        } else if call.action == "BatchRegisterTargets" {
            batches += 1;
            batch_targets += call.targets;
        }
    }
    figures.cloud_calls_per_pod = per_pod(&figures.cloud_calls, figures.pods);
    figures.targets_per_batch_register =
        (batches > 0).then(|| batch_targets as f64 / batches as f64);
}

fn per_pod(counts: &BTreeMap<String, u64>, pods: usize) -> BTreeMap<String, f64> {
    let pods = pods.max(1) as f64;
    counts
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / pods))
        .collect()
}

/// The controller's writes per pod from its own counter.
pub fn add_controller_writes(figures: &mut PerfFigures, writes: BTreeMap<String, u64>) {
    let share = per_pod(&writes, figures.pods);
    figures.controller_api_writes_per_pod_total = Some(share.values().sum());
    figures.controller_api_writes_per_pod = Some(share);
    figures.controller_api_writes = Some(writes);
}

/// Compares a run with its baseline: wall-time ratio and, when the controller's own count is
/// missing, its API writes per pod as this run's per-pod writes minus the baseline's, key by key
/// (negative differences are noise and count as zero).
pub fn compare(figures: &mut PerfFigures, baseline: &PerfFigures) {
    figures.ratio_to_baseline = match (figures.wall_seconds, baseline.wall_seconds) {
        (Some(run), Some(base)) if base > 0.0 => Some(run / base),
        _ => None,
    };
    if figures.controller_api_writes.is_some() {
        return;
    }
    let mine = per_pod(&figures.api_writes, figures.pods);
    let theirs = per_pod(&baseline.api_writes, baseline.pods);
    let share: BTreeMap<String, f64> = mine
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - theirs.get(k).copied().unwrap_or(0.0)).max(0.0),
            )
        })
        .filter(|(_, v)| *v >= 0.005)
        .collect();
    figures.controller_api_writes_per_pod_total = Some(share.values().sum());
    figures.controller_api_writes_per_pod = Some(share);
}

/// Empirical CDF points `(value, fraction ≤ value)` of the given values, sorted.
pub fn cdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, (i + 1) as f64 / n))
        .collect()
}

/// Step series `(time, how many events happened by then)` of the given event times.
pub fn cumulative(times: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = times.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut out = vec![(0.0, 0.0)];
    out.extend(sorted.iter().enumerate().map(|(i, t)| (*t, (i + 1) as f64)));
    out
}

/// Calls per second by action: for each action, `(second, calls in [second, second+1))` for
/// every second from 0 to the last call of any action, so the lines share one time axis.
pub fn calls_per_second(calls: &[CloudCall]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let last = calls
        .iter()
        .map(|c| (c.at_ms / 1000.0).floor() as usize)
        .max();
    let Some(last) = last else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for call in calls {
        let bucket = (call.at_ms / 1000.0).floor() as usize;
        let series = out
            .entry(call.action.clone())
            .or_insert_with(|| vec![0.0; last + 1]);
        if let Some(slot) = series.get_mut(bucket) {
            *slot += 1.0;
        }
    }
    out.into_iter()
        .map(|(action, counts)| {
            let points = counts
                .into_iter()
                .enumerate()
                .map(|(s, c)| (s as f64, c))
                .collect();
            (action, points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const METRICS: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 1000
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="networkextension.bkbcs.tencent.com",resource="listeners",scope="resource",subresource="status",verb="APPLY",version="v1"} 2.5e+03
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 7
process_cpu_seconds_total 68.25
"#;

    #[test]
    fn apiserver_writes_are_keyed_by_resource_and_verb_with_codes_summed() {
        let s = parse_apiserver_metrics(METRICS);
        assert_eq!(s.writes.get("pods POST"), Some(&1003.0));
        assert_eq!(s.writes.get("pods/binding POST"), Some(&1000.0));
        assert_eq!(s.writes.get("listeners/status APPLY"), Some(&2500.0));
        assert_eq!(s.writes.len(), 3);
        assert_eq!(s.reads, 7.0);
        assert_eq!(s.cpu_seconds, Some(68.25));
    }

    #[test]
    fn the_controllers_own_counter_gives_its_writes_in_the_same_keys() {
        let text = "# TYPE clb_controller_kube_requests counter\n\
            clb_controller_kube_requests_total{verb=\"PATCH\",resource=\"pods/status\"} 12\n\
            clb_controller_kube_requests_total{verb=\"APPLY\",resource=\"listeners\"} 5\n\
            clb_controller_kube_requests_total{verb=\"WATCH\",resource=\"pods\"} 3\n\
            clb_controller_other_total 9\n";
        let writes = parse_controller_writes(text);
        assert_eq!(
            writes,
            BTreeMap::from([
                ("listeners APPLY".to_string(), 5.0),
                ("pods/status PATCH".to_string(), 12.0),
            ])
        );
        let mut figures = PerfFigures {
            pods: 5,
            ..PerfFigures::default()
        };
        add_controller_writes(&mut figures, counter_delta(&BTreeMap::new(), &writes));
        let total = |f: &PerfFigures| f.controller_api_writes_per_pod_total.unwrap_or(0.0);
        assert!((total(&figures) - 3.4).abs() < 1e-9, "{figures:?}");
        let baseline = PerfFigures {
            pods: 5,
            api_writes: BTreeMap::from([("pods/status PATCH".to_string(), 100)]),
            ..PerfFigures::default()
        };
        compare(&mut figures, &baseline);
        assert!(
            (total(&figures) - 3.4).abs() < 1e-9,
            "the own count is not replaced by the baseline difference: {figures:?}"
        );
    }

    #[test]
    fn label_values_may_hold_escapes_commas_and_braces() {
        let (name, labels, value) =
            parse_sample(r#"m{a="x,\"y\"}",b="\\"} 4 1700000000"#).expect("parses");
        assert_eq!(name, "m");
        assert_eq!(labels["a"], "x,\"y\"}");
        assert_eq!(labels["b"], "\\");
        assert_eq!(value, 4.0);
        assert!(parse_sample("# comment").is_none());
        assert_eq!(parse_sample("plain 2").map(|s| s.2), Some(2.0));
    }

    #[test]
    fn counter_delta_keeps_grown_counters_and_survives_a_reset() {
        let before = BTreeMap::from([("a".to_string(), 10.0), ("b".to_string(), 5.0)]);
        let after = BTreeMap::from([
            ("a".to_string(), 25.0),
            ("b".to_string(), 5.0),
            ("c".to_string(), 2.0),
        ]);
        let d = counter_delta(&before, &after);
        assert_eq!(d, BTreeMap::from([("a".into(), 15), ("c".into(), 2)]));
        let reset = BTreeMap::from([("a".to_string(), 3.0)]);
        assert_eq!(counter_delta(&before, &reset)["a"], 3);
    }

    #[test]
    fn proc_stat_and_status_are_parsed_past_a_command_with_spaces() {
        let stat = "4242 (clb ctl) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 1 2 3";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        let status = "Name:\tclb\nVmHWM:\t  81234 kB\nVmRSS:\t   70000 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(70000));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(81234));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn cloud_calls_are_counted_per_action_and_batches_by_targets() {
        let anchor: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
        let entries = vec![
            json!({"time": "2025-12-31T23:59:59Z", "action": "CreateListener", "result": "OK"}),
            json!({"time": "2026-01-01T00:00:00.500Z", "action": "BatchRegisterTargets",
                   "result": "OK", "params": {"Targets": [{}, {}, {}]}}),
            json!({"time": "2026-01-01T00:00:01.200Z", "action": "BatchRegisterTargets",
                   "result": "OK", "params": {"Targets": [{}]}}),
            json!({"time": "2026-01-01T00:00:01.300Z", "action": "DescribeTargets",
                   "result": "RequestLimitExceeded"}),
        ];
        let calls = cloud_calls(&entries, anchor);
        assert_eq!(calls.len(), 3, "the call before the anchor is not counted");
        assert_eq!(calls[0].at_ms, 500.0);
        let mut f = PerfFigures {
            pods: 4,
            ..PerfFigures::default()
        };
        add_cloud_calls(&mut f, &calls);
        assert_eq!(f.cloud_calls["BatchRegisterTargets"], 2);
        assert_eq!(f.cloud_calls_failed["DescribeTargets"], 1);
        assert_eq!(f.cloud_calls_per_pod["BatchRegisterTargets"], 0.5);
        assert_eq!(f.targets_per_batch_register, Some(2.0));
        let per_second = calls_per_second(&calls);
        assert_eq!(
            per_second["BatchRegisterTargets"],
            vec![(0.0, 1.0), (1.0, 1.0)]
        );
        assert_eq!(per_second["DescribeTargets"], vec![(0.0, 0.0), (1.0, 1.0)]);
    }

    #[test]
    fn comparison_gives_the_ratio_and_the_controller_share_of_writes() {
        let base = PerfFigures {
            pods: 10,
            wall_seconds: Some(2.0),
            api_writes: BTreeMap::from([("pods POST".into(), 10), ("events POST".into(), 30)]),
            ..PerfFigures::default()
        };
        let mut run = PerfFigures {
            pods: 10,
            wall_seconds: Some(5.0),
            api_writes: BTreeMap::from([
                ("pods POST".into(), 10),
                ("events POST".into(), 25),
                ("portbindings POST".into(), 12),
                ("pods/status PATCH".into(), 20),
            ]),
            ..PerfFigures::default()
        };
        compare(&mut run, &base);
        assert_eq!(run.ratio_to_baseline, Some(2.5));
        let share = run.controller_api_writes_per_pod.as_ref().expect("share");
        assert_eq!(share.len(), 2, "{share:?}");
        assert_eq!(share["portbindings POST"], 1.2);
        assert_eq!(run.controller_api_writes_per_pod_total, Some(3.2));
    }

    #[test]
    fn cdf_and_cumulative_series() {
        assert_eq!(
            cdf(&[30.0, 10.0, 20.0, 40.0]),
            vec![(10.0, 0.25), (20.0, 0.5), (30.0, 0.75), (40.0, 1.0)]
        );
        assert_eq!(
            cumulative(&[5.0, 1.0]),
            vec![(0.0, 0.0), (1.0, 1.0), (5.0, 2.0)]
        );
        assert!(cdf(&[]).is_empty());
    }
}
