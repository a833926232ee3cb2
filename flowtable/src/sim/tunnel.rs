//! Tunnels between the gateway's underlay endpoint and the hosts remote ports are bound on:
//! outer headers for encapsulation (VXLAN, RFC 7348; GRE with a key, RFC 2784 / 2890) and the
//! checks of decapsulation.
//!
//! The outer headers are built when a frame leaves ([`outer_header`]), by the simulation and by
//! [`apply`](super::apply) alike, from the snapshot's [`Underlay`] and host, the underlay next
//! hop's MAC in the per-core neighbour cache (under [`UNDERLAY_PORT`]) and the underlay DPDK
//! port's own MAC ([`CoreState::set_port_mac`]): nothing is cached that a snapshot or neighbour
//! change would leave stale, so a cached flow only names the port (whose binding names the host
//! and key) and the VXLAN source port. Outer IPv4: DF set (the gateway never fragments and drops
//! fragments of tunnelled packets itself, so nobody on the underlay may fragment them either: a
//! routed packet is checked against the tunnel's MTU and answered, and every frame, routed or
//! not, must fit the underlay's MTU outside, else `tunnel_too_big`; MidoNet's own capture shows no
//! DF, which with identification 0 would let reassembly mix two packets' fragments), TTL 255
//! ([`OUTER_TTL`]), identification 0 (RFC 6864: atomic datagrams need none), TOS 0. VXLAN: UDP source
//! port from the inner flow's hash in 49152..=65535 (RFC 7348 section 5 recommends the dynamic
//! range), destination the underlay's VXLAN port, UDP checksum 0 (allowed over IPv4), flags
//! 0x08 (I), VNI = tunnel key. GRE: K bit only, protocol 0x6558, key = tunnel key.
//!
//! On the hit path the headers come from a per-core template per tunnel, kept while the snapshot,
//! the neighbour entry and the port MACs it was built from hold: a cached list gets them as an
//! [`Outer`] ([`outer_header_cached`]); a compiled hop only checks the template ([`ready_outer`])
//! and the pipeline writes the headers once, straight from it into the packet buffer's headroom
//! ([`ReadyOuter::write`]).

use core::net::{IpAddr, Ipv4Addr};

use super::{CoreState, DropReason};
use crate::topology::{Binding, Encap, PortId, PortLink, Snapshot, Underlay};
use crate::wire::{
    checksum, EtherType, EthernetAddress, Fragment, GrePacket, GreRepr, Headers, IpProtocol, Ipv4OptionsClass,
    Ipv4Packet, L3, L4,
};

/// The neighbour cache key of the underlay (no virtual port has this id).
pub const UNDERLAY_PORT: PortId = PortId(u32::MAX - 1);

/// Longest outer header: Ethernet + IPv4 + UDP + VXLAN.
pub const MAX_OUTER_LEN: usize = 50;

/// TTL of outer IPv4 headers: MidoNet's (the seeds' capture of an inter-host tunnel, A8), so that
/// an underlay of several routed hops carries the gateway's tunnels as far as its hosts'.
pub const OUTER_TTL: u8 = 255;

/// Lowest VXLAN UDP source port (RFC 7348 section 5: the dynamic range 49152-65535).
pub const VXLAN_SPORT_MIN: u16 = 49152;

/// Outer headers to put in front of a frame: a fixed buffer, no heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outer {
    bytes: [u8; MAX_OUTER_LEN],
    len: u8,
}

impl Outer {
    /// Nothing to prepend.
    pub const NONE: Outer = Outer { bytes: [0; MAX_OUTER_LEN], len: 0 };

    /// The header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// No header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Outer {
    fn default() -> Self {
        Outer::NONE
    }
}

impl core::fmt::Debug for Outer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Outer({:02x?})", self.as_bytes())
    }
}

/// The VXLAN UDP source port of a flow with symmetric hash `hash`.
pub const fn vxlan_source_port(hash: u32) -> u16 {
    VXLAN_SPORT_MIN + (hash % (1 << 14)) as u16
}

/// Where a frame to remote port `port` goes: the underlay, the host's address and encapsulation,
/// the port's tunnel key.
pub(super) struct Tunnel<'a> {
    pub(super) underlay: &'a Underlay,
    pub(super) dst: Ipv4Addr,
    pub(super) encap: Encap,
    pub(super) key: u32,
}

