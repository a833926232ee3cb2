//! flowtable: everything a worker core decides about a packet, on plain byte buffers, without DPDK.
//!
//! What is here: packet parsing and in-place rewriting ([`wire`]); the immutable topology snapshot
//! with route lookup ([`topology`]); rule chains and their evaluation ([`chain`]); flow keys and the
//! per-core flow cache ([`flow`]); the simulation of a packet through the snapshot into flow actions,
//! L3 path so far ([`sim`]). Still to come (the gateway data-path issue): bridges, tunnels,
//! connection tracking and NAT state.
//!
//! What it does not do: I/O, allocation on the per-packet path, clock reads, or anything that needs
//! DPDK. `pmd/` moves mbufs and hands their data to this crate as `&[u8]` / `&mut [u8]`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod chain;
pub mod flow;
pub mod ratelimit;
pub mod sim;
pub mod topology;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
