//! The OpenAPI 3.1 document served at `/midonet-api/openapi.json` without authentication.
//!
//! Two sources make it. `openapi_paths.json` is written by hand: the paths, their methods,
//! summaries, parameters and status codes. Everything about bodies is generated: each route
//! declares its [`Bodies`] where it is registered (`Routes::route`; the CRUD routes take them
//! from their [`super::crud::Crud`] type's media types and hidden fields), and this module adds,
//! per operation, the request body of a POST or PUT and the content of its 200/201 answer, keyed
//! by the vendor media types the handlers negotiate with (plus plain JSON, which they also take
//! and answer), and `Error-v1` for every error status. `components.schemas` holds the schemas
//! utoipa derives from the model types (serde's renames, defaults and flattening honoured), as
//! the API shows them: hidden stored fields removed, `uri` and the link fields the handlers add
//! ([`LINKS`]) as read-only properties. Version 3.1 because utoipa writes JSON Schema 2020-12
//! (`"type": ["string", "null"]` where 3.0 had `nullable`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use super::auth::TokenBody;
use super::error::ErrorBody;
use super::media::{ERROR, JSON, TOKEN};
use super::{AppState, PREFIX};

/// The hand-written part: paths, methods, summaries, parameters, status codes.
const PATHS_JSON: &str = include_str!("openapi_paths.json");

/// The fields the handlers add to the objects they answer, besides `uri`: links to related
/// objects and collections (`null` when there is none), and URI templates (names ending in
/// `Template`). By schema name. The schema tests hold every GET's answer to them.
const LINKS: &[(&str, &[&str])] = &[
    (
        "Router",
        &[
            "inboundFilter",
            "outboundFilter",
            "localRedirectChain",
            "forwardChain",
            "loadBalancer",
            "ports",
            "peerPorts",
            "routes",
            "bgpNetworks",
            "bgpPeers",
        ],
    ),
    (
        "Bridge",
        &[
            "inboundFilter",
            "outboundFilter",
            "ports",
            "peerPorts",
            "vxLanPorts",
            "macTable",
            "arpTable",
            "dhcpSubnets",
            "dhcpSubnet6s",
            "vlanMacTableTemplate",
            "macPortTemplate",
            "vlanMacPortTemplate",
        ],
    ),
    ("Port", &["device", "host", "peer", "link", "portGroups", "hostInterfacePort", "inboundFilter", "outboundFilter"]),
    ("PortLink", &["port", "peer"]),
    ("Route", &["router"]),
    ("Chain", &["rules"]),
    ("Rule", &["chain"]),
    ("Host", &["interfaces", "ports"]),
    ("Interface", &["host"]),
    ("HostInterfacePort", &["host", "port"]),
    ("TunnelZone", &["hosts"]),
    ("TunnelZoneHost", &["host", "tunnelZone"]),
    ("PortGroup", &["ports"]),
    ("PortGroupPort", &["port", "portGroup"]),
    ("IpAddrGroup", &["addrs"]),
    ("IpAddrGroupAddr", &["ipAddrGroup"]),
    ("BgpPeer", &["router"]),
    ("BgpNetwork", &["router"]),
    ("Tenant", &["routers", "bridges", "chains", "portGroups"]),
    ("SystemState", &[]),
];

type Named = (String, RefOr<Schema>);

fn named<T: ToSchema>() -> Named {
    (T::name().into_owned(), T::schema())
}

/// What the operations of one path take and answer: one object's schema and media types, and for
/// a collection path the media types of the list its GET answers. A POST or PUT takes one object;
/// a POST answers the object it created.
pub(crate) struct Bodies {
    schema: fn() -> Named,
    /// The schemas `schema` refers to.
    dependencies: fn(&mut Vec<Named>),
    /// Stored fields the handlers remove from the answer.
    hidden: &'static [&'static str],
    item: &'static [&'static str],
    list: Option<&'static [&'static str]>,
}

impl Bodies {
    /// A path whose GET answers one `T` as one of `media`.
    pub(crate) fn item<T: ToSchema>(media: &'static [&'static str]) -> Bodies {
        Bodies { schema: named::<T>, dependencies: T::schemas, hidden: &[], item: media, list: None }
    }

    /// A collection path: GET answers a list of `T` as one of `list`, POST takes and answers one
    /// `T` as one of `item`.
    pub(crate) fn collection<T: ToSchema>(item: &'static [&'static str], list: &'static [&'static str]) -> Bodies {
        Bodies { list: Some(list), ..Bodies::item::<T>(item) }
    }

    /// The same, with stored fields the answers leave out.
    pub(crate) fn hiding(self, hidden: &'static [&'static str]) -> Bodies {
        Bodies { hidden, ..self }
    }

    /// The media types a path's item and (for a collection) its list are served as, preferred first.
    #[cfg(test)]
    pub(crate) fn media(&self) -> (&'static [&'static str], Option<&'static [&'static str]>) {
        (self.item, self.list)
    }

    /// These bodies for `handlers`, to register with `Routes::route`.
    pub(crate) fn serve(self, handlers: MethodRouter<AppState>) -> Served {
        Served { handlers, bodies: self }
    }

    fn schema_name(&self) -> String {
        (self.schema)().0
    }
}

