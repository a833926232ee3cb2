//! The per-core flow cache: exact match on [`FlowKey`], bounded, allocation-free after construction.
//!
//! # Structure
//!
//! Slots are grouped in buckets of [`WAYS`] (8). A key may live in either of two buckets chosen by
//! its hash (greedy "two choices": an insert goes to the emptier one), which keeps the buckets
//! balanced: inserting as many distinct flows as there are slots leaves 96% of them resident (a
//! single bucket per key: 86%), and at 90% of the slots only 0.7% have been evicted (single: 10%);
//! the first eviction comes at about 75% (measured over 8 Ki to 1 Mi slots). The price is a second
//! bucket probe on every miss and on the third of hits that live in their second bucket. Four
//! parallel arrays, all allocated once in [`FlowCache::new`]:
//!
//! * buckets, 16 bytes each (a quarter of a cache line, never straddling one): an 8-bit signature
//!   per way (0 for an empty way), the occupied mask and a clock hand;
//! * referenced bytes, one per slot (a hit sets its byte with one store; a bucket's eight are
//!   one word);
//! * keys, 64 bytes each, cache-line aligned;
//! * entries, `72 + size_of::<A>()` bytes: the expiry deadline (the earlier of idle and hard), the
//!   hard deadline, validation generation, packet and byte counters, the [`TagSet`] (16 tags), and
//!   the actions.
//!
//! Bucket indexes come from the hash by multiply-shift range reduction (Lemire), so the bucket
//! count need not be a power of two and a table is sized to what it must hold, not to the next
//! power of two. The signature is the hash's lowest byte, the bits the bucket indexes depend on
//! least (they come from the top of the hash and of its 32-bit rotation), and is never 0 (0 is
//! mapped to 1), so a signature match finds occupied ways only.
//!
//! # Eviction
//!
//! When both buckets are full, the victim is the first way not referenced since its bucket's last
//! reset, searching from the bucket's clock hand, first bucket then second; when all sixteen were
//! referenced, both buckets' bytes are cleared and the first bucket's hand picks (NRU, a CLOCK-style
//! LRU approximation). A hit sets the byte; an insert leaves it clear, so a flood of one-packet
//! flows evicts itself before it evicts flows that are in use. The victim is checked on the way:
//! if it had expired or been invalidated it is counted as that, not as an eviction.
//!
//! # Expiry
//!
//! Every entry has an idle timeout (the table's) and a hard deadline (set at insert). Time is the
//! caller's `now`, in nanoseconds of any monotonic clock; nothing here reads a clock. An entry is
//! expired at `now` when `now >= last_use + idle_timeout` or `now >= hard_deadline`, so exactly at
//! the boundary. The entry keeps the earlier of the two as one deadline, so a hit compares once
//! and stores once (the idle deadline of a hit at `now` comes from a [`Tick`], worked out once
//! per burst). Lookups never return an expired entry (they reclaim it and miss); [`FlowCache::expire`]
//! reclaims the rest, scanning at most `budget` slots per call from a cursor that wraps around.
//!
//! # Invalidation
//!
//! Without a full-table scan, and exactly: the cache keeps a generation number, bumped by each
//! [`FlowCache::invalidate_devices`] call, and for each tag slot ([`TAG_SLOTS`] of them, 512 KiB)
//! the generation of its last change. Each entry remembers the generation at which it was last
//! known valid. A hit whose entry's generation is current (the common case: nothing changed since)
//! costs one compare; otherwise the entry's tags are checked against their last change (at most
//! sixteen loads): if none changed after the entry's generation it is brought up to date, else it
//! is stale, and is reclaimed and missed. [`FlowCache::invalidate_all`] records a flush generation
//! that stales everything older. So invalidating costs O(tags named), and exactly the entries that
//! depended on a named tag stop matching at once (tags at or above [`TAG_SLOTS`] fold onto shared
//! slots, which can only over-invalidate); their slots are reclaimed when a lookup, an insert or
//! the expiry scan meets them (the `invalidated` counter counts them then). Generations are `u64`:
//! they do not wrap.
//!
//! # Memory
//!
//! Per slot: 64 (key) + 72 + `size_of::<A>()` (entry) + 1 (referenced) + 2 (a bucket's share);
//! plus 512 KiB of tag generations per cache. With a 64-byte action list that is 203 bytes a
//! slot, so 10 million flows take 2.03 GB (1.89 GiB), under the 2 GiB target; action lists up to 72 bytes fit
//! ([`FlowCache::footprint`] computes it). All memory is allocated and written in [`FlowCache::new`];
//! nothing after it allocates or frees. [`FlowCache::new_advised`] shows the caller each array
//! between allocating and writing it, so pmd/ can put the arrays on transparent huge pages.
//!
//! # Cost of a lookup
//!
//! Measured once during development, not a committed benchmark (perf/ owns those): callgrind over a
//! loop of lookups (release build, x86-64 baseline, 1 Ki flows in random order) counts about 195
//! instructions per hit, hash included. The hash is about 40 (five 64x64->128-bit
//! multiplies, the key's eight words and ten secrets loaded); locating the two buckets two more
//! multiplies; the signature scan about a dozen per bucket probed (SWAR, no branch); the key compare
//! up to sixteen; the validity check three compares (one more add for the idle deadline); the hit
//! updates a handful of stores. A third of the hits pay a second bucket probe.
//!
//! Wall clock on the development VM (AMD EPYC, 4 KiB pages, one lookup at a time): 19 ns per hit with
//! 1 Ki flows, 25 ns with 16 Ki, then 150 to 300 ns from 64 Ki to 4 Mi flows, where the bucket, key
//! and entry lines (three to four per hit) each miss the caches and the TLB. At scale the time goes
//! in memory, not instructions. So the pipeline's burst loop probes the whole burst first (hash,
//! buckets and signature once per packet: [`FlowCache::probe`]) and prefetches both buckets of
//! every packet ([`FlowCache::bucket_addrs`]), then finds every packet's [`FlowCache::candidate`]
//! slot and prefetches its key and entry ([`FlowCache::slot_addrs`]), and only then looks each up
//! ([`FlowCache::lookup_probed`]): a right candidate costs one key compare, since an empty slot
//! holds a key no frame has. The table should also sit on huge pages.

