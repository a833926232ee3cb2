//! Validation rules, cascades and refusals, on the embedded store.

use std::collections::HashSet;

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::model::{NatTarget, TunnelZoneType};
use crate::store::{Action, EmbeddedStore};

struct T {
    topo: Topology<EmbeddedStore>,
    _dir: TempDir,
}

impl std::ops::Deref for T {
    type Target = Topology<EmbeddedStore>;
    fn deref(&self) -> &Self::Target {
        &self.topo
    }
}

fn topo() -> T {
    let dir = tempfile::tempdir().unwrap();
    let topo = Topology::new(EmbeddedStore::open(dir.path().join("db")).unwrap());
    T { topo, _dir: dir }
}

fn from<R: serde::de::DeserializeOwned>(v: serde_json::Value) -> R {
    serde_json::from_value(v).unwrap()
}

fn router(t: &T) -> Uuid {
    t.create_router(from(json!({"name": "r"}))).unwrap().id
}

fn rport(t: &T, router: Uuid, addr: &str, net: &str, len: u32) -> Port {
    let body = json!({"type": "Router", "portAddress": addr, "networkAddress": net, "networkLength": len});
    t.create_port(router, from(body)).unwrap()
}

fn bport(t: &T, bridge: Uuid) -> Port {
    t.create_port(bridge, from(json!({"type": "Bridge"}))).unwrap()
}

/// A host; an alive one reports itself (`alive` is never the API caller's to set).
fn host(t: &T, alive: bool) -> Uuid {
    let body = from(json!({"name": "gw", "alive": alive}));
    if alive { t.report_host(body) } else { t.create_host(body) }.unwrap().id
}

/// `f` fails with an error of status `status` and leaves the store exactly as it was.
#[track_caller]
fn refused<R: std::fmt::Debug>(t: &T, status: u16, f: impl FnOnce() -> Result<R>) -> TopologyError {
    let before = t.store().version().unwrap();
    let err = f().unwrap_err();
    assert_eq!(err.status(), status, "{err}");
    assert_eq!(t.store().version().unwrap(), before, "a refused operation wrote something");
    err
}

fn route_body(dst: &str, len: u32, port: Option<Uuid>) -> Route {
    from(json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": dst, "dstNetworkLength": len,
        "nextHopPort": port, "type": "Normal", "weight": 100}))
}

#[test]
fn server_chooses_v4_ids_and_keeps_client_ids() {
    let t = topo();
    let r = t.create_router(from(json!({"name": "edge"}))).unwrap();
    assert_eq!(r.id.get_version_num(), 4);
    let id = Uuid::new_v4();
    let r2 = t.create_router(from(json!({"id": id, "name": "x"}))).unwrap();
    assert_eq!(r2.id, id);
    assert!(matches!(refused(&t, 409, || t.create_router(from(json!({"id": id})))), TopologyError::IdInUse { .. }));
    assert_eq!(t.list::<Router>().unwrap().len(), 2);
}

#[test]
fn router_fields_are_checked() {
    let t = topo();
    let long = "x".repeat(256);
    assert!(matches!(
        refused(&t, 400, || t.create_router(from(json!({"name": long})))),
        TopologyError::NameTooLong(256)
    ));
    let missing = Uuid::new_v4();
    let e = refused(&t, 404, || t.create_router(from(json!({"inboundFilterId": missing}))));
    assert!(matches!(e, TopologyError::ReferenceNotFound { field: "inboundFilterId", .. }));
    let e = refused(&t, 404, || t.update_router(from(json!({"id": missing}))));
    assert!(matches!(e, TopologyError::NotFound { kind: Kind::Router, .. }));
}

#[test]
fn router_port_gets_mac_tunnel_key_and_routes_in_one_transaction() {
    let t = topo();
    let r = router(&t);
    let v = t.store().version().unwrap();
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    assert_eq!(t.store().version().unwrap(), v + 1, "port and routes are one commit");
    let feed = t.store().changes_since(v).unwrap();
    assert_eq!(feed[0].changes.len(), 3);
    assert!(feed[0].changes.iter().all(|c| c.action == Action::Created));

    assert_eq!(p.device_id, Some(r));
    assert!(p.port_mac.as_deref().unwrap().starts_with("02:"));
    assert_eq!(p.tunnel_key, Some(1));
    assert_eq!(p.port_subnet, Some(vec!["10.0.0.1/24".to_string()]));
    let mut routes = t.router_routes(r).unwrap();
    routes.sort_by_key(|r| r.dst_network_length);
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].dst_network_addr.as_deref(), Some("10.0.0.0"));
    assert_eq!(routes[0].dst_network_length, Some(24));
    assert_eq!(routes[0].route_type, RouteType::Normal);
    assert_eq!(routes[1].dst_network_addr.as_deref(), Some("10.0.0.1"));
    assert_eq!(routes[1].dst_network_length, Some(32));
    assert_eq!(routes[1].route_type, RouteType::Local);
    assert!(routes.iter().all(|x| x.next_hop_port == Some(p.id) && x.src_network_length == Some(0)));

    let p2 = rport(&t, r, "10.0.1.1", "10.0.1.0", 24);
    assert_eq!(p2.tunnel_key, Some(2));
    assert_ne!(p2.port_mac, p.port_mac);
}

#[test]
fn port_subnet_form_fills_legacy_fields() {
    let t = topo();
    let r = router(&t);
    let p =
        t.create_port(r, from(json!({"type": "Router", "portSubnet": ["2001:db8::1/64", "192.0.2.5/30"]}))).unwrap();
    assert_eq!(p.port_address.as_deref(), Some("192.0.2.5"));
    assert_eq!(p.network_address.as_deref(), Some("192.0.2.4"));
    assert_eq!(p.network_length, Some(30));
    assert_eq!(t.router_routes(r).unwrap().len(), 2, "routes for the IPv4 subnet");
}

