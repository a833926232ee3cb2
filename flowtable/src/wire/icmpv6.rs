//! ICMP for IPv6 (RFC 4443) and the neighbour discovery messages the gateway answers (RFC 4861):
//! echo, packet too big, time exceeded, destination unreachable, parameter problem, neighbor solicitation and
//! advertisement with the source/target link-layer address options.
//!
//! [`Packet::new_checked`] guarantees the 8-byte header, and the 24 bytes of a neighbor solicitation
//! or advertisement when the type says so. Accessors of other message kinds' fields that may lie
//! past the header ([`Packet::target_addr`]) return `Option`, so no accessor panics even after
//! [`Packet::set_msg_type`], the one setter that changes what the check covered.

use core::net::Ipv6Addr;

use super::checksum;
use super::error::{ParseError, Result};
use super::ethernet::Address as EthernetAddress;
use super::ip::{IpProtocol, PseudoHeader};

enum_with_unknown! {
    /// ICMPv6 message types.
    pub enum Message(u8) {
        /// Destination unreachable.
        DstUnreachable = 1,
        /// Packet too big.
        PktTooBig = 2,
        /// Time exceeded.
        TimeExceeded = 3,
        /// Parameter problem.
        ParamProblem = 4,
        /// Echo request.
        EchoRequest = 128,
        /// Echo reply.
        EchoReply = 129,
        /// Multicast listener query.
        MldQuery = 130,
        /// Multicast listener report.
        MldReport = 131,
        /// Multicast listener done.
        MldDone = 132,
        /// Router solicitation.
        RouterSolicit = 133,
        /// Router advertisement.
        RouterAdvert = 134,
        /// Neighbor solicitation.
        NeighborSolicit = 135,
        /// Neighbor advertisement.
        NeighborAdvert = 136,
        /// Redirect.
        Redirect = 137,
        /// Multicast listener report, version 2.
        MldV2Report = 143,
    }
}

impl Message {
    /// True for error messages (types 0..=127).
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }

    fn is_ndp_ns_na(self) -> bool {
        matches!(self, Message::NeighborSolicit | Message::NeighborAdvert)
    }
}

enum_with_unknown! {
    /// Codes of destination unreachable.
    pub enum DstUnreachable(u8) {
        /// No route to destination.
        NoRoute = 0,
        /// Communication administratively prohibited.
        AdminProhibit = 1,
        /// Beyond scope of source address.
        BeyondScope = 2,
        /// Address unreachable.
        AddrUnreachable = 3,
        /// Port unreachable.
        PortUnreachable = 4,
        /// Source address failed ingress/egress policy.
        FailedPolicy = 5,
        /// Reject route to destination.
        RejectRoute = 6,
    }
}

enum_with_unknown! {
    /// Codes of time exceeded.
    pub enum TimeExceeded(u8) {
        /// Hop limit exceeded in transit.
        HopLimitExceeded = 0,
        /// Fragment reassembly time exceeded.
        FragReassemblyExceeded = 1,
    }
}

enum_with_unknown! {
    /// Codes of parameter problem (RFC 4443 section 3.4).
    pub enum ParamProblem(u8) {
        /// Erroneous header field encountered.
        ErroneousHeaderField = 0,
        /// Unrecognized next header type encountered.
        UnrecognizedNextHeader = 1,
        /// Unrecognized IPv6 option encountered.
        UnrecognizedOption = 2,
    }
}

enum_with_unknown! {
    /// NDP option types (RFC 4861 section 4.6).
    pub enum NdpOptionType(u8) {
        /// Source link-layer address.
        SourceLinkLayerAddr = 1,
        /// Target link-layer address.
        TargetLinkLayerAddr = 2,
        /// Prefix information.
        PrefixInformation = 3,
        /// Redirected header.
        RedirectedHeader = 4,
        /// MTU.
        Mtu = 5,
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const UNUSED: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 4..8;
    pub const NDP_FLAGS: usize = 4;
    pub const HEADER_END: usize = 8;
    pub const TARGET: Range<usize> = 8..24;
    pub const NDP_OPTIONS: RangeFrom<usize> = 24..;
}

/// Length of the common header.
pub const HEADER_LEN: usize = field::HEADER_END;
/// Length of a neighbor solicitation/advertisement without options.
pub const NDP_NS_NA_LEN: usize = field::TARGET.end;
/// Length of an Ethernet link-layer address option.
pub const NDP_LLADDR_OPTION_LEN: usize = 8;

/// Neighbor advertisement flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_entry: bool,
}

