//! The gateway pipeline on real EAL with `net_ring` ports, through a bridge: router R's port A
//! (10.1.0.1/24, MAC 02:00:00:00:01:01) on appliance port 0, R's port B (10.2.0.1/24, MAC
//! 02:00:00:00:02:01) linked to bridge port `br` of a bridge whose exterior ports `b1` and `b2`
//! are appliance ports 1 and 2. Host A is 10.1.0.2 on port A; VMs 10.2.0.2 (B1) and 10.2.0.3
//! (B2) are behind the bridge.

mod common;

use common::ring::{arp, config, counter, ip, published, udp_frame, valid, Host};

use std::sync::atomic::{AtomicBool, Ordering};

use midogw::flowtable::flow::FlowCacheConfig;
use midogw::flowtable::sim::DropReason;
use midogw::flowtable::topology::{Snapshot, SnapshotBuilder, Uuid};
use midogw::flowtable::wire::{ArpOperation, EthernetAddress, L3};
use midogw::{
    pipeline_plans, run_pipeline, Eal, Mempool, PipelineConfig, PipelineCounters, Port, Ring, SnapshotExchange,
};

const MAC_RA: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x01, 0x01]);
const MAC_RB: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x02, 0x01]);
const MAC_HA: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 2]);
const MAC_B1: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 2]);
const MAC_B2: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 3]);

fn snapshot(dpdk: [u16; 3]) -> Snapshot {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let pa = b.add_router_port(r, Uuid(10), MAC_RA, &["10.1.0.1/24".parse().unwrap()]);
    let pb = b.add_router_port(r, Uuid(11), MAC_RB, &["10.2.0.1/24".parse().unwrap()]);
    let bridge = b.add_bridge(Uuid(20));
    let br = b.add_bridge_port(bridge, Uuid(21));
    let b1 = b.add_bridge_port(bridge, Uuid(22));
    let b2 = b.add_bridge_port(bridge, Uuid(23));
    b.link(pb, br);
    b.bind_local(pa, dpdk[0]);
    b.bind_local(b1, dpdk[1]);
    b.bind_local(b2, dpdk[2]);
    b.build().expect("valid topology")
}

/// IPv4/UDP `src` -> `dst` between two MACs.
fn udp(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: &str, dst: &str, sport: u16) -> Vec<u8> {
    udp_frame(src_mac, dst_mac, src, dst, sport, 64, 32)
}

/// Brings up EAL, the appliance's three ports, the three hosts and one pipeline worker, runs
/// `body`, stops the worker and checks every mbuf went back to the pool.
fn with_bridge(tag: &str, body: impl FnOnce(&mut [Host<'_>; 3], &PipelineCounters)) {
    let eal = Eal::init(&common::test_eal_config(tag, 256)).expect("EAL");
    let pool = Mempool::new(&eal, &format!("{tag}pool"), 2047).expect("pool");
    let rings: Vec<Ring<'_>> = (0..6).map(|i| Ring::new(&eal, &format!("{tag}w{i}"), 1024).unwrap()).collect();
    let appliance: Vec<Port<'_>> = (0..3)
        .map(|i| Port::from_rings(&eal, &pool, &rings[2 * i], &rings[2 * i + 1], &config(&format!("a{i}"))).unwrap())
        .collect();
    let host_ports: Vec<Port<'_>> = (0..3)
        .map(|i| Port::from_rings(&eal, &pool, &rings[2 * i + 1], &rings[2 * i], &config(&format!("h{i}"))).unwrap())
        .collect();
    let exchange = SnapshotExchange::new(snapshot([appliance[0].id(), appliance[1].id(), appliance[2].id()]), 1);
    let mut queues: Vec<_> = host_ports.iter().map(|p| p.take_queues().unwrap()).collect();
    let mut hosts = [0, 1, 2].map(|i| {
        let (rx, tx) = &mut queues[i];
        Host { pool: &pool, tx: tx.remove(0), rx: rx.remove(0) }
    });
    let mut plans = pipeline_plans(&appliance, 1).unwrap();
    let plan = plans.remove(0);
    // The emptied list goes now: its type borrows the ports, which are dropped before the end.
    drop(plans);
    let counters = plan.counters();
    let pipeline = PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        ..PipelineConfig::default()
    };
    let stop = AtomicBool::new(false);
    eal.scope(|s| {
        s.launch(1, || run_pipeline(plan, &exchange, &pool, &pipeline, &stop)).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut hosts, &counters)));
        stop.store(true, Ordering::Relaxed);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    })
    .expect("worker exits cleanly");
    assert_eq!(counters.tx_full_drops.load(Ordering::Relaxed), 0);
    assert_eq!(counters.alloc_failures.load(Ordering::Relaxed), 0);
    drop((hosts, queues));
    drop((appliance, host_ports));
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}

