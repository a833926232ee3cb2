//! Instructions per packet: the figure that stays put on a noisy machine.
//!
//! `midogw-perf cg-trace` pushes a fixed, seeded trace of N packets through the appliance's
//! loop (cross-connect: `midogw::cross_connect` + `midogw::run_worker`; gateway: the pipeline)
//! on `net_ring` ports in one process: every packet is queued before the worker starts, the worker forwards them, the main
//! thread stops it once all have arrived. `midogw-perf callgrind` runs that under
//! `valgrind --tool=callgrind`, collecting only inside the worker (`--toggle-collect` on the
//! lcore entry point), so EAL start-up, trace building and the main thread cost nothing.
//!
//! The one thing that varies between runs is how long the worker polls empty rings after the
//! last packet before it sees the stop flag (valgrind schedules threads in time slices). Those
//! polls are counted exactly (RX calls that were not followed by a TX call), and a second run
//! with no packets gives the cost of one empty poll; subtracting them leaves the packets' cost:
//!
//! `ipp = (Ir(N) - empty_polls(N) * Ir(0) / polls(0)) / N`
//!
//! Gateway scenarios run the pipeline loop (`midogw::run_pipeline`) instead, and their figure is
//! the difference of two corrected runs (see [`measure`]), so the set-up both share (the
//! router learning its neighbours, the first packet of each flow) cancels out. There the idle
//! turns are known exactly: a turn that received nothing calls the pipeline's out-of-line
//! [`IDLE_FN`] (flow expiry), so each run's idle turns are that function's calls, their expiry
//! work is its inclusive cost (which depends on how full the flow table is, so it is taken from
//! the run itself), and only the rest of an idle turn (empty RX calls, the snapshot check) is
//! priced by the idle runs. Tunnel scenarios
//! queue port 1's stream inside the tunnel, as the compute host sends it, and pre-resolve both
//! neighbours the tunnel needs with gratuitous ARP: the compute host's on the underlay, and side
//! B's host inside the tunnel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use midogw::sizing::BURST;
use midogw::{
    cross_connect, pipeline_plans, run_pipeline, run_worker, Burst, Eal, EalConfig, Mempool, PipelineConfig, Port,
    PortConfig, Ring, SnapshotExchange,
};

use crate::error::{Error, Result};
use crate::packet::{arp_announcement, Stamp};
use crate::report::InstructionCount;
use crate::scenario::{Directions, Pipeline, Scenario};
use crate::traffic::{Direction, Trace};

/// Callgrind collects only inside functions matching this: the lcore entry point that runs the
/// worker closure (an `extern "C"` function handed to DPDK by pointer, so never inlined).
pub const TOGGLE: &str = "*lcore*trampoline*";
/// The shim's RX and TX burst functions, whose call counts tell busy polls from empty ones.
pub const RX_FN: &str = "midogw_eth_rx_burst";
/// See [`RX_FN`].
pub const TX_FN: &str = "midogw_eth_tx_burst";
/// The pipeline's idle-turn function (`Engine::idle_turn`, never inlined): called once per loop
/// turn that received nothing.
pub const IDLE_FN: &str = "midogw::pipeline::Engine::idle_turn";

/// Default packets per measured run.
pub const DEFAULT_PACKETS: u64 = 65_536;

