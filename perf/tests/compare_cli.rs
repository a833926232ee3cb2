//! `midogw-perf compare` as operators run it: the exit code is the verdict.

use std::path::Path;
use std::process::Command;

use perf::testing::synthetic_report;

fn compare(dir: &Path, baseline: &perf::RunReport, current: &perf::RunReport, extra: &[&str]) -> (i32, String) {
    let (b, c) = (dir.join("baseline.json"), dir.join("current.json"));
    baseline.save(&b).unwrap();
    current.save(&c).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_midogw-perf"))
        .arg("compare")
        .arg(&b)
        .arg(&c)
        .args(extra)
        .output()
        .expect("run midogw-perf");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("perf-compare-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn regression_beyond_threshold_exits_one_and_says_so() {
    let dir = scratch("regressed");
    let base = synthetic_report(&[9.5, 9.4, 9.6], &[10.0, 10.0, 10.0], Some(40.0));
    let cur = synthetic_report(&[8.0, 8.2, 7.9], &[10.0, 10.1, 9.9], Some(40.1));
    let (code, out) = compare(&dir, &base, &cur, &["--threshold", "5"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REGRESSION"), "{out}");
    assert!(out.contains("| cross-connect-64 | ratio to testpmd io |"), "table of differences: {out}");
}

#[test]
fn noise_within_threshold_exits_zero() {
    let dir = scratch("noise");
    let base = synthetic_report(&[9.5, 9.4, 9.6], &[10.0, 10.0, 10.0], Some(40.0));
    // The machine ran 20% slower for everyone, and the ratio moved by 2%.
    let cur = synthetic_report(&[7.45, 7.5, 7.35], &[7.9, 8.0, 7.85], Some(40.3));
    let (code, out) = compare(&dir, &base, &cur, &["--threshold", "5"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No regression"), "{out}");
}

#[test]
fn instruction_count_regression_is_gated_and_unreadable_input_is_an_error() {
    let dir = scratch("ipp");
    let base = synthetic_report(&[9.5], &[10.0], Some(40.0));
    let cur = synthetic_report(&[9.5], &[10.0], Some(46.0));
    let (code, out) = compare(&dir, &base, &cur, &["--threshold", "10", "--metric", "ipp"]);
    assert_eq!(code, 1, "{out}");
    let missing = Command::new(env!("CARGO_BIN_EXE_midogw-perf"))
        .args(["compare", "/nonexistent/a.json", "/nonexistent/b.json"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(missing.status.code(), Some(2), "errors are not verdicts");
}
