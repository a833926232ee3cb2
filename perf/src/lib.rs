//! midogw-perf: the traffic generator, the benchmark scenarios and the regression runner.
//!
//! What it does: builds realistic frames ([`packet`], [`traffic`]) from seeded scenario tables
//! ([`scenario`]); drives the appliance and the reference forwarder (`dpdk-testpmd`) over DPDK
//! virtual devices from a generator process ([`gen`], [`runner`]); reports throughput, latency
//! percentiles and ratios to the reference measured in the same run ([`report`], [`chart`]);
//! flags regressions between two runs ([`compare`]); and counts instructions per packet under
//! callgrind ([`callgrind`]), the figure that stays stable on noisy machines. [`control`] measures
//! the control plane: REST throughput and latency, REST write to the cores, snapshot build time
//! and memory. [`ovs`] runs Open vSwitch's DPDK datapath as the gateway scenarios' peer.
//!
//! What it does not do: decide anything about packets (that is flowtable/), or touch DPDK other
//! than through the `midogw` library. No `unsafe` here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod callgrind;
pub mod chart;
pub mod checksum;
pub mod compare;
pub mod control;
mod error;
pub mod forward;
pub mod gen;
pub mod histogram;
pub mod machine;
pub mod ovs;
pub mod packet;
pub mod report;
pub mod rng;
pub mod runner;
pub mod scenario;
#[doc(hidden)]
pub mod testing;
pub mod topology;
pub mod traffic;

pub use compare::{compare, Comparison, Metric};
pub use error::{Error, Result};
pub use packet::{Encap, FlowFields, FrameSpec, IpVersion, Proto, Stamp, Template, Tunnel};
pub use report::{GenReport, RunReport, ScenarioResult};
pub use scenario::{Directions, Pipeline, Reference, Scenario, Scenarios};
pub use traffic::{Direction, FrameSizes, Trace, TrafficSpec};
