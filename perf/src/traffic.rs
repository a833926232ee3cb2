//! What a scenario sends: frame sizes, flow count and distribution, protocol and IP version mix,
//! encapsulation; and the seeded packet trace the generator cycles through.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::packet::{Encap, FlowFields, FrameSpec, IpVersion, Proto, Stamp, Template, Tunnel, FCS_LEN, VXLAN_PORT};
use crate::rng::{mix, FlowDistribution, FlowSampler, Rng};

/// Most flows a scenario may have.
pub const MAX_FLOWS: u32 = 10_000_000;
/// Longest trace: 16 Mi packets (80 MiB), enough to visit 10 M flows.
pub const MAX_TRACE: usize = 1 << 24;
/// Shortest trace.
pub const MIN_TRACE: usize = 1 << 16;

/// Frame sizes (RFC 2544: Ethernet frame with FCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FrameSizes {
    /// Every frame this size.
    Fixed(u16),
    /// 64, 570 and 1518 bytes in the ratio 7:4:1 (mean 353.8 bytes).
    Imix,
    /// The classic simple IMIX: 64, 594 and 1518 bytes, 7:4:1 (mean 361.8 bytes).
    ImixClassic,
}

impl FrameSizes {
    /// (size, weight) pairs.
    pub fn weighted(&self) -> Vec<(usize, u32)> {
        match self {
            FrameSizes::Fixed(n) => vec![(usize::from(*n), 1)],
            FrameSizes::Imix => vec![(64, 7), (570, 4), (1518, 1)],
            FrameSizes::ImixClassic => vec![(64, 7), (594, 4), (1518, 1)],
        }
    }

    /// Largest frame size.
    pub fn max(&self) -> usize {
        self.weighted().iter().map(|(s, _)| *s).max().unwrap_or(64)
    }
}

impl fmt::Display for FrameSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSizes::Fixed(n) => write!(f, "{n}"),
            FrameSizes::Imix => f.write_str("imix"),
            FrameSizes::ImixClassic => f.write_str("imix-classic"),
        }
    }
}

impl TryFrom<String> for FrameSizes {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "imix" => Ok(FrameSizes::Imix),
            "imix-classic" => Ok(FrameSizes::ImixClassic),
            n => match n.parse::<u16>() {
                Ok(n) if (64..=9018).contains(&n) && n % 2 == 0 => Ok(FrameSizes::Fixed(n)),
                _ => Err(format!("frame size {s:?}: an even number of bytes 64..=9018, \"imix\" or \"imix-classic\"")),
            },
        }
    }
}

impl From<FrameSizes> for String {
    fn from(f: FrameSizes) -> String {
        f.to_string()
    }
}

/// Relative weights of the transports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtoMix {
    /// Weight of UDP.
    pub udp: f64,
    /// Weight of TCP.
    pub tcp: f64,
    /// Weight of ICMP echo.
    pub icmp: f64,
}

impl Default for ProtoMix {
    fn default() -> Self {
        ProtoMix { udp: 1.0, tcp: 0.0, icmp: 0.0 }
    }
}

/// VXLAN around the generated frames with fixed outer addresses, for scenarios without a topology
/// (gateway scenarios take their tunnel from the topology file instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanTraffic {
    /// The VNI (tunnel key of the exterior port the frames enter).
    pub vni: u32,
}

/// The traffic of one stream, as written in the scenario table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    /// Frame sizes.
    pub frames: FrameSizes,
    /// Distinct flows, 1..=10 000 000.
    pub flows: u32,
    /// How flows are drawn for successive packets.
    #[serde(default = "uniform")]
    pub distribution: FlowDistribution,
    /// Transport mix (by flow).
    #[serde(default)]
    pub mix: ProtoMix,
    /// Share of flows that are IPv6, 0..=1.
    #[serde(default)]
    pub ipv6_share: f64,
    /// Frames inside VXLAN.
    #[serde(default)]
    pub vxlan: Option<VxlanTraffic>,
    /// Seed of the trace.
    pub seed: u64,
}

fn uniform() -> FlowDistribution {
    FlowDistribution::Uniform
}