/// A path's handlers with what they take and answer.
pub(crate) struct Served {
    pub(crate) handlers: MethodRouter<AppState>,
    pub(crate) bodies: Bodies,
}

/// The served document's text, built on first use.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| build().to_string())
}

/// `GET /midonet-api/openapi.json`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        &format!("{PREFIX}/openapi.json"),
        get(|| async { ([(header::CONTENT_TYPE, JSON)], document()).into_response() }),
    )
}

/// A content map: the same schema under each media type.
fn content(media: &[&str], schema: &Value) -> Value {
    Value::Object(media.iter().map(|m| (m.to_string(), json!({ "schema": schema }))).collect())
}

/// `media` and plain JSON, which every handler also takes and answers.
fn with_json(media: &[&'static str]) -> Vec<&'static str> {
    media.iter().copied().chain([JSON]).collect()
}

fn build() -> Value {
    // Compiled in: a test that parses and serves the result would fail first.
    let mut doc: Value = serde_json::from_str(PATHS_JSON).expect("openapi_paths.json is JSON");
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    add_schema(&mut schemas, named::<ErrorBody>(), <ErrorBody as ToSchema>::schemas, &[]);
    add_schema(&mut schemas, named::<TokenBody>(), <TokenBody as ToSchema>::schemas, &[]);

    for (path, bodies) in super::protected_routes().bodies {
        let key = if path.is_empty() { "/".to_string() } else { path };
        add_schema(&mut schemas, (bodies.schema)(), bodies.dependencies, bodies.hidden);
        // A served path missing from the document is the resources test's to report.
        let Some(operations) = doc["paths"].get_mut(&key).and_then(Value::as_object_mut) else { continue };
        for (method, operation) in operations.iter_mut() {
            describe_operation(method, operation, &bodies);
        }
    }
    let token = content(TOKEN, &schema_ref(&named::<TokenBody>().0));
    doc["paths"]["/login"]["post"]["responses"]["200"]["content"] = token;
    describe_unavailable(&mut doc["paths"]);
    describe_errors(&mut doc["paths"]);

    for schema in schemas.values_mut() {
        name_unsigned_formats(schema);
    }
    for (name, links) in LINKS {
        if let Some(schema) = schemas.get_mut(*name) {
            add_links(schema, links);
        }
    }
    let reached = reached(&doc["paths"], &schemas);
    schemas.retain(|name, _| reached.contains(name));
    doc["components"]["schemas"] = Value::Object(schemas.into_iter().collect());
    doc
}

const SCHEMAS: &str = "#/components/schemas/";

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

/// The names of the schemas `v` refers to.
fn referred(v: &Value, names: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            names.extend(
                map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(SCHEMAS)).map(String::from),
            );
            map.values().for_each(|v| referred(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| referred(v, names)),
        _ => {}
    }
}

/// The schemas the paths use, directly or through other schemas: only a hidden field's type
/// (`IpAddrPorts`) is not.
fn reached(paths: &Value, schemas: &BTreeMap<String, Value>) -> BTreeSet<String> {
    let mut todo = Vec::new();
    referred(paths, &mut todo);
    let mut reached = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if let Some(schema) = schemas.get(&name).filter(|_| !reached.contains(&name)) {
            referred(schema, &mut todo);
            reached.insert(name);
        }
    }
    reached
}

/// Adds `schema` and its dependencies under their names, `hidden` properties removed.
fn add_schema(
    schemas: &mut BTreeMap<String, Value>,
    (name, schema): Named,
    dependencies: fn(&mut Vec<Named>),
    hidden: &[&str],
) {
    let mut all = vec![(name.clone(), schema)];
    dependencies(&mut all);
    for (dependency, schema) in all {
        let mut schema = serde_json::to_value(schema).unwrap_or(Value::Null);
        if dependency == name {
            remove_properties(&mut schema, hidden);
        }
        schemas.entry(dependency).or_insert(schema);
    }
}

