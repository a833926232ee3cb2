//! The topology service: MidoNet semantics on top of a [`Store`].
//!
//! Every operation reads what it needs, validates, works out its whole consequence (a port and its
//! routes, a router and everything under it) and commits it as one store transaction prepared against
//! the version it read. A concurrent writer makes the commit fail with a version mismatch and the
//! operation is re-run on fresh data; a validation error commits nothing.

mod error;
mod tx;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use ipnet::{IpNet, Ipv4Net};
use uuid::Uuid;

pub use error::TopologyError;
use tx::Tx;

use crate::compile::{self, CompileContext, CompileError, ModelCache};
use crate::model::{
    BgpNetwork, BgpPeer, Bridge, Chain, Condition, Host, Interface, IpAddrGroup, IpAddrPorts, Port, PortGroup,
    Resource, Route, RouteType, Router, Rule, RuleType, SystemState, Tenant, TunnelZone, TunnelZoneHost,
    TunnelZoneType,
};
use crate::store::{Kind, Op, Store, StoreError};
use flowtable::chain::MAX_JUMP_DEPTH;
use flowtable::topology::{TopologyError as SnapshotError, MAX_TUNNEL_KEY};

/// Weight of the routes MidoNet adds for a router port (`Route.DEFAULT_WEIGHT`).
pub const PORT_ROUTE_WEIGHT: u32 = 100;

/// How many times an operation is re-run after losing a race with another writer.
const RETRIES: usize = 16;

type Result<T> = std::result::Result<T, TopologyError>;

/// Create, read, update and delete the topology with MidoNet's validation, cascades and refusals.
#[derive(Debug)]
pub struct Topology<S: Store> {
    store: S,
    /// Serialises this process's writers so they do not burn retries racing each other, and holds
    /// what their writes are compiled against.
    writer: Mutex<WriteCheck>,
}

/// The gateway a write must still compile for, and the decoded model the check runs on (kept
/// between writes, so a check reads only what changed since the last one).
#[derive(Debug)]
struct WriteCheck {
    ctx: CompileContext,
    cache: ModelCache,
    /// Whole-topology compiles run so far.
    compiles: u64,
}

impl<S: Store> Topology<S> {
    /// A topology service over `store`. Writes must compile for a gateway without ports or
    /// underlay until [`Topology::set_compile_context`] names the real one.
    pub fn new(store: S) -> Self {
        let check = WriteCheck {
            ctx: CompileContext { generation: 1, ..Default::default() },
            cache: ModelCache::new(),
            compiles: 0,
        };
        Topology { store, writer: Mutex::new(check) }
    }

