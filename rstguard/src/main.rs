use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use rstguard::{
    cli::{Cli, Commands},
    commands,
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RSTGUARD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let result = match cli.command {
        Commands::Attach(args) => commands::attach::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed, and the chain of causes.
            eprintln!("rstguard: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
