//! Snapshot build time and memory at scale: the topology is bulk-loaded into an `EmbeddedStore`
//! ([`super::populate`]), then `control::compile::compile` is timed (first run and the median of
//! the rest) and the process's resident set is read from /proc/self/status: the peak during the
//! first compile (VmHWM after resetting it through /proc/self/clear_refs; cold, so it includes the
//! store's cache and every decoded document) and what stays resident while its snapshot is held.
//! The snapshot's own size is the marginal growth per snapshot held while the next compiles keep
//! theirs: each compile's temporary garbage is freed and reused by the next, the snapshots are not.
//! `Snapshot::changed_tags` is timed between the snapshots before and after one added route.

use std::path::Path;
use std::time::Instant;

use ::control::compile::{compile, CompileContext, Compiled};
use ::control::{EmbeddedStore, Route, Topology};
use serde::{Deserialize, Serialize};

use super::populate::{populate, route_json};
use super::stats::median;
use super::ControlError;

/// What the snapshot measurement found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotResult {
    /// Routers stored.
    pub routers: u64,
    /// Router ports stored.
    pub ports: u64,
    /// Static routes stored (each port also has its two automatic routes).
    pub routes: u64,
    /// Documents the store holds.
    pub documents: u64,
    /// Seconds the bulk load took.
    pub populate_seconds: f64,
    /// Size of the store file.
    pub store_bytes: u64,
    /// The first compile (cold store caches).
    pub compile_first_ms: f64,
    /// Median of the following compiles.
    pub compile_median_ms: f64,
    /// Fastest of them.
    pub compile_min_ms: f64,
    /// Slowest of them.
    pub compile_max_ms: f64,
    /// How many compiles the median is of.
    pub compile_runs: u64,
    /// Resident set before the first compile (store loaded, nothing compiled), KiB.
    pub rss_before_kib: u64,
    /// Peak resident set during the first compile above the level before it, KiB (`None` if the
    /// kernel refused to reset the peak).
    pub rss_peak_growth_kib: Option<i64>,
    /// Resident-set growth after the first compile while its snapshot is held, KiB (the snapshot,
    /// the store's cache and what the allocator kept).
    pub rss_growth_holding_kib: i64,
    /// Resident-set growth once every snapshot was dropped again, KiB.
    pub rss_growth_after_drop_kib: i64,
    /// The snapshot's size: resident-set growth per additional snapshot held, KiB (`None` with
    /// fewer than two timed compiles).
    pub snapshot_estimate_kib: Option<i64>,
    /// Median time of `changed_tags` between the snapshots before and after one added route.
    pub changed_tags_median_us: f64,
    /// Device tags it reported changed (1 expected: the router).
    pub changed_tags: u64,
    /// Compile warnings (expected none).
    pub warnings: u64,
}

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn rss() -> Result<u64, ControlError> {
    status_kib("VmRSS").ok_or_else(|| ControlError::Setup("no VmRSS in /proc/self/status".into()))
}

/// Resets the peak resident set (VmHWM) to the current one; false when not allowed.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn timed(topology: &Topology<EmbeddedStore>, generation: u64) -> Result<(Compiled, f64), ControlError> {
    let t = Instant::now();
    let c = compile(topology, &CompileContext { generation, ..Default::default() })
        .map_err(|e| ControlError::Setup(format!("compile: {e}")))?;
    Ok((c, t.elapsed().as_secs_f64() * 1e3))
}

/// Builds `routers` routers with `routes_per_router` routes in a store under `dir` and measures.
/// `runs` is the number of compiles the median is of (at least 1).
pub fn measure(dir: &Path, routers: u32, routes_per_router: u32, runs: u32) -> Result<SnapshotResult, ControlError> {
    let path = dir.join("snapshot.redb");
    let store = EmbeddedStore::open(&path).map_err(|e| ControlError::Setup(format!("{}: {e}", path.display())))?;
    let topology = Topology::new(store);
    let t = Instant::now();
    tracing::info!(routers, routes_per_router, "bulk-loading the topology");
    let built = populate(&topology, routers, routes_per_router)?;
    let populate_seconds = t.elapsed().as_secs_f64();
    tracing::info!(seconds = populate_seconds, documents = built.documents, "loaded; compiling");

    let before = rss()?;
    let peak_reset = reset_peak();
    let (first, compile_first_ms) = timed(&topology, 1)?;
    let peak = status_kib("VmHWM");
    let holding = rss()?;
    let warnings = first.warnings.len() as u64;
    let snapshot_routers = first.snapshot.routers().len() as u64;
    drop(first);
    if snapshot_routers != u64::from(routers) {
        return Err(ControlError::Setup(format!("the snapshot has {snapshot_routers} routers, expected {routers}")));
    }

    // Timed compiles, each snapshot kept: the resident set after each gives the marginal size.
    let mut times = Vec::new();
    let mut held = Vec::new();
    let mut rss_held = Vec::new();
    for g in 0..runs.max(1) {
        let (c, ms) = timed(&topology, 3 + u64::from(g))?;
        times.push(ms);
        held.push(c);
        rss_held.push(rss()?);
    }
    let snapshot_estimate_kib = match (rss_held.first(), rss_held.last()) {
        (Some(&a), Some(&b)) if rss_held.len() >= 2 => Some((b as i64 - a as i64) / (rss_held.len() as i64 - 1)),
        _ => None,
    };
    let base = held.pop().expect("at least one run");
    drop(held);

    // One more route on a router in the middle, then the diff the feed computes.
    let (router, port) = (built.routers[built.routers.len() / 2], built.ports[built.ports.len() / 2]);
    let route: Route = serde_json::from_value(route_json(port, routers * routes_per_router + 1))
        .map_err(|e| ControlError::Setup(format!("route: {e}")))?;
    topology.create_route(router, route).map_err(|e| ControlError::Setup(format!("adding a route: {e}")))?;
    let (next, _) = timed(&topology, 100)?;
    let mut diff_us = Vec::new();
    let mut changed = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let changes = next.snapshot.changed_tags(&base.snapshot);
        diff_us.push(t.elapsed().as_secs_f64() * 1e6);
        changed = changes.tags.len() as u64;
    }

    drop((base, next));
    let after_drop = rss()?;
    let store_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let growth = |kib: u64| kib as i64 - before as i64;
    Ok(SnapshotResult {
        routers: u64::from(routers),
        ports: built.ports.len() as u64,
        routes: built.routes as u64,
        documents: built.documents as u64,
        populate_seconds,
        store_bytes,
        compile_first_ms,
        compile_median_ms: median(&times).unwrap_or(0.0),
        compile_min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
        compile_max_ms: times.iter().copied().fold(0.0, f64::max),
        compile_runs: times.len() as u64,
        rss_before_kib: before,
        rss_growth_holding_kib: growth(holding),
        rss_growth_after_drop_kib: growth(after_drop),
        rss_peak_growth_kib: if peak_reset { peak.map(growth) } else { None },
        snapshot_estimate_kib,
        changed_tags_median_us: median(&diff_us).unwrap_or(0.0),
        changed_tags: changed,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let rss = status_kib("VmRSS").expect("Linux has VmRSS");
        assert!(rss > 0);
        assert_eq!(status_kib("NoSuchField"), None);
    }
}
