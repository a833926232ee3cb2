//! Software prefetch: the one CPU hint the burst loop needs that safe Rust does not offer.
//!
//! The pipeline looks a whole burst's flows up in stages (keys and hashes, then candidate slots,
//! then the lookups) and asks for each stage's cache lines ahead of the next, so that the misses
//! of thirty-two packets overlap instead of following one another (DPDK's l3fwd and VPP do the
//! same with `rte_prefetch0` / `CLIB_PREFETCH`).

/// Asks the CPU to bring the cache line holding `addr` into every cache level. Any address is
/// fine, valid or not.
#[inline(always)]
pub(crate) fn prefetch(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults (not even on an unmapped or null address),
    // writes nothing and has no effect the program can observe besides timing; the pointer is
    // never dereferenced by Rust code here.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
