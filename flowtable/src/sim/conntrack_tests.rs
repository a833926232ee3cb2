//! Connection tracking through the simulation: the stateful-firewall pattern "accept return flows,
//! drop the rest" on the tenant router of the two-router topology in `tests.rs`.

use core::net::Ipv4Addr;

use super::tests::{eth, mac, state, topo, valid, Topo, OUTSIDE, VM};
use super::*;
use crate::chain::{Condition, Field, FlowDirection, RuleKind};
use crate::topology::{PortId, RouterId, Uuid};
use crate::wire::{IpProtocol, Ipv4Repr, PseudoHeader, TcpPacket, UdpPacket};

/// The tenant router R2's infilter: (1) accept return-flow; (2) accept what comes from its
/// downlink (the VM side); (3) drop. Connections idle out after 100 time units.
fn firewall() -> (Snapshot, CoreState) {
    let Topo { mut b, down } = topo();
    let c = b.add_chain(Uuid(400), "stateful");
    let ret = Condition { flow: Some(FlowDirection::Return), ..Condition::default() };
    b.add_new_rule(c, Uuid(401), ret, RuleKind::Accept).unwrap();
    let inside = Condition { in_ports: Some(Field::is(vec![down].into_boxed_slice())), ..Condition::default() };
    b.add_new_rule(c, Uuid(402), inside, RuleKind::Accept).unwrap();
    b.add_new_rule(c, Uuid(403), Condition::default(), RuleKind::Drop).unwrap();
    b.set_router_filters(RouterId(1), Some(c), None);
    let snap = b.build().unwrap();
    let mut st = state();
    st.conntrack = ConnTrack::new(64, 100);
    (snap, st)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    /// Echo request (from the side that starts) or reply.
    Echo,
}

/// An IPv4 frame `src:sport -> dst:dport`; from the VM to R2's downlink when `inside`, else from
/// outside to R1's uplink. For echo, `sport` is the identifier and `dport` 8 (request) or 0 (reply).
fn frame(inside: bool, proto: Proto, src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let l4: Vec<u8> = match proto {
        Proto::Tcp => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[4..8].copy_from_slice(&7u32.to_be_bytes());
            t[12] = 0x50;
            t[13] = 0x02; // SYN
            t[14..16].copy_from_slice(&1024u16.to_be_bytes());
            t
        }
        Proto::Udp => {
            let mut u = vec![0u8; 12];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&dport.to_be_bytes());
            u[4..6].copy_from_slice(&12u16.to_be_bytes());
            u
        }
        Proto::Echo => {
            let mut e = vec![0u8; 16];
            e[0] = dport as u8;
            e[4..6].copy_from_slice(&sport.to_be_bytes());
            e[6..8].copy_from_slice(&1u16.to_be_bytes());
            e
        }
    };
    let protocol = match proto {
        Proto::Tcp => IpProtocol::Tcp,
        Proto::Udp => IpProtocol::Udp,
        Proto::Echo => IpProtocol::Icmp,
    };
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    let (from, to) = if inside { (VM, mac(5)) } else { (OUTSIDE, mac(1)) };
    eth(&mut f, from, to, EtherType::Ipv4);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: l4.len(),
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    f[34..].copy_from_slice(&l4);
    let pseudo = PseudoHeader::V4 { src, dst };
    match proto {
        Proto::Tcp => TcpPacket::new_unchecked(&mut f[34..]).fill_checksum(&pseudo),
        Proto::Udp => UdpPacket::new_unchecked(&mut f[34..]).fill_checksum(&pseudo),
        Proto::Echo => Icmpv4Packet::new_unchecked(&mut f[34..]).fill_checksum(),
    }
    valid(&f);
    f
}

fn track(r: &SimResult) -> Option<Action> {
    r.actions.as_slice().iter().copied().find(|a| matches!(a, Action::Track { .. }))
}

/// Simulates `f` at `now` and checks that applying the result to a fresh copy (the cached path,
/// on a clone of the state as it was) gives the same bytes and output.
fn sim(snap: &Snapshot, st: &mut CoreState, port: u16, f: &[u8], now: u64) -> SimResult {
    let mut cached_state = st.clone();
    let mut simulated = f.to_vec();
    let mut out = [0u8; 1514];
    let r = simulate(snap, port, &mut simulated, st, now, &mut out);
    if r.cacheable && r.actions.drop_reason().is_none() {
        let mut applied = f.to_vec();
        let output = apply(snap, &r.actions, &mut applied, &mut cached_state, now);
        assert_eq!(output.map(|o| o.dpdk_port), Ok(r.actions.output().unwrap()));
        assert_eq!(applied, simulated, "apply(cached) == simulate");
    }
    r
}

