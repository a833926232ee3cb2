//! The simulation: a packet's walk through the virtual topology, turned into flow [`Actions`].
//!
//! First cut, the L3 path only (bridges, tunnels and NAT come later). [`simulate`] takes a frame
//! received on a local DPDK port, finds the exterior router port bound to it and follows the
//! packet: port inbound chain, router infilter, ARP / ICMP echo answers for port addresses, route
//! lookup (ECMP by [`FlowKey::symmetric_hash`]), TTL / hop limit, router outfilter and port
//! outbound chain, interior router-router links (bounded by [`MAX_ROUTER_HOPS`]), and at an
//! exterior local port the MTU and the next-hop MAC from the per-core [`CoreState`]. It returns
//! the [`Actions`] (already applied to the frame), the devices the decision depended on and
//! whether the result may be cached; a frame to send besides (an ICMP error, an ARP request, a
//! neighbour solicitation) is built into the caller's `out` buffer ([`Generated`]).
//!
//! [`apply`] runs cached actions on the next frames of the flow. Neither allocates.
//!
//! | file | what |
//! | --- | --- |
//! | `action.rs` | [`Action`], [`Actions`], [`DropReason`], [`apply`] |
//! | `neighbour.rs` | [`NeighbourCache`], [`CoreState`] |
//! | `generate.rs` | ICMP errors, ARP requests, neighbour solicitations |
//!
//! # What is cached
//!
//! Forwarding, blackhole and rule drops are cacheable: they depend only on the flow key and the
//! devices in `deps`. TTL and length are not in the flow key, so a forwarding list carries
//! [`Action::CheckMtu`] and [`Action::DecTtl`], which fail before touching the frame; the caller
//! then simulates that one packet, which answers with the ICMP error. Everything that answers or
//! generates a frame, learns a neighbour, or fails on something outside the key is not cached.
//! A cached flow also depends on the neighbour entry it used: the flow cache's hard timeout
//! should not exceed the neighbour lifetime ([`CoreConfig::neighbour_lifetime`]).
//!
//! # Simplifications of this first cut
//!
//! ICMP errors and echo replies go straight back out of the ingress DPDK port to the frame's
//! Ethernet source, with the address of the port the packet entered the current router through
//! as source (what traceroute expects); the return path's chains and routes are not simulated.
//! Generated frames carry no VLAN tag.

mod action;
mod generate;
mod neighbour;

use core::net::IpAddr;

pub use self::action::{apply, Action, Actions, DropReason, Output, ReplyKind, MAX_ACTIONS};
pub use self::generate::{arp_request, icmp_error, neighbour_solicit, IcmpError};
pub use self::neighbour::{CoreConfig, CoreState, NeighbourCache, MAX_DPDK_PORTS};

use crate::chain::{evaluate_tracked, EvalContext, PacketMatchFields, Verdict};
use crate::flow::FlowKey;
use crate::topology::{Binding, ChainId, DeviceId, DeviceSet, PortId, PortLink, RouteDecision, RouterPort, Snapshot};
use crate::wire::{
    ArpOperation, ArpPacket, EthernetAddress, EthernetFrame, Fragment, Headers, Icmpv4DstUnreachable, Icmpv4Message,
    Icmpv4Packet, Icmpv6DstUnreachable, Icmpv6Message, Icmpv6Packet, Icmpv6Repr, Ipv4Packet, Ipv6Packet, L3, L4,
};

/// Most routers a packet crosses before the simulation calls it a loop.
pub const MAX_ROUTER_HOPS: u8 = 8;

/// TTL / hop limit of replies the router generates.
const REPLY_TTL: u8 = 64;

/// A frame the simulation built into the caller's `out` buffer, to send besides (or instead of)
/// the received one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generated {
    /// Its length: the frame is `out[..len]`.
    pub len: usize,
    /// The local DPDK port to send it out of.
    pub dpdk_port: u16,
}

/// What [`simulate`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimResult {
    /// What was done to the frame (already applied): forward, reply in place, or drop.
    pub actions: Actions,
    /// Every device the decision depended on.
    pub deps: DeviceSet,
    /// Whether `actions` may be installed in the flow cache for this frame's flow key.
    pub cacheable: bool,
    /// A frame built into `out`, if any.
    pub generated: Option<Generated>,
}

