//! The API never stores a topology the snapshot compiler refuses, never widens a rule by deleting
//! what it names, and keeps tenants to their own objects: each write below is refused with the
//! status the contract names, stores nothing, and the store still compiles.

use super::*;
use crate::compile::{compile, CompileContext};
use crate::topology::Topology;

const HOST_MEDIA: &str = "application/vnd.org.midonet.Host-v3+json";
const TZ_HOST: &str = "application/vnd.org.midonet.TunnelZoneHost-v1+json";
const BGP_PEER: &str = "application/vnd.org.midonet.BgpPeer-v1+json";
const LINK: &str = "application/vnd.org.midonet.PortLink-v1+json";

/// An admin API plus the topology it writes, so a test can compile what REST stored.
async fn api_with_topology() -> (Api, Arc<Topology<DynStore>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db")).unwrap();
    let topology = Arc::new(Topology::new(Arc::new(store) as DynStore));
    let app = app(topology.clone(), Arc::new(LocalAuth::new(accounts(), DEFAULT_TOKEN_TTL)));
    let mut api = Api { app, token: String::new(), _dir: Arc::new(dir) };
    api.token = api.login("admin", "secret").await;
    (api, topology)
}

#[track_caller]
fn assert_compiles(topology: &Topology<DynStore>) {
    if let Err(e) = compile(topology, &CompileContext::default()) {
        panic!("the stored topology no longer compiles: {e}");
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn message(r: &Resp) -> String {
    r.json["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_indirect_jump_loop_is_refused_with_400() {
    let (api, topology) = api_with_topology().await;
    let a = api.create("/midonet-api/chains", CHAIN, json!({"name": "a"})).await;
    let b = api.create("/midonet-api/chains", CHAIN, json!({"name": "b"})).await;
    let c = api.create("/midonet-api/chains", CHAIN, json!({"name": "c"})).await;
    api.create(s(&a["rules"]), RULE, json!({"type": "jump", "jumpChainId": b["id"]})).await;
    api.create(s(&b["rules"]), RULE, json!({"type": "jump", "jumpChainId": c["id"]})).await;
    let r = api.send("POST", s(&c["rules"]), RULE, json!({"type": "jump", "jumpChainId": a["id"]})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("loop") && message(&r).contains(s(&a["id"])), "{}", r.json);
    assert_eq!(api.get(s(&c["rules"]), RULES).await.json, json!([]), "nothing stored");
    assert_compiles(&topology);
}

#[tokio::test]
async fn a_jump_path_deeper_than_evaluation_supports_is_refused_with_400() {
    let (api, topology) = api_with_topology().await;
    let max = flowtable::chain::MAX_JUMP_DEPTH;
    let mut chains = Vec::new();
    for i in 0..=max {
        chains.push(api.create("/midonet-api/chains", CHAIN, json!({"name": format!("c{i}")})).await);
    }
    // A path of `max` chains is what evaluation supports ...
    for w in chains[..max].windows(2) {
        api.create(s(&w[0]["rules"]), RULE, json!({"type": "jump", "jumpChainId": w[1]["id"]})).await;
    }
    assert_compiles(&topology);
    // ... one more chain on it is refused.
    let last = &chains[max - 1];
    let r = api.send("POST", s(&last["rules"]), RULE, json!({"type": "jump", "jumpChainId": chains[max]["id"]})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains(&format!("nest {} chains", max + 1)), "{}", r.json);
    assert_compiles(&topology);
}

#[tokio::test]
async fn rules_and_routes_the_data_path_cannot_represent_are_refused_with_400() {
    let (api, topology) = api_with_topology().await;
    let c = api.create("/midonet-api/chains", CHAIN, json!({"name": "c"})).await;
    let pg = api.create("/midonet-api/port_groups", "application/vnd.org.midonet.PortGroup-v1+json", json!({})).await;
    for body in [
        json!({"type": "l2_transform", "popVlan": true}),
        json!({"type": "trace"}),
        json!({"type": "accept", "condInvert": true}),
        json!({"type": "accept", "vlan": 10}),
        json!({"type": "accept", "noVlan": true}),
        json!({"type": "accept", "matchNwDstRewritten": true}),
        json!({"type": "accept", "icmpDataSrcIpAddress": "10.0.0.1", "icmpDataSrcIpLength": 32}),
        json!({"type": "drop", "outPortGroup": pg["id"]}),
    ] {
        let r = api.send("POST", s(&c["rules"]), RULE, body.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert!(message(&r).contains("not supported by the data path"), "{body}: {}", r.json);
    }
    assert_eq!(api.get(s(&c["rules"]), RULES).await.json, json!([]), "nothing stored");
    let router = api.create("/midonet-api/routers", ROUTER, json!({"name": "r"})).await;
    let r = api
        .send(
            "POST",
            s(&router["routes"]),
            ROUTE,
            json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "10.0.0.0",
                   "dstNetworkLength": 8, "type": "Fip64"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("FIP64"), "{}", r.json);
    assert_compiles(&topology);
}

#[tokio::test]
async fn deleting_a_port_a_rule_names_is_refused_with_409_naming_the_rule() {
    let (api, topology) = api_with_topology().await;
    let br = api.create("/midonet-api/bridges", BRIDGE, json!({"name": "br"})).await;
    let port = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    let out = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    let c = api.create("/midonet-api/chains", CHAIN, json!({"name": "c"})).await;
    let rule = api.create(s(&c["rules"]), RULE, json!({"type": "drop", "inPorts": [port["id"]]})).await;
    let rule2 = api.create(s(&c["rules"]), RULE, json!({"type": "drop", "outPorts": [out["id"]]})).await;
    for (p, named_by) in [(&port, &rule), (&out, &rule2)] {
        let r = api.delete(s(&p["uri"])).await;
        assert_error(&r, StatusCode::CONFLICT);
        assert!(message(&r).contains(s(&named_by["id"])), "{}", r.json);
    }
    // Through the bridge that holds the ports, too.
    assert_error(&api.delete(s(&br["uri"])).await, StatusCode::CONFLICT);
    // The rule was not widened: it still names its port.
    assert_eq!(api.get(s(&rule["uri"]), RULE).await.json["inPorts"], json!([port["id"]]));
    assert_compiles(&topology);
    // Once the rules are gone the port goes.
    assert_eq!(api.delete(s(&rule["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(s(&rule2["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(s(&br["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_compiles(&topology);
}

#[tokio::test]
async fn deleting_a_traversed_device_is_refused_with_409_naming_the_rule() {
    let (api, topology) = api_with_topology().await;
    let router = api.create("/midonet-api/routers", ROUTER, json!({"name": "r"})).await;
    let bridge = api.create("/midonet-api/bridges", BRIDGE, json!({"name": "b"})).await;
    let c = api.create("/midonet-api/chains", CHAIN, json!({"name": "c"})).await;
    for device in [&router, &bridge] {
        let rule = api.create(s(&c["rules"]), RULE, json!({"type": "accept", "traversedDevice": device["id"]})).await;
        let r = api.delete(s(&device["uri"])).await;
        assert_error(&r, StatusCode::CONFLICT);
        assert!(message(&r).contains(s(&rule["id"])), "{}", r.json);
        assert_compiles(&topology);
    }
}

#[tokio::test]
async fn tunnel_keys_wider_than_24_bits_are_refused_and_automatic_keys_are_the_lowest_free() {
    let (api, topology) = api_with_topology().await;
    let br = api.create("/midonet-api/bridges", BRIDGE, json!({"name": "br"})).await;
    for key in [json!(0x100_0000u64), json!(u64::MAX)] {
        let r = api.send("POST", s(&br["ports"]), PORT, json!({"type": "Bridge", "tunnelKey": key})).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    let top = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge", "tunnelKey": 0xFF_FFFF})).await;
    assert_eq!(top["tunnelKey"], 0xFF_FFFF);
    let a = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    let b = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    assert_eq!((a["tunnelKey"].clone(), b["tunnelKey"].clone()), (json!(1), json!(2)));
    api.delete(s(&a["uri"])).await;
    let c = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    assert_eq!(c["tunnelKey"], 1, "the lowest free key is reused");
    assert_compiles(&topology);
}

#[tokio::test]
async fn an_ipv6_gre_or_vxlan_tunnel_zone_member_is_refused_with_400() {
    let (api, topology) = api_with_topology().await;
    let host = api.create("/midonet-api/hosts", HOST_MEDIA, json!({"name": "cmp"})).await;
    for kind in ["vxlan", "gre"] {
        let tz = api.create("/midonet-api/tunnel_zones", TZ, json!({"name": kind, "type": kind})).await;
        let r =
            api.send("POST", s(&tz["hosts"]), TZ_HOST, json!({"hostId": host["id"], "ipAddress": "2001:db8::1"})).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert!(message(&r).contains("IPv4"), "{}", r.json);
    }
    // A VTEP zone is not a tunnel of this data path; turning it into one is checked the same way.
    let vtep = api.create("/midonet-api/tunnel_zones", TZ, json!({"name": "v", "type": "vtep"})).await;
    let r =
        api.send("POST", s(&vtep["hosts"]), TZ_HOST, json!({"hostId": host["id"], "ipAddress": "2001:db8::1"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = api.send("PUT", s(&vtep["uri"]), TZ, json!({"name": "v", "type": "vxlan"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_compiles(&topology);
}

#[tokio::test]
async fn a_hosts_alive_is_output_only() {
    let (api, _topology) = api_with_topology().await;
    let host = api.create("/midonet-api/hosts", HOST_MEDIA, json!({"name": "ghost", "alive": true})).await;
    assert_eq!(host["alive"], false, "ignored on POST");
    let r = api.send("PUT", s(&host["uri"]), HOST_MEDIA, json!({"name": "ghost", "alive": true})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&host["uri"]), HOST_MEDIA).await.json["alive"], false, "ignored on PUT");
    assert_eq!(api.delete(s(&host["uri"])).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn put_validates_what_post_validates() {
    let (api, _topology) = api_with_topology().await;
    let br = api.create("/midonet-api/bridges", BRIDGE, json!({"name": "br"})).await;
    let port = api.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    assert_error(
        &api.send("PUT", s(&port["uri"]), PORT, json!({"type": "Bridge", "vlanId": 5000})).await,
        StatusCode::BAD_REQUEST,
    );
    let router = api.create("/midonet-api/routers", ROUTER, json!({"name": "r"})).await;
    let rport = api
        .create(
            s(&router["ports"]),
            PORT,
            json!({"type": "Router", "portAddress": "10.0.0.1", "networkAddress": "10.0.0.0", "networkLength": 24}),
        )
        .await;
    let r = api.send("PUT", s(&rport["uri"]), PORT, json!({"type": "Router", "rtrPortVni": 0x100_0000})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let peer = api.create(s(&router["bgpPeers"]), BGP_PEER, json!({"asNumber": 65001, "address": "10.0.0.2"})).await;
    for body in [json!({"asNumber": 0}), json!({"asNumber": 65001, "keepAlive": 60, "holdTime": 1})] {
        assert_error(&api.send("PUT", s(&peer["uri"]), BGP_PEER, body).await, StatusCode::BAD_REQUEST);
    }
    assert_eq!(api.get(s(&peer["uri"]), BGP_PEER).await.json["asNumber"], 65001);
}

#[tokio::test]
async fn a_tenant_cannot_bind_ports_through_port_post_or_put() {
    let (admin, _topology) = api_with_topology().await;
    let alice = admin.as_user("alice", "pw").await;
    let host = admin.create("/midonet-api/hosts", HOST_MEDIA, json!({"name": "gw"})).await;
    let br = alice.create("/midonet-api/bridges", BRIDGE, json!({"name": "a"})).await;
    let port = alice.create(s(&br["ports"]), PORT, json!({"type": "Bridge"})).await;
    let bound = json!({"type": "Bridge", "hostId": host["id"], "interfaceName": "eth0"});
    assert_error(&alice.send("PUT", s(&port["uri"]), PORT, bound.clone()).await, StatusCode::FORBIDDEN);
    assert_error(&alice.send("POST", s(&br["ports"]), PORT, bound.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(admin.get(s(&port["uri"]), PORT).await.json["hostId"], Value::Null);
    // An admin binds it; the tenant may PUT the port back unchanged, not unbind it.
    assert_eq!(admin.send("PUT", s(&port["uri"]), PORT, bound.clone()).await.status, StatusCode::NO_CONTENT);
    let mut same = alice.get(s(&port["uri"]), PORT).await.json;
    same["adminStateUp"] = json!(false);
    assert_eq!(alice.send("PUT", s(&port["uri"]), PORT, same).await.status, StatusCode::NO_CONTENT);
    assert_error(&alice.send("PUT", s(&port["uri"]), PORT, json!({"type": "Bridge"})).await, StatusCode::FORBIDDEN);
    assert_eq!(admin.get(s(&port["uri"]), PORT).await.json["hostId"], host["id"]);
}

#[tokio::test]
async fn a_tenant_cannot_link_to_another_tenants_port_by_peer_id_on_create() {
    let (admin, _topology) = api_with_topology().await;
    let alice = admin.as_user("alice", "pw").await;
    let bob = admin.as_user("bob", "pw").await;
    let b_router = bob.create("/midonet-api/routers", ROUTER, json!({"name": "b"})).await;
    let b_port = bob
        .create(
            s(&b_router["ports"]),
            PORT,
            json!({"type": "Router", "portAddress": "10.9.0.1", "networkAddress": "10.9.0.0", "networkLength": 24}),
        )
        .await;
    let a_br = alice.create("/midonet-api/bridges", BRIDGE, json!({"name": "a"})).await;
    let a_port = alice.create(s(&a_br["ports"]), PORT, json!({"type": "Bridge"})).await;
    let link = alice.send("POST", &format!("{}/link", s(&a_port["uri"])), LINK, json!({"peerId": b_port["id"]})).await;
    assert_error(&link, StatusCode::NOT_FOUND);
    let r = alice.send("POST", s(&a_br["ports"]), PORT, json!({"type": "Bridge", "peerId": b_port["id"]})).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    assert_eq!(bob.get(s(&b_port["uri"]), PORT).await.json["peerId"], Value::Null);
}

#[tokio::test]
async fn a_tenant_naming_another_tenants_objects_gets_404() {
    let (admin, _topology) = api_with_topology().await;
    let alice = admin.as_user("alice", "pw").await;
    let bob = admin.as_user("bob", "pw").await;
    let b_chain = bob.create("/midonet-api/chains", CHAIN, json!({"name": "b"})).await;
    let b_router = bob.create("/midonet-api/routers", ROUTER, json!({"name": "b"})).await;
    let b_pg = bob.create("/midonet-api/port_groups", "application/vnd.org.midonet.PortGroup-v1+json", json!({})).await;
    let filtered = json!({"name": "a", "inboundFilterId": b_chain["id"]});
    assert_error(&alice.send("POST", "/midonet-api/routers", ROUTER, filtered.clone()).await, StatusCode::NOT_FOUND);
    assert_error(&alice.send("POST", "/midonet-api/bridges", BRIDGE, filtered).await, StatusCode::NOT_FOUND);
    let a_router = alice.create("/midonet-api/routers", ROUTER, json!({"name": "a"})).await;
    let r =
        alice.send("PUT", s(&a_router["uri"]), ROUTER, json!({"name": "a", "outboundFilterId": b_chain["id"]})).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    let a_chain = alice.create("/midonet-api/chains", CHAIN, json!({"name": "a"})).await;
    for rule in [
        json!({"type": "jump", "jumpChainId": b_chain["id"]}),
        json!({"type": "accept", "traversedDevice": b_router["id"]}),
        json!({"type": "accept", "portGroup": b_pg["id"]}),
    ] {
        let r = alice.send("POST", s(&a_chain["rules"]), RULE, rule.clone()).await;
        assert_error(&r, StatusCode::NOT_FOUND);
        assert!(!r.json.to_string().contains("\"b\""), "{rule}: the other tenant's name leaked: {}", r.json);
    }
    assert_eq!(alice.get(s(&a_chain["rules"]), RULES).await.json, json!([]));
    // Bob deleting his chain touches nothing of Alice's.
    assert_eq!(bob.delete(s(&b_chain["uri"])).await.status, StatusCode::NO_CONTENT);
    // Admins may wire tenants' objects together.
    let r = admin.send("POST", s(&a_chain["rules"]), RULE, json!({"type": "accept", "portGroup": b_pg["id"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}
