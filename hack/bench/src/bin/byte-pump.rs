//! `byte-pump`: the floor of the ingress benchmark. Started by
//! `ingress --ingress-proxy target/release/byte-pump` in the proxy's
//! place, it copies bytes between each client connection and the bench's
//! backend pod, with no HTTP at all: only the syscalls any user-space
//! proxy must make. What the ingress proxy costs above it is HTTP's; what
//! the pump itself costs bounds every proxy on the machine (see
//! `hack/bench/README.md`, "ingress").
//!
//! It takes the flags the bench gives ingress-proxy and uses only
//! `--bind-address`; the backend is the bench's pod (`--to`).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// The bench topology's backend pod (`ingress.rs`: pod IP, `BACKEND_PORT`).
const BENCH_BACKEND: &str = "10.244.1.10:8080";

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bind: SocketAddr = flag(&args, "--bind-address")
        .context("--bind-address is required")?
        .parse()
        .context("--bind-address: not an address:port")?;
    let to: SocketAddr = flag(&args, "--to")
        .unwrap_or_else(|| BENCH_BACKEND.into())
        .parse()
        .context("--to: not an address:port")?;
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    loop {
        let (mut down, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = down.set_nodelay(true);
            let Ok(mut up) = TcpStream::connect(to).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
        });
    }
}
