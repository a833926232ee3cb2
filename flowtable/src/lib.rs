//! flowtable: everything a worker core decides about a packet, on plain byte buffers, without DPDK.
//!
//! This crate owns packet parsing and in-place rewriting ([`wire`]), and will own flow keys, the
//! simulation of the virtual topology into flow actions, the per-core flow cache, connection tracking
//! and NAT state (the gateway data-path issue).
//!
//! What it does not do: I/O, allocation on the per-packet path, clock reads, or anything that needs
//! DPDK. `pmd/` moves mbufs and hands their data to this crate as `&[u8]` / `&mut [u8]`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
