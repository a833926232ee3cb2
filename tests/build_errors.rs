//! A machine without DPDK or libclang gets one clear line from the build naming the set-up
//! command, not a page of compiler or bindgen output.

use std::process::Command;

/// Builds the library in a target directory of its own with `env` applied; returns the output.
fn build_with(env: &[(&str, &str)]) -> String {
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/target/build-error-tests");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--offline", "--quiet", "-p", "midogw", "--lib"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo");
    assert!(!out.status.success(), "the build must fail with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_one_clear_line(out: &str, what: &str) {
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: midogw")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{out}");
    assert!(errors[0].contains(what) && errors[0].contains("scripts/setup.sh"), "{}", errors[0]);
    assert!(!out.contains("stack backtrace") && !out.contains("panicked"), "no panic output:\n{out}");
}

#[test]
fn missing_dpdk_stops_the_build_with_one_line() {
    let out = build_with(&[("PKG_CONFIG_LIBDIR", "/nonexistent"), ("PKG_CONFIG_PATH", "")]);
    assert_one_clear_line(&out, "DPDK >= 22.11 not found");
}

#[test]
fn missing_libclang_stops_the_build_with_one_line() {
    let out = build_with(&[("LIBCLANG_PATH", "/nonexistent/lib")]);
    assert_one_clear_line(&out, "could not load libclang");
}