impl NeighborFlags {
    const fn from_byte(b: u8) -> NeighborFlags {
        NeighborFlags { router: b & 0x80 != 0, solicited: b & 0x40 != 0, override_entry: b & 0x20 != 0 }
    }

    const fn to_byte(self) -> u8 {
        ((self.router as u8) << 7) | ((self.solicited as u8) << 6) | ((self.override_entry as u8) << 5)
    }
}

/// One NDP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpOption<'a> {
    /// Source link-layer address (Ethernet).
    SourceLinkLayerAddr(EthernetAddress),
    /// Target link-layer address (Ethernet).
    TargetLinkLayerAddr(EthernetAddress),
    /// Any other option: its type and the bytes after type and length.
    Other {
        /// Option type.
        kind: NdpOptionType,
        /// Option body.
        data: &'a [u8],
    },
}

/// Iterator over NDP options; yields one `Err(NdpBadOption)` and stops on a malformed option.
#[derive(Debug, Clone)]
pub struct NdpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdpOptions<'a> {
    /// Options from raw bytes.
    pub fn new(bytes: &'a [u8]) -> NdpOptions<'a> {
        NdpOptions { rest: bytes }
    }
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = Result<NdpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        let len = usize::from(*r.get(1).unwrap_or(&0)) * 8;
        if len == 0 || len > r.len() {
            self.rest = &[];
            return Some(Err(ParseError::NdpBadOption));
        }
        self.rest = &r[len..];
        let kind = NdpOptionType::from(r[0]);
        let data = &r[2..len];
        Some(Ok(match kind {
            NdpOptionType::SourceLinkLayerAddr => NdpOption::SourceLinkLayerAddr(EthernetAddress::from_bytes(data)),
            NdpOptionType::TargetLinkLayerAddr => NdpOption::TargetLinkLayerAddr(EthernetAddress::from_bytes(data)),
            _ => NdpOption::Other { kind, data },
        }))
    }
}

