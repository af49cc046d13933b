//! Benchmarks of mini-k8s components (not part of the tests).
//!
//! `apiserver-create`: pods created per second through the apiserver next to
//! etcd's own put rate for values of the same size, measured in the same run
//! against the same etcd. See `hack/bench/README.md`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use mini_k8s_tests::apiserver::TestApiServer;
use mini_k8s_tests::etcd::Etcd;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Largest `--pods` / `--etcd-ops` accepted.
const MAX_OPS: usize = 20_000;
/// Largest client count accepted.
const MAX_CLIENTS: usize = 64;
/// Largest `--rounds` accepted.
const MAX_ROUNDS: usize = 10;
/// Largest `--phase-timeout` accepted, seconds.
const MAX_PHASE_SECONDS: u64 = 600;
/// Pods created (one client) before measuring, to warm connections and to
/// read the stored size of a pod.
const WARMUP_PODS: usize = 20;
/// etcd puts before measuring.
const WARMUP_PUTS: usize = 20;
/// How long one HTTP request or etcd call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Prefix of the keys the raw etcd phases write (outside `/registry`).
const BENCH_PREFIX: &str = "/mk8s-bench";

#[derive(Parser, Debug)]
#[command(
    name = "mini-k8s-bench",
    about = "Benchmarks of mini-k8s components"
)]
enum Command {
    /// Pods created per second through `POST /api/v1/namespaces/default/pods`
    /// next to etcd's raw put and create-txn rates for values of the same size.
    ApiserverCreate(CreateArgs),
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Pods created per measurement (per client count and round), at most 20000.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    /// Concurrent clients, comma-separated; each count is measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,
    /// etcd puts (and txns) per measurement; defaults to `--pods`.
    #[arg(long)]
    etcd_ops: Option<usize>,
    /// Rounds: every measurement is repeated this many times (at most 10);
    /// the summary gives each round and the median.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Seconds one phase may run; workers stop taking new work after it and
    /// the rate is computed over what was done (and flagged).
    #[arg(long, default_value_t = 120)]
    phase_timeout: u64,
    /// Also print the results as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

/// What one phase measured.
#[derive(Clone, Debug, Default)]
struct Phase {
    ops: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
    timed_out: bool,
    /// etcd's own counters over the phase (gRPC calls by method, fsyncs).
    etcd: BTreeMap<String, f64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ops as f64 / seconds
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile of the latencies, in milliseconds.
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
    }

    /// A counter's increase over the phase, per successful op.
    fn per_op(&self, counter: &str) -> f64 {
        if self.ops == 0 {
            return 0.0;
        }
        self.etcd.get(counter).copied().unwrap_or(0.0) / self.ops as f64
    }
}

/// The three measurements at one client count.
#[derive(Clone, Debug)]
struct Row {
    round: usize,
    clients: usize,
    put: Phase,
    txn: Phase,
    create: Phase,
}

impl Row {
    fn ratio(&self) -> f64 {
        let put = self.put.rate();
        if put > 0.0 {
            self.create.rate() / put
        } else {
            0.0
        }
    }
}

