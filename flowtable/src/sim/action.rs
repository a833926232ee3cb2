//! Flow actions: what a worker does to a frame, as a small `Copy` list the flow cache stores.

use core::fmt;

use super::tunnel::{outer_header_cached, Outer};
use super::CoreState;
use crate::topology::{PortId, PortKind, Snapshot};
use crate::wire::{pop_vlan_tag, EtherType, EthernetAddress, EthernetFrame, Ipv4Packet, Ipv6Packet, VLAN_TAG_LEN};

macro_rules! drop_reasons {
    ( $( $variant:ident => $name:literal, $desc:literal; )+ ) => {
        /// Why the simulation (or [`apply`]) dropped a frame. One list gives the enum, the counter
        /// names and the descriptions, so a core keeps `[u64; DropReason::COUNT]` indexed by
        /// [`DropReason::index`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum DropReason {
            $( #[doc = $desc] $variant, )+
        }

        impl DropReason {
            /// Every reason, in counter order (`ALL[r.index()] == r`).
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )+ ];
            /// Number of reasons: the length of a per-core counter array.
            pub const COUNT: usize = Self::ALL.len();

            /// Short snake_case name, usable as a counter or metric label.
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )+ }
            }

            /// One-line human description.
            pub const fn description(self) -> &'static str {
                match self { $( DropReason::$variant => $desc, )+ }
            }
        }
    };
}

