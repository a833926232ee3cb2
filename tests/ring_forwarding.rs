//! Packets cross the appliance's cross-connect workers between two `net_ring` ports, with
//! contents, order and every counter checked, and every mbuf back in the pool afterwards.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{frame, send_and_collect};
use midogw::{cross_connect, run_worker, Eal, Mempool, Port, PortConfig, Ring};

fn config(name: &str) -> PortConfig {
    PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 }
}

#[test]
fn cross_connect_moves_packets_both_ways_with_contents_and_counters() {
    let eal = Eal::init(&common::test_eal_config("ring", 256)).expect("EAL");
    let pool = Mempool::new(&eal, "ringtest", 2047).expect("pool");
    let rings: Vec<Ring<'_>> = (0..4).map(|i| Ring::new(&eal, &format!("wire{i}"), 1024).unwrap()).collect();
    // wire0: host A -> appliance port 0, wire1: port 0 -> host A; wire2/3 likewise for port 1.
    let appliance = [
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config("up0")).unwrap(),
        Port::from_rings(&eal, &pool, &rings[2], &rings[3], &config("up1")).unwrap(),
    ];
    let host_a = Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("hostA")).unwrap();
    let host_b = Port::from_rings(&eal, &pool, &rings[3], &rings[2], &config("hostB")).unwrap();
    for port in appliance.iter().chain([&host_a, &host_b]) {
        port.check_lro_disabled().expect("LRO off on every port");
    }
    let (mut a_rx, mut a_tx) = host_a.take_queues().unwrap();
    let (mut b_rx, mut b_tx) = host_b.take_queues().unwrap();

    let (plans, links) = cross_connect(&appliance, 1).unwrap();
    assert_eq!(links.len(), 2, "one link per direction");
    let stop = AtomicBool::new(false);
    let forward: Vec<Vec<u8>> = (0..500).map(|i| frame(i, 60 + (i as usize % 1400))).collect();
    let backward: Vec<Vec<u8>> = (1000..1300).map(|i| frame(i, 1514)).collect();
    let (got_forward, got_backward) = eal
        .scope(|s| {
            for plan in plans {
                s.launch(1, || run_worker(plan, &stop)).unwrap();
            }
            let f = send_and_collect(&pool, &mut a_tx[0], &mut b_rx[0], &forward);
            let b = send_and_collect(&pool, &mut b_tx[0], &mut a_rx[0], &backward);
            stop.store(true, Ordering::Relaxed);
            (f, b)
        })
        .expect("worker exits cleanly");

    common::assert_same_packets(&got_forward, &forward, "frames A->B, intact and in order");
    common::assert_same_packets(&got_backward, &backward, "frames B->A, intact and in order");
    // net_ring counts packets, not bytes (the af_packet test checks bytes).
    let (up0, up1) = (appliance[0].stats(), appliance[1].stats());
    assert_eq!((up0.rx_packets, up1.tx_packets), (500, 500));
    assert_eq!((up1.rx_packets, up0.tx_packets), (300, 300));
    assert_eq!((up0.rx_missed, up0.rx_errors, up1.tx_errors), (0, 0, 0));
    for (id, c) in &links {
        let expected = if id.from_port == appliance[0].id() { 500 } else { 300 };
        assert_eq!(c.rx_packets.load(Ordering::Relaxed), expected, "{id:?}");
        assert_eq!(c.tx_packets.load(Ordering::Relaxed), expected, "{id:?}");
        assert_eq!(c.tx_full_drops.load(Ordering::Relaxed), 0, "{id:?}");
    }
    let xstats = appliance[0].xstats();
    assert!(xstats.iter().any(|(name, v)| name == "rx_good_packets" && *v == 500), "{xstats:?}");

    drop((a_rx, a_tx, b_rx, b_tx));
    drop((appliance, host_a, host_b));
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}

#[test]
fn second_eal_init_in_one_process_is_refused() {
    let eal = Eal::init(&common::test_eal_config("twice", 128)).expect("EAL");
    let err = Eal::init(&common::test_eal_config("twice2", 128)).unwrap_err();
    assert!(err.to_string().contains("already initialised"), "{err}");
    drop(eal);
}

#[test]
fn cross_connect_refuses_ports_without_a_tx_queue_per_worker() {
    let eal = Eal::init(&common::test_eal_config("txq", 256)).expect("EAL");
    let pool = Mempool::new(&eal, "txqtest", 2047).expect("pool");
    let rings: Vec<Ring<'_>> = (0..2).map(|i| Ring::new(&eal, &format!("txq{i}"), 1024).unwrap()).collect();
    let ports = [
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config("up0")).unwrap(),
        Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("up1")).unwrap(),
    ];
    let err = cross_connect(&ports, 2).err().expect("one TX queue cannot serve two workers");
    assert!(err.to_string().contains("1 TX queues for 2 workers"), "{err}");
    let err = cross_connect(&ports, 0).err().expect("no workers");
    assert!(err.to_string().contains("at least one worker"), "{err}");
}

#[test]
fn tsc_clock_counts_nanoseconds() {
    let _eal = Eal::init(&common::test_eal_config("tsc", 128)).expect("EAL");
    // Each TSC reading between two OS clock readings: the thread may be preempted between two
    // readings (a loaded machine), which widens the bracket instead of skewing the comparison.
    let before_start = std::time::Instant::now();
    let clock = midogw::TscClock::start();
    let after_start = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before_read = std::time::Instant::now();
    let tsc_ns = clock.now_ns();
    let after_read = std::time::Instant::now();
    let (shortest, longest) =
        ((before_read - after_start).as_nanos() as u64, (after_read - before_start).as_nanos() as u64);
    // The TSC clock agrees with the OS clock to within EAL's calibration error.
    assert!(
        tsc_ns > shortest - shortest / 4 && tsc_ns < longest + longest / 4,
        "tsc {tsc_ns} ns vs wall between {shortest} and {longest} ns"
    );
}
