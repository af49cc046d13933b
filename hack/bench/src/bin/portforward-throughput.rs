//! `portforward-throughput`: bytes per second of one large download through
//! `kubectl port-forward` (the apiserver's relay and the kubelet's SPDY,
//! tunneled in a WebSocket as kubectl 1.32 does by default, and its plain
//! SPDY fallback) next to the same download straight from the pod's IP, in
//! one run. See `hack/bench/README.md` ("port-forward").
//!
//! One run: the test harness's `TestNode` (a private dockerd, etcd, an
//! in-process apiserver and kubelet); one busybox pod whose `httpd` serves
//! a file of `--mib` MiB. Each round fetches it once per
//! path, the paths alternating, so load from the rest of the machine weighs
//! on all alike; a fetch is timed from connect to the last byte. The median
//! of the rounds is reported per path, and the ratio to the direct one.
//! Everything is stopped and removed at the end.
//!
//! Where the CPU goes is reported too, per GiB fetched: this process's
//! (the in-process apiserver and kubelet, and the fetching client, which
//! the direct path has alone) and the kubectl serving the path, from
//! `/proc/PID/stat` around each fetch; and the cores they kept busy. On a
//! machine of two cores that says whether a path is bound by CPU.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use mini_k8s_bench::cpu_seconds;
use mini_k8s_bench::streaming::{load_average, median, report, run_busybox, start_node};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Largest `--mib` and `--rounds`.
const MAX_MIB: u64 = 1024;
const MAX_ROUNDS: usize = 20;

/// Download throughput through `kubectl port-forward` vs direct.
#[derive(Parser, Debug)]
#[command(name = "portforward-throughput")]
struct Args {
    /// Size of the file fetched, MiB (at most 1024).
    #[arg(long, default_value_t = 64)]
    mib: u64,
    /// Fetches per path (at most 20); the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Also write the result to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MAX_MIB).contains(&args.mib),
        "--mib must be 1 to {MAX_MIB}"
    );
    ensure!(
        (1..=MAX_ROUNDS).contains(&args.rounds),
        "--rounds must be 1 to {MAX_ROUNDS}"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let node = start_node("mk8s-bench-portforward-").await?;
    let text = measure(&args, &node).await?;
    drop(node);
    report(&text, args.out.as_deref())
}

/// `kubectl port-forward pod/web :80`, and the local port it listens on.
async fn forward(kubeconfig: &std::path::Path, plain_spdy: bool) -> Result<(Child, u16)> {
    let mut child = Command::new("kubectl")
        .args(["port-forward", "pod/web", ":80"])
        .env("KUBECONFIG", kubeconfig)
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if plain_spdy { "false" } else { "true" },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting kubectl port-forward")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let port = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("kubectl printed no `Forwarding from` within 30 s")??
            .context("kubectl port-forward ended")?;
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            break rest
                .split_once(' ')
                .map_or(rest, |(port, _)| port)
                .parse::<u16>()?;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, port))
}

/// Fetches `/blob` from `to`; the bytes per second, connect to last byte.
async fn fetch(to: (&str, u16), expect: u64) -> Result<f64> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(to).await?;
    stream.write_all(b"GET /blob HTTP/1.0\r\n\r\n").await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let limit = Duration::from_secs(300);
    loop {
        let n = tokio::time::timeout(limit, stream.read(&mut buf))
            .await
            .context("a fetch stalled")??;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let took = started.elapsed().as_secs_f64();
    ensure!(
        total >= expect,
        "got {total} bytes from {to:?}, expected at least {expect}"
    );
    #[allow(clippy::cast_precision_loss, reason = "a byte count under 2^53")]
    Ok(total as f64 / took)
}

