//! Results: the JSON document a run writes (and `compare` reads), its Markdown table, and the
//! statistics behind them (medians and per-round ratios).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::histogram::LatencySummary;
use crate::machine::{Commit, Machine};
use crate::scenario::{Directions, Pipeline};

/// Version of the JSON layout; bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;
/// The name of the appliance in reports.
pub const MIDOGW: &str = "midogw";
/// The name of the I/O ceiling in reports.
pub const TESTPMD_IO: &str = "testpmd-io";

/// What one generator run measured against one device under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenReport {
    /// Length of the throughput window, seconds.
    pub seconds: f64,
    /// Packets the generator's ports took during the window (offered load that got in).
    pub tx_packets: u64,
    /// Send attempts refused because the device's receive ring was full (back-pressure), in
    /// the window. Near zero means the device kept up and the generator set the pace.
    pub tx_refused: u64,
    /// Packets that came back during the window.
    pub rx_packets: u64,
    /// Their bytes, FCS included.
    pub rx_bytes: u64,
    /// Sent minus received over the whole run, after a drain.
    pub lost: u64,
    /// Frames that came back without the generator's trailer.
    pub foreign: u64,
    /// Forwarded rate, Mpps (the sending directions together: both unless the scenario's
    /// `directions` says otherwise).
    pub mpps: f64,
    /// Forwarded rate, Gbit/s of frames with FCS (no preamble or gap).
    pub gbps: f64,
    /// Offered rate that got in, Mpps.
    pub offered_mpps: f64,
    /// Latency at a fixed offered load below saturation.
    pub latency: Option<LatencyPhase>,
    /// Forwarded Mpps in each quarter second of the window: shows whether the rate was steady.
    #[serde(default)]
    pub series_mpps: Vec<f64>,
    /// Gateway scenarios: ARP requests from the device the generator answered (before and
    /// during the warm-up), not counted as received packets.
    #[serde(default)]
    pub arp_replies: u64,
}

/// The fixed-rate phase that measures latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyPhase {
    /// Asked-for rate, Mpps.
    pub offered_mpps: f64,
    /// Rate that came back, Mpps.
    pub received_mpps: f64,
    /// Percentiles of send-to-receive time.
    pub summary: LatencySummary,
}

impl GenReport {
    /// Share of send attempts the device refused (0..=1).
    pub fn refused_share(&self) -> f64 {
        let attempts = self.tx_packets + self.tx_refused;
        if attempts == 0 {
            0.0
        } else {
            self.tx_refused as f64 / attempts as f64
        }
    }
}

/// One device under test in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Round number, from 1.
    pub round: u32,
    /// What the generator measured.
    pub gen: GenReport,
    /// CPU time other processes took during the sample, percent of all CPUs: anything above a
    /// few percent means the figure was disturbed (a compiler, another benchmark).
    #[serde(default)]
    pub interference_pct: f64,
    /// Time the hypervisor stole from this machine during the sample, percent of all CPUs.
    #[serde(default)]
    pub steal_pct: f64,
    /// Attempts thrown away because of interference before this one.
    #[serde(default)]
    pub retries: u32,
    /// The appliance's own pipeline counters for the whole sample (probes, warm-up, window,
    /// latency phase), from `midogw run --stats-json`: gateway scenarios with the appliance only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceCounters>,
}

/// The appliance's pipeline counters summed over its workers, at the end of a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceCounters {
    /// Frames the workers received.
    pub rx_packets: u64,
    /// Frames they sent.
    pub tx_packets: u64,
    /// Flow cache hits.
    pub cache_hits: u64,
    /// Flow cache misses (each one a simulation of a new flow, or of a flow evicted earlier).
    pub cache_misses: u64,
    /// Live flows evicted to make room.
    pub cache_evictions: u64,
    /// Non-zero drop counters by reason.
    #[serde(default)]
    pub drops: std::collections::BTreeMap<String, u64>,
}

impl DeviceCounters {
    /// Reads the `pipelines` of a `midogw run --stats-json` report; `None` without any.
    pub fn from_stats_json(text: &str) -> Option<DeviceCounters> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let workers = v.get("pipelines")?.as_array()?;
        if workers.is_empty() {
            return None;
        }
        let mut c = DeviceCounters::default();
        for w in workers {
            let n = |k: &str| w.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            c.rx_packets += n("rx_packets");
            c.tx_packets += n("tx_packets");
            c.cache_hits += n("cache_hits");
            c.cache_misses += n("cache_misses");
            c.cache_evictions += n("cache_evictions");
            for (reason, count) in w.get("drops").and_then(serde_json::Value::as_object).into_iter().flatten() {
                *c.drops.entry(reason.clone()).or_insert(0) += count.as_u64().unwrap_or(0);
            }
        }
        Some(c)
    }
}