fn main() -> Result<()> {
    let Command::ApiserverCreate(args) = Command::parse();
    validate(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let result = runtime.block_on(apiserver_create(&args));
    // Whatever happened, nothing started by the benchmark outlives it: the
    // apiserver and etcd were dropped inside `apiserver_create`.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

fn validate(args: &CreateArgs) -> Result<()> {
    ensure!(
        (1..=MAX_OPS).contains(&args.pods),
        "--pods must be between 1 and {MAX_OPS}"
    );
    if let Some(ops) = args.etcd_ops {
        ensure!(
            (1..=MAX_OPS).contains(&ops),
            "--etcd-ops must be between 1 and {MAX_OPS}"
        );
    }
    ensure!(!args.clients.is_empty(), "--clients needs at least one count");
    for &c in &args.clients {
        ensure!(
            (1..=MAX_CLIENTS).contains(&c),
            "client counts must be between 1 and {MAX_CLIENTS}"
        );
    }
    ensure!(
        (1..=MAX_ROUNDS).contains(&args.rounds),
        "--rounds must be between 1 and {MAX_ROUNDS}"
    );
    ensure!(
        (1..=MAX_PHASE_SECONDS).contains(&args.phase_timeout),
        "--phase-timeout must be between 1 and {MAX_PHASE_SECONDS} seconds"
    );
    Ok(())
}

async fn apiserver_create(args: &CreateArgs) -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    eprintln!(
        "etcd {} (pid {}, data in {})",
        etcd.client_url(),
        etcd.pid(),
        etcd.data_dir().display()
    );
    let apiserver =
        TestApiServer::start(apiserver::Config::with_etcd(etcd.endpoints())).await?;
    eprintln!("apiserver (in-process) {}", apiserver.url());
    let outcome = run(args, &etcd, apiserver.url()).await;
    // Stop order: the apiserver (draining its requests), then etcd.
    let stopped = apiserver.stop().await;
    drop(etcd);
    let rows = outcome?;
    stopped.context("stopping the apiserver")?;
    let _ = rows;
    Ok(())
}

async fn run(args: &CreateArgs, etcd: &Etcd, url: &str) -> Result<Vec<Row>> {
    let phase_limit = Duration::from_secs(args.phase_timeout);
    let etcd_ops = args.etcd_ops.unwrap_or(args.pods);
    let client = etcd.client().await?;
    let metrics_url = format!("{}/metrics", etcd.client_url());
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;

    // Warm-up: a few pods through the apiserver, then read one back from
    // etcd to learn what the apiserver really stores for such a pod.
    let warm = create_pods(url, "warmup", WARMUP_PODS, 1, phase_limit).await?;
    ensure!(
        warm.errors == 0,
        "warm-up creates failed: {}",
        warm.first_error.unwrap_or_default()
    );
    let stored_key = "/registry/pods/default/bench-warmup-000000";
    let stored = client
        .clone()
        .get(stored_key, None)
        .await
        .context("reading a created pod from etcd")?;
    let value = stored
        .kvs()
        .first()
        .with_context(|| format!("{stored_key} is not in etcd"))?
        .value()
        .to_vec();
    let value = Arc::new(value);
    eprintln!(
        "stored pod value: {} bytes (key {stored_key}); every etcd phase writes values of that size",
        value.len()
    );
    let warm = etcd_phase(&client, Op::Put, "warmup", &value, WARMUP_PUTS, 1, phase_limit).await;
    ensure!(
        warm.errors == 0,
        "warm-up puts failed: {}",
        warm.first_error.unwrap_or_default()
    );

    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        for &clients in &args.clients {
            let tag = format!("r{round}-c{clients}");
            let put = measured(&http, &metrics_url, || {
                etcd_phase(&client, Op::Put, &tag, &value, etcd_ops, clients, phase_limit)
            })
            .await?;
            let txn = measured(&http, &metrics_url, || {
                etcd_phase(&client, Op::Txn, &tag, &value, etcd_ops, clients, phase_limit)
            })
            .await?;
            let create = measured(&http, &metrics_url, || {
                create_pods(url, &tag, args.pods, clients, phase_limit)
            })
            .await?;
            let create = create?;
            let row = Row {
                round,
                clients,
                put,
                txn,
                create,
            };
            eprintln!(
                "round {round}, {clients} client(s): etcd put {:.0}/s, txn {:.0}/s, apiserver {:.0} pods/s (ratio {:.2})",
                row.put.rate(),
                row.txn.rate(),
                row.create.rate(),
                row.ratio()
            );
            rows.push(row);
        }
    }
    print_report(args, etcd_ops, value.len(), &rows);
    for row in &rows {
        for (name, phase) in [("etcd put", &row.put), ("etcd txn", &row.txn), ("create", &row.create)] {
            if phase.errors > 0 {
                bail!(
                    "round {}, {} client(s): {} errors in {name}, first: {}",
                    row.round,
                    row.clients,
                    phase.errors,
                    phase.first_error.clone().unwrap_or_default()
                );
            }
        }
    }
    Ok(rows)
}

/// Runs a phase and records how etcd's own counters moved over it.
async fn measured<F, Fut, T>(http: &reqwest::Client, metrics_url: &str, phase: F) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: WithEtcdCounters,
{
    let before = etcd_counters(http, metrics_url).await?;
    let mut result = phase().await;
    let after = etcd_counters(http, metrics_url).await?;
    let delta = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect();
    result.set_counters(delta);
    Ok(result)
}

trait WithEtcdCounters {
    fn set_counters(&mut self, counters: BTreeMap<String, f64>);
}

impl WithEtcdCounters for Phase {
    fn set_counters(&mut self, counters: BTreeMap<String, f64>) {
        self.etcd = counters;
    }
}

impl WithEtcdCounters for Result<Phase> {
    fn set_counters(&mut self, counters: BTreeMap<String, f64>) {
        if let Ok(phase) = self {
            phase.etcd = counters;
        }
    }
}

/// etcd's counters of interest from its `/metrics`: gRPC calls handled by
/// method (`Range`, `Txn`, `Put`, ...) and WAL fsyncs.
async fn etcd_counters(http: &reqwest::Client, url: &str) -> Result<BTreeMap<String, f64>> {
    let text = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("reading {url}"))?
        .text()
        .await?;
    let mut counters = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let key = if name.starts_with("grpc_server_handled_total{") {
            match label(name, "grpc_method") {
                Some(method) => format!("rpc:{method}"),
                None => continue,
            }
        } else if name == "etcd_disk_wal_fsync_duration_seconds_count" {
            "fsync".to_string()
        } else {
            continue;
        };
        *counters.entry(key).or_insert(0.0) += value;
    }
    Ok(counters)
}

