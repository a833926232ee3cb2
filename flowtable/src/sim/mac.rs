//! Per-core MAC learning tables of the bridges.
//!
//! Learned entries live per worker core, like the neighbour cache: a core learns from the frames
//! it simulates, with no locks and no sharing, and with several workers tells the others what it
//! learned (sim/learning.rs), so a MAC seen on one core is known on all. Static
//! entries live in the snapshot ([`Bridge::static_mac`](crate::topology::Bridge::static_mac)) and
//! win over learned ones.

use super::learning::{Learning, Outbox};
use crate::flow::ShortHasher;
use crate::topology::{BridgeId, DeviceId, DeviceSet, PortId};
use crate::wire::EthernetAddress;

/// Ways per bucket.
const WAYS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    bridge: BridgeId,
    mac: EthernetAddress,
    port: PortId,
    /// Valid while `now < expires`; 0 marks a slot never used.
    expires: u64,
    /// When the other cores were last told of it (sim/learning.rs).
    announced: u64,
}

const FREE: Entry = Entry {
    bridge: BridgeId(u32::MAX),
    mac: EthernetAddress([0; 6]),
    port: PortId(u32::MAX),
    expires: 0,
    announced: 0,
};

/// What [`MacTable::learn`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Learned {
    /// The MAC was not known on this bridge (or its entry was gone).
    New,
    /// Known on the same port: the entry's age was reset.
    Refreshed,
    /// Known (or last known, expired) on another port: flows sent to the old port are stale.
    Moved,
}

/// A fixed-capacity, set-associative table of learned (bridge, MAC) -> port entries with aging.
/// Allocates only in [`MacTable::new`]. A full bucket replaces its expired or soonest-expiring
/// entry. Expired entries keep their port until reused, so a MAC coming back on another port after
/// expiring still counts as [`Learned::Moved`].
#[derive(Debug, Clone)]
pub struct MacTable {
    slots: Box<[Entry]>,
    mask: usize,
    aging: u64,
    moved: DeviceSet,
    /// What this core learned, for the others.
    pub(super) outbox: Outbox,
    /// The core's secret-seeded hash of (bridge, MAC).
    hasher: ShortHasher,
}

impl MacTable {
    /// A table of at least `capacity` entries (a power of two, at least one bucket); an entry
    /// learned or refreshed at `now` is valid until `now + aging`; `hash_seed` keys the buckets.
    pub fn new(capacity: usize, aging: u64, hash_seed: u64) -> MacTable {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        MacTable {
            slots: vec![FREE; buckets * WAYS].into_boxed_slice(),
            mask: buckets - 1,
            aging,
            moved: DeviceSet::new(),
            outbox: Outbox::default(),
            hasher: ShortHasher::new(hash_seed),
        }
    }

