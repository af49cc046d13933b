//! `pods/portforward` end to end on real Docker (#15): the stock kubectl
//! 1.32 (SPDY tunneled in a WebSocket, and its plain SPDY fallback) and the
//! Python client (`v4.channel.k8s.io`) through the apiserver to an
//! in-process kubelet, to an `httpd` pod. Each test skips, with a printed
//! reason, where no dockerd can be started or no kubectl is installed.

use std::time::Duration;

use anyhow::{Context, Result};
use mini_k8s_tests::node::{busybox, wait_for, TestNode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// The page the pod serves on every address (port 80), and the one only
/// its loopback sees (127.0.0.1:8080).
const PAGE: &str = "hello-from-the-pod";
const LOCAL_PAGE: &str = "only-on-the-pods-loopback";

/// The node with pod `web` running: httpd on port 80 of every address and
/// on 127.0.0.1:8080 only; nothing on 81. `None` (printed why) without a
/// kubectl or a dockerd.
async fn start() -> Result<Option<TestNode>> {
    if !crate::kubectl::kubectl_available() {
        println!("SKIPPED: kubectl is not installed on this machine");
        return Ok(None);
    }
    let Some(env) = TestNode::start("mk8s-test-portforward-").await? else {
        return Ok(None);
    };
    let script = format!(
        "mkdir -p /www /local && echo {PAGE} > /www/index.html && \
         echo {LOCAL_PAGE} > /local/index.html && \
         httpd -p 127.0.0.1:8080 -h /local && exec httpd -f -p 80 -h /www"
    );
    env.run_pod(json!({"metadata": {"name": "web"},
                       "spec": {"containers": [busybox("web", &script)]}}))
        .await?;
    Ok(Some(env))
}

/// (sessions, forwarded connections) open on the kubelet.
fn open(env: &TestNode) -> (usize, usize) {
    let r = env.kubelet.port_forwards();
    (r.sessions(), r.forwards())
}

async fn wait_closed(env: &TestNode) -> Result<()> {
    wait_for(
        "the kubelet's port-forward sessions to close",
        Duration::from_secs(20),
        || async { Ok((open(env) == (0, 0)).then_some(())) },
    )
    .await
}

/// A running `kubectl port-forward` and the local ports it listens on,
/// in the order asked.
struct Forward {
    child: tokio::process::Child,
    ports: Vec<u16>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Forward {
    /// `kubectl port-forward pod/web :REMOTE...`; waits for every
    /// `Forwarding from 127.0.0.1:LOCAL -> REMOTE` line.
    async fn start(env: &TestNode, remotes: &[u16], plain_spdy: bool) -> Result<Self> {
        // -v=4 logs client-go's fallback from the WebSocket to plain SPDY.
        let mut args = vec![
            "port-forward".to_string(),
            "-v=4".to_string(),
            "pod/web".to_string(),
        ];
        args.extend(remotes.iter().map(|r| format!(":{r}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = env.kubectl(&args);
        // kubectl 1.31+ tunnels SPDY in a WebSocket unless told not to;
        // false makes it use the plain SPDY upgrade.
        command.env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if plain_spdy { "false" } else { "true" },
        );
        let mut child = command.spawn().context("starting kubectl port-forward")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stderr_pipe = child.stderr.take().context("no stderr")?;
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text).await;
            text
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut ports = vec![0u16; remotes.len()];
        let deadline = Instant::now() + Duration::from_secs(30);
        while ports.contains(&0) {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .context("kubectl printed no `Forwarding from` within 30 s")??
                .context("kubectl port-forward ended before forwarding")?;
            // "Forwarding from 127.0.0.1:41235 -> 80" (and a [::1] line).
            let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") else {
                continue;
            };
            let (local, remote) = rest.split_once(" -> ").context("odd line")?;
            let remote: u16 = remote.trim().parse()?;
            if let Some(i) = remotes.iter().position(|r| *r == remote) {
                ports[i] = local.parse()?;
            }
        }
        // Keep draining stdout ("Handling connection for ...").
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            ports,
            stderr,
        })
    }
}

