//! The gateway pipeline worker: every received frame goes through flowtable's flow cache and, on a
//! miss, its topology simulation; pmd/ only moves the mbufs where flowtable says.
//!
//! Per packet: `FlowKey::set_from_frame` (common frames read directly, anything else through
//! `Headers::parse`) -> cache lookup. A hit replays the cached actions (`sim::apply_into`); a miss, or
//! a hit whose TTL / MTU check fails (neither is in the flow key), runs `sim::simulate` on the
//! frame in place and installs the result when it is cacheable, tagged with the devices it
//! depended on. A frame the simulation generates (ICMP error, ARP request or
//! reply) is copied into a freshly allocated mbuf per leg. A flood (bridges, never cached) sends
//! the frame out of its first leg and a copy (a pool mbuf) out of each other one. When MAC
//! learning moved a MAC to another bridge port (in the simulation or in a cached flow's
//! `Learn`), the bridge's flows are invalidated before anything new is installed. Output is
//! batched per egress port and flushed every loop iteration. A burst from the underlay port is
//! decapsulated first (the mbufs stripped to their inner frames in place), then looked up in the
//! same stages as a local burst. A compiled hop into a tunnel hands over its outer headers (ready,
//! or pending for the general hop) and they are written once, from the per-core template, into
//! the headroom in front of the frame. A frame whose priority tag a router removed (cached, or in
//! the simulation: flowtable moved its MACs over the tag) starts 4 bytes into its mbuf: those
//! bytes leave the front (`Mbuf::strip_front`, `rte_pktmbuf_adj` in Rust) before it is sent or
//! encapsulated. A frame whose next hop (a router's, or the underlay's for a tunnel) is not resolved yet
//! waits in the per-worker resolution queue (bounded: the oldest is dropped when full, and one next
//! hop holds at most a quarter of it; a deadline, `hold_timeout_ns`, after which a router's next
//! hop counts as failed and its packets are answered host unreachable) while the ARP request / NS
//! goes out (once per next hop per resolution interval), and is simulated again and sent when the
//! answer is learned. Everything the loop needs is allocated before it starts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use flowtable::flow::{DeviceTag, FlowCache, FlowCacheConfig, FlowHasher, FlowKey, Probe, TagSet, Tick, NO_SLOT};
use flowtable::sim::{
    self, Applied, CachedActions, CoreConfig, CoreState, DropReason, Generated, Hold, IngressPoint, Learning, Leg,
    Legs, Outer, Output, PendingOuter, Poll, MAX_DPDK_PORTS, UNDERLAY_PORT,
};
use flowtable::topology::{DeviceSet, PortId, Snapshot, Uuid};
use flowtable::wire::{EthernetAddress, Headers, ParseError};

use crate::clock::TscClock;
use crate::error::{Error, Result};
use crate::mbuf::{Burst, Ipv4Checksum, Mbuf};
use crate::mempool::Mempool;
use crate::port::{reta_queue, Port, RxQueue, Spread, TxQueue, RSS_SPREAD};
use crate::prefetch::prefetch;
use crate::sizing::BURST;
use crate::snapshot::{Refresh, SnapshotExchange, SnapshotReader};
use flowtable::ratelimit::TokenBucket;

/// Room for any frame the simulation generates (it needs 1514 bytes).
const GENERATED_ROOM: usize = 2048;
/// Decapsulated frames a worker's hand-off inbox holds.
const HANDOFF_INBOX: usize = 4096;
/// `owners` marker in [`Engine::handle_underlay_burst`]: the frame stays on this worker.
const NOT_HANDED_OFF: u8 = u8::MAX;
/// Learned entries a worker's inbox holds.
const LEARNING_INBOX: usize = 4096;
/// Learned entries a worker applies per loop turn.
const LEARNING_PER_TURN: usize = 256;
/// Flow cache slots an idle loop iteration checks for expiry.
const EXPIRY_BUDGET: usize = 256;

/// Busy loop turns between two publications of the counters. Counting turns, not time, keeps the
/// work per packet the same in every run (callgrind's figures repeat exactly); at line rate a turn
/// takes a few microseconds, and the first idle turn publishes whatever is left, so what the
/// control thread reads is never more than a few dozen microseconds behind while traffic flows.
const PUBLISH_EVERY_TURNS: u32 = 16;
/// Most neighbour polls one [`Engine::poll_neighbours`] sends (the rest go at the next turn).
const POLLS_PER_SCAN: usize = 16;
/// Neighbour cache slots one [`Engine::poll_neighbours`] reads: about a microsecond of work, so
/// even a cache of a million entries is gone over in pieces that never stall the worker.
const POLL_SCAN_SLOTS: usize = 1024;
/// `slot_of` marker for a DPDK port this worker has no TX queue on: its burst is a sink, freed
/// and counted as `unknown_egress` when flushed.
const NO_TX_SLOT: u8 = u8::MAX;
/// Output bursts: one per `u8` slot, so that any slot indexes them with no bounds check (TX
/// slots are fewer than [`MAX_DPDK_PORTS`]; the last is [`NO_TX_SLOT`]'s sink).
const OUT_SLOTS: usize = 1 << 8;

/// How each pipeline worker sizes its per-core state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// The worker's flow cache.
    pub flow_cache: FlowCacheConfig,
    /// The simulation's per-core state (neighbour cache).
    pub core: CoreConfig,
    /// Seed of the flow cache's hash and of the neighbour and MAC tables' (mixed with the worker
    /// index); `midogw run` draws a secret one per run, the default is fixed for tests.
    pub seed: u64,
    /// Most packets a worker holds while their next hop is being resolved (the resolution
    /// queue); when full, the oldest is dropped and counted. One next hop holds at most a quarter
    /// of them (newer ones are dropped and counted), so a stream to a dead address cannot push
    /// out the first packets of every other flow.
    pub hold_capacity: usize,
    /// How long a held packet waits for its next hop's answer, in nanoseconds.
    pub hold_timeout_ns: u64,
    /// ICMP errors a worker sends a second at most (RFC 1812 4.3.2.8, RFC 4443 2.4 f); those
    /// over it are not sent and counted as `icmp_errors_limited`.
    pub icmp_errors_per_sec: u32,
    /// ICMP errors a worker may send at once after a quiet spell.
    pub icmp_error_burst: u32,
}

impl Default for PipelineConfig {
    /// 64 Ki flows per worker, the flow cache's idle timeout, the simulation's neighbour and MAC
    /// defaults, and a hard timeout of the neighbour lifetime: a cached flow carries the next hop's
    /// MAC it was simulated with, so it must not outlive the entry it came from (flowtable::sim
    /// module docs).
    fn default() -> Self {
        let core = CoreConfig::default();
        PipelineConfig {
            flow_cache: FlowCacheConfig {
                capacity: 1 << 16,
                hard_timeout: core.neighbour_lifetime.min(core.mac_aging),
                ..FlowCacheConfig::default()
            },
            core,
            seed: 0x6d69_646f_6777_0001,
            hold_capacity: 64,
            // Three requests a second apart before a next hop counts as failed (Linux's
            // mcast_solicit and retrans_time): one lost ARP request must not fail it.
            hold_timeout_ns: 3_000_000_000,
            // Linux's defaults (net.ipv4.icmp_msgs_per_sec, icmp_msgs_burst).
            icmp_errors_per_sec: 1000,
            icmp_error_burst: 50,
        }
    }
}

