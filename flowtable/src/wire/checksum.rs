//! The internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are *folded but not complemented*: [`data`] and [`combine`] give the ones'-complement
//! sum of 16-bit big-endian words, and a header's checksum field holds `!sum`. A packet verifies when
//! the sum over it, checksum field included, is `0xffff`.
//!
//! Incremental updates follow RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`, which (unlike RFC 1141's
//! equation) never turns a valid checksum into the other representation of zero except when the
//! covered data becomes all zeros.

/// Folds a wide ones'-complement accumulator to 16 bits (end-around carry).
#[inline]
pub const fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Ones'-complement sum of `data` as big-endian 16-bit words, an odd last byte padded with zero.
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    fold(acc)
}

/// Ones'-complement sum of partial sums (each from [`data`] over an even-length piece, or a pseudo-header).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The checksum field value for data whose sum (with the field zeroed) is `sum`.
#[inline]
pub const fn finish(sum: u16) -> u16 {
    !sum
}

/// Whether a 20-byte header (IPv4 without options) verifies, i.e. [`data`] over it is `0xffff`,
/// for the per-packet fast paths: five 32-bit loads, four adds and one remainder, where [`data`]
/// folds in a loop.
///
/// Why it is exact: [`data`] is the plain sum `S` of the 16-bit words reduced modulo `0xffff`,
/// written `0xffff` for a non-zero multiple, so the header verifies exactly when `S` is a non-zero
/// multiple of `0xffff`. A 32-bit word is `hi * 2^16 + lo` and `2^16 = 1 (mod 0xffff)`, so the sum
/// `T` of the five 32-bit words is congruent to `S`, and zero only when every byte is. The words
/// are loaded in native order: a byte-swapped 16-bit word is congruent to 256 times the word, and
/// 256 is prime to `0xffff`, so that changes nothing either (RFC 1071 2.B). `T - 1` (wrapping)
/// leaves `0xfffe` modulo `0xffff` exactly for the non-zero multiples: `0 - 1 = 2^64 - 1`, itself a
/// multiple.
#[inline(always)]
pub fn header20_verifies(h: &[u8; 20]) -> bool {
    let word = |at: usize| u64::from(u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]));
    let sum = word(0) + word(4) + word(8) + word(12) + word(16);
    sum.wrapping_sub(1) % 0xffff == 0xfffe
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word covered by checksum `hc` changes from `old` to `new`.
#[inline]
pub const fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold_small((!hc) as u64 + (!old) as u64 + new as u64)
}

/// [`fold`] for a sum below 2^32 (a handful of 16-bit terms): two end-around carries always
/// suffice (the first leaves at most 0x1fffe, the second at most 0xffff), so no loop.
#[inline(always)]
const fn fold_small(sum: u64) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// [`update16`] for a 32-bit field (two words), e.g. an IPv4 address or a TCP sequence number.
#[inline]
pub const fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let sum = (!hc) as u64
        + (!(old >> 16) as u16) as u64
        + (!(old as u16)) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold_small(sum)
}

/// [`update16`] for an even-length field given as bytes (`N` even, checked at compile time),
/// e.g. a 16-byte IPv6 address or a 6-byte MAC.
#[inline]
pub fn update_bytes<const N: usize>(hc: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    const { assert!(N.is_multiple_of(2), "update_bytes needs whole 16-bit words") };
    let mut sum = u64::from(!hc);
    let mut i = 0;
    while i < N {
        sum += u64::from(!u16::from_be_bytes([old[i], old[i + 1]]));
        sum += u64::from(u16::from_be_bytes([new[i], new[i + 1]]));
        i += 2;
    }
    !fold(sum)
}

