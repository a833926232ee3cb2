//! Topology stores: one trait, the embedded (redb) and ZooKeeper implementations, and a generic
//! test suite.
//!
//! Objects are opaque documents (JSON of the [`crate::model`] types) addressed by kind and id, at
//! the ZooKeeper path `/midonet/zoom/0/models/<Kind>/<id>` in every implementation, so the ZooKeeper
//! store holds the same model under the same names. (MidoNet writes protobuf TextFormat in those nodes;
//! this project writes JSON: a mixed MidoNet/midogw cluster is not a goal.)
//!
//! [`EmbeddedStore`] is the one-box default; [`ZookeeperStore`] shares one model among a cluster of
//! gateways (docs/zookeeper.md). Both push their latest version to subscribers
//! ([`Store::subscribe`]). Ephemeral state keys (host alive, ...) exist only on the ZooKeeper
//! store, as its own methods: a single box has no other gateway to tell.

mod embedded;
#[doc(hidden)]
pub mod suite;
mod zookeeper;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use embedded::EmbeddedStore;
pub use zookeeper::{ZookeeperConfig, ZookeeperStore, MAX_REQUEST_BYTES as ZOOKEEPER_MAX_REQUEST_BYTES};

/// The ZooKeeper root of the object models.
pub const MODELS_ROOT: &str = "/midonet/zoom/0/models";

/// An object type, named as ZOOM names its protobuf message (`models/<Kind>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Router.
    Router,
    /// Bridge (ZOOM calls it `Network`).
    Network,
    /// Port.
    Port,
    /// Route.
    Route,
    /// Chain.
    Chain,
    /// Rule.
    Rule,
    /// Host.
    Host,
    /// Tunnel zone.
    TunnelZone,
    /// Port group.
    PortGroup,
    /// IP address group (ZOOM spells it `IPAddrGroup`).
    #[serde(rename = "IPAddrGroup")]
    IpAddrGroup,
    /// BGP peer.
    BgpPeer,
    /// BGP network.
    BgpNetwork,
    /// Tenant.
    Tenant,
    /// The system state singleton.
    SystemState,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 14] = [
        Kind::Router,
        Kind::Network,
        Kind::Port,
        Kind::Route,
        Kind::Chain,
        Kind::Rule,
        Kind::Host,
        Kind::TunnelZone,
        Kind::PortGroup,
        Kind::IpAddrGroup,
        Kind::BgpPeer,
        Kind::BgpNetwork,
        Kind::Tenant,
        Kind::SystemState,
    ];

    /// The path segment (ZOOM protobuf simple name).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Router => "Router",
            Kind::Network => "Network",
            Kind::Port => "Port",
            Kind::Route => "Route",
            Kind::Chain => "Chain",
            Kind::Rule => "Rule",
            Kind::Host => "Host",
            Kind::TunnelZone => "TunnelZone",
            Kind::PortGroup => "PortGroup",
            Kind::IpAddrGroup => "IPAddrGroup",
            Kind::BgpPeer => "BgpPeer",
            Kind::BgpNetwork => "BgpNetwork",
            Kind::Tenant => "Tenant",
            Kind::SystemState => "SystemState",
        }
    }

    /// `/midonet/zoom/0/models/<Kind>`.
    pub fn class_path(self) -> String {
        format!("{MODELS_ROOT}/{}", self.as_str())
    }

    /// `/midonet/zoom/0/models/<Kind>/<id>`.
    pub fn object_path(self, id: &str) -> String {
        format!("{MODELS_ROOT}/{}/{id}", self.as_str())
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create; fails with [`StoreError::AlreadyExists`] if the object exists.
    Create {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
        /// Document.
        data: Vec<u8>,
    },
    /// Replace; fails with [`StoreError::NotFound`] if the object does not exist.
    Update {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
        /// Document.
        data: Vec<u8>,
    },
    /// Delete; fails with [`StoreError::NotFound`] if the object does not exist.
    Delete {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
}

impl Op {
    /// The object this op writes.
    pub fn target(&self) -> (Kind, &str) {
        match self {
            Op::Create { kind, id, .. } | Op::Update { kind, id, .. } | Op::Delete { kind, id } => (*kind, id),
        }
    }

    fn change(&self) -> Change {
        let (kind, id) = self.target();
        let action = match self {
            Op::Create { .. } => Action::Created,
            Op::Update { .. } => Action::Updated,
            Op::Delete { .. } => Action::Deleted,
        };
        Change { kind, id: id.to_string(), action }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Deleted.
    Deleted,
}

/// One object changed by a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Kind.
    pub kind: Kind,
    /// Id.
    pub id: String,
    /// What happened.
    pub action: Action,
}

/// A committed transaction as seen by the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// The store version this transaction produced.
    pub version: u64,
    /// The objects it changed, in op order.
    pub changes: Vec<Change>,
}

