//! What changed between two snapshots: the device tags whose flows a new snapshot invalidates.
//!
//! Each device (router, bridge, port, chain, port group, IP address group) gets a fingerprint of its
//! whole compiled form; a device whose fingerprint differs, that appeared or that disappeared is
//! changed. Fingerprints hash the `Debug` form of the compiled structs, so a field added to a device
//! later is covered without touching this file (a missed field would keep stale flows alive; an
//! extra one only costs invalidations). Indices are part of that form: a device whose index moved
//! counts as changed, because cached actions and other devices refer to it by index. Two additions
//! to the plain form: a chain is fingerprinted with its rules (not with its offset in the shared
//! rule array, which moves when an earlier chain changes), and a port bound on a remote host with
//! that host (its tunnel address and encapsulation are in the port's actions).
//!
//! Runs on the control thread when a snapshot is published; it allocates and is linear in the
//! topology's size.

use core::fmt::{self, Write as _};
use core::hash::Hasher;
use std::collections::hash_map::DefaultHasher;

use super::device::{Binding, PortLink};
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
}

impl SnapshotChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && !self.everything
    }
}

/// A `Hasher` fed through `fmt::Write`, so `Debug` forms are hashed without building a string.
struct Fingerprint(DefaultHasher);

impl Fingerprint {
    fn of(value: &dyn fmt::Debug) -> u64 {
        let mut f = Fingerprint(DefaultHasher::new());
        f.add(value);
        f.0.finish()
    }

    fn add(&mut self, value: &dyn fmt::Debug) {
        // Writing to a hasher cannot fail.
        let _ = write!(self, "{value:?}");
    }
}

impl fmt::Write for Fingerprint {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// `(uuid, fingerprint)` of every device of `snap`, sorted by UUID.
fn fingerprints(snap: &Snapshot) -> Vec<(Uuid, u64)> {
    let mut all = Vec::new();
    all.extend(snap.routers().iter().map(|r| (r.uuid, Fingerprint::of(r))));
    all.extend(snap.bridges().iter().map(|b| (b.uuid, Fingerprint::of(b))));
    all.extend(snap.ports().iter().map(|p| {
        let mut f = Fingerprint(DefaultHasher::new());
        f.add(p);
        if let PortLink::Exterior(Binding::Remote { host, .. }) = p.link {
            f.add(&snap.get_host(host));
        }
        (p.uuid, f.0.finish())
    }));
    all.extend(snap.chains().iter().map(|c| {
        let mut f = Fingerprint(DefaultHasher::new());
        f.add(&(c.uuid, c.id, &c.name, c.rule_count, c.depth, c.uses_conntrack));
        for rule in c.rule_ids() {
            f.add(snap.rule(rule));
        }
        (c.uuid, f.0.finish())
    }));
    all.extend(snap.port_groups().iter().map(|g| (g.uuid, Fingerprint::of(g))));
    all.extend(snap.ip_addr_groups().iter().map(|g| (g.uuid, Fingerprint::of(g))));
    all.sort_unstable();
    all
}

impl Snapshot {
    /// The devices that differ between `old` and `self` (see the [module docs](self)), as the tags
    /// to invalidate in every core's flow cache when `self` replaces `old`.
    pub fn changed_tags(&self, old: &Snapshot) -> SnapshotChanges {
        let (a, b) = (fingerprints(old), fingerprints(self));
        let mut tags = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    if x.1 != y.1 {
                        tags.push(x.0.tag());
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    tags.push(x.0.tag());
                    i += 1;
                }
                (Some(x), None) => {
                    tags.push(x.0.tag());
                    i += 1;
                }
                (_, Some(y)) => {
                    tags.push(y.0.tag());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        tags.sort_unstable();
        tags.dedup();
        // The underlay endpoint (outer addresses, the VXLAN port, the underlay DPDK port) is in every
        // tunnelled flow's actions and in none of their device tags.
        let everything = self.underlay() != old.underlay();
        SnapshotChanges { tags, everything }
    }
}
