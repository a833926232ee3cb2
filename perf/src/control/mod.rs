//! `midogw-perf control`: control-plane benchmarks.
//!
//! 1. REST reads and writes per second with p50/p99/p99.9 latency: `GET /routers/{id}` and
//!    `GET /routers` with 100 and 1000 routers stored, and `POST /routers/{id}/routes`, from N
//!    concurrent keep-alive connections sending `X-Auth-Token` as clients do ([`rest`], [`http`]).
//!    The server is the appliance binary (`midogw run` on a config without ports serves REST
//!    only: what operators run, with its own threads), or with `--in-process` `control::app` on
//!    a current-thread tokio runtime in this process (the handler stack alone).
//! 2. REST write to the new snapshot on the cores: `midogw run` with `[topology] source =
//!    "store"` on two `net_ring` ports; routes POSTed one at a time; per write the client's POST
//!    latency and the time until the feed's `topology published` log line (written after every
//!    worker acknowledged the generation) is read, plus the line's own `us` figure and the final
//!    JSON report's `topology_feed` ([`appliance`]).
//! 3. Snapshot build time and memory for a large topology built straight into an
//!    `EmbeddedStore` ([`populate`], [`snapshot`]).
//!
//! Client and server share the machine's CPUs: on a 2-CPU box the req/s figures are a floor for
//! a control plane with a core of its own.

pub mod appliance;
pub mod http;
pub mod populate;
pub mod report;
pub mod rest;
pub mod snapshot;
pub mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::control::{EmbeddedStore, MockAuth, Topology};

use appliance::{free_addr, Appliance};
use http::{Connection, API, ROUTE, ROUTER, ROUTERS};
use populate::{populate, route_json, Built};
use report::{ControlReport, PropagationResult, ReadResult, ServerInfo, WriteResult, CONTROL_SCHEMA};
use stats::LatencySummary;

/// Why a control-plane benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Preparing the store, the config or the binary failed.
    #[error("setup: {0}")]
    Setup(String),
    /// An HTTP exchange failed.
    #[error("http: {0}")]
    Http(String),
    /// The appliance process misbehaved.
    #[error("midogw: {0}")]
    Process(String),
    /// The report could not be written or read.
    #[error("report: {0}")]
    Report(String),
}

/// Where REST is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerChoice {
    /// `midogw run` (this binary).
    Binary(PathBuf),
    /// `control::app` on a tokio runtime in this process.
    InProcess,
}

/// Which measurements to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// REST reads.
    pub reads: bool,
    /// REST writes.
    pub writes: bool,
    /// REST write to the cores (needs the binary).
    pub propagation: bool,
    /// Snapshot build time and memory.
    pub snapshot: bool,
}

/// Everything `midogw-perf control` can be told.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Scratch directory for stores and configs (removed by the caller).
    pub workdir: PathBuf,
    /// The REST server.
    pub server: ServerChoice,
    /// What to run.
    pub parts: Parts,
    /// Router counts for the read benchmark.
    pub read_routers: Vec<u32>,
    /// Concurrent connections for reads.
    pub connections: Vec<usize>,
    /// Concurrent connections for writes.
    pub write_connections: Vec<usize>,
    /// Static routes per stored router.
    pub routes_per_router: u32,
    /// Warm-up per load point.
    pub warmup: Duration,
    /// Measured window per load point.
    pub window: Duration,
    /// Routes POSTed one at a time for the propagation figure.
    pub propagation_writes: u32,
    /// Routers stored for the propagation figure.
    pub propagation_routers: u32,
    /// Routers of the snapshot measurement.
    pub snapshot_routers: u32,
    /// Compiles the snapshot median is of.
    pub compile_runs: u32,
    /// The command line, for the report.
    pub command: String,
    /// The source tree (for the commit in the report).
    pub tree: PathBuf,
}

/// The propagation target: REST write to the cores.
pub const TARGET_MS: f64 = 10.0;
/// How long a write may take to be published before it counts as missed.
const PUBLISH_WAIT: Duration = Duration::from_secs(5);
/// How long tokens of the benchmark's sessions live.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

