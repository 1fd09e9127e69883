//! The properties, over random exchanges on a host and on a router.

use super::*;

/// ISNs anywhere, and often just below the wrap.
fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 20_000)..=u32::MAX]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn on_a_host_forgeries_teach_nothing_and_legitimate_rsts_pass(
        client_local in any::<bool>(), client_is_lo in any::<bool>(),
        c_isn in isn(), s_isn in isn(),
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        run(Placement::Host, client_local, client_is_lo, c_isn, s_isn, &ops);
    }

    #[test]
    fn on_a_router_forgeries_teach_nothing_and_legitimate_rsts_pass(
        client_is_lo in any::<bool>(), c_isn in isn(), s_isn in isn(),
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        run(Placement::Router, false, client_is_lo, c_isn, s_isn, &ops);
    }
}
