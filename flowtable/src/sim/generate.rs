//! Frames the simulation builds into a caller-provided buffer: ICMP errors, ARP requests, neighbour
//! solicitations. Each returns the frame length, or `None` when the buffer is too small.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, Headers, Icmpv4DstUnreachable,
    Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, Icmpv6DstUnreachable, Icmpv6Packet, Icmpv6ParamProblem, Icmpv6Repr,
    Icmpv6TimeExceeded, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, NeighborFlags, PseudoHeader,
    ARP_PACKET_LEN, ETHERNET_HEADER_LEN, ICMPV4_HEADER_LEN, ICMPV6_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};

/// RFC 1812 section 4.3.2.3: an ICMPv4 error is at most 576 bytes of IP.
const ICMPV4_ERROR_MAX: usize = 576;
/// RFC 4443 section 2.4 (c): an ICMPv6 error fits the IPv6 minimum MTU.
const ICMPV6_ERROR_MAX: usize = 1280;
/// TTL / hop limit of generated packets.
const GENERATED_TTL: u8 = 64;

/// The ICMP error to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpError {
    /// ICMPv4 destination unreachable, with the next-hop MTU for "fragmentation needed".
    V4Unreachable(Icmpv4DstUnreachable, u16),
    /// ICMPv4 time exceeded in transit.
    V4TimeExceeded,
    /// ICMPv6 destination unreachable.
    V6Unreachable(Icmpv6DstUnreachable),
    /// ICMPv6 packet too big with the MTU.
    V6TooBig(u32),
    /// ICMPv6 hop limit exceeded in transit.
    V6TimeExceeded,
    /// ICMPv4 parameter problem (code 0) pointing at this octet of the IP header.
    V4ParamProblem(u8),
    /// ICMPv6 parameter problem pointing at this octet, counted from the IPv6 header.
    V6ParamProblem(Icmpv6ParamProblem, u32),
}

fn ethernet(out: &mut [u8], src: EthernetAddress, dst: EthernetAddress, ty: EtherType) {
    let mut eth = EthernetFrame::new_unchecked(&mut out[..ETHERNET_HEADER_LEN]);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    eth.set_ethertype(ty);
}

/// Builds into `out` the ICMP error about the packet in `frame` (parsed as `h`), from `src_mac` /
/// `src_ip` back to the packet's sender. The quote is as much of the invoking packet as fits the
/// RFC limits. `src_ip` must be of the packet's family.
pub fn icmp_error(
    frame: &[u8],
    h: &Headers,
    out: &mut [u8],
    src_mac: EthernetAddress,
    src_ip: IpAddr,
    err: IcmpError,
) -> Option<usize> {
    let invoking = frame.get(h.l3_offset..h.end)?;
    let dst_mac = h.eth_src;
    match (src_ip, h.pseudo_header()?) {
        (IpAddr::V4(src), PseudoHeader::V4 { src: dst, .. }) => {
            let room = out.len().min(ETHERNET_HEADER_LEN + ICMPV4_ERROR_MAX);
            let quote_len =
                invoking.len().min(room.checked_sub(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + ICMPV4_HEADER_LEN)?);
            let data = &invoking[..quote_len];
            let icmp = match err {
                IcmpError::V4Unreachable(reason, next_hop_mtu) => {
                    Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, data }
                }
                IcmpError::V4TimeExceeded => Icmpv4Repr::TimeExceeded { reason: Icmpv4TimeExceeded::TtlExpired, data },
                IcmpError::V4ParamProblem(pointer) => Icmpv4Repr::ParamProblem { pointer, data },
                _ => return None,
            };
            let ip = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: IpProtocol::Icmp,
                payload_len: icmp.buffer_len(),
                ttl: GENERATED_TTL,
                tos: 0xc0,
                ident: 0,
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
            };
            let l4 = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
            let end = l4 + icmp.buffer_len();
            ethernet(out, src_mac, dst_mac, EtherType::Ipv4);
            ip.emit(&mut Ipv4Packet::new_unchecked(&mut out[ETHERNET_HEADER_LEN..l4]));
            icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut out[l4..end]));
            Some(end)
        }
        (IpAddr::V6(src), PseudoHeader::V6 { src: dst, .. }) => {
            let room = out.len().min(ETHERNET_HEADER_LEN + ICMPV6_ERROR_MAX);
            let quote_len =
                invoking.len().min(room.checked_sub(ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + ICMPV6_HEADER_LEN)?);
            let data = &invoking[..quote_len];
            let icmp = match err {
                IcmpError::V6Unreachable(reason) => Icmpv6Repr::DstUnreachable { reason, data },
                IcmpError::V6TooBig(mtu) => Icmpv6Repr::PktTooBig { mtu, data },
                IcmpError::V6TimeExceeded => {
                    Icmpv6Repr::TimeExceeded { reason: Icmpv6TimeExceeded::HopLimitExceeded, data }
                }
                IcmpError::V6ParamProblem(reason, pointer) => Icmpv6Repr::ParamProblem { reason, pointer, data },
                _ => return None,
            };
            Some(emit_ipv6(out, src_mac, dst_mac, src, dst, GENERATED_TTL, &icmp))
        }
        _ => None,
    }
}

