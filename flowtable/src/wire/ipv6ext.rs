//! IPv6 extension headers (RFC 8200 section 4): the options headers (hop-by-hop, destination options),
//! the routing header, the fragment header and the authentication header (RFC 4302, for its length),
//! and [`walk`], which follows the chain to the upper-layer header under a bound on its length.
//!
//! [`ExtHeader::new_checked`] guarantees the whole header as its length field gives it (at least 8
//! bytes); [`FragmentHeader::new_checked`] its 8 bytes. Setter that voids the check:
//! [`ExtHeader::set_header_len`].

use super::error::{ParseError, Result};
use super::icmpv6::ParamProblem;
use super::ip::IpProtocol;

/// How many extension headers [`Headers::parse`](crate::wire::Headers::parse) walks before giving up.
/// RFC 8200 section 4.1 expects each at most once (destination options twice); eight leaves room.
pub const DEFAULT_MAX_EXT_HEADERS: usize = 8;

mod field {
    use core::ops::Range;
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
    pub const ROUTING_TYPE: usize = 2;
    pub const SEGMENTS_LEFT: usize = 3;
    pub const DATA_START: usize = 2;
    pub const FR_OFF_M: Range<usize> = 2..4;
    pub const FR_IDENT: Range<usize> = 4..8;
}

/// Length of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// Smallest hop-by-hop, routing or destination options header.
pub const MIN_EXT_HEADER_LEN: usize = 8;

/// A read/write view of a hop-by-hop, destination options or routing header: next header, length in
/// 8-octet units not counting the first, then data (TLV options, or routing type / segments left / ...).
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> ExtHeader<T> {
        ExtHeader { buffer }
    }

    /// Wraps a buffer after [`ExtHeader::check_len`].
    pub fn new_checked(buffer: T) -> Result<ExtHeader<T>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures the header, as long as its length field says, is in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_EXT_HEADER_LEN || len < self.header_len() {
            Err(ParseError::Ipv6ExtTruncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Header length in bytes: (length field + 1) * 8.
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::LENGTH]) + 1) * 8
    }

    /// Routing type (meaningful in a routing header).
    #[inline]
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[field::ROUTING_TYPE]
    }

    /// Segments left (meaningful in a routing header).
    #[inline]
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[field::SEGMENTS_LEFT]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ExtHeader<&'a T> {
    /// The bytes after next header and length (options, or routing data).
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[field::DATA_START..hl]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into()
    }

    /// Sets the header length in bytes (a multiple of 8, at least 8). Voids the length check.
    #[inline]
    pub fn set_header_len(&mut self, value: usize) {
        self.buffer.as_mut()[field::LENGTH] = (value / 8).saturating_sub(1) as u8
    }

    /// Fills the data with padding options (Pad1 / PadN, RFC 8200 section 4.2), a valid empty options header.
    pub fn fill_padding(&mut self) {
        let hl = self.header_len();
        let data = &mut self.buffer.as_mut()[field::DATA_START..hl];
        match data.len() {
            0 => {}
            1 => data[0] = 0,
            n => {
                data[0] = 1;
                data[1] = (n - 2) as u8;
                data[2..].fill(0);
            }
        }
    }
}

/// A read/write view of a fragment header.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> FragmentHeader<T> {
        FragmentHeader { buffer }
    }

    /// Wraps a buffer after [`FragmentHeader::check_len`].
    pub fn new_checked(buffer: T) -> Result<FragmentHeader<T>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures the 8 bytes are present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            Err(ParseError::Ipv6ExtTruncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next header (of the fragmentable part).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    #[inline]
    fn off_m(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::FR_OFF_M];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Fragment offset in bytes (a multiple of 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.off_m() & 0xfff8
    }

    /// The M flag: more fragments follow.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.off_m() & 1 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::FR_IDENT];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into()
    }

    /// Clears the reserved byte and the reserved bits.
    #[inline]
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::LENGTH] = 0;
        let v = self.off_m() & 0xfff9;
        self.buffer.as_mut()[field::FR_OFF_M].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let v = (self.off_m() & 0x0007) | (value & 0xfff8);
        self.buffer.as_mut()[field::FR_OFF_M].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the M flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let v = (self.off_m() & !1) | u16::from(value);
        self.buffer.as_mut()[field::FR_OFF_M].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u32) {
        self.buffer.as_mut()[field::FR_IDENT].copy_from_slice(&value.to_be_bytes())
    }
}