/// Counters of one pipeline worker. Written only by that worker, once per burst; read by the
/// control thread.
#[derive(Debug)]
#[repr(align(64))]
pub struct PipelineCounters {
    /// Frames received on the worker's RX queues.
    pub rx_packets: AtomicU64,
    /// Frames whose IPv4 header checksum the receiving device verified and found right (ports
    /// with `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`): the worker did not check them again. Those it found
    /// wrong are `malformed` drops (`ipv4_bad_checksum`).
    pub rx_ipv4_checksum_offloaded: AtomicU64,
    /// Frames the TX queues took (forwarded, answered and generated).
    pub tx_packets: AtomicU64,
    /// Frames freed because a TX queue was full.
    pub tx_full_drops: AtomicU64,
    /// Flow cache hits.
    pub cache_hits: AtomicU64,
    /// Flow cache misses.
    pub cache_misses: AtomicU64,
    /// Live flows evicted to make room.
    pub cache_evictions: AtomicU64,
    /// Flows dropped because a device they depended on changed.
    pub cache_invalidated: AtomicU64,
    /// Flows reclaimed after their idle timeout or hard deadline.
    pub cache_expired: AtomicU64,
    /// Flows in the cache.
    pub cache_flows: AtomicU64,
    /// Generation of the topology snapshot the worker runs on.
    pub snapshot_generation: AtomicU64,
    /// New snapshots the worker took.
    pub snapshots_taken: AtomicU64,
    /// Frames run through the simulation (misses, and hits failing a TTL or MTU check).
    pub simulated: AtomicU64,
    /// Frames the simulation generated (ICMP errors, ARP requests) and that were sent to a TX burst.
    pub generated: AtomicU64,
    /// ICMP errors not sent: over the worker's rate ([`PipelineConfig::icmp_errors_per_sec`]).
    pub icmp_errors_limited: AtomicU64,
    /// Point-to-point ARP requests / neighbour solicitations sent to neighbours in use whose entry
    /// went stale, so that they are refreshed before the flows through them wait for a resolution.
    pub neighbour_polls: AtomicU64,
    /// Generated frames lost because the pool had no mbuf.
    pub alloc_failures: AtomicU64,
    /// Frames output to a DPDK port this worker has no TX queue on.
    pub unknown_egress: AtomicU64,
    /// Frames put in the resolution queue while their next hop was resolved (each once, however
    /// often it was retried or met another unknown next hop on release).
    pub held: AtomicU64,
    /// Held frames taken out of the queue when their next hop answered: simulated again (or
    /// encapsulated) and sent on, or, if that meets another unknown next hop (a tunnel's underlay
    /// after a router's), held again.
    pub released: AtomicU64,
    /// Neighbour and MAC entries this worker learned and handed to another worker.
    pub learning_sent: AtomicU64,
    /// Entries other workers learned that this one applied.
    pub learning_applied: AtomicU64,
    /// Decapsulated frames sent to the worker that owns their connection.
    pub handed_off: AtomicU64,
    /// Frames other workers handed to this one.
    pub handoffs_received: AtomicU64,
    /// Frames freed because the owner's hand-off inbox was full.
    pub handoff_full: AtomicU64,
    /// Entries lost on the way: an inbox or this worker's outbox full, or learned under another
    /// snapshot generation than the receiver's (its port or bridge indices may differ).
    pub learning_lost: AtomicU64,
    /// Drops, indexed by [`DropReason::index`].
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Why `malformed` drops did not parse, indexed by [`ParseError::index`] (a frame whose outer
    /// headers decapsulated but whose inner frame did not counts the inner frame's error).
    pub parse_errors: [AtomicU64; ParseError::COUNT],
}

impl Default for PipelineCounters {
    fn default() -> Self {
        PipelineCounters {
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_full_drops: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_evictions: AtomicU64::new(0),
            cache_invalidated: AtomicU64::new(0),
            cache_expired: AtomicU64::new(0),
            cache_flows: AtomicU64::new(0),
            snapshot_generation: AtomicU64::new(0),
            snapshots_taken: AtomicU64::new(0),
            simulated: AtomicU64::new(0),
            generated: AtomicU64::new(0),
            icmp_errors_limited: AtomicU64::new(0),
            neighbour_polls: AtomicU64::new(0),
            rx_ipv4_checksum_offloaded: AtomicU64::new(0),
            alloc_failures: AtomicU64::new(0),
            unknown_egress: AtomicU64::new(0),
            held: AtomicU64::new(0),
            released: AtomicU64::new(0),
            learning_sent: AtomicU64::new(0),
            learning_applied: AtomicU64::new(0),
            learning_lost: AtomicU64::new(0),
            handed_off: AtomicU64::new(0),
            handoffs_received: AtomicU64::new(0),
            handoff_full: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            parse_errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl PipelineCounters {
    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// Every drop reason with a non-zero count, by counter name.
    pub fn nonzero_drops(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().map(|r| (r.name(), self.dropped(*r))).filter(|(_, n)| *n != 0).collect()
    }

    /// `malformed` drops counted for parse error `error`.
    pub fn parse_failed(&self, error: ParseError) -> u64 {
        self.parse_errors[error.index()].load(Ordering::Relaxed)
    }

    /// Every parse error with a non-zero count, by counter name.
    pub fn nonzero_parse_errors(&self) -> Vec<(&'static str, u64)> {
        ParseError::ALL.iter().map(|e| (e.name(), self.parse_failed(*e))).filter(|(_, n)| *n != 0).collect()
    }
}

/// The worker's local copy of its counters, published with plain stores (single writer).
struct Totals {
    rx: u64,
    /// Frames whose IPv4 header checksum the device verified, and found right.
    device_checksums: u64,
    tx: u64,
    tx_full: u64,
    simulated: u64,
    snapshots: u64,
    generated: u64,
    icmp_errors_limited: u64,
    neighbour_polls: u64,
    alloc_failures: u64,
    unknown_egress: u64,
    held: u64,
    released: u64,
    learning_sent: u64,
    learning_applied: u64,
    learning_lost: u64,
    handed_off: u64,
    handoffs_received: u64,
    handoff_full: u64,
    drops: [u64; DropReason::COUNT],
    parse_errors: [u64; ParseError::COUNT],
}

impl Default for Totals {
    // By hand: arrays longer than 32 have no `Default`.
    fn default() -> Self {
        Totals {
            rx: 0,
            device_checksums: 0,
            tx: 0,
            tx_full: 0,
            simulated: 0,
            snapshots: 0,
            generated: 0,
            icmp_errors_limited: 0,
            neighbour_polls: 0,
            alloc_failures: 0,
            unknown_egress: 0,
            held: 0,
            released: 0,
            learning_sent: 0,
            learning_applied: 0,
            learning_lost: 0,
            handed_off: 0,
            handoffs_received: 0,
            handoff_full: 0,
            drops: [0; DropReason::COUNT],
            parse_errors: [0; ParseError::COUNT],
        }
    }
}

/// Everything one pipeline worker owns: its RX queues, its TX queue on every port, its counters.
pub struct PipelinePlan<'p> {
    worker: usize,
    rx: Vec<RxQueue<'p>>,
    tx: Vec<TxQueue<'p>>,
    /// (DPDK port id, MTU, MAC) for each TX slot.
    ports: Vec<(u16, u16, [u8; 6])>,
    counters: Arc<PipelineCounters>,
    /// Every worker's inbox of what the others learned (`None` for a single worker).
    learning: Option<Arc<Inboxes<LearnedEntry>>>,
    /// Every worker's inbox of decapsulated frames whose connection it owns (`None` for one worker).
    handoff: Option<Arc<Inboxes<HandedOff<'p>>>>,
    /// (DPDK port id, RX queues) of every port: who owns a connection ([`Ownership`]).
    rss: Vec<(u16, u16)>,
}

/// One bounded lock-free queue per worker, which every other worker may push to.
struct Inboxes<T> {
    inboxes: Box<[ArrayQueue<T>]>,
}

impl<T> Inboxes<T> {
    fn new(workers: usize, capacity: usize) -> Inboxes<T> {
        Inboxes { inboxes: (0..workers).map(|_| ArrayQueue::new(capacity)).collect() }
    }
}

/// A decapsulated frame on its way to the worker that owns its connection, with its ingress: a
/// tunnel's frames are steered to a queue by their outer headers, the same connection's frames
/// from the uplink by its inner tuple, so with stateful rules the two directions must meet on one
/// core (the design brief's ownership rule).
type HandedOff<'p> = (PinnedIngress, Mbuf<'p>);

/// Where a frame entered, checkable under a later snapshot: a tunnel port is named by its index,
/// which a topology change may give to another port, so its UUID goes along. A frame that waits
/// (held for a next hop, handed to another worker) is simulated under the snapshot of the moment,
/// with its ingress only if the index still names the same port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PinnedIngress {
    point: IngressPoint,
    /// The tunnel port's UUID (nil for a local port: DPDK port numbers do not move).
    port_uuid: Uuid,
}

impl PinnedIngress {
    fn new(snap: &Snapshot, point: IngressPoint) -> PinnedIngress {
        let port_uuid = match point {
            IngressPoint::Tunnel(port) => snap.get_port(port).map_or(Uuid(0), |p| p.uuid),
            IngressPoint::Local(_) => Uuid(0),
        };
        PinnedIngress { point, port_uuid }
    }

    /// The ingress under `snap`; `None` when the tunnel port left or its index names another port.
    fn under(self, snap: &Snapshot) -> Option<IngressPoint> {
        match self.point {
            IngressPoint::Tunnel(port) => {
                snap.get_port(port).is_some_and(|p| p.uuid == self.port_uuid).then_some(self.point)
            }
            IngressPoint::Local(_) => Some(self.point),
        }
    }
}

/// A neighbour or MAC entry learned on one worker, on its way to the others (flowtable's
/// sim/learning.rs says why), with the snapshot generation it was learned under.
type LearnedEntry = (u64, Learning);

/// Which worker receives a connection from a local port: the NIC hashes the tuple with the
/// symmetric Toeplitz key ([`FlowKey::symmetric_hash`] computes the same), picks redirection table
/// entry `hash mod table`, whose queue is `(entry mod RSS_SPREAD) mod queues` (pmd/port.rs programs
/// every table so: [`reta_queue`]), and RX queue `q` is worker `q mod workers` ([`pipeline_plans`]).
/// So the owner depends on `hash mod RSS_SPREAD` alone, and is kept as a table over it: one mask
/// and one load per frame, no division. A port without a programmed table (test rings) is taken
/// to spread the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ownership {
    owner_of: [u8; RSS_SPREAD],
}

impl Ownership {
    /// The rule of a port with `queues` RX queues among `workers` workers (0 is taken as 1).
    fn of_port(queues: u16, workers: usize) -> Ownership {
        let mut owner_of = [0; RSS_SPREAD];
        for (entry, owner) in owner_of.iter_mut().enumerate() {
            // Below `workers`, which `pipeline_plans` keeps below NOT_HANDED_OFF: fits a u8.
            *owner = (usize::from(reta_queue(entry, queues)) % workers.max(1)) as u8;
        }
        Ownership { owner_of }
    }

    fn owner(&self, symmetric_hash: u32) -> usize {
        usize::from(self.owner_of[symmetric_hash as usize % RSS_SPREAD])
    }
}

/// When the local ports (every port but the underlay's) would send one connection to different
/// workers, all of them with their RX queues, else `None`. With stateful rules and several
/// workers, a tunnelled reply is handed to the worker the first local port's rule names, so the
/// connections of a port that spreads otherwise are dropped on the way back. The ports agree when
/// the worker count divides each one's queues (the default, one queue per worker, does). For a
/// warning at start-up; the pipeline uses the first local port's rule regardless.
pub fn local_ports_spread_unlike<'a>(
    ports: &'a [Port<'_>],
    underlay: Option<u16>,
    workers: usize,
) -> Option<Vec<(&'a str, u16)>> {
    let local = ports.iter().filter(|p| Some(p.id()) != underlay).map(|p| (p.name(), p.config().rx_queues));
    spread_unlike(local.collect(), workers)
}

/// With several workers, the local ports (every port but the underlay's) whose RX queues their
/// driver picks by its own rule ([`Spread::Driver`]): the owner rule that hands a tunnelled reply
/// to the worker of its connection assumes the symmetric RSS, so with stateful rules such a
/// port's connections may see their replies dropped. For a warning at start-up.
pub fn local_ports_spread_by_driver<'a>(ports: &'a [Port<'_>], underlay: Option<u16>, workers: usize) -> Vec<&'a str> {
    if workers < 2 {
        return Vec::new();
    }
    let local = ports.iter().filter(|p| Some(p.id()) != underlay);
    local.filter(|p| p.spread() == Spread::Driver).map(|p| p.name()).collect()
}

/// [`local_ports_spread_unlike`] over (name, RX queues) of the local ports.
fn spread_unlike(local: Vec<(&str, u16)>, workers: usize) -> Option<Vec<(&str, u16)>> {
    let first = Ownership::of_port(local.first()?.1, workers);
    local.iter().any(|&(_, queues)| Ownership::of_port(queues, workers) != first).then_some(local)
}

impl PipelinePlan<'_> {
    /// Worker index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Number of RX queues this worker polls.
    pub fn rx_queue_count(&self) -> usize {
        self.rx.len()
    }

    /// The worker's counters.
    pub fn counters(&self) -> Arc<PipelineCounters> {
        Arc::clone(&self.counters)
    }
}

