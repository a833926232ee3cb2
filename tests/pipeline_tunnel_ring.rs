//! The gateway pipeline on real EAL with `net_ring` ports and a VXLAN tunnel: router R's uplink
//! `up` (192.0.2.1/24, MAC 02:00:00:00:01:01) on appliance port 0 with the outside host 192.0.2.7;
//! R's `rb` (10.0.0.1/24, MAC 02:00:00:00:02:01) linked to a bridge whose port `vm` is bound on
//! compute host 1 (192.168.7.11, VXLAN, key 0x101). The underlay is appliance port 1
//! (192.168.7.1/24), where the test plays compute host 1 with VM 10.0.0.5 behind it.

mod common;

use common::ring::{
    arp, config, counter, gre_frame, ip, published, short_lived_neighbours, udp_frame, valid, vxlan_frame,
    with_two_ports_two_workers, Host, ARRIVAL_LIMIT,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use midogw::flowtable::chain::{Condition, Field, FlowDirection, RuleKind};
use midogw::flowtable::flow::{FlowCacheConfig, FlowKey};
use midogw::flowtable::sim::DropReason;
use midogw::flowtable::topology::{Encap, Snapshot, SnapshotBuilder, Underlay, Uuid};
use midogw::flowtable::wire::{
    ArpOperation, EtherType, EthernetAddress, Headers, Ipv4Packet, PseudoHeader, UdpPacket, VxlanPacket, L3, L4,
};
use midogw::{
    pipeline_plans, run_pipeline, Eal, Mempool, PipelineConfig, PipelineCounters, Port, Ring, SnapshotExchange,
};

const MAC_UP: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x01, 0x01]);
const MAC_RB: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x02, 0x01]);
const MAC_OUT: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 7]);
const MAC_HOST1: EthernetAddress = EthernetAddress([0x02, 0x77, 0, 0, 0, 11]);
const MAC_VM: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 5]);
const KEY: u32 = 0x101;

fn snapshot(uplink: u16, underlay: u16, encap: Encap) -> Snapshot {
    snapshot_with(uplink, underlay, encap, false)
}

/// [`snapshot`], and with `stateful` R's infilter accepts return flows and what comes from the
/// bridge side (`rb`), and drops the rest.
fn snapshot_with(uplink: u16, underlay: u16, encap: Encap, stateful: bool) -> Snapshot {
    snapshot_generation(uplink, underlay, encap, stateful, 1, (Uuid(22), KEY))
}

/// [`snapshot_with`] as generation `generation`, the VM's port `vm` (its UUID and tunnel key);
/// past the first generation, with one more (unused) bridge.
fn snapshot_generation(
    uplink: u16,
    underlay: u16,
    encap: Encap,
    stateful: bool,
    generation: u64,
    vm: (Uuid, u32),
) -> Snapshot {
    let mut b = SnapshotBuilder::new(generation);
    if generation > 1 {
        b.add_bridge(Uuid(50));
    }
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(10), MAC_UP, &["192.0.2.1/24".parse().unwrap()]);
    let rb = b.add_router_port(r, Uuid(11), MAC_RB, &["10.0.0.1/24".parse().unwrap()]);
    let bridge = b.add_bridge(Uuid(20));
    let br = b.add_bridge_port(bridge, Uuid(21));
    let (vm_uuid, vm_key) = vm;
    let vm = b.add_bridge_port(bridge, vm_uuid);
    let host = b.add_host(Uuid(30), "192.168.7.11".parse().unwrap(), encap);
    b.link(rb, br);
    b.bind_local(up, uplink);
    b.bind_remote(vm, host, vm_key);
    b.set_underlay(Underlay::new(underlay, ip("192.168.7.1"), 24));
    if stateful {
        let c = b.add_chain(Uuid(40), "stateful");
        let ret = Condition { flow: Some(FlowDirection::Return), ..Condition::default() };
        b.add_new_rule(c, Uuid(41), ret, RuleKind::Accept).unwrap();
        let inside = Condition { in_ports: Some(Field::is(vec![rb].into_boxed_slice())), ..Condition::default() };
        b.add_new_rule(c, Uuid(42), inside, RuleKind::Accept).unwrap();
        b.add_new_rule(c, Uuid(43), Condition::default(), RuleKind::Drop).unwrap();
        b.set_router_filters(r, Some(c), None);
    }
    b.build().expect("valid topology")
}

fn udp(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: &str, dst: &str, sport: u16) -> Vec<u8> {
    udp_frame(src_mac, dst_mac, src, dst, sport, 64, 24)
}

/// Compute host 1 wraps `inner` in VXLAN (VNI [`KEY`]) to the gateway's underlay address.
fn vxlan(underlay_mac: EthernetAddress, inner: &[u8]) -> Vec<u8> {
    vxlan_frame(MAC_HOST1, underlay_mac, "192.168.7.11", "192.168.7.1", KEY, inner)
}

