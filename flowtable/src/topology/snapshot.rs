//! The immutable snapshot and its validating builder.

use core::net::{IpAddr, Ipv4Addr};
use std::collections::HashSet;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::device::{
    Binding, Bridge, BridgePort, Encap, Host, IpAddrGroup, Port, PortGroup, PortKind, PortLink, Router, RouterPort,
    Underlay, MAX_TUNNEL_KEY,
};
use super::id::{BridgeId, ChainId, DeviceId, HostId, IpAddrGroupId, PortGroupId, PortId, RouterId, RuleId, Uuid};
use super::route::{Route, RouteOrigin, RouteSet, RouteType};
use crate::chain::{Chain, Condition, Rule, RuleError, RuleKind, MAX_JUMP_DEPTH};
use crate::wire::EthernetAddress;

/// Why a topology does not build. One variant per reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown router {0}")]
    UnknownRouter(RouterId),
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown bridge {0}")]
    UnknownBridge(BridgeId),
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown port {0}")]
    UnknownPort(PortId),
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown chain {0}")]
    UnknownChain(ChainId),
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown host {0}")]
    UnknownHost(HostId),
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown port group {0}")]
    UnknownPortGroup(PortGroupId),
    /// An id that no `add_*` call of this builder returned.
    #[error("unknown IP address group {0}")]
    UnknownIpAddrGroup(IpAddrGroupId),
    /// Two objects with one UUID.
    #[error("UUID {0} is used twice")]
    DuplicateUuid(Uuid),
    /// A port is linked or bound twice.
    #[error("{0} is already linked or bound")]
    PortAlreadyPlugged(PortId),
    /// A port linked to itself.
    #[error("{0} cannot be its own peer")]
    PortLinkedToItself(PortId),
    /// Two bridge ports linked together (MidoNet links router-router and router-bridge only).
    #[error("bridge ports {0} and {1} cannot be linked")]
    BridgeToBridgeLink(PortId, PortId),
    /// A tunnel key wider than a VXLAN VNI.
    #[error("tunnel key {key:#x} of {port} does not fit in 24 bits")]
    TunnelKeyTooLarge {
        /// The port.
        port: PortId,
        /// Its key.
        key: u32,
    },
    /// Two ports with one tunnel key: a decapsulated packet could not tell them apart.
    #[error("tunnel key {0:#x} is used by two ports")]
    DuplicateTunnelKey(u32),
    /// Two ports bound to one DPDK port.
    #[error("DPDK port {0} is bound to two ports")]
    DuplicateDpdkPort(u16),
    /// A virtual port bound to the DPDK port the underlay uses.
    #[error("DPDK port {0} is the underlay's and cannot be bound to a virtual port")]
    UnderlayPortBound(u16),
    /// An underlay prefix longer than 32 bits.
    #[error("underlay prefix length {0} is longer than 32")]
    UnderlayPrefixTooLong(u8),
    /// A host with a port bound on it whose tunnel address is not IPv4 (the underlay is IPv4).
    #[error("host {0} has ports bound on it but an IPv6 tunnel address; tunnels are IPv4")]
    TunnelAddrNotIpv4(HostId),
    /// A router port MAC that is multicast or all zeros.
    #[error("router port {port} has MAC {mac}, which is not a unicast address")]
    RouterPortMacNotUnicast {
        /// The port.
        port: PortId,
        /// Its MAC.
        mac: EthernetAddress,
    },
    /// A route whose source and destination are of two families.
    #[error("route {0} mixes IPv4 and IPv6 in its source and destination")]
    RouteFamilyMismatch(Uuid),
    /// A route whose gateway is not of its destination's family.
    #[error("route {0} has a gateway of the other address family")]
    RouteGatewayFamilyMismatch(Uuid),
    /// A normal or local route without a port.
    #[error("route {0} forwards but names no port")]
    RouteNeedsPort(Uuid),
    /// A route through a port of another device.
    #[error("route {route} goes through {port}, which is not a port of its router")]
    RoutePortNotOnRouter {
        /// The route.
        route: Uuid,
        /// The port.
        port: PortId,
    },
    /// A static MAC entry for a multicast or all-zeros MAC.
    #[error("static MAC entry {0} is not a unicast address")]
    StaticMacNotUnicast(EthernetAddress),
    /// A static MAC entry on a port of another device.
    #[error("static MAC entry on {port}, which is not a port of {bridge}")]
    StaticMacPortNotOnBridge {
        /// The bridge.
        bridge: BridgeId,
        /// The port.
        port: PortId,
    },
    /// Two static MAC entries for one MAC on one bridge.
    #[error("{bridge} has two static entries for {mac}")]
    DuplicateStaticMac {
        /// The bridge.
        bridge: BridgeId,
        /// The MAC.
        mac: EthernetAddress,
    },
    /// Jumps that come back to a chain already being evaluated.
    #[error("chain {0} can jump back to itself")]
    ChainLoop(ChainId),
    /// A path of jumps longer than evaluation's fixed stack.
    #[error("chain {chain} nests {depth} chains, more than the {max} evaluation supports", max = MAX_JUMP_DEPTH)]
    JumpTooDeep {
        /// The chain where the path starts.
        chain: ChainId,
        /// Chains on the path.
        depth: u32,
    },
    /// A rule that does not validate on its own.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// A snapshot's tunnel key index entry: key, the remote-bound port, its host's tunnel address.
