//! Per-core connection tracking: which packets reply on a known connection (`flow return-flow`).
//!
//! Each worker core keeps its own [`ConnTrack`] table, with no locks and no sharing: both
//! directions of a connection reach the same core through symmetric RSS (design brief). Traffic
//! decapsulated from a tunnel is steered by its outer headers, so with several workers pmd/ hands
//! each decapsulated frame to the core that owns its connection ([`FlowKey::symmetric_hash`]
//! names it) before it is looked up.
//!
//! [`FlowKey::symmetric_hash`]: crate::flow::FlowKey::symmetric_hash
//!
//! # Keys
//!
//! As MidoNet does (`ConnTrackState`), a connection is recorded by the key its *return* packets
//! will have: when a packet of a new connection is forwarded, the table records its reversed tuple
//! (addresses, L4 ports or ICMP echo identifier, protocol) together with the device (router or
//! bridge) it left the gateway's virtual topology through, its [`zone`]. A later packet is a return
//! packet when its own tuple, with the device it entered through, is in the table. Keying by the
//! devices at both ends (rather than the ingress port) lets a connection from a VM behind a tenant
//! router and a provider router be recognised when the reply enters at the provider router, and a
//! reply coming back through another uplink port of the same router still matches; the device in
//! the key keeps tenants with overlapping private addresses apart.
//!
//! Tracked: IPv4 and IPv6. TCP and UDP use their ports, ICMP / ICMPv6 echo request and reply their
//! identifier (in both port slots, so the reverse matches), every other protocol and message only
//! its addresses. A non-initial fragment has no ports, so it never matches a TCP/UDP connection.
//!
//! ICMP and ICMPv6 error messages (unreachable, packet too big, time exceeded, parameter problem,
//! redirect) are looked up by the connection they quote ([`ConnKey::related_to_error`]), as
//! Linux's conntrack marks them RELATED: the "fragmentation needed" a router on the path sends
//! about a VM's connection passes a return-flow filter, so path MTU discovery and traceroute work
//! through it. An error never records or refreshes a connection, and a result that depended on
//! the table is not cached (the error's flow key does not include what it quotes).
//!
//! # Lifetime
//!
//! An entry lives [`CoreConfig::conntrack_idle`](super::CoreConfig::conntrack_idle) after it was
//! last recorded or refreshed. Forwarded packets in either direction refresh it: simulated ones
//! directly, cached ones through [`Action::Track`](super::Action::Track), which re-creates an entry
//! that expired or was evicted, so a connection lives as long as either direction is hit. A full
//! bucket replaces its expired or soonest-expiring entry (counted in [`ConnTrack::evictions`]).

use core::net::IpAddr;

use crate::topology::{DeviceId, PortKind, Snapshot};
use crate::wire::{Headers, Icmpv4Message, Icmpv6Message, IpProtocol, L3, L4};

/// Ways per bucket.
const WAYS: usize = 8;

/// The device a connection is keyed by, as a `u32`: the router's or bridge's device tag, derived
/// from its UUID ([`Snapshot::device_tag`]), so entries stay attached to the same device when a new
/// snapshot moves indices. Fits an [`Action`](super::Action) slot.
pub fn zone(snap: &Snapshot, device: DeviceId) -> Option<u32> {
    match device {
        DeviceId::Router(_) | DeviceId::Bridge(_) => Some(snap.device_tag(device)),
        _ => None,
    }
}

/// The [`zone`] of the device port `port` belongs to.
pub fn port_zone(snap: &Snapshot, port: crate::topology::PortId) -> Option<u32> {
    match &snap.get_port(port)?.kind {
        PortKind::Router(rp) => zone(snap, DeviceId::Router(rp.router)),
        PortKind::Bridge(bp) => zone(snap, DeviceId::Bridge(bp.bridge)),
    }
}

/// One direction of a connection, at a device ([`zone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// Source address (IPv4 mapped into IPv6 form).
    pub src: [u8; 16],
    /// Destination address (IPv4 mapped into IPv6 form).
    pub dst: [u8; 16],
    /// TCP/UDP source port, ICMP echo identifier, else 0.
    pub src_port: u16,
    /// TCP/UDP destination port, ICMP echo identifier, else 0.
    pub dst_port: u16,
    /// IP protocol (IPv6: the upper-layer protocol).
    pub proto: u8,
    /// The device ([`zone`]) the packet entered through (or, for a recorded return key, will enter).
    pub zone: u32,
}

