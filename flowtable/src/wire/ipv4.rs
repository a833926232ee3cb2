//! IPv4 headers (RFC 791), options included.
//!
//! [`Packet::new_checked`] guarantees: the 20-byte fixed header, an IHL of at least 5 whose header fits
//! the buffer, and a total length between the header length and the buffer length (a longer buffer is
//! link-layer padding, excluded from [`Packet::payload`]). It does not check the version, the
//! checksum or the options: [`Repr::parse`] and [`Headers::parse`] do ([`classify_options`] walks
//! the options).
//!
//! Setters that void the check: [`Packet::set_header_len`], [`Packet::set_total_len`].
//!
//! [`Headers::parse`]: crate::wire::Headers::parse

use core::net::Ipv4Addr;

use super::checksum;
use super::error::{ParseError, Result};
use super::ip::IpProtocol;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of the fixed header (IHL 5).
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Largest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Option types (RFC 791 section 3.1; IANA "IP Option Numbers": copied flag, class, number).
mod option {
    /// End of option list: what follows is padding.
    pub const END: u8 = 0;
    /// No operation: one byte, between options.
    pub const NOP: u8 = 1;
    /// Loose source and record route (copied, class 0, number 3).
    pub const LSRR: u8 = 131;
    /// Strict source and record route (copied, class 0, number 9).
    pub const SSRR: u8 = 137;
    /// Record route (class 0, number 7).
    pub const RR: u8 = 7;
    /// Internet timestamp (class 2, number 4).
    pub const TS: u8 = 68;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
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

    /// Checks the header length and total length against each other and the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Ipv4Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(ParseError::Ipv4BadIhl);
        }
        if len < hl {
            return Err(ParseError::Ipv4Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(ParseError::Ipv4BadTotalLength);
        }
        if tl > len {
            return Err(ParseError::Ipv4TruncatedPayload);
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

    /// Version field (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole type-of-service byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// Explicit congestion notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// A fragment of a larger datagram: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.u16_at(field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }

    /// Length of the payload: total length minus header length.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(self.total_len()) - self.header_len()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options bytes (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[HEADER_LEN..hl]
    }

    /// The payload: from the end of the header to the total length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &self.buffer.as_ref()[hl..tl]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (a multiple of 4). Voids the length check.
    #[inline]
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    /// Sets the whole type-of-service byte.
    #[inline]
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value
    }

    /// Sets the DSCP.
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let ecn = self.ecn();
        self.set_tos((value << 2) | ecn)
    }

    /// Sets the ECN bits.
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let tos = self.tos();
        self.set_tos((tos & !0x03) | (value & 0x03))
    }

    /// Sets the total length. Voids the length check.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value)
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        self.set_u16_at(field::IDENT, value)
    }

    /// Clears flags and fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.set_u16_at(field::FLG_OFF, 0)
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let raw = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, if on { raw | flag } else { raw & !flag })
    }

    /// Sets the don't-fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value)
    }

    /// Sets the more-fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value)
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, (raw & !OFFSET_MASK) | ((value >> 3) & OFFSET_MASK))
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into()
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// Computes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(checksum::finish(sum))
    }

    /// Decrements the TTL by one (not below zero) and updates the checksum incrementally (RFC 1624).
    /// Returns the new TTL. Whether the packet may be forwarded (TTL > 1 before) is the caller's call.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let old = self.ttl();
        let new = old.saturating_sub(1);
        let hc = checksum::update8(self.checksum(), old, new, true);
        self.set_ttl(new);
        self.set_checksum(hc);
        new
    }

    /// Rewrites the source address, updating the header checksum incrementally; returns the old
    /// address (the transport checksum's pseudo-header changes too: see `tcp`/`udp` `update_checksum_addr`).
    #[inline]
    pub fn rewrite_src_addr(&mut self, value: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        let hc = checksum::update32(self.checksum(), old.to_bits(), value.to_bits());
        self.set_src_addr(value);
        self.set_checksum(hc);
        old
    }

    /// Rewrites the destination address, updating the header checksum incrementally; returns the old address.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, value: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        let hc = checksum::update32(self.checksum(), old.to_bits(), value.to_bits());
        self.set_dst_addr(value);
        self.set_checksum(hc);
        old
    }

    /// The options bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// What the options of a header ask of a router, as far as the gateway acts on them: the class a
