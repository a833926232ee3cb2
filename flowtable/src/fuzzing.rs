//! Test hooks shared by the cargo-fuzz targets (`flowtable/fuzz/`: `packet_parser`, `pipeline`)
//! and the proptests that stand in for them in CI. Not part of the API.

use core::net::IpAddr;

use crate::sim::{self, CoreConfig, CoreState, Output, UNDERLAY_PORT};
use crate::topology::{Encap, PortId, Route, RouterId, Snapshot, SnapshotBuilder, Underlay, Uuid};
use crate::wire::{self, EthernetAddress, Fragment, Headers, L3, L4};

/// The `packet_parser` fuzz target's body: parse a frame, verify its checksums, and run every view
/// and `Repr::parse` on the offsets found and on the raw bytes; then the same again with the IPv4
/// header checksums made right ([`fix_ipv4_headers`]), so that a mutation reaches the layers
/// beyond a header the parser would refuse. Panics only if a parser does, or if the offsets
/// `Headers::parse` returned are inconsistent.
pub fn packet_parser(data: &[u8]) {
    parse_everything(data);
    let mut fixed = data.to_vec();
    if fix_ipv4_headers(&mut fixed) {
        parse_everything(&fixed);
    }
}

/// Makes the IPv4 header checksum of `frame` right (at offset 14, or 18 behind one 802.1Q tag),
/// and that of the frame a VXLAN (UDP 4789) or GRE packet carries, found by the bytes alone: the
/// parser refuses a wrong one, which a fuzzer's mutation almost always leaves. Says whether it
/// changed anything.
pub fn fix_ipv4_headers(frame: &mut [u8]) -> bool {
    let mut changed = false;
    let mut start = 0;
    // The frame and at most one frame inside it.
    for _ in 0..2 {
        let Some(f) = frame.get_mut(start..) else { break };
        let l3 = match (f.get(12..14), f.get(16..18)) {
            (Some([0x08, 0x00]), _) => 14,
            (Some([0x81, 0x00]), Some([0x08, 0x00])) => 18,
            _ => break,
        };
        let Some(&version_ihl) = f.get(l3) else { break };
        let ihl = usize::from(version_ihl & 0x0f) * 4;
        if version_ihl >> 4 != 4 || ihl < 20 || f.len() < l3 + ihl {
            break;
        }
        let mut ip = wire::Ipv4Packet::new_unchecked(&mut f[l3..]);
        let before = ip.checksum();
        ip.fill_checksum();
        changed |= ip.checksum() != before;
        let l4 = l3 + ihl;
        let inner = match (f[l3 + 9], f.get(l4 + 2..l4 + 4)) {
            (17, Some(port)) if port == wire::VXLAN_DEFAULT_UDP_PORT.to_be_bytes() => l4 + 16,
            (47, _) => match f.get(l4..).map(wire::GrePacket::new_checked) {
                Some(Ok(gre)) => l4 + gre.header_len(),
                _ => break,
            },
            _ => break,
        };
        start += inner;
    }
    changed
}

