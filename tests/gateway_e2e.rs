//! The gateway end to end, with real peers in network namespaces and nothing mocked: `midogw run`
//! with tests/topologies/gateway_e2e.toml on two `net_af_packet` ports, `uplink0` toward an
//! outside host and `underlay0` toward three compute hosts joined by a Linux bridge.
//!
//! ```text
//! outside 203.0.113.2 ── uplink0 [midogw: edge ─ tenant ─ bridge net] underlay0 ── br0 (underlay)
//!   br0 ─┬─ compute1 192.168.7.11 ── vx0 (VNI 0x101) ── vm1 10.0.0.11
//!        ├─ compute2 192.168.7.12 ── vx0 (VNI 0x102) ── vm2 10.0.0.12
//!        └─ compute3 192.168.7.13 ── GRE key 0x103, played by the test ── "vm3" 10.0.0.13
//! ```
//!
//! The compute hosts terminate VXLAN with Linux `vxlan` devices. The kernel has no GRE module, so
//! in the first test compute3 is played with a raw IPPROTO_GRE socket (crafted frames of a VM "vm3"
//! in) and a tcpdump capture decoded by tshark (what the gateway sends it, field by field); in the
//! third, compute3 runs Open vSwitch's userspace datapath with a GRE port and a real vm3 behind it.
//! The first test walks through everything on a warmed-up gateway; the second asks that the very
//! first packet toward a VM, which needs three address resolutions in a row, is not lost.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::appliance::{free_addr, ping_works, Appliance, TempDir};
use common::lan::{self, Capture, RootVeth};
use common::ovs::OvsHost;
use common::NetNs;
use serde_json::Value;

const OUTSIDE: &str = "203.0.113.2";
const EDGE_UPLINK: &str = "203.0.113.1";
const TENANT_UP: &str = "169.254.0.2";
const VM1: &str = "10.0.0.11";
const VM2: &str = "10.0.0.12";
const VM3: &str = "10.0.0.13";
/// `tenant/net`'s address: the VMs' default gateway.
const TENANT_GATEWAY: &str = "10.0.0.1";
const GATEWAY_UNDERLAY: &str = "192.168.7.1";
const COMPUTE3: &str = "192.168.7.13";
/// Tunnel keys of the bridge ports vm1..vm3 in the topology file (VXLAN VNIs, GRE key).
const TUNNEL_KEYS: [u32; 3] = [0x101, 0x102, 0x103];
/// The MTU inside the tenant network: 1500 on the underlay less 50 bytes of VXLAN.
const VM_MTU: &str = "1450";
/// `tenant/net` in the topology file: the VMs' default gateway.
const TENANT_NET_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];
/// The MAC of vm3, the VM on the GRE host that the test plays itself.
const VM3_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x03];

/// Who terminates GRE on compute3.
#[derive(Clone, Copy, PartialEq)]
enum Compute3 {
    /// The test itself, with raw sockets and captures (the kernel here has no GRE module).
    Played,
    /// Open vSwitch's userspace datapath (a GRE port with key 0x103 on its integration bridge,
    /// the host's address on its physical bridge), with a real vm3 behind it.
    OpenVswitch,
}

/// The namespaces, in the order they go away (Open vSwitch, when it runs, before its namespace).
struct Network {
    ovs: Option<OvsHost>,
    /// vm3 when Open vSwitch terminates GRE for it.
    vm3: Option<NetNs>,
    outside: NetNs,
    /// Held for its guard: the underlay bridge lives in it.
    _underlay: NetNs,
    computes: Vec<NetNs>,
    vms: Vec<NetNs>,
    uplink: RootVeth,
    underlay_port: RootVeth,
}

