//! Port-forward over WebSocket channels (`v4.channel.k8s.io`, what the
//! Python client and `ctl port-forward` speak; Kubernetes'
//! `pkg/kubelet/cri/streaming/portforward/websocket.go`): the ports come in
//! the query, port i has data channel 2i and error channel 2i+1, every
//! binary message starts with its channel byte, and the first message on
//! each channel is the port, two bytes little-endian. One connection per
//! port is opened at once; when every port's connection has ended the
//! WebSocket closes.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Dial, Limits, Registry};

/// `v4.channel.k8s.io`.
pub const V4_BINARY: &str = "v4.channel.k8s.io";

const CHUNK: usize = 32 * 1024;

/// The ports of a query: every `port` and `ports` value, comma-separated
/// lists allowed (the apiserver passes `ports`, Kubernetes' kubelet reads
/// `port`).
///
/// # Errors
///
/// Kubernetes' message for a missing, empty or bad port.
pub fn ports(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let values: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "port" || k == "ports")
        .map(|(_, v)| v.as_str())
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            let port: u16 = p
                .trim()
                .parse()
                .map_err(|e| format!("unable to parse {value:?} as a port: {e}"))?;
            if port == 0 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

fn message(channel: u8, data: &[u8]) -> Message {
    let mut bytes = BytesMut::with_capacity(1 + data.len());
    bytes.put_u8(channel);
    bytes.put_slice(data);
    Message::Binary(bytes.freeze())
}

/// Serves the session until every port's connection has ended or the
/// client goes away.
pub async fn serve(
    socket: WebSocket,
    ports: Vec<u16>,
    dial: Arc<dyn Dial>,
    registry: Registry,
    limits: Limits,
) {
    let _session = registry.session();
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut inbound = Vec::new();
    let mut forwards = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let Some(data) = u8::try_from(2 * i).ok().filter(|c| *c < u8::MAX) else {
            break;
        };
        let error = data + 1;
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        inbound.push(tx);
        for channel in [data, error] {
            let _ = out_tx.send(message(channel, &port.to_le_bytes())).await;
        }
        let Some(slot) = registry.forward(i, &limits) else {
            let _ = out_tx
                .send(message(error, b"too many port-forward connections"))
                .await;
            continue;
        };
        let out = out_tx.clone();
        let dial = dial.clone();
        forwards.spawn(async move {
            let _slot = slot;
            forward(port, data, error, dial, rx, out).await;
        });
    }
    loop {
        tokio::select! {
            next = tokio::time::timeout(limits.idle_timeout, stream.next()) => match next {
                Ok(Some(Ok(Message::Binary(data)))) => {
                    let Some((&channel, rest)) = data.split_first() else { continue };
                    if channel % 2 == 0 && !rest.is_empty() {
                        if let Some(tx) = inbound.get(usize::from(channel / 2)) {
                            let _ = tx.send(data.slice(1..)).await;
                        }
                    }
                }
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            },
            done = forwards.join_next() => if done.is_none() { break },
        }
    }
    forwards.shutdown().await;
    drop(out_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
}

async fn forward(
    port: u16,
    data: u8,
    error: u8,
    dial: Arc<dyn Dial>,
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Message>,
) {
    let socket = match dial.dial(port).await {
        Ok(socket) => socket,
        Err(text) => {
            let _ = out.send(message(error, text.as_bytes())).await;
            return;
        }
    };
    let (mut pod_in, mut pod_out) = socket.into_split();
    let to_client = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match pod_in.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.send(message(data, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let to_pod = async {
        while let Some(bytes) = from_client.recv().await {
            if pod_out.write_all(&bytes).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = to_client => {}
        () = to_pod => {}
    }
}
