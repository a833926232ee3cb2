//! Packet buffers as owned Rust values, and bursts of them for the fast path.
//!
//! An [`Mbuf`] frees itself on drop. A [`Burst`] holds up to [`BURST`] mbufs as raw pointers so that
//! RX, TX and freeing each cost one DPDK call per burst, not per packet.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::ffi;
use crate::sizing::BURST;

/// One packet buffer (always a single segment: pools are sized for jumbo frames).
#[derive(Debug)]
pub struct Mbuf<'pool> {
    raw: NonNull<ffi::rte_mbuf>,
    _pool: PhantomData<&'pool ()>,
}

// SAFETY: an Mbuf is the only owner of its buffer; moving it to another lcore moves ownership,
// and the mempool it returns to on drop is multi-producer safe.
unsafe impl Send for Mbuf<'_> {}

impl<'pool> Mbuf<'pool> {
    /// # Safety
    /// `raw` must be a valid mbuf that the caller owns exclusively (refcnt 1, not in any ring or
    /// burst), from a pool that outlives `'pool`.
    pub(crate) unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Self {
        Mbuf { raw, _pool: PhantomData }
    }

    pub(crate) fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    fn header(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf (constructor contract).
        unsafe { self.raw.as_ref() }
    }

    fn header_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively (constructor contract) and `&mut self` keeps
        // every other reference to it away for the borrow.
        unsafe { self.raw.as_mut() }
    }

    /// Packet bytes.
    pub fn data(&self) -> &[u8] {
        let h = self.header();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (DPDK invariant
        // for single-segment mbufs), and we hold the only reference.
        unsafe { std::slice::from_raw_parts((h.buf_addr as *const u8).add(h.data_off as usize), h.data_len as usize) }
    }

    /// Packet bytes, writable in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let h = self.header();
            (h.buf_addr as *mut u8, h.data_off as usize, h.data_len as usize)
        };
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    /// Packet length in bytes.
    pub fn len(&self) -> usize {
        self.header().data_len as usize
    }

    /// True for an empty packet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The DPDK port the packet was received on.
    pub fn port(&self) -> u16 {
        self.header().port
    }

    /// Bytes free in front of the packet (room for encapsulation).
    pub fn headroom(&self) -> u16 {
        // SAFETY: valid, owned mbuf.
        unsafe { ffi::midogw_pktmbuf_headroom(self.raw.as_ptr()) }
    }

    /// Bytes free after the packet.
    pub fn tailroom(&self) -> u16 {
        // SAFETY: valid, owned mbuf.
        unsafe { ffi::midogw_pktmbuf_tailroom(self.raw.as_ptr()) }
    }

    /// Grows the packet at the tail by `len` bytes and returns them; `None` if there is no room.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: valid, owned mbuf; DPDK checks the tailroom and returns NULL when short.
        let p = unsafe { ffi::midogw_pktmbuf_append(self.raw.as_ptr(), len) };
        // SAFETY: on success `p .. p+len` is inside the buffer and now part of our packet.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len as usize) })
    }

    /// Grows the packet at the front by `len` bytes (into the headroom) and returns them; `None`
    /// if the headroom is shorter. `rte_pktmbuf_prepend` in Rust (a call less per encapsulated
    /// packet): the same check and the same three header fields.
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        let h = self.header_mut();
        // The headroom is data_off (rte_pktmbuf_headroom).
        if len > h.data_off {
            return None;
        }
        h.data_off -= len;
        // data_off + data_len <= buf_len (a u16) held before, so neither sum overflows.
        h.data_len = h.data_len.wrapping_add(len);
        h.pkt_len = h.pkt_len.wrapping_add(u32::from(len));
        let start = h.buf_addr as *mut u8;
        let off = usize::from(h.data_off);
        // SAFETY: the `len` bytes at the new data_off were headroom, inside the mbuf's buffer, and
        // are now the front of our packet; `&mut self` makes the access exclusive.
        Some(unsafe { std::slice::from_raw_parts_mut(start.add(off), usize::from(len)) })
    }

    /// Removes `len` bytes from the front (decapsulation). False, and the packet unchanged, if it
    /// is shorter. `rte_pktmbuf_adj` in Rust, without a call.
    #[inline]
    pub fn strip_front(&mut self, len: u16) -> bool {
        strip_front(self.header_mut(), len)
    }

    /// `rte_pktmbuf_prepend` itself, through the C shim: what [`Mbuf::prepend`] must match
    /// (tests compare the two on real mbufs).
    #[doc(hidden)]
    pub fn dpdk_prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: valid, owned mbuf; DPDK checks the headroom and returns NULL when short.
        let p = unsafe { ffi::midogw_pktmbuf_prepend(self.raw.as_ptr(), len) };
        // SAFETY: on success `p .. p+len` is inside the buffer and now part of our packet.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len as usize) })
    }

    /// `rte_pktmbuf_adj` itself, through the C shim: what [`Mbuf::strip_front`] must match.
    #[doc(hidden)]
    pub fn dpdk_strip_front(&mut self, len: u16) -> bool {
        // SAFETY: valid, owned mbuf; DPDK refuses (NULL) when len > data_len.
        !unsafe { ffi::midogw_pktmbuf_adj(self.raw.as_ptr(), len) }.is_null()
    }

    /// The mbuf's `pkt_len` (equal to [`Mbuf::len`] for the single-segment mbufs used here).
    pub fn pkt_len(&self) -> u32 {
        self.header().pkt_len
    }

    /// Removes `len` bytes from the tail. False if the packet is shorter.
    pub fn trim(&mut self, len: u16) -> bool {
        // SAFETY: valid, owned mbuf; DPDK refuses (-1) when len > data_len.
        unsafe { ffi::midogw_pktmbuf_trim(self.raw.as_ptr(), len) == 0 }
    }
}