/// The tunnel to the host `port` is bound on.
pub(super) fn tunnel_of(snap: &Snapshot, port: PortId) -> Result<Tunnel<'_>, DropReason> {
    let underlay = snap.underlay().ok_or(DropReason::NoUnderlay)?;
    let Some(PortLink::Exterior(Binding::Remote { host, tunnel_key })) = snap.get_port(port).map(|p| p.link) else {
        return Err(DropReason::Malformed);
    };
    let host = snap.get_host(host).ok_or(DropReason::Malformed)?;
    let IpAddr::V4(dst) = host.tunnel_addr else { return Err(DropReason::NoUnderlay) };
    Ok(Tunnel { underlay, dst, encap: host.encap, key: tunnel_key })
}

/// Builds the outer headers for an `inner_len`-byte frame to remote port `port`; returns them with
/// the underlay DPDK port to send out of. `Err(NeighbourUnresolved)` when the underlay next hop's
/// MAC is not known (the simulation then sends an ARP request). Allocation-free.
pub fn outer_header(
    snap: &Snapshot,
    state: &CoreState,
    port: PortId,
    vxlan_sport: u16,
    inner_len: usize,
    now: u64,
) -> Result<(u16, Outer), DropReason> {
    let t = tunnel_of(snap, port)?;
    let u = t.underlay;
    let next_hop = u.next_hop(t.dst);
    let dst_mac =
        state.neighbours.lookup(UNDERLAY_PORT, IpAddr::V4(next_hop), now).ok_or(DropReason::NeighbourUnresolved)?;
    let src_mac = state.port_mac(u.dpdk_port);
    let mut o = Outer::NONE;
    let len = t.encap.header_len();
    let ip_total = len - 14 + inner_len;
    // Every tunnelled frame, routed or not: a routed packet's check against the tunnel's MTU
    // (which answers) comes first, this one is what a bridged frame meets.
    let Some(ip_total) = u16::try_from(ip_total).ok().filter(|&t| t <= state.mtu(u.dpdk_port)) else {
        return Err(DropReason::TunnelTooBig);
    };
    let b = &mut o.bytes;
    b[0..6].copy_from_slice(&dst_mac.0);
    b[6..12].copy_from_slice(&src_mac.0);
    b[12..14].copy_from_slice(&u16::from(EtherType::Ipv4).to_be_bytes());
    let proto = match t.encap {
        Encap::Vxlan => IpProtocol::Udp,
        Encap::Gre => IpProtocol::Gre,
    };
    {
        let ip = &mut b[14..34];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
        ip[4..6].copy_from_slice(&[0, 0]);
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip[8] = OUTER_TTL;
        ip[9] = u8::from(proto);
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&u.address.octets());
        ip[16..20].copy_from_slice(&t.dst.octets());
        Ipv4Packet::new_unchecked(ip).fill_checksum();
    }
    match t.encap {
        Encap::Vxlan => {
            let udp_len = ip_total - 20;
            b[34..36].copy_from_slice(&vxlan_sport.to_be_bytes());
            b[36..38].copy_from_slice(&u.vxlan_port.to_be_bytes());
            b[38..40].copy_from_slice(&udp_len.to_be_bytes());
            b[40..42].copy_from_slice(&[0, 0]);
            b[42..46].copy_from_slice(&[0x08, 0, 0, 0]);
            b[46..49].copy_from_slice(&t.key.to_be_bytes()[1..]);
            b[49] = 0;
        }
        Encap::Gre => {
            b[34..36].copy_from_slice(&0x2000u16.to_be_bytes()); // K
            b[36..38].copy_from_slice(&u16::from(EtherType::TransparentEthernetBridging).to_be_bytes());
            b[38..42].copy_from_slice(&t.key.to_be_bytes());
        }
    }
    o.len = len as u8;
    Ok((u.dpdk_port, o))
}

/// Tunnels whose outer headers a core keeps ([`outer_header_cached`]), direct-mapped by port.
pub(super) const TUNNEL_TEMPLATES: usize = 64;

