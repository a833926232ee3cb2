//! MidoNet vendor media types, content negotiation and the JSON helpers every resource uses.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;

/// Plain JSON, accepted everywhere a vendor type is.
pub const JSON: &str = "application/json";
/// `Error-v1`.
pub const ERROR: &str = "application/vnd.org.midonet.Error-v1+json";
/// `Token-v1` (login).
pub const TOKEN: &[&str] = &["application/vnd.org.midonet.Token-v1+json"];
/// `Application-v5` (root).
pub const APPLICATION: &[&str] = &["application/vnd.org.midonet.Application-v5+json"];
/// `Router-v3`.
pub const ROUTER: &[&str] =
    &["application/vnd.org.midonet.Router-v3+json", "application/vnd.org.midonet.Router-v2+json"];
/// `collection.Router-v3`.
pub const ROUTERS: &[&str] =
    &["application/vnd.org.midonet.collection.Router-v3+json", "application/vnd.org.midonet.collection.Router-v2+json"];
/// `Bridge-v4` (and v5).
pub const BRIDGE: &[&str] =
    &["application/vnd.org.midonet.Bridge-v4+json", "application/vnd.org.midonet.Bridge-v5+json"];
/// `collection.Bridge-v4` (and v5).
pub const BRIDGES: &[&str] =
    &["application/vnd.org.midonet.collection.Bridge-v4+json", "application/vnd.org.midonet.collection.Bridge-v5+json"];
/// `Port-v3` (and v4, v2).
pub const PORT: &[&str] = &[
    "application/vnd.org.midonet.Port-v3+json",
    "application/vnd.org.midonet.Port-v4+json",
    "application/vnd.org.midonet.Port-v2+json",
];
/// `collection.Port-v3` (and v4, v2).
pub const PORTS: &[&str] = &[
    "application/vnd.org.midonet.collection.Port-v3+json",
    "application/vnd.org.midonet.collection.Port-v4+json",
    "application/vnd.org.midonet.collection.Port-v2+json",
];
/// `PortLink-v1`.
pub const PORT_LINK: &[&str] = &["application/vnd.org.midonet.PortLink-v1+json"];
/// `Route-v1`.
pub const ROUTE: &[&str] = &["application/vnd.org.midonet.Route-v1+json"];
/// `collection.Route-v1`.
pub const ROUTES: &[&str] = &["application/vnd.org.midonet.collection.Route-v1+json"];
/// `Chain-v1`.
pub const CHAIN: &[&str] = &["application/vnd.org.midonet.Chain-v1+json"];
/// `collection.Chain-v1`.
pub const CHAINS: &[&str] = &["application/vnd.org.midonet.collection.Chain-v1+json"];
/// `Rule-v2`.
pub const RULE: &[&str] = &["application/vnd.org.midonet.Rule-v2+json"];
/// `collection.Rule-v2`.
pub const RULES: &[&str] = &["application/vnd.org.midonet.collection.Rule-v2+json"];
/// `Host-v3`.
pub const HOST: &[&str] = &["application/vnd.org.midonet.Host-v3+json", "application/vnd.org.midonet.Host-v2+json"];
/// `collection.Host-v3`.
pub const HOSTS: &[&str] =
    &["application/vnd.org.midonet.collection.Host-v3+json", "application/vnd.org.midonet.collection.Host-v2+json"];
/// `TunnelZone-v1`.
pub const TUNNEL_ZONE: &[&str] = &["application/vnd.org.midonet.TunnelZone-v1+json"];
/// `collection.TunnelZone-v1`.
pub const TUNNEL_ZONES: &[&str] = &["application/vnd.org.midonet.collection.TunnelZone-v1+json"];
/// `TunnelZoneHost-v1` (and the GRE form).
pub const TUNNEL_ZONE_HOST: &[&str] =
    &["application/vnd.org.midonet.TunnelZoneHost-v1+json", "application/vnd.org.midonet.GreTunnelZoneHost-v1+json"];
