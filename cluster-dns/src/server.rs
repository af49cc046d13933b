//! The DNS side: a hickory `RequestHandler` that answers from
//! [`records::answer`](crate::records::answer()), and the loops that feed it
//! from UDP and TCP. The loops are ours rather than hickory's
//! `ServerFuture`, which spawns a task per datagram, accepts TCP
//! connections without limit and logs every answer at info: here a fixed
//! number of UDP workers and a cap on TCP connections bound what a flood
//! can take.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::{Edns, Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_proto::tcp::TcpStream;
use hickory_proto::xfer::Protocol;
use hickory_server::authority::{MessageRequest, MessageResponse, MessageResponseBuilder};
use hickory_server::server::{
    Request, RequestHandler, ResponseHandle, ResponseHandler, ResponseInfo, TimeoutStream,
};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::Semaphore;

use crate::records::{self, Objects, Zone};

/// The largest UDP answer we send, whatever a client's EDNS offers: the
/// DNS Flag Day 2020 size, which fits any path's MTU; a longer answer is
/// truncated (TC) and the client asks again over TCP.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The caches, as [`Objects`].
#[derive(Clone)]
pub struct StoreObjects {
    /// Every service.
    pub services: Store<Service>,
    /// Every endpoints object.
    pub endpoints: Store<Endpoints>,
}

impl Objects for StoreObjects {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>> {
        self.endpoints.get(&ObjectRef::new(name).within(namespace))
    }

    fn has_namespace(&self, namespace: &str) -> bool {
        // Only asked for `<ns>.svc.<zone>` itself, which clients rarely
        // query: a scan is cheaper than keeping an index current.
        self.services
            .state()
            .iter()
            .any(|s| s.metadata.namespace.as_deref() == Some(namespace))
    }
}

/// Counters of what was answered, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Questions answered (any code).
    pub queries: AtomicU64,
    /// Of which NXDOMAIN.
    pub nxdomain: AtomicU64,
    /// Of which REFUSED (outside the zone, or not a query).
    pub refused: AtomicU64,
    /// TCP connections turned away because the limit was reached.
    pub tcp_rejected: AtomicU64,
}

/// Answers every question from `objects` once `ready` is raised (SERVFAIL
/// before: an empty cache would otherwise answer NXDOMAIN for names that
/// exist, and resolvers cache that).
#[derive(Clone)]
pub struct Handler<O> {
    zone: Zone,
    objects: O,
    ready: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl<O> Handler<O> {
    /// A handler for `zone` reading `objects`.
    pub fn new(zone: Zone, objects: O, ready: Arc<AtomicBool>, counters: Arc<Counters>) -> Self {
        Self {
            zone,
            objects,
            ready,
            counters,
        }
    }
}

#[async_trait::async_trait]
impl<O: Objects + Send + Sync + Unpin + 'static> RequestHandler for Handler<O> {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(asked) = request.edns() {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            builder.edns(edns);
        }
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(false);
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return send_code(&mut response_handle, builder, header, ResponseCode::NotImp).await;
        }
        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => {
                // Not exactly one question.
                return send_code(&mut response_handle, builder, header, ResponseCode::FormErr)
                    .await;
            }
        };
        if !self.ready.load(Ordering::Acquire) {
            return send_code(
                &mut response_handle,
                builder,
                header,
                ResponseCode::ServFail,
            )
            .await;
        }
        let query = info.query.original();
        let answer = records::answer(&self.zone, &self.objects, query.name(), query.query_type());
        tracing::debug!(
            src = %request.src(),
            name = %query.name(),
            qtype = %query.query_type(),
            code = %answer.code,
            answers = answer.answers.len(),
            "answered"
        );
        match answer.code {
            ResponseCode::NXDomain => {
                self.counters.nxdomain.fetch_add(1, Ordering::Relaxed);
            }
            ResponseCode::Refused => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        header.set_response_code(answer.code);
        header.set_authoritative(answer.code != ResponseCode::Refused);
        let response = builder.build(
            header,
            answer.answers.iter(),
            std::iter::empty(),
            answer.authority.iter(),
            answer.additionals.iter(),
        );
        send(&mut response_handle, response, header).await
    }
}

/// Answers with `code` and no records: a request not served, or not yet.
async fn send_code<R: ResponseHandler>(
    handle: &mut R,
    builder: MessageResponseBuilder<'_>,
    mut header: Header,
    code: ResponseCode,
) -> ResponseInfo {
    header.set_response_code(code);
    send(handle, builder.build_no_records(header), header).await
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    header: Header,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            // The client went away or the socket broke: nothing to retry.
            tracing::debug!(%error, "cannot send a DNS response");
            let mut header = header;
            header.set_response_code(ResponseCode::ServFail);
            header.into()
        }
    }
}