impl Network {
    fn build(tag: &str, compute3: Compute3) -> Network {
        let outside = lan::namespace(&format!("{tag}o"));
        let uplink = RootVeth::new(&format!("{tag}up"), &outside, "eth0");
        outside.exec(&["ip", "addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"]);
        outside.exec(&["ip", "route", "add", "default", "via", EDGE_UPLINK]);

        // The underlay: a bridge joining the gateway's underlay port and the compute hosts.
        let underlay = lan::namespace(&format!("{tag}u"));
        let underlay_port = RootVeth::new(&format!("{tag}un"), &underlay, "gw");
        let mut computes = Vec::new();
        for i in 1..=3 {
            let host = lan::namespace(&format!("{tag}c{i}"));
            lan::veth_between(&underlay, &format!("c{i}"), &host, "eth0");
            // Open vSwitch takes compute3's eth0 into its physical bridge, which gets the address.
            if i != 3 || compute3 == Compute3::Played {
                host.exec(&["ip", "addr", "add", &format!("192.168.7.1{i}/24"), "dev", "eth0"]);
            }
            computes.push(host);
        }
        lan::bridge(&underlay, "br0", &["gw", "c1", "c2", "c3"]);

        // vm1 and vm2 behind a Linux VXLAN device on their compute host, as a hypervisor would.
        let mut vms = Vec::new();
        for (i, host) in computes.iter().take(2).enumerate() {
            let (n, key) = (i + 1, TUNNEL_KEYS[i]);
            let local = format!("192.168.7.1{n}");
            let vni = key.to_string();
            host.exec(&[
                "ip",
                "link",
                "add",
                "vx0",
                "type",
                "vxlan",
                "id",
                &vni,
                "local",
                &local,
                "remote",
                GATEWAY_UNDERLAY,
                "dstport",
                "4789",
                "nolearning",
                "dev",
                "eth0",
            ]);
            host.exec(&["ethtool", "-K", "vx0", "tx", "off"]);
            host.exec(&["ip", "link", "set", "vx0", "up"]);
            let vm = lan::namespace(&format!("{tag}v{n}"));
            lan::veth_between(host, "vm", &vm, "eth0");
            host.exec(&["ip", "link", "set", "vm", "mtu", VM_MTU]);
            lan::bridge(host, "br0", &["vx0", "vm"]);
            vm.exec(&["ip", "link", "set", "eth0", "mtu", VM_MTU]);
            vm.exec(&["ip", "addr", "add", &format!("10.0.0.1{n}/24"), "dev", "eth0"]);
            vm.exec(&["ip", "route", "add", "default", "via", "10.0.0.1"]);
            vms.push(vm);
        }
        let (ovs, vm3) = match compute3 {
            Compute3::Played => (None, None),
            Compute3::OpenVswitch => {
                let (ovs, vm3) = open_vswitch_compute3(tag, &computes[2]);
                (Some(ovs), Some(vm3))
            }
        };
        Network { ovs, vm3, outside, _underlay: underlay, computes, vms, uplink, underlay_port }
    }
}

/// The MTU inside the tenant network behind GRE: 1500 on the underlay less MidoNet's 46 bytes for
/// GRE (the gateway's GRE with a key takes 42 of them).
const GRE_VM_MTU: &str = "1454";

/// compute3 as a hypervisor running Open vSwitch's userspace datapath would be set up: `br-phy`
/// holds the underlay interface and the host's address (on its internal port), `br-int` a GRE
/// port toward the gateway with vm3's tunnel key and vm3's interface. Open vSwitch routes and
/// resolves the tunnel's underlay itself, from the namespace's routes and ARP.
fn open_vswitch_compute3(tag: &str, host: &NetNs) -> (OvsHost, NetNs) {
    let ovs = OvsHost::start(host, &std::env::temp_dir().join(format!("midogw-ovs-{tag}")));
    ovs.vsctl(&["add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"]);
    ovs.vsctl(&["add-port", "br-phy", "eth0"]);
    host.exec(&["ip", "addr", "add", &format!("{COMPUTE3}/24"), "dev", "br-phy"]);
    host.exec(&["ip", "link", "set", "br-phy", "up"]);
    let vm3 = lan::namespace(&format!("{tag}v3"));
    lan::veth_between(host, "vm", &vm3, "eth0");
    host.exec(&["ip", "link", "set", "vm", "mtu", GRE_VM_MTU]);
    vm3.exec(&["ip", "link", "set", "eth0", "mtu", GRE_VM_MTU]);
    vm3.exec(&["ip", "addr", "add", &format!("{VM3}/24"), "dev", "eth0"]);
    vm3.exec(&["ip", "route", "add", "default", "via", "10.0.0.1"]);
    let key = format!("options:key={}", TUNNEL_KEYS[2]);
    let remote = format!("options:remote_ip={GATEWAY_UNDERLAY}");
    ovs.vsctl(&["add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"]);
    ovs.vsctl(&["add-port", "br-int", "gre0", "--", "set", "interface", "gre0", "type=gre", &remote, &key]);
    ovs.vsctl(&["add-port", "br-int", "vm"]);
    (ovs, vm3)
}

fn config(dir: &TempDir, tag: &str, net: &Network, rest: SocketAddr) -> std::path::PathBuf {
    let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/gateway_e2e.toml");
    dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwt-e2e-{tag}\"\n\n\
             [[port]]\nname = \"uplink0\"\ndevargs = \"net_af_packet0,iface={}\"\n\n\
             [[port]]\nname = \"underlay0\"\ndevargs = \"net_af_packet1,iface={}\"\n\n\
             [workers]\ncores = [1]\n\n[topology]\nfile = \"{topology}\"\n\n[rest]\nlisten = \"{rest}\"\n\n\
             [store]\npath = \"store.redb\"\n",
            net.uplink.outer, net.underlay_port.outer
        ),
    )
}

