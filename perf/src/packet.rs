//! The packet builder: Ethernet frames carrying IPv4 or IPv6 with UDP, TCP or ICMP, optionally
//! inside a tunnel (VXLAN or GRE over IPv4), with correct lengths and checksums, and a 16-byte
//! timestamp trailer at the very end of every frame. Pure Rust on byte buffers; no DPDK.
//!
//! Sizes follow RFC 2544: a "64-byte frame" is 64 bytes on the wire including the 4-byte FCS, so
//! the buffer handed to a port holds `frame_size - 4` bytes (the FCS is the NIC's job). Encapsulated
//! frames carry a customer frame of `frame_size` and are [`VXLAN_OVERHEAD`] (VXLAN) or
//! [`GRE_OVERHEAD`] (GRE) bytes longer.
//!
//! [`FrameSpec::build`] makes any one frame. The generator's hot path uses a [`Template`] instead:
//! built once per (protocol, size) class, then copied and patched per packet (flow fields and
//! trailer) with incremental checksum updates. The tests check that both give the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::checksum;
use crate::error::Error;

/// Ethernet FCS, counted in frame sizes but never in buffers.
pub const FCS_LEN: usize = 4;
/// Ethernet header without VLAN tag.
pub const ETH_LEN: usize = 14;
/// Bytes VXLAN over IPv4 adds: outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: usize = 50;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// Bytes GRE over IPv4 adds: outer Ethernet 14, IPv4 20, GRE with the key bit 8.
pub const GRE_OVERHEAD: usize = 42;
/// The protocol type GRE carries Ethernet frames with (transparent Ethernet bridging).
pub const GRE_PROTO_ETHERNET: u16 = 0x6558;
/// The timestamp trailer at the end of every generated frame.
pub const STAMP_LEN: usize = 16;
/// Marks a trailer written by this generator ("MGWP").
pub const STAMP_MAGIC: u32 = 0x4d47_5750;
/// Smallest Ethernet frame, FCS included.
pub const MIN_FRAME: usize = 64;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
const PROTO_ICMPV6: u8 = 58;

/// The transport of a generated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP, checksummed (also over IPv4).
    Udp,
    /// TCP, an ACK segment carrying data.
    Tcp,
    /// ICMP / ICMPv6 echo request; the identifier plays the source port.
    Icmp,
}

impl Proto {
    fn header_len(self) -> usize {
        match self {
            Proto::Udp | Proto::Icmp => 8,
            Proto::Tcp => 20,
        }
    }

    fn number(self, v6: bool) -> u8 {
        match (self, v6) {
            (Proto::Udp, _) => PROTO_UDP,
            (Proto::Tcp, _) => PROTO_TCP,
            (Proto::Icmp, false) => PROTO_ICMP,
            (Proto::Icmp, true) => PROTO_ICMPV6,
        }
    }
}

/// IP version of a generated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpVersion {
    /// IPv4, DF set, no options.
    V4,
    /// IPv6, no extension headers.
    V6,
}

impl IpVersion {
    fn header_len(self) -> usize {
        match self {
            IpVersion::V4 => 20,
            IpVersion::V6 => 40,
        }
    }
}

/// How a tunnelled frame is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// VXLAN (RFC 7348): outer IPv4 + UDP (checksum 0) + VXLAN with the I flag, VNI = key.
    Vxlan,
    /// GRE (RFC 2784 / 2890): outer IPv4 + GRE with only the key bit, protocol 0x6558, key = key.
    Gre,
}

impl Encap {
    /// Bytes the outer headers add.
    pub const fn overhead(self) -> usize {
        match self {
            Encap::Vxlan => VXLAN_OVERHEAD,
            Encap::Gre => GRE_OVERHEAD,
        }
    }
}

/// The outer headers of a tunnelled frame over IPv4, seen from the sender: VXLAN or GRE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    /// VXLAN or GRE.
    pub encap: Encap,
    /// Outer source MAC (the sender's underlay MAC).
    pub src_mac: [u8; 6],
    /// Outer destination MAC (the receiver's underlay MAC).
    pub dst_mac: [u8; 6],
    /// Tunnel source address.
    pub src_ip: Ipv4Addr,
    /// Tunnel destination address.
    pub dst_ip: Ipv4Addr,
    /// The VXLAN network identifier (24 bits) or the GRE key: the port's tunnel key.
    pub key: u32,
    /// VXLAN: outer UDP source port (flow entropy; a trace sets it per flow). Unused by GRE.
    pub src_port: u16,
    /// VXLAN: outer UDP destination port ([`VXLAN_PORT`]). Unused by GRE.
    pub dst_port: u16,
}

impl Tunnel {
    /// The same tunnel seen from the other end (addresses swapped): what the receiver sends.
    pub fn reversed(&self) -> Tunnel {
        Tunnel { src_mac: self.dst_mac, dst_mac: self.src_mac, src_ip: self.dst_ip, dst_ip: self.src_ip, ..*self }
    }