/// A validated fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    /// Next header of the fragmentable part.
    pub next_header: IpProtocol,
    /// Offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Parses a fragment header.
    pub fn parse<T: AsRef<[u8]>>(header: &FragmentHeader<T>) -> Result<FragmentRepr> {
        header.check_len()?;
        Ok(FragmentRepr {
            next_header: header.next_header(),
            frag_offset: header.frag_offset(),
            more_frags: header.more_frags(),
            ident: header.ident(),
        })
    }

    /// Bytes [`FragmentRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        FRAGMENT_HEADER_LEN
    }

    /// Writes the header, reserved fields zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut FragmentHeader<T>) {
        header.set_next_header(self.next_header);
        header.clear_reserved();
        header.set_frag_offset(self.frag_offset);
        header.set_more_frags(self.more_frags);
        header.set_ident(self.ident);
    }
}

/// Where the extension-header chain of an IPv6 packet leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtChain {
    /// The upper-layer protocol (the last next-header value), e.g. TCP, or `Ipv6NoNxt`.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 payload. For a non-first fragment
    /// this is where the fragment data starts, and there is no upper-layer header there.
    pub offset: usize,
    /// Number of extension headers walked.
    pub count: u8,
    /// The fragment header's fields, if there is one.
    pub fragment: Option<FragmentRepr>,
}

impl ExtChain {
    /// True when the packet is a fragment whose offset is not zero: no upper-layer header.
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.fragment, Some(f) if f.frag_offset != 0)
    }
}

/// Walks the extension headers of an IPv6 `payload` whose fixed header names `first`, through at most
/// `max` extension headers, to the upper-layer protocol. Stops after a fragment header with a non-zero
/// offset (what follows is fragment data). Errors: [`ParseError::Ipv6ExtTruncated`],
/// [`ParseError::Ipv6TooManyExtHeaders`], [`ParseError::Ipv6HopByHopNotFirst`].
pub fn walk(payload: &[u8], first: IpProtocol, max: usize) -> Result<ExtChain> {
    let mut nh = first;
    let mut offset = 0usize;
    let mut count = 0usize;
    let mut fragment = None;
    loop {
        let rest = payload.get(offset..).unwrap_or(&[]);
        let len = match nh {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                if nh == IpProtocol::HopByHop && count != 0 {
                    return Err(ParseError::Ipv6HopByHopNotFirst);
                }
                if count == max {
                    return Err(ParseError::Ipv6TooManyExtHeaders);
                }
                let h = ExtHeader::new_checked(rest)?;
                nh = h.next_header();
                h.header_len()
            }
            IpProtocol::Ah => {
                if count == max {
                    return Err(ParseError::Ipv6TooManyExtHeaders);
                }
                // RFC 4302: payload length in 4-octet units, minus 2.
                if rest.len() < 8 {
                    return Err(ParseError::Ipv6ExtTruncated);
                }
                let len = (usize::from(rest[1]) + 2) * 4;
                if rest.len() < len {
                    return Err(ParseError::Ipv6ExtTruncated);
                }
                nh = IpProtocol::from(rest[0]);
                len
            }
            IpProtocol::Ipv6Frag => {
                if count == max {
                    return Err(ParseError::Ipv6TooManyExtHeaders);
                }
                let h = FragmentHeader::new_checked(rest)?;
                let f = FragmentRepr::parse(&h)?;
                fragment = Some(f);
                nh = f.next_header;
                if f.frag_offset != 0 {
                    return Ok(ExtChain {
                        protocol: nh,
                        offset: offset + FRAGMENT_HEADER_LEN,
                        count: (count + 1) as u8,
                        fragment,
                    });
                }
                FRAGMENT_HEADER_LEN
            }
            _ => return Ok(ExtChain { protocol: nh, offset, count: count as u8, fragment }),
        };
        offset += len;
        count += 1;
    }
}