impl SimResult {
    fn new() -> SimResult {
        SimResult { actions: Actions::new(), deps: DeviceSet::new(), cacheable: true, generated: None }
    }

    fn drop(mut self, reason: DropReason) -> SimResult {
        self.actions = Actions::drop(reason);
        self
    }

    fn uncached_drop(mut self, reason: DropReason) -> SimResult {
        self.cacheable = false;
        self.drop(reason)
    }
}

/// Where the packet entered the gateway, for answers.
struct Ingress<'a> {
    dpdk_port: u16,
    port: &'a RouterPort,
}

/// Simulates `frame`, received on local DPDK port `ingress_dpdk_port`, through `snap` at time `now`.
///
/// The frame is rewritten in place as the returned actions say (forwarded, or turned into an ARP /
/// echo reply); a frame to send besides is built into `out` (1514 bytes hold any of them). Never
/// panics and never allocates.
pub fn simulate(
    snap: &Snapshot,
    ingress_dpdk_port: u16,
    frame: &mut [u8],
    state: &mut CoreState,
    now: u64,
    out: &mut [u8],
) -> SimResult {
    let mut r = SimResult::new();
    let Some(pid) = snap.port_by_dpdk_port(ingress_dpdk_port) else {
        return r.uncached_drop(DropReason::UnknownIngress);
    };
    r.deps.insert(DeviceId::Port(pid));
    let port = snap.port(pid);
    let Some(rp) = port.as_router_port() else {
        return r.uncached_drop(DropReason::NotRouterPort);
    };
    let Ok(h) = Headers::parse(frame) else {
        return r.uncached_drop(DropReason::Malformed);
    };
    if h.eth_dst != rp.mac && !h.eth_dst.is_multicast() {
        return r.drop(DropReason::NotForUs);
    }
    let ingress = Ingress { dpdk_port: ingress_dpdk_port, port: rp };
    let fields = PacketMatchFields::from_headers(&h);
    let ctx = EvalContext { group_port: Some(pid), forward_flow: true, ..EvalContext::default() };
    if let Err(v) = filter(snap, port.inbound_chain, &fields, &ctx, &mut r.deps) {
        return verdict(r, v, frame, &h, &ingress, rp, out);
    }
    match h.l3 {
        L3::Arp(arp) => {
            if !arp.source_protocol_addr.is_unspecified() && on_link(rp, IpAddr::V4(arp.source_protocol_addr)) {
                state.neighbours.learn(pid, IpAddr::V4(arp.source_protocol_addr), arp.source_hardware_addr, now);
            }
            if arp.operation == ArpOperation::Request && rp.owns(IpAddr::V4(arp.target_protocol_addr)) {
                if let Ok(mut p) = ArpPacket::new_checked(&mut frame[h.l3_offset..]) {
                    p.make_reply_in_place(rp.mac);
                }
                return reply(r, frame, &h, &ingress, ReplyKind::ArpReply);
            }
            r.uncached_drop(DropReason::ArpConsumed)
        }
        L3::Ipv4(_) | L3::Ipv6(_) => {
            if let L4::Icmpv6 { msg_type: Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert, .. } = h.l4 {
                learn_ndp(frame, &h, pid, rp, state, now);
                return r.uncached_drop(DropReason::NdpConsumed);
            }
            route(r, snap, pid, frame, &h, &fields, &ingress, state, now, out)
        }
        L3::Other => r.drop(DropReason::UnsupportedEthertype),
    }
}