/// Splits the ports' queues among `workers` pipeline workers: RX queue q of every port goes to
/// worker q mod workers, and each worker sends on its own TX queue (index = worker) of every port.
pub fn pipeline_plans<'p>(ports: &'p [Port<'_>], workers: usize) -> Result<Vec<PipelinePlan<'p>>> {
    if workers == 0 {
        return Err(Error::PortCapability {
            port: "*".into(),
            detail: "the pipeline needs at least one worker".into(),
        });
    }
    if workers >= usize::from(NOT_HANDED_OFF) {
        return Err(Error::PortCapability {
            port: "*".into(),
            detail: format!("{workers} pipeline workers; at most {} are supported", NOT_HANDED_OFF - 1),
        });
    }
    if let Some(port) = ports.iter().find(|p| usize::from(p.config().tx_queues) < workers) {
        return Err(Error::PortCapability {
            port: port.name().into(),
            detail: format!("{} TX queues for {workers} workers; each worker needs its own", port.config().tx_queues),
        });
    }
    if let Some(port) = ports.iter().find(|p| usize::from(p.id()) >= MAX_DPDK_PORTS) {
        return Err(Error::PortCapability {
            port: port.name().into(),
            detail: format!("DPDK port id {} is beyond the pipeline's {MAX_DPDK_PORTS} ports", port.id()),
        });
    }
    let learning = Arc::new(Inboxes::new(workers, LEARNING_INBOX));
    let handoff = Arc::new(Inboxes::new(workers, HANDOFF_INBOX));
    let mut plans: Vec<PipelinePlan<'p>> = (0..workers)
        .map(|worker| PipelinePlan {
            worker,
            rx: Vec::new(),
            tx: Vec::new(),
            ports: Vec::new(),
            counters: Arc::new(PipelineCounters::default()),
            learning: (workers > 1).then(|| Arc::clone(&learning)),
            handoff: (workers > 1).then(|| Arc::clone(&handoff)),
            rss: ports.iter().map(|p| (p.id(), p.config().rx_queues)).collect(),
        })
        .collect();
    for port in ports {
        let (rx, tx) = port.take_queues()?;
        for (worker, queue) in tx.into_iter().enumerate().take(workers) {
            plans[worker].tx.push(queue);
            plans[worker].ports.push((port.id(), port.config().mtu, port.mac()));
        }
        for queue in rx {
            let worker = usize::from(queue.id().1) % workers;
            plans[worker].rx.push(queue);
        }
    }
    Ok(plans)
}

/// The pipeline loop: until `stop` is set, take a newer snapshot from `snapshots` if one was
/// published (invalidating the flows it changed), RX a burst from each owned queue, run every frame
/// through the flow cache / simulation, flush the per-port TX bursts, publish counters. Generated
/// frames come from `pool`. No heap allocation, no locks, no syscalls.
pub fn run_pipeline<'p>(
    plan: PipelinePlan<'p>,
    snapshots: &SnapshotExchange,
    pool: &'p Mempool<'_>,
    config: &PipelineConfig,
    stop: &AtomicBool,
) -> i32 {
    let PipelinePlan { worker, mut rx, tx, ports, counters, learning, handoff, rss } = plan;
    // The reader's first load happens here, before the loop (arc-swap sets up its per-thread state).
    let reader = snapshots.reader(worker);
    let generation = reader.snapshot().generation();
    let peers = learning.zip(handoff).map(|(learning, exchange)| {
        Box::new(Peers { worker, learning, handoff: Handoff { exchange, rss, ownership: None } })
    });
    let mut engine = Engine::new(worker, tx, &ports, reader, pool, config, peers);
    engine.refresh_ownership();
    let mut burst = Burst::new();
    let mut staged = [Staged::EMPTY; BURST];
    let mut ingress = [Ok(IngressPoint::Local(0)); BURST];
    let clock = TscClock::start();
    tracing::debug!(worker, rx_queues = rx.len(), generation, "pipeline worker starts");
    while !stop.load(Ordering::Relaxed) {
        engine.refresh_snapshot();
        let now = clock.now_ns();
        let mut received = false;
        for queue in rx.iter_mut() {
            let count = queue.rx(&mut burst);
            if count == 0 {
                continue;
            }
            received = true;
            let in_port = queue.id().0;
            engine.totals.rx += count as u64;
            // The snapshot changes only between bursts: whether this port is the underlay's, once.
            if engine.is_underlay(in_port) {
                if queue.verifies_ipv4_checksums() {
                    engine.handle_underlay_burst::<true>(in_port, &mut burst, &mut staged, &mut ingress, now);
                } else {
                    engine.handle_underlay_burst::<false>(in_port, &mut burst, &mut staged, &mut ingress, now);
                }
            } else if queue.verifies_ipv4_checksums() {
                engine.handle_local_burst::<true>(in_port, &mut burst, &mut staged, now);
            } else {
                engine.handle_local_burst::<false>(in_port, &mut burst, &mut staged, now);
            }
            // A worker that never idles still reclaims expired flows, a few slots per burst.
            engine.cache.sweep_in_passing(count, now);
        }
        // One load and a branch for a single worker: the exchange is out of line.
        let exchanged = engine.peers.is_some() && engine.exchange_with_peers(now);
        engine.service_holds(now);
        engine.flush_all();
        if received || exchanged {
            engine.busy_turn_done(now, &counters);
        } else {
            engine.idle_turn(now, &counters);
        }
    }
    engine.stop();
    engine.publish(&counters);
    0
}

/// A frame between the stages of [`Engine::handle_local_burst`].
#[derive(Clone, Copy)]
struct Staged {
    key: FlowKey,
    /// The key's hash, buckets and signature.
    probe: Probe,
    /// The flow table's candidate slot for the probe ([`NO_SLOT`] for none).
    hint: usize,
    /// Whether the frame parsed (else `key` is meaningless).
    parsed: bool,
}

impl Staged {
    const EMPTY: Staged = Staged { key: FlowKey::ZERO, probe: Probe::EMPTY, hint: NO_SLOT, parsed: false };
}

struct Engine<'p, 'm, 's> {
    snapshot: SnapshotReader<'s>,
    pool: &'p Mempool<'m>,
    tx: Vec<TxQueue<'p>>,
    /// Output bursts by TX slot (`tx[slot]` sends them; [`NO_TX_SLOT`]'s has no queue).
    out: Box<[Burst<'p>; OUT_SLOTS]>,
    /// TX slot by DPDK port id, for every `u16`: indexed by any port id with no bounds check.
    slot_of: Box<[u8; 1 << 16]>,
    cache: FlowCache<CachedActions>,
    state: CoreState,
    scratch: Vec<u8>,
    /// Room for an underlay ARP request while `scratch` holds a generated frame.
    arp_scratch: [u8; 64],
    /// The outer headers a cached action list's `apply_into` writes.
    outer: Outer,
    /// The outer headers a compiled hop decided, written straight into the mbuf by `send_encap`.
    pending_outer: PendingOuter,
    /// The resolution queue: frames waiting for a next hop's MAC, oldest first.
    held: VecDeque<Held<'p>>,
    hold_capacity: usize,
    /// Most frames one next hop may have in the queue.
    hold_per_next_hop: u16,
    /// Frames in the queue per next hop, by [`Engine::next_hop_slot`].
    held_per_slot: Box<[u16; NEXT_HOP_SLOTS]>,
    hold_timeout: u64,
    /// The neighbour cache's learn count when the queue was last looked at.
    hold_learns: u64,
    /// The earliest deadline in the queue.
    hold_next_deadline: u64,
    totals: Totals,
    /// Busy loop turns whose counters the control thread has not seen yet.
    unpublished_turns: u32,
    /// When [`Engine::poll_neighbours`] looks for stale neighbours in use next.
    next_poll_at: u64,
    /// The ICMP errors this worker may still send (RFC 1812 4.3.2.8, RFC 4443 2.4 f).
    icmp_errors: TokenBucket,
    /// The other workers beside this one (`None` for a single worker), boxed: one pointer in
    /// the engine the packet path does not read.
    peers: Option<Box<Peers<'p>>>,
}

/// What a worker exchanges with the others: learned entries and decapsulated frames.
struct Peers<'p> {
    worker: usize,
    learning: Arc<Inboxes<LearnedEntry>>,
    handoff: Handoff<'p>,
}

/// A worker's side of the hand-off of decapsulated frames ([`HandedOff`]).
struct Handoff<'p> {
    exchange: Arc<Inboxes<HandedOff<'p>>>,
    rss: Vec<(u16, u16)>,
    /// Set while the snapshot has a chain with a `flow` condition (only connection state needs
    /// the two directions on one core) and an underlay: the owner rule of its first local port.
    ownership: Option<Ownership>,
}

