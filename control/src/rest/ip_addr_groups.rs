//! IP address groups (`IpAddrGroup-v1`) and their addresses (`IpAddrGroupAddr-v1`):
//! `/ip_addr_groups`, `/ip_addr_groups/{id}` (no PUT, as in MidoNet), `/ip_addr_groups/{id}/ip_addrs`
//! and `/ip_addr_groups/{id}/versions/{version}/ip_addrs` with `.../{addr}` items. The address's
//! `version` (4 or 6, number or string) is its JSON type tag; on the versioned paths it must agree
//! with the path.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::Session;
use super::crud::{self, check_read, check_write, Crud, Ref, Scope, Topo};
use super::media::{self, IP_ADDR_GROUP, IP_ADDR_GROUPS, IP_ADDR_GROUP_ADDR, IP_ADDR_GROUP_ADDRS};
use super::openapi::Bodies;
use super::{parse_id, ApiError, AppState, Base, Path, Routes};
use crate::model::{IpAddrGroup, IpAddrGroupAddr};
use crate::topology::TopologyError;

/// IP-address-group paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/ip_addr_groups", crud::collection::<IpAddrGroup>())
        .route("/ip_addr_groups/{id}", crud::item::<IpAddrGroup>())
        .route("/ip_addr_groups/{id}/ip_addrs", addrs().serve(get(list_addrs).post(add_addr)))
        .route("/ip_addr_groups/{id}/ip_addrs/{addr}", addr().serve(get(read_addr).delete(remove_addr)))
        .route("/ip_addr_groups/{id}/versions/{version}/ip_addrs", addrs().serve(get(list_addrs_v).post(add_addr_v)))
        .route(
            "/ip_addr_groups/{id}/versions/{version}/ip_addrs/{addr}",
            addr().serve(get(read_addr_v).delete(remove_addr_v)),
        )
}

fn addrs() -> Bodies {
    Bodies::collection::<IpAddrGroupAddr>(IP_ADDR_GROUP_ADDR, IP_ADDR_GROUP_ADDRS)
}

fn addr() -> Bodies {
    Bodies::item::<IpAddrGroupAddr>(IP_ADDR_GROUP_ADDR)
}

impl Crud for IpAddrGroup {
    const NAME: &'static str = "IpAddrGroup";
    const SEGMENT: &'static str = "ip_addr_groups";
    const MEDIA: &'static [&'static str] = IP_ADDR_GROUP;
    const LIST_MEDIA: &'static [&'static str] = IP_ADDR_GROUPS;
    // Stored back-references MidoNet keeps out of the JSON (the addresses have their own paths).
    const HIDDEN: &'static [&'static str] = &["ipAddrPorts", "ruleIds"];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn references(&self) -> Vec<(&'static str, Ref)> {
        let chains = [("inboundChainId", self.inbound_chain_id), ("outboundChainId", self.outbound_chain_id)];
        chains.into_iter().filter_map(|(f, c)| c.map(|c| (f, Ref::Chain(c)))).collect()
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("addrs", Some(format!("{}/ip_addrs", base.item("ip_addr_groups", self.id))))]
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
        t.create_ip_addr_group(v)
    }
    fn delete(t: &Topo, id: Uuid) -> Result<(), TopologyError> {
        t.delete_ip_addr_group(id)
    }
}

fn version_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        4
    } else {
        6
    }
}

fn addr_dto(base: &Base, group: Uuid, ip: IpAddr) -> Value {
    let me = base.item("ip_addr_groups", group);
    json!({
        "addr": ip.to_string(),
        "ipAddrGroupId": group,
        "version": version_of(ip),
        "uri": format!("{me}/versions/{}/ip_addrs/{ip}", version_of(ip)),
        "ipAddrGroup": me,
    })
}

/// `4` or `6` from a path segment or a body's `version` (number or string); 400 otherwise.
fn parse_version(v: &Value) -> Result<u8, ApiError> {
    match v {
        Value::Number(n) if n.as_u64() == Some(4) || n.as_u64() == Some(6) => Ok(n.as_u64().unwrap_or(4) as u8),
        Value::String(s) if s == "4" || s == "6" => Ok(if s == "4" { 4 } else { 6 }),
        _ => Err(TopologyError::InvalidValue { field: "version", value: v.to_string() }.into()),
    }
}