#[test]
fn router_port_addresses_are_validated() {
    let t = topo();
    let r = router(&t);
    let create = |body| t.create_port(r, from(body));
    let e = refused(&t, 400, || create(json!({"type": "Router"})));
    assert!(matches!(e, TopologyError::MissingField("portAddress")));
    let e =
        refused(&t, 400, || create(json!({"type": "Router", "portAddress": "10.0.0.1", "networkAddress": "10.0.0.0"})));
    assert!(matches!(e, TopologyError::MissingField("networkLength")));
    let body =
        json!({"type": "Router", "portAddress": "10.0.0.300", "networkAddress": "10.0.0.0", "networkLength": 24});
    assert!(matches!(refused(&t, 400, || create(body)), TopologyError::InvalidAddress { field: "portAddress", .. }));
    let body = json!({"type": "Router", "portAddress": "10.0.0.1", "networkAddress": "10.0.0.0", "networkLength": 33});
    assert!(matches!(refused(&t, 400, || create(body)), TopologyError::InvalidPrefixLength { length: 33, .. }));
    let body = json!({"type": "Router", "portAddress": "10.9.0.1", "networkAddress": "10.0.0.0", "networkLength": 24});
    assert!(matches!(refused(&t, 400, || create(body)), TopologyError::AddressOutsideNetwork { .. }));
    let body = json!({"type": "Router", "portSubnet": ["10.0.0.1/40"]});
    assert!(matches!(refused(&t, 400, || create(body)), TopologyError::InvalidAddress { field: "portSubnet", .. }));
    let body = json!({"type": "Router", "portSubnet": ["10.0.0.1/24"], "portMac": "zz:00:00:00:00:00"});
    assert!(matches!(refused(&t, 400, || create(body)), TopologyError::InvalidMac { .. }));
}

#[test]
fn tunnel_keys_and_macs_are_unique() {
    let t = topo();
    let r = router(&t);
    let p = t
        .create_port(r, from(json!({"type": "Router", "portSubnet": ["10.0.0.1/24"], "tunnelKey": 77, "portMac": "02:AA:00:00:00:01"})))
        .unwrap();
    assert_eq!(p.port_mac.as_deref(), Some("02:aa:00:00:00:01"));
    let e = refused(&t, 409, || {
        t.create_port(r, from(json!({"type": "Router", "portSubnet": ["10.0.1.1/24"], "tunnelKey": 77})))
    });
    assert!(matches!(e, TopologyError::TunnelKeyInUse(77)));
    let body = json!({"type": "Router", "portSubnet": ["10.0.1.1/24"], "portMac": "02:aa:00:00:00:01"});
    assert!(matches!(refused(&t, 409, || t.create_port(r, from(body))), TopologyError::MacInUse(_)));
    let next = rport(&t, r, "10.0.2.1", "10.0.2.0", 24);
    assert_eq!(next.tunnel_key, Some(1), "server-chosen keys are the lowest free, never a client-chosen one");
}

#[test]
fn concurrent_port_creation_keeps_tunnel_keys_unique() {
    let t = topo();
    let b = t.create_bridge(from(json!({"name": "b"}))).unwrap().id;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    bport(&t, b);
                }
            });
        }
    });
    let keys: HashSet<_> = t.list::<Port>().unwrap().iter().map(|p| p.tunnel_key.unwrap()).collect();
    assert_eq!(keys.len(), 40);
}

#[test]
fn ports_need_a_device_of_the_right_kind() {
    let t = topo();
    let r = router(&t);
    let b = t.create_bridge(from(json!({}))).unwrap().id;
    assert!(matches!(
        refused(&t, 400, || t.create_port(r, from(json!({"type": "Bridge"})))),
        TopologyError::WrongPortType(_)
    ));
    let body = json!({"type": "Router", "portSubnet": ["10.0.0.1/24"]});
    assert!(matches!(refused(&t, 400, || t.create_port(b, from(body))), TopologyError::WrongPortType(_)));
    let e = refused(&t, 404, || t.create_port(Uuid::new_v4(), from(json!({"type": "Bridge"}))));
    assert!(matches!(e, TopologyError::NotFound { kind: Kind::Network, .. }));
    let p = t.create_port(b, from(json!({"type": "Bridge", "vlanId": 10, "portAddress": "10.0.0.1"}))).unwrap();
    assert_eq!(p.vlan_id, Some(10));
    assert_eq!(p.port_address, None, "router fields are dropped from bridge ports");
    assert_eq!(t.device_ports(b).unwrap().len(), 1);
}

#[test]
fn routes_are_validated() {
    let t = topo();
    let r = router(&t);
    let other = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let q = rport(&t, other, "10.0.0.1", "10.0.0.0", 24);
    let route = t.create_route(r, route_body("0.0.0.0", 0, Some(p.id))).unwrap();
    assert_eq!(route.router_id, Some(r));
    assert_eq!(route.id.get_version_num(), 4);
    let e = refused(&t, 400, || t.create_route(r, route_body("0.0.0.0", 0, Some(q.id))));
    assert!(matches!(e, TopologyError::PortNotOnRouter { .. }));
    let e = refused(&t, 404, || t.create_route(r, route_body("0.0.0.0", 0, Some(Uuid::new_v4()))));
    assert!(matches!(e, TopologyError::ReferenceNotFound { field: "nextHopPort", .. }));
    assert!(matches!(
        refused(&t, 400, || t.create_route(r, route_body("0.0.0.0", 0, None))),
        TopologyError::NextHopPortRequired
    ));
    assert!(matches!(
        refused(&t, 400, || t.create_route(r, route_body("1.2.3", 8, Some(p.id)))),
        TopologyError::InvalidAddress { .. }
    ));
    assert!(matches!(
        refused(&t, 400, || t.create_route(r, route_body("1.0.0.0", 40, Some(p.id)))),
        TopologyError::InvalidPrefixLength { .. }
    ));
    let e = refused(&t, 400, || t.create_route(r, from(json!({"dstNetworkAddr": "1.0.0.0", "dstNetworkLength": 8}))));
    assert!(matches!(e, TopologyError::MissingField("srcNetworkAddr")));
    let e = refused(&t, 404, || t.create_route(Uuid::new_v4(), route_body("0.0.0.0", 0, None)));
    assert!(matches!(e, TopologyError::NotFound { kind: Kind::Router, .. }));
    let mut blackhole = route_body("192.0.2.0", 24, None);
    blackhole.route_type = RouteType::BlackHole;
    t.create_route(r, blackhole).unwrap();
    t.delete_route(route.id).unwrap();
    assert!(matches!(refused(&t, 404, || t.delete_route(route.id)), TopologyError::NotFound { .. }));
}

