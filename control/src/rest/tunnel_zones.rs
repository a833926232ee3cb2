//! Tunnel zones (`TunnelZone-v1`) and their members (`TunnelZoneHost-v1`): `/tunnel_zones`,
//! `/tunnel_zones/{id}`, `/tunnel_zones/{id}/hosts`, `/tunnel_zones/{id}/hosts/{hostId}`. Tunnel zones
//! are shared infrastructure: every token reads them, writes are admin-only.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde_json::Value;
use uuid::Uuid;

use super::auth::{admin_only, Session};
use super::crud::{self, Crud, Scope, Topo};
use super::media::{self, TUNNEL_ZONE, TUNNEL_ZONES, TUNNEL_ZONE_HOST, TUNNEL_ZONE_HOSTS};
use super::openapi::Bodies;
use super::{parse_id, ApiError, AppState, Base, Path, Routes};
use crate::model::{TunnelZone, TunnelZoneHost};
use crate::topology::TopologyError;

/// Tunnel-zone paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/tunnel_zones", crud::collection::<TunnelZone>())
        .route("/tunnel_zones/{id}", crud::item_put::<TunnelZone>())
        .route(
            "/tunnel_zones/{id}/hosts",
            Bodies::collection::<TunnelZoneHost>(TUNNEL_ZONE_HOST, TUNNEL_ZONE_HOSTS)
                .serve(get(list_hosts).post(add_host)),
        )
        .route(
            "/tunnel_zones/{id}/hosts/{hostId}",
            Bodies::item::<TunnelZoneHost>(TUNNEL_ZONE_HOST).serve(get(read_host).delete(remove_host)),
        )
}

impl Crud for TunnelZone {
    const NAME: &'static str = "TunnelZone";
    const SEGMENT: &'static str = "tunnel_zones";
    const MEDIA: &'static [&'static str] = TUNNEL_ZONE;
    const LIST_MEDIA: &'static [&'static str] = TUNNEL_ZONES;
    const HIDDEN: &'static [&'static str] = &["members"];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("hosts", Some(format!("{}/hosts", base.item("tunnel_zones", self.id))))]
    }
    fn scope(&self, _t: &Topo) -> Result<Scope, TopologyError> {
        Ok(Scope::Shared)
    }
    fn list(t: &Topo, _parent: Option<Uuid>) -> Result<Vec<Self>, TopologyError> {
        t.list()
    }
    fn create(t: &Topo, _parent: Option<Uuid>, v: Self) -> Result<Self, TopologyError> {
        t.create_tunnel_zone(v)
    }
    fn update(t: &Topo, v: Self) -> Result<Self, TopologyError> {
        t.update_tunnel_zone(v)
    }
    fn delete(t: &Topo, id: Uuid) -> Result<(), TopologyError> {
        t.delete_tunnel_zone(id)
    }
}

fn member_dto(base: &Base, zone: Uuid, m: &TunnelZoneHost) -> Value {
    let mut m = m.clone();
    m.tunnel_zone_id = Some(zone);
    let uri = format!("{}/hosts/{}", base.item("tunnel_zones", zone), m.host_id);
    media::dto(
        &m,
        uri,
        &[],
        vec![("host", Some(base.item("hosts", m.host_id))), ("tunnelZone", Some(base.item("tunnel_zones", zone)))],
    )
}

async fn list_hosts(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("TunnelZone", &id)?;
    let tz = st.run(move |t| t.get::<TunnelZone>(&id.to_string())).await?;
    let items = tz.members.iter().map(|m| member_dto(&base, id, m)).collect();
    Ok(media::ok(media::negotiate(&headers, TUNNEL_ZONE_HOSTS), Value::Array(items)))
}

async fn add_host(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let id = parse_id("TunnelZone", &id)?;
    let m: TunnelZoneHost = media::body(&headers, &bytes, TUNNEL_ZONE_HOST)?;
    let m = st.run(move |t| t.add_tunnel_zone_host(id, m)).await?;
    let v = member_dto(&base, id, &m);
    let uri = format!("{}/hosts/{}", base.item("tunnel_zones", id), m.host_id);
    Ok(media::created(&uri, media::negotiate(&headers, TUNNEL_ZONE_HOST), v))
}

async fn read_host(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path((id, host)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id("TunnelZone", &id)?;
    let host = parse_id("Host", &host)?;
    let tz = st.run(move |t| t.get::<TunnelZone>(&id.to_string())).await?;
    let m = tz
        .members
        .iter()
        .find(|m| m.host_id == host)
        .ok_or_else(|| ApiError::NotFound(format!("host {host} is not in tunnel zone {id}")))?;
    Ok(media::ok(media::negotiate(&headers, TUNNEL_ZONE_HOST), member_dto(&base, id, m)))
}

async fn remove_host(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path((id, host)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let id = parse_id("TunnelZone", &id)?;
    let host = parse_id("Host", &host)?;
    st.run(move |t| t.remove_tunnel_zone_host(id, host)).await?;
    Ok(media::no_content())
}
