//! Routes and the per-router lookup structure.
//!
//! # Semantics (MidoNet's `RoutingTable.lookup`, seeds A6)
//!
//! A route matches a packet when its destination CIDR contains the packet's destination and its
//! source CIDR contains the packet's source. Among the matching routes, those with the longest
//! destination prefix win; among those, the ones with the lowest weight; if several remain, ECMP
//! picks `routes[hash % n]` with the caller's connection hash ("flow-hash mod N": not consistent,
//! not symmetric, deterministic for a given snapshot). Routes of equal weight are ordered by the
//! order they were added in, so every core and every gateway with the same snapshot picks the same.
//!
//! Note that a longer destination prefix whose routes all fail the source match does not hide a
//! shorter one: lookup falls back to the next covering prefix.
//!
//! # Data structure: an elementary-interval table over destination prefixes
//!
//! Every distinct destination prefix is a *bucket* holding its routes sorted by (weight, order) and
//! a link to its *parent*, the longest strictly shorter prefix that covers it. The prefixes, being
//! nested or disjoint, cut the address space into at most `2n + 1` intervals on which the longest
//! matching prefix is constant; the table stores the intervals' start addresses in one sorted array
//! and, beside it, the bucket each interval belongs to (or none).
//!
//! A lookup is one binary search over the start array (`log2(2n + 1)` comparisons of `u32` or
//! `u128`, over contiguous memory), then a scan of the bucket's routes for the source match (almost
//! always the first route: most routes have source `0/0`), following parent links only when no
//! route of a bucket matches the source. No allocation, no recursion, the same code for IPv4 and
//! IPv6. Building is `O(n log n)` (a sort and one sweep with a stack), paid in the
//! [`SnapshotBuilder`](super::SnapshotBuilder), off the fast path. Memory: `(2n + 1) * (4 + 4)`
//! bytes of intervals for IPv4 (`(16 + 4)` for IPv6) plus 24 to 40 bytes per bucket and per route.
//!
//! Why not the alternatives:
//! * DIR-24-8 (DPDK `rte_lpm`): two memory reads per lookup, but a 64 MiB first level per table.
//!   The gateway simulates thousands of tenant routers with a handful of routes each, and DPDK is
//!   not available in this crate. If an uplink router ever carries a full BGP table, a 16-bit
//!   direct index in front of the start array (see the open issues in `docs/ARCHITECTURE.md`) cuts
//!   the search to the routes under one /16 without changing the semantics.
//! * A binary trie: up to 32 (128) dependent pointer loads per lookup, one allocation per node.
//! * One hash or sorted array per prefix length: up to 33 (129) probes per lookup, in the worst
//!   case, and the source-match fallback needs the same walk.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::Deref;
use std::sync::Arc;

use ipnet::IpNet;

use super::id::{DeviceId, DeviceSet, PortId, RouteId, RouterId, Uuid};
use crate::wire::{Icmpv4DstUnreachable, Icmpv6DstUnreachable};

/// What a route does with the packets it matches (MidoNet's `NextHop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteType {
    /// Forward through the route's port, to its gateway or, without one, to the destination.
    Normal,
    /// Drop silently.
    Blackhole,
    /// Drop and answer ICMP destination unreachable.
    Reject,
    /// Addressed to the router port itself (the automatic /32 or /128 route of a port address).
    Local,
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteOrigin {
    /// Added through the builder (API, Neutron, BGP-learned).
    Configured,
    /// Created by the snapshot for an address of this router port (seeds A6): the port address
    /// itself (`Local`) and its subnet (`Normal`, no gateway).
    PortAddress(PortId),
}

