//! Ports (`Port-v3`): `/routers/{id}/ports`, `/bridges/{id}/ports`, their `peer_ports` (the ports
//! linked to the device's ports), `/ports`, `/ports/{id}`,
//! `/ports/{id}/link` (`PortLink-v1`) and `/ports/{id}/port_groups` (`PortGroupPort-v1`). A port
//! belongs to its device's tenant.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use serde_json::Value;
use uuid::Uuid;

use super::auth::Session;
use super::crud::{self, check_write, device_scope, Crud, Ref, Scope, Topo};
use super::media::{self, PORT, PORTS, PORT_GROUP_PORT, PORT_GROUP_PORTS, PORT_LINK};
use super::openapi::Bodies;
use super::port_groups::membership_dto;
use super::{parse_id, ApiError, AppState, Base, Path, Routes};
use crate::model::{Port, PortGroup, PortGroupPort, PortLink};
use crate::topology::TopologyError;

type TResult<T> = Result<T, TopologyError>;

/// Port paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/routers/{id}/ports", crud::children::<Port>())
        .route("/bridges/{id}/ports", crud::children::<Port>())
        .route("/routers/{id}/peer_ports", crud::list_bodies::<Port>().serve(get(peer_ports)))
        .route("/bridges/{id}/peer_ports", crud::list_bodies::<Port>().serve(get(peer_ports)))
        .route("/ports", crud::collection_get::<Port>())
        .route("/ports/{id}", crud::item_put::<Port>())
        .route("/ports/{id}/link", Bodies::item::<PortLink>(PORT_LINK).serve(post(link).delete(unlink)))
        .route(
            "/ports/{id}/port_groups",
            Bodies::collection::<PortGroupPort>(PORT_GROUP_PORT, PORT_GROUP_PORTS).serve(get(port_groups)),
        )
}

impl Crud for Port {
    const NAME: &'static str = "Port";
    const SEGMENT: &'static str = "ports";
    const MEDIA: &'static [&'static str] = PORT;
    const LIST_MEDIA: &'static [&'static str] = PORTS;

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn references(&self) -> Vec<(&'static str, Ref)> {
        let mut refs = Vec::new();
        for (field, chain) in
            [("inboundFilterId", self.inbound_filter_id), ("outboundFilterId", self.outbound_filter_id)]
        {
            refs.extend(chain.map(|c| (field, Ref::Chain(c))));
        }
        // Linking on create is `POST ports/{id}/link` in one step: the peer must be the caller's too.
        refs.extend(self.peer_id.map(|p| ("peerId", Ref::Port(p))));
        refs
    }
    fn admin_fields(&self, old: Option<&Self>) -> Result<(), ApiError> {
        // Binding is admin-only, as on `POST hosts/{id}/ports`; a PUT that sends back the stored
        // binding changes nothing.
        let binding = |p: &Port| (p.host_id, p.interface_name.clone());
        let unchanged = match old {
            Some(old) => binding(self) == binding(old),
            None => self.host_id.is_none() && self.interface_name.is_none(),
        };
        if unchanged {
            Ok(())
        } else {
            Err(ApiError::Forbidden("binding a port to a host (hostId, interfaceName) needs the admin role"))
        }
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        let me = base.item("ports", self.id);
        let device = if self.port_type.is_router() { "routers" } else { "bridges" };
        let host_interface_port = self.host_id.map(|h| format!("{}/ports/{}", base.item("hosts", h), self.id));
        vec![
            ("device", base.opt(device, self.device_id)),
            ("host", base.opt("hosts", self.host_id)),
            ("peer", base.opt("ports", self.peer_id)),
            ("link", Some(format!("{me}/link"))),
            ("portGroups", Some(format!("{me}/port_groups"))),
            ("hostInterfacePort", host_interface_port),
            ("inboundFilter", base.opt("chains", self.inbound_filter_id)),
            ("outboundFilter", base.opt("chains", self.outbound_filter_id)),
        ]
    }
    fn scope(&self, t: &Topo) -> TResult<Scope> {
        device_scope(t, self.device_id)
    }
    fn parent_scope(t: &Topo, parent: Uuid) -> TResult<Scope> {
        device_scope(t, Some(parent))
    }
    fn list(t: &Topo, parent: Option<Uuid>) -> TResult<Vec<Self>> {
        match parent {
            Some(device) => t.device_ports(device),
            None => t.list(),
        }
    }
    fn create(t: &Topo, parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_port(parent.unwrap_or_default(), v)
    }
    fn update(t: &Topo, v: Self) -> TResult<Self> {
        t.update_port(v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_port(id)
    }
}

/// The port, checked writable by `session`.
async fn writable_port(st: &AppState, session: &Session, id: Uuid) -> Result<Port, ApiError> {
    let (port, scope) = st
        .run(move |t| {
            let p: Port = t.get(&id.to_string())?;
            let scope = p.scope(t)?;
            Ok((p, scope))
        })
        .await?;
    check_write(session, &scope, || format!("Port {id}"))?;
    Ok(port)
}

async fn link(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    let body: PortLink = media::body(&headers, &bytes, PORT_LINK)?;
    let peer = body.peer_id;
    writable_port(&st, &session, id).await?;
    // The peer must be the caller's too; a peer it cannot see is a missing reference.
    let peer_scope = st.run(move |t| crud::find::<Port>(t, peer)?.map(|p| p.scope(t)).transpose()).await?;
    if let Some(scope) = peer_scope {
        check_write(&session, &scope, || format!("peerId: Port {peer}"))?;
    }
    st.run(move |t| t.link_ports(id, peer)).await?;
    let me = base.item("ports", id);
    let value = serde_json::json!({
        "portId": id, "peerId": peer, "uri": format!("{me}/link"), "port": me, "peer": base.item("ports", peer),
    });
    Ok(media::created(&format!("{me}/link"), media::negotiate(&headers, PORT_LINK), value))
}

async fn unlink(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    writable_port(&st, &session, id).await?;
    st.run(move |t| t.unlink_port(id)).await?;
    Ok(media::no_content())
}

/// `GET /ports/{id}/port_groups`: the port's memberships.
async fn port_groups(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    let (scope, groups) = st
        .run(move |t| {
            let p: Port = t.get(&id.to_string())?;
            let groups: Vec<PortGroup> =
                t.list::<PortGroup>()?.into_iter().filter(|g| g.port_ids.contains(&id)).collect();
            Ok((p.scope(t)?, groups))
        })
        .await?;
    crud::check_read(&session, &scope, || format!("Port {id}"))?;
    let items = groups.iter().map(|g| membership_dto(&base, g.id, id)).collect();
    Ok(media::ok(media::negotiate(&headers, PORT_GROUP_PORTS), Value::Array(items)))
}

/// `GET /routers/{id}/peer_ports` and `/bridges/{id}/peer_ports`: the ports the device's ports are
/// linked to, those the session may see.
async fn peer_ports(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Device", &id)?;
    let (scope, peers) = st
        .run(move |t| {
            let peers = t.device_peer_ports(id)?;
            let mut scoped = Vec::with_capacity(peers.len());
            for p in peers {
                scoped.push((p.scope(t)?, p));
            }
            Ok((device_scope(t, Some(id))?, scoped))
        })
        .await?;
    crud::check_read(&session, &scope, || format!("Device {id}"))?;
    let items = peers
        .iter()
        .filter(|(scope, _)| crud::check_read(&session, scope, String::new).is_ok())
        .map(|(_, p)| crud::dto(&base, p))
        .collect();
    Ok(media::ok(media::negotiate(&headers, PORTS), Value::Array(items)))
}
