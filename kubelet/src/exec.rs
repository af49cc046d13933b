//! `/exec/{ns}/{pod}/{container}` and `/attach/{ns}/{pod}/{container}`:
//! a command run in (or a terminal attached to) a running container, over
//! a WebSocket speaking Kubernetes' channel protocols
//! ([`api_types::remotecommand`]: `v5.channel.k8s.io`, `v4.channel.k8s.io`,
//! `channel.k8s.io`).
//!
//! The request is checked before the upgrade (options, pod, container
//! running, a free stream slot), so a bad one gets an HTTP error the
//! apiserver passes on. After the upgrade, the runtime's [`Session`] is
//! pumped both ways until the process's output ends; then the error
//! channel carries the final `Status` (the exit code). A client that goes
//! away ends the exec's process (SIGKILL, as containerd's CRI does when
//! the stream's context ends); an attach leaves the container running.
//! Every stream is bounded by an idle timeout (Kubernetes'
//! `--streaming-connection-idle-timeout`) and counts against a maximum of
//! concurrent streams per kubelet.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_types::remotecommand::{self, Options, Protocol, TerminalSize};
use async_trait::async_trait;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{BoxStream, SplitSink};
use futures::{SinkExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::runtime::Runtime;
use crate::Kubelet;

/// Bounds of exec and attach streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A stream with no byte either way for this long is closed
    /// (`--streaming-connection-idle-timeout`, Kubernetes' 4 h).
    pub idle_timeout: Duration,
    /// Streams open at once on this kubelet; more are refused with 429.
    pub max_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(4 * 3600),
            max_streams: 256,
        }
    }
}

/// The open exec and attach streams of one kubelet (a count: tests and
/// `/healthz?verbose` read it).
#[derive(Clone, Debug, Default)]
pub struct Streams(Arc<AtomicUsize>);

impl Streams {
    /// Streams open now (upgraded and not yet finished).
    pub fn open(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn take(&self, max: usize) -> Option<Slot> {
        let taken = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Slot(self.0.clone()))
    }
}

/// One counted stream, given back on drop (whatever ends the stream).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A chunk of a process's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Standard output (everything, with a TTY).
    Stdout(Vec<u8>),
    /// Standard error.
    Stderr(Vec<u8>),
}

/// What a runtime hands back for an exec or attach: the process's input,
/// its output (ending when the process does, or its streams close) and a
/// handle on it.
pub struct Session {
    /// Its standard input (when asked for); shut down for EOF.
    pub input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Its output as it comes.
    pub output: BoxStream<'static, crate::runtime::Result<Output>>,
    /// Resize, exit code, kill.
    pub control: Box<dyn Control>,
}

/// The operations on a running exec or attach besides its bytes.
#[async_trait]
pub trait Control: Send + Sync {
    /// The terminal's new size (TTY sessions).
    async fn resize(&self, size: TerminalSize) -> crate::runtime::Result<()>;

    /// Once the output ended: the command's exit code (exec), `None` for
    /// an attach (Kubernetes reports an attach as a success).
    async fn exit_code(&self) -> crate::runtime::Result<Option<i64>>;

    /// Ends the process if it still runs (the client went away).
    async fn kill(&self) -> crate::runtime::Result<()>;
}

/// Exec or attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
}

/// `/exec/{ns}/{pod}/{container}`.
pub async fn exec(
    State(kubelet): State<Kubelet>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> Response {
    serve(kubelet, Kind::Exec, &ns, &pod, &container, &query, request).await
}

/// `/attach/{ns}/{pod}/{container}`.
pub async fn attach(
    State(kubelet): State<Kubelet>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> Response {
    serve(
        kubelet,
        Kind::Attach,
        &ns,
        &pod,
        &container,
        &query,
        request,
    )
    .await
}

fn refuse(code: StatusCode, message: impl std::fmt::Display) -> Response {
    (code, format!("{message}\n")).into_response()
}

/// The running instance of `container` of pod `ns/name` from the status
/// this kubelet reported; Kubernetes' kubelet messages otherwise.
fn running_instance(
    kubelet: &Kubelet,
    ns: &str,
    name: &str,
    container: &str,
) -> Result<String, (StatusCode, String)> {
    let Some(pod) = kubelet.pods().into_iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(ns) && p.metadata.name.as_deref() == Some(name)
    }) else {
        return Err((StatusCode::NOT_FOUND, "pod does not exist".to_string()));
    };
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .and_then(|c| c.container_id.as_deref())
        .filter(|id| !id.is_empty())
        .map(|id| id.strip_prefix("docker://").unwrap_or(id).to_string())
        .ok_or_else(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("container not found ({container:?})"),
            )
        })
}

async fn serve(
    kubelet: Kubelet,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
    request: Request,
) -> Response {
    let options = match Options::from_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .and_then(|o| o.validate(kind == Kind::Exec).map(|()| o))
    {
        Ok(options) => options,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let id = match running_instance(&kubelet, ns, pod, container) {
        Ok(id) => id,
        Err((code, message)) => return refuse(code, message),
    };
    let (mut parts, _body) = request.into_parts();
    let offered = parts
        .headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(protocol) = remotecommand::negotiate(offered.as_deref()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "requested protocol(s) are not supported: {}; supports {:?}",
                offered.unwrap_or_default(),
                remotecommand::PROTOCOLS
            ),
        );
    };
    let mut upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        // SPDY (kubectl's fallback) and plain requests.
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "only WebSocket upgrades are supported ({})",
                    remotecommand::PROTOCOLS.join(", ")
                ),
            )
        }
    };
    let limits = kubelet.exec_limits();
    let Some(slot) = kubelet.exec_streams().take(limits.max_streams) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many exec/attach streams: {} are open on this node, the most allowed",
                limits.max_streams
            ),
        );
    };
    if offered.is_some() {
        upgrade.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    }
    let runtime = kubelet.runtime().clone();
    upgrade.on_upgrade(move |socket| async move {
        let _slot = slot;
        pump(
            socket,
            protocol,
            runtime,
            kind,
            id,
            options,
            limits.idle_timeout,
        )
        .await;
    })
}

