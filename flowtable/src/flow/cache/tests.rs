use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::wire::{EtherType, EthernetAddress, Fragment, Headers, IpProtocol, Ipv4Fields, Ipv4OptionsClass, L3, L4};

/// A real small action list, as the simulation will produce: up to seven actions in 60 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Action {
    #[default]
    Nop,
    DecTtl,
    SetEthDst([u8; 6]),
    Encap {
        tunnel: u32,
    },
    Output(u16),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Actions {
    len: u8,
    list: [Action; 7],
}

impl Actions {
    fn output(port: u16) -> Actions {
        let mut a = Actions::default();
        a.push(Action::DecTtl);
        a.push(Action::SetEthDst([2, 0, 0, 0, 0, port as u8]));
        a.push(Action::Encap { tunnel: u32::from(port) << 8 });
        a.push(Action::Output(port));
        a
    }

    fn push(&mut self, a: Action) {
        self.list[usize::from(self.len)] = a;
        self.len += 1;
    }

    fn port(&self) -> u16 {
        match self.list[..usize::from(self.len)].last() {
            Some(Action::Output(p)) => *p,
            _ => u16::MAX,
        }
    }
}

fn key(n: u32) -> FlowKey {
    let h = Headers {
        eth_dst: EthernetAddress([2, 0, 0, 0, 0, 1]),
        eth_src: EthernetAddress([2, 0, 0, 0, 0, 2]),
        vlan: None,
        ethertype: EtherType::Ipv4,
        l3_offset: 14,
        l3: L3::Ipv4(Ipv4Fields {
            src: (0x0a00_0000 | (n >> 16)).into(),
            dst: [192, 0, 2, 1].into(),
            protocol: IpProtocol::Udp,
            tos: 0,
            ttl: 64,
            ident: 0,
            dont_frag: false,
            fragment: Fragment::Unfragmented,
            options: Ipv4OptionsClass::None,
        }),
        l4_offset: 34,
        l4: L4::Udp { src_port: n as u16, dst_port: 53 },
        payload_offset: 42,
        end: 42,
    };
    FlowKey::from_headers(1, &h)
}

fn devs(ids: &[u32]) -> TagSet {
    TagSet::from_tags(&ids.iter().map(|&i| DeviceTag(i)).collect::<Vec<_>>())
}

fn cache(capacity: usize, idle: u64, hard: u64) -> FlowCache<Actions> {
    FlowCache::new(&FlowCacheConfig { capacity, idle_timeout: idle, hard_timeout: hard }, FlowHasher::new(1))
}

fn assert_books_balance<A: Default>(c: &FlowCache<A>) {
    assert_eq!(c.stats().accounted_len(), c.len() as u64, "{:?}", c.stats());
    assert!(c.len() <= c.capacity());
}

#[test]
fn lookup_after_insert_hits_and_counts() {
    let mut c = cache(64, NEVER, NEVER);
    let k = key(1);
    assert_eq!(c.lookup(&k, 0, 100), None);
    let i = c.insert(&k, Actions::output(3), &devs(&[1]), 0);
    assert_eq!((i.actions.port(), i.outcome), (3, InsertOutcome::Vacant));
    assert_eq!(c.lookup(&k, 5, 100).map(Actions::port), Some(3));
    assert_eq!(c.lookup(&k, 6, 60).map(Actions::port), Some(3));
    assert_eq!(c.lookup(&key(2), 6, 60), None);
    let e = c.get(&k, 7).unwrap();
    assert_eq!((e.packets, e.bytes, e.idle_deadline, e.hard_deadline), (2, 160, NEVER, NEVER));
    assert_eq!(e.deps, &devs(&[1]));
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.inserts), (2, 2, 1));
    assert_eq!(c.len(), 1);
    let debug = format!("{c:?}");
    assert!(debug.starts_with("FlowCache { capacity: 64, len: 1,") && debug.ends_with(", .. }"), "{debug}");
    // get moves nothing.
    assert_eq!(c.stats().hits, 2);
    assert_books_balance(&c);
}

