//! The `ingress-proxy` binary in a node network namespace against an
//! in-process apiserver, with HTTP backends in pod namespaces on the node's
//! bridge, written into Endpoints as the endpoints controller would, and
//! requests from a machine outside the node: host and path routing, Exact vs Prefix, the default backend,
//! 404/503 bodies, X-Forwarded-*, bodies streamed, an Ingress changed while
//! a long request is in flight, the status address, SIGTERM; HTTPS with the
//! certificate chosen by SNI from `spec.tls[]` Secrets, following their
//! changes; WebSocket upgrades passed through and closed when idle. Then the
//! Ingress API through stock kubectl and `ctl`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::netns::{Netns, Relay, Topology};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::kubectl::kubectl_cluster;

/// An HTTP backend in a pod answering `NAME METHOD PATH`, then the
/// headers a proxy sets, then the size of the body it received. `/slow`
/// sends `start`, then waits for `release` before sending `done`.
struct Backend {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend(pod: &Netns, name: &'static str, release: Arc<Notify>) -> Result<Backend> {
    let listener = pod
        .tcp_listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, BACKEND_PORT)))
        .await?;
    let app = axum::Router::new().fallback(move |request: Request| {
        let release = release.clone();
        async move {
            let (parts, body) = request.into_parts();
            if parts.uri.path() == "/slow" {
                let stream = futures::stream::unfold(0u8, move |step| {
                    let release = release.clone();
                    async move {
                        match step {
                            0 => Some((Ok::<_, std::io::Error>(format!("{name} start\n")), 1)),
                            1 => {
                                release.notified().await;
                                Some((Ok("done\n".to_string()), 2))
                            }
                            _ => None,
                        }
                    }
                });
                return (StatusCode::OK, Body::from_stream(stream));
            }
            let received = axum::body::to_bytes(body, usize::MAX)
                .await
                .map(|b| b.len())
                .unwrap_or_default();
            let header = |h: &str| {
                parts
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            let text = format!(
                "{name} {} {}\nhost: {}\nx-forwarded-for: {}\nx-forwarded-host: {}\nx-forwarded-proto: {}\nx-forwarded-port: {}\nbody: {received}\n",
                parts.method,
                parts.uri,
                header("host"),
                header("x-forwarded-for"),
                header("x-forwarded-host"),
                header("x-forwarded-proto"),
                header("x-forwarded-port"),
            );
            (StatusCode::OK, Body::from(text))
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Backend { task })
}

const BACKEND_PORT: u16 = 8080;
const PROXY_PORT: u16 = 80;
const HTTPS_PORT: u16 = 443;

/// A loopback port of this process whose connections are relayed to
/// `target` from inside `from` (the outside machine): the test's HTTP
/// client reaches the node as that machine would. Stops when dropped.
struct Outside {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `target` from the namespace at `path`, on a fresh thread
/// that ends afterwards (as `Netns::tcp_connect`), so no other code runs
/// in the namespace.
async fn connect_from(
    path: std::path::PathBuf,
    target: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let connected = (|| -> std::io::Result<std::net::TcpStream> {
            let ns = std::fs::File::open(&path)?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(std::io::Error::from)?;
            let stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            stream.set_nonblocking(true)?;
            Ok(stream)
        })();
        let _ = tx.send(connected);
    });
    let stream = rx.await.map_err(std::io::Error::other)??;
    tokio::net::TcpStream::from_std(stream)
}

async fn outside(from: &Netns, target: SocketAddr) -> Result<Outside> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let path = from.path();
    let task = tokio::spawn(async move {
        while let Ok((mut here, _)) = listener.accept().await {
            let path = path.clone();
            tokio::spawn(async move {
                if let Ok(mut there) = connect_from(path, target).await {
                    let _ = tokio::io::copy_bidirectional(&mut here, &mut there).await;
                }
            });
        }
    });
    Ok(Outside { addr, task })
}

async fn create(c: &TestCluster, path: &str, body: Value) -> Result<Value> {
    let (code, body) = c.post(path, &body).await?;
    ensure!(code == 201, "POST {path}: {code} {body}");
    Ok(body)
}

