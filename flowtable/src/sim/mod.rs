//! The simulation: a packet's walk through the virtual topology, turned into flow [`Actions`].
//!
//! [`simulate`] takes a frame received on a local DPDK port (a tunnelled one on the underlay port
//! is decapsulated first: [`decap`], then [`simulate_from`] the port its key names), finds the
//! exterior port it entered through and follows the packet through routers and bridges:
//!
//! - **Router ports**: port inbound chain, router infilter, ARP / neighbour solicitation / ICMP
//!   echo answers for port addresses, route lookup (ECMP by [`FlowKey::symmetric_hash`]), TTL /
//!   hop limit, router outfilter and port outbound chain, interior router-router links (bounded by
//!   [`MAX_ROUTER_HOPS`]); at an exterior local port the MTU and the next-hop MAC from the per-core
//!   [`CoreState`]; at a port linked to a bridge the next-hop MAC from a router port on that bridge
//!   owning the address (the topology knows it) or the neighbour cache, then into the bridge (the
//!   MTU where it leaves it, the smallest of a flood's legs); at a port bound on a remote host the
//!   next-hop MAC, then the tunnel. An IP packet received as a link-layer broadcast or multicast
//!   is routed only to an IP multicast or broadcast address ([`DropReason::LinkBroadcast`]). An
//!   IPv4 packet with a source route option is dropped as it enters a router, before its chains,
//!   whether for the router or to be forwarded ([`DropReason::SourceRouted`]), and one whose
//!   options cannot be walked is answered a parameter problem ([`DropReason::Ipv4BadOptions`]);
//!   other options are forwarded as they are (not updated: record route and timestamp record
//!   nothing in transit; an echo reply records the router in them). An IPv6 packet for a port address has its extension headers processed as
//!   their destination must ([`crate::wire::ipv6_ext_headers_at_destination`],
//!   [`DropReason::Ipv6ExtensionHeader`]).
//! - **Bridge ports**: port inbound chain, bridge inbound chain, MAC learning (frames from
//!   exterior ports, tunnels included; source MAC -> ingress port, per core, with aging:
//!   [`MacTable`]), destination lookup: static entries first, then the MACs of router ports linked
//!   to the bridge, then learned entries; known unicast goes out of that port (bridge outbound
//!   chain, port outbound chain), unknown unicast, broadcast and multicast are flooded to every
//!   other port ([`SimResult::flood`], at most [`MAX_LEGS`] copies, local or tunnel [`Leg`]s). A
//!   router port on a flood sees a copy: it learns from ARP / NDP and answers an ARP request or
//!   neighbour solicitation for its address (into `out`). At most [`MAX_DEVICES`] port entries per
//!   packet.
//! - **Tunnels** (`tunnel.rs`): a port bound on a remote host is reached by encapsulating toward
//!   the host ([`Action::Encap`]; VXLAN or GRE, [`outer_header`]) out of the snapshot's underlay
//!   port, after the MTU check against the underlay MTU less the encapsulation; the underlay next
//!   hop's MAC comes from the neighbour cache under [`UNDERLAY_PORT`] (ARP on the underlay port is
//!   answered for the underlay address and learned from). Answers to a frame that came through a
//!   tunnel go back through it.
//!
//! It returns the [`Actions`] (already applied to the frame), the outer headers to prepend, the
//! devices the decision depended on and whether the result may be cached; a frame to send besides
//! (an ICMP error, an ARP request or reply, a neighbour solicitation or advertisement) is built into
//! the caller's `out` buffer ([`Generated`], with its legs). A frame dropped because its next hop is
//! not resolved yet names the neighbour in [`SimResult::hold`], so the caller can keep it until the
//! answer (the pipeline's resolution queue).
//!
//! [`apply`] runs cached actions on the next frames of the flow. Neither allocates.
//!
//! | file | what |
//! | --- | --- |
//! | `action.rs` | [`Action`], [`Actions`], [`DropReason`], [`apply`] |
//! | `neighbour.rs` | [`NeighbourCache`], [`CoreState`] |
//! | `mac.rs` | [`MacTable`]: the bridges' learned MACs |
//! | `conntrack.rs` | [`ConnTrack`]: per-core connection tracking for `flow` conditions |
//! | `tunnel.rs` | [`outer_header`], [`decap`], the underlay |
//! | `generate.rs` | ICMP errors, ARP requests and polls, neighbour solicitations, probes and advertisements |
//!
//! # What is cached
//!
//! Forwarding (to local ports and into tunnels), blackhole and rule drops are cacheable: they
//! depend only on the flow key and the devices in `deps`. TTL and length are not in the flow key,
//! so a forwarding list carries [`Action::CheckMtu`] and [`Action::DecTtl`], which fail before
//! touching the frame; the caller then simulates that one packet, which answers with the ICMP
//! error. The outer headers of a tunnel are built when the cached list is applied, from the
//! snapshot and the neighbour cache, and before any rewrite, so an underlay next hop that expired
//! fails with [`DropReason::NeighbourUnresolved`] on an untouched frame (simulate it). Everything
//! that answers or generates a frame, learns a neighbour, floods, or fails on something outside
//! the key is not cached, with one exception: a drop that earned an ICMP error on a decision the
//! key settles (no route, a reject route or rule at a router) is cached as
//! [`Actions::answer_drop`], which the caller drops and simulates again only for the answer, while
//! its ICMP error rate allows (or as a plain drop when RFC 1812 / 4443 forbid the answer, which
//! the key settles too). A cached flow also depends on the neighbour entry it used: the flow
//! cache's hard timeout should not exceed the neighbour lifetime
//! ([`CoreConfig::neighbour_lifetime`]). The simulation marks the entries it forwards with in use
//! ([`NeighbourCache::use_entry`]), and the caller polls those that went stale
//! ([`NeighbourCache::due_polls`], [`neighbour_poll`]), so the answer refreshes them before the
//! flows carrying their MAC are simulated again. The flow key of a decapsulated frame is the inner frame's
//! with [`IngressPoint::flow_id`] of the tunnel port: [`decap`] has checked the outer source
//! against the port's host before the key is built, so the port is all the decision depends on.
//!
//! # MAC learning and the flow cache
//!
//! Learning is a side effect of the simulation, and a flow cache hit skips the simulation. If it
//! only happened there, a long cached flow from a VM would let its MAC age out, and the traffic
//! *to* the VM would be flooded. So a flow entering a bridge from an exterior port carries
//! [`Action::Learn`] with the ingress bridge port: [`apply`] refreshes the entry on every hit (the
//! source MAC is in the frame, and the ingress is in the flow key, so the learned port is the same
//! for every packet of the flow). A learn that *moves* a MAC to another port records the bridge in
//! [`MacTable::take_moved`]; the caller invalidates the bridge's device tag, which drops the cached
//! flows that were unicast to the old port (every flow through a bridge depends on it). Flows to a
//! MAC whose entry ages out keep their port until they expire: the flow cache's hard timeout
//! should not exceed [`CoreConfig::mac_aging`]. Floods are never cached: once the destination
//! answers, its MAC is learned and the next packet is simulated into a cacheable unicast.
//!
//! # Connection tracking and the flow cache
//!
//! Rules with a `flow fwd-flow|return-flow` condition read [`ConnTrack`] (per core, see
//! `conntrack.rs`). At the first chain on the path that has such a rule, the simulation asks it
//! whether the packet replies on a known connection (its tuple at the device it entered through),
//! once per packet, and evaluates every chain with that answer; packets whose path has no such
//! chain never look (a flow cache hit never does). When a chain on the path used conntrack and the packet is forwarded
//! (or flooded), the action list carries [`Action::Track`] just before the output: executed by the
//! simulation itself and by [`apply`] on every cache hit, it records the connection (a forward
//! packet: its replies' key at the device it left through) or refreshes it (a return packet), and
//! re-creates it if it expired or was evicted. A connection therefore lives as long as either
//! direction's cached flow is hit; the flow cache's idle timeout should not exceed
//! [`CoreConfig::conntrack_idle`].
//!
//! A result that used conntrack and was *not* forwarded (a rule drop or reject, typically of a
//! would-be reply arriving before its connection) is not cacheable: cached, it would keep dropping
//! the replies of a connection opened later with the reverse tuple. The cost is that unsolicited
//! traffic a stateful chain drops is simulated packet by packet (a full walk per packet instead of
//! a cache hit), which bounds the drop rate of such floods by the simulation's speed.
//!
//! Decapsulated traffic is steered to a core by its outer headers; with several workers pmd/
//! hands it to the core that owns its connection first. Connections survive snapshot changes
//! (device indices are stable across rebuilds); an index reused by another device keeps the old
//! entries until they idle out. ICMP errors are looked up by the connection they quote
//! (`conntrack.rs`); non-initial fragments carry no ports, so they never match a TCP/UDP
//! connection.
//!
//! # Simplifications
//!
//! ICMP errors, ARP / NDP and echo replies go straight back where the frame came from (its DPDK
//! port or tunnel) to the frame's Ethernet source, with the MAC of the first router port the packet
//! entered and the address of the port it entered the current router through as source (what
//! traceroute expects); the return path's chains, routes and bridges are not simulated. Generated
//! frames carry no VLAN tag. Router ports are untagged: a frame with a VLAN ID is dropped there
//! ([`DropReason::VlanAtRouterPort`]); a priority-tagged one (VID 0) is routed and leaves
//! untagged, as the router's answers to it do ([`Action::SetEthDstUntag`]: the frame to send then
//! starts after the tag, [`SimResult::frame_start`]); a bridge forwards a tag as it came. A routed packet flooded by a bridge (its next hop's MAC aged out) is
//! not delivered to router ports on that bridge. An ARP request / NS a router sends onto a bridge
//! goes to the bridge's exterior ports without their chains. Tunnels are IPv4 outside (inner
//! frames may be IPv6); the outer headers are VXLAN without UDP checksum or GRE with a key only.

mod action;
mod compiled;
mod conntrack;
mod generate;
mod learning;
mod mac;
mod neighbour;
mod tunnel;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use self::action::{apply, apply_into, Action, Actions, Applied, DropReason, Output, ReplyKind, MAX_ACTIONS};
pub use self::compiled::{CachedActions, Hop};
pub use self::conntrack::{port_zone as conntrack_port_zone, zone as conntrack_zone, ConnKey, ConnTrack};
pub use self::generate::{
    arp_poll, arp_request, icmp_error, neighbour_advert, neighbour_probe, neighbour_solicit, IcmpError,
};
pub use self::learning::{Learning, Outbox, OUTBOX_CAPACITY};
pub use self::mac::{Learned, MacTable};
pub use self::neighbour::{
    Ask, CoreConfig, CoreState, InUse, NeighbourCache, Poll, DEFAULT_REQUESTS_PER_SEC, DEFAULT_REQUEST_BURST,
    MAX_DPDK_PORTS,
};
pub use self::tunnel::{
    decap, decap_nic_verified, outer_header, outer_header_cached, prepare_outer, ready_outer, tunnel_ingress_id,
    vxlan_source_port, Decap, Outer, PendingOuter, ReadyOuter, MAX_OUTER_LEN, OUTER_TTL, UNDERLAY_PORT,
    VXLAN_SPORT_MIN,
};

