//! kube-proxy as a real process in a node network namespace, in both modes,
//! against a real etcd and apiserver. Backends are listeners this test opens
//! inside pod namespaces on the node's bridge; they answer with their name
//! (TCP: the name, then an echo; UDP: `name:payload`). Clients connect from a
//! pod, from the node itself and from a machine outside the node. The
//! endpoints are written through the API as the endpoints controller would.
//!
//! Every namespace (with its rules) and process is removed on drop, and the
//! host's own iptables are never touched.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::netns::{Netns, Relay, Topology};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

const BACKEND_PORT: u16 = 8080;
const SERVICE_PORT: u16 = 80;
const HEALTHZ: &str = "127.0.0.1:10256";

/// A backend in a pod: stops listening when dropped.
struct Backend {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One test per proxy mode: `NAME::userspace` and `NAME::iptables`, each
/// running `body(mode)`.
macro_rules! in_both_modes {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn userspace() -> anyhow::Result<()> {
                super::$body("userspace").await
            }

            #[tokio::test]
            async fn iptables() -> anyhow::Result<()> {
                super::$body("iptables").await
            }
        }
    };
}

/// Starts a backend called `name` in `pod`: TCP on `BACKEND_PORT` and, if
/// asked, UDP on `udp`.
async fn backend(pod: &Netns, name: &str, udp: Option<u16>) -> Result<Backend> {
    let any = Ipv4Addr::UNSPECIFIED;
    let listener = pod
        .tcp_listen(SocketAddr::from((any, BACKEND_PORT)))
        .await?;
    let greeting = format!("{name}\n");
    let mut tasks = vec![tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let greeting = greeting.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                if write.write_all(greeting.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    })];
    if let Some(port) = udp {
        let socket = pod.udp_bind(SocketAddr::from((any, port))).await?;
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let reply = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                let _ = socket.send_to(reply.as_bytes(), from).await;
            }
        }));
    }
    Ok(Backend { tasks })
}

/// The kube-proxy process, killed on drop if still running.
struct Proxy {
    child: tokio::process::Child,
}

impl Proxy {
    fn start(env: &Env, mode: &str) -> Result<Self> {
        Self::start_with(env, mode, &[])
    }

