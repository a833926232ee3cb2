//! DPDK rings: lock-free FIFOs of pointers. Used here as the wires behind `net_ring` ports.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;

/// A multi-producer, multi-consumer ring.
#[derive(Debug)]
pub struct Ring<'eal> {
    raw: NonNull<ffi::rte_ring>,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: an MP/MC rte_ring is safe to use from any thread; it is freed only in Drop.
unsafe impl Send for Ring<'_> {}
// SAFETY: as above.
unsafe impl Sync for Ring<'_> {}

impl<'eal> Ring<'eal> {
    /// Creates a ring holding up to `size - 1` entries (`size` a power of two).
    pub fn new(eal: &'eal Eal, name: &str, size: u32) -> Result<Ring<'eal>> {
        let c_name = CString::new(name).map_err(|_| Error::InvalidName {
            what: "ring name",
            value: name.into(),
            why: "contains a NUL byte",
        })?;
        // SAFETY: valid C string; EAL is running.
        let raw = unsafe { ffi::rte_ring_create(c_name.as_ptr(), size, eal.socket_id(), 0) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::Ring { name: name.into(), errno: RteErrno(ffi::errno()) })?;
        Ok(Ring { raw, _eal: PhantomData })
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_ring {
        self.raw.as_ptr()
    }

    /// Entries currently queued.
    pub fn count(&self) -> u32 {
        // SAFETY: the ring is alive while `self` is.
        unsafe { ffi::midogw_ring_count(self.raw.as_ptr()) }
    }
}

impl Drop for Ring<'_> {
    fn drop(&mut self) {
        // Ports built on the ring borrow it, so they are closed. Mbufs still queued would leak
        // back to nobody: drain them to the pool first.
        let mut burst = crate::mbuf::Burst::new();
        loop {
            let (ptr, room) = burst.spare_ptr();
            // SAFETY: `ptr` has room for `room` pointers; every object in these rings is an mbuf
            // the ring owns.
            let n = unsafe {
                ffi::midogw_ring_dequeue_burst(self.raw.as_ptr(), ptr as *mut *mut std::ffi::c_void, u32::from(room))
            };
            if n == 0 {
                break;
            }
            // SAFETY: the ring handed us `n` mbufs.
            unsafe { burst.grew(n as usize) };
            burst.clear();
        }
        // SAFETY: nothing refers to the ring any more.
        unsafe { ffi::rte_ring_free(self.raw.as_ptr()) };
    }
}