/// Medians over the rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Medians {
    /// Forwarded Mpps.
    pub mpps: f64,
    /// Forwarded Gbit/s.
    pub gbps: f64,
    /// Latency percentiles (median over rounds of each), ns.
    pub p50_ns: Option<f64>,
    /// See `p50_ns`.
    pub p99_ns: Option<f64>,
    /// See `p50_ns`.
    pub p999_ns: Option<f64>,
    /// Total lost over all rounds.
    pub lost: u64,
    /// Median share of refused sends.
    pub refused_share: f64,
}

/// Every round of one device under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DutResult {
    /// `midogw`, `testpmd-io`, `testpmd-macswap`, or a peer.
    pub dut: String,
    /// The exact command that ran it.
    pub command: String,
    /// One per round.
    pub samples: Vec<Sample>,
    /// Over the samples.
    pub median: Medians,
}

impl DutResult {
    /// Builds the result and its medians.
    pub fn new(dut: &str, command: String, samples: Vec<Sample>) -> DutResult {
        let pick = |f: &dyn Fn(&GenReport) -> f64| median(&samples.iter().map(|s| f(&s.gen)).collect::<Vec<_>>());
        let lat = |f: &dyn Fn(&LatencySummary) -> u64| {
            let v: Vec<f64> =
                samples.iter().filter_map(|s| s.gen.latency.as_ref().map(|l| f(&l.summary) as f64)).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        let median = Medians {
            mpps: pick(&|g| g.mpps),
            gbps: pick(&|g| g.gbps),
            p50_ns: lat(&|l| l.p50_ns),
            p99_ns: lat(&|l| l.p99_ns),
            p999_ns: lat(&|l| l.p999_ns),
            lost: samples.iter().map(|s| s.gen.lost).sum(),
            refused_share: pick(&|g| g.refused_share()),
        };
        DutResult { dut: dut.into(), command, samples, median }
    }

    /// Mpps of round `round`.
    pub fn mpps_in(&self, round: u32) -> Option<f64> {
        self.samples.iter().find(|s| s.round == round).map(|s| s.gen.mpps)
    }
}

/// A sample whose device refused fewer than this share of send attempts kept up with the
/// generator: its figure is the generator's speed, not the device's.
pub const MIN_REFUSED_SHARE: f64 = 0.01;

impl Sample {
    /// Whether the device under test set the rate (it pushed back on the generator).
    pub fn device_bound(&self) -> bool {
        self.gen.refused_share() >= MIN_REFUSED_SHARE
    }
}

/// A ratio measured in several rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// The median of the per-round ratios.
    pub median: f64,
    /// One per round used: the two figures of the same round divided.
    pub per_round: Vec<f64>,
    /// The round numbers of `per_round`.
    #[serde(default)]
    pub rounds: Vec<u32>,
    /// Rounds left out because a device kept up with the generator (its figure measured the
    /// generator). When every round would be left out, all are used and this stays empty.
    #[serde(default)]
    pub generator_bound_rounds: Vec<u32>,
    /// Best round against best round. On a machine whose disturbances only ever slow things
    /// down, each device's fastest round is the closest to its capacity; when the per-round
    /// ratios scatter, this is the steadier estimate.
    #[serde(default)]
    pub best: f64,
}

impl Ratio {
    /// Per-round ratios of `num` to `den` (rounds where both ran and both pushed back).
    pub fn between(num: &DutResult, den: &DutResult) -> Option<Ratio> {
        let pairs: Vec<(u32, f64, bool)> = num
            .samples
            .iter()
            .filter_map(|s| {
                let d = den.samples.iter().find(|d| d.round == s.round && d.gen.mpps > 0.0)?;
                Some((s.round, s.gen.mpps / d.gen.mpps, s.device_bound() && d.device_bound()))
            })
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let bound: Vec<&(u32, f64, bool)> = pairs.iter().filter(|p| p.2).collect();
        let used: Vec<&(u32, f64, bool)> = if bound.is_empty() { pairs.iter().collect() } else { bound };
        let generator_bound_rounds =
            if used.len() == pairs.len() { Vec::new() } else { pairs.iter().filter(|p| !p.2).map(|p| p.0).collect() };
        let per_round: Vec<f64> = used.iter().map(|p| p.1).collect();
        let best = |d: &DutResult| d.samples.iter().map(|s| s.gen.mpps).fold(0.0, f64::max);
        Some(Ratio {
            median: median(&per_round),
            per_round,
            rounds: used.iter().map(|p| p.0).collect(),
            generator_bound_rounds,
            best: if best(den) > 0.0 { best(num) / best(den) } else { 0.0 },
        })
    }
}