drop_reasons! {
    Malformed => "malformed", "the frame does not parse (see the wire parse error counters)";
    UnknownIngress => "unknown_ingress", "no exterior port is bound to the DPDK port the frame came in on";
    NotRouterPort => "not_router_port", "a router-to-router hop reached a port that is not a router port";
    NotForUs => "not_for_us", "Ethernet destination is neither the port's MAC nor broadcast/multicast";
    VlanAtRouterPort => "vlan_at_router_port", "an 802.1Q-tagged frame with a VLAN ID (not 0) at a router port: router ports are untagged, a VLAN ends at a VLAN-aware bridge; never routed onto another link (priority-tagged frames, VID 0, are routed)";
    UnderlayVlan => "underlay_vlan", "an 802.1Q-tagged frame with a VLAN ID (not 0) on the underlay port: the underlay link is untagged, so it is neither decapsulated, learned from nor answered (priority-tagged frames, VID 0, are taken, and answered untagged)";
    UnderlayNotTunnel => "underlay_not_tunnel", "On the underlay port, neither a tunnelled packet for the gateway, ARP nor an echo request to the underlay address it answers (multicast reports, other ICMP from compute hosts, ...)";
    UnsupportedEthertype => "unsupported_ethertype", "neither IPv4, IPv6 nor ARP";
    ArpConsumed => "arp_consumed", "ARP packet handled by the router (learned, or not for a port address)";
    NdpConsumed => "ndp_consumed", "neighbour discovery packet handled by the router";
    RuleDrop => "rule_drop", "a rule chain dropped the packet";
    RuleReject => "rule_reject", "a rule chain rejected the packet (ICMP administratively prohibited)";
    NatUnsupported => "nat_unsupported", "a NAT rule matched; NAT is not implemented yet";
    Martian => "martian", "a source or destination no router forwards (RFC 1812 5.3.7, RFC 4291 2.5.6): 0/8, loopback, class E, limited broadcast, multicast (no multicast routing), unspecified, IPv6 link-local; or a packet to a router port from a source no host has (RFC 1122 3.2.1.3): not answered";
    DirectedBroadcast => "directed_broadcast", "to the broadcast address of a subnet of the egress port (RFC 2644: not forwarded)";
    SourceRouted => "source_routed", "an IPv4 packet with a loose or strict source route option (LSRR, SSRR) reached a router (or the underlay address): dropped without an answer, whether to be forwarded or for the router itself (RFC 7126 4.3, 4.4; Linux's accept_source_route 0); a bridge forwards it";
    LinkBroadcast => "link_broadcast", "received as an Ethernet broadcast or multicast but sent to a unicast IP address: neither routed nor answered (RFC 1812 5.3.4, RFC 1122 3.3.6)";
    NoRoute => "no_route", "no route to the destination (ICMP net unreachable)";
    Blackhole => "blackhole", "a blackhole route matched";
    RejectRoute => "reject_route", "a reject route matched (ICMP unreachable)";
    TtlExpired => "ttl_expired", "TTL or hop limit would reach zero (ICMP time exceeded)";
    TooBig => "too_big", "larger than the egress MTU; never fragmented (ICMP frag needed / packet too big)";
    NeighbourUnresolved => "neighbour_unresolved", "next-hop MAC unknown; an ARP request / NS was generated";
    PortUnplugged => "port_unplugged", "the egress port is neither linked nor bound";
    NoUnderlay => "no_underlay", "a port is bound on a remote host but the snapshot has no underlay (or the host no IPv4 address)";
    TunnelMalformed => "tunnel_malformed", "a VXLAN or GRE packet to the underlay address with a bad tunnel header";
    NoHeadroom => "no_headroom", "no room in front of the frame's buffer for the outer headers (the mempool's headroom is below 50 bytes)";
    TunnelInnerVlan => "tunnel_inner_vlan", "a VXLAN packet whose inner frame carries a VLAN tag (RFC 7348 6.1: discarded; the VNI is the segment)";
    TunnelTooBig => "tunnel_too_big", "larger than the underlay MTU once encapsulated, and not routed (a bridged frame: a routed one is checked against the tunnel's MTU and answered): nobody to answer, never fragmented";
    TunnelFragmented => "tunnel_fragmented", "a fragment of a VXLAN or GRE packet to the underlay address (never reassembled: the underlay's MTU must carry tunnelled packets whole)";
    UnknownTunnelKey => "unknown_tunnel_key", "a tunnelled packet whose key names no port bound on a remote host";
    TunnelHostMismatch => "tunnel_host_mismatch", "a tunnelled packet whose outer source is not the host its key's port is bound on, or that came by the other encapsulation than that host's tunnel zone uses";
    ToRouter => "to_router", "addressed to a router port and neither an echo request nor a datagram it answers (TCP, ICMP other than echo, a fragment, a failed UDP checksum, IPv6 no next header): dropped unanswered (no exception path yet)";
    ProtocolUnreachable => "protocol_unreachable", "a packet for a router port of a protocol the router does not speak (neither TCP, UDP nor ICMP): answered ICMP protocol unreachable (RFC 1122 3.2.2.1, RFC 1812 4.3.3.1) or ICMPv6 parameter problem, unrecognized next header (RFC 8200 4, RFC 4443 3.4)";
    PortUnreachable => "port_unreachable", "a UDP datagram for a router port: no UDP service listens there, answered ICMP port unreachable (RFC 1122 3.2.2.1, RFC 1812 4.3.3.1, RFC 4443 3.1)";
    EchoNotAnswered => "echo_not_answered", "an echo request to a router port that is a fragment (never reassembled) or fails its checksum: not answered";
    Ipv4BadOptions => "ipv4_bad_options", "an IPv4 header whose options cannot be walked (an option's length byte missing, below 2 or past the header, RFC 791 3.1) reached a router: answered ICMP parameter problem pointing at the option (RFC 1812 4.3.3.5), or dropped at the underlay address; a bridge forwards it";
    Ipv6ExtensionHeader => "ipv6_extension_header", "an IPv6 packet for a router port address with an extension header its destination cannot process (RFC 8200 4): a routing header with segments left (no routing type is implemented; type 0 is deprecated, RFC 5095), an unknown option whose type says discard, an authentication header; answered ICMPv6 parameter problem where the type asks for one";
    RouterLoop => "router_loop", "more router hops than the simulation follows (a routing loop)";
    IcmpErrorSuppressed => "icmp_error_suppressed", "an ICMP error was due but RFC 1812 / RFC 4443 forbid it";
    ActionsOverflow => "actions_overflow", "more actions than an action list holds";
    NeighbourRequestsLimited => "neighbour_requests_limited", "next-hop MAC unknown and the worker's budget of requests for new destinations spent (RFC 6583 section 6: a scan of a subnet): nothing asked, not held";
    NeighbourFailed => "neighbour_failed", "the next hop did not answer ARP / NS within the hold timeout, just now: ICMP host unreachable / ICMPv6 address unreachable (RFC 1812 5.2.7.1, RFC 4861 7.2.2)";
    HoldTimeout => "hold_timeout", "held for an unresolved next hop that did not answer in time, and not answered (a frame the gateway made or copied, or one waiting for the underlay)";
    HoldOverflow => "hold_overflow", "the oldest held packet, dropped to make room in the full resolution queue";
    IngressGone => "ingress_gone", "a held or handed-over frame whose tunnel ingress port left the topology (or changed index) before its turn";
    DeviceLoop => "device_loop", "more devices than the simulation follows (a loop through bridges and routers)";
    SameBridgePort => "same_bridge_port", "the bridge would send the frame back out of the port it came in on";
    NoEgress => "no_egress", "a flood found no port to send the frame out of";
    FloodLegsExceeded => "flood_legs_exceeded", "a flood copy beyond the most legs one frame is sent out of";
    Stopped => "stopped", "held for a next hop, or handed over by another worker, when the worker stopped: freed";
}