/// What the destination of an IPv6 packet makes of its extension headers (RFC 8200 section 4):
/// [`at_destination`]'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtDestination {
    /// Every header before the upper layer (or a fragment header) was processed and skipped; the
    /// next header field naming what follows them is at this offset of the packet (6 for the
    /// fixed header's), where an "unrecognized next header" answer points.
    Accept {
        /// Offset of the next header field, from the start of the IPv6 header.
        next_header_at: u32,
    },
    /// Discard without an answer: an unknown option whose type says so, an option that runs past
    /// its header (as Linux does), or an option asking for an answer about a multicast packet.
    Discard,
    /// Discard and answer an ICMPv6 parameter problem with this code, pointing at this octet
    /// (counted from the start of the IPv6 header, RFC 4443 3.4).
    ParamProblem(ParamProblem, u32),
}

/// Processes the extension headers of `packet` (the whole IPv6 packet, its fixed header first) as
/// its destination must (RFC 8200 section 4), for a node that implements no option beyond padding,
/// no routing type and no authentication header:
///
/// - hop-by-hop and destination options: Pad1 and PadN skipped, as is an unknown option whose
///   type's two high bits are 00; 01 discards; 10 answers parameter problem code 2 pointing at the
///   type; 11 too, unless the destination is multicast (`to_multicast`), then discards (4.2);
/// - a routing header with segments left 0 is skipped; with segments left, whatever its type (0 is
///   deprecated, RFC 5095), parameter problem code 0 pointing at the routing type (4.4);
/// - an authentication header (RFC 4302), not implemented: parameter problem code 1 pointing at
///   the next header field that names it (4, "unrecognized Next Header type");
/// - a fragment header ends the walk: what follows is processed after reassembly, which the
///   gateway never does.
///
/// Bounded by [`DEFAULT_MAX_EXT_HEADERS`] and by the packet; a header cut short discards. Never panics.
pub fn at_destination(packet: &[u8], to_multicast: bool) -> AtDestination {
    const IPV6_HEADER_LEN: usize = 40;
    let Some(&first) = packet.get(6) else { return AtDestination::Discard };
    let mut nh = IpProtocol::from(first);
    // Where the next header field naming `nh` is: the fixed header's, then each header's first byte.
    let mut nh_field = 6;
    let mut at = IPV6_HEADER_LEN;
    for _ in 0..DEFAULT_MAX_EXT_HEADERS {
        let Some(rest) = packet.get(at..) else { return AtDestination::Discard };
        match nh {
            IpProtocol::HopByHop | IpProtocol::Ipv6Opts => {
                let Ok(h) = ExtHeader::new_checked(rest) else { return AtDestination::Discard };
                if let Some(verdict) = options_at_destination(h.data(), at + field::DATA_START, to_multicast) {
                    return verdict;
                }
                nh = h.next_header();
                nh_field = at;
                at += h.header_len();
            }
            IpProtocol::Ipv6Route => {
                let Ok(h) = ExtHeader::new_checked(rest) else { return AtDestination::Discard };
                if h.segments_left() != 0 {
                    return AtDestination::ParamProblem(
                        ParamProblem::ErroneousHeaderField,
                        (at + field::ROUTING_TYPE) as u32,
                    );
                }
                nh = h.next_header();
                nh_field = at;
                at += h.header_len();
            }
            IpProtocol::Ah => {
                return AtDestination::ParamProblem(ParamProblem::UnrecognizedNextHeader, nh_field as u32)
            }
            _ => return AtDestination::Accept { next_header_at: nh_field as u32 },
        }
    }
    AtDestination::Discard
}

