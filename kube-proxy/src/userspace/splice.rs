//! Forwarding between two TCP sockets with `splice(2)` through one pipe per
//! direction, so the bytes never enter this process (the userspace mode's
//! throughput depends on it: copying through buffers reached about 40% of a
//! direct connection, splice about as much as direct).

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Pipe capacity asked for (the default, 64 KiB, costs more syscalls; the
/// kernel caps it at `fs.pipe-max-size`, 1 MiB by default).
const PIPE_SIZE: usize = 1 << 20;

/// Why forwarding with splice stopped.
#[derive(Debug)]
pub(super) enum Error {
    /// No pipe could be made (out of descriptors): nothing was forwarded
    /// yet, the caller may copy instead.
    NoPipe(io::Error),
    /// A socket failed.
    Io(io::Error),
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // A smaller pipe only means more syscalls.
        let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Self { read, write })
    }
}

/// Forwards `a` → `b` and `b` → `a` until both directions have seen EOF
/// (each EOF is passed on as a write shutdown), like
/// `tokio::io::copy_bidirectional`. Returns the bytes moved each way.
pub(super) async fn bidirectional(a: &TcpStream, b: &TcpStream) -> Result<(u64, u64), Error> {
    let a_to_b = Pipe::new().map_err(Error::NoPipe)?;
    let b_to_a = Pipe::new().map_err(Error::NoPipe)?;
    tokio::try_join!(one_way(a, b, &a_to_b), one_way(b, a, &b_to_a)).map_err(Error::Io)
}

async fn one_way(from: &TcpStream, to: &TcpStream, pipe: &Pipe) -> io::Result<u64> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut total = 0u64;
    // Bytes in the pipe: read from `from`, not yet written to `to`.
    let mut queued = 0usize;
    let mut eof = false;
    loop {
        let mut progressed = false;
        if !eof {
            let fill =
                || splice(from, None, &pipe.write, None, PIPE_SIZE, flags).map_err(io::Error::from);
            // With the pipe empty, WouldBlock can only mean that the socket
            // has nothing to read, and tokio may forget its readiness. With
            // bytes queued it may mean a full pipe (its capacity counts
            // buffers, not bytes) while the socket still holds data: then
            // the socket is read directly, keeping tokio's readiness, and
            // retried after the next write makes room.
            let moved = if queued == 0 {
                from.try_io(Interest::READABLE, fill)
            } else {
                fill()
            };
            match moved {
                Ok(0) => eof = true,
                Ok(n) => {
                    queued += n;
                    total += n as u64;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if queued > 0 {
            // Data is queued, so WouldBlock means the socket's send buffer
            // is full.
            let sent = to.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, to, None, queued, flags).map_err(io::Error::from)
            });
            match sent {
                Ok(n) => {
                    queued -= n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if eof && queued == 0 {
            break;
        }
        if !progressed {
            if queued > 0 {
                to.writable().await?;
            } else {
                from.readable().await?;
            }
        }
    }
    // The peer may already be gone; its end of the connection is then
    // closed anyway.
    let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Two connected loopback sockets: (the outside end, the proxy's end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outside = TcpStream::connect(listener.local_addr().unwrap());
        let (outside, accepted) = tokio::join!(outside, listener.accept());
        (outside.unwrap(), accepted.unwrap().0)
    }

    /// More than the pipe holds goes one way while the reader is slow (the
    /// pipe fills, the writes wait), a little the other way; every byte
    /// arrives in order, each EOF is passed on, and the counts are right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_both_ways_past_a_full_pipe() {
        let (mut client, proxy_client) = pair().await;
        let (mut backend, proxy_backend) = pair().await;
        let forward = tokio::spawn(async move {
            super::bidirectional(&proxy_client, &proxy_backend)
                .await
                .map_err(|e| format!("{e:?}"))
        });
        let sent: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            let mut reply = Vec::new();
            client.read_to_end(&mut reply).await.unwrap();
            reply
        });
        // A slow start on the far side, so the pipe and the socket buffers fill.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut received = Vec::new();
        backend.read_to_end(&mut received).await.unwrap();
        assert!(received == expected, "the bytes differ");
        backend.write_all(b"pong").await.unwrap();
        backend.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"pong");
        assert_eq!(forward.await.unwrap().unwrap(), (5 << 20, 4));
    }
}
