//! The traffic generator process (`midogw-perf gen`): one DPDK process, one core, two ports.
//!
//! It sends a scenario's seeded trace on both ports (forward stream on port 0, reverse on port 1),
//! counts what comes back, and times packets through a trailer carrying the send time. Phases:
//! warm-up at maximum rate (not counted), the throughput window at maximum rate, a fixed-rate
//! phase below saturation for latency percentiles, and a short drain so in-flight packets are not
//! counted as lost.
//!
//! At maximum rate the generator never reads returned payloads (that would cost it a cache miss
//! per packet and make it, not the device, the bottleneck); it counts packets and lengths from
//! the mbuf headers. Payloads are read in the latency phase only.
//!
//! For a gateway scenario ([`GenSpec::router_macs`]) the generator plays the hosts behind both
//! ports: frames go to the router port's MAC, and before the warm-up it probes until every
//! sending direction is routed, answering the router's ARP requests (and keeps answering during
//! the warm-up), so the device resolves its next hops through its own ARP path.
//!
//! In a tunnel scenario ([`GenSpec::tunnel`]) port 1 is the gateway's underlay and the generator
//! plays the compute host there: it sends its stream inside the tunnel (VXLAN or GRE, outer UDP
//! source port per flow), answers the gateway's underlay ARP for the host's address with
//! [`COMPUTE_HOST_MAC`], and answers the router's ARP requests that arrive inside the tunnel with
//! tunnelled replies. The trailer stays the last 16 bytes, so tunnelled frames are counted and
//! timed as plain ones.
//!
//! A scenario's [`Directions`] may leave one port silent (only one stream sends); that port
//! still receives and answers.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use midogw::sizing::BURST;
use midogw::{Burst, Device, Eal, EalConfig, Mempool, Port, PortConfig, RxQueue, TxQueue};

use crate::error::{Error, Result};
use crate::histogram::Histogram;
use crate::packet::{arp_reply, tunnel_arp_reply, Stamp, Tunnel, FCS_LEN};
use crate::report::{GenReport, LatencyPhase};
use crate::scenario::{Directions, Scenario};
use crate::topology::COMPUTE_HOST_MAC;
use crate::traffic::{host, Direction, Trace};

/// Everything the generator process needs, handed over as a JSON file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenSpec {
    /// EAL `--file-prefix`.
    pub file_prefix: String,
    /// The CPU to run on (EAL main lcore).
    pub core: u32,
    /// EAL memory (`-m`, no hugepages), MiB.
    pub memory_mib: u32,
    /// Extra EAL arguments (`--single-file-segments` for memif zero-copy, log levels).
    pub eal_args: Vec<String>,
    /// The two ports' devargs: port 0 sends the forward stream, port 1 the reverse one.
    pub devargs: [String; 2],
    /// What to send.
    pub scenario: Scenario,
    /// Warm-up, seconds.
    pub warmup_seconds: f64,
    /// Throughput window, seconds.
    pub seconds: f64,
    /// Fixed-rate latency phase, seconds (0: none).
    pub latency_seconds: f64,
    /// How long to wait for both links, seconds.
    pub link_timeout_seconds: f64,
    /// Gateway scenarios: the MACs of the router ports bound to the device's port 0 and port 1.
    /// Frames are addressed to them, and the generator plays the hosts behind its ports: it
    /// answers the router's ARP requests and sends probes until both directions are routed
    /// before the warm-up starts.
    #[serde(default)]
    pub router_macs: Option<[[u8; 6]; 2]>,
    /// Tunnel scenarios: port 1 faces the gateway's underlay; the reverse stream is sent inside
    /// this tunnel (the compute host's view: from the host to the gateway's underlay address).
    #[serde(default)]
    pub tunnel: Option<Tunnel>,
    /// Receive queues per port (the memif client's server-to-client rings), all polled. 1, except
    /// for a device that transmits on a queue per thread: Open vSwitch's PMD thread sends on
    /// queue 1 (queue 0 belongs to its main thread), see `crate::ovs::DEVICE_TX_QUEUES`.
    #[serde(default = "one_queue")]
    pub rx_queues: u16,
}

