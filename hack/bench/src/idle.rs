//! `idle-rss`: every component started on an empty cluster and left idle,
//! then its memory read from `/proc/PID/status` (VmRSS, split into anonymous
//! memory and file-backed pages, i.e. the binary's own code), beside
//! Kubernetes v0.5's figures measured on this machine.
//!
//! Each `--variant` runs the whole set again with some environment added to
//! every component, so that what an allocator setting or tokio's worker
//! count costs is measured in the same run as the default: tokio reads
//! `TOKIO_WORKER_THREADS`, glibc's malloc `MALLOC_ARENA_MAX`, mimalloc its
//! `MIMALLOC_*` options. Variants run round-robin over `--rounds`; medians.
//! Before each set starts, the binaries are dropped from the page cache, so
//! that how they were last written (a build, a copy) does not change how
//! many of their pages a process maps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use mini_k8s_tests::etcd::Etcd;
use mini_k8s_tests::interrupts::Interrupts;
use mini_k8s_tests::netns::Netns;

use crate::cluster::{
    bin_dir, free_port, status_field_kib, stop_all, wait_ready, work_dir, Component,
};

/// The components, in start order, with Kubernetes v0.5's idle VmRSS on
/// this machine (MiB; issue #19).
pub(crate) const COMPONENTS: [(&str, f64); 5] = [
    ("apiserver", 13.0),
    ("scheduler", 7.0),
    ("controller-manager", 8.0),
    ("kubelet", 8.0),
    ("kube-proxy", 7.5),
];

/// The flags of `idle-rss`.
#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    /// Seconds every component is left alone before the first reading
    /// (blocking threads, connection pools and first syncs settle).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    settle: u64,
    /// Readings, one a second, after the settling; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    readings: u64,
    /// A variant measured besides the default: `NAME:KEY=VALUE[,KEY=VALUE]`
    /// added to every component's environment (repeatable). Without any,
    /// the default set (one tokio worker; one malloc arena; mimalloc
    /// purging at once) is measured.
    #[arg(long = "variant")]
    variants: Vec<String>,
    /// Only the default (no variants).
    #[arg(long)]
    default_only: bool,
    /// Rounds over all variants (medians reported), at most 5.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    rounds: u64,
    /// Where the component binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// One configuration measured: its name and what it adds to the
/// environment.
#[derive(Clone, Debug)]
pub(crate) struct Variant {
    name: String,
    env: Vec<(String, String)>,
}

fn parse_variant(text: &str) -> Result<Variant> {
    let (name, pairs) = text
        .split_once(':')
        .with_context(|| format!("--variant {text:?}: expected NAME:KEY=VALUE[,KEY=VALUE]"))?;
    let env = pairs
        .split(',')
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--variant {text:?}: {pair:?} is not KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Variant {
        name: name.to_string(),
        env,
    })
}

impl Variant {
    /// The components as they ship: nothing added to their environment.
    pub(crate) fn default_set() -> Self {
        Self {
            name: "default".into(),
            env: Vec::new(),
        }
    }
}

fn variants(args: &IdleArgs) -> Result<Vec<Variant>> {
    let mut all = vec![Variant::default_set()];
    if args.default_only {
        return Ok(all);
    }
    let given: Vec<String> = if args.variants.is_empty() {
        [
            "1 tokio worker:TOKIO_WORKER_THREADS=1",
            "1 malloc arena:MALLOC_ARENA_MAX=1",
            "mimalloc purge at once:MIMALLOC_PURGE_DELAY=0",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args.variants.clone()
    };
    for text in &given {
        all.push(parse_variant(text)?);
    }
    Ok(all)
}

/// Checks the flags before anything starts.
pub fn validate(args: &IdleArgs) -> Result<()> {
    variants(args).map(|_| ())
}

/// Memory of one process, KiB, and its thread count.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    threads: u64,
}

fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |key| status_field_kib(&status, key).unwrap_or(0);
    Ok(Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:") + field("RssShmem:"),
        threads: field("Threads:"),
    })
}

