//! A legacy stack (smoltcp, which accepts any in-window RST) behind the
//! router: a blind sweep kills its connection; with rstguard at strict on
//! the router, the connection survives.

use std::io::ErrorKind;

use rstguard_lab::{
    attack::{start_transfer, sweep_attack},
    n,
    routed::{Routed, ROUTER_IFACES},
    Daemon,
};

#[test]
fn a_blind_sweep_kills_a_legacy_stack_unless_rstguard_is_strict_on_the_router() {
    let mut lab = Routed::new();
    let peer = lab.with_legacy(rstguard_lab::attack::LEGACY_PORT);

    // Unprotected: the sweep lands in the window, and the connection dies.
    let t = start_transfer(&lab, &peer);
    let s = sweep_attack(&lab, &peer, t.client_port, 3);
    assert!(
        s.reset,
        "the unprotected legacy peer survived {} RSTs",
        s.sent
    );
    let outcome = t.finish();
    assert_eq!(
        outcome.sent,
        Err(ErrorKind::ConnectionReset),
        "the client saw its connection die"
    );

    // Protected: rstguard at strict on every router interface.
    let mut args = vec!["attach"];
    args.extend(ROUTER_IFACES);
    args.push("r3");
    args.extend(["--policy", "strict", "--interval", "0", "--no-metrics"]);
    let mut daemon = Daemon::start(&lab.router, &args);
    let t = start_transfer(&lab, &peer);
    let resets = peer.resets();
    let s = sweep_attack(&lab, &peer, t.client_port, 2);
    assert!(!s.reset, "the legacy peer was reset through rstguard");
    assert_eq!(peer.resets(), resets);
    t.assert_flowing_to(&peer);
    let outcome = t.finish();
    let sent = outcome.sent.expect("the client's connection survived");
    assert_eq!(sent, peer.received(), "byte-exact");
    let stats = lab.router.cli_json(&["stats"]);
    let r2 = stats["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["device"] == "r2")
        .unwrap();
    let rst = &r2["counters"]["rst"];
    let dropped = n(&rst["out_of_window"]["dropped"]) + n(&rst["in_window"]["dropped"]);
    assert_eq!(dropped, s.sent, "every RST of the sweep was dropped: {rst}");
    assert!(
        n(&rst["in_window"]["dropped"]) >= 2,
        "the sweep hit the window: {rst}"
    );
    assert_eq!(daemon.stop().0, 0);
}
