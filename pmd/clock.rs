//! The fast path's clock: the CPU's time-stamp counter, read without a system call, converted to
//! nanoseconds since a start point with one multiply and a shift.

use crate::ffi;

/// Nanoseconds since the clock was made, from the TSC.
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    start: u64,
    /// Nanoseconds per tick as a 32.32 fixed-point number.
    ns_per_tick_q32: u128,
}

impl TscClock {
    /// Starts a clock at the current TSC value. Needs a running EAL (it calibrated the TSC).
    pub fn start() -> TscClock {
        // SAFETY: reads the TSC frequency EAL measured at initialisation; no pointers involved.
        let hz = unsafe { ffi::midogw_tsc_hz() }.max(1);
        TscClock { start: tsc(), ns_per_tick_q32: (1_000_000_000u128 << 32) / u128::from(hz) }
    }

    /// Nanoseconds elapsed since `start`.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        let ticks = tsc().wrapping_sub(self.start);
        ((u128::from(ticks) * self.ns_per_tick_q32) >> 32) as u64
    }
}

/// The raw time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: `rdtsc` reads a CPU register; no memory is touched.
    unsafe { ffi::midogw_rdtsc() }
}
