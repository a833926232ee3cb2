//! Routers (`Router-v3`), their routes (`Route-v1`) and BGP (`BgpPeer-v1`, `BgpNetwork-v1`):
//! `/routers`, `/routers/{id}`, `/routers/{id}/routes`, `/routes/{id}`, `/routers/{id}/bgp_peers`,
//! `/bgp_peers/{id}`, `/routers/{id}/bgp_networks`, `/bgp_networks/{id}`. Routes, BGP peers and
//! BGP networks belong to their router's tenant.

use uuid::Uuid;

use super::crud::{self, find, Crud, Ref, Scope, Topo};
use super::media::{BGP_NETWORK, BGP_NETWORKS, BGP_PEER, BGP_PEERS, ROUTE, ROUTER, ROUTERS, ROUTES};
use super::{Base, Routes};
use crate::model::{BgpNetwork, BgpPeer, Route, Router};
use crate::topology::TopologyError;

type TResult<T> = Result<T, TopologyError>;

/// Router, route and BGP paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/routers", crud::collection::<Router>())
        .route("/routers/{id}", crud::item_put::<Router>())
        .route("/routers/{id}/routes", crud::children::<Route>())
        .route("/routes/{id}", crud::item::<Route>())
        .route("/routers/{id}/bgp_peers", crud::children::<BgpPeer>())
        .route("/bgp_peers/{id}", crud::item_put::<BgpPeer>())
        .route("/routers/{id}/bgp_networks", crud::children::<BgpNetwork>())
        .route("/bgp_networks/{id}", crud::item::<BgpNetwork>())
}

/// The scope of what lives under router `id` (a missing router is nobody's).
fn router_scope(t: &Topo, id: Option<Uuid>) -> TResult<Scope> {
    Ok(Scope::Tenant(match id {
        Some(id) => find::<Router>(t, id)?.and_then(|r| r.tenant_id),
        None => None,
    }))
}

/// The parent of a child resource must exist (404 before any scope check).
fn existing_router_scope(t: &Topo, id: Uuid) -> TResult<Scope> {
    let r: Router = t.get(&id.to_string())?;
    Ok(Scope::Tenant(r.tenant_id))
}

impl Crud for Router {
    const NAME: &'static str = "Router";
    const SEGMENT: &'static str = "routers";
    const MEDIA: &'static [&'static str] = ROUTER;
    const LIST_MEDIA: &'static [&'static str] = ROUTERS;

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn references(&self) -> Vec<(&'static str, Ref)> {
        let chains = [
            ("inboundFilterId", self.inbound_filter_id),
            ("outboundFilterId", self.outbound_filter_id),
            ("localRedirectChainId", self.local_redirect_chain_id),
            ("forwardChainId", self.forward_chain_id),
        ];
        chains.into_iter().filter_map(|(f, c)| c.map(|c| (f, Ref::Chain(c)))).collect()
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        let me = base.item("routers", self.id);
        vec![
            ("inboundFilter", base.opt("chains", self.inbound_filter_id)),
            ("outboundFilter", base.opt("chains", self.outbound_filter_id)),
            ("localRedirectChain", base.opt("chains", self.local_redirect_chain_id)),
            ("forwardChain", base.opt("chains", self.forward_chain_id)),
            ("loadBalancer", base.opt("load_balancers", self.load_balancer_id)),
            ("ports", Some(format!("{me}/ports"))),
            ("peerPorts", Some(format!("{me}/peer_ports"))),
            ("routes", Some(format!("{me}/routes"))),
            ("bgpNetworks", Some(format!("{me}/bgp_networks"))),
            ("bgpPeers", Some(format!("{me}/bgp_peers"))),
        ]
    }
    fn scope(&self, _t: &Topo) -> TResult<Scope> {
        Ok(Scope::Tenant(self.tenant_id.clone()))
    }
    fn tenant_field(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.tenant_id)
    }
    fn list(t: &Topo, _parent: Option<Uuid>) -> TResult<Vec<Self>> {
        t.list()
    }
    fn create(t: &Topo, _parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_router(v)
    }
    fn update(t: &Topo, v: Self) -> TResult<Self> {
        t.update_router(v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_router(id)
    }
}

impl Crud for Route {
    const NAME: &'static str = "Route";
    const SEGMENT: &'static str = "routes";
    const MEDIA: &'static [&'static str] = ROUTE;
    const LIST_MEDIA: &'static [&'static str] = ROUTES;

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("router", base.opt("routers", self.router_id))]
    }
    fn scope(&self, t: &Topo) -> TResult<Scope> {
        router_scope(t, self.router_id)
    }
    fn parent_scope(t: &Topo, parent: Uuid) -> TResult<Scope> {
        existing_router_scope(t, parent)
    }
    fn list(t: &Topo, parent: Option<Uuid>) -> TResult<Vec<Self>> {
        match parent {
            Some(router) => t.router_routes(router),
            None => t.list(),
        }
    }
    fn create(t: &Topo, parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_route(parent.unwrap_or_default(), v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_route(id)
    }
}

impl Crud for BgpPeer {
    const NAME: &'static str = "BgpPeer";
    const SEGMENT: &'static str = "bgp_peers";
    const MEDIA: &'static [&'static str] = BGP_PEER;
    const LIST_MEDIA: &'static [&'static str] = BGP_PEERS;
    const HIDDEN: &'static [&'static str] = &["routerId"];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("router", base.opt("routers", self.router_id))]
    }
    fn scope(&self, t: &Topo) -> TResult<Scope> {
        router_scope(t, self.router_id)
    }
    fn parent_scope(t: &Topo, parent: Uuid) -> TResult<Scope> {
        existing_router_scope(t, parent)
    }
    fn list(t: &Topo, parent: Option<Uuid>) -> TResult<Vec<Self>> {
        match parent {
            Some(router) => t.router_bgp_peers(router),
            None => t.list(),
        }
    }
    fn create(t: &Topo, parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_bgp_peer(parent.unwrap_or_default(), v)
    }
    fn update(t: &Topo, v: Self) -> TResult<Self> {
        t.update_bgp_peer(v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_bgp_peer(id)
    }
}

impl Crud for BgpNetwork {
    const NAME: &'static str = "BgpNetwork";
    const SEGMENT: &'static str = "bgp_networks";
    const MEDIA: &'static [&'static str] = BGP_NETWORK;
    const LIST_MEDIA: &'static [&'static str] = BGP_NETWORKS;
    const HIDDEN: &'static [&'static str] = &["routerId"];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("router", base.opt("routers", self.router_id))]
    }
    fn scope(&self, t: &Topo) -> TResult<Scope> {
        router_scope(t, self.router_id)
    }
    fn parent_scope(t: &Topo, parent: Uuid) -> TResult<Scope> {
        existing_router_scope(t, parent)
    }
    fn list(t: &Topo, parent: Option<Uuid>) -> TResult<Vec<Self>> {
        match parent {
            Some(router) => t.router_bgp_networks(router),
            None => t.list(),
        }
    }
    fn create(t: &Topo, parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_bgp_network(parent.unwrap_or_default(), v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_bgp_network(id)
    }
}
