//! Simulation on a two-router topology with real frames.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::*;
use crate::chain::{Condition, Field, RuleKind};
use crate::flow::{FlowCache, FlowCacheConfig, FlowHasher, TagSet};
use crate::topology::{PortId, Route, RouteType, RouterId, SnapshotBuilder, Uuid};
use crate::wire::{
    ArpRepr, EtherType, EthernetRepr, Icmpv4Repr, Icmpv4TimeExceeded, Icmpv6Repr, IpProtocol, Ipv4Repr, Ipv6Repr,
    PseudoHeader, UdpPacket, UdpRepr, VlanTag,
};

pub(super) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub(super) fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

pub(super) const OUTSIDE: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 1]);
const GW0: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 1]);
const GW1: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 2]);
pub(super) const VM: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 1]);

/// Uplink router R1: `up0` 192.0.2.1/24 + 2001:db8:1::1/64 on DPDK 0, `up1` 198.51.100.1/24 on
/// DPDK 1, `link` 169.254.0.1/30 + fd00::1/64 to tenant router R2's `tl` 169.254.0.2/30 + fd00::2/64;
/// R2's `down` 10.0.0.1/24 + 2001:db8:2::1/64 on DPDK 2.
/// R1 routes: 10.0.0.0/16 and 2001:db8:2::/64 to R2, 100.64.0.0/10 ECMP over both uplinks,
/// 203.0.113.0/24 blackhole, 198.18.0.0/15 reject. R2 routes: defaults to R1.
pub(super) struct Topo {
    pub(super) b: SnapshotBuilder,
    pub(super) down: PortId,
}

pub(super) fn topo() -> Topo {
    let mut b = SnapshotBuilder::new(1);
    let r1 = b.add_router(Uuid(1));
    let r2 = b.add_router(Uuid(2));
    let up0 = b.add_router_port(r1, Uuid(10), mac(1), &[net("192.0.2.1/24"), net("2001:db8:1::1/64")]);
    let up1 = b.add_router_port(r1, Uuid(11), mac(2), &[net("198.51.100.1/24")]);
    let link = b.add_router_port(r1, Uuid(12), mac(3), &[net("169.254.0.1/30"), net("fd00::1/64")]);
    let tl = b.add_router_port(r2, Uuid(20), mac(4), &[net("169.254.0.2/30"), net("fd00::2/64")]);
    let down = b.add_router_port(r2, Uuid(21), mac(5), &[net("10.0.0.1/24"), net("2001:db8:2::1/64")]);
    b.bind_local(up0, 0);
    b.bind_local(up1, 1);
    b.bind_local(down, 2);
    b.link(link, tl);
    let any4 = net("0.0.0.0/0");
    let any6 = net("::/0");
    b.add_route(r1, Route::normal(Uuid(100), any4, net("10.0.0.0/16"), link, Some(ip("169.254.0.2")), 1));
    b.add_route(r1, Route::normal(Uuid(101), any6, net("2001:db8:2::/64"), link, Some(ip("fd00::2")), 1));
    b.add_route(r1, Route::normal(Uuid(102), any4, net("100.64.0.0/10"), up0, Some(ip("192.0.2.254")), 1));
    b.add_route(r1, Route::normal(Uuid(103), any4, net("100.64.0.0/10"), up1, Some(ip("198.51.100.254")), 1));
    b.add_route(r1, Route::without_port(Uuid(104), net("203.0.113.0/24"), RouteType::Blackhole, 1));
    b.add_route(r1, Route::without_port(Uuid(105), net("198.18.0.0/15"), RouteType::Reject, 1));
    b.add_route(r2, Route::normal(Uuid(200), any4, any4, tl, Some(ip("169.254.0.1")), 1));
    b.add_route(r2, Route::normal(Uuid(201), any6, any6, tl, Some(ip("fd00::1")), 1));
    Topo { b, down }
}

/// Core state that knows the VM, the outside host and both uplink gateways.
pub(super) fn state() -> CoreState {
    let mut s = CoreState::new(&CoreConfig {
        neighbour_capacity: 64,
        neighbour_lifetime: 1000,
        mac_aging: 1000,
        ..CoreConfig::default()
    });
    s.neighbours.learn(PortId(4), ip("10.0.0.5"), VM, 0);
    s.neighbours.learn(PortId(4), ip("2001:db8:2::5"), VM, 0);
    s.neighbours.learn(PortId(0), ip("192.0.2.254"), GW0, 0);
    s.neighbours.learn(PortId(1), ip("198.51.100.254"), GW1, 0);
    s
}

pub(super) fn eth(buf: &mut [u8], src: EthernetAddress, dst: EthernetAddress, ty: EtherType) {
    EthernetRepr { src_addr: src, dst_addr: dst, vlan: None, ethertype: ty }
        .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
}

/// An IPv4 UDP frame to R1's uplink MAC.
fn udp4(src: &str, dst: &str, sport: u16, ttl: u8, df: bool, payload: usize) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = vec![0x5au8; 14 + 20 + 8 + payload];
    eth(&mut f, OUTSIDE, mac(1), EtherType::Ipv4);
    let ipr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload,
        ttl,
        tos: 0,
        ident: 7,
        dont_frag: df,
        more_frags: false,
        frag_offset: 0,
    };
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    UdpRepr { src_port: sport, dst_port: 53 }.emit(&mut u, payload);
    u.fill_checksum(&PseudoHeader::V4 { src, dst });
    f
}

/// An IPv6 UDP frame to R1's uplink MAC.
fn udp6(src: &str, dst: &str, hop_limit: u8, payload: usize) -> Vec<u8> {
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = vec![0x5au8; 14 + 40 + 8 + payload];
    eth(&mut f, OUTSIDE, mac(1), EtherType::Ipv6);
    let ipr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: 8 + payload,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    ipr.emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    let mut u = UdpPacket::new_unchecked(&mut f[54..]);
    UdpRepr { src_port: 1000, dst_port: 53 }.emit(&mut u, payload);
    u.fill_checksum(&PseudoHeader::V6 { src, dst });
    f
}

fn echo4(src: &str, dst: &str) -> Vec<u8> {
    echo4_between(OUTSIDE, mac(1), src, dst)
}

/// An ICMP echo request (ident 0x1234, sequence 1, 8 bytes of data) from `src_mac` / `src` to
/// `dst_mac` / `dst`.
pub(super) fn echo4_between(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: &str, dst: &str) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let icmp = Icmpv4Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" };
    let mut f = vec![0x5au8; 14 + 20 + icmp.buffer_len()];
    eth(&mut f, src_mac, dst_mac, EtherType::Ipv4);
    let ipr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    };
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut f[34..]));
    f
}

fn echo6(src: &str, dst: &str) -> Vec<u8> {
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let icmp = Icmpv6Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" };
    let mut f = vec![0x5au8; 14 + 40 + icmp.buffer_len()];
    eth(&mut f, OUTSIDE, mac(1), EtherType::Ipv6);
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    icmp.emit(&PseudoHeader::V6 { src, dst }, &mut Icmpv6Packet::new_unchecked(&mut f[54..]));
    f
}

fn arp_request_frame(spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = vec![0x5au8; 14 + 28];
    eth(&mut f, OUTSIDE, EthernetAddress::BROADCAST, EtherType::Arp);
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: OUTSIDE,
        source_protocol_addr: spa.parse().unwrap(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: tpa.parse().unwrap(),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

fn run(snap: &Snapshot, st: &mut CoreState, port: u16, frame: &mut [u8], out: &mut [u8]) -> SimResult {
    simulate(snap, port, frame, st, 10, out)
}

/// Parses `frame` and checks every checksum.
pub(super) fn valid(frame: &[u8]) -> Headers {
    let h = Headers::parse(frame).unwrap();
    h.verify_checksums(frame).unwrap();
    h
}

/// Checks a generated ICMPv4 error: addresses, type/code, the quote, checksums; returns the
/// ICMP header's second word (next-hop MTU).
fn check_icmp4_error(out: &[u8], orig: &[u8], src: &str, ty: Icmpv4Message, code: u8) -> u16 {
    let h = valid(out);
    assert_eq!(h.eth_dst, OUTSIDE);
    assert_eq!(h.eth_src, mac(1));
    let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
    assert_eq!(IpAddr::V4(f.src), ip(src));
    let L3::Ipv4(of) = Headers::parse(orig).unwrap().l3 else { panic!() };
    assert_eq!(f.dst, of.src);
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type, code: c, .. } if msg_type == ty && c == code));
    let p = Icmpv4Packet::new_checked(&out[h.l4_offset..h.end]).unwrap();
    let quoted = p.data();
    let n = quoted.len().min(orig.len() - 14);
    assert!(n >= 28);
    assert_eq!(&quoted[..n], &orig[14..14 + n]);
    p.next_hop_mtu()
}

#[test]
fn actions_fit_a_cache_entry() {
    assert!(core::mem::size_of::<Actions>() <= 64, "{}", core::mem::size_of::<Actions>());
    assert_eq!(core::mem::size_of::<Action>(), 8);
}

#[test]
fn drop_reasons_are_one_list() {
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(!r.name().is_empty() && !r.description().is_empty());
    }
    assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
}

#[test]
fn forward_through_two_routers() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    let orig = f.clone();
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert!(r.cacheable);
    assert_eq!(r.actions.output(), Some(2), "{:?}", r.actions);
    assert!(r.generated.is_none());
    let h = valid(&f);
    assert_eq!((h.eth_src, h.eth_dst), (mac(5), VM));
    let L3::Ipv4(fields) = h.l3 else { panic!() };
    assert_eq!(fields.ttl, 62);
    assert_eq!(&f[34..], &orig[34..]);
    // Both routers, the ports crossed.
    for d in [DeviceId::Router(RouterId(0)), DeviceId::Router(RouterId(1)), DeviceId::Port(PortId(0))] {
        assert!(r.deps.contains(d), "{d:?}");
    }
    for p in [2, 3, 4] {
        assert!(r.deps.contains(DeviceId::Port(PortId(p))), "{p}");
    }

    // The cached path gives the same bytes.
    let mut g = orig.clone();
    assert_eq!(apply(&snap, &r.actions, &mut g, &mut st, 10), Ok(Output::local(2)));
    assert_eq!(g, f);

    // And back: VM -> outside through both routers to the ECMP uplinks.
    let mut v6 = udp6("2001:db8:1::7", "2001:db8:2::5", 64, 10);
    let r = run(&snap, &mut st, 0, &mut v6, &mut out);
    assert_eq!(r.actions.output(), Some(2));
    let h = valid(&v6);
    assert!(matches!(h.l3, L3::Ipv6(f) if f.hop_limit == 62));
}

#[test]
fn martians_and_directed_broadcasts_are_dropped_silently() {
    // Defaults on R1 too, so that nothing below is dropped for want of a route.
    let mut t = topo();
    t.b.add_route(
        RouterId(0),
        Route::normal(Uuid(106), net("0.0.0.0/0"), net("0.0.0.0/0"), PortId(0), Some(ip("192.0.2.254")), 1),
    );
    t.b.add_route(
        RouterId(0),
        Route::normal(Uuid(107), net("::/0"), net("::/0"), PortId(0), Some(ip("2001:db8:1::fe")), 1),
    );
    let snap = t.b.build().unwrap();
    let mut st = state();
    st.neighbours.learn(PortId(0), ip("2001:db8:1::fe"), GW0, 0);
    let mut out = [0u8; 1514];
    // From the VM's side (DPDK 2, to R2's MAC), or from outside (DPDK 0, to R1's).
    let from_vm = |mut f: Vec<u8>| {
        f[..6].copy_from_slice(&mac(5).0);
        (2, f)
    };
    let cases = [
        ("a VM to unicast outside", from_vm(udp4("10.0.0.5", "8.8.8.8", 1000, 64, false, 8)), None),
        ("mDNS from a VM", from_vm(udp4("10.0.0.5", "224.0.0.251", 5353, 255, false, 8)), Some(DropReason::Martian)),
        (
            "limited broadcast",
            from_vm(udp4("10.0.0.5", "255.255.255.255", 68, 64, false, 8)),
            Some(DropReason::Martian),
        ),
        ("from 0.0.0.0", (0, udp4("0.0.0.0", "10.0.0.5", 68, 64, false, 8)), Some(DropReason::Martian)),
        ("from loopback", (0, udp4("127.0.0.1", "10.0.0.5", 1000, 64, false, 8)), Some(DropReason::Martian)),
        ("from class E", (0, udp4("240.0.0.1", "10.0.0.5", 1000, 64, false, 8)), Some(DropReason::Martian)),
        (
            "to the VM subnet's broadcast",
            (0, udp4("192.0.2.7", "10.0.0.255", 1000, 64, false, 8)),
            Some(DropReason::DirectedBroadcast),
        ),
        ("IPv6 from link-local", (0, udp6("fe80::7", "2001:db8:2::5", 64, 8)), Some(DropReason::Martian)),
        ("IPv6 from loopback", (0, udp6("::1", "2001:db8:2::5", 64, 8)), Some(DropReason::Martian)),
        ("IPv6 to all nodes", from_vm(udp6("2001:db8:2::5", "ff02::1", 64, 8)), Some(DropReason::Martian)),
        ("IPv6 to a link-local address", from_vm(udp6("2001:db8:2::5", "fe80::1", 64, 8)), Some(DropReason::Martian)),
        ("IPv6 from a VM to outside", from_vm(udp6("2001:db8:2::5", "2001:db8:9::9", 64, 8)), None),
    ];
    for (what, (port, mut f), expected) in cases {
        let r = run(&snap, &mut st, port, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), expected, "{what}: {:?}", r.actions);
        assert!(r.generated.is_none(), "{what}: no ICMP error about it");
        if expected.is_none() {
            assert_eq!(r.actions.output(), Some(0), "{what} leaves by the uplink");
        }
    }
}