    /// The gateway every topology-changing write must compile for: the appliance gives the context
    /// its feed compiles with, so the API never stores what the feed would refuse.
    pub fn set_compile_context(&self, ctx: CompileContext) {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).ctx = ctx;
    }

    /// How many whole-topology compiles the write check has run in this process. A write that
    /// touches nothing the compiler reads, or only routes that pass on their own, runs none; any
    /// other topology write runs one (two when refused: the store's own state is judged too; again
    /// if it is re-run after losing a race with another writer). With the feed's compile of the
    /// committed change, that is what a write costs the control plane.
    pub fn write_check_compiles(&self) -> u64 {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).compiles
    }

    /// The underlying store (version and change feed for snapshot rebuilds).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Run `f` on a fresh transaction and commit its writes all-or-nothing, re-running on a lost race.
    /// A write that would leave a topology the snapshot compiler refuses commits nothing.
    fn write<R>(&self, mut f: impl FnMut(&mut Tx<'_, S>) -> Result<R>) -> Result<R> {
        let mut check = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..RETRIES {
            let mut tx = Tx::begin(&self.store)?;
            let state: SystemState = tx.get(SystemState::KEY)?.unwrap_or_default();
            let r = f(&mut tx)?;
            let (base, ops) = tx.finish();
            if !ops.is_empty()
                && state.availability == "READONLY"
                && !ops.iter().all(|op| op.target().0 == Kind::SystemState)
            {
                return Err(TopologyError::ReadOnly);
            }
            if let Err(e) = self.check_compiles(&mut check, &ops) {
                // Judged against a store another writer has moved on from: judge again on fresh data.
                if self.store.version()? != base {
                    continue;
                }
                return Err(e);
            }
            match self.store.commit(Some(base), &ops) {
                Ok(_) => return Ok(r),
                Err(StoreError::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TopologyError::Busy)
    }

    /// Refuses `ops` when the topology they leave does not compile (the compile the feed runs), so a
    /// refused object never reaches the store and freezes the cores' updates. A store that does not
    /// compile already (written before this check, or by hand) takes any write, so it can be repaired.
    fn check_compiles(&self, check: &mut WriteCheck, ops: &[Op]) -> Result<()> {
        if !ops.iter().any(|op| compile::compiles_kind(op.target().0)) {
            return Ok(());
        }
        // Routes alone, judged by themselves: a route write (the commonest) then costs no
        // whole-topology build. A refusal goes through the full check for its status and message.
        if let Some(Ok(())) = compile::routes_alone_compile(self, ops) {
            return Ok(());
        }
        let WriteCheck { ctx, cache, compiles } = check;
        *compiles += 1;
        let refusal = match cache.compile_with(self, ctx, ops) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_refusal() => e,
            Err(CompileError::Store(e)) => return Err(e.into()),
            Err(CompileError::Topology(e)) => return Err(e),
            Err(_) => return Err(TopologyError::Busy),
        };
        *compiles += 1;
        if let Err(before) = cache.compile(self, ctx) {
            if before.is_refusal() {
                tracing::warn!(
                    "the stored topology does not compile ({before}); write allowed so it can be repaired, \
                     it would not compile either: {refusal}"
                );
                return Ok(());
            }
        }
        let conflict = match &refusal {
            // About an object this write did not touch: the write conflicts with it.
            CompileError::Invalid { id, .. } => {
                let id = id.to_string();
                !ops.iter().any(|op| op.target().1 == id)
            }
            CompileError::Snapshot(e) => matches!(
                e,
                SnapshotError::DuplicateUuid(_)
                    | SnapshotError::PortAlreadyPlugged(_)
                    | SnapshotError::DuplicateTunnelKey(_)
                    | SnapshotError::DuplicateDpdkPort(_)
                    | SnapshotError::UnderlayPortBound(_)
                    | SnapshotError::DuplicateStaticMac { .. }
            ),
            _ => false,
        };
        Err(TopologyError::NotCompilable { reason: refusal.to_string(), conflict })
    }

    // ---- generic reads ----

    /// One object of type `T`, or [`TopologyError::NotFound`].
    pub fn get<T: Resource>(&self, id: &str) -> Result<T> {
        Tx::begin(&self.store)?.need(id)
    }

    /// Every object of type `T`, ordered by id.
    pub fn list<T: Resource>(&self) -> Result<Vec<T>> {
        Tx::begin(&self.store)?.list()
    }

    /// The ports of a router or bridge.
    pub fn device_ports(&self, device: Uuid) -> Result<Vec<Port>> {
        let mut tx = Tx::begin(&self.store)?;
        if tx.get::<Router>(&device.to_string())?.is_none() && tx.get::<Bridge>(&device.to_string())?.is_none() {
            return Err(TopologyError::not_found(Kind::Router, device));
        }
        Ok(tx.list::<Port>()?.into_iter().filter(|p| p.device_id == Some(device)).collect())
    }

    /// The ports linked to the ports of a router or bridge (`peer_ports`).
    pub fn device_peer_ports(&self, device: Uuid) -> Result<Vec<Port>> {
        let mut out = Vec::new();
        for port in self.device_ports(device)? {
            if let Some(peer) = port.peer_id {
                out.push(self.get::<Port>(&peer.to_string())?);
            }
        }
        Ok(out)
    }

    /// The routes of a router.
    pub fn router_routes(&self, router: Uuid) -> Result<Vec<Route>> {
        let mut tx = Tx::begin(&self.store)?;
        tx.need::<Router>(&router.to_string())?;
        Ok(tx.list::<Route>()?.into_iter().filter(|r| r.router_id == Some(router)).collect())
    }

    /// The BGP peers of a router.
    pub fn router_bgp_peers(&self, router: Uuid) -> Result<Vec<BgpPeer>> {
        let mut tx = Tx::begin(&self.store)?;
        tx.need::<Router>(&router.to_string())?;
        Ok(tx.list::<BgpPeer>()?.into_iter().filter(|p| p.router_id == Some(router)).collect())
    }

    /// The BGP networks of a router.
    pub fn router_bgp_networks(&self, router: Uuid) -> Result<Vec<BgpNetwork>> {
        let mut tx = Tx::begin(&self.store)?;
        tx.need::<Router>(&router.to_string())?;
        Ok(tx.list::<BgpNetwork>()?.into_iter().filter(|n| n.router_id == Some(router)).collect())
    }

    /// One rule, with `position` set to its current index + 1.
    pub fn get_rule(&self, id: Uuid) -> Result<Rule> {
        let mut tx = Tx::begin(&self.store)?;
        let mut rule: Rule = tx.need(&id.to_string())?;
        if let Some(chain) = rule.chain_id {
            if let Some(chain) = tx.get::<Chain>(&chain.to_string())? {
                rule.position = chain.rule_ids.iter().position(|r| *r == id).map(|i| i as u32 + 1);
            }
        }
        Ok(rule)
    }

    /// The rules of a chain in order, positions filled in.
    pub fn chain_rules(&self, chain: Uuid) -> Result<Vec<Rule>> {
        let mut tx = Tx::begin(&self.store)?;
        let chain: Chain = tx.need(&chain.to_string())?;
        let mut out = Vec::with_capacity(chain.rule_ids.len());
        for (i, id) in chain.rule_ids.iter().enumerate() {
            let mut rule: Rule = tx.need(&id.to_string())?;
            rule.position = Some(i as u32 + 1);
            out.push(rule);
        }
        Ok(out)
    }

    /// The system state (defaults when never set).
    pub fn system_state(&self) -> Result<SystemState> {
        Ok(Tx::begin(&self.store)?.get(SystemState::KEY)?.unwrap_or_default())
    }

    /// Replace the system state; `READONLY` availability refuses every other write.
    pub fn set_system_state(&self, mut state: SystemState) -> Result<SystemState> {
        if !matches!(state.state.as_str(), "ACTIVE" | "UPGRADE") {
            return Err(TopologyError::InvalidValue { field: "state", value: state.state });
        }
        if !matches!(state.availability.as_str(), "READWRITE" | "READONLY") {
            return Err(TopologyError::InvalidValue { field: "availability", value: state.availability });
        }
        state.version = Some("v5.0".into());
        self.write(|tx| {
            tx.put(&state)?;
            Ok(state.clone())
        })
    }

    // ---- tenants ----

    /// Create a tenant; the id is required and must be free.
    pub fn create_tenant(&self, tenant: Tenant) -> Result<Tenant> {
        if tenant.id.is_empty() || tenant.id.contains('/') || tenant.id == "." || tenant.id == ".." {
            return Err(TopologyError::MissingField("id"));
        }
        check_name(&tenant.name)?;
        self.write(|tx| {
            tx.create(&tenant)?;
            Ok(tenant.clone())
        })
    }

    /// Delete a tenant (its resources stay: MidoNet does not own tenants, Keystone does).
    pub fn delete_tenant(&self, id: &str) -> Result<()> {
        self.write(|tx| tx.delete::<Tenant>(id))
    }

    // ---- routers and bridges ----

    /// Create a router; the id is chosen when nil.
    pub fn create_router(&self, mut router: Router) -> Result<Router> {
        assign_id(&mut router.id);
        self.write(|tx| {
            check_router(tx, &router)?;
            tx.create(&router)?;
            Ok(router.clone())
        })
    }

    /// Replace a router's fields.
    pub fn update_router(&self, router: Router) -> Result<Router> {
        self.write(|tx| {
            tx.need::<Router>(&router.key())?;
            check_router(tx, &router)?;
            tx.put(&router)?;
            Ok(router.clone())
        })
    }

    /// Delete a router with its ports (unlinking their peers) and its routes.
    pub fn delete_router(&self, id: Uuid) -> Result<()> {
        self.write(|tx| {
            tx.need::<Router>(&id.to_string())?;
            refuse_if_traversed(tx, id)?;
            for port in tx.list::<Port>()?.into_iter().filter(|p| p.device_id == Some(id)) {
                delete_port_in(tx, port.id)?;
            }
            for route in tx.list::<Route>()?.into_iter().filter(|r| r.router_id == Some(id)) {
                tx.delete::<Route>(&route.key())?;
            }
            for peer in tx.list::<BgpPeer>()?.into_iter().filter(|p| p.router_id == Some(id)) {
                tx.delete::<BgpPeer>(&peer.key())?;
            }
            for net in tx.list::<BgpNetwork>()?.into_iter().filter(|n| n.router_id == Some(id)) {
                tx.delete::<BgpNetwork>(&net.key())?;
            }
            tx.delete::<Router>(&id.to_string())
        })
    }

    /// Create a bridge; the id is chosen when nil.
    pub fn create_bridge(&self, mut bridge: Bridge) -> Result<Bridge> {
        assign_id(&mut bridge.id);
        self.write(|tx| {
            check_bridge(tx, &bridge)?;
            tx.create(&bridge)?;
            Ok(bridge.clone())
        })
    }

    /// Replace a bridge's fields.
    pub fn update_bridge(&self, bridge: Bridge) -> Result<Bridge> {
        self.write(|tx| {
            tx.need::<Bridge>(&bridge.key())?;
            check_bridge(tx, &bridge)?;
            tx.put(&bridge)?;
            Ok(bridge.clone())
        })
    }

    /// Delete a bridge with its ports (unlinking their peers).
    pub fn delete_bridge(&self, id: Uuid) -> Result<()> {
        self.write(|tx| {
            tx.need::<Bridge>(&id.to_string())?;
            refuse_if_traversed(tx, id)?;
            for port in tx.list::<Port>()?.into_iter().filter(|p| p.device_id == Some(id)) {
                delete_port_in(tx, port.id)?;
            }
            tx.delete::<Bridge>(&id.to_string())
        })
    }

    // ---- ports ----

    /// Create a port on router or bridge `device`. Router ports get their address fields normalised
    /// (legacy and `portSubnet` forms), a MAC when absent, and their local (/32) and connected routes.
    /// Every port gets a tunnel key when absent. A `peerId` links the new port; `hostId` +
    /// `interfaceName` bind it.
    pub fn create_port(&self, device: Uuid, mut port: Port) -> Result<Port> {
        assign_id(&mut port.id);
        self.write(|tx| {
            let mut port = port.clone();
            let is_router = tx.get::<Router>(&device.to_string())?.is_some();
            let is_bridge = !is_router && tx.get::<Bridge>(&device.to_string())?.is_some();
            if !is_router && !is_bridge {
                let kind = if port.port_type.is_router() { Kind::Router } else { Kind::Network };
                return Err(TopologyError::not_found(kind, device));
            }
            if port.port_type.is_router() != is_router {
                return Err(TopologyError::WrongPortType(port.port_type));
            }
            port.device_id = Some(device);
            port.active = false;
            let peer = port.peer_id.take();
            let ports = tx.list::<Port>()?;
            if ports.iter().any(|p| p.id == port.id) {
                return Err(TopologyError::IdInUse { kind: Kind::Port, id: port.id.to_string() });
            }
            port.tunnel_key = Some(match port.tunnel_key {
                // Wider than a VXLAN VNI: a remote host could not address the port.
                Some(key) if key > u64::from(MAX_TUNNEL_KEY) => {
                    return Err(TopologyError::InvalidValue { field: "tunnelKey", value: key.to_string() })
                }
                Some(key) if ports.iter().any(|p| p.tunnel_key == Some(key)) => {
                    return Err(TopologyError::TunnelKeyInUse(key))
                }
                Some(key) => key,
                None => free_tunnel_key(&ports)?,
            });
            check_port_common(tx, &port)?;
            if is_router {
                let subnets = normalise_router_port(&mut port)?;
                port.port_mac = Some(match port.port_mac.take() {
                    Some(mac) => {
                        let mac = parse_mac("portMac", &mac)?;
                        if ports.iter().any(|p| p.port_mac.as_deref() == Some(mac.as_str())) {
                            return Err(TopologyError::MacInUse(mac));
                        }
                        mac
                    }
                    None => fresh_mac(&ports),
                });
                tx.create(&port)?;
                for subnet in subnets {
                    for route in port_routes(device, port.id, subnet) {
                        tx.create(&route)?;
                    }
                }
            } else {
                clear_router_fields(&mut port);
                check_vlan(port.vlan_id)?;
                tx.create(&port)?;
            }
            if let (Some(host), Some(iface)) = (port.host_id, port.interface_name.clone()) {
                bind_in(tx, host, port.id, &iface)?;
            }
            if let Some(peer) = peer {
                link_in(tx, port.id, peer)?;
            }
            tx.need::<Port>(&port.key())
        })
    }

    /// Update a port: administrative state, filters, mirrors, binding, VIF, QoS, MAC and VLAN. The
    /// type, device, tunnel key, peer (use [`Topology::link_ports`]) and addresses are immutable; a
    /// `None` there keeps the stored value.
    pub fn update_port(&self, port: Port) -> Result<Port> {
        self.write(|tx| {
            let old: Port = tx.need(&port.key())?;
            let same = |field: &'static str, differs: bool| {
                if differs {
                    Err(TopologyError::ImmutableField(field))
                } else {
                    Ok(())
                }
            };
            same("type", port.port_type != old.port_type)?;
            same("deviceId", port.device_id.is_some_and(|d| Some(d) != old.device_id))?;
            same("tunnelKey", port.tunnel_key.is_some_and(|k| Some(k) != old.tunnel_key))?;
            same("peerId", port.peer_id.is_some_and(|p| Some(p) != old.peer_id))?;
            same("portAddress", port.port_address.is_some() && port.port_address != old.port_address)?;
            same("networkAddress", port.network_address.is_some() && port.network_address != old.network_address)?;
            same("networkLength", port.network_length.is_some() && port.network_length != old.network_length)?;
            same("portSubnet", port.port_subnet.is_some() && port.port_subnet != old.port_subnet)?;
            check_port_common(tx, &port)?;
            if old.port_type.is_router() {
                check_vni(port.rtr_port_vni)?;
            } else {
                check_vlan(port.vlan_id)?;
            }
            let mut new = port.clone();
            new.device_id = old.device_id;
            new.tunnel_key = old.tunnel_key;
            new.peer_id = old.peer_id;
            new.active = old.active;
            new.port_address = old.port_address.clone();
            new.network_address = old.network_address.clone();
            new.network_length = old.network_length;
            new.port_subnet = old.port_subnet.clone();
            if old.port_type.is_router() {
                new.port_mac = match port.port_mac.as_deref() {
                    Some(mac) => {
                        let mac = parse_mac("portMac", mac)?;
                        let others = tx.list::<Port>()?;
                        if others.iter().any(|p| p.id != port.id && p.port_mac.as_deref() == Some(mac.as_str())) {
                            return Err(TopologyError::MacInUse(mac));
                        }
                        Some(mac)
                    }
                    None => old.port_mac.clone(),
                };
            } else {
                clear_router_fields(&mut new);
            }
            new.host_id = None;
            new.interface_name = None;
            tx.put(&new)?;
            if let (Some(host), Some(iface)) = (port.host_id, port.interface_name.as_deref()) {
                bind_in(tx, host, port.id, iface)?;
            }
            tx.need::<Port>(&port.key())
        })
    }

    /// Delete a port: its routes (those whose `nextHopPort` it is) go with it, its peer is unlinked and
    /// it leaves its port groups. A bound port may be deleted (MidoNet v5 allows it; the binding goes).
    pub fn delete_port(&self, id: Uuid) -> Result<()> {
        self.write(|tx| delete_port_in(tx, id))
    }

    /// Link two interior ports (`POST ports/{id}/link`).
    pub fn link_ports(&self, port: Uuid, peer: Uuid) -> Result<()> {
        self.write(|tx| link_in(tx, port, peer))
    }

    /// Unlink a port and its peer (`DELETE ports/{id}/link`); a no-op on an unlinked port.
    pub fn unlink_port(&self, port: Uuid) -> Result<()> {
        self.write(|tx| {
            let port: Port = tx.need(&port.to_string())?;
            unlink_in(tx, port)
        })
    }

    /// Bind a port to a host interface (`POST hosts/{id}/ports`).
    pub fn bind_port(&self, host: Uuid, port: Uuid, interface: &str) -> Result<()> {
        self.write(|tx| {
            tx.need::<Host>(&host.to_string())?;
            tx.need::<Port>(&port.to_string())?;
            bind_in(tx, host, port, interface)
        })
    }

    /// Remove a port's binding (`DELETE hosts/{id}/ports/{portId}`).
    pub fn unbind_port(&self, host: Uuid, port: Uuid) -> Result<()> {
        self.write(|tx| {
            tx.need::<Host>(&host.to_string())?;
            let mut p: Port = tx.need(&port.to_string())?;
            if p.host_id != Some(host) {
                return Err(TopologyError::NotBound { port, host });
            }
            p.host_id = None;
            p.interface_name = None;
            tx.put(&p)?;
            Ok(())
        })
    }

    // ---- routes ----

    /// Add a route to `router`.
    pub fn create_route(&self, router: Uuid, mut route: Route) -> Result<Route> {
        assign_id(&mut route.id);
        route.router_id = Some(router);
        route.learned = false;
        self.write(|tx| {
            tx.need::<Router>(&router.to_string())?;
            check_route(tx, router, &route)?;
            tx.create(&route)?;
            Ok(route.clone())
        })
    }

    /// Delete a route.
    pub fn delete_route(&self, id: Uuid) -> Result<()> {
        self.write(|tx| tx.delete::<Route>(&id.to_string()))
    }

    // ---- BGP ----

    /// Add a BGP peer to `router`; its address must be unique on the router.
    pub fn create_bgp_peer(&self, router: Uuid, mut peer: BgpPeer) -> Result<BgpPeer> {
        assign_id(&mut peer.id);
        peer.router_id = Some(router);
        required("asNumber", peer.as_number.as_ref())?;
        let address = required("address", peer.address.as_deref())?;
        let ip: IpAddr =
            address.parse().map_err(|_| TopologyError::InvalidAddress { field: "address", value: address.into() })?;
        peer.address = Some(ip.to_string());
        check_bgp_peer(&peer)?;
        self.write(|tx| {
            tx.need::<Router>(&router.to_string())?;
            let clash =
                tx.list::<BgpPeer>()?.into_iter().any(|p| p.router_id == Some(router) && p.address == peer.address);
            if clash {
                return Err(TopologyError::BgpPeerExists(ip));
            }
            tx.create(&peer)?;
            Ok(peer.clone())
        })
    }

    /// Update a BGP peer's timers, AS and password (the address and router are fixed).
    pub fn update_bgp_peer(&self, peer: BgpPeer) -> Result<BgpPeer> {
        self.write(|tx| {
            let old: BgpPeer = tx.need(&peer.key())?;
            if peer.address.as_deref().is_some_and(|a| a.parse::<IpAddr>().ok().map(|ip| ip.to_string()) != old.address)
            {
                return Err(TopologyError::ImmutableField("address"));
            }
            let new = BgpPeer {
                router_id: old.router_id,
                address: old.address,
                as_number: peer.as_number.or(old.as_number),
                ..peer.clone()
            };
            check_bgp_peer(&new)?;
            tx.put(&new)?;
            Ok(new)
        })
    }

    /// Delete a BGP peer.
    pub fn delete_bgp_peer(&self, id: Uuid) -> Result<()> {
        self.write(|tx| tx.delete::<BgpPeer>(&id.to_string()))
    }

    /// Announce a network from `router`; unique per router.
    pub fn create_bgp_network(&self, router: Uuid, mut net: BgpNetwork) -> Result<BgpNetwork> {
        assign_id(&mut net.id);
        net.router_id = Some(router);
        let addr = required("subnetAddress", net.subnet_address.as_deref())?;
        let len = *required("subnetLength", net.subnet_length.as_ref())?;
        let subnet = prefix("subnetAddress", addr, "subnetLength", len)?.trunc();
        net.subnet_address = Some(subnet.network().to_string());
        self.write(|tx| {
            tx.need::<Router>(&router.to_string())?;
            let clash = tx.list::<BgpNetwork>()?.into_iter().any(|n| {
                n.router_id == Some(router)
                    && n.subnet_address == net.subnet_address
                    && n.subnet_length == net.subnet_length
            });
            if clash {
                return Err(TopologyError::BgpNetworkExists(subnet));
            }
            tx.create(&net)?;
            Ok(net.clone())
        })
    }

    /// Delete a BGP network.
    pub fn delete_bgp_network(&self, id: Uuid) -> Result<()> {
        self.write(|tx| tx.delete::<BgpNetwork>(&id.to_string()))
    }

    // ---- chains and rules ----

    /// Create a chain (its rule list starts empty).
    pub fn create_chain(&self, mut chain: Chain) -> Result<Chain> {
        assign_id(&mut chain.id);
        chain.rule_ids.clear();
        check_name(&chain.name)?;
        self.write(|tx| {
            tx.create(&chain)?;
            Ok(chain.clone())
        })
    }

    /// Delete a chain and its rules, delete the jump rules that target it, and clear every filter
    /// reference to it (routers, bridges, ports, IP address groups).
    pub fn delete_chain(&self, id: Uuid) -> Result<()> {
        self.write(|tx| {
            let chain: Chain = tx.need(&id.to_string())?;
            for rule in &chain.rule_ids {
                tx.delete::<Rule>(&rule.to_string())?;
            }
            tx.delete::<Chain>(&id.to_string())?;
            for rule in tx.list::<Rule>()?.into_iter().filter(|r| r.jump_chain_id == Some(id)) {
                delete_rule_in(tx, rule.id)?;
            }
            let clear = |c: &mut Option<Uuid>| {
                let hit = *c == Some(id);
                if hit {
                    *c = None;
                }
                hit
            };
            for mut r in tx.list::<Router>()? {
                let hit = [
                    clear(&mut r.inbound_filter_id),
                    clear(&mut r.outbound_filter_id),
                    clear(&mut r.local_redirect_chain_id),
                    clear(&mut r.forward_chain_id),
                ];
                if hit.contains(&true) {
                    tx.put(&r)?;
                }
            }
            for mut b in tx.list::<Bridge>()? {
                if [clear(&mut b.inbound_filter_id), clear(&mut b.outbound_filter_id)].contains(&true) {
                    tx.put(&b)?;
                }
            }
            for mut p in tx.list::<Port>()? {
                if [clear(&mut p.inbound_filter_id), clear(&mut p.outbound_filter_id)].contains(&true) {
                    tx.put(&p)?;
                }
            }
            for mut g in tx.list::<IpAddrGroup>()? {
                if [clear(&mut g.inbound_chain_id), clear(&mut g.outbound_chain_id)].contains(&true) {
                    tx.put(&g)?;
                }
            }
            Ok(())
        })
    }

    /// Insert a rule into `chain` at `position` (1-based, default 1, at most the rule count + 1).
    pub fn create_rule(&self, chain: Uuid, mut rule: Rule) -> Result<Rule> {
        assign_id(&mut rule.id);
        rule.chain_id = Some(chain);
        self.write(|tx| {
            let mut rule = rule.clone();
            let mut c: Chain = tx.need(&chain.to_string())?;
            let position = rule.position.unwrap_or(1);
            if position < 1 || position as usize > c.rule_ids.len() + 1 {
                return Err(TopologyError::InvalidPosition { position, max: c.rule_ids.len() as u32 + 1 });
            }
            check_rule(tx, chain, &mut rule)?;
            rule.position = Some(position);
            tx.create(&rule)?;
            c.rule_ids.insert(position as usize - 1, rule.id);
            tx.put(&c)?;
            Ok(rule)
        })
    }

    /// Delete a rule and take it out of its chain.
    pub fn delete_rule(&self, id: Uuid) -> Result<()> {
        self.write(|tx| delete_rule_in(tx, id))
    }

    // ---- hosts and tunnel zones ----

    /// Register a host. `alive` is the host's own report ([`Topology::report_host`]), never the
    /// caller's: a host created alive could never be deleted.
    pub fn create_host(&self, mut host: Host) -> Result<Host> {
        assign_id(&mut host.id);
        host.alive = false;
        check_name(&host.name)?;
        check_interfaces(&host.host_interfaces)?;
        self.write(|tx| {
            tx.create(&host)?;
            Ok(host.clone())
        })
    }

    /// Update what the REST API may change on a host (`PUT hosts/{id}`): `floodingProxyWeight` and
    /// the container fields. Name, addresses, interfaces and `alive` are the host's own (it reports
    /// them) and keep their stored values whatever the body says.
    pub fn update_host(&self, host: Host) -> Result<Host> {
        self.write(|tx| {
            let old: Host = tx.need(&host.key())?;
            let new = Host {
                flooding_proxy_weight: host.flooding_proxy_weight,
                container_weight: host.container_weight,
                container_limit: host.container_limit,
                enforce_container_limit: host.enforce_container_limit,
                ..old
            };
            tx.put(&new)?;
            Ok(new)
        })
    }

    /// What a host reports about itself (the gateway at start and stop): creates it if new, else
    /// sets its name, addresses, interfaces and `alive`, keeping what operators set over REST
    /// (flooding proxy weight, container fields).
    pub fn report_host(&self, mut host: Host) -> Result<Host> {
        assign_id(&mut host.id);
        check_name(&host.name)?;
        check_interfaces(&host.host_interfaces)?;
        self.write(|tx| {
            let new = match tx.get::<Host>(&host.key())? {
                None => {
                    tx.create(&host)?;
                    host.clone()
                }
                Some(old) => {
                    let new = Host {
                        name: host.name.clone(),
                        addresses: host.addresses.clone(),
                        host_interfaces: host.host_interfaces.clone(),
                        alive: host.alive,
                        ..old
                    };
                    tx.put(&new)?;
                    new
                }
            };
            Ok(new)
        })
    }

    /// A host as the REST API shows it: its document, `alive` from the store's liveness state when
    /// the store keeps one ([`Store::host_alive`]).
    pub fn host(&self, id: Uuid) -> Result<Host> {
        let host: Host = self.get(&id.to_string())?;
        self.with_liveness(host)
    }

    /// Every host, as [`Topology::host`] shows each.
    pub fn hosts(&self) -> Result<Vec<Host>> {
        self.list::<Host>()?.into_iter().map(|h| self.with_liveness(h)).collect()
    }

    fn with_liveness(&self, mut host: Host) -> Result<Host> {
        if let Some(alive) = self.store.host_alive(&host.id.to_string())? {
            host.alive = alive;
        }
        Ok(host)
    }

    /// Delete a host. Refused while it is alive (by the store's liveness state when it keeps one,
    /// so a crashed gateway's Host can go) or has ports bound to it; it leaves its tunnel zones.
    pub fn delete_host(&self, id: Uuid) -> Result<()> {
        self.write(|tx| {
            let host: Host = tx.need(&id.to_string())?;
            let alive = self.store.host_alive(&id.to_string())?.unwrap_or(host.alive);
            if alive {
                return Err(TopologyError::HostAlive(id));
            }
            if tx.list::<Port>()?.iter().any(|p| p.host_id == Some(id)) {
                return Err(TopologyError::HostHasBindings(id));
            }
            for mut tz in tx.list::<TunnelZone>()? {
                let before = tz.members.len();
                tz.members.retain(|m| m.host_id != id);
                if tz.members.len() != before {
                    tx.put(&tz)?;
                }
            }
            tx.delete::<Host>(&id.to_string())
        })
    }

    /// Create a tunnel zone (name required; members are added separately).
    pub fn create_tunnel_zone(&self, mut tz: TunnelZone) -> Result<TunnelZone> {
        assign_id(&mut tz.id);
        tz.members.clear();
        check_required_name(&tz.name)?;
        self.write(|tx| {
            tx.create(&tz)?;
            Ok(tz.clone())
        })
    }

    /// Update a tunnel zone's name and type (members are kept).
    pub fn update_tunnel_zone(&self, tz: TunnelZone) -> Result<TunnelZone> {
        check_required_name(&tz.name)?;
        self.write(|tx| {
            let old: TunnelZone = tx.need(&tz.key())?;
            for m in &old.members {
                if let Ok(ip) = m.ip_address.parse() {
                    check_tunnel_address(tz.zone_type, ip)?;
                }
            }
            let new = TunnelZone { members: old.members, ..tz.clone() };
            tx.put(&new)?;
            Ok(new)
        })
    }

    /// Delete a tunnel zone with its memberships.
    pub fn delete_tunnel_zone(&self, id: Uuid) -> Result<()> {
        self.write(|tx| tx.delete::<TunnelZone>(&id.to_string()))
    }

    /// Add a host to a tunnel zone (`POST tunnel_zones/{id}/hosts`).
    pub fn add_tunnel_zone_host(&self, zone: Uuid, member: TunnelZoneHost) -> Result<TunnelZoneHost> {
        let ip: IpAddr = member
            .ip_address
            .parse()
            .map_err(|_| TopologyError::InvalidAddress { field: "ipAddress", value: member.ip_address.clone() })?;
        let member = TunnelZoneHost { tunnel_zone_id: Some(zone), host_id: member.host_id, ip_address: ip.to_string() };
        self.write(|tx| {
            let mut tz: TunnelZone = tx.need(&zone.to_string())?;
            check_tunnel_address(tz.zone_type, ip)?;
            tx.reference::<Host>("hostId", member.host_id)?;
            if tz.members.iter().any(|m| m.host_id == member.host_id) {
                return Err(TopologyError::AlreadyMember { group: zone, member: member.host_id });
            }
            tz.members.push(member.clone());
            tx.put(&tz)?;
            Ok(member.clone())
        })
    }

    /// Remove a host from a tunnel zone.
    pub fn remove_tunnel_zone_host(&self, zone: Uuid, host: Uuid) -> Result<()> {
        self.write(|tx| {
            let mut tz: TunnelZone = tx.need(&zone.to_string())?;
            let before = tz.members.len();
            tz.members.retain(|m| m.host_id != host);
            if tz.members.len() == before {
                return Err(TopologyError::NotMember { group: zone, member: host });
            }
            tx.put(&tz)?;
            Ok(())
        })
    }

    // ---- port groups and IP address groups ----

    /// Create a port group (members are added separately).
    pub fn create_port_group(&self, mut pg: PortGroup) -> Result<PortGroup> {
        assign_id(&mut pg.id);
        pg.port_ids.clear();
        check_name(&pg.name)?;
        self.write(|tx| {
            tx.create(&pg)?;
            Ok(pg.clone())
        })
    }

    /// Update a port group's name, tenant and `stateful` (members are kept).
    pub fn update_port_group(&self, pg: PortGroup) -> Result<PortGroup> {
        check_name(&pg.name)?;
        self.write(|tx| {
            let old: PortGroup = tx.need(&pg.key())?;
            let new = PortGroup { port_ids: old.port_ids, ..pg.clone() };
            tx.put(&new)?;
            Ok(new)
        })
    }

    /// Delete a port group and clear the rule conditions that name it.
    pub fn delete_port_group(&self, id: Uuid) -> Result<()> {
        self.write(|tx| {
            tx.delete::<PortGroup>(&id.to_string())?;
            for mut rule in tx.list::<Rule>()? {
                let c = &mut rule.condition;
                let mut hit = false;
                for g in [&mut c.port_group, &mut c.in_port_group, &mut c.out_port_group] {
                    if *g == Some(id) {
                        *g = None;
                        hit = true;
                    }
                }
                if hit {
                    tx.put(&rule)?;
                }
            }
            Ok(())
        })
    }

    /// Add a port to a port group.
    pub fn add_port_group_port(&self, group: Uuid, port: Uuid) -> Result<()> {
        self.write(|tx| {
            let mut pg: PortGroup = tx.need(&group.to_string())?;
            tx.reference::<Port>("portId", port)?;
            if pg.port_ids.contains(&port) {
                return Err(TopologyError::AlreadyMember { group, member: port });
            }
            pg.port_ids.push(port);
            tx.put(&pg)?;
            Ok(())
        })
    }

    /// Remove a port from a port group.
    pub fn remove_port_group_port(&self, group: Uuid, port: Uuid) -> Result<()> {
        self.write(|tx| {
            let mut pg: PortGroup = tx.need(&group.to_string())?;
            if !pg.port_ids.contains(&port) {
                return Err(TopologyError::NotMember { group, member: port });
            }
            pg.port_ids.retain(|p| *p != port);
            tx.put(&pg)?;
            Ok(())
        })
    }

    /// Create an IP address group (addresses are added separately).
    pub fn create_ip_addr_group(&self, mut g: IpAddrGroup) -> Result<IpAddrGroup> {
        assign_id(&mut g.id);
        g.ip_addr_ports.clear();
        g.rule_ids.clear();
        check_name(&g.name)?;
        self.write(|tx| {
            tx.reference_opt::<Chain>("inboundChainId", g.inbound_chain_id)?;
            tx.reference_opt::<Chain>("outboundChainId", g.outbound_chain_id)?;
            tx.create(&g)?;
            Ok(g.clone())
        })
    }

    /// Delete an IP address group and clear the rule conditions that name it.
    pub fn delete_ip_addr_group(&self, id: Uuid) -> Result<()> {
        self.write(|tx| {
            tx.delete::<IpAddrGroup>(&id.to_string())?;
            for mut rule in tx.list::<Rule>()? {
                let c = &mut rule.condition;
                let mut hit = false;
                for g in [&mut c.ip_addr_group_src, &mut c.ip_addr_group_dst] {
                    if *g == Some(id) {
                        *g = None;
                        hit = true;
                    }
                }
                if hit {
                    tx.put(&rule)?;
                }
            }
            Ok(())
        })
    }

    /// Add an address to an IP address group; `version`, when given, must match the address family.
    pub fn add_ip_addr(&self, group: Uuid, addr: &str, version: Option<u8>) -> Result<IpAddr> {
        let ip: IpAddr =
            addr.parse().map_err(|_| TopologyError::InvalidAddress { field: "addr", value: addr.to_string() })?;
        match (version, ip) {
            (None, _) | (Some(4), IpAddr::V4(_)) | (Some(6), IpAddr::V6(_)) => {}
            (Some(v), _) => return Err(TopologyError::InvalidValue { field: "version", value: v.to_string() }),
        }
        self.write(|tx| {
            let mut g: IpAddrGroup = tx.need(&group.to_string())?;
            if g.ip_addr_ports.iter().any(|a| a.ip_address == ip) {
                return Err(TopologyError::AddressInGroup { group, addr: ip });
            }
            g.ip_addr_ports.push(IpAddrPorts { ip_address: ip, port_ids: Vec::new() });
            tx.put(&g)?;
            Ok(ip)
        })
    }

    /// Remove an address from an IP address group.
    pub fn remove_ip_addr(&self, group: Uuid, addr: IpAddr) -> Result<()> {
        self.write(|tx| {
            let mut g: IpAddrGroup = tx.need(&group.to_string())?;
            let before = g.ip_addr_ports.len();
            g.ip_addr_ports.retain(|a| a.ip_address != addr);
            if g.ip_addr_ports.len() == before {
                return Err(TopologyError::AddressNotInGroup { group, addr });
            }
            tx.put(&g)?;
            Ok(())
        })
    }
}

