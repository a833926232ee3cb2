//! Tunnels in the simulation: encapsulation bytes against RFC 7348 / RFC 2890, decapsulation
//! checks, underlay ARP, MTU, floods and answers through tunnels.

use core::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::bridge_tests::locals;
use super::tests::echo4_between;
use super::*;
use crate::topology::{Encap, Route, SnapshotBuilder, Underlay, Uuid};
use crate::wire::{
    ArpRepr, EthernetRepr, GrePacket, IpProtocol, Ipv4Repr, PseudoHeader, UdpPacket, UdpRepr, VxlanPacket,
};

const UP_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const RB_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 5]);
const OUTSIDE_GW: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 0xfe]);
const UNDERLAY_MAC: EthernetAddress = EthernetAddress([0x02, 0x55, 0, 0, 0, 1]);
const HOST1_MAC: EthernetAddress = EthernetAddress([0x02, 0x77, 0, 0, 0, 11]);
const UNDERLAY_GW_MAC: EthernetAddress = EthernetAddress([0x02, 0x77, 0, 0, 0, 0xfe]);
const VM_A: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 0xa]);
const UNDERLAY_DPDK: u16 = 5;
const KEY1: u32 = 0x0a0101;
const KEY2: u32 = 0x0a0102;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Router R: `up` 192.0.2.1/24 on DPDK 0 (default via 192.0.2.254), `rb` 10.0.0.1/24 linked to
/// bridge B. B: `vm1` bound on host1 (VXLAN, 192.168.7.11, on the underlay subnet) with KEY1,
/// `vm2` on host2 (GRE, 10.9.0.12, behind the underlay gateway) with KEY2. Underlay: DPDK 5,
/// 192.168.7.1/24, gateway 192.168.7.254.
struct Net {
    snap: Snapshot,
    rb: PortId,
    vm1: PortId,
    vm2: PortId,
}

fn topo() -> Net {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), UP_MAC, &[net("192.0.2.1/24")]);
    let rb = b.add_router_port(r, Uuid(3), RB_MAC, &[net("10.0.0.1/24")]);
    let bridge = b.add_bridge(Uuid(10));
    let b_r = b.add_bridge_port(bridge, Uuid(11));
    let vm1 = b.add_bridge_port(bridge, Uuid(12));
    let vm2 = b.add_bridge_port(bridge, Uuid(13));
    let host1 = b.add_host(Uuid(20), "192.168.7.11".parse().unwrap(), Encap::Vxlan);
    let host2 = b.add_host(Uuid(21), "10.9.0.12".parse().unwrap(), Encap::Gre);
    b.link(rb, b_r);
    b.bind_local(up, 0);
    b.bind_remote(vm1, host1, KEY1);
    b.bind_remote(vm2, host2, KEY2);
    b.set_underlay(Underlay {
        gateway: Some(v4("192.168.7.254")),
        ..Underlay::new(UNDERLAY_DPDK, v4("192.168.7.1"), 24)
    });
    let any = net("0.0.0.0/0");
    b.add_route(r, Route::normal(Uuid(4), any, any, up, Some("192.0.2.254".parse().unwrap()), 1));
    Net { snap: b.build().unwrap(), rb, vm1, vm2 }
}

/// Knows the outside gateway, both underlay next hops, VM_A behind `vm1` at 10.0.0.5.
fn state(n: &Net) -> CoreState {
    let mut s = CoreState::new(&CoreConfig::default());
    s.set_port_mac(UNDERLAY_DPDK, UNDERLAY_MAC);
    s.neighbours.learn(PortId(0), "192.0.2.254".parse().unwrap(), OUTSIDE_GW, 0);
    s.neighbours.learn(UNDERLAY_PORT, "192.168.7.11".parse().unwrap(), HOST1_MAC, 0);
    s.neighbours.learn(UNDERLAY_PORT, "192.168.7.254".parse().unwrap(), UNDERLAY_GW_MAC, 0);
    s.neighbours.learn(n.rb, "10.0.0.5".parse().unwrap(), VM_A, 0);
    s.macs.learn(BridgeId(0), VM_A, n.vm1, 0);
    s
}

