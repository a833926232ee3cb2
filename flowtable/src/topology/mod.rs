//! The virtual topology as the worker cores see it: an immutable, versioned [`Snapshot`] of
//! routers, bridges, ports, port groups, IP address groups, hosts and rule chains, built and
//! validated by a [`SnapshotBuilder`] on the control thread.
//!
//! Devices reference each other by dense `u32` indices ([`RouterId`], [`PortId`], ...) into the
//! snapshot's tables, so the fast path follows an index where MidoNet followed a UUID through a
//! cache; each device keeps its MidoNet [`Uuid`] for reporting. Everything a lookup needs is
//! precomputed by the builder (routing tables, automatic port routes, chain depths, membership
//! and tunnel-key indices); reading a snapshot never allocates.
//!
//! | file | what |
//! | --- | --- |
//! | `id.rs` | index newtypes, [`Uuid`], [`DeviceId`] and the fixed-capacity [`DeviceSet`] |
//! | `device.rs` | [`Router`], [`Port`] ([`RouterPort`] / [`BridgePort`]), [`Bridge`], [`PortGroup`], [`IpAddrGroup`], [`Host`] |
//! | `route.rs` | [`Route`], the lookup semantics and data structure, [`RouteDecision`] |
//! | `snapshot.rs` | [`Snapshot`], [`SnapshotBuilder`], [`TopologyError`] |
//!
//! # Route lookup
//!
//! [`Router::route`] follows MidoNet's `RoutingTable.lookup`: among the routes whose destination
//! CIDR contains the packet's destination and whose source CIDR contains its source, the longest
//! destination prefix wins, then the lowest weight; equal-cost routes are chosen by
//! `hash % n` ("flow-hash mod N", seeds A6) in the order they were added. Each router keeps, per
//! address family, an *elementary-interval table*: the destination prefixes cut the address space
//! into at most `2n + 1` intervals with a constant longest match, so a lookup is one binary search
//! over a sorted array of interval starts (`u32` or `u128`), then a scan of that prefix's routes
//! for the source match, falling back through parent prefixes only when no route matches the
//! source. Building is `O(n log n)` in the builder; memory is about `8 (2n + 1)` bytes of
//! intervals for IPv4 (`20 (2n + 1)` for IPv6) plus the routes. DIR-24-8 (`rte_lpm`) was set aside:
//! 64 MiB per table cannot be paid for thousands of tenant routers with a handful of routes each;
//! a binary trie costs up to 32 (128) dependent loads; per-length hashing up to 33 (129) probes.
//!
//! # Invalidation
//!
//! A simulation collects the devices it depended on in a [`DeviceSet`] (route lookups add the
//! router and the egress port, chain evaluation adds the chains it entered and the groups it looked
//! into). Ids are indices of one snapshot, but what a flow entry keeps is the device's tag
//! ([`Snapshot::device_tag`]), derived from its MidoNet UUID and so the same in every generation.
//! When a new snapshot replaces an old one, [`Snapshot::changed_tags`] names the devices whose
//! compiled form changed (a moved index counts as a change: cached actions refer to indices), and
//! the cores invalidate exactly the flows that depended on one of them. Saturated sets depend on
//! everything.
//!
//! # Example
//!
//! ```
//! use flowtable::topology::{DeviceSet, RouteDecision, RouterPort, SnapshotBuilder, Uuid};
//!
//! let mut b = SnapshotBuilder::new(1);
//! let r = b.add_router(Uuid(1));
//! let p = b.add_router_port(r, Uuid(2), RouterPort::generated_mac(Uuid(2)), &["169.254.255.3/30".parse().unwrap()]);
//! b.bind_local(p, 0);
//! let snap = b.build().unwrap();
//!
//! let mut deps = DeviceSet::new();
//! let router = snap.router(r);
//! let d = router.route("10.0.0.1".parse().unwrap(), "169.254.255.1".parse().unwrap(), 0, &mut deps);
//! assert!(matches!(d, RouteDecision::Forward { port, .. } if port == p));
//! let d = router.route("10.0.0.1".parse().unwrap(), "169.254.255.3".parse().unwrap(), 0, &mut deps);
//! assert!(matches!(d, RouteDecision::Local { port, .. } if port == p));
//! ```

mod device;
mod diff;
mod id;
mod route;
mod snapshot;

pub use self::device::{
    Binding, Bridge, BridgePort, Encap, Host, IpAddrGroup, Port, PortGroup, PortKind, PortLink, Router, RouterPort,
    Underlay, MAX_TUNNEL_KEY,
};
pub use self::diff::{Fingerprints, SnapshotChanges};
pub use self::id::{
    BridgeId, ChainId, DeviceId, DeviceSet, HostId, IpAddrGroupId, PortGroupId, PortId, RouteId, RouterId, RuleId,
    Uuid, DEVICE_SET_CAPACITY,
};
pub use self::route::{Route, RouteDecision, RouteOrigin, RouteSet, RouteType};
pub use self::snapshot::{Snapshot, SnapshotBuilder, TopologyError};

#[cfg(test)]
mod tests;
