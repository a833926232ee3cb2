//! The tunnel scenarios end to end, in one process: the scenario's topology file (port 1 is the
//! gateway's underlay, side B's hosts are VMs on a compute host behind VXLAN or GRE) and traffic
//! through the real pipeline loop (`midogw::run_pipeline`) on `net_ring` ports, with this test
//! playing the generator as `midogw-perf gen` does: the hosts on the uplink, and the compute host
//! on the underlay (its underlay ARP, side B's frames inside the tunnel, the router's ARP requests
//! answered through the tunnel). Whatever direction the scenario benchmarks, both directions are
//! sent here, and every frame that comes back is checked: encapsulated ones field by field (outer
//! Ethernet, IPv4 with its checksum, VXLAN or GRE with the tunnel key, the outer UDP source port
//! fixed per flow), and the inner or plain frame routed (TTL minus one, MACs rewritten, checksum
//! valid, the rest untouched). Needs root (DPDK runtime directory); no hugepages.

mod common;

use common::{ones_complement, send, RuntimeDir};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use midogw::{
    pipeline_plans, run_pipeline, Burst, Eal, EalConfig, Mempool, PipelineConfig, Port, PortConfig, Ring, RxQueue,
    SnapshotExchange, TxQueue,
};
use perf::packet::{arp_reply, tunnel_arp_reply, Stamp, Tunnel};
use perf::topology::{GatewayTopology, COMPUTE_HOST_MAC, DPDK_PORT_NAMES};
use perf::traffic::host;
use perf::{Direction, Encap, Scenarios, Trace};

#[derive(Debug)]
struct Outcome {
    hits: u64,
    misses: u64,
    underlay_arp_answered: u64,
    tunnel_arp_answered: u64,
    checked: [usize; 2],
    outer_ports: usize,
}

/// What the test checks received frames against.
struct Expect<'a> {
    traces: &'a [Trace; 2],
    /// The tunnel as the compute host sends (the gateway sends its reverse).
    tunnel: Tunnel,
    router_macs: [[u8; 6]; 2],
    gateway_underlay_mac: [u8; 6],
}

