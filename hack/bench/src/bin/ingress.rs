//! ingress-proxy benchmark: HTTP requests per second through the
//! `ingress-proxy` binary against the same requests sent straight to the
//! backend pod, in the same run, by the same client.
//!
//! Everything runs in network namespaces the benchmark makes and deletes
//! (`mini_k8s_tests::netns::Topology`: a node with a pod bridge, a backend
//! pod, a machine outside the node) plus its own etcd and in-process
//! apiserver on loopback. The proxy runs in the node namespace on the
//! node's address, port 80; the client runs its connections from the
//! outside machine, so both paths cross the node. Run through
//! `hack/bench/ingress.sh`.
//!
//! The backend is a minimal HTTP/1.1 keep-alive server answering a fixed
//! small body; the client is `--connections` keep-alive connections, each
//! sending one GET at a time (closed loop) until `--requests` are done.
//! Rounds alternate direct and proxied; rates are medians over
//! `--rounds`; `ratio` = proxied ÷ direct.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::netns::{Netns, Topology};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// Requests per second through ingress-proxy against straight to the pod.
#[derive(Parser, Debug)]
#[command(name = "ingress-bench")]
struct Args {
    /// Requests per measurement (at most 1,000,000).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    requests: u64,
    /// Concurrent keep-alive connections (at most 256).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    connections: u64,
    /// Rounds (medians are reported), at most 10.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    rounds: u64,
    /// Bytes of each response body (at most 1 MiB).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    body_bytes: u64,
    /// Seconds one measurement may take before the run fails.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=600))]
    max_seconds: u64,
    /// The ingress-proxy binary (default: next to this one).
    #[arg(long)]
    ingress_proxy: Option<PathBuf>,
    /// Also print, for each measurement, the CPU time per request of the
    /// proxy, of this process (client and backend) and of the whole
    /// machine (from /proc; reading it does not change the measurement).
    #[arg(long)]
    cpu: bool,
}

/// CPU time used so far.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    /// utime + stime of the proxy process (all its threads), seconds.
    proxy: f64,
    /// utime + stime of this process, seconds: the client and the backend.
    bench: f64,
    /// The machine's busy ticks (user, nice, system, irq, softirq, steal).
    busy: u64,
    /// The machine's idle ticks (idle, iowait).
    idle: u64,
    /// The machine's softirq ticks (part of `busy`): the network stack's
    /// receive work, charged to no process.
    softirq: u64,
}

/// `/proc/stat`'s unit, USER_HZ (as `mini_k8s_bench::cpu_seconds` assumes).
const TICKS_PER_SECOND: f64 = 100.0;

impl Cpu {
    fn now(proxy_pid: u32) -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().context("empty /proc/stat")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let at = |i: usize| ticks.get(i).copied().unwrap_or_default();
        Ok(Self {
            proxy: mini_k8s_bench::cpu_seconds(&proxy_pid.to_string())
                .context("ingress-proxy's /proc/PID/stat")?,
            bench: mini_k8s_bench::cpu_seconds("self").context("/proc/self/stat")?,
            // user nice system idle iowait irq softirq steal
            busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
            idle: at(3) + at(4),
            softirq: at(6),
        })
    }

    /// "proxy X µs, client+backend Y µs, machine busy Z µs (softirq S µs)
    /// per request, W% idle" between `self` and `later`.
    fn per_request(self, later: Self, requests: u64) -> String {
        let us = |seconds: f64| seconds * 1e6 / requests as f64;
        let ticks = |later: u64, earlier: u64| later.saturating_sub(earlier);
        let (busy, idle) = (ticks(later.busy, self.busy), ticks(later.idle, self.idle));
        let softirq = ticks(later.softirq, self.softirq);
        format!(
            "proxy {:.1} µs, client+backend {:.1} µs, machine busy {:.1} µs (softirq {:.1} µs) per request, {:.0}% idle",
            us(later.proxy - self.proxy),
            us(later.bench - self.bench),
            us(busy as f64 / TICKS_PER_SECOND),
            us(softirq as f64 / TICKS_PER_SECOND),
            100.0 * idle as f64 / (busy + idle).max(1) as f64
        )
    }
}

const BACKEND_PORT: u16 = 8080;
const PROXY_PORT: u16 = 80;

