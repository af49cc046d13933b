//! `pods/exec` and `pods/attach` with the stock kubectl and the Python
//! client against a kubelet on a private dockerd (#15 items 1, 2, 6):
//! output and exit codes, stdin, a TTY, attach, Kubernetes' errors, a
//! client that vanishes mid-stream (its process and the kubelet's stream
//! both gone, counted), and RBAC's `create pods/exec`. Each test skips,
//! printing why, without a dockerd or a kubectl.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::docker::BUSYBOX_IMAGE;
use mini_k8s_tests::node::{busybox, finish, text, wait_for, TestNode};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use crate::kubectl::kubectl_available;

/// How long the waits below may take.
const WAIT: Duration = Duration::from_secs(60);

/// The node, or `None` (printed why) without a kubectl or a dockerd.
async fn start() -> Result<Option<TestNode>> {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed on this machine");
        return Ok(None);
    }
    TestNode::start("mk8s-test-exec-").await
}

fn sleeper(name: &str) -> Value {
    json!({"metadata": {"name": name},
           "spec": {"containers": [busybox("c", "exec sleep 3600")]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_passes_output_exit_codes_stdin_and_a_tty() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    env.run_pod(sleeper("p")).await?;

    let out = env
        .run_kubectl(&["exec", "p", "--", "echo", "hi"], b"")
        .await?;
    assert_eq!(text(&out.stdout), "hi\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = env
        .run_kubectl(
            &["exec", "p", "--", "sh", "-c", "echo err >&2; exit 3"],
            b"",
        )
        .await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    ensure!(stderr.starts_with("err\n"), "{stderr}");
    ensure!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );

    // A command that is not there: Docker's API (like Kubernetes on
    // containerd) says 126.
    let out = env
        .run_kubectl(&["exec", "p", "--", "no-such-command"], b"")
        .await?;
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));

    // Piped stdin reaches the command, and its end ends `cat` (v5 close).
    let out = env
        .run_kubectl(
            &["exec", "-i", "p", "--", "sh", "-c", "cat; echo done"],
            b"abc\n",
        )
        .await?;
    assert_eq!(text(&out.stdout), "abc\ndone\n", "{}", text(&out.stderr));

    // -it under a pseudo-terminal: the command sees a TTY.
    let kubectl = "kubectl exec -it p -- sh -c 'tty; stty size; exit 4'";
    let out = finish(env.script(kubectl), b"", "script kubectl exec -it").await?;
    let stdout = text(&out.stdout);
    ensure!(
        stdout.contains("/dev/pts/"),
        "no TTY in the exec: {stdout:?}"
    );
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert_eq!(env.kubelet.exec_streams().open(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_reads_a_running_container() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    env.run_pod(json!({"metadata": {"name": "ticker"},
        "spec": {"containers": [busybox("c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")]}}))
        .await?;
    let mut child = env.kubectl(&["attach", "ticker"]).spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("no line from kubectl attach within 30 s")??
        .context("kubectl attach ended")?;
    ensure!(line.starts_with("tick "), "{line:?}");
    assert_eq!(env.kubelet.exec_streams().open(), 1);
    child.start_kill()?;
    child.wait().await?;
    wait_for("the attach stream to end", WAIT, || async {
        Ok((env.kubelet.exec_streams().open() == 0).then_some(()))
    })
    .await?;
    // Detaching left the container running.
    let pod = env.pods().get("ticker").await?;
    let status = pod.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    Ok(())
}

/// A container whose spec has `stdin: true` keeps its input open, so
/// `kubectl attach -i` writes to its main process: `cat` echoes a line
/// back through the attach stream and into the logs. On a container made
/// without Docker's `OpenStdin`, `cat` read end-of-file at start and the
/// line goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_i_writes_to_the_main_process() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    let mut container = busybox("c", "cat; echo stdin-closed; exec sleep 3600");
    container["stdin"] = json!(true);
    env.run_pod(json!({"metadata": {"name": "cat"}, "spec": {"containers": [container]}}))
        .await?;
    let mut command = env.kubectl(&["attach", "-i", "cat"]);
    command.stdin(Stdio::piped());
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"hello-through-attach\n").await?;
    let echoed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line == "hello-through-attach" {
                return Ok(true);
            }
            ensure!(line != "stdin-closed", "the container's stdin was closed");
        }
        Ok::<_, anyhow::Error>(false)
    })
    .await;
    child.start_kill()?;
    child.wait().await?;
    ensure!(
        matches!(echoed, Ok(Ok(true))),
        "cat did not echo through kubectl attach -i: {echoed:?}"
    );
    let logs = env.run_kubectl(&["logs", "cat"], b"").await?;
    ensure!(
        text(&logs.stdout).contains("hello-through-attach"),
        "{}",
        text(&logs.stdout)
    );
    Ok(())
}

