//! `list-latency`: how long the apiserver takes to answer lists of many
//! pods (issue #19 item 1: `GET /api/v1/pods` with 30,000 pods, 200 and
//! complete, p50 under 500 ms; the watch from now and delete-collection
//! working at that size).
//!
//! One run: etcd and an in-process apiserver (the test harness's
//! `TestCluster`), `--pods` pods written straight into etcd as the
//! apiserver stores them (one pod is created through the API first and its
//! stored value used as the template, so the rest costs no admission), then
//! each list asked `--requests` times in turn, timed from the request to
//! the last byte of the answer, and the answer checked complete. Last, the
//! watch from now (every pod `ADDED` first) and a delete-collection, once
//! each. Prints p50 / p90 / max per list with the load average; everything
//! started is stopped at the end.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use etcd_client::{Txn, TxnOp};
use futures::StreamExt;
use mini_k8s_bench::load_average;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Largest `--pods`.
const MAX_PODS: usize = 60_000;
/// Largest `--requests`.
const MAX_REQUESTS: usize = 100;
/// Pods written per etcd transaction.
const PUTS_PER_TXN: usize = 100;
/// Transactions in flight at once.
const WRITERS: usize = 8;
/// How long one list, watch or delete may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// List latency with many pods stored.
#[derive(Parser, Debug)]
struct Args {
    /// Pods stored (at most 60000).
    #[arg(long, default_value_t = 30_000)]
    pods: usize,
    /// Times each list is asked (at most 100).
    #[arg(long, default_value_t = 11)]
    requests: usize,
    /// Bytes of annotation added to every pod (a pod is about 1.5 KB
    /// without it).
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// Skip the watch from now and the delete-collection.
    #[arg(long)]
    lists_only: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.pods > 0 && args.pods <= MAX_PODS,
        "--pods: 1..={MAX_PODS}"
    );
    ensure!(
        args.requests > 0 && args.requests <= MAX_REQUESTS,
        "--requests: 1..={MAX_REQUESTS}"
    );
    let cluster = TestCluster::start().await?;
    let outcome = run(&cluster, &args).await;
    cluster.apiserver.stop().await?;
    outcome
}

async fn run(cluster: &TestCluster, args: &Args) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let base = cluster.url().to_string();
    let started = Instant::now();
    store_pods(cluster, &http, &base, args).await?;
    println!(
        "stored {} pods in {:.1} s (straight into etcd)",
        args.pods,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<48} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "list", "items", "MB", "p50 ms", "p90 ms", "max ms"
    );
    let lists = [
        "/api/v1/pods",
        "/api/v1/namespaces/default/pods",
        "/api/v1/pods?resourceVersion=0",
        "/api/v1/pods?labelSelector=app%3Dnone",
    ];
    for (round, list) in lists.iter().enumerate() {
        let mut times = Vec::with_capacity(args.requests);
        let (mut items, mut bytes) = (0, 0);
        for _ in 0..args.requests {
            let start = Instant::now();
            let response = http.get(format!("{base}{list}")).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            times.push(start.elapsed());
            ensure!(status.is_success(), "{list}: {status}: {}", preview(&body));
            let value: Value = serde_json::from_slice(&body)?;
            items = value["items"].as_array().map_or(0, Vec::len);
            bytes = body.len();
        }
        let expected = if round == 3 { 0 } else { args.pods };
        ensure!(items == expected, "{list}: {items} items, not {expected}");
        times.sort();
        let at = |q: f64| {
            let index = ((times.len() - 1) as f64 * q).round() as usize;
            times[index].as_secs_f64() * 1000.0
        };
        println!(
            "{list:<48} {items:>8} {:>10.1} {:>9.0} {:>9.0} {:>9.0}",
            bytes as f64 / 1e6,
            at(0.5),
            at(0.9),
            at(1.0)
        );
    }
    println!("load average: {}", load_average());
    if args.lists_only {
        return Ok(());
    }
    let start = Instant::now();
    let response = http
        .get(format!("{base}/api/v1/pods?watch=true&timeoutSeconds=60"))
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "watch: {}",
        response.status()
    );
    let mut response = response;
    let (mut added, mut buffer) = (0, Vec::new());
    while added < args.pods {
        let chunk = response.chunk().await?.context("the watch ended early")?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line)?;
            ensure!(event["type"] == "ADDED", "watch: {}", preview(&line));
            added += 1;
        }
    }
    println!(
        "watch from now: {added} ADDED in {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    drop(response);
    let start = Instant::now();
    let response = http
        .delete(format!("{base}/api/v1/namespaces/default/pods"))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    ensure!(
        status.is_success(),
        "delete-collection: {status}: {}",
        preview(&body)
    );
    let left = http
        .get(format!("{base}/api/v1/namespaces/default/pods?limit=1"))
        .send()
        .await?
        .json::<Value>()
        .await?;
    ensure!(
        left["items"].as_array().is_some_and(Vec::is_empty),
        "pods left after delete-collection"
    );
    println!(
        "delete-collection of {} pods: {:.1} s",
        args.pods,
        start.elapsed().as_secs_f64()
    );
    println!("load average: {}", load_average());
    Ok(())
}

/// Creates one pod through the API, then writes the others into etcd as
/// copies of its stored value under other names and uids.
async fn store_pods(
    cluster: &TestCluster,
    http: &reqwest::Client,
    base: &str,
    args: &Args,
) -> Result<()> {
    let pod = json!({
        "metadata": {"name": "p0", "labels": {"app": "list-latency"},
                     "annotations": {"pad": "x".repeat(args.pad)}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 "resources": {"requests": {"cpu": "1m"}}}]},
    });
    let response = http
        .post(format!("{base}/api/v1/namespaces/default/pods"))
        .json(&pod)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "create: {}",
        response.status()
    );
    let mut client = cluster.etcd.client().await?;
    let stored = client
        .get("/registry/pods/default/p0", None)
        .await?
        .kvs()
        .first()
        .map(|kv| kv.value().to_vec())
        .context("the created pod is not in etcd")?;
    let template: Value = serde_json::from_slice(&stored)?;
    let value_of = |i: usize| -> Result<Vec<u8>> {
        let mut pod = template.clone();
        pod["metadata"]["name"] = json!(format!("p{i}"));
        pod["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{i:012}"));
        Ok(serde_json::to_vec(&pod)?)
    };
    let batches: Vec<Vec<usize>> = (1..args.pods)
        .collect::<Vec<_>>()
        .chunks(PUTS_PER_TXN)
        .map(<[usize]>::to_vec)
        .collect();
    let writes = futures::stream::iter(batches.into_iter().map(|batch| {
        let mut client = client.clone();
        async move {
            let ops = batch
                .iter()
                .map(|&i| {
                    Ok(TxnOp::put(
                        format!("/registry/pods/default/p{i}"),
                        value_of(i)?,
                        None,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            client.txn(Txn::new().and_then(ops)).await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(WRITERS)
    .collect::<Vec<_>>()
    .await;
    writes.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(())
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}