    /// `inner` wrapped in this tunnel's outer headers.
    pub fn encapsulate(&self, inner: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; self.encap.overhead() + inner.len()];
        frame[self.encap.overhead()..].copy_from_slice(inner);
        write_tunnel_headers(&mut frame, self);
        frame
    }

    /// The inner frame of `frame` if it came through this tunnel from its far end: IPv4 without
    /// options from [`Tunnel::dst_ip`] to [`Tunnel::src_ip`], and VXLAN to [`Tunnel::dst_port`] with
    /// the I flag and VNI = key, or GRE with only the key bit, protocol 0x6558 and the key.
    pub fn decapsulate<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let ip = frame.get(ETH_LEN..ETH_LEN + 20)?;
        if frame[12..14] != ETHERTYPE_IPV4.to_be_bytes()
            || ip[0] != 0x45
            || ip[12..16] != self.dst_ip.octets()
            || ip[16..20] != self.src_ip.octets()
        {
            return None;
        }
        let l4 = ETH_LEN + 20;
        match (self.encap, ip[9]) {
            (Encap::Vxlan, PROTO_UDP) => {
                let h = frame.get(l4..VXLAN_OVERHEAD)?;
                let ok = h[2..4] == self.dst_port.to_be_bytes()
                    && h[8] & 0x08 != 0
                    && h[12..15] == self.key.to_be_bytes()[1..4];
                ok.then(|| &frame[VXLAN_OVERHEAD..])
            }
            (Encap::Gre, PROTO_GRE) => {
                let h = frame.get(l4..GRE_OVERHEAD)?;
                let ok = h[0..2] == [0x20, 0x00]
                    && h[2..4] == GRE_PROTO_ETHERNET.to_be_bytes()
                    && h[4..8] == self.key.to_be_bytes();
                ok.then(|| &frame[GRE_OVERHEAD..])
            }
            _ => None,
        }
    }
}

/// Everything that makes one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address; its family must match `dst_ip`.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// Transport.
    pub proto: Proto,
    /// Source port, or the ICMP echo identifier.
    pub src_port: u16,
    /// Destination port (ignored for ICMP).
    pub dst_port: u16,
    /// Frame size on the wire with FCS (RFC 2544): 64, 512, 1518, ...; even.
    pub frame_size: usize,
    /// When set, the frame is carried inside this tunnel (and grows by its [`Encap::overhead`]).
    pub tunnel: Option<Tunnel>,
}

/// Where things are inside a built frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes in the buffer (no FCS).
    pub len: usize,
    /// Start of the inner Ethernet header (0, or the tunnel's overhead: 50 behind VXLAN, 42 behind GRE).
    pub eth: usize,
    /// Start of the inner IP header.
    pub l3: usize,
    /// Start of the inner transport header.
    pub l4: usize,
    /// The inner IPv4 header checksum, if IPv4.
    pub ip_csum: Option<usize>,
    /// The inner transport checksum.
    pub l4_csum: usize,
    /// Whether the transport checksum covers the IP addresses (not for ICMPv4).
    pub pseudo_header: bool,
    /// UDP over IPv4, where a computed 0 is sent as 0xffff.
    pub zero_means_none: bool,
    /// Source port / ICMP identifier.
    pub src_port: usize,
    /// The last four bytes of the inner source address.
    pub src_ip_low: usize,
    /// Outer UDP source port, if inside VXLAN.
    pub outer_src_port: Option<usize>,
}

