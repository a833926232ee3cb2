//! Bridges in the simulation: learning, aging, static entries, flooding, router <-> bridge links.

use core::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::*;
use crate::chain::{Condition, Field, RuleKind};
use crate::topology::{Route, RouterId, SnapshotBuilder, Uuid};
use crate::wire::{ArpRepr, EthernetRepr, IpProtocol, Ipv4Repr, PseudoHeader, UdpPacket, UdpRepr};

const UP_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const RB_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 5]);
const OUTSIDE_GW: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 0xfe]);
const VM_A: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 0xa]);
const VM_B: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 0xb]);
const STATIC: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 0x5]);
const AGING: u64 = 1000;

/// Router R: `up` 192.0.2.1/24 on DPDK 0 (default via 192.0.2.254), `rb` 10.0.0.1/24 linked to
/// bridge B's port `b_r`. B: `b1` on DPDK 1, `b2` on DPDK 2, `b3` on DPDK 3, STATIC -> `b3`.
struct Net {
    b: SnapshotBuilder,
    bridge: BridgeId,
    rb: PortId,
    b_r: PortId,
    b1: PortId,
    b2: PortId,
    b3: PortId,
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn topo() -> Net {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), UP_MAC, &[net("192.0.2.1/24")]);
    let rb = b.add_router_port(r, Uuid(3), RB_MAC, &[net("10.0.0.1/24")]);
    let bridge = b.add_bridge(Uuid(10));
    let b_r = b.add_bridge_port(bridge, Uuid(11));
    let b1 = b.add_bridge_port(bridge, Uuid(12));
    let b2 = b.add_bridge_port(bridge, Uuid(13));
    let b3 = b.add_bridge_port(bridge, Uuid(14));
    b.link(rb, b_r);
    b.bind_local(up, 0);
    b.bind_local(b1, 1);
    b.bind_local(b2, 2);
    b.bind_local(b3, 3);
    b.add_static_mac(bridge, STATIC, b3);
    let any = net("0.0.0.0/0");
    b.add_route(r, Route::normal(Uuid(4), any, any, up, Some("192.0.2.254".parse().unwrap()), 1));
    Net { b, bridge, rb, b_r, b1, b2, b3 }
}

fn state() -> CoreState {
    let mut s =
        CoreState::new(&CoreConfig { mac_aging: AGING, neighbour_lifetime: 10 * AGING, ..CoreConfig::default() });
    s.neighbours.learn(PortId(0), "192.0.2.254".parse().unwrap(), OUTSIDE_GW, 0);
    s
}

/// The local DPDK ports of `legs` (panics on a tunnel leg).
pub(super) fn locals(legs: &Legs) -> Vec<u16> {
    legs.as_slice()
        .iter()
        .map(|l| match l {
            Leg::Local(p) => *p,
            Leg::Tunnel { .. } => panic!("tunnel leg in {legs:?}"),
        })
        .collect()
}

fn l2(src: EthernetAddress, dst: EthernetAddress) -> Vec<u8> {
    udp(src, dst, "10.0.0.5", "10.0.0.6", 64)
}

fn udp(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: &str, dst: &str, ttl: u8) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = vec![0x11u8; 14 + 20 + 8 + 10];
    EthernetRepr { src_addr: src_mac, dst_addr: dst_mac, vlan: None, ethertype: EtherType::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: 18,
        ttl,
        tos: 0,
        ident: 9,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    UdpRepr { src_port: 4000, dst_port: 53 }.emit(&mut u, 10);
    u.fill_checksum(&PseudoHeader::V4 { src, dst });
    f
}

