//! The workspace's binaries as real processes, for tests that kill them:
//! each logs to a file of its own, is killed with SIGKILL by its PID, and
//! dies with the test process even when that is killed itself.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use crate::etcd::{find_in_path, spawn_from_long_lived_thread};

/// One running binary. Dropping it kills it (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct Process {
    name: String,
    pid: u32,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Process {
    /// Starts the workspace binary `binary` (see [`crate::binaries::path`])
    /// with `args`; stdout and stderr go to `log_path`. `name` only labels
    /// it in messages.
    ///
    /// Like the etcd harness, the process is started through
    /// `setpriv --pdeathsig KILL` (which execs, so the PID is the binary's)
    /// from a thread that lives as long as the test process: a test killed
    /// by its runner takes its processes with it.
    ///
    /// # Errors
    ///
    /// The binary is missing or cannot be started, or the log cannot be opened.
    pub fn spawn(name: &str, binary: &str, args: &[String], log_path: &Path) -> Result<Self> {
        let program = crate::binaries::path(binary)?;
        let log =
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("cloning a log handle")?;
        let mut cmd = if let Some(setpriv) = find_in_path("setpriv") {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(&program);
            cmd
        } else {
            tracing::warn!("setpriv not found: {name} will outlive a killed test process");
            Command::new(&program)
        };
        cmd.args(args)
            // Plain logs: tests search them for identities.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = spawn_from_long_lived_thread(cmd)
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            log_path: log_path.to_path_buf(),
        })
    }

    /// The label given at start.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (kept after the process is gone).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the process logged so far (empty if unreadable).
    #[must_use]
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process still runs (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// SIGKILLs the process by its PID (a crash, not a shutdown) and reaps
    /// it. Killing a dead process does nothing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether any process with this PID exists (a zombie counts).
#[must_use]
pub fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