#[test]
fn insert_of_a_present_key_replaces_in_place() {
    let mut c = cache(64, NEVER, NEVER);
    c.insert(&key(1), Actions::output(1), &TagSet::new(), 0);
    c.lookup(&key(1), 1, 10);
    assert_eq!(c.insert(&key(1), Actions::output(2), &TagSet::new(), 2).outcome, InsertOutcome::Replaced);
    assert_eq!(c.len(), 1);
    let e = c.get(&key(1), 3).unwrap();
    assert_eq!((e.actions.port(), e.packets), (2, 0));
    assert_eq!(c.stats().replaced, 1);
    assert_books_balance(&c);
}

#[test]
fn hard_expiry_exactly_at_the_deadline() {
    let mut c = cache(64, 100, 250);
    let k = key(1);
    c.insert(&k, Actions::output(1), &TagSet::new(), 1000);
    // Hits keep it from going idle, not past its deadline.
    for now in [1099, 1198, 1249] {
        assert!(c.lookup(&k, now, 1).is_some(), "{now}");
    }
    assert!(c.get(&k, 1249).is_some());
    assert!(c.get(&k, 1250).is_none());
    assert!(c.lookup(&k, 1250, 1).is_none());
    assert_eq!((c.stats().expired_hard, c.stats().expired_idle, c.len()), (1, 0, 0));
    // Per-insert deadline.
    let h = c.hash(&k);
    c.insert_hashed(&k, h, Actions::output(1), &TagSet::new(), 2000, 10);
    assert!(c.lookup(&k, 2009, 1).is_some());
    assert!(c.lookup(&k, 2010, 1).is_none());
    assert_eq!(c.stats().expired_hard, 2);
    assert_books_balance(&c);
}

#[test]
fn idle_expiry_exactly_at_the_boundary() {
    let mut c = cache(64, 100, NEVER);
    let k = key(1);
    c.insert(&k, Actions::output(1), &TagSet::new(), 0);
    assert!(c.lookup(&k, 99, 1).is_some());
    // Last use 99: live through 198, expired at 199.
    assert!(c.get(&k, 198).is_some());
    assert!(c.get(&k, 199).is_none());
    assert!(c.lookup(&k, 199, 1).is_none());
    assert_eq!((c.stats().expired_idle, c.len()), (1, 0));
    // Times should not go backwards (a core's clock does not); if one does, the hit's own
    // deadline is what counts.
    c.insert(&k, Actions::output(1), &TagSet::new(), 500);
    assert!(c.lookup(&k, 450, 1).is_some());
    assert_eq!(c.get(&k, 500).unwrap().idle_deadline, 550);
    assert!(c.get(&k, 549).is_some() && c.get(&k, 550).is_none());
    // The hard deadline caps the idle one.
    let mut c = cache(64, 100, 150);
    c.insert(&k, Actions::output(1), &TagSet::new(), 0);
    assert!(c.lookup(&k, 99, 1).is_some());
    let e = c.get(&k, 100).unwrap();
    assert_eq!((e.idle_deadline, e.hard_deadline), (150, 150));
    assert!(c.lookup(&k, 150, 1).is_none());
    assert_eq!((c.stats().expired_hard, c.stats().expired_idle), (1, 0));
    assert_books_balance(&c);
}

#[test]
fn never_means_never() {
    let mut c = cache(64, NEVER, NEVER);
    c.insert(&key(1), Actions::output(1), &TagSet::new(), 5);
    assert!(c.lookup(&key(1), u64::MAX - 1, 1).is_some());
    assert_eq!(c.expire(u64::MAX - 1, 64), 0);
}

#[test]
fn expire_reclaims_within_its_budget() {
    let mut c = cache(64, 100, NEVER);
    for n in 0..40 {
        c.insert(&key(n), Actions::output(1), &TagSet::new(), 0);
    }
    for n in 0..10 {
        c.lookup(&key(n), 90, 1);
    }
    // At 150 the 30 untouched entries are idle (since 100); the 10 used at 90 are not (until 190).
    let mut reclaimed = 0;
    for _ in 0..8 {
        let r = c.expire(150, 8);
        assert!(r <= 8);
        reclaimed += r;
    }
    assert_eq!(reclaimed, 30);
    assert_eq!((c.len(), c.stats().expired_idle), (10, 30));
    assert_eq!(c.expire(189, 1000), 0);
    assert_eq!(c.expire(190, 0), 0);
    assert_eq!(c.expire(190, 1000), 10);
    assert!(c.is_empty());
    assert_books_balance(&c);
}

