//! Open vSwitch's DPDK datapath as the runner starts it (`perf::ovs`: private ovsdb-server and
//! ovs-vswitchd-dpdk, the memif server on both links), with this test as the memif client playing
//! the generator's hosts at a low rate:
//!
//! - the gateway job on gateway-one-router: every frame comes back on the other port routed
//!   (MACs rewritten, TTL minus one, IPv4 checksum valid, the rest untouched), both ways;
//! - the tunnel job (VXLAN and GRE): frames from the uplink leave the underlay port
//!   encapsulated to the remote host with the key, and encapsulated frames from the remote host
//!   come out of the uplink decapsulated and routed.
//!
//! Afterwards nothing is left: no Open vSwitch process, no DPDK runtime directory, no private
//! directory, no tap device. Needs root and the Debian package openvswitch-switch-dpdk
//! (scripts/setup.sh); fails, never skips, without them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use midogw::{Burst, Device, Eal, EalConfig, Mempool, Port, PortConfig, RxQueue, TxQueue};
use perf::checksum::checksum;
use perf::ovs::job::{TunnelKind, TunnelParams, Uplink, GATEWAY_BRIDGE, OVERLAY_BRIDGE, UNDERLAY_BRIDGE};
use perf::ovs::{gateway_job, tunnel_job, Ovs, OvsJob, OvsSettings};
use perf::packet::Stamp;
use perf::topology::GatewayTopology;
use perf::traffic::host;
use perf::{Direction, Scenarios, Trace};

const FRAMES_PER_DIRECTION: usize = 256;
const VXLAN_PORT: u16 = 4789;

struct Paths {
    dir: PathBuf,
    prefix: String,
    client_prefix: String,
}

impl Paths {
    fn new(name: &str) -> Paths {
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/tmp/perf-ovs-{name}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Paths { dir, prefix: format!("perf-ovs-{name}-{pid}"), client_prefix: format!("perf-ovsc-{name}-{pid}") }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("memif.sock")
    }

    fn server_devargs(&self) -> [String; 2] {
        [0, 1].map(|i| format!("net_memif{i},role=server,socket={},socket-abstract=no,id={i}", self.socket().display()))
    }

    fn settings(&self) -> OvsSettings {
        OvsSettings {
            dir: self.dir.join("ovs"),
            file_prefix: self.prefix.clone(),
            main_core: 0,
            pmd_core: 1,
            memory_mib: 512,
        }
    }
}

