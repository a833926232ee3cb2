//! Wire formats: bounds-checked views over byte buffers, parsed and rewritten in place.
//!
//! Each header has a `Packet<T: AsRef<[u8]>>` (or `Frame`) view that wraps only a buffer `T`; its
//! offsets are byte ranges in a private `field` module. Getters need `AsRef<[u8]>`, setters
//! `AsMut<[u8]>`, so one type parses and rewrites. A `Repr` is the validated form with `parse` and
//! `emit`. Protocol numbers are total enums with an `Unknown(n)` arm. This module knows bytes and
//! decides nothing: what to do with a packet belongs to the layers above.
//!
//! | file | what | main types |
//! | --- | --- | --- |
//! | `ethernet.rs` | Ethernet II, one 802.1Q tag | [`EthernetFrame`], [`EthernetRepr`], [`EtherType`], [`VlanTag`] |
//! | `arp.rs` | ARP for Ethernet/IPv4 | [`ArpPacket`], [`ArpRepr`] |
//! | `ip.rs` | protocol numbers, pseudo-header | [`IpProtocol`], [`PseudoHeader`] |
//! | `ipv4.rs` | IPv4 with options (walked and classified), fragments | [`Ipv4Packet`], [`Ipv4Repr`], [`Ipv4OptionsClass`] |
//! | `ipv6.rs` | IPv6 fixed header | [`Ipv6Packet`], [`Ipv6Repr`] |
//! | `ipv6ext.rs` | extension headers, the bounded walk, their processing at the destination | [`Ipv6ExtHeader`], [`Ipv6FragmentHeader`], [`Ipv6ExtChain`] |
//! | `icmpv4.rs` | echo, unreachable (frag needed), time exceeded, parameter problem | [`Icmpv4Packet`], [`Icmpv4Repr`] |
//! | `icmpv6.rs` | echo, too big, time exceeded, unreachable, parameter problem, NS/NA | [`Icmpv6Packet`], [`Icmpv6Repr`], [`NdpOption`] |
//! | `tcp.rs` | TCP | [`TcpPacket`], [`TcpRepr`], [`TcpFlags`] |
//! | `udp.rs` | UDP and its zero-checksum rules | [`UdpPacket`], [`UdpRepr`] |
//! | `gre.rs` | GRE with key and sequence | [`GrePacket`], [`GreRepr`] |
//! | `vxlan.rs` | VXLAN | [`VxlanPacket`], [`VxlanRepr`], [`Vni`] |
//! | `checksum.rs` | internet checksum, RFC 1624 updates | [`checksum`] |
//! | `headers.rs` | the parse entry point | [`Headers`], [`L3`], [`L4`], [`Fragment`] |
//! | `error.rs` | drop reasons | [`ParseError`] |
//!
//! # The panic contract
//!
//! * `new_unchecked` wraps anything; its accessors may panic on a short buffer. Use it to emit into a
//!   buffer sized with the `Repr`'s `buffer_len` / `header_len`.
//! * `new_checked` (`check_len`) validates every length the accessors rely on; after it no accessor of
//!   the view panics, whatever the bytes. Each view's docs name the setters that void the check
//!   (those that change a length, or a flag that adds a field).
//! * `Repr::parse` and [`Headers::parse`] never panic, on any input: they return a [`ParseError`],
//!   whose variants are the drop reasons a core counts.
//! * `Repr::emit` writes headers only; payloads stay where they are (rewrite in place, never copy).
//!   Checksums that cover the payload are filled by the view's `fill_checksum` once it is in place.
//!   ICMP is the exception: an ICMP message is generated whole, so its `emit` writes the data too.
//!
//! Nothing here allocates.
//!
//! # Example: parse, then NAT the source in place
//!
//! ```
//! use core::net::Ipv4Addr;
//! use flowtable::wire::{Headers, Ipv4Packet, TcpPacket, L4};
//!
//! // 802.1Q-tagged IPv4 (with options) TCP SYN.
//! let mut frame = [
//!     0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x81, 0x00, 0x60, 0x2a, 0x08, 0x00,
//!     0x46, 0x10, 0x00, 0x2c, 0x00, 0x63, 0x00, 0x00, 0x3d, 0x06, 0x8e, 0x20, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33,
//!     0x64, 0x02, 0x01, 0x01, 0x01, 0x01, 0x9c, 0x40, 0x00, 0xb3, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
//!     0x50, 0x02, 0x20, 0x00, 0x06, 0xb7, 0x00, 0x00,
//! ];
//! let h = Headers::parse(&frame).unwrap();
//! assert!(matches!(h.l4, L4::Tcp { dst_port: 179, .. }));
//! h.verify_checksums(&frame).unwrap();
//!
//! let mut ip = Ipv4Packet::new_checked(&mut frame[h.l3_offset..h.end]).unwrap();
//! let old = ip.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 1));
//! ip.decrement_ttl();
//! let mut tcp = TcpPacket::new_checked(&mut frame[h.l4_offset..h.end]).unwrap();
//! tcp.update_checksum_addr_v4(old, Ipv4Addr::new(203, 0, 113, 1));
//! tcp.rewrite_src_port(61000);
//! Headers::parse(&frame).unwrap().verify_checksums(&frame).unwrap();
//! ```