/// A tunnel's outer headers for an empty inner frame, as [`outer_header`] built them, and what they
/// depend on besides the port: the snapshot, the underlay next hop's neighbour entry (unchanged
/// while the neighbour cache's version is, used until it goes stale or, built after that, until it
/// expires) and the port MACs (a change of either of those two clears every template).
#[derive(Debug, Clone, Copy)]
pub(super) struct TunnelTemplate {
    port: PortId,
    generation: u64,
    neighbour_version: u64,
    /// Rebuilt from then on ([`InUse::recheck_at`](super::InUse::recheck_at)).
    expires: u64,
    dpdk_port: u16,
    /// The outer IPv4 total length and header checksum in `outer` (an empty inner frame).
    empty_total: u16,
    /// The largest outer IPv4 total length: the underlay port's MTU.
    max_total: u16,
    /// `!checksum + !empty_total`: the part of the RFC 1624 update (eqn. 3) that does not depend
    /// on the frame, so a frame adds only its total length.
    checksum_base: u32,
    outer: Outer,
}

impl TunnelTemplate {
    /// No tunnel (no port has the id).
    pub(super) const EMPTY: TunnelTemplate = TunnelTemplate {
        port: PortId(u32::MAX),
        generation: 0,
        neighbour_version: 0,
        expires: 0,
        dpdk_port: 0,
        empty_total: 0,
        max_total: 0,
        checksum_base: 0,
        outer: Outer::NONE,
    };
}

/// [`outer_header`], the same bytes and errors, from a per-core template when the tunnel's last
/// one still holds: then only the lengths, the IPv4 checksum (RFC 1624) and the VXLAN source port
/// change. What a cached action list calls; a compiled hop uses [`ready_outer`] and the pipeline
/// writes the headers straight into the packet buffer.
pub fn outer_header_cached(
    snap: &Snapshot,
    state: &mut CoreState,
    port: PortId,
    vxlan_sport: u16,
    inner_len: usize,
    now: u64,
) -> Result<(u16, Outer), DropReason> {
    let ready = ready_outer(snap, state, port, vxlan_sport, inner_len, now)?;
    Ok((ready.dpdk_port(), ready.to_outer()))
}

/// A tunnel's outer headers for one frame, ready to be written: the per-core template
/// ([`ready_outer`] checked that it still holds), the frame's outer IPv4 total length and the VXLAN
/// source port. It borrows the core's state, so it is written before anything changes the
/// tunnels; a compiled hop hands it to the pipeline, which writes it straight into the headroom.
#[derive(Debug, Clone, Copy)]
pub struct ReadyOuter<'s> {
    template: &'s TunnelTemplate,
    total: u16,
    sport: u16,
}

impl ReadyOuter<'_> {
    /// Bytes to put in front of the frame.
    #[inline(always)]
    pub fn len(&self) -> usize {
        usize::from(self.template.outer.len)
    }

    /// True for no headers (never, for a tunnel's).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlay DPDK port the frame leaves by.
    #[inline(always)]
    pub fn dpdk_port(&self) -> u16 {
        self.template.dpdk_port
    }

    /// Writes the headers into the first [`ReadyOuter::len`] bytes of `dst` (nothing when it is
    /// shorter): the template's bytes with the total length, the header checksum and, for VXLAN,
    /// the UDP source port and length patched in. Fixed-size copies, no call.
    #[inline(always)]
    pub fn write(&self, dst: &mut [u8]) {
        match self.len() {
            VXLAN_LEN => {
                if let Some(d) = self.copy_ip_patched::<VXLAN_LEN>(dst) {
                    d[34..36].copy_from_slice(&self.sport.to_be_bytes());
                    d[38..40].copy_from_slice(&self.total.wrapping_sub(20).to_be_bytes());
                }
            }
            GRE_LEN => {
                self.copy_ip_patched::<GRE_LEN>(dst);
            }
            _ => {}
        }
    }

    /// The headers as an [`Outer`] (what [`ReadyOuter::write`] writes).
    pub fn to_outer(&self) -> Outer {
        let mut o = Outer { bytes: [0; MAX_OUTER_LEN], len: self.template.outer.len };
        self.write(&mut o.bytes);
        o
    }

    /// The template's first `N` bytes copied into `dst`, with the IPv4 total length and header
    /// checksum patched in; `None` (nothing written) when either is shorter.
    #[inline(always)]
    fn copy_ip_patched<'d, const N: usize>(&self, dst: &'d mut [u8]) -> Option<&'d mut [u8; N]> {
        let t = self.template;
        let (d, s) = (dst.first_chunk_mut::<N>()?, t.outer.bytes.first_chunk::<N>()?);
        *d = *s;
        // checksum::update16(checksum, empty_total, total), the constant half summed in advance.
        let sum = t.checksum_base + u32::from(self.total);
        let sum = (sum & 0xffff) + (sum >> 16);
        let checksum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        d[16..18].copy_from_slice(&self.total.to_be_bytes());
        d[24..26].copy_from_slice(&checksum.to_be_bytes());
        Some(d)
    }
}

