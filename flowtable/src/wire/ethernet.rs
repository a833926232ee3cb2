//! Ethernet II frames with at most one 802.1Q tag.
//!
//! [`Frame::new_checked`] accepts an untagged frame or one whose outer ethertype is 802.1Q (0x8100),
//! and then guarantees the 14 or 18 header bytes. It does not reject a second tag or an 802.1ad
//! outer tag (their payload offsets are still well defined); [`Headers::parse`] does, as
//! [`ParseError::VlanStacked`].
//!
//! Setters that void the check: [`Frame::set_ethertype`] (turning an untagged frame into a tagged
//! one needs 4 more bytes; use [`push_vlan_tag`], which moves the addresses instead).
//!
//! [`Headers::parse`]: crate::wire::Headers::parse

use core::fmt;

use super::error::{ParseError, Result};

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Address from the first six bytes of `data`. Panics if `data` is shorter than six bytes.
    pub fn from_bytes(data: &[u8]) -> Address {
        let mut b = [0u8; 6];
        b.copy_from_slice(&data[..6]);
        Address(b)
    }

    /// The six bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Group bit clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Locally administered bit set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

enum_with_unknown! {
    /// Ethertypes (IEEE 802 numbers).
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP.
        Arp = 0x0806,
        /// 802.1Q customer VLAN tag.
        Vlan = 0x8100,
        /// IPv6.
        Ipv6 = 0x86dd,
        /// 802.1ad service VLAN tag (QinQ outer tag).
        QinQ = 0x88a8,
        /// Transparent Ethernet bridging: Ethernet inside GRE (NVGRE, OVS GRE).
        TransparentEthernetBridging = 0x6558,
    }
}

impl EtherType {
    /// True for the tag protocol identifiers of 802.1Q, 802.1ad and the old 0x9100 QinQ.
    pub fn is_vlan_tpid(self) -> bool {
        matches!(u16::from(self), 0x8100 | 0x88a8 | 0x9100)
    }
}

/// An 802.1Q tag control information: priority, drop eligible, VLAN id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits).
    pub vid: u16,
}

impl VlanTag {
    /// Tag from a 16-bit TCI.
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag { pcp: (tci >> 13) as u8, dei: tci & 0x1000 != 0, vid: tci & 0x0fff }
    }

    /// The 16-bit TCI (out-of-range `pcp`/`vid` bits are masked off).
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Ensures the header (and the 802.1Q tag when the outer ethertype says so) is in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(ParseError::EthernetTruncated)
        } else if self.is_tagged() && len < HEADER_LEN + VLAN_TAG_LEN {
            Err(ParseError::VlanTruncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: 14, or 18 with an 802.1Q tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The outer ethertype (0x8100 on a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let d = self.buffer.as_ref();
        EtherType::from(u16::from_be_bytes([d[12], d[13]]))
    }

    /// True when the outer ethertype is 802.1Q.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        let d = self.buffer.as_ref();
        d.len() >= field::ETHERTYPE.end && d[12] == 0x81 && d[13] == 0x00
    }

    /// The 802.1Q tag, if any.
    #[inline]
    pub fn vlan(&self) -> Option<VlanTag> {
        if self.is_tagged() {
            let d = &self.buffer.as_ref()[field::VLAN_TCI];
            Some(VlanTag::from_tci(u16::from_be_bytes([d[0], d[1]])))
        } else {
            None
        }
    }

    /// The ethertype of the payload: after the tag on a tagged frame, else the outer one.
    #[inline]
    pub fn inner_ethertype(&self) -> EtherType {
        if self.is_tagged() {
            let d = &self.buffer.as_ref()[field::VLAN_ETHERTYPE];
            EtherType::from(u16::from_be_bytes([d[0], d[1]]))
        } else {
            self.ethertype()
        }
    }

    /// Offset of the payload: [`Frame::header_len`].
    #[inline]
    pub fn payload_offset(&self) -> usize {
        self.header_len()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The payload after the header (and the tag).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let off = self.header_len();
        &self.buffer.as_ref()[off..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0)
    }

    /// Sets the outer ethertype. Voids the length check if it makes the frame tagged.
    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(value).to_be_bytes())
    }

    /// Sets the payload ethertype: after the tag on a tagged frame, else the outer one.
    #[inline]
    pub fn set_inner_ethertype(&mut self, value: EtherType) {
        if self.is_tagged() {
            self.buffer.as_mut()[field::VLAN_ETHERTYPE].copy_from_slice(&u16::from(value).to_be_bytes())
        } else {
            self.set_ethertype(value)
        }
    }

    /// Rewrites the tag of a tagged frame; returns false (and changes nothing) on an untagged one.
    #[inline]
    pub fn set_vlan(&mut self, tag: VlanTag) -> bool {
        if self.is_tagged() {
            self.buffer.as_mut()[field::VLAN_TCI].copy_from_slice(&tag.tci().to_be_bytes());
            true
        } else {
            false
        }
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let off = self.header_len();
        &mut self.buffer.as_mut()[off..]
    }
}

/// Removes the 802.1Q tag of the frame in `buf` by moving the two addresses 4 bytes forward.
/// Returns the offset at which the untagged frame now starts (4), or 0 if there was no tag.
pub fn pop_vlan_tag(buf: &mut [u8]) -> Result<usize> {
    let frame = Frame::new_checked(&*buf)?;
    if !frame.is_tagged() {
        return Ok(0);
    }
    buf.copy_within(0..field::ETHERTYPE.start, VLAN_TAG_LEN);
    Ok(VLAN_TAG_LEN)
}

