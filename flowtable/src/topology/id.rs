//! Identifiers: dense `u32` indices for the fast path, MidoNet UUIDs for reporting, and the
//! fixed-capacity [`DeviceSet`] a simulation result carries for invalidation.

use core::fmt;

/// A MidoNet UUID, kept beside every index for reporting (logs, traces, REST). Never used on the
/// fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub u128);

impl Uuid {
    /// The nil UUID.
    pub const NIL: Uuid = Uuid(0);

    /// A UUID derived from this one for an object the snapshot creates itself (the automatic port
    /// routes): stable across generations, distinct for each `n`, and scattered so that derived
    /// ids of neighbouring UUIDs do not collide (a multiplication by an odd constant is a bijection).
    pub(crate) const fn derive(self, n: u8) -> Uuid {
        const K1: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
        const K2: u128 = 0xd6e8_feb8_6659_fd93_a5a5_5a5a_0f0f_f0f1;
        Uuid((self.0 ^ K1.wrapping_mul(n as u128 + 1)).wrapping_mul(K2))
    }

    /// The device tag of the device with this UUID: the UUID's bits mixed down to 32 (both halves
    /// folded, then a multiplicative mix so that UUIDs differing in few bits spread over the flow
    /// cache's tag slots). Two devices sharing a tag slot only cost extra invalidations.
    pub const fn tag(self) -> u32 {
        let folded = (self.0 as u64) ^ ((self.0 >> 64) as u64);
        let mixed = (folded ^ (folded >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as u32
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

macro_rules! index_ids {
    ( $( $(#[$attr:meta])* $name:ident => $prefix:literal; )+ ) => {
        $(
            $(#[$attr])*
            ///
            /// An index into one [`Snapshot`](super::Snapshot)'s table, handed out by the
            /// [`SnapshotBuilder`](super::SnapshotBuilder) in insertion order.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
            pub struct $name(pub u32);

            impl $name {
                /// The index as a `usize`.
                #[inline]
                pub const fn index(self) -> usize {
                    self.0 as usize
                }
            }

            impl fmt::Display for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, concat!($prefix, "{}"), self.0)
                }
            }
        )+
    };
}

index_ids! {
    /// A virtual router.
    RouterId => "router";
    /// A virtual bridge.
    BridgeId => "bridge";
    /// A port of a router or a bridge (one id space for both, as rules name ports of any device).
    PortId => "port";
    /// A rule chain.
    ChainId => "chain";
    /// A rule, an index into the snapshot's flat rule table (a chain's rules are contiguous).
    RuleId => "rule";
    /// A port group.
    PortGroupId => "pgroup";
    /// An IP address group.
    IpAddrGroupId => "ipag";
    /// A host: the gateway itself or a compute host reached through a tunnel.
    HostId => "host";
    /// A route, an index into its router's route list.
    RouteId => "route";
}

/// Anything a simulation result can depend on: MidoNet's "device tags". A flow remembers the ids it
/// depended on; a new snapshot invalidates the flows whose set meets the devices that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceId {
    /// A router (its routes, its chains, its ports' addresses).
    Router(RouterId),
    /// A bridge (its static MAC entries, its chains).
    Bridge(BridgeId),
    /// A port (its binding, its peer, its chains).
    Port(PortId),
    /// A chain (its rules).
    Chain(ChainId),
    /// A port group (its members).
    PortGroup(PortGroupId),
    /// An IP address group (its addresses).
    IpAddrGroup(IpAddrGroupId),
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Router(id) => id.fmt(f),
            DeviceId::Bridge(id) => id.fmt(f),
            DeviceId::Port(id) => id.fmt(f),
            DeviceId::Chain(id) => id.fmt(f),
            DeviceId::PortGroup(id) => id.fmt(f),
            DeviceId::IpAddrGroup(id) => id.fmt(f),
        }
    }
}

/// How many ids a [`DeviceSet`] holds before it saturates.
pub const DEVICE_SET_CAPACITY: usize = 16;

/// A small set of [`DeviceId`]s, inline and fixed-capacity (no allocation; 16 ids cover an
/// edge router -> tenant router -> bridge path with their chains and ports).
///
/// When more distinct ids are inserted than it holds, the set *saturates*: it then stands for
/// "depends on everything", and [`DeviceSet::may_depend_on`] answers `true` for any id. A saturated
/// flow is invalidated by any topology change, which is always correct, only less precise.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceSet {
    ids: [DeviceId; DEVICE_SET_CAPACITY],
    len: u8,
    saturated: bool,
}