fn parse_everything(data: &[u8]) {
    if let Ok(h) = Headers::parse(data) {
        assert!(h.l3_offset <= h.l4_offset && h.l4_offset <= h.payload_offset);
        assert!(h.payload_offset <= h.end && h.end <= data.len());
        let _ = h.verify_checksums(data);
        let l3 = &data[h.l3_offset..h.end];
        let l4 = &data[h.l4_offset..h.end];
        let pseudo = h.pseudo_header();
        match h.l3 {
            L3::Ipv4(_) => {
                let p = wire::Ipv4Packet::new_checked(l3).expect("parsed IPv4 re-checks");
                let _ = wire::Ipv4Repr::parse(&p);
                let _ = (p.options().len(), p.payload().len());
            }
            L3::Ipv6(_) => {
                let p = wire::Ipv6Packet::new_checked(l3).expect("parsed IPv6 re-checks");
                let _ = wire::Ipv6Repr::parse(&p);
                let _ = p.ext_chain(wire::DEFAULT_MAX_EXT_HEADERS).expect("parsed chain re-walks");
            }
            L3::Arp(_) | L3::Other => {}
        }
        if let Some(pseudo) = pseudo {
            match h.l4 {
                L4::Tcp { .. } => {
                    let p = wire::TcpPacket::new_checked(l4).expect("parsed TCP re-checks");
                    let _ = wire::TcpRepr::parse(&p, &pseudo);
                }
                // A first fragment's length field counts the whole datagram: only its header checks.
                L4::Udp { .. } if h.fragment() == Fragment::First => {
                    let p = wire::UdpPacket::new_unchecked(l4);
                    p.check_header().expect("parsed UDP header re-checks");
                    let _ = (p.src_port(), p.dst_port(), p.len());
                }
                L4::Udp { dst_port, .. } => {
                    let p = wire::UdpPacket::new_checked(l4).expect("parsed UDP re-checks");
                    let _ = wire::UdpRepr::parse(&p, &pseudo);
                    if dst_port == wire::VXLAN_DEFAULT_UDP_PORT {
                        if let Ok(v) = wire::VxlanPacket::new_checked(p.payload()) {
                            let _ = wire::VxlanRepr::parse(&v);
                            parse_everything(v.payload());
                        }
                    }
                }
                L4::Icmpv4 { .. } => {
                    let p = wire::Icmpv4Packet::new_checked(l4).expect("parsed ICMPv4 re-checks");
                    let _ = wire::Icmpv4Repr::parse(&p);
                }
                L4::Icmpv6 { .. } => {
                    let p = wire::Icmpv6Packet::new_checked(l4).expect("parsed ICMPv6 re-checks");
                    let _ = wire::Icmpv6Repr::parse(&pseudo, &p);
                    for o in p.ndp_options() {
                        let _ = o;
                    }
                }
                L4::Gre { .. } => {
                    let p = wire::GrePacket::new_checked(l4).expect("parsed GRE re-checks");
                    let _ = wire::GreRepr::parse(&p);
                    parse_everything(p.payload());
                }
                L4::None => {}
            }
        }
    }
    // Every view on the raw bytes as well: none may panic after new_checked.
    if let Ok(p) = wire::ArpPacket::new_checked(data) {
        let _ = wire::ArpRepr::parse(&p);
    }
    if let Ok(p) = wire::GrePacket::new_checked(data) {
        let _ = (wire::GreRepr::parse(&p), p.payload().len());
    }
    if let Ok(p) = wire::VxlanPacket::new_checked(data) {
        let _ = (wire::VxlanRepr::parse(&p), p.payload().len());
    }
    if let Ok(p) = wire::Icmpv6Packet::new_checked(data) {
        let _ = (p.target_addr(), p.ndp_options().count(), p.data().len());
    }
    let _ = wire::walk_ipv6_ext_headers(data, wire::IpProtocol::HopByHop, wire::DEFAULT_MAX_EXT_HEADERS);
    let _ = (wire::ipv6_ext_headers_at_destination(data, false), wire::ipv6_ext_headers_at_destination(data, true));
    let _ = (wire::classify_ipv4_options(data), wire::unwalkable_ipv4_option(data));
}

/// The DPDK ports of [`pipeline_topology`]: uplink, bridge port, underlay, and one nothing is bound to.
pub const PIPELINE_INGRESS: [u16; 4] = [0, 1, 5, 9];

/// The fixed topology of the `pipeline` fuzz target: router R with `up` 192.0.2.1/24 and
/// 2001:db8:1::1/64 (MAC 02:00:00:00:00:01) on DPDK 0 and `rb` 10.0.0.1/24 and 2001:db8:2::1/64
/// (MAC 02:00:00:00:00:05) linked to bridge B; B has a port on DPDK 1, a port bound on host 1
/// (VXLAN, 192.168.7.11, key 0x101) and one on host 2 (GRE, 192.168.7.12, key 0x102), and a
/// static MAC 02:cc:00:00:00:01 on the DPDK 1 port. Underlay: DPDK 5, 192.168.7.1/24, VXLAN 4789.
/// Routes: defaults through `up` (192.0.2.254, 2001:db8:1::fe).
pub fn pipeline_topology() -> Snapshot {
    pipeline_builder().0.build().expect("the fuzz topology is valid")
}

