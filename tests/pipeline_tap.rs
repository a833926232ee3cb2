//! The gateway pipeline on a device that verifies IPv4 header checksums on receive, as an 82599
//! does: DPDK's `net_tap` offers `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM` (it checks in its own RX path
//! and flags the mbuf). The port enables it; the worker takes the device's word instead of
//! checking again, and drops what the device found wrong as malformed.
//!
//! Router R: port A 10.1.0.1/24 on the tap (frames written from the kernel side with an
//! `AF_PACKET` socket), port B 10.2.0.1/24 on a `net_ring` with host B (10.2.0.2) at its far end.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use common::ring::{
    arp, config, counter, ip, published, two_port_router, udp_frame, valid, vxlan_frame, Host, MAC_HA, MAC_HB, MAC_RA,
    MAC_RB,
};
use midogw::flowtable::sim::DropReason;
use midogw::flowtable::topology::{Encap, Snapshot, SnapshotBuilder, Underlay, Uuid};
use midogw::flowtable::wire::{ArpOperation, EthernetAddress, ParseError, L3};
use midogw::{
    pipeline_plans, run_pipeline, Device, Eal, Mempool, PipelineConfig, PipelineCounters, Port, Ring, SnapshotExchange,
};

/// IPv4/UDP from host A (10.1.0.2) to host B through the router's port A.
fn udp_to_b(sport: u16) -> Vec<u8> {
    udp_frame(MAC_HA, MAC_RA, "10.1.0.2", "10.2.0.2", sport, 64, 32)
}

/// The IPv4 frames `host` receives until `n` of them arrived ([`Host::recv_until`]), and all it
/// received: what the worker made of frames written into the tap, whenever its lcore got to them.
fn ipv4_frames(host: &mut Host<'_>, n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let is_ipv4 = |f: &Vec<u8>| f[12..14] == [0x08, 0x00];
    let got = host.recv_until(|got| got.iter().filter(|f| is_ipv4(f)).count() >= n);
    (got.iter().filter(|f| is_ipv4(f)).cloned().collect(), got)
}

/// Writes `frames` into the kernel side of tap interface `iface`, in order (one `AF_PACKET`
/// socket, so they reach the device as sent).
fn inject(iface: &str, frames: &[Vec<u8>]) {
    let hex: Vec<String> = frames.iter().map(|f| f.iter().map(|b| format!("{b:02x}")).collect()).collect();
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
                  s.bind((sys.argv[1], 0))\n\
                  for h in sys.argv[2:]:\n    s.send(bytes.fromhex(h))\n";
    let out = Command::new("python3").arg("-c").arg(script).arg(iface).args(&hex).output().expect("run python3");
    assert!(out.status.success(), "inject: {}", String::from_utf8_lossy(&out.stderr));
}