impl Drop for Mbuf<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it goes back to its pool and is never touched again.
        unsafe { ffi::midogw_pktmbuf_free(self.raw.as_ptr()) };
    }
}

/// `rte_pktmbuf_adj` for a single-segment mbuf (pkt_len == data_len): the same check and the same
/// three header fields, without a call.
#[inline(always)]
fn strip_front(h: &mut ffi::rte_mbuf, len: u16) -> bool {
    if len > h.data_len {
        return false;
    }
    h.data_len -= len;
    // data_off + data_len <= buf_len (a u16): the new offset fits.
    h.data_off = h.data_off.wrapping_add(len);
    h.pkt_len = h.pkt_len.wrapping_sub(u32::from(len));
    true
}

/// Up to [`BURST`] owned mbufs: what one RX call returns and one TX call sends. Whatever is still
/// in a burst when it is cleared or dropped goes back to the pool in one bulk call.
pub struct Burst<'pool> {
    len: usize,
    pkts: [*mut ffi::rte_mbuf; BURST],
    _pool: PhantomData<&'pool ()>,
}

impl Default for Burst<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Burst<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).finish()
    }
}

/// The payload of a burst's mbuf, for as long as the caller borrows the burst.
///
/// # Safety
/// `raw` is a valid single-segment mbuf the burst owns, and the burst stays borrowed (shared) for
/// `'a`: then `buf_addr + data_off .. + data_len` lies inside its buffer (DPDK invariant) and
/// nothing writes it meanwhile.
#[inline(always)]
unsafe fn payload<'a>(raw: *mut ffi::rte_mbuf) -> &'a [u8] {
    // SAFETY: the caller's contract above.
    unsafe {
        let h = &*raw;
        std::slice::from_raw_parts((h.buf_addr as *const u8).add(h.data_off as usize), h.data_len as usize)
    }
}

/// What the device found of a received frame's IPv4 header checksum (`RTE_MBUF_F_RX_IP_CKSUM_*`),
/// on a queue whose device verifies them ([`RxQueue::verifies_ipv4_checksums`](crate::RxQueue::verifies_ipv4_checksums)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Checksum {
    /// Not verified (not IPv4, or the device did not look, or "none": the header's integrity
    /// known but its checksum field not right): the worker checks it in software.
    Unknown,
    /// Verified, right.
    Good,
    /// Verified, wrong: the frame is dropped as malformed.
    Bad,
}

impl Ipv4Checksum {
    /// The verdict in an mbuf's offload flags.
    #[inline(always)]
    fn from_flags(ol_flags: u64) -> Ipv4Checksum {
        const MASK: u64 = ffi::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
        match ol_flags & MASK {
            f if f == u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_GOOD) => Ipv4Checksum::Good,
            f if f == u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_BAD) => Ipv4Checksum::Bad,
            _ => Ipv4Checksum::Unknown,
        }
    }
}

impl<'pool> Burst<'pool> {
    /// An empty burst.
    pub const fn new() -> Self {
        Burst { len: 0, pkts: [std::ptr::null_mut(); BURST], _pool: PhantomData }
    }

    /// Number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no more mbufs fit.
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Adds an owned mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf<'pool>) -> Result<(), Mbuf<'pool>> {
        // One compare: a full burst has no slot at `len`.
        let Some(slot) = self.pkts.get_mut(self.len) else {
            return Err(m);
        };
        *slot = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Takes the last mbuf out as an owned value.
    pub fn pop(&mut self) -> Option<Mbuf<'pool>> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let raw = self.pkts[self.len];
        // SAFETY: every pointer below `len` is a valid mbuf owned by this burst; we hand its
        // ownership over and shrink the burst so it is not freed twice.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(raw)) })
    }

