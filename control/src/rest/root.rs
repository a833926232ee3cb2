//! `GET /midonet-api`: the application resource with its collection URIs and `...Template` keys.

use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value};

use super::media::{self, APPLICATION};
use super::{Base, Routes};

/// (collection key, template key, path segment), as in `Application.java`.
const RESOURCES: &[(Option<&str>, Option<&str>, &str)] = &[
    (Some("routers"), Some("routerTemplate"), "routers"),
    (Some("bridges"), Some("bridgeTemplate"), "bridges"),
    (Some("ports"), Some("portTemplate"), "ports"),
    (Some("chains"), Some("chainTemplate"), "chains"),
    (None, Some("ruleTemplate"), "rules"),
    (None, Some("routeTemplate"), "routes"),
    (None, Some("bgpPeerTemplate"), "bgp_peers"),
    (None, Some("bgpNetworkTemplate"), "bgp_networks"),
    (Some("hosts"), Some("hostTemplate"), "hosts"),
    (Some("tunnelZones"), Some("tunnelZoneTemplate"), "tunnel_zones"),
    (Some("portGroups"), Some("portGroupTemplate"), "port_groups"),
    (Some("ipAddrGroups"), Some("ipAddrGroupTemplate"), "ip_addr_groups"),
    (Some("tenants"), Some("tenantTemplate"), "tenants"),
    (Some("systemState"), None, "system_state"),
];

/// The root resource (with and without the trailing slash).
pub fn routes() -> Routes {
    Routes::new().route("", get(root)).route("/", get(root))
}

async fn root(base: Base, headers: HeaderMap) -> Response {
    let mut map = Map::new();
    map.insert("uri".into(), Value::String(format!("{}/", base.0)));
    map.insert("version".into(), Value::String("v5.0".into()));
    for (collection, template, segment) in RESOURCES {
        if let Some(key) = collection {
            map.insert((*key).into(), Value::String(base.at(segment)));
        }
        if let Some(key) = template {
            map.insert((*key).into(), Value::String(format!("{}/{{id}}", base.at(segment))));
        }
    }
    media::ok(media::negotiate(&headers, APPLICATION), Value::Object(map))
}