fn udp(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: &str,
    dst: &str,
    sport: u16,
    payload: usize,
) -> Vec<u8> {
    let (src, dst) = (v4(src), v4(dst));
    let mut f = vec![0x33u8; 14 + 20 + 8 + payload];
    EthernetRepr { src_addr: src_mac, dst_addr: dst_mac, vlan: None, ethertype: EtherType::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload,
        ttl: 64,
        tos: 0,
        ident: 3,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    UdpRepr { src_port: sport, dst_port: 80 }.emit(&mut u, payload);
    u.fill_checksum(&PseudoHeader::V4 { src, dst });
    f
}

/// A VXLAN packet from `outer_src` to the underlay address carrying `inner` with `vni`.
fn vxlan(outer_src: &str, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 50];
    EthernetRepr { src_addr: HOST1_MAC, dst_addr: UNDERLAY_MAC, vlan: None, ethertype: EtherType::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: v4(outer_src),
        dst_addr: v4("192.168.7.1"),
        protocol: IpProtocol::Udp,
        payload_len: 16 + inner.len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    f[34..36].copy_from_slice(&50000u16.to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
    f[42] = 0x08;
    f[46..49].copy_from_slice(&vni.to_be_bytes()[1..]);
    f.extend_from_slice(inner);
    f
}

/// A GRE packet (key, 0x6558) from `outer_src` to the underlay address.
fn gre(outer_src: &str, key: u32, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    EthernetRepr { src_addr: UNDERLAY_GW_MAC, dst_addr: UNDERLAY_MAC, vlan: None, ethertype: EtherType::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: v4(outer_src),
        dst_addr: v4("192.168.7.1"),
        protocol: IpProtocol::Gre,
        payload_len: 8 + inner.len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    f[34..36].copy_from_slice(&[0x20, 0x00]);
    f[36..38].copy_from_slice(&[0x65, 0x58]);
    f[38..42].copy_from_slice(&key.to_be_bytes());
    f.extend_from_slice(inner);
    f
}

/// The outer headers followed by the frame.
fn sent(r: &SimResult, frame: &[u8]) -> Vec<u8> {
    [r.outer.as_bytes(), frame].concat()
}

#[test]
fn vxlan_encapsulation_follows_rfc_7348_and_apply_matches() {
    let n = topo();
    let mut st = state(&n);
    let mut out = [0u8; 1514];
    let orig = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1234, 30);
    let mut f = orig.clone();
    let r = simulate(&n.snap, 0, &mut f, &mut st, 1, &mut out);
    assert!(r.cacheable, "{r:?}");
    let Some(&Action::Encap { port, sport }) = r.actions.as_slice().last() else { panic!("{r:?}") };
    assert_eq!(port, n.vm1);
    assert!(sport >= VXLAN_SPORT_MIN);
    let wire = sent(&r, &f);
    assert_eq!(r.outer.as_bytes().len(), 50);
    // Outer Ethernet: to the host (on the underlay subnet) from the underlay port's MAC.
    assert_eq!(&wire[0..6], &HOST1_MAC.0);
    assert_eq!(&wire[6..12], &UNDERLAY_MAC.0);
    assert_eq!(&wire[12..14], &[0x08, 0x00]);
    // Outer IPv4: 20 bytes, DF, TTL 64, UDP, underlay address -> host, valid checksum.
    let ip = Ipv4Packet::new_checked(&wire[14..]).unwrap();
    assert_eq!((ip.version(), ip.header_len(), ip.tos()), (4, 20, 0));
    assert_eq!(usize::from(ip.total_len()), 20 + 8 + 8 + orig.len());
    assert!(ip.dont_frag() && !ip.more_frags() && ip.frag_offset() == 0);
    assert_eq!((ip.ttl(), ip.protocol()), (OUTER_TTL, IpProtocol::Udp));
    assert_eq!((ip.src_addr(), ip.dst_addr()), (v4("192.168.7.1"), v4("192.168.7.11")));
    assert!(ip.verify_checksum());
    // UDP: source port from the flow hash, destination 4789, length, checksum zero (RFC 7348 s5).
    let udp_hdr = UdpPacket::new_checked(&wire[34..]).unwrap();
    assert_eq!((udp_hdr.src_port(), udp_hdr.dst_port()), (sport, 4789));
    assert_eq!(usize::from(udp_hdr.len()), 8 + 8 + orig.len());
    assert_eq!(udp_hdr.checksum(), 0);
    // VXLAN: I flag, reserved zero, VNI = the port's tunnel key.
    assert_eq!(&wire[42..46], &[0x08, 0, 0, 0]);
    let vx = VxlanPacket::new_checked(&wire[42..]).unwrap();
    assert!(vx.vni_valid());
    assert_eq!(vx.vni().get(), KEY1);
    assert_eq!(wire[49], 0);
    // The inner frame: routed onto the bridge (router port MAC -> VM, TTL - 1).
    let h = Headers::parse(&wire[50..]).unwrap();
    h.verify_checksums(&wire[50..]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    assert!(matches!(h.l3, L3::Ipv4(x) if x.ttl == 63));
    // The whole frame parses as VXLAN to the host.
    let outer = Headers::parse(&wire).unwrap();
    outer.verify_checksums(&wire).unwrap();

    // The cached path gives the same bytes, and the same source port for the flow.
    let mut g = orig.clone();
    let o = apply(&n.snap, &r.actions, &mut g, &mut st, 2).unwrap();
    assert_eq!(o.dpdk_port, UNDERLAY_DPDK);
    assert_eq!([o.outer.as_bytes(), &g[..]].concat(), wire);
    // Another packet of the flow, another length: same sport, lengths follow.
    let mut f2 = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1234, 300);
    let r2 = simulate(&n.snap, 0, &mut f2, &mut st, 3, &mut out);
    assert_eq!(r2.actions.as_slice().last(), Some(&Action::Encap { port: n.vm1, sport }));
    assert_eq!(UdpPacket::new_unchecked(&r2.outer.as_bytes()[34..]).len() as usize, 16 + f2.len());
}

#[test]
fn vxlan_source_ports_stay_in_range_and_spread() {
    let mut seen = std::collections::BTreeSet::new();
    for hash in (0..200_000u32).map(|i| i.wrapping_mul(2_654_435_761)) {
        let p = vxlan_source_port(hash);
        assert!(p >= 49152, "{p}");
        seen.insert(p);
    }
    assert!(seen.len() > 10_000, "{}", seen.len());
    assert_eq!(vxlan_source_port(u32::MAX), vxlan_source_port(u32::MAX));
}

#[test]
fn gre_encapsulation_follows_rfc_2890_through_the_underlay_gateway() {
    let n = topo();
    let mut st = state(&n);
    st.macs.learn(BridgeId(0), VM_A, n.vm2, 0);
    let mut out = [0u8; 1514];
    let orig = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1234, 30);
    let mut f = orig.clone();
    let r = simulate(&n.snap, 0, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.encap(), Some(n.vm2), "{r:?}");
    let wire = sent(&r, &f);
    assert_eq!(r.outer.as_bytes().len(), 42);
    // Host 2 is off the underlay subnet: the outer frame goes to the underlay gateway's MAC.
    assert_eq!(&wire[0..6], &UNDERLAY_GW_MAC.0);
    let ip = Ipv4Packet::new_checked(&wire[14..]).unwrap();
    assert_eq!((ip.protocol(), ip.ttl(), ip.dont_frag()), (IpProtocol::Gre, OUTER_TTL, true));
    assert_eq!(OUTER_TTL, 255, "MidoNet's outer TTL (seeds A8)");
    assert_eq!((ip.src_addr(), ip.dst_addr()), (v4("192.168.7.1"), v4("10.9.0.12")));
    assert_eq!(usize::from(ip.total_len()), 20 + 8 + orig.len());
    assert!(ip.verify_checksum());
    // GRE: C=0 K=1 S=0, version 0, protocol 0x6558, key = tunnel key.
    assert_eq!(&wire[34..38], &[0x20, 0x00, 0x65, 0x58]);
    let g = GrePacket::new_checked(&wire[34..]).unwrap();
    assert!(g.key_present() && !g.checksum_present() && !g.seq_present());
    assert_eq!((g.version(), g.key()), (0, Some(KEY2)));
    assert_eq!(g.protocol_type(), EtherType::TransparentEthernetBridging);
    assert_eq!(&wire[42..], &f[..]);
    let mut c = orig.clone();
    let o = apply(&n.snap, &r.actions, &mut c, &mut st, 2).unwrap();
    assert_eq!([o.outer.as_bytes(), &c[..]].concat(), wire);
}

/// RFC 2784 2.3: a receiver MUST discard GRE with any of bits 1-5 set but K and S (RFC 1701's
/// routing, strict source route, recursion), and a version other than 0; a present checksum must
/// verify. Bits 6-12 MUST be ignored. Sequence numbers (S, RFC 2890) are fine.
#[test]
fn gre_decapsulation_discards_rfc_1701_bits_and_bad_checksums() {
    let n = topo();
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    let ok = gre("10.9.0.12", KEY2, &inner);
    assert_eq!(decap(&n.snap, &ok), Ok(Some(Decap { inner_offset: 42, port: n.vm2 })));
    // R (routing), s (strict source route), the recursion's high bit, version 1 (PPTP).
    for flags in [[0x60u8, 0x00], [0x28, 0x00], [0x24, 0x00], [0x20, 0x01]] {
        let mut f = ok.clone();
        f[34..36].copy_from_slice(&flags);
        assert_eq!(decap(&n.snap, &f), Err(DropReason::TunnelMalformed), "flags {flags:02x?}");
    }
    // Reserved bits 6-12 are ignored.
    let mut reserved = ok.clone();
    reserved[34..36].copy_from_slice(&[0x23, 0xf8]);
    assert_eq!(decap(&n.snap, &reserved), Ok(Some(Decap { inner_offset: 42, port: n.vm2 })));
    // The outer IPv4 header in front of another GRE header: its total length and checksum redone.
    let outer_before = |gre_header: &[u8]| {
        let mut f = [&ok[..34], gre_header, &inner].concat();
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        Ipv4Packet::new_checked(&mut f[14..]).unwrap().fill_checksum();
        f
    };
    // With a sequence number (S): the inner frame four bytes further.
    let with_seq = outer_before(&[&[0x30, 0x00, 0x65, 0x58][..], &KEY2.to_be_bytes(), &[0, 0, 0, 7]].concat());
    assert_eq!(decap(&n.snap, &with_seq), Ok(Some(Decap { inner_offset: 46, port: n.vm2 })));
    // With a checksum (C): verified.
    let mut with_csum = outer_before(&[&[0xa0, 0x00, 0x65, 0x58, 0, 0, 0, 0][..], &KEY2.to_be_bytes()].concat());
    GrePacket::new_checked(&mut with_csum[34..]).unwrap().fill_checksum();
    assert_eq!(decap(&n.snap, &with_csum), Ok(Some(Decap { inner_offset: 46, port: n.vm2 })));
    with_csum[60] ^= 0x40;
    assert_eq!(decap(&n.snap, &with_csum), Err(DropReason::TunnelMalformed), "bad GRE checksum");
}

/// A host's tunnel zone has one encapsulation: a VXLAN packet carrying a GRE host's key, from
/// that host's address, is not that host's tunnel (nor the other way round).
#[test]
fn decapsulation_checks_the_hosts_encapsulation() {
    let n = topo();
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    // host2 (10.9.0.12) is a GRE host with KEY2's port; host1 (192.168.7.11) a VXLAN host with KEY1's.
    assert_eq!(decap(&n.snap, &vxlan("10.9.0.12", KEY2, &inner)), Err(DropReason::TunnelHostMismatch));
    assert_eq!(decap(&n.snap, &gre("192.168.7.11", KEY1, &inner)), Err(DropReason::TunnelHostMismatch));
    assert!(decap(&n.snap, &gre("10.9.0.12", KEY2, &inner)).unwrap().is_some());
}

/// RFC 7348 6.1: a decapsulated VXLAN frame with an inner VLAN tag is discarded (the VNI is the
/// segment): decapsulation lets it through (it checks nothing per packet beyond the tunnel), the
/// simulation drops it, and the drop is cached (the tag is in the flow key). GRE's are not VXLAN's.
#[test]
fn vxlan_inner_frames_with_a_vlan_tag_are_discarded() {
    let n = topo();
    let tag = |mut f: Vec<u8>| {
        f.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        f
    };
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    let mut st = state(&n);
    let mut out = [0u8; 1514];
    let f = vxlan("192.168.7.11", KEY1, &tag(inner.clone()));
    assert!(decap(&n.snap, &f).unwrap().is_some());
    let mut g = f.clone();
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut g, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TunnelInnerVlan), "{r:?}");
    assert!(r.cacheable, "the tag is in the key: the next packets hit the drop");
    // Untagged, as ever.
    let mut g = vxlan("192.168.7.11", KEY1, &inner);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut g, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), None, "{r:?}");
    // A tagged frame inside GRE is not judged by RFC 7348.
    let mut g = gre("10.9.0.12", KEY2, &tag(inner.clone()));
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut g, &mut st, 1, &mut out);
    assert_ne!(r.actions.drop_reason(), Some(DropReason::TunnelInnerVlan), "{r:?}");
}

