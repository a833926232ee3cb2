//! The `midogw-perf control` report: JSON (`control.json`, reads back exactly) and Markdown.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rest::LoadResult;
use super::snapshot::SnapshotResult;
use super::stats::LatencySummary;
use super::ControlError;
use crate::machine::{Commit, Machine};

/// Version of the report's JSON layout.
pub const CONTROL_SCHEMA: u32 = 1;

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlReport {
    /// [`CONTROL_SCHEMA`].
    pub schema: u32,
    /// `midogw-perf <version>`.
    pub tool: String,
    /// The command line.
    pub command: String,
    /// UTC start time.
    pub started: String,
    /// The machine.
    pub machine: Machine,
    /// The commit measured.
    pub commit: Commit,
    /// What served REST and why.
    pub server: ServerInfo,
    /// 1-minute load average before the run (other work on the machine skews every figure).
    pub load_before: Option<f64>,
    /// REST reads.
    pub reads: Vec<ReadResult>,
    /// REST writes (POST route).
    pub writes: Vec<WriteResult>,
    /// REST write to snapshot on the cores.
    pub propagation: Option<PropagationResult>,
    /// Snapshot build time and memory.
    pub snapshot: Option<SnapshotResult>,
}

/// The REST server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `binary` (`midogw run`, REST only) or `in-process` (`control::app` on a tokio runtime).
    pub kind: String,
    /// The binary, when one.
    pub binary: Option<String>,
    /// Authentication used.
    pub auth: String,
    /// Why this server.
    pub note: String,
}

/// One read load point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadResult {
    /// `router` (GET /routers/{id}, cycling over every router) or `routers` (GET /routers).
    pub resource: String,
    /// Routers in the store.
    pub routers_stored: u64,
    /// The load.
    pub load: LoadResult,
}

/// One write load point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteResult {
    /// Routers in the store (the routes go to each in turn).
    pub routers_stored: u64,
    /// The load.
    pub load: LoadResult,
}

/// REST write to the workers running the new snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropagationResult {
    /// Routers in the store (every compile reads all of them).
    pub routers_stored: u64,
    /// Routes POSTed, one at a time.
    pub writes: u64,
    /// Writes whose publication was not seen within the wait limit.
    pub missed: u64,
    /// Client-side POST latency (201 received).
    pub post: Option<LatencySummary>,
    /// From sending the POST to reading the feed's `topology published` log line, which the feed
    /// writes after every worker acknowledged the new generation (includes the log pipe).
    pub post_to_cores: Option<LatencySummary>,
    /// The `us` field of those lines: the feed noticing the change to every worker running it.
    pub feed_change_to_cores: Option<LatencySummary>,
    /// `topology_feed.last_change_to_cores_us` of the final JSON report.
    pub final_last_change_to_cores_us: Option<u64>,
    /// `topology_feed.last_compile_us` of the final JSON report.
    pub final_last_compile_us: Option<u64>,
    /// `topology_feed.compiles` of the final JSON report.
    pub feed_compiles: Option<u64>,
    /// The target for p99 of `post_to_cores`, ms.
    pub target_ms: f64,
    /// Whether p99 of `post_to_cores` is under the target.
    pub target_met: Option<bool>,
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn mib_text(kib: i64) -> String {
    format!("{:.1}", mib(kib))
}

