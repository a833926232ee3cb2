//! How big things are: descriptor rings, burst size, and the jumbo mbuf pool.
//!
//! Pure arithmetic, shared by the data plane and by `midogw check-config`, so the memory a config
//! asks for is checked with the same numbers the pool is later created with.

/// Packets moved per RX/TX call: DPDK's customary burst.
pub const BURST: usize = 32;
/// RX descriptors per queue.
pub const RX_DESCRIPTORS: u16 = 1024;
/// TX descriptors per queue.
pub const TX_DESCRIPTORS: u16 = 1024;
/// Per-lcore mempool cache: must be <= CONFIG_RTE_MEMPOOL_CACHE_MAX_SIZE (512) and ideally divide the
/// pool size; 256 is what l3fwd uses.
pub const MEMPOOL_CACHE: u32 = 256;

/// Largest MTU a port may be given: the seeds' jumbo frames.
pub const JUMBO_MTU: u16 = 9000;
/// Smallest MTU allowed on a port: IPv4's minimum (RFC 791).
pub const MIN_MTU: u16 = 68;
/// Ethernet header, one 802.1Q tag and the FCS some drivers leave in place.
pub const L2_OVERHEAD: u16 = 14 + 4 + 4;
/// The largest encapsulation a packet gets on the way out: VXLAN over IPv6 (outer Ethernet 14,
/// IPv6 40, UDP 8, VXLAN 8). GRE (46) and VXLAN over IPv4 (50) fit inside.
pub const MAX_ENCAP: u16 = 70;
/// Headroom in front of the packet data; encapsulation is prepended into it.
pub const HEADROOM: u16 = 128;
/// Data room of every mbuf: headroom plus a whole jumbo frame plus encapsulation, rounded up to a
/// cache line, so no frame ever needs a second segment.
pub const DATA_ROOM: u16 = round_up(HEADROOM + JUMBO_MTU + L2_OVERHEAD + MAX_ENCAP, 64);

/// Bytes of `struct rte_mbuf` (two cache lines) plus the mempool's per-object header and trailer,
/// rounded up: what one mbuf costs beyond its data room.
pub const MBUF_OVERHEAD: u64 = 128 + 64;
/// Memory EAL and the drivers use for themselves besides our pool (ring memory, per-port state,
/// the memzone table); measured on DPDK 22.11 with virtual devices, with margin.
pub const EAL_OVERHEAD_BYTES: u64 = 96 << 20;

const fn round_up(value: u16, to: u16) -> u16 {
    value.div_ceil(to) * to
}

/// Largest frame (without FCS) a port with this MTU receives.
pub const fn max_frame(mtu: u16) -> u32 {
    mtu as u32 + 14 + 4
}

/// The pool size a set of ports and workers needs so that every descriptor ring can be full, every
/// worker's mempool cache can be full and every worker can hold a burst in flight, rounded to the
/// 2^n - 1 that the ring-backed mempool uses best.
pub fn default_mbufs(total_rx_queues: u32, total_tx_queues: u32, workers: u32) -> u32 {
    let needed = total_rx_queues * u32::from(RX_DESCRIPTORS)
        + total_tx_queues * u32::from(TX_DESCRIPTORS)
        + workers.max(1) * (MEMPOOL_CACHE + 2 * BURST as u32)
        + 1024;
    let needed = needed.max(8191);
    (needed + 1).next_power_of_two() - 1
}

/// Bytes a pool of `mbufs` jumbo mbufs occupies.
pub fn pool_bytes(mbufs: u32) -> u64 {
    u64::from(mbufs) * (u64::from(DATA_ROOM) + MBUF_OVERHEAD)
}

/// Memory EAL must be given (`-m` with `--no-huge`, or free hugepages) for a pool of `mbufs`.
pub fn required_memory_bytes(mbufs: u32) -> u64 {
    pool_bytes(mbufs) + EAL_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_room_holds_a_jumbo_frame_with_encapsulation_in_one_segment() {
        assert!(u32::from(DATA_ROOM) >= u32::from(HEADROOM) + max_frame(JUMBO_MTU) + u32::from(MAX_ENCAP));
        assert_eq!(DATA_ROOM % 64, 0);
    }

    #[test]
    fn default_pool_fills_every_ring_and_cache() {
        let n = default_mbufs(4, 4, 2);
        assert!(n >= 4 * 1024 + 4 * 1024 + 2 * (256 + 64));
        assert_eq!((n + 1).count_ones(), 1, "2^n - 1");
        assert_eq!(default_mbufs(0, 0, 0), 8191);
    }
}
