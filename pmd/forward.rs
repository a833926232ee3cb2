//! The run-to-completion worker loop. Today it cross-connects port pairs (what dpdk-testpmd calls
//! io forwarding: 0<->1, 2<->3, ...); the gateway pipeline replaces the per-burst action.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mbuf::Burst;
use crate::port::{Port, RxQueue, TxQueue};

/// Counters of one forwarding link (one RX queue of one port, polled by one worker). Written only
/// by that worker, once per burst; read by the control thread.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct LinkCounters {
    /// Packets received on the RX queue.
    pub rx_packets: AtomicU64,
    /// Packets the TX queue took.
    pub tx_packets: AtomicU64,
    /// Packets freed because the TX queue was full.
    pub tx_full_drops: AtomicU64,
}

/// Where a link reads from and writes to, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkId {
    /// Worker index (0-based, in `[workers] cores` order).
    pub worker: usize,
    /// DPDK port id received on.
    pub from_port: u16,
    /// RX queue on `from_port`.
    pub rx_queue: u16,
    /// DPDK port id sent to.
    pub to_port: u16,
    /// TX queue on `to_port` (always the worker's own).
    pub tx_queue: u16,
}

/// Every link's identity and counters, for the control thread's reports.
pub type LinkTable = Vec<(LinkId, Arc<LinkCounters>)>;

struct Link<'p> {
    rx: RxQueue<'p>,
    tx_slot: usize,
    counters: Arc<LinkCounters>,
}

/// Everything one worker owns: its RX queues, its TX queue on every port, its counters.
pub struct WorkerPlan<'p> {
    links: Vec<Link<'p>>,
    tx: Vec<TxQueue<'p>>,
}

impl WorkerPlan<'_> {
    /// Number of RX queues this worker polls.
    pub fn rx_queue_count(&self) -> usize {
        self.links.len()
    }
}

/// Splits the queues of cross-connected port pairs among `workers` workers: RX queue q of a port
/// goes to worker q mod workers, and each worker sends on its own TX queue (index = worker).
/// A trailing unpaired port is left idle. Returns one plan per worker and every link's counters.
pub fn cross_connect<'p>(ports: &'p [Port<'_>], workers: usize) -> Result<(Vec<WorkerPlan<'p>>, LinkTable)> {
    if workers == 0 {
        return Err(Error::PortCapability {
            port: "*".into(),
            detail: "cross-connect needs at least one worker".into(),
        });
    }
    // Worker w sends on TX queue w of every port, so every port needs one TX queue per worker.
    if let Some(port) = ports.iter().find(|p| usize::from(p.config().tx_queues) < workers) {
        return Err(Error::PortCapability {
            port: port.name().into(),
            detail: format!("{} TX queues for {workers} workers; each worker needs its own", port.config().tx_queues),
        });
    }
    let mut plans: Vec<WorkerPlan<'p>> =
        (0..workers).map(|_| WorkerPlan { links: Vec::new(), tx: Vec::new() }).collect();
    let mut counters = Vec::new();
    let mut queues = Vec::with_capacity(ports.len());
    for port in ports {
        let (rx, tx) = port.take_queues()?;
        queues.push((port.id(), rx, tx));
    }
    // Each worker's TX queue on every port, in port order: tx slot = port index.
    let mut rx_by_port = Vec::with_capacity(queues.len());
    for (id, rx, tx) in queues {
        for (worker, queue) in tx.into_iter().enumerate().take(workers) {
            plans[worker].tx.push(queue);
        }
        rx_by_port.push((id, rx));
    }
    let port_count = rx_by_port.len();
    for (index, (from_port, rx_queues)) in rx_by_port.into_iter().enumerate() {
        let peer = index ^ 1;
        if peer >= port_count {
            tracing::warn!(port = from_port, "odd port has no cross-connect partner; it stays idle");
            continue;
        }
        for rx in rx_queues {
            let (_, rx_queue) = rx.id();
            let worker = usize::from(rx_queue) % workers;
            let link_counters = Arc::new(LinkCounters::default());
            let to = plans[worker].tx[peer].id();
            counters.push((
                LinkId { worker, from_port, rx_queue, to_port: to.0, tx_queue: to.1 },
                Arc::clone(&link_counters),
            ));
            plans[worker].links.push(Link { rx, tx_slot: peer, counters: link_counters });
        }
    }
    Ok((plans, counters))
}

/// The worker loop: RX a burst, send it to the peer port, free what TX refused, publish counters;
/// until `stop` is set. No allocation, no locks, no syscalls.
pub fn run_worker(mut plan: WorkerPlan<'_>, stop: &AtomicBool) -> i32 {
    let mut burst = Burst::new();
    // Counters live in locals and are published once per burst (single writer: plain stores).
    let mut totals: Vec<(u64, u64, u64)> = vec![(0, 0, 0); plan.links.len()];
    while !stop.load(Ordering::Relaxed) {
        for (link, total) in plan.links.iter_mut().zip(totals.iter_mut()) {
            let received = link.rx.rx(&mut burst);
            if received == 0 {
                continue;
            }
            let sent = plan.tx[link.tx_slot].tx(&mut burst);
            let refused = burst.len();
            burst.clear();
            total.0 += received as u64;
            total.1 += sent as u64;
            total.2 += refused as u64;
            link.counters.rx_packets.store(total.0, Ordering::Relaxed);
            link.counters.tx_packets.store(total.1, Ordering::Relaxed);
            link.counters.tx_full_drops.store(total.2, Ordering::Relaxed);
        }
    }
    0
}