use self::action::{execute, learnable};
use self::tunnel::{tunnel_of, underlay_arp};
use crate::chain::{evaluate_tracked, EvalContext, PacketMatchFields, Verdict};
use crate::flow::FlowKey;
use crate::topology::{
    Binding, Bridge, BridgeId, ChainId, DeviceId, DeviceSet, Encap, Port, PortId, PortKind, PortLink, RouteDecision,
    RouterPort, Snapshot, Underlay,
};
use crate::wire::{
    ipv6_ext_headers_at_destination, pop_vlan_tag, record_in_ipv4_reply, unwalkable_ipv4_option, ArpOperation,
    ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, Fragment, Headers, Icmpv4DstUnreachable,
    Icmpv4Message, Icmpv4Packet, Icmpv6DstUnreachable, Icmpv6Message, Icmpv6Packet, Icmpv6ParamProblem, Icmpv6Repr,
    IpProtocol, Ipv4Fields, Ipv4OptionsClass, Ipv4Packet, Ipv6AtDestination, Ipv6Packet, ARP_PACKET_LEN,
    ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, L3, L4, VLAN_TAG_LEN,
};

/// Most routers a packet crosses before the simulation calls it a loop.
pub const MAX_ROUTER_HOPS: u8 = 8;

/// Most ports a packet enters (through exterior ports, bridges and router-bridge links) before the
/// simulation calls it a loop.
pub const MAX_DEVICES: u8 = 16;

/// Most copies a flood sends; further legs are counted drops ([`SimResult::dropped_legs`]).
pub const MAX_LEGS: usize = 16;

/// TTL / hop limit of replies the router generates.
const REPLY_TTL: u8 = 64;

/// One way out of the gateway for a frame copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Out of a local DPDK port as it is.
    Local(u16),
    /// Encapsulated toward the host remote port `port` is bound on ([`outer_header`]).
    Tunnel {
        /// The remote-bound port.
        port: PortId,
        /// VXLAN UDP source port.
        sport: u16,
    },
}

/// The ways out a frame takes: a fixed-capacity list, no heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Legs {
    legs: [Leg; MAX_LEGS],
    len: u8,
}

impl Default for Legs {
    fn default() -> Self {
        Legs::new()
    }
}

impl Legs {
    /// No leg.
    pub const fn new() -> Legs {
        Legs { legs: [Leg::Local(0); MAX_LEGS], len: 0 }
    }

    /// One leg.
    pub const fn one(leg: Leg) -> Legs {
        let mut l = Legs::new();
        l.legs[0] = leg;
        l.len = 1;
        l
    }

    /// Adds a leg; `false` when the list is full (the caller counts the drop). A leg already
    /// listed is not added twice.
    pub fn push(&mut self, leg: Leg) -> bool {
        if self.as_slice().contains(&leg) {
            return true;
        }
        match self.legs.get_mut(usize::from(self.len)) {
            Some(l) => {
                *l = leg;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The legs, in order.
    pub fn as_slice(&self) -> &[Leg] {
        &self.legs[..usize::from(self.len)]
    }

    /// No leg.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of legs.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

impl core::fmt::Debug for Legs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Most devices a walk records as traversed: each port entry ([`MAX_DEVICES`]) with its bridge and
/// the bridge port it leaves by, each router hop ([`MAX_ROUTER_HOPS`]) with its egress port and the
/// peer it enters, and the two a flood leg adds while its chains run.
const MAX_TRAVERSED: usize = 3 * MAX_DEVICES as usize + 3 * MAX_ROUTER_HOPS as usize + 2;

/// The devices (ports, routers, bridges) the packet went through so far in this walk, the device
/// it is in included, for `traversed-device` (MidoNet matches the device tags the packet
/// collected so far). Fixed capacity, no heap: the walk's limits bound what it records.
#[derive(Clone, Copy)]
struct Traversed {
    ids: [DeviceId; MAX_TRAVERSED],
    len: u8,
}

impl Traversed {
    const fn new() -> Traversed {
        Traversed { ids: [DeviceId::Router(crate::topology::RouterId(0)); MAX_TRAVERSED], len: 0 }
    }

    /// Records `id` once. The capacity covers every walk the limits allow, so a full list never
    /// loses one that matters (the walk stops right after).
    fn push(&mut self, id: DeviceId) {
        if self.as_slice().contains(&id) {
            return;
        }
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[DeviceId] {
        &self.ids[..usize::from(self.len)]
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Forgets what was recorded after the first `len` (a flood leg's ports).
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len as u8);
    }
}

/// A frame the simulation built into the caller's `out` buffer, to send besides (or instead of)
/// the received one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generated {
    /// Its length: the frame is `out[..len]`.
    pub len: usize,
    /// The local DPDK ports to send it out of (one, or several for an ARP request flooded on a
    /// bridge).
    pub legs: Legs,
    /// An ICMP or ICMPv6 error (time exceeded, unreachable, fragmentation needed, packet too
    /// big), which the sender rate-limits (RFC 1812 4.3.2.8, RFC 4443 2.4 f); else an answer or
    /// a request (ARP, NDP) the router needs.
    pub icmp_error: bool,
}

/// What [`simulate`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimResult {
    /// What was done to the frame (already applied): forward, reply in place, flood, or drop.
    pub actions: Actions,
    /// Every device the decision depended on.
    pub deps: DeviceSet,
    /// Whether `actions` may be installed in the flow cache for this frame's flow key.
    pub cacheable: bool,
    /// A frame built into `out`, if any.
    pub generated: Option<Generated>,
    /// When `actions` ends in [`Action::Flood`]: send the (rewritten) frame out of each of these
    /// ports. Never cached.
    pub flood: Legs,
    /// Flood copies not sent because there were more than [`MAX_LEGS`]: counted as
    /// [`DropReason::FloodLegsExceeded`].
    pub dropped_legs: u16,
    /// When `actions` ends in [`Action::Encap`]: the outer headers to put in front of the frame.
    pub outer: Outer,
    /// Bytes of outer headers (a tunnel's) the caller strips from the received frame before
    /// sending it: set when [`simulate`] decapsulated a frame received on the underlay port.
    pub decap_len: usize,
    /// Bytes at the front of the (inner) frame an answer built in place no longer uses: an echo
    /// reply leaves out the request's IPv6 extension headers by moving the headers before them
    /// forward. Part of [`SimResult::frame_start`].
    pub trimmed: usize,
    /// Set with [`DropReason::NeighbourUnresolved`]: the frame is unchanged and may be held (the
    /// resolution queue) and simulated again once the neighbour cache knows this address; the
    /// ARP request / NS asking for it is in `generated`.
    pub hold: Option<Hold>,
}

/// The neighbour a held frame waits for: [`NeighbourCache::lookup`] of `(port, addr)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hold {
    /// The router port (or [`UNDERLAY_PORT`]) the address is resolved on.
    pub port: PortId,
    /// The next hop.
    pub addr: IpAddr,
}

impl SimResult {
    fn new() -> SimResult {
        SimResult {
            actions: Actions::new(),
            deps: DeviceSet::new(),
            cacheable: true,
            generated: None,
            flood: Legs::new(),
            dropped_legs: 0,
            outer: Outer::NONE,
            decap_len: 0,
            trimmed: 0,
            hold: None,
        }
    }

    fn drop(mut self, reason: DropReason) -> SimResult {
        self.actions = Actions::drop(reason);
        self
    }

    fn uncached_drop(mut self, reason: DropReason) -> SimResult {
        self.cacheable = false;
        self.drop(reason)
    }

    /// Where the frame to send starts in the buffer [`simulate`] was given: after the tunnel's
    /// outer headers ([`SimResult::decap_len`]), what an answer left out ([`SimResult::trimmed`])
    /// and the 802.1Q tag a router removed ([`Action::SetEthDstUntag`], [`Actions::untags`]). The
    /// caller drops what is before it.
    pub fn frame_start(&self) -> usize {
        self.decap_len + self.trimmed + if self.actions.untags() { VLAN_TAG_LEN } else { 0 }
    }
}

/// Where the packet entered the gateway, for answers.
struct Ingress<'a> {
    back: Leg,
    port: &'a RouterPort,
}

/// What the routers crossed so far will do to the frame, applied when it leaves.
#[derive(Clone, Copy, Default)]
struct Pending<'a> {
    /// Bridge port whose MAC table learned the frame's source.
    learn: Option<PortId>,
    /// Routers crossed (TTL decrement).
    hops: u8,
    eth_src: Option<EthernetAddress>,
    eth_dst: Option<EthernetAddress>,
    /// The port the last router was entered through: source of ICMP errors about the egress.
    routed_at: Option<&'a RouterPort>,
}

/// One packet's walk.
struct Walk<'a, 'o> {
    snap: &'a Snapshot,
    state: &'o mut CoreState,
    now: u64,
    out: &'o mut [u8],
    /// Where the frame came from (answers go back there).
    back: Leg,
    /// VXLAN source port of this flow's encapsulated copies.
    sport: u16,
    /// The first router port the packet entered (answers come from its MAC).
    first_router: Option<&'a RouterPort>,
    fields: PacketMatchFields,
    pending: Pending<'a>,
    devices: u8,
    /// Where the packet has been so far, for `traversed-device`.
    traversed: Traversed,
    /// Conntrack's answer for this packet: computed at the first chain that needs it, once.
    forward_flow: Option<bool>,
    /// The packet's connection key at the device it entered through (IP packets only); for an
    /// ICMP error, the key of the connection it quotes ([`ConnKey::related_to_error`]).
    conn_key: Option<ConnKey>,
    /// `conn_key` is an ICMP error's related key: tracking never records or refreshes it, so a
    /// result that depended on the table is not cached.
    icmp_error: bool,
    /// A chain with a `flow` condition was evaluated: the result depends on the connection table.
    conntrack_used: bool,
}

/// Where a frame entered the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngressPoint {
    /// Received on a local DPDK port.
    Local(u16),
    /// Decapsulated from a tunnel ([`decap`]): entered through this remote-bound port.
    Tunnel(PortId),
}

impl IngressPoint {
    /// The flow key ingress id: the DPDK port number, or [`tunnel_ingress_id`].
    pub const fn flow_id(self) -> u32 {
        match self {
            IngressPoint::Local(p) => p as u32,
            IngressPoint::Tunnel(port) => tunnel_ingress_id(port),
        }
    }
}

/// Simulates `frame`, received on local DPDK port `ingress_dpdk_port`, through `snap` at time `now`.
///
/// The frame is rewritten in place as the returned actions say (forwarded, flooded, or turned into
/// an ARP / echo reply); a frame to send besides is built into `out` (1514 bytes hold any of them).
/// A tunnelled frame received on the underlay port is decapsulated here: the result then applies
/// to `frame[decap_len..]` ([`SimResult::decap_len`]). Never panics and never allocates.
pub fn simulate(
    snap: &Snapshot,
    ingress_dpdk_port: u16,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    out: &mut [u8],
) -> SimResult {
    if snap.underlay().is_some_and(|u| u.dpdk_port == ingress_dpdk_port) {
        match decap(snap, frame) {
            Ok(Some(d)) => {
                let mut r =
                    simulate_from(snap, IngressPoint::Tunnel(d.port), &mut frame[d.inner_offset..], state, now, out);
                r.decap_len = d.inner_offset;
                return r;
            }
            Ok(None) => {}
            Err(reason) => return SimResult::new().uncached_drop(reason),
        }
    }
    simulate_from(snap, IngressPoint::Local(ingress_dpdk_port), frame, state, now, out)
}

