//! Any bytes through `wire::Headers::parse`, the checksum checks and every view and `Repr::parse`
//! at the offsets it finds (including VXLAN and GRE inner frames). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowtable::fuzzing::packet_parser(data);
});
