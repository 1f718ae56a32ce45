//! `report.html`: the measurements of a run as tables and inline SVG charts, per scenario:
//! latency CDFs of every measurement on one chart (baseline and port runs side by side), pods
//! Ready over time, and cloud calls per second by action. Self-contained (no script, no
//! external resource) and well-formed XML, so a browser shows it offline and a test can parse it.

use std::fmt::Write as _;

use super::{MeasurementReport, RunReport, ScenarioReport, xml_escape};
use crate::measure::machine::Machine;
use crate::measure::perf::{calls_per_second, cdf, cumulative};

/// Line colours, distinguishable in print and for the common colour-vision deficiencies.
const PALETTE: [&str; 10] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442",
    "#999999", "#882255",
];
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 46.0;

/// One line of a chart; `step` draws it as a staircase (counts and CDFs change in jumps).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub step: bool,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Round tick step for a range: 1, 2 or 5 times a power of ten, about `target` ticks.
fn tick_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let power = 10f64.powf(raw.log10().floor());
    let base = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|b| b * power >= raw)
        .unwrap_or(10.0);
    base * power
}

fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.2}");
        text.trim_end_matches('0').to_string()
    }
}

/// Maps data onto the plot area: axes from zero to a round top.
struct Frame {
    x_top: f64,
    y_top: f64,
    x_step: f64,
    y_step: f64,
}

impl Frame {
    const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
    const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

    fn of(chart: &Chart) -> Frame {
        let all = chart.series.iter().flat_map(|s| s.points.iter());
        let (x_max, y_max) = all.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
        let (x_step, y_step) = (tick_step(x_max, 8.0), tick_step(y_max, 5.0));
        Frame {
            x_top: (x_max / x_step).ceil().max(1.0) * x_step,
            y_top: (y_max / y_step).ceil().max(1.0) * y_step,
            x_step,
            y_step,
        }
    }

    fn x(&self, x: f64) -> f64 {
        LEFT + x / self.x_top * Self::PLOT_W
    }

    fn y(&self, y: f64) -> f64 {
        TOP + Self::PLOT_H - y / self.y_top * Self::PLOT_H
    }
}

/// Grid lines, tick labels, frame and axis labels.
fn axes(out: &mut String, frame: &Frame, chart: &Chart) {
    let (plot_w, plot_h) = (Frame::PLOT_W, Frame::PLOT_H);
    let mut tick = 0.0;
    while tick <= frame.x_top + frame.x_step / 2.0 {
        let x = frame.x(tick);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"grid\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            TOP + plot_h,
            TOP + plot_h + 16.0,
            fmt_tick(tick)
        );
        tick += frame.x_step;
    }
    tick = 0.0;
    while tick <= frame.y_top + frame.y_step / 2.0 {
        let y = frame.y(tick);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(tick)
        );
        tick += frame.y_step;
    }
    let _ = write!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" class=\"frame\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        xml_escape(&chart.x_label),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        xml_escape(&chart.y_label)
    );
}

/// One series: its line (a staircase for `step`) and its legend entry.
fn line(out: &mut String, frame: &Frame, series: &Series, index: usize) {
    let colour = PALETTE[index % PALETTE.len()];
    let mut d = String::new();
    let mut last: Option<f64> = None;
    for (x, y) in &series.points {
        let (px, py) = (frame.x(*x), frame.y(*y));
        let _ = match last {
            None => write!(d, "M{px:.1},{py:.1}"),
            Some(ly) if series.step => write!(d, " L{px:.1},{ly:.1} L{px:.1},{py:.1}"),
            Some(_) => write!(d, " L{px:.1},{py:.1}"),
        };
        last = Some(py);
    }
    let ly = TOP + 8.0 + index as f64 * 18.0;
    let lx = LEFT + Frame::PLOT_W + 14.0;
    let _ = write!(
        out,
        "<g class=\"series\" data-name=\"{name}\"><path d=\"{d}\" stroke=\"{colour}\" fill=\"none\" stroke-width=\"1.8\"/>\
         <line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"legend\">{name}</text></g>",
        lx + 18.0,
        lx + 24.0,
        ly + 4.0,
        name = xml_escape(&series.name)
    );
}

