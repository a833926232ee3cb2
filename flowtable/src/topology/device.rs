//! The virtual devices of a snapshot: routers, bridges, their ports, port groups, IP address groups
//! and hosts. All of them are built and validated by the [`SnapshotBuilder`](super::SnapshotBuilder)
//! and read-only afterwards.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::VXLAN_DEFAULT_UDP_PORT;

use ipnet::IpNet;

use super::id::{
    BridgeId, ChainId, DeviceId, DeviceSet, HostId, IpAddrGroupId, PortGroupId, PortId, RouteId, RouterId, Uuid,
};
use super::route::{self, Route, RouteDecision, RouteSet};
use crate::wire::EthernetAddress;

/// A host: the gateway itself or a compute host, with its address in the tunnel zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: HostId,
    /// The host's underlay address in the tunnel zone (outer destination of tunnelled packets).
    pub tunnel_addr: IpAddr,
    /// How packets to its ports are encapsulated.
    pub encap: Encap,
}

/// A tunnel encapsulation (the tunnel zone's type in MidoNet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encap {
    /// VXLAN (RFC 7348): outer IPv4 + UDP to the underlay's VXLAN port + VXLAN with VNI = tunnel key.
    #[default]
    Vxlan,
    /// GRE (RFC 2784 / 2890): outer IPv4 + GRE with key = tunnel key, protocol 0x6558 (transparent
    /// Ethernet bridging).
    Gre,
}

impl Encap {
    /// Bytes the encapsulation adds in front of the inner frame: outer Ethernet, IPv4, and UDP +
    /// VXLAN (14 + 20 + 8 + 8) or GRE with a key (14 + 20 + 8).
    pub const fn header_len(self) -> usize {
        match self {
            Encap::Vxlan => 50,
            Encap::Gre => 42,
        }
    }

    /// How much an inner IP packet must be smaller than the underlay MTU: MidoNet's figures (the
    /// seeds' MTU rules: overlay 1450 / 1454 on a 1500-byte underlay). VXLAN 50 is exact (outer
    /// IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14); GRE 46 is what MidoNet reserves, 4 bytes more
    /// than the gateway's own GRE with a key needs (42), as much as a GRE checksum word or an
    /// inner 802.1Q tag would take.
    pub const fn mtu_overhead(self) -> u16 {
        match self {
            Encap::Vxlan => 20 + 8 + 8 + 14,
            Encap::Gre => 46,
        }
    }
}

/// The gateway's own endpoint on the underlay network, where tunnels start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Underlay {
    /// The local DPDK port facing the underlay (bound to no virtual port).
    pub dpdk_port: u16,
    /// The gateway's underlay address: outer source of tunnelled packets, answered for in ARP.
    pub address: Ipv4Addr,
    /// Prefix length of the underlay subnet.
    pub prefix_len: u8,
    /// The underlay router for hosts outside the subnet; `None`: every host is on the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// UDP destination port of VXLAN ([`VXLAN_DEFAULT_UDP_PORT`], 4789, by default).
    pub vxlan_port: u16,
}

impl Underlay {
    /// An endpoint on `dpdk_port` with `address/prefix_len`, no gateway, VXLAN on UDP 4789.
    pub fn new(dpdk_port: u16, address: Ipv4Addr, prefix_len: u8) -> Underlay {
        Underlay { dpdk_port, address, prefix_len, gateway: None, vxlan_port: VXLAN_DEFAULT_UDP_PORT }
    }

    /// Whether `addr` is on the underlay subnet.
    pub fn on_subnet(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len.min(32))).unwrap_or(0);
        (u32::from(addr) ^ u32::from(self.address)) & mask == 0
    }

    /// The underlay next hop toward `dst`: `dst` itself on the subnet (or without a gateway), else
    /// the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Ipv4Addr {
        match self.gateway {
            Some(gw) if !self.on_subnet(dst) => gw,
            _ => dst,
        }
    }
}

