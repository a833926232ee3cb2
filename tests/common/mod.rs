//! Test scaffolding shared by the integration tests: EAL set-up for one test process, and Linux
//! network namespaces with veth pairs that are removed again even when a test fails.
#![allow(dead_code)]

pub mod appliance;
pub mod http;
pub mod lan;
pub mod ovs;
pub mod prometheus;
pub mod ring;
pub mod zookeeper;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;

use std::time::{Duration, Instant};

use midogw::{Burst, EalConfig, Mempool};

/// EAL for a test process: no hugepages, a file prefix of its own so tests run side by side,
/// workers on lcore 1 (the machines have 2 cores).
pub fn test_eal_config(tag: &str, memory_mib: u32) -> EalConfig {
    EalConfig {
        main_core: 0,
        worker_cores: vec![1],
        file_prefix: format!("mgwt-{tag}-{}", std::process::id()),
        pci_allow: vec![],
        extra_args: vec!["--no-huge".into(), "-m".into(), memory_mib.to_string(), "--no-shconf".into()],
    }
}

/// Asserts two packet lists are equal, reporting the first difference instead of every byte.
pub fn assert_same_packets(got: &[Vec<u8>], expected: &[Vec<u8>], what: &str) {
    if let Some(i) = (0..got.len().min(expected.len())).find(|&i| got[i] != expected[i]) {
        panic!("{what}: packet {i} differs:\n got      {:02x?}\n expected {:02x?}", got[i], expected[i]);
    }
    assert_eq!(got.len(), expected.len(), "{what}: {} packets arrived, {} expected", got.len(), expected.len());
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `child`'s stderr (piped), line by line as it comes, read on a thread of its own so that a test
/// can wait for what the child logs; the channel ends with the stream.
pub fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    lines
}

