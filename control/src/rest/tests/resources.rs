//! The resources beyond routers/bridges/chains, driven as midonetclient drives them: follow the root's
//! keys and templates, POST then GET `Location`, PUT then GET `uri`; plus their conformance cases.

use super::*;
use uuid::Uuid;

const HOST_MT: &str = "application/vnd.org.midonet.Host-v3+json";
const HOSTS_MT: &str = "application/vnd.org.midonet.collection.Host-v3+json";
const INTERFACES_MT: &str = "application/vnd.org.midonet.collection.Interface-v1+json";
const INTERFACE_MT: &str = "application/vnd.org.midonet.Interface-v1+json";
const HIP: &str = "application/vnd.org.midonet.HostInterfacePort-v1+json";
const HIPS: &str = "application/vnd.org.midonet.collection.HostInterfacePort-v1+json";
const TZH: &str = "application/vnd.org.midonet.TunnelZoneHost-v1+json";
const TZHS: &str = "application/vnd.org.midonet.collection.TunnelZoneHost-v1+json";
const PG: &str = "application/vnd.org.midonet.PortGroup-v1+json";
const PGS: &str = "application/vnd.org.midonet.collection.PortGroup-v1+json";
const PGP: &str = "application/vnd.org.midonet.PortGroupPort-v1+json";
const PGPS: &str = "application/vnd.org.midonet.collection.PortGroupPort-v1+json";
const IAG: &str = "application/vnd.org.midonet.IpAddrGroup-v1+json";
const IAGS: &str = "application/vnd.org.midonet.collection.IpAddrGroup-v1+json";
const IAGA: &str = "application/vnd.org.midonet.IpAddrGroupAddr-v1+json";
const IAGAS: &str = "application/vnd.org.midonet.collection.IpAddrGroupAddr-v1+json";
const BGP_PEER: &str = "application/vnd.org.midonet.BgpPeer-v1+json";
const BGP_PEERS: &str = "application/vnd.org.midonet.collection.BgpPeer-v1+json";
const BGP_NET: &str = "application/vnd.org.midonet.BgpNetwork-v1+json";
const BGP_NETS: &str = "application/vnd.org.midonet.collection.BgpNetwork-v1+json";
const TENANT: &str = "application/vnd.org.midonet.Tenant-v2+json";
const TENANTS: &str = "application/vnd.org.midonet.collection.Tenant-v2+json";
const LINK: &str = "application/vnd.org.midonet.PortLink-v1+json";

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn router_port(addr: &str, net: &str, len: u32) -> Value {
    json!({"type": "Router", "portAddress": addr, "networkAddress": net, "networkLength": len})
}

/// A host as the agent registers it (hosts are not created by clients in MidoNet; the API allows it).
async fn host(api: &Api, root: &Value, name: &str) -> Value {
    let body = json!({"name": name, "alive": false, "addresses": ["192.0.2.10"],
        "hostInterfaces": [{"name": "dpdk0", "mac": "52:54:00:00:00:01", "mtu": 9000, "addresses": []},
                           {"name": "dpdk1", "mac": "52:54:00:00:00:02", "mtu": 1500, "addresses": []}]});
    api.create(s(&root["hosts"]), HOST_MT, body).await
}

