//! The API driven in-process the way `midonetclient` does: login, root, templates, POST then GET
//! `Location`, vendor media types; plus the 400/401/403/404/409/415 conformance cases.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::store::EmbeddedStore;

const HOST: &str = "gw.test:8181";

fn hashes() -> &'static (String, String) {
    static H: OnceLock<(String, String)> = OnceLock::new();
    H.get_or_init(|| (LocalAuth::hash_password("secret").unwrap(), LocalAuth::hash_password("pw").unwrap()))
}

#[derive(Clone)]
struct Api {
    app: axum::Router,
    token: String,
    _dir: Arc<tempfile::TempDir>,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
}

fn accounts() -> Vec<Account> {
    let (admin, tenant) = hashes().clone();
    vec![
        Account { user: "admin".into(), password_hash: admin, tenant_id: "admin".into(), role: Role::Admin },
        Account { user: "alice".into(), password_hash: tenant.clone(), tenant_id: "t1".into(), role: Role::Tenant },
        Account { user: "bob".into(), password_hash: tenant, tenant_id: "t2".into(), role: Role::Tenant },
    ]
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

impl Api {
    async fn new() -> Api {
        Api::with_ttl(DEFAULT_TOKEN_TTL).await
    }

    async fn with_ttl(ttl: Duration) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("db")).unwrap();
        let app = app_with_store(store, Arc::new(LocalAuth::new(accounts(), ttl)));
        let mut api = Api { app, token: String::new(), _dir: Arc::new(dir) };
        api.token = api.login("admin", "secret").await;
        api
    }

    async fn login(&self, user: &str, pass: &str) -> String {
        let r = self.raw("POST", "/midonet-api/login", &[("authorization", &basic(user, pass))], Some("{}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/vnd.org.midonet.Token-v1+json");
        let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        let key = r.json["key"].as_str().unwrap().to_string();
        assert!(cookie.starts_with(&format!("sessionId={key}; Expires=")), "{cookie}");
        key
    }

    async fn raw(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
        let uri = uri.strip_prefix(&format!("http://{HOST}")).unwrap_or(uri);
        let mut req = Request::builder().method(method).uri(uri).header(header::HOST, HOST);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {uri}: {status} with a body that is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp { status, headers, json }
    }

    async fn get(&self, uri: &str, accept: &str) -> Resp {
        self.raw("GET", uri, &[("x-auth-token", &self.token), ("accept", accept)], None).await
    }

    async fn send(&self, method: &str, uri: &str, media: &str, body: Value) -> Resp {
        let h = [("x-auth-token", self.token.as_str()), ("content-type", media), ("accept", media)];
        self.raw(method, uri, &h, Some(&body.to_string())).await
    }

    async fn delete(&self, uri: &str) -> Resp {
        self.raw("DELETE", uri, &[("x-auth-token", &self.token)], None).await
    }

    /// POST, check 201 + Location, then GET the Location like midonetclient does.
    async fn create(&self, uri: &str, media: &str, body: Value) -> Value {
        let r = self.send("POST", uri, media, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let location = r.headers[header::LOCATION].to_str().unwrap().to_string();
        let got = self.get(&location, media).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers[header::CONTENT_TYPE], media);
        assert_eq!(got.json["uri"], location);
        got.json
    }

    /// The same app with `user`'s token.
    async fn as_user(&self, user: &str, pass: &str) -> Api {
        let mut api = self.clone();
        api.token = self.login(user, pass).await;
        api
    }

    async fn root(&self) -> Value {
        let r = self.get("/midonet-api/", "application/vnd.org.midonet.Application-v5+json").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/vnd.org.midonet.Application-v5+json");
        r.json
    }
}

fn template(root: &Value, key: &str, id: &Value) -> String {
    root[key].as_str().unwrap().replace("{id}", id.as_str().unwrap())
}

fn assert_error(r: &Resp, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/vnd.org.midonet.Error-v1+json");
    assert_eq!(r.json["code"], status.as_u16());
    assert!(r.json["message"].is_string());
    assert!(r.json["violations"].is_array());
}

const ROUTER: &str = "application/vnd.org.midonet.Router-v3+json";
const ROUTERS: &str = "application/vnd.org.midonet.collection.Router-v3+json";
const PORT: &str = "application/vnd.org.midonet.Port-v3+json";
const PORTS: &str = "application/vnd.org.midonet.collection.Port-v3+json";
const ROUTES: &str = "application/vnd.org.midonet.collection.Route-v1+json";
const ROUTE: &str = "application/vnd.org.midonet.Route-v1+json";
const BRIDGE: &str = "application/vnd.org.midonet.Bridge-v4+json";
const CHAIN: &str = "application/vnd.org.midonet.Chain-v1+json";
const RULE: &str = "application/vnd.org.midonet.Rule-v2+json";
const RULES: &str = "application/vnd.org.midonet.collection.Rule-v2+json";
const TZ: &str = "application/vnd.org.midonet.TunnelZone-v1+json";