type TunnelKeyEntry = (u32, PortId, Option<(Ipv4Addr, Encap)>);

/// An immutable, versioned view of the virtual topology: what the worker cores read. Devices
/// reference each other by index; every index in a snapshot is valid in it (the builder checks).
///
/// The control thread builds a new snapshot on every change and swaps it in (RCU style); a flow
/// remembers the generation and the [`DeviceSet`](super::DeviceSet) it was simulated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    generation: u64,
    hosts: Box<[Host]>,
    routers: Box<[Router]>,
    bridges: Box<[Bridge]>,
    ports: Box<[Port]>,
    port_groups: Box<[PortGroup]>,
    ip_addr_groups: Box<[IpAddrGroup]>,
    chains: Box<[Chain]>,
    rules: Box<[Rule]>,
    /// Tunnel key, the remote-bound port it names, and that port's host's tunnel address (`None`
    /// for a host the snapshot lacks): everything decapsulation asks, in one sorted array.
    tunnel_keys: Box<[TunnelKeyEntry]>,
    dpdk_ports: Box<[(u16, PortId)]>,
    uuids: Box<[(Uuid, DeviceId)]>,
    underlay: Option<Underlay>,
}

macro_rules! accessors {
    ( $( $field:ident : $ty:ty, $id:ty, $get:ident, $get_opt:ident, $all:ident; )+ ) => {
        $(
            #[doc = concat!("The `", stringify!($ty), "` with this id. Panics on an id of another snapshot that is out of range.")]
            #[inline]
            pub fn $get(&self, id: $id) -> &$ty {
                &self.$field[id.index()]
            }

            #[doc = concat!("The `", stringify!($ty), "` with this id, if there is one.")]
            #[inline]
            pub fn $get_opt(&self, id: $id) -> Option<&$ty> {
                self.$field.get(id.index())
            }

            #[doc = concat!("Every `", stringify!($ty), "`, in id order.")]
            pub fn $all(&self) -> &[$ty] {
                &self.$field
            }
        )+
    };
}

impl Snapshot {
    /// The version of the topology this snapshot shows.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    accessors! {
        hosts: Host, HostId, host, get_host, hosts;
        routers: Router, RouterId, router, get_router, routers;
        bridges: Bridge, BridgeId, bridge, get_bridge, bridges;
        ports: Port, PortId, port, get_port, ports;
        port_groups: PortGroup, PortGroupId, port_group, get_port_group, port_groups;
        ip_addr_groups: IpAddrGroup, IpAddrGroupId, ip_addr_group, get_ip_addr_group, ip_addr_groups;
        chains: Chain, ChainId, chain, get_chain, chains;
        rules: Rule, RuleId, rule, get_rule, rules;
    }

    /// The exterior port bound on a remote host with tunnel key `key` (decapsulation then checks
    /// that the packet came from that host). Binary search.
    #[inline]
    pub fn port_by_tunnel_key(&self, key: u32) -> Option<PortId> {
        self.tunnel_endpoint(key).map(|(port, _)| port)
    }

    /// [`Snapshot::port_by_tunnel_key`] with the tunnel address and encapsulation of the port's
    /// host (`None` when the snapshot has no such host): what decapsulation checks the outer
    /// source and the tunnel's kind against, with no port or host lookup.
    #[inline]
    pub fn tunnel_endpoint(&self, key: u32) -> Option<(PortId, Option<(Ipv4Addr, Encap)>)> {
        let i = self.tunnel_keys.binary_search_by_key(&key, |&(k, _, _)| k).ok()?;
        self.tunnel_keys.get(i).map(|&(_, port, host)| (port, host))
    }

    /// The gateway's underlay endpoint, if tunnels are configured.
    pub fn underlay(&self) -> Option<&Underlay> {
        self.underlay.as_ref()
    }

    /// The exterior port bound to local DPDK port `dpdk_port`. Binary search.
    pub fn port_by_dpdk_port(&self, dpdk_port: u16) -> Option<PortId> {
        self.dpdk_ports.binary_search_by_key(&dpdk_port, |&(k, _)| k).ok().map(|i| self.dpdk_ports[i].1)
    }

    /// The tag a flow entry keeps for `id` (`flow::DeviceTag`): derived from the device's MidoNet
    /// UUID ([`Uuid::tag`]), so the same device has the same tag in every generation whatever the
    /// compiler's index order, and a new snapshot invalidates flows by the tags of the devices that
    /// changed ([`Snapshot::changed_tags`]).
    pub fn device_tag(&self, id: DeviceId) -> u32 {
        self.device_uuid(id).tag()
    }

    /// The MidoNet UUID of a device, port, chain or group.
    pub fn device_uuid(&self, id: DeviceId) -> Uuid {
        match id {
            DeviceId::Router(x) => self.routers[x.index()].uuid,
            DeviceId::Bridge(x) => self.bridges[x.index()].uuid,
            DeviceId::Port(x) => self.ports[x.index()].uuid,
            DeviceId::Chain(x) => self.chains[x.index()].uuid,
            DeviceId::PortGroup(x) => self.port_groups[x.index()].uuid,
            DeviceId::IpAddrGroup(x) => self.ip_addr_groups[x.index()].uuid,
        }
    }

    /// The device, port, chain or group with this MidoNet UUID (for the control plane and
    /// traces, not the fast path).
    pub fn find(&self, uuid: Uuid) -> Option<DeviceId> {
        self.uuids.binary_search_by_key(&uuid, |&(u, _)| u).ok().map(|i| self.uuids[i].1)
    }
}

