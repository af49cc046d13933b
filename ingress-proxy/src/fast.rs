//! The common request forwarded in the client connection's own task,
//! without hyper: an HTTP/1.1 request whose framing is a `Content-Length`
//! (or none), routed to an endpoint, its answer copied back as it comes
//! (`Content-Length`, chunked, or up to the backend's close).
//!
//! Why by hand: hyper serves a connection in one task and its pooled
//! client drives each upstream connection in another, so every request
//! crossed tasks four times (request in, request out, answer in, body
//! out). Measured on the ingress bench (`hack/bench/README.md`,
//! "ingress"), that made the proxy cost 17 µs of CPU per request where a
//! byte pump costs 8, and capped it at 0.35 of direct. Here a request costs
//! the pump's two reads and two writes plus `httparse`'s parse of the two
//! heads (the parser hyper itself uses).
//!
//! Anything else goes to hyper ([`Outcome::Hyper`], the bytes read so far
//! handed back first): upgrades, `Expect`, a chunked or otherwise framed
//! request body, HTTP/1.0, `CONNECT` and absolute-form targets, headers
//! `Connection` names, heads too large or malformed, and every request
//! whose answer is ours rather than a backend's (no rule, no endpoint, a
//! backend that cannot be reached): hyper's path answers those with the
//! messages it always has. From then on hyper serves the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::proxy::{Front, Peer, Proxy};
use crate::routes::Route;

/// Headers of one request or answer the fast path parses; more go to hyper
/// (which allows 100).
const MAX_HEADERS: usize = 64;
/// A request head larger than this goes to hyper, which answers it.
const MAX_HEAD: usize = 64 * 1024;
/// The largest answer head or chunk-size line read from a backend.
const MAX_UPSTREAM_HEAD: usize = 64 * 1024;
/// Bytes read at once from either side.
const READ: usize = 16 * 1024;
/// Upstream connections one client connection keeps, one per endpoint
/// (requests still choose their endpoint one by one, round robin, as
/// ingress-nginx does): a client spread over a service's endpoints reuses
/// a connection to each. A request for another endpoint opens a new one
/// and the least recently used is closed.
const KEPT: usize = 4;

/// Headers that belong to one hop (RFC 9110 7.6.1), lower case.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// How the fast path left a connection.
pub enum Outcome<I> {
    /// Closed, or to be closed: nothing more to serve.
    Closed,
    /// For hyper to serve from here, reading these bytes first.
    Hyper(Prefixed<I>),
}

/// A connection with bytes already read from it put back in front.
pub struct Prefixed<I> {
    prefix: BytesMut,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One kept connection to an endpoint, with what was read past the last
/// answer (nothing, from a backend that keeps to HTTP).
struct Upstream {
    addr: SocketAddr,
    stream: TcpStream,
    buf: BytesMut,
    /// It has carried a request before.
    reused: bool,
}

/// A new connection to `addr`; `None` if it cannot be made in time.
async fn connect(addr: SocketAddr, timeout: std::time::Duration) -> Option<Upstream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = stream.set_nodelay(true);
    Some(Upstream {
        addr,
        stream,
        buf: BytesMut::with_capacity(READ),
        reused: false,
    })
}

impl Upstream {
    /// Reads more into `buf`; `false` at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        self.buf.reserve(READ);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// Copies the next `left` bytes from the backend to `client`; `false`
    /// if the backend closed first.
    async fn copy_exact<W: AsyncWrite + Unpin>(
        &mut self,
        client: &mut W,
        mut left: u64,
    ) -> std::io::Result<bool> {
        while left > 0 {
            if self.buf.is_empty() && !self.fill().await? {
                return Ok(false);
            }
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            client.write_all(&self.buf[..n]).await?;
            self.buf.advance(n);
            left -= n as u64;
        }
        Ok(true)
    }