#[test]
fn new_advised_shows_each_array_before_writing_it() {
    let config = FlowCacheConfig { capacity: 1000, idle_timeout: 100, hard_timeout: NEVER };
    let mut regions = Vec::new();
    let c: FlowCache<Actions> = FlowCache::new_advised(&config, FlowHasher::new(1), &mut |r| regions.push(r));
    let region = |addr: *const u8, len: usize| Region { addr: addr as usize, len };
    let slots = c.capacity();
    assert_eq!(
        regions,
        [
            region(c.buckets.as_ptr().cast(), slots / WAYS * size_of::<Bucket>()),
            region(c.referenced.as_ptr(), slots),
            region(c.keys.as_ptr().cast(), slots * size_of::<FlowKey>()),
            region(c.entries.as_ptr().cast(), slots * size_of::<Entry<Actions>>()),
        ],
        "the arrays the cache keeps are the ones advised, whole"
    );
    let total: usize = regions.iter().map(|r| r.len).sum();
    assert_eq!(total + TAG_SLOTS * 8, FlowCache::<Actions>::footprint(&config));
    assert!(c.is_empty());
}

#[test]
fn a_busy_worker_sweeps_in_passing() {
    let slots = 1024;
    let mut c = cache(slots, 100, NEVER);
    for n in 0..600 {
        c.insert(&key(n), Actions::output(1), &TagSet::new(), 0);
    }
    assert!(c.lookup(&key(0), 90, 64).is_some());
    // One flow stays busy; the other 599 are idle from 100 on. Nothing idles: only lookups and
    // the sweep in passing run, in bursts of 32.
    let sweeps_per_pass = slots / SWEEP_SLOTS;
    let mut reclaimed = 0;
    let mut packets = 0;
    while packets < sweeps_per_pass * SWEEP_EVERY_PACKETS {
        let now = 150 + packets as u64 / 1000;
        for _ in 0..32 {
            assert!(c.lookup(&key(0), now, 64).is_some());
        }
        packets += 32;
        let r = c.sweep_in_passing(32, now);
        // A sweep checks exactly SWEEP_SLOTS slots, once per SWEEP_EVERY_PACKETS packets.
        assert!(r <= SWEEP_SLOTS);
        if packets % SWEEP_EVERY_PACKETS != 0 {
            assert_eq!(r, 0, "no sweep before {SWEEP_EVERY_PACKETS} packets");
        }
        reclaimed += r;
    }
    // One pass over every slot: every idle flow reclaimed, the busy one kept.
    assert_eq!(reclaimed, 599);
    assert_eq!((c.len(), c.stats().expired_idle), (1, 599));
    assert!(c.lookup(&key(0), 200, 64).is_some());
    // Packets counted in one call carry over: 2.5 sweeps' worth is two sweeps now, the half later.
    let full = || {
        let mut c = cache(slots, 100, NEVER);
        for n in 0..slots as u32 {
            c.insert(&key(n), Actions::output(1), &TagSet::new(), 0);
        }
        c
    };
    let (mut c, mut twin) = (full(), full());
    assert_eq!(c.sweep_in_passing(SWEEP_EVERY_PACKETS * 5 / 2, 1000), twin.expire(1000, 2 * SWEEP_SLOTS));
    assert_eq!(c.sweep_in_passing(SWEEP_EVERY_PACKETS / 2 - 1, 1000), 0);
    let last = c.sweep_in_passing(1, 1000);
    assert!(last > 0);
    assert_eq!(last, twin.expire(1000, SWEEP_SLOTS));
    assert_eq!(c.len(), twin.len());
    assert_books_balance(&c);
}