impl<'p, 'm, 's> Engine<'p, 'm, 's> {
    fn new(
        worker: usize,
        tx: Vec<TxQueue<'p>>,
        ports: &[(u16, u16, [u8; 6])],
        snapshot: SnapshotReader<'s>,
        pool: &'p Mempool<'m>,
        config: &PipelineConfig,
        peers: Option<Box<Peers<'p>>>,
    ) -> Self {
        // The neighbour and MAC tables' buckets are keyed by this worker's own seed too.
        let worker_seed = config.seed ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut state = CoreState::new(&CoreConfig { hash_seed: config.core.hash_seed ^ worker_seed, ..config.core });
        state.replicate_learning(peers.is_some());
        // Built on the heap (64 KiB; only the lines of the ports in use are ever read).
        let mut slot_of: Box<[u8; 1 << 16]> =
            vec![NO_TX_SLOT; 1 << 16].into_boxed_slice().try_into().unwrap_or_else(|_| unreachable!());
        for (slot, &(id, mtu, mac)) in ports.iter().enumerate() {
            state.set_mtu(id, mtu);
            state.set_port_mac(id, EthernetAddress(mac));
            if let (Some(s), Ok(slot)) = (slot_of.get_mut(usize::from(id)), u8::try_from(slot)) {
                *s = slot;
            }
        }
        let hasher = FlowHasher::new(worker_seed);
        // Allocated here, on the worker's lcore (first touch places it on its NUMA node), on
        // transparent huge pages where the kernel gives them (pmd/thp.rs).
        let mut on_huge_pages = 0;
        let cache = FlowCache::new_advised(&config.flow_cache, hasher, &mut |region| {
            on_huge_pages += crate::thp::advise_huge_pages(region);
        });
        tracing::debug!(
            worker,
            flow_cache_mib = FlowCache::<CachedActions>::footprint(&config.flow_cache) >> 20,
            advised_huge_pages_mib = on_huge_pages >> 20,
            "flow cache allocated"
        );
        Engine {
            snapshot,
            pool,
            out: Box::new(std::array::from_fn(|_| Burst::new())),
            tx,
            slot_of,
            cache,
            state,
            scratch: vec![0; GENERATED_ROOM],
            arp_scratch: [0; 64],
            outer: Outer::NONE,
            pending_outer: PendingOuter::NONE,
            held: VecDeque::with_capacity(config.hold_capacity.max(1)),
            hold_capacity: config.hold_capacity.max(1),
            hold_per_next_hop: u16::try_from(config.hold_capacity.div_ceil(4).max(1)).unwrap_or(u16::MAX),
            held_per_slot: Box::new([0; NEXT_HOP_SLOTS]),
            hold_timeout: config.hold_timeout_ns,
            hold_learns: 0,
            hold_next_deadline: u64::MAX,
            totals: Totals::default(),
            unpublished_turns: 0,
            next_poll_at: 0,
            // Full at the clock's start (the loop's time counts from 0).
            icmp_errors: TokenBucket::new(config.icmp_errors_per_sec, config.icmp_error_burst, 0),
            peers,
        }
    }

    /// Moves to a newly published snapshot: drops the flows and per-core state that depended on
    /// what changed.
    #[inline(always)]
    fn refresh_snapshot(&mut self) {
        if self.snapshot.refresh() {
            self.take_snapshot();
        }
    }

    /// [`Engine::refresh_snapshot`] when a new snapshot was taken: invalidate what changed.
    #[cold]
    #[inline(never)]
    fn take_snapshot(&mut self) {
        let changed = match self.snapshot.changes() {
            Refresh::Tags(tags) => {
                // Tags are u32 device tags; the cache wants them typed. At most a few per change.
                for chunk in tags.chunks(16) {
                    let mut typed = [DeviceTag(0); 16];
                    for (t, &raw) in typed.iter_mut().zip(chunk) {
                        *t = DeviceTag(raw);
                    }
                    self.cache.invalidate_devices(&typed[..chunk.len()]);
                }
                Some(tags)
            }
            Refresh::Everything => {
                self.cache.invalidate_all();
                None
            }
        };
        // Most changes (routes, rules) leave every port and bridge as it was: then the neighbour
        // and MAC tables, up to a million entries each, are not walked.
        if self.snapshot.ports_and_bridges_kept() {
            self.state.snapshot_changed_elsewhere();
        } else {
            self.state.snapshot_changed(self.snapshot.snapshot(), changed);
        }
        self.totals.snapshots += 1;
        self.refresh_ownership();
    }

    /// Whether decapsulated frames go to their connection's owner under this snapshot, and by
    /// which rule: the local ports' (every port but the underlay), which `midogw run` checks agree
    /// at start ([`local_ports_spread_unlike`]); when they do not, the first one's.
    fn refresh_ownership(&mut self) {
        let Some(handoff) = self.peers.as_mut().map(|p| &mut p.handoff) else { return };
        let snap = self.snapshot.snapshot();
        let stateful = snap.chains().iter().any(|c| c.uses_conntrack());
        let workers = handoff.exchange.inboxes.len();
        handoff.ownership = match snap.underlay() {
            Some(u) if stateful => {
                handoff.rss.iter().find(|p| p.0 != u.dpdk_port).map(|&(_, queues)| Ownership::of_port(queues, workers))
            }
            _ => None,
        };
    }

    /// Whether DPDK port `in_port` is the underlay's (its frames may be tunnelled).
    fn is_underlay(&self, in_port: u16) -> bool {
        self.snapshot.snapshot().underlay().is_some_and(|u| u.dpdk_port == in_port)
    }

    /// A burst received on the underlay port: every frame decapsulated first (a tunnelled one is
    /// stripped to its inner frame, which is what the flow key, the cache and the simulation see;
    /// anything else, ARP for the underlay, enters as a local frame of `in_port`), then looked up
    /// in the same stages as [`Engine::handle_local_burst`], each frame with its own ingress.
    ///
    /// `DEVICE_CHECKSUMS`: as for [`Engine::handle_local_burst`], for the outer IPv4 header (the
    /// inner one, which the device does not read, is checked in software).
    // Out of line: inlined, it costs the local burst's hit path registers (about 3 instructions
    // a packet) and the underlay's too.
    #[inline(never)]
    fn handle_underlay_burst<const DEVICE_CHECKSUMS: bool>(
        &mut self,
        in_port: u16,
        burst: &mut Burst<'p>,
        staged: &mut [Staged; BURST],
        ingress: &mut [Result<IngressPoint, DropReason>; BURST],
        now: u64,
    ) {
        let count = burst.len();
        let (worker, ownership) = match &self.peers {
            Some(p) => (p.worker, p.handoff.ownership.as_ref()),
            None => (0, None),
        };
        // Per frame: the worker it goes to when that is not this one (else NOT_HANDED_OFF).
        let mut owners = [NOT_HANDED_OFF; BURST];
        for (i, (s, ingress)) in staged[..count].iter_mut().zip(ingress[..count].iter_mut()).enumerate() {
            let (snap, frame) = (self.snapshot.snapshot(), burst.data(i));
            let decapsulated = if DEVICE_CHECKSUMS {
                match burst.ipv4_checksum(i) {
                    Ipv4Checksum::Good => {
                        self.totals.device_checksums += 1;
                        sim::decap_nic_verified(snap, frame)
                    }
                    Ipv4Checksum::Bad => Err(DropReason::Malformed),
                    Ipv4Checksum::Unknown => sim::decap(snap, frame),
                }
            } else {
                sim::decap(snap, frame)
            };
            *ingress = match decapsulated {
                Ok(None) => Ok(IngressPoint::Local(in_port)),
                Ok(Some(d)) => match u16::try_from(d.inner_offset) {
                    Ok(n) if burst.strip_front(i, n) => Ok(IngressPoint::Tunnel(d.port)),
                    _ => Err(DropReason::TunnelMalformed),
                },
                Err(reason) => Err(reason),
            };
            s.parsed = match ingress {
                Ok(point) => s.key.set_from_frame(point.flow_id(), burst.data(i)).is_ok(),
                Err(_) => false,
            };
            if let (Some(rule), true, Ok(IngressPoint::Tunnel(_))) = (ownership, s.parsed, &ingress) {
                let owner = rule.owner(s.key.symmetric_hash());
                if owner != worker {
                    owners[i] = owner as u8;
                    s.parsed = false;
                }
            }
            self.stage_probe(s);
        }
        self.stage_candidates(&mut staged[..count]);
        let tick = self.cache.tick(now);
        let mut next = staged[..count].iter().zip(ingress[..count].iter()).zip(owners[..count].iter());
        burst.drain(|m| match next.next() {
            Some(((s, &Ok(point)), _)) if s.parsed => self.process_keyed(point, m, s, &tick, None),
            Some(((_, &Ok(point)), &owner)) if owner != NOT_HANDED_OFF => self.hand_off(usize::from(owner), point, m),
            Some(((_, &Err(DropReason::Malformed)), _)) => self.malformed(m.data()),
            Some(((_, &Err(reason)), _)) => self.dropped(reason),
            _ => self.malformed(m.data()),
        });
    }

    /// Sends a decapsulated frame to the worker that owns its connection; counted, and freed if
    /// that worker's inbox is full.
    #[cold]
    #[inline(never)]
    fn hand_off(&mut self, owner: usize, point: IngressPoint, m: Mbuf<'p>) {
        let pinned = PinnedIngress::new(self.snapshot.snapshot(), point);
        let inbox = self.peers.as_ref().and_then(|p| p.handoff.exchange.inboxes.get(owner));
        match inbox.map(|inbox| inbox.push((pinned, m))) {
            Some(Ok(())) => self.totals.handed_off += 1,
            // The frame comes back in the error and is freed here.
            Some(Err(_)) | None => self.totals.handoff_full += 1,
        }
    }

    /// Frames other workers decapsulated whose connection this worker owns, at most a burst per
    /// loop turn, each run through the cache or the simulation like a frame received here.
    fn receive_handoffs(&mut self, now: u64) -> bool {
        let mut received = 0;
        while received < BURST {
            let Some(inbox) = self.peers.as_ref().and_then(|p| p.handoff.exchange.inboxes.get(p.worker)) else {
                break;
            };
            let Some((pinned, m)) = inbox.pop() else { break };
            received += 1;
            // Sent under the sender's snapshot, which may be older or newer than this one.
            match pinned.under(self.snapshot.snapshot()) {
                Some(point) => self.process(point, m, now, None),
                None => self.dropped(DropReason::IngressGone),
            }
        }
        self.totals.handoffs_received += received as u64;
        received > 0
    }

    /// Runs a frame (the inner one, for a tunnel) through the cache or the simulation and sends
    /// it. `deadline`: a frame released from the resolution queue keeps its deadline if held again.
    fn process(&mut self, ingress: IngressPoint, m: Mbuf<'p>, now: u64, deadline: Option<u64>) {
        let mut staged = Staged::EMPTY;
        // Only the key is needed before the lookup: built straight from the bytes for common frames.
        if staged.key.set_from_frame(ingress.flow_id(), m.data()).is_err() {
            return self.malformed(m.data());
        }
        staged.probe = self.cache.probe(&staged.key);
        let tick = self.cache.tick(now);
        self.process_keyed(ingress, m, &staged, &tick, deadline)
    }