pub mod checksum;

/// Test support: recomputes the header checksum of the IPv4 packet at `l3_offset` of `frame`
/// after a test edited its header (the parser verifies it, as a router must).
#[cfg(test)]
pub(crate) fn refresh_ipv4_checksum(frame: &mut [u8], l3_offset: usize) {
    Ipv4Packet::new_unchecked(&mut frame[l3_offset..]).fill_checksum();
}

/// Test support: puts `options` (a multiple of 4 bytes, at most 40) into the IPv4 header at
/// `l3_offset` of `frame`, after its fixed 20 bytes, with the IHL, total length and header
/// checksum made right (the L4 checksum covers no option).
#[cfg(test)]
pub(crate) fn insert_ipv4_options(frame: &mut Vec<u8>, l3_offset: usize, options: &[u8]) {
    assert!(options.len().is_multiple_of(4) && options.len() <= 40, "{} option bytes", options.len());
    let at = l3_offset + IPV4_HEADER_LEN;
    frame.splice(at..at, options.iter().copied());
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3_offset..]);
    let (header_len, total_len) = (ip.header_len() + options.len(), ip.total_len() + options.len() as u16);
    ip.set_header_len(header_len);
    ip.set_total_len(total_len);
    ip.fill_checksum();
}

mod arp;
mod error;
mod ethernet;
mod gre;
mod headers;
mod icmpv4;
mod icmpv6;
mod ip;
mod ipv4;
mod ipv6;
mod ipv6ext;
mod tcp;
mod udp;
mod vxlan;

pub use self::arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr, PACKET_LEN as ARP_PACKET_LEN};
pub use self::error::{ParseError, Result};
pub use self::ethernet::{
    pop_vlan_tag, push_vlan_tag, Address as EthernetAddress, EtherType, Frame as EthernetFrame, Repr as EthernetRepr,
    VlanTag, HEADER_LEN as ETHERNET_HEADER_LEN, VLAN_TAG_LEN,
};
pub use self::gre::{Packet as GrePacket, Repr as GreRepr, BASE_HEADER_LEN as GRE_BASE_HEADER_LEN};
pub use self::headers::{Fragment, Headers, Ipv4Fields, Ipv6Fields, L3, L4};
pub use self::icmpv4::{
    DstUnreachable as Icmpv4DstUnreachable, Message as Icmpv4Message, Packet as Icmpv4Packet, Repr as Icmpv4Repr,
    TimeExceeded as Icmpv4TimeExceeded, HEADER_LEN as ICMPV4_HEADER_LEN,
};
pub use self::icmpv6::{
    DstUnreachable as Icmpv6DstUnreachable, Message as Icmpv6Message, NdpOption, NdpOptionType, NdpOptions,
    NeighborFlags, Packet as Icmpv6Packet, ParamProblem as Icmpv6ParamProblem, Repr as Icmpv6Repr,
    TimeExceeded as Icmpv6TimeExceeded, HEADER_LEN as ICMPV6_HEADER_LEN, NDP_LLADDR_OPTION_LEN, NDP_NS_NA_LEN,
};
pub use self::ip::{IpProtocol, PseudoHeader};
pub use self::ipv4::{
    classify_options as classify_ipv4_options, record_in_reply as record_in_ipv4_reply,
    unwalkable_option as unwalkable_ipv4_option, OptionsClass as Ipv4OptionsClass, Packet as Ipv4Packet,
    Repr as Ipv4Repr, HEADER_LEN as IPV4_HEADER_LEN, MAX_HEADER_LEN as IPV4_MAX_HEADER_LEN,
};
pub use self::ipv6::{Packet as Ipv6Packet, Repr as Ipv6Repr, HEADER_LEN as IPV6_HEADER_LEN};
pub use self::ipv6ext::{
    at_destination as ipv6_ext_headers_at_destination, walk as walk_ipv6_ext_headers,
    AtDestination as Ipv6AtDestination, ExtChain as Ipv6ExtChain, ExtHeader as Ipv6ExtHeader,
    FragmentHeader as Ipv6FragmentHeader, FragmentRepr as Ipv6FragmentRepr, DEFAULT_MAX_EXT_HEADERS,
    FRAGMENT_HEADER_LEN as IPV6_FRAGMENT_HEADER_LEN,
};
pub use self::tcp::{
    Flags as TcpFlags, Packet as TcpPacket, Repr as TcpRepr, HEADER_LEN as TCP_HEADER_LEN,
    MAX_HEADER_LEN as TCP_MAX_HEADER_LEN,
};
pub use self::udp::{Packet as UdpPacket, Repr as UdpRepr, HEADER_LEN as UDP_HEADER_LEN};
pub use self::vxlan::{
    Packet as VxlanPacket, Repr as VxlanRepr, Vni, DEFAULT_UDP_PORT as VXLAN_DEFAULT_UDP_PORT,
    HEADER_LEN as VXLAN_HEADER_LEN,
};
