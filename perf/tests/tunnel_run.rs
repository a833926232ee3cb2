//! The tunnel scenarios through the real runner, briefly: `midogw run` (the appliance binary
//! beside `midogw-perf`) and `dpdk-testpmd --forward-mode=io` as separate DPDK processes on
//! `net_memif`, driven by the `midogw-perf gen` process exactly as a benchmark does, but with no
//! warm-up and no throughput window: after the generator has resolved the gateway's next hops
//! (probes routed, underlay ARP and ARP through the tunnel answered), 0.5 s at a low fixed rate.
//! Every frame sent must come back (zero loss, nothing foreign), the appliance's flow cache must
//! have hit, and the appliance must have dropped nothing. A functional check, not a measurement.
//! Needs root and the appliance binary (`cargo build --bin midogw`).

use std::path::PathBuf;
use std::time::Duration;

use perf::runner::{run, MidogwRunner, RunOptions};
use perf::Scenarios;

fn run_briefly(name: &str) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_midogw-perf"));
    let midogw = exe.with_file_name("midogw");
    assert!(
        midogw.is_file(),
        "{} is missing: build the appliance first (`cargo build --bin midogw`; scripts/test.sh builds the workspace)",
        midogw.display()
    );
    let mut sc = Scenarios::builtin().get(name).unwrap().clone();
    // 10 000 packets per second: far below what either device forwards.
    sc.latency_rate_mpps = 0.01;
    let workdir = std::env::temp_dir().join(format!("perf-tunnel-run-{name}-{}", std::process::id()));
    let opts = RunOptions {
        scenarios: vec![sc],
        rounds: 1,
        seconds: 0.0,
        warmup_seconds: 0.0,
        latency_seconds: 0.5,
        gen_core: 0,
        dut_core: 1,
        self_exe: exe,
        midogw: MidogwRunner::Appliance(midogw),
        testpmd: PathBuf::from("dpdk-testpmd"),
        only: Some(vec!["midogw".into(), "testpmd-io".into()]),
        workdir: workdir.clone(),
        log_dir: workdir.join("logs"),
        max_interference_pct: 100.0,
        max_retries: 0,
        quiet_wait: Duration::ZERO,
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let report = run(&opts, format!("test {name}"), &repo);
    let logs: Vec<String> = std::fs::read_dir(workdir.join("logs"))
        .map(|d| d.flatten().map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default();
    let report = report.unwrap_or_else(|e| panic!("{name}: {e}; failed samples' logs: {logs:?}"));
    let _ = std::fs::remove_dir_all(&workdir);
    let result = &report.scenarios[0];
    assert_eq!(result.directions, Scenarios::builtin().get(name).unwrap().directions);
    assert_eq!(result.duts.len(), 2, "midogw and testpmd io");
    for dut in &result.duts {
        let s = &dut.samples[0];
        let latency = s.gen.latency.as_ref().unwrap_or_else(|| panic!("{name} {}: nothing came back", dut.dut));
        assert!(latency.summary.samples >= 1000, "{name} {}: {} frames timed", dut.dut, latency.summary.samples);
        assert_eq!(s.gen.lost, 0, "{name} {}: every frame came back", dut.dut);
        assert_eq!(s.gen.foreign, 0, "{name} {}: only the generator's frames came back", dut.dut);
        if dut.dut == "midogw" {
            let c = s.device.as_ref().expect("the appliance's counters");
            // 5000 frames over 1024 flows: the first of each flow misses, the rest hit.
            assert!(c.cache_misses <= 1024 + 8, "{name}: at most one miss per flow and probe: {c:?}");
            assert!(c.cache_hits + 1024 + 8 >= latency.summary.samples, "{name}: flow-cache hits: {c:?}");
            // Only the next-hop resolution before the measurement: ARP replies taken in, and a
            // probe's tunnel leg while the underlay next hop was still being asked for.
            for (reason, n) in &c.drops {
                assert!(
                    ["arp_consumed", "neighbour_unresolved"].contains(&reason.as_str()) && *n <= 8,
                    "{name}: dropped {n} for {reason}: {c:?}"
                );
            }
        }
    }
}

#[test]
fn gateway_vxlan_encap_runs_without_loss() {
    run_briefly("gateway-vxlan-encap");
}

#[test]
fn gateway_vxlan_decap_runs_without_loss() {
    run_briefly("gateway-vxlan-decap");
}

#[test]
fn gateway_gre_encap_runs_without_loss() {
    run_briefly("gateway-gre-encap");
}
