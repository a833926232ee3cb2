//! The exact-match flow key: every header field the simulation may read, plus the ingress port,
//! packed into eight `u64` words (64 bytes, one cache line).
//!
//! # Layout
//!
//! | word | bits 0..16 | 16..32 | 32..48 | 48..56 | 56..64 |
//! | --- | --- | --- | --- | --- | --- |
//! | 0 | ingress (0..32) | | ethertype | 802.1Q TCI (48..64) | |
//! | 1 | destination MAC (0..48) | | | IP protocol | ToS / traffic class |
//! | 2 | source MAC (0..48) | | | flags | 0 |
//! | 3, 4 | source address, bytes 0..8 and 8..16, big-endian | | | | |
//! | 5, 6 | destination address, same | | | | |
//! | 7 | L4 source | L4 destination | IPv4 options class (32..40) | 0 | 0 |
//!
//! Flags: bits 0..2 the [`Fragment`] class, bit 2 "tagged", bits 3..5 the L3 kind, bits 5..8 the L4
//! kind (so a key never depends on decoding the ethertype, and two kinds never share a key).
//! IPv4 addresses (and ARP's protocol addresses) are stored IPv4-mapped (`::ffff:a.b.c.d`).
//! The IPv4 options class ([`Ipv4OptionsClass`]: 0 none, 1 other options, 2 a source route, 3
//! options that cannot be walked) keeps a source-routed packet, which a router drops, or one a
//! router answers a parameter problem, off the flow of an option-less one with the same addresses
//! and ports, and the other way round; it is 0 in every key that is not IPv4.
//!
//! # The compact form: untagged IPv4 without options
//!
//! Nearly every frame a gateway forwards is untagged IPv4 without options, whose fields fit in
//! four words. Those keys (and only those: the form is a function of the fields, whichever path
//! builds the key) are laid out so that the frame fast path builds them with four loads, and the
//! flow table hashes and compares only the first four words (an IPv4 header with options, which
//! the fast path leaves to the general parser, takes the general form: its class has no room
//! here):
//!
//! | word | bytes 0..4 | 4 | 5 | 6 | 7 |
//! | --- | --- | --- | --- | --- | --- |
//! | 0 | frame bytes 0..8 as they sit in memory: destination MAC, source MAC bytes 0..2 | | | | |
//! | 1 | frame bytes 8..12: source MAC bytes 2..6 | ingress (bytes 4..8, a little-endian `u32`) | | | |
//! | 2 | the L4 pair as wire bytes | IP protocol | ToS | flags | `0x80`: compact |
//! | 3 | source then destination address, as wire bytes | | | | |
//! | 4..8 | 0 | | | | |
//!
//! Words are little-endian loads of those bytes (the layout is the same on any host: the words are
//! built with `from_le_bytes`). The L4 pair as wire bytes: TCP, UDP and GRE source then destination
//! (big-endian each); ICMP type, code, then the echo identifier. The ethertype (0x0800) and the tag
//! (none) are implied. The general form's word 2 has 0 in its top byte, the vacant slot key `0xff`,
//! so a compact key never equals a key of the other form on its first four words, and since a
//! compact key's last four words are always 0, four equal words mean equal keys.
//!
//! What goes in the L4 pair: TCP and UDP ports; for ICMP and ICMPv6 the echo identifier (0 for
//! other messages) and `type << 8 | code`; for GRE the key (high and low halves); for ARP the
//! operation and 0. A later fragment has no L4 header, so its pair is 0: every later fragment of
//! the flows between two addresses with one protocol shares one key, which is the seeds' rule
//! (A12: "a single L4 flow may generate up to two different flows"; here three, since a first
//! fragment and an unfragmented packet differ under the UNFRAGMENTED fragment policy).
//!
//! The ToS byte is kept whole (rules match `tos`); a path that re-marks ECN therefore shows as a
//! second flow. VLAN priority bits are kept (L2 insertion uses PCP).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{
    EtherType, EthernetAddress, Fragment, Headers, Icmpv4Message, Icmpv6Message, IpProtocol, Ipv4OptionsClass, VlanTag,
    L3, L4,
};

/// What the key holds at L3 (flag bits 3..5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum L3Kind {
    None = 0,
    Arp = 1,
    Ipv4 = 2,
    Ipv6 = 3,
}

/// What the key holds in its L4 pair (flag bits 5..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum L4Kind {
    None = 0,
    Tcp = 1,
    Udp = 2,
    Icmpv4 = 3,
    Icmpv6 = 4,
    Gre = 5,
    GreKeyed = 6,
}

const FLAG_FRAG_MASK: u8 = 0b11;
pub(super) const FLAG_TAGGED: u8 = 1 << 2;
pub(super) const FLAG_L3_SHIFT: u8 = 3;
pub(super) const FLAG_L4_SHIFT: u8 = 5;

const MAC_MASK: u64 = (1 << 48) - 1;
/// Word 2's top byte in a compact key (module docs, "The compact form").
pub(super) const COMPACT_MARK: u64 = 0x80 << 56;
const COMPACT_MARK_MASK: u64 = 0xff << 56;
/// Where word 7 of the general form keeps the IPv4 options class (module docs).
const OPTIONS_SHIFT: u32 = 32;
/// The IPv4-mapped prefix `::ffff:0:0/96`, as the low word's top half.
pub(super) const V4_MAPPED: u64 = 0x0000_ffff_0000_0000;

/// The upper-layer part of a [`FlowKey`], decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyL4 {
    /// Nothing: not IP, a later fragment, or a protocol whose header is not parsed.
    None,
    /// TCP ports.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMPv4.
    Icmpv4 {
        /// Type.
        msg_type: Icmpv4Message,
        /// Code.
        code: u8,
        /// Echo identifier (echo request or reply), else 0.
        ident: u16,
    },
    /// ICMPv6.
    Icmpv6 {
        /// Type.
        msg_type: Icmpv6Message,
        /// Code.
        code: u8,
        /// Echo identifier (echo request or reply), else 0.
        ident: u16,
    },
    /// GRE.
    Gre {
        /// The key, if present.
        key: Option<u32>,
    },
}

/// The exact-match key of a flow: 64 bytes, cache-line aligned, compared and hashed as eight words.
///
/// Built from parsed headers with [`FlowKey::from_headers`]; the accessors decode it. Two packets
/// with equal keys are treated alike by the simulation, so everything a device or a rule can look at
/// is in here (see the module docs for what is, and why).
#[derive(Clone, Copy, Eq)]
#[repr(C, align(64))]
pub struct FlowKey {
    words: [u64; 8],
}

impl FlowKey {
    /// All words zero: what fills unused slots of a table (which slots are used is the buckets' business).
    pub const ZERO: FlowKey = FlowKey { words: [0; 8] };

    /// A key no frame has (its L4 kind, 7, is none that `from_headers` or the frame fast path
    /// writes): what the flow table keeps in empty slots, so that comparing a key with a slot's
    /// is enough to know the slot holds it.
    pub(super) const VACANT: FlowKey = FlowKey { words: [u64::MAX; 8] };

