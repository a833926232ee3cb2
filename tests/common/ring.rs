//! The `net_ring` pipeline tests' shared pieces: a host at the far end of a ring port (send a
//! frame, receive what the appliance sends), frame builders both directions need, and checks.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use midogw::flowtable::flow::FlowCacheConfig;
use midogw::flowtable::sim::CoreConfig;
use midogw::flowtable::topology::{Snapshot, SnapshotBuilder, Uuid};
use midogw::flowtable::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Headers, IpProtocol,
    Ipv4Packet, Ipv4Repr, PseudoHeader, UdpPacket, UdpRepr,
};
use midogw::{
    pipeline_plans, run_pipeline, Burst, Eal, Mempool, PipelineConfig, PipelineCounters, Port, PortConfig, Ring,
    RxQueue, SnapshotExchange, TxQueue,
};

/// A worker of 1 Ki flows whose neighbours live `lifetime_ns` (stale after three quarters of it,
/// then polled every twentieth), its flows as long: for the neighbour polling tests.
pub fn short_lived_neighbours(lifetime_ns: u64) -> PipelineConfig {
    let core = CoreConfig { neighbour_lifetime: lifetime_ns, ..CoreConfig::default() };
    PipelineConfig {
        flow_cache: FlowCacheConfig { capacity: 1024, hard_timeout: lifetime_ns, ..FlowCacheConfig::default() },
        core,
        ..PipelineConfig::default()
    }
}

pub fn eth(f: &mut [u8], src: EthernetAddress, dst: EthernetAddress, ty: EtherType) {
    EthernetRepr { src_addr: src, dst_addr: dst, vlan: None, ethertype: ty }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
}

pub fn arp(op: ArpOperation, src_mac: EthernetAddress, dst_mac: EthernetAddress, spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    eth(&mut f, src_mac, dst_mac, EtherType::Arp);
    let tha = if op == ArpOperation::Request { EthernetAddress([0; 6]) } else { dst_mac };
    ArpRepr {
        operation: op,
        source_hardware_addr: src_mac,
        source_protocol_addr: ip(spa),
        target_hardware_addr: tha,
        target_protocol_addr: ip(tpa),
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// IPv4/UDP (TTL `ttl`, DF, ident 7, to UDP port 4000) from `src` to `dst` with `payload` bytes
/// of 0x5a, checksums right.
pub fn udp_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: &str,
    dst: &str,
    sport: u16,
    ttl: u8,
    payload: usize,
) -> Vec<u8> {
    udp_frame_ports(src_mac, dst_mac, src, dst, (sport, 4000), ttl, payload)
}

/// [`udp_frame`] with both UDP ports given (`(source, destination)`).
pub fn udp_frame_ports(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: &str,
    dst: &str,
    (sport, dport): (u16, u16),
    ttl: u8,
    payload: usize,
) -> Vec<u8> {
    let (src, dst) = (ip(src), ip(dst));
    let mut f = vec![0x5au8; 14 + 20 + 8 + payload];
    eth(&mut f, src_mac, dst_mac, EtherType::Ipv4);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload,
        ttl,
        tos: 0,
        ident: 7,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    UdpRepr { src_port: sport, dst_port: dport }.emit(&mut u, payload);
    u.fill_checksum(&PseudoHeader::V4 { src, dst });
    f
}

/// A compute host's tunnelled packet from `src` to `dst`: Ethernet, IPv4 (`protocol`, TTL 64, DF,
/// ident 0), `tunnel_header` (zeros, for the caller to fill), then `inner`.
fn tunnel_frame(
    (src_mac, dst_mac): (EthernetAddress, EthernetAddress),
    (src, dst): (&str, &str),
    protocol: IpProtocol,
    tunnel_header: usize,
    inner: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 34 + tunnel_header];
    eth(&mut f, src_mac, dst_mac, EtherType::Ipv4);
    Ipv4Repr {
        src_addr: ip(src),
        dst_addr: ip(dst),
        protocol,
        payload_len: tunnel_header + inner.len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]));
    f.extend_from_slice(inner);
    f
}

/// A compute host's VXLAN packet (UDP 51000 -> 4789, VNI `vni`, outer TTL 64, DF) from `src` to
/// `dst` carrying `inner`.
pub fn vxlan_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: &str,
    dst: &str,
    vni: u32,
    inner: &[u8],
) -> Vec<u8> {
    let mut f = tunnel_frame((src_mac, dst_mac), (src, dst), IpProtocol::Udp, 16, inner);
    f[34..36].copy_from_slice(&51000u16.to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
    f[42] = 0x08;
    f[46..49].copy_from_slice(&vni.to_be_bytes()[1..]);
    f
}

/// A compute host's GRE packet (key `key`, protocol 0x6558: Ethernet inside, outer TTL 64, DF)
/// from `src` to `dst` carrying `inner`.
pub fn gre_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: &str,
    dst: &str,
    key: u32,
    inner: &[u8],
) -> Vec<u8> {
    let mut f = tunnel_frame((src_mac, dst_mac), (src, dst), IpProtocol::Gre, 8, inner);
    f[34..38].copy_from_slice(&[0x20, 0x00, 0x65, 0x58]);
    f[38..42].copy_from_slice(&key.to_be_bytes());
    f
}