fn arp_request_from(mac: EthernetAddress, spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    EthernetRepr { src_addr: mac, dst_addr: EthernetAddress::BROADCAST, vlan: None, ethertype: EtherType::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: spa.parse().unwrap(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: tpa.parse().unwrap(),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// Simulates, and when cacheable checks that `apply` on a fresh copy gives the same bytes.
fn sim(snap: &Snapshot, st: &mut CoreState, port: u16, f: &mut [u8], now: u64, out: &mut [u8]) -> SimResult {
    let orig = f.to_vec();
    let r = simulate(snap, port, f, st, now, out);
    if r.cacheable && r.actions.drop_reason().is_none() {
        let mut g = orig;
        let applied = apply(snap, &r.actions, &mut g, st, now);
        assert_eq!(applied, Ok(Output { dpdk_port: r.actions.output().unwrap(), outer: r.outer }));
        assert_eq!(g, f, "apply == simulate");
    }
    r
}

#[test]
fn unknown_unicast_floods_to_all_other_ports_and_learns() {
    let Net { b, bridge, b1, b2, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = l2(VM_A, VM_B);
    let orig = f.clone();
    let r = sim(&snap, &mut st, 1, &mut f, 10, &mut out);
    assert_eq!(locals(&r.flood), &[2, 3]);
    assert!(!r.cacheable);
    assert_eq!(r.actions.as_slice().last(), Some(&Action::Flood));
    assert_eq!(f, orig, "bridging does not touch the frame");
    assert!(r.deps.contains(DeviceId::Bridge(bridge)));
    assert_eq!(st.macs.lookup(bridge, VM_A, 10), Some(b1));

    // B answers: known unicast to A's port, cacheable, learning B.
    let mut f = l2(VM_B, VM_A);
    let r = sim(&snap, &mut st, 2, &mut f, 20, &mut out);
    assert!(r.cacheable);
    assert_eq!(r.actions.as_slice(), &[Action::Learn(b2), Action::Output(1)]);
    assert!(r.flood.is_empty());
    assert_eq!(st.macs.lookup(bridge, VM_B, 20), Some(b2));

    // Broadcast floods too, never back to the ingress.
    let mut f = l2(VM_B, EthernetAddress::BROADCAST);
    let r = sim(&snap, &mut st, 2, &mut f, 20, &mut out);
    assert_eq!(locals(&r.flood), &[1, 3]);
}

#[test]
fn static_entries_win_and_same_port_drops() {
    let Net { b, bridge, b1, b3, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    // STATIC shows up on DPDK 1: learned there, but the static entry still wins.
    let mut f = l2(STATIC, VM_B);
    sim(&snap, &mut st, 1, &mut f, 10, &mut out);
    assert_eq!(st.macs.lookup(bridge, STATIC, 10), Some(b1));
    let mut f = l2(VM_B, STATIC);
    let r = sim(&snap, &mut st, 2, &mut f, 11, &mut out);
    assert_eq!(r.actions.output(), Some(3));
    assert!(r.deps.contains(DeviceId::Port(b3)));
    // A frame to a MAC behind its own ingress port is dropped (and may be cached).
    let mut f = l2(STATIC, VM_B);
    sim(&snap, &mut st, 2, &mut f, 12, &mut out);
    let mut f = l2(STATIC, VM_B);
    let r = sim(&snap, &mut st, 2, &mut f, 12, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::SameBridgePort));
}

#[test]
fn learned_entries_age_and_cached_flows_refresh_them() {
    let Net { b, bridge, b1, b2, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = l2(VM_A, VM_B);
    sim(&snap, &mut st, 1, &mut f, 0, &mut out);
    let mut f = l2(VM_B, VM_A);
    let r = sim(&snap, &mut st, 2, &mut f, 0, &mut out);
    let cached = r.actions;
    // Without traffic from A its entry ages out: traffic to A floods again.
    let mut f = l2(VM_B, VM_A);
    let r = sim(&snap, &mut st, 2, &mut f, AGING + 1, &mut out);
    assert_eq!(locals(&r.flood), &[1, 3]);
    // B's flow, replayed from the cache, keeps B learned past the aging time of its simulation.
    for t in [AGING / 2, AGING, AGING + AGING / 2, 2 * AGING] {
        let mut f = l2(VM_B, VM_A);
        assert_eq!(apply(&snap, &cached, &mut f, &mut st, t), Ok(Output::local(1)));
    }
    assert_eq!(st.macs.lookup(bridge, VM_B, 2 * AGING + 1), Some(b2));
    assert_eq!(st.macs.lookup(bridge, VM_A, 2 * AGING + 1), None);
    // A moves to port 3: the bridge is reported for invalidation.
    assert!(st.macs.take_moved().is_empty());
    let mut f = l2(VM_B, VM_A);
    let cached_to_b = simulate(&snap, 2, &mut f, &mut st, 2 * AGING, &mut out);
    assert!(cached_to_b.flood.len() == 2);
    let mut f = l2(VM_A, VM_B);
    sim(&snap, &mut st, 1, &mut f, 2 * AGING, &mut out);
    assert!(st.macs.take_moved().is_empty(), "A came back on its old port");
    let mut f = l2(VM_A, VM_B);
    sim(&snap, &mut st, 3, &mut f, 2 * AGING + 1, &mut out);
    assert!(st.macs.take_moved().contains(DeviceId::Bridge(bridge)));
    assert_ne!(st.macs.lookup(bridge, VM_A, 2 * AGING + 2), Some(b1));
}

#[test]
fn arp_for_the_router_port_floods_and_is_answered() {
    let Net { b, rb, b_r, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = arp_request_from(VM_A, "10.0.0.5", "10.0.0.1");
    let r = sim(&snap, &mut st, 1, &mut f, 5, &mut out);
    assert_eq!(locals(&r.flood), &[2, 3], "the other VMs see the broadcast");
    assert!(r.deps.contains(DeviceId::Port(b_r)) && r.deps.contains(DeviceId::Port(rb)));
    let g = r.generated.expect("ARP reply");
    assert_eq!(g.legs, Legs::one(Leg::Local(1)));
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    let L3::Arp(a) = h.l3 else { panic!("{h:?}") };
    assert_eq!(a.operation, ArpOperation::Reply);
    assert_eq!((a.source_hardware_addr, a.source_protocol_addr), (RB_MAC, Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!((a.target_hardware_addr, a.target_protocol_addr), (VM_A, Ipv4Addr::new(10, 0, 0, 5)));
    // The router learned the VM.
    assert_eq!(st.neighbours.lookup(rb, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), 6), Some(VM_A));
    // An ARP request for another VM reaches only the other ports, without an answer.
    let mut f = arp_request_from(VM_A, "10.0.0.5", "10.0.0.6");
    let r = sim(&snap, &mut st, 1, &mut f, 5, &mut out);
    assert!(r.generated.is_none());
    assert_eq!(locals(&r.flood), &[2, 3]);
}

#[test]
fn vm_to_uplink_through_the_router_behind_the_bridge() {
    let Net { b, bridge, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 64);
    let orig = f.clone();
    let r = sim(&snap, &mut st, 1, &mut f, 5, &mut out);
    assert!(r.cacheable, "{r:?}");
    assert_eq!(r.actions.output(), Some(0));
    assert!(r.deps.contains(DeviceId::Bridge(bridge)) && r.deps.contains(DeviceId::Router(RouterId(0))));
    let h = Headers::parse(&f).unwrap();
    h.verify_checksums(&f).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (UP_MAC, OUTSIDE_GW));
    assert!(matches!(h.l3, L3::Ipv4(x) if x.ttl == 63));
    assert_eq!(f[34..], orig[34..]);
    // An echo request to the router port is answered back out of the VM's port.
    let mut e = super::tests::echo4_between(VM_A, RB_MAC, "10.0.0.5", "10.0.0.1");
    let r = sim(&snap, &mut st, 1, &mut e, 5, &mut out);
    assert_eq!(r.actions.output(), Some(1));
    let h = Headers::parse(&e).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, .. }));
}

/// A bridge does not look at IP options: a source-routed packet between two of its ports is
/// forwarded unchanged (cached, and a flow of its own); the router behind it drops one, as any
/// router does (RFC 7126 4.3 / 4.4).
#[test]
fn bridges_forward_source_routed_packets_and_the_router_behind_drops_them() {
    let mut out = [0u8; 1514];
    let (r, f, orig) = bridged_then_routed_with_options(&[1, 131, 7, 4, 10, 0, 0, 1], &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::SourceRouted), "{r:?}");
    assert!(r.cacheable && r.generated.is_none(), "{r:?}");
    assert_eq!(f, orig);
}

/// VM_A learned on b1 (DPDK 1), then VM_B's frame to it with IPv4 `options` checked to be bridged
/// there as it came (and cacheable); then VM_A's UDP packet with the same options through the
/// router behind the bridge: its result, the packet after it and as it was sent (an answer is in
/// `out`).
fn bridged_then_routed_with_options(options: &[u8], out: &mut [u8]) -> (SimResult, Vec<u8>, Vec<u8>) {
    let Net { b, bridge, b1, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut f = l2(VM_A, VM_B);
    sim(&snap, &mut st, 1, &mut f, 5, out);
    assert_eq!(st.macs.lookup(bridge, VM_A, 5), Some(b1));
    let mut f = l2(VM_B, VM_A);
    crate::wire::insert_ipv4_options(&mut f, 14, options);
    let orig = f.clone();
    let r = sim(&snap, &mut st, 2, &mut f, 6, out);
    assert_eq!(r.actions.output(), Some(1), "{r:?}");
    assert!(r.cacheable);
    assert_eq!(f, orig, "bridged as it came");
    let mut f = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 64);
    crate::wire::insert_ipv4_options(&mut f, 14, options);
    let orig = f.clone();
    let r = sim(&snap, &mut st, 1, &mut f, 7, out);
    (r, f, orig)
}

/// Nor does a bridge walk IP options: a frame whose options cannot be walked is bridged as it came
/// (cached: the class is in the key); the router behind the bridge answers it a parameter problem
/// (RFC 1812 4.3.3.5) from its port on the bridge, back out of the bridge port it came in by.
#[test]
fn bridges_forward_unwalkable_options_and_the_router_behind_answers() {
    let mut out = [0u8; 1514];
    let (r, _, orig) = bridged_then_routed_with_options(&[1, 1, 1, 131], &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::Ipv4BadOptions), "{r:?}");
    assert!(!r.cacheable, "{r:?}");
    let g = r.generated.expect("answered");
    assert_eq!(g.legs.as_slice(), &[Leg::Local(1)]);
    let e = &out[..g.len];
    let h = Headers::parse(e).unwrap();
    h.verify_checksums(e).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    let L3::Ipv4(ip) = h.l3 else { panic!("{h:?}") };
    assert_eq!((ip.src.to_string(), ip.dst.to_string()), ("10.0.0.1".into(), "10.0.0.5".into()));
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::ParamProblem, code: 0, .. }), "{h:?}");
    assert_eq!(e[h.l4_offset + 4], 23, "the pointer: the option without its length byte");
    assert_eq!(&e[h.l4_offset + 8..], &orig[14..], "the packet quoted whole");
}

