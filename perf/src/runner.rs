//! `midogw-perf run`: every scenario against midogw and its references, interleaved in rounds.
//!
//! Topology of one sample: two processes on two CPUs joined by two `net_memif` links.
//!
//! ```text
//!   generator (CPU 0)                          device under test (forwarding on CPU 1)
//!   net_memif0 client, zero-copy  <==memif==>  net_memif0 server ─┐ cross-connect /
//!   net_memif1 client, zero-copy  <==memif==>  net_memif1 server ─┘ testpmd io / macswap
//! ```
//!
//! The device under test is always the memif server and copies each packet in and out, exactly
//! the same way whichever forwarder runs (midogw, testpmd io, testpmd macswap), with the same
//! devargs, EAL memory and cores. The generator is the zero-copy client, so it does less work per
//! packet than the device and the device, not the generator, sets the rate; the share of refused
//! sends in the report shows that it did.
//!
//! A gateway scenario runs the appliance with `[topology] file` (its ports `up0`/`down0` bound to
//! router ports, or `down0` the topology's `[underlay]` in a tunnel scenario) and `--stats-json`,
//! whose pipeline counters become the sample's `device`. In a tunnel scenario every device's
//! port 1 gets the fixed MAC [`crate::topology::GATEWAY_UNDERLAY_MAC`] (memif `mac=` devarg), the
//! outer destination of the generator's tunnelled frames. The peer, Open vSwitch's DPDK datapath
//! (`ovs-dpdk`): `midogw-perf ovs --spec FILE` ([`crate::ovs`]) runs its daemons as children, so
//! CPU accounting and the readiness check look at the device's whole process tree.
//!
//! Each round runs every device once, in an order that rotates from round to round, so slow and
//! fast minutes of this noisy machine fall on all of them alike; ratios are taken within a round.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::forward::{
    EalSection, ForwardConfig, MempoolSection, PortSection, RestSection, StoreSection, TopologySection, WorkersSection,
};
use crate::gen::GenSpec;
use crate::machine::{dpdk_version, utc_now, Commit, Machine};
use crate::report::{
    DeviceCounters, DutResult, FlowTableFootprint, GenReport, RunReport, Sample, ScenarioResult, ScenarioTargets,
    Settings, MIDOGW, SCHEMA,
};
use crate::scenario::{Pipeline, Reference, Scenario};
use crate::traffic::{Direction, Trace};

/// EAL memory of each device under test, MiB (no hugepages).
pub const DUT_MEMORY_MIB: u32 = 512;
/// EAL memory of the generator, MiB.
pub const GEN_MEMORY_MIB: u32 = 512;
/// testpmd's mbuf pool: every ring full plus caches, like midogw's default pool.
pub const TESTPMD_MBUFS: u32 = 16384;

/// How midogw is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MidogwRunner {
    /// The appliance: `midogw run --config FILE`.
    Appliance(PathBuf),
    /// `midogw-perf forward --config FILE`: the same library loop, while the appliance has no `run`.
    Builtin,
}

impl MidogwRunner {
    /// Picks the appliance binary when it has a working `run` command.
    pub fn detect(appliance: &Path) -> MidogwRunner {
        let ok = Command::new(appliance)
            .args(["run", "--help"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            MidogwRunner::Appliance(appliance.to_path_buf())
        } else {
            MidogwRunner::Builtin
        }
    }

    fn describe(&self) -> String {
        match self {
            MidogwRunner::Appliance(p) => format!("`{} run --config FILE` (the appliance)", p.display()),
            MidogwRunner::Builtin => "`midogw-perf forward --config FILE` (midogw::cross_connect + midogw::run_worker in a process of their own; the appliance binary had no `run` command)".into(),
        }
    }
}

/// One device under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    /// The appliance.
    Midogw,
    /// A reference forwarder.
    Reference(Reference),
}

impl Dut {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dut::Midogw => MIDOGW,
            Dut::Reference(r) => r.name(),
        }
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Rounds.
    pub rounds: u32,
    /// Throughput window, seconds.
    pub seconds: f64,
    /// Warm-up, seconds.
    pub warmup_seconds: f64,
    /// Latency phase, seconds.
    pub latency_seconds: f64,
    /// CPU of the generator (and of the device's idle main thread).
    pub gen_core: u32,
    /// CPU of the device's forwarding core.
    pub dut_core: u32,
    /// This binary (for `gen` and `forward`).
    pub self_exe: PathBuf,
    /// How midogw runs.
    pub midogw: MidogwRunner,
    /// dpdk-testpmd.
    pub testpmd: PathBuf,
    /// Devices to run (default: midogw and every reference).
    pub only: Option<Vec<String>>,
    /// Scratch directory for sockets, configs and logs; removed afterwards.
    pub workdir: PathBuf,
    /// Where failed samples' logs are copied.
    pub log_dir: PathBuf,
    /// A sample during which other processes took more than this share of the CPUs (percent)
    /// is run again.
    pub max_interference_pct: f64,
    /// At most this many times.
    pub max_retries: u32,
    /// Before each sample, wait up to this long for other processes to leave the CPUs alone.
    pub quiet_wait: Duration,
}

