//! Port groups (`PortGroup-v1`) and their members (`PortGroupPort-v1`): `/port_groups`,
//! `/port_groups/{id}`, `/port_groups/{id}/ports`, `/port_groups/{id}/ports/{portId}`. A tenant
//! adds only its own ports to its own groups.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde_json::Value;
use uuid::Uuid;

use super::auth::Session;
use super::crud::{self, check_read, check_write, Crud, Scope, Topo};
use super::media::{self, PORT_GROUP, PORT_GROUPS, PORT_GROUP_PORT, PORT_GROUP_PORTS};
use super::openapi::Bodies;
use super::{parse_id, ApiError, AppState, Base, Path, Routes};
use crate::model::{Port, PortGroup, PortGroupPort};
use crate::topology::TopologyError;

/// Port-group paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/port_groups", crud::collection::<PortGroup>())
        .route("/port_groups/{id}", crud::item_put::<PortGroup>())
        .route(
            "/port_groups/{id}/ports",
            Bodies::collection::<PortGroupPort>(PORT_GROUP_PORT, PORT_GROUP_PORTS)
                .serve(get(list_members).post(add_member)),
        )
        .route(
            "/port_groups/{id}/ports/{portId}",
            Bodies::item::<PortGroupPort>(PORT_GROUP_PORT).serve(get(read_member).delete(remove_member)),
        )
}

impl Crud for PortGroup {
    const NAME: &'static str = "PortGroup";
    const SEGMENT: &'static str = "port_groups";
    const MEDIA: &'static [&'static str] = PORT_GROUP;
    const LIST_MEDIA: &'static [&'static str] = PORT_GROUPS;
    const HIDDEN: &'static [&'static str] = &["portIds"];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("ports", Some(format!("{}/ports", base.item("port_groups", self.id))))]
    }
    fn scope(&self, _t: &Topo) -> Result<Scope, TopologyError> {
        Ok(Scope::Tenant(self.tenant_id.clone()))
    }
    fn tenant_field(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.tenant_id)
    }
    fn list(t: &Topo, _parent: Option<Uuid>) -> Result<Vec<Self>, TopologyError> {
        t.list()
    }
    fn create(t: &Topo, _parent: Option<Uuid>, v: Self) -> Result<Self, TopologyError> {
        t.create_port_group(v)
    }
    fn update(t: &Topo, v: Self) -> Result<Self, TopologyError> {
        t.update_port_group(v)
    }
    fn delete(t: &Topo, id: Uuid) -> Result<(), TopologyError> {
        t.delete_port_group(id)
    }
}

/// A membership as `PortGroupPort-v1`.
pub fn membership_dto(base: &Base, group: Uuid, port: Uuid) -> Value {
    let m = PortGroupPort { port_group_id: Some(group), port_id: port };
    let uri = format!("{}/ports/{port}", base.item("port_groups", group));
    media::dto(
        &m,
        uri,
        &[],
        vec![("port", Some(base.item("ports", port))), ("portGroup", Some(base.item("port_groups", group)))],
    )
}

/// The group, checked readable (or writable) by `session`.
async fn group(st: &AppState, session: &Session, id: Uuid, write: bool) -> Result<PortGroup, ApiError> {
    let g = st.run(move |t| t.get::<PortGroup>(&id.to_string())).await?;
    let scope = Scope::Tenant(g.tenant_id.clone());
    let what = || format!("PortGroup {id}");
    if write {
        check_write(session, &scope, what)?;
    } else {
        check_read(session, &scope, what)?;
    }
    Ok(g)
}

async fn list_members(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("PortGroup", &id)?;
    let g = group(&st, &session, id, false).await?;
    let items = g.port_ids.iter().map(|p| membership_dto(&base, id, *p)).collect();
    Ok(media::ok(media::negotiate(&headers, PORT_GROUP_PORTS), Value::Array(items)))
}

async fn add_member(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("PortGroup", &id)?;
    let m: PortGroupPort = media::body(&headers, &bytes, PORT_GROUP_PORT)?;
    group(&st, &session, id, true).await?;
    let port = m.port_id;
    let scope = st.run(move |t| crud::find::<Port>(t, port)?.map(|p| p.scope(t)).transpose()).await?;
    if let Some(scope) = scope {
        check_write(&session, &scope, || format!("portId: Port {port}"))?;
    }
    st.run(move |t| t.add_port_group_port(id, port)).await?;
    let v = membership_dto(&base, id, port);
    let uri = format!("{}/ports/{port}", base.item("port_groups", id));
    Ok(media::created(&uri, media::negotiate(&headers, PORT_GROUP_PORT), v))
}

async fn read_member(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id("PortGroup", &id)?;
    let port = parse_id("Port", &port)?;
    let g = group(&st, &session, id, false).await?;
    if !g.port_ids.contains(&port) {
        return Err(TopologyError::NotMember { group: id, member: port }.into());
    }
    Ok(media::ok(media::negotiate(&headers, PORT_GROUP_PORT), membership_dto(&base, id, port)))
}

async fn remove_member(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id("PortGroup", &id)?;
    let port = parse_id("Port", &port)?;
    group(&st, &session, id, true).await?;
    st.run(move |t| t.remove_port_group_port(id, port)).await?;
    Ok(media::no_content())
}
