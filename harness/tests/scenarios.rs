//! End-to-end: `clb-harness run` on the shipped smoke scenario and on a broken copy, against
//! the cluster in CLB_TEST_KUBECONFIG (`make test-cluster`). fake-clb and clb-controller
//! binaries must be built (the Makefile target does it).
//!
//! The smoke run uses the Helm chart's RBAC (CLB_TEST_CHART_RBAC, rendered by `make test-charts`): the
//! controller runs as the chart's ServiceAccount with a TokenRequest token, so a rule the controller needs
//! and the chart lacks fails this test.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kubeconfig() -> PathBuf {
    PathBuf::from(
        std::env::var("CLB_TEST_KUBECONFIG")
            .expect("CLB_TEST_KUBECONFIG must point at a running cluster (make test-cluster)"),
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The chart's ServiceAccount and the file with its rendered RBAC.
const CHART_SERVICE_ACCOUNT: &str = "clb-system/clb-controller";

fn chart_rbac() -> PathBuf {
    PathBuf::from(std::env::var("CLB_TEST_CHART_RBAC").expect(
        "CLB_TEST_CHART_RBAC must name the chart's rendered RBAC (make test-charts; make test-cluster sets it)",
    ))
}

fn run(scenario: &Path, name: &str, extra: &[&std::ffi::OsStr]) -> (i32, PathBuf, String) {
    let work = tempfile::tempdir().unwrap().keep();
    let reports = work.join(format!("reports-{name}"));
    let output = Command::new(env!("CARGO_BIN_EXE_clb-harness"))
        .arg("run")
        .arg(scenario)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--report-dir")
        .arg(&reports)
        .args(extra)
        .env("CI", "true")
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), reports, log)
}

#[test]
#[ignore = "needs a cluster: make test-cluster"]
fn smoke_scenario_passes_and_its_broken_copy_fails_with_a_readable_diff() {
    let rbac = chart_rbac();
    let (code, reports, log) = run(
        &repo().join("scenarios/conformance/00-environment.yaml"),
        "ok",
        &[
            "--controller-service-account".as_ref(),
            CHART_SERVICE_ACCOUNT.as_ref(),
            "--controller-rbac".as_ref(),
            rbac.as_os_str(),
        ],
    );
    assert_eq!(
        code, 0,
        "smoke scenario failed as the chart's ServiceAccount:\n{log}"
    );
    assert!(
        log.contains("controller runs as system:serviceaccount:clb-system:clb-controller"),
        "the controller did not run as the chart's ServiceAccount:\n{log}"
    );
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(
        junit.contains("name=\"a PortPool pre-creates its listeners and removes them on delete\""),
        "{junit}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["passed"], true);

    let (code, reports, log) = run(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken-environment.yaml"),
        "broken",
        &[],
    );
    assert_ne!(code, 0, "broken scenario passed:\n{log}");
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    assert!(
        junit.contains(".status.readyReplicas: expected 4, got 3"),
        "diff missing from junit:\n{junit}"
    );
    let md = std::fs::read_to_string(reports.join("summary.md")).unwrap();
    assert!(md.contains("FAILED"), "{md}");
}
