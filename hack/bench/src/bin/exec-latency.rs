//! `exec-latency`: the round trip of `kubectl exec p -- true` (through the
//! apiserver's `pods/exec` relay and the kubelet's WebSocket exec) next to
//! `docker exec c true` on the same container, in one run. See
//! `hack/bench/README.md` ("exec").
//!
//! One run: a private dockerd (the test harness's `TestDocker`), etcd and
//! an in-process apiserver (`TestCluster`) and an in-process kubelet on
//! that dockerd; one busybox pod. The two commands alternate, one at a
//! time, so load from the rest of the machine weighs on both alike; each
//! is timed as the CLI's whole run (process start to exit), both being
//! CLIs of the same kind (Go binaries). Everything is stopped and removed
//! at the end.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::docker::{TestDocker, BUSYBOX_IMAGE, TEST_LABEL};
use serde_json::json;
use tokio::process::Command;
use tokio::time::Instant;

/// Largest `--count`.
const MAX_COUNT: usize = 500;
/// The node the kubelet registers.
const NODE: &str = "bench-node";

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

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank among at most 500 values"
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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
    let docker = TestDocker::start()?.context("no dockerd could be started (needs root)")?;
    let cluster = TestCluster::start().await?;
    let dir = tempfile::Builder::new()
        .prefix("mk8s-bench-exec-")
        .tempdir()?;
    let kubeconfig = mini_k8s_tests::kubeconfig::write(dir.path(), cluster.url(), None, None)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?,
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = kubelet::Config::new(NODE, "127.0.0.1");
    config.sync.root_dir = dir.path().join("kubelet");
    config
        .sync
        .extra_labels
        .insert(TEST_LABEL.into(), docker.run_id().into());
    config.node.kubelet_port = i32::from(listener.local_addr()?.port());
    let runtime = Arc::new(kubelet::docker::DockerRuntime::new(docker.host()));
    let (kubelet, services) = kubelet::Kubelet::new(client.clone(), runtime, config);
    let server = tokio::spawn(kubelet::server::serve(kubelet.clone(), listener));
    let task = tokio::spawn(kubelet.run(services));

    let result = measure(&args, &docker, &client, &kubeconfig).await;
    task.abort();
    server.abort();
    drop(cluster);
    drop(docker);
    let text = result?;
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

async fn measure(
    args: &Args,
    docker: &TestDocker,
    client: &kube::Client,
    kubeconfig: &std::path::Path,
) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": BUSYBOX_IMAGE,
                                 "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", "exec sleep 3600"]}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let container = loop {
        let running = pods
            .get("bench")
            .await?
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|cs| {
                cs.into_iter()
                    .find(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
            .and_then(|c| c.container_id);
        if let Some(id) = running {
            break id.trim_start_matches("docker://").to_string();
        }
        ensure!(
            Instant::now() < deadline,
            "the pod did not run within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
         ratio (kubectl/docker)   {:7.2}  {:7.2}   goal: p50 <= 1.5\n",
        ms(k50),
        ms(k99),
        ms(d50),
        ms(d99),
        ms(k50) / ms(d50),
        ms(k99) / ms(d99),
        count = args.count,
    ))
}
