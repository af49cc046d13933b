//! `scheduler-density`: many hollow nodes, many pods created through
//! replication controllers, and how fast the scheduler binds them.
//!
//! Real etcd, and the real `apiserver`, `scheduler` and `controller-manager`
//! binaries as processes (so their memory can be read from `/proc`); the
//! hollow kubelets are the `kubelet` library with its hollow runtime, all in
//! this process, each with its own node, heartbeat and pod watch, as
//! Kubernetes' kubemark runs them. One watch of all pods records when each
//! pod was first seen, bound and Running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use mini_k8s_tests::etcd::Etcd;
use mini_k8s_tests::interrupts::Interrupts;
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{
    bin_dir, create, free_port, rss_kib, spawn_apiserver, start_hollow_nodes, stop_all,
    wait_nodes_ready, wait_ready, work_dir, Component, PROCESSES,
};
use crate::cpu_seconds;
use crate::plot::Panel;

/// Largest `--nodes`.
const MAX_NODES: usize = 5_000;
/// Largest `--pods`.
const MAX_PODS: usize = 50_000;
/// Largest `--timeout`, seconds.
const MAX_TIMEOUT_SECONDS: u64 = 1_800;

/// Flags of the scheduler density benchmark.
#[derive(clap::Args, Debug)]
pub struct DensityArgs {
    /// Hollow nodes (at most 5000).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods in all, spread over the replication controllers (at most 50000).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Replication controllers the pods are created through.
    #[arg(long, default_value_t = 10)]
    rcs: usize,
    /// Start the scheduler only once every pod exists (all Pending), so
    /// that its rate is not bounded by how fast pods are created.
    #[arg(long)]
    scheduler_late: bool,
    /// Nodes only, no kubelets: Ready Node objects the bench writes itself,
    /// so that only the scheduler's own rate is measured (as Kubernetes'
    /// scheduler_perf does); pods are bound but never run.
    #[arg(long)]
    bare_nodes: bool,
    /// Seconds between each hollow node's heartbeats.
    #[arg(long, default_value_t = 30)]
    heartbeat_seconds: u64,
    /// Extra flag for the scheduler (repeatable), e.g. `--scheduler-arg=--bind-concurrency=64`.
    #[arg(long = "scheduler-arg", allow_hyphen_values = true)]
    scheduler_args: Vec<String>,
    /// Seconds the whole measurement may take before it gives up.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Where the component binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The CSV of pods created / bound / Running and each process's RSS
    /// over time (a row every 500 ms); the PNG goes next to it (`.png`).
    #[arg(long, default_value = "density.csv")]
    out: PathBuf,
}

/// Time between two rows of the CSV.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One row of the CSV: the pods counted so far, each process's RSS (KiB;
/// 0 while it is not running) and the CPU seconds it has used since it
/// started, `elapsed_s` after the first RC.
#[derive(Clone, Debug)]
struct Sample {
    elapsed_s: f64,
    created: usize,
    bound: usize,
    running: usize,
    rss_kib: Vec<u64>,
    cpu_s: Vec<f64>,
}

/// What was seen of one pod, as offsets from the first RC creation.
#[derive(Default, Clone, Copy)]
struct PodTimes {
    seen: Option<Duration>,
    bound: Option<Duration>,
    running: Option<Duration>,
}

/// Checks the flags' bounds before anything starts.
///
/// # Errors
///
/// A flag out of its range.
pub fn validate(args: &DensityArgs) -> Result<()> {
    ensure!(
        (1..=MAX_NODES).contains(&args.nodes),
        "--nodes must be between 1 and {MAX_NODES}"
    );
    ensure!(
        (1..=MAX_PODS).contains(&args.pods),
        "--pods must be between 1 and {MAX_PODS}"
    );
    ensure!(
        (1..=args.pods).contains(&args.rcs),
        "--rcs must be between 1 and --pods"
    );
    ensure!(
        (1..=MAX_TIMEOUT_SECONDS).contains(&args.timeout),
        "--timeout must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"
    );
    ensure!(
        args.heartbeat_seconds >= 1,
        "--heartbeat-seconds must be at least 1"
    );
    Ok(())
}

