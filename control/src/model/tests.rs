//! JSON round trips on request bodies shaped as the REST reference describes them.

use serde_json::{json, Value};

use super::*;

const PORT: &str = "5b3f7c1e-0a4b-4d0e-9a55-6f1a2b3c4d5e";
const HOST: &str = "8a2b9c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const CHAIN: &str = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

/// Parse `body`, check every key it sent comes back with the same value, and that the re-serialised
/// form parses to the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(body: Value) -> T {
    let parsed: T = serde_json::from_value(body.clone()).unwrap();
    let out = serde_json::to_value(&parsed).unwrap();
    assert!(subset(&body, &out), "the body did not survive the round trip:\n{body}\n{out}");
    let again: T = serde_json::from_value(out).unwrap();
    assert_eq!(again, parsed);
    parsed
}

/// Every key of `a` is in `b` with the same value (recursively; `b` may add keys, e.g. nulls).
fn subset(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| b.get(k).is_some_and(|w| subset(v, w))),
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(v, w)| subset(v, w)),
        _ => a == b,
    }
}

#[test]
fn router_body() {
    let r: Router = round_trip(json!({"name": "edge", "tenantId": "admin", "adminStateUp": true, "asNumber": 65001,
        "inboundFilterId": CHAIN}));
    assert!(r.id.is_nil(), "no id in the body: the server chooses one");
    let out = serde_json::to_value(&r).unwrap();
    for key in [
        "id",
        "tenantId",
        "name",
        "adminStateUp",
        "inboundFilterId",
        "outboundFilterId",
        "loadBalancerId",
        "asNumber",
        "inboundMirrorIds",
        "outboundMirrorIds",
        "localRedirectChainId",
        "forwardChainId",
    ] {
        assert!(out.get(key).is_some(), "{key} missing from {out}");
    }
}

#[test]
fn admin_state_defaults_up() {
    let r: Router = serde_json::from_value(json!({})).unwrap();
    assert!(r.admin_state_up);
    let b: Bridge = serde_json::from_value(json!({"name": "b"})).unwrap();
    assert!(b.admin_state_up);
}

#[test]
fn unknown_and_link_fields_are_ignored() {
    // What midonetclient PUTs back: the GET body, links included.
    let r: Router = serde_json::from_value(json!({
        "id": "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b", "name": "edge", "uri": "http://h:8181/midonet-api/routers/x",
        "ports": "http://h/ports", "routes": "http://h/routes", "inboundFilter": null, "somethingNew": 1
    }))
    .unwrap();
    assert_eq!(r.name.as_deref(), Some("edge"));
}

#[test]
fn router_port_legacy_body() {
    let p: Port = round_trip(json!({"type": "Router", "portAddress": "10.0.0.1", "networkAddress": "10.0.0.0",
        "networkLength": 24, "portMac": "02:00:00:00:00:01"}));
    assert!(p.port_type.is_router());
    assert_eq!(p.port_address.as_deref(), Some("10.0.0.1"));
}

#[test]
fn router_port_subnet_body() {
    let p: Port = round_trip(json!({"type": "Router", "portSubnet": ["10.0.0.1/24", "2001:db8::1/64"],
        "hostId": HOST, "interfaceName": "dpdk0", "tunnelKey": 7, "rtrPortVni": 5}));
    assert_eq!(p.port_subnet.as_ref().unwrap().len(), 2);
}

#[test]
fn bridge_port_body_has_no_router_fields() {
    let p: Port = round_trip(json!({"type": "Bridge", "vlanId": 10, "peerId": PORT}));
    let out = serde_json::to_value(&p).unwrap();
    assert!(out.get("portAddress").is_none());
    assert!(out.get("portMac").is_none());
    assert_eq!(out["type"], "Bridge");
}

#[test]
fn legacy_port_types_parse() {
    for t in ["Router", "Bridge", "ExteriorRouter", "InteriorRouter", "ExteriorBridge", "InteriorBridge", "Vxlan"] {
        let p: Port = serde_json::from_value(json!({"type": t})).unwrap();
        assert_eq!(serde_json::to_value(p.port_type).unwrap(), t);
    }
    assert!(serde_json::from_value::<Port>(json!({"type": "Nope"})).is_err());
    assert!(serde_json::from_value::<Port>(json!({})).is_err(), "type is the polymorphic tag: required");
}

#[test]
fn route_body() {
    let r: Route = round_trip(json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "0.0.0.0",
        "dstNetworkLength": 0, "nextHopGateway": "10.0.0.254", "nextHopPort": PORT, "weight": 100, "type": "Normal"}));
    assert_eq!(r.route_type, RouteType::Normal);
    for t in ["Normal", "BlackHole", "Reject", "Local", "Fip64"] {
        let r: Route = serde_json::from_value(json!({ "type": t })).unwrap();
        assert_eq!(serde_json::to_value(r.route_type).unwrap(), t);
    }
    assert!(serde_json::from_value::<Route>(json!({"weight": -1})).is_err(), "weight is >= 0");
}