/// Set by SIGINT/SIGTERM: the run stops between steps, stopping its processes and removing its
/// files on the way out.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Error::Process { what: "run".into(), detail: "interrupted".into() });
    }
    Ok(())
}

/// Waits until other processes use less than [`QUIET_BUSY_PCT`] of the CPUs over half a second,
/// for at most `limit`; returns the busy share last seen.
fn wait_quiet(limit: Duration) -> Result<f64> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        check_interrupted()?;
        let before = CpuSnapshot::take(&[]);
        std::thread::sleep(Duration::from_millis(500));
        let busy = CpuSnapshot::take(&[]).since(before).interference_pct;
        if busy < QUIET_BUSY_PCT || started.elapsed() >= limit {
            if warned {
                tracing::info!(busy = format!("{busy:.0}%"), waited_s = started.elapsed().as_secs(), "going on");
            }
            return Ok(busy);
        }
        if !warned {
            tracing::warn!(busy = format!("{busy:.0}%"), "other processes are using the CPUs; waiting for quiet");
            warned = true;
        }
    }
}

/// The machine counts as quiet below this busy share (percent of all CPUs).
pub const QUIET_BUSY_PCT: f64 = 5.0;

/// CPU accounting of one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    /// Other processes' share of all CPUs, percent.
    pub interference_pct: f64,
    /// Stolen time, percent of all CPUs.
    pub steal_pct: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct CpuSnapshot {
    busy: u64,
    steal: u64,
    total: u64,
    ours: u64,
}

impl CpuSnapshot {
    /// Reads /proc/stat and the CPU time of `pids` (all their threads), in clock ticks.
    fn take(pids: &[u32]) -> CpuSnapshot {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut snap = CpuSnapshot::default();
        if let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) {
            let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            if v.len() >= 8 {
                // user nice system idle iowait irq softirq steal
                snap.busy = v[0] + v[1] + v[2] + v[5] + v[6];
                snap.steal = v[7];
                snap.total = v[..8].iter().sum();
            }
        }
        for pid in pids.iter().flat_map(|p| process_tree(*p)) {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
            if let Some((_, rest)) = text.rsplit_once(')') {
                let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
                snap.ours += f.iter().sum::<u64>();
            }
        }
        snap
    }

    fn since(self, start: CpuSnapshot) -> CpuUse {
        let total = self.total.saturating_sub(start.total).max(1) as f64;
        let others = self.busy.saturating_sub(start.busy).saturating_sub(self.ours.saturating_sub(start.ours));
        CpuUse {
            interference_pct: others as f64 / total * 100.0,
            steal_pct: self.steal.saturating_sub(start.steal) as f64 / total * 100.0,
        }
    }
}

