//! UDP datagram headers (RFC 768), checksum with the IPv4 or IPv6 pseudo-header.
//!
//! Zero-checksum rules: over IPv4 a zero checksum field means "no checksum" (it verifies, and
//! incremental updates leave it zero); a computed checksum of zero is sent as `0xffff`. Over IPv6
//! the checksum is mandatory (RFC 8200 section 8.1): a zero field does not verify
//! ([`ParseError::UdpZeroChecksumIpv6`]).
//!
//! [`Packet::new_checked`] guarantees 8 bytes and a length field between 8 and the buffer length
//! (bytes past it are ignored). Setter that voids the check: [`Packet::set_len`].

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::error::{ParseError, Result};
use super::ip::{IpProtocol, PseudoHeader};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the header, and a length field between 8 and the buffer length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::UdpTruncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
            return Err(ParseError::UdpBadLength);
        }
        Ok(())
    }

    /// Ensures the header and a length field of at least 8, and nothing about the rest: what the
    /// first fragment of a fragmented datagram carries (its length field counts the whole
    /// datagram, most of which is in later fragments). Views that read the payload or the
    /// checksum need [`Packet::check_len`].
    pub fn check_header(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::UdpTruncated);
        }
        if usize::from(self.len()) < HEADER_LEN {
            return Err(ParseError::UdpBadLength);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Length field (header and payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Checksum field (0: none, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    fn compute(&self, pseudo: &PseudoHeader) -> u16 {
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::combine(&[pseudo.sum(IpProtocol::Udp, u32::from(self.len())), checksum::data(d)])
    }

    /// True when the checksum verifies; a zero field verifies over IPv4 only.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return !pseudo.is_ipv6();
        }
        self.compute(pseudo) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let l = usize::from(self.len());
        &self.buffer.as_ref()[HEADER_LEN..l]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value)
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value)
    }

    /// Sets the length field. Voids the length check.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Computes and writes the checksum (a computed zero is written as `0xffff`).
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        self.set_checksum(0);
        let c = checksum::finish(self.compute(pseudo));
        self.set_checksum(if c == 0 { 0xffff } else { c })
    }

    #[inline]
    fn adjust(&mut self, new: impl FnOnce(u16) -> u16) {
        let hc = self.checksum();
        if hc != 0 {
            let c = new(hc);
            self.set_checksum(if c == 0 { 0xffff } else { c })
        }
    }

    /// Rewrites the source port; an existing checksum is updated incrementally. Returns the old port.
    #[inline]
    pub fn rewrite_src_port(&mut self, value: u16) -> u16 {
        let old = self.src_port();
        self.adjust(|hc| checksum::update16(hc, old, value));
        self.set_src_port(value);
        old
    }

    /// Rewrites the destination port; an existing checksum is updated incrementally. Returns the old port.
    #[inline]
    pub fn rewrite_dst_port(&mut self, value: u16) -> u16 {
        let old = self.dst_port();
        self.adjust(|hc| checksum::update16(hc, old, value));
        self.set_dst_port(value);
        old
    }

    /// Adjusts an existing checksum for an IPv4 address change in the pseudo-header (a zero
    /// checksum stays zero).
    #[inline]
    pub fn update_checksum_addr_v4(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.adjust(|hc| checksum::update32(hc, old.to_bits(), new.to_bits()))
    }

    /// Adjusts the checksum for an IPv6 address change in the pseudo-header.
    #[inline]
    pub fn update_checksum_addr_v6(&mut self, old: Ipv6Addr, new: Ipv6Addr) {
        self.adjust(|hc| checksum::update_bytes(hc, &old.octets(), &new.octets()))
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

/// A validated UDP header; the payload stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Parses a datagram and verifies its checksum under the zero-checksum rules.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, pseudo: &PseudoHeader) -> Result<Repr> {
        packet.check_len()?;
        if packet.checksum() == 0 && pseudo.is_ipv6() {
            return Err(ParseError::UdpZeroChecksumIpv6);
        }
        if !packet.verify_checksum(pseudo) {
            return Err(ParseError::UdpBadChecksum);
        }
        Ok(Repr { src_port: packet.src_port(), dst_port: packet.dst_port() })
    }

    /// Header bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for `payload_len` bytes of payload, checksum zero; call
    /// [`Packet::fill_checksum`] once the payload is in place (mandatory over IPv6).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, payload_len: usize) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload_len) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4() -> PseudoHeader {
        PseudoHeader::V4 { src: Ipv4Addr::new(10, 0, 0, 1), dst: Ipv4Addr::new(10, 0, 0, 2) }
    }

    fn v6() -> PseudoHeader {
        PseudoHeader::V6 { src: "fe80::1".parse().unwrap(), dst: "ff02::fb".parse().unwrap() }
    }

    // scapy: bytes(IP(src="10.0.0.1", dst="10.0.0.2")/UDP(sport=5353, dport=4789)/b"payload!")[20:]
    const V4: [u8; 16] =
        [0x14, 0xe9, 0x12, 0xb5, 0x00, 0x10, 0x06, 0xdd, 0x70, 0x61, 0x79, 0x6c, 0x6f, 0x61, 0x64, 0x21];
    // scapy: bytes(IPv6(src="fe80::1", dst="ff02::fb")/UDP(sport=5353, dport=5353)/b"mdns")[40:]
    const V6: [u8; 12] = [0x14, 0xe9, 0x14, 0xe9, 0x00, 0x0c, 0xfb, 0xac, 0x6d, 0x64, 0x6e, 0x73];

    #[test]
    fn parse_v4_and_v6() {
        let p = Packet::new_checked(&V4[..]).unwrap();
        assert_eq!(Repr::parse(&p, &v4()).unwrap(), Repr { src_port: 5353, dst_port: 4789 });
        assert_eq!(p.payload(), b"payload!");
        let p = Packet::new_checked(&V6[..]).unwrap();
        assert_eq!(Repr::parse(&p, &v6()).unwrap(), Repr { src_port: 5353, dst_port: 5353 });
        assert_eq!(Repr::parse(&p, &v4()).unwrap_err(), ParseError::UdpBadChecksum);
    }

    #[test]
    fn zero_checksum_rules() {
        let mut b = V4;
        b[6] = 0;
        b[7] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&v4()));
        assert!(!p.verify_checksum(&v6()));
        assert_eq!(Repr::parse(&p, &v6()).unwrap_err(), ParseError::UdpZeroChecksumIpv6);
        // Incremental updates keep "no checksum".
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_src_port(1);
        p.update_checksum_addr_v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the source port so the datagram's sum is 0xffff: the computed checksum is zero.
        let mut b = V4;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(0);
        p.fill_checksum(&v4());
        let c = p.checksum();
        // Adding c to the source port makes the sum (without checksum) 0xffff.
        p.set_src_port(c);
        p.fill_checksum(&v4());
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&v4()));
        // An incremental update landing on zero is also written as 0xffff.
        p.set_src_port(0);
        p.fill_checksum(&v4());
        p.rewrite_src_port(c);
        assert_eq!(p.checksum(), 0xffff);
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        Repr { src_port: 5353, dst_port: 4789 }.emit(&mut p, 8);
        p.payload_mut().copy_from_slice(b"payload!");
        p.fill_checksum(&v4());
        assert_eq!(buf, V4);
    }

    #[test]
    fn length_errors() {
        assert_eq!(Packet::new_checked(&V4[..7]).unwrap_err(), ParseError::UdpTruncated);
        assert_eq!(Packet::new_checked(&V4[..15]).unwrap_err(), ParseError::UdpBadLength);
        let mut b = V4;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), ParseError::UdpBadLength);
        // A buffer longer than the length field: the rest is ignored.
        let mut long = V4.to_vec();
        long.extend_from_slice(&[1, 2, 3]);
        let p = Packet::new_checked(&long[..]).unwrap();
        assert_eq!(p.payload(), b"payload!");
        assert!(p.verify_checksum(&v4()));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (Repr::parse(&p, &v4()), Repr::parse(&p, &v6()), p.payload().len());
            }
        }

        #[test]
        fn emit_parse_round_trip(sp in any::<u16>(), dp in any::<u16>(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..64), ipv6 in any::<bool>()) {
            let repr = Repr { src_port: sp, dst_port: dp };
            let pseudo = if ipv6 { v6() } else { v4() };
            let mut buf = vec![0x11u8; HEADER_LEN + payload.len()];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p, payload.len());
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum(&pseudo);
            prop_assert_ne!(p.checksum(), 0);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, &pseudo).unwrap(), repr);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn incremental_nat_equals_full(src in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(), a6 in any::<[u8; 16]>()) {
            let mut b = V4;
            let mut p = Packet::new_unchecked(&mut b[..]);
            p.update_checksum_addr_v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::from(src));
            p.rewrite_src_port(sp);
            p.rewrite_dst_port(dp);
            let inc = p.checksum();
            p.fill_checksum(&PseudoHeader::V4 { src: Ipv4Addr::from(src), dst: Ipv4Addr::new(10, 0, 0, 2) });
            prop_assert_eq!(inc, p.checksum());

            let mut b = V6;
            let mut p = Packet::new_unchecked(&mut b[..]);
            let PseudoHeader::V6 { src: s0, dst: d0 } = v6() else { unreachable!() };
            p.update_checksum_addr_v6(d0, Ipv6Addr::from(a6));
            let inc = p.checksum();
            p.fill_checksum(&PseudoHeader::V6 { src: s0, dst: Ipv6Addr::from(a6) });
            prop_assert_eq!(inc, p.checksum());
        }
    }
}
