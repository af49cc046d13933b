//! The `scheduler` binary: flags, tracing, client, then [`scheduler::run`]
//! until SIGTERM.

use std::process::ExitCode;

use clap::Parser;

/// Binds unscheduled pods to nodes.
#[derive(Debug, Parser)]
#[command(name = "scheduler", version)]
struct Args {
    #[command(flatten)]
    client: client_util::ClientArgs,
    #[command(flatten)]
    leader_election: client_util::leader_election::LeaderElectionArgs,
    /// Seconds between rounds when nothing changes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    resync_seconds: u64,
    /// Bindings sent to the apiserver at once.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=1024))]
    bind_concurrency: u64,
    /// Where `/healthz`, `/livez` and `/readyz` are served (`host:port`,
    /// empty for nowhere): the 2014 scheduler's port. Plain HTTP without
    /// authentication, so loopback only unless
    /// --allow-non-loopback-healthz. `componentstatuses` probes it (the
    /// apiserver's --scheduler-healthz-url).
    #[arg(long, default_value = "127.0.0.1:10251")]
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
    let client = match args.client.client().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("scheduler: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = scheduler::Config {
        resync: std::time::Duration::from_secs(args.resync_seconds),
        bind_concurrency: usize::try_from(args.bind_concurrency).unwrap_or(128),
        ..scheduler::Config::default()
    };
    let probes = client_util::leader_election::Probes {
        address: args.healthz_bind_address,
        allow_non_loopback: args.allow_non_loopback_healthz,
        defaulted: healthz_defaulted,
        caches_synced: config.caches_synced.clone(),
        caches: "node, pod and service",
    };
    client_util::leader_election::serve_health_and_lead(
        "scheduler",
        "kube-scheduler",
        client.clone(),
        &args.leader_election,
        probes,
        move |stop| scheduler::run(client.clone(), config.clone(), stop),
    )
    .await
}
