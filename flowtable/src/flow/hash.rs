//! The flow table's hash: a seeded folded-multiply hash over the key's eight words.
//!
//! # Why this one
//!
//! The key is a fixed 64 bytes, so a general-purpose streaming hasher (`Hasher::write` per field,
//! length padding, finalisation) is wasted work. The core of foldhash and wyhash, the *folded
//! multiply* (`lo ^ hi` of a 64x64->128-bit product), mixes two words in one `mul` instruction; four
//! of them absorb the eight words (each XORed with its own secret), a fifth combines them:
//! five multiplies and about twenty ALU instructions, no branches, no loop, no table.
//!
//! A compact key (untagged IPv4, whose last four words are 0: see the key's module docs) is hashed
//! on its first four words only: two multiplies absorb them and their results are XORed, with the
//! same secrets; the two forms never collide as keys (they differ in word 2), so they need not be
//! told apart in the hash. A folded multiply of two secret-keyed words is already well mixed in
//! every output bit (the spread and avalanche tests hold it), so the compact form spends no third
//! multiply on combining, as foldhash's fast hasher spends none on short input: that multiply was
//! 6 of the cache-hit path's instructions.
//!
//! DoS: every core draws its own secrets (ten words expanded from a 64-bit seed with splitmix64),
//! so which bucket a key lands in cannot be computed off-line, and what one core's table reveals
//! says nothing about another's. That is the same, modest, guarantee as foldhash's or ahash's
//! randomly-seeded modes: not a PRF (use SipHash for that, at 3-4 times the cost), but enough here
//! because the table does not depend on it for its bounds. A bucket holds a fixed number of entries and
//! a lookup probes at most two buckets, so colliding keys cannot build a long chain; the worst they
//! can do is evict each other, and the secret seed keeps an attacker from aiming those evictions at a
//! chosen victim flow. `Debug` never prints the secrets.
//!
//! Why not a dependency: `foldhash::fast::FoldHasher` reaches the same mixing through the `Hasher`
//! trait, field by field; written out over a fixed array it is 20 lines that the compiler fully
//! unrolls, with no crate to keep.

use core::fmt;
use std::hash::BuildHasher;

use super::key::FlowKey;

/// The seeded hash that indexes a core's flow table. One per core; see the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct FlowHasher {
    secrets: [u64; 10],
}

/// One step of splitmix64 (Steele, Lea, Flood 2014), used only to expand a seed into secrets.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The low and high halves of the 128-bit product, XORed.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl FlowHasher {
    /// A hasher with secrets derived from `seed`. Deterministic: tests and replays pass a fixed seed;
    /// a running core passes a random one (from `rte_rand`, or [`FlowHasher::random`]).
    pub fn new(seed: u64) -> FlowHasher {
        let mut state = seed;
        FlowHasher { secrets: core::array::from_fn(|_| splitmix64(&mut state)) }
    }

    /// A hasher seeded from the operating system's randomness (through the standard library's
    /// `RandomState`, which draws its keys from the OS once per thread). Call it at set-up, not on
    /// the fast path.
    pub fn random() -> FlowHasher {
        FlowHasher::new(std::collections::hash_map::RandomState::new().hash_one(0x6d69_646f_6777_u64))
    }

    /// The 64-bit hash of a key. Same key and seed, same hash, on any machine.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        if key.is_compact() {
            self.hash_compact(key.words())
        } else {
            self.hash_words(key.words())
        }
    }

    #[inline(always)]
    fn hash_compact(&self, w: &[u64; 8]) -> u64 {
        let s = &self.secrets;
        let a = folded_multiply(w[0] ^ s[0], w[1] ^ s[1]);
        let b = folded_multiply(w[2] ^ s[2], w[3] ^ s[3]);
        a ^ b
    }

    #[inline(always)]
    fn hash_words(&self, w: &[u64; 8]) -> u64 {
        let s = &self.secrets;
        let a = folded_multiply(w[0] ^ s[0], w[1] ^ s[1]);
        let b = folded_multiply(w[2] ^ s[2], w[3] ^ s[3]);
        let c = folded_multiply(w[4] ^ s[4], w[5] ^ s[5]);
        let d = folded_multiply(w[6] ^ s[6], w[7] ^ s[7]);
        folded_multiply(a.wrapping_add(c) ^ s[8], b.wrapping_add(d) ^ s[9])
    }
}

/// The same seeded folded multiply for the simulation's small per-core tables (neighbours by
/// port and address, MACs by bridge), whose keys are two or three words: which bucket a key lands
/// in depends on the core's secret, so a VM choosing source MACs, or a scan choosing addresses,
/// cannot aim entries at one bucket to evict a victim's. One or two multiplies.
#[derive(Clone, PartialEq, Eq)]
pub struct ShortHasher {
    secrets: [u64; 4],
}

impl ShortHasher {
    /// Secrets derived from `seed` (deterministic, like [`FlowHasher::new`]).
    pub fn new(seed: u64) -> ShortHasher {
        let mut state = seed ^ 0x7368_6f72_7468_6173;
        ShortHasher { secrets: core::array::from_fn(|_| splitmix64(&mut state)) }
    }

    /// The hash of two words; well mixed in every bit.
    #[inline]
    pub fn hash2(&self, a: u64, b: u64) -> u64 {
        folded_multiply(a ^ self.secrets[0], b ^ self.secrets[1])
    }