    /// Starts kube-proxy with `extra` flags after the usual ones.
    fn start_with(env: &Env, mode: &str, extra: &[&str]) -> Result<Self> {
        let binary = mini_k8s_tests::binaries::path("kube-proxy")?;
        let child = tokio::process::Command::from(env.topology.node.command(binary))
            .args([
                "--master",
                &format!("http://127.0.0.1:{}", env.relay.port),
                "--proxy-mode",
                mode,
                "--healthz-bind-address",
                HEALTHZ,
                "--hostname-override",
                "node-1",
                "--iptables-sync-period",
                "2",
                "-v",
                "1",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting kube-proxy")?;
        Ok(Self { child })
    }

    fn pid(&self) -> Result<u32> {
        self.child.id().context("kube-proxy already exited")
    }

    async fn signal(&mut self, signal: &str) -> Result<ExitStatus> {
        let status = tokio::process::Command::new("kill")
            .args([signal, &self.pid()?.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill {signal} failed");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("kube-proxy did not exit within 30s")?
            .context("waiting for kube-proxy")
    }
}

/// A node with pods and an outside client, an API, and a relay that makes
/// the API reachable from inside the node (the proxy runs there).
struct Env {
    // Dropped first: the relay, then the namespaces, then the API.
    relay: Relay,
    topology: Topology,
    cluster: TestCluster,
}

impl Env {
    async fn start(pods: usize) -> Result<Self> {
        let cluster = TestCluster::start().await?;
        let topology = Topology::new(pods)?;
        let target: SocketAddr = cluster
            .url()
            .trim_start_matches("http://")
            .parse()
            .context("apiserver address")?;
        let relay = topology.node.relay_loopback(target).await?;
        Ok(Self {
            relay,
            topology,
            cluster,
        })
    }

    fn pod(&self, i: usize) -> &Netns {
        &self.topology.pods[i].netns
    }

    fn pod_ip(&self, i: usize) -> Ipv4Addr {
        self.topology.pods[i].ip
    }

    /// Creates service `name`; returns its portal IP.
    async fn service(&self, name: &str, spec: Value) -> Result<Ipv4Addr> {
        let mut spec = spec;
        if spec.get("ports").is_none() {
            spec["ports"] =
                json!([{"port": SERVICE_PORT, "targetPort": BACKEND_PORT, "protocol": "TCP"}]);
        }
        spec["selector"] = json!({"app": name});
        let (code, body) = self
            .cluster
            .post(
                "/api/v1/namespaces/default/services",
                &json!({"metadata": {"name": name}, "spec": spec}),
            )
            .await?;
        ensure!(code == 201, "creating service {name}: {code} {body}");
        body["spec"]["clusterIP"]
            .as_str()
            .context("service has no clusterIP")?
            .parse()
            .context("clusterIP")
    }

    /// Writes the endpoints of `name`: `pods` (by index) on `ports`
    /// (`(port, protocol)`), as the endpoints controller would.
    async fn endpoints(&self, name: &str, pods: &[usize], ports: &[(u16, &str)]) -> Result<()> {
        let addresses: Vec<Value> = pods
            .iter()
            .map(|&i| json!({"ip": self.pod_ip(i).to_string()}))
            .collect();
        let ports: Vec<Value> = ports
            .iter()
            .map(|(port, protocol)| json!({"port": port, "protocol": protocol}))
            .collect();
        let subsets = if addresses.is_empty() {
            json!([])
        } else {
            json!([{"addresses": addresses, "ports": ports}])
        };
        let object = json!({"metadata": {"name": name}, "subsets": subsets});
        let path = format!("/api/v1/namespaces/default/endpoints/{name}");
        let (code, body) = self.cluster.put(&path, &object).await?;
        if code == 404 {
            let (code, body) = self
                .cluster
                .post("/api/v1/namespaces/default/endpoints", &object)
                .await?;
            ensure!(code == 201, "creating endpoints {name}: {code} {body}");
        } else {
            ensure!(
                code == 200 || code == 201,
                "updating endpoints {name}: {code} {body}"
            );
        }
        Ok(())
    }
}

/// Connects from `from` to `to` and returns the backend's name.
async fn ask(from: &Netns, to: SocketAddr) -> Result<String> {
    let stream = from.tcp_connect(to).await?;
    let mut lines = BufReader::new(stream).lines();
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .with_context(|| format!("no answer from {to} within 5s"))??;
    line.with_context(|| format!("{to} closed without answering"))
}

/// Sends `payload` over UDP from `from` to `to` and returns the answer.
async fn ask_udp(from: &Netns, to: SocketAddr, payload: &str) -> Result<String> {
    let socket = from
        .udp_bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .await?;
    ask_udp_on(&socket, to, payload).await
}

async fn ask_udp_on(
    socket: &tokio::net::UdpSocket,
    to: SocketAddr,
    payload: &str,
) -> Result<String> {
    socket.send_to(payload.as_bytes(), to).await?;
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .with_context(|| format!("no udp answer from {to} within 2s"))??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Polls `check` every 100 ms until it returns true (60 s at most).
async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after 60s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Waits until `to` answers from `from` with one of `names`.
async fn wait_answers(from: &Netns, to: SocketAddr, names: &[&str]) -> Result<()> {
    wait_until(&format!("{to} to answer with one of {names:?}"), || async {
        ask(from, to)
            .await
            .is_ok_and(|name| names.contains(&name.as_str()))
    })
    .await
}

fn portal(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, SERVICE_PORT))
}

fn tally(names: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_insert(0) += 1;
    }
    counts
}

/// The proxy's rules (chains and jump rules) in `iptables-save` of `node`.
fn proxy_rules(node: &Netns) -> Result<Vec<String>> {
    Ok(node
        .iptables_save()?
        .lines()
        .filter(|l| l.contains("KUBE-") || l.contains("mini-k8s"))
        .map(String::from)
        .collect())
}

/// GET `path` on the proxy's healthz address inside the node.
async fn http_get(node: &Netns, path: &str) -> Result<String> {
    let mut stream = node.tcp_connect(HEALTHZ.parse()?).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: node\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
        .await
        .context("healthz server did not answer")??;
    Ok(text)
}

async fn three_backends(env: &Env) -> Result<Vec<Backend>> {
    let mut backends = Vec::new();
    for i in 0..3 {
        backends.push(backend(env.pod(i), &format!("pod{i}"), None).await?);
    }
    Ok(backends)
}

/// Service `web` over three backends (pods 0 to 2) and a proxy in `mode`,
/// once pod 3 hears all three through the portal: the backends, the
/// service's IP, the proxy.
async fn web_over_three_backends(env: &Env, mode: &str) -> Result<(Vec<Backend>, Ipv4Addr, Proxy)> {
    let backends = three_backends(env).await?;
    let ip = env.service("web", json!({})).await?;
    env.endpoints("web", &[0, 1, 2], &[(BACKEND_PORT, "TCP")])
        .await?;
    let proxy = Proxy::start(env, mode)?;
    wait_answers(env.pod(3), portal(ip), &["pod0", "pod1", "pod2"]).await?;
    Ok((backends, ip, proxy))
}

// ---------------------------------------------------------------------------

/// Three backends: connections from a pod are spread evenly (userspace:
/// round robin, counts within one; iptables: random, each backend gets a
/// fair share); the node itself reaches the portal too; a portal port
/// nothing serves is refused by the node.
async fn spread(mode: &str) -> Result<()> {
    let env = Env::start(4).await?;
    let (_backends, ip, _proxy) = web_over_three_backends(&env, mode).await?;
    let client = env.pod(3);

    let connections = if mode == "userspace" { 30 } else { 300 };
    let mut names = Vec::new();
    for _ in 0..connections {
        names.push(ask(client, portal(ip)).await?);
    }
    let counts = tally(&names);
    assert_eq!(counts.len(), 3, "every backend is used: {counts:?}");
    let (min, max) = (
        *counts.values().min().unwrap(),
        *counts.values().max().unwrap(),
    );
    if mode == "userspace" {
        assert!(max - min <= 1, "round robin within one: {counts:?}");
    } else {
        // Expected 100 each (binomial, sd 8.2): below 60 is a 5-sigma event.
        assert!(min >= 60, "each backend near a third: {counts:?}");
    }

    let from_node = ask(&env.topology.node, portal(ip)).await?;
    assert!(from_node.starts_with("pod"), "from the node: {from_node}");
    let unserved = SocketAddr::from((ip, SERVICE_PORT + 1));
    let refused = env.topology.node.tcp_connect(unserved).await;
    assert!(refused.is_err(), "a port no service has is refused");

    let health = http_get(&env.topology.node, "/healthz").await?;
    assert!(
        health.starts_with("HTTP/1.0 200") && health.ends_with("ok"),
        "{health}"
    );
    let metrics = http_get(&env.topology.node, "/metrics").await?;
    assert!(
        metrics.contains("kube_proxy_syncs_total{result=\"written\"}"),
        "{metrics}"
    );
    // Userspace counts as it forwards; iptables mode reads its DNAT rules'
    // counters every sync period (2 s here).
    let node = &env.topology.node;
    wait_until(
        "the connection metric to count every connection",
        || async {
            http_get(node, "/metrics").await.is_ok_and(|text| {
                text.lines()
                    .find(|l| {
                        l.starts_with("kube_proxy_connections_total{service=\"default/web\"}")
                    })
                    .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .is_some_and(|count| count >= connections)
            })
        },
    )
    .await?;
    Ok(())
}

in_both_modes!(three_backends_share_connections, spread);

/// `sessionAffinity: ClientIP` keeps each client on one backend. The proxy
/// binds the node's address, as the cluster scripts run it
/// (`--bind-address`: userspace listeners there, portal rules DNAT to it).
async fn affinity(mode: &str) -> Result<()> {
    let env = Env::start(4).await?;
    let _backends = three_backends(&env).await?;
    let ip = env
        .service(
            "sticky",
            json!({"sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}),
        )
        .await?;
    env.endpoints("sticky", &[0, 1, 2], &[(BACKEND_PORT, "TCP")])
        .await?;
    let node_ip = Topology::NODE_IP.to_string();
    let _proxy = Proxy::start_with(&env, mode, &["--bind-address", &node_ip])?;
    let client = env.pod(3);
    wait_answers(client, portal(ip), &["pod0", "pod1", "pod2"]).await?;
    for from in [client, &env.topology.node] {
        let mut names = Vec::new();
        for _ in 0..20 {
            names.push(ask(from, portal(ip)).await?);
        }
        let counts = tally(&names);
        assert_eq!(counts.len(), 1, "one backend per client: {counts:?}");
    }
    Ok(())
}

in_both_modes!(client_ip_affinity_sticks, affinity);

/// A UDP service answers, from a pod and from the node; one client socket
/// keeps talking to the same backend (userspace: until its association
/// idles out).
async fn udp(mode: &str) -> Result<()> {
    let env = Env::start(3).await?;
    let _a = backend(env.pod(0), "pod0", Some(5353)).await?;
    let _b = backend(env.pod(1), "pod1", Some(5353)).await?;
    let ip = env
        .service(
            "dns",
            json!({"ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
        )
        .await?;
    env.endpoints("dns", &[0, 1], &[(5353, "UDP")]).await?;
    let _proxy = Proxy::start_with(&env, mode, &["--udp-idle-timeout", "1"])?;
    let to = SocketAddr::from((ip, 53));
    let client = env.pod(2);
    wait_until("the udp service to answer", || async {
        ask_udp(client, to, "ping").await.is_ok()
    })
    .await?;
    let socket = client
        .udp_bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .await?;
    let first = ask_udp_on(&socket, to, "one").await?;
    let (name, payload) = first.split_once(':').context("answer is name:payload")?;
    assert_eq!(payload, "one");
    assert!(name == "pod0" || name == "pod1", "{first}");
    for i in 0..5 {
        let again = ask_udp_on(&socket, to, &format!("more{i}")).await?;
        assert_eq!(
            again,
            format!("{name}:more{i}"),
            "same association, same backend"
        );
    }
    if mode == "userspace" {
        // Once the association has idled out (1 s), the same client socket
        // gets a new one, on the next endpoint in turn.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = ask_udp_on(&socket, to, "after").await?;
        assert_ne!(
            after.split_once(':').map(|(n, _)| n),
            Some(name),
            "a new association after the idle timeout: {after}"
        );
    }
    let from_node = ask_udp(&env.topology.node, to, "node").await?;
    assert!(from_node.ends_with(":node"), "{from_node}");
    Ok(())
}

in_both_modes!(udp_service_answers, udp);

/// A backend goes away while a client keeps connecting: no connection
/// fails. Userspace: the backend stops first (its pod refuses) and the
/// proxy tries the next endpoint; then the endpoint is removed. iptables:
/// the kernel cannot retry, so (as when a pod is deleted: endpoints first)
/// the endpoint is removed, the rules follow, then the backend stops.
async fn backend_removed(mode: &str) -> Result<()> {
    let env = Env::start(4).await?;
    let (mut backends, ip, _proxy) = web_over_three_backends(&env, mode).await?;
    let client = env.pod(3);

    let mut names = Vec::new();
    for _ in 0..15 {
        names.push(ask(client, portal(ip)).await?);
    }
    assert!(
        names.iter().any(|n| n == "pod1"),
        "pod1 served before: {names:?}"
    );
    let removed = env.pod_ip(1).to_string();
    let pod1 = SocketAddr::from((env.pod_ip(1), BACKEND_PORT));
    let refuses = || async { env.topology.node.tcp_connect(pod1).await.is_err() };
    if mode == "userspace" {
        drop(backends.remove(1));
        // Aborting the backend task closes its listener a moment later.
        wait_until("pod1 to refuse connections", refuses).await?;
        for _ in 0..30 {
            names.push(
                ask(client, portal(ip))
                    .await
                    .context("a connection failed while pod1 refused")?,
            );
        }
        env.endpoints("web", &[0, 2], &[(BACKEND_PORT, "TCP")])
            .await?;
    } else {
        env.endpoints("web", &[0, 2], &[(BACKEND_PORT, "TCP")])
            .await?;
        for _ in 0..30 {
            names.push(
                ask(client, portal(ip))
                    .await
                    .context("a connection failed while endpoints changed")?,
            );
        }
        let node = &env.topology.node;
        wait_until("the rules to drop pod1", || async {
            node.iptables_save().is_ok_and(|s| !s.contains(&removed))
        })
        .await?;
        drop(backends.remove(1));
        wait_until("pod1 to refuse connections", refuses).await?;
    }
    let after_start = names.len();
    for _ in 0..30 {
        names.push(
            ask(client, portal(ip))
                .await
                .context("a connection failed after pod1 left")?,
        );
    }
    assert!(
        names[after_start..].iter().all(|n| n != "pod1"),
        "pod1 is gone: {names:?}"
    );
    Ok(())
}

in_both_modes!(removed_backend_costs_no_failed_connection, backend_removed);

/// A connection made before the endpoints change keeps working after it,
/// even though its backend is no longer an endpoint.
async fn established(mode: &str) -> Result<()> {
    let env = Env::start(3).await?;
    let _a = backend(env.pod(0), "pod0", None).await?;
    let _b = backend(env.pod(1), "pod1", None).await?;
    let ip = env.service("web", json!({})).await?;
    env.endpoints("web", &[0], &[(BACKEND_PORT, "TCP")]).await?;
    let _proxy = Proxy::start(&env, mode)?;
    let client = env.pod(2);
    wait_answers(client, portal(ip), &["pod0"]).await?;

    let stream = client.tcp_connect(portal(ip)).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    assert_eq!(lines.next_line().await?.as_deref(), Some("pod0"));

    env.endpoints("web", &[1], &[(BACKEND_PORT, "TCP")]).await?;
    wait_answers(client, portal(ip), &["pod1"]).await?;
    for i in 0..3 {
        write
            .write_all(format!("still there {i}\n").as_bytes())
            .await?;
        let echo = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .context("the old connection went silent")??;
        assert_eq!(echo, Some(format!("still there {i}")));
    }
    Ok(())
}

in_both_modes!(
    established_connection_survives_endpoints_update,
    established
);

/// A publicIP that is the node's address reaches the service from outside
/// the node (and from a pod); one that is not this node's gets no rule.
async fn public_ip(mode: &str) -> Result<()> {
    let env = Env::start(3).await?;
    let _a = backend(env.pod(0), "pod0", None).await?;
    let _b = backend(env.pod(1), "pod1", None).await?;
    let _ip = env
        .service(
            "public",
            json!({"externalIPs": [Topology::NODE_IP.to_string(), "10.245.1.50"]}),
        )
        .await?;
    env.endpoints("public", &[0, 1], &[(BACKEND_PORT, "TCP")])
        .await?;
    let _proxy = Proxy::start(&env, mode)?;
    let public = portal(Topology::NODE_IP);
    wait_answers(&env.topology.client, public, &["pod0", "pod1"]).await?;
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(ask(&env.topology.client, public).await?);
    }
    assert!(
        names.iter().all(|n| n == "pod0" || n == "pod1"),
        "{names:?}"
    );
    let from_pod = ask(env.pod(2), public).await?;
    assert!(from_pod.starts_with("pod"), "{from_pod}");
    let rules = proxy_rules(&env.topology.node)?.join("\n");
    assert!(rules.contains("10.245.1.2/32"), "{rules}");
    assert!(
        !rules.contains("10.245.1.50"),
        "not this node's address: {rules}"
    );
    Ok(())
}

in_both_modes!(public_ips_reach_the_service, public_ip);

/// SIGTERM: the proxy exits 0 and no rule or chain of it remains.
async fn sigterm(mode: &str) -> Result<()> {
    let env = Env::start(2).await?;
    let _a = backend(env.pod(0), "pod0", Some(5353)).await?;
    let ip = env
        .service(
            "web",
            json!({"ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": BACKEND_PORT},
                             {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
        )
        .await?;
    let object = json!({"metadata": {"name": "web"}, "subsets": [{
        "addresses": [{"ip": env.pod_ip(0).to_string()}],
        "ports": [{"name": "http", "port": BACKEND_PORT}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}]});
    let (code, body) = env
        .cluster
        .post("/api/v1/namespaces/default/endpoints", &object)
        .await?;
    ensure!(code == 201, "{code} {body}");
    let mut proxy = Proxy::start(&env, mode)?;
    wait_answers(env.pod(1), portal(ip), &["pod0"]).await?;
    let answer = ask_udp(env.pod(1), SocketAddr::from((ip, 53)), "x").await?;
    assert_eq!(answer, "pod0:x");
    assert!(!proxy_rules(&env.topology.node)?.is_empty());

    let status = proxy.signal("-TERM").await?;
    assert!(status.success(), "kube-proxy exit: {status}");
    let left = proxy_rules(&env.topology.node)?;
    assert!(left.is_empty(), "rules left after SIGTERM: {left:#?}");
    assert!(
        env.pod(1).tcp_connect(portal(ip)).await.is_err(),
        "the portal no longer answers"
    );
    Ok(())
}

in_both_modes!(sigterm_removes_every_rule, sigterm);

/// A crashed userspace proxy's rules are replaced by the next proxy (here
/// in iptables mode), and `--cleanup` removes a crashed proxy's rules.
#[tokio::test]
async fn restart_replaces_stale_rules_and_cleanup_removes_them() -> Result<()> {
    let env = Env::start(2).await?;
    let _a = backend(env.pod(0), "pod0", None).await?;
    let ip = env.service("web", json!({})).await?;
    env.endpoints("web", &[0], &[(BACKEND_PORT, "TCP")]).await?;
    let node = &env.topology.node;

    let mut crashed = Proxy::start(&env, "userspace")?;
    wait_answers(env.pod(1), portal(ip), &["pod0"]).await?;
    crashed.signal("-KILL").await?;
    let stale = proxy_rules(node)?;
    assert!(
        stale.iter().any(|l| l.contains("KUBE-PORTALS-CONTAINER")),
        "{stale:#?}"
    );
    assert!(
        env.pod(1).tcp_connect(portal(ip)).await.is_err(),
        "stale rules lead nowhere"
    );

    let mut next = Proxy::start(&env, "iptables")?;
    wait_answers(env.pod(1), portal(ip), &["pod0"]).await?;
    let rules = proxy_rules(node)?;
    assert!(
        !rules.iter().any(|l| l.contains("PORTALS")),
        "stale chains replaced: {rules:#?}"
    );
    let jumps = rules
        .iter()
        .filter(|l| l.contains("mini-k8s kube-proxy"))
        .count();
    assert_eq!(
        jumps, 3,
        "one jump each from PREROUTING, OUTPUT, POSTROUTING: {rules:#?}"
    );
    next.signal("-KILL").await?;
    assert!(!proxy_rules(node)?.is_empty());

    let binary = mini_k8s_tests::binaries::path("kube-proxy")?;
    for _ in 0..2 {
        let status = node.command(&binary).arg("--cleanup").status()?;
        assert!(status.success(), "--cleanup exit: {status}");
        let left = proxy_rules(node)?;
        assert!(left.is_empty(), "rules left after --cleanup: {left:#?}");
    }
    Ok(())
}

/// Userspace mode: deleting a service closes its listener.
#[tokio::test]
async fn removed_service_closes_its_listener_userspace() -> Result<()> {
    let env = Env::start(2).await?;
    let _a = backend(env.pod(0), "pod0", None).await?;
    let ip = env.service("web", json!({})).await?;
    env.endpoints("web", &[0], &[(BACKEND_PORT, "TCP")]).await?;
    let _proxy = Proxy::start(&env, "userspace")?;
    wait_answers(env.pod(1), portal(ip), &["pod0"]).await?;
    let node = &env.topology.node;
    let listeners = || -> Result<usize> {
        let out = node.exec("ss", &["-Hltn"])?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().count())
    };
    // healthz, the API relay, the bootstrap `kubernetes` service and web.
    let before = listeners()?;
    assert_eq!(before, 4);
    let (code, body) = env
        .cluster
        .delete("/api/v1/namespaces/default/services/web")
        .await?;
    ensure!(code == 200, "{code} {body}");
    wait_until("the listener to close", || async {
        listeners().is_ok_and(|n| n == before - 1)
    })
    .await?;
    assert!(env.pod(1).tcp_connect(portal(ip)).await.is_err());
    Ok(())
}

/// A pod reaches itself through its own service (hairpin). iptables mode
/// masquerades it (the endpoint's own source; otherwise the pod would
/// answer itself directly and drop the reply), and the bridge must be able
/// to send the frame back out the port it came in on: with br_netfilter
/// the DNATed packet may be bridged rather than routed, so the pod's bridge
/// port needs `hairpin on` (Docker sets it on its veths with
/// `--userland-proxy=false`; without it this test fails now and then).
/// Userspace mode needs neither: the proxy connects from the node.
async fn hairpin(mode: &str) -> Result<()> {
    let env = Env::start(1).await?;
    let _a = backend(env.pod(0), "pod0", None).await?;
    if mode == "iptables" {
        env.topology.node.ip(&[
            "link",
            "set",
            "vp0",
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ])?;
    }
    let ip = env.service("web", json!({})).await?;
    env.endpoints("web", &[0], &[(BACKEND_PORT, "TCP")]).await?;
    let _proxy = Proxy::start(&env, mode)?;
    wait_answers(env.pod(0), portal(ip), &["pod0"]).await
}

in_both_modes!(pod_reaches_itself_through_its_service, hairpin);

/// Userspace mode forwards at most `--userspace-max-connections` at once:
/// one more is closed at once and counted, and once a forwarded connection
/// ends the next one is forwarded again.
#[tokio::test]
async fn userspace_connections_beyond_the_cap_are_closed_and_counted() -> Result<()> {
    let env = Env::start(2).await?;
    let _a = backend(env.pod(0), "pod0", None).await?;
    let ip = env.service("web", json!({})).await?;
    env.endpoints("web", &[0], &[(BACKEND_PORT, "TCP")]).await?;
    let _proxy = Proxy::start_with(&env, "userspace", &["--userspace-max-connections", "2"])?;
    let client = env.pod(1);
    wait_answers(client, portal(ip), &["pod0"]).await?;

    // The connections the wait made end on their own: until they have, a
    // new one may still be refused.
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while held.len() < 2 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} of 2 connections forwarded within 60s",
            held.len()
        );
        let Ok(stream) = client.tcp_connect(portal(ip)).await else {
            continue;
        };
        let mut lines = BufReader::new(stream).lines();
        let greeting = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        if matches!(greeting, Ok(Ok(Some(ref name))) if name == "pod0") {
            held.push(lines);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let refused = ask(client, portal(ip)).await;
    ensure!(
        refused.is_err(),
        "a third connection was forwarded: {refused:?}"
    );
    let metrics = http_get(&env.topology.node, "/metrics").await?;
    let counted = metrics
        .lines()
        .find(|l| l.contains("reason=\"too_many_connections\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    ensure!(
        counted.is_some_and(|n| n >= 1),
        "the refusal is not counted: {metrics}"
    );

    // The held connections still work, and closing one makes room.
    let (mut first, second) = (held.remove(0), held.remove(0));
    drop(second);
    let _ = first.get_mut().get_mut().write_all(b"still here\n").await;
    let echo = tokio::time::timeout(Duration::from_secs(5), first.next_line()).await??;
    ensure!(echo.as_deref() == Some("still here"), "echo: {echo:?}");
    wait_answers(client, portal(ip), &["pod0"]).await?;
    Ok(())
}
