//! The snapshot compiler: the stored topology, read at one store version, turned into the
//! immutable [`Snapshot`] the worker cores simulate against.
//!
//! Devices are added in store order (by UUID within each kind), so a rebuild after an unrelated
//! change gives every device the index it had and the cores invalidate only the flows of what
//! changed (`Snapshot::changed_tags`). What the store holds and the data path does not need is
//! left out on purpose: the automatic routes of router ports (the snapshot builder derives the same
//! `Local` and connected routes from the port addresses), learned-route bookkeeping, mirrors, QoS.
//!
//! Bindings: a port bound on the gateway's own host (`local_host`) is attached to the DPDK port
//! whose name is its `interfaceName`; a port bound on another host is reached through that host's
//! tunnel-zone address with the port's tunnel key. A binding that cannot be honoured (an interface
//! the gateway does not have, a remote host in no tunnel zone) leaves the port unplugged and is
//! reported in [`Compiled::warnings`]; it is a configuration state an operator fixes, not an error
//! that should stop every other update from reaching the cores. A rule or route the data path
//! cannot represent is an error: silently dropping a drop rule would open a hole.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use flowtable::chain::{
    Condition as FtCondition, Field, FlowDirection, FragmentPolicy as FtFragmentPolicy, MacMask, MacMatch, NatAction,
    NatKind, NatRule, NatTarget as FtNatTarget, PortRange, Rule as FtRule, RuleKind,
};
use flowtable::topology::{
    BridgeId, ChainId, DeviceId, Encap, HostId, IpAddrGroupId, PortGroupId, PortId, Route as FtRoute, RouteOrigin,
    RouteSet, RouteType as FtRouteType, RouterId, Snapshot, SnapshotBuilder, TopologyError as SnapshotError, Underlay,
    Uuid as FtUuid, MAX_TUNNEL_KEY,
};
use flowtable::wire::EthernetAddress;
use ipnet::IpNet;
use thiserror::Error;
use uuid::Uuid;

use crate::model::{
    Bridge, Chain, Condition, FlowAction, FragmentPolicy, IpAddrGroup, Port, PortGroup, Resource, Route, RouteType,
    Router, Rule, RuleType, TunnelZone, TunnelZoneType,
};
use crate::store::{Kind, Op, Store, StoreError};
use crate::topology::{Topology, TopologyError};

/// How many times a compile re-reads the store when writes keep landing while it reads.
const READ_ATTEMPTS: usize = 8;

/// What the compiler needs to know about the gateway it compiles for.
#[derive(Debug, Clone, Default)]
pub struct CompileContext {
    /// The snapshot's generation (the publisher requires it to grow; the store version works).
    pub generation: u64,
    /// The gateway's own host id: ports bound on it are local.
    pub local_host: Option<Uuid>,
    /// The gateway's DPDK ports: interface name (the `[[port]] name`) and DPDK port id.
    pub interfaces: Vec<(String, u16)>,
    /// The gateway's own tunnel endpoint (`[underlay]` of the appliance's config): tunnels to remote
    /// hosts leave and arrive there. `None`: ports bound on other hosts are unreachable.
    pub underlay: Option<Underlay>,
}

/// A compiled snapshot and what the compiler had to leave out.
#[derive(Debug)]
pub struct Compiled {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The store version it shows.
    pub store_version: u64,
    /// Bindings that could not be honoured, one sentence each.
    pub warnings: Vec<String>,
}