/// Router R's port A (10.1.0.1/24) and host A (10.1.0.2) behind it.
pub const MAC_RA: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x01, 0x01]);
/// Router R's port B (10.2.0.1/24).
pub const MAC_RB: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0x02, 0x01]);
/// Host A, 10.1.0.2.
pub const MAC_HA: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 2]);
/// Host B, 10.2.0.2.
pub const MAC_HB: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 2]);

/// One router with two exterior ports: A (10.1.0.1/24, [`MAC_RA`]) on DPDK port `dpdk_a`, B
/// (10.2.0.1/24, [`MAC_RB`]) on `dpdk_b`.
pub fn two_port_router(dpdk_a: u16, dpdk_b: u16) -> Snapshot {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let pa = b.add_router_port(r, Uuid(10), MAC_RA, &["10.1.0.1/24".parse().unwrap(), "fd00:1::1/64".parse().unwrap()]);
    let pb = b.add_router_port(r, Uuid(11), MAC_RB, &["10.2.0.1/24".parse().unwrap()]);
    b.bind_local(pa, dpdk_a);
    b.bind_local(pb, dpdk_b);
    b.build().expect("valid topology")
}

/// Parses `frame` and checks every checksum in it.
pub fn valid(frame: &[u8]) -> Headers {
    let h = Headers::parse(frame).expect("parses");
    h.verify_checksums(frame).expect("checksums");
    h
}

/// A frame received in an mbuf: [`Host::recv_mbufs`].
#[derive(Debug)]
pub struct ReceivedMbuf {
    pub data: Vec<u8>,
    pub pkt_len: u32,
    pub headroom: u16,
}

pub struct Host<'p> {
    pub pool: &'p Mempool<'p>,
    pub tx: TxQueue<'p>,
    pub rx: RxQueue<'p>,
}

impl Host<'_> {
    pub fn send(&mut self, frame: &[u8]) {
        let mut b = Burst::new();
        let mut m = self.pool.alloc().expect("mbuf");
        m.append(frame.len() as u16).expect("room").copy_from_slice(frame);
        b.push(m).expect("room");
        assert_eq!(self.tx.tx(&mut b), 1);
    }

    /// Sends `frames` in one TX call, so that the worker finds them in its ring together and
    /// handles them as one burst.
    pub fn send_burst(&mut self, frames: &[Vec<u8>]) {
        let mut b = Burst::new();
        for frame in frames {
            let mut m = self.pool.alloc().expect("mbuf");
            m.append(frame.len() as u16).expect("room").copy_from_slice(frame);
            b.push(m).expect("room");
        }
        assert_eq!(self.tx.tx(&mut b), frames.len());
    }

    /// Waits up to [`ARRIVAL_LIMIT`] for `n` frames; returns what arrived (more than `n` only if
    /// they came together).
    pub fn recv(&mut self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            let mut b = Burst::new();
            self.rx.rx(&mut b);
            got.extend((0..b.len()).map(|i| b.data(i).to_vec()));
        }
        got
    }

    /// [`Host::recv`], each frame as its mbuf says: its bytes (`data_len` of them), `pkt_len`
    /// and headroom (`data_off`), for a test of what the worker did to the mbuf itself.
    pub fn recv_mbufs(&mut self, n: usize) -> Vec<ReceivedMbuf> {
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            let mut b = Burst::new();
            self.rx.rx(&mut b);
            b.drain(|m| {
                got.push(ReceivedMbuf { data: m.data().to_vec(), pkt_len: m.pkt_len(), headroom: m.headroom() })
            });
        }
        got
    }

    /// Receives until `done` holds of what arrived (at most [`ARRIVAL_LIMIT`]), then listens
    /// [`QUIET`] more for frames that should not come: everything that arrived, for a test that
    /// checks what did and what did not (a fixed window alone fails when the worker is late, not
    /// wrong).
    pub fn recv_until(&mut self, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        let mut got = Vec::new();
        while !done(&got) && Instant::now() < deadline {
            let mut b = Burst::new();
            self.rx.rx(&mut b);
            got.extend((0..b.len()).map(|i| b.data(i).to_vec()));
        }
        got.extend(self.recv_for(QUIET));
        got
    }

    /// [`Host::recv_until`] `n` frames arrived: for a test that checks exactly `n` did.
    pub fn recv_all(&mut self, n: usize) -> Vec<Vec<u8>> {
        self.recv_until(|got| got.len() >= n)
    }

    /// Nothing arrives within [`QUIET`].
    pub fn silent(&mut self) {
        let got = self.recv_for(QUIET);
        assert!(got.is_empty(), "unexpected frames: {got:02x?}");
    }

    pub fn recv_for(&mut self, d: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let mut b = Burst::new();
            self.rx.rx(&mut b);
            got.extend((0..b.len()).map(|i| b.data(i).to_vec()));
        }
        got
    }
}