#[derive(Debug, Clone)]
struct RouterDraft {
    uuid: Uuid,
    infilter: Option<ChainId>,
    outfilter: Option<ChainId>,
    routes: Vec<Route>,
    /// Compiled routes taken from an earlier snapshot ([`SnapshotBuilder::reuse_routes`]).
    reused: Option<RouteSet>,
}

#[derive(Debug, Clone)]
struct BridgeDraft {
    uuid: Uuid,
    inbound: Option<ChainId>,
    outbound: Option<ChainId>,
    static_macs: Vec<(EthernetAddress, PortId)>,
}

#[derive(Debug, Clone)]
struct ChainDraft {
    uuid: Uuid,
    name: Box<str>,
    rules: Vec<Rule>,
}

/// Builds a [`Snapshot`], checking every reference and rule, and paying every precomputation
/// (routing tables, automatic port routes, chain depths, lookup indices) so the cores pay none.
///
/// `add_*` calls hand out ids in insertion order; devices can be created first and wired
/// afterwards (a port may name a chain added later). Calls with an id this builder did not hand
/// out do not panic: the first such mistake is reported by [`build`](Self::build).
#[derive(Debug, Clone, Default)]
pub struct SnapshotBuilder {
    generation: u64,
    hosts: Vec<Host>,
    routers: Vec<RouterDraft>,
    bridges: Vec<BridgeDraft>,
    ports: Vec<Port>,
    port_groups: Vec<PortGroup>,
    ip_addr_groups: Vec<IpAddrGroup>,
    chains: Vec<ChainDraft>,
    underlay: Option<Underlay>,
    error: Option<TopologyError>,
}

impl SnapshotBuilder {
    /// An empty topology for generation `generation`.
    pub fn new(generation: u64) -> Self {
        SnapshotBuilder { generation, ..Default::default() }
    }