/// The value of `name="..."` in a Prometheus series name.
fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &series[start..];
    Some(&rest[..rest.find('"')?])
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A plain put of a fresh key.
    Put,
    /// What the apiserver's create sends: `create_revision == 0` compare, put.
    Txn,
}

/// `count` etcd writes of fresh keys with `clients` concurrent workers over
/// one shared client (as the apiserver shares one).
async fn etcd_phase(
    client: &Client,
    op: Op,
    tag: &str,
    value: &Arc<Vec<u8>>,
    count: usize,
    clients: usize,
    limit: Duration,
) -> Phase {
    let kind = match op {
        Op::Put => "put",
        Op::Txn => "txn",
    };
    let prefix = Arc::new(format!("{BENCH_PREFIX}/{kind}/{tag}"));
    run_workers(count, clients, limit, |_| {
        let client = client.clone();
        let prefix = prefix.clone();
        let value = value.clone();
        move |i: usize| {
            let mut client = client.clone();
            let key = format!("{prefix}-{i:06}");
            let value = value.as_ref().clone();
            async move {
                let call = async {
                    match op {
                        Op::Put => client.put(key, value, None).await.map(|_| ()),
                        Op::Txn => {
                            let txn = Txn::new()
                                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                                .and_then([TxnOp::put(key, value, None)]);
                            let response = client.txn(txn).await?;
                            if response.succeeded() {
                                Ok(())
                            } else {
                                Err(etcd_client::Error::InvalidArgs("key existed".into()))
                            }
                        }
                    }
                };
                match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                }
            }
        }
    })
    .await
}

/// A pod like the ones users create: two containers, ports, env, limits,
/// labels. Stored (with the server's defaults, uid, timestamp and status)
/// it is about 1.5 KB.
fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": { "app": "bench", "tier": "backend", "track": "stable", "version": "v1.4.2" },
            "annotations": { "bench.mini-k8s.io/description": "a pod created by the apiserver create benchmark" },
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.local/bench/web:1.4.2",
                    "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/srv/www"],
                    "ports": [{ "name": "http", "containerPort": 8080 }],
                    "env": [
                        { "name": "MODE", "value": "benchmark" },
                        { "name": "LOG_LEVEL", "value": "info" },
                        { "name": "CACHE_DIR", "value": "/var/cache/web" },
                    ],
                    "resources": {
                        "limits": { "cpu": "250m", "memory": "128Mi" },
                        "requests": { "cpu": "100m", "memory": "64Mi" },
                    },
                    "volumeMounts": [{ "name": "cache", "mountPath": "/var/cache/web" }],
                },
                {
                    "name": "sidecar",
                    "image": "registry.local/bench/sidecar:0.9",
                    "command": ["/bin/sh", "-c", "while true; do sleep 3600; done"],
                    "resources": { "limits": { "cpu": "50m", "memory": "32Mi" } },
                },
            ],
            "volumes": [{ "name": "cache", "emptyDir": {} }],
        },
    })
}

/// `count` pods created through the apiserver by `clients` concurrent HTTP
/// clients, each with its own connection.
async fn create_pods(
    url: &str,
    tag: &str,
    count: usize,
    clients: usize,
    limit: Duration,
) -> Result<Phase> {
    let endpoint = Arc::new(format!("{url}/api/v1/namespaces/default/pods"));
    let mut https = Vec::with_capacity(clients);
    for _ in 0..clients {
        https.push(
            reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .pool_max_idle_per_host(1)
                .build()?,
        );
    }
    let tag = Arc::new(tag.to_string());
    Ok(run_workers(count, clients, limit, |worker| {
        let http = https[worker].clone();
        let endpoint = endpoint.clone();
        let tag = tag.clone();
        move |i: usize| {
            let body = serde_json::to_vec(&pod(&format!("bench-{tag}-{i:06}")));
            let request = http
                .post(endpoint.as_str())
                .header("content-type", "application/json");
            async move {
                let body = body.map_err(|e| e.to_string())?;
                let response = request.body(body).send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let text = response.bytes().await.map_err(|e| e.to_string())?;
                if status.as_u16() == 201 {
                    Ok(())
                } else {
                    Err(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&text[..text.len().min(300)])
                    ))
                }
            }
        }
    })
    .await)
}

