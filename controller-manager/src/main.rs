//! The `controller-manager` binary: flags, tracing, client, then
//! [`controller_manager::run`] until SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Runs the replication manager, the endpoints controller and node
/// lifecycle.
#[derive(Debug, Parser)]
#[command(name = "controller-manager", version)]
struct Args {
    #[command(flatten)]
    client: client_util::ClientArgs,
    #[command(flatten)]
    leader_election: client_util::leader_election::LeaderElectionArgs,
    /// A node whose heartbeat is older than this becomes Ready=Unknown.
    #[arg(long, default_value = "40s", value_parser = client_util::go_duration)]
    node_monitor_grace_period: Duration,
    /// Pods of a node not ready for this long are deleted.
    #[arg(long, default_value = "5m", value_parser = client_util::go_duration)]
    pod_eviction_timeout: Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = client_util::go_duration)]
    node_monitor_period: Duration,
    /// Keep a route `podCIDR via InternalIP` to every node in this host's
    /// main routing table (host-gateway networking; needs root).
    #[arg(long)]
    configure_routes: bool,
    /// The pod range; the route controller routes only node pod CIDRs
    /// inside it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// Where `/healthz`, `/livez` and `/readyz` are served (`host:port`,
    /// empty for nowhere): the 2014 controller manager's port. Plain HTTP
    /// without authentication, so loopback only unless
    /// --allow-non-loopback-healthz. `componentstatuses` probes it (the
    /// apiserver's --controller-manager-healthz-url).
    #[arg(long, default_value = "127.0.0.1:10252")]
    healthz_bind_address: client_util::health::BindAddress,
    /// Allow --healthz-bind-address on an address other hosts reach.
    #[arg(long)]
    allow_non_loopback_healthz: bool,
}

// glibc's malloc cost a third of the apiserver's CPU under load (perf, in
// hack/bench/README.md); mimalloc is cheaper for these many small JSON
// allocations across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let (args, healthz_defaulted) = client_util::parse_flags::<Args>(&["healthz_bind_address"]);
    args.client.init_tracing();
    client_util::code_pages::page_out_start_up_code();
    let config = controller_manager::Config {
        node_monitor_grace_period: args.node_monitor_grace_period,
        pod_eviction_timeout: args.pod_eviction_timeout,
        node_monitor_period: args.node_monitor_period.max(Duration::from_millis(10)),
        configure_routes: args.configure_routes,
        cluster_cidr: args.cluster_cidr,
        ..controller_manager::Config::default()
    };
    let client = match args.client.client().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("controller-manager: {e}");
            return ExitCode::FAILURE;
        }
    };
    let probes = client_util::leader_election::Probes {
        address: args.healthz_bind_address,
        allow_non_loopback: args.allow_non_loopback_healthz,
        defaulted: healthz_defaulted,
        caches_synced: config.caches_synced.clone(),
        caches: "pod, node and endpoints",
    };
    client_util::leader_election::serve_health_and_lead(
        "controller-manager",
        "kube-controller-manager",
        client.clone(),
        &args.leader_election,
        probes,
        move |stop| controller_manager::run(client.clone(), config.clone(), stop),
    )
    .await
}