#[test]
fn invalidation_by_device() {
    let mut c = cache(64, NEVER, NEVER);
    let sets = [devs(&[1]), devs(&[2]), devs(&[1, 2]), TagSet::new(), TagSet::any(), devs(&[3, 4, 5])];
    for (n, d) in sets.iter().enumerate() {
        c.insert(&key(n as u32), Actions::output(n as u16), d, 0);
    }
    c.invalidate_devices(&[]);
    assert!((0..6).all(|n| c.get(&key(n), 1).is_some()), "an empty invalidation changes nothing");
    c.invalidate_devices(&[DeviceTag(1)]);
    let live: Vec<bool> = (0..6).map(|n| c.get(&key(n), 1).is_some()).collect();
    assert_eq!(live, [false, true, false, true, false, true]);
    // Slots are reclaimed lazily: a lookup, then a sweep.
    assert_eq!(c.len(), 6);
    assert!(c.lookup(&key(0), 1, 1).is_none());
    assert_eq!(c.stats().invalidated, 1);
    assert_eq!(c.expire(1, 64), 2);
    assert_eq!((c.len(), c.stats().invalidated), (3, 3));
    // Survivors are revalidated and keep hitting; a later install depending on 1 is unaffected by the
    // old change.
    assert!(c.lookup(&key(1), 2, 1).is_some());
    c.insert(&key(10), Actions::output(10), &devs(&[1]), 2);
    assert!(c.lookup(&key(10), 3, 1).is_some());
    c.invalidate_devices(&[DeviceTag(4), DeviceTag(9)]);
    assert!(c.get(&key(5), 4).is_none());
    assert!(c.get(&key(1), 4).is_some() && c.get(&key(3), 4).is_some() && c.get(&key(10), 4).is_some());
    c.invalidate_all();
    assert!([1, 3, 10].iter().all(|&n| c.get(&key(n), 5).is_none()));
    assert_eq!(c.expire(5, 64), 4);
    assert!(c.is_empty());
    c.insert(&key(1), Actions::output(1), &TagSet::new(), 6);
    assert!(c.lookup(&key(1), 7, 1).is_some(), "installed after the flush");
    assert_books_balance(&c);
}

#[test]
fn tags_beyond_the_slots_over_invalidate_only() {
    let mut c = cache(64, NEVER, NEVER);
    let big = DeviceTag(TAG_SLOTS as u32 + 5);
    c.insert(&key(1), Actions::output(1), &TagSet::from_tags(&[big]), 0);
    c.insert(&key(2), Actions::output(1), &devs(&[6]), 0);
    c.invalidate_devices(&[DeviceTag(4)]);
    assert!(c.get(&key(1), 1).is_some());
    // `big` and 5 share a slot: invalidating 5 also drops the flow on `big` (never the reverse).
    c.invalidate_devices(&[DeviceTag(5)]);
    assert!(c.get(&key(1), 1).is_none());
    assert!(c.get(&key(2), 1).is_some());
    c.insert(&key(1), Actions::output(1), &devs(&[5]), 2);
    c.invalidate_devices(&[big]);
    assert!(c.get(&key(1), 3).is_none());
}

#[test]
fn overflowing_device_sets_depend_on_everything() {
    let mut c = cache(64, NEVER, NEVER);
    let many: Vec<u32> = (100..117).collect();
    let d = devs(&many);
    assert!(d.is_any());
    c.insert(&key(1), Actions::output(1), &d, 0);
    c.insert(&key(2), Actions::output(1), &devs(&[1]), 0);
    assert_eq!(c.stats().tags_overflow, 1);
    c.invalidate_devices(&[DeviceTag(7)]);
    assert!(c.get(&key(1), 1).is_none());
    assert!(c.get(&key(2), 1).is_some());
}

/// One bucket (b1 == b2): the victim is the first way not hit since the last reset, from the hand.
#[test]
fn eviction_prefers_flows_not_recently_used() {
    let mut c = cache(WAYS, NEVER, NEVER);
    assert_eq!(c.capacity(), WAYS);
    for n in 0..8 {
        assert_eq!(c.insert(&key(n), Actions::output(n as u16), &TagSet::new(), 0).outcome, InsertOutcome::Vacant);
    }
    for n in (0..8).filter(|&n| n != 3) {
        assert!(c.lookup(&key(n), 1, 1).is_some());
    }
    assert_eq!(c.insert(&key(100), Actions::output(100), &TagSet::new(), 2).outcome, InsertOutcome::Evicted);
    assert!(c.get(&key(3), 2).is_none());
    assert!((0..8).filter(|&n| n != 3).all(|n| c.get(&key(n), 2).is_some()));
    // A new flow that is never hit again is the next victim: one-packet floods evict themselves.
    c.insert(&key(101), Actions::output(101), &TagSet::new(), 3);
    assert!(c.get(&key(100), 3).is_none());
    assert!(c.get(&key(101), 3).is_some());
    assert!((0..8).filter(|&n| n != 3).all(|n| c.get(&key(n), 3).is_some()));
    // Everything hit: the bits reset and the hand picks.
    c.lookup(&key(101), 4, 1);
    c.insert(&key(102), Actions::output(102), &TagSet::new(), 5);
    assert_eq!(c.len(), WAYS);
    assert_eq!(c.stats().evictions, 3);
    // An expired victim counts as expired, not evicted.
    let mut c = cache(WAYS, 10, NEVER);
    for n in 0..8 {
        c.insert(&key(n), Actions::output(1), &TagSet::new(), 0);
    }
    assert_eq!(c.insert(&key(9), Actions::output(1), &TagSet::new(), 10).outcome, InsertOutcome::Reclaimed);
    assert_eq!((c.stats().evictions, c.stats().expired_idle), (0, 1));
    assert_books_balance(&c);
}

