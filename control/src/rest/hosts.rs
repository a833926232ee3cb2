//! Hosts (`Host-v3`), their interfaces (`Interface-v1`) and port bindings (`HostInterfacePort-v1`):
//! `/hosts`, `/hosts/{id}`, `/hosts/{id}/interfaces`, `/hosts/{id}/interfaces/{name}`,
//! `/hosts/{id}/ports`, `/hosts/{id}/ports/{portId}`.
//!
//! Hosts are shared infrastructure: every token reads them, only admins create (hosts normally
//! register themselves), update (`floodingProxyWeight` and the container fields; name, addresses,
//! interfaces and `alive` come from the host) or delete them, and bind ports. A tenant sees only the
//! bindings of its own ports. Binding is `POST /hosts/{id}/ports` (201) or
//! `PUT /hosts/{id}/ports/{portId}` (204); a port bound on another host must be unbound first (409).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde_json::Value;
use uuid::Uuid;

use super::auth::{admin_only, Session};
use super::crud::{self, check_read, Crud, Scope, Topo};
use super::media::{self, HOST, HOSTS, HOST_INTERFACE_PORT, HOST_INTERFACE_PORTS, INTERFACE, INTERFACES};
use super::openapi::Bodies;
use super::{encode_segment, parse_id, ApiError, AppState, Base, Path, Routes};
use crate::model::{Host, HostInterfacePort, Interface, Port};
use crate::topology::TopologyError;

/// Host paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/hosts", crud::collection::<Host>())
        .route("/hosts/{id}", crud::item_put::<Host>())
        .route(
            "/hosts/{id}/interfaces",
            Bodies::collection::<Interface>(INTERFACE, INTERFACES).serve(get(list_interfaces)),
        )
        .route("/hosts/{id}/interfaces/{name}", Bodies::item::<Interface>(INTERFACE).serve(get(read_interface)))
        .route(
            "/hosts/{id}/ports",
            Bodies::collection::<HostInterfacePort>(HOST_INTERFACE_PORT, HOST_INTERFACE_PORTS)
                .serve(get(list_bindings).post(bind)),
        )
        .route(
            "/hosts/{id}/ports/{portId}",
            Bodies::item::<HostInterfacePort>(HOST_INTERFACE_PORT).serve(get(read_binding).put(bind_at).delete(unbind)),
        )
}

impl Crud for Host {
    const NAME: &'static str = "Host";
    const SEGMENT: &'static str = "hosts";
    const MEDIA: &'static [&'static str] = HOST;
    const LIST_MEDIA: &'static [&'static str] = HOSTS;

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        let me = base.item("hosts", self.id);
        vec![("interfaces", Some(format!("{me}/interfaces"))), ("ports", Some(format!("{me}/ports")))]
    }
    fn scope(&self, _t: &Topo) -> Result<Scope, TopologyError> {
        Ok(Scope::Shared)
    }
    fn read(t: &Topo, id: Uuid) -> Result<Self, TopologyError> {
        t.host(id)
    }
    fn list(t: &Topo, _parent: Option<Uuid>) -> Result<Vec<Self>, TopologyError> {
        t.hosts()
    }
    fn create(t: &Topo, _parent: Option<Uuid>, v: Self) -> Result<Self, TopologyError> {
        t.create_host(v)
    }
    fn update(t: &Topo, v: Self) -> Result<Self, TopologyError> {
        t.update_host(v)
    }
    fn delete(t: &Topo, id: Uuid) -> Result<(), TopologyError> {
        t.delete_host(id)
    }
}

fn interface_dto(base: &Base, host: Uuid, i: &Interface) -> Value {
    let mut i = i.clone();
    i.host_id = Some(host);
    // Interface names are the host's own (`eth0.100`, `tap 1`): encoded so the uri GETs back.
    let uri = format!("{}/interfaces/{}", base.item("hosts", host), encode_segment(&i.name));
    media::dto(&i, uri, &[], vec![("host", Some(base.item("hosts", host)))])
}

