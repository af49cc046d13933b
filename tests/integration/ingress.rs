//! The `ingress-proxy` binary in a node network namespace against an
//! in-process apiserver, with HTTP backends in pod namespaces on the node's
//! bridge, written into Endpoints as the endpoints controller would, and
//! requests from a machine outside the node: host and path routing, Exact vs Prefix, the default backend,
//! 404/503 bodies, X-Forwarded-*, bodies streamed, an Ingress changed while
//! a long request is in flight, the status address, SIGTERM. Then the
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_proxy_routes_by_host_and_path_and_follows_changes() -> Result<()> {
    let c = TestCluster::start().await?;
    let topology = Topology::new(4)?;
    let api: SocketAddr = c
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("apiserver address")?;
    let relay: Relay = topology.node.relay_loopback(api).await?;
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
    let binary = mini_k8s_tests::binaries::path("ingress-proxy")?;
    let mut proxy = tokio::process::Command::from(topology.node.command(binary))
        .args([
            "--master",
            &format!("http://127.0.0.1:{}", relay.port),
            "--bind-address",
            &format!("{node_ip}:{PROXY_PORT}"),
            "--healthz-bind-address",
            "127.0.0.1:10254",
            "-v",
            "2",
        ])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log.reopen()?)
        .stderr(log.reopen()?)
        .kill_on_drop(true)
        .spawn()
        .context("starting ingress-proxy")?;
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
        let text = log_text();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        eprintln!(
            "ingress-proxy log (last lines):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
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