impl ControlReport {
    /// Writes the JSON.
    pub fn save(&self, path: &Path) -> Result<(), ControlError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| ControlError::Report(e.to_string()))? + "\n";
        std::fs::write(path, text).map_err(|e| ControlError::Report(format!("{}: {e}", path.display())))
    }

    /// Reads a JSON report.
    pub fn load(path: &Path) -> Result<ControlReport, ControlError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ControlError::Report(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| ControlError::Report(format!("{}: {e}", path.display())))
    }

    /// The Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# midogw control plane: {}\n", self.started);
        let _ = writeln!(
            s,
            "{} on {} ({} CPUs), commit {}{}; load average before: {}\n",
            self.tool,
            self.machine.cpu_model,
            self.machine.cpus,
            self.commit.rev,
            if self.commit.dirty { " (dirty)" } else { "" },
            self.load_before.map_or("unknown".into(), |l| format!("{l:.2}"))
        );
        let _ = writeln!(
            s,
            "Server: {}{} with {} authentication. {}\n",
            self.server.kind,
            self.server.binary.as_ref().map_or(String::new(), |b| format!(" ({b})")),
            self.server.auth,
            self.server.note
        );
        let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        let load_row = |s: &mut String, first: String, l: &LoadResult| {
            let lat = l.latency.as_ref();
            let _ = writeln!(
                s,
                "| {first} | {} | {:.0} | {} | {} | {} | {} | {} |",
                l.connections,
                l.per_second,
                us(lat.map(|l| l.p50_us)),
                us(lat.map(|l| l.p99_us)),
                us(lat.map(|l| l.p999_us)),
                l.requests,
                l.errors
            );
        };
        if !self.reads.is_empty() {
            s.push_str("## REST reads (X-Auth-Token, keep-alive connections, closed loop)\n\n");
            s.push_str(
                "| GET | routers stored | connections | req/s | p50 µs | p99 µs | p99.9 µs | requests | errors |\n",
            );
            s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in &self.reads {
                let what = if r.resource == "router" { "/routers/{id}" } else { "/routers" };
                load_row(&mut s, format!("{what} | {}", r.routers_stored), &r.load);
            }
            s.push('\n');
        }
        if !self.writes.is_empty() {
            s.push_str("## REST writes (POST /routers/{id}/routes)\n\n");
            s.push_str("| routers stored | connections | req/s | p50 µs | p99 µs | p99.9 µs | requests | errors |\n");
            s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for w in &self.writes {
                load_row(&mut s, w.routers_stored.to_string(), &w.load);
            }
            s.push('\n');
        }
        if let Some(p) = &self.propagation {
            let _ = writeln!(
                s,
                "## REST write to the cores ({} routes POSTed one at a time, {} routers stored, 2 net_ring ports, 1 worker)\n",
                p.writes, p.routers_stored
            );
            s.push_str(
                "| interval | p50 µs | p99 µs | p99.9 µs | max µs | samples |\n|---|---:|---:|---:|---:|---:|\n",
            );
            for (name, l) in [
                ("POST answered (client)", &p.post),
                ("POST sent to `topology published` read", &p.post_to_cores),
                ("feed: change noticed to every worker on it", &p.feed_change_to_cores),
            ] {
                let l = l.as_ref();
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} | {} | {} |",
                    us(l.map(|l| l.p50_us)),
                    us(l.map(|l| l.p99_us)),
                    us(l.map(|l| l.p999_us)),
                    us(l.map(|l| l.max_us)),
                    l.map_or(0, |l| l.count)
                );
            }
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                s,
                "\nFinal report: last_change_to_cores_us = {}, last_compile_us = {}, compiles = {}; missed: {}. \
                 Target p99 < {} ms: {}.\n",
                opt(p.final_last_change_to_cores_us),
                opt(p.final_last_compile_us),
                opt(p.feed_compiles),
                p.missed,
                p.target_ms,
                match p.target_met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "no data",
                }
            );
        }
        if let Some(n) = &self.snapshot {
            let _ = writeln!(
                s,
                "## Snapshot build: {} routers, {} ports, {} static routes ({} documents, store {:.1} MiB, loaded in {:.1} s)\n",
                n.routers,
                n.ports,
                n.routes,
                n.documents,
                n.store_bytes as f64 / 1048576.0,
                n.populate_seconds
            );
            s.push_str("| figure | value |\n|---|---:|\n");
            let rows = [
                ("compile, first (ms)", format!("{:.1}", n.compile_first_ms)),
                (
                    "compile, median of the next (ms)",
                    format!(
                        "{:.1} ({} runs, {:.1}-{:.1})",
                        n.compile_median_ms, n.compile_runs, n.compile_min_ms, n.compile_max_ms
                    ),
                ),
                ("RSS before, store loaded (MiB)", mib_text(n.rss_before_kib as i64)),
                ("peak RSS growth during the first compile (MiB)", n.rss_peak_growth_kib.map_or("-".into(), mib_text)),
                ("RSS growth holding the first snapshot (MiB)", mib_text(n.rss_growth_holding_kib)),
                (
                    "snapshot size: RSS growth per snapshot held (MiB)",
                    n.snapshot_estimate_kib.map_or("-".into(), mib_text),
                ),
                ("RSS growth after dropping every snapshot (MiB)", mib_text(n.rss_growth_after_drop_kib)),
                ("changed_tags after one added route (µs, median)", format!("{:.0}", n.changed_tags_median_us)),
                ("tags changed", n.changed_tags.to_string()),
                ("compile warnings", n.warnings.to_string()),
            ];
            for (k, v) in rows {
                let _ = writeln!(s, "| {k} | {v} |");
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(base: f64) -> Option<LatencySummary> {
        Some(LatencySummary {
            count: 1000,
            mean_us: base * 1.1 + 0.123_456_789,
            p50_us: base,
            p99_us: base * 3.0,
            p999_us: base * 7.0,
            min_us: base / 2.0,
            max_us: base * 11.0,
        })
    }

    fn load(connections: usize) -> LoadResult {
        LoadResult {
            connections,
            requests: 12_345,
            errors: 1,
            seconds: 3.0,
            per_second: 12_345.0 / 3.0,
            latency: latency(101.2),
            first_error: Some("GET /x: status 500".into()),
        }
    }

    fn sample() -> ControlReport {
        ControlReport {
            schema: CONTROL_SCHEMA,
            tool: "midogw-perf 0.1.0".into(),
            command: "midogw-perf control".into(),
            started: "2026-11-22T08:00:00Z".into(),
            machine: Machine::detect(),
            commit: Commit { rev: "abc".into(), dirty: true },
            server: ServerInfo {
                kind: "binary".into(),
                binary: Some("/x/midogw".into()),
                auth: "mock".into(),
                note: "n".into(),
            },
            load_before: Some(0.37),
            reads: vec![
                ReadResult { resource: "router".into(), routers_stored: 100, load: load(8) },
                ReadResult { resource: "routers".into(), routers_stored: 1000, load: load(32) },
            ],
            writes: vec![WriteResult { routers_stored: 100, load: load(1) }],
            propagation: Some(PropagationResult {
                routers_stored: 1000,
                writes: 200,
                missed: 0,
                post: latency(900.0),
                post_to_cores: latency(2500.0),
                feed_change_to_cores: latency(1500.0),
                final_last_change_to_cores_us: Some(1400),
                final_last_compile_us: Some(1300),
                feed_compiles: Some(201),
                target_ms: 10.0,
                target_met: Some(true),
            }),
            snapshot: Some(SnapshotResult {
                routers: 10_000,
                ports: 10_000,
                routes: 100_000,
                documents: 140_000,
                populate_seconds: 12.5,
                store_bytes: 1 << 27,
                compile_first_ms: 900.1,
                compile_median_ms: 800.2,
                compile_min_ms: 790.0,
                compile_max_ms: 850.3,
                compile_runs: 5,
                rss_before_kib: 400_000,
                rss_growth_holding_kib: 60_000,
                rss_growth_after_drop_kib: 20_000,
                rss_peak_growth_kib: Some(300_000),
                snapshot_estimate_kib: Some(40_000),
                changed_tags_median_us: 2100.7,
                changed_tags: 1,
                warnings: 0,
            }),
        }
    }

    #[test]
    fn json_round_trip_is_exact() {
        let report = sample();
        let dir = std::env::temp_dir().join(format!("perf-control-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.json");
        report.save(&path).unwrap();
        assert_eq!(ControlReport::load(&path).unwrap(), report);
        std::fs::write(&path, "{\"schema\": 1}").unwrap();
        let e = ControlReport::load(&path).unwrap_err().to_string();
        assert!(e.contains("control.json") && e.contains("missing field"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn markdown_has_a_row_per_load_point_and_the_propagation_verdict() {
        let md = sample().to_markdown();
        assert!(md.contains("| /routers/{id} | 100 | 8 | 4115 | 101 | 304 | 708 | 12345 | 1 |"), "{md}");
        assert!(md.contains("| /routers | 1000 | 32 | 4115 |"), "{md}");
        assert!(md.contains("| 100 | 1 | 4115 | 101 | 304 | 708 | 12345 | 1 |"), "{md}");
        assert!(md.contains("| POST sent to `topology published` read | 2500 | 7500 | 17500 | 27500 | 1000 |"), "{md}");
        assert!(md.contains("last_compile_us = 1300") && md.contains("Target p99 < 10 ms: met"), "{md}");
        assert!(md.contains("| compile, median of the next (ms) | 800.2 (5 runs, 790.0-850.3) |"), "{md}");
        assert!(md.contains("| snapshot size: RSS growth per snapshot held (MiB) | 39.1 |"), "{md}");
    }
}