/// The options of one hop-by-hop or destination options header (`data`, which starts at `offset`
/// in the packet): `None` when every one is skipped, else what to do with the packet.
fn options_at_destination(data: &[u8], offset: usize, to_multicast: bool) -> Option<AtDestination> {
    const PAD1: u8 = 0;
    const PADN: u8 = 1;
    let mut i = 0;
    while let Some(&kind) = data.get(i) {
        if kind == PAD1 {
            i += 1;
            continue;
        }
        let Some(&len) = data.get(i + 1) else { return Some(AtDestination::Discard) };
        let next = i + 2 + usize::from(len);
        if next > data.len() {
            return Some(AtDestination::Discard);
        }
        if kind != PADN {
            let problem = AtDestination::ParamProblem(ParamProblem::UnrecognizedOption, (offset + i) as u32);
            match kind >> 6 {
                0 => {}
                1 => return Some(AtDestination::Discard),
                2 => return Some(problem),
                _ if to_multicast => return Some(AtDestination::Discard),
                _ => return Some(problem),
            }
        }
        i = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // scapy: bytes(IPv6ExtHdrHopByHop(nh=60)/IPv6ExtHdrDestOpt(nh=43)/IPv6ExtHdrRouting(nh=44, addresses=["2001:db8::9"], segleft=1)
    //              /IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=0xdeadbeef))
    const CHAIN: [u8; 48] = [
        0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x02,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x09, 0x06, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef,
    ];

    // scapy: bytes(IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrRouting(type=0, segleft=1,
    //     addresses=["2001:db8::3"])/ICMPv6EchoRequest(id=1, seq=1))
    const ROUTED_ECHO: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x2b, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x3a, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x80, 0x00, 0x24, 0x45, 0x00, 0x01, 0x00, 0x01,
    ];

    // scapy: bytes(IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrHopByHop(options=[RouterAlert()])
    //     /IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::3"])
    //     /IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])/ICMPv6EchoRequest(id=1, seq=1, data=b"ping"))
    const SPENT_ECHO: [u8; 92] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x34, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x2b, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00, 0x3c, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x3a, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x45, 0x71, 0x00, 0x01, 0x00, 0x01, 0x70, 0x69,
        0x6e, 0x67,
    ];

    /// RFC 8200 4.4: segments left names this node's work, which it cannot do: parameter problem
    /// code 0 at the routing type (byte 2 of the header at 40), whatever the type; spent, skipped.
    #[test]
    fn routing_header_with_segments_left_is_a_parameter_problem() {
        use AtDestination::*;
        for routing_type in [0, 2, 3, 4, 253] {
            let mut p = ROUTED_ECHO;
            p[42] = routing_type;
            assert_eq!(at_destination(&p, false), ParamProblem(super::ParamProblem::ErroneousHeaderField, 42));
            p[43] = 0;
            assert_eq!(at_destination(&p, false), Accept { next_header_at: 40 }, "segments left 0: skipped");
        }
        assert_eq!(
            at_destination(&SPENT_ECHO, false),
            Accept { next_header_at: 72 },
            "router alert, spent routing header, padding: ICMPv6 named by the destination options"
        );
        let mut plain = ROUTED_ECHO;
        plain[6] = 58;
        assert_eq!(at_destination(&plain, false), Accept { next_header_at: 6 }, "no extension header");
        // After a fragment header, nothing is processed before reassembly (which never comes).
        let mut frag = ROUTED_ECHO[..40].to_vec();
        frag[6] = 44;
        frag.extend_from_slice(&[0x2b, 0, 0, 1, 0, 0, 0, 7]);
        frag.extend_from_slice(&ROUTED_ECHO[40..]);
        assert_eq!(at_destination(&frag, false), Accept { next_header_at: 6 });
        // Cut short, or no header at all: discarded.
        assert_eq!(at_destination(&ROUTED_ECHO[..45], false), Discard);
        assert_eq!(at_destination(&ROUTED_ECHO[..5], false), Discard);
    }

    /// RFC 8200 4.2: an unknown option's type says what to do; the destination options header is
    /// at 72, its option's type at 74. An authentication header is an unrecognized next header,
    /// pointed at where it is named.
    #[test]
    fn unknown_options_do_as_their_type_says() {
        use super::ParamProblem::{UnrecognizedNextHeader, UnrecognizedOption};
        use AtDestination::*;
        let with = |kind: u8| {
            let mut p = SPENT_ECHO;
            p[74] = kind;
            p
        };
        for (kind, unicast, multicast) in [
            (0x3e, Accept { next_header_at: 72 }, Accept { next_header_at: 72 }),
            (0x7e, Discard, Discard),
            (0x9e, ParamProblem(UnrecognizedOption, 74), ParamProblem(UnrecognizedOption, 74)),
            (0xde, ParamProblem(UnrecognizedOption, 74), Discard),
        ] {
            assert_eq!(at_destination(&with(kind), false), unicast, "{kind:#x}");
            assert_eq!(at_destination(&with(kind), true), multicast, "{kind:#x} to multicast");
        }
        // An option running past its header: discarded, as Linux does.
        let mut p = SPENT_ECHO;
        p[75] = 9;
        assert_eq!(at_destination(&p, false), Discard);
        // The hop-by-hop header's router alert is known to skip; an unknown 10 there is pointed at.
        let mut p = SPENT_ECHO;
        p[42] = 0x85;
        assert_eq!(at_destination(&p, false), ParamProblem(UnrecognizedOption, 42));
        let mut p = SPENT_ECHO;
        p[6] = 51;
        assert_eq!(at_destination(&p, false), ParamProblem(UnrecognizedNextHeader, 6));
        let mut p = SPENT_ECHO;
        p[40] = 51;
        assert_eq!(at_destination(&p, false), ParamProblem(UnrecognizedNextHeader, 40));
    }

    proptest! {
        /// Any bytes: a verdict, never a panic, and a pointer inside the packet.
        #[test]
        fn at_destination_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), multicast in any::<bool>()) {
            if let AtDestination::ParamProblem(_, at) = at_destination(&bytes, multicast) {
                prop_assert!((at as usize) < bytes.len());
            }
        }
    }

    #[test]
    fn walk_full_chain() {
        let c = walk(&CHAIN, IpProtocol::HopByHop, DEFAULT_MAX_EXT_HEADERS).unwrap();
        assert_eq!(c.protocol, IpProtocol::Tcp);
        assert_eq!(c.offset, 48);
        assert_eq!(c.count, 4);
        assert_eq!(
            c.fragment,
            Some(FragmentRepr { next_header: IpProtocol::Tcp, frag_offset: 0, more_frags: true, ident: 0xdeadbeef })
        );
        assert!(!c.is_later_fragment());
        let r = ExtHeader::new_checked(&CHAIN[16..]).unwrap();
        assert_eq!((r.routing_type(), r.segments_left(), r.header_len()), (0, 1, 24));
        assert_eq!(ExtHeader::new_checked(&CHAIN[..]).unwrap().data(), &[1, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn walk_errors() {
        assert_eq!(walk(&CHAIN, IpProtocol::HopByHop, 3).unwrap_err(), ParseError::Ipv6TooManyExtHeaders);
        assert_eq!(walk(&CHAIN[..47], IpProtocol::HopByHop, 8).unwrap_err(), ParseError::Ipv6ExtTruncated);
        assert_eq!(walk(&CHAIN[..30], IpProtocol::HopByHop, 8).unwrap_err(), ParseError::Ipv6ExtTruncated);
        // A hop-by-hop header after the destination options header.
        let mut b = CHAIN;
        b[8] = 0;
        assert_eq!(walk(&b, IpProtocol::HopByHop, 8).unwrap_err(), ParseError::Ipv6HopByHopNotFirst);
        assert_eq!(walk(&[], IpProtocol::Ipv6Opts, 8).unwrap_err(), ParseError::Ipv6ExtTruncated);
        let c = walk(&[], IpProtocol::Udp, 0).unwrap();
        assert_eq!((c.protocol, c.offset, c.count, c.fragment), (IpProtocol::Udp, 0, 0, None));
    }

    #[test]
    fn later_fragment_stops_walk() {
        // scapy: bytes(IPv6ExtHdrFragment(nh=17, offset=185, m=0, id=7)) + 8 bytes of fragment data
        let mut b = [0x11, 0x00, 0x05, 0xc8, 0x00, 0x00, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0, 0];
        let c = walk(&b, IpProtocol::Ipv6Frag, 8).unwrap();
        assert!(c.is_later_fragment());
        assert_eq!((c.protocol, c.offset, c.count), (IpProtocol::Udp, 8, 1));
        assert_eq!(c.fragment.unwrap().frag_offset, 185 * 8);
        assert!(!c.fragment.unwrap().more_frags);
        // Fragment data that looks like headers is never walked.
        b[0] = 0;
        assert_eq!(walk(&b, IpProtocol::Ipv6Frag, 1).unwrap().protocol, IpProtocol::HopByHop);
    }

    #[test]
    fn authentication_header() {
        // AH with 12 bytes of ICV: payload len field = (24 / 4) - 2 = 4.
        let mut ah = [0u8; 24];
        ah[0] = 17;
        ah[1] = 4;
        let c = walk(&ah, IpProtocol::Ah, 8).unwrap();
        assert_eq!((c.protocol, c.offset), (IpProtocol::Udp, 24));
        assert_eq!(walk(&ah[..20], IpProtocol::Ah, 8).unwrap_err(), ParseError::Ipv6ExtTruncated);
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 24];
        let mut h = ExtHeader::new_unchecked(&mut buf[..16]);
        h.set_next_header(IpProtocol::Ipv6Frag);
        h.set_header_len(16);
        h.fill_padding();
        let repr = FragmentRepr { next_header: IpProtocol::Udp, frag_offset: 0, more_frags: true, ident: 42 };
        repr.emit(&mut FragmentHeader::new_unchecked(&mut buf[16..]));
        assert_eq!(buf, [44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 1, 0, 0, 0, 42]);
        let c = walk(&buf, IpProtocol::Ipv6Opts, 8).unwrap();
        assert_eq!((c.protocol, c.offset, c.fragment), (IpProtocol::Udp, 24, Some(repr)));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), first in any::<u8>(),
                                 max in 0usize..12) {
            if let Ok(c) = walk(&bytes, IpProtocol::from(first), max) {
                prop_assert!(c.offset <= bytes.len());
                prop_assert!(usize::from(c.count) <= max);
            }
        }

        #[test]
        fn fragment_round_trip(nh in any::<u8>(), off in 0u16..0x2000, m in any::<bool>(), ident in any::<u32>()) {
            let repr = FragmentRepr { next_header: IpProtocol::from(nh), frag_offset: off * 8, more_frags: m, ident };
            let mut buf = [0xffu8; 8];
            repr.emit(&mut FragmentHeader::new_unchecked(&mut buf[..]));
            prop_assert_eq!(FragmentRepr::parse(&FragmentHeader::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }

        /// Any chain of options headers, within the bound, walks to its upper layer at its total length.
        #[test]
        fn built_chains_walk(lens in proptest::collection::vec(0u8..4, 0..8), upper in any::<u8>()) {
            let upper = match IpProtocol::from(upper) {
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts | IpProtocol::Ipv6Frag
                | IpProtocol::Ah => IpProtocol::Tcp,
                p => p,
            };
            let mut buf = Vec::new();
            for (i, &l) in lens.iter().enumerate() {
                let start = buf.len();
                buf.resize(start + (usize::from(l) + 1) * 8, 0xee);
                let next = if i + 1 == lens.len() { upper } else { IpProtocol::Ipv6Opts };
                let mut h = ExtHeader::new_unchecked(&mut buf[start..]);
                h.set_next_header(next);
                h.set_header_len((usize::from(l) + 1) * 8);
                h.fill_padding();
            }
            let first = if lens.is_empty() { upper } else { IpProtocol::Ipv6Opts };
            let c = walk(&buf, first, DEFAULT_MAX_EXT_HEADERS).unwrap();
            prop_assert_eq!((c.protocol, c.offset, usize::from(c.count)), (upper, buf.len(), lens.len()));
        }
    }
}
