//! Per-core state of the simulation: the neighbour cache (ARP / NDP), the bridges' learned MACs,
//! the tracked connections and the egress MTUs.

use core::net::IpAddr;

use super::conntrack::ConnTrack;
use super::learning::{Learning, Outbox};
use super::mac::MacTable;
use super::tunnel::{TunnelTemplate, TUNNEL_TEMPLATES, UNDERLAY_PORT};
use crate::flow::ShortHasher;
use crate::ratelimit::TokenBucket;
use crate::topology::{DeviceId, DeviceSet, PortId, Snapshot};
use crate::wire::EthernetAddress;

/// Ways per bucket of the neighbour cache.
const WAYS: usize = 4;

/// Most DPDK ports [`CoreState`] keeps an MTU for; others use the default.
pub const MAX_DPDK_PORTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    port: PortId,
    ip: IpAddr,
    mac: EthernetAddress,
    /// Valid while `now < expires`; 0 marks a free slot.
    expires: u64,
    /// From then on, an entry in use is polled ([`NeighbourCache::due_polls`]).
    stale_at: u64,
    /// When the last poll went out (0: none since it was learned).
    polled_at: u64,
    /// Whether a forwarding decision used the entry since it was learned.
    in_use: bool,
}

const FREE: Entry = Entry {
    port: PortId(u32::MAX),
    ip: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
    mac: EthernetAddress([0; 6]),
    expires: 0,
    stale_at: 0,
    polled_at: 0,
    in_use: false,
};

/// Destinations whose last request time [`NeighbourCache::may_ask`] keeps.
const ASKED_SLOTS: usize = 1 << u8::BITS;

/// What [`NeighbourCache::ask`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Send the request (recorded as asked).
    Send,
    /// The destination was asked for less than a resolution interval ago: wait for the answer.
    Wait,
    /// A new destination, and the core's request budget is spent: nothing is sent or recorded.
    OverBudget,
}

/// The default request budget of a core ([`NeighbourCache::set_request_budget`]): a thousand
/// new destinations a second, a hundred at once, is far above what a gateway's router ports meet
/// in normal work (each resolved neighbour is then kept for its lifetime and refreshed by polls)
/// and far below a flood.
pub const DEFAULT_REQUESTS_PER_SEC: u32 = 1000;
/// See [`DEFAULT_REQUESTS_PER_SEC`].
pub const DEFAULT_REQUEST_BURST: u32 = 100;

/// When a destination was last asked for, and until when it counts as having failed to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Asked {
    port: PortId,
    ip: IpAddr,
    at: u64,
    failed_until: u64,
}

const NEVER_ASKED: Asked = Asked { port: PortId(u32::MAX), ip: FREE.ip, at: 0, failed_until: 0 };

/// A neighbour a forwarding decision used ([`NeighbourCache::use_entry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InUse {
    /// Its MAC.
    pub mac: EthernetAddress,
    /// Until when what was decided with it may be kept (a cached copy of the MAC): while the entry
    /// is fresh, the moment it goes stale; after that, its expiry.
    pub recheck_at: u64,
}

/// A neighbour in use whose entry went stale: ask it again, point to point, at its known MAC
/// (RFC 1122 2.3.2.1's unicast poll; RFC 4861 7.3.3's probe for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// The router port (or the underlay) it was learned on.
    pub port: PortId,
    /// Its address.
    pub ip: IpAddr,
    /// The MAC it had.
    pub mac: EthernetAddress,
}

impl Poll {
    /// A placeholder for the caller's array of polls.
    pub const NONE: Poll = Poll { port: PortId(u32::MAX), ip: FREE.ip, mac: FREE.mac };
}