/// The L3 walk from the ingress router on.
#[allow(clippy::too_many_arguments)]
fn route(
    mut r: SimResult,
    snap: &Snapshot,
    ingress_port: PortId,
    frame: &mut [u8],
    h: &Headers,
    fields: &PacketMatchFields,
    ingress: &Ingress<'_>,
    state: &mut CoreState,
    now: u64,
    out: &mut [u8],
) -> SimResult {
    let (src, dst, ttl, ip_len, dont_frag) = match h.l3 {
        L3::Ipv4(f) => (IpAddr::V4(f.src), IpAddr::V4(f.dst), f.ttl, h.end - h.l3_offset, f.dont_frag),
        L3::Ipv6(f) => (IpAddr::V6(f.src), IpAddr::V6(f.dst), f.hop_limit, h.end - h.l3_offset, true),
        _ => return r.uncached_drop(DropReason::Malformed),
    };
    let hash = FlowKey::from_headers(ingress_port.0, h).symmetric_hash();
    let mut in_port = ingress_port;
    let mut hops = 0u8;
    loop {
        let Some(in_rp) = snap.port(in_port).as_router_port() else {
            return r.uncached_drop(DropReason::NotRouterPort);
        };
        if hops >= MAX_ROUTER_HOPS {
            return r.drop(DropReason::RouterLoop);
        }
        r.deps.insert(DeviceId::Router(in_rp.router));
        let router = snap.router(in_rp.router);
        let ctx = EvalContext {
            in_port: Some(in_port),
            group_port: Some(in_port),
            forward_flow: true,
            ..EvalContext::default()
        };
        if let Err(v) = filter(snap, router.infilter, fields, &ctx, &mut r.deps) {
            return verdict(r, v, frame, h, ingress, in_rp, out);
        }
        let decision = router.route(src, dst, hash, &mut r.deps);
        let (out_port, next_hop) = match decision {
            RouteDecision::Forward { port, next_hop, .. } => (port, next_hop),
            RouteDecision::Local { .. } => return local(r, frame, h, ingress),
            RouteDecision::Blackhole { .. } => return r.drop(DropReason::Blackhole),
            RouteDecision::Reject { .. } | RouteDecision::NoRoute => {
                let reason =
                    if decision == RouteDecision::NoRoute { DropReason::NoRoute } else { DropReason::RejectRoute };
                let err = match h.l3 {
                    L3::Ipv4(_) => decision.icmpv4_unreachable().map(|c| IcmpError::V4Unreachable(c, 0)),
                    _ => decision.icmpv6_unreachable().map(IcmpError::V6Unreachable),
                };
                return answer_error(r, reason, err, frame, h, ingress, in_rp, out);
            }
        };
        // RFC 1812 section 5.3.1 / RFC 8200 section 3: a router does not forward with TTL <= 1.
        if ttl <= hops + 1 {
            let err = if src.is_ipv4() { IcmpError::V4TimeExceeded } else { IcmpError::V6TimeExceeded };
            return answer_error(r, DropReason::TtlExpired, Some(err), frame, h, ingress, in_rp, out);
        }
        r.deps.insert(DeviceId::Port(out_port));
        let oport = snap.port(out_port);
        let ctx = EvalContext { out_port: Some(out_port), ..ctx };
        if let Err(v) = filter(snap, router.outfilter, fields, &ctx, &mut r.deps) {
            return verdict(r, v, frame, h, ingress, in_rp, out);
        }
        let ctx = EvalContext { group_port: Some(out_port), forward_flow: true, ..EvalContext::default() };
        if let Err(v) = filter(snap, oport.outbound_chain, fields, &ctx, &mut r.deps) {
            return verdict(r, v, frame, h, ingress, in_rp, out);
        }
        hops += 1;
        let dpdk_port = match oport.link {
            PortLink::Peer(peer) => {
                r.deps.insert(DeviceId::Port(peer));
                let ctx = EvalContext { group_port: Some(peer), forward_flow: true, ..EvalContext::default() };
                if let Err(v) = filter(snap, snap.port(peer).inbound_chain, fields, &ctx, &mut r.deps) {
                    return verdict(r, v, frame, h, ingress, in_rp, out);
                }
                in_port = peer;
                continue;
            }
            PortLink::Exterior(Binding::Local { dpdk_port }) => dpdk_port,
            PortLink::Exterior(Binding::Remote { .. }) => return r.uncached_drop(DropReason::TunnelUnsupported),
            PortLink::Unplugged => return r.drop(DropReason::PortUnplugged),
        };
        let Some(orp) = oport.as_router_port() else {
            return r.uncached_drop(DropReason::NotRouterPort);
        };
        let mtu = state.mtu(dpdk_port);
        if ip_len > usize::from(mtu) {
            if !dont_frag {
                // Never fragment (design: no IP fragmentation); without DF there is no one to tell.
                return r.uncached_drop(DropReason::TooBig);
            }
            let err = if src.is_ipv4() {
                IcmpError::V4Unreachable(Icmpv4DstUnreachable::FragRequired, mtu)
            } else {
                IcmpError::V6TooBig(u32::from(mtu))
            };
            return answer_error(r, DropReason::TooBig, Some(err), frame, h, ingress, in_rp, out);
        }
        let Some(mac) = state.neighbours.lookup(out_port, next_hop, now) else {
            r = r.uncached_drop(DropReason::NeighbourUnresolved);
            let len = match (next_hop, own_addr(orp, next_hop)) {
                (IpAddr::V4(t), Some(IpAddr::V4(s))) => arp_request(out, orp.mac, s, t),
                (IpAddr::V6(t), Some(IpAddr::V6(s))) => neighbour_solicit(out, orp.mac, s, t),
                _ => None,
            };
            r.generated = len.map(|len| Generated { len, dpdk_port });
            return r;
        };
        for a in [
            Action::CheckMtu(mtu),
            Action::DecTtl(hops),
            Action::SetEthSrc(orp.mac),
            Action::SetEthDst(mac),
            Action::Output(dpdk_port),
        ] {
            r.actions.push(a);
        }
        if let Err(reason) = apply(&r.actions, frame) {
            return r.uncached_drop(reason);
        }
        return r;
    }
}