/// Instructions per packet from callgrind on a fixed trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructionCount {
    /// The figure: worker instructions per forwarded packet.
    pub instructions_per_packet: f64,
    /// Packets in the measured run.
    pub packets: u64,
    /// Worker instructions in the measured run.
    pub instructions: u64,
    /// Empty polls in the measured run (subtracted).
    pub empty_polls: u64,
    /// Instructions of one empty poll, from the run with no packets (gateway scenarios: of one idle
    /// loop turn of the larger run, on average, its expiry sweep included).
    pub instructions_per_empty_poll: f64,
    /// How it was measured.
    pub method: String,
    /// `valgrind --version`.
    pub valgrind: String,
}

/// Everything about one scenario in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Frame sizes.
    pub frames: String,
    /// Flow count.
    pub flows: u32,
    /// Trace seed.
    pub seed: u64,
    /// Mean frame size sent, FCS included (tunnel headers too, for frames sent into a tunnel).
    pub mean_frame_size: f64,
    /// Which generator ports sent: rates, ratios and losses count these directions only.
    #[serde(default)]
    pub directions: Directions,
    /// The appliance and the references, each over all rounds.
    pub duts: Vec<DutResult>,
    /// midogw / testpmd io, per round and median.
    pub ratio_to_testpmd_io: Option<Ratio>,
    /// midogw / testpmd macswap.
    pub ratio_to_testpmd_macswap: Option<Ratio>,
    /// midogw / the peer product, where the pipeline has one.
    pub ratio_to_peer: Option<Ratio>,
    /// The target ratio to testpmd io.
    pub target_ratio_io: f64,
    /// Whether the median ratio met it (None without a throughput run).
    pub target_met: Option<bool>,
    /// Instructions per packet (callgrind), when measured.
    pub instructions: Option<InstructionCount>,
    /// The scenario's other targets (instructions per packet, flow setups per core).
    #[serde(default)]
    pub targets: ScenarioTargets,
    /// Gateway scenarios: the flow table's memory for [`FLOW_TABLE_FLOWS`] flows.
    #[serde(default)]
    pub flow_table: Option<FlowTableFootprint>,
}

/// Targets beyond the ratio to testpmd io, copied from the scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioTargets {
    /// Largest acceptable instructions per packet.
    pub instructions_per_packet: Option<f64>,
    /// Smallest acceptable new flows per second per worker core, millions.
    pub flow_setups_mpps_per_core: Option<f64>,
}

/// Flows the issue's memory target is stated for.
pub const FLOW_TABLE_FLOWS: u64 = 10_000_000;
/// The memory those flows may take.
pub const FLOW_TABLE_LIMIT_BYTES: u64 = 2 << 30;

/// What the gateway's flow table takes for [`FLOW_TABLE_FLOWS`] flows: the exact allocation of
/// `FlowCache::<flowtable::sim::CachedActions>::new` (its `footprint`), which is all of it (nothing is
/// allocated afterwards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTableFootprint {
    /// Flows.
    pub flows: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Bytes per slot (key, entry with the action list, bucket share).
    pub slot_bytes: u64,
    /// The target's limit.
    pub limit_bytes: u64,
}

impl FlowTableFootprint {
    /// The gateway pipeline's flow table (`FlowCache<CachedActions>`) sized for [`FLOW_TABLE_FLOWS`].
    pub fn gateway() -> FlowTableFootprint {
        use midogw::flowtable::flow::{FlowCache, FlowCacheConfig};
        use midogw::flowtable::sim::CachedActions;
        let config = FlowCacheConfig { capacity: FLOW_TABLE_FLOWS as usize, ..FlowCacheConfig::default() };
        FlowTableFootprint {
            flows: FLOW_TABLE_FLOWS,
            bytes: FlowCache::<CachedActions>::footprint(&config) as u64,
            slot_bytes: FlowCache::<CachedActions>::slot_bytes() as u64,
            limit_bytes: FLOW_TABLE_LIMIT_BYTES,
        }
    }

