//! flowtable: everything a worker core decides about a packet, on plain byte buffers, without DPDK.
//!
//! This crate will own packet parsing and in-place rewriting, flow keys, the simulation of the
//! virtual topology into flow actions, the per-core flow cache, connection tracking and NAT state
//! (the gateway data-path issue). The foundation's cross-connect loop makes no per-packet decision,
//! so the crate is empty today; it is in the workspace so the layout, the lints and CI cover it
//! from the start.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
