//! Generated bad input at every documented path: for each path template of `openapi.json` (real
//! ids of a small topology, unknown, nil and non-UUID ids substituted) and every method it declares
//! plus some it does not, requests whose bodies mix the resource's real field names with wrong,
//! out-of-range and malformed values, or are random JSON or bytes, under right, wrong, missing and
//! odd media types. Every answer must be the contract's: no 5xx (503 only while the store is
//! READONLY), errors as `Error-v1`, 201 + `Location` for creates, 204 for updates and deletes. After
//! each case every collection still lists, every listed object is what its own `uri` answers, and
//! the topology still compiles when it did before. `PROPTEST_CASES` sets the number of cases.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::http::{HeaderValue, Method};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use super::*;
use crate::compile::{compile, CompileContext};
use crate::topology::Topology;

const ERROR_MEDIA: &str = "application/vnd.org.midonet.Error-v1+json";
const SYSTEM_STATE: &str = "application/vnd.org.midonet.SystemState-v2+json";

/// A response as bytes: an answer that is not JSON must not make the checker panic.
struct Raw {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.bytes).ok()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(600)]).into_owned()
    }
}

async fn send_raw(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, HeaderValue)],
    body: Vec<u8>,
) -> Raw {
    let uri = uri.strip_prefix(&format!("http://{HOST}")).unwrap_or(uri);
    let mut req = Request::builder().method(method).uri(uri).header(header::HOST, HOST);
    for (k, v) in headers {
        req = req.header(*k, v.clone());
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Raw { status, headers, bytes }
}

/// The media types of each path as the server registers them (item, list), by template; an item
/// path's list is its collection's.
fn served_media(template: &str) -> (&'static str, &'static str) {
    let routes = super::super::protected_routes().bodies;
    let key = |path: &str| if path.is_empty() { "/".to_string() } else { path.to_string() };
    let Some((_, bodies)) = routes.iter().find(|(path, _)| key(path) == template) else {
        return match template {
            "/login" => ("application/vnd.org.midonet.Token-v1+json", ""),
            _ => ("application/json", ""),
        };
    };
    let (item, list) = bodies.media();
    let list = list.or_else(|| {
        routes.iter().find_map(|(_, other)| match other.media() {
            (other_item, Some(other_list)) if other_item[0] == item[0] => Some(other_list),
            _ => None,
        })
    });
    (item[0], list.map_or("", |l| l[0]))
}

/// Every path template of openapi.json with the methods it declares.
fn templates() -> Vec<(String, Vec<Method>)> {
    let doc: Value = serde_json::from_str(openapi::document()).unwrap();
    let mut out = Vec::new();
    for (path, entry) in doc["paths"].as_object().unwrap() {
        let methods = ["get", "post", "put", "delete"]
            .into_iter()
            .filter(|m| entry.get(*m).is_some())
            .map(|m| Method::from_bytes(m.to_uppercase().as_bytes()).unwrap())
            .collect();
        out.push((path.clone(), methods));
    }
    out
}

/// The topology every case runs against: ids by collection segment, interface names and addresses
/// for the non-UUID path parameters, a valid body per writable template, and every field name the
/// resource of each template shows or the OpenAPI document names for its request body.
#[derive(Default)]
struct Fixture {
    ids: BTreeMap<&'static str, Vec<String>>,
    interfaces: Vec<String>,
    addrs: Vec<String>,
    /// Valid bodies, by template.
    seeds: BTreeMap<&'static str, Value>,
    /// Field names, by template.
    fields: BTreeMap<String, Vec<String>>,
}

impl Fixture {
    fn all_ids(&self) -> Vec<&String> {
        self.ids.values().flatten().collect()
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id: {v}")).to_string()
}

fn link(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key}: {v}")).to_string()
}

/// A tenant router with ports (one linked to a bridge port, one bound), routes and BGP; a bridge
/// with ports; two chains with rules (one jumps); a port group with a member; an IP address group
/// with addresses; a host with interfaces in a tunnel zone.
async fn build(api: &Api) -> Fixture {
    let mut fx = Fixture::default();
    let net = |i: u32| format!("10.20.{i}");
    let host = api
        .create(
            "/midonet-api/hosts",
            "application/vnd.org.midonet.Host-v3+json",
            json!({"name": "gw", "addresses": ["192.0.2.10"],
                   "hostInterfaces": [{"name": "dpdk0", "mac": "52:54:00:00:00:01", "mtu": 9000, "addresses": []},
                                      {"name": "dpdk1", "mac": "52:54:00:00:00:02", "mtu": 1500, "addresses": []}]}),
        )
        .await;
    let router = api.create("/midonet-api/routers", ROUTER, json!({"name": "r", "tenantId": "t1"})).await;
    let rport = |i: u32| {
        json!({"type": "Router", "portAddress": format!("{}.1", net(i)), "networkAddress": format!("{}.0", net(i)),
               "networkLength": 24})
    };
    let p1 = api.create(&link(&router, "ports"), PORT, rport(1)).await;
    let p2 = api.create(&link(&router, "ports"), PORT, rport(2)).await;
    let route = api
        .create(
            &link(&router, "routes"),
            ROUTE,
            json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "0.0.0.0",
                   "dstNetworkLength": 0, "nextHopPort": p1["id"], "nextHopGateway": format!("{}.254", net(1)),
                   "weight": 100, "type": "Normal"}),
        )
        .await;
    let peer = api
        .create(
            &link(&router, "bgpPeers"),
            "application/vnd.org.midonet.BgpPeer-v1+json",
            json!({"asNumber": 64513, "address": format!("{}.2", net(1))}),
        )
        .await;
    let bgp_net = api
        .create(
            &link(&router, "bgpNetworks"),
            "application/vnd.org.midonet.BgpNetwork-v1+json",
            json!({"subnetAddress": format!("{}.0", net(3)), "subnetLength": 24}),
        )
        .await;
    let bridge = api.create("/midonet-api/bridges", BRIDGE, json!({"name": "b", "tenantId": "t1"})).await;
    let b1 = api.create(&link(&bridge, "ports"), PORT, json!({"type": "Bridge"})).await;
    let b2 = api.create(&link(&bridge, "ports"), PORT, json!({"type": "Bridge", "vlanId": 10})).await;
    let linked = api
        .send("POST", &link(&p2, "link"), "application/vnd.org.midonet.PortLink-v1+json", json!({"peerId": b1["id"]}))
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.json);
    let bound = api
        .send(
            "POST",
            &link(&host, "ports"),
            "application/vnd.org.midonet.HostInterfacePort-v1+json",
            json!({"portId": b2["id"], "interfaceName": "dpdk1"}),
        )
        .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.json);
    let chain = api.create("/midonet-api/chains", CHAIN, json!({"name": "c", "tenantId": "t1"})).await;
    let target = api.create("/midonet-api/chains", CHAIN, json!({"name": "j", "tenantId": "t1"})).await;
    let pg = api
        .create(
            "/midonet-api/port_groups",
            "application/vnd.org.midonet.PortGroup-v1+json",
            json!({"name": "pg", "stateful": true, "tenantId": "t1"}),
        )
        .await;
    api.create(&link(&pg, "ports"), "application/vnd.org.midonet.PortGroupPort-v1+json", json!({"portId": p1["id"]}))
        .await;
    let iag = api
        .create(
            "/midonet-api/ip_addr_groups",
            "application/vnd.org.midonet.IpAddrGroup-v1+json",
            json!({"name": "g", "tenantId": "t1"}),
        )
        .await;
    let addr = "application/vnd.org.midonet.IpAddrGroupAddr-v1+json";
    api.create(&link(&iag, "addrs"), addr, json!({"addr": format!("{}.5", net(1)), "version": 4})).await;
    api.create(&link(&iag, "addrs"), addr, json!({"addr": "2001:db8::5", "version": 6})).await;
    let rule = api
        .create(
            &link(&chain, "rules"),
            RULE,
            json!({"type": "accept", "nwProto": 6, "tpDst": {"start": 22, "end": 22}, "ipAddrGroupSrc": iag["id"],
                   "portGroup": pg["id"], "inPorts": [p1["id"]]}),
        )
        .await;
    let jump = api.create(&link(&chain, "rules"), RULE, json!({"type": "jump", "jumpChainId": target["id"]})).await;
    api.create(&link(&target, "rules"), RULE, json!({"type": "drop", "dlType": 2048})).await;
    let tz = api.create("/midonet-api/tunnel_zones", TZ, json!({"name": "tz", "type": "vxlan"})).await;
    api.create(
        &link(&tz, "hosts"),
        "application/vnd.org.midonet.TunnelZoneHost-v1+json",
        json!({"hostId": host["id"], "ipAddress": "192.0.2.10"}),
    )
    .await;

    let ids = [
        ("routers", vec![&router]),
        ("bridges", vec![&bridge]),
        ("ports", vec![&p1, &p2, &b1, &b2]),
        ("routes", vec![&route]),
        ("chains", vec![&chain, &target]),
        ("rules", vec![&rule, &jump]),
        ("hosts", vec![&host]),
        ("tunnel_zones", vec![&tz]),
        ("port_groups", vec![&pg]),
        ("ip_addr_groups", vec![&iag]),
        ("bgp_peers", vec![&peer]),
        ("bgp_networks", vec![&bgp_net]),
    ];
    for (k, objs) in ids {
        fx.ids.insert(k, objs.iter().map(|o| id_of(o)).collect());
    }
    fx.ids.insert("tenants", vec!["t1".into(), "admin".into()]);
    fx.interfaces = vec!["dpdk0".into(), "dpdk1".into()];
    fx.addrs = vec![format!("{}.5", net(1)), "2001:db8::5".into()];

    let free = |i: u32| format!("{}.{i}", net(9));
    let seeds: [(&'static str, Value, &Value); 21] = [
        ("/routers", json!({"name": "new", "tenantId": "t1", "inboundFilterId": chain["id"]}), &router),
        ("/routers/{id}", router.clone(), &router),
        ("/routers/{id}/ports", rport(9), &p1),
        (
            "/routers/{id}/routes",
            json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "10.99.0.0",
                   "dstNetworkLength": 16, "nextHopPort": p1["id"], "nextHopGateway": format!("{}.253", net(1)),
                   "weight": 10, "type": "Normal"}),
            &route,
        ),
        ("/bridges", json!({"name": "new", "tenantId": "t1"}), &bridge),
        ("/bridges/{id}", bridge.clone(), &bridge),
        ("/bridges/{id}/ports", json!({"type": "Bridge", "vlanId": 20}), &b2),
        ("/ports/{id}", p1.clone(), &b2),
        ("/ports/{id}/link", json!({"peerId": b2["id"]}), &json!({"portId": p1["id"]})),
        ("/chains", json!({"name": "new", "tenantId": "t1"}), &chain),
        ("/chains/{id}/rules", rule.clone(), &jump),
        ("/hosts", json!({"name": "h", "hostInterfaces": [{"name": "eth0"}]}), &host),
        ("/hosts/{id}", host.clone(), &host),
        ("/tunnel_zones", json!({"name": "tz", "type": "gre"}), &tz),
        ("/tunnel_zones/{id}", tz.clone(), &tz),
        ("/tunnel_zones/{id}/hosts", json!({"hostId": host["id"], "ipAddress": free(1)}), &json!({})),
        ("/system_state", json!({"state": "ACTIVE", "availability": "READWRITE"}), &json!({"version": "v5.0"})),
        ("/hosts/{id}/ports", json!({"portId": p1["id"], "interfaceName": "dpdk0"}), &json!({"hostId": host["id"]})),
        ("/routers/{id}/bgp_peers", json!({"asNumber": 65001, "address": free(2)}), &peer),
        ("/routers/{id}/bgp_networks", json!({"subnetAddress": "10.250.0.0", "subnetLength": 16}), &bgp_net),
        ("/port_groups", json!({"name": "new", "stateful": false, "tenantId": "t1"}), &pg),
    ];
    let more: [(&'static str, Value, &Value); 7] = [
        ("/port_groups/{id}", pg.clone(), &pg),
        ("/port_groups/{id}/ports", json!({"portId": b2["id"]}), &json!({"portGroupId": pg["id"]})),
        ("/ip_addr_groups", json!({"name": "new", "tenantId": "t1", "inboundChainId": chain["id"]}), &iag),
        ("/ip_addr_groups/{id}/ip_addrs", json!({"addr": free(3), "version": 4}), &json!({"ipAddrGroupId": iag["id"]})),
        (
            "/ip_addr_groups/{id}/versions/{version}/ip_addrs",
            json!({"addr": "2001:db8::9", "version": "6"}),
            &json!({"ipAddrGroupId": iag["id"]}),
        ),
        ("/hosts/{id}/ports/{portId}", json!({"portId": p1["id"], "interfaceName": "dpdk0"}), &json!({})),
        ("/login", json!({}), &json!({})),
    ];
    for (template, seed, shown) in seeds.into_iter().chain(more) {
        let names = fx.fields.entry(template.to_string()).or_default();
        names.extend(seed.as_object().unwrap().keys().cloned());
        names.extend(shown.as_object().unwrap().keys().cloned());
        fx.seeds.insert(template, seed);
    }
    let doc: Value = serde_json::from_str(openapi::document()).unwrap();
    for (template, operations) in doc["paths"].as_object().unwrap() {
        for method in ["post", "put"] {
            let schema = &operations[method]["requestBody"]["content"]["application/json"]["schema"];
            let names = documented_properties(&doc["components"], schema);
            fx.fields.entry(template.clone()).or_default().extend(names);
        }
    }
    for names in fx.fields.values_mut() {
        names.sort();
        names.dedup();
    }
    fx
}

