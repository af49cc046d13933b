//! The `kube-proxy` binary: flags, tracing, client, then [`kube_proxy::run`]
//! until SIGTERM (or [`kube_proxy::cleanup`] with `--cleanup`).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kube_proxy::{Config, Mode};

/// Forwards service portal IPs and publicIPs to the service's endpoints.
///
/// Needs the portal range routed to the node itself
/// (`ip route add local 10.0.0.0/24 dev lo table local`), iptables with the
/// nat table, and root. On SIGTERM it removes every rule it wrote.
#[derive(Debug, Parser)]
#[command(name = "kube-proxy", version)]
struct Args {
    #[command(flatten)]
    client: client_util::ClientArgs,
    /// How to forward: `iptables` (DNAT rules, the kernel forwards) or
    /// `userspace` (a listener in this process per service port).
    #[arg(long, value_enum, default_value_t = Mode::Iptables)]
    proxy_mode: Mode,
    /// The address userspace listeners bind (0.0.0.0 = all of this node's).
    #[arg(long, default_value_t = Ipv4Addr::UNSPECIFIED)]
    bind_address: Ipv4Addr,
    /// Where `/healthz`, `/livez`, `/readyz` (`?verbose` lists the checks:
    /// `proxy-rules`, `informer-sync`) and `/metrics` are served.
    #[arg(long, default_value = "127.0.0.1:10256")]
    healthz_bind_address: SocketAddr,
    /// This node's name (for logs; defaults to the hostname).
    #[arg(long)]
    hostname_override: Option<String>,
    /// Remove every iptables rule and chain either mode writes, then exit.
    #[arg(long)]
    cleanup: bool,
    /// Seconds a UDP association (one client to one endpoint) lives without
    /// traffic (userspace mode).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    udp_idle_timeout: u64,
    /// Seconds between checks that the kernel still holds our rules
    /// (repaired if not); changes are written at once regardless.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    iptables_sync_period: u64,
    /// Userspace mode: TCP connections and UDP client associations forwarded
    /// at once, over every service. Beyond it a new connection is closed at
    /// once and a new UDP client's datagram dropped, each counted in
    /// `kube_proxy_errors_total{reason="too_many_connections"}`.
    #[arg(long, default_value_t = kube_proxy::userspace::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    userspace_max_connections: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.client.init_tracing();
    client_util::code_pages::page_out_start_up_code();
    if args.cleanup {
        return match kube_proxy::cleanup().await {
            Ok(removed) => {
                tracing::info!(removed, "cleanup done");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kube-proxy: cleanup: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let client = match args.client.client().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("kube-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let healthz = match tokio::net::TcpListener::bind(args.healthz_bind_address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "kube-proxy: cannot listen on {}: {e}",
                args.healthz_bind_address
            );
            return ExitCode::FAILURE;
        }
    };
    let hostname = args.hostname_override.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    });
    let userspace_max_connections =
        usize::try_from(args.userspace_max_connections).unwrap_or(usize::MAX);
    if args.proxy_mode == Mode::Userspace {
        kube_proxy::userspace::fit_descriptor_limit(userspace_max_connections);
    }
    let config = Config {
        userspace_max_connections,
        mode: args.proxy_mode,
        bind_address: args.bind_address,
        hostname,
        udp_idle_timeout: Duration::from_secs(args.udp_idle_timeout),
        sync_period: Duration::from_secs(args.iptables_sync_period),
        ..Config::default()
    };
    match kube_proxy::run(client, config, healthz, client_util::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
