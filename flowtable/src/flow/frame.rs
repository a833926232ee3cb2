//! The flow key straight from a frame's bytes: a fast path for the common frame, with the general
//! parser as the fallback.
//!
//! On a flow-cache hit nothing but the key is needed from the headers, so building [`Headers`]
//! (every offset and field, enums for each layer) and then packing the key from it is wasted work.
//! [`FlowKey::from_frame`] reads the key's words directly (untagged IPv4's compact key as four
//! loads of the frame's bytes) for the frames a gateway sees almost exclusively: Ethernet, at
//! most one 802.1Q tag, IPv4 without options and unfragmented (its header checksum verified, as
//! [`Headers::parse`] does), or IPv6 without extension headers, then TCP, UDP, ICMP (over IPv4) or ICMPv6 (over IPv6, NDP NS/NA
//! excepted). It checks exactly what [`Headers::parse`] checks for those frames; anything else,
//! including every frame the general parser would refuse, falls back to
//! `Headers::parse` + [`FlowKey::from_headers`], so the result is the same for every input (a
//! proptest holds the two paths equal on built, mutated and random frames).

use super::key::{type_code, FlowKey, L3Kind, L4Kind, FLAG_L3_SHIFT, FLAG_L4_SHIFT, FLAG_TAGGED, V4_MAPPED};
use crate::wire::{checksum, Headers, ParseError};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TPID_8021Q: u16 = 0x8100;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
/// IPv4 flags and fragment offset: MF and the offset (DF and the reserved bit do not fragment).
const IPV4_FRAGMENT_BITS: u16 = 0x3fff;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Eight bytes at `at` of a fixed array, big-endian.
#[inline(always)]
fn be64<const N: usize>(b: &[u8; N], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

impl FlowKey {
    /// The key of `frame`, received on `ingress`: equal to
    /// `Headers::parse(frame).map(|h| FlowKey::from_headers(ingress, &h))` for every input, with the
    /// common frames read directly (module docs). Use it when only the key is needed.
    #[inline]
    pub fn from_frame(ingress: u32, frame: &[u8]) -> Result<FlowKey, ParseError> {
        match common_frame_key(ingress, frame) {
            Some(key) => Ok(key),
            None => Self::from_frame_general(ingress, frame),
        }
    }

    /// [`FlowKey::from_frame`] into `self` (left as it was on an error): the fast path writes the
    /// words where the caller keeps its key instead of returning them through a `Result`, which
    /// costs a 64-byte copy per packet.
    ///
    /// The commonest frame of all, untagged IPv4 with TCP, UDP or ICMP, is read inline; every
    /// other frame goes through an out-of-line call.
    #[inline(always)]
    pub fn set_from_frame(&mut self, ingress: u32, frame: &[u8]) -> Result<(), ParseError> {
        match ipv4_untagged_key(ingress, frame) {
            Some(key) => *self = key,
            None => self.set_from_other_frame(ingress, frame)?,
        }
        Ok(())
    }

    /// [`FlowKey::set_from_frame`] of a frame whose IPv4 header checksum, if it has one, the NIC
    /// verified (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`, RFC 1812 5.2.2 allows the check to be done in
    /// hardware): untagged IPv4 skips the software check, every other frame goes the usual way.
    /// The same result as [`FlowKey::set_from_frame`] whenever the NIC is right (proptest); a
    /// frame the NIC found bad must not come here.
    #[inline(always)]
    pub fn set_from_nic_verified_frame(&mut self, ingress: u32, frame: &[u8]) -> Result<(), ParseError> {
        match ipv4_untagged_key_checked::<false>(ingress, frame) {
            Some(key) => *self = key,
            None => self.set_from_other_frame(ingress, frame)?,
        }
        Ok(())
    }

    /// [`FlowKey::set_from_frame`] for anything but untagged IPv4.
    #[inline(never)]
    fn set_from_other_frame(&mut self, ingress: u32, frame: &[u8]) -> Result<(), ParseError> {
        match common_frame_key(ingress, frame) {
            Some(key) => *self = key,
            None => *self = Self::from_frame_general(ingress, frame)?,
        }
        Ok(())
    }

    /// The fallback, out of line so the fast path stays small.
    #[inline(never)]
    fn from_frame_general(ingress: u32, frame: &[u8]) -> Result<FlowKey, ParseError> {
        Headers::parse(frame).map(|h| FlowKey::from_headers(ingress, &h))
    }
}

/// [`common_frame_key`] for an untagged IPv4 frame (no options, unfragmented) carrying TCP, UDP
/// or ICMP: the same checks, the layer offsets constant, and the compact key (key.rs module docs),
/// whose words are loads of the frame's bytes. `None` for anything else.
#[inline(always)]
fn ipv4_untagged_key(ingress: u32, frame: &[u8]) -> Option<FlowKey> {
    ipv4_untagged_key_checked::<true>(ingress, frame)
}

/// [`ipv4_untagged_key`], verifying the IPv4 header checksum only when `VERIFY` (not when the
/// NIC did: [`FlowKey::set_from_nic_verified_frame`]).
#[inline(always)]
fn ipv4_untagged_key_checked<const VERIFY: bool>(ingress: u32, frame: &[u8]) -> Option<FlowKey> {
    // Ethernet, IPv4 and the first eight bytes of its payload: every such frame has them.
    let h: &[u8; 42] = frame.first_chunk()?;
    if be16(h, 12) != ETHERTYPE_IPV4 || h[14] != 0x45 || be16(h, 20) & IPV4_FRAGMENT_BITS != 0 {
        return None;
    }
    // RFC 1812 5.2.2: a router MUST verify the header checksum of every packet it forwards.
    if VERIFY && !checksum::header20_verifies(h[14..].first_chunk()?) {
        return None;
    }
    let total = usize::from(be16(h, 16));
    let segment = frame.get(34..14 + total)?;
    let proto = h[23];
    // The L4 pair as wire bytes (the compact key's form): TCP and UDP ports as they are, one load.
    let ports = le32(h, 34);
    // UDP first: the commonest by far, then TCP; each arm knows its key flags.
    let (pair, flags) = if proto == PROTO_UDP {
        let len = usize::from(be16(h, 38));
        if len < 8 || len > segment.len() {
            return None;
        }
        (ports, V4_FLAGS | (L4Kind::Udp as u8) << FLAG_L4_SHIFT)
    } else if proto == PROTO_TCP {
        let data_offset = *segment.get(12)?;
        let header_len = usize::from(data_offset >> 4) * 4;
        if header_len < 20 || header_len > segment.len() {
            return None;
        }
        (ports, V4_FLAGS | (L4Kind::Tcp as u8) << FLAG_L4_SHIFT)
    } else if proto == PROTO_ICMP {
        if segment.len() < 8 {
            return None;
        }
        // Type, code, then the identifier of an echo request or reply (else 0).
        let ident = if matches!(h[34], 0 | 8) { ports & 0xffff | le32(h, 36) & 0xffff_0000 } else { ports & 0xffff };
        (ident, V4_FLAGS | (L4Kind::Icmpv4 as u8) << FLAG_L4_SHIFT)
    } else {
        return None;
    };
    let (macs, addrs) = (h.first_chunk::<12>()?, h[26..].first_chunk::<8>()?);
    Some(FlowKey::compact(ingress, macs, pair.to_le_bytes(), proto, h[15], flags, addrs))
}

/// An untagged IPv4 key's flags before the L4 kind: the L3 kind, unfragmented, untagged.
const V4_FLAGS: u8 = (L3Kind::Ipv4 as u8) << FLAG_L3_SHIFT;

/// Four bytes at `at`, little-endian (the compact key's words are little-endian loads).
#[inline(always)]
fn le32<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The key of a common frame, or `None` when the frame is anything else (or malformed).
#[inline(always)]
pub(super) fn common_frame_key(ingress: u32, frame: &[u8]) -> Option<FlowKey> {
    let eth: &[u8; 14] = frame.first_chunk()?;
    // MACs: bytes 0..6 and 6..12, each as the low 48 bits of a word.
    let dst_mac = be64(eth, 0) >> 16;
    let src_mac = be64(eth, 4) & 0xffff_ffff_ffff;
    let (l3_offset, ethertype, tci, tagged) = match be16(eth, 12) {
        TPID_8021Q => {
            let tag: &[u8; 18] = frame.first_chunk()?;
            (18, be16(tag, 16), be16(tag, 14), FLAG_TAGGED)
        }
        other => (14, other, 0, 0),
    };
    let l3 = frame.get(l3_offset..)?;
    let l2 = L2 { ingress, ethertype, tci, tagged, dst_mac, src_mac };
    // Each arm builds its key itself: with the IP version a constant, nothing is spilled to join them.
    match ethertype {
        // Untagged IPv4 has a compact key of its own.
        ETHERTYPE_IPV4 if tagged == 0 => ipv4_untagged_key(ingress, frame),
        ETHERTYPE_IPV4 => {
            let ip: &[u8; 20] = l3.first_chunk()?;
            // Version 4, no options; unfragmented.
            if ip[0] != 0x45 || be16(ip, 6) & IPV4_FRAGMENT_BITS != 0 || !checksum::header20_verifies(ip) {
                return None;
            }
            let total = usize::from(be16(ip, 2));
            let segment = l3.get(20..total)?;
            let addr =
                |at: usize| V4_MAPPED | u64::from(u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]));
            let l3 = L3Fields { kind: L3Kind::Ipv4, proto: ip[9], tos: ip[1], src: [0, addr(12)], dst: [0, addr(16)] };
            key_words(&l2, &l3, common_l4(l3.proto, segment, false)?)
        }
        ETHERTYPE_IPV6 => {
            let ip: &[u8; 40] = l3.first_chunk()?;
            if ip[0] >> 4 != 6 {
                return None;
            }
            let total = 40 + usize::from(be16(ip, 4));
            let segment = l3.get(40..total)?;
            let traffic_class = ((u32::from(ip[0]) << 4) | u32::from(ip[1]) >> 4) as u8;
            let l3 = L3Fields {
                kind: L3Kind::Ipv6,
                proto: ip[6],
                tos: traffic_class,
                src: [be64(ip, 8), be64(ip, 16)],
                dst: [be64(ip, 24), be64(ip, 32)],
            };
            key_words(&l2, &l3, common_l4(l3.proto, segment, true)?)
        }
        _ => None,
    }
}