// ---- validation and consequences, inside a transaction ----

fn assign_id(id: &mut Uuid) {
    if id.is_nil() {
        *id = Uuid::new_v4();
    }
}

fn check_name(name: &Option<String>) -> Result<()> {
    match name {
        Some(n) if n.chars().count() > 255 => Err(TopologyError::NameTooLong(n.chars().count())),
        _ => Ok(()),
    }
}

/// A host's interfaces are addressed by name (`hosts/{id}/interfaces/{name}`, a port's
/// `interfaceName`): each needs one, and no two the same.
fn check_interfaces(interfaces: &[Interface]) -> Result<()> {
    for (i, iface) in interfaces.iter().enumerate() {
        if iface.name.is_empty() {
            return Err(TopologyError::MissingField("hostInterfaces.name"));
        }
        if interfaces[..i].iter().any(|other| other.name == iface.name) {
            return Err(TopologyError::DuplicateName { field: "hostInterfaces", name: iface.name.clone() });
        }
    }
    Ok(())
}

fn check_required_name(name: &Option<String>) -> Result<()> {
    match name {
        None => Err(TopologyError::MissingField("name")),
        Some(n) if n.is_empty() => Err(TopologyError::MissingField("name")),
        _ => check_name(name),
    }
}

fn check_router<S: Store>(tx: &mut Tx<'_, S>, r: &Router) -> Result<()> {
    check_name(&r.name)?;
    tx.reference_opt::<Chain>("inboundFilterId", r.inbound_filter_id)?;
    tx.reference_opt::<Chain>("outboundFilterId", r.outbound_filter_id)?;
    tx.reference_opt::<Chain>("localRedirectChainId", r.local_redirect_chain_id)?;
    tx.reference_opt::<Chain>("forwardChainId", r.forward_chain_id)
}