#[test]
fn links_are_validated() {
    let t = topo();
    let (r1, r2) = (router(&t), router(&t));
    let a = rport(&t, r1, "10.0.0.1", "10.0.0.0", 30);
    let b = rport(&t, r2, "10.0.0.2", "10.0.0.0", 30);
    let c = rport(&t, r2, "10.0.1.2", "10.0.1.0", 30);
    let a2 = rport(&t, r1, "10.0.2.1", "10.0.2.0", 30);
    assert!(matches!(refused(&t, 400, || t.link_ports(a.id, a.id)), TopologyError::LinkToSelf(_)));
    assert!(matches!(refused(&t, 400, || t.link_ports(a.id, a2.id)), TopologyError::LinkSameDevice));
    assert!(matches!(refused(&t, 404, || t.link_ports(a.id, Uuid::new_v4())), TopologyError::ReferenceNotFound { .. }));
    t.link_ports(a.id, b.id).unwrap();
    assert_eq!(t.get::<Port>(&a.key()).unwrap().peer_id, Some(b.id));
    assert_eq!(t.get::<Port>(&b.key()).unwrap().peer_id, Some(a.id));
    assert!(matches!(refused(&t, 409, || t.link_ports(c.id, a.id)), TopologyError::PortAlreadyLinked(_)));
    let br1 = t.create_bridge(from(json!({}))).unwrap().id;
    let br2 = t.create_bridge(from(json!({}))).unwrap().id;
    let (x, y) = (bport(&t, br1), bport(&t, br2));
    assert!(matches!(refused(&t, 400, || t.link_ports(x.id, y.id)), TopologyError::BridgeToBridgeLink));
    let h = host(&t, false);
    t.bind_port(h, c.id, "dpdk0").unwrap();
    assert!(matches!(refused(&t, 409, || t.link_ports(x.id, c.id)), TopologyError::PortBound(_)));
    assert!(matches!(refused(&t, 409, || t.bind_port(h, a.id, "dpdk1")), TopologyError::PortLinked(_)));
    t.unlink_port(b.id).unwrap();
    assert_eq!(t.get::<Port>(&a.key()).unwrap().peer_id, None);
    assert_eq!(t.get::<Port>(&b.key()).unwrap().peer_id, None);
    t.unlink_port(b.id).unwrap();
    // A peer given at creation links in the same transaction.
    let z = t.create_port(br1, from(json!({"type": "Bridge", "peerId": a.id}))).unwrap();
    assert_eq!(z.peer_id, Some(a.id));
    assert_eq!(t.get::<Port>(&a.key()).unwrap().peer_id, Some(z.id));
}

#[test]
fn bindings() {
    let t = topo();
    let r = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let q = rport(&t, r, "10.0.1.1", "10.0.1.0", 24);
    let h = host(&t, true);
    assert!(matches!(refused(&t, 404, || t.bind_port(Uuid::new_v4(), p.id, "dpdk0")), TopologyError::NotFound { .. }));
    assert!(matches!(refused(&t, 400, || t.bind_port(h, p.id, "")), TopologyError::MissingField(_)));
    t.bind_port(h, p.id, "dpdk0").unwrap();
    assert!(matches!(refused(&t, 409, || t.bind_port(h, q.id, "dpdk0")), TopologyError::InterfaceInUse { .. }));
    let got = t.get::<Port>(&p.key()).unwrap();
    assert_eq!((got.host_id, got.interface_name.as_deref()), (Some(h), Some("dpdk0")));
    assert!(matches!(refused(&t, 404, || t.unbind_port(h, q.id)), TopologyError::NotBound { .. }));
    t.unbind_port(h, p.id).unwrap();
    // Binding through a port update (PUT with hostId + interfaceName).
    let mut upd = t.get::<Port>(&q.key()).unwrap();
    upd.host_id = Some(h);
    upd.interface_name = Some("dpdk1".into());
    let got = t.update_port(upd).unwrap();
    assert_eq!(got.interface_name.as_deref(), Some("dpdk1"));
    // Bound on one host: binding on another is refused until it is unbound; rebinding to another
    // interface of the same host is allowed.
    let h2 = host(&t, false);
    let refusal = refused(&t, 409, || t.bind_port(h2, q.id, "eth0"));
    assert!(matches!(refusal, TopologyError::BoundElsewhere { host, .. } if host == h), "{refusal:?}");
    assert_eq!(t.get::<Port>(&q.key()).unwrap().host_id, Some(h));
    t.bind_port(h, q.id, "dpdk2").unwrap();
    t.unbind_port(h, q.id).unwrap();
    t.bind_port(h2, q.id, "eth0").unwrap();
    assert_eq!(t.get::<Port>(&q.key()).unwrap().host_id, Some(h2));
}

#[test]
fn host_update_changes_only_what_the_api_may() {
    let t = topo();
    let id = t
        .report_host(from(json!({"name": "gw", "alive": true, "addresses": ["192.0.2.1"],
            "hostInterfaces": [{"name": "dpdk0"}]})))
        .unwrap()
        .id;
    let body: Host = from(json!({"id": id, "name": "other", "alive": false, "floodingProxyWeight": 3,
        "containerLimit": 2, "enforceContainerLimit": true}));
    let got = t.update_host(body).unwrap();
    assert_eq!(got, t.get::<Host>(&id.to_string()).unwrap());
    assert_eq!(
        (got.name.as_deref(), got.alive, got.addresses.len(), got.host_interfaces.len()),
        (Some("gw"), true, 1, 1)
    );
    assert_eq!(
        (got.flooding_proxy_weight, got.container_limit, got.enforce_container_limit),
        (Some(3), Some(2), Some(true))
    );
    let missing: Host = from(json!({"id": Uuid::new_v4()}));
    assert!(matches!(refused(&t, 404, || t.update_host(missing)), TopologyError::NotFound { .. }));
}

