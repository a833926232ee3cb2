//! The embedded store on redb: one ACID transaction per commit, fsync'd before it is acknowledged.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{check_id, ChangeSet, Kind, Op, Store, StoreError, MODELS_ROOT};

/// Objects, keyed by their ZooKeeper path.
const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
/// The change log: version -> JSON list of changes.
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Counters (`version`).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The default store: a redb file on local disk. An acknowledged commit survives `kill -9` and power
/// loss (durability `Immediate`: redb fsyncs before `commit` returns).
pub struct EmbeddedStore {
    db: Database,
    /// The latest committed version, for [`Store::subscribe`].
    version_tx: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open the database at `path`, creating it (and its tables) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let mut tx = db.begin_write().map_err(backend)?;
        tx.set_durability(Durability::Immediate).map_err(backend)?;
        tx.open_table(MODELS).map_err(backend)?;
        tx.open_table(CHANGES).map_err(backend)?;
        tx.open_table(META).map_err(backend)?;
        tx.commit().map_err(backend)?;
        let store = EmbeddedStore { db, version_tx: tokio::sync::watch::Sender::new(0) };
        store.version_tx.send_replace(store.version()?);
        Ok(store)
    }
}

impl Store for EmbeddedStore {
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id(id)?;
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(MODELS).map_err(backend)?;
        let value = table.get(kind.object_path(id).as_str()).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(MODELS).map_err(backend)?;
        let prefix = format!("{}/", kind.class_path());
        let mut out = Vec::new();
        for entry in table.range(prefix.as_str()..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let Some(id) = k.value().strip_prefix(prefix.as_str()) else { break };
            out.push((id.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, expected: Option<u64>, ops: &[Op]) -> Result<u64, StoreError> {
        for op in ops {
            check_id(op.target().1)?;
        }
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(Durability::Immediate).map_err(backend)?;
        let version = {
            let mut meta = tx.open_table(META).map_err(backend)?;
            let current = meta.get("version").map_err(backend)?.map(|v| v.value()).unwrap_or(0);
            if let Some(expected) = expected {
                if expected != current {
                    // Dropping `tx` without commit aborts it.
                    return Err(StoreError::VersionMismatch { expected, actual: current });
                }
            }
            if ops.is_empty() {
                return Ok(current);
            }
            let mut models = tx.open_table(MODELS).map_err(backend)?;
            for op in ops {
                let (kind, id) = op.target();
                let path = kind.object_path(id);
                debug_assert!(path.starts_with(MODELS_ROOT));
                let exists = models.get(path.as_str()).map_err(backend)?.is_some();
                match op {
                    Op::Create { data, .. } => {
                        if exists {
                            return Err(StoreError::AlreadyExists { kind, id: id.to_string() });
                        }
                        models.insert(path.as_str(), data.as_slice()).map_err(backend)?;
                    }
                    Op::Update { data, .. } => {
                        if !exists {
                            return Err(StoreError::NotFound { kind, id: id.to_string() });
                        }
                        models.insert(path.as_str(), data.as_slice()).map_err(backend)?;
                    }
                    Op::Delete { .. } => {
                        if !exists {
                            return Err(StoreError::NotFound { kind, id: id.to_string() });
                        }
                        models.remove(path.as_str()).map_err(backend)?;
                    }
                }
            }
            let version = current + 1;
            meta.insert("version", version).map_err(backend)?;
            let changes: Vec<_> = ops.iter().map(Op::change).collect();
            let log = serde_json::to_vec(&changes).map_err(backend)?;
            tx.open_table(CHANGES).map_err(backend)?.insert(version, log.as_slice()).map_err(backend)?;
            version
        };
        tx.commit().map_err(backend)?;
        self.version_tx.send_replace(version);
        Ok(version)
    }

    fn version(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let meta = tx.open_table(META).map_err(backend)?;
        let v = meta.get("version").map_err(backend)?.map(|v| v.value()).unwrap_or(0);
        Ok(v)
    }

    fn changes_since(&self, version: u64) -> Result<Vec<ChangeSet>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(CHANGES).map_err(backend)?;
        let mut out = Vec::new();
        for entry in table.range(version.saturating_add(1)..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let changes = serde_json::from_slice(v.value()).map_err(backend)?;
            out.push(ChangeSet { version: k.value(), changes });
        }
        Ok(out)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::suite;

    #[test]
    fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        suite::run_all(|| {
            n += 1;
            EmbeddedStore::open(dir.path().join(format!("db{n}"))).unwrap()
        });
    }

    #[test]
    fn reopen_keeps_objects_version_and_feed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = EmbeddedStore::open(&path).unwrap();
            s.commit(None, &[Op::Create { kind: Kind::Router, id: "r".into(), data: b"x".to_vec() }]).unwrap();
            s.commit(None, &[Op::Create { kind: Kind::Port, id: "p".into(), data: b"y".to_vec() }]).unwrap();
        }
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.version().unwrap(), 2);
        assert_eq!(s.get(Kind::Router, "r").unwrap().unwrap(), b"x");
        assert_eq!(s.changes_since(0).unwrap().len(), 2);
    }

    #[test]
    fn subscribers_see_each_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path().join("db")).unwrap();
        let mut rx = s.subscribe();
        assert_eq!(*rx.borrow_and_update(), 0);
        s.commit(None, &[Op::Create { kind: Kind::Router, id: "r".into(), data: b"x".to_vec() }]).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
        s.commit(None, &[]).unwrap();
        assert!(!rx.has_changed().unwrap(), "an empty commit wakes nobody");
        drop(s);
        let reopened = EmbeddedStore::open(dir.path().join("db")).unwrap();
        assert_eq!(*reopened.subscribe().borrow(), 1, "a reopened store starts at its stored version");
    }

    #[test]
    fn keys_are_zookeeper_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let id = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
        let s = EmbeddedStore::open(&path).unwrap();
        s.commit(None, &[Op::Create { kind: Kind::IpAddrGroup, id: id.into(), data: b"{}".to_vec() }]).unwrap();
        drop(s);
        let db = Database::create(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(MODELS).unwrap();
        let key = format!("/midonet/zoom/0/models/IPAddrGroup/{id}");
        assert!(table.get(key.as_str()).unwrap().is_some());
    }
}
