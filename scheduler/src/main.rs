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
}

// glibc's malloc cost a third of the apiserver's CPU under load (perf, in
// hack/bench/README.md); mimalloc is cheaper for these many small JSON
// allocations across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.client.init_tracing();
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
    client_util::leader_election::main_while_leading(
        "scheduler",
        "kube-scheduler",
        client.clone(),
        &args.leader_election,
        move |stop| scheduler::run(client.clone(), config.clone(), stop),
    )
    .await
}
