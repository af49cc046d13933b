//! A DNS client for tests and benchmarks: one question over UDP or TCP to
//! a server on this machine, the whole answer message back.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one try waits for its answer.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);

/// The question `name` `qtype` as a message with id `id`.
///
/// # Errors
///
/// `name` is not a DNS name.
pub fn question(id: u16, name: &str, qtype: RecordType) -> Result<Message> {
    let name = Name::from_ascii(name).with_context(|| format!("bad name {name:?}"))?;
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, qtype));
    Ok(message)
}

/// Asks `server` over UDP; three tries of `TRY_TIMEOUT` each.
///
/// # Errors
///
/// No answer, or an answer that does not parse or does not match.
pub async fn query_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Result<Message> {
    let socket = tokio::net::UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .await
    .context("binding a udp socket")?;
    let id = rand_id();
    let bytes = question(id, name, qtype)?.to_vec()?;
    let mut buffer = vec![0u8; 65_535];
    for _ in 0..3 {
        socket.send_to(&bytes, server).await.context("udp send")?;
        match tokio::time::timeout(TRY_TIMEOUT, socket.recv_from(&mut buffer)).await {
            Ok(Ok((len, _))) => {
                let answer = Message::from_vec(&buffer[..len]).context("parsing the answer")?;
                if answer.id() == id {
                    return Ok(answer);
                }
            }
            Ok(Err(e)) => return Err(e).context("udp receive"),
            Err(_) => {}
        }
    }
    bail!("no answer from {server} for {name} {qtype} over udp")
}

/// Asks `server` over a new TCP connection.
///
/// # Errors
///
/// No connection or answer, or one that does not parse.
pub async fn query_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Result<Message> {
    let bytes = question(rand_id(), name, qtype)?.to_vec()?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&bytes).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(TRY_TIMEOUT, exchange)
        .await
        .with_context(|| format!("no answer from {server} over tcp"))?
        .with_context(|| format!("asking {server} over tcp"))?;
    Message::from_vec(&answer).context("parsing the answer")
}

/// The answer section's data, as text (`10.0.0.5`, `0 100 80 db.ns.svc.cluster.local.`).
pub fn answers(message: &Message) -> Vec<String> {
    message
        .answers()
        .iter()
        .map(|r| r.data().to_string())
        .collect()
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
