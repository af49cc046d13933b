//! `kubelet-startup`: pod startup latency on one kubelet next to `docker
//! run` of the same image on the same daemon, and the kubelet's memory
//! with the pods running. See `hack/bench/README.md` ("kubelet").
//!
//! One run: a private dockerd with the local images (the test harness's
//! `TestDocker`: its own bridge, `--iptables=false`, pulls sent to a closed
//! loopback proxy), etcd and an in-process apiserver (`TestCluster`), and
//! the release `kubelet` binary as a process (so that its memory is its
//! own). Pod starts and `docker run`s alternate, batch by batch, so load
//! from the rest of the machine weighs on both alike. A pod's startup is
//! from just before its `POST` to the watch event showing it `Running`;
//! a `docker run -d`'s is the CLI's whole run (it returns once the
//! container runs). Everything started is stopped and removed at the end,
//! on error, and on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::docker::{TestDocker, BUSYBOX_IMAGE, TEST_LABEL};
use mini_k8s_tests::interrupts::Interrupts;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest `--pods`.
const MAX_PODS: usize = 200;
/// Largest `--concurrency`.
const MAX_CONCURRENCY: usize = 50;
/// Largest `--pod-timeout`, seconds.
const MAX_POD_TIMEOUT: u64 = 600;
/// The node the kubelet registers.
const NODE: &str = "bench-node";
/// The label of the benchmark's pods.
const POD_LABEL: (&str, &str) = ("bench", "kubelet-startup");
/// Seconds the kubelet is watched idle with every pod running (memory, CPU):
/// more than one resync (10 s).
const IDLE_SECONDS: u64 = 15;

/// Pod startup latency vs `docker run`, and the kubelet's memory.
#[derive(Parser, Debug)]
#[command(name = "kubelet-startup")]
struct Args {
    /// Pods to start, and `docker run`s to compare with (at most 200).
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Pods (and `docker run`s) started at once; 1 measures latency alone.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds one pod (or one `docker run`) may take before the run fails.
    #[arg(long, default_value_t = 120)]
    pod_timeout: u64,
    /// The kubelet binary (default: `kubelet` next to this one).
    #[arg(long)]
    kubelet: Option<PathBuf>,
    /// Also print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MAX_PODS).contains(&args.pods),
        "--pods must be between 1 and {MAX_PODS}"
    );
    ensure!(
        (1..=MAX_CONCURRENCY).contains(&args.concurrency),
        "--concurrency must be between 1 and {MAX_CONCURRENCY}"
    );
    ensure!(
        (1..=MAX_POD_TIMEOUT).contains(&args.pod_timeout),
        "--pod-timeout must be between 1 and {MAX_POD_TIMEOUT} seconds"
    );
    let kubelet = match &args.kubelet {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("kubelet"),
    };
    ensure!(
        kubelet.is_file(),
        "no kubelet binary at {} (cargo build --release -p kubelet, or --kubelet)",
        kubelet.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    // The private dockerd dies with the thread that started it (a
    // parent-death signal): start it here, on the main thread, which lives
    // as long as the process.
    let docker = TestDocker::start()?.context("no Docker daemon could be started")?;
    eprintln!("dockerd {}", docker.host());
    let result = runtime.block_on(bench(&args, &kubelet, &docker));
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(docker);
    let report = result?;
    report.print(args.json);
    Ok(())
}

/// Starts the cluster and the kubelet, measures, and stops both whatever the outcome.
async fn bench(args: &Args, kubelet_bin: &Path, docker: &TestDocker) -> Result<Report> {
    let mut interrupts = Interrupts::catch()?;
    let cluster = TestCluster::start().await?;
    eprintln!("apiserver (in-process) {}", cluster.url());
    let root = TempDir::new()?;
    let mut kubelet = start_kubelet(kubelet_bin, cluster.url(), docker, root.path())?;
    let client = client(cluster.url()).await?;
    let outcome = tokio::select! {
        outcome = measure(args, &client, docker, &kubelet) => outcome,
        signal = interrupts.next() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    // Orderly stop: the pods (the kubelet removes their containers), then
    // the kubelet, then (on return) the apiserver and etcd; TestDocker's
    // drop removes the `docker run` containers and stops the daemon.
    let cleaned = remove_pods(&client, docker).await;
    stop(&mut kubelet).await;
    if let Err(e) = &cleaned {
        eprintln!("cleaning up: {e:#}");
    }
    let log = root.path().join("kubelet.log");
    if outcome.is_err() {
        eprintln!("kubelet log: {}", tail(&log, 20));
    }
    outcome
}

fn start_kubelet(bin: &Path, master: &str, docker: &TestDocker, root: &Path) -> Result<Child> {
    let log = std::fs::File::create(root.join("kubelet.log"))?;
    let child = Command::new(bin)
        .args(["--master", master, "--hostname-override", NODE])
        .args(["--node-ip", "127.0.0.1", "--port", "0"])
        .args(["--docker-endpoint", docker.host()])
        .arg("--root-dir")
        .arg(root.join("kubelet"))
        .arg("--container-label")
        .arg(format!("{TEST_LABEL}={}", docker.run_id()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    eprintln!("kubelet pid {}", child.id().unwrap_or_default());
    Ok(child)
}

/// SIGTERM, then SIGKILL after 20 s.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn client(url: &str) -> Result<kube::Client> {
    let config = kube::Config::new(url.parse().context("apiserver URL")?);
    Ok(kube::Client::try_from(config)?)
}

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {POD_LABEL.0: POD_LABEL.1}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    }))?)
}