/// Why the stored topology could not be compiled. The cores keep the previous snapshot.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The store could not be read.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    /// The topology service refused a read.
    #[error("reading the topology: {0}")]
    Topology(#[from] TopologyError),
    /// The store kept changing while being read.
    #[error("the store changed during each of {READ_ATTEMPTS} reads; try again")]
    Unstable,
    /// An object the data path cannot represent.
    #[error("{kind} {id}: {problem}")]
    Invalid {
        /// The object's type.
        kind: &'static str,
        /// Its id.
        id: Uuid,
        /// What is wrong.
        problem: String,
    },
    /// The snapshot builder refused the result (a dangling reference, a jump loop, ...).
    #[error("building the snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

impl CompileError {
    /// Whether the topology itself was refused (an object the data path cannot represent, or a
    /// snapshot the builder refuses), not a failed read.
    pub fn is_refusal(&self) -> bool {
        matches!(self, CompileError::Invalid { .. } | CompileError::Snapshot(_))
    }
}

fn invalid(kind: &'static str, id: Uuid, problem: impl Into<String>) -> CompileError {
    CompileError::Invalid { kind, id, problem: problem.into() }
}

fn ft(id: Uuid) -> FtUuid {
    FtUuid(id.as_u128())
}

/// Everything the compiler reads, at one store version, each list sorted by id.
struct Model {
    version: u64,
    routers: Vec<Router>,
    bridges: Vec<Bridge>,
    ports: Vec<ModelPort>,
    routes: Vec<ModelRoute>,
    chains: Vec<Chain>,
    rules: Vec<Rule>,
    tunnel_zones: Vec<TunnelZone>,
    port_groups: Vec<PortGroup>,
    ip_addr_groups: Vec<IpAddrGroup>,
    /// (router, route) of every route naming a router: a router's routes, in id order, without a
    /// walk of every route.
    routes_by_router: BTreeSet<(Uuid, Uuid)>,
    /// (device, port) of every port naming a device.
    ports_by_device: BTreeSet<(Uuid, Uuid)>,
    /// What changed since the route sets a [`ModelCache`] keeps were compiled.
    dirty: Dirty,
}

/// The objects a route set depends on that changed since it was compiled: a route marks its router
/// (before and after the change), a port itself and its device (before and after), a router itself.
#[derive(Default)]
struct Dirty {
    /// A change that could not be attributed (a key that is not a UUID): reuse nothing.
    all: bool,
    routers: HashSet<Uuid>,
    ports: HashSet<Uuid>,
}

/// An element of a [`Model`] list: a stored object as decoded, or what the compiler reads from it
/// alone, worked out once when the object enters the model (a compile after one write then does
/// not parse the addresses of every unchanged route and port again).
trait ModelEntry: Sized {
    /// The stored type.
    type Object: Resource;
    /// The entry for a decoded object.
    fn from_object(object: Self::Object) -> Self;
    /// The store id (the list's sort key).
    fn entry_key(&self) -> String;
    /// For a route or a port: its id and the router (device) it names.
    fn owned(&self) -> Option<(Uuid, Option<Uuid>)> {
        None
    }
}

impl<T: Resource> ModelEntry for T {
    type Object = T;
    fn from_object(object: T) -> T {
        object
    }
    fn entry_key(&self) -> String {
        self.key()
    }
}

/// A port with its MAC and addresses parsed.
struct ModelPort {
    port: Port,
    /// `portMac`, if usable.
    mac: Option<EthernetAddress>,
    /// [`port_addresses`].
    addresses: Vec<IpNet>,
}

impl ModelEntry for ModelPort {
    type Object = Port;
    fn from_object(port: Port) -> ModelPort {
        let mac = port.port_mac.as_deref().and_then(parse_mac);
        let addresses = port_addresses(&port);
        ModelPort { port, mac, addresses }
    }
    fn entry_key(&self) -> String {
        self.port.key()
    }
    fn owned(&self) -> Option<(Uuid, Option<Uuid>)> {
        Some((self.port.id, self.port.device_id))
    }
}

/// A route as the compiler uses it (nothing else of a stored route reaches the snapshot).
struct ModelRoute {
    id: Uuid,
    router: Option<Uuid>,
    weight: u32,
    form: RouteForm,
}

impl ModelEntry for ModelRoute {
    type Object = Route;
    fn from_object(r: Route) -> ModelRoute {
        ModelRoute { id: r.id, router: r.router_id, weight: r.weight, form: RouteForm::of(&r) }
    }
    fn entry_key(&self) -> String {
        self.id.to_string()
    }
    fn owned(&self) -> Option<(Uuid, Option<Uuid>)> {
        Some((self.id, self.router))
    }
}

/// What a route is to the compiler, read from the route alone.
#[derive(Debug, PartialEq)]
enum RouteForm {
    /// Refused (`CompileError::Invalid` of the route, with this problem): its networks, its type
    /// or a normal route's missing next-hop port.
    Refused(String),
    /// A local route: the builder adds each port address's own.
    Local,
    /// A blackhole or reject route: its destination alone.
    WithoutPort { dst: IpNet, kind: FtRouteType },
    /// A normal route. A gateway that does not parse is refused only once the route's port is
    /// known to be in the snapshot (a route out of a port left out is skipped first, with a warning).
    Normal { src: IpNet, dst: IpNet, port: Uuid, gateway: Result<Option<IpAddr>, String> },
}

impl RouteForm {
    fn of(r: &Route) -> RouteForm {
        let read = || -> Result<RouteForm, String> {
            let (src, dst) = route_networks(r)?;
            Ok(match route_kind(r)? {
                None => RouteForm::Local,
                Some(FtRouteType::Normal) => {
                    RouteForm::Normal { src, dst, port: route_port(r)?, gateway: route_gateway(r) }
                }
                Some(kind) => RouteForm::WithoutPort { dst, kind },
            })
        };
        read().unwrap_or_else(RouteForm::Refused)
    }
}

/// Every stored object of `E`'s kind, as model entries.
fn list<S: Store, E: ModelEntry>(topology: &Topology<S>) -> Result<Vec<E>, CompileError> {
    Ok(topology.list::<E::Object>()?.into_iter().map(E::from_object).collect())
}

impl Model {
    fn read<S: Store>(topology: &Topology<S>) -> Result<Model, CompileError> {
        for _ in 0..READ_ATTEMPTS {
            let version = topology.store().version()?;
            let ports: Vec<ModelPort> = list(topology)?;
            let routes: Vec<ModelRoute> = list(topology)?;
            let model = Model {
                version,
                routers: list(topology)?,
                bridges: list(topology)?,
                routes_by_router: routes.iter().filter_map(|r| Some((r.router?, r.id))).collect(),
                ports_by_device: ports.iter().filter_map(|p| Some((p.port.device_id?, p.port.id))).collect(),
                ports,
                routes,
                chains: list(topology)?,
                rules: list(topology)?,
                tunnel_zones: list(topology)?,
                port_groups: list(topology)?,
                ip_addr_groups: list(topology)?,
                dirty: Dirty::default(),
            };
            if topology.store().version()? == version {
                return Ok(model);
            }
        }
        Err(CompileError::Unstable)
    }

    /// Re-reads one changed object of a kind the compiler uses.
    fn update<S: Store>(&mut self, topology: &Topology<S>, kind: Kind, id: &str) -> Result<(), CompileError> {
        let owners = match kind {
            Kind::Router => upsert(topology, &mut self.routers, id),
            Kind::Network => upsert(topology, &mut self.bridges, id),
            Kind::Port => upsert(topology, &mut self.ports, id),
            Kind::Route => upsert(topology, &mut self.routes, id),
            Kind::Chain => upsert(topology, &mut self.chains, id),
            Kind::Rule => upsert(topology, &mut self.rules, id),
            Kind::TunnelZone => upsert(topology, &mut self.tunnel_zones, id),
            Kind::PortGroup => upsert(topology, &mut self.port_groups, id),
            Kind::IpAddrGroup => upsert(topology, &mut self.ip_addr_groups, id),
            _ => return Ok(()),
        }?;
        self.changed(kind, id, owners);
        Ok(())
    }

    /// Keeps the indices and the dirty sets up to date after object `id` of `kind` changed from
    /// (and to) what `owners` says.
    fn changed(&mut self, kind: Kind, id: &str, owners: Owners) {
        let index = match kind {
            Kind::Route => &mut self.routes_by_router,
            Kind::Port => &mut self.ports_by_device,
            Kind::Router => {
                match id.parse() {
                    Ok(router) => {
                        self.dirty.routers.insert(router);
                    }
                    Err(_) => self.dirty.all = true,
                }
                return;
            }
            _ => return,
        };
        for (object, owner) in owners.iter().flatten() {
            if kind == Kind::Port {
                self.dirty.ports.insert(*object);
            }
            let Some(owner) = owner else { continue };
            index.remove(&(*owner, *object));
            self.dirty.routers.insert(*owner);
        }
        if let Some((object, Some(owner))) = owners[1] {
            index.insert((owner, object));
        }
    }

    /// The route with id `id` (the list is sorted by the id's string, which sorts as the UUID).
    fn route(&self, id: Uuid) -> Option<&ModelRoute> {
        self.routes.binary_search_by_key(&id, |r| r.id).ok().map(|i| &self.routes[i])
    }
}

/// What a changed object was owned by before and after the change ([`ModelEntry::owned`]).
type Owners = [Option<(Uuid, Option<Uuid>)>; 2];

/// Compiles the stored topology for the gateway `ctx` describes, reading all of it.
pub fn compile<S: Store>(topology: &Topology<S>, ctx: &CompileContext) -> Result<Compiled, CompileError> {
    Ok(build(&Model::read(topology)?, ctx, None)?.0)
}

/// The decoded model kept between compiles, brought up to date from the store's change feed so a
/// compile after one write reads (and decodes) only the objects that write touched. Reading and
/// decoding every document dominates a full compile (about 90% at 10,000 routers).
///
/// It also keeps the compiled routes of every router of the last snapshot it built ([`RouteCache`]):
/// the next compile gives a router whose routes and ports did not change the same shared
/// [`RouteSet`] instead of building its routing tables again, so a write costs the routes of the
/// routers it touched, not of every router.
#[derive(Default)]
pub struct ModelCache {
    model: Option<Model>,
    routes: RouteCache,
}

/// The route sets of the last snapshot a [`ModelCache`] built, by router, with what each depended
/// on. Its model's [`Dirty`] sets name what changed since.
#[derive(Default)]
struct RouteCache {
    routers: HashMap<Uuid, CachedRoutes>,
    /// Configured route id -> its router, over every set: the builder's duplicate-id check for the
    /// sets it is given instead of their routes.
    owners: HashMap<FtUuid, Uuid>,
}

struct CachedRoutes {
    set: RouteSet,
    /// The ports the set was compiled from (the router's own and its routes' next hops), with
    /// their snapshot index then (`None`: left out of the snapshot, or not stored).
    ports: Vec<(Uuid, Option<PortId>)>,
    /// What compiling the routes warned about.
    warnings: Vec<String>,
}

/// A router whose routes a compile built (not reused), with what they depended on.
struct FreshRoutes {
    router: Uuid,
    id: RouterId,
    ports: Vec<(Uuid, Option<PortId>)>,
    warnings: Vec<String>,
}

impl RouteCache {
    fn remove(&mut self, router: &Uuid) {
        if let Some(cached) = self.routers.remove(router) {
            for route in cached.set.iter().filter(|r| r.origin == RouteOrigin::Configured) {
                self.owners.remove(&route.uuid);
            }
        }
    }

    /// Takes in the sets a compile built into `snapshot`; `dirty` routers that are gone leave.
    fn store(&mut self, snapshot: &Snapshot, fresh: Vec<FreshRoutes>, dirty: &Dirty) {
        for router in dirty.routers.iter().chain(fresh.iter().map(|f| &f.router)) {
            self.remove(router);
        }
        for f in fresh {
            let set = snapshot.router(f.id).routes.clone();
            for route in set.iter().filter(|r| r.origin == RouteOrigin::Configured) {
                self.owners.insert(route.uuid, f.router);
            }
            self.routers.insert(f.router, CachedRoutes { set, ports: f.ports, warnings: f.warnings });
        }
    }
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache").field("version", &self.model.as_ref().map(|m| m.version)).finish()
    }
}

