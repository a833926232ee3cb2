//! Tenant scoping: a tenant token sees and changes only its tenant's routers, bridges, chains, port
//! groups and IP address groups and what hangs under them; another tenant's objects are 404s,
//! claiming another tenant is 403, admins see everything and filter with `?tenant_id=`.

use super::*;
use uuid::Uuid;

const PG: &str = "application/vnd.org.midonet.PortGroup-v1+json";
const PGS: &str = "application/vnd.org.midonet.collection.PortGroup-v1+json";
const PGP: &str = "application/vnd.org.midonet.PortGroupPort-v1+json";
const IAG: &str = "application/vnd.org.midonet.IpAddrGroup-v1+json";
const IAGS: &str = "application/vnd.org.midonet.collection.IpAddrGroup-v1+json";
const IAGA: &str = "application/vnd.org.midonet.IpAddrGroupAddr-v1+json";
const CHAINS: &str = "application/vnd.org.midonet.collection.Chain-v1+json";
const BRIDGES: &str = "application/vnd.org.midonet.collection.Bridge-v4+json";
const BGP_PEER: &str = "application/vnd.org.midonet.BgpPeer-v1+json";
const HIP: &str = "application/vnd.org.midonet.HostInterfacePort-v1+json";
const HOSTS: &str = "application/vnd.org.midonet.collection.Host-v3+json";
const TENANTS: &str = "application/vnd.org.midonet.collection.Tenant-v2+json";
const TENANT: &str = "application/vnd.org.midonet.Tenant-v2+json";
const LINK: &str = "application/vnd.org.midonet.PortLink-v1+json";

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| s(&v["id"]).to_string()).collect()
}