/// [`pipeline_topology`] with a stateful infilter on the router: (1) accept return-flow; (2) drop
/// UDP to port 9; (3) accept. Every routed path then carries the conntrack refresh
/// ([`sim::Action::Track`]), and drops depend on the connection table.
pub fn pipeline_topology_stateful() -> Snapshot {
    use crate::chain::{Condition, Field, FlowDirection, PortRange, RuleKind};
    let (mut b, r) = pipeline_builder();
    let c = b.add_chain(Uuid(30), "stateful");
    let ret = Condition { flow: Some(FlowDirection::Return), ..Condition::default() };
    b.add_new_rule(c, Uuid(31), ret, RuleKind::Accept).expect("valid rule");
    let discard = Condition {
        proto: Some(Field::is(17)),
        dst_port: Some(Field::is(PortRange::new(9, 9))),
        ..Condition::default()
    };
    b.add_new_rule(c, Uuid(32), discard, RuleKind::Drop).expect("valid rule");
    b.add_new_rule(c, Uuid(33), Condition::default(), RuleKind::Accept).expect("valid rule");
    b.set_router_filters(r, Some(c), None);
    b.build().expect("the stateful fuzz topology is valid")
}

fn pipeline_builder() -> (SnapshotBuilder, RouterId) {
    let net = |s: &str| s.parse::<ipnet::IpNet>().expect("literal");
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(
        r,
        Uuid(2),
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        &[net("192.0.2.1/24"), net("2001:db8:1::1/64")],
    );
    let rb = b.add_router_port(
        r,
        Uuid(3),
        EthernetAddress([2, 0, 0, 0, 0, 5]),
        &[net("10.0.0.1/24"), net("2001:db8:2::1/64")],
    );
    let br = b.add_bridge(Uuid(10));
    let b_r = b.add_bridge_port(br, Uuid(11));
    let local = b.add_bridge_port(br, Uuid(12));
    let vm1 = b.add_bridge_port(br, Uuid(13));
    let vm2 = b.add_bridge_port(br, Uuid(14));
    let h1 = b.add_host(Uuid(20), "192.168.7.11".parse().expect("literal"), Encap::Vxlan);
    let h2 = b.add_host(Uuid(21), "192.168.7.12".parse().expect("literal"), Encap::Gre);
    b.link(rb, b_r);
    b.bind_local(up, 0);
    b.bind_local(local, 1);
    b.bind_remote(vm1, h1, 0x101);
    b.bind_remote(vm2, h2, 0x102);
    b.add_static_mac(br, EthernetAddress([2, 0xcc, 0, 0, 0, 1]), local);
    b.set_underlay(Underlay::new(5, "192.168.7.1".parse().expect("literal"), 24));
    let any4 = net("0.0.0.0/0");
    let any6 = net("::/0");
    b.add_route(r, Route::normal(Uuid(4), any4, any4, up, Some("192.0.2.254".parse().expect("literal")), 1));
    b.add_route(r, Route::normal(Uuid(5), any6, any6, up, Some("2001:db8:1::fe".parse().expect("literal")), 1));
    (b, r)
}

/// Per-core state for [`pipeline_topology`] that knows the uplink gateway, one VM behind the
/// bridge's tunnel port and host 1 on the underlay (host 2 stays unresolved).
pub fn pipeline_state() -> CoreState {
    let mut s = CoreState::new(&CoreConfig { neighbour_capacity: 64, mac_capacity: 64, ..CoreConfig::default() });
    let ip = |s: &str| s.parse::<IpAddr>().expect("literal");
    s.set_port_mac(5, EthernetAddress([2, 0x55, 0, 0, 0, 1]));
    s.neighbours.learn(PortId(0), ip("192.0.2.254"), EthernetAddress([2, 0xaa, 0, 0, 0, 0xfe]), 0);
    s.neighbours.learn(PortId(1), ip("10.0.0.5"), EthernetAddress([2, 0xcc, 0, 0, 0, 5]), 0);
    s.neighbours.learn(UNDERLAY_PORT, ip("192.168.7.11"), EthernetAddress([2, 0x77, 0, 0, 0, 11]), 0);
    s.macs.learn(crate::topology::BridgeId(0), EthernetAddress([2, 0xcc, 0, 0, 0, 5]), PortId(4), 0);
    s
}