use core::fmt;
use core::mem::{self, size_of};

use super::device::{DeviceTag, TagSet, TAG_SLOTS};
use super::hash::FlowHasher;
use super::key::FlowKey;

/// Ways per bucket.
pub const WAYS: usize = 8;

/// A slot number no table has: [`FlowCache::candidate`]'s "none".
pub const NO_SLOT: usize = usize::MAX;

/// A timeout that never expires.
pub const NEVER: u64 = u64::MAX;

/// One second in the nanoseconds the cache counts in.
const SECOND: u64 = 1_000_000_000;

/// How a core's flow cache is sized and timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowCacheConfig {
    /// Flows the cache holds (rounded up to a multiple of [`WAYS`]; at least one bucket).
    pub capacity: usize,
    /// Idle timeout, ns: an entry not hit for this long expires. [`NEVER`] for none.
    pub idle_timeout: u64,
    /// Default hard timeout, ns, from the insert: [`FlowCache::insert`] uses it. [`NEVER`] for none.
    pub hard_timeout: u64,
}

impl Default for FlowCacheConfig {
    /// 1 Mi flows, 60 s idle, no hard timeout. Placeholders until perf/ tunes them.
    fn default() -> Self {
        FlowCacheConfig { capacity: 1 << 20, idle_timeout: 60 * SECOND, hard_timeout: NEVER }
    }
}

macro_rules! counters {
    ($( $name:ident => $desc:literal, )+) => {
        /// A core's flow-cache counters. Plain integers: one writer, the owning core, which
        /// publishes a copy once per burst.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct FlowCacheStats {
            $( #[doc = $desc] pub $name: u64, )+
        }

        impl FlowCacheStats {
            /// Each counter's name and description, in declaration order (one list for reports,
            /// metrics names and docs).
            pub const DESCRIPTIONS: &'static [(&'static str, &'static str)] = &[ $( (stringify!($name), $desc), )+ ];

            /// `(name, value)` pairs, in the order of [`FlowCacheStats::DESCRIPTIONS`].
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [ $( (stringify!($name), self.$name), )+ ].into_iter()
            }
        }
    };
}

counters! {
    hits => "Lookups that found a live entry.",
    misses => "Lookups that found no live entry (including ones that found an expired or stale entry).",
    inserts => "Entries installed.",
    replaced => "Inserts that replaced a live entry with the same key.",
    evictions => "Live entries evicted to make room for an insert.",
    expired_idle => "Entries reclaimed after their idle timeout.",
    expired_hard => "Entries reclaimed after their hard deadline.",
    invalidated => "Entries reclaimed because a device they depended on changed, or everything was invalidated.",
    removed => "Entries removed by the caller.",
    tags_overflow => "Inserts whose tag set was too large, installed as depending on every device.",
}

impl FlowCacheStats {
    /// Entries the counters account for: installed minus every way out. Equals [`FlowCache::len`].
    pub fn accounted_len(&self) -> u64 {
        self.inserts
            - self.replaced
            - self.evictions
            - self.expired_idle
            - self.expired_hard
            - self.invalidated
            - self.removed
    }
}