#[test]
fn directed_broadcast_is_the_subnets_broadcast_address() {
    for net4 in ["10.0.0.1/24", "192.0.2.77/26", "172.16.5.9/12", "198.51.100.1/30", "203.0.113.4/31", "8.8.8.8/32"] {
        let n: ipnet::Ipv4Net = net4.parse().unwrap();
        let port = RouterPort { router: RouterId(0), mac: mac(1), addresses: Box::new([IpNet::V4(n)]) };
        for dst in [n.broadcast(), n.network(), n.addr(), Ipv4Addr::from(u32::from(n.broadcast()).wrapping_add(1))] {
            let expected = n.prefix_len() < 31 && dst == n.broadcast();
            assert_eq!(directed_broadcast(&port, IpAddr::V4(dst)), expected, "{net4} {dst}");
        }
    }
}

#[test]
fn ecmp_is_deterministic_per_flow() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut seen = [0u32; 2];
    for sport in 0..64u16 {
        let mut first = None;
        for _ in 0..3 {
            let mut f = udp4("192.0.2.7", "100.64.1.1", 1000 + sport, 64, true, 0);
            let r = run(&snap, &mut st, 0, &mut f, &mut out);
            assert!(r.cacheable);
            let o = r.actions.output().unwrap();
            let h = valid(&f);
            assert_eq!(h.eth_dst, if o == 0 { GW0 } else { GW1 });
            assert_eq!(*first.get_or_insert(o), o);
        }
        seen[usize::from(first.unwrap())] += 1;
    }
    assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
}

#[test]
fn blackhole_drops() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "203.0.113.9", 1, 64, true, 0);
    let orig = f.clone();
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::Blackhole));
    assert!(r.cacheable && r.generated.is_none());
    assert_eq!(f, orig);
    assert_eq!(apply(&snap, &r.actions, &mut f, &mut state(), 10), Err(DropReason::Blackhole));
}

#[test]
fn reject_route_answers_admin_prohibited() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "198.18.0.1", 1, 64, true, 100);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RejectRoute));
    assert!(r.cacheable && r.actions.answers_error(), "a drop that earned an answer");
    let g = r.generated.unwrap();
    assert_eq!(g.legs, Legs::one(Leg::Local(0)));
    check_icmp4_error(&out[..g.len], &f, "192.0.2.1", Icmpv4Message::DstUnreachable, 13);
}

#[test]
fn no_route_answers_net_unreachable() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "8.8.8.8", 1, 64, true, 600);
    let mut st = state();
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NoRoute));
    // The flow key settles it: cacheable as a drop that earned an answer (the cached path drops,
    // and simulates again for the answer while the error rate allows).
    assert!(r.cacheable && r.actions.answers_error(), "{:?}", r.actions);
    assert_eq!(apply(&snap, &r.actions, &mut f.clone(), &mut st, 10), Err(DropReason::NoRoute));
    let g = r.generated.unwrap();
    // RFC 1812: at most 576 bytes of IP.
    assert_eq!(g.len, 14 + 576);
    check_icmp4_error(&out[..g.len], &f, "192.0.2.1", Icmpv4Message::DstUnreachable, 0);

    // IPv6: no route to destination, code 0.
    let mut f = udp6("2001:db8:1::7", "3fff::1", 64, 0);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NoRoute));
    let h = valid(&out[..r.generated.unwrap().len]);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.src == "2001:db8:1::1".parse::<Ipv6Addr>().unwrap()));
    assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::DstUnreachable, code: 0, .. }));
}

/// A next hop that did not answer (the pipeline marks it when a held packet times out): for a
/// resolution interval its packets are answered host unreachable / address unreachable from the
/// router port they entered (RFC 1812 5.2.7.1, RFC 4861 7.2.2), uncached; then it is asked again.
#[test]
fn a_failed_next_hop_is_answered_unreachable_for_an_interval() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut st = state();
    let interval = CoreConfig::default().resolution_interval;
    st.neighbours.mark_failed(PortId(4), ip("10.0.0.77"), 10);
    assert!(st.neighbours.has_failed(PortId(4), ip("10.0.0.77"), 10 + interval - 1));
    assert!(!st.neighbours.has_failed(PortId(4), ip("10.0.0.78"), 10), "only that address");
    let mut f = udp4("192.0.2.7", "10.0.0.77", 1, 64, true, 0);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourFailed));
    assert!(!r.cacheable && r.hold.is_none(), "answered, not held, not cached");
    let g = r.generated.unwrap();
    assert!(g.icmp_error, "under the ICMP error rate limit");
    // From the port the packet entered the router that asked: the tenant router's link port.
    check_icmp4_error(&out[..g.len], &f, "169.254.0.2", Icmpv4Message::DstUnreachable, 1);
    // Another address on the same port is asked for as usual.
    let mut other = udp4("192.0.2.7", "10.0.0.78", 1, 64, true, 0);
    assert_eq!(
        run(&snap, &mut st, 0, &mut other, &mut out).actions.drop_reason(),
        Some(DropReason::NeighbourUnresolved)
    );
    // An interval later the failed one is asked for again.
    let r = simulate(&snap, 0, &mut f, &mut st, 10 + interval, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
    assert!(r.generated.is_some_and(|g| !g.icmp_error), "an ARP request");

    // IPv6: address unreachable, code 3.
    let mut st = state();
    st.neighbours.mark_failed(PortId(4), ip("2001:db8:2::1:abcd"), 10);
    let mut f = udp6("2001:db8:1::7", "2001:db8:2::1:abcd", 64, 0);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourFailed));
    let h = valid(&out[..r.generated.unwrap().len]);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.src == "fd00::2".parse::<Ipv6Addr>().unwrap()));
    assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::DstUnreachable, code: 3, .. }));
}

#[test]
fn no_error_about_an_error() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let inner = udp4("8.8.8.8", "192.0.2.7", 1, 64, true, 0);
    let icmp = Icmpv4Repr::TimeExceeded { reason: Icmpv4TimeExceeded::TtlExpired, data: &inner[14..] };
    let mut f = echo4("192.0.2.7", "8.8.4.4");
    f.truncate(34);
    f.resize(34 + icmp.buffer_len(), 0);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut f[34..]));
    let len = f.len() - 14;
    let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
    p.set_total_len(len as u16);
    p.fill_checksum();
    valid(&f);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::IcmpErrorSuppressed));
    assert!(r.generated.is_none());
    // No route and an ICMP error: both in the flow key, so the unanswered drop is cacheable.
    assert!(r.cacheable && !r.actions.answers_error(), "{:?}", r.actions);

    // TTL 1 is not in the key: the same error expiring here is an uncached drop.
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1, 1, true, 0);
    let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
    p.set_dont_frag(false);
    p.set_frag_offset(8);
    p.fill_checksum();
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::IcmpErrorSuppressed));
    assert!(!r.cacheable && r.generated.is_none());
}

#[test]
fn ttl_one_answers_time_exceeded() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1, 1, true, 0);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TtlExpired));
    assert!(!r.cacheable, "the TTL is not in the flow key: the flow's next packet may well pass");
    check_icmp4_error(&out[..r.generated.unwrap().len], &f, "192.0.2.1", Icmpv4Message::TimeExceeded, 0);

    // TTL 2 expires at the tenant router: the error comes from its interior port (traceroute's hop 2).
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1, 2, true, 0);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    check_icmp4_error(&out[..r.generated.unwrap().len], &f, "169.254.0.2", Icmpv4Message::TimeExceeded, 0);

    // IPv6 hop limit 1.
    let mut f = udp6("2001:db8:1::7", "2001:db8:2::5", 1, 0);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    let h = valid(&out[..r.generated.unwrap().len]);
    assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::TimeExceeded, code: 0, .. }));
}

/// Oversize packets are never fragmented: dropped and answered frag needed (with the MTU) /
/// packet too big, with DF or without (design brief), under the ICMP error rate limit.
#[test]
fn oversized_packets_answer_frag_needed() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    st.set_mtu(2, 1400);
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1, 64, true, 1401 - 28);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TooBig));
    // From the router whose egress is too small (the tenant router, entered through its interior port).
    let mtu = check_icmp4_error(&out[..r.generated.unwrap().len], &f, "169.254.0.2", Icmpv4Message::DstUnreachable, 4);
    assert_eq!(mtu, 1400);

    // Without DF: dropped all the same, never fragmented, and answered too, so the sender learns
    // why nothing arrives; the length is not in the flow key, so not cached.
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1, 64, false, 1401 - 28);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TooBig));
    assert!(!r.cacheable);
    let g = r.generated.expect("frag needed without DF too");
    assert!(g.icmp_error, "under the ICMP error rate limit");
    let mtu = check_icmp4_error(&out[..g.len], &f, "169.254.0.2", Icmpv4Message::DstUnreachable, 4);
    assert_eq!(mtu, 1400);

    // A cached flow learned on a small packet refuses a big one before touching it.
    let mut small = udp4("192.0.2.7", "10.0.0.5", 1, 64, true, 10);
    let r = run(&snap, &mut st, 0, &mut small, &mut out);
    assert!(r.cacheable);
    let mut big = udp4("192.0.2.7", "10.0.0.5", 1, 64, true, 1401 - 28);
    let before = big.clone();
    assert_eq!(apply(&snap, &r.actions, &mut big, &mut st, 10), Err(DropReason::TooBig));
    assert_eq!(big, before);
    let mut ttl1 = udp4("192.0.2.7", "10.0.0.5", 1, 2, true, 10);
    assert_eq!(apply(&snap, &r.actions, &mut ttl1, &mut st, 10), Err(DropReason::TtlExpired));

    // IPv6: packet too big with the MTU.
    let mut f = udp6("2001:db8:1::7", "2001:db8:2::5", 64, 1401 - 48);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    let g = r.generated.unwrap();
    let h = valid(&out[..g.len]);
    assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::PktTooBig, .. }));
    assert_eq!(Icmpv6Packet::new_checked(&out[h.l4_offset..h.end]).unwrap().mtu(), 1400);
    assert!(g.len <= 14 + 1280);
}