/// Two choices keep buckets balanced: distinct flows up to 90% of the slots lose under 1.5% to
/// eviction, and as many as there are slots leave over 95% resident (one bucket of eight: 10% and 86%).
#[test]
fn two_choices_keep_evictions_rare() {
    for seed in [1, 2, 3] {
        let config = FlowCacheConfig { capacity: 8192, idle_timeout: NEVER, hard_timeout: NEVER };
        let mut c: FlowCache<()> = FlowCache::new(&config, FlowHasher::new(seed));
        let cap = c.capacity() as u32;
        let mut first_eviction = None;
        for n in 0..cap {
            c.insert(&key(n.wrapping_mul(7919)), (), &TagSet::new(), 0);
            if first_eviction.is_none() && c.stats().evictions > 0 {
                first_eviction = Some(n);
            }
            if n + 1 == cap * 9 / 10 {
                assert!(c.stats().evictions * 1000 < u64::from(n) * 15, "seed {seed}: {:?}", c.stats());
            }
        }
        assert!(c.len() * 100 > c.capacity() * 95, "seed {seed}: {} resident", c.len());
        assert!(first_eviction.unwrap() > cap * 6 / 10, "seed {seed}: {first_eviction:?}");
        assert_books_balance(&c);
    }
}

#[test]
fn remove() {
    let mut c = cache(64, NEVER, NEVER);
    c.insert(&key(1), Actions::output(1), &TagSet::new(), 0);
    assert!(c.remove(&key(1)));
    assert!(!c.remove(&key(1)));
    assert!(c.lookup(&key(1), 1, 1).is_none());
    assert_eq!((c.len(), c.stats().removed), (0, 1));
    assert_books_balance(&c);
}

#[test]
fn a_stale_hint_to_a_freed_slot_misses() {
    let mut c = cache(64, IDLE, HARD);
    let probe = c.probe(&key(1));
    assert_eq!(c.candidate(&probe), NO_SLOT, "nothing in the table yet");
    c.insert(&key(1), Actions::output(1), &TagSet::new(), 10);
    let slot = c.candidate(&probe);
    assert_ne!(slot, NO_SLOT, "the key's slot");
    assert_eq!(c.lookup_probed(&key(1), &probe, slot, &c.tick(11), 60).map(Actions::port), Some(1));
    assert!(c.remove(&key(1)));
    // The burst loop found the candidate before a miss of the same burst freed it.
    assert_eq!(c.lookup_probed(&key(1), &probe, slot, &c.tick(12), 60), None);
    assert_eq!(c.stats().hits, 1);
    assert_eq!(c.stats().misses, 1);
    // A hint out of range, or to another key's slot, is only a hint.
    c.insert(&key(1), Actions::output(2), &TagSet::new(), 13);
    assert_eq!(c.lookup_probed(&key(1), &probe, NO_SLOT, &c.tick(14), 60).map(Actions::port), Some(2));
    c.insert(&key(2), Actions::output(3), &TagSet::new(), 13);
    let other = c.candidate(&c.probe(&key(2)));
    assert_ne!(other, NO_SLOT, "key 2's slot");
    assert_eq!(c.lookup_probed(&key(1), &probe, other, &c.tick(15), 60).map(Actions::port), Some(2));
    assert_books_balance(&c);
}

