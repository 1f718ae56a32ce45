//! `cluster up` failure reporting and cleanup, without Go binaries: a stand-in build script
//! reports scripts as the control-plane binaries, and the stand-in etcd fails.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use clb_harness::Error;
use clb_harness::cluster::{self, UpOptions};

fn write_executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A controlplane dir whose build.sh reports `etcd_body` as etcd and `sleep` for the rest.
fn fake_controlplane(dir: &Path, etcd_body: &str) {
    let etcd = dir.join("etcd");
    write_executable(&etcd, etcd_body);
    let build = format!(
        "#!/usr/bin/env bash\necho '[fake] cached' >&2\n\
         echo ETCD={etcd}\necho KUBE_APISERVER=/bin/sleep\n\
         echo KUBE_CONTROLLER_MANAGER=/bin/sleep\necho KUBE_SCHEDULER=/bin/sleep\n\
         echo KWOK=/bin/sleep\necho KUBERNETES_VERSION=v0.0.0-test\n",
        etcd = etcd.display()
    );
    write_executable(&dir.join("build.sh"), &build);
}

#[tokio::test]
async fn failing_component_is_named_with_its_log_and_nothing_is_left_running() {
    clb_harness::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let controlplane = tmp.path().join("controlplane");
    std::fs::create_dir(&controlplane).unwrap();
    fake_controlplane(
        &controlplane,
        "#!/bin/sh\necho 'fake etcd: simulated bind failure' >&2\nexit 3\n",
    );
    let state_dir = tmp.path().join("state");
    let opts = UpOptions {
        state_dir: state_dir.clone(),
        cache_dir: tmp.path().join("cache"),
        controlplane_dir: controlplane,
        nodes: 3,
    };

    let err = cluster::up(&opts).await.unwrap_err();
    match &err {
        Error::ComponentFailed {
            component,
            reason,
            log,
            log_tail,
        } => {
            assert_eq!(component, "etcd");
            assert_eq!(log, &state_dir.join("logs").join("etcd.log"));
            assert!(reason.contains("exited"), "{reason}");
            assert!(log_tail.contains("simulated bind failure"), "{log_tail}");
        }
        other => panic!("expected ComponentFailed, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("etcd did not start"), "{message}");
    assert!(message.contains("etcd.log"), "{message}");

    // Failed start-up cleans up after itself: no state file, status reports no cluster.
    assert!(!state_dir.join("cluster.json").exists());
    let status = cluster::status(&state_dir).await.unwrap();
    assert!(!status.healthy());
    let down = cluster::down(&state_dir).await.unwrap();
    assert!(down.stopped.is_empty(), "{down}");
}

#[tokio::test]
async fn failing_build_script_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let controlplane = tmp.path().join("controlplane");
    std::fs::create_dir(&controlplane).unwrap();
    write_executable(
        &controlplane.join("build.sh"),
        "#!/usr/bin/env bash\necho 'go: module lookup disabled' >&2\nexit 1\n",
    );
    let opts = UpOptions {
        state_dir: tmp.path().join("state"),
        cache_dir: tmp.path().join("cache"),
        controlplane_dir: controlplane,
        nodes: 3,
    };
    let err = cluster::up(&opts).await.unwrap_err();
    assert!(matches!(err, Error::BuildFailed { .. }), "{err:?}");
}

#[tokio::test]
async fn node_count_out_of_range_is_rejected_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = UpOptions {
        state_dir: tmp.path().join("state"),
        cache_dir: tmp.path().join("cache"),
        controlplane_dir: tmp.path().join("missing"),
        nodes: 0,
    };
    let err = cluster::up(&opts).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err:?}");
    assert!(!tmp.path().join("state").exists());
}

#[tokio::test]
async fn down_tolerates_a_corrupt_state_file() {
    let tmp = tempfile::tempdir().unwrap();
    let state_file = tmp.path().join("cluster.json");
    std::fs::write(&state_file, "{ not json").unwrap();
    let report = cluster::down(tmp.path()).await.unwrap();
    assert!(report.stopped.is_empty(), "{report}");
    assert!(!state_file.exists());
}
