use proptest::prelude::*;

use super::*;
use crate::flow::FlowKey;
use crate::sim::{CoreConfig, Output};
use crate::topology::SnapshotBuilder;
use crate::wire::checksum;
use crate::wire::EthernetAddress;

fn empty_snapshot() -> Snapshot {
    SnapshotBuilder::new(1).build().unwrap()
}

/// An IPv4 (or IPv6) UDP frame, optionally 802.1Q-tagged, with the given TTL and IP length.
fn frame(v6: bool, tagged: bool, ttl: u8, ip_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    if tagged {
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&[0x00, 0x07, 0, 0]);
    }
    let at = f.len() - 2;
    if v6 {
        f[at..at + 2].copy_from_slice(&[0x86, 0xdd]);
        let mut ip = vec![0u8; ip_len.max(40)];
        ip[0] = 0x60;
        let payload = (ip.len() - 40) as u16;
        ip[4..6].copy_from_slice(&payload.to_be_bytes());
        ip[6] = 17;
        ip[7] = ttl;
        udp_length(&mut ip, 40);
        f.extend_from_slice(&ip);
    } else {
        f[at..at + 2].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; ip_len.max(20)];
        ip[0] = 0x45;
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = ttl;
        ip[9] = 17;
        ip[12..20].copy_from_slice(&[198, 18, 0, 1, 198, 19, 0, 1]);
        udp_length(&mut ip, 20);
        let sum = checksum::finish(checksum::data(&ip[..20]));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f
}

/// Fills in the length of the UDP header after an IP header of `header` bytes, when there is room
/// for one (so that the frame parses to a key).
fn udp_length(ip: &mut [u8], header: usize) {
    if let Some(len) = ip.len().checked_sub(header).filter(|&n| n >= 8) {
        ip[header + 4..header + 6].copy_from_slice(&(len as u16).to_be_bytes());
    }
}

fn list(actions: &[Action]) -> Actions {
    let mut a = Actions::new();
    for &x in actions {
        a.push(x);
    }
    a
}

const SRC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0x10, 2]);
const DST: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0x20, 1]);

#[test]
fn a_routed_hop_compiles_and_rewrites_like_the_list() {
    let snap = empty_snapshot();
    let mut st = CoreState::new(&CoreConfig::default());
    let actions = list(&[
        Action::SetEthSrc(SRC),
        Action::SetEthDst(DST),
        Action::DecTtl(1),
        Action::CheckMtu(1500),
        Action::Output(1),
    ]);
    let mut by_list = frame(false, false, 64, 46);
    let cached = CachedActions::compile(&actions, &key_of(&by_list));
    assert!(matches!(cached, CachedActions::Routed(_)), "{cached:?}");
    let mut by_hop = by_list.clone();
    assert_eq!(crate::sim::apply(&snap, &actions, &mut by_list, &mut st, 1), Ok(Output::local(1)));
    assert_eq!(cached.apply(&snap, &mut by_hop, &mut st, 1, &mut outer()), Ok(Applied::Local(1)));
    assert_eq!(by_hop, by_list);
    assert_eq!(&by_hop[..12], &[DST.0, SRC.0].concat()[..]);
    assert_eq!(by_hop[14 + 8], 63);
    assert_eq!(checksum::data(&by_hop[14..34]), 0xffff, "header checksum still valid");
}

#[test]
fn other_shapes_stay_lists() {
    for actions in [
        list(&[Action::SetEthSrc(SRC), Action::Output(1)]),
        list(&[Action::DecTtl(1), Action::DecTtl(1), Action::Output(1)]),
        list(&[Action::CheckMtu(1500), Action::CheckMtu(1400), Action::Output(1)]),
        list(&[Action::Learn(PortId(3)), Action::Output(1)]),
        list(&[Action::Track { zone: 1, reverse: true }, Action::Output(1)]),
        list(&[Action::Drop(DropReason::RuleDrop)]),
        list(&[Action::SetEthSrc(SRC), Action::SetEthDst(DST)]),
        list(&[Action::Flood]),
        Actions::new(),
    ] {
        let key = key_of(&frame(false, false, 64, 46));
        assert_eq!(CachedActions::compile(&actions, &key), CachedActions::List(actions), "{actions:?}");
    }
}

#[test]
fn a_hop_that_checks_ip_needs_an_ip_key() {
    let mut arp = frame(false, false, 64, 46);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let not_ip = key_of(&[&arp[..14], &[0, 1, 8, 0, 6, 4, 0, 1], &[0u8; 20][..]].concat());
    assert!(!not_ip.is_ip());
    let checks = list(&[Action::SetEthSrc(SRC), Action::SetEthDst(DST), Action::DecTtl(1), Action::Output(1)]);
    assert_eq!(CachedActions::compile(&checks, &not_ip), CachedActions::List(checks));
    let bridged = list(&[Action::Output(1)]);
    assert!(matches!(CachedActions::compile(&bridged, &not_ip), CachedActions::Hop(_)));
}