/// The component a `$ref` names, or the schema itself.
fn deref<'a>(components: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &components["schemas"][name],
        None => schema,
    }
}

/// The fields a client may send in a body of `schema` (those of its `allOf` parts too), without
/// the read-only ones the server adds.
fn documented_properties(components: &Value, schema: &Value) -> Vec<String> {
    let schema = deref(components, schema);
    let properties = schema["properties"].as_object().into_iter().flatten();
    let mut out: Vec<String> = properties.filter(|(_, p)| p["readOnly"] != true).map(|(k, _)| k.clone()).collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(documented_properties(components, part));
    }
    out
}

/// A path parameter.
#[derive(Debug, Clone)]
enum Seg {
    /// A real id of the path's own kind (by index).
    Real(usize),
    /// A real id of any kind.
    AnyReal(usize),
    Random(u128),
    Nil,
    /// Arbitrary text, percent-encoded.
    Text(String),
    /// Raw URI characters, escapes left as they are (`%zz`, `%ff`).
    Raw(String),
}

/// A body field value.
#[derive(Debug, Clone)]
enum Val {
    Json(Value),
    /// A real id of any kind (a reference to something that exists, often of the wrong kind).
    RealId(usize),
    Long(usize),
    /// A list of real ids.
    RealIds(Vec<usize>),
}