/// `frame` with an 802.1Q tag carrying `tci` after its MAC addresses.
pub(super) fn with_tag(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// Router ports are untagged: a frame of a VLAN is neither routed out of its VLAN nor answered
/// (a cached drop: the tag is in the key); a priority-tagged frame (VID 0) carries no VLAN and is
/// routed like an untagged one, and leaves like it, untagged (the router writes a new layer-2
/// header).
#[test]
fn frames_of_a_vlan_are_not_routed_and_priority_tagged_ones_are() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let vid100_pcp5 = 5 << 13 | 100;
    let mut f = with_tag(&udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20), vid100_pcp5);
    let orig = f.clone();
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::VlanAtRouterPort), "{r:?}");
    assert!(r.cacheable && r.generated.is_none(), "{r:?}");
    assert_eq!(f, orig, "untouched");
    let mut a = with_tag(&arp_request_frame("192.0.2.7", "192.0.2.1"), 100);
    let r = run(&snap, &mut st, 0, &mut a, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::VlanAtRouterPort), "{r:?}");
    assert!(r.generated.is_none());
    assert_eq!(st.neighbours.lookup(PortId(0), ip("192.0.2.7"), 10), None, "nothing learned from another VLAN");

    let plain = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    let mut f = with_tag(&plain, 5 << 13);
    assert_eq!(Headers::parse(&f).unwrap().vlan, Some(VlanTag { pcp: 5, dei: false, vid: 0 }));
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.output(), Some(2), "{r:?}");
    assert_eq!(r.frame_start(), 4, "{r:?}");
    let h = valid(&f[4..]);
    assert_eq!(h.vlan, None);
    assert_eq!((h.eth_src, h.eth_dst), (mac(5), VM));
    assert!(matches!(h.l3, L3::Ipv4(fields) if fields.ttl == 62));
    let mut routed = plain;
    run(&snap, &mut st, 0, &mut routed, &mut out);
    assert_eq!(f[4..], routed[..], "as the frame without the tag is routed");
}

/// A router writes a new layer-2 header for what it forwards, untagged like its ports: a
/// priority-tagged frame (whatever its priority and DEI bits) leaves exactly as the same frame
/// without the tag does (MACs, TTL, checksums: the bytes), 4 bytes shorter, IPv4 and IPv6, on
/// its first packet (simulated) and on cache hits (a hop of its own, writing the MACs over the
/// tag).
#[test]
fn a_priority_tagged_frame_leaves_a_router_untagged() {
    let snap = topo().b.build().unwrap();
    let config = FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() };
    let v4 = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    let v6 = udp6("2001:db8:1::7", "2001:db8:2::5", 64, 20);
    for plain in [v4, v6] {
        let mut st = state();
        let mut cache = FlowCache::new(&config, FlowHasher::new(1));
        let (want, hit) = sent_through_cache(&mut cache, &snap, &mut st, IngressPoint::Local(0), &plain);
        assert!(!hit);
        let (port, want) = want.unwrap();
        assert_eq!((port, want.len()), (2, plain.len()));
        let h = valid(&want);
        assert_eq!((h.vlan, h.eth_src, h.eth_dst), (None, mac(5), VM));
        assert!(matches!(h.l3, L3::Ipv4(f) if f.ttl == 62) || matches!(h.l3, L3::Ipv6(f) if f.hop_limit == 62));
        // PCP 5; PCP 0 (a tag with nothing in it but itself); PCP 7 with DEI.
        for tci in [5 << 13, 0, 7 << 13 | 0x1000] {
            let tagged = with_tag(&plain, tci);
            for round in 0..2 {
                let got = sent_through_cache(&mut cache, &snap, &mut st, IngressPoint::Local(0), &tagged);
                assert_eq!(got, (Ok((2, want.clone())), round == 1), "TCI {tci:#06x}, round {round}");
            }
            let key = FlowKey::from_frame(0, &tagged).unwrap();
            let cached = cache.lookup(&key, 10, 0).copied();
            assert!(matches!(cached, Some(CachedActions::UntagHop(_))), "{cached:?}");
        }
    }
}

/// The flow key tells a tagged frame from an untagged one (its tag flag, and the compact form
/// only for untagged IPv4), so the flow cached for one never runs on the other, whose IP header
/// is 4 bytes further on: each misses the other's flow and is routed right, in either order,
/// IPv4 and IPv6 (whose keys differ by the tag flag alone when the tag is all zeros).
#[test]
fn cached_flows_keep_tagged_and_untagged_frames_apart() {
    let snap = topo().b.build().unwrap();
    let config = FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() };
    let v4 = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    let v6 = udp6("2001:db8:1::7", "2001:db8:2::5", 64, 20);
    for plain in [v4, v6] {
        let tagged = with_tag(&plain, 0);
        let mut want = plain.clone();
        run(&snap, &mut state(), 0, &mut want, &mut [0u8; 1514]);
        for (first, second) in [(&plain, &tagged), (&tagged, &plain)] {
            let mut cache = FlowCache::new(&config, FlowHasher::new(1));
            let mut st = state();
            let mut send = |f: &Vec<u8>| sent_through_cache(&mut cache, &snap, &mut st, IngressPoint::Local(0), f);
            assert_eq!(send(first), (Ok((2, want.clone())), false));
            assert_eq!(send(second), (Ok((2, want.clone())), false), "a miss: the other one's flow");
            assert_eq!(send(first), (Ok((2, want.clone())), true));
            assert_eq!(send(second), (Ok((2, want.clone())), true));
        }
    }
}

/// What a router answers a priority-tagged frame with is untagged, as everything it sends: an
/// echo reply or an ARP reply, turned around in place, starts after the tag
/// ([`SimResult::frame_start`]), and an ICMP error, built afresh, never had one. Each is the
/// answer to the same frame without the tag, byte for byte.
#[test]
fn answers_to_a_priority_tagged_frame_are_untagged() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    for plain in [
        echo4("192.0.2.7", "192.0.2.1"),
        echo6("2001:db8:1::7", "2001:db8:1::1"),
        arp_request_frame("192.0.2.7", "192.0.2.1"),
        udp4("192.0.2.7", "10.0.0.5", 1000, 1, true, 20),
    ] {
        let mut want = plain.clone();
        let w = run(&snap, &mut state(), 0, &mut want, &mut out);
        let want_generated = w.generated.map(|g| out[..g.len].to_vec());
        let mut f = with_tag(&plain, 3 << 13);
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!((r.actions.output(), r.actions.drop_reason()), (w.actions.output(), w.actions.drop_reason()));
        assert_eq!(r.generated.map(|g| out[..g.len].to_vec()), want_generated, "{r:?}");
        match r.actions.output() {
            Some(port) => {
                assert_eq!((port, r.frame_start(), w.frame_start()), (0, 4, 0), "{r:?}");
                assert_eq!(f[4..], want[..], "{r:?}");
                assert_eq!(valid(&f[4..]).vlan, None);
            }
            None => {
                assert_eq!(r.actions.drop_reason(), Some(DropReason::TtlExpired), "{r:?}");
                assert_eq!(valid(want_generated.as_deref().unwrap()).vlan, None);
            }
        }
    }
}

#[test]
fn arp_request_for_port_address_is_answered() {
    let snap = topo().b.build().unwrap();
    let mut st = CoreState::new(&CoreConfig::default());
    let mut out = [0u8; 1514];
    let mut f = arp_request_frame("192.0.2.7", "192.0.2.1");
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert!(!r.cacheable);
    assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::ArpReply), Action::Output(0)]);
    let h = Headers::parse(&f).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (mac(1), OUTSIDE));
    let L3::Arp(a) = h.l3 else { panic!() };
    assert_eq!(a.operation, ArpOperation::Reply);
    assert_eq!((a.source_hardware_addr, a.source_protocol_addr), (mac(1), "192.0.2.1".parse().unwrap()));
    assert_eq!((a.target_hardware_addr, a.target_protocol_addr), (OUTSIDE, "192.0.2.7".parse().unwrap()));
    // The sender was learned.
    assert_eq!(st.neighbours.lookup(PortId(0), ip("192.0.2.7"), 10), Some(OUTSIDE));

    // Not for us: neither answered nor learned (RFC 826: a sender is added only from a packet
    // for our address), so nobody fills the cache by asking for others' addresses.
    let mut f = arp_request_frame("192.0.2.8", "192.0.2.99");
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::ArpConsumed));
    assert_eq!(st.neighbours.lookup(PortId(0), ip("192.0.2.8"), 10), None);
    // A gratuitous ARP (sender = target) from an unknown host is not learned either; from a known
    // one at a new MAC, it updates the entry (RFC 826's merge).
    let mut f = arp_request_frame("192.0.2.9", "192.0.2.9");
    run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(st.neighbours.lookup(PortId(0), ip("192.0.2.9"), 10), None);
    let mut f = arp_request_frame("192.0.2.7", "192.0.2.7");
    f[6..12].copy_from_slice(&GW0.0);
    f[22..28].copy_from_slice(&GW0.0);
    run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(st.neighbours.lookup(PortId(0), ip("192.0.2.7"), 10), Some(GW0), "moved to a new MAC");
    // A host claiming the port's own address is a conflict, never a neighbour.
    let mut f = arp_request_frame("192.0.2.1", "192.0.2.1");
    run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(st.neighbours.lookup(PortId(0), ip("192.0.2.1"), 10), None);
}

#[test]
fn echo_request_to_port_address_is_answered() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = echo4("192.0.2.7", "192.0.2.1");
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert!(!r.cacheable);
    assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::EchoReply), Action::Output(0)]);
    let h = valid(&f);
    assert_eq!((h.eth_src, h.eth_dst), (mac(1), OUTSIDE));
    assert!(
        matches!(h.l3, L3::Ipv4(x) if x.src == Ipv4Addr::new(192, 0, 2, 1) && x.dst == Ipv4Addr::new(192, 0, 2, 7))
    );
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, ident: 0x1234, .. }));

    // The tenant router's port answers too.
    let mut f = echo4("192.0.2.7", "10.0.0.1");
    run(&snap, &mut state(), 0, &mut f, &mut out);
    let h = valid(&f);
    assert!(matches!(h.l3, L3::Ipv4(x) if x.src == Ipv4Addr::new(10, 0, 0, 1)));

    let mut f = echo6("2001:db8:1::7", "2001:db8:1::1");
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.output(), Some(0));
    let h = valid(&f);
    assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::EchoReply, .. }));

    // TCP to the router: dropped unanswered (no exception path yet).
    let mut f = udp4("192.0.2.7", "192.0.2.1", 1, 64, true, 12);
    f[14 + 9] = 6;
    Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    assert!(matches!(Headers::parse(&f).unwrap().l4, L4::Tcp { .. }));
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::ToRouter));
    assert!(r.generated.is_none());
}

/// A protocol the router does not speak (SCTP here) is answered protocol unreachable, or for IPv6
/// a parameter problem, unrecognized next header, pointing at the field that names it: the fixed
/// header's, or the last extension header's. No next header (59) is not answered.
#[test]
fn unknown_protocols_to_a_router_port_are_answered() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "192.0.2.1", 1, 64, true, 12);
    f[14 + 9] = 132;
    Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    let orig = f.clone();
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::ProtocolUnreachable), "{r:?}");
    check_icmp4_error(&out[..r.generated.expect("answered").len], &orig, "192.0.2.1", Icmpv4Message::DstUnreachable, 2);
    let v6 = |ext: &[u8], upper: u8| {
        let mut f = udp6("2001:db8:1::7", "2001:db8:1::1", 64, 12);
        if ext.is_empty() {
            f[14 + 6] = upper;
        } else {
            f.splice(54..54, ext.iter().copied());
            f[14 + 6] = 60;
            f[54] = upper;
            let payload_len = (f.len() - 54) as u16;
            f[18..20].copy_from_slice(&payload_len.to_be_bytes());
        }
        f
    };
    for (ext, pointer) in [(&[][..], 6u32), (&[0, 0, 1, 4, 0, 0, 0, 0][..], 40)] {
        let mut f = v6(ext, 132);
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::ProtocolUnreachable), "{r:?}");
        let e = &out[..r.generated.expect("answered").len];
        let h = valid(e);
        assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::ParamProblem, code: 1, .. }), "{h:?}");
        assert_eq!(Icmpv6Packet::new_checked(&e[h.l4_offset..]).unwrap().mtu(), pointer);
    }
    let mut f = v6(&[], 59);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::ToRouter), "{r:?}");
    assert!(r.generated.is_none());
}