#[test]
fn stats_descriptions_cover_every_counter() {
    let s = FlowCacheStats { hits: 1, tags_overflow: 2, ..FlowCacheStats::default() };
    let values: Vec<_> = s.iter().collect();
    assert_eq!(values.len(), FlowCacheStats::DESCRIPTIONS.len());
    assert_eq!(values[0], ("hits", 1));
    assert_eq!(*values.last().unwrap(), ("tags_overflow", 2));
    for ((name, _), (dname, desc)) in values.iter().zip(FlowCacheStats::DESCRIPTIONS) {
        assert_eq!(name, dname);
        assert!(desc.ends_with('.'));
    }
}

/// The target: 10 million flows in at most 2 GiB, by arithmetic on the real layout.
#[test]
fn ten_million_flows_fit_in_two_gib() {
    const GIB: usize = 1 << 30;
    assert_eq!(size_of::<FlowKey>(), 64);
    assert_eq!(size_of::<Bucket>(), 16);
    assert_eq!(size_of::<Entry<()>>(), 72);
    assert_eq!(size_of::<Actions>(), 60);
    // What the pipeline caches: a compiled hop or the list behind a one-byte tag (padded to the
    // list's alignment), which the entry's padding absorbs.
    assert_eq!(size_of::<crate::sim::CachedActions>(), 64);
    assert_eq!(size_of::<Entry<Actions>>(), 136);
    assert_eq!(size_of::<Entry<crate::sim::CachedActions>>(), 136);
    assert_eq!(size_of::<Entry<[u64; 8]>>(), 136);
    assert_eq!(FlowCache::<[u64; 8]>::slot_bytes(), 203);
    let config = FlowCacheConfig { capacity: 10_000_000, ..FlowCacheConfig::default() };
    for bytes in [
        FlowCache::<Actions>::footprint(&config),
        FlowCache::<crate::sim::CachedActions>::footprint(&config),
        FlowCache::<[u64; 8]>::footprint(&config),
    ] {
        // 10,000,000 slots x 203 bytes + 65534 tag generations x 8 bytes.
        assert_eq!(bytes, 10_000_000 * 203 + TAG_SLOTS * 8);
        assert!(bytes <= 2 * GIB, "{bytes}");
    }
    // The largest action list that still fits: 72 bytes.
    assert!(FlowCache::<[u64; 9]>::footprint(&config) <= 2 * GIB);
    assert!(FlowCache::<[u64; 10]>::footprint(&config) > 2 * GIB);
}

#[test]
fn capacity_rounds_up_to_whole_buckets() {
    assert_eq!(cache(0, NEVER, NEVER).capacity(), WAYS);
    assert_eq!(cache(9, NEVER, NEVER).capacity(), 16);
    assert_eq!(cache(1000, NEVER, NEVER).capacity(), 1000);
    assert_eq!(cache(1001, NEVER, NEVER).capacity(), 1008);
}

/// Operations on a cache and on a model of it.
#[derive(Debug, Clone)]
enum Op {
    Insert {
        k: u32,
        deps: Vec<u32>,
        port: u16,
    },
    InsertHard {
        k: u32,
        hard: u64,
    },
    Lookup {
        k: u32,
        bytes: u32,
    },
    /// A lookup the burst loop's way: probe, candidate or another hint, then `lookup_probed`.
    LookupProbed {
        k: u32,
        bytes: u32,
        hint: Hint,
    },
    Invalidate(Vec<u32>),
    InvalidateAll,
    Advance(u64),
    Expire(usize),
    Remove(u32),
}

/// What a burst loop hands `lookup_probed`: the candidate it found, a stale or wrong slot, or none.
#[derive(Debug, Clone, Copy)]
enum Hint {
    Candidate,
    Slot(usize),
    Nothing,
}

fn arb_op(keys: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..keys, proptest::collection::vec(0u32..30, 0..20), any::<u16>())
            .prop_map(|(k, deps, port)| Op::Insert { k, deps, port }),
        1 => (0..keys, 0u64..80).prop_map(|(k, hard)| Op::InsertHard { k, hard }),
        6 => (0..keys, 0u32..2000).prop_map(|(k, bytes)| Op::Lookup { k, bytes }),
        4 => (0..keys, 0u32..2000, prop_oneof![
            3 => Just(Hint::Candidate),
            1 => (0usize..1100).prop_map(Hint::Slot),
            1 => Just(Hint::Nothing),
        ]).prop_map(|(k, bytes, hint)| Op::LookupProbed { k, bytes, hint }),
        1 => proptest::collection::vec(0u32..30, 0..3).prop_map(Op::Invalidate),
        1 => Just(Op::InvalidateAll),
        2 => (0u64..40).prop_map(Op::Advance),
        1 => (0usize..300).prop_map(Op::Expire),
        1 => (0..keys).prop_map(Op::Remove),
    ]
}

