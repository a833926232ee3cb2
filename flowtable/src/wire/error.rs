//! The reasons a packet fails to parse or verify: one list gives the enum, the counter names and the
//! descriptions, so a core can keep one drop counter per reason (`[u64; ParseError::COUNT]`, indexed
//! by [`ParseError::index`]) and the control thread can label them without a second table.

use core::fmt;

macro_rules! parse_errors {
    ( $( $variant:ident => $name:literal, $desc:literal; )+ ) => {
        /// Why a packet was rejected by a view's `new_checked`, a `Repr::parse`, [`Headers::parse`]
        /// or [`Headers::verify_checksums`]. Each variant is one drop reason.
        ///
        /// [`Headers::parse`]: crate::wire::Headers::parse
        /// [`Headers::verify_checksums`]: crate::wire::Headers::verify_checksums
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum ParseError {
            $( #[doc = $desc] $variant, )+
        }

        impl ParseError {
            /// Every reason, in counter order (`ALL[e.index()] == e`).
            pub const ALL: &'static [ParseError] = &[ $( ParseError::$variant, )+ ];
            /// Number of reasons: the length of a per-core counter array.
            pub const COUNT: usize = Self::ALL.len();

            /// Short snake_case name, usable as a counter or metric label.
            pub const fn name(self) -> &'static str {
                match self { $( ParseError::$variant => $name, )+ }
            }

            /// One-line human description.
            pub const fn description(self) -> &'static str {
                match self { $( ParseError::$variant => $desc, )+ }
            }
        }
    };
}

parse_errors! {
    EthernetTruncated => "ethernet_truncated", "frame shorter than an Ethernet II header";
    VlanTruncated => "vlan_truncated", "frame too short for its 802.1Q tag";
    VlanStacked => "vlan_stacked", "more than one VLAN tag (802.1ad / QinQ), only one 802.1Q tag is accepted";
    ArpTruncated => "arp_truncated", "ARP packet shorter than an Ethernet/IPv4 ARP body (28 bytes)";
    ArpUnsupported => "arp_unsupported", "ARP hardware or protocol type or address lengths are not Ethernet/IPv4";
    Ipv4Truncated => "ipv4_truncated", "buffer shorter than the IPv4 header (20 bytes or IHL)";
    Ipv4BadVersion => "ipv4_bad_version", "IPv4 version field is not 4";
    Ipv4BadIhl => "ipv4_bad_ihl", "IPv4 IHL below 5 (header shorter than 20 bytes)";
    Ipv4BadTotalLength => "ipv4_bad_total_length", "IPv4 total length smaller than its header";
    Ipv4TruncatedPayload => "ipv4_truncated_payload", "IPv4 total length runs past the end of the buffer";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum does not verify";
    Ipv4BadOptions => "ipv4_bad_options", "an IPv4 option whose length byte is missing, below 2 or runs past the header (RFC 791 3.1): the header cannot be walked (from Ipv4Repr::parse; the frame parser classifies such options instead, and a router answers them: drop reason ipv4_bad_options)";
    Ipv6Truncated => "ipv6_truncated", "buffer shorter than the IPv6 fixed header (40 bytes)";
    Ipv6BadVersion => "ipv6_bad_version", "IPv6 version field is not 6";
    Ipv6TruncatedPayload => "ipv6_truncated_payload", "IPv6 payload length runs past the end of the buffer";
    Ipv6ExtTruncated => "ipv6_ext_truncated", "an IPv6 extension header runs past the end of the payload";
    Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers", "more IPv6 extension headers than the parser walks";
    Ipv6HopByHopNotFirst => "ipv6_hop_by_hop_not_first", "IPv6 hop-by-hop options header not directly after the fixed header";
    Icmpv4Truncated => "icmpv4_truncated", "ICMPv4 message shorter than its header";
    Icmpv4BadChecksum => "icmpv4_bad_checksum", "ICMPv4 checksum does not verify";
    Icmpv4Unsupported => "icmpv4_unsupported", "ICMPv4 message type the gateway does not handle";
    Icmpv6Truncated => "icmpv6_truncated", "ICMPv6 message shorter than its header";
    Icmpv6BadChecksum => "icmpv6_bad_checksum", "ICMPv6 checksum does not verify";
    Icmpv6Unsupported => "icmpv6_unsupported", "ICMPv6 message type the gateway does not handle";
    NdpInvalid => "ndp_invalid", "neighbor solicitation/advertisement with a non-zero code or a multicast target";
    NdpBadOption => "ndp_bad_option", "NDP option with length zero or running past the message";
    TcpTruncated => "tcp_truncated", "TCP segment shorter than 20 bytes";
    TcpBadDataOffset => "tcp_bad_data_offset", "TCP data offset below 5 or past the end of the segment";
    TcpBadChecksum => "tcp_bad_checksum", "TCP checksum does not verify";
    UdpTruncated => "udp_truncated", "UDP datagram shorter than 8 bytes";
    UdpBadLength => "udp_bad_length", "UDP length field below 8 or past the end of the IP payload";
    UdpBadChecksum => "udp_bad_checksum", "UDP checksum does not verify";
    UdpZeroChecksumIpv6 => "udp_zero_checksum_ipv6", "UDP over IPv6 with a zero (absent) checksum";
    GreTruncated => "gre_truncated", "GRE packet shorter than its header (with optional fields)";
    GreBadVersion => "gre_bad_version", "GRE version is not 0";
    GreUnsupportedFlags => "gre_unsupported_flags", "GRE reserved bits 1, 4 or 5 set (RFC 1701 routing / strict source route / recursion)";
    GreBadChecksum => "gre_bad_checksum", "GRE checksum does not verify";
    VxlanTruncated => "vxlan_truncated", "VXLAN header shorter than 8 bytes";
    VxlanNoVni => "vxlan_no_vni", "VXLAN I flag clear: no valid VNI";
}

impl ParseError {
    /// Position in [`ParseError::ALL`]: the index of this reason's per-core drop counter.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for ParseError {}

/// Result of parsing or verifying wire data.
pub type Result<T> = core::result::Result<T, ParseError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_indexes_names_descriptions() {
        assert_eq!(ParseError::COUNT, ParseError::ALL.len());
        let mut names = std::collections::HashSet::new();
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(names.insert(e.name()), "duplicate name {}", e.name());
            assert!(e.name().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!(!e.description().is_empty());
            assert_eq!(e.to_string(), e.description());
        }
    }
}