    /// A key from its eight words, as [`FlowKey::words`] gives them (the frame fast path builds them).
    #[inline(always)]
    pub(super) const fn from_words(words: [u64; 8]) -> FlowKey {
        FlowKey { words }
    }

    /// The key of a frame parsed into `h`, received on `ingress`.
    ///
    /// `ingress` names where the frame entered: the pipeline uses the DPDK port number for frames
    /// received on a local port and `0x8000_0000 | port id` for frames decapsulated from a tunnel
    /// (`sim::IngressPoint::flow_id`). The caller builds the key of a tunnelled packet from the
    /// inner frame, after checking the outer source against the port's host.
    pub fn from_headers(ingress: u32, h: &Headers) -> FlowKey {
        let mut flags = 0u8;
        let tci = match h.vlan {
            Some(tag) => {
                flags |= FLAG_TAGGED;
                tag.tci()
            }
            None => 0,
        };
        let mut options = Ipv4OptionsClass::None;
        let (l3, src, dst, proto, tos, fragment) = match h.l3 {
            L3::Other => (L3Kind::None, [0, 0], [0, 0], 0, 0, Fragment::Unfragmented),
            L3::Arp(a) => (
                L3Kind::Arp,
                v4_words(a.source_protocol_addr),
                v4_words(a.target_protocol_addr),
                0,
                0,
                Fragment::Unfragmented,
            ),
            L3::Ipv4(f) => {
                options = f.options;
                (L3Kind::Ipv4, v4_words(f.src), v4_words(f.dst), f.protocol.into(), f.tos, f.fragment)
            }
            L3::Ipv6(f) => {
                (L3Kind::Ipv6, v6_words(f.src), v6_words(f.dst), f.protocol.into(), f.traffic_class, f.fragment)
            }
        };
        let (l4, sport, dport) = match (h.l3, h.l4) {
            (L3::Arp(a), _) => (L4Kind::None, u16::from(a.operation), 0),
            (_, L4::None) => (L4Kind::None, 0, 0),
            (_, L4::Tcp { src_port, dst_port, .. }) => (L4Kind::Tcp, src_port, dst_port),
            (_, L4::Udp { src_port, dst_port }) => (L4Kind::Udp, src_port, dst_port),
            (_, L4::Icmpv4 { msg_type, code, ident }) => (L4Kind::Icmpv4, ident, type_code(msg_type.into(), code)),
            (_, L4::Icmpv6 { msg_type, code, ident }) => (L4Kind::Icmpv6, ident, type_code(msg_type.into(), code)),
            (_, L4::Gre { key: Some(k), .. }) => (L4Kind::GreKeyed, (k >> 16) as u16, k as u16),
            (_, L4::Gre { key: None, .. }) => (L4Kind::Gre, 0, 0),
        };
        flags |= frag_bits(fragment) | (l3 as u8) << FLAG_L3_SHIFT | (l4 as u8) << FLAG_L4_SHIFT;
        if let (L3::Ipv4(f), None, Ipv4OptionsClass::None) = (h.l3, h.vlan, options) {
            let mut addrs = [0u8; 8];
            addrs[..4].copy_from_slice(&f.src.octets());
            addrs[4..].copy_from_slice(&f.dst.octets());
            let mut macs = [0u8; 12];
            macs[..6].copy_from_slice(&h.eth_dst.0);
            macs[6..].copy_from_slice(&h.eth_src.0);
            let pair = compact_pair(l4, sport, dport);
            return FlowKey::compact(ingress, &macs, pair, proto, tos, flags, &addrs);
        }
        FlowKey {
            words: [
                u64::from(ingress) | u64::from(u16::from(h.ethertype)) << 32 | u64::from(tci) << 48,
                mac_word(h.eth_dst) | u64::from(proto) << 48 | u64::from(tos) << 56,
                mac_word(h.eth_src) | u64::from(flags) << 48,
                src[0],
                src[1],
                dst[0],
                dst[1],
                u64::from(sport) | u64::from(dport) << 16 | u64::from(options_bits(options)) << OPTIONS_SHIFT,
            ],
        }
    }

    /// The eight words, as hashed and compared.
    pub const fn words(&self) -> &[u64; 8] {
        &self.words
    }

    /// A compact key (module docs): `macs` the frame's first twelve bytes, `pair` the L4 pair as
    /// wire bytes, `addrs` source then destination address as wire bytes.
    #[inline(always)]
    pub(super) fn compact(
        ingress: u32,
        macs: &[u8; 12],
        pair: [u8; 4],
        proto: u8,
        tos: u8,
        flags: u8,
        addrs: &[u8; 8],
    ) -> FlowKey {
        let (w0, w1) = macs.split_at(8);
        let mut low = [0u8; 8];
        low.copy_from_slice(w0);
        let mut high = [0u8; 4];
        high.copy_from_slice(w1);
        FlowKey::from_words([
            u64::from_le_bytes(low),
            u64::from(u32::from_le_bytes(high)) | u64::from(ingress) << 32,
            u64::from(u32::from_le_bytes(pair))
                | u64::from(proto) << 32
                | u64::from(tos) << 40
                | u64::from(flags) << 48
                | COMPACT_MARK,
            u64::from_le_bytes(*addrs),
            0,
            0,
            0,
            0,
        ])
    }

    /// Whether the key is in the compact form (untagged IPv4 without options; module docs).
    #[inline(always)]
    pub const fn is_compact(&self) -> bool {
        self.words[2] & COMPACT_MARK_MASK == COMPACT_MARK
    }

    /// The first twelve bytes of the frame, destination then source MAC.
    fn macs(&self) -> [u8; 12] {
        let mut m = [0u8; 12];
        if self.is_compact() {
            m[..8].copy_from_slice(&self.words[0].to_le_bytes());
            m[8..].copy_from_slice(&(self.words[1] as u32).to_le_bytes());
        } else {
            m[..6].copy_from_slice(&mac_from_word(self.words[1]).0);
            m[6..].copy_from_slice(&mac_from_word(self.words[2]).0);
        }
        m
    }

    /// A compact key's source and destination addresses.
    fn compact_addrs(&self) -> [Ipv4Addr; 2] {
        let b = self.words[3].to_le_bytes();
        [Ipv4Addr::new(b[0], b[1], b[2], b[3]), Ipv4Addr::new(b[4], b[5], b[6], b[7])]
    }

    fn flags(&self) -> u8 {
        (self.words[2] >> 48) as u8
    }

    fn l3_kind(&self) -> L3Kind {
        match (self.flags() >> FLAG_L3_SHIFT) & 0b11 {
            1 => L3Kind::Arp,
            2 => L3Kind::Ipv4,
            3 => L3Kind::Ipv6,
            _ => L3Kind::None,
        }
    }

    fn l4_kind(&self) -> L4Kind {
        match self.flags() >> FLAG_L4_SHIFT {
            1 => L4Kind::Tcp,
            2 => L4Kind::Udp,
            3 => L4Kind::Icmpv4,
            4 => L4Kind::Icmpv6,
            5 => L4Kind::Gre,
            6 => L4Kind::GreKeyed,
            _ => L4Kind::None,
        }
    }

