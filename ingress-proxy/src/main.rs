//! The `ingress-proxy` binary: flags, tracing, client, listeners, then
//! [`ingress_proxy::run`] until SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ingress_proxy::{Config, Limits};

/// Routes HTTP and HTTPS by Host and path (networking.k8s.io/v1 Ingresses)
/// to the ready endpoints of services. Run one on every node.
#[derive(Debug, Parser)]
#[command(name = "ingress-proxy", version)]
struct Args {
    #[command(flatten)]
    client: client_util::ClientArgs,
    /// Where HTTP is served (e.g. the node's IP, port 80).
    #[arg(long, default_value = "0.0.0.0:80")]
    bind_address: SocketAddr,
    /// Where HTTPS is served, certificates from the Ingresses' spec.tls
    /// Secrets chosen by SNI (e.g. the node's IP, port 443).
    #[arg(long, default_value = "0.0.0.0:443")]
    https_bind_address: SocketAddr,
    /// Where `/healthz`, `/livez` and `/readyz` are served.
    #[arg(long, default_value = "127.0.0.1:10254")]
    healthz_bind_address: SocketAddr,
    /// Serve the Ingresses of this class, and those without a class.
    #[arg(long, default_value = "mini-k8s")]
    ingress_class: String,
    /// Write this address to the served Ingresses' status (default: the
    /// --bind-address IP unless that is unspecified or loopback).
    #[arg(long)]
    publish_status_address: Option<std::net::IpAddr>,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Client connections open at once (more wait in the backlog).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Seconds to connect to an endpoint (then 502).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_connect_timeout: u64,
    /// Seconds for an endpoint to send its response headers (then 504).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_response_timeout: u64,
    /// Seconds an upgraded connection (WebSocket) may stay silent both
    /// ways before it is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    upgrade_idle_timeout: u64,
    /// Seconds open connections get to finish on SIGTERM.
    #[arg(long, default_value_t = 10)]
    shutdown_grace_period: u64,
}

// Every request allocates a few small buffers (headers, URIs); mimalloc is
// cheaper for that than the system allocator, as for the apiserver.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.client.init_tracing();
    client_util::code_pages::page_out_start_up_code();
    let client = match args.client.client().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("ingress-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("ingress-proxy: cannot listen on {addr}: {e}"))
    };
    let listeners = match (
        listen(args.bind_address).await,
        listen(args.https_bind_address).await,
        listen(args.healthz_bind_address).await,
    ) {
        (Ok(http), Ok(https), Ok(healthz)) => ingress_proxy::Listeners {
            http,
            https: Some(https),
            healthz,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let bind_ip = args.bind_address.ip();
    let publish_ip = args
        .publish_status_address
        .or_else(|| (!bind_ip.is_unspecified() && !bind_ip.is_loopback()).then_some(bind_ip));
    let config = Config {
        ingress_class: args.ingress_class,
        publish_ip,
        limits: Limits {
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            upstream_connect_timeout: Duration::from_secs(args.upstream_connect_timeout),
            upstream_response_timeout: Duration::from_secs(args.upstream_response_timeout),
            upgrade_idle_timeout: Duration::from_secs(args.upgrade_idle_timeout),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_period),
            ..Limits::default()
        },
    };
    match ingress_proxy::run(client, config, listeners, client_util::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingress-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