fn check_bridge<S: Store>(tx: &mut Tx<'_, S>, b: &Bridge) -> Result<()> {
    check_name(&b.name)?;
    tx.reference_opt::<Chain>("inboundFilterId", b.inbound_filter_id)?;
    tx.reference_opt::<Chain>("outboundFilterId", b.outbound_filter_id)
}

fn check_port_common<S: Store>(tx: &mut Tx<'_, S>, p: &Port) -> Result<()> {
    tx.reference_opt::<Chain>("inboundFilterId", p.inbound_filter_id)?;
    tx.reference_opt::<Chain>("outboundFilterId", p.outbound_filter_id)?;
    match (p.host_id, p.interface_name.as_deref()) {
        (Some(_), None) | (Some(_), Some("")) => Err(TopologyError::MissingField("interfaceName")),
        (None, Some(_)) => Err(TopologyError::MissingField("hostId")),
        _ => Ok(()),
    }
}

fn check_vlan(vlan: Option<u16>) -> Result<()> {
    match vlan {
        Some(v) if v > 4095 => Err(TopologyError::InvalidValue { field: "vlanId", value: v.to_string() }),
        _ => Ok(()),
    }
}

fn check_vni(vni: Option<u32>) -> Result<()> {
    match vni {
        Some(v) if v > 0xFF_FFFF => Err(TopologyError::InvalidValue { field: "rtrPortVni", value: v.to_string() }),
        _ => Ok(()),
    }
}