    /// The ingress id the key was built with.
    pub const fn ingress(&self) -> u32 {
        if self.is_compact() {
            (self.words[1] >> 32) as u32
        } else {
            self.words[0] as u32
        }
    }

    /// The same key with another ingress id (for example the return direction's, after [`reverse`]).
    ///
    /// [`reverse`]: FlowKey::reverse
    #[must_use]
    pub const fn with_ingress(mut self, ingress: u32) -> FlowKey {
        if self.is_compact() {
            self.words[1] = (self.words[1] & 0xffff_ffff) | (ingress as u64) << 32;
        } else {
            self.words[0] = (self.words[0] & !0xffff_ffff) | ingress as u64;
        }
        self
    }

    /// The ethertype after the tag.
    pub fn ethertype(&self) -> EtherType {
        if self.is_compact() {
            return EtherType::Ipv4;
        }
        EtherType::from((self.words[0] >> 32) as u16)
    }

    /// The 802.1Q tag, if the frame had one.
    pub fn vlan(&self) -> Option<VlanTag> {
        (self.flags() & FLAG_TAGGED != 0).then(|| VlanTag::from_tci((self.words[0] >> 48) as u16))
    }

    /// Destination MAC.
    pub fn eth_dst(&self) -> EthernetAddress {
        let m = self.macs();
        EthernetAddress([m[0], m[1], m[2], m[3], m[4], m[5]])
    }

    /// Source MAC.
    pub fn eth_src(&self) -> EthernetAddress {
        let m = self.macs();
        EthernetAddress([m[6], m[7], m[8], m[9], m[10], m[11]])
    }

    /// Source address: IP source, or ARP sender protocol address.
    pub fn src_addr(&self) -> Option<IpAddr> {
        if self.is_compact() {
            return Some(IpAddr::V4(self.compact_addrs()[0]));
        }
        self.addr(3)
    }

    /// Destination address: IP destination, or ARP target protocol address.
    pub fn dst_addr(&self) -> Option<IpAddr> {
        if self.is_compact() {
            return Some(IpAddr::V4(self.compact_addrs()[1]));
        }
        self.addr(5)
    }

    fn addr(&self, at: usize) -> Option<IpAddr> {
        let (hi, lo) = (self.words[at], self.words[at + 1]);
        match self.l3_kind() {
            L3Kind::None => None,
            L3Kind::Arp | L3Kind::Ipv4 => Some(IpAddr::V4(Ipv4Addr::from(lo as u32))),
            L3Kind::Ipv6 => Some(IpAddr::V6(Ipv6Addr::from(u128::from(hi) << 64 | u128::from(lo)))),
        }
    }

    /// True for IPv4 and IPv6 keys.
    pub fn is_ip(&self) -> bool {
        matches!(self.l3_kind(), L3Kind::Ipv4 | L3Kind::Ipv6)
    }

    /// Where the IP header of every frame with this key starts, and whether it is IPv6: `(14, _)`
    /// untagged, `(18, _)` tagged; `None` for keys that are not IP. Every frame that parses to
    /// this key has a whole IP header there whose lengths hold (what `Headers::parse` checked), so
    /// code keyed on the flow can skip finding and checking it again.
    pub fn ip_layout(&self) -> Option<(usize, bool)> {
        let offset = if self.flags() & FLAG_TAGGED != 0 { 18 } else { 14 };
        match self.l3_kind() {
            L3Kind::Ipv4 => Some((offset, false)),
            L3Kind::Ipv6 => Some((offset, true)),
            _ => None,
        }
    }

    /// True for ARP keys.
    pub fn is_arp(&self) -> bool {
        self.l3_kind() == L3Kind::Arp
    }

    /// The IP protocol (after IPv6 extension headers), if IP.
    pub fn ip_protocol(&self) -> Option<IpProtocol> {
        let at = if self.is_compact() { (2, 32) } else { (1, 48) };
        self.is_ip().then(|| IpProtocol::from((self.words[at.0] >> at.1) as u8))
    }

    /// ToS (IPv4) or traffic class (IPv6); 0 when not IP.
    pub const fn tos(&self) -> u8 {
        if self.is_compact() {
            (self.words[2] >> 40) as u8
        } else {
            (self.words[1] >> 56) as u8
        }
    }

    /// The IPv4 options class ([`Ipv4OptionsClass::None`] when not IPv4).
    pub fn ipv4_options(&self) -> Ipv4OptionsClass {
        if self.is_compact() {
            return Ipv4OptionsClass::None;
        }
        match (self.words[7] >> OPTIONS_SHIFT) as u8 {
            1 => Ipv4OptionsClass::Other,
            2 => Ipv4OptionsClass::SourceRoute,
            3 => Ipv4OptionsClass::Unwalkable,
            _ => Ipv4OptionsClass::None,
        }
    }

    /// The fragment class (unfragmented when not IP).
    pub fn fragment(&self) -> Fragment {
        match self.flags() & FLAG_FRAG_MASK {
            1 => Fragment::First,
            2 => Fragment::Later,
            _ => Fragment::Unfragmented,
        }
    }

    /// The ARP operation, if ARP.
    pub fn arp_operation(&self) -> Option<crate::wire::ArpOperation> {
        self.is_arp().then(|| crate::wire::ArpOperation::from(self.l4_src()))
    }

    fn l4_src(&self) -> u16 {
        self.l4_pair().0
    }

    fn l4_dst(&self) -> u16 {
        self.l4_pair().1
    }

