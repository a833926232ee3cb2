//! The gateway pipeline on real EAL with `net_ring` ports: one router with two exterior ports,
//! hosts on either side injecting frames and reading what the worker sends them.
//!
//! Router R: port A 10.1.0.1/24 and fd00:1::1/64 (MAC 02:00:00:00:01:01) on appliance port 0, port
//! B 10.2.0.1/24 (MAC 02:00:00:00:02:01) on appliance port 1. Host A is 10.1.0.2 (and fd00:1::2),
//! host B 10.2.0.2.

mod common;

use common::ring::{
    arp, counter, ip, published, short_lived_neighbours, two_port_router, udp_frame, valid, with_two_ports,
    with_two_ports_two_workers, Host, ARRIVAL_LIMIT, MAC_HA, MAC_HB, MAC_RA, MAC_RB,
};

use std::time::{Duration, Instant};

use midogw::flowtable::flow::FlowCacheConfig;
use midogw::flowtable::sim::{CoreConfig, DropReason};
use midogw::flowtable::wire::{
    ArpOperation, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Message, Icmpv4Packet, Icmpv6Message,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv6Packet, Ipv6Repr, ParseError, PseudoHeader, L3, L4,
};
use midogw::{PipelineConfig, PipelineCounters};

/// IPv4/UDP from host A to `dst` through the router's port A.
fn udp(dst: &str, sport: u16, ttl: u8) -> Vec<u8> {
    udp_frame(MAC_HA, MAC_RA, "10.1.0.2", dst, sport, ttl, 32)
}

/// Brings up EAL, the router's two ports, the two hosts and one pipeline worker, runs `body`,
/// stops the worker and checks every mbuf went back to the pool.
fn with_router(tag: &str, body: impl FnOnce(&mut Host<'_>, &mut Host<'_>, &PipelineCounters)) {
    let pipeline = PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        ..PipelineConfig::default()
    };
    with_router_config(tag, &pipeline, body);
}

/// [`with_router`] with the worker's configuration given.
fn with_router_config(
    tag: &str,
    pipeline: &PipelineConfig,
    body: impl FnOnce(&mut Host<'_>, &mut Host<'_>, &PipelineCounters),
) {
    with_two_ports(tag, two_port_router, pipeline, body);
}

/// Host B announces itself: ARP request for 10.2.0.1; the router answers and learns B.
fn learn_b(hb: &mut Host<'_>) {
    hb.send(&arp(ArpOperation::Request, MAC_HB, EthernetAddress::BROADCAST, "10.2.0.2", "10.2.0.1"));
    let got = hb.recv(1);
    assert_eq!(got.len(), 1, "ARP reply");
}

#[test]
fn pipeline_answers_arp_for_its_port_address() {
    with_router("parp", |ha, _hb, c| {
        ha.send(&arp(ArpOperation::Request, MAC_HA, EthernetAddress::BROADCAST, "10.1.0.2", "10.1.0.1"));
        let got = ha.recv(1);
        assert_eq!(got.len(), 1);
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RA, MAC_HA));
        let L3::Arp(a) = h.l3 else { panic!("not ARP: {h:?}") };
        assert_eq!(a.operation, ArpOperation::Reply);
        assert_eq!((a.source_hardware_addr, a.source_protocol_addr), (MAC_RA, ip("10.1.0.1")));
        assert_eq!((a.target_hardware_addr, a.target_protocol_addr), (MAC_HA, ip("10.1.0.2")));
        published(|| counter(&c.rx_packets) == 1);
        assert_eq!(counter(&c.rx_packets), 1);
    });
}

#[test]
fn pipeline_forwards_udp_and_hits_the_flow_cache() {
    with_router("pfwd", |ha, hb, c| {
        learn_b(hb);
        let sent = udp("10.2.0.2", 5000, 64);
        for round in 0..2 {
            ha.send(&sent);
            let got = hb.recv(1);
            assert_eq!(got.len(), 1, "round {round}");
            let h = valid(&got[0]);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_HB), "router MAC to neighbour MAC");
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!((f.src, f.dst, f.ttl), (ip("10.1.0.2"), ip("10.2.0.2"), 63));
            assert_eq!(got[0][14 + 20..], sent[14 + 20..], "UDP untouched");
        }
        ha.silent();
        // First UDP packet: miss + simulation; second: hit, not simulated.
        published(|| counter(&c.cache_hits) == 1 && counter(&c.simulated) == 2 && counter(&c.tx_packets) == 3);
        assert_eq!(counter(&c.cache_hits), 1);
        assert_eq!(counter(&c.simulated), 2, "the ARP request and the first UDP packet");
        assert_eq!(counter(&c.tx_packets), 3, "ARP reply and two forwarded packets");
    });
}

/// `frame` with an 802.1Q tag carrying `tci` after its MAC addresses.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    [&frame[..12], &[0x81, 0x00], &tci.to_be_bytes()[..], &frame[12..]].concat()
}