/// Compute host 1 wraps `inner` in GRE (key [`KEY`], protocol 0x6558) to the gateway's underlay address.
fn gre(underlay_mac: EthernetAddress, inner: &[u8]) -> Vec<u8> {
    gre_frame(MAC_HOST1, underlay_mac, "192.168.7.11", "192.168.7.1", KEY, inner)
}

/// Checks the outer headers of a VXLAN frame from the gateway to compute host 1; returns the inner frame.
fn unwrap_vxlan(frame: &[u8], underlay_mac: EthernetAddress) -> Vec<u8> {
    let h = Headers::parse(frame).expect("parses");
    h.verify_checksums(frame).expect("outer checksums");
    assert_eq!((h.eth_src, h.eth_dst), (underlay_mac, MAC_HOST1));
    let L3::Ipv4(o) = h.l3 else { panic!("not IPv4: {h:?}") };
    assert_eq!((o.src, o.dst, o.ttl, o.dont_frag), (ip("192.168.7.1"), ip("192.168.7.11"), 255, true));
    let L4::Udp { src_port, dst_port } = h.l4 else { panic!("not UDP: {h:?}") };
    assert!(src_port >= 49152);
    assert_eq!(dst_port, 4789);
    let vx = VxlanPacket::new_checked(&frame[h.payload_offset..]).unwrap();
    assert!(vx.vni_valid());
    assert_eq!(vx.vni().get(), KEY);
    frame[h.payload_offset + 8..].to_vec()
}

