//! `patch-healthz`: how long `/healthz` takes to answer while large
//! strategic merge patches run (issue #19 item 2: within 100 ms while two
//! 465 KB patches run; 42 s of 44 stalled before).
//!
//! One run: etcd and an in-process apiserver on tokio's default
//! multi-threaded runtime (the harness's `TestCluster`), a replication
//! controller with `--env` variables in its template's container, then `--rounds` rounds of
//! `--patchers` concurrent strategic merge patches, each naming every
//! variable with a new value (kubectl's `$setElementOrder` too), while one
//! probe asks `/healthz` in a loop. Prints the patches' sizes and times,
//! and the latencies of the probes sent while a patch was in flight,
//! with the load average.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use clap::Parser;
use mini_k8s_bench::load_average;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Largest `--env`.
const MAX_ENV: usize = 20_000;
/// Largest `--rounds` and `--patchers`.
const MAX_ROUNDS: usize = 50;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// `/healthz` latency while large strategic merge patches run.
#[derive(Parser, Debug)]
struct Args {
    /// Environment variables in the pod (5,000 make a 465 KB patch).
    #[arg(long, default_value_t = 5000)]
    env: usize,
    /// Concurrent patches per round.
    #[arg(long, default_value_t = 2)]
    patchers: usize,
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.env > 0 && args.env <= MAX_ENV, "--env: 1..={MAX_ENV}");
    ensure!(
        (1..=MAX_ROUNDS).contains(&args.rounds) && (1..=MAX_ROUNDS).contains(&args.patchers),
        "--rounds and --patchers: 1..={MAX_ROUNDS}"
    );
    let cluster = TestCluster::start().await?;
    let outcome = run(&cluster, &args).await;
    cluster.apiserver.stop().await?;
    outcome
}

fn env(count: usize, value: &str) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"name": format!("VARIABLE_NUMBER_{i:05}"), "value": format!("{value}-{i:05}-0123456789abcdef0123456789abcdef0123456789")}))
        .collect()
}

async fn run(cluster: &TestCluster, args: &Args) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let base = cluster.url().to_string();
    // A replication controller: its template's env may change (a pod's
    // may not).
    let rc = json!({
        "metadata": {"name": "big"},
        "spec": {"replicas": 0, "selector": {"app": "big"}, "template": {
            "metadata": {"labels": {"app": "big"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "env": env(args.env, "first")}]},
        }},
    });
    let response = http
        .post(format!(
            "{base}/api/v1/namespaces/default/replicationcontrollers"
        ))
        .json(&rc)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "create: {}",
        response.status()
    );
    let in_flight = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let probe = {
        let (http, base, in_flight) = (http.clone(), base.clone(), in_flight.clone());
        let done = done.clone();
        tokio::spawn(async move {
            let mut during = Vec::new();
            loop {
                let start = Instant::now();
                let busy = in_flight.load(Ordering::SeqCst) > 0;
                let answered = http.get(format!("{base}/healthz")).send().await;
                let took = start.elapsed();
                if busy && answered.is_ok() {
                    during.push(took);
                }
                tokio::select! {
                    () = done.notified() => return during,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };
    let mut patch_times = Vec::new();
    let mut size = 0;
    for round in 0..args.rounds {
        let mut patchers = Vec::new();
        for patcher in 0..args.patchers {
            let order: Vec<Value> = (0..args.env)
                .map(|i| json!({"name": format!("VARIABLE_NUMBER_{i:05}")}))
                .collect();
            let body = serde_json::to_vec(&json!({"spec": {"template": {"spec": {"containers": [{
                "name": "c",
                "$setElementOrder/env": order,
                "env": env(args.env, &format!("r{round}p{patcher}")),
            }]}}}}))?;
            size = body.len();
            let (http, base, in_flight) = (http.clone(), base.clone(), in_flight.clone());
            patchers.push(tokio::spawn(async move {
                in_flight.fetch_add(1, Ordering::SeqCst);
                let start = Instant::now();
                let response = http
                    .patch(format!(
                        "{base}/api/v1/namespaces/default/replicationcontrollers/big"
                    ))
                    .header("content-type", "application/strategic-merge-patch+json")
                    .body(body)
                    .send()
                    .await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let response = response?;
                let status = response.status();
                response.bytes().await?;
                ensure!(status.is_success(), "patch: {status}");
                anyhow::Ok(start.elapsed())
            }));
        }
        for patcher in patchers {
            patch_times.push(patcher.await??);
        }
    }
    done.notify_one();
    let mut during = probe.await?;
    during.sort();
    patch_times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} rounds of {} concurrent strategic patches of {:.0} KB: p50 {:.0} ms, max {:.0} ms",
        args.rounds,
        args.patchers,
        size as f64 / 1024.0,
        ms(patch_times[patch_times.len() / 2]),
        ms(patch_times[patch_times.len() - 1]),
    );
    match during.last() {
        Some(max) => println!(
            "/healthz while patches ran: {} answers, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            during.len(),
            ms(during[during.len() / 2]),
            ms(during[(during.len() - 1) * 99 / 100]),
            ms(*max),
        ),
        None => println!("/healthz while patches ran: no answer came while one was in flight"),
    }
    println!("load average: {}", load_average());
    Ok(())
}