impl FrameSpec {
    /// The IP version (from the addresses).
    pub fn ip_version(&self) -> IpVersion {
        if self.src_ip.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    /// Smallest frame size (FCS included) that holds these headers and the trailer.
    pub fn min_frame_size(ip: IpVersion, proto: Proto) -> usize {
        (ETH_LEN + ip.header_len() + proto.header_len() + STAMP_LEN + FCS_LEN).max(MIN_FRAME)
    }

    /// The layout of the frame this spec builds.
    pub fn layout(&self) -> Result<Layout, Error> {
        let ip = self.ip_version();
        if self.src_ip.is_ipv4() != self.dst_ip.is_ipv4() {
            return Err(Error::Build("source and destination address families differ".into()));
        }
        let min = Self::min_frame_size(ip, self.proto);
        if self.frame_size < min {
            return Err(Error::Build(format!(
                "{}-byte frame too small for {ip:?}/{:?} with trailer (minimum {min})",
                self.frame_size, self.proto
            )));
        }
        if !self.frame_size.is_multiple_of(2) {
            return Err(Error::Build(format!("frame size {} is odd", self.frame_size)));
        }
        if self.tunnel.is_some_and(|t| t.encap == Encap::Vxlan && t.key >= 1 << 24) {
            return Err(Error::Build("VNI wider than 24 bits".into()));
        }
        let eth = self.tunnel.map_or(0, |t| t.encap.overhead());
        let len = eth + self.frame_size - FCS_LEN;
        let ip_len = ip.header_len();
        if len - eth - ETH_LEN - ip_len > usize::from(u16::MAX) {
            return Err(Error::Build("frame larger than an IP packet can be".into()));
        }
        let l3 = eth + ETH_LEN;
        let l4 = l3 + ip_len;
        let l4_csum = l4
            + match self.proto {
                Proto::Udp => 6,
                Proto::Tcp => 16,
                Proto::Icmp => 2,
            };
        let src_ip_low = l3 + if ip == IpVersion::V4 { 12 } else { 8 + 12 };
        Ok(Layout {
            len,
            eth,
            l3,
            l4,
            ip_csum: (ip == IpVersion::V4).then_some(l3 + 10),
            l4_csum,
            pseudo_header: !(ip == IpVersion::V4 && self.proto == Proto::Icmp),
            zero_means_none: ip == IpVersion::V4 && self.proto == Proto::Udp,
            src_port: l4 + if self.proto == Proto::Icmp { 4 } else { 0 },
            src_ip_low,
            outer_src_port: self.tunnel.filter(|t| t.encap == Encap::Vxlan).map(|_| ETH_LEN + 20),
        })
    }

    /// Builds the frame: every length and checksum filled in, payload zero, trailer zero.
    pub fn build(&self) -> Result<Vec<u8>, Error> {
        let layout = self.layout()?;
        let mut frame = vec![0u8; layout.len];
        if let Some(t) = &self.tunnel {
            write_tunnel_headers(&mut frame, t);
        }
        let inner = &mut frame[layout.eth..];
        inner[0..6].copy_from_slice(&self.dst_mac);
        inner[6..12].copy_from_slice(&self.src_mac);
        let l3 = ETH_LEN;
        let l4 = layout.l4 - layout.eth;
        let l4_len = inner.len() - l4;
        let v6 = self.ip_version() == IpVersion::V6;
        let protocol = self.proto.number(v6);
        let pseudo = match (self.src_ip, self.dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                inner[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let ip = &mut inner[l3..l4];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((l4 - l3 + l4_len) as u16).to_be_bytes());
                ip[6] = 0x40; // DF
                ip[8] = 64;
                ip[9] = protocol;
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(&dst.octets());
                let csum = checksum::checksum(ip);
                ip[10..12].copy_from_slice(&csum.to_be_bytes());
                checksum::pseudo_v4(src.octets(), dst.octets(), protocol, l4_len as u16)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                inner[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                let ip = &mut inner[l3..l4];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                ip[6] = protocol;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(&dst.octets());
                checksum::pseudo_v6(src.octets(), dst.octets(), protocol, l4_len as u32)
            }
            _ => unreachable!("layout() checked the families"),
        };
        let seg = &mut inner[l4..];
        match self.proto {
            Proto::Udp => {
                seg[0..2].copy_from_slice(&self.src_port.to_be_bytes());
                seg[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
                seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            Proto::Tcp => {
                seg[0..2].copy_from_slice(&self.src_port.to_be_bytes());
                seg[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
                seg[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence
                seg[8..12].copy_from_slice(&1u32.to_be_bytes()); // acknowledgement
                seg[12] = 5 << 4; // data offset: 5 words
                seg[13] = 0x18; // PSH, ACK
                seg[14..16].copy_from_slice(&0xffffu16.to_be_bytes()); // window
            }
            Proto::Icmp => {
                seg[0] = if v6 { 128 } else { 8 }; // echo request
                seg[4..6].copy_from_slice(&self.src_port.to_be_bytes()); // identifier
                seg[6..8].copy_from_slice(&1u16.to_be_bytes()); // sequence
            }
        }
        let acc = checksum::sum(seg) + if layout.pseudo_header { pseudo } else { 0 };
        let mut csum = checksum::finish(acc);
        if csum == 0 && layout.zero_means_none {
            csum = 0xffff;
        }
        let at = layout.l4_csum - layout.l4;
        seg[at..at + 2].copy_from_slice(&csum.to_be_bytes());
        Ok(frame)
    }
}

/// Writes `t`'s outer headers at the start of `frame` (the inner frame follows them).
fn write_tunnel_headers(frame: &mut [u8], t: &Tunnel) {
    let outer_ip_len = (frame.len() - ETH_LEN) as u16;
    frame[0..6].copy_from_slice(&t.dst_mac);
    frame[6..12].copy_from_slice(&t.src_mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut frame[ETH_LEN..ETH_LEN + 20];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&outer_ip_len.to_be_bytes());
    ip[6] = 0x40; // DF, as the gateway sends
    ip[8] = 64;
    ip[9] = match t.encap {
        Encap::Vxlan => PROTO_UDP,
        Encap::Gre => PROTO_GRE,
    };
    ip[12..16].copy_from_slice(&t.src_ip.octets());
    ip[16..20].copy_from_slice(&t.dst_ip.octets());
    let csum = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    match t.encap {
        Encap::Vxlan => {
            let udp = &mut frame[ETH_LEN + 20..ETH_LEN + 28];
            udp[0..2].copy_from_slice(&t.src_port.to_be_bytes());
            udp[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
            udp[4..6].copy_from_slice(&(outer_ip_len - 20).to_be_bytes());
            // Outer UDP checksum 0: allowed for VXLAN over IPv4 (RFC 7348 section 5).
            udp[6..8].fill(0);
            let hdr = &mut frame[ETH_LEN + 28..ETH_LEN + 36];
            hdr.fill(0);
            hdr[0] = 0x08; // I flag: VNI valid
            hdr[4..7].copy_from_slice(&t.key.to_be_bytes()[1..4]);
        }
        Encap::Gre => {
            let gre = &mut frame[ETH_LEN + 20..ETH_LEN + 28];
            gre[0..2].copy_from_slice(&[0x20, 0x00]); // K bit only, version 0
            gre[2..4].copy_from_slice(&GRE_PROTO_ETHERNET.to_be_bytes());
            gre[4..8].copy_from_slice(&t.key.to_be_bytes());
        }
    }
}

/// The trailer the generator writes at the end of every frame and reads back on return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Per-stream sequence number.
    pub seq: u32,
    /// Send time, in nanoseconds of the generator's monotonic clock.
    pub tx_ns: u64,
}

impl Stamp {
    /// The trailer bytes: magic, sequence, time, all big-endian.
    pub fn to_bytes(self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[0..4].copy_from_slice(&STAMP_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..16].copy_from_slice(&self.tx_ns.to_be_bytes());
        b
    }

    /// Reads the trailer at the end of a frame, if it carries one.
    pub fn read(frame: &[u8]) -> Option<Stamp> {
        let start = frame.len().checked_sub(STAMP_LEN)?;
        let t = &frame[start..];
        if u32::from_be_bytes([t[0], t[1], t[2], t[3]]) != STAMP_MAGIC {
            return None;
        }
        Some(Stamp {
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            tx_ns: u64::from_be_bytes([t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]]),
        })
    }
}

/// An ARP frame padded to the Ethernet minimum (60 bytes without FCS).
pub const ARP_FRAME_LEN: usize = 60;

/// The reply a host with `mac` gives to `frame` if it is an Ethernet/IPv4 ARP request: "target
/// IP is at `mac`", sent back to the requester. The generator plays every host behind its ports,
/// so it answers any request (the router asks for its next hops).
pub fn arp_reply(frame: &[u8], mac: [u8; 6]) -> Option<[u8; ARP_FRAME_LEN]> {
    let arp = frame.get(ETH_LEN..ETH_LEN + 28)?;
    let is_request = frame[12..14] == [0x08, 0x06] && arp[..8] == [0, 1, 0x08, 0x00, 6, 4, 0, 1];
    if !is_request {
        return None;
    }
    let (asker_mac, asker_ip, wanted_ip) = (&arp[8..14], &arp[14..18], &arp[24..28]);
    let mut out = arp_frame(mac, asker_mac, 2, wanted_ip, asker_ip);
    out[ETH_LEN + 18..ETH_LEN + 24].copy_from_slice(asker_mac);
    Some(out)
}

/// The answer a host behind `tunnel` (seen from the host: source = the host, destination = the
/// gateway) with inner MAC `mac` gives to `frame` if it is an ARP request that came through the
/// tunnel from the gateway: the ARP reply, wrapped in the tunnel back to the gateway.
pub fn tunnel_arp_reply(frame: &[u8], tunnel: &Tunnel, mac: [u8; 6]) -> Option<Vec<u8>> {
    let inner = tunnel.decapsulate(frame)?;
    Some(tunnel.encapsulate(&arp_reply(inner, mac)?))
}

/// An ARP reply from `ip` at `mac` to `gateway_ip` at `gateway_mac`, unasked: it announces the
/// host to the gateway, which adds the sender of an ARP packet for its own address (RFC 826),
/// and answers nothing.
pub fn arp_announcement(mac: [u8; 6], ip: Ipv4Addr, gateway_mac: [u8; 6], gateway_ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = arp_frame(mac, &gateway_mac, 2, &ip.octets(), &gateway_ip.octets());
    f[ETH_LEN + 18..ETH_LEN + 24].copy_from_slice(&gateway_mac);
    f
}

fn arp_frame(src: [u8; 6], dst: &[u8], op: u8, sender_ip: &[u8], target_ip: &[u8]) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    let a = &mut f[ETH_LEN..ETH_LEN + 28];
    a[..8].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, op]);
    a[8..14].copy_from_slice(&src);
    a[14..18].copy_from_slice(sender_ip);
    a[24..28].copy_from_slice(target_ip);
    f
}

/// Ports 1024..=65535 per source address before the flow moves on to the next address.
pub const PORTS_PER_ADDRESS: u32 = 65536 - 1024;

/// The fields that tell flow `id` from its neighbours: a source port (or ICMP identifier) and an
/// offset added to the low 32 bits of the source address. Unique for `id < 2^32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFields {
    /// Source port / ICMP identifier.
    pub src_port: u16,
    /// Added to the last four bytes of the template's source address.
    pub address_offset: u32,
    /// Outer UDP source port (VXLAN entropy): constant per flow and spread over 49152..=65535
    /// (RFC 7348 section 5), as a VXLAN endpoint derives it from the inner flow's hash.
    pub entropy_port: u16,
}

