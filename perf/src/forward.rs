//! `midogw-perf forward`: the appliance's cross-connect data path (`midogw::cross_connect` and
//! `midogw::run_worker`, unchanged) in a process of its own, configured from the same TOML subset
//! as `midogw run` (`[eal]`, `[mempool]`, `[[port]]`, `[workers]`).
//!
//! The runner uses it only while the appliance binary has no `run` command; the report says which
//! one ran. Both execute the same library loop, compiled with the same release profile.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use midogw::{cross_connect, run_worker, sizing, Device, Eal, EalConfig, Mempool, Port, PortConfig};

use crate::error::{Error, Result};

/// The part of the appliance's config file the forwarder reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardConfig {
    /// `[eal]`.
    pub eal: EalSection,
    /// `[mempool]`.
    #[serde(default)]
    pub mempool: MempoolSection,
    /// `[[port]]`, cross-connected in pairs.
    pub port: Vec<PortSection>,
    /// `[workers]`.
    pub workers: WorkersSection,
    /// `[topology]`: the appliance runs the gateway pipeline (this forwarder refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologySection>,
    /// `[rest]`: where the appliance's REST API listens (ignored here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestSection>,
    /// `[store]`: the appliance's embedded store file (ignored here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreSection>,
}

/// `[topology]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologySection {
    /// The topology file (docs/topology.md).
    pub file: String,
}

/// `[rest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestSection {
    /// Socket address; the runner uses 127.0.0.1:0 so benchmark runs never collide on a port.
    pub listen: String,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSection {
    /// The redb file; the runner keeps it in the sample's scratch directory.
    pub path: String,
}

/// `[eal]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EalSection {
    /// Extra EAL arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Lcore of the control thread.
    pub main_core: u32,
    /// EAL file prefix.
    pub file_prefix: String,
}

/// `[mempool]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MempoolSection {
    /// Jumbo mbufs; default as the appliance sizes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbufs: Option<u32>,
}

/// `[[port]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortSection {
    /// Port name.
    pub name: String,
    /// Virtual device arguments.
    pub devargs: String,
    /// MTU.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// RX queues (default: one per worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u16>,
}

fn default_mtu() -> u16 {
    1500
}

/// `[workers]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkersSection {
    /// Worker lcores.
    pub cores: Vec<u32>,
}

impl ForwardConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<ForwardConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|source| Error::Toml { what: path.display().to_string(), source })
    }

    /// The TOML text (what the runner writes for `midogw run` and for this forwarder alike).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("plain data serialises")
    }
}

/// Forwards until SIGINT/SIGTERM or `duration`; prints the link counters at the end.
pub fn run(config: &ForwardConfig, duration: Option<Duration>) -> Result<()> {
    if config.topology.is_some() {
        return Err(Error::Process {
            what: "forwarder".into(),
            detail: "[topology] needs the appliance (`midogw run`); this forwarder only cross-connects".into(),
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Process { what: "forwarder".into(), detail: format!("signal handler: {e}") })?;
    }
    let workers = config.workers.cores.len();
    let eal = Eal::init(&EalConfig {
        main_core: config.eal.main_core,
        worker_cores: config.workers.cores.clone(),
        file_prefix: config.eal.file_prefix.clone(),
        pci_allow: vec![],
        extra_args: config.eal.args.clone(),
    })?;
    let rx_queues: u32 = config.port.iter().map(|p| u32::from(p.queues.unwrap_or(workers as u16))).sum();
    let tx_queues = (config.port.len() * workers) as u32;
    let mbufs = config.mempool.mbufs.unwrap_or_else(|| sizing::default_mbufs(rx_queues, tx_queues, workers as u32));
    let pool = Mempool::new(&eal, "mbufs", mbufs)?;
    let mut ports = Vec::new();
    for p in &config.port {
        let pc = PortConfig {
            name: p.name.clone(),
            mtu: p.mtu,
            rx_queues: p.queues.unwrap_or(workers as u16),
            tx_queues: workers as u16,
        };
        ports.push(Port::open(&eal, &pool, &Device::Vdev { devargs: p.devargs.clone() }, &pc)?);
    }
    let (plans, links) = cross_connect(&ports, workers)?;
    eprintln!("midogw-perf forward: ready, {} ports, {} workers", ports.len(), workers);
    let started = Instant::now();
    eal.scope(|s| {
        for (plan, core) in plans.into_iter().zip(&config.workers.cores) {
            let stop = &*stop;
            if let Err(e) = s.launch(*core, move || run_worker(plan, stop)) {
                tracing::error!(%e, "cannot launch worker");
                stop.store(true, Ordering::Relaxed);
            }
        }
        while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    })?;
    for (id, c) in &links {
        eprintln!(
            "link port {} -> port {}: rx {} tx {} tx_full_drops {}",
            id.from_port,
            id.to_port,
            c.rx_packets.load(Ordering::Relaxed),
            c.tx_packets.load(Ordering::Relaxed),
            c.tx_full_drops.load(Ordering::Relaxed)
        );
    }
    drop(links);
    drop(ports);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_toml_in_the_appliance_layout() {
        let c = ForwardConfig {
            eal: EalSection {
                args: vec!["--no-huge".into(), "-m".into(), "512".into()],
                main_core: 0,
                file_prefix: "p".into(),
            },
            mempool: MempoolSection::default(),
            port: vec![
                PortSection {
                    name: "up0".into(),
                    devargs: "net_memif0,role=server".into(),
                    mtu: 1500,
                    queues: Some(1),
                },
                PortSection { name: "down0".into(), devargs: "net_memif1,role=server".into(), mtu: 1500, queues: None },
            ],
            workers: WorkersSection { cores: vec![1] },
            topology: None,
            rest: None,
            store: None,
        };
        let text = c.to_toml();
        assert!(
            text.contains("[[port]]") && text.contains("[workers]") && text.contains("file_prefix = \"p\""),
            "{text}"
        );
        assert!(!text.contains("mbufs"), "unset keys are left out: {text}");
        assert_eq!(toml::from_str::<ForwardConfig>(&text).unwrap(), c);
        let gateway = ForwardConfig {
            topology: Some(TopologySection { file: "/t/topo.toml".into() }),
            rest: Some(RestSection { listen: "127.0.0.1:0".into() }),
            store: Some(StoreSection { path: "/t/store.redb".into() }),
            ..c
        };
        let text = gateway.to_toml();
        assert!(text.contains("[topology]\nfile = \"/t/topo.toml\""), "{text}");
        assert!(text.contains("[rest]\nlisten = \"127.0.0.1:0\""), "{text}");
        assert_eq!(toml::from_str::<ForwardConfig>(&text).unwrap(), gateway);
        assert!(run(&gateway, Some(Duration::ZERO)).unwrap_err().to_string().contains("[topology]"));
    }
}
