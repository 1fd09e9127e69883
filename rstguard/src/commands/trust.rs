//! `rstguard trust add|del|list`: trusted source prefixes, live.

use super::print_json;
use crate::{cli::TrustCmd, host::paths::PinDir, maps::Maps};

pub fn run(pins: &PinDir, cmd: &TrustCmd) -> anyhow::Result<()> {
    let mut maps = Maps::open(pins)?;
    match cmd {
        TrustCmd::Add { prefixes } => {
            for p in prefixes {
                maps.trust(p)?;
                println!("trusted {p}");
            }
        }
        TrustCmd::Del { prefixes } => {
            for p in prefixes {
                if maps.distrust(p)? {
                    println!("no longer trusted: {p}");
                } else {
                    anyhow::bail!("{p} was not trusted (see `rstguard trust list`)");
                }
            }
        }
        TrustCmd::List(j) => {
            let list: Vec<String> = maps.trusted()?.iter().map(|p| p.to_string()).collect();
            if j.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no trusted prefixes");
            }
            for p in list {
                println!("{p}");
            }
        }
    }
    Ok(())
}
