//! `mini-k8s-bench`: the benchmarks that run whole clusters, one subcommand
//! each; their code is in the crate's library (`src/lib.rs`), this is only
//! the command line. See `hack/bench/README.md`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use mini_k8s_bench::{code_layout, create, density, idle, soak};

#[derive(Parser, Debug)]
#[command(name = "mini-k8s-bench", about = "Benchmarks of mini-k8s components")]
enum Command {
    /// Pods created per second through `POST /api/v1/namespaces/default/pods`
    /// next to etcd's raw put and create-txn rates for values of the same size.
    ApiserverCreate(create::CreateArgs),
    /// Hollow nodes and pods created through replication controllers: the
    /// scheduler's bind rate, the time until every pod is Running, and the
    /// memory of the scheduler and controller-manager.
    SchedulerDensity(density::DensityArgs),
    /// A day of a 100-node cluster in 30 minutes: hollow nodes, churn of
    /// pods, services and RCs, etcd's DB size and every component's RSS
    /// and fds sampled; flatness verdict and lost-writes check.
    Soak(soak::SoakArgs),
    /// Every component idle on an empty cluster: VmRSS (anonymous and
    /// file-backed) beside Kubernetes v0.5's, with environment variants.
    IdleRss(idle::IdleArgs),
    /// The functions each component runs while idle, written as the
    /// linker's symbol ordering files of `hack/code-layout/` (root).
    CodeLayout(code_layout::CodeLayoutArgs),
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let command = Command::parse();
    match &command {
        Command::ApiserverCreate(args) => create::validate(args)?,
        Command::SchedulerDensity(args) => density::validate(args)?,
        Command::Soak(args) => soak::validate(args)?,
        Command::IdleRss(args) => idle::validate(args)?,
        Command::CodeLayout(_) => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let result = runtime.block_on(async {
        match &command {
            Command::ApiserverCreate(args) => create::apiserver_create(args).await,
            Command::SchedulerDensity(args) => density::scheduler_density(args).await,
            Command::Soak(args) => soak::soak(args).await,
            Command::IdleRss(args) => idle::idle_rss(args).await,
            Command::CodeLayout(args) => code_layout::code_layout(args).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}
