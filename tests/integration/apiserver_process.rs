use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use mini_k8s_tests::etcd::Etcd;
use serde_json::json;

/// A free loopback port (bound then released).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_binary_serves_metrics_and_stops_cleanly_on_sigterm() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let port = free_port()?;
    let mut child = tokio::process::Command::new(mini_k8s_tests::binaries::path("apiserver")?)
        .args([
            "--etcd-servers",
            &etcd.client_url(),
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the apiserver binary")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "apiserver never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pods = format!("{base}/api/v1/namespaces/default/pods");
    let created = http
        .post(&pods)
        .json(&json!({"metadata": {"name": "m"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .send()
        .await?;
    assert_eq!(created.status().as_u16(), 201);
    http.get(format!("{pods}/missing")).send().await?;

    // A watch that is open when SIGTERM comes must end, not hang.
    let mut watch = http
        .get(format!("{pods}?watch=true&resourceVersion=1"))
        .send()
        .await?;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(
            r#"apiserver_request_total{verb="create",resource="pods",subresource="",code="201"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"code="404""#), "{metrics}");
    assert!(
        metrics.contains("apiserver_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"apiserver_registered_watchers{resource="pods"} 1"#),
        "{metrics}"
    );

    let pid = child.id().context("apiserver has no pid")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(15), child.wait()).await??;
    assert!(exited.success(), "apiserver exited with {exited}");
    // The watch stream ends (possibly after the events it already had).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = watch.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch did not end on shutdown");
    let stderr = child.stderr.take().context("no stderr")?;
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stderr), &mut text)
        .await?;
    assert!(text.contains("shutting down"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_get_one_clear_line_and_a_non_zero_exit() -> Result<()> {
    let apiserver = mini_k8s_tests::binaries::path("apiserver")?;
    let out = tokio::process::Command::new(&apiserver)
        .args(["--service-cluster-ip-range", "10.0.0.300/24"])
        .output()
        .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--service-cluster-ip-range"), "{stderr}");
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nope.csv");
    let out = tokio::process::Command::new(&apiserver)
        .args(["--port", &free_port()?.to_string(), "--token-auth-file"])
        .arg(&missing)
        .output()
        .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read token file") && stderr.contains("nope.csv"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    Ok(())
}
