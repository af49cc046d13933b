//! A TCP balancer on loopback in front of several apiservers, as the load
//! balancer in front of a highly available control plane: each new
//! connection goes to the next backend that accepts one, so clients of a
//! dead apiserver reconnect to a live one. It runs in the test process;
//! dropping it closes its listener and every connection through it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long a connect to one backend may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A running balancer.
#[derive(Debug)]
pub struct Balancer {
    url: String,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Listens on a free loopback port and forwards to `backends`
    /// (`127.0.0.1:PORT`), round robin, skipping backends that refuse.
    ///
    /// # Errors
    ///
    /// No loopback port could be bound.
    pub async fn start(backends: Vec<SocketAddr>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the balancer's port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            // Owned here: aborting this task drops the set, which aborts
            // every connection.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let backends = Arc::clone(&backends);
                let first = next.fetch_add(1, Ordering::Relaxed);
                connections.spawn(async move {
                    let Some(mut server) = connect_any(&backends, first).await else {
                        return;
                    };
                    let mut client = client;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Ok(Self { url, task })
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect_any(backends: &[SocketAddr], first: usize) -> Option<TcpStream> {
    for step in 0..backends.len() {
        let backend = backends[(first + step) % backends.len()];
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await
        {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}