impl ModelCache {
    /// An empty cache: the first compile reads everything.
    pub fn new() -> ModelCache {
        ModelCache::default()
    }

    /// Brings the cached model to the store's current version and compiles it.
    pub fn compile<S: Store>(
        &mut self,
        topology: &Topology<S>,
        ctx: &CompileContext,
    ) -> Result<Compiled, CompileError> {
        self.refresh(topology)?;
        let model = self.model.as_mut().expect("refreshed");
        let reuse = (!model.dirty.all).then_some(&self.routes);
        let (compiled, fresh) = match build(model, ctx, reuse) {
            Ok(built) => built,
            // The error a full build gives (which object it names depends on the order it judges
            // them in, and reused routers are not judged again).
            Err(_) if reuse.is_some() => {
                let built = build(model, ctx, None)?;
                self.routes = RouteCache::default();
                built
            }
            Err(e) => return Err(e),
        };
        if model.dirty.all {
            self.routes = RouteCache::default();
        }
        self.routes.store(&compiled.snapshot, fresh, &model.dirty);
        model.dirty = Dirty::default();
        Ok(compiled)
    }

    fn refresh<S: Store>(&mut self, topology: &Topology<S>) -> Result<(), CompileError> {
        let Some(model) = &mut self.model else {
            self.model = Some(Model::read(topology)?);
            self.routes = RouteCache::default();
            return Ok(());
        };
        for _ in 0..READ_ATTEMPTS {
            if topology.store().version()? == model.version {
                return Ok(());
            }
            let sets = match topology.store().changes_since(model.version) {
                Ok(sets) => sets,
                // The log no longer reaches back to our version: read everything again.
                Err(StoreError::ChangesTrimmed { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            for set in &sets {
                for change in &set.changes {
                    model.update(topology, change.kind, &change.id)?;
                }
                model.version = set.version;
            }
            // A write that landed while we read is picked up by the next round.
        }
        self.model = Some(Model::read(topology)?);
        self.routes = RouteCache::default();
        Ok(())
    }
}

impl ModelCache {
    /// Compiles the store's topology as it would be once `ops` (a write not yet committed) are
    /// applied: the topology service's check that a write leaves a topology the cores can use. The
    /// cached model is brought to the store's version, `ops` are laid over it, and afterwards the
    /// objects they touched are read back from the store, so the cache keeps showing the store.
    pub(crate) fn compile_with<S: Store>(
        &mut self,
        topology: &Topology<S>,
        ctx: &CompileContext,
        ops: &[Op],
    ) -> Result<Compiled, CompileError> {
        self.refresh(topology)?;
        let model = self.model.as_mut().expect("refreshed");
        let laid = ops.iter().try_for_each(|op| model.lay(op));
        // The route sets are reused but not kept: the laid ops are not in the store. The objects
        // they touched stay dirty, so the next compile rebuilds what they and the read-back touch.
        let reuse = (!model.dirty.all).then_some(&self.routes);
        let compiled = laid.and_then(|()| match build(model, ctx, reuse) {
            Ok((compiled, _)) => Ok(compiled),
            Err(_) if reuse.is_some() => build(model, ctx, None).map(|(compiled, _)| compiled),
            Err(e) => Err(e),
        });
        for op in ops {
            let (kind, id) = op.target();
            if let Err(e) = model.update(topology, kind, id) {
                // The cache no longer shows the store: the next compile reads everything.
                self.model = None;
                return Err(e);
            }
        }
        compiled
    }
}

impl Model {
    /// Lays a write that is not in the store yet over the model.
    fn lay(&mut self, op: &Op) -> Result<(), CompileError> {
        let (kind, id) = op.target();
        let data = match op {
            Op::Create { data, .. } | Op::Update { data, .. } => Some(data.as_slice()),
            Op::Delete { .. } => None,
        };
        let owners = match kind {
            Kind::Router => place_encoded(&mut self.routers, id, data),
            Kind::Network => place_encoded(&mut self.bridges, id, data),
            Kind::Port => place_encoded(&mut self.ports, id, data),
            Kind::Route => place_encoded(&mut self.routes, id, data),
            Kind::Chain => place_encoded(&mut self.chains, id, data),
            Kind::Rule => place_encoded(&mut self.rules, id, data),
            Kind::TunnelZone => place_encoded(&mut self.tunnel_zones, id, data),
            Kind::PortGroup => place_encoded(&mut self.port_groups, id, data),
            Kind::IpAddrGroup => place_encoded(&mut self.ip_addr_groups, id, data),
            _ => return Ok(()),
        }?;
        self.changed(kind, id, owners);
        Ok(())
    }
}

/// Whether a write of routes only (`ops`, every one a [`Kind::Route`]) compiles, judged route by
/// route with the compiler's own route checks (networks, type, next-hop port on the route's router,
/// gateway, address families: [`RouteForm`], [`Compiler::routes`] and the snapshot builder's
/// `check_route`), without building the whole topology: a route depends on nothing but its router
/// and port, and removing one never makes a topology refuse to compile. `None` when `ops` are not all routes. The most
/// common write (a route) then costs a read of one port, not a whole-topology build.
pub(crate) fn routes_alone_compile<S: Store>(topology: &Topology<S>, ops: &[Op]) -> Option<Result<(), CompileError>> {
    if !ops.iter().all(|op| op.target().0 == Kind::Route) {
        return None;
    }
    let check = |data: &[u8]| -> Result<(), CompileError> {
        let r: Route = serde_json::from_slice(data)
            .map_err(|e| TopologyError::Corrupt { kind: Kind::Route, detail: e.to_string() })?;
        // A route of no router is left out by the compile, as here.
        let Some(router) = r.router_id else { return Ok(()) };
        let refused = |problem: String| invalid("route", r.id, problem);
        // Only a normal route reaches the builder with its source and gateway (the others keep
        // their destination alone): the builder's family checks (`check_route`) apply to it.
        let (src, dst, port_id, gateway) = match RouteForm::of(&r) {
            RouteForm::Refused(problem) => return Err(refused(problem)),
            RouteForm::Local | RouteForm::WithoutPort { .. } => return Ok(()),
            RouteForm::Normal { src, dst, port, gateway } => (src, dst, port, gateway.map_err(refused)?),
        };
        let family = |ip: IpAddr| ip.is_ipv4() == dst.addr().is_ipv4();
        if !family(src.addr()) {
            return Err(CompileError::Snapshot(SnapshotError::RouteFamilyMismatch(ft(r.id))));
        }
        if gateway.is_some_and(|g| !family(g)) {
            return Err(CompileError::Snapshot(SnapshotError::RouteGatewayFamilyMismatch(ft(r.id))));
        }
        // A port left out of the topology makes the compile skip the route with a warning.
        match topology.get::<Port>(&port_id.to_string()) {
            Ok(port) if port.device_id != Some(router) => {
                Err(invalid("route", r.id, format!("nextHopPort {port_id} is not a port of router {router}")))
            }
            Ok(_) | Err(TopologyError::NotFound { .. }) => Ok(()),
            Err(e) => Err(CompileError::Topology(e)),
        }
    };
    Some(ops.iter().try_for_each(|op| match op {
        Op::Create { data, .. } | Op::Update { data, .. } => check(data),
        Op::Delete { .. } => Ok(()),
    }))
}

/// Whether the compiler reads objects of `kind` (a write touching none cannot change a snapshot).
pub(crate) fn compiles_kind(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Router
            | Kind::Network
            | Kind::Port
            | Kind::Route
            | Kind::Chain
            | Kind::Rule
            | Kind::TunnelZone
            | Kind::PortGroup
            | Kind::IpAddrGroup
    )
}

fn place_encoded<E: ModelEntry>(list: &mut Vec<E>, id: &str, data: Option<&[u8]>) -> Result<Owners, CompileError> {
    let object = data
        .map(|d| {
            serde_json::from_slice::<E::Object>(d)
                .map_err(|e| TopologyError::Corrupt { kind: E::Object::KIND, detail: e.to_string() })
        })
        .transpose()?;
    Ok(place(list, id, object.map(E::from_object)))
}

/// Puts `entry` as object `id` into the sorted `list`, or takes `id` out when `None`; returns what
/// the old and the new entry were owned by.
fn place<E: ModelEntry>(list: &mut Vec<E>, id: &str, entry: Option<E>) -> Owners {
    let at = list.binary_search_by(|e| e.entry_key().as_str().cmp(id));
    let new = entry.as_ref().and_then(E::owned);
    let old = match (entry, at) {
        (Some(entry), Ok(i)) => std::mem::replace(&mut list[i], entry).owned(),
        (Some(entry), Err(i)) => {
            list.insert(i, entry);
            None
        }
        (None, Ok(i)) => list.remove(i).owned(),
        (None, Err(_)) => None,
    };
    [old, new]
}

/// Puts the current state of object `id` into the sorted `list` (or takes it out if it is gone).
fn upsert<S: Store, E: ModelEntry>(
    topology: &Topology<S>,
    list: &mut Vec<E>,
    id: &str,
) -> Result<Owners, CompileError> {
    match topology.get::<E::Object>(id) {
        Ok(object) => Ok(place(list, id, Some(E::from_object(object)))),
        Err(TopologyError::NotFound { .. }) => Ok(place(list, id, None)),
        Err(e) => Err(e.into()),
    }
}

/// Builds the snapshot of `model`, giving each router whose routes did not change since `reuse` was
/// stored its cached route set; returns the routers whose routes it built.
fn build(
    model: &Model,
    ctx: &CompileContext,
    reuse: Option<&RouteCache>,
) -> Result<(Compiled, Vec<FreshRoutes>), CompileError> {
    let mut c = Compiler { b: SnapshotBuilder::new(ctx.generation), ..Compiler::default() };
    if let Some(underlay) = ctx.underlay {
        c.b.set_underlay(underlay);
    }
    c.chains(model);
    c.groups(model);
    c.hosts(model, ctx);
    c.devices(model);
    c.ports(model, ctx);
    c.routes(model, reuse)?;
    c.rules(model)?;
    let snapshot = match reuse {
        None => c.b.build()?,
        Some(cache) => {
            // Every router in the snapshot that was not rebuilt was given its cached set.
            let rebuilt: HashSet<Uuid> = c.fresh.iter().map(|f| f.router).collect();
            let routers = &c.routers;
            c.b.build_reusing(|uuid| {
                cache.owners.get(&uuid).is_some_and(|r| routers.get(r).is_some() && !rebuilt.contains(r))
            })?
        }
    };
    Ok((Compiled { snapshot, store_version: model.version, warnings: c.warnings }, c.fresh))
}

/// Store ids to snapshot ids, kept sorted by id and looked up by binary search. The compiler adds
/// devices in store order (sorted by id), so filling it is a push each; a compile looks up a router
/// and a port for every route, which a hash map did with a SipHash of the id each time.
struct IdMap<T> {
    entries: Vec<(u128, T)>,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap { entries: Vec::new() }
    }
}

impl<T> IdMap<T> {
    /// Maps `id` to `value`, replacing what `id` mapped to.
    fn insert(&mut self, id: Uuid, value: T) {
        let key = id.as_u128();
        match self.entries.last() {
            Some(&(last, _)) if last >= key => match self.entries.binary_search_by_key(&key, |e| e.0) {
                Ok(i) => self.entries[i].1 = value,
                Err(i) => self.entries.insert(i, (key, value)),
            },
            _ => self.entries.push((key, value)),
        }
    }