    /// A burst received on a local (not the underlay) port, looked up in stages so that the
    /// flow table's cache misses overlap (pmd/prefetch.rs): every key and probe first, prefetching
    /// their buckets; then every candidate slot, prefetching its key and entry; then each frame's
    /// lookup and actions, in order.
    ///
    /// `DEVICE_CHECKSUMS`: the port's device verifies IPv4 header checksums (an 82599 does): a
    /// frame it found right is not checked again, one it found wrong is malformed; the rest (and
    /// every frame of a port without the offload) is checked in software.
    fn handle_local_burst<const DEVICE_CHECKSUMS: bool>(
        &mut self,
        in_port: u16,
        burst: &mut Burst<'p>,
        staged: &mut [Staged; BURST],
        now: u64,
    ) {
        let ingress = IngressPoint::Local(in_port);
        let flow_id = ingress.flow_id();
        let count = burst.len();
        if DEVICE_CHECKSUMS {
            for ((frame, checksum), s) in burst.frames_with_ipv4_checksum().zip(staged.iter_mut()) {
                s.parsed = match checksum {
                    Ipv4Checksum::Good => {
                        self.totals.device_checksums += 1;
                        s.key.set_from_nic_verified_frame(flow_id, frame).is_ok()
                    }
                    Ipv4Checksum::Bad => false,
                    Ipv4Checksum::Unknown => s.key.set_from_frame(flow_id, frame).is_ok(),
                };
                self.stage_probe(s);
            }
        } else {
            for (frame, s) in burst.frames().zip(staged.iter_mut()) {
                s.parsed = s.key.set_from_frame(flow_id, frame).is_ok();
                self.stage_probe(s);
            }
        }
        self.stage_candidates(&mut staged[..count]);
        let tick = self.cache.tick(now);
        let mut next = staged[..count].iter();
        burst.drain(|m| match next.next() {
            Some(s) if s.parsed => self.process_keyed(ingress, m, s, &tick, None),
            _ => self.malformed(m.data()),
        });
    }

    /// The first stage's end, once `s.parsed` says whether the key is set: a parsed frame's probe,
    /// its two buckets prefetched; an unparsed one's empty probe, which finds no key.
    #[inline(always)]
    fn stage_probe(&self, s: &mut Staged) {
        if !s.parsed {
            s.probe = Probe::EMPTY;
            return;
        }
        s.probe = self.cache.probe(&s.key);
        for addr in self.cache.bucket_addrs(&s.probe) {
            prefetch(addr);
        }
    }

    /// The second stage: every frame's candidate slot, its key and entry prefetched. An unparsed
    /// frame's empty probe finds at most a vacant slot, which the third stage never reads.
    /// Out of line (once a burst): its loop then gets registers of its own for the bucket
    /// compare's constants, whatever the rest of the worker loop needs.
    #[inline(never)]
    fn stage_candidates(&self, staged: &mut [Staged]) {
        for s in staged.iter_mut() {
            s.hint = self.cache.candidate(&s.probe);
            // No slot: the first slot's lines, harmlessly.
            for addr in self.cache.slot_addrs(if s.hint == NO_SLOT { 0 } else { s.hint }) {
                prefetch(addr);
            }
        }
    }

    /// [`Engine::process`] once the key (and its probe, and maybe a slot hint) is known. The hit
    /// of a compiled hop is handled here, inline; everything else out of line.
    #[inline(always)]
    fn process_keyed(
        &mut self,
        ingress: IngressPoint,
        mut m: Mbuf<'p>,
        staged: &Staged,
        tick: &Tick,
        deadline: Option<u64>,
    ) {
        let now = tick.now();
        let frame = m.data_mut();
        let key = &staged.key;
        // Three arms, the two shapes nearly every flow has inline: a fourth would make the match
        // a jump table (an indirect jump and four more instructions per packet).
        match self.cache.lookup_probed(key, &staged.probe, staged.hint, tick, frame.len() as u32) {
            // A hop moves no MAC and checks before it writes: nothing to restore or invalidate.
            Some(CachedActions::Routed(routed)) => match routed.apply(frame) {
                Ok(dpdk_port) => self.send(dpdk_port, m),
                Err(reason) => self.hop_failed(ingress, m, reason, key, now, deadline),
            },
            Some(CachedActions::Tunnelled(tunnelled)) => {
                match tunnelled.apply(self.snapshot.snapshot(), frame, &mut self.state, now) {
                    // Straight from the per-core template into the headroom.
                    Ok(ready) => {
                        let dpdk_port = ready.dpdk_port();
                        match m.prepend(ready.len() as u16) {
                            Some(room) => {
                                ready.write(room);
                                self.send(dpdk_port, m)
                            }
                            None => self.dropped(DropReason::NoHeadroom),
                        }
                    }
                    Err(reason) => self.hop_failed(ingress, m, reason, key, now, deadline),
                }
            }
            found => {
                let found = found.copied();
                self.process_other(ingress, m, found, key, now, deadline)
            }
        }
    }

    /// [`Engine::process_keyed`] for everything but the two inline shapes: the general hop, an
    /// action list, or a miss.
    #[inline(never)]
    fn process_other(
        &mut self,
        ingress: IngressPoint,
        mut m: Mbuf<'p>,
        found: Option<CachedActions>,
        key: &FlowKey,
        now: u64,
        deadline: Option<u64>,
    ) {
        let frame = m.data_mut();
        let applied = match found {
            None => return self.process_miss(ingress, m, key, now, deadline),
            Some(CachedActions::List(list)) => return self.apply_list(ingress, m, &list, key, now, deadline),
            Some(CachedActions::Hop(hop)) => {
                hop.apply(self.snapshot.snapshot(), frame, &mut self.state, now, &mut self.pending_outer)
            }
            Some(CachedActions::UntagHop(hop)) => {
                hop.apply_untagging(self.snapshot.snapshot(), frame, &mut self.state, now, &mut self.pending_outer)
            }
            // The inline shapes never come here; what they would do, by the general entry point.
            Some(cached) => {
                match cached.apply(self.snapshot.snapshot(), frame, &mut self.state, now, &mut self.outer) {
                    Ok(Applied::Encap(dpdk_port)) => {
                        return self.send_output(Output { dpdk_port, outer: self.outer }, m)
                    }
                    other => other,
                }
            }
        };
        match applied {
            Ok(Applied::Local(dpdk_port)) => self.send(dpdk_port, m),
            Ok(Applied::Encap(dpdk_port)) => self.send_encap(dpdk_port, m),
            // An `UntagHop`'s (the general entry point's shapes never remove a tag).
            Ok(untagged) => self.send_untagged_hop(untagged, m),
            Err(reason) => self.hop_failed(ingress, m, reason, key, now, deadline),
        }
    }

    /// Sends a frame whose 802.1Q tag a cached hop removed ([`Applied::LocalUntagged`],
    /// [`Applied::EncapUntagged`]): the frame starts after it now, so the mbuf loses those bytes
    /// first (`rte_pktmbuf_adj`); a tunnel's outer headers are in `pending_outer`. Out of line:
    /// the hits of untagged frames never come here.
    #[cold]
    #[inline(never)]
    fn send_untagged_hop(&mut self, applied: Applied, mut m: Mbuf<'p>) {
        if !m.strip_front(applied.frame_start() as u16) {
            return self.dropped(DropReason::Malformed);
        }
        match applied {
            Applied::Local(dpdk_port) | Applied::LocalUntagged(dpdk_port) => self.send(dpdk_port, m),
            Applied::Encap(dpdk_port) | Applied::EncapUntagged(dpdk_port) => self.send_encap(dpdk_port, m),
        }
    }

    /// [`Engine::send_untagged_hop`] for an action list's frame, whose outer headers are in `outer`.
    #[cold]
    #[inline(never)]
    fn send_untagged_list(&mut self, applied: Applied, mut m: Mbuf<'p>) {
        if !m.strip_front(applied.frame_start() as u16) {
            return self.dropped(DropReason::Malformed);
        }
        match applied {
            Applied::Local(dpdk_port) | Applied::LocalUntagged(dpdk_port) => self.send(dpdk_port, m),
            Applied::Encap(dpdk_port) | Applied::EncapUntagged(dpdk_port) => {
                self.send_output(Output { dpdk_port, outer: self.outer }, m)
            }
        }
    }

    /// A cached hop's check failed: what the flow key does not hold (TTL, length) or what expired
    /// (the tunnel's underlay next hop) goes to the simulation, which answers or asks.
    #[inline(never)]
    fn hop_failed(
        &mut self,
        ingress: IngressPoint,
        m: Mbuf<'p>,
        reason: DropReason,
        key: &FlowKey,
        now: u64,
        deadline: Option<u64>,
    ) {
        match reason {
            DropReason::TtlExpired | DropReason::TooBig if self.errors_spent(reason, now) => {}
            DropReason::TtlExpired | DropReason::TooBig | DropReason::NeighbourUnresolved => {
                self.process_miss(ingress, m, key, now, deadline)
            }
            reason => self.dropped(reason),
        }
    }

    /// For a hit failing its TTL or length check, which earns an ICMP error (or, for an error
    /// itself, a silent drop): when the worker's error budget is spent, drops it here, counted
    /// as `reason` and as over the rate, and says so. Then a flood of such packets costs about a
    /// hit each, not a simulation each; the simulation would only have dropped them too.
    fn errors_spent(&mut self, reason: DropReason, now: u64) -> bool {
        if self.icmp_errors.has_token(now) {
            return false;
        }
        self.totals.icmp_errors_limited += 1;
        self.dropped(reason);
        true
    }

    /// A hit on a cached action list: run it; on a failing TTL / MTU check (after which the list
    /// may have rewritten the MACs) restore the MACs and simulate instead.
    #[inline(never)]
    fn apply_list(
        &mut self,
        ingress: IngressPoint,
        mut m: Mbuf<'p>,
        list: &flowtable::sim::Actions,
        key: &FlowKey,
        now: u64,
        deadline: Option<u64>,
    ) {
        let frame = m.data_mut();
        let mut macs = [0u8; 12];
        if let Some(front) = frame.first_chunk::<12>() {
            macs = *front;
        }
        let applied = sim::apply_into(self.snapshot.snapshot(), list, frame, &mut self.state, now, &mut self.outer);
        self.invalidate_moved_macs();
        match applied {
            Ok(Applied::Local(dpdk_port)) => self.send(dpdk_port, m),
            Ok(Applied::Encap(dpdk_port)) => self.send_output(Output { dpdk_port, outer: self.outer }, m),
            Ok(untagged @ (Applied::LocalUntagged(_) | Applied::EncapUntagged(_))) => {
                self.send_untagged_list(untagged, m)
            }
            Err(reason @ (DropReason::TtlExpired | DropReason::TooBig)) if self.errors_spent(reason, now) => {}
            // A cached drop that earned an ICMP error: the simulation answers while the rate allows.
            Err(reason) if list.answers_error() => {
                if !self.errors_spent(reason, now) {
                    self.process_miss(ingress, m, key, now, deadline)
                }
            }
            Err(DropReason::TtlExpired | DropReason::TooBig | DropReason::NeighbourUnresolved) => {
                if let Some(front) = frame.first_chunk_mut::<12>() {
                    *front = macs;
                }
                self.process_miss(ingress, m, key, now, deadline)
            }
            Err(reason) => self.dropped(reason),
        }
    }

