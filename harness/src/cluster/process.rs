//! Starting and stopping component processes.
//!
//! Each component runs in its own process group (so `down` can signal everything it forked)
//! with stdout/stderr appended to its log file. It outlives the `clb-harness` process that
//! started it; the PID is recorded in the state file, and before signalling anything `down`
//! checks that the PID still runs the recorded binary, so a recycled PID is never killed.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use serde::{Deserialize, Serialize};

use super::config::{CommandSpec, Component};
use crate::error::{Error, Result};

/// A started process, as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub component: Component,
    pub pid: i32,
    pub binary: PathBuf,
    pub log: PathBuf,
}

/// Starts a component detached from our terminal's process group.
pub fn spawn(spec: &CommandSpec, log: &Path) -> Result<(Child, ProcessRecord)> {
    let log_file = open_log(log)?;
    let stderr = log_file
        .try_clone()
        .map_err(|e| Error::io("duplicating log file handle", log, e))?;
    let mut cmd = Command::new(&spec.binary);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        // Own process group: Ctrl-C on `make` does not reach it, and `down` can signal the group.
        .process_group(0);
    let child = cmd.spawn().map_err(|e| Error::ComponentFailed {
        component: spec.component.to_string(),
        reason: format!("cannot execute {}: {e}", spec.binary.display()),
        log: log.to_path_buf(),
        log_tail: String::new(),
    })?;
    let pid = i32::try_from(child.id()).map_err(|_| Error::ComponentFailed {
        component: spec.component.to_string(),
        reason: "PID out of range".to_owned(),
        log: log.to_path_buf(),
        log_tail: String::new(),
    })?;
    let record = ProcessRecord {
        component: spec.component,
        pid,
        binary: spec.binary.clone(),
        log: log.to_path_buf(),
    };
    Ok((child, record))
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("opening log file", path, e))
}

/// True if `pid` is a live (non-zombie) process running `binary`.
pub fn is_running(record: &ProcessRecord) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{}", record.pid));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    if process_state(&stat) == Some('Z') {
        return false;
    }
    match std::fs::read_link(proc_dir.join("exe")) {
        Ok(exe) => same_binary(&exe, &record.binary),
        Err(_) => false,
    }
}

/// The state letter from `/proc/<pid>/stat` ("123 (name) S ...").
fn process_state(stat: &str) -> Option<char> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// `/proc/<pid>/exe` gains a " (deleted)" suffix when the binary was replaced on disk.
fn same_binary(exe: &Path, recorded: &Path) -> bool {
    let exe = exe.to_string_lossy();
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
    let recorded = std::fs::canonicalize(recorded).unwrap_or_else(|_| recorded.to_path_buf());
    Path::new(exe) == recorded
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Not running (or the PID now belongs to another program): nothing signalled.
    NotRunning,
    Terminated,
    /// Ignored SIGTERM for the grace period and was SIGKILLed.
    Killed,
}

/// Stops a recorded component: SIGTERM to its process group, SIGKILL after `grace`.
pub async fn stop(record: &ProcessRecord, grace: Duration) -> Result<StopOutcome> {
    if !is_running(record) {
        return Ok(StopOutcome::NotRunning);
    }
    let pgid = Pid::from_raw(record.pid).ok_or_else(|| Error::StopFailed {
        component: record.component.to_string(),
        pid: record.pid,
        reason: "invalid PID".to_owned(),
    })?;
    signal_group(record, pgid, Signal::TERM)?;
    if wait_for_exit(record, grace).await {
        return Ok(StopOutcome::Terminated);
    }
    signal_group(record, pgid, Signal::KILL)?;
    if wait_for_exit(record, Duration::from_secs(5)).await {
        return Ok(StopOutcome::Killed);
    }
    Err(Error::StopFailed {
        component: record.component.to_string(),
        pid: record.pid,
        reason: "still running after SIGKILL".to_owned(),
    })
}

fn signal_group(record: &ProcessRecord, pgid: Pid, signal: Signal) -> Result<()> {
    match kill_process_group(pgid, signal) {
        Ok(()) => Ok(()),
        // Exited between the check and the signal.
        Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(Error::StopFailed {
            component: record.component.to_string(),
            pid: record.pid,
            reason: format!("signal {signal:?}: {e}"),
        }),
    }
}

/// Polls until the process is gone or the deadline passes.
async fn wait_for_exit(record: &ProcessRecord, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !is_running(record) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Component processes using files inside `state_root` that the state file may not list
/// (e.g. `up` was killed between starting a process and recording it). A process counts
/// when its executable is named like a component and an argument points inside the state dir.
pub fn find_strays(state_root: &Path) -> Vec<ProcessRecord> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let prefix = format!("{}/", state_root.display());
    let own_pid = std::process::id();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        let Some(component) = component_for_binary(&exe) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let uses_state_dir = cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).contains(&prefix));
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        if uses_state_dir {
            let exe_str = exe.to_string_lossy();
            let binary = PathBuf::from(exe_str.strip_suffix(" (deleted)").unwrap_or(&exe_str));
            let record = ProcessRecord {
                component,
                pid,
                binary,
                log: PathBuf::new(),
            };
            if is_running(&record) {
                found.push(record);
            }
        }
    }
    found
}

fn component_for_binary(exe: &Path) -> Option<Component> {
    let name = exe.file_name()?.to_string_lossy();
    let name = name.strip_suffix(" (deleted)").unwrap_or(&name);
    Component::ALL.into_iter().find(|c| c.name() == name)
}

/// A dead component stays a zombie until its new parent (init) reaps it, which can take a
/// second or more. Waiting (bounded) for that lets `pgrep` right after `down` show nothing;
/// the processes are dead either way.
pub async fn wait_for_reap(pids: &[i32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last `lines` lines of a log, to show next to an error.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_after_process_name_with_spaces_and_parens() {
        assert_eq!(process_state("42 (kube (x) y) S 1 42"), Some('S'));
        assert_eq!(process_state("42 (etcd) Z 1 42"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn deleted_binary_still_matches() {
        assert!(same_binary(
            Path::new("/opt/bin/etcd (deleted)"),
            Path::new("/opt/bin/etcd")
        ));
        assert!(!same_binary(
            Path::new("/usr/bin/sleep"),
            Path::new("/opt/bin/etcd")
        ));
    }

    #[tokio::test]
    async fn stops_a_spawned_process_group_and_ignores_foreign_pids() {
        let dir = tempfile::tempdir().unwrap();
        let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
        let spec = CommandSpec {
            component: Component::Etcd,
            binary: sleep.clone(),
            args: vec!["300".to_owned()],
            env: vec![],
        };
        let log = dir.path().join("sleep.log");
        let (mut child, record) = spawn(&spec, &log).unwrap();
        assert!(is_running(&record));

        // Same PID, different binary: must be treated as not ours.
        let foreign = ProcessRecord {
            binary: PathBuf::from("/nonexistent/etcd"),
            ..record.clone()
        };
        assert_eq!(
            stop(&foreign, Duration::from_secs(1)).await.unwrap(),
            StopOutcome::NotRunning
        );
        assert!(is_running(&record));

        let outcome = stop(&record, Duration::from_secs(5)).await.unwrap();
        assert_eq!(outcome, StopOutcome::Terminated);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!is_running(&record));
    }

    #[test]
    fn log_tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&path, 2), "b\nc");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }
}
