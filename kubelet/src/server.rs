//! The kubelet's HTTP server (`--port`, 10250): `/healthz`, `/pods` (a
//! PodList of the pods it runs, with the status it computed) and
//! `/containerLogs/{ns}/{pod}/{container}` (`tailLines`, `previous`,
//! `follow`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`).
//!
//! Which instance of a container a log request reads is decided from the
//! status this kubelet reported ([`log_instance`]), as Kubernetes' kubelet
//! does: `previous` is the instance behind `lastState.terminated`, so the
//! log matches what `kubectl describe` shows.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;

use k8s_openapi::api::core::v1::ContainerStatus;

use crate::Kubelet;

/// Why a container has no log to read (Kubernetes' kubelet messages; the
/// server answers them as 400, as it does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoLog {
    /// The pod's status names no such container (not synced yet).
    #[error("container {container:?} in pod {pod:?} is not available")]
    NotAvailable {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// `previous` was asked for and no earlier instance has terminated.
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// Terminated, and the instance is not known.
    #[error("container {container:?} in pod {pod:?} is terminated")]
    Terminated {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// Never started: nothing has written a log yet.
    #[error("container {container:?} in pod {pod:?} is waiting to start: {why}")]
    Waiting {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
        /// The waiting reason, in Kubernetes' words for image pulls.
        why: String,
    },
}

/// The runtime id (without `docker://`) of the instance whose log is asked
/// for, from the container's reported status. Kubernetes'
/// `validateContainerLogStatus`: `previous` reads the instance behind
/// `lastState.terminated`; otherwise the running one, else the terminated
/// one, else (waiting to restart, e.g. in `CrashLoopBackOff`) the last
/// terminated one, so a crash-looping container's output can be read both
/// ways while it backs off.
///
/// # Errors
///
/// [`NoLog`] when the status points at no instance.
pub fn log_instance(
    status: Option<&ContainerStatus>,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<String, NoLog> {
    let names = || (container.to_string(), pod.to_string());
    let Some(status) = status else {
        let (container, pod) = names();
        return Err(NoLog::NotAvailable { container, pod });
    };
    let id_of = |id: Option<&String>| {
        id.filter(|id| !id.is_empty())
            .map(|id| id.strip_prefix("docker://").unwrap_or(id).to_string())
    };
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| id_of(t.container_id.as_ref()));
    let state = status.state.clone().unwrap_or_default();
    if previous {
        return last.flatten().ok_or_else(|| {
            let (container, pod) = names();
            NoLog::NoPrevious { container, pod }
        });
    }
    if state.running.is_some() {
        if let Some(id) = id_of(status.container_id.as_ref()) {
            return Ok(id);
        }
    }
    if let Some(terminated) = &state.terminated {
        // A terminated state whose instance is unknown falls back on the
        // one before it, as Kubernetes does.
        return id_of(terminated.container_id.as_ref())
            .or_else(|| last.flatten())
            .ok_or_else(|| {
                let (container, pod) = names();
                NoLog::Terminated { container, pod }
            });
    }
    if let Some(last) = last {
        return last.ok_or_else(|| {
            let (container, pod) = names();
            NoLog::Terminated { container, pod }
        });
    }
    let why = match state.waiting.and_then(|w| w.reason).as_deref() {
        Some("ErrImagePull") => "image can't be pulled".to_string(),
        Some("ImagePullBackOff") => "trying and failing to pull image".to_string(),
        Some(reason) => reason.to_string(),
        None => "no logs yet".to_string(),
    };
    let (container, pod) = names();
    Err(NoLog::Waiting {
        container,
        pod,
        why,
    })
}

/// The router (serve it with `axum::serve` on a listener the caller binds).
pub fn router(kubelet: Kubelet) -> Router {
    Router::new()
        .merge(kubelet.health().router())
        .route("/pods", get(pods))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(crate::exec::exec).post(crate::exec::exec),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(crate::exec::attach).post(crate::exec::attach),
        )
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
        .route(
            "/portForward/{ns}/{pod}",
            get(port_forward).post(port_forward),
        )
        .route(
            "/portForward/{ns}/{pod}/{uid}",
            get(port_forward_uid).post(port_forward_uid),
        )
        .with_state(kubelet)
}

/// How long a client may take to send a request's headers, and an idle
/// keep-alive connection to start its next request, before the connection
/// is closed (the apiserver's default, Kubernetes' 32 s).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(32);

/// The most connections served at once; more are closed on accept, so
/// clients cannot use up the kubelet's file descriptors.
pub const MAX_CONNECTIONS: usize = 1024;

