//! The topology feed: with `[topology] source = "store"`, a control thread registers this gateway
//! as a Host, compiles the store into a snapshot, and recompiles and publishes a new one to the
//! workers whenever the store changes; nothing restarts.
//!
//! The thread watches the store's version (a cheap read every [`POLL`]); a change is compiled
//! (`control::compile`), compared with the snapshot in use, and published through the
//! [`SnapshotExchange`] only if a device changed, so writes that do not touch the data path (a
//! host's alive flag, a tenant) cost a compile and nothing on the cores. A compile error (a rule the
//! data path cannot represent) is logged and counted; the cores keep the last good snapshot, as
//! they do while the store is unreachable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use control::compile::{CompileContext, CompileError, ModelCache};
use control::model::{Host, Interface};
use control::store::ZookeeperStore;
use control::{DynStore, Store, Topology};
use midogw::SnapshotExchange;
use serde::Serialize;
use uuid::Uuid;

/// How often the feed looks at the store version when the store gives no change signal.
const POLL: Duration = Duration::from_millis(2);
/// How often the feed checks the store even without a signal (a missed wake-up costs at most this).
const RESYNC: Duration = Duration::from_secs(1);

/// Waits for the store's change signal (`Store::subscribe`), polling when it has none.
struct Changes {
    receiver: tokio::sync::watch::Receiver<u64>,
    runtime: Option<tokio::runtime::Runtime>,
    signalled: bool,
}

impl Changes {
    fn new(receiver: tokio::sync::watch::Receiver<u64>) -> Changes {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().ok();
        Changes { receiver, runtime, signalled: true }
    }

    /// Returns when the store signalled a change, or after `limit`; sleeps `POLL` when the store
    /// has no signal.
    fn wait(&mut self, limit: Duration) {
        let Some(runtime) = &self.runtime else {
            std::thread::sleep(POLL);
            return;
        };
        if !self.signalled {
            std::thread::sleep(POLL);
            return;
        }
        let receiver = &mut self.receiver;
        let result = runtime.block_on(async { tokio::time::timeout(limit, receiver.changed()).await });
        if let Ok(Err(_)) = result {
            // The sender is gone: this store has no change signal.
            self.signalled = false;
        }
    }
}
/// How long the feed waits for every worker to take a snapshot before it reports a stuck worker.
const APPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// One DPDK port as the Host's interface.
#[derive(Debug, Clone)]
pub struct LocalInterface {
    /// `[[port]] name`: what `interfaceName` bindings name.
    pub name: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u16,
}

/// Counters of the feed, for the run report.
#[derive(Debug, Default)]
pub struct FeedCounters {
    /// Compiles run.
    pub compiles: AtomicU64,
    /// Compiles that failed (the cores kept the previous snapshot).
    pub compile_errors: AtomicU64,
    /// Snapshots published to the workers.
    pub published: AtomicU64,
    /// Generation in use.
    pub generation: AtomicU64,
    /// Microseconds from seeing a store change to every worker running the new snapshot, last time.
    pub last_change_to_cores_us: AtomicU64,
    /// Microseconds the last compile took.
    pub last_compile_us: AtomicU64,
    /// Whether the last look at the store failed (the cores keep their snapshot meanwhile).
    pub store_unreachable: AtomicBool,
}

/// The feed's counters as reported.
#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    pub compiles: u64,
    pub compile_errors: u64,
    pub published: u64,
    pub generation: u64,
    pub last_change_to_cores_us: u64,
    pub last_compile_us: u64,
    pub store_unreachable: bool,
}

impl FeedCounters {
    pub fn report(&self) -> FeedReport {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FeedReport {
            compiles: l(&self.compiles),
            compile_errors: l(&self.compile_errors),
            published: l(&self.published),
            generation: l(&self.generation),
            last_change_to_cores_us: l(&self.last_change_to_cores_us),
            last_compile_us: l(&self.last_compile_us),
            store_unreachable: self.store_unreachable.load(Ordering::Relaxed),
        }
    }
}

