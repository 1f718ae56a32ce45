//! The machine a run measured on, so results from different machines or builds are not
//! compared as if they were alike: CPUs, memory, CPU model, kernel, load, git commit, profile.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub nproc: usize,
    pub memory_mb: Option<u64>,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
    pub git_commit: Option<String>,
    /// Uncommitted changes in the checkout the run was started from.
    pub git_dirty: Option<bool>,
    /// `release` or `debug`: the profile clb-harness was built with (`make perf` builds the
    /// controller and fake-clb with the same one).
    pub build_profile: String,
    /// 1-, 5- and 15-minute load averages when the report was written.
    pub load_average: Option<[f64; 3]>,
}

/// First `model name` of `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// `MemTotal` of `/proc/meminfo`, in MiB.
pub fn memory_mb(meminfo: &str) -> Option<u64> {
    super::perf::parse_status_kb(meminfo, "MemTotal").map(|kb| kb / 1024)
}

/// The three load averages of `/proc/loadavg`.
pub fn load_average(loadavg: &str) -> Option<[f64; 3]> {
    let mut fields = loadavg.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// The 1-minute load average now.
pub fn load_now() -> Option<f64> {
    read("/proc/loadavg")
        .as_deref()
        .and_then(load_average)
        .map(|l| l[0])
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(path)).ok()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Describes this machine and the checkout in the current directory.
pub fn describe() -> Machine {
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_mb: read("/proc/meminfo").as_deref().and_then(memory_mb),
        cpu_model: read("/proc/cpuinfo").as_deref().and_then(cpu_model),
        kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_string()),
        git_commit: git(&["rev-parse", "HEAD"]),
        git_dirty: git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
        build_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_string(),
        load_average: read("/proc/loadavg").as_deref().and_then(load_average),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_field_by_field() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(memory_mb("MemTotal:        8039544 kB\n"), Some(7851));
        assert_eq!(
            load_average("2.06 1.30 0.57 3/412 12345\n"),
            Some([2.06, 1.3, 0.57])
        );
        assert_eq!(load_average("x"), None);
    }
}
