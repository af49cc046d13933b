//! Connections: a client that sends nothing, half a header or half a body,
//! or that opens more requests or watches than allowed, is bounded. Every
//! limit is configured small here so each test ends in seconds; each wait
//! for the server is itself bounded so the old code fails instead of
//! hanging.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mini_k8s_tests::apiserver::{TestApiServer, TestCluster, WatchLines};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{assert_status, pod, pod_keys};

/// How long a test waits for the server to close a connection or answer;
/// well above the 1 s limits configured, far below anything unbounded.
const PATIENCE: Duration = Duration::from_secs(15);

fn address(url: &str) -> &str {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
}

/// Reads until the server closes the connection; fails if it does not
/// within [`PATIENCE`].
async fn closed_by_server(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut seen))
        .await
        .context("the server kept the connection open")??;
    Ok(seen)
}

/// One HTTP/1.1 response read off `stream`: (code, headers, JSON body).
async fn response(stream: &mut TcpStream) -> Result<(u16, String, Value)> {
    let mut buffer = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&buffer)
                );
            }
            buffer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buffer).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    let code = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|c| c.parse().ok())
                        .context("no status code")?;
                    let value = serde_json::from_str(&body[..length]).unwrap_or(Value::Null);
                    return Ok((code, head.to_string(), value));
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .context("no answer in time")?
}

/// Opens a connection and sends the head of a pod create whose body never
/// comes: the request stays in the server's hands.
async fn stalled_create(url: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(address(url)).await?;
    stream
        .write_all(
            b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metadata\":",
        )
        .await?;
    Ok(stream)
}

/// A connection that sends nothing, and one that sends half a header, are
/// closed after `--header-read-timeout` (Kubernetes: 32 s) instead of
/// holding a file descriptor for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_idle_connections_are_closed_after_the_header_read_timeout() -> Result<()> {
    let c = TestCluster::start_with(|config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await?;
    let mut idle = TcpStream::connect(address(c.url())).await?;
    let mut slow = TcpStream::connect(address(c.url())).await?;
    slow.write_all(b"GET /api/v1/pods HTTP/1.1\r\nHost: te")
        .await?;
    closed_by_server(&mut idle).await?;
    closed_by_server(&mut slow).await?;
    // A request sent in time is served.
    let (code, _) = c.get("/api/v1/pods").await?;
    assert_eq!(code, 200);
    Ok(())
}

/// A TLS client that never finishes its handshake is dropped after the
/// same timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_dropped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Any serving certificate: the client never gets as far as checking it.
    let (_, cert, key) = crate::auth_tls::certificates(dir.path())?;
    let etcd = tokio::task::spawn_blocking(mini_k8s_tests::etcd::Etcd::start).await??;
    let mut config = apiserver::Config::with_etcd(etcd.endpoints());
    config.tls_cert_file = Some(cert);
    config.tls_private_key_file = Some(key);
    config.header_read_timeout = Duration::from_secs(1);
    let server = TestApiServer::start(config).await?;
    let mut silent = TcpStream::connect(address(server.url())).await?;
    closed_by_server(&mut silent).await?;
    Ok(())
}

/// A request that does not finish within `--request-timeout` is answered
/// 504 with a Timeout Status (Kubernetes' timeout filter); the half-sent
/// pod is not created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_request_timeout_gets_504() -> Result<()> {
    let c = TestCluster::start_with(|config| {
        config.request_timeout = Duration::from_secs(1);
    })
    .await?;
    let mut stalled = stalled_create(c.url()).await?;
    let (code, _, status) = response(&mut stalled).await?;
    assert_status(code, &status, 504, "Timeout");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("1s"), "{message}");
    assert!(pod_keys(&c).await?.is_empty());
    // Watches are long-running: they outlive the request timeout.
    let mut watch = WatchLines::open(&c, "/api/v1/namespaces/default/pods?watch=true").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, _) = c
        .post("/api/v1/namespaces/default/pods", &pod("after"))
        .await?;
    assert_eq!(code, 201);
    let event = watch.next(PATIENCE).await?;
    assert_eq!(event["object"]["metadata"]["name"], "after");
    Ok(())
}