#[derive(Debug, Clone)]
enum BodyGen {
    Empty,
    /// The template's valid body with some fields replaced, added or removed (`None`).
    Mutated(Vec<(usize, Option<Val>)>),
    /// Only some of the resource's fields, each with a generated value.
    Fields(Vec<(usize, Val)>),
    Random(Value),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
enum MediaGen {
    Right,
    List,
    Json,
    /// The right type with parameters or odd case.
    Params(usize, String),
    /// Another resource's vendor type.
    Other(usize),
    Text(String),
    NonUtf8,
    Missing,
}

#[derive(Debug, Clone)]
enum Who {
    Admin,
    Tenant,
    NoToken,
    BadToken(String),
}

#[derive(Debug, Clone)]
struct Req {
    template: usize,
    /// Declared methods by index, then odd ones.
    method: usize,
    odd: bool,
    segs: Vec<Seg>,
    query: Option<String>,
    content_type: MediaGen,
    accept: MediaGen,
    body: BodyGen,
    who: Who,
}

const ODD_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"];
const OTHER_MEDIA: &[&str] = &[
    "application/vnd.org.midonet.Router-v3+json",
    "application/vnd.org.midonet.Bridge-v4+json",
    "application/vnd.org.midonet.Port-v3+json",
    "application/vnd.org.midonet.Error-v1+json",
    "application/vnd.org.midonet.Rule-v2+json",
    "application/vnd.org.midonet.collection.Router-v3+json",
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,40}",
        "\\PC{0,24}",
        Just(String::new()),
        Just("..".to_string()),
        Just("/".to_string()),
        Just("00000000-0000-0000-0000-00000000000g".to_string()),
        (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

fn seg() -> impl Strategy<Value = Seg> {
    prop_oneof![
        6 => any::<usize>().prop_map(Seg::Real),
        2 => any::<usize>().prop_map(Seg::AnyReal),
        1 => any::<u128>().prop_map(Seg::Random),
        1 => Just(Seg::Nil),
        2 => text().prop_map(Seg::Text),
        1 => prop_oneof![
            "[A-Za-z0-9%._~!$&'()*+,;=:@-]{1,30}",
            Just("%zz".to_string()),
            Just("%ff".to_string()),
            Just("%c3%28".to_string()),
            Just("%00".to_string()),
        ]
        .prop_map(Seg::Raw),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn random_json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values that are wrong for most fields, and some that are right for some.
fn bad_value() -> impl Strategy<Value = Val> {
    let numbers = prop_oneof![
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(4)),
        Just(json!(6)),
        Just(json!(24)),
        Just(json!(32)),
        Just(json!(33)),
        Just(json!(128)),
        Just(json!(129)),
        Just(json!(255)),
        Just(json!(256)),
        Just(json!(4095)),
        Just(json!(4096)),
        Just(json!(65535)),
        Just(json!(65536)),
        Just(json!(16_777_215)),
        Just(json!(16_777_216)),
        Just(json!(u32::MAX)),
        Just(json!(u64::from(u32::MAX) + 1)),
        Just(json!(i64::MIN)),
        Just(json!(i64::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
        Just(json!(2.5)),
    ];
    let strings = prop_oneof![
        Just(""),
        Just("10.0.0.0/33"),
        Just("300.1.1.1"),
        Just("10.0.0"),
        Just("::g"),
        Just("10.0.0.1"),
        Just("10.20.1.1"),
        Just("10.20.1.0"),
        Just("0.0.0.0"),
        Just("255.255.255.255"),
        Just("224.0.0.1"),
        Just("fe80::1"),
        Just("2001:db8::1"),
        Just("::"),
        Just("ff:ff:ff:ff:ff:ff"),
        Just("01:00:5e:00:00:01"),
        Just("00:00:00:00:00:00"),
        Just("02:00:00:00:00:01"),
        Just("zz:zz:zz:zz:zz:zz"),
        Just("00-11-22-33-44-55"),
        Just("not-a-uuid"),
        Just("00000000-0000-0000-0000-000000000000"),
        Just("Router"),
        Just("Bridge"),
        Just("InteriorRouter"),
        Just("Vxlan"),
        Just("drop"),
        Just("jump"),
        Just("dnat"),
        Just("snat"),
        Just("rev_dnat"),
        Just("l2_transform"),
        Just("redirect"),
        Just("BlackHole"),
        Just("Local"),
        Just("Fip64"),
        Just("vtep"),
        Just("gre"),
        Just("READONLY"),
        Just("READWRITE"),
        Just("UPGRADE"),
        Just("unfragmented"),
        Just("dpdk0"),
        Just("dpdk1"),
        Just("a/b"),
        Just("a b"),
        Just("?x=1#y"),
        Just("\u{0}"),
        Just("é"),
    ]
    .prop_map(Value::from);
    let shaped = prop_oneof![
        Just(json!([])),
        Just(json!([null])),
        Just(json!([[[]]])),
        Just(json!(["x"])),
        Just(json!({})),
        Just(json!({"start": 5, "end": 1})),
        Just(json!({"start": -1, "end": 70000})),
        Just(json!({"start": 0, "end": 65535})),
        Just(json!([{"addressFrom": "10.0.0.1", "addressTo": "10.0.0.9", "portFrom": 1, "portTo": 0}])),
        Just(json!([{"addressFrom": "10.0.0.9", "addressTo": "10.0.0.1", "portFrom": 0, "portTo": 0}])),
        Just(json!([{"addressFrom": "2001:db8::1", "addressTo": "10.0.0.1"}])),
        Just(json!([{"name": "a b"}, {"name": "a/b"}, {"name": ""}])),
        Just(json!([{"name": "dpdk0"}, {"name": "dpdk0"}])),
        Just(json!([{"ipAddress": "10.0.0.1", "portIds": []}])),
        Just(json!(["10.0.0.1", "fe80::1"])),
        Just(json!(["10.0.0.0/24", "10.0.0.1/24", "2001:db8::1/64"])),
        Just(json!(["bad/99"])),
    ];
    prop_oneof![
        3 => numbers,
        4 => strings,
        2 => shaped,
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<u128>().prop_map(|u| Value::from(Uuid::from_u128(u).to_string())),
        1 => random_json(),
    ]
    .prop_map(Val::Json)
    .boxed()
    .prop_union(
        prop_oneof![
            4 => any::<usize>().prop_map(Val::RealId),
            1 => proptest::collection::vec(any::<usize>(), 0..3).prop_map(Val::RealIds),
            1 => prop_oneof![Just(256usize), Just(70_000)].prop_map(Val::Long),
        ]
        .boxed(),
    )
}

fn body() -> impl Strategy<Value = BodyGen> {
    let edit = (any::<usize>(), proptest::option::weighted(0.9, bad_value()));
    prop_oneof![
        1 => Just(BodyGen::Empty),
        8 => proptest::collection::vec(edit, 0..4).prop_map(BodyGen::Mutated),
        3 => proptest::collection::vec((any::<usize>(), bad_value()), 0..6).prop_map(BodyGen::Fields),
        2 => random_json().prop_map(BodyGen::Random),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(BodyGen::Bytes),
        1 => prop_oneof![
            Just(b"{not json".to_vec()),
            Just("[".repeat(5000).into_bytes()),
            Just(format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 20)).into_bytes()),
            Just(b"{\"name\": \"\\ud800\"}".to_vec()),
            Just(b"{\"name\": 1e400}".to_vec()),
            Just(vec![0xef, 0xbb, 0xbf, b'{', b'}']),
            Just(b"{}{}".to_vec()),
            Just(b"null".to_vec()),
        ]
        .prop_map(BodyGen::Bytes),
    ]
}

fn media() -> impl Strategy<Value = MediaGen> {
    prop_oneof![
        8 => Just(MediaGen::Right),
        1 => Just(MediaGen::List),
        2 => Just(MediaGen::Json),
        2 => (0usize..5, "[a-z=;\"]{0,12}").prop_map(|(i, s)| MediaGen::Params(i, s)),
        1 => any::<usize>().prop_map(MediaGen::Other),
        1 => "[ -~]{0,40}".prop_map(MediaGen::Text),
        1 => Just(MediaGen::NonUtf8),
        1 => Just(MediaGen::Missing),
    ]
}

fn req(n_templates: usize) -> impl Strategy<Value = Req> {
    let who = prop_oneof![
        12 => Just(Who::Admin),
        3 => Just(Who::Tenant),
        1 => Just(Who::NoToken),
        1 => "[ -~]{0,40}".prop_map(Who::BadToken),
    ];
    let query = proptest::option::weighted(0.1, prop_oneof!["[a-z0-9]{0,8}", Just("%ff".to_string())]);
    (
        (0..n_templates, any::<usize>(), proptest::bool::weighted(0.15)),
        proptest::collection::vec(seg(), 3),
        query,
        (media(), media()),
        body(),
        who,
    )
        .prop_map(|((template, method, odd), segs, query, (content_type, accept), body, who)| Req {
            template,
            method,
            odd,
            segs,
            query,
            content_type,
            accept,
            body,
            who,
        })
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}

/// The kind of id a `{param}` of `template` names.
fn kind_of(template: &str, param: &str) -> &'static str {
    let first = template.split('/').find(|s| !s.is_empty()).unwrap_or("");
    match param {
        "hostId" => "hosts",
        "portId" => "ports",
        _ => [
            "routers",
            "bridges",
            "ports",
            "routes",
            "chains",
            "rules",
            "hosts",
            "tunnel_zones",
            "port_groups",
            "ip_addr_groups",
            "bgp_peers",
            "bgp_networks",
            "tenants",
        ]
        .into_iter()
        .find(|k| *k == first)
        .unwrap_or("routers"),
    }
}

fn real_id(fx: &Fixture, i: usize) -> String {
    let all = fx.all_ids();
    all[i % all.len()].clone()
}

fn resolve_seg(fx: &Fixture, template: &str, param: &str, seg: &Seg) -> String {
    let pick = |list: &[String], i: usize| list[i % list.len()].clone();
    match (param, seg) {
        ("version", Seg::Real(i)) => ["4", "6"][i % 2].to_string(),
        ("addr", Seg::Real(i)) => pick(&fx.addrs, *i),
        ("addr", Seg::Random(u)) => {
            if u % 2 == 0 {
                std::net::Ipv4Addr::from(*u as u32).to_string()
            } else {
                encode(&std::net::Ipv6Addr::from(*u).to_string())
            }
        }
        ("name", Seg::Real(i)) => pick(&fx.interfaces, *i),
        (_, Seg::Real(i)) => pick(&fx.ids[kind_of(template, param)], *i),
        (_, Seg::AnyReal(i)) => real_id(fx, *i),
        (_, Seg::Random(u)) => Uuid::from_u128(*u).to_string(),
        (_, Seg::Nil) => Uuid::nil().to_string(),
        (_, Seg::Text(s)) => encode(s),
        (_, Seg::Raw(s)) => s.clone(),
    }
}

fn resolve_val(fx: &Fixture, v: &Val) -> Value {
    match v {
        Val::Json(v) => v.clone(),
        Val::RealId(i) => Value::from(real_id(fx, *i)),
        Val::RealIds(is) => Value::Array(is.iter().map(|i| Value::from(real_id(fx, *i))).collect()),
        Val::Long(n) => Value::from("x".repeat(*n)),
    }
}

fn resolve_body(fx: &Fixture, template: &str, b: &BodyGen) -> Vec<u8> {
    let seed = fx.seeds.get(template).cloned().unwrap_or_else(|| json!({}));
    let names = fx.fields.get(template).cloned().unwrap_or_default();
    let name = |i: usize| if names.is_empty() { "name".to_string() } else { names[i % names.len()].clone() };
    match b {
        BodyGen::Empty => Vec::new(),
        BodyGen::Mutated(edits) => {
            let mut v = seed;
            for (i, val) in edits {
                match val {
                    Some(val) => v[name(*i)] = resolve_val(fx, val),
                    None => {
                        v.as_object_mut().map(|m| m.remove(&name(*i)));
                    }
                }
            }
            v.to_string().into_bytes()
        }
        BodyGen::Fields(fields) => {
            let map = fields.iter().map(|(i, val)| (name(*i), resolve_val(fx, val))).collect();
            Value::Object(map).to_string().into_bytes()
        }
        BodyGen::Random(v) => v.to_string().into_bytes(),
        BodyGen::Bytes(b) => b.clone(),
    }
}

fn resolve_media(template: &str, m: &MediaGen) -> Option<HeaderValue> {
    let (item, list) = served_media(template);
    let s = match m {
        MediaGen::Right => item.to_string(),
        MediaGen::List => list.to_string(),
        MediaGen::Json => "application/json".to_string(),
        MediaGen::Params(0, p) => format!("{item}; charset=utf-8{p}"),
        MediaGen::Params(1, p) => format!("{}; {p}", item.to_uppercase()),
        MediaGen::Params(2, p) => format!("application/json;{p}"),
        MediaGen::Params(3, _) => format!("{item}, application/json"),
        MediaGen::Params(_, p) => format!(" {item} ;q=0.1{p}"),
        MediaGen::Other(i) => OTHER_MEDIA[i % OTHER_MEDIA.len()].to_string(),
        MediaGen::Text(s) => s.clone(),
        MediaGen::NonUtf8 => return Some(HeaderValue::from_bytes(b"application/\xffjson").unwrap()),
        MediaGen::Missing => return None,
    };
    HeaderValue::from_str(&s).ok()
}

/// A request as sent, for failure messages.
struct Sent {
    method: Method,
    uri: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Vec<u8>,
}

impl std::fmt::Display for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(600)]);
        write!(f, "{} {} {:?} body {body}", self.method, self.uri, self.headers)
    }
}

