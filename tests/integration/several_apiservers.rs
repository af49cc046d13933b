//! Several apiservers on one etcd: portal IPs allocated through the shared
//! record (`/registry/ranges/serviceips`), never one IP twice; leaked
//! allocations repaired; the `kubernetes` endpoints listing exactly the
//! live apiservers.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use apiserver::Config;
use mini_k8s_tests::apiserver::TestApiServer;
use mini_k8s_tests::etcd::Etcd;
use serde_json::{json, Value};

fn service(name: &str, cluster_ip: Option<&str>) -> Value {
    let mut spec = json!({ "ports": [{ "port": 80 }] });
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    json!({ "metadata": { "name": name }, "spec": spec })
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    body: &Value,
    query: &str,
) -> Result<(u16, Value)> {
    let response = http
        .post(format!("{base}/api/v1/namespaces/default/services{query}"))
        .json(body)
        .send()
        .await?;
    let code = response.status().as_u16();
    Ok((code, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apiservers_never_hand_out_one_service_ip() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let a = TestApiServer::start(Config::with_etcd(etcd.endpoints())).await?;
    let b = TestApiServer::start(Config::with_etcd(etcd.endpoints())).await?;
    let http = reqwest::Client::new();
    // Four concurrent clients per apiserver, 15 services each: 120 creates
    // racing for the lowest free IPs of one /24 through two processes'
    // allocators (one apiserver's lock cannot serialise the other's).
    let mut tasks = Vec::new();
    for (server, url) in [("a", a.url()), ("b", b.url())] {
        for client in 0..4 {
            let (http, url) = (http.clone(), url.to_string());
            tasks.push(tokio::spawn(async move {
                let mut ips = Vec::new();
                for i in 0..15 {
                    let name = format!("s-{server}-{client}-{i}");
                    let (code, body) = create(&http, &url, &service(&name, None), "").await?;
                    if code != 201 {
                        bail!("create {name}: {code} {body}");
                    }
                    let ip = body["spec"]["clusterIP"].as_str().context("no clusterIP")?;
                    ips.push(ip.to_string());
                }
                Ok(ips)
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "an IP was handed out twice: {all:?}"
    );
    // And as stored, the kubernetes service included.
    let list: Value = http
        .get(format!("{}/api/v1/services", a.url()))
        .send()
        .await?
        .json()
        .await?;
    let stored: Vec<&str> = list["items"]
        .as_array()
        .context("no items")?
        .iter()
        .filter_map(|s| s["spec"]["clusterIP"].as_str())
        .collect();
    let distinct: BTreeSet<&&str> = stored.iter().collect();
    assert_eq!(stored.len(), 121, "{stored:?}");
    assert_eq!(
        distinct.len(),
        stored.len(),
        "stored services share an IP: {stored:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_service_frees_its_ip_and_a_dry_run_takes_none() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let server = TestApiServer::start(Config::with_etcd(etcd.endpoints())).await?;
    let (http, base) = (reqwest::Client::new(), server.url());
    let (code, _) = create(&http, base, &service("one", Some("10.0.0.50")), "").await?;
    assert_eq!(code, 201);
    let (code, body) = create(&http, base, &service("two", Some("10.0.0.50")), "").await?;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("provided IP is already allocated"),
        "{body}"
    );
    assert_eq!(
        body["details"]["causes"][0]["field"], "spec.clusterIP",
        "{body}"
    );
    // A dry run answers with the IP but keeps nothing.
    let (code, body) = create(
        &http,
        base,
        &service("two", Some("10.0.0.51")),
        "?dryRun=All",
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    let (code, body) = create(&http, base, &service("two", Some("10.0.0.51")), "").await?;
    assert_eq!(code, 201, "{body}");
    // A create that fails after allocating (the name exists) gives it back.
    let (code, _) = create(&http, base, &service("two", Some("10.0.0.52")), "").await?;
    assert_eq!(code, 409);
    let (code, body) = create(&http, base, &service("three", Some("10.0.0.52")), "").await?;
    assert_eq!(code, 201, "the failed create kept its IP: {body}");
    let deleted = http
        .delete(format!("{base}/api/v1/namespaces/default/services/one"))
        .send()
        .await?;
    assert_eq!(deleted.status().as_u16(), 200);
    let (code, body) = create(&http, base, &service("four", Some("10.0.0.50")), "").await?;
    assert_eq!(code, 201, "the deleted service's IP was not freed: {body}");
    // Turning ExternalName frees the IP once stored.
    let patched = http
        .patch(format!("{base}/api/v1/namespaces/default/services/four"))
        .header("content-type", "application/merge-patch+json")
        .json(&json!({ "spec": { "type": "ExternalName", "externalName": "db.example" } }))
        .send()
        .await?;
    assert_eq!(patched.status().as_u16(), 200, "{}", patched.text().await?);
    let (code, body) = create(&http, base, &service("five", Some("10.0.0.50")), "").await?;
    assert_eq!(code, 201, "ExternalName kept its IP: {body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repair_pass_frees_leaked_ips_and_marks_unrecorded_ones() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let mut config = Config::with_etcd(etcd.endpoints());
    config.service_cluster_ip_repair_interval = Duration::from_millis(500);
    let server = TestApiServer::start(config).await?;
    let (http, base) = (reqwest::Client::new(), server.url());
    let (code, created) = create(&http, base, &service("leaky", Some("10.0.0.60")), "").await?;
    assert_eq!(code, 201, "{created}");
    let mut client = etcd.client().await?;
    let key = "/registry/services/specs/default/leaky";
    let stored = client.get(key, None).await?;
    let value = stored
        .kvs()
        .first()
        .context("service not in etcd")?
        .value()
        .to_vec();
    // As if an apiserver died between allocating and storing a service:
    // the record holds .60 and no service does.
    client.delete(key, None).await?;
    let (code, body) = create(&http, base, &service("early", Some("10.0.0.60")), "").await?;
    assert_eq!(
        code, 422,
        "a leaked IP must stay taken until repaired: {body}"
    );
    // And a service stored without its IP in the record (a cluster older
    // than the record): the repair marks it.
    let unrecorded = String::from_utf8(value)?
        .replace("\"leaky\"", "\"unrecorded\"")
        .replace("10.0.0.60", "10.0.0.61");
    client
        .put(
            "/registry/services/specs/default/unrecorded",
            unrecorded,
            None,
        )
        .await?;
    // Three passes see the leak before it is freed (about 1.5 s here).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = create(&http, base, &service("late", Some("10.0.0.60")), "").await?;
        if code == 201 {
            break;
        }
        assert_eq!(code, 422, "{body}");
        if tokio::time::Instant::now() > deadline {
            bail!("the leaked IP was never freed: {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, body) = create(&http, base, &service("clash", Some("10.0.0.61")), "").await?;
    assert_eq!(
        code, 422,
        "the repair did not mark a stored service's IP: {body}"
    );
    Ok(())
}

/// An apiserver process: killed with SIGKILL on drop.
struct ApiserverProcess {
    child: tokio::process::Child,
    url: String,
}

impl ApiserverProcess {
    async fn start(etcd: &Etcd, advertise: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(mini_k8s_tests::binaries::path("apiserver")?)
            .args([
                "--etcd-servers",
                &etcd.client_url(),
                "--port",
                &port.to_string(),
            ])
            // Only written into the kubernetes endpoints (TEST-NET-1, never
            // routed); nothing in this test connects to it.
            .args(["--advertise-address", advertise])
            .args([
                "--endpoint-reconcile-interval",
                "500ms",
                "--endpoint-lease-ttl",
                "2s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the apiserver binary")?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if tokio::time::Instant::now() > deadline {
                bail!("the apiserver advertising {advertise} never became ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { child, url })
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.id().context("already exited")?;
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }
}

async fn endpoint_addresses(http: &reqwest::Client, base: &str) -> Result<Vec<String>> {
    let endpoints: Value = http
        .get(format!(
            "{base}/api/v1/namespaces/default/endpoints/kubernetes"
        ))
        .send()
        .await?
        .json()
        .await?;
    let mut ips: Vec<String> = endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    Ok(ips)
}

async fn wait_for_addresses(http: &reqwest::Client, base: &str, wanted: &[&str]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = endpoint_addresses(http, base).await?;
        if now == wanted {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the kubernetes endpoints list {now:?}, not {wanted:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_endpoints_list_every_live_apiserver() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let one = ApiserverProcess::start(&etcd, "192.0.2.1").await?;
    let two = ApiserverProcess::start(&etcd, "192.0.2.2").await?;
    let three = ApiserverProcess::start(&etcd, "192.0.2.3").await?;
    let http = reqwest::Client::new();
    wait_for_addresses(&http, &one.url, &["192.0.2.1", "192.0.2.2", "192.0.2.3"]).await?;

    // Renewals go to etcd leases, not the history: an idle cluster's
    // revision stays still across several renewals.
    let before = etcd.revision().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        etcd.revision().await?,
        before,
        "renewing the endpoints wrote to etcd"
    );

    // Killed: its record outlives it by the lease TTL, then goes.
    three.signal("KILL")?;
    wait_for_addresses(&http, &one.url, &["192.0.2.1", "192.0.2.2"]).await?;
    // Stopped: it takes itself out on the way.
    two.signal("TERM")?;
    wait_for_addresses(&http, &one.url, &["192.0.2.1"]).await?;
    drop(one);
    Ok(())
}
