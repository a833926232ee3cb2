//! The ZooKeeper store against a real ZooKeeper server (the Debian `zookeeper` package, standalone,
//! one per test, in a temp dir on a free port, killed by PID on drop): the conformance suite, two
//! stores sharing one server, racing writers, ephemeral nodes, a retention-trimmed change log, calls
//! from inside a tokio runtime, and a server outage and restart.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use control::store::{suite, ZookeeperConfig, ZookeeperStore};
use control::{Host, Kind, Op, Store, StoreError, Topology, TopologyError};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// A standalone ZooKeeper server in a temp dir; killed on drop.
struct ZkServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl ZkServer {
    fn start() -> Self {
        assert!(
            Path::new(ZOOKEEPER_JAR).exists(),
            "{ZOOKEEPER_JAR} is missing: install the Debian package `zookeeper` with scripts/setup.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             minSessionTimeout=1000\nmaxSessionTimeout=20000\n4lw.commands.whitelist=srvr\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("zoo.cfg"), config).unwrap();
        let mut server = ZkServer { dir, port, child: None };
        server.launch();
        server
    }

    /// Starts (or restarts, on the same data dir and port) the server and waits until it serves.
    fn launch(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new("java")
            .args(["-Xmx96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", ZOOKEEPER_JAR])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.path().join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("java (openjdk, a dependency of the zookeeper package) must be installed: scripts/setup.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.serving() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!("zookeeper did not start on port {} within 30 s; its output:\n{log}", self.port);
    }

    /// The `srvr` four-letter command answers with the server's mode once it serves clients.
    fn serving(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut reply = String::new();
        conn.write_all(b"srvr").is_ok() && conn.read_to_string(&mut reply).is_ok() && reply.contains("Mode:")
    }

    /// Kills the server by PID (SIGKILL: nothing is flushed beyond what ZooKeeper already synced).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn config(&self, root: &str) -> ZookeeperConfig {
        ZookeeperConfig {
            hosts: format!("127.0.0.1:{}", self.port),
            root: root.into(),
            session_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(2),
            ..ZookeeperConfig::default()
        }
    }

    fn store(&self, root: &str) -> ZookeeperStore {
        connected(self.config(root))
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A store with its first session. Not `ZookeeperStore::connect`, which waits only the operation
/// timeout (2 s here, short on purpose for the outage tests) for it: a server that has just
/// started, on a loaded machine, may take longer to open the first session.
fn connected(config: ZookeeperConfig) -> ZookeeperStore {
    let store = ZookeeperStore::start(config).unwrap();
    wait_until(Duration::from_secs(30), "a first ZooKeeper session", || store.session_id().is_some());
    store
}

fn create(kind: Kind, id: &str) -> Op {
    Op::Create { kind, id: id.into(), data: format!("{{\"id\":\"{id}\"}}").into_bytes() }
}

/// Waits until the subscription reports a change (a new version or a resync), at most `limit`.
fn wait_changed(rx: &mut tokio::sync::watch::Receiver<u64>, limit: Duration) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(limit, rx.changed()).await.expect("no change notification in time").unwrap();
    });
    *rx.borrow_and_update()
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn conformance_suite() {
    let server = ZkServer::start();
    let mut n = 0;
    suite::run_all(|| {
        n += 1;
        server.store(&format!("/suite{n}"))
    });
}

#[test]
fn two_stores_see_each_others_commits() {
    let server = ZkServer::start();
    let a = server.store("");
    let b = server.store("");
    let mut b_rx = b.subscribe();
    b_rx.borrow_and_update();

    let v1 = a.commit(None, &[create(Kind::Router, "r1"), create(Kind::Port, "p1")]).unwrap();
    assert_eq!(wait_changed(&mut b_rx, Duration::from_secs(5)), v1, "b learns of a's commit by its watch");
    let seen = b.changes_since(0).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, v1);
    assert_eq!(
        seen[0].changes.iter().map(|c| (c.kind, c.id.as_str())).collect::<Vec<_>>(),
        [(Kind::Router, "r1"), (Kind::Port, "p1")]
    );
    assert!(b.get(Kind::Router, "r1").unwrap().is_some());

    let mut a_rx = a.subscribe();
    a_rx.borrow_and_update();
    let v2 = b.commit(Some(v1), &[Op::Delete { kind: Kind::Port, id: "p1".into() }]).unwrap();
    assert_eq!(wait_changed(&mut a_rx, Duration::from_secs(5)), v2);
    assert_eq!(a.changes_since(v1).unwrap()[0].changes[0].id, "p1");
    assert_eq!(a.get(Kind::Port, "p1").unwrap(), None);
}