/// The lowest tunnel key in `1..=MAX_TUNNEL_KEY` no port uses.
fn free_tunnel_key(ports: &[Port]) -> Result<u64> {
    lowest_free_key(ports, u64::from(MAX_TUNNEL_KEY))
}

/// The lowest tunnel key in `1..=max` no port uses.
fn lowest_free_key(ports: &[Port], max: u64) -> Result<u64> {
    let mut used: Vec<u64> = ports.iter().filter_map(|p| p.tunnel_key).filter(|&k| k > 0).collect();
    used.sort_unstable();
    used.dedup();
    let mut next = 1;
    for key in used {
        if key != next {
            break;
        }
        next += 1;
    }
    if next > max {
        return Err(TopologyError::NoFreeTunnelKey);
    }
    Ok(next)
}

/// A BGP peer's AS and timers, on create and update alike.
fn check_bgp_peer(peer: &BgpPeer) -> Result<()> {
    if let Some(asn) = peer.as_number.filter(|&a| a == 0) {
        return Err(TopologyError::InvalidValue { field: "asNumber", value: asn.to_string() });
    }
    if let (Some(keep), Some(hold)) = (peer.keep_alive, peer.hold_time) {
        if hold != 0 && (hold < 3 || keep >= hold) {
            return Err(TopologyError::InvalidValue { field: "holdTime", value: hold.to_string() });
        }
    }
    Ok(())
}

