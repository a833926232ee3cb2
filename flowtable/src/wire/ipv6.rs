//! IPv6 fixed header (RFC 8200 section 3). Extension headers: see `ipv6ext`.
//!
//! [`Packet::new_checked`] guarantees the 40-byte header and a payload length that fits the buffer
//! (a longer buffer is link-layer padding, excluded from [`Packet::payload`]). It does not check the
//! version: [`Repr::parse`] and [`Headers::parse`] do. Jumbograms (payload length 0 with a jumbo
//! option) are not supported: a zero payload length means an empty payload.
//!
//! Setters that void the check: [`Packet::set_payload_len`].
//!
//! [`Headers::parse`]: crate::wire::Headers::parse

use core::net::Ipv6Addr;

use super::error::{ParseError, Result};
use super::ip::IpProtocol;
use super::ipv6ext::{self, ExtChain};

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
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

    /// Checks the fixed header and the payload length against the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(ParseError::Ipv6Truncated)
        } else if HEADER_LEN + usize::from(self.payload_len()) > len {
            Err(ParseError::Ipv6TruncatedPayload)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn word0(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Version field (6 for IPv6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Header length plus payload length.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The next header after the fixed header (an extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Walks the extension headers after the fixed header, at most `max` of them, to the upper layer.
    /// Offsets in the result are relative to the start of the payload (byte 40).
    pub fn ext_chain(&self, max: usize) -> Result<ExtChain> {
        let d = self.buffer.as_ref();
        let end = self.total_len().min(d.len());
        ipv6ext::walk(&d[HEADER_LEN.min(end)..end], self.next_header(), max)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (extension headers included), padding excluded.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = self.total_len();
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_word0(&mut self, v: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let w = self.word0();
        self.set_word0((w & 0x0fff_ffff) | (u32::from(value & 0xf) << 28))
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let w = self.word0();
        self.set_word0((w & 0xf00f_ffff) | (u32::from(value) << 20))
    }

    /// Sets the flow label (low 20 bits of `value`).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let w = self.word0();
        self.set_word0((w & 0xfff0_0000) | (value & 0x000f_ffff))
    }

    /// Sets the payload length. Voids the length check.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into()
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value
    }

    /// Decrements the hop limit (not below zero) and returns it. IPv6 has no header checksum.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> u8 {
        let v = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(v);
        v
    }

    /// Sets the source address (the transport checksum covers it: see `update_checksum_addr`).
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    /// Sets the destination address (the transport checksum covers it).
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A validated IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header after the fixed header.
    pub next_header: IpProtocol,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Parses and validates the fixed header (lengths and version).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(ParseError::Ipv6BadVersion);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Header bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; the payload is not touched. `payload_len` must fit 16 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_word0(0);
        packet.set_version(6);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // scapy: bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb8, fl=0x12345, hlim=64, nh=59)/b"xyzw")
    const SIMPLE: [u8; 44] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x3b, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x78, 0x79, 0x7a, 0x77,
    ];

    fn simple_repr() -> Repr {
        Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: IpProtocol::Ipv6NoNxt,
            payload_len: 4,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn parse_simple() {
        let p = Packet::new_checked(&SIMPLE[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), simple_repr());
        assert_eq!(p.payload(), b"xyzw");
        let chain = p.ext_chain(8).unwrap();
        assert_eq!((chain.protocol, chain.offset, chain.count), (IpProtocol::Ipv6NoNxt, 0, 0));
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 44];
        simple_repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf[40..].copy_from_slice(b"xyzw");
        assert_eq!(buf, SIMPLE);
    }

    #[test]
    fn errors_and_padding() {
        assert_eq!(Packet::new_checked(&SIMPLE[..39]).unwrap_err(), ParseError::Ipv6Truncated);
        assert_eq!(Packet::new_checked(&SIMPLE[..43]).unwrap_err(), ParseError::Ipv6TruncatedPayload);
        let mut b = SIMPLE;
        b[0] = 0x4b;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::Ipv6BadVersion);
        let mut padded = SIMPLE.to_vec();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload(), b"xyzw");
    }

    #[test]
    fn hop_limit() {
        let mut b = SIMPLE;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.decrement_hop_limit(), 63);
        p.set_hop_limit(0);
        assert_eq!(p.decrement_hop_limit(), 0);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120), max in 0usize..10) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p);
                let _ = (p.payload().len(), p.flow_label(), p.ext_chain(max));
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), nh in any::<u8>(), payload_len in 0usize..64,
            hop_limit in any::<u8>(), traffic_class in any::<u8>(), flow_label in 0u32..0x10_0000,
        ) {
            let repr = Repr {
                src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst), next_header: IpProtocol::from(nh),
                payload_len, hop_limit, traffic_class, flow_label,
            };
            let mut buf = vec![0xffu8; HEADER_LEN + payload_len];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }
    }
}
