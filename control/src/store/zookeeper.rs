//! The ZooKeeper store: the same model as the embedded store, shared by a cluster of gateways.
//!
//! Layout under `<root>/midonet/zoom/0` (`root` is configurable, default empty):
//! - `models/<Kind>/<id>`: one persistent node per object, its data the JSON document;
//! - `version`: the store version, which is this node's ZooKeeper data version (`stat.version`; its
//!   data repeats it in decimal for people reading the tree);
//! - `changes/cs-NNNNNNNNNN`: the [`ChangeSet`] (JSON) that produced version N, the last
//!   [`ZookeeperConfig::change_retention`] of them kept;
//! - `state/<key path>`: ephemeral state keys (`<host>/Host/<host>/alive`, ...) owned by this session.
//!
//! Every [`Store::commit`] is one ZooKeeper `multi`: set the version node expecting the version read
//! just before, then the object ops, then create the change node. Either all of it applies or none;
//! two writers racing on the same version cannot both win. The client runs on a private tokio runtime
//! (one thread, `midogw-zk`); the synchronous [`Store`] methods hand it a future and wait on a channel
//! for at most [`ZookeeperConfig::operation_timeout`]. That never panics inside another tokio runtime
//! and cannot deadlock on it, but it does block the calling thread: async callers on a current-thread
//! runtime should prefer `spawn_blocking`.
//!
//! A supervisor task owns the session: it connects (retrying with backoff), creates the layout,
//! re-creates this store's ephemeral nodes, keeps a data watch armed on the version node and pushes
//! each version to [`Store::subscribe`]. When the session is lost (ZooKeeper down longer than the
//! session timeout) every call fails at once with `zookeeper unavailable: ...`; when a server answers
//! again a new session is made, ephemerals and the watch come back and subscribers are woken to resync.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};
use zookeeper_client::{
    Acls, Client, CreateMode, CreateOptions, Error as ZkError, EventType, MultiReadResult, MultiWriteError,
    SessionState,
};

use super::{check_id, ChangeSet, Kind, Op, Store, StoreError, MODELS_ROOT};

/// ZOOM's base under the configured root.
const ZOOM_BASE: &str = "/midonet/zoom/0";
/// Reads batched into one ZooKeeper multi-read (well under the 1 MiB `jute.maxbuffer`).
const READ_BATCH: usize = 128;
/// Retry delays while no server answers.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());

/// Where and how to reach ZooKeeper (`[store] kind = "zookeeper"` in the appliance's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperConfig {
    /// Connect string, `host:port,host:port,...`.
    pub hosts: String,
    /// Prefix before `/midonet/zoom/0`: empty (the default) or an absolute path without a trailing `/`.
    pub root: String,
    /// Session timeout asked of the server (it clamps it to its `minSessionTimeout..maxSessionTimeout`).
    /// Ephemeral nodes outlive a dead gateway by this long.
    pub session_timeout: Duration,
    /// Longest any call waits, including for a reply while disconnected.
    pub operation_timeout: Duration,
    /// Change sets kept in `changes/`; a reader further behind gets [`StoreError::ChangesTrimmed`].
    pub change_retention: u64,
}

impl Default for ZookeeperConfig {
    fn default() -> Self {
        ZookeeperConfig {
            hosts: "127.0.0.1:2181".into(),
            root: String::new(),
            // MidoNet's `zookeeper.session_timeout` default.
            session_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(5),
            change_retention: 10_000,
        }
    }
}

/// Node paths under the configured root.
#[derive(Debug, Clone)]
struct Paths {
    root: String,
    base: String,
}

