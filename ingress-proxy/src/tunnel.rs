//! The two halves of an upgraded connection (WebSocket and any other
//! `Upgrade`) joined byte for byte until both sides close or nothing moves
//! for the idle time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

/// How a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides closed their sending half.
    Closed,
    /// Nothing moved either way for the idle time.
    Idle,
    /// A read or write failed (a reset): the other side is closed too.
    Failed,
}

/// Copies `from` to `to` until EOF (then shuts `to`'s write half), noting
/// the time of each chunk in `last` (milliseconds since `start`).
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    start: Instant,
    last: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the other side may still send.
            return to.shutdown().await;
        }
        to.write_all(buf.get(..n).unwrap_or_default()).await?;
        last.store(millis(start.elapsed()), Ordering::Relaxed);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Joins `a` and `b` both ways until both are closed, one fails, or no
/// byte moved for `idle`; dropping both halves then closes them.
pub async fn join<A, B>(a: A, b: B, idle: Duration) -> End
where
    A: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let both = async {
        let (up, down) = tokio::join!(
            pump(a_read, b_write, start, &last),
            pump(b_read, a_write, start, &last)
        );
        if up.is_ok() && down.is_ok() {
            End::Closed
        } else {
            End::Failed
        }
    };
    // Sleeps until the idle time after the last chunk; a chunk meanwhile
    // moves the deadline.
    let watchdog = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = start + since + idle;
            if Instant::now() >= deadline {
                return End::Idle;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        end = both => end,
        end = watchdog => end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_flow_both_ways_and_half_closes_pass() {
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(join(a, b, Duration::from_secs(60)));
        a_peer.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        b_peer.write_all(b"pong").await.unwrap();
        a_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        // a closes its side; b still sends, then closes.
        a_peer.shutdown().await.unwrap();
        assert_eq!(b_peer.read(&mut got).await.unwrap(), 0);
        b_peer.write_all(b"last").await.unwrap();
        b_peer.shutdown().await.unwrap();
        let mut rest = Vec::new();
        a_peer.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"last");
        assert_eq!(tunnel.await.unwrap(), End::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_for_the_idle_time_ends_it_and_traffic_keeps_it() {
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(join(a, b, Duration::from_secs(10)));
        let mut got = [0u8; 1];
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            a_peer.write_all(b"x").await.unwrap();
            b_peer.read_exact(&mut got).await.unwrap();
        }
        assert!(!tunnel.is_finished());
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(tunnel.await.unwrap(), End::Idle);
        // Both peers see the close.
        assert_eq!(a_peer.read(&mut got).await.unwrap(), 0);
        assert_eq!(b_peer.read(&mut got).await.unwrap(), 0);
    }
}