/// Router ports are untagged: a frame of VLAN 100 is dropped and counted, from the cache the
/// second time; a priority-tagged one (VID 0) is routed both times and leaves untagged, as the
/// same frame without the tag does (the router writes a new layer-2 header): the mbuf lost the
/// tag's 4 bytes at the front (`rte_pktmbuf_adj`: its data starts 4 bytes later in the buffer,
/// its packet length followed), and its bytes are the untagged frame's, byte for byte.
#[test]
fn frames_of_a_vlan_stop_at_the_router_and_priority_tagged_ones_pass_untagged() {
    with_router("pvlan", |ha, hb, c| {
        learn_b(hb);
        let in_vlan = tagged(&udp("10.2.0.2", 5001, 64), 100);
        let plain = udp("10.2.0.2", 5002, 64);
        let priority = tagged(&plain, 5 << 13);
        ha.send(&plain);
        let want = hb.recv_mbufs(1);
        assert_eq!(want.len(), 1, "the frame without the tag");
        let want = &want[0];
        let h = valid(&want.data);
        assert_eq!((h.vlan, h.eth_src, h.eth_dst), (None, MAC_RB, MAC_HB));
        assert!(matches!(h.l3, L3::Ipv4(f) if f.ttl == 63), "{h:?}");
        for round in 0..2 {
            ha.send(&in_vlan);
            ha.send(&priority);
            let got = hb.recv_mbufs(1);
            assert_eq!(got.len(), 1, "round {round}: the priority-tagged frame only");
            let got = &got[0];
            assert_eq!(got.data, want.data, "round {round}: as without the tag");
            assert_eq!((got.data.len(), got.pkt_len as usize), (priority.len() - 4, priority.len() - 4));
            assert_eq!(got.headroom, want.headroom + 4, "round {round}: the tag's bytes left the front");
        }
        hb.silent();
        published(|| counter(&c.drops[DropReason::VlanAtRouterPort.index()]) == 2 && counter(&c.cache_hits) == 2);
        assert_eq!(counter(&c.drops[DropReason::VlanAtRouterPort.index()]), 2);
        assert_eq!(counter(&c.cache_hits), 2, "each tagged frame's second time");
    });
}

/// The router's answers to a priority-tagged frame are untagged, as everything it sends: the ARP
/// reply it turns around in the request's own mbuf leaves without the tag (its 4 bytes dropped
/// from the front), and the time exceeded it builds afresh is the one the packet without the tag
/// gets.
#[test]
fn answers_to_a_priority_tagged_frame_are_untagged() {
    with_router("ptagans", |ha, _hb, _c| {
        let request = arp(ArpOperation::Request, MAC_HA, EthernetAddress::BROADCAST, "10.1.0.2", "10.1.0.1");
        ha.send(&request);
        let want = ha.recv_mbufs(1);
        assert_eq!(want.len(), 1, "the reply to the request without the tag");
        assert!(matches!(valid(&want[0].data).l3, L3::Arp(a) if a.operation == ArpOperation::Reply));
        ha.send(&tagged(&request, 5 << 13));
        let got = ha.recv_mbufs(1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, want[0].data, "as without the tag");
        assert_eq!((got[0].pkt_len as usize, got[0].headroom), (request.len(), want[0].headroom + 4));

        let expiring = udp("10.2.0.2", 5003, 1);
        ha.send(&expiring);
        let want = ha.recv(1);
        assert_eq!(want.len(), 1, "time exceeded");
        let h = valid(&want[0]);
        assert!(matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::TimeExceeded, .. }), "{h:?}");
        ha.send(&tagged(&expiring, 5 << 13));
        assert_eq!(ha.recv(1), want, "as without the tag");
        ha.silent();
    });
}

/// An ICMPv6 echo request from host A (fd00:1::2) to the router's port A.
fn echo6() -> Vec<u8> {
    let (src, dst) = ("fd00:1::2".parse().unwrap(), "fd00:1::1".parse().unwrap());
    let icmp = Icmpv6Repr::EchoRequest { ident: 7, seq_no: 1, data: b"midogw echo data" };
    let mut f = vec![0u8; 14 + 40 + icmp.buffer_len()];
    EthernetRepr { src_addr: MAC_HA, dst_addr: MAC_RA, vlan: None, ethertype: EtherType::Ipv6 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    icmp.emit(&PseudoHeader::V6 { src, dst }, &mut Icmpv6Packet::new_unchecked(&mut f[54..]));
    f
}

/// `frame` (untagged IPv6) with a type 0 routing header of one address and `segments_left` in
/// front of its upper layer.
fn with_routing_header(frame: &[u8], segments_left: u8) -> Vec<u8> {
    let mut rh = vec![frame[14 + 6], 2, 0, segments_left, 0, 0, 0, 0];
    rh.extend_from_slice(&"fd00:9::9".parse::<std::net::Ipv6Addr>().unwrap().octets());
    let mut f = frame.to_vec();
    f.splice(54..54, rh);
    f[14 + 6] = 43;
    let payload_len = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&payload_len.to_be_bytes());
    f
}

/// RFC 8200 4.4 through a worker: an echo request whose routing header is spent is answered, the
/// reply leaving the header out (in the request's own mbuf, its 24 bytes dropped from the front:
/// the data starts that much later), byte for byte the reply to the plain request, tagged or not;
/// one with segments left is answered a parameter problem pointing at the routing type.
#[test]
fn ipv6_echo_requests_with_routing_headers() {
    with_router("prh", |ha, _hb, c| {
        let plain = echo6();
        ha.send(&plain);
        let want = ha.recv_mbufs(1);
        assert_eq!(want.len(), 1, "the reply to the plain request");
        let want = &want[0];
        let h = valid(&want.data);
        assert!(matches!(h.l4, L4::Icmpv6 { msg_type: Icmpv6Message::EchoReply, .. }), "{h:?}");
        let spent = with_routing_header(&plain, 0);
        for (request, front) in [(spent.clone(), 24), (tagged(&spent, 5 << 13), 28)] {
            ha.send(&request);
            let got = ha.recv_mbufs(1);
            assert_eq!(got.len(), 1, "answered");
            assert_eq!(got[0].data, want.data, "as the plain request's reply");
            assert_eq!((got[0].pkt_len as usize, got[0].headroom), (plain.len(), want.headroom + front));
        }
        let active = with_routing_header(&plain, 1);
        ha.send(&active);
        let got = ha.recv(1);
        assert_eq!(got.len(), 1, "a parameter problem");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RA, MAC_HA));
        let icmp = Icmpv6Packet::new_checked(&got[0][h.l4_offset..]).unwrap();
        assert_eq!((icmp.msg_type(), icmp.msg_code(), icmp.mtu()), (Icmpv6Message::ParamProblem, 0, 40 + 2));
        assert_eq!(icmp.data(), &active[14..], "the request quoted whole");
        ha.silent();
        published(|| counter(&c.drops[DropReason::Ipv6ExtensionHeader.index()]) == 1);
        assert_eq!(counter(&c.drops[DropReason::Ipv6ExtensionHeader.index()]), 1);
    });
}

