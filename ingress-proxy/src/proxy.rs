//! The HTTP side: an HTTP/1.1 server (hyper), plain or TLS, that routes
//! each request through the current [`Table`] and forwards it, body
//! streamed both ways, over a pooled keep-alive client; an `Upgrade`
//! (WebSocket) is passed through and then joined byte for byte
//! ([`crate::tunnel`]).
//!
//! The table is read from a `watch` channel once per request: a change
//! swaps in a new table for the next requests while those in flight keep
//! the backend they were given, so no connection is dropped by a change.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::routes::{Route, Table};

/// The body of every answer: the backend's, streamed, or one of ours.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// The bounds of the server and of its upstream requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A client must send a request's headers (and finish a TLS handshake)
    /// within this (slowloris).
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Connecting to an endpoint may take this long (then 502).
    pub upstream_connect_timeout: Duration,
    /// An endpoint must answer with its headers within this (then 504);
    /// the body then streams without a deadline.
    pub upstream_response_timeout: Duration,
    /// Idle pooled upstream connections are closed after this.
    pub upstream_idle_timeout: Duration,
    /// An upgraded connection (WebSocket) is closed after this long
    /// without a byte either way (ingress-nginx's `proxy-read-timeout`).
    pub upgrade_idle_timeout: Duration,
    /// On shutdown, connections get this long to finish their requests.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(90),
            upgrade_idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// One listener's side of the proxy: what it tells backends
/// (`X-Forwarded-Proto`, `X-Forwarded-Port`), and its TLS if any.
#[derive(Clone)]
pub struct Front {
    pub(crate) proto: HeaderValue,
    pub(crate) port: HeaderValue,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Front {
    /// Plain HTTP on `port`.
    pub fn http(port: u16) -> Self {
        Self {
            proto: HeaderValue::from_static("http"),
            port: HeaderValue::from(port),
            tls: None,
        }
    }

    /// HTTPS on `port` with `config` (certificates chosen by SNI,
    /// [`crate::tls::server_config`]).
    pub fn https(port: u16, config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            proto: HeaderValue::from_static("https"),
            port: HeaderValue::from(port),
            tls: Some(tokio_rustls::TlsAcceptor::from(config)),
        }
    }
}

/// Routes and forwards requests.
pub struct Proxy {
    pub(crate) table: watch::Receiver<Arc<Table>>,
    client: Client<HttpConnector, Incoming>,
    pub(crate) limits: Limits,
}

/// Headers that belong to one hop and are not forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(connection) = headers.get(header::CONNECTION) {
        // Rare (keep-alive is HTTP/1.1's default): the allocation is paid
        // only when a client names headers.
        let named: Vec<HeaderName> = connection
            .to_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    // hyper frames the body itself.
    headers.remove(header::TRANSFER_ENCODING);
}

/// The protocol a request asks to switch to: its `Upgrade` header when its
/// `Connection` header lists `upgrade` (RFC 9110 7.8).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts back the two headers an upgrade needs after the hop-by-hop ones
/// were dropped.
fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the proxy knows of one client connection.
pub(crate) struct Peer {
    addr: SocketAddr,
    /// `addr`'s IP as a header value, made once per connection.
    pub(crate) ip: HeaderValue,
}

impl Proxy {
    /// A proxy reading its routes from `table`.
    pub fn new(table: watch::Receiver<Arc<Table>>, limits: Limits) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(limits.upstream_connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(limits.upstream_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            table,
            client,
            limits,
        }
    }