/// A fixed-capacity, set-associative cache of next-hop MACs keyed by (router port, IP address), for
/// IPv4 (ARP) and IPv6 (NDP) alike. Allocates only in [`NeighbourCache::new`]. A full bucket
/// replaces its expired or soonest-expiring entry.
///
/// An entry is fresh for three quarters of its lifetime, then stale. A stale entry that forwarding
/// used ([`NeighbourCache::use_entry`]) is polled, point to point, every twentieth of the lifetime
/// until it expires ([`NeighbourCache::due_polls`]); the answer refreshes it before the flows
/// through it have to wait for a new resolution. An entry nothing used just expires (MidoNet's
/// `arp_stale` / `arp_expiration`, Linux's STALE / PROBE states, on the same idea).
#[derive(Debug, Clone)]
pub struct NeighbourCache {
    slots: Box<[Entry]>,
    mask: usize,
    lifetime: u64,
    /// Fresh for this long after it was learned.
    fresh_for: u64,
    /// Between two polls of one stale entry.
    poll_interval: u64,
    /// The next slot [`NeighbourCache::due_polls`] reads.
    poll_cursor: usize,
    learned: u64,
    /// Bumped by every change (learn, forget, expiry, retain): what a copy of an entry made at
    /// one version stays valid until ([`NeighbourCache::version`]).
    version: u64,
    /// What this core learned, for the others (sim/learning.rs).
    pub(super) outbox: Outbox,
    /// Router ports where a neighbour's MAC changed since the last [`NeighbourCache::take_changed`]
    /// (live or expired, while its entry is still held): the cached flows through them carry the
    /// old MAC, and may outlive the entry.
    changed: DeviceSet,
    /// When each destination being resolved was last asked for ([`NeighbourCache::may_ask`]).
    asked: Box<[Asked; ASKED_SLOTS]>,
    /// The least time between two requests for one destination.
    ask_interval: u64,
    /// Requests for destinations on router ports, all destinations together (RFC 6583 section 6): a
    /// scan of a large subnet, each address asked for once, must not become a flood of requests
    /// (an IPv6 /64 has 2^64 addresses; a bridge floods each request to every host).
    requests: TokenBucket,
    /// Requests [`NeighbourCache::may_ask`] refused because `requests` was empty.
    requests_limited: u64,
    /// The core's secret-seeded hash of (port, address).
    hasher: ShortHasher,
}

impl NeighbourCache {
    /// A cache of at least `capacity` entries (rounded up to a power of two, at least one bucket);
    /// an entry learned at `now` is valid until `now + lifetime`; one destination is asked for at
    /// most once per `ask_interval` ([`NeighbourCache::may_ask`]); `hash_seed` keys the buckets.
    pub fn new(capacity: usize, lifetime: u64, ask_interval: u64, hash_seed: u64) -> NeighbourCache {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        NeighbourCache {
            slots: vec![FREE; buckets * WAYS].into_boxed_slice(),
            mask: buckets - 1,
            lifetime,
            fresh_for: lifetime / 4 * 3,
            poll_interval: (lifetime / 20).max(1),
            poll_cursor: 0,
            learned: 0,
            version: 0,
            outbox: Outbox::default(),
            changed: DeviceSet::new(),
            asked: Box::new([NEVER_ASKED; ASKED_SLOTS]),
            ask_interval,
            requests: TokenBucket::new(DEFAULT_REQUESTS_PER_SEC, DEFAULT_REQUEST_BURST, 0),
            requests_limited: 0,
            hasher: ShortHasher::new(hash_seed),
        }
    }

    /// At most `per_sec` requests a second (bursts of `burst`) for destinations on router ports,
    /// all destinations together; 0 is taken as 1 ([`TokenBucket::new`]). The underlay's next
    /// hops (our own tunnels' way out) and the polls of neighbours in use are not counted:
    /// what is already known is kept first (RFC 6583 section 6).
    pub fn set_request_budget(&mut self, per_sec: u32, burst: u32) {
        self.requests = TokenBucket::new(per_sec, burst, 0);
    }

    /// Requests refused because the budget ([`NeighbourCache::set_request_budget`]) was spent.
    pub fn requests_limited(&self) -> u64 {
        self.requests_limited
    }

