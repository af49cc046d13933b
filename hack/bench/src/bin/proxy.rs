//! kube-proxy benchmark: throughput and request/response latency through a
//! service portal against a direct connection to the same backend, in the
//! same run, for each proxy mode. Everything runs in network namespaces
//! this program makes (a node with a pod bridge, a backend pod and a client
//! pod; `mini_k8s_tests::netns::Topology`) and removes; traffic never leaves
//! them. Run through `hack/bench/proxy.sh` (needs root and a release build).
//!
//! Per mode and round: bulk transfer (client pod → backend, until `--bytes`
//! or `--seconds`, whichever comes first; the backend acknowledges the byte
//! count at EOF) and ping-pong (`--round-trips` exchanges of `--message`
//! bytes on one connection, each timed), first direct to the pod, then
//! through the portal. Results are medians over `--rounds`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use mini_k8s_bench::{cpu_seconds, load_average};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::netns::{Netns, Topology};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const SINK_PORT: u16 = 8080;
const ECHO_PORT: u16 = 8081;
const MAX_BYTES: u64 = 16 << 30;
const CHUNK: usize = 1 << 20;

/// Throughput and added latency of kube-proxy, both modes, against direct.
#[derive(Parser, Debug)]
#[command(name = "proxy-bench")]
struct Args {
    /// Modes to measure, comma-separated; `MODE@PATH` runs another
    /// kube-proxy binary in that mode (e.g. an older build, measured in the
    /// same run as this one).
    #[arg(long, value_delimiter = ',', default_value = "iptables,userspace")]
    modes: Vec<String>,
    /// Bytes per bulk transfer (at most 16 GiB).
    #[arg(long, default_value_t = 2 << 30)]
    bytes: u64,
    /// Seconds a bulk transfer may take at most (1..=60).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
    seconds: u64,
    /// Request/response exchanges per latency measurement (at most 200000).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    round_trips: u64,
    /// Bytes per request and per response.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    message: u64,
    /// Rounds per mode (medians are reported), at most 10.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    rounds: u64,
    /// The kube-proxy binary (default: next to this one).
    #[arg(long)]
    kube_proxy: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    mb_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU seconds per GB of the bulk transfer: this process (client and
    /// backend, with the kernel's TCP work done on their behalf), and
    /// kube-proxy.
    cpu_self: f64,
    cpu_proxy: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.bytes <= MAX_BYTES, "--bytes is at most {MAX_BYTES}");
    for given in &args.modes {
        let (mode, _) = split_mode(given);
        ensure!(
            mode == "iptables" || mode == "userspace",
            "unknown mode {mode:?} (iptables, userspace)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // On SIGTERM/SIGINT the measurement is dropped, which stops kube-proxy
    // and deletes the namespaces, etcd and its directory.
    runtime.block_on(async {
        tokio::select! {
            result = run(args) => result,
            signal = interrupted() => {
                signal?;
                bail!("interrupted")
            }
        }
    })
}

async fn interrupted() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    let kube_proxy = match &args.kube_proxy {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("kube-proxy"),
    };
    ensure!(
        kube_proxy.is_file(),
        "{} is missing: cargo build --release -p kube-proxy",
        kube_proxy.display()
    );
    let cluster = TestCluster::start().await?;
    let topology = Topology::new(2)?;
    let (backend_pod, client_pod) = (&topology.pods[0], &topology.pods[1]);
    let _backend = Backend::start(&backend_pod.netns).await?;
    let api: SocketAddr = cluster.url().trim_start_matches("http://").parse()?;
    let relay = topology.node.relay_loopback(api).await?;

    let (code, body) = cluster
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"metadata": {"name": "bench"}, "spec": {"selector": {"app": "bench"}, "ports": [
                {"name": "sink", "port": 80, "targetPort": SINK_PORT},
                {"name": "echo", "port": 81, "targetPort": ECHO_PORT}]}}),
        )
        .await?;
    ensure!(code == 201, "creating the service: {code} {body}");
    let portal: Ipv4Addr = body["spec"]["clusterIP"]
        .as_str()
        .context("no clusterIP")?
        .parse()?;
    let (code, body) = cluster
        .post(
            "/api/v1/namespaces/default/endpoints",
            &json!({"metadata": {"name": "bench"}, "subsets": [{
                "addresses": [{"ip": backend_pod.ip.to_string()}],
                "ports": [{"name": "sink", "port": SINK_PORT}, {"name": "echo", "port": ECHO_PORT}]}]}),
        )
        .await?;
    ensure!(code == 201, "creating the endpoints: {code} {body}");

    let direct = (
        SocketAddr::from((backend_pod.ip, SINK_PORT)),
        SocketAddr::from((backend_pod.ip, ECHO_PORT)),
    );
    let proxied = (
        SocketAddr::from((portal, 80)),
        SocketAddr::from((portal, 81)),
    );
    println!(
        "kube-proxy benchmark: bulk {} MiB or {} s, {} round trips of {} B, {} rounds (medians); load average {}",
        args.bytes >> 20,
        args.seconds,
        args.round_trips,
        args.message,
        args.rounds,
        load_average()
    );
    println!(
        "{:<10} {:>12} {:>12} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "mode",
        "direct MB/s",
        "proxy MB/s",
        "ratio",
        "dir p50",
        "prx p50",
        "dir p99",
        "prx p99",
        "added p50"
    );
    for given in &args.modes {
        let (mode, binary) = split_mode(given);
        let binary = binary.map_or_else(|| kube_proxy.clone(), PathBuf::from);
        ensure!(binary.is_file(), "{} is missing", binary.display());
        let mut proxy = tokio::process::Command::from(topology.node.command(&binary))
            .args([
                "--master",
                &format!("http://127.0.0.1:{}", relay.port),
                "--proxy-mode",
                mode,
                "--hostname-override",
                "bench-node",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting kube-proxy")?;
        let pid = proxy.id().context("kube-proxy exited early")?;
        let result = measure_mode(&args, &client_pod.netns, direct, proxied, pid).await;
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(20), proxy.wait()).await;
        let (d, p) = result?;
        println!(
            "{:<10} {:>12.0} {:>12.0} {:>7.3} {:>7.1}µs {:>7.1}µs {:>7.1}µs {:>7.1}µs {:>8.1}µs",
            given,
            d.mb_per_s,
            p.mb_per_s,
            p.mb_per_s / d.mb_per_s,
            d.p50_us,
            p.p50_us,
            d.p99_us,
            p.p99_us,
            p.p50_us - d.p50_us
        );
        println!(
            "{:<10} CPU s per GB: direct {:.2} (client+backend), proxied {:.2} (client+backend) + {:.2} (kube-proxy)",
            "", d.cpu_self, p.cpu_self, p.cpu_proxy
        );
    }
    println!("load average at the end: {}", load_average());
    drop(relay);
    drop(topology);
    drop(cluster);
    Ok(())
}

