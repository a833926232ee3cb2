//! Ports (`Port-v3`): `/routers/{id}/ports`, `/bridges/{id}/ports`, `/ports`, `/ports/{id}` and
//! `/ports/{id}/link` (`PortLink-v1`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;

use super::media::{self, PORT, PORTS, PORT_LINK};
use super::{parse_id, ApiError, AppState, Base, PREFIX};
use crate::model::{Port, PortLink};

/// Port paths.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(&format!("{PREFIX}/routers/{{id}}/ports"), get(list_device).post(create))
        .route(&format!("{PREFIX}/bridges/{{id}}/ports"), get(list_device).post(create))
        .route(&format!("{PREFIX}/ports"), get(list))
        .route(&format!("{PREFIX}/ports/{{id}}"), get(read).put(update).delete(remove))
        .route(&format!("{PREFIX}/ports/{{id}}/link"), post(link).delete(unlink))
}

fn dto(base: &Base, p: &Port) -> Value {
    let me = base.item("ports", p.id);
    let device = if p.port_type.is_router() { "routers" } else { "bridges" };
    let host_interface_port = p.host_id.map(|h| format!("{}/ports/{}", base.item("hosts", h), p.id));
    media::dto(
        p,
        me.clone(),
        &[],
        vec![
            ("device", base.opt(device, p.device_id)),
            ("host", base.opt("hosts", p.host_id)),
            ("peer", base.opt("ports", p.peer_id)),
            ("link", Some(format!("{me}/link"))),
            ("portGroups", Some(format!("{me}/port_groups"))),
            ("hostInterfacePort", host_interface_port),
            ("inboundFilter", base.opt("chains", p.inbound_filter_id)),
            ("outboundFilter", base.opt("chains", p.outbound_filter_id)),
        ],
    )
}

async fn list_device(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Device", &id)?;
    let ports = st.run(move |t| t.device_ports(id)).await?;
    Ok(media::ok(media::negotiate(&headers, PORTS), Value::Array(ports.iter().map(|p| dto(&base, p)).collect())))
}

async fn list(State(st): State<AppState>, base: Base, headers: HeaderMap) -> Result<Response, ApiError> {
    let ports = st.run(|t| t.list::<Port>()).await?;
    Ok(media::ok(media::negotiate(&headers, PORTS), Value::Array(ports.iter().map(|p| dto(&base, p)).collect())))
}

async fn create(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let device = parse_id("Device", &id)?;
    let p: Port = media::body(&headers, &bytes, PORT)?;
    let p = st.run(move |t| t.create_port(device, p)).await?;
    Ok(media::created(&base.item("ports", p.id), media::negotiate(&headers, PORT), dto(&base, &p)))
}

async fn read(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    let p = st.run(move |t| t.get::<Port>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, PORT), dto(&base, &p)))
}

async fn update(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    let mut p: Port = media::body(&headers, &bytes, PORT)?;
    p.id = id;
    st.run(move |t| t.update_port(p)).await?;
    Ok(media::no_content())
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    st.run(move |t| t.delete_port(id)).await?;
    Ok(media::no_content())
}

async fn link(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    let body: PortLink = media::body(&headers, &bytes, PORT_LINK)?;
    let peer = body.peer_id;
    st.run(move |t| t.link_ports(id, peer)).await?;
    let me = base.item("ports", id);
    let value = serde_json::json!({
        "portId": id, "peerId": peer, "uri": format!("{me}/link"), "port": me, "peer": base.item("ports", peer),
    });
    Ok(media::created(&format!("{me}/link"), media::negotiate(&headers, PORT_LINK), value))
}

async fn unlink(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Port", &id)?;
    st.run(move |t| t.unlink_port(id)).await?;
    Ok(media::no_content())
}
