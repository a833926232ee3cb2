//! Crash safety of the embedded store: a child process commits transactions and prints an ack after
//! each `commit` returns; the parent kills it with SIGKILL at a random point, reopens the database and
//! checks that every acknowledged transaction is there and that no transaction is half applied.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use control::{EmbeddedStore, Kind, Op, Store};

const ENV_DB: &str = "MIDOGW_CRASH_CHILD_DB";
const TRANSACTIONS: u64 = 100_000;
const OPS_PER_TX: u64 = 3;

fn id(tx: u64, op: u64) -> String {
    format!("{:032x}", (tx << 8) | op)
}

fn ops(tx: u64) -> Vec<Op> {
    let kinds = [Kind::Router, Kind::Port, Kind::Route];
    (0..OPS_PER_TX)
        .map(|op| Op::Create {
            kind: kinds[op as usize],
            id: id(tx, op),
            data: format!("{{\"tx\":{tx}}}").into_bytes(),
        })
        .collect()
}

/// The child: runs only when re-executed by `acknowledged_writes_survive_sigkill`.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(ENV_DB) else { return };
    let store = EmbeddedStore::open(&path).unwrap();
    for tx in 0..TRANSACTIONS {
        let version = store.commit(None, &ops(tx)).unwrap();
        // The ack goes out only after commit returned (fsync'd).
        println!("ACK {tx} {version}");
    }
}

/// A small xorshift seeded from the clock (printed, so a failure can be reproduced by hand).
fn random_below(n: u64) -> u64 {
    let mut x = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash seed {x}");
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % n
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(ENV_DB).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    for round in 0..3 {
        let kill_after = 5 + random_below(60);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV_DB, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked: Vec<(u64, u64)> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else { continue };
            let mut it = rest.split(' ').map(|n| n.parse::<u64>().unwrap());
            acked.push((it.next().unwrap(), it.next().unwrap()));
            if acked.len() as u64 >= kill_after {
                child.kill().unwrap(); // SIGKILL on Unix
                break;
            }
        }
        child.wait().unwrap();
        assert!(!acked.is_empty(), "round {round}: the child acknowledged nothing");

        let store = EmbeddedStore::open(&path).unwrap();
        let version = store.version().unwrap();
        let (last_tx, last_version) = *acked.last().unwrap();
        assert!(version >= last_version, "round {round}: version {version} < acknowledged {last_version}");
        // Every acknowledged transaction is complete.
        for (tx, _) in &acked {
            for op in 0..OPS_PER_TX {
                let kind = [Kind::Router, Kind::Port, Kind::Route][op as usize];
                assert!(store.get(kind, &id(*tx, op)).unwrap().is_some(), "round {round}: acked tx {tx} lost op {op}");
            }
        }
        // No transaction is half applied: every kind holds exactly `version` objects per round so far,
        // and each object's siblings are all there.
        let routers = store.list(Kind::Router).unwrap();
        for kind in [Kind::Port, Kind::Route] {
            assert_eq!(store.list(kind).unwrap().len(), routers.len(), "round {round}: {kind} count differs");
        }
        assert_eq!(routers.len() as u64, version, "round {round}: one router per committed transaction");
        assert_eq!(store.changes_since(0).unwrap().len() as u64, version);
        assert!(last_tx < TRANSACTIONS);
        // The next round's child restarts at tx 0: move the ids out of its way by renaming the file.
        drop(store);
        std::fs::rename(&path, dir.path().join(format!("round{round}.redb"))).unwrap();
    }
}