/// The key the flow cache would file `frame` under.
fn key_of(frame: &[u8]) -> FlowKey {
    FlowKey::from_frame(3, frame).expect("a frame that parses")
}

fn compilable_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Nop),
        Just(Action::SetEthSrc(SRC)),
        Just(Action::SetEthDst(DST)),
        Just(Action::SetEthDstUntag(DST)),
        (0u8..4).prop_map(Action::DecTtl),
        prop_oneof![Just(0u16), Just(60), Just(1500), Just(u16::MAX)].prop_map(Action::CheckMtu),
        (0u16..4).prop_map(Action::Output),
        Just(Action::Drop(DropReason::RuleDrop)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Whatever the list and the frame, a hop compiled for the frame's key answers as the list
    /// does and, on success, leaves the same frame to send (after the tag, when it removes one);
    /// on a failed check it leaves the frame as it was. (Frames that do not parse have no key, so
    /// no hop ever sees them.)
    #[test]
    fn a_hop_equals_its_list(
        actions in proptest::collection::vec(compilable_action(), 0..7),
        v6 in any::<bool>(), tagged in any::<bool>(), ttl in 0u8..6, ip_len in 0usize..1600,
        truncate in proptest::option::of(0usize..80), corrupt in proptest::option::of((0usize..60, any::<u8>())),
    ) {
        let snap = empty_snapshot();
        let mut st = CoreState::new(&CoreConfig::default());
        let actions = list(&actions);
        let mut f = frame(v6, tagged, ttl, ip_len);
        if let Some((at, byte)) = corrupt {
            if at < f.len() { f[at] = byte; }
        }
        if let Some(n) = truncate { f.truncate(n); }
        let Ok(key) = FlowKey::from_frame(3, &f) else { return Ok(()) };
        let original = f.clone();
        let mut by_list = f.clone();
        let mut by_cached = f;
        let want = apply_into(&snap, &actions, &mut by_list, &mut st, 1, &mut outer());
        let cached = CachedActions::compile(&actions, &key);
        let got = cached.apply(&snap, &mut by_cached, &mut st, 1, &mut outer());
        prop_assert_eq!(got, want);
        match (got, cached) {
            (Ok(applied), _) => {
                let start = applied.frame_start();
                prop_assert!(start == 0 || actions.untags());
                prop_assert_eq!(&by_cached[start..], &by_list[start..]);
            }
            (Err(_), CachedActions::List(_)) => prop_assert_eq!(by_cached, by_list),
            (
                Err(_),
                CachedActions::Hop(_)
                | CachedActions::UntagHop(_)
                | CachedActions::Routed(_)
                | CachedActions::Tunnelled(_),
            ) => prop_assert_eq!(by_cached, original),
        }
    }
}

proptest! {
    /// A hop handed a frame with another key (the flow cache never does) neither panics nor
    /// changes the frame's length: whatever it answers, it stays inside the frame.
    #[test]
    fn a_hop_on_a_frame_with_another_key_stays_in_bounds(
        actions in proptest::collection::vec(compilable_action(), 0..7),
        v6 in any::<bool>(), tagged in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let snap = empty_snapshot();
        let mut st = CoreState::new(&CoreConfig::default());
        let cached = CachedActions::compile(&list(&actions), &key_of(&frame(v6, tagged, 9, 60)));
        let mut f = bytes.clone();
        let _ = cached.apply(&snap, &mut f, &mut st, 1, &mut outer());
        prop_assert_eq!(f.len(), bytes.len());
    }
}

proptest! {
    /// The one-step checksum update equals the general incremental update (RFC 1624 eqn. 3) for
    /// every checksum, TTL and hop count.
    #[test]
    fn taking_hops_updates_the_checksum_like_the_general_update(hc in any::<u16>(), ttl in 1u8..=255, n in 1u8..=255) {
        prop_assume!(n < ttl);
        let mut ip = [0u8; 20];
        ip[8] = ttl;
        ip[9] = 17;
        ip[10..12].copy_from_slice(&hc.to_be_bytes());
        take_hops(&mut ip, false, n);
        prop_assert_eq!(ip[8], ttl - n);
        prop_assert_eq!(u16::from_be_bytes([ip[10], ip[11]]), checksum::update8(hc, ttl, ttl - n, true));
    }
}

/// Every checksum and hop count, against RFC 1624 eqn. 3 written out: the one-add update never
/// differs, not even where the sum meets 0xffff.
#[test]
fn checksum_less_hops_is_eqn_3_everywhere() {
    for n in [1u8, 2, 3, 64, 128, 255] {
        for hc in 0..=u16::MAX {
            let eqn3 = {
                let sum = u32::from(!hc) + u32::from(!u16::from_ne_bytes([n, 0]));
                !(((sum & 0xffff) + (sum >> 16)) as u16)
            };
            assert_eq!(checksum_less_hops(hc.to_ne_bytes(), n), eqn3.to_ne_bytes(), "checksum {hc:#06x}, {n} hops");
        }
    }
}

fn outer() -> Outer {
    Outer::NONE
}