/// The same update for a single byte at an even (`high == true`) or odd offset from the start of the
/// checksummed data, e.g. the IPv4 TTL (offset 8, high byte of its word).
#[inline]
pub const fn update8(hc: u16, old: u8, new: u8, high: bool) -> u16 {
    if high {
        update16(hc, (old as u16) << 8, (new as u16) << 8)
    } else {
        update16(hc, old as u16, new as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fold_small_edges() {
        for sum in [0, 0xffff, 0x1_0000, 0x1_fffe, 0x1_ffff, 0xffff_ffff, 3 * 0xffff] {
            assert_eq!(fold_small(sum), fold(sum), "{sum:#x}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(finish(data(&bytes)), 0x220d);
        // Odd length pads a zero byte.
        assert_eq!(data(&[0x01]), 0x0100);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn header20_verifies_is_data_equal_to_ffff() {
        let known = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(header20_verifies(&known));
        let mut bad = known;
        bad[19] ^= 1;
        assert!(!header20_verifies(&bad));
        // The two representations of zero: all zero bytes sum to +0 (not valid), all ones to -0.
        assert!(!header20_verifies(&[0; 20]));
        assert!(header20_verifies(&[0xff; 20]));
        // A checksum field of 0xffff where 0x0000 is due (the same sum, the other zero).
        let mut z = [0u8; 20];
        z[0] = 0x45;
        let field = finish(data(&z)).to_be_bytes();
        z[10..12].copy_from_slice(&field);
        assert!(header20_verifies(&z));
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn known_ipv4_header() {
        // Wikipedia / common example header, checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(data(&h), 0xffff);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(finish(data(&z)), 0xb861);
    }

    fn full(buf: &[u8], csum_at: usize) -> u16 {
        let mut b = buf.to_vec();
        b[csum_at] = 0;
        b[csum_at + 1] = 0;
        finish(data(&b))
    }

    proptest! {
        #[test]
        fn header20_verifies_equals_data(mut h in any::<[u8; 20]>(), fix in any::<bool>()) {
            if fix {
                // Half the cases valid: the word at 10 set to what makes the sum 0xffff.
                h[10] = 0;
                h[11] = 0;
                let field = finish(data(&h)).to_be_bytes();
                h[10..12].copy_from_slice(&field);
            }
            prop_assert_eq!(header20_verifies(&h), data(&h) == 0xffff);
        }

        #[test]
        fn fold_small_equals_fold(sum in any::<u32>()) {
            prop_assert_eq!(fold_small(u64::from(sum)), fold(u64::from(sum)));
        }

        #[test]
        fn chunked_sum_equals_word_sum(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut acc: u64 = 0;
            for c in bytes.chunks(2) {
                let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
                acc += u64::from(w);
            }
            prop_assert_eq!(data(&bytes), fold(acc));
        }

        #[test]
        fn split_sums_combine(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..150) {
            let cut = (cut * 2).min(bytes.len() & !1);
            prop_assert_eq!(combine(&[data(&bytes[..cut]), data(&bytes[cut..])]), data(&bytes));
        }

        /// Incremental update equals full recomputation whenever the data is not all zeros (where the
        /// two representations of zero differ and both verify).
        #[test]
        fn incremental_equals_full(
            mut words in proptest::collection::vec(any::<u16>(), 4..64),
            at in any::<proptest::sample::Index>(),
            w16 in any::<u16>(),
            w32 in any::<u32>(),
            w128 in any::<[u8; 16]>(),
        ) {
            words[0] = 0; // checksum field
            let mut buf: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            buf.extend_from_slice(&[0u8; 16]);
            let n = buf.len();
            let hc = full(&buf, 0);
            buf[0..2].copy_from_slice(&hc.to_be_bytes());
            prop_assert_eq!(data(&buf), 0xffff);

            // 16-bit field at an even offset past the checksum.
            let i = 2 + 2 * at.index((n - 18) / 2 - 1);
            let old = u16::from_be_bytes([buf[i], buf[i + 1]]);
            let mut b16 = buf.clone();
            b16[i..i + 2].copy_from_slice(&w16.to_be_bytes());
            let inc = update16(hc, old, w16);
            if b16[2..].iter().any(|&b| b != 0) {
                prop_assert_eq!(inc, full(&b16, 0));
            }
            b16[0..2].copy_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(data(&b16) % 0xffff, 0);

            // 32-bit field at the end-16 position.
            let j = n - 20;
            let old32 = u32::from_be_bytes([buf[j], buf[j + 1], buf[j + 2], buf[j + 3]]);
            let mut b32 = buf.clone();
            b32[j..j + 4].copy_from_slice(&w32.to_be_bytes());
            let inc = update32(hc, old32, w32);
            if b32[2..].iter().any(|&b| b != 0) {
                prop_assert_eq!(inc, full(&b32, 0));
            }

            // 128-bit field (IPv6 address) in the last 16 bytes.
            let old128: [u8; 16] = buf[n - 16..].try_into().unwrap();
            let mut b128 = buf.clone();
            b128[n - 16..].copy_from_slice(&w128);
            let inc = update_bytes(hc, &old128, &w128);
            if b128[2..].iter().any(|&b| b != 0) {
                prop_assert_eq!(inc, full(&b128, 0));
            }

            // Single bytes, high and low halves.
            let mut b8 = buf.clone();
            let (oh, ol) = (b8[i], b8[i + 1]);
            b8[i] = w16 as u8;
            let inc = update8(hc, oh, w16 as u8, true);
            b8[i + 1] = (w16 >> 8) as u8;
            let inc = update8(inc, ol, (w16 >> 8) as u8, false);
            if b8[2..].iter().any(|&b| b != 0) {
                prop_assert_eq!(inc, full(&b8, 0));
            }
        }
    }
}
