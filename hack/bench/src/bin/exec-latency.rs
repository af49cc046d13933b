//! `exec-latency`: the round trip of `kubectl exec p -- true` (through the
//! apiserver's `pods/exec` relay and the kubelet's WebSocket exec) next to
//! `docker exec c true` on the same container, in one run. See
//! `hack/bench/README.md` ("exec").
//!
//! One run: the test harness's `TestNode` (a private dockerd, etcd, an
//! in-process apiserver and kubelet); one busybox pod. The two commands alternate, one at a
//! time, so load from the rest of the machine weighs on both alike; each
//! is timed as the CLI's whole run (process start to exit), both being
//! CLIs of the same kind (Go binaries). Everything is stopped and removed
//! at the end.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use mini_k8s_bench::streaming::{load_average, percentile, report, run_busybox, start_node};
use tokio::process::Command;
use tokio::time::Instant;

/// Largest `--count`.
const MAX_COUNT: usize = 500;

/// `kubectl exec` vs `docker exec` round trips.
#[derive(Parser, Debug)]
#[command(name = "exec-latency")]
struct Args {
    /// Round trips of each (at most 500).
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// Also write the result to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MAX_COUNT).contains(&args.count),
        "--count must be between 1 and {MAX_COUNT}"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn timed(mut command: Command, what: &str) -> Result<Duration> {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .with_context(|| format!("{what} took over 60 s"))??;
    let took = started.elapsed();
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

async fn run(args: Args) -> Result<()> {
    let node = start_node("mk8s-bench-exec-").await?;
    let text = measure(&args, &node).await?;
    drop(node);
    report(&text, args.out.as_deref())
}

async fn measure(args: &Args, node: &mini_k8s_tests::node::TestNode) -> Result<String> {
    let status = run_busybox(node, "bench", "exec sleep 3600").await?;
    let container = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| c.container_id)
        .context("the pod reports no container id")?
        .trim_start_matches("docker://")
        .to_string();
    let (kubeconfig, docker) = (&node.kubeconfig, &node.docker);
    let kubectl = || {
        let mut command = Command::new("kubectl");
        command
            .args(["exec", "bench", "--", "true"])
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };
    let docker_exec = || {
        let mut command = Command::new("docker");
        command
            .args(["-H", docker.host(), "exec", &container, "true"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };
    let load_before = load_average();
    // Warm-up: binaries in the page cache, connections made.
    for _ in 0..3 {
        timed(kubectl(), "kubectl exec").await?;
        timed(docker_exec(), "docker exec").await?;
    }
    let (mut k, mut d) = (Vec::new(), Vec::new());
    for _ in 0..args.count {
        k.push(timed(kubectl(), "kubectl exec").await?);
        d.push(timed(docker_exec(), "docker exec").await?);
    }
    k.sort();
    d.sort();
    let ms = |v: Duration| v.as_secs_f64() * 1000.0;
    let (k50, k99, d50, d99) = (
        percentile(&k, 50.0),
        percentile(&k, 99.0),
        percentile(&d, 50.0),
        percentile(&d, 99.0),
    );
    Ok(format!(
        "exec round trips: {count} each, alternating, one at a time\n\
         command                   p50 ms   p99 ms\n\
         kubectl exec bench true  {:7.1}  {:7.1}\n\
         docker exec c true       {:7.1}  {:7.1}\n\
         ratio (kubectl/docker)   {:7.2}  {:7.2}   goal: p50 <= 1.5\n\
         load average before/after: {load_before} / {}\n",
        ms(k50),
        ms(k99),
        ms(d50),
        ms(d99),
        ms(k50) / ms(d50),
        ms(k99) / ms(d99),
        load_average(),
        count = args.count,
    ))
}