/// What an insert displaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A free slot.
    Vacant,
    /// The live entry with the same key.
    Replaced,
    /// An expired or invalidated entry (with the same key, or the eviction victim).
    Reclaimed,
    /// A live entry, evicted.
    Evicted,
}

/// The result of an insert: the installed actions, ready to execute on the packet that missed.
#[derive(Debug)]
pub struct Installed<'a, A> {
    /// The actions now in the cache.
    pub actions: &'a A,
    /// What the insert displaced.
    pub outcome: InsertOutcome,
}

/// A key's way into the table: its two buckets and its signature ([`FlowCache::probe`]).
/// Valid for the cache that made it, until that cache is dropped (its size never changes).
///
/// `repr(C)`, the bucket indexes apart: side by side, the two are packed into a vector register
/// to be stored (four instructions where two stores do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Probe {
    b1: u32,
    sig: u8,
    b2: u32,
}

impl Probe {
    /// A probe of nothing (bucket 0, signature 0: it finds no key), to fill arrays before use.
    pub const EMPTY: Probe = Probe { b1: 0, sig: 0, b2: 0 };
}

/// A lookup's time: `now` and the idle deadline a hit sets, from [`FlowCache::tick`]. Times
/// should not go backwards between lookups: a hit at an earlier `now` than the last one moves the
/// entry's idle deadline back to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    now: u64,
    idle_deadline: u64,
}

impl Tick {
    /// The time, ns.
    pub fn now(&self) -> u64 {
        self.now
    }
}

/// A live entry, read without touching its counters.
#[derive(Debug)]
pub struct FlowEntryRef<'a, A> {
    /// The cached actions.
    pub actions: &'a A,
    /// The device tags the flow depended on.
    pub deps: &'a TagSet,
    /// Packets that hit the entry (the packet that missed and installed it is not counted).
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// When the entry expires unless it is hit again: its last hit's (or its insert's) `now`
    /// plus the idle timeout ([`NEVER`] for no idle timeout), or the hard deadline if earlier.
    pub idle_deadline: u64,
    /// When the entry expires whatever its use ([`NEVER`] for no deadline).
    pub hard_deadline: u64,
}

/// A bucket's metadata: a quarter of a cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
struct Bucket {
    /// Way `w`'s 8-bit signature is byte `w` (compared eight at a time); 0 for an empty way,
    /// which no key's signature is.
    sig: u64,
    used: u8,
    hand: u8,
}

impl Bucket {
    /// Occupied ways whose signature is `sig` (never 0), as lanes: bit 7 of byte `w` set for way
    /// `w`. SWAR over one word, no branch; empty ways hold signature 0, so no occupancy mask is
    /// needed. Eight bits leave a 1 in 255 chance per occupied way of a key compare that fails.
    #[inline(always)]
    fn matches(&self, sig: u8) -> u64 {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        let x = self.sig ^ (u64::from(sig) * 0x0101_0101_0101_0101);
        // Bit 7 of each byte set where the byte is zero (exact: no carry crosses bytes).
        !(((x & LOW7) + LOW7) | x | LOW7)
    }

    /// Like [`Bucket::matches`], exact in its lowest lane only (lanes above a match may be set
    /// spuriously: the classic zero-byte test, whose borrows run upward only), for a caller that
    /// wants the first matching way. Three operations fewer.
    #[inline(always)]
    fn first_match(&self, sig: u8) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        let x = self.sig ^ (u64::from(sig) * ONES);
        x.wrapping_sub(ONES) & !x & (ONES << 7)
    }

    /// The way of the lowest lane set in a [`Bucket::matches`] or [`Bucket::first_match`] mask.
    #[inline(always)]
    fn way_of(lanes: u64) -> usize {
        lanes.trailing_zeros() as usize / 8
    }

    fn set_sig(&mut self, way: usize, sig: u8) {
        let lane = 8 * way;
        self.sig = (self.sig & !(0xff << lane)) | u64::from(sig) << lane;
    }

    fn free(&self) -> u32 {
        self.used.count_zeros()
    }
}

/// A slot's data. Hot fields first: a hit reads the first four and writes three.
///
/// The idle timeout is kept as a deadline (last use plus the timeout, or the hard deadline if
/// that comes first) rather than the last use, so that the hit path compares one deadline with
/// `now` and adds nothing to check it.
#[derive(Debug, Clone, Default)]
struct Entry<A> {
    /// The earlier of the idle deadline and `hard_deadline`: the entry is expired from then on.
    expires_at: u64,
    // The two counters apart: side by side, they are added as one vector (six instructions
    // where two scalar adds do).
    packets: u64,
    hard_deadline: u64,
    validated_at: u64,
    bytes: u64,
    deps: TagSet,
    actions: A,
}