/// A route of a router.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// MidoNet id (derived from the port's for the automatic routes).
    pub uuid: Uuid,
    /// Source CIDR (`0.0.0.0/0` or `::/0` for any source). Host bits are cleared.
    pub src: IpNet,
    /// Destination CIDR. Host bits are cleared.
    pub dst: IpNet,
    /// Next-hop gateway; `None` means the destination is on the port's link.
    pub gateway: Option<IpAddr>,
    /// Egress port: required for `Normal` and `Local`, ignored by `Blackhole` and `Reject`.
    pub port: Option<PortId>,
    /// Lower is preferred among routes of the same destination prefix.
    pub weight: u32,
    /// What the route does.
    pub kind: RouteType,
    /// Configured, or automatic for a port address.
    pub origin: RouteOrigin,
}

impl Route {
    /// A `Normal` route from `src` to `dst` through `port`, via `gateway` if given.
    pub fn normal(uuid: Uuid, src: IpNet, dst: IpNet, port: PortId, gateway: Option<IpAddr>, weight: u32) -> Self {
        Route {
            uuid,
            src,
            dst,
            gateway,
            port: Some(port),
            weight,
            kind: RouteType::Normal,
            origin: RouteOrigin::Configured,
        }
    }

    /// A route without a port (`Blackhole` or `Reject`) for `dst` from any source.
    pub fn without_port(uuid: Uuid, dst: IpNet, kind: RouteType, weight: u32) -> Self {
        let src = match dst {
            IpNet::V4(_) => IpNet::V4(Default::default()),
            IpNet::V6(_) => IpNet::V6(Default::default()),
        };
        Route { uuid, src, dst, gateway: None, port: None, weight, kind, origin: RouteOrigin::Configured }
    }
}

/// The result of a route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteDecision {
    /// Forward through `port` to `next_hop` (the route's gateway, or the packet's destination on a
    /// connected route).
    Forward {
        /// Egress port.
        port: PortId,
        /// The address to resolve (ARP/NDP) on the port's link.
        next_hop: IpAddr,
        /// The route chosen.
        route: RouteId,
    },
    /// Addressed to `port`, one of the router's own ports (answer ARP/ICMP echo or punt).
    Local {
        /// The port owning the address.
        port: PortId,
        /// The route chosen.
        route: RouteId,
    },
    /// A blackhole route: drop silently.
    Blackhole {
        /// The route chosen.
        route: RouteId,
    },
    /// A reject route: drop and answer ICMP destination unreachable.
    Reject {
        /// The route chosen.
        route: RouteId,
    },
    /// No route matched: drop and answer ICMP network unreachable.
    NoRoute,
}

impl RouteDecision {
    /// The ICMPv4 destination-unreachable code to answer with, if any.
    ///
    /// No route: *network unreachable* (RFC 1812 section 5.2.7.1: "a forwarding path (route) to the
    /// destination network is not available"). Reject route: *communication administratively
    /// prohibited* (code 13, RFC 1812 section 5.2.7.1), what MidoNet sends for a REJECT route and
    /// what Linux sends for a `prohibit` route: the route is an administrative decision.
    pub fn icmpv4_unreachable(&self) -> Option<Icmpv4DstUnreachable> {
        match self {
            RouteDecision::NoRoute => Some(Icmpv4DstUnreachable::NetUnreachable),
            RouteDecision::Reject { .. } => Some(Icmpv4DstUnreachable::CommProhibited),
            _ => None,
        }
    }

    /// The ICMPv6 destination-unreachable code to answer with, if any (RFC 4443 section 3.1):
    /// *no route to destination* (0), or *reject route to destination* (6) for a reject route.
    pub fn icmpv6_unreachable(&self) -> Option<Icmpv6DstUnreachable> {
        match self {
            RouteDecision::NoRoute => Some(Icmpv6DstUnreachable::NoRoute),
            RouteDecision::Reject { .. } => Some(Icmpv6DstUnreachable::RejectRoute),
            _ => None,
        }
    }