#[test]
fn port_update_keeps_immutable_fields() {
    let t = topo();
    let r = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let mut u = p.clone();
    u.tunnel_key = Some(999);
    assert!(matches!(refused(&t, 400, || t.update_port(u)), TopologyError::ImmutableField("tunnelKey")));
    let mut u = p.clone();
    u.port_address = Some("10.0.0.2".into());
    assert!(matches!(refused(&t, 400, || t.update_port(u)), TopologyError::ImmutableField("portAddress")));
    // A PUT with only the mutable fields keeps the rest.
    let u: Port = from(json!({"id": p.id, "type": "Router", "adminStateUp": false}));
    let got = t.update_port(u).unwrap();
    assert!(!got.admin_state_up);
    assert_eq!(got.tunnel_key, p.tunnel_key);
    assert_eq!(got.port_mac, p.port_mac);
    assert_eq!(got.port_address, p.port_address);
    assert_eq!(got.device_id, Some(r));
}

#[test]
fn deleting_a_router_cascades() {
    let t = topo();
    let (r1, r2) = (router(&t), router(&t));
    let a = rport(&t, r1, "10.0.0.1", "10.0.0.0", 30);
    let b = rport(&t, r2, "10.0.0.2", "10.0.0.0", 30);
    t.link_ports(a.id, b.id).unwrap();
    t.create_route(r1, route_body("0.0.0.0", 0, Some(a.id))).unwrap();
    let mut blackhole = route_body("192.0.2.0", 24, None);
    blackhole.route_type = RouteType::BlackHole;
    t.create_route(r1, blackhole).unwrap();
    let v = t.store().version().unwrap();
    t.delete_router(r1).unwrap();
    assert_eq!(t.store().version().unwrap(), v + 1, "one transaction");
    assert!(t.get::<Router>(&r1.to_string()).is_err());
    assert!(t.get::<Port>(&a.key()).is_err());
    assert_eq!(t.get::<Port>(&b.key()).unwrap().peer_id, None, "the peer is unlinked");
    let routes = t.list::<Route>().unwrap();
    assert!(routes.iter().all(|r| r.router_id == Some(r2)), "every route of r1 is gone");
    assert_eq!(routes.len(), 2, "r2 keeps its port routes");
    assert!(matches!(refused(&t, 404, || t.delete_router(r1)), TopologyError::NotFound { .. }));
}

#[test]
fn deleting_a_port_deletes_its_routes_and_memberships() {
    let t = topo();
    let r = router(&t);
    let a = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let keep = rport(&t, r, "10.0.1.1", "10.0.1.0", 24);
    t.create_route(r, route_body("0.0.0.0", 0, Some(a.id))).unwrap();
    let pg = t.create_port_group(from(json!({"name": "g"}))).unwrap();
    t.add_port_group_port(pg.id, a.id).unwrap();
    t.add_port_group_port(pg.id, keep.id).unwrap();
    let h = host(&t, true);
    t.bind_port(h, a.id, "dpdk0").unwrap();
    t.delete_port(a.id).unwrap();
    let routes = t.router_routes(r).unwrap();
    assert_eq!(routes.len(), 2);
    assert!(routes.iter().all(|x| x.next_hop_port == Some(keep.id)));
    assert_eq!(t.get::<PortGroup>(&pg.key()).unwrap().port_ids, vec![keep.id]);
}

#[test]
fn bridge_delete_cascades_to_ports() {
    let t = topo();
    let b = t.create_bridge(from(json!({"name": "b"}))).unwrap().id;
    let r = router(&t);
    let rp = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let bp = t.create_port(b, from(json!({"type": "Bridge", "peerId": rp.id}))).unwrap();
    t.delete_bridge(b).unwrap();
    assert!(t.get::<Port>(&bp.key()).is_err());
    assert_eq!(t.get::<Port>(&rp.key()).unwrap().peer_id, None);
}

#[test]
fn rules_insert_at_position() {
    let t = topo();
    let c = t.create_chain(from(json!({"name": "c"}))).unwrap().id;
    let accept = |pos: Option<u32>| t.create_rule(c, from(json!({"type": "accept", "position": pos})));
    let r1 = accept(None).unwrap();
    let r2 = accept(Some(2)).unwrap();
    let r0 = accept(Some(1)).unwrap();
    let e = refused(&t, 400, || accept(Some(5)));
    assert!(matches!(e, TopologyError::InvalidPosition { position: 5, max: 4 }));
    assert!(matches!(refused(&t, 400, || accept(Some(0))), TopologyError::InvalidPosition { .. }));
    let ids: Vec<_> = t.chain_rules(c).unwrap().iter().map(|r| (r.id, r.position.unwrap())).collect();
    assert_eq!(ids, vec![(r0.id, 1), (r1.id, 2), (r2.id, 3)]);
    assert_eq!(t.get_rule(r2.id).unwrap().position, Some(3));
    t.delete_rule(r1.id).unwrap();
    assert_eq!(t.get_rule(r2.id).unwrap().position, Some(2));
    assert!(matches!(
        refused(&t, 404, || t.create_rule(Uuid::new_v4(), from(json!({"type": "drop"})))),
        TopologyError::NotFound { .. }
    ));
}