/// The state of an occupied slot at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Live,
    Idle,
    Hard,
    Stale,
}

/// A core's flow cache over action lists `A`. See the module docs for the design.
///
/// `A` is what a hit returns: the simulation's result, a small fixed-capacity list. `A::default()`
/// fills unused slots (an empty list); nothing else is required of it. Keep it at most 72 bytes to
/// hold 10 million flows in 2 GiB.
pub struct FlowCache<A> {
    hasher: FlowHasher,
    buckets: Box<[Bucket]>,
    /// Per slot: hit since its bucket's last NRU reset (not 0). A byte rather than a bucket's bit:
    /// a hit sets it with one store.
    referenced: Box<[u8]>,
    keys: Box<[FlowKey]>,
    entries: Box<[Entry<A>]>,
    /// Per tag slot: the generation of its last invalidation.
    changed_at: Box<[u64]>,
    generation: u64,
    flushed_at: u64,
    idle_timeout: u64,
    hard_timeout: u64,
    len: usize,
    cursor: usize,
    /// Packets looked up since the last [`FlowCache::sweep_in_passing`] sweep.
    packets_since_sweep: usize,
    stats: FlowCacheStats,
}

impl<A> fmt::Debug for FlowCache<A> {
    /// Sizes, generations and counters; never the (possibly millions of) entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowCache")
            .field("capacity", &self.keys.len())
            .field("len", &self.len)
            .field("idle_timeout", &self.idle_timeout)
            .field("hard_timeout", &self.hard_timeout)
            .field("generation", &self.generation)
            .field("flushed_at", &self.flushed_at)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<A: Default> FlowCache<A> {
    /// Slots for a requested capacity: a whole number of buckets, at least one.
    fn slots_for(capacity: usize) -> usize {
        capacity.max(1).div_ceil(WAYS) * WAYS
    }

    /// Bytes per slot: key, entry, referenced byte and the slot's share of its bucket.
    pub const fn slot_bytes() -> usize {
        size_of::<FlowKey>() + size_of::<Entry<A>>() + 1 + size_of::<Bucket>() / WAYS
    }

    /// Bytes [`FlowCache::new`] allocates for `config`, computed without allocating.
    pub fn footprint(config: &FlowCacheConfig) -> usize {
        Self::slots_for(config.capacity) * Self::slot_bytes() + TAG_SLOTS * size_of::<u64>()
    }

    /// An empty cache, all of its memory allocated and written now. `hasher` is this core's.
    pub fn new(config: &FlowCacheConfig, hasher: FlowHasher) -> FlowCache<A> {
        Self::new_advised(config, hasher, &mut |_| {})
    }

    /// [`FlowCache::new`], handing each of the table's arrays to `advise` after it is allocated
    /// and before it is first written, so the caller can ask the kernel for transparent huge pages
    /// on it (pmd/ does: a 10-million-flow table on 4 KiB pages would cost a TLB miss per array
    /// touched by a lookup).
    pub fn new_advised(config: &FlowCacheConfig, hasher: FlowHasher, advise: &mut dyn FnMut(Region)) -> FlowCache<A> {
        let slots = Self::slots_for(config.capacity);
        FlowCache {
            hasher,
            buckets: filled(slots / WAYS, Bucket::default, advise),
            referenced: filled(slots, || 0, advise),
            keys: filled(slots, || FlowKey::VACANT, advise),
            entries: filled(slots, Entry::default, advise),
            changed_at: vec![0; TAG_SLOTS].into_boxed_slice(),
            generation: 0,
            flushed_at: 0,
            idle_timeout: config.idle_timeout,
            hard_timeout: config.hard_timeout,
            len: 0,
            cursor: 0,
            packets_since_sweep: 0,
            stats: FlowCacheStats::default(),
        }
    }

    /// Slots: the most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// Occupied slots, including invalidated or expired entries not yet reclaimed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The counters.
    pub fn stats(&self) -> &FlowCacheStats {
        &self.stats
    }

    /// The table's idle timeout, ns.
    pub fn idle_timeout(&self) -> u64 {
        self.idle_timeout
    }

    /// `now` for [`FlowCache::lookup_probed`], with the idle deadline a hit at `now` sets worked
    /// out once: a burst loop makes one per burst, not one per packet.
    #[inline]
    pub fn tick(&self, now: u64) -> Tick {
        Tick { now, idle_deadline: now.saturating_add(self.idle_timeout) }
    }

    /// The default hard timeout, ns.
    pub fn hard_timeout(&self) -> u64 {
        self.hard_timeout
    }

    /// The key's hash with this cache's seed: compute it once per packet and pass it to the
    /// `_hashed` methods (a burst loop hashes everything first, then looks up).
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash(key)
    }

