//! Tenants (`Tenant-v2`), read only: `/tenants`, `/tenants/{id}`. MidoNet reads tenants from its
//! auth provider (Keystone); here a tenant is any stored tenant plus every `tenantId` a router,
//! bridge, chain, port group or IP address group names (with `name` = id). An admin sees them all,
//! a tenant token only its own tenant. The links list the tenant's devices with `?tenant_id=`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde_json::Value;

use super::auth::{Role, Session};
use super::crud::Topo;
use super::media::{self, TENANT, TENANTS};
use super::openapi::Bodies;
use super::{encode_segment, ApiError, AppState, Base, Path, Routes};
use crate::model::{Bridge, Chain, IpAddrGroup, PortGroup, Router, Tenant};
use crate::topology::TopologyError;

/// Tenant paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/tenants", Bodies::collection::<Tenant>(TENANT, TENANTS).serve(get(list)))
        .route("/tenants/{id}", Bodies::item::<Tenant>(TENANT).serve(get(read)))
}

/// Every tenant, by id.
fn all(t: &Topo) -> Result<BTreeMap<String, Tenant>, TopologyError> {
    let mut out: BTreeMap<String, Tenant> = t.list::<Tenant>()?.into_iter().map(|t| (t.id.clone(), t)).collect();
    let mut ids: Vec<Option<String>> = Vec::new();
    ids.extend(t.list::<Router>()?.into_iter().map(|r| r.tenant_id));
    ids.extend(t.list::<Bridge>()?.into_iter().map(|b| b.tenant_id));
    ids.extend(t.list::<Chain>()?.into_iter().map(|c| c.tenant_id));
    ids.extend(t.list::<PortGroup>()?.into_iter().map(|g| g.tenant_id));
    ids.extend(t.list::<IpAddrGroup>()?.into_iter().map(|g| g.tenant_id));
    for id in ids.into_iter().flatten() {
        out.entry(id.clone()).or_insert_with(|| implied(&id));
    }
    Ok(out)
}

fn implied(id: &str) -> Tenant {
    Tenant { id: id.to_string(), name: Some(id.to_string()), description: None, enabled: true }
}

fn dto(base: &Base, t: &Tenant) -> Value {
    let q = |segment: &str| Some(format!("{}?tenant_id={}", base.at(segment), encode_segment(&t.id)));
    media::dto(
        t,
        base.item("tenants", encode_segment(&t.id)),
        &[],
        vec![
            ("routers", q("routers")),
            ("bridges", q("bridges")),
            ("chains", q("chains")),
            ("portGroups", q("port_groups")),
        ],
    )
}

/// Percent-encode what is not an unreserved URI character (tenant ids are free text).
async fn list(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut tenants = st.run(all).await?;
    if session.role == Role::Tenant {
        let mine = tenants.remove(&session.tenant_id).unwrap_or_else(|| implied(&session.tenant_id));
        tenants = BTreeMap::from([(mine.id.clone(), mine)]);
    }
    let items = tenants.values().map(|t| dto(&base, t)).collect();
    Ok(media::ok(media::negotiate(&headers, TENANTS), Value::Array(items)))
}

async fn read(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if session.role == Role::Tenant && id != session.tenant_id {
        return Err(ApiError::NotFound(format!("tenant {id} not found")));
    }
    let mut tenants = st.run(all).await?;
    let tenant = match tenants.remove(&id) {
        Some(t) => t,
        None if id == session.tenant_id => implied(&id),
        None => return Err(ApiError::NotFound(format!("tenant {id} not found"))),
    };
    Ok(media::ok(media::negotiate(&headers, TENANT), dto(&base, &tenant)))
}