#[test]
fn rules_are_validated() {
    let t = topo();
    let c = t.create_chain(from(json!({"name": "c"}))).unwrap().id;
    let target = t.create_chain(from(json!({"name": "target"}))).unwrap().id;
    let rule = |body| t.create_rule(c, from(body));
    let j = rule(json!({"type": "jump", "jumpChainId": target})).unwrap();
    assert_eq!(j.jump_chain_name.as_deref(), Some("target"));
    assert!(matches!(refused(&t, 400, || rule(json!({"type": "jump"}))), TopologyError::MissingField("jumpChainId")));
    assert!(matches!(refused(&t, 400, || rule(json!({"type": "jump", "jumpChainId": c}))), TopologyError::SelfJump(_)));
    let e = refused(&t, 404, || rule(json!({"type": "jump", "jumpChainId": Uuid::new_v4()})));
    assert!(matches!(e, TopologyError::ReferenceNotFound { field: "jumpChainId", .. }));
    let e = refused(&t, 400, || rule(json!({"type": "snat", "flowAction": "accept"})));
    assert!(matches!(e, TopologyError::MissingField("natTargets")));
    let targets = vec![NatTarget {
        address_from: "192.0.2.1".into(),
        address_to: "192.0.2.1".into(),
        port_from: 1,
        port_to: 65535,
    }];
    assert!(matches!(
        refused(&t, 400, || rule(json!({"type": "snat", "natTargets": targets}))),
        TopologyError::MissingField("flowAction")
    ));
    rule(json!({"type": "snat", "flowAction": "accept", "natTargets": targets})).unwrap();
    let bad =
        vec![NatTarget { address_from: "192.0.2.9".into(), address_to: "192.0.2.1".into(), port_from: 1, port_to: 2 }];
    let e = refused(&t, 400, || rule(json!({"type": "dnat", "flowAction": "accept", "natTargets": bad})));
    assert!(matches!(e, TopologyError::InvalidRange { .. }));
    let e = refused(&t, 400, || rule(json!({"type": "drop", "nwSrcAddress": "10.0.0.0", "nwSrcLength": 33})));
    assert!(matches!(e, TopologyError::InvalidPrefixLength { field: "nwSrcLength", .. }));
    let e = refused(&t, 400, || rule(json!({"type": "drop", "nwDstAddress": "nope"})));
    assert!(matches!(e, TopologyError::InvalidAddress { field: "nwDstAddress", .. }));
    let e = refused(&t, 400, || rule(json!({"type": "drop", "tpDst": {"start": 90, "end": 80}})));
    assert!(matches!(e, TopologyError::InvalidRange { field: "tpDst", .. }));
    let e = refused(&t, 400, || rule(json!({"type": "drop", "dlSrc": "02:00"})));
    assert!(matches!(e, TopologyError::InvalidMac { field: "dlSrc", .. }));
    let e = refused(&t, 404, || rule(json!({"type": "drop", "inPorts": [Uuid::new_v4()]})));
    assert!(matches!(e, TopologyError::ReferenceNotFound { .. }));
    let e = refused(&t, 404, || rule(json!({"type": "drop", "ipAddrGroupSrc": Uuid::new_v4()})));
    assert!(matches!(e, TopologyError::ReferenceNotFound { field: "ipAddrGroupSrc", .. }));
    rule(json!({"type": "drop", "nwSrcAddress": "2001:db8::", "nwSrcLength": 32})).unwrap();
}

#[test]
fn deleting_a_chain_clears_references_and_jumps() {
    let t = topo();
    let c = t.create_chain(from(json!({"name": "c"}))).unwrap().id;
    let caller = t.create_chain(from(json!({"name": "caller"}))).unwrap().id;
    let own = t.create_rule(c, from(json!({"type": "drop"}))).unwrap();
    let first = t.create_rule(caller, from(json!({"type": "accept"}))).unwrap();
    let jump = t.create_rule(caller, from(json!({"type": "jump", "jumpChainId": c, "position": 2}))).unwrap();
    let r = t.create_router(from(json!({"inboundFilterId": c, "outboundFilterId": caller}))).unwrap();
    let b = t.create_bridge(from(json!({"outboundFilterId": c}))).unwrap();
    let p = t.create_port(b.id, from(json!({"type": "Bridge", "inboundFilterId": c}))).unwrap();
    let g = t.create_ip_addr_group(from(json!({"name": "g", "inboundChainId": c}))).unwrap();
    t.delete_chain(c).unwrap();
    let r = t.get::<Router>(&r.key()).unwrap();
    assert_eq!((r.inbound_filter_id, r.outbound_filter_id), (None, Some(caller)));
    assert_eq!(t.get::<Bridge>(&b.key()).unwrap().outbound_filter_id, None);
    assert_eq!(t.get::<Port>(&p.key()).unwrap().inbound_filter_id, None);
    assert_eq!(t.get::<IpAddrGroup>(&g.key()).unwrap().inbound_chain_id, None);
    assert!(t.get::<Rule>(&own.key()).is_err());
    assert!(t.get::<Rule>(&jump.key()).is_err());
    assert_eq!(t.get::<Chain>(&caller.to_string()).unwrap().rule_ids, vec![first.id]);
}

#[test]
fn host_deletion_refusals_and_cascades() {
    let t = topo();
    let alive = host(&t, true);
    assert!(matches!(refused(&t, 409, || t.delete_host(alive)), TopologyError::HostAlive(_)));
    let h = host(&t, false);
    let r = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    t.bind_port(h, p.id, "dpdk0").unwrap();
    assert!(matches!(refused(&t, 409, || t.delete_host(h)), TopologyError::HostHasBindings(_)));
    let tz = t.create_tunnel_zone(from(json!({"name": "tz", "type": "vxlan"}))).unwrap();
    assert_eq!(tz.zone_type, TunnelZoneType::Vxlan);
    t.add_tunnel_zone_host(tz.id, from(json!({"hostId": h, "ipAddress": "192.0.2.10"}))).unwrap();
    t.unbind_port(h, p.id).unwrap();
    t.delete_host(h).unwrap();
    assert!(t.get::<TunnelZone>(&tz.key()).unwrap().members.is_empty(), "the host left its tunnel zones");
}

#[test]
fn tunnel_zone_membership() {
    let t = topo();
    assert!(matches!(refused(&t, 400, || t.create_tunnel_zone(from(json!({})))), TopologyError::MissingField("name")));
    let tz = t.create_tunnel_zone(from(json!({"name": "tz"}))).unwrap();
    let h = host(&t, true);
    let add = |ip: &str| t.add_tunnel_zone_host(tz.id, from(json!({"hostId": h, "ipAddress": ip})));
    assert!(matches!(refused(&t, 400, || add("not-an-ip")), TopologyError::InvalidAddress { .. }));
    let m = add("192.0.2.10").unwrap();
    assert_eq!(m.tunnel_zone_id, Some(tz.id));
    assert!(matches!(refused(&t, 409, || add("192.0.2.11")), TopologyError::AlreadyMember { .. }));
    let e = refused(&t, 404, || {
        t.add_tunnel_zone_host(tz.id, from(json!({"hostId": Uuid::new_v4(), "ipAddress": "192.0.2.1"})))
    });
    assert!(matches!(e, TopologyError::ReferenceNotFound { field: "hostId", .. }));
    let renamed = t.update_tunnel_zone(from(json!({"id": tz.id, "name": "tz2", "type": "gre"}))).unwrap();
    assert_eq!(renamed.members.len(), 1, "an update keeps the members");
    t.remove_tunnel_zone_host(tz.id, h).unwrap();
    assert!(matches!(refused(&t, 404, || t.remove_tunnel_zone_host(tz.id, h)), TopologyError::NotMember { .. }));
    t.add_tunnel_zone_host(tz.id, from(json!({"hostId": h, "ipAddress": "192.0.2.10"}))).unwrap();
    t.delete_tunnel_zone(tz.id).unwrap();
    assert!(t.list::<TunnelZone>().unwrap().is_empty());
}