/// Creates or refreshes this gateway's Host: its name, its DPDK ports as interfaces, alive.
pub fn register_host(
    topology: &Topology<DynStore>,
    zookeeper: Option<&ZookeeperStore>,
    id: Uuid,
    name: &str,
    interfaces: &[LocalInterface],
) -> Result<()> {
    let host_interfaces = interfaces
        .iter()
        .map(|i| Interface {
            host_id: Some(id),
            name: i.name.clone(),
            mac: Some(i.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")),
            mtu: Some(u32::from(i.mtu)),
            interface_type: Some("Physical".into()),
            endpoint: Some("DATAPATH".into()),
            port_type: None,
            addresses: Vec::new(),
            status: Some(1),
        })
        .collect();
    let host = Host {
        id,
        name: Some(name.to_string()),
        addresses: Vec::new(),
        host_interfaces,
        alive: true,
        flooding_proxy_weight: None,
        container_weight: None,
        container_limit: None,
        enforce_container_limit: None,
    };
    topology.report_host(host).context("cannot register this gateway as a Host")?;
    if let Some(zk) = zookeeper {
        // With several gateways, liveness is the session's ephemeral node: it disappears with us.
        zk.set_alive(&id.to_string()).context("cannot publish this gateway's alive state in ZooKeeper")?;
    }
    tracing::info!(host = %id, name, interfaces = interfaces.len(), "registered as host");
    Ok(())
}

/// Marks this gateway's Host not alive (at a clean stop).
pub fn unregister_host(topology: &Topology<DynStore>, zookeeper: Option<&ZookeeperStore>, id: Uuid) {
    if let Some(zk) = zookeeper {
        if let Err(e) = zk.remove_ephemeral(&ZookeeperStore::alive_key(&id.to_string())) {
            tracing::warn!("cannot remove host {id}'s alive key: {e}");
        }
    }
    match topology.get::<Host>(&id.to_string()) {
        Ok(host) => {
            if let Err(e) = topology.report_host(Host { alive: false, ..host }) {
                tracing::warn!("cannot mark host {id} not alive: {e}");
            }
        }
        Err(e) => tracing::warn!("cannot read host {id}: {e}"),
    }
}

/// The feed thread.
pub struct Feed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub counters: Arc<FeedCounters>,
}

/// Compiles the store once, for the first snapshot (generation 1), with the store version it
/// shows. A store that does not compile does not stop the appliance: the control plane must come
/// up for the operator to fix it. The cores then run an empty topology (they forward nothing)
/// until the feed compiles a change.
pub fn first_snapshot(
    topology: &Topology<DynStore>,
    cache: &mut ModelCache,
    ctx: &CompileContext,
) -> (flowtable::topology::Snapshot, u64) {
    // At most the version compiled: the feed compiles again from any later one.
    let version = topology.store().version().unwrap_or(0);
    let compiled = match cache.compile(topology, ctx) {
        Ok(compiled) => compiled,
        Err(e) => {
            tracing::error!(
                "cannot compile the stored topology, the data path forwards nothing until a change \
                 compiles (fix it over the REST API): {e}"
            );
            // A failed read is retried at the feed's first look (version 0 is never current).
            return (empty_snapshot(ctx), if e.is_refusal() { version } else { 0 });
        }
    };
    for w in &compiled.warnings {
        tracing::warn!("topology: {w}");
    }
    tracing::info!(
        routers = compiled.snapshot.routers().len(),
        bridges = compiled.snapshot.bridges().len(),
        ports = compiled.snapshot.ports().len(),
        store_version = compiled.store_version,
        "topology compiled from the store"
    );
    (compiled.snapshot, compiled.store_version)
}

/// A snapshot with no devices (and the gateway's underlay), generation 1.
fn empty_snapshot(ctx: &CompileContext) -> flowtable::topology::Snapshot {
    let mut builder = flowtable::topology::SnapshotBuilder::new(1);
    if let Some(underlay) = ctx.underlay {
        builder.set_underlay(underlay);
    }
    builder.build().expect("a snapshot with no devices always builds")
}