/// [`simulate`] for a frame that entered at `ingress` (for a tunnel: the inner frame, after
/// [`decap`]).
pub fn simulate_from(
    snap: &Snapshot,
    ingress: IngressPoint,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    out: &mut [u8],
) -> SimResult {
    let r = SimResult::new();
    let Ok(h) = Headers::parse(frame) else {
        return r.uncached_drop(DropReason::Malformed);
    };
    let sport = vxlan_source_port(FlowKey::from_headers(0, &h).symmetric_hash());
    let (pid, back) = match ingress {
        IngressPoint::Local(dpdk_port) => {
            if let Some(u) = snap.underlay().filter(|u| u.dpdk_port == dpdk_port) {
                return underlay(r, u, dpdk_port, frame, &h, state, now);
            }
            let Some(pid) = snap.port_by_dpdk_port(dpdk_port) else {
                return r.uncached_drop(DropReason::UnknownIngress);
            };
            (pid, Leg::Local(dpdk_port))
        }
        IngressPoint::Tunnel(port) => {
            if snap.get_port(port).is_none() {
                return r.uncached_drop(DropReason::UnknownTunnelKey);
            }
            // RFC 7348 6.1: a VXLAN inner frame with a VLAN tag SHOULD be discarded (the VNI is
            // the segment). Decided here and cached (the tag is in the flow key), so that the
            // decapsulation of every packet checks nothing more.
            if h.vlan.is_some() && tunnel_of(snap, port).is_ok_and(|t| t.encap == Encap::Vxlan) {
                return r.drop(DropReason::TunnelInnerVlan);
            }
            (port, Leg::Tunnel { port, sport })
        }
    };
    let mut w = Walk {
        snap,
        state,
        now,
        out,
        back,
        sport,
        first_router: None,
        fields: PacketMatchFields::from_headers(&h),
        pending: Pending::default(),
        devices: 0,
        traversed: Traversed::new(),
        forward_flow: None,
        conn_key: None,
        icmp_error: false,
        conntrack_used: false,
    };
    // An ICMP error is looked up by the connection it quotes, and never recorded or refreshes one.
    w.conn_key = conntrack::port_zone(snap, pid).and_then(|zone| {
        let related = ConnKey::related_to_error(&h, frame, zone);
        w.icmp_error = related.is_some();
        related.or_else(|| ConnKey::from_headers(&h, zone))
    });
    let r = w.enter(r, pid, frame, &h);
    let mut r = w.finish(r, frame.len());
    // A drop (or answer) that a connection table entry could change must be simulated again
    // next time: cached, it would outlive the connection it depended on (module docs).
    let tracked = r.actions.as_slice().iter().any(|a| matches!(a, Action::Track { .. }));
    if w.conntrack_used && w.conn_key.is_some() && !tracked {
        r.cacheable = false;
    }
    r
}

/// A frame on the underlay port that is not a tunnelled packet: ARP for the underlay address is
/// answered, ARP from the underlay subnet learned; the rest dropped.
fn underlay(
    r: SimResult,
    u: &Underlay,
    dpdk_port: u16,
    frame: &mut [u8],
    h: &Headers,
    state: &mut CoreState,
    now: u64,
) -> SimResult {
    // The underlay link is untagged: a frame of a VLAN is neither learned from nor answered. A
    // priority-tagged ARP request (VID 0: no VLAN) is answered untagged, as a router answers.
    if h.vlan.is_some_and(|tag| tag.vid != 0) {
        return r.uncached_drop(DropReason::UnderlayVlan);
    }
    let (mac, kind) = match underlay_arp(u, frame, h, state, now) {
        Some(mac) => (mac, ReplyKind::ArpReply),
        None if underlay_echo(u, frame, h, now) => (state.port_mac(u.dpdk_port), ReplyKind::EchoReply),
        None => {
            let reason =
                if matches!(h.l3, L3::Arp(_)) { DropReason::ArpConsumed } else { DropReason::UnderlayNotTunnel };
            return r.uncached_drop(reason);
        }
    };
    turn_around(r, frame, h, mac, kind, Action::Output(dpdk_port))
}

/// Turns an ICMP echo request to the underlay address into its reply in place: the gateway is a
/// host on the underlay, and every host answers echo (RFC 1122 3.2.2.6), which is how an operator
/// or a compute host checks a tunnel endpoint. Only a whole request with its checksums right,
/// sent to the address itself (not as a link-layer broadcast) from an address a host can have
/// (RFC 1122 3.2.1.3; not the underlay subnet's broadcast), is answered; record route and
/// timestamp options record the gateway, other options come back as they came.
fn underlay_echo(u: &Underlay, frame: &mut [u8], h: &Headers, now: u64) -> bool {
    let L3::Ipv4(f) = h.l3 else { return false };
    let echo = matches!(h.l4, L4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest, code: 0, .. });
    let host_bits = u32::MAX.checked_shr(u32::from(u.prefix_len)).unwrap_or(0);
    let subnet_broadcast = Ipv4Addr::from(u32::from(u.address) | host_bits);
    let first = f.src.octets()[0];
    let host_source = !(first == 0 || first == 127 || first >= 224 || f.src == subnet_broadcast);
    if !echo
        || f.dst != u.address
        || f.fragment != Fragment::Unfragmented
        || !matches!(f.options, Ipv4OptionsClass::None | Ipv4OptionsClass::Other)
        || !host_source
        || h.eth_dst.is_multicast()
        || h.verify_checksums(frame).is_err()
    {
        return false;
    }
    echo_reply_v4(frame, h, u.address, now);
    true
}

/// Turns the IPv4 echo request in `frame` (parsed as `h`) into its reply from `src`, in place:
/// addresses, TTL, record route and timestamp updated with `src` and the time at `now` (RFC 1122
/// 3.2.2.6: the reply reports the round trip; other options come back as they came), checksums.
fn echo_reply_v4(frame: &mut [u8], h: &Headers, src: Ipv4Addr, now: u64) {
    let L3::Ipv4(f) = h.l3 else { return };
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut frame[h.l3_offset..h.end]) {
        p.set_src_addr(src);
        p.set_dst_addr(f.src);
        p.set_ttl(REPLY_TTL);
        if f.options == Ipv4OptionsClass::Other {
            record_in_ipv4_reply(p.options_mut(), src, rfc791_timestamp(now));
        }
        p.fill_checksum();
    }
    if let Ok(mut p) = Icmpv4Packet::new_checked(&mut frame[h.l4_offset..h.end]) {
        p.make_echo_reply_in_place();
    }
}

/// RFC 791's timestamp for a clock with no time of day: milliseconds (of the worker's clock, `now`
/// in nanoseconds), with the high bit that says "not since midnight UT".
fn rfc791_timestamp(now: u64) -> u32 {
    ((now / 1_000_000) as u32 & 0x7fff_ffff) | 0x8000_0000
}