/// Outer headers decided for one frame but not written yet, for a caller that cannot hold a
/// [`ReadyOuter`] (it borrows the state): which per-core template, and the fields that differ per
/// frame. [`prepare_outer`] makes one, [`PendingOuter::write`] puts the headers where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingOuter {
    /// The template's slot in [`CoreState`]'s tunnels.
    slot: u8,
    /// Header length: [`Encap::header_len`].
    len: u8,
    /// Outer IPv4 total length.
    total: u16,
    /// VXLAN UDP source port (unused for GRE).
    sport: u16,
}

impl PendingOuter {
    /// No headers (what a hop that sends to a local port leaves).
    pub const NONE: PendingOuter = PendingOuter { slot: 0, len: 0, total: 0, sport: 0 };

    /// Bytes to put in front of the frame.
    #[inline(always)]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for no headers.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The headers as an [`Outer`] (what [`PendingOuter::write`] would write).
    pub fn to_outer(&self, state: &CoreState) -> Outer {
        let mut o = Outer { bytes: [0; MAX_OUTER_LEN], len: self.len };
        self.write(state, &mut o.bytes);
        o
    }

    /// Writes the headers into the first [`PendingOuter::len`] bytes of `dst` (nothing when it is
    /// shorter, or for [`PendingOuter::NONE`]), from `state`, the state [`prepare_outer`] used,
    /// before anything else changed its tunnels ([`ReadyOuter::write`]).
    #[inline(always)]
    pub fn write(&self, state: &CoreState, dst: &mut [u8]) {
        if self.is_empty() {
            return;
        }
        let template = &state.tunnels[usize::from(self.slot) % TUNNEL_TEMPLATES];
        ReadyOuter { template, total: self.total, sport: self.sport }.write(dst);
    }
}

/// Header lengths ([`Encap::header_len`]), as patterns.
const VXLAN_LEN: usize = Encap::Vxlan.header_len();
const GRE_LEN: usize = Encap::Gre.header_len();

/// The outer headers of an `inner_len`-byte frame to remote port `port`, from the per-core
/// template (refreshed here when it no longer holds: [`outer_header_cached`]), ready to be written
/// with [`ReadyOuter::write`]. The same errors as [`outer_header`].
#[inline(always)]
pub fn ready_outer<'s>(
    snap: &Snapshot,
    state: &'s mut CoreState,
    port: PortId,
    vxlan_sport: u16,
    inner_len: usize,
    now: u64,
) -> Result<ReadyOuter<'s>, DropReason> {
    let slot = template_slot(port);
    let t = &state.tunnels[slot];
    if t.port != port
        || t.generation != snap.generation()
        || t.neighbour_version != state.neighbours.version()
        || now >= t.expires
    {
        refresh_template(snap, state, port, slot, now)?;
    }
    let state: &'s CoreState = state;
    let template = &state.tunnels[slot];
    let total = usize::from(template.empty_total) + inner_len;
    if total > usize::from(template.max_total) {
        return Err(DropReason::TunnelTooBig);
    }
    Ok(ReadyOuter { template, total: total as u16, sport: vxlan_sport })
}

