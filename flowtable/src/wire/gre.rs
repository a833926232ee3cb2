//! GRE (RFC 2784) with the key and sequence number extensions (RFC 2890).
//!
//! Layout: flags and version (C, K, S bits), protocol type, then optionally checksum + reserved1
//! (C), key (K), sequence number (S), each 4 bytes, in that order. [`Packet::new_checked`]
//! guarantees the header with every optional field its flags announce. [`Repr::parse`] also rejects
//! a version other than 0 and the RFC 1701 bits that RFC 2784 says a receiver must discard on.
//!
//! Setter that voids the check: [`Packet::set_flags`].

use super::checksum;
use super::error::{ParseError, Result};
use super::ethernet::EtherType;

mod field {
    use core::ops::Range;
    pub const FLAGS_VER: Range<usize> = 0..2;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const OPTIONAL: usize = 4;
}

const FLAG_C: u16 = 0x8000;
const FLAG_R: u16 = 0x4000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
const FLAG_SSR: u16 = 0x0800;
const RECUR_HIGH: u16 = 0x0400;
const VERSION_MASK: u16 = 0x0007;
/// Bits 1, 4 and 5: RFC 2784 section 2.3 says discard unless RFC 1701 is implemented.
const MUST_BE_ZERO: u16 = FLAG_R | FLAG_SSR | RECUR_HIGH;

/// Length of the base header (no optional fields).
pub const BASE_HEADER_LEN: usize = 4;

/// A read/write view of a GRE packet.
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

    /// Ensures the base header and every optional field the flags announce.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_HEADER_LEN || len < self.header_len() {
            Err(ParseError::GreTruncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn flags_ver(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::FLAGS_VER];
        u16::from_be_bytes([d[0], d[1]])
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let d = &self.buffer.as_ref()[at..at + 4];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The raw flags-and-version word.
    #[inline]
    pub fn flags(&self) -> u16 {
        self.flags_ver()
    }

    /// C: checksum present.
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags_ver() & FLAG_C != 0
    }

    /// K: key present.
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags_ver() & FLAG_K != 0
    }

    /// S: sequence number present.
    #[inline]
    pub fn seq_present(&self) -> bool {
        self.flags_ver() & FLAG_S != 0
    }

    /// Version (0 for RFC 2784 GRE; 1 is PPTP's enhanced GRE).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags_ver() & VERSION_MASK) as u8
    }

    /// Protocol type of the payload (0x6558 for Ethernet, 0x0800 for IPv4, ...).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        let d = &self.buffer.as_ref()[field::PROTOCOL];
        EtherType::from(u16::from_be_bytes([d[0], d[1]]))
    }

    /// Header length before any RFC 1701 routing: 4, plus 4 for the checksum word (present with C,
    /// or with R: RFC 1701 carries checksum and offset whenever either bit is set), for K and for S.
    #[inline]
    pub fn header_len(&self) -> usize {
        let f = self.flags_ver();
        BASE_HEADER_LEN
            + 4 * (usize::from(f & (FLAG_C | FLAG_R) != 0)
                + usize::from(f & FLAG_K != 0)
                + usize::from(f & FLAG_S != 0))
    }

    #[inline]
    fn key_offset(&self) -> usize {
        field::OPTIONAL + if self.flags_ver() & (FLAG_C | FLAG_R) != 0 { 4 } else { 0 }
    }

    #[inline]
    fn seq_offset(&self) -> usize {
        self.key_offset() + if self.key_present() { 4 } else { 0 }
    }

    /// The checksum field, if present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        if self.checksum_present() {
            Some((self.u32_at(field::OPTIONAL) >> 16) as u16)
        } else {
            None
        }
    }

    /// The key, if present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        if self.key_present() {
            Some(self.u32_at(self.key_offset()))
        } else {
            None
        }
    }

    /// The sequence number, if present.
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        if self.seq_present() {
            Some(self.u32_at(self.seq_offset()))
        } else {
            None
        }
    }

    /// True when there is no checksum, or it verifies over the header and payload.
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the flags word: C, K, S as given, version, every other bit zero. Voids the length check.
    #[inline]
    pub fn set_flags(&mut self, checksum: bool, key: bool, seq: bool, version: u8) {
        let mut f = u16::from(version) & VERSION_MASK;
        if checksum {
            f |= FLAG_C;
        }
        if key {
            f |= FLAG_K;
        }
        if seq {
            f |= FLAG_S;
        }
        self.buffer.as_mut()[field::FLAGS_VER].copy_from_slice(&f.to_be_bytes())
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&u16::from(value).to_be_bytes())
    }

    /// Writes the checksum field and zeroes reserved1; returns false (writes nothing) if C is clear.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) -> bool {
        if !self.checksum_present() {
            return false;
        }
        let at = field::OPTIONAL;
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&(u32::from(value) << 16).to_be_bytes());
        true
    }

    /// Writes the key; returns false (writes nothing) if K is clear.
    #[inline]
    pub fn set_key(&mut self, value: u32) -> bool {
        if !self.key_present() {
            return false;
        }
        let at = self.key_offset();
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&value.to_be_bytes());
        true
    }

    /// Writes the sequence number; returns false (writes nothing) if S is clear.
    #[inline]
    pub fn set_sequence(&mut self, value: u32) -> bool {
        if !self.seq_present() {
            return false;
        }
        let at = self.seq_offset();
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&value.to_be_bytes());
        true
    }

    /// Computes and writes the checksum over header and payload, if C is set.
    pub fn fill_checksum(&mut self) {
        if self.set_checksum(0) {
            let c = checksum::finish(checksum::data(self.buffer.as_ref()));
            self.set_checksum(c);
        }
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A validated GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Protocol type of the payload.
    pub protocol_type: EtherType,
    /// Whether a checksum is present.
    pub checksum: bool,
    /// Key (RFC 2890), the MidoNet tunnel key.
    pub key: Option<u32>,
    /// Sequence number (RFC 2890).
    pub sequence: Option<u32>,
}