impl<'a> Walk<'a, '_> {
    fn ingress(&self, fallback: &'a RouterPort) -> Ingress<'a> {
        Ingress { back: self.back, port: self.first_router.unwrap_or(fallback) }
    }

    /// Builds the outer headers of an answer sent back into a tunnel (forwarded frames have them
    /// already); an unresolved underlay next hop drops and sends an ARP request on the underlay.
    /// `frame_len`: the frame's as it came (an answer without its tag is shorter).
    fn finish(&mut self, mut r: SimResult, frame_len: usize) -> SimResult {
        let Some(Action::Encap { port, sport }) = r.actions.as_slice().last().copied() else { return r };
        if !r.outer.is_empty() {
            return r;
        }
        let frame_len = frame_len.saturating_sub(r.frame_start());
        match outer_header(self.snap, self.state, port, sport, frame_len, self.now) {
            Ok((_, outer)) => {
                r.outer = outer;
                r
            }
            Err(reason) => self.underlay_unresolved(r, port, reason),
        }
    }

    /// `outer_header` failed for `port`: drop; when the underlay next hop is unknown, ask for it.
    fn underlay_unresolved(&mut self, r: SimResult, port: PortId, reason: DropReason) -> SimResult {
        let mut r = r.uncached_drop(reason);
        if reason != DropReason::NeighbourUnresolved || r.generated.is_some() {
            return r;
        }
        r.generated = underlay_arp_request(self.snap, self.state, port, self.now, self.out)
            .map(|(len, dpdk_port)| Generated { len, legs: Legs::one(Leg::Local(dpdk_port)), icmp_error: false });
        r.hold = underlay_hold(self.snap, port);
        r
    }

    fn eth_src(&self, h: &Headers) -> EthernetAddress {
        self.pending.eth_src.unwrap_or(h.eth_src)
    }

    fn eth_dst(&self, h: &Headers) -> EthernetAddress {
        self.pending.eth_dst.unwrap_or(h.eth_dst)
    }

    /// The packet enters `pid` (from outside, or over an interior link).
    fn enter(&mut self, mut r: SimResult, pid: PortId, frame: &mut [u8], h: &Headers) -> SimResult {
        r.deps.insert(DeviceId::Port(pid));
        self.devices += 1;
        if self.devices > MAX_DEVICES {
            return r.drop(DropReason::DeviceLoop);
        }
        self.traversed.push(DeviceId::Port(pid));
        let port = self.snap.port(pid);
        match &port.kind {
            PortKind::Router(rp) => self.router_in(r, pid, port, rp, frame, h),
            PortKind::Bridge(bp) => self.bridge_in(r, pid, port, bp.bridge, frame, h),
        }
    }

    /// A frame entering a router through `pid`, from outside or from a bridge.
    fn router_in(
        &mut self,
        r: SimResult,
        pid: PortId,
        port: &'a Port,
        rp: &'a RouterPort,
        frame: &mut [u8],
        h: &Headers,
    ) -> SimResult {
        // A tagged frame belongs to its VLAN: routed, it would leave that VLAN onto another link
        // (VLAN hopping). IEEE 802.1Q's priority tag (VID 0) carries no VLAN: it is routed.
        // Cached: the tag is in the flow key.
        if h.vlan.is_some_and(|tag| tag.vid != 0) {
            return r.drop(DropReason::VlanAtRouterPort);
        }
        self.first_router.get_or_insert(rp);
        let dst = self.eth_dst(h);
        if dst != rp.mac && !dst.is_multicast() {
            return r.drop(DropReason::NotForUs);
        }
        // RFC 7126 4.3 / 4.4: a router drops source-routed packets by default (as Linux does with
        // accept_source_route 0), for itself or in transit. Before the chains, so no rule answers
        // one either. Cached: the options class is in the flow key.
        if let L3::Ipv4(Ipv4Fields { options: Ipv4OptionsClass::SourceRoute, .. }) = h.l3 {
            return r.drop(DropReason::SourceRouted);
        }
        // RFC 1812 4.3.3.5 / 5.2.2: a header the router cannot process is answered a parameter
        // problem pointing at what is wrong (RFC 792's pointer, at the option's type byte as Linux
        // does). Not cached: the pointer is the packet's own.
        if let L3::Ipv4(Ipv4Fields { options: Ipv4OptionsClass::Unwalkable, .. }) = h.l3 {
            let ingress = self.ingress(rp);
            let err = unwalkable_option_pointer(frame, h).map(IcmpError::V4ParamProblem);
            return answer_error(r, DropReason::Ipv4BadOptions, err, frame, h, &ingress, rp, self.out);
        }
        self.fields.eth_src = self.eth_src(h);
        self.fields.eth_dst = dst;
        let ingress = self.ingress(rp);
        let mut r = r;
        let ctx = EvalContext { group_port: Some(pid), ..EvalContext::default() };
        if let Err(v) = self.filter(port.inbound_chain, &ctx, &mut r.deps) {
            return verdict(r, v, frame, h, &ingress, Some(rp), self.out);
        }
        match h.l3 {
            L3::Arp(arp) => {
                self.arp_sender(pid, rp, &arp);
                if arp.operation == ArpOperation::Request && rp.owns(IpAddr::V4(arp.target_protocol_addr)) {
                    if let Ok(mut p) = ArpPacket::new_checked(&mut frame[h.l3_offset..]) {
                        p.make_reply_in_place(rp.mac);
                    }
                    return reply(r, frame, h, &ingress, ReplyKind::ArpReply);
                }
                r.uncached_drop(DropReason::ArpConsumed)
            }
            L3::Ipv4(_) | L3::Ipv6(_) => {
                if let L4::Icmpv6 { msg_type: Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert, .. } =
                    h.l4
                {
                    let mut r = r.uncached_drop(DropReason::NdpConsumed);
                    r.generated = self.ndp(frame, h, pid, rp);
                    return r;
                }
                self.route(r, pid, frame, h)
            }
            L3::Other => r.drop(DropReason::UnsupportedEthertype),
        }
    }

    /// The L3 walk from the router entered through `ingress_port` on.
    fn route(&mut self, mut r: SimResult, ingress_port: PortId, frame: &mut [u8], h: &Headers) -> SimResult {
        let snap = self.snap;
        let (src, dst, ttl) = match h.l3 {
            L3::Ipv4(f) => (IpAddr::V4(f.src), IpAddr::V4(f.dst), f.ttl),
            L3::Ipv6(f) => (IpAddr::V6(f.src), IpAddr::V6(f.dst), f.hop_limit),
            _ => return r.uncached_drop(DropReason::Malformed),
        };
        // RFC 1812 5.3.4: what came as a link-layer broadcast or multicast is routed only to an IP
        // multicast or broadcast address (which the martian and directed broadcast checks then
        // drop); a unicast one is not for us, local addresses included (RFC 1122 3.3.6).
        if self.eth_dst(h).is_multicast() && !ip_broadcast(snap.port(ingress_port).as_router_port(), dst) {
            return r.drop(DropReason::LinkBroadcast);
        }
        let hash = FlowKey::from_headers(ingress_port.0, h).symmetric_hash();
        let martian = martian(src, dst);
        let mut in_port = ingress_port;
        loop {
            let Some(in_rp) = snap.port(in_port).as_router_port() else {
                return r.uncached_drop(DropReason::NotRouterPort);
            };
            let ingress = self.ingress(in_rp);
            let hops = self.pending.hops;
            if hops >= MAX_ROUTER_HOPS {
                return r.drop(DropReason::RouterLoop);
            }
            r.deps.insert(DeviceId::Router(in_rp.router));
            self.traversed.push(DeviceId::Router(in_rp.router));
            let router = snap.router(in_rp.router);
            let ctx = EvalContext { in_port: Some(in_port), group_port: Some(in_port), ..EvalContext::default() };
            if let Err(v) = self.filter(router.infilter, &ctx, &mut r.deps) {
                return verdict(r, v, frame, h, &ingress, Some(in_rp), self.out);
            }
            let decision = router.route(src, dst, hash, &mut r.deps);
            // Silently (RFC 1812 5.3.7): no ICMP error about an address that should not be here.
            if martian && !matches!(decision, RouteDecision::Local { .. }) {
                return r.drop(DropReason::Martian);
            }
            let (out_port, next_hop) = match decision {
                RouteDecision::Forward { port, next_hop, .. } => (port, next_hop),
                // RFC 1122 3.2.1.3: a source no host has gets no answer (the reply would carry it).
                RouteDecision::Local { .. } if !host_source(src, &ingress, in_rp) => {
                    return r.drop(DropReason::Martian)
                }
                RouteDecision::Local { port, .. } => {
                    let owner = snap.port(port).as_router_port().unwrap_or(in_rp);
                    return self.for_router(r, frame, h, &ingress, in_rp, local_source(owner, dst));
                }
                RouteDecision::Blackhole { .. } => return r.drop(DropReason::Blackhole),
                RouteDecision::Reject { .. } | RouteDecision::NoRoute => {
                    let reason =
                        if decision == RouteDecision::NoRoute { DropReason::NoRoute } else { DropReason::RejectRoute };
                    let err = match h.l3 {
                        L3::Ipv4(_) => decision.icmpv4_unreachable().map(|c| IcmpError::V4Unreachable(c, 0)),
                        _ => decision.icmpv6_unreachable().map(IcmpError::V6Unreachable),
                    };
                    return answer_error(r, reason, err, frame, h, &ingress, in_rp, self.out);
                }
            };
            r.deps.insert(DeviceId::Port(out_port));
            self.traversed.push(DeviceId::Port(out_port));
            let oport = snap.port(out_port);
            // Only a subnet the port is on has its broadcast there: the route is on-link. Before
            // the TTL: no time exceeded about a packet to a broadcast address (RFC 1812 4.3.2.7).
            if next_hop == dst && oport.as_router_port().is_some_and(|orp| directed_broadcast(orp, dst)) {
                return r.drop(DropReason::DirectedBroadcast);
            }
            // RFC 1812 section 5.3.1 / RFC 8200 section 3: a router does not forward with TTL <= 1.
            if ttl <= hops + 1 {
                let err = if src.is_ipv4() { IcmpError::V4TimeExceeded } else { IcmpError::V6TimeExceeded };
                return answer_error(r, DropReason::TtlExpired, Some(err), frame, h, &ingress, in_rp, self.out);
            }
            let ctx = EvalContext { out_port: Some(out_port), ..ctx };
            if let Err(v) = self.filter(router.outfilter, &ctx, &mut r.deps) {
                return verdict(r, v, frame, h, &ingress, Some(in_rp), self.out);
            }
            let ctx = EvalContext { group_port: Some(out_port), ..EvalContext::default() };
            if let Err(v) = self.filter(oport.outbound_chain, &ctx, &mut r.deps) {
                return verdict(r, v, frame, h, &ingress, Some(in_rp), self.out);
            }
            self.pending.hops = hops + 1;
            self.pending.routed_at = Some(in_rp);
            let Some(orp) = oport.as_router_port() else {
                return r.uncached_drop(DropReason::NotRouterPort);
            };
            match oport.link {
                PortLink::Peer(peer) => match &snap.port(peer).kind {
                    PortKind::Router(_) => {
                        r.deps.insert(DeviceId::Port(peer));
                        self.traversed.push(DeviceId::Port(peer));
                        let ctx = EvalContext { group_port: Some(peer), ..EvalContext::default() };
                        if let Err(v) = self.filter(snap.port(peer).inbound_chain, &ctx, &mut r.deps) {
                            return verdict(r, v, frame, h, &ingress, Some(in_rp), self.out);
                        }
                        in_port = peer;
                    }
                    PortKind::Bridge(bp) => {
                        let bridge = snap.bridge(bp.bridge);
                        let known = router_port_address_mac(snap, bridge, next_hop);
                        let mac = known
                            .or_else(|| self.state.neighbours.use_entry(out_port, next_hop, self.now).map(|n| n.mac));
                        let Some(mac) = mac else {
                            r.deps.insert(DeviceId::Bridge(bp.bridge));
                            let legs = exterior_legs(snap, bridge, peer, self.sport);
                            let at = Unresolved { out_port, orp, next_hop, legs };
                            return self.unresolved(r, at, frame, h, &ingress, in_rp);
                        };
                        self.pending.eth_src = Some(orp.mac);
                        self.pending.eth_dst = Some(mac);
                        return self.enter(r, peer, frame, h);
                    }
                },
                PortLink::Exterior(Binding::Local { dpdk_port }) => {
                    // Before the neighbour: an oversize packet is answered, not held.
                    if let Some(answered) = self.over_mtu(&r, self.state.mtu(dpdk_port), frame, h) {
                        return answered;
                    }
                    let Some(mac) = self.state.neighbours.use_entry(out_port, next_hop, self.now).map(|n| n.mac) else {
                        let at = Unresolved { out_port, orp, next_hop, legs: Legs::one(Leg::Local(dpdk_port)) };
                        return self.unresolved(r, at, frame, h, &ingress, in_rp);
                    };
                    self.pending.eth_src = Some(orp.mac);
                    self.pending.eth_dst = Some(mac);
                    return self.output(r, out_port, dpdk_port, frame, h);
                }
                PortLink::Exterior(Binding::Remote { .. }) => {
                    // The next hop is behind the tunnel: its MAC is learned like on a local port.
                    let Some(mac) = self.state.neighbours.use_entry(out_port, next_hop, self.now).map(|n| n.mac) else {
                        let legs = Legs::one(Leg::Tunnel { port: out_port, sport: self.sport });
                        let at = Unresolved { out_port, orp, next_hop, legs };
                        return self.unresolved(r, at, frame, h, &ingress, in_rp);
                    };
                    self.pending.eth_src = Some(orp.mac);
                    self.pending.eth_dst = Some(mac);
                    return self.tunnel_out(r, out_port, frame, h);
                }
                PortLink::Unplugged => return r.drop(DropReason::PortUnplugged),
            }
        }
    }

    /// Addressed to one of the router's ports (entered by `in_rp`), answered from `src`: the IPv6 extension
    /// headers are processed as their destination must ([`ipv6_ext_headers_at_destination`], RFC
    /// 8200 section 4), answering a parameter problem where they ask for one (a routing header with
    /// segments left, an option that must be understood), then UDP ([`Walk::udp_for_router`]) or
    /// [`local`]. Fragments are not: what follows the fragment header waits for a reassembly that
    /// never comes. `src` is the address the packet was sent to, or the unicast one beside it
    /// ([`local_source`]).
    fn for_router(
        &mut self,
        r: SimResult,
        frame: &mut [u8],
        h: &Headers,
        ingress: &Ingress<'_>,
        in_rp: &RouterPort,
        src: IpAddr,
    ) -> SimResult {
        // Where the field naming the upper layer is, for an "unrecognized next header".
        let mut next_header_at = 6;
        if let L3::Ipv6(f) = h.l3 {
            if f.ext_headers != 0 {
                let packet = frame.get(h.l3_offset..h.end).unwrap_or_default();
                match ipv6_ext_headers_at_destination(packet, f.dst.is_multicast()) {
                    Ipv6AtDestination::Accept { next_header_at: at } => next_header_at = at,
                    Ipv6AtDestination::Discard => return r.uncached_drop(DropReason::Ipv6ExtensionHeader),
                    Ipv6AtDestination::ParamProblem(code, pointer) => {
                        let err = Some((IcmpError::V6ParamProblem(code, pointer), src));
                        return answer_error_from(
                            r,
                            DropReason::Ipv6ExtensionHeader,
                            err,
                            frame,
                            h,
                            ingress,
                            in_rp,
                            self.out,
                        );
                    }
                }
            }
        }
        if let L4::Udp { .. } = h.l4 {
            return self.udp_for_router(r, frame, h, ingress, in_rp, src);
        }
        // RFC 1122 3.2.2.1 / RFC 1812 4.3.3.1: a protocol the router does not speak is answered
        // protocol unreachable; RFC 8200 4 / RFC 4443 3.4: an unrecognized next header, parameter
        // problem code 1 pointing at the field naming it. TCP waits for the exception path, no
        // next header (59) asks for nothing, and a fragment is never reassembled to tell.
        let err = match h.l3 {
            L3::Ipv4(f) if !matches!(f.protocol, IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmp) => {
                Some(IcmpError::V4Unreachable(Icmpv4DstUnreachable::ProtoUnreachable, 0))
            }
            L3::Ipv6(f)
                if !matches!(
                    f.protocol,
                    IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmpv6 | IpProtocol::Ipv6NoNxt
                ) =>
            {
                Some(IcmpError::V6ParamProblem(Icmpv6ParamProblem::UnrecognizedNextHeader, next_header_at))
            }
            _ => None,
        };
        if let Some(err) = err.filter(|_| h.fragment() == Fragment::Unfragmented) {
            let err = Some((err, src));
            return answer_error_from(r, DropReason::ProtocolUnreachable, err, frame, h, ingress, in_rp, self.out);
        }
        local(r, frame, h, ingress, src, self.now)
    }

    /// A UDP datagram for a router port: no UDP service listens there, so it is answered port
    /// unreachable (RFC 1122 3.2.2.1 and RFC 1812 4.3.3.1 for IPv4, RFC 4443 3.1 for IPv6), as
    /// Linux answers and as `traceroute`'s UDP probes to a router's address expect. A datagram
    /// whose checksum fails is discarded unanswered (RFC 1122 4.1.3.4), as is a fragment (the
    /// gateway never reassembles: the checksum cannot be checked).
    fn udp_for_router(
        &mut self,
        r: SimResult,
        frame: &[u8],
        h: &Headers,
        ingress: &Ingress<'_>,
        in_rp: &RouterPort,
        src: IpAddr,
    ) -> SimResult {
        let (whole, err) = match h.l3 {
            L3::Ipv4(f) => (
                f.fragment == Fragment::Unfragmented,
                IcmpError::V4Unreachable(Icmpv4DstUnreachable::PortUnreachable, 0),
            ),
            L3::Ipv6(f) => {
                (f.fragment == Fragment::Unfragmented, IcmpError::V6Unreachable(Icmpv6DstUnreachable::PortUnreachable))
            }
            _ => return r.uncached_drop(DropReason::ToRouter),
        };
        if !whole || h.verify_checksums(frame).is_err() {
            return r.uncached_drop(DropReason::ToRouter);
        }
        answer_error_from(r, DropReason::PortUnreachable, Some((err, src)), frame, h, ingress, in_rp, self.out)
    }

    /// The next hop's MAC is unknown. When it failed to answer just now ([`NeighbourCache::has_failed`]),
    /// answer the packet host unreachable (RFC 1812 5.2.7.1) / address unreachable (RFC 4861
    /// 7.2.2: a MUST for every packet that waited), from the router port it entered; else hold
    /// it and ask ([`Walk::resolve`]).
    fn unresolved(
        &mut self,
        r: SimResult,
        at: Unresolved<'_>,
        frame: &[u8],
        h: &Headers,
        ingress: &Ingress<'_>,
        in_rp: &RouterPort,
    ) -> SimResult {
        if !self.state.neighbours.has_failed(at.out_port, at.next_hop, self.now) {
            return self.resolve(r, at.out_port, at.orp, at.next_hop, at.legs);
        }
        let err = match at.next_hop {
            IpAddr::V4(_) => IcmpError::V4Unreachable(Icmpv4DstUnreachable::HostUnreachable, 0),
            IpAddr::V6(_) => IcmpError::V6Unreachable(Icmpv6DstUnreachable::AddrUnreachable),
        };
        answer_error(r, DropReason::NeighbourFailed, Some(err), frame, h, ingress, in_rp, self.out)
    }

    /// The next hop's MAC is unknown: drop (the caller holds the packet) and send an ARP request /
    /// NS from `orp` out of `legs`, unless this destination was asked for less than the core's
    /// resolution interval ago ([`NeighbourCache::ask`]). A new destination over the core's
    /// request budget is dropped, not held: nothing was asked that could release it, and a scan
    /// must not fill the resolution queue either (RFC 6583 section 6).
    fn resolve(&mut self, r: SimResult, out_port: PortId, orp: &RouterPort, next_hop: IpAddr, legs: Legs) -> SimResult {
        match self.state.neighbours.ask(out_port, next_hop, self.now) {
            Ask::OverBudget => return r.uncached_drop(DropReason::NeighbourRequestsLimited),
            Ask::Wait => return held(r, out_port, next_hop),
            Ask::Send => {}
        }
        let mut r = held(r, out_port, next_hop);
        let len = match (next_hop, own_addr(orp, next_hop)) {
            (IpAddr::V4(t), Some(IpAddr::V4(s))) => arp_request(self.out, orp.mac, s, t),
            (IpAddr::V6(t), Some(IpAddr::V6(s))) => neighbour_solicit(self.out, orp.mac, s, t),
            _ => None,
        };
        if !legs.is_empty() {
            r.generated = len.map(|len| Generated { len, legs, icmp_error: false });
        }
        r
    }

    /// A frame entering bridge `bid` through its port `pid`.
    fn bridge_in(
        &mut self,
        mut r: SimResult,
        pid: PortId,
        port: &'a Port,
        bid: BridgeId,
        frame: &mut [u8],
        h: &Headers,
    ) -> SimResult {
        let snap = self.snap;
        let bridge = snap.bridge(bid);
        r.deps.insert(DeviceId::Bridge(bid));
        self.traversed.push(DeviceId::Bridge(bid));
        let (src, dst) = (self.eth_src(h), self.eth_dst(h));
        self.fields.eth_src = src;
        self.fields.eth_dst = dst;
        let ctx = EvalContext { group_port: Some(pid), ..EvalContext::default() };
        if let Err(v) = self.filter(port.inbound_chain, &ctx, &mut r.deps) {
            return self.bridge_verdict(r, v);
        }
        let ctx = EvalContext { in_port: Some(pid), ..ctx };
        if let Err(v) = self.filter(bridge.inbound_chain, &ctx, &mut r.deps) {
            return self.bridge_verdict(r, v);
        }
        // A router port's MAC is known from the topology; learn only what comes from outside.
        if matches!(port.link, PortLink::Exterior(_)) && learnable(src) {
            self.state.macs.learn(bid, src, pid, self.now);
            self.pending.learn = Some(pid);
        }
        let target = if dst.is_multicast() {
            None
        } else {
            bridge
                .static_mac(dst)
                .or_else(|| bridge.router_port(dst))
                .or_else(|| self.state.macs.lookup(bid, dst, self.now))
        };
        match target {
            Some(t) if t == pid => r.drop(DropReason::SameBridgePort),
            Some(t) => {
                r.deps.insert(DeviceId::Port(t));
                let Some(oport) = snap.get_port(t) else { return r.uncached_drop(DropReason::PortUnplugged) };
                self.traversed.push(DeviceId::Port(t));
                if let Err(v) = self.bridge_egress_chains(&mut r.deps, bridge, pid, oport) {
                    return self.bridge_verdict(r, v);
                }
                match oport.link {
                    PortLink::Exterior(Binding::Local { dpdk_port }) => self.output(r, t, dpdk_port, frame, h),
                    PortLink::Exterior(Binding::Remote { .. }) => self.tunnel_out(r, t, frame, h),
                    PortLink::Peer(peer) => self.enter(r, peer, frame, h),
                    PortLink::Unplugged => r.drop(DropReason::PortUnplugged),
                }
            }
            None => self.flood(r, bridge, pid, frame, h),
        }
    }

    /// A bridge's chains stopped the frame. A bridge has no address to answer a reject from.
    fn bridge_verdict(&self, r: SimResult, v: Stop) -> SimResult {
        match v {
            Stop::Drop => r.drop(DropReason::RuleDrop),
            Stop::Reject => r.drop(DropReason::RuleReject),
            Stop::Nat => r.uncached_drop(DropReason::NatUnsupported),
        }
    }

    /// The bridge's outbound chain, then the egress port's.
    fn bridge_egress_chains(
        &mut self,
        deps: &mut DeviceSet,
        bridge: &Bridge,
        in_port: PortId,
        oport: &Port,
    ) -> Result<(), Stop> {
        let ctx = EvalContext {
            in_port: Some(in_port),
            out_port: Some(oport.id),
            group_port: Some(in_port),
            ..EvalContext::default()
        };
        self.filter(bridge.outbound_chain, &ctx, deps)?;
        let ctx = EvalContext { group_port: Some(oport.id), ..EvalContext::default() };
        self.filter(oport.outbound_chain, &ctx, deps)
    }

    /// Unknown unicast, broadcast or multicast: a copy to every other port of the bridge. Not cached.
    fn flood(
        &mut self,
        mut r: SimResult,
        bridge: &'a Bridge,
        in_port: PortId,
        frame: &mut [u8],
        h: &Headers,
    ) -> SimResult {
        r.cacheable = false;
        let mut legs = Legs::new();
        for &p in bridge.ports.iter().filter(|&&p| p != in_port) {
            let Some(oport) = self.snap.get_port(p) else { continue };
            r.deps.insert(DeviceId::Port(p));
            // Each copy has been through its own egress port only.
            let traversed = self.traversed.len();
            self.traversed.push(DeviceId::Port(p));
            if self.bridge_egress_chains(&mut r.deps, bridge, in_port, oport).is_ok() {
                match oport.link {
                    PortLink::Exterior(binding) => {
                        let leg = match binding {
                            Binding::Local { dpdk_port } => Leg::Local(dpdk_port),
                            Binding::Remote { .. } => Leg::Tunnel { port: p, sport: self.sport },
                        };
                        if !legs.push(leg) {
                            r.dropped_legs = r.dropped_legs.saturating_add(1);
                        }
                    }
                    PortLink::Peer(peer) if self.pending.hops == 0 => self.router_copy(&mut r, peer, h, frame),
                    // Routed floods skip router ports (module docs).
                    PortLink::Peer(_) | PortLink::Unplugged => {}
                }
            }
            self.traversed.truncate(traversed);
        }
        if legs.is_empty() {
            let reason = if r.generated.is_some() { DropReason::ArpConsumed } else { DropReason::NoEgress };
            return r.drop(reason);
        }
        // A routed copy must fit every leg it goes out of: the same check and answer as a unicast
        // to a learned MAC, against the smallest of their MTUs.
        let mtu = self.flood_mtu(&legs);
        if let Some(answered) = mtu.and_then(|mtu| self.over_mtu(&r, mtu, frame, h)) {
            return answered;
        }
        let mut actions = self.pending_actions(h, mtu, conntrack::port_zone(self.snap, in_port));
        actions.push(Action::Flood);
        if let Err(reason) = execute(self.snap, &actions, frame, self.state, self.now) {
            return r.drop(reason);
        }
        r.actions = actions;
        r.flood = legs;
        r
    }

    /// A router port on a flood sees a copy of the frame (read-only): it merges the sender of an
    /// ARP packet on its subnet ([`Walk::arp_sender`]) and answers an ARP request for its address
    /// into `out`.
    fn router_copy(&mut self, r: &mut SimResult, pid: PortId, h: &Headers, frame: &[u8]) {
        let Some(port) = self.snap.get_port(pid) else { return };
        let Some(rp) = port.as_router_port() else { return };
        r.deps.insert(DeviceId::Port(pid));
        self.traversed.push(DeviceId::Port(pid));
        let ctx = EvalContext { group_port: Some(pid), ..EvalContext::default() };
        if self.filter(port.inbound_chain, &ctx, &mut r.deps).is_err() {
            return;
        }
        match h.l3 {
            L3::Arp(arp) => {
                self.arp_sender(pid, rp, &arp);
                let target = IpAddr::V4(arp.target_protocol_addr);
                if arp.operation == ArpOperation::Request && rp.owns(target) && r.generated.is_none() {
                    let len = arp_reply(
                        self.out,
                        rp.mac,
                        arp.target_protocol_addr,
                        arp.source_hardware_addr,
                        arp.source_protocol_addr,
                    );
                    r.generated = len.map(|len| Generated { len, legs: Legs::one(self.back), icmp_error: false });
                }
            }
            L3::Ipv4(_) | L3::Ipv6(_) => {
                if let L4::Icmpv6 { msg_type: Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert, .. } =
                    h.l4
                {
                    if r.generated.is_none() {
                        r.generated = self.ndp(frame, h, pid, rp);
                    }
                }
            }
            L3::Other => {}
        }
    }

    /// The actions the walk so far implies, up to (not including) the output, for frame `h`
    /// leaving through a port with `mtu` (none: not checked).
    fn pending_actions(&self, h: &Headers, mtu: Option<u16>, egress_zone: Option<u32>) -> Actions {
        let p = self.pending;
        let mut actions = Actions::new();
        if let Some(port) = p.learn {
            actions.push(Action::Learn(port));
        }
        if p.hops > 0 {
            if let Some(mtu) = mtu {
                actions.push(Action::CheckMtu(mtu));
            }
            actions.push(Action::DecTtl(p.hops));
        }
        if let Some(mac) = p.eth_src {
            actions.push(Action::SetEthSrc(mac));
        }
        if let Some(mac) = p.eth_dst {
            // A router writes a new layer-2 header, untagged like its ports; a bridge alone
            // changes nothing (a VLAN-unaware bridge forwards a tag as it came).
            let untag = p.hops > 0 && h.vlan.is_some();
            actions.push(if untag { Action::SetEthDstUntag(mac) } else { Action::SetEthDst(mac) });
        }
        // Last before the output, so a failed check above records no connection.
        if let (true, false, Some(key), Some(egress)) =
            (self.conntrack_used, self.icmp_error, self.conn_key, egress_zone)
        {
            actions.push(match self.forward_flow.unwrap_or(true) {
                true => Action::Track { zone: egress, reverse: true },
                false => Action::Track { zone: key.zone, reverse: false },
            });
        }
        actions
    }

    /// The frame leaves through remote-bound port `port`: the MTU check for routed packets against
    /// the underlay MTU less the encapsulation, the pending rewrites, the outer headers.
    fn tunnel_out(&mut self, r: SimResult, port: PortId, frame: &mut [u8], h: &Headers) -> SimResult {
        let t = match tunnel_of(self.snap, port) {
            Ok(t) => t,
            Err(reason) => return r.uncached_drop(reason),
        };
        let mtu = self.state.mtu(t.underlay.dpdk_port).saturating_sub(t.encap.mtu_overhead());
        if let Some(answered) = self.over_mtu(&r, mtu, frame, h) {
            return answered;
        }
        let mut actions = self.pending_actions(h, Some(mtu), conntrack::port_zone(self.snap, port));
        actions.push(Action::Encap { port, sport: self.sport });
        match execute(self.snap, &actions, frame, self.state, self.now) {
            Ok(Some(output)) => {
                let mut r = r;
                r.actions = actions;
                r.outer = output.outer;
                r
            }
            Ok(None) => r.uncached_drop(DropReason::Malformed),
            Err(reason) => self.underlay_unresolved(r, port, reason),
        }
    }

    /// The frame leaves through local DPDK port `dpdk_port`: the MTU check for routed packets,
    /// then the pending rewrites.
    fn output(&mut self, r: SimResult, egress: PortId, dpdk_port: u16, frame: &mut [u8], h: &Headers) -> SimResult {
        let mtu = self.state.mtu(dpdk_port);
        if let Some(answered) = self.over_mtu(&r, mtu, frame, h) {
            return answered;
        }
        let mut r = r;
        r.actions = self.pending_actions(h, Some(mtu), conntrack::port_zone(self.snap, egress));
        r.actions.push(Action::Output(dpdk_port));
        if let Err(reason) = apply(self.snap, &r.actions, frame, self.state, self.now) {
            return r.uncached_drop(reason);
        }
        r
    }

    /// A routed packet longer than the egress `mtu`: never fragmented (design: no IP
    /// fragmentation), dropped and answered ICMP frag needed / packet too big with the MTU from
    /// the port it entered its last router by, with DF or without (a sender that did not set DF
    /// still learns why nothing arrives; the answer is under the ICMP error rate limit). `None`
    /// when it fits, or was not routed (a bridge does not answer).
    fn over_mtu(&mut self, r: &SimResult, mtu: u16, frame: &[u8], h: &Headers) -> Option<SimResult> {
        let at = self.pending.routed_at?;
        let err = match h.l3 {
            L3::Ipv4(_) => IcmpError::V4Unreachable(Icmpv4DstUnreachable::FragRequired, mtu),
            L3::Ipv6(_) => IcmpError::V6TooBig(u32::from(mtu)),
            _ => return Some(r.uncached_drop(DropReason::Malformed)),
        };
        if h.end - h.l3_offset <= usize::from(mtu) {
            return None;
        }
        let ingress = self.ingress(at);
        Some(answer_error(*r, DropReason::TooBig, Some(err), frame, h, &ingress, at, self.out))
    }

    /// The smallest MTU of a flood's legs: a local port's, or a tunnel's underlay MTU less the
    /// encapsulation. `None` when no leg has one (a tunnel leg without underlay fails later).
    fn flood_mtu(&self, legs: &Legs) -> Option<u16> {
        let mtu = |leg: &Leg| match *leg {
            Leg::Local(dpdk_port) => Some(self.state.mtu(dpdk_port)),
            Leg::Tunnel { port, .. } => tunnel_of(self.snap, port)
                .ok()
                .map(|t| self.state.mtu(t.underlay.dpdk_port).saturating_sub(t.encap.mtu_overhead())),
        };
        legs.as_slice().iter().filter_map(mtu).min()
    }
}