    /// The L4 pair (source, destination) as the general form holds it.
    fn l4_pair(&self) -> (u16, u16) {
        if !self.is_compact() {
            return (self.words[7] as u16, (self.words[7] >> 16) as u16);
        }
        let b = (self.words[2] as u32).to_le_bytes();
        let (first, second) = (u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]]));
        match self.l4_kind() {
            L4Kind::Icmpv4 | L4Kind::Icmpv6 => (second, first),
            _ => (first, second),
        }
    }

    /// The upper-layer fields.
    pub fn l4(&self) -> KeyL4 {
        let (s, d) = (self.l4_src(), self.l4_dst());
        match self.l4_kind() {
            L4Kind::None => KeyL4::None,
            L4Kind::Tcp => KeyL4::Tcp { src_port: s, dst_port: d },
            L4Kind::Udp => KeyL4::Udp { src_port: s, dst_port: d },
            L4Kind::Icmpv4 => KeyL4::Icmpv4 { msg_type: Icmpv4Message::from((d >> 8) as u8), code: d as u8, ident: s },
            L4Kind::Icmpv6 => KeyL4::Icmpv6 { msg_type: Icmpv6Message::from((d >> 8) as u8), code: d as u8, ident: s },
            L4Kind::Gre => KeyL4::Gre { key: None },
            L4Kind::GreKeyed => KeyL4::Gre { key: Some(u32::from(s) << 16 | u32::from(d)) },
        }
    }

    /// The key of the return direction, as the reply would be keyed on the same link: MACs,
    /// addresses and TCP/UDP ports swapped, ICMP echo request and reply exchanged (the identifier
    /// stays), ARP request and reply exchanged. The ingress id is kept: the return direction
    /// usually enters elsewhere, which the caller knows and sets with [`with_ingress`]. VLAN, ToS,
    /// fragment class, IPv4 options class, ICMP errors and GRE keys are kept as they are.
    ///
    /// An involution: `k.reverse().reverse() == k` for every key.
    ///
    /// [`with_ingress`]: FlowKey::with_ingress
    #[must_use]
    pub fn reverse(&self) -> FlowKey {
        let w = &self.words;
        let high16 = !MAC_MASK;
        let (s, d) = (self.l4_src(), self.l4_dst());
        let (s, d) = match self.l4_kind() {
            L4Kind::Tcp | L4Kind::Udp => (d, s),
            L4Kind::Icmpv4 => (s, swap_echo(d, Icmpv4Message::EchoRequest.into(), Icmpv4Message::EchoReply.into())),
            L4Kind::Icmpv6 => (s, swap_echo(d, Icmpv6Message::EchoRequest.into(), Icmpv6Message::EchoReply.into())),
            L4Kind::None if self.is_arp() => (swap_echo(s << 8, 1, 2) >> 8, d),
            L4Kind::None | L4Kind::Gre | L4Kind::GreKeyed => (s, d),
        };
        if self.is_compact() {
            let m = self.macs();
            let mut macs = [0u8; 12];
            macs[..6].copy_from_slice(&m[6..]);
            macs[6..].copy_from_slice(&m[..6]);
            let [src, dst] = self.compact_addrs();
            let mut addrs = [0u8; 8];
            addrs[..4].copy_from_slice(&dst.octets());
            addrs[4..].copy_from_slice(&src.octets());
            let (ingress, pair) = (self.ingress(), compact_pair(self.l4_kind(), s, d));
            return FlowKey::compact(ingress, &macs, pair, (w[2] >> 32) as u8, self.tos(), self.flags(), &addrs);
        }
        FlowKey {
            words: [
                w[0],
                (w[1] & high16) | (w[2] & MAC_MASK),
                (w[2] & high16) | (w[1] & MAC_MASK),
                w[5],
                w[6],
                w[3],
                w[4],
                (w[7] & !0xffff_ffff) | u64::from(s) | u64::from(d) << 16,
            ],
        }
    }

    /// A direction-independent hash for choosing the core that owns the flow's connection state:
    /// `k.symmetric_hash() == k.reverse().symmetric_hash()`.
    ///
    /// It is, bit for bit, the RSS hash a NIC computes with the symmetric Toeplitz key that
    /// `pmd/port.rs` programs (`symmetric_rss_key`, 0x6d5a repeated) over the fields the port hashes
    /// (`RTE_ETH_RSS_IP | TCP | UDP`): source and destination address, plus the ports for
    /// unfragmented TCP and UDP (NICs hash fragments, ICMP and other protocols on the addresses
    /// only). Non-IP keys hash to 0, as the NIC leaves them (RETA entry 0). Because the key repeats
    /// every 16 bits, the Toeplitz hash of the input equals a fixed linear map of the XOR of its
    /// 16-bit words, which is why it is symmetric and why it costs two table lookups here.
    ///
    /// How the cores use it: for traffic that arrives untunnelled (uplinks), the NIC has already put
    /// this value in the mbuf and steered the packet through the RETA to the queue, hence the worker,
    /// that owns it; both directions of an untranslated connection meet there. A packet decapsulated
    /// from a tunnel was steered by its *outer* headers (GRE by the host addresses only, VXLAN also by
    /// the sender's UDP source port), so the worker recomputes this hash over the inner key and hands
    /// the packet to the owner, `reta[hash % reta_size]` mapped to its worker, when that is not itself.
    /// Translated return traffic needs a different owner rule (NAT port ranges per core).
    ///
    /// Not seeded, by necessity (it must equal the NIC's): an attacker can aim many flows at one core,
    /// as with RSS itself. It never indexes the flow table; [`FlowHasher`] does, with a secret seed.
    ///
    /// [`FlowHasher`]: super::FlowHasher
    pub fn symmetric_hash(&self) -> u32 {
        let w = &self.words;
        let fold = |x: u64| (x ^ x >> 16 ^ x >> 32 ^ x >> 48) as u16;
        let mut x = match self.l3_kind() {
            L3Kind::Ipv4 if self.is_compact() => {
                let [src, dst] = self.compact_addrs();
                u64::from(u32::from(src) ^ u32::from(dst))
            }
            L3Kind::Ipv4 => (w[4] ^ w[6]) as u32 as u64,
            L3Kind::Ipv6 => w[3] ^ w[4] ^ w[5] ^ w[6],
            L3Kind::None | L3Kind::Arp => return 0,
        };
        if matches!(self.l4_kind(), L4Kind::Tcp | L4Kind::Udp) && self.fragment() == Fragment::Unfragmented {
            let (s, d) = self.l4_pair();
            x ^= u64::from(s) | u64::from(d) << 16;
        }
        toeplitz_sym16(fold(x))
    }
}

impl Default for FlowKey {
    /// All words zero (no frame gives this key: a parsed frame always has an L3 kind or an ethertype).
    fn default() -> FlowKey {
        FlowKey::ZERO
    }
}

impl PartialEq for FlowKey {
    /// Word by word, inlined (a derived `==` on the array calls `bcmp`); a compact key's first
    /// four words only, which decide (module docs, "The compact form").
    #[inline(always)]
    fn eq(&self, other: &FlowKey) -> bool {
        let differ = |n: usize| self.words[..n].iter().zip(&other.words[..n]).fold(0, |acc, (a, b)| acc | (a ^ b));
        if self.is_compact() {
            differ(4) == 0
        } else {
            differ(8) == 0
        }
    }
}

impl core::hash::Hash for FlowKey {
    /// The words, so that `Hash` agrees with `Eq` (for `std` maps; the flow table uses [`FlowHasher`]).
    ///
    /// [`FlowHasher`]: super::FlowHasher
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.words.hash(state);
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FlowKey");
        d.field("ingress", &self.ingress()).field("ethertype", &self.ethertype());
        if let Some(tag) = self.vlan() {
            d.field("vlan", &tag);
        }
        d.field("eth_src", &format_args!("{}", self.eth_src())).field("eth_dst", &format_args!("{}", self.eth_dst()));
        if let (Some(s), Some(t)) = (self.src_addr(), self.dst_addr()) {
            d.field("src", &s).field("dst", &t);
        }
        if let Some(p) = self.ip_protocol() {
            d.field("protocol", &p).field("tos", &self.tos()).field("fragment", &self.fragment());
        }
        if self.ipv4_options() != Ipv4OptionsClass::None {
            d.field("ipv4_options", &self.ipv4_options());
        }
        if let Some(op) = self.arp_operation() {
            d.field("arp", &op);
        }
        if self.l4() != KeyL4::None {
            d.field("l4", &self.l4());
        }
        d.finish()
    }
}

fn v4_words(a: Ipv4Addr) -> [u64; 2] {
    [0, V4_MAPPED | u64::from(u32::from(a))]
}

