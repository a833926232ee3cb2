//! The OpenAPI document's bodies against what the API really takes and answers. The document is
//! JSON and served as built; every `$ref` resolves and every schema is JSON Schema 2020-12; every
//! operation that takes or answers a body names a schema under the media types it is sent and
//! answered as, and every error answer names `Error`. Then a small gateway topology is built, and
//! each request body sent, each 201, every documented GET (under each media type it documents, the
//! answer's `Content-Type` being that type), an error, and the login token are validated against
//! the schema their path, method, status and media type document. Strictly: an object with a field
//! its schema does not name fails, and so does one that lacks the `uri` or a link its schema
//! names.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::*;

fn document() -> Value {
    serde_json::from_str(openapi::document()).expect("the document is JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            out.extend(map.get("$ref").and_then(Value::as_str));
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The component a content schema is about: `{"$ref"}` or an array of them.
fn schema_name(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref").or_else(|| schema.get("items")?.get("$ref"))?;
    reference.as_str()?.strip_prefix("#/components/schemas/")
}

/// The schema documented for a body of `method` at `template`: the request's (`status` `None`) or
/// the `status` answer's, as `media`.
fn documented<'a>(doc: &'a Value, template: &str, method: &str, status: Option<&str>, media: &str) -> &'a Value {
    let operation = &doc["paths"][template][method];
    let content = match status {
        None => &operation["requestBody"]["content"],
        Some(status) => &operation["responses"][status]["content"],
    };
    let schema = &content[media]["schema"];
    assert!(schema.is_object(), "{method} {template} {status:?}: nothing documented as {media} in {content}");
    schema
}

/// The document's component schemas, strict: every object schema refuses the properties it does
/// not name, except those only met as part of an `allOf` (`Condition`, flattened into `Rule`),
/// whose whole is strict instead.
fn strict_components(doc: &Value) -> Value {
    let mut components = doc["components"].clone();
    let mut parts = Vec::new();
    for schema in doc["components"]["schemas"].as_object().unwrap().values() {
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            refs(part, &mut parts);
        }
    }
    for (name, schema) in components["schemas"].as_object_mut().unwrap() {
        let objectish = schema.get("properties").is_some() || schema.get("allOf").is_some();
        if objectish && !parts.contains(&format!("#/components/schemas/{name}").as_str()) {
            schema["unevaluatedProperties"] = json!(false);
        }
    }
    components
}

/// Checks `value` against `schema`, with the document's components, strict.
fn assert_valid(doc: &Value, schema: &Value, value: &Value, what: &str) {
    let mut root = schema.as_object().unwrap().clone();
    root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    root.insert("components".into(), strict_components(doc));
    let validator =
        jsonschema::draft202012::options().should_validate_formats(true).build(&Value::Object(root)).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match its schema {schema}:\n{}\n{value:#}", errors.join("\n"));
}

/// An answer: valid as [`assert_valid`] checks, and each object has the read-only `uri` and links
/// its schema names (the handlers add them to every object they answer).
fn assert_answer(doc: &Value, schema: &Value, value: &Value, what: &str) {
    assert_valid(doc, schema, value, what);
    let Some(name) = schema_name(schema) else { return };
    let component = &doc["components"]["schemas"][name];
    let properties = component["properties"]
        .as_object()
        .or_else(|| component["allOf"].as_array()?.iter().rev().find_map(|part| part["properties"].as_object()));
    let read_only: Vec<&String> =
        properties.into_iter().flatten().filter(|(_, p)| p["readOnly"] == true).map(|(k, _)| k).collect();
    let objects = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for object in objects {
        for key in &read_only {
            assert!(
                object.get(key.as_str()).is_some(),
                "{what}: {name} documents {key}, the answer has none: {object}"
            );
        }
    }
}

#[tokio::test]
async fn document_is_served_json_whose_refs_resolve() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let api = Api::new().await;
    let r = api.raw("GET", "/midonet-api/openapi.json", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(r.json, doc);

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100, "{}", all.len());
    for reference in all {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("not local: {reference}"));
        assert!(doc.pointer(pointer).is_some_and(Value::is_object), "{reference} does not resolve");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("{name} is not JSON Schema 2020-12: {e}\n{schema:#}");
        }
    }
    for name in ["Router", "Port", "Bridge", "Route", "Chain", "Rule", "PortGroup", "IpAddrGroup", "Host"] {
        assert!(schemas.contains_key(name), "{name}");
    }
    for name in ["Interface", "TunnelZone", "Tenant", "Token", "Error", "Application", "SystemState"] {
        assert!(schemas.contains_key(name), "{name}");
    }
    // Hidden stored fields are not shown; utoipa's `u-int32` is the registry's `uint32`.
    assert!(schemas["Chain"]["properties"].get("ruleIds").is_none());
    assert_eq!(schemas["Router"]["properties"]["asNumber"]["format"], "uint32");
    assert_eq!(schemas["Router"]["properties"]["asNumber"]["maximum"], u32::MAX);
}