/// A virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: RouterId,
    /// Pre-routing chain (`infilter`, applied to every packet entering the router).
    pub infilter: Option<ChainId>,
    /// Post-routing chain (`outfilter`, applied after the route lookup, with the egress port known).
    pub outfilter: Option<ChainId>,
    /// The router's ports, in the order they were added.
    pub ports: Box<[PortId]>,
    /// Every route: configured ones first, in the order they were added, then the automatic port
    /// routes. [`RouteId`]s index this list. Shared with earlier snapshots while unchanged.
    pub routes: RouteSet,
}

impl Router {
    /// The route lookup (see the [module docs](super#route-lookup) for the semantics and the data structure):
    /// longest destination prefix whose routes match the source, lowest weight, ECMP by
    /// `hash % n`. Records the router and the egress port in `deps`. Allocation-free.
    ///
    /// A source of the other family than the destination matches no route.
    pub fn route(&self, src: IpAddr, dst: IpAddr, hash: u32, deps: &mut DeviceSet) -> RouteDecision {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.route_v4(s, d, hash, deps),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.route_v6(s, d, hash, deps),
            _ => route::decide(self.id, &self.routes, None, dst, deps),
        }
    }

    /// [`route`](Self::route) for IPv4.
    pub fn route_v4(&self, src: Ipv4Addr, dst: Ipv4Addr, hash: u32, deps: &mut DeviceSet) -> RouteDecision {
        let chosen = self.routes.tables().v4.lookup(route::v4_bits(src), route::v4_bits(dst), hash);
        route::decide(self.id, &self.routes, chosen, IpAddr::V4(dst), deps)
    }

    /// [`route`](Self::route) for IPv6.
    pub fn route_v6(&self, src: Ipv6Addr, dst: Ipv6Addr, hash: u32, deps: &mut DeviceSet) -> RouteDecision {
        let chosen = self.routes.tables().v6.lookup(route::v6_bits(src), route::v6_bits(dst), hash);
        route::decide(self.id, &self.routes, chosen, IpAddr::V6(dst), deps)
    }

    /// The route with index `id`.
    pub fn route_by_id(&self, id: RouteId) -> &Route {
        &self.routes[id.index()]
    }
}

/// A virtual bridge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bridge {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: BridgeId,
    /// Chain applied to packets entering the bridge.
    pub inbound_chain: Option<ChainId>,
    /// Chain applied to packets leaving the bridge.
    pub outbound_chain: Option<ChainId>,
    /// The bridge's ports, in the order they were added.
    pub ports: Box<[PortId]>,
    /// Static MAC table entries, sorted by MAC (learned entries live in per-core state).
    pub static_macs: Box<[(EthernetAddress, PortId)]>,
    /// The MACs of the router ports linked to this bridge, with the bridge port each is behind,
    /// sorted by MAC: a bridge knows them from the topology, without learning.
    pub router_macs: Box<[(EthernetAddress, PortId)]>,
}

impl Bridge {
    /// The bridge port behind which the router port with MAC `mac` is. Allocation-free (binary
    /// search; two linked router ports with one MAC: either).
    pub fn router_port(&self, mac: EthernetAddress) -> Option<PortId> {
        self.router_macs.binary_search_by_key(&mac, |&(m, _)| m).ok().map(|i| self.router_macs[i].1)
    }

    /// The port a static entry binds `mac` to. Allocation-free (binary search).
    pub fn static_mac(&self, mac: EthernetAddress) -> Option<PortId> {
        self.static_macs.binary_search_by_key(&mac, |&(m, _)| m).ok().map(|i| self.static_macs[i].1)
    }
}

/// Where an exterior port's packets come from and go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    /// Bound on this gateway to a DPDK port (an uplink).
    Local {
        /// The DPDK port index.
        dpdk_port: u16,
    },
    /// Bound on another host, reached through a tunnel to that host keyed by the port's tunnel key
    /// (GRE key, VXLAN VNI). A packet from `host` with key `tunnel_key` entered through this port.
    Remote {
        /// The host the port is bound on.
        host: HostId,
        /// The port's tunnel key (24 bits, so it fits a VXLAN VNI as well as a GRE key).
        tunnel_key: u32,
    },
}

/// The largest tunnel key: a VXLAN VNI has 24 bits.
pub const MAX_TUNNEL_KEY: u32 = 0x00ff_ffff;

