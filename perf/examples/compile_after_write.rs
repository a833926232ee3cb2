//! One write at a time through the feed's path, for callgrind and quick timings: the benchmark's
//! bulk-built store (`ROUTERS` routers, one port and `ROUTES` static routes each; with `RULES`,
//! router 0's inbound filter is a chain of that many rules), a `ModelCache` compiled once, then
//! `WRITES` times: a route added through the topology service (with `RULES`, a rule appended to
//! that chain every other write), the cache compiled again (`control::compile::build`) and the
//! new snapshot fingerprinted and diffed against the previous one (what
//! `SnapshotExchange::publish_if_changed` pays).
//!
//! `cargo run --release -p perf --example compile_after_write -- [ROUTERS] [ROUTES] [WRITES] [RULES]`
//! (defaults 1000 10 20 0). Under callgrind, collect only the compile and the fingerprints:
//! `valgrind --tool=callgrind --toggle-collect='control::compile::build*'
//! --toggle-collect='flowtable::topology::diff::Fingerprints::of*' target/release/examples/compile_after_write`

use std::time::Instant;

use control::compile::{CompileContext, ModelCache};
use control::{EmbeddedStore, Route, Rule, Topology};
use midogw::flowtable::topology::Fingerprints;
use perf::control::populate::{populate, populate_rules, route_json};

fn arg(i: usize, default: u32) -> u32 {
    std::env::args().nth(i).map(|a| a.parse().expect("a number")).unwrap_or(default)
}

fn main() {
    let (routers, routes, writes, rules) = (arg(1, 1000), arg(2, 10), arg(3, 20), arg(4, 0));
    let dir = std::env::temp_dir().join(format!("midogw-compile-after-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let topology = Topology::new(EmbeddedStore::open(dir.join("store.redb")).expect("store"));
    let built = populate(&topology, routers, routes).expect("populate");
    let chain = (rules > 0).then(|| populate_rules(&topology, built.routers[0], rules).expect("rules"));
    let mut cache = ModelCache::new();
    let ctx = |generation| CompileContext { generation, ..Default::default() };
    let mut previous = cache.compile(&topology, &ctx(1)).expect("first compile").snapshot;
    let mut fingerprints = Fingerprints::of(&previous);
    let (mut compile_us, mut publish_us, mut changed) = (Vec::new(), Vec::new(), 0);
    for w in 0..writes {
        let i = (w as usize * 7919) % built.routers.len();
        match chain {
            Some(chain) if w % 2 == 1 => {
                let rule: Rule = serde_json::from_value(serde_json::json!({
                    "type": "drop", "nwProto": 6, "tpDst": {"start": 1 + w, "end": 1 + w}, "position": rules + 1 + w / 2
                }))
                .expect("rule body");
                topology.create_rule(chain, rule).expect("rule write");
            }
            _ => {
                let route: Route =
                    serde_json::from_value(route_json(built.ports[i], routers * routes + 1 + w)).expect("route body");
                topology.create_route(built.routers[i], route).expect("route write");
            }
        }
        let t = Instant::now();
        let next = cache.compile(&topology, &ctx(2 + u64::from(w))).expect("compile").snapshot;
        compile_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let next_fingerprints = Fingerprints::of(&next);
        changed += next_fingerprints.changes_since(&fingerprints).tags.len();
        publish_us.push(t.elapsed().as_secs_f64() * 1e6);
        (previous, fingerprints) = (next, next_fingerprints);
    }
    drop(previous);
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "{routers} routers x {routes} routes, {rules} rules, {writes} writes: compile median {:.0} us, fingerprints + diff median {:.0} us, {changed} tags changed",
        median(&mut compile_us),
        median(&mut publish_us)
    );
}
