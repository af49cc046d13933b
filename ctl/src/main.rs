//! `ctl`: the kubectl-style command line. Only wiring: parse, run, print
//! one line per failure, exit non-zero.
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = ctl::Cli::parse();
    match ctl::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            if let Some(exit) = error.downcast_ref::<ctl::ExitCode>() {
                eprintln!("{exit}");
                // Exit codes are 0..=255; a code out of range is a failure.
                return u8::try_from(exit.0).map_or(std::process::ExitCode::FAILURE, Into::into);
            }
            if error.downcast_ref::<ctl::Reported>().is_none() {
                let line = format!("{error:#}").replace('\n', " ");
                eprintln!("error: {line}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
