//! The gateway scenarios end to end, in one process: the scenario's topology file and traffic
//! through the real pipeline loop (`midogw::run_pipeline`) on `net_ring` ports, with this test
//! playing the generator the way `midogw-perf gen` does: probe, answer the router's ARP requests
//! (`perf::packet::arp_reply`), then send the trace and check every frame that comes back was
//! routed: TTL decremented once per router, MACs rewritten, IPv4 checksum valid, the rest of the
//! frame untouched. Needs root (DPDK runtime directory); no hugepages.

mod common;

use common::{ones_complement, send, RuntimeDir};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use midogw::{
    pipeline_plans, run_pipeline, Burst, Eal, EalConfig, Mempool, PipelineConfig, Port, PortConfig, Ring, RxQueue,
    SnapshotExchange, TxQueue,
};
use perf::packet::{arp_reply, Stamp};
use perf::topology::{GatewayTopology, DPDK_PORT_NAMES};
use perf::traffic::host;
use perf::{Direction, Scenarios, Trace};

struct Outcome {
    hits: u64,
    misses: u64,
    arp_answered: u64,
    checked: usize,
}

/// Sends `per_direction` packets of `scenario`'s trace each way, `passes` times, and checks what
/// comes back crossed `routers` routers.
fn run_routed(scenario: &str, per_direction: usize, passes: usize, routers: u8) -> Outcome {
    let table = Scenarios::builtin();
    let sc = table.get(scenario).unwrap().clone();
    let macs = sc.router_macs().unwrap().expect("a gateway scenario has router MACs");
    let topology = GatewayTopology::load(&sc.topology_path().unwrap()).unwrap();
    let traces = [
        Trace::build_to(&sc.traffic, Direction::Forward, per_direction, Some(macs[0])).unwrap(),
        Trace::build_to(sc.reverse_traffic(), Direction::Reverse, per_direction, Some(macs[1])).unwrap(),
    ];
    let hosts = [host(Direction::Forward).0, host(Direction::Reverse).0];

    let prefix = format!("perf-gwring-{}", std::process::id());
    let _cleanup = RuntimeDir(prefix.clone());
    let eal = Eal::init(&EalConfig {
        main_core: 0,
        worker_cores: vec![1],
        file_prefix: prefix,
        pci_allow: vec![],
        extra_args: vec!["--no-huge".into(), "-m".into(), "256".into(), "--no-shconf".into()],
    })
    .unwrap();
    let pool = Mempool::with_data_room(&eal, "gwring", 16383, 2048 + 128).unwrap();
    let rings: Vec<Ring<'_>> = (0..4).map(|i| Ring::new(&eal, &format!("gwwire{i}"), 16384).unwrap()).collect();
    let config = |name: &str| PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 };
    let appliance = [
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config(DPDK_PORT_NAMES[0])).unwrap(),
        Port::from_rings(&eal, &pool, &rings[2], &rings[3], &config(DPDK_PORT_NAMES[1])).unwrap(),
    ];
    let generator = [
        Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("hostA")).unwrap(),
        Port::from_rings(&eal, &pool, &rings[3], &rings[2], &config("hostB")).unwrap(),
    ];
    let snapshot =
        topology.snapshot(&[(DPDK_PORT_NAMES[0], appliance[0].id()), (DPDK_PORT_NAMES[1], appliance[1].id())]).unwrap();
    let exchange = SnapshotExchange::new(snapshot, 1);
    let pipeline = PipelineConfig::default();
    let plans = pipeline_plans(&appliance, 1).unwrap();
    let counters = plans[0].counters();
    let (mut rxs, mut txs): (Vec<RxQueue<'_>>, Vec<TxQueue<'_>>) = generator
        .iter()
        .map(|p| {
            let (mut rx, mut tx) = p.take_queues().unwrap();
            (rx.remove(0), tx.remove(0))
        })
        .unzip();
    let stop = AtomicBool::new(false);

    let mut arp_answered = 0u64;
    let mut checked = 0usize;
    eal.scope(|s| {
        for plan in plans {
            let (exchange, pool, pipeline, stop) = (&exchange, &pool, &pipeline, &stop);
            s.launch(1, move || run_pipeline(plan, exchange, pool, pipeline, stop)).unwrap();
        }
        // What the generator does before its warm-up: probe until both directions are routed,
        // answering ARP on the way.
        let mut routed = [false; 2];
        let started = Instant::now();
        let mut inbound = Burst::new();
        while routed != [true, true] {
            assert!(started.elapsed() < Duration::from_secs(10), "probes not routed; ARP answered {arp_answered}");
            for side in 0..2 {
                if !routed[side] {
                    send(&pool, &traces[side], side, 0, &mut txs[side]);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
            for side in 0..2 {
                let n = rxs[side].rx(&mut inbound);
                for i in 0..n {
                    let frame = inbound.data(i);
                    if let Some(reply) = arp_reply(frame, hosts[side]) {
                        arp_answered += 1;
                        let mut m = pool.alloc().unwrap();
                        m.append(reply.len() as u16).unwrap().copy_from_slice(&reply);
                        let mut b = Burst::new();
                        b.push(m).ok().unwrap();
                        assert_eq!(txs[side].tx(&mut b), 1);
                    } else if Stamp::read(frame).is_some() {
                        routed[1 - side] = true;
                    }
                }
                inbound.clear();
            }
        }
        // The trace, both directions, `passes` times; everything must come back routed.
        let mut expected = [0usize; 2];
        for _ in 0..passes {
            for k in 0..per_direction {
                for side in 0..2 {
                    send(&pool, &traces[side], side, k, &mut txs[side]);
                }
                expected[0] += 1;
                expected[1] += 1;
                // Keep the rings from filling: drain and check as we go.
                if k % 1024 == 1023 {
                    checked += receive_and_check(&mut rxs, &traces, &hosts, &macs, routers, Duration::ZERO);
                }
            }
        }
        let total = 2 * per_direction * passes;
        let deadline = Instant::now() + Duration::from_secs(10);
        while checked < total && Instant::now() < deadline {
            checked += receive_and_check(&mut rxs, &traces, &hosts, &macs, routers, Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(checked, total, "every frame came back routed");
    })
    .unwrap();
    Outcome {
        hits: counters.cache_hits.load(Ordering::Relaxed),
        misses: counters.cache_misses.load(Ordering::Relaxed),
        arp_answered,
        checked,
    }
}

/// Receives what is waiting on both generator ports and checks each frame against the one sent;
/// returns how many were checked.
fn receive_and_check(
    rxs: &mut [RxQueue<'_>],
    traces: &[Trace; 2],
    hosts: &[[u8; 6]; 2],
    router_macs: &[[u8; 6]; 2],
    routers: u8,
    wait: Duration,
) -> usize {
    std::thread::sleep(wait);
    let mut inbound = Burst::new();
    let mut checked = 0;
    for side in 0..2 {
        loop {
            let n = rxs[side].rx(&mut inbound);
            if n == 0 {
                break;
            }
            for i in 0..n {
                let got = inbound.data(i);
                let stamp = Stamp::read(got).expect("only routed trace frames arrive once next hops are known");
                // Port `side` receives the other side's stream; tx_ns carries the sender's side.
                let from = stamp.tx_ns as usize;
                assert_eq!(from, 1 - side, "frames cross the router");
                let k = stamp.seq as usize;
                let mut sent = vec![0u8; traces[from].len_of(k)];
                traces[from].emit(k, stamp, &mut sent);
                assert_eq!(got.len(), sent.len(), "length unchanged");
                assert_eq!(&got[0..6], &hosts[side], "destination: the receiving side's host (learned by ARP)");
                assert_eq!(&got[6..12], &router_macs[side], "source: the egress router port");
                assert_eq!(&sent[0..6], &router_macs[from], "sent to the ingress router port");
                assert_eq!(got[14 + 8], sent[14 + 8] - routers, "TTL decremented once per router");
                assert_eq!(ones_complement(&got[14..34]), 0xffff, "IPv4 header checksum valid");
                assert_eq!(&got[12..22], &sent[12..22], "ethertype, version .. fragment fields untouched");
                assert_eq!(got[23], sent[23], "protocol untouched");
                assert_eq!(&got[26..], &sent[26..], "addresses, transport and payload untouched");
                checked += 1;
            }
            inbound.clear();
        }
    }
    checked
}

#[test]
fn gateway_hit_traffic_is_routed_through_one_router_and_hits_the_flow_cache() {
    let out = run_routed("gateway-hit-64", 2048, 2, 1);
    assert_eq!(out.checked, 2 * 2048 * 2);
    assert!(out.arp_answered >= 2, "the router asked for both hosts: {}", out.arp_answered);
    // 1024 flows each way: at most 2048 misses (plus the probes'); the second pass is all hits.
    assert!(out.misses <= 2048 + 4, "misses {}", out.misses);
    assert!(out.hits >= 2 * 2048, "hits {}", out.hits);
}

#[test]
fn gateway_flow_setup_traffic_crosses_two_routers_as_new_flows() {
    let out = run_routed("gateway-flow-setup", 4096, 1, 2);
    assert_eq!(out.checked, 2 * 4096);
    assert!(out.arp_answered >= 2, "{}", out.arp_answered);
    // Every frame a new 5-tuple: only the two probe flows (trace packet 0 each way) repeat, once
    // per probe resent while the router resolves its next hops (the resolution queue delivers the
    // first probe, so a resent one can hit).
    assert!(out.misses >= 2 * 4096, "misses {}", out.misses);
    assert!(out.hits <= 8, "hits {}", out.hits);
}

#[test]
fn cg_trace_harness_runs_both_gateway_topologies() {
    // The callgrind harness (gratuitous ARP first, then the trace) forwards every packet.
    let table = Scenarios::builtin();
    let prefix = format!("perf-gwcg-{}", std::process::id());
    assert_eq!(perf::callgrind::trace_run(table.get("gateway-hit-imix").unwrap(), 2048, 2, &prefix).unwrap(), 4096);
}