    fn fail(&mut self, e: TopologyError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn check_chain(&mut self, c: Option<ChainId>) -> bool {
        match c {
            Some(c) if c.index() >= self.chains.len() => {
                self.fail(TopologyError::UnknownChain(c));
                false
            }
            _ => true,
        }
    }

    fn port_mut(&mut self, port: PortId) -> Option<&mut Port> {
        if port.index() >= self.ports.len() {
            self.fail(TopologyError::UnknownPort(port));
            return None;
        }
        self.ports.get_mut(port.index())
    }

    /// Adds a host with its tunnel-zone address and the encapsulation packets to it use.
    pub fn add_host(&mut self, uuid: Uuid, tunnel_addr: IpAddr, encap: Encap) -> HostId {
        let id = HostId(self.hosts.len() as u32);
        self.hosts.push(Host { uuid, id, tunnel_addr, encap });
        id
    }

    /// Sets the gateway's own underlay endpoint (where tunnels to remote hosts start and end).
    pub fn set_underlay(&mut self, underlay: Underlay) {
        if underlay.prefix_len > 32 {
            self.fail(TopologyError::UnderlayPrefixTooLong(underlay.prefix_len));
        }
        self.underlay = Some(underlay);
    }

    /// Adds a router without ports, routes or chains.
    pub fn add_router(&mut self, uuid: Uuid) -> RouterId {
        let id = RouterId(self.routers.len() as u32);
        self.routers.push(RouterDraft { uuid, infilter: None, outfilter: None, routes: Vec::new(), reused: None });
        id
    }

    /// Sets a router's pre-routing (`infilter`) and post-routing (`outfilter`) chains.
    pub fn set_router_filters(&mut self, router: RouterId, infilter: Option<ChainId>, outfilter: Option<ChainId>) {
        if !(self.check_chain(infilter) && self.check_chain(outfilter)) {
            return;
        }
        match self.routers.get_mut(router.index()) {
            Some(r) => {
                r.infilter = infilter;
                r.outfilter = outfilter;
            }
            None => self.fail(TopologyError::UnknownRouter(router)),
        }
    }

    /// Adds a port to `router` with its MAC and addresses (`172.19.0.2/30`). The snapshot adds the
    /// port's routes: a `Local` route to each address and a `Normal` route to each subnet.
    pub fn add_router_port(
        &mut self,
        router: RouterId,
        uuid: Uuid,
        mac: EthernetAddress,
        addresses: &[IpNet],
    ) -> PortId {
        if router.index() >= self.routers.len() {
            self.fail(TopologyError::UnknownRouter(router));
        }
        let kind = PortKind::Router(RouterPort { router, mac, addresses: addresses.into() });
        self.push_port(uuid, kind)
    }

    fn push_port(&mut self, uuid: Uuid, kind: PortKind) -> PortId {
        let id = PortId(self.ports.len() as u32);
        self.ports.push(Port {
            uuid,
            id,
            kind,
            inbound_chain: None,
            outbound_chain: None,
            link: PortLink::Unplugged,
            port_groups: Box::new([]),
        });
        id
    }

    /// Adds a bridge without ports.
    pub fn add_bridge(&mut self, uuid: Uuid) -> BridgeId {
        let id = BridgeId(self.bridges.len() as u32);
        self.bridges.push(BridgeDraft { uuid, inbound: None, outbound: None, static_macs: Vec::new() });
        id
    }

    /// Sets a bridge's inbound and outbound chains.
    pub fn set_bridge_chains(&mut self, bridge: BridgeId, inbound: Option<ChainId>, outbound: Option<ChainId>) {
        if !(self.check_chain(inbound) && self.check_chain(outbound)) {
            return;
        }
        match self.bridges.get_mut(bridge.index()) {
            Some(b) => {
                b.inbound = inbound;
                b.outbound = outbound;
            }
            None => self.fail(TopologyError::UnknownBridge(bridge)),
        }
    }

    /// Adds a port to `bridge`.
    pub fn add_bridge_port(&mut self, bridge: BridgeId, uuid: Uuid) -> PortId {
        if bridge.index() >= self.bridges.len() {
            self.fail(TopologyError::UnknownBridge(bridge));
        }
        self.push_port(uuid, PortKind::Bridge(BridgePort { bridge }))
    }

    /// Adds a static MAC table entry: frames to `mac` leave `bridge` through `port`.
    pub fn add_static_mac(&mut self, bridge: BridgeId, mac: EthernetAddress, port: PortId) {
        if port.index() >= self.ports.len() {
            self.fail(TopologyError::UnknownPort(port));
            return;
        }
        match self.bridges.get_mut(bridge.index()) {
            Some(b) => b.static_macs.push((mac, port)),
            None => self.fail(TopologyError::UnknownBridge(bridge)),
        }
    }

    /// Sets a port's inbound and outbound chains.
    pub fn set_port_chains(&mut self, port: PortId, inbound: Option<ChainId>, outbound: Option<ChainId>) {
        if !(self.check_chain(inbound) && self.check_chain(outbound)) {
            return;
        }
        if let Some(p) = self.port_mut(port) {
            p.inbound_chain = inbound;
            p.outbound_chain = outbound;
        }
    }

    fn plug(&mut self, port: PortId, link: PortLink) {
        if let Some(p) = self.port_mut(port) {
            if p.link != PortLink::Unplugged {
                self.fail(TopologyError::PortAlreadyPlugged(port));
            } else {
                p.link = link;
            }
        }
    }

    /// Links two ports as peers (interior ports): router-router or router-bridge.
    pub fn link(&mut self, a: PortId, b: PortId) {
        if a == b {
            self.fail(TopologyError::PortLinkedToItself(a));
            return;
        }
        self.plug(a, PortLink::Peer(b));
        self.plug(b, PortLink::Peer(a));
    }

    /// Binds a port to a DPDK port of this gateway (exterior port, an uplink).
    pub fn bind_local(&mut self, port: PortId, dpdk_port: u16) {
        self.plug(port, PortLink::Exterior(Binding::Local { dpdk_port }));
    }

    /// Binds a port on a remote host, reached through a tunnel with `tunnel_key`.
    pub fn bind_remote(&mut self, port: PortId, host: HostId, tunnel_key: u32) {
        if host.index() >= self.hosts.len() {
            self.fail(TopologyError::UnknownHost(host));
            return;
        }
        self.plug(port, PortLink::Exterior(Binding::Remote { host, tunnel_key }));
    }

    /// Adds an empty port group.
    pub fn add_port_group(&mut self, uuid: Uuid, stateful: bool) -> PortGroupId {
        let id = PortGroupId(self.port_groups.len() as u32);
        self.port_groups.push(PortGroup { uuid, id, stateful, members: Box::new([]) });
        id
    }

    /// Adds `port` to `group`.
    pub fn add_port_group_member(&mut self, group: PortGroupId, port: PortId) {
        if port.index() >= self.ports.len() {
            self.fail(TopologyError::UnknownPort(port));
            return;
        }
        match self.port_groups.get_mut(group.index()) {
            Some(g) => {
                let mut m = core::mem::take(&mut g.members).into_vec();
                m.push(port);
                g.members = m.into_boxed_slice();
            }
            None => self.fail(TopologyError::UnknownPortGroup(group)),
        }
    }

    /// Adds an empty IP address group.
    pub fn add_ip_addr_group(&mut self, uuid: Uuid) -> IpAddrGroupId {
        let id = IpAddrGroupId(self.ip_addr_groups.len() as u32);
        self.ip_addr_groups.push(IpAddrGroup { uuid, id, addresses: Box::new([]) });
        id
    }

    /// Adds `addr` to `group`.
    pub fn add_ip_addr_group_address(&mut self, group: IpAddrGroupId, addr: IpAddr) {
        match self.ip_addr_groups.get_mut(group.index()) {
            Some(g) => {
                let mut a = core::mem::take(&mut g.addresses).into_vec();
                a.push(addr);
                g.addresses = a.into_boxed_slice();
            }
            None => self.fail(TopologyError::UnknownIpAddrGroup(group)),
        }
    }

    /// Room for `additional` more routes on `router`: a compiler that knows how many it adds saves
    /// the regrowth (a no-op for an unknown router, which [`SnapshotBuilder::add_route`] reports).
    pub fn reserve_routes(&mut self, router: RouterId, additional: usize) {
        if let Some(r) = self.routers.get_mut(router.index()) {
            r.routes.reserve(additional);
        }
    }

    /// Adds a configured route to `router`. Routes of equal weight and prefix are chosen among by
    /// ECMP in the order they were added.
    pub fn add_route(&mut self, router: RouterId, route: Route) {
        match self.routers.get_mut(router.index()) {
            Some(r) => r.routes.push(Route { origin: RouteOrigin::Configured, ..route }),
            None => self.fail(TopologyError::UnknownRouter(router)),
        }
    }

    /// Gives `router` the routes of an earlier snapshot (`Router::routes`, shared, not copied) in
    /// place of the ones [`add_route`](Self::add_route) and its ports would give it; routes added
    /// to it are ignored. For a compiler that rebuilds only what changed: the caller vouches that
    /// the router's configured routes, and the indices, addresses and owners of the ports they and
    /// the router's own ports name, are what they were in that snapshot, so the set is what this
    /// builder would compile. [`build`](Self::build) does not check the set's routes again, and
    /// leaves their UUIDs out of its duplicate check ([`build_reusing`](Self::build_reusing) takes
    /// them into account).
    pub fn reuse_routes(&mut self, router: RouterId, routes: RouteSet) {
        match self.routers.get_mut(router.index()) {
            Some(r) => r.reused = Some(routes),
            None => self.fail(TopologyError::UnknownRouter(router)),
        }
    }

    /// Adds an empty chain.
    pub fn add_chain(&mut self, uuid: Uuid, name: &str) -> ChainId {
        let id = ChainId(self.chains.len() as u32);
        self.chains.push(ChainDraft { uuid, name: name.into(), rules: Vec::new() });
        id
    }

    /// Appends a rule (validated by [`Rule::new`]) to `chain`.
    pub fn add_rule(&mut self, chain: ChainId, rule: Rule) {
        match self.chains.get_mut(chain.index()) {
            Some(c) => c.rules.push(rule),
            None => self.fail(TopologyError::UnknownChain(chain)),
        }
    }

    /// Validates [`Rule::new`] and appends the rule: the two steps in one.
    pub fn add_new_rule(
        &mut self,
        chain: ChainId,
        uuid: Uuid,
        condition: Condition,
        kind: RuleKind,
    ) -> Result<(), TopologyError> {
        let rule = Rule::new(uuid, condition, kind)?;
        self.add_rule(chain, rule);
        Ok(())
    }

    /// Checks everything and compiles the snapshot.
    pub fn build(self) -> Result<Snapshot, TopologyError> {
        self.build_reusing(|_| false)
    }

    /// [`build`](Self::build) for a builder given reused route sets: `reused_route(uuid)` says
    /// whether a route of a set given to [`reuse_routes`](Self::reuse_routes) has this UUID (the
    /// sets were free of duplicates in their snapshot; every other UUID is checked against them
    /// this way, so the check stays proportional to what was not reused).
    pub fn build_reusing(self, reused_route: impl Fn(Uuid) -> bool) -> Result<Snapshot, TopologyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let b = self;
        b.check_uuids(reused_route)?;
        b.check_ports()?;
        b.check_rules()?;
        let (tunnel_keys, dpdk_ports) = b.binding_indices()?;
        let (depths, conntrack) = b.chain_graph()?;

        // Port group memberships, seen from the port.
        let mut ports = b.ports;
        let mut port_groups = b.port_groups;
        for g in port_groups.iter_mut() {
            let mut m = core::mem::take(&mut g.members).into_vec();
            m.sort_unstable();
            m.dedup();
            for p in &m {
                let port = &mut ports[p.index()];
                let mut gs = core::mem::take(&mut port.port_groups).into_vec();
                gs.push(g.id);
                port.port_groups = gs.into_boxed_slice();
            }
            g.members = m.into_boxed_slice();
        }
        let mut ip_addr_groups = b.ip_addr_groups;
        for g in ip_addr_groups.iter_mut() {
            let mut a = core::mem::take(&mut g.addresses).into_vec();
            a.sort_unstable();
            a.dedup();
            g.addresses = a.into_boxed_slice();
        }

        // Each device's ports, in one pass over the ports.
        let mut router_ports = vec![Vec::new(); b.routers.len()];
        let mut bridge_ports = vec![Vec::new(); b.bridges.len()];
        for p in &ports {
            match &p.kind {
                PortKind::Router(rp) => router_ports[rp.router.index()].push(p.id),
                PortKind::Bridge(bp) => bridge_ports[bp.bridge.index()].push(p.id),
            }
        }

        let mut routers = Vec::with_capacity(b.routers.len());
        for ((i, r), router_ports) in b.routers.into_iter().enumerate().zip(router_ports) {
            let id = RouterId(i as u32);
            let router_ports = router_ports.into_boxed_slice();
            let routes = match r.reused {
                Some(set) => set,
                None => {
                    let mut routes = Vec::with_capacity(r.routes.len() + 2 * router_ports.len());
                    for route in r.routes {
                        routes.push(check_route(id, route, &ports)?);
                    }
                    for &p in router_ports.iter() {
                        routes.extend(port_routes(&ports[p.index()]));
                    }
                    RouteSet::new(routes)
                }
            };
            routers.push(Router {
                uuid: r.uuid,
                id,
                infilter: r.infilter,
                outfilter: r.outfilter,
                ports: router_ports,
                routes,
            });
        }

        let mut bridges = Vec::with_capacity(b.bridges.len());
        for ((i, d), ports_of_bridge) in b.bridges.into_iter().enumerate().zip(bridge_ports) {
            let id = BridgeId(i as u32);
            let mut macs = d.static_macs;
            for &(mac, port) in &macs {
                if !mac.is_unicast() || mac.0 == [0; 6] {
                    return Err(TopologyError::StaticMacNotUnicast(mac));
                }
                if ports[port.index()].device() != DeviceId::Bridge(id) {
                    return Err(TopologyError::StaticMacPortNotOnBridge { bridge: id, port });
                }
            }
            macs.sort_unstable();
            if let Some(w) = macs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(TopologyError::DuplicateStaticMac { bridge: id, mac: w[0].0 });
            }
            // The MACs of router ports linked to the bridge: known without learning.
            let mut router_macs: Vec<(EthernetAddress, PortId)> = ports_of_bridge
                .iter()
                .filter_map(|&bp| match ports[bp.index()].link {
                    PortLink::Peer(peer) => ports[peer.index()].as_router_port().map(|rp| (rp.mac, bp)),
                    _ => None,
                })
                .collect();
            router_macs.sort_unstable();
            bridges.push(Bridge {
                uuid: d.uuid,
                id,
                inbound_chain: d.inbound,
                outbound_chain: d.outbound,
                ports: ports_of_bridge.into_boxed_slice(),
                static_macs: macs.into_boxed_slice(),
                router_macs: router_macs.into_boxed_slice(),
            });
        }