/// Inserts an 802.1Q tag into the untagged frame at `buf[start..]`, using 4 bytes of headroom before
/// `start`: the addresses move 4 bytes back. Returns the offset of the tagged frame (`start - 4`).
pub fn push_vlan_tag(buf: &mut [u8], start: usize, tag: VlanTag) -> Result<usize> {
    if start < VLAN_TAG_LEN || buf.len() < start + HEADER_LEN {
        return Err(ParseError::EthernetTruncated);
    }
    let new = start - VLAN_TAG_LEN;
    buf.copy_within(start..start + field::ETHERTYPE.start, new);
    let t = new + field::ETHERTYPE.start;
    buf[t..t + 2].copy_from_slice(&0x8100u16.to_be_bytes());
    buf[t + 2..t + 4].copy_from_slice(&tag.tci().to_be_bytes());
    Ok(new)
}

/// The validated header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Address,
    /// Destination address.
    pub dst_addr: Address,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// The payload's ethertype (never 0x8100 when `vlan` is `None`).
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan: frame.vlan(),
            ethertype: frame.inner_ethertype(),
        })
    }

    /// Header length this repr emits.
    pub const fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header into a buffer of at least [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        match self.vlan {
            Some(tag) => {
                frame.set_ethertype(EtherType::Vlan);
                frame.set_vlan(tag);
                frame.set_inner_ethertype(self.ethertype);
            }
            None => frame.set_ethertype(self.ethertype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Built with scapy: Ether(dst="00:11:22:33:44:55", src="66:77:88:99:aa:bb")/Dot1Q(prio=5, id=1, vlan=100)/IP()
    // (first 18 bytes + start of the IP header).
    const TAGGED: [u8; 20] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x81, 0x00, 0xb0, 0x64, 0x08, 0x00,
        0x45, 0x00,
    ];

    #[test]
    fn tagged_frame() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), Address([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(f.src_addr().to_string(), "66:77:88:99:aa:bb");
        assert_eq!(f.ethertype(), EtherType::Vlan);
        assert_eq!(f.vlan(), Some(VlanTag { pcp: 5, dei: true, vid: 100 }));
        assert_eq!(f.inner_ethertype(), EtherType::Ipv4);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn truncated() {
        assert_eq!(Frame::new_checked(&TAGGED[..13]).unwrap_err(), ParseError::EthernetTruncated);
        assert_eq!(Frame::new_checked(&TAGGED[..17]).unwrap_err(), ParseError::VlanTruncated);
        let mut untagged = TAGGED;
        untagged[12] = 0x08;
        untagged[13] = 0x00;
        let f = Frame::new_checked(&untagged[..14]).unwrap();
        assert_eq!(f.vlan(), None);
        assert_eq!(f.inner_ethertype(), EtherType::Ipv4);
        assert!(f.payload().is_empty());
    }

    #[test]
    fn construct_over_junk() {
        let repr = Repr {
            src_addr: Address([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]),
            dst_addr: Address([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            vlan: Some(VlanTag { pcp: 5, dei: true, vid: 100 }),
            ethertype: EtherType::Ipv4,
        };
        let mut buf = [0xa5u8; 20];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        repr.emit(&mut f);
        f.payload_mut().copy_from_slice(&[0x45, 0x00]);
        assert_eq!(buf, TAGGED);
    }

    #[test]
    fn pop_and_push_tag() {
        let mut buf = TAGGED;
        let off = pop_vlan_tag(&mut buf).unwrap();
        assert_eq!(off, 4);
        let f = Frame::new_checked(&buf[off..]).unwrap();
        assert_eq!(f.vlan(), None);
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.dst_addr(), Address([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(f.payload(), &[0x45, 0x00]);
        let back = push_vlan_tag(&mut buf, off, VlanTag { pcp: 5, dei: true, vid: 100 }).unwrap();
        assert_eq!(back, 0);
        assert_eq!(buf, TAGGED);
        assert_eq!(push_vlan_tag(&mut buf, 3, VlanTag::default()), Err(ParseError::EthernetTruncated));
        let mut untagged = [0u8; 14];
        assert_eq!(pop_vlan_tag(&mut untagged), Ok(0));
    }

    #[test]
    fn address_classes() {
        assert!(Address::BROADCAST.is_broadcast() && Address::BROADCAST.is_multicast());
        let a = Address([0x02, 0, 0, 0, 0, 1]);
        assert!(a.is_unicast() && a.is_local());
        assert!(EtherType::QinQ.is_vlan_tpid() && EtherType::Unknown(0x9100).is_vlan_tpid());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                let _ = (f.dst_addr(), f.src_addr(), f.vlan(), f.inner_ethertype(), f.payload().len());
                let _ = Repr::parse(&f).unwrap();
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<[u8; 6]>(), dst in any::<[u8; 6]>(), tci in proptest::option::of(any::<u16>()),
            et in any::<u16>().prop_filter("not a tag", |e| *e != 0x8100),
        ) {
            let repr = Repr {
                src_addr: Address(src),
                dst_addr: Address(dst),
                vlan: tci.map(VlanTag::from_tci),
                ethertype: EtherType::from(et),
            };
            let mut buf = vec![0xffu8; repr.buffer_len()];
            repr.emit(&mut Frame::new_unchecked(&mut buf[..]));
            let f = Frame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&f).unwrap(), repr);
        }
    }
}