/// A service `name` (port 80, named `http`) and its Endpoints: one ready
/// address `ip:8080`, or (`ready` false) that address not ready.
async fn service(c: &TestCluster, name: &str, ip: Ipv4Addr, ready: bool) -> Result<()> {
    create(
        c,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": name}, "spec": {"selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
    .await?;
    let key = if ready {
        "addresses"
    } else {
        "notReadyAddresses"
    };
    let subset = json!({key: [{"ip": ip.to_string()}],
        "ports": [{"name": "http", "port": BACKEND_PORT}]});
    create(
        c,
        "/api/v1/namespaces/default/endpoints",
        json!({"metadata": {"name": name}, "subsets": [subset]}),
    )
    .await?;
    Ok(())
}

fn rule_path(path: &str, kind: &str, service: &str) -> Value {
    json!({"path": path, "pathType": kind,
        "backend": {"service": {"name": service, "port": {"name": "http"}}}})
}

/// The Ingress under test; `a.example` `/` goes to `root`.
fn web_ingress(root: &str, default_backend: bool) -> Value {
    let mut spec = json!({"rules": [
        {"host": "a.example", "http": {"paths": [
            rule_path("/", "Prefix", root),
            rule_path("/b", "Prefix", "b"),
            rule_path("/exact", "Exact", "b"),
        ]}},
        {"host": "*.wild.example", "http": {"paths": [rule_path("/", "Prefix", "b")]}},
        {"host": "empty.example", "http": {"paths": [rule_path("/", "Prefix", "empty")]}},
    ]});
    if default_backend {
        spec["defaultBackend"] = json!({"service": {"name": "fallback", "port": {"number": 80}}});
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

/// The ingress-proxy binary in the node's namespace on the node's ports 80
/// and 443, its log in `log`.
fn start_proxy(
    topology: &Topology,
    relay: &Relay,
    log: &tempfile::NamedTempFile,
    extra: &[&str],
) -> Result<tokio::process::Child> {
    let node_ip = Topology::NODE_IP;
    let binary = mini_k8s_tests::binaries::path("ingress-proxy")?;
    tokio::process::Command::from(topology.node.command(binary))
        .args([
            "--master",
            &format!("http://127.0.0.1:{}", relay.port),
            "--bind-address",
            &format!("{node_ip}:{PROXY_PORT}"),
            "--https-bind-address",
            &format!("{node_ip}:{HTTPS_PORT}"),
            "--healthz-bind-address",
            "127.0.0.1:10254",
            "-v",
            "2",
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log.reopen()?)
        .stderr(log.reopen()?)
        .kill_on_drop(true)
        .spawn()
        .context("starting ingress-proxy")
}

/// The last lines of the proxy's log, printed when a test fails.
fn print_log(log: &tempfile::NamedTempFile) {
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(60).collect();
    eprintln!(
        "ingress-proxy log (last lines):\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

struct Client {
    http: reqwest::Client,
    proxy: SocketAddr,
}

impl Client {
    async fn get(&self, host: &str, path: &str) -> Result<(u16, String)> {
        let response = self
            .http
            .get(format!("http://{}{path}", self.proxy))
            .header("host", host)
            .send()
            .await
            .with_context(|| format!("GET {host}{path}"))?;
        let code = response.status().as_u16();
        Ok((code, response.text().await?))
    }

    /// Polls until `host` `path` answers `code` with a body starting with
    /// `prefix` (20 s at most).
    async fn wait_for(&self, host: &str, path: &str, code: u16, prefix: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let last = self.get(host, path).await;
            if let Ok((got, body)) = &last {
                if *got == code && body.starts_with(prefix) {
                    return Ok(());
                }
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{host}{path} never answered {code} {prefix:?}; last {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An apiserver, a node with `pods` pods and an outside machine, and the
/// apiserver relayed onto the node's loopback (where the proxy's
/// `--master` points).
async fn cluster_and_node(pods: usize) -> Result<(TestCluster, Topology, Relay)> {
    let c = TestCluster::start().await?;
    let topology = Topology::new(pods)?;
    let api: SocketAddr = c
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("apiserver address")?;
    let relay = topology.node.relay_loopback(api).await?;
    Ok((c, topology, relay))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_proxy_routes_by_host_and_path_and_follows_changes() -> Result<()> {
    let (c, topology, relay) = cluster_and_node(4).await?;
    let release = Arc::new(Notify::new());
    let pod = |i: usize| &topology.pods[i];
    let _a = backend(&pod(0).netns, "A", release.clone()).await?;
    let _b = backend(&pod(1).netns, "B", release.clone()).await?;
    let _fallback = backend(&pod(2).netns, "FALLBACK", release.clone()).await?;
    service(&c, "a", pod(0).ip, true).await?;
    service(&c, "b", pod(1).ip, true).await?;
    service(&c, "fallback", pod(2).ip, true).await?;
    service(&c, "empty", pod(3).ip, false).await?;
    create(
        &c,
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        web_ingress("a", true),
    )
    .await?;
    // Another class's Ingress is not ours to serve.
    create(
        &c,
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        json!({"metadata": {"name": "theirs"}, "spec": {"ingressClassName": "other",
            "rules": [{"host": "theirs.example", "http": {"paths": [rule_path("/", "Prefix", "a")]}}]}}),
    )
    .await?;

    let node_ip = Topology::NODE_IP;
    let client_ip = Topology::CLIENT_IP;
    let log = tempfile::NamedTempFile::new()?;
    let mut proxy = start_proxy(&topology, &relay, &log, &[])?;
    let outside = outside(&topology.client, SocketAddr::from((node_ip, PROXY_PORT))).await?;
    let proxy_addr = outside.addr;
    let client = Client {
        http: reqwest::Client::builder().no_proxy().build()?,
        proxy: proxy_addr,
    };
    let log_text = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let result = async {
        client.wait_for("a.example", "/", 200, "A GET /\n").await?;
        let readyz = topology
            .node
            .tcp_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, 10254)))
            .await;
        let mut readyz = readyz.context("nothing on the node's 127.0.0.1:10254")?;
        readyz
            .write_all(b"GET /readyz?verbose HTTP/1.0\r\n\r\n")
            .await?;
        let mut answer = String::new();
        readyz.read_to_string(&mut answer).await?;
        ensure!(
            answer.starts_with("HTTP/1.0 200") && answer.contains("[+]informer-sync ok"),
            "readyz: {answer}"
        );

        // Host and path, Prefix by path elements, Exact.
        for (host, path, want) in [
            ("a.example", "/", "A GET /\n"),
            ("A.Example:80", "/x?q=1", "A GET /x?q=1\n"),
            ("a.example", "/b", "B GET /b\n"),
            ("a.example", "/b/c", "B GET /b/c\n"),
            ("a.example", "/bc", "A GET /bc\n"),
            ("a.example", "/exact", "B GET /exact\n"),
            ("a.example", "/exact/", "A GET /exact/\n"),
            ("x.wild.example", "/", "B GET /\n"),
            ("y.x.wild.example", "/", "FALLBACK GET /\n"),
            ("other.example", "/any", "FALLBACK GET /any\n"),
            ("theirs.example", "/", "FALLBACK GET /\n"),
        ] {
            let (code, body) = client.get(host, path).await?;
            ensure!(
                code == 200 && body.starts_with(want),
                "{host}{path}: {code} {body}"
            );
        }

        // X-Forwarded-* and the client's Host.
        let (_, body) = client.get("a.example", "/headers").await?;
        for line in [
            "host: a.example\n",
            &format!("x-forwarded-for: {client_ip}\n"),
            "x-forwarded-host: a.example\n",
            "x-forwarded-proto: http\n",
            &format!("x-forwarded-port: {PROXY_PORT}\n"),
        ] {
            ensure!(body.contains(line), "no {line:?} in {body}");
        }
        // An earlier hop's X-Forwarded-For is kept, ours appended.
        let body = client
            .http
            .get(format!("http://{proxy_addr}/"))
            .header("host", "a.example")
            .header("x-forwarded-for", "192.0.2.1")
            .send()
            .await?
            .text()
            .await?;
        ensure!(
            body.contains(&format!("x-forwarded-for: 192.0.2.1, {client_ip}\n")),
            "{body}"
        );

        // A request body streams through.
        let big = vec![b'x'; 3 << 20];
        let body = client
            .http
            .post(format!("http://{proxy_addr}/upload"))
            .header("host", "a.example")
            .body(big)
            .send()
            .await?
            .text()
            .await?;
        ensure!(body.contains(&format!("body: {}\n", 3 << 20)), "{body}");

        // No ready endpoints: 503 saying so.
        let (code, body) = client.get("empty.example", "/").await?;
        ensure!(
            code == 503 && body.contains("service default/empty has no ready endpoints"),
            "{code} {body}"
        );

        // The status names this node's address.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, ing) = c
                .get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/web")
                .await?;
            if ing["status"]["loadBalancer"]["ingress"][0]["ip"] == node_ip.to_string().as_str() {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "status never published: {ing}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, theirs) = c
            .get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/theirs")
            .await?;
        ensure!(
            theirs["status"]["loadBalancer"]["ingress"].is_null(),
            "another class's status was written: {theirs}"
        );

        // A long request in flight while the Ingress changes completes.
        let slow = client
            .http
            .get(format!("http://{proxy_addr}/slow"))
            .header("host", "a.example")
            .send()
            .await?;
        let mut slow = slow;
        let first = slow.chunk().await?.context("no first chunk")?;
        ensure!(first.as_ref() == b"A start\n", "{first:?}");
        let (code, mut ing) = c
            .get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/web")
            .await?;
        ensure!(code == 200, "{ing}");
        ing["spec"] = web_ingress("b", false)["spec"].clone();
        let (code, body) = c
            .put(
                "/apis/networking.k8s.io/v1/namespaces/default/ingresses/web",
                &ing,
            )
            .await?;
        ensure!(code == 200, "PUT: {code} {body}");
        client.wait_for("a.example", "/", 200, "B GET /\n").await?;
        release.notify_waiters();
        let rest = tokio::time::timeout(Duration::from_secs(10), slow.chunk())
            .await
            .context("the slow request never finished")??;
        ensure!(rest.as_deref() == Some(b"done\n".as_slice()), "{rest:?}");

        // Without a default backend, no match is a 404 that says why.
        let (code, body) = client.get("other.example", "/any").await?;
        ensure!(
            code == 404 && body.contains("no Ingress rule matches host \"other.example\""),
            "{code} {body}"
        );

        // An endpoint change is followed: b's endpoints gone → 503.
        let (code, body) = c.delete("/api/v1/namespaces/default/endpoints/b").await?;
        ensure!(code == 200, "{body}");
        client
            .wait_for(
                "a.example",
                "/",
                503,
                "503 Service Unavailable: service default/b has no ready endpoints",
            )
            .await?;

        // SIGTERM: a clean exit.
        let pid = proxy.id().context("ingress-proxy already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let exit = tokio::time::timeout(Duration::from_secs(15), proxy.wait())
            .await
            .context("ingress-proxy still runs 15 s after SIGTERM")??;
        ensure!(exit.success(), "ingress-proxy exited {exit}");
        ensure!(
            log_text().contains("ingress-proxy stopped"),
            "no clean stop in the log"
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        print_log(&log);
    }
    result
}

/// A Secret of type `kubernetes.io/tls` holding `issued`.
fn tls_secret(name: &str, issued: &ctl::pki::Issued) -> Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&issued.cert_pem), "tls.key": b64(&issued.key_pem)}})
}

/// A serving certificate for `host` from `ca`.
fn serving(ca: &ctl::pki::Ca, host: &str) -> Result<ctl::pki::Issued> {
    Ok(ca.issue(&ctl::pki::Leaf {
        common_name: host.to_string(),
        dns_names: vec![host.to_string()],
        server: true,
        ..Default::default()
    })?)
}

fn der_of(pem: &str) -> Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject as _;
    Ok(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())?.to_vec())
}

/// An HTTPS GET from the outside machine to the node's port 443 with SNI
/// and Host `host`, trusting only `ca_pem`: the certificate the proxy
/// served and the answer (status line to body).
async fn https_get(
    from: &Netns,
    ca_pem: &str,
    host: &str,
    path: &str,
) -> Result<(Vec<u8>, String)> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(
        ca_pem.as_bytes(),
    )?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect_from(
        from.path(),
        SocketAddr::from((Topology::NODE_IP, HTTPS_PORT)),
    )
    .await?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .context("TLS handshake timed out")?
        .with_context(|| format!("TLS handshake for {host}"))?;
    let served = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate")?
        .to_vec();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    // The proxy may close without a TLS close_notify once the body is sent.
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    Ok((served, String::from_utf8_lossy(&answer).into_owned()))
}

/// Polls until an HTTPS GET of `host` is served the certificate `want`
/// (20 s at most); returns the answer.
async fn wait_for_cert(from: &Netns, ca_pem: &str, host: &str, want: &[u8]) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let last = https_get(from, ca_pem, host, "/headers").await;
        if let Ok((served, answer)) = &last {
            if served == want {
                return Ok(answer.clone());
            }
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{host} never served the expected certificate; last {:?}",
            last.map(|(_, a)| a)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_proxy_serves_tls_from_secrets_by_sni() -> Result<()> {
    let (c, topology, relay) = cluster_and_node(2).await?;
    let release = Arc::new(Notify::new());
    let _a = backend(&topology.pods[0].netns, "A", release.clone()).await?;
    let _b = backend(&topology.pods[1].netns, "B", release.clone()).await?;
    service(&c, "a", topology.pods[0].ip, true).await?;
    service(&c, "b", topology.pods[1].ip, true).await?;
    let ca = ctl::pki::Ca::new("ingress-test-ca")?;
    let a_v1 = serving(&ca, "a.example")?;
    let a_v2 = serving(&ca, "a.example")?;
    let b_cert = serving(&ca, "b.example")?;
    create(
        &c,
        "/api/v1/namespaces/default/secrets",
        tls_secret("tls-a", &a_v1),
    )
    .await?;
    let rule = |host: &str, svc: &str| json!({"host": host, "http": {"paths": [rule_path("/", "Prefix", svc)]}});
    create(
        &c,
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        json!({"metadata": {"name": "secure"}, "spec": {
            "tls": [{"hosts": ["a.example"], "secretName": "tls-a"},
                    {"hosts": ["b.example"], "secretName": "tls-b"}],
            "rules": [rule("a.example", "a"), rule("b.example", "b"), rule("plain.example", "a")]}}),
    )
    .await?;
    let log = tempfile::NamedTempFile::new()?;
    let _proxy = start_proxy(&topology, &relay, &log, &[])?;
    let outside = outside(
        &topology.client,
        SocketAddr::from((Topology::NODE_IP, PROXY_PORT)),
    )
    .await?;
    let client = Client {
        http: reqwest::Client::builder().no_proxy().build()?,
        proxy: outside.addr,
    };
    let from = &topology.client;
    let result = async {
        // The certificate of a.example's Secret, by SNI, and the backend
        // told it came over HTTPS on 443.
        let answer = wait_for_cert(from, &ca.pem, "a.example", &der_of(&a_v1.cert_pem)?).await?;
        ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        for line in [
            "A GET /headers\n",
            "host: a.example\n",
            &format!("x-forwarded-for: {}\n", Topology::CLIENT_IP),
            "x-forwarded-proto: https\n",
            &format!("x-forwarded-port: {HTTPS_PORT}\n"),
        ] {
            ensure!(answer.contains(line), "no {line:?} in {answer}");
        }
        // Plain HTTP is unchanged for every host.
        client.wait_for("a.example", "/", 200, "A GET /\n").await?;
        client
            .wait_for("plain.example", "/", 200, "A GET /\n")
            .await?;
        // A host without TLS, and one whose Secret is missing: no
        // certificate to offer, the handshake fails.
        for host in ["plain.example", "b.example"] {
            let refused = https_get(from, &ca.pem, host, "/").await;
            ensure!(refused.is_err(), "{host} was served over TLS: {refused:?}");
        }
        // The Secret changes: the new certificate, no restart.
        let (code, mut secret) = c.get("/api/v1/namespaces/default/secrets/tls-a").await?;
        ensure!(code == 200, "{secret}");
        secret["data"] = tls_secret("tls-a", &a_v2)["data"].clone();
        let (code, body) = c
            .put("/api/v1/namespaces/default/secrets/tls-a", &secret)
            .await?;
        ensure!(code == 200, "PUT: {code} {body}");
        wait_for_cert(from, &ca.pem, "a.example", &der_of(&a_v2.cert_pem)?).await?;
        // The missing Secret appears: b.example is served, by B.
        create(
            &c,
            "/api/v1/namespaces/default/secrets",
            tls_secret("tls-b", &b_cert),
        )
        .await?;
        let answer = wait_for_cert(from, &ca.pem, "b.example", &der_of(&b_cert.cert_pem)?).await?;
        ensure!(answer.contains("B GET /headers\n"), "{answer}");
        // The missing Secret was logged once, though the certificates were
        // rebuilt after each change since.
        let text = std::fs::read_to_string(log.path())?;
        let missing = text.matches("secret default/tls-b not found").count();
        ensure!(missing == 1, "logged {missing} times:\n{text}");
        Ok(())
    }
    .await;
    if result.is_err() {
        print_log(&log);
    }
    result
}

/// A WebSocket server in a pod: first sends `BACKEND host=<Host>
/// proto=<X-Forwarded-Proto>`, then echoes each message with `echo: `
/// before text.
async fn ws_backend(pod: &Netns) -> Result<Backend> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let listener = pod
        .tcp_listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, BACKEND_PORT)))
        .await?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let seen = Arc::new(std::sync::Mutex::new(String::new()));
                let record = seen.clone();
                // tungstenite's Callback trait fixes the error type (an
                // HTTP response), large or not.
                #[allow(clippy::result_large_err)]
                let callback =
                    move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          response| {
                        let header = |h: &str| {
                            request
                                .headers()
                                .get(h)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string()
                        };
                        *record.lock().unwrap() = format!(
                            "BACKEND host={} proto={}",
                            header("host"),
                            header("x-forwarded-proto")
                        );
                        Ok(response)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let hello = seen.lock().unwrap().clone();
                if ws.send(Message::text(hello)).await.is_err() {
                    return;
                }
                while let Some(Ok(message)) = ws.next().await {
                    let reply = match message {
                        Message::Text(text) => Message::text(format!("echo: {}", text.as_str())),
                        Message::Binary(bytes) => Message::Binary(bytes),
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(Backend { task })
}

/// The next WebSocket message (10 s at most).
async fn next_message(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Result<tokio_tungstenite::tungstenite::Message> {
    use futures::StreamExt as _;
    let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("no message within 10 s")?;
    Ok(next.context("closed")??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_proxy_passes_websocket_upgrades_and_closes_them_when_idle() -> Result<()> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (c, topology, relay) = cluster_and_node(1).await?;
    let _ws = ws_backend(&topology.pods[0].netns).await?;
    service(&c, "ws", topology.pods[0].ip, true).await?;
    create(
        &c,
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        json!({"metadata": {"name": "ws"}, "spec": {"rules": [{"host": "ws.example",
            "http": {"paths": [rule_path("/", "Prefix", "ws")]}}]}}),
    )
    .await?;
    let log = tempfile::NamedTempFile::new()?;
    let _proxy = start_proxy(&topology, &relay, &log, &["--upgrade-idle-timeout", "2"])?;
    let node = SocketAddr::from((Topology::NODE_IP, PROXY_PORT));
    let result = async {
        // Until the proxy routes ws.example (a 404 or no listener before).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ws = loop {
            let tried = async {
                let tcp = connect_from(topology.client.path(), node).await?;
                anyhow::Ok(tokio_tungstenite::client_async("ws://ws.example/chat", tcp).await?)
            }
            .await;
            match tried {
                Ok((ws, response)) => {
                    ensure!(response.status() == 101, "{response:?}");
                    break ws;
                }
                Err(e) => ensure!(
                    tokio::time::Instant::now() < deadline,
                    "the upgrade never went through: {e:#}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let hello = next_message(&mut ws).await?;
        ensure!(
            hello == Message::text("BACKEND host=ws.example proto=http"),
            "{hello:?}"
        );
        ws.send(Message::text("hi")).await?;
        let echo = next_message(&mut ws).await?;
        ensure!(echo == Message::text("echo: hi"), "{echo:?}");
        // Both ways at once, more than a socket buffer.
        let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).await?;
        let back = next_message(&mut ws).await?;
        ensure!(
            back.into_data().as_ref() == big.as_slice(),
            "binary echo differs"
        );
        // Silent past --upgrade-idle-timeout: the proxy closes it.
        let ended = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .context("the idle WebSocket was never closed")?;
        ensure!(
            matches!(ended, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
            "{ended:?}"
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        print_log(&log);
    }
    result
}

const INGRESS_YAML: &str = r"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  ingressClassName: mini-k8s
  rules:
  - host: a.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: a
            port:
              number: 80
  - host: b.example
    http:
      paths:
      - path: /b
        pathType: Exact
        backend:
          service:
            name: b
            port:
              name: http
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_through_stock_kubectl_and_ctl() -> Result<()> {
    let Some((c, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let file = dir.path().join("ingress.yaml");
    std::fs::write(&file, INGRESS_YAML)?;
    let file = file.to_string_lossy().to_string();
    let out = kubectl.ok(&["apply", "-f", &file]).await?;
    ensure!(
        out.contains("ingress.networking.k8s.io/web created"),
        "{out}"
    );
    let out = kubectl.ok(&["apply", "-f", &file]).await?;
    ensure!(
        out.contains("ingress.networking.k8s.io/web unchanged"),
        "{out}"
    );
    let out = kubectl.ok(&["get", "ing"]).await?;
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines
        .first()
        .context("no header")?
        .split_whitespace()
        .collect();
    ensure!(
        header == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = lines.get(1).context("no row")?.split_whitespace().collect();
    ensure!(
        row[..4] == ["web", "mini-k8s", "a.example,b.example", "80"],
        "{out}"
    );
    let out = kubectl
        .ok(&[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.spec.rules[1].http.paths[0].pathType}",
        ])
        .await?;
    ensure!(out == "Exact", "{out}");

    // kubectl's typed create sends protobuf.
    let out = kubectl
        .ok(&[
            "create",
            "ingress",
            "typed",
            "--rule=c.example/x*=c:80",
            "--class=mini-k8s",
        ])
        .await?;
    ensure!(
        out.contains("ingress.networking.k8s.io/typed created"),
        "{out}"
    );
    let out = kubectl
        .ok(&[
            "get",
            "ing",
            "typed",
            "-o",
            "jsonpath={.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].path}",
        ])
        .await?;
    ensure!(out == "Prefix /x", "{out}");

    // Kubernetes' validation, with field paths.
    let bad = INGRESS_YAML
        .replace("name: web", "name: bad")
        .replace("        pathType: Exact\n", "")
        .replace("path: /\n", "path: relative\n");
    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(&bad_file, bad)?;
    let err = kubectl
        .fails(&["apply", "-f", &bad_file.to_string_lossy()])
        .await?;
    ensure!(
        err.contains("spec.rules[0].http.paths[0].path: Invalid value: \"relative\": must be an absolute path")
            && err.contains("spec.rules[1].http.paths[0].pathType: Required value: pathType must be specified"),
        "{err}"
    );

    // ctl: the short name and the same columns.
    let out = tokio::process::Command::new(mini_k8s_tests::binaries::path("ctl")?)
        .args(["--server", c.url(), "get", "ing"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "ctl get ing: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        text.starts_with("NAME") && text.contains("HOSTS") && text.contains("a.example,b.example"),
        "{text}"
    );
    Ok(())
}
