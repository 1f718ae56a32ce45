//! fake-clb and controller processes: own process group, logs to files, stoppable by PID from
//! a later `clb-harness down` (the binary is checked first, so a recycled PID is left alone).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub name: String,
    pub pid: i32,
    pub binary: PathBuf,
    pub log: PathBuf,
}

/// A process this harness started and still holds (so it can be reaped).
pub struct Managed {
    pub info: ProcessInfo,
    child: Child,
    started: Instant,
}

impl Managed {
    pub fn spawn(
        name: &str,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
        stdout: &Path,
        stderr: &Path,
    ) -> Result<Managed> {
        let open = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::io("opening log file", path, e))
        };
        let out = open(stdout)?;
        let err = open(stderr)?;
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::ComponentFailed {
                component: name.to_string(),
                reason: format!("cannot execute {}: {e}", binary.display()),
                log: stderr.to_path_buf(),
                log_tail: String::new(),
            })?;
        let pid = i32::try_from(child.id()).unwrap_or(-1);
        Ok(Managed {
            info: ProcessInfo {
                name: name.to_string(),
                pid,
                binary: std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf()),
                log: stderr.to_path_buf(),
            },
            child,
            started: Instant::now(),
        })
    }

    /// The exit status if the process has ended (and reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn is_running(&mut self) -> bool {
        self.exited().is_none()
    }

    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// SIGTERM (SIGKILL after a grace period), or SIGKILL at once with `kill`; reaps the child.
    pub async fn stop(&mut self, kill: bool) {
        if self.exited().is_some() {
            return;
        }
        let Some(pgid) = Pid::from_raw(self.info.pid) else {
            return;
        };
        let first = if kill { Signal::KILL } else { Signal::TERM };
        let _ = kill_process_group(pgid, first);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = kill_process_group(pgid, Signal::KILL);
        let _ = self.child.wait();
    }
}

fn is_running(info: &ProcessInfo) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{}", info.pid));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    let zombie = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next())
        == Some('Z');
    if zombie {
        return false;
    }
    match std::fs::read_link(proc_dir.join("exe")) {
        Ok(exe) => {
            let exe = exe.to_string_lossy();
            let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
            Path::new(exe) == info.binary
        }
        Err(_) => false,
    }
}

/// Stops a process recorded in env.json by a previous `clb-harness` invocation.
pub async fn stop_recorded(info: &ProcessInfo, kill: bool) -> &'static str {
    if !is_running(info) {
        return "not running";
    }
    let Some(pgid) = Pid::from_raw(info.pid) else {
        return "invalid pid";
    };
    let _ = kill_process_group(pgid, if kill { Signal::KILL } else { Signal::TERM });
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !is_running(info) {
            return "stopped";
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = kill_process_group(pgid, Signal::KILL);
    "killed"
}