    /// The rest of [`Engine::process_keyed`] for a frame the cache did not settle: simulate it,
    /// then send, flood, hold or drop it. Out of line, so that the hit path stays small.
    #[inline(never)]
    fn process_miss(&mut self, ingress: IngressPoint, mut m: Mbuf<'p>, key: &FlowKey, now: u64, deadline: Option<u64>) {
        let (verdict, start) = self.simulate(ingress, m.data_mut(), key, now);
        self.invalidate_moved_macs();
        // A router removed the frame's 802.1Q tag (or answered it untagged), or an echo reply
        // left the request's IPv6 extension headers out: it starts after them.
        if start != 0 && !m.strip_front(start as u16) {
            return self.dropped(DropReason::Malformed);
        }
        match verdict {
            Egress::One(output) => self.send_output(output, m),
            Egress::Flood(legs) => {
                let Some((&first, rest)) = legs.as_slice().split_first() else {
                    return self.dropped(DropReason::NoEgress);
                };
                for &leg in rest {
                    if let Some(copy) = copy_into_mbuf(self.pool, m.data()) {
                        self.send_leg(leg, copy, now);
                    } else {
                        self.totals.alloc_failures += 1;
                    }
                }
                self.send_leg(first, m, now);
            }
            Egress::Hold(hold) => {
                let first = deadline.is_none();
                let deadline = deadline.unwrap_or(now.saturating_add(self.hold_timeout));
                // A frame back from its deadline (its next hop's failure mark was lost to a
                // collision) is not held again: held frames always leave.
                if deadline <= now {
                    return self.dropped(DropReason::HoldTimeout);
                }
                let held = Held {
                    m,
                    then: AfterHold::Simulate(PinnedIngress::new(self.snapshot.snapshot(), ingress)),
                    hold,
                    deadline,
                    retry_at: self.retry_at(now),
                };
                self.hold(held, first)
            }
            Egress::Drop(reason) => self.dropped(reason),
        }
    }

    /// When a frame held at `now` is simulated again if no answer came: an ARP request can be
    /// lost. No sooner than its next hop may be asked for again (`[neighbours]
    /// resolution_interval_ms`), and never in the same loop turn.
    fn retry_at(&self, now: u64) -> u64 {
        now.saturating_add(self.state.neighbours.ask_interval().max(1_000_000))
    }

    /// Queues a frame until its next hop is known; when the queue is full the oldest is dropped.
    /// A next hop that already has its share of the queue keeps the frames it has: the new one
    /// is dropped. `first`: the frame was not held before (a retry, or a release that meets
    /// another unknown next hop, is not counted as `held` again).
    fn hold(&mut self, held: Held<'p>, first: bool) {
        if self.held_per_slot[self.next_hop_slot(&held.hold)] >= self.hold_per_next_hop {
            drop(held);
            return self.dropped(DropReason::HoldOverflow);
        }
        if self.held.len() >= self.hold_capacity {
            drop(self.dequeue_held());
            self.dropped(DropReason::HoldOverflow);
        }
        self.totals.held += u64::from(first);
        self.enqueue_held(held);
    }

    fn enqueue_held(&mut self, held: Held<'p>) {
        self.hold_next_deadline = self.hold_next_deadline.min(held.deadline).min(held.retry_at);
        let slot = self.next_hop_slot(&held.hold);
        self.held_per_slot[slot] += 1;
        self.held.push_back(held);
    }