    /// Whether a kept connection may carry another request: nothing to
    /// read (the backend has not closed it, nor sent anything unasked).
    ///
    /// For a request that can be sent again (`resendable`: idempotent and
    /// whole), tokio's readiness answers without a system call: it is set
    /// from epoll when anything arrives, so it is clear unless the backend
    /// closed or spoke since the last answer, or so recently that the event
    /// is not in yet. That last case `forward` covers by sending the
    /// request again when the connection turns out closed. Any other
    /// request asks the socket, which leaves only the smallest window for a
    /// close it cannot recover from.
    fn reusable(&self, resendable: bool) -> bool {
        if resendable {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if self.stream.poll_read_ready(&mut cx).is_pending() {
                return true;
            }
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// What a request's head says, once it is known to be one for this path.
struct Request {
    /// The head's length in the buffer.
    head: usize,
    /// Request body bytes after the head.
    body: u64,
    /// `HEAD`: the answer has no body whatever its headers say.
    is_head: bool,
    /// Idempotent (RFC 9110 9.2.2): it may be sent again when a kept
    /// connection turns out closed, as Go's transport and nginx resend only
    /// such requests (a `POST` the backend took before closing could
    /// otherwise be carried out twice).
    idempotent: bool,
    /// The client asked to close after this answer.
    close: bool,
    /// The backend's address.
    addr: SocketAddr,
}

/// How an answer's body is framed (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Serves `io`'s requests for as long as they suit this path, then either
/// ends or hands the connection to hyper.
pub async fn serve<I>(
    mut io: I,
    proxy: &Proxy,
    peer: &Peer,
    front: &Front,
    draining: &mut watch::Receiver<bool>,
) -> Outcome<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &proxy.limits;
    let mut buf = BytesMut::with_capacity(READ);
    let mut kept: Vec<Upstream> = Vec::new();
    let mut heads = Heads {
        sent: Vec::with_capacity(READ),
        out: Vec::with_capacity(READ),
    };
    // Made once per connection: a wait made for each request registered
    // and removed a waiter under the channel's lock every time.
    let mut drained = std::pin::pin!(draining.wait_for(|d| *d));
    // One timer for the connection, moved for each wait (the head's read,
    // then the answer's): a timer made and dropped for each wait cost two
    // trips through the timer wheel's lock per request, where moving a
    // registered deadline later is one atomic store.
    let mut deadline = std::pin::pin!(tokio::time::sleep(limits.header_read_timeout));
    loop {
        // A whole head, within the header read timeout (which also bounds
        // how long an idle keep-alive connection is held).
        let read = async {
            loop {
                if head_ends(&buf) || buf.len() > MAX_HEAD {
                    return Ok(true);
                }
                buf.reserve(READ);
                if io.read_buf(&mut buf).await? == 0 {
                    return Ok::<_, std::io::Error>(false);
                }
            }
        };
        deadline
            .as_mut()
            .reset(Instant::now() + limits.header_read_timeout);
        // `biased`: polled in this order, without the random start that
        // costs `select!` a random number each time. The drain comes first
        // so that a client sending requests back to back is still let go
        // at shutdown, after the answer it is being given.
        let got = tokio::select! {
            biased;
            _ = &mut drained => return Outcome::Closed,
            got = read => got,
            () = deadline.as_mut() => return Outcome::Closed,
        };
        match got {
            Ok(true) => {}
            // Closed, broken or timed out: hyper would close it too (a
            // timeout with a partial head gets no answer from hyper either).
            Ok(false) | Err(_) => return Outcome::Closed,
        }
        let Some(request) = accept(&buf, proxy, peer, front, &mut heads.sent) else {
            return Outcome::Hyper(Prefixed { prefix: buf, io });
        };
        // An upstream connection: kept, or new.
        let found = kept.iter().position(|u| u.addr == request.addr);
        let resendable = request.idempotent && (buf.len() - request.head) as u64 >= request.body;
        let mut upstream = match found {
            // `remove`, not `swap_remove`: `kept` stays oldest first.
            Some(i) if kept[i].reusable(resendable) => kept.remove(i),
            found => {
                if let Some(i) = found {
                    kept.remove(i);
                }
                match connect(request.addr, limits.upstream_connect_timeout).await {
                    Some(upstream) => upstream,
                    // hyper's path tries again and answers 502 or 504.
                    None => return Outcome::Hyper(Prefixed { prefix: buf, io }),
                }
            }
        };
        buf.advance(request.head);
        let exchanged = forward(
            &mut io,
            &mut buf,
            &mut upstream,
            &request,
            &mut heads,
            proxy,
            deadline.as_mut(),
        )
        .await;
        match exchanged {
            Ok(Next::KeepBoth) => {
                if kept.len() == KEPT {
                    kept.remove(0);
                }
                upstream.reused = true;
                kept.push(upstream);
            }
            Ok(Next::KeepClient) => {}
            Ok(Next::Close) | Err(_) => {
                let _ = io.shutdown().await;
                return Outcome::Closed;
            }
        }
        if request.close {
            let _ = io.shutdown().await;
            return Outcome::Closed;
        }
    }
}

/// The bytes sent upstream and those sent back, kept for the next request
/// rather than allocated for each.
struct Heads {
    /// The request's head for the backend, and its body as far as it has
    /// come.
    sent: Vec<u8>,
    /// The answer's head for the client, and its body as far as it has
    /// come.
    out: Vec<u8>,
}

/// What is left open after one exchange.
enum Next {
    KeepBoth,
    KeepClient,
    Close,
}

/// The request at the start of `buf`, if it is one this path forwards,
/// with the head to send upstream.
fn accept(
    buf: &[u8],
    proxy: &Proxy,
    peer: &Peer,
    front: &Front,
    out: &mut Vec<u8>,
) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        _ => return None,
    };
    let (method, target) = (parsed.method?, parsed.path?);
    if parsed.version != Some(1) || method == "CONNECT" || !target.starts_with('/') {
        return None;
    }
    let mut host: Option<&[u8]> = None;
    let mut body = 0u64;
    let mut has_length = false;
    let mut close = false;
    let mut forwarded_for: Option<&[u8]> = None;
    for h in parsed.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return None;
            }
            host = Some(h.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = content_length(h.value)?;
            if has_length && length != body {
                return None;
            }
            (body, has_length) = (length, true);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in std::str::from_utf8(h.value).ok()?.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case("keep-alive") && !token.is_empty() {
                    return None; // upgrade, or headers named hop-by-hop
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return None;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") && forwarded_for.is_none() {
            forwarded_for = Some(h.value).filter(|v| !v.is_empty());
        }
    }
    let host = host?;
    let host_text = std::str::from_utf8(host).ok()?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let route = proxy.table.borrow().route(host_text, path);
    let Route::Backend(backend) = route else {
        return None;
    };
    let (addr, _) = backend.pick()?;

    // The head for the backend: the request line as it came (HTTP/1.1),
    // its headers but the hop-by-hop ones and those set here, then the
    // `X-Forwarded-*` ones as hyper's path sets them.
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in parsed.headers.iter() {
        let name = h.name;
        let dropped = HOP_BY_HOP.iter().any(|d| name.eq_ignore_ascii_case(d))
            || [
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-forwarded-port",
            ]
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d));
        if !dropped {
            header(out, name.as_bytes(), h.value);
        }
    }
    let ip = peer.ip.as_bytes();
    match forwarded_for {
        Some(earlier) => {
            let mut value = earlier.to_vec();
            value.extend_from_slice(b", ");
            value.extend_from_slice(ip);
            header(out, b"x-forwarded-for", &value);
        }
        None => header(out, b"x-forwarded-for", ip),
    }
    header(out, b"x-forwarded-host", host);
    header(out, b"x-forwarded-proto", front.proto.as_bytes());
    header(out, b"x-forwarded-port", front.port.as_bytes());
    out.extend_from_slice(b"\r\n");
    Some(Request {
        head,
        body,
        is_head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        close,
        addr,
    })
}