/// The MAC of a router port linked to `bridge` that owns `addr`.
fn router_port_address_mac(snap: &Snapshot, bridge: &Bridge, addr: IpAddr) -> Option<EthernetAddress> {
    bridge.ports.iter().find_map(|&p| match snap.get_port(p).map(|p| p.link) {
        Some(PortLink::Peer(peer)) => {
            snap.get_port(peer).and_then(Port::as_router_port).filter(|rp| rp.owns(addr)).map(|rp| rp.mac)
        }
        _ => None,
    })
}

/// The legs of `bridge`'s exterior ports other than `except` (local DPDK ports and tunnels).
fn exterior_legs(snap: &Snapshot, bridge: &Bridge, except: PortId, sport: u16) -> Legs {
    let mut legs = Legs::new();
    for leg in bridge.ports.iter().filter(|&&p| p != except).filter_map(|&p| exterior_leg(snap, p, sport)) {
        legs.push(leg);
    }
    legs
}

/// The leg out of exterior port `p` (a local DPDK port or a tunnel); `None` for another port.
fn exterior_leg(snap: &Snapshot, p: PortId, sport: u16) -> Option<Leg> {
    match snap.get_port(p)?.link {
        PortLink::Exterior(Binding::Local { dpdk_port }) => Some(Leg::Local(dpdk_port)),
        PortLink::Exterior(Binding::Remote { .. }) => Some(Leg::Tunnel { port: p, sport }),
        _ => None,
    }
}