/// The Ethernet part of a key.
struct L2 {
    ingress: u32,
    ethertype: u16,
    tci: u16,
    tagged: u8,
    dst_mac: u64,
    src_mac: u64,
}

/// The IP part of a key.
struct L3Fields {
    kind: L3Kind,
    proto: u8,
    tos: u8,
    src: [u64; 2],
    dst: [u64; 2],
}

/// The eight words (module docs of `key.rs` for the layout; unfragmented).
#[inline(always)]
fn key_words(l2: &L2, l3: &L3Fields, (l4_kind, sport, dport): (L4Kind, u16, u16)) -> Option<FlowKey> {
    let flags = l2.tagged | (l3.kind as u8) << FLAG_L3_SHIFT | (l4_kind as u8) << FLAG_L4_SHIFT;
    Some(FlowKey::from_words([
        u64::from(l2.ingress) | u64::from(l2.ethertype) << 32 | u64::from(l2.tci) << 48,
        l2.dst_mac | u64::from(l3.proto) << 48 | u64::from(l3.tos) << 56,
        l2.src_mac | u64::from(flags) << 48,
        l3.src[0],
        l3.src[1],
        l3.dst[0],
        l3.dst[1],
        u64::from(sport) | u64::from(dport) << 16,
    ]))
}

/// The L4 pair of a TCP, UDP or ICMP header at the start of `segment` (which ends at the IP
/// packet's end), with the general parser's length checks; `None` for anything else.
#[inline(always)]
fn common_l4(proto: u8, segment: &[u8], v6: bool) -> Option<(L4Kind, u16, u16)> {
    let h: &[u8; 8] = segment.first_chunk()?;
    let (a, b) = (be16(h, 0), be16(h, 2));
    match (proto, v6) {
        (PROTO_TCP, _) => {
            let tcp: &[u8; 20] = segment.first_chunk()?;
            let header_len = usize::from(tcp[12] >> 4) * 4;
            (header_len >= 20 && header_len <= segment.len()).then_some((L4Kind::Tcp, a, b))
        }
        (PROTO_UDP, _) => {
            let len = usize::from(be16(h, 4));
            (len >= 8 && len <= segment.len()).then_some((L4Kind::Udp, a, b))
        }
        (PROTO_ICMP, false) => {
            // Echo reply (0) and request (8) carry an identifier.
            let ident = if matches!(h[0], 0 | 8) { be16(h, 4) } else { 0 };
            Some((L4Kind::Icmpv4, ident, type_code(h[0], h[1])))
        }
        // NDP NS/NA (135, 136) have a longer minimum: left to the general parser.
        (PROTO_ICMPV6, true) if !matches!(h[0], 135 | 136) => {
            let ident = if matches!(h[0], 128 | 129) { be16(h, 4) } else { 0 };
            Some((L4Kind::Icmpv6, ident, type_code(h[0], h[1])))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The general path's answer.
    fn general(ingress: u32, frame: &[u8]) -> Result<FlowKey, ParseError> {
        Headers::parse(frame).map(|h| FlowKey::from_headers(ingress, &h))
    }

    /// What a common frame is built from.
    #[derive(Debug, Clone)]
    struct Spec {
        dst: [u8; 6],
        src: [u8; 6],
        tci: Option<u16>,
        v6: bool,
        tos: u8,
        flow_label: u32,
        frag: u16,
        proto: u8,
        src_addr: [u8; 16],
        dst_addr: [u8; 16],
        l4: [u8; 8],
        payload: Vec<u8>,
        padding: usize,
        /// IPv4 option bytes (a multiple of 4, at most 40); none over IPv6.
        options: Vec<u8>,
    }

    /// The frame bytes: the L4 header is TCP (20 bytes, data offset 5), UDP (length filled in) or
    /// an 8-byte ICMP-like header with `l4`'s bytes, whatever `proto` is.
    fn build(s: &Spec) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&s.dst);
        b.extend_from_slice(&s.src);
        if let Some(tci) = s.tci {
            b.extend_from_slice(&[0x81, 0x00]);
            b.extend_from_slice(&tci.to_be_bytes());
        }
        b.extend_from_slice(&if s.v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }.to_be_bytes());
        let mut l4 = s.l4.to_vec();
        match s.proto {
            PROTO_TCP => {
                l4.extend_from_slice(&[0; 12]);
                l4[12] = 0x50;
            }
            PROTO_UDP => {
                let len = (8 + s.payload.len()) as u16;
                l4[4..6].copy_from_slice(&len.to_be_bytes());
            }
            _ => {}
        }
        let l4_len = l4.len() + s.payload.len();
        if s.v6 {
            let word0 = 6 << 28 | u32::from(s.tos) << 20 | (s.flow_label & 0xf_ffff);
            b.extend_from_slice(&word0.to_be_bytes());
            b.extend_from_slice(&(l4_len as u16).to_be_bytes());
            b.extend_from_slice(&[s.proto, 64]);
            b.extend_from_slice(&s.src_addr);
            b.extend_from_slice(&s.dst_addr);
        } else {
            let header_len = 20 + s.options.len();
            b.extend_from_slice(&[0x40 | (header_len / 4) as u8, s.tos]);
            b.extend_from_slice(&((header_len + l4_len) as u16).to_be_bytes());
            b.extend_from_slice(&[0x12, 0x34]);
            b.extend_from_slice(&s.frag.to_be_bytes());
            b.extend_from_slice(&[64, s.proto, 0, 0]);
            b.extend_from_slice(&s.src_addr[..4]);
            b.extend_from_slice(&s.dst_addr[..4]);
            b.extend_from_slice(&s.options);
            // A valid header checksum (the mutated frames of the proptest break it too).
            let l3 = b.len() - header_len;
            crate::wire::refresh_ipv4_checksum(&mut b, l3);
        }
        b.extend_from_slice(&l4);
        b.extend_from_slice(&s.payload);
        b.resize(b.len() + s.padding, 0);
        b
    }

    /// IPv4 option bytes: mostly none, else a record route, a loose source route, or any bytes
    /// (mostly not a list that walks), padded to a multiple of 4.
    fn options() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => Just(vec![]),
            1 => Just(vec![7, 7, 4, 0, 0, 0, 0, 0]),
            1 => Just(vec![131, 7, 4, 192, 0, 2, 9, 0]),
            1 => proptest::collection::vec(any::<u8>(), 1..=10).prop_map(|mut v| {
                v.resize(v.len() * 4, 0);
                v
            }),
        ]
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            (any::<[u8; 6]>(), any::<[u8; 6]>(), proptest::option::of(any::<u16>()), any::<bool>(), any::<u8>()),
            (any::<u32>(), prop_oneof![Just(0u16), Just(0x4000), any::<u16>()]),
            prop_oneof![Just(PROTO_TCP), Just(PROTO_UDP), Just(PROTO_ICMP), Just(PROTO_ICMPV6), any::<u8>()],
            (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<[u8; 8]>()),
            (proptest::collection::vec(any::<u8>(), 0..24), 0usize..16, options()),
        )
            .prop_map(
                |(
                    (dst, src, tci, v6, tos),
                    (flow_label, frag),
                    proto,
                    (src_addr, dst_addr, l4),
                    (payload, padding, options),
                )| {
                    let options = if v6 { vec![] } else { options };
                    Spec {
                        dst,
                        src,
                        tci,
                        v6,
                        tos,
                        flow_label,
                        frag,
                        proto,
                        src_addr,
                        dst_addr,
                        l4,
                        payload,
                        padding,
                        options,
                    }
                },
            )
    }

    #[test]
    fn common_frames_take_the_fast_path_and_agree() {
        let mut s = Spec {
            dst: [2, 0, 0, 0, 0, 1],
            src: [2, 0, 0, 0, 0, 2],
            tci: None,
            v6: false,
            tos: 0x10,
            flow_label: 0,
            frag: 0x4000,
            proto: PROTO_TCP,
            src_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            l4: [0x9c, 0x40, 0x00, 0x50, 8, 0, 0x12, 0x34],
            payload: vec![1, 2, 3],
            padding: 6,
            options: vec![],
        };
        for tci in [None, Some(0x602a)] {
            for v6 in [false, true] {
                let protos: &[u8] =
                    if v6 { &[PROTO_TCP, PROTO_UDP, PROTO_ICMPV6] } else { &[PROTO_TCP, PROTO_UDP, PROTO_ICMP] };
                for &proto in protos {
                    for ty in [0u8, 8, 3, 128, 129, 1] {
                        s.l4[0] = ty;
                        (s.tci, s.v6, s.proto) = (tci, v6, proto);
                        let b = build(&s);
                        let fast = common_frame_key(7, &b);
                        assert!(fast.is_some(), "{s:?}");
                        assert_eq!(fast.map(Ok), Some(general(7, &b)), "{s:?}");
                        // Untagged IPv4 takes the inline path, and it agrees too.
                        let inline = ipv4_untagged_key(7, &b);
                        assert_eq!(inline.is_some(), tci.is_none() && !v6, "{s:?}");
                        assert!(inline.is_none() || inline == fast, "{s:?}");
                    }
                }
            }
        }
    }

    /// Untagged IPv4/UDP, 10.10.10.10 to 11.11.11.11, port 53 to 53, no payload.
    fn udp_spec() -> Spec {
        Spec {
            dst: [2, 0, 0, 0, 0, 1],
            src: [2, 0, 0, 0, 0, 2],
            tci: None,
            v6: false,
            tos: 0,
            flow_label: 0,
            frag: 0,
            proto: PROTO_UDP,
            src_addr: [10; 16],
            dst_addr: [11; 16],
            l4: [0, 53, 0, 53, 0, 0, 0, 0],
            payload: vec![],
            padding: 0,
            options: vec![],
        }
    }

    /// The NIC's word on the IPv4 header checksum is taken for untagged IPv4 (the software check
    /// is what it saves); a tagged frame is checked in software all the same.
    #[test]
    fn a_nic_verified_frame_skips_only_the_software_checksum_check() {
        let mut s = Spec { l4: [0x9c, 0x40, 0x00, 0x35, 0, 8, 0, 0], ..udp_spec() };
        let good = build(&s);
        let mut bad = good.clone();
        bad[24] ^= 0x01;
        let (mut checked, mut trusted) = (FlowKey::default(), FlowKey::default());
        assert_eq!(checked.set_from_frame(7, &bad), Err(ParseError::Ipv4BadChecksum));
        assert_eq!(trusted.set_from_nic_verified_frame(7, &bad), Ok(()), "not checked again");
        assert_eq!(trusted, FlowKey::from_frame(7, &good).unwrap(), "the checksum is not part of the key");
        s.tci = Some(0x002a);
        let mut tagged = build(&s);
        tagged[28] ^= 0x01;
        assert_eq!(trusted.set_from_nic_verified_frame(7, &tagged), Err(ParseError::Ipv4BadChecksum));
    }

    #[test]
    fn other_frames_fall_back() {
        let base = udp_spec();
        let later_fragment = build(&Spec { frag: 0x0010, ..base.clone() });
        let first_fragment = build(&Spec { frag: 0x2000, ..base.clone() });
        let gre = build(&Spec { proto: 47, ..base.clone() });
        let icmpv6_in_v4 = build(&Spec { proto: PROTO_ICMPV6, ..base.clone() });
        let ns = build(&Spec { proto: PROTO_ICMPV6, v6: true, l4: [135, 0, 0, 0, 0, 0, 0, 0], ..base.clone() });
        let mut options = build(&base);
        options[14] = 0x46;
        let record_route = build(&Spec { options: vec![7, 7, 4, 0, 0, 0, 0, 0], ..base.clone() });
        let source_route = build(&Spec { options: vec![131, 7, 4, 192, 0, 2, 9, 0], tci: Some(1), ..base.clone() });
        let mut stacked = build(&Spec { tci: Some(1), ..base.clone() });
        stacked[16..18].copy_from_slice(&TPID_8021Q.to_be_bytes());
        let mut short_udp = build(&base);
        short_udp[14 + 20 + 5] = 7;
        for b in [later_fragment, first_fragment, gre, icmpv6_in_v4, ns, options, stacked, short_udp] {
            assert_eq!(common_frame_key(1, &b), None);
            assert_eq!(FlowKey::from_frame(1, &b), general(1, &b));
        }
        // Options: the general parser's key, never the compact form.
        for b in [record_route, source_route] {
            assert_eq!(common_frame_key(1, &b), None);
            let key = FlowKey::from_frame(1, &b).unwrap();
            assert_eq!(Ok(key), general(1, &b));
            assert!(!key.is_compact() && key.ipv4_options() != crate::wire::Ipv4OptionsClass::None);
        }
        assert_eq!(FlowKey::from_frame(1, &[]), Err(ParseError::EthernetTruncated));
    }

    proptest! {
        /// Built common frames, then edited at random header bytes and cut short: the fast path
        /// and the general parser give the same key or the same error.
        #[test]
        fn fast_path_equals_general_parser(
            s in spec(),
            ingress in any::<u32>(),
            edits in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
            cut in any::<proptest::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut b = build(&s);
            let pristine = b.clone();
            for (at, v) in edits {
                if at < b.len() {
                    b[at] = v;
                }
            }
            if do_cut {
                b.truncate(cut.index(b.len() + 1));
            }
            prop_assert_eq!(FlowKey::from_frame(ingress, &b), general(ingress, &b));
            let mut into = FlowKey::default();
            let set = into.set_from_frame(ingress, &b);
            prop_assert_eq!(set.map(|()| into), general(ingress, &b));
            if let Some(k) = common_frame_key(ingress, &b) {
                prop_assert_eq!(Ok(k), general(ingress, &b));
            }
            if let Some(k) = ipv4_untagged_key(ingress, &b) {
                prop_assert_eq!(Ok(k), general(ingress, &b));
            }
            prop_assert_eq!(FlowKey::from_frame(ingress, &pristine), general(ingress, &pristine));
            // A header with options is the general parser's, and its key is never compact.
            if !s.options.is_empty() {
                prop_assert_eq!(common_frame_key(ingress, &pristine), None);
                if let Ok(k) = general(ingress, &pristine) {
                    prop_assert!(!k.is_compact());
                }
            }
            // What the NIC verified: the same key as the software check, once the checksum is right.
            crate::fuzzing::fix_ipv4_headers(&mut b);
            let mut verified = FlowKey::default();
            let set = verified.set_from_nic_verified_frame(ingress, &b);
            prop_assert_eq!(set.map(|()| verified), general(ingress, &b));
        }

        #[test]
        fn random_bytes_agree(bytes in proptest::collection::vec(any::<u8>(), 0..100), ingress in any::<u32>()) {
            prop_assert_eq!(FlowKey::from_frame(ingress, &bytes), general(ingress, &bytes));
            let mut into = FlowKey::default();
            prop_assert_eq!(into.set_from_frame(ingress, &bytes).map(|()| into), general(ingress, &bytes));
        }
    }
}
