//! Cached actions compiled for the hit path.
//!
//! Almost every flow a gateway caches is one hop: rewrite the Ethernet addresses, take the router
//! hops off the TTL, check the egress MTU, send out of a port or into a tunnel. Interpreting that as
//! an [`Actions`] list costs a dispatch per action and re-derives the IP header twice; compiled at
//! install time into a [`Hop`] it is two checks and two writes. Everything else (MAC learning,
//! connection tracking, drops, several TTL or MTU checks) stays a list for the interpreter. A hop
//! that also removes a priority tag (a routed tagged frame: [`Action::SetEthDstUntag`]) is a
//! variant of its own, [`CachedActions::UntagHop`], which writes the MACs over the tag; the
//! untagged hops check nothing for it.
//!
//! A hop is compiled for the flow key it is installed under, and that key fixes where the IP
//! header is (after a tag or not, IPv4 or IPv6) and that its lengths hold: every frame that parses
//! to the key was checked by the parser. So a hop neither looks for the IP header nor re-checks it,
//! and it reads the IP length only when the frame itself is longer than the MTU. For every frame
//! with the key it was compiled for, a hop gives the same result as its list and, on success, the
//! same bytes (a proptest holds them equal); on a failed check it leaves the frame untouched, where
//! the list may have rewritten the MACs before failing (callers restore those anyway). On a frame
//! with another key (which the flow cache never hands it) it neither panics nor writes out of
//! bounds.

use super::tunnel::{prepare_outer, ready_outer, Outer, PendingOuter, ReadyOuter};
use super::{apply_into, Action, Actions, Applied, CoreState, DropReason};
use crate::flow::FlowKey;
use crate::topology::{PortId, Snapshot};
use crate::wire::VLAN_TAG_LEN;

/// What a flow-cache entry holds: a compiled hop, or the list the interpreter runs.
///
/// `repr(u8)`: the variant is a tag byte of its own, one compare to dispatch on, where the niche
/// layout (the tag folded into the list's length byte) costs a subtract and a select per hit. It
/// makes the enum 64 bytes instead of 60, which the flow-cache entry's padding absorbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CachedActions {
    /// The commonest hop of all, routed out of a local port: [`Hop`] with its shape fixed.
    Routed(Routed),
    /// A hop routed into a tunnel (toward a VM on a compute host): [`Hop`] with its shape fixed.
    Tunnelled(Tunnelled),
    /// The common one-hop shape, compiled (module docs).
    Hop(Hop),
    /// Anything else, as the simulation produced it.
    List(Actions),
    /// A hop that also removes the frame's 802.1Q tag ([`Action::SetEthDstUntag`]: a routed
    /// priority-tagged frame), its MACs written after the tag: [`Hop::apply_untagging`]. A
    /// variant of its own, so that the other shapes' hits check nothing more; the last, so that
    /// they keep their tags.
    UntagHop(Hop),
}

impl Default for CachedActions {
    /// The empty list (what fills unused cache slots).
    fn default() -> Self {
        CachedActions::List(Actions::new())
    }
}

impl CachedActions {
    /// `actions`, to be cached under `key`, compiled to a [`Hop`] when they have that shape, else
    /// kept as the list.
    pub fn compile(actions: &Actions, key: &FlowKey) -> CachedActions {
        match Hop::compile(actions, key) {
            Some(hop) => match (hop.routed(), hop.tunnelled()) {
                (Some(routed), _) => CachedActions::Routed(routed),
                (None, Some(tunnelled)) => CachedActions::Tunnelled(tunnelled),
                (None, None) => CachedActions::Hop(hop),
            },
            // Only a tagged frame's list may remove the tag: the others are not asked.
            None => match key.vlan().and_then(|_| Hop::compile_untagging(actions, key)) {
                Some(hop) => CachedActions::UntagHop(hop),
                None => CachedActions::List(*actions),
            },
        }
    }