    /// For a scenario of `pipeline`: the gateway's table, nothing for cross-connect.
    pub fn for_pipeline(pipeline: Pipeline) -> Option<FlowTableFootprint> {
        (pipeline == Pipeline::Gateway).then(FlowTableFootprint::gateway)
    }
}

/// One target's verdict, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What is measured.
    pub what: &'static str,
    /// The target, as text.
    pub target: String,
    /// The measured value, as text ("not measured" when absent).
    pub value: String,
    /// Met, not met, or not measured in this run.
    pub met: Option<bool>,
}

/// midogw's ratio to the pipeline's peer for the main table: median, per round, best vs best.
fn peer_cell(sc: &ScenarioResult) -> String {
    let (Some(peer), Some(r)) = (sc.pipeline.peer(), &sc.ratio_to_peer) else { return String::new() };
    format!(
        "<br>to {}: **{:.3}** ({}); best vs best {:.3}",
        peer.name(),
        r.median,
        r.per_round.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", "),
        r.best
    )
}

impl ScenarioResult {
    /// The result for `dut`.
    pub fn dut(&self, name: &str) -> Option<&DutResult> {
        self.duts.iter().find(|d| d.dut == name)
    }

    /// Fills the ratios and the target verdict from `duts`.
    pub fn compute_ratios(&mut self) {
        let mid = self.dut(MIDOGW).cloned();
        let ratio = |other: &str| mid.as_ref().zip(self.dut(other)).and_then(|(m, o)| Ratio::between(m, o));
        let (io, macswap) = (ratio(TESTPMD_IO), ratio("testpmd-macswap"));
        let peer = self.pipeline.peer().and_then(|p| ratio(p.name()));
        self.ratio_to_testpmd_io = io;
        self.ratio_to_testpmd_macswap = macswap;
        self.ratio_to_peer = peer;
        // A target of 0 means the scenario sets none (flow setup is judged by its rate per core).
        self.target_met = self
            .ratio_to_testpmd_io
            .as_ref()
            .filter(|_| self.target_ratio_io > 0.0)
            .map(|r| r.median >= self.target_ratio_io);
    }

    /// Every target of the scenario with its verdict: the ratio to testpmd io (when > 0),
    /// instructions per packet, flow setups per core (midogw's median rate on its one worker
    /// core: every frame of such a scenario is a new flow) and the flow table's memory.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        if self.target_ratio_io > 0.0 {
            let r = self.ratio_to_testpmd_io.as_ref().map(|r| r.median);
            v.push(Verdict {
                what: "ratio to testpmd io (median)",
                target: format!(">= {:.2}", self.target_ratio_io),
                value: r.map_or("not measured".into(), |r| format!("{r:.3}")),
                met: r.map(|r| r >= self.target_ratio_io),
            });
        }
        if let Some(t) = self.targets.instructions_per_packet {
            let i = self.instructions.as_ref().map(|i| i.instructions_per_packet);
            v.push(Verdict {
                what: "instructions per packet (callgrind, rx/tx included)",
                target: format!("<= {t:.0}"),
                value: i.map_or("not measured".into(), |i| format!("{i:.1}")),
                met: i.map(|i| i <= t),
            });
        }
        if let Some(t) = self.targets.flow_setups_mpps_per_core {
            let m = self.dut(MIDOGW).filter(|d| !d.samples.is_empty()).map(|d| d.median.mpps);
            v.push(Verdict {
                what: "new flows per second per core",
                target: format!(">= {t:.1} M"),
                value: m.map_or("not measured".into(), |m| format!("{m:.2} M")),
                met: m.map(|m| m >= t),
            });
        }
        if let Some(f) = &self.flow_table {
            v.push(Verdict {
                what: "flow table memory for 10 M flows",
                target: format!("<= {:.1} GiB", f.limit_bytes as f64 / f64::from(1u32 << 30)),
                value: format!("{:.2} GiB ({} bytes per flow)", f.bytes as f64 / f64::from(1u32 << 30), f.slot_bytes),
                met: Some(f.bytes <= f.limit_bytes),
            });
        }
        v
    }
}

