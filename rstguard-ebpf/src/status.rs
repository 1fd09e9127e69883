//! Maps the daemon keeps and pins with the others. The programs never touch
//! them; they live in the object so that they are created with it.

use aya_ebpf::{macros::map, maps::Array};
use rstguard_common::{layout::RESETS_KEPT, DaemonStatus, ResetRecord};

/// The daemon's published status (`rstguard status`). The programs never
/// touch it; it lives in the object so that it is created and pinned with
/// the other maps.
#[map]
pub static STATUS: Array<DaemonStatus> = Array::with_max_entries(1, 0);

/// The latest RSTs, as the daemon numbered them (`rstguard resets`). The
/// programs never touch it; it lives here to be created and pinned with
/// the others.
#[map]
pub static RESETS: Array<ResetRecord> = Array::with_max_entries(RESETS_KEPT, 0);