async fn measure(args: &Args, node: &mini_k8s_tests::node::TestNode) -> Result<String> {
    let kubeconfig = &node.kubeconfig;
    let bytes = args.mib * 1024 * 1024;
    let script = format!(
        "mkdir -p /www && head -c {bytes} /dev/zero > /www/blob && exec httpd -f -p 80 -h /www"
    );
    let ip = run_busybox(node, "web", &script)
        .await?
        .pod_ip
        .context("pod web has no IP")?;
    // httpd is up once the direct fetch succeeds (the file is written first).
    let deadline = Instant::now() + Duration::from_secs(60);
    while fetch((&ip, 80), bytes).await.is_err() {
        ensure!(
            Instant::now() < deadline,
            "httpd did not answer within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (tunnel_child, tunnel) = forward(kubeconfig, false).await?;
    let (plain_child, plain) = forward(kubeconfig, true).await?;
    let pid_of = |child: &Child| child.id().map(|p| p.to_string());
    let (tunnel_pid, plain_pid) = (pid_of(&tunnel_child), pid_of(&plain_child));
    let load_before = load_average();
    // Warm-up of each path.
    fetch(("127.0.0.1", tunnel), bytes).await?;
    fetch(("127.0.0.1", plain), bytes).await?;
    let mut direct = Path::default();
    let mut tunneled = Path::default();
    let mut spdy = Path::default();
    for _ in 0..args.rounds {
        direct.fetch((&ip, 80), bytes, None).await?;
        tunneled
            .fetch(("127.0.0.1", tunnel), bytes, tunnel_pid.as_deref())
            .await?;
        spdy.fetch(("127.0.0.1", plain), bytes, plain_pid.as_deref())
            .await?;
    }
    drop((tunnel_child, plain_child));
    let mibs = |v: f64| v / (1024.0 * 1024.0);
    let (direct_rate, tunneled_rate, spdy_rate) = (
        median(direct.rates.clone()),
        median(tunneled.rates.clone()),
        median(spdy.rates.clone()),
    );
    Ok(format!(
        "port-forward throughput: {mib} MiB over HTTP/1.0 from busybox httpd, {rounds} rounds \
         alternating, median\n\
         path                                          MiB/s   ratio\n\
         direct to the pod IP                        {:7.1}    1.00\n\
         kubectl port-forward (SPDY in a WebSocket)  {:7.1}  {:6.2}   goal: >= 0.5\n\
         kubectl port-forward (plain SPDY)           {:7.1}  {:6.2}\n\
         CPU seconds per GiB fetched, all rounds   this process  kubectl  cores busy\n\
         direct to the pod IP                      {}\n\
         kubectl port-forward (SPDY in a WebSocket){}\n\
         kubectl port-forward (plain SPDY)         {}\n\
         (this process: the apiserver and kubelet, and the client fetching every path)\n\
         load average before/after: {load_before} / {}\n",
        mibs(direct_rate),
        mibs(tunneled_rate),
        tunneled_rate / direct_rate,
        mibs(spdy_rate),
        spdy_rate / direct_rate,
        direct.cpu_line(),
        tunneled.cpu_line(),
        spdy.cpu_line(),
        load_average(),
        mib = args.mib,
        rounds = args.rounds,
    ))
}

/// One path's fetches: their rates, and the CPU spent on them.
#[derive(Default)]
struct Path {
    rates: Vec<f64>,
    bytes: f64,
    seconds: f64,
    own_cpu: f64,
    kubectl_cpu: f64,
}

impl Path {
    /// Fetches once through this path, noting this process's CPU and that
    /// of `kubectl` (its PID) around the fetch.
    async fn fetch(&mut self, to: (&str, u16), expect: u64, kubectl: Option<&str>) -> Result<()> {
        let cpu = || {
            (
                cpu_seconds("self").unwrap_or(0.0),
                kubectl.and_then(cpu_seconds).unwrap_or(0.0),
            )
        };
        let before = cpu();
        let started = Instant::now();
        let rate = fetch(to, expect).await?;
        let seconds = started.elapsed().as_secs_f64();
        let after = cpu();
        self.rates.push(rate);
        self.bytes += rate * seconds;
        self.seconds += seconds;
        self.own_cpu += after.0 - before.0;
        self.kubectl_cpu += after.1 - before.1;
        Ok(())
    }

    /// `own  kubectl  cores` as the report prints them.
    fn cpu_line(&self) -> String {
        let gib = self.bytes / f64::from(1u32 << 30);
        format!(
            "{:12.2}  {:7.2}  {:10.2}",
            self.own_cpu / gib,
            self.kubectl_cpu / gib,
            (self.own_cpu + self.kubectl_cpu) / self.seconds
        )
    }
}