/// Settings of a run, as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Rounds (A B A B interleaving).
    pub rounds: u32,
    /// Throughput window per sample, seconds.
    pub seconds: f64,
    /// Warm-up before it, seconds.
    pub warmup_seconds: f64,
    /// Fixed-rate latency phase, seconds.
    pub latency_seconds: f64,
    /// CPU of the generator.
    pub generator_core: u32,
    /// CPU of the device under test's forwarding core.
    pub dut_core: u32,
    /// How generator and devices are connected.
    pub topology: String,
    /// How midogw was run (`midogw run`, or the built-in forwarder when the appliance has none).
    pub midogw_runner: String,
}

/// One run of `midogw-perf run` or `midogw-perf callgrind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Layout version ([`SCHEMA`]).
    pub schema: u32,
    /// `midogw-perf` and its version.
    pub tool: String,
    /// The exact command line.
    pub command: String,
    /// Start time, UTC (RFC 3339).
    pub started: String,
    /// The machine.
    pub machine: Machine,
    /// The source tree measured.
    pub commit: Commit,
    /// DPDK version (pkg-config).
    pub dpdk_version: String,
    /// Throughput settings (absent for instruction-count runs).
    pub settings: Option<Settings>,
    /// One per scenario.
    pub scenarios: Vec<ScenarioResult>,
}