/// Sends `per_direction` packets of `scenario`'s trace each way, `passes` times, and checks what
/// comes back.
fn run_tunnelled(scenario: &str, per_direction: usize, passes: usize, tag: &str) -> Outcome {
    let table = Scenarios::builtin();
    let sc = table.get(scenario).unwrap().clone();
    let macs = sc.router_macs().unwrap().expect("a gateway scenario has router MACs");
    let topology = GatewayTopology::load(&sc.topology_path().unwrap()).unwrap();

    let prefix = format!("perf-tunring-{tag}-{}", std::process::id());
    let _cleanup = RuntimeDir(prefix.clone());
    let eal = Eal::init(&EalConfig {
        main_core: 0,
        worker_cores: vec![1],
        file_prefix: prefix,
        pci_allow: vec![],
        extra_args: vec!["--no-huge".into(), "-m".into(), "256".into(), "--no-shconf".into()],
    })
    .unwrap();
    let pool = Mempool::with_data_room(&eal, "tunring", 16383, 2048 + 128).unwrap();
    let rings: Vec<Ring<'_>> = (0..4).map(|i| Ring::new(&eal, &format!("tunwire{i}"), 16384).unwrap()).collect();
    let config = |name: &str| PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 };
    let appliance = [
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config(DPDK_PORT_NAMES[0])).unwrap(),
        Port::from_rings(&eal, &pool, &rings[2], &rings[3], &config(DPDK_PORT_NAMES[1])).unwrap(),
    ];
    let generator = [
        Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("hostA")).unwrap(),
        Port::from_rings(&eal, &pool, &rings[3], &rings[2], &config("compute")).unwrap(),
    ];
    let gateway_underlay_mac = appliance[1].mac();
    let tunnel = sc.tunnel(gateway_underlay_mac).unwrap().expect("a tunnel scenario");
    let traces = [
        Trace::build_to(&sc.traffic, Direction::Forward, per_direction, Some(macs[0])).unwrap(),
        Trace::build_tunnelled(sc.reverse_traffic(), Direction::Reverse, per_direction, Some(macs[1]), Some(tunnel))
            .unwrap(),
    ];
    let hosts = [host(Direction::Forward).0, host(Direction::Reverse).0];
    let expect = Expect { traces: &traces, tunnel, router_macs: macs, gateway_underlay_mac };

    let snapshot =
        topology.snapshot(&[(DPDK_PORT_NAMES[0], appliance[0].id()), (DPDK_PORT_NAMES[1], appliance[1].id())]).unwrap();
    assert!(snapshot.underlay().is_some(), "the topology's [underlay] is on port 1");
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
    // Stops the worker when the body panics too, so a failed check fails the test instead of
    // leaving the scope waiting for the worker.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    let mut underlay_arp_answered = 0u64;
    let mut tunnel_arp_answered = 0u64;
    let mut checked = [0usize; 2];
    let mut outer_ports: HashMap<[u8; 6], u16> = HashMap::new();
    eal.scope(|s| {
        for plan in plans {
            let (exchange, pool, pipeline, stop) = (&exchange, &pool, &pipeline, &stop);
            s.launch(1, move || run_pipeline(plan, exchange, pool, pipeline, stop)).unwrap();
        }
        let _stop = StopOnDrop(&stop);
        // What the generator does before its warm-up: probe until both directions are routed,
        // answering ARP on the way (plain on the uplink; on the underlay the gateway's ARP for
        // the compute host, and the router's ARP for side B's host inside the tunnel).
        let mut routed = [false; 2];
        let started = Instant::now();
        let mut inbound = Burst::new();
        while routed != [true, true] {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "probes not routed ({routed:?}); ARP answered: underlay {underlay_arp_answered}, tunnel {tunnel_arp_answered}"
            );
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
                    let reply = if side == 0 {
                        arp_reply(frame, hosts[0]).map(|r| r.to_vec())
                    } else if let Some(r) = arp_reply(frame, COMPUTE_HOST_MAC) {
                        assert_eq!(&frame[6..12], &gateway_underlay_mac, "underlay ARP from the underlay port");
                        assert_eq!(&frame[28..32], &tunnel.dst_ip.octets(), "asked by the gateway's underlay address");
                        assert_eq!(&frame[38..42], &tunnel.src_ip.octets(), "for the compute host");
                        underlay_arp_answered += 1;
                        Some(r.to_vec())
                    } else if let Some(r) = tunnel_arp_reply(frame, &tunnel, hosts[1]) {
                        tunnel_arp_answered += 1;
                        Some(r)
                    } else {
                        None
                    };
                    match reply {
                        Some(r) => {
                            let mut m = pool.alloc().unwrap();
                            m.append(r.len() as u16).unwrap().copy_from_slice(&r);
                            let mut b = Burst::new();
                            b.push(m).ok().unwrap();
                            assert_eq!(txs[side].tx(&mut b), 1);
                        }
                        None if Stamp::read(frame).is_some() => routed[1 - side] = true,
                        None => panic!("side {side}: neither ARP nor a trace frame: {frame:02x?}"),
                    }
                }
                inbound.clear();
            }
        }
        // The trace, both directions, `passes` times; everything must come back.
        for _ in 0..passes {
            for k in 0..per_direction {
                for side in 0..2 {
                    send(&pool, &traces[side], side, k, &mut txs[side]);
                }
                if k % 1024 == 1023 {
                    receive_and_check(&mut rxs, &expect, &mut checked, &mut outer_ports, Duration::ZERO);
                }
            }
        }
        let total = per_direction * passes;
        let deadline = Instant::now() + Duration::from_secs(10);
        while checked != [total, total] && Instant::now() < deadline {
            receive_and_check(&mut rxs, &expect, &mut checked, &mut outer_ports, Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(checked, [total, total], "every frame came back routed, each way");
    })
    .unwrap();
    Outcome {
        hits: counters.cache_hits.load(Ordering::Relaxed),
        misses: counters.cache_misses.load(Ordering::Relaxed),
        underlay_arp_answered,
        tunnel_arp_answered,
        checked,
        outer_ports: outer_ports.values().collect::<std::collections::HashSet<_>>().len(),
    }
}

