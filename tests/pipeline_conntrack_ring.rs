//! Connection tracking through the real pipeline worker on `net_ring` ports (harness as in
//! tests/pipeline_ring.rs): a router whose infilter accepts return flows and what comes from the
//! inside port, and drops the rest.
//!
//! Router R: port A 10.1.0.1/24 (inside, MAC 02:00:00:00:01:01) on appliance port 0, port B
//! 10.2.0.1/24 (outside, MAC 02:00:00:00:02:01) on appliance port 1. Host A is 10.1.0.2, host B
//! 10.2.0.2.

mod common;

use common::ring::{
    arp, counter, eth, ip, published, udp_frame_ports, valid, with_two_ports, Host, MAC_HA, MAC_HB, MAC_RA, MAC_RB,
};

use midogw::flowtable::chain::{Condition, Field, FlowDirection, RuleKind};
use midogw::flowtable::flow::FlowCacheConfig;
use midogw::flowtable::sim::DropReason;
use midogw::flowtable::topology::{Snapshot, SnapshotBuilder, Uuid};
use midogw::flowtable::wire::{
    ArpOperation, EtherType, EthernetAddress, Icmpv4Packet, IpProtocol, Ipv4Packet, Ipv4Repr, L3,
};
use midogw::{PipelineConfig, PipelineCounters};

/// The router with its stateful infilter: (1) accept return-flow; (2) accept from port A; (3) drop.
fn snapshot(dpdk_a: u16, dpdk_b: u16) -> Snapshot {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let pa = b.add_router_port(r, Uuid(10), MAC_RA, &["10.1.0.1/24".parse().unwrap()]);
    let pb = b.add_router_port(r, Uuid(11), MAC_RB, &["10.2.0.1/24".parse().unwrap()]);
    b.bind_local(pa, dpdk_a);
    b.bind_local(pb, dpdk_b);
    let c = b.add_chain(Uuid(20), "stateful");
    let ret = Condition { flow: Some(FlowDirection::Return), ..Condition::default() };
    b.add_new_rule(c, Uuid(21), ret, RuleKind::Accept).unwrap();
    let inside = Condition { in_ports: Some(Field::is(vec![pa].into_boxed_slice())), ..Condition::default() };
    b.add_new_rule(c, Uuid(22), inside, RuleKind::Accept).unwrap();
    b.add_new_rule(c, Uuid(23), Condition::default(), RuleKind::Drop).unwrap();
    b.set_router_filters(r, Some(c), None);
    b.build().expect("valid topology")
}

/// IPv4/UDP `src:sport -> dst:dport` (TTL 64, 32 bytes) from a host (`from`) to the router port's MAC (`to`).
fn udp(from: EthernetAddress, to: EthernetAddress, src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    udp_frame_ports(from, to, src, dst, (sport, dport), 64, 32)
}

/// A broadcast ARP request (`common::ring::arp`).
fn arp_request(src_mac: EthernetAddress, spa: &str, tpa: &str) -> Vec<u8> {
    arp(ArpOperation::Request, src_mac, EthernetAddress::BROADCAST, spa, tpa)
}

/// The router between two `net_ring` ports with one pipeline worker (common::ring::with_two_ports).
fn with_router(tag: &str, body: impl FnOnce(&mut Host<'_>, &mut Host<'_>, &PipelineCounters)) {
    let pipeline = PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        ..PipelineConfig::default()
    };
    with_two_ports(tag, snapshot, &pipeline, body);
}