    /// Number of entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn bucket(&self, port: PortId, ip: IpAddr) -> core::ops::Range<usize> {
        let b = self.key_hash(port, ip) as usize & self.mask;
        b * WAYS..(b + 1) * WAYS
    }

    /// The core's keyed hash of a destination: buckets take its low bits, per-destination tables
    /// its top byte ([`NeighbourCache::destination_slot`]).
    fn key_hash(&self, port: PortId, ip: IpAddr) -> u64 {
        match ip {
            IpAddr::V4(a) => self.hasher.hash2(u64::from(u32::from(a)), u64::from(port.0)),
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.hasher.hash3((bits >> 64) as u64, bits as u64, u64::from(port.0) | 1 << 32)
            }
        }
    }

    /// A destination's slot in a 256-entry per-destination table beside the cache (the asked
    /// table here, the pipeline's resolution queue counts): the top byte of the keyed hash.
    pub fn destination_slot(&self, port: PortId, ip: IpAddr) -> u8 {
        (self.key_hash(port, ip) >> 56) as u8
    }

    /// The least time between two requests for one destination: a frame held for a next hop is
    /// simulated again (and its next hop asked for again) this often.
    pub fn ask_interval(&self) -> u64 {
        self.ask_interval
    }

    /// Whether a request (ARP or neighbour solicitation) for `ip` on `port` may go out at `now`,
    /// recording it if so ([`NeighbourCache::ask`] in short).
    pub fn may_ask(&mut self, port: PortId, ip: IpAddr, now: u64) -> bool {
        self.ask(port, ip, now) == Ask::Send
    }

    /// Whether a request (ARP or neighbour solicitation) for `ip` on `port` may go out at `now`,
    /// recording it if so: at most one per destination per [`CoreConfig::resolution_interval`]
    /// (RFC 1122 2.3.2.1: a host MUST NOT flood ARP requests for one address, recommended at most
    /// one a second; RFC 4861's RetransTimer is a second too). Packets to a destination being
    /// resolved still wait for it; only the requests are spared. Destinations share a small
    /// direct-mapped table: a collision forgets the other's time, which only allows one request
    /// more. On router ports, requests for destinations not being resolved also share a budget
    /// ([`NeighbourCache::set_request_budget`]): one over it is [`Ask::OverBudget`], not recorded,
    /// so the next packet to that destination may ask again.
    pub fn ask(&mut self, port: PortId, ip: IpAddr, now: u64) -> Ask {
        let interval = self.ask_interval;
        let i = usize::from(self.destination_slot(port, ip));
        let slot = &self.asked[i];
        if slot.port == port && slot.ip == ip && now < slot.at.saturating_add(interval) {
            return Ask::Wait;
        }
        if port != UNDERLAY_PORT && !self.requests.take(now) {
            self.requests_limited += 1;
            return Ask::OverBudget;
        }
        self.asked[i] = Asked { port, ip, at: now, failed_until: 0 };
        Ask::Send
    }

    /// Records that `ip` on `port` was asked for and did not answer before a packet waiting for
    /// it gave up: for one resolution interval from `now`, packets to it are answered unreachable
    /// at once ([`NeighbourCache::has_failed`]) rather than held, as Linux's FAILED state does;
    /// after that the next packet asks again.
    pub fn mark_failed(&mut self, port: PortId, ip: IpAddr, now: u64) {
        let until = now.saturating_add(self.ask_interval.max(1));
        let slot = self.asked_slot(port, ip);
        if slot.port != port || slot.ip != ip {
            *slot = Asked { port, ip, at: now, failed_until: until };
        } else {
            slot.failed_until = until;
        }
    }

    /// Whether `ip` on `port` failed to answer within the last resolution interval
    /// ([`NeighbourCache::mark_failed`]).
    pub fn has_failed(&self, port: PortId, ip: IpAddr, now: u64) -> bool {
        let slot = &self.asked[usize::from(self.destination_slot(port, ip))];
        slot.port == port && slot.ip == ip && now < slot.failed_until
    }

    fn asked_slot(&mut self, port: PortId, ip: IpAddr) -> &mut Asked {
        let i = usize::from(self.destination_slot(port, ip));
        &mut self.asked[i]
    }

    /// Records that `ip` on `port` is at `mac`, valid for the cache's lifetime from `now`, and
    /// tells the other cores when replicating (sim/learning.rs).
    pub fn learn(&mut self, port: PortId, ip: IpAddr, mac: EthernetAddress, now: u64) {
        self.outbox.record(Learning::Neighbour { port, ip, mac });
        self.store(port, ip, mac, now);
    }

    /// What an ARP packet or an NDP message from `ip` at `mac` may do to the cache (RFC 826's
    /// merge, RFC 4861 7.2.3 / 7.2.5): a live entry of `ip` is updated; a new one is created
    /// only when `create` (the packet was addressed to us: a request for our address, the answer
    /// to ours), so that a host cannot fill the cache by announcing addresses nobody asked for.
    pub fn merge(&mut self, port: PortId, ip: IpAddr, mac: EthernetAddress, create: bool, now: u64) {
        if create || self.lookup(port, ip, now).is_some() {
            self.learn(port, ip, mac, now);
        }
    }

    /// [`NeighbourCache::learn`] of what another core learned: not told again.
    pub fn learn_from_peer(&mut self, port: PortId, ip: IpAddr, mac: EthernetAddress, now: u64) {
        self.store(port, ip, mac, now);
    }

    fn store(&mut self, port: PortId, ip: IpAddr, mac: EthernetAddress, now: u64) {
        self.learned = self.learned.wrapping_add(1);
        self.version = self.version.wrapping_add(1);
        let range = self.bucket(port, ip);
        let bucket = &mut self.slots[range];
        let expires = now.saturating_add(self.lifetime).max(1);
        let new =
            Entry { port, ip, mac, expires, stale_at: now.saturating_add(self.fresh_for), polled_at: 0, in_use: false };
        if let Some(e) = bucket.iter_mut().find(|e| e.expires != 0 && e.port == port && e.ip == ip) {
            // A neighbour at a new MAC (a VM recreated with the same address, a replaced
            // upstream router): the flows that send to it must not wait for their hard timeout.
            // The underlay's tunnel templates check the version instead.
            if e.mac != mac && port != UNDERLAY_PORT {
                self.changed.insert(DeviceId::Port(port));
            }
            *e = new;
            return;
        }
        // A free or expired slot, else the one that expires first.
        let victim = bucket.iter_mut().min_by_key(|e| if e.expires <= now { 0 } else { e.expires });
        if let Some(e) = victim {
            // A live entry flows send to, evicted: they must ask again rather than go on unpolled.
            if e.in_use && e.expires > now && e.port != UNDERLAY_PORT {
                self.changed.insert(DeviceId::Port(e.port));
            }
            *e = new;
        }
    }

    /// The router ports where a neighbour changed its MAC since the last call (saturated:
    /// too many to list), emptied: the caller invalidates the cached flows that depend on them.
    pub fn take_changed(&mut self) -> DeviceSet {
        core::mem::take(&mut self.changed)
    }

    /// Whether a neighbour changed its MAC since the last [`take_changed`](Self::take_changed).
    #[inline(always)]
    pub fn has_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    /// How many times [`learn`](Self::learn) was called: a change tells the resolution queue to
    /// look at its held packets again.
    pub fn learn_count(&self) -> u64 {
        self.learned
    }

    /// Changes so far: an entry read at one version is unchanged while the version is, until
    /// it expires ([`NeighbourCache::expiry`]). Per-core copies (tunnel headers) check it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The slot of the entry of `ip` on `port`, if learned and not expired at `now`.
    fn live_slot(&self, port: PortId, ip: IpAddr, now: u64) -> Option<usize> {
        self.bucket(port, ip).find(|&i| {
            let e = &self.slots[i];
            e.port == port && e.ip == ip && now < e.expires
        })
    }

    /// The MAC of `ip` on `port`, if learned and not expired at `now`.
    pub fn lookup(&self, port: PortId, ip: IpAddr, now: u64) -> Option<EthernetAddress> {
        self.live_slot(port, ip, now).map(|i| self.slots[i].mac)
    }

    /// [`NeighbourCache::lookup`] for a forwarding decision: marks the entry in use, so that it is
    /// polled once stale, and says until when the decision may be kept.
    pub fn use_entry(&mut self, port: PortId, ip: IpAddr, now: u64) -> Option<InUse> {
        let i = self.live_slot(port, ip, now)?;
        let e = &mut self.slots[i];
        e.in_use = true;
        let recheck_at = if now < e.stale_at { e.stale_at } else { e.expires };
        Some(InUse { mac: e.mac, recheck_at })
    }

    /// Between two polls of a stale entry in use (a twentieth of the lifetime): how often the
    /// caller should ask for [`NeighbourCache::due_polls`].
    pub fn poll_interval(&self) -> u64 {
        self.poll_interval
    }

    /// Goes on with the pass over the cache: reads up to `slots` slots from where the last call
    /// stopped, filling `polls` with the entries due a poll at `now` (stale, in use, valid, not
    /// polled for [`NeighbourCache::poll_interval`]) and marking them polled. Stops early when
    /// `polls` is full. Returns how many it filled and whether the pass reached the end (the next
    /// call starts a new one). Bounded work per call, so a large cache never stalls a worker;
    /// allocation-free.
    ///
    /// An entry in use that expired unanswered is freed on the way and its router port marked
    /// changed ([`NeighbourCache::take_changed`]): the flows cached with its MAC must not go on
    /// sending to a neighbour that stopped answering until their hard timeout (up to a lifetime
    /// more), but miss, ask again, and answer host unreachable.
    pub fn due_polls(&mut self, now: u64, polls: &mut [Poll], slots: usize) -> (usize, bool) {
        let mut n = 0;
        for _ in 0..slots.min(self.slots.len()) {
            if n == polls.len() {
                return (n, false);
            }
            let e = &mut self.slots[self.poll_cursor];
            if e.in_use && e.expires != 0 && e.expires <= now {
                // The underlay's tunnel templates check the entry's expiry themselves.
                if e.port != UNDERLAY_PORT {
                    self.changed.insert(DeviceId::Port(e.port));
                }
                *e = FREE;
                self.version = self.version.wrapping_add(1);
            }
            let due = e.in_use
                && e.stale_at <= now
                && now < e.expires
                && (e.polled_at == 0 || e.polled_at.saturating_add(self.poll_interval) <= now);
            if due {
                e.polled_at = now.max(1);
                polls[n] = Poll { port: e.port, ip: e.ip, mac: e.mac };
                n += 1;
            }
            self.poll_cursor += 1;
            if self.poll_cursor == self.slots.len() {
                self.poll_cursor = 0;
                return (n, true);
            }
        }
        (n, false)
    }

    /// Forgets the entry of `ip` on `port`.
    pub fn forget(&mut self, port: PortId, ip: IpAddr) {
        self.version = self.version.wrapping_add(1);
        let range = self.bucket(port, ip);
        for e in &mut self.slots[range] {
            if e.port == port && e.ip == ip {
                *e = FREE;
            }
        }
    }

    /// Frees every entry expired at `now`; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        for e in self.slots.iter_mut().filter(|e| e.expires != 0 && e.expires <= now) {
            *e = FREE;
            n += 1;
        }
        if n > 0 {
            self.version = self.version.wrapping_add(1);
        }
        n
    }

    /// Frees every entry whose port `keep` refuses; returns how many. Allocation-free. Forgets
    /// which ports' neighbours changed (their ids belong to the snapshot being replaced; the
    /// pipeline takes them right after every simulation, so none are waiting).
    pub fn retain_ports(&mut self, mut keep: impl FnMut(PortId) -> bool) -> usize {
        self.changed = DeviceSet::new();
        let mut n = 0;
        for e in self.slots.iter_mut().filter(|e| e.expires != 0) {
            if !keep(e.port) {
                *e = FREE;
                n += 1;
            }
        }
        if n > 0 {
            self.version = self.version.wrapping_add(1);
        }
        n
    }

    /// Number of entries valid at `now`.
    pub fn len(&self, now: u64) -> usize {
        self.slots.iter().filter(|e| now < e.expires).count()
    }
}

