//! midogw's poll-mode data plane: the only code that talks to DPDK.
//!
//! It brings up EAL, creates the jumbo mbuf pool, attaches and configures ports (RSS with a
//! symmetric key, MTU, LRO never enabled and checked off), launches run-to-completion workers on
//! their lcores and moves mbufs between queues. It decides nothing about packets: that is
//! flowtable/'s job, on plain byte slices.
//!
//! `unsafe` lives here and only here in the project, each block with a `SAFETY:` comment. Code
//! above this crate sees `&[u8]`, owned [`Mbuf`]s and [`Burst`]s.
#![warn(missing_docs)]

mod clock;
mod eal;
mod error;
mod ffi;
mod forward;
mod lcore;
mod mbuf;
mod mempool;
mod pipeline;
mod port;
mod prefetch;
mod ring;
pub mod sizing;
mod snapshot;
mod thp;

pub use clock::{tsc, TscClock};
pub use eal::{Eal, EalConfig};
pub use error::{Error, Result, RteErrno};
pub use forward::{cross_connect, run_worker, LinkCounters, LinkId, LinkTable, WorkerPlan};
pub use lcore::Scope;
pub use mbuf::{Burst, Ipv4Checksum, Mbuf};
pub use mempool::Mempool;
pub use pipeline::{
    local_ports_spread_by_driver, local_ports_spread_unlike, pipeline_plans, run_pipeline, PipelineConfig,
    PipelineCounters, PipelinePlan,
};
pub use port::{
    check_lro_disabled, symmetric_rss_key, Device, Link, Port, PortConfig, PortStats, RxQueue, Spread, TxQueue,
};
pub use ring::Ring;
pub use snapshot::{PublishError, Published, Refresh, SnapshotExchange, SnapshotReader};
pub use thp::advise_huge_pages;

/// The packet logic the pipeline workers call (re-exported so callers build snapshots with the same version).
pub use flowtable;