#[test]
fn port_groups_and_ip_addr_groups() {
    let t = topo();
    let b = t.create_bridge(from(json!({}))).unwrap().id;
    let p = bport(&t, b);
    let pg = t.create_port_group(from(json!({"name": "g", "stateful": true, "portIds": [Uuid::new_v4()]}))).unwrap();
    assert!(pg.port_ids.is_empty(), "hidden back-references are not client-settable");
    t.add_port_group_port(pg.id, p.id).unwrap();
    assert!(matches!(refused(&t, 409, || t.add_port_group_port(pg.id, p.id)), TopologyError::AlreadyMember { .. }));
    assert!(matches!(
        refused(&t, 404, || t.add_port_group_port(pg.id, Uuid::new_v4())),
        TopologyError::ReferenceNotFound { .. }
    ));
    let c = t.create_chain(from(json!({}))).unwrap().id;
    let rule = t.create_rule(c, from(json!({"type": "drop", "portGroup": pg.id}))).unwrap();
    t.delete_port_group(pg.id).unwrap();
    assert_eq!(t.get::<Rule>(&rule.key()).unwrap().condition.port_group, None);

    let g = t.create_ip_addr_group(from(json!({"name": "blocked"}))).unwrap();
    t.add_ip_addr(g.id, "192.0.2.7", Some(4)).unwrap();
    t.add_ip_addr(g.id, "2001:db8::7", None).unwrap();
    assert!(matches!(
        refused(&t, 400, || t.add_ip_addr(g.id, "192.0.2.8", Some(6))),
        TopologyError::InvalidValue { .. }
    ));
    assert!(matches!(
        refused(&t, 409, || t.add_ip_addr(g.id, "192.0.2.7", None)),
        TopologyError::AddressInGroup { .. }
    ));
    t.remove_ip_addr(g.id, "192.0.2.7".parse().unwrap()).unwrap();
    let e = refused(&t, 404, || t.remove_ip_addr(g.id, "192.0.2.7".parse().unwrap()));
    assert!(matches!(e, TopologyError::AddressNotInGroup { .. }));
    assert_eq!(t.get::<IpAddrGroup>(&g.key()).unwrap().ip_addr_ports.len(), 1);
}

#[test]
fn tenants() {
    let t = topo();
    t.create_tenant(from(json!({"id": "acme", "name": "Acme"}))).unwrap();
    assert!(matches!(refused(&t, 409, || t.create_tenant(from(json!({"id": "acme"})))), TopologyError::IdInUse { .. }));
    assert!(matches!(
        refused(&t, 400, || t.create_tenant(from(json!({"id": "a/b"})))),
        TopologyError::MissingField("id")
    ));
    assert_eq!(t.get::<Tenant>("acme").unwrap().name.as_deref(), Some("Acme"));
    t.delete_tenant("acme").unwrap();
    assert!(t.list::<Tenant>().unwrap().is_empty());
}

#[test]
fn read_only_system_state_refuses_writes() {
    let t = topo();
    assert_eq!(t.system_state().unwrap().availability, "READWRITE");
    let e = refused(&t, 400, || t.set_system_state(from(json!({"availability": "MAYBE"}))));
    assert!(matches!(e, TopologyError::InvalidValue { field: "availability", .. }));
    t.set_system_state(from(json!({"state": "ACTIVE", "availability": "READONLY"}))).unwrap();
    assert!(matches!(refused(&t, 503, || t.create_router(from(json!({})))), TopologyError::ReadOnly));
    t.set_system_state(from(json!({"availability": "READWRITE"}))).unwrap();
    router(&t);
}

#[test]
fn topology_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (r, p) = {
        let t = Topology::new(EmbeddedStore::open(&path).unwrap());
        let r = t.create_router(from(json!({"name": "edge"}))).unwrap().id;
        let p = t.create_port(r, from(json!({"type": "Router", "portSubnet": ["10.0.0.1/24"]}))).unwrap();
        (r, p)
    };
    let t = Topology::new(EmbeddedStore::open(&path).unwrap());
    assert_eq!(t.get::<Port>(&p.key()).unwrap(), p);
    assert_eq!(t.router_routes(r).unwrap().len(), 2);
}

/// A store where another writer (another gateway on the same ZooKeeper) commits a port with tunnel
/// key 1 just before our first commit.
struct Racy {
    inner: EmbeddedStore,
    raced: std::sync::atomic::AtomicBool,
    foreign: Vec<u8>,
}

impl Store for Racy {
    fn get(&self, kind: Kind, id: &str) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(kind, id)
    }
    fn list(&self, kind: Kind) -> std::result::Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.list(kind)
    }
    fn commit(&self, expected: Option<u64>, ops: &[crate::store::Op]) -> std::result::Result<u64, StoreError> {
        if ops.iter().any(|op| op.target().0 == Kind::Port)
            && !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let id = Uuid::new_v4().to_string();
            self.inner
                .commit(None, &[crate::store::Op::Create { kind: Kind::Port, id, data: self.foreign.clone() }])?;
        }
        self.inner.commit(expected, ops)
    }
    fn version(&self) -> std::result::Result<u64, StoreError> {
        self.inner.version()
    }
    fn changes_since(&self, version: u64) -> std::result::Result<Vec<crate::store::ChangeSet>, StoreError> {
        self.inner.changes_since(version)
    }
}