fn resolve(fx: &Fixture, templates: &[(String, Vec<Method>)], r: &Req, tokens: (&str, &str)) -> Sent {
    let (template, declared) = &templates[r.template];
    let method = if r.odd || declared.is_empty() {
        Method::from_bytes(ODD_METHODS[r.method % ODD_METHODS.len()].as_bytes()).unwrap()
    } else {
        declared[r.method % declared.len()].clone()
    };
    let mut segs = r.segs.iter();
    let path: Vec<String> = template
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => resolve_seg(fx, template, param, segs.next().unwrap_or(&Seg::Nil)),
            None => s.to_string(),
        })
        .collect();
    let mut uri = format!("/midonet-api{}", path.join("/"));
    if let Some(q) = &r.query {
        write!(uri, "?tenant_id={q}").unwrap();
    }
    let mut headers = Vec::new();
    match &r.who {
        Who::Admin => headers.push(("x-auth-token", HeaderValue::from_str(tokens.0).unwrap())),
        Who::Tenant => headers.push(("x-auth-token", HeaderValue::from_str(tokens.1).unwrap())),
        Who::NoToken => {}
        Who::BadToken(t) => headers.extend(HeaderValue::from_str(t).ok().map(|v| ("x-auth-token", v))),
    }
    headers.extend(resolve_media(template, &r.content_type).map(|v| ("content-type", v)));
    headers.extend(resolve_media(template, &r.accept).map(|v| ("accept", v)));
    Sent { method, uri, headers, body: resolve_body(fx, template, &r.body) }
}