    fn get(&self, id: &Uuid) -> Option<&T> {
        let key = id.as_u128();
        self.entries.binary_search_by_key(&key, |e| e.0).ok().map(|i| &self.entries[i].1)
    }
}

impl<T> std::ops::Index<&Uuid> for IdMap<T> {
    type Output = T;
    fn index(&self, id: &Uuid) -> &T {
        self.get(id).expect("an id the compile added")
    }
}

#[derive(Default)]
struct Compiler {
    b: SnapshotBuilder,
    chains: IdMap<ChainId>,
    port_groups: IdMap<PortGroupId>,
    ip_addr_groups: IdMap<IpAddrGroupId>,
    /// Host id -> snapshot host (filled in tunnel-zone member order, not by id).
    hosts: HashMap<Uuid, HostId>,
    routers: IdMap<RouterId>,
    bridges: IdMap<BridgeId>,
    /// Port id -> (snapshot port, its index in the model's ports).
    ports: IdMap<(PortId, usize)>,
    warnings: Vec<String>,
    /// The routers whose routes this compile built.
    fresh: Vec<FreshRoutes>,
}

impl Compiler {
    fn chain(&self, id: Option<Uuid>) -> Option<ChainId> {
        id.and_then(|id| self.chains.get(&id).copied())
    }