#[test]
fn a_lost_race_is_retried_on_fresh_data() {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(dir.path().join("db")).unwrap();
    let bridge = Uuid::new_v4();
    let foreign =
        serde_json::to_vec(&json!({"id": Uuid::new_v4(), "type": "Bridge", "deviceId": bridge, "tunnelKey": 1}));
    let t = Topology::new(Racy { inner, raced: false.into(), foreign: foreign.unwrap() });
    t.create_bridge(from(json!({"id": bridge}))).unwrap();
    let p = t.create_port(bridge, from(json!({"type": "Bridge"}))).unwrap();
    assert_eq!(p.tunnel_key, Some(2), "the retry saw the other writer's key 1");
    assert_eq!(t.list::<Port>().unwrap().len(), 2);
}

#[test]
fn bgp_peers_and_networks() {
    let t = topo();
    let r = router(&t);
    let peer = |body| t.create_bgp_peer(r, from(body));
    let p = peer(json!({"asNumber": 65002, "address": "192.0.2.1", "keepAlive": 30, "holdTime": 90})).unwrap();
    assert_eq!(p.router_id, Some(r));
    assert!(matches!(
        refused(&t, 409, || peer(json!({"asNumber": 65003, "address": "192.0.2.1"}))),
        TopologyError::BgpPeerExists(_)
    ));
    assert!(matches!(
        refused(&t, 400, || peer(json!({"address": "192.0.2.2"}))),
        TopologyError::MissingField("asNumber")
    ));
    assert!(matches!(
        refused(&t, 400, || peer(json!({"asNumber": 1, "address": "x"}))),
        TopologyError::InvalidAddress { .. }
    ));
    let e = refused(&t, 400, || peer(json!({"asNumber": 1, "address": "192.0.2.3", "keepAlive": 90, "holdTime": 30})));
    assert!(matches!(e, TopologyError::InvalidValue { field: "holdTime", .. }));
    let e =
        refused(&t, 404, || t.create_bgp_peer(Uuid::new_v4(), from(json!({"asNumber": 1, "address": "192.0.2.3"}))));
    assert!(matches!(e, TopologyError::NotFound { kind: Kind::Router, .. }));
    let u = t.update_bgp_peer(from(json!({"id": p.id, "asNumber": 65009, "holdTime": 180}))).unwrap();
    assert_eq!((u.as_number, u.hold_time, u.address.as_deref()), (Some(65009), Some(180), Some("192.0.2.1")));
    let e = refused(&t, 400, || t.update_bgp_peer(from(json!({"id": p.id, "address": "192.0.2.9"}))));
    assert!(matches!(e, TopologyError::ImmutableField("address")));

    let n = t.create_bgp_network(r, from(json!({"subnetAddress": "203.0.113.7", "subnetLength": 24}))).unwrap();
    assert_eq!(n.subnet_address.as_deref(), Some("203.0.113.0"));
    let e =
        refused(&t, 409, || t.create_bgp_network(r, from(json!({"subnetAddress": "203.0.113.0", "subnetLength": 24}))));
    assert!(matches!(e, TopologyError::BgpNetworkExists(_)));
    t.create_bgp_network(r, from(json!({"subnetAddress": "198.51.100.0", "subnetLength": 24}))).unwrap();
    t.delete_bgp_network(n.id).unwrap();
    t.delete_router(r).unwrap();
    assert!(t.list::<BgpPeer>().unwrap().is_empty(), "a router takes its BGP peers");
    assert!(t.list::<BgpNetwork>().unwrap().is_empty(), "and its BGP networks");
}

#[test]
fn a_host_reports_its_own_state_and_keeps_what_operators_set() {
    let t = topo();
    let id = t.report_host(from(json!({"name": "gw", "alive": true, "hostInterfaces": [{"name": "up0"}]}))).unwrap().id;
    let mut h: Host = t.get(&id.to_string()).unwrap();
    assert!(h.alive);
    // An operator sets the flooding proxy weight over REST; a PUT cannot change `alive`.
    h.flooding_proxy_weight = Some(7);
    h.alive = false;
    t.update_host(h).unwrap();
    let h: Host = t.get(&id.to_string()).unwrap();
    assert!(h.alive, "alive is the host's own");
    // The host reports again (a stop): alive and interfaces change, the weight stays.
    let reported = Host { alive: false, host_interfaces: Vec::new(), ..h };
    t.report_host(reported).unwrap();
    let h: Host = t.get(&id.to_string()).unwrap();
    assert_eq!((h.alive, h.host_interfaces.len(), h.flooding_proxy_weight), (false, 0, Some(7)));
}

#[test]
fn writes_must_compile_for_the_gateway_the_feed_compiles_for() {
    let t = topo();
    let gw = host(&t, true);
    let underlay = flowtable::topology::Underlay::new(4, "192.0.2.1".parse().unwrap(), 24);
    t.set_compile_context(CompileContext {
        generation: 1,
        local_host: Some(gw),
        interfaces: vec![("up0".into(), 3), ("tun0".into(), 4)],
        underlay: Some(underlay),
    });
    let r = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    t.bind_port(gw, p.id, "up0").unwrap();
    // The underlay's DPDK port cannot carry a virtual port: the feed would refuse the snapshot.
    let q = rport(&t, r, "10.0.1.1", "10.0.1.0", 24);
    let e = refused(&t, 409, || t.bind_port(gw, q.id, "tun0"));
    assert!(matches!(e, TopologyError::NotCompilable { conflict: true, .. }), "{e}");
    assert!(e.to_string().contains("underlay"), "{e}");
    assert_eq!(t.get::<Port>(&q.key()).unwrap().host_id, None);
}

#[test]
fn a_store_that_does_not_compile_already_takes_the_writes_that_repair_it() {
    let t = topo();
    let chain = t.create_chain(from(json!({"name": "c"}))).unwrap().id;
    // A rule the compiler refuses, written behind the service's back (an older version, by hand).
    let mut bad: Rule = t.create_rule(chain, from(json!({"type": "accept"}))).unwrap();
    bad.condition.cond_invert = true;
    let data = serde_json::to_vec(&bad).unwrap();
    t.store().commit(None, &[Op::Update { kind: Kind::Rule, id: bad.id.to_string(), data }]).unwrap();
    // The operator can still work and repair it ...
    router(&t);
    t.delete_rule(bad.id).unwrap();
    // ... and once it compiles, the check guards it again.
    let e = refused(&t, 400, || t.create_rule(chain, from(json!({"type": "accept", "condInvert": true}))));
    assert!(matches!(e, TopologyError::NotCompilable { conflict: false, .. }), "{e}");
}