/// `kubectl exec -it` sends the terminal's size on the resize channel and
/// the command's terminal takes it: `stty size` in the container answers
/// the rows and columns set on kubectl's pseudo-terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_it_passes_the_terminal_size() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    env.run_pod(sleeper("p")).await?;
    // The size arrives as a message after the command started: the
    // command waits (a bounded number of times) for it to be set.
    let remote = "i=0; while [ \"$(stty size)\" != \"33 77\" ] && [ $i -lt 100 ]; \
                  do sleep 0.1; i=$((i+1)); done; echo size=$(stty size)";
    let kubectl = format!("stty rows 33 cols 77; kubectl exec -it p -- sh -c '{remote}'");
    let out = finish(env.script(&kubectl), b"", "script kubectl exec -it").await?;
    let stdout = text(&out.stdout);
    ensure!(stdout.contains("size=33 77"), "{stdout:?}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_kubernetes_errors() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    env.run_pod(sleeper("p")).await?;
    let out = env
        .run_kubectl(&["exec", "p", "-c", "nope", "--", "true"], b"")
        .await?;
    ensure!(!out.status.success());
    let stderr = text(&out.stderr);
    ensure!(
        stderr.contains("container nope is not valid for pod p"),
        "{stderr}"
    );

    // Not scheduled.
    env.create_pod(sleeper("unbound"), false).await?;
    let out = env
        .run_kubectl(&["exec", "unbound", "--", "true"], b"")
        .await?;
    let stderr = text(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("pod unbound does not have a host assigned"),
        "{stderr}"
    );

    // Scheduled, its container never started: the kubelet's answer.
    env.create_pod(
        json!({"metadata": {"name": "pending"},
               "spec": {"containers": [{"name": "c", "image": "mini-k8s/no-such-image:1",
                                        "imagePullPolicy": "Never"}]}}),
        true,
    )
    .await?;
    let pods = env.pods();
    wait_for("pod pending reported waiting", WAIT, || async {
        let status = pods.get("pending").await?.status.unwrap_or_default();
        Ok(status
            .container_statuses
            .unwrap_or_default()
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_some()))
            .then_some(()))
    })
    .await?;
    let out = env
        .run_kubectl(&["exec", "pending", "--", "true"], b"")
        .await?;
    let stderr = text(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("container not found (\"c\")"),
        "{stderr}"
    );
    let out = env.run_kubectl(&["attach", "pending"], b"").await?;
    ensure!(!out.status.success(), "attach to a pending pod succeeded");
    Ok(())
}

const PYTHON_EXEC: &str = r#"
import sys
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
out = stream(api.connect_get_namespaced_pod_exec, "p", "default",
             command=["sh", "-c", "echo py-out"], stderr=True, stdin=False,
             stdout=True, tty=False)
print("OUT=" + out.strip())
resp = stream(api.connect_get_namespaced_pod_exec, "p", "default",
              command=["sh", "-c", "exit 5"], stderr=True, stdin=False,
              stdout=True, tty=False, _preload_content=False)