fn binding_dto(base: &Base, host: Uuid, port: Uuid, interface: &str) -> Value {
    let b = HostInterfacePort { port_id: port, host_id: Some(host), interface_name: interface.to_string() };
    let uri = format!("{}/ports/{port}", base.item("hosts", host));
    media::dto(&b, uri, &[], vec![("host", Some(base.item("hosts", host))), ("port", Some(base.item("ports", port)))])
}

async fn list_interfaces(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Host", &id)?;
    let h = st.run(move |t| t.get::<Host>(&id.to_string())).await?;
    let items = h.host_interfaces.iter().map(|i| interface_dto(&base, id, i)).collect();
    Ok(media::ok(media::negotiate(&headers, INTERFACES), Value::Array(items)))
}

async fn read_interface(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id("Host", &id)?;
    let h = st.run(move |t| t.get::<Host>(&id.to_string())).await?;
    let i = h
        .host_interfaces
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("host {id} has no interface {name:?}")))?;
    Ok(media::ok(media::negotiate(&headers, INTERFACE), interface_dto(&base, id, i)))
}

/// The ports bound to `host` that `session` may see.
async fn bound_ports(st: &AppState, session: &Session, host: Uuid) -> Result<Vec<Port>, ApiError> {
    let ports = st
        .run(move |t| {
            t.get::<Host>(&host.to_string())?;
            let mut out = Vec::new();
            for p in t.list::<Port>()?.into_iter().filter(|p| p.host_id == Some(host)) {
                out.push((p.scope(t)?, p));
            }
            Ok(out)
        })
        .await?;
    Ok(ports.into_iter().filter(|(scope, _)| check_read(session, scope, String::new).is_ok()).map(|(_, p)| p).collect())
}

async fn list_bindings(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Host", &id)?;
    let ports = bound_ports(&st, &session, id).await?;
    let items =
        ports.iter().map(|p| binding_dto(&base, id, p.id, p.interface_name.as_deref().unwrap_or_default())).collect();
    Ok(media::ok(media::negotiate(&headers, HOST_INTERFACE_PORTS), Value::Array(items)))
}

async fn read_binding(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id("Host", &id)?;
    let port = parse_id("Port", &port)?;
    let ports = bound_ports(&st, &session, id).await?;
    let p = ports.iter().find(|p| p.id == port).ok_or(TopologyError::NotBound { port, host: id })?;
    let v = binding_dto(&base, id, port, p.interface_name.as_deref().unwrap_or_default());
    Ok(media::ok(media::negotiate(&headers, HOST_INTERFACE_PORT), v))
}

async fn do_bind(
    st: &AppState,
    session: &Session,
    headers: &HeaderMap,
    host: Uuid,
    bytes: &Bytes,
    port_in_path: Option<Uuid>,
) -> Result<HostInterfacePort, ApiError> {
    let mut b: HostInterfacePort = media::body(headers, bytes, HOST_INTERFACE_PORT)?;
    admin_only(session)?;
    if let Some(port) = port_in_path {
        if b.port_id != port {
            return Err(ApiError::Topology(TopologyError::ImmutableField("portId")));
        }
    }
    if b.host_id.is_some_and(|h| h != host) {
        return Err(ApiError::Topology(TopologyError::ImmutableField("hostId")));
    }
    b.host_id = Some(host);
    let (port, interface) = (b.port_id, b.interface_name.clone());
    st.run(move |t| t.bind_port(host, port, &interface)).await?;
    Ok(b)
}

async fn bind(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let host = parse_id("Host", &id)?;
    let b = do_bind(&st, &session, &headers, host, &bytes, None).await?;
    let v = binding_dto(&base, host, b.port_id, &b.interface_name);
    let uri = format!("{}/ports/{}", base.item("hosts", host), b.port_id);
    Ok(media::created(&uri, media::negotiate(&headers, HOST_INTERFACE_PORT), v))
}

async fn bind_at(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path((id, port)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let host = parse_id("Host", &id)?;
    let port = parse_id("Port", &port)?;
    do_bind(&st, &session, &headers, host, &bytes, Some(port)).await?;
    Ok(media::no_content())
}

async fn unbind(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let host = parse_id("Host", &id)?;
    let port = parse_id("Port", &port)?;
    st.run(move |t| t.unbind_port(host, port)).await?;
    Ok(media::no_content())
}
