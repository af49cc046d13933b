//! `pods/{name}/exec` and `pods/{name}/attach`: checked here, then relayed
//! to the pod's kubelet as Kubernetes' upgrade-aware proxy does.
//!
//! The request's options and target are validated before any upgrade
//! (Kubernetes' messages and codes: 404 for a missing pod, 400 for a bad
//! container, a pod without a node or a finished one), so a client's
//! refusal is a `Status`. The upgrade request then goes to the kubelet
//! (built by [`crate::kubelet_client::request`]); a kubelet answer other
//! than `101` is passed back as it is (kubectl shows the kubelet's message,
//! e.g. `container not found ("c")`); a `101` is answered `101` with the
//! kubelet's `Sec-WebSocket-Accept` and chosen subprotocol, and the two
//! upgraded connections are spliced until either side closes or nothing
//! moves for [`IDLE_TIMEOUT`].
//!
//! These are long-running requests: `--request-timeout` does not apply and
//! they take no in-flight slot (`http::limits`), as in Kubernetes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_types::kinds;
use api_types::remotecommand::Options;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{ApiError, Result};
use crate::http::path::Version;
use crate::kubelet_client::{self, Transport};
use crate::server::ApiState;

/// A relayed stream with no byte either way for this long is closed (the
/// kubelet's own `--streaming-connection-idle-timeout` default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Bytes moved per read and write each way of a relayed stream: tokio's
/// default (8 KiB) costs a port-forward's bulk transfer four times the
/// system calls and wake-ups.
const RELAY_BUFFER: usize = 64 * 1024;

/// The most of a kubelet's refusal that is read and passed on.
const MAX_KUBELET_ERROR_BYTES: usize = 64 * 1024;

/// The kubelet answer headers passed back with a `101`.
const UPGRADE_HEADERS: [&str; 5] = [
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// Which subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Attach => "attach",
        }
    }
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec`.
pub async fn exec(
    State(state): State<Arc<ApiState>>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> axum::response::Response {
    answer(relay(&state, Kind::Exec, &ns, &name, &query, request).await)
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/attach`.
pub async fn attach(
    State(state): State<Arc<ApiState>>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> axum::response::Response {
    answer(relay(&state, Kind::Attach, &ns, &name, &query, request).await)
}

fn answer(result: Result<axum::response::Response>) -> axum::response::Response {
    result.unwrap_or_else(|error| {
        crate::http::error_response(Version::V1, Some(&kinds::PODS), &error)
    })
}

/// Checks the request as Kubernetes' `ExecREST`/`AttachREST` and the
/// kubelet would, before anything is upgraded.
async fn check(
    state: &ApiState,
    kind: Kind,
    ns: &str,
    name: &str,
    query: &[(String, String)],
) -> Result<(Options, kubelet_client::Kubelet)> {
    let mut options = Options::from_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let target =
        kubelet_client::pod_target(state.storage.as_ref(), ns, name, Some(&options.container))
            .await?;
    options
        .validate(kind == Kind::Exec)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let phase = target
        .pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot {} a container in a completed pod; current phase is {phase}",
            if kind == Kind::Exec {
                "exec into"
            } else {
                "attach to"
            }
        )));
    }
    options.container = target.container;
    Ok((options, target.kubelet))
}

async fn relay(
    state: &ApiState,
    kind: Kind,
    ns: &str,
    name: &str,
    query: &[(String, String)],
    request: Request,
) -> Result<axum::response::Response> {
    let (options, kubelet) = check(state, kind, ns, name, query).await?;
    let encoded: Vec<String> = options
        .to_pairs()
        .iter()
        .map(|(k, v)| format!("{k}={}", kubelet_client::encode(v)))
        .collect();
    let path = format!(
        "/{}/{}/{}/{}?{}",
        kind.path(),
        kubelet_client::encode(ns),
        kubelet_client::encode(name),
        kubelet_client::encode(&options.container),
        encoded.join("&")
    );
    let what = format!("{} {ns}/{name}/{}", kind.path(), options.container);
    relay_upgrade(&state.kubelet, &kubelet, &path, request, what).await
}

