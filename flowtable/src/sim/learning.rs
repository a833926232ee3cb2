//! What one core learned that the others must know: neighbour (ARP / NDP) entries and bridges'
//! MAC entries, replicated between the workers.
//!
//! The neighbour cache and the MAC tables live per worker core, but the answer to a core's question
//! need not come back to that core: an ARP reply from a VM arrives in a tunnel, steered by its outer
//! headers to whichever core the NIC picks, and an underlay host's ARP reply likewise. Without
//! replication the asking core never learns, and its packets wait in the resolution queue until
//! they time out. As MidoNet shares its ARP and MAC tables between agents, each core records what
//! it learns in a small [`Outbox`]; pmd/ hands the records to every other core, which applies
//! them with [`CoreState::apply_learning`](super::CoreState::apply_learning) at the top of its
//! loop. A bridge's refreshes of a known MAC are announced at most every quarter of the aging
//! time, so cached flows that refresh an entry on every hit cost nothing here. Fixed capacity, no
//! allocation: a full outbox counts what it could not keep (the other cores then learn it from
//! their own traffic, as they would without replication).

use core::net::IpAddr;

use crate::topology::{BridgeId, PortId};
use crate::wire::EthernetAddress;

/// One thing learned, for the other cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learning {
    /// `ip` on router port `port` (or the underlay) is at `mac`.
    Neighbour {
        /// The router port (snapshot index) or the underlay's pseudo-port.
        port: PortId,
        /// The neighbour's address.
        ip: IpAddr,
        /// Its MAC.
        mac: EthernetAddress,
    },
    /// `mac` is behind `port` of `bridge`.
    Mac {
        /// The bridge (snapshot index).
        bridge: BridgeId,
        /// The learned source MAC.
        mac: EthernetAddress,
        /// The bridge port it was seen on (snapshot index).
        port: PortId,
    },
}

/// Records a core keeps between two hand-overs to the other cores.
pub const OUTBOX_CAPACITY: usize = 64;

/// A fixed-capacity list of [`Learning`]s, off until [`Outbox::enable`] (a single worker has no
/// one to tell).
#[derive(Debug, Clone)]
pub struct Outbox {
    items: [Learning; OUTBOX_CAPACITY],
    len: usize,
    enabled: bool,
    overflowed: u64,
}

const NOTHING: Learning =
    Learning::Mac { bridge: BridgeId(u32::MAX), mac: EthernetAddress([0; 6]), port: PortId(u32::MAX) };

impl Default for Outbox {
    fn default() -> Self {
        Outbox { items: [NOTHING; OUTBOX_CAPACITY], len: 0, enabled: false, overflowed: 0 }
    }
}

impl Outbox {
    /// Starts (or stops) recording.
    pub fn enable(&mut self, on: bool) {
        self.enabled = on;
        self.len = 0;
    }

    /// Keeps `learning` if recording and there is room, else counts it as overflowed.
    pub(super) fn record(&mut self, learning: Learning) {
        if !self.enabled {
            return;
        }
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = learning;
                self.len += 1;
            }
            None => self.overflowed += 1,
        }
    }

    /// Whether anything waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hands every waiting record to `f`, oldest first, and empties the outbox.
    pub fn drain(&mut self, mut f: impl FnMut(Learning)) {
        for &learning in &self.items[..self.len] {
            f(learning);
        }
        self.len = 0;
    }

    /// Records dropped because the outbox was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Learning {
        Learning::Mac { bridge: BridgeId(1), mac: EthernetAddress([2, 0, 0, 0, 0, n]), port: PortId(u32::from(n)) }
    }

    #[test]
    fn records_only_when_enabled_keeps_order_and_counts_overflow() {
        let mut o = Outbox::default();
        o.record(mac(1));
        assert!(o.is_empty(), "off by default");
        o.enable(true);
        for n in 0..OUTBOX_CAPACITY as u8 + 3 {
            o.record(mac(n));
        }
        assert_eq!(o.overflowed(), 3);
        let mut got = Vec::new();
        o.drain(|l| got.push(l));
        assert_eq!(got, (0..OUTBOX_CAPACITY as u8).map(mac).collect::<Vec<_>>());
        assert!(o.is_empty());
        o.drain(|_| panic!("drained twice"));
    }
}