/// RFC 1122 3.2.1.2 (and RFC 1812 5.2.2): a datagram with a wrong IPv4 header checksum is
/// discarded, and its outer source is not what the host check may trust.
#[test]
fn decapsulation_discards_a_bad_outer_header_checksum() {
    let n = topo();
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    for mut f in [vxlan("192.168.7.11", KEY1, &inner), gre("10.9.0.12", KEY2, &inner)] {
        assert!(decap(&n.snap, &f).unwrap().is_some());
        f[24] ^= 0x5a;
        assert_eq!(decap(&n.snap, &f), Err(DropReason::Malformed));
    }
}

/// The underlay address is the gateway's own: a tunnelled packet whose outer header carries a
/// source route is dropped (RFC 7126 4.3 / 4.4), one with other outer options decapsulated; a
/// source route inside, on the inner frame, is the router's to drop.
#[test]
fn decapsulation_refuses_an_outer_source_route() {
    let n = topo();
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    let (lsrr, record_route) = ([1, 131, 7, 4, 192, 168, 7, 1], [7, 7, 4, 0, 0, 0, 0, 0]);
    for plain in [vxlan("192.168.7.11", KEY1, &inner), gre("10.9.0.12", KEY2, &inner)] {
        let Ok(Some(d)) = decap(&n.snap, &plain) else { panic!() };
        let mut routed = plain.clone();
        crate::wire::insert_ipv4_options(&mut routed, 14, &lsrr);
        assert_eq!(decap(&n.snap, &routed), Err(DropReason::SourceRouted));
        let mut recorded = plain.clone();
        crate::wire::insert_ipv4_options(&mut recorded, 14, &record_route);
        let expect = Decap { inner_offset: d.inner_offset + 8, port: d.port };
        assert_eq!(decap(&n.snap, &recorded), Ok(Some(expect)));
    }
    let mut st = state(&n);
    let mut out = [0u8; 1514];
    let mut routed_inside = inner.clone();
    crate::wire::insert_ipv4_options(&mut routed_inside, 14, &lsrr);
    let mut f = vxlan("192.168.7.11", KEY1, &routed_inside);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::SourceRouted), "{r:?}");
    assert!(r.cacheable && r.generated.is_none());
}

#[test]
fn decapsulation_checks_key_and_host() {
    let n = topo();
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    let ok = vxlan("192.168.7.11", KEY1, &inner);
    assert_eq!(decap(&n.snap, &ok), Ok(Some(Decap { inner_offset: 50, port: n.vm1 })));
    assert_eq!(decap(&n.snap, &vxlan("10.9.0.12", KEY1, &inner)), Err(DropReason::TunnelHostMismatch));
    assert_eq!(decap(&n.snap, &vxlan("192.168.7.11", 0x777, &inner)), Err(DropReason::UnknownTunnelKey));
    let mut no_i = ok.clone();
    no_i[42] = 0;
    assert_eq!(decap(&n.snap, &no_i), Err(DropReason::TunnelMalformed));
    let ok_gre = gre("10.9.0.12", KEY2, &inner);
    assert_eq!(decap(&n.snap, &ok_gre), Ok(Some(Decap { inner_offset: 42, port: n.vm2 })));
    assert_eq!(decap(&n.snap, &gre("192.168.7.11", KEY2, &inner)), Err(DropReason::TunnelHostMismatch));
    // The first fragment of a tunnelled packet (MF set, its checksum refilled): never reassembled,
    // so a counted drop, not a truncated inner frame.
    for tunnelled in [ok.clone(), ok_gre.clone()] {
        let mut first = tunnelled;
        first[20] |= 0x20;
        Ipv4Packet::new_checked(&mut first[14..]).unwrap().fill_checksum();
        assert_eq!(decap(&n.snap, &first), Err(DropReason::TunnelFragmented));
    }
    // Not to the underlay address, or not a tunnel: not ours to decapsulate.
    let mut other = ok.clone();
    other[30..34].copy_from_slice(&[192, 168, 7, 99]);
    Ipv4Packet::new_checked(&mut other[14..]).unwrap().fill_checksum();
    assert_eq!(decap(&n.snap, &other), Ok(None));
    assert_eq!(decap(&n.snap, &inner), Ok(None));
    // A wrong host is a counted drop in the simulation too.
    let mut st = state(&n);
    let mut out = [0u8; 1514];
    let mut bad = vxlan("10.9.0.12", KEY1, &inner);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut bad, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TunnelHostMismatch));
    assert!(!r.cacheable);
}