    /// The two candidate buckets and the signature of a hash.
    #[inline]
    fn locate(&self, hash: u64) -> (usize, usize, u8) {
        let n = self.buckets.len() as u128;
        let b1 = ((u128::from(hash) * n) >> 64) as usize;
        let b2 = ((u128::from(hash.rotate_left(32)) * n) >> 64) as usize;
        // The hash's lowest byte: the bucket indexes come from the top bits of the hash and of
        // its rotation (bits 63 and 31 downward, as many as the bucket count needs), so it is
        // the byte they use last. 0 marks an empty way: a key's signature is never 0.
        let sig = (hash as u8).max(1);
        (b1, b2, sig)
    }

    #[inline(always)]
    fn find_in(&self, b: usize, sig: u8, key: &FlowKey) -> Option<usize> {
        let mut m = self.buckets[b].matches(sig);
        while m != 0 {
            let i = b * WAYS + Bucket::way_of(m);
            if self.keys[i] == *key {
                return Some(i);
            }
            m &= m - 1;
        }
        None
    }

    #[inline]
    fn find_at(&self, key: &FlowKey, b1: usize, b2: usize, sig: u8) -> Option<usize> {
        match self.find_in(b1, sig, key) {
            None if b2 != b1 => self.find_in(b2, sig, key),
            found => found,
        }
    }

    #[inline]
    fn find(&self, key: &FlowKey, hash: u64) -> Option<usize> {
        let (b1, b2, sig) = self.locate(hash);
        self.find_at(key, b1, b2, sig)
    }

    /// The state of occupied slot `i` at `now`. Pure: the caller brings `validated_at` up to date.
    #[inline]
    fn judge(&self, i: usize, now: u64) -> Verdict {
        let e = &self.entries[i];
        if now >= e.hard_deadline {
            Verdict::Hard
        } else if now >= e.expires_at {
            // Not the hard deadline: the idle one.
            Verdict::Idle
        } else if e.validated_at == self.generation {
            Verdict::Live
        } else {
            self.revalidate(e)
        }
    }

    /// Something was invalidated since `e` was last validated: did it touch `e`?
    #[cold]
    fn revalidate(&self, e: &Entry<A>) -> Verdict {
        if e.validated_at < self.flushed_at || e.deps.is_any() {
            return Verdict::Stale;
        }
        if e.deps.slots().any(|s| self.changed_at[usize::from(s)] > e.validated_at) {
            Verdict::Stale
        } else {
            Verdict::Live
        }
    }

    fn count(&mut self, v: Verdict) {
        let c = match v {
            Verdict::Live => &mut self.stats.evictions,
            Verdict::Idle => &mut self.stats.expired_idle,
            Verdict::Hard => &mut self.stats.expired_hard,
            Verdict::Stale => &mut self.stats.invalidated,
        };
        *c += 1;
    }

    /// Empties slot `i`, dropping its actions. Its key becomes [`FlowKey::VACANT`], which no
    /// lookup key equals: a slot holds a key exactly when it is occupied.
    fn free(&mut self, i: usize) {
        let b = &mut self.buckets[i / WAYS];
        let bit = 1u8 << (i % WAYS);
        b.set_sig(i % WAYS, 0);
        b.used &= !bit;
        self.referenced[i] = 0;
        self.keys[i] = FlowKey::VACANT;
        drop(mem::take(&mut self.entries[i].actions));
        self.len -= 1;
    }

