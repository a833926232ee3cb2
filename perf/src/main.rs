//! `midogw-perf`: benchmark runs, regression checks and instruction counts for midogw.
//! See perf/README.md for the commands and how to read their output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use perf::callgrind;
use perf::compare::Metric;
use perf::machine::{dpdk_version, utc_now, utc_today, Commit, Machine};
use perf::report::{RunReport, ScenarioResult, SCHEMA};
use perf::runner::{self, MidogwRunner, RunOptions};
use perf::{Scenario, Scenarios};

#[derive(Parser)]
#[command(
    name = "midogw-perf",
    version,
    about = "midogw benchmarks: throughput and latency beside dpdk-testpmd, regressions, instructions per packet"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios (names or groups; default: the "default" group) against midogw and its
    /// references, interleaved in rounds; write results.json, results.md and results.png.
    Run(RunArgs),
    /// Compare two results.json files; exit 1 when a gated figure regressed beyond the threshold.
    Compare(CompareArgs),
    /// Instructions per packet of the forwarding loop under valgrind's callgrind.
    Callgrind(CallgrindArgs),
    /// Control-plane benchmarks: REST reads/writes per second and latency, REST write to the cores,
    /// snapshot build time and memory; writes control.json and control.md.
    Control(ControlArgs),
    /// List the scenarios and groups.
    List(TableArgs),
    /// Re-render results.md and results.png from a results.json.
    Report {
        /// The results.json.
        results: PathBuf,
    },
    /// (internal) The generator process of one sample.
    #[command(hide = true)]
    Gen {
        /// GenSpec JSON.
        #[arg(long)]
        spec: PathBuf,
        /// Where to write the GenReport JSON.
        #[arg(long)]
        out: PathBuf,
        /// After writing the result, keep the ports open until stdin has a line or closes.
        #[arg(long)]
        hold: bool,
    },
    /// (internal) The cross-connect loop in a process of its own, from an appliance-style config.
    #[command(hide = true)]
    Forward {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// Stop after this many seconds (default: on SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// (internal) Open vSwitch (DPDK datapath) as a device under test: private daemons
    /// configured from the spec, stopped on a line on stdin, SIGINT or SIGTERM.
    #[command(hide = true)]
    Ovs {
        /// perf::ovs::ServeSpec JSON.
        #[arg(long)]
        spec: PathBuf,
    },
    /// (internal) A fixed trace through the cross-connect loop on ring ports, for callgrind.
    #[command(hide = true)]
    CgTrace {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        packets: usize,
        /// Times the trace is sent (gateway hit-path runs send it twice); with no packets, the idle time in 300 ms units.
        #[arg(long, default_value_t = 1)]
        passes: usize,
        #[arg(long)]
        file_prefix: String,
        #[command(flatten)]
        table: TableArgs,
    },
}

#[derive(Args, Clone)]
struct TableArgs {
    /// A scenario table to use instead of the built-in perf/scenarios/scenarios.toml.
    // Its own id: `run` and `callgrind` also take positional scenario names (clap's debug
    // assertions refuse two arguments with one id).
    #[arg(long = "scenarios", id = "scenario_table", value_name = "FILE")]
    scenarios: Option<PathBuf>,
}

impl TableArgs {
    fn load(&self) -> anyhow::Result<Scenarios> {
        Ok(match &self.scenarios {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                Scenarios::parse(&text, &path.display().to_string())?
            }
            None => Scenarios::builtin(),
        })
    }
}