#[test]
fn decapsulated_frames_are_bridged_and_routed() {
    let n = topo();
    let mut st = CoreState::new(&CoreConfig::default());
    st.set_port_mac(UNDERLAY_DPDK, UNDERLAY_MAC);
    st.neighbours.learn(PortId(0), "192.0.2.254".parse().unwrap(), OUTSIDE_GW, 0);
    let mut out = [0u8; 1514];
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 999, 10);
    let mut f = vxlan("192.168.7.11", KEY1, &inner);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.decap_len, 50);
    assert_eq!(r.actions.output(), Some(0), "{r:?}");
    assert!(r.cacheable);
    let h = Headers::parse(&f[50..]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (UP_MAC, OUTSIDE_GW));
    assert!(matches!(h.l3, L3::Ipv4(x) if x.ttl == 63));
    // The VM's MAC was learned behind the tunnel port.
    assert_eq!(st.macs.lookup(BridgeId(0), VM_A, 2), Some(n.vm1));
    assert!(r.actions.as_slice().contains(&Action::Learn(n.vm1)));
    // Cached: the same bytes from apply on the inner frame.
    let mut g = inner.clone();
    assert_eq!(apply(&n.snap, &r.actions, &mut g, &mut st, 2), Ok(Output::local(0)));
    assert_eq!(g, f[50..]);
    // simulate_from on the inner frame is the same decision.
    let mut g = inner.clone();
    let r2 = simulate_from(&n.snap, IngressPoint::Tunnel(n.vm1), &mut g, &mut st, 3, &mut out);
    assert_eq!(r2.actions, r.actions);
    assert_eq!(IngressPoint::Tunnel(n.vm1).flow_id(), 0x8000_0000 | n.vm1.0);
}

/// A broadcast ARP request from `mac` / `src` for `target`.
fn arp_request(mac: EthernetAddress, src: &str, target: &str) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    EthernetRepr { src_addr: mac, dst_addr: EthernetAddress::BROADCAST, vlan: None, ethertype: EtherType::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: v4(src),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: v4(target),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

#[test]
fn answers_go_back_through_the_tunnel() {
    let n = topo();
    let mut st = state(&n);
    let mut out = [0u8; 1514];
    // VM_A asks for the router over VXLAN: the broadcast floods to vm2 (GRE) and the answer goes
    // back to host 1.
    let arp = arp_request(VM_A, "10.0.0.5", "10.0.0.1");
    let mut f = arp.clone();
    let r = simulate_from(&n.snap, IngressPoint::Tunnel(n.vm1), &mut f, &mut st, 1, &mut out);
    assert_eq!(r.flood.len(), 1);
    assert!(matches!(r.flood.as_slice()[0], Leg::Tunnel { port, .. } if port == n.vm2));
    let g = r.generated.expect("ARP reply");
    assert!(matches!(g.legs.as_slice(), [Leg::Tunnel { port, .. }] if *port == n.vm1));
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (RB_MAC, VM_A));
    // Echo to the router port over the tunnel: the reply is encapsulated back to host 1.
    let mut e = echo4_between(VM_A, RB_MAC, "10.0.0.5", "10.0.0.1");
    let r = simulate_from(&n.snap, IngressPoint::Tunnel(n.vm1), &mut e, &mut st, 1, &mut out);
    assert_eq!(r.actions.encap(), Some(n.vm1), "{r:?}");
    let wire = sent(&r, &e);
    let ip = Ipv4Packet::new_checked(&wire[14..]).unwrap();
    assert_eq!(ip.dst_addr(), v4("192.168.7.11"));
    let h = Headers::parse(&wire[50..]).unwrap();
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, .. }));
}

#[test]
fn underlay_arp_is_answered_learned_and_asked() {
    let n = topo();
    let mut st = CoreState::new(&CoreConfig::default());
    st.set_port_mac(UNDERLAY_DPDK, UNDERLAY_MAC);
    st.neighbours.learn(n.rb, "10.0.0.5".parse().unwrap(), VM_A, 0);
    st.macs.learn(BridgeId(0), VM_A, n.vm1, 0);
    let mut out = [0u8; 1514];
    // A routed packet to the VM behind host 1, whose MAC is unknown: held back, ARP on the underlay.
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1, 10);
    st.neighbours.learn(PortId(0), "192.0.2.254".parse().unwrap(), OUTSIDE_GW, 0);
    let orig = f.clone();
    let r = simulate(&n.snap, 0, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::NeighbourUnresolved));
    assert_eq!(f, orig, "the frame is untouched until the tunnel can be used");
    assert_eq!(r.hold, Some(Hold { port: UNDERLAY_PORT, addr: IpAddr::V4(v4("192.168.7.11")) }));
    let g = r.generated.unwrap();
    assert_eq!(g.legs, Legs::one(Leg::Local(UNDERLAY_DPDK)));
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (UNDERLAY_MAC, EthernetAddress::BROADCAST));
    let L3::Arp(a) = h.l3 else { panic!() };
    assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (v4("192.168.7.1"), v4("192.168.7.11")));
    // Host 1 asks for the gateway's underlay address: answered and learned.
    let mut req = arp_request(HOST1_MAC, "192.168.7.11", "192.168.7.1");
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut req, &mut st, 2, &mut out);
    assert_eq!(r.actions.output(), Some(UNDERLAY_DPDK));
    let h = Headers::parse(&req).unwrap();
    assert_eq!((h.eth_src, h.eth_dst), (UNDERLAY_MAC, HOST1_MAC));
    assert!(matches!(h.l3, L3::Arp(a) if a.operation == ArpOperation::Reply && a.source_hardware_addr == UNDERLAY_MAC));
    assert_eq!(st.neighbours.lookup(UNDERLAY_PORT, IpAddr::V4(v4("192.168.7.11")), 2), Some(HOST1_MAC));
    // Now the packet is encapsulated.
    let mut f = orig.clone();
    let r = simulate(&n.snap, 0, &mut f, &mut st, 3, &mut out);
    assert_eq!(r.actions.encap(), Some(n.vm1));
}

