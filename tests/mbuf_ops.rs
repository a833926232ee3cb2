//! `Mbuf::prepend` and `Mbuf::strip_front` are DPDK's `rte_pktmbuf_prepend` / `rte_pktmbuf_adj`
//! rewritten in Rust: on real mbufs, every sequence of operations leaves a pair of mbufs (one
//! driven by the Rust functions, one by DPDK's through the C shim) with the same results, bytes,
//! offsets and lengths, failures at the exact boundaries included. No network namespaces.

mod common;

use midogw::{Eal, Mbuf, Mempool};

/// Everything the two functions touch or return, for comparing the two mbufs.
fn state(m: &Mbuf<'_>) -> (Vec<u8>, u16, u16, u32, usize) {
    (m.data().to_vec(), m.headroom(), m.tailroom(), m.pkt_len(), m.len())
}

/// An mbuf holding `len` bytes (0, 1, 2, ...).
fn filled<'p>(pool: &'p Mempool<'_>, len: u16) -> Mbuf<'p> {
    let mut m = pool.alloc().expect("mbuf");
    for (i, b) in m.append(len).expect("room").iter_mut().enumerate() {
        *b = i as u8;
    }
    m
}

/// Prepends `len` bytes on both mbufs, fills them the same way and checks both agree.
fn prepend_both(rust: &mut Mbuf<'_>, dpdk: &mut Mbuf<'_>, len: u16, fill: u8) {
    let before = state(rust);
    let r = rust.prepend(len).map(|room| {
        room.fill(fill);
        room.len()
    });
    let d = dpdk.dpdk_prepend(len).map(|room| {
        room.fill(fill);
        room.len()
    });
    assert_eq!(r, d, "prepend({len}) from {before:?}");
    assert_eq!(r.is_some(), len <= before.1, "prepend succeeds exactly when the headroom holds {len}");
    assert_eq!(state(rust), state(dpdk), "prepend({len})");
    if r.is_none() {
        assert_eq!(state(rust), before, "a refused prepend changes nothing");
    }
}

fn strip_both(rust: &mut Mbuf<'_>, dpdk: &mut Mbuf<'_>, len: u16) {
    let before = state(rust);
    let r = rust.strip_front(len);
    assert_eq!(r, dpdk.dpdk_strip_front(len), "strip_front({len}) from {before:?}");
    assert_eq!(r, usize::from(len) <= before.4, "strip succeeds exactly when the packet holds {len}");
    assert_eq!(state(rust), state(dpdk), "strip_front({len})");
    if !r {
        assert_eq!(state(rust), before, "a refused strip changes nothing");
    }
}

#[test]
fn rust_prepend_and_strip_match_dpdk_on_real_mbufs() {
    let eal = Eal::init(&common::test_eal_config("mbufops", 128)).expect("EAL");
    let pool = Mempool::new(&eal, "mbufopspool", 63).expect("pool");
    {
        // Boundaries: nothing, one byte, the whole headroom / packet, one past it, the largest len.
        for initial in [0u16, 1, 60, 114, 1514, 9000] {
            let (mut rust, mut dpdk) = (filled(&pool, initial), filled(&pool, initial));
            assert_eq!(state(&rust), state(&dpdk));
            let headroom = rust.headroom();
            for len in [0, 1, headroom - 1, headroom, headroom + 1, u16::MAX] {
                let (mut r, mut d) = (filled(&pool, initial), filled(&pool, initial));
                prepend_both(&mut r, &mut d, len, 0xa5);
            }
            for len in [0, 1, initial.saturating_sub(1), initial, initial + 1, u16::MAX] {
                let (mut r, mut d) = (filled(&pool, initial), filled(&pool, initial));
                strip_both(&mut r, &mut d, len);
            }
            // A long run of mixed operations on the same pair (a fixed xorshift sequence), so that
            // offsets wander over the whole buffer and both ends are hit many times.
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(initial);
            for step in 0..2000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = match x % 4 {
                    0 => (x >> 8) as u16 % 64,
                    1 => (x >> 8) as u16 % 200,
                    2 => rust.headroom().wrapping_add((x >> 8) as u16 % 3).wrapping_sub(1),
                    _ => (rust.len() as u16).wrapping_add((x >> 8) as u16 % 3).wrapping_sub(1),
                };
                if (x >> 32) & 1 == 0 {
                    prepend_both(&mut rust, &mut dpdk, len, step as u8);
                } else {
                    strip_both(&mut rust, &mut dpdk, len);
                }
            }
        }
    }
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