/// What [`CoreState::new`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreConfig {
    /// Neighbour cache entries.
    pub neighbour_capacity: usize,
    /// How long a learned neighbour stays valid, in the caller's clock units.
    pub neighbour_lifetime: u64,
    /// The MTU of a DPDK port without its own ([`CoreState::set_mtu`]): IP packet bytes, not frame bytes.
    pub default_mtu: u16,
    /// The least time between two ARP requests or neighbour solicitations for one destination
    /// on one core, in the caller's clock units ([`NeighbourCache::may_ask`]; RFC 1122 2.3.2.1
    /// recommends at most one a second).
    pub resolution_interval: u64,
    /// Requests a second for destinations on router ports, all destinations together
    /// ([`NeighbourCache::set_request_budget`]).
    pub resolution_requests_per_sec: u32,
    /// How many of those may go at once after a quiet spell.
    pub resolution_request_burst: u32,
    /// Seed of the neighbour and MAC tables' bucket hash: a secret per core in production (the
    /// pipeline derives it from its own seed), fixed by default for reproducible tests.
    pub hash_seed: u64,
    /// Learned MAC entries of all bridges.
    pub mac_capacity: usize,
    /// How long a learned MAC stays valid without being seen again, in the caller's clock units
    /// (MidoNet ages entries out after 300 s without traffic).
    pub mac_aging: u64,
    /// Connections tracked ([`ConnTrack`]).
    pub conntrack_capacity: usize,
    /// How long a tracked connection lives without a packet in either direction, in the caller's
    /// clock units (60 s by default). The flow cache's idle timeout should not exceed it: a cached
    /// flow re-creates its connection when hit ([`Action::Track`](super::Action::Track)).
    pub conntrack_idle: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            neighbour_capacity: 4096,
            neighbour_lifetime: 60_000_000_000,
            resolution_interval: 1_000_000_000,
            resolution_requests_per_sec: DEFAULT_REQUESTS_PER_SEC,
            resolution_request_burst: DEFAULT_REQUEST_BURST,
            hash_seed: 0x6d69_646f_6777_0002,
            default_mtu: 1500,
            mac_capacity: 4096,
            mac_aging: 300_000_000_000,
            conntrack_capacity: 65536,
            conntrack_idle: 60_000_000_000,
        }
    }
}

