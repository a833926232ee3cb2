//! TCP segment headers (RFC 9293): ports, sequence numbers, flags, data offset, options, checksum with
//! the IPv4 or IPv6 pseudo-header.
//!
//! The view wraps the whole segment (the IP payload): TCP has no length field of its own.
//! [`Packet::new_checked`] guarantees 20 bytes and a data offset between 5 and the segment length.
//!
//! Setter that voids the check: [`Packet::set_header_len`].

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops;

use super::checksum;
use super::error::{ParseError, Result};
use super::ip::{IpProtocol, PseudoHeader};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const FLAGS: Range<usize> = 12..14;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Largest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// The TCP control bits (low 9 bits of the data-offset/flags word).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: Flags = Flags(0x002);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x004);
    /// Push.
    pub const PSH: Flags = Flags(0x008);
    /// Acknowledgment field significant.
    pub const ACK: Flags = Flags(0x010);
    /// Urgent pointer significant.
    pub const URG: Flags = Flags(0x020);
    /// ECN echo.
    pub const ECE: Flags = Flags(0x040);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x080);
    /// ECN nonce (historic, RFC 3540) / accurate ECN bit.
    pub const NS: Flags = Flags(0x100);
    const MASK: u16 = 0x1ff;

    /// No flags.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Flags from bits (bits outside the 9 flag bits are dropped).
    pub const fn from_bits(bits: u16) -> Flags {
        Flags(bits & Self::MASK)
    }

    /// The bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any flag of `other` is set.
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
}

impl ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl ops::BitAnd for Flags {
    type Output = Flags;
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"];
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        if first {
            f.write_str("(empty)")?;
        }
        Ok(())
    }
}

