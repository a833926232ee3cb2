//! VXLAN (RFC 7348): an 8-byte header inside UDP (destination port 4789 by default) carrying a
//! 24-bit VXLAN network identifier, the MidoNet tunnel key.
//!
//! [`Packet::new_checked`] guarantees the 8 bytes. [`Repr::parse`] requires the I flag; the reserved
//! fields and other flag bits are ignored on receipt and written as zero.

use super::error::{ParseError, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED2: usize = 7;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// IANA-assigned UDP destination port.
pub const DEFAULT_UDP_PORT: u16 = 4789;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;

/// A 24-bit VXLAN network identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Vni(u32);

impl Vni {
    /// Largest VNI.
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI, if `value` fits 24 bits.
    pub const fn new(value: u32) -> Option<Vni> {
        if value <= Self::MAX {
            Some(Vni(value))
        } else {
            None
        }
    }

    /// The value.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A read/write view of a VXLAN header and its payload (the inner Ethernet frame).
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

    /// Ensures the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::VxlanTruncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The I flag: the VNI is valid.
    #[inline]
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The VNI field.
    #[inline]
    pub fn vni(&self) -> Vni {
        let d = &self.buffer.as_ref()[field::VNI];
        Vni(u32::from_be_bytes([0, d[0], d[1], d[2]]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: the inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value
    }

    /// Zeroes both reserved fields.
    #[inline]
    pub fn clear_reserved(&mut self) {
        let d = self.buffer.as_mut();
        d[field::RESERVED1].fill(0);
        d[field::RESERVED2] = 0;
    }

    /// Sets the VNI.
    #[inline]
    pub fn set_vni(&mut self, value: Vni) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&value.0.to_be_bytes()[1..])
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A validated VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The network identifier.
    pub vni: Vni,
}

impl Repr {
    /// Parses a header; the I flag must be set.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(ParseError::VxlanNoVni);
        }
        Ok(Repr { vni: packet.vni() })
    }

    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: I flag, VNI, reserved fields zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // scapy: bytes(VXLAN(vni=0x123456)/b"inner")
    const VXLAN: [u8; 13] = [0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, 0x69, 0x6e, 0x6e, 0x65, 0x72];

    #[test]
    fn parse() {
        let p = Packet::new_checked(&VXLAN[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr { vni: Vni::new(0x123456).unwrap() });
        assert_eq!(p.payload(), b"inner");
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 13];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        Repr { vni: Vni::new(0x123456).unwrap() }.emit(&mut p);
        p.payload_mut().copy_from_slice(b"inner");
        assert_eq!(buf, VXLAN);
    }

    #[test]
    fn errors_and_ignored_fields() {
        assert_eq!(Packet::new_checked(&VXLAN[..7]).unwrap_err(), ParseError::VxlanTruncated);
        let mut b = VXLAN;
        b[0] = 0;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::VxlanNoVni);
        let mut b = VXLAN;
        b[0] = 0xff;
        b[1] = 0xff;
        b[7] = 0xff;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap().vni.get(), 0x123456);
        assert_eq!(Vni::new(0x100_0000), None);
        assert_eq!(Vni::new(Vni::MAX).map(Vni::get), Some(0xff_ffff));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (Repr::parse(&p), p.payload().len());
            }
        }

        #[test]
        fn emit_parse_round_trip(vni in 0u32..=Vni::MAX) {
            let repr = Repr { vni: Vni::new(vni).unwrap() };
            let mut buf = [0xffu8; HEADER_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }
    }
}