impl Paths {
    fn new(root: &str) -> Result<Self, StoreError> {
        let valid = root.is_empty()
            || (root.starts_with('/') && !root.ends_with('/') && root[1..].split('/').all(|s| check_id(s).is_ok()));
        if !valid {
            return Err(StoreError::Backend(format!(
                "invalid zookeeper root {root:?}: empty or an absolute path without a trailing '/'"
            )));
        }
        Ok(Paths { root: root.to_string(), base: format!("{root}{ZOOM_BASE}") })
    }
    fn class(&self, kind: Kind) -> String {
        format!("{}{}", self.root, kind.class_path())
    }
    fn object(&self, kind: Kind, id: &str) -> String {
        format!("{}{}", self.root, kind.object_path(id))
    }
    fn version(&self) -> String {
        format!("{}/version", self.base)
    }
    fn changes(&self) -> String {
        format!("{}/changes", self.base)
    }
    fn change(&self, version: u64) -> String {
        format!("{}/changes/cs-{version:010}", self.base)
    }
    fn state(&self, suffix: &str) -> String {
        format!("{}/state/{suffix}", self.base)
    }
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("zookeeper unavailable: {what}"))
}

/// Maps a client error: connectivity problems say "unavailable", everything else is a backend fault.
fn zk_error(e: ZkError) -> StoreError {
    match e {
        ZkError::ConnectionLoss
        | ZkError::SessionExpired
        | ZkError::SessionMoved
        | ZkError::Timeout
        | ZkError::NoHosts
        | ZkError::ClientClosed => unavailable(e),
        e => StoreError::Backend(format!("zookeeper: {e}")),
    }
}

/// State shared by the store handle and its supervisor task.
struct Shared {
    config: ZookeeperConfig,
    paths: Paths,
    /// The client of the live session; `None` while there is none.
    client: RwLock<Option<Client>>,
    /// Why there is no session, for error messages.
    down_reason: Mutex<String>,
    /// Ephemeral nodes this store wants (suffix under `state/` -> data), re-created on every session.
    ephemerals: Mutex<BTreeMap<String, Vec<u8>>>,
    version_tx: watch::Sender<u64>,
}

impl Shared {
    /// The client of a connected session, or an "unavailable" error without touching the network.
    fn client(&self) -> Result<Client, StoreError> {
        let guard = self.client.read().unwrap_or_else(|e| e.into_inner());
        let Some(client) = guard.as_ref() else {
            let reason = self.down_reason.lock().unwrap_or_else(|e| e.into_inner());
            return Err(unavailable(format!("no session with {}: {reason}", self.config.hosts)));
        };
        match client.state() {
            SessionState::SyncConnected => Ok(client.clone()),
            state => Err(unavailable(format!(
                "session {} is {state} (servers {}); reconnecting",
                client.session_id(),
                self.config.hosts
            ))),
        }
    }

    fn set_client(&self, client: Option<Client>) {
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
    }

    fn set_down(&self, reason: String) {
        *self.down_reason.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// Publishes a version seen; never moves subscribers backwards within a session.
    fn publish(&self, version: u64) {
        self.version_tx.send_if_modified(|current| {
            let newer = version > *current;
            if newer {
                *current = version;
            }
            newer
        });
    }

    /// Wakes every subscriber, version changed or not: "resync". The version never goes backwards
    /// (a watch armed before a local commit may report the older version).
    fn publish_resync(&self, version: u64) {
        self.version_tx.send_modify(|current| *current = (*current).max(version));
    }
}

/// A [`Store`] on ZooKeeper 3.5+ (tested against the Debian 3.8 server). See the module docs.
pub struct ZookeeperStore {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: watch::Sender<bool>,
    supervisor_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for ZookeeperStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZookeeperStore")
            .field("hosts", &self.shared.config.hosts)
            .field("root", &self.shared.config.root)
            .finish_non_exhaustive()
    }
}

