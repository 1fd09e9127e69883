//! `cargo xtask demo`: a blind RST attack on a legacy TCP stack, first
//! without rstguard (the connection dies), then with rstguard at strict on
//! the router (it survives). Builds the lab, says what happens, removes the
//! lab at the end, also on Ctrl-C.

use std::{
    process::ExitCode,
    thread,
    time::{Duration, Instant},
};

use nix::sys::signal::{SigSet, Signal};
use rstguard_lab::{
    attack::{start_transfer, sweep_attack, LEGACY_PORT, STEP},
    legacy::WINDOW,
    n,
    netns::remove_all_of_this_process,
    routed::{Routed, ROUTER_IFACES},
    rstguard_bin, Daemon,
};

fn say(s: &str) {
    println!("{s}");
}

fn demo() -> Result<(), String> {
    let start = Instant::now();
    say("rstguard demo: a blind RST attack on a legacy TCP stack, without and then with rstguard.\n");
    say("Building the lab in network namespaces: a client (10.201.1.2) and a router; beside the router an");
    say("attacker (10.201.3.2); behind it a legacy TCP stack (smoltcp, 10.201.5.2, on a TAP device).");
    say(&format!(
        "smoltcp, like RFC 793 and many embedded stacks, accepts ANY RST inside its receive window ({} KiB here),",
        WINDOW / 1024
    ));
    say("where Linux (RFC 5961) would accept only the exact sequence number.\n");
    let mut lab = Routed::new();
    let peer = lab.with_legacy(LEGACY_PORT);
    let sweep_len = u64::from(u32::MAX) / u64::from(STEP) + 1;

    say("1. Without protection");
    let t = start_transfer(&lab, &peer);
    thread::sleep(Duration::from_millis(500));
    say(&format!(
        "   The client is sending data to the legacy stack: {} KB received so far.",
        peer.received() / 1000
    ));
    say(&format!(
        "   The attacker cannot see the connection. It guesses: {sweep_len} RSTs spoofed from the client, one every {} KiB",
        STEP / 1024
    ));
    say("   of sequence space, so that one of them must land inside the window...");
    let s = sweep_attack(&lab, &peer, t.client_port, 3);
    let outcome = t.finish();
    if !s.reset {
        return Err(
            "the unprotected connection survived the sweep: the demo could not show the attack"
                .into(),
        );
    }
    say(&format!(
        "   -> After {} spoofed RSTs the legacy stack accepted one and dropped the connection.",
        s.sent
    ));
    say(&format!(
        "      The client saw: {:?}.\n",
        outcome
            .sent
            .err()
            .map_or("no error".into(), |e| e.to_string())
    ));

    say("2. With rstguard at strict on the router");
    let mut args = vec!["attach"];
    args.extend(ROUTER_IFACES);
    args.push("r3");
    args.extend(["--policy", "strict", "--interval", "0", "--no-metrics"]);
    say(&format!("   rstguard {}", args.join(" ")));
    let mut daemon = Daemon::start(&lab.router, &args);
    say("   (XDP on every router interface; it learns each flow's sequence numbers from the packets it forwards.)");
    let t = start_transfer(&lab, &peer);
    thread::sleep(Duration::from_millis(500));
    say(&format!(
        "   A new transfer: {} KB received so far.",
        peer.received() / 1000
    ));
    say(&format!(
        "   The same attack: {sweep_len} spoofed RSTs, twice over..."
    ));
    let resets = peer.resets();
    let s = sweep_attack(&lab, &peer, t.client_port, 2);
    thread::sleep(Duration::from_millis(500));
    let outcome = t.finish();
    if s.reset || peer.resets() != resets {
        return Err("the connection was reset through rstguard".into());
    }
    let sent = outcome
        .sent
        .map_err(|e| format!("the client's connection failed: {e:?}"))?;
    say(&format!(
        "   -> The connection survived. The transfer completed: {} KB sent, {} KB received, byte for byte.",
        sent / 1000,
        peer.received() / 1000
    ));
    let stats = lab.router.cli_json(&["stats"]);
    let r2 = stats["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["device"] == "r2"))
        .ok_or("no counters for r2")?;
    let rst = &r2["counters"]["rst"];
    say(&format!(
        "      rstguard's counters on the router's attacker-facing interface: {} RSTs outside the window dropped,",
        n(&rst["out_of_window"]["dropped"])
    ));
    say(&format!(
        "      {} RSTs inside the window dropped (each of them would have killed the connection), {} exact RSTs passed.",
        n(&rst["in_window"]["dropped"]),
        n(&rst["exact"]["passed"])
    ));
    let _ = daemon.stop();
    say("\nWhat this showed: a blind attacker needs only a sweep of the sequence space, one window apart, to");
    say("reset a connection to a stack that accepts in-window RSTs. rstguard, at strict on the router in front");
    say("of it, lets only the exact sequence number through, which the attacker cannot know.");
    say(&format!(
        "\nRemoving the lab. (The demo took {:.0} s.)",
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn main() -> ExitCode {
    rstguard_lab::require_root();
    if !rstguard_bin().exists() {
        eprintln!(
            "rstguard-demo: no rstguard binary at {}: build it first (`cargo xtask demo` does)",
            rstguard_bin().display()
        );
        return ExitCode::FAILURE;
    }
    // Ctrl-C and SIGTERM go to this thread only; the demo runs on another,
    // and the lab is removed whichever ends first.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGUSR1);
    if signals.thread_block().is_err() {
        eprintln!("rstguard-demo: cannot block signals");
        return ExitCode::FAILURE;
    }
    let worker = thread::spawn(|| {
        let r = demo();
        // To the process, so that the main thread's sigwait sees it.
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGUSR1);
        r
    });
    match signals.wait() {
        Ok(Signal::SIGUSR1) => match worker.join() {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("rstguard-demo: {e}");
                ExitCode::FAILURE
            }
            Err(_) => {
                remove_all_of_this_process();
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("\ninterrupted: removing the lab");
            remove_all_of_this_process();
            ExitCode::from(130)
        }
    }
}