impl Drop for Paths {
    fn drop(&mut self) {
        perf::runner::remove_runtime_dir(&self.client_prefix);
        perf::runner::remove_runtime_dir(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts Open vSwitch on `job`, connects to both memif links as the client and runs `body`
/// with the two ports' queues; then stops Open vSwitch and checks nothing is left behind.
fn with_ovs(
    paths: &Paths,
    job: &OvsJob,
    body: impl for<'a> FnOnce(&Ovs, &'a Mempool<'a>, &mut [Vec<RxQueue<'a>>], &mut [TxQueue<'a>]),
) {
    let mut ovs = Ovs::start(&paths.settings(), job).unwrap_or_else(|e| panic!("{e}"));
    ovs.wait_polling(Duration::from_secs(20)).unwrap();
    let pids = ovs.pids();
    assert_eq!(pids.len(), 2);
    {
        let eal = Eal::init(&EalConfig {
            main_core: 0,
            worker_cores: vec![],
            file_prefix: paths.client_prefix.clone(),
            pci_allow: vec![],
            // As the generator: zero-copy client, which needs one memory segment file.
            extra_args: vec!["--no-huge".into(), "-m".into(), "256".into(), "--single-file-segments".into()],
        })
        .unwrap();
        let pool = Mempool::with_data_room(&eal, "ovstest", 8191, 2048 + 128).unwrap();
        let ports: Vec<Port<'_>> = (0..2)
            .map(|i| {
                let devargs = format!(
                    "net_memif{i},role=client,socket={},socket-abstract=no,id={i},zero-copy=yes",
                    paths.socket().display()
                );
                let config = PortConfig {
                    name: format!("host{i}"),
                    mtu: 1500,
                    rx_queues: perf::ovs::DEVICE_TX_QUEUES,
                    tx_queues: 1,
                };
                Port::open(&eal, &pool, &Device::Vdev { devargs }, &config).unwrap()
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(20);
        while !ports.iter().all(|p| p.link().up) {
            assert!(Instant::now() < until, "memif links to Open vSwitch not up\n{}", ovs.log_tail(20));
            std::thread::sleep(Duration::from_millis(10));
        }
        let (mut rxs, mut txs): (Vec<Vec<RxQueue<'_>>>, Vec<TxQueue<'_>>) = ports
            .iter()
            .map(|p| {
                let (rx, mut tx) = p.take_queues().unwrap();
                (rx, tx.remove(0))
            })
            .unzip();
        body(&ovs, &pool, &mut rxs, &mut txs);
        // As in a sample: the device under test stops while the client still holds its links.
        ovs.stop();
    }
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "Open vSwitch process {pid} still running");
    }
    assert!(!paths.dir.join("ovs").exists(), "private directory removed");
    for base in ["/var/run/dpdk", "/run/dpdk"] {
        assert!(!Path::new(base).join(&paths.prefix).exists(), "DPDK runtime directory of the prefix removed");
    }
    for bridge in job.bridges.iter().map(|b| b.name.as_str()) {
        let found = std::process::Command::new("ip").args(["link", "show", bridge]).output().unwrap();
        assert!(!found.status.success(), "no tap device {bridge} outside Open vSwitch's namespace");
    }
}

fn send<'a>(pool: &'a Mempool<'_>, frame: &[u8], tx: &mut TxQueue<'a>) {
    let mut m = pool.alloc().expect("mbuf");
    m.append(frame.len() as u16).unwrap().copy_from_slice(frame);
    let mut b = Burst::new();
    b.push(m).ok().unwrap();
    assert_eq!(tx.tx(&mut b), 1, "memif accepted the frame");
}

/// Sends `frames` on `tx` a few at a time while receiving on every queue of `rx` (the zero-copy
/// client hands the device its receive buffers as it polls), until as many frames passing `keep`
/// arrived (others are ignored) or for 2 s after the last was sent; returns what arrived.
fn exchange<'a>(
    pool: &'a Mempool<'_>,
    frames: &[Vec<u8>],
    tx: &mut TxQueue<'a>,
    rx: &mut [RxQueue<'_>],
    keep: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut inbound = Burst::new();
    let mut poll = |got: &mut Vec<Vec<u8>>| {
        let n = rx.iter_mut().map(|q| q.rx(&mut inbound)).sum::<usize>();
        for i in 0..n {
            if keep(inbound.data(i)) {
                got.push(inbound.data(i).to_vec());
            }
        }
        inbound.clear();
        n
    };
    poll(&mut got);
    for chunk in frames.chunks(8) {
        for f in chunk {
            send(pool, f, tx);
        }
        std::thread::sleep(Duration::from_micros(200));
        poll(&mut got);
    }
    let until = Instant::now() + Duration::from_secs(2);
    while got.len() < frames.len() && Instant::now() < until {
        if poll(&mut got) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn is_ipv4(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [0x08, 0x00]
}

/// `got` is `sent` routed once: to `dst_mac` from `src_mac`, TTL minus one, checksum valid, the
/// rest untouched.
fn assert_routed(got: &[u8], sent: &[u8], src_mac: [u8; 6], dst_mac: [u8; 6]) {
    assert_eq!(got.len(), sent.len(), "length unchanged");
    assert_eq!(got[0..6], dst_mac, "destination: the next hop");
    assert_eq!(got[6..12], src_mac, "source: the egress router port");
    assert_eq!(got[22], sent[22] - 1, "TTL decremented once");
    assert_eq!(checksum(&got[14..34]), 0, "IPv4 header checksum valid");
    assert_eq!(got[12..22], sent[12..22], "ethertype, version .. fragment fields untouched");
    assert_eq!(got[23], sent[23], "protocol untouched");
    assert_eq!(got[26..], sent[26..], "addresses, transport and payload untouched");
}

/// Packet `k` of `trace`, stamped with `k`.
fn frame(trace: &Trace, k: usize) -> Vec<u8> {
    let mut f = vec![0u8; trace.len_of(k)];
    trace.emit(k, Stamp { seq: k as u32, tx_ns: 0 }, &mut f);
    f
}

#[test]
fn ovs_routes_gateway_one_router_both_ways_and_leaves_nothing_behind() {
    let table = Scenarios::builtin();
    let sc = table.get("gateway-hit-64").unwrap();
    let macs = sc.router_macs().unwrap().unwrap();
    let topology = GatewayTopology::load(&sc.topology_path().unwrap()).unwrap();
    let paths = Paths::new("gw");
    let job = gateway_job(&topology, &paths.server_devargs(), 1500).unwrap();
    let traces = [
        Trace::build_to(&sc.traffic, Direction::Forward, FRAMES_PER_DIRECTION, Some(macs[0])).unwrap(),
        Trace::build_to(sc.reverse_traffic(), Direction::Reverse, FRAMES_PER_DIRECTION, Some(macs[1])).unwrap(),
    ];
    let hosts = [host(Direction::Forward).0, host(Direction::Reverse).0];
    with_ovs(&paths, &job, |ovs, pool, rxs, txs| {
        for side in 0..2 {
            let other = 1 - side;
            let frames: Vec<Vec<u8>> = (0..FRAMES_PER_DIRECTION).map(|k| frame(&traces[side], k)).collect();
            let (tx, rx) = (&mut txs[side], &mut rxs[other]);
            let got = exchange(pool, &frames, tx, rx, is_ipv4);
            assert_eq!(
                got.len(),
                FRAMES_PER_DIRECTION,
                "every frame routed from port {side}\nup0 {}down0 {}{}",
                ovs.interface_statistics("up0").unwrap_or_default(),
                ovs.interface_statistics("down0").unwrap_or_default(),
                ovs.log_tail(20)
            );
            for g in &got {
                let k = Stamp::read(g).expect("a trace frame").seq as usize;
                assert_routed(g, &frame(&traces[side], k), macs[other], hosts[other]);
            }
        }
        // A frame the router would not route (not addressed to its port) is dropped.
        let mut stray = frame(&traces[0], 0);
        stray[0..6].copy_from_slice(&[2, 0, 0, 0, 0x99, 0x99]);
        assert!(
            exchange(pool, &[stray], &mut txs[0], &mut rxs[1], is_ipv4).is_empty(),
            "frames to another MAC are dropped"
        );
        let rules = ovs.dump_flows(GATEWAY_BRIDGE).unwrap();
        assert_eq!(rules.matches(&format!("n_packets={FRAMES_PER_DIRECTION},")).count(), 2, "{rules}");
    });
}

const UNDERLAY_MAC: [u8; 6] = [2, 0, 0, 0, 0x30, 1];
const REMOTE_MAC: [u8; 6] = [2, 0, 0, 0, 0x30, 2];
const KEY: u32 = 5001;

fn underlay_ip() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1)
}

fn remote_ip() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 2)
}