/// What is on the other side of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PortLink {
    /// Neither linked nor bound: packets sent there are dropped.
    #[default]
    Unplugged,
    /// Interior port: linked to the peer port of another device (router-router or router-bridge).
    Peer(PortId),
    /// Exterior port: bound to a local DPDK port or to a port on a remote host.
    Exterior(Binding),
}

/// The router-specific part of a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouterPort {
    /// The router owning the port.
    pub router: RouterId,
    /// The port's MAC: unicast, MidoNet generates locally administered `02:` addresses
    /// ([`RouterPort::generated_mac`]).
    pub mac: EthernetAddress,
    /// The port's addresses with their subnet prefix (`172.19.0.2/30`), IPv4 and IPv6.
    pub addresses: Box<[IpNet]>,
}

impl RouterPort {
    /// A locally administered unicast MAC derived from the port's UUID: `02:` followed by its last
    /// five bytes, as MidoNet's router port listings show (`02:c2:0f:b0:f2:68`).
    pub fn generated_mac(uuid: Uuid) -> EthernetAddress {
        let b = uuid.0.to_be_bytes();
        EthernetAddress([0x02, b[11], b[12], b[13], b[14], b[15]])
    }

    /// Whether `addr` is one of the port's own addresses.
    pub fn owns(&self, addr: IpAddr) -> bool {
        self.addresses.iter().any(|n| n.addr() == addr)
    }

    /// Whether `addr` is the Subnet-Router anycast address (the prefix, host bits zero) of one
    /// of the port's IPv6 subnets, which a router answers for (RFC 4291 2.6.1). A /127 has none
    /// (RFC 6164) and a /128 is no subnet.
    pub fn subnet_router_anycast(&self, addr: IpAddr) -> bool {
        self.addresses.iter().any(|n| subnet_router_anycast(n) == Some(addr))
    }
}

/// The Subnet-Router anycast address of `net`: IPv6 shorter than /127 only.
pub(crate) fn subnet_router_anycast(net: &IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V6(n) if n.prefix_len() < 127 => Some(IpAddr::V6(n.network())),
        _ => None,
    }
}

/// The bridge-specific part of a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BridgePort {
    /// The bridge owning the port.
    pub bridge: BridgeId,
}

/// Which device a port belongs to, with the device-specific part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A router port.
    Router(RouterPort),
    /// A bridge port.
    Bridge(BridgePort),
}

/// A port of a router or a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: PortId,
    /// Router or bridge part.
    pub kind: PortKind,
    /// Chain applied to packets entering the device through this port.
    pub inbound_chain: Option<ChainId>,
    /// Chain applied to packets leaving the device through this port.
    pub outbound_chain: Option<ChainId>,
    /// Peer, binding, or nothing.
    pub link: PortLink,
    /// The port groups this port is a member of, sorted.
    pub port_groups: Box<[PortGroupId]>,
}

impl Port {
    /// The device owning the port.
    pub fn device(&self) -> DeviceId {
        match &self.kind {
            PortKind::Router(p) => DeviceId::Router(p.router),
            PortKind::Bridge(p) => DeviceId::Bridge(p.bridge),
        }
    }

    /// The router part, if a router port.
    pub fn as_router_port(&self) -> Option<&RouterPort> {
        match &self.kind {
            PortKind::Router(p) => Some(p),
            PortKind::Bridge(_) => None,
        }
    }

    /// Whether the port is a member of `group`.
    pub fn in_group(&self, group: PortGroupId) -> bool {
        self.port_groups.binary_search(&group).is_ok()
    }
}

/// A port group (seeds A4): ports that belong together; a stateful group shares flow, NAT and
/// conntrack state among its members.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortGroup {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: PortGroupId,
    /// Whether the members share connection state.
    pub stateful: bool,
    /// Members, sorted.
    pub members: Box<[PortId]>,
}

/// An IP address group: a set of addresses that rule conditions test sources or destinations
/// against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpAddrGroup {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: IpAddrGroupId,
    /// Addresses, sorted, without duplicates (IPv4 before IPv6).
    pub addresses: Box<[IpAddr]>,
}

impl IpAddrGroup {
    /// Whether `addr` is in the group. Allocation-free (binary search).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.addresses.binary_search(&addr).is_ok()
    }
}