/// Sends `attempt` until it answers 429 (the held request has reached the
/// server by then); at most 200 tries.
async fn until_429<F, Fut>(mut attempt: F) -> Result<(u16, String, Value)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(u16, String, Value)>>,
{
    for _ in 0..200 {
        let answer = attempt().await?;
        if answer.0 == 429 {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("never refused with 429")
}

async fn send(
    c: &TestCluster,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String, Value)> {
    let mut request = c.http.request(method, format!("{}{path}", c.url()));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let code = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Bounded: on a server without the cap, the refused watch is a stream.
    let value = tokio::time::timeout(PATIENCE, response.json())
        .await
        .context("the answer did not end")?
        .unwrap_or(Value::Null);
    Ok((code, retry, value))
}

/// Past `--max-mutating-requests-inflight`, writes get 429 with
/// `Retry-After: 1` and a TooManyRequests Status; reads have their own
/// limit and still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_mutating_inflight_limit_get_429() -> Result<()> {
    let c = TestCluster::start_with(|config| {
        config.max_mutating_requests_inflight = 1;
    })
    .await?;
    let held = stalled_create(c.url()).await?;
    let dry_run = pod("dry");
    until_429(|| {
        send(
            &c,
            reqwest::Method::POST,
            "/api/v1/namespaces/default/pods?dryRun=All",
            Some(&dry_run),
        )
    })
    .await?;
    let (code, retry_after, status) = send(
        &c,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/pods",
        Some(&pod("refused")),
    )
    .await?;
    assert_status(code, &status, 429, "TooManyRequests");
    assert_eq!(retry_after, "1");
    assert_eq!(status["details"]["retryAfterSeconds"], 1, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("max-mutating-requests-inflight"),
        "{message}"
    );
    let (code, _) = c.get("/api/v1/namespaces/default/pods").await?;
    assert_eq!(code, 200);
    drop(held);
    assert!(pod_keys(&c).await?.is_empty());
    Ok(())
}

/// Sends SIGCONT to a stopped process when dropped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Result<Self> {
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()?;
        assert!(status.success());
        Ok(Self(pid))
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// Past `--max-requests-inflight`, reads get 429 too. The held read is a
/// `/readyz` waiting on the test's own etcd, paused for the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_past_the_inflight_limit_get_429() -> Result<()> {
    let c = TestCluster::start_with(|config| {
        config.max_requests_inflight = 1;
    })
    .await?;
    let paused = Stopped::stop(c.etcd.pid())?;
    let readyz = c.http.get(format!("{}/readyz", c.url())).send();
    let held = tokio::spawn(readyz);
    let (_, retry_after, status) =
        until_429(|| send(&c, reqwest::Method::GET, "/version", None)).await?;
    assert_eq!(status["reason"], "TooManyRequests", "{status}");
    assert_eq!(retry_after, "1");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("max-requests-inflight"), "{message}");
    drop(paused);
    let _ = tokio::time::timeout(PATIENCE, held).await;
    Ok(())
}

/// Past `--max-watches-per-client`, a new watch from the same client is
/// refused 429; other requests still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_past_the_per_client_cap_get_429() -> Result<()> {
    let c = TestCluster::start_with(|config| {
        config.max_watches_per_client = 2;
    })
    .await?;
    let _first = WatchLines::open(&c, "/api/v1/pods?watch=true").await?;
    let _second = WatchLines::open(&c, "/api/v1/namespaces/default/services?watch=1").await?;
    let (code, retry_after, status) =
        send(&c, reqwest::Method::GET, "/api/v1/watch/nodes", None).await?;
    assert_status(code, &status, 429, "TooManyRequests");
    assert_eq!(retry_after, "1");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("max-watches-per-client"), "{message}");
    let (code, _) = c.get("/api/v1/nodes").await?;
    assert_eq!(code, 200);
    Ok(())
}

/// The kubelet's server (10250) had no header-read timeout either: a
/// client that sends nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_server_drops_idle_connections() -> Result<()> {
    let c = TestCluster::start().await?;
    let client = kube::Client::try_from(kube::Config::new(c.url().parse()?))?;
    let dir = tempfile::tempdir()?;
    let mut config = kubelet::Config::new("bounded", "127.0.0.1");
    config.sync.root_dir = dir.path().join("kubelet");
    let runtime = std::sync::Arc::new(kubelet::hollow::HollowRuntime::new());
    let (kubelet, _services) = kubelet::Kubelet::new(client, runtime, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(kubelet::server::serve_with(
        kubelet,
        listener,
        Duration::from_secs(1),
        2,
    ));
    let mut idle = TcpStream::connect(address).await?;
    let mut slow = TcpStream::connect(address).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo").await?;
    closed_by_server(&mut idle).await?;
    closed_by_server(&mut slow).await?;
    let answer = reqwest::get(format!("http://{address}/healthz")).await?;
    assert_eq!(answer.status(), 200);
    server.abort();
    Ok(())
}
