//! Bridges (`Bridge-v4`): `/bridges`, `/bridges/{id}` (their ports are in `ports`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::media::{self, BRIDGE, BRIDGES};
use super::{parse_id, ApiError, AppState, Base, PREFIX};
use crate::model::Bridge;

/// Bridge paths.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(&format!("{PREFIX}/bridges"), get(list).post(create))
        .route(&format!("{PREFIX}/bridges/{{id}}"), get(read).put(update).delete(remove))
}

fn dto(base: &Base, b: &Bridge) -> Value {
    let me = base.item("bridges", b.id);
    media::dto(
        b,
        me.clone(),
        &[],
        vec![
            ("inboundFilter", base.opt("chains", b.inbound_filter_id)),
            ("outboundFilter", base.opt("chains", b.outbound_filter_id)),
            ("ports", Some(format!("{me}/ports"))),
            ("peerPorts", Some(format!("{me}/peer_ports"))),
            ("vxLanPorts", Some(format!("{me}/vxlan_ports"))),
            ("macTable", Some(format!("{me}/mac_table"))),
            ("arpTable", Some(format!("{me}/arp_table"))),
            ("dhcpSubnets", Some(format!("{me}/dhcp"))),
            ("dhcpSubnet6s", Some(format!("{me}/dhcpV6"))),
            ("vlanMacTableTemplate", Some(format!("{me}/vlans/{{vlanId}}/mac_table"))),
            ("macPortTemplate", Some(format!("{me}/mac_table/{{macAddress}}_{{portId}}"))),
            ("vlanMacPortTemplate", Some(format!("{me}/vlans/{{vlanId}}/mac_table/{{macAddress}}_{{portId}}"))),
        ],
    )
}

async fn list(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let all = st.run(|t| t.list::<Bridge>()).await?;
    let tenant = q.get("tenant_id");
    let items = all.iter().filter(|b| tenant.is_none() || b.tenant_id.as_ref() == tenant).map(|b| dto(&base, b));
    Ok(media::ok(media::negotiate(&headers, BRIDGES), Value::Array(items.collect())))
}

async fn read(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Bridge", &id)?;
    let b = st.run(move |t| t.get::<Bridge>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, BRIDGE), dto(&base, &b)))
}

async fn create(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let b: Bridge = media::body(&headers, &bytes, BRIDGE)?;
    let b = st.run(move |t| t.create_bridge(b)).await?;
    Ok(media::created(&base.item("bridges", b.id), media::negotiate(&headers, BRIDGE), dto(&base, &b)))
}

async fn update(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Bridge", &id)?;
    let mut b: Bridge = media::body(&headers, &bytes, BRIDGE)?;
    b.id = id;
    st.run(move |t| t.update_bridge(b)).await?;
    Ok(media::no_content())
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Bridge", &id)?;
    st.run(move |t| t.delete_bridge(id)).await?;
    Ok(media::no_content())
}
