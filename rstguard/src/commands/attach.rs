//! `rstguard attach`: the daemon (see `crate::daemon`).

use crate::{cli::AttachArgs, daemon, host::paths::PinDir};

pub fn run(args: AttachArgs, pins: PinDir) -> anyhow::Result<()> {
    daemon::run(args, pins)
}