    /// The route chosen, if any.
    pub fn route(&self) -> Option<RouteId> {
        match *self {
            RouteDecision::Forward { route, .. }
            | RouteDecision::Local { route, .. }
            | RouteDecision::Blackhole { route }
            | RouteDecision::Reject { route } => Some(route),
            RouteDecision::NoRoute => None,
        }
    }
}

/// An address family's integer form: `u32` for IPv4, `u128` for IPv6.
pub(crate) trait Bits: Copy + Ord + core::fmt::Debug {
    const ZERO: Self;
    const MAX: Self;
    /// The network mask of a prefix of `len` bits (`len <= WIDTH`).
    fn mask(len: u8) -> Self;
    fn and(self, other: Self) -> Self;
    fn or(self, other: Self) -> Self;
    fn not(self) -> Self;
    fn succ(self) -> Self;
}

macro_rules! impl_bits {
    ($t:ty, $w:expr) => {
        impl Bits for $t {
            const ZERO: Self = 0;
            const MAX: Self = <$t>::MAX;
            #[inline]
            fn mask(len: u8) -> Self {
                if len == 0 {
                    0
                } else {
                    <$t>::MAX << ($w - len)
                }
            }
            #[inline]
            fn and(self, other: Self) -> Self {
                self & other
            }
            #[inline]
            fn or(self, other: Self) -> Self {
                self | other
            }
            #[inline]
            fn not(self) -> Self {
                !self
            }
            #[inline]
            fn succ(self) -> Self {
                self + 1
            }
        }
    };
}

impl_bits!(u32, 32);
impl_bits!(u128, 128);

/// No bucket.
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket<A> {
    net: A,
    len: u8,
    /// The longest strictly shorter prefix covering this one, or `NONE`.
    parent: u32,
    /// This bucket's routes are `entries[first..first + count]`, sorted by (weight, order).
    first: u32,
    count: u32,
}

impl<A: Bits> Bucket<A> {
    fn last(&self) -> A {
        self.net.or(A::mask(self.len).not())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry<A> {
    src_net: A,
    src_mask: A,
    weight: u32,
    route: RouteId,
}

/// One address family's routes of one router, compiled for lookup (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteTable<A> {
    /// Start address of each elementary interval, ascending; `starts[0] == 0`.
    starts: Box<[A]>,
    /// The bucket of each interval (its longest matching prefix), or `NONE`.
    labels: Box<[u32]>,
    buckets: Box<[Bucket<A>]>,
    entries: Box<[Entry<A>]>,
}

impl<A: Bits> Default for RouteTable<A> {
    fn default() -> Self {
        RouteTable {
            starts: Box::new([A::ZERO]),
            labels: Box::new([NONE]),
            buckets: Box::new([]),
            entries: Box::new([]),
        }
    }
}

/// A route in integer form, for [`RouteTable::build`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteKey<A> {
    pub dst: A,
    pub dst_len: u8,
    pub src: A,
    pub src_len: u8,
    pub weight: u32,
    pub route: RouteId,
}