/// Valid inputs of the `pipeline` target for [`pipeline_topology`] (a selector byte, then the
/// frame), one per path worth mutating from: what the fuzz runs start their corpus with
/// (`examples/fuzz_seeds.rs`) and what the proptests mutate. In order: UDP from the uplink to the
/// VM behind VXLAN; UDP from a host on DPDK 1 to the uplink; ARP on the bridge (flooded); ARP on
/// the underlay; VXLAN from host 1 to the uplink; GRE from host 2 to the uplink; ICMP echo to the
/// router's uplink address; TCP SYN from the uplink to the VM; the first UDP
/// frame with an 802.1Q priority tag (PCP 5, VID 0: routed, and sent untagged; a VLAN ID would stop at the router); the first UDP frame as the first fragment of a larger datagram; NDP
/// neighbour solicitation for the router's IPv6 address; ICMPv6 echo to it; the first UDP frame
/// with a record route option (forwarded), with a loose source route (dropped at the router) and
/// with options that cannot be walked (answered a parameter problem); the ICMPv6 echo with a spent
/// routing header (answered without it) and with one with segments left (a parameter problem);
/// the ICMP echo with a timestamp option (answered, the router's entry recorded); UDP to the
/// router's address (port unreachable); an echo to the underlay address (answered in place).
pub fn pipeline_seeds() -> Vec<Vec<u8>> {
    let udp_in =
        framed(0, "020000000001 02aa000000fe 0800 4500001c000740004011 0000 c6336409 0a000005 03e8003500080000");
    let udp_out =
        framed(1, "020000000005 02cc00000009 0800 4500001c000740004011 0000 0a000009 c6336409 03e8003500080000");
    let arp = framed(1, "ffffffffffff 02cc00000009 0806 0001080006040001 02cc00000009 0a000009 000000000000 0a000001");
    let underlay_arp =
        framed(2, "ffffffffffff 027700000011 0806 0001080006040001 027700000011 c0a8070b 000000000000 c0a80701");
    let vxlan = tunnelled(
        "025500000001 027700000011 0800 4500004e000040004011 0000 c0a8070b c0a80701 c350 12b5 003a 0000 08000000 00010100",
        &udp_out[1..],
    );
    let gre = tunnelled(
        "025500000001 027700000012 0800 4500004600004000402f 0000 c0a8070c c0a80701 2000 6558 00000102",
        &framed(1, "020000000005 02cc0000000b 0800 4500001c000740004011 0000 0a00000b c6336409 03e8003500080000")[1..],
    );
    let echo =
        framed(0, "020000000001 02aa000000fe 0800 4500001c000840004001 0000 c6336409 c0000201 0800 0000 1234 0001");
    let syn = framed(
        0,
        "020000000001 02aa000000fe 0800 45000028000940004006 0000 c6336409 0a000005 9c40 0050 00000001 00000000 5002 ffff 0000 0000",
    );
    let tagged = framed(
        0,
        "020000000001 02aa000000fe 8100 a000 0800 4500001c000740004011 0000 c6336409 0a000005 03e8003500080000",
    );
    let fragment =
        framed(0, "020000000001 02aa000000fe 0800 4500001c000720004011 0000 c6336409 0a000005 03e8003500100000");
    let solicit = framed(
        0,
        concat!(
            "3333ff000001 02aa000000fe 86dd 6000000000203aff 20010db80001000000000000000000fe ff0200000000000000000001ff000001",
            "8700 0000 00000000 20010db8000100000000000000000001 0101 02aa000000fe"
        ),
    );
    let echo6 = framed(
        0,
        concat!(
            "020000000001 02aa000000fe 86dd 60000000000c3a40 20010db8009900000000000000000009 20010db8000100000000000000000001",
            "8000 0000 1234 0001 70696e67"
        ),
    );
    let record_route = framed(
        0,
        "020000000001 02aa000000fe 0800 470000240007400040110000 c6336409 0a000005 0707040000000000 03e8003500080000",
    );
    let source_route = framed(
        0,
        "020000000001 02aa000000fe 0800 470000240007400040110000 c6336409 0a000005 01830704c0000201 03e8003500080000",
    );
    let bad_options = framed(
        0,
        "020000000001 02aa000000fe 0800 470000240007400040110000 c6336409 0a000005 0101018300000000 03e8003500080000",
    );
    let echo6_routed = |segments_left: &str| {
        framed(
            0,
            &[
                "020000000001 02aa000000fe 86dd 60000000 0024 2b 40 20010db8009900000000000000000009",
                "20010db8000100000000000000000001 3a 02 00",
                segments_left,
                "00000000 20010db8000100000000000000000009 8000 0000 1234 0001 70696e67",
            ]
            .join(" "),
        )
    };
    let (echo6_spent_route, echo6_route) = (echo6_routed("00"), echo6_routed("01"));
    let echo_timestamp = framed(
        0,
        "020000000001 02aa000000fe 0800 48000028000840004001 0000 c6336409 c0000201 44 0c 05 01 0000000000000000 0800 0000 1234 0001",
    );
    let udp_to_router =
        framed(0, "020000000001 02aa000000fe 0800 4500001c000740004011 0000 c6336409 c0000201 829a829a00080000");
    let underlay_echo =
        framed(2, "025500000001 027700000011 0800 4500001c000840004001 0000 c0a8070b c0a80701 0800 0000 1234 0001");
    vec![
        udp_in,
        udp_out,
        arp,
        underlay_arp,
        vxlan,
        gre,
        echo,
        syn,
        tagged,
        fragment,
        solicit,
        echo6,
        record_route,
        source_route,
        bad_options,
        echo6_spent_route,
        echo6_route,
        echo_timestamp,
        udp_to_router,
        underlay_echo,
    ]
}

