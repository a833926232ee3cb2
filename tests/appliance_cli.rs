//! The `midogw` binary as an operator uses it: `check-config` on good and bad files, `run` refusing
//! bad configs with clear errors, and `run` forwarding real traffic between two network namespaces
//! until SIGTERM, then stopping cleanly with its counters written out.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TwoHosts;

const MIDOGW: &str = env!("CARGO_BIN_EXE_midogw");

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("midogw-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn midogw(args: &[&str]) -> Output {
    Command::new(MIDOGW).args(args).env("MIDOGW_LOG", "warn").output().expect("run midogw")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Also keeps each run's REST API and store its own: an ephemeral loopback port and a store in the
/// config's (temporary) directory, so tests running at once do not contend for 8181 or one store file.
/// Two ports, so that EAL and its memory are needed (a file without ports never starts DPDK).
const RING_PORTS: &str =
    "[[port]]\nname = \"ra\"\ndevargs = \"net_ring0\"\n[[port]]\nname = \"rb\"\ndevargs = \"net_ring1\"\n";

const WORKERS: &str = "[workers]\ncores = [1]\n\n[rest]\nlisten = \"127.0.0.1:0\"\n\n[store]\npath = \"store.redb\"\n";

fn check(dir: &TempDir, name: &str, config: &str) -> (bool, String) {
    let path = dir.write(name, config);
    let out = midogw(&["check-config", path.to_str().unwrap()]);
    (out.status.success(), text(&out))
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = TempDir::new("good");
    let config = format!(
        "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n\n[[port]]\nname = \"a\"\ndevargs = \"net_ring0\"\n\n[[port]]\nname = \"b\"\ndevargs = \"net_ring1\"\nmtu = 9000\n\n{WORKERS}"
    );
    let (ok, out) = check(&dir, "good.toml", &config);
    assert!(ok, "{out}");
    assert!(out.contains("OK (2 port(s), 1 worker(s)"), "{out}");
}

#[test]
fn check_config_reports_each_class_of_problem_with_its_location() {
    let dir = TempDir::new("bad");
    let no_huge = "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n";
    let cases: &[(&str, String, &[&str])] = &[
        (
            "unknown PCI port",
            format!("{no_huge}[[port]]\nname = \"up0\"\ndevargs = \"0000:99:1f.7\"\n[[port]]\nname = \"up1\"\ndevargs = \"net_ring0\"\n{WORKERS}"),
            &["5:11", "unknown port", "0000:99:1f.7"],
        ),
        (
            "unknown interface",
            format!("{no_huge}[[port]]\nname = \"up0\"\ndevargs = \"net_af_packet0,iface=nosuchif0\"\n[[port]]\nname = \"up1\"\ndevargs = \"net_ring0\"\n{WORKERS}"),
            &["unknown port", "nosuchif0"],
        ),
        (
            "bad devargs",
            format!("{no_huge}[[port]]\nname = \"up0\"\ndevargs = \"eth0\"\n[[port]]\nname = \"up1\"\ndevargs = \"net_ring0\"\n{WORKERS}"),
            &["5:", "bad devargs"],
        ),
        ("duplicate cores", format!("{no_huge}[workers]\ncores = [1, 1]\n"), &["4:", "1"]),
        (
            "too little memory",
            format!("[eal]\nargs = [\"--no-huge\", \"-m\", \"64\"]\n[mempool]\nmbufs = 65535\n[workers]\ncores = [1]\n{RING_PORTS}"),
            &["too little memory"],
        ),
        (
            "too few hugepages",
            format!("[mempool]\nmbufs = 4194303\n[workers]\ncores = [1]\n{RING_PORTS}"),
            &["too few hugepages"],
        ),
        (
            "EAL option midogw manages",
            "[eal]\nargs = [\"--no-huge\", \"-l\", \"0-1\"]\n[workers]\ncores = [1]\n".to_string(),
            &["2:", "-l"],
        ),
        ("unknown key", format!("{no_huge}[[port]]\nname = \"up0\"\ndevargz = \"net_ring0\"\n{WORKERS}"), &["5:", "devargz"]),
    ];
    for (what, config, needles) in cases {
        let (ok, out) = check(&dir, "bad.toml", config);
        assert!(!ok, "{what}: accepted\n{config}\n{out}");
        for needle in *needles {
            assert!(out.contains(needle), "{what}: {needle:?} missing from:\n{out}");
        }
        assert!(out.contains("bad.toml:"), "{what}: no file location:\n{out}");
    }
}

#[test]
fn check_config_reports_every_problem_not_just_the_first() {
    let dir = TempDir::new("many");
    let config = "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n[[port]]\nname = \"up0\"\ndevargs = \"bogus\"\n[[port]]\nname = \"up0\"\ndevargs = \"net_ring0\"\nmtu = 10\n[workers]\ncores = [0, 7]\n";
    let (ok, out) = check(&dir, "many.toml", config);
    assert!(!ok);
    let problems = out.lines().filter(|l| l.contains("many.toml:") && !l.contains("problem(s)")).count();
    assert!(problems >= 5, "bad devargs, duplicate name, MTU, core 0 = main core, offline core 7:\n{out}");
}

#[test]
fn run_refuses_a_bad_config_before_starting_dpdk() {
    let dir = TempDir::new("runbad");
    let path = dir.write("bad.toml", "[eal]\nargs = [\"--no-huge\"]\n[workers]\ncores = [1, 1]\n");
    let out = midogw(&["run", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let out = text(&out);
    assert!(out.contains("invalid configuration"), "{out}");
    assert!(!out.contains("EAL:"), "EAL must not start on a bad config:\n{out}");
}

#[test]
fn run_reports_a_device_dpdk_refuses() {
    let dir = TempDir::new("runvdev");
    let prefix = format!("mgwt-vdev-{}", std::process::id());
    let path = dir.write(
        "vdev.toml",
        &format!("[eal]\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\"]\nfile_prefix = \"{prefix}\"\n[[port]]\nname = \"up0\"\ndevargs = \"net_ring0,nodeaction=broken\"\n[[port]]\nname = \"up1\"\ndevargs = \"net_ring1\"\n{WORKERS}"),
    );
    let out = midogw(&["run", "--config", path.to_str().unwrap(), "--duration", "1"]);
    assert!(!out.status.success());
    let out = text(&out);
    assert!(out.contains("port up0: DPDK could not create virtual device"), "{out}");
}

#[test]
fn run_refuses_an_mtu_the_driver_cannot_receive() {
    let dir = TempDir::new("mtu");
    let tag = std::process::id();
    let path = dir.write(
        "mtu.toml",
        &format!("[eal]\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\"]\nfile_prefix = \"mgwt-mtu-{tag}\"\n[[port]]\nname = \"up0\"\ndevargs = \"net_tap0,iface=mgm{tag}\"\nmtu = 9000\n[[port]]\nname = \"up1\"\ndevargs = \"net_ring0\"\n{WORKERS}"),
    );
    let out = midogw(&["run", "--config", path.to_str().unwrap(), "--duration", "1"]);
    assert!(!out.status.success());
    let out = text(&out);
    assert!(out.contains("port up0: MTU 9000 needs 9018-byte frames, the net_tap driver receives at most"), "{out}");
    assert!(!Path::new("/sys/class/net").join(format!("mgm{tag}")).exists(), "the TAP interface is removed again");
}

impl TwoHosts {
    /// The appliance's config: the two outer veth ends as af_packet ports.
    fn config(&self, prefix: &str) -> String {
        format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\"]\nfile_prefix = \"{prefix}\"\n[mempool]\nmbufs = 4095\n\n[[port]]\nname = \"up0\"\ndevargs = \"net_af_packet0,iface={}\"\n\n[[port]]\nname = \"up1\"\ndevargs = \"net_af_packet1,iface={}\"\n\n{WORKERS}",
            self.veth_a.outer, self.veth_b.outer
        )
    }

    /// Sends `payloads` as UDP datagrams from A to B; returns what B received (bounded wait).
    fn udp_a_to_b(&self, payloads: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let count = payloads.len();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let receiver = self.ns_b.spawn(move || {
            let socket = UdpSocket::bind("10.201.0.2:7001").unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            bound_tx.send(()).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while got.len() < count {
                match socket.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    Err(_) => break,
                }
            }
            got
        });
        // The receiver is bound before the first datagram (a thread may start late on a loaded machine).
        bound.recv_timeout(Duration::from_secs(30)).expect("the receiver binds its socket");
        self.ns_a
            .spawn(move || {
                let socket = UdpSocket::bind("10.201.0.1:0").unwrap();
                for p in &payloads {
                    socket.send_to(p, "10.201.0.2:7001").unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .join()
            .unwrap();
        receiver.join().unwrap()
    }
}

/// A running `midogw run`, its log lines collected on a thread.
struct Appliance {
    child: std::process::Child,
    log: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Appliance {
    /// Starts the appliance and waits until its worker runs.
    fn start(config: &Path, stats: &Path) -> Appliance {
        let mut child = Command::new(MIDOGW)
            .args(["run", "--config", config.to_str().unwrap(), "--stats-interval", "0"])
            .args(["--stats-json", stats.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start midogw");
        let log = common::stderr_lines(&mut child);
        let mut appliance = Appliance { child, log, seen: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !appliance.seen.iter().any(|l| l.contains("worker starting")) {
            assert!(Instant::now() < deadline, "midogw did not start its worker:\n{}", appliance.seen.join("\n"));
            if let Ok(line) = appliance.log.recv_timeout(Duration::from_millis(100)) {
                appliance.seen.push(line);
            }
            assert!(
                appliance.child.try_wait().unwrap().is_none(),
                "midogw exited early:\n{}",
                appliance.seen.join("\n")
            );
        }
        appliance
    }

    /// SIGTERM, then waits for a clean exit; returns the JSON report.
    fn stop(mut self, stats: &Path) -> serde_json::Value {
        std::thread::sleep(Duration::from_millis(100)); // the worker's last burst is published
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(30));
        // Everything it logged, to the last line: the reader thread ends with its stderr.
        self.seen.extend(self.log.iter());
        assert!(status.success(), "midogw exit status {status}:\n{}", self.seen.join("\n"));
        assert!(self.seen.iter().any(|l| l.contains("stopped cleanly")), "{}", self.seen.join("\n"));
        serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap()
    }
}

fn port(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone()
}

#[test]
fn run_forwards_between_namespaces_and_stops_cleanly_on_sigterm() {
    let tag = format!("mgc{}", std::process::id());
    let hosts = TwoHosts::new(&tag, "10.201.0");
    let dir = TempDir::new("run");
    let config = dir.write("midogw.toml", &hosts.config(&format!("mgwt-cli-{tag}")));
    let stats = dir.0.join("stats.json");
    let sent_before = hosts.sent();
    let appliance = Appliance::start(&config, &stats);

    const COUNT: usize = 100;
    let expected: Vec<Vec<u8>> = (0..COUNT).map(|i| format!("through midogw {i}").into_bytes()).collect();
    let got = hosts.udp_a_to_b(expected.clone());
    common::assert_same_packets(&got, &expected, "datagrams through the running appliance");

    let report = appliance.stop(&stats);
    // A port receives the datagrams and at most what its host counted out of its interface (the
    // hosts are kept quiet, but a bound taken from the kernel does not rest on that).
    let sent = hosts.sent_since(sent_before);
    let counter = |name: &str, what: &str| port(&report, name)[what].as_u64().unwrap();
    let (up0_rx, up1_rx) = (counter("up0", "rx_packets"), counter("up1", "rx_packets"));
    assert!((COUNT as u64..=sent[0].0).contains(&up0_rx), "up0 received {up0_rx}");
    assert!(up1_rx <= sent[1].0, "up1 received {up1_rx}");
    assert_eq!(counter("up1", "tx_packets"), up0_rx, "up1 sent on all that up0 received");
    assert_eq!(counter("up0", "tx_packets"), up1_rx, "and back");
    let links = report["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert!(links.iter().any(|l| l["from"] == "up0" && l["to"] == "up1" && l["tx_packets"] == up0_rx), "{links:?}");
    assert_runtime_dir_gone(&format!("mgwt-cli-{tag}"));
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("midogw did not stop within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_runtime_dir_gone(prefix: &str) {
    let dir = Path::new("/var/run/dpdk").join(prefix);
    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "EAL runtime files left in {}: {leftovers:?}", dir.display());
}

#[test]
fn topology_check_accepts_the_example_and_locates_problems() {
    let dir = TempDir::new("topo");
    let config = dir.write(
        "cfg.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n\n[[port]]\nname = \"up0\"\ndevargs = \"net_ring0\"\n\n[[port]]\nname = \"down0\"\ndevargs = \"net_ring1\"\n\n{WORKERS}\n[topology]\nfile = \"topo.toml\"\n"
        ),
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/appliance/topology.example.toml");
    let out = midogw(&["topology", "check", example, "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("OK (1 router(s), 0 bridge(s), 2 port(s), 2 bound to DPDK ports, 0 chain(s), 0 host(s))"),
        "{}",
        text(&out)
    );

    let bad = dir.write(
        "bad.toml",
        "[[router]]\nname = \"r\"\n\n[[router.port]]\nname = \"a\"\naddress = \"10.1.0.1/24\"\ndpdk_port = \"up7\"\n",
    );
    let out = midogw(&["topology", "check", bad.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let shown = format!("{}:7:13: no [[port]] named \"up7\"", bad.display());
    assert!(text(&out).contains(&shown), "{}", text(&out));
    assert!(text(&out).contains("1 problem(s)"), "{}", text(&out));
}

#[test]
fn run_routes_between_namespaces_with_a_topology_file() {
    let tag = format!("mgr{}", std::process::id());
    let ns_a = common::NetNs::new(&format!("{tag}a"));
    let ns_b = common::NetNs::new(&format!("{tag}b"));
    let veth_a = common::Veth::new(&ns_a, &format!("{tag}a"), "10.203.1.2/24");
    let veth_b = common::Veth::new(&ns_b, &format!("{tag}b"), "10.203.2.2/24");
    ns_a.exec(&["ip", "route", "add", "default", "via", "10.203.1.1"]);
    ns_b.exec(&["ip", "route", "add", "default", "via", "10.203.2.1"]);

    let dir = TempDir::new("route");
    dir.write(
        "topology.toml",
        "[[router]]\nname = \"edge\"\n\n[[router.port]]\nname = \"a\"\naddress = \"10.203.1.1/24\"\ndpdk_port = \"up0\"\n\n[[router.port]]\nname = \"b\"\naddress = \"10.203.2.1/24\"\ndpdk_port = \"up1\"\n",
    );
    let config = dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwt-route-{tag}\"\n\n[[port]]\nname = \"up0\"\ndevargs = \"net_af_packet0,iface={}\"\n\n[[port]]\nname = \"up1\"\ndevargs = \"net_af_packet1,iface={}\"\n\n[topology]\nfile = \"topology.toml\"\n\n{WORKERS}",
            veth_a.outer, veth_b.outer
        ),
    );
    let stats = dir.0.join("stats.json");
    let appliance = Appliance::start(&config, &stats);

    let (to_router_answered, to_router) = ns_a.pings("10.203.1.1", 5, &[]);
    let (across_answered, across) = ns_a.pings("10.203.2.2", 5, &[]);
    let report = appliance.stop(&stats);

    assert_eq!(to_router_answered, 5, "the router answers echo for its port address:\n{to_router}");
    // The first echo may be lost while the router resolves B (no resolution queue yet).
    assert!(across_answered >= 4, "A reaches B through the router:\n{across}");
    assert!(across.contains("ttl=63"), "one router hop:\n{across}");
    let pipeline = &report["pipelines"][0];
    assert!(pipeline["cache_hits"].as_u64().unwrap() > 0, "the flow cache serves the echo flow: {pipeline}");
    assert!(pipeline["generated"].as_u64().unwrap() > 0, "the router sent ARP requests: {pipeline}");
    assert_eq!(report["links"].as_array().unwrap().len(), 0, "no cross-connect links with a topology");
    assert_runtime_dir_gone(&format!("mgwt-route-{tag}"));
}

/// Runs `args` with a time limit: the output, or `None` (the child killed) when it did not exit.
fn midogw_within(args: &[&str], limit: Duration) -> Option<Output> {
    let child = Command::new(MIDOGW)
        .args(args)
        .env("MIDOGW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run midogw");
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + limit;
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            let _ = waiter.join();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(waiter.join().unwrap())
}

/// `--stats-interval` takes any number of seconds a `Duration` holds; one too long ever to come
/// due means "not before the end", not a panic of the main lcore with the workers running.
#[test]
fn run_takes_a_stats_interval_too_long_ever_to_come_due() {
    let dir = TempDir::new("interval");
    let prefix = format!("mgwt-interval-{}", std::process::id());
    let path = dir.write(
        "ring.toml",
        &format!("[eal]\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\"]\nfile_prefix = \"{prefix}\"\n{RING_PORTS}{WORKERS}"),
    );
    let out = midogw_within(
        &["run", "--config", path.to_str().unwrap(), "--duration", "0.5", "--stats-interval", "1e19"],
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&prefix));
    let out = out.expect("midogw did not stop within 30 s");
    let all = text(&out);
    assert!(!all.contains("panicked"), "{all}");
    assert!(out.status.success(), "{all}");
    assert!(all.contains("--- midogw counters after"), "the final counters are printed:\n{all}");
}

/// `run` waits up to `session_timeout_ms` for a first ZooKeeper session; SIGTERM (or Ctrl-C) in
/// that wait stops it then, not once the whole timeout has passed.
#[test]
fn run_stops_on_sigterm_while_waiting_for_a_dead_zookeeper() {
    let dir = TempDir::new("zkdead");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let path = dir.write(
        "zk.toml",
        &format!("[rest]\nlisten = \"127.0.0.1:0\"\n[store]\nkind = \"zookeeper\"\nhosts = \"{dead}\"\nsession_timeout_ms = 60000\n[host]\nid = \"7d0c3c7e-1111-4222-8333-444455556667\"\n"),
    );
    let mut child = Command::new(MIDOGW)
        .args(["run", "--config", path.to_str().unwrap(), "--stats-interval", "0"])
        .env("MIDOGW_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start midogw");
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "midogw is waiting for ZooKeeper");
    let (status, stderr) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
    assert!(status.is_some(), "midogw ignored SIGTERM for 10 s while waiting for ZooKeeper:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A `--stats-json` path that cannot be written is refused when `run` starts, not found out when
/// the run is over (with the report lost and a clean stop turned into a failure).
#[test]
fn run_refuses_a_stats_json_path_it_cannot_write_before_it_starts() {
    let dir = TempDir::new("statsjson");
    let path = dir.write(
        "cp.toml",
        "[rest]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"store.redb\"\n[host]\nid = \"7d0c3c7e-1111-4222-8333-444455556669\"\n",
    );
    let stats = dir.0.join("no-such-dir/stats.json");
    let out = midogw_within(
        &["run", "--config", path.to_str().unwrap(), "--duration", "20", "--stats-json", stats.to_str().unwrap()],
        Duration::from_secs(10),
    );
    let out = out.expect("midogw ran on with a --stats-json it cannot write");
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("stats.json"), "the error names the file:\n{all}");
}

/// A hangup (the terminal or SSH session that started `run` went away) stops it cleanly, as
/// SIGTERM does: exit 0, the final report written, nothing half-stopped.
#[test]
fn run_stops_cleanly_on_sighup() {
    let dir = TempDir::new("sighup");
    let path = dir.write(
        "cp.toml",
        "[rest]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"store.redb\"\n[host]\nid = \"7d0c3c7e-1111-4222-8333-44445555666a\"\n",
    );
    let stats = dir.0.join("stats.json");
    let mut child = Command::new(MIDOGW)
        .args(["run", "--config", path.to_str().unwrap(), "--stats-interval", "0", "--stats-json"])
        .arg(&stats)
        .current_dir(&dir.0)
        .env("MIDOGW_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start midogw");
    // Its signal handlers are in place once it registered its Host (appliance/run.rs installs them
    // first): a hangup before then, on a slow start, would kill it, as it would any process.
    let (lines, mut seen) = (common::stderr_lines(&mut child), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l.contains("registered as host")) {
        assert!(child.try_wait().unwrap().is_none(), "midogw exited early:\n{}", seen.join("\n"));
        assert!(Instant::now() < deadline, "midogw did not come up:\n{}", seen.join("\n"));
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
    }
    let (status, _) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGHUP, Duration::from_secs(10));
    seen.extend(lines.iter());
    let stderr = seen.join("\n");
    let status = status.unwrap_or_else(|| panic!("midogw ignored SIGHUP for 10 s:\n{stderr}"));
    assert!(status.success(), "a hangup is a clean stop, not a kill: {status:?}\n{stderr}");
    assert!(stats.exists(), "the final report was written:\n{stderr}");
}

/// Sends `signal` to `child` and waits up to `within` for it to exit (killing it after that):
/// its exit status (`None` if it had to be killed) and what it wrote to stderr (nothing if that
/// is read elsewhere: [`common::stderr_lines`]).
fn signal_and_wait(
    child: &mut std::process::Child,
    signal: nix::sys::signal::Signal,
    within: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    (status, stderr)
}
