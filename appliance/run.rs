//! `midogw run`: wires the config to the data plane. EAL, the jumbo pool and the ports come up in
//! that order, workers run on their lcores while the main lcore reports counters and waits for a
//! signal, then everything is torn down in reverse order (each by its own Drop).

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use midogw::{
    cross_connect, local_ports_spread_by_driver, local_ports_spread_unlike, pipeline_plans, run_pipeline, run_worker,
    Eal, EalConfig, LinkCounters, LinkId, Mempool, PipelineConfig, PipelineCounters, Port, PortConfig, PortStats,
    SnapshotExchange,
};
use serde::Serialize;

use crate::config::{self, Config, TopologySource};

/// How `run` behaves beyond what the config file says.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Report counters this often (zero: only at exit).
    pub stats_interval: Duration,
    /// Write the final report as JSON here.
    pub stats_json: Option<PathBuf>,
}

/// How often the main lcore looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

pub fn run(cfg: &Config, options: &Options) -> Result<()> {
    // A report that cannot be written is found out now, not after the whole run.
    if let Some(path) = &options.stats_json {
        check_writable(path)?;
    }
    // Registered before EAL starts, so a signal during start-up still ends in a clean stop.
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&signalled)).context("cannot install signal handler")?;
    }
    // The control plane first: a box with no [[port]] yet is provisioned over REST.
    let rest = crate::rest::RestServer::start(cfg, &signalled)?;
    if cfg.ports.is_empty() {
        // Nothing to forward, so no EAL: no hugepages or lcores are needed to provision a new box.
        tracing::warn!("no [[port]] configured: serving the control plane only, DPDK not started");
        // The Host exists from the first start, so ports can be bound to it before it has any.
        let topology = rest.topology();
        let host_id = crate::host::host_id(cfg)?;
        let zookeeper = rest.zookeeper();
        crate::feed::register_host(&topology, zookeeper.as_deref(), host_id, &crate::host::host_name_or(cfg), &[])?;
        let started = Instant::now();
        let mut metrics = MetricsRefresh::new(cfg, &rest);
        while !signalled.load(Ordering::Relaxed) && options.duration.is_none_or(|d| started.elapsed() < d) {
            std::thread::sleep(POLL);
            if metrics.due() {
                metrics.update(Report::collect(&[], &[], &[], None, started.elapsed()));
            }
        }
        crate::feed::unregister_host(&topology, zookeeper.as_deref(), host_id);
        // The report has no data-path counters here, but --stats-json always writes one.
        Report::collect(&[], &[], &[], None, started.elapsed()).write(options)?;
        rest.stop()?;
        tracing::info!("stopped cleanly");
        return Ok(());
    }

    let eal_config = EalConfig {
        main_core: cfg.eal.main_core,
        worker_cores: cfg.workers.clone(),
        file_prefix: cfg.eal.file_prefix.clone(),
        pci_allow: cfg
            .ports
            .iter()
            .filter_map(|p| match &p.device {
                config::Device::Pci { address } => Some(address.clone()),
                config::Device::Vdev { .. } => None,
            })
            .collect(),
        extra_args: cfg.eal.args.clone(),
    };
    let eal = Eal::init(&eal_config)?;
    let pool = Mempool::new(&eal, "midogw_mbufs", cfg.mempool_mbufs)?;
    let mut ports = Vec::with_capacity(cfg.ports.len());
    for port in &cfg.ports {
        let device = match &port.device {
            config::Device::Pci { address } => midogw::Device::Pci { address: address.clone() },
            config::Device::Vdev { .. } => midogw::Device::Vdev { devargs: vdev_devargs(port, cfg.workers.len()) },
        };
        let port_config = PortConfig {
            name: port.name.clone(),
            mtu: port.mtu,
            rx_queues: port.queues,
            tx_queues: cfg.workers.len() as u16,
        };
        ports.push(Port::open(&eal, &pool, &device, &port_config)?);
    }
    if ports.is_empty() {
        tracing::warn!("no [[port]] configured: nothing to forward");
    }
    for port in &ports {
        let link = port.link();
        tracing::info!(port = port.name(), mac = %format_mac(port.mac()), up = link.up, speed_mbps = link.speed_mbps, "link");
    }

    let mut source = Source::prepare(cfg, &ports, &rest)?;
    let pipeline = pipeline_config(cfg);
    let (plans, links, pipelines) = match &source.exchange {
        None => {
            let (plans, links) = cross_connect(&ports, cfg.workers.len())?;
            (plans.into_iter().map(Plan::CrossConnect).collect::<Vec<_>>(), links, Vec::new())
        }
        Some(exchange) => {
            warn_if_spread_unlike(&ports, exchange, cfg.workers.len());
            let plans = pipeline_plans(&ports, cfg.workers.len())?;
            let counters: Vec<_> = plans.iter().map(|p| p.counters()).collect();
            (plans.into_iter().map(Plan::Pipeline).collect(), Vec::new(), counters)
        }
    };
    let stop_workers = AtomicBool::new(false);
    let started = Instant::now();
    let ran = eal.scope(|scope| -> Result<()> {
        // However this closure ends (a panic too), the workers are told to stop: the scope joins
        // them before it returns or unwinds, so a worker left polling would hang the process.
        let _stop_workers_at_exit = StopOnDrop(&stop_workers);
        for (plan, &core) in plans.into_iter().zip(&cfg.workers) {
            let stop = &stop_workers;
            let launched = match plan {
                Plan::CrossConnect(plan) => {
                    tracing::info!(lcore = core, rx_queues = plan.rx_queue_count(), "cross-connect worker starting");
                    scope.launch(core, move || run_worker(plan, stop))
                }
                Plan::Pipeline(plan) => {
                    tracing::info!(lcore = core, rx_queues = plan.rx_queue_count(), "pipeline worker starting");
                    let (exchange, pool, pipeline) = (source.exchange.as_deref(), &pool, &pipeline);
                    scope.launch(core, move || match exchange {
                        Some(exchange) => run_pipeline(plan, exchange, pool, pipeline, stop),
                        None => 1,
                    })
                }
            };
            // Workers already running see the stop (the guard above) before the scope joins them.
            launched?;
        }
        // None: an interval too long to come due in this process's life (`--stats-interval 1e19`).
        let mut next_report = started.checked_add(options.stats_interval);
        let mut metrics = MetricsRefresh::new(cfg, &rest);
        loop {
            std::thread::sleep(POLL);
            if signalled.load(Ordering::Relaxed) {
                tracing::info!("signal received, stopping");
                break;
            }
            if let Some(lcore) = scope.finished_worker() {
                // Its queues are unserved: stop everything rather than blackhole them. The scope
                // then reports how the worker ended, and the process exits non-zero.
                tracing::error!(lcore, "a worker stopped on its own; stopping the appliance");
                break;
            }
            if source.feed_died() {
                // The cores would keep their last topology while REST writes succeed: stop
                // rather than let the two drift apart unseen (a supervisor restarts the process).
                tracing::error!("the topology feed thread stopped on its own; stopping the appliance");
                anyhow::bail!("the topology feed thread stopped on its own (it panicked): REST changes no longer reached the cores");
            }
            if options.duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
            let print_due = !options.stats_interval.is_zero() && next_report.is_some_and(|due| Instant::now() >= due);
            // One collection (every port's driver counters) serves the printout and the metrics.
            if print_due || metrics.due() {
                let report = Report::collect(&ports, &links, &pipelines, source.feed(), started.elapsed());
                if print_due {
                    next_report = next_report.and_then(|due| due.checked_add(options.stats_interval));
                    print!("{}", report.table());
                }
                metrics.update(report);
            }
        }
        Ok(())
    });

    source.stop();
    // The counters are reported however the workers ended.
    let report = Report::collect(&ports, &links, &pipelines, source.feed(), started.elapsed());
    print!("{}", report.table());
    report.write(options)?;
    ran??;
    drop(ports);
    drop(pool);
    drop(eal);
    rest.stop()?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// When the metrics listener is due a fresh report: every [`crate::metrics::REFRESH`], and only
