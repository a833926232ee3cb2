//! `GET /midonet-api`: the application resource with its collection URIs and `...Template` keys.

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::media::{self, APPLICATION};
use super::openapi::Bodies;
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
    Routes::new()
        .route("", Bodies::item::<Application>(APPLICATION).serve(get(root)))
        .route("/", Bodies::item::<Application>(APPLICATION).serve(get(root)))
}

/// The schema of the root resource, from the table its answer is built from.
pub(crate) struct Application;

impl PartialSchema for Application {
    fn schema() -> RefOr<Schema> {
        let string = |format: &str, description: &str| {
            let format = SchemaFormat::Custom(format.to_string());
            ObjectBuilder::new().schema_type(Type::String).format(Some(format)).description(Some(description))
        };
        let mut object = ObjectBuilder::new()
            .description(Some("The root resource (`Application-v5`): the API's collections and URI templates."))
            .property("uri", string("uri", "The API's base URI."))
            .property("version", ObjectBuilder::new().schema_type(Type::String).description(Some("`v5.0`.")))
            .required("uri")
            .required("version");
        for (collection, template, _) in RESOURCES {
            if let Some(key) = collection {
                object = object.property(*key, string("uri", "A collection's URI.")).required(*key);
            }
            if let Some(key) = template {
                object =
                    object.property(*key, string("uri-template", "An item's URI, `{id}` to fill in.")).required(*key);
            }
        }
        RefOr::T(Schema::Object(object.build()))
    }
}

impl ToSchema for Application {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Application")
    }
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