/// Serves `GET` with a fixed body, keep-alive, until the task is aborted.
fn backend(listener: tokio::net::TcpListener, body_bytes: usize) -> tokio::task::JoinHandle<()> {
    let response = Arc::new(
        [
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {body_bytes}\r\n\r\n")
                .into_bytes(),
            vec![b'x'; body_bytes],
        ]
        .concat(),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let response = response.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let mut line = String::new();
                loop {
                    // One request: lines up to the empty one (GETs have no body).
                    let mut blank = false;
                    while !blank {
                        line.clear();
                        match read.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => blank = line == "\r\n" || line == "\n",
                        }
                    }
                    if write.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// One keep-alive connection's GET and its answer: checks the status line
/// and reads exactly content-length bytes of body.
async fn get_once(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    request: &[u8],
    body: &mut Vec<u8>,
) -> Result<()> {
    write.write_all(request).await?;
    let mut line = String::new();
    read.read_line(&mut line).await?;
    ensure!(line.starts_with("HTTP/1.1 200"), "answer {line:?}");
    let mut length = 0usize;
    loop {
        line.clear();
        ensure!(read.read_line(&mut line).await? > 0, "connection closed");
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    body.resize(length, 0);
    read.read_exact(body).await?;
    Ok(())
}

/// Opens a TCP connection from inside `ns` (a fresh thread enters it).
async fn connect(ns: &Netns, to: SocketAddr) -> Result<tokio::net::TcpStream> {
    let stream = ns.tcp_connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `requests` GETs over `connections` keep-alive connections from `ns`
/// to `to` with Host `host`; returns requests per second.
async fn measure(ns: &Netns, to: SocketAddr, host: &str, args: &Args) -> Result<f64> {
    let remaining = Arc::new(AtomicU64::new(args.requests));
    let request = Arc::new(
        format!("GET / HTTP/1.1\r\nhost: {host}\r\nuser-agent: ingress-bench\r\n\r\n").into_bytes(),
    );
    let mut streams = Vec::new();
    for _ in 0..args.connections {
        streams.push(connect(ns, to).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for stream in streams {
        let remaining = remaining.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::with_capacity(64 * 1024, read);
            let mut body = Vec::new();
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                get_once(&mut read, &mut write, &request, &mut body).await?;
            }
            anyhow::Ok(())
        }));
    }
    let all = futures::future::try_join_all(tasks);
    let results = tokio::time::timeout(Duration::from_secs(args.max_seconds), all)
        .await
        .context("a measurement took longer than --max-seconds")??;
    for result in results {
        result?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(args.requests as f64 / seconds)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let binary = match &args.ingress_proxy {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("ingress-proxy"),
    };
    ensure!(binary.is_file(), "{} is missing", binary.display());

    let cluster = TestCluster::start().await?;
    let topology = Topology::new(1)?;
    let pod = &topology.pods[0];
    let api: SocketAddr = cluster
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("apiserver address")?;
    let relay = topology.node.relay_loopback(api).await?;
    let body_bytes = usize::try_from(args.body_bytes)?;
    let server = backend(
        pod.netns
            .tcp_listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, BACKEND_PORT)))
            .await?,
        body_bytes,
    );
    for (path, body) in [
        (
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": BACKEND_PORT}]}}),
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": pod.ip.to_string()}],
                "ports": [{"name": "http", "port": BACKEND_PORT}]}]}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "web.example",
                "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}}),
        ),
    ] {
        let (code, answer) = cluster.post(path, &body).await?;
        ensure!(code == 201, "POST {path}: {code} {answer}");
    }

    let node = SocketAddr::from((Topology::NODE_IP, PROXY_PORT));
    let mut proxy = tokio::process::Command::from(topology.node.command(&binary))
        .args([
            "--master",
            &format!("http://127.0.0.1:{}", relay.port),
            "--bind-address",
            &node.to_string(),
            "--healthz-bind-address",
            "127.0.0.1:10254",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting ingress-proxy")?;
    let direct = SocketAddr::from((pod.ip, BACKEND_PORT));
    // Ready when one request through it is answered by the backend.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tried = async {
            let stream = connect(&topology.client, node).await?;
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            get_once(
                &mut read,
                &mut write,
                b"GET / HTTP/1.1\r\nhost: web.example\r\n\r\n",
                &mut Vec::new(),
            )
            .await
        }
        .await;
        if tried.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("ingress-proxy never routed to the backend: {tried:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    println!(
        "ingress-proxy benchmark: {} requests per measurement, {} keep-alive connections, {} B bodies, {} rounds",
        args.requests, args.connections, args.body_bytes, args.rounds
    );
    // A warm-up of each path, not counted.
    let warm = Args {
        requests: args.requests.min(5_000),
        ..Args::parse()
    };
    measure(&topology.client, direct, "web.example", &warm).await?;
    measure(&topology.client, node, "web.example", &warm).await?;
    let (mut directs, mut proxied) = (Vec::new(), Vec::new());
    let proxy_pid = proxy.id().context("ingress-proxy exited")?;
    for round in 1..=args.rounds {
        let before = Cpu::now(proxy_pid)?;
        let d = measure(&topology.client, direct, "web.example", &args).await?;
        let between = Cpu::now(proxy_pid)?;
        let p = measure(&topology.client, node, "web.example", &args).await?;
        let after = Cpu::now(proxy_pid)?;
        println!(
            "round {round}: direct {d:.0} req/s, through ingress-proxy {p:.0} req/s, ratio {:.2}",
            p / d
        );
        if args.cpu {
            println!(
                "  cpu direct:  {}",
                before.per_request(between, args.requests)
            );
            println!(
                "  cpu proxied: {}",
                between.per_request(after, args.requests)
            );
        }
        directs.push(d);
        proxied.push(p);
    }
    let (d, p) = (median(directs), median(proxied));
    println!(
        "median: direct {d:.0} req/s, through ingress-proxy {p:.0} req/s, ratio {:.2} (goal >= 0.70)",
        p / d
    );
    let _ = proxy.start_kill();
    let _ = proxy.wait().await;
    server.abort();
    drop(relay);
    drop(topology);
    Ok(())
}