/// Brings up EAL, appliance port 0 on a `net_tap` interface named `iface` (frames written into
/// it with [`inject`]) and port 1 on a `net_ring` with a host at its far end, the topology
/// `snapshot(tap port id, ring port id)` and one pipeline worker; runs `body` with that host, the
/// tap port's MAC and the worker's counters; stops the worker and checks every mbuf came back.
fn with_tap_and_ring(
    tag: &str,
    iface: &str,
    snapshot: impl FnOnce(u16, u16) -> Snapshot,
    body: impl FnOnce(&mut Host<'_>, EthernetAddress, &PipelineCounters),
) {
    let eal = Eal::init(&common::test_eal_config(tag, 256)).expect("EAL");
    let pool = Mempool::new(&eal, &format!("{tag}pool"), 2047).expect("pool");
    let rings: Vec<Ring<'_>> = (0..2).map(|i| Ring::new(&eal, &format!("{tag}w{i}"), 1024).unwrap()).collect();
    let tap = Device::Vdev { devargs: format!("net_tap0,iface={iface}") };
    let appliance = [
        Port::open(&eal, &pool, &tap, &config("tap")).expect("tap port"),
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config("ring")).unwrap(),
    ];
    assert!(appliance[0].verifies_ipv4_checksums(), "net_tap offers the IPv4 checksum offload: the port enables it");
    assert!(!appliance[1].verifies_ipv4_checksums(), "net_ring does not");
    let tap_mac = EthernetAddress(appliance[0].mac());
    let host = Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("host")).unwrap();
    let exchange = SnapshotExchange::new(snapshot(appliance[0].id(), appliance[1].id()), 1);
    let (mut rx, mut tx) = host.take_queues().unwrap();
    let mut far = Host { pool: &pool, tx: tx.remove(0), rx: rx.remove(0) };
    let mut plans = pipeline_plans(&appliance, 1).unwrap();
    let plan = plans.remove(0);
    // The emptied list goes now: its type borrows the ports, which are dropped before the end.
    drop(plans);
    let counters = plan.counters();
    let stop = AtomicBool::new(false);
    let pipeline = PipelineConfig::default();
    eal.scope(|s| {
        s.launch(1, || run_pipeline(plan, &exchange, &pool, &pipeline, &stop)).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut far, tap_mac, &counters)));
        stop.store(true, Ordering::Relaxed);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    })
    .expect("worker exits cleanly");
    drop((far, rx, tx));
    drop((appliance, host));
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}

/// A name for the test's tap interface, unique to the process (at most 15 bytes).
fn tap_name(test: &str) -> String {
    format!("mgw{test}{}", std::process::id() % 100_000)
}

#[test]
fn the_device_verifies_ipv4_checksums_and_the_worker_takes_its_word() {
    let iface = tap_name("t");
    with_tap_and_ring("ptap", &iface, two_port_router, |hb, _, counters| {
        let good: Vec<Vec<u8>> = (0..4).map(|i| udp_to_b(5000 + i)).collect();
        let mut bad = udp_to_b(6000);
        // The header checksum's low byte, off by one: only the checksum says the header is wrong.
        bad[25] ^= 0x01;
        // B announces itself, so the router can forward at once.
        hb.send(&arp(ArpOperation::Request, MAC_HB, EthernetAddress::BROADCAST, "10.2.0.2", "10.2.0.1"));
        assert_eq!(hb.recv(1).len(), 1, "ARP reply");
        inject(&iface, &[good[0].clone(), bad, good[1].clone(), good[2].clone(), good[3].clone()]);
        let (udp, got) = ipv4_frames(hb, 4);
        assert_eq!(udp.len(), 4, "the four good frames crossed the router, the bad one did not: {got:02x?}");
        for (out, sent) in udp.iter().zip(&good) {
            let h = valid(out);
            let L3::Ipv4(ip4) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!((h.eth_src, h.eth_dst, ip4.ttl), (MAC_RB, MAC_HB, 63));
            assert_eq!(out[34..], sent[34..]);
        }
        published(|| {
            counter(&counters.rx_ipv4_checksum_offloaded) == 4
                && counters.parse_failed(ParseError::Ipv4BadChecksum) == 1
                && counters.dropped(DropReason::Malformed) == 1
        });
        assert_eq!(counter(&counters.rx_ipv4_checksum_offloaded), 4, "the device's word on each good frame");
        assert_eq!(counters.parse_failed(ParseError::Ipv4BadChecksum), 1, "the bad one, malformed");
        assert_eq!(counters.dropped(DropReason::Malformed), 1);
    });
}

const MAC_UP: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x03, 0x01]);
const MAC_OUT: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 7]);
const MAC_HOST1: EthernetAddress = EthernetAddress([0x02, 0x77, 0, 0, 0, 11]);
const MAC_VM: EthernetAddress = EthernetAddress([0x02, 0xcc, 0, 0, 0, 5]);
const KEY: u32 = 0x101;