/// `r` dropped, to be held until `next_hop` on `out_port` answers.
fn held(r: SimResult, out_port: PortId, next_hop: IpAddr) -> SimResult {
    let mut r = r.uncached_drop(DropReason::NeighbourUnresolved);
    r.hold = Some(Hold { port: out_port, addr: next_hop });
    r
}

/// What a tunnel leg to remote port `port` waits for when its [`outer_header`] failed with
/// [`DropReason::NeighbourUnresolved`]: the underlay next hop toward the port's host, under
/// [`UNDERLAY_PORT`]. `None` when the port is no tunnel port of `snap`.
pub fn underlay_hold(snap: &Snapshot, port: PortId) -> Option<Hold> {
    let t = tunnel_of(snap, port).ok()?;
    Some(Hold { port: UNDERLAY_PORT, addr: IpAddr::V4(t.underlay.next_hop(t.dst)) })
}

/// Builds into `out` the ARP request for the underlay next hop toward the host remote port `port`
/// is bound on; returns its length and the underlay DPDK port. For a tunnel leg whose
/// [`outer_header`] failed with [`DropReason::NeighbourUnresolved`]. `None` also when that next
/// hop was asked for less than the core's resolution interval ago ([`NeighbourCache::may_ask`]).
pub fn underlay_arp_request(
    snap: &Snapshot,
    state: &mut CoreState,
    port: PortId,
    now: u64,
    out: &mut [u8],
) -> Option<(usize, u16)> {
    let t = tunnel_of(snap, port).ok()?;
    let u = t.underlay;
    let next_hop = u.next_hop(t.dst);
    if !state.neighbours.may_ask(UNDERLAY_PORT, IpAddr::V4(next_hop), now) {
        return None;
    }
    let len = arp_request(out, state.port_mac(u.dpdk_port), u.address, next_hop)?;
    Some((len, u.dpdk_port))
}

/// Builds into `out` the poll of a stale neighbour in use ([`NeighbourCache::due_polls`]): an ARP
/// request or a neighbour solicitation sent point to point to the MAC it had, from the router
/// port (or the underlay address) it was learned on, out of where that port's traffic goes.
/// `None` when the port is gone from `snap` or has no address of the family.
pub fn neighbour_poll(snap: &Snapshot, state: &CoreState, poll: &Poll, now: u64, out: &mut [u8]) -> Option<Generated> {
    let generated = |len, legs| Generated { len, legs, icmp_error: false };
    if poll.port == UNDERLAY_PORT {
        let u = snap.underlay()?;
        let IpAddr::V4(target) = poll.ip else { return None };
        let len = arp_poll(out, state.port_mac(u.dpdk_port), u.address, poll.mac, target)?;
        return Some(generated(len, Legs::one(Leg::Local(u.dpdk_port))));
    }
    let port = snap.get_port(poll.port)?;
    let rp = port.as_router_port()?;
    let legs = match port.link {
        PortLink::Exterior(Binding::Local { dpdk_port }) => Legs::one(Leg::Local(dpdk_port)),
        PortLink::Exterior(Binding::Remote { .. }) => {
            Legs::one(Leg::Tunnel { port: poll.port, sport: VXLAN_SPORT_MIN })
        }
        PortLink::Peer(peer) => match &snap.get_port(peer)?.kind {
            // Where the bridge has the MAC, else every exterior port, as for a request.
            PortKind::Bridge(bp) => {
                let bridge = snap.bridge(bp.bridge);
                let at = bridge.static_mac(poll.mac).or_else(|| state.macs.lookup(bp.bridge, poll.mac, now));
                match at.and_then(|p| exterior_leg(snap, p, VXLAN_SPORT_MIN)) {
                    Some(leg) => Legs::one(leg),
                    None => exterior_legs(snap, bridge, peer, VXLAN_SPORT_MIN),
                }
            }
            PortKind::Router(_) => return None,
        },
        PortLink::Unplugged => return None,
    };
    let len = match (poll.ip, own_addr(rp, poll.ip)) {
        (IpAddr::V4(t), Some(IpAddr::V4(s))) => arp_poll(out, rp.mac, s, poll.mac, t),
        (IpAddr::V6(t), Some(IpAddr::V6(s))) => neighbour_probe(out, rp.mac, s, poll.mac, t),
        _ => None,
    }?;
    Some(generated(len, legs))
}

