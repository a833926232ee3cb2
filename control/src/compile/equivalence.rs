//! The model cache's incremental compile against a full one: random writes straight to the store
//! (routers, ports, routes, chains and rules, valid or not, behind the topology service's back), and
//! after each write the cache must give what reading and building everything gives: the same
//! snapshot (or the same refusal), the same warnings, and so the same changed device tags.

use proptest::prelude::*;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::*;
use crate::store::EmbeddedStore;

/// Small pools of ids, so writes keep landing on the same objects.
const ROUTERS: usize = 4;
const PORTS: usize = 6;
const ROUTES: usize = 12;
const CHAINS: usize = 2;
const RULES: usize = 4;

/// Deterministic ids per pool, spread so a new object sorts between existing ones (and moves the
/// snapshot indices after it).
fn id(pool: u8, i: usize) -> Uuid {
    Uuid::from_u128(((i as u128 * 0x3b) % 0x100) << 120 | u128::from(pool) << 8 | i as u128)
}

#[derive(Debug, Clone)]
enum Write {
    Router { i: usize, filter: Option<usize> },
    Port { i: usize, device: usize, net: u8, mac: bool },
    Route { i: usize, router: usize, port: usize, dst: u8, kind: u8, weight: u32 },
    Chain { i: usize, rules: Vec<usize> },
    Rule { i: usize, chain: usize, drop: bool, in_port: Option<usize> },
    Delete { kind: u8, i: usize },
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        1 => (0..ROUTERS, proptest::option::of(0..CHAINS)).prop_map(|(i, filter)| Write::Router { i, filter }),
        // Device ROUTERS: a router that is never stored.
        2 => (0..PORTS, 0..=ROUTERS, 0u8..4, proptest::bool::weighted(0.9))
            .prop_map(|(i, device, net, mac)| Write::Port { i, device, net, mac }),
        4 => (0..ROUTES, 0..=ROUTERS, 0..PORTS, 0u8..6, 0u8..8, 0u32..2)
            .prop_map(|(i, router, port, dst, kind, weight)| Write::Route { i, router, port, dst, kind, weight }),
        1 => (0..CHAINS, proptest::collection::vec(0..RULES, 0..3)).prop_map(|(i, rules)| Write::Chain { i, rules }),
        1 => (0..RULES, 0..CHAINS, any::<bool>(), proptest::option::of(0..PORTS))
            .prop_map(|(i, chain, drop, in_port)| Write::Rule { i, chain, drop, in_port }),
        3 => (0u8..5, 0..ROUTES).prop_map(|(kind, i)| Write::Delete { kind, i }),
    ]
}

/// The port networks: two ports may share one (their connected routes then overlap).
fn port_net(net: u8) -> (&'static str, &'static str, u32) {
    [
        ("10.0.0.1", "10.0.0.0", 24),
        ("10.0.1.1", "10.0.1.0", 24),
        ("192.0.2.1", "192.0.2.0", 30),
        ("10.0.0.2", "10.0.0.0", 24),
    ][usize::from(net)]
}

fn op(w: &Write) -> Op {
    let put = |kind: Kind, id: Uuid, body: Value| Op::Update {
        kind,
        id: id.to_string(),
        data: body.to_string().into_bytes(),
    };
    match *w {
        Write::Router { i, filter } => {
            put(Kind::Router, id(1, i), json!({"id": id(1, i), "inboundFilterId": filter.map(|c| id(4, c))}))
        }
        Write::Port { i, device, net, mac } => {
            let (addr, network, len) = port_net(net);
            let mac = if mac { format!("02:00:00:00:00:{i:02x}") } else { "not-a-mac".into() };
            put(
                Kind::Port,
                id(2, i),
                json!({"id": id(2, i), "type": "Router", "deviceId": id(1, device), "portAddress": addr,
                       "networkAddress": network, "networkLength": len, "portMac": mac}),
            )
        }
        Write::Route { i, router, port, dst, kind, weight } => {
            // Destinations include the port networks (a connected route when without gateway).
            let dst = ["0.0.0.0/0", "10.0.0.0/24", "10.0.1.0/24", "203.0.113.0/24", "300.0.0.0/24", "2001:db8::/32"]
                [usize::from(dst)];
            let (addr, len) = dst.split_once('/').unwrap();
            let (kind, gateway) = match kind {
                0 | 1 => ("Normal", Some("10.0.0.254")),
                2 | 3 => ("Normal", None),
                4 => ("BlackHole", None),
                5 => ("Reject", None),
                6 => ("Local", None),
                _ => ("Normal", Some("not-an-ip")),
            };
            put(
                Kind::Route,
                id(3, i),
                json!({"id": id(3, i), "routerId": id(1, router), "srcNetworkAddr": if addr.contains(':') { "::" } else { "0.0.0.0" },
                       "srcNetworkLength": 0, "dstNetworkAddr": addr, "dstNetworkLength": len.parse::<u32>().unwrap(),
                       "nextHopPort": id(2, port), "nextHopGateway": gateway, "type": kind, "weight": weight}),
            )
        }
        Write::Chain { i, ref rules } => put(
            Kind::Chain,
            id(4, i),
            json!({"id": id(4, i), "name": format!("c{i}"), "ruleIds": rules.iter().map(|&r| id(5, r)).collect::<Vec<_>>()}),
        ),
        Write::Rule { i, chain, drop, in_port } => put(
            Kind::Rule,
            id(5, i),
            json!({"id": id(5, i), "chainId": id(4, chain), "type": if drop { "drop" } else { "accept" },
                   "inPorts": in_port.map(|p| vec![id(2, p)]).unwrap_or_default()}),
        ),
        Write::Delete { kind, i } => {
            let (kind, pool, n) = [
                (Kind::Router, 1, ROUTERS),
                (Kind::Port, 2, PORTS),
                (Kind::Route, 3, ROUTES),
                (Kind::Chain, 4, CHAINS),
                (Kind::Rule, 5, RULES),
            ][usize::from(kind)];
            Op::Delete { kind, id: id(pool, i % n).to_string() }
        }
    }
}