/// The underlay link is untagged: an ARP request tagged with a VLAN ID is neither answered nor
/// learned from, and a tunnelled packet of a VLAN is not decapsulated (`underlay_vlan`); a
/// priority-tagged request (VID 0: no VLAN) is answered, untagged, byte for byte the answer to the
/// same request without the tag, and a priority-tagged VXLAN packet is decapsulated.
#[test]
fn the_underlay_takes_no_vlan_and_answers_priority_tags_untagged() {
    use super::tests::with_tag;
    let n = topo();
    let mut out = [0u8; 1514];
    let req = arp_request(HOST1_MAC, "192.168.7.11", "192.168.7.1");
    let fresh = || {
        let mut st = CoreState::new(&CoreConfig::default());
        st.set_port_mac(UNDERLAY_DPDK, UNDERLAY_MAC);
        st
    };
    let mut want = req.clone();
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut want, &mut fresh(), 2, &mut out);
    assert_eq!((r.actions.output(), r.frame_start()), (Some(UNDERLAY_DPDK), 0));
    for vid in [5, 4095] {
        let mut st = fresh();
        let mut f = with_tag(&req, vid);
        let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut st, 2, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::UnderlayVlan), "VLAN {vid}: {r:?}");
        assert!(!r.cacheable && r.generated.is_none());
        assert_eq!(st.neighbours.lookup(UNDERLAY_PORT, IpAddr::V4(v4("192.168.7.11")), 2), None, "not learned");
    }
    let mut st = fresh();
    let mut f = with_tag(&req, 0);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut st, 2, &mut out);
    assert_eq!((r.actions.output(), r.frame_start()), (Some(UNDERLAY_DPDK), 4), "{r:?}");
    assert_eq!(&f[4..], &want[..], "the answer without the tag");
    assert_eq!(st.neighbours.lookup(UNDERLAY_PORT, IpAddr::V4(v4("192.168.7.11")), 2), Some(HOST1_MAC));
    // Tunnelled packets: of a VLAN refused, priority-tagged taken.
    let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 1, 10);
    let plain = vxlan("192.168.7.11", KEY1, &inner);
    let d = decap(&n.snap, &plain).unwrap().expect("decapsulated");
    assert_eq!(decap(&n.snap, &with_tag(&plain, 7)), Err(DropReason::UnderlayVlan));
    let tagged = decap(&n.snap, &with_tag(&plain, 0)).unwrap().expect("decapsulated");
    assert_eq!((tagged.port, tagged.inner_offset), (d.port, d.inner_offset + 4));
}

/// An ICMP echo request from `src` (at HOST1_MAC) to `dst` on the underlay, with `options`.
fn underlay_echo_request(src: &str, dst: &str, options: &[u8]) -> Vec<u8> {
    let mut f = echo4_between(HOST1_MAC, UNDERLAY_MAC, src, dst);
    if !options.is_empty() {
        crate::wire::insert_ipv4_options(&mut f, 14, options);
    }
    f
}

/// RFC 1122 3.2.2.6: the gateway is a host on the underlay and answers echo to its underlay
/// address (how a compute host or an operator checks a tunnel endpoint), in place, from its
/// underlay MAC and address, priority tag removed, record route filled in; not a request from the
/// underlay subnet's broadcast address, to another address, or with a bad checksum.
#[test]
fn the_underlay_address_answers_echo() {
    use super::tests::with_tag;
    let n = topo();
    let mut out = [0u8; 1514];
    let plain = underlay_echo_request("192.168.7.11", "192.168.7.1", &[]);
    let mut f = plain.clone();
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut state(&n), 1, &mut out);
    assert_eq!(r.actions.as_slice(), &[Action::Reply(ReplyKind::EchoReply), Action::Output(UNDERLAY_DPDK)]);
    assert!(!r.cacheable && r.generated.is_none());
    let h = valid_frame(&f);
    assert_eq!((h.eth_src, h.eth_dst), (UNDERLAY_MAC, HOST1_MAC));
    let L3::Ipv4(ip) = h.l3 else { panic!() };
    assert_eq!((ip.src, ip.dst, ip.ttl), (v4("192.168.7.1"), v4("192.168.7.11"), 64));
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, ident: 0x1234, .. }), "{h:?}");
    assert_eq!(&f[42..], &plain[42..], "the data echoed");
    let want = f.clone();
    let mut f = with_tag(&plain, 5 << 13);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut state(&n), 1, &mut out);
    assert_eq!(r.frame_start(), 4, "{r:?}");
    assert_eq!(&f[4..], &want[..], "untagged, as the answer to the untagged request");
    let mut f = underlay_echo_request("192.168.7.11", "192.168.7.1", &[7, 7, 4, 0, 0, 0, 0, 0]);
    simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut state(&n), 1, &mut out);
    valid_frame(&f);
    assert_eq!(&f[34..42], &[7, 7, 8, 192, 168, 7, 1, 0], "record route: the gateway's underlay address");
    let mut bad = plain.clone();
    *bad.last_mut().unwrap() ^= 1;
    for mut f in [
        underlay_echo_request("192.168.7.255", "192.168.7.1", &[]),
        underlay_echo_request("192.168.7.11", "192.168.7.9", &[]),
        bad,
    ] {
        let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut state(&n), 1, &mut out);
        assert_eq!(r.actions.drop_reason(), Some(DropReason::UnderlayNotTunnel), "{r:?}");
    }
}