impl<A: Bits> RouteTable<A> {
    /// Compiles `routes`; their order breaks ties between equal weights.
    pub(crate) fn build(routes: &[RouteKey<A>]) -> Self {
        // Sort by (dst, len, weight, order): outer prefixes before the ones they contain, each
        // prefix's routes together and in preference order.
        let mut keyed: Vec<(usize, RouteKey<A>)> = routes
            .iter()
            .map(|r| {
                let mut r = *r;
                r.dst = r.dst.and(A::mask(r.dst_len));
                r.src = r.src.and(A::mask(r.src_len));
                r
            })
            .enumerate()
            .collect();
        // The index makes the key unique: an unstable sort gives the stable order, without a buffer.
        keyed.sort_unstable_by_key(|(i, a)| (a.dst, a.dst_len, a.weight, *i));

        // Sized once (a compile builds every router's tables: growing them was an eighth of it).
        let mut buckets: Vec<Bucket<A>> = Vec::with_capacity(keyed.len());
        let mut entries = Vec::with_capacity(keyed.len());
        for (_, r) in &keyed {
            let same = buckets.last().is_some_and(|b| b.net == r.dst && b.len == r.dst_len);
            if !same {
                buckets.push(Bucket {
                    net: r.dst,
                    len: r.dst_len,
                    parent: NONE,
                    first: entries.len() as u32,
                    count: 0,
                });
            }
            if let Some(b) = buckets.last_mut() {
                b.count += 1;
            }
            entries.push(Entry { src_net: r.src, src_mask: A::mask(r.src_len), weight: r.weight, route: r.route });
        }

        // Sweep the buckets in (net, len) order with a stack of the prefixes enclosing the current
        // position; every prefix start and every prefix end + 1 starts an interval.
        // At most two intervals start per prefix (at it, and after it), plus the first.
        let mut starts: Vec<A> = Vec::with_capacity(2 * buckets.len() + 1);
        let mut labels: Vec<u32> = Vec::with_capacity(2 * buckets.len() + 1);
        starts.push(A::ZERO);
        labels.push(NONE);
        let emit = |starts: &mut Vec<A>, labels: &mut Vec<u32>, at: A, label: u32| {
            let n = starts.len();
            if starts[n - 1] == at {
                labels[n - 1] = label;
                if n >= 2 && labels[n - 2] == label {
                    starts.pop();
                    labels.pop();
                }
            } else if labels[n - 1] != label {
                starts.push(at);
                labels.push(label);
            }
        };
        // Prefixes nest at most 129 deep (IPv6's /0 to /128).
        let mut stack: Vec<u32> = Vec::with_capacity(buckets.len().min(129));
        for i in 0..buckets.len() {
            let net = buckets[i].net;
            while let Some(&top) = stack.last() {
                let end = buckets[top as usize].last();
                if end >= net {
                    break;
                }
                stack.pop();
                // `end < net <= MAX`, so `end + 1` does not overflow.
                emit(&mut starts, &mut labels, end.succ(), stack.last().copied().unwrap_or(NONE));
            }
            buckets[i].parent = stack.last().copied().unwrap_or(NONE);
            emit(&mut starts, &mut labels, net, i as u32);
            stack.push(i as u32);
        }
        while let Some(top) = stack.pop() {
            let end = buckets[top as usize].last();
            if end != A::MAX {
                emit(&mut starts, &mut labels, end.succ(), stack.last().copied().unwrap_or(NONE));
            }
        }
        RouteTable {
            starts: starts.into_boxed_slice(),
            labels: labels.into_boxed_slice(),
            buckets: buckets.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
        }
    }

    /// The route for (`src`, `dst`), choosing among equal-cost routes with `hash % n`. Allocation-free.
    pub(crate) fn lookup(&self, src: A, dst: A, hash: u32) -> Option<RouteId> {
        // `starts[0] == 0 <= dst`, so the partition point is at least 1.
        let i = self.starts.partition_point(|s| *s <= dst) - 1;
        let mut b = self.labels[i];
        while b != NONE {
            let bucket = &self.buckets[b as usize];
            let routes = &self.entries[bucket.first as usize..(bucket.first + bucket.count) as usize];
            let matches = |e: &Entry<A>| src.and(e.src_mask) == e.src_net;
            // Routes are sorted by weight: the first source match sets the weight, then count the
            // matches of that weight.
            let mut weight = None;
            let mut n = 0u32;
            for e in routes {
                if let Some(w) = weight {
                    if e.weight != w {
                        break;
                    }
                }
                if matches(e) {
                    weight = Some(e.weight);
                    n += 1;
                }
            }
            if let Some(w) = weight {
                let mut k = hash % n;
                for e in routes {
                    if e.weight == w && matches(e) {
                        if k == 0 {
                            return Some(e.route);
                        }
                        k -= 1;
                    }
                }
            }
            b = bucket.parent;
        }
        None
    }

