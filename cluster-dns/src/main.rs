//! The `cluster-dns` binary: flags, tracing, client, sockets, then
//! [`cluster_dns::run`] until SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cluster_dns::records::Zone;
use cluster_dns::server::TcpLimits;
use cluster_dns::{Config, Listeners};

/// Answers DNS for the cluster's services (Kubernetes' DNS specification),
/// over UDP and TCP. Names outside `--cluster-domain` are REFUSED: no
/// recursion and no upstream forwarding (there is no `--upstream` flag),
/// so the server never sends traffic anywhere but to the apiserver.
#[derive(Debug, Parser)]
#[command(name = "cluster-dns", version)]
struct Args {
    #[command(flatten)]
    client: client_util::ClientArgs,
    /// The cluster domain served (the kubelets' `--cluster-domain`).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Where DNS is served, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    dns_bind_address: SocketAddr,
    /// Where `/healthz` and `/readyz` are served.
    #[arg(long, default_value = "127.0.0.1:10054")]
    healthz_bind_address: SocketAddr,
    /// Seconds every answer (and a negative answer, through the SOA) may be
    /// cached.
    #[arg(long, default_value_t = 5)]
    ttl: u32,
    /// TCP connections served at once; more are closed at accept.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_tcp_connections: u64,
    /// Tasks answering UDP questions, each one at a time (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    udp_workers: usize,
    /// Seconds a TCP connection may stay without sending a question.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_idle_timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.client.init_tracing();
    client_util::code_pages::page_out_start_up_code();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cluster-dns: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let zone = Zone::new(&args.cluster_domain, args.ttl).map_err(|e| e.to_string())?;
    let client = args.client.client().await.map_err(|e| e.to_string())?;
    let dns = args.dns_bind_address;
    let udp = tokio::net::UdpSocket::bind(dns)
        .await
        .map_err(|e| format!("cannot listen on {dns}/udp: {e}"))?;
    let tcp = tokio::net::TcpListener::bind(dns)
        .await
        .map_err(|e| format!("cannot listen on {dns}/tcp: {e}"))?;
    let healthz = tokio::net::TcpListener::bind(args.healthz_bind_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.healthz_bind_address))?;
    let udp_workers = if args.udp_workers == 0 {
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
    } else {
        args.udp_workers
    };
    let config = Config {
        zone,
        udp_workers,
        tcp: TcpLimits {
            max_connections: usize::try_from(args.max_tcp_connections).unwrap_or(usize::MAX),
            idle_timeout: Duration::from_secs(args.tcp_idle_timeout),
        },
    };
    cluster_dns::run(
        client,
        config,
        Listeners { udp, tcp, healthz },
        client_util::shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}