impl Default for DeviceSet {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceSet {
    /// The empty set.
    pub const fn new() -> Self {
        DeviceSet { ids: [DeviceId::Router(RouterId(0)); DEVICE_SET_CAPACITY], len: 0, saturated: false }
    }

    /// Adds `id` (no effect if present). Saturates the set if it is full.
    #[inline]
    pub fn insert(&mut self, id: DeviceId) {
        if self.saturated || self.as_slice().contains(&id) {
            return;
        }
        if usize::from(self.len) == DEVICE_SET_CAPACITY {
            self.saturated = true;
        } else {
            self.ids[usize::from(self.len)] = id;
            self.len += 1;
        }
    }

    /// Adds every id of `other`.
    pub fn extend(&mut self, other: &DeviceSet) {
        if other.saturated {
            self.saturated = true;
        }
        for &id in other.as_slice() {
            self.insert(id);
        }
    }

    /// The ids recorded (all of them unless [`is_saturated`](Self::is_saturated)).
    #[inline]
    pub fn as_slice(&self) -> &[DeviceId] {
        &self.ids[..usize::from(self.len)]
    }

    /// Whether `id` was recorded.
    pub fn contains(&self, id: DeviceId) -> bool {
        self.as_slice().contains(&id)
    }

    /// Whether a change of `id` must invalidate what this set describes: recorded, or saturated.
    pub fn may_depend_on(&self, id: DeviceId) -> bool {
        self.saturated || self.contains(id)
    }

    /// More ids were inserted than the set holds: it depends on everything.
    pub const fn is_saturated(&self) -> bool {
        self.saturated
    }

    /// Number of ids recorded.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// No id recorded and not saturated.
    pub const fn is_empty(&self) -> bool {
        self.len == 0 && !self.saturated
    }
}

impl fmt::Debug for DeviceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_set();
        l.entries(self.as_slice());
        if self.saturated {
            l.entry(&"..saturated");
        }
        l.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_display() {
        let u = Uuid(0x9182485b_8f86_462d_a8be_62586060eeb9);
        assert_eq!(u.to_string(), "9182485b-8f86-462d-a8be-62586060eeb9");
        assert_ne!(u.derive(1), u.derive(2));
        assert_eq!(u.derive(1), u.derive(1));
        // Neighbouring UUIDs (ports created in sequence) do not collide.
        let mut all: Vec<Uuid> = (0..64u128).flat_map(|x| (0..8).map(move |n| Uuid(x).derive(n))).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 64 * 8);
    }

    #[test]
    fn device_set_dedups_and_saturates() {
        let mut s = DeviceSet::new();
        assert!(s.is_empty());
        s.insert(DeviceId::Router(RouterId(1)));
        s.insert(DeviceId::Router(RouterId(1)));
        s.insert(DeviceId::Port(PortId(1)));
        assert_eq!(s.len(), 2);
        assert!(s.may_depend_on(DeviceId::Port(PortId(1))));
        assert!(!s.may_depend_on(DeviceId::Port(PortId(2))));
        for i in 0..DEVICE_SET_CAPACITY as u32 {
            s.insert(DeviceId::Chain(ChainId(i)));
        }
        assert!(s.is_saturated());
        assert_eq!(s.len(), DEVICE_SET_CAPACITY);
        assert!(s.may_depend_on(DeviceId::Bridge(BridgeId(99))));
        let mut t = DeviceSet::new();
        t.extend(&s);
        assert!(t.is_saturated());
        assert_eq!(format!("{}", DeviceId::Chain(ChainId(3))), "chain3");
    }
}