/// `ping` inside `ns` with extra arguments; its output (answered or not).
fn ping(ns: &NetNs, args: &[&str], to: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", "-n", "-W", "1"])
        .args(args)
        .arg(to)
        .output()
        .expect("run ping");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Reproducible pseudo-random bytes (xorshift), so a transfer cannot pass by echoing or zeroes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Accepts one connection within `limit`.
fn accept_within(listener: &TcpListener, limit: Duration) -> std::io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
}

/// A TCP connection from `client` to a server in `server` at `addr`: the client sends `request`
/// and closes its side, the server reads all of it, answers `response` and closes. Returns what
/// the server and the client received.
fn tcp_exchange(
    server: &NetNs,
    client: &NetNs,
    addr: SocketAddr,
    request: Vec<u8>,
    response: Vec<u8>,
) -> (Vec<u8>, Vec<u8>) {
    let limit = Duration::from_secs(20);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = server.spawn(move || -> std::io::Result<Vec<u8>> {
        let listener = TcpListener::bind(("0.0.0.0", addr.port()))?;
        ready_tx.send(()).unwrap();
        let mut stream = accept_within(&listener, limit)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got)?;
        stream.write_all(&response)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        Ok(got)
    });
    ready_rx.recv_timeout(limit).expect("the server listens");
    let client = client.spawn(move || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        stream.write_all(&request)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got)?;
        Ok(got)
    });
    let client_got = client.join().unwrap().expect("the client's side of the transfer");
    let server_got = server.join().unwrap().expect("the server's side of the transfer");
    (server_got, client_got)
}

/// Three pings from each namespace to its address answered, through two routers (TTL 64 - 2).
fn pings_cross_two_routers(pairs: &[(&NetNs, &str)]) {
    for &(ns, to) in pairs {
        let (answered, out) = ns.pings(to, 3, &[]);
        assert_eq!(answered, 3, "ping {} -> {to}:\n{out}", ns.name);
        assert!(out.contains("ttl=62"), "two router hops {} -> {to}:\n{out}", ns.name);
    }
}

/// For each (server, client, server address, seed): a TCP connection carrying 1 MiB of seeded
/// bytes each way, checked byte for byte on both sides.
fn mib_each_way(exchanges: &[(&NetNs, &NetNs, String, u64)]) {
    let mib = 1 << 20;
    for (server, client, addr, seed) in exchanges {
        let (request, response) = (pattern(*seed, mib), pattern(seed + 100, mib));
        let (server_got, client_got) =
            tcp_exchange(server, client, addr.parse().unwrap(), request.clone(), response.clone());
        assert!(
            server_got == request,
            "{} -> {addr}: the server got {} bytes, not the request",
            client.name,
            server_got.len()
        );
        assert!(
            client_got == response,
            "{addr} -> {}: the client got {} bytes, not the response",
            client.name,
            client_got.len()
        );
    }
}

/// A UDP datagram of 4000 bytes from `sender`, whose kernel fragments it for its 1450-byte link
/// (path MTU discovery off, so DF is clear), reaches `receiver` at `to` whole: the gateway forwards
/// first and later fragments alike and reassembles nothing (RFC 1812). The first fragment's UDP
/// length counts the whole datagram, which a parser that checks it against the fragment refuses.
fn fragments_pass_whole(sender: &NetNs, receiver: &NetNs, to: &str) {
    const PORT: u16 = 5003;
    let datagram: Vec<u8> = (0..4000).map(|i| (i % 251) as u8).collect();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let received = receiver.spawn(move || -> std::io::Result<Vec<u8>> {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", PORT))?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        ready_tx.send(()).unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = socket.recv_from(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("the receiver listens");
    // IP_MTU_DISCOVER (10) = IP_PMTUDISC_DONT (0): the kernel fragments instead of refusing.
    let script = "import socket, sys, time\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  s.setsockopt(socket.IPPROTO_IP, 10, 0)\n\
                  for _ in range(3):\n    \
                      s.sendto(bytes(i % 251 for i in range(4000)), (sys.argv[1], int(sys.argv[2])))\n    \
                      time.sleep(0.2)\n";
    sender.exec(&["python3", "-c", script, to, &PORT.to_string()]);
    let got = received.join().unwrap().expect("a fragmented datagram arrives whole");
    assert!(got == datagram, "{} -> {to}: {} bytes arrived, not the 4000 sent", sender.name, got.len());
}

/// Sends from `ns`, on a raw socket, a UDP packet to `to` whose IPv4 options cannot be walked (three
/// NOPs, then a loose source route type without its length byte) and waits for the ICMP parameter
/// problem (sent up to three times, in case the gateway's ICMP error budget is spent): its source,
/// type, code, pointer and the quoted IP header in hex, space-separated. The kernel fills in the
/// source address, total length and header checksum of what a raw IPPROTO_RAW socket sends.
fn parameter_problem_for_bad_options(ns: &NetNs, to: &str) -> String {
    let script = "import socket, struct, sys\n\
                  dst = socket.inet_aton(sys.argv[1])\n\
                  ip = struct.pack('!BBHHHBBH4s4s', 0x46, 0, 32, 7, 0, 64, 17, 0, bytes(4), dst) + bytes([1, 1, 1, 131])\n\
                  udp = struct.pack('!HHHH', 40000, 9, 8, 0)\n\
                  icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n\
                  icmp.settimeout(2)\n\
                  raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n\
                  for _ in range(3):\n    \
                      raw.sendto(ip + udp, (sys.argv[1], 0))\n    \
                      try:\n        \
                          while True:\n            \
                              data, addr = icmp.recvfrom(2048)\n            \
                              at = (data[0] & 15) * 4\n            \
                              if data[at] == 12:\n                \
                                  print(addr[0], data[at], data[at + 1], data[at + 4], data[at + 8:at + 8 + 24].hex())\n                \
                                  sys.exit(0)\n    \
                      except socket.timeout:\n        \
                          pass\n\
                  print('no parameter problem came back')\n";
    ns.exec(&["python3", "-c", script, to]).trim().to_string()
}

/// The hop addresses `traceroute -n` printed, `*` for a hop without an answer.
fn traceroute_hops(output: &str) -> Vec<String> {
    output.lines().skip(1).filter_map(|line| line.split_whitespace().nth(1).map(str::to_string)).collect()
}

/// The internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(addr: &str) -> [u8; 4] {
    addr.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// vm3 asks for its default gateway: the bridge learns its MAC on port vm3, the tenant router
/// its address (a request for the router's own address, RFC 826), and answers through the tunnel.
fn vm3_asks_for_its_gateway() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&VM3_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&VM3_MAC);
    f.extend_from_slice(&ipv4(VM3));
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ipv4(TENANT_GATEWAY));
    f
}

