//! The README's command for the appliance's main job, `scripts/demo.sh`, run as an operator would
//! (with this build's binary, and the REST API on a free port): the gateway between an outside
//! host and a VM behind a Linux VXLAN device, its topology built over the REST API on the embedded
//! store. The script fails on any step that does not do what it says; this checks that it ran
//! every step and printed what the README says it prints.

mod common;

use std::process::Command;

use common::appliance::free_addr;

#[test]
fn the_readme_demo_runs_the_gateway_end_to_end() {
    let rest = free_addr();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("MIDOGW_BIN", env!("CARGO_BIN_EXE_midogw"))
        .env("MIDOGW_DEMO_REST", rest.to_string())
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed ({}):\n{stdout}\n{stderr}", out.status);
    for expected in [
        "ttl=62",
        "3 packets transmitted, 3 received, 0% packet loss",
        "hops: 203.0.113.1 169.254.0.2 10.0.0.11",
        "4 MiB from 10.0.0.11 fetched intact",
        "4 MiB from 203.0.113.2 fetched intact",
        "Frag needed and DF set (mtu = 1450)",
        "1450 bytes with DF pass",
        "From 169.254.0.2 icmp_seq=1 Destination Host Unreachable",
        "ping outside -> vm1 now fails",
        "rule deleted: ping outside -> vm1 works again",
        "== worker 0:",
    ] {
        assert!(stdout.contains(expected), "the demo did not print {expected:?}:\n{stdout}\n{stderr}");
    }
    // Every REST call the demo made answered 2xx (the script prints each status on stderr).
    let calls: Vec<&str> = stderr.lines().filter(|l| l.trim_start().starts_with(['G', 'P', 'D'])).collect();
    assert!(calls.len() >= 20, "the demo's REST calls:\n{stderr}");
    assert!(calls.iter().all(|l| l.contains("-> 2")), "a REST call failed:\n{stderr}");
}