#[test]
fn chain_body() {
    let c: Chain = round_trip(json!({"name": "in", "tenantId": "admin"}));
    assert!(c.rule_ids.is_empty());
}

#[test]
fn snat_rule_body() {
    let r: Rule = round_trip(json!({"type": "snat", "position": 1, "flowAction": "accept",
        "natTargets": [{"addressFrom": "192.0.2.1", "addressTo": "192.0.2.1", "portFrom": 1024, "portTo": 65535}],
        "nwSrcAddress": "10.0.0.0", "nwSrcLength": 24, "inPorts": [PORT], "invInPorts": false,
        "tpDst": {"start": 80, "end": 80}, "nwProto": 6, "dlType": 2048, "fragmentPolicy": "unfragmented",
        "matchForwardFlow": true}));
    assert_eq!(r.rule_type, RuleType::Snat);
    assert_eq!(r.condition.tp_dst, Some(Range { start: 80, end: 80 }));
    assert_eq!(r.condition.in_ports.len(), 1);
}

#[test]
fn rule_types_and_jump() {
    let r: Rule = round_trip(json!({"type": "jump", "jumpChainId": CHAIN, "jumpChainName": "other"}));
    assert_eq!(r.jump_chain_id.unwrap().to_string(), CHAIN);
    for t in [
        "accept",
        "drop",
        "reject",
        "return",
        "jump",
        "dnat",
        "snat",
        "rev_dnat",
        "rev_snat",
        "l2_transform",
        "trace",
        "continue",
        "redirect",
    ] {
        let r: Rule = serde_json::from_value(json!({ "type": t })).unwrap();
        assert_eq!(serde_json::to_value(r.rule_type).unwrap(), t);
    }
}

#[test]
fn host_and_interface_body() {
    let h: Host = round_trip(json!({"id": HOST, "name": "gw1", "alive": true, "addresses": ["192.0.2.10"],
        "hostInterfaces": [{"name": "dpdk0", "mac": "02:00:00:00:00:0a", "mtu": 1500, "addresses": ["192.0.2.10"],
        "type": "Physical", "status": 3}], "floodingProxyWeight": 1}));
    assert_eq!(h.host_interfaces[0].name, "dpdk0");
    let b: HostInterfacePort = round_trip(json!({"portId": PORT, "interfaceName": "dpdk0", "hostId": HOST}));
    assert_eq!(b.interface_name, "dpdk0");
}

#[test]
fn tunnel_zone_bodies() {
    let tz: TunnelZone = round_trip(json!({"name": "tz", "type": "vxlan"}));
    assert_eq!(tz.zone_type, TunnelZoneType::Vxlan);
    let tz: TunnelZone = serde_json::from_value(json!({"name": "tz"})).unwrap();
    assert_eq!(tz.zone_type, TunnelZoneType::Gre);
    let m: TunnelZoneHost = round_trip(json!({"hostId": HOST, "ipAddress": "192.0.2.10"}));
    assert_eq!(m.ip_address, "192.0.2.10");
}

#[test]
fn groups_tenant_state_link_bodies() {
    let pg: PortGroup = round_trip(json!({"name": "uplinks", "tenantId": "admin", "stateful": true}));
    assert!(pg.stateful);
    let _: PortGroupPort = round_trip(json!({"portId": PORT}));
    let g: IpAddrGroup = round_trip(json!({"name": "blocked"}));
    assert!(g.ip_addr_ports.is_empty());
    let a: IpAddrGroupAddr = round_trip(json!({"version": 4, "addr": "192.0.2.7"}));
    assert_eq!(a.addr, "192.0.2.7");
    let _: IpAddrGroupAddr = round_trip(json!({"version": "6", "addr": "2001:db8::7"}));
    let t: Tenant = round_trip(json!({"id": "admin", "name": "admin", "description": "d", "enabled": true}));
    assert_eq!(t.key(), "admin");
    let s: SystemState = round_trip(json!({"state": "ACTIVE", "availability": "READONLY"}));
    assert_eq!(s.availability, "READONLY");
    let l: PortLink = round_trip(json!({"peerId": PORT}));
    assert_eq!(l.peer_id.to_string(), PORT);
}

#[test]
fn bgp_bodies() {
    let p: BgpPeer = round_trip(json!({"asNumber": 65002, "address": "192.0.2.1", "keepAlive": 30, "holdTime": 90,
        "connectRetry": 120, "password": "secret"}));
    assert_eq!(p.as_number, Some(65002));
    let n: BgpNetwork = round_trip(json!({"subnetAddress": "203.0.113.0", "subnetLength": 24}));
    assert_eq!(n.subnet_length, Some(24));
}
