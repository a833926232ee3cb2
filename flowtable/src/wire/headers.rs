//! The parse entry point: one walk over a frame, Ethernet -> (802.1Q) -> IPv4 / IPv6 / ARP -> L4,
//! recording offsets and the fields a flow key is built from. No allocation, no panic on any input.
//!
//! What it checks is what it needs to find the next header and the flow fields: lengths, versions,
//! the IPv6 extension-header chain, the L4 header of unfragmented packets and first fragments,
//! the IPv4 header checksum, which every router MUST verify (RFC 1812 5.2.2), and that the IPv4
//! options can be walked (their class, source route or not, is a flow field). The L4
//! checksums, which a router does not own, are left to [`Headers::verify_checksums`].
//! It decides nothing: an unknown ethertype or IP protocol parses fine, with nothing after it.
//!
//! A worker that needs only the flow key calls `flow::FlowKey::from_frame`, which reads the common
//! frames directly and comes here for everything else (its proptest holds the two equal).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::arp;
use super::error::{ParseError, Result};
use super::ethernet::{self, Address as EthernetAddress, EtherType, VlanTag};
use super::gre;
use super::icmpv4;
use super::icmpv6;
use super::ip::{IpProtocol, PseudoHeader};
use super::ipv4;
use super::ipv6;
use super::ipv6ext::DEFAULT_MAX_EXT_HEADERS;
use super::tcp::{self, Flags as TcpFlags};
use super::udp;

/// Where a packet stands with respect to IP fragmentation (the rule chains' fragment policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fragment {
    /// Not a fragment (an IPv6 atomic fragment, offset 0 without M, counts as one).
    #[default]
    Unfragmented,
    /// First fragment: offset 0, more fragments follow; carries the L4 header.
    First,
    /// Later fragment: non-zero offset; no L4 header.
    Later,
}

impl Fragment {
    fn from_fields(offset: u16, more: bool) -> Fragment {
        match (offset, more) {
            (0, false) => Fragment::Unfragmented,
            (0, true) => Fragment::First,
            _ => Fragment::Later,
        }
    }
}

/// The IPv4 header fields a flow depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Fields {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Type-of-service byte.
    pub tos: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// What the options are, as far as a router acts on them.
    pub options: ipv4::OptionsClass,
}

/// The IPv6 header fields a flow depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Fields {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The upper-layer protocol, after the extension headers.
    pub protocol: IpProtocol,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label.
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
    /// Number of extension headers.
    pub ext_headers: u8,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// Identification of the fragment header, if there is one.
    pub frag_ident: Option<u32>,
}

/// What follows the Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3 {
    /// An ethertype this parser does not look into.
    Other,
    /// An Ethernet/IPv4 ARP packet.
    Arp(arp::Repr),
    /// IPv4.
    Ipv4(Ipv4Fields),
    /// IPv6.
    Ipv6(Ipv6Fields),
}

/// The upper-layer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// None: not IP, a later fragment, no next header, or a protocol this parser does not look into.
    None,
    /// TCP.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Control bits.
        flags: TcpFlags,
    },
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMPv4.
    Icmpv4 {
        /// Type.
        msg_type: icmpv4::Message,
        /// Code.
        code: u8,
        /// Echo identifier (echo request/reply), else 0.
        ident: u16,
    },
    /// ICMPv6.
    Icmpv6 {
        /// Type.
        msg_type: icmpv6::Message,
        /// Code.
        code: u8,
        /// Echo identifier (echo request/reply), else 0.
        ident: u16,
    },
    /// GRE.
    Gre {
        /// Protocol type of the payload.
        protocol_type: EtherType,
        /// Key, if present.
        key: Option<u32>,
        /// Version (0 for RFC 2784 GRE).
        version: u8,
    },
}

/// A parsed frame: offsets from the start of the buffer given to [`Headers::parse`], and flow fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Headers {
    /// Destination MAC.
    pub eth_dst: EthernetAddress,
    /// Source MAC.
    pub eth_src: EthernetAddress,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// Ethertype of the payload (after the tag).
    pub ethertype: EtherType,
    /// Offset of the L3 header (14, or 18 when tagged).
    pub l3_offset: usize,
    /// The L3 header's fields.
    pub l3: L3,
    /// Offset of the L4 header (for IPv6, after the extension headers). For a later fragment, where the
    /// fragment data starts; without IP, equal to `end`.
    pub l4_offset: usize,
    /// The L4 header's fields.
    pub l4: L4,
    /// Offset of the L4 payload (after the TCP/UDP/ICMP/GRE header), else `l4_offset`.
    pub payload_offset: usize,
    /// End of the L3 packet: the IP total length excludes link-layer padding. For ARP the end of its 28
    /// bytes; for other ethertypes the buffer length.
    pub end: usize,
}

fn icmp_ident(is_echo: bool, data: &[u8]) -> u16 {
    if is_echo {
        u16::from_be_bytes([data[4], data[5]])
    } else {
        0
    }
}