/// A bridge is a layer-2 device: it forwards a frame as it came, 802.1Q tag and all (a priority
/// tag or a VLAN's: it is VLAN-unaware), simulated or from the cache. Only a router writes a new
/// layer-2 header, untagged.
#[test]
fn a_bridge_forwards_tagged_frames_with_their_tag() {
    use super::tests::{sent_through_cache, with_tag};
    use crate::flow::{FlowCache, FlowCacheConfig, FlowHasher};
    let Net { b, bridge, b2, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    st.macs.learn(bridge, VM_B, b2, 0);
    let mut cache = FlowCache::new(&FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() }, FlowHasher::new(1));
    for tci in [5 << 13, 0, 42] {
        let f = with_tag(&l2(VM_A, VM_B), tci);
        for round in 0..2 {
            let got = sent_through_cache(&mut cache, &snap, &mut st, IngressPoint::Local(1), &f);
            assert_eq!(got, (Ok((2, f.clone())), round == 1), "TCI {tci:#06x}, round {round}");
        }
    }
}

/// A VM's frame in a VLAN reaches the router port behind the bridge (the bridge is VLAN-unaware
/// and passes it) and goes no further: routed, it would leave its VLAN.
#[test]
fn a_vms_vlan_ends_at_the_router_port_behind_the_bridge() {
    let Net { b, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = super::tests::with_tag(&udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 64), 42);
    let r = sim(&snap, &mut st, 1, &mut f, 5, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::VlanAtRouterPort), "{r:?}");
    assert!(r.cacheable, "{r:?}");
}