    /// Runs the cached actions on `frame`, a frame with the key they were compiled for: what
    /// [`apply_into`](super::apply_into) does with the list they came from (module docs for the
    /// one difference on a failed check).
    #[inline(always)]
    pub fn apply(
        &self,
        snap: &Snapshot,
        frame: &mut [u8],
        state: &mut CoreState,
        now: u64,
        outer: &mut Outer,
    ) -> Result<Applied, DropReason> {
        match self {
            CachedActions::Routed(routed) => routed.apply(frame).map(Applied::Local),
            CachedActions::Tunnelled(tunnelled) => tunnelled.apply(snap, frame, state, now).map(|ready| {
                *outer = ready.to_outer();
                Applied::Encap(ready.dpdk_port())
            }),
            CachedActions::Hop(hop) => {
                let mut pending = PendingOuter::NONE;
                let applied = hop.apply(snap, frame, state, now, &mut pending);
                if let Ok(Applied::Encap(_)) = applied {
                    *outer = pending.to_outer(state);
                }
                applied
            }
            CachedActions::List(list) => apply_into(snap, list, frame, state, now, outer),
            CachedActions::UntagHop(hop) => {
                let mut pending = PendingOuter::NONE;
                let applied = hop.apply_untagging(snap, frame, state, now, &mut pending);
                if let Ok(Applied::EncapUntagged(_)) = applied {
                    *outer = pending.to_outer(state);
                }
                applied
            }
        }
    }
}

/// Where a hop sends the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Egress {
    Local(u16),
    Encap { port: PortId, sport: u16 },
}

/// One hop: checks first, then writes (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// Destination then source MAC, as they sit at the start of the frame.
    macs: [u8; 12],
    rewrite_macs: bool,
    /// The IP checks and TTL decrement; `offset` 0 when the hop neither checks nor writes IP.
    ip: IpCheck,
    egress: Egress,
}

impl Hop {
    /// The hop `actions` amounts to for frames with `key`, or `None` when the list has another
    /// shape (at most one `DecTtl` and one `CheckMtu`, both MACs or neither, then `Output` or
    /// `Encap`), or checks an IP header that the key says is not there. Inlined into both its
    /// callers, so that [`CachedActions::compile`] stays one function (a call costs every new flow).
    #[inline(always)]
    fn compile(actions: &Actions, key: &FlowKey) -> Option<Hop> {
        let (mut src, mut dst) = (None, None);
        let (mut ttl, mut mtu, mut mtu_first) = (None, None, false);
        for action in actions.as_slice() {
            let egress = match *action {
                Action::Nop => continue,
                Action::SetEthSrc(mac) => {
                    src = Some(mac.0);
                    continue;
                }
                Action::SetEthDst(mac) => {
                    dst = Some(mac.0);
                    continue;
                }
                Action::DecTtl(n) if ttl.is_none() && n > 0 => {
                    ttl = Some(n);
                    continue;
                }
                Action::CheckMtu(m) if mtu.is_none() => {
                    mtu = Some(u32::from(m));
                    mtu_first = ttl.is_none();
                    continue;
                }
                Action::Output(port) => Egress::Local(port),
                Action::Encap { port, sport } => Egress::Encap { port, sport },
                _ => return None,
            };
            let mut macs = [0u8; 12];
            let rewrite_macs = match (dst, src) {
                (Some(dst), Some(src)) => {
                    macs[..6].copy_from_slice(&dst);
                    macs[6..].copy_from_slice(&src);
                    true
                }
                (None, None) => false,
                _ => return None,
            };
            let (offset, v6) = match (ttl.is_some() || mtu.is_some(), key.ip_layout()) {
                (false, _) => (0, false),
                (true, Some((offset, v6))) => (u8::try_from(offset).ok()?, v6),
                (true, None) => return None,
            };
            let ip = IpCheck { offset, v6, ttl: ttl.unwrap_or(0), mtu_first, mtu: mtu.unwrap_or(u32::MAX) };
            return Some(Hop { macs, rewrite_macs, ip, egress });
        }
        None
    }

    /// The hop of a [`CachedActions::UntagHop`]: `actions` for a tagged `key` whose one
    /// [`Action::SetEthDstUntag`] would be a hop with a [`Action::SetEthDst`] instead, both MACs
    /// rewritten. The hop writes the MACs after the tag, where the list's writes land whether
    /// they come before the tag's removal or after it. Out of line: only the lists that are not
    /// hops, of tagged frames, are asked.
    #[cold]
    #[inline(never)]
    fn compile_untagging(actions: &Actions, key: &FlowKey) -> Option<Hop> {
        let mut plain = Actions::new();
        let mut untags = 0;
        for &action in actions.as_slice() {
            plain.push(match action {
                Action::SetEthDstUntag(mac) => {
                    untags += 1;
                    Action::SetEthDst(mac)
                }
                other => other,
            });
        }
        Hop::compile(&plain, key).filter(|hop| untags == 1 && hop.rewrite_macs)
    }

