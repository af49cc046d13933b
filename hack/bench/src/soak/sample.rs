//! Every few seconds: etcd's revision and DB size (its Status RPC) and each
//! process's RSS and open file descriptors (from `/proc`).

use anyhow::{Context, Result};

use super::verdict::Sample;

/// A process sampled: its name in the CSV and its PID.
#[derive(Clone, Debug)]
pub struct Process {
    pub name: &'static str,
    pub pid: u32,
}

/// VmRSS (KiB) and the count of open fds of `pid`.
pub fn process(pid: u32) -> Result<(u64, u64)> {
    let rss = crate::cluster::rss_kib(&pid.to_string())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?
        .count() as u64;
    Ok((rss, fds))
}

pub async fn take(
    etcd: &mut etcd_client::Client,
    processes: &[Process],
    elapsed_s: f64,
) -> Result<Sample> {
    let status = etcd.status().await.context("etcd status")?;
    let revision = status
        .header()
        .context("etcd status without header")?
        .revision();
    let processes = processes
        .iter()
        .map(|p| process(p.pid).with_context(|| format!("sampling {}", p.name)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Sample {
        elapsed_s,
        revision,
        db_size: status.db_size(),
        db_in_use: status.raft_used_db_size(),
        processes,
    })
}
