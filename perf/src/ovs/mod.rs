//! Open vSwitch with its DPDK (userspace, `netdev`) datapath as the peer of the gateway scenarios
//! (`ovs-dpdk` in reports): the same job as midogw on the same `net_memif` server devices, with the
//! same EAL memory and the same forwarding CPU, so `ratio_to_peer` compares two products doing
//! one job rather than a product and an I/O ceiling.
//!
//! - [`job`]: what Open vSwitch is told (bridges, ports, OpenFlow rules, static neighbours) as
//!   data rendering to `ovs-vsctl`/`ovs-ofctl`/`ovs-appctl` text: [`gateway_job`] routes like the
//!   scenario's topology does on a flow-cache hit; [`tunnel_job`] is the native-tunnelling setup
//!   (VXLAN or GRE over an underlay bridge) for the tunnel scenarios.
//! - [`daemon`]: private `ovsdb-server` and `ovs-vswitchd-dpdk` processes ([`Ovs`]).
//! - [`serve`]: `midogw-perf ovs --spec FILE` (internal), the device-under-test process the
//!   runner starts like testpmd: it starts Open vSwitch, configures it, and stops it (nothing
//!   left behind) on a line or end of file on stdin, SIGINT or SIGTERM.

pub mod daemon;
pub mod job;

use std::io::BufRead as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use daemon::{preflight, Ovs, OvsSettings, VSWITCHD_DPDK};
pub use job::{gateway_job, gateway_tunnel_job, tunnel_job, OvsJob, RouteRule, TunnelKind, TunnelParams, Uplink};

use crate::error::{Error, Result};
use crate::scenario::{Pipeline, Scenario};

/// The peer's name in reports.
pub const PEER: &str = "ovs-dpdk";

/// Transmit queues Open vSwitch sets up on each port: one per thread that may send (the PMD
/// thread and the main thread), each thread on its own queue, the PMD thread on queue 1. A
/// memif client decides how many server-to-client rings exist, so the generator opens this many
/// receive queues for the peer and polls them all (with one, the PMD thread's packets are
/// dropped: `ovs_tx_failure_drops`).
pub const DEVICE_TX_QUEUES: u16 = 2;

/// The job Open vSwitch does for `sc`, on the memif server `devargs` of the two ports.
pub fn job_for(sc: &Scenario, devargs: &[String; 2], mtu: u16) -> Result<OvsJob> {
    match sc.pipeline {
        Pipeline::Gateway => {
            let path = sc
                .topology_path()
                .ok_or_else(|| Error::Scenario { name: sc.name.clone(), reason: "no topology".into() })?;
            let topology = crate::topology::GatewayTopology::load(&path)?;
            match topology.tunnel()? {
                Some(side) => gateway_tunnel_job(&topology, &side, devargs, mtu),
                None => gateway_job(&topology, devargs, mtu),
            }
        }
        Pipeline::CrossConnect => {
            Err(Error::Scenario { name: sc.name.clone(), reason: format!("{PEER} has no job for cross-connect") })
        }
    }
}

/// What `midogw-perf ovs` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeSpec {
    /// How to start the daemons.
    pub settings: OvsSettings,
    /// What to configure.
    pub job: OvsJob,
}

/// Starts Open vSwitch for `spec`, waits until its PMD thread polls, then runs until a line or
/// end of file on stdin, SIGINT or SIGTERM, and stops it. An error (Open vSwitch did not start,
/// or died) carries the tail of its log.
pub fn serve(spec: &ServeSpec) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Process { what: PEER.into(), detail: format!("signal handler: {e}") })?;
    }
    let mut ovs = Ovs::start(&spec.settings, &spec.job)?;
    if let Err(e) = ovs.wait_polling(Duration::from_secs(20)) {
        return Err(ovs.with_log_tail(e));
    }
    tracing::info!(pids = ?ovs.pids(), "Open vSwitch forwarding");
    let on_stdin = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        on_stdin.store(true, Ordering::Relaxed);
    });
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = ovs.check_alive() {
            return Err(ovs.with_log_tail(e));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Ok(rules) = spec.job.bridges.iter().map(|b| ovs.dump_flows(&b.name)).collect::<Result<Vec<_>>>() {
        tracing::info!("rules at the end:\n{}", rules.join(""));
    }
    ovs.stop();
    Ok(())
}
