//! Finds DPDK 22.11 with pkg-config, generates the rte bindings with bindgen and compiles the C shim
//! (pmd/shim.c) that gives DPDK's static-inline fast-path functions a callable symbol.
//!
//! When DPDK or libclang is missing the build stops with one line naming the setup command.

use std::env;
use std::path::PathBuf;

const SETUP_HINT: &str = "run `sudo scripts/setup.sh` (installs libdpdk-dev, pkg-config, clang, libclang-dev)";

fn fail(what: &str) -> ! {
    // `cargo::error` fails the build with this one line; exiting 0 keeps cargo from dumping the
    // build script's whole output around it.
    println!("cargo::error=midogw: {what}; {SETUP_HINT}");
    std::process::exit(0);
}

fn main() {
    println!("cargo::rerun-if-changed=pmd/shim.c");
    println!("cargo::rerun-if-changed=pmd/shim.h");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new().atleast_version("22.11").cargo_metadata(true).probe("libdpdk") {
        Ok(lib) => lib,
        Err(_) => fail("DPDK >= 22.11 not found by pkg-config (libdpdk.pc)"),
    };
    // rte_eth_from_rings lives in the ring PMD, which pkg-config's --libs does not list.
    println!("cargo::rustc-link-lib=rte_net_ring");

    // `-include rte_config.h` and `-march=...`: the ISA level DPDK was built for, which its inline
    // functions assume.
    let other_cflags = std::process::Command::new("pkg-config")
        .args(["--cflags-only-other", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| fail("pkg-config --cflags-only-other libdpdk failed"));
    let other_cflags: Vec<&str> = other_cflags.split_whitespace().collect();

    let mut shim = cc::Build::new();
    shim.file("pmd/shim.c").opt_level(3).warnings(true);
    for path in &dpdk.include_paths {
        shim.include(path);
    }
    for flag in &other_cflags {
        shim.flag(flag);
    }
    if let Err(e) = shim.try_compile("midogw_shim") {
        fail(&format!("cannot compile pmd/shim.c against DPDK headers: {e}"));
    }

    let mut builder = bindgen::Builder::default()
        .header("pmd/shim.h")
        .clang_args(other_cflags.iter().copied())
        // Only what pmd/ uses: EAL, lcores, ethdev, mbuf, mempool, ring, device hotplug, logging.
        .allowlist_function("midogw_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|mp_wait_lcore|get_lcore_state|process_type|get_runtime_dir)")
        .allowlist_function("rte_(lcore_count|get_main_lcore|lcore_is_enabled|socket_id|lcore_to_socket_id)")
        .allowlist_function("rte_eth_(dev_.*|rx_queue_setup|tx_queue_setup|rx_queue_info_get|stats_.*|xstats_.*|link_.*|macaddr_get|promiscuous_.*|from_rings|find_next_owned_by|iterator_.*)")
        .allowlist_function("rte_pktmbuf_(pool_create|free_bulk)")
        .allowlist_function("rte_mempool_(free|lookup)")
        .allowlist_function("rte_ring_(create|free|lookup)")
        .allowlist_function("rte_dev_(probe|remove)")
        .allowlist_function("rte_log_set_global_level")
        .allowlist_var("RTE_(ETH|MBUF|MAX_ETHPORTS|PKTMBUF|LOG|RING|MEMPOOL|ETHDEV|LCORE|MAX_LCORE|CACHE_LINE).*")
        .allowlist_var("(RING|MEMPOOL|SOCKET_ID)_.*")
        // RTE_BIT64()-style flags are function-like macros; let clang evaluate them. Its scratch
        // files (a precompiled header, a probe source) go to OUT_DIR, not the checkout, where an
        // interrupted build would leave them.
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")))
        .derive_debug(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts);
    for path in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    // bindgen panics when it cannot load libclang; the panic becomes our one-line error, so keep
    // the default hook from printing a backtrace first.
    std::panic::set_hook(Box::new(|_| {}));
    let bindings = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.generate())) {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!("bindgen could not parse the DPDK headers: {e}")),
        Err(_) => fail("bindgen could not load libclang (LIBCLANG_PATH, libclang-dev)"),
    };
    drop(std::panic::take_hook());
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("rte_bindings.rs")).expect("write bindings to OUT_DIR");
}
