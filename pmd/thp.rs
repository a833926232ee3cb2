//! Transparent huge pages for the flow cache's arrays.
//!
//! A worker's flow cache is plain process memory (`Box`ed arrays, allocated on the worker's lcore
//! so the first touch places it on the worker's NUMA node), up to 2 GiB for 10 million flows. On
//! 4 KiB pages, a lookup that touches a bucket, a key and an entry costs up to three TLB misses;
//! on 2 MiB pages the page walks mostly disappear. Debian's kernels default to THP `madvise`
//! mode, so the arrays ask for it with `madvise(MADV_HUGEPAGE)` before they are first written
//! (`FlowCache::new_advised`): the page faults that fill them then allocate huge pages directly.

use flowtable::flow::Region;

/// The huge page size THP uses on x86-64 and arm64 with 4 KiB base pages.
const HUGE_PAGE: usize = 2 << 20;

/// Asks for transparent huge pages on the whole 2 MiB pages inside `region`. Returns the bytes
/// advised (0 for a region smaller than one huge page, or when the kernel refused: THP disabled
/// or not built in), so the caller can report what it got.
pub fn advise_huge_pages(region: Region) -> usize {
    let Some(start) = region.addr.checked_next_multiple_of(HUGE_PAGE) else { return 0 };
    let end = region.addr.saturating_add(region.len) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return 0;
    }
    // SAFETY: MADV_HUGEPAGE only sets a flag on the mappings in the range, changing neither their
    // contents nor whether they are mapped, so no memory the program can reach changes under it,
    // whatever the range (an unmapped one gets ENOMEM). The pointer is never dereferenced.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if rc == 0 {
        end - start
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtable::flow::{FlowCache, FlowCacheConfig, FlowHasher};

    /// Anonymous huge page kilobytes of the mapping holding `addr`, from /proc/self/smaps.
    fn anon_huge_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                    return kib.trim().trim_end_matches(" kB").trim().parse().unwrap();
                }
            }
        }
        panic!("no mapping holds {addr:#x}")
    }

    #[test]
    fn only_whole_huge_pages_inside_the_region_are_advised() {
        assert_eq!(advise_huge_pages(Region { addr: HUGE_PAGE + 1, len: HUGE_PAGE }), 0);
        assert_eq!(advise_huge_pages(Region { addr: 0, len: 0 }), 0);
        assert_eq!(advise_huge_pages(Region { addr: usize::MAX - 10, len: HUGE_PAGE }), 0, "no overflow");
    }

    #[test]
    fn the_flow_cache_lands_on_transparent_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        assert!(
            thp.contains("[always]") || thp.contains("[madvise]"),
            "this test needs transparent huge pages in `madvise` or `always` mode (Debian's default), found {thp:?}"
        );
        // 256 Ki slots: about 50 MiB, the keys alone 16 MiB.
        let config = FlowCacheConfig { capacity: 256 << 10, ..FlowCacheConfig::default() };
        let mut regions = Vec::new();
        let mut advised = 0;
        let cache: FlowCache<[u64; 8]> = FlowCache::new_advised(&config, FlowHasher::new(1), &mut |r| {
            regions.push(r);
            advised += advise_huge_pages(r);
        });
        assert_eq!(regions.len(), 4, "buckets, referenced bytes, keys, entries: {regions:?}");
        assert!(advised >= 32 << 20, "at least the keys' and entries' whole huge pages: {advised} bytes");
        // The keys' array, written in new_advised after the advice, sits on huge pages.
        let keys = regions[2];
        let huge = anon_huge_kib(keys.addr + keys.len / 2);
        assert!(huge >= 2048, "the keys' mapping has {huge} KiB of anonymous huge pages");
        drop(cache);
    }
}