/// Runs `chain` if there is one: `Ok` to go on, `Err` with a verdict that stops the packet.
fn filter(
    snap: &Snapshot,
    chain: Option<ChainId>,
    fields: &PacketMatchFields,
    ctx: &EvalContext<'_>,
    deps: &mut DeviceSet,
) -> Result<(), Stop> {
    match chain.map(|c| evaluate_tracked(snap, c, fields, ctx, deps)) {
        None | Some(Verdict::Accept) => Ok(()),
        Some(Verdict::Reject) => Err(Stop::Reject),
        Some(Verdict::Nat(_)) => Err(Stop::Nat),
        Some(_) => Err(Stop::Drop),
    }
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
    at: &RouterPort,
    out: &mut [u8],
) -> SimResult {
    match v {
        Stop::Reject => {
            let err = match h.l3 {
                L3::Ipv4(_) => Some(IcmpError::V4Unreachable(Icmpv4DstUnreachable::CommProhibited, 0)),
                L3::Ipv6(_) => Some(IcmpError::V6Unreachable(Icmpv6DstUnreachable::AdminProhibit)),
                _ => None,
            };
            answer_error(r, DropReason::RuleReject, err, frame, h, ingress, at, out)
        }
        Stop::Nat => r.uncached_drop(DropReason::NatUnsupported),
        Stop::Drop => r.drop(DropReason::RuleDrop),
    }
}

