//! The data plane's error type: one variant per thing that can go wrong while bringing DPDK up or
//! down. The fast path never returns errors; it counts drops.

use std::fmt;

/// A DPDK error number with DPDK's own description (`rte_strerror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RteErrno(pub i32);

impl fmt::Display for RteErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", crate::ffi::strerror(self.0), self.0)
    }
}

/// Everything that can fail in pmd/.
// Variant fields are what the message prints; their names say the rest.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `rte_eal_init` refused; `hint` says what the operator can do about it.
    #[error("DPDK EAL initialisation failed: {errno}{hint}")]
    EalInit { errno: RteErrno, hint: String },
    /// EAL can be initialised once per process; a second `Eal::init` is a programming error.
    #[error("DPDK EAL is already initialised in this process (it can be initialised only once)")]
    EalAlreadyInitialised,
    /// A name or argument handed to DPDK contained a NUL byte or was too long.
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName { what: &'static str, value: String, why: &'static str },
    /// The mbuf pool could not be created (usually: not enough memory for EAL).
    #[error("cannot create mbuf pool {name} ({mbufs} mbufs of {data_room} bytes): {errno}; give EAL more memory (-m with --no-huge, or more hugepages) or fewer mbufs")]
    Mempool { name: String, mbufs: u32, data_room: u16, errno: RteErrno },
    /// A ring could not be created.
    #[error("cannot create ring {name}: {errno}")]
    Ring { name: String, errno: RteErrno },
    /// DPDK could not create or find the device behind a configured port.
    #[error("port {port}: {detail}")]
    PortDevice { port: String, detail: String },
    /// Configuring or starting a port failed at the named step.
    #[error("port {port}: {step} failed: {errno}")]
    PortSetup { port: String, step: &'static str, errno: RteErrno },
    /// The port's capabilities do not allow what was asked of it.
    #[error("port {port}: {detail}")]
    PortCapability { port: String, detail: String },
    /// Large receive offload is on after configuration: midogw forwards without LRO (the seeds'
    /// "LRO-free forwarding"), so the port is refused rather than run with coalesced frames.
    #[error("port {port}: LRO is enabled on {where_} after configuration; midogw forwards without LRO and refuses this port (disable LRO on the device or use another driver)")]
    LroEnabled { port: String, where_: String },
    /// The queues of a port were already handed to workers.
    #[error("port {port}: queues were already taken by another worker set")]
    QueuesTaken { port: String },
    /// An lcore could not be launched (not enabled in EAL, or busy).
    #[error("cannot launch worker on lcore {lcore}: {errno}")]
    Launch { lcore: u32, errno: RteErrno },
    /// A worker ended abnormally.
    #[error("worker on lcore {lcore} {how}")]
    WorkerFailed { lcore: u32, how: String },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