impl ConnKey {
    /// The key of a parsed IP frame seen at `zone`; `None` for anything but IPv4 and IPv6.
    pub fn from_headers(h: &Headers, zone: u32) -> Option<ConnKey> {
        let (src, dst, proto) = match h.l3 {
            L3::Ipv4(f) => (f.src.to_ipv6_mapped().octets(), f.dst.to_ipv6_mapped().octets(), u8::from(f.protocol)),
            L3::Ipv6(f) => (f.src.octets(), f.dst.octets(), u8::from(f.protocol)),
            L3::Arp(_) | L3::Other => return None,
        };
        let (src_port, dst_port) = match h.l4 {
            L4::Tcp { src_port, dst_port, .. } | L4::Udp { src_port, dst_port } => (src_port, dst_port),
            L4::Icmpv4 { msg_type: Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply, ident, .. }
            | L4::Icmpv6 { msg_type: Icmpv6Message::EchoRequest | Icmpv6Message::EchoReply, ident, .. } => {
                (ident, ident)
            }
            _ => (0, 0),
        };
        Some(ConnKey { src, dst, src_port, dst_port, proto, zone })
    }

    /// The key an ICMP or ICMPv6 error message relates to, at `zone`, as Linux's conntrack
    /// relates errors to connections: the error quotes the packet that caused it, which travelled
    /// the other way, so the quoted tuple reversed is the key a return packet of that connection
    /// has at the device the error entered through. `None` when `h` is no error message or its
    /// quote names no IP packet. A quote of a non-initial fragment, of IPv6 with extension headers
    /// or cut before the ports gives ports 0, which match no TCP or UDP connection.
    pub fn related_to_error(h: &Headers, frame: &[u8], zone: u32) -> Option<ConnKey> {
        let is_error = match h.l4 {
            L4::Icmpv4 { msg_type, .. } => msg_type.is_error(),
            L4::Icmpv6 { msg_type, .. } => msg_type.is_error(),
            _ => false,
        };
        if !is_error {
            return None;
        }
        quoted_key(frame.get(h.payload_offset..h.end)?).map(|quoted| quoted.reversed(zone))
    }

    /// The key of `frame` at `zone` (parsed here: for [`Action::Track`](super::Action::Track) on
    /// a cached flow).
    pub fn from_frame(frame: &[u8], zone: u32) -> Option<ConnKey> {
        ConnKey::from_headers(&Headers::parse(frame).ok()?, zone)
    }

    /// The key of the other direction, at `zone`.
    pub fn reversed(&self, zone: u32) -> ConnKey {
        ConnKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            zone,
        }
    }

    /// The source address.
    pub fn src_addr(&self) -> IpAddr {
        unmap(self.src)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> IpAddr {
        unmap(self.dst)
    }

    fn hash(&self) -> u64 {
        let word = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]])
        };
        let mut h = 0x9e37_79b9_7f4a_7c15u64;
        let ports = u64::from(self.src_port) | u64::from(self.dst_port) << 16 | u64::from(self.proto) << 32;
        let words = [word(&self.src, 0), word(&self.src, 8), word(&self.dst, 0), word(&self.dst, 8), ports];
        for w in words.into_iter().chain([u64::from(self.zone)]) {
            // Folded multiply: mixes well and needs no table.
            let m = u128::from(h ^ w) * 0x2d35_8dcc_aa6c_78a5u128;
            h = (m as u64) ^ ((m >> 64) as u64);
        }
        h
    }
}

