//! The store conformance suite: generic functions over any [`Store`], run by each implementation's
//! tests (the embedded store's unit tests, the ZooKeeper store's `control/tests/zookeeper.rs`).
//! Each function expects an empty store and panics on a violation.

use super::{Action, Kind, Op, Store, StoreError};

fn create(kind: Kind, id: &str, data: &str) -> Op {
    Op::Create { kind, id: id.into(), data: data.as_bytes().to_vec() }
}

/// Every conformance check, each on a fresh store from `fresh`.
pub fn run_all<S: Store>(mut fresh: impl FnMut() -> S) {
    empty_store(&fresh());
    create_get_list(&fresh());
    update_and_delete(&fresh());
    all_or_nothing(&fresh());
    version_check(&fresh());
    change_feed(&fresh());
    kinds_are_separate(&fresh());
    invalid_ids(&fresh());
    subscription(&fresh());
}

/// A new store is at version 0 with nothing in it.
pub fn empty_store(s: &impl Store) {
    assert_eq!(s.version().unwrap(), 0);
    for kind in Kind::ALL {
        assert!(s.list(kind).unwrap().is_empty());
    }
    assert_eq!(s.get(Kind::Router, "a").unwrap(), None);
    assert!(s.changes_since(0).unwrap().is_empty());
    assert_eq!(s.commit(None, &[]).unwrap(), 0, "an empty commit changes nothing");
}

/// Created objects read back; lists are ordered by id.
pub fn create_get_list(s: &impl Store) {
    let v = s.commit(None, &[create(Kind::Router, "b", "{\"n\":2}"), create(Kind::Router, "a", "{\"n\":1}")]).unwrap();
    assert_eq!(v, 1);
    assert_eq!(s.get(Kind::Router, "a").unwrap().unwrap(), b"{\"n\":1}");
    let list = s.list(Kind::Router).unwrap();
    let ids: Vec<_> = list.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(matches!(s.commit(None, &[create(Kind::Router, "a", "{}")]), Err(StoreError::AlreadyExists { .. })));
    assert_eq!(s.version().unwrap(), 1, "a failed commit does not bump the version");
}

/// Update replaces; delete removes; both need the object to exist.
pub fn update_and_delete(s: &impl Store) {
    s.commit(None, &[create(Kind::Port, "p", "1")]).unwrap();
    s.commit(None, &[Op::Update { kind: Kind::Port, id: "p".into(), data: b"2".to_vec() }]).unwrap();
    assert_eq!(s.get(Kind::Port, "p").unwrap().unwrap(), b"2");
    let missing = Op::Update { kind: Kind::Port, id: "q".into(), data: b"2".to_vec() };
    assert!(matches!(s.commit(None, &[missing]), Err(StoreError::NotFound { .. })));
    s.commit(None, &[Op::Delete { kind: Kind::Port, id: "p".into() }]).unwrap();
    assert_eq!(s.get(Kind::Port, "p").unwrap(), None);
    assert!(matches!(
        s.commit(None, &[Op::Delete { kind: Kind::Port, id: "p".into() }]),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.version().unwrap(), 3);
}

/// A failing op anywhere in a transaction leaves nothing of it behind.
pub fn all_or_nothing(s: &impl Store) {
    s.commit(None, &[create(Kind::Chain, "c", "old")]).unwrap();
    let ops = [
        create(Kind::Router, "r", "{}"),
        Op::Update { kind: Kind::Chain, id: "c".into(), data: b"new".to_vec() },
        Op::Delete { kind: Kind::Chain, id: "c".into() },
        Op::Delete { kind: Kind::Chain, id: "c".into() }, // fails: already deleted in this transaction
    ];
    assert!(matches!(s.commit(None, &ops), Err(StoreError::NotFound { .. })));
    assert_eq!(s.get(Kind::Router, "r").unwrap(), None);
    assert_eq!(s.get(Kind::Chain, "c").unwrap().unwrap(), b"old");
    assert_eq!(s.version().unwrap(), 1);
    assert_eq!(s.changes_since(0).unwrap().len(), 1);
}

/// `expected` guards against writes prepared on a stale read.
pub fn version_check(s: &impl Store) {
    let v = s.commit(Some(0), &[create(Kind::Host, "h", "{}")]).unwrap();
    assert_eq!(v, 1);
    let err = s.commit(Some(0), &[create(Kind::Host, "i", "{}")]).unwrap_err();
    assert!(matches!(err, StoreError::VersionMismatch { expected: 0, actual: 1 }));
    assert_eq!(s.get(Kind::Host, "i").unwrap(), None);
    assert_eq!(s.commit(Some(1), &[create(Kind::Host, "i", "{}")]).unwrap(), 2);
}

/// Every commit appears once in the change feed, in order, with its ops.
pub fn change_feed(s: &impl Store) {
    s.commit(None, &[create(Kind::Router, "r", "{}"), create(Kind::Port, "p", "{}")]).unwrap();
    s.commit(None, &[Op::Update { kind: Kind::Router, id: "r".into(), data: b"{}".to_vec() }]).unwrap();
    s.commit(None, &[Op::Delete { kind: Kind::Port, id: "p".into() }]).unwrap();
    let all = s.changes_since(0).unwrap();
    assert_eq!(all.iter().map(|c| c.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[0].changes.len(), 2);
    assert_eq!(all[0].changes[1].kind, Kind::Port);
    assert_eq!(all[0].changes[1].action, Action::Created);
    assert_eq!(all[1].changes[0].action, Action::Updated);
    assert_eq!(all[2].changes[0].action, Action::Deleted);
    let tail = s.changes_since(2).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 3);
    assert!(s.changes_since(3).unwrap().is_empty());
}

/// The same id under two kinds is two objects; a kind's list never shows another kind's objects,
/// even when one kind's name prefixes another's (`Port`, `PortGroup`).
pub fn kinds_are_separate(s: &impl Store) {
    s.commit(None, &[create(Kind::Port, "x", "port"), create(Kind::PortGroup, "x", "group")]).unwrap();
    assert_eq!(s.list(Kind::Port).unwrap(), vec![("x".to_string(), b"port".to_vec())]);
    assert_eq!(s.list(Kind::PortGroup).unwrap(), vec![("x".to_string(), b"group".to_vec())]);
    s.commit(None, &[Op::Delete { kind: Kind::Port, id: "x".into() }]).unwrap();
    assert_eq!(s.get(Kind::PortGroup, "x").unwrap().unwrap(), b"group");
}

/// Ids that cannot be a path segment are refused.
pub fn invalid_ids(s: &impl Store) {
    for bad in ["", "a/b", "..", "."] {
        assert!(matches!(s.commit(None, &[create(Kind::Router, bad, "{}")]), Err(StoreError::InvalidId(_))));
    }
    assert_eq!(s.version().unwrap(), 0);
}

/// A subscriber learns of a local commit by the time `commit` returns.
pub fn subscription(s: &impl Store) {
    let mut rx = s.subscribe();
    rx.borrow_and_update();
    let v = s.commit(None, &[create(Kind::Router, "r", "{}")]).unwrap();
    assert!(rx.has_changed().unwrap(), "a commit wakes subscribers");
    assert_eq!(*rx.borrow_and_update(), v);
    let v = s.commit(Some(v), &[Op::Delete { kind: Kind::Router, id: "r".into() }]).unwrap();
    assert_eq!(*rx.borrow_and_update(), v);
    assert_eq!(*s.subscribe().borrow(), v, "a new subscriber starts at the current version");
}
