//! Publishing topology snapshots to the worker cores, RCU style.
//!
//! The control thread [`publish`](SnapshotExchange::publish)es a new [`Snapshot`]: it computes
//! what changed against the current one ([`Snapshot::changed_tags`]), swaps the pointer (arc-swap)
//! and bumps a generation counter. Each worker, once per loop iteration, compares that counter with
//! the generation it holds (one relaxed load: the whole cost when nothing changed); when it moved,
//! it takes the new snapshot, invalidates in its flow cache the tags the change names and records
//! the generation it now uses. A worker that skipped a generation (two publications within one of
//! its loop turns) finds the diff from the generation it held too: each publication also diffs the
//! new snapshot against every older generation a worker still held then, so only a global change
//! invalidates everything. Workers never free a snapshot: the exchange keeps every replaced one until all workers
//! have moved past it ([`reclaim`](SnapshotExchange::reclaim), on the control thread), so no
//! deallocation happens on a core. No locks on the worker side; the control side serialises
//! publishers with a mutex.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flowtable::topology::{Fingerprints, Snapshot, SnapshotChanges};

/// One published snapshot with what changed since the one it replaced.
#[derive(Debug)]
pub struct Published {
    /// The topology.
    pub snapshot: Snapshot,
    /// Devices changed against the snapshot with generation [`previous`](Self::previous).
    pub changes: SnapshotChanges,
    /// The generation this one replaced (equal to its own for the first).
    pub previous: u64,
    /// Devices changed against the older generations (than `previous`) a worker still held when
    /// this one was published, for a worker that skipped generations.
    pub changes_since_held: Vec<(u64, SnapshotChanges)>,
    /// Its devices' fingerprints, kept so the next publication hashes only the new snapshot.
    fingerprints: Fingerprints,
}

impl Published {
    /// The snapshot's generation.
    pub fn generation(&self) -> u64 {
        self.snapshot.generation()
    }
}

/// A worker's generation slot, on its own cache line so workers do not share lines.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Seen(AtomicU64);

/// The hand-over point between the control thread and the workers.
#[derive(Debug)]
pub struct SnapshotExchange {
    current: ArcSwap<Published>,
    generation: AtomicU64,
    seen: Box<[Seen]>,
    /// Replaced snapshots still possibly held by a worker; control side only.
    retired: Mutex<Vec<Arc<Published>>>,
}

/// Why a snapshot was not published.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// Generations must increase, or workers could not tell a new snapshot from an old one.
    #[error("snapshot generation {offered} is not newer than the published generation {current}")]
    StaleGeneration {
        /// The generation offered.
        offered: u64,
        /// The generation in use.
        current: u64,
    },
}