impl RunReport {
    /// Reads a report.
    pub fn load(path: &Path) -> Result<RunReport, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json { path: path.into(), source })
    }

    /// Writes a report (pretty JSON, trailing newline).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| Error::Json { path: path.into(), source })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// The scenario named `name`.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.scenario == name)
    }

    /// The Markdown report: summary table, per-round table, instruction counts, provenance.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let names: Vec<&str> = self.scenarios.iter().map(|s| s.scenario.as_str()).collect();
        let _ = writeln!(md, "# midogw-perf: {}\n", names.join(", "));
        let _ = writeln!(md, "Reproduce with:\n\n```sh\n{}\n```\n", self.command);
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {} ({} CPUs, {:.0} GiB, kernel {}{}); commit {}{}; DPDK {}; started {} UTC.\n",
            m.cpu_model,
            m.cpus,
            m.memory_gib,
            m.kernel,
            if m.hypervisor { ", virtual machine" } else { "" },
            self.commit.rev,
            if self.commit.dirty { " (uncommitted changes)" } else { "" },
            self.dpdk_version,
            self.started.trim_end_matches('Z').replace('T', " "),
        );
        for sc in &self.scenarios {
            let _ = writeln!(
                md,
                "- `{}`: {} (frames {}, {} flows, seed {}{}{}).",
                sc.scenario,
                sc.description,
                sc.frames,
                sc.flows,
                sc.seed,
                if sc.mean_frame_size > 0.0 {
                    format!(", mean frame {:.1} bytes", sc.mean_frame_size)
                } else {
                    String::new()
                },
                match sc.directions {
                    Directions::Both => "",
                    Directions::Forward => "; one direction: only port 0 sends, figures count that direction",
                    Directions::Reverse => "; one direction: only port 1 sends, figures count that direction",
                }
            );
        }
        md.push('\n');
        if let Some(s) = &self.settings {
            let _ = writeln!(
                md,
                "Settings: {} rounds, interleaved; per sample {:.1} s warm-up, {:.1} s at maximum rate, {:.1} s at a fixed rate for latency. Generator on CPU {}, device under test forwarding on CPU {}. {} midogw ran as: {}.\n",
                s.rounds, s.warmup_seconds, s.seconds, s.latency_seconds, s.generator_core, s.dut_core, s.topology, s.midogw_runner
            );
            md.push_str("| scenario | device | Mpps (median) | Gbit/s | ratio to testpmd io (midogw: also to the peer): median (per round); best vs best | lost | refused sends | latency p50 / p99 / p99.9 (us) |\n");
            md.push_str("|---|---|---:|---:|---|---:|---:|---|\n");
            for sc in &self.scenarios {
                for d in &sc.duts {
                    let ratio = if d.dut == MIDOGW {
                        let to_io = match &sc.ratio_to_testpmd_io {
                            Some(r) => format!(
                                "**{:.3}** ({}); best vs best {:.3}{}{}",
                                r.median,
                                r.per_round.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", "),
                                r.best,
                                if r.generator_bound_rounds.is_empty() {
                                    String::new()
                                } else {
                                    format!(
                                        "; generator-bound rounds left out: {}",
                                        r.generator_bound_rounds
                                            .iter()
                                            .map(u32::to_string)
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                },
                                match sc.target_met {
                                    Some(true) => format!(", target {:.2} met", sc.target_ratio_io),
                                    Some(false) => format!(", **below target {:.2}**", sc.target_ratio_io),
                                    None => String::new(),
                                }
                            ),
                            None => "-".into(),
                        };
                        to_io + &peer_cell(sc)
                    } else if d.dut == TESTPMD_IO {
                        "1 (reference)".into()
                    } else {
                        sc.dut(MIDOGW)
                            .and_then(|m| Ratio::between(d, sc.dut(TESTPMD_IO).unwrap_or(m)))
                            .map(|r| format!("{:.3}", r.median))
                            .unwrap_or_else(|| "-".into())
                    };
                    let us = |v: Option<f64>| v.map(|ns| format!("{:.1}", ns / 1000.0)).unwrap_or_else(|| "-".into());
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.2} | {:.2} | {} | {} | {:.1}% | {} / {} / {} |",
                        sc.scenario,
                        d.dut,
                        d.median.mpps,
                        d.median.gbps,
                        ratio,
                        d.median.lost,
                        d.median.refused_share * 100.0,
                        us(d.median.p50_ns),
                        us(d.median.p99_ns),
                        us(d.median.p999_ns),
                    );
                }
            }
            md.push_str("\nPer round (Mpps; each round runs every device once, in rotating order):\n\n");
            for sc in &self.scenarios {
                let rounds: Vec<u32> =
                    sc.duts.first().map(|d| d.samples.iter().map(|s| s.round).collect()).unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| {} | {} |",
                    sc.scenario,
                    rounds.iter().map(|r| format!("round {r}")).collect::<Vec<_>>().join(" | ")
                );
                let _ = writeln!(md, "|---|{}", "---:|".repeat(rounds.len()));
                for d in &sc.duts {
                    let cells: Vec<String> = rounds
                        .iter()
                        .map(|r| match d.samples.iter().find(|s| s.round == *r) {
                            Some(s) if s.interference_pct >= 5.0 || s.steal_pct >= 5.0 => format!(
                                "{:.2} (disturbed: others {:.0}%, steal {:.0}%)",
                                s.gen.mpps, s.interference_pct, s.steal_pct
                            ),
                            Some(s) if !s.device_bound() => format!("{:.2} (generator-bound)", s.gen.mpps),
                            Some(s) => format!("{:.2}", s.gen.mpps),
                            None => "-".into(),
                        })
                        .collect();
                    let _ = writeln!(md, "| {} | {} |", d.dut, cells.join(" | "));
                }
                md.push('\n');
            }
        }
        let with_counters: Vec<&ScenarioResult> = self
            .scenarios
            .iter()
            .filter(|s| s.dut(MIDOGW).is_some_and(|d| d.samples.iter().any(|x| x.device.is_some())))
            .collect();
        if !with_counters.is_empty() {
            md.push_str(
                "midogw's own pipeline counters per round (whole sample: probes, warm-up, window, latency phase):\n\n",
            );
            md.push_str("| scenario | round | frames received | flow-cache hits | misses (new flows) | misses / frames | evictions | drops |\n|---|---:|---:|---:|---:|---:|---:|---|\n");
            for sc in with_counters {
                for sample in &sc.dut(MIDOGW).expect("filtered").samples {
                    let Some(c) = &sample.device else { continue };
                    let drops: Vec<String> = c.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {:.1}% | {} | {} |",
                        sc.scenario,
                        sample.round,
                        c.rx_packets,
                        c.cache_hits,
                        c.cache_misses,
                        c.cache_misses as f64 / c.rx_packets.max(1) as f64 * 100.0,
                        c.cache_evictions,
                        if drops.is_empty() { "-".into() } else { drops.join(", ") }
                    );
                }
            }
            md.push('\n');
        }
        let counted: Vec<&ScenarioResult> = self.scenarios.iter().filter(|s| s.instructions.is_some()).collect();
        if !counted.is_empty() {
            md.push_str("Instructions per packet (callgrind, worker thread only, fixed seeded trace through the appliance's loop on net_ring ports: the cross-connect loop, or for gateway scenarios the pipeline loop after a first pass that set up every flow; stable across runs, compare these across commits):\n\n");
            md.push_str("| scenario | instructions / packet | packets | worker instructions | empty polls (idle turns) subtracted |\n|---|---:|---:|---:|---:|\n");
            for sc in counted {
                let i = sc.instructions.as_ref().expect("filtered");
                let _ = writeln!(
                    md,
                    "| {} | **{:.1}** | {} | {} | {} x {:.1} |",
                    sc.scenario,
                    i.instructions_per_packet,
                    i.packets,
                    i.instructions,
                    i.empty_polls,
                    i.instructions_per_empty_poll
                );
            }
            md.push('\n');
        }
        let judged: Vec<(&ScenarioResult, Vec<Verdict>)> = self
            .scenarios
            .iter()
            .filter(|s| s.targets != ScenarioTargets::default() || s.flow_table.is_some())
            .map(|s| (s, s.verdicts()))
            .collect();
        if !judged.is_empty() {
            md.push_str(
                "Targets (issue 4):\n\n| scenario | figure | target | measured | verdict |\n|---|---|---|---|---|\n",
            );
            for (sc, verdicts) in judged {
                for v in verdicts {
                    let verdict = match v.met {
                        Some(true) => "met",
                        Some(false) => "**not met**",
                        None => "not measured in this run",
                    };
                    let _ = writeln!(md, "| {} | {} | {} | {} | {verdict} |", sc.scenario, v.what, v.target, v.value);
                }
            }
            md.push('\n');
        }
        md.push_str("How to read this: perf/README.md.\n");
        md
    }
}