/// The chart as an `<svg>` element: axes with round ticks from zero, one `<g class="series">`
/// per series (its name in `data-name`) and a legend.
pub fn svg(chart: &Chart) -> String {
    let frame = Frame::of(chart);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\"><title>{title}</title>\
         <text x=\"{LEFT}\" y=\"20\" class=\"title\">{title}</text>",
        title = xml_escape(&chart.title)
    );
    axes(&mut out, &frame, chart);
    for (i, series) in chart.series.iter().enumerate() {
        line(&mut out, &frame, series, i);
    }
    out.push_str("</svg>");
    out
}

fn seconds(ms: f64) -> f64 {
    ms / 1000.0
}

/// Latency CDFs of every measurement of the scenario: created → Ready, and created → target
/// in the cloud where the measurement has a cloud end point.
pub fn latency_chart(scenario: &ScenarioReport) -> Chart {
    let mut series = Vec::new();
    for m in &scenario.measurements {
        let ready: Vec<f64> = m
            .samples
            .iter()
            .filter_map(|s| s.ready_ms.map(|r| seconds(r - s.created_ms)))
            .collect();
        if !ready.is_empty() {
            series.push(Series {
                name: format!("{}: created → Ready", m.name),
                points: cdf(&ready),
                step: true,
            });
        }
        let cloud: Vec<f64> = m
            .samples
            .iter()
            .filter_map(|s| s.latency_ms.map(seconds))
            .collect();
        if !cloud.is_empty() {
            series.push(Series {
                name: format!("{}: created → in cloud", m.name),
                points: cdf(&cloud),
                step: true,
            });
        }
    }
    Chart {
        title: "Latency CDF per pod".into(),
        x_label: "seconds".into(),
        y_label: "fraction of pods".into(),
        series,
    }
}

/// Pods Ready over time, per measurement (time since its start).
pub fn ready_chart(scenario: &ScenarioReport) -> Chart {
    let series = scenario
        .measurements
        .iter()
        .map(|m| {
            let times: Vec<f64> = m
                .samples
                .iter()
                .filter_map(|s| s.ready_ms.map(seconds))
                .collect();
            Series {
                name: m.name.clone(),
                points: cumulative(&times),
                step: true,
            }
        })
        .filter(|s| s.points.len() > 1)
        .collect();
    Chart {
        title: "Pods Ready over time".into(),
        x_label: "seconds since the measurement started".into(),
        y_label: "pods Ready".into(),
        series,
    }
}