impl DropReason {
    /// Position in [`DropReason::ALL`]: the index of this reason's per-core drop counter.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for DropReason {}

/// What was done to the frame in place when the simulation answered it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// An ARP request for a port address became its reply.
    ArpReply,
    /// An ICMP / ICMPv6 echo request to a port address became its reply.
    EchoReply,
}

/// One flow action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Nothing (the filler of unused slots).
    #[default]
    Nop,
    /// Set the Ethernet source.
    SetEthSrc(EthernetAddress),
    /// Set the Ethernet destination.
    SetEthDst(EthernetAddress),
    /// Decrement the IPv4 TTL (checksum updated incrementally, RFC 1624) or the IPv6 hop limit by
    /// this many router hops. A packet whose TTL is not larger fails with [`DropReason::TtlExpired`]:
    /// the TTL is not part of the flow key, so the cached path must check it.
    DecTtl(u8),
    /// Fail with [`DropReason::TooBig`] when the IP packet is longer than this MTU (the length is
    /// not part of the flow key either).
    CheckMtu(u16),
    /// The frame was turned into a reply in place by the simulation (never cached).
    Reply(ReplyKind),
    /// Refresh MAC learning: the frame's Ethernet source is behind this bridge port. Touches only
    /// the per-core MAC table, so a cached flow keeps its source MAC learned (see the module docs).
    Learn(PortId),
    /// Record or refresh the frame's connection in the per-core [`ConnTrack`](super::ConnTrack)
    /// (a flow whose path evaluated a chain with a `flow` condition): with `reverse`, a forward
    /// packet leaving through device `zone` (its replies' key is recorded), else a return packet
    /// that entered through `zone`. Keeps a cached connection alive (see the conntrack module docs).
    Track {
        /// The device ([`zone`](super::conntrack_zone)) of the key.
        zone: u32,
        /// The frame is a forward packet: record the reversed key.
        reverse: bool,
    },
    /// Send copies out of the simulation's flood legs ([`SimResult::flood`](super::SimResult::flood));
    /// only in uncached results, so [`apply`] refuses it.
    Flood,
    /// Send out of this local DPDK port.
    Output(u16),
    /// Encapsulate toward the host remote port `port` is bound on (its key, the host's
    /// encapsulation) and send out of the underlay port; `sport` is the VXLAN UDP source port.
    /// The outer headers come from [`outer_header`](super::outer_header) at apply time.
    Encap {
        /// The remote-bound port.
        port: PortId,
        /// VXLAN UDP source port (from the inner flow's hash; unused by GRE).
        sport: u16,
    },
    /// The drop after it earned an ICMP error on a decision the flow key settles (no route, a
    /// reject route, a reject rule at a router). Applying it does nothing: a cache hit on the list
    /// is a drop, and the caller hands the packet to the simulation for its answer while its
    /// error rate allows, so such a flow costs a hit, not a simulation, per packet over the rate.
    AnswerError,
    /// Drop.
    Drop(DropReason),
    /// Set the Ethernet destination and remove the frame's 802.1Q tag (a priority tag, VID 0:
    /// router ports refuse any other, [`DropReason::VlanAtRouterPort`]): a router builds a new
    /// layer-2 header, untagged, for what it forwards, and a VTEP discards a VXLAN inner frame
    /// with a tag (RFC 7348 6.1). The MACs move [`VLAN_TAG_LEN`] bytes forward over the tag, so
    /// the frame to send starts that much later in the buffer, and the actions after this one
    /// see that frame ([`Actions::untags`], [`Applied::LocalUntagged`], ...): the caller drops
    /// those bytes from the front (pmd: `rte_pktmbuf_adj`). One action with the destination, not
    /// one of its own, so that the longest routed list (learning, both MACs, tracking) still fits
    /// in [`MAX_ACTIONS`]; the last variant, so that the others keep their tags.
    SetEthDstUntag(EthernetAddress),
}