/// The median of `values` (mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::synthetic_report as report;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn ratios_are_per_round_then_median() {
        let r = report(&[9.0, 5.0, 10.0], &[10.0, 10.0, 10.0], None);
        let sc = &r.scenarios[0];
        let ratio = sc.ratio_to_testpmd_io.as_ref().unwrap();
        assert_eq!(ratio.per_round, [0.9, 0.5, 1.0]);
        assert_eq!(ratio.median, 0.9);
        assert_eq!(ratio.best, 1.0, "fastest rounds: 10 vs 10");
        assert_eq!(sc.target_met, Some(true));
        assert_eq!(sc.dut(MIDOGW).unwrap().median.mpps, 9.0);
    }

    #[test]
    fn generator_bound_rounds_are_left_out_of_the_ratio() {
        let mut r = report(&[9.0, 5.0, 10.0], &[10.0, 5.0, 10.0], None);
        let sc = &mut r.scenarios[0];
        // Round 2: testpmd took every packet offered: it measured the generator.
        sc.duts[1].samples[1].gen.tx_refused = 0;
        sc.compute_ratios();
        let ratio = sc.ratio_to_testpmd_io.as_ref().unwrap();
        assert_eq!(ratio.per_round, [0.9, 1.0]);
        assert_eq!(ratio.rounds, [1, 3]);
        assert_eq!(ratio.generator_bound_rounds, [2]);
        assert!(r.to_markdown().contains("generator-bound rounds left out: 2"));
    }

    #[test]
    fn the_peer_ratio_is_per_round_then_median_and_shown() {
        let mut r = report(&[6.0, 6.6, 6.0], &[10.0, 11.0, 10.0], None);
        let sc = &mut r.scenarios[0];
        sc.compute_ratios();
        assert_eq!(sc.ratio_to_peer, None, "cross-connect has no peer");
        sc.pipeline = Pipeline::Gateway;
        let mut samples = sc.duts[1].samples.clone();
        for (s, mpps) in samples.iter_mut().zip([2.0, 2.0, 1.5]) {
            s.gen = crate::testing::gen_report(mpps);
        }
        sc.duts.push(DutResult::new(crate::ovs::PEER, "midogw-perf ovs".into(), samples));
        sc.compute_ratios();
        let peer = sc.ratio_to_peer.as_ref().unwrap();
        assert_eq!(peer.per_round, [3.0, 3.3, 4.0]);
        assert_eq!(peer.median, 3.3);
        assert_eq!(peer.best, 3.3);
        let md = r.to_markdown();
        assert!(md.contains("to ovs-dpdk: **3.300** (3.000, 3.300, 4.000)"), "{md}");
        assert!(md.contains("| cross-connect-64 | ovs-dpdk | 2.00 |"), "{md}");
    }

    #[test]
    fn json_round_trip() {
        let r = report(&[9.0, 9.5], &[10.0, 10.2], Some(42.5));
        let dir = std::env::temp_dir().join(format!("perf-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        r.save(&path).unwrap();
        let back = RunReport::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back, r);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"ratio_to_peer\":null"), "peer ratio present as null");
    }

    #[test]
    fn markdown_names_the_command_and_the_ratio() {
        let md = report(&[9.0, 9.5, 9.2], &[10.0, 10.0, 10.0], Some(42.5)).to_markdown();
        assert!(md.contains("midogw-perf run cross-connect"));
        assert!(md.contains("**0.920**"), "{md}");
        assert!(md.contains("target 0.90 met"));
        assert!(md.contains("**42.5**"));
    }

    #[test]
    fn appliance_counters_are_read_from_its_stats_json() {
        let text = r#"{"seconds": 3.1, "ports": [], "links": [], "pipelines": [
            {"worker": 0, "rx_packets": 100, "tx_packets": 98, "cache_hits": 10, "cache_misses": 90,
             "cache_evictions": 5, "drops": {"arp_consumed": 2}},
            {"worker": 1, "rx_packets": 1, "tx_packets": 1, "cache_hits": 0, "cache_misses": 1,
             "cache_evictions": 0, "drops": {"arp_consumed": 1, "ttl_exceeded": 4}}]}"#;
        let c = DeviceCounters::from_stats_json(text).unwrap();
        assert_eq!((c.rx_packets, c.tx_packets, c.cache_hits, c.cache_misses, c.cache_evictions), (101, 99, 10, 91, 5));
        assert_eq!(c.drops["arp_consumed"], 3);
        assert_eq!(c.drops["ttl_exceeded"], 4);
        assert_eq!(DeviceCounters::from_stats_json(r#"{"pipelines": []}"#), None, "cross-connect has none");
        assert_eq!(DeviceCounters::from_stats_json("not json"), None);
        let mut r = report(&[1.0], &[2.0], None);
        r.scenarios[0].duts[0].samples[0].device = Some(c);
        assert!(r
            .to_markdown()
            .contains("| cross-connect-64 | 1 | 101 | 10 | 91 | 90.1% | 5 | arp_consumed 3, ttl_exceeded 4 |"));
    }

    #[test]
    fn gateway_targets_are_judged_met_or_not() {
        let mut r = report(&[1.4, 1.5, 1.6], &[2.0, 2.0, 2.0], Some(300.0));
        let sc = &mut r.scenarios[0];
        sc.pipeline = Pipeline::Gateway;
        sc.target_ratio_io = 0.6;
        sc.targets = ScenarioTargets { instructions_per_packet: Some(250.0), flow_setups_mpps_per_core: Some(1.0) };
        sc.flow_table = FlowTableFootprint::for_pipeline(Pipeline::Gateway);
        sc.compute_ratios();
        let v = sc.verdicts();
        let by = |what: &str| v.iter().find(|x| x.what.starts_with(what)).unwrap().clone();
        assert_eq!(by("ratio").met, Some(true), "0.75 >= 0.60");
        assert_eq!(by("instructions").met, Some(false), "300 > 250");
        assert_eq!(by("new flows").met, Some(true), "median 1.5 M >= 1 M");
        assert_eq!(by("new flows").value, "1.50 M");
        let table = by("flow table");
        let f = sc.flow_table.as_ref().unwrap();
        assert_eq!(f.flows, 10_000_000);
        assert_eq!(f.bytes as usize, {
            use midogw::flowtable::flow::{FlowCache, FlowCacheConfig};
            FlowCache::<midogw::flowtable::sim::CachedActions>::footprint(&FlowCacheConfig {
                capacity: 10_000_000,
                ..FlowCacheConfig::default()
            })
        });
        assert_eq!(table.met, Some(f.bytes <= 2 << 30));
        let md = r.to_markdown();
        assert!(md.contains("| cross-connect-64 | instructions per packet (callgrind, rx/tx included) | <= 250 | 300.0 | **not met** |"), "{md}");
        assert!(md.contains("flow table memory for 10 M flows"), "{md}");
        // No target: no verdict, and a scenario without targets gets no table.
        r.scenarios[0].target_ratio_io = 0.0;
        r.scenarios[0].compute_ratios();
        assert_eq!(r.scenarios[0].target_met, None);
        assert!(!report(&[1.0], &[1.0], None).to_markdown().contains("Targets"));
    }
}