        let mut chains = Vec::with_capacity(b.chains.len());
        let mut rules = Vec::new();
        for (i, c) in b.chains.into_iter().enumerate() {
            chains.push(Chain {
                uuid: c.uuid,
                id: ChainId(i as u32),
                name: c.name,
                first_rule: rules.len() as u32,
                rule_count: c.rules.len() as u32,
                depth: depths[i],
                uses_conntrack: conntrack[i],
            });
            rules.extend(c.rules);
        }

        let mut uuids: Vec<(Uuid, DeviceId)> = Vec::new();
        uuids.extend(routers.iter().map(|r| (r.uuid, DeviceId::Router(r.id))));
        uuids.extend(bridges.iter().map(|r| (r.uuid, DeviceId::Bridge(r.id))));
        uuids.extend(ports.iter().map(|r| (r.uuid, DeviceId::Port(r.id))));
        uuids.extend(chains.iter().map(|r| (r.uuid, DeviceId::Chain(r.id))));
        uuids.extend(port_groups.iter().map(|r| (r.uuid, DeviceId::PortGroup(r.id))));
        uuids.extend(ip_addr_groups.iter().map(|r| (r.uuid, DeviceId::IpAddrGroup(r.id))));
        // Each kind was added in id order (compilers add devices as their store lists them): a
        // stable sort merges those runs instead of sorting from scratch.
        uuids.sort();