/// Serves `router(kubelet)` on `listener` until the task is aborted.
///
/// Hand-written instead of `axum::serve`, which has no header-read timeout:
/// a client that sent nothing held its connection for ever.
///
/// # Errors
///
/// None today: accept errors (out of file descriptors) are logged and
/// retried after a pause.
pub async fn serve(kubelet: Kubelet, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_with(kubelet, listener, HEADER_READ_TIMEOUT, MAX_CONNECTIONS).await
}

/// [`serve`] with the given bounds (tests use small ones).
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with(
    kubelet: Kubelet,
    listener: tokio::net::TcpListener,
    header_read_timeout: std::time::Duration,
    max_connections: usize,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let app = router(kubelet);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: {max_connections} open");
            continue;
        };
        // Exec's small frames go out at once rather than after the
        // peer's delayed ACK (Nagle): tens of ms per exec otherwise.
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // hyper's timeout starts after hyper-util has read the first
            // bytes (to tell HTTP/1 from 2): a client sending nothing
            // would wait there for ever.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                tracing::debug!(%peer, "connection closed: no request within {header_read_timeout:?}");
                return;
            }
            if let Err(error) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

async fn port_forward(
    State(kubelet): State<Kubelet>,
    Path((ns, pod)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    crate::portforward::handle(kubelet, ns, pod, request).await
}

async fn port_forward_uid(
    State(kubelet): State<Kubelet>,
    Path((ns, pod, _uid)): Path<(String, String, String)>,
    request: axum::extract::Request,
) -> Response {
    crate::portforward::handle(kubelet, ns, pod, request).await
}

async fn pods(State(kubelet): State<Kubelet>) -> Json<serde_json::Value> {
    Json(json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": kubelet.pods(),
    }))
}

async fn logs(
    State(kubelet): State<Kubelet>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(found) = kubelet.pods().into_iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str())
            && p.metadata.name.as_deref() == Some(pod.as_str())
    }) else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found on this node\n"),
        )
            .into_response();
    };
    let in_spec = found
        .spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == container));
    if !in_spec {
        return (
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {ns}/{pod} not found\n"),
        )
            .into_response();
    }
    let status = found
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container));
    let previous = query.get("previous").is_some_and(|v| v == "true");
    let id = match log_instance(status, &pod, &container, previous) {
        Ok(id) => id,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let (options, limit) = match log_options(&query, jiff::Timestamp::now().as_second()) {
        Ok(parsed) => parsed,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    match kubelet.runtime().follow_logs(&id, &options).await {
        Ok(chunks) => {
            let body = axum::body::Body::from_stream(
                limit_bytes(chunks, limit)
                    .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string()))),
            );
            ([("content-type", "text/plain")], body).into_response()
        }
        // The instance the status named is gone (removed since): as absent.
        Err(crate::runtime::Error::NotFound(_)) => (
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {ns}/{pod} not found\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The runtime's log options and the byte limit of a `/containerLogs`
/// query; `now` (UNIX seconds) turns `sinceSeconds` into a time, as
/// Kubernetes' kubelet does. The apiserver has validated the values; the
/// kubelet still refuses what it cannot use.
fn log_options(
    query: &HashMap<String, String>,
    now: i64,
) -> Result<(crate::runtime::LogOptions, Option<u64>), String> {
    let number = |key: &str| -> Result<Option<u64>, String> {
        query
            .get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|e| format!("invalid {key} {v:?}: {e}"))
            })
            .transpose()
    };
    let yes = |key: &str| query.get(key).is_some_and(|v| v == "true" || v == "1");
    let since = match (number("sinceSeconds")?, query.get("sinceTime")) {
        (Some(_), Some(_)) => {
            return Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into())
        }
        (Some(seconds), None) => {
            Some(now.saturating_sub(i64::try_from(seconds).unwrap_or(i64::MAX)))
        }
        (None, Some(time)) => Some(
            time.parse::<jiff::Timestamp>()
                .map_err(|e| format!("invalid sinceTime {time:?}: {e}"))?
                .as_second(),
        ),
        (None, None) => None,
    };
    let options = crate::runtime::LogOptions {
        follow: yes("follow"),
        tail: number("tailLines")?,
        since,
        timestamps: yes("timestamps"),
    };
    Ok((options, number("limitBytes")?))
}