/// The edge router's conntrack zone (its device tag).
fn r1_zone(snap: &Snapshot) -> u32 {
    conntrack_zone(snap, DeviceId::Router(RouterId(0))).unwrap()
}

#[test]
fn replies_to_inside_connections_pass_unsolicited_packets_are_dropped_uncached() {
    for proto in [Proto::Tcp, Proto::Udp, Proto::Echo] {
        let (snap, mut st) = firewall();
        // Echo: identifier 0x77, request (type 8) out, reply (type 0) back.
        let ((out_s, out_d), (rep_s, rep_d)) =
            if proto == Proto::Echo { ((0x77, 8), (0x77, 0)) } else { ((40000, 80), (80, 40000)) };
        let outbound = frame(true, proto, "10.0.0.5", out_s, "100.64.0.9", out_d);
        let reply = frame(false, proto, "100.64.0.9", rep_s, "10.0.0.5", rep_d);

        // Unsolicited: dropped, and not cached, or the connection below would stay blocked.
        let r = sim(&snap, &mut st, 0, &reply, 10);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop), "{proto:?}");
        assert!(!r.cacheable, "{proto:?}: a drop for lack of a connection is not cached");
        assert_eq!(st.conntrack.len(10), 0);

        // From inside: forwarded over R1's ECMP uplinks, committed for R1 (where replies enter).
        let r = sim(&snap, &mut st, 2, &outbound, 20);
        assert!(matches!(r.actions.output(), Some(0 | 1)), "{proto:?}: {:?}", r.actions);
        assert!(r.cacheable);
        assert_eq!(track(&r), Some(Action::Track { zone: r1_zone(&snap), reverse: true }), "{proto:?}");
        assert_eq!(st.conntrack.len(20), 1);

        // The same reply now passes (a return flow), cacheable, refreshing the connection.
        let r = sim(&snap, &mut st, 0, &reply, 30);
        assert_eq!(r.actions.output(), Some(2), "{proto:?}: {:?}", r.actions);
        assert!(r.cacheable);
        assert_eq!(track(&r), Some(Action::Track { zone: r1_zone(&snap), reverse: false }), "{proto:?}");
        assert_eq!(st.conntrack.len(30), 1, "both directions share one entry");

        // Another port of the outside host is not part of the connection.
        let other = frame(false, proto, "100.64.0.9", 81, "10.0.0.5", if proto == Proto::Echo { 0 } else { 40001 });
        let r = sim(&snap, &mut st, 0, &other, 30);
        // (For echo: identifier 81, not the connection's 0x77.)
        assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop), "{proto:?}");
        assert!(!r.cacheable);
    }
}

#[test]
fn connections_expire_when_idle_and_cached_flows_keep_them_alive() {
    let (snap, mut st) = firewall();
    let outbound = frame(true, Proto::Udp, "10.0.0.5", 5000, "100.64.0.9", 53);
    let reply = frame(false, Proto::Udp, "100.64.0.9", 53, "10.0.0.5", 5000);
    let fwd = sim(&snap, &mut st, 2, &outbound, 0);
    assert!(fwd.actions.output().is_some());
    assert_eq!(sim(&snap, &mut st, 0, &reply, 99).actions.output(), Some(2));
    // Idle from 99 to 199: gone.
    assert_eq!(sim(&snap, &mut st, 0, &reply, 199).actions.drop_reason(), Some(DropReason::RuleDrop));

    // The cached outbound flow re-creates the connection when hit.
    let mut f = outbound.clone();
    assert!(apply(&snap, &fwd.actions, &mut f, &mut st, 300).is_ok());
    let key = ConnKey::from_frame(&reply, r1_zone(&snap)).unwrap();
    assert!(st.conntrack.is_return(&key, 300));
    let rep = sim(&snap, &mut st, 0, &reply, 350);
    assert_eq!(rep.actions.output(), Some(2));
    // And the cached return flow keeps it alive on its own.
    for t in [440, 530, 620] {
        let mut g = reply.clone();
        assert_eq!(apply(&snap, &rep.actions, &mut g, &mut st, t).map(|o| o.dpdk_port), Ok(2));
    }
    assert!(st.conntrack.is_return(&key, 700));
    assert!(!st.conntrack.is_return(&key, 720));
}

