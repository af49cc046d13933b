//! SIGINT and SIGTERM for long runs (benchmarks): caught from the start, so
//! that they end the run through its orderly stop (components, then etcd)
//! instead of killing it and leaving processes behind.

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The two signals, caught.
pub struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    /// Catches SIGINT and SIGTERM from now on.
    ///
    /// # Errors
    ///
    /// When a signal handler cannot be installed.
    pub fn catch() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
        })
    }

    /// The name of the next signal received.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