    /// The hop as a [`Routed`] one, when it is that shape: out of a local port, both MACs
    /// rewritten, hops taken off the TTL.
    fn routed(&self) -> Option<Routed> {
        match self.egress {
            Egress::Local(port) if self.rewrite_macs && self.ip.ttl != 0 && self.ip.offset != 0 => {
                Some(Routed { macs: self.macs, ip: self.ip, port, fast: FastIp::new(&self.ip) })
            }
            _ => None,
        }
    }

    /// The hop as a [`Tunnelled`] one, when it is that shape: into a tunnel, both MACs
    /// rewritten, hops taken off the TTL.
    fn tunnelled(&self) -> Option<Tunnelled> {
        match self.egress {
            Egress::Encap { port, sport } if self.rewrite_macs && self.ip.ttl != 0 && self.ip.offset != 0 => {
                Some(Tunnelled { macs: self.macs, fast: FastIp::new(&self.ip), ip: self.ip, port, sport })
            }
            _ => None,
        }
    }

    /// Runs the hop on `frame`, a frame with the key it was compiled for (module docs):
    /// [`CachedActions::apply`] for a hop, except that a tunnel's outer headers are left in
    /// `outer` to be written ([`PendingOuter::write`], from `state`) straight in front of the frame.
    #[inline(always)]
    pub fn apply(
        &self,
        snap: &Snapshot,
        frame: &mut [u8],
        state: &mut CoreState,
        now: u64,
        outer: &mut PendingOuter,
    ) -> Result<Applied, DropReason> {
        self.apply_as::<false>(snap, frame, state, now, outer)
    }

    /// [`Hop::apply`] for a [`CachedActions::UntagHop`]: the MACs are written [`VLAN_TAG_LEN`]
    /// bytes on, over the tag, where the untagged frame starts ([`Applied::LocalUntagged`],
    /// [`Applied::EncapUntagged`]; the bytes before it are left as they were).
    #[inline(never)]
    pub fn apply_untagging(
        &self,
        snap: &Snapshot,
        frame: &mut [u8],
        state: &mut CoreState,
        now: u64,
        outer: &mut PendingOuter,
    ) -> Result<Applied, DropReason> {
        self.apply_as::<true>(snap, frame, state, now, outer)
    }

    #[inline(always)]
    fn apply_as<const UNTAG: bool>(
        &self,
        snap: &Snapshot,
        frame: &mut [u8],
        state: &mut CoreState,
        now: u64,
        outer: &mut PendingOuter,
    ) -> Result<Applied, DropReason> {
        // The list builds the outer headers before anything else too (they depend on the length
        // only: that of the frame it sends, without the tag).
        let applied = match self.egress {
            Egress::Local(port) if UNTAG => Applied::LocalUntagged(port),
            Egress::Local(port) => Applied::Local(port),
            Egress::Encap { port, sport } if UNTAG => {
                let len = frame.len().saturating_sub(VLAN_TAG_LEN);
                Applied::EncapUntagged(prepare_outer(snap, state, port, sport, len, now, outer)?)
            }
            Egress::Encap { port, sport } => {
                Applied::Encap(prepare_outer(snap, state, port, sport, frame.len(), now, outer)?)
            }
        };
        if self.ip.offset != 0 {
            self.ip.apply(frame)?;
        }
        if UNTAG {
            // Compiled only with both MACs, for a tagged key: the whole tagged header is there.
            let Some(macs) = frame.get_mut(VLAN_TAG_LEN..VLAN_TAG_LEN + 12) else {
                return Err(DropReason::Malformed);
            };
            macs.copy_from_slice(&self.macs);
        } else if self.rewrite_macs {
            // A keyed frame has a whole Ethernet header (the parser checked it).
            let Some(macs) = frame.first_chunk_mut::<12>() else {
                return Err(DropReason::Malformed);
            };
            *macs = self.macs;
        }
        Ok(applied)
    }
}