#[derive(Args)]
struct RunArgs {
    /// Scenario or group names.
    scenarios: Vec<String>,
    /// Rounds; each runs every device once (midogw and testpmd io back to back, alternating
    /// which goes first).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Seconds at maximum rate per sample (the throughput window).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Warm-up seconds before the window.
    #[arg(long, default_value_t = 0.3)]
    warmup: f64,
    /// Seconds at the scenario's fixed rate for latency percentiles (0: skip).
    #[arg(long, default_value_t = 0.5)]
    latency_seconds: f64,
    /// Output directory (default: perf/out/DATE-SCENARIOS).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The appliance binary (default: `midogw` beside this binary). Used when it has `run`.
    #[arg(long)]
    midogw: Option<PathBuf>,
    /// Use the built-in forwarder (`midogw-perf forward`) even if the appliance has `run`.
    #[arg(long)]
    builtin_forwarder: bool,
    /// dpdk-testpmd.
    #[arg(long, default_value = "dpdk-testpmd")]
    testpmd: PathBuf,
    /// CPU of the generator.
    #[arg(long, default_value_t = 0)]
    gen_core: u32,
    /// CPU of the device under test's forwarding core.
    #[arg(long, default_value_t = 1)]
    dut_core: u32,
    /// Run only these devices (midogw, testpmd-io, testpmd-macswap, ovs-dpdk), comma separated.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Also count instructions per packet under callgrind for each scenario.
    #[arg(long)]
    callgrind: bool,
    /// Packets per callgrind run.
    #[arg(long, default_value_t = callgrind::DEFAULT_PACKETS)]
    callgrind_packets: u64,
    /// Run a sample again when other processes took more than this percent of the CPUs.
    #[arg(long, default_value_t = 5.0)]
    max_interference: f64,
    /// How many times a disturbed sample is run again.
    #[arg(long, default_value_t = 2)]
    max_retries: u32,
    /// Before each sample, wait up to this many seconds for other processes to go quiet.
    #[arg(long, default_value_t = 60.0)]
    quiet_wait: f64,
    #[command(flatten)]
    table: TableArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// The reference run.
    baseline: PathBuf,
    /// The run to judge.
    current: PathBuf,
    /// Percent a gated figure may get worse before it counts as a regression.
    #[arg(long, default_value_t = 5.0)]
    threshold: f64,
    /// Gated figures (default: ratio-io and ipp); may be repeated.
    #[arg(long = "metric", value_enum)]
    metrics: Vec<Metric>,
    /// Also write the comparison as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct CallgrindArgs {
    /// Scenario or group names (default group when none).
    scenarios: Vec<String>,
    /// Packets in the measured run.
    #[arg(long, default_value_t = callgrind::DEFAULT_PACKETS)]
    packets: u64,
    /// Output directory for instructions.json / instructions.md (default: print only).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    table: TableArgs,
}