/// Brings up EAL, the appliance's two ports (uplink, underlay), the outside host and the compute host and one pipeline worker, runs
/// `body`, stops the worker and checks every mbuf went back to the pool.
fn with_gateway(tag: &str, body: impl FnOnce(&mut [Host<'_>; 2], EthernetAddress, &PipelineCounters)) {
    with_gateway_encap(tag, Encap::Vxlan, body);
}

/// [`with_gateway`] with compute host 1 using `encap`.
fn with_gateway_encap(
    tag: &str,
    encap: Encap,
    body: impl FnOnce(&mut [Host<'_>; 2], EthernetAddress, &PipelineCounters),
) {
    with_gateway_config(tag, encap, &small_cache(), body);
}

/// The workers' configuration of most tests here: defaults, with a 1 Ki-flow cache.
fn small_cache() -> PipelineConfig {
    PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() },
        ..PipelineConfig::default()
    }
}

/// Compute host 1 and the VM behind it ask the gateway for its addresses (each request answered,
/// its sender learned): the underlay and the router know both.
fn announce_host_and_vm(host1: &mut Host<'_>, underlay_mac: EthernetAddress) {
    host1.send(&arp(ArpOperation::Request, MAC_HOST1, EthernetAddress::BROADCAST, "192.168.7.11", "192.168.7.1"));
    assert_eq!(host1.recv(1).len(), 1, "underlay ARP reply");
    let vm_asks = arp(ArpOperation::Request, MAC_VM, EthernetAddress::BROADCAST, "10.0.0.5", "10.0.0.1");
    host1.send(&vxlan(underlay_mac, &vm_asks));
    assert_eq!(host1.recv(1).len(), 1, "the router's ARP reply to the VM, over VXLAN");
}

/// Waits until the worker's published counters say it runs `generation`, calling `nudge` (which
/// should make the worker busy: it publishes its counters after busy turns) between looks.
fn await_generation(c: &PipelineCounters, generation: u64, mut nudge: impl FnMut()) {
    let deadline = Instant::now() + ARRIVAL_LIMIT;
    while counter(&c.snapshot_generation) < generation {
        assert!(Instant::now() < deadline, "the worker takes snapshot {generation}");
        nudge();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`with_gateway_encap`] with the worker's configuration given.
fn with_gateway_config(
    tag: &str,
    encap: Encap,
    pipeline: &PipelineConfig,
    body: impl FnOnce(&mut [Host<'_>; 2], EthernetAddress, &PipelineCounters),
) {
    with_gateway_exchange(tag, encap, pipeline, |hosts, underlay_mac, c, _| body(hosts, underlay_mac, c));
}

/// [`with_gateway_config`], the body also given the snapshot exchange (to publish changes).
fn with_gateway_exchange(
    tag: &str,
    encap: Encap,
    pipeline: &PipelineConfig,
    body: impl FnOnce(&mut [Host<'_>; 2], EthernetAddress, &PipelineCounters, &SnapshotExchange),
) {
    let eal = Eal::init(&common::test_eal_config(tag, 256)).expect("EAL");
    let pool = Mempool::new(&eal, &format!("{tag}pool"), 2047).expect("pool");
    let rings: Vec<Ring<'_>> = (0..4).map(|i| Ring::new(&eal, &format!("{tag}w{i}"), 1024).unwrap()).collect();
    let appliance: Vec<Port<'_>> = (0..2)
        .map(|i| Port::from_rings(&eal, &pool, &rings[2 * i], &rings[2 * i + 1], &config(&format!("a{i}"))).unwrap())
        .collect();
    let host_ports: Vec<Port<'_>> = (0..2)
        .map(|i| Port::from_rings(&eal, &pool, &rings[2 * i + 1], &rings[2 * i], &config(&format!("h{i}"))).unwrap())
        .collect();
    let exchange = SnapshotExchange::new(snapshot(appliance[0].id(), appliance[1].id(), encap), 1);
    let underlay_mac = EthernetAddress(appliance[1].mac());
    let mut queues: Vec<_> = host_ports.iter().map(|p| p.take_queues().unwrap()).collect();
    let mut hosts = [0, 1].map(|i| {
        let (rx, tx) = &mut queues[i];
        Host { pool: &pool, tx: tx.remove(0), rx: rx.remove(0) }
    });
    let mut plans = pipeline_plans(&appliance, 1).unwrap();
    let plan = plans.remove(0);
    // The emptied list goes now: its type borrows the ports, which are dropped before the end.
    drop(plans);
    let counters = plan.counters();
    let stop = AtomicBool::new(false);
    eal.scope(|s| {
        s.launch(1, || run_pipeline(plan, &exchange, &pool, pipeline, &stop)).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            body(&mut hosts, underlay_mac, &counters, &exchange)
        }));
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
fn vxlan_from_a_compute_host_is_decapsulated_and_routed_to_the_uplink() {
    with_gateway("ptun1", |[outside, host1], underlay_mac, c| {
        outside.send(&arp(ArpOperation::Request, MAC_OUT, EthernetAddress::BROADCAST, "192.0.2.7", "192.0.2.1"));
        assert_eq!(outside.recv(1).len(), 1, "ARP reply: the router knows the outside host now");
        let inner = udp(MAC_VM, MAC_RB, "10.0.0.5", "192.0.2.7", 6000);
        for round in 0..2 {
            host1.send(&vxlan(underlay_mac, &inner));
            let got = outside.recv(1);
            assert_eq!(got.len(), 1, "round {round}");
            let h = valid(&got[0]);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_UP, MAC_OUT));
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!((f.src, f.dst, f.ttl), (ip("10.0.0.5"), ip("192.0.2.7"), 63));
            assert_eq!(got[0][34..], inner[34..]);
        }
        // From the wrong host: a counted drop.
        let mut forged = vxlan(underlay_mac, &inner);
        forged[26..30].copy_from_slice(&[192, 168, 7, 99]);
        Ipv4Packet::new_checked(&mut forged[14..]).unwrap().fill_checksum();
        host1.send(&forged);
        outside.silent();
        host1.silent();
        published(|| c.dropped(DropReason::TunnelHostMismatch) == 1 && counter(&c.cache_hits) == 1);
        assert_eq!(c.dropped(DropReason::TunnelHostMismatch), 1);
        assert_eq!(counter(&c.cache_hits), 1, "the second tunnelled packet");
    });
}

#[test]
fn uplink_to_a_vm_behind_vxlan_with_arp_on_the_underlay() {
    with_gateway("ptun2", |[outside, host1], underlay_mac, c| {
        let sent = udp(MAC_OUT, MAC_UP, "192.0.2.7", "10.0.0.5", 6001);
        outside.send(&sent);
        // The router asks for 10.0.0.5 on the bridge; the bridge's tunnel leg needs the compute
        // host's MAC on the underlay first.
        let got = host1.recv(1);
        assert_eq!(got.len(), 1, "underlay ARP request");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (underlay_mac, EthernetAddress::BROADCAST));
        let L3::Arp(a) = h.l3 else { panic!("not ARP: {h:?}") };
        assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (ip("192.168.7.1"), ip("192.168.7.11")));
        host1.send(&arp(ArpOperation::Reply, MAC_HOST1, underlay_mac, "192.168.7.11", "192.168.7.1"));
        // The router's ARP request for the VM on the bridge, held for that answer, goes over VXLAN
        // now (a retry of the held packet, once per resolution interval, may ask again, and may
        // have asked for the compute host again before its answer arrived).
        let underlay_arp = |frame: &[u8]| frame[12..14] == [0x08, 0x06];
        let is_vm_arp_request = |frame: &[u8]| {
            let inner = unwrap_vxlan(frame, underlay_mac);
            let h = valid(&inner);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, EthernetAddress::BROADCAST), "only ARP requests for the VM");
            matches!(h.l3, L3::Arp(a) if a.target_protocol_addr == ip("10.0.0.5"))
        };
        let got = host1.recv_until(|got| got.iter().any(|f| !underlay_arp(f)));
        assert!(got.iter().any(|f| !underlay_arp(f)), "a VXLAN-wrapped ARP request: {got:02x?}");
        assert!(got.iter().all(|f| underlay_arp(f) || is_vm_arp_request(f)), "{got:02x?}");
        // The VM answers through the tunnel: the packet, held meanwhile, is delivered.
        host1.send(&vxlan(underlay_mac, &arp(ArpOperation::Reply, MAC_VM, MAC_RB, "10.0.0.5", "10.0.0.1")));
        let not_arp = |f: &Vec<u8>| !underlay_arp(f) && !matches!(valid(&unwrap_vxlan(f, underlay_mac)).l3, L3::Arp(_));
        let got: Vec<Vec<u8>> =
            host1.recv_until(|got| got.iter().any(not_arp)).into_iter().filter(|f| not_arp(f)).collect();
        assert_eq!(got.len(), 1, "the held packet");
        published(|| counter(&c.released) == 2);
        assert_eq!(counter(&c.released), 2, "the router's ARP request, then the packet");
        let check = |frame: &[u8]| {
            let inner = unwrap_vxlan(frame, underlay_mac);
            let h = valid(&inner);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_VM));
            let L3::Ipv4(f) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!((f.dst, f.ttl), (ip("10.0.0.5"), 63));
            assert_eq!(inner[34..], sent[34..]);
        };
        got.iter().for_each(|f| check(f));
        // The flow is cached now: the next packet is encapsulated on a hit.
        outside.send(&sent);
        let got = host1.recv(1);
        assert_eq!(got.len(), 1);
        check(&got[0]);
        outside.silent();
        host1.silent();
        published(|| counter(&c.cache_hits) >= 1);
        assert!(counter(&c.cache_hits) >= 1, "encapsulated from the cache");
        // Nothing was lost waiting for the underlay: the router's ARP request waited for it.
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
        assert_eq!(c.dropped(DropReason::HoldTimeout), 0);
    });
}