async fn start(
    runtime: &dyn Runtime,
    kind: Kind,
    id: &str,
    options: &Options,
) -> crate::runtime::Result<Session> {
    match kind {
        Kind::Exec => runtime.exec_session(id, options).await,
        Kind::Attach => runtime.attach_session(id, options).await,
    }
}

/// Moves bytes both ways until the process's output ends, the client goes
/// away or the stream idles out.
async fn pump(
    socket: WebSocket,
    protocol: Protocol,
    runtime: Arc<dyn Runtime>,
    kind: Kind,
    id: String,
    options: Options,
    idle: Duration,
) {
    let (mut sink, mut stream) = socket.split();
    let send =
        |channel: u8, data: &[u8]| Message::Binary(remotecommand::frame(channel, data).into());
    // An empty message on the first writable channel tells the client the
    // stream is set up, as Kubernetes' kubelet does.
    let first = if options.stdout {
        remotecommand::STDOUT
    } else if options.stderr {
        remotecommand::STDERR
    } else {
        remotecommand::ERROR
    };
    if sink.send(send(first, &[])).await.is_err() {
        return;
    }
    let session = match start(runtime.as_ref(), kind, &id, &options).await {
        Ok(session) => session,
        Err(error) => {
            let what = if kind == Kind::Exec {
                "executing command in container"
            } else {
                "attaching to container"
            };
            let status = remotecommand::internal_error(&format!("error {what}: {error}"));
            send_status_and_close(&mut sink, protocol, &status).await;
            return;
        }
    };
    let Session {
        mut input,
        mut output,
        control,
    } = session;
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    let mut failed = None;
    loop {
        tokio::select! {
            chunk = output.next() => {
                deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                let (channel, data) = match chunk {
                    Some(Ok(Output::Stdout(data))) if options.stdout => (remotecommand::STDOUT, data),
                    Some(Ok(Output::Stderr(data))) if options.stderr => (remotecommand::STDERR, data),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        failed = Some(error.to_string());
                        break;
                    }
                    None => break,
                };
                if sink.send(send(channel, &data)).await.is_err() {
                    gone(control.as_ref(), kind, &id).await;
                    return;
                }
            }
            message = stream.next() => {
                deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        gone(control.as_ref(), kind, &id).await;
                        return;
                    }
                };
                match remotecommand::parse(protocol, &data) {
                    Ok(remotecommand::Message::Data { channel: remotecommand::STDIN, data }) => {
                        if let Some(writer) = input.as_mut() {
                            if writer.write_all(data).await.is_err() || writer.flush().await.is_err() {
                                input = None;
                            }
                        }
                    }
                    Ok(remotecommand::Message::Data { channel: remotecommand::RESIZE, data }) => {
                        if let Some(size) = TerminalSize::parse(data) {
                            if let Err(error) = control.resize(size).await {
                                tracing::debug!(%id, %error, "resize failed");
                            }
                        }
                    }
                    Ok(remotecommand::Message::Close { channel: remotecommand::STDIN }) => {
                        // EOF for the process: half-close its input.
                        if let Some(mut writer) = input.take() {
                            let _ = writer.shutdown().await;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%id, %error, "bad message"),
                }
            }
            () = &mut deadline => {
                tracing::debug!(%id, "stream idle for {idle:?}: closed");
                gone(control.as_ref(), kind, &id).await;
                let _ = sink.send(normal_close()).await;
                return;
            }
        }
    }
    drop(input);
    let status = match (failed, control.exit_code().await) {
        (Some(error), _) => remotecommand::internal_error(&error),
        (None, Ok(code)) => remotecommand::exit_status(code.unwrap_or(0), &options.command),
        (None, Err(error)) => remotecommand::internal_error(&error.to_string()),
    };
    send_status_and_close(&mut sink, protocol, &status).await;
}

/// Ends a stream as the client expects: the outcome on the error channel,
/// then a normal close. Send errors are ignored: the client may be gone,
/// and there is no one left to tell.
async fn send_status_and_close(
    sink: &mut SplitSink<WebSocket, Message>,
    protocol: Protocol,
    status: &Status,
) {
    let payload = remotecommand::error_payload(protocol, status);
    let frame = remotecommand::frame(remotecommand::ERROR, &payload);
    let _ = sink.send(Message::Binary(frame.into())).await;
    let _ = sink.send(normal_close()).await;
}

/// A close frame with code 1000: client-go reads it as the end of every
/// channel, while a close without a code (1005) is an error to it.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

/// The client is gone: an exec's process is ended, an attach just detached.
async fn gone(control: &dyn Control, kind: Kind, id: &str) {
    if kind == Kind::Exec {
        if let Err(error) = control.kill().await {
            tracing::warn!(%id, %error, "cannot end the exec of a vanished client");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_counted_up_to_the_limit_and_given_back() {
        let streams = Streams::default();
        let a = streams.take(2);
        let b = streams.take(2);
        assert!(a.is_some() && b.is_some());
        assert!(streams.take(2).is_none());
        assert_eq!(streams.open(), 2);
        drop(a);
        assert_eq!(streams.open(), 1);
        assert!(streams.take(2).is_some());
    }
}
