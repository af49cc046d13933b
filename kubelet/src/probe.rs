//! Liveness and readiness probes: `exec` (in the container, exit 0),
//! `httpGet` (a status 200..400 from the pod IP) and `tcpSocket` (a
//! connection), each bounded by `timeoutSeconds`. What a result does
//! (restart, or the container's `ready`) is `pod`'s business.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::Runtime;

/// The probe's timing, with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// One probe's limit.
    pub timeout: Duration,
    /// Failures in a row that restart the container (liveness) or make it
    /// not ready (readiness).
    pub failure_threshold: u32,
    /// Successes in a row that make a not-ready container ready (readiness).
    pub success_threshold: u32,
}

fn secs(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

impl Timing {
    /// From a probe (defaults: delay 0, period 10 s, timeout 1 s, failure
    /// threshold 3, success threshold 1).
    pub fn of(probe: &Probe) -> Self {
        Self {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            failure_threshold: probe
                .failure_threshold
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(3)
                .max(1),
            success_threshold: probe
                .success_threshold
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1)
                .max(1),
        }
    }
}

fn port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// Runs `probe` once against the container `id` of `container` at
/// `pod_ip`. `Err` says why it failed.
///
/// # Errors
///
/// The failure's description.
pub async fn run(
    runtime: &dyn Runtime,
    id: &str,
    container: &Container,
    probe: &Probe,
    pod_ip: &str,
) -> Result<(), String> {
    let timeout = Timing::of(probe).timeout;
    let attempt = async {
        if let Some(exec) = &probe.exec {
            let cmd = exec.command.clone().unwrap_or_default();
            return match runtime.exec(id, &cmd).await {
                Ok(0) => Ok(()),
                Ok(code) => Err(format!("exec {cmd:?} exited {code}")),
                Err(e) => Err(e.to_string()),
            };
        }
        if let Some(http) = &probe.http_get {
            let port = port(container, &http.port).ok_or("unknown port")?;
            let host = http
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string());
            let path = http
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into());
            // The apiserver refuses these, but a pod stored before it did
            // could still smuggle a second request in the request line.
            if let Some(bad) = [&host, &path]
                .into_iter()
                .find(|v| v.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(format!(
                    "http probe: {:?} has spaces or control characters; not sent",
                    bad.escape_default().to_string()
                ));
            }
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("http probe connect {host}:{port}: {e}"))?;
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: mini-k8s-probe\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut head = vec![0u8; 64];
            let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&head[..n]).to_string();
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("http probe: bad answer {line:?}"))?;
            return if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("http probe: status {code}"))
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = port(container, &tcp.port).ok_or("unknown port")?;
            let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_string());
            return tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map(|_| ())
                .map_err(|e| format!("tcp probe {host}:{port}: {e}"));
        }
        Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("probe timed out after {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn http_and_tcp_probes_check_a_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in ["HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 500 Oops\r\n\r\n"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let rt = crate::hollow::HollowRuntime::new();
        let container: Container = serde_json::from_value(
            json!({"name": "c", "ports": [{"name": "web", "containerPort": port}]}),
        )
        .unwrap();
        let http: Probe =
            serde_json::from_value(json!({"httpGet": {"port": "web", "path": "/healthz"}}))
                .unwrap();
        assert_eq!(run(&rt, "x", &container, &http, "127.0.0.1").await, Ok(()));
        let failed = run(&rt, "x", &container, &http, "127.0.0.1").await;
        assert!(failed.unwrap_err().contains("500"));
        let smuggler: Probe = serde_json::from_value(
            json!({"httpGet": {"port": "web", "path": "/ HTTP/1.0\r\n\r\nDELETE /x"}}),
        )
        .unwrap();
        let refused = run(&rt, "x", &container, &smuggler, "127.0.0.1").await;
        assert!(refused.unwrap_err().contains("not sent"));
        let tcp: Probe = serde_json::from_value(json!({"tcpSocket": {"port": 1}})).unwrap();
        assert!(run(&rt, "x", &container, &tcp, "127.0.0.1").await.is_err());
        let exec: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap();
        assert_eq!(run(&rt, "x", &container, &exec, "127.0.0.1").await, Ok(()));
        rt.set_exec_exit_code(1);
        assert!(run(&rt, "x", &container, &exec, "127.0.0.1").await.is_err());
    }
}