    /// The snapshot port of port `id`, if it is in the snapshot.
    fn port(&self, id: &Uuid) -> Option<PortId> {
        self.ports.get(id).map(|&(port, _)| port)
    }

    fn chains(&mut self, m: &Model) {
        for chain in &m.chains {
            let id = self.b.add_chain(ft(chain.id), chain.name.as_deref().unwrap_or(""));
            self.chains.insert(chain.id, id);
        }
    }

    fn groups(&mut self, m: &Model) {
        for g in &m.port_groups {
            let id = self.b.add_port_group(ft(g.id), g.stateful);
            self.port_groups.insert(g.id, id);
        }
        for g in &m.ip_addr_groups {
            let id = self.b.add_ip_addr_group(ft(g.id));
            for a in &g.ip_addr_ports {
                self.b.add_ip_addr_group_address(id, a.ip_address);
            }
            self.ip_addr_groups.insert(g.id, id);
        }
    }

    /// Every host that is a member of a GRE or VXLAN tunnel zone, with its address there (a host in
    /// several zones: the first zone by id).
    fn hosts(&mut self, m: &Model, ctx: &CompileContext) {
        for zone in &m.tunnel_zones {
            if zone.zone_type == TunnelZoneType::Vtep {
                continue;
            }
            for member in &zone.members {
                if self.hosts.contains_key(&member.host_id) {
                    continue;
                }
                match member.ip_address.parse::<IpAddr>() {
                    Ok(addr) => {
                        if let (Some(u), true) = (ctx.underlay, Some(member.host_id) == ctx.local_host) {
                            if addr != IpAddr::V4(u.address) {
                                self.warnings.push(format!(
                                    "this gateway is in tunnel zone {} as {addr}, but its [underlay] address is {}: \
                                     compute hosts will tunnel to {addr}",
                                    zone.id, u.address
                                ));
                            }
                        }
                        let encap = if zone.zone_type == TunnelZoneType::Gre { Encap::Gre } else { Encap::Vxlan };
                        let id = self.b.add_host(ft(member.host_id), addr, encap);
                        self.hosts.insert(member.host_id, id);
                    }
                    Err(_) => self.warnings.push(format!(
                        "host {} in tunnel zone {} has an unusable address {:?}",
                        member.host_id, zone.id, member.ip_address
                    )),
                }
            }
        }
    }

    fn devices(&mut self, m: &Model) {
        for r in &m.routers {
            let id = self.b.add_router(ft(r.id));
            self.b.set_router_filters(id, self.chain(r.inbound_filter_id), self.chain(r.outbound_filter_id));
            self.routers.insert(r.id, id);
        }
        for br in &m.bridges {
            let id = self.b.add_bridge(ft(br.id));
            self.b.set_bridge_chains(id, self.chain(br.inbound_filter_id), self.chain(br.outbound_filter_id));
            self.bridges.insert(br.id, id);
        }
    }