/// Most actions an [`Actions`] list holds.
pub const MAX_ACTIONS: usize = 7;

/// A fixed-capacity list of [`Action`]s: `Copy`, no heap, 60 bytes, so it fits a flow cache entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions {
    list: [Action; MAX_ACTIONS],
    len: u8,
}

impl Actions {
    /// The empty list (applying it drops nothing and outputs nowhere: see [`apply`]).
    pub const fn new() -> Actions {
        Actions { list: [Action::Nop; MAX_ACTIONS], len: 0 }
    }

    /// A list of one drop.
    pub const fn drop(reason: DropReason) -> Actions {
        let mut a = Actions::new();
        a.list[0] = Action::Drop(reason);
        a.len = 1;
        a
    }

    /// A drop with `reason` that earned an ICMP error ([`Action::AnswerError`]).
    pub const fn answer_drop(reason: DropReason) -> Actions {
        let mut a = Actions::new();
        a.list[0] = Action::AnswerError;
        a.list[1] = Action::Drop(reason);
        a.len = 2;
        a
    }

    /// Whether the list is a drop that earned an ICMP error ([`Actions::answer_drop`]).
    pub fn answers_error(&self) -> bool {
        self.as_slice().first() == Some(&Action::AnswerError)
    }

    /// Appends `action`; when full, the list becomes a drop with [`DropReason::ActionsOverflow`].
    pub fn push(&mut self, action: Action) {
        if usize::from(self.len) == MAX_ACTIONS {
            *self = Actions::drop(DropReason::ActionsOverflow);
        } else {
            self.list[usize::from(self.len)] = action;
            self.len += 1;
        }
    }

    /// The actions, in order.
    pub fn as_slice(&self) -> &[Action] {
        &self.list[..usize::from(self.len)]
    }

    /// The drop reason, if the list drops.
    pub fn drop_reason(&self) -> Option<DropReason> {
        self.as_slice().iter().find_map(|a| match a {
            Action::Drop(r) => Some(*r),
            _ => None,
        })
    }

    /// The local DPDK port the list outputs to, if any.
    pub fn output(&self) -> Option<u16> {
        self.as_slice().iter().find_map(|a| match a {
            Action::Output(p) => Some(*p),
            _ => None,
        })
    }

    /// The remote port the list encapsulates toward, if any.
    pub fn encap(&self) -> Option<PortId> {
        self.as_slice().iter().find_map(|a| match a {
            Action::Encap { port, .. } => Some(*port),
            _ => None,
        })
    }