/// A neighbour that comes back at another MAC (a VM recreated with the same address, a replaced
/// upstream router) gets the traffic of the flows already cached to it at once, not after their
/// hard timeout: its gratuitous ARP invalidates the flows through its port.
#[test]
fn a_neighbour_at_a_new_mac_gets_the_cached_flows_at_once() {
    const MAC_HB_NEW: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 3]);
    with_router("pnmac", |ha, hb, c| {
        learn_b(hb);
        let sent = udp("10.2.0.2", 5000, 64);
        // Two packets of the flow (a miss, then a hit): the Ethernet destination each left with.
        let twice = |ha: &mut Host<'_>, hb: &mut Host<'_>| {
            [0, 1].map(|round| {
                ha.send(&sent);
                let got = hb.recv(1);
                assert_eq!(got.len(), 1, "round {round}");
                valid(&got[0]).eth_dst
            })
        };
        assert_eq!(twice(ha, hb), [MAC_HB; 2]);
        // Gratuitous ARP from the new MAC: learned, nothing answered.
        hb.send(&arp(ArpOperation::Request, MAC_HB_NEW, EthernetAddress::BROADCAST, "10.2.0.2", "10.2.0.2"));
        hb.silent();
        // Taken in (B's request, two packets, the gratuitous ARP) before the next packet is sent:
        // on the other port, it would otherwise be read first.
        published(|| counter(&c.rx_packets) == 4);
        assert_eq!(counter(&c.rx_packets), 4, "the gratuitous ARP reached the worker");
        assert_eq!(twice(ha, hb), [MAC_HB_NEW; 2], "to the new MAC");
        ha.silent();
        published(|| counter(&c.cache_invalidated) == 1 && counter(&c.cache_hits) == 2);
        assert_eq!(counter(&c.cache_invalidated), 1, "the flow cached to the old MAC");
        assert_eq!(counter(&c.cache_hits), 2, "one hit before the change, one after");
    });
}

/// What host B receives in `d`, each frame checked: a forwarded packet, or a point-to-point poll
/// for its address, which it answers. Counted in `forwarded` and `polls`.
fn take_polled_traffic(hb: &mut Host<'_>, d: Duration, forwarded: &mut usize, polls: &mut usize) {
    for f in hb.recv_for(d) {
        let h = valid(&f);
        match h.l3 {
            L3::Arp(a) => {
                assert_eq!(a.operation, ArpOperation::Request, "{h:?}");
                assert_eq!(h.eth_dst, MAC_HB, "a point-to-point poll, never a broadcast request");
                assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (ip("10.2.0.1"), ip("10.2.0.2")));
                *polls += 1;
                hb.send(&arp(ArpOperation::Reply, MAC_HB, MAC_RB, "10.2.0.2", "10.2.0.1"));
            }
            L3::Ipv4(_) => *forwarded += 1,
            _ => panic!("unexpected frame {h:?}"),
        }
    }
}

/// A neighbour in use is polled point to point once its entry goes stale, and its answer keeps the
/// entry fresh: a flow that lasts several neighbour lifetimes never waits for a resolution (before,
/// every lifetime its next packet was held while a broadcast request went out).
#[test]
fn neighbours_in_use_are_polled_before_they_expire() {
    // A 1 s lifetime: stale after 750 ms, polled every 50 ms from then; flows kept as long.
    let pipeline = short_lived_neighbours(1_000_000_000);
    with_router_config("ppoll", &pipeline, |ha, hb, c| {
        learn_b(hb);
        let sent = udp("10.2.0.2", 5000, 64);
        let (mut forwarded, mut polls, mut sent_count) = (0, 0, 0);
        // Traffic for 3.2 s, then 100 ms more to take in the last frames (longer while some are
        // still missing: the worker may be late), each seen by its kind.
        let stop_sending = Instant::now() + Duration::from_millis(3200);
        while Instant::now() < stop_sending + Duration::from_millis(100)
            || (forwarded < sent_count && Instant::now() < stop_sending + ARRIVAL_LIMIT)
        {
            if Instant::now() < stop_sending {
                ha.send(&sent);
                sent_count += 1;
            }
            take_polled_traffic(hb, Duration::from_millis(10), &mut forwarded, &mut polls);
        }
        assert_eq!(forwarded, sent_count, "every packet forwarded");
        // Learned at 0, refreshed near 0.75 s, 1.5 s, 2.25 s and 3 s (each answer makes it fresh; an
        // answer later than the 50 ms poll interval draws another poll).
        assert!((3..=12).contains(&polls), "one poll (or a few) per lifetime: {polls}");
        ha.silent();
        // B's entry was in use until the traffic stopped, so it may be polled once more: answered
        // and counted as the others, until the worker's published count has every poll it sent.
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        while counter(&c.neighbour_polls) != polls as u64 && Instant::now() < deadline {
            take_polled_traffic(hb, Duration::from_millis(10), &mut forwarded, &mut polls);
        }
        assert_eq!(counter(&c.held), 0, "no packet waited for a resolution");
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
        assert_eq!(counter(&c.neighbour_polls), polls as u64);
        assert!(counter(&c.simulated) > 3, "the flow was simulated again after each hard timeout");
    });
}

