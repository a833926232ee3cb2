//! Rule conditions: every match attribute of the seeds' Table 7.2, each with its own inversion.
//!
//! A condition is a conjunction. An unset attribute matches every packet. A set attribute tests
//! one packet field; `!` (`Field::inverted`) negates that one test. A field the packet does not
//! have (no IP source on an ARP-less L2 frame, no L4 port on a later fragment or on GRE) makes the
//! test false, so the inverted test true: `src !10.0.0.0/16` matches a non-IP frame, exactly as
//! MidoNet's `Condition.matches` (`negate ^ (pktIp != null && subnet.contains(pktIp))`).
//!
//! The fragment policy is not a field: it cannot be inverted and its default depends on the rest
//! of the rule (see [`FragmentPolicy`] and [`Rule::new`](super::Rule::new)).

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

use ipnet::IpNet;

use super::eval::EvalContext;
use super::fields::PacketMatchFields;
use crate::topology::{DeviceId, DeviceSet, IpAddrGroupId, PortGroupId, PortId, Snapshot};
use crate::wire::{EthernetAddress, Fragment};

/// One match attribute: a value and whether the test is inverted (`!` in the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field<T> {
    /// What to compare the packet with.
    pub value: T,
    /// Negate the test.
    pub inverted: bool,
}

impl<T> Field<T> {
    /// Matches packets whose field matches `value`.
    pub fn is(value: T) -> Self {
        Field { value, inverted: false }
    }

    /// Matches packets whose field does not match `value` (or that lack the field).
    pub fn not(value: T) -> Self {
        Field { value, inverted: true }
    }

    /// Applies the inversion to the raw test result.
    #[inline]
    fn test(&self, matched: bool) -> bool {
        matched != self.inverted
    }
}

/// A 48-bit MAC mask (seeds A11): `ffff.ffff.ffff` (the default) compares every bit,
/// `ffff.0000.0000` the first 16, `0000.0000.0000` none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacMask(pub [u8; 6]);

impl MacMask {
    /// Every bit compared.
    pub const EXACT: MacMask = MacMask([0xff; 6]);

    /// Whether `a` and `b` agree on the mask's bits.
    #[inline]
    pub fn equal(&self, a: EthernetAddress, b: EthernetAddress) -> bool {
        (0..6).all(|i| (a.0[i] ^ b.0[i]) & self.0[i] == 0)
    }
}

impl Default for MacMask {
    fn default() -> Self {
        MacMask::EXACT
    }
}

impl fmt::Display for MacMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// The text of a MAC mask is not `xxxx.xxxx.xxxx` with 12 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a MAC mask is written xxxx.xxxx.xxxx with hexadecimal digits")]
pub struct MacMaskSyntax;

impl FromStr for MacMask {
    type Err = MacMaskSyntax;

    /// Parses the CLI/REST form `xxxx.xxxx.xxxx`.
    fn from_str(s: &str) -> Result<Self, MacMaskSyntax> {
        let mut out = [0u8; 6];
        let mut groups = s.split('.');
        for pair in out.chunks_mut(2) {
            let g = groups.next().ok_or(MacMaskSyntax)?;
            if g.len() != 4 || !g.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(MacMaskSyntax);
            }
            let v = u16::from_str_radix(g, 16).map_err(|_| MacMaskSyntax)?;
            pair.copy_from_slice(&v.to_be_bytes());
        }
        if groups.next().is_some() {
            return Err(MacMaskSyntax);
        }
        Ok(MacMask(out))
    }
}

/// A MAC address with its mask (`hw-src` / `hw-dst` with `hw-src-mask` / `hw-dst-mask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacMatch {
    /// The address.
    pub addr: EthernetAddress,
    /// Which bits to compare.
    pub mask: MacMask,
}

impl MacMatch {
    /// An exact match on `addr`.
    pub fn exact(addr: EthernetAddress) -> Self {
        MacMatch { addr, mask: MacMask::EXACT }
    }
}