    /// Whether the list removes the frame's 802.1Q tag ([`Action::SetEthDstUntag`]).
    pub fn untags(&self) -> bool {
        self.as_slice().iter().any(|a| matches!(a, Action::SetEthDstUntag(_)))
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Where [`apply`] sends the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Output {
    /// The local DPDK port (the underlay's for a tunnel).
    pub dpdk_port: u16,
    /// Headers to put in front of the frame (tunnel encapsulation), usually none.
    pub outer: Outer,
}

impl Output {
    /// Out of `dpdk_port` as it is.
    pub const fn local(dpdk_port: u16) -> Output {
        Output { dpdk_port, outer: Outer::NONE }
    }
}

/// Executes cached `actions` on `frame` in place: allocation-free, never panics. Besides the frame
/// it touches only the per-core MAC table ([`Action::Learn`]) and connection table
/// ([`Action::Track`]), so a cached flow refreshes what its simulation learned.
///
/// `Err` is the drop reason: the list's own [`Action::Drop`], [`DropReason::Malformed`] when the
/// frame is too short for an action, [`DropReason::NeighbourUnresolved`] when a tunnel's underlay
/// next hop is no longer known (simulate to send the ARP request), or, from the checks a cached flow needs because TTL and
/// length are not in the flow key, [`DropReason::TtlExpired`] / [`DropReason::TooBig`]. For those
/// two the frame is unchanged up to the failing action's predecessors (only MAC rewrites come
/// earlier), and the caller runs [`simulate`](super::simulate) on it, which answers with the ICMP
/// error. A list without an output and without a drop (or with [`Action::Flood`], never cached)
/// fails with [`DropReason::Malformed`]. A list that [`untags`](Actions::untags) leaves the frame
/// to send [`VLAN_TAG_LEN`] bytes into `frame` (what is before it is no longer part of the frame).
pub fn apply(
    snap: &Snapshot,
    actions: &Actions,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
) -> Result<Output, DropReason> {
    execute(snap, actions, frame, state, now)?.ok_or(DropReason::Malformed)
}

/// Where [`apply_into`] sends the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Applied {
    /// Out of this local DPDK port, as it is.
    Local(u16),
    /// Out of this DPDK port (the underlay's), behind the outer headers written into `outer`.
    Encap(u16),
    /// [`Applied::Local`] for a frame whose 802.1Q tag [`Action::SetEthDstUntag`] removed: it starts
    /// [`VLAN_TAG_LEN`] bytes into the buffer.
    LocalUntagged(u16),
    /// [`Applied::Encap`] for a frame whose 802.1Q tag [`Action::SetEthDstUntag`] removed: it starts
    /// [`VLAN_TAG_LEN`] bytes into the buffer, and the outer headers go in front of that.
    EncapUntagged(u16),
}

impl Applied {
    /// The DPDK port the frame goes out of.
    pub const fn dpdk_port(self) -> u16 {
        match self {
            Applied::Local(p) | Applied::Encap(p) | Applied::LocalUntagged(p) | Applied::EncapUntagged(p) => p,
        }
    }

    /// Whether the frame goes into a tunnel, behind outer headers.
    pub const fn is_encap(self) -> bool {
        matches!(self, Applied::Encap(_) | Applied::EncapUntagged(_))
    }