/// No UDP service listens on a router port: a datagram for one is answered port unreachable
/// (RFC 1122 3.2.2.1, RFC 1812 4.3.3.1, RFC 4443 3.1), from the address it was sent to, as
/// traceroute's UDP probes to a router expect; one whose checksum fails, or a fragment, is
/// dropped unanswered. Never cached.
#[test]
fn udp_to_a_router_port_is_answered_port_unreachable() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    // From the address it was sent to (RFC 4443 2.2 (a); Linux too), not the port it came in by:
    // 10.0.0.1 is the tenant router's, reached through its interior port 169.254.0.2.
    for (dst, from) in [("192.0.2.1", "192.0.2.1"), ("10.0.0.1", "10.0.0.1")] {
        let mut f = udp4("192.0.2.7", dst, 33434, 64, true, 12);
        let orig = f.clone();
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::PortUnreachable), "{dst}: {r:?}");
        assert!(!r.cacheable);
        check_icmp4_error(&out[..r.generated.expect("answered").len], &orig, from, Icmpv4Message::DstUnreachable, 3);
    }
    let mut f = udp6("2001:db8:1::7", "2001:db8:1::1", 64, 12);
    let orig = f.clone();
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::PortUnreachable), "{r:?}");
    let e = &out[..r.generated.expect("answered").len];
    let h = valid(e);
    let L3::Ipv6(v6) = h.l3 else { panic!() };
    assert_eq!((v6.src, v6.dst), (ip6("2001:db8:1::1"), ip6("2001:db8:1::7")));
    assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::DstUnreachable, code: 4, .. }), "{h:?}");
    assert_eq!(&e[h.l4_offset + 8..], &orig[14..], "the datagram quoted whole");
    // A bad checksum, and the first fragment of a larger datagram: unanswered.
    let mut bad = udp4("192.0.2.7", "192.0.2.1", 33434, 64, true, 12);
    *bad.last_mut().unwrap() ^= 0xff;
    let mut first = udp4("192.0.2.7", "192.0.2.1", 33434, 64, false, 12);
    Ipv4Packet::new_unchecked(&mut first[14..34]).set_more_frags(true);
    Ipv4Packet::new_unchecked(&mut first[14..34]).fill_checksum();
    for mut f in [bad, first] {
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::ToRouter), "{r:?}");
        assert!(!r.cacheable && r.generated.is_none());
    }
}

/// The reply is the request turned around in place: a fragment and a request whose checksum fails
/// are not answered, and not cached either, so a whole request from the same host still is.
#[test]
fn echo_requests_that_cannot_be_turned_around_are_not_answered() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let not_answered = |f: &mut Vec<u8>, what: &str| {
        let r = run(&snap, &mut state(), 0, f, &mut out.clone());
        assert_eq!(r.actions.drop_reason(), Some(DropReason::EchoNotAnswered), "{what}: {:?}", r.actions);
        assert!(!r.cacheable, "{what}");
    };
    // IPv4: the first fragment of a larger request (more fragments), its checksums right.
    let mut f = echo4("192.0.2.7", "192.0.2.1");
    Ipv4Packet::new_unchecked(&mut f[14..34]).set_more_frags(true);
    Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    not_answered(&mut f, "IPv4 first fragment");
    // A bad ICMP checksum (the header checksum right).
    let mut f = echo4("192.0.2.7", "192.0.2.1");
    *f.last_mut().unwrap() ^= 0xff;
    not_answered(&mut f, "IPv4 bad ICMP checksum");
    let mut f = echo6("2001:db8:1::7", "2001:db8:1::1");
    *f.last_mut().unwrap() ^= 0xff;
    not_answered(&mut f, "IPv6 bad ICMPv6 checksum");
    // The plain request is answered.
    let mut f = echo6("2001:db8:1::7", "2001:db8:1::1");
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::EchoReply), Action::Output(0)]);
}

/// An echo request with extension headers its destination processes (RFC 8200 4: padding and
/// unknown skippable options, a router alert, a spent routing header) is answered, and the reply
/// leaves them out: Ethernet and IPv6 headers move forward over them ([`SimResult::frame_start`]),
/// the IPv6 header names ICMPv6 and counts its bytes only. Tagged too (the tag goes as well).
#[test]
fn echo_requests_with_extension_headers_are_answered_without_them() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    // Next header, then the extension headers (each naming the one after, the last ICMPv6).
    let chains: [(u8, &[u8]); 4] = [
        (43, &[58, 0, 4, 0, 0, 0, 0, 0]), // routing header type 4, segments left 0
        (60, &[58, 0, 1, 4, 0, 0, 0, 0]), // destination options, PadN
        (0, &[60, 0, 5, 2, 0, 0, 1, 0, 58, 0, 0x3e, 4, 0, 0, 0, 0]), // router alert; an unknown 00 option
        (
            0,
            &[
                43, 0, 1, 4, 0, 0, 0, 0, 58, 2, 0, 0, 0, 0, 0, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                3,
            ],
        ),
    ];
    for tagged in [false, true] {
        for (next_header, ext) in chains {
            let plain = echo6("2001:db8:1::7", "2001:db8:1::1");
            let mut f = plain.clone();
            f.splice(54..54, ext.iter().copied());
            f[14 + 6] = next_header;
            let payload_len = (f.len() - 54) as u16;
            f[18..20].copy_from_slice(&payload_len.to_be_bytes());
            if tagged {
                f.splice(12..12, [0x81, 0x00, 0x00, 0x00]);
            }
            assert!(valid(&f).verify_checksums(&f).is_ok(), "a well-formed request");
            let r = run(&snap, &mut state(), 0, &mut f, &mut out);
            let what = format!("{next_header} {ext:?} tagged {tagged}");
            assert_eq!(r.actions.output(), Some(0), "{what}: {r:?}");
            assert!(!r.cacheable, "{what}");
            assert_eq!(r.frame_start(), ext.len() + if tagged { 4 } else { 0 }, "{what}");
            let reply = &f[r.frame_start()..];
            assert_eq!(reply.len(), plain.len(), "{what}: as long as the plain request");
            let h = valid(reply);
            assert_eq!((h.eth_src, h.eth_dst, h.vlan), (mac(1), OUTSIDE, None), "{what}");
            let L3::Ipv6(v6) = h.l3 else { panic!("{what}") };
            assert_eq!((v6.src, v6.dst, v6.ext_headers), (ip6("2001:db8:1::1"), ip6("2001:db8:1::7"), 0), "{what}");
            assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::EchoReply, ident: 0x1234, .. }), "{what}");
            assert_eq!(&reply[54 + 8..], &plain[54 + 8..], "{what}: the data echoed");
        }
    }
}

/// RFC 8200 4.4: a routing header with segments left asks the router (the packet's current
/// destination) to send it on, which it does not do for any routing type: parameter problem code
/// 0 pointing at the routing type, from the port, for an echo request or anything else; an option
/// whose type says "answer" gets code 2 pointing at it, one that says "discard" is dropped
/// silently. None cached; none reflected.
#[test]
fn extension_headers_the_router_cannot_process_are_answered_parameter_problem() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let with_ext = |plain: Vec<u8>, next_header: u8, ext: &[u8], upper: u8| {
        let mut f = plain;
        f.splice(54..54, ext.iter().copied());
        f[54] = upper;
        f[14 + 6] = next_header;
        let payload_len = (f.len() - 54) as u16;
        f[18..20].copy_from_slice(&payload_len.to_be_bytes());
        f
    };
    let type0 = [0, 2, 0, 1, 0, 0, 0, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
    // Next header, the extension header, the answer's code and pointer (none: dropped silently).
    type Answer = Option<(u8, u32)>;
    let cases: [(u8, &[u8], Answer); 4] = [
        (43, &type0, Some((0, 42))),                       // routing header type 0, segments left 1
        (43, &[0, 0, 4, 2, 0, 0, 0, 0], Some((0, 42))),    // type 4 (SRH), segments left 2
        (60, &[0, 0, 0x9e, 4, 0, 0, 0, 0], Some((2, 42))), // an unknown option, "answer"
        (60, &[0, 0, 0x5e, 4, 0, 0, 0, 0], None),          // an unknown option, "discard"
    ];
    for (next_header, ext, answer) in cases {
        for (plain, upper) in
            [(echo6("2001:db8:1::7", "2001:db8:1::1"), 58), (udp6("2001:db8:1::7", "2001:db8:1::1", 64, 8), 17)]
        {
            let mut f = with_ext(plain, next_header, ext, upper);
            let orig = f.clone();
            assert!(valid(&f).verify_checksums(&f).is_ok(), "a well-formed request");
            let r = run(&snap, &mut state(), 0, &mut f, &mut out);
            let what = format!("{next_header} {ext:?} upper {upper}");
            assert_eq!(r.actions.drop_reason(), Some(DropReason::Ipv6ExtensionHeader), "{what}: {r:?}");
            assert!(!r.cacheable, "{what}");
            assert_eq!(f, orig, "{what}: nothing turned around");
            let Some((code, pointer)) = answer else {
                assert!(r.generated.is_none(), "{what}");
                continue;
            };
            let len = r.generated.expect("answered").len;
            let h = valid(&out[..len]);
            assert_eq!((h.eth_src, h.eth_dst), (mac(1), OUTSIDE), "{what}");
            let L3::Ipv6(e) = h.l3 else { panic!("{what}") };
            assert_eq!((e.src, e.dst), (ip6("2001:db8:1::1"), ip6("2001:db8:1::7")), "{what}");
            assert!(
                matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::ParamProblem, code: c, .. } if c == code),
                "{what}"
            );
            let p = Icmpv6Packet::new_checked(&out[h.l4_offset..h.end]).unwrap();
            assert_eq!(p.mtu(), pointer, "{what}: the pointer");
            assert_eq!(p.data(), &orig[14..], "{what}: the request quoted whole");
        }
    }
    // To the tenant router's address, through its interior port: answered from that address.
    let mut f = with_ext(echo6("2001:db8:1::7", "2001:db8:2::1"), 43, &type0, 58);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    let h = valid(&out[..r.generated.expect("answered").len]);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.src == ip6("2001:db8:2::1")), "{h:?}");
    // In transit the routing header is the destination's business, not the router's: forwarded.
    let mut st = state();
    st.neighbours.learn(PortId(4), ip("2001:db8:2::5"), VM, 0);
    let mut f = with_ext(udp6("2001:db8:1::7", "2001:db8:2::5", 64, 8), 43, &type0, 17);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.output(), Some(2), "{r:?}");
}

#[test]
fn chain_rules_drop_and_reject() {
    let Topo { mut b, down } = topo();
    let c = b.add_chain(Uuid(300), "in");
    let cond = Condition { dst_port: Some(Field::is(crate::chain::PortRange::new(53, 53))), ..Condition::default() };
    b.add_new_rule(c, Uuid(301), cond, RuleKind::Drop).unwrap();
    let cond = Condition { dst: Some(Field::is(net("10.0.0.6/32"))), ..Condition::default() };
    b.add_new_rule(c, Uuid(302), cond, RuleKind::Reject).unwrap();
    b.set_port_chains(down, None, Some(c));
    let snap = b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut st = state();
    st.neighbours.learn(PortId(4), ip("10.0.0.6"), VM, 0);

    let mut f = udp4("192.0.2.7", "10.0.0.5", 1, 64, true, 0);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop));
    assert!(r.cacheable);
    assert!(r.deps.contains(DeviceId::Chain(c)));

    let mut f = echo4("192.0.2.7", "10.0.0.6");
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleReject));
    // From the tenant router's ingress (interior) port.
    check_icmp4_error(&out[..r.generated.unwrap().len], &f, "169.254.0.2", Icmpv4Message::DstUnreachable, 13);

    // Echo to another VM passes.
    let mut f = echo4("192.0.2.7", "10.0.0.5");
    assert_eq!(run(&snap, &mut st, 0, &mut f, &mut out).actions.output(), Some(2));
}

/// The VM's (10.0.0.77) ARP reply to R2's downlink, as received on DPDK 2.
fn vm_arp_reply() -> Vec<u8> {
    let mut reply = vec![0u8; 42];
    eth(&mut reply, VM, mac(5), EtherType::Arp);
    ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: VM,
        source_protocol_addr: "10.0.0.77".parse().unwrap(),
        target_hardware_addr: mac(5),
        target_protocol_addr: "10.0.0.1".parse().unwrap(),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut reply[14..]));
    reply
}