/// An inclusive range of L4 ports (`src-port` / `dst-port`; ICMP type / code, see
/// [`PacketMatchFields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
}

impl PortRange {
    /// One port.
    pub fn single(port: u16) -> Self {
        PortRange { start: port, end: port }
    }

    /// `start..=end`.
    pub fn new(start: u16, end: u16) -> Self {
        PortRange { start, end }
    }

    /// Whether `port` is inside.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

/// Which packets a rule considers with respect to IP fragmentation (seeds A12). Cannot be inverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragmentPolicy {
    /// Any packet.
    Any,
    /// Packets with a full header: unfragmented packets and first fragments.
    Header,
    /// Later (non-header) fragments only.
    NonHeader,
    /// Unfragmented packets only.
    Unfragmented,
}

impl FragmentPolicy {
    /// Whether a packet in state `f` is considered.
    #[inline]
    pub fn accepts(self, f: Fragment) -> bool {
        match self {
            FragmentPolicy::Any => true,
            FragmentPolicy::Header => f != Fragment::Later,
            FragmentPolicy::NonHeader => f == Fragment::Later,
            FragmentPolicy::Unfragmented => f == Fragment::Unfragmented,
        }
    }
}

/// The connection-tracking attribute (`flow fwd-flow|return-flow`). Its two values are each
/// other's inverse, so it has no `!` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowDirection {
    /// The packet starts a new connection or belongs to one in the direction that started it.
    Forward,
    /// The packet belongs to a known connection, in the reply direction.
    Return,
}

/// A rule's condition, as configured. Every attribute is optional; see the module docs for the
/// semantics of a set, unset or inverted attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Condition {
    /// `hw-src` with `hw-src-mask`.
    pub hw_src: Option<Field<MacMatch>>,
    /// `hw-dst` with `hw-dst-mask`.
    pub hw_dst: Option<Field<MacMatch>>,
    /// `ethertype` (after the 802.1Q tag).
    pub ethertype: Option<Field<u16>>,
    /// `in-ports`: the port the packet entered the current device through is one of these.
    pub in_ports: Option<Field<Box<[PortId]>>>,
    /// `out-ports`: the port the current device sends the packet out of is one of these.
    pub out_ports: Option<Field<Box<[PortId]>>>,
    /// `port-group`: the ingress port is a member (see [`EvalContext::group_port`]).
    pub port_group: Option<Field<PortGroupId>>,
    /// `ip-address-group-src`: the IP source is in the group.
    pub ip_addr_group_src: Option<Field<IpAddrGroupId>>,
    /// `ip-address-group-dst`: the IP destination is in the group.
    pub ip_addr_group_dst: Option<Field<IpAddrGroupId>>,
    /// `tos`: the IPv4 ToS byte / IPv6 traffic class, whole.
    pub tos: Option<Field<u8>>,
    /// `proto`: the IP protocol (IPv6: the upper-layer protocol after extension headers).
    pub proto: Option<Field<u8>>,
    /// `src`: the IP source is inside the CIDR.
    pub src: Option<Field<IpNet>>,
    /// `dst`: the IP destination is inside the CIDR.
    pub dst: Option<Field<IpNet>>,
    /// `src-port`: the L4 source port (ICMP: the type) is inside the range.
    pub src_port: Option<Field<PortRange>>,
    /// `dst-port`: the L4 destination port (ICMP: the code) is inside the range.
    pub dst_port: Option<Field<PortRange>>,
    /// `fragment-policy`, `None` for the default (see [`Rule::new`](super::Rule::new)).
    pub fragment_policy: Option<FragmentPolicy>,
    /// `flow fwd-flow|return-flow`.
    pub flow: Option<FlowDirection>,
    /// `traversed-device`: the packet already went through this device in this simulation.
    pub traversed_device: Option<Field<DeviceId>>,
}

impl Condition {
    /// Whether the condition names L4 ports (which forces a header-only fragment policy).
    pub fn has_l4_fields(&self) -> bool {
        self.src_port.is_some() || self.dst_port.is_some()
    }