    fn ports(&mut self, m: &Model, ctx: &CompileContext) {
        for (index, entry) in m.ports.iter().enumerate() {
            let p = &entry.port;
            let Some(device) = p.device_id else {
                self.warnings.push(format!("port {} belongs to no device; left out", p.id));
                continue;
            };
            let id = if let Some(&router) = self.routers.get(&device) {
                let Some(mac) = entry.mac else {
                    self.warnings.push(format!("router port {} has no usable portMac; left out", p.id));
                    continue;
                };
                self.b.add_router_port(router, ft(p.id), mac, &entry.addresses)
            } else if let Some(&bridge) = self.bridges.get(&device) {
                self.b.add_bridge_port(bridge, ft(p.id))
            } else {
                self.warnings.push(format!("port {} belongs to a missing device {device}; left out", p.id));
                continue;
            };
            self.b.set_port_chains(id, self.chain(p.inbound_filter_id), self.chain(p.outbound_filter_id));
            self.ports.insert(p.id, (id, index));
        }
        for p in m.ports.iter().map(|entry| &entry.port) {
            let Some(id) = self.port(&p.id) else { continue };
            if let Some(peer) = p.peer_id {
                // Each link once, from its lower id.
                if let (true, Some(peer_id)) = (p.id < peer, self.port(&peer)) {
                    self.b.link(id, peer_id);
                }
                continue;
            }
            if !p.admin_state_up {
                continue;
            }
            let (Some(host), Some(interface)) = (p.host_id, p.interface_name.as_deref()) else { continue };
            if Some(host) == ctx.local_host {
                match ctx.interfaces.iter().find(|(name, _)| name == interface) {
                    Some(&(_, dpdk_port)) => self.b.bind_local(id, dpdk_port),
                    None => self.warnings.push(format!(
                        "port {} is bound to interface {interface:?} of this gateway, which has no such [[port]]",
                        p.id
                    )),
                }
                continue;
            }
            let key = p.tunnel_key.and_then(|k| u32::try_from(k).ok()).filter(|&k| k <= MAX_TUNNEL_KEY);
            if ctx.underlay.is_none() {
                self.warnings.push(format!(
                    "port {} is bound on host {host}, but this gateway has no [underlay] to tunnel to it",
                    p.id
                ));
                continue;
            }
            match (self.hosts.get(&host), key) {
                (Some(&h), Some(key)) => self.b.bind_remote(id, h, key),
                (None, _) => self.warnings.push(format!(
                    "port {} is bound on host {host}, which is in no GRE or VXLAN tunnel zone: unreachable",
                    p.id
                )),
                (_, None) => self.warnings.push(format!("port {} has no usable tunnelKey", p.id)),
            }
        }
        for g in &m.port_groups {
            let group = self.port_groups[&g.id];
            for member in &g.port_ids {
                if let Some(p) = self.port(member) {
                    self.b.add_port_group_member(group, p);
                }
            }
        }
    }

    /// Every router's routes: the cached set of a router whose routes and ports are unchanged,
    /// else its routes compiled again.
    fn routes(&mut self, m: &Model, reuse: Option<&RouteCache>) -> Result<(), CompileError> {
        for router in &m.routers {
            let id = self.routers[&router.id];
            if let Some(cached) = reuse.and_then(|c| c.routers.get(&router.id)) {
                if self.unchanged(m, router.id, cached) {
                    self.b.reuse_routes(id, cached.set.clone());
                    self.warnings.extend_from_slice(&cached.warnings);
                    continue;
                }
            }
            self.router_routes(m, router.id, id)?;
        }
        Ok(())
    }

    /// Whether `cached` is what compiling `router`'s routes gives now: neither the router, its
    /// routes nor the ports they depend on changed, and those ports kept their snapshot index (a
    /// port added or removed elsewhere moves the indices after it).
    fn unchanged(&self, m: &Model, router: Uuid, cached: &CachedRoutes) -> bool {
        !m.dirty.routers.contains(&router)
            && cached.ports.iter().all(|(p, id)| !m.dirty.ports.contains(p) && self.port(p) == *id)
    }

    /// Compiles the routes of `router` (snapshot router `id`) in id order.
    fn router_routes(&mut self, m: &Model, router: Uuid, id: RouterId) -> Result<(), CompileError> {
        let first_warning = self.warnings.len();
        let span = (router, Uuid::nil())..=(router, Uuid::from_u128(u128::MAX));
        // Its own ports give it their automatic routes.
        let routes: Vec<&ModelRoute> =
            m.routes_by_router.range(span.clone()).filter_map(|&(_, r)| m.route(r)).collect();
        // Its own ports, then each route's port: sized once, as the route list is (growing them
        // one push at a time was a tenth of a compile).
        let mut ports: Vec<(Uuid, Option<PortId>)> = Vec::with_capacity(routes.len() + 4);
        ports.extend(m.ports_by_device.range(span).map(|&(_, p)| (p, self.port(&p))));
        self.b.reserve_routes(id, routes.len());
        for r in routes {
            let route = match &r.form {
                RouteForm::Refused(problem) => return Err(invalid("route", r.id, problem.clone())),
                // The builder adds every port address's local route itself.
                RouteForm::Local => continue,
                &RouteForm::WithoutPort { dst, kind } => FtRoute::without_port(ft(r.id), dst, kind, r.weight),
                RouteForm::Normal { src, dst, port, gateway } => {
                    let Some(&(port_id, index)) = self.ports.get(port) else {
                        ports.push((*port, None));
                        self.warnings.push(format!("route {} goes out of a port that is left out; skipped", r.id));
                        continue;
                    };
                    ports.push((*port, Some(port_id)));
                    let gateway = gateway.clone().map_err(|problem| invalid("route", r.id, problem))?;
                    // The connected route of a port address: the builder adds it.
                    let automatic = gateway.is_none()
                        && src.prefix_len() == 0
                        && m.ports[index].addresses.iter().any(|n| n.trunc() == *dst);
                    if automatic {
                        continue;
                    }
                    FtRoute::normal(ft(r.id), *src, *dst, port_id, gateway, r.weight)
                }
            };
            self.b.add_route(id, route);
        }
        ports.sort_unstable();
        ports.dedup();
        let warnings = self.warnings[first_warning..].to_vec();
        self.fresh.push(FreshRoutes { router, id, ports, warnings });
        Ok(())
    }