/// A hop routed out of a local port (both MACs rewritten, hops taken off the TTL): the one shape
/// nearly every cached flow of a gateway has, with nothing left to decide at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Destination then source MAC.
    macs: [u8; 12],
    ip: IpCheck,
    port: u16,
    fast: FastIp,
}

impl Routed {
    /// [`Hop::apply`] for this shape: the DPDK port to send `frame` (which has the key the hop
    /// was compiled for) out of.
    #[inline(always)]
    pub fn apply(&self, frame: &mut [u8]) -> Result<u16, DropReason> {
        let Some(head) = self.fast.apply(frame, self.ip.ttl, self.ip.v6) else {
            return self.apply_checked(frame);
        };
        head[..12].copy_from_slice(&self.macs);
        Ok(self.port)
    }

    /// [`Routed::apply`] for a frame the fast path cannot settle: the general check, which may
    /// find nothing wrong (a frame with trailing bytes past its IP packet).
    #[cold]
    #[inline(never)]
    fn apply_checked(&self, frame: &mut [u8]) -> Result<u16, DropReason> {
        check_and_rewrite(&self.ip, &self.macs, frame)?;
        Ok(self.port)
    }
}

/// The slow path of a hop with an IP fast path ([`FastIp`]): the general check, then both MACs.
#[cold]
#[inline(never)]
fn check_and_rewrite(ip: &IpCheck, macs: &[u8; 12], frame: &mut [u8]) -> Result<(), DropReason> {
    ip.apply(frame)?;
    // A keyed frame has a whole Ethernet header (the parser checked it).
    let Some(front) = frame.first_chunk_mut::<12>() else {
        return Err(DropReason::Malformed);
    };
    *front = *macs;
    Ok(())
}

/// A hop routed into a tunnel (both MACs rewritten, hops taken off the TTL, then encapsulated
/// toward a remote port's host): the shape of every cached flow toward a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnelled {
    /// Destination then source MAC.
    macs: [u8; 12],
    ip: IpCheck,
    fast: FastIp,
    port: PortId,
    /// VXLAN UDP source port (from the inner flow's hash).
    sport: u16,
}

impl Tunnelled {
    /// [`Hop::apply`] for this shape: the outer headers, ready to be written in front of the
    /// frame ([`ReadyOuter::write`], which also names the underlay DPDK port).
    #[inline(always)]
    pub fn apply<'s>(
        &self,
        snap: &Snapshot,
        frame: &mut [u8],
        state: &'s mut CoreState,
        now: u64,
    ) -> Result<ReadyOuter<'s>, DropReason> {
        // The list builds the outer headers before anything else too (they depend on the length
        // only), so a frame whose tunnel cannot be used yet is left as it came.
        let ready = ready_outer(snap, state, self.port, self.sport, frame.len(), now)?;
        match self.fast.apply(frame, self.ip.ttl, self.ip.v6) {
            Some(head) => head[..12].copy_from_slice(&self.macs),
            None => check_and_rewrite(&self.ip, &self.macs, frame)?,
        }
        Ok(ready)
    }
}

/// The bytes a hop's fast IP path reads or writes lie in the frame's first 32: the TTL and the
/// IPv4 checksum after at most an 18-byte Ethernet header. Every keyed IP frame is longer.
const FAST_HEAD: usize = 32;

/// A hop's IP fast path, for a hop that takes hops off the TTL: it reads one byte and compares
/// one length. A frame no longer than the IP header's offset plus the MTU cannot hold an IP packet
/// over the MTU, and a TTL above the hops taken cannot expire, so such a frame only has its TTL
/// and checksum written. Anything else (a long frame, whose IP length must be read; a TTL that runs
/// out) is left untouched for [`IpCheck::apply`], the general check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FastIp {
    /// Where the TTL (hop limit) byte is, from the frame's start; below [`FAST_HEAD`].
    ttl_at: u8,
    /// The longest frame that cannot be over the MTU: the IP header's offset plus the MTU.
    max_frame: u32,
}

impl FastIp {
    fn new(ip: &IpCheck) -> FastIp {
        FastIp { ttl_at: ip.offset + if ip.v6 { 7 } else { 8 }, max_frame: u32::from(ip.offset).saturating_add(ip.mtu) }
    }

