//! One SPDY port-forward session (kubectl's protocol, Kubernetes'
//! `pkg/kubelet/cri/streaming/portforward/httpstream.go`): the client opens
//! two streams per forwarded connection, `streamtype: error` and
//! `streamtype: data`, tied by `requestid` and naming the `port`. Each
//! stream is answered at once (SYN_REPLY); when both of a request have
//! come, a connection to the port is opened in the pod and bytes flow
//! between it and the data stream. A connection that cannot be made puts
//! Kubernetes' message on the error stream and closes the data stream;
//! otherwise the error stream closes empty when the forward ends.
//!
//! The transport is either an upgraded HTTP/1.1 connection or a WebSocket
//! carrying the SPDY bytes in binary messages (`Wire`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::spdy::{self, Frame, FLAG_FIN};
use super::{Dial, Limits, Registry};

/// How many frames may wait for the writer; a full queue slows the
/// forwards (their pod reads wait) rather than growing.
const OUT_QUEUE: usize = 64;
/// Chunks of client data that may wait for one pod connection.
const IN_QUEUE: usize = 16;
/// Largest DATA payload sent (and read from the pod at once): kubectl's
/// spdystream pays per frame (an allocation, a channel hand-off, a read
/// through its WebSocket tunnel), so frames are made large.
const CHUNK: usize = 128 * 1024;
/// Bytes of queued frames coalesced into one write (one WebSocket message).
const COALESCE: usize = 256 * 1024;

/// The reading half of a session's transport.
pub enum WireIn {
    /// Raw bytes (an upgraded connection; a duplex in tests).
    Io(Box<dyn AsyncRead + Send + Unpin>),
    /// SPDY bytes in binary WebSocket messages.
    Ws(SplitStream<WebSocket>),
}

/// The writing half of a session's transport.
pub enum WireOut {
    /// Raw bytes.
    Io(Box<dyn AsyncWrite + Send + Unpin>),
    /// One binary WebSocket message per write.
    Ws(SplitSink<WebSocket, Message>),
}

impl WireIn {
    /// Appends what arrives to `buf`; `false` at the end of the stream.
    async fn read(&mut self, buf: &mut BytesMut) -> std::io::Result<bool> {
        match self {
            Self::Io(io) => {
                buf.reserve(64 * 1024);
                Ok(io.read_buf(buf).await? > 0)
            }
            Self::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(false),
                    Some(Ok(Message::Binary(data))) => {
                        buf.extend_from_slice(&data);
                        return Ok(true);
                    }
                    Some(Ok(Message::Text(_))) => {
                        return Err(std::io::Error::other("text message in a spdy tunnel"))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                }
            },
        }
    }
}

impl WireOut {
    async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        match self {
            Self::Io(io) => {
                io.write_all(&bytes).await?;
                io.flush().await
            }
            Self::Ws(ws) => ws
                .send(Message::Binary(bytes))
                .await
                .map_err(std::io::Error::other),
        }
    }

    async fn close(&mut self) {
        let _ = match self {
            Self::Io(io) => io.shutdown().await,
            Self::Ws(ws) => ws.close().await.map_err(std::io::Error::other),
        };
    }
}

/// The two streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pending {
    port: u16,
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>)>,
    since: Option<Instant>,
}

