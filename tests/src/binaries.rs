//! The workspace's binaries, for tests that run them as real processes.
//!
//! `hack/test.sh` builds them (`cargo build --workspace --bins`) before the
//! tests run; a test run without that fails with a message saying so.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The path of binary `name` in the target directory the tests were built
/// into (`target/debug/apiserver`).
pub fn path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/debug/deps/integration-HASH → target/debug
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable has no target directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the binaries first (cargo build --workspace --bins, as hack/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}