fn v6_words(a: Ipv6Addr) -> [u64; 2] {
    let x = u128::from(a);
    [(x >> 64) as u64, x as u64]
}

fn mac_word(a: EthernetAddress) -> u64 {
    let b = a.0;
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

fn mac_from_word(w: u64) -> EthernetAddress {
    let b = (w & MAC_MASK).to_be_bytes();
    EthernetAddress([b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn options_bits(o: Ipv4OptionsClass) -> u8 {
    match o {
        Ipv4OptionsClass::None => 0,
        Ipv4OptionsClass::Other => 1,
        Ipv4OptionsClass::SourceRoute => 2,
        Ipv4OptionsClass::Unwalkable => 3,
    }
}

fn frag_bits(f: Fragment) -> u8 {
    match f {
        Fragment::Unfragmented => 0,
        Fragment::First => 1,
        Fragment::Later => 2,
    }
}

#[inline(always)]
pub(super) fn type_code(msg_type: u8, code: u8) -> u16 {
    u16::from(msg_type) << 8 | u16::from(code)
}

/// The L4 pair of a compact key as wire bytes (module docs): ICMP type and code first, then the
/// identifier; anything else source then destination.
fn compact_pair(l4: L4Kind, src: u16, dst: u16) -> [u8; 4] {
    let (first, second) = match l4 {
        L4Kind::Icmpv4 | L4Kind::Icmpv6 => (dst, src),
        _ => (src, dst),
    };
    let (a, b) = (first.to_be_bytes(), second.to_be_bytes());
    [a[0], a[1], b[0], b[1]]
}

/// Exchanges the type byte (high byte of `type_code`) between `a` and `b`; anything else is kept.
fn swap_echo(type_code: u16, a: u8, b: u8) -> u16 {
    let ty = (type_code >> 8) as u8;
    let swapped = if ty == a {
        b
    } else if ty == b {
        a
    } else {
        ty
    };
    u16::from(swapped) << 8 | (type_code & 0xff)
}

/// The symmetric RSS key's repeating 32-bit window (`pmd/port.rs`, `symmetric_rss_key`).
const SYM_KEY_WINDOW: u32 = 0x6d5a_6d5a;

/// `TOEPLITZ[0][b]` / `[1][b]`: the contribution of byte `b` as the high / low byte of a 16-bit word.
/// Input bit `j` of a word (0 = most significant) selects the key window starting at bit `j`, which
/// for a key of period 16 is `SYM_KEY_WINDOW.rotate_left(j)` whatever the word's position.
static TOEPLITZ: [[u32; 256]; 2] = [toeplitz_table(0), toeplitz_table(8)];

const fn toeplitz_table(first_bit: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut v = 0;
    while v < 256 {
        let mut acc = 0u32;
        let mut bit = 0;
        while bit < 8 {
            if v & (0x80 >> bit) != 0 {
                acc ^= SYM_KEY_WINDOW.rotate_left(first_bit + bit);
            }
            bit += 1;
        }
        t[v] = acc;
        v += 1;
    }
    t
}

/// The symmetric-key Toeplitz hash of an input whose 16-bit words XOR to `x`.
fn toeplitz_sym16(x: u16) -> u32 {
    TOEPLITZ[0][usize::from(x >> 8)] ^ TOEPLITZ[1][usize::from(x & 0xff)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        ArpOperation, ArpRepr, EthernetRepr, Ipv4Fields, Ipv4Repr, Ipv6Fields, TcpFlags, TcpRepr, UdpRepr,
    };
    use crate::wire::{EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};
    use proptest::prelude::*;

    fn mac(last: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, last])
    }

    /// Microsoft's Toeplitz hash as a NIC computes it (bit by bit), for checking the fast form.
    fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
        let bit = |i: usize| (key[i / 8] >> (7 - i % 8)) & 1;
        let mut hash = 0u32;
        for (n, byte) in input.iter().enumerate() {
            for b in 0..8 {
                if byte & (0x80 >> b) != 0 {
                    let start = n * 8 + b;
                    let window = (0..32).fold(0u32, |w, j| w << 1 | u32::from(bit(start + j)));
                    hash ^= window;
                }
            }
        }
        hash
    }

    fn symmetric_rss_key() -> Vec<u8> {
        (0..40).map(|i| if i % 2 == 0 { 0x6d } else { 0x5a }).collect()
    }

    /// The bytes a NIC feeds to RSS for this key (`RTE_ETH_RSS_IP | TCP | UDP`), or None for non-IP.
    fn rss_input(k: &FlowKey) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        match (k.src_addr()?, k.dst_addr()?) {
            _ if !k.is_ip() => return None,
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                v.extend(s.octets());
                v.extend(d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                v.extend(s.octets());
                v.extend(d.octets());
            }
            _ => unreachable!(),
        }
        if k.fragment() == Fragment::Unfragmented {
            if let KeyL4::Tcp { src_port, dst_port } | KeyL4::Udp { src_port, dst_port } = k.l4() {
                v.extend(src_port.to_be_bytes());
                v.extend(dst_port.to_be_bytes());
            }
        }
        Some(v)
    }

    fn headers(l3: L3, l4: L4) -> Headers {
        let ethertype = match l3 {
            L3::Ipv4(_) => EtherType::Ipv4,
            L3::Ipv6(_) => EtherType::Ipv6,
            L3::Arp(_) => EtherType::Arp,
            L3::Other => EtherType::Unknown(0x88cc),
        };
        Headers {
            eth_dst: mac(1),
            eth_src: mac(2),
            vlan: None,
            ethertype,
            l3_offset: 14,
            l3,
            l4_offset: 34,
            l4,
            payload_offset: 34,
            end: 34,
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4], protocol: IpProtocol, fragment: Fragment) -> L3 {
        L3::Ipv4(Ipv4Fields {
            src: src.into(),
            dst: dst.into(),
            protocol,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_frag: false,
            fragment,
            options: Ipv4OptionsClass::None,
        })
    }

    /// Builds an untagged IPv4 TCP or UDP frame with the wire Reprs.
    fn frame4(src: [u8; 4], dst: [u8; 4], tcp: bool, sport: u16, dport: u16, smac: u8, dmac: u8) -> Vec<u8> {
        let mut b = vec![0xa5u8; 14 + 20 + 20];
        EthernetRepr { src_addr: mac(smac), dst_addr: mac(dmac), vlan: None, ethertype: EtherType::Ipv4 }
            .emit(&mut EthernetFrame::new_unchecked(&mut b[..]));
        let l4_len = if tcp { 20 } else { 8 };
        Ipv4Repr {
            src_addr: src.into(),
            dst_addr: dst.into(),
            protocol: if tcp { IpProtocol::Tcp } else { IpProtocol::Udp },
            payload_len: l4_len,
            ttl: 64,
            tos: 0x10,
            ident: 7,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut b[14..]));
        if tcp {
            TcpRepr {
                src_port: sport,
                dst_port: dport,
                seq_number: 1,
                ack_number: 0,
                flags: TcpFlags::SYN,
                window_len: 1000,
                urgent_at: 0,
                options: &[],
            }
            .emit(&mut TcpPacket::new_unchecked(&mut b[34..]));
        } else {
            b.truncate(14 + 20 + 8);
            UdpRepr { src_port: sport, dst_port: dport }.emit(&mut UdpPacket::new_unchecked(&mut b[34..]), 0);
        }
        b
    }

    #[test]
    fn layout_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 64);
        assert_eq!(core::mem::align_of::<FlowKey>(), 64);
    }

    #[test]
    fn from_parsed_tcp_frame_and_its_reply() {
        let fwd = frame4([192, 0, 2, 1], [198, 51, 100, 2], true, 40000, 80, 1, 2);
        let rev = frame4([198, 51, 100, 2], [192, 0, 2, 1], true, 80, 40000, 2, 1);
        let kf = FlowKey::from_headers(3, &Headers::parse(&fwd).unwrap());
        let kr = FlowKey::from_headers(3, &Headers::parse(&rev).unwrap());
        assert_eq!(kf.ingress(), 3);
        assert_eq!(kf.ethertype(), EtherType::Ipv4);
        assert_eq!(kf.vlan(), None);
        assert_eq!((kf.eth_src(), kf.eth_dst()), (mac(1), mac(2)));
        assert_eq!(kf.src_addr(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(kf.dst_addr(), Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2))));
        assert_eq!(kf.ip_protocol(), Some(IpProtocol::Tcp));
        assert_eq!(kf.tos(), 0x10);
        assert_eq!(kf.fragment(), Fragment::Unfragmented);
        assert_eq!(kf.l4(), KeyL4::Tcp { src_port: 40000, dst_port: 80 });
        assert_eq!(kf.reverse(), kr);
        assert_ne!(kf, kr);
        assert_eq!(kf.symmetric_hash(), kr.symmetric_hash());
        // TCP flags are not part of the key: a SYN and the ACKs after it share the flow.
        let mut ack = fwd.clone();
        ack[14 + 20 + 13] = 0x10;
        assert_eq!(FlowKey::from_headers(3, &Headers::parse(&ack).unwrap()), kf);
        // Nor is the TTL or the IP ident; but the ingress is.
        let mut ttl = fwd.clone();
        ttl[14 + 8] = 3;
        ttl[14 + 5] = 99;
        crate::wire::refresh_ipv4_checksum(&mut ttl, 14);
        assert_eq!(FlowKey::from_headers(3, &Headers::parse(&ttl).unwrap()), kf);
        assert_ne!(FlowKey::from_headers(4, &Headers::parse(&fwd).unwrap()), kf);
        assert_eq!(kf.with_ingress(4), FlowKey::from_headers(4, &Headers::parse(&fwd).unwrap()));
        // TCP and UDP with the same numbers are different flows.
        let udp = frame4([192, 0, 2, 1], [198, 51, 100, 2], false, 40000, 80, 1, 2);
        let ku = FlowKey::from_headers(3, &Headers::parse(&udp).unwrap());
        assert_eq!(ku.l4(), KeyL4::Udp { src_port: 40000, dst_port: 80 });
        assert_ne!(ku, kf);
    }

    /// Option bytes of each class: record route (7) with room for one address; a loose source
    /// route (131) through one address; NOP then end of list.
    const RECORD_ROUTE: [u8; 8] = [7, 7, 4, 0, 0, 0, 0, 0];
    const LOOSE_SOURCE_ROUTE: [u8; 8] = [1, 131, 7, 4, 198, 51, 100, 9];
    const NOP_END: [u8; 4] = [1, 0, 0, 0];

    /// A header with options never takes the compact form, and each class is a key of its own, so
    /// a source-routed packet never shares a flow with a plain one of the same addresses and ports
    /// (tagged or not); the frame fast path agrees with the parser on all of them.
    #[test]
    fn ipv4_options_classes_make_separate_keys() {
        let plain = frame4([192, 0, 2, 1], [198, 51, 100, 2], false, 40000, 53, 1, 2);
        let tagged_plain = {
            let mut f = plain.clone();
            f.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
            f
        };
        for (frame, l3) in [(&plain, 14), (&tagged_plain, 18)] {
            let key = |options: &[u8]| {
                let mut f = frame.clone();
                if !options.is_empty() {
                    crate::wire::insert_ipv4_options(&mut f, l3, options);
                }
                let k = FlowKey::from_headers(3, &Headers::parse(&f).unwrap());
                assert_eq!(FlowKey::from_frame(3, &f), Ok(k), "the fast path agrees");
                k
            };
            let none = key(&[]);
            let (rr, lsrr, nop) = (key(&RECORD_ROUTE), key(&LOOSE_SOURCE_ROUTE), key(&NOP_END));
            let unwalkable = key(&[1, 1, 1, 131]);
            assert_eq!(none.is_compact(), l3 == 14, "only option-less untagged IPv4 is compact");
            assert!(!rr.is_compact() && !lsrr.is_compact() && !nop.is_compact() && !unwalkable.is_compact());
            assert_eq!(unwalkable.ipv4_options(), Ipv4OptionsClass::Unwalkable);
            assert!([none, rr, lsrr].iter().all(|k| *k != unwalkable), "{unwalkable:?}");
            assert_eq!(unwalkable.reverse().ipv4_options(), Ipv4OptionsClass::Unwalkable);
            assert_eq!(none.ipv4_options(), Ipv4OptionsClass::None);
            assert_eq!(rr.ipv4_options(), Ipv4OptionsClass::Other);
            assert_eq!(nop.ipv4_options(), Ipv4OptionsClass::Other);
            assert_eq!(lsrr.ipv4_options(), Ipv4OptionsClass::SourceRoute);
            assert!(none != rr && none != lsrr && rr != lsrr, "{none:?} {rr:?} {lsrr:?}");
            assert_eq!(rr, nop, "options other than a source route are one class");
            // Everything else decodes as it was, and the reverse keeps the class.
            assert_eq!((lsrr.src_addr(), lsrr.dst_addr(), lsrr.l4()), (none.src_addr(), none.dst_addr(), none.l4()));
            assert_eq!(lsrr.reverse().ipv4_options(), Ipv4OptionsClass::SourceRoute);
            assert_eq!(lsrr.reverse().reverse(), lsrr);
            assert_eq!(lsrr.symmetric_hash(), none.symmetric_hash(), "the NIC hashes no option");
        }
    }

    #[test]
    fn fragments_make_separate_keys_and_later_ones_have_no_ports() {
        let l4 = L4::Udp { src_port: 5000, dst_port: 53 };
        let whole = FlowKey::from_headers(
            1,
            &headers(v4([10, 0, 0, 1], [10, 0, 0, 2], IpProtocol::Udp, Fragment::Unfragmented), l4),
        );
        let first =
            FlowKey::from_headers(1, &headers(v4([10, 0, 0, 1], [10, 0, 0, 2], IpProtocol::Udp, Fragment::First), l4));
        let later = FlowKey::from_headers(
            1,
            &headers(v4([10, 0, 0, 1], [10, 0, 0, 2], IpProtocol::Udp, Fragment::Later), L4::None),
        );
        assert_eq!(first.fragment(), Fragment::First);
        assert_eq!(later.fragment(), Fragment::Later);
        assert_eq!(first.l4(), KeyL4::Udp { src_port: 5000, dst_port: 53 });
        assert_eq!(later.l4(), KeyL4::None);
        assert_eq!(later.ip_protocol(), Some(IpProtocol::Udp));
        assert!(whole != first && first != later && whole != later);
        // NICs hash fragments on addresses only; so does the owner hash, so every piece of a
        // datagram, and its reply, lands on the owner of the address pair.
        assert_eq!(first.symmetric_hash(), later.symmetric_hash());
        assert_eq!(later.symmetric_hash(), later.reverse().symmetric_hash());
    }

    #[test]
    fn icmp_echo_reverses_request_and_reply() {
        let req = L4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest, code: 0, ident: 0x77 };
        let rep = L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, code: 0, ident: 0x77 };
        let mut h = headers(v4([10, 0, 0, 1], [10, 0, 0, 2], IpProtocol::Icmp, Fragment::Unfragmented), req);
        let kq = FlowKey::from_headers(9, &h);
        assert_eq!(kq.l4(), KeyL4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest, code: 0, ident: 0x77 });
        h.l3 = v4([10, 0, 0, 2], [10, 0, 0, 1], IpProtocol::Icmp, Fragment::Unfragmented);
        h.l4 = rep;
        (h.eth_src, h.eth_dst) = (h.eth_dst, h.eth_src);
        assert_eq!(kq.reverse(), FlowKey::from_headers(9, &h));
        // Different identifiers are different flows.
        h.l4 = L4::Icmpv4 { msg_type: Icmpv4Message::EchoReply, code: 0, ident: 0x78 };
        assert_ne!(kq.reverse(), FlowKey::from_headers(9, &h));
        // An error keeps its type under reverse.
        let unreach = L4::Icmpv4 { msg_type: Icmpv4Message::DstUnreachable, code: 4, ident: 0 };
        let ke = FlowKey::from_headers(
            9,
            &headers(v4([1, 1, 1, 1], [2, 2, 2, 2], IpProtocol::Icmp, Fragment::Unfragmented), unreach),
        );
        assert_eq!(ke.reverse().l4(), ke.l4());
        // ICMPv6.
        let l3 = L3::Ipv6(Ipv6Fields {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            protocol: IpProtocol::Icmpv6,
            traffic_class: 0,
            flow_label: 5,
            hop_limit: 64,
            ext_headers: 0,
            fragment: Fragment::Unfragmented,
            frag_ident: None,
        });
        let k6 = FlowKey::from_headers(
            9,
            &headers(l3, L4::Icmpv6 { msg_type: Icmpv6Message::EchoRequest, code: 0, ident: 1 }),
        );
        assert_eq!(k6.reverse().l4(), KeyL4::Icmpv6 { msg_type: Icmpv6Message::EchoReply, code: 0, ident: 1 });
        assert_eq!(k6.reverse().src_addr(), k6.dst_addr());
    }

    #[test]
    fn arp_and_other_ethertypes() {
        let a = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: mac(2),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        };
        let k = FlowKey::from_headers(1, &headers(L3::Arp(a), L4::None));
        assert!(k.is_arp() && !k.is_ip());
        assert_eq!(k.arp_operation(), Some(ArpOperation::Request));
        assert_eq!(k.ip_protocol(), None);
        assert_eq!(k.dst_addr(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(k.reverse().arp_operation(), Some(ArpOperation::Reply));
        assert_eq!(k.symmetric_hash(), 0);
        let lldp = FlowKey::from_headers(1, &headers(L3::Other, L4::None));
        assert_eq!(lldp.ethertype(), EtherType::Unknown(0x88cc));
        assert_eq!((lldp.src_addr(), lldp.l4()), (None, KeyL4::None));
        assert_ne!(lldp, k);
        assert_eq!(lldp.reverse().eth_src(), mac(1));
    }

    #[test]
    fn vlan_and_gre() {
        let mut h = headers(v4([1, 2, 3, 4], [5, 6, 7, 8], IpProtocol::Gre, Fragment::Unfragmented), L4::None);
        h.vlan = Some(VlanTag { pcp: 5, dei: false, vid: 0 });
        h.l4 = L4::Gre { protocol_type: EtherType::TransparentEthernetBridging, key: Some(0xdead_beef), version: 0 };
        let k = FlowKey::from_headers(1, &h);
        assert_eq!(k.vlan(), Some(VlanTag { pcp: 5, dei: false, vid: 0 }));
        assert_eq!(k.l4(), KeyL4::Gre { key: Some(0xdead_beef) });
        assert_eq!(k.reverse().l4(), k.l4());
        // A priority-tagged frame (VID 0) is not an untagged one.
        h.vlan = None;
        assert_ne!(FlowKey::from_headers(1, &h), k);
        h.l4 = L4::Gre { protocol_type: EtherType::TransparentEthernetBridging, key: None, version: 0 };
        assert_eq!(FlowKey::from_headers(1, &h).l4(), KeyL4::Gre { key: None });
    }

    #[test]
    fn toeplitz_tables_match_the_bitwise_hash() {
        let key = symmetric_rss_key();
        for x in [0u16, 1, 0x8000, 0x1234, 0xffff, 0x00ff, 0xff00] {
            let input = x.to_be_bytes();
            assert_eq!(toeplitz_sym16(x), toeplitz(&key, &input), "{x:#x}");
        }
    }

    fn arb_fragment() -> impl Strategy<Value = Fragment> {
        prop_oneof![Just(Fragment::Unfragmented), Just(Fragment::First), Just(Fragment::Later)]
    }

    prop_compose! {
        fn arb_headers()(
            dst in any::<[u8; 6]>(), src in any::<[u8; 6]>(), tci in proptest::option::of(any::<u16>()),
            kind in 0u8..5, s in any::<[u8; 16]>(), d in any::<[u8; 16]>(), proto in any::<u8>(), tos in any::<u8>(),
            frag in arb_fragment(), l4 in 0u8..6, p in any::<(u16, u16)>(), ty in prop_oneof![Just(0u8), Just(8), Just(128), Just(129), any::<u8>()], code in any::<u8>(),
            options in prop_oneof![
                Just(Ipv4OptionsClass::None),
                Just(Ipv4OptionsClass::Other),
                Just(Ipv4OptionsClass::SourceRoute),
                Just(Ipv4OptionsClass::Unwalkable),
            ],
        ) -> Headers {
            let l3 = match kind {
                0 => L3::Other,
                1 => L3::Arp(ArpRepr {
                    operation: ArpOperation::from(p.0 % 4),
                    source_hardware_addr: EthernetAddress(src),
                    source_protocol_addr: [s[0], s[1], s[2], s[3]].into(),
                    target_hardware_addr: EthernetAddress(dst),
                    target_protocol_addr: [d[0], d[1], d[2], d[3]].into(),
                }),
                2 | 3 => L3::Ipv4(Ipv4Fields {
                    src: [s[0], s[1], s[2], s[3]].into(), dst: [d[0], d[1], d[2], d[3]].into(),
                    protocol: proto.into(), tos, ttl: 1, ident: 0, dont_frag: false, fragment: frag, options,
                }),
                _ => L3::Ipv6(Ipv6Fields {
                    src: s.into(), dst: d.into(), protocol: proto.into(), traffic_class: tos, flow_label: 0,
                    hop_limit: 1, ext_headers: 0, fragment: frag, frag_ident: None,
                }),
            };
            let l4 = match (kind, l4) {
                (0 | 1, _) | (_, 0) => L4::None,
                (_, 1) => L4::Tcp { src_port: p.0, dst_port: p.1, flags: TcpFlags::ACK },
                (_, 2) => L4::Udp { src_port: p.0, dst_port: p.1 },
                (_, 3) => L4::Icmpv4 { msg_type: ty.into(), code, ident: p.0 },
                (_, 4) => L4::Icmpv6 { msg_type: ty.into(), code, ident: p.0 },
                _ => L4::Gre { protocol_type: EtherType::Ipv4, key: (p.1 & 1 == 0).then_some(u32::from(p.0) << 16 | u32::from(p.1)), version: 0 },
            };
            let mut h = headers(l3, l4);
            h.eth_dst = EthernetAddress(dst);
            h.eth_src = EthernetAddress(src);
            h.vlan = tci.map(VlanTag::from_tci);
            h
        }
    }

    proptest! {
        #[test]
        fn reverse_is_an_involution(h in arb_headers(), ingress in any::<u32>()) {
            let k = FlowKey::from_headers(ingress, &h);
            prop_assert_eq!(k.reverse().reverse(), k);
            prop_assert_eq!(k.reverse().ingress(), ingress);
            prop_assert_eq!(k.reverse().eth_src(), k.eth_dst());
            prop_assert_eq!(k.reverse().src_addr(), k.dst_addr());
        }

        #[test]
        fn symmetric_hash_is_direction_independent(h in arb_headers(), a in any::<u32>(), b in any::<u32>()) {
            let k = FlowKey::from_headers(a, &h);
            prop_assert_eq!(k.symmetric_hash(), k.reverse().with_ingress(b).symmetric_hash());
        }

        /// The owner hash is the NIC's symmetric-key RSS hash over the same fields.
        #[test]
        fn symmetric_hash_equals_nic_toeplitz(h in arb_headers()) {
            let k = FlowKey::from_headers(0, &h);
            match rss_input(&k) {
                Some(input) => prop_assert_eq!(k.symmetric_hash(), toeplitz(&symmetric_rss_key(), &input)),
                None => prop_assert_eq!(k.symmetric_hash(), 0),
            }
        }

        /// The accessors give back what the key was built from.
        #[test]
        fn accessors_decode_the_headers(h in arb_headers(), ingress in any::<u32>()) {
            let k = FlowKey::from_headers(ingress, &h);
            // Untagged IPv4 without options, and only that, takes the compact form, whose last
            // four words are 0.
            let options = match h.l3 {
                L3::Ipv4(f) => f.options,
                _ => Ipv4OptionsClass::None,
            };
            prop_assert_eq!(k.is_compact(), matches!(h.l3, L3::Ipv4(_)) && h.vlan.is_none() && options == Ipv4OptionsClass::None);
            prop_assert_eq!(k.ipv4_options(), options);
            prop_assert_eq!(k.reverse().ipv4_options(), options);
            prop_assert!(!k.is_compact() || k.words()[4..] == [0; 4]);
            prop_assert_eq!(k.with_ingress(ingress ^ 1).with_ingress(ingress), k);
            prop_assert_eq!(k.with_ingress(ingress ^ 1).ingress(), ingress ^ 1);
            prop_assert_eq!(k.ingress(), ingress);
            prop_assert_eq!(k.ethertype(), h.ethertype);
            prop_assert_eq!(k.vlan().map(|t| t.tci()), h.vlan.map(|t| t.tci()));
            prop_assert_eq!((k.eth_src(), k.eth_dst()), (h.eth_src, h.eth_dst));
            prop_assert_eq!(k.ip_protocol(), h.ip_protocol());
            prop_assert_eq!(k.fragment(), h.fragment());
            match h.l3 {
                L3::Ipv4(f) => {
                    prop_assert_eq!(k.src_addr(), Some(IpAddr::V4(f.src)));
                    prop_assert_eq!(k.dst_addr(), Some(IpAddr::V4(f.dst)));
                    prop_assert_eq!(k.tos(), f.tos);
                }
                L3::Ipv6(f) => {
                    prop_assert_eq!(k.src_addr(), Some(IpAddr::V6(f.src)));
                    prop_assert_eq!(k.dst_addr(), Some(IpAddr::V6(f.dst)));
                    prop_assert_eq!(k.tos(), f.traffic_class);
                }
                L3::Arp(a) => {
                    prop_assert_eq!(k.src_addr(), Some(IpAddr::V4(a.source_protocol_addr)));
                    prop_assert_eq!(k.arp_operation(), Some(a.operation));
                }
                L3::Other => prop_assert_eq!(k.src_addr(), None),
            }
            let expect = match (h.l3, h.l4) {
                (L3::Arp(_) | L3::Other, _) | (_, L4::None) => KeyL4::None,
                (_, L4::Tcp { src_port, dst_port, .. }) => KeyL4::Tcp { src_port, dst_port },
                (_, L4::Udp { src_port, dst_port }) => KeyL4::Udp { src_port, dst_port },
                (_, L4::Icmpv4 { msg_type, code, ident }) => KeyL4::Icmpv4 { msg_type, code, ident },
                (_, L4::Icmpv6 { msg_type, code, ident }) => KeyL4::Icmpv6 { msg_type, code, ident },
                (_, L4::Gre { key, .. }) => KeyL4::Gre { key },
            };
            prop_assert_eq!(k.l4(), expect);
        }

        /// Different headers give different keys (the packing loses nothing the key promises).
        #[test]
        fn distinct_fields_distinct_keys(a in arb_headers(), b in arb_headers()) {
            let (ka, kb) = (FlowKey::from_headers(1, &a), FlowKey::from_headers(1, &b));
            let same = ka.ethertype() == kb.ethertype() && ka.vlan() == kb.vlan() && ka.eth_src() == kb.eth_src()
                && ka.eth_dst() == kb.eth_dst() && ka.src_addr() == kb.src_addr() && ka.dst_addr() == kb.dst_addr()
                && ka.ip_protocol() == kb.ip_protocol() && ka.tos() == kb.tos() && ka.fragment() == kb.fragment()
                && ka.ipv4_options() == kb.ipv4_options()
                && ka.l4() == kb.l4() && ka.arp_operation() == kb.arp_operation() && ka.is_arp() == kb.is_arp();
            prop_assert_eq!(ka == kb, same);
        }

        /// Any parsed frame gives a key, without panicking, whose reverse is an involution.
        #[test]
        fn keys_of_any_parsed_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(h) = Headers::parse(&bytes) {
                let k = FlowKey::from_headers(7, &h);
                prop_assert_eq!(k.reverse().reverse(), k);
            }
        }
    }
}
