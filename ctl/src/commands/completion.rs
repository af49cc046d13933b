//! `ctl completion bash|zsh`: a shell completion script on stdout.

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

/// Flags of `completion`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

/// Runs `completion`.
///
/// # Errors
///
/// None in practice (clap rejects other shells).
pub fn run(args: &Args) -> Result<()> {
    let shell = match args.shell.as_str() {
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        _ => Shell::Bash,
    };
    let mut command = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "ctl", &mut out);
    crate::emit(&String::from_utf8_lossy(&out));
    Ok(())
}
