//! The client side of `pods/exec` and `pods/attach` over WebSocket (the
//! framing is [`api_types::remotecommand`]'s), and the local terminal:
//! standard input read on a thread of its own, raw mode restored on drop,
//! the size sent at start and on every `SIGWINCH`.

use std::io::Read;

use api_types::remotecommand::{self as rc, Message, Outcome, Protocol, TerminalSize};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

/// What can go wrong during a stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The WebSocket broke.
    #[error("the connection to the server broke: {0}")]
    Connection(String),
    /// The server sent something the protocol does not allow.
    #[error("the server broke the stream protocol: {0}")]
    Protocol(String),
    /// Writing our own output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// The local ends of a session: standard input as chunks (the channel's
/// end is EOF), where stdout and stderr go, and terminal sizes.
pub struct Io<'a, O, E> {
    /// Chunks to send on stdin; `None`: stdin is not attached.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Terminal sizes to send (the first at once).
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    /// Where the command's stdout goes.
    pub stdout: &'a mut O,
    /// Where its stderr goes.
    pub stderr: &'a mut E,
}

/// The protocol kube negotiated on `connection` (it accepts only v5 and v4).
pub fn protocol_of(connection: &kube::client::Connection) -> Protocol {
    if connection.supports_stream_close() {
        Protocol::V5
    } else {
        Protocol::V4
    }
}

/// Runs an exec or attach session to its end: stdin and sizes go out,
/// stdout and stderr come in, and the error channel's final status says
/// how it ended.
///
/// # Errors
///
/// [`Error`] when the connection or our own output fails.
pub async fn run<O, E>(
    connection: kube::client::Connection,
    io: Io<'_, O, E>,
) -> Result<Outcome, Error>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let protocol = protocol_of(&connection);
    let (mut sink, mut source) = connection.into_stream().split();
    let (out_tx, mut out_rx) = mpsc::channel::<Ws>(16);
    let mut tasks = Vec::new();
    if let Some(mut stdin) = io.stdin {
        let tx = out_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(chunk) = stdin.recv().await {
                if tx
                    .send(Ws::binary(rc::frame(rc::STDIN, &chunk)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Only v5 can say stdin ended; under v4 the command sees no EOF,
            // as with Kubernetes.
            if protocol.has_close() {
                let _ = tx.send(Ws::binary(vec![rc::CLOSE, rc::STDIN])).await;
            }
        }));
    }
    if let Some(mut sizes) = io.resize {
        let tx = out_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                let Ok(json) = serde_json::to_vec(&size) else {
                    continue;
                };
                if tx
                    .send(Ws::binary(rc::frame(rc::RESIZE, &json)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    drop(out_tx);
    tasks.push(tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
    }));
    let result = read_until_closed(protocol, &mut source, io.stdout, io.stderr).await;
    for task in tasks {
        task.abort();
    }
    result
}

async fn read_until_closed<S, O, E>(
    protocol: Protocol,
    source: &mut S,
    stdout: &mut O,
    stderr: &mut E,
) -> Result<Outcome, Error>
where
    S: futures::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut error = Vec::new();
    while let Some(message) = source.next().await {
        let message = message.map_err(|e| Error::Connection(e.to_string()))?;
        let bytes = match message {
            Ws::Binary(bytes) => bytes,
            Ws::Close(_) => break,
            _ => continue,
        };
        match rc::parse(protocol, &bytes).map_err(|e| Error::Protocol(e.to_string()))? {
            Message::Data {
                channel: rc::STDOUT,
                data,
            } => {
                stdout.write_all(data).await?;
                stdout.flush().await?;
            }
            Message::Data {
                channel: rc::STDERR,
                data,
            } => {
                stderr.write_all(data).await?;
                stderr.flush().await?;
            }
            Message::Data {
                channel: rc::ERROR,
                data,
            } => error.extend_from_slice(data),
            Message::Data { .. } | Message::Close { .. } | Message::Empty => {}
        }
    }
    Ok(rc::outcome(protocol, &error))
}

/// This process's standard input as chunks, read on a thread of its own:
/// a blocking read that tokio's blocking pool would wait for at exit.
pub fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 32 * 1024];
        let mut stdin = std::io::stdin().lock();
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// Whether standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    rustix::termios::isatty(std::io::stdin())
}

/// The local terminal's size (of stdout, else stdin), if it is one.
pub fn terminal_size() -> Option<TerminalSize> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some(TerminalSize {
        width: size.ws_col,
        height: size.ws_row,
    })
}

/// The terminal's size now and after every `SIGWINCH`.
pub fn terminal_sizes() -> mpsc::Receiver<TerminalSize> {
    let (tx, rx) = mpsc::channel(4);
    if let Some(size) = terminal_size() {
        let _ = tx.try_send(size);
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) {
        Ok(mut changes) => {
            tokio::spawn(async move {
                while changes.recv().await.is_some() {
                    if let Some(size) = terminal_size() {
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
        Err(error) => tracing::debug!(%error, "no SIGWINCH: the size is sent once"),
    }
    rx
}

/// The local terminal in raw mode (keys go to the remote one as typed:
/// Ctrl-C included) until dropped, which restores what it was, on every
/// way out of the command, a panic included.
#[derive(Debug)]
pub struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    /// Puts stdin's terminal in raw mode; `None` if stdin is not a terminal
    /// or cannot be changed.
    pub fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