impl SnapshotExchange {
    /// An exchange serving `initial` to `workers` workers.
    pub fn new(initial: Snapshot, workers: usize) -> SnapshotExchange {
        let generation = initial.generation();
        let fingerprints = Fingerprints::of(&initial);
        let published = Published {
            snapshot: initial,
            changes: SnapshotChanges::default(),
            previous: generation,
            changes_since_held: Vec::new(),
            fingerprints,
        };
        SnapshotExchange {
            current: ArcSwap::from_pointee(published),
            generation: AtomicU64::new(generation),
            seen: (0..workers).map(|_| Seen(AtomicU64::new(generation))).collect(),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The snapshot published last (for the control thread; workers use a [`SnapshotReader`]).
    pub fn current(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// The generation published last.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publishes `next`, which must have a higher generation than the current snapshot. Returns
    /// what changed. Workers pick it up at their next loop iteration.
    pub fn publish(&self, next: Snapshot) -> Result<SnapshotChanges, PublishError> {
        self.publish_inner(next, true).map(|c| c.unwrap_or_default())
    }

    /// Publishes `next` only if a device (or a snapshot-wide setting) changed; `None` when nothing
    /// did and the workers keep the current snapshot. A store write that does not touch the data
    /// path (a host's state, a tenant) then costs the cores nothing.
    pub fn publish_if_changed(&self, next: Snapshot) -> Result<Option<SnapshotChanges>, PublishError> {
        self.publish_inner(next, false)
    }

    fn publish_inner(&self, next: Snapshot, always: bool) -> Result<Option<SnapshotChanges>, PublishError> {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load_full();
        if next.generation() <= old.generation() {
            return Err(PublishError::StaleGeneration { offered: next.generation(), current: old.generation() });
        }
        let fingerprints = Fingerprints::of(&next);
        let changes = fingerprints.changes_since(&old.fingerprints);
        if changes.is_empty() && !always {
            return Ok(None);
        }
        let generation = next.generation();
        // The generations older than `old` that workers hold: all retired (`old` is not yet).
        // Usually every worker runs `old`, and this is empty.
        let mut held: Vec<u64> = self.seen.iter().map(|s| s.0.load(Ordering::Acquire)).collect();
        held.sort_unstable();
        held.dedup();
        let changes_since_held = retired
            .iter()
            .filter(|r| held.binary_search(&r.generation()).is_ok())
            .map(|r| (r.generation(), fingerprints.changes_since(&r.fingerprints)))
            .collect();
        let published = Arc::new(Published {
            snapshot: next,
            changes: changes.clone(),
            previous: old.generation(),
            changes_since_held,
            fingerprints,
        });
        self.current.store(published);
        self.generation.store(generation, Ordering::Release);
        retired.push(old);
        Self::reclaim_locked(&mut retired, self.oldest_in_use());
        Ok(Some(changes))
    }

    /// Frees replaced snapshots no worker holds any more; returns how many are still kept. The
    /// control thread calls it now and then (publishing does too).
    pub fn reclaim(&self) -> usize {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        Self::reclaim_locked(&mut retired, self.oldest_in_use());
        retired.len()
    }

    fn reclaim_locked(retired: &mut Vec<Arc<Published>>, oldest_in_use: u64) {
        retired.retain(|p| p.generation() >= oldest_in_use);
    }

    /// The oldest generation a worker may still hold.
    fn oldest_in_use(&self) -> u64 {
        self.seen.iter().map(|s| s.0.load(Ordering::Acquire)).min().unwrap_or(u64::MAX)
    }

    /// The generation worker `worker` runs on.
    pub fn worker_generation(&self, worker: usize) -> Option<u64> {
        self.seen.get(worker).map(|s| s.0.load(Ordering::Acquire))
    }

    /// Waits until every worker runs generation `generation` or newer; false on timeout. For the
    /// control thread and tests (it sleeps between checks).
    pub fn wait_applied(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.oldest_in_use() >= generation {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// The reader for worker `worker` (an index below the worker count given to [`new`](Self::new)).
    pub fn reader(&self, worker: usize) -> SnapshotReader<'_> {
        assert!(worker < self.seen.len(), "worker {worker} of {}", self.seen.len());
        let held = self.current.load_full();
        self.seen[worker].0.store(held.generation(), Ordering::Release);
        let replaced = held.generation();
        SnapshotReader { exchange: self, worker, held, replaced }
    }
}

/// What a worker does when its snapshot changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh<'a> {
    /// Invalidate the flows that depended on these tags.
    Tags(&'a [u32]),
    /// Invalidate every flow (the change was global: the underlay).
    Everything,
}

/// A worker's handle on the exchange: the snapshot it runs on.
#[derive(Debug)]
pub struct SnapshotReader<'e> {
    exchange: &'e SnapshotExchange,
    worker: usize,
    held: Arc<Published>,
    /// The generation the last refresh replaced.
    replaced: u64,
}

impl SnapshotReader<'_> {
    /// The snapshot in use.
    #[inline]
    pub fn snapshot(&self) -> &Snapshot {
        &self.held.snapshot
    }

    /// Whether a newer snapshot was published since [`refresh`](Self::refresh) last took one.
    #[inline]
    pub fn is_stale(&self) -> bool {
        self.exchange.generation.load(Ordering::Acquire) != self.held.generation()
    }

    /// Takes the newest snapshot if there is one; returns whether it did. [`changes`](Self::changes)
    /// then says what to invalidate. No allocation (an `Arc` clone), no lock.
    pub fn refresh(&mut self) -> bool {
        if !self.is_stale() {
            return false;
        }
        self.replaced = self.held.generation();
        // The exchange keeps the old snapshot alive, so dropping our reference never frees it here.
        self.held = self.exchange.current.load_full();
        self.exchange.seen[self.worker].0.store(self.held.generation(), Ordering::Release);
        true
    }

    /// What changed between the snapshot the last [`refresh`](Self::refresh) replaced and the one
    /// in use: the tags to invalidate (from the generation it held, even when it skipped some), or
    /// everything when the change was global.
    pub fn changes(&self) -> Refresh<'_> {
        match self.since_replaced() {
            Some(c) if !c.everything => Refresh::Tags(&c.tags),
            // Not found cannot happen (a held generation is always diffed); everything is safe.
            _ => Refresh::Everything,
        }
    }

    /// Whether the change [`changes`](Self::changes) describes left every port and bridge as it
    /// was (same index, same compiled form): then what a worker learned about them (neighbours,
    /// MACs) stands without a look at its tables.
    pub fn ports_and_bridges_kept(&self) -> bool {
        self.since_replaced().is_some_and(|c| !c.everything && !c.ports_or_bridges)
    }

    fn since_replaced(&self) -> Option<&SnapshotChanges> {
        let p = &*self.held;
        if p.previous == self.replaced {
            Some(&p.changes)
        } else {
            p.changes_since_held.iter().find(|(g, _)| *g == self.replaced).map(|(_, c)| c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtable::topology::{SnapshotBuilder, Uuid};

    fn snapshot(generation: u64, routers: &[u128]) -> Snapshot {
        let mut b = SnapshotBuilder::new(generation);
        for &r in routers {
            b.add_router(Uuid(r));
        }
        b.build().unwrap()
    }

    #[test]
    fn workers_take_new_snapshots_with_their_changes() {
        let exchange = SnapshotExchange::new(snapshot(1, &[1]), 2);
        let mut a = exchange.reader(0);
        let mut b = exchange.reader(1);
        assert!(!a.refresh());
        assert_eq!(a.snapshot().generation(), 1);

        let changes = exchange.publish(snapshot(2, &[1, 2])).unwrap();
        assert_eq!(changes.tags, vec![Uuid(2).tag()]);
        assert!(a.is_stale());
        assert!(a.refresh());
        assert_eq!(a.changes(), Refresh::Tags(&[Uuid(2).tag()]));
        assert_eq!(a.snapshot().generation(), 2);
        assert_eq!(exchange.worker_generation(0), Some(2));
        // Worker b still holds generation 1: it is kept.
        assert!(!exchange.wait_applied(2, Duration::from_millis(1)));
        assert_eq!(exchange.reclaim(), 1);

        // b skipped generation 2: it gets 1 -> 3's diff (router 3 is new), not 2 -> 3's (router 2
        // went, router 3 came), which a gets.
        exchange.publish(snapshot(3, &[1, 3])).unwrap();
        assert!(b.refresh());
        assert_eq!(b.changes(), Refresh::Tags(&[Uuid(3).tag()]));
        assert!(a.refresh());
        assert_eq!(a.changes(), Refresh::Tags(&sorted(&[Uuid(2).tag(), Uuid(3).tag()])));
        // Router 1 went, router 3 moved to index 0: both named.
        exchange.publish(snapshot(4, &[3])).unwrap();
        assert!(a.refresh());
        assert_eq!(a.changes(), Refresh::Tags(&sorted(&[Uuid(1).tag(), Uuid(3).tag()])));
        assert!(b.refresh());
        assert!(exchange.wait_applied(4, Duration::from_millis(1)));
        assert_eq!(exchange.reclaim(), 0, "nobody holds generations 1 to 3 any more");
    }

    fn sorted(tags: &[u32]) -> Vec<u32> {
        let mut v = tags.to_vec();
        v.sort_unstable();
        v
    }

    /// A global change (the underlay) invalidates everything, whether a worker skipped it or not;
    /// a worker that held a snapshot with the same underlay gets tags.
    #[test]
    fn an_underlay_change_reaches_a_worker_that_skipped_it_as_everything() {
        let with_underlay = |generation: u64, routers: &[u128]| {
            let mut b = SnapshotBuilder::new(generation);
            for &r in routers {
                b.add_router(Uuid(r));
            }
            b.set_underlay(flowtable::topology::Underlay::new(0, "192.168.7.1".parse().unwrap(), 24));
            b.build().unwrap()
        };
        let exchange = SnapshotExchange::new(snapshot(1, &[1]), 2);
        let (mut a, mut b) = (exchange.reader(0), exchange.reader(1));
        exchange.publish(with_underlay(2, &[1])).unwrap();
        assert!(b.refresh());
        assert_eq!(b.changes(), Refresh::Everything);
        exchange.publish(with_underlay(3, &[1, 2])).unwrap();
        assert!(a.refresh());
        assert_eq!(a.changes(), Refresh::Everything, "1 -> 3 gained the underlay");
        assert!(b.refresh());
        assert_eq!(b.changes(), Refresh::Tags(&[Uuid(2).tag()]));
    }

    /// Whether a worker must look at what it learned: only when a port or bridge changed since the
    /// generation it held, whether it took every generation or skipped some.
    #[test]
    fn workers_learn_whether_ports_or_bridges_changed_since_their_generation() {
        let with_bridge = |generation: u64, routers: &[u128], bridge: bool| {
            let mut b = SnapshotBuilder::new(generation);
            for &r in routers {
                b.add_router(Uuid(r));
            }
            if bridge {
                b.add_bridge(Uuid(50));
            }
            b.build().unwrap()
        };
        let exchange = SnapshotExchange::new(with_bridge(1, &[1], false), 2);
        let (mut a, mut b) = (exchange.reader(0), exchange.reader(1));
        exchange.publish(with_bridge(2, &[1, 2], false)).unwrap();
        assert!(a.refresh());
        assert!(a.ports_and_bridges_kept(), "a router added");
        exchange.publish(with_bridge(3, &[1, 2], true)).unwrap();
        assert!(a.refresh());
        assert!(!a.ports_and_bridges_kept(), "a bridge added");
        exchange.publish(with_bridge(4, &[1, 3], true)).unwrap();
        assert!(a.refresh());
        assert!(a.ports_and_bridges_kept(), "routers only");
        // b skipped 2 and 3: from its generation 1, the bridge is new.
        assert!(b.refresh());
        assert_eq!(b.changes(), Refresh::Tags(&sorted(&[Uuid(3).tag(), Uuid(50).tag()])));
        assert!(!b.ports_and_bridges_kept());
    }

    #[test]
    fn unchanged_snapshots_are_not_published() {
        let exchange = SnapshotExchange::new(snapshot(1, &[1]), 1);
        assert_eq!(exchange.publish_if_changed(snapshot(2, &[1])), Ok(None));
        assert_eq!(exchange.generation(), 1, "the workers keep generation 1");
        let changes = exchange.publish_if_changed(snapshot(3, &[1, 2])).unwrap().unwrap();
        assert_eq!(changes.tags, vec![Uuid(2).tag()]);
        assert_eq!(exchange.generation(), 3);
    }

    #[test]
    fn stale_generations_are_refused() {
        let exchange = SnapshotExchange::new(snapshot(5, &[]), 1);
        assert_eq!(exchange.publish(snapshot(5, &[1])), Err(PublishError::StaleGeneration { offered: 5, current: 5 }));
        assert_eq!(exchange.current().generation(), 5);
    }

    #[test]
    fn readers_on_other_threads_see_every_publication() {
        let exchange = SnapshotExchange::new(snapshot(1, &[]), 1);
        std::thread::scope(|s| {
            // Taken before the first publication, so the reader sees them come.
            let mut r = exchange.reader(0);
            let worker = s.spawn(move || {
                let mut seen = vec![r.snapshot().generation()];
                while r.snapshot().generation() < 50 {
                    if r.refresh() {
                        seen.push(r.snapshot().generation());
                        // However many generations it skipped, it has the diff from its own.
                        assert!(matches!(r.changes(), Refresh::Tags(_)), "{:?}", r.changes());
                    }
                    // A slow loop turn, so that publications pile up between refreshes.
                    std::thread::sleep(Duration::from_micros(300));
                }
                seen
            });
            // Bursts of five publications, back to back; after each, the reader catches up.
            for g in 2..=50 {
                exchange.publish(snapshot(g, &[g as u128])).unwrap();
                if g % 5 == 0 {
                    assert!(exchange.wait_applied(g, Duration::from_secs(10)), "the reader takes {g}");
                }
            }
            let seen = worker.join().unwrap();
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "generations only move forward: {seen:?}");
            assert_eq!(*seen.last().unwrap(), 50);
            assert!(seen.len() > 10, "the reader took each burst's last: {seen:?}");
            assert!(seen.windows(2).any(|w| w[1] > w[0] + 1), "the reader skipped generations: {seen:?}");
        });
        assert!(exchange.wait_applied(50, Duration::from_secs(1)));
        assert_eq!(exchange.reclaim(), 0);
    }
}
