//! Judging RSTs: one that arrived at XDP against its flow, a frame that
//! may hide one, a RST the host itself sent (at TC), and data that proves
//! an earlier RST forged.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{lpm_trie::Key, LpmTrie},
};
use rstguard_common::{
    act::POLICY_HAS_TRUSTED,
    count::{cause_slot, rst_slot},
    judge::{
        self,
        cause::{self, Facts, EVIDENCE_DATA_AFTER},
        Judgement,
    },
    layout::TrustKey,
    parse::RST,
    state::{track, HALF_ACK},
    Action, Cause, Counters, Direction, Flow, Policy, Verdict,
};

use crate::{
    act::{policy, report, sampled, take_event, Against},
    count::bump_slot,
    parse::Packet,
    state::{clock, find_flow},
};

/// Trusted source prefixes.
#[map]
pub static TRUSTED: LpmTrie<TrustKey, u8> = LpmTrie::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// Judges a RST that arrived at XDP ingress; counts it by verdict and
/// action, reports it when suspicious, and returns the action.
#[inline(always)]
pub fn judge_rst(pkt: &Packet, ifindex: u32, slot: u32, c: &mut Counters) -> Action {
    let fail_open = Policy::FAIL_OPEN;
    let policy = policy(slot).unwrap_or(&fail_open);
    let trusted = policy.flags & POLICY_HAS_TRUSTED != 0 && is_trusted(pkt.src());
    let flow_ptr = find_flow(&pkt.key).map(|(f, _)| f);
    // SAFETY: as in `learn`.
    let flow = flow_ptr.map(|f| unsafe { &mut *f });
    let j = judge::judge(flow, pkt.sender_is_lo, &pkt.seg, trusted, policy, clock());
    bump_slot(c, rst_slot(j.verdict, j.action));
    bump_slot(c, cause_slot(Direction::Ingress, j.cause));
    // Every RST a real peer could have sent is reported (within the event
    // budget): they are what `rstguard resets` explains. Suspicious ones
    // are sampled as the policy says.
    let legitimate = matches!(j.verdict, Verdict::Exact | Verdict::Trusted);
    if (legitimate || sampled(c, policy.event_sample)) && take_event() {
        // SAFETY: as in `learn`.
        let flow = flow_ptr.map(|f| unsafe { &*f });
        report(
            pkt,
            ifindex,
            &j,
            Direction::Ingress,
            &against(pkt, flow, 0),
            c,
        );
    }
    j.action
}

/// Counts and reports a RST proven forged by the data its supposed sender
/// sent after it.
#[inline(always)]
pub fn injection_proven(pkt: &Packet, flow: &Flow, ifindex: u32, c: &mut Counters) {
    bump_slot(c, cause_slot(Direction::Ingress, Cause::Injected));
    if take_event() {
        let mut facts = Facts::of_flow(flow, pkt.sender_is_lo, &pkt.seg);
        facts.rst_ttl = pkt.seg.ttl;
        let j = Judgement {
            verdict: Verdict::Exact,
            action: Action::Pass,
            cause: Cause::Injected,
            facts,
        };
        let against = against(pkt, Some(flow), EVIDENCE_DATA_AFTER);
        report(pkt, ifindex, &j, Direction::Ingress, &against, c);
    }
}

/// Judges a frame that may hide a RST without showing its flags (a tiny or
/// overlapping fragment, a header past the parser's bounds); counts it by
/// verdict and action, and returns the action.
#[inline(always)]
pub fn judge_unparsed(verdict: Verdict, slot: u32, c: &mut Counters) -> Action {
    let fail_open = Policy::FAIL_OPEN;
    let action = judge::action_for(verdict, policy(slot).unwrap_or(&fail_open));
    bump_slot(c, rst_slot(verdict, action));
    action
}

/// The host itself sent a RST (TC egress): never judged, but its cause
/// counted and reported, and its flow closed.
#[inline(always)]
pub fn own_rst(pkt: &Packet, ifindex: u32, c: &mut Counters) {
    debug_assert!(pkt.seg.has(RST));
    let found = find_flow(&pkt.key).map(|(f, _)| f);
    // SAFETY: as in `learn`.
    let flow = found.map(|f| unsafe { &mut *f });
    let facts = match &flow {
        Some(f) => Facts::of_flow(f, pkt.sender_is_lo, &pkt.seg),
        None => Facts::of_own_rst(&pkt.seg),
    };
    let j = Judgement {
        verdict: Verdict::Exact,
        action: Action::Pass,
        cause: cause::of_own_rst(&facts),
        facts,
    };
    bump_slot(c, cause_slot(Direction::Egress, j.cause));
    if let Some(flow) = flow {
        track::close(flow, clock());
    }
    if take_event() {
        // SAFETY: as in `learn`.
        let flow = found.map(|f| unsafe { &*f });
        report(
            pkt,
            ifindex,
            &j,
            Direction::Egress,
            &against(pkt, flow, 0),
            c,
        );
    }
}

#[inline(always)]
pub fn is_trusted(src: &[u8; 16]) -> bool {
    TRUSTED.get(Key::new(128, *src)).is_some()
}

/// What a real peer's RST would carry (the receiver's last ACK, or the
/// sender's next sequence number) and the receiver's window, for the
/// event about a RST judged against `flow`.
#[inline(always)]
fn against(pkt: &Packet, flow: Option<&Flow>, evidence: u8) -> Against {
    match flow {
        Some(f) => {
            let (s, r) = f.halves(pkt.sender_is_lo);
            Against {
                expected: if r.has(HALF_ACK) { r.ack } else { s.snd_nxt },
                window: f.window(!pkt.sender_is_lo),
                has_flow: 1,
                socket_state: 0,
                evidence,
            }
        }
        None => Against {
            evidence,
            ..Against::default()
        },
    }
}