    /// Number of elementary intervals (for tests and memory accounting).
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.starts.len()
    }
}

/// Both families' compiled tables of one router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoutingTables {
    pub v4: RouteTable<u32>,
    pub v6: RouteTable<u128>,
}

impl RoutingTables {
    pub(crate) fn build(routes: &[Route]) -> Self {
        let v4_count = routes.iter().filter(|r| r.dst.addr().is_ipv4()).count();
        let mut v4 = Vec::with_capacity(v4_count);
        let mut v6 = Vec::with_capacity(routes.len() - v4_count);
        for (i, r) in routes.iter().enumerate() {
            let route = RouteId(i as u32);
            match (r.src, r.dst) {
                (IpNet::V4(s), IpNet::V4(d)) => v4.push(RouteKey {
                    dst: u32::from(d.network()),
                    dst_len: d.prefix_len(),
                    src: u32::from(s.network()),
                    src_len: s.prefix_len(),
                    weight: r.weight,
                    route,
                }),
                (IpNet::V6(s), IpNet::V6(d)) => v6.push(RouteKey {
                    dst: u128::from(d.network()),
                    dst_len: d.prefix_len(),
                    src: u128::from(s.network()),
                    src_len: s.prefix_len(),
                    weight: r.weight,
                    route,
                }),
                // Refused by the builder.
                _ => {}
            }
        }
        RoutingTables { v4: RouteTable::build(&v4), v6: RouteTable::build(&v6) }
    }
}

/// A router's routes with their lookup tables: built once by the [`SnapshotBuilder`](super::SnapshotBuilder)
/// and shared, not copied, by every later snapshot in which the router's routes and ports did not
/// change ([`SnapshotBuilder::reuse_routes`](super::SnapshotBuilder::reuse_routes)), so a write
/// rebuilds only the routers it touched. Dereferences to the routes, which [`RouteId`]s index:
/// configured ones first, in the order they were added, then the automatic port routes.
#[derive(Debug, Clone)]
pub struct RouteSet(Arc<RouteSetInner>);

#[derive(Debug)]
struct RouteSetInner {
    routes: Box<[Route]>,
    tables: RoutingTables,
    /// Hash of `routes`, for the router's fingerprint (`diff.rs`): computed with the tables, so
    /// fingerprinting a snapshot does not hash the routes of every router again.
    fingerprint: u64,
}

impl RouteSet {
    /// Compiles `routes` (already checked by the builder).
    pub(crate) fn new(routes: Vec<Route>) -> RouteSet {
        let tables = RoutingTables::build(&routes);
        let fingerprint = super::diff::hash_of(&routes);
        RouteSet(Arc::new(RouteSetInner { routes: routes.into_boxed_slice(), tables, fingerprint }))
    }

    pub(crate) fn tables(&self) -> &RoutingTables {
        &self.0.tables
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.0.fingerprint
    }