/// The first `limit` bytes of a log stream (all of it without a limit),
/// cut mid-line as Kubernetes does; ending the stream early drops the
/// runtime's (a follow ends there too).
fn limit_bytes(
    chunks: futures::stream::BoxStream<'static, crate::runtime::Result<Vec<u8>>>,
    limit: Option<u64>,
) -> futures::stream::BoxStream<'static, crate::runtime::Result<Vec<u8>>> {
    let Some(limit) = limit else {
        return chunks;
    };
    futures::stream::unfold((chunks, limit), |(mut chunks, left)| async move {
        if left == 0 {
            return None;
        }
        let mut chunk = chunks.next().await?;
        let mut left = left;
        if let Ok(bytes) = &mut chunk {
            let keep = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
            bytes.truncate(keep);
            left -= keep as u64;
        }
        Some((chunk, (chunks, left)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerStatus;
    use serde_json::json;

    use super::{log_instance, NoLog};

    fn status(value: serde_json::Value) -> ContainerStatus {
        let mut base = json!({"name": "c", "image": "i", "imageID": "", "ready": false,
                              "restartCount": 1});
        if let (Some(b), Some(v)) = (base.as_object_mut(), value.as_object()) {
            b.extend(v.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn terminated(id: &str) -> serde_json::Value {
        json!({"terminated": {"exitCode": 1, "containerID": id}})
    }

    /// Which instance each state's log requests read, as Kubernetes'
    /// `validateContainerLogStatus` decides.
    #[test]
    fn previous_reads_the_instance_behind_last_state_terminated() {
        let running = json!({"running": {}});
        let back_off = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let cases = [
            // (state, containerID, lastState, previous, expected)
            (
                &running,
                "docker://new",
                Some("docker://old"),
                false,
                Ok("new"),
            ),
            (
                &running,
                "docker://new",
                Some("docker://old"),
                true,
                Ok("old"),
            ),
            // Backing off: the dead instance is both current and previous.
            (
                &back_off,
                "docker://old",
                Some("docker://old"),
                false,
                Ok("old"),
            ),
            (
                &back_off,
                "docker://old",
                Some("docker://old"),
                true,
                Ok("old"),
            ),
            (&running, "docker://new", None, false, Ok("new")),
            (&running, "docker://new", None, true, Err("previous")),
            (
                &terminated("docker://done"),
                "docker://done",
                None,
                false,
                Ok("done"),
            ),
            (
                &terminated("docker://done"),
                "docker://done",
                None,
                true,
                Err("previous"),
            ),
            (&terminated(""), "", Some("docker://old"), false, Ok("old")),
            (&terminated(""), "", None, false, Err("terminated")),
        ];
        for (i, (state, id, last, previous, expected)) in cases.into_iter().enumerate() {
            let mut s = json!({"state": state, "containerID": id});
            if let Some(last) = last {
                s["lastState"] = terminated(last);
            }
            let got = log_instance(Some(&status(s)), "p", "c", previous);
            match (expected, got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "case {i}"),
                (Err("previous"), Err(NoLog::NoPrevious { .. }))
                | (Err("terminated"), Err(NoLog::Terminated { .. })) => {}
                (want, got) => panic!("case {i}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_container_that_never_ran_has_no_log_and_says_why() {
        let pulling = status(json!({"state": {"waiting": {"reason": "ErrImagePull"}}}));
        let err = log_instance(Some(&pulling), "p", "c", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container \"c\" in pod \"p\" is waiting to start: image can't be pulled"
        );
        let err = log_instance(Some(&pulling), "p", "c", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        assert!(matches!(
            log_instance(None, "p", "c", false),
            Err(NoLog::NotAvailable { .. })
        ));
    }

    #[tokio::test]
    async fn log_queries_become_runtime_options_and_a_byte_limit() {
        use futures::StreamExt;
        let query = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let (options, limit) = super::log_options(
            &query(&[
                ("sinceSeconds", "60"),
                ("tailLines", "2"),
                ("timestamps", "true"),
                ("follow", "true"),
                ("limitBytes", "5"),
            ]),
            1000,
        )
        .unwrap();
        assert_eq!(
            options,
            crate::runtime::LogOptions {
                follow: true,
                tail: Some(2),
                since: Some(940),
                timestamps: true
            }
        );
        assert_eq!(limit, Some(5));
        let (options, _) =
            super::log_options(&query(&[("sinceTime", "1970-01-01T00:01:40Z")]), 1000).unwrap();
        assert_eq!(options.since, Some(100));
        assert!(super::log_options(&query(&[("tailLines", "-1")]), 0).is_err());

        let chunks = futures::stream::iter(vec![
            Ok(b"abc".to_vec()),
            Ok(b"defg".to_vec()),
            Ok(b"h".to_vec()),
        ])
        .boxed();
        let cut: Vec<_> = super::limit_bytes(chunks, Some(5))
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(cut, [b"abc".to_vec(), b"de".to_vec()]);
    }
}