impl Repr {
    /// Parses a header: version 0, RFC 1701 bits clear, checksum (if present) verified.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 0 {
            return Err(ParseError::GreBadVersion);
        }
        if packet.flags() & MUST_BE_ZERO != 0 {
            return Err(ParseError::GreUnsupportedFlags);
        }
        if !packet.verify_checksum() {
            return Err(ParseError::GreBadChecksum);
        }
        Ok(Repr {
            protocol_type: packet.protocol_type(),
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// Header length [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        BASE_HEADER_LEN
            + if self.checksum { 4 } else { 0 }
            + if self.key.is_some() { 4 } else { 0 }
            + if self.sequence.is_some() { 4 } else { 0 }
    }

    /// Writes the header (a present checksum is zero: call [`Packet::fill_checksum`] once the payload is in place).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(self.checksum, self.key.is_some(), self.sequence.is_some(), 0);
        packet.set_protocol_type(self.protocol_type);
        packet.set_checksum(0);
        if let Some(k) = self.key {
            packet.set_key(k);
        }
        if let Some(s) = self.sequence {
            packet.set_sequence(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // scapy: bytes(GRE(key_present=1, key=0x00001234, proto=0x6558)/b"\x00\x11\x22\x33\x44\x55")
    const KEYED: [u8; 14] = [0x20, 0x00, 0x65, 0x58, 0x00, 0x00, 0x12, 0x34, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

    // scapy: bytes(GRE(chksum_present=1, key_present=1, seqnum_present=1, key=7, sequence_number=9,
    //                  proto=0x0800)/b"ip-packet")
    const FULL: [u8; 25] = [
        0xb0, 0x00, 0x08, 0x00, 0x70, 0x45, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x09, 0x69, 0x70,
        0x2d, 0x70, 0x61, 0x63, 0x6b, 0x65, 0x74,
    ];

    #[test]
    fn parse_keyed() {
        let p = Packet::new_checked(&KEYED[..]).unwrap();
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.payload(), &KEYED[8..]);
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr {
                protocol_type: EtherType::TransparentEthernetBridging,
                checksum: false,
                key: Some(0x1234),
                sequence: None
            }
        );
    }

    #[test]
    fn parse_full() {
        let p = Packet::new_checked(&FULL[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert!(p.verify_checksum());
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr { protocol_type: EtherType::Ipv4, checksum: true, key: Some(7), sequence: Some(9) }
        );
        assert_eq!(p.payload(), b"ip-packet");
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 25];
        let repr = Repr { protocol_type: EtherType::Ipv4, checksum: true, key: Some(7), sequence: Some(9) };
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(b"ip-packet");
        p.fill_checksum();
        assert_eq!(buf, FULL);
    }

    #[test]
    fn errors() {
        assert_eq!(Packet::new_checked(&KEYED[..3]).unwrap_err(), ParseError::GreTruncated);
        assert_eq!(Packet::new_checked(&KEYED[..7]).unwrap_err(), ParseError::GreTruncated);
        assert_eq!(Packet::new_checked(&FULL[..15]).unwrap_err(), ParseError::GreTruncated);
        let mut b = KEYED;
        b[1] = 1;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::GreBadVersion);
        for bit in [0x40u8, 0x08, 0x04] {
            let mut b = KEYED;
            b[0] |= bit;
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::GreUnsupportedFlags);
        }
        // Bits 6-12 are ignored on receipt.
        let mut b = KEYED;
        b[0] |= 0x02;
        b[1] |= 0xf8;
        assert!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).is_ok());
        let mut b = FULL;
        b[24] ^= 0xff;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::GreBadChecksum);
        let mut b = KEYED;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(!p.set_sequence(1) && !p.set_checksum(1));
        assert!(p.set_key(99));
        assert_eq!(p.key(), Some(99));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (Repr::parse(&p), p.key(), p.sequence(), p.checksum(), p.payload().len());
            }
        }

        #[test]
        fn emit_parse_round_trip(proto in any::<u16>(), csum in any::<bool>(), key in proptest::option::of(any::<u32>()),
                                 seq in proptest::option::of(any::<u32>()),
                                 payload in proptest::collection::vec(any::<u8>(), 0..32)) {
            let repr = Repr { protocol_type: EtherType::from(proto), checksum: csum, key, sequence: seq };
            let mut buf = vec![0xffu8; repr.header_len() + payload.len()];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), repr);
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