/// Builds into `out` the ARP reply of `mac` / `ip` to `target_mac` / `target_ip`.
fn arp_reply(
    out: &mut [u8],
    mac: EthernetAddress,
    ip: core::net::Ipv4Addr,
    target_mac: EthernetAddress,
    target_ip: core::net::Ipv4Addr,
) -> Option<usize> {
    let end = ETHERNET_HEADER_LEN + ARP_PACKET_LEN;
    let out = out.get_mut(..end)?;
    let mut eth = EthernetFrame::new_unchecked(&mut out[..ETHERNET_HEADER_LEN]);
    eth.set_dst_addr(target_mac);
    eth.set_src_addr(mac);
    eth.set_ethertype(EtherType::Arp);
    ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: target_mac,
        target_protocol_addr: target_ip,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut out[ETHERNET_HEADER_LEN..]));
    Some(end)
}

/// A chain verdict that stops the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Drop,
    Reject,
    Nat,
}

/// A chain stopped the packet: drop (cacheable), reject (ICMP administratively prohibited), NAT
/// (not yet).
fn verdict(
    r: SimResult,
    v: Stop,
    frame: &mut [u8],
    h: &Headers,
    ingress: &Ingress<'_>,
    at: Option<&RouterPort>,
    out: &mut [u8],
) -> SimResult {
    match (v, at) {
        (Stop::Reject, None) => r.drop(DropReason::RuleReject),
        (Stop::Reject, Some(at)) => {
            let err = match h.l3 {
                L3::Ipv4(_) => Some(IcmpError::V4Unreachable(Icmpv4DstUnreachable::CommProhibited, 0)),
                L3::Ipv6(_) => Some(IcmpError::V6Unreachable(Icmpv6DstUnreachable::AdminProhibit)),
                _ => None,
            };
            answer_error(r, DropReason::RuleReject, err, frame, h, ingress, at, out)
        }
        (Stop::Nat, _) => r.uncached_drop(DropReason::NatUnsupported),
        (Stop::Drop, _) => r.drop(DropReason::RuleDrop),
    }
}

/// Where a packet waits for a next hop: [`Walk::unresolved`]'s arguments.
struct Unresolved<'s> {
    out_port: PortId,
    orp: &'s RouterPort,
    next_hop: IpAddr,
    legs: Legs,
}

/// Drops with `reason` and builds the ICMP error, from `at`'s address, when RFC 1812 section
/// 4.3.2.7 / RFC 4443 section 2.4 (e) allow one. Cacheable as an answering drop
/// ([`Actions::answer_drop`]) when the flow key settles the decision (no route, a reject route or
/// rule) and the packet was answered, as a plain drop when the key settles it and the answer is
/// suppressed; otherwise (TTL, length: not in the key) not cacheable.
#[allow(clippy::too_many_arguments)]
fn answer_error(
    r: SimResult,
    reason: DropReason,
    err: Option<IcmpError>,
    frame: &[u8],
    h: &Headers,
    ingress: &Ingress<'_>,
    at: &RouterPort,
    out: &mut [u8],
) -> SimResult {
    let src = h.pseudo_header().and_then(|p| own_addr(at, pseudo_src(&p)));
    answer_error_from(r, reason, err.zip(src), frame, h, ingress, at, out)
}

/// [`answer_error`] from a given address: `err` and its source.
#[allow(clippy::too_many_arguments)]
fn answer_error_from(
    mut r: SimResult,
    reason: DropReason,
    err: Option<(IcmpError, IpAddr)>,
    frame: &[u8],
    h: &Headers,
    ingress: &Ingress<'_>,
    at: &RouterPort,
    out: &mut [u8],
) -> SimResult {
    let cacheable = r.cacheable;
    r = r.uncached_drop(reason);
    let Some((err, src)) = err else {
        return r;
    };
    let keyed = matches!(reason, DropReason::NoRoute | DropReason::RejectRoute | DropReason::RuleReject);
    if !may_answer_error(h, ingress, at) {
        // RFC 1812's and 4443's exceptions read only what the key holds (MACs, addresses, the
        // ICMP type, the fragment): a keyed decision's unanswerable packets are a plain drop, so
        // a stream of them costs a hit each, not a simulation each.
        r = r.drop(DropReason::IcmpErrorSuppressed);
        r.cacheable = cacheable && keyed;
        return r;
    }
    r.generated = icmp_error(frame, h, out, ingress.port.mac, src, err).map(|len| Generated {
        len,
        legs: Legs::one(ingress.back),
        icmp_error: true,
    });
    if keyed && r.generated.is_some() {
        r.actions = Actions::answer_drop(reason);
        r.cacheable = cacheable;
    }
    r
}

fn pseudo_src(p: &crate::wire::PseudoHeader) -> IpAddr {
    match *p {
        crate::wire::PseudoHeader::V4 { src, .. } => IpAddr::V4(src),
        crate::wire::PseudoHeader::V6 { src, .. } => IpAddr::V6(src),
    }
}

/// RFC 1812 section 4.3.2.7, RFC 4443 section 2.4 (e): no ICMP error about an ICMP error, a
/// non-initial fragment, a packet to a multicast or broadcast address or from an address that is
/// not a unicast host ([`host_source`]).
fn may_answer_error(h: &Headers, ingress: &Ingress<'_>, at: &RouterPort) -> bool {
    if h.fragment() == Fragment::Later || h.eth_dst.is_multicast() {
        return false;
    }
    match (h.l3, h.l4) {
        (_, L4::Icmpv4 { msg_type, .. }) if msg_type.is_error() => false,
        (_, L4::Icmpv6 { msg_type, .. }) if msg_type.is_error() => false,
        (L3::Ipv4(f), _) => {
            !(f.dst.is_multicast() || f.dst.is_broadcast()) && host_source(IpAddr::V4(f.src), ingress, at)
        }
        (L3::Ipv6(f), _) => !f.dst.is_multicast() && host_source(IpAddr::V6(f.src), ingress, at),
        _ => false,
    }
}

/// Whether `src` can be one host's address, the only kind an ICMP error or an echo reply may go
/// to (RFC 1812 4.3.2.7, RFC 1122 3.2.1.3, RFC 4443 2.4 e): IPv4 not 0/8, loopback, multicast,
/// class E, the limited broadcast or the directed broadcast of a subnet the packet came from (the
/// gateway's first router port, `at`: the port it entered the answering router by); IPv6 not
/// unspecified, loopback, multicast or the Subnet-Router anycast address of those subnets.
fn host_source(src: IpAddr, ingress: &Ingress<'_>, at: &RouterPort) -> bool {
    let ports = [ingress.port, at];
    let not_a_host = match src {
        IpAddr::V4(a) => {
            let first = a.octets()[0];
            first == 0 || first == 127 || first >= 224 || ports.iter().any(|p| directed_broadcast(p, src))
        }
        IpAddr::V6(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || ports.iter().any(|p| p.subnet_router_anycast(src))
        }
    };
    !not_a_host
}

/// Whether `dst` is an IP multicast or broadcast address for a packet that entered by `port`:
/// multicast, the limited broadcast, or the directed broadcast of one of the port's subnets.
fn ip_broadcast(port: Option<&RouterPort>, dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(d) => d.is_multicast() || d.is_broadcast() || port.is_some_and(|p| directed_broadcast(p, dst)),
        IpAddr::V6(d) => d.is_multicast(),
    }
}

/// Addressed to one of the router's ports: answer echo requests from `src` ([`local_source`]),
/// drop the rest (the exception path comes later). A record route or timestamp option in an
/// IPv4 request is updated in the reply with `src` and the time at `now` (RFC 1122 3.2.2.6).
///
/// The reply is the request turned around in place, so only a request that is whole is answered:
/// not a fragment (the gateway never reassembles: the reply would be a lone fragment of a datagram
/// whose other fragments never come), and not one whose checksum fails (RFC 4443 2.4, RFC 1122
/// 3.2.2: discarded, as any host does). An IPv6 request's extension headers, processed already
/// ([`Walk::for_router`]), are left out of the reply: they were the request's (a routing header
/// must never be reflected, RFC 5095), and Linux's reply carries none either.
fn local(r: SimResult, frame: &mut [u8], h: &Headers, ingress: &Ingress<'_>, src: IpAddr, now: u64) -> SimResult {
    let whole = match h.l3 {
        L3::Ipv4(f) => f.fragment == Fragment::Unfragmented,
        L3::Ipv6(f) => f.fragment == Fragment::Unfragmented,
        _ => false,
    };
    let echo_request = matches!(
        h.l4,
        L4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest, code: 0, .. }
            | L4::Icmpv6 { msg_type: Icmpv6Message::EchoRequest, code: 0, .. }
    );
    if echo_request && (!whole || h.verify_checksums(frame).is_err()) {
        return r.uncached_drop(DropReason::EchoNotAnswered);
    }
    let ip = &mut frame[h.l3_offset..h.end];
    match (h.l3, h.l4, src) {
        (L3::Ipv4(_), L4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest, code: 0, .. }, IpAddr::V4(src)) => {
            echo_reply_v4(frame, h, src, now)
        }
        (L3::Ipv6(f), L4::Icmpv6 { msg_type: Icmpv6Message::EchoRequest, code: 0, .. }, IpAddr::V6(src)) => {
            if let Ok(mut p) = Ipv6Packet::new_checked(&mut *ip) {
                p.set_src_addr(src);
                p.set_dst_addr(f.src);
                p.set_hop_limit(REPLY_TTL);
            }
            if let Ok(mut p) = Icmpv6Packet::new_checked(&mut frame[h.l4_offset..h.end]) {
                p.make_echo_reply_in_place();
                // Sent to the Subnet-Router anycast address, answered from a unicast one: the
                // pseudo-header changed.
                if src != f.dst {
                    p.fill_checksum(&crate::wire::PseudoHeader::V6 { src, dst: f.src });
                }
            }
            let mut r = r;
            r.trimmed = match leave_out_ipv6_ext_headers(frame, h) {
                Some(trimmed) => trimmed,
                None => return r.uncached_drop(DropReason::Malformed),
            };
            return reply(r, frame, h, ingress, ReplyKind::EchoReply);
        }
        _ => return r.uncached_drop(DropReason::ToRouter),
    }
    reply(r, frame, h, ingress, ReplyKind::EchoReply)
}

/// The parameter problem pointer at the IPv4 option that cannot be walked ([`unwalkable_ipv4_option`]),
/// counted from the start of the IP header.
fn unwalkable_option_pointer(frame: &[u8], h: &Headers) -> Option<u8> {
    let options = frame.get(h.l3_offset + IPV4_HEADER_LEN..h.l4_offset)?;
    u8::try_from(IPV4_HEADER_LEN + unwalkable_ipv4_option(options)?).ok()
}

/// Leaves the extension headers of the IPv6 packet in `frame` out: the IPv6 header names the upper
/// layer and counts its bytes only, and the Ethernet and IPv6 headers move forward over the
/// extension headers. Returns by how much (where the frame now starts), 0 when there were none.
fn leave_out_ipv6_ext_headers(frame: &mut [u8], h: &Headers) -> Option<usize> {
    let upper = h.l3_offset + IPV6_HEADER_LEN;
    let ext_len = h.l4_offset.checked_sub(upper)?;
    if ext_len == 0 {
        return Some(0);
    }
    let L3::Ipv6(f) = h.l3 else { return None };
    let mut p = Ipv6Packet::new_checked(frame.get_mut(h.l3_offset..h.end)?).ok()?;
    p.set_next_header(f.protocol);
    p.set_payload_len(u16::try_from(h.end - h.l4_offset).ok()?);
    frame.copy_within(..upper, ext_len);
    Some(ext_len)
}

