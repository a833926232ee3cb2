//! `midogw-perf control` end to end at toy sizes (10 routers, fractions of a second per load
//! point), so CI proves every measurement runs; the figures themselves are not asserted (timing
//! on a shared machine is no test). The binary test needs `midogw` built next to `midogw-perf`
//! (scripts/test.sh builds the whole workspace).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn out_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("perf-control-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(args: &[&str], out: &PathBuf) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_midogw-perf"))
        .arg("control")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run midogw-perf");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "midogw-perf control failed:\n{text}");
    assert!(out.join("control.md").is_file(), "{text}");
    serde_json::from_str(&std::fs::read_to_string(out.join("control.json")).unwrap()).unwrap()
}

fn check_loads(points: &Value, expected: usize) {
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), expected, "{points:?}");
    for p in points {
        let load = &p["load"];
        assert!(load["requests"].as_u64().unwrap() > 0, "no request answered: {p}");
        assert_eq!(load["errors"], 0, "{p}");
        assert_eq!(load["latency"]["count"], load["requests"], "{p}");
    }
}

const TOY: &[&str] = &["--routers", "10", "--routes-per-router", "2", "--seconds", "0.2", "--warmup", "0.05"];

#[test]
fn in_process_reads_writes_and_snapshot_at_toy_size() {
    let out = out_dir("inproc");
    let mut args = vec!["--in-process", "--only", "reads,writes,snapshot", "--connections", "1,4"];
    args.extend_from_slice(TOY);
    args.extend_from_slice(&["--write-connections", "2", "--snapshot-routers", "10", "--compile-runs", "2"]);
    let report = run(&args, &out);
    assert_eq!(report["server"]["kind"], "in-process");
    // Two connection counts x (one router, the collection).
    check_loads(&report["reads"], 4);
    check_loads(&report["writes"], 1);
    assert_eq!(report["reads"][1]["resource"], "routers");
    assert!(report["propagation"].is_null());
    let snap = &report["snapshot"];
    assert_eq!(snap["routers"], 10);
    assert_eq!(snap["ports"], 10);
    assert_eq!(snap["routes"], 20);
    assert_eq!(snap["compile_runs"], 2);
    assert_eq!(snap["changed_tags"], 1, "one added route changes one router: {snap}");
    assert_eq!(snap["warnings"], 0);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_binary_serves_reads_writes_and_publishes_each_write_to_the_cores() {
    let midogw = PathBuf::from(env!("CARGO_BIN_EXE_midogw-perf")).with_file_name("midogw");
    assert!(
        midogw.is_file(),
        "{} is missing: build the appliance first (`cargo build --bin midogw`; scripts/test.sh builds the workspace)",
        midogw.display()
    );
    let out = out_dir("binary");
    let mut args = vec!["--only", "reads,writes,propagation", "--connections", "2", "--write-connections", "1"];
    args.extend_from_slice(TOY);
    args.extend_from_slice(&["--propagation-writes", "5", "--propagation-routers", "10"]);
    let report = run(&args, &out);
    assert_eq!(report["server"]["kind"], "binary");
    check_loads(&report["reads"], 2);
    check_loads(&report["writes"], 1);
    let p = &report["propagation"];
    assert_eq!(p["writes"], 5);
    assert_eq!(p["missed"], 0, "every POST reached the cores: {p}");
    assert_eq!(p["post"]["count"], 5, "{p}");
    assert_eq!(p["post_to_cores"]["count"], 5, "{p}");
    assert_eq!(p["feed_change_to_cores"]["count"], 5, "{p}");
    assert!(p["final_last_change_to_cores_us"].as_u64().unwrap() > 0, "{p}");
    assert!(p["feed_compiles"].as_u64().unwrap() >= 5, "{p}");
    assert!(report["snapshot"].is_null());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_missing_binary_is_named_in_the_error() {
    let out = out_dir("missing");
    let output = Command::new(env!("CARGO_BIN_EXE_midogw-perf"))
        .args(["control", "--only", "reads", "--midogw", "/nonexistent/midogw", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("/nonexistent/midogw") && err.contains("does not exist"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}