pub fn config(name: &str) -> PortConfig {
    PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 }
}

pub fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// How long a host waits for what the worker should send, or for its counters: the worker takes
/// microseconds, but its lcore is shared on a loaded 2-CPU machine (other tests' workers, the
/// hosts' own busy polling), and a wait that ends early fails a test that is not wrong.
pub const ARRIVAL_LIMIT: Duration = Duration::from_secs(10);

/// How long a host listens to show that nothing (more) arrives.
pub const QUIET: Duration = Duration::from_millis(200);

/// Waits until the worker's published counters satisfy `settled`, at most [`ARRIVAL_LIMIT`]. It
/// publishes them on its first idle loop turn after traffic (pmd/pipeline.rs), microseconds after
/// its last transmit, which a test that has just received that transmit can still beat, by any
/// time when the lcore is shared; a test whose frames draw no answer has nothing to receive at
/// all. `settled` names the values the assertions after it check: those say what is wrong when
/// the deadline passes.
pub fn published(settled: impl Fn() -> bool) {
    let deadline = Instant::now() + ARRIVAL_LIMIT;
    while !settled() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Brings up EAL, two appliance ports on `net_ring`s with a host at the far end of each, the
/// topology `snapshot(port A id, port B id)` and one pipeline worker configured by `pipeline`; runs
/// `body`, stops the worker and checks nothing was refused and every mbuf went back to the pool.
/// Returns the worker's counters as it left them.
pub fn with_two_ports(
    tag: &str,
    snapshot: impl FnOnce(u16, u16) -> Snapshot,
    pipeline: &PipelineConfig,
    body: impl FnOnce(&mut Host<'_>, &mut Host<'_>, &PipelineCounters),
) -> std::sync::Arc<PipelineCounters> {
    let eal = Eal::init(&super::test_eal_config(tag, 256)).expect("EAL");
    let pool = Mempool::new(&eal, &format!("{tag}pool"), 2047).expect("pool");
    let rings: Vec<Ring<'_>> = (0..4).map(|i| Ring::new(&eal, &format!("{tag}w{i}"), 1024).unwrap()).collect();
    let appliance = [
        Port::from_rings(&eal, &pool, &rings[0], &rings[1], &config("rA")).unwrap(),
        Port::from_rings(&eal, &pool, &rings[2], &rings[3], &config("rB")).unwrap(),
    ];
    let host_a = Port::from_rings(&eal, &pool, &rings[1], &rings[0], &config("hA")).unwrap();
    let host_b = Port::from_rings(&eal, &pool, &rings[3], &rings[2], &config("hB")).unwrap();
    let exchange = SnapshotExchange::new(snapshot(appliance[0].id(), appliance[1].id()), 1);
    let (mut a_rx, mut a_tx) = host_a.take_queues().unwrap();
    let (mut b_rx, mut b_tx) = host_b.take_queues().unwrap();
    let mut ha = Host { pool: &pool, tx: a_tx.remove(0), rx: a_rx.remove(0) };
    let mut hb = Host { pool: &pool, tx: b_tx.remove(0), rx: b_rx.remove(0) };

    let mut plans = pipeline_plans(&appliance, 1).unwrap();
    let plan = plans.remove(0);
    // The emptied list goes now: its type borrows the ports, which are dropped before the end.
    drop(plans);
    let counters = plan.counters();
    let stop = AtomicBool::new(false);
    eal.scope(|s| {
        s.launch(1, || run_pipeline(plan, &exchange, &pool, pipeline, &stop)).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut ha, &mut hb, &counters)));
        stop.store(true, Ordering::Relaxed);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    })
    .expect("worker exits cleanly");
    assert_eq!(counters.tx_full_drops.load(Ordering::Relaxed), 0);
    assert_eq!(counters.alloc_failures.load(Ordering::Relaxed), 0);
    drop((ha, hb, a_rx, a_tx, b_rx, b_tx));
    drop((appliance, host_a, host_b));
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
    counters
}

/// A host at the far end of a ring port with a ring per queue: it chooses the queue (and so the
/// worker) a frame arrives on, and reads what any of the appliance's TX queues sent.
pub struct QueuedHost<'p> {
    pub pool: &'p Mempool<'p>,
    pub tx: Vec<TxQueue<'p>>,
    pub rx: Vec<RxQueue<'p>>,
}