#[test]
fn pipeline_passes_replies_of_inside_connections_and_drops_unsolicited_packets() {
    with_router("pct", |ha, hb, c| {
        // Both hosts announce themselves (the router learns their MACs).
        ha.send(&arp_request(MAC_HA, "10.1.0.2", "10.1.0.1"));
        assert_eq!(ha.recv(1).len(), 1, "ARP reply to A");
        hb.send(&arp_request(MAC_HB, "10.2.0.2", "10.2.0.1"));
        assert_eq!(hb.recv(1).len(), 1, "ARP reply to B");

        let outbound = udp(MAC_HA, MAC_RA, "10.1.0.2", 5000, "10.2.0.2", 4000);
        let reply = udp(MAC_HB, MAC_RB, "10.2.0.2", 4000, "10.1.0.2", 5000);

        // Unsolicited from outside: dropped by the chain (and taken in before A's first packet is
        // sent: on the other port, that one would otherwise be read first and open the connection).
        hb.send(&reply);
        ha.silent();
        published(|| counter(&c.drops[DropReason::RuleDrop.index()]) == 1);
        assert_eq!(counter(&c.drops[DropReason::RuleDrop.index()]), 1);

        // A opens the connection; both its packets reach B (the second from the flow cache).
        for round in 0..2 {
            ha.send(&outbound);
            let got = hb.recv(1);
            assert_eq!(got.len(), 1, "outbound round {round}");
            let L3::Ipv4(f) = valid(&got[0]).l3 else { panic!("not IPv4") };
            assert_eq!((f.src, f.dst), (ip("10.1.0.2"), ip("10.2.0.2")));
        }

        // The same packet that was dropped is now a return flow: it passes, twice (the drop was
        // not cached), the second time from the flow cache.
        for round in 0..2 {
            hb.send(&reply);
            let got = ha.recv(1);
            assert_eq!(got.len(), 1, "reply round {round}");
            let h = valid(&got[0]);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RA, MAC_HA));
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4") };
            assert_eq!((f.src, f.dst, f.ttl), (ip("10.2.0.2"), ip("10.1.0.2"), 63));
            assert_eq!(got[0][14 + 20..], reply[14 + 20..], "UDP untouched");
        }

        // Another outside port is no reply: still dropped.
        hb.send(&udp(MAC_HB, MAC_RB, "10.2.0.2", 4001, "10.1.0.2", 5000));
        ha.silent();
        hb.silent();
        published(|| {
            counter(&c.drops[DropReason::RuleDrop.index()]) == 2
                && counter(&c.cache_hits) == 2
                && counter(&c.simulated) == 6
        });
        assert_eq!(counter(&c.drops[DropReason::RuleDrop.index()]), 2);
        assert_eq!(counter(&c.cache_hits), 2, "the second outbound and the second reply");
        assert_eq!(counter(&c.simulated), 6, "two ARP, two unsolicited, the first outbound and reply");
    });
}

/// An ICMP "fragmentation needed" from a router beyond B about host A's connection (quoting A's
/// packet, as RFC 792 says) reaches A through the stateful filter, every time (never cached, the
/// verdict depends on the table); one about a connection nobody opened is dropped.
#[test]
fn pipeline_passes_icmp_errors_about_inside_connections() {
    with_router("pcti", |ha, hb, c| {
        ha.send(&arp_request(MAC_HA, "10.1.0.2", "10.1.0.1"));
        assert_eq!(ha.recv(1).len(), 1, "ARP reply to A");
        hb.send(&arp_request(MAC_HB, "10.2.0.2", "10.2.0.1"));
        assert_eq!(hb.recv(1).len(), 1, "ARP reply to B");

        let outbound = udp(MAC_HA, MAC_RA, "10.1.0.2", 5000, "10.2.0.2", 4000);
        ha.send(&outbound);
        assert_eq!(hb.recv(1).len(), 1, "the connection is open");

        // B forwards for a router with a smaller MTU: the error comes from 10.2.0.77, not B's own address.
        let frag_needed = |quoted: &[u8]| {
            let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
            icmp.extend_from_slice(&quoted[14..14 + 28]);
            let mut f = vec![0u8; 14 + 20];
            eth(&mut f, MAC_HB, MAC_RB, EtherType::Ipv4);
            Ipv4Repr {
                src_addr: ip("10.2.0.77"),
                dst_addr: ip("10.1.0.2"),
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
            f.extend_from_slice(&icmp);
            Icmpv4Packet::new_unchecked(&mut f[34..]).fill_checksum();
            f
        };
        for round in 0..2 {
            hb.send(&frag_needed(&outbound));
            let got = ha.recv(1);
            assert_eq!(got.len(), 1, "the error reaches A, round {round}");
            let h = valid(&got[0]);
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4") };
            assert_eq!((f.src, f.dst, f.ttl), (ip("10.2.0.77"), ip("10.1.0.2"), 63));
        }
        let unknown = udp(MAC_HA, MAC_RA, "10.1.0.2", 5001, "10.2.0.2", 4000);
        hb.send(&frag_needed(&unknown));
        ha.silent();
        published(|| counter(&c.drops[DropReason::RuleDrop.index()]) == 1);
        assert_eq!(counter(&c.drops[DropReason::RuleDrop.index()]), 1, "the error about no connection");
        assert_eq!(counter(&c.cache_hits), 0, "errors are simulated each time");
    });
}
