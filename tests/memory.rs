//! Memory: the production path on real 2 MiB hugepages from a hugetlbfs mount of the test's own
//! (forwarding jumbo frames, then every hugepage handed back), and the clear errors an operator
//! gets when hugepages or EAL memory are missing. The reservation, the mount and its directory
//! are undone on drop, also when a test fails. These tests touch the machine-wide hugepage count,
//! so nextest runs them one at a time (.config/nextest.toml).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{frame, run, send_and_collect};
use midogw::{cross_connect, run_worker, Eal, EalConfig, Mempool, Port, PortConfig, Ring};

const PAGES: u64 = 256; // 512 MiB of 2 MiB pages

fn meminfo(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} missing from /proc/meminfo"))
}

/// Extra hugepages reserved and a hugetlbfs mounted, both undone on drop.
struct Hugepages {
    previous: u64,
    mount: std::path::PathBuf,
}

impl Hugepages {
    fn reserve() -> Hugepages {
        assert_eq!(meminfo("Hugepagesize:"), 2048, "test expects 2 MiB default hugepages");
        let previous: u64 = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap().trim().parse().unwrap();
        let mount = std::env::temp_dir().join(format!("mgwt-huge-{}", std::process::id()));
        std::fs::create_dir_all(&mount).unwrap();
        let guard = Hugepages { previous, mount };
        std::fs::write("/proc/sys/vm/nr_hugepages", (previous + PAGES).to_string()).unwrap();
        assert!(
            meminfo("HugePages_Free:") >= PAGES,
            "the kernel could not reserve {PAGES} hugepages (memory fragmented?): HugePages_Free = {}",
            meminfo("HugePages_Free:")
        );
        run("mount", &["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", guard.mount.to_str().unwrap()]);
        guard
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mount).output();
        let _ = std::fs::remove_dir(&self.mount);
        let _ = std::fs::write("/proc/sys/vm/nr_hugepages", self.previous.to_string());
    }
}

#[test]
fn eal_on_hugepages_forwards_and_returns_every_page() {
    let huge = Hugepages::reserve();
    let free_before = meminfo("HugePages_Free:");
    let config = EalConfig {
        main_core: 0,
        worker_cores: vec![1],
        file_prefix: format!("mgwt-huge-{}", std::process::id()),
        pci_allow: vec![],
        // --huge-unlink: no hugepage file outlives the process, even a killed one.
        extra_args: vec![
            "--huge-dir".into(),
            huge.mount.to_str().unwrap().into(),
            "-m".into(),
            "256".into(),
            "--huge-unlink".into(),
        ],
    };
    {
        let eal = Eal::init(&config).expect("EAL on hugepages");
        assert!(meminfo("HugePages_Free:") < free_before, "EAL took hugepages");
        let pool = Mempool::new(&eal, "hugetest", 8191).expect("jumbo pool in hugepages");
        let rings: Vec<Ring<'_>> = (0..4).map(|i| Ring::new(&eal, &format!("hwire{i}"), 1024).unwrap()).collect();
        let cfg = |name: &str| PortConfig { name: name.into(), mtu: 9000, rx_queues: 1, tx_queues: 1 };
        let appliance = [
            Port::from_rings(&eal, &pool, &rings[0], &rings[1], &cfg("up0")).unwrap(),
            Port::from_rings(&eal, &pool, &rings[2], &rings[3], &cfg("up1")).unwrap(),
        ];
        let host_a = Port::from_rings(&eal, &pool, &rings[1], &rings[0], &cfg("hostA")).unwrap();
        let host_b = Port::from_rings(&eal, &pool, &rings[3], &rings[2], &cfg("hostB")).unwrap();
        let (_a_rx, mut a_tx) = host_a.take_queues().unwrap();
        let (mut b_rx, _b_tx) = host_b.take_queues().unwrap();
        let (plans, _links) = cross_connect(&appliance, 1).unwrap();
        let stop = AtomicBool::new(false);
        // Jumbo frames: the pool's mbufs hold 9000-byte MTU frames in one segment.
        let frames: Vec<Vec<u8>> = (0..64).map(|i| frame(i, 9018)).collect();
        let got = eal
            .scope(|s| {
                for plan in plans {
                    s.launch(1, || run_worker(plan, &stop)).unwrap();
                }
                let got = send_and_collect(&pool, &mut a_tx[0], &mut b_rx[0], &frames);
                stop.store(true, Ordering::Relaxed);
                got
            })
            .unwrap();
        common::assert_same_packets(&got, &frames, "jumbo frames on hugepage mbufs");
    }
    assert_eq!(meminfo("HugePages_Free:"), free_before, "every hugepage handed back after EAL cleanup");
    let runtime_dir = std::path::Path::new("/var/run/dpdk").join(&config.file_prefix);
    assert!(!runtime_dir.exists(), "EAL runtime directory removed: {}", runtime_dir.display());
    let files: Vec<_> = std::fs::read_dir(&huge.mount).unwrap().collect();
    assert!(files.is_empty(), "hugepage files left behind: {files:?}");
}

#[test]
fn eal_without_usable_hugepages_says_how_to_get_them() {
    // --huge-dir on a plain directory: EAL finds no hugepages there whatever the machine has.
    let plain_dir = std::env::temp_dir().join(format!("mgwt-nohuge-{}", std::process::id()));
    std::fs::create_dir_all(&plain_dir).unwrap();
    let mut config = common::test_eal_config("nohuge", 256);
    config.extra_args = vec!["--no-shconf".into(), "--huge-dir".into(), plain_dir.to_str().unwrap().into()];
    let result = Eal::init(&config);
    let _ = std::fs::remove_dir(&plain_dir);
    let message = result.expect_err("EAL cannot start without hugepages or --no-huge").to_string();
    let runtime_dir = std::path::Path::new("/var/run/dpdk").join(&config.file_prefix);
    assert!(!runtime_dir.exists(), "a failed start leaves no runtime directory: {}", runtime_dir.display());
    if meminfo("HugePages_Free:") == 0 {
        assert!(message.contains("no free hugepages"), "{message}");
        assert!(message.contains("nr_hugepages") && message.contains("--no-huge"), "{message}");
    } else {
        assert!(message.contains("is hugetlbfs mounted"), "{message}");
    }
}

#[test]
fn pool_larger_than_eal_memory_is_a_clear_error() {
    let eal = Eal::init(&common::test_eal_config("smallmem", 64)).expect("EAL");
    let err = Mempool::new(&eal, "toobig", 16383).expect_err("16383 jumbo mbufs do not fit in 64 MiB");
    let message = err.to_string();
    assert!(message.contains("cannot create mbuf pool toobig (16383 mbufs"), "{message}");
    assert!(message.contains("give EAL more memory"), "{message}");
}