    fn rules(&mut self, m: &Model) -> Result<(), CompileError> {
        let rules: HashMap<Uuid, &Rule> = m.rules.iter().map(|r| (r.id, r)).collect();
        for chain in &m.chains {
            let chain_id = self.chains[&chain.id];
            // The chain's rule order is its rule_ids list (ZOOM's Chain.rule_ids).
            for rule_id in &chain.rule_ids {
                let Some(rule) = rules.get(rule_id) else { continue };
                let rule = self.rule(rule)?;
                self.b.add_rule(chain_id, rule);
            }
        }
        Ok(())
    }

    fn rule(&self, r: &Rule) -> Result<FtRule, CompileError> {
        let bad = |problem: String| invalid("rule", r.id, problem);
        let nat_action = || match r.flow_action {
            Some(FlowAction::Continue) => NatAction::Continue,
            Some(FlowAction::Return) => NatAction::Return,
            Some(FlowAction::Accept) | None => NatAction::Accept,
        };
        let targets = || -> Result<Box<[FtNatTarget]>, CompileError> {
            r.nat_targets
                .iter()
                .flatten()
                .map(|t| {
                    let a: IpAddr =
                        t.address_from.parse().map_err(|_| bad(format!("NAT address {:?}", t.address_from)))?;
                    let z: IpAddr = t.address_to.parse().map_err(|_| bad(format!("NAT address {:?}", t.address_to)))?;
                    Ok(FtNatTarget { addr_start: a, addr_end: z, port_start: t.port_from, port_end: t.port_to })
                })
                .collect()
        };
        let kind = match r.rule_type {
            RuleType::Accept => RuleKind::Accept,
            RuleType::Drop => RuleKind::Drop,
            RuleType::Reject => RuleKind::Reject,
            RuleType::Return => RuleKind::Return,
            RuleType::Continue => RuleKind::Continue,
            RuleType::Jump => {
                let target = r.jump_chain_id.ok_or_else(|| bad("a jump rule needs jumpChainId".into()))?;
                RuleKind::Jump(
                    self.chain(Some(target)).ok_or_else(|| bad(format!("jump to a missing chain {target}")))?,
                )
            }
            RuleType::Dnat => RuleKind::Nat(NatRule { kind: NatKind::Dnat(targets()?), action: nat_action() }),
            RuleType::Snat => RuleKind::Nat(NatRule { kind: NatKind::Snat(targets()?), action: nat_action() }),
            RuleType::RevDnat => RuleKind::Nat(NatRule { kind: NatKind::RevDnat, action: nat_action() }),
            RuleType::RevSnat => RuleKind::Nat(NatRule { kind: NatKind::RevSnat, action: nat_action() }),
            RuleType::L2Transform | RuleType::Trace | RuleType::Redirect => {
                return Err(bad(format!("rule type {:?} is not supported by the data path", r.rule_type)))
            }
        };
        let condition = self.condition(r.id, &r.condition)?;
        FtRule::new(ft(r.id), condition, kind).map_err(|e| bad(e.to_string()))
    }

