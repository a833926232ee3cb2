//! What the `net_ring` pipeline tests (gateway_ring, tunnel_ring) share: the checksum they verify
//! frames with, the clean-up of DPDK's runtime directory, and sending one packet of a trace.

use midogw::{Burst, Mempool, TxQueue};
use perf::packet::Stamp;
use perf::Trace;

/// The one's complement sum of `data` (0xffff over a header with a valid checksum).
pub fn ones_complement(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for pair in data.chunks(2) {
        acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Removes DPDK's runtime directory of the test's file prefix, also when an assertion failed.
pub struct RuntimeDir(pub String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        perf::runner::remove_runtime_dir(&self.0);
    }
}

/// Sends packet `k` of `trace` from `side` (the stamp's time field carries the side).
pub fn send<'a>(pool: &'a Mempool<'_>, trace: &Trace, side: usize, k: usize, tx: &mut TxQueue<'a>) {
    let mut m = pool.alloc().expect("mbuf");
    let len = trace.len_of(k);
    trace.emit(k, Stamp { seq: k as u32, tx_ns: side as u64 }, m.append(len as u16).unwrap());
    let mut b = Burst::new();
    b.push(m).ok().unwrap();
    assert_eq!(tx.tx(&mut b), 1);
}