/// Everything the simulation keeps per worker core. Allocates only in [`CoreState::new`].
#[derive(Debug, Clone)]
pub struct CoreState {
    /// The ARP / NDP cache.
    pub neighbours: NeighbourCache,
    /// The bridges' learned MAC entries.
    pub macs: MacTable,
    /// Connection tracking for `flow fwd-flow|return-flow` conditions.
    pub conntrack: ConnTrack,
    mtus: [u16; MAX_DPDK_PORTS],
    port_macs: [EthernetAddress; MAX_DPDK_PORTS],
    default_mtu: u16,
    /// Recently used tunnels' outer headers ([`outer_header_cached`](super::outer_header_cached)).
    pub(super) tunnels: Box<[TunnelTemplate; TUNNEL_TEMPLATES]>,
}

impl CoreState {
    /// New state with an empty neighbour cache.
    pub fn new(config: &CoreConfig) -> CoreState {
        let mut neighbours = NeighbourCache::new(
            config.neighbour_capacity,
            config.neighbour_lifetime,
            config.resolution_interval,
            config.hash_seed,
        );
        neighbours.set_request_budget(config.resolution_requests_per_sec, config.resolution_request_burst);
        CoreState {
            neighbours,
            macs: MacTable::new(config.mac_capacity, config.mac_aging, config.hash_seed ^ 0x6d61_6373),
            conntrack: ConnTrack::new(config.conntrack_capacity, config.conntrack_idle),
            mtus: [0; MAX_DPDK_PORTS],
            port_macs: [EthernetAddress([0; 6]); MAX_DPDK_PORTS],
            default_mtu: config.default_mtu,
            tunnels: Box::new([TunnelTemplate::EMPTY; TUNNEL_TEMPLATES]),
        }
    }