/// A priority-tagged frame from the uplink to the VM behind VXLAN enters the tunnel untagged (a
/// router's output is; RFC 7348 6.1 has the compute host's VTEP discard an inner frame with a
/// tag), on its first packet and from the cache: the VXLAN frame is, byte for byte, the one the
/// same frame without the tag makes (outer lengths counting the inner frame without it), in an
/// mbuf whose lengths agree.
#[test]
fn a_priority_tagged_frame_enters_the_tunnel_untagged() {
    with_gateway("ptunprio", |[outside, host1], underlay_mac, c| {
        announce_host_and_vm(host1, underlay_mac);
        let plain = udp(MAC_OUT, MAC_UP, "192.0.2.7", "10.0.0.5", 6004);
        outside.send(&plain);
        let want = host1.recv(1);
        assert_eq!(want.len(), 1, "the frame without the tag");
        let inner = unwrap_vxlan(&want[0], underlay_mac);
        assert_eq!(inner.len(), plain.len());
        let h = valid(&inner);
        assert_eq!((h.vlan, h.eth_src, h.eth_dst), (None, MAC_RB, MAC_VM));
        let tagged = [&plain[..12], &[0x81, 0x00, 0xa0, 0x00], &plain[12..]].concat();
        for round in 0..2 {
            outside.send(&tagged);
            let got = host1.recv_mbufs(1);
            assert_eq!(got.len(), 1, "round {round}");
            assert_eq!(got[0].data, want[0], "round {round}: as without the tag");
            assert_eq!(got[0].pkt_len as usize, got[0].data.len());
        }
        outside.silent();
        host1.silent();
        published(|| counter(&c.cache_hits) == 1);
        assert_eq!(counter(&c.cache_hits), 1, "the tagged frame's second time");
    });
}

/// A priority-tagged frame from a VM behind GRE (which, unlike VXLAN, carries tagged frames):
/// decapsulated, bridged (the bridge learns, so the cached flow is an action list), routed, and
/// out of the uplink untagged, as the same frame without the tag is, on its first packet and
/// from the cache; the mbuf lost the outer headers and then the tag at the front.
#[test]
fn a_priority_tagged_frame_from_a_gre_vm_leaves_untagged() {
    with_gateway_encap("ptungprio", Encap::Gre, |[outside, host1], underlay_mac, c| {
        outside.send(&arp(ArpOperation::Request, MAC_OUT, EthernetAddress::BROADCAST, "192.0.2.7", "192.0.2.1"));
        assert_eq!(outside.recv(1).len(), 1, "ARP reply");
        host1.send(&arp(ArpOperation::Request, MAC_HOST1, EthernetAddress::BROADCAST, "192.168.7.11", "192.168.7.1"));
        assert_eq!(host1.recv(1).len(), 1, "underlay ARP reply");
        let plain = udp(MAC_VM, MAC_RB, "10.0.0.5", "192.0.2.7", 6101);
        host1.send(&gre(underlay_mac, &plain));
        let want = outside.recv_mbufs(1);
        assert_eq!(want.len(), 1, "the frame without the tag");
        let h = valid(&want[0].data);
        assert_eq!((h.vlan, h.eth_src, h.eth_dst), (None, MAC_UP, MAC_OUT));
        let tagged = [&plain[..12], &[0x81, 0x00, 0xa0, 0x00], &plain[12..]].concat();
        for round in 0..2 {
            host1.send(&gre(underlay_mac, &tagged));
            let got = outside.recv_mbufs(1);
            assert_eq!(got.len(), 1, "round {round}");
            assert_eq!(got[0].data, want[0].data, "round {round}: as without the tag");
            assert_eq!(got[0].pkt_len as usize, plain.len());
            assert_eq!(got[0].headroom, want[0].headroom + 4, "round {round}: the tag's bytes left the front");
        }
        outside.silent();
        host1.silent();
        published(|| counter(&c.cache_hits) == 1);
        assert_eq!(counter(&c.cache_hits), 1, "the tagged frame's second time");
    });
}