/// A routed priority-tagged frame enters the tunnel untagged, as a router's output is (RFC 7348
/// 6.1: the compute host's VTEP would discard an inner frame with a tag, as this gateway's own
/// decapsulation does): what goes on the wire, outer headers included, is what the same frame
/// without the tag gives, on the first packet and on hits. The tunnel's MTU counts the frame
/// without its tag: 1450 bytes of IP fill a 1500-byte underlay to the byte (with the tag they
/// would be 1504, too big), 1451 are answered "fragmentation needed" with 1450.
#[test]
fn a_routed_priority_tagged_frame_enters_the_tunnel_untagged() {
    use super::tests::{sent_through_cache, with_tag};
    use crate::flow::{FlowCache, FlowCacheConfig, FlowHasher};
    let n = topo();
    let config = FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() };
    for ip_len in [60, 1450] {
        let mut st = state(&n);
        st.set_mtu(UNDERLAY_DPDK, 1500);
        let mut cache = FlowCache::new(&config, FlowHasher::new(1));
        let plain = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1234, ip_len - 28);
        let (want, _) = sent_through_cache(&mut cache, &n.snap, &mut st, IngressPoint::Local(0), &plain);
        let (port, want) = want.unwrap();
        assert_eq!((port, want.len()), (UNDERLAY_DPDK, 50 + plain.len()));
        let outer = Headers::parse(&want).unwrap();
        outer.verify_checksums(&want).unwrap();
        assert_eq!(usize::from(Ipv4Packet::new_checked(&want[14..]).unwrap().total_len()), 36 + plain.len());
        let inner = Headers::parse(&want[50..]).unwrap();
        inner.verify_checksums(&want[50..]).unwrap();
        assert_eq!((inner.vlan, inner.eth_src, inner.eth_dst), (None, RB_MAC, VM_A));
        let tagged = with_tag(&plain, 5 << 13);
        for round in 0..2 {
            let got = sent_through_cache(&mut cache, &n.snap, &mut st, IngressPoint::Local(0), &tagged);
            assert_eq!(got, (Ok((UNDERLAY_DPDK, want.clone())), round == 1), "IP {ip_len}, round {round}");
        }
        let key = FlowKey::from_frame(0, &tagged).unwrap();
        assert!(matches!(cache.lookup(&key, 10, 0), Some(CachedActions::UntagHop(_))));
        // The interpreter of the list the hop came from sends the same.
        let mut f = tagged.clone();
        let r = simulate(&n.snap, 0, &mut f, &mut st, 10, &mut [0u8; 1514]);
        let mut g = tagged.clone();
        let mut o = Outer::NONE;
        let applied = apply_into(&n.snap, &r.actions, &mut g, &mut st, 10, &mut o);
        assert_eq!(applied, Ok(Applied::EncapUntagged(UNDERLAY_DPDK)));
        assert_eq!([o.as_bytes(), &g[4..]].concat(), want);
    }
    let mut st = state(&n);
    st.set_mtu(UNDERLAY_DPDK, 1500);
    let mut out = [0u8; 1514];
    let mut f = with_tag(&udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1, 1451 - 28), 5 << 13);
    let r = simulate(&n.snap, 0, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TooBig), "{r:?}");
    let g = r.generated.unwrap();
    let h = Headers::parse(&out[..g.len]).unwrap();
    assert_eq!(h.vlan, None);
    assert_eq!(u16::from_be_bytes([out[h.l4_offset + 6], out[h.l4_offset + 7]]), 1450, "next-hop MTU");
}

/// From a VM behind GRE (which, unlike VXLAN, carries tagged frames) through the bridge and the
/// router: the frame leaves the uplink untagged, as the same frame without a tag does, from a
/// cached list (the bridge learns the VM on every hit) on hits; and the router's answer to its
/// echo request goes back into the tunnel untagged, the outer lengths counting the reply without
/// the tag.
#[test]
fn a_priority_tagged_frame_from_a_gre_vm_leaves_the_router_untagged() {
    use super::tests::{sent_through_cache, with_tag};
    use crate::flow::{FlowCache, FlowCacheConfig, FlowHasher};
    const VM_B: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 0xb]);
    let n = topo();
    let mut st = state(&n);
    let mut cache = FlowCache::new(&FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() }, FlowHasher::new(1));
    let plain = udp(VM_B, RB_MAC, "10.0.0.6", "198.51.100.9", 999, 10);
    let tagged = with_tag(&plain, 5 << 13);
    // As pmd does: decapsulated, then the inner frame through the cache from the tunnel's port.
    let d = decap(&n.snap, &gre("10.9.0.12", KEY2, &tagged)).unwrap().unwrap();
    assert_eq!((d.port, d.inner_offset), (n.vm2, 42));
    let ingress = IngressPoint::Tunnel(d.port);
    let (want, _) = sent_through_cache(&mut cache, &n.snap, &mut st, ingress, &plain);
    let (port, want) = want.unwrap();
    assert_eq!((port, want.len()), (0, plain.len()));
    assert_eq!((valid_frame(&want).vlan, valid_frame(&want).eth_dst), (None, OUTSIDE_GW));
    let mut cache = FlowCache::new(&FlowCacheConfig { capacity: 64, ..FlowCacheConfig::default() }, FlowHasher::new(2));
    for round in 0..2 {
        let got = sent_through_cache(&mut cache, &n.snap, &mut st, ingress, &tagged);
        assert_eq!(got, (Ok((0, want.clone())), round == 1), "round {round}");
    }
    let key = FlowKey::from_frame(ingress.flow_id(), &tagged).unwrap();
    let Some(CachedActions::List(list)) = cache.lookup(&key, 10, 0).copied() else { panic!("a list") };
    assert!(list.as_slice().contains(&Action::Learn(n.vm2)) && list.untags(), "{list:?}");
    // Simulated from the underlay port: the frame to send starts after the outer headers and the tag.
    let mut f = gre("10.9.0.12", KEY2, &tagged);
    let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut st, 10, &mut [0u8; 1514]);
    assert_eq!((r.actions.output(), r.frame_start()), (Some(0), 42 + 4), "{r:?}");
    assert_eq!(f[46..], want[..]);

    // An echo request to the router port: answered back through the tunnel, untagged.
    let echo = |tci: Option<u16>| {
        let e = echo4_between(VM_B, RB_MAC, "10.0.0.6", "10.0.0.1");
        let mut f = gre("10.9.0.12", KEY2, &tci.map_or(e.clone(), |tci| with_tag(&e, tci)));
        let r = simulate(&n.snap, UNDERLAY_DPDK, &mut f, &mut state(&n), 1, &mut [0u8; 1514]);
        assert_eq!(r.actions.encap(), Some(n.vm2), "{r:?}");
        [r.outer.as_bytes(), &f[r.frame_start()..]].concat()
    };
    let want = echo(None);
    assert_eq!(echo(Some(5 << 13)), want);
    let outer = Headers::parse(&want).unwrap();
    outer.verify_checksums(&want).unwrap();
    assert_eq!(usize::from(Ipv4Packet::new_checked(&want[14..]).unwrap().total_len()), want.len() - 14);
    let h = valid_frame(&want[42..]);
    assert_eq!((h.vlan, h.eth_dst), (None, VM_B));
    assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, .. }));
}

/// Parses `frame` and checks its checksums.
fn valid_frame(frame: &[u8]) -> Headers {
    let h = Headers::parse(frame).unwrap();
    h.verify_checksums(frame).unwrap();
    h
}

#[test]
fn routed_packets_fit_the_underlay_mtu_less_the_encapsulation() {
    let n = topo();
    let mut st = state(&n);
    st.set_mtu(UNDERLAY_DPDK, 1500);
    let mut out = [0u8; 1514];
    // 1450 bytes of IP fit VXLAN on a 1500 underlay; 1451 do not.
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1, 1450 - 28);
    let r = simulate(&n.snap, 0, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.encap(), Some(n.vm1));
    assert!(r.actions.as_slice().contains(&Action::CheckMtu(1450)));
    let mut f = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1, 1451 - 28);
    let r = simulate(&n.snap, 0, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TooBig));
    let g = r.generated.unwrap();
    let h = Headers::parse(&out[..g.len]).unwrap();
    let icmp = Icmpv4Packet::new_checked(&out[h.l4_offset..g.len]).unwrap();
    assert_eq!((icmp.msg_type(), icmp.msg_code()), (Icmpv4Message::DstUnreachable, 4));
    assert_eq!(u16::from_be_bytes([out[h.l4_offset + 6], out[h.l4_offset + 7]]), 1450, "next-hop MTU");
    assert_eq!(locals(&g.legs), &[0]);
}