#[test]
fn flows_without_flow_conditions_are_not_tracked() {
    let Topo { b, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let outbound = frame(true, Proto::Tcp, "10.0.0.5", 40000, "100.64.0.9", 80);
    let r = sim(&snap, &mut st, 2, &outbound, 0);
    assert!(r.actions.output().is_some());
    assert_eq!(track(&r), None);
    assert_eq!(st.conntrack.len(0), 0);
    // Drops by chains without a flow condition stay cacheable (tests.rs: chain_rules_drop_and_reject).
    let reply = frame(false, Proto::Tcp, "100.64.0.9", 80, "10.0.0.5", 40000);
    assert!(sim(&snap, &mut st, 0, &reply, 0).cacheable);
}

#[test]
fn a_connection_at_one_router_is_not_a_return_at_another() {
    let (snap, mut st) = firewall();
    // A key recorded for another device (zone) does not open the tenant router.
    let reply = frame(false, Proto::Tcp, "100.64.0.9", 80, "10.0.0.5", 40000);
    let key = ConnKey::from_frame(&reply, r1_zone(&snap)).unwrap();
    st.conntrack.refresh(&ConnKey { zone: conntrack_zone(&snap, DeviceId::Router(RouterId(1))).unwrap(), ..key }, 0);
    assert_eq!(sim(&snap, &mut st, 0, &reply, 1).actions.drop_reason(), Some(DropReason::RuleDrop));
    st.conntrack.refresh(&key, 0);
    assert_eq!(sim(&snap, &mut st, 0, &reply, 1).actions.output(), Some(2));
    assert_eq!(conntrack_port_zone(&snap, PortId(0)), Some(r1_zone(&snap)));
}

/// IPv6 UDP `src:sport -> dst:dport`, from the VM or from outside as in [`frame`].
fn udp6(inside: bool, src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let (src, dst): (core::net::Ipv6Addr, core::net::Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = vec![0u8; 14 + 40 + 12];
    let (from, to) = if inside { (VM, mac(5)) } else { (OUTSIDE, mac(1)) };
    eth(&mut f, from, to, EtherType::Ipv6);
    crate::wire::Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: 12,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    f[54..56].copy_from_slice(&sport.to_be_bytes());
    f[56..58].copy_from_slice(&dport.to_be_bytes());
    f[58..60].copy_from_slice(&12u16.to_be_bytes());
    UdpPacket::new_unchecked(&mut f[54..]).fill_checksum(&PseudoHeader::V6 { src, dst });
    valid(&f);
    f
}

#[test]
fn ipv6_connections_are_tracked_too() {
    let (snap, mut st) = firewall();
    st.neighbours.learn(PortId(0), "2001:db8:1::7".parse().unwrap(), OUTSIDE, 0);
    let outbound = udp6(true, "2001:db8:2::5", 7000, "2001:db8:1::7", 53);
    let reply = udp6(false, "2001:db8:1::7", 53, "2001:db8:2::5", 7000);
    assert_eq!(sim(&snap, &mut st, 0, &reply, 1).actions.drop_reason(), Some(DropReason::RuleDrop));
    let r = sim(&snap, &mut st, 2, &outbound, 2);
    assert_eq!(r.actions.output(), Some(0), "{:?}", r.actions);
    let r = sim(&snap, &mut st, 0, &reply, 3);
    assert_eq!(r.actions.output(), Some(2), "{:?}", r.actions);
    assert!(r.cacheable);
    // The key keeps the IPv6 address as it is (IPv4 ones are mapped).
    let key = ConnKey::from_frame(&reply, r1_zone(&snap)).unwrap();
    assert_eq!(key.src_addr(), "2001:db8:1::7".parse::<IpAddr>().unwrap());
}

/// An ICMP error of `msg_type`/`code` from router 198.51.100.1 outside to the VM, entering at R1's
/// uplink, quoting `offending` (a frame the VM sent: its IP header and first eight payload bytes).
fn icmp_error(msg_type: u8, code: u8, offending: &[u8]) -> Vec<u8> {
    let quote = &offending[14..14 + 20 + 8];
    let mut icmp = vec![msg_type, code, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend_from_slice(quote);
    let (src, dst): (Ipv4Addr, Ipv4Addr) = ("198.51.100.1".parse().unwrap(), "10.0.0.5".parse().unwrap());
    let mut f = vec![0u8; 14 + 20 + icmp.len()];
    eth(&mut f, OUTSIDE, mac(1), EtherType::Ipv4);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Icmp,
        payload_len: icmp.len(),
        ttl: 64,
        tos: 0,
        ident: 9,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    f[34..].copy_from_slice(&icmp);
    Icmpv4Packet::new_unchecked(&mut f[34..]).fill_checksum();
    valid(&f);
    f
}

/// Path MTU discovery and traceroute through a stateful firewall: an ICMP error about an inside
/// connection (from a router on the way, not the peer) is related to it and passes, like Linux's
/// RELATED; it neither records nor refreshes a connection and is never cached; errors about no
/// known connection are dropped.
#[test]
fn icmp_errors_about_inside_connections_pass_as_related() {
    for proto in [Proto::Tcp, Proto::Udp, Proto::Echo] {
        let (snap, mut st) = firewall();
        let (sport, dport) = if proto == Proto::Echo { (0x77, 8) } else { (40000, 443) };
        let outbound = frame(true, proto, "10.0.0.5", sport, "100.64.0.9", dport);
        let frag_needed = icmp_error(3, 4, &outbound);
        let time_exceeded = icmp_error(11, 0, &outbound);

        // Before the connection: nothing to relate to.
        let r = sim(&snap, &mut st, 0, &frag_needed, 10);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop), "{proto:?}");
        assert!(!r.cacheable, "{proto:?}");

        assert!(sim(&snap, &mut st, 2, &outbound, 20).actions.output().is_some());
        for (what, error) in [("frag needed", &frag_needed), ("time exceeded", &time_exceeded)] {
            let r = sim(&snap, &mut st, 0, error, 30);
            assert_eq!(r.actions.output(), Some(2), "{proto:?} {what}: {:?}", r.actions);
            assert_eq!(track(&r), None, "{proto:?} {what}: an error tracks nothing");
            assert!(!r.cacheable, "{proto:?} {what}: its verdict depends on the table");
        }
        assert_eq!(st.conntrack.len(30), 1, "{proto:?}: the errors recorded nothing");
        // Only a refresh by the connection's own packets keeps it: errors do not (idle after 120).
        assert_eq!(sim(&snap, &mut st, 0, &frag_needed, 110).actions.output(), Some(2));
        assert_eq!(sim(&snap, &mut st, 0, &frag_needed, 121).actions.drop_reason(), Some(DropReason::RuleDrop));

        // About another connection of the same hosts: dropped.
        let (st2, dt2) = if proto == Proto::Echo { (0x78, 8) } else { (40001, 443) };
        let (snap, mut st) = firewall();
        assert!(sim(&snap, &mut st, 2, &outbound, 20).actions.output().is_some());
        let other = frame(true, proto, "10.0.0.5", st2, "100.64.0.9", dt2);
        let r = sim(&snap, &mut st, 0, &icmp_error(3, 1, &other), 30);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop), "{proto:?}");
    }
}