/// flow key keeps apart (RFC 7126 for what a router does with each option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum OptionsClass {
    /// No options (IHL 5).
    #[default]
    None = 0,
    /// Well-formed options, none a source route (record route, timestamp, router alert, security,
    /// padding, unknown types, ...): forwarded unchanged.
    Other = 1,
    /// A loose or strict source route (LSRR 131, SSRR 137) among well-formed options.
    SourceRoute = 2,
    /// Options that cannot be walked ([`unwalkable_option`] says where): the header is invalid to
    /// whoever processes it. A router answers a parameter problem (RFC 1812 4.3.3.5); a bridge,
    /// which never reads IP headers, forwards the frame as it came.
    Unwalkable = 3,
}

/// Walks the options bytes of a header (what [`Packet::options`] gives) and classifies them.
///
/// End of option list (0) ends the walk (the rest is padding, RFC 791 3.1) and no-operation (1) is
/// one byte; every other option is a type, a length counting the type and length bytes, and data
/// (RFC 791 3.1, "case 2"), whatever its type, known or not. An option whose length byte is
/// missing, below 2 or runs past the header makes the header one that cannot be walked:
/// [`OptionsClass::Unwalkable`]. Bounded by the 40 bytes options take at most; never panics.
pub fn classify_options(options: &[u8]) -> OptionsClass {
    walk_options(options).unwrap_or(OptionsClass::Unwalkable)
}

/// Where in the options bytes the option that cannot be walked starts (its type byte, where
/// Linux's parameter problem points too), or `None` when they walk ([`classify_options`]).
pub fn unwalkable_option(options: &[u8]) -> Option<usize> {
    walk_options(options).err()
}

fn walk_options(options: &[u8]) -> core::result::Result<OptionsClass, usize> {
    if options.is_empty() {
        return Ok(OptionsClass::None);
    }
    let mut class = OptionsClass::Other;
    let mut walk = OptionWalk::default();
    while let Some(span) = walk.next(options) {
        if matches!(options[span?.start], option::LSRR | option::SSRR) {
            class = OptionsClass::SourceRoute;
        }
    }
    Ok(class)
}

/// A walk over the options bytes of a header (RFC 791 3.1), one option at a time: end of option
/// list ends it, no-operation bytes are stepped over, and every other option is a type, a length
/// counting the type and length bytes, and data. The slice is passed to each step, so that the
/// caller may change an option's data between steps.
#[derive(Debug, Default)]
struct OptionWalk {
    at: usize,
}

impl OptionWalk {
    /// The next type-length-data option's bytes, or, for one whose length byte is missing, below
    /// 2 or runs past the header, `Err` with where it starts (and the walk ends).
    fn next(&mut self, options: &[u8]) -> Option<core::result::Result<core::ops::Range<usize>, usize>> {
        loop {
            let at = self.at;
            match *options.get(at)? {
                option::END => return None,
                option::NOP => self.at += 1,
                _ => {
                    let len = options.get(at + 1).map(|&len| usize::from(len));
                    let Some(len) = len.filter(|&len| len >= 2 && len <= options.len() - at) else {
                        self.at = options.len();
                        return Some(Err(at));
                    };
                    self.at += len;
                    return Some(Ok(at..at + len));
                }
            }
        }
    }
}

/// Records this host in the record route and timestamp options of `options` (what
/// [`Packet::options_mut`] gives), as RFC 1122 3.2.2.6 asks of the host answering an echo request
/// that carries them, so that the reply reports the whole round trip: record route gets `addr` in
/// its next free slot (RFC 791 3.1: nothing when it is full); timestamp gets `timestamp` (flag 0),
/// `addr` and `timestamp` (flag 1), or `timestamp` after a prespecified `addr` that is next (flag
/// 3), or, when it is full, one more in its overflow count (saturating at 15). Other options, a
/// pointer below the first slot, and options that cannot be walked are left as they are. Never
/// panics.
pub fn record_in_reply(options: &mut [u8], addr: Ipv4Addr, timestamp: u32) {
    let mut walk = OptionWalk::default();
    while let Some(Ok(span)) = walk.next(options) {
        let o = &mut options[span];
        match o[0] {
            option::RR => record_route(o, addr),
            option::TS => record_timestamp(o, addr, timestamp),
            _ => {}
        }
    }
}