#[test]
fn uplink_to_vm_resolves_on_the_bridge_then_unicasts() {
    let Net { b, rb, b1, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    // Next hop unknown: an ARP request from the router port flooded to the bridge's exterior ports.
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 64);
    let r = sim(&snap, &mut st, 0, &mut f, 5, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
    let g = r.generated.unwrap();
    assert_eq!(locals(&g.legs), &[1, 2, 3]);
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, EthernetAddress::BROADCAST));
    assert!(matches!(h.l3, L3::Arp(a) if a.target_protocol_addr == Ipv4Addr::new(10, 0, 0, 5)));
    // The VM answers on DPDK 1 (unicast to the router port MAC, through the bridge).
    let mut reply = vec![0u8; 42];
    EthernetRepr { src_addr: VM_A, dst_addr: RB_MAC, vlan: None, ethertype: EtherType::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut reply[..]));
    ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: VM_A,
        source_protocol_addr: "10.0.0.5".parse().unwrap(),
        target_hardware_addr: RB_MAC,
        target_protocol_addr: "10.0.0.1".parse().unwrap(),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut reply[14..]));
    let r = sim(&snap, &mut st, 1, &mut reply, 6, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::ArpConsumed));
    assert_eq!(st.neighbours.lookup(rb, "10.0.0.5".parse().unwrap(), 6), Some(VM_A));
    // Now routed and bridged straight to the VM's port, cacheable.
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 64);
    let r = sim(&snap, &mut st, 0, &mut f, 7, &mut out);
    assert!(r.cacheable);
    assert_eq!(r.actions.output(), Some(1));
    assert!(r.deps.contains(DeviceId::Port(b1)));
    let h = Headers::parse(&f).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    assert!(matches!(h.l3, L3::Ipv4(x) if x.ttl == 63));
    // Once the VM's MAC ages out of the bridge (the neighbour entry lives longer), the routed
    // frame is flooded, rewritten, to the exterior ports.
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 64);
    let r = sim(&snap, &mut st, 0, &mut f, AGING + 10, &mut out);
    assert_eq!(locals(&r.flood), &[1, 2, 3]);
    let h = Headers::parse(&f).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    assert!(matches!(h.l3, L3::Ipv4(x) if x.ttl == 63));
    // TTL 1 is answered with time exceeded from the router port on the uplink.
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1);
    let r = sim(&snap, &mut st, 0, &mut f, 7, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TtlExpired));
    assert_eq!(r.generated.unwrap().legs, Legs::one(Leg::Local(0)));
}