    /// Number of entries the table holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn bucket(&self, bridge: BridgeId, mac: EthernetAddress) -> core::ops::Range<usize> {
        let mut word = [0u8; 8];
        word[..6].copy_from_slice(&mac.0);
        let b = self.hasher.hash2(u64::from_le_bytes(word), u64::from(bridge.0)) as usize & self.mask;
        b * WAYS..(b + 1) * WAYS
    }

    /// Records that `mac` is behind `port` of `bridge` at `now`. A move is also remembered for
    /// [`take_moved`](Self::take_moved), so the caller can invalidate the bridge's cached flows.
    /// When replicating, a new or moved entry is told to the other cores at once, a refreshed one
    /// at most every quarter of the aging time (sim/learning.rs).
    pub fn learn(&mut self, bridge: BridgeId, mac: EthernetAddress, port: PortId, now: u64) -> Learned {
        let (learned, announce) = self.store(bridge, mac, port, now, false);
        if announce {
            self.outbox.record(Learning::Mac { bridge, mac, port });
        }
        learned
    }

    /// [`MacTable::learn`] of what another core learned: not told again (and counted as told now).
    pub fn learn_from_peer(&mut self, bridge: BridgeId, mac: EthernetAddress, port: PortId, now: u64) -> Learned {
        self.store(bridge, mac, port, now, true).0
    }

    /// Stores the entry; returns what changed and whether the other cores should hear of it now.
    /// What a peer told counts as heard at `now`.
    fn store(
        &mut self,
        bridge: BridgeId,
        mac: EthernetAddress,
        port: PortId,
        now: u64,
        from_peer: bool,
    ) -> (Learned, bool) {
        let range = self.bucket(bridge, mac);
        let expires = now.saturating_add(self.aging).max(1);
        let bucket = &mut self.slots[range];
        if let Some(e) = bucket.iter_mut().find(|e| e.expires != 0 && e.bridge == bridge && e.mac == mac) {
            let outcome = if e.port != port {
                Learned::Moved
            } else if now < e.expires {
                Learned::Refreshed
            } else {
                Learned::New
            };
            let announce =
                !from_peer && (outcome != Learned::Refreshed || now.saturating_sub(e.announced) >= self.aging / 4);
            let announced = if announce || from_peer { now } else { e.announced };
            *e = Entry { bridge, mac, port, expires, announced };
            if outcome == Learned::Moved {
                self.moved.insert(DeviceId::Bridge(bridge));
            }
            return (outcome, announce);
        }
        let victim = bucket.iter_mut().min_by_key(|e| if e.expires <= now { 0 } else { e.expires });
        if let Some(e) = victim {
            *e = Entry { bridge, mac, port, expires, announced: now };
        }
        (Learned::New, !from_peer)
    }

    /// The port `mac` was learned on in `bridge`, if not aged out at `now`.
    pub fn lookup(&self, bridge: BridgeId, mac: EthernetAddress, now: u64) -> Option<PortId> {
        self.slots[self.bucket(bridge, mac)]
            .iter()
            .find(|e| e.bridge == bridge && e.mac == mac && now < e.expires)
            .map(|e| e.port)
    }

    /// Forgets every entry of `bridge` (MidoNet's "clear MAC table").
    pub fn clear_bridge(&mut self, bridge: BridgeId) {
        for e in self.slots.iter_mut().filter(|e| e.bridge == bridge) {
            *e = FREE;
        }
        self.moved.insert(DeviceId::Bridge(bridge));
    }

    /// Frees every entry `keep` refuses (given its bridge and port); returns how many. For a new
    /// snapshot, in which indices may name other devices. Allocation-free.
    pub fn retain(&mut self, mut keep: impl FnMut(BridgeId, PortId) -> bool) -> usize {
        let mut n = 0;
        for e in self.slots.iter_mut().filter(|e| e.expires != 0) {
            if !keep(e.bridge, e.port) {
                *e = FREE;
                n += 1;
            }
        }
        n
    }

    /// Number of entries valid at `now`.
    pub fn len(&self, now: u64) -> usize {
        self.slots.iter().filter(|e| now < e.expires).count()
    }

    /// The bridges where a MAC moved since the last call (saturated: too many to list), emptied.
    /// Flows to the MAC's old port depend on the bridge, so invalidating the bridge's device tag
    /// drops them.
    pub fn take_moved(&mut self) -> DeviceSet {
        core::mem::take(&mut self.moved)
    }

    /// Whether a MAC moved since the last [`take_moved`](Self::take_moved): a load and a compare, so
    /// a core checks this per packet and copies the set out only when there is something in it.
    #[inline]
    pub fn has_moved(&self) -> bool {
        !self.moved.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);

    /// A VM that finds source MACs sharing one bucket under one core's secret (here by search,
    /// as an attacker knowing the hash would off-line) cannot evict with them under another's.
    #[test]
    fn buckets_depend_on_the_cores_secret() {
        let b = BridgeId(0);
        let (known, secret) = (MacTable::new(64, 100, 1), MacTable::new(64, 100, 2));
        let target = known.bucket(b, A);
        let crafted: Vec<EthernetAddress> = (0u32..)
            .map(|i| EthernetAddress([2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0xb]))
            .filter(|&m| known.bucket(b, m) == target)
            .take(WAYS)
            .collect();
        // Under the known seed they evict A from its bucket...
        let mut t = known.clone();
        t.learn(b, A, PortId(1), 0);
        for (i, &m) in crafted.iter().enumerate() {
            t.learn(b, m, PortId(2), 1 + i as u64);
        }
        assert_eq!(t.lookup(b, A, 10), None, "evicted by the crafted MACs");
        // ...under another they spread, and A stays.
        let mut t = secret.clone();
        t.learn(b, A, PortId(1), 0);
        for (i, &m) in crafted.iter().enumerate() {
            t.learn(b, m, PortId(2), 1 + i as u64);
        }
        assert_eq!(t.lookup(b, A, 10), Some(PortId(1)));
        assert!(crafted.iter().any(|&m| secret.bucket(b, m) != secret.bucket(b, A)));
    }

    #[test]
    fn learns_ages_and_moves() {
        let mut t = MacTable::new(16, 100, 0);
        let b = BridgeId(0);
        assert_eq!(t.lookup(b, A, 0), None);
        assert_eq!(t.learn(b, A, PortId(1), 10), Learned::New);
        assert_eq!(t.lookup(b, A, 109), Some(PortId(1)));
        assert_eq!(t.lookup(BridgeId(1), A, 50), None, "per bridge");
        assert_eq!(t.learn(b, A, PortId(1), 50), Learned::Refreshed);
        assert_eq!(t.lookup(b, A, 149), Some(PortId(1)), "refresh resets the age");
        assert_eq!(t.lookup(b, A, 150), None, "aged out");
        assert!(t.take_moved().is_empty());
        assert_eq!(t.learn(b, A, PortId(2), 151), Learned::Moved, "expired but remembered");
        assert_eq!(t.lookup(b, A, 152), Some(PortId(2)));
        assert!(t.has_moved());
        let moved = t.take_moved();
        assert!(moved.contains(DeviceId::Bridge(b)));
        assert!(!t.has_moved());
        assert!(t.take_moved().is_empty());
        assert_eq!(t.learn(b, A, PortId(2), 160), Learned::Refreshed);
        t.clear_bridge(b);
        assert_eq!(t.lookup(b, A, 161), None);
    }

    #[test]
    fn new_and_moved_macs_are_told_refreshes_every_quarter_of_the_aging() {
        let told = |t: &mut MacTable| {
            let mut v = Vec::new();
            t.outbox.drain(|l| v.push(l));
            v
        };
        let b = BridgeId(3);
        let at = |port: u32| Learning::Mac { bridge: b, mac: A, port: PortId(port) };
        let mut t = MacTable::new(16, 100, 0);
        t.learn(b, A, PortId(1), 0);
        assert!(told(&mut t).is_empty(), "a single worker tells no one");
        t.outbox.enable(true);
        assert_eq!(t.learn(BridgeId(4), A, PortId(1), 10), Learned::New);
        assert_eq!(told(&mut t), [Learning::Mac { bridge: BridgeId(4), mac: A, port: PortId(1) }], "new: told");
        t.learn(b, A, PortId(1), 10);
        t.learn(b, A, PortId(1), 24);
        assert!(told(&mut t).is_empty(), "refreshes within a quarter of the aging (100 / 4) of the last news");
        t.learn(b, A, PortId(1), 25);
        assert_eq!(told(&mut t), [at(1)]);
        t.learn(b, A, PortId(1), 49);
        assert!(told(&mut t).is_empty());
        assert_eq!(t.learn(b, A, PortId(2), 36), Learned::Moved);
        assert_eq!(told(&mut t), [at(2)], "a move is told at once");

        // Another core's news: applied (a move noted for invalidation), not told again, and it
        // counts as told, so this core's own refresh right after stays quiet.
        let mut peer = MacTable::new(16, 100, 0);
        peer.outbox.enable(true);
        assert_eq!(peer.learn_from_peer(b, A, PortId(1), 50), Learned::New);
        assert_eq!(peer.learn_from_peer(b, A, PortId(2), 51), Learned::Moved);
        assert!(peer.take_moved().contains(DeviceId::Bridge(b)));
        assert_eq!(peer.lookup(b, A, 52), Some(PortId(2)));
        peer.learn(b, A, PortId(2), 60);
        assert!(told(&mut peer).is_empty());
    }

    #[test]
    fn bounded_and_replaces_oldest() {
        let mut t = MacTable::new(4, 1000, 0);
        assert_eq!(t.capacity(), 4);
        for i in 0..100u8 {
            t.learn(BridgeId(0), EthernetAddress([2, 0, 0, 0, 1, i]), PortId(1), u64::from(i));
        }
        assert_eq!(t.len(100), 4);
        // The newest ones are kept.
        assert_eq!(t.lookup(BridgeId(0), EthernetAddress([2, 0, 0, 0, 1, 99]), 100), Some(PortId(1)));
    }
}