/// [`ready_outer`], left in `outer` (unchanged on an error) to be written with
/// [`PendingOuter::write`]; returns the underlay DPDK port.
#[inline(always)]
pub fn prepare_outer(
    snap: &Snapshot,
    state: &mut CoreState,
    port: PortId,
    vxlan_sport: u16,
    inner_len: usize,
    now: u64,
    outer: &mut PendingOuter,
) -> Result<u16, DropReason> {
    let ready = ready_outer(snap, state, port, vxlan_sport, inner_len, now)?;
    *outer = PendingOuter {
        slot: template_slot(port) as u8,
        len: ready.template.outer.len,
        total: ready.total,
        sport: vxlan_sport,
    };
    Ok(ready.dpdk_port())
}

/// Where `port`'s template lives in a core's tunnels (direct-mapped, below [`TUNNEL_TEMPLATES`],
/// which fits a `u8`).
#[inline(always)]
fn template_slot(port: PortId) -> usize {
    port.0 as usize % TUNNEL_TEMPLATES
}

/// Builds `port`'s template afresh into `slot` (a new tunnel, snapshot or neighbour entry).
#[inline(never)]
fn refresh_template(
    snap: &Snapshot,
    state: &mut CoreState,
    port: PortId,
    slot: usize,
    now: u64,
) -> Result<(), DropReason> {
    let version = state.neighbours.version();
    let tunnel = tunnel_of(snap, port)?;
    let next_hop = tunnel.underlay.next_hop(tunnel.dst);
    // Rebuilt when the entry goes stale too: the rebuild marks it in use again, so that it is
    // polled (and refreshed) while tunnelled flows still use it.
    let expires = state
        .neighbours
        .use_entry(UNDERLAY_PORT, IpAddr::V4(next_hop), now)
        .ok_or(DropReason::NeighbourUnresolved)?
        .recheck_at;
    let (dpdk_port, outer) = outer_header(snap, state, port, 0, 0, now)?;
    let b = &outer.bytes;
    let empty_total = u16::from_be_bytes([b[16], b[17]]);
    state.tunnels[slot] = TunnelTemplate {
        port,
        generation: snap.generation(),
        neighbour_version: version,
        expires,
        dpdk_port,
        empty_total,
        max_total: state.mtu(dpdk_port),
        checksum_base: u32::from(!u16::from_be_bytes([b[24], b[25]])) + u32::from(!empty_total),
        outer,
    };
    Ok(())
}

/// A tunnelled frame received on the underlay: where its inner frame starts and the port it
/// entered through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decap {
    /// Offset of the inner Ethernet frame.
    pub inner_offset: usize,
    /// The remote-bound port the tunnel key names.
    pub port: PortId,
}

/// Classifies a frame received on the underlay DPDK port. `Ok(None)`: not a tunnelled packet for
/// this gateway (ARP and the like, for [`simulate`](super::simulate)); `Ok(Some)`: VXLAN to the
/// underlay's VXLAN port or GRE with a key and protocol 0x6558, addressed to the underlay address,
/// whose key names a port bound on the host that sent it; `Err`: a counted drop (unknown key,
/// outer source not the port's host, malformed tunnel header). Allocation-free. Inline: the
/// pipeline calls it for every frame from the underlay, and a call costs as much as its checks.
#[inline(always)]
pub fn decap(snap: &Snapshot, frame: &[u8]) -> Result<Option<Decap>, DropReason> {
    decap_checked::<true>(snap, frame)
}

/// [`decap`] of a frame whose outer IPv4 header checksum, if it has one, the NIC verified
/// (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`): the common VXLAN frame skips the software check, any other
/// goes the usual way. The same answer as [`decap`] whenever the NIC is right (proptest).
#[inline(always)]
pub fn decap_nic_verified(snap: &Snapshot, frame: &[u8]) -> Result<Option<Decap>, DropReason> {
    decap_checked::<false>(snap, frame)
}