/// Store failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A create hit an existing object.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// An update or delete hit a missing object.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// The store moved past the version the transaction was prepared against.
    #[error("store version is {actual}, transaction expected {expected}")]
    VersionMismatch {
        /// Version the caller read.
        expected: u64,
        /// Version found at commit.
        actual: u64,
    },
    /// An id that cannot be a path segment.
    #[error("invalid object id {0:?}")]
    InvalidId(String),
    /// The backend failed (disk, database corruption, lost session).
    #[error("store backend: {0}")]
    Backend(String),
    /// The change does not fit one transaction of the backend (ZooKeeper refuses a request over
    /// its `jute.maxbuffer`, 1 MiB by default, by dropping the connection). Nothing was written.
    #[error(
        "the change needs {bytes} bytes in one store transaction; the store takes at most {limit} (ZooKeeper's jute.maxbuffer): nothing was written"
    )]
    TooLarge {
        /// The request's size, estimated from above.
        bytes: usize,
        /// The most one transaction may carry.
        limit: usize,
    },
    /// The change log no longer holds the change sets right after `since`: the reader fell behind
    /// the log's retention and must resync from a full read (`list` of every kind, then `version`).
    #[error(
        "change log trimmed: changes after version {since} are gone (oldest kept is {oldest}); resync from a full read"
    )]
    ChangesTrimmed {
        /// The version the reader asked for changes after.
        since: u64,
        /// The oldest change set still in the log (0 if the log is empty).
        oldest: u64,
    },
}

/// A topology store: typed-by-kind documents, all-or-nothing multi-op writes, and a version counter
/// with a change feed that drives snapshot rebuilds.
pub trait Store: Send + Sync {
    /// One object.
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// All objects of a kind, ordered by id.
    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Apply `ops` all-or-nothing and durably; returns the new version (each commit adds one). With
    /// `expected`, fails with [`StoreError::VersionMismatch`] unless the store is at that version.
    /// An empty `ops` commits nothing and returns the current version.
    fn commit(&self, expected: Option<u64>, ops: &[Op]) -> Result<u64, StoreError>;
    /// The version of the last committed transaction (0 for a new store).
    fn version(&self) -> Result<u64, StoreError>;
    /// The change sets with a version greater than `version`, oldest first. A store with a bounded
    /// log fails with [`StoreError::ChangesTrimmed`] when some of them are gone.
    fn changes_since(&self, version: u64) -> Result<Vec<ChangeSet>, StoreError>;
    /// The latest committed version, pushed when it changes: by this process or, for a shared store,
    /// by another writer. A consumer waits on `changed()` and then calls
    /// [`changes_since`](Store::changes_since) from the last version it applied. A store may also
    /// wake subscribers without a new version (the ZooKeeper store does after a reconnect) to ask
    /// for a resync. The default, for stores without a change signal (test doubles), is a receiver
    /// whose sender is already gone: `changed()` fails at once and the caller has to poll.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        tokio::sync::watch::channel(self.version().unwrap_or(0)).1
    }
    /// Whether host `host_id` is alive, for a store that keeps liveness apart from the Host
    /// document (ZooKeeper: the host session's ephemeral `alive` key, gone when the host dies,
    /// crashed or not). `None`, the default: the store keeps none, the document's `alive` stands
    /// (the embedded store: one box, whose own Host the appliance marks alive and not alive).
    fn host_alive(&self, _host_id: &str) -> Result<Option<bool>, StoreError> {
        Ok(None)
    }
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(StoreError::InvalidId(id.to_string()));
    }
    Ok(())
}

/// A shared store is a store: lets the REST API and the snapshot compiler hold one `Arc<dyn Store>`.
impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(kind, id)
    }
    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        (**self).list(kind)
    }
    fn commit(&self, expected: Option<u64>, ops: &[Op]) -> Result<u64, StoreError> {
        (**self).commit(expected, ops)
    }
    fn version(&self) -> Result<u64, StoreError> {
        (**self).version()
    }
    fn changes_since(&self, version: u64) -> Result<Vec<ChangeSet>, StoreError> {
        (**self).changes_since(version)
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        (**self).subscribe()
    }
    fn host_alive(&self, host_id: &str) -> Result<Option<bool>, StoreError> {
        (**self).host_alive(host_id)
    }
}