impl ZookeeperStore {
    /// Starts the store and waits up to `operation_timeout` for the first session. Fails with
    /// `zookeeper unavailable: ...` if none comes; use [`ZookeeperStore::start`] to start anyway.
    pub fn connect(config: ZookeeperConfig) -> Result<Self, StoreError> {
        let store = Self::start(config)?;
        let deadline = std::time::Instant::now() + store.shared.config.operation_timeout;
        while std::time::Instant::now() < deadline {
            if store.shared.client().is_ok() {
                return Ok(store);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(store.shared.client().err().unwrap_or_else(|| unavailable("no session yet")))
    }

    /// Starts the store without waiting: calls fail with `zookeeper unavailable: ...` until the
    /// supervisor has a session (it keeps trying).
    pub fn start(config: ZookeeperConfig) -> Result<Self, StoreError> {
        let paths = Paths::new(&config.root)?;
        if config.hosts.trim().is_empty() {
            return Err(StoreError::Backend("zookeeper hosts is empty: give host:port[,host:port...]".into()));
        }
        if config.change_retention == 0 {
            return Err(StoreError::Backend("zookeeper change_retention must be at least 1".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("midogw-zk")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("zookeeper runtime: {e}")))?;
        let shared = Arc::new(Shared {
            config,
            paths,
            client: RwLock::new(None),
            down_reason: Mutex::new("connecting".into()),
            ephemerals: Mutex::new(BTreeMap::new()),
            version_tx: watch::Sender::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let supervised = Arc::clone(&shared);
        runtime.spawn(async move {
            supervise(&supervised, shutdown_rx).await;
            let _ = done_tx.send(());
        });
        Ok(ZookeeperStore { shared, runtime: Some(runtime), shutdown, supervisor_done: Mutex::new(Some(done_rx)) })
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &ZookeeperConfig {
        &self.shared.config
    }

    /// The id of the live session, `None` while there is none (or it is disconnected).
    pub fn session_id(&self) -> Option<i64> {
        self.shared.client().ok().map(|c| c.session_id().0)
    }

    /// Runs `work` with the live session's client on the store's runtime and waits for it, at most
    /// `operation_timeout`.
    fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Client, Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let client = self.shared.client()?;
        let timeout = self.shared.config.operation_timeout;
        let future = work(client, Arc::clone(&self.shared));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().ok_or_else(|| unavailable("store closed"))?;
        runtime.spawn(async move {
            let result = match tokio::time::timeout(timeout, future).await {
                Ok(result) => result,
                Err(_) => Err(unavailable(format!("no reply within {timeout:?}"))),
            };
            let _ = tx.send(result);
        });
        // The task's own timeout answers first; this bound only guards against a stalled runtime.
        rx.recv_timeout(timeout + Duration::from_secs(1))
            .map_err(|_| unavailable(format!("no reply within {timeout:?} (runtime stalled)")))?
    }

    /// Creates (or updates) the ephemeral node `<root>/midonet/zoom/0/state/<suffix>` owned by this
    /// store's session, and remembers it: it is re-created on every new session and disappears when
    /// the store is dropped or its session expires. `suffix` is a relative path of one or more
    /// segments, e.g. [`ZookeeperStore::alive_key`]. On an error the node may not exist yet, but the
    /// wish is kept and applied when the next session starts.
    pub fn set_ephemeral(&self, suffix: &str, data: &[u8]) -> Result<(), StoreError> {
        check_suffix(suffix)?;
        self.shared.ephemerals.lock().unwrap_or_else(|e| e.into_inner()).insert(suffix.to_string(), data.to_vec());
        let path = self.shared.paths.state(suffix);
        let data = data.to_vec();
        self.run(|client, _| async move { put_ephemeral(&client, &path, &data).await })
    }

    /// Forgets an ephemeral node set with [`ZookeeperStore::set_ephemeral`] and deletes it if this
    /// session owns it.
    pub fn remove_ephemeral(&self, suffix: &str) -> Result<(), StoreError> {
        check_suffix(suffix)?;
        self.shared.ephemerals.lock().unwrap_or_else(|e| e.into_inner()).remove(suffix);
        let path = self.shared.paths.state(suffix);
        self.run(|client, _| async move {
            match client.get_data(&path).await {
                Ok((_, stat)) if stat.ephemeral_owner == client.session_id().0 => {
                    match client.delete(&path, Some(stat.version)).await {
                        Ok(()) | Err(ZkError::NoNode) => Ok(()),
                        Err(e) => Err(zk_error(e)),
                    }
                }
                Ok(_) | Err(ZkError::NoNode) => Ok(()),
                Err(e) => Err(zk_error(e)),
            }
        })
    }

    /// Whether the ephemeral node `state/<suffix>` exists (set by any gateway's session).
    pub fn ephemeral_exists(&self, suffix: &str) -> Result<bool, StoreError> {
        check_suffix(suffix)?;
        let path = self.shared.paths.state(suffix);
        self.run(|client, _| async move { client.check_stat(&path).await.map(|s| s.is_some()).map_err(zk_error) })
    }

    /// The state key MidoNet uses for a live host: `<host>/Host/<host>/alive`.
    pub fn alive_key(host_id: &str) -> String {
        format!("{host_id}/{}/{host_id}/alive", Kind::Host.as_str())
    }

    /// Marks `host_id` alive for as long as this store's session lives.
    pub fn set_alive(&self, host_id: &str) -> Result<(), StoreError> {
        check_id(host_id)?;
        self.set_ephemeral(&Self::alive_key(host_id), b"")
    }

    /// Whether some gateway's session currently holds `host_id`'s alive key.
    pub fn alive(&self, host_id: &str) -> Result<bool, StoreError> {
        check_id(host_id)?;
        self.ephemeral_exists(&Self::alive_key(host_id))
    }
}

impl Drop for ZookeeperStore {
    fn drop(&mut self) {
        // Stop the supervisor, which drops the last client and so closes the session (ephemeral nodes
        // go at once instead of after the session timeout), then drop the runtime without blocking
        // in case this runs inside another runtime.
        let _ = self.shutdown.send(true);
        self.shared.set_client(None);
        if let Some(done) = self.supervisor_done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn check_suffix(suffix: &str) -> Result<(), StoreError> {
    if suffix.is_empty() || suffix.split('/').any(|segment| check_id(segment).is_err()) {
        return Err(StoreError::InvalidId(suffix.to_string()));
    }
    Ok(())
}

/// Path problems the client refuses before sending (characters ZooKeeper does not allow).
fn path_error(id: &str, e: ZkError) -> StoreError {
    match e {
        ZkError::BadArguments(_) => StoreError::InvalidId(id.to_string()),
        e => zk_error(e),
    }
}

async fn put_ephemeral(client: &Client, path: &str, data: &[u8]) -> Result<(), StoreError> {
    let parent = &path[..path.rfind('/').unwrap_or(0)];
    client.mkdir(parent, &PERSISTENT).await.map_err(zk_error)?;
    // A node left by an older session of this gateway (not yet expired by the server) is taken over.
    for _ in 0..3 {
        match client.create(path, data, &EPHEMERAL).await {
            Ok(_) => return Ok(()),
            Err(ZkError::NodeExists) => {}
            Err(e) => return Err(zk_error(e)),
        }
        match client.get_data(path).await {
            Ok((_, stat)) if stat.ephemeral_owner == client.session_id().0 => {
                return client.set_data(path, data, None).await.map(drop).map_err(zk_error);
            }
            Ok((_, stat)) => {
                debug!(path, owner = stat.ephemeral_owner, "taking over an ephemeral node of another session");
                match client.delete(path, Some(stat.version)).await {
                    Ok(()) | Err(ZkError::NoNode) | Err(ZkError::BadVersion) => {}
                    Err(e) => return Err(zk_error(e)),
                }
            }
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(zk_error(e)),
        }
    }
    Err(StoreError::Backend(format!("zookeeper: ephemeral node {path} keeps being re-created by another session")))
}

/// Creates the layout (idempotent; several gateways may race on it).
async fn create_layout(client: &Client, paths: &Paths) -> Result<(), ZkError> {
    for kind in Kind::ALL {
        client.mkdir(&paths.class(kind), &PERSISTENT).await?;
    }
    client.mkdir(&paths.changes(), &PERSISTENT).await?;
    client.mkdir(&format!("{}/state", paths.base), &PERSISTENT).await?;
    match client.create(&paths.version(), b"0", &PERSISTENT).await {
        Ok(_) | Err(ZkError::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The version node's data version is the store version.
async fn read_version(client: &Client, paths: &Paths) -> Result<u64, StoreError> {
    let (_, stat) = client.get_data(&paths.version()).await.map_err(zk_error)?;
    u64::try_from(stat.version).map_err(|_| StoreError::Backend(format!("zookeeper: bad version {}", stat.version)))
}

/// Why a session ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Owns the session: connect, prepare, watch, and start over when the session is lost.
async fn supervise(shared: &Shared, mut shutdown: watch::Receiver<bool>) {
    let config = &shared.config;
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connect =
            Client::connector().with_session_timeout(config.session_timeout).with_fail_eagerly().connect(&config.hosts);
        let attempt = tokio::select! {
            r = tokio::time::timeout(config.operation_timeout, connect) => r,
            _ = shutdown.changed() => return,
        };
        let client = match attempt {
            Ok(Ok(client)) => client,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no session within {:?}", config.operation_timeout),
                };
                debug!(hosts = %config.hosts, %reason, "zookeeper connect failed; retrying in {backoff:?}");
                shared.set_down(format!("cannot connect: {reason}"));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        match tokio::time::timeout(config.operation_timeout, prepare_session(shared, &client)).await {
            Ok(Ok(())) => backoff = BACKOFF_MIN,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("session setup took longer than {:?}", config.operation_timeout),
                };
                warn!(hosts = %config.hosts, %reason, "zookeeper session setup failed; reconnecting in {backoff:?}");
                shared.set_down(reason);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        info!(hosts = %config.hosts, session = %client.session_id(), "zookeeper session established");
        let end = watch_session(shared, &client, &mut shutdown).await;
        shared.set_client(None);
        match end {
            SessionEnd::Shutdown => return,
            SessionEnd::Lost(reason) => {
                warn!(hosts = %config.hosts, session = %client.session_id(), %reason, "zookeeper session lost");
                shared.set_down(format!("session lost: {reason}"));
            }
        }
    }
}

/// Layout and this store's ephemeral nodes, before the session is handed to callers.
async fn prepare_session(shared: &Shared, client: &Client) -> Result<(), StoreError> {
    create_layout(client, &shared.paths).await.map_err(zk_error)?;
    let wanted = shared.ephemerals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (suffix, data) in wanted {
        put_ephemeral(client, &shared.paths.state(&suffix), &data).await?;
    }
    Ok(())
}

/// Keeps a data watch on the version node and publishes each version; returns when the session
/// ends. Subscribers are woken (resync) when the session starts and after every reconnect, since
/// a reconnect may have hidden changes. Callers get the session once the first version is
/// published, so a subscriber made after [`ZookeeperStore::connect`] starts from the current one.
async fn watch_session(shared: &Shared, client: &Client, shutdown: &mut watch::Receiver<bool>) -> SessionEnd {
    let version_path = shared.paths.version();
    let mut state = client.state_watcher();
    let mut resync = true;
    let mut handed_out = false;
    loop {
        let armed = tokio::select! {
            r = tokio::time::timeout(shared.config.operation_timeout, client.get_and_watch_data(&version_path)) => r,
            _ = shutdown.changed() => return SessionEnd::Shutdown,
        };
        let watcher = match armed {
            Ok(Ok((_, stat, watcher))) => {
                let version = u64::try_from(stat.version).unwrap_or(0);
                if std::mem::take(&mut resync) {
                    shared.publish_resync(version);
                } else {
                    shared.publish(version);
                }
                if !std::mem::replace(&mut handed_out, true) {
                    shared.set_client(Some(client.clone()));
                }
                watcher
            }
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "watch not armed in time".to_string(),
                };
                if client.state().is_terminated() {
                    return SessionEnd::Lost(format!("{} ({reason})", client.state()));
                }
                // Disconnected: wait for the session to come back or die, then re-arm.
                debug!(%reason, "version watch not armed; waiting for the session");
                tokio::select! {
                    s = state.changed() => {
                        if s.is_terminated() {
                            return SessionEnd::Lost(s.to_string());
                        }
                    }
                    _ = tokio::time::sleep(BACKOFF_MAX) => {}
                    _ = shutdown.changed() => return SessionEnd::Shutdown,
                }
                resync = true;
                continue;
            }
        };
        tokio::select! {
            event = watcher.changed() => {
                if event.event_type == EventType::Session && event.session_state.is_terminated() {
                    return SessionEnd::Lost(event.session_state.to_string());
                }
            }
            s = state.changed() => {
                if s.is_terminated() {
                    return SessionEnd::Lost(s.to_string());
                }
                if s == SessionState::Disconnected {
                    // Wait for the same session to come back (watches are restored by the server).
                    loop {
                        tokio::select! {
                            s = state.changed() => {
                                if s.is_terminated() {
                                    return SessionEnd::Lost(s.to_string());
                                }
                                if s == SessionState::SyncConnected {
                                    break;
                                }
                            }
                            _ = shutdown.changed() => return SessionEnd::Shutdown,
                        }
                    }
                    info!(session = %client.session_id(), "zookeeper session reconnected");
                }
                resync = true;
            }
            _ = shutdown.changed() => return SessionEnd::Shutdown,
        }
    }
}

/// Reads `paths` with multi-reads of [`READ_BATCH`]; `None` for a node that does not exist.
async fn read_many(client: &Client, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let mut out = Vec::with_capacity(paths.len());
    for batch in paths.chunks(READ_BATCH) {
        let mut reader = client.new_multi_reader();
        for path in batch {
            reader.add_get_data(path).map_err(zk_error)?;
        }
        for result in reader.commit().await.map_err(zk_error)? {
            match result {
                MultiReadResult::Data { data, .. } => out.push(Some(data)),
                MultiReadResult::Error { err: ZkError::NoNode } => out.push(None),
                MultiReadResult::Error { err } => return Err(zk_error(err)),
                _ => return Err(StoreError::Backend("zookeeper: unexpected reply to a data read".into())),
            }
        }
    }
    Ok(out)
}

/// One attempt at a commit; `Ok(None)` means another writer moved the version first (retry).
/// The most one multi request may carry: ZooKeeper's default `jute.maxbuffer` (1 MiB less one
/// byte), less room for the request's own framing. A server given a larger packet drops the
/// connection, which the client sees as a lost session, indistinguishable from an outage.
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

/// Bytes a multi request adds per operation besides its path and data: the operation header, the
/// length prefixes, the version and the ACL of a create (jute encoding), rounded up.
const PER_OP_BYTES: usize = 64;

/// Refuses a transaction that would not fit one request ([`StoreError::TooLarge`]), before it is
/// sent: an estimate from above of the multi request `try_commit` builds.
fn check_request_size(paths: &Paths, ops: &[Op], log_len: usize) -> Result<(), StoreError> {
    let op_bytes = |op: &Op| {
        let (kind, id) = op.target();
        let data = match op {
            Op::Create { data, .. } | Op::Update { data, .. } => data.len(),
            Op::Delete { .. } => 0,
        };
        paths.object(kind, id).len() + data + PER_OP_BYTES
    };
    let fixed = paths.version().len() + 20 + paths.change(u64::MAX).len() + log_len + 2 * PER_OP_BYTES;
    let bytes = ops.iter().map(op_bytes).sum::<usize>() + fixed;
    if bytes > MAX_REQUEST_BYTES {
        return Err(StoreError::TooLarge { bytes, limit: MAX_REQUEST_BYTES });
    }
    Ok(())
}

async fn try_commit(
    client: &Client,
    paths: &Paths,
    expected: Option<u64>,
    ops: &[Op],
) -> Result<Option<u64>, StoreError> {
    let current = read_version(client, paths).await?;
    if let Some(expected) = expected {
        if expected != current {
            return Err(StoreError::VersionMismatch { expected, actual: current });
        }
    }
    if ops.is_empty() {
        return Ok(Some(current));
    }
    let next = current + 1;
    let (Ok(current_stat), Ok(_)) = (i32::try_from(current), i32::try_from(next)) else {
        return Err(StoreError::Backend("zookeeper: version counter exhausted (2^31 commits)".into()));
    };
    let change_set = ChangeSet { version: next, changes: ops.iter().map(Op::change).collect() };
    let log = serde_json::to_vec(&change_set).map_err(|e| StoreError::Backend(e.to_string()))?;

    check_request_size(paths, ops, log.len())?;
    let mut writer = client.new_multi_writer();
    writer.add_set_data(&paths.version(), next.to_string().as_bytes(), Some(current_stat)).map_err(zk_error)?;
    for op in ops {
        let (kind, id) = op.target();
        let path = paths.object(kind, id);
        match op {
            Op::Create { data, .. } => writer.add_create(&path, data, &PERSISTENT),
            Op::Update { data, .. } => writer.add_set_data(&path, data, None),
            Op::Delete { .. } => writer.add_delete(&path, None),
        }
        .map_err(|e| path_error(id, e))?;
    }
    writer.add_create(&paths.change(next), &log, &PERSISTENT).map_err(zk_error)?;

    match writer.commit().await {
        Ok(_) => Ok(Some(next)),
        Err(MultiWriteError::OperationFailed { index: 0, source: ZkError::BadVersion }) => match expected {
            None => Ok(None),
            Some(expected) => {
                let actual = read_version(client, paths).await?;
                Err(StoreError::VersionMismatch { expected, actual })
            }
        },
        Err(MultiWriteError::OperationFailed { index, source }) if (1..=ops.len()).contains(&index) => {
            let op = &ops[index - 1];
            let (kind, id) = op.target();
            let id = id.to_string();
            Err(match (op, source) {
                (Op::Create { .. }, ZkError::NodeExists) => StoreError::AlreadyExists { kind, id },
                (Op::Update { .. } | Op::Delete { .. }, ZkError::NoNode) => StoreError::NotFound { kind, id },
                (_, e) => StoreError::Backend(format!("zookeeper: {kind} {id}: {e}")),
            })
        }
        Err(MultiWriteError::OperationFailed { source, .. }) => {
            Err(StoreError::Backend(format!("zookeeper: change log entry {next}: {source}")))
        }
        // The request may or may not have been applied: say so; the version tells.
        Err(MultiWriteError::RequestFailed { source }) => {
            Err(unavailable(format!("{source} during commit of version {next}; outcome unknown, re-read the version")))
        }
    }
}

impl Store for ZookeeperStore {
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id(id)?;
        let path = self.shared.paths.object(kind, id);
        let id = id.to_string();
        self.run(|client, _| async move {
            match client.get_data(&path).await {
                Ok((data, _)) => Ok(Some(data)),
                Err(ZkError::NoNode) => Ok(None),
                Err(e) => Err(path_error(&id, e)),
            }
        })
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let class = self.shared.paths.class(kind);
        self.run(|client, _| async move {
            let mut ids = match client.list_children(&class).await {
                Ok(ids) => ids,
                Err(ZkError::NoNode) => return Ok(Vec::new()),
                Err(e) => return Err(zk_error(e)),
            };
            ids.sort_unstable();
            let paths: Vec<String> = ids.iter().map(|id| format!("{class}/{id}")).collect();
            let data = read_many(&client, &paths).await?;
            // A node deleted between the listing and the read is simply not listed.
            Ok(ids.into_iter().zip(data).filter_map(|(id, data)| Some((id, data?))).collect())
        })
    }

    fn commit(&self, expected: Option<u64>, ops: &[Op]) -> Result<u64, StoreError> {
        for op in ops {
            check_id(op.target().1)?;
        }
        debug_assert!(ops.iter().all(|op| op.target().0.class_path().starts_with(MODELS_ROOT)));
        let ops = ops.to_vec();
        let version = self.run(|client, shared| async move {
            // Without `expected`, losing the race to another writer only means trying again on
            // the new version (bounded by the operation timeout).
            loop {
                if let Some(version) = try_commit(&client, &shared.paths, expected, &ops).await? {
                    return Ok(version);
                }
            }
        })?;
        self.shared.publish(version);
        let retention = self.shared.config.change_retention;
        if let (Some(runtime), Some(old)) = (self.runtime.as_ref(), version.checked_sub(retention)) {
            if old > 0 {
                // Trimming is best effort and off the commit: a leftover change node is harmless.
                if let Ok(client) = self.shared.client() {
                    let path = self.shared.paths.change(old);
                    runtime.spawn(async move {
                        match client.delete(&path, None).await {
                            Ok(()) | Err(ZkError::NoNode) => {}
                            Err(e) => debug!(path, "change log trim failed: {e}"),
                        }
                    });
                }
            }
        }
        Ok(version)
    }

    fn version(&self) -> Result<u64, StoreError> {
        self.run(|client, shared| async move { read_version(&client, &shared.paths).await })
    }

    fn changes_since(&self, since: u64) -> Result<Vec<ChangeSet>, StoreError> {
        self.run(move |client, shared| async move {
            let current = read_version(&client, &shared.paths).await?;
            if since >= current {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            let mut first = since + 1;
            // Batch by batch, so a reader far behind a trimmed log learns it after one round trip.
            while first <= current {
                let last = current.min(first + READ_BATCH as u64 - 1);
                let paths: Vec<String> = (first..=last).map(|v| shared.paths.change(v)).collect();
                for (version, data) in (first..=last).zip(read_many(&client, &paths).await?) {
                    let Some(data) = data else {
                        let oldest = oldest_change(&client, &shared.paths).await?;
                        return Err(StoreError::ChangesTrimmed { since, oldest });
                    };
                    let change_set: ChangeSet = serde_json::from_slice(&data)
                        .map_err(|e| StoreError::Backend(format!("zookeeper: change set {version}: {e}")))?;
                    out.push(change_set);
                }
                first = last + 1;
            }
            Ok(out)
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.version_tx.subscribe()
    }
    /// The host's ephemeral alive key: the Host document's `alive` says only what its host last
    /// reported, which a crashed gateway never takes back.
    fn host_alive(&self, host_id: &str) -> Result<Option<bool>, StoreError> {
        self.alive(host_id).map(Some)
    }
}

/// The oldest change set still in the log (0 when it is empty).
async fn oldest_change(client: &Client, paths: &Paths) -> Result<u64, StoreError> {
    let names = client.list_children(&paths.changes()).await.map_err(zk_error)?;
    Ok(names.iter().filter_map(|n| n.strip_prefix("cs-")?.parse::<u64>().ok()).min().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_zoom_layout() {
        let paths = Paths::new("").unwrap();
        assert_eq!(paths.object(Kind::Router, "r1"), "/midonet/zoom/0/models/Router/r1");
        assert_eq!(paths.version(), "/midonet/zoom/0/version");
        assert_eq!(paths.change(42), "/midonet/zoom/0/changes/cs-0000000042");
        let rooted = Paths::new("/lab/gw").unwrap();
        assert_eq!(rooted.class(Kind::IpAddrGroup), "/lab/gw/midonet/zoom/0/models/IPAddrGroup");
        assert_eq!(rooted.state(&ZookeeperStore::alive_key("h")), "/lab/gw/midonet/zoom/0/state/h/Host/h/alive");
    }

    #[test]
    fn bad_roots_and_suffixes_are_refused() {
        for root in ["lab", "/lab/", "/", "/a//b", "/a/../b"] {
            assert!(Paths::new(root).is_err(), "{root:?}");
        }
        for suffix in ["", "/a", "a/", "a//b", "a/../b"] {
            assert!(matches!(check_suffix(suffix), Err(StoreError::InvalidId(_))), "{suffix:?}");
        }
        assert!(check_suffix("h/Host/h/alive").is_ok());
    }

    #[test]
    fn no_server_means_a_quick_clear_error() {
        // Port 1 on loopback: nothing listens, connections are refused at once.
        let config = ZookeeperConfig {
            hosts: "127.0.0.1:1".into(),
            operation_timeout: Duration::from_millis(500),
            ..ZookeeperConfig::default()
        };
        let started = std::time::Instant::now();
        let err = ZookeeperStore::connect(config.clone()).unwrap_err();
        assert!(err.to_string().contains("zookeeper unavailable"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let empty = ZookeeperConfig { hosts: " ".into(), ..config.clone() };
        assert!(ZookeeperStore::start(empty).unwrap_err().to_string().contains("hosts is empty"));
        let store = ZookeeperStore::start(config).unwrap();
        let err = store.commit(None, &[Op::Delete { kind: Kind::Router, id: "r".into() }]).unwrap_err();
        assert!(err.to_string().contains("zookeeper unavailable"), "{err}");
        assert!(matches!(store.get(Kind::Router, "r"), Err(StoreError::Backend(_))));
        assert_eq!(store.session_id(), None);
    }
}
