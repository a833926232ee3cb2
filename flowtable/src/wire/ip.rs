//! What IPv4 and IPv6 share: protocol numbers and the transport pseudo-header.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;

enum_with_unknown! {
    /// IP protocol / IPv6 next-header numbers (IANA "Assigned Internet Protocol Numbers").
    pub enum IpProtocol(u8) {
        /// IPv6 hop-by-hop options.
        HopByHop = 0,
        /// ICMP for IPv4.
        Icmp = 1,
        /// IGMP.
        Igmp = 2,
        /// IPv4 in IP.
        IpIp = 4,
        /// TCP.
        Tcp = 6,
        /// UDP.
        Udp = 17,
        /// IPv6 encapsulated in IP.
        Ipv6 = 41,
        /// IPv6 routing header.
        Ipv6Route = 43,
        /// IPv6 fragment header.
        Ipv6Frag = 44,
        /// Generic Routing Encapsulation.
        Gre = 47,
        /// IPsec encapsulating security payload.
        Esp = 50,
        /// IPsec authentication header.
        Ah = 51,
        /// ICMP for IPv6.
        Icmpv6 = 58,
        /// IPv6 "no next header".
        Ipv6NoNxt = 59,
        /// IPv6 destination options.
        Ipv6Opts = 60,
        /// SCTP.
        Sctp = 132,
    }
}

/// The addresses of a transport checksum's pseudo-header (RFC 793 / RFC 768 for IPv4, RFC 8200 section 8.1 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PseudoHeader {
    /// IPv4 source and destination.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// IPv6 source and (final) destination.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address (the final one if a routing header is present).
        dst: Ipv6Addr,
    },
}

impl PseudoHeader {
    /// Ones'-complement sum (not complemented) of the pseudo-header for `protocol` and an upper-layer length.
    pub fn sum(&self, protocol: IpProtocol, upper_len: u32) -> u16 {
        let proto = u16::from(u8::from(protocol));
        match self {
            PseudoHeader::V4 { src, dst } => checksum::combine(&[
                checksum::data(&src.octets()),
                checksum::data(&dst.octets()),
                proto,
                // IPv4 carries a 16-bit length; larger values cannot occur in a valid packet.
                upper_len as u16,
            ]),
            PseudoHeader::V6 { src, dst } => checksum::combine(&[
                checksum::data(&src.octets()),
                checksum::data(&dst.octets()),
                (upper_len >> 16) as u16,
                upper_len as u16,
                proto,
            ]),
        }
    }

    /// True for IPv6.
    pub fn is_ipv6(&self) -> bool {
        matches!(self, PseudoHeader::V6 { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_total() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(200), IpProtocol::Unknown(200));
    }

    #[test]
    fn pseudo_header_sums() {
        let v4 = PseudoHeader::V4 { src: Ipv4Addr::new(10, 0, 0, 1), dst: Ipv4Addr::new(10, 0, 0, 2) };
        // 0a00 + 0001 + 0a00 + 0002 + 0006 + 0014
        assert_eq!(v4.sum(IpProtocol::Tcp, 20), 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x0006 + 0x0014);
        let v6 = PseudoHeader::V6 { src: Ipv6Addr::LOCALHOST, dst: Ipv6Addr::LOCALHOST };
        assert_eq!(v6.sum(IpProtocol::Udp, 0x1_0008), 1 + 1 + 1 + 8 + 17);
        assert!(v6.is_ipv6() && !v4.is_ipv6());
    }
}