/// Commits `op`, as an update if the object exists, else as a create (a delete of nothing: skipped).
fn apply(topo: &Topology<EmbeddedStore>, op: Op) {
    let (kind, key) = op.target();
    let exists = topo.store().get(kind, key).unwrap().is_some();
    let op = match op {
        Op::Update { kind, id, data } if !exists => Op::Create { kind, id, data },
        Op::Delete { .. } if !exists => return,
        op => op,
    };
    topo.store().commit(None, &[op]).unwrap();
}

/// A compile's outcome, comparable: the snapshot and warnings, or the refusal's message.
fn outcome(r: &Result<Compiled, CompileError>) -> Result<(&Snapshot, &[String]), String> {
    r.as_ref().map(|c| (&c.snapshot, c.warnings.as_slice())).map_err(|e| e.to_string())
}

fn store() -> (Topology<EmbeddedStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Topology::new(EmbeddedStore::open(dir.path().join("db")).unwrap()), dir)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_compiles_equal_full_ones(writes in proptest::collection::vec(write(), 1..40)) {
        let (topo, _dir) = store();
        let mut cache = ModelCache::new();
        let (mut last_incremental, mut last_full): (Option<Snapshot>, Option<Snapshot>) = (None, None);
        for (generation, w) in (1..).zip(&writes) {
            apply(&topo, op(w));
            let ctx = CompileContext { generation, ..Default::default() };
            let incremental = cache.compile(&topo, &ctx);
            let full = compile(&topo, &ctx);
            prop_assert_eq!(outcome(&incremental), outcome(&full), "after {:?}", w);
            if let (Ok(i), Ok(f)) = (incremental, full) {
                if let (Some(li), Some(lf)) = (&last_incremental, &last_full) {
                    prop_assert_eq!(i.snapshot.changed_tags(li), f.snapshot.changed_tags(lf), "after {:?}", w);
                }
                last_incremental = Some(i.snapshot);
                last_full = Some(f.snapshot);
            }
        }
    }
}

/// One added route rebuilds its router's routes alone: every other router keeps the very set
/// (shared, not rebuilt) it had, and the diff names the one router.
#[test]
fn a_route_write_rebuilds_only_its_router() {
    let (topo, _dir) = store();
    for r in 0..ROUTERS {
        apply(&topo, op(&Write::Router { i: r, filter: None }));
        apply(&topo, op(&Write::Port { i: r, device: r, net: r as u8 % 3, mac: true }));
        apply(&topo, op(&Write::Route { i: r, router: r, port: r, dst: 3, kind: 0, weight: 0 }));
    }
    let mut cache = ModelCache::new();
    let ctx = |generation| CompileContext { generation, ..Default::default() };
    let before = cache.compile(&topo, &ctx(1)).unwrap().snapshot;
    apply(&topo, op(&Write::Route { i: ROUTERS, router: 2, port: 2, dst: 0, kind: 4, weight: 0 }));
    let after = cache.compile(&topo, &ctx(2)).unwrap().snapshot;
    assert_eq!(after, compile(&topo, &ctx(2)).unwrap().snapshot);
    let shared: Vec<bool> =
        before.routers().iter().zip(after.routers()).map(|(b, a)| b.routes.same(&a.routes)).collect();
    let touched = before.routers().iter().position(|r| r.uuid == ft(id(1, 2))).unwrap();
    let expected: Vec<bool> = (0..ROUTERS).map(|i| i != touched).collect();
    assert_eq!(shared, expected, "only the written router's routes are rebuilt");
    assert_eq!(after.changed_tags(&before).tags, vec![ft(id(1, 2)).tag()]);
    // A port added before the others moves every later port's index: those routers are rebuilt.
    apply(&topo, op(&Write::Port { i: PORTS - 1, device: ROUTERS, net: 0, mac: true }));
    let moved = cache.compile(&topo, &ctx(3)).unwrap().snapshot;
    assert_eq!(moved, compile(&topo, &ctx(3)).unwrap().snapshot);
}