/// The outer headers of `kind` around `inner`, from `src` to `dst`.
fn encapsulate(kind: TunnelKind, inner: &[u8], src: (Ipv4Addr, [u8; 6]), dst: (Ipv4Addr, [u8; 6])) -> Vec<u8> {
    let tunnel: Vec<u8> = match kind {
        TunnelKind::Vxlan => {
            let mut h = Vec::new();
            h.extend(49152u16.to_be_bytes());
            h.extend(VXLAN_PORT.to_be_bytes());
            h.extend((8 + 8 + inner.len() as u16).to_be_bytes());
            h.extend([0, 0]);
            h.extend([0x08, 0, 0, 0]);
            h.extend((KEY << 8).to_be_bytes());
            h
        }
        TunnelKind::Gre => {
            let mut h = vec![0x20, 0x00, 0x65, 0x58];
            h.extend(KEY.to_be_bytes());
            h
        }
    };
    let proto = if kind == TunnelKind::Vxlan { 17 } else { 47 };
    let total = (20 + tunnel.len() + inner.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend(src.0.octets());
    ip.extend(dst.0.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend(dst.1);
    f.extend(src.1);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f.extend(tunnel);
    f.extend(inner);
    f
}

/// The inner frame of an encapsulated `frame`, after checking its outer headers.
fn decapsulate(kind: TunnelKind, frame: &[u8]) -> Vec<u8> {
    assert_eq!(frame[0..6], REMOTE_MAC, "outer destination: the remote host's MAC");
    assert_eq!(frame[6..12], UNDERLAY_MAC, "outer source: the underlay bridge's MAC");
    assert_eq!(frame[12..14], [0x08, 0x00]);
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    assert_eq!(checksum(&frame[14..14 + ihl]), 0, "outer IPv4 checksum valid");
    assert_eq!(frame[26..30], underlay_ip().octets(), "outer source address");
    assert_eq!(frame[30..34], remote_ip().octets(), "outer destination address");
    let l4 = 14 + ihl;
    match kind {
        TunnelKind::Vxlan => {
            assert_eq!(frame[23], 17, "UDP");
            assert_eq!(frame[l4 + 2..l4 + 4], VXLAN_PORT.to_be_bytes(), "VXLAN port");
            assert_eq!(frame[l4 + 8] & 0x08, 0x08, "VNI present");
            assert_eq!(u32::from_be_bytes(frame[l4 + 12..l4 + 16].try_into().unwrap()) >> 8, KEY, "VNI");
            frame[l4 + 16..].to_vec()
        }
        TunnelKind::Gre => {
            assert_eq!(frame[23], 47, "GRE");
            assert_eq!(frame[l4] & 0x20, 0x20, "key present");
            assert_eq!(frame[l4 + 2..l4 + 4], [0x65, 0x58], "Ethernet inside");
            let key_at = l4 + 4 + if frame[l4] & 0x80 != 0 { 4 } else { 0 };
            assert_eq!(u32::from_be_bytes(frame[key_at..key_at + 4].try_into().unwrap()), KEY, "key");
            frame[key_at + 4 + if frame[l4] & 0x10 != 0 { 4 } else { 0 }..].to_vec()
        }
    }
}

fn tunnel_round_trip(kind: TunnelKind, name: &str) {
    let table = Scenarios::builtin();
    let sc = table.get("gateway-hit-64").unwrap();
    let macs = sc.router_macs().unwrap().unwrap();
    let hosts = [host(Direction::Forward).0, host(Direction::Reverse).0];
    let params = TunnelParams {
        kind,
        underlay: "192.0.2.1/24".parse().unwrap(),
        underlay_mac: UNDERLAY_MAC,
        remote_ip: remote_ip(),
        remote_mac: REMOTE_MAC,
        remote_from_flow: kind == TunnelKind::Vxlan,
        key: KEY,
        overlay: "198.19.0.0/16".parse().unwrap(),
        inner_router_mac: macs[1],
        inner_host_mac: hosts[1],
    };
    let uplink = Uplink { router_mac: macs[0], prefix: "198.18.0.0/16".parse().unwrap(), host_mac: hosts[0] };
    let paths = Paths::new(name);
    let job = tunnel_job(&uplink, &params, &paths.server_devargs(), 1500);
    let traces = [
        Trace::build_to(&sc.traffic, Direction::Forward, FRAMES_PER_DIRECTION, Some(macs[0])).unwrap(),
        Trace::build_to(sc.reverse_traffic(), Direction::Reverse, FRAMES_PER_DIRECTION, Some(macs[1])).unwrap(),
    ];
    let outer_proto = if kind == TunnelKind::Vxlan { 17 } else { 47 };
    let tunnelled = move |f: &[u8]| is_ipv4(f) && f[23] == outer_proto;
    with_ovs(&paths, &job, |ovs, pool, rxs, txs| {
        // Encapsulation: uplink -> underlay.
        let frames: Vec<Vec<u8>> = (0..FRAMES_PER_DIRECTION).map(|k| frame(&traces[0], k)).collect();
        let got = exchange(pool, &frames, &mut txs[0], &mut rxs[1], tunnelled);
        let dump = || {
            format!(
                "{}{}\n{}",
                ovs.dump_flows(OVERLAY_BRIDGE).unwrap_or_default(),
                ovs.dump_flows(UNDERLAY_BRIDGE).unwrap_or_default(),
                ovs.log_tail(20)
            )
        };
        assert_eq!(got.len(), FRAMES_PER_DIRECTION, "every frame encapsulated\n{}", dump());
        for g in &got {
            let inner = decapsulate(kind, g);
            let k = Stamp::read(&inner).expect("a trace frame inside").seq as usize;
            assert_routed(&inner, &frame(&traces[0], k), macs[1], hosts[1]);
        }
        // Decapsulation: underlay -> uplink.
        let frames: Vec<Vec<u8>> = (0..FRAMES_PER_DIRECTION)
            .map(|k| encapsulate(kind, &frame(&traces[1], k), (remote_ip(), REMOTE_MAC), (underlay_ip(), UNDERLAY_MAC)))
            .collect();
        let got = exchange(pool, &frames, &mut txs[1], &mut rxs[0], is_ipv4);
        assert_eq!(got.len(), FRAMES_PER_DIRECTION, "every frame decapsulated\n{}", dump());
        for g in &got {
            let k = Stamp::read(g).expect("a trace frame").seq as usize;
            assert_routed(g, &frame(&traces[1], k), macs[0], hosts[0]);
        }
    });
}

#[test]
fn ovs_vxlan_tunnel_encapsulates_and_decapsulates() {
    tunnel_round_trip(TunnelKind::Vxlan, "vxlan");
}

#[test]
fn ovs_gre_tunnel_encapsulates_and_decapsulates() {
    tunnel_round_trip(TunnelKind::Gre, "gre");
}

#[test]
fn ovs_failing_to_open_a_port_is_an_error_with_its_log_and_leaves_nothing_behind() {
    let table = Scenarios::builtin();
    let sc = table.get("gateway-hit-64").unwrap();
    let topology = GatewayTopology::load(&sc.topology_path().unwrap()).unwrap();
    let paths = Paths::new("bad");
    let mut devargs = paths.server_devargs();
    devargs[1] = "net_memif1,role=sideways".into();
    let job = gateway_job(&topology, &devargs, 1500).unwrap();
    let err = Ovs::start(&paths.settings(), &job).unwrap_err().to_string();
    assert!(err.contains("port down0 was not added"), "{err}");
    assert!(!err.contains("ovs-dpdk: ovs-dpdk"), "{err}");
    assert!(err.contains("--- ovs-vswitchd.log"), "the log's tail is in the error: {err}");
    assert!(!paths.dir.join("ovs").exists(), "private directory removed");
    assert!(!Path::new("/var/run/dpdk").join(&paths.prefix).exists(), "DPDK runtime directory removed");
    let left = std::process::Command::new("pgrep").args(["-f", &paths.dir.display().to_string()]).output().unwrap();
    assert!(left.stdout.is_empty(), "no Open vSwitch process left: {}", String::from_utf8_lossy(&left.stdout));
}
