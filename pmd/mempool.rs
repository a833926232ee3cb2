//! The mbuf pool: every packet buffer the appliance touches comes from here.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::mbuf::Mbuf;
use crate::sizing;

/// DPDK limits memzone-backed names; the mempool adds a prefix of its own.
const MAX_POOL_NAME: usize = 24;

/// A pool of single-segment jumbo mbufs (see [`sizing::DATA_ROOM`]).
#[derive(Debug)]
pub struct Mempool<'eal> {
    raw: NonNull<ffi::rte_mempool>,
    name: String,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: rte_mempool is built for concurrent use from any lcore (ring_mp_mc ops); the pointer is
// only freed in Drop, which needs exclusive ownership.
unsafe impl Send for Mempool<'_> {}
// SAFETY: as above: get/put are multi-producer/multi-consumer safe.
unsafe impl Sync for Mempool<'_> {}

impl<'eal> Mempool<'eal> {
    /// Creates a pool of `mbufs` jumbo mbufs with a per-lcore cache of [`sizing::MEMPOOL_CACHE`].
    pub fn new(eal: &'eal Eal, name: &str, mbufs: u32) -> Result<Mempool<'eal>> {
        Self::with_data_room(eal, name, mbufs, sizing::DATA_ROOM)
    }

    /// Creates a pool with an explicit data room (tests and the traffic generator use small
    /// mbufs; the appliance always uses [`sizing::DATA_ROOM`]).
    pub fn with_data_room(eal: &'eal Eal, name: &str, mbufs: u32, data_room: u16) -> Result<Mempool<'eal>> {
        if name.len() > MAX_POOL_NAME {
            return Err(Error::InvalidName { what: "mempool name", value: name.into(), why: "longer than 24 bytes" });
        }
        let c_name = CString::new(name).map_err(|_| Error::InvalidName {
            what: "mempool name",
            value: name.into(),
            why: "contains a NUL byte",
        })?;
        let cache = sizing::MEMPOOL_CACHE.min(mbufs / 8);
        // SAFETY: c_name is a valid C string for the call; EAL is running (we borrow it).
        let raw = unsafe { ffi::rte_pktmbuf_pool_create(c_name.as_ptr(), mbufs, cache, 0, data_room, eal.socket_id()) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::Mempool {
            name: name.into(),
            mbufs,
            data_room,
            errno: RteErrno(ffi::errno()),
        })?;
        tracing::debug!(name, mbufs, data_room, cache, "mbuf pool created");
        Ok(Mempool { raw, name: name.into(), _eal: PhantomData })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Raw pointer for the port and queue setup calls.
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }

    /// Mbufs currently free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while `self` is.
        unsafe { ffi::midogw_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently handed out (in rings, descriptors, bursts or owned by `Mbuf`s).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive while `self` is.
        unsafe { ffi::midogw_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Bytes of data room per mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        // SAFETY: the pool is alive while `self` is; it was made by rte_pktmbuf_pool_create.
        unsafe { ffi::midogw_pktmbuf_data_room_size(self.raw.as_ptr()) }
    }

    /// Takes one mbuf from the pool; `None` when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf<'_>> {
        // SAFETY: the pool is alive while the returned Mbuf borrows it.
        let m = unsafe { ffi::midogw_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is a freshly reset mbuf we now own exclusively.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }
}

impl Drop for Mempool<'_> {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use != 0 {
            // Mbufs borrow the pool only while they are `Mbuf`s or in `Burst`s: one a TX queue
            // took, or one waiting in a ring, is out of the type system's sight, and whoever
            // frees it later (the ring's drop, the port's close, the ring's reader) writes into
            // the pool. Freeing the pool now would make that a write into freed memory, which
            // may be the next pool's (the same mbuf handed out twice): the pool is kept instead.
            tracing::error!(pool = %self.name, in_use, "mbuf pool dropped with mbufs still out; not freed (leaked)");
            return;
        }
        // SAFETY: no mbuf of the pool is out (in_use is 0) and ports and queues borrow the pool,
        // so nothing refers to it any more.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) };
    }
}