/// Cloud calls per second by action during one measurement.
pub fn calls_chart(m: &MeasurementReport) -> Chart {
    let series = calls_per_second(&m.calls)
        .into_iter()
        .map(|(action, points)| Series {
            name: action,
            points,
            step: false,
        })
        .collect();
    Chart {
        title: format!("Cloud calls per second by action: {}", m.name),
        x_label: "seconds since the measurement started".into(),
        y_label: "calls per second".into(),
        series,
    }
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// One row per measurement: the headline figures.
fn table(scenario: &ScenarioReport) -> String {
    let mut out = String::from(
        "<table><tr><th>measurement</th><th>pods</th><th>wall s</th><th>× baseline</th>\
         <th>pods/s</th><th>Ready p50/p90/p99/max s</th><th>in cloud p50/p90/p99/max s</th>\
         <th>cloud calls/pod</th><th>targets per BatchRegisterTargets</th>\
         <th>API writes/pod (controller)</th><th>controller CPU ms/pod</th><th>peak RSS MB</th></tr>",
    );
    let quad = |s: Option<&crate::measure::Summary>| {
        s.map(|s| {
            [s.p50, s.p90, s.p99, s.max]
                .map(|v| cell(v.map(seconds), 1))
                .join(" / ")
        })
        .unwrap_or_else(|| "–".into())
    };
    for m in &scenario.measurements {
        let Some(p) = &m.perf else { continue };
        let cloud = (!p.baseline).then_some(&m.summary);
        let calls: u64 = p.cloud_calls.values().sum();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            xml_escape(&m.name),
            p.pods,
            cell(p.wall_seconds, 1),
            cell(p.ratio_to_baseline, 2),
            cell(p.pods_per_second, 1),
            quad(p.ready.as_ref()),
            quad(cloud),
            cell(Some(calls as f64 / p.pods.max(1) as f64), 2),
            cell(p.targets_per_batch_register, 1),
            cell(Some(p.api_writes_per_pod), 1),
            cell(p.controller_api_writes_per_pod_total, 1),
            cell(p.controller.as_ref().map(|c| c.cpu_ms_per_pod), 2),
            cell(p.controller.as_ref().map(|c| c.peak_rss_mb), 0),
        );
    }
    out.push_str("</table>");
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1100px}\
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1em}\
td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}\
td:first-child{text-align:left}svg.chart{display:block;margin:0.6em 0;background:#fff}\
.title{font-size:14px;font-weight:bold}.tick,.legend{font-size:11px}.axis{font-size:12px}\
.grid{stroke:#e4e4e4}.frame{fill:none;stroke:#888}.meta{color:#555;font-size:13px}";

/// The whole page; `None` when no scenario of the run has measurements.
pub fn render(run: &RunReport, machine: &Machine) -> Option<String> {
    let measured: Vec<&ScenarioReport> = run
        .scenarios
        .iter()
        .filter(|s| !s.measurements.is_empty())
        .collect();
    if measured.is_empty() {
        return None;
    }
    let mut out = String::from(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>",
    );
    let _ = write!(
        out,
        "<title>clb-harness run {started}</title><style>{STYLE}</style></head><body>\
         <h1>clb-harness run {started}</h1><p class=\"meta\">{}</p>",
        xml_escape(&machine_line(machine)),
        started = xml_escape(&run.started)
    );
    for scenario in measured {
        let _ = write!(
            out,
            "<section><h2>{} ({})</h2>{}",
            xml_escape(&scenario.name),
            if scenario.passed() {
                "passed"
            } else {
                "FAILED"
            },
            table(scenario)
        );
        for chart in [latency_chart(scenario), ready_chart(scenario)] {
            if !chart.series.is_empty() {
                out.push_str(&svg(&chart));
            }
        }
        for m in scenario.measurements.iter().filter(|m| !m.calls.is_empty()) {
            out.push_str(&svg(&calls_chart(m)));
        }
        out.push_str("</section>");
    }
    out.push_str("</body></html>\n");
    Some(out)
}

/// One line: CPUs, memory, CPU model, kernel, load, commit and profile.
pub fn machine_line(m: &Machine) -> String {
    format!(
        "{} CPUs, {} MiB, {}, Linux {}, load {}, commit {}{}, {} build",
        m.nproc,
        m.memory_mb.map_or("?".into(), |v| v.to_string()),
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.kernel.as_deref().unwrap_or("?"),
        m.load_average.map_or("?".into(), |l| format!(
            "{:.2} {:.2} {:.2}",
            l[0], l[1], l[2]
        )),
        m.git_commit
            .as_deref()
            .map_or("?", |c| c.get(..12).unwrap_or(c)),
        if m.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        },
        m.build_profile
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::perf::{CloudCall, PerfFigures};
    use crate::measure::summarize;
    use crate::report::Sample;
    use std::path::PathBuf;

    fn sample(m: &str, i: usize, ready: f64, cloud: Option<f64>) -> Sample {
        Sample {
            scenario: "perf".into(),
            measurement: m.into(),
            namespace: "ns".into(),
            pod: format!("{m}-{i}"),
            created_ms: i as f64 * 10.0,
            ready_ms: Some(i as f64 * 10.0 + ready),
            binding_ready_ms: None,
            target_in_cloud_ms: cloud.map(|c| i as f64 * 10.0 + c),
            latency_ms: cloud,
        }
    }

    fn measurement(name: &str, baseline: bool) -> MeasurementReport {
        let samples: Vec<Sample> = (0..20)
            .map(|i| {
                let cloud = (!baseline).then_some(300.0 + i as f64 * 40.0);
                sample(name, i, 500.0 + i as f64 * 50.0, cloud)
            })
            .collect();
        let calls = if baseline {
            Vec::new()
        } else {
            (0..30)
                .map(|i| CloudCall {
                    at_ms: i as f64 * 150.0,
                    action: ["BatchRegisterTargets", "DescribeTargets"][i % 2].into(),
                    ok: true,
                    targets: 2,
                })
                .collect()
        };
        MeasurementReport {
            name: name.into(),
            summary: summarize(&[], 0),
            breaches: Vec::new(),
            perf: Some(PerfFigures {
                baseline,
                pods: 20,
                wall_seconds: Some(2.0),
                ..PerfFigures::default()
            }),
            samples,
            calls,
        }
    }

    fn run() -> RunReport {
        RunReport {
            started: "2026-01-01T00:00:00Z".into(),
            scenarios: vec![ScenarioReport {
                name: "perf <100> & co".into(),
                file: PathBuf::from("scenarios/perf/x.yaml"),
                namespace: "ns".into(),
                seconds: 9.0,
                steps: Vec::new(),
                invariant_failures: Vec::new(),
                measurements: vec![measurement("baseline", true), measurement("ports", false)],
                error: None,
            }],
        }
    }

    fn series_names(svg: roxmltree::Node) -> Vec<String> {
        svg.descendants()
            .filter(|n| n.attribute("class") == Some("series"))
            .filter_map(|n| n.attribute("data-name").map(str::to_string))
            .collect()
    }

    #[test]
    fn report_html_is_well_formed_with_one_svg_per_chart_and_every_series() {
        let html = render(&run(), &Machine::default()).expect("a page");
        let doc = roxmltree::Document::parse_with_options(
            &html,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .expect("report.html is well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "html");
        assert!(!html.contains("<script"), "no script");
        assert_eq!(
            html.matches("http").count(),
            html.matches("xmlns=\"http").count(),
            "the only URLs are XML namespaces"
        );
        let svgs: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "svg")
            .collect();
        assert_eq!(
            svgs.len(),
            3,
            "latency CDF, Ready over time, calls per second"
        );
        let titles: Vec<&str> = svgs
            .iter()
            .filter_map(|s| s.children().find(|c| c.tag_name().name() == "title"))
            .filter_map(|t| t.text())
            .collect();
        assert_eq!(
            titles,
            [
                "Latency CDF per pod",
                "Pods Ready over time",
                "Cloud calls per second by action: ports"
            ]
        );
        assert_eq!(
            series_names(svgs[0]),
            [
                "baseline: created → Ready",
                "ports: created → Ready",
                "ports: created → in cloud"
            ]
        );
        assert_eq!(series_names(svgs[1]), ["baseline", "ports"]);
        assert_eq!(
            series_names(svgs[2]),
            ["BatchRegisterTargets", "DescribeTargets"]
        );
        for svg in &svgs {
            for path in svg.descendants().filter(|n| n.tag_name().name() == "path") {
                let d = path.attribute("d").unwrap_or("");
                assert!(d.starts_with('M') && d.contains('L'), "a drawn line: {d}");
            }
        }
        let heading = doc
            .descendants()
            .find(|n| n.tag_name().name() == "h2")
            .and_then(|h| h.text());
        assert_eq!(heading, Some("perf <100> & co (passed)"));
    }

    #[test]
    fn no_page_without_measurements() {
        let mut r = run();
        r.scenarios[0].measurements.clear();
        assert!(render(&r, &Machine::default()).is_none());
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(47.0, 8.0), 10.0);
        assert_eq!(tick_step(1.0, 5.0), 0.2);
        assert_eq!(tick_step(0.0, 5.0), 1.0);
        assert_eq!(fmt_tick(0.2), "0.2");
        assert_eq!(fmt_tick(40.0), "40");
    }
}
