//! A read-your-writes overlay over a store, turned into one multi-op commit at the end.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::TopologyError;
use crate::model::Resource;
use crate::store::{Kind, Op, Store};

type Key = (Kind, String);

/// Reads go to the overlay first, then the store; writes stay in the overlay until [`Tx::finish`].
pub(super) struct Tx<'a, S: Store> {
    store: &'a S,
    base: u64,
    /// Every touched object: whether the store has it, and its value now (`None` = deleted).
    touched: BTreeMap<Key, Entry>,
}

struct Entry {
    original: Option<Vec<u8>>,
    now: Option<Vec<u8>>,
}

fn decode<T: Resource>(bytes: &[u8]) -> Result<T, TopologyError> {
    serde_json::from_slice(bytes).map_err(|e| TopologyError::Corrupt { kind: T::KIND, detail: e.to_string() })
}

fn encode<T: Resource>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types always serialise")
}

impl<'a, S: Store> Tx<'a, S> {
    /// Start at the store's current version.
    pub fn begin(store: &'a S) -> Result<Self, TopologyError> {
        Ok(Tx { store, base: store.version()?, touched: BTreeMap::new() })
    }

    fn load(&mut self, kind: Kind, id: &str) -> Result<&mut Option<Vec<u8>>, TopologyError> {
        let key = (kind, id.to_string());
        if !self.touched.contains_key(&key) {
            let v = self.store.get(kind, id)?;
            self.touched.insert(key.clone(), Entry { original: v.clone(), now: v });
        }
        Ok(&mut self.touched.get_mut(&key).expect("inserted above").now)
    }

    /// The object, if it exists.
    pub fn get<T: Resource>(&mut self, id: &str) -> Result<Option<T>, TopologyError> {
        match &*self.load(T::KIND, id)? {
            Some(bytes) => decode(bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The object, or `NotFound` (a missing resource named by the request path: 404).
    pub fn need<T: Resource>(&mut self, id: &str) -> Result<T, TopologyError> {
        self.get(id)?.ok_or_else(|| TopologyError::NotFound { kind: T::KIND, id: id.to_string() })
    }

    /// The object a body field refers to, or `ReferenceNotFound`.
    pub fn reference<T: Resource>(&mut self, field: &'static str, id: Uuid) -> Result<T, TopologyError> {
        self.get(&id.to_string())?.ok_or(TopologyError::ReferenceNotFound { field, kind: T::KIND, id })
    }

    /// As [`Tx::reference`], for an optional field.
    pub fn reference_opt<T: Resource>(&mut self, field: &'static str, id: Option<Uuid>) -> Result<(), TopologyError> {
        match id {
            Some(id) => self.reference::<T>(field, id).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Every object of a kind as this transaction sees it, ordered by id.
    pub fn list<T: Resource>(&mut self) -> Result<Vec<T>, TopologyError> {
        let mut all: BTreeMap<String, Vec<u8>> = self.store.list(T::KIND)?.into_iter().collect();
        for ((kind, id), entry) in &self.touched {
            if *kind == T::KIND {
                match &entry.now {
                    Some(v) => all.insert(id.clone(), v.clone()),
                    None => all.remove(id),
                };
            }
        }
        all.values().map(|v| decode(v)).collect()
    }

    /// Create or replace.
    pub fn put<T: Resource>(&mut self, v: &T) -> Result<(), TopologyError> {
        let bytes = encode(v);
        *self.load(T::KIND, &v.key())? = Some(bytes);
        Ok(())
    }

    /// Create; `IdInUse` if the object exists.
    pub fn create<T: Resource>(&mut self, v: &T) -> Result<(), TopologyError> {
        let key = v.key();
        if self.load(T::KIND, &key)?.is_some() {
            return Err(TopologyError::IdInUse { kind: T::KIND, id: key });
        }
        self.put(v)
    }

    /// Delete; `NotFound` if the object does not exist.
    pub fn delete<T: Resource>(&mut self, id: &str) -> Result<(), TopologyError> {
        let entry = self.load(T::KIND, id)?;
        if entry.is_none() {
            return Err(TopologyError::NotFound { kind: T::KIND, id: id.to_string() });
        }
        *entry = None;
        Ok(())
    }

    /// The version read at the start and the ops that turn the store into what this transaction sees.
    pub fn finish(self) -> (u64, Vec<Op>) {
        let ops = self
            .touched
            .into_iter()
            .filter(|(_, e)| e.original != e.now)
            .map(|((kind, id), e)| match (e.original, e.now) {
                (None, Some(data)) => Op::Create { kind, id, data },
                (Some(_), Some(data)) => Op::Update { kind, id, data },
                (_, None) => Op::Delete { kind, id },
            })
            .collect();
        (self.base, ops)
    }
}