/// Turns the frame's Ethernet header around and sends it back out of the ingress port, untagged
/// like every frame a router sends: a priority tag (a router port takes no other) is removed, as
/// it is from what the router forwards, and the [`SetEthDstUntag`](Action::SetEthDstUntag)
/// recorded says so ([`SimResult::frame_start`]). Not cacheable.
fn reply(r: SimResult, frame: &mut [u8], h: &Headers, ingress: &Ingress<'_>, kind: ReplyKind) -> SimResult {
    // The answer starts where what it left out ends.
    let frame = &mut frame[r.trimmed..];
    let back = match ingress.back {
        Leg::Local(dpdk_port) => Action::Output(dpdk_port),
        Leg::Tunnel { port, sport } => Action::Encap { port, sport },
    };
    turn_around(r, frame, h, ingress.port.mac, kind, back)
}

/// Sends the answer built in place in `frame` (parsed as `h` before) back to its sender from
/// `src_mac`, untagged, out of `back`: the actions [`Action::Reply`], the tag's removal when the
/// request had one, then `back`. Not cacheable.
fn turn_around(
    mut r: SimResult,
    frame: &mut [u8],
    h: &Headers,
    src_mac: EthernetAddress,
    kind: ReplyKind,
    back: Action,
) -> SimResult {
    if let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) {
        eth.set_dst_addr(h.eth_src);
        eth.set_src_addr(src_mac);
    }
    r.cacheable = false;
    r.actions = Actions::new();
    r.actions.push(Action::Reply(kind));
    if h.vlan.is_some() {
        if pop_vlan_tag(frame) != Ok(VLAN_TAG_LEN) {
            return r.drop(DropReason::Malformed);
        }
        r.actions.push(Action::SetEthDstUntag(h.eth_src));
    }
    r.actions.push(back);
    r
}

/// Whether a packet from `src` to `dst` has an address no router forwards between links: RFC 1812
/// section 5.3.7 for IPv4 (0.0.0.0/8, 127.0.0.0/8, class D, class E and the limited broadcast, as
/// source or destination: the gateway does no multicast routing), RFC 4291 sections 2.5.2, 2.5.3,
/// 2.5.6 and 2.7 for IPv6 (unspecified, loopback, link-local, multicast). IPv4 link-local
/// (169.254.0.0/16) is left alone: MidoNet and OpenStack number router-to-router links from it,
/// and the ICMP errors of those routers come from there.
fn martian(src: IpAddr, dst: IpAddr) -> bool {
    let v4 = |a: core::net::Ipv4Addr| {
        let first = a.octets()[0];
        first == 0 || first == 127 || first >= 224
    };
    let v6 = |a: Ipv6Addr| a.is_unspecified() || a.is_loopback() || a.is_unicast_link_local() || a.is_multicast();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => v4(s) || v4(d),
        (IpAddr::V6(s), IpAddr::V6(d)) => v6(s) || v6(d),
        _ => true,
    }
}

/// Whether `dst` is the broadcast address of one of the port's IPv4 subnets (not /31 or /32,
/// which have none: RFC 3021).
fn directed_broadcast(port: &RouterPort, dst: IpAddr) -> bool {
    let IpAddr::V4(dst) = dst else { return false };
    let dst = u32::from(dst);
    port.addresses.iter().any(|n| match n {
        ipnet::IpNet::V4(n) if n.prefix_len() < 31 => {
            // The host bits all ones, the network bits the subnet's.
            let host = u32::MAX >> n.prefix_len();
            dst & host == host && (dst ^ u32::from(n.addr())) & !host == 0
        }
        _ => false,
    })
}

/// Whether `addr` is a solicited-node multicast address, ff02::1:ff00:0/104 (RFC 4291 2.7.1).
fn solicited_node(addr: Ipv6Addr) -> bool {
    let s = addr.segments();
    s[..5] == [0xff02, 0, 0, 0, 0] && s[5] == 1 && s[6] >> 8 == 0xff
}

/// Whether `addr` is in one of the port's subnets.
fn on_link(port: &RouterPort, addr: IpAddr) -> bool {
    port.addresses.iter().any(|n| n.contains(&addr))
}

/// Whether `addr` may be a neighbour of `port`: on one of its subnets and not one of its own
/// addresses (a host claiming the router's address is a conflict, not a next hop).
fn neighbour_of(port: &RouterPort, addr: IpAddr) -> bool {
    on_link(port, addr) && !port.owns(addr)
}

/// The port's address to speak from towards `peer`: one in the same subnet, else the first of its family.
/// The address a router port answers a packet sent to `dst` (one of its own, or its Subnet-Router
/// anycast address) from: `dst` itself when it is a unicast address of the port (RFC 4443 2.2 (a),
/// 4.2; RFC 1122 3.2.2.6; what Linux does for IPv4 too), else the port's unicast address on the
/// subnet (RFC 4443 2.2 (b), 4.2: never from an anycast address).
fn local_source(port: &RouterPort, dst: IpAddr) -> IpAddr {
    if port.owns(dst) {
        dst
    } else {
        own_addr(port, dst).unwrap_or(dst)
    }
}

fn own_addr(port: &RouterPort, peer: IpAddr) -> Option<IpAddr> {
    let same_family = || port.addresses.iter().map(|n| n.addr()).find(|a| a.is_ipv4() == peer.is_ipv4());
    port.addresses.iter().find(|n| n.contains(&peer)).map(|n| n.addr()).or_else(same_family)
}

impl Walk<'_, '_> {
    /// Runs `chain` if there is one: `Ok` to go on, `Err` with a verdict that stops the packet.
    /// The context's `forward_flow` (for the chains that read it) and `traversed` are filled in
    /// here.
    fn filter(&mut self, chain: Option<ChainId>, ctx: &EvalContext<'_>, deps: &mut DeviceSet) -> Result<(), Stop> {
        let Some(chain) = chain else { return Ok(()) };
        let mut forward_flow = ctx.forward_flow;
        if self.snap.chain(chain).uses_conntrack() {
            self.conntrack_used = true;
            forward_flow = self.forward_flow();
        }
        let ctx = EvalContext { forward_flow, traversed: self.traversed.as_slice(), ..*ctx };
        match evaluate_tracked(self.snap, chain, &self.fields, &ctx, deps) {
            Verdict::Accept => Ok(()),
            Verdict::Reject => Err(Stop::Reject),
            Verdict::Nat(_) => Err(Stop::Nat),
            Verdict::Drop => Err(Stop::Drop),
        }
    }

    /// Whether the packet starts (or follows in its original direction) a connection, rather than
    /// replying on a known one: asked of the connection table once per packet, when a chain first
    /// needs it. A packet without a connection key (not IP) is always a forward flow.
    fn forward_flow(&mut self) -> bool {
        let (state, key, now) = (&*self.state, self.conn_key, self.now);
        *self.forward_flow.get_or_insert_with(|| !key.is_some_and(|k| state.conntrack.is_return(&k, now)))
    }

    /// An ARP packet on router port `pid`: its sender, if on the port's subnet, merged into the
    /// neighbour cache (RFC 826: updated if known, added if the packet is for the port's address).
    fn arp_sender(&mut self, pid: PortId, rp: &RouterPort, arp: &ArpRepr) {
        let sender = IpAddr::V4(arp.source_protocol_addr);
        if !arp.source_protocol_addr.is_unspecified() && neighbour_of(rp, sender) {
            let for_us = rp.owns(IpAddr::V4(arp.target_protocol_addr));
            self.state.neighbours.merge(pid, sender, arp.source_hardware_addr, for_us, self.now);
        }
    }

    /// Neighbour discovery at router port `port` (RFC 4861): learns the sender of a solicitation
    /// for the port's address (its source link-layer address) or the target of a solicited
    /// advertisement (or updates a known one, section 7.2.5), and answers a
    /// solicitation for one of the port's addresses with an advertisement into `out`, back where
    /// the frame came from. Invalid messages (section 7.1) are ignored: a hop limit other than
    /// 255, a solicitation from the unspecified address with a source link-layer address or not
    /// to a solicited-node address, a solicited advertisement to a multicast address.
    fn ndp(&mut self, frame: &[u8], h: &Headers, port: PortId, rp: &RouterPort) -> Option<Generated> {
        let L3::Ipv6(ip) = h.l3 else { return None };
        if ip.hop_limit != 255 {
            return None;
        }
        let pseudo = h.pseudo_header()?;
        let p = Icmpv6Packet::new_checked(frame.get(h.l4_offset..h.end)?).ok()?;
        match Icmpv6Repr::parse(&pseudo, &p).ok()? {
            Icmpv6Repr::NeighborSolicit { target_addr, lladdr } => {
                // Section 7.2.3: a solicitation for another node's address is discarded, sender
                // and all. The port's Subnet-Router anycast addresses are its own too (RFC 4291
                // 2.6.1), answered without the override flag (section 7.2.4).
                let anycast = rp.subnet_router_anycast(IpAddr::V6(target_addr));
                if !rp.owns(IpAddr::V6(target_addr)) && !anycast {
                    return None;
                }
                // Section 7.1.1: a solicitation from the unspecified address (duplicate address
                // detection) carries no source link-layer address and goes to a solicited-node
                // multicast address.
                let from_unspecified = ip.src.is_unspecified();
                if from_unspecified && (lladdr.is_some() || !solicited_node(ip.dst)) {
                    return None;
                }
                if let (Some(mac), false) = (lladdr, from_unspecified) {
                    if neighbour_of(rp, IpAddr::V6(ip.src)) {
                        self.state.neighbours.learn(port, IpAddr::V6(ip.src), mac, self.now);
                    }
                }
                // Section 7.2.4: to the solicitor, or to all nodes when it has no address yet (DAD).
                let (dst_ip, dst_mac, solicited) = if from_unspecified {
                    (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), false)
                } else {
                    (ip.src, lladdr.unwrap_or(h.eth_src), true)
                };
                let len = neighbour_advert(self.out, rp.mac, target_addr, dst_mac, dst_ip, solicited, !anycast)?;
                Some(Generated { len, legs: Legs::one(self.back), icmp_error: false })
            }
            Icmpv6Repr::NeighborAdvert { flags, target_addr, lladdr: Some(mac) } => {
                // Section 7.1.2: an advertisement to a multicast address is never solicited; one
                // that says so is invalid, discarded before it can create an entry.
                if ip.dst.is_multicast() && flags.solicited {
                    return None;
                }
                // Section 7.2.5: an advertisement updates a known entry (a different MAC only
                // with the override flag), and creates one only as the answer to a solicitation
                // (this cache keeps no INCOMPLETE entries: the solicited flag stands for them).
                let target = IpAddr::V6(target_addr);
                if neighbour_of(rp, target) {
                    let learn = match self.state.neighbours.lookup(port, target, self.now) {
                        Some(known) => flags.override_entry || known == mac,
                        None => flags.solicited,
                    };
                    if learn {
                        self.state.neighbours.learn(port, target, mac, self.now);
                    }
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bridge_tests;

#[cfg(test)]
mod tunnel_tests;

#[cfg(test)]
mod conntrack_tests;