/// A neighbour that stops answering: once its entry expires, the flows cached with its MAC end at
/// once (not at their hard timeout, up to a lifetime later), and the next packet asks for it again.
#[test]
fn flows_to_a_neighbour_that_stopped_answering_end_when_it_expires() {
    // A 1 s lifetime: B's entry, learned at 0, expires at 1 s; a flow installed at 0.7 s would
    // otherwise be kept until 1.7 s.
    let pipeline = short_lived_neighbours(1_000_000_000);
    with_router_config("pdead", &pipeline, |ha, hb, c| {
        learn_b(hb);
        let learned = Instant::now();
        std::thread::sleep(Duration::from_millis(700));
        let sent = udp("10.2.0.2", 5000, 64);
        ha.send(&sent);
        // B's entry goes stale at 0.75 s: a late worker may send its poll for B right after.
        let got = hb.recv(1);
        let forwarded = got.iter().filter(|f| matches!(valid(f).l3, L3::Ipv4(_))).count();
        assert_eq!(forwarded, 1, "forwarded while B is known: {got:02x?}");
        // B answers nothing from now on: the polls after 0.75 s go unanswered.
        while learned.elapsed() < Duration::from_millis(1300) {
            ha.send(&sent);
            hb.recv_for(Duration::from_millis(10));
        }
        // Well before the flow's hard timeout: nothing is sent to B's old MAC any more, only
        // requests for its address.
        let mut to_b = Vec::new();
        while learned.elapsed() < Duration::from_millis(1500) {
            ha.send(&sent);
            to_b.extend(hb.recv_for(Duration::from_millis(10)));
        }
        let forwarded = to_b.iter().filter(|f| matches!(valid(f).l3, L3::Ipv4(_))).count();
        assert_eq!(forwarded, 0, "packets still sent to a neighbour whose entry expired");
        assert!(to_b.iter().all(|f| valid(f).eth_dst == EthernetAddress::BROADCAST), "ARP requests, broadcast");
        published(|| counter(&c.cache_invalidated) >= 1);
        assert!(counter(&c.cache_invalidated) >= 1, "the flow was dropped from the cache");
    });
}

/// The burst loop looks a whole burst up in stages (keys, candidate slots, then lookups): a
/// malformed frame among good ones, and a new flow's later packets in the same burst (installed
/// by its first packet after the stages looked), still come out in order, each flow simulated once.
/// A packet of a cached flow whose IPv4 header checksum is wrong is dropped, not forwarded
/// (RFC 1812 5.2.2), and each malformed frame is counted by why it did not parse.
#[test]
fn pipeline_handles_a_mixed_burst_in_order() {
    with_router("pburst", |ha, hb, c| {
        learn_b(hb);
        let (x, y) = (udp("10.2.0.2", 5001, 64), udp("10.2.0.2", 5002, 64));
        let malformed = x[..20].to_vec();
        let mut bad_checksum = x.clone();
        bad_checksum[14 + 8] = 63; // the TTL, its checksum not updated
        ha.send_burst(&[x.clone(), malformed, x.clone(), y.clone(), x.clone(), bad_checksum]);
        let got = hb.recv(4);
        assert_eq!(got.len(), 4, "every good frame forwarded");
        let sports: Vec<u16> = got.iter().map(|f| u16::from_be_bytes([f[34], f[35]])).collect();
        assert_eq!(sports, [5001, 5001, 5002, 5001], "in order");
        for f in &got {
            let h = valid(f);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_HB));
        }
        hb.silent();
        published(|| {
            counter(&c.drops[DropReason::Malformed.index()]) == 2
                && c.parse_failed(ParseError::Ipv4Truncated) == 1
                && c.parse_failed(ParseError::Ipv4BadChecksum) == 1
                && counter(&c.simulated) == 3
                && counter(&c.cache_hits) == 2
        });
        assert_eq!(counter(&c.drops[DropReason::Malformed.index()]), 2);
        assert_eq!(c.parse_failed(ParseError::Ipv4Truncated), 1, "{:?}", c.nonzero_parse_errors());
        assert_eq!(c.parse_failed(ParseError::Ipv4BadChecksum), 1, "{:?}", c.nonzero_parse_errors());
        assert_eq!(counter(&c.simulated), 3, "the ARP request, then x and y once each");
        assert_eq!(counter(&c.cache_hits), 2, "x's second and third packets");
    });
}

/// `frame` (untagged IPv4) with `options` (a multiple of 4 bytes) after its fixed header, the
/// header's lengths and checksum made right.
fn with_ipv4_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f.splice(34..34, options.iter().copied());
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_header_len(20 + options.len());
    ip.set_total_len(ip.total_len() + options.len() as u16);
    ip.fill_checksum();
    f
}