#[test]
fn neighbour_miss_sends_arp_request_or_ns() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut st = state();
    let mut f = udp4("192.0.2.7", "10.0.0.77", 1, 64, true, 0);
    let orig = f.clone();
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
    assert!(!r.cacheable);
    assert_eq!(f, orig);
    assert_eq!(r.hold, Some(Hold { port: PortId(4), addr: ip("10.0.0.77") }), "held, unchanged, for this neighbour");
    let g = r.generated.unwrap();
    assert_eq!(g.legs, Legs::one(Leg::Local(2)));
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (mac(5), EthernetAddress::BROADCAST));
    let L3::Arp(a) = h.l3 else { panic!() };
    assert_eq!(a.operation, ArpOperation::Request);
    assert_eq!(a.source_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(a.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 77));

    // The VM's reply, received on DPDK 2, is learned; then the packet goes through.
    let mut reply = vm_arp_reply();
    let r = run(&snap, &mut st, 2, &mut reply, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::ArpConsumed));
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.output(), Some(2));
    // Expiry.
    assert_eq!(st.neighbours.lookup(PortId(4), ip("10.0.0.77"), 2000), None);

    // IPv6: a neighbour solicitation to the solicited-node address.
    let mut f = udp6("2001:db8:1::7", "2001:db8:2::1:abcd", 64, 0);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    let g = r.generated.unwrap();
    let h = valid(&out[..g.len]);
    assert_eq!(h.eth_dst, EthernetAddress([0x33, 0x33, 0xff, 0x01, 0xab, 0xcd]));
    assert!(
        matches!(h.l3, L3::Ipv6(x) if x.hop_limit == 255 && x.dst == "ff02::1:ff01:abcd".parse::<Ipv6Addr>().unwrap())
    );
    let p = Icmpv6Packet::new_checked(&out[h.l4_offset..h.end]).unwrap();
    assert_eq!(
        Icmpv6Repr::parse(&h.pseudo_header().unwrap(), &p).unwrap(),
        Icmpv6Repr::NeighborSolicit { target_addr: "2001:db8:2::1:abcd".parse().unwrap(), lladdr: Some(mac(5)) }
    );
}

/// Two worker cores: the first holds a packet for an unresolved VM and asks; the VM's answer
/// reaches the second (as a tunnelled reply steered by its outer headers would). Replicated, the
/// first core learns it too and forwards; nothing the first core learned from the second is told
/// back.
#[test]
fn what_one_core_learns_the_others_apply() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let (mut asking, mut answered) = (state(), state());
    asking.replicate_learning(true);
    answered.replicate_learning(true);
    let mut f = udp4("192.0.2.7", "10.0.0.77", 1, 64, true, 0);
    let r = run(&snap, &mut asking, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
    let mut reply = vm_arp_reply();
    assert_eq!(run(&snap, &mut answered, 2, &mut reply, &mut out).actions.drop_reason(), Some(DropReason::ArpConsumed));
    assert_eq!(asking.neighbours.lookup(PortId(4), ip("10.0.0.77"), 10), None, "not learned by the asking core itself");

    let mut told = Vec::new();
    answered.drain_learning(|l| told.push(l));
    assert_eq!(told, [Learning::Neighbour { port: PortId(4), ip: ip("10.0.0.77"), mac: VM }]);
    let learns = asking.neighbours.learn_count();
    for &l in &told {
        asking.apply_learning(l, 10);
    }
    assert!(asking.neighbours.learn_count() > learns, "the resolution queue looks again");
    assert!(!asking.has_learning(), "applied, not told again");
    assert_eq!(run(&snap, &mut asking, 0, &mut f, &mut out).actions.output(), Some(2));

    // A single worker records nothing.
    let mut alone = state();
    run(&snap, &mut alone, 2, &mut reply, &mut out);
    assert!(!alone.has_learning());
}

#[test]
fn a_neighbour_at_a_new_mac_is_a_change_of_its_port() {
    let mut n = NeighbourCache::new(16, 1000, 0, 0);
    n.learn(PortId(3), ip("10.0.0.5"), VM, 0);
    n.learn(PortId(3), ip("10.0.0.5"), VM, 10);
    assert!(!n.has_changed(), "new and refreshed entries change no flow");
    n.learn(PortId(3), ip("10.0.0.5"), mac(9), 20);
    assert!(n.has_changed());
    assert!(n.take_changed().contains(DeviceId::Port(PortId(3))));
    assert!(!n.has_changed() && n.take_changed().is_empty(), "taken once");
    // Expired but still in its slot: the flows cached with it may outlive it.
    n.learn(PortId(3), ip("10.0.0.5"), VM, 5000);
    assert!(n.take_changed().contains(DeviceId::Port(PortId(3))));
    // The underlay's tunnel templates follow the version; no port to name.
    n.learn(UNDERLAY_PORT, ip("192.168.7.11"), VM, 0);
    n.learn(UNDERLAY_PORT, ip("192.168.7.11"), mac(9), 1);
    assert!(!n.has_changed());
    // A snapshot change forgets what it would have named.
    n.learn(PortId(3), ip("10.0.0.5"), mac(9), 5001);
    n.retain_ports(|_| true);
    assert!(!n.has_changed());
}

/// RFC 1122 2.3.2.1: one request per destination per interval, however many packets wait for it.
#[test]
fn a_destination_is_asked_for_once_per_interval() {
    let mut n = NeighbourCache::new(16, 1000, 100, 0);
    let (port, addr) = (PortId(3), ip("10.0.0.5"));
    assert!(n.may_ask(port, addr, 0));
    assert!(!n.may_ask(port, addr, 1), "asked a moment ago");
    assert!(!n.may_ask(port, addr, 99));
    assert!(n.may_ask(port, ip("10.0.0.6"), 1), "another address is another destination");
    assert!(n.may_ask(PortId(4), addr, 1), "so is the same address on another port");
    assert!(n.may_ask(port, addr, 100), "a whole interval later");
    assert!(!n.may_ask(port, addr, 150));
    assert_eq!(n.ask_interval(), 100);
    // No interval: every request goes (the standalone cache's tests).
    let mut free = NeighbourCache::new(16, 1000, 0, 0);
    assert!(free.may_ask(port, addr, 0) && free.may_ask(port, addr, 0));
}

/// RFC 6583 section 6: requests for new destinations share one budget, so that a scan of a large subnet
/// is not answered by a flood of requests. A refused destination is not recorded as asked: it
/// may ask once a token is back. The underlay's next hops are not counted.
#[test]
fn requests_for_new_destinations_share_a_budget() {
    const MS: u64 = 1_000_000;
    let mut n = NeighbourCache::new(16, 1000, 10 * MS, 0);
    n.set_request_budget(1000, 5);
    let dest = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    assert_eq!((0..20).filter(|&i| n.may_ask(PortId(3), dest(i), 0)).count(), 5, "the burst at once");
    assert_eq!(n.requests_limited(), 15);
    assert!(n.may_ask(UNDERLAY_PORT, dest(99), 0), "the underlay's next hop is not counted");
    assert!(!n.may_ask(PortId(3), dest(7), MS - 1), "not a whole token yet");
    assert_eq!(n.requests_limited(), 16);
    assert!(n.may_ask(PortId(3), dest(7), MS), "refused before, asked when a token is back");
    assert!(!n.may_ask(PortId(3), dest(7), 5 * MS), "then once per interval, as any destination");
    assert_eq!(n.requests_limited(), 16, "that refusal is the interval's, not the budget's");
}

/// A scan of the subnet behind a router port, every address new, is answered by at most the
/// core's request budget of ARP requests; the packets whose address could not be asked for are
/// dropped, not held (nothing would release them, and they would crowd the resolution queue);
/// an address refused is asked for once the budget refills.
#[test]
fn a_scan_asks_for_at_most_the_request_budget() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut st = state();
    let burst = CoreConfig::default().resolution_request_burst as usize;
    let scanned: Vec<String> = (2..=254).filter(|&h| h != 5).map(|h| format!("10.0.0.{h}")).collect();
    let mut asked = 0;
    for (i, dst) in scanned.iter().enumerate() {
        let mut f = udp4("192.0.2.7", dst, 1, 64, true, 0);
        let r = simulate(&snap, 0, &mut f, &mut st, 10, &mut out);
        if i < burst {
            assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved), "to {dst}");
            assert!(r.hold.is_some() && r.generated.is_some(), "{dst} asked for and held");
            asked += 1;
        } else {
            assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourRequestsLimited), "to {dst}");
            assert!(r.hold.is_none() && r.generated.is_none(), "{dst} neither asked for nor held");
        }
        assert!(!r.cacheable, "nothing about an unresolved next hop is cached");
    }
    assert_eq!(asked, burst);
    assert_eq!(st.neighbours.requests_limited(), (scanned.len() - burst) as u64);
    let mut f = udp4("192.0.2.7", "10.0.0.254", 1, 64, true, 0);
    let later = simulate(&snap, 0, &mut f, &mut st, 10 + 1_000_000_000, &mut out);
    assert!(later.generated.is_some() && later.hold.is_some(), "a second later, the last address refused is asked for");
}

/// The simulation asks for an unresolved next hop once per interval; the packets in between are
/// held for it all the same.
#[test]
fn an_unresolved_next_hop_is_asked_for_once_per_interval() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut st = state();
    let interval = CoreConfig::default().resolution_interval;
    let at = |st: &mut CoreState, out: &mut [u8], now: u64| {
        let mut f = udp4("192.0.2.7", "10.0.0.77", 1, 64, true, 0);
        simulate(&snap, 0, &mut f, st, now, out)
    };
    let first = at(&mut st, &mut out, 10);
    assert!(first.generated.is_some(), "the first packet asks");
    for now in [11, 10 + interval - 1] {
        let r = at(&mut st, &mut out, now);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
        assert_eq!(r.hold, first.hold, "held for the same next hop");
        assert!(r.generated.is_none(), "not asked again at {now}");
    }
    assert!(at(&mut st, &mut out, 10 + interval).generated.is_some(), "asked again an interval later");
}

/// A stale entry that forwarding used is polled every poll interval until an answer refreshes it;
/// a fresh one, or one nothing used, is not.
#[test]
fn stale_neighbours_in_use_are_polled_until_refreshed() {
    const ALL: usize = usize::MAX;
    // Lifetime 100: fresh until 75, a poll every 5 while stale.
    let mut n = NeighbourCache::new(16, 100, 0, 0);
    assert_eq!(n.poll_interval(), 5);
    let mut polls = [Poll::NONE; 4];
    let (port, addr) = (PortId(3), ip("10.0.0.5"));
    n.learn(port, addr, VM, 0);
    n.learn(PortId(4), ip("10.0.0.6"), mac(6), 0);
    assert_eq!(n.use_entry(port, addr, 10), Some(InUse { mac: VM, recheck_at: 75 }), "kept until it goes stale");
    assert_eq!(n.due_polls(74, &mut polls, ALL).0, 0, "fresh");
    assert_eq!(n.due_polls(75, &mut polls, ALL).0, 1, "stale and in use; 10.0.0.6 was never used");
    assert_eq!(polls[0], Poll { port, ip: addr, mac: VM });
    assert_eq!(n.due_polls(79, &mut polls, ALL).0, 0, "polled less than an interval ago");
    assert_eq!(n.due_polls(80, &mut polls, ALL).0, 1);
    assert_eq!(n.use_entry(port, addr, 81), Some(InUse { mac: VM, recheck_at: 100 }), "stale: kept until it expires");
    // The answer refreshes it: fresh again, and no longer in use until forwarding uses it.
    n.learn(port, addr, VM, 82);
    assert!(!n.has_changed(), "the same MAC changes no flow");
    assert_eq!(n.due_polls(170, &mut polls, ALL).0, 0, "stale since 157 but not used since the refresh");
    assert_eq!(n.use_entry(port, addr, 170), Some(InUse { mac: VM, recheck_at: 182 }));
    assert_eq!(n.due_polls(170, &mut polls, ALL).0, 1);
    // No answer: polled until it expires, then gone, and its port's flows told (they carry its MAC).
    assert_eq!(n.due_polls(181, &mut polls, ALL).0, 1);
    assert!(!n.has_changed());
    assert_eq!(n.due_polls(182, &mut polls, ALL).0, 0, "expired");
    assert_eq!(n.take_changed().as_slice(), &[DeviceId::Port(port)], "the flows through its port are dropped");
    assert_eq!(n.use_entry(port, addr, 182), None);
    // One nothing used expires quietly (no flow has its MAC).
    assert_eq!(n.due_polls(300, &mut polls, ALL).0, 0);
    assert!(!n.has_changed(), "10.0.0.6 was never used");
}

