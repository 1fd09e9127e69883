//! Every RST judged from the moment `attach` says it attached is recorded.

use super::*;

/// `rstguard attach` says it attached once its programs judge RSTs, and
/// every RST a real peer could have sent must then be recorded for
/// `resets` (suspicious ones too, at the default sampling of one in one).
/// FAILS at the time of writing: the programs take a record only from an
/// event budget that the daemon first fills when it starts serving, some
/// 100 to 300 ms after its programs went live (longer on a loaded
/// machine), so the RSTs judged in between are counted
/// (`rstguard_rst_causes_total`) but never recorded, and not counted as
/// lost either (`events_lost` stays 0).
#[test]
fn every_rst_judged_right_after_attach_is_recorded() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };
    let pair = Pair::new();
    // Connections to a closed port, every 5 ms, from before the daemon
    // starts until it has recorded one.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let hammer = pair.client.spawn(move || {
        let mut n = 0u32;
        while !flag.load(Ordering::Relaxed) && n < 4000 {
            let got = TcpStream::connect_timeout(&sockaddr(SERVER4, 9), TIMEOUT);
            assert_eq!(
                got.map(|_| ()).map_err(|e| e.kind()),
                Err(ErrorKind::ConnectionRefused)
            );
            n += 1;
            thread::sleep(Duration::from_millis(5));
        }
        n
    });
    let mut d = Daemon::start(&pair.client, &["attach", "c0", "--interval", "0"]);
    let (status, _) = http_get(&pair.client, "127.0.0.1:9477", "/metrics");
    assert_eq!(status, 200);
    let log = ResetLog::follow(&pair.client);
    log.wait("a first record", |_| true);
    stop.store(true, Ordering::Relaxed);
    let sent = hammer.join().unwrap();
    let counted: u64 = cause_metrics(&pair.client, "c0").values().sum();
    assert!(
        counted > 0 && counted <= u64::from(sent),
        "{counted} of {sent}"
    );
    if let Err(recorded) = log.try_wait_n(counted as usize, |_| true) {
        // What was counted and not recorded, by (direction, cause).
        let mut missing = cause_metrics(&pair.client, "c0");
        for (k, v) in log.by_cause() {
            *missing.entry(k).or_default() -= v;
        }
        missing.retain(|_, v| *v > 0);
        let stats = pair.client.cli_json(&["stats"]);
        panic!(
            "{} RSTs judged and counted in rstguard_rst_causes_total, {} recorded for \
             `resets`; not recorded: {missing:?}; events_lost {}; the first records: {:#?}",
            counted,
            recorded.len(),
            stats["interfaces"][0]["counters"]["events_lost"],
            &recorded[..recorded.len().min(3)]
        );
    }
    assert_eq!(d.stop().0, 0, "{}", d.log());
}