/// A source-routed packet is dropped at the router (`source_routed`, RFC 7126 4.3) and never
/// forwarded by the cached flow of a plain packet with the same addresses and ports, nor the
/// plain one dropped by the source-routed one's cached drop; a packet with a record route is
/// forwarded as it came; options that cannot be walked are answered a parameter problem pointing
/// at the option (RFC 1812 4.3.3.5), counted `ipv4_bad_options`, and never take the plain flow.
#[test]
fn pipeline_drops_source_routed_packets_apart_from_their_plain_flow() {
    with_router("psrr", |ha, hb, c| {
        learn_b(hb);
        let plain = udp("10.2.0.2", 5003, 64);
        let routed = with_ipv4_options(&plain, &[1, 131, 7, 4, 10, 2, 0, 9]);
        let recorded = with_ipv4_options(&plain, &[7, 7, 4, 0, 0, 0, 0, 0]);
        let bad = with_ipv4_options(&plain, &[1, 1, 1, 131]);
        // The plain flow cached first, then the source-routed one (a miss, dropped), then both
        // again (hits); then the record-routed one and a bad one, twice.
        ha.send(&plain);
        assert_eq!(hb.recv(1).len(), 1, "the plain packet forwarded");
        ha.send_burst(&[routed.clone(), plain.clone(), routed, plain, recorded.clone(), bad.clone(), bad.clone()]);
        let got = hb.recv(3);
        assert_eq!(got.len(), 3, "the plain packets and the record-routed one, nothing else");
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(lens, [14 + 20 + 8 + 32, 14 + 20 + 8 + 32, 14 + 28 + 8 + 32], "plain, plain, record route");
        let h = valid(&got[2]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_HB));
        assert_eq!(&got[2][34..42], &recorded[34..42], "the record route option as it came");
        hb.silent();
        let answers = ha.recv(2);
        assert_eq!(answers.len(), 2, "each bad packet answered");
        for a in &answers {
            let h = valid(a);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RA, MAC_HA));
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!((f.src, f.dst), (ip("10.1.0.1"), ip("10.1.0.2")));
            let icmp = Icmpv4Packet::new_checked(&a[h.l4_offset..]).unwrap();
            assert_eq!((icmp.msg_type(), icmp.msg_code(), icmp.pointer()), (Icmpv4Message::ParamProblem, 0, 23));
            assert_eq!(icmp.data(), &bad[14..], "the bad packet quoted whole");
        }
        let source_routed = || counter(&c.drops[DropReason::SourceRouted.index()]);
        let bad_options = || counter(&c.drops[DropReason::Ipv4BadOptions.index()]);
        published(|| source_routed() == 2 && bad_options() == 2);
        assert_eq!(source_routed(), 2, "both source-routed packets");
        assert_eq!(bad_options(), 2, "both bad ones, each simulated: {:?}", c.nonzero_parse_errors());
        assert_eq!(counter(&c.drops[DropReason::Malformed.index()]), 0);
    });
}

#[test]
fn pipeline_answers_ttl_one_with_time_exceeded() {
    with_router("pttl", |ha, hb, c| {
        learn_b(hb);
        // Cache the flow first, so the expired packet takes the hit path and falls back to simulation.
        ha.send(&udp("10.2.0.2", 5001, 64));
        assert_eq!(hb.recv(1).len(), 1);
        let expired = udp("10.2.0.2", 5001, 1);
        ha.send(&expired);
        let got = ha.recv(1);
        assert_eq!(got.len(), 1);
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RA, MAC_HA));
        let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
        assert_eq!((f.src, f.dst), (ip("10.1.0.1"), ip("10.1.0.2")));
        let icmp = Icmpv4Packet::new_checked(&got[0][h.l4_offset..]).unwrap();
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (Icmpv4Message::TimeExceeded, 0));
        assert_eq!(&got[0][h.l4_offset + 8..h.l4_offset + 8 + 20], &expired[14..34], "quotes the IP header");
        hb.silent();
        published(|| c.dropped(DropReason::TtlExpired) == 1 && counter(&c.cache_hits) == 1);
        assert_eq!(c.dropped(DropReason::TtlExpired), 1);
        assert_eq!(counter(&c.cache_hits), 1);
    });
}

/// A router whose workers may send a burst of 5 ICMP errors, then one a second.
fn five_icmp_errors() -> PipelineConfig {
    PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        icmp_errors_per_sec: 1,
        icmp_error_burst: 5,
        ..PipelineConfig::default()
    }
}

/// Host A sends `frames` at once to a [`five_icmp_errors`] router; the answers that come back,
/// checked: the burst of 5 (a second token may come due if the test runs slow), each an ICMP
/// error of `kind` and `code`.
fn rate_limited_answers(ha: &mut Host<'_>, frames: &[Vec<u8>], kind: Icmpv4Message, code: u8) -> Vec<Vec<u8>> {
    ha.send_burst(frames);
    let got = ha.recv_all(5);
    assert!((5..=6).contains(&got.len()), "{} {kind:?} answers", got.len());
    for frame in &got {
        let h = valid(frame);
        let icmp = Icmpv4Packet::new_checked(&frame[h.l4_offset..]).unwrap();
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (kind, code));
    }
    got
}

/// ICMP errors are rate-limited per worker (RFC 1812 4.3.2.8, RFC 4443 2.4 f): a burst of 20
/// expiring packets against a bucket of 5 (one more a second) gets 5 time-exceeded answers; the
/// rest are dropped all the same and counted as not answered.
#[test]
fn icmp_errors_are_rate_limited() {
    let pipeline = five_icmp_errors();
    with_router_config("pirl", &pipeline, |ha, _hb, c| {
        let expired: Vec<Vec<u8>> = (0..20).map(|i| udp("10.2.0.2", 6000 + i, 1)).collect();
        let got = rate_limited_answers(ha, &expired, Icmpv4Message::TimeExceeded, 0);
        let answered = got.len() as u64;
        published(|| {
            c.dropped(DropReason::TtlExpired) == 20
                && counter(&c.icmp_errors_limited) == 20 - answered
                && counter(&c.generated) == answered
        });
        assert_eq!(c.dropped(DropReason::TtlExpired), 20);
        assert_eq!(counter(&c.icmp_errors_limited), 20 - got.len() as u64);
        assert_eq!(counter(&c.generated), got.len() as u64);
    });
}