/// Polls and forwarded packets seen by compute host 1 in [`tunnel_neighbours_in_use_are_polled_before_they_expire`].
#[derive(Default)]
struct PolledTraffic {
    forwarded: usize,
    underlay_polls: usize,
    vm_polls: usize,
}

impl PolledTraffic {
    /// What compute host 1 receives in `d`, each frame checked: a packet encapsulated for the VM,
    /// or a point-to-point poll for the compute host (on the underlay) or for the VM (through the
    /// tunnel), which it answers.
    fn take(&mut self, host1: &mut Host<'_>, underlay_mac: EthernetAddress, d: Duration) {
        for f in host1.recv_for(d) {
            let h = valid(&f);
            assert_eq!(h.eth_dst, MAC_HOST1, "point to point on the underlay: {h:?}");
            if let L3::Arp(a) = h.l3 {
                assert_eq!(a.operation, ArpOperation::Request);
                assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (ip("192.168.7.1"), ip("192.168.7.11")));
                self.underlay_polls += 1;
                host1.send(&arp(ArpOperation::Reply, MAC_HOST1, underlay_mac, "192.168.7.11", "192.168.7.1"));
                continue;
            }
            let inner = unwrap_vxlan(&f, underlay_mac);
            let h = valid(&inner);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_RB, MAC_VM), "point to point to the VM: {h:?}");
            match h.l3 {
                L3::Arp(a) => {
                    assert_eq!(a.operation, ArpOperation::Request);
                    assert_eq!(a.target_protocol_addr, ip("10.0.0.5"));
                    self.vm_polls += 1;
                    host1.send(&vxlan(underlay_mac, &arp(ArpOperation::Reply, MAC_VM, MAC_RB, "10.0.0.5", "10.0.0.1")));
                }
                L3::Ipv4(_) => self.forwarded += 1,
                _ => panic!("unexpected inner frame {h:?}"),
            }
        }
    }
}

/// Both neighbours a tunnelled flow uses (the VM behind the bridge, over the tunnel, and the
/// compute host on the underlay) are polled point to point once stale, and their answers keep
/// them fresh: a flow lasting several neighbour lifetimes is never held for a resolution.
#[test]
fn tunnel_neighbours_in_use_are_polled_before_they_expire() {
    // A 1 s lifetime: stale after 750 ms, polled every 50 ms from then; flows kept as long.
    let pipeline = short_lived_neighbours(1_000_000_000);
    with_gateway_config("ptunpoll", Encap::Vxlan, &pipeline, |[outside, host1], underlay_mac, c| {
        announce_host_and_vm(host1, underlay_mac);
        let sent = udp(MAC_OUT, MAC_UP, "192.0.2.7", "10.0.0.5", 6002);
        let (mut seen, mut sent_count) = (PolledTraffic::default(), 0);
        // Traffic for 3.2 s, then 100 ms more to take in the last frames (longer while some are
        // still missing: the worker may be late), each seen by its kind.
        let stop_sending = Instant::now() + Duration::from_millis(3200);
        while Instant::now() < stop_sending + Duration::from_millis(100)
            || (seen.forwarded < sent_count && Instant::now() < stop_sending + ARRIVAL_LIMIT)
        {
            if Instant::now() < stop_sending {
                outside.send(&sent);
                sent_count += 1;
            }
            seen.take(host1, underlay_mac, Duration::from_millis(10));
        }
        let (forwarded, underlay_polls, vm_polls) = (seen.forwarded, seen.underlay_polls, seen.vm_polls);
        assert_eq!(forwarded, sent_count, "every packet encapsulated and sent");
        assert!((3..=12).contains(&underlay_polls), "one poll (or a few) per lifetime: {underlay_polls}");
        assert!((3..=12).contains(&vm_polls), "one poll (or a few) per lifetime: {vm_polls}");
        outside.silent();
        // Both entries were in use until the traffic stopped, so either may be polled once more:
        // answered and counted as the others, until the worker's published count has every poll.
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        while counter(&c.neighbour_polls) != (seen.underlay_polls + seen.vm_polls) as u64 && Instant::now() < deadline {
            seen.take(host1, underlay_mac, Duration::from_millis(10));
        }
        assert_eq!(counter(&c.held), 0, "no packet waited for a resolution");
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
        assert_eq!(counter(&c.neighbour_polls), (seen.underlay_polls + seen.vm_polls) as u64);
    });
}