/// An ICMP echo request from vm3 to the outside host, addressed to the tenant router's MAC.
fn vm3_echo_request(ident: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&1u16.to_be_bytes());
    icmp.extend_from_slice(payload);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&ipv4(VM3));
    ip.extend_from_slice(&ipv4(OUTSIDE));
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&TENANT_NET_MAC);
    f.extend_from_slice(&VM3_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// RFC 2784/2890 GRE with a key (no checksum, no sequence number) carrying an Ethernet frame.
fn gre(key: u32, inner: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x20, 0x00, 0x65, 0x58];
    packet.extend_from_slice(&key.to_be_bytes());
    packet.extend_from_slice(inner);
    packet
}

/// Sends GRE payloads from `ns` to `to` on a raw IPPROTO_GRE socket (the kernel adds the IPv4
/// header and resolves the next hop).
fn send_gre(ns: &NetNs, to: &str, packets: &[Vec<u8>]) {
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)\n\
                  for h in sys.argv[2:]:\n    s.sendto(bytes.fromhex(h), (sys.argv[1], 0))\n";
    let hex: Vec<String> = packets.iter().map(|p| p.iter().map(|b| format!("{b:02x}")).collect()).collect();
    let mut args = vec!["python3", "-c", script, to];
    args.extend(hex.iter().map(String::as_str));
    ns.exec(&args);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// EAL's runtime directory of the appliance: a clean stop removes it; the guard removes what a