/// with `[metrics]` on (collecting reads every port's driver counters: not done for nobody).
struct MetricsRefresh {
    metrics: Option<Arc<crate::metrics::Metrics>>,
    due: Instant,
}

impl MetricsRefresh {
    fn new(cfg: &Config, rest: &crate::rest::RestServer) -> MetricsRefresh {
        MetricsRefresh { metrics: cfg.metrics.map(|_| rest.metrics()), due: Instant::now() }
    }

    /// Whether the listener is on and its report is a refresh old.
    fn due(&self) -> bool {
        self.metrics.is_some() && Instant::now() >= self.due
    }

    /// Hands `report` to the listener (when it is on) and starts the next refresh period.
    fn update(&mut self, report: Report) {
        if let Some(metrics) = &self.metrics {
            metrics.update(report);
            self.due = Instant::now() + crate::metrics::REFRESH;
        }
    }
}

/// `--stats-json PATH` can be written at the end: not a directory, and a file can be made beside it.
fn check_writable(path: &std::path::Path) -> Result<()> {
    let problem = if path.is_dir() {
        Some(std::io::Error::other("it is a directory"))
    } else {
        let tmp = temporary_beside(path);
        std::fs::write(&tmp, b"").and_then(|()| std::fs::remove_file(&tmp)).err()
    };
    match problem {
        Some(e) => Err(e).with_context(|| format!("cannot write --stats-json {}", path.display())),
        None => Ok(()),
    }
}