/// Runs `count` operations on `clients` workers: each worker takes the next
/// index until all are taken or `limit` has passed since the start, and
/// times each operation. `make(worker)` gives the worker's operation.
async fn run_workers<M, F, Fut>(count: usize, clients: usize, limit: Duration, make: M) -> Phase
where
    M: Fn(usize) -> F,
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::result::Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = Vec::with_capacity(clients);
    for worker in 0..clients {
        let mut op = make(worker);
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut timed_out = false;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                if Instant::now() >= deadline {
                    timed_out = true;
                    break;
                }
                let began = Instant::now();
                match op(i).await {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error, timed_out)
        }));
    }
    let mut phase = Phase::default();
    for task in tasks {
        match task.await {
            Ok((latencies, errors, first_error, timed_out)) => {
                phase.latencies.extend(latencies);
                phase.errors += errors;
                if phase.first_error.is_none() {
                    phase.first_error = first_error;
                }
                phase.timed_out |= timed_out;
            }
            Err(e) => {
                phase.errors += 1;
                phase.first_error.get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    phase.elapsed = start.elapsed();
    phase.ops = phase.latencies.len();
    phase
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn print_report(args: &CreateArgs, etcd_ops: usize, size: usize, rows: &[Row]) {
    println!();
    println!(
        "apiserver-create: {} pods and {etcd_ops} etcd puts/txns per measurement, {} round(s), in-process apiserver, etcd {}",
        args.pods,
        args.rounds,
        "single member (harness)"
    );
    println!(
        "{:>5} {:>7} {:>12} {:>10} {:>15} {:>6} {:>8} {:>8} {:>10}",
        "round", "clients", "etcd puts/s", "etcd txn/s", "apiserver pods/s", "ratio", "p50 ms", "p99 ms", "value B"
    );
    for row in rows {
        let flag = if row.put.timed_out || row.txn.timed_out || row.create.timed_out {
            " (phase timed out: partial)"
        } else {
            ""
        };
        println!(
            "{:>5} {:>7} {:>12.0} {:>10.0} {:>15.0} {:>6.2} {:>8.2} {:>8.2} {:>10}{flag}",
            row.round,
            row.clients,
            row.put.rate(),
            row.txn.rate(),
            row.create.rate(),
            row.ratio(),
            row.create.percentile(50.0),
            row.create.percentile(99.0),
            size,
        );
    }
    if args.rounds > 1 {
        println!("median over rounds:");
        for &clients in &args.clients {
            let of = |f: &dyn Fn(&Row) -> f64| {
                median(rows.iter().filter(|r| r.clients == clients).map(f).collect())
            };
            println!(
                "{:>5} {:>7} {:>12.0} {:>10.0} {:>15.0} {:>6.2} {:>8.2} {:>8.2} {:>10}",
                "med",
                clients,
                of(&|r| r.put.rate()),
                of(&|r| r.txn.rate()),
                of(&|r| r.create.rate()),
                of(&|r| r.ratio()),
                of(&|r| r.create.percentile(50.0)),
                of(&|r| r.create.percentile(99.0)),
                size,
            );
        }
    }
    println!();
    println!("etcd per operation (from etcd's /metrics; RPCs also count the benchmark's own /metrics-free calls only):");
    println!(
        "{:>5} {:>7} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "round", "clients", "put p50", "put p99", "txn p50", "put fs", "txn fs", "pod fs", "pod Rng", "pod Txn", "pod Put"
    );
    for row in rows {
        println!(
            "{:>5} {:>7} {:>10.2} {:>10.2} {:>10.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            row.round,
            row.clients,
            row.put.percentile(50.0),
            row.put.percentile(99.0),
            row.txn.percentile(50.0),
            row.put.per_op("fsync"),
            row.txn.per_op("fsync"),
            row.create.per_op("fsync"),
            row.create.per_op("rpc:Range"),
            row.create.per_op("rpc:Txn"),
            row.create.per_op("rpc:Put"),
        );
    }
    println!("(p50/p99 in ms; fs = WAL fsyncs per operation; Rng/Txn/Put = etcd RPCs per created pod)");
    if args.json {
        let json_rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "round": r.round,
                    "clients": r.clients,
                    "etcd_puts_per_s": r.put.rate(),
                    "etcd_txn_per_s": r.txn.rate(),
                    "apiserver_pods_per_s": r.create.rate(),
                    "ratio": r.ratio(),
                    "p50_ms": r.create.percentile(50.0),
                    "p99_ms": r.create.percentile(99.0),
                    "value_bytes": size,
                    "etcd_rpcs_per_pod": {
                        "range": r.create.per_op("rpc:Range"),
                        "txn": r.create.per_op("rpc:Txn"),
                        "put": r.create.per_op("rpc:Put"),
                    },
                    "timed_out": r.put.timed_out || r.txn.timed_out || r.create.timed_out,
                })
            })
            .collect();
        println!("{}", json!({ "pods": args.pods, "etcd_ops": etcd_ops, "rows": json_rows }));
    }
}