    /// The hash of three words.
    #[inline]
    pub fn hash3(&self, a: u64, b: u64, c: u64) -> u64 {
        folded_multiply(self.hash2(a, b) ^ self.secrets[2], c ^ self.secrets[3])
    }
}

impl fmt::Debug for ShortHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShortHasher { .. }")
    }
}

impl fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlowHasher { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        EtherType, EthernetAddress, Fragment, Headers, IpProtocol, Ipv4Fields, Ipv4OptionsClass, VlanTag, L3, L4,
    };

    fn key(sport: u16, dst_last: u8) -> FlowKey {
        FlowKey::from_headers(0, &headers(sport, dst_last))
    }

    /// The same flow behind an 802.1Q tag: a general (eight-word) key.
    fn tagged_key(sport: u16, dst_last: u8) -> FlowKey {
        FlowKey::from_headers(0, &Headers { vlan: Some(VlanTag::from_tci(5)), ..headers(sport, dst_last) })
    }

    fn headers(sport: u16, dst_last: u8) -> Headers {
        Headers {
            eth_dst: EthernetAddress([2, 0, 0, 0, 0, 1]),
            eth_src: EthernetAddress([2, 0, 0, 0, 0, 2]),
            vlan: None,
            ethertype: EtherType::Ipv4,
            l3_offset: 14,
            l3: L3::Ipv4(Ipv4Fields {
                src: [10, 0, 0, 1].into(),
                dst: [10, 0, 0, dst_last].into(),
                protocol: IpProtocol::Udp,
                tos: 0,
                ttl: 64,
                ident: 0,
                dont_frag: false,
                fragment: Fragment::Unfragmented,
                options: Ipv4OptionsClass::None,
            }),
            l4_offset: 34,
            l4: L4::Udp { src_port: sport, dst_port: 53 },
            payload_offset: 42,
            end: 42,
        }
    }

    #[test]
    fn deterministic_per_seed_and_different_across_seeds() {
        let (a, b) = (FlowHasher::new(1), FlowHasher::new(2));
        let k = key(1000, 2);
        assert_eq!(a.hash(&k), FlowHasher::new(1).hash(&k));
        assert_ne!(a.hash(&k), b.hash(&k));
        assert_ne!(FlowHasher::random().hash(&k), FlowHasher::random().hash(&k));
        assert_eq!(format!("{a:?}"), "FlowHasher { .. }");
    }

    /// Keys that differ in one port bit or one address byte spread evenly over buckets: 65536
    /// sequential source ports into 1024 buckets (64 expected each) stay within a few deviations.
    #[test]
    fn sequential_keys_spread_evenly() {
        for seed in [0, 1, 0xdead_beef] {
            let h = FlowHasher::new(seed);
            let mut count = vec![0u32; 1024];
            for p in 0..=u16::MAX {
                let x = h.hash(&key(p, 2));
                count[((u128::from(x) * 1024) >> 64) as usize] += 1;
            }
            let (min, max) = (count.iter().min().unwrap(), count.iter().max().unwrap());
            assert!(*min >= 30 && *max <= 100, "seed {seed}: {min}..{max}");
            let chi2: f64 = count.iter().map(|&c| (f64::from(c) - 64.0).powi(2) / 64.0).sum();
            // 1023 degrees of freedom: mean 1023, sd ~45; allow 5 sd.
            assert!(chi2 < 1023.0 + 5.0 * 45.0, "seed {seed}: chi2 {chi2}");
        }
    }

    /// Each input bit flips about half the output bits (avalanche), averaged over many keys: all
    /// eight words of general keys, the four that count of compact ones.
    #[test]
    fn avalanche() {
        let h = FlowHasher::new(42);
        let compact: Vec<FlowKey> = (0..64).map(|i| key(i * 977, 9)).collect();
        let general: Vec<FlowKey> = (0..64).map(|i| tagged_key(i * 977, 9)).collect();
        assert!(compact.iter().all(FlowKey::is_compact) && !general.iter().any(FlowKey::is_compact));
        type HashWords = fn(&FlowHasher, &[u64; 8]) -> u64;
        let cases: [(&[FlowKey], usize, HashWords); 2] =
            [(&compact, 4, FlowHasher::hash_compact), (&general, 8, FlowHasher::hash_words)];
        for (base, words, hash_words) in cases {
            for word in 0..words {
                for bit in [0, 13, 31, 47, 63] {
                    let mut flipped = 0u32;
                    for k in base {
                        let mut w = *k.words();
                        w[word] ^= 1 << bit;
                        flipped += (h.hash(k) ^ hash_words(&h, &w)).count_ones();
                    }
                    let mean = f64::from(flipped) / base.len() as f64;
                    assert!((26.0..38.0).contains(&mean), "{words} words, word {word} bit {bit}: {mean}");
                }
            }
        }
    }

    /// Sequential keys of either form spread evenly (compact keys are covered above).
    #[test]
    fn general_keys_spread_evenly() {
        let h = FlowHasher::new(7);
        let mut count = vec![0u32; 1024];
        for p in 0..=u16::MAX {
            count[((u128::from(h.hash(&tagged_key(p, 2))) * 1024) >> 64) as usize] += 1;
        }
        let chi2: f64 = count.iter().map(|&c| (f64::from(c) - 64.0).powi(2) / 64.0).sum();
        assert!(chi2 < 1023.0 + 5.0 * 45.0, "chi2 {chi2}");
    }
}