/// Runs everything; returns the report (ratios filled in, instruction counts not).
pub fn run(opts: &RunOptions, command: String, repo: &Path) -> Result<RunReport> {
    std::fs::create_dir_all(&opts.workdir).map_err(|e| Error::io(&opts.workdir, e))?;
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .map_err(|e| Error::Process { what: "run".into(), detail: format!("signal handler: {e}") })?;
    }
    std::thread::spawn(move || loop {
        if flag.load(Ordering::Relaxed) {
            INTERRUPTED.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    let started = utc_now();
    // The tree as the run starts (the binaries were built from it): edits made while it runs are
    // not in what was measured.
    let commit = Commit::detect(repo);
    let mut per_scenario: Vec<Vec<(Dut, String, Vec<Sample>)>> = Vec::new();
    for sc in &opts.scenarios {
        let mut duts = vec![Dut::Midogw];
        duts.extend(sc.pipeline.references().iter().map(|r| Dut::Reference(*r)));
        duts.extend(sc.pipeline.peer().map(Dut::Reference));
        if let Some(only) = &opts.only {
            duts.retain(|d| only.iter().any(|o| o == d.name()));
        }
        per_scenario.push(duts.into_iter().map(|d| (d, String::new(), Vec::new())).collect());
    }
    // Fail before the first sample, not in the middle of a run, when the peer cannot run.
    if per_scenario.iter().flatten().any(|(d, _, _)| *d == Dut::Reference(Reference::OvsDpdk)) {
        crate::ovs::preflight()?;
    }
    let total: usize = per_scenario.iter().map(Vec::len).sum::<usize>() * opts.rounds as usize;
    let mut index = 0;
    for round in 1..=opts.rounds {
        for (sc, duts) in opts.scenarios.iter().zip(per_scenario.iter_mut()) {
            let n = duts.len();
            for k in 0..n {
                // Odd rounds in table order (midogw, testpmd io, ...), even rounds reversed: midogw
                // and testpmd io always run back to back, each first half the time (A B, B A),
                // so a drift in machine speed falls on both alike.
                let slot = if round % 2 == 1 { k } else { n - 1 - k };
                let (dut, cmd, samples) = &mut duts[slot];
                index += 1;
                tracing::info!(round, scenario = %sc.name, dut = dut.name(), "sample {index}/{total}");
                let mut retries = 0;
                let (gen, command, cpu, device) = loop {
                    wait_quiet(opts.quiet_wait)?;
                    let (gen, command, cpu, device) = run_sample(opts, sc, *dut, round, index)?;
                    let disturbed = cpu.interference_pct > opts.max_interference_pct;
                    let unsteady = !steady(&gen.series_mpps);
                    if !(disturbed || unsteady) || retries >= opts.max_retries {
                        break (gen, command, cpu, device);
                    }
                    retries += 1;
                    tracing::warn!(
                        interference = format!("{:.1}%", cpu.interference_pct),
                        series = ?gen.series_mpps,
                        "{}; running the sample again ({retries}/{})",
                        if disturbed { "other processes used the CPUs" } else { "the rate shifted within the window (machine speed change)" },
                        opts.max_retries
                    );
                };
                tracing::info!(
                    mpps = format!("{:.2}", gen.mpps),
                    refused = format!("{:.1}%", gen.refused_share() * 100.0),
                    lost = gen.lost,
                    p50_us = gen.latency.as_ref().map(|l| l.summary.p50_ns as f64 / 1000.0),
                    "{} {}",
                    sc.name,
                    dut.name()
                );
                *cmd = command;
                samples.push(Sample {
                    round,
                    gen,
                    interference_pct: (cpu.interference_pct * 10.0).round() / 10.0,
                    steal_pct: (cpu.steal_pct * 10.0).round() / 10.0,
                    retries,
                    device,
                });
            }
        }
    }
    let scenarios = opts
        .scenarios
        .iter()
        .zip(per_scenario)
        .map(|(sc, duts)| {
            let mean = mean_frame_size(sc).unwrap_or(0.0);
            let mut r = ScenarioResult {
                scenario: sc.name.clone(),
                description: sc.description.clone(),
                pipeline: sc.pipeline,
                frames: sc.traffic.frames.to_string(),
                flows: sc.traffic.flows,
                seed: sc.traffic.seed,
                mean_frame_size: (mean * 10.0).round() / 10.0,
                directions: sc.directions,
                duts: duts.into_iter().map(|(d, cmd, s)| DutResult::new(d.name(), cmd, s)).collect(),
                ratio_to_testpmd_io: None,
                ratio_to_testpmd_macswap: None,
                ratio_to_peer: None,
                target_ratio_io: sc.target_ratio_io,
                target_met: None,
                instructions: None,
                targets: ScenarioTargets {
                    instructions_per_packet: sc.target_instructions_per_packet,
                    flow_setups_mpps_per_core: sc.target_flow_setups_mpps_per_core,
                },
                flow_table: FlowTableFootprint::for_pipeline(sc.pipeline),
            };
            r.compute_ratios();
            r
        })
        .collect();
    Ok(RunReport {
        schema: SCHEMA,
        tool: format!("midogw-perf {}", env!("CARGO_PKG_VERSION")),
        command,
        started,
        machine: Machine::detect(),
        commit,
        dpdk_version: dpdk_version(),
        settings: Some(Settings {
            rounds: opts.rounds,
            seconds: opts.seconds,
            warmup_seconds: opts.warmup_seconds,
            latency_seconds: opts.latency_seconds,
            generator_core: opts.gen_core,
            dut_core: opts.dut_core,
            topology: "Generator and device under test are separate DPDK processes (--no-huge) joined by two net_memif links; the device is the memif server (copy mode) for every forwarder, the generator the zero-copy client.".into(),
            midogw_runner: opts.midogw.describe(),
        }),
        scenarios,
    })
}

/// Mean size of the frames the scenario's sending directions put on the wire (FCS and any tunnel
/// headers included), from up to 256 Ki packets of each sending stream.
fn mean_frame_size(sc: &Scenario) -> Result<f64> {
    let tunnel = sc.tunnel(crate::topology::GATEWAY_UNDERLAY_MAC)?;
    let mut sum = 0.0;
    let mut streams = 0.0;
    for (port, direction, traffic, tunnel) in
        [(0, Direction::Forward, &sc.traffic, None), (1, Direction::Reverse, sc.reverse_traffic(), tunnel)]
    {
        if sc.directions.sends(port) {
            let len = traffic.default_trace_len().min(1 << 18);
            sum += Trace::build_tunnelled(traffic, direction, len, None, tunnel)?.mean_frame_size();
            streams += 1.0;
        }
    }
    Ok(if streams > 0.0 { sum / streams } else { 0.0 })
}

/// Largest ratio between the fastest and the slowest quarter second of a window that still
/// counts as one steady rate. This machine's speed jumps between levels (about 2x apart) at
/// random moments; a window straddling a jump measures neither level.
pub const MAX_SLICE_SPREAD: f64 = 1.25;

/// Whether a window's per-slice rates stayed within [`MAX_SLICE_SPREAD`].
pub fn steady(series: &[f64]) -> bool {
    let min = series.iter().copied().fold(f64::INFINITY, f64::min);
    let max = series.iter().copied().fold(0.0, f64::max);
    series.len() < 2 || (min > 0.0 && max / min <= MAX_SLICE_SPREAD)
}

/// Quotes a command line for a shell (for reports and logs).
pub fn shell_line(program: &Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    std::iter::once(program.display().to_string()).chain(args.iter().map(|a| quote(a))).collect::<Vec<_>>().join(" ")
}

/// Removes the runtime directory DPDK leaves behind for a file prefix.
pub fn remove_runtime_dir(prefix: &str) {
    for base in ["/var/run/dpdk", "/run/dpdk"] {
        let _ = std::fs::remove_dir_all(Path::new(base).join(prefix));
    }
    if let Ok(home) = std::env::var("XDG_RUNTIME_DIR") {
        let _ = std::fs::remove_dir_all(Path::new(&home).join("dpdk").join(prefix));
    }
}

struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
}

impl Proc {
    fn spawn(program: &Path, args: &[String], what: &str, log: &Path, stdin: bool) -> Result<Proc> {
        let file = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
        let err = file.try_clone().map_err(|e| Error::io(log, e))?;
        let child = Command::new(program)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::Process {
                what: what.into(),
                detail: format!("cannot start {}: {e}", program.display()),
            })?;
        Ok(Proc { child, what: what.into(), log: log.into() })
    }

    fn failed(&self, detail: String) -> Error {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        Error::Process {
            what: self.what.clone(),
            detail: format!(
                "{detail}; last lines of {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Asks politely (newline on stdin for testpmd, SIGINT otherwise), then insists.
    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
            if self.wait_timeout(Duration::from_secs(5)).is_some() {
                return;
            }
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        if self.wait_timeout(Duration::from_secs(10)).is_none() {
            tracing::warn!(what = %self.what, "did not stop on SIGINT; killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn memif(i: usize, socket: &Path, server: bool) -> String {
    if server {
        format!("net_memif{i},role=server,socket={},socket-abstract=no,id={i}", socket.display())
    } else {
        format!("net_memif{i},role=client,socket={},socket-abstract=no,id={i},zero-copy=yes", socket.display())
    }
}

/// Where the appliance writes its final counters in a sample's directory.
const STATS_JSON: &str = "midogw-stats.json";

/// The device's (memif server's) devargs for port `i`: in a tunnel scenario port 1, the underlay,
/// has the MAC the generator's tunnelled frames are addressed to. Every device gets the same.
fn dut_memif(i: usize, socket: &Path, sc: &Scenario) -> Result<String> {
    let plain = memif(i, socket, true);
    if i == 1 && sc.is_tunnel()? {
        let m = crate::topology::GATEWAY_UNDERLAY_MAC;
        let mac = m.map(|b| format!("{b:02x}")).join(":");
        return Ok(format!("{plain},mac={mac}"));
    }
    Ok(plain)
}

/// The program and arguments that start `dut` serving the memif socket.
fn dut_command(
    opts: &RunOptions,
    sc: &Scenario,
    dut: Dut,
    socket: &Path,
    prefix: &str,
    dir: &Path,
    mtu: u16,
) -> Result<(PathBuf, Vec<String>, bool)> {
    match dut {
        Dut::Midogw => {
            let config = ForwardConfig {
                eal: EalSection {
                    args: vec![
                        "--no-huge".into(),
                        "-m".into(),
                        DUT_MEMORY_MIB.to_string(),
                        "--log-level=lib.eal:notice".into(),
                    ],
                    main_core: opts.gen_core,
                    file_prefix: prefix.into(),
                },
                mempool: MempoolSection::default(),
                port: (0..2)
                    .map(|i| {
                        Ok(PortSection {
                            name: if i == 0 { "up0".into() } else { "down0".into() },
                            devargs: dut_memif(i, socket, sc)?,
                            mtu,
                            queues: Some(1),
                        })
                    })
                    .collect::<Result<_>>()?,
                workers: WorkersSection { cores: vec![opts.dut_core] },
                topology: match sc.pipeline {
                    Pipeline::CrossConnect => None,
                    Pipeline::Gateway => {
                        let path = sc
                            .topology_path()
                            .ok_or_else(|| Error::Scenario { name: sc.name.clone(), reason: "no topology".into() })?;
                        let path = std::fs::canonicalize(&path).map_err(|e| Error::io(&path, e))?;
                        Some(TopologySection { file: path.display().to_string() })
                    }
                },
                // Never the default port or store of a real appliance on this machine.
                rest: Some(RestSection { listen: "127.0.0.1:0".into() }),
                store: Some(StoreSection { path: dir.join("store.redb").display().to_string() }),
            };
            if sc.pipeline == Pipeline::Gateway && opts.midogw == MidogwRunner::Builtin {
                return Err(Error::Process {
                    what: "midogw".into(),
                    detail: "the gateway pipeline needs the appliance binary with `run`; build it (cargo build --release -p midogw)".into(),
                });
            }
            let path = dir.join("midogw.toml");
            std::fs::write(&path, config.to_toml()).map_err(|e| Error::io(&path, e))?;
            let path = path.display().to_string();
            Ok(match &opts.midogw {
                MidogwRunner::Appliance(bin) => {
                    let stats = dir.join(STATS_JSON).display().to_string();
                    (bin.clone(), vec!["run".into(), "--config".into(), path, "--stats-json".into(), stats], false)
                }
                MidogwRunner::Builtin => {
                    (opts.self_exe.clone(), vec!["forward".into(), "--config".into(), path], false)
                }
            })
        }
        Dut::Reference(Reference::OvsDpdk) => {
            let devargs = [memif(0, socket, true), memif(1, socket, true)];
            let spec = crate::ovs::ServeSpec {
                settings: crate::ovs::OvsSettings {
                    dir: dir.join("ovs"),
                    file_prefix: prefix.into(),
                    main_core: opts.gen_core,
                    pmd_core: opts.dut_core,
                    memory_mib: DUT_MEMORY_MIB,
                },
                job: crate::ovs::job_for(sc, &devargs, mtu)?,
            };
            let path = dir.join("ovs.json");
            let text =
                serde_json::to_string_pretty(&spec).map_err(|source| Error::Json { path: path.clone(), source })?;
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
            Ok((opts.self_exe.clone(), vec!["ovs".into(), "--spec".into(), path.display().to_string()], true))
        }
        Dut::Reference(r @ (Reference::TestpmdIo | Reference::TestpmdMacswap)) => {
            let mode = if r == Reference::TestpmdIo { "io" } else { "macswap" };
            let mut args = vec![
                "--lcores".to_string(),
                format!("0@{},1@{}", opts.gen_core, opts.dut_core),
                "--main-lcore".into(),
                "0".into(),
                "--no-pci".into(),
                "--no-huge".into(),
                "-m".into(),
                DUT_MEMORY_MIB.to_string(),
                "--file-prefix".into(),
                prefix.into(),
                "--log-level=lib.eal:notice".into(),
            ];
            for i in 0..2 {
                args.push("--vdev".into());
                args.push(dut_memif(i, socket, sc)?);
            }
            args.extend(
                [
                    "--",
                    &format!("--forward-mode={mode}"),
                    "--nb-cores=1",
                    "--rxq=1",
                    "--txq=1",
                    "--burst=32",
                    &format!("--total-num-mbufs={TESTPMD_MBUFS}"),
                    &format!("--max-pkt-len={}", midogw::sizing::max_frame(mtu)),
                ]
                .map(String::from),
            );
            Ok((opts.testpmd.clone(), args, true))
        }
    }
}

/// Waits until the device under test serves its memif socket and its forwarding lcore polls (a
/// client that connects while the server is still probing its second port is refused for good).
/// An EAL worker thread blocks until it is launched, so CPU time on it means forwarding began.
fn wait_ready(device: &mut Proc, socket: &Path, dut: Dut) -> Result<()> {
    let started = Instant::now();
    let mut last: Option<u64> = None;
    loop {
        check_interrupted()?;
        if let Some(status) = device.exited() {
            return Err(device.failed(format!("exited before serving memif ({status})")));
        }
        if socket.exists() {
            let busy = worker_cpu_ticks(device.child.id());
            if let (Some(before), Some(now)) = (last, busy) {
                if now > before {
                    return Ok(());
                }
            }
            last = busy;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(device.failed(format!("{} did not serve memif and forward within 30 s", dut.name())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `pid` and its descendants (the `ovs-dpdk` device is a process that runs Open vSwitch's two
/// daemons as children).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", all[i])).into_iter().flatten().flatten();
        for task in tasks {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    all
}

/// CPU ticks of the forwarding threads (EAL workers `rte-worker-N`/`lcore-worker-N`, Open
/// vSwitch's `pmd-cN`) of the process and its descendants.
fn worker_cpu_ticks(pid: u32) -> Option<u64> {
    threads_cpu_ticks(process_tree(pid), |comm| {
        comm.starts_with("rte-worker") || comm.starts_with("lcore-worker") || comm.starts_with("pmd-c")
    })
}

/// User plus system CPU ticks of the threads of `pids` whose name (`comm`) `is_worker` accepts;
/// `None` when there is none.
pub(crate) fn threads_cpu_ticks(pids: impl IntoIterator<Item = u32>, is_worker: impl Fn(&str) -> bool) -> Option<u64> {
    let mut total = None;
    let tasks = pids.into_iter().flat_map(|p| std::fs::read_dir(format!("/proc/{p}/task")).into_iter());
    for task in tasks.flatten().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !is_worker(&comm) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let t: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse::<u64>().ok()).sum();
            total = Some(total.unwrap_or(0) + t);
        }
    }
    total
}

fn run_sample(
    opts: &RunOptions,
    sc: &Scenario,
    dut: Dut,
    round: u32,
    index: usize,
) -> Result<(GenReport, String, CpuUse, Option<DeviceCounters>)> {
    let dir = opts.workdir.join(format!("{index:03}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let socket = dir.join("memif.sock");
    let pid = std::process::id();
    let dut_prefix = format!("mgwperf-{pid}-{index}-dut");
    let gen_prefix = format!("mgwperf-{pid}-{index}-gen");
    let mtu = (sc.max_frame_size() - crate::packet::FCS_LEN - 14).max(1500) as u16;
    let result = (|| {
        let (program, args, stdin) = dut_command(opts, sc, dut, &socket, &dut_prefix, &dir, mtu)?;
        let command = shell_line(&program, &args);
        tracing::debug!(%command, "device under test");
        let mut device = Proc::spawn(&program, &args, dut.name(), &dir.join("dut.log"), stdin)?;
        wait_ready(&mut device, &socket, dut)?;
        let spec = GenSpec {
            file_prefix: gen_prefix.clone(),
            core: opts.gen_core,
            memory_mib: GEN_MEMORY_MIB,
            eal_args: vec!["--single-file-segments".into(), "--log-level=lib.eal:notice".into()],
            devargs: [memif(0, &socket, false), memif(1, &socket, false)],
            scenario: sc.clone(),
            warmup_seconds: opts.warmup_seconds,
            seconds: opts.seconds,
            latency_seconds: opts.latency_seconds,
            link_timeout_seconds: 20.0,
            // testpmd gets the same frames: it forwards whatever MAC they carry.
            router_macs: sc.router_macs()?,
            tunnel: sc.tunnel(crate::topology::GATEWAY_UNDERLAY_MAC)?,
            rx_queues: if dut == Dut::Reference(Reference::OvsDpdk) { crate::ovs::DEVICE_TX_QUEUES } else { 1 },
        };
        let spec_path = dir.join("gen.json");
        let out_path = dir.join("result.json");
        let text =
            serde_json::to_string_pretty(&spec).map_err(|source| Error::Json { path: spec_path.clone(), source })?;
        std::fs::write(&spec_path, text).map_err(|e| Error::io(&spec_path, e))?;
        let gen_args: Vec<String> = vec![
            "gen".into(),
            "--spec".into(),
            spec_path.display().to_string(),
            "--out".into(),
            out_path.display().to_string(),
            "--hold".into(),
        ];
        // The generator holds its memif links open after writing its result until told to go:
        // the device under test is stopped first, so it never polls a link that is being torn
        // down (DPDK 22.11's memif server can crash when the peer disappears under a poll).
        let mut gen = Proc::spawn(&opts.self_exe, &gen_args, "generator", &dir.join("gen.log"), true)?;
        let pids = [gen.child.id(), device.child.id()];
        let before = CpuSnapshot::take(&pids);
        let deadline =
            Instant::now() + Duration::from_secs_f64(opts.warmup_seconds + opts.seconds + opts.latency_seconds + 60.0);
        while !out_path.exists() && gen.exited().is_none() && Instant::now() < deadline {
            check_interrupted()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let cpu = CpuSnapshot::take(&pids).since(before);
        if let Some(status) = device.exited() {
            return Err(device.failed(format!("exited during the measurement ({status})")));
        }
        device.stop();
        gen.stop();
        if !out_path.exists() {
            let why = match gen.exited() {
                Some(s) => format!("failed ({s})"),
                None => "did not finish in time".into(),
            };
            return Err(gen.failed(why));
        }
        let text = std::fs::read_to_string(&out_path).map_err(|e| Error::io(&out_path, e))?;
        let report: GenReport =
            serde_json::from_str(&text).map_err(|source| Error::Json { path: out_path.clone(), source })?;
        // Written by the appliance as it stops; the device was stopped above.
        let counters =
            std::fs::read_to_string(dir.join(STATS_JSON)).ok().and_then(|t| DeviceCounters::from_stats_json(&t));
        Ok((report, command, cpu, counters))
    })();
    remove_runtime_dir(&dut_prefix);
    remove_runtime_dir(&gen_prefix);
    if result.is_err() {
        let keep = opts.log_dir.join(format!("failed-{index:03}-{}-{}-r{round}", sc.name, dut.name()));
        let _ = std::fs::create_dir_all(&keep);
        for f in ["dut.log", "gen.log", "midogw.toml", "gen.json", "ovs.json"] {
            let _ = std::fs::copy(dir.join(f), keep.join(f));
        }
        tracing::error!(logs = %keep.display(), "sample failed; logs kept");
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(midogw: MidogwRunner, workdir: &Path) -> RunOptions {
        RunOptions {
            scenarios: vec![],
            rounds: 1,
            seconds: 1.0,
            warmup_seconds: 0.1,
            latency_seconds: 0.1,
            gen_core: 0,
            dut_core: 1,
            self_exe: PathBuf::from("/x/midogw-perf"),
            midogw,
            testpmd: PathBuf::from("dpdk-testpmd"),
            only: None,
            workdir: workdir.into(),
            log_dir: workdir.into(),
            max_interference_pct: 5.0,
            max_retries: 0,
            quiet_wait: Duration::ZERO,
        }
    }

    #[test]
    fn gateway_scenarios_run_the_appliance_on_their_topology() {
        let dir = std::env::temp_dir().join(format!("perf-runner-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = crate::Scenarios::builtin();
        let opts = options(MidogwRunner::Appliance("/x/midogw".into()), &dir);
        let socket = dir.join("memif.sock");
        let gateway = table.get("gateway-flow-setup").unwrap();
        let (program, args, stdin) = dut_command(&opts, gateway, Dut::Midogw, &socket, "p", &dir, 1500).unwrap();
        assert_eq!(program, PathBuf::from("/x/midogw"));
        assert!(!stdin);
        assert_eq!(args[..2], ["run".to_string(), "--config".to_string()]);
        assert_eq!(args[3..], ["--stats-json".to_string(), dir.join(STATS_JSON).display().to_string()]);
        let config = ForwardConfig::load(&dir.join("midogw.toml")).unwrap();
        let file = PathBuf::from(config.topology.unwrap().file);
        assert!(file.is_absolute() && file.ends_with("perf/topologies/gateway-edge-tenant.toml"), "{file:?}");
        assert_eq!(config.port.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), crate::topology::DPDK_PORT_NAMES);
        assert_eq!(config.rest.unwrap().listen, "127.0.0.1:0");
        assert!(config.store.unwrap().path.starts_with(dir.to_str().unwrap()));

        let cross = table.get("cross-connect-64").unwrap();
        dut_command(&opts, cross, Dut::Midogw, &socket, "p", &dir, 1500).unwrap();
        assert_eq!(ForwardConfig::load(&dir.join("midogw.toml")).unwrap().topology, None);
        // testpmd runs the same way for both pipelines.
        let (_, io, _) =
            dut_command(&opts, gateway, Dut::Reference(Reference::TestpmdIo), &socket, "p", &dir, 1500).unwrap();
        assert!(io.contains(&"--forward-mode=io".to_string()));

        // The peer: this binary's `ovs` command with a spec naming the same memif server devargs.
        let (program, args, stdin) =
            dut_command(&opts, gateway, Dut::Reference(Reference::OvsDpdk), &socket, "p", &dir, 1500).unwrap();
        assert_eq!(
            (program, &args[..2], stdin),
            (PathBuf::from("/x/midogw-perf"), &["ovs".into(), "--spec".into()][..], true)
        );
        let spec: crate::ovs::ServeSpec = serde_json::from_str(&std::fs::read_to_string(&args[2]).unwrap()).unwrap();
        assert_eq!((spec.settings.main_core, spec.settings.pmd_core, spec.settings.memory_mib), (0, 1, DUT_MEMORY_MIB));
        assert_eq!(spec.settings.dir, dir.join("ovs"));
        let ports: Vec<String> = spec.job.bridges[0]
            .ports
            .iter()
            .map(|p| match &p.kind {
                crate::ovs::job::PortKind::Dpdk { devargs, .. } => devargs.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ports, [memif(0, &socket, true), memif(1, &socket, true)]);
        assert!(spec.job.bridges[0].flows[0].contains("dec_ttl,dec_ttl"), "flow setup crosses two routers");
        let err = dut_command(&opts, cross, Dut::Reference(Reference::OvsDpdk), &socket, "p", &dir, 1500).unwrap_err();
        assert!(err.to_string().contains("no job for cross-connect"), "{err}");

        let builtin = options(MidogwRunner::Builtin, &dir);
        let err = dut_command(&builtin, gateway, Dut::Midogw, &socket, "p", &dir, 1500).unwrap_err().to_string();
        assert!(err.contains("appliance binary"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tunnel_scenarios_give_every_device_the_underlay_mac_on_port_1() {
        let dir = std::env::temp_dir().join(format!("perf-runner-tunnel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = crate::Scenarios::builtin();
        let opts = options(MidogwRunner::Appliance("/x/midogw".into()), &dir);
        let socket = dir.join("memif.sock");
        let encap = table.get("gateway-vxlan-encap").unwrap();
        dut_command(&opts, encap, Dut::Midogw, &socket, "p", &dir, 1500).unwrap();
        let config = ForwardConfig::load(&dir.join("midogw.toml")).unwrap();
        assert!(config.topology.unwrap().file.ends_with("perf/topologies/gateway-vxlan.toml"));
        assert!(!config.port[0].devargs.contains("mac="), "{}", config.port[0].devargs);
        assert!(config.port[1].devargs.ends_with(",mac=02:6d:67:ff:00:01"), "{}", config.port[1].devargs);
        let (_, io, _) =
            dut_command(&opts, encap, Dut::Reference(Reference::TestpmdIo), &socket, "p", &dir, 1500).unwrap();
        assert!(io.contains(&config.port[1].devargs), "testpmd gets the same devargs: {io:?}");
        // Other scenarios keep their devargs as they were.
        dut_command(&opts, table.get("gateway-hit-64").unwrap(), Dut::Midogw, &socket, "p", &dir, 1500).unwrap();
        let plain = ForwardConfig::load(&dir.join("midogw.toml")).unwrap();
        assert_eq!(plain.port[1].devargs, memif(1, &socket, true));
        // The mean frame size counts what is sent: VXLAN frames one way for decap, plain for encap.
        assert_eq!(mean_frame_size(table.get("gateway-vxlan-decap").unwrap()).unwrap(), 114.0);
        assert_eq!(mean_frame_size(encap).unwrap(), 64.0);
        assert_eq!(mean_frame_size(table.get("gateway-gre-encap").unwrap()).unwrap(), 64.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn steadiness_of_a_window() {
        assert!(steady(&[]));
        assert!(steady(&[10.0, 10.5, 9.8, 10.2]));
        assert!(!steady(&[20.0, 20.5, 10.1, 9.8]), "a jump between speed levels");
        assert!(!steady(&[10.0, 0.0]));
    }

    #[test]
    fn shell_lines_quote_what_needs_it() {
        let line = shell_line(
            Path::new("/usr/bin/dpdk-testpmd"),
            &["--lcores".into(), "0@0,1@1".into(), "a b".into(), "it's".into()],
        );
        assert_eq!(line, "/usr/bin/dpdk-testpmd --lcores 0@0,1@1 'a b' 'it'\\''s'");
    }
}