struct Harness {
    api: Api,
    auth: Arc<LocalAuth>,
    tenant_token: String,
    topology: Arc<Topology<DynStore>>,
    ctx: CompileContext,
    templates: Vec<(String, Vec<Method>)>,
    fx: Fixture,
    /// POSTs and PUTs sent (login aside), and how many were accepted: how much of the generated
    /// input gets past the checks to the store.
    writes: (u32, u32),
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

impl Harness {
    async fn new() -> Harness {
        let auth = Arc::new(LocalAuth::new(accounts(), DEFAULT_TOKEN_TTL));
        let (api, topology) = Harness::store(auth.clone(), String::new());
        let token = api.login("admin", "secret").await;
        let tenant_token = api.login("alice", "pw").await;
        let mut h = Harness {
            api: Api { token, ..api },
            auth,
            tenant_token,
            topology,
            ctx: CompileContext::default(),
            templates: templates(),
            fx: Fixture::default(),
            writes: (0, 0),
        };
        h.build().await;
        h
    }

    /// An app over a new, empty store; tokens live in `auth`, so they stay valid.
    fn store(auth: Arc<LocalAuth>, token: String) -> (Api, Arc<Topology<DynStore>>) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("db")).unwrap();
        let topology = Arc::new(Topology::new(Arc::new(store) as DynStore));
        (Api { app: app(topology.clone(), auth), token, _dir: Arc::new(dir) }, topology)
    }

    /// The fixture in the current store, compiled for a gateway as the appliance compiles: the
    /// fixture's host is the local one with its two DPDK ports, so bindings are judged for real.
    async fn build(&mut self) {
        self.fx = build(&self.api).await;
        self.ctx = CompileContext {
            generation: 1,
            local_host: Some(self.fx.ids["hosts"][0].parse().unwrap()),
            interfaces: vec![("dpdk0".into(), 0), ("dpdk1".into(), 1)],
            underlay: None,
        };
        self.topology.set_compile_context(self.ctx.clone());
        if let Err(e) = compile(&self.topology, &self.ctx) {
            panic!("the fixture does not compile: {e}");
        }
    }

    /// A new store with a new fixture, when a case deleted part of the old one: the store does not
    /// grow without bound and later cases still have every kind of object to name.
    async fn rebuild(&mut self) {
        let (api, topology) = Harness::store(self.auth.clone(), self.api.token.clone());
        (self.api, self.topology) = (api, topology);
        self.build().await;
    }

    async fn system_readonly(&self) -> bool {
        let r = self.api.get("/midonet-api/system_state", SYSTEM_STATE).await;
        r.json["availability"] == "READONLY"
    }

    fn version(&self) -> u64 {
        self.topology.store().version().unwrap()
    }

    async fn run(&mut self, reqs: &[Req]) -> Result<(), TestCaseError> {
        let start = self.version();
        let compiled_before = compile(&self.topology, &self.ctx).is_ok();
        let mut log = String::new();
        for r in reqs {
            let readonly = self.system_readonly().await;
            let sent = resolve(&self.fx, &self.templates, r, (&self.api.token, &self.tenant_token));
            let before = self.version();
            let resp = send_raw(&self.api.app, sent.method.clone(), &sent.uri, &sent.headers, sent.body.clone()).await;
            writeln!(log, "{sent}\n  -> {} {}", resp.status, resp.text()).unwrap();
            if matches!(sent.method, Method::POST | Method::PUT) && !sent.uri.starts_with("/midonet-api/login") {
                self.writes.0 += 1;
                self.writes.1 += u32::from(resp.status.is_success());
            }
            self.check_response(&sent, &resp, readonly).await.map_err(|e| fail(format!("{e}\n{log}")))?;
            // A refused request commits nothing (the store version counts commits).
            if !resp.status.is_success() && self.version() != before {
                return Err(fail(format!("a refused request changed the store\n{log}")));
            }
        }
        // Nothing committed, nothing to walk: the walk is what costs (it grows with the store).
        if self.version() != start {
            self.check_store(compiled_before).await.map_err(|e| fail(format!("{e}\nafter:\n{log}")))?;
        }
        // Let the next case write again, and give it the objects it names.
        if self.system_readonly().await {
            let body = json!({"state": "ACTIVE", "availability": "READWRITE"});
            assert_eq!(self.api.send("PUT", "/midonet-api/system_state", SYSTEM_STATE, body).await.status, 204);
        }
        if self.version() != start && !self.fixture_intact().await {
            self.rebuild().await;
        }
        Ok(())
    }

    async fn check_response(&self, sent: &Sent, r: &Raw, readonly: bool) -> Result<(), String> {
        let write = !matches!(sent.method, Method::GET | Method::HEAD);
        if r.status.is_server_error() && !(r.status == StatusCode::SERVICE_UNAVAILABLE && readonly && write) {
            return Err(format!("server error {}: {}", r.status, r.text()));
        }
        if r.status.is_client_error() || r.status.is_server_error() {
            if sent.method == Method::HEAD {
                return Ok(());
            }
            let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            if ct != Some(ERROR_MEDIA) {
                return Err(format!("{} answered as {ct:?}, not Error-v1: {}", r.status, r.text()));
            }
            let Some(v) = r.json() else { return Err(format!("error body is not JSON: {}", r.text())) };
            if v["code"] != r.status.as_u16() || !v["message"].is_string() || !v["violations"].is_array() {
                return Err(format!("error body is not Error-v1 for {}: {v}", r.status));
            }
            return Ok(());
        }
        if !r.status.is_success() {
            return Err(format!("unexpected status {}", r.status));
        }
        let login = sent.uri.starts_with("/midonet-api/login");
        match sent.method {
            Method::POST if !login => {
                if r.status != StatusCode::CREATED {
                    return Err(format!("a create answered {}, not 201", r.status));
                }
                let Some(location) = r.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
                    return Err("201 without Location".into());
                };
                // A link has no GET of its own; everything else created is fetched at Location.
                if !location.ends_with("/link") {
                    let got = self.api.get(location, "application/json").await;
                    if got.status != StatusCode::OK || got.json["uri"] != location {
                        return Err(format!("GET Location {location}: {} {}", got.status, got.json));
                    }
                }
            }
            Method::PUT | Method::DELETE if r.status != StatusCode::NO_CONTENT => {
                return Err(format!("{} answered {}, not 204", sent.method, r.status));
            }
            Method::GET if r.status != StatusCode::OK || r.json().is_none() => {
                return Err(format!("GET answered {} {}", r.status, r.text()));
            }
            _ => {}
        }
        Ok(())
    }

    /// Every collection lists (200, array), every listed object is what its `uri` answers, and the
    /// topology compiles if it did before.
    async fn check_store(&self, compiled_before: bool) -> Result<(), String> {
        let root = self.api.root().await;
        let mut queue: Vec<String> = ["routers", "bridges", "ports", "chains", "hosts", "tunnelZones", "portGroups"]
            .iter()
            .chain(&["ipAddrGroups", "tenants"])
            .map(|k| root[*k].as_str().unwrap().to_string())
            .collect();
        const SUB: &[&str] = &[
            "ports",
            "routes",
            "rules",
            "hosts",
            "interfaces",
            "addrs",
            "bgpPeers",
            "bgpNetworks",
            "peerPorts",
            "portGroups",
        ];
        let mut seen = std::collections::HashSet::new();
        while let Some(list) = queue.pop() {
            if !seen.insert(list.clone()) {
                continue;
            }
            let r = self.api.get(&list, "application/json").await;
            let Some(items) = r.json.as_array().filter(|_| r.status == StatusCode::OK) else {
                return Err(format!("GET {list}: {} {}", r.status, r.json));
            };
            for item in items {
                let Some(uri) = item["uri"].as_str() else { return Err(format!("no uri in {list}: {item}")) };
                if Request::builder().uri(uri).body(()).is_err() {
                    return Err(format!("{list} lists an object whose uri is not a URI: {uri:?}"));
                }
                let got = self.api.get(uri, "application/json").await;
                if got.status != StatusCode::OK || got.json != *item {
                    return Err(format!("{list} lists {item}\nbut GET {uri} answers {} {}", got.status, got.json));
                }
                for key in SUB {
                    if let Some(sub) = item[*key].as_str() {
                        if sub.starts_with("http") && !sub.contains('?') {
                            queue.push(sub.to_string());
                        }
                    }
                }
            }
        }
        if compiled_before {
            if let Err(e) = compile(&self.topology, &self.ctx) {
                return Err(format!("a write was accepted that leaves a topology that does not compile: {e}"));
            }
        }
        Ok(())
    }

    async fn fixture_intact(&self) -> bool {
        for (kind, ids) in &self.fx.ids {
            if *kind == "tenants" {
                continue;
            }
            for id in ids {
                let r = self
                    .api
                    .raw("GET", &format!("/midonet-api/{kind}/{id}"), &[("x-auth-token", &self.api.token)], None)
                    .await;
                if r.status != StatusCode::OK {
                    return false;
                }
            }
        }
        true
    }
}

#[test]
fn generated_bad_requests_get_contract_answers_and_leave_a_consistent_store() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let harness = std::cell::RefCell::new(rt.block_on(Harness::new()));
    let n = harness.borrow().templates.len();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    // The store carries over from case to case (that is the point), so a shrunk case runs on a
    // different store: keep shrinking short, the failure message has every request of the case.
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 32, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result =
        runner.run(&proptest::collection::vec(req(n), 1..4), |reqs| rt.block_on(harness.borrow_mut().run(&reqs)));
    if let Err(e) = result {
        panic!("{e}");
    }
    let (sent, accepted) = harness.borrow().writes;
    eprintln!("{accepted} of {sent} generated POST and PUT requests were accepted");
}