/// Runs `packets` packets of `scenario` through the appliance's loop on ring ports, the whole
/// trace `passes` times over; returns how many came out. Half the packets go each way. With no
/// packets (a baseline), the worker idles 300 ms per pass instead.
///
/// Cross-connect scenarios run `midogw::cross_connect` + `midogw::run_worker`; gateway scenarios
/// run `midogw::pipeline_plans` + `midogw::run_pipeline` on the scenario's topology (read by
/// [`crate::topology`]), with frames addressed to the router ports. Before the trace each
/// gateway port receives ARP announcements (unasked replies to the router port's address,
/// [`arp_announcement`]) from the generator's host on that side, so the router learns its next
/// hops through its real ARP path, and answers nothing: a full burst on port 0 (the worker
/// polls port 0 first, so the forward stream never meets an unresolved next hop) and one on
/// port 1 ahead of its stream. They cost the same in every run and cancel in the differences
/// [`measure`] takes.
///
/// A one-directional scenario ([`Scenario::directions`]) sends all `packets` one way. In a
/// tunnel scenario port 1 carries, before its stream, an announcement from the compute host on
/// the underlay (to the underlay address) and one from side B's host inside the tunnel, and its
/// stream is tunnelled.
pub fn trace_run(scenario: &Scenario, packets: usize, passes: usize, file_prefix: &str) -> Result<u64> {
    let counts = match scenario.directions {
        Directions::Both => [packets / 2, packets - packets / 2],
        Directions::Forward => [packets, 0],
        Directions::Reverse => [0, packets],
    };
    // A gateway scenario's router ports: where each side's frames go (MACs) and its hosts'
    // announcements are addressed.
    let topology = scenario.topology_path().map(|path| crate::topology::GatewayTopology::load(&path)).transpose()?;
    let macs = topology.as_ref().map(|t| t.port_macs()).transpose()?;
    let addresses = topology.as_ref().map(|t| t.port_addresses()).transpose()?;
    let forward = Trace::build_to(&scenario.traffic, Direction::Forward, counts[0].max(1), macs.map(|m| m[0]))?;
    let is_tunnel = scenario.is_tunnel()?;
    let total = packets * passes;
    // The tunnel's frames are up to 50 bytes longer than the reverse traffic's own.
    let max_len = forward.max_len().max(scenario.reverse_traffic().frames.max() + crate::packet::VXLAN_OVERHEAD);
    let mtu = max_len.saturating_sub(14).max(1500) as u16;
    let data_room = (midogw::sizing::max_frame(mtu) as usize + 128).next_multiple_of(64) as u16;
    let mbufs = (total as u32 + 4096).next_power_of_two() - 1;
    let memory_mib = 128 + ((u64::from(mbufs) * (u64::from(data_room) + 256)) >> 20) as u32;
    let eal = Eal::init(&EalConfig {
        main_core: 0,
        worker_cores: vec![1],
        file_prefix: file_prefix.into(),
        pci_allow: vec![],
        extra_args: vec![
            "--no-huge".into(),
            "-m".into(),
            memory_mib.to_string(),
            "--no-shconf".into(),
            "--log-level=lib.eal:error".into(),
        ],
    })?;
    let pool = Mempool::with_data_room(&eal, "cgtrace", mbufs, data_room)?;
    let ring_size = (total as u32 + BURST as u32 + 2).next_power_of_two().max(1024);
    let rings: Vec<Ring<'_>> =
        (0..4).map(|i| Ring::new(&eal, &format!("cgwire{i}"), ring_size)).collect::<Result<_, _>>()?;
    let config = |name: &str| PortConfig { name: name.into(), mtu, rx_queues: 1, tx_queues: 1 };
    // wire0: host A -> port 0; wire1: port 0 -> host A; wire2/3 likewise for port 1.
    let [up, down] = crate::topology::DPDK_PORT_NAMES;
    let appliance = [
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config(up))?,
        Port::from_rings(&eal, &pool, &rings[2], &rings[3], &config(down))?,
    ];
    let hosts = [
        Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("hostA"))?,
        Port::from_rings(&eal, &pool, &rings[3], &rings[2], &config("hostB"))?,
    ];
    let tunnel = scenario.tunnel(appliance[1].mac())?;
    let reverse = Trace::build_tunnelled(
        scenario.reverse_traffic(),
        Direction::Reverse,
        counts[1].max(1),
        macs.map(|m| m[1]),
        tunnel,
    )?;
    let announcements = match scenario.pipeline {
        Pipeline::CrossConnect => [0, 0],
        Pipeline::Gateway if is_tunnel => [BURST, 2],
        Pipeline::Gateway => [BURST, 1],
    };
    let streams = [(&forward, counts[0], Direction::Forward), (&reverse, counts[1], Direction::Reverse)];
    for (side, (host, (trace, count, direction))) in hosts.iter().zip(streams).enumerate() {
        let (_rx, mut tx) = host.take_queues()?;
        let (mac, ip) = crate::traffic::host(direction);
        let plain = match (macs, addresses) {
            (Some(macs), Some(addresses)) => arp_announcement(mac, ip, macs[side], addresses[side]).to_vec(),
            _ => Vec::new(),
        };
        // Side B's host behind the tunnel: the underlay learns the compute host first, then the
        // router learns side B's host through the tunnel.
        let arps: Vec<Vec<u8>> = match (&tunnel, side) {
            (Some(t), 1) => vec![
                arp_announcement(crate::topology::COMPUTE_HOST_MAC, t.src_ip, t.dst_mac, t.dst_ip).to_vec(),
                t.encapsulate(&plain),
            ],
            _ => vec![plain],
        };
        let frames = announcements[side] + count * passes;
        let mut burst = Burst::new();
        let mut i = 0;
        while i < frames || !burst.is_empty() {
            while i < frames && !burst.is_full() {
                let mut m = pool.alloc().ok_or_else(|| Error::Process {
                    what: "cg-trace".into(),
                    detail: "mbuf pool exhausted while queueing the trace".into(),
                })?;
                if i < announcements[side] {
                    let arp = &arps[i.min(arps.len() - 1)];
                    m.append(arp.len() as u16)
                        .ok_or_else(|| Error::Build("no room for ARP".into()))?
                        .copy_from_slice(arp);
                } else {
                    let k = (i - announcements[side]) % count.max(1);
                    let len = trace.len_of(k);
                    let buf = m.append(len as u16).ok_or_else(|| Error::Build("frame larger than the mbuf".into()))?;
                    trace.emit(k, Stamp { seq: k as u32, tx_ns: 0 }, buf);
                }
                let _ = burst.push(m);
                i += 1;
            }
            tx[0].tx(&mut burst);
        }
    }
    let stop = AtomicBool::new(false);
    let forwarded = |r: &[Ring<'_>]| u64::from(r[1].count() + r[3].count());
    let wait = |stop: &AtomicBool| {
        let started = Instant::now();
        let limit = Duration::from_secs(600);
        if packets == 0 {
            // The baseline: the worker polls empty rings for 300 ms per pass, counted from its
            // first polls (it has taken the ARP frames, if any); its start-up (the flow cache is
            // written in full) can take longer than that under valgrind.
            while rings[0].count() + rings[2].count() > 0 && started.elapsed() < limit {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_millis(300) * passes as u32);
        }
        while forwarded(&rings) < total as u64 && started.elapsed() < limit {
            std::hint::spin_loop();
        }
        stop.store(true, Ordering::Relaxed);
        forwarded(&rings)
    };
    let done = match scenario.pipeline {
        Pipeline::CrossConnect => {
            let (plans, _links) = cross_connect(&appliance, 1)?;
            eal.scope(|s| {
                for plan in plans {
                    s.launch(1, || run_worker(plan, &stop))?;
                }
                Ok::<_, Error>(wait(&stop))
            })??
        }
        Pipeline::Gateway => {
            let topology = topology.as_ref().ok_or_else(|| Error::Build("gateway scenario without topology".into()))?;
            let snapshot = topology.snapshot(&[(up, appliance[0].id()), (down, appliance[1].id())])?;
            let exchange = SnapshotExchange::new(snapshot, 1);
            let pipeline = PipelineConfig::default();
            let plans = pipeline_plans(&appliance, 1)?;
            eal.scope(|s| {
                for plan in plans {
                    let (exchange, pool, pipeline, stop) = (&exchange, &pool, &pipeline, &stop);
                    s.launch(1, move || run_pipeline(plan, exchange, pool, pipeline, stop))?;
                }
                Ok::<_, Error>(wait(&stop))
            })??
        }
    };
    stop.store(true, Ordering::Relaxed);
    Ok(done)
}