/// Packets of a cached flow whose TTL runs out are simulated for their time-exceeded answers
/// while the worker's ICMP error budget lasts; past it, the failed hop drops them itself, without
/// a simulation each, so a flood of them costs about what hits do.
#[test]
fn expiring_packets_of_a_cached_flow_over_the_error_rate_are_not_simulated() {
    let pipeline = five_icmp_errors();
    with_router_config("pirlh", &pipeline, |ha, hb, c| {
        learn_b(hb);
        ha.send(&udp("10.2.0.2", 5000, 64));
        assert_eq!(hb.recv(1).len(), 1, "the flow is cached");
        let expiring: Vec<Vec<u8>> = (0..20).map(|_| udp("10.2.0.2", 5000, 1)).collect();
        let got = rate_limited_answers(ha, &expiring, Icmpv4Message::TimeExceeded, 0);
        hb.silent();
        let answered = got.len() as u64;
        published(|| {
            c.dropped(DropReason::TtlExpired) == 20
                && counter(&c.icmp_errors_limited) == 20 - answered
                && counter(&c.cache_hits) == 20
                && counter(&c.simulated) == 2 + answered
        });
        assert_eq!(c.dropped(DropReason::TtlExpired), 20);
        assert_eq!(counter(&c.icmp_errors_limited), 20 - got.len() as u64);
        assert_eq!(counter(&c.cache_hits), 20, "every expiring packet hit the flow");
        assert_eq!(
            counter(&c.simulated),
            2 + got.len() as u64,
            "the ARP request, the flow's first packet, and one per answer"
        );
    });
}

#[test]
fn pipeline_answers_no_route_with_net_unreachable() {
    with_router("pnr", |ha, hb, c| {
        ha.send(&udp("192.0.2.9", 5002, 64));
        let got = ha.recv(1);
        assert_eq!(got.len(), 1);
        let h = valid(&got[0]);
        assert_eq!(h.eth_dst, MAC_HA);
        let L4::Icmpv4 { .. } = h.l4 else { panic!("not ICMP: {h:?}") };
        let icmp = Icmpv4Packet::new_checked(&got[0][h.l4_offset..]).unwrap();
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (Icmpv4Message::DstUnreachable, 0), "net unreachable");
        hb.silent();
        published(|| c.dropped(DropReason::NoRoute) == 1);
        assert_eq!(c.dropped(DropReason::NoRoute), 1);
    });
}

/// A flow with no route is cached as a drop that earned an answer: its packets are simulated for
/// their net-unreachable answers while the worker's ICMP error budget lasts, and dropped from the
/// cache past it, not simulated each.
#[test]
fn unroutable_flows_over_the_error_rate_are_dropped_from_the_cache() {
    let pipeline = five_icmp_errors();
    with_router_config("pnrc", &pipeline, |ha, hb, c| {
        let unroutable: Vec<Vec<u8>> = (0..20).map(|_| udp("192.0.2.9", 5002, 64)).collect();
        let got = rate_limited_answers(ha, &unroutable, Icmpv4Message::DstUnreachable, 0);
        hb.silent();
        let answered = got.len() as u64;
        published(|| {
            c.dropped(DropReason::NoRoute) == 20
                && counter(&c.icmp_errors_limited) == 20 - answered
                && counter(&c.cache_hits) == 19
                && counter(&c.simulated) == answered
        });
        assert_eq!(c.dropped(DropReason::NoRoute), 20);
        assert_eq!(counter(&c.icmp_errors_limited), 20 - got.len() as u64);
        assert_eq!(counter(&c.cache_hits), 19, "every packet after the first hit the cached drop");
        assert_eq!(counter(&c.simulated), got.len() as u64, "one simulation per answer");
    });
}

/// Packets whose answer RFC 1812 forbids (here later fragments) to a destination without a route
/// are cached as a plain drop: the flow key settles both the route and the exception, so a stream
/// of them costs one simulation, then a hit each, and gets no answer.
#[test]
fn unanswerable_packets_without_a_route_are_dropped_from_the_cache() {
    with_router("pnrs", |ha, hb, c| {
        let mut later_fragment = udp("192.0.2.9", 5002, 64);
        let mut p = Ipv4Packet::new_unchecked(&mut later_fragment[14..34]);
        p.set_dont_frag(false);
        p.set_frag_offset(1480);
        p.fill_checksum();
        ha.send_burst(&vec![later_fragment; 20]);
        ha.silent();
        hb.silent();
        // Nothing comes back to say the worker took them in: its counters do.
        published(|| c.dropped(DropReason::IcmpErrorSuppressed) == 20 && counter(&c.cache_hits) == 19);
        assert_eq!(c.dropped(DropReason::IcmpErrorSuppressed), 20);
        assert_eq!(c.dropped(DropReason::NoRoute), 0);
        assert_eq!(counter(&c.cache_hits), 19, "every packet after the first hit the cached drop");
        assert_eq!(counter(&c.simulated), 1);
    });
}

#[test]
fn pipeline_resolves_the_next_hop_with_arp() {
    with_router("pnd", |ha, hb, c| {
        let sent = udp("10.2.0.2", 5003, 64);
        ha.send(&sent);
        let got = hb.recv(1);
        assert_eq!(got.len(), 1, "ARP request");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, EthernetAddress::BROADCAST));
        let L3::Arp(a) = h.l3 else { panic!("not ARP: {h:?}") };
        assert_eq!(a.operation, ArpOperation::Request);
        assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (ip("10.2.0.1"), ip("10.2.0.2")));
        published(|| counter(&c.held) == 1);
        assert_eq!(counter(&c.held), 1, "the first packet waits in the resolution queue");

        // The reply releases the held packet: delivered without being sent again.
        hb.send(&arp(ArpOperation::Reply, MAC_HB, MAC_RB, "10.2.0.2", "10.2.0.1"));
        let got = hb.recv(1);
        assert_eq!(got.len(), 1, "the held packet, after resolution");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_HB));
        let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
        assert_eq!(f.ttl, 63);
        assert_eq!(got[0][34..], sent[34..]);
        hb.silent();
        published(|| counter(&c.released) == 1 && c.dropped(DropReason::ArpConsumed) == 1);
        assert_eq!(counter(&c.released), 1);
        assert_eq!(c.dropped(DropReason::ArpConsumed), 1, "the reply was learned");
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
    });
}

