//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624), on byte slices.
//!
//! Deliberately independent of `flowtable::wire::checksum`: frames the generator builds are what
//! checks the appliance's own checksum and rewrite code, so they must not share its bugs.

/// Ones' complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), not yet folded. Sums of pieces that start at even offsets may be added together.
pub fn sum(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut acc: u64 = chunks.by_ref().map(|w| u64::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (end-around carry).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for data whose (unfolded) sum is `acc`.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The checksum of `data` (checksum field zeroed by the caller).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// The IPv4 pseudo-header sum for TCP/UDP (RFC 793, RFC 768).
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, l4_len: u16) -> u64 {
    sum(&src) + sum(&dst) + u64::from(protocol) + u64::from(l4_len)
}

/// The IPv6 pseudo-header sum for upper layers (RFC 8200 section 8.1).
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> u64 {
    sum(&src) + sum(&dst) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff) + u64::from(next_header)
}

/// RFC 1624 eqn. 3: the new checksum after words summing to `removed` were replaced by words
/// summing to `added` (both as returned by [`sum`], over 16-bit aligned fields).
pub fn adjust(csum: u16, removed: u64, added: u64) -> u16 {
    let acc = u64::from(!csum) + u64::from(!fold(removed)) + added;
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A textbook header: 192.168.0.1 -> 192.168.0.199, UDP, total length 115, DF, TTL 64.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(fold(sum(&header)), 0xffff, "a correct header sums to all ones");
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn adjust_matches_recomputation() {
        let mut data = [0x45u8, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let csum = checksum(&data);
        let old = data[12..16].to_vec();
        data[12..16].copy_from_slice(&[172, 16, 255, 254]);
        assert_eq!(adjust(csum, sum(&old), sum(&data[12..16])), checksum(&data));
    }

    proptest::proptest! {
        #[test]
        fn adjust_equals_full_checksum(mut data in proptest::collection::vec(proptest::prelude::any::<u8>(), 2..200),
                                       at in 0usize..100, new in proptest::prelude::any::<[u8; 6]>()) {
            if data.len() % 2 == 1 { data.push(0); }
            let at = (at * 2) % data.len();
            let end = (at + 6).min(data.len());
            let csum = checksum(&data);
            let old = sum(&data[at..end]);
            data[at..end].copy_from_slice(&new[..end - at]);
            let adjusted = adjust(csum, old, sum(&data[at..end]));
            // 0x0000 and 0xffff are the same number in ones' complement.
            let full = checksum(&data);
            proptest::prop_assert!(adjusted == full || (adjusted | full) == 0xffff && (adjusted & full) == 0,
                "adjusted {adjusted:#06x} full {full:#06x}");
        }
    }
}
