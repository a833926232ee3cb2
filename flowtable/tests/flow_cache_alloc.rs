//! Proof that the flow cache allocates only in `FlowCache::new`: a counting global allocator
//! watches this thread while a workload runs lookups, inserts, evictions, expiry, invalidation and
//! removal, and must see no allocation, reallocation or free. It also checks that construction
//! allocates exactly `FlowCache::footprint` bytes, so the memory figure is the real one.
//!
//! The counting allocator is the `allocation-counter` crate's (thread-local counters), so the
//! project's own `unsafe` stays in pmd/.

use flowtable::flow::{DeviceTag, FlowCache, FlowCacheConfig, FlowHasher, FlowKey, InsertOutcome, TagSet, NEVER};
use flowtable::wire::{Headers, Ipv4Packet};

/// Runs `f` with counting on; returns its result, the allocations (including reallocations) and
/// the bytes requested. A free inside `f` shows as a negative `count_current` and is refused.
fn counted<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let mut result = None;
    let info = allocation_counter::measure(|| result = Some(f()));
    let result = result.expect("closure ran");
    let frees = (info.count_total as i64 - info.count_current).max(0) as u64;
    (result, info.count_total + frees, info.bytes_total)
}

/// A real small action list: seven 8-byte actions and a length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Actions {
    len: u8,
    list: [(u16, u32); 7],
}

/// Keys from real frames: UDP from 10.x.y.z:port to 192.0.2.1:53, built once, outside the count.
fn keys(n: u32) -> Vec<FlowKey> {
    (0..n)
        .map(|i| {
            let mut f = vec![
                0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
                0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01,
                0x00, 0x00, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
            ];
            f[27..30].copy_from_slice(&i.to_be_bytes()[1..]);
            f[34..36].copy_from_slice(&(i as u16).to_be_bytes());
            Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
            FlowKey::from_headers(i % 4, &Headers::parse(&f).unwrap())
        })
        .collect()
}

#[test]
fn no_allocation_after_construction() {
    let config = FlowCacheConfig { capacity: 4096, idle_timeout: 20_000, hard_timeout: 5_000 };
    let (mut cache, calls, bytes) = counted(|| FlowCache::<Actions>::new(&config, FlowHasher::new(0x5eed)));
    // Construction: the four slot arrays and the device array, exactly the advertised footprint.
    assert_eq!(calls, 5);
    assert_eq!(bytes as usize, FlowCache::<Actions>::footprint(&config));

    let keys = keys(3 * 4096);
    let deps: Vec<TagSet> = (0..64u32)
        .map(|i| TagSet::from_tags(&[DeviceTag(i % 16), DeviceTag(16 + i % 7), DeviceTag(100 + i)]))
        .collect();
    let mut too_many = TagSet::new();
    for i in 0..17 {
        too_many.insert(DeviceTag(i));
    }
    let changed = [DeviceTag(3), DeviceTag(17)];

    let (outcomes, calls, bytes) = counted(|| {
        let mut outcomes = [0u64; 4];
        let mut now = 0u64;
        for round in 0..6u64 {
            for (i, k) in keys.iter().enumerate() {
                now += 1;
                let hash = cache.hash(k);
                let hit = cache.lookup_hashed(k, hash, now, 64 + i as u32).is_some();
                if !hit {
                    let actions = Actions { len: 1, list: [(i as u16, round as u32); 7] };
                    let d = if i % 97 == 0 { &too_many } else { &deps[i % deps.len()] };
                    let installed = cache.insert_hashed(k, hash, actions, d, now, if i % 5 == 0 { 300 } else { NEVER });
                    outcomes[match installed.outcome {
                        InsertOutcome::Vacant => 0,
                        InsertOutcome::Replaced => 1,
                        InsertOutcome::Reclaimed => 2,
                        InsertOutcome::Evicted => 3,
                    }] += 1;
                }
                // Hot keys: the first 512 are looked up again at once.
                if i < 512 {
                    let _ = cache.lookup(k, now, 100);
                }
                if i % 1024 == 0 {
                    cache.expire(now, 256);
                }
            }
            cache.invalidate_devices(&changed);
            if round == 3 {
                cache.invalidate_all();
            }
            if round == 4 {
                for k in &keys[..100] {
                    cache.remove(k);
                }
            }
            // A quiet spell after round 2: everything idles out.
            now += if round == 2 { 25_000 } else { 2_000 };
            cache.expire(now, cache.capacity());
            let _ = cache.get(&keys[0], now);
            let _ = cache.stats().iter().count();
        }
        outcomes
    });
    assert_eq!((calls, bytes), (0, 0), "the cache allocated or freed after construction");
    // The workload did reach every path it was meant to.
    let s = *cache.stats();
    assert!(outcomes[0] > 0 && outcomes[2] > 0 && outcomes[3] > 0, "{outcomes:?}");
    assert!(s.hits > 0 && s.misses > 0 && s.evictions > 0, "{s:?}");
    assert!(s.expired_idle > 0 && s.expired_hard > 0 && s.invalidated > 0 && s.removed > 0, "{s:?}");
    assert!(s.tags_overflow > 0, "{s:?}");
    assert_eq!(s.accounted_len(), cache.len() as u64);
    assert!(cache.len() <= cache.capacity());

    // And the counter works: a Vec allocates.
    let (_, calls, _) = counted(|| std::hint::black_box(vec![1u8; 10]));
    assert!(calls >= 1);
}

/// The frame-to-key path allocates nothing either: the common-frame fast path and the general
/// parser it falls back to (a later fragment, a VLAN-tagged frame, a truncated one).
#[test]
fn keys_from_frames_do_not_allocate() {
    let mut udp = vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c,
        0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0xc0, 0x00, 0x02, 0x01, 0x00, 0x07,
        0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ];
    Ipv4Packet::new_unchecked(&mut udp[14..34]).fill_checksum();
    let mut later_fragment = udp.clone();
    later_fragment[20] = 0x01;
    Ipv4Packet::new_unchecked(&mut later_fragment[14..34]).fill_checksum();
    let mut tagged = udp[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    tagged.extend_from_slice(&udp[12..]);
    let frames = [udp.clone(), later_fragment, tagged, udp[..30].to_vec()];
    let (keys, calls, bytes) = counted(|| {
        let mut keys = [None; 4];
        for _ in 0..100 {
            for (k, f) in keys.iter_mut().zip(&frames) {
                *k = FlowKey::from_frame(3, f).ok();
            }
        }
        keys
    });
    assert_eq!((calls, bytes), (0, 0), "building keys from frames allocated");
    assert_eq!(keys[0], Some(FlowKey::from_headers(3, &Headers::parse(&udp).unwrap())));
    assert!(keys[1].is_some() && keys[2].is_some() && keys[3].is_none(), "{keys:?}");
}