#[derive(Debug, Clone)]
struct ModelEntry {
    port: u16,
    /// None: depends on every device.
    deps: Option<HashSet<u32>>,
    last_used: u64,
    hard_deadline: u64,
    packets: u64,
    bytes: u64,
}

/// The cache's specification, with nothing lazy or bounded about it.
#[derive(Debug, Default)]
struct Model {
    entries: HashMap<u32, ModelEntry>,
    hits: u64,
    misses: u64,
}

const IDLE: u64 = 50;
const HARD: u64 = 120;

impl Model {
    fn live(&self, k: u32, now: u64) -> Option<&ModelEntry> {
        self.entries.get(&k).filter(|e| now < e.hard_deadline && now < e.last_used + IDLE)
    }

    fn insert(&mut self, k: u32, port: u16, deps: &[u32], now: u64, hard: u64) {
        let deps =
            (deps.iter().collect::<HashSet<_>>().len() <= TagSet::CAPACITY).then(|| deps.iter().copied().collect());
        let e = ModelEntry { port, deps, last_used: now, hard_deadline: now + hard, packets: 0, bytes: 0 };
        self.entries.insert(k, e);
    }

    fn lookup(&mut self, k: u32, now: u64, bytes: u32) -> Option<u16> {
        if self.live(k, now).is_none() {
            self.entries.remove(&k);
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        let e = self.entries.get_mut(&k).unwrap();
        e.last_used = now;
        e.packets += 1;
        e.bytes += u64::from(bytes);
        Some(e.port)
    }

    fn invalidate(&mut self, ids: &[u32]) {
        if !ids.is_empty() {
            self.entries.retain(|_, e| e.deps.as_ref().is_some_and(|d| ids.iter().all(|i| !d.contains(i))));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Against the model: every lookup gives the same answer, every key's visibility (`get`) agrees
    /// after every step, invalidation removes exactly the entries tagged with a named device, and
    /// the counters agree. The table is large enough that nothing is evicted.
    #[test]
    fn behaves_like_the_model(seed in any::<u64>(), ops in proptest::collection::vec(arb_op(24), 1..200)) {
        let config = FlowCacheConfig { capacity: 1024, idle_timeout: IDLE, hard_timeout: HARD };
        let mut c: FlowCache<Actions> = FlowCache::new(&config, FlowHasher::new(seed));
        let mut m = Model::default();
        let mut now = 1000u64;
        for op in ops {
            match op {
                Op::Insert { k, deps, port } => {
                    c.insert(&key(k), Actions::output(port), &devs(&deps), now);
                    m.insert(k, port, &deps, now, HARD);
                }
                Op::InsertHard { k, hard } => {
                    let h = c.hash(&key(k));
                    c.insert_hashed(&key(k), h, Actions::output(7), &TagSet::new(), now, hard);
                    m.insert(k, 7, &[], now, hard);
                }
                Op::Lookup { k, bytes } => {
                    prop_assert_eq!(c.lookup(&key(k), now, bytes).map(Actions::port), m.lookup(k, now, bytes));
                }
                Op::LookupProbed { k, bytes, hint } => {
                    let probe = c.probe(&key(k));
                    let hint = match hint {
                        Hint::Candidate => c.candidate(&probe),
                        Hint::Slot(i) => i,
                        Hint::Nothing => NO_SLOT,
                    };
                    let got = c.lookup_probed(&key(k), &probe, hint, &c.tick(now), bytes).map(Actions::port);
                    prop_assert_eq!(got, m.lookup(k, now, bytes));
                }
                Op::Invalidate(ids) => {
                    c.invalidate_devices(&ids.iter().map(|&i| DeviceTag(i)).collect::<Vec<_>>());
                    m.invalidate(&ids);
                }
                Op::InvalidateAll => {
                    c.invalidate_all();
                    m.entries.clear();
                }
                Op::Advance(dt) => now += dt,
                Op::Expire(budget) => {
                    c.expire(now, budget);
                }
                Op::Remove(k) => {
                    c.remove(&key(k));
                    m.entries.remove(&k);
                }
            }
            for k in 0..24 {
                let got = c.get(&key(k), now).map(|e| (e.actions.port(), e.packets, e.bytes, e.idle_deadline, e.hard_deadline));
                // The idle deadline as `get` reports it: the hard deadline when that comes first.
                let want = m.live(k, now).map(|e| (e.port, e.packets, e.bytes, (e.last_used + IDLE).min(e.hard_deadline), e.hard_deadline));
                prop_assert_eq!(got, want, "key {}", k);
            }
            prop_assert!(c.len() <= c.capacity());
            prop_assert_eq!(c.stats().accounted_len(), c.len() as u64);
        }
        prop_assert_eq!(c.stats().evictions, 0);
        prop_assert_eq!((c.stats().hits, c.stats().misses), (m.hits, m.misses));
        // A full sweep leaves exactly the model's live entries.
        c.expire(now, c.capacity());
        prop_assert_eq!(c.len(), (0..24).filter(|&k| m.live(k, now).is_some()).count());
    }

    /// A small table under more keys than it holds: never over capacity, evictions counted, the
    /// books balance, and whatever hits returns the actions installed for that key.
    #[test]
    fn bounded_under_pressure(
        seed in any::<u64>(), capacity in 1usize..40,
        ops in proptest::collection::vec((0u32..200, any::<bool>()), 1..400),
    ) {
        let config = FlowCacheConfig { capacity, idle_timeout: NEVER, hard_timeout: NEVER };
        let mut c: FlowCache<Actions> = FlowCache::new(&config, FlowHasher::new(seed));
        let mut distinct = HashSet::new();
        for (i, (k, insert)) in ops.into_iter().enumerate() {
            let now = i as u64;
            if insert {
                distinct.insert(k);
                c.insert(&key(k), Actions::output(k as u16), &TagSet::new(), now);
                prop_assert!(c.get(&key(k), now).is_some(), "just inserted");
            } else if let Some(a) = c.lookup(&key(k), now, 1) {
                prop_assert_eq!(a.port(), k as u16);
            }
            prop_assert!(c.len() <= c.capacity());
            prop_assert_eq!(c.stats().accounted_len(), c.len() as u64);
        }
        let s = *c.stats();
        prop_assert_eq!(s.expired_idle + s.expired_hard + s.invalidated + s.removed, 0);
        prop_assert_eq!(c.len() as u64, s.inserts - s.replaced - s.evictions);
        if distinct.len() > c.capacity() {
            prop_assert!(s.evictions >= (distinct.len() - c.capacity()) as u64);
        }
    }
}

proptest! {
    /// The SWAR signature match equals the obvious loop, lane for lane, edge values included.
    #[test]
    fn signature_match_is_exact(
        sigs in proptest::array::uniform8(prop_oneof![Just(0xffu8), Just(0x80), Just(0x7f), Just(1), 1u8..]),
        used in any::<u8>(), probe in prop_oneof![Just(0xffu8), Just(0x80), Just(0x7f), Just(1), 1u8..],
    ) {
        // As the cache keeps them: an empty way's signature is 0, a key's never is.
        let mut b = Bucket { used, ..Bucket::default() };
        for (w, &s) in sigs.iter().enumerate() {
            b.set_sig(w, if used & (1 << w) != 0 { s } else { 0 });
        }
        let lanes = |m: u8| (0..8).fold(0u64, |l, w| l | u64::from(m >> w & 1) << (8 * w + 7));
        let naive = sigs.iter().enumerate().fold(0u8, |m, (w, &s)| m | u8::from(s == probe) << w) & used;
        prop_assert_eq!(b.matches(probe), lanes(naive));
        for (w, &s) in sigs.iter().enumerate() {
            prop_assert_eq!(b.matches(s) & lanes(1 << w), lanes((1 << w) & used));
        }
        if naive != 0 {
            prop_assert_eq!(Bucket::way_of(b.matches(probe)), naive.trailing_zeros() as usize);
        }
        // The first-match form: its lowest lane is the first matching way, and none when none.
        let first = b.first_match(probe);
        prop_assert_eq!(first == 0, naive == 0);
        if naive != 0 {
            prop_assert_eq!(Bucket::way_of(first), naive.trailing_zeros() as usize);
        }
    }
}
