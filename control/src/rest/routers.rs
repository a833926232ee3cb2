//! Routers (`Router-v3`) and their routes (`Route-v1`): `/routers`, `/routers/{id}`,
//! `/routers/{id}/routes`, `/routes/{id}`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::media::{self, ROUTE, ROUTER, ROUTERS, ROUTES};
use super::{parse_id, ApiError, AppState, Base, PREFIX};
use crate::model::{Route, Router};

/// Router and route paths.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(&format!("{PREFIX}/routers"), get(list).post(create))
        .route(&format!("{PREFIX}/routers/{{id}}"), get(read).put(update).delete(remove))
        .route(&format!("{PREFIX}/routers/{{id}}/routes"), get(list_routes).post(create_route))
        .route(&format!("{PREFIX}/routes/{{id}}"), get(read_route).delete(remove_route))
}

fn dto(base: &Base, r: &Router) -> Value {
    let me = base.item("routers", r.id);
    media::dto(
        r,
        me.clone(),
        &[],
        vec![
            ("inboundFilter", base.opt("chains", r.inbound_filter_id)),
            ("outboundFilter", base.opt("chains", r.outbound_filter_id)),
            ("localRedirectChain", base.opt("chains", r.local_redirect_chain_id)),
            ("forwardChain", base.opt("chains", r.forward_chain_id)),
            ("loadBalancer", base.opt("load_balancers", r.load_balancer_id)),
            ("ports", Some(format!("{me}/ports"))),
            ("peerPorts", Some(format!("{me}/peer_ports"))),
            ("routes", Some(format!("{me}/routes"))),
            ("bgpNetworks", Some(format!("{me}/bgp_networks"))),
            ("bgpPeers", Some(format!("{me}/bgp_peers"))),
        ],
    )
}

fn route_dto(base: &Base, r: &Route) -> Value {
    media::dto(r, base.item("routes", r.id), &[], vec![("router", base.opt("routers", r.router_id))])
}

async fn list(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let all = st.run(|t| t.list::<Router>()).await?;
    let tenant = q.get("tenant_id");
    let items = all.iter().filter(|r| tenant.is_none() || r.tenant_id.as_ref() == tenant).map(|r| dto(&base, r));
    Ok(media::ok(media::negotiate(&headers, ROUTERS), Value::Array(items.collect())))
}

async fn read(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Router", &id)?;
    let r = st.run(move |t| t.get::<Router>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, ROUTER), dto(&base, &r)))
}

async fn create(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let r: Router = media::body(&headers, &bytes, ROUTER)?;
    let r = st.run(move |t| t.create_router(r)).await?;
    Ok(media::created(&base.item("routers", r.id), media::negotiate(&headers, ROUTER), dto(&base, &r)))
}

async fn update(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Router", &id)?;
    let mut r: Router = media::body(&headers, &bytes, ROUTER)?;
    r.id = id;
    st.run(move |t| t.update_router(r)).await?;
    Ok(media::no_content())
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Router", &id)?;
    st.run(move |t| t.delete_router(id)).await?;
    Ok(media::no_content())
}

async fn list_routes(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Router", &id)?;
    let routes = st.run(move |t| t.router_routes(id)).await?;
    let items = routes.iter().map(|r| route_dto(&base, r)).collect();
    Ok(media::ok(media::negotiate(&headers, ROUTES), Value::Array(items)))
}

async fn create_route(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Router", &id)?;
    let r: Route = media::body(&headers, &bytes, ROUTE)?;
    let r = st.run(move |t| t.create_route(id, r)).await?;
    Ok(media::created(&base.item("routes", r.id), media::negotiate(&headers, ROUTE), route_dto(&base, &r)))
}

async fn read_route(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Route", &id)?;
    let r = st.run(move |t| t.get::<Route>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, ROUTE), route_dto(&base, &r)))
}

async fn remove_route(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Route", &id)?;
    st.run(move |t| t.delete_route(id)).await?;
    Ok(media::no_content())
}
