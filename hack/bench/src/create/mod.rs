//! `apiserver-create`: pods created per second through the apiserver next
//! to etcd's own put and create-transaction rates for values of the same
//! size, measured in the same run against the same etcd.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use mini_k8s_tests::apiserver::TestApiServer;
use mini_k8s_tests::etcd::Etcd;
use mini_k8s_tests::interrupts::Interrupts;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cpu_seconds;

mod floor;

/// Largest `--pods` / `--etcd-ops` accepted.
const MAX_OPS: usize = 20_000;
/// Largest client count accepted.
const MAX_CLIENTS: usize = 64;
/// Largest `--rounds` accepted.
const MAX_ROUNDS: usize = 10;
/// Largest `--slices` accepted.
const MAX_SLICES: usize = 20;
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
/// The key the `get` phase reads: what the namespace admission check reads.
const NAMESPACE_KEY: &str = "/registry/namespaces/default";
/// Stands for the pod name in the serialized pod template.
const NAME_PLACEHOLDER: &str = "@@NAME@@";

/// The flags of `apiserver-create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Pods created per measurement (per client count and round), at most 20000.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    /// Concurrent clients, comma-separated; each count is measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,
    /// etcd puts, txns and gets per measurement; defaults to `--pods`.
    #[arg(long)]
    etcd_ops: Option<usize>,
    /// Rounds: every measurement is repeated this many times (at most 10);
    /// the report gives each round and the median.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Each measurement runs as this many interleaved slices (put, txn, get,
    /// create, put, txn, ...), so that a machine whose load changes during
    /// the run weighs on all of them alike.
    #[arg(long, default_value_t = 4)]
    slices: usize,
    /// Seconds one measurement (all its slices) may run; after that its
    /// workers take no new work and the rate is computed over what was
    /// done (the row is flagged).
    #[arg(long, default_value_t = 120)]
    phase_timeout: u64,
    /// The apiserver's `--default-watch-cache-size` (0: no watch cache, so
    /// no etcd watch of pods while nobody watches); the apiserver's
    /// default when not given.
    #[arg(long)]
    watch_cache_size: Option<usize>,
    /// Also measure the floor: the same HTTP requests answered by a server
    /// that only reads the body, sends the same etcd transaction and keeps
    /// an etcd watch of its keys (no decoding, validation or encoding), to
    /// show what of the gap to etcd any apiserver pays on this machine.
    #[arg(long)]
    floor: bool,
    /// Also print the results as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

/// The operations measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// A plain etcd put of a fresh key.
    Put,
    /// What the apiserver's create sends: `create_revision == 0` compare, put.
    Txn,
    /// A linearizable get of one existing key (what the namespace existence
    /// check costs); diagnostics only.
    Get,
    /// `POST /api/v1/namespaces/default/pods`.
    Create,
    /// The same request to the floor server (`--floor`).
    Floor,
}

impl Op {
    const ALL: [Op; 5] = [Op::Put, Op::Txn, Op::Get, Op::Create, Op::Floor];

    fn name(self) -> &'static str {
        match self {
            Op::Put => "etcd put",
            Op::Txn => "etcd txn",
            Op::Get => "etcd get",
            Op::Create => "pod create",
            Op::Floor => "floor create",
        }
    }
}

/// What one measurement found (summed over its slices).
#[derive(Clone, Debug, Default)]
struct Phase {
    ops: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
    timed_out: bool,
    /// How etcd's counters (`rpc:METHOD` calls handled, `fsync`s) and the
    /// CPU seconds of this process (`cpu:self`: the benchmark's clients and
    /// the in-process apiserver) and of etcd (`cpu:etcd`) moved.
    counters: BTreeMap<String, f64>,
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

    /// A counter's increase over the measurement, per successful operation.
    fn per_op(&self, counter: &str) -> f64 {
        if self.ops == 0 {
            return 0.0;
        }
        self.counters.get(counter).copied().unwrap_or(0.0) / self.ops as f64
    }

    fn merge(&mut self, other: Phase) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.timed_out |= other.timed_out;
        for (k, v) in other.counters {
            *self.counters.entry(k).or_insert(0.0) += v;
        }
    }
}