/// `MODE` or `MODE@PATH`: the mode and the binary, if another one.
fn split_mode(given: &str) -> (&str, Option<&str>) {
    match given.split_once('@') {
        Some((mode, path)) => (mode, Some(path)),
        None => (given, None),
    }
}

/// Medians over the rounds of (direct, proxied).
async fn measure_mode(
    args: &Args,
    client: &Netns,
    direct: (SocketAddr, SocketAddr),
    proxied: (SocketAddr, SocketAddr),
    proxy_pid: u32,
) -> Result<(Sample, Sample)> {
    wait_reachable(client, proxied.1).await?;
    let mut directs = Vec::new();
    let mut proxies = Vec::new();
    let proxy_pid = proxy_pid.to_string();
    for _ in 0..args.rounds {
        for (target, out) in [(direct, &mut directs), (proxied, &mut proxies)] {
            let before = (
                cpu_seconds("self").unwrap_or(0.0),
                cpu_seconds(&proxy_pid).unwrap_or(0.0),
            );
            let (mb_per_s, bytes) = bulk(
                client,
                target.0,
                args.bytes,
                Duration::from_secs(args.seconds),
            )
            .await?;
            let after = (
                cpu_seconds("self").unwrap_or(0.0),
                cpu_seconds(&proxy_pid).unwrap_or(0.0),
            );
            #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
            let gb = bytes as f64 / 1e9;
            let (p50_us, p99_us) =
                ping_pong(client, target.1, args.round_trips, args.message).await?;
            out.push(Sample {
                mb_per_s,
                p50_us,
                p99_us,
                cpu_self: (after.0 - before.0) / gb,
                cpu_proxy: (after.1 - before.1) / gb,
            });
        }
    }
    Ok((median(&directs), median(&proxies)))
}

