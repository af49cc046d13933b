//! `apiserver`: parses flags, starts logging, listens, serves until SIGTERM.

use clap::Parser;
use tracing_subscriber::EnvFilter;

// glibc's malloc cost a third of the apiserver's CPU under load (perf, in
// hack/bench/README.md); mimalloc is cheaper for these many small JSON
// allocations across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = apiserver::Config::parse();
    let level = match config.verbosity {
        0 => "info",
        1 | 2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                EnvFilter::new(format!("{level},h2=info,tower=info,hyper=info"))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let address = std::net::SocketAddr::new(config.bind_address, config.port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("apiserver: cannot listen on {address}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match apiserver::serve(config, listener, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiserver: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apiserver: cannot handle SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