/// A routed frame a bridge floods (the router knows the VM's MAC, the bridge not where it is) is
/// the router's output all the same: a priority-tagged one goes out of every leg untagged, as the
/// same frame without the tag does.
#[test]
fn a_routed_flood_of_a_priority_tagged_frame_is_untagged() {
    let Net { b, rb, .. } = topo();
    let snap = b.build().unwrap();
    let mut st = state();
    st.neighbours.learn(rb, "10.0.0.5".parse().unwrap(), VM_A, 0);
    let mut out = [0u8; 1514];
    let plain = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 64);
    let mut want = plain.clone();
    let w = sim(&snap, &mut st, 0, &mut want, 5, &mut out);
    assert_eq!((locals(&w.flood), w.frame_start()), (vec![1, 2, 3], 0), "{w:?}");
    let mut f = super::tests::with_tag(&plain, 5 << 13);
    let r = sim(&snap, &mut st, 0, &mut f, 5, &mut out);
    assert_eq!((locals(&r.flood), r.frame_start()), (vec![1, 2, 3], 4), "{r:?}");
    assert_eq!(f[4..], want[..]);
}

#[test]
fn bridge_and_port_chains_filter() {
    let Net { mut b, bridge, b3, .. } = topo();
    let drop_to_6 = b.add_chain(Uuid(50), "bridge-in");
    let cond = Condition { dst: Some(Field::is(net("10.0.0.66/32"))), ..Condition::default() };
    b.add_new_rule(drop_to_6, Uuid(51), cond, RuleKind::Drop).unwrap();
    b.set_bridge_chains(bridge, Some(drop_to_6), None);
    let not_out_3 = b.add_chain(Uuid(52), "b3-out");
    b.add_new_rule(not_out_3, Uuid(53), Condition::default(), RuleKind::Drop).unwrap();
    b.set_port_chains(b3, None, Some(not_out_3));
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = udp(VM_A, VM_B, "10.0.0.5", "10.0.0.66", 64);
    let r = sim(&snap, &mut st, 1, &mut f, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop));
    assert!(r.cacheable && r.deps.contains(DeviceId::Chain(drop_to_6)));
    // Port 3's outbound chain drops everything: floods skip it, unicast to it drops.
    let mut f = l2(VM_A, VM_B);
    let r = sim(&snap, &mut st, 1, &mut f, 1, &mut out);
    assert_eq!(locals(&r.flood), &[2]);
    let mut f = l2(VM_A, STATIC);
    let r = sim(&snap, &mut st, 1, &mut f, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop));
}