/// The key (at zone 0) of the IP packet an ICMP error quotes: its header and at least the first
/// eight bytes of its payload (RFC 792, RFC 4443 quote more), read as [`ConnKey::from_headers`]
/// reads a packet.
fn quoted_key(quote: &[u8]) -> Option<ConnKey> {
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (src, dst, proto, l4) = match quote.first()? >> 4 {
        4 => {
            let ip: &[u8; 20] = quote.first_chunk()?;
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            let src: [u8; 4] = ip[12..16].try_into().ok()?;
            let dst: [u8; 4] = ip[16..20].try_into().ok()?;
            let initial = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let l4 = if header_len >= 20 && initial { quote.get(header_len..) } else { None };
            let mapped = |a: [u8; 4]| core::net::Ipv4Addr::from(a).to_ipv6_mapped().octets();
            (mapped(src), mapped(dst), ip[9], l4)
        }
        6 => {
            let ip: &[u8; 40] = quote.first_chunk()?;
            (ip[8..24].try_into().ok()?, ip[24..40].try_into().ok()?, ip[6], quote.get(40..))
        }
        _ => return None,
    };
    let l4 = l4.unwrap_or(&[]);
    let echo = |request: u8, reply: u8| matches!(l4.first(), Some(&t) if t == request || t == reply);
    let (src_port, dst_port) = match IpProtocol::from(proto) {
        IpProtocol::Tcp | IpProtocol::Udp => be16(l4, 0).zip(be16(l4, 2)).unwrap_or((0, 0)),
        IpProtocol::Icmp if echo(8, 0) => be16(l4, 4).map_or((0, 0), |id| (id, id)),
        IpProtocol::Icmpv6 if echo(128, 129) => be16(l4, 4).map_or((0, 0), |id| (id, id)),
        _ => (0, 0),
    };
    Some(ConnKey { src, dst, src_port, dst_port, proto, zone: 0 })
}

fn unmap(a: [u8; 16]) -> IpAddr {
    let v6 = core::net::Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: ConnKey,
    /// Valid while `now < expires`; 0 marks a free slot.
    expires: u64,
}

const FREE: Entry =
    Entry { key: ConnKey { src: [0; 16], dst: [0; 16], src_port: 0, dst_port: 0, proto: 0, zone: 0 }, expires: 0 };

/// A fixed-capacity, set-associative table of expected return keys with idle expiry. Allocates
/// only in [`ConnTrack::new`]; see the module docs for what a key is.
#[derive(Debug, Clone)]
pub struct ConnTrack {
    slots: Box<[Entry]>,
    mask: usize,
    idle: u64,
    evictions: u64,
}

impl ConnTrack {
    /// A table of at least `capacity` entries (rounded up to a power of two, at least one bucket);
    /// an entry recorded at `now` is valid until `now + idle`.
    pub fn new(capacity: usize, idle: u64) -> ConnTrack {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        ConnTrack { slots: vec![FREE; buckets * WAYS].into_boxed_slice(), mask: buckets - 1, idle, evictions: 0 }
    }