    /// Hands every mbuf, in order, to `f` as an owned value and leaves the burst empty.
    pub fn drain(&mut self, mut f: impl FnMut(Mbuf<'pool>)) {
        /// The burst's slots while they are handed over, each nulled as its mbuf goes: if `f`
        /// panics (a worker's panic is caught and reported), the mbufs not handed over yet go
        /// back to the pool instead of leaking.
        struct Rest<'a>(&'a mut [*mut ffi::rte_mbuf]);
        impl Drop for Rest<'_> {
            fn drop(&mut self) {
                // SAFETY: the non-null pointers are valid mbufs the burst owned and nobody was
                // given; rte_pktmbuf_free_bulk skips null ones.
                unsafe { ffi::rte_pktmbuf_free_bulk(self.0.as_mut_ptr(), self.0.len() as u32) };
            }
        }
        let len = self.len;
        // Empty first: each mbuf is either handed over or freed by `Rest`, never both.
        self.len = 0;
        let rest = Rest(&mut self.pkts[..len]);
        for slot in rest.0.iter_mut() {
            let raw = std::mem::replace(slot, std::ptr::null_mut());
            // SAFETY: the first `len` pointers were valid mbufs owned by the burst; each is handed
            // over exactly once, its slot nulled first.
            f(unsafe { Mbuf::from_raw(NonNull::new_unchecked(raw)) });
        }
        // All handed over: nothing for `Rest` to free (and no call to make).
        std::mem::forget(rest);
    }

    /// The payload of every mbuf, in order ([`Burst::data`] without an index to check).
    #[inline(always)]
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        // SAFETY: pointers below `len` are valid mbufs owned by the burst, borrowed with it.
        self.pkts[..self.len.min(BURST)].iter().map(|&raw| unsafe { payload(raw) })
    }

    /// [`Burst::frames`], each with what the device found of its IPv4 header checksum.
    #[inline(always)]
    pub fn frames_with_ipv4_checksum(&self) -> impl Iterator<Item = (&[u8], Ipv4Checksum)> + '_ {
        // SAFETY: pointers below `len` are valid mbufs owned by the burst, borrowed with it; the
        // flags are plain data in the mbuf header, which nothing writes meanwhile.
        self.pkts[..self.len.min(BURST)]
            .iter()
            .map(|&raw| unsafe { (payload(raw), Ipv4Checksum::from_flags((*raw).ol_flags)) })
    }

    /// What the device found of mbuf `i`'s IPv4 header checksum.
    #[inline(always)]
    pub fn ipv4_checksum(&self, i: usize) -> Ipv4Checksum {
        assert!(i < self.len, "burst index out of range");
        // SAFETY: pointers below `len` are valid mbufs owned by the burst; the flags are plain
        // data in the mbuf header.
        Ipv4Checksum::from_flags(unsafe { (*self.pkts[i]).ol_flags })
    }

    /// The payload of mbuf `i`.
    pub fn data(&self, i: usize) -> &[u8] {
        assert!(i < self.len, "burst index out of range");
        // SAFETY: pointers below `len` are valid mbufs owned by the burst, borrowed with it.
        unsafe { payload(self.pkts[i]) }
    }

    /// The payload of mbuf `i`, writable.
    pub fn data_mut(&mut self, i: usize) -> &mut [u8] {
        assert!(i < self.len, "burst index out of range");
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe {
            let h = &*self.pkts[i];
            std::slice::from_raw_parts_mut((h.buf_addr as *mut u8).add(h.data_off as usize), h.data_len as usize)
        }
    }

    /// Removes `len` bytes from the front of mbuf `i` ([`Mbuf::strip_front`]).
    #[inline]
    pub fn strip_front(&mut self, i: usize, len: u16) -> bool {
        assert!(i < self.len, "burst index out of range");
        // SAFETY: pointers below `len` are valid mbufs owned by the burst; `&mut self` makes the
        // access exclusive.
        strip_front(unsafe { &mut *self.pkts[i] }, len)
    }

    /// Frees every mbuf held, in one bulk call.
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: the first `len` pointers are valid mbufs owned by the burst; after the call
            // the burst is empty so none is freed twice.
            unsafe { ffi::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// For RX: the free tail of the array and a way to account for what the driver filled in.
    pub(crate) fn spare_ptr(&mut self) -> (*mut *mut ffi::rte_mbuf, u16) {
        // SAFETY: `len <= BURST`, so the offset stays inside the array.
        (unsafe { self.pkts.as_mut_ptr().add(self.len) }, (BURST - self.len) as u16)
    }

    /// For RX: `n` more slots now hold mbufs owned by the burst.
    ///
    /// # Safety
    /// The `n` slots after `len` must have been filled with valid mbufs that nobody else owns.
    pub(crate) unsafe fn grew(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST);
        self.len += n;
    }

    /// For TX: the filled part of the array.
    pub(crate) fn filled_ptr(&mut self) -> (*mut *mut ffi::rte_mbuf, u16) {
        (self.pkts.as_mut_ptr(), self.len as u16)
    }

    /// For TX: the first `n` mbufs were handed to the driver; keep the rest, in order.
    pub(crate) fn consumed_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.pkts.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for Burst<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}