fn median(samples: &[Sample]) -> Sample {
    let pick = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Sample {
        mb_per_s: pick(|s| s.mb_per_s),
        p50_us: pick(|s| s.p50_us),
        p99_us: pick(|s| s.p99_us),
        cpu_self: pick(|s| s.cpu_self),
        cpu_proxy: pick(|s| s.cpu_proxy),
    }
}

async fn wait_reachable(client: &Netns, to: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = client.tcp_connect(to).await {
            let mut buf = [0u8; 1];
            if stream.write_all(b"x").await.is_ok()
                && tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf))
                    .await
                    .is_ok_and(|r| r.is_ok())
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{to} not reachable through the proxy within 60s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends until `bytes` or `limit`; MB/s (10^6) of what the backend
/// acknowledged having received, and the bytes.
async fn bulk(client: &Netns, to: SocketAddr, bytes: u64, limit: Duration) -> Result<(f64, u64)> {
    let mut stream = client.tcp_connect(to).await?;
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes && start.elapsed() < limit {
        let n = usize::try_from((bytes - sent).min(CHUNK as u64)).unwrap_or(CHUNK);
        stream.write_all(&chunk[..n]).await?;
        sent += n as u64;
    }
    stream.shutdown().await?;
    let received = tokio::time::timeout(Duration::from_secs(30), stream.read_u64())
        .await
        .context("backend did not acknowledge")??;
    let elapsed = start.elapsed().as_secs_f64();
    ensure!(received == sent, "backend got {received} of {sent} bytes");
    #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    Ok((received as f64 / elapsed / 1e6, received))
}

/// p50 and p99 round-trip time in µs over `count` exchanges.
async fn ping_pong(client: &Netns, to: SocketAddr, count: u64, message: u64) -> Result<(f64, f64)> {
    let mut stream = client.tcp_connect(to).await?;
    stream.set_nodelay(true)?;
    let size = usize::try_from(message)?;
    let request = vec![0x42u8; size];
    let mut reply = vec![0u8; size];
    let mut times = Vec::with_capacity(usize::try_from(count)?);
    for _ in 0..count {
        let start = Instant::now();
        stream.write_all(&request).await?;
        stream.read_exact(&mut reply).await?;
        times.push(start.elapsed());
    }
    times.sort_unstable();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a non-empty vector"
        )]
        let i = ((times.len() as f64 * q) as usize).min(times.len() - 1);
        times[i].as_secs_f64() * 1e6
    };
    Ok((at(0.50), at(0.99)))
}

/// The backend pod's two servers: a sink that counts what it receives and
/// answers the count at EOF, and an echo server.
struct Backend {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Backend {
    async fn start(pod: &Netns) -> Result<Self> {
        let sink = pod
            .tcp_listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, SINK_PORT)))
            .await?;
        let echo = pod
            .tcp_listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, ECHO_PORT)))
            .await?;
        let sink_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = sink.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; CHUNK];
                    let mut total = 0u64;
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => total += n as u64,
                            Err(_) => return,
                        }
                    }
                    let _ = stream.write_u64(total).await;
                });
            }
        });
        let echo_task = tokio::spawn(async move {
            while let Ok((stream, _)) = echo.accept().await {
                tokio::spawn(echo_connection(stream));
            }
        });
        Ok(Self {
            tasks: vec![sink_task, echo_task],
        })
    }
}

async fn echo_connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 65_536];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