#[test]
fn bridge_floods_learns_and_answers_arp_for_the_router() {
    with_bridge("pbr1", |[_ha, b1, b2], c| {
        // B1's broadcast ARP for the router: B2 sees the flood, the router answers B1.
        let req = arp(ArpOperation::Request, MAC_B1, EthernetAddress::BROADCAST, "10.2.0.2", "10.2.0.1");
        b1.send(&req);
        let got = b2.recv(1);
        assert_eq!(got, vec![req.clone()], "flooded unchanged");
        let got = b1.recv(1);
        assert_eq!(got.len(), 1, "ARP reply");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_B1));
        let L3::Arp(a) = h.l3 else { panic!("not ARP: {h:?}") };
        assert_eq!((a.operation, a.source_protocol_addr), (ArpOperation::Reply, ip("10.2.0.1")));

        // B2 -> B1 is known unicast now (B1 learned); B1 -> B2 too after that; then cache hits.
        let to_b1 = udp(MAC_B2, MAC_B1, "10.2.0.3", "10.2.0.2", 7000);
        let to_b2 = udp(MAC_B1, MAC_B2, "10.2.0.2", "10.2.0.3", 7001);
        for round in 0..3 {
            b2.send(&to_b1);
            assert_eq!(b1.recv(1), vec![to_b1.clone()], "round {round}");
            b1.send(&to_b2);
            assert_eq!(b2.recv(1), vec![to_b2.clone()], "round {round}");
        }
        b1.silent();
        b2.silent();
        published(|| counter(&c.cache_hits) == 4);
        assert_eq!(counter(&c.cache_hits), 4, "rounds 2 and 3 of both flows");
    });
}

#[test]
fn routed_into_the_bridge_after_arp_on_the_bridge() {
    with_bridge("pbr2", |[ha, b1, b2], c| {
        let sent = udp(MAC_HA, MAC_RA, "10.1.0.2", "10.2.0.3", 7002);
        ha.send(&sent);
        // The router's ARP request for 10.2.0.3 reaches both VMs through the bridge.
        for vm in [&mut *b1, &mut *b2] {
            let got = vm.recv(1);
            assert_eq!(got.len(), 1, "ARP request");
            let h = valid(&got[0]);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, EthernetAddress::BROADCAST));
            let L3::Arp(a) = h.l3 else { panic!("not ARP: {h:?}") };
            assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (ip("10.2.0.1"), ip("10.2.0.3")));
        }
        published(|| counter(&c.held) == 1);
        assert_eq!(counter(&c.held), 1, "the first packet waits for the answer");
        b2.send(&arp(ArpOperation::Reply, MAC_B2, MAC_RB, "10.2.0.3", "10.2.0.1"));
        for round in 0..3 {
            // Round 0 is the held packet, released by the reply and simulated again (cached); then hits.
            if round > 0 {
                ha.send(&sent);
            }
            let got = b2.recv(1);
            assert_eq!(got.len(), 1, "round {round}");
            let h = valid(&got[0]);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_B2));
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!(f.ttl, 63);
            assert_eq!(got[0][34..], sent[34..]);
        }
        b1.silent();
        b2.silent();
        published(|| counter(&c.released) == 1 && counter(&c.cache_hits) == 2);
        assert_eq!(counter(&c.released), 1);
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
        assert_eq!(counter(&c.cache_hits), 2);
    });
}

#[test]
fn a_mac_that_moves_takes_its_cached_flows_with_it() {
    with_bridge("pbr3", |[ha, b1, b2], c| {
        // Host A announces itself, so the router can answer for B1 later.
        ha.send(&arp(ArpOperation::Request, MAC_HA, EthernetAddress::BROADCAST, "10.1.0.2", "10.1.0.1"));
        assert_eq!(ha.recv(1).len(), 1, "ARP reply");
        // B1 announces itself (learned behind port 1; the router learns 10.2.0.2).
        b1.send(&arp(ArpOperation::Request, MAC_B1, EthernetAddress::BROADCAST, "10.2.0.2", "10.2.0.1"));
        assert_eq!(b1.recv(1).len(), 1, "ARP reply");
        assert_eq!(b2.recv(1).len(), 1, "the flooded request");
        let sent = udp(MAC_HA, MAC_RA, "10.1.0.2", "10.2.0.2", 7003);
        for _ in 0..2 {
            ha.send(&sent);
            assert_eq!(b1.recv(1).len(), 1);
        }
        ha.silent();
        // The worker publishes its counters on its first idle turn after the traffic.
        published(|| counter(&c.cache_hits) == 1);
        assert_eq!(counter(&c.cache_hits), 1, "routed into the bridge from the cache");
        // B1's MAC shows up behind port 2 (the VM moved): the cached flow must follow it.
        b2.send(&udp(MAC_B1, MAC_RB, "10.2.0.2", "10.1.0.2", 7004));
        let got = ha.recv(1);
        assert_eq!(got.len(), 1, "B1's packet routed to host A");
        assert_eq!(valid(&got[0]).eth_src, MAC_RA);
        assert!(matches!(valid(&got[0]).l3, L3::Ipv4(f) if f.src == ip("10.2.0.2")));
        ha.send(&sent);
        let got = b2.recv(1);
        assert_eq!(got.len(), 1, "delivered behind the new port");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_B1));
        b1.silent();
    });
}