#[tokio::test]
async fn root_lists_collections_and_templates() {
    let api = Api::new().await;
    let root = api.root().await;
    assert_eq!(root["uri"], format!("http://{HOST}/midonet-api/"));
    assert_eq!(root["version"], "v5.0");
    assert_eq!(root["routers"], format!("http://{HOST}/midonet-api/routers"));
    assert_eq!(root["routerTemplate"], format!("http://{HOST}/midonet-api/routers/{{id}}"));
    for key in ["bridgeTemplate", "portTemplate", "chainTemplate", "ruleTemplate", "routeTemplate", "tunnelZones"] {
        assert!(root[key].is_string(), "{key}");
    }
    assert_eq!(root["systemState"], format!("http://{HOST}/midonet-api/system_state"));
}

#[tokio::test]
async fn router_port_routes_update_delete() {
    let api = Api::new().await;
    let root = api.root().await;
    let routers = root["routers"].as_str().unwrap().to_string();
    let router = api.create(&routers, ROUTER, json!({"name": "edge", "tenantId": "t1"})).await;
    assert_eq!(router["name"], "edge");
    assert_eq!(router["ports"], format!("{}/ports", router["uri"].as_str().unwrap()));
    assert_eq!(template(&root, "routerTemplate", &router["id"]), router["uri"]);

    let port = api
        .create(
            router["ports"].as_str().unwrap(),
            PORT,
            json!({"type": "Router", "portAddress": "10.0.0.1", "networkAddress": "10.0.0.0", "networkLength": 24}),
        )
        .await;
    assert_eq!(port["device"], router["uri"]);
    assert!(port["portMac"].is_string());
    assert!(port["tunnelKey"].is_u64());
    let routes = api.get(router["routes"].as_str().unwrap(), ROUTES).await;
    assert_eq!(routes.headers[header::CONTENT_TYPE], ROUTES);
    let routes = routes.json.as_array().unwrap().clone();
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(routes.iter().all(|r| r["nextHopPort"] == port["id"]));

    let route = api
        .create(
            router["routes"].as_str().unwrap(),
            ROUTE,
            json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "0.0.0.0",
                   "dstNetworkLength": 0, "nextHopPort": port["id"], "nextHopGateway": "10.0.0.254",
                   "weight": 100, "type": "Normal"}),
        )
        .await;
    assert_eq!(route["router"], router["uri"]);

    // Update: PUT back what was read, changed, then GET uri.
    let mut changed = router.clone();
    changed["name"] = json!("edge-2");
    let r = api.send("PUT", router["uri"].as_str().unwrap(), ROUTER, changed).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(router["uri"].as_str().unwrap(), ROUTER).await.json["name"], "edge-2");

    let list = api.get(&format!("{routers}?tenant_id=t1"), ROUTERS).await;
    assert_eq!(list.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(&format!("{routers}?tenant_id=t2"), ROUTERS).await.json, json!([]));

    assert_eq!(api.delete(route["uri"].as_str().unwrap()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(router["uri"].as_str().unwrap()).await.status, StatusCode::NO_CONTENT);
    assert_error(&api.get(port["uri"].as_str().unwrap(), PORT).await, StatusCode::NOT_FOUND);
    assert_error(&api.get(route["uri"].as_str().unwrap(), ROUTE).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bridge_chain_rules_and_tunnel_zone() {
    let api = Api::new().await;
    let root = api.root().await;
    let bridge = api.create(root["bridges"].as_str().unwrap(), BRIDGE, json!({"name": "br"})).await;
    let bport = api.create(bridge["ports"].as_str().unwrap(), PORT, json!({"type": "Bridge", "vlanId": 10})).await;
    assert_eq!(bport["device"], bridge["uri"]);
    let ports = api.get(bridge["ports"].as_str().unwrap(), PORTS).await;
    assert_eq!(ports.json.as_array().unwrap().len(), 1);

    let chain = api.create(root["chains"].as_str().unwrap(), CHAIN, json!({"name": "in"})).await;
    assert!(chain.get("ruleIds").is_none(), "hidden field leaked: {chain}");
    let rules = chain["rules"].as_str().unwrap();
    let drop = api.create(rules, RULE, json!({"type": "drop", "nwProto": 6})).await;
    let accept = api.create(rules, RULE, json!({"type": "accept", "position": 1})).await;
    assert_eq!(accept["position"], 1);
    assert_eq!(api.get(drop["uri"].as_str().unwrap(), RULE).await.json["position"], 2);
    let listed = api.get(rules, RULES).await.json;
    assert_eq!(listed[0]["id"], accept["id"]);
    assert_eq!(listed[1]["id"], drop["id"]);
    assert_eq!(api.delete(accept["uri"].as_str().unwrap()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(rules, RULES).await.json.as_array().unwrap().len(), 1);

    let mut b = bridge.clone();
    b["inboundFilterId"] = chain["id"].clone();
    assert_eq!(api.send("PUT", bridge["uri"].as_str().unwrap(), BRIDGE, b).await.status, StatusCode::NO_CONTENT);
    let b = api.get(bridge["uri"].as_str().unwrap(), BRIDGE).await.json;
    assert_eq!(b["inboundFilter"], chain["uri"]);
    assert_eq!(api.delete(chain["uri"].as_str().unwrap()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(bridge["uri"].as_str().unwrap(), BRIDGE).await.json["inboundFilterId"], Value::Null);

    let tz = api.create(root["tunnelZones"].as_str().unwrap(), TZ, json!({"name": "tz", "type": "vxlan"})).await;
    assert!(tz.get("members").is_none());
    assert_eq!(tz["type"], "vxlan");
    assert_eq!(api.delete(tz["uri"].as_str().unwrap()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(bridge["uri"].as_str().unwrap()).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn unauthorized_without_valid_token() {
    let api = Api::new().await;
    let r = api.raw("GET", "/midonet-api/routers", &[], None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED);
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
    assert_error(&api.raw("GET", "/midonet-api/", &[("x-auth-token", "nope")], None).await, StatusCode::UNAUTHORIZED);
    let bad = api.raw("POST", "/midonet-api/login", &[("authorization", &basic("admin", "wrong"))], None).await;
    assert_error(&bad, StatusCode::UNAUTHORIZED);
    assert_error(&api.raw("POST", "/midonet-api/login", &[], None).await, StatusCode::UNAUTHORIZED);

    let expired = Api::with_ttl(Duration::ZERO).await;
    let r = expired.get("/midonet-api/routers", ROUTERS).await;
    assert_error(&r, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["message"], "token expired");
}

#[tokio::test]
async fn tenant_role_is_refused_admin_writes() {
    let mut api = Api::new().await;
    api.token = api.login("alice", "pw").await;
    let r = api.send("POST", "/midonet-api/tunnel_zones", TZ, json!({"name": "tz"})).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/midonet-api/tunnel_zones", TZ).await.json, json!([]));
}

#[tokio::test]
async fn conformance_errors_write_nothing() {
    let api = Api::new().await;
    // 415: wrong Content-Type.
    let r = api.send("POST", "/midonet-api/routers", "text/plain", json!({"name": "x"})).await;
    assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = api.send("POST", "/midonet-api/routers", BRIDGE, json!({"name": "x"})).await;
    assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // 400: bad JSON, bad field.
    let h = [("x-auth-token", api.token.as_str()), ("content-type", ROUTER)];
    assert_error(&api.raw("POST", "/midonet-api/routers", &h, Some("{not json")).await, StatusCode::BAD_REQUEST);
    let r = api.send("POST", "/midonet-api/routers", ROUTER, json!({"name": "x".repeat(300)})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_eq!(api.get("/midonet-api/routers", ROUTERS).await.json, json!([]));
    // 404: unknown id, non-UUID id, unknown path.
    let missing = format!("/midonet-api/routers/{}", uuid::Uuid::new_v4());
    assert_error(&api.get(&missing, ROUTER).await, StatusCode::NOT_FOUND);
    assert_error(&api.get("/midonet-api/routers/zzz", ROUTER).await, StatusCode::NOT_FOUND);
    assert_error(&api.get("/midonet-api/nothing", ROUTER).await, StatusCode::NOT_FOUND);
    let r = api.send("POST", &format!("{missing}/ports"), PORT, json!({"type": "Router"})).await;
    assert_error(&r, StatusCode::NOT_FOUND);

    // 409: duplicate tunnel key, linking twice.
    let router = api.create("/midonet-api/routers", ROUTER, json!({"name": "r"})).await;
    let ports = router["ports"].as_str().unwrap();
    let p = |addr: &str, key: u64| json!({"type": "Router", "portAddress": addr, "networkAddress": addr, "networkLength": 32, "tunnelKey": key});
    let a = api.create(ports, PORT, p("10.0.0.1", 7)).await;
    assert_error(&api.send("POST", ports, PORT, p("10.0.0.2", 7)).await, StatusCode::CONFLICT);
    assert_eq!(api.get(ports, PORTS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(router["routes"].as_str().unwrap(), ROUTES).await.json.as_array().unwrap().len(), 2);

    let other = api.create("/midonet-api/routers", ROUTER, json!({"name": "r2"})).await;
    let b = api.create(other["ports"].as_str().unwrap(), PORT, p("10.1.0.1", 8)).await;
    let c = api.create(other["ports"].as_str().unwrap(), PORT, p("10.1.0.2", 9)).await;
    let link = "application/vnd.org.midonet.PortLink-v1+json";
    let r = api.send("POST", a["link"].as_str().unwrap(), link, json!({"peerId": b["id"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(api.get(a["uri"].as_str().unwrap(), PORT).await.json["peer"], b["uri"]);
    let r = api.send("POST", a["link"].as_str().unwrap(), link, json!({"peerId": c["id"]})).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(api.get(c["uri"].as_str().unwrap(), PORT).await.json["peerId"], Value::Null);
}

/// A path served without the request's method answers 405 as `Error-v1` with `Allow`, like every
/// other error (axum's own 405 had no body at all).
#[tokio::test]
async fn undeclared_methods_answer_405_as_error_v1() {
    let api = Api::new().await;
    let iag =
        api.create("/midonet-api/ip_addr_groups", "application/vnd.org.midonet.IpAddrGroup-v1+json", json!({})).await;
    let token = [("x-auth-token", api.token.as_str())];
    for (method, uri, allow) in [
        ("PATCH", "/midonet-api/routers", "GET,HEAD,POST"),
        ("DELETE", "/midonet-api/routers", "GET,HEAD,POST"),
        ("TRACE", "/midonet-api/", "GET,HEAD"),
        ("PUT", iag["uri"].as_str().unwrap(), "GET,HEAD,DELETE"),
        ("GET", "/midonet-api/login", "POST"),
        ("POST", "/midonet-api/openapi.json", "GET,HEAD"),
    ] {
        let r = api.raw(method, uri, &token, Some("{}")).await;
        assert_error(&r, StatusCode::METHOD_NOT_ALLOWED);
        assert!(r.json["message"].as_str().unwrap().contains(method), "{}", r.json);
        assert_eq!(r.headers[header::ALLOW], allow, "{method} {uri}");
    }
    assert_eq!(api.get("/midonet-api/routers", ROUTERS).await.json, json!([]));
}

/// A path segment that does not percent-decode to UTF-8 names nothing: 404 as `Error-v1`, on every
/// kind of path parameter (axum answered a plain-text 400).
#[tokio::test]
async fn undecodable_path_segments_are_404_error_v1() {
    let api = Api::new().await;
    let iag =
        api.create("/midonet-api/ip_addr_groups", "application/vnd.org.midonet.IpAddrGroup-v1+json", json!({})).await;
    let iag = iag["uri"].as_str().unwrap();
    for uri in [
        "/midonet-api/routers/%ff".to_string(),
        "/midonet-api/tenants/%c3%28".to_string(),
        format!("{iag}/versions/4/ip_addrs/%ff"),
        format!("{iag}/versions/%ff/ip_addrs"),
        "/midonet-api/hosts/%ff/interfaces/%fe".to_string(),
    ] {
        assert_error(&api.get(&uri, "application/json").await, StatusCode::NOT_FOUND);
    }
    let r = api.send("POST", "/midonet-api/routers/%ff/ports", PORT, json!({"type": "Router"})).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    assert_error(&api.delete(&format!("{iag}/ip_addrs/%ff")).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn readonly_system_state_refuses_writes() {
    let api = Api::new().await;
    let media = "application/vnd.org.midonet.SystemState-v2+json";
    let s = api.get("/midonet-api/system_state", media).await;
    assert_eq!(s.json["availability"], "READWRITE");
    let r = api.send("PUT", "/midonet-api/system_state", media, json!({"availability": "READONLY"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.send("POST", "/midonet-api/routers", ROUTER, json!({"name": "x"})).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.get("/midonet-api/routers", ROUTERS).await.json, json!([]));
    let r = api.send("PUT", "/midonet-api/system_state", media, json!({"availability": "READWRITE"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.create("/midonet-api/routers", ROUTER, json!({"name": "x"})).await;
}

mod fuzz;
mod integrity;
mod resources;
mod schemas;
mod scoping;