fn one_queue() -> u16 {
    1
}

/// Whom the generator plays on one port, for the ARP requests that arrive there.
#[derive(Debug, Clone, Copy)]
struct Responder {
    /// The host behind the port (inside the tunnel, for a tunnel port).
    host_mac: [u8; 6],
    /// The port faces the underlay: the generator is also the compute host at the tunnel's end.
    tunnel: Option<Tunnel>,
}

impl Responder {
    /// The reply to `frame` if it is an ARP request for this port: plain ARP (the router's, or
    /// on the underlay the gateway's for the compute host), or ARP through the tunnel.
    fn answer(&self, frame: &[u8]) -> Option<Vec<u8>> {
        match &self.tunnel {
            None => arp_reply(frame, self.host_mac).map(|r| r.to_vec()),
            Some(t) => arp_reply(frame, COMPUTE_HOST_MAC)
                .map(|r| r.to_vec())
                .or_else(|| tunnel_arp_reply(frame, t, self.host_mac)),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tx: u64,
    refused: u64,
    rx: u64,
    rx_bytes: u64,
    foreign: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    Latency,
    Drain,
}

struct Stream<'a> {
    trace: &'a Trace,
    next: usize,
    seq: u32,
    rx: Vec<RxQueue<'a>>,
    tx: TxQueue<'a>,
    out: Burst<'a>,
    sent_in_phase: u64,
}

/// Packets in flight are given this long to come back after sending stops.
const DRAIN: Duration = Duration::from_millis(200);
/// RX bursts taken per port per loop turn at most (receive has priority over send, so the
/// device under test never stalls on a full ring towards the generator).
const RX_BURSTS_PER_TURN: usize = 4;

/// Runs the generator and hands what it measured to `done` while the ports are still open (the
/// caller may hold them until the device under test has stopped).
pub fn run(spec: &GenSpec, done: impl FnOnce(&GenReport) -> std::io::Result<()>) -> Result<GenReport> {
    let sc = &spec.scenario;
    let macs = spec.router_macs;
    let forward = Trace::build_to(&sc.traffic, Direction::Forward, sc.traffic.default_trace_len(), macs.map(|m| m[0]))?;
    let reverse = Trace::build_tunnelled(
        sc.reverse_traffic(),
        Direction::Reverse,
        sc.reverse_traffic().default_trace_len(),
        macs.map(|m| m[1]),
        spec.tunnel,
    )?;
    let max_len = forward.max_len().max(reverse.max_len());
    let mtu = u16::try_from(max_len.saturating_sub(14).max(1500))
        .map_err(|_| Error::Build(format!("{max_len}-byte frames exceed any MTU")))?;
    let data_room = u16::try_from((midogw::sizing::max_frame(mtu) as usize + 128).next_multiple_of(64))
        .map_err(|_| Error::Build("frames too large for an mbuf".into()))?;

    let mut extra = vec!["--no-huge".to_string(), "-m".to_string(), spec.memory_mib.to_string()];
    extra.extend(spec.eal_args.iter().cloned());
    let eal = Eal::init(&EalConfig {
        main_core: spec.core,
        worker_cores: vec![],
        file_prefix: spec.file_prefix.clone(),
        pci_allow: vec![],
        extra_args: extra,
    })?;
    let pool = Mempool::with_data_room(&eal, "perfgen", 16383, data_room)?;
    let mut ports = Vec::with_capacity(2);
    for (i, devargs) in spec.devargs.iter().enumerate() {
        let config = PortConfig { name: format!("gen{i}"), mtu, rx_queues: spec.rx_queues.max(1), tx_queues: 1 };
        ports.push(Port::open(&eal, &pool, &Device::Vdev { devargs: devargs.clone() }, &config)?);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(spec.link_timeout_seconds);
    while !ports.iter().all(|p| p.link().up) {
        if Instant::now() > deadline {
            return Err(Error::Link(format!(
                "generator ports not up after {:.0} s (is the device under test running and serving {}?)",
                spec.link_timeout_seconds, spec.devargs[0]
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::info!(scenario = %sc.name, forward_trace = forward.len(), reverse_trace = reverse.len(), "links up, sending");

    let mut streams = Vec::with_capacity(2);
    for (port, trace) in ports.iter().zip([&forward, &reverse]) {
        let (mut rx, mut tx) = port.take_queues()?;
        streams.push(Stream {
            trace,
            next: 0,
            seq: 0,
            rx: std::mem::take(&mut rx),
            tx: tx.remove(0),
            out: Burst::new(),
            sent_in_phase: 0,
        });
    }
    let responders = [
        Responder { host_mac: host(Direction::Forward).0, tunnel: None },
        Responder { host_mac: host(Direction::Reverse).0, tunnel: spec.tunnel },
    ];
    let arp = match macs {
        Some(_) => Some(resolve_next_hops(&pool, &mut streams, responders, sc.directions)?),
        None => None,
    };
    let mut report = drive(spec, &pool, &mut streams, arp.map(|_| responders));
    report.arp_replies += arp.unwrap_or(0);
    drop(streams);
    done(&report)
        .map_err(|e| Error::Process { what: "generator".into(), detail: format!("writing the result: {e}") })?;
    let stats: Vec<_> = ports.iter().map(|p| p.stats()).collect();
    tracing::debug!(?stats, "generator port counters");
    Ok(report)
}

/// How long the generator waits for a gateway to route its probes.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Probes are re-sent this often until they come back. Not faster: while a next hop is being
/// resolved the gateway holds each probe (at most 16 for one next hop) and asks again only once a
/// second, so when its first request is lost (the memif link may still be coming up) probes every
/// 20 ms overflowed that queue and each added a flow-cache miss to the run's counters; four a
/// second wait for the next request without either.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Whether `frame` is an ICMP or ICMPv6 error (untagged): it quotes a stream's frame, trailer and
/// all, so it carries a stamp without having been routed.
fn is_icmp_error(frame: &[u8]) -> bool {
    match (frame.get(12..14), frame.get(14)) {
        (Some([0x08, 0x00]), Some(&v)) => {
            let l4 = 14 + usize::from(v & 0x0f) * 4;
            frame.get(23) == Some(&1) && frame.get(l4).is_some_and(|t| matches!(t, 3 | 4 | 5 | 11 | 12))
        }
        (Some([0x86, 0xdd]), _) => frame.get(20) == Some(&58) && frame.get(54).is_some_and(|&t| t < 128),
        _ => false,
    }
}

/// Answers `frame` on `tx` if it is an ARP request `responder` answers; true if it was one.
fn answer_arp<'a>(frame: &[u8], responder: &Responder, pool: &'a Mempool<'_>, tx: &mut TxQueue<'a>) -> bool {
    let Some(reply) = responder.answer(frame) else { return false };
    let mut out = Burst::new();
    if let Some(mut m) = pool.alloc() {
        if let Some(buf) = m.append(reply.len() as u16) {
            buf.copy_from_slice(&reply);
            let _ = out.push(m);
            tx.tx(&mut out);
        }
    }
    true
}

/// Before the warm-up of a gateway scenario: sends the first frame of each sending stream every
/// [`PROBE_INTERVAL`], answers the router's ARP requests as the hosts of each port, and returns
/// once a probe of each sending direction has come back routed (every next hop resolved, in the
/// device's real neighbour cache). Returns the ARP requests answered.
fn resolve_next_hops<'a>(
    pool: &'a Mempool<'_>,
    streams: &mut [Stream<'a>],
    responders: [Responder; 2],
    directions: Directions,
) -> Result<u64> {
    let started = Instant::now();
    // A silent direction counts as routed: nothing of it is measured.
    let mut routed = [!directions.sends(0), !directions.sends(1)];
    let mut answered = 0;
    let mut last_probe: Option<Instant> = None;
    let mut inbound = Burst::new();
    let mut settled: Option<Instant> = None;
    // After both are routed, keep answering a little longer so no late probe lands in the warm-up.
    while settled.is_none_or(|t| t.elapsed() < Duration::from_millis(50)) {
        if started.elapsed() > RESOLVE_TIMEOUT {
            return Err(Error::Link(format!(
                "the gateway did not route the probe frames within {} s (routed: forward {}, reverse {}; ARP requests answered: {answered}); check the topology's routes",
                RESOLVE_TIMEOUT.as_secs(),
                routed[0],
                routed[1]
            )));
        }
        if settled.is_none() && last_probe.is_none_or(|t| t.elapsed() >= PROBE_INTERVAL) {
            for (i, s) in streams.iter_mut().enumerate() {
                if routed[i] {
                    continue;
                }
                if let Some(mut m) = pool.alloc() {
                    if let Some(buf) = m.append(s.trace.len_of(0) as u16) {
                        s.trace.emit(0, Stamp { seq: 0, tx_ns: 0 }, buf);
                        let _ = s.out.push(m);
                        s.tx.tx(&mut s.out);
                        s.out.clear();
                    }
                }
            }
            last_probe = Some(Instant::now());
        }
        for (i, s) in streams.iter_mut().enumerate() {
            let n = s.rx.iter_mut().map(|q| q.rx(&mut inbound)).sum::<usize>();
            for k in 0..n {
                let frame = inbound.data(k);
                if answer_arp(frame, &responders[i], pool, &mut s.tx) {
                    answered += 1;
                } else if Stamp::read(frame).is_some() && !is_icmp_error(frame) {
                    // Port i receives what the other port's stream sent.
                    routed[1 - i] = true;
                }
            }
            inbound.clear();
        }
        if settled.is_none() && routed == [true, true] {
            settled = Some(Instant::now());
            tracing::info!(
                arp_answered = answered,
                waited_ms = started.elapsed().as_millis() as u64,
                "gateway routes both directions"
            );
        }
    }
    Ok(answered)
}

fn drive<'a>(
    spec: &GenSpec,
    pool: &'a Mempool<'_>,
    streams: &mut [Stream<'a>],
    responders: Option<[Responder; 2]>,
) -> GenReport {
    let secs = |s: f64| (s * 1e9) as u64;
    let measure_start = secs(spec.warmup_seconds);
    let latency_start = measure_start + secs(spec.seconds);
    let drain_start = latency_start + secs(spec.latency_seconds);
    let end = drain_start + DRAIN.as_nanos() as u64;
    let directions = spec.scenario.directions;
    let per_stream_pps = spec.scenario.latency_rate_mpps * 1e6 / directions.streams() as f64;

    let mut counts = Counts::default();
    let mut at_measure = Counts::default();
    let mut at_latency = Counts::default();
    let mut at_drain = Counts::default();
    let mut hist = Histogram::new();
    let mut inbound = Burst::new();
    let mut phase = Phase::Warmup;
    let mut arp_replies = 0;
    const SLICE: u64 = 250_000_000;
    let mut series = Vec::new();
    let mut next_slice = measure_start + SLICE;
    let mut slice_rx = 0u64;
    let epoch = Instant::now();
    loop {
        let now = epoch.elapsed().as_nanos() as u64;
        let due = match now {
            t if t < measure_start => Phase::Warmup,
            t if t < latency_start => Phase::Measure,
            t if t < drain_start => Phase::Latency,
            t if t < end => Phase::Drain,
            _ => break,
        };
        if phase == Phase::Measure && now >= next_slice && next_slice <= latency_start {
            series.push(((counts.rx - slice_rx) as f64 / (SLICE as f64 / 1e9) / 1e6 * 100.0).round() / 100.0);
            slice_rx = counts.rx;
            next_slice += SLICE;
        }
        if due != phase {
            match due {
                Phase::Measure => {
                    at_measure = counts;
                    slice_rx = counts.rx;
                }
                Phase::Latency => at_latency = counts,
                Phase::Drain => at_drain = counts,
                Phase::Warmup => {}
            }
            for s in streams.iter_mut() {
                s.sent_in_phase = 0;
                if due == Phase::Latency || due == Phase::Drain {
                    // Frames built at full rate and refused would time the queue, not the device.
                    s.out.clear();
                }
            }
            phase = due;
        }
        for (port, s) in streams.iter_mut().enumerate() {
            let want = match phase {
                _ if !directions.sends(port) => 0,
                Phase::Warmup | Phase::Measure => BURST,
                Phase::Latency => {
                    let allowed = ((now - latency_start) as f64 * per_stream_pps / 1e9) as u64;
                    allowed.saturating_sub(s.sent_in_phase).min(BURST as u64) as usize
                }
                Phase::Drain => 0,
            };
            while s.out.len() < want {
                let Some(mut m) = pool.alloc() else { break };
                let len = s.trace.len_of(s.next);
                let Some(buf) = m.append(len as u16) else { break };
                s.trace.emit(s.next, Stamp { seq: s.seq, tx_ns: now }, buf);
                s.next = if s.next + 1 == s.trace.len() { 0 } else { s.next + 1 };
                s.seq = s.seq.wrapping_add(1);
                if s.out.push(m).is_err() {
                    break;
                }
            }
            if !s.out.is_empty() {
                let sent = s.tx.tx(&mut s.out) as u64;
                counts.tx += sent;
                s.sent_in_phase += sent;
                counts.refused += s.out.len() as u64;
            }
            for _ in 0..RX_BURSTS_PER_TURN {
                // Every receive queue into one burst (more than one only for ovs-dpdk).
                let n = s.rx.iter_mut().map(|q| q.rx(&mut inbound)).sum::<usize>();
                if n == 0 {
                    break;
                }
                counts.rx += n as u64;
                if let (Phase::Warmup, Some(responders)) = (phase, &responders) {
                    // Only in the warm-up: reading every frame at full rate would slow the
                    // generator; next hops are resolved before and stay valid for the run.
                    for i in 0..n {
                        if answer_arp(inbound.data(i), &responders[port], pool, &mut s.tx) {
                            arp_replies += 1;
                            counts.rx -= 1;
                        }
                    }
                }
                if phase == Phase::Latency {
                    let rx_ns = epoch.elapsed().as_nanos() as u64;
                    for i in 0..n {
                        let frame = inbound.data(i);
                        counts.rx_bytes += (frame.len() + FCS_LEN) as u64;
                        match Stamp::read(frame) {
                            Some(st) if st.tx_ns >= latency_start => hist.record(rx_ns.saturating_sub(st.tx_ns)),
                            Some(_) => {}
                            None => counts.foreign += 1,
                        }
                    }
                } else {
                    for i in 0..n {
                        counts.rx_bytes += (inbound.data(i).len() + FCS_LEN) as u64;
                    }
                }
                inbound.clear();
                if n < BURST {
                    break;
                }
            }
        }
    }
    if phase != Phase::Drain {
        at_drain = counts;
    }
    if spec.latency_seconds == 0.0 {
        at_latency = at_drain;
    }
    let window = spec.seconds;
    let rx = at_latency.rx - at_measure.rx;
    let rx_bytes = at_latency.rx_bytes - at_measure.rx_bytes;
    let tx = at_latency.tx - at_measure.tx;
    let latency = hist.summary().map(|summary| LatencyPhase {
        offered_mpps: spec.scenario.latency_rate_mpps,
        received_mpps: (at_drain.rx - at_latency.rx) as f64 / spec.latency_seconds.max(1e-9) / 1e6,
        summary,
    });
    GenReport {
        seconds: window,
        tx_packets: tx,
        tx_refused: at_latency.refused - at_measure.refused,
        rx_packets: rx,
        rx_bytes,
        lost: counts.tx.saturating_sub(counts.rx),
        foreign: counts.foreign,
        // A run without a throughput window (a functional check at the latency rate) has no rate.
        mpps: if window > 0.0 { rx as f64 / window / 1e6 } else { 0.0 },
        gbps: if window > 0.0 { rx_bytes as f64 * 8.0 / window / 1e9 } else { 0.0 },
        offered_mpps: if window > 0.0 { tx as f64 / window / 1e6 } else { 0.0 },
        latency,
        series_mpps: series,
        arp_replies,
    }
}