#[derive(Args)]
struct ControlArgs {
    /// Output directory (default: perf/out/DATE-control).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The appliance binary (default: `midogw` beside this binary).
    #[arg(long)]
    midogw: Option<PathBuf>,
    /// Serve REST from `control::app` in this process instead of the binary (skips the
    /// REST-to-cores measurement, which needs the binary).
    #[arg(long)]
    in_process: bool,
    /// Measurements to run (reads, writes, propagation, snapshot), comma separated; default all.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Routers stored for the read benchmark, one server per count.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    routers: Vec<u32>,
    /// Concurrent keep-alive connections for reads.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    connections: Vec<usize>,
    /// Concurrent keep-alive connections for writes.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    write_connections: Vec<usize>,
    /// Static routes per stored router.
    #[arg(long, default_value_t = 10)]
    routes_per_router: u32,
    /// Seconds measured per load point.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Warm-up seconds per load point.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Routes POSTed one at a time for the REST-to-cores figure.
    #[arg(long, default_value_t = 200)]
    propagation_writes: u32,
    /// Routers stored for the REST-to-cores figure.
    #[arg(long, default_value_t = 1000)]
    propagation_routers: u32,
    /// Routers of the snapshot build measurement.
    #[arg(long, default_value_t = 10_000)]
    snapshot_routers: u32,
    /// Compiles the snapshot build median is of.
    #[arg(long, default_value_t = 5)]
    compile_runs: u32,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("midogw-perf: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    runner::shell_line(Path::new(&args[0]), &args[1..])
}

fn dispatch(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run(args) => run(args),
        Cmd::Compare(args) => {
            let baseline = RunReport::load(&args.baseline)?;
            let current = RunReport::load(&args.current)?;
            let gated = if args.metrics.is_empty() { Metric::DEFAULT.to_vec() } else { args.metrics };
            let c = perf::compare(&baseline, &current, args.threshold, &gated)?;
            print!("{}", c.to_markdown());
            if let Some(path) = args.json {
                std::fs::write(&path, serde_json::to_string_pretty(&c)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if c.regressed() {
                println!(
                    "\nREGRESSION: at least one gated figure is worse than {}% below its baseline.",
                    args.threshold
                );
                Ok(ExitCode::from(1))
            } else {
                println!("\nNo regression beyond {}%.", args.threshold);
                Ok(ExitCode::SUCCESS)
            }
        }
        Cmd::Callgrind(args) => {
            let table = args.table.load()?;
            let selected = table.select(&args.scenarios)?;
            // The tree as the run starts, as for `run`.
            let (started, commit) = (utc_now(), Commit::detect(Path::new(".")));
            let results = count_instructions(&selected, args.packets, args.table.scenarios.as_deref())?;
            let report = RunReport {
                schema: SCHEMA,
                tool: format!("midogw-perf {}", env!("CARGO_PKG_VERSION")),
                command: command_line(),
                started,
                machine: Machine::detect(),
                commit,
                dpdk_version: dpdk_version(),
                settings: None,
                scenarios: selected.iter().zip(results).map(|(sc, ipp)| empty_result(sc, Some(ipp))).collect(),
            };
            for sc in &report.scenarios {
                let i = sc.instructions.as_ref().expect("set above");
                println!(
                    "{}: {:.1} instructions/packet ({} packets)",
                    sc.scenario, i.instructions_per_packet, i.packets
                );
            }
            if let Some(out) = args.out {
                std::fs::create_dir_all(&out)?;
                report.save(&out.join("instructions.json"))?;
                std::fs::write(out.join("instructions.md"), report.to_markdown())?;
                std::fs::write(out.join("COMMAND"), report.command.clone() + "\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Control(args) => control(args),
        Cmd::List(table) => {
            let table = table.load()?;
            for s in table.all() {
                println!("{:<28} [{}] {}", s.name, s.groups.join(","), s.description);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { results } => {
            let report = RunReport::load(&results)?;
            let dir = results.parent().unwrap_or(Path::new("."));
            write_outputs(&report, dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gen { spec, out, hold } => {
            let text = std::fs::read_to_string(&spec).with_context(|| format!("reading {}", spec.display()))?;
            let spec: perf::gen::GenSpec = serde_json::from_str(&text)?;
            perf::gen::run(&spec, |report| {
                // Written whole, then renamed: the runner acts as soon as the file exists.
                let partial = out.with_extension("partial");
                let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)? + "\n";
                std::fs::write(&partial, text)?;
                std::fs::rename(&partial, &out)?;
                if hold {
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                }
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ovs { spec } => {
            let text = std::fs::read_to_string(&spec).with_context(|| format!("reading {}", spec.display()))?;
            perf::ovs::serve(&serde_json::from_str(&text)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Forward { config, duration } => {
            let config = perf::forward::ForwardConfig::load(&config)?;
            perf::forward::run(&config, duration.map(Duration::from_secs_f64))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CgTrace { scenario, packets, passes, file_prefix, table } => {
            let table = table.load()?;
            let sc = table.get(&scenario)?;
            let forwarded = callgrind::trace_run(sc, packets, passes, &file_prefix)?;
            let sent = packets * passes;
            println!("{{\"packets\":{sent},\"forwarded\":{forwarded}}}");
            if forwarded != sent as u64 {
                bail!("{forwarded} of {sent} packets forwarded");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn empty_result(sc: &Scenario, instructions: Option<perf::report::InstructionCount>) -> ScenarioResult {
    ScenarioResult {
        scenario: sc.name.clone(),
        description: sc.description.clone(),
        pipeline: sc.pipeline,
        frames: sc.traffic.frames.to_string(),
        flows: sc.traffic.flows,
        seed: sc.traffic.seed,
        mean_frame_size: 0.0,
        directions: sc.directions,
        duts: vec![],
        ratio_to_testpmd_io: None,
        ratio_to_testpmd_macswap: None,
        ratio_to_peer: None,
        target_ratio_io: sc.target_ratio_io,
        target_met: None,
        instructions,
        targets: perf::report::ScenarioTargets {
            instructions_per_packet: sc.target_instructions_per_packet,
            flow_setups_mpps_per_core: sc.target_flow_setups_mpps_per_core,
        },
        flow_table: perf::report::FlowTableFootprint::for_pipeline(sc.pipeline),
    }
}

fn count_instructions(
    selected: &[Scenario],
    packets: u64,
    table: Option<&Path>,
) -> anyhow::Result<Vec<perf::report::InstructionCount>> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("midogw-perf-cg-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = selected
        .iter()
        .map(|sc| {
            tracing::info!(scenario = %sc.name, packets, "counting instructions under callgrind");
            callgrind::measure(&exe, sc, table, packets, &dir).with_context(|| format!("callgrind on {}", sc.name))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let table = args.table.load()?;
    let scenarios = table.select(&args.scenarios)?;
    if args.rounds == 0 || args.seconds <= 0.0 {
        bail!("--rounds and --seconds must be positive");
    }
    let self_exe = std::env::current_exe()?;
    let appliance = args.midogw.clone().unwrap_or_else(|| self_exe.with_file_name("midogw"));
    let midogw = if args.builtin_forwarder { MidogwRunner::Builtin } else { MidogwRunner::detect(&appliance) };
    if midogw == MidogwRunner::Builtin && !args.builtin_forwarder {
        tracing::warn!(appliance = %appliance.display(), "the appliance has no working `run` command; using the built-in forwarder (same library loop)");
    }
    let names = if args.scenarios.is_empty() { "default".to_string() } else { args.scenarios.join("+") };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("perf/out").join(format!("{}-{names}", utc_today())));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let workdir = std::env::temp_dir().join(format!("midogw-perf-{}", std::process::id()));
    let opts = RunOptions {
        scenarios: scenarios.clone(),
        rounds: args.rounds,
        seconds: args.seconds,
        warmup_seconds: args.warmup,
        latency_seconds: args.latency_seconds,
        gen_core: args.gen_core,
        dut_core: args.dut_core,
        self_exe,
        midogw,
        testpmd: args.testpmd.clone(),
        only: args.only.clone(),
        workdir: workdir.clone(),
        log_dir: out.clone(),
        max_interference_pct: args.max_interference,
        max_retries: args.max_retries,
        quiet_wait: Duration::from_secs_f64(args.quiet_wait),
    };
    let command = command_line();
    let result = runner::run(&opts, command.clone(), Path::new("."));
    let _ = std::fs::remove_dir_all(&workdir);
    let mut report = result?;
    if args.callgrind {
        let counts = count_instructions(&scenarios, args.callgrind_packets, args.table.scenarios.as_deref())?;
        for (sc, count) in report.scenarios.iter_mut().zip(counts) {
            sc.instructions = Some(count);
        }
    }
    std::fs::write(out.join("COMMAND"), command + "\n")?;
    report.save(&out.join("results.json"))?;
    write_outputs(&report, &out)?;
    print!("{}", report.to_markdown());
    println!("\nWritten to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(report: &RunReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("results.md"), report.to_markdown())?;
    if let Err(e) = perf::chart::draw(report, &dir.join("results.png")) {
        tracing::warn!(%e, "no chart");
    }
    Ok(())
}

fn control(args: ControlArgs) -> anyhow::Result<ExitCode> {
    use perf::control::{ControlOptions, Parts, ServerChoice};
    let parts = match &args.only {
        None => Parts { reads: true, writes: true, propagation: true, snapshot: true },
        Some(names) => {
            for n in names {
                if !["reads", "writes", "propagation", "snapshot"].contains(&n.as_str()) {
                    bail!("--only {n:?}: use reads, writes, propagation or snapshot");
                }
            }
            let has = |n: &str| names.iter().any(|x| x == n);
            Parts {
                reads: has("reads"),
                writes: has("writes"),
                propagation: has("propagation"),
                snapshot: has("snapshot"),
            }
        }
    };
    if args.seconds <= 0.0 || args.warmup < 0.0 || args.routers.is_empty() || args.routers.contains(&0) {
        bail!("--seconds must be positive, --warmup not negative, --routers non-empty and positive");
    }
    if args.connections.contains(&0) || args.write_connections.contains(&0) {
        bail!("connection counts must be positive");
    }
    // The snapshot measurement alone runs in this process and needs no binary.
    let needs_binary = !args.in_process && (parts.reads || parts.writes || parts.propagation);
    let server = if needs_binary {
        ServerChoice::Binary(perf::control::appliance::find_binary(args.midogw.as_deref())?)
    } else {
        ServerChoice::InProcess
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("perf/out").join(format!("{}-control", utc_today())));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let workdir = std::env::temp_dir().join(format!("midogw-perf-control-{}", std::process::id()));
    let command = command_line();
    let opts = ControlOptions {
        workdir: workdir.clone(),
        server,
        parts,
        read_routers: args.routers,
        connections: args.connections,
        write_connections: args.write_connections,
        routes_per_router: args.routes_per_router,
        warmup: Duration::from_secs_f64(args.warmup),
        window: Duration::from_secs_f64(args.seconds),
        propagation_writes: args.propagation_writes,
        propagation_routers: args.propagation_routers,
        snapshot_routers: args.snapshot_routers.max(1),
        compile_runs: args.compile_runs.max(1),
        command: command.clone(),
        tree: PathBuf::from("."),
    };
    let result = perf::control::run(&opts);
    let _ = std::fs::remove_dir_all(&workdir);
    let report = result?;
    report.save(&out.join("control.json"))?;
    let md = report.to_markdown();
    std::fs::write(out.join("control.md"), &md)?;
    std::fs::write(out.join("COMMAND"), command + "\n")?;
    print!("{md}");
    println!("Written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