/// A neighbour in use evicted from its full bucket by another: the flows through its port are
/// told, as when one stops answering; an unused one goes quietly.
#[test]
fn evicting_a_neighbour_in_use_tells_its_flows() {
    // One bucket of four: a fifth entry evicts the one that expires first.
    let mut n = NeighbourCache::new(4, 100, 0, 0);
    assert_eq!(n.capacity(), 4);
    for i in 0..4u8 {
        n.learn(PortId(3), IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), mac(i), u64::from(i));
    }
    n.learn(PortId(3), ip("10.0.1.1"), mac(9), 10);
    assert!(!n.has_changed(), "10.0.0.0, evicted, was not in use");
    n.use_entry(PortId(3), ip("10.0.0.1"), 11).unwrap();
    n.learn(PortId(4), ip("10.0.1.2"), mac(10), 12);
    assert_eq!(n.take_changed().as_slice(), &[DeviceId::Port(PortId(3))], "10.0.0.1 was in use");
    assert_eq!(n.lookup(PortId(3), ip("10.0.0.1"), 12), None);
}

#[test]
fn neighbour_polls_are_bounded_per_call() {
    const ALL: usize = usize::MAX;
    let mut n = NeighbourCache::new(64, 100, 0, 0);
    for i in 0..10u8 {
        let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
        n.learn(PortId(1), addr, mac(i), 0);
        n.use_entry(PortId(1), addr, 1);
    }
    let mut polls = [Poll::NONE; 4];
    let due: Vec<usize> = (0..4).map(|_| n.due_polls(80, &mut polls, ALL).0).collect();
    assert_eq!(due, [4, 4, 2, 0], "the rest at the next call, each entry once an interval");
}

/// What [`neighbour_poll`] builds: an ARP request or a neighbour solicitation to the neighbour's
/// own MAC (and, for IPv6, its own address), from the router port it was learned on, out of that
/// port's link; the underlay's from the underlay address.
#[test]
fn neighbour_polls_go_point_to_point() {
    let snap = topo().b.build().unwrap();
    let st = state();
    let mut out = [0u8; 128];
    let poll = Poll { port: PortId(4), ip: ip("10.0.0.5"), mac: VM };
    let g = neighbour_poll(&snap, &st, &poll, 1, &mut out).expect("IPv4 poll");
    assert_eq!(g.legs, Legs::one(Leg::Local(2)));
    assert!(!g.icmp_error);
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (mac(5), VM), "unicast, not broadcast");
    let L3::Arp(a) = h.l3 else { panic!("not ARP: {h:?}") };
    assert_eq!(a.operation, ArpOperation::Request);
    assert_eq!((a.source_hardware_addr, a.source_protocol_addr), (mac(5), Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(a.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 5));

    let poll = Poll { port: PortId(4), ip: ip("2001:db8:2::5"), mac: VM };
    let g = neighbour_poll(&snap, &st, &poll, 1, &mut out).expect("IPv6 poll");
    let h = valid(&out[..g.len]);
    assert_eq!(h.eth_dst, VM);
    let target: Ipv6Addr = "2001:db8:2::5".parse().unwrap();
    assert!(matches!(h.l3, L3::Ipv6(x) if x.hop_limit == 255 && x.dst == target), "to the address itself: {h:?}");
    let p = Icmpv6Packet::new_checked(&out[h.l4_offset..h.end]).unwrap();
    assert_eq!(
        Icmpv6Repr::parse(&h.pseudo_header().unwrap(), &p).unwrap(),
        Icmpv6Repr::NeighborSolicit { target_addr: target, lladdr: Some(mac(5)) }
    );

    // A port the snapshot no longer has, or an address of a family the port has none of: nothing.
    assert_eq!(neighbour_poll(&snap, &st, &Poll { port: PortId(99), ..poll }, 1, &mut out), None);
    let v6_on_v4_port = Poll { port: PortId(1), ip: ip("2001:db8:9::1"), mac: GW1 };
    assert_eq!(neighbour_poll(&snap, &st, &v6_on_v4_port, 1, &mut out), None);
}

#[test]
fn neighbour_cache_is_bounded() {
    let mut c = NeighbourCache::new(8, 100, 0, 0);
    assert_eq!(c.capacity(), 8);
    for i in 0..100u32 {
        c.learn(PortId(i % 3), IpAddr::V4(Ipv4Addr::from(i)), mac(i as u8), 0);
    }
    assert!(c.len(0) <= 8);
    c.learn(PortId(0), ip("10.0.0.1"), mac(1), 50);
    assert_eq!(c.lookup(PortId(0), ip("10.0.0.1"), 149), Some(mac(1)));
    assert_eq!(c.lookup(PortId(1), ip("10.0.0.1"), 149), None);
    assert!(c.expire(120) > 0);
    assert_eq!(c.lookup(PortId(0), ip("10.0.0.1"), 120), Some(mac(1)));
    c.forget(PortId(0), ip("10.0.0.1"));
    assert_eq!(c.lookup(PortId(0), ip("10.0.0.1"), 120), None);
}

#[test]
fn garbage_never_panics() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 64];
    let mut seed = 0x1234_5678u32;
    for len in 0..200 {
        let mut f: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        if len > 14 {
            f[..6].copy_from_slice(&mac(1).0);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
        }
        let r = simulate(&snap, 0, &mut f, &mut st, 0, &mut out);
        let _ = apply(&snap, &r.actions, &mut f, &mut st, 10);
    }
}

/// A neighbour solicitation for `target` from `src` (with `lladdr`), to the solicited-node group.
fn ns(src: &str, target: &str, lladdr: Option<EthernetAddress>, hop_limit: u8) -> Vec<u8> {
    let t: Ipv6Addr = target.parse().unwrap();
    let t = t.octets();
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(t[13]), u16::from_be_bytes([t[14], t[15]]));
    ns_to(src, target, lladdr, hop_limit, dst)
}

/// [`ns`] to IPv6 destination `dst` (and its multicast MAC).
fn ns_to(src: &str, target: &str, lladdr: Option<EthernetAddress>, hop_limit: u8, dst: Ipv6Addr) -> Vec<u8> {
    let (src, target): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), target.parse().unwrap());
    let d = dst.octets();
    let icmp = Icmpv6Repr::NeighborSolicit { target_addr: target, lladdr };
    let mut f = vec![0u8; 14 + 40 + icmp.buffer_len()];
    eth(&mut f, OUTSIDE, EthernetAddress([0x33, 0x33, d[12], d[13], d[14], d[15]]), EtherType::Ipv6);
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    icmp.emit(&PseudoHeader::V6 { src, dst }, &mut Icmpv6Packet::new_unchecked(&mut f[54..]));
    f
}

/// The neighbour advertisement in `out[..len]`: (IPv6 src, dst, flags, target, lladdr), checked.
fn parse_na(out: &[u8]) -> (Headers, Icmpv6Repr<'_>) {
    let h = valid(out);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.hop_limit == 255));
    let p = Icmpv6Packet::new_checked(&out[h.l4_offset..h.end]).unwrap();
    let repr = Icmpv6Repr::parse(&h.pseudo_header().unwrap(), &p).unwrap();
    (h, repr)
}

#[test]
fn neighbour_solicitations_for_port_addresses_are_answered() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = ns("2001:db8:1::7", "2001:db8:1::1", Some(OUTSIDE), 255);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NdpConsumed));
    assert!(!r.cacheable);
    let g = r.generated.expect("neighbour advertisement");
    assert_eq!(g.legs, Legs::one(Leg::Local(0)));
    let (h, na) = parse_na(&out[..g.len]);
    assert_eq!((h.eth_src, h.eth_dst), (mac(1), OUTSIDE));
    let L3::Ipv6(x) = h.l3 else { panic!() };
    assert_eq!((x.src, x.dst), ("2001:db8:1::1".parse().unwrap(), "2001:db8:1::7".parse().unwrap()));
    assert_eq!(
        na,
        Icmpv6Repr::NeighborAdvert {
            flags: crate::wire::NeighborFlags { router: true, solicited: true, override_entry: true },
            target_addr: "2001:db8:1::1".parse().unwrap(),
            lladdr: Some(mac(1)),
        }
    );
    // The solicitor was learned.
    assert_eq!(st.neighbours.lookup(PortId(0), ip("2001:db8:1::7"), 10), Some(OUTSIDE));

    // Duplicate address detection (unspecified source): to all nodes, not solicited, nothing learned.
    let mut f = ns("::", "2001:db8:1::1", None, 255);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    let (h, na) = parse_na(&out[..r.generated.unwrap().len]);
    assert_eq!(h.eth_dst, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    assert!(matches!(h.l3, L3::Ipv6(x) if x.dst == "ff02::1".parse::<Ipv6Addr>().unwrap()));
    assert!(matches!(na, Icmpv6Repr::NeighborAdvert { flags, .. } if !flags.solicited && flags.router));

    // A hop limit other than 255 may come from off-link: ignored (RFC 4861 section 7.1.1).
    let mut f = ns("2001:db8:1::8", "2001:db8:1::1", Some(GW0), 254);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert!(r.generated.is_none());
    assert_eq!(st.neighbours.lookup(PortId(0), ip("2001:db8:1::8"), 10), None);

    // For someone else's address: discarded, sender and all (RFC 4861 section 7.2.3).
    let mut f = ns("2001:db8:1::9", "2001:db8:1::99", Some(GW1), 255);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert!(r.generated.is_none());
    assert_eq!(st.neighbours.lookup(PortId(0), ip("2001:db8:1::9"), 10), None);
}

const SOLICITED: crate::wire::NeighborFlags =
    crate::wire::NeighborFlags { router: false, solicited: true, override_entry: true };

/// A neighbour advertisement from `target` at `lladdr` to R2's `down` port (2001:db8:2::1).
fn advert(target: &str, lladdr: EthernetAddress, flags: crate::wire::NeighborFlags) -> Vec<u8> {
    advert_to(target, lladdr, flags, "2001:db8:2::1".parse().unwrap(), mac(5))
}

/// [`advert`] to `dst` / `dst_mac` on R2's `down` link.
fn advert_to(
    target: &str,
    lladdr: EthernetAddress,
    flags: crate::wire::NeighborFlags,
    dst: Ipv6Addr,
    dst_mac: EthernetAddress,
) -> Vec<u8> {
    let icmp = Icmpv6Repr::NeighborAdvert { flags, target_addr: target.parse().unwrap(), lladdr: Some(lladdr) };
    let src: Ipv6Addr = target.parse().unwrap();
    let mut na = vec![0u8; 14 + 40 + icmp.buffer_len()];
    eth(&mut na, lladdr, dst_mac, EtherType::Ipv6);
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut na[14..54]));
    icmp.emit(&PseudoHeader::V6 { src, dst }, &mut Icmpv6Packet::new_unchecked(&mut na[54..]));
    na
}

/// RFC 4861 section 7.2.5: an advertisement creates an entry only as the answer to a solicitation
/// (the solicited flag), updates a known one, and without the override flag does not replace a
/// known MAC.
#[test]
fn advertisements_create_entries_only_when_solicited() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let (port, addr) = (PortId(4), ip("2001:db8:2::43"));
    let unsolicited = crate::wire::NeighborFlags { solicited: false, ..SOLICITED };
    run(&snap, &mut st, 2, &mut advert("2001:db8:2::43", VM, unsolicited), &mut out);
    assert_eq!(st.neighbours.lookup(port, addr, 10), None, "nobody asked");
    run(&snap, &mut st, 2, &mut advert("2001:db8:2::43", VM, SOLICITED), &mut out);
    assert_eq!(st.neighbours.lookup(port, addr, 10), Some(VM));
    let keep = crate::wire::NeighborFlags { solicited: false, override_entry: false, router: false };
    run(&snap, &mut st, 2, &mut advert("2001:db8:2::43", mac(9), keep), &mut out);
    assert_eq!(st.neighbours.lookup(port, addr, 10), Some(VM), "no override: the known MAC stays");
    run(&snap, &mut st, 2, &mut advert("2001:db8:2::43", mac(9), unsolicited), &mut out);
    assert_eq!(st.neighbours.lookup(port, addr, 10), Some(mac(9)), "override: a known entry moves");
    // An advertisement for the port's own address claims it: a conflict, not learned.
    run(&snap, &mut st, 2, &mut advert("2001:db8:2::1", mac(9), SOLICITED), &mut out);
    assert_eq!(st.neighbours.lookup(port, ip("2001:db8:2::1"), 10), None);
}