mod decap_fast_path {
    use proptest::prelude::*;

    use super::super::tunnel::decap_general;
    use super::*;

    /// Outer bytes worth mutating: addresses, ports, lengths, flags and the VXLAN header.
    const INTERESTING: [usize; 16] = [12, 13, 14, 16, 17, 2 + 14, 3 + 14, 6 + 14, 9 + 14, 29, 33, 36, 37, 38, 39, 42];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The byte-level VXLAN path answers exactly as the general parser would, for VXLAN
        /// frames with outer fields and lengths mutated, keys known and not, and truncations.
        #[test]
        fn decap_equals_the_general_parser(
            vni in prop_oneof![Just(KEY1), Just(KEY2), any::<u32>().prop_map(|k| k & 0xff_ffff)],
            src in prop_oneof![Just("192.168.7.11"), Just("10.9.0.12"), Just("192.168.7.99")],
            edits in proptest::collection::vec((0usize..INTERESTING.len(), any::<u8>()), 0..3),
            truncate in proptest::option::of(0usize..120),
        ) {
            let n = topo();
            let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 1234, 20);
            let mut f = vxlan(src, vni, &inner);
            for (at, byte) in edits {
                f[INTERESTING[at]] = byte;
            }
            if let Some(len) = truncate {
                f.truncate(len);
            }
            let u = n.snap.underlay().unwrap();
            prop_assert_eq!(decap(&n.snap, &f), decap_general(&n.snap, u, &f));
            // What the NIC verified: the same answer, once the outer checksum is right.
            crate::fuzzing::fix_ipv4_headers(&mut f);
            prop_assert_eq!(decap_nic_verified(&n.snap, &f), decap(&n.snap, &f));
        }
    }

    /// The NIC's word on the outer IPv4 header checksum is taken (the check it saves); without
    /// it the frame is malformed.
    #[test]
    fn a_nic_verified_outer_header_is_not_checked_again() {
        let n = topo();
        let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 1234, 20);
        let mut f = vxlan("192.168.7.11", KEY1, &inner);
        f[25] ^= 0x01;
        assert_eq!(decap(&n.snap, &f), Err(DropReason::Malformed));
        assert_eq!(decap_nic_verified(&n.snap, &f), Ok(Some(Decap { inner_offset: 50, port: n.vm1 })));
    }

    #[test]
    fn a_vxlan_frame_takes_the_fast_path_and_finds_its_port() {
        let n = topo();
        let inner = udp(VM_A, RB_MAC, "10.0.0.5", "198.51.100.9", 1234, 20);
        let f = vxlan("192.168.7.11", KEY1, &inner);
        assert!(common_udp_outer_is_some(&f));
        assert_eq!(decap(&n.snap, &f), Ok(Some(Decap { inner_offset: 50, port: n.vm1 })));
    }

    fn common_udp_outer_is_some(f: &[u8]) -> bool {
        super::super::tunnel::common_udp_outer_for_tests(f)
    }
}

/// A bridged (not routed) frame into a tunnel meets no router's MTU check, so the tunnel checks
/// every frame against the underlay's MTU outside: one that would not fit is dropped and counted
/// (nobody to answer at layer 2, and nobody may fragment it), not cached (the next frame of the
/// flow may fit), and the largest that fits goes out whole.
#[test]
fn a_bridged_frame_too_big_for_the_underlay_is_dropped() {
    let mut b = SnapshotBuilder::new(1);
    let bridge = b.add_bridge(Uuid(10));
    let local = b.add_bridge_port(bridge, Uuid(11));
    let vm1 = b.add_bridge_port(bridge, Uuid(12));
    let host1 = b.add_host(Uuid(20), "192.168.7.11".parse().unwrap(), Encap::Vxlan);
    b.bind_local(local, 1);
    b.bind_remote(vm1, host1, KEY1);
    b.set_underlay(Underlay::new(UNDERLAY_DPDK, v4("192.168.7.1"), 24));
    let snap = b.build().unwrap();
    let mut st = CoreState::new(&CoreConfig::default());
    st.set_port_mac(UNDERLAY_DPDK, UNDERLAY_MAC);
    st.set_mtu(UNDERLAY_DPDK, 1500);
    st.set_mtu(1, 1500);
    st.neighbours.learn(UNDERLAY_PORT, "192.168.7.11".parse().unwrap(), HOST1_MAC, 0);
    st.macs.learn(BridgeId(0), VM_A, vm1, 0);
    let mut out = [0u8; 1514];
    // A full-size frame from the physical segment (IP 1500, fine on DPDK port 1) would be 1550 outside.
    let mut f = udp(OUTSIDE_GW, VM_A, "10.0.0.9", "10.0.0.5", 1, 1500 - 28);
    let r = simulate(&snap, 1, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.drop_reason(), Some(DropReason::TunnelTooBig), "{r:?}");
    assert!(!r.cacheable);
    // 1450 bytes of IP inside: 1500 outside, sent.
    let mut f = udp(OUTSIDE_GW, VM_A, "10.0.0.9", "10.0.0.5", 1, 1450 - 28);
    let r = simulate(&snap, 1, &mut f, &mut st, 1, &mut out);
    assert_eq!(r.actions.encap(), Some(vm1), "{r:?}");
    let ip = Ipv4Packet::new_unchecked(&r.outer.as_bytes()[14..34]);
    assert_eq!(ip.total_len(), 1500);
}

/// The per-core template gives exactly what building the headers afresh gives, through lengths,
/// source ports, a neighbour's MAC changing, being forgotten and expiring.
#[test]
fn cached_outer_headers_equal_fresh_ones() {
    let n = topo();
    let mut st = state(&n);
    let lifetime = CoreConfig::default().neighbour_lifetime;
    let check = |st: &mut CoreState, port: PortId, sport: u16, len: usize, now: u64| {
        let fresh = outer_header(&n.snap, st, port, sport, len, now);
        let cached = outer_header_cached(&n.snap, st, port, sport, len, now);
        assert_eq!(cached, fresh, "port {port:?} sport {sport} len {len} at {now}");
        cached
    };
    // Every tunnelled frame must fit the underlay's MTU outside: VXLAN adds 36 bytes of IPv4, UDP
    // and VXLAN to the frame, GRE 28 of IPv4 and GRE.
    let mtu = usize::from(st.mtu(UNDERLAY_DPDK));
    let lengths = [0usize, 1, 60, mtu - 36, mtu - 35, mtu - 28, mtu - 27, 65535, 70000];
    for (i, len) in lengths.into_iter().enumerate() {
        for port in [n.vm1, n.vm2] {
            let got = check(&mut st, port, VXLAN_SPORT_MIN + i as u16, len, 5);
            let fits = len + if port == n.vm1 { 36 } else { 28 } <= mtu;
            assert_eq!(got.map(|_| ()), if fits { Ok(()) } else { Err(DropReason::TunnelTooBig) }, "len {len}");
        }
    }
    // The underlay next hop moves: the template follows at once.
    st.neighbours.learn(UNDERLAY_PORT, "192.168.7.11".parse().unwrap(), UNDERLAY_GW_MAC, 6);
    let (_, o) = check(&mut st, n.vm1, 50000, 100, 7).unwrap();
    assert_eq!(&o.as_bytes()[..6], &UNDERLAY_GW_MAC.0);
    // Forgotten: unresolved, as afresh.
    st.neighbours.forget(UNDERLAY_PORT, "192.168.7.11".parse().unwrap());
    assert_eq!(check(&mut st, n.vm1, 50000, 100, 8), Err(DropReason::NeighbourUnresolved));
    // Learned again, then past its lifetime: unresolved without any other change to the cache.
    st.neighbours.learn(UNDERLAY_PORT, "192.168.7.11".parse().unwrap(), HOST1_MAC, 10);
    assert!(check(&mut st, n.vm1, 50000, 100, 11).is_ok());
    assert_eq!(check(&mut st, n.vm1, 50000, 100, 10 + lifetime), Err(DropReason::NeighbourUnresolved));
    // A port that is not remote-bound fails alike.
    assert!(check(&mut st, n.rb, 50000, 100, 12).is_err());
}

