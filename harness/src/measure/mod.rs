//! Latency statistics: nearest-rank percentiles (clusterloader2's definition), throughput and
//! threshold checks. Pure; the runner feeds it durations observed by watch (pods, PortBindings)
//! and by polling fake-clb (targets, see [`cloud`]) on a monotonic clock.

pub mod cloud;
pub mod machine;
pub mod perf;

use std::time::Duration;

use serde::Serialize;

use crate::scenario::Thresholds;

/// Nearest rank: the smallest value such that at least `p`% of the samples are ≤ it, i.e. the
/// element at rank ⌈p/100 · n⌉ (1-based) of the sorted samples. `p` in (0, 100].
pub fn nearest_rank(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Summary of one measurement, in milliseconds (CL2 PerfData style).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub count: usize,
    pub missing: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Pods per second that reached the cloud: `count` over the span from the first pod seen to
    /// the last target in cloud (see [`pods_per_second`]).
    #[serde(rename = "podsPerSecond")]
    pub pods_per_second: Option<f64>,
}

pub fn summarize(samples: &[Duration], missing: usize) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = (!sorted.is_empty())
        .then(|| sorted.iter().map(|d| ms(*d)).sum::<f64>() / sorted.len() as f64);
    Summary {
        count: sorted.len(),
        missing,
        p50: nearest_rank(&sorted, 50.0).map(ms),
        p90: nearest_rank(&sorted, 90.0).map(ms),
        p99: nearest_rank(&sorted, 99.0).map(ms),
        max: sorted.last().copied().map(ms),
        mean,
        pods_per_second: None,
    }
}

/// Throughput of a burst: pods that reached the cloud divided by the time from the first pod
/// seen (`created`, all measured pods) to the last one reaching the cloud (`in_cloud`). `None`
/// when nothing arrived or the span is zero.
pub fn pods_per_second(created: &[Duration], in_cloud: &[Duration]) -> Option<f64> {
    let first = created.iter().min()?;
    let last = in_cloud.iter().max()?;
    let span = last.checked_sub(*first)?.as_secs_f64();
    (span > 0.0).then(|| in_cloud.len() as f64 / span)
}

/// One message per breached threshold; empty when all hold. No samples with a percentile
/// threshold set is a breach (nothing was measured).
pub fn breaches(summary: &Summary, thresholds: &Thresholds) -> Vec<String> {
    let mut out = Vec::new();
    for (label, limit, value) in [
        ("p50", thresholds.p50, summary.p50),
        ("p90", thresholds.p90, summary.p90),
        ("p99", thresholds.p99, summary.p99),
        ("max", thresholds.max, summary.max),
    ] {
        let Some(limit) = limit else { continue };
        let limit_ms = limit.get().as_secs_f64() * 1000.0;
        match value {
            Some(v) if v > limit_ms => {
                out.push(format!("{label} {v:.1}ms exceeds {limit_ms:.1}ms"))
            }
            Some(_) => {}
            None => out.push(format!("{label}: no samples")),
        }
    }
    let total = summary.count + summary.missing;
    let allowed = thresholds.max_missing_ratio.unwrap_or(0.0);
    if total > 0 {
        let ratio = summary.missing as f64 / total as f64;
        if ratio > allowed {
            out.push(format!(
                "{} of {total} sample(s) missing ({:.1}%), allowed {:.1}%",
                summary.missing,
                ratio * 100.0,
                allowed * 100.0
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::HumanDuration;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn nearest_rank_picks_the_ceiling_rank() {
        let sorted = ms(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(nearest_rank(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(nearest_rank(&sorted, 90.0), Some(Duration::from_millis(90)));
        // ⌈0.99·10⌉ = 10 → the maximum.
        assert_eq!(
            nearest_rank(&sorted, 99.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(nearest_rank(&sorted, 1.0), Some(Duration::from_millis(10)));
        assert_eq!(
            nearest_rank(&sorted, 100.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&sorted, 0.0), None);
    }

    #[test]
    fn nearest_rank_never_interpolates() {
        // Interpolation would give 2.5 for p50 of 4 values; nearest rank gives the 2nd value.
        let sorted = ms(&[1, 2, 3, 4]);
        assert_eq!(nearest_rank(&sorted, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(nearest_rank(&sorted, 51.0), Some(Duration::from_millis(3)));
        let one = ms(&[7]);
        assert_eq!(nearest_rank(&one, 99.0), Some(Duration::from_millis(7)));
    }

    #[test]
    fn summarize_sorts_and_reports_in_milliseconds() {
        let s = summarize(&ms(&[300, 100, 200]), 1);
        assert_eq!(s.count, 3);
        assert_eq!(s.missing, 1);
        assert_eq!(s.p50, Some(200.0));
        assert_eq!(s.max, Some(300.0));
        assert_eq!(s.mean, Some(200.0));
    }

    #[test]
    fn throughput_spans_first_creation_to_last_arrival() {
        // 4 pods created at 0..300 ms, in the cloud at 1.0–2.0 s: 4 pods / 2 s.
        let got = pods_per_second(&ms(&[0, 100, 200, 300]), &ms(&[1000, 1500, 1800, 2000]));
        assert_eq!(got, Some(2.0));
        // Pods still missing count in the span's start but not in the numerator.
        let got = pods_per_second(&ms(&[500, 0]), &ms(&[1000]));
        assert_eq!(got, Some(1.0));
        assert_eq!(pods_per_second(&ms(&[0]), &[]), None);
        assert_eq!(pods_per_second(&[], &ms(&[5])), None);
        assert_eq!(pods_per_second(&ms(&[5]), &ms(&[5])), None);
    }

    #[test]
    fn thresholds_per_percentile_and_missing_ratio() {
        let s = summarize(&ms(&[100, 200, 300, 400]), 1);
        let t = Thresholds {
            p50: Some(HumanDuration(Duration::from_millis(250))),
            p99: Some(HumanDuration(Duration::from_millis(350))),
            max_missing_ratio: Some(0.1),
            ..Thresholds::default()
        };
        let b = breaches(&s, &t);
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(b[0].starts_with("p99 400.0ms exceeds 350.0ms"));
        assert!(b[1].starts_with("1 of 5 sample(s) missing"));
        let loose = Thresholds {
            max_missing_ratio: Some(0.5),
            ..Thresholds::default()
        };
        assert!(breaches(&s, &loose).is_empty());
    }
}