#[test]
fn held_packets_are_answered_host_unreachable_after_the_timeout() {
    let pipeline = PipelineConfig {
        core: CoreConfig { resolution_interval: 200_000_000, ..CoreConfig::default() },
        hold_timeout_ns: 1_000_000_000,
        ..PipelineConfig::default()
    };
    with_router_config("phold", &pipeline, |ha, hb, c| {
        let sent = udp("10.2.0.9", 5004, 64);
        ha.send(&sent);
        assert_eq!(hb.recv(1).len(), 1, "ARP request");
        published(|| counter(&c.held) == 1);
        assert_eq!(counter(&c.held), 1);
        // Nobody answers: the router asks again every resolution interval (200 ms here) while it
        // holds the packet, and after the deadline (1 s here) answers it host unreachable
        // (RFC 1812 5.2.7.1), counted as `neighbour_failed`.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut asked_again, mut to_a) = (Vec::new(), Vec::new());
        while c.dropped(DropReason::NeighbourFailed) == 0 && Instant::now() < deadline {
            // Traffic makes the worker publish its counters.
            ha.send(&arp(ArpOperation::Request, MAC_HA, EthernetAddress::BROADCAST, "10.1.0.2", "10.1.0.1"));
            to_a.extend(ha.recv_for(Duration::from_millis(50)));
            asked_again.extend(hb.recv_for(Duration::from_millis(50)));
        }
        to_a.extend(ha.recv_for(Duration::from_millis(100)));
        assert_eq!(c.dropped(DropReason::NeighbourFailed), 1);
        assert_eq!((c.dropped(DropReason::HoldTimeout), counter(&c.released)), (0, 0));
        assert!((3..=5).contains(&asked_again.len()), "asked again every 200 ms for 1 s: {}", asked_again.len());
        for f in &asked_again {
            // Ethernet broadcast, ARP request (opcode 1) for 10.2.0.9.
            assert_eq!(
                (&f[..6], &f[12..14], &f[20..22], &f[38..42]),
                (&[0xff; 6][..], &[8, 6][..], &[0, 1][..], &[10, 2, 0, 9][..])
            );
        }
        // Host A got its ARP replies and one ICMP host unreachable, from the port it sent to,
        // quoting the packet.
        let errors: Vec<&Vec<u8>> = to_a.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
        assert_eq!(errors.len(), 1, "one ICMP error: {to_a:02x?}");
        let h = valid(errors[0]);
        let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
        assert_eq!((f.src, f.dst), (ip("10.1.0.1"), ip("10.1.0.2")));
        let icmp = &errors[0][h.l4_offset..];
        assert_eq!((icmp[0], icmp[1]), (3, 1), "destination unreachable, host unreachable");
        assert_eq!(icmp[8..8 + 28], sent[14..14 + 28], "the invoking packet's header and 8 bytes");
        hb.silent();
    });
}

/// RFC 6583 section 6: a scan of the subnet behind a router port, each address new, is answered by at
/// most the worker's request budget of ARP requests (five at once, then one a second here); the
/// packets whose address was not asked for are dropped and counted, not held.
#[test]
fn a_scan_behind_a_router_port_asks_within_the_request_budget() {
    let core = CoreConfig { resolution_requests_per_sec: 1, resolution_request_burst: 5, ..CoreConfig::default() };
    let pipeline = PipelineConfig { core, ..PipelineConfig::default() };
    with_router_config("pscan", &pipeline, |ha, hb, c| {
        let scan: Vec<Vec<u8>> = (2..42).map(|n| udp(&format!("10.2.0.{n}"), 7100, 64)).collect();
        for chunk in scan.chunks(20) {
            ha.send_burst(chunk);
        }
        let requests = hb.recv_all(5);
        assert_eq!(requests.len(), 5, "the burst of the budget, not one request per address");
        for (n, f) in (2..).zip(&requests) {
            // Ethernet broadcast, ARP request for the scan's first addresses, in order.
            assert_eq!((&f[..6], &f[20..22], &f[38..42]), (&[0xff; 6][..], &[0, 1][..], &[10, 2, 0, n][..]));
        }
        published(|| c.dropped(DropReason::NeighbourRequestsLimited) == 35 && counter(&c.held) == 5);
        assert_eq!(c.dropped(DropReason::NeighbourRequestsLimited), 35);
        assert_eq!(counter(&c.held), 5, "only the packets whose address was asked for wait");
        // 10.2.0.2 answers: its packet goes out.
        hb.send(&arp(ArpOperation::Reply, MAC_HB, MAC_RB, "10.2.0.2", "10.2.0.1"));
        let got = hb.recv(1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][34..], scan[0][34..]);
    });
}

/// Frames still held for a next hop when the worker stops are freed and counted (`stopped`), so
/// that every frame received is accounted for.
#[test]
fn frames_held_when_the_worker_stops_are_counted() {
    let counters = with_two_ports("pstop", two_port_router, &PipelineConfig::default(), |ha, hb, c| {
        ha.send(&udp("10.2.0.3", 5005, 64));
        ha.send(&udp("10.2.0.4", 5006, 64));
        assert_eq!(hb.recv(2).len(), 2, "an ARP request for each");
        published(|| counter(&c.held) == 2);
        assert_eq!(counter(&c.held), 2);
        assert_eq!(c.dropped(DropReason::Stopped), 0);
    });
    assert_eq!(counter(&counters.rx_packets), 2);
    assert_eq!(counters.dropped(DropReason::Stopped), 2, "both, freed when the worker stopped");
}