    /// Looks `key` up at `now`; on a hit counts a packet of `bytes` and returns the actions.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now: u64, bytes: u32) -> Option<&A> {
        let hash = self.hash(key);
        self.lookup_hashed(key, hash, now, bytes)
    }

    /// [`FlowCache::lookup`] with the hash already computed by [`FlowCache::hash`].
    #[inline]
    pub fn lookup_hashed(&mut self, key: &FlowKey, hash: u64, now: u64, bytes: u32) -> Option<&A> {
        let found = self.find(key, hash);
        let tick = self.tick(now);
        self.conclude(found, &tick, bytes)
    }

    /// Where a lookup of `key` goes: its hash, two buckets and signature, computed once. A burst
    /// loop probes every packet first and prefetches [`FlowCache::bucket_addrs`], then finds each
    /// [`FlowCache::candidate`] and prefetches [`FlowCache::slot_addrs`], then looks each up with
    /// [`FlowCache::lookup_probed`] (module docs, "Cost of a lookup").
    #[inline(always)]
    pub fn probe(&self, key: &FlowKey) -> Probe {
        let hash = self.hash(key);
        let (b1, b2, sig) = self.locate(hash);
        Probe { b1: b1 as u32, b2: b2 as u32, sig }
    }

    /// The two buckets a probe reads (the same twice when they coincide), for a prefetch;
    /// nothing here reads through them.
    #[inline(always)]
    pub fn bucket_addrs(&self, probe: &Probe) -> [*const u8; 2] {
        let at = |b: u32| self.buckets.as_ptr().wrapping_add(b as usize).cast::<u8>();
        [at(probe.b1), at(probe.b2)]
    }

    /// The slot a lookup of `probe` would try first: the first occupied way, in either bucket,
    /// with the probe's signature. Reads the buckets only; [`NO_SLOT`] when no way matches.
    #[inline(always)]
    pub fn candidate(&self, probe: &Probe) -> usize {
        let first = |b: u32| {
            let m = self.buckets.get(b as usize).map_or(0, |bucket| bucket.first_match(probe.sig));
            if m != 0 {
                b as usize * WAYS + Bucket::way_of(m)
            } else {
                NO_SLOT
            }
        };
        match first(probe.b1) {
            NO_SLOT => first(probe.b2),
            slot => slot,
        }
    }

    /// The memory a hit on `slot` reads: its key, and every cache line of its entry (for a
    /// prefetch, like [`FlowCache::bucket_addrs`]; an entry of up to 136 bytes spans at most three
    /// lines: its first byte, the byte 64 further and its last byte name them all). Any slot
    /// number is fine: nothing reads through the addresses.
    #[inline(always)]
    pub fn slot_addrs(&self, slot: usize) -> [*const u8; 4] {
        let entry = self.entries.as_ptr().wrapping_add(slot).cast::<u8>();
        let size = size_of::<Entry<A>>();
        [
            self.keys.as_ptr().wrapping_add(slot).cast(),
            entry,
            entry.wrapping_add(64.min(size - 1)),
            entry.wrapping_add(size - 1),
        ]
    }

    /// [`FlowCache::lookup`] of `key`, whose probe is `probe`, trying slot `hint` (from
    /// [`FlowCache::candidate`], possibly stale: the table may have changed since; any number,
    /// [`NO_SLOT`] for none) before searching: the same result whatever the hint, cheaper when it
    /// is right.
    #[inline(always)]
    pub fn lookup_probed(&mut self, key: &FlowKey, probe: &Probe, hint: usize, tick: &Tick, bytes: u32) -> Option<&A> {
        // An empty slot holds the vacant key, which equals no key: no need to ask the bucket.
        let found = if self.keys.get(hint) == Some(key) {
            Some(hint)
        } else {
            self.find_at(key, probe.b1 as usize, probe.b2 as usize, probe.sig)
        };
        self.conclude(found, tick, bytes)
    }

    /// The end of a lookup that found slot `found` (or nothing): count it, refresh or reclaim the
    /// entry. The common case, a live entry validated at the current generation, is checked inline
    /// ([`FlowCache::judge`] in short); the rest out of line.
    #[inline(always)]
    fn conclude(&mut self, found: Option<usize>, tick: &Tick, bytes: u32) -> Option<&A> {
        let Some(i) = found else {
            self.stats.misses += 1;
            return None;
        };
        let generation = self.generation;
        let e = &self.entries[i];
        if tick.now >= e.expires_at || e.validated_at != generation {
            return self.conclude_judged(i, tick, bytes);
        }
        Some(self.hit(i, tick, bytes))
    }

    /// [`FlowCache::conclude`] for an entry that is not plainly live: judge it, then refresh it
    /// (it was revalidated) or reclaim it.
    #[cold]
    #[inline(never)]
    fn conclude_judged(&mut self, i: usize, tick: &Tick, bytes: u32) -> Option<&A> {
        match self.judge(i, tick.now) {
            Verdict::Live => {
                // Revalidated: nothing it depends on changed since.
                self.entries[i].validated_at = self.generation;
                Some(self.hit(i, tick, bytes))
            }
            v => {
                self.count(v);
                self.free(i);
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Counts a hit of `bytes` on live slot `i`, validated at the current generation: its
    /// counters, its idle deadline, its referenced byte.
    #[inline(always)]
    fn hit(&mut self, i: usize, tick: &Tick, bytes: u32) -> &A {
        self.stats.hits += 1;
        if let Some(r) = self.referenced.get_mut(i) {
            *r = 1;
        }
        let e = &mut self.entries[i];
        e.expires_at = tick.idle_deadline.min(e.hard_deadline);
        e.packets += 1;
        e.bytes += u64::from(bytes);
        &e.actions
    }

    /// The live entry for `key` at `now`, read only: no counter moves, nothing is reclaimed.
    pub fn get(&self, key: &FlowKey, now: u64) -> Option<FlowEntryRef<'_, A>> {
        let i = self.find(key, self.hash(key))?;
        (self.judge(i, now) == Verdict::Live).then(|| {
            let e = &self.entries[i];
            FlowEntryRef {
                actions: &e.actions,
                deps: &e.deps,
                packets: e.packets,
                bytes: e.bytes,
                idle_deadline: e.expires_at,
                hard_deadline: e.hard_deadline,
            }
        })
    }

    /// Installs `actions` for `key`, depending on `deps`, with the default hard timeout.
    pub fn insert(&mut self, key: &FlowKey, actions: A, deps: &TagSet, now: u64) -> Installed<'_, A> {
        let hash = self.hash(key);
        let hard = self.hard_timeout;
        self.insert_hashed(key, hash, actions, deps, now, hard)
    }

    /// Installs `actions` for `key` (whose hash is `hash`), depending on `deps`, expiring at the latest
    /// `hard_timeout` ns after `now` ([`NEVER`] for no deadline; the idle timeout applies regardless).
    ///
    /// An entry with the same key is replaced in place. Otherwise the entry takes a free slot in the
    /// emptier of its two buckets, or evicts (see the module docs). Never fails, never allocates.
    pub fn insert_hashed(
        &mut self,
        key: &FlowKey,
        hash: u64,
        actions: A,
        deps: &TagSet,
        now: u64,
        hard_timeout: u64,
    ) -> Installed<'_, A> {
        let (b1, b2, sig) = self.locate(hash);
        let (i, outcome) = match self.find_at(key, b1, b2, sig) {
            Some(i) => match self.judge(i, now) {
                Verdict::Live => {
                    self.stats.replaced += 1;
                    (i, InsertOutcome::Replaced)
                }
                v => {
                    self.count(v);
                    (i, InsertOutcome::Reclaimed)
                }
            },
            None => match self.vacant(b1, b2) {
                Some(i) => {
                    self.len += 1;
                    (i, InsertOutcome::Vacant)
                }
                None => {
                    let i = self.victim(b1, b2);
                    let v = self.judge(i, now);
                    self.count(v);
                    (i, if v == Verdict::Live { InsertOutcome::Evicted } else { InsertOutcome::Reclaimed })
                }
            },
        };
        self.keys[i] = *key;
        let b = &mut self.buckets[i / WAYS];
        let bit = 1u8 << (i % WAYS);
        b.set_sig(i % WAYS, sig);
        b.used |= bit;
        self.referenced[i] = 0;
        self.stats.inserts += 1;
        if deps.is_any() {
            self.stats.tags_overflow += 1;
        }
        let e = &mut self.entries[i];
        let hard_deadline = now.saturating_add(hard_timeout);
        *e = Entry {
            expires_at: now.saturating_add(self.idle_timeout).min(hard_deadline),
            hard_deadline,
            validated_at: self.generation,
            packets: 0,
            bytes: 0,
            deps: *deps,
            actions,
        };
        Installed { actions: &e.actions, outcome }
    }

    /// A free slot in the emptier of the two buckets (the first on a tie).
    fn vacant(&self, b1: usize, b2: usize) -> Option<usize> {
        let f1 = self.buckets[b1].free();
        let f2 = if b2 == b1 { 0 } else { self.buckets[b2].free() };
        let b = match (f1, f2) {
            (0, 0) => return None,
            _ if f1 >= f2 => b1,
            _ => b2,
        };
        Some(b * WAYS + self.buckets[b].used.trailing_ones() as usize)
    }

    /// The eviction victim when both buckets are full (not-recently-used from the clock hand).
    fn victim(&mut self, b1: usize, b2: usize) -> usize {
        for b in [b1, b2] {
            let unreferenced = !self.referenced_mask(b);
            if unreferenced != 0 {
                let bucket = &mut self.buckets[b];
                let hand = u32::from(bucket.hand);
                let w = (hand + unreferenced.rotate_right(hand).trailing_zeros()) % WAYS as u32;
                bucket.hand = ((w + 1) % WAYS as u32) as u8;
                return b * WAYS + w as usize;
            }
        }
        for b in [b1, b2] {
            self.referenced[b * WAYS..(b + 1) * WAYS].fill(0);
        }
        let bucket = &mut self.buckets[b1];
        let w = usize::from(bucket.hand);
        bucket.hand = ((w + 1) % WAYS) as u8;
        b1 * WAYS + w
    }

    /// Bucket `b`'s referenced ways as a mask (bit `w` for way `w`).
    fn referenced_mask(&self, b: usize) -> u8 {
        let bytes = &self.referenced[b * WAYS..(b + 1) * WAYS];
        bytes.iter().enumerate().fold(0, |mask, (w, &r)| if r != 0 { mask | 1 << w } else { mask })
    }

    /// Removes the entry for `key`, live or not. Returns whether there was one.
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        match self.find(key, self.hash(key)) {
            Some(i) => {
                self.stats.removed += 1;
                self.free(i);
                true
            }
            None => false,
        }
    }

    /// Invalidates every entry that depended on one of `devices` (tags from the snapshot compiler's
    /// diff of the old and new snapshot): from now on none of them matches. Costs O(`devices.len()`); the slots are reclaimed lazily (module docs). Call it before
    /// simulating anything against the snapshot that changed them.
    pub fn invalidate_devices(&mut self, devices: &[DeviceTag]) {
        if devices.is_empty() {
            return;
        }
        self.generation += 1;
        for d in devices {
            self.changed_at[usize::from(d.slot())] = self.generation;
        }
    }

    /// Invalidates every entry. O(1); the slots are reclaimed lazily.
    pub fn invalidate_all(&mut self) {
        self.generation += 1;
        self.flushed_at = self.generation;
    }

    /// Reclaims expired and invalidated entries among the next `budget` slots (at most the capacity)
    /// from where the previous call stopped, and returns how many it reclaimed. Live entries it passes
    /// are revalidated, so their next hit takes the one-compare path. Run it off the packet path,
    /// for example once per poll-loop iteration with a small budget: `capacity / budget` calls sweep
    /// the whole table.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let n = self.keys.len();
        let mut reclaimed = 0;
        for _ in 0..budget.min(n) {
            let i = self.cursor;
            self.cursor = if i + 1 == n { 0 } else { i + 1 };
            if self.buckets[i / WAYS].used & (1 << (i % WAYS)) == 0 {
                continue;
            }
            match self.judge(i, now) {
                Verdict::Live => self.entries[i].validated_at = self.generation,
                v => {
                    self.count(v);
                    self.free(i);
                    reclaimed += 1;
                }
            }
        }
        reclaimed
    }

    /// The sweep of a worker that may never idle: after every [`SWEEP_EVERY_PACKETS`] packets
    /// (`packets` more were just looked up), [`FlowCache::expire`] checks the next
    /// [`SWEEP_SLOTS`] slots. Driven by packets, not time, so its cost per packet is a fixed
    /// 1/32 of a slot check and the same in every run; at 10 Mpps it passes over 10 million slots in
    /// about 32 seconds, inside the default 60 s idle timeout. Returns how many entries it reclaimed.
    #[inline]
    pub fn sweep_in_passing(&mut self, packets: usize, now: u64) -> usize {
        self.packets_since_sweep += packets;
        if self.packets_since_sweep < SWEEP_EVERY_PACKETS {
            return 0;
        }
        self.sweep_due(now)
    }

    /// [`FlowCache::sweep_in_passing`]'s sweeps, out of line (a few per million packets).
    #[cold]
    #[inline(never)]
    fn sweep_due(&mut self, now: u64) -> usize {
        let sweeps = self.packets_since_sweep / SWEEP_EVERY_PACKETS;
        self.packets_since_sweep %= SWEEP_EVERY_PACKETS;
        self.expire(now, sweeps.saturating_mul(SWEEP_SLOTS))
    }
}

/// Where one of the table's arrays lies, for [`FlowCache::new_advised`]: an address range, not a
/// pointer to read through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The array's first byte.
    pub addr: usize,
    /// Its size in bytes.
    pub len: usize,
}

/// `n` values from `value` in an array allocated once; `advise` sees its memory before any of it
/// is written.
fn filled<T>(n: usize, value: impl FnMut() -> T, advise: &mut dyn FnMut(Region)) -> Box<[T]> {
    let mut array = Vec::with_capacity(n);
    advise(Region { addr: array.as_ptr() as usize, len: n * size_of::<T>() });
    array.extend(std::iter::repeat_with(value).take(n));
    // Exactly `n` were reserved: the box keeps the allocation advised above.
    array.into_boxed_slice()
}

/// Packets between two of [`FlowCache::sweep_in_passing`]'s sweeps.
pub const SWEEP_EVERY_PACKETS: usize = 2048;
/// Slots one of [`FlowCache::sweep_in_passing`]'s sweeps checks.
pub const SWEEP_SLOTS: usize = 64;

#[cfg(test)]
mod tests;
