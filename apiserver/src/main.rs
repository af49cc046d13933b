//! `apiserver`: parses flags, starts logging, listens, serves until SIGTERM.

use clap::Parser;

// glibc's malloc cost a third of the apiserver's CPU under load (perf, in
// hack/bench/README.md); mimalloc is cheaper for these many small JSON
// allocations across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = apiserver::Config::parse();
    // The same -v/--v levels and log format as every other binary.
    client_util::init_tracing(config.verbosity);
    client_util::code_pages::page_out_start_up_code();
    let address = std::net::SocketAddr::new(config.bind_address, config.port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("apiserver: cannot listen on {address}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match apiserver::serve(config, listener, client_util::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiserver: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