#[test]
fn ipv6_next_hop_resolved_by_advertisement_then_forwarded() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = udp6("2001:db8:1::7", "2001:db8:2::42", 64, 8);
    let orig = f.clone();
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
    assert_eq!(r.hold, Some(Hold { port: PortId(4), addr: ip("2001:db8:2::42") }));
    // The VM answers the solicitation.
    let mut na = advert("2001:db8:2::42", VM, SOLICITED);
    let r = run(&snap, &mut st, 2, &mut na, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NdpConsumed));
    let mut f = orig.clone();
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.output(), Some(2));
    let h = valid(&f);
    assert_eq!((h.eth_src, h.eth_dst), (mac(5), VM));
    assert!(matches!(h.l3, L3::Ipv6(x) if x.hop_limit == 62));
    let mut g = orig.clone();
    assert_eq!(apply(&snap, &r.actions, &mut g, &mut st, 10), Ok(Output::local(2)));
    assert_eq!(g, f);
}

/// RFC 1812 5.3.4: a frame sent to the Ethernet broadcast or a multicast MAC is routed only to an
/// IP multicast or broadcast address; with a unicast IP destination it is dropped and counted,
/// silently, and not answered either when the address is the router's (RFC 1122 3.3.6).
#[test]
fn link_layer_broadcast_to_a_unicast_ip_is_not_routed() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let multicast = EthernetAddress([0x01, 0, 0x5e, 0, 0, 5]);
    for l2 in [EthernetAddress::BROADCAST, multicast] {
        for mut f in [udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 8), echo4("192.0.2.7", "192.0.2.1")] {
            f[..6].copy_from_slice(&l2.0);
            let r = run(&snap, &mut st, 0, &mut f, &mut out);
            assert_eq!(r.actions.drop_reason(), Some(DropReason::LinkBroadcast), "{l2:?}: {:?}", r.actions);
            assert!(r.generated.is_none(), "{l2:?}: no answer");
            assert!(r.cacheable, "the MACs are in the flow key");
        }
    }
    // To the ingress subnet's broadcast: a broadcast both ways, dropped as such further on.
    let mut f = udp4("192.0.2.7", "192.0.2.255", 1000, 64, false, 8);
    f[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::DirectedBroadcast), "{:?}", r.actions);
    // The same packet to the port's own MAC is routed.
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 8);
    assert_eq!(run(&snap, &mut st, 0, &mut f, &mut out).actions.output(), Some(2));
}

/// Seeds Table 7.2 (`traversed-device`): a rule sees the devices the packet went through so far
/// in this simulation, and only those.
#[test]
fn traversed_device_matches_the_devices_already_crossed() {
    let Topo { mut b, .. } = topo();
    let c = b.add_chain(Uuid(300), "r2-in");
    let cond = Condition { traversed_device: Some(Field::is(DeviceId::Router(RouterId(0)))), ..Condition::default() };
    b.add_new_rule(c, Uuid(301), cond, RuleKind::Drop).unwrap();
    b.set_router_filters(RouterId(1), Some(c), None);
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    // From outside, R2's infilter sees a packet that crossed R1.
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 8);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop), "{:?}", r.actions);
    assert!(r.cacheable && r.deps.contains(DeviceId::Chain(c)));
    // From the VM, R2 is the first router: the rule does not match and the packet leaves by R1.
    let mut f = udp4("10.0.0.5", "100.64.1.1", 1000, 64, true, 8);
    f[..6].copy_from_slice(&mac(5).0);
    let r = run(&snap, &mut st, 2, &mut f, &mut out);
    assert!(r.actions.output().is_some(), "{:?}", r.actions);

    // Inverted, and on a port: R1's outfilter drops what did not enter by the uplink `up1`.
    let Topo { mut b, .. } = topo();
    let c = b.add_chain(Uuid(300), "r1-out");
    let cond = Condition { traversed_device: Some(Field::not(DeviceId::Port(PortId(1)))), ..Condition::default() };
    b.add_new_rule(c, Uuid(301), cond, RuleKind::Drop).unwrap();
    b.set_router_filters(RouterId(0), None, Some(c));
    let snap = b.build().unwrap();
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 8);
    assert_eq!(run(&snap, &mut st, 0, &mut f, &mut out).actions.drop_reason(), Some(DropReason::RuleDrop));
    let mut f = udp4("198.51.100.7", "10.0.0.5", 1000, 64, true, 8);
    f[..6].copy_from_slice(&mac(2).0);
    assert_eq!(run(&snap, &mut st, 1, &mut f, &mut out).actions.output(), Some(2));
}

/// RFC 1812 4.3.2.7: no ICMP error about a packet to a broadcast address. A packet to an
/// attached subnet's broadcast that would expire is dropped as the broadcast it is, silently.
#[test]
fn no_time_exceeded_for_a_directed_broadcast() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.7", "10.0.0.255", 1000, 2, true, 8);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::DirectedBroadcast), "{:?}", r.actions);
    assert!(r.generated.is_none());
    // Another address of the subnet with the same TTL still expires, answered.
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 2, true, 8);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TtlExpired));
    assert!(r.generated.is_some());
}

/// RFC 1812 4.3.2.7: no ICMP error about a packet whose source is not one host: the directed
/// broadcast of the subnet it came from, or class E; neither for a missing route nor for a
/// reject rule ahead of the martian check.
#[test]
fn no_icmp_error_to_a_broadcast_or_class_e_source() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = udp4("192.0.2.255", "8.8.8.8", 1000, 64, true, 8);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert!(r.generated.is_none(), "net unreachable sent to the ingress subnet's broadcast");
    assert_eq!(r.actions.drop_reason(), Some(DropReason::IcmpErrorSuppressed));
    assert!(r.cacheable, "the key settles it");
    // Class E past the route lookup is a martian, dropped silently before any answer.
    for src in ["240.0.0.1", "254.1.2.3"] {
        let mut f = udp4(src, "8.8.8.8", 1000, 64, true, 8);
        assert!(run(&snap, &mut state(), 0, &mut f, &mut out).generated.is_none(), "{src}");
    }
    // Another subnet's broadcast address may be a host's address here: answered.
    let mut f = udp4("192.0.3.255", "8.8.8.8", 1000, 64, true, 8);
    assert!(run(&snap, &mut state(), 0, &mut f, &mut out).generated.is_some());

    let Topo { mut b, .. } = topo();
    let c = b.add_chain(Uuid(300), "r1-in");
    b.add_new_rule(c, Uuid(301), Condition::default(), RuleKind::Reject).unwrap();
    b.set_router_filters(RouterId(0), Some(c), None);
    let snap = b.build().unwrap();
    for src in ["240.0.0.1", "192.0.2.255"] {
        let mut f = udp4(src, "10.0.0.5", 1000, 64, true, 8);
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::IcmpErrorSuppressed), "{src}");
        assert!(r.generated.is_none(), "admin prohibited sent to {src}");
    }
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 8);
    assert!(run(&snap, &mut state(), 0, &mut f, &mut out).generated.is_some(), "a host is answered");
}

/// RFC 1122 3.2.1.3, RFC 1812 4.2.2.11 / 5.3.7: an echo request to a router port from a source
/// no host has is not answered (the reply would go to a martian address); dropped as `martian`.
#[test]
fn echo_requests_from_martian_sources_are_not_answered() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    for src in ["127.0.0.1", "224.0.0.5", "0.0.0.0", "0.1.2.3", "240.0.0.1", "255.255.255.255", "192.0.2.255"] {
        let mut f = echo4(src, "192.0.2.1");
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::Martian), "echo from {src}: {:?}", r.actions);
        assert!(r.generated.is_none());
    }
    for src in ["::1", "ff02::1", "::", "2001:db8:1::"] {
        let mut f = echo6(src, "2001:db8:1::1");
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::Martian), "echo from {src}: {:?}", r.actions);
    }
    // A host's echo, from a link-local address too, is answered.
    for (src, dst) in [("2001:db8:1::7", "2001:db8:1::1"), ("fe80::7", "2001:db8:1::1")] {
        let mut f = echo6(src, dst);
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.as_slice().first(), Some(&Action::Reply(ReplyKind::EchoReply)), "{src}");
    }
}

/// RFC 4861 7.1.1 / 7.1.2: invalid neighbour discovery is discarded: a solicitation from the
/// unspecified address with a source link-layer address, or not to a solicited-node address; a
/// solicited advertisement to a multicast address (which must not create an entry).
#[test]
fn invalid_neighbour_discovery_is_discarded() {
    let snap = topo().b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = ns("::", "2001:db8:1::1", Some(OUTSIDE), 255);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NdpConsumed));
    assert!(r.generated.is_none(), "answered an NS from :: with a source link-layer address");
    let mut f = ns_to("::", "2001:db8:1::1", None, 255, "ff02::1".parse().unwrap());
    assert!(run(&snap, &mut st, 0, &mut f, &mut out).generated.is_none(), "DAD not to the solicited-node group");
    // The valid form is answered (duplicate address detection).
    let mut f = ns("::", "2001:db8:1::1", None, 255);
    assert!(run(&snap, &mut st, 0, &mut f, &mut out).generated.is_some());

    let (port, addr) = (PortId(4), ip("2001:db8:2::44"));
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let l2 = EthernetAddress([0x33, 0x33, 0, 0, 0, 1]);
    run(&snap, &mut st, 2, &mut advert_to("2001:db8:2::44", VM, SOLICITED, all_nodes, l2), &mut out);
    assert_eq!(st.neighbours.lookup(port, addr, 10), None, "a solicited advertisement to all nodes");
    // Unsolicited to all nodes is valid: it updates a known entry.
    st.neighbours.learn(port, addr, mac(9), 0);
    let unsolicited = crate::wire::NeighborFlags { solicited: false, ..SOLICITED };
    run(&snap, &mut st, 2, &mut advert_to("2001:db8:2::44", VM, unsolicited, all_nodes, l2), &mut out);
    assert_eq!(st.neighbours.lookup(port, addr, 10), Some(VM));
}

/// RFC 4291 2.6.1: the Subnet-Router anycast address of a port's IPv6 subnet is the router's: an
/// echo to it is answered, from the port's unicast address on that subnet (RFC 4443 4.2: never
/// from the anycast address; the checksum follows), and a solicitation for it too, without the
/// override flag (RFC 4861 7.2.4: an anycast target).
#[test]
fn subnet_router_anycast_is_the_routers() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = echo6("2001:db8:1::7", "2001:db8:1::");
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::EchoReply), Action::Output(0)], "{:?}", r.actions);
    let h = valid(&f);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.src == ip6("2001:db8:1::1") && x.dst == ip6("2001:db8:1::7")), "{h:?}");
    // Also from behind the tenant router, and the tenant router's own subnet's.
    let mut f = echo6("2001:db8:1::7", "2001:db8:2::");
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.as_slice().first(), Some(&Action::Reply(ReplyKind::EchoReply)), "{:?}", r.actions);
    let h = valid(&f);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.src == ip6("2001:db8:2::1")), "{h:?}");
    // Errors about what was sent to it come from the unicast address too (RFC 4443 2.2 (b)).
    let mut f = udp6("2001:db8:1::7", "2001:db8:2::", 64, 12);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::PortUnreachable), "{r:?}");
    let h = valid(&out[..r.generated.expect("answered").len]);
    assert!(matches!(h.l3, L3::Ipv6(x) if x.src == ip6("2001:db8:2::1")), "{h:?}");

    let mut st = state();
    let mut f = ns("2001:db8:1::7", "2001:db8:1::", Some(OUTSIDE), 255);
    let r = run(&snap, &mut st, 0, &mut f, &mut out);
    let (_, na) = parse_na(&out[..r.generated.expect("an advertisement").len]);
    assert_eq!(
        na,
        Icmpv6Repr::NeighborAdvert {
            flags: crate::wire::NeighborFlags { router: true, solicited: true, override_entry: false },
            target_addr: "2001:db8:1::".parse().unwrap(),
            lladdr: Some(mac(1)),
        }
    );
}

/// IPv4 options, each padded to a multiple of 4 bytes: a loose and a strict source route through
/// 169.254.0.2 (what a sender would use to steer a packet via the tenant router), a record route
/// with room for two addresses, and router alert (RFC 2113) plus a timestamp.
const LSRR: [u8; 8] = [1, 131, 7, 4, 169, 254, 0, 2];
const SSRR: [u8; 8] = [1, 137, 7, 4, 169, 254, 0, 2];
const RECORD_ROUTE: [u8; 12] = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const ALERT_AND_TIMESTAMP: [u8; 12] = [148, 4, 0, 0, 68, 8, 5, 0, 0, 0, 0, 0];