/// Drops with `reason` and builds the ICMP error, from `at`'s address, when RFC 1812 section
/// 4.3.2.7 / RFC 4443 section 2.4 (e) allow one. Not cacheable.
#[allow(clippy::too_many_arguments)]
fn answer_error(
    mut r: SimResult,
    reason: DropReason,
    err: Option<IcmpError>,
    frame: &[u8],
    h: &Headers,
    ingress: &Ingress<'_>,
    at: &RouterPort,
    out: &mut [u8],
) -> SimResult {
    r = r.uncached_drop(reason);
    let (Some(err), Some(src)) = (err, h.pseudo_header().and_then(|p| own_addr(at, pseudo_src(&p)))) else {
        return r;
    };
    if !may_answer_error(h) {
        return r.uncached_drop(DropReason::IcmpErrorSuppressed);
    }
    r.generated = icmp_error(frame, h, out, ingress.port.mac, src, err)
        .map(|len| Generated { len, dpdk_port: ingress.dpdk_port });
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
/// not a unicast host.
fn may_answer_error(h: &Headers) -> bool {
    if h.fragment() == Fragment::Later || h.eth_dst.is_multicast() {
        return false;
    }
    match (h.l3, h.l4) {
        (_, L4::Icmpv4 { msg_type, .. }) if msg_type.is_error() => false,
        (_, L4::Icmpv6 { msg_type, .. }) if msg_type.is_error() => false,
        (L3::Ipv4(f), _) => {
            !(f.dst.is_multicast()
                || f.dst.is_broadcast()
                || f.src.is_multicast()
                || f.src.is_broadcast()
                || f.src.is_unspecified()
                || f.src.is_loopback())
        }
        (L3::Ipv6(f), _) => !(f.dst.is_multicast() || f.src.is_multicast() || f.src.is_unspecified()),
        _ => false,
    }
}

/// Addressed to one of the router's ports: answer echo requests, drop the rest (the exception path
/// comes later).
fn local(r: SimResult, frame: &mut [u8], h: &Headers, ingress: &Ingress<'_>) -> SimResult {
    let ip = &mut frame[h.l3_offset..h.end];
    match (h.l3, h.l4) {
        (L3::Ipv4(f), L4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest, code: 0, .. }) => {
            if let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) {
                p.set_src_addr(f.dst);
                p.set_dst_addr(f.src);
                p.set_ttl(REPLY_TTL);
                p.fill_checksum();
            }
            if let Ok(mut p) = Icmpv4Packet::new_checked(&mut frame[h.l4_offset..h.end]) {
                p.make_echo_reply_in_place();
            }
        }
        (L3::Ipv6(f), L4::Icmpv6 { msg_type: Icmpv6Message::EchoRequest, code: 0, .. }) => {
            if let Ok(mut p) = Ipv6Packet::new_checked(&mut *ip) {
                p.set_src_addr(f.dst);
                p.set_dst_addr(f.src);
                p.set_hop_limit(REPLY_TTL);
            }
            if let Ok(mut p) = Icmpv6Packet::new_checked(&mut frame[h.l4_offset..h.end]) {
                p.make_echo_reply_in_place();
            }
        }
        _ => return r.uncached_drop(DropReason::ToRouter),
    }
    reply(r, frame, h, ingress, ReplyKind::EchoReply)
}

/// Turns the frame's Ethernet header around and sends it back out of the ingress port. Not cacheable.
fn reply(mut r: SimResult, frame: &mut [u8], h: &Headers, ingress: &Ingress<'_>, kind: ReplyKind) -> SimResult {
    if let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) {
        eth.set_dst_addr(h.eth_src);
        eth.set_src_addr(ingress.port.mac);
    }
    r.cacheable = false;
    r.actions = Actions::new();
    r.actions.push(Action::Reply(kind));
    r.actions.push(Action::Output(ingress.dpdk_port));
    r
}

/// Whether `addr` is in one of the port's subnets.
fn on_link(port: &RouterPort, addr: IpAddr) -> bool {
    port.addresses.iter().any(|n| n.contains(&addr))
}

/// The port's address to speak from towards `peer`: one in the same subnet, else the first of its family.
fn own_addr(port: &RouterPort, peer: IpAddr) -> Option<IpAddr> {
    let same_family = || port.addresses.iter().map(|n| n.addr()).find(|a| a.is_ipv4() == peer.is_ipv4());
    port.addresses.iter().find(|n| n.contains(&peer)).map(|n| n.addr()).or_else(same_family)
}

/// Learns from a neighbour solicitation (source link-layer address) or advertisement (target
/// link-layer address) on a router port.
fn learn_ndp(frame: &[u8], h: &Headers, port: PortId, rp: &RouterPort, state: &mut CoreState, now: u64) {
    let (Some(pseudo), Some(seg)) = (h.pseudo_header(), frame.get(h.l4_offset..h.end)) else { return };
    let Ok(p) = Icmpv6Packet::new_checked(seg) else { return };
    let (addr, mac): (IpAddr, EthernetAddress) = match Icmpv6Repr::parse(&pseudo, &p) {
        Ok(Icmpv6Repr::NeighborSolicit { lladdr: Some(mac), .. }) => (pseudo_src(&pseudo), mac),
        Ok(Icmpv6Repr::NeighborAdvert { target_addr, lladdr: Some(mac), .. }) => (IpAddr::V6(target_addr), mac),
        _ => return,
    };
    if !addr.is_unspecified() && on_link(rp, addr) {
        state.neighbours.learn(port, addr, mac, now);
    }
}

#[cfg(test)]
mod tests;