impl QueuedHost<'_> {
    /// Sends `frame` into the appliance's RX queue `queue`.
    pub fn send_to(&mut self, queue: usize, frame: &[u8]) {
        let mut b = Burst::new();
        let mut m = self.pool.alloc().expect("mbuf");
        m.append(frame.len() as u16).expect("room").copy_from_slice(frame);
        b.push(m).expect("room");
        assert_eq!(self.tx[queue].tx(&mut b), 1);
    }

    /// Everything that arrives on any queue within `d`.
    pub fn recv_for(&mut self, d: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + d;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            self.poll(&mut got);
        }
        got
    }

    /// Waits up to [`ARRIVAL_LIMIT`] for `n` frames from any queue.
    pub fn recv(&mut self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            self.poll(&mut got);
        }
        got
    }

    /// One RX burst from every queue, appended to `got`.
    fn poll(&mut self, got: &mut Vec<Vec<u8>>) {
        for rx in &mut self.rx {
            let mut b = Burst::new();
            rx.rx(&mut b);
            got.extend((0..b.len()).map(|i| b.data(i).to_vec()));
        }
    }
}

/// [`with_two_ports`] with two pipeline workers: each port has two RX and two TX queues on rings
/// of their own; worker 0 (on lcore 1) polls RX queue 0 of both ports, worker 1 (on a thread of
/// the test process, the machine has two CPUs) RX queue 1. `body` gets both workers' counters
/// and the appliance ports' MACs.
pub fn with_two_ports_two_workers(
    tag: &str,
    snapshot: impl FnOnce(u16, u16) -> Snapshot,
    pipeline: &PipelineConfig,
    body: impl FnOnce(&mut QueuedHost<'_>, &mut QueuedHost<'_>, [&PipelineCounters; 2], [EthernetAddress; 2]),
) {
    let eal = Eal::init(&super::test_eal_config(tag, 256)).expect("EAL");
    let pool = Mempool::new(&eal, &format!("{tag}pool"), 2047).expect("pool");
    // Per port: RX rings 0 and 1 (host -> appliance), TX rings 0 and 1 (appliance -> host).
    let rings: Vec<Ring<'_>> = (0..8).map(|i| Ring::new(&eal, &format!("{tag}q{i}"), 1024).unwrap()).collect();
    let queues = |first: usize| [&rings[first], &rings[first + 1]];
    let two = |name: &str| PortConfig { name: name.into(), mtu: 1500, rx_queues: 2, tx_queues: 2 };
    let appliance = [
        Port::from_ring_queues(&eal, &pool, &queues(0), &queues(2), &two("rA")).unwrap(),
        Port::from_ring_queues(&eal, &pool, &queues(4), &queues(6), &two("rB")).unwrap(),
    ];
    let host_a = Port::from_ring_queues(&eal, &pool, &queues(2), &queues(0), &two("hA")).unwrap();
    let host_b = Port::from_ring_queues(&eal, &pool, &queues(6), &queues(4), &two("hB")).unwrap();
    let exchange = SnapshotExchange::new(snapshot(appliance[0].id(), appliance[1].id()), 2);
    let macs = [EthernetAddress(appliance[0].mac()), EthernetAddress(appliance[1].mac())];
    let (a_rx, a_tx) = host_a.take_queues().unwrap();
    let (b_rx, b_tx) = host_b.take_queues().unwrap();
    let mut ha = QueuedHost { pool: &pool, tx: a_tx, rx: a_rx };
    let mut hb = QueuedHost { pool: &pool, tx: b_tx, rx: b_rx };

    let mut plans = pipeline_plans(&appliance, 2).unwrap();
    let (plan1, plan0) = (plans.pop().unwrap(), plans.pop().unwrap());
    drop(plans);
    let counters = [plan0.counters(), plan1.counters()];
    let stop = AtomicBool::new(false);
    eal.scope(|s| {
        s.launch(1, || run_pipeline(plan0, &exchange, &pool, pipeline, &stop)).unwrap();
        std::thread::scope(|t| {
            let second = t.spawn(|| run_pipeline(plan1, &exchange, &pool, pipeline, &stop));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                body(&mut ha, &mut hb, [&counters[0], &counters[1]], macs)
            }));
            stop.store(true, Ordering::Relaxed);
            assert_eq!(second.join().expect("the second worker"), 0);
            if let Err(p) = result {
                std::panic::resume_unwind(p);
            }
        });
    })
    .expect("worker exits cleanly");
    for c in &counters {
        assert_eq!(c.tx_full_drops.load(Ordering::Relaxed), 0);
        assert_eq!(c.alloc_failures.load(Ordering::Relaxed), 0);
    }
    drop((ha, hb));
    drop((appliance, host_a, host_b));
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