resp.run_forever(timeout=30)
print("CODE=%s" % resp.returncode)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_clients_stream_exec_works() -> Result<()> {
    let python = std::path::Path::new("/usr/bin/python3");
    let has_client = std::process::Command::new(python)
        .args(["-c", "import kubernetes.stream"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_client {
        println!("SKIPPED: /usr/bin/python3 with python3-kubernetes is not installed");
        return Ok(());
    }
    let Some(env) = start().await? else {
        return Ok(());
    };
    env.run_pod(sleeper("p")).await?;
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-c", PYTHON_EXEC])
        .arg(&env.kubeconfig)
        .env("HOME", env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = finish(command, b"", "python3 stream exec").await?;
    let stdout = text(&out.stdout);
    ensure!(out.status.success(), "{stdout}{}", text(&out.stderr));
    ensure!(stdout.contains("OUT=py-out\n"), "{stdout}");
    ensure!(stdout.contains("CODE=5\n"), "{stdout}");
    Ok(())
}

/// `sleep 1000` processes in the container, through `docker exec ps`.
fn sleepers(env: &TestNode, container: &str) -> Result<usize> {
    let ps = env.docker.cli(&["exec", container, "ps", "-o", "args"])?;
    Ok(ps.lines().filter(|l| l.trim() == "sleep 1000").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_clients_exec_is_ended_and_its_stream_released() -> Result<()> {
    let Some(env) = start().await? else {
        return Ok(());
    };
    env.run_pod(sleeper("p")).await?;
    let container = env.container("p")?;
    let mut child = env.kubectl(&["exec", "p", "--", "sleep", "1000"]).spawn()?;
    wait_for("the exec to run", WAIT, || async {
        Ok(
            (sleepers(&env, &container)? == 1 && env.kubelet.exec_streams().open() == 1)
                .then_some(()),
        )
    })
    .await?;
    // kubectl dies without a word to the server (SIGKILL).
    child.start_kill()?;
    child.wait().await?;
    wait_for("the exec's process and stream to end", WAIT, || async {
        Ok(
            (sleepers(&env, &container)? == 0 && env.kubelet.exec_streams().open() == 0)
                .then_some(()),
        )
    })
    .await?;
    Ok(())
}

const TOKENS: &str = "admin-token,admin,1,\"system:masters\"\nalice-token,alice,2\n";

/// With RBAC, `get pods/exec` does not let a user run commands: a
/// WebSocket exec is a GET but authorized as `create`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_needs_create_on_pods_exec() -> Result<()> {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed on this machine");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = crate::auth_tls::certificates(dir.path())?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS)?;
    let cluster = TestCluster::start_with(|config| {
        config.token_auth_file = Some(tokens.clone());
        config.tls_cert_file = Some(cert);
        config.tls_private_key_file = Some(key);
    })
    .await?;
    let mut kubeconfigs = Vec::new();
    for who in ["admin", "alice"] {
        let home = dir.path().join(who);
        std::fs::create_dir_all(&home)?;
        kubeconfigs.push(mini_k8s_tests::kubeconfig::write(
            &home,
            cluster.url(),
            Some(&format!("{who}-token")),
            Some(&ca),
        )?);
    }
    let kubectl = |who: usize, args: &[&str]| {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .args(args)
            .env("KUBECONFIG", &kubeconfigs[who])
            .env("HOME", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("kubectl {args:?}");
        async move { finish(command, b"", &what).await }
    };
    wait_for("the default namespace", WAIT, || async {
        Ok(kubectl(0, &["get", "namespace", "default"])
            .await?
            .status
            .success()
            .then_some(()))
    })
    .await?;
    let out = kubectl(
        0,
        &["run", "p", "--image", BUSYBOX_IMAGE, "--restart", "Never"],
    )
    .await?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &[
            "create",
            "role",
            "peek",
            "--verb",
            "get",
            "--resource",
            "pods,pods/exec",
        ][..],
        &[
            "create",
            "rolebinding",
            "peek",
            "--role",
            "peek",
            "--user",
            "alice",
        ],
    ] {
        let out = kubectl(0, args).await?;
        ensure!(out.status.success(), "{}", text(&out.stderr));
    }
    let forbidden = "pods \"p\" is forbidden: User \"alice\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\"";
    wait_for("alice refused as Kubernetes refuses", WAIT, || async {
        let out = kubectl(1, &["exec", "p", "--", "true"]).await?;
        let stderr = text(&out.stderr);
        Ok((!out.status.success() && stderr.contains(forbidden)).then_some(()))
    })
    .await?;
    let out = kubectl(
        0,
        &[
            "create",
            "role",
            "run",
            "--verb",
            "create",
            "--resource",
            "pods/exec",
        ],
    )
    .await?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let out = kubectl(
        0,
        &[
            "create",
            "rolebinding",
            "run",
            "--role",
            "run",
            "--user",
            "alice",
        ],
    )
    .await?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    // Allowed now: the refusal is the pod's (no node), not RBAC's.
    wait_for("alice let through", WAIT, || async {
        let out = kubectl(1, &["exec", "p", "--", "true"]).await?;
        let stderr = text(&out.stderr);
        Ok(stderr
            .contains("pod p does not have a host assigned")
            .then_some(()))
    })
    .await?;
    Ok(())
}
