//! What changed between two snapshots: the device tags whose flows a new snapshot invalidates.
//!
//! Each device (router, bridge, port, chain, port group, IP address group) gets a 64-bit
//! fingerprint of its compiled form ([`Fingerprints`], computed once per snapshot: the publisher
//! keeps the current snapshot's); a device whose fingerprint differs, that appeared or that
//! disappeared is changed. Fingerprints hash the compiled structs with their derived `Hash` (ports,
//! bridges, groups, hosts, rules, routes), so a field added to those later is covered without
//! touching this file. Three are spelled out here: a router is its ids, chains, ports and routes (the
//! hash of its routes, taken once when its [`RouteSet`](super::RouteSet) is built: a set shared
//! with the previous snapshot is not hashed again; its routing tables are derived from its routes); a chain is its header and its rules (not its offset
//! in the shared rule array, which moves when an earlier chain changes); a port bound on a remote
//! host includes that host (its tunnel address and encapsulation are in the port's actions).
//! Indices are part of the hash: a device whose index moved counts as changed, because cached
//! actions and other devices refer to it by index.
//!
//! Runs on the control thread when a snapshot is published; it allocates and is linear in the
//! number of devices and rules (not of routes).

use core::hash::{BuildHasher, Hash, Hasher};

use foldhash::quality::{FixedState, FoldHasher};

use super::device::{Binding, PortLink, Underlay};
use super::id::Uuid;
use super::snapshot::Snapshot;

/// The result of [`Snapshot::changed_tags`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotChanges {
    /// Device tags ([`Snapshot::device_tag`]) of every device that changed, appeared or disappeared,
    /// sorted, without duplicates.
    pub tags: Vec<u32>,
    /// Something every flow may depend on changed (the snapshot's global settings): flush all.
    pub everything: bool,
    /// A port or a bridge changed, appeared or disappeared. A core's learned entries (neighbours
    /// by router port, MACs by bridge and port) name them by index and need looking at only then:
    /// the commonest changes (routes, rules) leave them as they are, with no walk of the tables.
    pub ports_or_bridges: bool,
}

impl SnapshotChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && !self.everything && !self.ports_or_bridges
    }
}

/// Every device's fingerprint, sorted by UUID, with whether it is a port or a bridge, plus the
/// snapshot-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprints {
    devices: Vec<(Uuid, u64, bool)>,
    underlay: Option<Underlay>,
}

/// A fresh fingerprint hasher. foldhash (quality variant, a fixed seed: fingerprints are only
/// compared within one process) rather than the standard library's SipHash: a fingerprint needs a
/// well-mixed 64-bit hash, not a keyed one, and the derived `Hash` of a big topology's routes is
/// thousands of small writes, each a SipHash round (at 1000 routers this made fingerprinting a
/// good share of what a REST write costs before it reaches the cores).
fn hasher() -> FoldHasher<'static> {
    FixedState::with_seed(0x6d69_646f_6777_6670).build_hasher()
}

pub(crate) fn hash_of(value: &impl Hash) -> u64 {
    let mut h = hasher();
    value.hash(&mut h);
    h.finish()
}

impl Fingerprints {
    /// The fingerprints of `snap`'s devices.
    pub fn of(snap: &Snapshot) -> Fingerprints {
        let mut all =
            Vec::with_capacity(snap.routers().len() + snap.bridges().len() + snap.ports().len() + snap.chains().len());
        all.extend(snap.routers().iter().map(|r| {
            (r.uuid, hash_of(&(r.uuid, r.id, r.infilter, r.outfilter, &r.ports, r.routes.fingerprint())), false)
        }));
        all.extend(snap.bridges().iter().map(|b| (b.uuid, hash_of(b), true)));
        all.extend(snap.ports().iter().map(|p| {
            let host = match p.link {
                PortLink::Exterior(Binding::Remote { host, .. }) => snap.get_host(host),
                _ => None,
            };
            (p.uuid, hash_of(&(p, host)), true)
        }));
        all.extend(snap.chains().iter().map(|c| {
            let mut h = hasher();
            (c.uuid, c.id, &c.name, c.rule_count, c.depth, c.uses_conntrack).hash(&mut h);
            for rule in c.rule_ids() {
                snap.rule(rule).hash(&mut h);
            }
            (c.uuid, h.finish(), false)
        }));
        all.extend(snap.port_groups().iter().map(|g| (g.uuid, hash_of(g), false)));
        all.extend(snap.ip_addr_groups().iter().map(|g| (g.uuid, hash_of(g), false)));
        all.sort_unstable();
        Fingerprints { devices: all, underlay: snap.underlay().copied() }
    }

    /// What changed from `old` to `self`, as the tags to invalidate.
    pub fn changes_since(&self, old: &Fingerprints) -> SnapshotChanges {
        let (a, b) = (&old.devices, &self.devices);
        let mut tags = Vec::new();
        let mut ports_or_bridges = false;
        let mut changed = |(uuid, _, port_or_bridge): (Uuid, u64, bool)| {
            tags.push(uuid.tag());
            ports_or_bridges |= port_or_bridge;
        };
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) if x.0 == y.0 => {
                    if x.1 != y.1 {
                        changed(x);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(&x), Some(&y)) if x.0 < y.0 => {
                    changed(x);
                    i += 1;
                }
                (Some(&x), None) => {
                    changed(x);
                    i += 1;
                }
                (_, Some(&y)) => {
                    changed(y);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        tags.sort_unstable();
        tags.dedup();
        // The underlay endpoint (outer addresses, the VXLAN port, the underlay DPDK port) is in every
        // tunnelled flow's actions and in none of their device tags.
        SnapshotChanges { tags, everything: self.underlay != old.underlay, ports_or_bridges }
    }
}

impl Snapshot {
    /// The devices that differ between `old` and `self` (see the [module docs](self)), as the tags
    /// to invalidate in every core's flow cache when `self` replaces `old`. A publisher that keeps
    /// the current snapshot's [`Fingerprints`] computes only the new ones.
    pub fn changed_tags(&self, old: &Snapshot) -> SnapshotChanges {
        Fingerprints::of(self).changes_since(&Fingerprints::of(old))
    }
}
