//! Bounds on requests, as Kubernetes' handler chain: in-flight limits
//! (`--max-requests-inflight`, `--max-mutating-requests-inflight`, 429 with
//! `Retry-After: 1` past them), the request timeout (`--request-timeout`,
//! 504) for all but long-running requests, and a cap on the watches one
//! client holds open (`--max-watches-per-client`); and a deadline for a
//! connection's first byte.
//!
//! Hand-written rather than tower's `ConcurrencyLimit` + `LoadShed` and
//! `Timeout`: those queue or fail with opaque errors, and the limits here
//! depend on the request (mutating or not, long-running or not, which
//! client), and every refusal must be a `Status`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use api_types::status::Reason;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::path::{self, Target, Version};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A connection's IO that fails its reads if no byte has come by a
/// deadline. hyper's header-read timeout starts only once hyper-util's
/// automatic HTTP/1-or-2 detection has read the first bytes, so a client
/// that connects (or finishes a TLS handshake) and sends nothing would
/// otherwise hold its connection for ever.
pub struct FirstByteDeadline<I> {
    io: I,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> FirstByteDeadline<I> {
    /// `io`, whose first byte must come within `limit`.
    pub fn new(io: I, limit: Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstByteDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request within the header read timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstByteDeadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The address a connection came from, added to each of its requests by
/// the accept loop; watches are counted per IP address.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The configured bounds and what is in use of them.
pub struct Limits {
    readonly: Option<(usize, Arc<Semaphore>)>,
    mutating: Option<(usize, Arc<Semaphore>)>,
    request_timeout: Duration,
    min_request_timeout: Duration,
    max_watches_per_client: usize,
    /// Open watches per client; an entry goes when its count reaches 0.
    watches: Arc<Mutex<HashMap<Option<IpAddr>, usize>>>,
    metrics: Arc<Metrics>,
}

impl Limits {
    /// Limits from the flags (0 is no limit, as in Kubernetes).
    pub fn new(config: &crate::server::Config, metrics: Arc<Metrics>) -> Self {
        let semaphore = |n: usize| (n > 0).then(|| (n, Arc::new(Semaphore::new(n))));
        Self {
            readonly: semaphore(config.max_requests_inflight),
            mutating: semaphore(config.max_mutating_requests_inflight),
            request_timeout: config.request_timeout,
            min_request_timeout: Duration::from_secs(config.min_request_timeout),
            max_watches_per_client: config.max_watches_per_client,
            watches: Arc::default(),
            metrics,
        }
    }

    /// How long a watch without `timeoutSeconds` stays open: a random time
    /// between `--min-request-timeout` and twice it, as Kubernetes spreads
    /// them so clients do not all come back at once.
    pub fn watch_timeout(&self) -> Duration {
        // The low 32 bits of a v4 UUID are random.
        let low = uuid::Uuid::new_v4().as_u128() & u128::from(u32::MAX);
        let fraction = f64::from(u32::try_from(low).unwrap_or(0)) / f64::from(u32::MAX);
        self.min_request_timeout.mul_f64(1.0 + fraction)
    }

    /// A slot for one watch of `client`, or `None` when it holds the most.
    fn watch_slot(&self, client: Option<IpAddr>) -> Option<WatchSlot> {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let count = watches.entry(client).or_insert(0);
        if self.max_watches_per_client > 0 && *count >= self.max_watches_per_client {
            return None;
        }
        *count += 1;
        Some(WatchSlot {
            client,
            watches: self.watches.clone(),
        })
    }
}

/// One counted watch; dropped with the watch's response body.
struct WatchSlot {
    client: Option<IpAddr>,
    watches: Arc<Mutex<HashMap<Option<IpAddr>, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = watches.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                watches.remove(&self.client);
            }
        }
    }
}

/// What kind of request this is, for the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A watch: long-running, counted per client.
    Watch,
    /// Logs (and, in Kubernetes, exec, attach, proxy, portforward):
    /// long-running, not limited.
    LongRunning,
    /// create, update, patch, delete.
    Mutating,
    /// Everything else: get, list, discovery, health, metrics.
    ReadOnly,
}

fn kind_of(request: &Request) -> Kind {
    let target: Option<Target> = path::parse(request.uri().path()).ok().flatten();
    if let Some(target) = &target {
        let watch_param = request.uri().query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| matches!(pair, "watch=true" | "watch=1"))
        });
        if *request.method() == Method::GET && (target.watch_prefix || watch_param) {
            return Kind::Watch;
        }
        if matches!(
            target.subresource.as_deref(),
            Some("log" | "exec" | "attach" | "proxy" | "portforward")
        ) {
            return Kind::LongRunning;
        }
    }
    match *request.method() {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Kind::Mutating,
        _ => Kind::ReadOnly,
    }
}