    /// Number of entries the table holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many live entries were replaced to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn bucket(&self, key: &ConnKey) -> core::ops::Range<usize> {
        let b = key.hash() as usize & self.mask;
        b * WAYS..(b + 1) * WAYS
    }

    /// Whether a packet with key `key` (its own tuple, at the device it entered through) replies
    /// on a known connection at `now`.
    pub fn is_return(&self, key: &ConnKey, now: u64) -> bool {
        self.slots[self.bucket(key)].iter().any(|e| e.key == *key && now < e.expires)
    }

    /// A packet with key `forward` started (or continues) a connection and left through the device
    /// `egress_zone`: records its replies' key (the reversed tuple at `egress_zone`), valid for the
    /// idle time from `now`.
    pub fn commit(&mut self, forward: &ConnKey, egress_zone: u32, now: u64) {
        self.record(forward.reversed(egress_zone), now);
    }

    /// A return packet with key `key` was forwarded: refreshes its connection (re-created if it
    /// expired or was evicted meanwhile).
    pub fn refresh(&mut self, key: &ConnKey, now: u64) {
        self.record(*key, now);
    }

    fn record(&mut self, key: ConnKey, now: u64) {
        let range = self.bucket(&key);
        let expires = now.saturating_add(self.idle).max(1);
        let bucket = &mut self.slots[range];
        if let Some(e) = bucket.iter_mut().find(|e| e.expires != 0 && e.key == key) {
            e.expires = expires;
            return;
        }
        // A free or expired slot, else the one that expires first.
        if let Some(e) = bucket.iter_mut().min_by_key(|e| if e.expires <= now { 0 } else { e.expires }) {
            if e.expires > now {
                self.evictions += 1;
            }
            *e = Entry { key, expires };
        }
    }

    /// Frees every entry expired at `now`; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        for e in self.slots.iter_mut().filter(|e| e.expires != 0 && e.expires <= now) {
            *e = FREE;
            n += 1;
        }
        n
    }

    /// Forgets every connection.
    pub fn clear(&mut self) {
        self.slots.fill(FREE);
    }

    /// Number of entries valid at `now`.
    pub fn len(&self, now: u64) -> usize {
        self.slots.iter().filter(|e| now < e.expires).count()
    }

    /// Records or refreshes the connection of a cached flow's `frame`
    /// ([`Action::Track`](super::Action::Track)): with `reverse`, the frame is a forward packet that
    /// left through `zone` (its replies' key is recorded); otherwise a return packet that entered
    /// through `zone` (its own key is refreshed). A frame that is not IP is ignored.
    pub fn track_frame(&mut self, frame: &[u8], zone: u32, reverse: bool, now: u64) {
        let Some(key) = ConnKey::from_frame(frame, zone) else { return };
        if reverse {
            self.commit(&key, zone, now);
        } else {
            self.refresh(&key, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, zone: u32) -> ConnKey {
        ConnKey {
            src: Ipv4Addr::from(src).to_ipv6_mapped().octets(),
            dst: Ipv4Addr::from(dst).to_ipv6_mapped().octets(),
            src_port: sport,
            dst_port: dport,
            proto: 6,
            zone,
        }
    }

    #[test]
    fn commit_makes_the_reverse_a_return_at_the_egress_zone() {
        let mut t = ConnTrack::new(64, 100);
        let fwd = key([10, 0, 0, 5], [192, 0, 2, 7], 40000, 80, 1);
        let reply = key([192, 0, 2, 7], [10, 0, 0, 5], 80, 40000, 0);
        assert!(!t.is_return(&reply, 10));
        t.commit(&fwd, 0, 10);
        assert!(t.is_return(&reply, 10));
        assert_eq!(reply.src_addr(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(!t.is_return(&fwd, 10), "the forward direction is not a return");
        assert!(!t.is_return(&key([192, 0, 2, 7], [10, 0, 0, 5], 80, 40000, 1), 10), "other zone");
        assert!(!t.is_return(&key([192, 0, 2, 7], [10, 0, 0, 5], 80, 40001, 0), 10), "other port");
        assert!(!t.is_return(&ConnKey { proto: 17, ..reply }, 10), "other protocol");
        assert_eq!(t.len(10), 1);
    }

    #[test]
    fn entries_expire_when_idle_and_refresh_extends_them() {
        let mut t = ConnTrack::new(64, 100);
        let fwd = key([10, 0, 0, 5], [192, 0, 2, 7], 1, 2, 3);
        let reply = fwd.reversed(4);
        t.commit(&fwd, 4, 10);
        assert!(t.is_return(&reply, 109));
        assert!(!t.is_return(&reply, 110), "idle for the whole timeout");
        t.refresh(&reply, 110);
        assert!(t.is_return(&reply, 209), "re-created by a refresh");
        t.commit(&fwd, 4, 150);
        assert!(t.is_return(&reply, 249), "a forward packet refreshes too");
        assert_eq!(t.expire(249), 0);
        assert_eq!(t.expire(250), 1);
        assert_eq!(t.len(0), 0);
        t.commit(&fwd, 4, 300);
        t.clear();
        assert!(!t.is_return(&reply, 301));
    }

    #[test]
    fn bounded_and_evicts_the_oldest() {
        let mut t = ConnTrack::new(8, 1000);
        assert_eq!(t.capacity(), 8);
        for i in 0..100u16 {
            t.commit(&key([10, 0, 0, 5], [192, 0, 2, 7], i, 80, 0), 0, u64::from(i));
        }
        assert_eq!(t.len(100), 8);
        assert_eq!(t.evictions(), 92);
        let newest = key([10, 0, 0, 5], [192, 0, 2, 7], 99, 80, 0).reversed(0);
        let oldest = key([10, 0, 0, 5], [192, 0, 2, 7], 0, 80, 0).reversed(0);
        assert!(t.is_return(&newest, 100));
        assert!(!t.is_return(&oldest, 100));
        // Expired entries are reused without counting an eviction.
        t.commit(&key([10, 0, 0, 6], [192, 0, 2, 7], 1, 80, 0), 0, 5000);
        assert_eq!(t.evictions(), 92);
    }

    #[test]
    fn zones_keep_routers_and_bridges_apart_and_survive_index_moves() {
        use crate::topology::{SnapshotBuilder, Uuid};
        let mut b = SnapshotBuilder::new(1);
        let r = b.add_router(Uuid(3));
        let br = b.add_bridge(Uuid(4));
        let p = b.add_bridge_port(br, Uuid(5));
        let snap = b.build().unwrap();
        assert_ne!(zone(&snap, DeviceId::Router(r)), zone(&snap, DeviceId::Bridge(br)));
        assert_eq!(zone(&snap, DeviceId::Port(p)), None);
        // The same router at another index in a later snapshot keeps its zone.
        let mut b = SnapshotBuilder::new(2);
        b.add_router(Uuid(2));
        let moved = b.add_router(Uuid(3));
        let later = b.build().unwrap();
        assert_eq!(zone(&later, DeviceId::Router(moved)), zone(&snap, DeviceId::Router(r)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Commit { tuple: u8, egress: u8, dt: u64 },
        Refresh { tuple: u8, zone: u8, dt: u64 },
        Expire { dt: u64 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..8u8, 0..2u8, 0..60u64).prop_map(|(tuple, egress, dt)| Op::Commit { tuple, egress, dt }),
            (0..8u8, 0..2u8, 0..60u64).prop_map(|(tuple, zone, dt)| Op::Refresh { tuple, zone, dt }),
            (0..60u64).prop_map(|dt| Op::Expire { dt }),
        ]
    }

    fn tuple(i: u8, zone: u32) -> ConnKey {
        let mut k = key([10, 0, 0, i % 4], [192, 0, 2, 7], 1000 + u16::from(i / 4), 80, zone);
        k.proto = if i.is_multiple_of(2) { 6 } else { 17 };
        k
    }

    proptest::proptest! {
        /// Against a map of key -> expiry (the table is large enough never to evict here): every
        /// key of the universe, in both directions and zones, answers `is_return` as the model does.
        #[test]
        fn behaves_like_a_map_with_idle_expiry(ops in proptest::collection::vec(op(), 1..80)) {
            let idle = 100;
            let mut t = ConnTrack::new(1024, idle);
            let mut model: std::collections::HashMap<ConnKey, u64> = std::collections::HashMap::new();
            let mut now = 1;
            for op in ops {
                match op {
                    Op::Commit { tuple: i, egress, dt } => {
                        now += dt;
                        let fwd = tuple(i, 7);
                        t.commit(&fwd, u32::from(egress), now);
                        model.insert(fwd.reversed(u32::from(egress)), now + idle);
                    }
                    Op::Refresh { tuple: i, zone, dt } => {
                        now += dt;
                        let k = tuple(i, u32::from(zone)).reversed(u32::from(zone));
                        t.refresh(&k, now);
                        model.insert(k, now + idle);
                    }
                    Op::Expire { dt } => {
                        now += dt;
                        // Expired entries may already have been reused by newer keys.
                        let gone = model.values().filter(|&&e| e <= now).count();
                        proptest::prop_assert!(t.expire(now) <= gone);
                        proptest::prop_assert_eq!(t.expire(now), 0);
                        model.retain(|_, e| *e > now);
                    }
                }
                for i in 0..8 {
                    for zone in [0, 1, 7] {
                        for k in [tuple(i, zone), tuple(i, zone).reversed(zone)] {
                            let expected = model.get(&k).is_some_and(|&e| now < e);
                            proptest::prop_assert_eq!(t.is_return(&k, now), expected, "{:?} at {}", k, now);
                        }
                    }
                }
                proptest::prop_assert_eq!(t.len(now), model.values().filter(|&&e| now < e).count());
                proptest::prop_assert_eq!(t.evictions(), 0);
            }
        }

        /// A small table stays bounded, and what was just recorded is always there.
        #[test]
        fn small_tables_keep_the_latest(ports in proptest::collection::vec(any_port(), 1..200)) {
            let mut t = ConnTrack::new(16, 1000);
            for (now, port) in ports.into_iter().enumerate() {
                let fwd = key([10, 0, 0, 1], [10, 0, 0, 2], port, 80, 0);
                t.commit(&fwd, 3, now as u64);
                proptest::prop_assert!(t.is_return(&fwd.reversed(3), now as u64));
                proptest::prop_assert!(t.len(now as u64) <= t.capacity());
            }
        }
    }

    fn any_port() -> impl proptest::strategy::Strategy<Value = u16> {
        proptest::prelude::any::<u16>()
    }
}