/// A topology change elsewhere keeps what the worker knows of the underlay: the tunnelled flow's
/// next packet is encapsulated at once (the per-core outer header is rebuilt from the compute
/// host's entry), not held while the compute host is asked again.
#[test]
fn a_topology_change_keeps_the_underlay_next_hops() {
    with_gateway_exchange("ptunsnap", Encap::Vxlan, &small_cache(), |[outside, host1], underlay_mac, c, exchange| {
        announce_host_and_vm(host1, underlay_mac);
        let sent = udp(MAC_OUT, MAC_UP, "192.0.2.7", "10.0.0.5", 6003);
        let encapsulated = |frames: Vec<Vec<u8>>| {
            assert_eq!(frames.len(), 1, "{frames:02x?}");
            let inner = unwrap_vxlan(&frames[0], underlay_mac);
            assert_eq!(valid(&inner).eth_dst, MAC_VM);
        };
        outside.send(&sent);
        encapsulated(host1.recv(1));
        let (uplink, underlay) = (0, 1);
        let changes =
            exchange.publish(snapshot_generation(uplink, underlay, Encap::Vxlan, false, 2, (Uuid(22), KEY))).unwrap();
        assert!(!changes.tags.is_empty() && !changes.everything, "{changes:?}");
        await_generation(c, 2, || {
            outside.send(&sent);
            encapsulated(host1.recv(1));
        });
        outside.send(&sent);
        encapsulated(host1.recv(1));
        host1.silent();
        outside.silent();
        assert_eq!(counter(&c.held), 0, "no packet waited for the compute host");
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
    });
}

/// A tunnelled frame held for its next hop while its ingress port is replaced (another port now
/// has its index) is dropped when the answer comes, not simulated as if it had entered through
/// the new port.
#[test]
fn a_held_frame_whose_tunnel_port_left_is_dropped() {
    let pipeline = PipelineConfig::default();
    with_gateway_exchange("ptungone", Encap::Vxlan, &pipeline, |[outside, host1], underlay_mac, c, exchange| {
        let inner = udp(MAC_VM, MAC_RB, "10.0.0.5", "192.0.2.7", 6004);
        host1.send(&vxlan(underlay_mac, &inner));
        let got = outside.recv(1);
        assert_eq!(got.len(), 1, "the router asks for the outside host; the frame waits");
        assert!(matches!(valid(&got[0]).l3, L3::Arp(_)));
        let replaced = snapshot_generation(0, 1, Encap::Vxlan, false, 2, (Uuid(23), KEY + 1));
        exchange.publish(replaced).unwrap();
        // An ARP request for someone else (not learned, dropped) keeps the worker busy.
        let not_for_us =
            arp(ArpOperation::Request, MAC_HOST1, EthernetAddress::BROADCAST, "192.168.7.11", "192.168.7.99");
        await_generation(c, 2, || host1.send(&not_for_us));
        outside.send(&arp(ArpOperation::Reply, MAC_OUT, MAC_UP, "192.0.2.7", "192.0.2.1"));
        outside.silent();
        published(|| c.dropped(DropReason::IngressGone) == 1);
        assert_eq!(c.dropped(DropReason::IngressGone), 1);
        assert_eq!(counter(&c.released), 0);
    });
}

