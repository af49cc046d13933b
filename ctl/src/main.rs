//! `ctl`: the kubectl-style command line. Only wiring: parse, run, print
//! one line per failure, exit non-zero.
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = ctl::Cli::parse();
    match ctl::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            if error.downcast_ref::<ctl::Reported>().is_none() {
                let line = format!("{error:#}").replace('\n', " ");
                eprintln!("error: {line}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
