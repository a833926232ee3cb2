//! The packet fields rule conditions read, as one plain `Copy` struct.

use core::net::IpAddr;

use crate::wire::{EthernetAddress, Fragment, Headers, L3, L4};

/// What a rule condition can see of a packet. Built from a parsed frame with
/// [`PacketMatchFields::from_headers`]; rewritten by the NAT stage between rules (conditions see
/// the packet as modified by earlier rules, see [`resume`](super::resume)).
///
/// The fields follow MidoNet's (and Open vSwitch's) flow match:
/// * `src_port` / `dst_port` are the TCP or UDP ports, and for ICMP and ICMPv6 the message type and
///   code: `src-port 8` matches echo requests, as in MidoNet's security-group translation;
/// * for ARP, `src_ip` / `dst_ip` are the sender and target protocol addresses and `proto` is the
///   low byte of the opcode;
/// * a later fragment has no L4 fields; GRE and other protocols without ports have none either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketMatchFields {
    /// Ethernet source.
    pub eth_src: EthernetAddress,
    /// Ethernet destination.
    pub eth_dst: EthernetAddress,
    /// Ethertype after the 802.1Q tag, if any.
    pub ethertype: u16,
    /// IP source (ARP: sender protocol address).
    pub src_ip: Option<IpAddr>,
    /// IP destination (ARP: target protocol address).
    pub dst_ip: Option<IpAddr>,
    /// IP protocol, IPv6 upper-layer protocol (ARP: opcode).
    pub proto: Option<u8>,
    /// IPv4 ToS byte or IPv6 traffic class.
    pub tos: Option<u8>,
    /// L4 source port, or ICMP type.
    pub src_port: Option<u16>,
    /// L4 destination port, or ICMP code.
    pub dst_port: Option<u16>,
    /// Fragmentation state.
    pub fragment: Fragment,
}

impl PacketMatchFields {
    /// A non-IP frame with only Ethernet fields.
    pub fn ethernet(eth_src: EthernetAddress, eth_dst: EthernetAddress, ethertype: u16) -> Self {
        PacketMatchFields {
            eth_src,
            eth_dst,
            ethertype,
            src_ip: None,
            dst_ip: None,
            proto: None,
            tos: None,
            src_port: None,
            dst_port: None,
            fragment: Fragment::Unfragmented,
        }
    }

    /// The fields of a frame parsed by [`Headers::parse`].
    pub fn from_headers(h: &Headers) -> Self {
        let mut f = PacketMatchFields::ethernet(h.eth_src, h.eth_dst, h.ethertype.into());
        match h.l3 {
            L3::Ipv4(ip) => {
                f.src_ip = Some(IpAddr::V4(ip.src));
                f.dst_ip = Some(IpAddr::V4(ip.dst));
                f.proto = Some(ip.protocol.into());
                f.tos = Some(ip.tos);
                f.fragment = ip.fragment;
            }
            L3::Ipv6(ip) => {
                f.src_ip = Some(IpAddr::V6(ip.src));
                f.dst_ip = Some(IpAddr::V6(ip.dst));
                f.proto = Some(ip.protocol.into());
                f.tos = Some(ip.traffic_class);
                f.fragment = ip.fragment;
            }
            L3::Arp(arp) => {
                f.src_ip = Some(IpAddr::V4(arp.source_protocol_addr));
                f.dst_ip = Some(IpAddr::V4(arp.target_protocol_addr));
                f.proto = Some(u16::from(arp.operation) as u8);
            }
            L3::Other => {}
        }
        let (sp, dp) = match h.l4 {
            L4::Tcp { src_port, dst_port, .. } | L4::Udp { src_port, dst_port } => (Some(src_port), Some(dst_port)),
            L4::Icmpv4 { msg_type, code, .. } => (Some(u16::from(u8::from(msg_type))), Some(u16::from(code))),
            L4::Icmpv6 { msg_type, code, .. } => (Some(u16::from(u8::from(msg_type))), Some(u16::from(code))),
            L4::Gre { .. } | L4::None => (None, None),
        };
        f.src_port = sp;
        f.dst_port = dp;
        f
    }
}

impl From<&Headers> for PacketMatchFields {
    fn from(h: &Headers) -> Self {
        PacketMatchFields::from_headers(h)
    }
}