#[test]
fn gre_both_ways_between_a_compute_host_and_the_uplink() {
    with_gateway_encap("ptun3", Encap::Gre, |[outside, host1], underlay_mac, c| {
        outside.send(&arp(ArpOperation::Request, MAC_OUT, EthernetAddress::BROADCAST, "192.0.2.7", "192.0.2.1"));
        assert_eq!(outside.recv(1).len(), 1, "ARP reply");
        host1.send(&arp(ArpOperation::Request, MAC_HOST1, EthernetAddress::BROADCAST, "192.168.7.11", "192.168.7.1"));
        let got = host1.recv(1);
        assert_eq!(got.len(), 1, "underlay ARP reply");
        assert!(matches!(valid(&got[0]).l3, L3::Arp(a) if a.operation == ArpOperation::Reply));
        // The VM talks to the outside through GRE: decapsulated, learned, routed.
        let inner = udp(MAC_VM, MAC_RB, "10.0.0.5", "192.0.2.7", 6100);
        host1.send(&gre(underlay_mac, &inner));
        let got = outside.recv(1);
        assert_eq!(got.len(), 1);
        assert!(matches!(valid(&got[0]).l3, L3::Ipv4(f) if f.src == ip("10.0.0.5") && f.ttl == 63));
        // The VM's ARP answer teaches the router its MAC, then the outside answers over GRE.
        host1.send(&gre(underlay_mac, &arp(ArpOperation::Reply, MAC_VM, MAC_RB, "10.0.0.5", "10.0.0.1")));
        host1.silent();
        // Taken in (two ARP requests, the VM's packet, its answer) before the outside's packet is
        // sent: on the other port, that one would otherwise be read first and wait for the VM.
        published(|| counter(&c.rx_packets) == 4);
        assert_eq!(counter(&c.rx_packets), 4, "the VM's answer reached the worker");
        let back = udp(MAC_OUT, MAC_UP, "192.0.2.7", "10.0.0.5", 6101);
        outside.send(&back);
        let got = host1.recv(1);
        assert_eq!(got.len(), 1, "GRE to the compute host");
        let h = valid(&got[0]);
        assert_eq!((h.eth_src, h.eth_dst), (underlay_mac, MAC_HOST1));
        let L3::Ipv4(o) = h.l3 else { panic!("not IPv4: {h:?}") };
        assert_eq!((o.src, o.dst, o.ttl, o.dont_frag), (ip("192.168.7.1"), ip("192.168.7.11"), 255, true));
        let L4::Gre { key, protocol_type, version } = h.l4 else { panic!("not GRE: {h:?}") };
        assert_eq!((key, protocol_type, version), (Some(KEY), EtherType::TransparentEthernetBridging, 0));
        let inner = valid(&got[0][h.payload_offset..]);
        assert_eq!((inner.eth_src, inner.eth_dst), (MAC_RB, MAC_VM));
        assert_eq!(got[0][h.payload_offset + 34..], back[34..]);
        outside.silent();
        assert_eq!(c.dropped(DropReason::NeighbourUnresolved), 0);
    });
}

/// One burst from the underlay mixing tunnelled frames of two flows (a hit and misses), an ARP
/// request for the underlay address, and frames that are counted drops (unknown key, wrong outer
/// source, truncated VXLAN header): the burst is decapsulated first and looked up in stages, and
/// every frame still gets what it got alone, in order.
#[test]
fn a_mixed_underlay_burst_is_decapsulated_and_sent_in_order() {
    with_gateway("ptun4", |[outside, host1], underlay_mac, c| {
        outside.send(&arp(ArpOperation::Request, MAC_OUT, EthernetAddress::BROADCAST, "192.0.2.7", "192.0.2.1"));
        assert_eq!(outside.recv(1).len(), 1, "ARP reply: the router knows the outside host now");
        let inner = |sport: u16| udp(MAC_VM, MAC_RB, "10.0.0.5", "192.0.2.7", sport);
        // Flow 6000 is cached first, so the burst holds a hit.
        host1.send(&vxlan(underlay_mac, &inner(6000)));
        assert_eq!(outside.recv(1).len(), 1);
        let mut unknown_key = vxlan(underlay_mac, &inner(6001));
        unknown_key[46..49].copy_from_slice(&[0, 0x0f, 0xff]);
        let mut forged = vxlan(underlay_mac, &inner(6002));
        forged[26..30].copy_from_slice(&[192, 168, 7, 99]);
        Ipv4Packet::new_checked(&mut forged[14..]).unwrap().fill_checksum();
        let mut no_vni_flag = vxlan(underlay_mac, &inner(6003));
        no_vni_flag[42] = 0;
        let burst = vec![
            vxlan(underlay_mac, &inner(6000)),
            unknown_key,
            vxlan(underlay_mac, &inner(6004)),
            arp(ArpOperation::Request, MAC_HOST1, EthernetAddress::BROADCAST, "192.168.7.11", "192.168.7.1"),
            forged,
            vxlan(underlay_mac, &inner(6000)),
            no_vni_flag,
            vxlan(underlay_mac, &inner(6004)),
        ];
        let hits_before = counter(&c.cache_hits);
        host1.send_burst(&burst);
        let got = outside.recv(4);
        assert_eq!(got.len(), 4, "the four tunnelled frames of known flows");
        let sports: Vec<u16> = got.iter().map(|f| u16::from_be_bytes([f[34], f[35]])).collect();
        assert_eq!(sports, [6000, 6004, 6000, 6004], "in the order they came");
        for (f, sport) in got.iter().zip(sports) {
            let h = valid(f);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_UP, MAC_OUT));
            assert_eq!(f[34..], inner(sport)[34..], "inner frame after its headers, unchanged");
        }
        let answers = host1.recv(1);
        assert_eq!(answers.len(), 1, "the ARP reply for the underlay address");
        assert_eq!(&answers[0][12..14], &[0x08, 0x06]);
        assert_eq!(&answers[0][..6], &MAC_HOST1.0);
        outside.silent();
        host1.silent();
        published(|| {
            c.dropped(DropReason::UnknownTunnelKey) == 1
                && c.dropped(DropReason::TunnelHostMismatch) == 1
                && c.dropped(DropReason::TunnelMalformed) == 1
                && counter(&c.cache_hits) - hits_before == 3
        });
        assert_eq!(c.dropped(DropReason::UnknownTunnelKey), 1);
        assert_eq!(c.dropped(DropReason::TunnelHostMismatch), 1);
        assert_eq!(c.dropped(DropReason::TunnelMalformed), 1);
        // 6000 twice and the second 6004 (the first one installed it).
        assert_eq!(counter(&c.cache_hits) - hits_before, 3);
    });
}

