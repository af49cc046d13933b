//! `/portForward/{ns}/{pod}`: TCP connections to a pod's ports, made from
//! inside the pod's network namespace (so a server bound to 127.0.0.1 in
//! the pod is reachable), carried over one of the protocols clients speak:
//!
//! - SPDY/3.1 (kubectl): on a WebSocket whose subprotocol is
//!   `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+ tries it first; the
//!   apiserver relays the bytes), or on a plain `Upgrade: SPDY/3.1`
//!   connection (its fallback). [`session`], over the framer in [`spdy`].
//! - WebSocket channels, `v4.channel.k8s.io` (the Python client, `ctl`):
//!   [`websocket`].
//!
//! A session's connections are dialled by a thread that entered the infra
//! container's network namespace (`/proc/<pid>/ns/net`), opened the socket
//! and ended; the socket is then used from tokio like any other (the
//! workspace allows no `unsafe`, and `setns` on a tokio worker would move
//! every task that later runs on it).
//!
//! Bounds: a session idle (no byte either way) for
//! [`Limits::idle_timeout`] is closed (Kubernetes'
//! `--streaming-connection-idle-timeout`, 4 h); a stream waiting for its
//! pair longer than [`Limits::stream_creation_timeout`] is reset; at most
//! [`Limits::per_session`] forwarded connections per session and
//! [`Limits::per_kubelet`] in all (more are refused, RST_STREAM
//! `REFUSED_STREAM`), and [`Limits::sessions`] sessions (more are answered
//! 429). [`Registry`] counts what is open.

pub mod session;
pub mod spdy;
pub mod websocket;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// The SPDY subprotocol kubectl asks for.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunneled in binary messages.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The bounds of port-forward sessions.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A session with no traffic this long is closed.
    pub idle_timeout: Duration,
    /// How long the first stream of a connection waits for its pair.
    pub stream_creation_timeout: Duration,
    /// Forwarded connections open at once in one session.
    pub per_session: usize,
    /// Forwarded connections open at once on this kubelet.
    pub per_kubelet: usize,
    /// Sessions open at once on this kubelet.
    pub sessions: usize,
}

impl Default for Limits {
    /// Kubernetes' kubelet defaults for the timeouts; the counts are ours
    /// (Kubernetes sets none): a browser opens a few dozen connections
    /// through one forward.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(4 * 3600),
            stream_creation_timeout: Duration::from_secs(30),
            per_session: 128,
            per_kubelet: 1024,
            sessions: 256,
        }
    }
}

/// Counts of open sessions and forwarded connections (cloning shares).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    sessions: AtomicUsize,
    forwards: AtomicUsize,
}

/// Held while a session is open.
#[derive(Debug)]
pub struct SessionGuard(Arc<Counts>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held while a forwarded connection is open.
#[derive(Debug)]
pub struct ForwardGuard(Arc<Counts>);

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        self.0.forwards.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Registry {
    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.counts.sessions.load(Ordering::SeqCst)
    }

    /// Forwarded connections open now.
    pub fn forwards(&self) -> usize {
        self.counts.forwards.load(Ordering::SeqCst)
    }

    /// Counts a session while the guard lives (the limit is checked
    /// before the upgrade, by [`Registry::has_room`]).
    pub fn session(&self) -> SessionGuard {
        self.counts.sessions.fetch_add(1, Ordering::SeqCst);
        SessionGuard(self.counts.clone())
    }

    /// Whether one more session is allowed.
    pub fn has_room(&self, limits: &Limits) -> bool {
        self.sessions() < limits.sessions
    }

    /// A slot for one more forwarded connection of a session that has
    /// `in_session` open, or `None` over a limit.
    pub fn forward(&self, in_session: usize, limits: &Limits) -> Option<ForwardGuard> {
        if in_session >= limits.per_session {
            return None;
        }
        let counts = &self.counts;
        counts
            .forwards
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limits.per_kubelet).then_some(n + 1)
            })
            .ok()
            .map(|_| ForwardGuard(counts.clone()))
    }
}

/// Opens connections to a pod's ports.
#[async_trait]
pub trait Dial: Send + Sync + 'static {
    /// A connection to `port` of the pod, or the message the client's
    /// error stream gets.
    async fn dial(&self, port: u16) -> Result<tokio::net::TcpStream, String>;
}

/// Dials `localhost:port` inside a network namespace.
pub struct NetnsDial {
    /// `/proc/<pid>/ns/net` of the pod's infra container.
    pub netns: PathBuf,
    /// The infra container's id (Kubernetes names the sandbox in errors).
    pub sandbox: String,
    /// `ns/name` of the pod, for logs.
    pub pod: String,
}

/// How long a connect inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl Dial for NetnsDial {
    async fn dial(&self, port: u16) -> Result<tokio::net::TcpStream, String> {
        let netns = self.netns.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("portforward-dial".into())
            .spawn(move || {
                let _ = tx.send(connect_in(&netns, port));
            });
        let fail = |why: String| {
            format!(
                "error forwarding port {port} to pod {}, uid : {why}",
                self.sandbox
            )
        };
        if let Err(e) = spawned {
            return Err(fail(format!("cannot start a thread: {e}")));
        }
        let stream = match rx.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(why)) => {
                return Err(fail(format!(
                    "failed to connect to localhost:{port} inside namespace {:?}, {why}",
                    self.sandbox
                )))
            }
            Err(_) => return Err(fail("the dialling thread died".into())),
        };
        tracing::debug!(pod = %self.pod, port, "port-forward: connected");
        tokio::net::TcpStream::from_std(stream).map_err(|e| fail(e.to_string()))
    }
}