/// The underlay on the tap: R's uplink (192.0.2.1/24) on the ring with the outside host
/// 192.0.2.7; R's `rb` (10.0.0.1/24) linked to a bridge whose port is bound on compute host 1
/// (192.168.7.11, VXLAN, key [`KEY`]), which the test plays through the tap.
fn underlay_snapshot(tap: u16, ring: u16) -> Snapshot {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(10), MAC_UP, &["192.0.2.1/24".parse().unwrap()]);
    let rb = b.add_router_port(r, Uuid(11), MAC_RB, &["10.0.0.1/24".parse().unwrap()]);
    let bridge = b.add_bridge(Uuid(20));
    let br = b.add_bridge_port(bridge, Uuid(21));
    let vm = b.add_bridge_port(bridge, Uuid(22));
    let host = b.add_host(Uuid(30), "192.168.7.11".parse().unwrap(), Encap::Vxlan);
    b.link(rb, br);
    b.bind_local(up, ring);
    b.bind_remote(vm, host, KEY);
    b.set_underlay(Underlay::new(tap, ip("192.168.7.1"), 24));
    b.build().expect("valid topology")
}

/// Compute host 1 wraps `inner` in VXLAN (VNI [`KEY`]) to the gateway's underlay address.
fn vxlan(underlay_mac: EthernetAddress, inner: &[u8]) -> Vec<u8> {
    vxlan_frame(MAC_HOST1, underlay_mac, "192.168.7.11", "192.168.7.1", KEY, inner)
}

/// On the underlay the device verifies the outer header: a VXLAN packet it found right is
/// decapsulated without checking that header again, one it found wrong is malformed; the inner
/// header, which the device does not read, is still checked in software.
#[test]
fn the_device_verifies_the_outer_header_of_tunnelled_packets() {
    let iface = tap_name("u");
    with_tap_and_ring("ptapu", &iface, underlay_snapshot, |outside, underlay_mac, counters| {
        outside.send(&arp(ArpOperation::Request, MAC_OUT, EthernetAddress::BROADCAST, "192.0.2.7", "192.0.2.1"));
        assert_eq!(outside.recv(1).len(), 1, "ARP reply: the router knows the outside host now");
        let inner: Vec<Vec<u8>> =
            (0..3u16).map(|i| udp_frame(MAC_VM, MAC_RB, "10.0.0.5", "192.0.2.7", 7000 + i, 64, 32)).collect();
        let good: Vec<Vec<u8>> = inner.iter().map(|f| vxlan(underlay_mac, f)).collect();
        let mut bad_outer = vxlan(underlay_mac, &inner[0]);
        bad_outer[25] ^= 0x01;
        let mut bad_inner = inner[1].clone();
        bad_inner[25] ^= 0x01;
        let bad_inner = vxlan(underlay_mac, &bad_inner);
        inject(&iface, &[good[0].clone(), bad_outer, good[1].clone(), bad_inner, good[2].clone()]);
        let (udp, got) = ipv4_frames(outside, 3);
        assert_eq!(udp.len(), 3, "the three good packets, decapsulated and routed: {got:02x?}");
        for (out, sent) in udp.iter().zip(&inner) {
            let h = valid(out);
            let L3::Ipv4(ip4) = h.l3 else { panic!("not IPv4: {h:?}") };
            assert_eq!((h.eth_src, h.eth_dst, ip4.ttl), (MAC_UP, MAC_OUT, 63));
            assert_eq!(out[34..], sent[34..]);
        }
        published(|| {
            counter(&counters.rx_ipv4_checksum_offloaded) == 4
                && counters.parse_failed(ParseError::Ipv4BadChecksum) == 2
                && counters.dropped(DropReason::Malformed) == 2
        });
        assert_eq!(counter(&counters.rx_ipv4_checksum_offloaded), 4, "the outer headers the device found right");
        assert_eq!(counters.parse_failed(ParseError::Ipv4BadChecksum), 2, "the bad outer and the bad inner header");
        assert_eq!(counters.dropped(DropReason::Malformed), 2);
    });
}