/// Starts etcd once, then per round and variant every component, reads
/// their memory once they have settled, stops them; prints the table.
pub async fn idle_rss(args: &IdleArgs) -> Result<()> {
    let mut interrupts = Interrupts::catch()?;
    let variants = variants(args)?;
    let bin_dir = bin_dir(args.bin_dir.as_ref())?;
    let work = work_dir("idle")?;
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    eprintln!(
        "etcd {} (pid {}); logs in {}",
        etcd.client_url(),
        etcd.pid(),
        work.display()
    );
    let outcome = tokio::select! {
        outcome = measure_all(args, &variants, &bin_dir, &etcd, &work) => outcome,
        signal = interrupts.next() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    drop(etcd);
    let table = outcome?;
    print_table(args, &variants, &table);
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// `table[variant][component]`: one reading (median over the readings) per
/// round.
type Table = Vec<Vec<Vec<Memory>>>;

async fn measure_all(
    args: &IdleArgs,
    variants: &[Variant],
    bin_dir: &Path,
    etcd: &Etcd,
    work: &Path,
) -> Result<Table> {
    let mut table: Table = vec![vec![Vec::new(); COMPONENTS.len()]; variants.len()];
    for round in 1..=args.rounds {
        for (v, variant) in variants.iter().enumerate() {
            let mut components = Vec::new();
            let result = measure_one(
                &args.settle_args(),
                variant,
                bin_dir,
                etcd,
                work,
                &mut components,
                &mut |_| Ok(()),
            )
            .await;
            let stopped = stop_all(&mut components).await;
            let readings = result?;
            stopped?;
            eprintln!(
                "round {round}, {}: {}",
                variant.name,
                COMPONENTS
                    .iter()
                    .zip(&readings)
                    .map(|((name, _), m)| format!("{name} {:.1} MiB", mib(m.rss)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for (c, reading) in readings.into_iter().enumerate() {
                table[v][c].push(reading);
            }
        }
    }
    Ok(table)
}

/// How long a set is left alone, and how many readings follow.
pub(crate) struct Settle {
    pub seconds: u64,
    pub readings: u64,
}

impl IdleArgs {
    fn settle_args(&self) -> Settle {
        Settle {
            seconds: self.settle,
            readings: self.readings,
        }
    }
}

/// What `measure_one` calls once the set has settled, before the readings:
/// each component's name and process.
pub(crate) type OnSettled<'a> = dyn FnMut(&[(&str, u32)]) -> Result<()> + Send + 'a;

/// One set of components in `variant`'s environment; the median reading of
/// each (in [`COMPONENTS`] order).
pub(crate) async fn measure_one(
    args: &Settle,
    variant: &Variant,
    bin_dir: &Path,
    etcd: &Etcd,
    work: &Path,
    components: &mut Vec<Component>,
    on_settled: &mut OnSettled<'_>,
) -> Result<Vec<Memory>> {
    let env = &variant.env;
    for (name, _) in COMPONENTS {
        drop_from_page_cache(&bin_dir.join(name)).await?;
    }
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let apiserver_args = strings(&[
        "--etcd-servers",
        &etcd.client_url(),
        "--bind-address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    components.push(Component::spawn_with(
        "apiserver",
        bin_dir,
        &[],
        &apiserver_args,
        env,
        work,
    )?);
    wait_ready(&url).await?;
    let master = ["--master", url.as_str()];
    // Health ports on loopback port 0 (or none): other clusters on this
    // machine may hold the defaults.
    let scheduler = [&master[..], &["--healthz-bind-address", ""][..]].concat();
    components.push(Component::spawn_with(
        "scheduler",
        bin_dir,
        &[],
        &strings(&scheduler),
        env,
        work,
    )?);
    let cm = [&master[..], &["--healthz-bind-address", ""][..]].concat();
    components.push(Component::spawn_with(
        "controller-manager",
        bin_dir,
        &[],
        &strings(&cm),
        env,
        work,
    )?);
    let root = work.join("kubelet").display().to_string();
    let kubelet = [
        &master[..],
        &[
            "--runtime",
            "hollow",
            "--hostname-override",
            "idle-node",
            "--node-ip",
            "127.0.0.1",
            "--port",
            "0",
            "--healthz-port",
            "0",
            "--cpus",
            "4",
            "--memory-mib",
            "16384",
            "--root-dir",
            &root,
        ][..],
    ]
    .concat();
    components.push(Component::spawn_with(
        "kubelet",
        bin_dir,
        &[],
        &strings(&kubelet),
        env,
        work,
    )?);
    // kube-proxy writes iptables rules: in a network namespace of its own,
    // reaching the apiserver through a relay on that namespace's loopback.
    let netns = Netns::create("idle-proxy")?;
    let api = url.trim_start_matches("http://").parse()?;
    let relay = netns.relay_loopback(api).await?;
    let proxy = strings(&[
        "--master",
        &format!("http://127.0.0.1:{}", relay.port),
        "--hostname-override",
        "idle-node",
    ]);
    let wrapper = strings(&["nsenter", &format!("--net={}", netns.path().display())]);
    components.push(Component::spawn_with(
        "kube-proxy",
        bin_dir,
        &wrapper,
        &proxy,
        env,
        work,
    )?);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let mut settled = Vec::new();
    for ((name, _), component) in COMPONENTS.iter().zip(components.iter_mut()) {
        component.check_alive()?;
        settled.push((*name, component.pid()?));
    }
    on_settled(&settled)?;
    let mut readings: Vec<Vec<Memory>> = vec![Vec::new(); components.len()];
    for i in 0..args.readings {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for (c, component) in components.iter_mut().enumerate() {
            component.check_alive()?;
            readings[c].push(memory(component.pid()?)?);
        }
    }
    // The proxy is stopped (and its rules removed) before its namespace goes.
    if let Some(proxy) = components.pop() {
        proxy.stop().await?;
    }
    drop(relay);
    drop(netns);
    ensure!(readings.len() == COMPONENTS.len(), "a component is missing");
    Ok(readings.into_iter().map(median_memory).collect())
}

/// Drops `binary` from the page cache (`sync FILE`, then `dd iflag=nocache
/// count=0`: `posix_fadvise(DONTNEED)` over the whole file; dirty pages
/// would stay), so that every round reads the binary back as a first start
/// does, whatever wrote it last. A binary just built or copied sits in the
/// cache in large folios, which the kernel maps whole at a fault: the same
/// process then shows 1-2 MiB more file pages (hack/bench/README.md,
/// idle-rss, session 11). Pages another running process maps stay.
async fn drop_from_page_cache(binary: &Path) -> Result<()> {
    let mut input = std::ffi::OsString::from("if=");
    input.push(binary);
    let commands: [(&str, Vec<std::ffi::OsString>); 2] = [
        ("sync", vec![binary.into()]),
        (
            "dd",
            vec![
                input,
                "iflag=nocache".into(),
                "count=0".into(),
                "status=none".into(),
            ],
        ),
    ];
    for (program, args) in commands {
        let status = tokio::process::Command::new(program)
            .args(&args)
            .status()
            .await
            .with_context(|| format!("running {program} to drop a binary from the page cache"))?;
        ensure!(
            status.success(),
            "{program} {args:?} (dropping {} from the page cache): {status}",
            binary.display()
        );
    }
    Ok(())
}

/// The reading with the median VmRSS.
fn median_memory(mut readings: Vec<Memory>) -> Memory {
    readings.sort_by_key(|m| m.rss);
    readings
        .get(readings.len() / 2)
        .copied()
        .unwrap_or_default()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_table(args: &IdleArgs, variants: &[Variant], table: &Table) {
    println!(
        "idle-rss: each component idle on an empty cluster (one hollow kubelet), read after {} s; \
         median of {} readings{}; MiB",
        args.settle,
        args.readings,
        if args.rounds > 1 {
            format!(", then of {} rounds", args.rounds)
        } else {
            String::new()
        }
    );
    println!(
        "{:<24} {:<19} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}",
        "variant", "component", "VmRSS", "anon", "file", "threads", "v0.5", "ratio"
    );
    for (variant, rows) in variants.iter().zip(table) {
        for ((name, v05), rounds) in COMPONENTS.iter().zip(rows) {
            let m = median_memory(rounds.clone());
            println!(
                "{:<24} {:<19} {:>7.1} {:>7.1} {:>7.1} {:>7} {:>7.1} {:>6.2}",
                variant.name,
                name,
                mib(m.rss),
                mib(m.anon),
                mib(m.file),
                m.threads,
                v05,
                mib(m.rss) / v05
            );
        }
        let env = variant
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        if !env.is_empty() {
            println!("{:<24} ({env})", "");
        }
    }
    println!(
        "anon = RssAnon (heap, stacks); file = RssFile + RssShmem (the binary's pages read so far)"
    );
}
