//! A frame on one of the fixed topology's DPDK ports (the first byte picks it) through the whole
//! simulation (routers, a bridge, VXLAN and GRE tunnels, the underlay) and, when cacheable, through
//! `apply`, which must give the same bytes. Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static TOPOLOGY: OnceLock<flowtable::topology::Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let snap = TOPOLOGY.get_or_init(flowtable::fuzzing::pipeline_topology);
    flowtable::fuzzing::pipeline(snap, &mut flowtable::fuzzing::pipeline_state(), data);
});