/// GRE and VXLAN tunnels run over the IPv4 underlay; VTEP zones are not compiled.
fn check_tunnel_address(zone_type: TunnelZoneType, ip: IpAddr) -> Result<()> {
    if ip.is_ipv6() && zone_type != TunnelZoneType::Vtep {
        return Err(TopologyError::TunnelAddressNotIpv4(ip));
    }
    Ok(())
}

/// Refuses to delete a router or bridge while a rule names it as `traversedDevice`.
fn refuse_if_traversed<S: Store>(tx: &mut Tx<'_, S>, device: Uuid) -> Result<()> {
    match tx.list::<Rule>()?.into_iter().find(|r| r.condition.traversed_device == Some(device)) {
        Some(rule) => Err(TopologyError::DeviceNamedByRule { device, rule: rule.id }),
        None => Ok(()),
    }
}

/// A jump from `chain` to `target` must close no loop, and no path of jumps through it may nest
/// more than [`MAX_JUMP_DEPTH`] chains (evaluation's fixed stack); the snapshot builder refuses both.
fn check_jump<S: Store>(tx: &mut Tx<'_, S>, chain: Uuid, target: Uuid) -> Result<()> {
    let mut down: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut up: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for rule in tx.list::<Rule>()? {
        if let (RuleType::Jump, Some(from), Some(to)) = (rule.rule_type, rule.chain_id, rule.jump_chain_id) {
            down.entry(from).or_default().push(to);
            up.entry(to).or_default().push(from);
        }
    }
    if reaches(&down, target, chain) {
        return Err(TopologyError::JumpLoop { chain, target });
    }
    let depth = longest(&up, chain, &mut HashMap::new(), &mut Vec::new())
        + longest(&down, target, &mut HashMap::new(), &mut Vec::new());
    if depth as usize > MAX_JUMP_DEPTH {
        return Err(TopologyError::JumpTooDeep { chain, target, depth, max: MAX_JUMP_DEPTH });
    }
    Ok(())
}