/// `PATH.tmp`, in the same directory (so that renaming it over PATH is atomic).
fn temporary_beside(path: &std::path::Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Sets the flag when dropped, also while unwinding.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The devargs handed to DPDK. Socket-backed drivers create one queue pair unless told otherwise,
/// while every worker needs a TX queue of its own: ask for as many as the port needs, unless the
/// operator's devargs already say.
fn vdev_devargs(port: &config::Port, workers: usize) -> String {
    let queues = usize::from(port.queues).max(workers);
    let key = match &port.device {
        config::Device::Vdev { driver, .. } if driver == "net_af_packet" => "qpairs",
        config::Device::Vdev { driver, .. } if driver == "net_af_xdp" => "queue_count",
        _ => return port.devargs.clone(),
    };
    if queues <= 1 || port.device.arg(key).is_some() {
        return port.devargs.clone();
    }
    format!("{},{key}={queues}", port.devargs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vdev_port(devargs: &str, queues: u16) -> config::Port {
        let name = devargs.split(',').next().unwrap().to_string();
        let driver = name.trim_end_matches(|c: char| c.is_ascii_digit()).to_string();
        let args = devargs
            .split(',')
            .skip(1)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        config::Port {
            name: "up0".into(),
            devargs: devargs.into(),
            device: config::Device::Vdev { name, driver, args },
            mtu: 1500,
            queues,
        }
    }

    /// The counter table keeps its columns whatever the port names' lengths.
    #[test]
    fn the_counter_table_keeps_its_columns_for_long_port_names() {
        let port = |name: &str| PortReport {
            name: name.into(),
            id: 0,
            mac: String::new(),
            link_up: true,
            stats: midogw::PortStats { rx_packets: 7, ..Default::default() },
            xstats: Default::default(),
        };
        let report = Report {
            seconds: 1.0,
            ports: vec![port("up0"), port("uplink-north-1")],
            links: Vec::new(),
            pipelines: Vec::new(),
            topology_feed: None,
        };
        let table = report.table();
        let lines: Vec<&str> = table.lines().skip(1).take(3).collect();
        // Where the right-aligned link column ends: its heading, then each port's "up".
        let heading = lines[0].find(" link ").map(|i| i + 5);
        let ends: Vec<Option<usize>> = lines[1..].iter().map(|l| l.find(" up ").map(|i| i + 3)).collect();
        assert!(heading.is_some() && ends.iter().all(|&e| e == heading), "the link column lines up:\n{table}");
    }

    /// `[neighbours]` and `[icmp]` reach the workers' settings; a cached flow never outlives the
    /// neighbour entry whose MAC it carries.
    #[test]
    fn the_config_sections_reach_the_pipeline_workers() {
        let facts = config::SystemFacts {
            online_cpus: vec![0, 1],
            hugepage_free_bytes: 0,
            pci_devices: Default::default(),
            net_interfaces: Default::default(),
            dpdk_drivers: None,
        };
        let text = "[workers]\ncores = [1]\n[neighbours]\nper_worker = 8192\nlifetime_s = 30\nhold_packets = 128\n\
                    hold_timeout_ms = 2500\nresolution_interval_ms = 300\nrequests_per_s = 50\nrequest_burst = 5\n[icmp]\nerrors_per_s = 10\nerror_burst = 3\n";
        let cfg = config::parse("t.toml", text, &facts).expect("valid");
        let p = pipeline_config(&cfg);
        assert_eq!((p.core.neighbour_capacity, p.core.neighbour_lifetime), (8192, 30_000_000_000));
        assert_eq!(p.flow_cache.hard_timeout, 30_000_000_000, "flows last no longer than the neighbour entry");
        assert_eq!((p.hold_capacity, p.hold_timeout_ns), (128, 2_500_000_000));
        assert_eq!(p.core.resolution_interval, 300_000_000);
        assert_eq!((p.core.resolution_requests_per_sec, p.core.resolution_request_burst), (50, 5));
        assert_eq!((p.icmp_errors_per_sec, p.icmp_error_burst), (10, 3));
        let defaults = pipeline_config(&config::parse("t.toml", "[workers]\ncores = [1]\n", &facts).expect("valid"));
        assert_eq!(
            defaults,
            PipelineConfig {
                flow_cache: defaults.flow_cache.clone(),
                seed: defaults.seed,
                ..PipelineConfig::default()
            }
        );
        // A secret seed per run, not the fixed default the tests use.
        let again = pipeline_config(&config::parse("t.toml", "[workers]\ncores = [1]\n", &facts).expect("valid"));
        assert_ne!(defaults.seed, PipelineConfig::default().seed);
        assert_ne!(defaults.seed, again.seed);
        assert_eq!(defaults.flow_cache.hard_timeout, PipelineConfig::default().flow_cache.hard_timeout);
    }

    #[test]
    fn socket_drivers_get_a_queue_pair_per_worker_unless_the_operator_says() {
        assert_eq!(vdev_devargs(&vdev_port("net_af_packet0,iface=v0", 1), 1), "net_af_packet0,iface=v0");
        assert_eq!(vdev_devargs(&vdev_port("net_af_packet0,iface=v0", 1), 2), "net_af_packet0,iface=v0,qpairs=2");
        assert_eq!(vdev_devargs(&vdev_port("net_af_packet0,iface=v0", 3), 2), "net_af_packet0,iface=v0,qpairs=3");
        assert_eq!(
            vdev_devargs(&vdev_port("net_af_packet0,iface=v0,qpairs=4", 1), 2),
            "net_af_packet0,iface=v0,qpairs=4"
        );
        assert_eq!(vdev_devargs(&vdev_port("net_af_xdp0,iface=v0", 2), 2), "net_af_xdp0,iface=v0,queue_count=2");
        assert_eq!(vdev_devargs(&vdev_port("net_ring0", 2), 2), "net_ring0");
    }
}

/// The workers' pipeline settings: the defaults with the config's `[flows]`.
fn pipeline_config(cfg: &Config) -> PipelineConfig {
    let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // Every run draws its own hash seed (each worker mixes in its index, flowtable/src/flow/hash.rs):
    // which bucket a flow lands in cannot be worked out off-line, so crafted
    // keys cannot be aimed at a chosen victim's bucket. The default is fixed, for reproducible
    // tests and benchmarks only.
    let seed = std::collections::hash_map::RandomState::new().hash_one("midogw hash seed");
    let mut pipeline = PipelineConfig { seed, ..PipelineConfig::default() };
    pipeline.flow_cache.capacity = cfg.flows.per_worker;
    pipeline.flow_cache.idle_timeout = ns(cfg.flows.idle_timeout);
    pipeline.icmp_errors_per_sec = cfg.icmp.errors_per_s;
    pipeline.icmp_error_burst = cfg.icmp.error_burst;
    pipeline.core.neighbour_capacity = cfg.neighbours.per_worker;
    pipeline.core.neighbour_lifetime = ns(cfg.neighbours.lifetime);
    // A cached flow carries the next hop's MAC: it lasts no longer than the entry it came from.
    pipeline.flow_cache.hard_timeout = pipeline.core.neighbour_lifetime.min(pipeline.core.mac_aging);
    pipeline.hold_capacity = cfg.neighbours.hold_packets;
    pipeline.hold_timeout_ns = ns(cfg.neighbours.hold_timeout);
    pipeline.core.resolution_interval = ns(cfg.neighbours.resolution_interval);
    pipeline.core.resolution_requests_per_sec = cfg.neighbours.requests_per_s;
    pipeline.core.resolution_request_burst = cfg.neighbours.request_burst;
    if cfg.topology != TopologySource::CrossConnect {
        let bytes =
            midogw::flowtable::flow::FlowCache::<midogw::flowtable::sim::Actions>::footprint(&pipeline.flow_cache);
        tracing::info!(flows = cfg.flows.per_worker, mib = bytes >> 20, "flow cache per worker");
    }
    pipeline
}

/// The config's `[underlay]` with its port resolved to the DPDK port id.
fn underlay(cfg: &Config, ports: &[(String, u16)]) -> Option<midogw::flowtable::topology::Underlay> {
    let u = cfg.underlay.as_ref()?;
    // check-config made sure the name is a [[port]].
    let &(_, dpdk_port) = ports.iter().find(|(name, _)| *name == u.port)?;
    Some(midogw::flowtable::topology::Underlay {
        gateway: u.gateway,
        vxlan_port: u.vxlan_port,
        ..midogw::flowtable::topology::Underlay::new(dpdk_port, u.address, u.prefix_len)
    })
}

/// This gateway's Host registration, undone at the end: the store, the ZooKeeper session holding
/// its alive key (if any) and its id.
type Registration =
    (Arc<control::Topology<control::DynStore>>, Option<Arc<control::store::ZookeeperStore>>, uuid::Uuid);

/// With several workers, connection state lives on the worker RSS gives a connection, and
/// tunnelled replies are handed to that worker by one rule: every local port must spread
/// connections the same way (pmd's `local_ports_spread_unlike`). Said once, at start: the underlay port
/// is fixed by the config or the topology file.
fn warn_if_spread_unlike(ports: &[Port<'_>], exchange: &SnapshotExchange, workers: usize) {
    if workers < 2 {
        return;
    }
    let underlay = exchange.current().snapshot.underlay().map(|u| u.dpdk_port);
    let by_driver = local_ports_spread_by_driver(ports, underlay, workers);
    if !by_driver.is_empty() {
        tracing::warn!(
            ports = ?by_driver,
            workers,
            "the ports' drivers pick their RX queues by their own hash, not by symmetric RSS \
             (net_af_packet uses the kernel's): with stateful rules, replies arriving through a \
             tunnel may be handed to a worker that does not know their connection, and dropped; \
             give such ports one RX queue, or run one worker"
        );
    }
    if let Some(ports) = local_ports_spread_unlike(ports, underlay, workers) {
        let ports: Vec<String> = ports.iter().map(|(name, queues)| format!("{name} ({queues} RX queues)")).collect();
        tracing::warn!(
            ?ports,
            workers,
            "the ports spread connections over the workers in different ways: with stateful rules, \
             replies arriving through a tunnel are handed to the worker the first port's spreading \
             names, and those of the other ports' connections are dropped; give every port but the \
             underlay's a multiple of {workers} RX queues (the default is one per worker)"
        );
    }
}

/// Where the pipeline's snapshots come from: nothing (cross-connect), a file (one snapshot), or the
/// store (a feed thread publishing a new snapshot on every change).
struct Source {
    exchange: Option<Arc<SnapshotExchange>>,
    feed: Option<crate::feed::Feed>,
    host: Option<Registration>,
    feed_report: Option<crate::feed::FeedReport>,
}

impl Source {
    fn prepare(cfg: &Config, ports: &[Port<'_>], rest: &crate::rest::RestServer) -> Result<Source> {
        let workers = cfg.workers.len();
        let names: Vec<(String, u16)> = ports.iter().map(|p| (p.name().to_string(), p.id())).collect();
        // Every mode registers the Host (its DPDK ports as interfaces): bindings made now take effect
        // once the appliance runs with `[topology] source = "store"`.
        let topology = rest.topology();
        let host_id = crate::host::host_id(cfg)?;
        // Ports are opened in config order.
        let interfaces: Vec<_> = ports
            .iter()
            .zip(&cfg.ports)
            .map(|(p, c)| crate::feed::LocalInterface { name: p.name().to_string(), mac: p.mac(), mtu: c.mtu })
            .collect();
        let zookeeper = rest.zookeeper();
        crate::feed::register_host(
            &topology,
            zookeeper.as_deref(),
            host_id,
            &crate::host::host_name_or(cfg),
            &interfaces,
        )?;
        let mut source = Source {
            exchange: None,
            feed: None,
            host: Some((Arc::clone(&topology), zookeeper, host_id)),
            feed_report: None,
        };
        match &cfg.topology {
            TopologySource::CrossConnect => {}
            TopologySource::File(path) => {
                let snap =
                    crate::topology::load(path, &names, 1).map_err(anyhow::Error::from).context("invalid topology")?;
                tracing::info!(file = %path.display(), routers = snap.routers().len(), ports = snap.ports().len(), "topology loaded");
                source.exchange = Some(Arc::new(SnapshotExchange::new(snap, workers)));
            }
            TopologySource::Store => {
                let ctx = control::compile::CompileContext {
                    generation: 1,
                    local_host: Some(host_id),
                    underlay: underlay(cfg, &names),
                    interfaces: names,
                };
                // REST writes must compile exactly as the feed compiles them.
                topology.set_compile_context(ctx.clone());
                // Decoded objects kept between compiles: a change re-reads only what it touched.
                let mut cache = control::compile::ModelCache::new();
                let (snap, version) = crate::feed::first_snapshot(&topology, &mut cache, &ctx);
                let exchange = Arc::new(SnapshotExchange::new(snap, workers));
                source.feed = Some(crate::feed::Feed::start(topology, Arc::clone(&exchange), ctx, version, cache)?);
                source.exchange = Some(exchange);
            }
        }
        Ok(source)
    }

    /// Whether the feed thread ended without being stopped.
    fn feed_died(&self) -> bool {
        self.feed.as_ref().is_some_and(crate::feed::Feed::died)
    }

    fn feed(&self) -> Option<crate::feed::FeedReport> {
        self.feed.as_ref().map(|f| f.counters.report()).or_else(|| self.feed_report.clone())
    }

    /// Stops the feed (workers have stopped) and marks the host not alive.
    fn stop(&mut self) {
        if let Some(feed) = self.feed.take() {
            let counters = Arc::clone(&feed.counters);
            feed.stop();
            self.feed_report = Some(counters.report());
        }
        if let Some((topology, zookeeper, id)) = self.host.take() {
            crate::feed::unregister_host(&topology, zookeeper.as_deref(), id);
        }
    }
}

/// Also on an error path: the Host is not left alive.
impl Drop for Source {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker's plan: cross-connect without a topology, the gateway pipeline with one.
enum Plan<'p> {
    CrossConnect(midogw::WorkerPlan<'p>),
    Pipeline(midogw::PipelinePlan<'p>),
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// What crossed the appliance: per-port driver counters and per-worker link counters.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: f64,
    pub ports: Vec<PortReport>,
    pub links: Vec<LinkReport>,
    /// One entry per pipeline worker (empty when cross-connecting).
    pub pipelines: Vec<PipelineReport>,
    /// The topology feed (`[topology] source = "store"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology_feed: Option<crate::feed::FeedReport>,
}

/// A pipeline worker's counters; `drops` lists the non-zero drop reasons by name.
#[derive(Debug, Default, Serialize)]
pub struct PipelineReport {
    pub worker: usize,
    pub rx_packets: u64,
    /// Received frames whose IPv4 header checksum the NIC verified (ports with the offload).
    pub rx_ipv4_checksum_offloaded: u64,
    pub tx_packets: u64,
    pub tx_full_drops: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_evictions: u64,
    pub cache_invalidated: u64,
    pub cache_expired: u64,
    pub cache_flows: u64,
    pub snapshot_generation: u64,
    pub snapshots_taken: u64,
    pub simulated: u64,
    pub generated: u64,
    /// ICMP errors over the worker's rate, not sent.
    pub icmp_errors_limited: u64,
    /// Point-to-point ARP requests / solicitations to stale neighbours in use.
    pub neighbour_polls: u64,
    pub alloc_failures: u64,
    pub unknown_egress: u64,
    /// Neighbour and MAC entries handed to the other workers, applied from them, and lost.
    pub learning_sent: u64,
    pub learning_applied: u64,
    pub learning_lost: u64,
    /// Decapsulated frames handed to the worker owning their connection, received so, and lost.
    pub handed_off: u64,
    pub handoffs_received: u64,
    pub handoff_full: u64,
    pub drops: std::collections::BTreeMap<&'static str, u64>,
    /// Why the `malformed` drops did not parse (non-zero parse error counters by name).
    pub parse_errors: std::collections::BTreeMap<&'static str, u64>,
}

impl PipelineReport {
    fn collect(worker: usize, c: &PipelineCounters) -> PipelineReport {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        PipelineReport {
            worker,
            rx_packets: load(&c.rx_packets),
            rx_ipv4_checksum_offloaded: load(&c.rx_ipv4_checksum_offloaded),
            tx_packets: load(&c.tx_packets),
            tx_full_drops: load(&c.tx_full_drops),
            cache_hits: load(&c.cache_hits),
            cache_misses: load(&c.cache_misses),
            cache_evictions: load(&c.cache_evictions),
            cache_invalidated: load(&c.cache_invalidated),
            cache_expired: load(&c.cache_expired),
            cache_flows: load(&c.cache_flows),
            snapshot_generation: load(&c.snapshot_generation),
            snapshots_taken: load(&c.snapshots_taken),
            simulated: load(&c.simulated),
            generated: load(&c.generated),
            icmp_errors_limited: load(&c.icmp_errors_limited),
            neighbour_polls: load(&c.neighbour_polls),
            alloc_failures: load(&c.alloc_failures),
            unknown_egress: load(&c.unknown_egress),
            learning_sent: load(&c.learning_sent),
            learning_applied: load(&c.learning_applied),
            learning_lost: load(&c.learning_lost),
            handed_off: load(&c.handed_off),
            handoffs_received: load(&c.handoffs_received),
            handoff_full: load(&c.handoff_full),
            drops: c.nonzero_drops().into_iter().collect(),
            parse_errors: c.nonzero_parse_errors().into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PortReport {
    pub name: String,
    pub id: u16,
    pub mac: String,
    pub link_up: bool,
    #[serde(flatten)]
    pub stats: PortStats,
    pub xstats: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct LinkReport {
    pub worker: usize,
    pub from: String,
    pub rx_queue: u16,
    pub to: String,
    pub tx_queue: u16,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_full_drops: u64,
}

impl Report {
    fn collect(
        ports: &[Port<'_>],
        links: &[(LinkId, Arc<LinkCounters>)],
        pipelines: &[Arc<PipelineCounters>],
        topology_feed: Option<crate::feed::FeedReport>,
        elapsed: Duration,
    ) -> Report {
        let name_of = |id: u16| ports.iter().find(|p| p.id() == id).map_or_else(|| id.to_string(), |p| p.name().into());
        Report {
            seconds: elapsed.as_secs_f64(),
            ports: ports
                .iter()
                .map(|p| PortReport {
                    name: p.name().into(),
                    id: p.id(),
                    mac: format_mac(p.mac()),
                    link_up: p.link().up,
                    stats: p.stats(),
                    xstats: p.xstats().into_iter().collect(),
                })
                .collect(),
            links: links
                .iter()
                .map(|(id, c)| LinkReport {
                    worker: id.worker,
                    from: name_of(id.from_port),
                    rx_queue: id.rx_queue,
                    to: name_of(id.to_port),
                    tx_queue: id.tx_queue,
                    rx_packets: c.rx_packets.load(Ordering::Relaxed),
                    tx_packets: c.tx_packets.load(Ordering::Relaxed),
                    tx_full_drops: c.tx_full_drops.load(Ordering::Relaxed),
                })
                .collect(),
            pipelines: pipelines.iter().enumerate().map(|(w, c)| PipelineReport::collect(w, c)).collect(),
            topology_feed,
        }
    }

    /// Writes the JSON form to `--stats-json`, if given: whole, through a temporary file renamed
    /// over it, so a reader never sees half a report.
    fn write(&self, options: &Options) -> Result<()> {
        if let Some(path) = &options.stats_json {
            let json = serde_json::to_string_pretty(self).context("encode report")?;
            let tmp = temporary_beside(path);
            std::fs::write(&tmp, json).with_context(|| format!("write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(())
    }

    /// The human-readable form printed to stdout.
    fn table(&self) -> String {
        let mut out = format!("--- midogw counters after {:.1} s ---\n", self.seconds);
        // The name column as wide as the longest port name, so the numbers stay in columns.
        let w = self.ports.iter().map(|p| p.name.chars().count()).max().unwrap_or(0).max(8);
        out += &format!(
            "{:<w$} {:>4} {:>12} {:>14} {:>12} {:>14} {:>9} {:>9} {:>9}\n",
            "port", "link", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_missed", "rx_errors", "tx_errors"
        );
        for p in &self.ports {
            out += &format!(
                "{:<w$} {:>4} {:>12} {:>14} {:>12} {:>14} {:>9} {:>9} {:>9}\n",
                p.name,
                if p.link_up { "up" } else { "down" },
                p.stats.rx_packets,
                p.stats.rx_bytes,
                p.stats.tx_packets,
                p.stats.tx_bytes,
                p.stats.rx_missed,
                p.stats.rx_errors,
                p.stats.tx_errors
            );
        }
        for l in &self.links {
            out += &format!(
                "worker {} {}/q{} -> {}/q{}: rx {} tx {} dropped (tx full) {}\n",
                l.worker, l.from, l.rx_queue, l.to, l.tx_queue, l.rx_packets, l.tx_packets, l.tx_full_drops
            );
        }
        for p in &self.pipelines {
            out += &format!(
                "pipeline worker {}: rx {} tx {} flow-cache hits {} misses {} simulated {} generated {} (ICMP errors over the rate {}, neighbour polls {}) dropped (tx full) {}",
                p.worker,
                p.rx_packets,
                p.tx_packets,
                p.cache_hits,
                p.cache_misses,
                p.simulated,
                p.generated,
                p.icmp_errors_limited,
                p.neighbour_polls,
                p.tx_full_drops
            );
            for (reason, n) in &p.drops {
                out += &format!(" {reason} {n}");
            }
            if p.rx_ipv4_checksum_offloaded != 0 {
                out += &format!(" (IPv4 checksums verified by the NIC: {})", p.rx_ipv4_checksum_offloaded);
            }
            if !p.parse_errors.is_empty() {
                let why: Vec<String> = p.parse_errors.iter().map(|(e, n)| format!("{e} {n}")).collect();
                out += &format!(" (malformed: {})", why.join(", "));
            }
            out += &format!(
                "\n  flows {} evicted {} invalidated {} expired {}; topology generation {} ({} taken)\n",
                p.cache_flows,
                p.cache_evictions,
                p.cache_invalidated,
                p.cache_expired,
                p.snapshot_generation,
                p.snapshots_taken
            );
        }
        if let Some(f) = &self.topology_feed {
            out += &format!(
                "topology feed: generation {} published {} compiles {} errors {} last compile {} us, change to cores {} us\n",
                f.generation, f.published, f.compiles, f.compile_errors, f.last_compile_us, f.last_change_to_cores_us
            );
        }
        out
    }
}