/// The request body and the 200/201 content of one operation.
fn describe_operation(method: &str, operation: &mut Value, bodies: &Bodies) {
    let item = schema_ref(&bodies.schema_name());
    let item_content = content(&with_json(bodies.item), &item);
    let responses = &mut operation["responses"];
    match method {
        "get" => {
            responses["200"]["content"] = match bodies.list {
                Some(list) => content(&with_json(list), &json!({ "type": "array", "items": item })),
                None => item_content,
            };
        }
        "post" | "put" => {
            if let Some(created) = responses.get_mut("201") {
                created["content"] = item_content.clone();
            }
            operation["requestBody"] = json!({ "required": true, "content": item_content });
        }
        _ => {}
    }
}

/// Paths whose answers never touch the store, so never 503.
const STORELESS: &[&str] = &["/login", "/", "/openapi.json"];

/// 503 on every operation that reads or writes the store: what a client must retry later, not
/// correct. Reads meet it when the store cannot be reached (ZooKeeper lost); writes also when the
/// system state is READONLY (`TopologyError::ReadOnly`) or they lost the race to other writers
/// too many times (`TopologyError::Busy`).
fn describe_unavailable(paths: &mut Value) {
    let Some(paths) = paths.as_object_mut() else { return };
    for (path, operations) in paths.iter_mut().filter(|(path, _)| !STORELESS.contains(&path.as_str())) {
        let Some(operations) = operations.as_object_mut() else { continue };
        for (method, operation) in operations.iter_mut() {
            let description = match (method.as_str(), path.as_str()) {
                ("get", _) => "The store cannot be reached (ZooKeeper lost); retry later (Error-v1)",
                (_, "/system_state") => {
                    "The store cannot be reached (ZooKeeper lost), or the write lost the race to other writers too many times; retry later (Error-v1)"
                }
                _ => {
                    "The system state is READONLY, the store cannot be reached (ZooKeeper lost), or the write lost the race to other writers too many times; retry later (Error-v1)"
                }
            };
            operation["responses"]["503"] = json!({ "description": description });
        }
    }
}

/// `Error-v1` as the content of every 4xx and 5xx answer.
fn describe_errors(paths: &mut Value) {
    let error = content(&[ERROR], &schema_ref(&named::<ErrorBody>().0));
    let operations = paths.as_object_mut().into_iter().flat_map(|p| p.values_mut());
    for operation in operations.flat_map(|o| o.as_object_mut()).flat_map(|o| o.values_mut()) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        for (status, response) in responses.iter_mut() {
            if status.starts_with('4') || status.starts_with('5') {
                response["content"] = error.clone();
            }
        }
    }
}

/// The object part of a schema: itself, or the inline member of an `allOf` (a flattened struct).
fn object_part(schema: &mut Value) -> Option<&mut Map<String, Value>> {
    if schema.get("properties").is_some() {
        return schema.as_object_mut();
    }
    let parts = schema.get_mut("allOf")?.as_array_mut()?;
    parts.iter_mut().rev().find(|p| p.get("properties").is_some())?.as_object_mut()
}

fn remove_properties(schema: &mut Value, names: &[&str]) {
    let Some(object) = object_part(schema) else { return };
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        properties.retain(|k, _| !names.contains(&k.as_str()));
    }
    if let Some(required) = object.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| !r.as_str().is_some_and(|r| names.contains(&r)));
    }
}

/// `uri` and `links` as read-only properties: the handlers add them, and ignore them on input.
fn add_links(schema: &mut Value, links: &[&str]) {
    let Some(properties) = object_part(schema).and_then(|o| o.get_mut("properties")).and_then(Value::as_object_mut)
    else {
        return;
    };
    let uri = json!({ "type": "string", "format": "uri", "readOnly": true, "description": "This object's URI." });
    properties.insert("uri".into(), uri);
    for link in links {
        let link_schema = if link.ends_with("Template") {
            json!({ "type": "string", "format": "uri-template", "readOnly": true })
        } else {
            json!({ "type": ["string", "null"], "format": "uri", "readOnly": true })
        };
        properties.insert(link.to_string(), link_schema);
    }
}

/// utoipa names the unsigned formats after its enum variants (`u-int32`); the OpenAPI format
/// registry's names are `uint8` .. `uint64`. The bound comes with the Rust type: serde refuses
/// more.
fn name_unsigned_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let bound = match map.get("format").and_then(Value::as_str) {
                Some("u-int8") => Some(("uint8", u64::from(u8::MAX))),
                Some("u-int16") => Some(("uint16", u64::from(u16::MAX))),
                Some("u-int32") => Some(("uint32", u64::from(u32::MAX))),
                Some("u-int64") => Some(("uint64", u64::MAX)),
                _ => None,
            };
            if let Some((format, maximum)) = bound {
                map.insert("format".into(), Value::from(format));
                map.insert("maximum".into(), Value::from(maximum));
            }
            map.values_mut().for_each(name_unsigned_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(name_unsigned_formats),
        _ => {}
    }
}