    fn dequeue_held(&mut self) -> Option<Held<'p>> {
        let held = self.held.pop_front()?;
        let slot = self.next_hop_slot(&held.hold);
        self.held_per_slot[slot] = self.held_per_slot[slot].saturating_sub(1);
        Some(held)
    }

    /// The slot of a held frame's next hop in `held_per_slot`: the top byte of the neighbour
    /// cache's keyed hash (next hops sharing a slot share the limit).
    fn next_hop_slot(&self, hold: &Hold) -> usize {
        usize::from(self.state.neighbours.destination_slot(hold.port, hold.addr))
    }

    /// Sends the held frames whose next hop was learned, drops those past their deadline. Looks
    /// at the queue only when the neighbour cache learned something or a deadline passed.
    #[inline(always)]
    fn service_holds(&mut self, now: u64) {
        if !self.held.is_empty() {
            self.service_held(now);
        }
    }

    /// [`Engine::service_holds`] when something is held: out of line, so that the loop around it
    /// keeps its registers for the packets.
    #[cold]
    #[inline(never)]
    fn service_held(&mut self, now: u64) {
        let learns = self.state.neighbours.learn_count();
        if learns == self.hold_learns && now < self.hold_next_deadline {
            return;
        }
        self.hold_learns = learns;
        self.hold_next_deadline = u64::MAX;
        for _ in 0..self.held.len() {
            let Some(h) = self.dequeue_held() else { break };
            let resolved = self.state.neighbours.lookup(h.hold.port, h.hold.addr, now).is_some();
            if !resolved && h.deadline <= now {
                self.timed_out(h, now);
            } else if resolved || h.retry_at <= now {
                // Resolved: simulate it again (or encapsulate it), now sent on. Still unresolved
                // and its retry due: the same, which asks again (the request may have been lost)
                // and holds it again with its deadline.
                match h.then {
                    AfterHold::Simulate(pinned) => match pinned.under(self.snapshot.snapshot()) {
                        Some(ingress) => {
                            self.totals.released += u64::from(resolved);
                            self.process(ingress, h.m, now, Some(h.deadline))
                        }
                        None => self.dropped(DropReason::IngressGone),
                    },
                    AfterHold::Tunnel { port, sport } => match port.under(self.snapshot.snapshot()) {
                        Some(IngressPoint::Tunnel(port)) => {
                            self.totals.released += u64::from(resolved);
                            self.send_tunnel_leg(port, sport, h.m, now, Some(h.deadline))
                        }
                        _ => self.dropped(DropReason::NoEgress),
                    },
                }
            } else {
                self.enqueue_held(h);
            }
        }
    }

    /// A held frame whose next hop never answered. One that waited for a router's next hop is
    /// answered host unreachable / address unreachable (RFC 1812 5.2.7.1; RFC 4861 7.2.2 says
    /// every packet that waited MUST be): the next hop is marked failed for a resolution interval
    /// and the frame simulated again, which answers it from the router port it entered (and so
    /// every packet to that next hop meanwhile). Any other (a frame the gateway made or copied,
    /// one waiting for the underlay) is dropped.
    fn timed_out(&mut self, h: Held<'p>, now: u64) {
        match h.then {
            AfterHold::Simulate(pinned) if h.hold.port != UNDERLAY_PORT => {
                self.state.neighbours.mark_failed(h.hold.port, h.hold.addr, now);
                match pinned.under(self.snapshot.snapshot()) {
                    Some(ingress) => self.process(ingress, h.m, now, Some(h.deadline)),
                    None => self.dropped(DropReason::IngressGone),
                }
            }
            _ => self.dropped(DropReason::HoldTimeout),
        }
    }

    /// Simulates `frame` (installing the result when cacheable, sending what it generated): where
    /// it goes, and where in `frame` the frame to send starts ([`sim::SimResult::frame_start`]).
    fn simulate(&mut self, ingress: IngressPoint, frame: &mut [u8], key: &FlowKey, now: u64) -> (Egress, usize) {
        self.totals.simulated += 1;
        let r = sim::simulate_from(self.snapshot.snapshot(), ingress, frame, &mut self.state, now, &mut self.scratch);
        // A tag a router removed (only a tagged frame's setup asks: a scan of its actions), or
        // IPv6 extension headers an echo reply left out.
        let start = if key.vlan().is_some() { r.frame_start() } else { r.trimmed };
        (self.egress(&r, key, now), start)
    }

    /// [`Engine::simulate`]'s result, installed, its generated frame sent, and where it goes.
    fn egress(&mut self, r: &sim::SimResult, key: &FlowKey, now: u64) -> Egress {
        // A MAC that moved invalidates its bridge's flows: before installing this one, which is current.
        self.invalidate_moved_macs();
        if r.cacheable {
            let tags = tags(self.snapshot.snapshot(), &r.deps);
            self.cache.insert(key, CachedActions::compile(&r.actions, key), &tags, now);
        }
        self.totals.drops[DropReason::FloodLegsExceeded.index()] += u64::from(r.dropped_legs);
        if let Some(g) = r.generated {
            if g.icmp_error && !self.icmp_errors.take(now) {
                self.totals.icmp_errors_limited += 1;
            } else {
                self.emit(g, now);
            }
        }
        if let (Some(hold), Some(DropReason::NeighbourUnresolved)) = (r.hold, r.actions.drop_reason()) {
            return Egress::Hold(hold);
        }
        if let Some(reason) = r.actions.drop_reason() {
            return Egress::Drop(reason);
        }
        if !r.flood.is_empty() {
            return Egress::Flood(r.flood);
        }
        if let Some(dpdk_port) = r.actions.output() {
            return Egress::One(Output::local(dpdk_port));
        }
        match (r.actions.encap(), self.snapshot.snapshot().underlay()) {
            (Some(_), Some(u)) => Egress::One(Output { dpdk_port: u.dpdk_port, outer: r.outer }),
            _ => Egress::Drop(DropReason::Malformed),
        }
    }

    /// Puts the output's outer headers (if any) in front of the frame and queues it.
    fn send_output(&mut self, output: Output, mut m: Mbuf<'p>) {
        let outer = output.outer.as_bytes();
        if !outer.is_empty() {
            let Some(room) = m.prepend(outer.len() as u16) else {
                return self.dropped(DropReason::NoHeadroom);
            };
            room.copy_from_slice(outer);
        }
        self.send(output.dpdk_port, m);
    }

    /// A compiled hop's tunnel: writes the outer headers it decided (`pending_outer`) from the
    /// per-core template straight into the headroom in front of the frame, and queues it.
    #[inline(always)]
    fn send_encap(&mut self, dpdk_port: u16, mut m: Mbuf<'p>) {
        // By reference: a copy of the whole struct would be packed into one register.
        let Some(room) = m.prepend(self.pending_outer.len() as u16) else {
            return self.dropped(DropReason::NoHeadroom);
        };
        self.pending_outer.write(&self.state, room);
        self.send(dpdk_port, m);
    }

    /// Sends `m` out of one leg: as it is, or encapsulated toward a remote port's host.
    fn send_leg(&mut self, leg: Leg, m: Mbuf<'p>, now: u64) {
        match leg {
            Leg::Local(dpdk_port) => self.send(dpdk_port, m),
            Leg::Tunnel { port, sport } => self.send_tunnel_leg(port, sport, m, now, None),
        }
    }

    /// Encapsulates `m` toward remote port `port`'s host and queues it. While the underlay next
    /// hop toward that host is unknown, asks for it and holds the frame (until `deadline`), so a
    /// router's first ARP request toward a VM, or a flood's copy, waits for the underlay's answer
    /// instead of being lost (and the frame that caused it waiting a retry for nothing).
    /// `deadline`: that of a frame back from the queue, `None` for one not held before.
    fn send_tunnel_leg(&mut self, port: PortId, sport: u16, m: Mbuf<'p>, now: u64, deadline: Option<u64>) {
        let first = deadline.is_none();
        let deadline = deadline.unwrap_or(now.saturating_add(self.hold_timeout));
        let snap = self.snapshot.snapshot();
        match sim::outer_header(snap, &self.state, port, sport, m.len(), now) {
            Ok((dpdk_port, outer)) => self.send_output(Output { dpdk_port, outer }, m),
            Err(DropReason::NeighbourUnresolved) => {
                let hold = sim::underlay_hold(snap, port);
                let pinned = PinnedIngress::new(snap, IngressPoint::Tunnel(port));
                self.ask_underlay(port, now);
                match hold {
                    Some(hold) if deadline > now => {
                        let held = Held {
                            m,
                            then: AfterHold::Tunnel { port: pinned, sport },
                            hold,
                            deadline,
                            retry_at: self.retry_at(now),
                        };
                        self.hold(held, first)
                    }
                    _ => self.dropped(DropReason::NeighbourUnresolved),
                }
            }
            Err(reason) => self.dropped(reason),
        }
    }

    /// Drops the cached flows of every bridge where a MAC moved to another port, and of every
    /// router port where a neighbour's MAC changed. Checked after every simulation, so the check
    /// is inline and the work (rare) out of line.
    #[inline(always)]
    fn invalidate_moved_macs(&mut self) {
        if self.state.macs.has_moved() || self.state.neighbours.has_changed() {
            self.invalidate_moved_devices();
        }
    }

    #[cold]
    #[inline(never)]
    fn invalidate_moved_devices(&mut self) {
        for moved in [self.state.macs.take_moved(), self.state.neighbours.take_changed()] {
            if moved.is_saturated() {
                return self.cache.invalidate_all();
            }
            let mut tags = [DeviceTag(0); flowtable::topology::DEVICE_SET_CAPACITY];
            for (tag, &id) in tags.iter_mut().zip(moved.as_slice()) {
                *tag = DeviceTag(self.snapshot.snapshot().device_tag(id));
            }
            self.cache.invalidate_devices(&tags[..moved.len()]);
        }
    }

    /// Sends the ARP request for the underlay next hop toward `port`'s host (unless it was asked
    /// for less than the resolution interval ago).
    fn ask_underlay(&mut self, port: PortId, now: u64) {
        let Some((len, dpdk_port)) =
            sim::underlay_arp_request(self.snapshot.snapshot(), &mut self.state, port, now, &mut self.arp_scratch)
        else {
            return;
        };
        match copy_into_mbuf(self.pool, &self.arp_scratch[..len]) {
            Some(m) => {
                self.totals.generated += 1;
                self.send(dpdk_port, m);
            }
            None => self.totals.alloc_failures += 1,
        }
    }

    /// Copies the generated frame into a new mbuf per leg and queues them.
    fn emit(&mut self, g: Generated, now: u64) {
        if g.len > self.scratch.len() {
            return self.dropped(DropReason::Malformed);
        }
        for &leg in g.legs.as_slice() {
            let Some(m) = copy_into_mbuf(self.pool, &self.scratch[..g.len]) else {
                self.totals.alloc_failures += 1;
                continue;
            };
            self.totals.generated += 1;
            self.send_leg(leg, m, now);
        }
    }

    /// Queues `m` on `port`'s TX burst (flushing it first when full).
    #[inline(always)]
    fn send(&mut self, port: u16, m: Mbuf<'p>) {
        let slot = usize::from(self.slot_of[usize::from(port)]);
        if let Err(m) = self.out[slot].push(m) {
            self.send_after_flush(slot, m);
        }
    }

    /// [`Engine::send`] when the burst was full.
    #[cold]
    #[inline(never)]
    fn send_after_flush(&mut self, slot: usize, m: Mbuf<'p>) {
        self.flush(slot);
        if self.out[slot].push(m).is_err() {
            self.totals.tx_full += 1;
        }
    }

    /// Sends what the TX queue takes; frees the rest. The sink's frames (for ports without a TX
    /// queue here) are freed and counted.
    fn flush(&mut self, slot: usize) {
        let Some(burst) = self.out.get_mut(slot) else { return };
        if burst.is_empty() {
            return;
        }
        match self.tx.get_mut(slot) {
            Some(queue) => {
                self.totals.tx += queue.tx(burst) as u64;
                self.totals.tx_full += burst.len() as u64;
            }
            None => self.totals.unknown_egress += burst.len() as u64,
        }
        burst.clear();
    }

    fn flush_all(&mut self) {
        for slot in 0..self.tx.len() {
            self.flush(slot);
        }
        self.flush(usize::from(NO_TX_SLOT));
    }

    /// What the other workers sent (learned entries, frames whose connection this worker owns)
    /// and what this one learned for them; whether anything moved.
    #[inline(never)]
    fn exchange_with_peers(&mut self, now: u64) -> bool {
        self.exchange_learning(now) | self.receive_handoffs(now)
    }

    /// Hands what this worker learned to every other worker and applies what they learned (at
    /// most [`LEARNING_PER_TURN`] entries a turn), before the resolution queue is looked at, so a
    /// packet held here is released in the same turn the answer arrived elsewhere. A single
    /// worker has no exchange; nothing here runs per packet. Whether anything was sent or applied
    /// (the counters are then published, also on a turn that received nothing).
    fn exchange_learning(&mut self, now: u64) -> bool {
        let Some(peers) = &self.peers else { return false };
        let (exchange, worker) = (&peers.learning, peers.worker);
        let before = (self.totals.learning_sent, self.totals.learning_applied, self.totals.learning_lost);
        let generation = self.snapshot.snapshot().generation();
        let totals = &mut self.totals;
        if self.state.has_learning() {
            self.state.drain_learning(|learning| {
                for (_, inbox) in exchange.inboxes.iter().enumerate().filter(|&(w, _)| w != worker) {
                    match inbox.push((generation, learning)) {
                        Ok(()) => totals.learning_sent += 1,
                        Err(_) => totals.learning_lost += 1,
                    }
                }
            });
        }
        if let Some(inbox) = exchange.inboxes.get(worker) {
            for _ in 0..LEARNING_PER_TURN {
                let Some((learned_under, learning)) = inbox.pop() else { break };
                if learned_under == generation {
                    self.state.apply_learning(learning, now);
                    totals.learning_applied += 1;
                } else {
                    totals.learning_lost += 1;
                }
            }
        }
        self.invalidate_moved_macs();
        before != (self.totals.learning_sent, self.totals.learning_applied, self.totals.learning_lost)
    }

    /// A loop turn that received nothing: publish the counters of the busy turns before it (if
    /// any), reclaim a few expired flows so the table does not fill with dead ones, poll the stale
    /// neighbours in use when their interval has come ([`Engine::poll_neighbours`]). Out of line on
    /// purpose: its call count is the number of idle turns, and `midogw-perf callgrind` subtracts
    /// exactly their cost from the packets' (perf/src/callgrind.rs).
    #[inline(never)]
    fn idle_turn(&mut self, now: u64, counters: &PipelineCounters) {
        if self.unpublished_turns > 0 {
            self.publish(counters);
        }
        self.cache.expire(now, EXPIRY_BUDGET);
        if now >= self.next_poll_at {
            self.poll_neighbours(now);
        }
    }

    /// The end of a loop turn that received or exchanged something: the counters go out every
    /// [`PUBLISH_EVERY_TURNS`] such turns, and with them the neighbour polls that are due. Out of line, like the publication it replaced: the
    /// loop around it keeps its registers for the packets.
    #[inline(never)]
    fn busy_turn_done(&mut self, now: u64, counters: &PipelineCounters) {
        self.unpublished_turns += 1;
        if self.unpublished_turns >= PUBLISH_EVERY_TURNS {
            self.publish(counters);
            if now >= self.next_poll_at {
                self.poll_neighbours(now);
            }
        }
    }

    /// Polls the neighbours in use whose entries went stale (sim::NeighbourCache::due_polls): a
    /// pass over the cache, [`POLL_SCAN_SLOTS`] slots and at most [`POLLS_PER_SCAN`] polls a call,
    /// goes on at the next chance until it is done; the next pass starts a poll interval later.
    #[cold]
    #[inline(never)]
    fn poll_neighbours(&mut self, now: u64) {
        let mut polls = [Poll::NONE; POLLS_PER_SCAN];
        let (due, pass_done) = self.state.neighbours.due_polls(now, &mut polls, POLL_SCAN_SLOTS);
        self.next_poll_at = if pass_done { now.saturating_add(self.state.neighbours.poll_interval()) } else { now };
        for poll in &polls[..due] {
            // None: its port left the topology; the entry goes with the next snapshot's cleanup.
            if let Some(g) = sim::neighbour_poll(self.snapshot.snapshot(), &self.state, poll, now, &mut self.scratch) {
                self.totals.neighbour_polls += 1;
                self.emit(g, now);
            }
        }
        // Neighbours in use that expired unanswered on the way: their flows go now, not at the
        // next simulation (a worker with nothing but hits may not simulate for a long time).
        self.invalidate_moved_macs();
    }

    fn dropped(&mut self, reason: DropReason) {
        self.totals.drops[reason.index()] += 1;
    }

    /// The worker stops: the frames it still holds for a next hop, and those other workers
    /// handed it, are freed and counted (`stopped`), so that what was received is all accounted for.
    fn stop(&mut self) {
        let mut freed = self.held.len() as u64;
        self.held.clear();
        if let Some(inbox) = self.peers.as_ref().and_then(|p| p.handoff.exchange.inboxes.get(p.worker)) {
            while inbox.pop().is_some() {
                freed += 1;
            }
        }
        self.totals.drops[DropReason::Stopped.index()] += freed;
    }

    /// A received frame that does not parse: a `malformed` drop, and one of the parse error
    /// counters, which say why (the general parser run again, off the fast path: the fast key
    /// builder only says no).
    #[cold]
    #[inline(never)]
    fn malformed(&mut self, frame: &[u8]) {
        self.dropped(DropReason::Malformed);
        if let Err(e) = Headers::parse(frame) {
            self.totals.parse_errors[e.index()] += 1;
        }
    }

    /// The learning and hand-off counters, which only move with several workers.
    #[inline(never)]
    fn publish_peer_counters(&self, c: &PipelineCounters) {
        let t = &self.totals;
        c.learning_sent.store(t.learning_sent, Ordering::Relaxed);
        c.learning_applied.store(t.learning_applied, Ordering::Relaxed);
        c.learning_lost.store(t.learning_lost + self.state.learning_overflowed(), Ordering::Relaxed);
        c.handed_off.store(t.handed_off, Ordering::Relaxed);
        c.handoffs_received.store(t.handoffs_received, Ordering::Relaxed);
        c.handoff_full.store(t.handoff_full, Ordering::Relaxed);
    }

    #[inline(never)]
    fn publish(&mut self, c: &PipelineCounters) {
        self.unpublished_turns = 0;
        let t = &self.totals;
        let stats = self.cache.stats();
        c.rx_packets.store(t.rx, Ordering::Relaxed);
        c.rx_ipv4_checksum_offloaded.store(t.device_checksums, Ordering::Relaxed);
        c.tx_packets.store(t.tx, Ordering::Relaxed);
        c.tx_full_drops.store(t.tx_full, Ordering::Relaxed);
        c.cache_hits.store(stats.hits, Ordering::Relaxed);
        c.cache_misses.store(stats.misses, Ordering::Relaxed);
        c.cache_evictions.store(stats.evictions, Ordering::Relaxed);
        c.cache_invalidated.store(stats.invalidated, Ordering::Relaxed);
        c.cache_expired.store(stats.expired_idle + stats.expired_hard, Ordering::Relaxed);
        c.cache_flows.store(self.cache.len() as u64, Ordering::Relaxed);
        c.snapshot_generation.store(self.snapshot.snapshot().generation(), Ordering::Relaxed);
        c.snapshots_taken.store(t.snapshots, Ordering::Relaxed);
        c.simulated.store(t.simulated, Ordering::Relaxed);
        c.generated.store(t.generated, Ordering::Relaxed);
        c.icmp_errors_limited.store(t.icmp_errors_limited, Ordering::Relaxed);
        c.neighbour_polls.store(t.neighbour_polls, Ordering::Relaxed);
        c.alloc_failures.store(t.alloc_failures, Ordering::Relaxed);
        c.unknown_egress.store(t.unknown_egress, Ordering::Relaxed);
        c.held.store(t.held, Ordering::Relaxed);
        c.released.store(t.released, Ordering::Relaxed);
        if self.peers.is_some() {
            self.publish_peer_counters(c);
        }
        for (counter, &n) in c.drops.iter().zip(t.drops.iter()) {
            counter.store(n, Ordering::Relaxed);
        }
        for (counter, &n) in c.parse_errors.iter().zip(t.parse_errors.iter()) {
            counter.store(n, Ordering::Relaxed);
        }
    }
}

