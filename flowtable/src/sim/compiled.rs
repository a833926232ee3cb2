//! Cached actions compiled for the hit path.
//!
//! Almost every flow a gateway caches is one hop: rewrite the Ethernet addresses, take the router
//! hops off the TTL, check the egress MTU, send out of a port or into a tunnel. Interpreting that as
//! an [`Actions`] list costs a dispatch per action and re-derives the IP header twice; compiled at
//! install time into a [`Hop`] it is two checks and two writes. Everything else (MAC learning,
//! connection tracking, drops, several TTL or MTU checks) stays a list for the interpreter.
//!
//! A hop gives the same result as its list for every frame, and the same frame bytes on success
//! (a proptest holds them equal). On a failed check it leaves the frame untouched, where the list
//! may have rewritten the MACs before failing; callers restore those anyway.

use super::action::{ip_header, IpHeader};
use super::tunnel::{outer_header_cached, Outer};
use super::{apply_into, Action, Actions, Applied, CoreState, DropReason};
use crate::topology::{PortId, Snapshot};
use crate::wire::{checksum, EthernetFrame};

/// What a flow-cache entry holds: a compiled hop, or the list the interpreter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedActions {
    /// The common one-hop shape, compiled (module docs).
    Hop(Hop),
    /// Anything else, as the simulation produced it.
    List(Actions),
}

impl Default for CachedActions {
    /// The empty list (what fills unused cache slots).
    fn default() -> Self {
        CachedActions::List(Actions::new())
    }
}

impl CachedActions {
    /// `actions` compiled to a [`Hop`] when it has that shape, else kept as the list.
    pub fn compile(actions: &Actions) -> CachedActions {
        Hop::compile(actions).map_or(CachedActions::List(*actions), CachedActions::Hop)
    }

    /// Runs the cached actions on `frame`: what [`apply_into`](super::apply_into) does with the
    /// list they came from (module docs for the one difference on a failed check).
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
            CachedActions::Hop(hop) => hop.apply(snap, frame, state, now, outer),
            CachedActions::List(list) => apply_into(snap, list, frame, state, now, outer),
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
    /// Router hops taken off the TTL / hop limit; 0 for none.
    ttl: u8,
    /// Whether the MTU check came before the TTL decrement in the list (which error a frame
    /// failing both gets).
    mtu_first: bool,
    /// Largest IP packet allowed; `u32::MAX` for no check (an IPv6 packet can exceed `u16::MAX`).
    mtu: u32,
    egress: Egress,
}

impl Hop {
    /// The hop `actions` amounts to, or `None` when the list has another shape: at most one
    /// `DecTtl` and one `CheckMtu`, both MACs or neither, then `Output` or `Encap`.
    fn compile(actions: &Actions) -> Option<Hop> {
        let (mut src, mut dst) = (None, None);
        let (mut ttl, mut mtu, mut mtu_first) = (None, None, false);
        for action in actions.as_slice() {
            match *action {
                Action::Nop => {}
                Action::SetEthSrc(mac) => src = Some(mac.0),
                Action::SetEthDst(mac) => dst = Some(mac.0),
                Action::DecTtl(n) if ttl.is_none() && n > 0 => ttl = Some(n),
                Action::CheckMtu(m) if mtu.is_none() => {
                    mtu = Some(u32::from(m));
                    mtu_first = ttl.is_none();
                }
                Action::Output(port) => return Hop::finish(src, dst, ttl, mtu, mtu_first, Egress::Local(port)),
                Action::Encap { port, sport } => {
                    return Hop::finish(src, dst, ttl, mtu, mtu_first, Egress::Encap { port, sport })
                }
                _ => return None,
            }
        }
        None
    }

    fn finish(
        src: Option<[u8; 6]>,
        dst: Option<[u8; 6]>,
        ttl: Option<u8>,
        mtu: Option<u32>,
        mtu_first: bool,
        egress: Egress,
    ) -> Option<Hop> {
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
        Some(Hop { macs, rewrite_macs, ttl: ttl.unwrap_or(0), mtu_first, mtu: mtu.unwrap_or(u32::MAX), egress })
    }

    #[inline(always)]
    fn apply(
        &self,
        snap: &Snapshot,
        frame: &mut [u8],
        state: &mut CoreState,
        now: u64,
        outer: &mut Outer,
    ) -> Result<Applied, DropReason> {
        // The list builds the outer headers before anything else too (they depend on the length only).
        let applied = match self.egress {
            Egress::Local(port) => Applied::Local(port),
            Egress::Encap { port, sport } => {
                let (dpdk_port, headers) = outer_header_cached(snap, state, port, sport, frame.len(), now)?;
                *outer = headers;
                Applied::Encap(dpdk_port)
            }
        };
        if self.ttl != 0 || self.mtu != u32::MAX {
            let ip = ip_header(frame)?;
            let too_big = ip.len > self.mtu as usize;
            let expired = self.ttl != 0 && ttl_of(frame, ip) <= self.ttl;
            if too_big && (self.mtu_first || !expired) {
                return Err(DropReason::TooBig);
            }
            if expired {
                return Err(DropReason::TtlExpired);
            }
            if self.ttl != 0 {
                take_hops(frame, ip, self.ttl);
            }
        }
        if self.rewrite_macs {
            // The list's MAC rewrites need what the Ethernet view checks: a whole header, its tag included.
            if EthernetFrame::new_checked(&*frame).is_err() {
                return Err(DropReason::Malformed);
            }
            frame[..12].copy_from_slice(&self.macs);
        }
        Ok(applied)
    }
}

/// The TTL / hop limit of the checked header `ip`.
#[inline(always)]
fn ttl_of(frame: &[u8], ip: IpHeader) -> u8 {
    frame[ip.offset + if ip.v6 { 7 } else { 8 }]
}

/// Takes `n` (smaller than the current value) off the TTL / hop limit of the checked header `ip`,
/// updating the IPv4 header checksum incrementally (RFC 1624 eqn. 3, in one step: the same result
/// as `n` single decrements, since neither ever yields 0xffff).
#[inline(always)]
fn take_hops(frame: &mut [u8], ip: IpHeader, n: u8) {
    let l3 = &mut frame[ip.offset..];
    if ip.v6 {
        l3[7] -= n;
    } else {
        let old = l3[8];
        let new = old - n;
        let hc = checksum::update8(u16::from_be_bytes([l3[10], l3[11]]), old, new, true);
        l3[8] = new;
        l3[10..12].copy_from_slice(&hc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests;