/// The measurements at one client count in one round.
#[derive(Clone, Debug)]
struct Row {
    round: usize,
    clients: usize,
    phases: BTreeMap<&'static str, Phase>,
}

impl Row {
    fn phase(&self, op: Op) -> &Phase {
        static EMPTY: std::sync::OnceLock<Phase> = std::sync::OnceLock::new();
        self.phases
            .get(op.name())
            .unwrap_or_else(|| EMPTY.get_or_init(Phase::default))
    }

    /// Pods created per second over etcd's puts (the table's column).
    fn ratio(&self) -> f64 {
        self.rate_over(Op::Create, Op::Put)
    }

    /// `op`'s operations per second over `peer`'s.
    fn rate_over(&self, op: Op, peer: Op) -> f64 {
        let peer = self.phase(peer).rate();
        if peer > 0.0 {
            self.phase(op).rate() / peer
        } else {
            0.0
        }
    }

    fn timed_out(&self) -> bool {
        self.phases.values().any(|p| p.timed_out)
    }
}

/// Checks the flags' bounds before anything starts.
pub fn validate(args: &CreateArgs) -> Result<()> {
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
    ensure!(
        !args.clients.is_empty(),
        "--clients needs at least one count"
    );
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
        (1..=MAX_SLICES).contains(&args.slices),
        "--slices must be between 1 and {MAX_SLICES}"
    );
    ensure!(
        (1..=MAX_PHASE_SECONDS).contains(&args.phase_timeout),
        "--phase-timeout must be between 1 and {MAX_PHASE_SECONDS} seconds"
    );
    Ok(())
}

/// Starts etcd and the apiserver, measures, and stops both (the apiserver
/// first) whatever the outcome.
pub async fn apiserver_create(args: &CreateArgs) -> Result<()> {
    let mut interrupts = Interrupts::catch()?;
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    eprintln!(
        "etcd {} (pid {}, data in {})",
        etcd.client_url(),
        etcd.pid(),
        etcd.data_dir().display()
    );
    let mut config = apiserver::Config::with_etcd(etcd.endpoints());
    if let Some(size) = args.watch_cache_size {
        config.default_watch_cache_size = size;
    }
    let outcome = match TestApiServer::start(config).await {
        Ok(apiserver) => {
            eprintln!("apiserver (in-process) {}", apiserver.url());
            // SIGINT or SIGTERM (apiserver.sh's time limit) ends the
            // measurement early, but still through the orderly stop below.
            let outcome = tokio::select! {
                outcome = run(args, &etcd, apiserver.url()) => outcome,
                signal = interrupts.next() => Err(anyhow::anyhow!("interrupted by {signal}")),
            };
            let stopped = apiserver.stop().await.context("stopping the apiserver");
            outcome.and(stopped)
        }
        Err(e) => Err(e),
    };
    drop(etcd);
    outcome
}

/// Where a measurement's side effects are read: etcd's `/metrics` and the
/// CPU time of this process and of etcd.
struct Probe {
    http: reqwest::Client,
    metrics_url: String,
    etcd_pid: u32,
}

impl Probe {
    async fn counters(&self) -> Result<BTreeMap<String, f64>> {
        let mut counters = etcd_counters(&self.http, &self.metrics_url).await?;
        if let Some(cpu) = cpu_seconds("self") {
            counters.insert("cpu:self".into(), cpu);
        }
        if let Some(cpu) = tree_cpu_seconds(self.etcd_pid) {
            counters.insert("cpu:etcd".into(), cpu);
        }
        Ok(counters)
    }
}

/// What the benchmark drives.
struct Targets {
    etcd: Client,
    value: Arc<Vec<u8>>,
    creator: PodCreator,
    floor: Option<PodCreator>,
}