/// Runs the density benchmark: a cluster on hollow nodes, then the pods
/// created, bound and running, timed.
///
/// # Errors
///
/// A component that fails or a goal that is not reached in time.
pub async fn scheduler_density(args: &DensityArgs) -> Result<()> {
    let mut interrupts = Interrupts::catch()?;
    let bin_dir = bin_dir(args.bin_dir.as_ref())?;
    let work = work_dir("density")?;
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    eprintln!("etcd {} (pid {})", etcd.client_url(), etcd.pid());
    eprintln!("logs in {}", work.display());
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let apiserver = spawn_apiserver(&bin_dir, etcd.client_url(), port, &[], &work)?;
    let mut components = vec![apiserver];
    // SIGINT or SIGTERM (density.sh's time limit) ends the measurement
    // early, still through the orderly stop below.
    let outcome = tokio::select! {
        outcome = measure(args, &bin_dir, &url, &work, etcd.pid(), &mut components) => outcome,
        signal = interrupts.next() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    let stopped = stop_all(&mut components).await;
    drop(etcd);
    if outcome.is_ok() && stopped.is_ok() {
        std::fs::remove_dir_all(&work).ok();
    }
    outcome.and(stopped)
}

async fn measure(
    args: &DensityArgs,
    bin_dir: &Path,
    url: &str,
    work: &Path,
    etcd_pid: u32,
    components: &mut Vec<Component>,
) -> Result<()> {
    wait_ready(url).await?;
    let config = kube::Config::new(url.parse().context("the apiserver URL")?);
    let client = kube::Client::try_from(config).context("building a client")?;

    // Hollow nodes: all registered and Ready before anything is measured.
    let started = Instant::now();
    let kubelets = if args.bare_nodes {
        create_bare_nodes(args, url).await?;
        Vec::new()
    } else {
        let heartbeat = Duration::from_secs(args.heartbeat_seconds);
        start_hollow_nodes(args.nodes, &client, work, |config| {
            config.heartbeat_period = heartbeat;
            config.resync_period = Duration::from_secs(60);
        })
    };
    wait_nodes_ready(&client, args.nodes).await?;
    eprintln!(
        "{} {} nodes Ready in {:.1} s",
        args.nodes,
        if args.bare_nodes { "bare" } else { "hollow" },
        started.elapsed().as_secs_f64()
    );

    let master = ["--master".to_string(), url.to_string()];
    let mut scheduler_args = master.to_vec();
    scheduler_args.extend(args.scheduler_args.iter().cloned());
    let mut cm_args = master.to_vec();
    // Hollow heartbeats are sparse; the nodes must not go NotReady meanwhile.
    cm_args.extend([
        "--node-monitor-grace-period".into(),
        if args.bare_nodes {
            // Bare nodes never heartbeat.
            "1h".to_string()
        } else {
            format!("{}s", args.heartbeat_seconds * 4 + 40)
        },
    ]);
    components.push(Component::spawn(
        "controller-manager",
        bin_dir,
        &cm_args,
        work,
    )?);
    if !args.scheduler_late {
        components.push(Component::spawn(
            "scheduler",
            bin_dir,
            &scheduler_args,
            work,
        )?);
    }

    let times: Arc<std::sync::Mutex<HashMap<String, PodTimes>>> = Arc::default();
    let origin = Instant::now();
    let recorder = tokio::spawn(record_pods(client.clone(), times.clone(), origin));
    let mut samples = Vec::new();
    let outcome = async {
        let http = reqwest::Client::new();
        let per_rc = args.pods / args.rcs;
        for i in 0..args.rcs {
            let replicas = per_rc + usize::from(i < args.pods % args.rcs);
            let rc = json!({
                "apiVersion": "v1", "kind": "ReplicationController",
                "metadata": {"name": format!("density-{i}")},
                "spec": {
                    "replicas": replicas,
                    "selector": {"app": format!("density-{i}")},
                    "template": {
                        "metadata": {"labels": {"app": format!("density-{i}")}},
                        // A pod that runs an image its node has, as
                        // Kubernetes' density test runs the pause image by
                        // a fixed tag (`IfNotPresent`): `:latest` alone
                        // defaults to `Always`, a pull and its event per
                        // pod, and on a node with only the locally built
                        // image an `ErrImagePull`.
                        "spec": {"containers": [{
                            "name": "pause", "image": "mini-k8s/pause:latest",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}}
                        }]}
                    }
                }
            });
            create(
                &http,
                &format!("{url}/api/v1/namespaces/default/replicationcontrollers"),
                &rc,
            )
            .await?;
        }
        let deadline = origin + Duration::from_secs(args.timeout);
        let mut scheduler_started = None;
        let mut next_sample = Instant::now();
        let mut next_progress = Instant::now() + PROGRESS_EVERY;
        loop {
            for c in components.iter_mut() {
                c.check_alive()?;
            }
            let (seen, bound, running) = counts(&times);
            let now = Instant::now();
            if now >= next_sample {
                next_sample += SAMPLE_EVERY;
                let sample = sample(origin, (seen, bound, running), etcd_pid, components);
                if now >= next_progress {
                    next_progress += PROGRESS_EVERY;
                    eprintln!("{}", progress_line(&sample));
                }
                samples.push(sample);
            }
            if args.scheduler_late && scheduler_started.is_none() && seen == args.pods {
                eprintln!("all {seen} pods exist (Pending); starting the scheduler");
                components.push(Component::spawn(
                    "scheduler",
                    bin_dir,
                    &scheduler_args,
                    work,
                )?);
                scheduler_started = Some(origin.elapsed());
            }
            let done = if args.bare_nodes { bound } else { running };
            if done == args.pods {
                let last = sample(origin, (seen, bound, running), etcd_pid, components);
                eprintln!("{}", progress_line(&last));
                samples.push(last);
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "gave up after {} s: {seen} pods created, {bound} bound, {running} Running",
                    args.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let memory = components
            .iter()
            .map(|c| c.memory_kib().map(|m| (c.name, m)))
            .collect::<Result<Vec<_>>>()?;
        let times = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
        report(args, &times, scheduler_started, &memory, &samples);
        let writes = print_requests(&http, url).await?;
        let events = writes
            .iter()
            .filter(|(what, _)| what.ends_with(" events"))
            .map(|(_, n)| n)
            .sum::<f64>();
        println!(
            "  events written     {events:>8.0}  ({:.2} per pod)",
            events / args.pods as f64
        );
        print_events(&client).await?;
        Ok(())
    }
    .await;
    // Written whatever the outcome: a run that missed its goal shows where
    // it stalled.
    if let Err(e) = write_outputs(args, &samples) {
        eprintln!("writing {}: {e:#}", args.out.display());
    }
    recorder.abort();
    for hollow in kubelets {
        hollow.task.abort();
    }
    outcome
}

/// Events stored with the same source, object kind, type and reason.
#[derive(Debug, Default, PartialEq)]
struct EventGroup {
    /// Event objects.
    objects: usize,
    /// The sum of their `count`s (occurrences, each a create or a patch).
    occurrences: i64,
    /// Distinct objects they are about.
    about: std::collections::BTreeSet<String>,
    /// One message, as an example.
    example: String,
}

/// Groups events by source component, involved object's kind, type and
/// reason.
fn group_events(
    events: &[k8s_openapi::api::core::v1::Event],
) -> std::collections::BTreeMap<(String, String, String, String), EventGroup> {
    let mut groups: std::collections::BTreeMap<_, EventGroup> = Default::default();
    for e in events {
        let key = (
            e.source
                .as_ref()
                .and_then(|s| s.component.clone())
                .or_else(|| e.reporting_component.clone())
                .unwrap_or_default(),
            e.involved_object.kind.clone().unwrap_or_default(),
            e.type_.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
        );
        let group = groups.entry(key).or_default();
        group.objects += 1;
        group.occurrences += i64::from(e.count.unwrap_or(1).max(1));
        group.about.insert(format!(
            "{}/{}",
            e.involved_object.namespace.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default()
        ));
        if group.example.is_empty() {
            group.example = e.message.clone().unwrap_or_default();
        }
    }
    groups
}

/// Prints the stored events by source and reason: which of them make the
/// events written per pod.
async fn print_events(client: &kube::Client) -> Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::all(client.clone());
    let mut events = Vec::new();
    let mut params = kube::api::ListParams::default().limit(2_000);
    // Bounded: at most 1,000 pages of 2,000.
    for _ in 0..1_000 {
        let page = api.list(&params).await.context("listing events")?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        events.extend(page.items);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    println!("  events stored by source, object kind, type and reason:");
    println!(
        "    {:<20} {:<8} {:<8} {:<24} {:>8} {:>8} {:>8}  example",
        "source", "kind", "type", "reason", "objects", "count", "about"
    );
    for ((source, kind, type_, reason), g) in group_events(&events) {
        let example: String = g.example.chars().take(60).collect();
        println!(
            "    {source:<20} {kind:<8} {type_:<8} {reason:<24} {:>8} {:>8} {:>8}  {example}",
            g.objects,
            g.occurrences,
            g.about.len()
        );
    }
    Ok(())
}

async fn create_bare_nodes(args: &DensityArgs, url: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let bodies = (0..args.nodes).map(|i| {
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("bare-{i:04}")},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": jiff_now(), "lastTransitionTime": jiff_now()}]
            }
        })
    });
    let results: Vec<Result<()>> = futures::stream::iter(bodies)
        .map(|body| {
            let (http, nodes) = (http.clone(), format!("{url}/api/v1/nodes"));
            async move { create(&http, &nodes, &body).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

fn jiff_now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

async fn record_pods(
    client: kube::Client,
    times: Arc<std::sync::Mutex<HashMap<String, PodTimes>>>,
    origin: Instant,
) -> Result<()> {
    let pods: Api<Pod> = Api::all(client);
    // Errors are retried with back-off by the stream itself.
    let mut events = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else {
            continue;
        };
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let now = origin.elapsed();
        let mut times = times.lock().unwrap_or_else(|e| e.into_inner());
        let entry = times.entry(name).or_default();
        entry.seen.get_or_insert(now);
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        {
            entry.bound.get_or_insert(now);
        }
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            entry.running.get_or_insert(now);
        }
    }
    Ok(())
}

fn counts(times: &std::sync::Mutex<HashMap<String, PodTimes>>) -> (usize, usize, usize) {
    let times = times.lock().unwrap_or_else(|e| e.into_inner());
    let count = |f: fn(&PodTimes) -> bool| times.values().filter(|t| f(t)).count();
    (
        count(|t| t.seen.is_some()),
        count(|t| t.bound.is_some()),
        count(|t| t.running.is_some()),
    )
}

/// The pods counted and every process's RSS now.
fn sample(
    origin: Instant,
    (created, bound, running): (usize, usize, usize),
    etcd_pid: u32,
    components: &[Component],
) -> Sample {
    let pids: Vec<Option<String>> = PROCESSES
        .iter()
        .map(|name| match *name {
            "etcd" => Some(etcd_pid.to_string()),
            "bench" => Some("self".to_string()),
            _ => components
                .iter()
                .find(|c| c.name == *name)
                .and_then(|c| c.pid().ok())
                .map(|pid| pid.to_string()),
        })
        .collect();
    // A process not started yet (or gone) reads as 0.
    let rss_kib = pids
        .iter()
        .map(|pid| pid.as_ref().and_then(|pid| rss_kib(pid).ok()).unwrap_or(0))
        .collect();
    let cpu_s = pids
        .iter()
        .map(|pid| pid.as_ref().and_then(|pid| cpu_seconds(pid)).unwrap_or(0.0))
        .collect();
    Sample {
        elapsed_s: origin.elapsed().as_secs_f64(),
        created,
        bound,
        running,
        rss_kib,
        cpu_s,
    }
}

fn progress_line(s: &Sample) -> String {
    let mut line = format!(
        "{:>7.1} s: {} created, {} bound, {} Running; RSS MiB",
        s.elapsed_s, s.created, s.bound, s.running
    );
    for (name, kib) in PROCESSES.iter().zip(&s.rss_kib) {
        line.push_str(&format!(" {name} {:.0}", *kib as f64 / 1024.0));
    }
    line
}

/// The CSV, and the PNG next to it: pods over time, RSS over time.
fn write_outputs(args: &DensityArgs, samples: &[Sample]) -> Result<()> {
    let mut csv = String::from("elapsed_s,created,bound,running");
    for p in PROCESSES {
        csv.push_str(&format!(",{p}_rss_kib"));
    }
    for p in PROCESSES {
        csv.push_str(&format!(",{p}_cpu_s"));
    }
    csv.push('\n');
    for s in samples {
        csv.push_str(&format!(
            "{:.2},{},{},{}",
            s.elapsed_s, s.created, s.bound, s.running
        ));
        for kib in &s.rss_kib {
            csv.push_str(&format!(",{kib}"));
        }
        for cpu in &s.cpu_s {
            csv.push_str(&format!(",{cpu:.2}"));
        }
        csv.push('\n');
    }
    std::fs::write(&args.out, csv).with_context(|| format!("writing {}", args.out.display()))?;
    let png = args.out.with_extension("png");
    let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (s.elapsed_s, f(s))).collect()
    };
    let panels = [
        Panel {
            title: "pods".into(),
            series: vec![
                ("created".into(), series(&|s| s.created as f64)),
                ("bound".into(), series(&|s| s.bound as f64)),
                ("Running".into(), series(&|s| s.running as f64)),
            ],
        },
        Panel {
            title: "RSS (MiB)".into(),
            series: PROCESSES
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let f = move |s: &Sample| s.rss_kib[i] as f64 / 1024.0;
                    ((*name).to_string(), series(&f))
                })
                .collect(),
        },
    ];
    let title = format!(
        "scheduler-density: {} {} nodes, {} pods in {} RCs",
        args.nodes,
        if args.bare_nodes { "bare" } else { "hollow" },
        args.pods,
        args.rcs
    );
    crate::plot::draw(&png, &title, "seconds after the first RC", (1, 2), &panels)?;
    eprintln!("wrote {} and {}", args.out.display(), png.display());
    Ok(())
}