/// [`decap`], verifying the outer IPv4 header checksum on the fast path only when `VERIFY`.
#[inline(always)]
fn decap_checked<const VERIFY: bool>(snap: &Snapshot, frame: &[u8]) -> Result<Option<Decap>, DropReason> {
    let Some(u) = snap.underlay() else { return Ok(None) };
    match common_udp_outer::<VERIFY>(frame) {
        Some(outer) if outer.dst == u.address && outer.dst_port == u.vxlan_port => {
            let vx = frame.get(outer.payload_offset..outer.payload_offset + 8).ok_or(DropReason::TunnelMalformed)?;
            if vx[0] & 0x08 == 0 {
                return Err(DropReason::TunnelMalformed);
            }
            let inner_offset = outer.payload_offset + 8;
            if inner_offset > outer.end {
                return Err(DropReason::TunnelMalformed);
            }
            let key = u32::from_be_bytes([0, vx[4], vx[5], vx[6]]);
            tunnel_port(snap, key, (outer.src, Encap::Vxlan), inner_offset).map(Some)
        }
        Some(_) => Ok(None),
        None => decap_general(snap, u, frame),
    }
}

/// The outer headers [`decap`] needs of an untagged IPv4 (no options, unfragmented) UDP frame.
struct UdpOuter {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dst_port: u16,
    /// Offset of the UDP payload.
    payload_offset: usize,
    /// End of the IP packet.
    end: usize,
}

