//! Test hooks: synthetic reports for tests of `compare`, the report and the chart, inside this
//! crate and in its integration tests. Not part of the supported API.

use crate::histogram::LatencySummary;
use crate::machine::{Commit, Machine};
use crate::report::{
    DutResult, GenReport, InstructionCount, LatencyPhase, RunReport, Sample, ScenarioResult, Settings, MIDOGW, SCHEMA,
    TESTPMD_IO,
};
use crate::scenario::Pipeline;

/// A generator report at `mpps` with fixed latency figures.
pub fn gen_report(mpps: f64) -> GenReport {
    GenReport {
        seconds: 3.0,
        tx_packets: (mpps * 3e6) as u64,
        tx_refused: (mpps * 3e6) as u64,
        rx_packets: (mpps * 3e6) as u64,
        rx_bytes: (mpps * 3e6 * 64.0) as u64,
        lost: 0,
        foreign: 0,
        mpps,
        gbps: mpps * 64.0 * 8.0 / 1000.0,
        offered_mpps: mpps,
        latency: Some(LatencyPhase {
            offered_mpps: 1.0,
            received_mpps: 1.0,
            summary: LatencySummary {
                samples: 1000,
                p50_ns: 5000,
                p99_ns: 9000,
                p999_ns: 12000,
                max_ns: 20000,
                mean_ns: 5500,
            },
        }),
        series_mpps: vec![mpps, mpps],
        arp_replies: 0,
    }
}

/// A run of cross-connect-64 with midogw and testpmd io at the given per-round Mpps, and an
/// instructions-per-packet figure if given.
pub fn synthetic_report(midogw: &[f64], io: &[f64], ipp: Option<f64>) -> RunReport {
    let samples = |v: &[f64]| {
        v.iter()
            .enumerate()
            .map(|(i, m)| Sample {
                round: i as u32 + 1,
                gen: gen_report(*m),
                interference_pct: 0.5,
                steal_pct: 0.0,
                retries: 0,
                device: None,
            })
            .collect()
    };
    let mut sc = ScenarioResult {
        scenario: "cross-connect-64".into(),
        description: "test".into(),
        pipeline: Pipeline::CrossConnect,
        frames: "64".into(),
        flows: 1024,
        seed: 1,
        mean_frame_size: 64.0,
        directions: Default::default(),
        duts: vec![
            DutResult::new(MIDOGW, "midogw run".into(), samples(midogw)),
            DutResult::new(TESTPMD_IO, "dpdk-testpmd".into(), samples(io)),
        ],
        ratio_to_testpmd_io: None,
        ratio_to_testpmd_macswap: None,
        ratio_to_peer: None,
        target_ratio_io: 0.9,
        target_met: None,
        instructions: ipp.map(|v| InstructionCount {
            instructions_per_packet: v,
            packets: 65536,
            instructions: (v * 65536.0) as u64,
            empty_polls: 10,
            instructions_per_empty_poll: 40.0,
            method: "test".into(),
            valgrind: "valgrind-3.19.0".into(),
        }),
        targets: Default::default(),
        flow_table: None,
    };
    sc.compute_ratios();
    RunReport {
        schema: SCHEMA,
        tool: "midogw-perf 0.1.0".into(),
        command: "midogw-perf run cross-connect".into(),
        started: "2026-01-01T00:00:00Z".into(),
        machine: Machine {
            hostname: "box".into(),
            cpu_model: "CPU".into(),
            cpus: 2,
            memory_gib: 24.0,
            kernel: "6.1".into(),
            os: "Debian 12".into(),
            hypervisor: true,
        },
        commit: Commit { rev: "abc".into(), dirty: false },
        dpdk_version: "22.11.11".into(),
        settings: Some(Settings {
            rounds: midogw.len() as u32,
            seconds: 3.0,
            warmup_seconds: 0.5,
            latency_seconds: 1.0,
            generator_core: 0,
            dut_core: 1,
            topology: "memif".into(),
            midogw_runner: "midogw run".into(),
        }),
        scenarios: vec![sc],
    }
}