fn report(
    args: &DensityArgs,
    times: &HashMap<String, PodTimes>,
    scheduler_started: Option<Duration>,
    memory: &[(&str, (u64, u64))],
    samples: &[Sample],
) {
    let all = |f: fn(&PodTimes) -> Option<Duration>| -> Vec<Duration> {
        let mut v: Vec<Duration> = times.values().filter_map(f).collect();
        v.sort();
        v
    };
    let seen = all(|t| t.seen);
    let bound = all(|t| t.bound);
    let running = all(|t| t.running);
    let secs = |d: Option<&Duration>| d.map_or(f64::NAN, Duration::as_secs_f64);
    let bind_start = scheduler_started.or(seen.first().copied());
    let bind_window = bound
        .last()
        .zip(bind_start)
        .map(|(last, start)| last.saturating_sub(start));
    println!(
        "scheduler-density: {} {} nodes, {} pods in {} RCs{}",
        args.nodes,
        if args.bare_nodes { "bare" } else { "hollow" },
        args.pods,
        args.rcs,
        if args.scheduler_late {
            ", scheduler started once all pods existed"
        } else {
            ""
        }
    );
    if args.bare_nodes {
        println!("  (bare nodes: no kubelets, pods are bound but not run)");
    }
    println!(
        "  all pods created   {:>8.2} s after the first RC  ({:.0} pods/s by the replication manager)",
        secs(seen.last()),
        seen.len() as f64 / secs(seen.last())
    );
    println!("  all pods bound     {:>8.2} s", secs(bound.last()));
    if !args.bare_nodes {
        println!("  all pods Running   {:>8.2} s", secs(running.last()));
    }
    if let Some(window) = bind_window {
        println!(
            "  scheduler          {:>8.0} pods bound/s  ({} binds over {:.2} s from {})",
            bound.len() as f64 / window.as_secs_f64(),
            bound.len(),
            window.as_secs_f64(),
            if scheduler_started.is_some() {
                "the scheduler's start"
            } else {
                "the first pod's creation"
            }
        );
    }
    if let (Some(start), Some(first), Some(last)) = (scheduler_started, bound.first(), bound.last())
    {
        println!(
            "  first bind {:.2} s after the scheduler started; {:.0} binds/s from the first to the last",
            first.saturating_sub(start).as_secs_f64(),
            bound.len().saturating_sub(1) as f64 / last.saturating_sub(*first).as_secs_f64()
        );
    }
    println!("  peak binds in one second: {}", peak_per_second(&bound));
    for (name, (rss, hwm)) in memory {
        let sampled = PROCESSES
            .iter()
            .position(|p| p == name)
            .and_then(|i| samples.iter().map(|s| s.rss_kib[i]).max())
            .unwrap_or(0);
        println!(
            "  {name:<19} RSS {:>6.1} MiB at the end, {:>6.1} MiB the most sampled, VmHWM {:>6.1} MiB",
            *rss as f64 / 1024.0,
            sampled as f64 / 1024.0,
            *hwm as f64 / 1024.0
        );
    }
    // Where the two cores went: on this machine every process competes for
    // them, so a process's CPU per pod is what the next speed-up must cut.
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let used: Vec<f64> = first
            .cpu_s
            .iter()
            .zip(&last.cpu_s)
            .map(|(a, b)| b - a)
            .collect();
        let wall = last.elapsed_s - first.elapsed_s;
        println!(
            "  CPU over the run ({:.1} s wall, {:.1} CPU-s of 2 cores' {:.1}):",
            wall,
            used.iter().sum::<f64>(),
            2.0 * wall
        );
        for (name, cpu) in PROCESSES.iter().zip(&used) {
            println!(
                "    {name:<19} {cpu:>7.1} CPU-s  {:>6.2} ms per pod",
                cpu * 1000.0 / args.pods as f64
            );
        }
    }
}