/// Two workers and a stateful router: a VM's connection to the outside is decapsulated by the
/// worker its tunnel's outer headers reach, but the outside's replies arrive (by RSS on their own
/// tuple) at the other one. The decapsulating worker hands the VM's packet to that owner, which
/// records the connection, so the replies are return flows there and pass; unsolicited packets
/// from outside are still dropped.
#[test]
fn a_tunnelled_connection_is_handed_to_the_worker_its_replies_reach() {
    let stateful = |uplink, underlay| snapshot_with(uplink, underlay, Encap::Vxlan, true);
    with_two_ports_two_workers("pho", stateful, &small_cache(), |outside, host1, workers, macs| {
        let underlay_mac = macs[1];
        // The outside host, compute host 1 and the VM announce themselves (learned everywhere).
        outside.send_to(0, &arp(ArpOperation::Request, MAC_OUT, EthernetAddress::BROADCAST, "192.0.2.7", "192.0.2.1"));
        assert_eq!(outside.recv(1).len(), 1, "the router answers the outside host");
        host1.send_to(
            0,
            &arp(ArpOperation::Request, MAC_HOST1, EthernetAddress::BROADCAST, "192.168.7.11", "192.168.7.1"),
        );
        assert_eq!(host1.recv(1).len(), 1, "the gateway answers compute host 1");
        let vm_asks = arp(ArpOperation::Request, MAC_VM, EthernetAddress::BROADCAST, "10.0.0.5", "10.0.0.1");
        host1.send_to(0, &vxlan(underlay_mac, &vm_asks));
        assert_eq!(host1.recv(1).len(), 1, "the router answers the VM through the tunnel");

        for (n, sport) in [40001u16, 40002, 40003, 40004].into_iter().enumerate() {
            let out = udp_ports(MAC_VM, MAC_RB, "10.0.0.5", sport, "192.0.2.7", 53);
            let owner = FlowKey::from_frame(0, &out).unwrap().symmetric_hash() as usize % 2;
            // Decapsulated by the worker that does not own the connection.
            host1.send_to(1 - owner, &vxlan(underlay_mac, &out));
            let got = outside.recv(1);
            assert_eq!(got.len(), 1, "the VM's packet reaches the outside ({sport})");
            let h = valid(&got[0]);
            assert_eq!((h.eth_src, h.eth_dst), (MAC_UP, MAC_OUT));
            // The reply reaches the owner, which knows the connection.
            outside.send_to(owner, &udp_ports(MAC_OUT, MAC_UP, "192.0.2.7", 53, "10.0.0.5", sport));
            let got = host1.recv(1);
            assert_eq!(got.len(), 1, "the reply reaches the VM ({sport})");
            let inner = unwrap_vxlan(&got[0], underlay_mac);
            let L4::Udp { dst_port, .. } = valid(&inner).l4 else { panic!("not UDP") };
            assert_eq!(dst_port, sport);
            published(|| counter(&workers[1 - owner].handed_off) > 0);
            assert!(counter(&workers[1 - owner].handed_off) > 0, "{n}: handed off");
        }
        // Unsolicited from outside, on either worker: dropped.
        for queue in 0..2 {
            outside.send_to(queue, &udp_ports(MAC_OUT, MAC_UP, "192.0.2.7", 53, "10.0.0.5", 41000));
        }
        assert!(host1.recv_for(Duration::from_millis(300)).is_empty());
        let total = |f: fn(&PipelineCounters) -> u64| f(workers[0]) + f(workers[1]);
        // Nothing comes back to say the workers took the unsolicited packets in: their counters do.
        published(|| {
            total(|c| counter(&c.handed_off)) == 4
                && total(|c| counter(&c.handoffs_received)) == 4
                && total(|c| c.dropped(DropReason::RuleDrop)) == 2
        });
        assert_eq!(total(|c| counter(&c.handed_off)), 4);
        assert_eq!(total(|c| counter(&c.handoffs_received)), 4);
        assert_eq!(total(|c| counter(&c.handoff_full)), 0);
        assert_eq!(total(|c| c.dropped(DropReason::RuleDrop)), 2, "only the unsolicited packets");
    });
}

/// IPv4/UDP `src:sport -> dst:dport` between the given MACs.
fn udp_ports(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
) -> Vec<u8> {
    let mut f = udp(src_mac, dst_mac, src, dst, sport);
    let (s, d) = (ip(src), ip(dst));
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    u.set_dst_port(dport);
    u.fill_checksum(&PseudoHeader::V4 { src: s, dst: d });
    f
}