    /// Where the frame to send starts in the buffer the actions were applied to: after the
    /// 802.1Q tag they removed, if any.
    pub const fn frame_start(self) -> usize {
        match self {
            Applied::Local(_) | Applied::Encap(_) => 0,
            Applied::LocalUntagged(_) | Applied::EncapUntagged(_) => VLAN_TAG_LEN,
        }
    }
}

/// [`apply`] for the fast path: the same checks, effects and errors, but the result is a port (and,
/// for a tunnel, the outer headers written into `outer`, left untouched otherwise), so a hit moves
/// no [`Output`] around.
#[inline]
pub fn apply_into(
    snap: &Snapshot,
    actions: &Actions,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    outer: &mut Outer,
) -> Result<Applied, DropReason> {
    run(snap, actions, frame, state, now, outer)?.ok_or(DropReason::Malformed)
}

/// [`apply`], with [`Action::Flood`] ending the list as `Ok(None)`.
pub(super) fn execute(
    snap: &Snapshot,
    actions: &Actions,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
) -> Result<Option<Output>, DropReason> {
    let mut outer = Outer::NONE;
    Ok(match run(snap, actions, frame, state, now, &mut outer)? {
        None => None,
        Some(Applied::Local(dpdk_port) | Applied::LocalUntagged(dpdk_port)) => Some(Output::local(dpdk_port)),
        Some(Applied::Encap(dpdk_port) | Applied::EncapUntagged(dpdk_port)) => Some(Output { dpdk_port, outer }),
    })
}

/// The actions' interpreter: `Ok(None)` for [`Action::Flood`]. Inlined into the hit path (through
/// [`apply_into`]): a call would save and restore six registers around a handful of actions.
#[inline(always)]
fn run(
    snap: &Snapshot,
    actions: &Actions,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    outer: &mut Outer,
) -> Result<Option<Applied>, DropReason> {
    // The outer headers depend only on the length, which only `SetEthDstUntag` changes: build
    // them first, so an unresolved underlay leaves the frame untouched for the simulation that
    // asks for it.
    let encap = match actions.as_slice().last() {
        Some(&Action::Encap { port, sport }) => {
            let built = outer_header_cached(snap, state, port, sport, frame.len(), now);
            let (dpdk_port, headers) = built
                .or_else(|reason| untagged_outer(snap, actions, state, (port, sport), frame.len(), now, reason))?;
            *outer = headers;
            Some(dpdk_port)
        }
        _ => None,
    };
    interpret::<false>(snap, actions.as_slice(), frame, state, now, encap, outer)
}

/// [`run`]'s loop over `actions`, with the outer headers built (`encap`: the underlay DPDK port,
/// when the list ends in [`Action::Encap`]). `UNTAGGED`: an [`Action::SetEthDstUntag`] before
/// these removed the tag, and `frame` starts after it.
#[inline(always)]
fn interpret<const UNTAGGED: bool>(
    snap: &Snapshot,
    actions: &[Action],
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    encap: Option<u16>,
    outer: &mut Outer,
) -> Result<Option<Applied>, DropReason> {
    // Checked once, not per action: no action changes the Ethernet header's length
    // (`SetEthDstUntag` runs the rest of the list on the frame it leaves), the ethertype or the
    // IP lengths. The IP header is looked for only when an action needs it (a bridged frame may
    // not be IP).
    let eth_ok = EthernetFrame::new_checked(&*frame).is_ok();
    let mut ip = None;
    for action in actions {
        match *action {
            Action::Nop | Action::Reply(_) | Action::AnswerError => {}
            Action::Learn(port) => learn(snap, port, frame, state, now),
            Action::Track { zone, reverse } => state.conntrack.track_frame(frame, zone, reverse, now),
            Action::SetEthSrc(mac) => eth(frame, eth_ok)?.set_src_addr(mac),
            Action::SetEthDst(mac) => eth(frame, eth_ok)?.set_dst_addr(mac),
            Action::DecTtl(n) => {
                let header = match ip {
                    Some(header) => header,
                    None => *ip.insert(ip_header(frame)?),
                };
                dec_ttl(frame, header, n)?;
            }
            Action::CheckMtu(mtu) => {
                let header = match ip {
                    Some(header) => header,
                    None => *ip.insert(ip_header(frame)?),
                };
                if header.len > usize::from(mtu) {
                    return Err(DropReason::TooBig);
                }
            }
            // A keyed frame has at most one tag.
            Action::SetEthDstUntag(_) if UNTAGGED => return Err(DropReason::Malformed),
            Action::SetEthDstUntag(mac) => {
                eth(frame, eth_ok)?.set_dst_addr(mac);
                return untag_then(snap, actions, frame, state, now, encap, outer);
            }
            Action::Flood => return Ok(None),
            Action::Output(dpdk_port) if UNTAGGED => return Ok(Some(Applied::LocalUntagged(dpdk_port))),
            Action::Output(dpdk_port) => return Ok(Some(Applied::Local(dpdk_port))),
            Action::Encap { .. } if UNTAGGED => {
                return encap.map(|p| Some(Applied::EncapUntagged(p))).ok_or(DropReason::Malformed)
            }
            Action::Encap { .. } => return encap.map(|p| Some(Applied::Encap(p))).ok_or(DropReason::Malformed),
            Action::Drop(reason) => return Err(reason),
        }
    }
    Err(DropReason::Malformed)
}

/// The rest of the first [`Action::SetEthDstUntag`] of `actions`: moves the MACs over the
/// frame's 802.1Q tag, then runs the actions after it on the untagged frame, [`VLAN_TAG_LEN`]
/// bytes into `frame`. Out of line: only a priority-tagged frame a router forwards comes here, so
/// other frames' hits pay nothing (the loop does not even keep its place for it).
#[cold]
#[inline(never)]
fn untag_then(
    snap: &Snapshot,
    actions: &[Action],
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    encap: Option<u16>,
    outer: &mut Outer,
) -> Result<Option<Applied>, DropReason> {
    let at = actions.iter().position(|a| matches!(a, Action::SetEthDstUntag(_)));
    let rest = at.and_then(|at| actions.get(at + 1..)).unwrap_or_default();
    if pop_vlan_tag(frame) != Ok(VLAN_TAG_LEN) {
        return Err(DropReason::Malformed);
    }
    let frame = frame.get_mut(VLAN_TAG_LEN..).ok_or(DropReason::Malformed)?;
    // The outer headers were built for the frame with its tag: its lengths, 4 bytes shorter now.
    if let (Some(_), Some(&Action::Encap { port, sport })) = (encap, rest.last()) {
        *outer = outer_header_cached(snap, state, port, sport, frame.len(), now)?.1;
    }
    interpret::<true>(snap, rest, frame, state, now, encap, outer)
}

/// [`run`]'s outer headers when [`outer_header_cached`] refused the frame as it came with
/// `reason`: a frame too big for the tunnel ([`DropReason::TunnelTooBig`]) with an 802.1Q tag the
/// list removes may fit without. Out of line, like [`untag_then`].
#[cold]
#[inline(never)]
fn untagged_outer(
    snap: &Snapshot,
    actions: &Actions,
    state: &mut CoreState,
    (port, sport): (PortId, u16),
    frame_len: usize,
    now: u64,
    reason: DropReason,
) -> Result<(u16, Outer), DropReason> {
    if reason != DropReason::TunnelTooBig || !actions.untags() {
        return Err(reason);
    }
    outer_header_cached(snap, state, port, sport, frame_len.saturating_sub(VLAN_TAG_LEN), now)
}

/// Whether a bridge learns `mac` as a source: unicast and not all zeros.
pub(super) fn learnable(mac: EthernetAddress) -> bool {
    mac.is_unicast() && mac.0 != [0; 6]
}

/// Learns the frame's Ethernet source behind bridge port `port`.
fn learn(snap: &Snapshot, port: PortId, frame: &[u8], state: &mut CoreState, now: u64) {
    let (Some(PortKind::Bridge(bp)), Ok(eth)) =
        (snap.get_port(port).map(|p| &p.kind), EthernetFrame::new_checked(frame))
    else {
        return;
    };
    let src = eth.src_addr();
    if learnable(src) {
        state.macs.learn(bp.bridge, src, port, now);
    }
}

/// The Ethernet view of a frame already checked (`ok`) to hold the header.
#[inline]
fn eth(frame: &mut [u8], ok: bool) -> Result<EthernetFrame<&mut [u8]>, DropReason> {
    if ok {
        Ok(EthernetFrame::new_unchecked(frame))
    } else {
        Err(DropReason::Malformed)
    }
}

/// Where a frame's IP header is, its version and the IP packet's length, with the lengths checked
/// as the wire views check them.
#[derive(Debug, Clone, Copy)]
pub(super) struct IpHeader {
    pub(super) v6: bool,
    pub(super) offset: usize,
    /// Length of the IP packet (header included, link padding excluded).
    pub(super) len: usize,
}

/// The frame's IP header; [`DropReason::Malformed`] when it is not IPv4 or IPv6 or its lengths do
/// not hold. Read from the bytes with exactly the checks of the Ethernet, IPv4 and IPv6 views'
/// `new_checked` (a test holds the two equal), since every cached packet comes through here.
#[inline(always)]
pub(super) fn ip_header(frame: &[u8]) -> Result<IpHeader, DropReason> {
    const MALFORMED: DropReason = DropReason::Malformed;
    let eth: &[u8; 14] = frame.first_chunk().ok_or(MALFORMED)?;
    let (offset, ethertype) = if eth[12..14] == [0x81, 0x00] {
        let tagged: &[u8; 18] = frame.first_chunk().ok_or(MALFORMED)?;
        (18, u16::from_be_bytes([tagged[16], tagged[17]]))
    } else {
        (14, u16::from_be_bytes([eth[12], eth[13]]))
    };
    let l3 = frame.get(offset..).ok_or(MALFORMED)?;
    match EtherType::from(ethertype) {
        EtherType::Ipv4 => {
            let ip: &[u8; 20] = l3.first_chunk().ok_or(MALFORMED)?;
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if header_len < 20 || header_len > l3.len() || len < header_len || len > l3.len() {
                return Err(MALFORMED);
            }
            Ok(IpHeader { v6: false, offset, len })
        }
        EtherType::Ipv6 => {
            let ip: &[u8; 40] = l3.first_chunk().ok_or(MALFORMED)?;
            let len = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if len > l3.len() {
                return Err(MALFORMED);
            }
            Ok(IpHeader { v6: true, offset, len })
        }
        _ => Err(MALFORMED),
    }
}

/// Decrements the TTL / hop limit of the checked IP header `ip` by `n`, or fails with
/// [`DropReason::TtlExpired`] (frame unchanged) when it is not larger than `n`.
#[inline(always)]
fn dec_ttl(frame: &mut [u8], ip: IpHeader, n: u8) -> Result<(), DropReason> {
    let l3 = &mut frame[ip.offset..];
    if ip.v6 {
        let mut p = Ipv6Packet::new_unchecked(l3);
        if p.hop_limit() <= n {
            return Err(DropReason::TtlExpired);
        }
        p.set_hop_limit(p.hop_limit() - n);
    } else {
        let mut p = Ipv4Packet::new_unchecked(l3);
        if p.ttl() <= n {
            return Err(DropReason::TtlExpired);
        }
        for _ in 0..n {
            p.decrement_ttl();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `ip_header` replaced: the wire views' checks, one after the other.
    fn through_views(frame: &[u8]) -> Result<IpHeader, DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
        let offset = eth.payload_offset();
        match eth.inner_ethertype() {
            EtherType::Ipv4 => {
                let ip = Ipv4Packet::new_checked(&frame[offset..]).map_err(|_| DropReason::Malformed)?;
                Ok(IpHeader { v6: false, offset, len: usize::from(ip.total_len()) })
            }
            EtherType::Ipv6 => {
                let ip = Ipv6Packet::new_checked(&frame[offset..]).map_err(|_| DropReason::Malformed)?;
                Ok(IpHeader { v6: true, offset, len: ip.total_len() })
            }
            _ => Err(DropReason::Malformed),
        }
    }

    fn same(a: Result<IpHeader, DropReason>, b: Result<IpHeader, DropReason>) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => (a.v6, a.offset, a.len) == (b.v6, b.offset, b.len),
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }

    proptest! {
        /// Frames with a plausible start (tag or not, IPv4 or IPv6 ethertype, any IHL and lengths).
        #[test]
        fn ip_header_equals_the_views(
            tagged in any::<bool>(), v6 in any::<bool>(), other in any::<bool>(),
            mut bytes in proptest::collection::vec(any::<u8>(), 0..90), len in 0usize..90,
        ) {
            bytes.resize(90, 0);
            let mut at = 12;
            if tagged {
                bytes[12..14].copy_from_slice(&[0x81, 0x00]);
                at = 16;
            }
            if !other {
                bytes[at..at + 2].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
            }
            bytes.truncate(len);
            prop_assert!(same(ip_header(&bytes), through_views(&bytes)));
        }

        #[test]
        fn ip_header_equals_the_views_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert!(same(ip_header(&bytes), through_views(&bytes)));
        }
    }
}