/// Record route `o` (type, length, pointer, slots): `addr` into the slot the 1-based pointer names.
fn record_route(o: &mut [u8], addr: Ipv4Addr) {
    let Some(&pointer) = o.get(2) else { return };
    let slot = usize::from(pointer).wrapping_sub(1);
    if pointer < 4 || slot + 4 > o.len() {
        return;
    }
    o[slot..slot + 4].copy_from_slice(&addr.octets());
    o[2] = pointer + 4;
}

/// Timestamp `o` (type, length, pointer, overflow and flag, entries).
fn record_timestamp(o: &mut [u8], addr: Ipv4Addr, timestamp: u32) {
    let (Some(&pointer), Some(&oflw_flag)) = (o.get(2), o.get(3)) else { return };
    let slot = usize::from(pointer).wrapping_sub(1);
    let entry = match oflw_flag & 0x0f {
        0 => 4,
        1 | 3 => 8,
        _ => return,
    };
    if pointer < 5 {
        return;
    }
    if slot + entry > o.len() {
        let overflow = (oflw_flag >> 4).saturating_add(1).min(15);
        o[3] = overflow << 4 | (oflw_flag & 0x0f);
        return;
    }
    let stamp = &mut o[slot..slot + entry];
    match oflw_flag & 0x0f {
        0 => stamp.copy_from_slice(&timestamp.to_be_bytes()),
        1 => {
            stamp[..4].copy_from_slice(&addr.octets());
            stamp[4..].copy_from_slice(&timestamp.to_be_bytes());
        }
        _ if stamp[..4] == addr.octets() => stamp[4..].copy_from_slice(&timestamp.to_be_bytes()),
        // Prespecified for another address: not ours to fill.
        _ => return,
    }
    o[2] = pointer + entry as u8;
}

/// A validated IPv4 header. Options are not represented: [`Repr::emit`] writes a 20-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Type-of-service byte (DSCP and ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
}

