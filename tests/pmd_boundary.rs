//! The DPDK boundary's safe API under misuse and error paths: whatever safe code does with pools,
//! rings, ports, lcores and EAL arguments, it gets an error or a working object, never memory
//! corruption, a crash or a device it can no longer open. Real EAL, `net_ring` and `net_null`.

mod common;

use std::collections::HashSet;

use midogw::{Burst, Device, Eal, Error, Mempool, Port, PortConfig, Ring};

fn config(name: &str, mtu: u16) -> PortConfig {
    PortConfig { name: name.into(), mtu, rx_queues: 1, tx_queues: 1 }
}

/// EAL arguments are refused with a clear error when one holds a NUL byte; that refusal must not
/// leave the process believing EAL is running (which turns the corrected retry into "already
/// initialised", and there is no EAL to clean up either).
#[test]
fn an_eal_argument_with_a_nul_byte_is_refused_and_eal_can_still_start() {
    let mut bad = common::test_eal_config("nularg", 64);
    bad.extra_args.push("--log-level\0=8".into());
    match Eal::init(&bad) {
        Err(Error::InvalidName { what: "EAL argument", .. }) => {}
        other => panic!("expected the NUL byte to be refused, got {other:?}"),
    }
    let eal = Eal::init(&common::test_eal_config("nularg", 64)).expect("EAL starts once the arguments are right");
    drop(eal);
}

/// `Scope::launch` is a safe function taking any `u32`: an lcore EAL does not run as a worker (out
/// of DPDK's range, the main lcore, one not in `-l`) must be refused with an error. DPDK's
/// `rte_eal_remote_launch` indexes `lcore_config[lcore]` without a bounds check and writes to the
/// lcore's pipes (fd 0 for lcores without a thread).
#[test]
fn launching_on_an_lcore_that_is_not_an_eal_worker_is_an_error() {
    let eal = Eal::init(&common::test_eal_config("launch", 64)).expect("EAL");
    let main = eal.main_core();
    eal.scope(|s| {
        for lcore in [u32::MAX, 1 << 20, 128, main, 63] {
            match s.launch(lcore, || 0) {
                Err(Error::Launch { lcore: l, .. }) => assert_eq!(l, lcore),
                other => panic!("launch on lcore {lcore}: expected an error, got {other:?}"),
            }
        }
        // The real worker still starts.
        s.launch(1, || 0).expect("lcore 1 is EAL's worker");
    })
    .expect("the worker returns 0");
}

/// Mbufs that sit in a ring when their pool is dropped (a `net_ring` port sent them, the ring
/// outlives the pool: nothing in the types prevents it) are freed into that pool when the ring
/// is dropped. With the pool already given back to DPDK, that writes into freed memory: here
/// the freed memory is the next pool's, which then hands the same mbuf out twice.
#[test]
fn mbufs_left_in_a_ring_never_reach_a_freed_pool() {
    let eal = Eal::init(&common::test_eal_config("ringpool", 128)).expect("EAL");
    let wire = Ring::new(&eal, "auditwire", 64).unwrap();
    let back = Ring::new(&eal, "auditback", 64).unwrap();
    const MBUFS: u32 = 255;
    const ROOM: u16 = 2048 + 128;
    {
        let pool = Mempool::with_data_room(&eal, "auditp1", MBUFS, ROOM).unwrap();
        let port = Port::from_rings(&eal, &pool, &back, &wire, &config("auditr", 1500)).unwrap();
        let (_rx, mut tx) = port.take_queues().unwrap();
        let mut b = Burst::new();
        for _ in 0..16 {
            b.push(pool.alloc().expect("mbuf")).unwrap();
        }
        assert_eq!(tx[0].tx(&mut b), 16);
        assert_eq!(wire.count(), 16, "16 mbufs of the pool wait in the ring");
    }
    // The port is closed and its pool dropped; the ring still holds 16 of the pool's mbufs.
    let pool2 = Mempool::with_data_room(&eal, "auditp2", MBUFS, ROOM).unwrap();
    drop(wire);
    let mut held = Vec::new();
    while let Some(m) = pool2.alloc() {
        held.push(m);
        if held.len() > 2 * MBUFS as usize {
            break;
        }
    }
    let distinct: HashSet<usize> = held.iter().map(|m| m.data().as_ptr() as usize).collect();
    assert_eq!(
        (held.len(), distinct.len()),
        (MBUFS as usize, MBUFS as usize),
        "a fresh pool hands out each of its mbufs once (two live Mbufs on one buffer alias it)"
    );
    drop(held);
    assert_eq!(pool2.in_use(), 0);
    drop(back);
}