/// Every POST and PUT documents its request body, every 200 and 201 its content, each under media
/// types naming a schema of the document; every error status documents `Error` as `Error-v1`.
#[test]
fn every_operation_with_a_body_names_a_schema() {
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let names = |content: &Value, what: &str| {
        let content = content.as_object().unwrap_or_else(|| panic!("{what}: no content"));
        assert!(!content.is_empty(), "{what}: no content");
        for (media, body) in content {
            let name = schema_name(&body["schema"]).unwrap_or_else(|| panic!("{what} {media}: {body}"));
            assert!(schemas.contains_key(name), "{what} {media}: no schema {name}");
        }
    };
    let mut bodies = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let what = format!("{method} {path}");
            if (method == "post" && path != "/login") || method == "put" {
                names(&operation["requestBody"]["content"], &what);
                bodies += 1;
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                match status.as_str() {
                    "200" if path == "/openapi.json" => {}
                    "200" | "201" => names(&response["content"], &format!("{what} {status}")),
                    "204" => assert!(response.get("content").is_none(), "{what} 204 has content"),
                    _ => {
                        let schema = &response["content"]["application/vnd.org.midonet.Error-v1+json"]["schema"];
                        assert_eq!(schema_name(schema), Some("Error"), "{what} {status}");
                    }
                }
            }
        }
    }
    assert!(bodies > 25, "{bodies}");
}

/// A POST as a client sends it: the body is checked against the documented request body, then
/// the 201's body against the documented answer.
async fn create(api: &Api, doc: &Value, template: &str, uri: &str, media: &str, body: Value) -> Value {
    assert_valid(doc, documented(doc, template, "post", None, media), &body, &format!("POST {template} body"));
    let r = api.send("POST", uri, media, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "POST {uri}: {}", r.json);
    assert_eq!(r.headers[header::CONTENT_TYPE], media);
    assert_answer(doc, documented(doc, template, "post", Some("201"), media), &r.json, &format!("POST {template} 201"));
    r.json
}

/// A PUT's body checked against the documented request body, then sent.
async fn put(api: &Api, doc: &Value, template: &str, uri: &str, media: &str, body: Value) {
    assert_valid(doc, documented(doc, template, "put", None, media), &body, &format!("PUT {template} body"));
    let r = api.send("PUT", uri, media, body).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "PUT {uri}: {}", r.json);
}

const V: &str = "application/vnd.org.midonet.";

fn mt(name: &str) -> String {
    format!("{V}{name}+json")
}

