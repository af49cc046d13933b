//! `--floor`: what the least possible apiserver would do for a create, so
//! that the report can say how much of the gap to etcd's own transaction
//! any apiserver must pay on this machine and how much is ours.
//!
//! The floor is an HTTP/1 server in this process that, for each `POST`,
//! reads the whole body, writes a copy of the stored pod with the very
//! transaction the apiserver sends (`create_revision == 0` → put), and
//! answers 201 with those bytes, as the apiserver answers with the created
//! pod. Like the apiserver's watch cache it keeps an etcd watch (with
//! previous values) over what it writes and reads every event, because
//! etcd's work for that watch is part of what a create costs it. It
//! decodes, validates and encodes nothing: that is the apiserver's share.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use etcd_client::{Client, WatchOptions};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{create_txn, BENCH_PREFIX, REQUEST_TIMEOUT};

/// The largest body the floor reads; the benchmark's pods are ~1 KB.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The running floor server and its watch.
pub(super) struct FloorServer {
    url: String,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Watch events read so far (every create should bring one).
    events: Arc<AtomicUsize>,
}

/// What every request handler shares.
struct Shared {
    etcd: Client,
    value: Bytes,
    prefix: String,
    next: AtomicUsize,
}

impl FloorServer {
    /// Listens on a free loopback port and watches the keys it will write.
    pub(super) async fn start(etcd: &Client, value: &[u8]) -> Result<Self> {
        let prefix = format!("{BENCH_PREFIX}/floor/");
        let mut stream = etcd
            .clone()
            .watch(
                prefix.as_str(),
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .context("watching the floor's keys")?;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the floor server")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = watch::channel(false);
        let events = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();

        let counted = events.clone();
        let mut stop_watch = stopped.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    message = stream.message() => match message {
                        Ok(Some(response)) => {
                            counted.fetch_add(response.events().len(), Ordering::Relaxed);
                        }
                        Ok(None) | Err(_) => return,
                    },
                    _ = stop_watch.changed() => return,
                }
            }
        });

        let shared = Arc::new(Shared {
            etcd: etcd.clone(),
            value: Bytes::copy_from_slice(value),
            prefix,
            next: AtomicUsize::new(0),
        });
        let mut stop_accept = stopped;
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = stop_accept.changed() => break,
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut stop_connection = stop_accept.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(create(&shared, request).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = stop_connection.changed() => {}
                    }
                });
            }
            connections.shutdown().await;
        });
        Ok(Self {
            url,
            stop,
            tasks,
            events,
        })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Watch events the floor has read.
    pub(super) fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes the connections and the watch.
    pub(super) async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One create: the body read, the transaction, the stored bytes answered.
async fn create(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, body: Bytes| {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        response
    };
    if request.method() != hyper::Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    }
    if let Err(e) = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        return answer(
            StatusCode::BAD_REQUEST,
            Bytes::from(format!("reading the body: {e}")),
        );
    }
    let n = shared.next.fetch_add(1, Ordering::Relaxed);
    let key = format!("{}{n:08}", shared.prefix);
    let txn = create_txn(key, shared.value.to_vec());
    let mut etcd = shared.etcd.clone();
    match tokio::time::timeout(REQUEST_TIMEOUT, etcd.txn(txn)).await {
        Ok(Ok(response)) if response.succeeded() => {
            answer(StatusCode::CREATED, shared.value.clone())
        }
        Ok(Ok(_)) => answer(StatusCode::CONFLICT, Bytes::from_static(b"the key existed")),
        Ok(Err(e)) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from(e.to_string()),
        ),
        Err(_) => answer(
            StatusCode::GATEWAY_TIMEOUT,
            Bytes::from_static(b"etcd did not answer"),
        ),
    }
}