/// A worker that panics while it goes through a burst (`Burst::drain`, as both worker loops do) is
/// reported, and the mbufs it had not reached yet go back to the pool: a panic costs no mbufs.
#[test]
fn a_panic_halfway_through_a_burst_returns_the_rest_to_the_pool() {
    let eal = Eal::init(&common::test_eal_config("drainpanic", 64)).expect("EAL");
    let pool = Mempool::with_data_room(&eal, "auditdrain", 255, 2048 + 128).unwrap();
    let mut burst = Burst::new();
    for _ in 0..8 {
        burst.push(pool.alloc().expect("mbuf")).unwrap();
    }
    let mut seen = 0;
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        burst.drain(|m| {
            seen += 1;
            drop(m);
            if seen == 3 {
                panic!("a bug in the packet path");
            }
        })
    }));
    assert!(panicked.is_err());
    assert!(burst.is_empty());
    drop(burst);
    assert_eq!(pool.in_use(), 0, "the five mbufs the panic skipped are back in the pool");
}

/// A virtual device the port refuses before configuring it (here: MTU 9000 does not fit the
/// pool's mbufs) must be removed again, so that the same port opens once the operator (or the
/// caller) fixes the problem; and a port that was opened and closed opens again.
#[test]
fn a_virtual_device_is_removed_when_its_port_fails_or_closes() {
    let eal = Eal::init(&common::test_eal_config("vdevagain", 256)).expect("EAL");
    let small = Mempool::with_data_room(&eal, "auditsmall", 255, 2048 + 128).unwrap();
    let jumbo = Mempool::new(&eal, "auditjumbo", 511).unwrap();
    let device = Device::Vdev { devargs: "net_null7".into() };
    let err = Port::open(&eal, &small, &device, &config("n7", 9000)).expect_err("9000 does not fit 2 KiB mbufs");
    assert!(err.to_string().contains("does not fit"), "{err}");
    let port = Port::open(&eal, &jumbo, &device, &config("n7", 9000)).expect("the same device, with a fitting pool");
    drop(port);
    let port = Port::open(&eal, &jumbo, &device, &config("n7", 1500)).expect("opened again after closing");
    drop(port);
    assert_eq!(jumbo.in_use(), 0);
}

/// A worker runs until told to stop; one that ends on its own (here it returns at once, as a
/// panicking one does) is seen while the scope still runs, so the appliance can stop instead of
/// leaving that worker's queues unserved.
#[test]
fn a_worker_that_ends_on_its_own_is_seen_while_the_scope_runs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let eal = Eal::init(&common::test_eal_config("finished", 64)).expect("EAL");
    let stop = AtomicBool::new(false);
    let seen = |s: &midogw::Scope<'_, '_>| {
        // Generous: the lcore that runs the worker may be shared on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.finished_worker().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        s.finished_worker()
    };
    eal.scope(|s| {
        assert_eq!(s.finished_worker(), None, "nothing launched");
        s.launch(1, || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
            0
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(s.finished_worker(), None, "running until told to stop");
        stop.store(true, Ordering::Relaxed);
        assert_eq!(seen(s), Some(1), "stopped when told");
    })
    .expect("the worker returned 0");
    let ended = eal.scope(|s| {
        s.launch(1, || 3).unwrap();
        seen(s)
    });
    match ended {
        Err(Error::WorkerFailed { lcore: 1, .. }) => {}
        other => panic!("a worker returning 3 fails the scope: {other:?}"),
    }
}
