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
    loop {
        from.readable().await?;
        // The pipe is empty here, so WouldBlock can only mean the socket
        // has nothing to read.
        let moved = from.try_io(Interest::READABLE, || {
            splice(from, None, &pipe.write, None, PIPE_SIZE, flags).map_err(io::Error::from)
        });
        let mut left = match moved {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        total += left as u64;
        while left > 0 {
            to.writable().await?;
            let sent = to.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, to, None, left, flags).map_err(io::Error::from)
            });
            match sent {
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    // The peer may already be gone; its end of the connection is then
    // closed anyway.
    let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
    Ok(total)
}