fn setup(what: &str, e: impl std::fmt::Display) -> ControlError {
    ControlError::Setup(format!("{what}: {e}"))
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn client_runtime() -> Result<tokio::runtime::Runtime, ControlError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("perf-client")
        .enable_all()
        .build()
        .map_err(|e| setup("client runtime", e))
}

/// A store under `dir` with `routers` bulk-built routers, closed again.
fn prepared_store(dir: &Path, routers: u32, routes_per_router: u32) -> Result<Built, ControlError> {
    std::fs::create_dir_all(dir).map_err(|e| setup(&dir.display().to_string(), e))?;
    let path = dir.join("store.redb");
    let topology = Topology::new(EmbeddedStore::open(&path).map_err(|e| setup(&path.display().to_string(), e))?);
    populate(&topology, routers, routes_per_router)
}

/// A REST server on a prepared store.
enum Server {
    Binary(Appliance),
    InProcess { shutdown: tokio::sync::oneshot::Sender<()>, thread: std::thread::JoinHandle<()> },
}

impl Server {
    fn start(choice: &ServerChoice, dir: &Path, addr: SocketAddr) -> Result<Server, ControlError> {
        match choice {
            ServerChoice::Binary(binary) => {
                let config = dir.join("midogw.toml");
                let text = format!(
                    "[rest]\nlisten = \"{addr}\"\n\n[store]\npath = \"store.redb\"\n\n[auth]\nprovider = \"mock\"\n"
                );
                std::fs::write(&config, text).map_err(|e| setup("writing the config", e))?;
                Ok(Server::Binary(Appliance::start(binary, &config, &dir.join("stats.json"), addr, None)?))
            }
            ServerChoice::InProcess => {
                let path = dir.join("store.redb");
                let store = EmbeddedStore::open(&path).map_err(|e| setup(&path.display().to_string(), e))?;
                let app = ::control::app_with_store(store, Arc::new(MockAuth::new(TOKEN_TTL)));
                let listener = std::net::TcpListener::bind(addr).map_err(|e| setup(&format!("binding {addr}"), e))?;
                listener.set_nonblocking(true).map_err(|e| setup("listener", e))?;
                let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
                // As the appliance does: a current-thread runtime for the API, handlers' store
                // work on its blocking pool.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| setup("server runtime", e))?;
                let thread = std::thread::Builder::new()
                    .name("perf-rest".into())
                    .spawn(move || {
                        rt.block_on(async move {
                            let listener = match tokio::net::TcpListener::from_std(listener) {
                                Ok(l) => l,
                                Err(e) => return tracing::error!("REST listener: {e}"),
                            };
                            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                                let _ = stopped.await;
                            });
                            if let Err(e) = serve.await {
                                tracing::error!("in-process REST server: {e}");
                            }
                        })
                    })
                    .map_err(|e| setup("server thread", e))?;
                Ok(Server::InProcess { shutdown, thread })
            }
        }
    }

    fn stop(self) -> Result<(), ControlError> {
        match self {
            Server::Binary(app) => app.stop().map(drop),
            Server::InProcess { shutdown, thread } => {
                let _ = shutdown.send(());
                thread.join().map_err(|_| ControlError::Process("the in-process server panicked".into()))
            }
        }
    }
}