/// What the pipeline does with a compiled hop's tunnel: [`prepare_outer`] then
/// [`PendingOuter::write`] straight into the bytes in front of the frame gives exactly the headers
/// built afresh, over lengths, source ports and both encapsulations, and writes nothing else: not
/// past the header, not into a buffer too short for it.
#[test]
fn prepared_outer_headers_written_in_place_equal_fresh_ones() {
    let n = topo();
    let mut st = state(&n);
    for (i, len) in [0usize, 1, 60, 1400, 9000, 65535 - 50, 65535 - 36, 65535 - 28, 70000].into_iter().enumerate() {
        for port in [n.vm1, n.vm2] {
            let sport = VXLAN_SPORT_MIN + 7 * i as u16;
            let fresh = outer_header(&n.snap, &st, port, sport, len, 5);
            let mut pending = PendingOuter::NONE;
            let prepared = prepare_outer(&n.snap, &mut st, port, sport, len, 5, &mut pending);
            let Ok((dpdk_port, outer)) = fresh else {
                assert_eq!(prepared, fresh.map(|(p, _)| p), "port {port:?} len {len}");
                assert_eq!(pending, PendingOuter::NONE, "a failure leaves nothing to write");
                continue;
            };
            assert_eq!(prepared, Ok(dpdk_port));
            assert_eq!(pending.len(), outer.as_bytes().len());
            let mut room = [0xeeu8; MAX_OUTER_LEN + 8];
            pending.write(&st, &mut room);
            assert_eq!(&room[..pending.len()], outer.as_bytes(), "port {port:?} sport {sport} len {len}");
            assert!(room[pending.len()..].iter().all(|&b| b == 0xee), "nothing written past the header");
            assert_eq!(pending.to_outer(&st), outer);
            // Ready headers, the compiled tunnelled hop's form: the same bytes, nothing past them.
            let ready = ready_outer(&n.snap, &mut st, port, sport, len, 5).unwrap();
            assert_eq!((ready.dpdk_port(), ready.len()), (dpdk_port, outer.as_bytes().len()));
            let mut room = [0xeeu8; MAX_OUTER_LEN + 8];
            ready.write(&mut room);
            assert_eq!(&room[..ready.len()], outer.as_bytes(), "port {port:?} sport {sport} len {len}");
            assert!(room[ready.len()..].iter().all(|&b| b == 0xee), "nothing written past the header");
            let mut short = [0xeeu8; MAX_OUTER_LEN];
            ready.write(&mut short[..ready.len() - 1]);
            assert!(short.iter().all(|&b| b == 0xee), "a short buffer gets nothing");
            let mut short = [0xeeu8; MAX_OUTER_LEN];
            pending.write(&st, &mut short[..pending.len() - 1]);
            assert!(short.iter().all(|&b| b == 0xee), "a short buffer gets nothing");
        }
    }
    let mut room = [0xeeu8; MAX_OUTER_LEN];
    PendingOuter::NONE.write(&st, &mut room);
    assert!(room.iter().all(|&b| b == 0xee) && PendingOuter::NONE.is_empty());
}

/// A compiled hop into a tunnel leaves in its pending headers exactly what its list writes into
/// an [`Outer`], and rewrites the inner frame the same way.
#[test]
fn a_hop_into_a_tunnel_prepares_the_headers_its_list_builds() {
    let n = topo();
    let mut st = state(&n);
    for (port, sport) in [(n.vm1, 50001), (n.vm2, 0)] {
        let actions = {
            let mut a = Actions::new();
            for x in [
                Action::SetEthSrc(RB_MAC),
                Action::SetEthDst(VM_A),
                Action::DecTtl(1),
                Action::CheckMtu(1450),
                Action::Encap { port, sport },
            ] {
                a.push(x);
            }
            a
        };
        let frame = udp(OUTSIDE_GW, UP_MAC, "198.51.100.9", "10.0.0.5", 1234, 100);
        let key = crate::flow::FlowKey::from_frame(0, &frame).unwrap();
        let CachedActions::Tunnelled(hop) = CachedActions::compile(&actions, &key) else {
            panic!("a routed tunnel flow compiles to a tunnelled hop");
        };
        let (mut by_list, mut by_hop) = (frame.clone(), frame.clone());
        let mut outer = Outer::NONE;
        let want = apply_into(&n.snap, &actions, &mut by_list, &mut st, 5, &mut outer);
        let got = hop.apply(&n.snap, &mut by_hop, &mut st, 5).map(|ready| (ready.dpdk_port(), ready.to_outer()));
        assert!(matches!(want, Ok(Applied::Encap(UNDERLAY_DPDK))), "{want:?}");
        assert_eq!(got, Ok((UNDERLAY_DPDK, outer)));
        assert_eq!(by_hop, by_list);
    }
}

/// The underlay's next hops are no device of the snapshot: a topology change keeps them (else
/// every change would hold the tunnels' packets while the underlay is asked again), unless the
/// underlay itself changed (`None`: everything did).
#[test]
fn a_snapshot_change_keeps_the_underlay_neighbours() {
    let n = topo();
    let mut st = state(&n);
    let host1: IpAddr = "192.168.7.11".parse().unwrap();
    assert_eq!(st.neighbours.lookup(UNDERLAY_PORT, host1, 1), Some(HOST1_MAC));
    st.snapshot_changed(&n.snap, Some(&[n.snap.device_tag(DeviceId::Port(n.vm1))]));
    assert_eq!(st.neighbours.lookup(UNDERLAY_PORT, host1, 1), Some(HOST1_MAC), "a port changed");
    st.snapshot_changed(&n.snap, None);
    assert_eq!(st.neighbours.lookup(UNDERLAY_PORT, host1, 1), None, "everything changed");
}