#[test]
fn flood_legs_are_bounded() {
    let mut b = SnapshotBuilder::new(1);
    let bridge = b.add_bridge(Uuid(1));
    for i in 0..(MAX_LEGS as u16 + 3) {
        let p = b.add_bridge_port(bridge, Uuid(100 + u128::from(i)));
        b.bind_local(p, i);
    }
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let mut f = l2(VM_A, EthernetAddress::BROADCAST);
    let r = sim(&snap, &mut st, 0, &mut f, 1, &mut out);
    assert_eq!(r.flood.len(), MAX_LEGS);
    assert_eq!(r.dropped_legs, 2);
    assert!(!locals(&r.flood).contains(&0));
}

#[test]
fn bridges_know_the_router_port_macs_behind_them() {
    let Net { b, bridge, b_r, .. } = topo();
    let snap = b.build().unwrap();
    let br = snap.bridge(bridge);
    assert_eq!(br.router_port(RB_MAC), Some(b_r));
    assert_eq!(br.router_port(UP_MAC), None, "not linked to this bridge");
    assert_eq!(br.router_macs.len(), 1);
}

/// `udp` with the ports swapped (53 -> 4000): the reply of `udp` from the other side.
fn udp_reply(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: &str, dst: &str) -> Vec<u8> {
    let mut f = udp(src_mac, dst_mac, src, dst, 64);
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    u.set_src_port(53);
    u.set_dst_port(4000);
    let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
    u.fill_checksum(&PseudoHeader::V4 { src, dst });
    f
}

#[test]
fn stateful_bridge_chain_tracks_connections_through_floods_and_unicast() {
    let Net { mut b, bridge, b1, .. } = topo();
    // The bridge's inbound chain: accept return flows, accept what comes from b1, drop the rest.
    let c = b.add_chain(Uuid(60), "stateful");
    let ret = Condition { flow: Some(crate::chain::FlowDirection::Return), ..Condition::default() };
    b.add_new_rule(c, Uuid(61), ret, RuleKind::Accept).unwrap();
    let from_b1 = Condition { in_ports: Some(Field::is(vec![b1].into_boxed_slice())), ..Condition::default() };
    b.add_new_rule(c, Uuid(62), from_b1, RuleKind::Accept).unwrap();
    b.add_new_rule(c, Uuid(63), Condition::default(), RuleKind::Drop).unwrap();
    b.set_bridge_chains(bridge, Some(c), None);
    let snap = b.build().unwrap();
    let mut st = state();
    let mut out = [0u8; 1514];
    let zone = conntrack_zone(&snap, DeviceId::Bridge(bridge)).unwrap();

    // B speaks first: dropped, not cached; B's MAC is not learned (the chain runs first).
    let mut f = udp_reply(VM_B, VM_A, "10.0.0.6", "10.0.0.5");
    let r = sim(&snap, &mut st, 2, &mut f, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::RuleDrop));
    assert!(!r.cacheable);

    // A to B, B unknown: flooded (never cached), and the connection is recorded at the bridge.
    let mut f = udp(VM_A, VM_B, "10.0.0.5", "10.0.0.6", 64);
    let r = sim(&snap, &mut st, 1, &mut f, 2, &mut out);
    assert_eq!(locals(&r.flood), &[2, 3]);
    assert!(r.actions.as_slice().contains(&Action::Track { zone, reverse: true }), "{:?}", r.actions);
    assert_eq!(st.conntrack.len(2), 1);

    // B's reply now passes, unicast to the learned A, cacheable with its refresh.
    let mut f = udp_reply(VM_B, VM_A, "10.0.0.6", "10.0.0.5");
    let r = sim(&snap, &mut st, 2, &mut f, 3, &mut out);
    assert_eq!(r.actions.output(), Some(1), "{:?}", r.actions);
    assert!(r.cacheable);
    assert!(r.actions.as_slice().contains(&Action::Track { zone, reverse: false }));

    // Not a reply (the original direction's ports from B): still dropped.
    let mut f = udp(VM_B, VM_A, "10.0.0.6", "10.0.0.5", 64);
    assert_eq!(sim(&snap, &mut st, 2, &mut f, 3, &mut out).actions.drop_reason(), Some(DropReason::RuleDrop));
}