/// When each benchmark pod was first seen Running (one watch of them all).
fn watch_running(client: &kube::Client) -> watch::Receiver<HashMap<String, Instant>> {
    let (tx, rx) = watch::channel(HashMap::new());
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let config = watcher::Config::default().labels(&format!("{}={}", POD_LABEL.0, POD_LABEL.1));
    tokio::spawn(async move {
        let mut pods = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        while let Some(pod) = pods.next().await {
            let Ok(pod) = pod else { continue };
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let Some(name) = pod.metadata.name else {
                continue;
            };
            if running {
                let now = Instant::now();
                tx.send_if_modified(|seen| {
                    if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(name) {
                        e.insert(now);
                        true
                    } else {
                        false
                    }
                });
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

async fn wait_node(client: &kube::Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes.get_opt(NODE).await.ok().flatten().is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the kubelet did not register a Ready node within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates pod `name` and waits until it is seen Running: the latency.
async fn start_pod(
    pods: &Api<Pod>,
    running: &watch::Receiver<HashMap<String, Instant>>,
    name: String,
    limit: Duration,
) -> Result<Duration> {
    let name = name.as_str();
    let mut running = running.clone();
    let started = Instant::now();
    pods.create(&PostParams::default(), &pod(name)?)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    let seen = tokio::time::timeout(limit, running.wait_for(|seen| seen.contains_key(name)))
        .await
        .with_context(|| format!("pod {name} not Running within {limit:?}"))?
        .context("the pod watch ended")?
        .get(name)
        .copied()
        .context("pod missing from the seen set")?;
    Ok(seen.saturating_duration_since(started))
}

/// `docker run -d` of the pods' image and command: the CLI's whole run.
async fn docker_run(docker: &TestDocker, name: String, limit: Duration) -> Result<Duration> {
    let name = name.as_str();
    let label = format!("{TEST_LABEL}={}", docker.run_id());
    let started = Instant::now();
    let output = tokio::time::timeout(
        limit,
        Command::new("docker")
            .args([
                "-H",
                docker.host(),
                "run",
                "-d",
                "--label",
                &label,
                "--name",
                name,
            ])
            .args([BUSYBOX_IMAGE, "sleep", "3600"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("docker run {name} took over {limit:?}"))??;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "docker run {name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(took)
}

/// (VmRSS, VmHWM) of `pid` in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) `pid` has used.
fn cpu_time(pid: u32) -> Result<Duration> {
    mini_k8s_bench::cpu_seconds(&pid.to_string())
        .map(Duration::from_secs_f64)
        .with_context(|| format!("cannot read /proc/{pid}/stat"))
}

async fn measure(
    args: &Args,
    client: &kube::Client,
    docker: &TestDocker,
    kubelet: &Child,
) -> Result<Report> {
    let pid = kubelet.id().context("the kubelet exited at once")?;
    wait_node(client).await?;
    let (idle_rss, _) = memory_kib(pid)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running = watch_running(client);
    let limit = Duration::from_secs(args.pod_timeout);
    // Warm-up (not counted): the first container on a fresh daemon pays
    // for setting up its bridge and caches.
    docker_run(docker, "mk8s-bench-warmup".into(), limit).await?;
    start_pod(&pods, &running, "warmup".into(), limit).await?;
    let mut docker_times = Vec::with_capacity(args.pods);
    let mut pod_times = Vec::with_capacity(args.pods);
    let started = Instant::now();
    let mut next = 0;
    while next < args.pods {
        let batch: Vec<usize> = (next..args.pods.min(next + args.concurrency)).collect();
        next += batch.len();
        let runs = batch
            .iter()
            .map(|i| docker_run(docker, format!("mk8s-bench-docker-{i}"), limit));
        for took in futures::future::join_all(runs).await {
            docker_times.push(took?);
        }
        let starts = batch
            .iter()
            .map(|i| start_pod(&pods, &running, format!("bench-{i}"), limit));
        for took in futures::future::join_all(starts).await {
            pod_times.push(took?);
        }
    }
    let wall = started.elapsed();
    // With every pod running (and the warm-up one): memory right away,
    // then over more than one resync, and the CPU that idling costs.
    let (rss_after_start, _) = memory_kib(pid)?;
    let cpu_before = cpu_time(pid)?;
    let mut rss_max = rss_after_start;
    for _ in 0..IDLE_SECONDS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(memory_kib(pid)?.0);
    }
    let idle_cpu = cpu_time(pid)? - cpu_before;
    let (_, hwm) = memory_kib(pid)?;
    let app_containers = docker
        .containers()?
        .iter()
        .filter(|c| c.running && c.container == "c")
        .count();
    ensure!(
        app_containers == args.pods + 1,
        "expected {} app containers, found {app_containers}",
        args.pods + 1
    );
    Ok(Report {
        pods: args.pods,
        concurrency: args.concurrency,
        docker: Stats::of(&docker_times),
        kubelet: Stats::of(&pod_times),
        wall,
        rss_idle_kib: idle_rss,
        rss_after_start_kib: rss_after_start,
        rss_max_kib: rss_max,
        hwm_kib: hwm,
        idle_cpu,
    })
}

/// Deletes the benchmark pods and waits (bounded) for their containers to go.
async fn remove_pods(client: &kube::Client, docker: &TestDocker) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let selector = ListParams::default().labels(&format!("{}={}", POD_LABEL.0, POD_LABEL.1));
    pods.delete_collection(&DeleteParams::default().grace_period(0), &selector)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = docker
            .containers()?
            .iter()
            .filter(|c| !c.pod.is_empty())
            .count();
        if left == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{left} pod containers still there after 180 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A directory of this run under the system's temporary directory,
/// removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("mk8s-bench-kubelet-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Latencies, in order of measurement.
struct Stats(Vec<Duration>);

impl Stats {
    fn of(times: &[Duration]) -> Self {
        let mut sorted = times.to_vec();
        sorted.sort();
        Self(sorted)
    }

    /// Nearest-rank percentile, milliseconds.
    fn ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        // Nearest rank: ceil(p/100 * n), 1-based; the cast is of a small positive number.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "n is at most 200"
        )]
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1].as_secs_f64() * 1000.0
    }
}

struct Report {
    pods: usize,
    concurrency: usize,
    docker: Stats,
    kubelet: Stats,
    wall: Duration,
    rss_idle_kib: u64,
    rss_after_start_kib: u64,
    rss_max_kib: u64,
    hwm_kib: u64,
    idle_cpu: Duration,
}

impl Report {
    fn print(&self, json: bool) {
        let ratio = self.kubelet.ms(99.0) / self.docker.ms(99.0).max(f64::MIN_POSITIVE);
        println!(
            "{} pods, {} at a time, alternating with as many `docker run`s ({:.1} s in all)",
            self.pods,
            self.concurrency,
            self.wall.as_secs_f64()
        );
        println!("                     p50 ms   p90 ms   p99 ms   max ms");
        for (name, s) in [
            ("docker run", &self.docker),
            ("pod create→Running", &self.kubelet),
        ] {
            println!(
                "{name:<19} {:>7.0}  {:>7.0}  {:>7.0}  {:>7.0}",
                s.ms(50.0),
                s.ms(90.0),
                s.ms(99.0),
                s.ms(100.0)
            );
        }
        println!("p99 ratio (pod / docker run): {ratio:.2} (goal ≤ 1.5)");
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "kubelet VmRSS: {:.1} MiB with no pod, {:.1} MiB with {} pods running, {:.1} MiB at most over {IDLE_SECONDS} s (VmHWM {:.1} MiB; goal < 30 MiB)",
            mib(self.rss_idle_kib),
            mib(self.rss_after_start_kib),
            self.pods + 1,
            mib(self.rss_max_kib),
            mib(self.hwm_kib)
        );
        println!(
            "kubelet CPU while idle with the pods: {} ms over {IDLE_SECONDS} s",
            self.idle_cpu.as_millis()
        );
        if json {
            let stats = |s: &Stats| json!({"p50_ms": s.ms(50.0), "p90_ms": s.ms(90.0), "p99_ms": s.ms(99.0), "max_ms": s.ms(100.0)});
            println!(
                "{}",
                json!({
                    "pods": self.pods, "concurrency": self.concurrency,
                    "docker_run": stats(&self.docker), "pod_start": stats(&self.kubelet),
                    "p99_ratio": ratio,
                    "rss_idle_kib": self.rss_idle_kib, "rss_after_start_kib": self.rss_after_start_kib,
                    "rss_max_kib": self.rss_max_kib, "hwm_kib": self.hwm_kib,
                    "idle_cpu_ms": self.idle_cpu.as_millis(),
                })
            );
        }
    }
}