/// One HTTP/1.0 GET of `/` through 127.0.0.1:`port`; the whole answer.
async fn get(port: u16) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .context("no answer within 20 s")??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// kubectl's WebSocket tunnel and its plain SPDY, each: the page through
/// the forwarded port; two ports at once, one of them a server bound to
/// the pod's 127.0.0.1; 10 concurrent connections; then kubectl killed by
/// PID and the kubelet's sessions back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_forwards_two_ports_and_concurrent_connections() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    for plain_spdy in [false, true] {
        let how = if plain_spdy {
            "plain SPDY"
        } else {
            "SPDY in a WebSocket"
        };
        let mut forward = Forward::start(&env, &[80, 8080], plain_spdy).await?;
        let (web, local) = (forward.ports[0], forward.ports[1]);
        let page = get(web).await?;
        assert!(
            page.contains("200 OK") && page.contains(PAGE),
            "{how}: {page}"
        );
        let page = get(local).await?;
        assert!(
            page.contains(LOCAL_PAGE),
            "{how}: the pod's loopback server: {page}"
        );
        let answers = futures::future::join_all((0..10).map(|_| get(web))).await;
        for answer in answers {
            let answer = answer?;
            assert!(answer.contains(PAGE), "{how}: {answer}");
        }
        assert_eq!(open(&env).0, 1, "{how}: one session while kubectl runs");
        let pid = forward.child.id().context("kubectl already ended")?;
        forward.child.start_kill()?;
        forward.child.wait().await?;
        wait_closed(&env)
            .await
            .with_context(|| format!("{how}: after kill of kubectl pid {pid}"))?;
        let stderr = forward.stderr.await?;
        assert!(
            !stderr.contains("fallback to secondary dialer"),
            "{how}: kubectl fell back: {stderr}"
        );
    }
    Ok(())
}

/// A port nothing listens on: the local connection closes and kubectl
/// reports Kubernetes' message from the error stream. kubectl 1.32 then
/// closes its connection and exits (client-go's handleConnection has done
/// so since Kubernetes PR 103526), and the kubelet's session ends with it;
/// a forward started beside it is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_nothing_listens_on_reports_the_error() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    let mut good = Forward::start(&env, &[80], false).await?;
    let mut bad = Forward::start(&env, &[81], false).await?;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", bad.ports[0])).await?;
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .context("the connection to port 81 stayed open")?;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let status = tokio::time::timeout(Duration::from_secs(20), bad.child.wait())
        .await
        .context("kubectl kept running after the error")??;
    let stderr = bad.stderr.await?;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("error forwarding port 81 to pod")
            && stderr.contains("127.0.0.1:81: connect: connection refused"),
        "{stderr}"
    );
    let page = get(good.ports[0]).await?;
    assert!(page.contains(PAGE), "{page}");
    wait_for(
        "the failed session to end",
        Duration::from_secs(20),
        || async { Ok((open(&env).0 == 1).then_some(())) },
    )
    .await?;
    good.child.start_kill()?;
    good.child.wait().await?;
    wait_closed(&env).await
}

const PYTHON: &str = "/usr/bin/python3";

/// `kubernetes.stream.portforward` of the Python client: ports 80 and
/// 8080 of one session answer their pages; port 81 reports the error on
/// its error channel.
const PYTHON_SCRIPT: &str = r#"
import faulthandler, http.client, json, sys
# Bounded: a hang prints every thread's stack and exits.
faulthandler.dump_traceback_later(40, exit=True)
from kubernetes import client, config
from kubernetes.stream import portforward

config.load_kube_config(sys.argv[1])
api = client.CoreV1Api()

# As the client's own tests do: HTTP over the forwarded socket, the body
# read by its Content-Length (v4 has no per-port close: the socket ends
# only when the whole session does).
def fetch(pf, port):
    conn = http.client.HTTPConnection("pod", port)
    conn.sock = pf.socket(port)
    conn.request("GET", "/")
    response = conn.getresponse()
    return "%d %s" % (response.status, response.read().decode())

pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="80,8080")
out = {"80": fetch(pf, 80), "8080": fetch(pf, 8080)}
pf.close()
pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="81")
s = pf.socket(81)
s.setblocking(True)
s.settimeout(20)
try:
    s.recv(1)
except Exception:
    pass
import time
for _ in range(100):
    if pf.error(81):
        break
    time.sleep(0.1)
out["81"] = pf.error(81)
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_forwards_ports_over_v4_channels() -> Result<()> {
    if !std::path::Path::new(PYTHON).exists() {
        println!("SKIPPED: no {PYTHON}");
        return Ok(());
    }
    let Some(env) = start().await? else {
        return Ok(());
    };
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(PYTHON)
            .args(["-c", PYTHON_SCRIPT])
            .arg(&env.kubeconfig)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("the Python client took over 60 s")?
    .context("running the Python client (hack/install-deps.sh installs python3-kubernetes)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "python failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Value = serde_json::from_str(stdout.trim())?;
    let text = |key: &str| answers[key].as_str().unwrap_or_default().to_string();
    assert!(text("80").contains(PAGE), "{answers}");
    assert!(text("8080").contains(LOCAL_PAGE), "{answers}");
    assert!(
        text("81").contains("error forwarding port 81")
            && text("81").contains("connection refused"),
        "{answers}"
    );
    wait_closed(&env).await
}