async fn run(args: &CreateArgs, etcd: &Etcd, url: &str) -> Result<()> {
    let phase_limit = Duration::from_secs(args.phase_timeout);
    let etcd_ops = args.etcd_ops.unwrap_or(args.pods);
    let client = etcd.client().await?;
    let probe = Probe {
        http: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?,
        metrics_url: format!("{}/metrics", etcd.client_url()),
        etcd_pid: etcd.pid(),
    };
    let load_before = load_average();

    // Warm-up: a few pods through the apiserver, then read one back from
    // etcd to learn what the apiserver really stores for such a pod.
    let warm = PodCreator::new(url, "warmup", 1)?
        .run(0..WARMUP_PODS, 1, Instant::now() + phase_limit)
        .await;
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
    let value = Arc::new(
        stored
            .kvs()
            .first()
            .with_context(|| format!("{stored_key} is not in etcd"))?
            .value()
            .to_vec(),
    );
    eprintln!(
        "stored pod: {} bytes (key {stored_key}); the etcd puts and txns write copies of it",
        value.len()
    );
    let warm = etcd_op(
        &client,
        Op::Put,
        "warmup",
        &value,
        0..WARMUP_PUTS,
        1,
        Instant::now() + phase_limit,
    )
    .await;
    ensure!(
        warm.errors == 0,
        "warm-up puts failed: {}",
        warm.first_error.unwrap_or_default()
    );

    let floor = if args.floor {
        let server = floor::FloorServer::start(&client, &value).await?;
        eprintln!("floor server {}", server.url());
        Some(server)
    } else {
        None
    };
    let measured =
        measure_rounds(args, &probe, &client, &value, url, floor.as_ref(), etcd_ops).await;
    if let Some(server) = floor {
        let events = server.events();
        server.stop().await;
        eprintln!("floor: its etcd watch read {events} events");
    }
    let rows = measured?;
    let load_after = load_average();
    print_report(
        args,
        etcd_ops,
        value.len(),
        &rows,
        (load_before.as_deref(), load_after.as_deref()),
    );
    for row in &rows {
        for (name, phase) in &row.phases {
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
    Ok(())
}

/// Every round at every client count.
async fn measure_rounds(
    args: &CreateArgs,
    probe: &Probe,
    client: &Client,
    value: &Arc<Vec<u8>>,
    url: &str,
    floor: Option<&floor::FloorServer>,
    etcd_ops: usize,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        for &clients in &args.clients {
            let tag = format!("r{round}-c{clients}");
            let targets = Targets {
                etcd: client.clone(),
                value: value.clone(),
                creator: PodCreator::new(url, &tag, clients)?,
                floor: floor
                    .map(|f| PodCreator::new(f.url(), &tag, clients))
                    .transpose()?,
            };
            let row = measure(&targets, probe, args, etcd_ops, round, clients, &tag).await?;
            eprintln!(
                "round {round}, {clients} client(s): etcd put {:.0}/s, txn {:.0}/s, apiserver {:.0} pods/s (ratio {:.2})",
                row.phase(Op::Put).rate(),
                row.phase(Op::Txn).rate(),
                row.phase(Op::Create).rate(),
                row.ratio()
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row: every operation in `args.slices` interleaved slices.
async fn measure(
    targets: &Targets,
    probe: &Probe,
    args: &CreateArgs,
    etcd_ops: usize,
    round: usize,
    clients: usize,
    tag: &str,
) -> Result<Row> {
    let mut phases: BTreeMap<&'static str, Phase> = BTreeMap::new();
    let budget = Duration::from_secs(args.phase_timeout);
    for slice in 0..args.slices {
        for op in Op::ALL {
            if op == Op::Floor && targets.floor.is_none() {
                continue;
            }
            let total = if matches!(op, Op::Create | Op::Floor) {
                args.pods
            } else {
                etcd_ops
            };
            let range = slice_range(total, args.slices, slice);
            if range.is_empty() {
                continue;
            }
            let phase = phases.entry(op.name()).or_default();
            let left = budget.saturating_sub(phase.elapsed);
            if left.is_zero() {
                phase.timed_out = true;
                continue;
            }
            let deadline = Instant::now() + left;
            let before = probe.counters().await?;
            let mut done = match op {
                Op::Create => targets.creator.run(range, clients, deadline).await,
                Op::Floor => match &targets.floor {
                    Some(floor) => floor.run(range, clients, deadline).await,
                    None => continue,
                },
                _ => {
                    etcd_op(
                        &targets.etcd,
                        op,
                        tag,
                        &targets.value,
                        range,
                        clients,
                        deadline,
                    )
                    .await
                }
            };
            let after = probe.counters().await?;
            done.counters = after
                .iter()
                .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
                .collect();
            phase.merge(done);
        }
    }
    Ok(Row {
        round,
        clients,
        phases,
    })
}

/// The `slice`-th of `slices` near-equal parts of `0..total`.
fn slice_range(total: usize, slices: usize, slice: usize) -> Range<usize> {
    (total * slice / slices)..(total * (slice + 1) / slices)
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
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let key = if series.starts_with("grpc_server_handled_total{") {
            match label(series, "grpc_method") {
                Some(method) => format!("rpc:{method}"),
                None => continue,
            }
        } else if series == "etcd_disk_wal_fsync_duration_seconds_count" {
            "fsync".to_string()
        } else {
            continue;
        };
        *counters.entry(key).or_insert(0.0) += value;
    }
    Ok(counters)
}

/// The value of `name="..."` in a Prometheus series.
fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &series[start..];
    Some(&rest[..rest.find('"')?])
}

/// CPU seconds of a process and its descendants (etcd may run under a
/// wrapper: see `ETCD_FSYNC_DELAY_US` in `apiserver.sh`).
fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let mut total = cpu_seconds(&pid.to_string())?;
    let mut pending = vec![(pid, 0)];
    let mut seen = 0;
    while let Some((parent, depth)) = pending.pop() {
        // Bounded: a few levels, a few hundred processes.
        if depth >= 4 || seen >= 256 {
            break;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                seen += 1;
                total += cpu_seconds(&child.to_string()).unwrap_or(0.0);
                pending.push((child, depth + 1));
            }
        }
    }
    Some(total)
}

/// The 1-minute load average, to show how busy the machine was.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// etcd operations on fresh keys `range` with `clients` concurrent workers
/// over one shared client (the apiserver shares one too).
async fn etcd_op(
    client: &Client,
    op: Op,
    tag: &str,
    value: &Arc<Vec<u8>>,
    range: Range<usize>,
    clients: usize,
    deadline: Instant,
) -> Phase {
    let kind = match op {
        Op::Put => "put",
        Op::Txn => "txn",
        Op::Get | Op::Create | Op::Floor => "get",
    };
    let prefix = Arc::new(format!("{BENCH_PREFIX}/{kind}/{tag}"));
    run_workers(range, clients, deadline, |_| {
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
                            let response = client.txn(create_txn(key, value)).await?;
                            if response.succeeded() {
                                Ok(())
                            } else {
                                Err(etcd_client::Error::InvalidArgs("the key existed".into()))
                            }
                        }
                        // (`Create` and `Floor` are not etcd operations:
                        // never passed here.)
                        Op::Get | Op::Create | Op::Floor => {
                            let response = client.get(NAMESPACE_KEY, None).await?;
                            if response.kvs().is_empty() {
                                Err(etcd_client::Error::InvalidArgs(format!(
                                    "{NAMESPACE_KEY} is missing"
                                )))
                            } else {
                                Ok(())
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

/// What the apiserver's create sends: put `value` at `key` if the key
/// was never created.
fn create_txn(key: String, value: Vec<u8>) -> Txn {
    Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, value, None)])
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

/// Creates pods `bench-{tag}-{index}` through the apiserver with one HTTP
/// client (one keep-alive connection) per concurrent worker.
struct PodCreator {
    endpoint: Arc<String>,
    clients: Vec<reqwest::Client>,
    /// The serialized pod before and after its name: each request splices
    /// its name in, so the clients spend little CPU next to the server
    /// they share the machine with.
    head: Arc<String>,
    tail: Arc<String>,
    tag: Arc<String>,
}

impl PodCreator {
    fn new(url: &str, tag: &str, clients: usize) -> Result<Self> {
        let template = serde_json::to_string(&pod(NAME_PLACEHOLDER))?;
        let (head, tail) = template
            .split_once(NAME_PLACEHOLDER)
            .context("the pod template has no name")?;
        let clients = (0..clients)
            .map(|_| {
                reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .pool_max_idle_per_host(1)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            endpoint: Arc::new(format!("{url}/api/v1/namespaces/default/pods")),
            clients,
            head: Arc::new(head.to_string()),
            tail: Arc::new(tail.to_string()),
            tag: Arc::new(tag.to_string()),
        })
    }

    async fn run(&self, range: Range<usize>, workers: usize, deadline: Instant) -> Phase {
        run_workers(range, workers, deadline, |worker| {
            let http = self.clients[worker % self.clients.len()].clone();
            let endpoint = self.endpoint.clone();
            let (head, tail, tag) = (self.head.clone(), self.tail.clone(), self.tag.clone());
            move |i: usize| {
                let body = format!("{head}bench-{tag}-{i:06}{tail}");
                let request = http
                    .post(endpoint.as_str())
                    .header("content-type", "application/json")
                    .body(body);
                async move {
                    let response = request.send().await.map_err(|e| e.to_string())?;
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
        .await
    }
}

/// Runs the operations `range` on `workers` concurrent tasks: each takes the
/// next index until all are taken or `deadline` has passed, and times each
/// operation. `make(worker)` gives a worker its operation.
async fn run_workers<M, F, Fut>(
    range: Range<usize>,
    workers: usize,
    deadline: Instant,
    make: M,
) -> Phase
where
    M: Fn(usize) -> F,
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::result::Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(range.start));
    let end = range.end;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let mut op = make(worker);
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut timed_out = false;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
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
                phase
                    .first_error
                    .get_or_insert(format!("worker failed: {e}"));
            }
        }
    }
    phase.elapsed = start.elapsed();
    phase.ops = phase.latencies.len();
    phase
}

/// The median over the rounds at `clients` clients of what `f` reads.
fn median_over_rounds(rows: &[Row], clients: usize, f: &dyn Fn(&Row) -> f64) -> f64 {
    median(
        rows.iter()
            .filter(|r| r.clients == clients)
            .map(f)
            .collect(),
    )
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

const TABLE_HEADER: [&str; 9] = [
    "round",
    "clients",
    "etcd puts/s",
    "etcd txn/s",
    "apiserver pods/s",
    "ratio",
    "p50 ms",
    "p99 ms",
    "value B",
];

#[allow(clippy::too_many_arguments)]
fn table_line(
    round: &str,
    clients: usize,
    puts: f64,
    txns: f64,
    pods: f64,
    ratio: f64,
    p50: f64,
    p99: f64,
    size: usize,
) -> String {
    format!(
        "{round:>5} {clients:>7} {puts:>11.0} {txns:>10.0} {pods:>16.0} {ratio:>5.2} {p50:>7.2} {p99:>7.2} {size:>8}"
    )
}

fn print_report(
    args: &CreateArgs,
    etcd_ops: usize,
    size: usize,
    rows: &[Row],
    load: (Option<&str>, Option<&str>),
) {
    println!();
    println!(
        "apiserver-create: {} pods and {etcd_ops} etcd puts/txns/gets per row in {} interleaved slices; \
         in-process apiserver over one etcd member (harness); load average {} before, {} after",
        args.pods,
        args.slices,
        load.0.unwrap_or("?"),
        load.1.unwrap_or("?"),
    );
    let h = TABLE_HEADER;
    println!(
        "{:>5} {:>7} {:>11} {:>10} {:>16} {:>5} {:>7} {:>7} {:>8}",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    );
    for row in rows {
        let create = row.phase(Op::Create);
        let flag = if row.timed_out() {
            "  (timed out: partial)"
        } else {
            ""
        };
        println!(
            "{}{flag}",
            table_line(
                &row.round.to_string(),
                row.clients,
                row.phase(Op::Put).rate(),
                row.phase(Op::Txn).rate(),
                create.rate(),
                row.ratio(),
                create.percentile(50.0),
                create.percentile(99.0),
                size,
            )
        );
    }
    if args.rounds > 1 {
        for &clients in &args.clients {
            let of = |f: &dyn Fn(&Row) -> f64| median_over_rounds(rows, clients, f);
            println!(
                "{}",
                table_line(
                    "med",
                    clients,
                    of(&|r| r.phase(Op::Put).rate()),
                    of(&|r| r.phase(Op::Txn).rate()),
                    of(&|r| r.phase(Op::Create).rate()),
                    of(&Row::ratio),
                    of(&|r| r.phase(Op::Create).percentile(50.0)),
                    of(&|r| r.phase(Op::Create).percentile(99.0)),
                    size,
                )
            );
        }
    }
    println!("ratio = apiserver pods/s / etcd puts/s; goal: at least 0.80 at 1 and at 8 clients");
    if args.floor {
        println!();
        println!("creates per second over etcd txn/s, the apiserver's and the floor's (--floor: HTTP, the same txn, a watch; nothing decoded):");
        for row in rows {
            println!(
                "  round {}, {} client(s): apiserver {:.2}, floor {:.2}",
                row.round,
                row.clients,
                row.rate_over(Op::Create, Op::Txn),
                row.rate_over(Op::Floor, Op::Txn)
            );
        }
        for &clients in &args.clients {
            let of = |f: &dyn Fn(&Row) -> f64| median_over_rounds(rows, clients, f);
            println!(
                "  median, {clients} client(s): apiserver {:.2}, floor {:.2}",
                of(&|r| r.rate_over(Op::Create, Op::Txn)),
                of(&|r| r.rate_over(Op::Floor, Op::Txn))
            );
        }
    }
    println!();
    println!("diagnostics (latencies in ms; per operation: etcd fsyncs, CPU ms of etcd and of this process, etcd RPCs):");
    for row in rows {
        println!("  round {}, {} client(s):", row.round, row.clients);
        for op in Op::ALL {
            if !row.phases.contains_key(op.name()) {
                continue;
            }
            let phase = row.phase(op);
            let rpcs: Vec<String> = phase
                .counters
                .iter()
                .filter_map(|(k, v)| {
                    let method = k.strip_prefix("rpc:")?;
                    (*v > 0.0).then(|| format!("{method} {:.2}", v / phase.ops.max(1) as f64))
                })
                .collect();
            println!(
                "    {:<10} {:>7.0}/s  p50 {:>6.2}  p99 {:>6.2}  fsync {:>4.2}  cpu etcd {:>5.3}  cpu self {:>5.3}  rpcs {}",
                op.name(),
                phase.rate(),
                phase.percentile(50.0),
                phase.percentile(99.0),
                phase.per_op("fsync"),
                phase.per_op("cpu:etcd") * 1000.0,
                phase.per_op("cpu:self") * 1000.0,
                rpcs.join(", "),
            );
        }
    }
    println!("  (cpu self = this process: the benchmark's clients plus the in-process apiserver and floor server)");
    if args.json {
        let json_rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                let phases: serde_json::Map<String, Value> = r
                    .phases
                    .iter()
                    .map(|(name, p)| {
                        (
                            name.replace(' ', "_"),
                            json!({
                                "ops": p.ops,
                                "per_s": p.rate(),
                                "p50_ms": p.percentile(50.0),
                                "p99_ms": p.percentile(99.0),
                                "fsyncs_per_op": p.per_op("fsync"),
                                "cpu_ms_per_op": {
                                    "etcd": p.per_op("cpu:etcd") * 1000.0,
                                    "self": p.per_op("cpu:self") * 1000.0,
                                },
                                "etcd_ranges_per_op": p.per_op("rpc:Range"),
                                "etcd_txns_per_op": p.per_op("rpc:Txn"),
                                "timed_out": p.timed_out,
                            }),
                        )
                    })
                    .collect();
                json!({
                    "round": r.round,
                    "clients": r.clients,
                    "etcd_puts_per_s": r.phase(Op::Put).rate(),
                    "etcd_txn_per_s": r.phase(Op::Txn).rate(),
                    "apiserver_pods_per_s": r.phase(Op::Create).rate(),
                    "ratio": r.ratio(),
                    "floor_per_s": r.phases.contains_key(Op::Floor.name()).then(|| r.phase(Op::Floor).rate()),
                    "p50_ms": r.phase(Op::Create).percentile(50.0),
                    "p99_ms": r.phase(Op::Create).percentile(99.0),
                    "value_bytes": size,
                    "phases": phases,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "pods": args.pods,
                "etcd_ops": etcd_ops,
                "slices": args.slices,
                "load_average": { "before": load.0, "after": load.1 },
                "rows": json_rows,
            })
        );
    }
}