#[test]
fn racing_writers_never_both_win_nor_lose_updates() {
    let server = ZkServer::start();
    let stores = Arc::new([server.store(""), server.store("")]);

    // Same expected version from two gateways: exactly one commit wins each round.
    for round in 0..10 {
        let expected = stores[0].version().unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (stores, barrier) = (Arc::clone(&stores), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    stores[i].commit(Some(expected), &[create(Kind::Router, &format!("r{round}-{i}"))])
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(wins, [&(expected + 1)], "round {round}: {results:?}");
        let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            matches!(lost, StoreError::VersionMismatch { expected: e, actual } if *e == expected && *actual == expected + 1),
            "{lost:?}"
        );
        assert_eq!(stores[0].list(Kind::Router).unwrap().len(), round + 1, "the loser left nothing behind");
    }

    // Without an expected version both keep going: every commit lands once, versions stay dense.
    let start = stores[0].version().unwrap();
    let writers: Vec<_> = (0..2)
        .map(|i| {
            let stores = Arc::clone(&stores);
            std::thread::spawn(move || {
                (0..25)
                    .map(|n| stores[i].commit(None, &[create(Kind::Chain, &format!("c{i}-{n}"))]).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut versions: Vec<u64> = writers.into_iter().flat_map(|t| t.join().unwrap()).collect::<Vec<u64>>();
    versions.sort_unstable();
    assert_eq!(versions, (start + 1..=start + 50).collect::<Vec<_>>());
    assert_eq!(stores[1].list(Kind::Chain).unwrap().len(), 50);
    let feed = stores[1].changes_since(start).unwrap();
    assert_eq!(feed.iter().map(|c| c.version).collect::<Vec<_>>(), versions);
}

#[test]
fn ephemeral_nodes_follow_the_session() {
    let server = ZkServer::start();
    // A session timeout (20 s, the server's most) far beyond the wait below, which a loaded machine
    // may need whole: only closing the session clears the key in time, not its expiry.
    let gateway = connected(ZookeeperConfig { session_timeout: Duration::from_secs(20), ..server.config("") });
    let observer = server.store("");
    assert!(!observer.alive("host-1").unwrap());
    gateway.set_alive("host-1").unwrap();
    assert!(observer.alive("host-1").unwrap());
    gateway.set_alive("host-1").unwrap(); // idempotent

    gateway.set_ephemeral("host-1/Port/p1/active", b"up").unwrap();
    assert!(observer.ephemeral_exists("host-1/Port/p1/active").unwrap());
    gateway.remove_ephemeral("host-1/Port/p1/active").unwrap();
    assert!(!observer.ephemeral_exists("host-1/Port/p1/active").unwrap());
    assert!(matches!(gateway.set_ephemeral("../x", b""), Err(StoreError::InvalidId(_))));

    // Dropping the store closes its session: the alive key goes at once, not after the timeout.
    drop(gateway);
    wait_until(Duration::from_secs(10), "alive to clear after the session closed", || {
        !observer.alive("host-1").unwrap()
    });
}

/// A gateway that dies without a clean stop leaves its Host document saying `alive: true`; the
/// REST API shows (and refuses deletion by) the session's alive key instead, as MidoNet does.
#[test]
fn a_crashed_gateways_host_is_shown_dead_and_can_be_deleted() {
    let server = ZkServer::start();
    let gateway = Arc::new(server.store(""));
    let observer = Topology::new(Arc::new(server.store("")));
    let registered = Topology::new(Arc::clone(&gateway))
        .report_host(Host {
            id: uuid::Uuid::new_v4(),
            name: Some("gw-1".into()),
            addresses: Vec::new(),
            host_interfaces: Vec::new(),
            alive: true,
            flooding_proxy_weight: None,
            container_weight: None,
            container_limit: None,
            enforce_container_limit: None,
        })
        .unwrap();
    let id = registered.id;
    gateway.set_alive(&id.to_string()).unwrap();
    assert!(observer.host(id).unwrap().alive);
    assert!(observer.hosts().unwrap().iter().all(|h| h.alive));
    assert!(matches!(observer.delete_host(id), Err(TopologyError::HostAlive(_))));

    // The crash: the session goes, the document stays as the gateway last wrote it.
    drop(gateway);
    assert!(observer.get::<Host>(&id.to_string()).unwrap().alive, "the stored document still says alive");
    wait_until(Duration::from_secs(10), "the host to be shown dead", || !observer.host(id).unwrap().alive);
    assert!(observer.hosts().unwrap().iter().all(|h| !h.alive));
    observer.delete_host(id).expect("a dead gateway's Host can be deleted");
    assert!(observer.hosts().unwrap().is_empty());
}

#[test]
fn trimmed_change_log_asks_for_a_resync() {
    let server = ZkServer::start();
    let store = connected(ZookeeperConfig { change_retention: 3, ..server.config("") });
    for n in 0..6 {
        store.commit(None, &[create(Kind::Rule, &format!("rule{n}"))]).unwrap();
    }
    // Trimming runs after each commit returns; wait for the last one.
    wait_until(Duration::from_secs(5), "the log to be trimmed", || {
        matches!(store.changes_since(2), Err(StoreError::ChangesTrimmed { .. }))
    });
    match store.changes_since(0) {
        Err(StoreError::ChangesTrimmed { since: 0, oldest: 4 }) => {}
        other => panic!("expected ChangesTrimmed {{ since: 0, oldest: 4 }}, got {other:?}"),
    }
    let err = store.changes_since(0).unwrap_err().to_string();
    assert!(err.contains("resync"), "{err}");
    let tail = store.changes_since(3).unwrap();
    assert_eq!(tail.iter().map(|c| c.version).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(store.list(Kind::Rule).unwrap().len(), 6, "trimming the log never touches objects");
}

/// The REST handlers run on a current-thread runtime and call the store directly.
#[tokio::test(flavor = "current_thread")]
async fn calls_from_inside_a_tokio_runtime_do_not_panic() {
    let server = ZkServer::start();
    let store = server.store("");
    let v = store.commit(None, &[create(Kind::Network, "b")]).unwrap();
    assert_eq!(store.version().unwrap(), v);
    assert!(store.get(Kind::Network, "b").unwrap().is_some());
    let store = Arc::new(store);
    let moved = Arc::clone(&store);
    let listed = tokio::task::spawn_blocking(move || moved.list(Kind::Network).unwrap()).await.unwrap();
    assert_eq!(listed.len(), 1);
    drop(store); // dropping the store (and its runtime) inside a runtime must not panic either
}

#[test]
fn outage_fails_fast_then_recovers_with_a_new_session() {
    let mut server = ZkServer::start();
    let store = server.store("");
    for n in 0..3 {
        store.commit(None, &[create(Kind::Router, &format!("r{n}"))]).unwrap();
    }
    store.set_alive("gw-1").unwrap();
    let session_before = store.session_id().unwrap();
    let mut rx = store.subscribe();
    rx.borrow_and_update();

    server.stop();
    // A write while the server is gone fails within the operation timeout, saying why.
    let started = Instant::now();
    let err = store.commit(None, &[create(Kind::Router, "during-outage")]).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(err.to_string().contains("zookeeper unavailable"), "{err}");
    assert!(
        matches!(store.get(Kind::Router, "r0"), Err(StoreError::Backend(m)) if m.contains("zookeeper unavailable"))
    );
    // Stay down past the session's expiry so recovery needs a new session.
    wait_until(Duration::from_secs(10), "the session to be declared lost", || {
        let started = Instant::now();
        let failed = store.version().is_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        failed && store.session_id().is_none()
    });
    std::thread::sleep(Duration::from_secs(3));

    server.launch();
    wait_until(Duration::from_secs(15), "a new session", || store.session_id().is_some());
    assert_ne!(store.session_id().unwrap(), session_before, "recovery took a new session");
    wait_changed(&mut rx, Duration::from_secs(5)); // subscribers are told to resync
    assert!(store.alive("gw-1").unwrap(), "the ephemeral alive key is back");
    let version = store.version().unwrap();
    assert_eq!(version, 3, "the write refused during the outage never reached the server");
    let ids: Vec<String> = store.list(Kind::Router).unwrap().into_iter().map(|(id, _)| id).collect();
    for n in 0..3 {
        assert!(ids.contains(&format!("r{n}")), "r{n} committed before the outage is still there: {ids:?}");
    }
    assert_eq!(store.changes_since(0).unwrap().len() as u64, version);
    let next = store.commit(Some(version), &[create(Kind::Router, "after-outage")]).unwrap();
    assert_eq!(next, version + 1);
}

#[test]
fn short_outage_resumes_the_same_session() {
    let mut server = ZkServer::start();
    let store = connected(ZookeeperConfig { session_timeout: Duration::from_secs(8), ..server.config("") });
    store.commit(None, &[create(Kind::Router, "r")]).unwrap();
    store.set_alive("gw-1").unwrap();
    let session = store.session_id().unwrap();
    let mut rx = store.subscribe();
    rx.borrow_and_update();

    // Back well within the session timeout: the server restores the session from its log.
    server.stop();
    server.launch();
    wait_changed(&mut rx, Duration::from_secs(8)); // a reconnect asks subscribers to resync
    wait_until(Duration::from_secs(10), "the session to be usable", || store.session_id().is_some());
    assert_eq!(store.session_id().unwrap(), session, "the same session resumed");
    assert!(store.alive("gw-1").unwrap());
    assert_eq!(store.commit(Some(1), &[create(Kind::Router, "s")]).unwrap(), 2);
}

/// Two gateways' topology services on one ZooKeeper: racing port creations on one bridge both land
/// (the loser re-runs on fresh data) and never share a tunnel key.
#[test]
fn two_topology_services_share_one_model() {
    let server = ZkServer::start();
    let gateways: Vec<_> = (0..2).map(|_| Arc::new(control::Topology::new(server.store("")))).collect();
    let bridge: control::Bridge = serde_json::from_str("{}").unwrap();
    let bridge = gateways[0].create_bridge(bridge).unwrap();
    assert_eq!(gateways[1].get::<control::Bridge>(&bridge.id.to_string()).unwrap().id, bridge.id);

    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = gateways
        .iter()
        .map(|topology| {
            let (topology, barrier) = (Arc::clone(topology), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                (0..5)
                    .map(|_| {
                        let port: control::Port = serde_json::from_str(r#"{"type": "Bridge"}"#).unwrap();
                        topology.create_port(bridge.id, port).unwrap().tunnel_key.unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut keys: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 10, "ten ports, ten distinct tunnel keys: {keys:?}");
    assert_eq!(gateways[1].device_ports(bridge.id).unwrap().len(), 10);
}

/// Ids ZooKeeper cannot hold in a path (control characters) are refused as invalid ids, and refused
/// before anything is written.
#[test]
fn ids_zookeeper_cannot_name_are_invalid() {
    let server = ZkServer::start();
    let store = server.store("");
    for bad in ["nul\u{0}id", "ctl\u{1}id", "\u{fff0}"] {
        let err = store.commit(None, &[create(Kind::Router, "fine"), create(Kind::Router, bad)]).unwrap_err();
        assert!(matches!(err, StoreError::InvalidId(_)), "{bad:?}: {err:?}");
        assert!(matches!(store.get(Kind::Router, bad), Err(StoreError::InvalidId(_))), "{bad:?}");
    }
    assert_eq!(store.version().unwrap(), 0);
    assert!(store.list(Kind::Router).unwrap().is_empty());
}

/// A long feed comes back whole and in order across several multi-reads.
#[test]
fn long_change_feed_reads_back_in_order() {
    let server = ZkServer::start();
    let store = server.store("");
    for n in 0..300 {
        store.commit(None, &[create(Kind::Route, &format!("route{n:03}"))]).unwrap();
    }
    let feed = store.changes_since(17).unwrap();
    assert_eq!(feed.iter().map(|c| c.version).collect::<Vec<_>>(), (18..=300).collect::<Vec<_>>());
    assert!(feed.iter().all(|c| c.changes[0].id == format!("route{:03}", c.version - 1)));
    assert_eq!(store.list(Kind::Route).unwrap().len(), 300);
}

/// A transaction too large for one ZooKeeper request is refused before it is sent, with the
/// reason (a server given it would drop the connection: an outage to the caller, outcome unknown);
/// nothing is written and the store keeps working. One just under the limit commits, so the
/// estimate is not far off.
#[test]
fn a_transaction_too_large_for_zookeeper_is_refused_with_the_reason() {
    let server = ZkServer::start();
    let store = server.store("");
    let big = |id: &str, bytes: usize| Op::Create { kind: Kind::Router, id: id.into(), data: vec![b'x'; bytes] };
    let err = store.commit(None, &[big("a", 600_000), big("b", 600_000)]).unwrap_err();
    let StoreError::TooLarge { bytes, limit } = err else { panic!("{err:?}") };
    assert!(bytes > 1_200_000 && limit == control::store::ZOOKEEPER_MAX_REQUEST_BYTES, "{bytes} {limit}");
    assert!(err_text(&store, &[big("a", 2_000_000)]).contains("jute.maxbuffer"));
    assert_eq!(store.version().unwrap(), 0, "nothing written");
    assert!(store.list(Kind::Router).unwrap().is_empty());

    // Just under the limit: ZooKeeper takes it (its own limit is 1 MiB - 1, with framing).
    let version = store.commit(None, &[big("a", 999_000)]).unwrap();
    assert_eq!(version, 1);
    assert_eq!(store.get(Kind::Router, "a").unwrap().map(|d| d.len()), Some(999_000));
    // Through the topology service, the REST API's status for it is 413.
    let e = TopologyError::Store(StoreError::TooLarge { bytes: 2_000_000, limit: 1_000_000 });
    assert_eq!(e.status(), 413);
}

fn err_text(store: &ZookeeperStore, ops: &[Op]) -> String {
    store.commit(None, ops).unwrap_err().to_string()
}