/// Whether `to` is reachable from `from` along `edges`.
fn reaches(edges: &HashMap<Uuid, Vec<Uuid>>, from: Uuid, to: Uuid) -> bool {
    let mut seen = vec![from];
    let mut todo = vec![from];
    while let Some(c) = todo.pop() {
        if c == to {
            return true;
        }
        for &n in edges.get(&c).into_iter().flatten() {
            if !seen.contains(&n) {
                seen.push(n);
                todo.push(n);
            }
        }
    }
    false
}

/// Chains on the longest path from `from` along `edges` (`from` included). An existing loop (a
/// store written before loops were refused) is cut where it closes.
fn longest(edges: &HashMap<Uuid, Vec<Uuid>>, from: Uuid, memo: &mut HashMap<Uuid, u32>, path: &mut Vec<Uuid>) -> u32 {
    if let Some(&d) = memo.get(&from) {
        return d;
    }
    path.push(from);
    let mut best = 0;
    for &n in edges.get(&from).into_iter().flatten() {
        if !path.contains(&n) {
            best = best.max(longest(edges, n, memo, path));
        }
    }
    path.pop();
    memo.insert(from, best + 1);
    best + 1
}

fn clear_router_fields(p: &mut Port) {
    p.port_address = None;
    p.network_address = None;
    p.network_length = None;
    p.port_subnet = None;
    p.port_mac = None;
    p.rtr_port_vni = None;
    p.off_ramp_vxlan = None;
    p.service_container_id = None;
}

/// Fill both address forms of a router port from whichever was given; returns its IPv4 subnets
/// (host address + prefix length).
fn normalise_router_port(p: &mut Port) -> Result<Vec<Ipv4Net>> {
    check_vni(p.rtr_port_vni)?;
    p.vlan_id = None;
    p.vtep_id = None;
    let subnets: Vec<IpNet> = match p.port_subnet.as_deref() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|s| s.parse().map_err(|_| TopologyError::InvalidAddress { field: "portSubnet", value: s.clone() }))
            .collect::<Result<_>>()?,
        _ => {
            let addr = p.port_address.as_deref().ok_or(TopologyError::MissingField("portAddress"))?;
            let addr = parse_v4("portAddress", addr)?;
            let net = p.network_address.as_deref().ok_or(TopologyError::MissingField("networkAddress"))?;
            let len = p.network_length.ok_or(TopologyError::MissingField("networkLength"))?;
            let net = prefix("networkAddress", net, "networkLength", len)?;
            if !net.contains(&addr) {
                return Err(TopologyError::AddressOutsideNetwork { address: addr, network: net });
            }
            vec![IpNet::V4(Ipv4Net::new(addr, net.prefix_len()).expect("length checked"))]
        }
    };
    p.port_subnet = Some(subnets.iter().map(|s| s.to_string()).collect());
    let v4: Vec<Ipv4Net> = subnets.iter().filter_map(|s| if let IpNet::V4(n) = s { Some(*n) } else { None }).collect();
    match v4.first() {
        Some(first) => {
            p.port_address = Some(first.addr().to_string());
            p.network_address = Some(first.network().to_string());
            p.network_length = Some(first.prefix_len().into());
        }
        None => {
            p.port_address = None;
            p.network_address = None;
            p.network_length = None;
        }
    }
    Ok(v4)
}

/// The routes MidoNet adds with a router port: the local /32 to the router itself and the connected
/// subnet out of the port.
fn port_routes(router: Uuid, port: Uuid, subnet: Ipv4Net) -> [Route; 2] {
    let route = |dst: Ipv4Net, route_type| Route {
        id: Uuid::new_v4(),
        router_id: Some(router),
        next_hop_port: Some(port),
        attributes: None,
        dst_network_addr: Some(dst.network().to_string()),
        dst_network_length: Some(dst.prefix_len().into()),
        src_network_addr: Some(Ipv4Addr::UNSPECIFIED.to_string()),
        src_network_length: Some(0),
        next_hop_gateway: None,
        weight: PORT_ROUTE_WEIGHT,
        route_type,
        learned: false,
    };
    [
        route(Ipv4Net::new(subnet.addr(), 32).expect("32 is valid"), RouteType::Local),
        route(subnet.trunc(), RouteType::Normal),
    ]
}