/// The apiserver's request counts by verb and resource (from its
/// `/metrics`): what each pod cost the cluster, for reading the rates.
/// Returns them too (`"VERB resource[/sub]"` → count).
async fn print_requests(
    http: &reqwest::Client,
    url: &str,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .context("reading the apiserver's metrics")?
        .text()
        .await
        .context("reading the apiserver's metrics")?;
    let mut totals: std::collections::BTreeMap<String, f64> = Default::default();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        if matches!(
            label("verb").to_ascii_lowercase().as_str(),
            "watch" | "list" | "get"
        ) {
            continue;
        }
        let sub = label("subresource");
        let what = format!(
            "{} {}{}",
            label("verb"),
            label("resource"),
            if sub.is_empty() {
                String::new()
            } else {
                format!("/{sub}")
            }
        );
        *totals.entry(what).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    println!("  apiserver writes:");
    for (what, count) in &totals {
        println!("    {what:<32} {count:>8.0}");
    }
    Ok(totals)
}

fn peak_per_second(sorted: &[Duration]) -> usize {
    let mut peak = 0;
    let mut start = 0;
    for (end, t) in sorted.iter().enumerate() {
        while sorted[start] + Duration::from_secs(1) <= *t {
            start += 1;
        }
        peak = peak.max(end + 1 - start);
    }
    peak
}