    fn condition(&self, rule: Uuid, c: &Condition) -> Result<FtCondition, CompileError> {
        let bad = |problem: String| invalid("rule", rule, problem);
        let ports = |list: &[Uuid], inverted: bool| -> Result<Option<Field<Box<[PortId]>>>, CompileError> {
            if list.is_empty() {
                return Ok(None);
            }
            let ids = list
                .iter()
                .map(|p| self.port(p).ok_or_else(|| bad(format!("condition names a missing port {p}"))))
                .collect::<Result<Box<[PortId]>, _>>()?;
            Ok(Some(field(ids, inverted)))
        };
        let port_group = |g: Option<Uuid>, inverted: bool| -> Result<Option<Field<PortGroupId>>, CompileError> {
            g.map(|g| {
                self.port_groups
                    .get(&g)
                    .map(|&id| field(id, inverted))
                    .ok_or_else(|| bad(format!("condition names a missing port group {g}")))
            })
            .transpose()
        };
        let addr_group = |g: Option<Uuid>, inverted: bool| -> Result<Option<Field<IpAddrGroupId>>, CompileError> {
            g.map(|g| {
                self.ip_addr_groups
                    .get(&g)
                    .map(|&id| field(id, inverted))
                    .ok_or_else(|| bad(format!("condition names a missing IP address group {g}")))
            })
            .transpose()
        };
        let mac =
            |addr: Option<&str>, mask: Option<&str>, inverted: bool| -> Result<Option<Field<MacMatch>>, CompileError> {
                let Some(addr) = addr else { return Ok(None) };
                let addr = parse_mac(addr).ok_or_else(|| bad(format!("MAC {addr:?}")))?;
                let mask = match mask {
                    None => MacMask::EXACT,
                    Some(m) => MacMask::from_str(m).map_err(|e| bad(format!("MAC mask {m:?}: {e}")))?,
                };
                Ok(Some(field(MacMatch { addr, mask }, inverted)))
            };
        let cidr = |what: &str,
                    addr: Option<&str>,
                    len: Option<u32>,
                    inverted: bool|
         -> Result<Option<Field<IpNet>>, CompileError> {
            match addr {
                None => Ok(None),
                Some(a) => {
                    let ip: IpAddr = a.parse().map_err(|_| bad(format!("{what} address {a:?}")))?;
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let len = len.unwrap_or(max);
                    let len = u8::try_from(len)
                        .ok()
                        .filter(|&l| u32::from(l) <= max)
                        .ok_or_else(|| bad(format!("{what} length {len}")))?;
                    Ok(Some(field(IpNet::new(ip, len).map_err(|_| bad(format!("{what} length {len}")))?, inverted)))
                }
            }
        };
        let range = |what: &str,
                     r: Option<crate::model::Range>,
                     inverted: bool|
         -> Result<Option<Field<PortRange>>, CompileError> {
            r.map(|r| {
                let start = u16::try_from(r.start).map_err(|_| bad(format!("{what} start {}", r.start)))?;
                let end = u16::try_from(r.end).map_err(|_| bad(format!("{what} end {}", r.end)))?;
                Ok(field(PortRange::new(start, end), inverted))
            })
            .transpose()
        };
        if c.cond_invert {
            return Err(bad("condInvert (inverting the whole condition) is not supported by the data path".into()));
        }
        if c.vlan.is_some() || c.no_vlan || c.match_nw_dst_rewritten {
            return Err(bad("VLAN and nwDstRewritten conditions are not supported by the data path".into()));
        }
        if c.icmp_data_src_ip_address.is_some() || c.icmp_data_dst_ip_address.is_some() {
            return Err(bad("ICMP data address conditions are not supported by the data path".into()));
        }
        let flow = match (c.match_forward_flow, c.match_return_flow) {
            (true, false) => Some(FlowDirection::Forward),
            (false, true) => Some(FlowDirection::Return),
            _ => None,
        };
        // MidoNet's portGroup is the ingress port's group; inPortGroup says the same explicitly.
        let (group, group_inverted) = match (c.port_group, c.in_port_group) {
            (Some(g), _) => (Some(g), c.inv_port_group),
            (None, Some(g)) => (Some(g), c.inv_in_port_group),
            (None, None) => (None, false),
        };
        if c.out_port_group.is_some() {
            return Err(bad("outPortGroup is not supported by the data path".into()));
        }
        let traversed_device = match c.traversed_device {
            None => None,
            Some(d) => {
                let id = self
                    .routers
                    .get(&d)
                    .map(|&r| DeviceId::Router(r))
                    .or_else(|| self.bridges.get(&d).map(|&b| DeviceId::Bridge(b)))
                    .ok_or_else(|| bad(format!("traversedDevice {d} is not a router or bridge")))?;
                Some(field(id, c.inv_traversed_device))
            }
        };
        Ok(FtCondition {
            hw_src: mac(c.dl_src.as_deref(), c.dl_src_mask.as_deref(), c.inv_dl_src)?,
            hw_dst: mac(c.dl_dst.as_deref(), c.dl_dst_mask.as_deref(), c.inv_dl_dst)?,
            ethertype: c.dl_type.map(|t| field(t, c.inv_dl_type)),
            in_ports: ports(&c.in_ports, c.inv_in_ports)?,
            out_ports: ports(&c.out_ports, c.inv_out_ports)?,
            port_group: port_group(group, group_inverted)?,
            ip_addr_group_src: addr_group(c.ip_addr_group_src, c.inv_ip_addr_group_src)?,
            ip_addr_group_dst: addr_group(c.ip_addr_group_dst, c.inv_ip_addr_group_dst)?,
            tos: c.nw_tos.map(|t| field(t, c.inv_nw_tos)),
            proto: c.nw_proto.map(|p| field(p, c.inv_nw_proto)),
            src: cidr("nwSrc", c.nw_src_address.as_deref(), c.nw_src_length, c.inv_nw_src)?,
            dst: cidr("nwDst", c.nw_dst_address.as_deref(), c.nw_dst_length, c.inv_nw_dst)?,
            src_port: range("tpSrc", c.tp_src, c.inv_tp_src)?,
            dst_port: range("tpDst", c.tp_dst, c.inv_tp_dst)?,
            fragment_policy: c.fragment_policy.map(|p| match p {
                FragmentPolicy::Any => FtFragmentPolicy::Any,
                FragmentPolicy::Header => FtFragmentPolicy::Header,
                FragmentPolicy::Nonheader => FtFragmentPolicy::NonHeader,
                FragmentPolicy::Unfragmented => FtFragmentPolicy::Unfragmented,
            }),
            flow,
            traversed_device,
        })
    }
}

/// A router port's addresses with their prefix (`portSubnet`, normalised by the topology service,
/// else `portAddress` + `networkLength`).
fn port_addresses(p: &Port) -> Vec<IpNet> {
    if let Some(list) = p.port_subnet.as_deref().filter(|l| !l.is_empty()) {
        return list.iter().filter_map(|s| s.parse().ok()).collect();
    }
    match (p.port_address.as_deref().and_then(|a| a.parse::<IpAddr>().ok()), p.network_length) {
        (Some(addr), Some(len)) => u8::try_from(len).ok().and_then(|l| IpNet::new(addr, l).ok()).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn field<T>(value: T, inverted: bool) -> Field<T> {
    Field { value, inverted }
}

/// `aa:bb:cc:dd:ee:ff` (the form the topology service stores).
fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(EthernetAddress(out))
}

fn net(what: &str, addr: Option<&str>, len: Option<u32>) -> Result<IpNet, String> {
    let bad = || format!("{what}NetworkAddr/Length {addr:?}/{len:?}");
    let ip: IpAddr = addr.ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let len = u8::try_from(len.ok_or_else(bad)?).map_err(|_| bad())?;
    Ok(IpNet::new(ip, len).map_err(|_| bad())?.trunc())
}

/// A route's source and destination networks (the source: any of the destination's family when
/// the route names none); what is wrong with them otherwise.
fn route_networks(r: &Route) -> Result<(IpNet, IpNet), String> {
    let dst = net("dst", r.dst_network_addr.as_deref(), r.dst_network_length)?;
    let src = match r.src_network_addr.as_deref() {
        None => any_like(dst),
        addr => net("src", addr, r.src_network_length)?,
    };
    Ok((src, dst))
}

/// A route's kind in the snapshot; `None` for a local route (the builder adds each port
/// address's itself).
fn route_kind(r: &Route) -> Result<Option<FtRouteType>, String> {
    Ok(Some(match r.route_type {
        RouteType::Local => return Ok(None),
        RouteType::Normal => FtRouteType::Normal,
        RouteType::BlackHole => FtRouteType::Blackhole,
        RouteType::Reject => FtRouteType::Reject,
        RouteType::Fip64 => return Err("FIP64 routes are not supported by the data path".into()),
    }))
}

/// A normal route's next-hop port.
fn route_port(r: &Route) -> Result<Uuid, String> {
    r.next_hop_port.ok_or_else(|| "a normal route needs nextHopPort".into())
}

/// A normal route's gateway (MidoNet writes 0.0.0.0, or nothing, for "no gateway").
fn route_gateway(r: &Route) -> Result<Option<IpAddr>, String> {
    match r.next_hop_gateway.as_deref() {
        None | Some("") => Ok(None),
        Some(g) => {
            let g: IpAddr = g.parse().map_err(|_| format!("nextHopGateway {g:?}"))?;
            Ok((!g.is_unspecified()).then_some(g))
        }
    }
}

/// The "any source" network of `dst`'s family.
fn any_like(dst: IpNet) -> IpNet {
    match dst {
        IpNet::V4(_) => IpNet::V4(Default::default()),
        IpNet::V6(_) => IpNet::V6(Default::default()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod equivalence;