/// A locally administered unicast MAC (`02:` prefix) not used by any port.
fn fresh_mac(ports: &[Port]) -> String {
    loop {
        let b = Uuid::new_v4().into_bytes();
        let mac = format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4]);
        if !ports.iter().any(|p| p.port_mac.as_deref() == Some(mac.as_str())) {
            return mac;
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`, normalised to lower case.
fn parse_mac(field: &'static str, s: &str) -> Result<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(TopologyError::InvalidMac { field, value: s.to_string() })
    }
}

fn parse_v4(field: &'static str, s: &str) -> Result<Ipv4Addr> {
    s.parse().map_err(|_| TopologyError::InvalidAddress { field, value: s.to_string() })
}

fn prefix(addr_field: &'static str, addr: &str, len_field: &'static str, len: u32) -> Result<Ipv4Net> {
    let addr = parse_v4(addr_field, addr)?;
    if len > 32 {
        return Err(TopologyError::InvalidPrefixLength { field: len_field, length: len });
    }
    Ok(Ipv4Net::new(addr, len as u8).expect("length checked"))
}

fn required<'a, T: ?Sized>(field: &'static str, v: Option<&'a T>) -> Result<&'a T> {
    v.ok_or(TopologyError::MissingField(field))
}

fn check_route<S: Store>(tx: &mut Tx<'_, S>, router: Uuid, r: &Route) -> Result<()> {
    let dst = required("dstNetworkAddr", r.dst_network_addr.as_deref())?;
    let dst_len = *required("dstNetworkLength", r.dst_network_length.as_ref())?;
    let src = required("srcNetworkAddr", r.src_network_addr.as_deref())?;
    let src_len = *required("srcNetworkLength", r.src_network_length.as_ref())?;
    prefix("dstNetworkAddr", dst, "dstNetworkLength", dst_len)?;
    prefix("srcNetworkAddr", src, "srcNetworkLength", src_len)?;
    if let Some(gw) = r.next_hop_gateway.as_deref() {
        parse_v4("nextHopGateway", gw)?;
    }
    match r.next_hop_port {
        None if r.route_type == RouteType::Normal => Err(TopologyError::NextHopPortRequired),
        None => Ok(()),
        Some(port) => {
            let p: Port = tx.reference("nextHopPort", port)?;
            if p.device_id != Some(router) || !p.port_type.is_router() {
                return Err(TopologyError::PortNotOnRouter { port, router });
            }
            Ok(())
        }
    }
}

fn check_cidr(
    addr_field: &'static str,
    addr: &Option<String>,
    len_field: &'static str,
    len: Option<u32>,
) -> Result<()> {
    let Some(addr) = addr else { return Ok(()) };
    let ip: IpAddr =
        addr.parse().map_err(|_| TopologyError::InvalidAddress { field: addr_field, value: addr.clone() })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len {
        Some(l) if l > max => Err(TopologyError::InvalidPrefixLength { field: len_field, length: l }),
        _ => Ok(()),
    }
}

fn check_condition<S: Store>(tx: &mut Tx<'_, S>, c: &Condition) -> Result<()> {
    for port in c.in_ports.iter().chain(&c.out_ports) {
        tx.reference::<Port>("inPorts/outPorts", *port)?;
    }
    tx.reference_opt::<PortGroup>("portGroup", c.port_group)?;
    tx.reference_opt::<PortGroup>("inPortGroup", c.in_port_group)?;
    tx.reference_opt::<PortGroup>("outPortGroup", c.out_port_group)?;
    tx.reference_opt::<IpAddrGroup>("ipAddrGroupSrc", c.ip_addr_group_src)?;
    tx.reference_opt::<IpAddrGroup>("ipAddrGroupDst", c.ip_addr_group_dst)?;
    if let Some(dev) = c.traversed_device {
        if tx.get::<Router>(&dev.to_string())?.is_none() && tx.get::<Bridge>(&dev.to_string())?.is_none() {
            return Err(TopologyError::ReferenceNotFound { field: "traversedDevice", kind: Kind::Router, id: dev });
        }
    }
    for (field, mac) in
        [("dlSrc", &c.dl_src), ("dlSrcMask", &c.dl_src_mask), ("dlDst", &c.dl_dst), ("dlDstMask", &c.dl_dst_mask)]
    {
        if let Some(mac) = mac {
            parse_mac(field, mac)?;
        }
    }
    check_cidr("nwSrcAddress", &c.nw_src_address, "nwSrcLength", c.nw_src_length)?;
    check_cidr("nwDstAddress", &c.nw_dst_address, "nwDstLength", c.nw_dst_length)?;
    check_cidr("icmpDataSrcIpAddress", &c.icmp_data_src_ip_address, "icmpDataSrcIpLength", c.icmp_data_src_ip_length)?;
    check_cidr("icmpDataDstIpAddress", &c.icmp_data_dst_ip_address, "icmpDataDstIpLength", c.icmp_data_dst_ip_length)?;
    for (field, range) in [("tpSrc", c.tp_src), ("tpDst", c.tp_dst)] {
        if let Some(r) = range {
            if r.start > r.end || r.end > 65535 {
                return Err(TopologyError::InvalidRange { field, start: r.start, end: r.end });
            }
        }
    }
    if let Some(vlan) = c.vlan {
        if vlan > 4095 {
            return Err(TopologyError::InvalidValue { field: "vlan", value: vlan.to_string() });
        }
    }
    Ok(())
}

fn check_rule<S: Store>(tx: &mut Tx<'_, S>, chain: Uuid, r: &mut Rule) -> Result<()> {
    check_condition(tx, &r.condition)?;
    let nat = matches!(r.rule_type, RuleType::Dnat | RuleType::Snat | RuleType::RevDnat | RuleType::RevSnat);
    if nat && r.flow_action.is_none() {
        return Err(TopologyError::MissingField("flowAction"));
    }
    if !nat {
        r.flow_action = None;
    }
    match r.rule_type {
        RuleType::Jump => {
            let target = *required("jumpChainId", r.jump_chain_id.as_ref())?;
            if target == chain {
                return Err(TopologyError::SelfJump(chain));
            }
            let c: Chain = tx.reference("jumpChainId", target)?;
            check_jump(tx, chain, target)?;
            r.jump_chain_name = c.name;
        }
        _ => {
            r.jump_chain_id = None;
            r.jump_chain_name = None;
        }
    }
    match r.rule_type {
        RuleType::Dnat | RuleType::Snat => {
            let targets = match r.nat_targets.as_deref() {
                Some(t) if !t.is_empty() => t,
                _ => return Err(TopologyError::MissingField("natTargets")),
            };
            for t in targets {
                let from = parse_v4("addressFrom", &t.address_from)?;
                let to = parse_v4("addressTo", &t.address_to)?;
                if from > to {
                    return Err(TopologyError::InvalidRange {
                        field: "natTargets",
                        start: from.into(),
                        end: to.into(),
                    });
                }
                if t.port_from > t.port_to {
                    return Err(TopologyError::InvalidRange {
                        field: "natTargets",
                        start: t.port_from.into(),
                        end: t.port_to.into(),
                    });
                }
            }
        }
        _ => r.nat_targets = None,
    }
    if r.rule_type == RuleType::L2Transform {
        tx.reference_opt::<Port>("targetPortId", r.target_port_id)?;
    }
    Ok(())
}

fn delete_rule_in<S: Store>(tx: &mut Tx<'_, S>, id: Uuid) -> Result<()> {
    let rule: Rule = tx.need(&id.to_string())?;
    tx.delete::<Rule>(&id.to_string())?;
    if let Some(chain) = rule.chain_id {
        if let Some(mut c) = tx.get::<Chain>(&chain.to_string())? {
            c.rule_ids.retain(|r| *r != id);
            tx.put(&c)?;
        }
    }
    Ok(())
}

fn link_in<S: Store>(tx: &mut Tx<'_, S>, a: Uuid, b: Uuid) -> Result<()> {
    if a == b {
        return Err(TopologyError::LinkToSelf(a));
    }
    let mut pa: Port = tx.need(&a.to_string())?;
    let mut pb: Port = tx.reference("peerId", b)?;
    for p in [&pa, &pb] {
        if p.peer_id.is_some() {
            return Err(TopologyError::PortAlreadyLinked(p.id));
        }
        if p.host_id.is_some() {
            return Err(TopologyError::PortBound(p.id));
        }
    }
    if pa.device_id == pb.device_id {
        return Err(TopologyError::LinkSameDevice);
    }
    if !pa.port_type.is_router() && !pb.port_type.is_router() {
        return Err(TopologyError::BridgeToBridgeLink);
    }
    pa.peer_id = Some(b);
    pb.peer_id = Some(a);
    tx.put(&pa)?;
    tx.put(&pb)?;
    Ok(())
}

fn unlink_in<S: Store>(tx: &mut Tx<'_, S>, mut port: Port) -> Result<()> {
    let Some(peer) = port.peer_id.take() else { return Ok(()) };
    tx.put(&port)?;
    if let Some(mut p) = tx.get::<Port>(&peer.to_string())? {
        p.peer_id = None;
        tx.put(&p)?;
    }
    Ok(())
}

fn bind_in<S: Store>(tx: &mut Tx<'_, S>, host: Uuid, port: Uuid, interface: &str) -> Result<()> {
    if interface.is_empty() {
        return Err(TopologyError::MissingField("interfaceName"));
    }
    tx.reference::<Host>("hostId", host)?;
    let mut p: Port = tx.need(&port.to_string())?;
    if p.peer_id.is_some() {
        return Err(TopologyError::PortLinked(port));
    }
    if let Some(other) = p.host_id.filter(|h| *h != host) {
        return Err(TopologyError::BoundElsewhere { port, host: other });
    }
    let taken = tx
        .list::<Port>()?
        .into_iter()
        .any(|o| o.id != port && o.host_id == Some(host) && o.interface_name.as_deref() == Some(interface));
    if taken {
        return Err(TopologyError::InterfaceInUse { host, interface: interface.to_string() });
    }
    p.host_id = Some(host);
    p.interface_name = Some(interface.to_string());
    tx.put(&p)?;
    Ok(())
}

fn delete_port_in<S: Store>(tx: &mut Tx<'_, S>, id: Uuid) -> Result<()> {
    let port: Port = tx.need(&id.to_string())?;
    // Dropping the port from the rule instead would widen it: an empty inPorts matches any port.
    let named = |r: &Rule| {
        r.condition.in_ports.contains(&id) || r.condition.out_ports.contains(&id) || r.target_port_id == Some(id)
    };
    if let Some(rule) = tx.list::<Rule>()?.into_iter().find(named) {
        return Err(TopologyError::PortNamedByRule { port: id, rule: rule.id });
    }
    unlink_in(tx, port)?;
    for route in tx.list::<Route>()?.into_iter().filter(|r| r.next_hop_port == Some(id)) {
        tx.delete::<Route>(&route.key())?;
    }
    for mut pg in tx.list::<PortGroup>()?.into_iter().filter(|g| g.port_ids.contains(&id)) {
        pg.port_ids.retain(|p| *p != id);
        tx.put(&pg)?;
    }
    tx.delete::<Port>(&id.to_string())
}

#[cfg(test)]
mod tests;