impl FlowFields {
    /// The fields of flow `id`.
    pub fn of(id: u32) -> FlowFields {
        FlowFields {
            src_port: (1024 + id % PORTS_PER_ADDRESS) as u16,
            address_offset: id / PORTS_PER_ADDRESS,
            entropy_port: 49152 | (id & 0x3fff) as u16,
        }
    }

    /// `spec` with this flow's fields applied (what [`Template::emit`] produces, built the slow way).
    pub fn apply(self, spec: &FrameSpec) -> FrameSpec {
        let mut spec = *spec;
        spec.src_port = self.src_port;
        spec.src_ip = match spec.src_ip {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(self.address_offset))),
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let low = (bits as u32).wrapping_add(self.address_offset);
                IpAddr::V6(Ipv6Addr::from((bits & !0xffff_ffffu128) | u128::from(low)))
            }
        };
        if let Some(t) = spec.tunnel.as_mut().filter(|t| t.encap == Encap::Vxlan) {
            t.src_port = self.entropy_port;
        }
        spec
    }
}

/// A frame built once and stamped out per packet: copy, patch the flow fields and the trailer,
/// and update the checksums incrementally. No allocation.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    layout: Layout,
    base_ip_low: u32,
}

impl Template {
    /// Builds the template for `spec` (its source port and address are flow 0's base).
    pub fn new(spec: &FrameSpec) -> Result<Template, Error> {
        let bytes = spec.build()?;
        let layout = spec.layout()?;
        let at = layout.src_ip_low;
        let base_ip_low = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Ok(Template { bytes, layout, base_ip_low })
    }

