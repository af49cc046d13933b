//! What the streaming benchmarks (`exec-latency`, `portforward-throughput`)
//! share: a node on a private dockerd (the test harness's
//! [`TestNode`]), a busybox pod run on it, the order statistics they
//! report, and the result written out.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::PodStatus;
use mini_k8s_tests::node::{busybox, TestNode};
use serde_json::json;

/// Starts the node with the kubelet's default periods (the tests' short
/// resync would add load to what is measured).
///
/// # Errors
///
/// No dockerd could be started (it needs root), or etcd, the apiserver or
/// the kubelet could not.
pub async fn start_node(prefix: &str) -> Result<TestNode> {
    TestNode::start_with(prefix, |_| {})
        .await?
        .context("no dockerd could be started (needs root)")
}

/// Runs pod `name` (one busybox container `c` running `sh -c script`) on
/// the node and waits until it runs; its status then.
///
/// # Errors
///
/// The apiserver refuses it, or it does not run within a minute.
pub async fn run_busybox(node: &TestNode, name: &str, script: &str) -> Result<PodStatus> {
    node.run_pod(json!({"metadata": {"name": name},
                        "spec": {"containers": [busybox("c", script)]}}))
        .await?;
    node.pods()
        .get(name)
        .await?
        .status
        .with_context(|| format!("pod {name} has no status"))
}

/// Nearest-rank percentile `p` (0 to 100) of `sorted`, which is not empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank among a few hundred values"
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values`, which is not empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub use crate::load_average;

/// Prints `text`, and writes it to `out` when given.
///
/// # Errors
///
/// `out` cannot be written.
pub fn report(text: &str, out: Option<&Path>) -> Result<()> {
    print!("{text}");
    if let Some(out) = out {
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics_by_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50.0), ms(50));
        assert_eq!(percentile(&sorted, 99.0), ms(99));
        assert_eq!(percentile(&[ms(7)], 99.0), ms(7));
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
    }
}