/// A 429 TooManyRequests Status with `Retry-After: 1`, as Kubernetes'
/// max-in-flight filter answers.
fn too_many(message: String) -> Response {
    let mut error = ApiError::new(Reason::TooManyRequests, message);
    error.0.details = Some(api_types::v1::StatusDetails {
        retry_after_seconds: Some(1),
        ..Default::default()
    });
    let mut response = super::error_response(Version::V1, None, &error);
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    response
}

/// The middleware: refuses past the limits, times out what is not
/// long-running, and counts watches until their stream ends.
pub async fn enforce(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    match kind_of(&request) {
        Kind::LongRunning => next.run(request).await,
        Kind::Watch => {
            let client = request
                .extensions()
                .get::<ClientAddr>()
                .map(|addr| addr.0.ip());
            let Some(slot) = limits.watch_slot(client) else {
                return too_many(format!(
                    "Too many requests, please try again later: this client holds {} watches, the most allowed (--max-watches-per-client)",
                    limits.max_watches_per_client
                ));
            };
            let response = next.run(request).await;
            // The slot lives as long as the watch's body is being sent.
            response.map(|body| {
                Body::from_stream(body.into_data_stream().map(move |chunk| {
                    let _counted = &slot;
                    chunk
                }))
            })
        }
        kind @ (Kind::Mutating | Kind::ReadOnly) => {
            let (limit, flag, label) = if kind == Kind::Mutating {
                (
                    &limits.mutating,
                    "max-mutating-requests-inflight",
                    "mutating",
                )
            } else {
                (&limits.readonly, "max-requests-inflight", "readOnly")
            };
            let _permit: Option<OwnedSemaphorePermit> = match limit {
                None => None,
                Some((max, semaphore)) => match semaphore.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        limits.metrics.inflight_refused(label);
                        return too_many(format!(
                            "Too many requests, please try again later: {max} {label} requests are in flight, the most allowed (--{flag})"
                        ));
                    }
                },
            };
            let _inflight = limits.metrics.inflight_started(label);
            let timeout = limits.request_timeout;
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                // The handler is dropped at its next await: a write already
                // sent to etcd may still land, as with Kubernetes' timeout
                // filter, which leaves the handler running.
                Err(_) => super::error_response(
                    Version::V1,
                    None,
                    &ApiError::new(
                        Reason::Timeout,
                        format!(
                            "Timeout: request did not complete within the allotted timeout of {timeout:?} (--request-timeout)"
                        ),
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, uri: &str) -> Kind {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        kind_of(&request)
    }

    #[test]
    fn requests_are_sorted_as_kubernetes_does() {
        assert_eq!(kind(Method::GET, "/api/v1/pods?watch=true"), Kind::Watch);
        assert_eq!(kind(Method::GET, "/api/v1/pods?a=b&watch=1"), Kind::Watch);
        assert_eq!(kind(Method::GET, "/api/v1/watch/pods"), Kind::Watch);
        assert_eq!(kind(Method::GET, "/api/v1beta1/watch/pods"), Kind::Watch);
        assert_eq!(
            kind(Method::GET, "/api/v1/namespaces/a/pods/p/log?follow=true"),
            Kind::LongRunning
        );
        assert_eq!(kind(Method::GET, "/api/v1/pods"), Kind::ReadOnly);
        assert_eq!(
            kind(Method::GET, "/api/v1/pods?watch=false"),
            Kind::ReadOnly
        );
        assert_eq!(kind(Method::GET, "/version"), Kind::ReadOnly);
        assert_eq!(
            kind(Method::POST, "/api/v1/namespaces/a/pods"),
            Kind::Mutating
        );
        assert_eq!(
            kind(Method::DELETE, "/api/v1/namespaces/a/pods/p"),
            Kind::Mutating
        );
    }

    #[test]
    fn watch_slots_are_counted_per_client_and_given_back() {
        let mut config = crate::server::Config::with_etcd(Vec::new());
        config.max_watches_per_client = 2;
        let limits = Limits::new(&config, Arc::new(Metrics::new()));
        let timeout = limits.watch_timeout();
        assert!((1800..=3600).contains(&timeout.as_secs()), "{timeout:?}");
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let first = limits.watch_slot(a);
        let second = limits.watch_slot(a);
        assert!(first.is_some() && second.is_some());
        assert!(limits.watch_slot(a).is_none());
        assert!(limits.watch_slot(b).is_some());
        drop(first);
        assert!(limits.watch_slot(a).is_some());
    }
}
