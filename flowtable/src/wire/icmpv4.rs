//! ICMP for IPv4 (RFC 792): echo, destination unreachable (with RFC 1191's next-hop MTU for
//! "fragmentation needed"), time exceeded, parameter problem.
//!
//! [`Packet::new_checked`] guarantees the 8-byte header; every accessor reads inside it or returns the
//! rest as [`Packet::data`]. No setter voids the check.

use super::checksum;
use super::error::{ParseError, Result};

enum_with_unknown! {
    /// ICMPv4 message types.
    pub enum Message(u8) {
        /// Echo reply.
        EchoReply = 0,
        /// Destination unreachable.
        DstUnreachable = 3,
        /// Source quench (deprecated by RFC 6633, still an error message: never answered by one).
        SourceQuench = 4,
        /// Redirect.
        Redirect = 5,
        /// Echo request.
        EchoRequest = 8,
        /// Router advertisement.
        RouterAdvert = 9,
        /// Router solicitation.
        RouterSolicit = 10,
        /// Time exceeded.
        TimeExceeded = 11,
        /// Parameter problem.
        ParamProblem = 12,
        /// Timestamp.
        Timestamp = 13,
        /// Timestamp reply.
        TimestampReply = 14,
    }
}

impl Message {
    /// True for error messages (which quote the invoking packet and must never be answered by an error).
    pub fn is_error(self) -> bool {
        // RFC 1122 3.2.2 / RFC 1812 4.3.2.7 list the error messages; Source Quench is one of them.
        matches!(
            self,
            Message::DstUnreachable
                | Message::SourceQuench
                | Message::Redirect
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

enum_with_unknown! {
    /// Codes of destination unreachable (RFC 792, RFC 1812 section 5.2.7.1).
    pub enum DstUnreachable(u8) {
        /// Network unreachable.
        NetUnreachable = 0,
        /// Host unreachable.
        HostUnreachable = 1,
        /// Protocol unreachable.
        ProtoUnreachable = 2,
        /// Port unreachable.
        PortUnreachable = 3,
        /// Fragmentation needed and DF set (carries the next-hop MTU, RFC 1191).
        FragRequired = 4,
        /// Source route failed.
        SrcRouteFailed = 5,
        /// Destination network unknown.
        DstNetUnknown = 6,
        /// Destination host unknown.
        DstHostUnknown = 7,
        /// Source host isolated.
        SrcHostIsolated = 8,
        /// Network administratively prohibited.
        NetProhibited = 9,
        /// Host administratively prohibited.
        HostProhibited = 10,
        /// Network unreachable for ToS.
        NetUnreachToS = 11,
        /// Host unreachable for ToS.
        HostUnreachToS = 12,
        /// Communication administratively prohibited (RFC 1812).
        CommProhibited = 13,
        /// Host precedence violation.
        HostPrecedViol = 14,
        /// Precedence cutoff in effect.
        PrecedCutoff = 15,
    }
}

enum_with_unknown! {
    /// Codes of time exceeded.
    pub enum TimeExceeded(u8) {
        /// TTL expired in transit.
        TtlExpired = 0,
        /// Fragment reassembly time exceeded.
        FragExpired = 1,
    }
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const UNUSED: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    pub const POINTER: usize = 4;
    pub const HEADER_END: usize = 8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::HEADER_END;

/// A read/write view of an ICMPv4 message.
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
            Err(ParseError::Icmpv4Truncated)
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

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// Next-hop MTU (destination unreachable, fragmentation needed).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        self.u16_at(field::NEXT_HOP_MTU)
    }

    /// Pointer of a parameter problem: the octet of the quoted header where the problem is.
    #[inline]
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// True when the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// What follows the header: echo data, or the invoking packet quoted by an error.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the message type.
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

    /// Zeroes the 4 bytes after the checksum, then sets the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.buffer.as_mut()[field::UNUSED].fill(0);
        self.set_u16_at(field::NEXT_HOP_MTU, value)
    }

    /// Computes and writes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::data(self.buffer.as_ref()));
        self.set_checksum(c)
    }

