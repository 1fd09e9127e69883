//! Layer 1: the flow state a blind attacker cannot teach.
//!
//! A model of two real TCP endpoints (what each really sent, received,
//! acknowledged and SACKed) drives rstguard's tracking with a legitimate
//! exchange (handshake, data both ways, losses before and after the
//! observation point, retransmissions, delayed ACKs, SACK, FINs, sequence
//! numbers anywhere in the 2^32 space), interleaved with forged segments of
//! random flags, sequence and ACK numbers. After every step it checks:
//!
//! * every value rstguard would call exact is one the real endpoints put
//!   there: on a host, the receiver's real RCV.NXT (or RCV.NXT - 1 after a
//!   FIN, or an ACK or SACK edge the receiver itself sent); on a router,
//!   also anything inside the bytes then in flight;
//! * a forged segment changes none of those values;
//! * every legitimate RST the receiving kernel would accept at that moment
//!   passes at strict (and so at every level).
//!
//! Both placements: `Host` (one endpoint is local: its segments are seen at
//! TC egress, the peer's at XDP) and `Router` (both directions at XDP).

mod attacks;
mod model;
mod properties;
mod world;

use std::collections::BTreeSet;

use proptest::prelude::*;
use rstguard_common::{
    judge::judge,
    parse::{Segment, ACK, FIN, RST, SYN},
    seq::{after, before},
    state::track::{self, Ignore, Origin, Step},
    state::{FLOW_HI_INITIATOR, HALF_ACK, HALF_FIN, HALF_SACK, WSCALE_NONE},
    Action, Flow, FlowState, Level, Policy, Verdict,
};

/// The clock stands still: the whole exchange happens within a second.
use model::*;
use world::*;