/// Callgrind's figures for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallgrindOutput {
    /// Collected instructions (Ir).
    pub instructions: u64,
    /// Calls per called function name, summed over callers.
    pub calls: HashMap<String, u64>,
    /// Inclusive instructions of those calls per called function name, summed over callers.
    pub inclusive: HashMap<String, u64>,
}

/// Parses a callgrind output file written with `--compress-strings=no`.
pub fn parse_callgrind(text: &str) -> Result<CallgrindOutput> {
    let mut out = CallgrindOutput::default();
    let mut callee: Option<String> = None;
    let mut totals = None;
    // The callee of the last `calls=` line: the cost line right after it is the calls' inclusive cost.
    let mut inclusive_of: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = inclusive_of.take() {
            // "<position...> <Ir>": the last field is the event count.
            let ir: u64 = line.split_whitespace().last().and_then(|c| c.parse().ok()).unwrap_or(0);
            *out.inclusive.entry(name).or_insert(0) += ir;
            continue;
        }
        if let Some(name) = line.strip_prefix("cfn=") {
            callee = Some(strip_id(name).to_string());
        } else if let Some(rest) = line.strip_prefix("calls=") {
            let count: u64 = rest.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
            if let Some(name) = callee.take() {
                *out.calls.entry(name.clone()).or_insert(0) += count;
                inclusive_of = Some(name);
            }
        } else if let Some(v) = line.strip_prefix("totals:").or_else(|| line.strip_prefix("summary:")) {
            totals = v.split_whitespace().next().and_then(|t| t.parse().ok()).or(totals);
        }
    }
    out.instructions =
        totals.ok_or_else(|| Error::Process { what: "callgrind".into(), detail: "no totals in output".into() })?;
    Ok(out)
}

