//! The HTTP side: an HTTP/1.1 server (hyper) that routes each request
//! through the current [`Table`] and forwards it, body streamed both ways,
//! over a pooled keep-alive client.
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
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::routes::{Route, Table};

/// The body of every answer: the backend's, streamed, or one of ours.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// The bounds of the server and of its upstream requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A client must send a request's headers within this (slowloris).
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
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Routes and forwards requests.
pub struct Proxy {
    table: watch::Receiver<Arc<Table>>,
    client: Client<HttpConnector, Incoming>,
    /// The port clients reached us on (`X-Forwarded-Port`), made once.
    port: HeaderValue,
    limits: Limits,
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
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    // hyper frames the body itself.
    headers.remove(header::TRANSFER_ENCODING);
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

impl Proxy {
    /// A proxy reading its routes from `table`; `port` is the one clients
    /// connect to.
    pub fn new(table: watch::Receiver<Arc<Table>>, port: u16, limits: Limits) -> Self {
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
            port: HeaderValue::from(port),
            limits,
        }
    }

    /// Answers one request from `client_addr`.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Response<Body> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| request.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let path = request.uri().path().to_string();
        // Cloned out so that a table swapped in meanwhile does not wait on
        // this request (a watch read holds a lock while borrowed).
        let table = self.table.borrow().clone();
        let backend = match table.route(&host, &path) {
            Route::Backend(backend) => backend,
            Route::Unavailable(why) => {
                tracing::debug!(%host, %path, %why, "503");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("503 Service Unavailable: {why}\n"),
                );
            }
            Route::NotFound => {
                tracing::debug!(%host, %path, "no rule matches: 404");
                return plain(
                    StatusCode::NOT_FOUND,
                    format!(
                        "404 Not Found: no Ingress rule matches host {host:?} and path {path:?}, and no Ingress has a default backend\n"
                    ),
                );
            }
        };
        drop(table);
        let Some(addr) = backend.pick() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "503 Service Unavailable: {} has no endpoints\n",
                    backend.name
                ),
            );
        };
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri = match Uri::builder()
            .scheme("http")
            .authority(addr.to_string())
            .path_and_query(path_and_query)
            .build()
        {
            Ok(uri) => uri,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("400 Bad Request: {e}\n")),
        };
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_11;
        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
        let client_ip = client_addr.ip().to_string();
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) if !earlier.is_empty() => format!("{earlier}, {client_ip}"),
            _ => client_ip,
        };
        for (name, value) in [
            ("x-forwarded-for", forwarded_for.as_str()),
            ("x-forwarded-host", host.as_str()),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-port"),
            self.port.clone(),
        );
        // The Host the client asked for reaches the backend as it was,
        // as ingress controllers do (virtual hosts behind the service).
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, value);
        }
        let sent = tokio::time::timeout(
            self.limits.upstream_response_timeout,
            self.client.request(request),
        )
        .await;
        match sent {
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
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

/// Serves `listener` until `stop` resolves, then stops accepting and gives
/// open connections [`Limits::shutdown_grace`] to finish.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    stop: impl std::future::Future<Output = ()>,
) {
    let limits = proxy.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, client_addr) = tokio::select! {
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
        let proxy = proxy.clone();
        let service = service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, client_addr).await) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%client_addr, %error, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}
