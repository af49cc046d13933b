//! Running `iptables-save` / `iptables-restore`, and writing a
//! [`Ruleset`] only when it changed (or the kernel's copy drifted).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::rules::{self, NatState, Ruleset};

/// An iptables command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command could not be started (not installed?).
    #[error("running {command}: {source}")]
    Spawn {
        /// Which command.
        command: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// Which command.
        command: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
}

/// The two operations the proxy needs from iptables: a seam so rule
/// syncing can be tested without a kernel.
#[async_trait::async_trait]
pub trait Iptables: Send + Sync {
    /// `iptables-save -c -t nat` (with counters).
    async fn save_nat(&self) -> Result<String, Error>;
    /// `iptables-restore --noflush` fed `text` (one atomic transaction).
    async fn restore(&self, text: &str) -> Result<(), Error>;
}

/// The real commands, found on `PATH`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Commands;

#[async_trait::async_trait]
impl Iptables for Commands {
    async fn save_nat(&self) -> Result<String, Error> {
        let command = "iptables-save";
        let output = tokio::process::Command::new(command)
            .args(["-c", "-t", "nat"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| Error::Spawn { command, source })?;
        succeeded(command, &output)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn restore(&self, text: &str) -> Result<(), Error> {
        let command = "iptables-restore";
        let mut child = tokio::process::Command::new(command)
            .args(["--noflush", "--wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn { command, source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(|source| Error::Spawn { command, source })?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| Error::Spawn { command, source })?;
        succeeded(command, &output)
    }
}

/// `Failed` (with its stderr) unless `command` exited with success.
fn succeeded(command: &'static str, output: &std::process::Output) -> Result<(), Error> {
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Failed {
        command,
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// Keeps the kernel's nat rules equal to the last desired [`Ruleset`].
pub struct RuleWriter {
    iptables: Box<dyn Iptables>,
    last: Option<Ruleset>,
    saved: Option<String>,
}

/// What a [`RuleWriter::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed; no command ran.
    Unchanged,
    /// The kernel's state was read and matched; nothing written.
    Verified,
    /// One transaction was written.
    Written,
}

impl RuleWriter {
    /// A writer over `iptables`.
    pub fn new(iptables: Box<dyn Iptables>) -> Self {
        Self {
            iptables,
            last: None,
            saved: None,
        }
    }

    /// Makes the kernel hold `desired`. Without `verify`, a `desired` equal
    /// to the last one written runs no command at all; with it (the
    /// periodic resync) the kernel's state is read and repaired if someone
    /// removed or added rules of ours. The first sync always reads, so
    /// stale rules of a crashed run (or of the other mode) are replaced.
    ///
    /// # Errors
    ///
    /// The command's error; the next sync retries (nothing is remembered
    /// as written).
    pub async fn sync(&mut self, desired: Ruleset, verify: bool) -> Result<Outcome, Error> {
        let changed = self.last.as_ref() != Some(&desired);
        if !changed && !verify {
            return Ok(Outcome::Unchanged);
        }
        let saved = self.iptables.save_nat().await?;
        let state = NatState::parse(&saved);
        self.saved = Some(saved);
        let Some(text) = rules::transaction(&desired, &state, changed) else {
            self.last = Some(desired);
            return Ok(Outcome::Verified);
        };
        tracing::debug!(bytes = text.len(), "iptables-restore");
        tracing::trace!(%text, "iptables-restore");
        self.last = None;
        self.iptables.restore(&text).await?;
        self.last = Some(desired);
        Ok(Outcome::Written)
    }

    /// The `iptables-save -c -t nat` output the last sync read, once.
    pub fn take_saved(&mut self) -> Option<String> {
        self.saved.take()
    }

    /// Removes every chain and jump of ours (both modes).
    ///
    /// # Errors
    ///
    /// The command's error.
    pub async fn cleanup(&mut self) -> Result<bool, Error> {
        self.last = None;
        cleanup(self.iptables.as_ref()).await
    }
}

/// Removes every chain and jump of ours (both modes); `Ok(false)` when
/// there was nothing to remove.
///
/// # Errors
///
/// The command's error.
pub async fn cleanup(iptables: &dyn Iptables) -> Result<bool, Error> {
    let state = NatState::parse(&iptables.save_nat().await?);
    match rules::cleanup(&state) {
        Some(text) => {
            iptables.restore(&text).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::{Arc, Mutex};

    /// Records restores; `save_nat` answers the state the last restore of a
    /// full ruleset would leave (good enough: jumps and chains).
    #[derive(Default, Clone)]
    struct Fake {
        calls: Arc<Mutex<Vec<String>>>,
        saved: Arc<Mutex<String>>,
    }

    #[async_trait::async_trait]
    impl Iptables for Fake {
        async fn save_nat(&self) -> Result<String, Error> {
            self.calls.lock().unwrap().push("save".into());
            Ok(self.saved.lock().unwrap().clone())
        }
        async fn restore(&self, text: &str) -> Result<(), Error> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("restore {} lines", text.lines().count()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn unchanged_rules_run_no_command() {
        let fake = Fake::default();
        let mut writer = RuleWriter::new(Box::new(fake.clone()));
        let desired = rules::userspace(&[], Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            writer.sync(desired.clone(), false).await.unwrap(),
            Outcome::Written
        );
        assert_eq!(
            writer.sync(desired.clone(), false).await.unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(*fake.calls.lock().unwrap(), ["save", "restore 6 lines"]);
        // The kernel now holds them: verifying reads and writes nothing.
        *fake.saved.lock().unwrap() = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n-A PREROUTING -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-CONTAINER\n-A OUTPUT -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-HOST\nCOMMIT\n".into();
        assert_eq!(
            writer.sync(desired.clone(), true).await.unwrap(),
            Outcome::Verified
        );
        // Someone flushed the nat table: verifying repairs it.
        *fake.saved.lock().unwrap() = "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n".into();
        assert_eq!(writer.sync(desired, true).await.unwrap(), Outcome::Written);
        assert_eq!(fake.calls.lock().unwrap().len(), 5);
    }
}