    /// Bytes per frame (FCS not included).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a frame has headers.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The frame's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The template bytes as built (flow fields of the spec, zero trailer).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes flow `flow`'s frame with `stamp` into `out` (exactly [`Template::len`] bytes).
    pub fn emit(&self, flow: FlowFields, stamp: Stamp, out: &mut [u8]) {
        let l = &self.layout;
        out.copy_from_slice(&self.bytes);
        let old_port = [out[l.src_port], out[l.src_port + 1]];
        let old_ip = [out[l.src_ip_low], out[l.src_ip_low + 1], out[l.src_ip_low + 2], out[l.src_ip_low + 3]];
        let new_port = flow.src_port.to_be_bytes();
        let new_ip = self.base_ip_low.wrapping_add(flow.address_offset).to_be_bytes();
        out[l.src_port..l.src_port + 2].copy_from_slice(&new_port);
        out[l.src_ip_low..l.src_ip_low + 4].copy_from_slice(&new_ip);
        let trailer = stamp.to_bytes();
        let tail = l.len - STAMP_LEN;
        out[tail..].copy_from_slice(&trailer);

        if let Some(at) = l.ip_csum {
            let csum = u16::from_be_bytes([out[at], out[at + 1]]);
            let csum = checksum::adjust(csum, checksum::sum(&old_ip), checksum::sum(&new_ip));
            out[at..at + 2].copy_from_slice(&csum.to_be_bytes());
        }
        let mut removed = checksum::sum(&old_port);
        let mut added = checksum::sum(&new_port) + checksum::sum(&trailer);
        if l.pseudo_header {
            removed += checksum::sum(&old_ip);
            added += checksum::sum(&new_ip);
        }
        let at = l.l4_csum;
        let csum = u16::from_be_bytes([out[at], out[at + 1]]);
        let mut csum = checksum::adjust(csum, removed, added);
        if csum == 0 && l.zero_means_none {
            csum = 0xffff;
        }
        out[at..at + 2].copy_from_slice(&csum.to_be_bytes());
        if let Some(at) = l.outer_src_port {
            out[at..at + 2].copy_from_slice(&flow.entropy_port.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn spec(src: IpAddr, dst: IpAddr, proto: Proto, size: usize) -> FrameSpec {
        FrameSpec {
            src_mac: A,
            dst_mac: B,
            src_ip: src,
            dst_ip: dst,
            proto,
            src_port: 1024,
            dst_port: 5001,
            frame_size: size,
            tunnel: None,
        }
    }

    fn v4() -> (IpAddr, IpAddr) {
        (Ipv4Addr::new(10, 0, 0, 1).into(), Ipv4Addr::new(10, 0, 0, 2).into())
    }

    fn v6() -> (IpAddr, IpAddr) {
        ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
    }

    fn tunnel(encap: Encap) -> Tunnel {
        Tunnel {
            encap,
            src_mac: [0x02, 0, 0, 0, 0, 0x11],
            dst_mac: [0x02, 0, 0, 0, 0, 0x12],
            src_ip: Ipv4Addr::new(192, 168, 7, 11),
            dst_ip: Ipv4Addr::new(192, 168, 7, 10),
            key: 100,
            src_port: 49152,
            dst_port: VXLAN_PORT,
        }
    }

    fn vxlan() -> Tunnel {
        tunnel(Encap::Vxlan)
    }

    // ---- An independent checker: parses with plain offsets and verifies every sum to 0xffff,
    // without using the builder's layout or its checksum helpers beyond the RFC 1071 sum.
    fn ones(data: &[u8]) -> u32 {
        let mut acc: u32 = 0;
        for (i, b) in data.iter().enumerate() {
            acc += if i % 2 == 0 { u32::from(*b) << 8 } else { u32::from(*b) };
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc
    }

    fn verify(frame: &[u8]) -> (usize, u8) {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let (l4, proto, pseudo): (usize, u8, Vec<u8>) = match ethertype {
            0x0800 => {
                let ip = &frame[14..34];
                assert_eq!(ip[0], 0x45);
                assert_eq!(ones(ip), 0xffff, "IPv4 header checksum");
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                assert_eq!(total, frame.len() - 14, "IPv4 total length");
                let l4_len = (total - 20) as u16;
                let mut p = Vec::new();
                p.extend_from_slice(&ip[12..20]);
                p.extend_from_slice(&[0, ip[9]]);
                p.extend_from_slice(&l4_len.to_be_bytes());
                (34, ip[9], p)
            }
            0x86dd => {
                let ip = &frame[14..54];
                let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                assert_eq!(payload, frame.len() - 54, "IPv6 payload length");
                let mut p = Vec::new();
                p.extend_from_slice(&ip[8..40]);
                p.extend_from_slice(&(payload as u32).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, ip[6]]);
                (54, ip[6], p)
            }
            other => panic!("ethertype {other:#x}"),
        };
        let seg = &frame[l4..];
        match proto {
            17 => {
                assert_eq!(usize::from(u16::from_be_bytes([seg[4], seg[5]])), seg.len(), "UDP length");
                assert_ne!(u16::from_be_bytes([seg[6], seg[7]]), 0, "UDP checksum present");
                let mut all = pseudo.clone();
                all.extend_from_slice(seg);
                assert_eq!(ones(&all), 0xffff, "UDP checksum");
            }
            6 | 58 => {
                let mut all = pseudo.clone();
                all.extend_from_slice(seg);
                assert_eq!(ones(&all), 0xffff, "TCP/ICMPv6 checksum");
            }
            1 => assert_eq!(ones(seg), 0xffff, "ICMP checksum"),
            other => panic!("protocol {other}"),
        }
        (l4, proto)
    }

    #[test]
    fn every_class_and_size_has_right_lengths_and_checksums() {
        for (src, dst) in [v4(), v6()] {
            for proto in [Proto::Udp, Proto::Tcp, Proto::Icmp] {
                for size in [64, 128, 512, 570, 1500, 1518] {
                    let s = spec(src, dst, proto, size);
                    let min = FrameSpec::min_frame_size(s.ip_version(), proto);
                    if size < min {
                        assert!(s.build().is_err(), "{size} < {min} refused");
                        continue;
                    }
                    let frame = s.build().unwrap();
                    assert_eq!(frame.len(), size - FCS_LEN);
                    verify(&frame);
                }
            }
        }
    }

    #[test]
    fn sixty_four_byte_ipv4_udp_frame_is_sixty_bytes_in_the_buffer() {
        let (src, dst) = v4();
        let frame = spec(src, dst, Proto::Udp, 64).build().unwrap();
        assert_eq!(frame.len(), 60);
        assert_eq!(&frame[0..6], &B);
        assert_eq!(&frame[6..12], &A);
        assert_eq!(u16::from_be_bytes([frame[38], frame[39]]), 26, "UDP length: 8 + 18 payload");
        assert_eq!((verify(&frame)), (34, 17));
    }

    #[test]
    fn minimum_sizes() {
        assert_eq!(FrameSpec::min_frame_size(IpVersion::V4, Proto::Udp), 64);
        assert_eq!(FrameSpec::min_frame_size(IpVersion::V4, Proto::Tcp), 74);
        assert_eq!(FrameSpec::min_frame_size(IpVersion::V6, Proto::Udp), 82);
        assert_eq!(FrameSpec::min_frame_size(IpVersion::V6, Proto::Tcp), 94);
    }

    #[test]
    fn vxlan_frame_wraps_the_customer_frame() {
        let (src, dst) = v4();
        let mut s = spec(src, dst, Proto::Udp, 64);
        let inner = s.build().unwrap();
        s.tunnel = Some(Tunnel { key: 0x0a0b0c, src_port: 50001, ..vxlan() });
        let frame = s.build().unwrap();
        assert_eq!(frame.len(), inner.len() + VXLAN_OVERHEAD);
        assert_eq!(frame.len(), 110, "64-byte inner frame: 114 bytes on the wire with FCS");
        assert_eq!(&frame[VXLAN_OVERHEAD..], &inner[..], "inner frame untouched");
        assert_eq!(&frame[0..6], &[0x02, 0, 0, 0, 0, 0x12], "outer destination MAC");
        assert_eq!(&frame[6..12], &[0x02, 0, 0, 0, 0, 0x11], "outer source MAC");
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        let outer = &frame[14..34];
        assert_eq!(outer[0], 0x45, "IPv4, no options");
        assert_eq!(outer[1], 0, "TOS");
        assert_eq!(usize::from(u16::from_be_bytes([outer[2], outer[3]])), frame.len() - 14, "total length");
        assert_eq!(&outer[4..8], &[0, 0, 0x40, 0], "identification 0, DF, no fragment offset");
        assert_eq!(outer[8], 64, "TTL");
        assert_eq!(outer[9], 17, "UDP");
        assert_eq!(ones(outer), 0xffff, "outer IPv4 checksum");
        assert_ne!(&outer[10..12], &[0, 0]);
        assert_eq!(&outer[12..16], &[192, 168, 7, 11]);
        assert_eq!(&outer[16..20], &[192, 168, 7, 10]);
        let udp = &frame[34..42];
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 50001, "source port: flow entropy");
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 4789);
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), frame.len() - 34, "UDP length");
        assert_eq!(&udp[6..8], &[0, 0], "UDP checksum 0 (RFC 7348)");
        assert_eq!(&frame[42..50], &[0x08, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0], "I flag, reserved, VNI, reserved");
        verify(&frame[VXLAN_OVERHEAD..]);
        s.tunnel = Some(Tunnel { key: 1 << 24, ..vxlan() });
        assert!(s.build().is_err(), "a VNI has 24 bits");
    }

    #[test]
    fn gre_frame_wraps_the_customer_frame() {
        let (src, dst) = v4();
        let mut s = spec(src, dst, Proto::Tcp, 128);
        let inner = s.build().unwrap();
        s.tunnel = Some(Tunnel { key: 0x0102_0304, ..tunnel(Encap::Gre) });
        let frame = s.build().unwrap();
        assert_eq!(frame.len(), inner.len() + GRE_OVERHEAD);
        assert_eq!(&frame[GRE_OVERHEAD..], &inner[..], "inner frame untouched");
        assert_eq!(&frame[0..6], &[0x02, 0, 0, 0, 0, 0x12]);
        assert_eq!(&frame[6..12], &[0x02, 0, 0, 0, 0, 0x11]);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        let outer = &frame[14..34];
        assert_eq!(outer[0], 0x45);
        assert_eq!(usize::from(u16::from_be_bytes([outer[2], outer[3]])), frame.len() - 14, "total length");
        assert_eq!(&outer[4..8], &[0, 0, 0x40, 0], "identification 0, DF");
        assert_eq!(outer[8], 64, "TTL");
        assert_eq!(outer[9], 47, "GRE");
        assert_eq!(ones(outer), 0xffff, "outer IPv4 checksum");
        assert_eq!(&outer[12..16], &[192, 168, 7, 11]);
        assert_eq!(&outer[16..20], &[192, 168, 7, 10]);
        assert_eq!(&frame[34..36], &[0x20, 0x00], "only the key bit (RFC 2890), version 0");
        assert_eq!(&frame[36..38], &[0x65, 0x58], "transparent Ethernet bridging");
        assert_eq!(&frame[38..42], &[1, 2, 3, 4], "key: the full 32 bits");
        verify(&frame[GRE_OVERHEAD..]);
        let t = Template::new(&s).unwrap();
        assert_eq!(t.layout().outer_src_port, None, "GRE has no source port to vary");
        assert_eq!(t.layout().eth, GRE_OVERHEAD);
    }

    #[test]
    fn decapsulation_checks_addresses_key_and_header() {
        for encap in [Encap::Vxlan, Encap::Gre] {
            let t = tunnel(encap);
            let inner = arp_announcement(A, Ipv4Addr::new(10, 0, 0, 1), B, Ipv4Addr::new(10, 0, 0, 254));
            // What the far end (the gateway) sends back through the tunnel.
            let back = t.reversed().encapsulate(&inner);
            assert_eq!(t.decapsulate(&back), Some(&inner[..]), "{encap:?}");
            assert_eq!(t.reversed().decapsulate(&back), None, "{encap:?}: not from its own end");
            let other_key = Tunnel { key: 101, ..t.reversed() }.encapsulate(&inner);
            assert_eq!(t.decapsulate(&other_key), None, "{encap:?}: another key");
            let other = tunnel(if encap == Encap::Vxlan { Encap::Gre } else { Encap::Vxlan });
            assert_eq!(t.decapsulate(&other.reversed().encapsulate(&inner)), None, "{encap:?}: other encapsulation");
            assert_eq!(t.decapsulate(&back[..30]), None, "{encap:?}: truncated");
            assert_eq!(t.decapsulate(&inner), None, "{encap:?}: not tunnelled");
        }
        let t = vxlan();
        let mut no_flag = t.reversed().encapsulate(&[0u8; 60]);
        no_flag[42] = 0;
        assert_eq!(t.decapsulate(&no_flag), None, "VXLAN without the I flag");
    }

    #[test]
    fn arp_requests_through_a_tunnel_are_answered_through_it() {
        let router = [0x02, 0, 0, 0, 0x10, 0x02];
        let host = [0x02, 0, 0, 0, 0, 0x02];
        for encap in [Encap::Vxlan, Encap::Gre] {
            // The compute host's view: from 192.168.7.11 (the host) to 192.168.7.10 (the gateway).
            let t = tunnel(encap);
            let mut req = arp_frame(router, &[0xff; 6], 1, &[198, 19, 255, 254], &[198, 19, 0, 1]);
            req[ETH_LEN + 18..ETH_LEN + 24].fill(0);
            let from_gateway = t.reversed().encapsulate(&req);
            let reply = tunnel_arp_reply(&from_gateway, &t, host).expect("answered");
            assert_eq!(reply.len(), encap.overhead() + ARP_FRAME_LEN);
            assert_eq!(&reply[0..6], &t.dst_mac, "{encap:?}: to the gateway's underlay MAC");
            assert_eq!(&reply[6..12], &t.src_mac);
            assert_eq!(&reply[26..30], &[192, 168, 7, 11], "from the host");
            assert_eq!(&reply[30..34], &[192, 168, 7, 10], "to the gateway");
            assert_eq!(ones(&reply[14..34]), 0xffff);
            let inner = t.reversed().decapsulate(&reply).expect("a tunnelled frame to the gateway");
            assert_eq!(inner, &arp_reply(&req, host).unwrap()[..], "{encap:?}: the plain ARP reply inside");
            assert_eq!(&inner[ETH_LEN + 6..ETH_LEN + 8], &[0, 2], "a reply");
            assert_eq!(&inner[ETH_LEN + 8..ETH_LEN + 14], &host, "the host's inner MAC");
            assert_eq!(&inner[ETH_LEN + 14..ETH_LEN + 18], &[198, 19, 0, 1]);
            // Not answered: a plain request (that is the underlay's), a tunnelled non-ARP frame,
            // a tunnelled ARP reply.
            assert!(tunnel_arp_reply(&req, &t, host).is_none());
            let (src, dst) = v4();
            let data = t.reversed().encapsulate(&spec(src, dst, Proto::Udp, 64).build().unwrap());
            assert!(tunnel_arp_reply(&data, &t, host).is_none());
            assert!(tunnel_arp_reply(&reply, &t.reversed(), host).is_none(), "a reply is not answered");
        }
    }

    #[test]
    fn odd_sizes_and_mixed_families_are_refused() {
        let (src, _) = v4();
        let (_, dst6) = v6();
        assert!(spec(src, dst6, Proto::Udp, 128).build().is_err());
        let (src, dst) = v4();
        assert!(spec(src, dst, Proto::Udp, 129).build().is_err());
    }

    #[test]
    fn stamp_round_trips_and_unstamped_frames_are_ignored() {
        let stamp = Stamp { seq: 7, tx_ns: 123_456_789_012 };
        let mut frame = vec![0xaa; 60];
        assert_eq!(Stamp::read(&frame), None);
        frame[44..].copy_from_slice(&stamp.to_bytes());
        assert_eq!(Stamp::read(&frame), Some(stamp));
        assert_eq!(Stamp::read(&frame[..10]), None);
    }

    #[test]
    fn arp_requests_get_replies_and_nothing_else_does() {
        let router = [0x02, 0, 0, 0, 0x10, 0x02];
        let host = [0x02, 0, 0, 0, 0, 0x02];
        // A request as the router sends it: who has 198.19.0.1? tell 198.19.255.254.
        let mut req = [0u8; 42];
        req[0..6].fill(0xff);
        req[6..12].copy_from_slice(&router);
        req[12..14].copy_from_slice(&[0x08, 0x06]);
        req[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        req[22..28].copy_from_slice(&router);
        req[28..32].copy_from_slice(&[198, 19, 255, 254]);
        req[38..42].copy_from_slice(&[198, 19, 0, 1]);
        let reply = arp_reply(&req, host).unwrap();
        assert_eq!(&reply[0..6], &router, "back to the asker");
        assert_eq!(&reply[6..12], &host);
        assert_eq!(&reply[12..14], &[0x08, 0x06]);
        assert_eq!(&reply[14..22], &[0, 1, 8, 0, 6, 4, 0, 2], "a reply");
        assert_eq!(&reply[22..28], &host, "sender: the host's MAC");
        assert_eq!(&reply[28..32], &[198, 19, 0, 1], "sender: the asked-for address");
        assert_eq!(&reply[32..38], &router);
        assert_eq!(&reply[38..42], &[198, 19, 255, 254]);
        assert!(reply[42..].iter().all(|b| *b == 0), "padding");
        assert!(arp_reply(&reply, host).is_none(), "a reply is not answered");
        assert!(arp_reply(&req[..30], host).is_none(), "truncated");
        let (src, dst) = v4();
        assert!(arp_reply(&spec(src, dst, Proto::Udp, 64).build().unwrap(), host).is_none());
        let gateway = [2, 0, 0, 0, 0x10, 2];
        let g = arp_announcement(host, Ipv4Addr::new(198, 19, 0, 1), gateway, Ipv4Addr::new(198, 19, 255, 254));
        assert_eq!((&g[0..6], &g[6..12]), (&gateway[..], &host[..]), "unicast to the gateway");
        assert_eq!(&g[20..22], &[0, 2], "a reply, which nothing answers");
        assert_eq!((&g[22..28], &g[28..32]), (&host[..], &[198, 19, 0, 1][..]), "the sender");
        assert_eq!((&g[32..38], &g[38..42]), (&gateway[..], &[198, 19, 255, 254][..]), "to the gateway's address");
        assert!(arp_reply(&g, host).is_none(), "a reply is not answered");
    }

    #[test]
    fn flow_fields_are_unique_per_flow() {
        let mut seen = std::collections::HashSet::new();
        for id in (0..200_000u32).chain([9_999_999, 10_000_000]) {
            let f = FlowFields::of(id);
            assert!(f.src_port >= 1024);
            assert!(seen.insert((f.src_port, f.address_offset)), "flow {id} collides");
        }
    }

    fn class() -> impl Strategy<Value = (bool, Proto, usize, Option<Encap>)> {
        (
            any::<bool>(),
            prop_oneof![Just(Proto::Udp), Just(Proto::Tcp), Just(Proto::Icmp)],
            (47usize..760).prop_map(|h| h * 2),
            prop_oneof![Just(None), Just(Some(Encap::Vxlan)), Just(Some(Encap::Gre))],
        )
    }

    proptest! {
        #[test]
        fn template_emit_equals_building_the_flow(
            (is_v6, proto, size, encap) in class(), flow in 0u32..20_000_000, seq in any::<u32>(), ns in any::<u64>()
        ) {
            let (src, dst) = if is_v6 { v6() } else { v4() };
            let mut s = spec(src, dst, proto, size.max(FrameSpec::min_frame_size(if is_v6 { IpVersion::V6 } else { IpVersion::V4 }, proto)));
            s.tunnel = encap.map(tunnel);
            let template = Template::new(&s).unwrap();
            let fields = FlowFields::of(flow);
            let stamp = Stamp { seq, tx_ns: ns };
            let mut out = vec![0x5a; template.len()]; // junk: any byte left unwritten shows
            template.emit(fields, stamp, &mut out);

            let mut expected = fields.apply(&s).build().unwrap();
            let len = expected.len();
            expected[len - STAMP_LEN..].copy_from_slice(&stamp.to_bytes());
            // Checksums may differ only as 0x0000 vs 0xffff; verify() checks the sums.
            let inner = encap.map_or(0, Encap::overhead);
            verify(&out[inner..]);
            let l = template.layout();
            let mut a = out.clone();
            let mut b = expected.clone();
            for v in [&mut a, &mut b] {
                v[l.l4_csum..l.l4_csum + 2].fill(0);
            }
            prop_assert_eq!(a, b);
            prop_assert_eq!(Stamp::read(&out), Some(stamp));
        }
    }
}