/// The outer headers of the frame every VXLAN packet is, read straight from the bytes with exactly
/// the checks [`Headers::parse`] makes of such a frame (a proptest holds [`decap`] equal to
/// [`decap_general`]); `None` for any other frame, malformed ones included, which the general
/// parser then judges. Parsing every header of every tunnelled packet costs more than the rest of
/// its decapsulation.
/// `VERIFY`: check the IPv4 header checksum (not when the NIC did).
#[inline(always)]
fn common_udp_outer<const VERIFY: bool>(frame: &[u8]) -> Option<UdpOuter> {
    let eth: &[u8; 14] = frame.first_chunk()?;
    if eth[12..14] != [0x08, 0x00] {
        return None;
    }
    let l3 = &frame[14..];
    let ip: &[u8; 20] = l3.first_chunk()?;
    // Version 4, no options, unfragmented (DF and the reserved bit do not fragment), UDP, and the
    // header checksum right (RFC 1122 3.2.1.2: the outer source is what the host check reads).
    if ip[0] != 0x45
        || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
        || ip[9] != u8::from(IpProtocol::Udp)
        || (VERIFY && !checksum::header20_verifies(ip))
    {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let segment = l3.get(20..total)?;
    let udp: &[u8; 8] = segment.first_chunk()?;
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > segment.len() {
        return None;
    }
    Some(UdpOuter {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload_offset: 14 + 20 + 8,
        end: 14 + total,
    })
}

/// Whether [`common_udp_outer`] takes `frame` (tests check the fast path is the one taken).
#[cfg(test)]
pub(super) fn common_udp_outer_for_tests(frame: &[u8]) -> bool {
    common_udp_outer::<true>(frame).is_some()
}

/// The port tunnel key `key` names, if it is bound on the host at the outer source, which
/// tunnels to it the way the packet came (`from`: outer source and encapsulation): the end of
/// [`decap`]. A host's tunnel zone has one kind, so a VXLAN packet with a GRE host's key is not
/// that host's.
#[inline(always)]
fn tunnel_port(snap: &Snapshot, key: u32, from: (Ipv4Addr, Encap), inner_offset: usize) -> Result<Decap, DropReason> {
    // The key's port is remote-bound by construction; its host's address comes with it.
    let (port, host) = snap.tunnel_endpoint(key).ok_or(DropReason::UnknownTunnelKey)?;
    match host {
        Some(endpoint) if endpoint == from => Ok(Decap { inner_offset, port }),
        _ => Err(DropReason::TunnelHostMismatch),
    }
}

/// [`decap`] through the general parser: every frame [`common_udp_outer`] does not take.
#[inline(never)]
pub(super) fn decap_general(snap: &Snapshot, u: &Underlay, frame: &[u8]) -> Result<Option<Decap>, DropReason> {
    let Ok(h) = Headers::parse(frame) else { return Err(DropReason::Malformed) };
    // The underlay link is untagged: a frame of a VLAN is not for it (a priority tag, VID 0,
    // carries no VLAN and is taken).
    if h.vlan.is_some_and(|tag| tag.vid != 0) {
        return Err(DropReason::UnderlayVlan);
    }
    let L3::Ipv4(ip) = h.l3 else { return Ok(None) };
    if ip.dst != u.address {
        return Ok(None);
    }
    // The underlay address is the gateway's own, and the gateway accepts no source route for
    // itself either (RFC 7126 4.3 / 4.4).
    if ip.options == Ipv4OptionsClass::SourceRoute {
        return Err(DropReason::SourceRouted);
    }
    // RFC 1122 3.2.1.8: options a host cannot walk make the header invalid; not answered here.
    if ip.options == Ipv4OptionsClass::Unwalkable {
        return Err(DropReason::Ipv4BadOptions);
    }
    // The first fragment of a tunnelled packet carries a truncated inner frame: the gateway does
    // not reassemble, so it is dropped and counted (a later fragment has no L4 header to tell).
    let tunnelled = match h.l4 {
        L4::Udp { dst_port, .. } => dst_port == u.vxlan_port,
        L4::Gre { .. } => true,
        _ => false,
    };
    if tunnelled && ip.fragment != Fragment::Unfragmented {
        return Err(DropReason::TunnelFragmented);
    }
    let (key, inner_offset, encap) = match h.l4 {
        L4::Udp { dst_port, .. } if dst_port == u.vxlan_port => {
            let vx = frame.get(h.payload_offset..h.payload_offset + 8).ok_or(DropReason::TunnelMalformed)?;
            if vx[0] & 0x08 == 0 {
                return Err(DropReason::TunnelMalformed);
            }
            (u32::from_be_bytes([0, vx[4], vx[5], vx[6]]), h.payload_offset + 8, Encap::Vxlan)
        }
        L4::Gre { protocol_type: EtherType::TransparentEthernetBridging, key: Some(key), version: 0 } => {
            // RFC 2784 2.3: RFC 1701's routing, strict source route and recursion bits MUST be
            // discarded (with R the key is not where RFC 2890 puts it); a checksum, when present,
            // is verified (as Linux's ip_gre does).
            let gre = frame.get(h.l4_offset..h.end).ok_or(DropReason::TunnelMalformed)?;
            GreRepr::parse(&GrePacket::new_unchecked(gre)).map_err(|_| DropReason::TunnelMalformed)?;
            (key, h.payload_offset, Encap::Gre)
        }
        L4::Gre { .. } => return Err(DropReason::TunnelMalformed),
        _ => return Ok(None),
    };
    if inner_offset > h.end {
        return Err(DropReason::TunnelMalformed);
    }
    tunnel_port(snap, key, (ip.src, encap), inner_offset).map(Some)
}

/// The flow key ingress id of frames decapsulated from `port` (local DPDK ports use their number,
/// below 64; the high bit keeps the two apart). The outer source is checked by [`decap`] before
/// the key is built, so the port alone says where the frame came from.
pub const fn tunnel_ingress_id(port: PortId) -> u32 {
    0x8000_0000 | port.0
}

/// Whether `ip` is the underlay's address and an ARP sender from the underlay subnet is learnable:
/// the underlay's ARP handling, for [`simulate`](super::simulate).
pub(super) fn underlay_arp(
    u: &Underlay,
    frame: &mut [u8],
    h: &Headers,
    state: &mut CoreState,
    now: u64,
) -> Option<EthernetAddress> {
    let L3::Arp(arp) = h.l3 else { return None };
    let sender_ok = !arp.source_protocol_addr.is_unspecified() && arp.source_protocol_addr != u.address;
    if u.on_subnet(arp.source_protocol_addr) && sender_ok {
        // RFC 826's merge: added only from a packet for the underlay address.
        let sender = IpAddr::V4(arp.source_protocol_addr);
        let for_us = arp.target_protocol_addr == u.address;
        state.neighbours.merge(UNDERLAY_PORT, sender, arp.source_hardware_addr, for_us, now);
    }
    if arp.operation != crate::wire::ArpOperation::Request || arp.target_protocol_addr != u.address {
        return None;
    }
    let mac = state.port_mac(u.dpdk_port);
    if let Ok(mut p) = crate::wire::ArpPacket::new_checked(&mut frame[h.l3_offset..]) {
        p.make_reply_in_place(mac);
    }
    Some(mac)
}
