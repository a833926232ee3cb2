//! Tunnel zones (`TunnelZone-v1`) and their members (`TunnelZoneHost-v1`): `/tunnel_zones`,
//! `/tunnel_zones/{id}`, `/tunnel_zones/{id}/hosts`, `/tunnel_zones/{id}/hosts/{hostId}`. Writes are
//! admin-only.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde_json::Value;

use super::auth::{admin_only, Session};
use super::media::{self, TUNNEL_ZONE, TUNNEL_ZONES, TUNNEL_ZONE_HOST, TUNNEL_ZONE_HOSTS};
use super::{parse_id, ApiError, AppState, Base, PREFIX};
use crate::model::{TunnelZone, TunnelZoneHost};

/// Tunnel-zone paths.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(&format!("{PREFIX}/tunnel_zones"), get(list).post(create))
        .route(&format!("{PREFIX}/tunnel_zones/{{id}}"), get(read).put(update).delete(remove))
        .route(&format!("{PREFIX}/tunnel_zones/{{id}}/hosts"), get(list_hosts).post(add_host))
        .route(&format!("{PREFIX}/tunnel_zones/{{id}}/hosts/{{host}}"), get(read_host).delete(remove_host))
}

fn dto(base: &Base, tz: &TunnelZone) -> Value {
    let me = base.item("tunnel_zones", tz.id);
    media::dto(tz, me.clone(), &["members"], vec![("hosts", Some(format!("{me}/hosts")))])
}

fn member_dto(base: &Base, zone: uuid::Uuid, m: &TunnelZoneHost) -> Value {
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

async fn list(State(st): State<AppState>, base: Base, headers: HeaderMap) -> Result<Response, ApiError> {
    let all = st.run(|t| t.list::<TunnelZone>()).await?;
    Ok(media::ok(media::negotiate(&headers, TUNNEL_ZONES), Value::Array(all.iter().map(|z| dto(&base, z)).collect())))
}

async fn read(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("TunnelZone", &id)?;
    let tz = st.run(move |t| t.get::<TunnelZone>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, TUNNEL_ZONE), dto(&base, &tz)))
}

async fn create(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let tz: TunnelZone = media::body(&headers, &bytes, TUNNEL_ZONE)?;
    let tz = st.run(move |t| t.create_tunnel_zone(tz)).await?;
    Ok(media::created(&base.item("tunnel_zones", tz.id), media::negotiate(&headers, TUNNEL_ZONE), dto(&base, &tz)))
}

async fn update(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let id = parse_id("TunnelZone", &id)?;
    let mut tz: TunnelZone = media::body(&headers, &bytes, TUNNEL_ZONE)?;
    tz.id = id;
    st.run(move |t| t.update_tunnel_zone(tz)).await?;
    Ok(media::no_content())
}

async fn remove(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let id = parse_id("TunnelZone", &id)?;
    st.run(move |t| t.delete_tunnel_zone(id)).await?;
    Ok(media::no_content())
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
