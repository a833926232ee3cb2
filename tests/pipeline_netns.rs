//! The gateway pipeline between real Linux hosts: two network namespaces, each behind a veth
//! whose root-namespace end is a `net_af_packet` port bound to one port of a router. The hosts
//! resolve the router with ARP and the router resolves them; `ping` crosses the router.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{NetNs, Veth};
use midogw::flowtable::topology::{Snapshot, SnapshotBuilder, Uuid};
use midogw::flowtable::wire::EthernetAddress;
use midogw::{pipeline_plans, run_pipeline, Device, Eal, Mempool, PipelineConfig, Port, PortConfig, SnapshotExchange};

fn snapshot(dpdk_a: u16, dpdk_b: u16) -> Snapshot {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let pa = b.add_router_port(r, Uuid(10), EthernetAddress([2, 0, 0, 0, 1, 1]), &["10.201.1.1/24".parse().unwrap()]);
    let pb = b.add_router_port(r, Uuid(11), EthernetAddress([2, 0, 0, 0, 2, 1]), &["10.201.2.1/24".parse().unwrap()]);
    b.bind_local(pa, dpdk_a);
    b.bind_local(pb, dpdk_b);
    b.build().expect("valid topology")
}

/// Runs ping in `ns`; returns (probes answered, output) ([`NetNs::pings`]).
fn ping(ns: &NetNs, to: &str, count: u32) -> (usize, String) {
    ns.pings(to, count, &[])
}

#[test]
fn ping_crosses_the_router_between_namespaces() {
    let tag = format!("mgp{}", std::process::id());
    let ns_a = NetNs::new(&format!("{tag}a"));
    let ns_b = NetNs::new(&format!("{tag}b"));
    let veth_a = Veth::new(&ns_a, &format!("{tag}a"), "10.201.1.2/24");
    let veth_b = Veth::new(&ns_b, &format!("{tag}b"), "10.201.2.2/24");
    ns_a.exec(&["ip", "route", "add", "default", "via", "10.201.1.1"]);
    ns_b.exec(&["ip", "route", "add", "default", "via", "10.201.2.1"]);

    let eal = Eal::init(&common::test_eal_config("pnetns", 256)).expect("EAL");
    let pool = Mempool::new(&eal, "pnetns", 4095).expect("pool");
    let config = |name: &str| PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 };
    let open = |i: u32, veth: &Veth, name: &str| {
        let devargs = format!("net_af_packet{i},iface={}", veth.outer);
        Port::open(&eal, &pool, &Device::Vdev { devargs }, &config(name)).expect("port")
    };
    let ports = [open(0, &veth_a, "up0"), open(1, &veth_b, "up1")];
    let exchange = SnapshotExchange::new(snapshot(ports[0].id(), ports[1].id()), 1);
    let mut plans = pipeline_plans(&ports, 1).unwrap();
    let plan = plans.remove(0);
    // The emptied list goes now: its type borrows the ports, which are dropped before the end.
    drop(plans);
    let counters = plan.counters();
    let pipeline = PipelineConfig::default();
    let stop = AtomicBool::new(false);
    let (to_router, across, back) = eal
        .scope(|s| {
            s.launch(1, || run_pipeline(plan, &exchange, &pool, &pipeline, &stop)).unwrap();
            let to_router = ping(&ns_a, "10.201.1.1", 3);
            // The first echo may be lost while the router resolves B (no resolution queue yet).
            let across = ping(&ns_a, "10.201.2.2", 5);
            let back = ping(&ns_b, "10.201.1.2", 5);
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
            (to_router, across, back)
        })
        .expect("worker exits cleanly");

    assert_eq!(to_router.0, 3, "the router answers echo for its port address:\n{}", to_router.1);
    assert!(to_router.1.contains("ttl=64"), "{}", to_router.1);
    assert!(across.0 >= 4, "A reaches B through the router:\n{}", across.1);
    assert!(across.1.contains("ttl=63"), "one router hop:\n{}", across.1);
    assert_eq!(back.0, 5, "B reaches A, both neighbours known by now:\n{}", back.1);
    assert!(counters.cache_hits.load(Ordering::Relaxed) > 0, "echoes after the first hit the flow cache");
    assert_eq!(counters.tx_full_drops.load(Ordering::Relaxed), 0);
    drop(ports);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