/// A selector byte and the frame written in `hex` (spaces ignored), its checksums filled in.
fn framed(selector: u8, hex: &str) -> Vec<u8> {
    let hex: String = hex.split_whitespace().collect();
    let mut data = vec![selector];
    data.extend((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex literal")));
    fill_checksums(&mut data[1..]);
    data
}

/// Selector 2 (the underlay), the outer headers in `outer_hex` and `inner` after them, the outer
/// IPv4 checksum filled in (the tunnel header carries none: VXLAN's UDP checksum is 0).
fn tunnelled(outer_hex: &str, inner: &[u8]) -> Vec<u8> {
    let mut data = framed(2, outer_hex);
    data.extend_from_slice(inner);
    fill_checksums(&mut data[1..]);
    data
}

/// Fills the IPv4 header checksum and the TCP, UDP, ICMP or ICMPv6 checksum of `frame` (as far as
/// it parses).
fn fill_checksums(frame: &mut [u8]) {
    fix_ipv4_headers(frame);
    let Ok(h) = Headers::parse(frame) else { return };
    let (Some(pseudo), l4) = (h.pseudo_header(), &mut frame[h.l4_offset..h.end]) else { return };
    match h.l4 {
        L4::Tcp { .. } => {
            if let Ok(mut p) = wire::TcpPacket::new_checked(l4) {
                p.fill_checksum(&pseudo);
            }
        }
        // A tunnel's UDP (VXLAN) keeps its zero checksum.
        L4::Udp { dst_port, .. } if dst_port != wire::VXLAN_DEFAULT_UDP_PORT => {
            if let Ok(mut p) = wire::UdpPacket::new_checked(l4) {
                p.fill_checksum(&pseudo);
            }
        }
        L4::Icmpv4 { .. } => {
            if let Ok(mut p) = wire::Icmpv4Packet::new_checked(l4) {
                p.fill_checksum();
            }
        }
        L4::Icmpv6 { .. } => {
            if let Ok(mut p) = wire::Icmpv6Packet::new_checked(l4) {
                p.fill_checksum(&pseudo);
            }
        }
        _ => {}
    }
}

/// The `pipeline` fuzz target's body: the frame `data[1..]`, received on the DPDK port
/// `PIPELINE_INGRESS[data[0] % 4]`, through [`sim::simulate`] against [`pipeline_topology`], twice
/// (the first run learns); a cacheable result replayed with [`sim::apply`] on a fresh copy must
/// give the same frame to send (outer headers included; after the tag a router removed) and a
/// cached drop the same reason. Unless bit 7 of
/// `data[0]` is set, the frame's IPv4 header checksums are made right first ([`fix_ipv4_headers`]),
/// so that mutations reach the simulation. Never panics.
pub fn pipeline(snap: &Snapshot, state: &mut CoreState, data: &[u8]) {
    let Some((&selector, frame)) = data.split_first() else { return };
    let ingress = PIPELINE_INGRESS[usize::from(selector) % PIPELINE_INGRESS.len()];
    let mut fixed;
    let frame = if selector & 0x80 == 0 {
        fixed = frame.to_vec();
        fix_ipv4_headers(&mut fixed);
        &fixed[..]
    } else {
        frame
    };
    let _ = sim::decap(snap, frame);
    let mut out = [0u8; 1514];
    for now in [1, 2] {
        let mut f = frame.to_vec();
        let r = sim::simulate(snap, ingress, &mut f, state, now, &mut out);
        assert!(r.decap_len <= f.len() && r.frame_start() <= f.len());
        if let Some(g) = r.generated {
            assert!(g.len <= out.len() && !g.legs.is_empty());
        }
        let _ = state.macs.take_moved();
        if !r.cacheable {
            continue;
        }
        let mut copy = frame.to_vec();
        let applied = sim::apply(snap, &r.actions, &mut copy[r.decap_len..], state, now);
        match r.actions.drop_reason() {
            Some(reason) => assert_eq!(applied, Err(reason)),
            None => {
                let Ok(Output { outer, .. }) = applied else { panic!("cached {:?} failed: {applied:?}", r.actions) };
                assert_eq!(outer, r.outer);
                let start = r.frame_start();
                assert_eq!(copy[start..], f[start..], "apply == simulate for {:?}", r.actions);
            }
        }
    }
}

/// Most inputs of the `pipeline` target one `pipeline_stateful` input holds.
pub const SEQUENCE_MAX: usize = 4;

/// The `pipeline_stateful` fuzz target's body: up to [`SEQUENCE_MAX`] inputs of the `pipeline`
/// target (each a two-byte big-endian length, then that many bytes, cut short at the end), run
/// through [`pipeline`] against `snap` (meant: [`pipeline_topology_stateful`]) on one core state,
/// so the later frames meet the connections and neighbours the earlier ones left. Never panics.
pub fn pipeline_sequence(snap: &Snapshot, data: &[u8]) {
    let mut state = pipeline_state();
    let mut rest = data;
    for _ in 0..SEQUENCE_MAX {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else { return };
        let (input, tail) = tail.split_at(usize::from(u16::from_be_bytes(*len)).min(tail.len()));
        pipeline(snap, &mut state, input);
        rest = tail;
    }
}

/// `inputs` as one [`pipeline_sequence`] input (the first [`SEQUENCE_MAX`]; each at most 65535
/// bytes).
pub fn sequence(inputs: &[&[u8]]) -> Vec<u8> {
    let mut data = Vec::new();
    for input in inputs.iter().take(SEQUENCE_MAX) {
        let input = &input[..input.len().min(usize::from(u16::MAX))];
        data.extend_from_slice(&(input.len() as u16).to_be_bytes());
        data.extend_from_slice(input);
    }
    data
}

/// Seed inputs of the `pipeline_stateful` target: every seed alone, and every seed followed by
/// each other one (connections opened one way and met the other, or by unrelated traffic).
pub fn pipeline_sequence_seeds() -> Vec<Vec<u8>> {
    let seeds = pipeline_seeds();
    let mut out: Vec<Vec<u8>> = seeds.iter().map(|s| sequence(&[s])).collect();
    for a in &seeds {
        for b in &seeds {
            out.push(sequence(&[a, b]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pipeline_seeds_take_the_interesting_paths() {
        let snap = pipeline_topology();
        let mut st = pipeline_state();
        let mut out = [0u8; 1514];
        let outcomes: Vec<_> = pipeline_seeds()
            .iter()
            .map(|d| {
                let mut f = d[1..].to_vec();
                let r = sim::simulate(&snap, PIPELINE_INGRESS[usize::from(d[0]) % 4], &mut f, &mut st, 1, &mut out);
                let answered = r.generated.is_some();
                (
                    r.actions.drop_reason(),
                    r.actions.output(),
                    r.actions.encap().is_some(),
                    r.frame_start(),
                    r.flood.len(),
                    answered,
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (None, None, true, 0, 0, false),      // uplink -> router -> bridge -> VXLAN to host 1
                (None, Some(0), false, 0, 0, false),  // host on DPDK 1 -> router -> uplink
                (None, None, false, 0, 2, true),      // ARP broadcast: flooded to both tunnels, answered
                (None, Some(5), false, 0, 0, false),  // underlay ARP answered in place
                (None, Some(0), false, 50, 0, false), // VXLAN -> router -> uplink
                (None, Some(0), false, 42, 0, false), // GRE (with key) -> router -> uplink
                (None, Some(0), false, 0, 0, false),  // echo to the router: answered in place
                (None, None, true, 0, 0, false),      // TCP SYN to the VM behind VXLAN
                (None, None, true, 4, 0, false),      // the same with an 802.1Q priority tag: untagged
                (None, None, true, 0, 0, false),      // a first fragment (UDP length beyond it) too
                (Some(sim::DropReason::NdpConsumed), None, false, 0, 0, true), // NS answered with an NA
                (None, Some(0), false, 0, 0, false),  // ICMPv6 echo to the router: answered in place
                (None, None, true, 0, 0, false),      // record route: forwarded as it came
                (Some(sim::DropReason::SourceRouted), None, false, 0, 0, false), // loose source route
                (Some(sim::DropReason::Ipv4BadOptions), None, false, 0, 0, true), // answered param. problem
                (None, Some(0), false, 24, 0, false), // ICMPv6 echo, spent routing header: answered without
                (Some(sim::DropReason::Ipv6ExtensionHeader), None, false, 0, 0, true), // segments left
                (None, Some(0), false, 0, 0, false),  // echo with a timestamp option: answered in place
                (Some(sim::DropReason::PortUnreachable), None, false, 0, 0, true), // UDP to the router
                (None, Some(5), false, 0, 0, false),  // echo to the underlay address: answered in place
            ]
        );
    }

    /// The longest list a routed frame gets, from a bridge's exterior port (the bridge learns)
    /// through a stateful router (the connection is tracked) with a priority tag: as many actions
    /// as a list holds, the tag's removal in the destination's action, and the frame sent as the
    /// same frame without the tag is.
    #[test]
    fn the_longest_routed_list_removes_a_tag_too() {
        let snap = pipeline_topology_stateful();
        let mut out = [0u8; 1514];
        let d = &pipeline_seeds()[1];
        let ingress = PIPELINE_INGRESS[usize::from(d[0]) % 4];
        let mut want = d[1..].to_vec();
        sim::simulate(&snap, ingress, &mut want, &mut pipeline_state(), 1, &mut out);
        let mut f = [&d[1..13], &[0x81, 0x00, 0xa0, 0x00], &d[13..]].concat();
        let r = sim::simulate(&snap, ingress, &mut f, &mut pipeline_state(), 1, &mut out);
        assert!(r.cacheable, "{:?}", r.actions);
        assert_eq!(r.actions.as_slice().len(), sim::MAX_ACTIONS, "{:?}", r.actions);
        assert!(matches!(r.actions.as_slice()[0], sim::Action::Learn(_)), "{:?}", r.actions);
        assert!(r.actions.as_slice().iter().any(|a| matches!(a, sim::Action::Track { .. })), "{:?}", r.actions);
        assert_eq!((r.actions.output(), r.frame_start()), (Some(0), 4), "{:?}", r.actions);
        assert_eq!(f[4..], want[..]);
    }

    #[test]
    fn stateful_seeds_carry_the_conntrack_refresh() {
        let snap = pipeline_topology_stateful();
        let mut st = pipeline_state();
        let mut out = [0u8; 1514];
        // Uplink -> bridge -> VXLAN, VM -> uplink, VXLAN -> uplink: routed, so tracked and cacheable.
        for seed in [0, 1, 4] {
            let d = &pipeline_seeds()[seed];
            let mut f = d[1..].to_vec();
            let r = sim::simulate(&snap, PIPELINE_INGRESS[usize::from(d[0]) % 4], &mut f, &mut st, 1, &mut out);
            assert!(r.cacheable, "seed {seed}: {:?}", r.actions);
            assert!(r.actions.as_slice().iter().any(|a| matches!(a, sim::Action::Track { .. })), "seed {seed}");
        }
        assert_eq!(st.conntrack.len(1), 2, "two connections: uplink <-> 10.0.0.5 and 10.0.0.9 <-> uplink");
    }

    #[test]
    fn sequences_hold_their_inputs() {
        let (a, b) = (vec![1u8, 2, 3], vec![4u8; 300]);
        assert_eq!(sequence(&[&a, &b])[..5], [0, 3, 1, 2, 3]);
        assert_eq!(sequence(&[&a, &b]).len(), 2 + 3 + 2 + 300);
        assert_eq!(sequence(&[a.as_slice(); 6]).len(), SEQUENCE_MAX * 5, "at most SEQUENCE_MAX inputs");
        assert_eq!(pipeline_sequence_seeds().len(), 20 + 20 * 20);
        let snap = pipeline_topology_stateful();
        for data in pipeline_sequence_seeds() {
            pipeline_sequence(&snap, &data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The `pipeline_stateful` fuzz target on arbitrary bytes.
        #[test]
        fn pipeline_sequence_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            pipeline_sequence(&pipeline_topology_stateful(), &data);
        }

        /// The `pipeline` fuzz target on arbitrary bytes (CI's stand-in for `cargo fuzz run pipeline`).
        #[test]
        fn pipeline_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let snap = pipeline_topology();
            pipeline(&snap, &mut pipeline_state(), &data);
        }

        /// The `pipeline` fuzz target on valid frames with a few bytes changed or cut, so the
        /// mutations reach the simulation's deeper paths.
        #[test]
        fn pipeline_on_mutated_frames(
            seed in 0..pipeline_seeds().len(),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
            cut in proptest::option::of(any::<u16>()),
        ) {
            let mut data = pipeline_seeds()[seed].clone();
            for (at, v) in edits {
                let at = usize::from(at) % data.len();
                data[at] = v;
            }
            if let Some(c) = cut {
                data.truncate(usize::from(c) % (data.len() + 1));
            }
            let snap = pipeline_topology();
            pipeline(&snap, &mut pipeline_state(), &data);
        }

        /// The same mutations against the topology with a stateful router filter: a frame, its
        /// reply direction (addresses and ports swapped by the mutation or not) and the cached
        /// conntrack refresh keep `apply == simulate`.
        #[test]
        fn pipeline_with_conntrack_on_mutated_frames(
            seeds in proptest::collection::vec(0..pipeline_seeds().len(), 1..4),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..3),
        ) {
            let snap = pipeline_topology_stateful();
            let mut state = pipeline_state();
            for seed in seeds {
                let mut data = pipeline_seeds()[seed].clone();
                for &(at, v) in &edits {
                    let at = usize::from(at) % data.len();
                    data[at] = v;
                }
                pipeline(&snap, &mut state, &data);
            }
        }

        /// The fuzz target on arbitrary bytes (what CI runs in place of `cargo fuzz run packet_parser`).
        #[test]
        fn packet_parser_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            packet_parser(&data);
        }

        /// The fuzz target on frames that start with a plausible Ethernet/IP prefix, so the random part
        /// reaches the deeper parsers.
        #[test]
        fn packet_parser_on_plausible_frames(
            ethertype in prop_oneof![Just([0x08u8, 0x00]), Just([0x86, 0xdd]), Just([0x08, 0x06]), Just([0x81, 0x00])],
            ip_first in prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
            proto in prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(47), Just(0), Just(43), Just(44), Just(60), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, ethertype[0], ethertype[1], ip_first];
            frame.extend_from_slice(&rest);
            let len = frame.len();
            if len >= 24 {
                // IPv4 protocol / IPv6 next header, and lengths that fit.
                frame[14 + 9] = proto;
                frame[14 + 6] = proto;
                let l3 = (len - 14) as u16;
                frame[14 + 2..14 + 4].copy_from_slice(&l3.to_be_bytes());
                if ip_first == 0x60 {
                    frame[14 + 4..14 + 6].copy_from_slice(&l3.saturating_sub(40).to_be_bytes());
                }
            }
            packet_parser(&frame);
        }
    }
}
