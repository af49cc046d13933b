//! Health endpoints in Kubernetes' format on every component's binary, and
//! `componentstatuses` through stock kubectl (#17 item 4).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::processes::Process;

use crate::kubectl::{kubectl_available, Kubectl};

/// A free loopback port (bound then released).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `GET url` → (status, body).
async fn get(http: &reqwest::Client, url: &str) -> Result<(u16, String)> {
    let r = http.get(url).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Polls `url` until it answers `code`, returning the body.
async fn until_code(
    http: &reqwest::Client,
    url: &str,
    code: u16,
    process: &Process,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((got, body)) = get(http, url).await {
            if got == code {
                return Ok(body);
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {code}; {} log:\n{}",
            process.name(),
            process.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(ToString::to_string).collect()
}

/// Starts `binary` (scheduler or controller-manager) against `c`, serving
/// its health on `127.0.0.1:port`, logging to `dir/binary.log`.
fn spawn_with_healthz(
    binary: &str,
    c: &TestCluster,
    dir: &Path,
    port: u16,
    extra: &[&str],
) -> Result<Process> {
    let address = format!("127.0.0.1:{port}");
    let mut args = strings(&["--master", c.url(), "--healthz-bind-address", &address]);
    args.extend(strings(extra));
    Process::spawn(binary, binary, &args, &dir.join(format!("{binary}.log")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_lists_its_checks_and_tells_a_reason_per_check() -> Result<()> {
    let c = TestCluster::start().await?;
    let base = c.url().to_string();
    let (code, body) = get(&c.http, &format!("{base}/readyz?verbose")).await?;
    assert_eq!(code, 200, "{body}");
    for line in [
        "[+]ping ok",
        "[+]etcd ok",
        "[+]informer-sync ok",
        "[+]poststarthook/bootstrap-controller ok",
        "[+]shutdown ok",
        "readyz check passed",
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} in\n{body}");
    }
    let (code, body) = get(&c.http, &format!("{base}/livez")).await?;
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, body) = get(&c.http, &format!("{base}/readyz/etcd")).await?;
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, body) = get(
        &c.http,
        &format!("{base}/readyz?verbose&exclude=etcd&exclude=nope"),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("[+]etcd excluded: ok\n"), "{body}");
    assert!(
        body.contains("warn: some health checks cannot be excluded: no matches for \"nope\""),
        "{body}"
    );
    let (code, _) = get(&c.http, &format!("{base}/readyz/nope")).await?;
    assert_eq!(code, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_is_ready_until_its_apiserver_goes() -> Result<()> {
    let c = TestCluster::start().await?;
    let port = free_port()?;
    let dir = tempfile::tempdir()?;
    let scheduler =
        spawn_with_healthz("scheduler", &c, dir.path(), port, &["--leader-elect=false"])?;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let body = until_code(&http, &format!("{base}/readyz?verbose"), 200, &scheduler).await?;
    for line in [
        "[+]ping ok",
        "[+]leader-election ok",
        "[+]api ok",
        "[+]informer-sync ok",
        "readyz check passed",
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} in\n{body}");
    }
    let (code, body) = get(&http, &format!("{base}/healthz")).await?;
    assert_eq!((code, body.as_str()), (200, "ok"));

    let TestCluster {
        apiserver, etcd, ..
    } = c;
    apiserver.stop().await?;
    let body = until_code(&http, &format!("{base}/readyz"), 500, &scheduler).await?;
    assert!(
        body.lines().any(|l| l == "[-]api failed: reason withheld"),
        "{body}"
    );
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let (code, body) = get(&http, &format!("{base}/readyz/api")).await?;
    assert_eq!(code, 500);
    assert!(
        body.starts_with("internal server error: apiserver unreachable"),
        "{body}"
    );
    // Liveness does not follow the apiserver: a restart would not help.
    let (code, _) = get(&http, &format!("{base}/livez")).await?;
    assert_eq!(code, 200);
    drop(etcd);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_health_address_is_refused() -> Result<()> {
    let out = tokio::process::Command::new(mini_k8s_tests::binaries::path("controller-manager")?)
        .args([
            "--master",
            "http://127.0.0.1:1",
            "--healthz-bind-address",
            "0.0.0.0:0",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .context("running controller-manager")?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-non-loopback-healthz"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_is_not_ready_without_its_container_runtime() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let mut ports = Vec::new();
    let mut kubelets = Vec::new();
    // One on the hollow runtime (healthy), one on a Docker socket where no
    // dockerd listens (as one that was stopped).
    for (name, runtime) in [("healthy", "hollow"), ("nodocker", "docker")] {
        let port = free_port()?;
        let socket = format!("unix://{}", dir.path().join("docker.sock").display());
        kubelets.push(Process::spawn(
            name,
            "kubelet",
            &strings(&[
                "--master",
                c.url(),
                "--hostname-override",
                name,
                "--runtime",
                runtime,
                "--docker-endpoint",
                &socket,
                "--port",
                "0",
                "--healthz-port",
                &port.to_string(),
                "--root-dir",
                &dir.path().join(name).display().to_string(),
            ]),
            &dir.path().join(format!("{name}.log")),
        )?);
        ports.push(port);
    }
    let http = reqwest::Client::new();
    // The healthy one ready (200), the other not (500), each saying why.
    let mut readyz = Vec::new();
    for ((port, kubelet), code) in ports.iter().zip(&kubelets).zip([200, 500]) {
        let url = format!("http://127.0.0.1:{port}/readyz?verbose");
        readyz.push(until_code(&http, &url, code, kubelet).await?);
    }
    let body = &readyz[0];
    for line in ["[+]syncloop ok", "[+]runtime ok", "readyz check passed"] {
        assert!(body.lines().any(|l| l == line), "{line:?} in\n{body}");
    }
    let body = &readyz[1];
    assert!(
        body.lines()
            .any(|l| l == "[-]runtime failed: reason withheld"),
        "{body}"
    );
    let broken = format!("http://127.0.0.1:{}", ports[1]);
    let (code, body) = get(&http, &format!("{broken}/readyz/runtime")).await?;
    assert_eq!(code, 500);
    assert!(body.contains("container runtime is down"), "{body}");
    // Liveness is the sync loop's, which runs without Docker.
    let (code, _) = get(&http, &format!("{broken}/healthz")).await?;
    assert_eq!(code, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_cs_shows_the_scheduler_unhealthy_once_stopped() -> Result<()> {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed on this machine");
        return Ok(());
    }
    let (scheduler_port, cm_port) = (free_port()?, free_port()?);
    let c = TestCluster::start_with(|config| {
        config.scheduler_healthz_url = format!("http://127.0.0.1:{scheduler_port}/healthz");
        config.controller_manager_healthz_url = format!("http://127.0.0.1:{cm_port}/healthz");
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let kubectl = Kubectl {
        kubeconfig: mini_k8s_tests::kubeconfig::write(dir.path(), c.url(), None, None)?,
    };
    let mut scheduler = spawn_with_healthz("scheduler", &c, dir.path(), scheduler_port, &[])?;
    let cm = spawn_with_healthz("controller-manager", &c, dir.path(), cm_port, &[])?;
    let http = reqwest::Client::new();
    until_code(
        &http,
        &format!("http://127.0.0.1:{scheduler_port}/healthz"),
        200,
        &scheduler,
    )
    .await?;
    until_code(
        &http,
        &format!("http://127.0.0.1:{cm_port}/healthz"),
        200,
        &cm,
    )
    .await?;

    let out = kubectl.ok(&["get", "componentstatuses"]).await?;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "MESSAGE", "ERROR"], "{out}");
    let mut names: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[1])).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            ("controller-manager", "Healthy"),
            ("etcd-0", "Healthy"),
            ("scheduler", "Healthy")
        ],
        "{out}"
    );
    let one = kubectl
        .ok(&["get", "cs", "scheduler", "-o", "json"])
        .await?;
    let one: serde_json::Value = serde_json::from_str(&one)?;
    assert_eq!(one["kind"], "ComponentStatus");
    assert_eq!(one["conditions"][0]["message"], "ok");
    let err = kubectl.fails(&["delete", "cs", "scheduler"]).await?;
    assert!(
        err.contains("MethodNotAllowed") || err.contains("not allowed"),
        "{err}"
    );

    let pid = scheduler.pid();
    scheduler.kill();
    assert!(!mini_k8s_tests::processes::pid_exists(pid) || !scheduler.is_running());
    let out = kubectl.ok(&["get", "cs", "scheduler"]).await?;
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .context("a row")?
        .split_whitespace()
        .collect();
    assert_eq!(&row[..2], ["scheduler", "Unhealthy"], "{out}");
    assert!(out.contains("connect"), "the reason in MESSAGE: {out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checks_own_path_is_for_monitoring_the_root_for_everyone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "mon-token,prometheus,1,\"system:monitoring\"\nbob-token,bob,2\n",
    )?;
    let c = TestCluster::start_with(|config| config.token_auth_file = Some(tokens.clone())).await?;
    let base = c.url().to_string();
    // The root paths need no token; with RBAC the roles' hook is listed.
    let (code, body) = get(&c.http, &format!("{base}/readyz?verbose")).await?;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("[+]poststarthook/rbac/bootstrap-roles ok\n"),
        "{body}"
    );
    let as_user = |token: &'static str| {
        let (http, url) = (c.http.clone(), format!("{base}/readyz/etcd"));
        async move {
            let r = http.get(url).bearer_auth(token).send().await?;
            anyhow::Ok((r.status().as_u16(), r.text().await?))
        }
    };
    // The RBAC cache follows the bootstrap a moment later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = as_user("mon-token").await?;
        if code == 200 {
            assert_eq!(body, "ok");
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "system:monitoring never read /readyz/etcd: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = as_user("bob-token").await?;
    assert_eq!(code, 403, "a user without system:monitoring");
    Ok(())
}