    /// Records what this core learns for the other cores (off by default: one worker).
    pub fn replicate_learning(&mut self, on: bool) {
        self.neighbours.outbox.enable(on);
        self.macs.outbox.enable(on);
    }

    /// Whether learned entries wait for the other cores.
    pub fn has_learning(&self) -> bool {
        !self.neighbours.outbox.is_empty() || !self.macs.outbox.is_empty()
    }

    /// Hands what this core learned since the last call to `f` (neighbours, then MACs).
    pub fn drain_learning(&mut self, mut f: impl FnMut(Learning)) {
        self.neighbours.outbox.drain(&mut f);
        self.macs.outbox.drain(&mut f);
    }

    /// Learned entries the outboxes had no room for.
    pub fn learning_overflowed(&self) -> u64 {
        self.neighbours.outbox.overflowed() + self.macs.outbox.overflowed()
    }

    /// Applies what another core learned, at this core's `now`: as if learned here, but not told
    /// again. A MAC that moved is noted for invalidation like a local move.
    pub fn apply_learning(&mut self, learning: Learning, now: u64) {
        match learning {
            Learning::Neighbour { port, ip, mac } => self.neighbours.learn_from_peer(port, ip, mac, now),
            Learning::Mac { bridge, mac, port } => {
                self.macs.learn_from_peer(bridge, mac, port, now);
            }
        }
    }

