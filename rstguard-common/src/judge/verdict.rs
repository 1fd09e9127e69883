//! What rstguard concludes about a RST (its verdict) and what happens to
//! the packet (its action): the names every counter, metric and event
//! uses.

/// What rstguard concluded about a RST.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// No entry for the flow.
    NoFlow = 0,
    /// The source is in the trusted prefix list.
    Trusted = 1,
    /// RST at a flow in SYN_SENT without the ACK of the SYN.
    BadSynAck = 2,
    /// RST at a flow in TIME_WAIT (RFC 1337).
    TimeWait = 3,
    /// The sequence number is one a real peer uses.
    Exact = 4,
    /// Inside the receiver's window but not exact.
    InWindow = 5,
    /// Outside the receiver's window.
    OutOfWindow = 6,
    /// In window, but the flow's inexact-RST budget is spent.
    RateLimited = 7,
    /// One endpoint of the flow was never seen (asymmetric routing, or a
    /// flow picked up from one side): no ground to call the RST out of
    /// window. Never dropped.
    OneSided = 8,
    /// The first fragment of a TCP segment without the whole TCP header:
    /// the flags may sit in a later fragment (RFC 1858's tiny fragments).
    /// Judged whatever its flags.
    TinyFragment = 9,
    /// An IPv4 TCP fragment at offset 8 bytes: it overwrites the flags of
    /// the first fragment on reassembly (RFC 3128).
    FragmentOverlap = 10,
    /// A RST in the first fragment of a fragmented segment: no real stack
    /// fragments a RST (40 to 60 bytes; the smallest IPv4 MTU is 68).
    FragmentedRst = 11,
    /// A frame whose TCP header rstguard cannot reach: more VLAN tags or
    /// IPv6 extension headers than the parser follows. It may hide a RST.
    HeaderUnreachable = 12,
    /// A sequence number a real peer uses, but sent from another distance
    /// than the peer's own segments (its TTL or hop limit differs by more
    /// than the slack): given only under `--drop-injected`.
    TtlMismatch = 13,
}

impl Verdict {
    pub const COUNT: usize = 14;
    pub const ALL: [Verdict; Verdict::COUNT] = [
        Verdict::NoFlow,
        Verdict::Trusted,
        Verdict::BadSynAck,
        Verdict::TimeWait,
        Verdict::Exact,
        Verdict::InWindow,
        Verdict::OutOfWindow,
        Verdict::RateLimited,
        Verdict::OneSided,
        Verdict::TinyFragment,
        Verdict::FragmentOverlap,
        Verdict::FragmentedRst,
        Verdict::HeaderUnreachable,
        Verdict::TtlMismatch,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Verdict::NoFlow => "no_flow",
            Verdict::Trusted => "trusted",
            Verdict::BadSynAck => "bad_syn_ack",
            Verdict::TimeWait => "time_wait",
            Verdict::Exact => "exact",
            Verdict::InWindow => "in_window",
            Verdict::OutOfWindow => "out_of_window",
            Verdict::RateLimited => "rate_limited",
            Verdict::OneSided => "one_sided",
            Verdict::TinyFragment => "tiny_fragment",
            Verdict::FragmentOverlap => "fragment_overlap",
            Verdict::FragmentedRst => "fragmented_rst",
            Verdict::HeaderUnreachable => "header_unreachable",
            Verdict::TtlMismatch => "ttl_mismatch",
        }
    }

    /// Verdicts no real peer could have earned (the controller's "invalid").
    pub const fn is_invalid(self) -> bool {
        matches!(
            self,
            Verdict::BadSynAck
                | Verdict::InWindow
                | Verdict::OutOfWindow
                | Verdict::RateLimited
                | Verdict::TinyFragment
                | Verdict::FragmentOverlap
                | Verdict::FragmentedRst
        )
    }
}