/// A routed packet the bridge floods (the next hop's MAC aged out of the bridge, or was never
/// learned there) gets the egress MTU check and the frag needed answer a unicast to a learned
/// MAC gets, against the smallest MTU of the flood's legs.
#[test]
fn routed_floods_check_the_egress_mtu() {
    let Net { b, bridge, rb, b1, .. } = topo();
    let snap = b.build().unwrap();
    let mut out = [0u8; 1514];
    let routed = || udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 64); // 38 bytes of IP, DF
    let with_mtus = |mtus: [u16; 3]| {
        let mut st = state();
        for (p, mtu) in (1..=3).zip(mtus) {
            st.set_mtu(p, mtu);
        }
        st.neighbours.learn(rb, "10.0.0.5".parse().unwrap(), VM_A, 0);
        st
    };
    // One leg too small: the whole flood is refused, answered from the router's ingress port.
    let mut st = with_mtus([1500, 30, 1500]);
    let mut f = routed();
    let r = sim(&snap, &mut st, 0, &mut f, 5, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TooBig), "flooded {:?} to {:?}", r.actions, r.flood);
    assert!(r.flood.is_empty() && !r.cacheable);
    let g = r.generated.expect("frag needed");
    assert!(g.icmp_error);
    assert_eq!(g.legs, Legs::one(Leg::Local(0)));
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert!(
        matches!(h.l3, L3::Ipv4(x) if x.src == Ipv4Addr::new(192, 0, 2, 1) && x.dst == Ipv4Addr::new(198, 51, 100, 9))
    );
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::DstUnreachable, code: 4, .. }));
    assert_eq!(Icmpv4Packet::new_checked(&out[h.l4_offset..h.end]).unwrap().next_hop_mtu(), 30);

    // Room on every leg: flooded, with the check in the list.
    let mut st = with_mtus([1500, 38, 1400]);
    let mut f = routed();
    let r = sim(&snap, &mut st, 0, &mut f, 5, &mut out);
    assert_eq!(locals(&r.flood), &[1, 2, 3]);
    assert!(r.actions.as_slice().contains(&Action::CheckMtu(38)), "{:?}", r.actions);

    // The same packet to the learned MAC: the unicast leg's MTU alone.
    let mut st = with_mtus([30, 1500, 1500]);
    st.macs.learn(bridge, VM_A, b1, 0);
    let mut f = routed();
    let r = sim(&snap, &mut st, 0, &mut f, 5, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TooBig));
    assert!(r.generated.is_some());

    // A bridged (not routed) frame is never checked: a bridge does not answer.
    let mut st = with_mtus([30, 30, 30]);
    let mut f = l2(VM_A, VM_B);
    let r = sim(&snap, &mut st, 1, &mut f, 5, &mut out);
    assert_eq!(locals(&r.flood), &[2, 3]);
}

/// `traversed-device` in a bridge's chain: the router a packet was routed by, and the bridge
/// itself, are on its path; a frame bridged between VMs crossed no router.
#[test]
fn bridge_chains_see_the_devices_traversed() {
    let Net { mut b, bridge, rb, b1, .. } = topo();
    let c = b.add_chain(Uuid(30), "b-out");
    let routed = Condition { traversed_device: Some(Field::is(DeviceId::Router(RouterId(0)))), ..Condition::default() };
    b.add_new_rule(c, Uuid(31), routed, RuleKind::Drop).unwrap();
    b.set_bridge_chains(bridge, None, Some(c));
    let snap = b.build().unwrap();
    let mut st = state();
    st.neighbours.learn(rb, "10.0.0.5".parse().unwrap(), VM_A, 0);
    st.macs.learn(bridge, VM_A, b1, 0);
    let mut out = [0u8; 1514];
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 64);
    assert_eq!(sim(&snap, &mut st, 0, &mut f, 5, &mut out).actions.drop_reason(), Some(DropReason::RuleDrop));
    let mut f = l2(VM_B, VM_A);
    assert_eq!(sim(&snap, &mut st, 2, &mut f, 5, &mut out).actions.output(), Some(1));
}