        Ok(Snapshot {
            generation: b.generation,
            hosts: b.hosts.into_boxed_slice(),
            routers: routers.into_boxed_slice(),
            bridges: bridges.into_boxed_slice(),
            ports: ports.into_boxed_slice(),
            port_groups: port_groups.into_boxed_slice(),
            ip_addr_groups: ip_addr_groups.into_boxed_slice(),
            chains: chains.into_boxed_slice(),
            rules: rules.into_boxed_slice(),
            tunnel_keys,
            dpdk_ports,
            uuids: uuids.into_boxed_slice(),
            underlay: b.underlay,
        })
    }

    /// Every id once, across kinds. A hash set, not a sort: with a route per id this runs over
    /// every route of every router at each compile, and sorting them was a quarter of a compile.
    /// Reused route sets are left out of the set and looked up through `reused_route` instead.
    fn check_uuids(&self, reused_route: impl Fn(Uuid) -> bool) -> Result<(), TopologyError> {
        let fresh = |r: &&RouterDraft| r.reused.is_none();
        let routes: usize = self.routers.iter().filter(fresh).map(|r| r.routes.len()).sum();
        let rules: usize = self.chains.iter().map(|c| c.rules.len()).sum();
        let devices = self.hosts.len()
            + self.routers.len()
            + self.bridges.len()
            + self.ports.len()
            + self.port_groups.len()
            + self.ip_addr_groups.len()
            + self.chains.len();
        let mut seen: HashSet<Uuid, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(devices + routes + rules, foldhash::fast::RandomState::default());
        let all = (self.hosts.iter().map(|x| x.uuid))
            .chain(self.routers.iter().map(|x| x.uuid))
            .chain(self.routers.iter().filter(fresh).flat_map(|x| x.routes.iter().map(|r| r.uuid)))
            .chain(self.bridges.iter().map(|x| x.uuid))
            .chain(self.ports.iter().map(|x| x.uuid))
            .chain(self.port_groups.iter().map(|x| x.uuid))
            .chain(self.ip_addr_groups.iter().map(|x| x.uuid))
            .chain(self.chains.iter().map(|x| x.uuid))
            .chain(self.chains.iter().flat_map(|x| x.rules.iter().map(|r| r.uuid)));
        for uuid in all {
            if !seen.insert(uuid) || reused_route(uuid) {
                return Err(TopologyError::DuplicateUuid(uuid));
            }
        }
        Ok(())
    }

    fn check_ports(&self) -> Result<(), TopologyError> {
        for p in &self.ports {
            if let PortKind::Router(rp) = &p.kind {
                if !rp.mac.is_unicast() || rp.mac.0 == [0; 6] {
                    return Err(TopologyError::RouterPortMacNotUnicast { port: p.id, mac: rp.mac });
                }
            }
            if let PortLink::Peer(peer) = p.link {
                let q = &self.ports[peer.index()];
                if matches!((&p.kind, &q.kind), (PortKind::Bridge(_), PortKind::Bridge(_))) {
                    return Err(TopologyError::BridgeToBridgeLink(p.id.min(peer), p.id.max(peer)));
                }
            }
        }
        Ok(())
    }

    fn check_rules(&self) -> Result<(), TopologyError> {
        let port = |p: PortId| if p.index() < self.ports.len() { Ok(()) } else { Err(TopologyError::UnknownPort(p)) };
        for c in &self.chains {
            for r in &c.rules {
                let cond = &r.condition;
                for list in [&cond.in_ports, &cond.out_ports].into_iter().flatten() {
                    list.value.iter().try_for_each(|&p| port(p))?;
                }
                if let Some(g) = &cond.port_group {
                    if g.value.index() >= self.port_groups.len() {
                        return Err(TopologyError::UnknownPortGroup(g.value));
                    }
                }
                for g in [&cond.ip_addr_group_src, &cond.ip_addr_group_dst].into_iter().flatten() {
                    if g.value.index() >= self.ip_addr_groups.len() {
                        return Err(TopologyError::UnknownIpAddrGroup(g.value));
                    }
                }
                if let Some(d) = &cond.traversed_device {
                    self.check_device(d.value)?;
                }
                if let RuleKind::Jump(t) = r.kind {
                    if t.index() >= self.chains.len() {
                        return Err(TopologyError::UnknownChain(t));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_device(&self, d: DeviceId) -> Result<(), TopologyError> {
        let ok = match d {
            DeviceId::Router(x) => x.index() < self.routers.len(),
            DeviceId::Bridge(x) => x.index() < self.bridges.len(),
            DeviceId::Port(x) => x.index() < self.ports.len(),
            DeviceId::Chain(x) => x.index() < self.chains.len(),
            DeviceId::PortGroup(x) => x.index() < self.port_groups.len(),
            DeviceId::IpAddrGroup(x) => x.index() < self.ip_addr_groups.len(),
        };
        if ok {
            return Ok(());
        }
        Err(match d {
            DeviceId::Router(x) => TopologyError::UnknownRouter(x),
            DeviceId::Bridge(x) => TopologyError::UnknownBridge(x),
            DeviceId::Port(x) => TopologyError::UnknownPort(x),
            DeviceId::Chain(x) => TopologyError::UnknownChain(x),
            DeviceId::PortGroup(x) => TopologyError::UnknownPortGroup(x),
            DeviceId::IpAddrGroup(x) => TopologyError::UnknownIpAddrGroup(x),
        })
    }

    #[allow(clippy::type_complexity)]
    fn binding_indices(&self) -> Result<(Box<[TunnelKeyEntry]>, Box<[(u16, PortId)]>), TopologyError> {
        let mut keys = Vec::new();
        let mut dpdk = Vec::new();
        for p in &self.ports {
            match p.link {
                PortLink::Exterior(Binding::Remote { tunnel_key, host }) => {
                    if tunnel_key > MAX_TUNNEL_KEY {
                        return Err(TopologyError::TunnelKeyTooLarge { port: p.id, key: tunnel_key });
                    }
                    let endpoint = match self.hosts.get(host.index()).map(|h| (h.tunnel_addr, h.encap)) {
                        Some((IpAddr::V4(a), encap)) => Some((a, encap)),
                        Some((IpAddr::V6(_), _)) => return Err(TopologyError::TunnelAddrNotIpv4(host)),
                        None => None,
                    };
                    keys.push((tunnel_key, p.id, endpoint));
                }
                PortLink::Exterior(Binding::Local { dpdk_port }) => dpdk.push((dpdk_port, p.id)),
                _ => {}
            }
        }
        keys.sort_unstable_by_key(|&(key, port, _)| (key, port));
        dpdk.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(TopologyError::DuplicateTunnelKey(w[0].0));
        }
        if let Some(w) = dpdk.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(TopologyError::DuplicateDpdkPort(w[0].0));
        }
        if let Some(u) = self.underlay.filter(|u| dpdk.iter().any(|&(d, _)| d == u.dpdk_port)) {
            return Err(TopologyError::UnderlayPortBound(u.dpdk_port));
        }
        Ok((keys.into_boxed_slice(), dpdk.into_boxed_slice()))
    }

    /// Refuses jump cycles and paths longer than [`MAX_JUMP_DEPTH`]; returns each chain's depth and
    /// whether it (transitively) needs conntrack. Iterative depth-first search, post-order.
    fn chain_graph(&self) -> Result<(Vec<u32>, Vec<bool>), TopologyError> {
        let n = self.chains.len();
        let targets = |c: usize| {
            self.chains[c].rules.iter().filter_map(|r| match r.kind {
                RuleKind::Jump(t) => Some(t.index()),
                _ => None,
            })
        };
        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; n];
        let mut depth = vec![1u32; n];
        let mut conntrack: Vec<bool> =
            self.chains.iter().map(|c| c.rules.iter().any(|r| r.condition.flow.is_some())).collect();
        for root in 0..n {
            if state[root] != NEW {
                continue;
            }
            // (chain, how many of its jump targets were visited)
            let mut stack = vec![(root, 0usize)];
            state[root] = OPEN;
            while let Some(&mut (c, ref mut next)) = stack.last_mut() {
                match targets(c).nth(*next) {
                    Some(t) => {
                        *next += 1;
                        match state[t] {
                            OPEN => return Err(TopologyError::ChainLoop(ChainId(t as u32))),
                            NEW => {
                                state[t] = OPEN;
                                stack.push((t, 0));
                            }
                            _ => {}
                        }
                    }
                    None => {
                        stack.pop();
                        state[c] = DONE;
                        for t in targets(c) {
                            depth[c] = depth[c].max(depth[t] + 1);
                            conntrack[c] |= conntrack[t];
                        }
                        if depth[c] as usize > MAX_JUMP_DEPTH {
                            return Err(TopologyError::JumpTooDeep { chain: ChainId(c as u32), depth: depth[c] });
                        }
                    }
                }
            }
        }
        Ok((depth, conntrack))
    }
}

/// Validates a configured route of `router` and clears its host bits.
fn check_route(router: RouterId, mut r: Route, ports: &[Port]) -> Result<Route, TopologyError> {
    if r.src.addr().is_ipv4() != r.dst.addr().is_ipv4() {
        return Err(TopologyError::RouteFamilyMismatch(r.uuid));
    }
    if r.gateway.is_some_and(|g| g.is_ipv4() != r.dst.addr().is_ipv4()) {
        return Err(TopologyError::RouteGatewayFamilyMismatch(r.uuid));
    }
    match (r.kind, r.port) {
        (RouteType::Normal | RouteType::Local, None) => return Err(TopologyError::RouteNeedsPort(r.uuid)),
        (_, Some(p)) => match ports.get(p.index()) {
            None => return Err(TopologyError::UnknownPort(p)),
            Some(port) if port.device() != DeviceId::Router(router) => {
                return Err(TopologyError::RoutePortNotOnRouter { route: r.uuid, port: p })
            }
            Some(_) => {}
        },
        (_, None) => {}
    }
    r.src = r.src.trunc();
    r.dst = r.dst.trunc();
    Ok(r)
}

/// The automatic routes of a router port (seeds A6): for each address, a `Local` route to the
/// address itself and, unless it is a /32 (/128), a `Normal` route to its subnet through the port;
/// for an IPv6 subnet shorter than /127, a `Local` route to its Subnet-Router anycast address too
/// (RFC 4291 2.6.1: the router's own).
fn port_routes(port: &Port) -> Vec<Route> {
    let Some(rp) = port.as_router_port() else { return Vec::new() };
    let mut out = Vec::new();
    for (i, net) in rp.addresses.iter().enumerate() {
        let (host, any) = match net {
            IpNet::V4(n) => (IpNet::V4(Ipv4Net::from(n.addr())), IpNet::V4(Ipv4Net::default())),
            IpNet::V6(n) => (IpNet::V6(Ipv6Net::from(n.addr())), IpNet::V6(Ipv6Net::default())),
        };
        let origin = RouteOrigin::PortAddress(port.id);
        let base = Route {
            uuid: port.uuid.derive(2 * i as u8),
            src: any,
            dst: host,
            gateway: None,
            port: Some(port.id),
            weight: 0,
            kind: RouteType::Local,
            origin,
        };
        if net.prefix_len() < net.max_prefix_len() {
            out.push(Route {
                uuid: port.uuid.derive(2 * i as u8 + 1),
                dst: net.trunc(),
                kind: RouteType::Normal,
                ..base.clone()
            });
        }
        // Unless the address is the anycast address itself; derived from the address route's
        // UUID, so the two routes above keep theirs.
        if let Some(anycast) = super::device::subnet_router_anycast(net).filter(|&a| a != net.addr()) {
            out.push(Route { uuid: base.uuid.derive(0), dst: IpNet::from(anycast), ..base.clone() });
        }
        out.push(base);
    }
    out
}

/// A route id's position, for tests.
#[cfg(test)]
pub(crate) fn route_index(router: &Router, uuid: Uuid) -> super::id::RouteId {
    super::id::RouteId(router.routes.iter().position(|r| r.uuid == uuid).expect("route") as u32)
}