#[test]
fn the_quoted_packet_names_the_connection() {
    let zone = 7;
    let outbound = frame(true, Proto::Udp, "10.0.0.5", 40000, "100.64.0.9", 53);
    let error = icmp_error(3, 3, &outbound);
    let h = Headers::parse(&error).unwrap();
    let related = ConnKey::related_to_error(&h, &error, zone).unwrap();
    let reply = frame(false, Proto::Udp, "100.64.0.9", 53, "10.0.0.5", 40000);
    assert_eq!(related, ConnKey::from_frame(&reply, zone).unwrap());
    // Not an error: no related key. A quote cut inside the IP header: none either.
    let echo = frame(false, Proto::Echo, "100.64.0.9", 5, "10.0.0.5", 0);
    assert_eq!(ConnKey::related_to_error(&Headers::parse(&echo).unwrap(), &echo, zone), None);
    let mut cut = error.clone();
    cut.truncate(14 + 20 + 8 + 12);
    let total = (cut.len() - 14) as u16;
    cut[16..18].copy_from_slice(&total.to_be_bytes());
    crate::wire::refresh_ipv4_checksum(&mut cut, 14);
    let h = Headers::parse(&cut).unwrap();
    assert_eq!(ConnKey::related_to_error(&h, &cut, zone), None);
    // A quoted non-initial fragment has no ports: it relates to no UDP connection.
    let mut fragment = outbound.clone();
    fragment[20..22].copy_from_slice(&0x0010u16.to_be_bytes());
    let error = icmp_error(11, 1, &fragment);
    let related = ConnKey::related_to_error(&Headers::parse(&error).unwrap(), &error, zone).unwrap();
    assert_eq!((related.src_port, related.dst_port, related.proto), (0, 0, 17));
}

proptest::proptest! {
    /// Any bytes after an ICMP error header: a key or nothing, never a panic.
    #[test]
    fn related_keys_of_arbitrary_quotes(quote in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                                         v6 in proptest::prelude::any::<bool>(), msg_type in 0u8..20) {
        let mut offending = vec![0u8; 14 + 28];
        let n = quote.len().min(28);
        offending[14..14 + n].copy_from_slice(&quote[..n]);
        if v6 {
            offending[14] = 0x60 | (offending[14] & 0x0f);
        }
        let error = icmp_error(msg_type, 0, &offending);
        if let Ok(h) = Headers::parse(&error) {
            let _ = ConnKey::related_to_error(&h, &error, 1);
        }
    }
}