#[tokio::test]
async fn served_objects_validate_against_their_documented_schemas() {
    let doc = document();
    let doc = &doc;
    let api = Api::new().await;

    let r = api.raw("POST", "/midonet-api/login", &[("authorization", &basic("admin", "secret"))], Some("{}")).await;
    assert_answer(doc, documented(doc, "/login", "post", Some("200"), &mt("Token-v1")), &r.json, "login");

    let host = create(
        &api,
        doc,
        "/hosts",
        "/midonet-api/hosts",
        &mt("Host-v3"),
        json!({"name": "gw", "addresses": ["192.0.2.10", "2001:db8::10"], "floodingProxyWeight": 3,
               "hostInterfaces": [{"name": "dpdk0", "mac": "52:54:00:00:00:01", "mtu": 9000,
                                   "addresses": ["198.51.100.2"]},
                                  {"name": "dpdk1", "mac": "52:54:00:00:00:02", "mtu": 1500}]}),
    )
    .await;
    let router = create(
        &api,
        doc,
        "/routers",
        "/midonet-api/routers",
        &mt("Router-v3"),
        json!({"name": "edge", "tenantId": "t1", "asNumber": 4_200_000_000u32}),
    )
    .await;
    let router_port = |addr: &str, net: &str, len: u32| json!({"type": "Router", "portAddress": addr, "networkAddress": net, "networkLength": len});
    let ports = s(&router["ports"]).to_string();
    let uplink = create(
        &api,
        doc,
        "/routers/{id}/ports",
        &ports,
        &mt("Port-v3"),
        router_port("198.51.100.2", "198.51.100.0", 24),
    )
    .await;
    let down =
        create(&api, doc, "/routers/{id}/ports", &ports, &mt("Port-v4"), router_port("10.0.0.1", "10.0.0.0", 24)).await;
    let route = create(
        &api,
        doc,
        "/routers/{id}/routes",
        s(&router["routes"]),
        &mt("Route-v1"),
        json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "0.0.0.0",
               "dstNetworkLength": 0, "nextHopPort": uplink["id"], "nextHopGateway": "198.51.100.1",
               "weight": 100, "type": "Normal"}),
    )
    .await;
    let peer = create(
        &api,
        doc,
        "/routers/{id}/bgp_peers",
        s(&router["bgpPeers"]),
        &mt("BgpPeer-v1"),
        json!({"asNumber": 64513, "address": "198.51.100.1", "holdTime": 30, "password": "md5"}),
    )
    .await;
    let network = create(
        &api,
        doc,
        "/routers/{id}/bgp_networks",
        s(&router["bgpNetworks"]),
        &mt("BgpNetwork-v1"),
        json!({"subnetAddress": "203.0.113.0", "subnetLength": 24}),
    )
    .await;

    let bridge = create(&api, doc, "/bridges", "/midonet-api/bridges", &mt("Bridge-v4"), json!({"name": "net"})).await;
    let bridge_port = create(
        &api,
        doc,
        "/bridges/{id}/ports",
        s(&bridge["ports"]),
        &mt("Port-v3"),
        json!({"type": "Bridge", "vlanId": 10}),
    )
    .await;
    let link = create(
        &api,
        doc,
        "/ports/{id}/link",
        s(&down["link"]),
        &mt("PortLink-v1"),
        json!({"peerId": bridge_port["id"]}),
    )
    .await;
    assert_eq!(link["peer"], bridge_port["uri"]);
    let binding = create(
        &api,
        doc,
        "/hosts/{id}/ports",
        s(&host["ports"]),
        &mt("HostInterfacePort-v1"),
        json!({"portId": uplink["id"], "interfaceName": "dpdk0"}),
    )
    .await;

    let chain = create(&api, doc, "/chains", "/midonet-api/chains", &mt("Chain-v1"), json!({"name": "in"})).await;
    let target = create(&api, doc, "/chains", "/midonet-api/chains", &mt("Chain-v1"), json!({"name": "j"})).await;
    let rules = s(&chain["rules"]).to_string();
    let rule_media = mt("Rule-v2");
    let rule = |body: Value| create(&api, doc, "/chains/{id}/rules", &rules, &rule_media, body);
    let accept = rule(json!({"type": "accept", "nwProto": 6, "tpDst": {"start": 22, "end": 22},
                             "inPorts": [uplink["id"]], "fragmentPolicy": "unfragmented"}))
    .await;
    rule(json!({"type": "dnat", "flowAction": "accept", "nwDstAddress": "198.51.100.2", "nwDstLength": 32,
                "natTargets": [{"addressFrom": "10.0.0.5", "addressTo": "10.0.0.5", "portFrom": 80, "portTo": 80}]}))
    .await;
    rule(json!({"type": "jump", "jumpChainId": target["id"]})).await;

    let zone = create(
        &api,
        doc,
        "/tunnel_zones",
        "/midonet-api/tunnel_zones",
        &mt("TunnelZone-v1"),
        json!({"name": "underlay", "type": "vxlan"}),
    )
    .await;
    create(
        &api,
        doc,
        "/tunnel_zones/{id}/hosts",
        s(&zone["hosts"]),
        &mt("TunnelZoneHost-v1"),
        json!({"hostId": host["id"], "ipAddress": "192.0.2.10"}),
    )
    .await;
    let group = create(
        &api,
        doc,
        "/port_groups",
        "/midonet-api/port_groups",
        &mt("PortGroup-v1"),
        json!({"name": "uplinks", "stateful": true, "tenantId": "t1"}),
    )
    .await;
    create(
        &api,
        doc,
        "/port_groups/{id}/ports",
        s(&group["ports"]),
        &mt("PortGroupPort-v1"),
        json!({"portId": uplink["id"]}),
    )
    .await;
    let addresses = create(
        &api,
        doc,
        "/ip_addr_groups",
        "/midonet-api/ip_addr_groups",
        &mt("IpAddrGroup-v1"),
        json!({"name": "admins", "tenantId": "t1"}),
    )
    .await;
    let addr = &mt("IpAddrGroupAddr-v1");
    create(
        &api,
        doc,
        "/ip_addr_groups/{id}/ip_addrs",
        s(&addresses["addrs"]),
        addr,
        json!({"version": 4, "addr": "10.0.0.9"}),
    )
    .await;
    let v6 = format!("{}/versions/6/ip_addrs", s(&addresses["uri"]));
    create(
        &api,
        doc,
        "/ip_addr_groups/{id}/versions/{version}/ip_addrs",
        &v6,
        addr,
        json!({"version": "6", "addr": "2001:db8::9"}),
    )
    .await;

    // Updates as clients make them: what was read, changed, sent back.
    let mut changed = api.get(s(&router["uri"]), &mt("Router-v3")).await.json;
    changed["inboundFilterId"] = chain["id"].clone();
    put(&api, doc, "/routers/{id}", s(&router["uri"]), &mt("Router-v3"), changed).await;
    let mut changed = api.get(s(&bridge_port["uri"]), &mt("Port-v3")).await.json;
    changed["outboundFilterId"] = chain["id"].clone();
    put(&api, doc, "/ports/{id}", s(&bridge_port["uri"]), &mt("Port-v3"), changed).await;
    let state = json!({"state": "ACTIVE", "availability": "READWRITE"});
    put(&api, doc, "/system_state", "/midonet-api/system_state", &mt("SystemState-v2"), state).await;
    let rebind = json!({"portId": uplink["id"], "interfaceName": "dpdk1"});
    put(&api, doc, "/hosts/{id}/ports/{portId}", s(&binding["uri"]), &mt("HostInterfacePort-v1"), rebind).await;

    // Every documented GET, on real objects.
    let p = |v: &Value, key: &str| s(&v[key]).to_string();
    let iface = format!("{}/dpdk0", p(&host, "interfaces"));
    let gets: Vec<(&str, String)> = vec![
        ("/", "/midonet-api/".into()),
        ("/routers", "/midonet-api/routers".into()),
        ("/routers/{id}", p(&router, "uri")),
        ("/routers/{id}/ports", p(&router, "ports")),
        ("/routers/{id}/peer_ports", p(&router, "peerPorts")),
        ("/routers/{id}/routes", p(&router, "routes")),
        ("/routes/{id}", p(&route, "uri")),
        ("/routers/{id}/bgp_peers", p(&router, "bgpPeers")),
        ("/bgp_peers/{id}", p(&peer, "uri")),
        ("/routers/{id}/bgp_networks", p(&router, "bgpNetworks")),
        ("/bgp_networks/{id}", p(&network, "uri")),
        ("/bridges", "/midonet-api/bridges".into()),
        ("/bridges/{id}", p(&bridge, "uri")),
        ("/bridges/{id}/ports", p(&bridge, "ports")),
        ("/bridges/{id}/peer_ports", p(&bridge, "peerPorts")),
        ("/ports", "/midonet-api/ports".into()),
        ("/ports/{id}", p(&uplink, "uri")),
        ("/ports/{id}", p(&bridge_port, "uri")),
        ("/ports/{id}/port_groups", p(&uplink, "portGroups")),
        ("/chains", "/midonet-api/chains".into()),
        ("/chains/{id}", p(&chain, "uri")),
        ("/chains/{id}/rules", p(&chain, "rules")),
        ("/rules/{id}", p(&accept, "uri")),
        ("/hosts", "/midonet-api/hosts".into()),
        ("/hosts/{id}", p(&host, "uri")),
        ("/hosts/{id}/interfaces", p(&host, "interfaces")),
        ("/hosts/{id}/interfaces/{name}", iface),
        ("/hosts/{id}/ports", p(&host, "ports")),
        ("/hosts/{id}/ports/{portId}", p(&binding, "uri")),
        ("/tunnel_zones", "/midonet-api/tunnel_zones".into()),
        ("/tunnel_zones/{id}", p(&zone, "uri")),
        ("/tunnel_zones/{id}/hosts", p(&zone, "hosts")),
        ("/tunnel_zones/{id}/hosts/{hostId}", format!("{}/{}", p(&zone, "hosts"), s(&host["id"]))),
        ("/port_groups", "/midonet-api/port_groups".into()),
        ("/port_groups/{id}", p(&group, "uri")),
        ("/port_groups/{id}/ports", p(&group, "ports")),
        ("/port_groups/{id}/ports/{portId}", format!("{}/{}", p(&group, "ports"), s(&uplink["id"]))),
        ("/ip_addr_groups", "/midonet-api/ip_addr_groups".into()),
        ("/ip_addr_groups/{id}", p(&addresses, "uri")),
        ("/ip_addr_groups/{id}/ip_addrs", p(&addresses, "addrs")),
        ("/ip_addr_groups/{id}/ip_addrs/{addr}", format!("{}/10.0.0.9", p(&addresses, "addrs"))),
        ("/ip_addr_groups/{id}/versions/{version}/ip_addrs", v6.clone()),
        ("/ip_addr_groups/{id}/versions/{version}/ip_addrs/{addr}", format!("{v6}/2001:db8::9")),
        ("/tenants", "/midonet-api/tenants".into()),
        ("/tenants/{id}", "/midonet-api/tenants/t1".into()),
        ("/system_state", "/midonet-api/system_state".into()),
    ];
    let documented_gets: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, ops)| ops.get("get").is_some() && *path != "/openapi.json")
        .map(|(path, _)| path.as_str())
        .collect();
    let checked: BTreeSet<&str> = gets.iter().map(|(t, _)| *t).collect();
    assert_eq!(checked, documented_gets, "every documented GET is checked on a real object");
    for (template, uri) in &gets {
        let content = doc["paths"][template]["get"]["responses"]["200"]["content"].as_object().unwrap();
        for media in content.keys() {
            let r = api.get(uri, media).await;
            assert_eq!(r.status, StatusCode::OK, "GET {uri}: {}", r.json);
            assert_eq!(r.headers[header::CONTENT_TYPE], media.as_str(), "GET {uri} as {media}");
            if let Some(items) = r.json.as_array() {
                assert!(!items.is_empty(), "GET {uri} lists nothing to check");
            }
            let schema = documented(doc, template, "get", Some("200"), media);
            assert_answer(doc, schema, &r.json, &format!("GET {template} ({uri}) as {media}"));
        }
    }

    // Errors, as a 404 and a 400 answer them.
    let missing = format!("/midonet-api/routers/{}", Uuid::new_v4());
    let r = api.get(&missing, &mt("Router-v3")).await;
    let error = &mt("Error-v1");
    assert_answer(doc, documented(doc, "/routers/{id}", "get", Some("404"), error), &r.json, "404");
    let r = api.send("POST", "/midonet-api/routers", &mt("Router-v3"), json!({"name": "x".repeat(300)})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_answer(doc, documented(doc, "/routers", "post", Some("400"), error), &r.json, "400");

    // A READONLY system state refuses writes with the documented 503; reads and the state's own
    // write still pass.
    let readonly = json!({"state": "ACTIVE", "availability": "READONLY"});
    put(&api, doc, "/system_state", "/midonet-api/system_state", &mt("SystemState-v2"), readonly).await;
    let r = api.send("POST", "/midonet-api/routers", &mt("Router-v3"), json!({"name": "late"})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    assert_answer(doc, documented(doc, "/routers", "post", Some("503"), error), &r.json, "503");
    assert_eq!(api.get("/midonet-api/routers", &mt("collection.Router-v3")).await.status, StatusCode::OK);
    let writable = json!({"state": "ACTIVE", "availability": "READWRITE"});
    put(&api, doc, "/system_state", "/midonet-api/system_state", &mt("SystemState-v2"), writable).await;
}

/// Every operation that touches the store documents 503 (what a client retries), and the three
/// that do not (login, the root, this document) do not.
#[test]
fn store_operations_document_unavailable() {
    let doc = document();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let documented = operation["responses"].get("503").is_some();
            let storeless = ["/login", "/", "/openapi.json"].contains(&path.as_str());
            assert_eq!(documented, !storeless, "{method} {path}: 503 documented {documented}");
        }
    }
}