/// On the calling thread (which it moves into `netns`: call it on a
/// thread of its own): 127.0.0.1, then ::1, as Kubernetes' runtimes try.
fn connect_in(netns: &std::path::Path, port: u16) -> Result<std::net::TcpStream, String> {
    let file = std::fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("cannot enter {}: {e}", netns.display()))?;
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let err4 = match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => return nonblocking(s),
        Err(e) => e,
    };
    let err6 = match std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
        Ok(s) => return nonblocking(s),
        Err(e) => e,
    };
    Err(format!(
        "IPv4: dial tcp4 {v4}: connect: {} IPv6 dial tcp6 {v6}: connect: {} ",
        go_error(&err4),
        go_error(&err6)
    ))
}

fn nonblocking(s: std::net::TcpStream) -> Result<std::net::TcpStream, String> {
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// An errno as Go prints it (`connection refused`), which clients match.
fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            text.to_lowercase()
        }
    }
}

/// `GET|POST /portForward/{ns}/{pod}`: an upgrade to one of the protocols
/// above; errors before it are plain-text answers (404 for a pod this
/// kubelet does not run, 400 for one that is not running or a bad query,
/// 429 over the session limit).
pub async fn handle(
    kubelet: crate::Kubelet,
    namespace: String,
    name: String,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use futures::StreamExt;

    let text = |code: StatusCode, message: String| (code, format!("{message}\n")).into_response();
    let limits = kubelet.config().port_forward;
    let registry = kubelet.port_forwards().clone();
    if !registry.has_room(&limits) {
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many port-forward sessions ({})", limits.sessions),
        );
    }
    let query: Vec<(String, String)> =
        match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri()) {
            Ok(axum::extract::Query(q)) => q,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.body_text()),
        };
    let dial: Arc<dyn Dial> = match target(&kubelet, &namespace, &name).await {
        Ok(dial) => Arc::new(dial),
        Err((code, message)) => return text(code, message),
    };
    let (mut parts, _body) = request.into_parts();
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if upgrade.eq_ignore_ascii_case("websocket") {
        let offered: Vec<String> = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .collect();
        let ws =
            match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
                Ok(ws) => ws,
                Err(rejection) => return rejection.into_response(),
            };
        if offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
            return ws
                .protocols([TUNNEL_PROTOCOL])
                .on_upgrade(move |socket| async move {
                    let (sink, stream) = socket.split();
                    session::serve(
                        session::WireIn::Ws(stream),
                        session::WireOut::Ws(sink),
                        dial,
                        registry,
                        limits,
                    )
                    .await;
                });
        }
        let ports = match websocket::ports(&query) {
            Ok(ports) => ports,
            Err(message) => return text(StatusCode::BAD_REQUEST, message),
        };
        return ws
            .protocols([websocket::V4_BINARY])
            .on_upgrade(move |socket| websocket::serve(socket, ports, dial, registry, limits));
    }
    if !upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        return text(
            StatusCode::BAD_REQUEST,
            "Upgrade request required".to_string(),
        );
    }
    // Kubernetes' handshake: a client naming protocols must name ours.
    let versions: Vec<&str> = parts
        .headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !versions.is_empty() && !versions.contains(&PROTOCOL) {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, server supports [\"{PROTOCOL}\"]"
            ),
        );
    }
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unable to upgrade: connection cannot be upgraded".to_string(),
        );
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let (read, write) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
                session::serve(
                    session::WireIn::Io(Box::new(read)),
                    session::WireOut::Io(Box::new(write)),
                    dial,
                    registry,
                    limits,
                )
                .await;
            }
            Err(error) => tracing::debug!(%error, "port-forward: upgrade failed"),
        }
    });
    axum::http::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", PROTOCOL)
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Where the pod's ports are: its running infra container's network
/// namespace.
async fn target(
    kubelet: &crate::Kubelet,
    namespace: &str,
    name: &str,
) -> Result<NetnsDial, (axum::http::StatusCode, String)> {
    use crate::runtime::{ContainerState, INFRA_CONTAINER_NAME};
    use axum::http::StatusCode;

    let pod = kubelet
        .pods()
        .into_iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(name)
        })
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("pod {namespace}/{name} not found on this node"),
            )
        })?;
    let uid = crate::pod::pod_uid(&pod).to_string();
    let internal = |e: crate::runtime::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let containers = kubelet
        .runtime()
        .list_pod_containers(Some(&uid))
        .await
        .map_err(internal)?;
    let infra = containers
        .iter()
        .find(|c| c.container_name() == INFRA_CONTAINER_NAME && c.state == ContainerState::Running)
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("pod {namespace}/{name} is not running"),
            )
        })?;
    let netns = kubelet
        .runtime()
        .network_namespace(&infra.id)
        .await
        .map_err(internal)?;
    Ok(NetnsDial {
        netns,
        sandbox: infra.id.clone(),
        pod: format!("{namespace}/{name}"),
    })
}