    /// Sets the MTU (largest IP packet) of a DPDK port; ports beyond [`MAX_DPDK_PORTS`] keep the default.
    pub fn set_mtu(&mut self, dpdk_port: u16, mtu: u16) {
        // The tunnel templates carry the underlay's MTU.
        self.forget_tunnels();
        if let Some(m) = self.mtus.get_mut(usize::from(dpdk_port)) {
            *m = mtu;
        }
    }

    /// Brings the per-core state in line with a new snapshot `snap`: what is keyed by a port index
    /// is kept only when the port at that index is unchanged (`changed` holds the changed device
    /// tags, sorted; `None` means everything changed, the underlay maybe too), the underlay's
    /// neighbours unless everything changed. Allocation-free.
    pub fn snapshot_changed(&mut self, snap: &Snapshot, changed: Option<&[u32]>) {
        self.forget_tunnels();
        let unchanged = |id: DeviceId| match changed {
            Some(tags) => tags.binary_search(&snap.device_tag(id)).is_err(),
            None => false,
        };
        // The underlay's next hops belong to no device: they stay unless the underlay changed,
        // which only a full change (`None`) can say.
        self.neighbours.retain_ports(|port| {
            if port == UNDERLAY_PORT {
                changed.is_some()
            } else {
                snap.get_port(port).is_some() && unchanged(DeviceId::Port(port))
            }
        });
        self.macs.retain(|bridge, port| {
            snap.get_bridge(bridge).is_some()
                && snap.get_port(port).is_some()
                && unchanged(DeviceId::Bridge(bridge))
                && unchanged(DeviceId::Port(port))
        });
    }

    /// [`CoreState::snapshot_changed`] for a change that left every port and bridge as it was
    /// (same index, same compiled form: routes, rules, chains or groups changed): the learned
    /// neighbours and MACs still name what they named, so the tables are not walked; only the
    /// kept tunnel headers go (rebuilt on first use).
    pub fn snapshot_changed_elsewhere(&mut self) {
        self.forget_tunnels();
    }

    /// Sets the MAC of a DPDK port (the outer source of tunnelled frames on the underlay port, the
    /// ARP answer for the underlay address); ports beyond [`MAX_DPDK_PORTS`] are ignored.
    pub fn set_port_mac(&mut self, dpdk_port: u16, mac: EthernetAddress) {
        self.forget_tunnels();
        if let Some(m) = self.port_macs.get_mut(usize::from(dpdk_port)) {
            *m = mac;
        }
    }

    /// Drops the kept tunnel headers (the snapshot or a port MAC changed).
    fn forget_tunnels(&mut self) {
        self.tunnels.fill(TunnelTemplate::EMPTY);
    }

    /// The MAC of a DPDK port (all zeros if never set).
    pub fn port_mac(&self, dpdk_port: u16) -> EthernetAddress {
        self.port_macs.get(usize::from(dpdk_port)).copied().unwrap_or(EthernetAddress([0; 6]))
    }

    /// The MTU of a DPDK port.
    pub fn mtu(&self, dpdk_port: u16) -> u16 {
        match self.mtus.get(usize::from(dpdk_port)) {
            Some(&m) if m != 0 => m,
            _ => self.default_mtu,
        }
    }
}

#[cfg(test)]
mod asked_tests {
    use super::*;

    /// The addresses of one subnet (differing in their last bytes) spread over the asked table
    /// like random keys would (about 162 of 256 slots for 256 keys), not onto a few slots.
    #[test]
    fn a_subnets_addresses_spread_over_the_asked_table() {
        let n = NeighbourCache::new(16, 1000, 0, 7);
        let slots: std::collections::HashSet<u8> = (0..=255u8)
            .map(|b| n.destination_slot(PortId(1), IpAddr::V4(core::net::Ipv4Addr::new(10, 2, 0, b))))
            .collect();
        assert!(slots.len() > 140, "{} slots", slots.len());
    }
}
