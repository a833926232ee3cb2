//! Test hooks shared by the cargo-fuzz targets (`flowtable/fuzz/`) and the proptests that stand in
//! for them in CI. Not part of the API.

use crate::wire::{self, Headers, L3, L4};

/// The `packet_parser` fuzz target's body: parse a frame, verify its checksums, and run every view
/// and `Repr::parse` on the offsets found and on the raw bytes. Panics only if a parser does, or if
/// the offsets `Headers::parse` returned are inconsistent.
pub fn packet_parser(data: &[u8]) {
    if let Ok(h) = Headers::parse(data) {
        assert!(h.l3_offset <= h.l4_offset && h.l4_offset <= h.payload_offset);
        assert!(h.payload_offset <= h.end && h.end <= data.len());
        let _ = h.verify_checksums(data);
        let l3 = &data[h.l3_offset..h.end];
        let l4 = &data[h.l4_offset..h.end];
        let pseudo = h.pseudo_header();
        match h.l3 {
            L3::Ipv4(_) => {
                let p = wire::Ipv4Packet::new_checked(l3).expect("parsed IPv4 re-checks");
                let _ = wire::Ipv4Repr::parse(&p);
                let _ = (p.options().len(), p.payload().len());
            }
            L3::Ipv6(_) => {
                let p = wire::Ipv6Packet::new_checked(l3).expect("parsed IPv6 re-checks");
                let _ = wire::Ipv6Repr::parse(&p);
                let _ = p.ext_chain(wire::DEFAULT_MAX_EXT_HEADERS).expect("parsed chain re-walks");
            }
            L3::Arp(_) | L3::Other => {}
        }
        if let Some(pseudo) = pseudo {
            match h.l4 {
                L4::Tcp { .. } => {
                    let p = wire::TcpPacket::new_checked(l4).expect("parsed TCP re-checks");
                    let _ = wire::TcpRepr::parse(&p, &pseudo);
                }
                L4::Udp { dst_port, .. } => {
                    let p = wire::UdpPacket::new_checked(l4).expect("parsed UDP re-checks");
                    let _ = wire::UdpRepr::parse(&p, &pseudo);
                    if dst_port == wire::VXLAN_DEFAULT_UDP_PORT {
                        if let Ok(v) = wire::VxlanPacket::new_checked(p.payload()) {
                            let _ = wire::VxlanRepr::parse(&v);
                            packet_parser(v.payload());
                        }
                    }
                }
                L4::Icmpv4 { .. } => {
                    let p = wire::Icmpv4Packet::new_checked(l4).expect("parsed ICMPv4 re-checks");
                    let _ = wire::Icmpv4Repr::parse(&p);
                }
                L4::Icmpv6 { .. } => {
                    let p = wire::Icmpv6Packet::new_checked(l4).expect("parsed ICMPv6 re-checks");
                    let _ = wire::Icmpv6Repr::parse(&pseudo, &p);
                    for o in p.ndp_options() {
                        let _ = o;
                    }
                }
                L4::Gre { .. } => {
                    let p = wire::GrePacket::new_checked(l4).expect("parsed GRE re-checks");
                    let _ = wire::GreRepr::parse(&p);
                    packet_parser(p.payload());
                }
                L4::None => {}
            }
        }
    }
    // Every view on the raw bytes as well: none may panic after new_checked.
    if let Ok(p) = wire::ArpPacket::new_checked(data) {
        let _ = wire::ArpRepr::parse(&p);
    }
    if let Ok(p) = wire::GrePacket::new_checked(data) {
        let _ = (wire::GreRepr::parse(&p), p.payload().len());
    }
    if let Ok(p) = wire::VxlanPacket::new_checked(data) {
        let _ = (wire::VxlanRepr::parse(&p), p.payload().len());
    }
    if let Ok(p) = wire::Icmpv6Packet::new_checked(data) {
        let _ = (p.target_addr(), p.ndp_options().count(), p.data().len());
    }
    let _ = wire::walk_ipv6_ext_headers(data, wire::IpProtocol::HopByHop, wire::DEFAULT_MAX_EXT_HEADERS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The fuzz target on arbitrary bytes (what CI runs in place of `cargo fuzz run packet_parser`).
        #[test]
        fn packet_parser_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            packet_parser(&data);
        }

        /// The fuzz target on frames that start with a plausible Ethernet/IP prefix, so the random part
        /// reaches the deeper parsers.
        #[test]
        fn packet_parser_on_plausible_frames(
            ethertype in prop_oneof![Just([0x08u8, 0x00]), Just([0x86, 0xdd]), Just([0x08, 0x06]), Just([0x81, 0x00])],
            ip_first in prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
            proto in prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(47), Just(0), Just(43), Just(44), Just(60), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, ethertype[0], ethertype[1], ip_first];
            frame.extend_from_slice(&rest);
            let len = frame.len();
            if len >= 24 {
                // IPv4 protocol / IPv6 next header, and lengths that fit.
                frame[14 + 9] = proto;
                frame[14 + 6] = proto;
                let l3 = (len - 14) as u16;
                frame[14 + 2..14 + 4].copy_from_slice(&l3.to_be_bytes());
                if ip_first == 0x60 {
                    frame[14 + 4..14 + 6].copy_from_slice(&l3.saturating_sub(40).to_be_bytes());
                }
            }
            packet_parser(&frame);
        }
    }
}