impl TrafficSpec {
    /// Checks ranges; `name` is for the message.
    pub fn validate(&self, name: &str) -> Result<(), Error> {
        let bad = |reason: String| Error::Scenario { name: name.into(), reason };
        if self.flows == 0 || self.flows > MAX_FLOWS {
            return Err(bad(format!("flows = {}: must be 1..={MAX_FLOWS}", self.flows)));
        }
        let m = self.mix;
        if [m.udp, m.tcp, m.icmp].iter().any(|w| !w.is_finite() || *w < 0.0) || m.udp + m.tcp + m.icmp <= 0.0 {
            return Err(bad("mix weights must be >= 0 and not all 0".into()));
        }
        if !(0.0..=1.0).contains(&self.ipv6_share) {
            return Err(bad(format!("ipv6_share = {}: must be within 0..=1", self.ipv6_share)));
        }
        if let FlowDistribution::Zipf { s } = self.distribution {
            if !(s > 0.0 && s.is_finite()) {
                return Err(bad(format!("zipf s = {s}: must be > 0")));
            }
        }
        if self.vxlan.is_some_and(|v| v.vni >= 1 << 24) {
            return Err(bad("vni must fit in 24 bits".into()));
        }
        Ok(())
    }

    /// The default trace length: one entry per flow, within [`MIN_TRACE`]..=[`MAX_TRACE`].
    pub fn default_trace_len(&self) -> usize {
        (self.flows as usize).next_power_of_two().clamp(MIN_TRACE, MAX_TRACE)
    }

    /// The transport and IP version of flow `flow` (fixed per flow).
    pub fn class_of(&self, flow: u32) -> (IpVersion, Proto) {
        let h = mix(self.seed ^ 0x0063_6c61_7373, u64::from(flow));
        let unit = |bits: u64| (bits >> 11) as f64 / (1u64 << 53) as f64;
        let v = if unit(h) < self.ipv6_share { IpVersion::V6 } else { IpVersion::V4 };
        let m = self.mix;
        let pick = unit(h.rotate_left(32)) * (m.udp + m.tcp + m.icmp);
        let proto = if pick < m.udp {
            Proto::Udp
        } else if pick < m.udp + m.tcp {
            Proto::Tcp
        } else {
            Proto::Icmp
        };
        (v, proto)
    }
}

/// Which way a stream goes: from the generator's port 0 side towards port 1, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Sent on generator port 0, expected back on port 1 ("north to south").
    Forward,
    /// Sent on generator port 1, expected back on port 0.
    Reverse,
}

/// Addresses of the two sides, from the benchmarking ranges (RFC 2544 198.18.0.0/15, RFC 5180
/// 2001:2::/48), so benchmark traffic can never be mistaken for anything real.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    mac: [u8; 6],
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    port: u16,
}

const SIDE_A: Side = Side {
    mac: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
    v4: Ipv4Addr::new(198, 18, 0, 1),
    v6: Ipv6Addr::new(0x2001, 0x2, 0, 0xa, 0, 0, 0, 1),
    port: 5001,
};
const SIDE_B: Side = Side {
    mac: [0x02, 0x00, 0x00, 0x00, 0x00, 0x02],
    v4: Ipv4Addr::new(198, 19, 0, 1),
    v6: Ipv6Addr::new(0x2001, 0x2, 0, 0xb, 0, 0, 0, 1),
    port: 5001,
};

/// The generator's host on `direction`'s sending side: its MAC (the frames' source) and IPv4
/// address (flow sources are this address plus [`crate::packet::FlowFields::address_offset`]).
/// The generator answers ARP on that port with this MAC.
pub fn host(direction: Direction) -> ([u8; 6], Ipv4Addr) {
    let side = match direction {
        Direction::Forward => SIDE_A,
        Direction::Reverse => SIDE_B,
    };
    (side.mac, side.v4)
}

/// One packet of a trace: which template, which flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracePacket {
    /// Index into [`Trace::templates`].
    pub template: u16,
    /// Flow id.
    pub flow: u32,
}

/// A seeded sequence of packets the generator sends in a loop.
#[derive(Debug, Clone)]
pub struct Trace {
    templates: Vec<Template>,
    packets: Vec<TracePacket>,
    mean_frame_size: f64,
}

impl Trace {
    /// Draws `len` packets of `spec` for `direction`. The same inputs give the same trace, and a
    /// shorter trace is a prefix of a longer one.
    pub fn build(spec: &TrafficSpec, direction: Direction, len: usize) -> Result<Trace, Error> {
        Self::build_to(spec, direction, len, None)
    }