/// A `Content-Length` value: digits only (RFC 9110 8.6). Rust's own
/// parse takes a leading `+`, which a backend may read otherwise: a way to
/// smuggle a request past the proxy.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether `buf` holds a whole head: an empty line after at least one
/// line (a bare LF ends lines too, as httparse and hyper allow).
fn head_ends(buf: &[u8]) -> bool {
    // One pass: at each LF, whether the next line is empty.
    buf.iter().enumerate().any(|(i, &b)| {
        b == b'\n' && matches!(buf.get(i + 1..), Some([b'\n', ..] | [b'\r', b'\n', ..]))
    })
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Sends the request (its head, then `request.body` bytes: those already
/// in `buf` first) and copies the answer back.
async fn forward<I>(
    client: &mut I,
    buf: &mut BytesMut,
    upstream: &mut Upstream,
    request: &Request,
    heads: &mut Heads,
    proxy: &Proxy,
    mut deadline: Pin<&mut Sleep>,
) -> std::io::Result<Next>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let Heads { sent, out } = heads;
    let limits = &proxy.limits;
    // The head and as much of the body as has come, in one write.
    let ready = usize::try_from(request.body)
        .unwrap_or(usize::MAX)
        .min(buf.len());
    sent.extend_from_slice(&buf[..ready]);
    buf.advance(ready);
    // A kept connection the backend closed just as it was reused refuses
    // the request, or takes it and answers nothing. A request sent whole
    // in one write goes once more on a new connection: after a refused
    // write whatever its method (the backend never took it, as hyper's pool
    // retries a request its closed connection never took); after no answer
    // only an idempotent one (the backend may have carried it out).
    let whole = request.body == ready as u64;
    let resend = upstream.reused && whole;
    if let Err(error) = upstream.stream.write_all(sent).await {
        let again = if resend {
            send_again(upstream, sent, limits).await
        } else {
            Err(error)
        };
        if let Err(error) = again {
            let body = format!(
                "502 Bad Gateway: the backend at {}: {error}\n",
                upstream.addr
            );
            bad_gateway(client, request, "502 Bad Gateway", &body).await?;
            // The rest of a body not read yet would be taken for a request.
            return Ok(if whole { Next::KeepClient } else { Next::Close });
        }
    }
    let mut left = request.body - ready as u64;
    while left > 0 {
        buf.reserve(READ);
        if client.read_buf(buf).await? == 0 {
            return Ok(Next::Close);
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        upstream.stream.write_all(&buf[..n]).await?;
        buf.advance(n);
        left -= n as u64;
    }

    // The answer's head (informational ones passed on first).
    deadline
        .as_mut()
        .reset(Instant::now() + limits.upstream_response_timeout);
    let mut answer = within(
        deadline.as_mut(),
        answer_head(client, upstream, request, out),
    )
    .await;
    let resend_unanswered = resend && request.idempotent && upstream.buf.is_empty();
    if let (Ok(Ok(None)), true) = (&answer, resend_unanswered) {
        if send_again(upstream, sent, limits).await.is_ok() {
            deadline
                .as_mut()
                .reset(Instant::now() + limits.upstream_response_timeout);
            answer = within(
                deadline.as_mut(),
                answer_head(client, upstream, request, out),
            )
            .await;
        }
    }
    let (framing, keep_upstream) = match answer {
        Ok(Ok(Some(answer))) => answer,
        // The backend closed, broke or answered badly, or took too long:
        // the client gets the answer hyper's path would give.
        Ok(result) => {
            let why = match result {
                Err(error) => format!(": {error}"),
                Ok(_) => " closed the connection without an answer".to_owned(),
            };
            let body = format!("502 Bad Gateway: the backend at {}{why}\n", upstream.addr);
            bad_gateway(client, request, "502 Bad Gateway", &body).await?;
            return Ok(Next::KeepClient);
        }
        Err(_) => {
            let body = format!(
                "504 Gateway Timeout: the backend sent no answer within {:?}\n",
                limits.upstream_response_timeout
            );
            bad_gateway(client, request, "504 Gateway Timeout", &body).await?;
            return Ok(Next::KeepClient);
        }
    };
    // `out` holds the head for the client; the body follows in the same
    // write as far as it has come.
    match framing {
        Framing::None => {
            client.write_all(out).await?;
        }
        Framing::Length(length) => {
            let ready = usize::try_from(length)
                .unwrap_or(usize::MAX)
                .min(upstream.buf.len());
            out.extend_from_slice(&upstream.buf[..ready]);
            upstream.buf.advance(ready);
            client.write_all(out).await?;
            if !upstream.copy_exact(client, length - ready as u64).await? {
                return Ok(Next::Close);
            }
        }
        Framing::Chunked => {
            client.write_all(out).await?;
            copy_chunked(client, upstream).await?;
        }
        Framing::UntilClose => {
            client.write_all(out).await?;
            loop {
                if !upstream.buf.is_empty() {
                    client.write_all(&upstream.buf).await?;
                    upstream.buf.clear();
                }
                if !upstream.fill().await? {
                    break;
                }
            }
            return Ok(Next::Close);
        }
    }
    Ok(if keep_upstream && upstream.buf.is_empty() {
        Next::KeepBoth
    } else {
        Next::KeepClient
    })
}

/// `work`'s result, or `Err(())` if `deadline` passes first.
async fn within<T>(deadline: Pin<&mut Sleep>, work: impl Future<Output = T>) -> Result<T, ()> {
    tokio::select! {
        biased;
        done = work => Ok(done),
        () = deadline => Err(()),
    }
}

/// Sends `sent` (a whole request) again on a new connection to the same
/// endpoint, which replaces `upstream`.
async fn send_again(
    upstream: &mut Upstream,
    sent: &[u8],
    limits: &crate::proxy::Limits,
) -> std::io::Result<()> {
    *upstream = connect(upstream.addr, limits.upstream_connect_timeout)
        .await
        .ok_or_else(|| std::io::Error::other("cannot connect"))?;
    upstream.stream.write_all(sent).await
}

/// Reads the backend's answer head, passes 1xx ones on, and leaves the
/// final head for the client in `out`: its framing, and whether the
/// upstream connection can carry another request. `None` if the backend
/// closed before a whole head.
async fn answer_head<I>(
    client: &mut I,
    upstream: &mut Upstream,
    request: &Request,
    out: &mut Vec<u8>,
) -> std::io::Result<Option<(Framing, bool)>>
where
    I: AsyncWrite + Unpin,
{
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let head = match parsed.parse(&upstream.buf) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) if upstream.buf.len() <= MAX_UPSTREAM_HEAD => {
                if !upstream.fill().await? {
                    return Ok(None);
                }
                continue;
            }
            Ok(httparse::Status::Partial) => {
                return Err(std::io::Error::other(
                    "the backend's answer head is too large",
                ))
            }
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let code = parsed.code.unwrap_or(0);
        if code == 101 {
            // No upgrade was asked for on this path.
            return Err(std::io::Error::other(
                "the backend switched protocols unasked",
            ));
        }
        let mut framing = if request.is_head || code == 204 || code == 304 || code < 200 {
            Framing::None
        } else {
            Framing::UntilClose
        };
        let mut keep = parsed.version == Some(1);
        let mut chunked = false;
        let mut length = None;
        for h in parsed.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                    v.rsplit(',')
                        .next()
                        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                });
                if !chunked {
                    keep = false;
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                length = content_length(h.value);
                if length.is_none() {
                    return Err(std::io::Error::other(
                        "a bad Content-Length from the backend",
                    ));
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                let value = std::str::from_utf8(h.value).unwrap_or_default();
                if value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
                {
                    keep = false;
                }
            }
        }
        if framing != Framing::None {
            framing = if chunked {
                Framing::Chunked
            } else {
                match length {
                    Some(length) if !has_transfer_encoding(parsed.headers) => {
                        Framing::Length(length)
                    }
                    _ => Framing::UntilClose,
                }
            };
        }
        if framing == Framing::UntilClose {
            keep = false;
        }
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        // httparse takes exactly three digits.
        out.extend_from_slice(&[
            b'0' + (code / 100 % 10) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(parsed.reason.unwrap_or_default().as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in parsed.headers.iter() {
            let name = h.name;
            let hop = HOP_BY_HOP.iter().any(|d| name.eq_ignore_ascii_case(d));
            // A body passed on chunked keeps its framing header; one read to
            // the backend's close is delimited by ours.
            let framing_header = name.eq_ignore_ascii_case("transfer-encoding") && !chunked
                || name.eq_ignore_ascii_case("content-length") && chunked;
            if !hop && !framing_header {
                header(out, name.as_bytes(), h.value);
            }
        }
        if framing == Framing::UntilClose || request.close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        upstream.buf.advance(head);
        if (100..200).contains(&code) {
            client.write_all(out).await?;
            continue;
        }
        return Ok(Some((framing, keep)));
    }
}

fn has_transfer_encoding(headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
}

/// Copies a chunked body as it is, chunk by chunk, to its last chunk and
/// trailers.
async fn copy_chunked<I>(client: &mut I, upstream: &mut Upstream) -> std::io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    loop {
        let line = line_of(upstream).await?;
        let size_text = std::str::from_utf8(&upstream.buf[..line])
            .ok()
            .and_then(|l| l.split(';').next())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let size = u64::from_str_radix(&size_text, 16)
            .map_err(|_| std::io::Error::other("a bad chunk size from the backend"))?;
        client.write_all(&upstream.buf[..line]).await?;
        upstream.buf.advance(line);
        if size == 0 {
            // Trailers, to the empty line.
            loop {
                let line = line_of(upstream).await?;
                client.write_all(&upstream.buf[..line]).await?;
                let end = line == 2;
                upstream.buf.advance(line);
                if end {
                    return Ok(());
                }
            }
        }
        // The data and its CRLF.
        if !upstream.copy_exact(client, size + 2).await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The length of the next line in `upstream.buf` (its LF included),
/// reading as needed.
async fn line_of(upstream: &mut Upstream) -> std::io::Result<usize> {
    let mut searched = 0;
    loop {
        if let Some(at) = upstream.buf[searched..].iter().position(|b| *b == b'\n') {
            return Ok(searched + at + 1);
        }
        searched = upstream.buf.len();
        if searched > MAX_UPSTREAM_HEAD {
            return Err(std::io::Error::other(
                "a chunk line too long from the backend",
            ));
        }
        if !upstream.fill().await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Our own short answer, the connection kept (a `HEAD` gets its head).
async fn bad_gateway<I>(
    client: &mut I,
    request: &Request,
    status: &str,
    body: &str,
) -> std::io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        if request.is_head { "" } else { body }
    );
    client.write_all(answer.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    use super::head_ends;
    use crate::proxy::{serve, Front, Limits, Proxy};
    use crate::routes::Table;

    /// The answers the test backend gives, by request path, as raw bytes.
    fn answer(path: &str, body: &[u8]) -> Vec<u8> {
        match path {
            "/length" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-b: 1\r\n\r\nhello".to_vec(),
            "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                            3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nx-trailer: t\r\n\r\n"
                .to_vec(),
            "/early" => b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
                          HTTP/1.1 204 No Content\r\n\r\n"
                .to_vec(),
            "/echo" => {
                let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                    .into_bytes();
                a.extend_from_slice(body);
                a
            }
            // No length: the body ends with the connection.
            "/close" => b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil close".to_vec(),
            "/bad" => b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello".to_vec(),
            _ => b"HTTP/1.1 500 Unknown\r\ncontent-length: 0\r\n\r\n".to_vec(),
        }
    }

    /// A backend answering by path (`answer`), recording the heads it got
    /// and how many connections it accepted; it closes a connection after
    /// `/close`, and after every answer when `close_after_each`.
    struct Backend {
        addr: SocketAddr,
        heads: Arc<Mutex<Vec<String>>>,
        connections: Arc<Mutex<usize>>,
    }

    async fn backend(close_after_each: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (h, c) = (heads.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                *c.lock().unwrap() += 1;
                let heads = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let end = loop {
                            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + length {
                            let mut chunk = [0u8; 4096];
                            let n = stream.read(&mut chunk).await.unwrap();
                            assert!(n > 0, "body cut short");
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let body: Vec<u8> = buf[end..end + length].to_vec();
                        buf.drain(..end + length);
                        let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                        let mut answer = answer(&path, &body);
                        if head.starts_with("HEAD ") {
                            let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                            answer.truncate(end + 4);
                        }
                        heads.lock().unwrap().push(head);
                        if path == "/drop" {
                            return; // closed without an answer
                        }
                        if path == "/stall" {
                            // Open, and never an answer.
                            std::future::pending::<()>().await;
                        }
                        stream.write_all(&answer).await.unwrap();
                        if path == "/close" || close_after_each {
                            return;
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            heads,
            connections,
        }
    }

    /// A proxy on a free loopback port sending everything to `to`.
    async fn proxy_to(to: SocketAddr) -> SocketAddr {
        proxy_until(to, Limits::default(), std::future::pending()).await
    }

    /// The same, serving until `stop` resolves.
    async fn proxy_until(
        to: SocketAddr,
        limits: Limits,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> SocketAddr {
        let service = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ports": [{"port": 80, "targetPort": to.port()}]},
            }))
            .unwrap(),
        );
        let endpoints = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": to.ip().to_string()}],
                             "ports": [{"port": to.port()}]}],
            }))
            .unwrap(),
        );
        let ingress = crate::routes::tests::ingress(
            "web",
            "2026-12-06T08:00:00Z",
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        );
        let table = Table::build(&[ingress], &[service], &[endpoints], "mini");
        let (_keep, table) = watch::channel(Arc::new(table));
        std::mem::forget(_keep);
        let proxy = Arc::new(Proxy::new(table, limits));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, proxy, Front::http(addr.port()), stop));
        addr
    }

    /// Reads from `stream` until `want` bytes have come (or 5 s pass).
    async fn read_exactly(stream: &mut TcpStream, want: usize) -> String {
        let mut got = vec![0u8; want];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        String::from_utf8(got).unwrap()
    }

    async fn exchange(stream: &mut TcpStream, request: &str, answer: &str) {
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(
            read_exactly(stream, answer.len()).await,
            answer,
            "{request}"
        );
    }

    /// `GET /length` and its answer: a connection known to be open and
    /// carried through the fast path.
    async fn exchange_length(stream: &mut TcpStream) {
        exchange(
            stream,
            "GET /length HTTP/1.1\r\nhost: a.example\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-b: 1\r\n\r\nhello",
        )
        .await;
    }

    #[test]
    fn a_head_ends_at_its_first_empty_line_whatever_the_line_endings() {
        for (buf, whole) in [
            (&b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"[..], true),
            (b"GET / HTTP/1.1\nhost: a\n\n", true),
            (b"GET / HTTP/1.1\nhost: a\n\r\n", true),
            (b"GET / HTTP/1.1\r\nhost: a\r\n\n", true),
            (b"GET / HTTP/1.1\r\nhost: a\r\n\r", false),
            (b"GET / HTTP/1.1\r\nhost: a\r\n", false),
            (b"\r\nGET / HTTP/1.1\r\n", false),
            (b"", false),
        ] {
            assert_eq!(head_ends(buf), whole, "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[tokio::test]
    async fn answers_of_every_framing_pass_on_one_kept_connection() {
        let backend = backend(false).await;
        let proxy = proxy_to(backend.addr).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: a.example\r\n\r\n");
        exchange(
            &mut client,
            &get("/length"),
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-b: 1\r\n\r\nhello",
        )
        .await;
        exchange(
            &mut client,
            &get("/chunked"),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
             3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nx-trailer: t\r\n\r\n",
        )
        .await;
        // HEAD: the length is the GET's, no body follows.
        exchange(
            &mut client,
            "HEAD /length HTTP/1.1\r\nhost: a.example\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-b: 1\r\n\r\n",
        )
        .await;
        exchange(
            &mut client,
            &get("/early"),
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        )
        .await;
        exchange(
            &mut client,
            "POST /echo HTTP/1.1\r\nhost: a.example\r\ncontent-length: 11\r\n\r\nhello there",
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello there",
        )
        .await;
        // Two requests written at once come back in order.
        exchange(
            &mut client,
            &format!("{}{}", get("/length"), get("/early")),
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-b: 1\r\n\r\nhello\
             HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        )
        .await;
        assert_eq!(*backend.connections.lock().unwrap(), 1, "one kept upstream");
        // Without a length the body ends with the connection, and so does
        // the client's.
        client.write_all(get("/close").as_bytes()).await.unwrap();
        let mut rest = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rest,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nuntil close"
        );
        // What the backend was sent: the request line as it came, the
        // client's Host, X-Forwarded-* added.
        let heads = backend.heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 8);
        assert!(heads[0].starts_with("GET /length HTTP/1.1\r\nhost: a.example\r\n"));
        for needed in [
            "x-forwarded-for: 127.0.0.1\r\n",
            "x-forwarded-host: a.example\r\n",
            "x-forwarded-proto: http\r\n",
            &format!("x-forwarded-port: {}\r\n", proxy.port()),
        ] {
            assert!(heads[0].contains(needed), "{needed} in {}", heads[0]);
        }
    }

    /// The one timer a connection keeps bounds each wait in turn: the
    /// answer's, then the next head's.
    #[tokio::test]
    async fn a_silent_backend_is_a_504_and_an_idle_client_is_let_go() {
        let backend = backend(false).await;
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            upstream_response_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let proxy = proxy_until(backend.addr, limits, std::future::pending()).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        // Answered first, so both timers run after a wait that ended well.
        exchange_length(&mut client).await;
        client
            .write_all(b"GET /stall HTTP/1.1\r\nhost: a.example\r\n\r\n")
            .await
            .unwrap();
        let head = read_exactly(&mut client, "HTTP/1.1 504".len()).await;
        assert_eq!(head, "HTTP/1.1 504");
        let mut rest = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut rest))
            .await
            .expect("the 504's body within 5 s")
            .unwrap();
        let rest = String::from_utf8_lossy(&rest[..n]);
        assert!(rest.contains("no answer within 300ms"), "{rest}");
        // The client stays, then says nothing: closed after the header
        // read timeout.
        let mut more = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut more));
        assert!(read.await.is_ok(), "an idle client held for 5 s");
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed_on_shutdown() {
        let backend = backend(false).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy = proxy_until(backend.addr, Limits::default(), async move {
            let _ = stopped.await;
        })
        .await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        exchange_length(&mut client).await;
        stop.send(()).unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest));
        assert!(
            read.await.is_ok(),
            "still open 5 s after the shutdown began"
        );
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_kept_connection_the_backend_closed_is_replaced() {
        let backend = backend(true).await;
        let proxy = proxy_to(backend.addr).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        for _ in 0..5 {
            exchange_length(&mut client).await;
        }
        assert_eq!(*backend.connections.lock().unwrap(), 5);
    }

    /// A reused connection that takes a request and closes without an
    /// answer: an idempotent request goes once more, a `POST` does not (the
    /// backend may have carried it out), and both get a 502.
    #[tokio::test]
    async fn only_an_idempotent_request_is_sent_again_after_no_answer() {
        let backend = backend(false).await;
        let proxy = proxy_to(backend.addr).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        for (request, sent) in [
            (
                "POST /drop HTTP/1.1\r\nhost: a.example\r\ncontent-length: 2\r\n\r\nhi",
                1,
            ),
            ("GET /drop HTTP/1.1\r\nhost: a.example\r\n\r\n", 2),
        ] {
            // On a kept connection, so that it counts as reused.
            exchange_length(&mut client).await;
            backend.heads.lock().unwrap().clear();
            let body = format!(
                "502 Bad Gateway: the backend at {} closed the connection without an answer\n",
                backend.addr
            );
            let answer = format!(
                "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            exchange(&mut client, request, &answer).await;
            let heads = backend.heads.lock().unwrap().clone();
            assert_eq!(heads.len(), sent, "{request}: the backend saw {heads:?}");
        }
    }

    #[tokio::test]
    async fn a_backend_that_closes_or_answers_badly_is_a_502_and_the_client_stays() {
        let backend = backend(false).await;
        let proxy = proxy_to(backend.addr).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        // Closed without an answer, then an answer this path cannot
        // frame: each a 502 that says why.
        for (path, why) in [
            ("/drop", " closed the connection without an answer"),
            ("/bad", ": a bad Content-Length from the backend"),
        ] {
            let body = format!("502 Bad Gateway: the backend at {}{why}\n", backend.addr);
            let answer = format!(
                "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            let request = format!("GET {path} HTTP/1.1\r\nhost: a.example\r\n\r\n");
            exchange(&mut client, &request, &answer).await;
        }
        exchange_length(&mut client).await;
    }

    #[tokio::test]
    async fn requests_this_path_does_not_take_are_hyper_s() {
        let backend = backend(false).await;
        let proxy = proxy_to(backend.addr).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        // A chunked request body: hyper reads it and sends it on.
        client
            .write_all(
                b"POST /length HTTP/1.1\r\nhost: a.example\r\ntransfer-encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&got).ends_with("hello") {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        let got = String::from_utf8(got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        // A length that is not all digits: hyper's path, which refuses it.
        let mut signed = TcpStream::connect(proxy).await.unwrap();
        signed
            .write_all(b"POST /echo HTTP/1.1\r\nhost: a.example\r\ncontent-length: +5\r\n\r\nhello")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        signed.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 400");
        // No Host: hyper's path, which sends it to the default backend
        // (whose answer for `/` is a 500).
        let mut other = TcpStream::connect(proxy).await.unwrap();
        other.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut head = [0u8; 12];
        other.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 500");
    }
}
