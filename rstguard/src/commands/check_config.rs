//! `rstguard check-config FILE`: validates a config file offline.

use std::path::Path;

use crate::{
    cli::{Cli, Commands},
    config,
    show::policy::describe,
};

pub fn run(file: &Path) -> anyhow::Result<()> {
    let parsed = config::read(file)?;
    // Resolve it as the daemon would, with no flags; interfaces may come
    // from the command line instead, so a stand-in fills that gap.
    let stand_in = if parsed.interfaces.is_some() {
        vec![]
    } else {
        vec!["(from the command line)"]
    };
    let mut argv = vec!["rstguard", "attach"];
    argv.extend(stand_in);
    let args = match Cli::parse_argv(argv)?.command {
        Commands::Attach(a) => a,
        _ => unreachable!("parsed an attach command"),
    };
    let settings = config::resolve(&args, &parsed, Some(file.to_path_buf()))?;
    println!(
        "{}: ok: interfaces {}, {}, {} trusted prefix(es), metrics {}",
        file.display(),
        settings.interfaces.join(" "),
        describe(&settings.policy),
        settings.trust.len(),
        settings
            .metrics
            .map_or("off".to_string(), |a| a.to_string())
    );
    Ok(())
}