/// How the TCP side is bounded.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    /// Connections served at once; one more is closed at accept.
    pub max_connections: usize,
    /// A connection that sends no complete question for this long is closed.
    pub idle_timeout: Duration,
}

/// Serves DNS over TCP on `listener` until `stop` resolves: each
/// connection's questions answered one after another (so one client holds
/// one handler at a time), at most `limits.max_connections` connections,
/// each closed after `limits.idle_timeout` without a question. A message
/// is at most 65,535 bytes by the protocol's two-byte length prefix.
pub async fn serve_tcp<H: RequestHandler>(
    listener: tokio::net::TcpListener,
    handler: Arc<H>,
    limits: TcpLimits,
    counters: Arc<Counters>,
    stop: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, src) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Per-connection errors (reset before accept, out of fds):
                // keep accepting, after a breath so a full fd table does
                // not spin.
                tracing::warn!(%error, "dns tcp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counters.tcp_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, "dns tcp connection limit reached; closing");
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        connections.spawn(async move {
            let _permit = permit;
            serve_connection(stream, src, handler, limits.idle_timeout).await;
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<H: RequestHandler>(
    stream: tokio::net::TcpStream,
    src: SocketAddr,
    handler: Arc<H>,
    idle_timeout: Duration,
) {
    let (messages, stream_handle) = TcpStream::from_stream(AsyncIoTokioAsStd(stream), src);
    let mut messages = TimeoutStream::new(messages, idle_timeout);
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // Idle too long, a broken frame or a closed socket.
                tracing::debug!(%src, %error, "dns tcp connection closed");
                return;
            }
        };
        let mut decoder = BinDecoder::new(message.bytes());
        let request = match MessageRequest::read(&mut decoder) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%src, %error, "undecodable dns message; closing");
                return;
            }
        };
        if request.message_type() == MessageType::Response {
            continue;
        }
        let request = Request::new(request, src, Protocol::Tcp);
        let response = ResponseHandle::new(src, stream_handle.clone(), Protocol::Tcp);
        handler.handle_request(&request, response).await;
    }
}

/// Sends one UDP answer: encoded no larger than the response's EDNS
/// payload (512 bytes without EDNS), truncated with TC set past it.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<tokio::net::UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> std::io::Result<ResponseInfo> {
        let max_size = response
            .get_edns()
            .as_ref()
            .map_or(512, |edns| edns.max_payload().max(512));
        let mut buffer = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_max_size(max_size);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(std::io::Error::other)?;
        self.socket.send_to(&buffer, self.dst).await?;
        Ok(info)
    }
}

/// Serves DNS over UDP on `socket` until `stop` resolves, with `workers`
/// tasks each answering one datagram at a time: concurrency and memory
/// are bounded (a worker holds one 4,096-byte buffer, hickory's receive
/// size; a longer datagram is cut and fails to decode), and a flood queues
/// in the socket's receive buffer, where the kernel drops the excess.
pub async fn serve_udp<H: RequestHandler>(
    socket: tokio::net::UdpSocket,
    handler: Arc<H>,
    workers: usize,
    stop: impl std::future::Future<Output = ()>,
) {
    let socket = Arc::new(socket);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (socket, handler) = (socket.clone(), handler.clone());
        tasks.spawn(async move {
            let mut buffer = vec![0u8; hickory_proto::udp::MAX_RECEIVE_BUFFER_SIZE];
            loop {
                let (len, src) = match socket.recv_from(&mut buffer).await {
                    Ok(received) => received,
                    Err(error) => {
                        // ICMP errors of earlier sends surface here on
                        // Linux; the socket itself is still good.
                        tracing::debug!(%error, "dns udp receive failed");
                        continue;
                    }
                };
                if src.port() == 0 {
                    continue;
                }
                let mut decoder = BinDecoder::new(&buffer[..len]);
                let Ok(request) = MessageRequest::read(&mut decoder) else {
                    tracing::debug!(%src, "undecodable dns datagram");
                    continue;
                };
                if request.message_type() == MessageType::Response {
                    // Never answer an answer (reflection loops).
                    continue;
                }
                let request = Request::new(request, src, Protocol::Udp);
                let responder = UdpResponder {
                    socket: socket.clone(),
                    dst: src,
                };
                handler.handle_request(&request, responder).await;
            }
        });
    }
    stop.await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}
