//! Flow keys and the per-core flow cache.
//!
//! A worker turns each parsed frame into a [`FlowKey`] (64 bytes: ingress, L2, L3, L4 and the
//! fragment class) and looks it up in its own [`FlowCache`]. A hit returns the cached action list and
//! counts the packet; a miss is simulated on the same core and the result installed with the set of
//! device tags it depended on ([`TagSet`]), so that a topology change invalidates exactly those flows
//! ([`FlowCache::invalidate_devices`]).
//!
//! | file | what |
//! | --- | --- |
//! | `key.rs` | [`FlowKey`]: layout, [`FlowKey::reverse`], [`FlowKey::symmetric_hash`] (the NIC's symmetric RSS hash, for choosing the core that owns connection state) |
//! | `frame.rs` | [`FlowKey::from_frame`] / [`FlowKey::set_from_frame`]: the key straight from a frame's bytes, common frames (Ethernet, one tag, IPv4 without options or IPv6 without extension headers, TCP/UDP/ICMP) on a fast path, anything else through [`Headers::parse`](crate::wire::Headers::parse); equal to it on every input (proptest) |
//! | `hash.rs` | [`FlowHasher`]: the seeded, per-core hash that indexes the table |
//! | `device.rs` | [`DeviceTag`], [`TagSet`]: what a flow depended on (16 tags in 32 bytes) |
//! | `cache.rs` | [`FlowCache`]: two-choice 8-way buckets, NRU eviction, idle and hard expiry, generation-based invalidation, counters |
//!
//! Everything here is a pure function of its inputs and the cache's own state: time is the caller's
//! `now` (nanoseconds), randomness the caller's seed. Nothing allocates after [`FlowCache::new`]
//! (`tests/flow_cache_alloc.rs` checks it with a counting allocator).
//!
//! # Example
//!
//! ```
//! use flowtable::flow::{DeviceTag, TagSet, FlowCache, FlowCacheConfig, FlowHasher, FlowKey};
//! use flowtable::wire::Headers;
//!
//! // An ICMP echo request, 10.0.0.1 -> 10.0.0.2.
//! let frame = [
//!     0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c,
//!     0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x66, 0xde, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x08, 0x00,
//!     0xf7, 0x85, 0x00, 0x77, 0x00, 0x03,
//! ];
//! let config = FlowCacheConfig { capacity: 1024, ..FlowCacheConfig::default() };
//! let mut cache: FlowCache<[u16; 4]> = FlowCache::new(&config, FlowHasher::new(7));
//!
//! let key = FlowKey::from_headers(1, &Headers::parse(&frame).unwrap());
//! // What a worker does when it needs only the key: the same key, without building the headers.
//! assert_eq!(FlowKey::from_frame(1, &frame), Ok(key));
//! let now = 1_000;
//! assert!(cache.lookup(&key, now, 42).is_none());
//! // Miss: simulate (here: output on port 3, having crossed devices 10 and 11), install, execute.
//! let deps = TagSet::from_tags(&[DeviceTag(10), DeviceTag(11)]);
//! let installed = cache.insert(&key, [3, 0, 0, 0], &deps, now);
//! assert_eq!(installed.actions, &[3, 0, 0, 0]);
//! assert_eq!(cache.lookup(&key, now + 1, 42), Some(&[3, 0, 0, 0]));
//!
//! // The reply belongs to the same connection, hence to the same owning core.
//! assert_eq!(key.reverse().symmetric_hash(), key.symmetric_hash());
//!
//! // Device 11 changes: the flow stops matching.
//! cache.invalidate_devices(&[DeviceTag(11)]);
//! assert!(cache.lookup(&key, now + 2, 42).is_none());
//! assert_eq!((cache.stats().hits, cache.stats().invalidated), (1, 1));
//! ```

mod cache;
mod device;
mod frame;
mod hash;
mod key;

pub use self::cache::{
    FlowCache, FlowCacheConfig, FlowCacheStats, FlowEntryRef, InsertOutcome, Installed, Probe, Region, Tick, NEVER,
    NO_SLOT, SWEEP_EVERY_PACKETS, SWEEP_SLOTS, WAYS,
};
pub use self::device::{DeviceTag, TagSet, TAG_SLOTS};
pub use self::hash::{FlowHasher, ShortHasher};
pub use self::key::{FlowKey, KeyL4};