#[tokio::test]
async fn gateway_topology_end_to_end() {
    let api = Api::new().await;
    let root = api.root().await;

    // Hosts, interfaces, host update limited to what the reference allows.
    let gw = host(&api, &root, "gw1").await;
    assert_eq!(template(&root, "hostTemplate", &gw["id"]), gw["uri"]);
    let ifaces = api.get(s(&gw["interfaces"]), INTERFACES_MT).await;
    assert_eq!(ifaces.headers[header::CONTENT_TYPE], INTERFACES_MT);
    let ifaces = ifaces.json.as_array().unwrap().clone();
    assert_eq!(ifaces.len(), 2);
    assert_eq!(ifaces[0]["name"], "dpdk0");
    assert_eq!(ifaces[0]["hostId"], gw["id"]);
    assert_eq!(ifaces[0]["mtu"], 9000);
    let one = api.get(s(&ifaces[1]["uri"]), INTERFACE_MT).await;
    assert_eq!(one.json["name"], "dpdk1");
    let mut changed = gw.clone();
    changed["floodingProxyWeight"] = json!(7);
    changed["name"] = json!("renamed");
    changed["hostInterfaces"] = json!([]);
    assert_eq!(api.send("PUT", s(&gw["uri"]), HOST_MT, changed).await.status, StatusCode::NO_CONTENT);
    let gw_now = api.get(s(&gw["uri"]), HOST_MT).await.json;
    assert_eq!(gw_now["floodingProxyWeight"], 7);
    assert_eq!(gw_now["name"], "gw1", "the name is the host's own");
    assert_eq!(gw_now["hostInterfaces"].as_array().unwrap().len(), 2);
    let gw2 = host(&api, &root, "gw2").await;
    assert_eq!(api.get(s(&root["hosts"]), HOSTS_MT).await.json.as_array().unwrap().len(), 2);

    // Edge router with an uplink bound to gw1/dpdk0.
    let edge = api
        .create(s(&root["routers"]), ROUTER, json!({"name": "edge", "tenantId": "provider", "asNumber": 64512}))
        .await;
    let uplink = api.create(s(&edge["ports"]), PORT, router_port("198.51.100.2", "198.51.100.0", 24)).await;
    let bind = json!({"portId": uplink["id"], "interfaceName": "dpdk0"});
    let r = api.send("POST", s(&gw["ports"]), HIP, bind.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let location = r.headers[header::LOCATION].to_str().unwrap().to_string();
    let binding = api.get(&location, HIP).await;
    assert_eq!(binding.headers[header::CONTENT_TYPE], HIP);
    assert_eq!(binding.json["portId"], uplink["id"]);
    assert_eq!(binding.json["hostId"], gw["id"]);
    assert_eq!(binding.json["interfaceName"], "dpdk0");
    assert_eq!(binding.json["port"], uplink["uri"]);
    let port_now = api.get(s(&uplink["uri"]), PORT).await.json;
    assert_eq!(port_now["hostId"], gw["id"]);
    assert_eq!(port_now["interfaceName"], "dpdk0");
    assert_eq!(port_now["host"], gw["uri"]);
    assert_eq!(port_now["hostInterfacePort"], location);
    let listed = api.get(s(&gw["ports"]), HIPS).await.json;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Bound on gw1: binding it on gw2 is refused until it is unbound, and nothing changes.
    let r = api.send("POST", s(&gw2["ports"]), HIP, json!({"portId": uplink["id"], "interfaceName": "dpdk1"})).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(api.get(s(&uplink["uri"]), PORT).await.json["hostId"], gw["id"]);
    assert_eq!(api.get(s(&gw2["ports"]), HIPS).await.json, json!([]));
    assert_eq!(api.delete(&location).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&uplink["uri"]), PORT).await.json["hostId"], Value::Null);
    assert_error(&api.get(&location, HIP).await, StatusCode::NOT_FOUND);
    let at = format!("{}/{}", s(&gw2["ports"]), s(&uplink["id"]));
    let r = api.send("PUT", &at, HIP, json!({"portId": uplink["id"], "interfaceName": "dpdk1"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_eq!(api.get(s(&uplink["uri"]), PORT).await.json["interfaceName"], "dpdk1");
    // A bound host cannot go.
    assert_error(&api.delete(s(&gw2["uri"])).await, StatusCode::CONFLICT);

    // Tenant router linked to the edge, a bridge behind it, routes, a chain with rules.
    let tenant_router = api.create(s(&root["routers"]), ROUTER, json!({"name": "t1-r", "tenantId": "t1"})).await;
    let edge_down = api.create(s(&edge["ports"]), PORT, router_port("169.254.0.1", "169.254.0.0", 30)).await;
    let t_up = api.create(s(&tenant_router["ports"]), PORT, router_port("169.254.0.2", "169.254.0.0", 30)).await;
    let r = api.send("POST", s(&t_up["link"]), LINK, json!({"peerId": edge_down["id"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let bridge = api.create(s(&root["bridges"]), BRIDGE, json!({"name": "t1-net", "tenantId": "t1"})).await;
    let t_down = api.create(s(&tenant_router["ports"]), PORT, router_port("10.1.0.1", "10.1.0.0", 24)).await;
    let b_up = api.create(s(&bridge["ports"]), PORT, json!({"type": "Bridge"})).await;
    let r = api.send("POST", s(&b_up["link"]), LINK, json!({"peerId": t_down["id"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(api.get(s(&t_down["uri"]), PORT).await.json["peer"], b_up["uri"]);
    let default_route = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "0.0.0.0",
        "dstNetworkLength": 0, "nextHopPort": t_up["id"], "nextHopGateway": "169.254.0.1", "weight": 100, "type": "Normal"});
    let route = api.create(s(&tenant_router["routes"]), ROUTE, default_route).await;
    assert_eq!(template(&root, "routeTemplate", &route["id"]), route["uri"]);
    let chain = api.create(s(&root["chains"]), CHAIN, json!({"name": "t1-in", "tenantId": "t1"})).await;
    let rule = api
        .create(s(&chain["rules"]), RULE, json!({"type": "accept", "nwProto": 6, "tpDst": {"start": 22, "end": 22}}))
        .await;
    assert_eq!(template(&root, "ruleTemplate", &rule["id"]), rule["uri"]);
    let mut tr = api.get(s(&tenant_router["uri"]), ROUTER).await.json;
    tr["inboundFilterId"] = chain["id"].clone();
    assert_eq!(api.send("PUT", s(&tenant_router["uri"]), ROUTER, tr).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&tenant_router["uri"]), ROUTER).await.json["inboundFilter"], chain["uri"]);

    // Tunnel zone with both hosts as members.
    let tz = api.create(s(&root["tunnelZones"]), TZ, json!({"name": "underlay", "type": "vxlan"})).await;
    let m1 = api.create(s(&tz["hosts"]), TZH, json!({"hostId": gw["id"], "ipAddress": "192.0.2.10"})).await;
    assert_eq!(m1["tunnelZoneId"], tz["id"]);
    assert_eq!(m1["host"], gw["uri"]);
    api.create(s(&tz["hosts"]), TZH, json!({"hostId": gw2["id"], "ipAddress": "192.0.2.11"})).await;
    let r = api.send("POST", s(&tz["hosts"]), TZH, json!({"hostId": gw2["id"], "ipAddress": "192.0.2.12"})).await;
    assert_error(&r, StatusCode::CONFLICT);
    let members = api.get(s(&tz["hosts"]), TZHS).await.json;
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!(members[1]["ipAddress"], "192.0.2.11");
    assert_eq!(api.delete(s(&m1["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&tz["hosts"]), TZHS).await.json.as_array().unwrap().len(), 1);

    // Port group (stateful, for multi-uplink BGP) with the uplink in it.
    let pg = api
        .create(s(&root["portGroups"]), PG, json!({"name": "uplinks", "stateful": true, "tenantId": "provider"}))
        .await;
    assert_eq!(template(&root, "portGroupTemplate", &pg["id"]), pg["uri"]);
    assert!(pg.get("portIds").is_none(), "hidden field leaked: {pg}");
    let member = api.create(s(&pg["ports"]), PGP, json!({"portId": uplink["id"]})).await;
    assert_eq!(member["portGroupId"], pg["id"]);
    assert_eq!(member["port"], uplink["uri"]);
    assert_eq!(api.get(s(&pg["ports"]), PGPS).await.json.as_array().unwrap().len(), 1);
    let groups = api.get(s(&uplink["portGroups"]), PGPS).await.json;
    assert_eq!(groups[0]["portGroup"], pg["uri"]);
    let mut pg2 = pg.clone();
    pg2["name"] = json!("uplinks-2");
    assert_eq!(api.send("PUT", s(&pg["uri"]), PG, pg2).await.status, StatusCode::NO_CONTENT);
    let pg_now = api.get(s(&pg["uri"]), PG).await.json;
    assert_eq!(pg_now["name"], "uplinks-2");
    assert_eq!(api.get(s(&pg["ports"]), PGPS).await.json.as_array().unwrap().len(), 1, "PUT keeps members");
    assert_eq!(api.get(s(&root["portGroups"]), PGS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.delete(s(&member["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&uplink["portGroups"]), PGPS).await.json, json!([]));

    // IP address group with v4 and v6 addresses, on both path forms.
    let iag = api.create(s(&root["ipAddrGroups"]), IAG, json!({"name": "admins", "tenantId": "t1"})).await;
    assert_eq!(template(&root, "ipAddrGroupTemplate", &iag["id"]), iag["uri"]);
    assert!(iag.get("ipAddrPorts").is_none() && iag.get("ruleIds").is_none(), "hidden fields leaked: {iag}");
    let a4 = api.create(s(&iag["addrs"]), IAGA, json!({"version": 4, "addr": "10.1.0.5"})).await;
    assert_eq!(a4["version"], 4);
    assert_eq!(a4["ipAddrGroup"], iag["uri"]);
    let v6_path = format!("{}/versions/6/ip_addrs", s(&iag["uri"]));
    let a6 = api.create(&v6_path, IAGA, json!({"version": "6", "addr": "2001:db8::5"})).await;
    assert_eq!(a6["addr"], "2001:db8::5");
    assert_eq!(api.get(s(&iag["addrs"]), IAGAS).await.json.as_array().unwrap().len(), 2);
    assert_eq!(api.get(&v6_path, IAGAS).await.json.as_array().unwrap().len(), 1);
    let r = api.send("POST", &v6_path, IAGA, json!({"version": 4, "addr": "10.1.0.6"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let r = api.send("POST", s(&iag["addrs"]), IAGA, json!({"version": 4, "addr": "10.1.0.5"})).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(api.get(s(&iag["addrs"]), IAGAS).await.json.as_array().unwrap().len(), 2);
    let by_rule = api.create(s(&chain["rules"]), RULE, json!({"type": "drop", "ipAddrGroupSrc": iag["id"]})).await;
    assert_eq!(by_rule["ipAddrGroupSrc"], iag["id"]);
    assert_eq!(api.delete(s(&a6["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&iag["addrs"]), IAGAS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(s(&root["ipAddrGroups"]), IAGS).await.json.as_array().unwrap().len(), 1);

    // BGP peer and network on the edge router (router-scoped collections, top-level items).
    let peer = api.create(s(&edge["bgpPeers"]), BGP_PEER, json!({"asNumber": 64513, "address": "198.51.100.1"})).await;
    assert_eq!(template(&root, "bgpPeerTemplate", &peer["id"]), peer["uri"]);
    assert_eq!(peer["router"], edge["uri"]);
    assert!(peer.get("routerId").is_none(), "hidden field leaked: {peer}");
    let mut p2 = peer.clone();
    p2["keepAlive"] = json!(10);
    p2["holdTime"] = json!(30);
    assert_eq!(api.send("PUT", s(&peer["uri"]), BGP_PEER, p2).await.status, StatusCode::NO_CONTENT);
    let peer_now = api.get(s(&peer["uri"]), BGP_PEER).await.json;
    assert_eq!(peer_now["holdTime"], 30);
    assert_eq!(peer_now["address"], "198.51.100.1");
    let r =
        api.send("POST", s(&edge["bgpPeers"]), BGP_PEER, json!({"asNumber": 64514, "address": "198.51.100.1"})).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(api.get(s(&edge["bgpPeers"]), BGP_PEERS).await.json.as_array().unwrap().len(), 1);
    let net =
        api.create(s(&edge["bgpNetworks"]), BGP_NET, json!({"subnetAddress": "203.0.113.0", "subnetLength": 24})).await;
    assert_eq!(template(&root, "bgpNetworkTemplate", &net["id"]), net["uri"]);
    assert_eq!(api.get(s(&edge["bgpNetworks"]), BGP_NETS).await.json[0]["subnetLength"], 24);

    // Tenants: every tenant the topology names.
    let tenants = api.get(s(&root["tenants"]), TENANTS).await;
    assert_eq!(tenants.headers[header::CONTENT_TYPE], TENANTS);
    let ids: Vec<&str> = tenants.json.as_array().unwrap().iter().map(|t| s(&t["id"])).collect();
    assert_eq!(ids, ["provider", "t1"]);
    let t1 = api.get(&template(&root, "tenantTemplate", &json!("t1")), TENANT).await.json;
    let t1_routers = api.get(s(&t1["routers"]), ROUTERS).await.json;
    assert_eq!(t1_routers.as_array().unwrap().len(), 1);
    assert_eq!(t1_routers[0]["id"], tenant_router["id"]);

    // Deletes, then everything under the edge router is gone.
    assert_eq!(api.delete(s(&net["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(s(&iag["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(s(&by_rule["uri"]), RULE).await.json["ipAddrGroupSrc"], Value::Null);
    assert_eq!(api.delete(s(&pg["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(s(&tz["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(s(&edge["uri"])).await.status, StatusCode::NO_CONTENT);
    assert_error(&api.get(s(&peer["uri"]), BGP_PEER).await, StatusCode::NOT_FOUND);
    assert_eq!(api.get(s(&t_up["uri"]), PORT).await.json["peerId"], Value::Null);
    assert_eq!(api.delete(s(&gw2["uri"])).await.status, StatusCode::NO_CONTENT, "unbound with its port");
    assert_eq!(api.delete(s(&gw["uri"])).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn new_resources_conformance_errors_write_nothing() {
    let api = Api::new().await;
    let root = api.root().await;
    let router = api.create(s(&root["routers"]), ROUTER, json!({"name": "r"})).await;
    let gw = host(&api, &root, "gw").await;
    let pg = api.create(s(&root["portGroups"]), PG, json!({"name": "pg"})).await;
    let iag = api.create(s(&root["ipAddrGroups"]), IAG, json!({"name": "g"})).await;

    // 415 on every new collection.
    for (uri, body) in [
        (s(&root["portGroups"]), json!({"name": "x"})),
        (s(&root["ipAddrGroups"]), json!({"name": "x"})),
        (s(&router["bgpPeers"]), json!({"asNumber": 1, "address": "10.0.0.1"})),
        (s(&gw["ports"]), json!({"portId": Uuid::new_v4(), "interfaceName": "dpdk0"})),
        (s(&pg["ports"]), json!({"portId": Uuid::new_v4()})),
        (s(&iag["addrs"]), json!({"addr": "10.0.0.1"})),
    ] {
        assert_error(&api.send("POST", uri, ROUTER, body).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    // 400: missing or bad fields.
    assert_error(
        &api.send("POST", s(&router["bgpPeers"]), BGP_PEER, json!({"address": "10.0.0.1"})).await,
        StatusCode::BAD_REQUEST,
    );
    let r = api.send("POST", s(&router["bgpPeers"]), BGP_PEER, json!({"asNumber": 1, "address": "nope"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let r = api
        .send("POST", s(&router["bgpNetworks"]), BGP_NET, json!({"subnetAddress": "10.0.0.0", "subnetLength": 40}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_error(
        &api.send("POST", s(&root["portGroups"]), PG, json!({"name": "x".repeat(256)})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.send("POST", s(&iag["addrs"]), IAGA, json!({"addr": "10.0.0.300"})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.send("POST", s(&iag["addrs"]), IAGA, json!({"addr": "10.0.0.1", "version": 5})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.send("POST", s(&gw["ports"]), HIP, json!({"interfaceName": "dpdk0"})).await,
        StatusCode::BAD_REQUEST,
    );
    // 404: unknown parents and references.
    let missing = Uuid::new_v4();
    let r = api
        .send(
            "POST",
            &format!("/midonet-api/routers/{missing}/bgp_peers"),
            BGP_PEER,
            json!({"asNumber": 1, "address": "10.0.0.1"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND);
    assert_error(
        &api.get(&format!("/midonet-api/routers/{missing}/bgp_networks"), BGP_NETS).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(&api.send("POST", s(&pg["ports"]), PGP, json!({"portId": missing})).await, StatusCode::NOT_FOUND);
    assert_error(
        &api.send("POST", s(&gw["ports"]), HIP, json!({"portId": missing, "interfaceName": "dpdk0"})).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &api.get(&format!("/midonet-api/hosts/{missing}/interfaces"), INTERFACES_MT).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(&api.get(&format!("{}/nope", s(&gw["interfaces"])), INTERFACE_MT).await, StatusCode::NOT_FOUND);
    assert_error(&api.get(&format!("{}/{missing}", s(&pg["ports"])), PGP).await, StatusCode::NOT_FOUND);
    assert_error(&api.get(&format!("{}/10.9.9.9", s(&iag["addrs"])), IAGA).await, StatusCode::NOT_FOUND);
    assert_error(&api.get(&format!("{}/versions/5/ip_addrs", s(&iag["uri"])), IAGAS).await, StatusCode::NOT_FOUND);
    assert_error(&api.get("/midonet-api/tenants/nobody", TENANT).await, StatusCode::NOT_FOUND);
    assert_error(&api.get(&format!("/midonet-api/bgp_peers/{missing}"), BGP_PEER).await, StatusCode::NOT_FOUND);
    // 409: duplicates and bindings that clash.
    let port = api.create(s(&router["ports"]), PORT, router_port("10.0.0.1", "10.0.0.0", 24)).await;
    let other = api.create(s(&router["ports"]), PORT, router_port("10.0.1.1", "10.0.1.0", 24)).await;
    api.create(s(&pg["ports"]), PGP, json!({"portId": port["id"]})).await;
    assert_error(&api.send("POST", s(&pg["ports"]), PGP, json!({"portId": port["id"]})).await, StatusCode::CONFLICT);
    let r = api.send("POST", s(&gw["ports"]), HIP, json!({"portId": port["id"], "interfaceName": "dpdk0"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api.send("POST", s(&gw["ports"]), HIP, json!({"portId": other["id"], "interfaceName": "dpdk0"})).await;
    assert_error(&r, StatusCode::CONFLICT);
    api.create(s(&router["bgpNetworks"]), BGP_NET, json!({"subnetAddress": "10.8.0.0", "subnetLength": 16})).await;
    let r = api
        .send("POST", s(&router["bgpNetworks"]), BGP_NET, json!({"subnetAddress": "10.8.0.0", "subnetLength": 16}))
        .await;
    assert_error(&r, StatusCode::CONFLICT);
    // 405: no PUT where MidoNet has none.
    let r = api.send("PUT", s(&iag["uri"]), IAG, json!({"name": "y"})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Nothing partial was written.
    assert_eq!(api.get(s(&root["portGroups"]), PGS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(s(&pg["ports"]), PGPS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(s(&root["ipAddrGroups"]), IAGS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(s(&iag["addrs"]), IAGAS).await.json, json!([]));
    assert_eq!(api.get(s(&router["bgpPeers"]), BGP_PEERS).await.json, json!([]));
    assert_eq!(api.get(s(&router["bgpNetworks"]), BGP_NETS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(s(&gw["ports"]), HIPS).await.json.as_array().unwrap().len(), 1);
    assert_eq!(api.get(s(&other["uri"]), PORT).await.json["hostId"], Value::Null);
}

/// Every path the app serves is in openapi.json with exactly the methods it answers.
#[tokio::test]
async fn openapi_lists_every_served_route_and_method() {
    let doc: Value = serde_json::from_str(openapi::document()).unwrap();
    let api = Api::new().await;
    let served = served_paths();
    assert!(served.len() > 40, "{served:?}");
    for path in &served {
        let key = if path.is_empty() { "/" } else { path.as_str() };
        let entry = doc["paths"][key].as_object().unwrap_or_else(|| panic!("{key} is served but not in openapi.json"));
        let concrete: String = key
            .split('/')
            .map(|seg| match seg {
                "{version}" => "4".to_string(),
                "{addr}" => "10.0.0.1".to_string(),
                "{name}" => "eth0".to_string(),
                seg if seg.starts_with('{') => Uuid::new_v4().to_string(),
                seg => seg.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "delete"] {
            let r = api
                .raw(&method.to_uppercase(), &format!("/midonet-api{concrete}"), &[("x-auth-token", &api.token)], None)
                .await;
            let documented = entry.contains_key(method);
            assert_eq!(r.status != StatusCode::METHOD_NOT_ALLOWED, documented, "{method} {key}: {}", r.status);
        }
    }
    for key in doc["paths"].as_object().unwrap().keys() {
        assert!(served.iter().any(|p| p == key || (p.is_empty() && key == "/")), "{key} documented, not served");
    }
}

#[tokio::test]
async fn peer_ports_are_the_linked_ports() {
    let api = Api::new().await;
    let root = api.root().await;
    let edge = api.create(s(&root["routers"]), ROUTER, json!({"name": "edge"})).await;
    let bridge = api.create(s(&root["bridges"]), BRIDGE, json!({"name": "net"})).await;
    let down = api.create(s(&edge["ports"]), PORT, router_port("10.0.0.1", "10.0.0.0", 24)).await;
    api.create(s(&edge["ports"]), PORT, router_port("10.0.1.1", "10.0.1.0", 24)).await;
    let up = api.create(s(&bridge["ports"]), PORT, json!({"type": "Bridge"})).await;
    let r = api.send("POST", s(&down["link"]), LINK, json!({"peerId": up["id"]})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let peers = api.get(s(&edge["peerPorts"]), PORTS).await;
    assert_eq!(peers.headers[header::CONTENT_TYPE], PORTS);
    assert_eq!(peers.json.as_array().unwrap().len(), 1);
    assert_eq!(peers.json[0]["id"], up["id"]);
    assert_eq!(api.get(s(&bridge["peerPorts"]), PORTS).await.json[0]["id"], down["id"]);
    assert_error(
        &api.get(&format!("/midonet-api/routers/{}/peer_ports", Uuid::new_v4()), PORTS).await,
        StatusCode::NOT_FOUND,
    );
}

/// An interface's `uri` GETs it back whatever its name (space, slash, query characters: encoded),
/// and a host whose interfaces cannot all be addressed by name (an empty or repeated name) is
/// refused (400) with nothing stored: `.../interfaces/a b` was not a URI, `.../interfaces/a/b`
/// and `.../interfaces/` were 404s, and a repeated name's second interface answered the first.
#[tokio::test]
async fn interface_uris_get_each_interface_back() {
    let api = Api::new().await;
    let root = api.root().await;
    let names = ["a b", "a/b", "x?y#z", "%41", "eth0.100"];
    let ifaces: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    let h = api.create(s(&root["hosts"]), HOST_MT, json!({"name": "h", "hostInterfaces": ifaces})).await;
    let listed = api.get(s(&h["interfaces"]), INTERFACES_MT).await.json;
    assert_eq!(listed.as_array().unwrap().len(), names.len());
    for (item, name) in listed.as_array().unwrap().iter().zip(names) {
        let got = api.get(s(&item["uri"]), INTERFACE_MT).await;
        assert_eq!(got.status, StatusCode::OK, "{name}: {}", item["uri"]);
        assert_eq!(got.json["name"], name);
        assert_eq!(got.json, *item);
    }
    let refusals = [
        (json!([{"name": ""}]), "hostInterfaces.name is required"),
        (
            json!([{"name": "dpdk0"}, {"name": "dpdk0", "mtu": 1500}]),
            "hostInterfaces: the name \"dpdk0\" is used twice",
        ),
    ];
    for (bad, says) in refusals {
        let r = api.send("POST", s(&root["hosts"]), HOST_MT, json!({"name": "bad", "hostInterfaces": bad})).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert!(r.json["message"].as_str().unwrap().contains(says), "{}", r.json);
    }
    assert_eq!(api.get(s(&root["hosts"]), HOSTS_MT).await.json.as_array().unwrap().len(), 1);
}
