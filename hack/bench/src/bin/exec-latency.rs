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
//!
//! Each CLI's own start is measured in the same loop (`kubectl version
//! --client`, `docker --version`: no request), so the report also shows
//! what each path costs past its CLI's start: kubectl's start is a fixed
//! cost of the client that no server can change, and the goal compares
//! whole runs.

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
    // Each CLI started and ended without a request: its own start.
    let cli_start = |program: &str, arg: &str| {
        let mut command = Command::new(program);
        command.args([arg]).stdin(Stdio::null()).kill_on_drop(true);
        command
    };
    let kubectl_start = || {
        let mut command = cli_start("kubectl", "version");
        command.arg("--client");
        command
    };
    let docker_start = || cli_start("docker", "--version");
    let load_before = load_average();
    // Warm-up: binaries in the page cache, connections made.
    for _ in 0..3 {
        timed(kubectl(), "kubectl exec").await?;
        timed(docker_exec(), "docker exec").await?;
    }
    let (mut k, mut d, mut ks, mut ds) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.count {
        k.push(timed(kubectl(), "kubectl exec").await?);
        d.push(timed(docker_exec(), "docker exec").await?);
        ks.push(timed(kubectl_start(), "kubectl version --client").await?);
        ds.push(timed(docker_start(), "docker --version").await?);
    }
    for v in [&mut k, &mut d, &mut ks, &mut ds] {
        v.sort();
    }
    let ms = |v: Duration| v.as_secs_f64() * 1000.0;
    let p = |v: &[Duration], q: f64| ms(percentile(v, q));
    let (k50, d50, ks50, ds50) = (p(&k, 50.0), p(&d, 50.0), p(&ks, 50.0), p(&ds, 50.0));
    Ok(format!(
        "exec round trips: {count} each, alternating, one at a time\n\
         command                   p50 ms   p99 ms\n\
         kubectl exec bench true  {k50:7.1}  {:7.1}\n\
         docker exec c true       {d50:7.1}  {:7.1}\n\
         ratio (kubectl/docker)   {:7.2}  {:7.2}   goal: p50 <= 1.5\n\
         each CLI's own start (no request), same loop:\n\
         kubectl version --client {ks50:7.1}  {:7.1}\n\
         docker --version         {ds50:7.1}  {:7.1}\n\
         past the CLI's start (p50 minus p50): kubectl exec {:.1} ms, docker exec {:.1} ms, \
         ratio {:.2}\n\
         load average before/after: {load_before} / {}\n",
        p(&k, 99.0),
        p(&d, 99.0),
        k50 / d50,
        p(&k, 99.0) / p(&d, 99.0),
        p(&ks, 99.0),
        p(&ds, 99.0),
        k50 - ks50,
        d50 - ds50,
        (k50 - ks50) / (d50 - ds50),
        load_average(),
        count = args.count,
    ))
}
