//! Up to four frames in a row (each as the `pipeline` target takes one) through the fixed topology
//! with a stateful router filter, on one core state: connection tracking, learning and the cached
//! conntrack refresh under arbitrary sequences. Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static TOPOLOGY: OnceLock<flowtable::topology::Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let snap = TOPOLOGY.get_or_init(flowtable::fuzzing::pipeline_topology_stateful);
    flowtable::fuzzing::pipeline_sequence(snap, data);
});