/// Where a frame goes after the cache or the simulation.
enum Egress {
    /// Out of a port, behind outer headers or not (a hit's common case, out of a local port as
    /// it is, is sent before any verdict).
    One(Output),
    Flood(Legs),
    Hold(Hold),
    Drop(DropReason),
}

/// A frame in the resolution queue.
struct Held<'p> {
    m: Mbuf<'p>,
    then: AfterHold,
    hold: Hold,
    deadline: u64,
    /// When to ask for the next hop again if no answer came.
    retry_at: u64,
}

/// Slots of the resolution queue's per-next-hop counts.
const NEXT_HOP_SLOTS: usize = 1 << u8::BITS;

/// What a held frame does once its next hop is known, or when it is asked for again.
#[derive(Clone, Copy, Debug)]
enum AfterHold {
    /// Simulated again from where it entered (the simulation held it for a router's next hop or
    /// its tunnel's underlay next hop).
    Simulate(PinnedIngress),
    /// A frame already decided for a remote port's tunnel (a generated frame, a flood's copy),
    /// waiting for the underlay next hop toward the port's host: encapsulated and sent. The
    /// port is pinned like a tunnel ingress; gone or replaced, the frame is dropped (`no_egress`).
    Tunnel { port: PinnedIngress, sport: u16 },
}

/// A new mbuf from `pool` holding a copy of `data`; `None` when the pool is empty or the data
/// does not fit one mbuf.
fn copy_into_mbuf<'p>(pool: &'p Mempool<'_>, data: &[u8]) -> Option<Mbuf<'p>> {
    let mut m = pool.alloc()?;
    let room = m.append(u16::try_from(data.len()).ok()?)?;
    room.copy_from_slice(data);
    Some(m)
}

/// The flow cache's form of what a decision depended on; *any* when it does not fit.
fn tags(snapshot: &Snapshot, deps: &DeviceSet) -> TagSet {
    if deps.is_saturated() {
        return TagSet::any();
    }
    let mut tags = TagSet::new();
    for &id in deps.as_slice() {
        if !tags.insert(DeviceTag(snapshot.device_tag(id))) {
            return TagSet::any();
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ports of one bridge, the second `second`: a snapshot where index 1 names that port.
    fn two_ports(generation: u64, second: u128) -> Snapshot {
        let mut b = flowtable::topology::SnapshotBuilder::new(generation);
        let bridge = b.add_bridge(Uuid(1));
        b.add_bridge_port(bridge, Uuid(10));
        b.add_bridge_port(bridge, Uuid(second));
        b.build().unwrap()
    }

    #[test]
    fn a_waiting_frame_keeps_its_tunnel_ingress_only_while_the_index_names_the_same_port() {
        let (before, same, replaced, shrunk) = (two_ports(1, 11), two_ports(2, 11), two_ports(3, 12), {
            let mut b = flowtable::topology::SnapshotBuilder::new(4);
            let bridge = b.add_bridge(Uuid(1));
            b.add_bridge_port(bridge, Uuid(10));
            b.build().unwrap()
        });
        let tunnel = IngressPoint::Tunnel(PortId(1));
        let pinned = PinnedIngress::new(&before, tunnel);
        assert_eq!(pinned.under(&before), Some(tunnel));
        assert_eq!(pinned.under(&same), Some(tunnel), "another snapshot, the same port at the index");
        assert_eq!(pinned.under(&replaced), None, "another port at the index");
        assert_eq!(pinned.under(&shrunk), None, "no port at the index");
        let local = IngressPoint::Local(3);
        assert_eq!(PinnedIngress::new(&before, local).under(&shrunk), Some(local), "DPDK ports do not move");
    }

    /// What a NIC does with a table pmd programmed: entry `hash mod table`, that entry's queue.
    fn nic_queue(hash: u32, table: usize, queues: u16) -> usize {
        usize::from(reta_queue(hash as usize % table, queues))
    }

    #[test]
    fn the_owner_is_the_worker_of_the_queue_the_nic_picks() {
        let hashes = [0u32, 1, 2, 3, 5, 63, 64, 65, 127, 128, 129, 511, 513, 1023, 0xdead_beef, 0xffff_ffff];
        // 82599 (128 entries) and X710 (512), four and three queues, two and three workers.
        for (queues, workers) in [(4, 2), (2, 2), (3, 3), (6, 3), (1, 1)] {
            let rule = Ownership::of_port(queues, workers);
            for table in [64, 128, 512, 2048] {
                for h in hashes {
                    assert_eq!(
                        rule.owner(h),
                        nic_queue(h, table, queues) % workers,
                        "{queues} queues, table {table}, hash {h:#x}"
                    );
                }
            }
        }
        assert_eq!(Ownership::of_port(1, 2).owner(7), 0, "one queue: worker 0 gets it all");
        assert_eq!(Ownership::of_port(0, 0).owner(7), 0, "degenerate counts do not divide by zero");
    }

    #[test]
    fn a_connection_reaches_one_worker_whatever_the_table_size() {
        // Three queues: were the tables filled with queue `i mod 3` at every entry, hash 192 would
        // be entry 64 (queue 1) of a 128-entry table and entry 192 (queue 0) of a 512-entry one.
        for h in [64u32, 192, 200, 1000, 0xffff_fff0] {
            assert_eq!(nic_queue(h, 128, 3), nic_queue(h, 512, 3), "hash {h:#x}");
        }
    }

    #[test]
    fn ports_whose_queues_the_workers_divide_agree() {
        assert_eq!(spread_unlike(vec![("up0", 2), ("up1", 2)], 2), None);
        assert_eq!(spread_unlike(vec![("up0", 2), ("up1", 4)], 2), None, "4 queues over 2 workers spread like 2");
        assert_eq!(spread_unlike(vec![("up0", 3), ("up1", 6)], 3), None);
        assert_eq!(spread_unlike(vec![("up0", 1)], 2), None, "one local port agrees with itself");
        assert_eq!(spread_unlike(vec![], 2), None);
        assert_eq!(spread_unlike(vec![("up0", 2), ("up1", 1)], 2), Some(vec![("up0", 2), ("up1", 1)]));
        assert_eq!(spread_unlike(vec![("up0", 2), ("up1", 3)], 2), Some(vec![("up0", 2), ("up1", 3)]));
        assert_eq!(spread_unlike(vec![("up0", 1), ("up1", 3)], 1), None, "one worker owns everything");
    }
}