/// A read/write view of an ICMPv6 message.
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

    /// Ensures the header, and the target address of a neighbor solicitation/advertisement.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || (self.msg_type().is_ndp_ns_na() && len < NDP_NS_NA_LEN) {
            Err(ParseError::Icmpv6Truncated)
        } else {
            Ok(())
        }
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

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// MTU of a packet too big message; the pointer of a parameter problem.
    #[inline]
    pub fn mtu(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::MTU];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Neighbor advertisement flags.
    #[inline]
    pub fn neighbor_flags(&self) -> NeighborFlags {
        NeighborFlags::from_byte(self.buffer.as_ref()[field::NDP_FLAGS])
    }

    /// Target address of a neighbor solicitation/advertisement (`None` if the buffer is too short for one).
    #[inline]
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        let d = self.buffer.as_ref().get(field::TARGET)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(d);
        Some(Ipv6Addr::from(a))
    }

    /// True when the checksum over the pseudo-header and the message verifies.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        let d = self.buffer.as_ref();
        checksum::combine(&[pseudo.sum(IpProtocol::Icmpv6, d.len() as u32), checksum::data(d)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// What follows the 8-byte header: echo data, or the quoted invoking packet of an error.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The NDP options of a neighbor solicitation/advertisement (none for other messages).
    pub fn ndp_options(&self) -> NdpOptions<'a> {
        let d = self.buffer.as_ref();
        if self.msg_type().is_ndp_ns_na() {
            NdpOptions::new(d.get(field::NDP_OPTIONS).unwrap_or(&[]))
        } else {
            NdpOptions::new(&[])
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the message type. Voids the length check when it makes the message a NS/NA.
    #[inline]
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into()
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value)
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value)
    }

    /// Sets the 32-bit field after the checksum: MTU (packet too big), pointer, or zero (unused).
    #[inline]
    pub fn set_mtu(&mut self, value: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the neighbor advertisement flags and zeroes the reserved bits.
    #[inline]
    pub fn set_neighbor_flags(&mut self, value: NeighborFlags) {
        let d = &mut self.buffer.as_mut()[field::UNUSED];
        d.fill(0);
        d[0] = value.to_byte();
    }

    /// Sets the target address. Panics if the buffer is shorter than 24 bytes.
    #[inline]
    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets())
    }

    /// Computes and writes the checksum.
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let sum = checksum::combine(&[pseudo.sum(IpProtocol::Icmpv6, d.len() as u32), checksum::data(d)]);
        self.set_checksum(checksum::finish(sum))
    }

    /// Adjusts the checksum for an IPv6 address change in the pseudo-header.
    #[inline]
    pub fn update_checksum_addr(&mut self, old: Ipv6Addr, new: Ipv6Addr) {
        self.set_checksum(checksum::update_bytes(self.checksum(), &old.octets(), &new.octets()))
    }

    /// Turns an echo request into its reply in place (type 128 -> 129), checksum updated
    /// incrementally; swapping the IPv6 addresses leaves the pseudo-header sum unchanged.
    #[inline]
    pub fn make_echo_reply_in_place(&mut self) {
        let code = self.msg_code();
        let old = u16::from_be_bytes([self.buffer.as_ref()[field::TYPE], code]);
        self.set_msg_type(Message::EchoReply);
        let new = u16::from_be_bytes([u8::from(Message::EchoReply), code]);
        self.set_checksum(checksum::update16(self.checksum(), old, new));
    }

    /// What follows the 8-byte header, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A validated ICMPv6 message of a kind the gateway handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Packet too big.
    PktTooBig {
        /// MTU of the next-hop link.
        mtu: u32,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Destination unreachable.
    DstUnreachable {
        /// Code.
        reason: DstUnreachable,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code.
        reason: TimeExceeded,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Parameter problem.
    ParamProblem {
        /// Code.
        reason: ParamProblem,
        /// Offset in the quoted packet (from its IPv6 header) of the octet where the problem is.
        pointer: u32,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Neighbor solicitation.
    NeighborSolicit {
        /// Address being resolved.
        target_addr: Ipv6Addr,
        /// Source link-layer address option, if present.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor advertisement.
    NeighborAdvert {
        /// R, S, O flags.
        flags: NeighborFlags,
        /// Address being advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option, if present.
        lladdr: Option<EthernetAddress>,
    },
}

impl<'a> Repr<'a> {
    /// Parses a message and verifies its checksum. NS/NA get the RFC 4861 section 7.1 checks that
    /// need no IP context (code 0 and a non-multicast target: [`ParseError::NdpInvalid`]; well-formed
    /// options: [`ParseError::NdpBadOption`]);
    /// the hop limit of 255 is the IP layer's to check. Other types give [`ParseError::Icmpv6Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(pseudo: &PseudoHeader, packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(pseudo) {
            return Err(ParseError::Icmpv6BadChecksum);
        }
        let code = packet.msg_code();
        let ty = packet.msg_type();
        match ty {
            Message::EchoRequest | Message::EchoReply if code == 0 => {
                let (ident, seq_no, data) = (packet.echo_ident(), packet.echo_seq_no(), packet.data());
                Ok(if ty == Message::EchoRequest {
                    Repr::EchoRequest { ident, seq_no, data }
                } else {
                    Repr::EchoReply { ident, seq_no, data }
                })
            }
            Message::PktTooBig if code == 0 => Ok(Repr::PktTooBig { mtu: packet.mtu(), data: packet.data() }),
            Message::DstUnreachable => {
                Ok(Repr::DstUnreachable { reason: DstUnreachable::from(code), data: packet.data() })
            }
            Message::TimeExceeded => Ok(Repr::TimeExceeded { reason: TimeExceeded::from(code), data: packet.data() }),
            Message::ParamProblem => {
                Ok(Repr::ParamProblem { reason: ParamProblem::from(code), pointer: packet.mtu(), data: packet.data() })
            }
            Message::NeighborSolicit | Message::NeighborAdvert => {
                let target_addr = packet.target_addr().ok_or(ParseError::Icmpv6Truncated)?;
                if code != 0 || target_addr.is_multicast() {
                    return Err(ParseError::NdpInvalid);
                }
                let mut lladdr = None;
                for opt in packet.ndp_options() {
                    match (ty, opt?) {
                        (Message::NeighborSolicit, NdpOption::SourceLinkLayerAddr(a))
                        | (Message::NeighborAdvert, NdpOption::TargetLinkLayerAddr(a)) => lladdr = Some(a),
                        _ => {}
                    }
                }
                Ok(if ty == Message::NeighborSolicit {
                    Repr::NeighborSolicit { target_addr, lladdr }
                } else {
                    Repr::NeighborAdvert { flags: packet.neighbor_flags(), target_addr, lladdr }
                })
            }
            _ => Err(ParseError::Icmpv6Unsupported),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::PktTooBig { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. }
            | Repr::ParamProblem { data, .. } => HEADER_LEN + data.len(),
            Repr::NeighborSolicit { lladdr, .. } | Repr::NeighborAdvert { lladdr, .. } => {
                NDP_NS_NA_LEN + if lladdr.is_some() { NDP_LLADDR_OPTION_LEN } else { 0 }
            }
        }
    }

    /// Writes the whole message (data and options included) and its checksum into a buffer exactly
    /// [`Repr::buffer_len`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, pseudo: &PseudoHeader, packet: &mut Packet<T>) {
        let write_data = |packet: &mut Packet<T>, ty: Message, code: u8, word: u32, data: &[u8]| {
            packet.set_msg_type(ty);
            packet.set_msg_code(code);
            packet.set_mtu(word);
            packet.data_mut()[..data.len()].copy_from_slice(data);
        };
        match *self {
            Repr::EchoRequest { ident, seq_no, data } => {
                write_data(packet, Message::EchoRequest, 0, (u32::from(ident) << 16) | u32::from(seq_no), data)
            }
            Repr::EchoReply { ident, seq_no, data } => {
                write_data(packet, Message::EchoReply, 0, (u32::from(ident) << 16) | u32::from(seq_no), data)
            }
            Repr::PktTooBig { mtu, data } => write_data(packet, Message::PktTooBig, 0, mtu, data),
            Repr::DstUnreachable { reason, data } => {
                write_data(packet, Message::DstUnreachable, reason.into(), 0, data)
            }
            Repr::TimeExceeded { reason, data } => write_data(packet, Message::TimeExceeded, reason.into(), 0, data),
            Repr::ParamProblem { reason, pointer, data } => {
                write_data(packet, Message::ParamProblem, reason.into(), pointer, data)
            }
            Repr::NeighborSolicit { target_addr, lladdr } | Repr::NeighborAdvert { target_addr, lladdr, .. } => {
                let (ty, flags, opt) = match *self {
                    Repr::NeighborAdvert { flags, .. } => {
                        (Message::NeighborAdvert, flags, NdpOptionType::TargetLinkLayerAddr)
                    }
                    _ => (Message::NeighborSolicit, NeighborFlags::default(), NdpOptionType::SourceLinkLayerAddr),
                };
                packet.set_msg_type(ty);
                packet.set_msg_code(0);
                packet.set_neighbor_flags(flags);
                packet.set_target_addr(target_addr);
                if let Some(a) = lladdr {
                    let o = &mut packet.buffer.as_mut()[NDP_NS_NA_LEN..NDP_NS_NA_LEN + NDP_LLADDR_OPTION_LEN];
                    o[0] = opt.into();
                    o[1] = 1;
                    o[2..].copy_from_slice(&a.0);
                }
            }
        }
        packet.fill_checksum(pseudo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo() -> PseudoHeader {
        PseudoHeader::V6 { src: "fe80::1".parse().unwrap(), dst: "ff02::1:ff00:2".parse().unwrap() }
    }

    // scapy: bytes(IPv6(src="fe80::1", dst="ff02::1:ff00:2")/ICMPv6ND_NS(tgt="2001:db8::2")
    //              /ICMPv6NDOptSrcLLAddr(lladdr="00:11:22:33:44:55"))[40:]
    const NS: [u8; 32] = [
        0x87, 0x00, 0xe6, 0xc6, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
    ];

    // scapy: bytes(IPv6(src="fe80::1", dst="ff02::1:ff00:2")/ICMPv6ND_NA(tgt="2001:db8::2", R=1, S=1, O=0)
    //              /ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:09"))[40:]
    const NA: [u8; 32] = [
        0x88, 0x00, 0x89, 0x56, 0xc0, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x09,
    ];

    // scapy: bytes(IPv6(src="fe80::1", dst="ff02::1:ff00:2")/ICMPv6PacketTooBig(mtu=1450)/b"quoted..")[40:]
    const PTB: [u8; 16] =
        [0x02, 0x00, 0x87, 0x06, 0x00, 0x00, 0x05, 0xaa, 0x71, 0x75, 0x6f, 0x74, 0x65, 0x64, 0x2e, 0x2e];

    // scapy: bytes(IPv6(src="fe80::1", dst="ff02::1:ff00:2")/ICMPv6EchoRequest(id=7, seq=9, data=b"ping"))[40:]
    const ECHO: [u8; 12] = [0x80, 0x00, 0xa4, 0x4f, 0x00, 0x07, 0x00, 0x09, 0x70, 0x69, 0x6e, 0x67];

    // scapy: bytes(IPv6(src="fe80::1", dst="ff02::1:ff00:2")/ICMPv6ParamProblem(code=2, ptr=42)/b"quoted..")[40:]
    const PARAM_PROBLEM: [u8; 16] =
        [0x04, 0x02, 0x8a, 0x84, 0x00, 0x00, 0x00, 0x2a, 0x71, 0x75, 0x6f, 0x74, 0x65, 0x64, 0x2e, 0x2e];

    fn target() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    #[test]
    fn parse_ns_na() {
        let p = Packet::new_checked(&NS[..]).unwrap();
        assert_eq!(
            Repr::parse(&pseudo(), &p).unwrap(),
            Repr::NeighborSolicit {
                target_addr: target(),
                lladdr: Some(EthernetAddress([0, 0x11, 0x22, 0x33, 0x44, 0x55]))
            }
        );
        let p = Packet::new_checked(&NA[..]).unwrap();
        assert_eq!(
            Repr::parse(&pseudo(), &p).unwrap(),
            Repr::NeighborAdvert {
                flags: NeighborFlags { router: true, solicited: true, override_entry: false },
                target_addr: target(),
                lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 9])),
            }
        );
    }

    #[test]
    fn parse_ptb_and_echo() {
        let p = Packet::new_checked(&PTB[..]).unwrap();
        assert!(p.msg_type().is_error());
        assert_eq!(Repr::parse(&pseudo(), &p).unwrap(), Repr::PktTooBig { mtu: 1450, data: b"quoted.." });
        assert_eq!(p.target_addr(), None);
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(Repr::parse(&pseudo(), &p).unwrap(), Repr::EchoRequest { ident: 7, seq_no: 9, data: b"ping" });
        let p = Packet::new_checked(&PARAM_PROBLEM[..]).unwrap();
        assert!(p.msg_type().is_error());
        assert_eq!(
            Repr::parse(&pseudo(), &p).unwrap(),
            Repr::ParamProblem { reason: ParamProblem::UnrecognizedOption, pointer: 42, data: b"quoted.." }
        );
    }

    #[test]
    fn construct_over_junk() {
        for (bytes, repr) in [
            (&NS[..], Repr::parse(&pseudo(), &Packet::new_checked(&NS[..]).unwrap()).unwrap()),
            (&NA[..], Repr::parse(&pseudo(), &Packet::new_checked(&NA[..]).unwrap()).unwrap()),
            (&PTB[..], Repr::PktTooBig { mtu: 1450, data: b"quoted.." }),
            (
                &PARAM_PROBLEM[..],
                Repr::ParamProblem { reason: ParamProblem::UnrecognizedOption, pointer: 42, data: b"quoted.." },
            ),
            (&ECHO[..], Repr::EchoRequest { ident: 7, seq_no: 9, data: b"ping" }),
        ] {
            let mut buf = vec![0xa5u8; repr.buffer_len()];
            repr.emit(&pseudo(), &mut Packet::new_unchecked(&mut buf[..]));
            assert_eq!(&buf[..], bytes);
        }
    }

    #[test]
    fn echo_reply_in_place() {
        let mut buf = ECHO;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.make_echo_reply_in_place();
        let PseudoHeader::V6 { src, dst } = pseudo() else { unreachable!() };
        let swapped = PseudoHeader::V6 { src: dst, dst: src };
        assert!(p.verify_checksum(&swapped));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&swapped, &p).unwrap(), Repr::EchoReply { ident: 7, seq_no: 9, data: b"ping" });
    }

    #[test]
    fn errors() {
        assert_eq!(Packet::new_checked(&ECHO[..7]).unwrap_err(), ParseError::Icmpv6Truncated);
        assert_eq!(Packet::new_checked(&NS[..23]).unwrap_err(), ParseError::Icmpv6Truncated);
        let mut b = ECHO;
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&pseudo(), &p).unwrap_err(), ParseError::Icmpv6BadChecksum);
        // Option with length zero.
        let mut b = NS;
        b[25] = 0;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&pseudo());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&pseudo(), &p).unwrap_err(), ParseError::NdpBadOption);
        // Option longer than the message.
        let mut b = NS;
        b[25] = 2;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&pseudo());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&pseudo(), &p).unwrap_err(), ParseError::NdpBadOption);
        // Router solicitation: not handled here.
        let mut b = [133u8, 0, 0, 0, 0, 0, 0, 0];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&pseudo());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&pseudo(), &p).unwrap_err(), ParseError::Icmpv6Unsupported);
    }

    #[test]
    fn unknown_options_skipped() {
        // An MTU option (type 5, len 1) before the source link-layer address.
        let mut buf = [0u8; 40];
        buf[..24].copy_from_slice(&NS[..24]);
        buf[24] = 5;
        buf[25] = 1;
        buf[32..].copy_from_slice(&NS[24..]);
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum(&pseudo());
        let p = Packet::new_checked(&buf[..]).unwrap();
        let opts: Vec<_> = p.ndp_options().collect();
        assert_eq!(opts[0], Ok(NdpOption::Other { kind: NdpOptionType::Mtu, data: &[0; 6] }));
        assert!(matches!(Repr::parse(&pseudo(), &p).unwrap(), Repr::NeighborSolicit { lladdr: Some(_), .. }));
    }

    fn make_repr(kind: u8, a: u32, code: u8, addr: [u8; 16], mac: Option<[u8; 6]>, data: &[u8]) -> Repr<'_> {
        let mut addr = addr;
        if addr[0] == 0xff {
            addr[0] = 0xfe; // not multicast
        }
        let target_addr = Ipv6Addr::from(addr);
        let lladdr = mac.map(EthernetAddress);
        match kind % 7 {
            0 => Repr::EchoRequest { ident: (a >> 16) as u16, seq_no: a as u16, data },
            1 => Repr::EchoReply { ident: (a >> 16) as u16, seq_no: a as u16, data },
            2 => Repr::PktTooBig { mtu: a, data },
            3 => Repr::DstUnreachable { reason: DstUnreachable::from(code), data },
            4 => Repr::TimeExceeded { reason: TimeExceeded::from(code), data },
            5 => Repr::NeighborSolicit { target_addr, lladdr },
            _ => Repr::NeighborAdvert { flags: NeighborFlags::from_byte(code), target_addr, lladdr },
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&pseudo(), &p);
                let _ = (p.mtu(), p.target_addr(), p.neighbor_flags(), p.data().len(), p.ndp_options().count());
            }
            for o in NdpOptions::new(&bytes) {
                let _ = o;
            }
        }

        #[test]
        fn emit_parse_round_trip(kind in any::<u8>(), a in any::<u32>(), code in any::<u8>(), addr in any::<[u8; 16]>(),
                                 mac in proptest::option::of(any::<[u8; 6]>()),
                                 data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let repr = make_repr(kind, a, code, addr, mac, &data);
            let mut buf = vec![0x77u8; repr.buffer_len()];
            repr.emit(&pseudo(), &mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&pseudo(), &Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }
    }
}