/// A network namespace, deleted (with every interface inside it) on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: &str) -> NetNs {
        // A namespace left over from a killed run of the same name would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run("ip", &["netns", "add", name]);
        let ns = NetNs { name: name.to_string() };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ping -c count -i 0.2` from the namespace to `to`, with `args` added: how many of the
    /// `count` probes were answered (each by its own sequence number), and ping's output. Plain
    /// `-c` gives up two round trips after its last probe once some answer came, so one answer
    /// late on a loaded machine would count as lost; here ping waits until `count` answers came,
    /// at most 10 s (`-w`), and since it then sends on past `count` while one is missing, what is
    /// counted is the answers to probes 1 to `count`.
    pub fn pings(&self, to: &str, count: u32, args: &[&str]) -> (usize, String) {
        let count_arg = count.to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "ping", "-n", "-c", &count_arg, "-i", "0.2", "-w", "10"])
            .args(args)
            .arg(to)
            .output()
            .expect("run ping");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let answered = (1..=count)
            .filter(|seq| {
                let seq = format!(" icmp_seq={seq} ");
                text.lines().any(|l| l.contains(" bytes from ") && l.contains(&seq))
            })
            .count();
        (answered, text)
    }

    /// Runs `f` on a thread that has entered the namespace; sockets it opens live there.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A veth pair with one end (`outer`) in the root namespace for DPDK's af_packet driver and the
/// other inside `ns` with `address` (CIDR). IPv6 is off on both ends so the only traffic is the
/// test's own. Deleting the namespace deletes the pair; the guard also deletes the outer end.
pub struct Veth {
    pub outer: String,
    pub inner: String,
}

impl Veth {
    pub fn new(ns: &NetNs, outer: &str, address: &str) -> Veth {
        let _ = Command::new("ip").args(["link", "del", outer]).output();
        let inner = format!("{outer}i");
        run("ip", &["link", "add", outer, "type", "veth", "peer", "name", &inner, "netns", &ns.name]);
        let veth = Veth { outer: outer.to_string(), inner: inner.clone() };
        run("sysctl", &["-q", "-w", &format!("net.ipv6.conf.{outer}.disable_ipv6=1")]);
        run("ip", &["link", "set", outer, "up"]);
        ns.exec(&["sysctl", "-q", "-w", &format!("net.ipv6.conf.{inner}.disable_ipv6=1")]);
        // The host computes its own checksums: a veth would leave them to an offload that never
        // happens once the frame leaves through a DPDK port.
        ns.exec(&["ethtool", "-K", &inner, "tx", "off"]);
        ns.exec(&["ip", "addr", "add", address, "dev", &inner]);
        ns.exec(&["ip", "link", "set", &inner, "up"]);
        veth
    }

    /// How many frames and bytes the inner end (the host) has sent, by its kernel's counters.
    pub fn inner_sent(&self, ns: &NetNs) -> (u64, u64) {
        let read = |what: &str| {
            let out = ns.exec(&["cat", &format!("/sys/class/net/{}/statistics/{what}", self.inner)]);
            out.trim().parse::<u64>().unwrap_or_else(|e| panic!("{what} of {}: {e}: {out:?}", self.inner))
        };
        (read("tx_packets"), read("tx_bytes"))
    }

    /// The inner end's MAC address.
    pub fn inner_mac(&self, ns: &NetNs) -> String {
        let out = ns.exec(&["cat", &format!("/sys/class/net/{}/address", self.inner)]);
        out.trim().to_string()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.outer]).output();
    }
}

/// Two hosts in namespaces, `<subnet>.1` and `<subnet>.2`, each behind a veth whose outer end (in
/// the root namespace) is for a DPDK `net_af_packet` port. Static neighbours: no ARP, so the only
/// frames on the wire are the test's own.
pub struct TwoHosts {
    pub ns_a: NetNs,
    pub ns_b: NetNs,
    pub veth_a: Veth,
    pub veth_b: Veth,
}

impl TwoHosts {
    pub fn new(tag: &str, subnet: &str) -> TwoHosts {
        let ns_a = NetNs::new(&format!("{tag}a"));
        let ns_b = NetNs::new(&format!("{tag}b"));
        let (addr_a, addr_b) = (format!("{subnet}.1"), format!("{subnet}.2"));
        let veth_a = Veth::new(&ns_a, &format!("{tag}a"), &format!("{addr_a}/24"));
        let veth_b = Veth::new(&ns_b, &format!("{tag}b"), &format!("{addr_b}/24"));
        let (mac_a, mac_b) = (veth_a.inner_mac(&ns_a), veth_b.inner_mac(&ns_b));
        ns_a.exec(&["ip", "neigh", "add", &addr_b, "lladdr", &mac_b, "dev", &veth_a.inner, "nud", "permanent"]);
        ns_b.exec(&["ip", "neigh", "add", &addr_a, "lladdr", &mac_a, "dev", &veth_b.inner, "nud", "permanent"]);
        TwoHosts { ns_a, ns_b, veth_a, veth_b }
    }

    /// What each host's kernel has counted out of its interface, (frames, bytes): A's, then B's.
    pub fn sent(&self) -> [(u64, u64); 2] {
        [self.veth_a.inner_sent(&self.ns_a), self.veth_b.inner_sent(&self.ns_b)]
    }

    /// [`TwoHosts::sent`] since `before`, an earlier reading of it.
    pub fn sent_since(&self, before: [(u64, u64); 2]) -> [(u64, u64); 2] {
        let now = self.sent();
        [0, 1].map(|host| (now[host].0 - before[host].0, now[host].1 - before[host].1))
    }
}

/// A test frame: locally administered MACs, the IEEE local experimental ethertype, then a
/// sequence number and a pattern derived from it.
pub fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    f
}

/// Sends `frames` into `tx` and collects what comes out of `rx` (bounded wait, then returns).
pub fn send_and_collect<'p>(
    pool: &'p Mempool<'_>,
    tx: &mut midogw::TxQueue<'p>,
    rx: &mut midogw::RxQueue<'p>,
    frames: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    let mut received = Vec::new();
    let mut out = Burst::new();
    let mut pending = frames.iter();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < frames.len() && Instant::now() < deadline {
        while !out.is_full() {
            let Some(f) = pending.next() else { break };
            let mut m = pool.alloc().expect("pool has room");
            m.append(f.len() as u16).expect("tailroom").copy_from_slice(f);
            out.push(m).expect("burst has room");
        }
        tx.tx(&mut out);
        let mut inb = Burst::new();
        rx.rx(&mut inb);
        for i in 0..inb.len() {
            received.push(inb.data(i).to_vec());
        }
    }
    received
}
