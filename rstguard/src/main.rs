use std::{io::IsTerminal, process::ExitCode};

use rstguard::{
    cli::{Cli, Commands},
    commands,
    paths::PinDir,
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse_argv(std::env::args_os()).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RSTGUARD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let pins = PinDir::new(&cli.pin_dir);
    let result = match cli.command {
        Commands::Attach(args) => commands::attach::run(args, pins),
        Commands::Status(a) => commands::status::run(&pins, a.json),
        Commands::Stats(a) => commands::stats::run(&pins, &a),
        Commands::Flows(a) => commands::flows::run(&pins, &a),
        Commands::Resets(a) => commands::resets::run(&pins, &a),
        Commands::Policy(c) => commands::policy::run(&pins, &c),
        Commands::Trust(c) => commands::trust::run(&pins, &c),
        Commands::Detach(a) => commands::detach::run(&pins, &a),
        Commands::Check(a) => commands::check::run(&pins, &a),
        Commands::CheckConfig { file } => commands::check_config::run(&file),
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