    /// Takes `hops` (not 0) off the TTL of `frame` when the fast path settles it, and gives the
    /// frame's head (for the MACs); else leaves the frame as it was (`None`).
    #[inline(always)]
    fn apply<'f>(&self, frame: &'f mut [u8], hops: u8, v6: bool) -> Option<&'f mut [u8; FAST_HEAD]> {
        let len = frame.len();
        let head = frame.first_chunk_mut::<FAST_HEAD>()?;
        // Masked, the indexes are provably in the head: no bounds checks.
        let ttl_at = usize::from(self.ttl_at) & (FAST_HEAD - 1);
        if len > self.max_frame as usize || head[ttl_at] <= hops {
            return None;
        }
        head[ttl_at] -= hops;
        if !v6 {
            // The IPv4 checksum follows the TTL and protocol (take_hops has the arithmetic).
            let at = (ttl_at + 2) & (FAST_HEAD - 2);
            [head[at], head[at + 1]] = checksum_less_hops([head[at], head[at + 1]], hops);
        }
        Some(head)
    }
}

/// The IP part of a hop: the MTU and TTL checks, then the TTL decrement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpCheck {
    /// Where the IP header starts (the key's layout).
    offset: u8,
    v6: bool,
    /// Router hops taken off the TTL / hop limit; 0 for none.
    ttl: u8,
    /// Whether the MTU check came first in the list.
    mtu_first: bool,
    /// Largest IP packet allowed; `u32::MAX` for no check.
    mtu: u32,
}

impl IpCheck {
    #[inline(always)]
    fn apply(&self, frame: &mut [u8]) -> Result<(), DropReason> {
        let offset = usize::from(self.offset);
        // The IP packet is no longer than what follows its header's start: read its length only
        // when that is over the MTU.
        let available = frame.len().wrapping_sub(offset) as u64;
        // The key promises 20 bytes (40 for IPv6); only the first 20 are read or written here.
        let Some(ip) = frame.get_mut(offset..offset + 20) else {
            return Err(DropReason::Malformed);
        };
        let ip: &mut [u8; 20] = ip.try_into().map_err(|_| DropReason::Malformed)?;
        let too_big = available > u64::from(self.mtu) && ip_len(ip, self.v6) > self.mtu as usize;
        let ttl_at = if self.v6 { 7 } else { 8 };
        let expired = self.ttl != 0 && ip[ttl_at] <= self.ttl;
        if too_big && (self.mtu_first || !expired) {
            return Err(DropReason::TooBig);
        }
        if expired {
            return Err(DropReason::TtlExpired);
        }
        if self.ttl != 0 {
            take_hops(ip, self.v6, self.ttl);
        }
        Ok(())
    }
}

/// The IP packet's length (header included) from its first 20 header bytes.
#[inline(always)]
fn ip_len(ip: &[u8; 20], v6: bool) -> usize {
    if v6 {
        40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))
    } else {
        usize::from(u16::from_be_bytes([ip[2], ip[3]]))
    }
}

/// Takes `n` (smaller than the current value) off the TTL / hop limit of an IP header,
/// updating the IPv4 header checksum incrementally ([`checksum_less_hops`]).
#[inline(always)]
fn take_hops(ip: &mut [u8; 20], v6: bool, n: u8) {
    if v6 {
        ip[7] -= n;
    } else {
        ip[8] -= n;
        [ip[10], ip[11]] = checksum_less_hops([ip[10], ip[11]], n);
    }
}

/// The IPv4 header checksum (as its bytes) after `n` was taken off the TTL. The TTL word `m`
/// loses `n << 8`, so by RFC 1624 the checksum gains it in ones'-complement arithmetic: one add
/// and its end-around carry, as Linux's `ip_decrease_ttl` does. Adding 1 at 0xffff as well as
/// above it gives exactly RFC 1624 eqn. 3's result (`HC' = ~(~HC + ~m + m')`, which never
/// yields 0xffff). The sum is taken on the words as they sit in memory, which a ones'-complement
/// sum allows (RFC 1071, byte order independence): there the TTL is the low byte.
#[inline(always)]
fn checksum_less_hops(checksum: [u8; 2], n: u8) -> [u8; 2] {
    let sum = u32::from(u16::from_ne_bytes(checksum)) + u32::from(u16::from_ne_bytes([n, 0]));
    ((sum + u32::from(sum >= 0xffff)) as u16).to_ne_bytes()
}

#[cfg(test)]
mod tests;