impl Repr {
    /// Parses and validates a packet: lengths, version, header checksum and that the options can
    /// be walked ([`classify_options`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(ParseError::Ipv4BadVersion);
        }
        if !packet.verify_checksum() {
            return Err(ParseError::Ipv4BadChecksum);
        }
        if classify_options(&packet.buffer.as_ref()[HEADER_LEN..packet.header_len()]) == OptionsClass::Unwalkable {
            return Err(ParseError::Ipv4BadOptions);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Header bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum into the first [`HEADER_LEN`] bytes; the payload
    /// (after it) is not touched. `payload_len` must fit the 16-bit total length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_tos(self.tos);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // scapy: bytes(IP(src="192.0.2.1", dst="198.51.100.7", ttl=64, id=0x1234, flags="DF", tos=0xb8,
    //                 proto=17)/b"hello!!!")
    const SIMPLE: [u8; 28] = [
        0x45, 0xb8, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3b, 0xa9, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33,
        0x64, 0x07, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0x21, 0x21,
    ];

    // scapy: bytes(IP(src="10.1.2.3", dst="10.4.5.6", ttl=3, id=7, flags="MF", frag=185, proto=6,
    //                 options=[IPOption_RR(routers=["1.2.3.4"])])/b"abcd")
    const WITH_OPTIONS: [u8; 32] = [
        0x47, 0x00, 0x00, 0x20, 0x00, 0x07, 0x20, 0xb9, 0x03, 0x06, 0x69, 0x00, 0x0a, 0x01, 0x02, 0x03, 0x0a, 0x04,
        0x05, 0x06, 0x07, 0x07, 0x04, 0x01, 0x02, 0x03, 0x04, 0x00, 0x61, 0x62, 0x63, 0x64,
    ];

    fn simple_repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: IpProtocol::Udp,
            payload_len: 8,
            ttl: 64,
            tos: 0xb8,
            ident: 0x1234,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn parse_simple() {
        let p = Packet::new_checked(&SIMPLE[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.payload(), b"hello!!!");
        assert_eq!(Repr::parse(&p).unwrap(), simple_repr());
    }

    #[test]
    fn parse_options_and_fragment() {
        let p = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &[0x07, 0x07, 0x04, 0x01, 0x02, 0x03, 0x04, 0x00]);
        assert!(p.verify_checksum());
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 185 * 8);
        assert_eq!(p.payload(), b"abcd");
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.frag_offset, 1480);
    }

    #[test]
    fn construct_over_junk() {
        let mut buf = [0xa5u8; 28];
        simple_repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf[20..].copy_from_slice(b"hello!!!");
        assert_eq!(buf, SIMPLE);
    }

    #[test]
    fn padding_excluded() {
        let mut buf = SIMPLE.to_vec();
        buf.extend_from_slice(&[0; 18]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), b"hello!!!");
    }

    #[test]
    fn length_errors() {
        assert_eq!(Packet::new_checked(&SIMPLE[..19]).unwrap_err(), ParseError::Ipv4Truncated);
        assert_eq!(Packet::new_checked(&SIMPLE[..27]).unwrap_err(), ParseError::Ipv4TruncatedPayload);
        assert_eq!(Packet::new_checked(&WITH_OPTIONS[..26]).unwrap_err(), ParseError::Ipv4Truncated);
        let mut b = SIMPLE;
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), ParseError::Ipv4BadIhl);
        let mut b = SIMPLE;
        b[3] = 19;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), ParseError::Ipv4BadTotalLength);
        let mut b = SIMPLE;
        b[0] = 0x65;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::Ipv4BadVersion);
        let mut b = SIMPLE;
        b[8] = 63;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::Ipv4BadChecksum);
    }

    #[test]
    fn ttl_and_nat_rewrite_keep_checksum_valid() {
        let mut buf = WITH_OPTIONS;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        assert_eq!(p.decrement_ttl(), 2);
        assert!(p.verify_checksum());
        assert_eq!(p.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 9)), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(p.rewrite_dst_addr(Ipv4Addr::new(100, 64, 0, 1)), Ipv4Addr::new(10, 4, 5, 6));
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
    }

    #[test]
    fn options_are_walked() {
        use OptionsClass::{Other, SourceRoute};
        // WITH_OPTIONS: record route with one address recorded, then end of list.
        let p = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(classify_options(p.options()), Other);
        assert_eq!(classify_options(Packet::new_checked(&SIMPLE[..]).unwrap().options()), OptionsClass::None);
        // scapy: bytes(IPOption_LSRR(routers=["192.0.2.9"])), bytes(IPOption_SSRR(routers=["192.0.2.9"]))
        let lsrr = [0x83, 0x07, 0x04, 0xc0, 0x00, 0x02, 0x09, 0x00];
        let ssrr = [0x89, 0x07, 0x04, 0xc0, 0x00, 0x02, 0x09, 0x00];
        assert_eq!(classify_options(&lsrr), SourceRoute);
        assert_eq!(classify_options(&ssrr), SourceRoute);
        // After other options, and however long (40 bytes: IHL 15).
        let mut long = [1u8; 40];
        long[32..].copy_from_slice(&lsrr);
        assert_eq!(classify_options(&long), SourceRoute);
        // Router alert (RFC 2113), security (RFC 1108), timestamp: not acted on.
        assert_eq!(classify_options(&[0x94, 0x04, 0x00, 0x00]), Other);
        assert_eq!(classify_options(&[0x82, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Other);
        assert_eq!(classify_options(&[0x44, 0x0c, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]), Other);
        // Only padding: options all the same (IHL 6).
        assert_eq!(classify_options(&[0, 0, 0, 0]), Other);
        // Malformed: the length byte missing, below 2, past the end; a source route cut short.
        for bad in [&[0x07][..], &[1, 1, 1, 0x83], &[0x07, 0x01, 0, 0], &[0x07, 0x00], &[0x44, 0x05, 0, 0], &lsrr[..6]]
        {
            assert_eq!(classify_options(bad), OptionsClass::Unwalkable, "{bad:?}");
        }
        // Where: the option without a whole length, after the NOPs before it; the first bad one.
        assert_eq!(unwalkable_option(&[1, 1, 1, 0x83]), Some(3));
        assert_eq!(unwalkable_option(&[1, 0x44, 0x06, 0, 0, 0]), Some(1));
        assert_eq!(unwalkable_option(&[1, 0x07, 0x03, 0, 0x07, 0x09, 0, 0]), Some(4));
        assert_eq!(unwalkable_option(&lsrr), None);
        // Repr::parse refuses such a header too.
        let mut b = WITH_OPTIONS;
        b[21] = 0x09;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        assert_eq!(Repr::parse(&p), Err(ParseError::Ipv4BadOptions));
    }

    /// A well-formed option: type (never 0 or 1) and data, its length byte filled in.
    fn arb_option() -> impl Strategy<Value = (u8, Vec<u8>)> {
        (
            prop_oneof![Just(0x07u8), Just(0x44), Just(0x94), Just(0x82), Just(0x83), Just(0x89), 2u8..=255],
            proptest::collection::vec(any::<u8>(), 0..10),
        )
    }

    /// RFC 1122 3.2.2.6 / RFC 791 3.1: the answering host's entry, where each option has room.
    #[test]
    fn record_route_and_timestamp_are_filled_in_reply() {
        let me = Ipv4Addr::new(192, 0, 2, 1);
        let ts = 0x8000_1234u32;
        let record = |options: &[u8]| {
            let mut o = options.to_vec();
            record_in_reply(&mut o, me, ts);
            o
        };
        // scapy: bytes(IPOption_RR(routers=["198.51.100.9"], pointer=8, length=11)): one slot left.
        let rr = [7, 11, 8, 198, 51, 100, 9, 0, 0, 0, 0];
        assert_eq!(record(&rr), [7, 11, 12, 198, 51, 100, 9, 192, 0, 2, 1]);
        assert_eq!(record(&record(&rr)), record(&rr), "full: nothing more");
        // After NOPs; an unknown option before is stepped over; END stops the walk.
        assert_eq!(record(&[1, 1, 0x9f, 2, 7, 7, 4, 0, 0, 0, 0]), [1, 1, 0x9f, 2, 7, 7, 8, 192, 0, 2, 1]);
        assert_eq!(record(&[0, 7, 7, 4, 0, 0, 0, 0]), [0, 7, 7, 4, 0, 0, 0, 0]);
        // Timestamp only (flag 0), with room for one, then full: the overflow count goes up.
        let t0 = [68, 8, 5, 0, 0, 0, 0, 0];
        assert_eq!(record(&t0), [68, 8, 9, 0, 0x80, 0, 0x12, 0x34]);
        assert_eq!(record(&record(&t0)), [68, 8, 9, 0x10, 0x80, 0, 0x12, 0x34]);
        assert_eq!(record(&[68, 4, 5, 0xf0]), [68, 4, 5, 0xf0], "the overflow count saturates");
        // Address and timestamp (flag 1).
        assert_eq!(record(&[68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0]), [68, 12, 13, 1, 192, 0, 2, 1, 0x80, 0, 0x12, 0x34]);
        // Prespecified (flag 3): filled only after this host's own address.
        let mine = [68, 12, 5, 3, 192, 0, 2, 1, 0, 0, 0, 0];
        assert_eq!(record(&mine), [68, 12, 13, 3, 192, 0, 2, 1, 0x80, 0, 0x12, 0x34]);
        let other = [68, 12, 5, 3, 10, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(record(&other), other);
        // A pointer below the first slot, an unknown flag, options that cannot be walked: untouched.
        for o in [&[7, 7, 3, 0, 0, 0, 0][..], &[68, 8, 4, 0, 0, 0, 0, 0], &[68, 8, 5, 2, 0, 0, 0, 0], &[7, 9, 4, 0]] {
            assert_eq!(record(o), o, "{o:?}");
        }
    }

    proptest! {
        /// Any option bytes: nothing panics, the length stays, and only record route and timestamp
        /// options (of a list that walks) change.
        #[test]
        fn recording_in_any_options_never_panics(options in proptest::collection::vec(any::<u8>(), 0..=40)) {
            let mut o = options.clone();
            record_in_reply(&mut o, Ipv4Addr::new(192, 0, 2, 1), 0x8000_0001);
            prop_assert_eq!(o.len(), options.len());
            if o != options {
                prop_assert!(options.iter().any(|&k| k == option::RR || k == option::TS));
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p);
                let _ = (p.options().len(), p.payload().len(), p.verify_checksum(), p.frag_offset());
                let _ = classify_options(p.options());
            }
        }

        /// Any option bytes classify (or fail) without panicking, and an empty list is `None`.
        #[test]
        fn any_options_never_panic(options in proptest::collection::vec(any::<u8>(), 0..=40)) {
            let class = classify_options(&options);
            prop_assert_eq!(class == OptionsClass::None, options.is_empty());
            prop_assert_eq!(class == OptionsClass::Unwalkable, unwalkable_option(&options).is_some());
            if let Some(at) = unwalkable_option(&options) {
                prop_assert!(at < options.len());
            }
        }

        /// A list of well-formed options (NOPs between them, end of list and junk after) is a
        /// source route exactly when one of them is LSRR or SSRR; cut inside an option, it is
        /// malformed.
        #[test]
        fn built_options_classify(
            list in proptest::collection::vec((any::<bool>(), arb_option()), 1..5),
            junk in proptest::collection::vec(any::<u8>(), 0..4),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut bytes = Vec::new();
            let mut spans = Vec::new();
            for (nop, (kind, data)) in &list {
                if *nop {
                    bytes.push(option::NOP);
                }
                let start = bytes.len();
                bytes.push(*kind);
                bytes.push(2 + data.len() as u8);
                bytes.extend_from_slice(data);
                spans.push((start, bytes.len()));
            }
            let whole = bytes.len();
            let source_route = list.iter().any(|(_, (kind, _))| matches!(*kind, option::LSRR | option::SSRR));
            let expect = if source_route { OptionsClass::SourceRoute } else { OptionsClass::Other };
            prop_assert_eq!(classify_options(&bytes), expect);
            let mut ended = bytes.clone();
            ended.push(option::END);
            ended.extend_from_slice(&junk);
            prop_assert_eq!(classify_options(&ended), expect);
            // Cut after an option's type byte and before its end.
            let at = cut.index(whole);
            if let Some(&(start, _)) = spans.iter().find(|&&(start, end)| at > start && at < end) {
                prop_assert_eq!(classify_options(&bytes[..at]), OptionsClass::Unwalkable);
                prop_assert_eq!(unwalkable_option(&bytes[..at]), Some(start), "the option cut short");
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(), payload_len in 0usize..100,
            ttl in any::<u8>(), tos in any::<u8>(), ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(),
            off in 0u16..0x2000,
        ) {
            let repr = Repr {
                src_addr: Ipv4Addr::from(src), dst_addr: Ipv4Addr::from(dst), protocol: IpProtocol::from(proto),
                payload_len, ttl, tos, ident, dont_frag: df, more_frags: mf, frag_offset: off * 8,
            };
            let mut buf = vec![0x5au8; HEADER_LEN + payload_len];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }

        #[test]
        fn incremental_rewrites_equal_full(src in any::<u32>(), dst in any::<u32>(), ttl in any::<u8>()) {
            let mut buf = SIMPLE;
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.rewrite_src_addr(Ipv4Addr::from(src));
            p.rewrite_dst_addr(Ipv4Addr::from(dst));
            p.set_ttl(ttl);
            p.fill_checksum();
            p.decrement_ttl();
            let inc = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(inc, p.checksum());
        }
    }
}