/// Serves one session until the client goes away, the connection is idle
/// for `limits.idle_timeout`, or it breaks. Every forward is stopped when
/// it ends.
pub async fn serve(
    mut input: WireIn,
    output: WireOut,
    dial: Arc<dyn Dial>,
    registry: Registry,
    limits: Limits,
) {
    let _session = registry.session();
    let (out_tx, out_rx) = mpsc::channel::<Frame>(OUT_QUEUE);
    let activity = Arc::new(std::sync::Mutex::new(Instant::now()));
    let writer = tokio::spawn(write_frames(out_rx, output, activity.clone()));
    let mut decoder = spdy::Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    // Client data for each open data stream, and how to stop its forward.
    let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut stops: HashMap<u32, oneshot::Sender<()>> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    'session: loop {
        // Whole frames first, then more bytes.
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(%error, "port-forward: bad spdy from the client");
                    let _ = out_tx
                        .send(Frame::GoAway {
                            last_good_stream_id: 0,
                            status: 1,
                        })
                        .await;
                    break 'session;
                }
            };
            touch(&activity);
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    let _ = out_tx
                        .send(Frame::SynReply {
                            stream_id,
                            flags: 0,
                            headers: vec![],
                        })
                        .await;
                    let kind = spdy::header(&headers, "streamtype").unwrap_or_default();
                    let port = spdy::header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                    let request = spdy::header(&headers, "requestid").map(str::to_string);
                    let (Some(port), Some(request)) = (port, request) else {
                        tracing::debug!(
                            stream_id,
                            "port-forward: stream without port or requestid"
                        );
                        let _ = out_tx.send(reset(stream_id, spdy::PROTOCOL_ERROR)).await;
                        continue;
                    };
                    let entry = pending.entry(request.clone()).or_default();
                    entry.port = port;
                    entry.since.get_or_insert_with(Instant::now);
                    match kind {
                        "error" => entry.error = Some(stream_id),
                        "data" => {
                            let (tx, rx) = mpsc::channel(IN_QUEUE);
                            inbound.insert(stream_id, tx);
                            entry.data = Some((stream_id, rx));
                        }
                        other => {
                            tracing::debug!(stream_id, other, "port-forward: unknown stream type");
                            let _ = out_tx.send(reset(stream_id, spdy::PROTOCOL_ERROR)).await;
                            continue;
                        }
                    }
                    if entry.error.is_none() || entry.data.is_none() {
                        continue;
                    }
                    let Some(Pending {
                        port,
                        error: Some(error),
                        data: Some((data, rx)),
                        ..
                    }) = pending.remove(&request)
                    else {
                        continue;
                    };
                    let Some(slot) = registry.forward(stops.len(), &limits) else {
                        tracing::debug!(port, "port-forward: too many forwards, stream refused");
                        inbound.remove(&data);
                        let _ = out_tx.send(reset(error, spdy::REFUSED_STREAM)).await;
                        let _ = out_tx.send(reset(data, spdy::REFUSED_STREAM)).await;
                        continue;
                    };
                    let (stop_tx, stop_rx) = oneshot::channel();
                    stops.insert(data, stop_tx);
                    let streams = Streams {
                        port,
                        data,
                        error,
                        out: out_tx.clone(),
                    };
                    let dial = dial.clone();
                    forwards.spawn(async move {
                        let _slot = slot;
                        forward(streams, dial, rx, stop_rx).await;
                        data
                    });
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    if let Some(tx) = inbound.get(&stream_id) {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            inbound.remove(&stream_id);
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        inbound.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    inbound.remove(&stream_id);
                    if let Some(stop) = stops.remove(&stream_id) {
                        let _ = stop.send(());
                    }
                }
                // Pings from the client (odd ids) are echoed.
                Frame::Ping { id } if id % 2 == 1 => {
                    let _ = out_tx.send(Frame::Ping { id }).await;
                }
                // GOAWAY: the client closes the connection once its
                // streams are done; reading on sees that.
                _ => {}
            }
        }
        tokio::select! {
            read = tokio::time::timeout(limits.idle_timeout, input.read(&mut buf)) => match read {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => break,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "port-forward: connection broken");
                    break;
                }
                Err(_) => {}
            },
            Some(done) = forwards.join_next() => {
                if let Ok(data) = done {
                    stops.remove(&data);
                    inbound.remove(&data);
                }
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let last = *activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(last) >= limits.idle_timeout {
            tracing::debug!(
                "port-forward: session idle for {:?}, closed",
                limits.idle_timeout
            );
            break;
        }
        // A request whose second stream never came: Kubernetes' stream
        // creation timeout.
        let expired: Vec<String> = pending
            .iter()
            .filter(|(_, p)| {
                p.since
                    .is_some_and(|s| now.duration_since(s) >= limits.stream_creation_timeout)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for request in expired {
            if let Some(p) = pending.remove(&request) {
                tracing::debug!(
                    request,
                    "port-forward: timed out waiting for the second stream"
                );
                for id in p.error.into_iter().chain(p.data.map(|(id, _)| id)) {
                    inbound.remove(&id);
                    let _ = out_tx.send(reset(id, spdy::CANCEL)).await;
                }
            }
        }
    }
    forwards.shutdown().await;
    drop(out_tx);
    // The writer ends once the queue drains (the GOAWAY of a bad client
    // included); it cannot outlive a stuck peer by more than a moment.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

fn reset(stream_id: u32, status: u32) -> Frame {
    Frame::RstStream { stream_id, status }
}

fn touch(activity: &std::sync::Mutex<Instant>) {
    *activity
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
}

/// Encodes queued frames and writes them, several at a time when they
/// are queued together.
async fn write_frames(
    mut frames: mpsc::Receiver<Frame>,
    mut out: WireOut,
    activity: Arc<std::sync::Mutex<Instant>>,
) {
    let mut encoder = spdy::Encoder::new();
    let mut buf = BytesMut::with_capacity(COALESCE + CHUNK);
    while let Some(frame) = frames.recv().await {
        if let Err(error) = encoder.encode(&frame, &mut buf) {
            tracing::warn!(%error, "port-forward: cannot encode a frame");
            break;
        }
        while buf.len() < COALESCE {
            let Ok(frame) = frames.try_recv() else { break };
            if encoder.encode(&frame, &mut buf).is_err() {
                break;
            }
        }
        if out.write(buf.split().freeze()).await.is_err() {
            break;
        }
        touch(&activity);
    }
    out.close().await;
}

/// The stream ids of one forwarded connection and the way out.
struct Streams {
    port: u16,
    data: u32,
    error: u32,
    out: mpsc::Sender<Frame>,
}

impl Streams {
    async fn send(&self, stream_id: u32, flags: u8, data: Bytes) -> bool {
        self.out
            .send(Frame::Data {
                stream_id,
                flags,
                data,
            })
            .await
            .is_ok()
    }
}

/// One forwarded connection: dial, then copy both ways until the pod
/// closes its side or the client resets the data stream; then close the
/// error stream (empty: no error).
async fn forward(
    streams: Streams,
    dial: Arc<dyn Dial>,
    mut from_client: mpsc::Receiver<Bytes>,
    stop: oneshot::Receiver<()>,
) {
    let socket = match dial.dial(streams.port).await {
        Ok(socket) => socket,
        Err(message) => {
            tracing::debug!(port = streams.port, %message, "port-forward: cannot connect");
            streams
                .send(streams.error, 0, Bytes::from(message.into_bytes()))
                .await;
            streams.send(streams.error, FLAG_FIN, Bytes::new()).await;
            streams.send(streams.data, FLAG_FIN, Bytes::new()).await;
            return;
        }
    };
    let (mut pod_in, mut pod_out) = socket.into_split();
    let to_client = async {
        let mut chunk = BytesMut::with_capacity(CHUNK);
        loop {
            chunk.reserve(CHUNK);
            match pod_in.read_buf(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !streams.send(streams.data, 0, chunk.split().freeze()).await {
                        return;
                    }
                }
            }
        }
        streams.send(streams.data, FLAG_FIN, Bytes::new()).await;
    };
    // The client's FIN (its channel closing) half-closes the pod
    // connection; the pod may still answer.
    let to_pod = async {
        while let Some(bytes) = from_client.recv().await {
            if pod_out.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = pod_out.shutdown().await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = to_client => {}
        () = to_pod => {}
        _ = stop => {}
    }
    streams.send(streams.error, FLAG_FIN, Bytes::new()).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::super::spdy::{Decoder, Encoder, Frame, FLAG_FIN};
    use super::super::{Dial, Limits, Registry};
    use super::{serve, WireIn, WireOut};

    /// Dials 127.0.0.1 of this process (a test listener), or fails with
    /// a fixed message.
    struct Local(Option<u16>);

    #[async_trait::async_trait]
    impl Dial for Local {
        async fn dial(&self, _port: u16) -> Result<tokio::net::TcpStream, String> {
            match self.0 {
                Some(port) => tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("nothing listens".into()),
            }
        }
    }

    struct Client {
        io: DuplexStream,
        encoder: Encoder,
        decoder: Decoder,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut out = BytesMut::new();
            self.encoder.encode(&frame, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(frame);
                }
                let read =
                    tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
                        .await
                        .expect("a frame within 10 s")
                        .unwrap();
                if read == 0 {
                    return None;
                }
            }
        }

        async fn open(&mut self, id: u32, kind: &str, request: &str) {
            let headers = [("streamtype", kind), ("port", "80"), ("requestid", request)]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            self.send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers,
            })
            .await;
        }
    }

    fn start(dial: Local, limits: Limits) -> (Client, Registry, tokio::task::JoinHandle<()>) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(theirs);
        let registry = Registry::default();
        let task = tokio::spawn(serve(
            WireIn::Io(Box::new(read)),
            WireOut::Io(Box::new(write)),
            Arc::new(dial),
            registry.clone(),
            limits,
        ));
        let client = Client {
            io: ours,
            encoder: Encoder::new(),
            decoder: Decoder::new(),
            buf: BytesMut::new(),
        };
        (client, registry, task)
    }

    fn data(stream_id: u32, flags: u8, bytes: &'static [u8]) -> Frame {
        Frame::Data {
            stream_id,
            flags,
            data: Bytes::from_static(bytes),
        }
    }

    /// What kubectl does for one connection: error stream, data stream,
    /// bytes and FIN; the pod echoes and closes; the client sees the echo,
    /// the data stream's FIN and the error stream's empty FIN.
    #[tokio::test]
    async fn a_connection_is_forwarded_both_ways_and_closed_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
        });
        let (mut client, registry, task) = start(Local(Some(port)), Limits::default());
        client.open(1, "error", "0").await;
        client.open(3, "data", "0").await;
        client.send(data(3, 0, b"ping ")).await;
        client.send(data(3, FLAG_FIN, b"pong")).await;
        let mut echoed = Vec::new();
        let mut seen = Vec::new();
        while seen.last() != Some(&"error fin") {
            match client.next().await.unwrap() {
                Frame::SynReply { stream_id, .. } => {
                    seen.push(if stream_id == 1 { "reply 1" } else { "reply 3" })
                }
                Frame::Data {
                    stream_id: 3,
                    flags,
                    data,
                } => {
                    echoed.extend_from_slice(&data);
                    if flags & FLAG_FIN != 0 {
                        seen.push("data fin");
                    }
                }
                Frame::Data {
                    stream_id: 1,
                    flags,
                    data,
                } => {
                    assert!(data.is_empty(), "no error expected: {data:?}");
                    assert_eq!(flags, FLAG_FIN);
                    seen.push("error fin");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, ["reply 1", "reply 3", "data fin", "error fin"]);
        assert_eq!(echoed, b"ping pong");
        assert_eq!(registry.sessions(), 1);
        drop(client);
        task.await.unwrap();
        assert_eq!((registry.sessions(), registry.forwards()), (0, 0));
    }

    /// Nothing listens: the error stream carries the message and both
    /// streams close; the session stays up for the next connection and
    /// answers pings.
    #[tokio::test]
    async fn a_refused_connection_reports_on_the_error_stream_and_the_session_goes_on() {
        let (mut client, registry, task) = start(Local(None), Limits::default());
        client.open(1, "error", "0").await;
        client.open(3, "data", "0").await;
        let mut error = Vec::new();
        let mut closed = 0;
        while closed < 2 {
            match client.next().await.unwrap() {
                Frame::SynReply { .. } => {}
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    if stream_id == 1 {
                        error.extend_from_slice(&data);
                    }
                    if flags & FLAG_FIN != 0 {
                        closed += 1;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(error, b"nothing listens");
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
        drop(client);
        task.await.unwrap();
        assert_eq!(registry.sessions(), 0);
    }

    /// Over the per-session limit the streams are refused (RST_STREAM),
    /// and a stream whose pair never comes is reset after the stream
    /// creation timeout.
    #[tokio::test(start_paused = true)]
    async fn limits_refuse_streams_and_a_lone_stream_times_out() {
        let limits = Limits {
            per_session: 0,
            stream_creation_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let (mut client, _registry, _task) = start(Local(None), limits);
        client.open(1, "error", "0").await;
        client.open(3, "data", "0").await;
        let mut resets = Vec::new();
        while resets.len() < 2 {
            match client.next().await.unwrap() {
                Frame::SynReply { .. } => {}
                Frame::RstStream { stream_id, status } => {
                    assert_eq!(status, super::spdy::REFUSED_STREAM);
                    resets.push(stream_id);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        client.open(5, "error", "1").await;
        assert!(matches!(
            client.next().await,
            Some(Frame::SynReply { stream_id: 5, .. })
        ));
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream_id: 5,
                status: super::spdy::CANCEL
            })
        );
    }

    /// A session with no traffic for the idle timeout is closed.
    #[tokio::test(start_paused = true)]
    async fn an_idle_session_is_closed() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let (mut client, registry, task) = start(Local(None), limits);
        assert_eq!(client.next().await, None);
        task.await.unwrap();
        assert_eq!(registry.sessions(), 0);
    }
}