/// Checks the outer headers of a frame the gateway sent to the compute host; returns the inner
/// frame and the outer UDP source port (VXLAN).
fn unwrap_outer<'f>(got: &'f [u8], e: &Expect<'_>) -> (&'f [u8], Option<u16>) {
    let t = &e.tunnel;
    assert_eq!(&got[0..6], &COMPUTE_HOST_MAC, "outer destination: the compute host (learned by ARP)");
    assert_eq!(&got[6..12], &e.gateway_underlay_mac, "outer source: the gateway's underlay port");
    assert_eq!(&got[12..14], &[0x08, 0x00]);
    let ip = &got[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), got.len() - 14, "outer total length");
    assert_eq!(&ip[6..8], &[0x40, 0], "DF");
    assert_eq!(ip[8], 255, "outer TTL (MidoNet's)");
    assert_eq!(ones_complement(ip), 0xffff, "outer IPv4 checksum");
    assert_eq!(&ip[12..16], &t.dst_ip.octets(), "from the gateway's underlay address");
    assert_eq!(&ip[16..20], &t.src_ip.octets(), "to the compute host");
    let sport = match t.encap {
        Encap::Vxlan => {
            assert_eq!(ip[9], 17);
            let udp = &got[34..42];
            let sport = u16::from_be_bytes([udp[0], udp[1]]);
            assert!(sport >= 49152, "outer source port in the dynamic range: {sport}");
            assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), t.dst_port);
            assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), got.len() - 34, "UDP length");
            assert_eq!(got[42], 0x08, "VXLAN I flag");
            assert_eq!(&got[46..49], &t.key.to_be_bytes()[1..], "VNI = tunnel key");
            Some(sport)
        }
        Encap::Gre => {
            assert_eq!(ip[9], 47);
            assert_eq!(&got[34..38], &[0x20, 0x00, 0x65, 0x58], "GRE: key bit, protocol 0x6558");
            assert_eq!(&got[38..42], &t.key.to_be_bytes(), "GRE key = tunnel key");
            None
        }
    };
    let inner = t.decapsulate(got).expect("the compute host's tunnel");
    (inner, sport)
}