/// Drops callgrind's "(id) " prefix, present even without string compression in some versions.
fn strip_id(name: &str) -> &str {
    let name = name.trim();
    if name.starts_with('(') {
        name.split_once(") ").map(|(_, n)| n).unwrap_or(name)
    } else {
        name
    }
}

/// Calls of functions whose name contains `needle`.
fn calls_matching(out: &CallgrindOutput, needle: &str) -> u64 {
    out.calls.iter().filter(|(n, _)| n.contains(needle)).map(|(_, c)| c).sum()
}

/// Inclusive instructions of the calls of functions whose name contains `needle`.
fn inclusive_matching(out: &CallgrindOutput, needle: &str) -> u64 {
    out.inclusive.iter().filter(|(n, _)| n.contains(needle)).map(|(_, c)| c).sum()
}

/// Works out instructions per packet from a run with `packets` and a run with none.
pub fn instructions_per_packet(
    measured: &CallgrindOutput,
    baseline: &CallgrindOutput,
    packets: u64,
    valgrind: String,
) -> Result<InstructionCount> {
    let polls0 = calls_matching(baseline, RX_FN);
    if polls0 == 0 || packets == 0 {
        return Err(Error::Process {
            what: "callgrind".into(),
            detail: format!("the baseline run made no RX call ({polls0}) or no packets were sent"),
        });
    }
    let per_poll = baseline.instructions as f64 / polls0 as f64;
    let empty = calls_matching(measured, RX_FN).saturating_sub(calls_matching(measured, TX_FN));
    let ipp = (measured.instructions as f64 - empty as f64 * per_poll) / packets as f64;
    Ok(InstructionCount {
        instructions_per_packet: (ipp * 10.0).round() / 10.0,
        packets,
        instructions: measured.instructions,
        empty_polls: empty,
        instructions_per_empty_poll: (per_poll * 10.0).round() / 10.0,
        method: format!(
            "valgrind --tool=callgrind --toggle-collect='{TOGGLE}' on `midogw-perf cg-trace` with {packets} and 0 packets; \
             (Ir - empty polls x Ir per empty poll) / packets"
        ),
        valgrind,
    })
}