/// The group, checked readable (or writable) by `session`.
async fn group(st: &AppState, session: &Session, id: Uuid, write: bool) -> Result<IpAddrGroup, ApiError> {
    let g = st.run(move |t| t.get::<IpAddrGroup>(&id.to_string())).await?;
    let scope = Scope::Tenant(g.tenant_id.clone());
    let what = || format!("IpAddrGroup {id}");
    if write {
        check_write(session, &scope, what)?;
    } else {
        check_read(session, &scope, what)?;
    }
    Ok(g)
}

fn parse_addr(addr: &str) -> Result<IpAddr, ApiError> {
    addr.parse().map_err(|_| ApiError::NotFound(format!("address {addr} not found")))
}

async fn list(
    st: AppState,
    session: Session,
    base: Base,
    headers: HeaderMap,
    id: String,
    version: Option<u8>,
) -> Result<Response, ApiError> {
    let id = parse_id("IpAddrGroup", &id)?;
    let g = group(&st, &session, id, false).await?;
    let items = g
        .ip_addr_ports
        .iter()
        .filter(|a| version.is_none_or(|v| v == version_of(a.ip_address)))
        .map(|a| addr_dto(&base, id, a.ip_address))
        .collect();
    Ok(media::ok(media::negotiate(&headers, IP_ADDR_GROUP_ADDRS), Value::Array(items)))
}

async fn add(
    st: AppState,
    session: Session,
    base: Base,
    headers: HeaderMap,
    id: String,
    version: Option<u8>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("IpAddrGroup", &id)?;
    let body: IpAddrGroupAddr = media::body(&headers, &bytes, IP_ADDR_GROUP_ADDR)?;
    let sent = body.version.as_ref().map(parse_version).transpose()?;
    if let (Some(path), Some(sent)) = (version, sent) {
        if path != sent {
            return Err(TopologyError::InvalidValue { field: "version", value: sent.to_string() }.into());
        }
    }
    group(&st, &session, id, true).await?;
    let addr = body.addr.clone();
    let ip = st.run(move |t| t.add_ip_addr(id, &addr, sent.or(version))).await?;
    let v = addr_dto(&base, id, ip);
    let uri = v["uri"].as_str().unwrap_or_default().to_string();
    Ok(media::created(&uri, media::negotiate(&headers, IP_ADDR_GROUP_ADDR), v))
}

async fn read(
    st: AppState,
    session: Session,
    base: Base,
    headers: HeaderMap,
    (id, addr): (String, String),
    version: Option<u8>,
) -> Result<Response, ApiError> {
    let id = parse_id("IpAddrGroup", &id)?;
    let ip = parse_addr(&addr)?;
    let g = group(&st, &session, id, false).await?;
    let found = g.ip_addr_ports.iter().any(|a| a.ip_address == ip) && version.is_none_or(|v| v == version_of(ip));
    if !found {
        return Err(TopologyError::AddressNotInGroup { group: id, addr: ip }.into());
    }
    Ok(media::ok(media::negotiate(&headers, IP_ADDR_GROUP_ADDR), addr_dto(&base, id, ip)))
}

async fn remove(
    st: AppState,
    session: Session,
    (id, addr): (String, String),
    version: Option<u8>,
) -> Result<Response, ApiError> {
    let id = parse_id("IpAddrGroup", &id)?;
    let ip = parse_addr(&addr)?;
    if version.is_some_and(|v| v != version_of(ip)) {
        return Err(TopologyError::AddressNotInGroup { group: id, addr: ip }.into());
    }
    group(&st, &session, id, true).await?;
    st.run(move |t| t.remove_ip_addr(id, ip)).await?;
    Ok(media::no_content())
}

fn path_version(v: &str) -> Result<u8, ApiError> {
    match v {
        "4" => Ok(4),
        "6" => Ok(6),
        _ => Err(ApiError::NotFound(format!("no IP version {v}"))),
    }
}

async fn list_addrs(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    list(st, session, base, headers, id, None).await
}

async fn list_addrs_v(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let version = path_version(&version)?;
    list(st, session, base, headers, id, Some(version)).await
}

async fn add_addr(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    add(st, session, base, headers, id, None, bytes).await
}

async fn add_addr_v(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let version = path_version(&version)?;
    add(st, session, base, headers, id, Some(version), bytes).await
}

async fn read_addr(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    read(st, session, base, headers, ids, None).await
}

async fn read_addr_v(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path((id, version, addr)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let version = path_version(&version)?;
    read(st, session, base, headers, (id, addr), Some(version)).await
}

async fn remove_addr(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    remove(st, session, ids, None).await
}

async fn remove_addr_v(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path((id, version, addr)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let version = path_version(&version)?;
    remove(st, session, (id, addr), Some(version)).await
}