    /// Evaluates the condition under the resolved fragment `policy`. Records the groups it had to
    /// look into in `deps`. Allocation-free.
    pub(crate) fn matches(
        &self,
        policy: FragmentPolicy,
        snap: &Snapshot,
        f: &PacketMatchFields,
        ctx: &EvalContext<'_>,
        deps: &mut DeviceSet,
    ) -> bool {
        if !policy.accepts(f.fragment) {
            return false;
        }
        if let Some(dir) = self.flow {
            if (dir == FlowDirection::Forward) != ctx.forward_flow {
                return false;
            }
        }
        if let Some(c) = &self.port_group {
            deps.insert(DeviceId::PortGroup(c.value));
            let m = ctx.group_port.and_then(|p| snap.get_port(p)).is_some_and(|p| p.in_group(c.value));
            if !c.test(m) {
                return false;
            }
        }
        if let Some(c) = &self.in_ports {
            if !c.test(ctx.in_port.is_some_and(|p| c.value.contains(&p))) {
                return false;
            }
        }
        if let Some(c) = &self.out_ports {
            if !c.test(ctx.out_port.is_some_and(|p| c.value.contains(&p))) {
                return false;
            }
        }
        if let Some(c) = &self.ethertype {
            if !c.test(f.ethertype == c.value) {
                return false;
            }
        }
        if let Some(c) = &self.hw_src {
            if !c.test(c.value.mask.equal(f.eth_src, c.value.addr)) {
                return false;
            }
        }
        if let Some(c) = &self.hw_dst {
            if !c.test(c.value.mask.equal(f.eth_dst, c.value.addr)) {
                return false;
            }
        }
        if let Some(c) = &self.tos {
            if !c.test(f.tos == Some(c.value)) {
                return false;
            }
        }
        if let Some(c) = &self.proto {
            if !c.test(f.proto == Some(c.value)) {
                return false;
            }
        }
        if let Some(c) = &self.src {
            if !c.test(f.src_ip.is_some_and(|ip| c.value.contains(&ip))) {
                return false;
            }
        }
        if let Some(c) = &self.dst {
            if !c.test(f.dst_ip.is_some_and(|ip| c.value.contains(&ip))) {
                return false;
            }
        }
        if let Some(c) = &self.src_port {
            if !c.test(f.src_port.is_some_and(|p| c.value.contains(p))) {
                return false;
            }
        }
        if let Some(c) = &self.dst_port {
            if !c.test(f.dst_port.is_some_and(|p| c.value.contains(p))) {
                return false;
            }
        }
        if let Some(c) = &self.ip_addr_group_src {
            if !c.test(in_group(snap, c.value, f.src_ip, deps)) {
                return false;
            }
        }
        if let Some(c) = &self.ip_addr_group_dst {
            if !c.test(in_group(snap, c.value, f.dst_ip, deps)) {
                return false;
            }
        }
        if let Some(c) = &self.traversed_device {
            if !c.test(ctx.traversed.contains(&c.value)) {
                return false;
            }
        }
        true
    }
}

fn in_group(snap: &Snapshot, group: IpAddrGroupId, ip: Option<IpAddr>, deps: &mut DeviceSet) -> bool {
    deps.insert(DeviceId::IpAddrGroup(group));
    match (ip, snap.get_ip_addr_group(group)) {
        (Some(ip), Some(g)) => g.contains(ip),
        _ => false,
    }
}

/// Parses an `ethertype` attribute as the CLI prints it: decimal, `0x` hexadecimal, or the signed
/// 16-bit form of MidoNet listings (`-31011` is IPv6, 0x86dd).
pub fn parse_ethertype(s: &str) -> Option<u16> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u16::from_str_radix(hex, 16).ok();
    }
    if let Ok(v) = s.parse::<u16>() {
        return Some(v);
    }
    s.parse::<i16>().ok().map(|v| v as u16)
}