#[test]
fn jump_loops_and_over_deep_jump_paths_are_refused() {
    let t = topo();
    let chains: Vec<Uuid> =
        (0..=MAX_JUMP_DEPTH).map(|i| t.create_chain(from(json!({"name": format!("c{i}")}))).unwrap().id).collect();
    let jump = |a: Uuid, b: Uuid| t.create_rule(a, from(json!({"type": "jump", "jumpChainId": b})));
    jump(chains[0], chains[1]).unwrap();
    let e = refused(&t, 400, || jump(chains[1], chains[0]));
    assert!(matches!(e, TopologyError::JumpLoop { .. }), "{e}");
    for w in chains[1..MAX_JUMP_DEPTH].windows(2) {
        jump(w[0], w[1]).unwrap();
    }
    // Joining a second path at its end: MAX_JUMP_DEPTH + 1 chains through the new jump.
    let e = refused(&t, 400, || jump(chains[MAX_JUMP_DEPTH - 1], chains[MAX_JUMP_DEPTH]));
    assert!(matches!(e, TopologyError::JumpTooDeep { depth, .. } if depth as usize == MAX_JUMP_DEPTH + 1), "{e}");
}

#[test]
fn automatic_tunnel_keys_are_the_lowest_free_and_never_exceed_24_bits() {
    let t = topo();
    let b = t.create_bridge(from(json!({"name": "b"}))).unwrap().id;
    let big = u64::from(MAX_TUNNEL_KEY) + 1;
    let e = refused(&t, 400, || t.create_port(b, from(json!({"type": "Bridge", "tunnelKey": big}))));
    assert!(matches!(e, TopologyError::InvalidValue { field: "tunnelKey", .. }), "{e}");
    t.create_port(b, from(json!({"type": "Bridge", "tunnelKey": MAX_TUNNEL_KEY}))).unwrap();
    t.create_port(b, from(json!({"type": "Bridge", "tunnelKey": 2}))).unwrap();
    assert_eq!(bport(&t, b).tunnel_key, Some(1));
    assert_eq!(bport(&t, b).tunnel_key, Some(3));
    // Every key taken: a clear refusal, never a wrapped or oversized key.
    let full: Vec<Port> = t.list().unwrap();
    assert!(matches!(lowest_free_key(&full, 3), Err(TopologyError::NoFreeTunnelKey)));
    assert_eq!(lowest_free_key(&full, 4).unwrap(), 4);
}

/// What each write costs in whole-topology compiles before it commits: none for routes (the
/// commonest write, judged alone) or for what the compiler does not read, one for any other
/// topology write, two for a refused one.
#[test]
fn route_writes_run_no_whole_topology_compile_other_topology_writes_one() {
    let t = topo();
    let r = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let before = t.write_check_compiles();
    assert!(before > 0, "the router and its port were each compiled before they were stored");
    for i in 0..5 {
        let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": format!("192.0.{i}.0"),
            "dstNetworkLength": 24, "nextHopPort": p.id, "nextHopGateway": "10.0.0.254", "type": "Normal", "weight": 100});
        let route = t.create_route(r, from(body)).unwrap();
        if i == 4 {
            t.delete_route(route.id).unwrap();
        }
    }
    assert_eq!(t.write_check_compiles(), before, "route writes are judged alone");
    t.create_tenant(from(json!({"id": "acme", "name": "acme"}))).unwrap();
    assert_eq!(t.write_check_compiles(), before, "the compiler reads no tenants");
    let chain = t.create_chain(from(json!({"name": "in"}))).unwrap().id;
    assert_eq!(t.write_check_compiles(), before + 1);
    t.create_rule(chain, from(json!({"type": "accept", "nwProto": 6}))).unwrap();
    assert_eq!(t.write_check_compiles(), before + 2);
    // A route the compiler refuses is judged as a whole, then the stored topology is.
    let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "192.0.9.0",
        "dstNetworkLength": 24, "type": "Fip64"});
    assert!(t.create_route(r, from(body)).is_err());
    assert_eq!(t.write_check_compiles(), before + 4);
}

/// A route write is judged by itself (no whole-topology build), with the compiler's own route
/// checks: what it takes, the full compile takes too, and what the compiler refuses it refuses.
#[test]
fn route_writes_are_judged_alone_as_the_compiler_would() {
    let t = topo();
    let r = router(&t);
    let p = rport(&t, r, "10.0.0.1", "10.0.0.0", 24);
    let other = rport(&t, router(&t), "10.9.0.1", "10.9.0.0", 24);
    let ok = |body: serde_json::Value| t.create_route(r, from(body)).map(|_| ());
    ok(json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "0.0.0.0",
        "dstNetworkLength": 0, "nextHopPort": p.id, "nextHopGateway": "10.0.0.254", "type": "Normal", "weight": 100}))
    .unwrap();
    ok(json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "192.0.2.0", "dstNetworkLength": 24, "type": "BlackHole"})).unwrap();
    // Refused, each as the full compile refuses it: a FIP64 route, a gateway of the other family,
    // a source of the other family.
    for body in [
        json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "192.0.2.0", "dstNetworkLength": 24, "type": "Fip64"}),
        json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "192.0.3.0", "dstNetworkLength": 24, "nextHopPort": p.id,
            "nextHopGateway": "2001:db8::1", "type": "Normal"}),
        json!({"srcNetworkAddr": "2001:db8::", "srcNetworkLength": 32, "dstNetworkAddr": "192.0.4.0",
            "dstNetworkLength": 24, "type": "Reject"}),
    ] {
        let e = refused(&t, 400, || ok(body.clone()));
        assert!(matches!(e, TopologyError::NotCompilable { .. } | TopologyError::InvalidAddress { .. }), "{body}: {e}");
    }
    // Another router's port: refused (by the write's own checks or the compile's).
    assert!(ok(json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "192.0.5.0", "dstNetworkLength": 24, "nextHopPort": other.id,
        "type": "Normal"}))
    .is_err());
    // What was taken compiles as a whole.
    crate::compile::compile(&t, &CompileContext { generation: 1, ..Default::default() }).unwrap();
}
