//! The route controller: the `controller-manager` binary with
//! `--configure-routes`, run inside a network namespace this test makes
//! (`nsenter --net`), so the routes it programs land in that namespace's
//! table and never in the host's. It reaches the in-process apiserver
//! through a loopback relay into the namespace. Nodes are written through
//! the API as kubelets would; the test reads the namespace's routes with
//! `ip route show proto 109`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::netns::Netns;
use serde_json::json;

/// The route controller's protocol number (controller_manager::routes).
const PROTO: &str = "109";

/// Our routes in `netns`: destination → gateway.
fn routes(netns: &Netns) -> Result<BTreeMap<String, String>> {
    let out = netns.exec("ip", &["-4", "route", "show", "proto", PROTO])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let via = words.iter().position(|w| *w == "via")?;
            Some((words[0].to_string(), (*words.get(via + 1)?).to_string()))
        })
        .collect())
}

/// All routes of `netns`'s main table, as `ip route` prints them.
fn all_routes(netns: &Netns) -> Result<String> {
    let out = netns.exec("ip", &["-4", "route", "show"])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(d, g)| ((*d).to_string(), (*g).to_string()))
        .collect()
}

/// Polls until the namespace's routes of ours are `want` (60 s at most).
async fn wait_for_routes(netns: &Netns, want: &BTreeMap<String, String>) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let have = routes(netns)?;
        if &have == want {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "routes never became {want:?}; they are {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates node `name` with `pod_cidr` and an InternalIP `ip`.
async fn create_node(c: &TestCluster, name: &str, pod_cidr: &str, ip: &str) -> Result<()> {
    let (code, body) = c
        .post(
            "/api/v1/nodes",
            &json!({"metadata": {"name": name}, "spec": {"podCIDR": pod_cidr}}),
        )
        .await?;
    ensure!(code == 201, "creating node {name}: {code} {body}");
    set_address(c, name, ip).await
}

/// Sets node `name`'s addresses to InternalIP `ip` (as its kubelet does).
async fn set_address(c: &TestCluster, name: &str, ip: &str) -> Result<()> {
    let (code, body) = c
        .patch(
            &format!("/api/v1/nodes/{name}/status"),
            "application/merge-patch+json",
            &json!({"status": {"addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ]}}),
        )
        .await?;
    ensure!(code == 200, "setting node {name}'s address: {code} {body}");
    Ok(())
}

/// Whether this process may make network namespaces (root with `ip` and
/// `nsenter`); if not, says why.
fn can_make_namespaces() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false);
    if !root {
        println!("SKIPPED: making network namespaces needs root");
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_controller_keeps_a_route_per_node_and_removes_them_on_sigterm() -> Result<()> {
    if !can_make_namespaces() {
        return Ok(());
    }
    let cluster = TestCluster::start().await?;
    let router = Netns::create("router")?;
    // The nodes' network: gateways must be on a connected network for the
    // kernel to accept a route through them (a veth pair, both ends inside).
    router.ip(&[
        "link", "add", "nodes0", "type", "veth", "peer", "name", "nodes1",
    ])?;
    router.ip(&["addr", "add", "10.245.1.1/24", "dev", "nodes0"])?;
    router.ip(&["link", "set", "nodes0", "up"])?;
    router.ip(&["link", "set", "nodes1", "up"])?;
    // A route of ours left by a crashed run, and someone else's route.
    router.ip(&[
        "route",
        "add",
        "10.244.99.0/24",
        "via",
        "10.245.1.99",
        "proto",
        PROTO,
    ])?;
    router.ip(&["route", "add", "10.244.98.0/24", "via", "10.245.1.98"])?;

    create_node(&cluster, "n1", "10.244.1.0/24", "10.245.1.2").await?;
    create_node(&cluster, "n2", "10.244.2.0/24", "10.245.1.3").await?;
    // No pod CIDR: no route.
    let (code, _) = cluster
        .post("/api/v1/nodes", &json!({"metadata": {"name": "bare"}}))
        .await?;
    ensure!(code == 201);
    set_address(&cluster, "bare", "10.245.1.9").await?;

    let apiserver: SocketAddr = cluster
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("the apiserver's address")?;
    let relay = router.relay_loopback(apiserver).await?;
    let log = tempfile::Builder::new()
        .prefix(mini_k8s_tests::etcd::TEMP_PREFIX)
        .suffix(".log")
        .tempfile()?;
    let mut child = tokio::process::Command::from(
        router.command(mini_k8s_tests::binaries::path("controller-manager")?),
    )
    .args([
        "--master",
        &format!("http://127.0.0.1:{}", relay.port),
        "--configure-routes",
    ])
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log.reopen()?)
    .kill_on_drop(true)
    .spawn()
    .context("starting controller-manager in the namespace")?;
    let pid = child.id().context("controller-manager pid")?;

    let result = async {
        // The stale route is gone, the foreign one stays.
        wait_for_routes(
            &router,
            &expect(&[
                ("10.244.1.0/24", "10.245.1.2"),
                ("10.244.2.0/24", "10.245.1.3"),
            ]),
        )
        .await?;
        ensure!(all_routes(&router)?.contains("10.244.98.0/24 via 10.245.1.98"));

        // A node moving to another address, one deleted, one added.
        set_address(&cluster, "n2", "10.245.1.4").await?;
        let (code, _) = cluster.delete("/api/v1/nodes/n1").await?;
        ensure!(code == 200, "deleting n1: {code}");
        create_node(&cluster, "n3", "10.244.3.0/24", "10.245.1.5").await?;
        let moved = expect(&[
            ("10.244.2.0/24", "10.245.1.4"),
            ("10.244.3.0/24", "10.245.1.5"),
        ]);
        wait_for_routes(&router, &moved).await?;

        // A route deleted behind its back comes back (resync).
        router.ip(&["route", "del", "10.244.3.0/24"])?;
        wait_for_routes(&router, &moved).await?;

        // SIGTERM: every route of ours goes, the foreign one stays, exit 0.
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(killed.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .context("controller-manager did not exit within 30 s of SIGTERM")??;
        ensure!(status.success(), "controller-manager exited with {status}");
        ensure!(
            routes(&router)?.is_empty(),
            "left routes: {:?}",
            routes(&router)?
        );
        ensure!(all_routes(&router)?.contains("10.244.98.0/24 via 10.245.1.98"));
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = child.start_kill();
        eprintln!(
            "controller-manager log:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
    }
    result
}