/// RFC 1122 3.2.2.6: an echo request's record route and timestamp options come back with the
/// router's entry (its address, the worker's time with RFC 791's non-standard bit), so the reply
/// reports the round trip; other options come back as they came.
#[test]
fn echo_replies_record_route_and_timestamp() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    for (options, want) in [
        (&RECORD_ROUTE[..], &[7u8, 11, 8, 192, 0, 2, 1, 0, 0, 0, 0, 0][..]),
        (&ALERT_AND_TIMESTAMP[..], &[148, 4, 0, 0, 68, 8, 9, 0, 0x80, 0, 0, 5][..]),
    ] {
        let mut f = with_options(&echo4("192.0.2.7", "192.0.2.1"), options);
        let r = simulate(&snap, 0, &mut f, &mut state(), 5_000_000, &mut out);
        assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::EchoReply), Action::Output(0)], "{options:?}");
        let h = valid(&f);
        assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, .. }), "{h:?}");
        assert_eq!(&f[34..34 + options.len()], want, "{options:?}");
    }
}

/// `frame` (untagged IPv4) with `options` in its header.
fn with_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    crate::wire::insert_ipv4_options(&mut f, 14, options);
    f
}

/// RFC 7126 4.3 / 4.4: a router drops source-routed packets by default, silently, whatever would
/// have become of them (forwarded, answered with an ICMP error, echoed), fragments included; the
/// drop is cached (the options class is in the flow key).
#[test]
fn source_routed_packets_are_dropped_at_routers() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let later_fragment = {
        let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, false, 16);
        Ipv4Packet::new_unchecked(&mut f[14..34]).set_frag_offset(1480);
        f
    };
    let cases = [
        ("LSRR through both routers to the VM", udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20), &LSRR),
        ("SSRR through both routers to the VM", udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20), &SSRR),
        ("a later fragment, LSRR copied into it", later_fragment, &LSRR),
        ("an echo request to the uplink port", echo4("192.0.2.7", "192.0.2.1"), &LSRR),
        ("TTL 1: no time exceeded", udp4("192.0.2.7", "10.0.0.5", 1000, 1, true, 20), &LSRR),
        ("no route: no net unreachable", udp4("192.0.2.7", "10.9.0.5", 1000, 64, true, 20), &SSRR),
        ("a reject route: no unreachable", udp4("192.0.2.7", "198.18.0.1", 1000, 64, true, 20), &LSRR),
    ];
    for (what, plain, options) in cases {
        let mut f = with_options(&plain, options);
        let orig = f.clone();
        let r = run(&snap, &mut state(), 0, &mut f, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::SourceRouted), "{what}: {r:?}");
        assert!(r.cacheable, "{what}");
        assert!(r.generated.is_none(), "{what}: nothing answered");
        assert_eq!(f, orig, "{what}: untouched");
        let mut g = orig.clone();
        assert_eq!(apply(&snap, &r.actions, &mut g, &mut state(), 10), Err(DropReason::SourceRouted), "{what}");
    }
    // Without the option, the same packets go their ways.
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    assert_eq!(run(&snap, &mut state(), 0, &mut f, &mut out).actions.output(), Some(2));
    let mut f = echo4("192.0.2.7", "192.0.2.1");
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::EchoReply), Action::Output(0)]);
}

/// The source route is refused before the chains: a reject rule answers no source-routed packet.
#[test]
fn no_rule_answers_a_source_routed_packet() {
    let Topo { mut b, .. } = topo();
    let chain = b.add_chain(Uuid(900), "reject-all");
    b.add_new_rule(chain, Uuid(901), Condition::default(), RuleKind::Reject).unwrap();
    b.set_port_chains(PortId(0), Some(chain), None);
    let snap = b.build().unwrap();
    let mut out = [0u8; 1514];
    let mut f = with_options(&udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20), &LSRR);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::SourceRouted), "{r:?}");
    assert!(r.generated.is_none());
    let mut f = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleReject), "the rule applies to the rest");
    assert!(r.generated.is_some());
}

/// Options other than a source route are forwarded unchanged (RFC 7126: no drop by default;
/// record route and timestamp are not updated, as most routers do); the cached path writes the
/// same bytes, compiled hop included.
#[test]
fn other_options_are_forwarded_unchanged() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    for options in [&RECORD_ROUTE, &ALERT_AND_TIMESTAMP] {
        let orig = with_options(&udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20), options);
        let mut f = orig.clone();
        let mut st = state();
        let r = run(&snap, &mut st, 0, &mut f, &mut out);
        assert_eq!(r.actions.output(), Some(2), "{options:?}: {r:?}");
        assert!(r.cacheable && r.generated.is_none());
        let h = valid(&f);
        assert_eq!((h.eth_src, h.eth_dst), (mac(5), VM));
        let L3::Ipv4(fields) = h.l3 else { panic!() };
        assert_eq!((fields.ttl, fields.options), (62, Ipv4OptionsClass::Other));
        assert_eq!(&f[34..34 + options.len()], &options[..], "the options as they came");
        assert_eq!(&f[34 + options.len()..], &orig[34 + options.len()..], "and the payload");
        let key = FlowKey::from_frame(0, &orig).unwrap();
        let mut g = orig.clone();
        let compiled = CachedActions::compile(&r.actions, &key);
        assert!(matches!(compiled, CachedActions::Routed(_)), "{compiled:?}");
        let mut outer = Outer::NONE;
        assert_eq!(compiled.apply(&snap, &mut g, &mut st, 10, &mut outer), Ok(Applied::Local(2)));
        assert_eq!(g, f);
    }
}

/// Options that cannot be walked make a header the router cannot process: RFC 1812 4.3.3.5 has
/// it answer a parameter problem (code 0, RFC 792's pointer at the octet in error: the option's
/// type byte, as Linux points), from the router port the packet entered, whether it was to be
/// forwarded or for the router, counted `ipv4_bad_options` and never cached (the pointer is the
/// packet's own). The key keeps such packets apart from the flow of well-formed ones.
#[test]
fn unwalkable_options_are_answered_parameter_problem() {
    let snap = topo().b.build().unwrap();
    let mut out = [0u8; 1514];
    let bad: [(&[u8], u8); 4] = [
        (&[7, 1, 0, 0], 20),   // length below 2
        (&[7, 0, 0, 0], 20),   // length 0
        (&[1, 1, 7, 6], 22),   // past the header's end
        (&[1, 1, 1, 131], 23), // the length byte missing
    ];
    for (options, pointer) in bad {
        for plain in [udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20), echo4("192.0.2.7", "192.0.2.1")] {
            let mut f = with_options(&plain, options);
            let key = FlowKey::from_frame(0, &f).unwrap();
            assert_eq!(key.ipv4_options(), Ipv4OptionsClass::Unwalkable);
            assert_ne!(key, FlowKey::from_frame(0, &with_options(&plain, &RECORD_ROUTE)).unwrap());
            let orig = f.clone();
            let r = run(&snap, &mut state(), 0, &mut f, &mut out);
            assert_eq!(r.actions.drop_reason(), Some(DropReason::Ipv4BadOptions), "{options:?}: {r:?}");
            assert!(!r.cacheable, "{options:?}");
            let len = r.generated.expect("answered").len;
            check_icmp4_error(&out[..len], &orig, "192.0.2.1", Icmpv4Message::ParamProblem, 0);
            let h = valid(&out[..len]);
            let p = Icmpv4Packet::new_checked(&out[h.l4_offset..h.end]).unwrap();
            assert_eq!(p.pointer(), pointer, "{options:?}");
            assert_eq!(&p.data()[20..24], options, "the options quoted as they came");
        }
    }
    // Not about an ICMP error, nor to a source no host has (RFC 1812 4.3.2.7): dropped, unanswered.
    let mut f = with_options(&udp4("0.0.0.0", "10.0.0.5", 1000, 64, true, 20), &[1, 1, 1, 131]);
    let r = run(&snap, &mut state(), 0, &mut f, &mut out);
    assert!(r.generated.is_none(), "{r:?}");
}

/// What a worker does with a frame (pmd/pipeline.rs, without the batching): its key, a hit runs
/// the cached actions, a miss is simulated and installed when cacheable. Gives where the frame
/// went (a local port) and whether it hit.
fn through_cache(
    cache: &mut FlowCache<CachedActions>,
    snap: &Snapshot,
    st: &mut CoreState,
    frame: &mut [u8],
) -> (Result<u16, DropReason>, bool) {
    let (sent, hit) = sent_through_cache(cache, snap, st, IngressPoint::Local(0), frame);
    (sent.map(|(port, _)| port), hit)
}

/// [`through_cache`] for a frame that entered at `ingress` (a tunnel's: the inner frame, as
/// decapsulated), giving the DPDK port it left by (the underlay's for a tunnel) and the bytes
/// sent: the outer headers, then the frame from where it starts (after an 802.1Q tag a router
/// removed), as pmd sends them.
pub(super) fn sent_through_cache(
    cache: &mut FlowCache<CachedActions>,
    snap: &Snapshot,
    st: &mut CoreState,
    ingress: IngressPoint,
    frame: &[u8],
) -> (Result<(u16, Vec<u8>), DropReason>, bool) {
    let mut frame = frame.to_vec();
    let key = FlowKey::from_frame(ingress.flow_id(), &frame).unwrap();
    if let Some(cached) = cache.lookup(&key, 10, frame.len() as u32).copied() {
        let mut outer = Outer::NONE;
        let sent = cached.apply(snap, &mut frame, st, 10, &mut outer).map(|a| {
            let outer = if a.is_encap() { outer.as_bytes() } else { &[] };
            (a.dpdk_port(), [outer, &frame[a.frame_start()..]].concat())
        });
        return (sent, true);
    }
    let r = simulate_from(snap, ingress, &mut frame, st, 10, &mut [0u8; 1514]);
    if r.cacheable {
        cache.insert(&key, CachedActions::compile(&r.actions, &key), &TagSet::new(), 10);
    }
    let port = r.actions.output().or_else(|| r.actions.encap().and(snap.underlay().map(|u| u.dpdk_port)));
    let sent = match (r.actions.drop_reason(), port) {
        (Some(reason), _) => Err(reason),
        (None, Some(port)) => Ok((port, [r.outer.as_bytes(), &frame[r.frame_start()..]].concat())),
        (None, None) => panic!("neither sent nor dropped: {r:?}"),
    };
    (sent, false)
}

/// A flow installed by a packet without options never carries a source-routed packet of the same
/// addresses and ports, nor the other way round, untagged (compact key) or priority-tagged
/// (general key, where the options class alone tells them apart); a packet with other options is
/// a flow of its own too.
#[test]
fn cached_flows_keep_source_routed_packets_apart() {
    let snap = topo().b.build().unwrap();
    let config = FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() };
    let plain = udp4("192.0.2.7", "10.0.0.5", 1000, 64, true, 20);
    let routed = with_options(&plain, &LSRR);
    let recorded = with_options(&plain, &RECORD_ROUTE);
    for tag in [None, Some(5 << 13)] {
        let tagged = |f: &[u8]| tag.map_or_else(|| f.to_vec(), |tci| with_tag(f, tci));
        let (plain, routed, recorded) = (tagged(&plain), tagged(&routed), tagged(&recorded));
        // The plain packet first: forwarded, installed, hit again.
        let mut cache = FlowCache::new(&config, FlowHasher::new(1));
        let mut st = state();
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut plain.clone()), (Ok(2), false), "{tag:?}");
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut plain.clone()), (Ok(2), true), "{tag:?}");
        // The source-routed one misses the plain flow and is dropped; then its own drop hits.
        let sr = (Err(DropReason::SourceRouted), false);
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut routed.clone()), sr, "{tag:?}");
        let sr_hit = (Err(DropReason::SourceRouted), true);
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut routed.clone()), sr_hit, "{tag:?}");
        // The record-routed one is a flow of its own, forwarded.
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut recorded.clone()), (Ok(2), false), "{tag:?}");
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut plain.clone()), (Ok(2), true), "{tag:?}");

        // The other way round: the source-routed drop installed first does not drop the others.
        let mut cache = FlowCache::new(&config, FlowHasher::new(2));
        let mut st = state();
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut routed.clone()), sr, "{tag:?}");
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut plain.clone()), (Ok(2), false), "{tag:?}");
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut recorded.clone()), (Ok(2), false), "{tag:?}");
        assert_eq!(through_cache(&mut cache, &snap, &mut st, &mut routed.clone()), sr_hit, "{tag:?}");
    }
}