/// Parses the header at `off..end` of `frame` as `protocol`; returns the L4 fields and its length.
/// In a first fragment (`fragment`), UDP's length field counts the whole datagram, so only the
/// header is checked: RFC 1812 routers forward fragments, and dropping first fragments would
/// lose every fragmented datagram.
fn parse_l4(frame: &[u8], off: usize, end: usize, protocol: IpProtocol, fragment: Fragment) -> Result<(L4, usize)> {
    let seg = &frame[off..end];
    Ok(match protocol {
        IpProtocol::Tcp => {
            let p = tcp::Packet::new_checked(seg)?;
            (L4::Tcp { src_port: p.src_port(), dst_port: p.dst_port(), flags: p.flags() }, p.header_len())
        }
        IpProtocol::Udp => {
            let p = udp::Packet::new_unchecked(seg);
            if fragment == Fragment::First {
                p.check_header()?;
            } else {
                p.check_len()?;
            }
            (L4::Udp { src_port: p.src_port(), dst_port: p.dst_port() }, udp::HEADER_LEN)
        }
        IpProtocol::Icmp => {
            let p = icmpv4::Packet::new_checked(seg)?;
            let ty = p.msg_type();
            let echo = matches!(ty, icmpv4::Message::EchoRequest | icmpv4::Message::EchoReply);
            (L4::Icmpv4 { msg_type: ty, code: p.msg_code(), ident: icmp_ident(echo, seg) }, icmpv4::HEADER_LEN)
        }
        IpProtocol::Icmpv6 => {
            let p = icmpv6::Packet::new_checked(seg)?;
            let ty = p.msg_type();
            let echo = matches!(ty, icmpv6::Message::EchoRequest | icmpv6::Message::EchoReply);
            (L4::Icmpv6 { msg_type: ty, code: p.msg_code(), ident: icmp_ident(echo, seg) }, icmpv6::HEADER_LEN)
        }
        IpProtocol::Gre => {
            let p = gre::Packet::new_checked(seg)?;
            (L4::Gre { protocol_type: p.protocol_type(), key: p.key(), version: p.version() }, p.header_len())
        }
        _ => (L4::None, 0),
    })
}

impl Headers {
    /// Parses a frame. Errors name the first reason the frame cannot be followed (each one a drop counter).
    pub fn parse(frame: &[u8]) -> Result<Headers> {
        let eth = ethernet::Frame::new_checked(frame)?;
        if eth.ethertype().is_vlan_tpid() && !eth.is_tagged() {
            return Err(ParseError::VlanStacked);
        }
        let ethertype = eth.inner_ethertype();
        if eth.is_tagged() && ethertype.is_vlan_tpid() {
            return Err(ParseError::VlanStacked);
        }
        let l3_offset = eth.header_len();
        let mut h = Headers {
            eth_dst: eth.dst_addr(),
            eth_src: eth.src_addr(),
            vlan: eth.vlan(),
            ethertype,
            l3_offset,
            l3: L3::Other,
            l4_offset: frame.len(),
            l4: L4::None,
            payload_offset: frame.len(),
            end: frame.len(),
        };
        let l3 = &frame[l3_offset..];
        let (protocol, fragment) = match ethertype {
            EtherType::Arp => {
                let repr = arp::Repr::parse(&arp::Packet::new_checked(l3)?)?;
                h.l3 = L3::Arp(repr);
                h.end = l3_offset + arp::PACKET_LEN;
                h.l4_offset = h.end;
                h.payload_offset = h.end;
                return Ok(h);
            }
            EtherType::Ipv4 => {
                let p = ipv4::Packet::new_checked(l3)?;
                if p.version() != 4 {
                    return Err(ParseError::Ipv4BadVersion);
                }
                // RFC 1812 5.2.2 (and RFC 1122 3.2.1.2 for the tunnel endpoint): MUST, with no
                // option to turn it off. Cheap: the header only.
                if !p.verify_checksum() {
                    return Err(ParseError::Ipv4BadChecksum);
                }
                // Options that cannot be walked make the header invalid, whoever looks at it next.
                // Nearly every header has none: the walk is a call only when there are some.
                let options = match p.header_len() {
                    ipv4::HEADER_LEN => ipv4::OptionsClass::None,
                    _ => ipv4::classify_options(p.options()),
                };
                let fragment = Fragment::from_fields(p.frag_offset(), p.more_frags());
                h.l3 = L3::Ipv4(Ipv4Fields {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                    protocol: p.protocol(),
                    tos: p.tos(),
                    ttl: p.ttl(),
                    ident: p.ident(),
                    dont_frag: p.dont_frag(),
                    fragment,
                    options,
                });
                h.end = l3_offset + usize::from(p.total_len());
                h.l4_offset = l3_offset + p.header_len();
                (p.protocol(), fragment)
            }
            EtherType::Ipv6 => {
                let p = ipv6::Packet::new_checked(l3)?;
                if p.version() != 6 {
                    return Err(ParseError::Ipv6BadVersion);
                }
                let chain = p.ext_chain(DEFAULT_MAX_EXT_HEADERS)?;
                let fragment = match chain.fragment {
                    Some(f) => Fragment::from_fields(f.frag_offset, f.more_frags),
                    None => Fragment::Unfragmented,
                };
                h.l3 = L3::Ipv6(Ipv6Fields {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                    protocol: chain.protocol,
                    traffic_class: p.traffic_class(),
                    flow_label: p.flow_label(),
                    hop_limit: p.hop_limit(),
                    ext_headers: chain.count,
                    fragment,
                    frag_ident: chain.fragment.map(|f| f.ident),
                });
                h.end = l3_offset + p.total_len();
                h.l4_offset = l3_offset + ipv6::HEADER_LEN + chain.offset;
                (chain.protocol, fragment)
            }
            _ => return Ok(h),
        };
        h.payload_offset = h.l4_offset;
        if fragment != Fragment::Later {
            let (l4, len) = parse_l4(frame, h.l4_offset, h.end, protocol, fragment)?;
            h.l4 = l4;
            h.payload_offset = h.l4_offset + len;
        }
        Ok(h)
    }

    /// The pseudo-header of the IP packet, if there is one.
    pub fn pseudo_header(&self) -> Option<PseudoHeader> {
        match self.l3 {
            L3::Ipv4(f) => Some(PseudoHeader::V4 { src: f.src, dst: f.dst }),
            L3::Ipv6(f) => Some(PseudoHeader::V6 { src: f.src, dst: f.dst }),
            _ => None,
        }
    }

    /// The fragmentation state (unfragmented when not IP).
    pub fn fragment(&self) -> Fragment {
        match self.l3 {
            L3::Ipv4(f) => f.fragment,
            L3::Ipv6(f) => f.fragment,
            _ => Fragment::Unfragmented,
        }
    }

    /// The upper-layer protocol, if IP.
    pub fn ip_protocol(&self) -> Option<IpProtocol> {
        match self.l3 {
            L3::Ipv4(f) => Some(f.protocol),
            L3::Ipv6(f) => Some(f.protocol),
            _ => None,
        }
    }