impl Feed {
    /// Starts watching the store from `store_version` (what the first snapshot showed).
    pub fn start(
        topology: Arc<Topology<DynStore>>,
        exchange: Arc<SnapshotExchange>,
        mut ctx: CompileContext,
        store_version: u64,
        mut cache: ModelCache,
    ) -> Result<Feed> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(FeedCounters::default());
        counters.generation.store(exchange.generation(), Ordering::Relaxed);
        let (s, c) = (Arc::clone(&stop), Arc::clone(&counters));
        let thread = std::thread::Builder::new()
            .name("midogw-feed".into())
            .spawn(move || {
                let mut seen = store_version;
                let mut last_warnings = Vec::new();
                let mut signal = Changes::new(topology.store().subscribe());
                while !s.load(Ordering::Relaxed) {
                    signal.wait(RESYNC);
                    let version = match topology.store().version() {
                        Ok(v) => v,
                        Err(e) => {
                            if !c.store_unreachable.swap(true, Ordering::Relaxed) {
                                tracing::warn!("store unreachable, the cores keep their topology: {e}");
                            }
                            continue;
                        }
                    };
                    if c.store_unreachable.swap(false, Ordering::Relaxed) {
                        tracing::info!("store reachable again: resyncing the topology");
                    }
                    if version == seen {
                        continue;
                    }
                    let noticed = Instant::now();
                    ctx.generation = exchange.generation() + 1;
                    c.compiles.fetch_add(1, Ordering::Relaxed);
                    let compiled = match cache.compile(&topology, &ctx) {
                        Ok(compiled) => compiled,
                        Err(e @ (CompileError::Store(_) | CompileError::Topology(_) | CompileError::Unstable)) => {
                            // Reading failed, not the topology: try this version again at the next wake.
                            if !c.store_unreachable.swap(true, Ordering::Relaxed) {
                                tracing::warn!("cannot read the topology, the cores keep theirs: {e}");
                            }
                            continue;
                        }
                        Err(e) => {
                            c.compile_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!("topology change not applied, the cores keep the previous one: {e}");
                            seen = version;
                            continue;
                        }
                    };
                    c.last_compile_us.store(noticed.elapsed().as_micros() as u64, Ordering::Relaxed);
                    seen = compiled.store_version;
                    if compiled.warnings != last_warnings {
                        for w in &compiled.warnings {
                            tracing::warn!("topology: {w}");
                        }
                        last_warnings = compiled.warnings;
                    }
                    let generation = compiled.snapshot.generation();
                    match exchange.publish_if_changed(compiled.snapshot) {
                        // Nothing the data path uses changed.
                        Ok(None) => {}
                        Ok(Some(changes)) => {
                            c.published.fetch_add(1, Ordering::Relaxed);
                            c.generation.store(generation, Ordering::Relaxed);
                            if exchange.wait_applied(generation, APPLY_TIMEOUT) {
                                let us = noticed.elapsed().as_micros() as u64;
                                c.last_change_to_cores_us.store(us, Ordering::Relaxed);
                                tracing::info!(generation, devices = changes.tags.len(), us, "topology published");
                            } else {
                                tracing::error!(
                                    generation,
                                    "a worker did not take the new topology within {APPLY_TIMEOUT:?}"
                                );
                            }
                        }
                        Err(e) => tracing::error!("cannot publish the topology: {e}"),
                    }
                    exchange.reclaim();
                }
            })
            .context("cannot start the topology feed thread")?;
        Ok(Feed { stop, thread: Some(thread), counters })
    }

    /// Whether the thread ended without being told to (it panicked): REST changes would no longer
    /// reach the cores, which keep forwarding on their last snapshot without anyone knowing.
    pub fn died(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Stops the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the topology feed thread panicked");
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::{ChangeSet, EmbeddedStore, Kind, Op, Port, Route, Router, StoreError};
    use flowtable::topology::{DeviceId, Uuid as FtUuid};
    use serde_json::json;

    /// A directory removed when the test ends, however it ends.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A store that panics when the feed thread asks its version once `broken` is set: what a bug
    /// in the feed's reading of the store would do to its thread.
    struct BreakingStore {
        inner: EmbeddedStore,
        broken: AtomicBool,
    }

    impl Store for BreakingStore {
        fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(kind, id)
        }
        fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.inner.list(kind)
        }
        fn commit(&self, expected: Option<u64>, ops: &[Op]) -> Result<u64, StoreError> {
            self.inner.commit(expected, ops)
        }
        fn version(&self) -> Result<u64, StoreError> {
            let feed = std::thread::current().name() == Some("midogw-feed");
            assert!(!(feed && self.broken.load(Ordering::Relaxed)), "the store broke under the feed");
            self.inner.version()
        }
        fn changes_since(&self, version: u64) -> Result<Vec<ChangeSet>, StoreError> {
            self.inner.changes_since(version)
        }
    }

    /// A feed thread that panics is reported as dead (the appliance stops on it); one that was
    /// told to stop is not.
    #[test]
    fn a_feed_that_panics_is_seen_dead_and_a_stopped_one_is_not() {
        let dir = Scratch(std::env::temp_dir().join(format!("midogw-feed-dies-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let store = Arc::new(BreakingStore {
            inner: EmbeddedStore::open(dir.0.join("store.redb")).unwrap(),
            broken: AtomicBool::new(false),
        });
        let topology = Arc::new(Topology::new(Arc::clone(&store) as DynStore));
        let ctx = CompileContext { generation: 1, ..Default::default() };
        let mut cache = ModelCache::new();
        let (snap, version) = first_snapshot(&topology, &mut cache, &ctx);
        let exchange = Arc::new(SnapshotExchange::new(snap, 1));
        let feed = Feed::start(Arc::clone(&topology), Arc::clone(&exchange), ctx.clone(), version, cache).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!feed.died(), "a running feed is alive");
        store.broken.store(true, Ordering::Relaxed);
        // A write wakes the feed, which asks the store's version and panics.
        topology.create_router(serde_json::from_value(json!({"name": "r"})).unwrap()).unwrap();
        wait_until("the feed thread ends", || feed.died());
        feed.stop();

        store.broken.store(false, Ordering::Relaxed);
        let (snap, version) = first_snapshot(&topology, &mut ModelCache::new(), &ctx);
        let feed =
            Feed::start(topology, Arc::new(SnapshotExchange::new(snap, 1)), ctx, version, ModelCache::new()).unwrap();
        feed.stop.store(true, Ordering::Relaxed);
        wait_until("the feed thread stops", || feed.thread.as_ref().is_some_and(JoinHandle::is_finished));
        assert!(!feed.died(), "a feed told to stop did not die");
    }

    /// Waits for `done` with a generous bound: a hang fails the test instead of stalling it.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The whole path of the commonest REST write, counted: the write check judges the route
    /// alone (no whole-topology compile before the commit), the feed compiles the committed store
    /// once, and the worker takes the snapshot with the route in it. A second compile anywhere
    /// on the way (the write check, or the feed compiling a change twice) fails it.
    #[test]
    fn a_route_write_is_compiled_once_by_the_feed_and_reaches_the_worker() {
        let dir = Scratch(std::env::temp_dir().join(format!("midogw-feed-test-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let store: DynStore = Arc::new(EmbeddedStore::open(dir.0.join("store.redb")).unwrap());
        let topology = Arc::new(Topology::new(store));
        let router: Router = serde_json::from_value(json!({"name": "r"})).unwrap();
        let router = topology.create_router(router).unwrap();
        let port: Port = serde_json::from_value(
            json!({"type": "Router", "portAddress": "10.0.0.1", "networkAddress": "10.0.0.0", "networkLength": 24}),
        )
        .unwrap();
        let port = topology.create_port(router.id, port).unwrap();
        let ctx = CompileContext { generation: 1, ..Default::default() };
        topology.set_compile_context(ctx.clone());
        let mut cache = ModelCache::new();
        let (snap, version) = first_snapshot(&topology, &mut cache, &ctx);
        let exchange = Arc::new(SnapshotExchange::new(snap, 1));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (exchange, stop) = (Arc::clone(&exchange), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reader = exchange.reader(0);
                while !stop.load(Ordering::Relaxed) {
                    reader.refresh();
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        let feed = Feed::start(Arc::clone(&topology), Arc::clone(&exchange), ctx, version, cache).unwrap();
        let checks = topology.write_check_compiles();
        let mut routes = Vec::new();
        for i in 1..=5u64 {
            let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": format!("192.0.{i}.0"),
                "dstNetworkLength": 24, "nextHopPort": port.id, "nextHopGateway": "10.0.0.254", "type": "Normal",
                "weight": 100});
            let route: Route = serde_json::from_value(body).unwrap();
            routes.push(topology.create_route(router.id, route).unwrap().id);
            wait_until(&format!("write {i} published"), || feed.counters.published.load(Ordering::Relaxed) == i);
            assert_eq!(feed.counters.compiles.load(Ordering::Relaxed), i, "the feed compiles each write once");
            assert_eq!(feed.counters.compile_errors.load(Ordering::Relaxed), 0);
        }
        assert_eq!(topology.write_check_compiles(), checks, "route writes are judged alone before they commit");
        // Every write reaches the worker: it takes the last generation, which has every route.
        // Published is not taken: the worker refreshes between packets, so wait for it.
        let generation = feed.counters.generation.load(Ordering::Relaxed);
        wait_until("the worker takes the last generation", || exchange.worker_generation(0) == Some(generation));
        let current = exchange.current();
        let snap = &current.snapshot;
        let Some(DeviceId::Router(r)) = snap.find(FtUuid(router.id.as_u128())) else { panic!("router not compiled") };
        for id in routes {
            assert!(snap.router(r).routes.iter().any(|route| route.uuid == FtUuid(id.as_u128())), "route {id}");
        }
        feed.stop();
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
    }
}