    /// [`Trace::build`] with frames addressed to `dst_mac` instead of the far side's host: a
    /// gateway scenario sends to the router port its generator port is bound to.
    pub fn build_to(
        spec: &TrafficSpec,
        direction: Direction,
        len: usize,
        dst_mac: Option<[u8; 6]>,
    ) -> Result<Trace, Error> {
        Self::build_tunnelled(spec, direction, len, dst_mac, None)
    }

    /// [`Trace::build_to`], every frame inside `tunnel` when given (its outer UDP source port
    /// set per flow, [`FlowFields::entropy_port`]): the frames a compute host sends to the
    /// gateway's underlay port.
    pub fn build_tunnelled(
        spec: &TrafficSpec,
        direction: Direction,
        len: usize,
        dst_mac: Option<[u8; 6]>,
        tunnel: Option<Tunnel>,
    ) -> Result<Trace, Error> {
        let (from, to) = match direction {
            Direction::Forward => (SIDE_A, SIDE_B),
            Direction::Reverse => (SIDE_B, SIDE_A),
        };
        let sizes = spec.frames.weighted();
        let total_weight: u32 = sizes.iter().map(|(_, w)| w).sum();
        let mut templates = Vec::new();
        // Template index = class * sizes + size index; classes built on first use.
        let mut index: Vec<Option<u16>> = vec![None; 6 * sizes.len()];
        let mut sampler = FlowSampler::new(spec.flows, spec.distribution);
        let seed = spec.seed ^ if direction == Direction::Reverse { 0x0052_4556_4552_5345 } else { 0 };
        let mut rng = Rng::new(seed);
        let mut packets = Vec::with_capacity(len);
        let mut bytes: u64 = 0;
        for _ in 0..len {
            let flow = sampler.sample(&mut rng);
            let mut pick = rng.below(u64::from(total_weight)) as u32;
            let size_index = sizes
                .iter()
                .position(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            let (ip, proto) = spec.class_of(flow);
            let class = (ip as usize) * 3 + proto as usize;
            let slot = class * sizes.len() + size_index;
            let template = match index[slot] {
                Some(t) => t,
                None => {
                    let size = sizes[size_index].0.max(FrameSpec::min_frame_size(ip, proto));
                    let frame = FrameSpec {
                        src_mac: from.mac,
                        dst_mac: dst_mac.unwrap_or(to.mac),
                        src_ip: match ip {
                            IpVersion::V4 => IpAddr::V4(from.v4),
                            IpVersion::V6 => IpAddr::V6(from.v6),
                        },
                        dst_ip: match ip {
                            IpVersion::V4 => IpAddr::V4(to.v4),
                            IpVersion::V6 => IpAddr::V6(to.v6),
                        },
                        proto,
                        src_port: 1024,
                        dst_port: to.port,
                        frame_size: size,
                        tunnel: tunnel.or(spec.vxlan.map(|v| Tunnel {
                            encap: Encap::Vxlan,
                            src_mac: [0x02, 0, 0, 0, 0x01, 0x01],
                            dst_mac: [0x02, 0, 0, 0, 0x01, 0x02],
                            src_ip: Ipv4Addr::new(198, 18, 255, 11),
                            dst_ip: Ipv4Addr::new(198, 18, 255, 10),
                            key: v.vni,
                            src_port: 49152,
                            dst_port: VXLAN_PORT,
                        })),
                    };
                    templates.push(Template::new(&frame)?);
                    let t = (templates.len() - 1) as u16;
                    index[slot] = Some(t);
                    t
                }
            };
            bytes += (templates[usize::from(template)].len() + FCS_LEN) as u64;
            packets.push(TracePacket { template, flow });
        }
        let mean_frame_size = if len == 0 { 0.0 } else { bytes as f64 / len as f64 };
        Ok(Trace { templates, packets, mean_frame_size })
    }

    /// Packets in one pass.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True for an empty trace.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The packets of one pass.
    pub fn packets(&self) -> &[TracePacket] {
        &self.packets
    }

    /// The templates the packets refer to.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// Mean frame size on the wire (FCS included).
    pub fn mean_frame_size(&self) -> f64 {
        self.mean_frame_size
    }

    /// Largest frame in bytes (buffer length, no FCS).
    pub fn max_len(&self) -> usize {
        self.templates.iter().map(Template::len).max().unwrap_or(0)
    }

    /// Buffer length of packet `i` (mod the trace length).
    #[inline]
    pub fn len_of(&self, i: usize) -> usize {
        let p = self.packets[i % self.packets.len()];
        self.templates[usize::from(p.template)].len()
    }

    /// Writes packet `i` (mod the trace length) with `stamp` into `out` ([`Trace::len_of`] bytes).
    #[inline]
    pub fn emit(&self, i: usize, stamp: Stamp, out: &mut [u8]) {
        let p = self.packets[i % self.packets.len()];
        self.templates[usize::from(p.template)].emit(FlowFields::of(p.flow), stamp, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(frames: FrameSizes, flows: u32) -> TrafficSpec {
        TrafficSpec {
            frames,
            flows,
            distribution: FlowDistribution::Uniform,
            mix: ProtoMix { udp: 6.0, tcp: 3.0, icmp: 1.0 },
            ipv6_share: 0.25,
            vxlan: None,
            seed: 11,
        }
    }

    #[test]
    fn frame_sizes_parse_and_print() {
        for s in ["64", "512", "1500", "1518", "imix", "imix-classic"] {
            let f = FrameSizes::try_from(s.to_string()).unwrap();
            assert_eq!(f.to_string(), s);
        }
        for s in ["63", "65", "0", "big", "10000"] {
            assert!(FrameSizes::try_from(s.to_string()).is_err(), "{s}");
        }
    }

    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        let a = Trace::build(&spec(FrameSizes::Imix, 1000), Direction::Forward, 4096).unwrap();
        let b = Trace::build(&spec(FrameSizes::Imix, 1000), Direction::Forward, 4096).unwrap();
        assert_eq!(a.packets(), b.packets());
        let mut other = spec(FrameSizes::Imix, 1000);
        other.seed = 12;
        let c = Trace::build(&other, Direction::Forward, 4096).unwrap();
        assert_ne!(a.packets(), c.packets());
    }

    #[test]
    fn imix_proportions_and_mean_size() {
        let mut s = spec(FrameSizes::Imix, 100);
        s.mix = ProtoMix::default();
        s.ipv6_share = 0.0;
        let t = Trace::build(&s, Direction::Forward, 120_000).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..t.len() {
            *counts.entry(t.len_of(i) + FCS_LEN).or_insert(0u32) += 1;
        }
        let share = |size| f64::from(counts[&size]) / 120_000.0;
        assert!((share(64) - 7.0 / 12.0).abs() < 0.01, "{counts:?}");
        assert!((share(570) - 4.0 / 12.0).abs() < 0.01, "{counts:?}");
        assert!((share(1518) - 1.0 / 12.0).abs() < 0.01, "{counts:?}");
        assert!((t.mean_frame_size() - 353.83).abs() < 4.0, "{}", t.mean_frame_size());
    }

    #[test]
    fn protocol_and_version_mix_by_flow() {
        let s = spec(FrameSizes::Fixed(512), 100_000);
        let mut v6 = 0;
        let mut by_proto = [0u32; 3];
        for flow in 0..100_000 {
            let (ip, proto) = s.class_of(flow);
            v6 += u32::from(ip == IpVersion::V6);
            by_proto[proto as usize] += 1;
            assert_eq!(s.class_of(flow), (ip, proto), "fixed per flow");
        }
        assert!((f64::from(v6) / 1e5 - 0.25).abs() < 0.01, "{v6}");
        assert!((f64::from(by_proto[0]) / 1e5 - 0.6).abs() < 0.01, "{by_proto:?}");
        assert!((f64::from(by_proto[1]) / 1e5 - 0.3).abs() < 0.01, "{by_proto:?}");
        assert!((f64::from(by_proto[2]) / 1e5 - 0.1).abs() < 0.01, "{by_proto:?}");
    }

    #[test]
    fn small_frames_grow_to_the_minimum_of_their_class() {
        let t = Trace::build(&spec(FrameSizes::Fixed(64), 1000), Direction::Forward, 4096).unwrap();
        let sizes: std::collections::BTreeSet<usize> = (0..t.len()).map(|i| t.len_of(i) + FCS_LEN).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [64, 74, 82, 94], "v4 udp/icmp, v4 tcp, v6 udp/icmp, v6 tcp");
    }

    #[test]
    fn emitted_frames_carry_their_flow_and_stamp() {
        let t = Trace::build(&spec(FrameSizes::Fixed(128), 50_000), Direction::Reverse, 8192).unwrap();
        let mut buf = vec![0u8; t.max_len()];
        for i in 0..100 {
            let len = t.len_of(i);
            t.emit(i, Stamp { seq: i as u32, tx_ns: 5 }, &mut buf[..len]);
            assert_eq!(Stamp::read(&buf[..len]), Some(Stamp { seq: i as u32, tx_ns: 5 }));
            assert_eq!(&buf[6..12], &SIDE_B.mac, "reverse stream comes from side B");
            assert!(len >= 128 - FCS_LEN);
        }
    }

    /// Sums a byte range as 16-bit words, RFC 1071 (independent of the builder's checksum code).
    fn ones(data: &[u8]) -> u32 {
        let mut acc: u32 = data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc
    }

    #[test]
    fn gateway_traffic_is_addressed_to_the_router_and_routed_subnets_with_valid_checksums() {
        let table = crate::Scenarios::builtin();
        for name in ["gateway-hit-64", "gateway-hit-imix", "gateway-flow-setup"] {
            let sc = table.get(name).unwrap();
            let macs = sc.router_macs().unwrap().unwrap();
            for (direction, router, src_net, dst_net, host_mac) in [
                (Direction::Forward, macs[0], [198, 18], [198, 19], SIDE_A.mac),
                (Direction::Reverse, macs[1], [198, 19], [198, 18], SIDE_B.mac),
            ] {
                let t = Trace::build_to(sc.reverse_traffic(), direction, 16384, Some(router)).unwrap();
                let mut buf = vec![0u8; t.max_len()];
                let mut flows = std::collections::HashSet::new();
                for i in 0..t.len() {
                    let len = t.len_of(i);
                    let f = &mut buf[..len];
                    t.emit(i, Stamp { seq: i as u32, tx_ns: 1 }, f);
                    assert_eq!(&f[0..6], &router, "{name}: to the router port");
                    assert_eq!(&f[6..12], &host_mac);
                    assert_eq!(&f[12..14], &[0x08, 0x00], "{name}: IPv4 only");
                    let ip = &f[14..34];
                    assert_eq!(ones(ip), 0xffff, "{name}: IPv4 header checksum");
                    assert_eq!(&ip[12..14], &src_net, "{name}: source in the sending side's subnet");
                    assert_eq!(&ip[16..18], &dst_net, "{name}: destination in the routed subnet");
                    assert_ne!(&ip[16..20], &[198, 19, 255, 254], "never the router's own address");
                    let l4 = &f[34..];
                    let sum = match ip[9] {
                        1 => ones(l4),
                        p => {
                            let mut pseudo = ip[12..20].to_vec();
                            pseudo.extend_from_slice(&[0, p]);
                            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                            pseudo.extend_from_slice(l4);
                            ones(&pseudo)
                        }
                    };
                    assert_eq!(sum, 0xffff, "{name}: transport checksum (protocol {})", ip[9]);
                    flows.insert((ip[9], [ip[12], ip[13], ip[14], ip[15]], [l4[0], l4[1]]));
                }
                if name == "gateway-flow-setup" {
                    assert_eq!(flows.len(), t.len(), "every frame a new 5-tuple");
                } else if name == "gateway-hit-64" {
                    assert_eq!(flows.len(), 1024, "1024 flows, all visited by 16384 packets");
                }
            }
        }
    }

    #[test]
    fn many_flows_are_visited_by_a_long_trace() {
        let mut s = spec(FrameSizes::Fixed(64), 10_000_000);
        s.distribution = FlowDistribution::RoundRobin;
        assert_eq!(s.default_trace_len(), MAX_TRACE);
        let t = Trace::build(&s, Direction::Forward, 1 << 20).unwrap();
        let distinct: std::collections::HashSet<u32> = t.packets().iter().map(|p| p.flow).collect();
        assert_eq!(distinct.len(), 1 << 20);
        assert!(s.validate("x").is_ok());
        s.flows = MAX_FLOWS + 1;
        assert!(s.validate("x").is_err());
    }
}