    /// Rewrites the echo identifier (ICMP "port" for NAT), updating the checksum incrementally;
    /// returns the old identifier.
    #[inline]
    pub fn rewrite_echo_ident(&mut self, value: u16) -> u16 {
        let old = self.echo_ident();
        self.set_checksum(checksum::update16(self.checksum(), old, value));
        self.set_echo_ident(value);
        old
    }

    /// Turns an echo request into its reply in place (type 8 -> 0), checksum updated incrementally.
    /// The IP addresses are the caller's to swap.
    #[inline]
    pub fn make_echo_reply_in_place(&mut self) {
        let old = u16::from_be_bytes([self.buffer.as_ref()[field::TYPE], self.msg_code()]);
        self.set_msg_type(Message::EchoReply);
        let new = u16::from(self.msg_code());
        self.set_checksum(checksum::update16(self.checksum(), old, new));
    }

    /// What follows the header, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A validated ICMPv4 message of a kind the gateway handles.
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
    /// Destination unreachable.
    DstUnreachable {
        /// Code.
        reason: DstUnreachable,
        /// Next-hop MTU: meaningful for [`DstUnreachable::FragRequired`], zero otherwise.
        next_hop_mtu: u16,
        /// The quoted invoking packet (IP header and at least 8 bytes of its payload).
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code.
        reason: TimeExceeded,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Parameter problem, code 0: the pointer says which octet of the quoted header is wrong.
    ParamProblem {
        /// Offset of the octet in the quoted IP header.
        pointer: u8,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a message and verifies its checksum; other types give [`ParseError::Icmpv4Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(ParseError::Icmpv4BadChecksum);
        }
        let code = packet.msg_code();
        match (packet.msg_type(), code) {
            (Message::EchoRequest, 0) => {
                Ok(Repr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data: packet.data() })
            }
            (Message::EchoReply, 0) => {
                Ok(Repr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data: packet.data() })
            }
            (Message::DstUnreachable, _) => Ok(Repr::DstUnreachable {
                reason: DstUnreachable::from(code),
                next_hop_mtu: packet.next_hop_mtu(),
                data: packet.data(),
            }),
            (Message::TimeExceeded, _) => {
                Ok(Repr::TimeExceeded { reason: TimeExceeded::from(code), data: packet.data() })
            }
            (Message::ParamProblem, 0) => Ok(Repr::ParamProblem { pointer: packet.pointer(), data: packet.data() }),
            _ => Err(ParseError::Icmpv4Unsupported),
        }
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. }
            | Repr::ParamProblem { data, .. } => data,
        }
    }

    /// Bytes [`Repr::emit`] writes: header and data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the whole message, data included (ICMP messages are generated, their data is a
    /// quote or an echo), and its checksum. The buffer must be exactly [`Repr::buffer_len`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                let ty =
                    if matches!(self, Repr::EchoRequest { .. }) { Message::EchoRequest } else { Message::EchoReply };
                packet.set_msg_type(ty);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
            }
            Repr::DstUnreachable { reason, next_hop_mtu, .. } => {
                packet.set_msg_type(Message::DstUnreachable);
                packet.set_msg_code(reason.into());
                packet.set_next_hop_mtu(next_hop_mtu);
            }
            Repr::TimeExceeded { reason, .. } => {
                packet.set_msg_type(Message::TimeExceeded);
                packet.set_msg_code(reason.into());
                packet.set_next_hop_mtu(0);
            }
            Repr::ParamProblem { pointer, .. } => {
                packet.set_msg_type(Message::ParamProblem);
                packet.set_msg_code(0);
                packet.set_next_hop_mtu(0);
                packet.buffer.as_mut()[field::POINTER] = pointer;
            }
        }
        let data = self.data();
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // scapy: bytes(ICMP(type=8, id=0x1234, seq=1)/b"abcdefgh")
    const ECHO: [u8; 16] =
        [0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68];

    // scapy: bytes(ICMP(type=3, code=4, nexthopmtu=1450)/IP(src="10.0.0.1", dst="10.0.0.2", flags="DF")/UDP(sport=1, dport=2))
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x0b, 0x6e, 0x00, 0x00, 0x05, 0xaa, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11,
        0x26, 0xce, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0x00, 0x08, 0xeb, 0xd8,
    ];

    // scapy: bytes(ICMP(type=12, ptr=23)/IP(src="10.0.0.1", dst="10.0.0.2",
    //     options=[IPOption(b"\x01\x01\x01\x83")])/UDP(sport=1, dport=2)): the option at 23 lacks its length
    const PARAM_PROBLEM: [u8; 40] = [
        12, 0, 241, 27, 23, 0, 0, 0, 70, 0, 0, 32, 0, 1, 0, 0, 64, 17, 99, 70, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 131,
        0, 1, 0, 2, 0, 8, 235, 216,
    ];

    #[test]
    fn parameter_problem_parses_and_emits_as_scapy() {
        let p = Packet::new_checked(&PARAM_PROBLEM[..]).unwrap();
        assert!(p.msg_type().is_error());
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr, Repr::ParamProblem { pointer: 23, data: &PARAM_PROBLEM[8..] });
        let mut buf = [0xa5u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, PARAM_PROBLEM);
    }

    #[test]
    fn parse_echo() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" });
    }

    #[test]
    fn error_messages_are_the_rfc_1122_list() {
        // RFC 1122 3.2.2: destination unreachable, source quench, redirect, time exceeded,
        // parameter problem; nothing else (echo, timestamps, router discovery) is an error.
        let errors: Vec<u8> = (0..=255u8).filter(|&t| Message::from(t).is_error()).collect();
        assert_eq!(errors, [3, 4, 5, 11, 12]);
    }

    #[test]
    fn parse_frag_needed() {
        let p = Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert!(p.msg_type().is_error());
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu: 1450, data: &FRAG_NEEDED[8..] }
        );
    }

    #[test]
    fn construct_over_junk() {
        let repr =
            Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu: 1450, data: &FRAG_NEEDED[8..] };
        let mut buf = [0xa5u8; 36];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FRAG_NEEDED);
        let repr = Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" };
        let mut buf = [0xa5u8; 16];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ECHO);
    }

    #[test]
    fn echo_reply_in_place() {
        let mut buf = ECHO;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.make_echo_reply_in_place();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), Message::EchoReply);
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(inc, p.checksum());
    }

    #[test]
    fn errors() {
        assert_eq!(Packet::new_checked(&ECHO[..7]).unwrap_err(), ParseError::Icmpv4Truncated);
        let mut b = ECHO;
        b[15] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::Icmpv4BadChecksum);
        let mut b = [13u8, 0, 0, 0, 0, 0, 0, 0];
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), ParseError::Icmpv4Unsupported);
    }

    fn make_repr(kind: u8, a: u16, b: u16, code: u8, data: &[u8]) -> Repr<'_> {
        match kind % 4 {
            0 => Repr::EchoRequest { ident: a, seq_no: b, data },
            1 => Repr::EchoReply { ident: a, seq_no: b, data },
            2 => Repr::DstUnreachable { reason: DstUnreachable::from(code), next_hop_mtu: a, data },
            _ => Repr::TimeExceeded { reason: TimeExceeded::from(code), data },
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (Repr::parse(&p), p.next_hop_mtu(), p.data().len());
            }
        }

        #[test]
        fn emit_parse_round_trip(kind in any::<u8>(), a in any::<u16>(), b in any::<u16>(), code in any::<u8>(),
                                 data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let repr = make_repr(kind, a, b, code, &data);
            let mut buf = vec![0x33u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }
    }
}