#[tokio::test]
async fn tenant_tokens_see_and_change_only_their_tenant() {
    let admin = Api::new().await;
    let alice = admin.as_user("alice", "pw").await;
    let bob = admin.as_user("bob", "pw").await;

    // Created by a tenant token: tenantId filled in; another tenant's id is 403 and writes nothing.
    let a_router = alice.create("/midonet-api/routers", ROUTER, json!({"name": "a"})).await;
    assert_eq!(a_router["tenantId"], "t1");
    let r = alice.send("POST", "/midonet-api/routers", ROUTER, json!({"name": "x", "tenantId": "t2"})).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    let b_router = bob.create("/midonet-api/routers", ROUTER, json!({"name": "b", "tenantId": "t2"})).await;
    let admin_router = admin.create("/midonet-api/routers", ROUTER, json!({"name": "provider"})).await;

    // Lists are filtered; admins see all and filter by ?tenant_id=.
    assert_eq!(ids(&alice.get("/midonet-api/routers", ROUTERS).await.json), [s(&a_router["id"])]);
    assert_eq!(ids(&bob.get("/midonet-api/routers", ROUTERS).await.json), [s(&b_router["id"])]);
    assert_eq!(admin.get("/midonet-api/routers", ROUTERS).await.json.as_array().unwrap().len(), 3);
    assert_eq!(ids(&admin.get("/midonet-api/routers?tenant_id=t2", ROUTERS).await.json), [s(&b_router["id"])]);
    assert_eq!(alice.get("/midonet-api/routers?tenant_id=t2", ROUTERS).await.json, json!([]));

    // Another tenant's router, and the admin's tenant-less one, are 404 for read, update, delete and
    // everything under them.
    for other in [&b_router, &admin_router] {
        let uri = s(&other["uri"]);
        assert_error(&alice.get(uri, ROUTER).await, StatusCode::NOT_FOUND);
        assert_error(&alice.send("PUT", uri, ROUTER, json!({"name": "stolen"})).await, StatusCode::NOT_FOUND);
        assert_error(&alice.delete(uri).await, StatusCode::NOT_FOUND);
        assert_error(&alice.get(s(&other["ports"]), PORTS).await, StatusCode::NOT_FOUND);
        assert_error(&alice.get(s(&other["routes"]), ROUTES).await, StatusCode::NOT_FOUND);
        let port =
            json!({"type": "Router", "portAddress": "10.9.0.1", "networkAddress": "10.9.0.0", "networkLength": 24});
        assert_error(&alice.send("POST", s(&other["ports"]), PORT, port).await, StatusCode::NOT_FOUND);
        let peer = json!({"asNumber": 65000, "address": "10.9.0.2"});
        assert_error(&alice.send("POST", s(&other["bgpPeers"]), BGP_PEER, peer).await, StatusCode::NOT_FOUND);
    }
    assert_eq!(admin.get(s(&b_router["uri"]), ROUTER).await.json["name"], "b", "refused writes changed nothing");
    assert_eq!(admin.get(s(&b_router["ports"]), PORTS).await.json, json!([]));

    // Re-owning by PUT is 403; PUT without tenantId keeps the token's tenant.
    let r = alice.send("PUT", s(&a_router["uri"]), ROUTER, json!({"name": "a", "tenantId": "t2"})).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    let r = alice.send("PUT", s(&a_router["uri"]), ROUTER, json!({"name": "a2"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let a_now = alice.get(s(&a_router["uri"]), ROUTER).await.json;
    assert_eq!((a_now["name"].clone(), a_now["tenantId"].clone()), (json!("a2"), json!("t1")));

    // Ports and routes inherit their router's tenant.
    let port = json!({"type": "Router", "portAddress": "10.1.0.1", "networkAddress": "10.1.0.0", "networkLength": 24});
    let a_port = alice.create(s(&a_router["ports"]), PORT, port).await;
    let port = json!({"type": "Router", "portAddress": "10.2.0.1", "networkAddress": "10.2.0.0", "networkLength": 24});
    let b_port = bob.create(s(&b_router["ports"]), PORT, port).await;
    assert_eq!(ids(&alice.get("/midonet-api/ports", PORTS).await.json), [s(&a_port["id"])]);
    assert_error(&alice.get(s(&b_port["uri"]), PORT).await, StatusCode::NOT_FOUND);
    assert_error(&alice.delete(s(&b_port["uri"])).await, StatusCode::NOT_FOUND);
    let b_routes = admin.get(s(&b_router["routes"]), ROUTES).await.json;
    assert_error(&alice.get(s(&b_routes[0]["uri"]), ROUTE).await, StatusCode::NOT_FOUND);
    assert_error(&alice.delete(s(&b_routes[0]["uri"])).await, StatusCode::NOT_FOUND);
    // Linking to a port of another tenant is refused as if the peer did not exist.
    let r = alice.send("POST", s(&a_port["link"]), LINK, json!({"peerId": b_port["id"]})).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    assert_eq!(admin.get(s(&b_port["uri"]), PORT).await.json["peerId"], Value::Null);

    // Bridges, chains and their rules.
    let a_bridge = alice.create("/midonet-api/bridges", BRIDGE, json!({"name": "ab"})).await;
    let b_bridge = bob.create("/midonet-api/bridges", BRIDGE, json!({"name": "bb"})).await;
    assert_eq!(ids(&alice.get("/midonet-api/bridges", BRIDGES).await.json), [s(&a_bridge["id"])]);
    assert_error(&alice.get(s(&b_bridge["uri"]), BRIDGE).await, StatusCode::NOT_FOUND);
    let b_chain = bob.create("/midonet-api/chains", CHAIN, json!({"name": "bc"})).await;
    let b_rule = bob.create(s(&b_chain["rules"]), RULE, json!({"type": "drop"})).await;
    let a_chain = alice.create("/midonet-api/chains", CHAIN, json!({"name": "ac"})).await;
    assert_eq!(ids(&alice.get("/midonet-api/chains", CHAINS).await.json), [s(&a_chain["id"])]);
    assert_error(&alice.get(s(&b_chain["rules"]), RULES).await, StatusCode::NOT_FOUND);
    assert_error(&alice.get(s(&b_rule["uri"]), RULE).await, StatusCode::NOT_FOUND);
    assert_error(&alice.delete(s(&b_rule["uri"])).await, StatusCode::NOT_FOUND);
    assert_error(
        &alice.send("POST", s(&b_chain["rules"]), RULE, json!({"type": "accept"})).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(bob.get(s(&b_chain["rules"]), RULES).await.json.as_array().unwrap().len(), 1);

    // Port groups: only own groups, only own ports in them.
    let a_pg = alice.create("/midonet-api/port_groups", PG, json!({"name": "apg"})).await;
    assert_eq!(a_pg["tenantId"], "t1");
    let b_pg = bob.create("/midonet-api/port_groups", PG, json!({"name": "bpg"})).await;
    assert_eq!(ids(&alice.get("/midonet-api/port_groups", PGS).await.json), [s(&a_pg["id"])]);
    assert_error(&alice.get(s(&b_pg["uri"]), PG).await, StatusCode::NOT_FOUND);
    assert_error(
        &alice.send("POST", s(&b_pg["ports"]), PGP, json!({"portId": a_port["id"]})).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &alice.send("POST", s(&a_pg["ports"]), PGP, json!({"portId": b_port["id"]})).await,
        StatusCode::NOT_FOUND,
    );
    alice.create(s(&a_pg["ports"]), PGP, json!({"portId": a_port["id"]})).await;
    assert_error(
        &alice.send("POST", "/midonet-api/port_groups", PG, json!({"tenantId": "t2"})).await,
        StatusCode::FORBIDDEN,
    );

    // IP address groups.
    let a_iag = alice.create("/midonet-api/ip_addr_groups", IAG, json!({"name": "ag"})).await;
    let b_iag = bob.create("/midonet-api/ip_addr_groups", IAG, json!({"name": "bg"})).await;
    assert_eq!(ids(&alice.get("/midonet-api/ip_addr_groups", IAGS).await.json), [s(&a_iag["id"])]);
    assert_error(&alice.get(s(&b_iag["uri"]), IAG).await, StatusCode::NOT_FOUND);
    assert_error(
        &alice.send("POST", s(&b_iag["addrs"]), IAGA, json!({"addr": "10.0.0.1"})).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(&alice.delete(s(&b_iag["uri"])).await, StatusCode::NOT_FOUND);
    assert_eq!(ids(&admin.get("/midonet-api/ip_addr_groups?tenant_id=t2", IAGS).await.json), [s(&b_iag["id"])]);

    // Hosts are shared: readable, but binding and host writes are admin-only (403).
    let host =
        admin.create("/midonet-api/hosts", "application/vnd.org.midonet.Host-v3+json", json!({"name": "gw"})).await;
    assert_eq!(alice.get("/midonet-api/hosts", HOSTS).await.json.as_array().unwrap().len(), 1);
    let r = alice.send("POST", s(&host["ports"]), HIP, json!({"portId": a_port["id"], "interfaceName": "eth0"})).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    assert_error(&alice.delete(s(&host["uri"])).await, StatusCode::FORBIDDEN);
    admin.send("POST", s(&host["ports"]), HIP, json!({"portId": b_port["id"], "interfaceName": "eth1"})).await;
    assert_eq!(alice.get(s(&host["ports"]), "application/json").await.json, json!([]), "bob's binding is hidden");

    // Tenants: a tenant token sees only its own.
    assert_eq!(ids(&alice.get("/midonet-api/tenants", TENANTS).await.json), ["t1"]);
    assert_error(&alice.get("/midonet-api/tenants/t2", TENANT).await, StatusCode::NOT_FOUND);
    assert_eq!(alice.get("/midonet-api/tenants/t1", TENANT).await.json["id"], "t1");
    assert_eq!(ids(&admin.get("/midonet-api/tenants", TENANTS).await.json), ["t1", "t2"]);

    // The admin may do anything to anyone's objects.
    assert_eq!(admin.delete(s(&b_router["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(admin.delete(s(&a_iag["uri"])).await.status, StatusCode::NO_CONTENT);
    let missing = Uuid::new_v4();
    assert_error(&alice.get(&format!("/midonet-api/routers/{missing}"), ROUTER).await, StatusCode::NOT_FOUND);
}