    /// Verifies the checksums of `frame`, the buffer this was parsed from: the IPv4 header checksum,
    /// then the L4 checksum (TCP, UDP with its zero-checksum rules, ICMPv4, ICMPv6, GRE when present)
    /// of unfragmented packets; a fragment's L4 checksum covers the reassembled datagram and is not checked.
    pub fn verify_checksums(&self, frame: &[u8]) -> Result<()> {
        let truncated = match self.l3 {
            L3::Ipv4(_) => ParseError::Ipv4TruncatedPayload,
            L3::Ipv6(_) => ParseError::Ipv6TruncatedPayload,
            _ => return Ok(()),
        };
        if let L3::Ipv4(_) = self.l3 {
            let ip = frame.get(self.l3_offset..self.end).ok_or(truncated)?;
            if !ipv4::Packet::new_checked(ip)?.verify_checksum() {
                return Err(ParseError::Ipv4BadChecksum);
            }
        }
        if self.fragment() != Fragment::Unfragmented {
            return Ok(());
        }
        let seg = frame.get(self.l4_offset..self.end).ok_or(truncated)?;
        let Some(pseudo) = self.pseudo_header() else { return Ok(()) };
        match self.l4 {
            L4::Tcp { .. } => {
                if !tcp::Packet::new_checked(seg)?.verify_checksum(&pseudo) {
                    return Err(ParseError::TcpBadChecksum);
                }
            }
            L4::Udp { .. } => {
                let p = udp::Packet::new_checked(seg)?;
                if p.checksum() == 0 && pseudo.is_ipv6() {
                    return Err(ParseError::UdpZeroChecksumIpv6);
                }
                if !p.verify_checksum(&pseudo) {
                    return Err(ParseError::UdpBadChecksum);
                }
            }
            L4::Icmpv4 { .. } => {
                if !icmpv4::Packet::new_checked(seg)?.verify_checksum() {
                    return Err(ParseError::Icmpv4BadChecksum);
                }
            }
            L4::Icmpv6 { .. } => {
                if !icmpv6::Packet::new_checked(seg)?.verify_checksum(&pseudo) {
                    return Err(ParseError::Icmpv6BadChecksum);
                }
            }
            L4::Gre { .. } => {
                if !gre::Packet::new_checked(seg)?.verify_checksum() {
                    return Err(ParseError::GreBadChecksum);
                }
            }
            L4::None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{vxlan, EthernetRepr, Ipv4Repr, Ipv6Repr, TcpRepr, UdpRepr};
    use proptest::prelude::*;

    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/Dot1Q(vlan=42, prio=3)/IP(src="192.0.2.1", dst="198.51.100.2", ttl=61, tos=0x10, id=99, options=[IPOption_NOP()]*4)/TCP(sport=40000, dport=179, flags="S", seq=1))
    const TAGGED_TCP4: [u8; 62] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x81, 0x00, 0x60, 0x2a, 0x08, 0x00,
        0x46, 0x10, 0x00, 0x2c, 0x00, 0x63, 0x00, 0x00, 0x3d, 0x06, 0x8e, 0x20, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33,
        0x64, 0x02, 0x01, 0x01, 0x01, 0x01, 0x9c, 0x40, 0x00, 0xb3, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x50, 0x02, 0x20, 0x00, 0x06, 0xb7, 0x00, 0x00,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=9, tc=0x20, fl=0xbeef)/IPv6ExtHdrHopByHop()/IPv6ExtHdrFragment(offset=0, m=1, id=0x11223344)/UDP(sport=5000, dport=53)/b"q")
    const UDP6_HBH_FRAG: [u8; 79] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, 0x62, 0x00, 0xbe, 0xef,
        0x00, 0x19, 0x00, 0x09, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44, 0x13, 0x88,
        0x00, 0x35, 0x00, 0x09, 0x1f, 0xaa, 0x71,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrFragment(nh=6, offset=3, m=0, id=5)/b"\x00\x00\x00\x00\x00\x00\x00\x00")
    const LATER_FRAG6: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x06, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IP(src="10.0.0.1", dst="10.0.0.2", proto=17, frag=3, flags="MF")/b"\x00\x00\x00\x00")
    const LATER_FRAG4: [u8; 38] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x18,
        0x00, 0x01, 0x20, 0x03, 0x40, 0x11, 0x46, 0xcf, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x00,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", pdst="10.0.0.1"))
    const ARP_REQ: [u8; 42] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00,
        0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6EchoRequest(id=0x4242, seq=1, data=b"ab"))
    const PING6: [u8; 64] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00,
        0x00, 0x0a, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x80, 0x00, 0x80, 0xa0, 0x42, 0x42, 0x00, 0x01, 0x61, 0x62,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IP(src="10.0.0.1", dst="10.0.0.2")/ICMP(id=0x77, seq=3)) + zero padding to 60
    const PING4_PADDED: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c,
        0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x66, 0xde, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x08, 0x00,
        0xf7, 0x85, 0x00, 0x77, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IP(src="192.0.2.10", dst="192.0.2.20")/GRE(key_present=1, key=0xabcd, proto=0x6558)/Ether(dst="02:00:00:00:00:03", src="02:00:00:00:00:04")/IP(src="10.1.0.1", dst="10.1.0.2")/UDP(sport=1, dport=2))
    const GRE4: [u8; 84] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x46,
        0x00, 0x01, 0x00, 0x00, 0x40, 0x2f, 0xf6, 0x69, 0xc0, 0x00, 0x02, 0x0a, 0xc0, 0x00, 0x02, 0x14, 0x20, 0x00,
        0x65, 0x58, 0x00, 0x00, 0xab, 0xcd, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x08, 0x00, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xcc, 0x0a, 0x01, 0x00, 0x01,
        0x0a, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0x00, 0x08, 0xeb, 0xd6,
    ];
    // scapy: bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IP(src="192.0.2.10", dst="192.0.2.20")/UDP(sport=49152, dport=4789)/VXLAN(vni=5001)/Ether(dst="02:00:00:00:00:03", src="02:00:00:00:00:04")/IPv6(src="2001:db8::a", dst="2001:db8::b")/TCP(sport=22, dport=2222, flags="A"))
    const VXLAN4: [u8; 124] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x6e,
        0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0xf6, 0x5f, 0xc0, 0x00, 0x02, 0x0a, 0xc0, 0x00, 0x02, 0x14, 0xc0, 0x00,
        0x12, 0xb5, 0x00, 0x5a, 0x22, 0x30, 0x0c, 0x00, 0x00, 0x03, 0x00, 0x13, 0x89, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x04, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x06, 0x40,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01,
        0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x16, 0x08, 0xae,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x10, 0x20, 0x00, 0x2b, 0x8a, 0x00, 0x00,
    ];

    fn mac(last: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, last])
    }

    /// The options are walked (RFC 791 3.1) into a class, source route or not; options that cannot
    /// be walked are a class of their own (the header parses: a bridge forwards it, a router
    /// answers a parameter problem). A later fragment keeps its source route (LSRR and SSRR
    /// have the copied flag, so every fragment carries it).
    #[test]
    fn ipv4_options_are_walked_and_classified() {
        use ipv4::OptionsClass::{Other, SourceRoute, Unwalkable};
        let with_options = |options: [u8; 4]| {
            // TAGGED_TCP4's four option bytes (NOPs) replaced.
            let mut b = TAGGED_TCP4.to_vec();
            b[18 + 20..18 + 24].copy_from_slice(&options);
            crate::fuzzing::fix_ipv4_headers(&mut b);
            Headers::parse(&b).map(|h| match h.l3 {
                L3::Ipv4(f) => f.options,
                other => panic!("{other:?}"),
            })
        };
        let cases = [
            ([1, 1, 1, 1], Ok(Other)),
            ([7, 3, 4, 0], Ok(Other)),         // record route (no room, but well-formed), end
            ([148, 4, 0, 0], Ok(Other)),       // router alert
            ([0x44, 4, 5, 0], Ok(Other)),      // timestamp
            ([0x9f, 2, 1, 0], Ok(Other)),      // an unknown type, length 2
            ([131, 3, 4, 0], Ok(SourceRoute)), // loose source route
            ([1, 137, 3, 4], Ok(SourceRoute)), // strict source route after a NOP
            ([0, 131, 0, 7], Ok(Other)),       // end of list: the rest is padding, not read
            ([1, 1, 1, 131], Ok(Unwalkable)),  // its length byte missing
            ([1, 7, 4, 0], Ok(Unwalkable)),    // past the header's end
            ([7, 0, 4, 0], Ok(Unwalkable)),    // length 0
            ([131, 1, 0, 0], Ok(Unwalkable)),  // length 1
        ];
        for (options, class) in cases {
            assert_eq!(with_options(options), class, "{options:?}");
        }
        let L3::Ipv4(plain) = Headers::parse(&PING4_PADDED).unwrap().l3 else { panic!() };
        assert_eq!(plain.options, ipv4::OptionsClass::None);
        // A later fragment with a loose source route.
        let mut later = LATER_FRAG4.to_vec();
        crate::wire::insert_ipv4_options(&mut later, 14, &[131, 7, 4, 192, 0, 2, 9, 0]);
        let h = Headers::parse(&later).unwrap();
        let L3::Ipv4(f) = h.l3 else { panic!() };
        assert_eq!((f.fragment, f.options), (Fragment::Later, SourceRoute));
    }

    #[test]
    fn tagged_tcp4_with_options() {
        let h = Headers::parse(&TAGGED_TCP4).unwrap();
        assert_eq!((h.eth_dst, h.eth_src), (mac(1), mac(2)));
        assert_eq!(h.vlan, Some(VlanTag { pcp: 3, dei: false, vid: 42 }));
        assert_eq!(h.ethertype, EtherType::Ipv4);
        assert_eq!(h.l3_offset, 18);
        assert_eq!(
            h.l3,
            L3::Ipv4(Ipv4Fields {
                src: Ipv4Addr::new(192, 0, 2, 1),
                dst: Ipv4Addr::new(198, 51, 100, 2),
                protocol: IpProtocol::Tcp,
                tos: 0x10,
                ttl: 61,
                ident: 99,
                dont_frag: false,
                fragment: Fragment::Unfragmented,
                options: ipv4::OptionsClass::Other,
            })
        );
        assert_eq!(h.l4_offset, 18 + 24);
        assert_eq!(h.l4, L4::Tcp { src_port: 40000, dst_port: 179, flags: TcpFlags::SYN });
        assert_eq!(h.payload_offset, 62);
        assert_eq!(h.end, 62);
        h.verify_checksums(&TAGGED_TCP4).unwrap();
    }

    #[test]
    fn ipv6_hop_by_hop_and_first_fragment() {
        let h = Headers::parse(&UDP6_HBH_FRAG).unwrap();
        let L3::Ipv6(f) = h.l3 else { panic!("{:?}", h.l3) };
        assert_eq!(f.protocol, IpProtocol::Udp);
        assert_eq!((f.traffic_class, f.flow_label, f.hop_limit), (0x20, 0xbeef, 9));
        assert_eq!((f.ext_headers, f.fragment, f.frag_ident), (2, Fragment::First, Some(0x11223344)));
        assert_eq!(h.l4_offset, 14 + 40 + 8 + 8);
        assert_eq!(h.l4, L4::Udp { src_port: 5000, dst_port: 53 });
        assert_eq!(h.payload_offset, h.l4_offset + 8);
        assert_eq!(h.end, UDP6_HBH_FRAG.len());
        h.verify_checksums(&UDP6_HBH_FRAG).unwrap();
    }

    #[test]
    fn a_first_fragments_udp_length_counts_the_whole_datagram() {
        // IPv4, MF set, offset 0: 8 bytes of a 1480-byte UDP datagram (198.51.100.9:1000 -> 10.0.0.5:53).
        let mut first: Vec<u8> = [
            &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00][..],
            &[0x45, 0, 0, 28, 0, 7, 0x20, 0, 64, 17, 0, 0, 198, 51, 100, 9, 10, 0, 0, 5],
            &[0x03, 0xe8, 0x00, 0x35, 0x05, 0xc8, 0, 0],
        ]
        .concat();
        crate::wire::refresh_ipv4_checksum(&mut first, 14);
        let h = Headers::parse(&first).unwrap();
        assert_eq!(h.fragment(), Fragment::First);
        assert_eq!(h.l4, L4::Udp { src_port: 1000, dst_port: 53 });
        assert_eq!((h.payload_offset, h.end), (42, 42));
        // Not a fragment, the same length is a lie; nor can any datagram be shorter than its header.
        first[20] = 0;
        crate::wire::refresh_ipv4_checksum(&mut first, 14);
        assert_eq!(Headers::parse(&first), Err(ParseError::UdpBadLength));
        first[20] = 0x20;
        crate::wire::refresh_ipv4_checksum(&mut first, 14);
        first[38..40].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(Headers::parse(&first), Err(ParseError::UdpBadLength));
        // A first fragment without the whole UDP header.
        first[17] = 24;
        crate::wire::refresh_ipv4_checksum(&mut first, 14);
        assert_eq!(Headers::parse(&first[..38]), Err(ParseError::UdpTruncated));
        // IPv6: the first fragment's UDP length beyond the fragment.
        let mut first6 = UDP6_HBH_FRAG;
        first6[74..76].copy_from_slice(&1480u16.to_be_bytes());
        let h = Headers::parse(&first6).unwrap();
        assert_eq!((h.fragment(), h.l4), (Fragment::First, L4::Udp { src_port: 5000, dst_port: 53 }));
    }

    #[test]
    fn later_fragments_have_no_l4() {
        let h = Headers::parse(&LATER_FRAG6).unwrap();
        assert_eq!(h.fragment(), Fragment::Later);
        assert_eq!(h.ip_protocol(), Some(IpProtocol::Tcp));
        assert_eq!(h.l4, L4::None);
        assert_eq!(h.l4_offset, 14 + 48);
        assert_eq!(h.payload_offset, h.l4_offset);
        let h = Headers::parse(&LATER_FRAG4).unwrap();
        assert_eq!(h.fragment(), Fragment::Later);
        assert_eq!(h.ip_protocol(), Some(IpProtocol::Udp));
        assert_eq!(h.l4, L4::None);
        h.verify_checksums(&LATER_FRAG4).unwrap();
    }

    #[test]
    fn arp() {
        let h = Headers::parse(&ARP_REQ).unwrap();
        let L3::Arp(a) = h.l3 else { panic!() };
        assert_eq!(a.operation, arp::Operation::Request);
        assert_eq!(a.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(h.end, 14 + 28);
        assert_eq!(h.pseudo_header(), None);
        h.verify_checksums(&ARP_REQ).unwrap();
    }

    #[test]
    fn icmp_echo_idents_and_padding() {
        let h = Headers::parse(&PING6).unwrap();
        assert_eq!(h.l4, L4::Icmpv6 { msg_type: icmpv6::Message::EchoRequest, code: 0, ident: 0x4242 });
        h.verify_checksums(&PING6).unwrap();
        let h = Headers::parse(&PING4_PADDED).unwrap();
        assert_eq!(h.l4, L4::Icmpv4 { msg_type: icmpv4::Message::EchoRequest, code: 0, ident: 0x77 });
        assert_eq!(h.end, 14 + 28);
        assert_eq!(PING4_PADDED.len(), 60);
        h.verify_checksums(&PING4_PADDED).unwrap();
    }

    #[test]
    fn gre_and_inner_frame() {
        let h = Headers::parse(&GRE4).unwrap();
        assert_eq!(
            h.l4,
            L4::Gre { protocol_type: EtherType::TransparentEthernetBridging, key: Some(0xabcd), version: 0 }
        );
        h.verify_checksums(&GRE4).unwrap();
        let inner = Headers::parse(&GRE4[h.payload_offset..h.end]).unwrap();
        assert_eq!(inner.eth_dst, mac(3));
        assert_eq!(inner.l4, L4::Udp { src_port: 1, dst_port: 2 });
    }

    #[test]
    fn vxlan_decap_by_the_caller() {
        let h = Headers::parse(&VXLAN4).unwrap();
        assert_eq!(h.l4, L4::Udp { src_port: 49152, dst_port: vxlan::DEFAULT_UDP_PORT });
        h.verify_checksums(&VXLAN4).unwrap();
        let v = vxlan::Packet::new_checked(&VXLAN4[h.payload_offset..h.end]).unwrap();
        assert_eq!(vxlan::Repr::parse(&v).unwrap().vni.get(), 5001);
        let inner = Headers::parse(v.payload()).unwrap();
        let L3::Ipv6(f) = inner.l3 else { panic!() };
        assert_eq!(f.dst, "2001:db8::b".parse::<Ipv6Addr>().unwrap());
        assert_eq!(inner.l4, L4::Tcp { src_port: 22, dst_port: 2222, flags: TcpFlags::ACK });
        inner.verify_checksums(v.payload()).unwrap();
    }

    #[test]
    fn unknown_ethertype_and_protocol() {
        let mut b = ARP_REQ;
        b[12] = 0x88;
        b[13] = 0xcc; // LLDP
        let h = Headers::parse(&b).unwrap();
        assert_eq!((h.l3, h.l4, h.end), (L3::Other, L4::None, b.len()));
        let mut b = LATER_FRAG4;
        b[14 + 6] = 0; // clear MF and offset
        b[14 + 7] = 0;
        b[14 + 9] = 89; // OSPF
        crate::wire::refresh_ipv4_checksum(&mut b, 14);
        let h = Headers::parse(&b).unwrap();
        assert_eq!(h.l4, L4::None);
        assert_eq!(h.ip_protocol(), Some(IpProtocol::Unknown(89)));
        assert_eq!(h.payload_offset, h.l4_offset);
    }

    fn with_checksums(mut b: Vec<u8>) -> Vec<u8> {
        // Recompute the IPv4 header checksum of an untagged frame after a test edits it.
        ipv4::Packet::new_unchecked(&mut b[14..]).fill_checksum();
        b
    }

    #[test]
    fn every_structural_error() {
        let cases: Vec<(Vec<u8>, ParseError)> = vec![
            (PING4_PADDED[..13].to_vec(), ParseError::EthernetTruncated),
            (TAGGED_TCP4[..17].to_vec(), ParseError::VlanTruncated),
            (
                {
                    let mut b = TAGGED_TCP4.to_vec();
                    b[16] = 0x81;
                    b[17] = 0x00;
                    b
                },
                ParseError::VlanStacked,
            ),
            (
                {
                    let mut b = TAGGED_TCP4.to_vec();
                    b[12] = 0x88;
                    b[13] = 0xa8;
                    b
                },
                ParseError::VlanStacked,
            ),
            (ARP_REQ[..14 + 27].to_vec(), ParseError::ArpTruncated),
            (
                {
                    let mut b = ARP_REQ.to_vec();
                    b[14 + 1] = 6; // hardware type IEEE 802
                    b
                },
                ParseError::ArpUnsupported,
            ),
            (PING4_PADDED[..14 + 19].to_vec(), ParseError::Ipv4Truncated),
            (
                {
                    let mut b = PING4_PADDED.to_vec();
                    b[14] = 0x55;
                    b
                },
                ParseError::Ipv4BadVersion,
            ),
            (
                {
                    let mut b = PING4_PADDED.to_vec();
                    b[14] = 0x44;
                    b
                },
                ParseError::Ipv4BadIhl,
            ),
            (
                {
                    let mut b = PING4_PADDED.to_vec();
                    b[14 + 3] = 12;
                    b
                },
                ParseError::Ipv4BadTotalLength,
            ),
            (PING4_PADDED[..14 + 27].to_vec(), ParseError::Ipv4TruncatedPayload),
            (PING6[..14 + 39].to_vec(), ParseError::Ipv6Truncated),
            (
                {
                    let mut b = PING6.to_vec();
                    b[14] = 0x40;
                    b
                },
                ParseError::Ipv6BadVersion,
            ),
            (PING6[..PING6.len() - 1].to_vec(), ParseError::Ipv6TruncatedPayload),
            (
                {
                    let mut b = UDP6_HBH_FRAG.to_vec();
                    b[14 + 40 + 1] = 9; // hop-by-hop length runs past the payload
                    b
                },
                ParseError::Ipv6ExtTruncated,
            ),
            (
                {
                    let mut b = UDP6_HBH_FRAG.to_vec();
                    b[14 + 40 + 8] = 0; // fragment header names hop-by-hop next
                    b
                },
                ParseError::Ipv6HopByHopNotFirst,
            ),
            (ipv6_chain(DEFAULT_MAX_EXT_HEADERS + 1), ParseError::Ipv6TooManyExtHeaders),
            (
                {
                    let mut b = with_checksums(PING4_PADDED.to_vec());
                    b[14 + 3] = 20 + 7;
                    with_checksums(b)
                },
                ParseError::Icmpv4Truncated,
            ),
            (
                {
                    let mut b = PING6.to_vec();
                    b[14 + 5] = 7;
                    b
                },
                ParseError::Icmpv6Truncated,
            ),
            (
                {
                    let mut b = TAGGED_TCP4.to_vec();
                    b[18 + 3] = 24 + 19;
                    b
                },
                ParseError::TcpTruncated,
            ),
            (
                {
                    let mut b = TAGGED_TCP4.to_vec();
                    b[18 + 24 + 12] = 0x60;
                    b
                },
                ParseError::TcpBadDataOffset,
            ),
            (
                {
                    let mut b = LATER_FRAG4.to_vec();
                    b[14 + 6] = 0;
                    b[14 + 7] = 0;
                    b
                },
                ParseError::UdpTruncated,
            ),
            (
                {
                    let mut b = VXLAN4.to_vec();
                    b[14 + 20 + 5] = 7;
                    b
                },
                ParseError::UdpBadLength,
            ),
            (
                {
                    let mut b = GRE4.to_vec();
                    b[14 + 20] |= 0x10; // S bit: a sequence number that is the inner frame
                    b.truncate(14 + 20 + 11);
                    b[14 + 3] = 20 + 11;
                    b
                },
                ParseError::GreTruncated,
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (i, (bytes, err)) in cases.iter().enumerate() {
            // Each case breaks one thing: the IPv4 header checksums made right again after the edit.
            let mut bytes = bytes.clone();
            crate::fuzzing::fix_ipv4_headers(&mut bytes);
            assert_eq!(Headers::parse(&bytes).map(|_| ()), Err(*err), "case {i}");
            seen.insert(*err);
        }
        // And the checksum itself (RFC 1812 5.2.2: a router verifies it before anything else).
        let mut ttl_changed = PING4_PADDED.to_vec();
        ttl_changed[14 + 8] ^= 0x01;
        assert_eq!(Headers::parse(&ttl_changed).map(|_| ()), Err(ParseError::Ipv4BadChecksum));
        seen.insert(ParseError::Ipv4BadChecksum);
        // Every reason Headers::parse can give is exercised; the rest come from checksums or from
        // Repr::parse of headers the caller decides to look into.
        let elsewhere = [
            ParseError::Ipv4BadOptions, // a class of its own to Headers::parse
            ParseError::Icmpv4BadChecksum,
            ParseError::Icmpv4Unsupported,
            ParseError::Icmpv6BadChecksum,
            ParseError::Icmpv6Unsupported,
            ParseError::NdpInvalid,
            ParseError::NdpBadOption,
            ParseError::TcpBadChecksum,
            ParseError::UdpBadChecksum,
            ParseError::UdpZeroChecksumIpv6,
            ParseError::GreBadVersion,
            ParseError::GreUnsupportedFlags,
            ParseError::GreBadChecksum,
            ParseError::VxlanTruncated,
            ParseError::VxlanNoVni,
        ];
        for e in ParseError::ALL {
            assert!(seen.contains(e) != elsewhere.contains(e), "{e:?}");
        }
    }

    #[test]
    fn every_checksum_error() {
        let flip = |src: &[u8], at: usize| {
            let mut b = src.to_vec();
            b[at] ^= 0x01;
            b
        };
        // A bad IPv4 header checksum is the parser's own error (every_structural_error).
        assert_eq!(Headers::parse(&flip(&PING4_PADDED, 14 + 8)).map(|_| ()), Err(ParseError::Ipv4BadChecksum));
        let cases = [
            (flip(&TAGGED_TCP4, 61), ParseError::TcpBadChecksum),
            (flip(&VXLAN4, VXLAN4.len() - 1), ParseError::UdpBadChecksum),
            (flip(&PING4_PADDED, 14 + 20 + 7), ParseError::Icmpv4BadChecksum),
            (flip(&PING6, PING6.len() - 1), ParseError::Icmpv6BadChecksum),
        ];
        for (bytes, err) in cases {
            let h = Headers::parse(&bytes).unwrap();
            assert_eq!(h.verify_checksums(&bytes), Err(err));
        }
        // UDP over IPv6 without a checksum.
        let mut b = build_udp6(&[1, 2, 3]);
        let h = Headers::parse(&b).unwrap();
        h.verify_checksums(&b).unwrap();
        b[14 + 40 + 6] = 0;
        b[14 + 40 + 7] = 0;
        assert_eq!(Headers::parse(&b).unwrap().verify_checksums(&b), Err(ParseError::UdpZeroChecksumIpv6));
        // GRE with a checksum.
        let mut g = gre_with_checksum();
        Headers::parse(&g).unwrap().verify_checksums(&g).unwrap();
        let n = g.len();
        g[n - 1] ^= 1;
        assert_eq!(Headers::parse(&g).unwrap().verify_checksums(&g), Err(ParseError::GreBadChecksum));
        // A buffer shorter than the one parsed.
        let h = Headers::parse(&PING6).unwrap();
        assert_eq!(h.verify_checksums(&PING6[..50]), Err(ParseError::Ipv6TruncatedPayload));
    }

    /// An IPv6/UDP frame built with the Reprs.
    fn build_udp6(payload: &[u8]) -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut b = vec![0xa5u8; 14 + 40 + 8 + payload.len()];
        EthernetRepr { src_addr: mac(1), dst_addr: mac(2), vlan: None, ethertype: EtherType::Ipv6 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: 8 + payload.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut b[14..]));
        let mut u = udp::Packet::new_unchecked(&mut b[54..]);
        UdpRepr { src_port: 7, dst_port: 9 }.emit(&mut u, payload.len());
        u.payload_mut().copy_from_slice(payload);
        u.fill_checksum(&PseudoHeader::V6 { src, dst });
        b
    }

    /// IPv4/GRE with C and K bits and an inner payload.
    fn gre_with_checksum() -> Vec<u8> {
        let mut b = vec![0xa5u8; 14 + 20 + 12 + 6];
        EthernetRepr { src_addr: mac(1), dst_addr: mac(2), vlan: None, ethertype: EtherType::Ipv4 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
        let r = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(192, 0, 2, 2),
            protocol: IpProtocol::Gre,
            payload_len: 18,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        };
        r.emit(&mut ipv4::Packet::new_unchecked(&mut b[14..]));
        let mut g = gre::Packet::new_unchecked(&mut b[34..]);
        gre::Repr {
            protocol_type: EtherType::TransparentEthernetBridging,
            checksum: true,
            key: Some(1),
            sequence: None,
        }
        .emit(&mut g);
        g.payload_mut().copy_from_slice(b"frame!");
        g.fill_checksum();
        b
    }

    /// IPv6 with `n` destination options headers, then TCP.
    fn ipv6_chain(n: usize) -> Vec<u8> {
        let mut b = vec![0u8; 14 + 40 + 8 * n + 20];
        EthernetRepr { src_addr: mac(1), dst_addr: mac(2), vlan: None, ethertype: EtherType::Ipv6 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
        Ipv6Repr {
            src_addr: Ipv6Addr::LOCALHOST,
            dst_addr: Ipv6Addr::LOCALHOST,
            next_header: if n == 0 { IpProtocol::Tcp } else { IpProtocol::Ipv6Opts },
            payload_len: 8 * n + 20,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut b[14..]));
        for i in 0..n {
            let at = 54 + 8 * i;
            b[at] = if i + 1 == n { 6 } else { 60 };
            b[at + 2] = 1;
            b[at + 3] = 4;
        }
        let at = 54 + 8 * n;
        b[at + 12] = 0x50;
        b
    }

    #[test]
    fn extension_header_bound() {
        let h = Headers::parse(&ipv6_chain(DEFAULT_MAX_EXT_HEADERS)).unwrap();
        assert_eq!(h.l4, L4::Tcp { src_port: 0, dst_port: 0, flags: TcpFlags::empty() });
        let L3::Ipv6(f) = h.l3 else { panic!() };
        assert_eq!(usize::from(f.ext_headers), DEFAULT_MAX_EXT_HEADERS);
    }

    #[test]
    fn offsets_are_consistent_with_the_views() {
        for frame in [&TAGGED_TCP4[..], &UDP6_HBH_FRAG, &PING6, &PING4_PADDED, &GRE4, &VXLAN4] {
            let h = Headers::parse(frame).unwrap();
            assert!(h.l3_offset <= h.l4_offset && h.l4_offset <= h.payload_offset && h.payload_offset <= h.end);
            assert!(h.end <= frame.len());
        }
    }

    /// Frames built from random Reprs parse back to the fields they were built from.
    fn build_tcp_frame(
        vlan: Option<u16>,
        v6: bool,
        src: [u8; 16],
        dst: [u8; 16],
        ports: (u16, u16),
        flags: u16,
        payload: &[u8],
    ) -> (Vec<u8>, PseudoHeader) {
        let l2 = if vlan.is_some() { 18 } else { 14 };
        let l3 = if v6 { 40 } else { 20 };
        let mut b = vec![0xa5u8; l2 + l3 + 20 + payload.len()];
        EthernetRepr {
            src_addr: mac(1),
            dst_addr: mac(2),
            vlan: vlan.map(VlanTag::from_tci),
            ethertype: if v6 { EtherType::Ipv6 } else { EtherType::Ipv4 },
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
        let pseudo = if v6 {
            let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len: 20 + payload.len(),
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 1,
            }
            .emit(&mut ipv6::Packet::new_unchecked(&mut b[l2..]));
            PseudoHeader::V6 { src: s, dst: d }
        } else {
            let s = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
            let d = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
            Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                protocol: IpProtocol::Tcp,
                payload_len: 20 + payload.len(),
                ttl: 64,
                tos: 0,
                ident: 1,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            }
            .emit(&mut ipv4::Packet::new_unchecked(&mut b[l2..]));
            PseudoHeader::V4 { src: s, dst: d }
        };
        let mut t = tcp::Packet::new_unchecked(&mut b[l2 + l3..]);
        TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            seq_number: 1,
            ack_number: 2,
            flags: TcpFlags::from_bits(flags),
            window_len: 100,
            urgent_at: 0,
            options: &[],
        }
        .emit(&mut t);
        t.payload_mut().copy_from_slice(payload);
        t.fill_checksum(&pseudo);
        (b, pseudo)
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(h) = Headers::parse(&bytes) {
                prop_assert!(h.l3_offset <= h.l4_offset && h.l4_offset <= h.payload_offset);
                prop_assert!(h.payload_offset <= h.end && h.end <= bytes.len());
                let _ = h.verify_checksums(&bytes);
            }
        }

        /// Valid frames with random bytes overwritten, or cut short, never panic either (these reach
        /// deeper layers than random bytes do).
        #[test]
        fn mutated_frames_never_panic(
            which in 0usize..9, edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<proptest::sample::Index>(),
        ) {
            let seeds: [&[u8]; 9] =
                [&TAGGED_TCP4, &UDP6_HBH_FRAG, &LATER_FRAG6, &LATER_FRAG4, &ARP_REQ, &PING6, &PING4_PADDED, &GRE4, &VXLAN4];
            let mut b = seeds[which].to_vec();
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            b.truncate(cut.index(b.len() + 1));
            if let Ok(h) = Headers::parse(&b) {
                prop_assert!(h.payload_offset <= h.end && h.end <= b.len());
                let _ = h.verify_checksums(&b);
                let _ = h.verify_checksums(&b[..b.len() / 2]);
            }
        }

        #[test]
        fn built_frames_parse_back(
            vlan in proptest::option::of(0u16..0x1000), v6 in any::<bool>(), src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            sp in any::<u16>(), dp in any::<u16>(), flags in 0u16..0x200,
            payload in proptest::collection::vec(any::<u8>(), 0..32), padding in 0usize..20,
        ) {
            let (mut b, pseudo) = build_tcp_frame(vlan, v6, src, dst, (sp, dp), flags, &payload);
            let end = b.len();
            b.resize(end + padding, 0);
            let h = Headers::parse(&b).unwrap();
            prop_assert_eq!(h.vlan.map(|t| t.vid), vlan);
            prop_assert_eq!(h.pseudo_header(), Some(pseudo));
            prop_assert_eq!(h.l4, L4::Tcp { src_port: sp, dst_port: dp, flags: TcpFlags::from_bits(flags) });
            prop_assert_eq!(h.end, end);
            prop_assert_eq!(&b[h.payload_offset..h.end], &payload[..]);
            prop_assert_eq!(h.verify_checksums(&b), Ok(()));
        }

        /// NAT on a parsed frame, done incrementally through the views, leaves every checksum valid
        /// and equal to a full recomputation.
        #[test]
        fn incremental_nat_on_frames(
            v6 in any::<bool>(), src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), new_src in any::<[u8; 16]>(),
            new_port in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let (mut b, _) = build_tcp_frame(None, v6, src, dst, (1000, 2000), 0x12, &payload);
            let h = Headers::parse(&b).unwrap();
            let (l3, l4, end) = (h.l3_offset, h.l4_offset, h.end);
            let new_pseudo = if v6 {
                let new = Ipv6Addr::from(new_src);
                let mut ip = ipv6::Packet::new_checked(&mut b[l3..end]).unwrap();
                let old = ip.src_addr();
                ip.set_src_addr(new);
                let mut t = tcp::Packet::new_checked(&mut b[l4..end]).unwrap();
                t.update_checksum_addr_v6(old, new);
                t.rewrite_src_port(new_port);
                PseudoHeader::V6 { src: new, dst: Ipv6Addr::from(dst) }
            } else {
                let new = Ipv4Addr::new(new_src[0], new_src[1], new_src[2], new_src[3]);
                let mut ip = ipv4::Packet::new_checked(&mut b[l3..end]).unwrap();
                let old = ip.rewrite_src_addr(new);
                ip.decrement_ttl();
                let mut t = tcp::Packet::new_checked(&mut b[l4..end]).unwrap();
                t.update_checksum_addr_v4(old, new);
                t.rewrite_src_port(new_port);
                PseudoHeader::V4 { src: new, dst: Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]) }
            };
            let h2 = Headers::parse(&b).unwrap();
            prop_assert_eq!(h2.pseudo_header(), Some(new_pseudo));
            prop_assert_eq!(h2.verify_checksums(&b), Ok(()));
            let mut full = b.clone();
            let mut t = tcp::Packet::new_checked(&mut full[l4..end]).unwrap();
            t.fill_checksum(&new_pseudo);
            if !v6 {
                ipv4::Packet::new_checked(&mut full[l3..end]).unwrap().fill_checksum();
            }
            prop_assert_eq!(full, b);
        }
    }
}
