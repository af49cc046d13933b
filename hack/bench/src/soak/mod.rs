//! `soak`: a day of a 100-node cluster in 30 minutes. Hollow nodes, a
//! steady churn of pods, services and RCs, heartbeats and resyncs sped up
//! by `--speedup`; every few seconds etcd's DB size and revision and each
//! process's RSS and open fds go into a CSV; at the end a PNG of them, the
//! flatness verdict (last third against middle third) and the check that
//! no acknowledged write was lost.

mod churn;
mod plot;
mod sample;
mod verdict;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use mini_k8s_tests::etcd::Etcd;
use mini_k8s_tests::interrupts::Interrupts;
use tokio::time::Instant;

use crate::cluster::{
    bin_dir, drain_call_logs, free_port, spawn_apiserver, start_hollow_nodes, stop_all,
    wait_nodes_ready, wait_ready, work_dir, Component, PROCESSES,
};
use churn::{Check, Churn};
use verdict::{Sample, Thirds, TOLERANCE};

/// Longest `--duration`.
const MAX_DURATION: Duration = Duration::from_secs(4 * 3600);
/// Largest `--nodes`.
const MAX_NODES: usize = 500;
/// Largest `--namespaces`.
const MAX_NAMESPACES: usize = 10;

/// Flags of the soak.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// How long the churn runs (a Go duration, at most 4h).
    #[arg(long, default_value = "30m", value_parser = client_util::go_duration)]
    duration: Duration,
    /// Hollow nodes (at most 500).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// How much faster than Kubernetes' defaults heartbeats, status
    /// reports, resyncs, leader-election renewals, compaction, event TTL
    /// and the churn run.
    #[arg(long, default_value_t = 48)]
    speedup: u32,
    /// Namespaces the churn runs in (at most 10).
    #[arg(long, default_value_t = 3)]
    namespaces: usize,
    /// Time between samples (a Go duration).
    #[arg(long, default_value = "5s", value_parser = client_util::go_duration)]
    sample_interval: Duration,
    /// The CSV; the PNG and the summary go next to it (`.png`, `.summary.txt`).
    #[arg(long, default_value = "soak.csv")]
    out: PathBuf,
    /// Where the component binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Leave the hollow runtimes' call logs (kept for the kubelet's unit
    /// tests) to grow, as the first soak did: the bench's RSS then climbs.
    #[arg(long)]
    keep_hollow_call_logs: bool,
}

/// Checks the flags' bounds before anything starts.
///
/// # Errors
///
/// A flag out of its range.
pub fn validate(args: &SoakArgs) -> Result<()> {
    ensure!(
        (Duration::from_secs(30)..=MAX_DURATION).contains(&args.duration),
        "--duration must be between 30s and 4h"
    );
    ensure!(
        (1..=MAX_NODES).contains(&args.nodes),
        "--nodes must be between 1 and {MAX_NODES}"
    );
    ensure!(
        (1..=MAX_NAMESPACES).contains(&args.namespaces),
        "--namespaces must be between 1 and {MAX_NAMESPACES}"
    );
    ensure!(
        (1..=1000).contains(&args.speedup),
        "--speedup must be between 1 and 1000"
    );
    ensure!(
        (Duration::from_millis(500)..=Duration::from_secs(60)).contains(&args.sample_interval),
        "--sample-interval must be between 500ms and 1m"
    );
    Ok(())
}

/// Kubernetes' default periods, divided by the speedup.
struct Periods {
    speedup: u32,
}

impl Periods {
    fn of(&self, default: Duration) -> Duration {
        default / self.speedup
    }

    /// For flags that take whole seconds: never below one.
    fn secs(&self, default_secs: u64) -> u64 {
        (default_secs / u64::from(self.speedup)).max(1)
    }

    fn flag(&self, default: Duration) -> String {
        format!("{}ms", self.of(default).as_millis().max(1))
    }

    /// The churn's round: one per simulated minute.
    fn tick(&self) -> Duration {
        self.of(Duration::from_secs(60))
    }