    /// Whether `self` and `other` are one set (shared between snapshots), not two equal ones.
    pub fn same(&self, other: &RouteSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for RouteSet {
    type Target = [Route];
    fn deref(&self) -> &[Route] {
        &self.0.routes
    }
}

impl PartialEq for RouteSet {
    fn eq(&self, other: &RouteSet) -> bool {
        // The tables and the fingerprint are derived from the routes.
        self.same(other) || self.0.routes == other.0.routes
    }
}

impl Eq for RouteSet {}

/// Turns the route chosen into a decision and records what it depended on.
pub(crate) fn decide(
    router: RouterId,
    routes: &[Route],
    chosen: Option<RouteId>,
    dst: IpAddr,
    deps: &mut DeviceSet,
) -> RouteDecision {
    deps.insert(DeviceId::Router(router));
    let Some(id) = chosen else { return RouteDecision::NoRoute };
    let r = &routes[id.index()];
    match (r.kind, r.port) {
        (RouteType::Normal, Some(port)) => {
            deps.insert(DeviceId::Port(port));
            RouteDecision::Forward { port, next_hop: r.gateway.unwrap_or(dst), route: id }
        }
        (RouteType::Local, Some(port)) => {
            deps.insert(DeviceId::Port(port));
            RouteDecision::Local { port, route: id }
        }
        (RouteType::Reject, _) => RouteDecision::Reject { route: id },
        // Blackhole, or a Normal/Local route without a port (refused by the builder).
        _ => RouteDecision::Blackhole { route: id },
    }
}

pub(crate) fn v4_bits(a: Ipv4Addr) -> u32 {
    u32::from(a)
}

pub(crate) fn v6_bits(a: Ipv6Addr) -> u128 {
    u128::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key4(dst: u32, dst_len: u8, src: u32, src_len: u8, weight: u32, i: u32) -> RouteKey<u32> {
        RouteKey { dst, dst_len, src, src_len, weight, route: RouteId(i) }
    }

    /// The obvious model: filter, longest destination prefix, lowest weight, `hash % n` in order.
    fn naive<A: Bits>(routes: &[RouteKey<A>], src: A, dst: A, hash: u32) -> Option<RouteId> {
        let m = |net: A, len: u8, a: A| a.and(A::mask(len)) == net.and(A::mask(len));
        let matching: Vec<(usize, &RouteKey<A>)> =
            routes.iter().enumerate().filter(|(_, r)| m(r.dst, r.dst_len, dst) && m(r.src, r.src_len, src)).collect();
        let best_len = matching.iter().map(|(_, r)| r.dst_len).max()?;
        let at_len: Vec<_> = matching.into_iter().filter(|(_, r)| r.dst_len == best_len).collect();
        let w = at_len.iter().map(|(_, r)| r.weight).min()?;
        let mut best: Vec<_> = at_len.into_iter().filter(|(_, r)| r.weight == w).collect();
        best.sort_by_key(|(i, _)| *i);
        Some(best[(hash as usize) % best.len()].1.route)
    }

    #[test]
    fn empty_table() {
        let t = RouteTable::<u32>::build(&[]);
        assert_eq!(t.lookup(1, 2, 3), None);
        assert_eq!(t.intervals(), 1);
    }

    #[test]
    fn nested_and_edge_prefixes() {
        let routes = [
            key4(0, 0, 0, 0, 0, 0),
            key4(0x0a00_0000, 8, 0, 0, 0, 1),
            key4(0x0a01_0000, 16, 0, 0, 0, 2),
            key4(0x0a01_0100, 24, 0, 0, 0, 3),
            key4(u32::MAX, 32, 0, 0, 0, 4),
            key4(0, 32, 0, 0, 0, 5),
            key4(0x0aff_ff00, 24, 0, 0, 0, 6),
        ];
        let t = RouteTable::build(&routes);
        for (dst, want) in [
            (0x0a01_0105u32, 3),
            (0x0a01_0205, 2),
            (0x0a02_0000, 1),
            (0x0b00_0000, 0),
            (u32::MAX, 4),
            (u32::MAX - 1, 0),
            (0, 5),
            (1, 0),
            (0x0aff_ffff, 6),
            (0x0aff_fe00, 1),
            (0x09ff_ffff, 0),
        ] {
            assert_eq!(t.lookup(0, dst, 0), Some(RouteId(want)), "{dst:#x}");
        }
        // 11 distinct boundaries at most: 2n + 1 intervals.
        assert!(t.intervals() <= 2 * routes.len() + 1);
    }

    #[test]
    fn source_mismatch_falls_back_to_a_shorter_prefix() {
        let routes = [key4(0x0a00_0000, 8, 0, 0, 0, 0), key4(0x0a01_0000, 16, 0xc0a8_0000, 16, 0, 1)];
        let t = RouteTable::build(&routes);
        assert_eq!(t.lookup(0xc0a8_0101, 0x0a01_0101, 0), Some(RouteId(1)));
        assert_eq!(t.lookup(0xc0a9_0101, 0x0a01_0101, 0), Some(RouteId(0)));
    }

    fn interesting_u32() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0u32),
            Just(u32::MAX),
            (0u32..16).prop_map(|x| 0x0a00_0000 | (x << 20)),
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| 0x0a00_0000 | (u32::from(a) << 16) | u32::from(b)),
            any::<u32>(),
        ]
    }

    fn route4() -> impl Strategy<Value = (u32, u8, u32, u8, u32)> {
        (interesting_u32(), 0u8..=32, prop_oneof![Just(0u32), interesting_u32()], 0u8..=32, 0u32..3)
            .prop_map(|(d, dl, s, sl, w)| (d, dl, s, if s == 0 { 0 } else { sl % 12 }, w))
    }

    fn interesting_u128() -> impl Strategy<Value = u128> {
        prop_oneof![
            Just(0u128),
            Just(u128::MAX),
            (0u128..16).prop_map(|x| (0x2001_0db8u128 << 96) | (x << 80)),
            (any::<u16>(), any::<u8>())
                .prop_map(|(a, b)| (0x2001_0db8u128 << 96) | (u128::from(a) << 64) | u128::from(b)),
            any::<u128>(),
        ]
    }

    proptest! {
        /// The interval table equals the linear-scan model on random IPv4 tables.
        #[test]
        fn lookup_v4_equals_linear_scan(
            routes in proptest::collection::vec(route4(), 0..40),
            probes in proptest::collection::vec((interesting_u32(), interesting_u32(), any::<u32>()), 1..40),
        ) {
            let keys: Vec<_> = routes.iter().enumerate()
                .map(|(i, &(d, dl, s, sl, w))| key4(d, dl, s, sl, w, i as u32)).collect();
            let t = RouteTable::build(&keys);
            prop_assert!(t.intervals() <= 2 * keys.len() + 1);
            for &(src, dst, hash) in &probes {
                prop_assert_eq!(t.lookup(src, dst, hash), naive(&keys, src, dst, hash));
                // Probing next to every prefix boundary catches off-by-one interval ends.
                for r in &keys {
                    let first = r.dst & u32::mask(r.dst_len);
                    let last = first | !u32::mask(r.dst_len);
                    for a in [first.wrapping_sub(1), first, last, last.wrapping_add(1)] {
                        prop_assert_eq!(t.lookup(src, a, hash), naive(&keys, src, a, hash));
                    }
                }
            }
        }

        /// The same for IPv6.
        #[test]
        fn lookup_v6_equals_linear_scan(
            routes in proptest::collection::vec(
                (interesting_u128(), 0u8..=128, prop_oneof![Just(0u128), interesting_u128()], 0u8..=128, 0u32..3), 0..30),
            probes in proptest::collection::vec((interesting_u128(), interesting_u128(), any::<u32>()), 1..30),
        ) {
            let keys: Vec<_> = routes.iter().enumerate()
                .map(|(i, &(dst, dst_len, src, sl, weight))| RouteKey {
                    dst, dst_len, src, src_len: if src == 0 { 0 } else { sl % 40 }, weight, route: RouteId(i as u32),
                }).collect();
            let t = RouteTable::build(&keys);
            for &(src, dst, hash) in &probes {
                prop_assert_eq!(t.lookup(src, dst, hash), naive(&keys, src, dst, hash));
                for r in &keys {
                    let first = r.dst & u128::mask(r.dst_len);
                    let last = first | !u128::mask(r.dst_len);
                    for a in [first.wrapping_sub(1), first, last, last.wrapping_add(1)] {
                        prop_assert_eq!(t.lookup(src, a, hash), naive(&keys, src, a, hash));
                    }
                }
            }
        }
    }
}