fn emit_ipv6(
    out: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    icmp: &Icmpv6Repr<'_>,
) -> usize {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    let l4 = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
    let end = l4 + icmp.buffer_len();
    ethernet(out, src_mac, dst_mac, EtherType::Ipv6);
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut out[ETHERNET_HEADER_LEN..l4]));
    icmp.emit(&PseudoHeader::V6 { src, dst }, &mut Icmpv6Packet::new_unchecked(&mut out[l4..end]));
    end
}

/// Builds into `out` a broadcast ARP request for `target` from `src_mac` / `src_ip`.
pub fn arp_request(out: &mut [u8], src_mac: EthernetAddress, src_ip: Ipv4Addr, target: Ipv4Addr) -> Option<usize> {
    arp_request_to(out, EthernetAddress::BROADCAST, src_mac, src_ip, target)
}

/// Builds into `out` an ARP request for `target` sent point to point to `target_mac`, the MAC
/// it was known at: RFC 1122 section 2.3.2.1's unicast poll of a neighbour in use.
pub fn arp_poll(
    out: &mut [u8],
    src_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    target_mac: EthernetAddress,
    target: Ipv4Addr,
) -> Option<usize> {
    arp_request_to(out, target_mac, src_mac, src_ip, target)
}

fn arp_request_to(
    out: &mut [u8],
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    let end = ETHERNET_HEADER_LEN + ARP_PACKET_LEN;
    let out = out.get_mut(..end)?;
    ethernet(out, src_mac, dst_mac, EtherType::Arp);
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: src_mac,
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut out[ETHERNET_HEADER_LEN..]));
    Some(end)
}

/// Builds into `out` a neighbour solicitation (RFC 4861 section 7.2.2) for `target`, sent to its
/// solicited-node multicast address, with the source link-layer address option.
pub fn neighbour_solicit(
    out: &mut [u8],
    src_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<usize> {
    let t = target.octets();
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(t[13]), u16::from_be_bytes([t[14], t[15]]));
    let d = dst.octets();
    let dst_mac = EthernetAddress([0x33, 0x33, d[12], d[13], d[14], d[15]]);
    solicit_to(out, dst_mac, dst, src_mac, src_ip, target)
}

/// Builds into `out` a neighbour solicitation for `target` sent to the address itself at
/// `target_mac`, the MAC it was known at (RFC 4861 section 7.3.3's probe of a stale entry in use),
/// with the source link-layer address option.
pub fn neighbour_probe(
    out: &mut [u8],
    src_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    target_mac: EthernetAddress,
    target: Ipv6Addr,
) -> Option<usize> {
    solicit_to(out, target_mac, target, src_mac, src_ip, target)
}

/// A neighbour solicitation for `target` to `dst_mac` / `dst`, with the source link-layer address.
fn solicit_to(
    out: &mut [u8],
    dst_mac: EthernetAddress,
    dst: Ipv6Addr,
    src_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<usize> {
    let icmp = Icmpv6Repr::NeighborSolicit { target_addr: target, lladdr: Some(src_mac) };
    if out.len() < ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + icmp.buffer_len() {
        return None;
    }
    Some(emit_ipv6(out, src_mac, dst_mac, src_ip, dst, 255, &icmp))
}

/// Builds into `out` a neighbour advertisement (RFC 4861 section 7.2.4) for `target` from router
/// MAC `src_mac` to `dst_mac` / `dst_ip`: flag R, S when `solicited`, O when `override_entry`
/// (not for an anycast target), the target link-layer address option, hop limit 255, sent from
/// the target address.
pub fn neighbour_advert(
    out: &mut [u8],
    src_mac: EthernetAddress,
    target: Ipv6Addr,
    dst_mac: EthernetAddress,
    dst_ip: Ipv6Addr,
    solicited: bool,
    override_entry: bool,
) -> Option<usize> {
    let icmp = Icmpv6Repr::NeighborAdvert {
        flags: NeighborFlags { router: true, solicited, override_entry },
        target_addr: target,
        lladdr: Some(src_mac),
    };
    if out.len() < ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + icmp.buffer_len() {
        return None;
    }
    Some(emit_ipv6(out, src_mac, dst_mac, target, dst_ip, 255, &icmp))
}