    fn describe(&self, args: &SoakArgs) -> String {
        let real = args.duration * self.speedup;
        let ms = |d: Duration| format!("{} ms", self.of(d).as_millis());
        format!(
            "soak: {} of wall time x{} = {:.1} h of a {}-node cluster\n\
             \x20 node Lease renewed every {} (10 s), lease {} s (40 s); node status computed every {} (10 s), \
             reported every {} (5 m)\n\
             \x20 kubelet pod resync every {} (10 s); scheduler resync {} s (30 s); leader-election retry {} (2 s); \
             node monitor every {} (5 s), grace 40 s (not sped up: a tolerance)\n\
             \x20 etcd compaction every {} (5 m); event TTL {} s (1 h)\n\
             \x20 churn: one round per simulated minute ({}), {} namespaces; each round per namespace: \
             create a bare pod and a service (the oldest beyond 20 pods / 10 services deleted), \
             scale one of 4 RCs to 0..6; every 10 rounds an RC created and the oldest retired",
            humanize(args.duration),
            self.speedup,
            real.as_secs_f64() / 3600.0,
            args.nodes,
            ms(Duration::from_secs(10)),
            self.secs(40),
            ms(Duration::from_secs(10)),
            ms(Duration::from_secs(300)),
            ms(Duration::from_secs(10)),
            self.secs(30),
            ms(Duration::from_secs(2)),
            ms(Duration::from_secs(5)),
            ms(Duration::from_secs(300)),
            self.secs(3600),
            ms(Duration::from_secs(60)),
            args.namespaces,
        )
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// Where the run's outputs go.
struct Outputs {
    csv: PathBuf,
    png: PathBuf,
    summary: PathBuf,
}

impl Outputs {
    fn new(csv: &Path) -> Self {
        let stem = csv.with_extension("");
        Self {
            csv: csv.to_path_buf(),
            png: stem.with_extension("png"),
            summary: PathBuf::from(format!("{}.summary.txt", stem.display())),
        }
    }
}

/// Runs the soak: a cluster under churn for `--duration`, sampled.
///
/// # Errors
///
/// A component that dies or a step that fails.
pub async fn soak(args: &SoakArgs) -> Result<()> {
    let mut interrupts = Interrupts::catch()?;
    let periods = Periods {
        speedup: args.speedup,
    };
    let description = periods.describe(args);
    println!("{description}");
    let outputs = Outputs::new(&args.out);
    let bin_dir = bin_dir(args.bin_dir.as_ref())?;
    let work = work_dir("soak")?;
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    eprintln!("etcd {} (pid {})", etcd.client_url(), etcd.pid());
    eprintln!("logs in {}", work.display());
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let apiserver = spawn_apiserver(
        &bin_dir,
        etcd.client_url(),
        port,
        &[
            "--etcd-compaction-interval".into(),
            periods.flag(Duration::from_secs(300)),
            "--event-ttl-seconds".into(),
            periods.secs(3600).to_string(),
        ],
        &work,
    )?;
    let mut components = vec![apiserver];
    let mut samples = Vec::new();
    let mut churn = None;
    // SIGINT or SIGTERM (soak.sh's time limit) ends the run early, through
    // the same stop and with what was sampled so far.
    let outcome = tokio::select! {
        outcome = run(args, &periods, &etcd, &bin_dir, &url, &work, &outputs, &mut components, &mut samples, &mut churn) => outcome,
        signal = interrupts.next() => Err(anyhow!("interrupted by {signal}")),
    };
    let stopped = stop_all(&mut components).await;
    drop(etcd);
    match &outcome {
        Err(e) if !e.to_string().starts_with("interrupted") => {
            eprintln!("logs kept in {}", work.display());
        }
        _ => {
            std::fs::remove_dir_all(&work).ok();
        }
    }
    let interrupted = outcome.as_ref().err().map(|e| format!("{e:#}"));
    let check = outcome.as_ref().ok();
    let passed = finish(
        &outputs,
        &description,
        periods.tick(),
        &samples,
        churn.as_ref(),
        check,
        interrupted.as_deref(),
    )?;
    outcome?;
    stopped?;
    ensure!(passed, "the soak failed its verdict (see above)");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run(
    args: &SoakArgs,
    periods: &Periods,
    etcd: &Etcd,
    bin_dir: &Path,
    url: &str,
    work: &Path,
    outputs: &Outputs,
    components: &mut Vec<Component>,
    samples: &mut Vec<Sample>,
    churn_slot: &mut Option<Churn>,
) -> Result<Check> {
    wait_ready(url).await?;
    let config = kube::Config::new(url.parse().context("the apiserver URL")?);
    let client = kube::Client::try_from(config).context("building a client")?;
    let started = Instant::now();
    let kubelets = start_hollow_nodes(args.nodes, &client, work, |config| {
        config.heartbeat_period = periods.of(Duration::from_secs(10));
        config.node_lease_duration_seconds = i32::try_from(periods.secs(40)).unwrap_or(40);
        config.node_status_update_frequency = periods.of(Duration::from_secs(10));
        config.node_status_report_frequency = periods.of(Duration::from_secs(300));
        config.resync_period = periods.of(Duration::from_secs(10));
    });
    let outcome = async {
        wait_nodes_ready(&client, args.nodes).await?;
        eprintln!(
            "{} hollow nodes Ready in {:.1} s",
            args.nodes,
            started.elapsed().as_secs_f64()
        );
        let retry = periods.flag(Duration::from_secs(2));
        components.push(Component::spawn(
            "scheduler",
            bin_dir,
            &[
                "--master".into(),
                url.into(),
                "--resync-seconds".into(),
                periods.secs(30).to_string(),
                "--leader-elect-retry-period".into(),
                retry.clone(),
            ],
            work,
        )?);
        components.push(Component::spawn(
            "controller-manager",
            bin_dir,
            &[
                "--master".into(),
                url.into(),
                "--leader-elect-retry-period".into(),
                retry,
                "--node-monitor-period".into(),
                periods.flag(Duration::from_secs(5)),
                "--node-monitor-grace-period".into(),
                "40s".into(),
            ],
            work,
        )?);
        let mut pids = vec![sample::Process {
            name: "etcd",
            pid: etcd.pid(),
        }];
        for c in components.iter() {
            pids.push(sample::Process {
                name: c.name,
                pid: c.pid()?,
            });
        }
        pids.push(sample::Process {
            name: "bench",
            pid: std::process::id(),
        });
        ensure!(
            pids.iter().map(|p| p.name).eq(PROCESSES),
            "processes out of CSV order"
        );
        *churn_slot = Some(Churn::new(url, args.namespaces).await?);
        let Some(churn) = churn_slot.as_mut() else {
            bail!("no churn");
        };
        let mut etcd_client = etcd.client().await?;
        let mut csv = std::fs::File::create(&outputs.csv)
            .with_context(|| format!("creating {}", outputs.csv.display()))?;
        writeln!(csv, "{}", verdict::csv_header(&PROCESSES))?;

        let origin = Instant::now();
        let deadline = origin + args.duration;
        let churning = async {
            let mut ticks = tokio::time::interval(periods.tick());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                ticks.tick().await;
                churn.tick().await;
            }
        };
        let sampling = async {
            let mut ticks = tokio::time::interval(args.sample_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut skipped = 0;
            let mut drained = (0, 0);
            loop {
                ticks.tick().await;
                if !args.keep_hollow_call_logs {
                    let (n, bytes) = drain_call_logs(&kubelets);
                    drained = (drained.0 + n, drained.1 + bytes);
                }
                for c in components.iter_mut() {
                    c.check_alive()?;
                }
                let elapsed = origin.elapsed().as_secs_f64();
                match sample::take(&mut etcd_client, &pids, elapsed).await {
                    Ok(s) => {
                        writeln!(csv, "{}", verdict::csv_row(&s))?;
                        csv.flush()?;
                        samples.push(s);
                    }
                    // A busy etcd may miss one; the gap shows in the CSV.
                    Err(e) => {
                        skipped += 1;
                        eprintln!("sample at {elapsed:.0} s skipped: {e:#}");
                        ensure!(skipped <= 20, "too many samples failed");
                    }
                }
                if Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(drained);
                }
            }
        };
        let ((), sampled) = tokio::join!(churning, sampling);
        let drained = sampled?;
        eprintln!("churn over; reading back every acknowledged object");
        let mut check = churn.check().await?;
        check.drained = (!args.keep_hollow_call_logs).then_some(drained);
        // What the hollow kubelets hold at the end, against what the
        // apiserver has bound: state left behind by deleted pods shows here.
        check.hollow_pods = kubelets.iter().map(|h| h.kubelet.pods().len()).sum();
        check.hollow_containers = kubelets.iter().map(|h| h.runtime.containers().len()).sum();
        check.bound_pods = bound_pods(&client).await?;
        Ok(check)
    }
    .await;
    for hollow in kubelets {
        hollow.task.abort();
    }
    outcome
}

async fn bound_pods(client: &kube::Client) -> Result<usize> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(client.clone());
    let list = pods
        .list(&kube::api::ListParams::default())
        .await
        .context("listing pods")?;
    Ok(list
        .items
        .iter()
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
        .count())
}

/// Prints the verdict and writes the summary and the PNG; true when every
/// series is flat and no acknowledged write was lost.
fn finish(
    outputs: &Outputs,
    description: &str,
    tick: Duration,
    samples: &[Sample],
    churn: Option<&Churn>,
    check: Option<&Check>,
    interrupted: Option<&str>,
) -> Result<bool> {
    let mut text = String::new();
    let mut passed = true;
    writeln!(text, "{description}")?;
    if let Some(why) = interrupted {
        writeln!(text, "RUN CUT SHORT: {why}")?;
        passed = false;
    }
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        println!("no samples");
        return Ok(false);
    };
    writeln!(
        text,
        "{} samples over {:.1} min; etcd revision {} -> {} ({} writes); DB size {:.1} -> {:.1} MiB (in use {:.1} -> {:.1} MiB)",
        samples.len(),
        last.elapsed_s / 60.0,
        first.revision,
        last.revision,
        last.revision - first.revision,
        first.db_size as f64 / 1048576.0,
        last.db_size as f64 / 1048576.0,
        first.db_in_use as f64 / 1048576.0,
        last.db_in_use as f64 / 1048576.0,
    )?;
    writeln!(
        text,
        "flatness (mean of the last third vs the middle third, PASS within {:.0}%):",
        TOLERANCE * 100.0
    )?;
    let mut series: Vec<(String, Vec<f64>, f64, &str, bool)> = vec![
        (
            "etcd DB size".into(),
            samples.iter().map(|s| s.db_size as f64).collect(),
            1048576.0,
            "MiB",
            true,
        ),
        (
            "etcd DB in use".into(),
            samples.iter().map(|s| s.db_in_use as f64).collect(),
            1048576.0,
            "MiB",
            false,
        ),
    ];
    for (i, name) in PROCESSES.iter().enumerate() {
        series.push((
            format!("{name} RSS"),
            samples.iter().map(|s| s.processes[i].0 as f64).collect(),
            1024.0,
            "MiB",
            true,
        ));
    }
    for (i, name) in PROCESSES.iter().enumerate() {
        series.push((
            format!("{name} fds"),
            samples.iter().map(|s| s.processes[i].1 as f64).collect(),
            1.0,
            "",
            false,
        ));
    }
    for (name, values, scale, unit, judged) in &series {
        let Some(t) = Thirds::of(values) else {
            writeln!(text, "  {name:<24} too few samples")?;
            passed = false;
            continue;
        };
        let verdict = match (judged, t.flat()) {
            (false, _) => "(shown, not judged)",
            (true, true) => "PASS",
            (true, false) => {
                passed = false;
                "FAIL"
            }
        };
        writeln!(
            text,
            "  {name:<24} middle {:>9.1} {unit:<3} last {:>9.1} {unit:<3} {:>+6.1}%  {verdict}",
            t.middle / scale,
            t.last / scale,
            t.change() * 100.0
        )?;
    }
    if let Some(churn) = churn {
        let ledger = churn.ledger();
        writeln!(
            text,
            "churn: {} rounds (planned one per {} ms: {:.0})",
            churn.rounds,
            tick.as_millis(),
            last.elapsed_s / tick.as_secs_f64()
        )?;
        writeln!(text, "writes acknowledged (2xx):")?;
        for (what, n) in &ledger.writes {
            writeln!(text, "  {what:<16} {n:>7}")?;
        }
        if !ledger.failed.is_empty() {
            writeln!(text, "writes not acknowledged (excluded from the check):")?;
            for (what, n) in &ledger.failed {
                writeln!(text, "  {what:<16} {n:>7}")?;
            }
            if let Some(first) = &ledger.first_failure {
                writeln!(text, "  first: {first}")?;
            }
        }
    }
    match check {
        Some(check) => {
            let kept = churn.map(Churn::kept_counts).unwrap_or_default();
            writeln!(
                text,
                "acknowledged writes lost: {} of {} objects read back ({:?}); RCs whose replicas differ from the last acknowledged scale: {}",
                check.lost.len(),
                check.checked,
                kept,
                check.wrong_replicas.len()
            )?;
            for what in check.lost.iter().chain(&check.wrong_replicas).take(20) {
                writeln!(text, "  {what}")?;
            }
            match check.drained {
                Some((n, bytes)) => writeln!(
                    text,
                    "hollow runtimes' call logs drained every sample: {n} entries, {:.1} MiB of text",
                    bytes as f64 / 1048576.0
                )?,
                None => writeln!(text, "hollow runtimes' call logs left to grow")?,
            }
            writeln!(
                text,
                "at the end: {} pods bound in the apiserver; the hollow kubelets show {} pods, their runtimes hold {} containers",
                check.bound_pods, check.hollow_pods, check.hollow_containers
            )?;
            if !check.lost.is_empty() || !check.wrong_replicas.is_empty() {
                passed = false;
            }
        }
        None => writeln!(
            text,
            "acknowledged writes lost: not checked (the run did not finish)"
        )?,
    }
    writeln!(text, "verdict: {}", if passed { "PASS" } else { "FAIL" })?;
    print!("{}", &text[description.len() + 1..]);
    std::fs::write(&outputs.summary, &text)
        .with_context(|| format!("writing {}", outputs.summary.display()))?;
    let title = format!(
        "mini-k8s soak: {} ({})",
        outputs
            .csv
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        description
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("soak: ")
    );
    plot::draw(&outputs.png, &title, &PROCESSES, samples)?;
    println!(
        "wrote {}, {}, {}",
        outputs.csv.display(),
        outputs.png.display(),
        outputs.summary.display()
    );
    Ok(passed)
}