    /// Answers one request from `peer` that came in through `front`.
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        peer: &Peer,
        front: &Front,
    ) -> Response<Body> {
        // The Host as sent (a cheap clone of its bytes); an absolute-form
        // request without one names it in its URI.
        let host = match request.headers().get(header::HOST) {
            Some(host) => host.clone(),
            None => request
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| HeaderValue::from_static("")),
        };
        let host_text = host.to_str().unwrap_or_default();
        // A read of the watch holds its lock only for the lookup; the route
        // keeps the backend alive if a new table is swapped in meanwhile.
        let route = self.table.borrow().route(host_text, request.uri().path());
        let backend = match route {
            Route::Backend(backend) => backend,
            Route::Unavailable(why) => {
                tracing::debug!(host = %host_text, path = %request.uri().path(), %why, "503");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("503 Service Unavailable: {why}\n"),
                );
            }
            Route::NotFound => {
                let path = request.uri().path();
                tracing::debug!(host = %host_text, %path, "no rule matches: 404");
                return plain(
                    StatusCode::NOT_FOUND,
                    format!(
                        "404 Not Found: no Ingress rule matches host {host_text:?} and path {path:?}, and no Ingress has a default backend\n"
                    ),
                );
            }
        };
        let Some((addr, authority)) = backend.pick() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "503 Service Unavailable: {} has no endpoints\n",
                    backend.name
                ),
            );
        };
        let mut parts = Uri::builder().scheme("http").authority(authority.clone());
        if let Some(path_and_query) = request.uri().path_and_query() {
            parts = parts.path_and_query(path_and_query.clone());
        }
        let uri = match parts.build() {
            Ok(uri) => uri,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("400 Bad Request: {e}\n")),
        };
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_11;
        let upgrade = upgrade_of(request.headers());
        let downstream = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
        if let Some(protocol) = upgrade {
            set_upgrade(headers, protocol);
        }
        let forwarded_for = match headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        {
            Some(earlier) => HeaderValue::from_str(&format!(
                "{earlier}, {}",
                peer.ip.to_str().unwrap_or_default()
            ))
            .unwrap_or_else(|_| peer.ip.clone()),
            None => peer.ip.clone(),
        };
        headers.insert(HeaderName::from_static("x-forwarded-for"), forwarded_for);
        headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            front.proto.clone(),
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-port"),
            front.port.clone(),
        );
        // The Host the client asked for reaches the backend as it was,
        // as ingress controllers do (virtual hosts behind the service).
        headers.insert(header::HOST, host);
        let sent = tokio::time::timeout(
            self.limits.upstream_response_timeout,
            self.client.request(request),
        )
        .await;
        match sent {
            Ok(Ok(mut response)) => {
                let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                let protocol = switched
                    .then(|| response.headers().get(header::UPGRADE).cloned())
                    .flatten();
                strip_hop_by_hop(response.headers_mut());
                match (switched, downstream, protocol) {
                    (false, _, _) => {}
                    (true, Some(downstream), Some(protocol)) => {
                        set_upgrade(response.headers_mut(), protocol);
                        let upstream = hyper::upgrade::on(&mut response);
                        let idle = self.limits.upgrade_idle_timeout;
                        let name = backend.name.clone();
                        let client = peer.addr;
                        tokio::spawn(async move {
                            match tokio::try_join!(downstream, upstream) {
                                Ok((down, up)) => {
                                    let end = crate::tunnel::join(
                                        TokioIo::new(down),
                                        TokioIo::new(up),
                                        idle,
                                    )
                                    .await;
                                    tracing::debug!(%client, backend = %name, ?end, "upgraded connection ended");
                                }
                                Err(error) => {
                                    tracing::debug!(%client, backend = %name, %error, "upgrade failed");
                                }
                            }
                        });
                    }
                    // A switch nobody asked for, or to no protocol: the
                    // client could not follow it.
                    (true, _, _) => {
                        return plain(
                            StatusCode::BAD_GATEWAY,
                            format!(
                                "502 Bad Gateway: {} at {addr} switched protocols unasked\n",
                                backend.name
                            ),
                        );
                    }
                }
                response.map(|body| body.boxed_unsync())
            }
            Ok(Err(error)) => {
                tracing::debug!(backend = %backend.name, %addr, %error, "upstream failed: 502");
                plain(
                    StatusCode::BAD_GATEWAY,
                    format!("502 Bad Gateway: {} at {addr}: {error}\n", backend.name),
                )
            }
            Err(_) => plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "504 Gateway Timeout: {} at {addr} sent no answer within {:?}\n",
                    backend.name, self.limits.upstream_response_timeout
                ),
            ),
        }
    }
}

/// Serves one client connection until it ends or `draining` turns true
/// (then its current request finishes and it closes).
async fn connection<I>(
    io: I,
    proxy: Arc<Proxy>,
    peer: Arc<Peer>,
    front: Front,
    mut draining: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The common request is forwarded without hyper (why: `fast`'s
    // module doc); the rest of the connection is hyper's from the first
    // request that is not.
    let io = match crate::fast::serve(io, &proxy, &peer, &front, &mut draining).await {
        crate::fast::Outcome::Closed => return,
        crate::fast::Outcome::Hyper(io) => io,
    };
    let limits = &proxy.limits;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let addr = peer.addr;
    let service = {
        let proxy = proxy.clone();
        service_fn(move |request| {
            let (proxy, peer, front) = (proxy.clone(), peer.clone(), front.clone());
            async move { Ok::<_, Infallible>(proxy.handle(request, &peer, &front).await) }
        })
    };
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let drained = async move {
        // The borrow `wait_for` returns is dropped here, not held across
        // the connection's end.
        let _ = draining.wait_for(|d| *d).await;
    };
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = drained => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = ended {
        tracing::trace!(client = %addr, %error, "connection ended");
    }
}

/// Serves `listener` through `front` until `stop` resolves, then stops
/// accepting and gives open connections [`Limits::shutdown_grace`] to
/// finish their requests.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    front: Front,
    stop: impl std::future::Future<Output = ()>,
) {
    let limits = proxy.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, addr) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let peer = Arc::new(Peer {
            addr,
            ip: HeaderValue::from_str(&addr.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
        });
        let (proxy, front, draining) = (proxy.clone(), front.clone(), draining.clone());
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            match &front.tls {
                None => connection(stream, proxy, peer, front, draining).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(tls)) => connection(tls, proxy, peer, front, draining).await,
                        Ok(Err(error)) => {
                            tracing::debug!(client = %addr, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = drain.send(true);
    // Every connection holds a slot: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn an_upgrade_needs_both_headers() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_of(&ws).unwrap(), "websocket");
        assert!(upgrade_of(&headers(&[("upgrade", "websocket")])).is_none());
        assert!(upgrade_of(&headers(&[("connection", "upgrade")])).is_none());
    }

    #[test]
    fn hop_by_hop_headers_go_with_those_connection_names() {
        let mut h = headers(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-kept"]
        );
    }
}