/// A read/write view of a TCP segment.
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

    /// Ensures the fixed header, and a data offset of at least 5 that fits the segment.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TcpTruncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(ParseError::TcpBadDataOffset);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn u16_at(&self, r: ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    #[inline]
    fn u32_at(&self, r: ops::Range<usize>) -> u32 {
        let d = &self.buffer.as_ref()[r];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        self.u32_at(field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        self.u32_at(field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::FLAGS.start] >> 4) * 4
    }

    /// The control bits.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags::from_bits(self.u16_at(field::FLAGS))
    }

    /// FIN set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(Flags::FIN)
    }

    /// SYN set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(Flags::SYN)
    }

    /// RST set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(Flags::RST)
    }

    /// ACK set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(Flags::ACK)
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// Segment length (header and payload).
    #[inline]
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// True when the checksum verifies against the pseudo-header.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        let d = self.buffer.as_ref();
        checksum::combine(&[pseudo.sum(IpProtocol::Tcp, d.len() as u32), checksum::data(d)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Option bytes (between the fixed header and the data offset).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[HEADER_LEN..hl]
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_u16_at(&mut self, r: ops::Range<usize>, v: u16) {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the header length in bytes (a multiple of 4); clears the reserved bits. Voids the length check.
    #[inline]
    pub fn set_header_len(&mut self, value: usize) {
        let flags = self.flags().bits();
        self.set_u16_at(field::FLAGS, ((value as u16 / 4) << 12) | flags)
    }

    /// Sets the control bits, keeping the data offset.
    #[inline]
    pub fn set_flags(&mut self, value: Flags) {
        let raw = self.u16_at(field::FLAGS);
        self.set_u16_at(field::FLAGS, (raw & !Flags::MASK) | value.bits())
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        self.set_u16_at(field::WIN_SIZE, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        self.set_u16_at(field::URGENT, value)
    }

    /// Computes and writes the checksum over the whole segment and the pseudo-header.
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let sum = checksum::combine(&[pseudo.sum(IpProtocol::Tcp, d.len() as u32), checksum::data(d)]);
        self.set_checksum(checksum::finish(sum))
    }

    /// Rewrites the source port, updating the checksum incrementally; returns the old port.
    #[inline]
    pub fn rewrite_src_port(&mut self, value: u16) -> u16 {
        let old = self.src_port();
        self.set_checksum(checksum::update16(self.checksum(), old, value));
        self.set_src_port(value);
        old
    }

    /// Rewrites the destination port, updating the checksum incrementally; returns the old port.
    #[inline]
    pub fn rewrite_dst_port(&mut self, value: u16) -> u16 {
        let old = self.dst_port();
        self.set_checksum(checksum::update16(self.checksum(), old, value));
        self.set_dst_port(value);
        old
    }

    /// Adjusts the checksum for an IPv4 address change in the pseudo-header (NAT).
    #[inline]
    pub fn update_checksum_addr_v4(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.set_checksum(checksum::update32(self.checksum(), old.to_bits(), new.to_bits()))
    }

    /// Adjusts the checksum for an IPv6 address change in the pseudo-header.
    #[inline]
    pub fn update_checksum_addr_v6(&mut self, old: Ipv6Addr, new: Ipv6Addr) {
        self.set_checksum(checksum::update_bytes(self.checksum(), &old.octets(), &new.octets()))
    }

    /// The option bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A validated TCP header. The payload is not part of it: it stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Control bits.
    pub flags: Flags,
    /// Window size.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Raw options; [`Repr::emit`] pads them with zeros (end of option list) to a multiple of 4.
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a segment and verifies its checksum against the pseudo-header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>, pseudo: &PseudoHeader) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(pseudo) {
            return Err(ParseError::TcpBadChecksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: packet.options(),
        })
    }

    /// Header length [`Repr::emit`] writes. `options` must be at most 40 bytes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len().div_ceil(4) * 4
    }

    /// Writes the header with a zero checksum; call [`Packet::fill_checksum`] once the payload is in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(self.header_len());
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_at);
        let opts = packet.options_mut();
        opts[..self.options.len()].copy_from_slice(self.options);
        opts[self.options.len()..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4() -> PseudoHeader {
        PseudoHeader::V4 { src: Ipv4Addr::new(192, 168, 1, 10), dst: Ipv4Addr::new(93, 184, 216, 34) }
    }

    fn v6() -> PseudoHeader {
        PseudoHeader::V6 { src: "2001:db8::1".parse().unwrap(), dst: "2001:db8::2".parse().unwrap() }
    }

    // scapy: bytes(IP(src="192.168.1.10", dst="93.184.216.34")/TCP(sport=51000, dport=443, seq=0x01020304,
    //                  ack=0, flags="S", window=64240, options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]))[20:]
    const SYN_V4: [u8; 28] = [
        0xc7, 0x38, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x70, 0x02, 0xfa, 0xf0, 0xc4, 0xa0,
        0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07,
    ];

    // scapy: bytes(IPv6(src="2001:db8::1", dst="2001:db8::2")/TCP(sport=80, dport=40000, seq=7, ack=9,
    //                  flags="PA", window=512)/b"GET /")[40:]
    const DATA_V6: [u8; 25] = [
        0x00, 0x50, 0x9c, 0x40, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x09, 0x50, 0x18, 0x02, 0x00, 0xeb, 0x4c,
        0x00, 0x00, 0x47, 0x45, 0x54, 0x20, 0x2f,
    ];

    fn syn_repr() -> Repr<'static> {
        Repr {
            src_port: 51000,
            dst_port: 443,
            seq_number: 0x01020304,
            ack_number: 0,
            flags: Flags::SYN,
            window_len: 64240,
            urgent_at: 0,
            options: &[0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07],
        }
    }

    #[test]
    fn parse_syn_v4() {
        let p = Packet::new_checked(&SYN_V4[..]).unwrap();
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.header_len(), 28);
        assert!(p.payload().is_empty());
        assert_eq!(Repr::parse(&p, &v4()).unwrap(), syn_repr());
        assert_eq!(Repr::parse(&p, &v6()).unwrap_err(), ParseError::TcpBadChecksum);
    }

    #[test]
    fn parse_data_v6() {
        let p = Packet::new_checked(&DATA_V6[..]).unwrap();
        assert!(p.verify_checksum(&v6()));
        assert_eq!(p.flags(), Flags::PSH | Flags::ACK);
        assert_eq!(format!("{:?}", p.flags()), "PSH|ACK");
        assert_eq!(p.payload(), b"GET /");
        assert_eq!((p.seq_number(), p.ack_number(), p.window_len()), (7, 9, 512));
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        syn_repr().emit(&mut p);
        p.fill_checksum(&v4());
        assert_eq!(buf, SYN_V4);
    }

    #[test]
    fn length_errors() {
        assert_eq!(Packet::new_checked(&SYN_V4[..19]).unwrap_err(), ParseError::TcpTruncated);
        assert_eq!(Packet::new_checked(&SYN_V4[..27]).unwrap_err(), ParseError::TcpBadDataOffset);
        let mut b = SYN_V4;
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), ParseError::TcpBadDataOffset);
    }

    #[test]
    fn nat_rewrite_keeps_checksum() {
        let mut buf = SYN_V4;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        let new_src = Ipv4Addr::new(203, 0, 113, 5);
        p.update_checksum_addr_v4(Ipv4Addr::new(192, 168, 1, 10), new_src);
        assert_eq!(p.rewrite_src_port(1024), 51000);
        let pseudo = PseudoHeader::V4 { src: new_src, dst: Ipv4Addr::new(93, 184, 216, 34) };
        assert!(p.verify_checksum(&pseudo));
        let inc = p.checksum();
        p.fill_checksum(&pseudo);
        assert_eq!(inc, p.checksum());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p, &v4());
                let _ = (p.options().len(), p.payload().len(), p.flags(), p.verify_checksum(&v6()));
            }
        }

        #[test]
        fn emit_parse_round_trip(
            sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(), flags in 0u16..0x200,
            win in any::<u16>(), urg in any::<u16>(), nopt in 0usize..11, payload in proptest::collection::vec(any::<u8>(), 0..40),
            ipv6 in any::<bool>(),
        ) {
            let options = vec![1u8; nopt * 4];
            let repr = Repr {
                src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack, flags: Flags::from_bits(flags),
                window_len: win, urgent_at: urg, options: &options,
            };
            let pseudo = if ipv6 { v6() } else { v4() };
            let mut buf = vec![0xeeu8; repr.header_len() + payload.len()];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum(&pseudo);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, &pseudo).unwrap(), repr);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        /// NAT of both addresses and ports, incrementally, equals a full recomputation.
        #[test]
        fn incremental_nat_equals_full(src in any::<u32>(), dst in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(),
                                       src6 in any::<[u8; 16]>()) {
            let mut buf = SYN_V4;
            let mut p = Packet::new_unchecked(&mut buf[..]);
            let PseudoHeader::V4 { src: s0, dst: d0 } = v4() else { unreachable!() };
            p.update_checksum_addr_v4(s0, Ipv4Addr::from(src));
            p.update_checksum_addr_v4(d0, Ipv4Addr::from(dst));
            p.rewrite_src_port(sp);
            p.rewrite_dst_port(dp);
            let inc = p.checksum();
            let pseudo = PseudoHeader::V4 { src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst) };
            p.fill_checksum(&pseudo);
            prop_assert_eq!(inc, p.checksum());

            let mut buf = DATA_V6;
            let mut p = Packet::new_unchecked(&mut buf[..]);
            let PseudoHeader::V6 { src: s0, dst: d0 } = v6() else { unreachable!() };
            p.update_checksum_addr_v6(s0, Ipv6Addr::from(src6));
            let inc = p.checksum();
            p.fill_checksum(&PseudoHeader::V6 { src: Ipv6Addr::from(src6), dst: d0 });
            prop_assert_eq!(inc, p.checksum());
        }
    }
}