/// failed (killed) run left behind.
struct RuntimeDir(std::path::PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn drops(pipeline: &Value, reason: &str) -> u64 {
    pipeline["drops"][reason].as_u64().unwrap_or(0)
}

/// The network and `midogw run` on it, torn down in the right order: the appliance first (killed
/// if the test failed before stopping it), then its files, then the namespaces.
struct Gateway {
    appliance: Option<Appliance>,
    runtime_dir: RuntimeDir,
    dir: TempDir,
    net: Network,
}

impl Gateway {
    /// Builds the network with names starting with `prefix` and the test's pid, and starts midogw.
    fn start(prefix: &str) -> Gateway {
        Gateway::start_with(prefix, Compute3::Played)
    }

    fn start_with(prefix: &str, compute3: Compute3) -> Gateway {
        let tag = format!("{prefix}{}", std::process::id());
        let net = Network::build(&tag, compute3);
        let dir = TempDir::new(&format!("{prefix}-e2e"));
        let rest = free_addr();
        let config = config(&dir, &tag, &net, rest);
        let runtime_dir = RuntimeDir(std::path::Path::new("/var/run/dpdk").join(format!("mgwt-e2e-{tag}")));
        let appliance = Appliance::start(&config, &dir.0.join("stats.json"), rest, true);
        Gateway { appliance: Some(appliance), runtime_dir, dir, net }
    }

    /// Stops midogw cleanly and returns its report.
    fn stop(&mut self) -> Value {
        let report = self.appliance.take().expect("running").stop();
        let runtime = &self.runtime_dir.0;
        assert!(!runtime.exists(), "a clean stop removes EAL's runtime directory {}", runtime.display());
        report
    }
}

#[test]
fn gateway_routes_bridges_tunnels_and_filters_between_real_hosts() {
    let started = Instant::now();
    let mut gateway = Gateway::start("ge");
    let (net, dir) = (&gateway.net, &gateway.dir);
    let (outside, vm1, vm2, compute3) = (&net.outside, &net.vms[0], &net.vms[1], &net.computes[2]);

    // The first packets wait for ARP on three networks (uplink, underlay, tenant) and the bridge's
    // flooding; once an answer came back, every later step must work at once.
    assert!(ping_works(outside, VM1, Duration::from_secs(10)), "outside never reached vm1");
    assert!(ping_works(vm2, OUTSIDE, Duration::from_secs(10)), "vm2 never reached outside");

    // 1. Pings both ways (two routers between outside and the VMs: TTL 64 - 2), and 1 MiB each
    //    way over TCP connections opened from either side.
    pings_cross_two_routers(&[(outside, VM1), (outside, VM2), (vm1, OUTSIDE), (vm2, OUTSIDE)]);
    //    A compute host pings the gateway's tunnel endpoint (RFC 1122 3.2.2.6: a host answers echo).
    let (answered, out) = net.computes[0].pings(GATEWAY_UNDERLAY, 2, &[]);
    assert_eq!(answered, 2, "compute1 -> the gateway's underlay address:\n{out}");
    mib_each_way(&[(vm1, outside, format!("{VM1}:5001"), 1), (outside, vm2, format!("{OUTSIDE}:5002"), 2)]);

    // 2. traceroute names the port of each router the probe entered, then the VM.
    let out = outside.exec(&["traceroute", "-n", "-I", "-q", "1", "-w", "2", "-m", "6", VM1]);
    assert_eq!(traceroute_hops(&out), [EDGE_UPLINK, TENANT_UP, VM1], "traceroute:\n{out}");
    //    With UDP probes to a router's own address, the last hop is its port unreachable.
    let out = outside.exec(&["traceroute", "-n", "-q", "1", "-w", "2", "-m", "6", TENANT_GATEWAY]);
    assert_eq!(traceroute_hops(&out), [EDGE_UPLINK, TENANT_GATEWAY], "UDP traceroute:\n{out}");

    // 3. The gateway never fragments: 1500 bytes with DF do not fit into VXLAN on a 1500-byte
    //    underlay and get "fragmentation needed" with the room left (1450); 1450 bytes pass.
    let out = ping(outside, &["-c", "1", "-M", "do", "-s", "1472"], VM1);
    assert!(out.contains("Frag needed and DF set (mtu = 1450)"), "oversized DF ping:\n{out}");
    let (answered, out) = outside.pings(VM1, 2, &["-M", "do", "-s", "1422"]);
    assert_eq!(answered, 2, "a 1450-byte ping fits:\n{out}");
    let (answered, out) = vm1.pings(OUTSIDE, 2, &["-M", "do", "-s", "1422"]);
    assert_eq!(answered, 2, "a 1450-byte ping from the VM fits:\n{out}");
    fragments_pass_whole(vm1, outside, OUTSIDE);

    // 4. A blackhole route: no answer and no ICMP error (ping would print "From ..."). A reject
    //    route: ICMP communication administratively prohibited (ping: "Packet filtered") from
    //    the edge router's uplink address (flowtable/src/topology/route.rs).
    let out = ping(outside, &["-c", "2", "-i", "0.3"], "198.51.100.7");
    assert!(out.contains(" 0 received") && !out.contains("From "), "blackhole route:\n{out}");
    let out = ping(outside, &["-c", "1"], "192.0.2.7");
    assert!(out.contains(&format!("From {EDGE_UPLINK} icmp_seq=1 Packet filtered")), "reject route:\n{out}");

    // 4b. A header the router cannot process (IPv4 options that cannot be walked), crafted on a raw
    //     socket: the edge router answers an ICMP parameter problem whose pointer is the option.
    let answer = parameter_problem_for_bad_options(outside, VM1);
    let fields: Vec<&str> = answer.split_whitespace().collect();
    assert_eq!(fields.get(..4), Some(&[EDGE_UPLINK, "12", "0", "23"][..]), "source, type, code, pointer: {answer}");
    // Version and IHL 6, length 32, ident 7, TTL 64, UDP ... the options as sent.
    assert!(fields[4].starts_with("46000020000700004011") && fields[4].ends_with("01010183"), "quoted: {answer}");

    // 5. The tenant router's infilter drops SSH from outside; another port of the same VM works.
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listeners = vm1.spawn({
        let stop = Arc::clone(&stop);
        move || -> std::io::Result<[usize; 2]> {
            let ssh = TcpListener::bind(("0.0.0.0", 22))?;
            let other = TcpListener::bind(("0.0.0.0", 2222))?;
            ssh.set_nonblocking(true)?;
            other.set_nonblocking(true)?;
            ready_tx.send(()).unwrap();
            let mut accepted = [0; 2];
            while !stop.load(Ordering::Relaxed) {
                for (i, listener) in [&ssh, &other].into_iter().enumerate() {
                    let Ok((mut stream, _)) = listener.accept() else { continue };
                    accepted[i] += 1;
                    // Only the allowed port echoes; an SSH connection that got through is counted.
                    if i == 1 {
                        stream.set_nonblocking(false)?;
                        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                        let mut line = [0u8; 5];
                        stream.read_exact(&mut line)?;
                        stream.write_all(&line)?;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(accepted)
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("vm1 listens");
    let connects = outside.spawn(|| {
        let ssh = TcpStream::connect_timeout(&format!("{VM1}:22").parse().unwrap(), Duration::from_secs(2));
        let echo = (|| -> std::io::Result<[u8; 5]> {
            // Allowed: it must connect, so a generous bound (SSH's 2 s only show it does not).
            let mut other =
                TcpStream::connect_timeout(&format!("{VM1}:2222").parse().unwrap(), Duration::from_secs(10))?;
            other.set_read_timeout(Some(Duration::from_secs(5)))?;
            other.write_all(b"hello")?;
            let mut echo = [0u8; 5];
            other.read_exact(&mut echo)?;
            Ok(echo)
        })();
        (ssh.map(|_| ()).map_err(|e| e.kind()), echo.map_err(|e| e.to_string()))
    });
    let (ssh, echo) = connects.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let accepted = listeners.join().unwrap();
    assert_eq!(ssh, Err(ErrorKind::TimedOut), "SSH from outside is dropped silently (no RST, no ICMP)");
    assert_eq!(echo, Ok(*b"hello"), "port 2222 answers");
    let accepted = accepted.expect("vm1's listeners");
    assert_eq!(accepted, [0, 1], "vm1 saw no SSH connection and one on 2222");

    // 6. GRE toward compute3, which the test plays: vm3 asks for its gateway and pings outside from
    //    inside GRE; the gateway must deliver that, and send the answer, an outside ping to vm3
    //    and a largest-fitting one (1500 - 46 = 1454 bytes) to compute3 in GRE with key 0x103.
    let capture = Capture::start(
        compute3,
        "eth0",
        &format!("ip proto 47 and src host {GATEWAY_UNDERLAY}"),
        &dir.0.join("gre.pcap"),
    );
    let payload = b"midogw end-to-end GRE probe".to_vec();
    let ident = 0x4d47;
    send_gre(
        compute3,
        GATEWAY_UNDERLAY,
        &[gre(TUNNEL_KEYS[2], &vm3_asks_for_its_gateway()), gre(TUNNEL_KEYS[2], &vm3_echo_request(ident, &payload))],
    );
    // Refused: a key no port has, and vm1's key from the wrong host (vm1 is bound on compute1).
    let (unknown_key_ident, wrong_host_ident) = (ident + 1, ident + 2);
    send_gre(
        compute3,
        GATEWAY_UNDERLAY,
        &[
            gre(0x999, &vm3_echo_request(unknown_key_ident, &payload)),
            gre(TUNNEL_KEYS[0], &vm3_echo_request(wrong_host_ident, &payload)),
        ],
    );
    // Once the gateway has answered vm3's ping (the outside's reply, in GRE to compute3), it has
    // taken in vm3's ARP request before it and knows vm3: the pings to vm3 below go to its MAC.
    let answered_vm3 = |row: &Vec<String>| {
        let inner = |i: usize| row[i].split(',').nth(1).unwrap_or("").to_string();
        row[0] == "0" && inner(1) == OUTSIDE && inner(2) == VM3
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lan::tshark_fields_so_far(&capture.file, &["icmp.type", "ip.src", "ip.dst"]).iter().any(answered_vm3) {
        assert!(Instant::now() < deadline, "the gateway never answered vm3's ping in GRE");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ping(outside, &["-c", "1", "-s", "40", "-p", "5a"], VM3);
    assert!(out.contains(" 0 received"), "compute3 cannot terminate GRE, vm3 does not answer:\n{out}");
    let out = ping(outside, &["-c", "1", "-M", "do", "-s", "1472"], VM3);
    assert!(out.contains("Frag needed and DF set (mtu = 1454)"), "GRE leaves 1454 bytes:\n{out}");
    ping(outside, &["-c", "1", "-M", "do", "-s", "1426"], VM3);
    let file = capture.finish();

    let fields = [
        "eth.src",
        "eth.dst",
        "ip.src",
        "ip.dst",
        "ip.proto",
        "ip.flags.df",
        "ip.ttl",
        "ip.checksum.status",
        "ip.len",
        "gre.flags.checksum",
        "gre.flags.routing",
        "gre.flags.key",
        "gre.flags.sequence_number",
        "gre.flags.version",
        "gre.proto",
        "gre.key",
        "icmp.type",
        "icmp.ident",
        "icmp.seq",
        "icmp.checksum.status",
        "data.data",
    ];
    let column = |name: &str| fields.iter().position(|f| *f == name).unwrap();
    let rows = lan::tshark_fields(&file, &fields);
    let underlay_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", net.underlay_port.outer)).unwrap();
    let compute3_mac = compute3.exec(&["cat", "/sys/class/net/eth0/address"]);
    let expected_outer = [
        ("eth.src", underlay_mac.trim().to_string()),
        ("eth.dst", compute3_mac.trim().to_string()),
        ("ip.src", GATEWAY_UNDERLAY.to_string()),
        ("ip.dst", COMPUTE3.to_string()),
        ("ip.proto", "47".into()),
        ("ip.flags.df", "1".into()),
        ("ip.ttl", "255".into()),
        ("ip.checksum.status", "1".into()),
        ("gre.flags.checksum", "0".into()),
        ("gre.flags.routing", "0".into()),
        ("gre.flags.key", "1".into()),
        ("gre.flags.sequence_number", "0".into()),
        ("gre.flags.version", "0".into()),
        ("gre.proto", "0x6558".into()),
        ("gre.key", format!("0x{:08x}", TUNNEL_KEYS[2])),
    ];
    let first = |row: &[String], name: &str| row[column(name)].split(',').next().unwrap_or("").to_string();
    let inner = |row: &[String], name: &str| row[column(name)].split(',').nth(1).unwrap_or("").to_string();
    for row in &rows {
        for (name, want) in &expected_outer {
            assert_eq!(&first(row, name), want, "outer {name} of a GRE packet from the gateway: {row:?}");
        }
    }
    let is_echo = |row: &&Vec<String>, kind: &str, src: &str, dst: &str| {
        row[column("icmp.type")] == kind && inner(row, "ip.src") == src && inner(row, "ip.dst") == dst
    };
    let reply = rows
        .iter()
        .find(|r| is_echo(r, "0", OUTSIDE, VM3))
        .unwrap_or_else(|| panic!("no echo reply to vm3 in {rows:?}"));
    assert_eq!(inner(reply, "eth.src"), mac_text(&TENANT_NET_MAC), "{reply:?}");
    assert_eq!(inner(reply, "eth.dst"), mac_text(&VM3_MAC), "{reply:?}");
    assert_eq!(inner(reply, "ip.ttl"), "62", "{reply:?}");
    assert_eq!(reply[column("icmp.ident")], ident.to_string(), "{reply:?}");
    assert_eq!(reply[column("icmp.seq")], "1", "{reply:?}");
    assert_eq!(reply[column("data.data")], hex(&payload), "{reply:?}");
    assert_eq!(reply[column("icmp.checksum.status")], "1", "{reply:?}");
    let requests: Vec<_> = rows.iter().filter(|r| is_echo(r, "8", OUTSIDE, VM3)).collect();
    assert_eq!(requests.len(), 2, "the 40-byte and the 1454-byte ping to vm3, not the oversized one: {rows:?}");
    for (request, inner_len) in requests.iter().zip(["68", "1454"]) {
        assert_eq!(inner(request, "eth.dst"), mac_text(&VM3_MAC), "{request:?}");
        assert_eq!(inner(request, "ip.ttl"), "62", "{request:?}");
        assert_eq!(inner(request, "ip.len"), inner_len, "{request:?}");
        assert_eq!(request[column("icmp.checksum.status")], "1", "{request:?}");
    }
    assert!(requests[0][column("data.data")].ends_with(&"5a".repeat(24)), "the ping's pattern: {:?}", requests[0]);
    // MidoNet reserves 46 bytes for GRE; the gateway's GRE with a key takes 42 of them.
    assert_eq!(first(requests[1], "ip.len"), "1496", "the largest packet, 1454 + 42 outside: {:?}", requests[1]);
    for refused in [unknown_key_ident, wrong_host_ident] {
        let answered = rows.iter().any(|r| r[column("icmp.ident")] == refused.to_string());
        assert!(!answered, "the GRE packet with ident {refused} was refused, nothing answered it: {rows:?}");
    }

    // 7. The report: the flow cache served the steady flows; every drop provoked is counted.
    let report = gateway.stop();
    let pipeline = &report["pipelines"][0];
    assert!(pipeline["cache_hits"].as_u64().unwrap() > 0, "{pipeline}");
    assert!(drops(pipeline, "too_big") >= 2, "the oversized pings to vm1 and vm3: {pipeline}");
    assert!(drops(pipeline, "blackhole") >= 2, "{pipeline}");
    assert!(drops(pipeline, "reject_route") >= 1, "{pipeline}");
    assert!(drops(pipeline, "rule_drop") >= 1, "the SSH SYNs: {pipeline}");
    assert!(drops(pipeline, "ipv4_bad_options") >= 1, "the crafted header: {pipeline}");
    assert!(drops(pipeline, "port_unreachable") >= 1, "the UDP traceroute's last probe: {pipeline}");
    assert!(drops(pipeline, "ttl_expired") >= 2, "traceroute's probes at the two routers: {pipeline}");
    assert_eq!(drops(pipeline, "unknown_tunnel_key"), 1, "{pipeline}");
    assert_eq!(drops(pipeline, "tunnel_host_mismatch"), 1, "{pipeline}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(90), "the test took {elapsed:?}");
}

/// On a gateway that has resolved nothing yet, the first packet toward a VM needs three answers
/// in a row: the VM's MAC (the tenant router's ARP request, flooded into the tunnels), for which
/// each tunnel needs its compute host's MAC on the underlay. Like Linux's neighbour queue (and
/// MidoNet, whose simulation waits for ARP), the gateway must hold the packet until then instead of
/// losing it: a single ping is answered. It waits 10 s, well beyond the gateway's 3-second hold
/// timeout (a packet held longer is dropped, never answered), so a slow machine is no failure.
#[test]
fn the_first_packet_to_a_vm_is_held_until_the_underlay_and_the_vm_are_resolved() {
    let mut gateway = Gateway::start("gf");
    let out = ping(&gateway.net.outside, &["-c", "1", "-W", "10"], VM1);
    let report = gateway.stop();
    let pipeline = &report["pipelines"][0];
    assert!(out.contains(" 1 received"), "the first ping to vm1 was lost:\n{out}\n{pipeline}");
    assert_eq!(drops(pipeline, "hold_timeout"), 0, "{pipeline}");
}

/// GRE against a real implementation: compute3 runs Open vSwitch's userspace datapath, which
/// encapsulates vm3's frames toward the gateway with vm3's key and decapsulates the gateway's. Pings
/// and 1 MiB over TCP pass both ways through both routers, the largest packet that fits (1454
/// bytes inside: MidoNet's 46 bytes for GRE) passes both ways and one byte more gets
/// "fragmentation needed";
/// Open vSwitch's datapath shows it pushed and popped GRE with key 0x103, and the gateway refused
/// nothing of what it sent.
#[test]
fn gre_tunnels_interoperate_with_open_vswitch() {
    let mut gateway = Gateway::start_with("gv", Compute3::OpenVswitch);
    let net = &gateway.net;
    let (outside, vm3, ovs) = (&net.outside, net.vm3.as_ref().unwrap(), net.ovs.as_ref().unwrap());

    assert!(ping_works(outside, VM3, Duration::from_secs(15)), "outside never reached vm3:\n{}", ovs.logs());
    pings_cross_two_routers(&[(outside, VM3), (vm3, OUTSIDE)]);
    mib_each_way(&[(vm3, outside, format!("{VM3}:5003"), 3), (outside, vm3, format!("{OUTSIDE}:5004"), 4)]);

    // 1454 bytes inside (1426 of ICMP data) fit in either direction.
    for (ns, to) in [(outside, VM3), (vm3, OUTSIDE)] {
        let (answered, out) = ns.pings(to, 2, &["-M", "do", "-s", "1426"]);
        assert_eq!(answered, 2, "a 1454-byte ping {} -> {to} fits:\n{out}", ns.name);
    }
    let out = ping(outside, &["-c", "1", "-M", "do", "-s", "1427"], VM3);
    assert!(out.contains("Frag needed and DF set (mtu = 1454)"), "GRE leaves 1454 bytes:\n{out}");

    // Open vSwitch's datapath: GRE with vm3's key pushed toward the gateway and popped from it.
    let flows = ovs.appctl(&["dpctl/dump-flows", "-m"]);
    let key = format!("key={:#x}", TUNNEL_KEYS[2]);
    let pushed = flows.lines().any(|f| f.contains("tnl_push(") && f.contains("gre(") && f.contains(&key));
    assert!(pushed, "no GRE push with {key} toward the gateway in Open vSwitch's datapath:\n{flows}");
    let popped =
        flows.lines().any(|f| f.contains(&format!("tun_id={:#x}", TUNNEL_KEYS[2])) && f.contains("src=192.168.7.1,"));
    assert!(popped, "no GRE from the gateway with {key} decapsulated by Open vSwitch:\n{flows}");

    let report = gateway.stop();
    let pipeline = &report["pipelines"][0];
    assert!(pipeline["cache_hits"].as_u64().unwrap() > 0, "{pipeline}");
    for refused in ["unknown_tunnel_key", "tunnel_host_mismatch", "tunnel_malformed", "malformed"] {
        assert_eq!(drops(pipeline, refused), 0, "{refused}: {pipeline}");
    }
}
