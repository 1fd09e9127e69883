//! Layer 2: packet tests. The real eBPF object, loaded into the kernel and
//! run on crafted frames with BPF_PROG_TEST_RUN; each test replays a
//! conversation (handshake, data both ways through XDP and TC) and then the
//! RST, and checks the verdict, the action, the counters and the flow state.
//! Needs root. One module per topic; the harness builds frames and models
//! the conversation.

mod causes;
mod evasion;
mod exact;
mod frames;
mod harness;
mod socket;
mod socket_causes;
mod states;
mod table;
mod tracking;
mod unforgeable;
mod verifier;
mod window;