/// Reads (and, on the first size, writes) against a server on a store with `routers` routers.
fn rest_size(
    opts: &ControlOptions,
    rt: &tokio::runtime::Runtime,
    routers: u32,
    with_writes: bool,
    report: &mut ControlReport,
) -> Result<(), ControlError> {
    let dir = opts.workdir.join(format!("rest-{routers}"));
    let built = prepared_store(&dir, routers, opts.routes_per_router)?;
    let addr = free_addr()?;
    let server = Server::start(&opts.server, &dir, addr)?;
    let result = rt.block_on(async {
        let token = http::login(addr, "admin", "benchmark").await?;
        if opts.parts.reads {
            let paths: Vec<String> = built.routers.iter().map(|id| format!("{API}/routers/{id}")).collect();
            for &c in &opts.connections {
                tracing::info!(routers, connections = c, "GET /routers/{{id}}");
                let make = rest::get_each(paths.clone(), &token, ROUTER);
                let load = rest::drive(addr, c, opts.warmup, opts.window, 200, make).await?;
                report.reads.push(ReadResult { resource: "router".into(), routers_stored: routers.into(), load });
                tracing::info!(routers, connections = c, "GET /routers");
                let make = rest::get(format!("{API}/routers"), &token, ROUTERS);
                let load = rest::drive(addr, c, opts.warmup, opts.window, 200, make).await?;
                report.reads.push(ReadResult { resource: "routers".into(), routers_stored: routers.into(), load });
            }
        }
        if with_writes {
            let first_free = routers * opts.routes_per_router + 1;
            let targets: Arc<Vec<(String, uuid::Uuid)>> = Arc::new(
                built
                    .routers
                    .iter()
                    .zip(&built.ports)
                    .map(|(r, p)| (format!("{API}/routers/{r}/routes"), *p))
                    .collect(),
            );
            let mut offset = u64::from(first_free);
            for &c in &opts.write_connections {
                tracing::info!(routers, connections = c, "POST /routers/{{id}}/routes");
                let (t, base) = (Arc::clone(&targets), offset);
                let make = rest::post(&token, ROUTE, move |i| {
                    let (path, port) = &t[(i % t.len() as u64) as usize];
                    (path.clone(), route_json(*port, (base + i) as u32))
                });
                let load = rest::drive(addr, c, opts.warmup, opts.window, 201, make).await?;
                offset += load.requests + load.errors + 1_000_000;
                report.writes.push(WriteResult { routers_stored: routers.into(), load });
            }
        }
        Ok::<(), ControlError>(())
    });
    let stopped = server.stop();
    result?;
    stopped
}