/// `collection.TunnelZoneHost-v1` (and the GRE form).
pub const TUNNEL_ZONE_HOSTS: &[&str] = &[
    "application/vnd.org.midonet.collection.TunnelZoneHost-v1+json",
    "application/vnd.org.midonet.collection.GreTunnelZoneHost-v1+json",
];
/// `Interface-v1`.
pub const INTERFACE: &[&str] = &["application/vnd.org.midonet.Interface-v1+json"];
/// `collection.Interface-v1`.
pub const INTERFACES: &[&str] = &["application/vnd.org.midonet.collection.Interface-v1+json"];
/// `HostInterfacePort-v1`.
pub const HOST_INTERFACE_PORT: &[&str] = &["application/vnd.org.midonet.HostInterfacePort-v1+json"];
/// `collection.HostInterfacePort-v1`.
pub const HOST_INTERFACE_PORTS: &[&str] = &["application/vnd.org.midonet.collection.HostInterfacePort-v1+json"];
/// `PortGroup-v1`.
pub const PORT_GROUP: &[&str] = &["application/vnd.org.midonet.PortGroup-v1+json"];
/// `collection.PortGroup-v1`.
pub const PORT_GROUPS: &[&str] = &["application/vnd.org.midonet.collection.PortGroup-v1+json"];
/// `PortGroupPort-v1`.
pub const PORT_GROUP_PORT: &[&str] = &["application/vnd.org.midonet.PortGroupPort-v1+json"];
/// `collection.PortGroupPort-v1`.
pub const PORT_GROUP_PORTS: &[&str] = &["application/vnd.org.midonet.collection.PortGroupPort-v1+json"];
/// `IpAddrGroup-v1`.
pub const IP_ADDR_GROUP: &[&str] = &["application/vnd.org.midonet.IpAddrGroup-v1+json"];
/// `collection.IpAddrGroup-v1`.
pub const IP_ADDR_GROUPS: &[&str] = &["application/vnd.org.midonet.collection.IpAddrGroup-v1+json"];
/// `IpAddrGroupAddr-v1`.
pub const IP_ADDR_GROUP_ADDR: &[&str] = &["application/vnd.org.midonet.IpAddrGroupAddr-v1+json"];
/// `collection.IpAddrGroupAddr-v1`.
pub const IP_ADDR_GROUP_ADDRS: &[&str] = &["application/vnd.org.midonet.collection.IpAddrGroupAddr-v1+json"];
/// `BgpPeer-v1`.
pub const BGP_PEER: &[&str] = &["application/vnd.org.midonet.BgpPeer-v1+json"];
/// `collection.BgpPeer-v1`.
pub const BGP_PEERS: &[&str] = &["application/vnd.org.midonet.collection.BgpPeer-v1+json"];
/// `BgpNetwork-v1`.
pub const BGP_NETWORK: &[&str] = &["application/vnd.org.midonet.BgpNetwork-v1+json"];
/// `collection.BgpNetwork-v1`.
pub const BGP_NETWORKS: &[&str] = &["application/vnd.org.midonet.collection.BgpNetwork-v1+json"];
/// `Tenant-v2`.
pub const TENANT: &[&str] = &["application/vnd.org.midonet.Tenant-v2+json"];
/// `collection.Tenant-v2`.
pub const TENANTS: &[&str] = &["application/vnd.org.midonet.collection.Tenant-v2+json"];
/// `SystemState-v2`.
pub const SYSTEM_STATE: &[&str] = &["application/vnd.org.midonet.SystemState-v2+json"];

fn essence(v: &str) -> &str {
    v.split(';').next().unwrap_or("").trim()
}

/// The media type to answer with: the first of `offered` the `Accept` header names, plain JSON when
/// only that is asked for, otherwise the resource's main vendor type.
pub fn negotiate(headers: &HeaderMap, offered: &[&'static str]) -> &'static str {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let asked: Vec<&str> = accept.split(',').map(essence).collect();
    if let Some(m) = offered.iter().find(|m| asked.iter().any(|a| a.eq_ignore_ascii_case(m))) {
        return m;
    }
    if asked.contains(&JSON) {
        return JSON;
    }
    offered[0]
}

/// Decode a POST/PUT body: 415 unless its `Content-Type` is one of `accepted` or plain JSON, 400 unless
/// it is valid JSON for `T`.
pub fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Bytes, accepted: &[&str]) -> Result<T, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(essence).unwrap_or("");
    if !(ct.eq_ignore_ascii_case(JSON) || accepted.iter().any(|m| m.eq_ignore_ascii_case(ct))) {
        return Err(ApiError::UnsupportedMediaType(ct.to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadBody(e.to_string()))
}

/// A 200 response with `value` as `media`.
pub fn ok(media: &'static str, value: Value) -> Response {
    with_type(StatusCode::OK, media, value.to_string())
}

/// A 201 response: `Location` header and the created object as `media`.
pub fn created(location: &str, media: &'static str, value: Value) -> Response {
    let mut resp = with_type(StatusCode::CREATED, media, value.to_string());
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => ApiError::Internal(format!("bad Location {location:?}")).into_response(),
    }
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn with_type(status: StatusCode, media: &'static str, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    resp
}

/// The JSON of a model object with `uri` and `links` added and the hidden stored fields removed.
pub fn dto<T: Serialize>(obj: &T, uri: String, hidden: &[&str], links: Vec<(&str, Option<String>)>) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for h in hidden {
            map.remove(*h);
        }
        map.insert("uri".into(), Value::String(uri));
        for (k, link) in links {
            map.insert(k.into(), link.map(Value::String).unwrap_or(Value::Null));
        }
    }
    v
}
