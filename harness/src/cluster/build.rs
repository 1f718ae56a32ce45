//! Getting the control-plane binaries: runs `tools/controlplane/build.sh`, which answers from
//! the machine-local cache in milliseconds or builds from the Go module proxy on a miss
//! (printing progress to our stderr).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Error, Result};

/// Absolute paths of the binaries to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kwok: PathBuf,
    /// e.g. `v1.34.4`; reported as the fake nodes' kubelet version.
    pub kubernetes_version: String,
}

/// `tools/controlplane` of this checkout, overridable with `CLB_CONTROLPLANE_DIR`.
pub fn default_controlplane_dir() -> PathBuf {
    std::env::var_os("CLB_CONTROLPLANE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("tools")
                .join("controlplane")
        })
}

/// `$CLB_CACHE_DIR`, else `~/.cache/clb-testbed`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLB_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("clb-testbed")
}

/// Runs the build script (cache check or build) and returns the binaries it reports.
pub async fn ensure_binaries(controlplane_dir: &Path, cache_dir: &Path) -> Result<Binaries> {
    let script = controlplane_dir.join("build.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .env("CLB_CACHE_DIR", cache_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| Error::io("running the control-plane build script", &script, e))?;
    if !output.status.success() {
        return Err(Error::BuildFailed {
            script,
            status: output.status.to_string(),
        });
    }
    parse_build_output(&String::from_utf8_lossy(&output.stdout))
}

/// Parses the `NAME=value` lines the build script prints on stdout.
pub fn parse_build_output(stdout: &str) -> Result<Binaries> {
    let value = |key: &'static str| -> Result<String> {
        stdout
            .lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or(Error::BuildOutputMissing(key))
    };
    let path = |key: &'static str| value(key).map(PathBuf::from);
    Ok(Binaries {
        etcd: path("ETCD")?,
        kube_apiserver: path("KUBE_APISERVER")?,
        kube_controller_manager: path("KUBE_CONTROLLER_MANAGER")?,
        kube_scheduler: path("KUBE_SCHEDULER")?,
        kwok: path("KWOK")?,
        kubernetes_version: value("KUBERNETES_VERSION")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_binary() {
        let out = "ETCD=/c/etcd\nKUBE_APISERVER=/c/a\nKUBE_CONTROLLER_MANAGER=/c/m\n\
                   KUBE_SCHEDULER=/c/s\nKWOK=/c/k\nKUBERNETES_VERSION=v1.34.4\n";
        let b = parse_build_output(out).unwrap();
        assert_eq!(b.etcd, PathBuf::from("/c/etcd"));
        assert_eq!(b.kube_scheduler, PathBuf::from("/c/s"));
        assert_eq!(b.kubernetes_version, "v1.34.4");
    }

    #[test]
    fn missing_binary_is_an_error_naming_it() {
        let err = parse_build_output("ETCD=/c/etcd\n").unwrap_err();
        assert!(matches!(err, Error::BuildOutputMissing("KUBE_APISERVER")));
    }
}