/// Waits until the appliance has logged nothing for `quiet`, up to `limit`.
fn settle(app: &mut Appliance, quiet: Duration, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = Instant::now();
    while Instant::now() < deadline && last.elapsed() < quiet {
        if !app.drain().is_empty() {
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn propagation(
    opts: &ControlOptions,
    binary: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<PropagationResult, ControlError> {
    let dir = opts.workdir.join("propagation");
    let routers = opts.propagation_routers.max(1);
    let built = prepared_store(&dir, routers, opts.routes_per_router)?;
    let addr = free_addr()?;
    let config = dir.join("midogw.toml");
    let text = format!(
        "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwperf-cp-{pid}\"\n\n\
         [[port]]\nname = \"ra\"\ndevargs = \"net_ring0\"\n\n[[port]]\nname = \"rb\"\ndevargs = \"net_ring1\"\n\n\
         [workers]\ncores = [1]\n\n[topology]\nsource = \"store\"\n\n[rest]\nlisten = \"{addr}\"\n\n\
         [store]\npath = \"store.redb\"\n\n[auth]\nprovider = \"mock\"\n\n[host]\nname = \"perf-gw\"\n",
        pid = std::process::id()
    );
    std::fs::write(&config, text).map_err(|e| setup("writing the config", e))?;
    let mut app = Appliance::start(binary, &config, &dir.join("stats.json"), addr, Some("worker starting"))?;
    settle(&mut app, Duration::from_millis(500), Duration::from_secs(10));
    let (mut post_ns, mut e2e_ns, mut feed_us, mut missed) = (Vec::new(), Vec::new(), Vec::new(), 0u64);
    let outcome = rt.block_on(async {
        let token = http::login(addr, "admin", "benchmark").await?;
        let mut conn = Connection::open(addr).await?;
        let headers = [("x-auth-token", token.as_str()), ("content-type", ROUTE), ("accept", ROUTE)];
        for w in 0..opts.propagation_writes {
            let i = w as usize % built.routers.len();
            let path = format!("{API}/routers/{}/routes", built.routers[i]);
            let body = route_json(built.ports[i], routers * opts.routes_per_router + 1 + w).to_string();
            app.drain();
            let sent = Instant::now();
            let resp = conn.send("POST", &path, &headers, Some(body.into())).await?;
            let answered = Instant::now();
            if resp.status != 201 {
                return Err(ControlError::Http(format!(
                    "POST {path}: status {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                )));
            }
            post_ns.push(answered.duration_since(sent).as_nanos() as u64);
            match app.wait_for("topology published", PUBLISH_WAIT) {
                Some(line) => {
                    e2e_ns.push(line.at.saturating_duration_since(sent).as_nanos() as u64);
                    if let Some(us) = appliance::field(&line.text, "us") {
                        feed_us.push(us);
                    }
                }
                None => missed += 1,
            }
        }
        Ok::<(), ControlError>(())
    });
    let stats = app.stop();
    outcome?;
    let stats = stats?.ok_or_else(|| ControlError::Process("no --stats-json report after the run".into()))?;
    let feed = &stats["topology_feed"];
    let post_to_cores = LatencySummary::from_nanos(&mut e2e_ns);
    Ok(PropagationResult {
        routers_stored: routers.into(),
        writes: opts.propagation_writes.into(),
        missed,
        post: LatencySummary::from_nanos(&mut post_ns),
        target_met: post_to_cores.as_ref().map(|l| l.p99_us < TARGET_MS * 1e3 && missed == 0),
        post_to_cores,
        feed_change_to_cores: LatencySummary::from_micros(&feed_us),
        final_last_change_to_cores_us: feed["last_change_to_cores_us"].as_u64(),
        final_last_compile_us: feed["last_compile_us"].as_u64(),
        feed_compiles: feed["compiles"].as_u64(),
        target_ms: TARGET_MS,
    })
}

/// Runs the selected measurements.
pub fn run(opts: &ControlOptions) -> Result<ControlReport, ControlError> {
    let serves = opts.parts.reads || opts.parts.writes || opts.parts.propagation;
    let (kind, binary, note) = match &opts.server {
        _ if !serves => ("none", None, "No REST measurement in this run."),
        ServerChoice::Binary(b) => (
            "binary",
            Some(b.display().to_string()),
            "`midogw run` on a config without ports (REST only): the process operators run, with its own \
             REST thread and blocking pool.",
        ),
        ServerChoice::InProcess => (
            "in-process",
            None,
            "`control::app` on a current-thread tokio runtime in the benchmark process: the handler stack \
             without the appliance's process and thread setup.",
        ),
    };
    let mut report = ControlReport {
        schema: CONTROL_SCHEMA,
        tool: format!("midogw-perf {}", env!("CARGO_PKG_VERSION")),
        command: opts.command.clone(),
        started: crate::machine::utc_now(),
        machine: crate::machine::Machine::detect(),
        commit: crate::machine::Commit::detect(&opts.tree),
        server: ServerInfo {
            kind: kind.into(),
            binary,
            auth: "mock provider (any password; X-Auth-Token checked on every request like the local provider)".into(),
            note: note.into(),
        },
        load_before: load_average(),
        reads: Vec::new(),
        writes: Vec::new(),
        propagation: None,
        snapshot: None,
    };
    std::fs::create_dir_all(&opts.workdir).map_err(|e| setup(&opts.workdir.display().to_string(), e))?;
    if opts.parts.reads || opts.parts.writes {
        let rt = client_runtime()?;
        let mut sizes = opts.read_routers.clone();
        if !opts.parts.reads {
            sizes.truncate(1);
        }
        for (n, &routers) in sizes.iter().enumerate() {
            rest_size(opts, &rt, routers, opts.parts.writes && n == 0, &mut report)?;
        }
    }
    if opts.parts.propagation {
        match &opts.server {
            ServerChoice::Binary(binary) => {
                let rt = client_runtime()?;
                report.propagation = Some(propagation(opts, binary, &rt)?);
            }
            ServerChoice::InProcess => {
                tracing::warn!("the REST-to-cores measurement needs the appliance binary; skipped with --in-process")
            }
        }
    }
    if opts.parts.snapshot {
        let dir = opts.workdir.join("snapshot");
        std::fs::create_dir_all(&dir).map_err(|e| setup(&dir.display().to_string(), e))?;
        report.snapshot =
            Some(snapshot::measure(&dir, opts.snapshot_routers, opts.routes_per_router, opts.compile_runs)?);
    }
    Ok(report)
}