/// Receives what is waiting on both generator ports and checks each frame against the one sent.
fn receive_and_check(
    rxs: &mut [RxQueue<'_>],
    e: &Expect<'_>,
    checked: &mut [usize; 2],
    outer_ports: &mut HashMap<[u8; 6], u16>,
    wait: Duration,
) {
    std::thread::sleep(wait);
    let mut inbound = Burst::new();
    let hosts = [host(Direction::Forward).0, host(Direction::Reverse).0];
    for side in 0..2 {
        loop {
            let n = rxs[side].rx(&mut inbound);
            if n == 0 {
                break;
            }
            for i in 0..n {
                let raw = inbound.data(i);
                let stamp = Stamp::read(raw).expect("only trace frames arrive once next hops are known");
                let from = stamp.tx_ns as usize;
                assert_eq!(from, 1 - side, "frames cross the router");
                let k = stamp.seq as usize;
                let mut sent = vec![0u8; e.traces[from].len_of(k)];
                e.traces[from].emit(k, stamp, &mut sent);
                // Port 1 receives the forward stream encapsulated; port 0 the reverse one, plain
                // (it was sent encapsulated).
                let (got, sent) = if side == 1 {
                    let (inner, sport) = unwrap_outer(raw, e);
                    if let Some(sport) = sport {
                        // The inner flow: source address and port (the rest is fixed per stream).
                        let mut flow = [0u8; 6];
                        flow[..4].copy_from_slice(&inner[26..30]);
                        flow[4..].copy_from_slice(&inner[34..36]);
                        let first = *outer_ports.entry(flow).or_insert(sport);
                        assert_eq!(sport, first, "one outer source port per inner flow");
                    }
                    (inner, &sent[..])
                } else {
                    let inner = e.tunnel.reversed().decapsulate(&sent).expect("sent inside the tunnel");
                    (raw, inner)
                };
                assert_eq!(got.len(), sent.len(), "inner length unchanged");
                assert_eq!(&got[0..6], &hosts[side], "destination: the receiving side's host (learned by ARP)");
                assert_eq!(&got[6..12], &e.router_macs[side], "source: the egress router port");
                assert_eq!(&sent[0..6], &e.router_macs[from], "sent to the ingress router port");
                assert_eq!(got[14 + 8], sent[14 + 8] - 1, "TTL decremented by the router");
                assert_eq!(ones_complement(&got[14..34]), 0xffff, "IPv4 header checksum valid");
                assert_eq!(&got[12..22], &sent[12..22], "ethertype, version .. fragment fields untouched");
                assert_eq!(got[23], sent[23], "protocol untouched");
                assert_eq!(&got[26..], &sent[26..], "addresses, transport and payload untouched");
                checked[side] += 1;
            }
            inbound.clear();
        }
    }
}

fn check(out: &Outcome, per_direction: usize, passes: usize) {
    assert_eq!(out.checked, [per_direction * passes; 2]);
    assert!(out.underlay_arp_answered >= 1, "the gateway asked for the compute host: {out:?}");
    assert!(out.tunnel_arp_answered >= 1, "the router asked for side B's host through the tunnel: {out:?}");
    // 1024 flows each way: at most 2048 misses (plus the probes'); the second pass is all hits.
    assert!(out.misses <= 2048 + 8, "{out:?}");
    assert!(out.hits >= (2 * per_direction * passes - 2048) as u64, "{out:?}");
}

// One EAL per process: one run per test.

#[test]
fn vxlan_encap_scenario_traffic_is_routed_both_ways_through_the_tunnel() {
    let out = run_tunnelled("gateway-vxlan-encap", 2048, 2, "vx");
    check(&out, 2048, 2);
    assert!(out.outer_ports > 100, "outer UDP source ports spread over the flows: {}", out.outer_ports);
}

#[test]
fn vxlan_decap_scenario_traffic_is_routed_both_ways_through_the_tunnel() {
    let out = run_tunnelled("gateway-vxlan-decap", 2048, 2, "vxd");
    check(&out, 2048, 2);
}

#[test]
fn gre_encap_scenario_traffic_is_routed_both_ways_through_the_tunnel() {
    let out = run_tunnelled("gateway-gre-encap", 2048, 2, "gre");
    check(&out, 2048, 2);
    assert_eq!(out.outer_ports, 0, "GRE has no outer ports");
}

/// The callgrind harness (gratuitous ARP on the uplink, on the underlay and inside the tunnel,
/// then the trace, one way) forwards every packet.
fn cg_trace(name: &str, tag: &str) {
    let table = Scenarios::builtin();
    let prefix = format!("perf-tuncg{tag}-{}", std::process::id());
    let _cleanup = RuntimeDir(prefix.clone());
    assert_eq!(perf::callgrind::trace_run(table.get(name).unwrap(), 2048, 2, &prefix).unwrap(), 4096, "{name}");
}

#[test]
fn cg_trace_harness_runs_vxlan_encap() {
    cg_trace("gateway-vxlan-encap", "ve");
}

#[test]
fn cg_trace_harness_runs_vxlan_decap() {
    cg_trace("gateway-vxlan-decap", "vd");
}

#[test]
fn cg_trace_harness_runs_gre_encap() {
    cg_trace("gateway-gre-encap", "ge");
}