/// Sends the client's upgrade request to `path_and_query` on `kubelet`
/// (built by [`kubelet_client::request`]); a kubelet answer other than
/// `101` is passed back as it is, a `101` is answered `101` with the
/// kubelet's upgrade headers and the two upgraded connections are spliced
/// until either side closes or nothing moves for [`IDLE_TIMEOUT`]. Shared
/// by exec, attach and port-forward.
///
/// # Errors
///
/// A bad URI (500), an unreachable kubelet (503).
pub async fn relay_upgrade(
    transport: &dyn Transport,
    kubelet: &kubelet_client::Kubelet,
    path: &str,
    mut request: Request,
    what: String,
) -> Result<axum::response::Response> {
    let upstream = kubelet_client::request(
        transport,
        kubelet,
        request.method().clone(),
        path,
        request.headers(),
    )?;
    let client_upgrade = hyper::upgrade::on(&mut request);
    let mut response = kubelet_client::send(transport, upstream).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(refusal(response).await);
    }
    let kubelet_upgrade = hyper::upgrade::on(&mut response);
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for header in UPGRADE_HEADERS {
        for value in response.headers().get_all(header) {
            answer.headers_mut().append(header, value.clone());
        }
    }
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::join!(client_upgrade, kubelet_upgrade) {
            (Ok(client), Ok(kubelet)) => (client, kubelet),
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%what, %error, "upgrade failed");
                return;
            }
        };
        let idle = splice(TokioIo::new(client), TokioIo::new(kubelet), IDLE_TIMEOUT).await;
        tracing::debug!(%what, idle, "stream ended");
    });
    Ok(answer.into_response())
}

/// The kubelet's refusal as it came: status, type and (bounded) body.
async fn refusal(response: Response<hyper::body::Incoming>) -> axum::response::Response {
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let body = http_body_util::Limited::new(response.into_body(), MAX_KUBELET_ERROR_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_else(|_| format!("the kubelet answered {status}").into());
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = status;
    if let Some(content_type) = content_type {
        answer.headers_mut().insert("content-type", content_type);
    }
    answer
}

/// An IO that counts the bytes through it, so a watchdog can tell idleness.
struct Counted<I> {
    io: I,
    moved: Arc<AtomicU64>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            self.moved
                .fetch_add(u64::try_from(read).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Copies both ways between `a` and `b` until both directions ended, one
/// failed, or no byte moved for a whole `idle` period (checked once per
/// period, so an idle stream lives between `idle` and twice it). Whether
/// it ended idle.
pub async fn splice<A, B>(a: A, b: B, idle: Duration) -> bool
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let moved = Arc::new(AtomicU64::new(0));
    let mut a = Counted {
        io: a,
        moved: moved.clone(),
    };
    let mut b = Counted {
        io: b,
        moved: moved.clone(),
    };
    let watchdog = async {
        let mut seen = moved.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(idle).await;
            let now = moved.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    tokio::select! {
        result = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, RELAY_BUFFER, RELAY_BUFFER) => {
            if let Err(error) = result {
                tracing::debug!(%error, "relay ended with an error");
            }
            false
        }
        () = watchdog => true,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn splice_moves_bytes_both_ways_and_ends_with_the_sides() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut kubelet) = tokio::io::duplex(64);
        let relay = tokio::spawn(splice(a, b, Duration::from_secs(3600)));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        kubelet.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        kubelet.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        drop(client);
        drop(kubelet);
        assert!(!relay.await.unwrap(), "ended by the sides, not idle");
    }

    #[tokio::test]
    async fn an_idle_splice_is_cut() {
        let (_client, a) = tokio::io::duplex(64);
        let (b, _kubelet) = tokio::io::duplex(64);
        assert!(splice(a, b, Duration::from_millis(50)).await);
    }
}