#[test]
fn pipeline_resolution_queue_is_bounded() {
    // Eight frames in all, two per next hop.
    let pipeline = PipelineConfig { hold_capacity: 8, ..PipelineConfig::default() };
    with_router_config("pqfull", &pipeline, |ha, hb, c| {
        // Three packets for one unresolved next hop: it keeps the first two, the third is dropped,
        // so a stream to a dead address cannot crowd out every other flow's first packet.
        let to_2: Vec<Vec<u8>> = (0..3).map(|i| udp("10.2.0.2", 6000 + i, 64)).collect();
        for f in &to_2 {
            ha.send(f);
        }
        // One ARP request for the three (RFC 1112 2.3.2.1: no flooding of requests for one address).
        let requests = hb.recv_all(1);
        assert_eq!(requests.len(), 1, "one ARP request for the next hop, not one per packet");
        // Seven more next hops, one packet each: the queue (8) is full at the sixth, so the
        // seventh pushes out the oldest frame, the first packet to 10.2.0.2.
        let others: Vec<Vec<u8>> = (3..=9).map(|n| udp(&format!("10.2.0.{n}"), 7000, 64)).collect();
        for f in &others {
            ha.send(f);
        }
        assert_eq!(hb.recv_all(7).len(), 7, "an ARP request each");
        // Answers for 10.2.0.2 and 10.2.0.9: the second packet to .2 and the one to .9 go out.
        hb.send(&arp(ArpOperation::Reply, MAC_HB, MAC_RB, "10.2.0.2", "10.2.0.1"));
        hb.send(&arp(ArpOperation::Reply, MAC_HB, MAC_RB, "10.2.0.9", "10.2.0.1"));
        let got = hb.recv(2);
        assert_eq!(got.len(), 2, "the survivors");
        assert_eq!(got[0][34..], to_2[1][34..], "the second packet to 10.2.0.2");
        assert_eq!(got[1][34..], others[6][34..], "the packet to 10.2.0.9");
        hb.silent();
        published(|| c.dropped(DropReason::HoldOverflow) == 2 && counter(&c.released) == 2);
        assert_eq!(c.dropped(DropReason::HoldOverflow), 2, "the third to .2, then the first");
        assert_eq!(counter(&c.released), 2);
        ha.silent();
    });
}

/// A router port bound to a DPDK port this worker has no TX queue on (a snapshot naming a port
/// the appliance did not open): what leaves by it, here the ARP request for host B, goes to the
/// worker's sink burst and is counted as unknown egress and freed at the loop's flush; nothing is
/// sent anywhere else, and nothing leaks (`with_two_ports` checks the pool after the worker stops).
#[test]
fn output_to_a_port_without_a_tx_queue_is_counted_and_freed() {
    let pipeline = PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        ..PipelineConfig::default()
    };
    with_two_ports(
        "punk",
        |a, b| two_port_router(a, b + 32),
        &pipeline,
        |ha, hb, c| {
            ha.send(&udp("10.2.0.2", 5000, 64));
            // Both from one publication (the ARP request's turn): neither alone shows it is done.
            published(|| counter(&c.unknown_egress) == 1 && counter(&c.held) == 1);
            assert_eq!(counter(&c.unknown_egress), 1, "the ARP request for host B");
            assert_eq!(counter(&c.held), 1, "the frame waits for host B's MAC");
            ha.silent();
            hb.silent();
            assert_eq!(counter(&c.unknown_egress), 1);
        },
    );
}

/// Two workers: the packet that needs host B's MAC arrives on worker 0's queue and waits there;
/// host B's ARP reply arrives on worker 1's queue (as a reply in a tunnel, steered by its outer
/// headers, would). Worker 1 learns it and hands it to worker 0, which releases the packet at
/// once; a later packet on worker 0 needs no ARP of its own.
#[test]
fn what_one_worker_learns_releases_a_packet_held_by_another() {
    let pipeline = PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        ..PipelineConfig::default()
    };
    with_two_ports_two_workers("p2w", two_port_router, &pipeline, |ha, hb, [w0, w1], _| {
        let sent = udp("10.2.0.2", 5010, 64);
        ha.send_to(0, &sent);
        let got = hb.recv(1);
        assert_eq!(got.len(), 1, "worker 0 asks for host B");
        let L3::Arp(a) = valid(&got[0]).l3 else { panic!("not ARP: {:02x?}", got[0]) };
        assert_eq!(a.operation, ArpOperation::Request);
        published(|| counter(&w0.held) == 1);
        assert_eq!(counter(&w0.held), 1);

        let asked = Instant::now();
        hb.send_to(1, &arp(ArpOperation::Reply, MAC_HB, MAC_RB, "10.2.0.2", "10.2.0.1"));
        let got = hb.recv(1);
        assert_eq!(got.len(), 1, "the held packet, released by worker 0");
        let waited = asked.elapsed();
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_HB));
        assert_eq!(got[0][34..], sent[34..]);
        published(|| w1.dropped(DropReason::ArpConsumed) == 1 && counter(&w0.released) == 1);
        assert_eq!(w1.dropped(DropReason::ArpConsumed), 1, "worker 1 took the reply");
        assert_eq!(counter(&w0.released), 1, "worker 0 released its packet");
        assert!(waited < Duration::from_millis(900), "released by the hand-over, not after the 1 s hold timeout");

        // Worker 0 knows host B now: the next packet goes straight through.
        ha.send_to(0, &udp("10.2.0.2", 5011, 64));
        let got = hb.recv(1);
        assert_eq!(got.len(), 1);
        assert_eq!(valid(&got[0]).eth_dst, MAC_HB);
        published(|| counter(&w1.learning_sent) >= 1 && counter(&w0.learning_applied) >= 1);
        assert!(counter(&w1.learning_sent) >= 1, "worker 1 told the other");
        assert!(counter(&w0.learning_applied) >= 1, "worker 0 applied it");
        assert_eq!(counter(&w0.learning_lost) + counter(&w1.learning_lost), 0);
        assert_eq!(w0.dropped(DropReason::HoldTimeout), 0);
        assert_eq!(counter(&w0.held), 1, "only the first packet waited");
    });
}