/// Runs `cg-trace` under callgrind with `packets`, sent `passes` times, in `dir`.
pub fn callgrind_run(
    exe: &Path,
    scenario: &str,
    scenarios_file: Option<&Path>,
    packets: u64,
    passes: u64,
    dir: &Path,
) -> Result<CallgrindOutput> {
    let out_file: PathBuf = dir.join(format!("callgrind.{scenario}.{packets}x{passes}.out"));
    let prefix = format!("mgwperf-cg-{}-{packets}x{passes}", std::process::id());
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--toggle-collect={TOGGLE}"))
        .arg("--fair-sched=yes")
        .arg("--compress-strings=no")
        .arg("--compress-pos=no")
        .arg(exe)
        .arg("cg-trace")
        .arg("--scenario")
        .arg(scenario)
        .arg("--packets")
        .arg(packets.to_string())
        .arg("--passes")
        .arg(passes.to_string())
        .arg("--file-prefix")
        .arg(&prefix);
    if let Some(f) = scenarios_file {
        cmd.arg("--scenarios").arg(f);
    }
    tracing::info!(?cmd, "callgrind run");
    let output = cmd.output().map_err(|e| Error::Process { what: "valgrind".into(), detail: e.to_string() })?;
    crate::runner::remove_runtime_dir(&prefix);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
        return Err(Error::Process {
            what: format!("valgrind cg-trace {scenario} {packets}"),
            detail: format!(
                "{}; last lines:\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    let text = std::fs::read_to_string(&out_file).map_err(|e| Error::io(&out_file, e))?;
    let _ = std::fs::remove_file(&out_file);
    parse_callgrind(&text)
}

/// Measures instructions per packet for `scenario`.
///
/// Cross-connect: a run with `packets` and one with none (the empty-poll price). Gateway
/// scenarios need a difference of two runs, because the first packet of each flow is simulated
/// and installed (a miss) and the router learns its neighbours first:
///
/// - the hit path (the default): the trace of `packets / 2` once, and the same trace twice; the
///   second pass meets every flow in the cache, so the difference is `packets / 2` hits;
/// - flow setup (a scenario with `target_flow_setups_mpps_per_core`, all of whose packets are
///   new flows): `packets / 2` and `packets` new flows; the difference is `packets / 2` misses,
///   each a full simulation and a flow-cache insert.
///
/// Each run's empty polls are priced by the run with no packets and subtracted first.
pub fn measure(
    exe: &Path,
    scenario: &Scenario,
    scenarios_file: Option<&Path>,
    packets: u64,
    dir: &Path,
) -> Result<InstructionCount> {
    let valgrind = crate::machine::valgrind_version().ok_or_else(|| Error::Process {
        what: "valgrind".into(),
        detail: "not installed (Debian package valgrind)".into(),
    })?;
    let name = scenario.name.as_str();
    match scenario.pipeline {
        Pipeline::CrossConnect => {
            let baseline = callgrind_run(exe, name, scenarios_file, 0, 1, dir)?;
            let measured = callgrind_run(exe, name, scenarios_file, packets, 1, dir)?;
            instructions_per_packet(&measured, &baseline, packets, valgrind)
        }
        Pipeline::Gateway => {
            // The pipeline worker's start-up (its flow cache written in full) is counted too, so
            // an idle turn is priced by the difference of a short and a long idle run.
            let idle_short = callgrind_run(exe, name, scenarios_file, 0, 1, dir)?;
            let idle_long = callgrind_run(exe, name, scenarios_file, 0, 4, dir)?;
            let per_turn = idle_turn_price(&idle_long, &idle_short)?;
            let half = packets / 2;
            let (small, large, what) = if scenario.target_flow_setups_mpps_per_core.is_some() {
                let small = callgrind_run(exe, name, scenarios_file, half, 1, dir)?;
                let large = callgrind_run(exe, name, scenarios_file, 2 * half, 1, dir)?;
                (small, large, format!("{half} and {} packets of new flows", 2 * half))
            } else {
                let small = callgrind_run(exe, name, scenarios_file, half, 1, dir)?;
                let large = callgrind_run(exe, name, scenarios_file, half, 2, dir)?;
                (small, large, format!("a {half}-packet trace once and twice (the second pass all flow-cache hits)"))
            };
            let mut what = what;
            if scenario.directions != Directions::Both {
                what.push_str(&format!(
                    ", all of it {:?} (the scenario's one direction: a busy turn's RX call on the silent port counts in the packets' cost)",
                    scenario.directions
                ));
            }
            if let Some(t) = scenario.tunnel([0; 6])? {
                what.push_str(&format!(
                    ", port 1's stream inside {:?} as the compute host sends it (the gateway's underlay and inner neighbours pre-resolved by gratuitous ARP, the inner one through the tunnel, before the trace)",
                    t.encap
                ));
            }
            instructions_between(&large, &small, per_turn, half, valgrind, what)
        }
    }
}

/// Instructions of one idle turn outside [`IDLE_FN`] (empty RX calls, the snapshot check, the
/// clock) from two idle runs: what the longer one added per idle turn, its expiry work taken out.
pub fn idle_turn_price(long: &CallgrindOutput, short: &CallgrindOutput) -> Result<f64> {
    let (turns_long, turns_short) = (calls_matching(long, IDLE_FN), calls_matching(short, IDLE_FN));
    let rest = |o: &CallgrindOutput| o.instructions.saturating_sub(inclusive_matching(o, IDLE_FN));
    if turns_long <= turns_short || rest(long) <= rest(short) {
        return Err(Error::Process {
            what: "callgrind".into(),
            detail: format!(
                "the long idle run had no more idle turns than the short one ({turns_long} <= {turns_short} calls of {IDLE_FN})"
            ),
        });
    }
    Ok((rest(long) - rest(short)) as f64 / (turns_long - turns_short) as f64)
}

/// Instructions per packet from the difference of two runs `packets` packets apart, each with
/// its idle turns taken out exactly: the inclusive cost of their [`IDLE_FN`] calls, and
/// `per_turn` instructions each for the rest of the turn.
pub fn instructions_between(
    large: &CallgrindOutput,
    small: &CallgrindOutput,
    per_turn: f64,
    packets: u64,
    valgrind: String,
    what: String,
) -> Result<InstructionCount> {
    if packets == 0 {
        return Err(Error::Process { what: "callgrind".into(), detail: "no packets were sent".into() });
    }
    let idle =
        |o: &CallgrindOutput| inclusive_matching(o, IDLE_FN) as f64 + calls_matching(o, IDLE_FN) as f64 * per_turn;
    let corrected = |o: &CallgrindOutput| o.instructions as f64 - idle(o);
    let ipp = (corrected(large) - corrected(small)) / packets as f64;
    let turns = calls_matching(large, IDLE_FN);
    Ok(InstructionCount {
        instructions_per_packet: (ipp * 10.0).round() / 10.0,
        packets,
        instructions: large.instructions.saturating_sub(small.instructions),
        empty_polls: turns,
        instructions_per_empty_poll: if turns == 0 { 0.0 } else { (idle(large) / turns as f64 * 10.0).round() / 10.0 },
        method: format!(
            "valgrind --tool=callgrind --toggle-collect='{TOGGLE}' on `midogw-perf cg-trace` (the gateway pipeline) with {what}, and idle for 0.3 s and 1.2 s (the price of an idle turn outside its expiry work); \
             ((Ir - idle turns' cost) of the larger run - the same of the smaller) / {packets} packets, where an idle turn is a call of {IDLE_FN} \
             (its inclusive cost from the run itself, plus {per_turn:.1} for the rest of the turn); idle turns of the smaller run: {}",
            calls_matching(small, IDLE_FN)
        ),
        valgrind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# callgrind format
version: 1
creator: callgrind-3.19.0
events: Ir
summary: 1000

fn=midogw::lcore::trampoline
0 10
cfn=midogw_eth_rx_burst
calls=40 0
0 400
cfn=(7) midogw_eth_tx_burst
calls=30 0
0 300
fn=midogw_eth_rx_burst
0 400
cfn=midogw_eth_rx_burst
calls=2 0
0 20
totals: 1000
";

    #[test]
    fn parses_totals_and_call_counts() {
        let out = parse_callgrind(SAMPLE).unwrap();
        assert_eq!(out.instructions, 1000);
        assert_eq!(out.calls[RX_FN], 42);
        assert_eq!(out.calls[TX_FN], 30);
        assert_eq!(out.inclusive[RX_FN], 420);
        assert_eq!(out.inclusive[TX_FN], 300);
        assert!(parse_callgrind("events: Ir\n").is_err());
    }

    #[test]
    fn empty_polls_are_subtracted() {
        let baseline =
            CallgrindOutput { instructions: 50_000, calls: [(RX_FN.to_string(), 1000)].into(), ..Default::default() };
        // 64 packets, 4 busy polls, 10 empty polls at 50 each: 500 + 64 * 20 = 1780.
        let measured = CallgrindOutput {
            instructions: 1780,
            calls: [(RX_FN.to_string(), 14), (TX_FN.to_string(), 4)].into(),
            ..Default::default()
        };
        let c = instructions_per_packet(&measured, &baseline, 64, "valgrind".into()).unwrap();
        assert_eq!(c.empty_polls, 10);
        assert_eq!(c.instructions_per_empty_poll, 50.0);
        assert_eq!(c.instructions_per_packet, 20.0);
        assert!(instructions_per_packet(&measured, &CallgrindOutput::default(), 64, String::new()).is_err());
    }

    /// A run's figures: `instructions` in all, `idle_turns` calls of the idle function costing
    /// `idle_inclusive` together.
    fn run(instructions: u64, idle_turns: u64, idle_inclusive: u64) -> CallgrindOutput {
        CallgrindOutput {
            instructions,
            calls: [(IDLE_FN.to_string(), idle_turns)].into(),
            inclusive: [(IDLE_FN.to_string(), idle_inclusive)].into(),
        }
    }

    #[test]
    fn differences_of_two_runs_cancel_what_both_share() {
        // Idle runs: 20 000 instructions of start-up, then 50 per idle turn outside the idle
        // function, whose calls cost 200 each on an empty flow table.
        let short = run(20_000 + 1000 * 250, 1000, 1000 * 200);
        let long = run(20_000 + 4000 * 250, 4000, 4000 * 200);
        let per_turn = idle_turn_price(&long, &short).unwrap();
        assert_eq!(per_turn, 50.0);
        assert!(idle_turn_price(&short, &long).is_err());
        // Both runs: 1000 instructions of set-up (ARP, first-pass misses); the larger one has 64
        // more packets at 30 each. Idle turns: 10 in the smaller run, 4 in the larger, and with
        // flows in the table their expiry costs more than in the idle runs (300, then 310 each):
        // taken from the run itself, not from the idle price.
        let small = run(1000 + 10 * (50 + 300), 10, 10 * 300);
        let large = run(1000 + 64 * 30 + 4 * (50 + 310), 4, 4 * 310);
        let c = instructions_between(&large, &small, per_turn, 64, "v".into(), "test".into()).unwrap();
        assert_eq!(c.instructions_per_packet, 30.0);
        assert_eq!(c.empty_polls, 4);
        assert_eq!(c.instructions_per_empty_poll, 360.0);
        assert!(c.method.contains("idle turns of the smaller run: 10"), "{}", c.method);
        assert!(instructions_between(&large, &small, per_turn, 0, "v".into(), "test".into()).is_err());
    }
}
